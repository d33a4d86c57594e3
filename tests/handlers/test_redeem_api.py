"""Redeem API handler tests on template.yaml's resources in moto: batches, masked listings, exports,
assignment, redemption with its distinct errors, revocation, rollback, lockout, the batch worker, events."""

from __future__ import annotations

import io
import json
import time
from datetime import timedelta
from urllib.parse import urlparse

import boto3
import openpyxl
import pytest

from marketing.core.clock import iso, now
from marketing.rewards import codes
from tests.support import (
    Function,
    RunningOutContext,
    body_of,
    bus_tap,
    claims,
    http_event,
    sample_event,
    seed_campaign,
)

T = "t1"
ADMIN = claims(T, "ops", "[admin]")
OTHER_ADMIN = claims(T, "ops-2", "[admin]")
SERVICE = claims(T, "backend", "[service]")
SCOPE = f"{T}#A#app1"  # the keys of app1 of tenant t1


def user(sub: str) -> dict:
    return claims(T, sub, "[user]")


@pytest.fixture
def apis(stack):
    return Function("RewardsApiFunction", stack), Function("RedeemApiFunction", stack)


@pytest.fixture
def bus_events(stack):
    """Every rewards event on the bus, through a rule to a queue (as the statistics capability would)."""
    return bus_tap(stack, {"source": ["marketing.rewards"]})


def call(fn, method: str, path: str, route: str, who=ADMIN, body=None, query=None, headers=None):
    answer = fn(http_event(method, path, route, body=body, query=query, headers=headers, claims_=who))
    return answer["statusCode"], body_of(answer)


def new_reward(rewards_api, **fields) -> str:
    body = {"name": "VIP month", "reward_type": "VIP_CARD", "kind_no": "VIP", "content": {"days": 30},
            "total_stock": 100, **fields}
    status, reward = call(rewards_api, "POST", "/v1/rewards", "/v1/rewards", body=body)
    assert status == 201, reward
    return reward["reward_id"]


def new_batch(redeem_api, reward_id: str, count: int = 10, who=ADMIN, **fields) -> dict:
    seed_campaign(who["tenant_id"], who["app_id"])
    status, batch = call(redeem_api, "POST", "/v1/campaigns/c1/redeem-codes",
                         "/v1/campaigns/{campaign_id}/redeem-codes", who=who,
                         body={"reward_id": reward_id, "count": count, **fields})
    assert status in (201, 202), batch
    return batch


def export(redeem_api, batch_id: str, who=ADMIN, **body) -> tuple[int, dict]:
    return call(redeem_api, "POST", f"/v1/redeem-code-batches/{batch_id}/export",
                "/v1/redeem-code-batches/{batch_id}/export", who=who, body=body)


def exported_codes(stack, answer: dict) -> list[str]:
    url, bucket = urlparse(answer["url"]), stack.ref("ExportBucket")
    key = url.path[1:] if url.netloc.startswith(bucket) else url.path.split("/", 2)[2]  # virtual host or path style
    data = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    if answer["format"] == "xlsx":
        rows = list(openpyxl.load_workbook(io.BytesIO(data), read_only=True)["codes"].iter_rows(values_only=True))
        assert rows[0] == ("code", "valid_from", "expire_time")
        return [row[0] for row in rows[1:]]
    lines = data.decode().strip().splitlines()
    assert lines[0] == "code,valid_from,expire_time"
    return [line.split(",")[0] for line in lines[1:]]


def redeem(redeem_api, code: str, user_id: str = "u1", who=None, headers=None):
    return call(redeem_api, "POST", "/v1/redeem", "/v1/redeem", who=who or user(user_id),
                body={"code": code, "user_id": user_id}, headers=headers)


