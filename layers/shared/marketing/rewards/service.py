"""Use cases of rewards, inventory and grants. Every function takes the verified caller first.

Invariants live in DynamoDB conditions (see dal.py): a reservation, a confirmation, a cancellation, a
redemption and a rollback are each one transaction whose conditions decide; reads only pick the expression.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from marketing.core import events, outbound
from marketing.core.clock import iso, now, now_iso
from marketing.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from marketing.core.identity import Caller, Role
from marketing.core.ids import new_id
from marketing.core.observability import logger, metrics
from marketing.rewards import bundles, codes, dal
from marketing.rewards.errors import (
    GrantNotFound,
    IllegalTransition,
    OutOfStock,
    PerUserLimitReached,
    ReservationClosed,
    ReservationNotFound,
    RewardNotFound,
)
from marketing.rewards.models import (
    GRANT_PREDECESSORS,
    Grant,
    GrantPage,
    GrantStatus,
    Reservation,
    ReservationPage,
    ReservationStatus,
    Reward,
    RewardFields,
    RewardIn,
    RewardPage,
    Stock,
    StockChange,
    WalletItem,
    WalletPage,
)

_RETRIES = 5
STAFF = (Role.ADMIN, Role.SERVICE)


# --- rewards ---
def reward_view(item: dict, shards: list[dict]) -> Reward:
    limited = item.get("total_stock") is not None
    stock = Stock(total=item.get("total_stock"),
                  available=sum(s.get("available", 0) for s in shards) if limited else None,
                  reserved=sum(s.get("reserved", 0) for s in shards), issued=sum(s.get("issued", 0) for s in shards))
    return Reward(**{"total_stock": None, **item, "stock": stock})


def known(item: dict | None, error: type[NotFound], message: str) -> dict:
    """The item, or the capability's not-found error for it."""
    if item is None:
        raise error(message)
    return item


def live_reward(scope: str, reward_id: str) -> dict:
    return known(dal.get_reward(scope, reward_id), RewardNotFound, f"reward {reward_id} is unknown")


def _with_stock(scope: str, item: dict) -> Reward:
    return reward_view(item, dal.get_shards(scope, [item])[item["reward_id"]])


def _check_distributor(body: RewardFields) -> None:
    """A webhook must lead out of our network (core.outbound); it is checked again before every call."""
    if body.distributor.type == "webhook":
        try:
            outbound.destination(str(body.distributor.url), configuring=True)
        except outbound.UnsafeDestination as exc:
            raise InvalidInput("body.distributor.webhook.url", str(exc), code="UNSAFE_URL") from exc


def create_reward(caller: Caller, body: RewardIn) -> Reward:
    caller.require(Role.ADMIN)
    _check_distributor(body)
    bundles.check_parts(caller.scope, body)
    moment = now_iso()
    item = {**body.stored(), "reward_id": new_id(), "total_stock": body.total_stock, "shards": body.shards,
            "version": 1, "created_at": moment, "updated_at": moment}
    return reward_view(item, dal.create_reward(caller.scope, item))


def get_reward(caller: Caller, reward_id: str) -> Reward:
    return _with_stock(caller.scope, live_reward(caller.scope, reward_id))


def list_rewards(caller: Caller, limit: int, next_token: str | None) -> RewardPage:
    items, token = dal.list_rewards(caller.scope, limit, next_token)
    shards = dal.get_shards(caller.scope, items)
    return RewardPage(items=[reward_view(i, shards[i["reward_id"]]) for i in items], next_token=token)


def update_reward(caller: Caller, reward_id: str, body: RewardFields) -> Reward:
    caller.require(Role.ADMIN)
    _check_distributor(body)
    bundles.check_parts(caller.scope, body)
    for _ in range(_RETRIES):
        try:
            item = dal.update_reward(caller.scope, live_reward(caller.scope, reward_id), body.stored(), now_iso())
            return _with_stock(caller.scope, item)
        except dal.ConditionFailed:
            continue  # edited or deleted meanwhile: read it again
    raise Conflict("the reward is changing too fast; try again", code="REWARD_BUSY")


def delete_reward(caller: Caller, reward_id: str) -> None:
    """A soft delete: grants and codes keep their reward; nothing new is reserved or redeemed."""
    caller.require(Role.ADMIN)
    for _ in range(_RETRIES):
        try:
            return dal.delete_reward(caller.scope, live_reward(caller.scope, reward_id), now_iso())
        except dal.ConditionFailed:
            continue  # edited or deleted meanwhile: read it again
    raise Conflict("the reward is changing too fast; try again", code="REWARD_BUSY")


