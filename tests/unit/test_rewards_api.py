"""The in-process contract the campaign engine relies on (marketing.rewards.api), on template.yaml's table in
moto: rewards, reservations that never over-issue, grants and their transitions."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta

import pytest
from botocore.exceptions import ClientError

from marketing.core import clock
from marketing.core.errors import Conflict, NotFound
from marketing.core.identity import Caller, Role
from marketing.rewards import api, dal, service
from marketing.rewards.errors import OutOfStock, PerUserLimitReached, ReservationClosed, RewardNotFound
from marketing.rewards.models import RewardFields, RewardIn
from tests.support import recording_touches

T = "t1"
ADMIN = Caller(sub="ops", tenant_id=T, app_id="app1", roles=frozenset({Role.ADMIN}))
CALLER = Caller(sub="campaigns", tenant_id=T, app_id="app1", roles=frozenset({Role.SERVICE}))  # as the pipeline
OTHERS = [Caller(sub="campaigns", tenant_id=t, app_id=app, roles=frozenset({Role.SERVICE}))  # other tenant, other app
          for t, app in (("t2", "app1"), (T, "app2"))]


def make_reward(total_stock: int | None = 10, per_user_limit: int | None = None, shards: int = 1, **extra) -> str:
    body = RewardIn(name="Gift", reward_type="COUPON", content={"discount_type": "AMOUNT", "discount_value": 500},
                    total_stock=total_stock, per_user_limit=per_user_limit, shards=shards, **extra)
    return service.create_reward(ADMIN, body).reward_id


def stock(reward_id: str) -> dict:
    return api.get_reward(CALLER, reward_id)["stock"]


@contextmanager
def dynamodb_requests(hook=None):
    """The name of every DynamoDB request sent; `hook(name)` runs just before each one is sent."""
    sent: list[str] = []

    def record(model, **_):
        sent.append(model.name)
        if hook:
            hook(model.name)

    events = dal.dynamo.client().meta.events
    events.register("provide-client-params.dynamodb", record)
    try:
        yield sent
    finally:
        events.unregister("provide-client-params.dynamodb", record)


def after_expiry(monkeypatch, minutes: int = 2) -> None:
    """The service's clock moves `minutes` ahead."""
    later = clock.now() + timedelta(minutes=minutes)
    monkeypatch.setattr(service, "now_iso", lambda: clock.iso(later))
    monkeypatch.setattr(service, "now", lambda: later)


def test_get_reward_is_a_plain_dict_and_none_when_unknown_or_deleted(stack):
    reward_id = make_reward(total_stock=7)
    reward = api.get_reward(CALLER, reward_id)
    assert reward["reward_id"] == reward_id and reward["content"]["discount_value"] == 500
    assert reward["stock"] == {"total": 7, "available": 7, "reserved": 0, "issued": 0}
    assert api.get_reward(CALLER, "nope") is None
    assert all(api.get_reward(other, reward_id) is None for other in OTHERS)
    service.delete_reward(ADMIN, reward_id)
    assert api.get_reward(CALLER, reward_id) is None


def test_reward_settings_are_the_reward_without_its_stock_in_one_read(stack):
    reward_id = make_reward(total_stock=7, shards=3)
    with dynamodb_requests() as sent:
        settings = api.reward_settings(CALLER, reward_id)
    assert sent == ["GetItem"]
    assert settings == {k: v for k, v in api.get_reward(CALLER, reward_id).items() if k != "stock"}
    assert api.reward_settings(CALLER, "nope") is None
    assert all(api.reward_settings(other, reward_id) is None for other in OTHERS)


def test_reserve_confirm_cancel_move_stock_once(stack):
    reward_id = make_reward(total_stock=3)
    first = api.reserve(CALLER, reward_id=reward_id, user_id="u1", quantity=2, expire_minutes=5, reservation_id="r1")
    again = api.reserve(CALLER, reward_id=reward_id, user_id="u1", quantity=2, expire_minutes=5, reservation_id="r1")
    assert first["status"] == "PENDING" and again == first
    assert stock(reward_id) == {"total": 3, "available": 1, "reserved": 2, "issued": 0}

    assert api.confirm(CALLER, "r1")["status"] == "CONFIRMED"
    assert api.confirm(CALLER, "r1")["status"] == "CONFIRMED"
    assert stock(reward_id) == {"total": 3, "available": 1, "reserved": 0, "issued": 2}

    api.reserve(CALLER, reward_id=reward_id, user_id="u2", quantity=1, expire_minutes=5, reservation_id="r2")
    with pytest.raises(OutOfStock):
        api.reserve(CALLER, reward_id=reward_id, user_id="u3", quantity=1, expire_minutes=5, reservation_id="r3")
    assert api.cancel(CALLER, "r2")["status"] == "CANCELLED"
    assert api.cancel(CALLER, "r2")["status"] == "CANCELLED"
    assert stock(reward_id) == {"total": 3, "available": 1, "reserved": 0, "issued": 2}
    with pytest.raises(ReservationClosed):
        api.confirm(CALLER, "r2")
    with pytest.raises(Conflict):
        api.cancel(CALLER, "r1")  # confirmed: undone by rolling back its grant


