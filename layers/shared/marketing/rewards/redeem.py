"""Use cases of redeem codes (seed: redeem-code-design-article.md): batches, export, assignment, redemption,
revocation, and codes issued to grants.

Operator rules from the article: the generating account is recorded and only it exports its batch; export
marks codes exported once their file is written (a range claimed on the batch, so two exports are disjoint);
listings mask codes. A redemption is one transaction (code, stock, reward version, grant, user allowance), after one
BatchGetItem that reads the code and the user's recent failures together.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
from datetime import datetime

from marketing.campaigns import dal as campaigns_dal
from marketing.core import events
from marketing.core.clock import iso, now, now_iso
from marketing.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from marketing.core.identity import Caller, Role
from marketing.core.ids import new_id
from marketing.core.observability import logger, metrics
from marketing.rewards import bundles, codes, dal, files
from marketing.rewards.errors import (
    BatchNotFound,
    CodeExpired,
    CodeNotFound,
    CodeNotYetValid,
    CodeNotYours,
    CodeRevoked,
    CodeUsed,
    GrantNotDistributed,
    MalformedCode,
    OrderBelowMinimum,
    OutOfStock,
    PerUserLimitReached,
    RewardNotFound,
    TooManyFailures,
)
from marketing.rewards.models import (
    SYNC_BATCH_MAX,
    AssignedCode,
    Batch,
    BatchCreated,
    BatchIn,
    CodePage,
    CodeStatus,
    CodeView,
    Export,
    ExportIn,
    Grant,
    IssuedCode,
    Order,
    RedeemIn,
    RewardSummary,
    Validation,
    to_iso,
)
from marketing.rewards.service import STAFF, known, live_reward, shard_order, validity

CHUNK = 2000  # codes per queue message: about 80 BatchWriteItem requests, seconds of work
_REWARD_CACHE_SECONDS = 60
_rewards: dict[tuple[str, str], tuple[float, dict]] = {}


def max_failures() -> int:
    return int(os.environ.get("REDEEM_MAX_FAILURES", "10"))


def failure_window() -> int:
    return int(os.environ.get("REDEEM_FAILURE_WINDOW_SECONDS", "600"))


# --- batches ---
def _code_record(batch: dict, maker: codes.CodeMaker, seq: int) -> dict:
    return {"code": maker.code(seq), "seq": seq, "batch_id": batch["batch_id"], "reward_id": batch["reward_id"],
            "campaign_id": batch["campaign_id"], "status": "UNUSED", "valid_from": batch.get("valid_from"),
            "expire_time": batch.get("expire_time")}


def _maker(scope: str, batch: dict, secret: bytes | None = None) -> codes.CodeMaker:
    return codes.CodeMaker(secret or dal.code_secret(scope), batch["length"], batch.get("prefix"))


def create_batch(caller: Caller, campaign_id: str, body: BatchIn) -> BatchCreated:
    """Up to 1,000 codes are written before answering (DONE); larger batches are queued in chunks and the
    worker writes them (GENERATING, with progress on the batch)."""
    caller.require(Role.ADMIN)
    t = caller.scope
    if campaigns_dal.get_campaign(t, campaign_id) is None:
        raise NotFound(f"campaign {campaign_id} is unknown", code="CAMPAIGN_NOT_FOUND")
    if body.expire_time and body.expire_time <= now():
        raise InvalidInput("body.expire_time", "expire_time must be in the future")
    reward = live_reward(t, body.reward_id)
    secret, start = dal.allocate_codes(t, body.count)
    batch = {"batch_id": new_id(), "campaign_id": campaign_id, "reward_id": body.reward_id, "total": body.count,
             "generated": 0, "exported": 0, "claimed": 0, "status": "GENERATING", "prefix": body.prefix,
             "length": body.length, "seq_start": start,
             "valid_from": to_iso(body.valid_from) or reward.get("valid_from"),
             "expire_time": to_iso(body.expire_time) or reward.get("valid_until"),
             "remark": body.remark, "created_by": caller.sub, "created_at": now_iso()}
    if body.count <= SYNC_BATCH_MAX:
        maker = _maker(t, batch, secret)
        dal.write_codes(t, (_code_record(batch, maker, start + n) for n in range(body.count)))
        batch.update(generated=body.count, status="DONE")
        dal.put_batch(t, batch)
    else:
        dal.put_batch(t, batch)
        files.enqueue([{"tenant_id": caller.tenant_id, "app_id": caller.app_id, "batch_id": batch["batch_id"],
                        "offset": offset, "count": min(CHUNK, body.count - offset)}
                       for offset in range(0, body.count, CHUNK)])
    metrics.add_metric(name="RedeemCodesRequested", unit="Count", value=body.count)
    return BatchCreated(**batch)


def generate_chunk(scope: str, batch_id: str, offset: int, count: int) -> None:
    """The worker's unit of work; safe to repeat (a chunk is counted once, its codes rewritten identically
    before the batch is DONE, when nobody can hold them yet)."""
    batch = _batch(scope, batch_id)
    if str(offset) in batch.get("chunks", set()):
        return  # a redelivery of a counted chunk
    maker = _maker(scope, batch)
    first = batch["seq_start"] + offset
    dal.write_codes(scope, (_code_record(batch, maker, seq) for seq in range(first, first + count)))
    dal.finish_chunk(scope, batch_id, offset, count, batch["total"])
    metrics.add_metric(name="RedeemCodesGenerated", unit="Count", value=count)


def _batch(scope: str, batch_id: str) -> dict:
    return known(dal.get_batch(scope, batch_id), BatchNotFound, f"batch {batch_id} is unknown")


def get_batch(caller: Caller, batch_id: str) -> Batch:
    caller.require(*STAFF)
    return Batch(**_batch(caller.scope, batch_id))


def export(caller: Caller, batch_id: str, body: ExportIn) -> Export:
    """Writes the file of the next `count` codes not yet exported (or issued), then claims them and records
    the export in one conditional update. The file comes first: a write that fails or times out claims
    nothing, and a claim lost to another export or a grant deletes the file and tries the next range.
    Only the account that generated the batch exports it."""
    caller.require(Role.ADMIN)
    t = caller.scope
    for _ in range(5):
        batch = _batch(t, batch_id)
        if batch["created_by"] != caller.sub:
            raise Forbidden("only the account that generated a batch may export it")
        if batch["status"] != "DONE":
            raise Conflict(f"batch {batch_id} is still generating", code="BATCH_NOT_READY")
        left = batch["total"] - batch["claimed"]
        if left <= 0:
            raise Conflict(f"every code of batch {batch_id} is exported", code="NOTHING_TO_EXPORT")
        count = min(body.count or left, left)
        record = {"export_id": new_id(), "batch_id": batch_id, "format": body.format, "count": count,
                  "first": batch["claimed"], "exported_by": caller.sub, "exported_at": now_iso()}
        key = f"exports/{caller.tenant_id}/{caller.app_id}/{batch_id}/{record['export_id']}.{body.format}"
        url = files.store(key, files.render(_export_rows(t, batch, record), body.format), body.format)
        try:
            dal.claim_export(t, batch, count, record)
            break
        except dal.ConditionFailed:
            files.discard(key)  # another export or a grant took codes meanwhile: this file is not ours
    else:
        raise Conflict("the batch is changing too fast; try again", code="BATCH_BUSY")
    metrics.add_metric(name="RedeemCodesExported", unit="Count", value=count)
    return Export(**record, url=url)


def _export_rows(t: str, batch: dict, record: dict) -> list[dict[str, str]]:
    maker = _maker(t, batch)
    first = batch["seq_start"] + record["first"]
    return [{"code": maker.code(seq), "valid_from": batch.get("valid_from") or "",
             "expire_time": batch.get("expire_time") or ""} for seq in range(first, first + record["count"])]


# --- codes ---
def _view(item: dict, batch: dict | None) -> CodeView:
    exported = bool(batch) and not item.get("issued_grant") and item["seq"] - batch["seq_start"] < batch["claimed"]
    return CodeView(masked_code=codes.mask(item["code"]), exported=exported, **item)


def list_codes(caller: Caller, batch_id: str, status: CodeStatus | None, limit: int,
               next_token: str | None) -> CodePage:
    caller.require(*STAFF)
    batch = _batch(caller.scope, batch_id)
    items, token = dal.list_codes(caller.scope, batch_id, status, limit, next_token)
    return CodePage(items=[_view(i, batch) for i in items], next_token=token)


def _code(scope: str, code: str) -> dict:
    return known(dal.get_code(scope, code), CodeNotFound, "no such code")


def get_code(caller: Caller, code: str) -> CodeView:
    caller.require(*STAFF)
    item = _code(caller.scope, codes.normalize(code))
    return _view(item, dal.get_batch(caller.scope, item["batch_id"]) if item.get("batch_id") else None)


def _refuse(item: dict, user_id: str | None, moment: str) -> None:
    """The error a code's state gives, most decisive first."""
    if item["status"] == "USED":
        raise CodeUsed("the code was redeemed already")
    if item["status"] == "REVOKED":
        raise CodeRevoked("the code was revoked")
    if user_id is not None and item.get("assigned_to") not in (None, user_id):
        raise CodeNotYours("the code is assigned to another user")
    if item.get("valid_from") and moment < item["valid_from"]:
        raise CodeNotYetValid(item["valid_from"])
    if item.get("expire_time") and moment >= item["expire_time"]:
        raise CodeExpired(f"the code expired at {item['expire_time']}")


