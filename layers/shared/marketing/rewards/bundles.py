"""Coupon packs (BUNDLE rewards): a bundle names other rewards with quantities. Reserving or redeeming it takes
every part in the same transaction as the bundle itself (all or nothing); confirming moves every part to
issued, and a cancellation, an expiry or a rollback gives every part back. The parts' actions come last in
each transaction (dal.part_actions), so their positions are counted from its end.
"""

from __future__ import annotations

from marketing.core.errors import InvalidInput
from marketing.rewards import dal
from marketing.rewards.errors import OutOfStock
from marketing.rewards.models import RewardFields


def check_parts(scope: str, body: RewardFields) -> None:
    """Every part is a live reward of the app, and not a bundle itself."""
    if body.reward_type != "BUNDLE":
        return
    for i, part in enumerate(body.content.items):
        field = f"body.content.BUNDLE.items.{i}.reward_id"
        found = dal.get_reward(scope, part.reward_id)
        if found is None:
            raise InvalidInput(field, f"reward {part.reward_id} is unknown")
        if found["reward_type"] == "BUNDLE":
            raise InvalidInput(field, "a bundle cannot hold another bundle")


def pick(scope: str, reward: dict, quantity: int, shard_order) -> list[dict]:
    """The parts of a bundle for `quantity` bundles, each with a shard to take from (`shard_order` as the
    rewards service picks them) and the version its transaction checks; [] for any other reward. A part with
    no shard holding enough, or gone, is OutOfStock without a transaction."""
    if reward["reward_type"] != "BUNDLE":
        return []
    parts = []
    for item in reward["content"]["items"]:
        part = dal.get_reward(scope, item["reward_id"])
        need = item["quantity"] * quantity
        order = shard_order(scope, part, need) if part is not None else []
        if not order:
            raise OutOfStock(f"the bundle's part {item['reward_id']} is out of stock")
        parts.append({"reward_id": item["reward_id"], "shard": order[0], "quantity": need,
                      "limited": part.get("total_stock") is not None, "version": part["version"]})
    return parts


def failed_part(failed: dal.ConditionFailed, parts: list[dict]) -> str | None:
    """Why a part refused the transaction: "stock" (raises OutOfStock naming it), "changed" (its reward
    changed or went: read again), or None when no part refused."""
    first = len(failed.reasons) - dal.PART_ACTIONS * len(parts)
    for i, part in enumerate(parts):
        position = first + dal.PART_ACTIONS * i
        if failed.failed(position):
            if failed.moved(position, part["version"]):
                return "changed"
            raise OutOfStock(f"the bundle's part {part['reward_id']} is out of stock") from failed
    return None