def test_reserve_errors(stack):
    reward_id = make_reward(total_stock=None, per_user_limit=2)
    with pytest.raises(RewardNotFound):
        api.reserve(CALLER, reward_id="unknown", user_id="u1", quantity=1, expire_minutes=5, reservation_id="x")
    api.reserve(CALLER, reward_id=reward_id, user_id="u1", quantity=2, expire_minutes=5, reservation_id="a")
    with pytest.raises(PerUserLimitReached):
        api.reserve(CALLER, reward_id=reward_id, user_id="u1", quantity=1, expire_minutes=5, reservation_id="b")
    api.cancel(CALLER, "a")  # the allowance comes back with the stock
    api.reserve(CALLER, reward_id=reward_id, user_id="u1", quantity=1, expire_minutes=5, reservation_id="c")
    with pytest.raises(Conflict):  # a reservation id names one reservation only
        api.reserve(CALLER, reward_id=reward_id, user_id="u2", quantity=1, expire_minutes=5, reservation_id="c")
    assert stock(reward_id) == {"total": None, "available": None, "reserved": 1, "issued": 0}


def test_expired_reservations_return_stock_by_themselves(stack, monkeypatch):
    reward_id = make_reward(total_stock=2)
    api.reserve(CALLER, reward_id=reward_id, user_id="u1", quantity=2, expire_minutes=1, reservation_id="r1")
    assert service.sweep() == 0  # not yet due
    after_expiry(monkeypatch)
    with pytest.raises(ReservationClosed, match="expired"):
        api.confirm(CALLER, "r1")
    assert service.sweep() == 1
    assert service.sweep() == 0
    assert stock(reward_id) == {"total": 2, "available": 2, "reserved": 0, "issued": 0}
    assert api.cancel(CALLER, "r1")["status"] == "EXPIRED"


def test_the_sweeper_releases_a_due_reservation_with_one_transaction_and_no_read(stack, monkeypatch):
    # Given a pending reservation past its expiry
    reward_id = make_reward(total_stock=2, per_user_limit=2)
    api.reserve(CALLER, reward_id=reward_id, user_id="u1", quantity=2, expire_minutes=1, reservation_id="r1")
    after_expiry(monkeypatch)

    # When the sweeper runs
    with dynamodb_requests() as sent:
        assert service.sweep() == 1

    # Then it queried its work list and wrote one transaction: the reservation was never read
    assert set(sent) == {"Query", "TransactWriteItems"} and sent.count("TransactWriteItems") == 1
    assert stock(reward_id) == {"total": 2, "available": 2, "reserved": 0, "issued": 0}
    assert api.cancel(CALLER, "r1")["status"] == "EXPIRED"
    api.reserve(CALLER, reward_id=reward_id, user_id="u1", quantity=2, expire_minutes=5, reservation_id="r2")


def test_a_busy_reservation_does_not_hold_back_the_sweep(stack, monkeypatch):
    # Given two due reservations, the first of whose releases stays busy through every retry
    reward_id = make_reward(total_stock=4, per_user_limit=4)
    for rid in ("r1", "r2"):
        api.reserve(CALLER, reward_id=reward_id, user_id="u1", quantity=2, expire_minutes=1, reservation_id=rid)
    after_expiry(monkeypatch)
    conflict = ClientError({"Error": {"Code": "TransactionCanceledException", "Message": "busy"},
                            "CancellationReasons": [{"Code": "TransactionConflict"}]}, "TransactWriteItems")

    def busy(params, **_):
        if any("#r1'" in str(action) or "'r1'" in str(action) for action in params["TransactItems"]):
            raise conflict

    events = dal.dynamo.client().meta.events
    events.register("provide-client-params.dynamodb.TransactWriteItems", busy)
    try:
        # When the sweeper runs, then it releases the other one, and the busy one waits for the next run
        assert service.sweep() == 1
    finally:
        events.unregister("provide-client-params.dynamodb.TransactWriteItems", busy)
    assert stock(reward_id)["available"] == 2
    assert service.sweep() == 1 and stock(reward_id)["available"] == 4


