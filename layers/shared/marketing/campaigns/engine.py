"""The task engine: one domain event in, each listening task's progress advanced, completions out.

Exactly once per period per user, with no read-then-write: progress moves by one conditional update in a
transaction with the event's marker item (a repeat finds its marker and is refused by DynamoDB, and the
progress item stays the same size however many events it counts), and the completion is one transaction
conditional on the period not being complete and on the completion count the engine saw, with its
`task.completed` event (an outbox item). A crash between the steps is repaired by the event's redelivery: a
repeat whose progress already meets the condition completes it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from marketing.campaigns import dal
from marketing.campaigns.eligibility import audience_ids_of, live_campaign
from marketing.campaigns.models import Period, TaskType
from marketing.campaigns.periods import marker_expiry, parse_time, period_key
from marketing.core import events
from marketing.core.clock import iso, now
from marketing.core.identity import Caller, Role, scope_of
from marketing.core.ids import new_id
from marketing.core.observability import logger, metrics

TRIGGERED = "task.triggered"  # what POST /v1/tasks/trigger puts on the bus
_ATTEMPTS = 4  # rounds of a guarded write lost to a racing one before giving up (the event is retried)


@dataclass(frozen=True)
class TaskEvent:
    tenant_id: str
    app_id: str
    event_id: str
    event_type: str
    user_id: str | None
    occurred_at: datetime
    referrer: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def scope(self) -> str:
        """The event acts in the tenant and app its envelope names, never in another app's tasks."""
        return scope_of(self.tenant_id, self.app_id)

    @classmethod
    def from_bus(cls, detail_type: str, detail: dict[str, Any]) -> TaskEvent:
        """Our own `task.triggered`, or another capability's event whose detail-type is the event type
        (`track.new_user`, `cps.order_paid`, `code.redeemed`); the detail is then the event data."""
        own = detail_type == TRIGGERED
        return cls(
            tenant_id=detail["tenant_id"], app_id=detail["app_id"], event_id=detail["event_id"],
            event_type=detail["event_type"] if own else detail_type,
            user_id=detail.get("user_id") or detail.get("buyer_id"),
            occurred_at=parse_time(detail.get("occurred_at") or iso(now())),
            referrer=None if own else detail.get("referrer"),
            data=(detail.get("event_data") if own else detail) or {},
            attributes=(detail.get("user_attributes") if own else None) or {})


def _subject(task: dict, event: TaskEvent) -> str | None:
    """Whose task moves: an INVITE task moves for the referrer of a new user, other tasks for the user."""
    if task["task_type"] == TaskType.INVITE and event.referrer:
        return event.referrer
    return event.user_id


def _amount(condition: dict, data: dict[str, Any]) -> int | None:
    if condition["type"] == "count":
        return 1
    value = data.get(condition["field"])
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or value != int(value):
        return None  # a sum adds whole non-negative numbers (cents, points): anything else does not count
    return int(value)


def _contact(event: TaskEvent, user: str) -> dict[str, Any]:
    """Where an EMAIL or SMS reward goes: the event's user attributes, when they describe this user."""
    if user != event.user_id:
        return {}
    found = {k: str(event.attributes[k]) for k in ("email", "phone") if event.attributes.get(k)}
    return {"contact": found} if found else {}


def _reached(progress: int, operator: str, target: int) -> bool:
    return {">=": progress >= target, ">": progress > target, "==": progress == target}[operator]


def _service_caller(event: TaskEvent) -> Caller:
    return Caller(sub="task-engine", tenant_id=event.tenant_id, app_id=event.app_id,
                  roles=frozenset({Role.SERVICE}))


def _completed_event(event: TaskEvent, log: dict[str, Any]) -> dict:
    """`task.completed`, committed with the completion: a repeated event finds it sent already."""
    return events.outbox(_service_caller(event), source="campaigns", detail_type="task.completed",
                         event_id=log["completion_id"], occurred_at=log["completed_at"],
                         detail={k: log[k] for k in ("task_id", "campaign_id", "user_id", "period", "completion_id")})


