"""What each event type counts: plain counters (`ADD`) and unique subjects per day (marker items).

Metric names say what they count. `member_*` metrics are the members' share of the metric of the same name;
refunds, cancellations, revocations and expiries are metrics of their own, never subtracted from others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from marketing.stats import models as m

# Every metric, with what it counts (the stats API lists them; docs/stats.md shows this table).
METRICS: dict[str, str] = {
    "visits": "page or activity visits",
    "visitors": "distinct visitors per day (user, else session)",
    "shares": "shares of a page or activity",
    "sharers": "distinct sharers per day",
    "h5_visits": "activity visits through H5 pages",
    "h5_visitors": "distinct H5 visitors per day",
    "purchases": "paid orders",
    "purchased_quantity": "items bought",
    "purchased_coupons": "coupons granted by purchases",
    "purchase_amount": "paid amount, cents",
    "buyers": "distinct buyers per day",
    "member_purchases": "paid orders by members",
    "member_purchased_quantity": "items bought by members",
    "member_purchased_coupons": "coupons granted by members' purchases",
    "member_purchase_amount": "amount members paid, cents",
    "member_buyers": "distinct member buyers per day",
    "share_purchases": "paid orders of buyers who joined through a share",
    "share_buyers": "distinct buyers per day who joined through a share",
    "flash_purchases": "orders at the flash-sale price",
    "flash_quantity": "items bought at the flash-sale price",
    "flash_coupons": "coupons granted by flash-sale purchases",
    "flash_buyers": "distinct flash-sale buyers per day",
    "cancelled_payments": "payments cancelled",
    "cancelled_amount": "amount of cancelled payments, cents",
    "refunds": "refunds",
    "refunded_coupons": "coupons refunded",
    "refund_amount": "refunded amount, cents",
    "refunders": "distinct users refunded per day",
    "member_refunds": "refunds to members",
    "member_refunded_coupons": "coupons refunded to members",
    "member_refund_amount": "amount refunded to members, cents",
    "member_refunders": "distinct members refunded per day",
    "vip_cards": "VIP cards received",
    "vip_card_receivers": "distinct VIP card receivers per day",
    "member_vip_cards": "VIP cards received by members",
    "member_vip_card_receivers": "distinct members receiving a VIP card per day",
    "vip_new_memberships": "VIP cards opening a new membership",
    "vip_renewals": "VIP cards renewing a membership",
    "vip_h5_activations": "VIP cards activated through H5",
    "vip_amount": "paid for VIP cards, cents",
    "member_vip_amount": "members paid for VIP cards, cents",
    "red_packet_receipts": "red packet receipts",
    "red_packets": "red packets received",
    "red_packet_receivers": "distinct red packet receivers per day",
    "expired_red_packets": "red packets expired unused",
    "expired_red_packet_holders": "distinct holders of expired red packets per day",
    "member_expired_red_packets": "members' red packets expired unused",
    "member_expired_red_packet_holders": "distinct members with expired red packets per day",
    "redemptions": "coupons redeemed",
    "redeemers": "distinct redeemers per day",
    "redeemed_brands": "distinct brands redeemed per day",
    "redemption_discount_amount": "discount granted by redemptions, cents",
    "redeemed_amount": "amount redeemed, cents",
    "member_redemptions": "coupons redeemed by members",
    "member_redeemers": "distinct member redeemers per day",
    "member_redeemed_brands": "distinct brands members redeemed per day",
    "member_redemption_discount_amount": "discount granted to members, cents",
    "member_redeemed_amount": "amount members redeemed, cents",
    "revocations": "redemptions revoked",
    "revokers": "distinct users whose redemption was revoked per day",
    "revoked_amount": "amount of revoked redemptions, cents",
    "member_revocations": "members' redemptions revoked",
    "member_revokers": "distinct members whose redemption was revoked per day",
    "member_revoked_amount": "amount of members' revoked redemptions, cents",
    "expired_coupons": "coupons expired",
    "expired_coupon_value": "value of expired coupons, cents",
    "member_expired_coupons": "members' coupons expired",
    "member_expired_coupon_value": "value of members' expired coupons, cents",
    "lottery_entries": "lottery entries",
    "lottery_entrants": "distinct lottery entrants per day",
    "share_visits": "visits through a share",
    "share_visitors": "distinct visitors through a share per day",
    "new_users": "new users brought by a share",
    # The seed's share-visit split by joinType (2.14): what the visit through a share led to.
    "share_visits_opened": "visits through a share that opened a group (joinType 1)",
    "share_visits_joined": "visits through a share that joined a group (joinType 2)",
    "share_visits_succeeded": "visits through a share that completed a group (joinType 3)",
    "groups_opened": "group buys opened",
    "group_joins": "group buys joined",
    "groups_succeeded": "group buys that succeeded",
    "tasks_completed": "campaign tasks completed",
    "task_completers": "distinct users completing a task per day",
}


@dataclass
class Effect:
    """What one event adds: `counts` to counters, and one to each `uniques` metric whose subject is new
    for the day (the subject is a user, a session or a brand)."""

    counts: dict[str, int] = field(default_factory=dict)
    uniques: list[tuple[str, str]] = field(default_factory=list)

    def add(self, metric: str, amount: int = 1) -> None:
        if amount:
            self.counts[metric] = self.counts.get(metric, 0) + amount

    def unique(self, metric: str, subject: str | None) -> None:
        if subject:
            self.uniques.append((metric, subject))

    def with_member_copy(self, member: bool) -> Effect:
        """For a member's event, every metric again under `member_`."""
        if member:
            self.counts.update({f"member_{k}": v for k, v in list(self.counts.items())})
            self.uniques += [(f"member_{k}", s) for k, s in list(self.uniques)]
        return self