@pytest.mark.parametrize("rival", ["confirm", "cancel", "sweeper"])
def test_a_sweep_that_loses_a_race_releases_nothing(stack, monkeypatch, rival):
    # Given a due reservation that another writer moves between the sweeper's query and its transaction
    reward_id = make_reward(total_stock=2, per_user_limit=2)
    record = api.reserve(CALLER, reward_id=reward_id, user_id="u1", quantity=2, expire_minutes=1, reservation_id="r1")
    just_before = clock.iso(clock.now())  # a confirm that read its clock before the expiry
    after_expiry(monkeypatch)
    outcome: list = []

    def race(name: str) -> None:
        if name == "TransactWriteItems" and not outcome:
            outcome.append(rival)
            if rival == "confirm":
                dal.confirm(CALLER.scope, record, just_before)
            elif rival == "cancel":
                api.cancel(CALLER, "r1")
            else:
                outcome.append(service.sweep())

    # When the sweeper runs
    with dynamodb_requests(race):
        assert service.sweep() == 0

    # Then the rival's move stands and the quantity came back at most once
    assert outcome == ([rival, 1] if rival == "sweeper" else [rival])  # a rival sweeper expired it
    if rival == "confirm":
        assert api.confirm(CALLER, "r1")["status"] == "CONFIRMED"
        assert stock(reward_id) == {"total": 2, "available": 0, "reserved": 0, "issued": 2}
    else:
        assert api.cancel(CALLER, "r1")["status"] == ("CANCELLED" if rival == "cancel" else "EXPIRED")
        assert stock(reward_id) == {"total": 2, "available": 2, "reserved": 0, "issued": 0}
        api.reserve(CALLER, reward_id=reward_id, user_id="u1", quantity=2, expire_minutes=5, reservation_id="r2")


def test_grants_are_idempotent_and_move_only_along_legal_transitions(stack):
    reward_id = make_reward()
    grant = api.create_grant(CALLER, grant_id="g1", reward_id=reward_id, user_id="u1", status="PENDING",
                             task_id="task-1", campaign_id="c1")
    assert api.create_grant(CALLER, grant_id="g1", reward_id=reward_id, user_id="u9", status="FAILED") == grant
    assert api.get_grant(CALLER, "g1") == grant and api.get_grant(CALLER, "nope") is None

    assert api.transition_grant(CALLER, "g1", to="RESERVED")["status"] == "RESERVED"
    assert api.transition_grant(CALLER, "g1", to="RESERVED")["status"] == "RESERVED"  # a repeat changes nothing
    with pytest.raises(Conflict):
        api.transition_grant(CALLER, "g1", to="USED")
    with pytest.raises(Conflict):
        api.transition_grant(CALLER, "g1", to="GENERATED", expected={"PENDING"})
    failed = api.transition_grant(CALLER, "g1", to="FAILED", reason="webhook down")
    assert failed["status"] == "FAILED" and failed["reason"] == "webhook down"
    with pytest.raises(Conflict):
        api.transition_grant(CALLER, "g1", to="DISTRIBUTED")
    with pytest.raises(NotFound):
        api.transition_grant(CALLER, "nope", to="FAILED")


def test_rolling_back_a_reserved_grant_returns_stock_and_allowance_once(stack):
    reward_id = make_reward(total_stock=5, per_user_limit=1)
    api.reserve(CALLER, reward_id=reward_id, user_id="u1", quantity=1, expire_minutes=5, reservation_id="r1")
    api.create_grant(CALLER, grant_id="g1", reward_id=reward_id, user_id="u1", status="RESERVED", reservation_id="r1")
    api.confirm(CALLER, "r1")
    api.transition_grant(CALLER, "g1", to="DISTRIBUTED")
    assert stock(reward_id) == {"total": 5, "available": 4, "reserved": 0, "issued": 1}

    with dynamodb_requests() as sent:
        rolled = api.transition_grant(CALLER, "g1", to="ROLLED_BACK")
    assert rolled["status"] == "ROLLED_BACK"
    # the grant and its reservation are read once each; the answer comes from the write, not a read back
    assert sorted(sent) == ["GetItem", "GetItem", "TransactWriteItems"]
    with dynamodb_requests() as sent:
        assert api.transition_grant(CALLER, "g1", to="ROLLED_BACK") == rolled
    assert sent == ["GetItem"]
    assert api.get_grant(CALLER, "g1") == rolled
    assert stock(reward_id) == {"total": 5, "available": 5, "reserved": 0, "issued": 0}
    # the allowance came back: the same user may reserve again
    api.reserve(CALLER, reward_id=reward_id, user_id="u1", quantity=1, expire_minutes=5, reservation_id="r2")