def change_stock(caller: Caller, reward_id: str, body: StockChange) -> Reward:
    """Top up (spread over the shards) or reduce (taken where stock is available); a reduction never goes
    below what is reserved or issued, because each shard's `available` must stay >= 0."""
    caller.require(Role.ADMIN)
    t = caller.scope
    for _ in range(_RETRIES):
        item = live_reward(t, reward_id)
        if item.get("total_stock") is None:
            raise InvalidInput("delta", "this reward's stock is unlimited")
        shards = dal.get_shards(t, [item])[reward_id]
        if body.delta > 0:
            per_shard = {i: share for i, share in enumerate(dal._shard_shares(body.delta, len(shards))) if share}
        else:
            need, per_shard = -body.delta, {}
            for i in sorted(range(len(shards)), key=lambda i: -shards[i].get("available", 0)):
                take = min(need, shards[i].get("available", 0))
                if take:
                    per_shard[i], need = -take, need - take
            if need:
                raise Conflict("stock cannot go below what is reserved or issued", code="STOCK_FLOOR",
                               details=[{"field": "delta", "message": f"at most {-body.delta - need} can be removed"}])
        try:
            dal.change_stock(t, reward_id, per_shard)
        except dal.ConditionFailed:
            continue  # a reservation took stock meanwhile, or the reward went: look again
        # The answer is what was read plus what was written, not a second read of both.
        return reward_view({**item, "total_stock": item["total_stock"] + body.delta},
                           [{**s, "available": s.get("available", 0) + per_shard.get(i, 0)}
                            for i, s in enumerate(shards)])
    raise Conflict("the stock is changing too fast; try again", code="STOCK_BUSY")


# --- inventory ---
def reserve(caller: Caller, *, reward_id: str, user_id: str, quantity: int, expire_minutes: int,
            reservation_id: str | None = None) -> tuple[Reservation, bool]:
    """A PENDING reservation, or the existing one for a repeated `reservation_id`. Answers (it, created)."""
    caller.require(*STAFF)
    t, res_id = caller.scope, reservation_id or new_id()
    for _ in range(_RETRIES):
        reward = live_reward(t, reward_id)
        limit = reward.get("per_user_limit")
        if limit is not None and quantity > limit:
            raise PerUserLimitReached(f"at most {limit} per user")
        moment = now()
        base = {"reservation_id": res_id, "reward_id": reward_id, "user_id": user_id, "quantity": quantity,
                "status": "PENDING", "expires_at": iso(moment + timedelta(minutes=expire_minutes)),
                "created_at": iso(moment), "updated_at": iso(moment),
                "limited": reward.get("total_stock") is not None, "counted": limit is not None,
                "sweep_partition": dal.sweep_partition(res_id)}
        parts = bundles.pick(t, reward, quantity, shard_order)
        if parts:
            base["parts"] = parts
        order = shard_order(t, reward, quantity)
        if not order and (existing := dal.get_reservation(t, res_id)):
            # A repeated reservation_id whose first attempt took the last units finds no shard with stock left:
            # it is answered with its reservation, not refused. (A transaction tried answers this by itself.)
            return _existing_reservation(existing, res_id, reward_id, user_id), False
        for shard in order:
            record = {**base, "shard": shard}
            try:
                dal.reserve(t, record, reward_version=reward["version"], limited=base["limited"],
                            per_user_limit=limit)
                metrics.add_metric(name="InventoryReserved", unit="Count", value=quantity)
                return Reservation(**record), True
            except dal.ConditionFailed as failed:
                if failed.failed(0):
                    return _existing_reservation(dal.get_reservation(t, res_id), res_id, reward_id, user_id), False
                if (failed.failed(1) and failed.moved(1, reward["version"])) or bundles.failed_part(failed, parts):
                    break  # the reward (or a part) changed or went (its shard holds a newer version): read it again
                if limit is not None and failed.failed(2):
                    raise PerUserLimitReached(f"user {user_id} reached the limit of {limit}") from failed
                if not failed.failed(1):
                    raise
        else:
            raise OutOfStock(f"reward {reward_id} has not {quantity} left in stock")
    raise Conflict("the reward is changing too fast; try again", code="REWARD_BUSY")


