"""Use cases of the campaign engine's API. Every function takes the verified caller first.

Writes are for admins; reads for admins and the tenant's back ends (`service`); a `user` reads only their
own task view and completion logs."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from pydantic import TypeAdapter

from marketing.campaigns import dal, rules
from marketing.campaigns.eligibility import audience_ids_of, audience_takes, live_campaign
from marketing.campaigns.engine import TRIGGERED
from marketing.campaigns.models import (
    Audience,
    AudienceIn,
    AudienceMatch,
    AudienceMatchIn,
    AudiencePage,
    Campaign,
    CampaignIn,
    CampaignPage,
    CampaignTask,
    CampaignTaskIn,
    CompletionLog,
    CompletionLogPage,
    CompletionStats,
    Task,
    TaskIn,
    TaskPage,
    TriggerAccepted,
    TriggerIn,
    UserTask,
    UserTasks,
    time_text,
)
from marketing.campaigns.periods import ONCE_KEY, period_key
from marketing.core import events
from marketing.core.clock import iso, now, now_iso
from marketing.core.errors import Conflict, InvalidInput, NotFound
from marketing.core.identity import Caller, Role
from marketing.core.ids import new_id
from marketing.core.observability import metrics

_RULE = TypeAdapter(rules.Rule)
READERS = (Role.ADMIN, Role.SERVICE)
_FUTURE_SLACK = timedelta(minutes=5)  # clocks of the tenant's back ends drift a little


# --- campaigns ---------------------------------------------------------------------------------------------

def _campaign_fields(body: CampaignIn) -> dict[str, Any]:
    return {"name": body.name, "campaign_type": body.campaign_type, "description": body.description,
            "start_time": time_text(body.start_time), "end_time": time_text(body.end_time),
            "status": body.status.value, "audience_id": body.audience_id}


def _campaign_out(item: dict) -> Campaign:
    return Campaign(**{k: v for k, v in item.items() if k in Campaign.model_fields})


def create_campaign(caller: Caller, body: CampaignIn) -> Campaign:
    caller.require(Role.ADMIN)
    stamp = now_iso()
    campaign = {"campaign_id": new_id(), **_campaign_fields(body), "created_at": stamp, "updated_at": stamp}
    try:
        dal.create_campaign(caller.scope, campaign)
    except dal.ConditionFailed as exc:
        raise InvalidInput("audience_id", f"audience {body.audience_id} is unknown") from exc
    metrics.add_metric(name="CampaignsCreated", unit="Count", value=1)
    return _campaign_out(campaign)


def _found(item: dict | None, kind: str, item_id: str) -> dict:
    if item is None:
        raise NotFound(f"{kind} {item_id} is unknown")
    return item


def _campaign(caller: Caller, campaign_id: str, *, consistent: bool = False) -> dict:
    return _found(dal.get_campaign(caller.scope, campaign_id, consistent=consistent), "campaign", campaign_id)


def get_campaign(caller: Caller, campaign_id: str) -> Campaign:
    caller.require(*READERS)
    return _campaign_out(_campaign(caller, campaign_id))


def list_campaigns(caller: Caller, limit: int, next_token: str | None) -> CampaignPage:
    caller.require(*READERS)
    items, token = dal.list_campaigns(caller.scope, limit, next_token)
    return CampaignPage(items=[_campaign_out(i) for i in items], next_token=token)


def update_campaign(caller: Caller, campaign_id: str, body: CampaignIn) -> Campaign:
    """Replace the campaign. The write is guarded on the audience read just before (so reference counts stay
    exact); a concurrent change of audience makes us read again."""
    caller.require(Role.ADMIN)
    for _ in range(3):
        current = _campaign(caller, campaign_id, consistent=True)
        if current["status"] == "ENDED":
            raise Conflict(f"campaign {campaign_id} has ended and can no longer change")
        try:
            item = dal.update_campaign(caller.scope, current, {**_campaign_fields(body), "updated_at": now_iso()})
            return _campaign_out(item)
        except dal.ConditionFailed as exc:
            if exc.reasons and exc.reasons[0] == "None":  # the campaign was fine: the new audience is not
                raise InvalidInput("audience_id", f"audience {body.audience_id} is unknown") from exc
    raise Conflict(f"campaign {campaign_id} is being changed concurrently; try again")


def delete_campaign(caller: Caller, campaign_id: str) -> None:
    caller.require(Role.ADMIN)
    for _ in range(3):
        current = _campaign(caller, campaign_id, consistent=True)
        if current.get("task_count", 0) > 0:
            raise Conflict(f"campaign {campaign_id} still has tasks: remove them first")
        try:
            dal.delete_campaign(caller.scope, campaign_id, current.get("audience_id"))
            return
        except dal.ConditionFailed:
            continue
    raise Conflict(f"campaign {campaign_id} is being changed concurrently; try again")


# --- audiences ---------------------------------------------------------------------------------------------

def _audience_fields(body: AudienceIn) -> dict[str, Any]:
    return {"name": body.name, "audience_type": body.audience_type.value, "description": body.description,
            "user_ids": sorted(set(body.user_ids)) if body.user_ids else None,
            "rule_json": json.dumps(_RULE.dump_python(body.rule, by_alias=True)) if body.rule else None}


def _audience_out(item: dict) -> Audience:
    rule = json.loads(item["rule_json"]) if item.get("rule_json") else None
    return Audience(**{k: v for k, v in item.items() if k in Audience.model_fields}, rule=rule)


def create_audience(caller: Caller, body: AudienceIn) -> Audience:
    caller.require(Role.ADMIN)
    stamp = now_iso()
    audience = {"audience_id": new_id(), **_audience_fields(body), "created_at": stamp, "updated_at": stamp}
    dal.create_audience(caller.scope, audience)
    metrics.add_metric(name="AudiencesCreated", unit="Count", value=1)
    return _audience_out(audience)


def _audience(caller: Caller, audience_id: str) -> dict:
    return _found(dal.get_audience(caller.scope, audience_id), "audience", audience_id)


def get_audience(caller: Caller, audience_id: str) -> Audience:
    caller.require(*READERS)
    return _audience_out(_audience(caller, audience_id))


def list_audiences(caller: Caller, limit: int, next_token: str | None) -> AudiencePage:
    caller.require(*READERS)
    items, token = dal.list_audiences(caller.scope, limit, next_token)
    return AudiencePage(items=[_audience_out(i) for i in items], next_token=token)


def update_audience(caller: Caller, audience_id: str, body: AudienceIn) -> Audience:
    caller.require(Role.ADMIN)
    try:
        item = dal.update_audience(caller.scope, audience_id, {**_audience_fields(body), "updated_at": now_iso()})
    except dal.ConditionFailed as exc:
        raise NotFound(f"audience {audience_id} is unknown") from exc
    return _audience_out(item)


def delete_audience(caller: Caller, audience_id: str) -> None:
    caller.require(Role.ADMIN)
    try:
        dal.delete_audience(caller.scope, audience_id)
    except dal.ConditionFailed as exc:
        if exc.item is None:
            raise NotFound(f"audience {audience_id} is unknown") from exc
        raise Conflict(f"audience {audience_id} is used by {exc.item.get('refs')} campaign(s)") from exc


def match_audience(caller: Caller, audience_id: str, body: AudienceMatchIn) -> AudienceMatch:
    """Would this user, with these attributes, be in the audience? (Operators test their rules here.)"""
    caller.require(*READERS)
    takes = audience_takes(_audience(caller, audience_id), body.user_id, body.user_attributes)
    return AudienceMatch(audience_id=audience_id, user_id=body.user_id, matches=takes)


# --- tasks -------------------------------------------------------------------------------------------------

def _require_reward(caller: Caller, reward_id: str) -> None:
    from marketing.rewards import api as rewards  # the rewards capability, in the same layer

    if rewards.reward_settings(caller, reward_id) is None:
        raise InvalidInput("reward_id", f"reward {reward_id} is unknown")


def _task_fields(body: TaskIn) -> dict[str, Any]:
    return {"name": body.name, "description": body.description, "task_type": body.task_type.value,
            "event_type": body.event_type, "condition": body.condition.model_dump(exclude_none=True),
            "period": body.period.value, "max_count": body.max_count, "reward_id": body.reward_id,
            "start_time": time_text(body.start_time), "end_time": time_text(body.end_time)}


def _task_out(item: dict) -> Task:
    return Task(**{k: v for k, v in item.items() if k in Task.model_fields})


def create_task(caller: Caller, body: TaskIn) -> Task:
    caller.require(Role.ADMIN)
    _require_reward(caller, body.reward_id)
    stamp = now_iso()
    task = {"task_id": new_id(), **_task_fields(body), "created_at": stamp, "updated_at": stamp}
    dal.create_task(caller.scope, task)
    metrics.add_metric(name="TasksCreated", unit="Count", value=1)
    return _task_out(task)


def _task(caller: Caller, task_id: str) -> dict:
    return _found(dal.get_task(caller.scope, task_id), "task", task_id)


def get_task(caller: Caller, task_id: str) -> Task:
    caller.require(*READERS)
    return _task_out(_task(caller, task_id))


def list_tasks(caller: Caller, limit: int, next_token: str | None) -> TaskPage:
    caller.require(*READERS)
    items, token = dal.list_tasks(caller.scope, limit, next_token)
    return TaskPage(items=[_task_out(i) for i in items], next_token=token)


def update_task(caller: Caller, task_id: str, body: TaskIn) -> Task:
    caller.require(Role.ADMIN)
    _require_reward(caller, body.reward_id)
    try:
        item = dal.update_task(caller.scope, task_id, {**_task_fields(body), "updated_at": now_iso()})
    except dal.ConditionFailed as exc:
        if exc.item is None:
            raise NotFound(f"task {task_id} is unknown") from exc
        raise InvalidInput("period", f"a task's period cannot change (it is {exc.item['period']}): "
                                     "create a new task") from exc
    return _task_out(item)


def delete_task(caller: Caller, task_id: str) -> None:
    caller.require(Role.ADMIN)
    try:
        dal.delete_task(caller.scope, task_id)
    except dal.ConditionFailed as exc:
        if exc.item is None:
            raise NotFound(f"task {task_id} is unknown") from exc
        raise Conflict(f"task {task_id} is linked to campaigns {sorted(exc.item['campaign_ids'])}: "
                       "remove it from them first") from exc


# --- campaign ↔ task ---------------------------------------------------------------------------------------

def link_task(caller: Caller, campaign_id: str, body: CampaignTaskIn) -> tuple[CampaignTask, bool]:
    """Add a task to a campaign; a repeat answers the existing link (created=False)."""
    caller.require(Role.ADMIN)
    link = {"campaign_id": campaign_id, "task_id": body.task_id, "created_at": now_iso()}
    try:
        dal.link(caller.scope, campaign_id, body.task_id, link["created_at"])
        return CampaignTask(**link), True
    except dal.ConditionFailed as exc:
        reasons = exc.reasons
        if reasons[1] == "ConditionalCheckFailed":
            raise NotFound(f"campaign {campaign_id} is unknown") from exc
        if reasons[2] == "ConditionalCheckFailed":
            raise InvalidInput("task_id", f"task {body.task_id} is unknown") from exc
        existing = dal.get_link(caller.scope, campaign_id, body.task_id)
        return CampaignTask(**existing), False


def unlink_task(caller: Caller, campaign_id: str, task_id: str) -> None:
    caller.require(Role.ADMIN)
    try:
        dal.unlink(caller.scope, campaign_id, task_id)
    except dal.ConditionFailed as exc:
        raise NotFound(f"task {task_id} is not in campaign {campaign_id}") from exc


def campaign_tasks(caller: Caller, campaign_id: str, limit: int, next_token: str | None) -> TaskPage:
    caller.require(*READERS)
    _campaign(caller, campaign_id)
    links, token = dal.list_links(caller.scope, campaign_id, limit, next_token)
    tasks = dal.get_tasks(caller.scope, [link["task_id"] for link in links]) if links else []
    return TaskPage(items=sorted((_task_out(t) for t in tasks), key=lambda t: t.task_id), next_token=token)


# --- trigger, logs, stats, the user's view ------------------------------------------------------------------

def trigger(caller: Caller, body: TriggerIn) -> TriggerAccepted:
    """Put the event on the bus; the task engine consumes it. A repeat with the same `event_id` is counted
    once by the engine, so clients retry freely."""
    caller.require(*READERS)
    moment = body.occurred_at or now()
    if moment > now() + _FUTURE_SLACK:
        raise InvalidInput("occurred_at", "occurred_at is in the future")
    event_id = body.event_id or new_id()
    events.publish(caller, source="campaigns", detail_type=TRIGGERED, event_id=event_id, occurred_at=iso(moment),
                   detail={"event_type": body.event_type, "user_id": body.user_id, "event_data": body.event_data,
                           "user_attributes": body.user_attributes})
    return TriggerAccepted(event_id=event_id)


def completion_logs(caller: Caller, task_id: str | None, user_id: str | None, limit: int,
                    next_token: str | None) -> CompletionLogPage:
    if user_id:
        caller.require_user_access(user_id)
    else:
        caller.require(*READERS)
        if not task_id:
            raise InvalidInput("task_id", "give task_id, user_id or both")
    items, token = dal.list_logs(caller.scope, task_id=task_id, user_id=user_id, limit=limit,
                                 next_token=next_token)
    return CompletionLogPage(items=[CompletionLog(**{k: v for k, v in i.items() if k in CompletionLog.model_fields})
                                    for i in items], next_token=token)


def completion_stats(caller: Caller, task_id: str) -> CompletionStats:
    caller.require(*READERS)
    _task(caller, task_id)
    stats = dal.get_stats(caller.scope, task_id)
    return CompletionStats(task_id=task_id, total_completions=stats.get("total_completions", 0),
                           unique_users=stats.get("unique_users", 0))


def user_tasks(caller: Caller, user_id: str) -> UserTasks:
    """The user's progress on every task live for them now (TAG audiences are decided when an event
    carries the user's attributes, so they are shown here)."""
    caller.require_user_access(user_id)
    tasks = dal.all_tasks(caller.scope)
    campaigns = dal.get_campaigns(caller.scope, {c for t in tasks for c in t["campaign_ids"]})
    wanted = audience_ids_of(campaigns)
    audiences = dal.get_audiences(caller.scope, wanted) if wanted else {}
    progress = dal.user_progress(caller.scope, user_id)
    moment, items = now(), []
    for task in tasks:
        campaign = live_campaign(task, campaigns, audiences, user_id, None, moment)
        if campaign is None:
            continue
        key = period_key(task["period"], moment)
        mine = progress.get(task["task_id"], {})
        current = mine.get("period_key") == key
        items.append(UserTask(
            task_id=task["task_id"], name=task["name"], task_type=task["task_type"], event_type=task["event_type"],
            campaign_id=campaign["campaign_id"], period=task["period"], period_key=key, condition=task["condition"],
            progress=mine.get("progress", 0) if current else 0,
            completed=mine.get("completed_period") == key,
            completions=mine.get("completions", 0), max_count=1 if key == ONCE_KEY else task.get("max_count"),
            reward_id=task["reward_id"], end_time=task.get("end_time")))
    return UserTasks(user_id=user_id, items=items)

