"""The OpenAPI document of every API function tells its answers as they are: the success status each route
answers, and every error in the one shape (`ErrorBody`), not Powertools' own error shapes."""

from __future__ import annotations

import json

import pytest

from marketing.core.http import ERROR_STATUSES, GATEWAY_STATUSES
from tests.support import TEMPLATE, Function

API_FUNCTIONS = sorted(name for name, resource in TEMPLATE["Resources"].items()
                       if any(event.get("Type") == "HttpApi"
                              for event in resource.get("Properties", {}).get("Events", {}).values()))


@pytest.fixture
def documents(stack) -> dict[str, dict]:
    return {name: json.loads(Function(name, stack).module.app.get_openapi_json_schema()) for name in API_FUNCTIONS}


def responses(documents: dict[str, dict], route: str) -> dict:
    method, path = route.split(" ", 1)
    return next(d["paths"][path][method.lower()]["responses"] for d in documents.values() if path in d["paths"]
                and method.lower() in d["paths"][path])


def test_every_operation_documents_each_error_in_the_one_shape(documents):
    ours = {"$ref": "#/components/schemas/ErrorBody"}
    for name, document in documents.items():
        assert not {"HTTPValidationError", "ResponseValidationError"} & set(document["components"]["schemas"]), name
        for path, item in document["paths"].items():
            for method, operation in item.items():
                for status in ERROR_STATUSES:
                    schema = operation["responses"][str(status)]["content"]["application/json"]["schema"]
                    # API Gateway answers some 401s and 429s itself, in its own shape
                    expected = {"anyOf": [ours, {"$ref": "#/components/schemas/GatewayMessage"}]} \
                        if status in GATEWAY_STATUSES else ours
                    assert schema == expected, f"{method} {path} {status}"


@pytest.mark.parametrize(("route", "statuses"), [
    ("POST /v1/rewards", {"201"}),
    ("POST /tracks", {"200", "201"}),
    ("POST /v1/campaigns/{campaign_id}/redeem-codes", {"201", "202"}),
    ("POST /v1/events", {"202"}),
    ("DELETE /v1/tasks/{task_id}", {"204"}),
    ("GET /v1/rewards/{reward_id}", {"200"}),
])
def test_the_success_statuses_are_the_ones_answered(documents, route, statuses):
    assert {s for s in responses(documents, route) if s.startswith("2")} == statuses


def test_a_deletion_has_no_body_and_an_svg_is_an_image(documents):
    assert responses(documents, "DELETE /v1/rewards/{reward_id}")["204"]["content"] == {}
    for route in ("GET /promos/{promcode}/qrcode.svg", "GET /v1/stats/{topic_type}/{topic_id}/chart.svg"):
        assert set(responses(documents, route)["200"]["content"]) == {"image/svg+xml"}
