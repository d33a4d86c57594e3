"""HTTP wiring shared by every API function: the resolver, the one error shape, the caller, idempotency.

Every 4xx and 5xx answers `{"error": {"code": ..., "message": ..., "details": [...]}}`. Domain errors map
to HTTP here and nowhere else; validation errors name the field (`body.user_id`, `query.limit`). The API reads
JSON bodies only: another media type is a 415, a body that cannot be read (not UTF-8, bad base64, nested too
deeply) a 400 `MALFORMED_BODY`; no input may end in a 5xx.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from functools import cache
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
    ResponseValidationError,
)
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from pydantic import BaseModel, ConfigDict

from marketing.core import aws, config, pagination
from marketing.core.errors import (
    DomainError,
    Forbidden,
    MalformedBody,
    UnsupportedMediaType,
    ValidationFailed,
)
from marketing.core.identity import Caller, caller_from_claims, parse_roles
from marketing.core.observability import logger, metrics, tracer

IDEMPOTENCY_HEADER = "idempotency-key"
JSON = "application/json"
# DynamoDB nests a document at most 32 levels deep; Python's parser and serializers recurse on nesting too.
MAX_BODY_DEPTH = 32


# --- the error shape, as answered and as the OpenAPI document tells it -----------------------------------------

class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")
    field: str
    message: str | None = None


class ErrorInfo(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail]


class ErrorBody(BaseModel):
    error: ErrorInfo


# What any operation may answer besides its success, in the one shape. In AWS, API Gateway answers some 401s
# (its JWT authorizer) and 429s (throttling) itself, as `{"message": ...}`.
ERROR_STATUSES = {400: "Malformed request: a body that cannot be read, a bad page token",
                  401: "Missing, expired or invalid token", 403: "Not allowed to this caller",
                  404: "Not found", 409: "Conflicts with the current state",
                  415: "The body is not application/json", 422: "The input fails validation: the fields are named",
                  429: "Too many requests", 500: "Internal error (a bug)"}
GATEWAY_STATUSES = (401, 429)
GATEWAY_MESSAGE = {"title": "GatewayMessage", "type": "object", "properties": {"message": {"type": "string"}},
                   "required": ["message"], "description": "API Gateway's own answer"}
# Success responses for the route declarations whose answer is not one plain 200.
CREATED_OR_EXISTING = {201: {"description": "Created"},
                       200: {"description": "Already there: a repeat answers what exists"}}
NO_CONTENT = {204: {"description": "Done, no body", "content": {}}}
SVG = {200: {"description": "An SVG image", "content": {"image/svg+xml": {"schema": {"type": "string"}}}}}


class Resolver(APIGatewayHttpResolver):
    """Powertools' resolver whose OpenAPI document describes errors as answered here: Powertools documents its
    own shapes (`HTTPValidationError` for 422, `ResponseValidationError` for 500), which no route answers."""

    def get_openapi_schema(self, **kwargs: Any) -> Any:
        # Imported here: the OpenAPI models cost ~70 ms of import, which no request but /docs needs.
        from aws_lambda_powertools.event_handler.openapi.models import OpenAPI

        document = super().get_openapi_schema(**kwargs).model_dump(by_alias=True, exclude_none=True)
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for powertools_shape in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
            schemas.pop(powertools_shape, None)
        error = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update({**error.pop("$defs"), "ErrorBody": error, "GatewayMessage": GATEWAY_MESSAGE})
        ours = {"$ref": "#/components/schemas/ErrorBody"}
        either = {"anyOf": [ours, {"$ref": "#/components/schemas/GatewayMessage"}]}
        errors = {status: {"description": why,
                           "content": {JSON: {"schema": either if status in GATEWAY_STATUSES else ours}}}
                  for status, why in ERROR_STATUSES.items()}
        for item in document.get("paths", {}).values():
            for operation in item.values():
                operation["responses"].update(errors)
        return OpenAPI.model_validate(document)


def error_body(status: int, code: str, message: str, details: list | None = None,
               headers: dict[str, str] | None = None) -> Response:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body={"error": {"code": code, "message": message, "details": details or []}},
        headers=headers,
    )


def _answer(exc: DomainError) -> Response:
    return error_body(exc.status, exc.code, exc.message, exc.details, exc.headers)


def _unsupported(content_type: str) -> UnsupportedMediaType:
    return UnsupportedMediaType(f"the body must be {JSON}, not {content_type}",
                                details=[{"field": "headers.content-type", "message": f"expected {JSON}"}])


def _malformed(why: str) -> MalformedBody:
    return MalformedBody(f"the body {why}", details=[{"field": "body", "message": why}])


def _nested_deeper_than(value: Any, limit: int) -> bool:
    todo = [(value, 1)]
    while todo:
        node, depth = todo.pop()
        if isinstance(node, dict):
            node = node.values()
        elif not isinstance(node, list):
            continue
        if depth > limit:
            return True
        todo.extend((child, depth + 1) for child in node)
    return False


def read_json(text: str) -> Any:
    """Powertools' JSON body parser here: a body nested deeper than DynamoDB stores is refused whole, before
    a recursive parser or serializer overflows the stack on it. Syntax errors stay Powertools' 422."""
    try:
        value = json.loads(text)
        if not _nested_deeper_than(value, MAX_BODY_DEPTH):
            return value
    except RecursionError:
        pass
    raise _malformed(f"is nested more than {MAX_BODY_DEPTH} levels deep")