def test_a_small_batch_is_listed_masked_and_exported_in_disjoint_parts(apis, stack):
    rewards_api, redeem_api = apis
    batch = new_batch(redeem_api, new_reward(rewards_api), count=20, prefix="VIP")
    assert (batch["total"], batch["generated"], batch["status"]) == (20, 20, "DONE")

    status, page = call(redeem_api, "GET", "/v1/redeem-codes", "/v1/redeem-codes",
                        query={"batch_id": batch["batch_id"], "limit": "100"})
    assert status == 200 and len(page["items"]) == 20
    assert all(i["masked_code"].startswith("*") and "code" not in i for i in page["items"])
    assert not any(i["exported"] for i in page["items"])

    assert export(redeem_api, batch["batch_id"], who=OTHER_ADMIN, count=5)[0] == 403  # only its generator
    first_status, first = export(redeem_api, batch["batch_id"], count=12)
    second_status, second = export(redeem_api, batch["batch_id"], format="xlsx")
    assert (first_status, second_status, first["count"], second["count"]) == (201, 201, 12, 8)
    assert (first["format"], second["format"], first["exported_by"]) == ("csv", "xlsx", "ops")
    one, two = exported_codes(stack, first), exported_codes(stack, second)
    assert len(set(one) | set(two)) == 20 and not set(one) & set(two)
    assert all(c.startswith("VIP-") and codes.is_well_formed(c) for c in one + two)
    status, error = export(redeem_api, batch["batch_id"])
    assert status == 409 and error["error"]["code"] == "NOTHING_TO_EXPORT"

    _, page = call(redeem_api, "GET", "/v1/redeem-codes", "/v1/redeem-codes",
                   query={"batch_id": batch["batch_id"], "limit": "100"})
    assert all(i["exported"] for i in page["items"])
    masked = {i["masked_code"][-4:] for i in page["items"]}
    assert masked == {c[-4:] for c in one + two}


def stored_exports(stack) -> list[str]:
    answer = boto3.client("s3").list_objects_v2(Bucket=stack.ref("ExportBucket"), Prefix="exports/")
    return [o["Key"] for o in answer.get("Contents", [])]


def test_an_export_whose_file_cannot_be_written_claims_no_code(apis, stack):
    rewards_api, redeem_api = apis
    batch = new_batch(redeem_api, new_reward(rewards_api), count=5)
    s3, bucket = boto3.client("s3"), stack.ref("ExportBucket")
    # Given a bucket that refuses the write
    s3.delete_bucket(Bucket=bucket)
    # When an export runs
    status, _ = export(redeem_api, batch["batch_id"])
    # Then it fails and every code is still there to export
    assert status == 500
    _, seen = call(redeem_api, "GET", f"/v1/redeem-code-batches/{batch['batch_id']}",
                   "/v1/redeem-code-batches/{batch_id}")
    assert seen["exported"] == 0
    s3.create_bucket(Bucket=bucket)
    status, done = export(redeem_api, batch["batch_id"])
    assert (status, done["count"], len(exported_codes(stack, done))) == (201, 5, 5)


def test_an_export_that_loses_its_range_to_a_grant_deletes_its_file_and_takes_the_next(apis, stack, monkeypatch):
    from marketing.rewards import dal, files

    rewards_api, redeem_api = apis
    batch = new_batch(redeem_api, new_reward(rewards_api), count=5)
    store, taken = files.store, []

    def store_while_a_grant_takes_a_code(key, body, fmt):
        url = store(key, body, fmt)
        if not taken:  # a grant claims the first code between the file's write and the export's claim
            taken.append(dal.claim_one(SCOPE, batch["batch_id"]))
        return url

    monkeypatch.setattr(files, "store", store_while_a_grant_takes_a_code)
    status, done = export(redeem_api, batch["batch_id"])
    assert (status, taken, done["count"]) == (201, [0], 4)
    assert stored_exports(stack) == [f"exports/{T}/app1/{batch['batch_id']}/{done['export_id']}.csv"]
    assert len(exported_codes(stack, done)) == 4
    assert export(redeem_api, batch["batch_id"])[1]["error"]["code"] == "NOTHING_TO_EXPORT"


