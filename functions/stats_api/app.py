"""Stats API: daily metrics and totals of a topic, its chart, and the operation records of a day."""

from datetime import date
from typing import Annotated, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from marketing.core.http import SVG, build_resolver, caller, lambda_handler_for
from marketing.core.types import Identifier, Limit
from marketing.stats import service
from marketing.stats.metrics import METRICS
from marketing.stats.models import Name, OperationRecordPage, StatsReport

app = build_resolver()
Metric = Literal[tuple(METRICS)]  # type: ignore[valid-type]


@app.get("/v1/stats/<topic_type>/<topic_id>")
def get_stats(
    topic_type: Annotated[Name, Path()],
    topic_id: Annotated[Identifier, Path()],
    from_: Annotated[date | None, Query(alias="from")] = None,
    to: Annotated[date | None, Query()] = None,
    channel_type: Annotated[Identifier | None, Query()] = None,
) -> StatsReport:
    return service.report(caller(app), topic_type, topic_id, from_, to, channel_type)


@app.get("/v1/stats/<topic_type>/<topic_id>/chart.svg", responses=SVG)
def get_chart(
    topic_type: Annotated[Name, Path()],
    topic_id: Annotated[Identifier, Path()],
    metric: Annotated[Metric, Query()],
    from_: Annotated[date | None, Query(alias="from")] = None,
    to: Annotated[date | None, Query()] = None,
    channel_type: Annotated[Identifier | None, Query()] = None,
) -> Response[str]:
    svg = service.chart_svg(caller(app), topic_type, topic_id, metric, from_, to, channel_type)
    return Response(status_code=200, content_type="image/svg+xml", body=svg)


@app.get("/v1/stats/<topic_type>/<topic_id>/records")
def get_records(
    topic_type: Annotated[Name, Path()],
    topic_id: Annotated[Identifier, Path()],
    day: Annotated[date, Query()],
    limit: Annotated[Limit, Query()] = 50,
    next_token: Annotated[str | None, Query(max_length=2048)] = None,
) -> OperationRecordPage:
    return service.operation_records(caller(app), topic_type, topic_id, day, limit, next_token)


lambda_handler = lambda_handler_for(app, idempotent_writes=False)
