"""POST /v1/cps/{tenant_id}/{app_id}/{platform}/orders: a CPS platform's signed order update. No JWT: the
platform authenticates with an HMAC signature made with the key of this URL's tenant, app and platform
(marketing.cps.signing)."""

import base64
from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path

from marketing.core.http import build_resolver, lambda_handler_for
from marketing.core.types import Identifier
from marketing.cps import service
from marketing.cps.models import Ingested, Platform

app = build_resolver()


@app.post("/v1/cps/<tenant_id>/<app_id>/<platform>/orders")
def order_update(tenant_id: Annotated[Identifier, Path()], app_id: Annotated[Identifier, Path()],
                 platform: Annotated[Platform, Path()]) -> Ingested:
    event = app.current_event
    # The signature covers the bytes the platform sent: decode base64 to bytes, never through text.
    raw = base64.b64decode(event.body or "") if event.is_base64_encoded else (event.body or "").encode()
    return service.ingest_webhook(tenant_id, app_id, platform, dict(event.headers or {}), raw)


# Repeats are made harmless by the order's business key, not by an Idempotency-Key (there is no caller);
# the body is read as the platform sent it, whatever its media type, since the signature covers its bytes.
lambda_handler = lambda_handler_for(app, idempotent_writes=False, json_bodies=False)
