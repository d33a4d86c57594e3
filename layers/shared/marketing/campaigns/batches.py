"""Batch grants (the seed's 批量发放): one reward to up to 100,000 users.

The API stores the batch and puts its users on GrantBatchQueue in chunks. The worker grants a chunk's users in
bulk when the reward needs no per-user work (marketing.rewards.bulk: many grants, their allowances and their
stock in one transaction), else runs each through the same pipeline as a completed task (grants.grant_for:
validators, frequency, stock and per-user limit in DynamoDB conditions, generation, the reward's distributor).
Either way `reward.granted` goes out per grant. A user's grant id is derived from (batch, user), so however
often a chunk is delivered each user gets at most one grant; a chunk is counted once, when all its users are
decided (dal.count_chunk).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from marketing.campaigns import channels, dal, grants
from marketing.campaigns.models import GrantBatch, GrantBatchIn
from marketing.core.clock import now_iso
from marketing.core.errors import Conflict, InvalidInput, NotFound
from marketing.core.identity import Caller, Role, scope_of
from marketing.core.ids import new_id
from marketing.core.observability import logger, metrics
from marketing.rewards import api as rewards
from marketing.rewards import files
from marketing.rewards.errors import RewardNotFound

CHUNK = 500  # users per queue message: well under SQS's 256 KB with 128-character ids
QUEUE_VARIABLE = "GRANT_BATCH_QUEUE_URL"
# Time one user may take at worst (a distribution channel at its timeout, plus DynamoDB), and the counting
# that ends a chunk: a chunk starts no user once less than both is left of the invocation.
USER_SECONDS = channels.TIMEOUT_SECONDS + 2
COUNT_SECONDS = 5


class Unfinished(Exception):
    """Some users of the chunk are left for its next delivery; `backoff`: a distributor asked to retry later."""

    def __init__(self, message: str, *, backoff: bool):
        super().__init__(message)
        self.backoff = backoff


def grant_id_of(batch_id: str, user_id: str) -> str:
    return f"{batch_id}-{hashlib.sha256(user_id.encode()).hexdigest()[:24]}"


def _batch_id(caller: Caller, reward_id: str, key: str | None) -> str:
    if key is None:
        return new_id()
    return "gb" + hashlib.sha256(f"{caller.scope}|{caller.sub}|{reward_id}|{key}".encode()).hexdigest()[:24]


def _users(caller: Caller, body: GrantBatchIn) -> list[str]:
    if body.user_ids is not None:
        return sorted(set(body.user_ids))
    audience = dal.get_audience(caller.scope, body.audience_id)
    if audience is None:
        raise InvalidInput("body.audience_id", f"audience {body.audience_id} is unknown")
    if audience["audience_type"] != "LIST":
        raise InvalidInput("body.audience_id", "only a LIST audience names its users; give user_ids instead")
    return sorted(set(audience["user_ids"]))


def view(item: dict) -> GrantBatch:
    return GrantBatch(**item)


def create_batch(caller: Caller, reward_id: str, body: GrantBatchIn) -> GrantBatch:
    """The batch (QUEUING), its chunks on the queue, then PROCESSING. A repeat with the same idempotency key
    answers the same batch, and queues its chunks again if the first call stopped before they all were (the
    chunks are safe to repeat); the same key with other users or another reward is a 409."""
    caller.require(Role.ADMIN, Role.SERVICE)
    if rewards.reward_settings(caller, reward_id) is None:
        raise RewardNotFound(f"reward {reward_id} is unknown")
    users = _users(caller, body)
    fingerprint = hashlib.sha256("\n".join(users).encode()).hexdigest()
    moment = now_iso()
    batch = {"batch_id": _batch_id(caller, reward_id, body.idempotency_key), "reward_id": reward_id,
             "reason": body.reason, "audience_id": body.audience_id, "status": "QUEUING", "total": len(users),
             "granted": 0, "failed": 0, "done": 0, "failed_reasons": {}, "fingerprint": fingerprint,
             "created_by": caller.sub, "created_at": moment, "updated_at": moment}
    batch = {k: v for k, v in batch.items() if v is not None}
    existing = dal.put_grant_batch(caller.scope, batch)
    if existing is not None:
        if existing["fingerprint"] != fingerprint or existing["reward_id"] != reward_id:
            raise Conflict("this idempotency_key made a batch of other users or another reward",
                           code="IDEMPOTENCY_KEY_REUSED")
        if existing["status"] != "QUEUING":
            return view(existing)
    bid = batch["batch_id"]
    files.enqueue([{"tenant_id": caller.tenant_id, "app_id": caller.app_id, "batch_id": bid, "offset": offset,
                    "user_ids": users[offset:offset + CHUNK]} for offset in range(0, len(users), CHUNK)],
                  QUEUE_VARIABLE)
    dal.grant_batch_queued(caller.scope, bid)
    metrics.add_metric(name="BatchGrantsRequested", unit="Count", value=len(users))
    return view(dal.get_grant_batch(caller.scope, bid))


def get_batch(caller: Caller, batch_id: str) -> GrantBatch:
    caller.require(Role.ADMIN, Role.SERVICE)
    item = dal.get_grant_batch(caller.scope, batch_id)
    if item is None:
        raise NotFound(f"grant batch {batch_id} is unknown", code="GRANT_BATCH_NOT_FOUND")
    return view(item)


def _reason_key(reason: str | None) -> str:
    """A failure's reason without its particulars (an error's text), so the batch's tally stays small."""
    return (reason or "unknown").split(":")[0][:120]


