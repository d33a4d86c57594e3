"""Statistics events and API models.

An event's `event_type` is `<topic>.<action>` in lower case; every event carries the seed's common
parameters and a typed `payload` of its own type (a pydantic discriminated union on `event_type`).

The seed's wire format is read as it is (docs/stats.md, "The seed's messages"): every field also under its
camelCase name (`sessionStr`, `topicId`, ...) and the seed's own names where they differ (`recordId`,
`offId`, `redPackNum`, ...), ids as integers, the seed's defaults for "none" (`wuId` 0, empty strings), the
message's own fields beside the common parameters or under `data`, and the seed's exchange as the type.
Validated events, records and answers use our names only.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date
from typing import Annotated, Any, Literal, Union, get_args

from pydantic import (
    AliasChoices,
    AliasGenerator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    model_validator,
)
from pydantic.alias_generators import to_camel

from marketing.core.clock import now
from marketing.core.types import AnyId, Cents, Identifier

Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]
Count = Annotated[int, Field(ge=1, le=1_000_000)]
Quantity = Annotated[int, Field(ge=0, le=1_000_000)]
Amount = Annotated[Cents, Field(le=10**12)]


def _spelled(*names: str) -> AliasChoices:
    """Our name, its camelCase spelling, and the seed's own names for the field."""
    return AliasChoices(names[0], to_camel(names[0]), *names[1:])


def _unset(value: Any) -> Any:
    """The seed's defaults for "none": an empty string, and 0 for an integer id (`wuId`)."""
    return None if value == "" or (type(value) is int and value == 0) else value


OptionalId = Annotated[AnyId | None, BeforeValidator(_unset)]
OptionalName = Annotated[Name | None, BeforeValidator(_unset)]
# The seed's joinType: 1 opened a group, 2 joined one, 3 the group succeeded.
JOIN_TYPES = {1: "opened", 2: "joined", 3: "succeeded"}
JoinType = Annotated[Literal["opened", "joined", "succeeded"],
                     BeforeValidator(lambda v: JOIN_TYPES.get(v, v) if type(v) is int else v)]


class Strict(BaseModel):
    # Every field is read under our name or its camelCase spelling; dumps (records, answers) use ours.
    model_config = ConfigDict(extra="forbid", alias_generator=AliasGenerator(validation_alias=_spelled))


# --- payloads, one per event type (several types share a shape) ---

class NoPayload(Strict):
    pass


class VisitPayload(Strict):
    user_record_id: OptionalId = Field(default=None, description="the seed's userRecordId")


class H5VisitPayload(Strict):
    channel_code: OptionalId = Field(
        default=None, description="older clients' channel code; the channel when channel_type is absent")


class OrderPaidPayload(Strict):
    order_id: AnyId
    quantity: Count = 1
    coupons: Quantity = Field(default=0, description="coupons the purchase granted")
    amount: Amount = Field(description="paid, in cents")
    member: bool = False
    via_share: bool = Field(default=False, description="the buyer joined through a share")
    flash_sale: bool = Field(default=False, description="bought at the flash-sale price")


class PaymentCancelledPayload(Strict):
    order_id: AnyId
    amount: Amount


class VipCardPayload(Strict):
    receive_id: AnyId
    member: bool = False
    renewal: bool = Field(default=False, description="a renewal; otherwise a new membership")
    h5_activated: bool = False
    amount: Amount = 0


class RedPacketReceivedPayload(Strict):
    receive_id: AnyId = Field(validation_alias=_spelled("receive_id", "actReceiveId"))
    quantity: Count = 1


class RedemptionPayload(Strict):
    redemption_id: AnyId = Field(validation_alias=_spelled("redemption_id", "offId"))
    brand_id: OptionalId = None
    discount_amount: Amount = 0
    redeemed_amount: Amount = 0
    member: bool = False


class RevocationPayload(Strict):
    revocation_id: AnyId = Field(validation_alias=_spelled("revocation_id", "revokeId"))
    amount: Amount = 0
    member: bool = False


class RefundPayload(Strict):
    refund_id: AnyId
    coupons: Quantity = 0
    amount: Amount
    member: bool = False


class CouponExpiredPayload(Strict):
    receive_id: AnyId
    value: Amount = 0
    member: bool = False


class RedPacketExpiredPayload(Strict):
    receive_id: AnyId = Field(validation_alias=_spelled("receive_id", "actReceiveId"))
    quantity: Count = Field(default=1, validation_alias=_spelled("quantity", "redPackNum"))
    order_id: OptionalId = None
    member: bool = False


class ShareVisitPayload(Strict):
    join_type: JoinType | None = Field(
        default=None, description="the seed's joinType (1 opened, 2 joined, 3 succeeded a group)")
    new_user: bool = Field(default=False, description="the visitor is a new user brought by the share")


