"""Redeem codes API: batch generation, export, listings, assignment, redemption and revocation."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from marketing.core.http import build_resolver, caller, lambda_handler_for
from marketing.core.types import Identifier, Limit
from marketing.rewards import redeem
from marketing.rewards.models import (
    AssignedCode,
    AssignIn,
    Batch,
    BatchCreated,
    BatchIn,
    CodePage,
    CodeStatus,
    CodeView,
    Export,
    ExportIn,
    Grant,
    RedeemIn,
    Validation,
)

app = build_resolver()
# A small batch is generated in the request, a large one in the background.
GENERATED_OR_ACCEPTED = {201: {"description": "Generated"},
                         202: {"description": "Accepted: generated in the background"}}
Code = Annotated[str, Path(min_length=4, max_length=40)]


@app.post("/v1/campaigns/<campaign_id>/redeem-codes", responses=GENERATED_OR_ACCEPTED)
def create_batch(campaign_id: Annotated[Identifier, Path()], body: BatchIn) -> Response[BatchCreated]:
    batch = redeem.create_batch(caller(app), campaign_id, body)
    return Response(status_code=201 if batch.status == "DONE" else 202, body=batch, content_type="application/json")


@app.get("/v1/redeem-code-batches/<batch_id>")
def get_batch(batch_id: Annotated[Identifier, Path()]) -> Batch:
    return redeem.get_batch(caller(app), batch_id)


@app.post("/v1/redeem-code-batches/<batch_id>/export", status_code=201)
def export(batch_id: Annotated[Identifier, Path()], body: ExportIn) -> Response[Export]:
    return Response(status_code=201, body=redeem.export(caller(app), batch_id, body), content_type="application/json")


@app.get("/v1/redeem-codes")
def list_codes(batch_id: Annotated[Identifier, Query()], status: Annotated[CodeStatus | None, Query()] = None,
               limit: Annotated[Limit, Query()] = 20,
               next_token: Annotated[str | None, Query(max_length=2048)] = None) -> CodePage:
    return redeem.list_codes(caller(app), batch_id, status, limit, next_token)


@app.get("/v1/redeem-codes/<code>")
def get_code(code: Code) -> CodeView:
    return redeem.get_code(caller(app), code)


@app.post("/v1/redeem-codes/<code>/assign")
def assign(code: Code, body: AssignIn) -> AssignedCode:
    return redeem.assign(caller(app), code, body.user_id)


@app.post("/v1/redeem-codes/<code>/revoke")
def revoke(code: Code) -> CodeView:
    return redeem.revoke(caller(app), code)


@app.post("/v1/redeem")
def redeem_code(body: RedeemIn) -> Grant:
    return redeem.redeem(caller(app), body)


@app.post("/v1/redeem/validate")
def validate_code(body: RedeemIn) -> Validation:
    return redeem.validate(caller(app), body)


lambda_handler = lambda_handler_for(app)