def test_redemption_answers_the_grant_once_with_distinct_errors(apis, stack, bus_events):
    rewards_api, redeem_api = apis
    reward_id = new_reward(rewards_api, total_stock=2)
    batch = new_batch(redeem_api, reward_id, count=5)
    code, other, third = exported_codes(stack, export(redeem_api, batch["batch_id"], count=3)[1])

    status, grant = redeem(redeem_api, code.lower(), headers={"Idempotency-Key": "k-1"})
    assert status == 200 and grant["status"] == "DISTRIBUTED" and grant["code_suffix"] == code[-4:]
    assert grant["user_id"] == "u1" and grant["batch_id"] == batch["batch_id"] and grant["campaign_id"] == "c1"
    assert redeem(redeem_api, code.lower(), headers={"Idempotency-Key": "k-1"}) == (200, grant)  # the replay
    status, error = redeem(redeem_api, code, "u2")
    assert (status, error["error"]["code"]) == (409, "CODE_USED")
    assert redeem(redeem_api, code)[0] == 409  # u1 again: refused (its event left with the redemption)

    mistyped = code[:-1] + ("2" if code[-1] != "2" else "3")
    status, error = redeem(redeem_api, mistyped)
    assert (status, error["error"]["code"], error["error"]["details"][0]["field"]) == (400, "CODE_MALFORMED", "code")
    unknown = codes.CodeMaker(b"x" * 32, 12).code(5)
    assert redeem(redeem_api, unknown)[1]["error"]["code"] == "CODE_NOT_FOUND"
    assert redeem(redeem_api, other, "u1", who=user("u2"))[0] == 403  # a user redeems only for themselves

    assert redeem(redeem_api, other, "u2")[0] == 200
    status, error = redeem(redeem_api, third, "u3")
    assert (status, error["error"]["code"]) == (409, "OUT_OF_STOCK")

    # The rollback gives the stock back once: the third code now redeems
    rollback = f"/v1/reward-grants/{grant['grant_id']}/rollback"
    assert call(rewards_api, "POST", rollback, "/v1/reward-grants/{grant_id}/rollback")[1]["status"] == "ROLLED_BACK"
    assert call(rewards_api, "POST", rollback, "/v1/reward-grants/{grant_id}/rollback")[0] == 200
    assert redeem(redeem_api, third, "u3")[0] == 200
    stock = call(rewards_api, "GET", f"/v1/rewards/{reward_id}", "/v1/rewards/{reward_id}")[1]["stock"]
    assert stock == {"total": 2, "available": 0, "reserved": 0, "issued": 2}

    facts = bus_events()
    kinds = sorted(e["detail-type"] for e in facts)
    assert kinds == ["code.redeemed"] * 3 + ["grant.rolled_back"]  # each fact once: repeats commit nothing
    assert len({e["detail"]["event_id"] for e in facts if e["detail-type"] == "code.redeemed"}) == 3
    redeemed = next(e["detail"] for e in facts if e["detail"]["grant_id"] == grant["grant_id"]
                    and e["detail-type"] == "code.redeemed")
    assert redeemed["code_suffix"] == code[-4:] and code not in json.dumps(facts)
    assert {redeemed["reward_type"], redeemed["amount"], redeemed["tenant_id"]} == {"VIP_CARD", 0, T}
    rolled = [e["detail"]["event_id"] for e in facts if e["detail-type"] == "grant.rolled_back"]
    assert rolled == [f"{grant['grant_id']}:rolled_back"]


def test_per_user_limit_and_validity_window(apis, stack):
    rewards_api, redeem_api = apis
    reward_id = new_reward(rewards_api, total_stock=None, per_user_limit=1)
    batch = new_batch(redeem_api, reward_id, count=3)
    a, b, _ = exported_codes(stack, export(redeem_api, batch["batch_id"])[1])
    assert redeem(redeem_api, a)[0] == 200
    assert redeem(redeem_api, b)[1]["error"]["code"] == "PER_USER_LIMIT_REACHED"

    later = new_batch(redeem_api, reward_id, count=1, valid_from="2999-01-01T00:00:00Z")
    (early,) = exported_codes(stack, export(redeem_api, later["batch_id"])[1])
    status, error = redeem(redeem_api, early, "u2")
    assert (status, error["error"]["code"]) == (422, "CODE_NOT_YET_VALID")
    soon = new_batch(redeem_api, reward_id, count=1, expire_time=iso(now() + timedelta(seconds=2)))
    (old,) = exported_codes(stack, export(redeem_api, soon["batch_id"])[1])
    time.sleep(2.1)
    status, error = redeem(redeem_api, old, "u2")
    assert (status, error["error"]["code"]) == (410, "CODE_EXPIRED")


