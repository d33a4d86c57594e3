"""Rewards and redeem codes: DynamoDB requests per redemption and per inventory step (through the real
handlers), and code generation (codes per second, requests per 1,000 codes) beside a naive baseline that
writes each random code with its own conditional PutItem, measured in the same run on the same moto."""

from __future__ import annotations

import time
from urllib.parse import urlparse

import boto3

import bench.support  # noqa: F401  (sets a safe environment first)
from bench.support import counting, table
from marketing.core import dynamo
from marketing.core.ids import random_code
from marketing.rewards import redeem
from tests.support import Function, body_of, claims, http_event, mocked_stack, seed_campaign

ADMIN = claims("bench", "ops", "[admin]")
CODES = 5000


def _by_operation(counter) -> str:
    return ", ".join(f"{k.split('.')[1]}×{v}" for k, v in sorted(counter.calls.items()) if k.startswith("dynamodb"))


def run() -> list[str]:
    rows, lines = [], []
    with mocked_stack("bench") as stack, counting() as counter:
        rewards_api, redeem_api = Function("RewardsApiFunction", stack), Function("RedeemApiFunction", stack)

        def measure(label: str, fn, method: str, path: str, route: str, body=None, who=ADMIN) -> dict:
            counter.reset()
            answer = fn(http_event(method, path, route, body=body, claims_=who))
            assert answer["statusCode"] < 300, answer
            rows.append((label, counter.dynamodb(), _by_operation(counter)))
            return body_of(answer)

        reward = body_of(rewards_api(http_event("POST", "/v1/rewards", "/v1/rewards", claims_=ADMIN, body={
            "name": "bench", "reward_type": "POINTS", "content": {"amount": 10}, "total_stock": 1000,
            "per_user_limit": 5})))
        rid = reward["reward_id"]
        seed_campaign("bench", campaign_id="c")
        batch = body_of(redeem_api(http_event("POST", "/v1/campaigns/c/redeem-codes",
                                              "/v1/campaigns/{campaign_id}/redeem-codes", claims_=ADMIN,
                                              body={"reward_id": rid, "count": 10})))
        export = measure("POST export (10 codes, csv)", redeem_api, "POST",
                         f"/v1/redeem-code-batches/{batch['batch_id']}/export",
                         "/v1/redeem-code-batches/{batch_id}/export", body={})

        url = urlparse(export["url"])
        key = url.path[1:] if url.netloc.startswith(stack.ref("ExportBucket")) else url.path.split("/", 2)[2]
        codes = boto3.client("s3").get_object(Bucket=stack.ref("ExportBucket"), Key=key)["Body"].read().decode()
        codes = [line.split(",")[0] for line in codes.strip().splitlines()[1:]]
        for n, label in ((0, "POST /v1/redeem (first: reads the reward)"), (1, "POST /v1/redeem (warm container)"),
                         (2, "POST /v1/redeem (warm container)")):
            grant = measure(label, redeem_api, "POST", "/v1/redeem", "/v1/redeem",
                            body={"code": codes[n], "user_id": f"u{n}"})
        measure("POST /v1/reward-grants/{id}/rollback", rewards_api, "POST",
                f"/v1/reward-grants/{grant['grant_id']}/rollback", "/v1/reward-grants/{grant_id}/rollback")
        res = measure("POST /v1/inventory/reserve", rewards_api, "POST", "/v1/inventory/reserve",
                      "/v1/inventory/reserve", body={"reward_id": rid, "user_id": "u9", "expire_minutes": 5})
        measure("POST /v1/inventory/{id}/confirm", rewards_api, "POST",
                f"/v1/inventory/{res['reservation_id']}/confirm", "/v1/inventory/{reservation_id}/confirm")
        lines += table(rows, ("operation", "DynamoDB requests", "by operation"))

        # Code generation: our chunk writer (unique by construction, BatchWriteItem) ...
        big = body_of(redeem_api(http_event("POST", "/v1/campaigns/c/redeem-codes",
                                            "/v1/campaigns/{campaign_id}/redeem-codes", claims_=ADMIN,
                                            body={"reward_id": rid, "count": CODES + 1000})))
        counter.reset()
        started = time.perf_counter()
        redeem.generate_chunk("bench", big["batch_id"], 0, CODES)
        ours_seconds, ours_requests = time.perf_counter() - started, counter.dynamodb()

        # ... beside the naive way: a random code and one conditional PutItem per code.
        counter.reset()
        started = time.perf_counter()
        for _ in range(CODES):
            dynamo.table().put_item(Item={"pk": f"T#bench#NAIVE#{random_code(12)}", "sk": "CODE", "status": "UNUSED"},
                                    ConditionExpression="attribute_not_exists(pk)")
        naive_seconds, naive_requests = time.perf_counter() - started, counter.dynamodb()

    per_k = lambda requests: requests * 1000 / CODES  # noqa: E731
    gen = [("batch chunk (unique by construction, BatchWriteItem)", f"{CODES / ours_seconds:,.0f}",
            f"{per_k(ours_requests):.1f}"),
           ("naive baseline (conditional PutItem per code)", f"{CODES / naive_seconds:,.0f}",
            f"{per_k(naive_requests):.1f}")]
    lines += ["", *table(gen, ("code generation, same moto, same run", "codes/s", "DynamoDB requests per 1,000")),
              f"ratio: {naive_requests / ours_requests:.1f}x fewer requests, "
              f"{naive_seconds / ours_seconds:.1f}x the speed of the baseline ({CODES:,} codes each)"]
    return lines