def assign(caller: Caller, code: str, user_id: str) -> AssignedCode:
    """Binds an unused code to one user, who alone may then redeem it; repeating for the same user is fine."""
    caller.require(*STAFF)
    t, code = caller.scope, codes.normalize(code)
    try:
        item = dal.update_code(t, code, "SET assigned_to = :u",
                               "#s = :unused AND (attribute_not_exists(assigned_to) OR assigned_to = :u)",
                               {":u": user_id, ":unused": "UNUSED"})
    except dal.ConditionFailed as exc:
        item = _code(t, code)
        _refuse(item, user_id, now_iso())
        raise Conflict("the code changed meanwhile; try again") from exc
    batch = dal.get_batch(t, item["batch_id"]) if item.get("batch_id") else None
    return AssignedCode(code=code, **_view(item, batch).model_dump())


def _event_id(code: str, fact: str) -> str:
    return f"{fact}:{hashlib.sha256(code.encode()).hexdigest()[:24]}"


def revoke(caller: Caller, code: str) -> CodeView:
    """An unused code becomes unusable; repeating is fine; a used code is a 409."""
    caller.require(Role.ADMIN)
    t, code = caller.scope, codes.normalize(code)
    item = _code(t, code)  # what the event names (reward, batch, campaign) never changes on a code
    event = events.outbox(caller, source="rewards", detail_type="code.revoked", event_id=_event_id(code, "revoked"),
                          detail={"code_suffix": codes.suffix(code), "batch_id": item.get("batch_id"),
                                  "reward_id": item["reward_id"], "campaign_id": item.get("campaign_id")})
    try:
        item = dal.update_code(t, code, "SET #s = :revoked, revoked_at = :now", "#s = :unused",
                               {":revoked": "REVOKED", ":now": now_iso(), ":unused": "UNUSED"}, outbox=[event])
    except dal.ConditionFailed as exc:  # revoked already (its event went then), or used
        item = _code(t, code)
        if item["status"] == "USED":
            raise CodeUsed("the code was redeemed already: roll back its grant instead") from exc
    batch = dal.get_batch(t, item["batch_id"]) if item.get("batch_id") else None
    return _view(item, batch)


