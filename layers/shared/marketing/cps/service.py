"""Use cases of CPS distribution: affiliates and their invite chain, order ingestion (webhook and pull),
the commission ledger and its queries. API functions pass the verified caller first; webhooks and pulls
act as the platform inside the tenant and app their signed URL or configuration names."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from pydantic import BaseModel, ValidationError

from marketing.core import events
from marketing.core.clock import iso, now, now_iso
from marketing.core.errors import Conflict, InvalidInput, NotFound, Unauthorized, ValidationFailed
from marketing.core.identity import Caller, Role
from marketing.core.ids import random_code
from marketing.core.observability import logger, metrics
from marketing.core.types import Identifier
from marketing.cps import commission, dal, signing
from marketing.cps.adapters import adapter_for
from marketing.cps.commission import ENTRY_STATUS, Entry, EntryKind, Ledger, OrderStatus, Progress, Share
from marketing.cps.models import (
    Affiliate,
    AffiliateIn,
    AffiliateStatusIn,
    CommissionEntry,
    CommissionPage,
    Earnings,
    Ingested,
    OrderIn,
    OrderState,
    PendingReversal,
    PendingReversalIn,
    Platform,
    Reconciliation,
    Relation,
    RelationPage,
    Settings,
    SettingsIn,
    Upline,
)
from marketing.tracking import service as tracking
from marketing.tracking.models import NEW_USER

PID_LENGTH = 10
_PID_ATTEMPTS = 8
_SAVE_ATTEMPTS = 10
PULL_LOOKBACK = timedelta(hours=2)  # pulls overlap: a repeat of an order is harmless


def platform_caller(tenant_id: str, app_id: str, platform: str) -> Caller:
    """Who acts for a platform's webhook or pull: a service inside the tenant and app the platform is bound to."""
    return Caller(sub=f"cps:{platform}", tenant_id=tenant_id, app_id=app_id, roles=frozenset({Role.SERVICE}))


# --- settings ---------------------------------------------------------------------------------------------

def settings_of(scope: str) -> Settings:
    stored = dal.get_settings(scope)
    return Settings(**stored) if stored else Settings()


def get_settings(caller: Caller) -> Settings:
    caller.require(Role.ADMIN, Role.SERVICE)
    return settings_of(caller.scope)


def configure(caller: Caller, body: SettingsIn) -> Settings:
    """New rates and levels apply to orders paid from now on; orders paid earlier keep their shares."""
    caller.require(Role.ADMIN)
    settings = Settings(**body.model_dump(), updated_at=now_iso())
    dal.put_settings(caller.scope, settings.model_dump())
    return settings


# --- affiliates ---------------------------------------------------------------------------------------------

def _affiliate(caller: Caller, profile: dict) -> Affiliate:
    url = tracking.share_url(caller, profile["invite_code"])
    return Affiliate(user_id=profile["user_id"], inviter_id=profile.get("inviter_id"),
                     invite_code=profile["invite_code"], invite_url=url, qrcode_svg=tracking.qr_svg(url),
                     pid=profile["pid"], created_at=profile["created_at"], status=profile.get("status", dal.ACTIVE),
                     status_reason=profile.get("status_reason"), status_changed_at=profile.get("status_changed_at"))


def _inviter_of(caller: Caller, invite_code: str) -> str:
    try:
        return tracking.promo_owner(caller, invite_code).user_id
    except NotFound as exc:
        raise InvalidInput("invite_code", f"invite code {invite_code} is unknown") from exc


def _refuse_new_inviter(caller: Caller, profile: dict, inviter_id: str) -> None:
    """A registered user keeps the inviter it registered with (or none): say why a different one is refused."""
    user = profile["user_id"]
    if inviter_id == profile.get("inviter_id"):
        return
    if inviter_id == user:
        raise Conflict("a user cannot invite themselves", code="SELF_INVITE")
    inviter = dal.get_affiliate(caller.scope, inviter_id)
    if inviter and user in inviter.get("upline", []):
        raise Conflict(f"{inviter_id} is in the downline of {user}: the invitation would make a cycle", code="CYCLE")
    raise Conflict(f"the inviter of {user} is set at registration and never changes", code="INVITER_FIXED")


def _refuse_frozen_inviter(inviter: dict) -> None:
    if inviter.get("status") == dal.FROZEN:
        raise Conflict(f"the inviter {inviter['user_id']} is frozen and cannot invite", code="INVITER_FROZEN")