def test_shards_hold_the_invariant_and_stock_changes_respect_the_floor(stack):
    reward_id = make_reward(total_stock=5, shards=4)
    for n in range(5):
        api.reserve(CALLER, reward_id=reward_id, user_id=f"u{n}", quantity=1, expire_minutes=5, reservation_id=f"r{n}")
    with pytest.raises(OutOfStock):
        api.reserve(CALLER, reward_id=reward_id, user_id="late", quantity=1, expire_minutes=5, reservation_id="late")
    assert stock(reward_id) == {"total": 5, "available": 0, "reserved": 5, "issued": 0}

    from marketing.rewards.models import StockChange
    with pytest.raises(Conflict):
        service.change_stock(ADMIN, reward_id, StockChange(delta=-1))
    assert service.change_stock(ADMIN, reward_id, StockChange(delta=7)).stock.available == 7
    assert service.change_stock(ADMIN, reward_id, StockChange(delta=-6)).stock.model_dump() == \
        {"total": 6, "available": 1, "reserved": 5, "issued": 0}


def test_creating_a_reward_and_changing_its_stock_answer_without_reading_back_what_they_wrote(stack):
    from marketing.rewards.models import StockChange

    # When a reward is created, it is one transaction, and its stock is answered as written
    with dynamodb_requests() as sent:
        reward_id = make_reward(total_stock=5, shards=2)
    assert sent == ["TransactWriteItems"]
    assert stock(reward_id) == {"total": 5, "available": 5, "reserved": 0, "issued": 0}

    # When its stock changes, the reward and its shards are read once, then written
    api.reserve(CALLER, reward_id=reward_id, user_id="u1", quantity=2, expire_minutes=5, reservation_id="r1")
    with dynamodb_requests() as sent:
        changed = service.change_stock(ADMIN, reward_id, StockChange(delta=-3)).stock.model_dump()
    assert sent == ["GetItem", "BatchGetItem", "TransactWriteItems"]
    assert changed == stock(reward_id) == {"total": 2, "available": 0, "reserved": 2, "issued": 0}
    with dynamodb_requests() as sent:
        changed = service.change_stock(ADMIN, reward_id, StockChange(delta=4)).stock.model_dump()
    assert sent == ["GetItem", "BatchGetItem", "TransactWriteItems"]
    assert changed == stock(reward_id) == {"total": 6, "available": 4, "reserved": 2, "issued": 0}


def test_a_repeated_reservation_that_took_the_last_units_is_answered_not_refused(stack):
    # Given a flash-sale reward of 2 units over 2 shards, drained by two reservations
    reward_id = make_reward(total_stock=2, shards=2)
    first = api.reserve(CALLER, reward_id=reward_id, user_id="u1", quantity=1, expire_minutes=5, reservation_id="r-1")
    api.reserve(CALLER, reward_id=reward_id, user_id="u2", quantity=1, expire_minutes=5, reservation_id="r-2")
    # When the first is repeated (a retried grant), no shard has stock left
    with dynamodb_requests() as sent:
        again = api.reserve(CALLER, reward_id=reward_id, user_id="u1", quantity=1, expire_minutes=5,
                            reservation_id="r-1")
    # Then it gets its own reservation back (read once), and nothing more was taken
    assert again["reservation_id"] == first["reservation_id"] and again["shard"] == first["shard"]
    assert sent == ["GetItem", "BatchGetItem", "GetItem"]
    assert stock(reward_id)["reserved"] == 2
    with pytest.raises(OutOfStock):
        api.reserve(CALLER, reward_id=reward_id, user_id="u3", quantity=1, expire_minutes=5, reservation_id="r-3")


