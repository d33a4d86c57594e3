"""API models of the CPS capability."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from marketing.core.types import AnyId, Cents, Identifier, UtcTime
from marketing.cps.commission import BASIS_POINTS, OrderStatus
from marketing.tracking.models import Promcode

MAX_LEVELS = 10  # a transaction holds an order's entries for every level: 3 * (MAX_LEVELS + 1) + 1 actions

Platform = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z0-9_]+$",
                                description="the CPS platform's key, e.g. meituan, eleme, fake")]
Level = Annotated[int, Field(ge=1, le=MAX_LEVELS)]
EntryStatus = Literal["pending", "available", "reversed", "withheld"]
AffiliateStatus = Literal["ACTIVE", "FROZEN"]


class AffiliateIn(BaseModel):
    user_id: AnyId
    invite_code: Promcode | None = Field(default=None, description="the inviter's invite code, if any")


class Affiliate(BaseModel):
    user_id: str
    inviter_id: str | None = None
    invite_code: str = Field(description="the tracking capability's new-user promo code of this user")
    invite_url: str = Field(description="the H5 invite link carrying the invite code")
    qrcode_svg: str = Field(description="a QR code of the invite link (SVG)")
    pid: str = Field(description="the CPS promotion id this distributor's links carry")
    created_at: str
    status: AffiliateStatus = Field(default="ACTIVE", description="FROZEN: earns nothing, invites nobody")
    status_reason: str | None = None
    status_changed_at: str | None = None


class AffiliateStatusIn(BaseModel):
    status: AffiliateStatus
    reason: Annotated[str, Field(min_length=1, max_length=512)]


class PendingReversalIn(BaseModel):
    reason: Annotated[str, Field(min_length=1, max_length=512)]


class PendingReversal(BaseModel):
    user_id: str
    orders: int = Field(description="orders whose pending share this call reversed (0 on a repeat)")
    amount: int = Field(description="cents reversed by this call")


class Relation(BaseModel):
    user_id: str
    level: int
    created_at: str


class RelationPage(BaseModel):
    items: list[Relation]
    next_token: str | None = None


class Upline(BaseModel):
    user_id: str
    items: list[Relation] = Field(description="level 1 is the inviter, level 2 the inviter's inviter, ...")


class SettingsIn(BaseModel):
    levels: int = Field(default=2, ge=0, le=MAX_LEVELS, description="inviter levels that earn (N)")
    rates_bp: list[Annotated[int, Field(ge=0, le=BASIS_POINTS)]] = Field(
        default=[6000, 2000, 1000], description="share of the platform commission per level 0..N, in basis points")
    hold_days: int = Field(default=7, ge=0, le=365, description="days between settlement and availability")

    @model_validator(mode="after")
    def _rates_fit(self) -> SettingsIn:
        if len(self.rates_bp) != self.levels + 1:
            raise ValueError("rates_bp needs one rate per level 0..levels")
        if sum(self.rates_bp) > BASIS_POINTS:
            raise ValueError("rates_bp add up to more than 100%")
        return self


class Settings(SettingsIn):
    updated_at: str | None = None


class OrderIn(BaseModel):
    """An order as a platform reports it (webhook body, or one order of a pull), amounts in cents."""

    model_config = ConfigDict(extra="ignore")

    order_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
    status: OrderStatus
    pid: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
    pay_price: Cents
    commission: Cents = Field(description="the platform's commission to us, cents")
    refund_price: Cents = 0
    title: Annotated[str, Field(max_length=256)] = ""
    paid_at: UtcTime | None = None
    settled_at: UtcTime | None = Field(default=None, description="when the platform settled the order")
    buyer_id: Identifier | None = None

    @model_validator(mode="after")
    def _refund_fits(self) -> OrderIn:
        if self.refund_price > self.pay_price:
            raise ValueError("refund_price is more than pay_price")
        return self


class OrderState(BaseModel):
    platform: str
    order_id: str
    status: OrderStatus
    pid: str
    promoter_id: str | None = None
    buyer_id: str | None = None
    pay_price: int
    commission: int
    refund_price: int = 0
    title: str = ""
    paid_at: str | None = None
    shares: list[dict] = Field(default_factory=list, description="[{level, user_id, amount}] fixed at payment")
    withheld: list[dict] = Field(default_factory=list,
                                 description="[{level, user_id, amount}] of frozen affiliates, never paid")
    available_at: str | None = None
    via_webhook: bool = False
    via_pull: bool = False
    updated_at: str


class Ingested(BaseModel):
    platform: str
    order_id: str
    status: OrderStatus
    changed: bool = Field(description="false when the update added nothing (a repeat, or an older status)")
    entries: int = Field(description="ledger entries this update wrote")


class CommissionEntry(BaseModel):
    platform: str
    order_id: str
    title: str = ""
    level: int
    order_user_id: str | None = Field(description="the promoter whose pid the order carried (level 0)")
    buyer_id: str | None = None
    kind: str
    status: EntryStatus
    amount: int = Field(description="cents; reversals are negative")
    available_at: str | None = None
    recorded_at: str


class CommissionPage(BaseModel):
    items: list[CommissionEntry]
    next_token: str | None = None


class Earnings(BaseModel):
    user_id: str
    pending: int
    available: int
    reversed: int
    withheld: int = Field(description="shares of orders paid while frozen: recorded, never owed")
    by_level: dict[str, int] = Field(description="net cents earned per level (0 = own orders)")


class Reconciliation(BaseModel):
    date: str
    platform: str | None = None
    orders: int
    both: int
    webhook_only: list[str]
    pull_only: list[str]