def register(caller: Caller, body: AffiliateIn) -> tuple[Affiliate, bool]:
    """Make `user_id` a distributor, under the owner of `invite_code` if given. Answers (affiliate, created).

    The profile, the pid and the downline relations of levels 1..N are one transaction that also checks the
    inviter is an affiliate. A new user has no downline, so no invitation can close a cycle; a registered
    user's inviter never changes. Concurrent registrations of one user: one wins, the others read it."""
    caller.require_user_access(body.user_id)
    scope, user = caller.scope, body.user_id
    inviter_id = _inviter_of(caller, body.invite_code) if body.invite_code else None
    existing = dal.get_affiliate(scope, user)
    if existing:
        if inviter_id is not None:
            _refuse_new_inviter(caller, existing, inviter_id)
        return _affiliate(caller, existing), False
    if inviter_id == user:
        raise Conflict("a user cannot invite themselves", code="SELF_INVITE")
    upline: list[str] = []
    if inviter_id:
        inviter = dal.get_affiliate(scope, inviter_id)
        if inviter is None:
            raise InvalidInput("invite_code", f"the owner of invite code {body.invite_code} is not an affiliate")
        _refuse_frozen_inviter(inviter)
        # An affiliate's upline never changes once written, so this read cannot go stale.
        upline = ([inviter_id] + inviter.get("upline", []))[:settings_of(scope).levels]
    code = tracking.get_or_create_promo(caller, user, NEW_USER).promcode
    for _ in range(_PID_ATTEMPTS):
        profile = {"user_id": user, "inviter_id": inviter_id, "upline": upline, "invite_code": code,
                   "pid": random_code(PID_LENGTH), "created_at": now_iso()}
        try:
            dal.register(scope, {k: v for k, v in profile.items() if v is not None})
        except dal.PidTaken:
            continue
        except dal.InviterMissing as exc:  # frozen since we read it, or gone
            _refuse_frozen_inviter(dal.get_affiliate(scope, inviter_id, consistent=True) or {})
            raise InvalidInput("invite_code", f"the owner of invite code {body.invite_code} is not an affiliate") \
                from exc
        except dal.AlreadyRegistered:
            winner = dal.get_affiliate(scope, user, consistent=True)
            if inviter_id is not None:
                _refuse_new_inviter(caller, winner, inviter_id)
            return _affiliate(caller, winner), False
        metrics.add_metric(name="AffiliatesRegistered", unit="Count", value=1)
        return _affiliate(caller, profile), True
    raise RuntimeError("could not draw a free pid")  # 31^10 pids: practically unreachable


def _profile(caller: Caller, user_id: str) -> dict:
    caller.require_user_access(user_id)
    profile = dal.get_affiliate(caller.scope, user_id)
    if profile is None:
        raise NotFound(f"{user_id} is not an affiliate")
    return profile


def get_affiliate(caller: Caller, user_id: str) -> Affiliate:
    return _affiliate(caller, _profile(caller, user_id))


def set_status(caller: Caller, user_id: str, body: AffiliateStatusIn) -> Affiliate:
    """Freeze or unfreeze an affiliate. A frozen affiliate's share of orders paid while frozen is withheld,
    and nobody can register under it. The change commits with its `affiliate.frozen` / `affiliate.unfrozen`
    event; a repeat finds the status already so and changes nothing."""
    caller.require(Role.ADMIN)
    at, kind = now_iso(), "frozen" if body.status == dal.FROZEN else "unfrozen"
    event = events.outbox(caller, source="cps", detail_type=f"affiliate.{kind}",
                          event_id=f"affiliate:{user_id}:{kind}:{at}", occurred_at=at,
                          detail={"user_id": user_id, "status": body.status, "reason": body.reason})
    profile, _ = dal.set_status(caller.scope, user_id, body.status, body.reason, at, [event])
    if profile is None:
        raise NotFound(f"{user_id} is not an affiliate")
    return _affiliate(caller, profile)


