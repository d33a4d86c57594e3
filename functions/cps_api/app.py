"""CPS API: affiliates and their invite chain, commissions and earnings, settings and reconciliation."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from marketing.core.http import CREATED_OR_EXISTING, build_resolver, caller, lambda_handler_for
from marketing.core.types import Identifier, Limit
from marketing.cps import service
from marketing.cps.models import (
    Affiliate,
    AffiliateIn,
    AffiliateStatusIn,
    CommissionPage,
    Earnings,
    EntryStatus,
    Level,
    OrderState,
    PendingReversal,
    PendingReversalIn,
    Platform,
    Reconciliation,
    RelationPage,
    Settings,
    SettingsIn,
    Upline,
)

app = build_resolver()
Token = Annotated[str | None, Query(max_length=2048)]
Day = Annotated[str, Query(pattern=r"^\d{4}-\d{2}-\d{2}$", description="a UTC day, YYYY-MM-DD")]


@app.post("/v1/affiliates", responses=CREATED_OR_EXISTING)
def register(body: AffiliateIn) -> Response[Affiliate]:
    affiliate, created = service.register(caller(app), body)
    return Response(status_code=201 if created else 200, body=affiliate, content_type="application/json")


@app.get("/v1/affiliates/<user_id>")
def get_affiliate(user_id: Annotated[Identifier, Path()]) -> Affiliate:
    return service.get_affiliate(caller(app), user_id)


@app.put("/v1/affiliates/<user_id>/status")
def set_status(user_id: Annotated[Identifier, Path()], body: AffiliateStatusIn) -> Affiliate:
    return service.set_status(caller(app), user_id, body)


@app.post("/v1/affiliates/<user_id>/pending-reversals")
def reverse_pending(user_id: Annotated[Identifier, Path()], body: PendingReversalIn) -> PendingReversal:
    return service.reverse_pending(caller(app), user_id, body)


@app.get("/v1/affiliates/<user_id>/downline")
def downline(user_id: Annotated[Identifier, Path()], level: Annotated[Level, Query()] = 1,
             limit: Annotated[Limit, Query()] = 20, next_token: Token = None) -> RelationPage:
    return service.downline(caller(app), user_id, level, limit, next_token)


@app.get("/v1/affiliates/<user_id>/upline")
def upline(user_id: Annotated[Identifier, Path()]) -> Upline:
    return service.upline(caller(app), user_id)


@app.get("/v1/affiliates/<user_id>/commissions")
def commissions(user_id: Annotated[Identifier, Path()], status: Annotated[EntryStatus | None, Query()] = None,
                limit: Annotated[Limit, Query()] = 20, next_token: Token = None) -> CommissionPage:
    return service.commissions(caller(app), user_id, status, limit, next_token)


@app.get("/v1/affiliates/<user_id>/earnings")
def earnings(user_id: Annotated[Identifier, Path()]) -> Earnings:
    return service.earnings(caller(app), user_id)


@app.get("/v1/cps/settings")
def get_settings() -> Settings:
    return service.get_settings(caller(app))


@app.put("/v1/cps/settings")
def put_settings(body: SettingsIn) -> Settings:
    return service.configure(caller(app), body)


@app.get("/v1/cps/orders/<platform>/<order_id>")
def get_order(platform: Annotated[Platform, Path()], order_id: Annotated[Identifier, Path()]) -> OrderState:
    return service.get_order(caller(app), platform, order_id)


@app.get("/v1/cps/reconciliation")
def reconciliation(date: Day, platform: Annotated[Platform | None, Query()] = None) -> Reconciliation:
    return service.reconciliation(caller(app), date, platform)


lambda_handler = lambda_handler_for(app)
