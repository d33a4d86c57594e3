"""Rewards API: reward definitions and their stock, inventory reservations, reward grants, a user's wallet."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from marketing.core.http import CREATED_OR_EXISTING, NO_CONTENT, build_resolver, caller, lambda_handler_for
from marketing.core.types import Identifier, Limit
from marketing.rewards import service
from marketing.rewards.models import (
    Grant,
    GrantPage,
    GrantStatus,
    GrantStatusIn,
    Reservation,
    ReservationPage,
    ReservationStatus,
    ReserveIn,
    Reward,
    RewardFields,
    RewardIn,
    RewardPage,
    StockChange,
    WalletPage,
)

app = build_resolver()
Token = Annotated[str | None, Query(max_length=2048)]


@app.post("/v1/rewards", status_code=201)
def create_reward(body: RewardIn) -> Response[Reward]:
    return Response(status_code=201, body=service.create_reward(caller(app), body), content_type="application/json")


@app.get("/v1/rewards")
def list_rewards(limit: Annotated[Limit, Query()] = 20, next_token: Token = None) -> RewardPage:
    return service.list_rewards(caller(app), limit, next_token)


@app.get("/v1/rewards/<reward_id>")
def get_reward(reward_id: Annotated[Identifier, Path()]) -> Reward:
    return service.get_reward(caller(app), reward_id)


@app.put("/v1/rewards/<reward_id>")
def update_reward(reward_id: Annotated[Identifier, Path()], body: RewardFields) -> Reward:
    return service.update_reward(caller(app), reward_id, body)


@app.delete("/v1/rewards/<reward_id>", responses=NO_CONTENT)
def delete_reward(reward_id: Annotated[Identifier, Path()]) -> Response[None]:
    service.delete_reward(caller(app), reward_id)
    return Response(status_code=204)


@app.post("/v1/rewards/<reward_id>/stock")
def change_stock(reward_id: Annotated[Identifier, Path()], body: StockChange) -> Reward:
    return service.change_stock(caller(app), reward_id, body)


@app.post("/v1/inventory/reserve", responses=CREATED_OR_EXISTING)
def reserve(body: ReserveIn) -> Response[Reservation]:
    reservation, created = service.reserve(caller(app), **body.model_dump())
    return Response(status_code=201 if created else 200, body=reservation, content_type="application/json")


@app.post("/v1/inventory/<reservation_id>/confirm")
def confirm(reservation_id: Annotated[Identifier, Path()]) -> Reservation:
    return service.confirm(caller(app), reservation_id)


@app.post("/v1/inventory/<reservation_id>/cancel")
def cancel(reservation_id: Annotated[Identifier, Path()]) -> Reservation:
    return service.cancel(caller(app), reservation_id)


@app.get("/v1/inventory/reservations")
def list_reservations(reward_id: Annotated[Identifier, Query()], user_id: Annotated[Identifier | None, Query()] = None,
                      status: Annotated[ReservationStatus | None, Query()] = None,
                      limit: Annotated[Limit, Query()] = 20, next_token: Token = None) -> ReservationPage:
    return service.list_reservations(caller(app), reward_id, user_id, status, limit, next_token)


@app.get("/v1/reward-grants")
def list_grants(user_id: Annotated[Identifier | None, Query()] = None,
                reward_id: Annotated[Identifier | None, Query()] = None,
                status: Annotated[GrantStatus | None, Query()] = None,
                task_id: Annotated[Identifier | None, Query()] = None,
                campaign_id: Annotated[Identifier | None, Query()] = None,
                limit: Annotated[Limit, Query()] = 20, next_token: Token = None) -> GrantPage:
    filters = {"user_id": user_id, "reward_id": reward_id, "status": status, "task_id": task_id,
               "campaign_id": campaign_id}
    return service.list_grants(caller(app), filters, limit, next_token)


@app.get("/v1/users/<user_id>/rewards")
def wallet(user_id: Annotated[Identifier, Path()], status: Annotated[GrantStatus | None, Query()] = None,
           limit: Annotated[Limit, Query()] = 20, next_token: Token = None) -> WalletPage:
    return service.wallet(caller(app), user_id, status, limit, next_token)


@app.get("/v1/reward-grants/<grant_id>")
def get_grant(grant_id: Annotated[Identifier, Path()]) -> Grant:
    return service.get_grant(caller(app), grant_id)


@app.put("/v1/reward-grants/<grant_id>/status")
def set_grant_status(grant_id: Annotated[Identifier, Path()], body: GrantStatusIn) -> Grant:
    return service.transition_grant(caller(app), grant_id, to=body.status, reason=body.reason)


@app.post("/v1/reward-grants/<grant_id>/rollback")
def rollback(grant_id: Annotated[Identifier, Path()]) -> Grant:
    return service.rollback(caller(app), grant_id)


lambda_handler = lambda_handler_for(app)
