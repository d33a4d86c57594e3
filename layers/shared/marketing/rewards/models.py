"""API models of the rewards capability: rewards with typed content and configurations, stock, reservations,
grants, redeem-code batches and codes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, HttpUrl, field_validator, model_validator

from marketing.core.clock import iso
from marketing.core.types import Cents, Identifier, UtcTime

Name = Annotated[str, Field(min_length=1, max_length=128)]
Quantity = Annotated[int, Field(ge=1, le=1000)]
Timestamp = Annotated[UtcTime, Field(description="UTC ISO 8601 with an offset, e.g. 2026-01-01T00:00:00Z")]


class RewardType(StrEnum):
    COUPON = "COUPON"
    POINTS = "POINTS"
    REDEEM_CODE = "REDEEM_CODE"
    VIP_CARD = "VIP_CARD"
    SUBSCRIPTION = "SUBSCRIPTION"
    BUNDLE = "BUNDLE"


# --- content, typed by reward type (the discriminator is the reward type itself) ---
class CouponContent(BaseModel):
    type: Literal["COUPON"] = "COUPON"
    discount_type: Literal["AMOUNT", "PERCENT"]
    discount_value: int = Field(ge=1, description="cents for AMOUNT, percent (1-100) for PERCENT")
    min_order_cents: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _percent(self) -> CouponContent:
        if self.discount_type == "PERCENT" and self.discount_value > 100:
            raise ValueError("a PERCENT discount_value is at most 100")
        return self


class PointsContent(BaseModel):
    type: Literal["POINTS"] = "POINTS"
    amount: int = Field(ge=1)


class RedeemCodeContent(BaseModel):
    type: Literal["REDEEM_CODE"] = "REDEEM_CODE"
    description: str | None = Field(default=None, max_length=500)


class VipCardContent(BaseModel):
    type: Literal["VIP_CARD"] = "VIP_CARD"
    days: int = Field(ge=1, le=3660)


class SubscriptionContent(BaseModel):
    type: Literal["SUBSCRIPTION"] = "SUBSCRIPTION"
    plan: Identifier
    days: int = Field(ge=1, le=3660)


# Each part adds two actions (its stock shard, its reward's version) to the one transaction that reserves or
# redeems a bundle: 20 parts keep that transaction under 50 of DynamoDB's 100 actions.
BUNDLE_MAX_PARTS = 20


class BundlePart(BaseModel):
    reward_id: Identifier
    quantity: int = Field(default=1, ge=1, le=100)


class BundleContent(BaseModel):
    """A coupon pack (the redeem-code article's cdk_kind 3): other rewards with quantities, reserved, granted,
    redeemed and rolled back together."""

    type: Literal["BUNDLE"] = "BUNDLE"
    items: list[BundlePart] = Field(min_length=1, max_length=BUNDLE_MAX_PARTS)

    @field_validator("items")
    @classmethod
    def _distinct(cls, items: list[BundlePart]) -> list[BundlePart]:
        if len({i.reward_id for i in items}) != len(items):
            raise ValueError("name each reward once (give it a quantity instead)")
        return items


Content = Annotated[CouponContent | PointsContent | RedeemCodeContent | VipCardContent | SubscriptionContent
                    | BundleContent, Field(discriminator="type")]


# --- the seed's generator / validator / distributor configurations, typed ---
class RedeemCodeGenerator(BaseModel):
    type: Literal["redeem_code"]
    length: int = Field(default=12, ge=8, le=20)
    prefix: str | None = Field(default=None, pattern=r"^[A-Z0-9]{1,8}$")


class CouponGenerator(BaseModel):
    type: Literal["coupon"]
    template_id: Identifier


class PointsGenerator(BaseModel):
    type: Literal["points"]
    multiplier: int = Field(default=1, ge=1, le=1000)


class NoGenerator(BaseModel):
    type: Literal["none"]


GeneratorConfig = Annotated[RedeemCodeGenerator | CouponGenerator | PointsGenerator | NoGenerator,
                            Field(discriminator="type")]


class TimeWindowValidator(BaseModel):
    type: Literal["time_window"]
    start: Timestamp | None = None
    end: Timestamp | None = None


class UserValidator(BaseModel):
    type: Literal["user"]
    allow: list[Identifier] = Field(default_factory=list, max_length=1000)
    deny: list[Identifier] = Field(default_factory=list, max_length=1000)


class FrequencyValidator(BaseModel):
    type: Literal["frequency"]
    max_per_user: int = Field(ge=1)
    period: Literal["DAY", "WEEK", "MONTH", "TOTAL"] = "TOTAL"


class StockValidator(BaseModel):
    type: Literal["stock"]


ValidatorConfig = Annotated[TimeWindowValidator | UserValidator | FrequencyValidator | StockValidator,
                            Field(discriminator="type")]


class AutoDistributor(BaseModel):
    type: Literal["auto"]


class WebhookDistributor(BaseModel):
    type: Literal["webhook"]
    url: HttpUrl
    secret_name: Identifier | None = Field(
        default=None, description="the name of one of the app's own secrets (never its value): the secret "
                                  "marketing/{stage}/tenants/{tenant_id}/apps/{app_id}/{secret_name} in Secrets "
                                  "Manager")


class EmailDistributor(BaseModel):
    type: Literal["email"]
    template: Identifier


class SmsDistributor(BaseModel):
    type: Literal["sms"]
    template: Identifier


DistributorConfig = Annotated[AutoDistributor | WebhookDistributor | EmailDistributor | SmsDistributor,
                              Field(discriminator="type")]


class RewardFields(BaseModel):
    """What an operator may set and later change (stock moves through its own endpoint)."""

    name: Name
    reward_type: RewardType
    kind_no: str | None = Field(default=None, max_length=32, description='a finer kind, e.g. "VIP", "SVIP"')
    content: Content
    per_user_limit: int | None = Field(default=None, ge=1, description="null: no limit per user")
    valid_from: Timestamp | None = None
    valid_until: Timestamp | None = None
    valid_days: int | None = Field(default=None, ge=1, le=3660, description="validity after the grant")
    generator: GeneratorConfig = Field(default_factory=lambda: NoGenerator(type="none"))
    validators: list[ValidatorConfig] = Field(default_factory=list, max_length=20)
    distributor: DistributorConfig = Field(default_factory=lambda: AutoDistributor(type="auto"))

    @model_validator(mode="before")
    @classmethod
    def _content_type_from_reward_type(cls, data: Any) -> Any:
        # Clients need not repeat the type inside `content`: it is the reward's type.
        if isinstance(data, dict) and isinstance(data.get("content"), dict) and "type" not in data["content"]:
            data = {**data, "content": {**data["content"], "type": data.get("reward_type")}}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> RewardFields:
        if self.content.type != self.reward_type:
            raise ValueError("content does not match reward_type")
        if self.valid_days is not None and (self.valid_from or self.valid_until):
            raise ValueError("give valid_from/valid_until or valid_days, not both")
        if self.valid_from and self.valid_until and self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be after valid_from")
        return self

    def stored(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        for name in ("valid_from", "valid_until"):
            value = getattr(self, name)
            data[name] = iso(value) if value else None
        return data


class RewardIn(RewardFields):
    total_stock: int | None = Field(default=None, ge=0, le=10**9, description="null: unlimited")
    shards: int = Field(default=1, ge=1, le=64, description="stock shards for flash sales (docs/rewards.md)")


class Stock(BaseModel):
    total: int | None = Field(description="null: unlimited")
    available: int | None = Field(description="null: unlimited")
    reserved: int
    issued: int


class Reward(RewardFields):
    reward_id: str
    total_stock: int | None
    shards: int
    stock: Stock
    version: int
    created_at: str
    updated_at: str


class RewardPage(BaseModel):
    items: list[Reward]
    next_token: str | None = None


class StockChange(BaseModel):
    delta: int = Field(description="positive tops up, negative reduces (never below reserved + issued)")

    @field_validator("delta")
    @classmethod
    def _nonzero(cls, value: int) -> int:
        if value == 0 or abs(value) > 10**9:
            raise ValueError("delta must be non-zero and at most 10^9 in size")
        return value


# --- inventory ---
class ReservationStatus(StrEnum):
    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"
    ROLLED_BACK = "ROLLED_BACK"


class ReserveIn(BaseModel):
    reward_id: Identifier
    user_id: Identifier
    quantity: Quantity = 1
    expire_minutes: int = Field(default=15, ge=1, le=7 * 24 * 60)
    reservation_id: Identifier | None = Field(default=None, description="yours, to make a retry safe")


class ReservedPart(BaseModel):
    reward_id: str
    shard: int
    quantity: int


class Reservation(BaseModel):
    reservation_id: str
    reward_id: str
    user_id: str
    quantity: int
    status: ReservationStatus
    shard: int
    parts: list[ReservedPart] = Field(default_factory=list, description="a bundle's parts, reserved with it")
    expires_at: str
    created_at: str
    updated_at: str


class ReservationPage(BaseModel):
    items: list[Reservation]
    next_token: str | None = None


# --- grants ---
class GrantStatus(StrEnum):
    PENDING = "PENDING"
    RESERVED = "RESERVED"
    GENERATED = "GENERATED"
    DISTRIBUTED = "DISTRIBUTED"
    FAILED = "FAILED"
    ROLLED_BACK = "ROLLED_BACK"
    USED = "USED"
    EXPIRED = "EXPIRED"


# Legal predecessors of each status; ROLLED_BACK goes through the rollback, which returns stock.
GRANT_PREDECESSORS: dict[GrantStatus, set[GrantStatus]] = {
    GrantStatus.PENDING: set(),
    GrantStatus.RESERVED: {GrantStatus.PENDING},
    GrantStatus.GENERATED: {GrantStatus.PENDING, GrantStatus.RESERVED},
    GrantStatus.DISTRIBUTED: {GrantStatus.PENDING, GrantStatus.RESERVED, GrantStatus.GENERATED},
    GrantStatus.FAILED: {GrantStatus.PENDING, GrantStatus.RESERVED, GrantStatus.GENERATED},
    GrantStatus.USED: {GrantStatus.DISTRIBUTED},
    GrantStatus.EXPIRED: {GrantStatus.GENERATED, GrantStatus.DISTRIBUTED},
    GrantStatus.ROLLED_BACK: {GrantStatus.RESERVED, GrantStatus.GENERATED, GrantStatus.DISTRIBUTED,
                              GrantStatus.USED},
}


class Grant(BaseModel):
    grant_id: str
    reward_id: str
    user_id: str
    status: GrantStatus
    quantity: int = 1
    task_id: str | None = None
    campaign_id: str | None = None
    reservation_id: str | None = None
    batch_id: str | None = Field(default=None, description="the redeem-code batch of a redeemed code")
    grant_batch_id: str | None = Field(default=None, description="the batch grant that made it")
    code_suffix: str | None = None
    reason: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    valid_from: str | None = None
    valid_until: str | None = None
    order_cents: int | None = Field(default=None, description="the order a redemption was checked against")
    discount_cents: int | None = Field(default=None, description="the discount a redemption gave that order")
    created_at: str
    updated_at: str


class GrantPage(BaseModel):
    items: list[Grant]
    next_token: str | None = None


class GrantStatusIn(BaseModel):
    status: Literal["RESERVED", "GENERATED", "DISTRIBUTED", "FAILED", "USED", "EXPIRED"]
    reason: str | None = Field(default=None, max_length=500)


# --- redeem codes ---
class BatchStatus(StrEnum):
    GENERATING = "GENERATING"
    DONE = "DONE"


class CodeStatus(StrEnum):
    UNUSED = "UNUSED"
    USED = "USED"
    REVOKED = "REVOKED"


SYNC_BATCH_MAX = 1000
BATCH_MAX = 100_000


class BatchIn(BaseModel):
    reward_id: Identifier
    count: int = Field(ge=1, le=BATCH_MAX, description=f"up to {SYNC_BATCH_MAX} answered at once (201)")
    prefix: str | None = Field(default=None, pattern=r"^[A-Z0-9]{1,8}$")
    length: int = Field(default=12, ge=8, le=20, description="random characters, before the check character")
    valid_from: Timestamp | None = None
    expire_time: Timestamp | None = None
    remark: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _window(self) -> BatchIn:
        if self.valid_from and self.expire_time and self.expire_time <= self.valid_from:
            raise ValueError("expire_time must be after valid_from")
        return self


class Batch(BaseModel):
    batch_id: str
    campaign_id: str
    reward_id: str
    total: int
    generated: int
    exported: int
    status: BatchStatus
    prefix: str | None = None
    length: int
    valid_from: str | None = None
    expire_time: str | None = None
    remark: str | None = None
    created_by: str
    created_at: str


class CodeView(BaseModel):
    """A code as listings show it: masked to its last 4 characters."""

    masked_code: str
    batch_id: str | None = Field(default=None, description="null for a code issued to a grant without a batch")
    reward_id: str
    status: CodeStatus
    exported: bool
    assigned_to: str | None = None
    used_by: str | None = None
    used_at: str | None = None
    valid_from: str | None = None
    expire_time: str | None = None


class CodePage(BaseModel):
    items: list[CodeView]
    next_token: str | None = None


class ExportIn(BaseModel):
    format: Literal["csv", "xlsx"] = "csv"
    count: int | None = Field(default=None, ge=1, le=BATCH_MAX, description="default: every code not exported")


class Export(BaseModel):
    export_id: str
    batch_id: str
    format: str
    count: int
    url: str = Field(description="pre-signed, valid for 15 minutes")
    exported_by: str
    exported_at: str


class AssignIn(BaseModel):
    user_id: Identifier


class Order(BaseModel):
    amount_cents: Cents = Field(le=10**12)
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$", description="ISO 4217, e.g. EUR")


class RedeemIn(BaseModel):
    code: str = Field(min_length=4, max_length=40)
    user_id: Identifier
    order: Order | None = Field(default=None, description="the order the code is for: its minimum is checked and "
                                                          "the discount computed")


class RewardSummary(BaseModel):
    reward_id: str
    name: str
    reward_type: RewardType
    content: dict[str, Any]


class Validation(BaseModel):
    """What redeeming the code now would do; nothing is consumed."""

    valid: bool
    reason: str | None = Field(default=None, description="the error code redemption would answer")
    discount_cents: int
    reward: RewardSummary | None = None


class WalletItem(BaseModel):
    """One grant as its user sees it: the full code for its owner, masked for staff."""

    grant_id: str
    reward_id: str
    reward_name: str | None = None
    reward_type: RewardType | None = None
    status: GrantStatus
    source: Literal["task", "redemption", "other"]
    valid_from: str | None = None
    valid_until: str | None = None
    issued: dict[str, Any] = Field(description="points, coupon terms or card days")
    code: str | None = None
    task_id: str | None = None
    campaign_id: str | None = None
    discount_cents: int | None = None
    created_at: str
    updated_at: str


class WalletPage(BaseModel):
    items: list[WalletItem]
    next_token: str | None = None


class IssuedCode(BaseModel):
    code: str
    batch_id: str | None
    valid_until: str | None


def to_iso(value: datetime | None) -> str | None:
    return iso(value) if value else None


class AssignedCode(CodeView):
    """An assignment answers the full code: with export, the only ways a full code leaves."""

    code: str


class BatchCreated(BaseModel):
    batch_id: str
    total: int
    status: BatchStatus
    generated: int