# --- redemption ---
def _reward(scope: str, reward_id: str, fresh: bool) -> dict:
    """The reward, cached per container; the redemption's condition on its version catches a stale copy."""
    key, clock = (scope, reward_id), time.monotonic()
    cached = _rewards.get(key)
    if fresh or cached is None or cached[0] < clock:
        item = dal.get_reward(scope, reward_id)
        if item is None:
            _rewards.pop(key, None)
            raise RewardNotFound(f"the code's reward {reward_id} is no longer available")
        _rewards[key] = cached = (clock + _REWARD_CACHE_SECONDS, item)
    return cached[1]


def _count_failure(scope: str, user_id: str, window: int) -> None:
    expires = (window + 2) * failure_window()
    if dal.count_failure(scope, user_id, window, expires) > max_failures():
        raise TooManyFailures("too many failed redemptions: try again later")


def _amount(reward: dict) -> int:
    content = reward.get("content") or {}
    return int(content.get("discount_value", 0)) if content.get("discount_type") == "AMOUNT" else 0


def discount(reward: dict, order: Order | None) -> int:
    """A coupon's discount on the order: AMOUNT capped at the order, PERCENT floored to the cent; an order under
    the coupon's `min_order_cents` is refused. Without an order: the AMOUNT, or 0 for a PERCENT."""
    content = reward.get("content") or {}
    kind, value = content.get("discount_type"), int(content.get("discount_value", 0))
    if kind is None:
        return 0
    if order is None:
        return value if kind == "AMOUNT" else 0
    minimum = int(content.get("min_order_cents", 0))
    if order.amount_cents < minimum:
        raise OrderBelowMinimum(minimum)
    return min(value, order.amount_cents) if kind == "AMOUNT" else order.amount_cents * value // 100


