"""Domain events of the other capabilities (docs/events.md), as they arrive on the stats queue from the
EventBridge rule, mapped onto the statistics event types."""

from __future__ import annotations

import hashlib
from typing import Any

from marketing.core.identity import is_identifier, scope_of
from marketing.stats.metrics import Running
from marketing.stats.models import EVENT_ADAPTER, Common

# The detail-types counted (the template's StatsDomainEventsRule routes exactly these)
DOMAIN_EVENTS = ("track.visit", "track.new_user", "code.redeemed", "code.revoked", "cps.order_paid",
                 "cps.order_refunded", "task.completed")


def _campaign_or_reward(d: dict) -> dict[str, Any]:
    """A code counts on its campaign; a code outside any campaign, on its reward."""
    if d.get("campaign_id"):
        return {"topic_type": "campaign", "topic_id": d["campaign_id"],
                "parent_topic_type": "reward" if d.get("reward_id") else None, "parent_topic_id": d.get("reward_id")}
    return {"topic_type": "reward", "topic_id": d.get("reward_id")}


def _fields(detail_type: str, d: dict) -> dict[str, Any]:
    if detail_type in ("track.visit", "track.new_user"):
        # A visit through someone's promo code is a visit through a share, counted on the referrer.
        return {"event_type": "share.visit", "topic_type": "referrer", "topic_id": d.get("referrer"),
                "wu_id": d.get("user_id"), "qr_code": d.get("promcode"),
                "payload": {"new_user": detail_type == "track.new_user"}}
    if detail_type == "code.redeemed":
        # The event carries the coupon's face value (the discount), not the amount of the purchase.
        return {"event_type": "coupon.redeemed", **_campaign_or_reward(d), "wu_id": d.get("user_id"),
                "payload": {"redemption_id": d.get("grant_id") or d.get("event_id"),
                            "discount_amount": d.get("amount") or 0}}
    if detail_type == "code.revoked":
        return {"event_type": "coupon.revoked", **_campaign_or_reward(d),
                "payload": {"revocation_id": d.get("event_id")}}
    if detail_type in ("cps.order_paid", "cps.order_refunded"):
        # Affiliate orders count on their promoter, per platform (the channel); an order no promoter brought
        # counts on its platform.
        promoter = d.get("promoter_id")
        topic = {"topic_type": "promoter", "topic_id": promoter} if promoter else \
            {"topic_type": "cps_platform", "topic_id": d.get("platform")}
        common = {**topic, "channel_type": d.get("platform"), "wu_id": d.get("buyer_id")}
        if detail_type == "cps.order_paid":
            return {"event_type": "order.paid", **common,
                    "payload": {"order_id": d.get("order_id"), "amount": d.get("pay_price"),
                                "via_share": bool(promoter)}}
        return {"event_type": "order.refunded", **common,
                "payload": {"refund_id": d.get("order_id"), "amount": d.get("refund_price")}}
    if detail_type == "task.completed":
        return {"event_type": "activity.task_completed", "topic_type": "campaign", "topic_id": d.get("campaign_id"),
                "wu_id": d.get("user_id"),
                "payload": {"task_id": d.get("task_id"), "completion_id": d.get("completion_id"),
                            "period": d.get("period")}}
    raise ValueError(f"no statistics for domain event {detail_type!r}")


def _event_id(raw: str) -> str:
    """The producer's id if it fits our keys, else a digest of it (stable, so repeats still match)."""
    if is_identifier(raw):
        return raw
    return "sha256-" + hashlib.sha256(raw.encode()).hexdigest()[:48]


def from_domain_event(envelope: dict[str, Any]) -> tuple[str, Common]:
    """(scope, event) of an EventBridge event: it counts in the tenant and app its envelope names. Raises (a
    poison message) if it cannot be counted."""
    detail = envelope["detail"]
    tenant_id, app_id = detail["tenant_id"], detail["app_id"]
    if not is_identifier(tenant_id) or not is_identifier(app_id):
        raise ValueError("the event names no valid tenant and app")
    fields = {k: v for k, v in _fields(envelope["detail-type"], detail).items() if v is not None}
    fields.update(event_id=_event_id(str(detail["event_id"])), ctime=detail.get("occurred_at") or envelope.get("time"))
    return scope_of(tenant_id, app_id), EVENT_ADAPTER.validate_python(fields)


def running_of(envelope: dict[str, Any], event: Common) -> Running | None:
    """CPS reports an order's refunds cumulatively, one event per step (partial amounts, then full): only the
    increase counts as `refund_amount`, and `refunds` counts the order once."""
    if envelope["detail-type"] != "cps.order_refunded":
        return None
    d = envelope["detail"]
    return Running(key=_event_id(f"cps:{d['platform']}:{d['order_id']}"), total=event.payload.amount,
                   delta_metrics=("refund_amount", "member_refund_amount"),
                   first_metrics=("refunds", "member_refunds", "refunded_coupons", "member_refunded_coupons"))