def bulk_ok(reward: dict) -> bool:
    """A reward whose grant needs no per-user work (no code to issue, nothing to send, no frequency slot, no
    parts to reserve) is issued in bulk; any other goes through the grant pipeline user by user."""
    return ((reward.get("distributor") or {}).get("type", "auto") == "auto" and not grants.issues_codes(reward)
            and reward["reward_type"] != "BUNDLE"
            and not any(rule["type"] == "frequency" for rule in reward.get("validators", [])))


def process_chunk(tenant_id: str, app_id: str, batch_id: str, offset: int, user_ids: list[str], attempt: int,
                  seconds_left: Callable[[], float] = lambda: float("inf")) -> None:
    """The worker's unit: the chunk's users granted (in bulk, or each through the grant pipeline), then, once
    every one of them is decided, the chunk counted once. A user's grant id is fixed by (batch, user), so a
    repeated delivery finds the grants decided before and grants nobody twice. Users whose distribution asks
    for a retry, or who did not fit in the invocation, leave the chunk Unfinished: it comes back (`attempt` is
    its delivery count), and is counted when all are decided."""
    caller = grants.pipeline_caller(tenant_id, app_id)
    scope = scope_of(tenant_id, app_id)
    batch = dal.get_grant_batch(scope, batch_id)
    if batch is None:
        raise LookupError(f"grant batch {batch_id} is unknown")  # never: the batch is written before its chunks
    if str(offset) in batch.get("chunks", set()):
        return  # a redelivery of a counted chunk
    ids = {user: grant_id_of(batch_id, user) for user in user_ids}
    reward = rewards.reward_settings(caller, batch["reward_id"])
    if reward is not None and bulk_ok(reward):
        found = rewards.issue_in_bulk(caller, batch["reward_id"], [(ids[user], user) for user in user_ids],
                                      details=rewards.issued_content(reward), grant_batch_id=batch_id,
                                      refused={u: r for u in user_ids if (r := grants.refusal_of(reward, u))})
        # Sent again for grants an earlier delivery issued: its events may have been lost.
        grants.publish_granted(caller, [g for g in found if g["status"] == "DISTRIBUTED"])
    else:
        found = list(rewards.stored_grants(caller, list(ids.values())).values())
    decided = {g["grant_id"]: g for g in found if g["status"] in grants.FINAL}
    rest = [user for user in user_ids if ids[user] not in decided]
    waiting, retry = _through_the_pipeline(caller, batch, reward, rest, ids, attempt, seconds_left, decided)
    if retry or waiting:
        logger.info("chunk left users for its next delivery",
                    extra={"batch_id": batch_id, "retry": retry, "waiting": waiting})
        raise Unfinished(f"{retry + waiting} users left for the next delivery", backoff=retry > 0)
    reasons = [_reason_key(g.get("reason")) if g["status"] == "FAILED" else None for g in decided.values()]
    dal.count_chunk(scope, batch_id, offset, reasons, now_iso())


def _through_the_pipeline(caller: Caller, batch: dict, reward: dict | None, users: list[str], ids: dict[str, str],
                          attempt: int, seconds_left: Callable[[], float], decided: dict[str, dict]) -> tuple[int, int]:
    """Each user through the grant pipeline while the invocation has time, the decided grants added to
    `decided`: answers (users waiting for time or a racing delivery, users whose distribution is retried)."""
    log = {"reward_id": batch["reward_id"], "task_id": None, "campaign_id": None,
           "completed_at": batch["created_at"], "contact": None}  # frequency windows: the batch's own time
    waiting = retry = 0
    for user in users:
        if seconds_left() < USER_SECONDS + COUNT_SECONDS:
            waiting += 1
            continue
        try:
            grant = grants.grant_for(caller, {**log, "completion_id": ids[user], "user_id": user}, attempt,
                                     reward=reward, grant_batch_id=batch["batch_id"])
        except grants.RetryLater:
            retry += 1
            continue
        if grant["status"] in grants.FINAL:
            decided[grant["grant_id"]] = grant
        else:  # a racing delivery holds it
            waiting += 1
    return waiting, retry
