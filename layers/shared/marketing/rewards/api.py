"""The in-process contract other capabilities (the campaign engine's grant pipeline) call: the caller first,
plain dicts out, domain errors from marketing.core.errors (subclasses in marketing.rewards.errors).

The caller is the one the other capability acts as: the grant pipeline's service caller of the event's tenant
and app, so every read and write stays in that app, and the events these calls cause carry it."""

from __future__ import annotations

from marketing.core.identity import Caller
from marketing.rewards import dal, service
from marketing.rewards.errors import RewardNotFound


def get_reward(caller: Caller, reward_id: str) -> dict | None:
    """The reward as the API returns it, None if unknown or deleted."""
    try:
        return service.get_reward(caller, reward_id).model_dump(mode="json")
    except RewardNotFound:
        return None


def reward_settings(caller: Caller, reward_id: str) -> dict | None:
    """The reward as `get_reward` answers it but without its stock, for one read instead of two: what the grant
    pipeline acts on (stock is decided by a reservation's conditions, never by a figure read before). None if
    unknown or deleted."""
    item = dal.get_reward(caller.scope, reward_id)
    return None if item is None else service.reward_view(item, []).model_dump(mode="json", exclude={"stock"})


def reserve(caller: Caller, *, reward_id: str, user_id: str, quantity: int, expire_minutes: int,
            reservation_id: str) -> dict:
    """A PENDING reservation; idempotent on reservation_id. Raises OutOfStock, RewardNotFound,
    PerUserLimitReached."""
    reservation, _ = service.reserve(caller, reward_id=reward_id, user_id=user_id, quantity=quantity,
                                     expire_minutes=expire_minutes, reservation_id=reservation_id)
    return reservation.model_dump(mode="json")


def confirm(caller: Caller, reservation_id: str) -> dict:
    """Safe to repeat; an expired or cancelled reservation raises ReservationClosed (a Conflict)."""
    return service.confirm(caller, reservation_id).model_dump(mode="json")


def cancel(caller: Caller, reservation_id: str) -> dict:
    """Safe to repeat; the quantity returns to stock once."""
    return service.cancel(caller, reservation_id).model_dump(mode="json")


def issue_code(caller: Caller, *, reward_id: str, user_id: str, campaign_id: str | None, grant_id: str,
               valid_until: str | None = None) -> dict:
    """A code bound to user_id (from an unexported batch code of the reward, else a fresh one valid until
    `valid_until`); idempotent on grant_id. Returns {"code", "batch_id", "valid_until"}."""
    from marketing.rewards import redeem

    return redeem.issue_code(caller, reward_id=reward_id, user_id=user_id, campaign_id=campaign_id,
                             grant_id=grant_id, valid_until=valid_until).model_dump(mode="json")


validity = service.validity  # (valid_from, valid_until) of a grant made at a moment: the same on every path
issued_content = service.issued_content  # points, coupon terms, card days: what a grant gives besides a code


def create_grant(caller: Caller, *, grant_id: str, reward_id: str, user_id: str, status: str,
                 task_id: str | None = None, campaign_id: str | None = None,
                 reservation_id: str | None = None, details: dict | None = None,
                 grant_batch_id: str | None = None) -> dict:
    """Idempotent on grant_id (a repeat returns the existing grant)."""
    return service.create_grant(caller, grant_id=grant_id, reward_id=reward_id, user_id=user_id,
                                status=status, task_id=task_id, campaign_id=campaign_id,
                                reservation_id=reservation_id, details=details,
                                grant_batch_id=grant_batch_id).model_dump(mode="json")


def transition_grant(caller: Caller, grant_id: str, *, to: str, expected: set[str] | None = None,
                     reason: str | None = None, details: dict | None = None,
                     validity: tuple[str | None, str | None] | None = None, outbox: list[dict] | None = None) -> dict:
    """Conditional on the current status being in `expected` (default: the legal predecessors of `to`);
    raises a Conflict when illegal; a repeat of a transition that happened returns the grant unchanged.
    `to="ROLLED_BACK"` rolls back: the stock and the user's allowance return exactly once. `outbox`: events
    (marketing.core.events.outbox) committed with the transition."""
    return service.transition_grant(caller, grant_id, to=to, expected=expected, reason=reason, details=details,
                                    validity=validity, outbox=outbox).model_dump(mode="json")


def get_grant(caller: Caller, grant_id: str) -> dict | None:
    item = dal.get_grant(caller.scope, grant_id)
    return None if item is None else service.Grant(**item).model_dump(mode="json")


def issue_in_bulk(caller: Caller, reward_id: str, users: list[tuple[str, str]], *, details: dict,
                  grant_batch_id: str | None, refused: dict[str, str]) -> list[dict]:
    """Each (grant_id, user_id) issued the reward (DISTRIBUTED) or FAILED with a reason; ids that exist are
    left as they are (rewards.bulk). Answers every one of these grants as stored."""
    from marketing.rewards import bulk

    return bulk.issue(caller, reward_id, users, details=details, grant_batch_id=grant_batch_id, refused=refused)


def stored_grants(caller: Caller, grant_ids: list[str]) -> dict[str, dict]:
    """The grants of these ids that exist, as stored (with the marks other capabilities keep on them), by id."""
    return {g["grant_id"]: g for g in dal.get_grants(caller.scope, grant_ids)}