def unreadable_body(event: dict) -> DomainError | None:
    """Why the request's body cannot be read as JSON, or None. Checked before anything reads the body:
    Powertools would also parse forms and multipart bodies (and answer a 500 for some malformed ones) and
    fails with a UnicodeDecodeError on bytes that are not UTF-8."""
    body = event.get("body")
    if not body:
        return None
    content_type = (event.get("headers") or {}).get("content-type", "").strip()
    if content_type and not content_type.startswith(JSON):  # as Powertools matches it
        return _unsupported(content_type)
    if event.get("isBase64Encoded"):
        try:
            base64.b64decode(body, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return _malformed("is not base64 of UTF-8 text")
    return None


def build_resolver() -> Resolver:
    """A resolver with request and response validation and the project's error shape.

    A response that fails its own model is our bug, so it answers 500, not Powertools' default 422."""
    app = Resolver(enable_validation=True, response_validation_error_http_code=500, json_body_deserializer=read_json)

    @app.exception_handler(DomainError)
    def _domain(exc: DomainError):
        return _answer(exc)

    @app.exception_handler(RequestUnsupportedContentType)
    def _unsupported_content_type(_: RequestUnsupportedContentType):
        return _answer(_unsupported(app.current_event.headers.get("content-type", "")))

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


def idempotency_request(event: dict) -> dict:
    """What an `Idempotency-Key` is scoped to: the caller (tenant, app, subject and role set, however the
    roles claim orders them) and the route, so no other caller, role or route replays a remembered answer;
    and the body it was first used with, which a repeat must match."""
    claims = ((event.get("requestContext") or {}).get("authorizer") or {}).get("jwt", {}).get("claims") or {}
    scope = [claims.get("tenant_id"), claims.get("app_id"), claims.get("sub"), sorted(parse_roles(claims.get("roles"))),
             event.get("routeKey"), event.get("rawPath"), (event.get("headers") or {}).get(IDEMPOTENCY_HEADER)]
    return {"scope": scope, "body": event.get("body")}


def _lambda_answer(error: Response) -> dict:
    return {"statusCode": error.status_code, "headers": {"Content-Type": JSON},
            "body": json.dumps(error.body), "isBase64Encoded": False}


def lambda_handler_for(app: APIGatewayHttpResolver, *, idempotent_writes: bool = True,
                       json_bodies: bool = True) -> Callable:
    """The Lambda entry point for an API function: logging with correlation ids, tracing, metrics, the body
    check (`json_bodies`; off for a route that reads its raw bytes) and, for requests with an
    `Idempotency-Key` header, Powertools idempotency (the first answer is replayed)."""

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
        settings = IdempotencyConfig(event_key_jmespath="scope", payload_validation_jmespath="body",
                                     expires_after_seconds=24 * 3600)

        @idempotent_function(data_keyword_argument="request", persistence_store=_persistence_layer(),
                             config=settings)
        def resolve_once(event: dict, context: Any, *, request: dict) -> dict:
            return resolve(event, context)

        def call(event: dict, context: Any) -> dict:
            settings.register_lambda_context(context)
            return resolve_once(event, context, request=idempotency_request(event))

        return call

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
    @tracer.capture_lambda_handler(capture_response=False)
    @metrics.log_metrics
    def handler(event: dict, context: Any) -> dict:
        if json_bodies and (refused := unreadable_body(event)):
            return _lambda_answer(_answer(refused))
        wants_once = idempotent_writes and IDEMPOTENCY_HEADER in (event.get("headers") or {}) and \
            event.get("requestContext", {}).get("http", {}).get("method") != "GET"
        try:
            return remembered()(event, context) if wants_once else resolve(event, context)
        except _DoNotRemember as failed:
            return failed.response
        except IdempotencyAlreadyInProgressError:
            return _lambda_answer(error_body(409, "REQUEST_IN_PROGRESS",
                                             "a request with this Idempotency-Key is in progress"))
        except IdempotencyValidationError:
            return _lambda_answer(error_body(422, "IDEMPOTENCY_KEY_REUSED",
                                             "this Idempotency-Key was used with a different request",
                                             [{"field": "headers.idempotency-key"}]))

    return handler


__all__ = ["build_resolver", "caller", "lambda_handler_for", "error_body", "HTTPStatus"]