def shard_order(scope: str, reward: dict, quantity: int) -> list[int]:
    """The shards to try, in random order. One shard: just try it (the condition decides). A flash sale's
    shards: read them once and try only those that hold enough, so an empty reward costs one read instead
    of a failed transaction per shard; the conditions still decide."""
    if reward["shards"] == 1:
        return [0]
    shards = dal.get_shards(scope, [reward])[reward["reward_id"]]
    limited = reward.get("total_stock") is not None
    order = [i for i, s in enumerate(shards) if not limited or s.get("available", 0) >= quantity]
    random.shuffle(order)
    return order


def _existing_reservation(existing: dict | None, res_id: str, reward_id: str, user_id: str) -> Reservation:
    if existing is None or existing["reward_id"] != reward_id or existing["user_id"] != user_id:
        raise Conflict(f"reservation_id {res_id} belongs to another reservation", code="RESERVATION_ID_TAKEN")
    return Reservation(**existing)


def _reservation(t: str, res_id: str) -> dict:
    return known(dal.get_reservation(t, res_id), ReservationNotFound, f"reservation {res_id} is unknown")


def confirm(caller: Caller, reservation_id: str) -> Reservation:
    """Safe to repeat; a cancelled, expired or rolled-back reservation is a 409."""
    caller.require(*STAFF)
    t = caller.scope
    record = _reservation(t, reservation_id)
    if record["status"] == "PENDING":
        moment = now_iso()
        try:
            dal.confirm(t, record, moment)
            metrics.add_metric(name="InventoryConfirmed", unit="Count", value=record["quantity"])
            record = {**record, "status": "CONFIRMED", "updated_at": moment}
        except dal.ConditionFailed:
            record = _reservation(t, reservation_id)  # decided meanwhile, or expired: the record says which
    if record["status"] == "CONFIRMED":
        return Reservation(**record)
    if record["status"] == "PENDING":
        raise ReservationClosed(f"reservation {reservation_id} expired at {record['expires_at']}")
    raise ReservationClosed(f"reservation {reservation_id} is {record['status'].lower()}")


def cancel(caller: Caller, reservation_id: str) -> Reservation:
    """Safe to repeat: the quantity returns to stock once. A confirmed reservation is undone by rolling back
    its grant, not by cancelling."""
    caller.require(*STAFF)
    t = caller.scope
    record = _reservation(t, reservation_id)
    if record["status"] == "PENDING":
        moment = now_iso()
        try:
            dal.release(t, record, "CANCELLED", moment)
            metrics.add_metric(name="InventoryCancelled", unit="Count", value=record["quantity"])
            record = {**record, "status": "CANCELLED", "updated_at": moment}
        except dal.ConditionFailed:
            record = _reservation(t, reservation_id)
    if record["status"] in ("CANCELLED", "EXPIRED", "ROLLED_BACK"):
        return Reservation(**record)
    raise ReservationClosed(f"reservation {reservation_id} is confirmed: roll back its grant instead")


def list_reservations(caller: Caller, reward_id: str, user_id: str | None, status: ReservationStatus | None,
                      limit: int, next_token: str | None) -> ReservationPage:
    if user_id is None:
        caller.require(*STAFF)
    else:
        caller.require_user_access(user_id)
    items, token = dal.list_reservations(caller.scope, reward_id, user_id, status, limit, next_token)
    return ReservationPage(items=[Reservation(**i) for i in items], next_token=token)


def sweep(rounds: int = 20) -> int:
    """Expire every pending reservation past its time: its quantity returns to stock (the scheduled sweeper)."""
    expired, busy = 0, set()
    for _ in range(rounds):
        moment = now_iso()
        due = [p for p in dal.due_reservations(moment) if (p["scope"], p["reservation_id"]) not in busy]
        if not due:
            break
        for pointer in due:
            # The pointer holds what the release needs, so no read: the transaction's condition (still PENDING,
            # due) decides, and a pointer exists exactly while its reservation is PENDING.
            try:
                dal.release(pointer["scope"], pointer, "EXPIRED", moment, only_if_expired=True)
                expired += 1
            except dal.ConditionFailed:
                pass  # confirmed, cancelled or swept meanwhile: that transaction moved it and removed the pointer
            except Conflict:  # its reward is busy: the next run takes it; the others are not held back
                logger.warning("a due reservation was busy", extra={"reservation_id": pointer["reservation_id"]})
                busy.add((pointer["scope"], pointer["reservation_id"]))
    if expired:
        metrics.add_metric(name="ReservationsExpired", unit="Count", value=expired)
    return expired