def reverse_pending(caller: Caller, user_id: str, body: PendingReversalIn) -> PendingReversal:
    """The operator takes back what a frozen affiliate has not received yet: per order, its share's rest
    while unsettled or on hold, as reversal entries, in the order's transaction (version lock, and a check
    that the affiliate is still frozen). A repeat finds nothing left."""
    caller.require(Role.ADMIN)
    profile = dal.get_affiliate(caller.scope, user_id, consistent=True)
    if profile is None:
        raise NotFound(f"{user_id} is not an affiliate")
    if profile.get("status") != dal.FROZEN:
        raise Conflict(f"{user_id} is not frozen: freeze it first", code="NOT_FROZEN")
    orders, amount = 0, 0
    for platform, order_id in dal.pending_orders(caller.scope, user_id):
        taken = _reverse_order_share(caller.scope, platform, order_id, user_id)
        orders, amount = orders + bool(taken), amount + taken
    logger.info("pending commissions reversed", extra={"user_id": user_id, "orders": orders, "amount": amount,
                                                       "reason": body.reason})
    return PendingReversal(user_id=user_id, orders=orders, amount=amount)


def _reverse_order_share(scope: str, platform: str, order_id: str, user_id: str) -> int:
    for _ in range(_SAVE_ATTEMPTS):
        current = dal.get_order(scope, platform, order_id)
        stamp = now_iso()
        ledger, entries = commission.reverse_pending(_ledger(current), user_id, stamp)
        if not entries:
            return 0
        saved = {**current, "reversed": list(ledger.reversed), "version": current["version"] + 1,
                 "updated_at": stamp}
        try:
            dal.save_order(scope, saved, current["version"], [_entry(e, saved, stamp) for e in entries],
                           outbox=[], statuses_read={user_id: dal.FROZEN})
        except dal.StaleOrder:
            continue
        return -sum(e.amount for e in entries)
    raise RuntimeError(f"order {platform}/{order_id} kept changing under us")


def downline(caller: Caller, user_id: str, level: int, limit: int, next_token: str | None) -> RelationPage:
    caller.require_user_access(user_id)
    items, token = dal.list_downline(caller.scope, user_id, level, limit, next_token)
    return RelationPage(items=[Relation(**i) for i in items], next_token=token)


def upline(caller: Caller, user_id: str) -> Upline:
    profile = _profile(caller, user_id)
    return Upline(user_id=user_id, items=[Relation(user_id=u, level=n, created_at=profile["created_at"])
                                          for n, u in enumerate(profile.get("upline", []), start=1)])


# --- orders: one ingestion path for webhooks and pulls ------------------------------------------------------

def ingest_webhook(tenant_id: str, app_id: str, platform: str, headers: dict[str, str], raw_body: bytes) -> Ingested:
    """A platform's signed order update. The signature, made with the key of this very tenant, app and platform,
    is checked before anything is read or written."""
    if not signing.verify(tenant_id, app_id, platform, raw_body, headers.get("x-timestamp"),
                          headers.get("x-signature")):
        metrics.add_metric(name="CpsWebhookRejected", unit="Count", value=1)
        raise Unauthorized("missing, wrong or stale webhook signature")
    try:
        order = OrderIn.model_validate_json(raw_body)
    except ValidationError as exc:
        raise ValidationFailed.of(exc.errors(), prefix=("body",)) from exc
    return ingest(platform_caller(tenant_id, app_id, platform), platform, order, via="webhook")


def _progress(order: dict | None) -> Progress:
    if not order:
        return Progress()
    return Progress(status=OrderStatus(order["status"]), paid=order["paid"], settled=order["settled"],
                    void=order["void"], refunded=order["refunded"])


def _ledger(order: dict | None) -> Ledger:
    if not order:
        return Ledger()
    return Ledger(shares=tuple(Share(**s) for s in order.get("shares", [])),
                  reversed=tuple(order.get("reversed", [])), available_at=order.get("available_at"),
                  withheld=tuple(Share(**s) for s in order.get("withheld", [])))


def _split_inputs(scope: str, pid: str) -> tuple[Settings, list[str]]:
    """What fixing a paid order's shares needs, read in one request: the app's settings, and the chain:
    the promoter (the pid's owner, level 0) and its inviters up to the settings' levels (it never changes)."""
    stored, owner = dal.get_settings_and_pid_owner(scope, pid)
    settings = Settings(**stored) if stored else Settings()
    return settings, [owner["user_id"], *owner.get("upline", [])[:settings.levels]] if owner else []


def _order_day(order: OrderIn, seen_at: str) -> str:
    return iso(order.paid_at)[:10] if order.paid_at else seen_at[:10]


def _event(detail_type: str, event_id: str, order: dict, occurred_at: str) -> dict:
    detail = {k: order.get(k) for k in ("platform", "order_id", "pid", "promoter_id", "buyer_id", "pay_price",
                                        "commission", "title")}
    if detail_type == "cps.order_refunded":
        detail["refund_price"] = order.get("refund_price", 0)
    return {"detail_type": detail_type, "event_id": event_id, "occurred_at": occurred_at, "detail": detail}


