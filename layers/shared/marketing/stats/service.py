"""Use cases of real-time statistics: intake, counting (the queue consumer) and the stats queries."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError
from pydantic import ValidationError

from marketing.core.clock import iso, now
from marketing.core.errors import InvalidInput
from marketing.core.identity import Caller, Role, scope_of
from marketing.core.observability import logger, metrics
from marketing.ratelimit import service as ratelimit
from marketing.stats import dal, delivery
from marketing.stats.chart import bar_chart
from marketing.stats.mapping import from_domain_event, running_of
from marketing.stats.metrics import METRICS, Running, effect_of
from marketing.stats.models import (
    EVENT_ADAPTER,
    EVENT_TYPES,
    USER_EVENT_TYPES,
    Common,
    DayStats,
    EventBatchIn,
    EventBatchResult,
    EventResult,
    FieldError,
    OperationRecord,
    OperationRecordPage,
    QueuedEvent,
    StatsReport,
)

MAX_AGE = timedelta(days=30)  # oldest ctime accepted, and farthest deliver_at
MAX_SKEW = timedelta(minutes=5)  # clocks of the senders may run a little ahead
RECORD_DAYS = 90  # operation records and unique markers live this long (docs/stats.md: why it is enough)
MAX_RANGE_DAYS = 366


# --- intake ---

def _field_errors(index: int, exc: ValidationError) -> list[FieldError]:
    errors = []
    for error in exc.errors():
        loc, message = list(error.get("loc", ())), error["msg"]
        if loc and loc[0] in EVENT_TYPES:  # the union's tag: not a field of the request
            loc = loc[1:]
        if error["type"] == "union_tag_not_found":
            loc, message = ["event_type"], "event_type is required"
        elif error["type"] == "union_tag_invalid":
            loc, message = ["event_type"], f"unknown event_type; one of: {', '.join(EVENT_TYPES)}"
        errors.append(FieldError(field=".".join(str(p) for p in ["events", index, *loc]), message=message))
    return errors


def _rule_errors(caller: Caller, index: int, event: Common, at: datetime) -> list[FieldError]:
    """Rules beyond the event's shape: a time window that keeps recounts possible, and a user's own events."""
    def err(name: str, message: str) -> FieldError:
        return FieldError(field=f"events.{index}.{name}", message=message)

    errors = []
    if event.ctime < at - MAX_AGE:
        errors.append(err("ctime", "events older than 30 days are not counted any more"))
    if event.ctime > at + MAX_SKEW:
        errors.append(err("ctime", "ctime is in the future"))
    if event.deliver_at and event.deliver_at > at + MAX_AGE:
        errors.append(err("deliver_at", "deliver_at is more than 30 days ahead"))
    if not caller.is_staff and event.wu_id != caller.sub:
        errors.append(err("wu_id", "a user may send only their own events"))
    if not caller.is_staff and event.event_type not in USER_EVENT_TYPES:
        errors.append(err("event_type", "a user may send only visits and shares; back ends send the rest"))
    return errors


def submit(caller: Caller, body: EventBatchIn) -> EventBatchResult:
    """Validate each event on its own and queue the valid ones; the answer says, per event, why not."""
    caller.require(Role.ADMIN, Role.SERVICE, Role.USER)
    ratelimit.charge(caller, ratelimit.EVENTS, cost=len(body.events))  # a user's events, not requests, count
    at = now()
    results: list[EventResult] = []
    queued: list[tuple[str, dict, int]] = []
    seen: set[str] = set()
    for index, raw in enumerate(body.events):
        try:
            event = EVENT_ADAPTER.validate_python(raw)
        except ValidationError as exc:
            results.append(EventResult(index=index, event_id=_text(raw.get("event_id")), accepted=False,
                                       errors=_field_errors(index, exc)))
            continue
        errors = _rule_errors(caller, index, event, at)
        if event.event_id in seen:
            errors.append(FieldError(field=f"events.{index}.event_id", message="repeats an event of this request"))
        if errors:
            results.append(EventResult(index=index, event_id=event.event_id, accepted=False, errors=errors))
            continue
        seen.add(event.event_id)
        sender = None if caller.is_staff else caller.sub
        message = QueuedEvent(tenant_id=caller.tenant_id, app_id=caller.app_id, sender=sender,
                              event=event).model_dump(mode="json")
        delay = delivery.delay_of(event.deliver_at, at)
        if delay > delivery.SQS_MAX_DELAY:
            try:
                delivery.schedule(delivery.schedule_name(caller.tenant_id, caller.app_id, event.event_id, sender),
                                  message, event.deliver_at)
            except ClientError:  # this event only: the others of the request still go
                logger.exception("the scheduler refused an event", extra={"event_id": event.event_id})
                results.append(EventResult(index=index, event_id=event.event_id, accepted=False, errors=[
                    FieldError(field=f"events.{index}", message="the scheduler refused it: send again")]))
                continue
            results.append(EventResult(index=index, event_id=event.event_id, accepted=True, delivery="scheduled"))
            continue
        queued.append((event.event_id, message, delay))
        results.append(EventResult(index=index, event_id=event.event_id, accepted=True,
                                   delivery="delayed" if delay else "now"))
    refused = delivery.send(queued) if queued else set()
    for result in results:
        if result.accepted and result.delivery != "scheduled" and result.event_id in refused:
            result.accepted, result.delivery = False, None
            result.errors = [FieldError(field=f"events.{result.index}", message="the queue refused it: send again")]
    accepted = sum(r.accepted for r in results)
    metrics.add_metric(name="StatsEventsAccepted", unit="Count", value=accepted)
    return EventBatchResult(accepted=accepted, rejected=len(results) - accepted, results=results)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


# --- counting (the queue consumer) ---

def tally(scope: str, origin: str, event: Common, processed_at: datetime | None = None,
          running: Running | None = None, sender: str | None = None) -> dal.Tally:
    """What an event adds, where (the tenant and app of `scope`), and its operation record."""
    effect = effect_of(event)
    processed_at = processed_at or now()
    channel = event.channel
    return dal.Tally(
        scope=scope, origin=origin, event_id=event.event_id, event_type=event.event_type,  # type: ignore[attr-defined]
        topic_type=event.topic_type, topic_id=event.topic_id, day=event.day, group=event.family,
        channels=(dal.ALL_CHANNELS, channel) if channel else (dal.ALL_CHANNELS,),
        counts=effect.counts, uniques=effect.uniques, event=event.model_dump(mode="json"),
        event_time=iso(event.ctime), processed_at=iso(processed_at),
        ttl=int(processed_at.timestamp()) + RECORD_DAYS * 86400, running=running, sender=sender)


def parse_message(body: str) -> dal.Tally:
    """An SQS message body: an intake message, or a domain event the EventBridge rule forwarded.
    Raises for a message that cannot be counted (it fails alone, and reaches the DLQ after its retries)."""
    message = json.loads(body)
    if isinstance(message, dict) and "detail-type" in message:
        scope, event = from_domain_event(message)
        return tally(scope, "bus", event, running=running_of(message, event))
    queued = QueuedEvent.model_validate(message)
    scope = scope_of(queued.tenant_id, queued.app_id)
    if queued.sender:
        return tally(scope, "user", queued.event, sender=queued.sender)
    return tally(scope, "api", queued.event)


def count(tallies: list[dal.Tally]) -> list[dal.Tally]:
    """Count a batch exactly once; answers the events that must be delivered again."""
    counted, failed = dal.count(tallies)
    try:  # the counts are committed: telemetry must not make SQS deliver them again
        metrics.add_metric(name="StatsEventsCounted", unit="Count", value=counted)
        metrics.add_metric(name="StatsEventsRepeated", unit="Count", value=len(tallies) - counted - len(failed))
    except Exception:
        logger.exception("could not record the counting metrics")
    if failed:
        logger.warning("events left for redelivery", extra={"event_ids": [t.event_id for t in failed]})
    return failed


# --- queries ---

def _range(first: date | None, last: date | None) -> tuple[date, date]:
    last = last or now().date()
    first = first or last - timedelta(days=29)
    if first > last:
        raise InvalidInput("query.from", "from is after to")
    if (last - first).days >= MAX_RANGE_DAYS:
        raise InvalidInput("query.from", f"a range spans at most {MAX_RANGE_DAYS} days")
    return first, last


def report(caller: Caller, topic_type: str, topic_id: str, first: date | None, last: date | None,
           channel: str | None) -> StatsReport:
    """Daily metrics and totals of a topic, for all channels or one. Uniques are exact per day; a range's
    total of a unique metric is the sum of its daily values (person-days), not distinct people."""
    caller.require(Role.ADMIN, Role.SERVICE)
    first, last = _range(first, last)
    rows = dal.counters(caller.scope, topic_type, topic_id, channel or dal.ALL_CHANNELS,
                        first.isoformat(), last.isoformat())
    per_day: dict[str, Counter] = {}
    for row in rows:
        per_day.setdefault(row["day"], Counter()).update(row["metrics"])
    seen = sorted({name for c in per_day.values() for name in c}, key=list(METRICS).index)
    days = []
    for offset in range((last - first).days + 1):
        day = first + timedelta(days=offset)
        values = per_day.get(day.isoformat(), Counter())
        days.append(DayStats(date=day, metrics={name: values[name] for name in seen}))
    totals = sum(per_day.values(), Counter())
    return StatsReport(topic_type=topic_type, topic_id=topic_id, channel_type=channel, from_=first, to=last,
                       days=days, totals={name: totals[name] for name in METRICS})


def chart_svg(caller: Caller, topic_type: str, topic_id: str, metric: str, first: date | None, last: date | None,
              channel: str | None) -> str:
    stats = report(caller, topic_type, topic_id, first, last, channel)
    title = f"{metric} · {topic_type} {topic_id}" + (f" · {channel}" if channel else "")
    return bar_chart(title, [(d.date.isoformat(), d.metrics.get(metric, 0)) for d in stats.days])


def operation_records(caller: Caller, topic_type: str, topic_id: str, day: date, limit: int,
                      next_token: str | None) -> OperationRecordPage:
    """The events counted for a topic on a day (kept 90 days), to audit or recount it."""
    caller.require(Role.ADMIN, Role.SERVICE)
    items, token = dal.records(caller.scope, topic_type, topic_id, day.isoformat(), limit, next_token)
    return OperationRecordPage(items=[OperationRecord(**i) for i in items], next_token=token)


__all__ = ["submit", "parse_message", "count", "report", "chart_svg", "operation_records"]
