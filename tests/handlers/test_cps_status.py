"""Affiliate status on moto: a frozen affiliate's share is withheld (recorded, not owed), the upline still earns,
it invites nobody, the operator reverses what it has pending, events on the bus; every write safe to repeat."""

from __future__ import annotations

import pytest

from marketing.core import dynamo
from tests.handlers import test_cps_webhook as cps
from tests.handlers.test_cps_webhook import LONG_AGO, earnings, entries, order, webhook
from tests.support import body_of, bus_tap, claims, http_event

fns, abc = cps.fns, cps.abc  # the CPS functions and the article's chain A → B → C, as fixtures here too

ADMIN = claims("t1", "ops", "[admin]")
STATUS_ROUTE = "/v1/affiliates/{user_id}/status"
REVERSAL_ROUTE = "/v1/affiliates/{user_id}/pending-reversals"


def set_status(fns, user, status, reason="fraud review", claims_=ADMIN):
    return fns["api"](http_event("PUT", f"/v1/affiliates/{user}/status", STATUS_ROUTE,
                                 body={"status": status, "reason": reason}, claims_=claims_))


def reverse_pending(fns, user, claims_=ADMIN):
    return fns["api"](http_event("POST", f"/v1/affiliates/{user}/pending-reversals", REVERSAL_ROUTE,
                                 body={"reason": "fraud"}, claims_=claims_))


def test_a_frozen_promoter_earns_nothing_on_orders_paid_while_frozen_but_its_upline_does(fns, abc, stack):
    # Given C (the promoter of the pid) frozen
    frozen = set_status(fns, "C", "FROZEN")
    assert frozen["statusCode"] == 200
    assert (body_of(frozen)["status"], body_of(frozen)["status_reason"]) == ("FROZEN", "fraud review")
    # When an order of C's pid is paid, delivered twice
    for _ in range(2):
        assert webhook(fns, order(abc))["statusCode"] == 200
    # Then C's share is withheld in the ledger, B and A earn their levels
    assert entries(stack) == [("A", "accrual", 100), ("B", "accrual", 200), ("C", "withheld", 600)]
    c = earnings(fns, "C")
    assert (c["pending"], c["available"], c["withheld"], c["by_level"]) == (0, 0, 600, {})
    assert earnings(fns, "B")["pending"] == 200
    # And settlement and a full refund never touch the withheld share
    webhook(fns, order(abc, "SETTLED", settled_at=LONG_AGO))
    webhook(fns, order(abc, "REFUNDED", refund_price=5000))
    assert [e for e in entries(stack) if e[0] == "C"] == [("C", "withheld", 600)]
    assert earnings(fns, "B") | {"user_id": None} == {"user_id": None, "pending": 0, "available": 0,
                                                      "reversed": 200, "withheld": 0, "by_level": {"1": 0}}


def test_an_order_paid_before_the_freeze_is_earned_and_after_unfreezing_earning_resumes(fns, abc, stack):
    webhook(fns, order(abc, order_id="before"))
    set_status(fns, "C", "FROZEN")
    webhook(fns, order(abc, order_id="while"))
    set_status(fns, "C", "ACTIVE", "cleared")
    webhook(fns, order(abc, order_id="after"))
    assert sorted(e for e in entries(stack) if e[0] == "C") == [
        ("C", "accrual", 600), ("C", "accrual", 600), ("C", "withheld", 600)]


def test_a_freeze_landing_between_the_read_and_the_save_is_not_lost(fns, abc, stack):
    # Given C freezes just after the webhook read C's status as active, before its transaction
    raced: dict = {}

    def freeze_first(**_):
        if not raced:
            raced["answer"] = None
            raced["answer"] = set_status(fns, "C", "FROZEN")

    events = dynamo.client().meta.events
    events.register("provide-client-params.dynamodb.TransactWriteItems", freeze_first)
    try:
        assert webhook(fns, order(abc))["statusCode"] == 200
    finally:
        events.unregister("provide-client-params.dynamodb.TransactWriteItems", freeze_first)
    # Then the save failed on C's status check, the retry read it frozen: C's share is withheld, not paid
    assert raced["answer"]["statusCode"] == 200
    assert entries(stack) == [("A", "accrual", 100), ("B", "accrual", 200), ("C", "withheld", 600)]


