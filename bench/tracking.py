"""DynamoDB requests per Track API operation, counted with a botocore hook through the real handler."""

from __future__ import annotations

import bench.support  # noqa: F401  (sets a safe environment first)
from bench.support import counting, table
from tests.support import Function, body_of, claims, http_event, mocked_stack

ADMIN = claims("bench", "ops", "[admin]")


def run() -> list[str]:
    rows = []
    with mocked_stack("bench") as stack, counting() as counter:
        api = Function("TrackApiFunction", stack)  # built inside: its idempotency client is counted too

        def measure(label: str, event: dict) -> dict:
            counter.reset()
            answer = api(event)
            assert answer["statusCode"] < 300, answer
            rows.append((label, counter.dynamodb(), ", ".join(f"{k.split('.')[1]}×{v}" for k, v in
                                                            sorted(counter.calls.items()) if k.startswith("dynamodb"))))
            return body_of(answer)

        get = http_event("GET", "/tracks/alice/1", "/tracks/{user_id}/{track_type}", claims_=ADMIN)
        code = measure("GET /tracks/{u}/{t} (first: creates the code)", get)["promcode"]
        measure("GET /tracks/{u}/{t} (existing code)", get)
        new_user = {"user_id": "bob", "track_type": 2, "promcode": code}
        measure("POST /tracks new user via promcode", http_event("POST", "/tracks", "/tracks", body=new_user,
                                                                 claims_=ADMIN))
        measure("POST /tracks new user repeated", http_event("POST", "/tracks", "/tracks", body=new_user,
                                                             claims_=ADMIN))
        visit = {"user_id": "carol", "track_type": 1, "referrer": "alice"}
        measure("POST /tracks visit", http_event("POST", "/tracks", "/tracks", body=visit, claims_=ADMIN))
        measure("POST /tracks visit with Idempotency-Key",
                http_event("POST", "/tracks", "/tracks", body=visit, headers={"Idempotency-Key": "k1"},
                           claims_=ADMIN))
        measure("GET /tracks?referrer=", http_event("GET", "/tracks", "/tracks", query={"referrer": "alice"},
                                                    claims_=ADMIN))
        measure("GET /tracks/summary", http_event("GET", "/tracks/summary", "/tracks/summary",
                                                  query={"referrer": "alice"}, claims_=ADMIN))
        measure("GET /promos/{code}", http_event("GET", f"/promos/{code}", "/promos/{promcode}", claims_=ADMIN))
    return table(rows, ("operation", "DynamoDB requests", "by operation"))