def handle(event: TaskEvent) -> list[tuple[str, str]]:
    """Advance every task listening to the event's type; answers (task_id, outcome) pairs. The cost is one
    Query for the listeners, one BatchGetItem for their campaigns (and one for audiences), then per live
    task one UpdateItem, plus one transaction on completion."""
    started = time.perf_counter()
    tasks = dal.tasks_listening(event.scope, event.event_type)
    outcomes: list[tuple[str, str]] = []
    campaign_ids = {c for t in tasks for c in t["campaign_ids"]}
    campaigns = dal.get_campaigns(event.scope, campaign_ids) if campaign_ids else {}
    wanted = audience_ids_of(campaigns)
    audiences = dal.get_audiences(event.scope, wanted) if wanted else {}
    for task in tasks:
        user = _subject(task, event)
        campaign = user and live_campaign(task, campaigns, audiences, user, event.attributes, event.occurred_at)
        if not campaign:
            outcomes.append((task["task_id"], "NOT_LIVE"))
            continue
        outcome = advance(event, task, campaign["campaign_id"], user)
        outcomes.append((task["task_id"], outcome))
        metrics.add_metric(name="TasksTriggered", unit="Count", value=1)
    metrics.add_metric(name="TaskTriggerDuration", unit="Milliseconds", value=(time.perf_counter() - started) * 1000)
    return outcomes


def advance(event: TaskEvent, task: dict, campaign_id: str, user: str) -> str:
    amount = _amount(task["condition"], event.data)
    if amount is None:
        return "NOT_COUNTED"
    key = period_key(task["period"], event.occurred_at)
    limit = 1 if task["period"] == Period.ONCE else task.get("max_count")
    scope, task_id = event.scope, task["task_id"]
    exact = task["condition"]["value"] if task["condition"]["operator"] == "==" else None
    expires = marker_expiry(key, now())
    repeat = False
    for _ in range(_ATTEMPTS):
        try:
            item = dal.add_progress(scope, task_id, user, period_key=key, event_id=event.event_id, amount=amount,
                                    max_count=limit, hold_at=exact, expires=expires)
            break
        except dal.Refused as refused:
            old, repeat = refused.item, refused.repeat
        if old is None:
            return "DUPLICATE"  # counted before, and nothing else to do
        if old["period_key"] > key:
            return "STALE"  # the user's progress moved on to a later period
        if old["period_key"] == key and old.get("completed_period") == key:
            return "DUPLICATE" if repeat else "ALREADY_COMPLETE"
        if limit is not None and old.get("completions", 0) >= limit:
            return "LIMIT_REACHED"
        if repeat:
            if old["period_key"] != key:
                return "DUPLICATE"
            item = old  # counted before, but its completion may not have happened
            break
        if old["period_key"] < key:
            try:
                item = dal.start_period(scope, task_id, user, old_period=old["period_key"], period_key=key,
                                        event_id=event.event_id, amount=amount, max_count=limit, expires=expires)
                break
            except dal.Refused:
                continue  # another event started the period first: count this one in it
        if exact is not None and old["period_key"] == key and old.get("progress") == exact:
            item = old  # the exact target is reached and waits for its completion: complete it, count nothing
            break
    else:
        raise RuntimeError(f"progress of task {task_id} for {user} kept changing; the event will be retried")
    outcome = _complete_if_reached(event, task, campaign_id, user, key, limit, item)
    return "DUPLICATE" if repeat and outcome == "COUNTED" else outcome


def _complete_if_reached(event: TaskEvent, task: dict, campaign_id: str, user: str, key: str,
                         limit: int | None, item: dict) -> str:
    condition = task["condition"]
    for _ in range(_ATTEMPTS):
        if item.get("completed_period") == key or not _reached(item["progress"], condition["operator"],
                                                               condition["value"]):
            return "COUNTED"
        seen = item.get("completions", 0)
        if limit is not None and seen >= limit:
            return "LIMIT_REACHED"
        log = {"completion_id": new_id(), "task_id": task["task_id"], "campaign_id": campaign_id, "user_id": user,
               "period": key, "reward_id": task["reward_id"], "event_id": event.event_id,
               "completed_at": iso(now()), "occurred_at": iso(event.occurred_at), **_contact(event, user)}
        try:
            dal.complete(event.scope, log, operator=condition["operator"], target=condition["value"],
                         seen_completions=seen, outbox=[_completed_event(event, log)])
        except dal.ConditionFailed as lost:
            item = lost.item or dal.get_progress(event.scope, task["task_id"], user)
            continue
        metrics.add_metric(name="TasksCompleted", unit="Count", value=1)
        logger.info("task completed", extra={"task_id": task["task_id"], "user_id": user, "period": key})
        return "COMPLETED"
    raise RuntimeError(f"completion of task {task['task_id']} for {user} kept racing; the event will be retried")