def ingest(caller: Caller, platform: str, order: OrderIn, *, via: str) -> Ingested:
    """Merge one order update into the stored order and append the ledger entries the change adds, in one
    transaction guarded by the order's version. A repeat, or an older status, changes nothing."""
    scope, update = caller.scope, Progress.of(order.status, order.refund_price, order.settled_at is not None)
    # A lost save fails on the order's version only: the settings and the pid's chain it read are still good.
    # Read on the first attempt that pays (a repeat or a refund reads neither), kept for the retries.
    split_inputs = cache(lambda pid: _split_inputs(scope, pid))
    for _ in range(_SAVE_ATTEMPTS):
        current = dal.get_order(scope, platform, order.order_id)
        old, version = _progress(current), (current or {}).get("version", 0)
        base = current or {"platform": platform, "order_id": order.order_id, "pid": order.pid,
                           "buyer_id": order.buyer_id, "pay_price": order.pay_price, "commission": order.commission,
                           "title": order.title, "refund_price": 0, "promoter_id": None}
        stamp = now_iso()
        shares, hold_days, promoter = None, base.get("hold_days", Settings().hold_days), base.get("promoter_id")
        paying, statuses = update.paid and not old.paid, {}
        if paying:
            settings, chain = split_inputs(base["pid"])
            shares = commission.split(order.commission, settings.rates_bp, chain)
            hold_days, promoter = settings.hold_days, chain[0] if chain else None
            # Read on every attempt: the save checks them, so a freeze that lands first is seen on the retry.
            statuses = dal.statuses(scope, [s.user_id for s in shares])
            base = {**base, "pay_price": order.pay_price, "commission": order.commission}
        settled_at = iso(order.settled_at) if order.settled_at else stamp
        available_at = iso(datetime.fromisoformat(settled_at).astimezone(UTC) + timedelta(days=hold_days))
        step = commission.advance(old, _ledger(current), update, pay_price=base["pay_price"],
                                  shares_if_paid=shares, available_at=available_at,
                                  frozen=frozenset(u for u, st in statuses.items() if st == dal.FROZEN))
        if current and step.progress == old and current.get(f"via_{via}"):
            return Ingested(platform=platform, order_id=order.order_id, status=old.status, changed=False, entries=0)

        saved = _next_order(base, order, step, via=via, version=version + 1, stamp=stamp,
                            promoter=promoter, hold_days=hold_days)
        entries = [_entry(e, saved, stamp) for e in step.entries]
        outbox = [events.outbox(caller, source="cps", **event) for event in saved.pop("outbox")]
        try:
            dal.save_order(scope, {k: v for k, v in saved.items() if v is not None}, version, entries, outbox,
                           statuses)
        except dal.StaleOrder:
            continue  # someone saved the order since we read it: merge again on top of theirs
        metrics.add_metric(name="CpsLedgerEntries", unit="Count", value=len(entries))
        return Ingested(platform=platform, order_id=order.order_id, status=step.progress.status, changed=True,
                        entries=len(entries))
    raise RuntimeError(f"order {platform}/{order.order_id} kept changing under us")


def _next_order(base: dict, order: OrderIn, step: commission.Step, *, via: str, version: int, stamp: str,
                promoter: str | None, hold_days: int) -> dict[str, Any]:
    """The order item after `step`, with the events it owes under `outbox` (committed as outbox items with
    the order; events an order item of an older release still holds go with them)."""
    progress, ledger = step.progress, step.ledger
    saved = {**base, "status": progress.status.value, "paid": progress.paid, "settled": progress.settled,
             "void": progress.void, "refunded": progress.refunded,
             "refund_price": max(base.get("refund_price", 0), order.refund_price),
             "promoter_id": promoter, "hold_days": hold_days,
             "shares": [s.__dict__ for s in ledger.shares], "reversed": list(ledger.reversed),
             "withheld": [s.__dict__ for s in ledger.withheld],
             "available_at": ledger.available_at, "version": version, "updated_at": stamp,
             # Filed under the day it was paid (reconciliation's day); until then, the day it was first seen.
             "day": _order_day(order, stamp) if step.paid_now else base.get("day") or _order_day(order, stamp),
             f"via_{via}": True,
             "outbox": list(base.get("outbox", []))}
    if step.paid_now and order.paid_at:
        saved["paid_at"] = iso(order.paid_at)
    if progress.void and order.status == OrderStatus.REFUNDED:
        saved["refund_price"] = max(saved["refund_price"], order.refund_price or saved["pay_price"])
    key = f"cps:{saved['platform']}:{saved['order_id']}"
    if step.paid_now:
        saved["outbox"].append(_event("cps.order_paid", f"{key}:paid", saved, stamp))
    if step.refunded_now:
        refund = commission.refund_state(progress)
        saved["outbox"].append(_event("cps.order_refunded", f"{key}:refund:{refund}", saved, stamp))
    return saved