def test_an_out_of_stock_reservation_costs_the_reward_read_and_one_transaction(stack):
    # Given a one-item reward whose stock is gone
    reward_id = make_reward(total_stock=1)
    api.reserve(CALLER, reward_id=reward_id, user_id="u1", quantity=1, expire_minutes=5, reservation_id="r-1")
    # When another reservation comes, it is refused by the transaction's condition, with no further read
    with dynamodb_requests() as sent, pytest.raises(OutOfStock):
        api.reserve(CALLER, reward_id=reward_id, user_id="u2", quantity=1, expire_minutes=5, reservation_id="r-2")
    assert sent == ["GetItem", "TransactWriteItems"]
    # and a repeat of the first is still answered with its reservation (the same transaction says so)
    assert api.reserve(CALLER, reward_id=reward_id, user_id="u1", quantity=1, expire_minutes=5,
                       reservation_id="r-1")["status"] == "PENDING"


def test_reservations_and_the_sweeper_never_touch_the_reward_item(stack, monkeypatch):
    # Given a flash-sale reward over 4 shards with a per-user limit
    reward_id = make_reward(total_stock=40, per_user_limit=3, shards=4)
    reward_key = (dal.reward_key(f"{T}#A#app1", reward_id)["pk"], "REWARD")
    # When reservations are made, confirmed, cancelled and swept
    with recording_touches(dal.dynamo.client()) as touches:
        for n in range(6):
            api.reserve(CALLER, reward_id=reward_id, user_id=f"u{n % 2}", quantity=1, expire_minutes=1,
                        reservation_id=f"r{n}")
        api.confirm(CALLER, "r0")
        api.cancel(CALLER, "r1")
        after_expiry(monkeypatch)
        assert service.sweep() == 4
    # Then every write and condition check landed on shards, allowances, reservations and pointers only
    touched = {key for _, (key, _) in touches}
    assert touched and reward_key not in touched
    assert {pk.split("#")[-2] for pk, _ in touched if "#STOCK#" in pk} == {"STOCK"}
    assert stock(reward_id) == {"total": 40, "available": 39, "reserved": 0, "issued": 1}
    # And the reward's reservations, indexed per shard, page as one listing, newest first
    seen, token = [], None
    while True:
        page = service.list_reservations(CALLER, reward_id, None, None, 2, token)
        seen += [r.reservation_id for r in page.items]
        if not (token := page.next_token):
            break
    assert sorted(seen) == [f"r{n}" for n in range(6)] and len(seen) == 6
    created = [dal.get_reservation(f"{T}#A#app1", r)["created_at"] for r in seen]
    assert created == sorted(created, reverse=True)


def test_an_edit_or_a_delete_moves_the_version_on_every_shard(stack):
    # Given a reward over 3 shards, read at version 1
    reward_id = make_reward(total_stock=30, shards=3)
    scope = f"{T}#A#app1"
    seen = dal.get_reward(scope, reward_id)
    record = {"reservation_id": "r-stale", "reward_id": reward_id, "user_id": "u1", "quantity": 1, "shard": 2,
              "status": "PENDING", "expires_at": "2999-01-01T00:00:00.000Z", "created_at": "2026-01-01T00:00:00.000Z",
              "limited": True, "counted": False, "sweep_partition": 0}
    # When it is edited
    service.update_reward(ADMIN, reward_id, RewardFields(name="Gift 2", reward_type="COUPON",
                                                         content={"discount_type": "AMOUNT", "discount_value": 5}))
    # Then every shard holds version 2, a reservation relying on version 1 is refused for its version (not its
    # stock), and the service reads the reward again and reserves
    assert {s["version"] for s in dal.get_shards(scope, [seen])[reward_id]} == {2}
    with pytest.raises(dal.ConditionFailed) as refused:
        dal.reserve(scope, record, reward_version=seen["version"], limited=True, per_user_limit=None)
    assert refused.value.moved(1, seen["version"])
    fresh = api.reserve(CALLER, reward_id=reward_id, user_id="u1", quantity=1, expire_minutes=5, reservation_id="r1")
    assert fresh["status"] == "PENDING"
    # And once deleted, nothing is reserved with the last version either
    current = dal.get_reward(scope, reward_id)
    service.delete_reward(ADMIN, reward_id)
    with pytest.raises(dal.ConditionFailed):
        dal.reserve(scope, record, reward_version=current["version"], limited=True, per_user_limit=None)
    with pytest.raises(RewardNotFound):
        api.reserve(CALLER, reward_id=reward_id, user_id="u1", quantity=1, expire_minutes=5, reservation_id="r2")