def _checked(caller: Caller, body: RedeemIn) -> tuple[str, dict, datetime]:
    """The normalized code, its item and the moment, after every rule on the code's own state (what redemption
    and validation share). Refusals a guesser could learn from count toward the user's lockout."""
    caller.require_user_access(body.user_id)
    t, user, code = caller.scope, body.user_id, codes.normalize(body.code)
    window = int(time.time()) // failure_window()
    if not codes.is_well_formed(code):
        _count_failure(t, user, window)
        raise MalformedCode()
    item, failures = dal.get_code_and_failures(t, code, user, window)
    if failures >= max_failures():
        raise TooManyFailures("too many failed redemptions: try again later")
    moment = now()
    try:
        if item is None:
            raise CodeNotFound("no such code")
        _refuse(item, user, iso(moment))
    except CodeUsed:
        if item.get("used_by") != user:  # not a guess: the user's own redemption, its event committed with it
            _count_failure(t, user, window)
        raise
    except (CodeNotFound, CodeRevoked, CodeNotYours):
        _count_failure(t, user, window)
        raise
    return code, item, moment


def redeem(caller: Caller, body: RedeemIn) -> Grant:
    code, item, moment = _checked(caller, body)
    grant = Grant(**_redeem(caller, code, item, body.user_id, moment, body.order))
    metrics.add_metric(name="RedeemCodesRedeemed", unit="Count", value=1)
    return grant


# What validation answers as a `reason` (the code redemption would answer); other errors are the caller's own.
_REASONS = (MalformedCode, CodeNotFound, CodeUsed, CodeRevoked, CodeNotYours, CodeNotYetValid, CodeExpired,
            RewardNotFound, OutOfStock, PerUserLimitReached, OrderBelowMinimum, GrantNotDistributed)


def validate(caller: Caller, body: RedeemIn) -> Validation:
    """Whether redeeming the code now would succeed, and the discount it would give the order: every rule of
    redemption, read rather than written (so a race may still refuse the redemption). Consumes nothing;
    refusals count toward the lockout as redemption's do."""
    reward = None
    try:
        code, item, _ = _checked(caller, body)
        reward = _reward(caller.scope, item["reward_id"], fresh=False)
        cents = discount(reward, body.order)
        _would_take(caller.scope, item, body.user_id, reward)
    except _REASONS as refused:
        return Validation(valid=False, reason=refused.code, discount_cents=0, reward=_summary(reward))
    return Validation(valid=True, discount_cents=cents, reward=_summary(reward))


def _summary(reward: dict | None) -> RewardSummary | None:
    return reward and RewardSummary(reward_id=reward["reward_id"], name=reward["name"],
                                    reward_type=reward["reward_type"],
                                    content={k: v for k, v in reward["content"].items() if k != "type"})


