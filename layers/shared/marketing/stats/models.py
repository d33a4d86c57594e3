"""Statistics events and API models.

An event's `event_type` is `<topic>.<action>` in lower case; every event carries the seed's common
parameters and a typed `payload` of its own type (a pydantic discriminated union on `event_type`).
"""

from __future__ import annotations

from datetime import UTC, date
from typing import Annotated, Any, Literal, get_args

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from marketing.core.clock import now
from marketing.core.types import Cents, Identifier

Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]
Count = Annotated[int, Field(ge=1, le=1_000_000)]
Quantity = Annotated[int, Field(ge=0, le=1_000_000)]
Amount = Annotated[Cents, Field(le=10**12)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- payloads, one per event type (several types share a shape) ---

class NoPayload(Strict):
    pass


class VisitPayload(Strict):
    user_record_id: Identifier | None = Field(default=None, description="the seed's userRecordId")


class H5VisitPayload(Strict):
    channel_code: Identifier | None = Field(
        default=None, description="older clients' channel code; the channel when channel_type is absent")


class OrderPaidPayload(Strict):
    order_id: Identifier
    quantity: Count = 1
    coupons: Quantity = Field(default=0, description="coupons the purchase granted")
    amount: Amount = Field(description="paid, in cents")
    member: bool = False
    via_share: bool = Field(default=False, description="the buyer joined through a share")
    flash_sale: bool = Field(default=False, description="bought at the flash-sale price")


class PaymentCancelledPayload(Strict):
    order_id: Identifier
    amount: Amount


class VipCardPayload(Strict):
    receive_id: Identifier
    member: bool = False
    renewal: bool = Field(default=False, description="a renewal; otherwise a new membership")
    h5_activated: bool = False
    amount: Amount = 0


class RedPacketReceivedPayload(Strict):
    receive_id: Identifier
    quantity: Count = 1


class RedemptionPayload(Strict):
    redemption_id: Identifier
    brand_id: Identifier | None = None
    discount_amount: Amount = 0
    redeemed_amount: Amount = 0
    member: bool = False


class RevocationPayload(Strict):
    revocation_id: Identifier
    amount: Amount = 0
    member: bool = False


class RefundPayload(Strict):
    refund_id: Identifier
    coupons: Quantity = 0
    amount: Amount
    member: bool = False


class CouponExpiredPayload(Strict):
    receive_id: Identifier
    value: Amount = 0
    member: bool = False


class RedPacketExpiredPayload(Strict):
    receive_id: Identifier
    quantity: Count = 1
    order_id: Identifier | None = None
    member: bool = False


class ShareVisitPayload(Strict):
    join_type: Literal["opened", "joined", "succeeded"] | None = Field(
        default=None, description="the seed's joinType (1 opened, 2 joined, 3 succeeded a group)")
    new_user: bool = Field(default=False, description="the visitor is a new user brought by the share")


class GroupBuyPayload(Strict):
    group_id: Identifier | None = None


class TaskCompletedPayload(Strict):
    task_id: Identifier
    completion_id: Identifier | None = None
    period: str | None = Field(default=None, max_length=32)


# --- the common parameters ---

class Common(Strict):
    event_id: Identifier = Field(description="stable: a repeat of the same fact carries the same id")
    session_str: Identifier | None = Field(default=None, description="sub-session; an anonymous visitor's id")
    parent_topic_type: Name | None = None
    parent_topic_id: Identifier | None = None
    topic_type: Name = Field(description="what is counted: page, activity, campaign, ...")
    topic_id: Identifier
    qr_code: Identifier | None = Field(default=None, description="channel tracking code")
    wu_id: Identifier | None = Field(default=None, description="the user")
    channel_type: Identifier | None = None
    ctime: AwareDatetime = Field(default_factory=now, description="when it happened; counted on its UTC day")
    deliver_at: AwareDatetime | None = Field(default=None, description="count it no earlier than this")

    @property
    def family(self) -> str:
        """The metric group: the `<topic>` part of the event type."""
        return self.event_type.split(".", 1)[0]  # type: ignore[attr-defined]

    @property
    def channel(self) -> str | None:
        return self.channel_type

    @property
    def day(self) -> str:
        return self.ctime.astimezone(UTC).date().isoformat()


# --- the event types, one per message of the seed's families ---

class PageVisit(Common):
    event_type: Literal["page.visit"]
    payload: VisitPayload = Field(default_factory=VisitPayload)


class PageShare(Common):
    event_type: Literal["page.share"]
    payload: NoPayload = Field(default_factory=NoPayload)


class ActivityVisit(Common):
    event_type: Literal["activity.visit"]
    payload: VisitPayload = Field(default_factory=VisitPayload)


class ActivityShare(Common):
    event_type: Literal["activity.share"]
    payload: NoPayload = Field(default_factory=NoPayload)


class ActivityH5Visit(Common):
    event_type: Literal["activity.h5_visit"]
    payload: H5VisitPayload = Field(default_factory=H5VisitPayload)

    @property
    def channel(self) -> str | None:
        return self.channel_type or self.payload.channel_code


class ActivityTaskCompleted(Common):
    event_type: Literal["activity.task_completed"]
    payload: TaskCompletedPayload


class OrderPaid(Common):
    event_type: Literal["order.paid"]
    payload: OrderPaidPayload


class OrderPaymentCancelled(Common):
    event_type: Literal["order.payment_cancelled"]
    payload: PaymentCancelledPayload


class OrderRefunded(Common):
    event_type: Literal["order.refunded"]
    payload: RefundPayload


class VipCardReceived(Common):
    event_type: Literal["vip_card.received"]
    payload: VipCardPayload


class RedPacketReceived(Common):
    event_type: Literal["red_packet.received"]
    payload: RedPacketReceivedPayload


class RedPacketExpired(Common):
    event_type: Literal["red_packet.expired"]
    payload: RedPacketExpiredPayload


class CouponRedeemed(Common):
    event_type: Literal["coupon.redeemed"]
    payload: RedemptionPayload


class CouponRevoked(Common):
    event_type: Literal["coupon.revoked"]
    payload: RevocationPayload


class CouponExpired(Common):
    event_type: Literal["coupon.expired"]
    payload: CouponExpiredPayload


class LotteryEntered(Common):
    event_type: Literal["lottery.entered"]
    payload: NoPayload = Field(default_factory=NoPayload)


class ShareVisit(Common):
    event_type: Literal["share.visit"]
    payload: ShareVisitPayload = Field(default_factory=ShareVisitPayload)


class GroupBuyOpened(Common):
    event_type: Literal["group_buy.opened"]
    payload: GroupBuyPayload = Field(default_factory=GroupBuyPayload)


class GroupBuyJoined(Common):
    event_type: Literal["group_buy.joined"]
    payload: GroupBuyPayload = Field(default_factory=GroupBuyPayload)


class GroupBuySucceeded(Common):
    event_type: Literal["group_buy.succeeded"]
    payload: GroupBuyPayload = Field(default_factory=GroupBuyPayload)


Event = Annotated[
    PageVisit | PageShare | ActivityVisit | ActivityShare | ActivityH5Visit | ActivityTaskCompleted
    | OrderPaid | OrderPaymentCancelled | OrderRefunded | VipCardReceived | RedPacketReceived | RedPacketExpired
    | CouponRedeemed | CouponRevoked | CouponExpired | LotteryEntered | ShareVisit
    | GroupBuyOpened | GroupBuyJoined | GroupBuySucceeded,
    Field(discriminator="event_type"),
]
EVENT_ADAPTER: TypeAdapter[Common] = TypeAdapter(Event)
# Read off the union's members (building the union's JSON schema here cost every cold start ~25 ms).
EVENT_TYPES: tuple[str, ...] = tuple(sorted(
    get_args(member.model_fields["event_type"].annotation)[0] for member in get_args(get_args(Event)[0])))
# What an end user's own app may report about itself; money, coupons and outcomes come from back ends.
USER_EVENT_TYPES = frozenset({"page.visit", "page.share", "activity.visit", "activity.share", "activity.h5_visit",
                              "share.visit"})


class QueuedEvent(BaseModel):
    """The body of an intake message on the stats queue: the tenant and app come from the caller's claims."""

    tenant_id: Identifier
    app_id: Identifier
    sender: str | None = Field(default=None, description="the user who sent it, for a user's own event")
    event: Event


# --- API models ---

class EventBatchIn(BaseModel):
    events: list[dict[str, Any]] = Field(min_length=1, max_length=100,
                                         description="up to 100 events, each validated on its own")


class FieldError(BaseModel):
    field: str
    message: str


class EventResult(BaseModel):
    index: int
    event_id: str | None = None
    accepted: bool
    delivery: Literal["now", "delayed", "scheduled"] | None = None
    errors: list[FieldError] = []


class EventBatchResult(BaseModel):
    accepted: int
    rejected: int
    results: list[EventResult]


class DayStats(BaseModel):
    date: date
    metrics: dict[str, int]


class StatsReport(BaseModel):
    topic_type: str
    topic_id: str
    channel_type: str | None = None
    from_: date = Field(serialization_alias="from")
    to: date
    days: list[DayStats]
    totals: dict[str, int] = Field(description="sums over the range; uniques are sums of daily uniques")


class OperationRecord(BaseModel):
    event_id: str
    origin: Literal["api", "user", "bus"]
    sender: str | None = Field(default=None, description="the user, for an event a user sent")
    event_type: str
    day: date
    channel: str | None = None
    processed_at: str
    event: dict[str, Any]


class OperationRecordPage(BaseModel):
    items: list[OperationRecord]
    next_token: str | None = None