class GroupBuyPayload(Strict):
    group_id: OptionalId = None
    join_type: JoinType | None = Field(default=None, description="the seed's joinType, kept in the record")


class TaskCompletedPayload(Strict):
    task_id: AnyId
    completion_id: OptionalId = None
    period: str | None = Field(default=None, max_length=32)


# --- the common parameters ---

class Common(Strict):
    event_id: AnyId = Field(validation_alias=_spelled("event_id", "recordId"),
                            description="stable: a repeat of the same fact carries the same id")
    session_str: OptionalId = Field(default=None, description="sub-session; an anonymous visitor's id")
    parent_topic_type: OptionalName = None
    parent_topic_id: OptionalId = None
    topic_type: Name = Field(description="what is counted: page, activity, campaign, ...")
    topic_id: AnyId
    qr_code: OptionalId = Field(default=None, description="channel tracking code")
    wu_id: OptionalId = Field(default=None, description="the user")
    channel_type: OptionalId = None
    ctime: AwareDatetime = Field(default_factory=now, description="when it happened; counted on its UTC day")
    deliver_at: AwareDatetime | None = Field(default=None, description="count it no earlier than this")

    @model_validator(mode="before")
    @classmethod
    def _seed_layout(cls, data: Any) -> Any:
        """The seed's message as sent: its exchange names the type, and its own fields (`userRecordId`,
        `joinType`, ...) sit beside the common parameters; they are read as the payload."""
        if not isinstance(data, dict):
            return data
        if not any(k in data for k in _accepted(cls.model_fields["event_id"].validation_alias)):
            # The seed's messages without a record id: the message itself, digested, is its id, so the
            # same message delivered again counts once (its ctime tells two facts apart).
            data = data | {"event_id": "d:" + hashlib.sha256(
                json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()}
        data = {k: v for k, v in data.items() if k not in _TYPE_KEYS} | {"event_type": event_type_of(data)}
        if any(k in data for k in _accepted(cls.model_fields["payload"].validation_alias)):
            return data
        own = _accepted_fields(cls.model_fields["payload"].annotation)
        payload = {k: data.pop(k) for k in list(data) if k in own}
        return data | {"payload": payload} if payload else data

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


_PAYLOAD = AliasChoices("payload", "data")  # the seed's messages carry their own fields under `data`


def _accepted(alias: Any) -> list[str]:
    return [c for c in alias.choices if isinstance(c, str)] if isinstance(alias, AliasChoices) else [alias]


def _accepted_fields(model: Any) -> set[str]:
    """Every name a payload model reads (ours, camelCase and the seed's)."""
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return set()
    return {name for f in model.model_fields.values() for name in _accepted(f.validation_alias)}


# The seed's exchanges (one per message), read as our event types; 2.15's joinType picks the group buy step.
SPEC_EXCHANGES = {
    "ex.data.load.visit": "page.visit", "ex.data.load.share": "page.share",
    "ex.data.load.act.date.visit": "activity.visit", "ex.data.load.act.date.share": "activity.share",
    "ex.h5.activity.visit": "activity.h5_visit", "ex.order.pay.success": "order.paid",
    "ex.order.pay.cancel": "order.payment_cancelled", "ex.vip.card.received": "vip_card.received",
    "ex.cash.voucher.receive.success": "red_packet.received", "ex.card.off": "coupon.redeemed",
    "ex.card.off.revoke": "coupon.revoked", "ex.order.activity.refund.success": "order.refunded",
    "ex.card.code.overdue": "coupon.expired", "ex.cash.voucher.expire": "red_packet.expired",
    "ex.act.join.lottery": "lottery.entered", "ex.visit.by.share": "share.visit",
}
GROUP_JOIN_EXCHANGE = "ex.act.group.join"
_TYPE_KEYS = ("event_type", "eventType", "exchange")


def event_type_of(raw: Any) -> Any:
    """The event type a message names: ours under `event_type` (or `eventType`), or the seed's exchange."""
    if not isinstance(raw, dict):
        return getattr(raw, "event_type", None)
    name = next((raw[k] for k in _TYPE_KEYS if k in raw), None)
    if name == GROUP_JOIN_EXCHANGE:
        payload = raw.get("payload", raw.get("data"))
        join = raw.get("joinType", raw.get("join_type", payload.get("joinType") if isinstance(payload, dict) else None))
        return f"group_buy.{JOIN_TYPES.get(join, 'unknown')}" if type(join) is int else name
    return SPEC_EXCHANGES.get(name, name) if isinstance(name, str) else name


# --- the event types, one per message of the seed's families ---

class PageVisit(Common):
    event_type: Literal["page.visit"]
    payload: VisitPayload = Field(default_factory=VisitPayload, validation_alias=_PAYLOAD)


class PageShare(Common):
    event_type: Literal["page.share"]
    payload: NoPayload = Field(default_factory=NoPayload, validation_alias=_PAYLOAD)


class ActivityVisit(Common):
    event_type: Literal["activity.visit"]
    payload: VisitPayload = Field(default_factory=VisitPayload, validation_alias=_PAYLOAD)


class ActivityShare(Common):
    event_type: Literal["activity.share"]
    payload: NoPayload = Field(default_factory=NoPayload, validation_alias=_PAYLOAD)


class ActivityH5Visit(Common):
    event_type: Literal["activity.h5_visit"]
    payload: H5VisitPayload = Field(default_factory=H5VisitPayload, validation_alias=_PAYLOAD)

    @property
    def channel(self) -> str | None:
        return self.channel_type or self.payload.channel_code


class ActivityTaskCompleted(Common):
    event_type: Literal["activity.task_completed"]
    payload: TaskCompletedPayload = Field(validation_alias=_PAYLOAD)


class OrderPaid(Common):
    event_type: Literal["order.paid"]
    payload: OrderPaidPayload = Field(validation_alias=_PAYLOAD)


class OrderPaymentCancelled(Common):
    event_type: Literal["order.payment_cancelled"]
    payload: PaymentCancelledPayload = Field(validation_alias=_PAYLOAD)


class OrderRefunded(Common):
    event_type: Literal["order.refunded"]
    payload: RefundPayload = Field(validation_alias=_PAYLOAD)


class VipCardReceived(Common):
    event_type: Literal["vip_card.received"]
    payload: VipCardPayload = Field(validation_alias=_PAYLOAD)


class RedPacketReceived(Common):
    event_type: Literal["red_packet.received"]
    payload: RedPacketReceivedPayload = Field(validation_alias=_PAYLOAD)


class RedPacketExpired(Common):
    event_type: Literal["red_packet.expired"]
    payload: RedPacketExpiredPayload = Field(validation_alias=_PAYLOAD)


class CouponRedeemed(Common):
    event_type: Literal["coupon.redeemed"]
    payload: RedemptionPayload = Field(validation_alias=_PAYLOAD)


class CouponRevoked(Common):
    event_type: Literal["coupon.revoked"]
    payload: RevocationPayload = Field(validation_alias=_PAYLOAD)


class CouponExpired(Common):
    event_type: Literal["coupon.expired"]
    payload: CouponExpiredPayload = Field(validation_alias=_PAYLOAD)


class LotteryEntered(Common):
    event_type: Literal["lottery.entered"]
    payload: NoPayload = Field(default_factory=NoPayload, validation_alias=_PAYLOAD)


class ShareVisit(Common):
    event_type: Literal["share.visit"]
    payload: ShareVisitPayload = Field(default_factory=ShareVisitPayload, validation_alias=_PAYLOAD)


class GroupBuyOpened(Common):
    event_type: Literal["group_buy.opened"]
    payload: GroupBuyPayload = Field(default_factory=GroupBuyPayload, validation_alias=_PAYLOAD)


class GroupBuyJoined(Common):
    event_type: Literal["group_buy.joined"]
    payload: GroupBuyPayload = Field(default_factory=GroupBuyPayload, validation_alias=_PAYLOAD)


class GroupBuySucceeded(Common):
    event_type: Literal["group_buy.succeeded"]
    payload: GroupBuyPayload = Field(default_factory=GroupBuyPayload, validation_alias=_PAYLOAD)


EVENT_MODELS: tuple[type[Common], ...] = (
    PageVisit, PageShare, ActivityVisit, ActivityShare, ActivityH5Visit, ActivityTaskCompleted,
    OrderPaid, OrderPaymentCancelled, OrderRefunded, VipCardReceived, RedPacketReceived, RedPacketExpired,
    CouponRedeemed, CouponRevoked, CouponExpired, LotteryEntered, ShareVisit,
    GroupBuyOpened, GroupBuyJoined, GroupBuySucceeded)
# Read off the members (building the union's JSON schema here cost every cold start ~25 ms).
EVENT_TYPES: tuple[str, ...] = tuple(sorted(
    get_args(member.model_fields["event_type"].annotation)[0] for member in EVENT_MODELS))
# A union tagged by the type the message names (ours, or the seed's exchange: `event_type_of`).
Event = Annotated[
    Union[tuple(Annotated[member, Tag(get_args(member.model_fields["event_type"].annotation)[0])]  # noqa: UP007
                for member in EVENT_MODELS)],
    Discriminator(event_type_of),
]
EVENT_ADAPTER: TypeAdapter[Common] = TypeAdapter(Event)
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