def test_freezing_is_idempotent_and_publishes_one_event_per_change(fns, abc, stack):
    read_bus = bus_tap(stack, {"source": ["marketing.cps"], "detail-type": ["affiliate.frozen", "affiliate.unfrozen"]})
    first, again = set_status(fns, "B", "FROZEN"), set_status(fns, "B", "FROZEN", "another reason")
    assert body_of(again) == body_of(first)  # the repeat changes nothing, not even the reason
    set_status(fns, "B", "ACTIVE", "cleared")
    assert body_of(set_status(fns, "A", "ACTIVE"))["status_changed_at"] is None  # never frozen: nothing to do
    delivered = read_bus()
    by_id = {e["detail"]["event_id"]: (e["detail-type"], e["detail"]["user_id"], e["detail"]["reason"])
             for e in delivered}
    assert sorted(by_id.values()) == [("affiliate.frozen", "B", "fraud review"),
                                      ("affiliate.unfrozen", "B", "cleared")]
    assert {e["detail"]["tenant_id"] for e in delivered} == {"t1"}


def test_a_frozen_affiliate_cannot_invite(fns, abc):
    c = body_of(fns["api"](http_event("GET", "/v1/affiliates/C", "/v1/affiliates/{user_id}", claims_=ADMIN)))
    set_status(fns, "C", "FROZEN")
    refused = fns["api"](http_event("POST", "/v1/affiliates", "/v1/affiliates",
                                    body={"user_id": "D", "invite_code": c["invite_code"]}, claims_=ADMIN))
    assert refused["statusCode"] == 409 and body_of(refused)["error"]["code"] == "INVITER_FROZEN"
    set_status(fns, "C", "ACTIVE", "cleared")
    assert fns["api"](http_event("POST", "/v1/affiliates", "/v1/affiliates",
                                 body={"user_id": "D", "invite_code": c["invite_code"]},
                                 claims_=ADMIN))["statusCode"] == 201


def test_the_operator_reverses_a_frozen_affiliates_pending_share_once(fns, abc, stack):
    # Given two orders paid while C was active, one of them settled long ago (its money is C's)
    webhook(fns, order(abc, order_id="pending"))
    webhook(fns, order(abc, order_id="settled"))
    webhook(fns, order(abc, "SETTLED", order_id="settled", settled_at=LONG_AGO))
    assert reverse_pending(fns, "C")["statusCode"] == 409  # only a frozen affiliate's
    set_status(fns, "C", "FROZEN")
    # When the operator reverses C's pending commissions, twice
    first, again = body_of(reverse_pending(fns, "C")), body_of(reverse_pending(fns, "C"))
    assert first == {"user_id": "C", "orders": 1, "amount": 600}
    assert again == {"user_id": "C", "orders": 0, "amount": 0}
    c = earnings(fns, "C")
    assert (c["pending"], c["available"], c["reversed"]) == (0, 600, 600)
    # And a later settlement or refund of that order finds nothing left of C's share; B keeps its own
    webhook(fns, order(abc, "SETTLED", order_id="pending", settled_at=LONG_AGO))
    webhook(fns, order(abc, "REFUNDED", order_id="pending", refund_price=5000))
    assert earnings(fns, "C")["available"] == 600 and earnings(fns, "C")["reversed"] == 600
    assert earnings(fns, "B")["available"] == 200  # the settled order's; the refunded order's share went back


@pytest.mark.parametrize(("call", "status"), [
    (lambda fns: set_status(fns, "C", "FROZEN", claims_=claims("t1", "C", "[user]")), 403),
    (lambda fns: reverse_pending(fns, "C", claims_=claims("t1", "svc", "[service]")), 403),
    (lambda fns: set_status(fns, "nobody", "FROZEN"), 404),
    (lambda fns: set_status(fns, "C", "PAUSED"), 422),
    (lambda fns: set_status(fns, "C", "FROZEN", reason=""), 422),
])
def test_status_routes_are_the_admins_and_validate(fns, abc, call, status):
    assert call(fns)["statusCode"] == status