# --- what a grant gives ---
def validity(reward: dict, granted_at: datetime) -> tuple[str | None, str | None]:
    """(valid_from, valid_until) of a grant of `reward` made at `granted_at`, the same on every grant path:
    `valid_days` counts from the grant, else the reward's own window."""
    if reward.get("valid_days"):
        return iso(granted_at), iso(granted_at + timedelta(days=reward["valid_days"]))
    return reward.get("valid_from"), reward.get("valid_until")


def issued_content(reward: dict) -> dict[str, Any]:
    """What a grant of `reward` gives besides a code: points, coupon terms (with the coupon generator's
    template), card or subscription days."""
    content = {k: v for k, v in (reward.get("content") or {}).items() if k != "type"}
    generator = reward.get("generator") or {}
    if reward["reward_type"] == "POINTS":
        return {"points": content["amount"] * generator.get("multiplier", 1)}
    if generator.get("type") == "coupon":
        content["template_id"] = generator["template_id"]
    return content


# --- grants ---
def _grant(t: str, grant_id: str) -> dict:
    return known(dal.get_grant(t, grant_id), GrantNotFound, f"grant {grant_id} is unknown")


def create_grant(caller: Caller, *, grant_id: str, reward_id: str, user_id: str, status: str,
                 task_id: str | None = None, campaign_id: str | None = None, reservation_id: str | None = None,
                 details: dict | None = None, grant_batch_id: str | None = None) -> Grant:
    """Idempotent on grant_id: a repeat returns the existing grant."""
    caller.require(*STAFF)
    moment = now_iso()
    grant = Grant(grant_id=grant_id, reward_id=reward_id, user_id=user_id, status=GrantStatus(status),
                  task_id=task_id, campaign_id=campaign_id, reservation_id=reservation_id, details=details or {},
                  grant_batch_id=grant_batch_id, created_at=moment, updated_at=moment)
    try:
        dal.put_grant(caller.scope, grant.model_dump(mode="json"))
        metrics.add_metric(name="RewardsGranted", unit="Count", value=1)
        return grant
    except dal.ConditionFailed:
        return Grant(**_grant(caller.scope, grant_id))


def transition_grant(caller: Caller, grant_id: str, *, to: str, expected: set[str] | None = None,
                     reason: str | None = None, details: dict | None = None,
                     validity: tuple[str | None, str | None] | None = None, outbox: list[dict] | None = None) -> Grant:
    """Conditional on the current status (default: the legal predecessors of `to`); a repeat of a transition
    that happened returns the grant unchanged. ROLLED_BACK goes through the rollback (it returns stock)."""
    caller.require(*STAFF)
    target = GrantStatus(to)
    if target is GrantStatus.ROLLED_BACK:
        return rollback(caller, grant_id)
    allowed = {str(s) for s in (expected if expected is not None else GRANT_PREDECESSORS[target])}
    allowed &= {str(s) for s in GRANT_PREDECESSORS[target]}
    try:
        fields = dict(zip(("valid_from", "valid_until"), validity, strict=True)) if validity else None
        return Grant(**dal.set_grant_status(caller.scope, grant_id, target, allowed, now_iso(), reason, details,
                                            fields, outbox=outbox))
    except dal.ConditionFailed as exc:
        current = _grant(caller.scope, grant_id)
        if current["status"] == target:
            return Grant(**current)
        raise IllegalTransition(f"grant {grant_id} is {current['status']}: it cannot become {target}") from exc


def _rollback_returns(t: str, grant: dict, moment: str) -> list[dict]:
    """The actions that give back what the grant took: its reservation's quantity, or its redeemed unit."""
    if grant.get("reservation_id"):
        record = dal.get_reservation(t, grant["reservation_id"])
        if record is None:
            return []
        if record["status"] == "CONFIRMED":
            actions = [dal.reservation_rolled_back(t, record, moment),
                       dal.return_stock(t, record["reward_id"], record["shard"], record["quantity"],
                                        limited=record["limited"], out_of="issued"),
                       *dal.parts_returned(t, record.get("parts", []), out_of="issued")]
            if record.get("counted"):
                actions.append(dal.return_allowance(t, record["reward_id"], record["user_id"], record["quantity"]))
            return actions
        if record["status"] == "PENDING":
            return dal.release_actions(t, record, "CANCELLED", moment)
        return []
    if grant.get("shard") is not None:
        actions = [dal.return_stock(t, grant["reward_id"], grant["shard"], grant.get("quantity", 1),
                                    limited=grant.get("limited", False), out_of="issued"),
                   *dal.parts_returned(t, grant.get("parts", []), out_of="issued")]
        if grant.get("counted"):
            actions.append(dal.return_allowance(t, grant["reward_id"], grant["user_id"], grant.get("quantity", 1)))
        return actions
    return []


