"""GET /health: liveness, without a token."""

from marketing.core.http import build_resolver, lambda_handler_for

app = build_resolver()


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "UP"}


lambda_handler = lambda_handler_for(app, idempotent_writes=False)
