"""Stats intake: `POST /v1/events` validates each event and puts the valid ones on the stats queue."""

from aws_lambda_powertools.event_handler import Response

from marketing.core.http import build_resolver, caller, lambda_handler_for
from marketing.stats import service
from marketing.stats.models import EventBatchIn, EventBatchResult

app = build_resolver()


@app.post("/v1/events", status_code=202)
def post_events(body: EventBatchIn) -> Response[EventBatchResult]:
    return Response(status_code=202, body=service.submit(caller(app), body), content_type="application/json")


lambda_handler = lambda_handler_for(app)