def rollback(caller: Caller, grant_id: str) -> Grant:
    """Gives back the stock and the user's allowance exactly once: the grant's status condition admits one
    rollback, and a redemption racing it only ever touches other items or is serialized by DynamoDB."""
    caller.require(*STAFF)
    t = caller.scope
    for _ in range(_RETRIES):
        grant = _grant(t, grant_id)
        if grant["status"] == GrantStatus.ROLLED_BACK:
            break
        if grant["status"] not in GRANT_PREDECESSORS[GrantStatus.ROLLED_BACK]:
            raise IllegalTransition(f"grant {grant_id} is {grant['status']}: it cannot be rolled back")
        moment = now_iso()
        event = events.outbox(caller, source="rewards", detail_type="grant.rolled_back",
                              event_id=f"{grant_id}:rolled_back", occurred_at=moment,
                              detail={"grant_id": grant_id, "reward_id": grant["reward_id"],
                                      "user_id": grant["user_id"], "campaign_id": grant.get("campaign_id")})
        try:
            dal.rollback(t, grant, moment, _rollback_returns(t, grant, moment), outbox=[event])
            metrics.add_metric(name="GrantsRolledBack", unit="Count", value=1)
            grant = {**grant, "status": GrantStatus.ROLLED_BACK, "updated_at": moment}  # what the write set
            break
        except dal.ConditionFailed:
            continue  # its status or its reservation moved: look again
    else:
        raise Conflict("the grant is changing too fast; try again", code="GRANT_BUSY")
    return Grant(**grant)


def get_grant(caller: Caller, grant_id: str) -> Grant:
    grant = Grant(**_grant(caller.scope, grant_id))
    try:
        caller.require_user_access(grant.user_id)
    except Forbidden as exc:
        raise GrantNotFound(f"grant {grant_id} is unknown") from exc
    return grant


def wallet(caller: Caller, user_id: str, status: GrantStatus | None, limit: int,
           next_token: str | None) -> WalletPage:
    """Every grant of one user, with its reward's name and terms and its code: in full for the user who owns
    it, masked for staff."""
    caller.require_user_access(user_id)
    t = caller.scope
    grants, token = dal.list_user_grants(t, user_id, status, limit, next_token)
    rewards = dal.get_rewards(t, (g["reward_id"] for g in grants))
    issued_codes = dal.get_issued_codes(t, (g["grant_id"] for g in grants if g.get("task_id")))
    owner = not caller.is_staff and caller.sub == user_id
    return WalletPage(items=[_wallet_item(g, rewards.get(g["reward_id"]), g.get("code") or
                                          issued_codes.get(g["grant_id"]), owner) for g in grants],
                      next_token=token)


_NOT_TERMS = ("code_suffix", "attempts", "batch_id", "valid_from", "valid_until")


def _wallet_item(grant: dict, reward: dict | None, code: str | None, owner: bool) -> WalletItem:
    details = {k: v for k, v in (grant.get("details") or {}).items() if k not in _NOT_TERMS}
    source = "task" if grant.get("task_id") else "redemption" if grant.get("code_suffix") else "other"
    return WalletItem(
        **{k: grant.get(k) for k in ("grant_id", "reward_id", "status", "valid_from", "valid_until", "task_id",
                                     "campaign_id", "discount_cents", "created_at", "updated_at")},
        reward_name=reward and reward["name"], reward_type=reward and reward["reward_type"], source=source,
        issued=details or (issued_content(reward) if reward else {}),
        code=code if owner or code is None else codes.mask(code))


def list_grants(caller: Caller, filters: dict[str, Any], limit: int, next_token: str | None) -> GrantPage:
    if filters.get("user_id") is None:
        caller.require(*STAFF)
    else:
        caller.require_user_access(filters["user_id"])
    items, token = dal.list_grants(caller.scope, filters, limit, next_token)
    return GrantPage(items=[Grant(**i) for i in items], next_token=token)
