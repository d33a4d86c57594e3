"""core.dynamo.transact_write retries cancellations caused only by conflicts or throttling, never a failed
condition: botocore's Stubber answers for DynamoDB, so the real client and our code run unchanged."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from marketing.core import dynamo

ACTION = [{"Put": {"Item": {"pk": "T#t#X", "sk": "X"}}}]


def cancelled(*reasons: str) -> dict:
    return {"service_error_code": "TransactionCanceledException", "service_message": "cancelled",
            "modeled_fields": {"CancellationReasons": [{"Code": r} for r in reasons]}}


@pytest.fixture
def stubbed(stack, monkeypatch):
    monkeypatch.setattr(dynamo, "TRANSACT_ATTEMPTS", 3)
    with Stubber(dynamo.client()) as stubber:
        yield stubber


def test_conflicts_are_retried_until_the_transaction_goes_through(stubbed):
    stubbed.add_client_error("transact_write_items", **cancelled("TransactionConflict"))
    stubbed.add_client_error("transact_write_items", **cancelled("None", "ThrottlingError"))
    stubbed.add_response("transact_write_items", {})
    dynamo.transact_write(ACTION)
    stubbed.assert_no_pending_responses()


def test_a_failed_condition_is_raised_at_once(stubbed):
    stubbed.add_client_error("transact_write_items", **cancelled("ConditionalCheckFailed", "TransactionConflict"))
    with pytest.raises(ClientError) as raised:
        dynamo.transact_write(ACTION)
    assert dynamo.cancellation_reasons(raised.value) == ["ConditionalCheckFailed", "TransactionConflict"]
    stubbed.assert_no_pending_responses()


def test_conflicts_that_outlast_the_retries_are_raised(stubbed):
    for _ in range(3):
        stubbed.add_client_error("transact_write_items", **cancelled("TransactionConflict"))
    with pytest.raises(ClientError):
        dynamo.transact_write(ACTION)
    stubbed.assert_no_pending_responses()
