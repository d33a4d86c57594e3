"""Domain errors of the rewards capability: subclasses of marketing.core.errors, so HTTP mapping stays in one
place, with stable codes clients can branch on."""

from __future__ import annotations

from marketing.core.errors import BadRequest, Conflict, Forbidden, Gone, InvalidInput, NotFound, TooManyRequests


class RewardNotFound(NotFound):
    code = "REWARD_NOT_FOUND"


class OutOfStock(Conflict):
    code = "OUT_OF_STOCK"


class PerUserLimitReached(Conflict):
    code = "PER_USER_LIMIT_REACHED"


class ReservationNotFound(NotFound):
    code = "RESERVATION_NOT_FOUND"


class ReservationClosed(Conflict):
    """Confirming a cancelled or expired reservation, or cancelling a confirmed one."""

    code = "RESERVATION_CLOSED"


class GrantNotFound(NotFound):
    code = "GRANT_NOT_FOUND"


class IllegalTransition(Conflict):
    code = "ILLEGAL_TRANSITION"


class CodeNotFound(NotFound):
    code = "CODE_NOT_FOUND"


class MalformedCode(BadRequest):
    code = "CODE_MALFORMED"

    def __init__(self, message: str = "the code is mistyped: its check character does not match"):
        super().__init__(message, details=[{"field": "code", "message": message}])


class CodeUsed(Conflict):
    code = "CODE_USED"


class CodeRevoked(Conflict):
    code = "CODE_REVOKED"


class CodeNotYetValid(InvalidInput):
    def __init__(self, valid_from: str):
        super().__init__("code", f"the code is valid from {valid_from}", code="CODE_NOT_YET_VALID")


class CodeExpired(Gone):
    code = "CODE_EXPIRED"


class CodeNotYours(Forbidden):
    code = "CODE_ASSIGNED_TO_ANOTHER_USER"


class BatchNotFound(NotFound):
    code = "BATCH_NOT_FOUND"


class TooManyFailures(TooManyRequests):
    code = "TOO_MANY_FAILED_REDEMPTIONS"


class OrderBelowMinimum(InvalidInput):
    def __init__(self, minimum: int):
        super().__init__("order.amount_cents", f"the code needs an order of at least {minimum} cents",
                         code="ORDER_BELOW_MINIMUM")


class GrantNotDistributed(Conflict):
    """A code a grant issued is redeemable once that grant is delivered."""

    code = "GRANT_NOT_DISTRIBUTED"
