"""HTTP wiring shared by every API function: the resolver, the one error shape, the caller, idempotency.

Every 4xx and 5xx answers `{"error": {"code": ..., "message": ..., "details": [...]}}`. Domain errors map
to HTTP here and nowhere else; validation errors name the field (`body.user_id`, `query.limit`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestValidationError,
    ResponseValidationError,
)
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)

from marketing.core import aws, config, pagination
from marketing.core.errors import DomainError, Forbidden, ValidationFailed
from marketing.core.identity import Caller, caller_from_claims
from marketing.core.observability import logger, metrics, tracer

IDEMPOTENCY_HEADER = "idempotency-key"
# The key is scoped to tenant, app, caller and route, so one tenant's (or app's) key never replays another's answer.
_IDEMPOTENCY_KEY_PATH = (
    "[requestContext.authorizer.jwt.claims.tenant_id, requestContext.authorizer.jwt.claims.app_id, "
    "requestContext.authorizer.jwt.claims.sub, "
    f'requestContext.routeKey, rawPath, headers."{IDEMPOTENCY_HEADER}"]'
)


def error_body(status: int, code: str, message: str, details: list | None = None,
               headers: dict[str, str] | None = None) -> Response:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body={"error": {"code": code, "message": message, "details": details or []}},
        headers=headers,
    )


def build_resolver() -> APIGatewayHttpResolver:
    """A resolver with request and response validation and the project's error shape.

    A response that fails its own model is our bug, so it answers 500, not Powertools' default 422."""
    app = APIGatewayHttpResolver(enable_validation=True, response_validation_error_http_code=500)

    @app.exception_handler(DomainError)
    def _domain(exc: DomainError):
        return error_body(exc.status, exc.code, exc.message, exc.details, exc.headers)

    @app.exception_handler(RequestValidationError)
    def _invalid(exc: RequestValidationError):
        # Powertools hides pydantic's messages for safety; ours are written for clients and name no internals.
        return _domain(ValidationFailed.of(list(exc.errors())))

    @app.exception_handler(ResponseValidationError)
    def _bad_response(exc: ResponseValidationError):
        logger.error("response failed its own model", extra={"errors": str(exc.errors())})
        return error_body(500, "INTERNAL_ERROR", "internal error")

    @app.not_found
    def _not_found(_: NotFoundError):
        return error_body(404, "ROUTE_NOT_FOUND", "no such route")

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception):
        logger.exception("unhandled error")
        return error_body(500, "INTERNAL_ERROR", "internal error")

    return app


def caller(app: APIGatewayHttpResolver) -> Caller:
    """The verified caller of the request being resolved; refuses a request naming another tenant or app."""
    event = app.current_event
    who = caller_from_claims(event.request_context.authorizer.jwt_claim)
    named = [event.query_string_parameters or {}]
    if event.body:  # checked even when the query names the caller's tenant: both must
        try:
            body = event.json_body
        except ValueError:
            body = None  # validation answers for a malformed body
        if isinstance(body, dict):
            named.append(body)
    for field, mine in (("tenant_id", who.tenant_id), ("app_id", who.app_id)):
        if any(where.get(field) is not None and str(where[field]) != mine for where in named):
            raise Forbidden(f"the request names another {field.removesuffix('_id')}")
    pagination.bind(who.tenant_id, who.app_id, who.sub, event.route_key)  # its page tokens are for it alone
    return who


def _persistence_layer() -> DynamoDBPersistenceLayer:
    # A client of boto3's default session (Powertools would make a session of its own): one configuration,
    # and request-counting hooks see idempotency traffic too.
    return DynamoDBPersistenceLayer(table_name=config.idempotency_table_name(),
                                    boto3_client=aws.client("dynamodb"))


class _DoNotRemember(Exception):
    """Carries a 5xx or 429 answer out of the idempotent call so its record is dropped and a retry runs again
    (a request refused by the rate limit must run once its window has passed, not replay the refusal)."""

    def __init__(self, response: dict[str, Any]):
        self.response = response


def lambda_handler_for(app: APIGatewayHttpResolver, *, idempotent_writes: bool = True) -> Callable:
    """The Lambda entry point for an API function: logging with correlation ids, tracing, metrics and,
    for requests with an `Idempotency-Key` header, Powertools idempotency (the first answer is replayed)."""

    def resolve(event: dict, context: Any) -> dict:
        answer = app.resolve(event, context)
        status = answer.get("statusCode", 500)
        if status >= 500 or status == HTTPStatus.TOO_MANY_REQUESTS:
            raise _DoNotRemember(answer)
        return answer

    @cache
    def remembered() -> Callable:
        # Built on the first request that carries the header, not at import: the persistence layer makes a
        # boto3 client, which every cold start would pay for although most requests never need it.
        return idempotent(
            persistence_store=_persistence_layer(),
            config=IdempotencyConfig(event_key_jmespath=_IDEMPOTENCY_KEY_PATH,
                                     payload_validation_jmespath="body", expires_after_seconds=24 * 3600),
        )(resolve)

    def respond(error: Response) -> dict:
        return {"statusCode": error.status_code, "headers": {"Content-Type": "application/json"},
                "body": json.dumps(error.body), "isBase64Encoded": False}

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
    @tracer.capture_lambda_handler(capture_response=False)
    @metrics.log_metrics
    def handler(event: dict, context: Any) -> dict:
        wants_once = idempotent_writes and IDEMPOTENCY_HEADER in (event.get("headers") or {}) and \
            event.get("requestContext", {}).get("http", {}).get("method") != "GET"
        try:
            return remembered()(event, context) if wants_once else resolve(event, context)
        except _DoNotRemember as failed:
            return failed.response
        except IdempotencyAlreadyInProgressError:
            return respond(error_body(409, "REQUEST_IN_PROGRESS", "a request with this Idempotency-Key is in progress"))
        except IdempotencyValidationError:
            return respond(error_body(422, "IDEMPOTENCY_KEY_REUSED",
                                      "this Idempotency-Key was used with a different request",
                                      [{"field": "headers.idempotency-key"}]))

    return handler


__all__ = ["build_resolver", "caller", "lambda_handler_for", "error_body", "HTTPStatus"]