def test_generation_refuses_an_unknown_campaign_and_an_expiry_not_in_the_future(apis, stack):
    rewards_api, redeem_api = apis
    reward_id = new_reward(rewards_api)
    status, error = call(redeem_api, "POST", "/v1/campaigns/nope/redeem-codes",
                         "/v1/campaigns/{campaign_id}/redeem-codes", body={"reward_id": reward_id, "count": 1})
    assert (status, error["error"]["code"]) == (404, "CAMPAIGN_NOT_FOUND")
    seed_campaign()
    status, error = call(redeem_api, "POST", "/v1/campaigns/c1/redeem-codes",
                         "/v1/campaigns/{campaign_id}/redeem-codes",
                         body={"reward_id": reward_id, "count": 1, "expire_time": "2001-01-01T00:00:00Z"})
    assert status == 422 and error["error"]["details"][0]["field"] == "body.expire_time"


def test_assign_binds_a_code_to_one_user_and_revoke_makes_it_unusable(apis, stack, bus_events):
    rewards_api, redeem_api = apis
    batch = new_batch(redeem_api, new_reward(rewards_api), count=3)
    mine, revoked, _ = exported_codes(stack, export(redeem_api, batch["batch_id"])[1])

    status, assigned = call(redeem_api, "POST", f"/v1/redeem-codes/{mine}/assign", "/v1/redeem-codes/{code}/assign",
                            body={"user_id": "alice"})
    assert status == 200 and assigned["code"] == mine and assigned["assigned_to"] == "alice"
    other = call(redeem_api, "POST", f"/v1/redeem-codes/{mine}/assign", "/v1/redeem-codes/{code}/assign",
                 body={"user_id": "bob"})
    assert other[0] == 403
    assert redeem(redeem_api, mine, "bob")[1]["error"]["code"] == "CODE_ASSIGNED_TO_ANOTHER_USER"
    assert redeem(redeem_api, mine, "alice")[0] == 200

    revoke = f"/v1/redeem-codes/{revoked}/revoke"
    status, view = call(redeem_api, "POST", revoke, "/v1/redeem-codes/{code}/revoke")
    assert status == 200 and view["status"] == "REVOKED" and view["masked_code"].endswith(revoked[-4:])
    assert call(redeem_api, "POST", revoke, "/v1/redeem-codes/{code}/revoke")[0] == 200
    assert redeem(redeem_api, revoked, "alice")[1]["error"]["code"] == "CODE_REVOKED"
    used = call(redeem_api, "POST", f"/v1/redeem-codes/{mine}/revoke", "/v1/redeem-codes/{code}/revoke")
    assert used[0] == 409 and used[1]["error"]["code"] == "CODE_USED"
    assert call(redeem_api, "POST", revoke, "/v1/redeem-codes/{code}/revoke", who=SERVICE)[0] == 403
    assert "code.revoked" in {e["detail-type"] for e in bus_events()}


def test_repeated_failures_lock_the_user_out(apis, stack):
    rewards_api, redeem_api = apis
    batch = new_batch(redeem_api, new_reward(rewards_api), count=1)
    (good,) = exported_codes(stack, export(redeem_api, batch["batch_id"])[1])
    maker = codes.CodeMaker(b"guess" * 7, 12)
    statuses = [redeem(redeem_api, maker.code(n), "mallory")[0] for n in range(11)]
    assert statuses == [404] * 10 + [429]
    status, error = redeem(redeem_api, good, "mallory")
    assert (status, error["error"]["code"]) == (429, "TOO_MANY_FAILED_REDEMPTIONS")
    assert redeem(redeem_api, good, "someone-else")[0] == 200  # the lock is per user