def _would_take(t: str, item: dict, user: str, reward: dict) -> None:
    """What the redemption's transaction would refuse: the issuing grant not delivered, or (for any other
    code) no stock left, or the user's allowance spent."""
    if item.get("issued_grant"):
        _issuing_grant_delivered(_grant_of(t, item["issued_grant"]))
        return
    if reward.get("total_stock") is not None and not any(
            s.get("available", 0) >= 1 for s in dal.get_shards(t, [reward])[reward["reward_id"]]):
        raise OutOfStock("the code's reward is out of stock")
    limit = reward.get("per_user_limit")
    if limit is not None and dal.get_allowance(t, reward["reward_id"], user) >= limit:
        raise PerUserLimitReached(f"user {user} reached the limit of {limit}")


def _issuing_grant_delivered(grant: dict) -> None:
    if grant["status"] in ("FAILED", "ROLLED_BACK", "EXPIRED"):
        raise CodeRevoked(f"the grant that issued the code is {grant['status'].lower()}")
    if grant["status"] != "DISTRIBUTED":
        raise GrantNotDistributed(f"the grant that issued the code is {grant['status'].lower()}")


def _grant_of(t: str, grant_id: str) -> dict:
    return known(dal.get_grant(t, grant_id), CodeNotFound, "no such code")


def _redeemed_event(caller: Caller, code: str, grant: dict, reward: dict, item: dict) -> dict:
    """`code.redeemed`, committed with the redemption."""
    amount = grant.get("discount_cents")
    return events.outbox(caller, source="rewards", detail_type="code.redeemed",
                         event_id=f"{grant['grant_id']}:redeemed", occurred_at=grant["updated_at"],
                         detail={"code_suffix": codes.suffix(code), "batch_id": item.get("batch_id"),
                                 "reward_id": grant["reward_id"], "campaign_id": item.get("campaign_id"),
                                 "user_id": grant["user_id"], "grant_id": grant["grant_id"],
                                 "reward_type": reward["reward_type"],
                                 "amount": _amount(reward) if amount is None else amount})


def _order_fields(reward: dict, order: Order | None) -> dict:
    return {"order_cents": order.amount_cents, "discount_cents": discount(reward, order)} if order else {}


def _redeem(caller: Caller, code: str, item: dict, user: str, moment, order: Order | None) -> dict:
    """The transaction (with its `code.redeemed` event), retried with a fresh reward when its version moved,
    and on another shard when one shard of a flash sale ran dry. A code a grant issued is that grant's: it
    becomes USED, taking nothing again (one code counts once against the per-user limit and the stock)."""
    t, stamp = caller.scope, iso(moment)
    for attempt in range(5):
        reward = _reward(t, item["reward_id"], fresh=attempt > 0)
        if item.get("issued_grant"):
            try:
                issued = {"grant_id": item["issued_grant"], "reward_id": item["reward_id"], "user_id": user,
                          "updated_at": stamp, **_order_fields(reward, order)}  # the grant's condition checks them
                dal.redeem_issued(t, code, user, stamp, item["issued_grant"], item["reward_id"], reward["version"],
                                  random.randrange(reward["shards"]), _order_fields(reward, order),
                                  outbox=[_redeemed_event(caller, code, issued, reward, item)])
                return _grant_of(t, item["issued_grant"])
            except dal.ConditionFailed as failed:
                if failed.failed(0):
                    _refuse(_code(t, code), user, stamp)
                    raise CodeUsed("the code was redeemed already") from failed
                if failed.failed(2):
                    _issuing_grant_delivered(_grant_of(t, item["issued_grant"]))
                    raise
                continue  # the reward changed: read it again
        limit, limited = reward.get("per_user_limit"), reward.get("total_stock") is not None
        valid_from, valid_until = validity(reward, moment)
        parts = bundles.pick(t, reward, 1, shard_order)
        for shard in shard_order(t, reward, 1):
            grant = {"grant_id": new_id(), "reward_id": item["reward_id"], "user_id": user, "status": "DISTRIBUTED",
                     "quantity": 1, "campaign_id": item.get("campaign_id"), "batch_id": item.get("batch_id"),
                     "code_suffix": codes.suffix(code), "code": code, "valid_from": valid_from,
                     "valid_until": valid_until, "details": {}, "created_at": stamp, "updated_at": stamp,
                     "shard": shard, "limited": limited, "counted": limit is not None, **_order_fields(reward, order)}
            if parts:
                grant["parts"] = parts  # what a rollback gives back
            allowance = dal.take_allowance(t, item["reward_id"], user, 1, limit) if limit is not None else None
            try:
                dal.redeem(t, code, user, stamp, grant,
                           dal.take_stock(t, item["reward_id"], shard, 1, limited=limited, into="issued",
                                          version=reward["version"]),
                           allowance, outbox=[_redeemed_event(caller, code, grant, reward, item)])
                return grant
            except dal.ConditionFailed as failed:
                if failed.failed(0):
                    _refuse(_code(t, code), user, stamp)
                    raise CodeUsed("the code was redeemed already") from failed
                if (failed.failed(1) and failed.moved(1, reward["version"])) or bundles.failed_part(failed, parts):
                    break  # the reward (or a part) changed: its shard holds a newer version than the cached one
                if failed.failed(3):
                    raise PerUserLimitReached(f"user {user} reached the limit of {limit}") from failed
                if not failed.failed(1):
                    raise
        else:
            raise OutOfStock("the code's reward is out of stock")
    raise Conflict("the reward is changing too fast; try again", code="REWARD_BUSY")