@dataclass(frozen=True)
class Running:
    """A total its producer reports cumulatively per entity (a CPS order's refunds so far): only the increase
    over what was counted before moves `delta_metrics`, and `first_metrics` move on the entity's first report.
    The level counted so far is an item guarded in the same transaction."""

    key: str
    total: int
    delta_metrics: tuple[str, ...]
    first_metrics: tuple[str, ...]

    def counts(self, counts: dict[str, int], before: int) -> dict[str, int]:
        adjusted = {}
        for metric, amount in counts.items():
            if metric in self.delta_metrics:
                amount = max(0, self.total - before)
            elif metric in self.first_metrics and before:
                amount = 0
            if amount:
                adjusted[metric] = amount
        return adjusted


def person(event: m.Common) -> str | None:
    """Who a unique counts: the user, else the anonymous session; neither means no unique."""
    if event.wu_id:
        return f"u:{event.wu_id}"
    return f"s:{event.session_str}" if event.session_str else None


def _rule(counts: dict[str, str | int], unique: str | None = None, *, member_split: bool = False
          ) -> Callable[[m.Common], Effect]:
    """A rule from a table: metric → payload field to add (or a constant), the unique metric of the person,
    and whether a member's event counts again under `member_*`."""
    def rule(event: m.Common) -> Effect:
        effect = Effect()
        for metric, source in counts.items():
            effect.add(metric, source if isinstance(source, int) else getattr(event.payload, source))
        if unique:
            effect.unique(unique, person(event))
        return effect.with_member_copy(member_split and event.payload.member)

    return rule


def _order_paid(e: m.OrderPaid) -> Effect:
    p, who = e.payload, person(e)
    effect = _rule({"purchases": 1, "purchased_quantity": "quantity", "purchased_coupons": "coupons",
                    "purchase_amount": "amount"}, "buyers", member_split=True)(e)
    if p.via_share:
        effect.add("share_purchases")
        effect.unique("share_buyers", who)
    if p.flash_sale:
        for name, value in (("flash_purchases", 1), ("flash_quantity", p.quantity), ("flash_coupons", p.coupons)):
            effect.add(name, value)
        effect.unique("flash_buyers", who)
    return effect


def _vip_card(e: m.VipCardReceived) -> Effect:
    p = e.payload
    effect = _rule({"vip_cards": 1}, "vip_card_receivers", member_split=True)(e)
    effect.add("vip_renewals" if p.renewal else "vip_new_memberships")
    effect.add("vip_h5_activations", int(p.h5_activated))
    effect.add("vip_amount", p.amount)
    effect.add("member_vip_amount", p.amount if p.member else 0)
    return effect


def _redeemed(e: m.CouponRedeemed) -> Effect:
    effect = _rule({"redemptions": 1, "redemption_discount_amount": "discount_amount",
                    "redeemed_amount": "redeemed_amount"}, "redeemers")(e)
    effect.unique("redeemed_brands", f"b:{e.payload.brand_id}" if e.payload.brand_id else None)
    return effect.with_member_copy(e.payload.member)


def _share_visit(e: m.ShareVisit) -> Effect:
    effect = _rule({"share_visits": 1}, "share_visitors")(e)
    effect.add("new_users", int(e.payload.new_user))
    if e.payload.join_type:
        effect.add(f"share_visits_{e.payload.join_type}")
    return effect


RULES: dict[str, Callable] = {
    "page.visit": _rule({"visits": 1}, "visitors"),
    "page.share": _rule({"shares": 1}, "sharers"),
    "activity.visit": _rule({"visits": 1}, "visitors"),
    "activity.share": _rule({"shares": 1}, "sharers"),
    "activity.h5_visit": _rule({"h5_visits": 1}, "h5_visitors"),
    "activity.task_completed": _rule({"tasks_completed": 1}, "task_completers"),
    "order.paid": _order_paid,
    "order.payment_cancelled": _rule({"cancelled_payments": 1, "cancelled_amount": "amount"}),
    "order.refunded": _rule({"refunds": 1, "refunded_coupons": "coupons", "refund_amount": "amount"}, "refunders",
                            member_split=True),
    "vip_card.received": _vip_card,
    "red_packet.received": _rule({"red_packet_receipts": 1, "red_packets": "quantity"}, "red_packet_receivers"),
    "red_packet.expired": _rule({"expired_red_packets": "quantity"}, "expired_red_packet_holders",
                                member_split=True),
    "coupon.redeemed": _redeemed,
    "coupon.revoked": _rule({"revocations": 1, "revoked_amount": "amount"}, "revokers", member_split=True),
    "coupon.expired": _rule({"expired_coupons": 1, "expired_coupon_value": "value"}, member_split=True),
    "lottery.entered": _rule({"lottery_entries": 1}, "lottery_entrants"),
    "share.visit": _share_visit,
    "group_buy.opened": _rule({"groups_opened": 1}),
    "group_buy.joined": _rule({"group_joins": 1}),
    "group_buy.succeeded": _rule({"groups_succeeded": 1}),
}


def effect_of(event: m.Common) -> Effect:
    return RULES[event.event_type](event)  # type: ignore[attr-defined]