def test_a_large_batch_is_answered_202_and_written_by_the_worker(apis, stack):
    rewards_api, redeem_api = apis
    batch = new_batch(redeem_api, new_reward(rewards_api), count=4500)
    assert (batch["status"], batch["generated"]) == ("GENERATING", 0)
    assert export(redeem_api, batch["batch_id"])[1]["error"]["code"] == "BATCH_NOT_READY"

    worker, sqs = Function("CodeBatchWorkerFunction", stack), boto3.client("sqs")
    url = stack.ref("CodeBatchQueue")
    delivered = 0
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2).get("Messages", []):
        records = [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                    "attributes": {}, "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                    "eventSourceARN": "arn", "awsRegion": "us-east-1"} for m in messages]
        assert worker({"Records": records}) == {"batchItemFailures": []}
        assert worker({"Records": records[:1]}) == {"batchItemFailures": []}  # a redelivery counts once
        delivered += len(records)
        for m in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    assert delivered == 3

    status, done = call(redeem_api, "GET", f"/v1/redeem-code-batches/{batch['batch_id']}",
                        "/v1/redeem-code-batches/{batch_id}")
    assert status == 200 and (done["status"], done["generated"], done["total"]) == ("DONE", 4500, 4500)
    assert len(exported_codes(stack, export(redeem_api, batch["batch_id"])[1])) == 4500


def test_bad_input_names_the_field_and_writes_nothing(apis, stack):
    rewards_api, redeem_api = apis
    seed_campaign()
    status, error = call(redeem_api, "POST", "/v1/campaigns/c1/redeem-codes",
                         "/v1/campaigns/{campaign_id}/redeem-codes", body={"reward_id": "r", "count": 100_001})
    assert status == 422 and error["error"]["details"][0]["field"] == "body.count"
    status, error = call(redeem_api, "POST", "/v1/campaigns/c1/redeem-codes",
                         "/v1/campaigns/{campaign_id}/redeem-codes", body={"reward_id": "nope", "count": 1})
    assert (status, error["error"]["code"]) == (404, "REWARD_NOT_FOUND")
    items = boto3.resource("dynamodb").Table(stack.ref("Table")).scan()["Items"]
    assert [i for i in items if i["sk"] != "CAMPAIGN#c1"] == []  # the seeded campaign alone


def test_sample_events_run(apis, stack):
    rewards_api, redeem_api = apis
    assert rewards_api(sample_event("rewards_api/create_reward.json"))["statusCode"] == 201
    assert redeem_api(sample_event("redeem_api/redeem.json"))["statusCode"] == 404


def test_the_worker_reports_only_the_failing_message(apis, stack):
    rewards_api, redeem_api = apis
    batch = new_batch(redeem_api, new_reward(rewards_api), count=1001)
    sqs, url = boto3.client("sqs"), stack.ref("CodeBatchQueue")
    (message,) = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2)["Messages"]
    unknown = sample_event("code_batch_worker/chunk.json")["Records"][0]  # names a batch that does not exist
    good = {**unknown, "messageId": message["MessageId"], "body": message["Body"]}

    worker = Function("CodeBatchWorkerFunction", stack)
    assert worker({"Records": [unknown, good]}) == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    status, done = call(redeem_api, "GET", f"/v1/redeem-code-batches/{batch['batch_id']}",
                        "/v1/redeem-code-batches/{batch_id}")
    assert (done["status"], done["generated"]) == ("DONE", 1001)


def test_the_worker_leaves_the_chunks_it_has_no_time_for(apis, stack):
    rewards_api, redeem_api = apis
    batch = new_batch(redeem_api, new_reward(rewards_api), count=2001)  # two chunks: 2,000 codes and 1
    sqs, url = boto3.client("sqs"), stack.ref("CodeBatchQueue")
    records = [{**sample_event("code_batch_worker/chunk.json")["Records"][0], "messageId": m["MessageId"],
                "body": m["Body"]} for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2)["Messages"]]
    worker = Function("CodeBatchWorkerFunction", stack)
    # Given an invocation with time for one chunk only
    one = int(worker.module.processor.worst_case(1) * 1000)
    answer = worker({"Records": records}, RunningOutContext(worker.spec, one, one - 1))
    # Then the second chunk is reported, not started
    assert answer == {"batchItemFailures": [{"itemIdentifier": records[1]["messageId"]}]}
    path, route = f"/v1/redeem-code-batches/{batch['batch_id']}", "/v1/redeem-code-batches/{batch_id}"
    _, seen = call(redeem_api, "GET", path, route)
    assert (seen["status"], seen["generated"]) == ("GENERATING", json.loads(records[0]["body"])["count"])
    # And its redelivery finishes the batch
    assert worker({"Records": records[1:]}) == {"batchItemFailures": []}
    assert call(redeem_api, "GET", path, route)[1]["generated"] == 2001


