"""Batch grants over HTTP against the local stack: the API queues chunks, the template's worker grants them
(each chunk in a container of its own, several at once). Two overlapping batches racing for one reward's stock
never give a user two grants or give more than the stock; a batch repeated at once with one idempotency key is
one batch."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor


def wait_done(api, batch_id: str, seconds: float = 180) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        batch = api.get(f"/v1/grant-batches/{batch_id}").json()
        if batch["status"] == "DONE" or time.monotonic() > deadline:
            return batch
        time.sleep(0.5)


def grants_of(api, reward_id: str) -> list[dict]:
    items, token = [], None
    while True:
        page = api.get("/v1/reward-grants", params={"reward_id": reward_id, "limit": 100,
                                                     **({"next_token": token} if token else {})}).json()
        assert "items" in page, page
        items += page["items"]
        if not (token := page.get("next_token")):
            return items


def test_overlapping_batches_racing_for_stock_grant_each_user_once_and_never_oversell(local_stack, tenant):
    api = local_stack.api(tenant)
    reward = api.post("/v1/rewards", {"name": "Gift", "reward_type": "COUPON", "total_stock": 250,
                                      "per_user_limit": 1,
                                      "content": {"discount_type": "AMOUNT", "discount_value": 100}}).json()
    rid = reward["reward_id"]
    first, second = [f"u{n}" for n in range(0, 200)], [f"u{n}" for n in range(100, 300)]  # 100 in both

    # Given the same request sent five times at once with one idempotency key, and an overlapping batch
    def post(users: list[str], key: str):
        return api.post(f"/v1/rewards/{rid}/grant-batches",
                        {"user_ids": users, "reason": "e2e", "idempotency_key": key})

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda job: post(*job), [(first, "a")] * 5 + [(second, "b")]))
    assert [a.status_code for a in answers] == [202] * 6, [a.text for a in answers]
    assert len({a.json()["batch_id"] for a in answers[:5]}) == 1

    # When both are done
    a, b = (wait_done(api, answers[i].json()["batch_id"]) for i in (0, 5))

    # Then 250 users hold exactly one grant: the stock, never more; the rest failed with their reason
    assert (a["status"], b["status"], a["total"], b["total"]) == ("DONE", "DONE", 200, 200)
    assert a["granted"] + b["granted"] == 250 and a["failed"] + b["failed"] == 150
    grants = grants_of(api, rid)
    granted = Counter(g["user_id"] for g in grants if g["status"] == "DISTRIBUTED")
    assert len(granted) == 250 and set(granted.values()) == {1}
    assert len(grants) == 400
    assert set(a["failed_reasons"]) | set(b["failed_reasons"]) <= {
        "out of stock", "the user reached the reward's per-user limit"}
    assert api.get(f"/v1/rewards/{rid}").json()["stock"] == {"total": 250, "available": 0, "reserved": 0,
                                                             "issued": 250}
