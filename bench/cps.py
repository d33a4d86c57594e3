"""DynamoDB requests per ingested CPS order, through the real webhook handler, for invite chains of depth
0..N: the ledger of an order event is one transaction whatever the depth, so the count must stay flat
(only the transaction's actions grow, one entry per level)."""

from __future__ import annotations

import json

import boto3

import bench.support  # noqa: F401  (sets a safe environment first)
from bench.support import counting, table
from marketing.cps.models import MAX_LEVELS
from marketing.cps.signing import signed_headers
from tests.support import Function, body_of, claims, http_event, mocked_stack

ADMIN = claims("bench", "ops", "[admin]")
N = MAX_LEVELS
RATES = [4000] + [600] * N  # 100% over levels 0..N


def run() -> list[str]:
    rows = []
    with mocked_stack("bench") as stack, counting() as counter:
        api, hook = Function("CpsApiFunction", stack), Function("CpsWebhookFunction", stack)
        actions: list[int] = []
        boto3.DEFAULT_SESSION.events.register("before-parameter-build.dynamodb.TransactWriteItems",
                                              lambda params, **_: actions.append(len(params["TransactItems"])))
        api(http_event("PUT", "/v1/cps/settings", "/v1/cps/settings", claims_=ADMIN,
                       body={"levels": N, "rates_bp": RATES, "hold_days": 7}))
        pids, code = [], None
        for depth in range(N + 1):  # u{d} is invited by u{d-1}: its order pays d inviters
            body = {"user_id": f"u{depth}", **({"invite_code": code} if code else {})}
            affiliate = body_of(api(http_event("POST", "/v1/affiliates", "/v1/affiliates", body=body, claims_=ADMIN)))
            pids.append(affiliate["pid"])
            code = affiliate["invite_code"]

        def ingest(order: dict) -> tuple[int, int, int]:
            raw = json.dumps(order).encode()
            counter.reset()
            actions.clear()
            answer = hook(http_event("POST", "/v1/cps/bench/app1/fake/orders",
                                     "/v1/cps/{tenant_id}/{app_id}/{platform}/orders",
                                     body=raw.decode(), headers=signed_headers("bench", "app1", "fake", raw)))
            assert answer["statusCode"] == 200, answer
            return counter.dynamodb(), sum(actions), body_of(answer)["entries"]

        baseline = None
        for depth, pid in enumerate(pids):
            order = {"order_id": f"o{depth}", "pid": pid, "pay_price": 5000, "commission": 1000}
            paid = ingest({**order, "status": "PAID"})
            repeat = ingest({**order, "status": "PAID"})
            settled = ingest({**order, "status": "SETTLED"})
            refunded = ingest({**order, "status": "REFUNDED"})
            baseline = baseline or paid[0]
            rows.append((depth, paid[0], f"{paid[0] / baseline:.2f}x", paid[1], repeat[0], settled[0], settled[1],
                         refunded[0], refunded[1]))
    return [f"tenant levels N = {N}; requests per webhook (signature check, merge, ledger, event outbox)",
            *table(rows, ("depth", "PAID reqs", "vs depth 0", "tx actions", "repeat reqs", "SETTLED reqs",
                          "tx actions", "REFUNDED reqs", "tx actions"))]