def test_the_sweeper_function_expires_due_reservations(apis, stack):
    from datetime import timedelta

    from marketing.core import clock
    from marketing.rewards import dal

    rewards_api, _ = apis
    reward_id = new_reward(rewards_api, total_stock=5)
    body = {"reward_id": reward_id, "user_id": "u1", "quantity": 2, "expire_minutes": 1, "reservation_id": "r1"}
    assert call(rewards_api, "POST", "/v1/inventory/reserve", "/v1/inventory/reserve", body=body)[0] == 201
    sweeper = Function("ReservationSweeperFunction", stack)
    assert sweeper(sample_event("reservation_sweeper/scheduled.json")) == {"expired": 0}

    # Given the reservation's expiry has passed (it and its pointer moved back in time, as the clock would move on)
    table, record = dal.dynamo.table(), dal.get_reservation(SCOPE, "r1")
    past = clock.iso(clock.now() - timedelta(minutes=5))
    pointer = table.get_item(Key=dal.sweep_key(SCOPE, record))["Item"]
    table.delete_item(Key=dal.sweep_key(SCOPE, record))
    table.put_item(Item={**pointer, **dal.sweep_key(SCOPE, {**record, "expires_at": past}), "expires_at": past})
    table.update_item(Key=dal.reservation_key(SCOPE, "r1"), UpdateExpression="SET expires_at = :p",
                      ExpressionAttributeValues={":p": past})

    assert sweeper(sample_event("reservation_sweeper/scheduled.json")) == {"expired": 1}
    assert sweeper(sample_event("reservation_sweeper/scheduled.json")) == {"expired": 0}
    stock = call(rewards_api, "GET", f"/v1/rewards/{reward_id}", "/v1/rewards/{reward_id}")[1]["stock"]
    assert stock == {"total": 5, "available": 5, "reserved": 0, "issued": 0}
    confirm = call(rewards_api, "POST", "/v1/inventory/r1/confirm", "/v1/inventory/{reservation_id}/confirm")
    assert (confirm[0], confirm[1]["error"]["code"]) == (409, "RESERVATION_CLOSED")


def test_a_redemption_with_a_cached_reward_that_was_edited_reads_it_again(apis, stack):
    # Given a flash-sale reward (4 shards, one per user) that the redeem container has cached by redeeming
    rewards_api, redeem_api = apis
    reward_id = new_reward(rewards_api, shards=4, per_user_limit=1)
    batch = new_batch(redeem_api, reward_id, count=4)
    a, b, c, _ = exported_codes(stack, export(redeem_api, batch["batch_id"])[1])
    assert redeem(redeem_api, a, "u1")[0] == 200
    # When an admin raises the limit to 2 (the shards' version moves), the same user redeems again
    status, _ = call(rewards_api, "PUT", f"/v1/rewards/{reward_id}", "/v1/rewards/{reward_id}",
                     body={"name": "VIP month", "reward_type": "VIP_CARD", "content": {"days": 30},
                           "per_user_limit": 2})
    assert status == 200
    # Then the shard refuses the cached version, the reward is read again and the new limit applies
    assert redeem(redeem_api, b, "u1")[0] == 200
    assert redeem(redeem_api, c, "u1")[1]["error"]["code"] == "PER_USER_LIMIT_REACHED"
    # And once deleted, nothing more is redeemed
    assert call(rewards_api, "DELETE", f"/v1/rewards/{reward_id}", "/v1/rewards/{reward_id}")[0] == 204
    assert redeem(redeem_api, c, "u2")[0] == 404
