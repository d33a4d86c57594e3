"""Track API: promo codes per user and track type, and the record of who arrived through whose code."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from marketing.core.http import CREATED_OR_EXISTING, SVG, build_resolver, caller, lambda_handler_for
from marketing.core.types import Identifier, Limit
from marketing.tracking import service
from marketing.tracking.models import (
    Promcode,
    Promo,
    PromoOwner,
    Track,
    TrackIn,
    TrackPage,
    TrackSummary,
    TrackType,
    TrackTypeConfig,
    TrackTypeIn,
)

app = build_resolver()


@app.get("/tracks/<user_id>/<track_type>")
def get_promo(user_id: Annotated[Identifier, Path()], track_type: Annotated[TrackType, Path()]) -> Promo:
    return service.get_or_create_promo(caller(app), user_id, track_type)


@app.post("/tracks", responses=CREATED_OR_EXISTING)
def post_track(body: TrackIn) -> Response[Track]:
    track, created = service.record_arrival(caller(app), body)
    return Response(status_code=201 if created else 200, body=track, content_type="application/json")


@app.get("/tracks")
def list_tracks(
    referrer: Annotated[Identifier, Query()],
    track_type: Annotated[TrackType | None, Query()] = None,
    limit: Annotated[Limit, Query()] = 20,
    next_token: Annotated[str | None, Query(max_length=2048)] = None,
) -> TrackPage:
    return service.list_tracks(caller(app), referrer, track_type, limit, next_token)


@app.get("/tracks/summary")
def track_summary(referrer: Annotated[Identifier, Query()]) -> TrackSummary:
    return service.summary(caller(app), referrer)


@app.get("/promos/<promcode>")
def get_promo_owner(promcode: Annotated[Promcode, Path()]) -> PromoOwner:
    return service.promo_owner(caller(app), promcode)


@app.get("/promos/<promcode>/qrcode.svg", responses=SVG)
def get_promo_qr(promcode: Annotated[Promcode, Path()]) -> Response[str]:
    return Response(status_code=200, content_type="image/svg+xml",
                    body=service.promo_qr_svg(caller(app), promcode))


@app.get("/track-types")
def list_track_types() -> list[TrackTypeConfig]:
    return service.track_types(caller(app))


@app.put("/track-types/<track_type>", status_code=201)
def put_track_type(track_type: Annotated[TrackType, Path()], body: TrackTypeIn) -> Response[TrackTypeConfig]:
    return Response(status_code=201, body=service.configure_track_type(caller(app), track_type, body),
                    content_type="application/json")


lambda_handler = lambda_handler_for(app)