def _entry(entry: Entry, order: dict, recorded_at: str) -> dict[str, Any]:
    return {"user_id": entry.user_id, "platform": order["platform"], "order_id": order["order_id"],
            "title": order.get("title", ""), "level": entry.level, "order_user_id": order.get("promoter_id"),
            "buyer_id": order.get("buyer_id"), "kind": entry.kind.value, "status": ENTRY_STATUS[entry.kind],
            "amount": entry.amount, "available_at": entry.available_at, "recorded_at": recorded_at}


class PullSource(BaseModel):
    tenant_id: Identifier
    app_id: Identifier
    platform: Platform
    adapter: str = "json"


def pull(source: dict[str, Any], *, until: datetime | None = None) -> dict[str, int]:
    """Pull a platform's recent orders through its adapter into the same ingestion as webhooks. An order the
    platform reports in a shape we cannot read is logged and skipped; the others go on."""
    where = PullSource.model_validate(source)
    caller = platform_caller(where.tenant_id, where.app_id, where.platform)
    until = until or now()
    counts = {"pulled": 0, "changed": 0, "rejected": 0}
    for raw in adapter_for(source).fetch(until - PULL_LOOKBACK, until):
        counts["pulled"] += 1
        try:
            order = OrderIn.model_validate(raw)
        except ValidationError as exc:
            counts["rejected"] += 1
            logger.warning("unreadable order from a pull", extra={"platform": where.platform,
                                                                   "errors": json.dumps(exc.errors(), default=str)})
            continue
        counts["changed"] += ingest(caller, where.platform, order, via="pull").changed
    return counts


def get_order(caller: Caller, platform: str, order_id: str) -> OrderState:
    caller.require(Role.ADMIN, Role.SERVICE)
    order = dal.get_order(caller.scope, platform, order_id)
    if order is None:
        raise NotFound(f"order {platform}/{order_id} is unknown")
    return OrderState(**order)


# --- queries ----------------------------------------------------------------------------------------------

def commissions(caller: Caller, user_id: str, status: str | None, limit: int,
                next_token: str | None) -> CommissionPage:
    caller.require_user_access(user_id)
    items, token = dal.list_entries(caller.scope, user_id, status, limit, next_token)
    return CommissionPage(items=[CommissionEntry(**i) for i in items], next_token=token)


def earnings(caller: Caller, user_id: str) -> Earnings:
    """The sum of the distributor's ledger entries, split by where the money sits now."""
    caller.require_user_access(user_id)
    entries = [Entry(EntryKind(i["kind"]), i["level"], i["user_id"], i["amount"], i.get("available_at"))
               for i in dal.all_entries(caller.scope, user_id)]
    total = commission.balance(entries, now_iso())
    return Earnings(user_id=user_id, pending=total.pending, available=total.available, reversed=total.reversed,
                    withheld=total.withheld,
                    by_level={str(k): v for k, v in sorted(total.by_level.items())})


def reconciliation(caller: Caller, day: str, platform: str | None) -> Reconciliation:
    """The orders of a day (paid that day, or first seen that day if unpaid) by how they reached us: a
    platform's webhooks and its pulls should see the same orders; what only one saw needs a look."""
    caller.require(Role.ADMIN, Role.SERVICE)
    orders = dal.orders_of_day(caller.scope, day, platform)
    name = (lambda o: o["order_id"]) if platform else (lambda o: f"{o['platform']}/{o['order_id']}")
    return Reconciliation(
        date=day, platform=platform, orders=len(orders),
        both=sum(1 for o in orders if o.get("via_webhook") and o.get("via_pull")),
        webhook_only=sorted(name(o) for o in orders if o.get("via_webhook") and not o.get("via_pull")),
        pull_only=sorted(name(o) for o in orders if o.get("via_pull") and not o.get("via_webhook")))
