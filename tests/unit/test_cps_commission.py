"""The commission rules without I/O: splits, merges of order updates in any order, balances; hypothesis
explores chains, rates and amounts."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from marketing.cps.commission import (
    BASIS_POINTS,
    Entry,
    EntryKind,
    Ledger,
    OrderStatus,
    Progress,
    advance,
    balance,
    reverse_pending,
    split,
)
from marketing.cps.models import MAX_LEVELS

SETTLED_AT = "2026-01-08T00:00:00.000Z"
BEFORE_HOLD_ENDS, AFTER_HOLD_ENDS = "2026-01-05T00:00:00.000Z", "2027-01-01T00:00:00.000Z"


def test_the_articles_split():
    assert [(s.level, s.user_id, s.amount) for s in split(1000, [6000, 2000, 1000], ["C", "B", "A"])] == [
        (0, "C", 600), (1, "B", 200), (2, "A", 100)]


def test_rounding_is_down_and_the_rest_stays_with_the_operator():
    shares = split(999, [3333, 3333, 3334], ["a", "b", "c"])
    assert [s.amount for s in shares] == [332, 332, 333] and sum(s.amount for s in shares) <= 999


@st.composite
def rates_for(draw, depth: int):
    """One rate per level 0..depth, adding up to at most 100%."""
    left, rates = BASIS_POINTS, []
    for _ in range(depth + 1):
        rate = draw(st.integers(0, left))
        rates.append(rate)
        left -= rate
    return draw(st.permutations(rates))


@st.composite
def cases(draw):
    depth = draw(st.integers(0, MAX_LEVELS))
    return (depth, draw(rates_for(depth)), draw(st.integers(0, 10**9)), draw(st.integers(0, 10**9)))


@given(cases())
def test_shares_are_non_negative_and_never_exceed_the_platform_commission(case):
    depth, rates, commission_, _ = case
    shares = split(commission_, rates, [f"u{i}" for i in range(depth + 1)])
    assert len(shares) == depth + 1
    assert all(s.amount >= 0 for s in shares)
    assert sum(s.amount for s in shares) <= commission_


def _apply(updates: list[Progress], shares, pay_price: int) -> list[Entry]:
    progress, ledger, entries = Progress(), Ledger(), []
    for update in updates:
        step = advance(progress, ledger, update, pay_price=pay_price, shares_if_paid=shares,
                       available_at=SETTLED_AT)
        progress, ledger = step.progress, step.ledger
        entries += step.entries
    return entries


def _per_user(entries: list[Entry], now: str) -> dict[str, tuple[int, int]]:
    users = {e.user_id for e in entries}
    return {u: (b.pending, b.available) for u in users
            for b in [balance([e for e in entries if e.user_id == u], now)]}


UPDATE = st.builds(
    lambda status, refund, settled: Progress.of(status, refund, settled),
    st.sampled_from(list(OrderStatus)), st.integers(0, 10**6), st.booleans())


@settings(max_examples=150)
@given(cases(), st.lists(UPDATE, max_size=6), st.data())
def test_a_full_refund_returns_every_balance_to_its_value_before_the_order(case, updates, data):
    depth, rates, commission_, pay_price = case
    shares = split(commission_, rates, [f"u{i}" for i in range(depth + 1)])
    before = [Entry(EntryKind.ACCRUAL, 0, s.user_id, 7) for s in shares]  # an earlier order's money
    # Whatever else arrives, in whatever order, the order ends fully refunded
    sequence = data.draw(st.permutations([*updates, Progress.of(OrderStatus.REFUNDED, pay_price)]))
    entries = _apply(sequence, shares, pay_price)
    for now in (BEFORE_HOLD_ENDS, AFTER_HOLD_ENDS):
        assert _per_user(before + entries, now) == _per_user(before, now)
    # and each distributor's whole share shows as reversed
    for share in shares:
        assert balance([e for e in entries if e.user_id == share.user_id], AFTER_HOLD_ENDS).reversed == share.amount


@settings(max_examples=150)
@given(cases(), st.lists(UPDATE, min_size=1, max_size=6), st.data())
def test_any_delivery_order_ends_in_the_same_balances(case, updates, data):
    depth, rates, commission_, pay_price = case
    shares = split(commission_, rates, [f"u{i}" for i in range(depth + 1)])
    shuffled = data.draw(st.permutations(updates))
    repeated = data.draw(st.lists(st.sampled_from(updates), max_size=4))  # late repeats
    for now in (BEFORE_HOLD_ENDS, AFTER_HOLD_ENDS):
        a = _per_user(_apply(updates, shares, pay_price), now)
        b = _per_user(_apply(shuffled + repeated, shares, pay_price), now)
        assert a == b
    # Never more reversed than accrued, never a negative balance
    for pending, available in _per_user(_apply(updates, shares, pay_price), AFTER_HOLD_ENDS).values():
        assert pending >= 0 and available >= 0


def test_partial_refunds_reverse_proportionally_rounding_down():
    shares = split(1000, [6000, 2000, 1000], ["C", "B", "A"])
    entries = _apply([Progress.of(OrderStatus.PAID, 0), Progress.of(OrderStatus.PARTIALLY_REFUNDED, 1666)],
                     shares, 5000)
    assert [(e.user_id, e.amount) for e in entries if e.kind == EntryKind.REVERSAL] == [
        ("C", -199), ("B", -66), ("A", -33)]
    # A larger partial refund later reverses only the difference
    more = _apply([Progress.of(OrderStatus.PAID, 0), Progress.of(OrderStatus.PARTIALLY_REFUNDED, 1666),
                   Progress.of(OrderStatus.PARTIALLY_REFUNDED, 2500)], shares, 5000)
    assert sum(e.amount for e in more if e.user_id == "C" and e.kind == EntryKind.REVERSAL) == -300


def test_status_only_moves_forward():
    refunded = Progress().merge(Progress.of(OrderStatus.REFUNDED, 0))
    for older in (OrderStatus.CREATED, OrderStatus.PAID, OrderStatus.SETTLED, OrderStatus.PARTIALLY_REFUNDED):
        assert refunded.merge(Progress.of(older, 10)).status == OrderStatus.REFUNDED
    assert Progress.of(OrderStatus.PAID, 0).merge(Progress.of(OrderStatus.SETTLED, 0)).status == OrderStatus.SETTLED


def test_a_cancelled_unpaid_order_earns_nothing():
    shares = split(1000, [6000, 2000, 1000], ["C", "B", "A"])
    assert _apply([Progress.of(OrderStatus.CREATED, 0), Progress.of(OrderStatus.CANCELLED, 0)], shares, 5000) == []


def _paid(frozen=frozenset()):
    shares = split(1000, [6000, 2000, 1000], ["C", "B", "A"])
    return advance(Progress(), Ledger(), Progress.of(OrderStatus.PAID, 0), pay_price=5000, shares_if_paid=shares,
                   available_at=SETTLED_AT, frozen=frozen)


def test_a_frozen_affiliates_share_is_withheld_and_never_settled_or_reversed():
    step = _paid(frozenset({"C"}))
    assert [(e.kind, e.user_id, e.amount) for e in step.entries] == [
        (EntryKind.ACCRUAL, "B", 200), (EntryKind.ACCRUAL, "A", 100), (EntryKind.WITHHELD, "C", 600)]
    refunded = advance(step.progress, step.ledger, Progress.of(OrderStatus.REFUNDED, 5000), pay_price=5000,
                       shares_if_paid=None, available_at=SETTLED_AT)
    assert {e.user_id for e in refunded.entries} == {"B", "A"} and refunded.ledger.withheld == step.ledger.withheld
    total = balance(step.entries + refunded.entries, AFTER_HOLD_ENDS)
    assert (total.pending, total.withheld, total.by_level) == (0, 600, {1: 0, 2: 0})


def test_the_operator_reverses_only_what_is_not_yet_available_and_only_once():
    step = _paid()
    ledger, taken = reverse_pending(step.ledger, "C", BEFORE_HOLD_ENDS)
    assert [(e.kind, e.level, e.amount) for e in taken] == [(EntryKind.REVERSAL, 0, -600)]
    assert reverse_pending(ledger, "C", BEFORE_HOLD_ENDS) == (ledger, [])
    settled = advance(step.progress, ledger, Progress.of(OrderStatus.SETTLED, 0, True), pay_price=5000,
                      shares_if_paid=None, available_at=SETTLED_AT)
    assert {e.user_id for e in settled.entries} == {"B", "A"}  # nothing of C's share is left to settle
    assert balance(step.entries + taken + settled.entries, AFTER_HOLD_ENDS).by_level == {0: 0, 1: 200, 2: 100}
    # Settled money whose hold is over is the affiliate's: nothing to take back
    assert reverse_pending(settled.ledger, "B", AFTER_HOLD_ENDS)[1] == []
    on_hold = reverse_pending(settled.ledger, "B", BEFORE_HOLD_ENDS)[1]
    assert [(e.amount, e.available_at) for e in on_hold] == [(-200, SETTLED_AT)]
