"""Grants issued in bulk: a batch grant's users of a reward that needs no per-user work (marketing.campaigns.
batches decides which), many to a transaction instead of a reservation, a confirmation and four writes each.

Each transaction puts its grants (DISTRIBUTED, each only if its id is new), takes each user's allowance and the
group's units from one stock shard straight into `issued`, and checks the reward's version: the same conditions
as a reservation and its confirmation, all or nothing. A grant keeps its shard (as a redeemed code's grant
does), so a rollback returns its unit and allowance (service._rollback_returns).
"""

from __future__ import annotations

import random

from marketing.core.clock import iso, now, now_iso
from marketing.core.errors import Conflict
from marketing.core.identity import Caller
from marketing.core.observability import metrics
from marketing.rewards import dal
from marketing.rewards.service import STAFF, validity

# A transaction holds 100 actions: per user a grant (and an allowance with a per-user limit), then the shard
# and the reward.
GROUP_WITH_LIMIT = 49
GROUP = 98
REFUSALS_PER_WRITE = 100
_STALLS = 20  # rounds in which another writer took the shard's units or changed the reward


def issue(caller: Caller, reward_id: str, users: list[tuple[str, str]], *, details: dict,
          grant_batch_id: str | None = None, refused: dict[str, str] | None = None) -> list[dict]:
    """Issue the reward once to each (grant_id, user_id), or write the grant FAILED with its reason: out of
    stock, the per-user limit, the reward gone, or the caller's own `refused` reason (by user). A grant id that
    exists already was decided before (a repeated delivery) and is left as it is. Answers the grants, as
    written here or as they were found."""
    caller.require(*STAFF)
    t, refused = caller.scope, dict(refused or {})
    pending = [(gid, user) for gid, user in users if user not in refused]
    written: dict[str, dict] = {}
    existing: set[str] = set()
    stalls = 0
    while pending:
        if stalls > _STALLS:
            raise Conflict("the reward is changing too fast; try again", code="REWARD_BUSY")
        reward = dal.get_reward(t, reward_id)
        if reward is None:
            refused.update({user: "the reward is unknown or was deleted" for _, user in pending})
            break
        limit, limited = reward.get("per_user_limit"), reward.get("total_stock") is not None
        shard, left = _fullest_shard(t, reward)
        if limited and left == 0:
            refused.update({user: "out of stock" for _, user in pending})
            break
        size = GROUP if limit is None else GROUP_WITH_LIMIT
        group = pending[:min(size, left) if limited else size]
        moment = now()
        valid_from, valid_until = validity(reward, moment)
        records = [{"grant_id": gid, "reward_id": reward_id, "user_id": user, "status": "DISTRIBUTED",
                    "quantity": 1, "shard": shard, "limited": limited, "counted": limit is not None,
                    "details": {**details, "attempts": 1}, "grant_batch_id": grant_batch_id,
                    "valid_from": valid_from, "valid_until": valid_until,
                    "created_at": iso(moment), "updated_at": iso(moment)} for gid, user in group]
        try:
            dal.issue_grants(t, records, shard=shard, limited=limited, per_user_limit=limit,
                             reward_version=reward["version"])
        except dal.ConditionFailed as failed:
            n = len(group)
            found = {i for i in range(n) if failed.failed(i)}
            over = {i for i in range(n) if limit is not None and failed.failed(n + i)} - found
            existing |= {group[i][0] for i in found}
            refused.update({group[i][1]: "the user reached the reward's per-user limit" for i in over})
            pending = [p for i, p in enumerate(group) if i not in found | over] + pending[n:]
            stalls += not (found or over)  # the shard ran short or the reward changed: read both again
            continue
        metrics.add_metric(name="RewardsGranted", unit="Count", value=len(group))
        written.update({r["grant_id"]: r for r in records})
        pending = pending[len(group):]
    failures, found = _write_refusals(t, reward_id, [(gid, user) for gid, user in users if user in refused], refused,
                                      grant_batch_id)
    written.update(failures)
    return [*written.values(), *(dal.get_grants(t, sorted(existing | found)) if existing | found else [])]


def _fullest_shard(t: str, reward: dict) -> tuple[int, int]:
    """The shard holding the most units and how many (any shard of an unlimited reward, 0 left)."""
    if reward.get("total_stock") is None:
        return random.randrange(reward["shards"]), 0
    shards = dal.get_shards(t, [reward])[reward["reward_id"]]
    best = max(range(len(shards)), key=lambda i: shards[i].get("available", 0))
    return best, shards[best].get("available", 0)


def _write_refusals(t: str, reward_id: str, users: list[tuple[str, str]], reasons: dict[str, str],
                    grant_batch_id: str | None) -> tuple[dict[str, dict], set[str]]:
    """FAILED grants with their reasons; answers those written and the ids found taken."""
    moment = now_iso()
    written, found = {}, set()
    records = [{"grant_id": gid, "reward_id": reward_id, "user_id": user, "status": "FAILED",
                "reason": reasons[user], "grant_batch_id": grant_batch_id, "created_at": moment,
                "updated_at": moment} for gid, user in users]
    for start in range(0, len(records), REFUSALS_PER_WRITE):
        group = records[start:start + REFUSALS_PER_WRITE]
        while group:
            try:
                dal.put_new_grants(t, group)
                written.update({g["grant_id"]: g for g in group})
                break
            except dal.ConditionFailed as failed:  # decided by an earlier delivery: keep what it wrote
                found |= {g["grant_id"] for i, g in enumerate(group) if failed.failed(i)}
                group = [g for i, g in enumerate(group) if not failed.failed(i)]
    if written:
        metrics.add_metric(name="GrantsFailed", unit="Count", value=len(written))
    return written, found
