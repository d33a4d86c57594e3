"""The commission rules, free of I/O: how a platform commission splits over the invite chain, how order
updates merge, and which ledger entries a merge adds. The service reads and writes; this decides.

Order updates merge as a join: `paid`, `settled` and `void` only turn on, `refunded` only grows, the
status only moves forward. The ledger entries of a merge are the difference between the old and the new
progress, so repeated, late and out-of-order updates end in the same balances.

Rounding: each level's share is `floor(commission * rate_bp / 10000)`; the cents lost to rounding stay with
the operator, so the shares never add up to more than the platform commission. A partial refund reverses
`floor(share * refunded / pay_price)` of each share in total; a full refund (or a cancellation) reverses
whatever is left, so every balance returns exactly to its value before the order.

A frozen affiliate's share of an order paid while it is frozen is withheld: recorded in the ledger (a
`withheld` entry, never money owed) and never settled or reversed; the other levels are paid as usual.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum

BASIS_POINTS = 10_000


class OrderStatus(StrEnum):
    CREATED = "CREATED"
    PAID = "PAID"
    SETTLED = "SETTLED"
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"
    REFUNDED = "REFUNDED"
    CANCELLED = "CANCELLED"


RANK = {OrderStatus.CREATED: 0, OrderStatus.PAID: 1, OrderStatus.SETTLED: 2,
        OrderStatus.PARTIALLY_REFUNDED: 3, OrderStatus.REFUNDED: 4, OrderStatus.CANCELLED: 4}


class EntryKind(StrEnum):
    ACCRUAL = "accrual"  # on payment: pending
    SETTLEMENT = "settlement"  # on settlement: moves from pending to available once the hold is over
    REVERSAL = "reversal"  # on refund or cancellation, or by the operator: a negative entry
    WITHHELD = "withheld"  # a frozen affiliate's share: recorded, not owed


# The status a ledger entry lists under (`?status=`).
ENTRY_STATUS = {EntryKind.ACCRUAL: "pending", EntryKind.SETTLEMENT: "available", EntryKind.REVERSAL: "reversed",
                EntryKind.WITHHELD: "withheld"}


@dataclass(frozen=True)
class Share:
    level: int
    user_id: str
    amount: int


@dataclass(frozen=True)
class Progress:
    """What is known about an order, merged over every update seen."""

    status: OrderStatus = OrderStatus.CREATED
    paid: bool = False
    settled: bool = False
    void: bool = False  # fully refunded or cancelled: nothing of the commission is kept
    refunded: int = 0  # cumulative refund_price in cents (partial refunds)

    @staticmethod
    def of(status: OrderStatus, refund_price: int, settled: bool = False) -> Progress:
        """The progress a single update states on its own."""
        paid = status not in (OrderStatus.CREATED, OrderStatus.CANCELLED)
        return Progress(status=status, paid=paid, settled=settled or status == OrderStatus.SETTLED,
                        void=status in (OrderStatus.REFUNDED, OrderStatus.CANCELLED),
                        refunded=refund_price if status == OrderStatus.PARTIALLY_REFUNDED else 0)

    def merge(self, other: Progress) -> Progress:
        status = other.status if RANK[other.status] > RANK[self.status] else self.status
        return Progress(status=status, paid=self.paid or other.paid, settled=self.settled or other.settled,
                        void=self.void or other.void, refunded=max(self.refunded, other.refunded))


@dataclass(frozen=True)
class Entry:
    kind: EntryKind
    level: int
    user_id: str
    amount: int  # signed: reversals are negative
    available_at: str | None = None  # settlements, and reversals of settled money: when it is available


@dataclass(frozen=True)
class Ledger:
    """The per-order ledger state kept on the order item: the shares fixed at payment, what was reversed
    per level, and when settled money becomes available."""

    shares: tuple[Share, ...] = ()
    reversed: tuple[int, ...] = ()
    available_at: str | None = None
    withheld: tuple[Share, ...] = ()  # the shares of frozen affiliates, fixed at payment, never paid

    def reversed_at(self, i: int) -> int:
        return self.reversed[i] if i < len(self.reversed) else 0


@dataclass(frozen=True)
class Step:
    progress: Progress
    ledger: Ledger
    entries: list[Entry] = field(default_factory=list)
    paid_now: bool = False
    refunded_now: bool = False


def split(commission: int, rates_bp: list[int], chain: list[str]) -> list[Share]:
    """Shares of the platform commission: level 0 is the promoter, level k its k-th inviter. Levels
    without a user or a rate get nothing."""
    return [Share(level, user, commission * rates_bp[level] // BASIS_POINTS)
            for level, user in enumerate(chain) if level < len(rates_bp)]


def _reversal_target(share: int, progress: Progress, pay_price: int) -> int:
    if progress.void:
        return share
    if pay_price <= 0 or progress.refunded <= 0:
        return 0
    return share * min(progress.refunded, pay_price) // pay_price


def refund_state(progress: Progress) -> str | None:
    """What the refunds of a paid order amount to: None, "full", or the cumulative refund in cents."""
    if not progress.paid or not (progress.void or progress.refunded):
        return None
    return "full" if progress.void else str(progress.refunded)


def advance(old: Progress, ledger: Ledger, update: Progress, *, pay_price: int,
            shares_if_paid: list[Share] | None, available_at: str, frozen: frozenset[str] = frozenset()) -> Step:
    """Merge `update` into `old` and list the ledger entries the change adds, all to be written together.

    `shares_if_paid` is the split to fix if this merge is the payment (ignored otherwise), `frozen` the
    affiliates whose share of it is withheld; `available_at` is when money settled by this merge becomes
    available (the settlement time plus the hold)."""
    new = old.merge(update)
    entries: list[Entry] = []
    paid_now = new.paid and not old.paid
    if paid_now:
        split_ = [s for s in (shares_if_paid or []) if s.amount > 0]
        ledger = Ledger(shares=tuple(s for s in split_ if s.user_id not in frozen),
                        withheld=tuple(s for s in split_ if s.user_id in frozen))
        entries += [Entry(EntryKind.ACCRUAL, s.level, s.user_id, s.amount) for s in ledger.shares]
        entries += [Entry(EntryKind.WITHHELD, s.level, s.user_id, s.amount) for s in ledger.withheld]
    if not new.paid:
        return Step(new, ledger, entries)

    settled_before = old.settled and not paid_now
    reversed_ = []
    for i, share in enumerate(ledger.shares):
        done = ledger.reversed_at(i)
        delta = _reversal_target(share.amount, new, pay_price) - done
        if delta > 0:
            entries.append(Entry(EntryKind.REVERSAL, share.level, share.user_id, -delta,
                                 ledger.available_at if settled_before else None))
        reversed_.append(done + max(delta, 0))
    refunded_now = refund_state(new) is not None and refund_state(new) != refund_state(old)
    ledger = replace(ledger, reversed=tuple(reversed_))

    if new.settled and not settled_before:
        ledger = replace(ledger, available_at=available_at)
        for i, share in enumerate(ledger.shares):
            left = share.amount - ledger.reversed_at(i)
            if left > 0:
                entries.append(Entry(EntryKind.SETTLEMENT, share.level, share.user_id, left, available_at))
    return Step(new, ledger, entries, paid_now=paid_now, refunded_now=refunded_now)


def reverse_pending(ledger: Ledger, user_id: str, now: str) -> tuple[Ledger, list[Entry]]:
    """The operator takes back what `user_id` has not received of an order: its share's unreversed rest while
    the order is unsettled or its hold is not over. Marked reversed in the ledger, so a later settlement or
    refund finds nothing left of it; a second call finds nothing to do."""
    entries, reversed_ = [], list(ledger.reversed) + [0] * (len(ledger.shares) - len(ledger.reversed))
    if ledger.available_at is not None and ledger.available_at <= now:
        return ledger, []  # the money is the affiliate's already
    for i, share in enumerate(ledger.shares):
        left = share.amount - reversed_[i]
        if share.user_id == user_id and left > 0:
            entries.append(Entry(EntryKind.REVERSAL, share.level, user_id, -left, ledger.available_at))
            reversed_[i] = share.amount
    return replace(ledger, reversed=tuple(reversed_)), entries


@dataclass
class Balance:
    pending: int = 0
    available: int = 0
    reversed: int = 0
    withheld: int = 0  # frozen affiliates' shares: never owed
    by_level: dict[int, int] = field(default_factory=dict)


def balance(entries: list[Entry], now: str) -> Balance:
    """A distributor's balance is the sum of its entries. Settled money is pending until `available_at`;
    a reversal takes from wherever the reversed money sits at `now`."""
    total = Balance()
    for e in entries:
        released = e.available_at is not None and now >= e.available_at
        if e.kind == EntryKind.WITHHELD:
            total.withheld += e.amount
            continue  # recorded, not earned
        if e.kind == EntryKind.ACCRUAL:
            total.pending += e.amount
        elif e.kind == EntryKind.SETTLEMENT:
            if released:
                total.pending -= e.amount
                total.available += e.amount
            continue  # moves money, adds none
        else:
            total.reversed -= e.amount
            if released:
                total.available += e.amount
            else:
                total.pending += e.amount
        total.by_level[e.level] = total.by_level.get(e.level, 0) + e.amount
    return total