# --- codes issued to grants (the campaign engine) ---
def issue_code(caller: Caller, *, reward_id: str, user_id: str, campaign_id: str | None,
               grant_id: str, valid_until: str | None = None) -> IssuedCode:
    """A code bound to `user_id`: an unexported code of a finished batch of the reward if any, else a fresh
    one. Idempotent on grant_id (the grant's code record is written once, with the code)."""
    caller.require(*STAFF)
    t = caller.scope
    issued = dal.get_issued_code(t, grant_id)
    if issued:
        return IssuedCode(code=issued["code"], batch_id=issued.get("batch_id"), valid_until=issued.get("valid_until"))
    reward = live_reward(t, reward_id)
    if reward["reward_type"] != "REDEEM_CODE" and (reward.get("generator") or {}).get("type") != "redeem_code":
        raise InvalidInput("reward_id", f"reward {reward_id} is not a REDEEM_CODE reward")
    moment = now_iso()
    for batch in dal.batches_of_reward(t, reward_id):
        usable = batch["status"] == "DONE" and batch["claimed"] < batch["total"]
        if not usable or (batch.get("expire_time") and batch["expire_time"] <= moment):
            continue
        while (offset := dal.claim_one(t, batch["batch_id"])) is not None:
            record = {**_code_record(batch, _maker(t, batch), batch["seq_start"] + offset), "assigned_to": user_id}
            issued = _bind(t, grant_id, record, fresh=False)
            if issued:
                return issued
            # an operator assigned or revoked that code meanwhile: claim the next one
    generator = reward.get("generator") or {}
    length, prefix = generator.get("length", 12), generator.get("prefix")
    secret, seq = dal.allocate_codes(t, 1)
    batch = {"batch_id": None, "reward_id": reward_id, "campaign_id": campaign_id, "length": length, "prefix": prefix,
             "valid_from": reward.get("valid_from"),
             "expire_time": valid_until or validity(reward, now())[1]}
    record = {**_code_record(batch, codes.CodeMaker(secret, length, prefix), seq), "assigned_to": user_id,
              "issued_grant": grant_id}
    return _bind(t, grant_id, record, fresh=True)


def _bind(t: str, grant_id: str, record: dict, *, fresh: bool) -> IssuedCode | None:
    """Bind the code to the grant; None when the code itself was taken (assigned or revoked meanwhile)."""
    try:
        dal.issue_code(t, grant_id, record, fresh=fresh)
    except dal.ConditionFailed as failed:
        issued = dal.get_issued_code(t, grant_id)
        if issued is None:
            if failed.failed(1) and not fresh:
                return None
            raise
        logger.info("a concurrent call issued this grant's code", extra={"grant_id": grant_id})
        record = {"code": issued["code"], "batch_id": issued.get("batch_id"), "expire_time": issued.get("valid_until")}
    return IssuedCode(code=record["code"], batch_id=record.get("batch_id"), valid_until=record.get("expire_time"))
