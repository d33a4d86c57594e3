"""Campaign engine API: campaigns, audiences, tasks and their links (admin), the trigger endpoint, completion
logs and stats, each user's task view, and batch grants of a reward."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query

from marketing.campaigns import batches, service
from marketing.campaigns.models import (
    Audience,
    AudienceIn,
    AudienceMatch,
    AudienceMatchIn,
    AudiencePage,
    Campaign,
    CampaignIn,
    CampaignPage,
    CampaignTask,
    CampaignTaskIn,
    CompletionLogPage,
    CompletionStats,
    GrantBatch,
    GrantBatchIn,
    Task,
    TaskIn,
    TaskPage,
    TriggerAccepted,
    TriggerIn,
    UserTasks,
)
from marketing.core.http import CREATED_OR_EXISTING, NO_CONTENT, build_resolver, caller, lambda_handler_for
from marketing.core.types import Identifier, Limit

app = build_resolver()
Id = Annotated[Identifier, Path()]
Token = Annotated[str | None, Query(max_length=2048)]


def created(body) -> Response:
    return Response(status_code=201, body=body, content_type="application/json")


def no_content() -> Response:
    return Response(status_code=204, body="")


# --- campaigns ---
@app.post("/v1/campaigns", status_code=201)
def create_campaign(body: CampaignIn) -> Response[Campaign]:
    return created(service.create_campaign(caller(app), body))


@app.get("/v1/campaigns")
def list_campaigns(limit: Annotated[Limit, Query()] = 20, next_token: Token = None) -> CampaignPage:
    return service.list_campaigns(caller(app), limit, next_token)


@app.get("/v1/campaigns/<campaign_id>")
def get_campaign(campaign_id: Id) -> Campaign:
    return service.get_campaign(caller(app), campaign_id)


@app.put("/v1/campaigns/<campaign_id>")
def update_campaign(campaign_id: Id, body: CampaignIn) -> Campaign:
    return service.update_campaign(caller(app), campaign_id, body)


@app.delete("/v1/campaigns/<campaign_id>", responses=NO_CONTENT)
def delete_campaign(campaign_id: Id) -> Response[None]:
    service.delete_campaign(caller(app), campaign_id)
    return no_content()


@app.post("/v1/campaigns/<campaign_id>/tasks", responses=CREATED_OR_EXISTING)
def link_task(campaign_id: Id, body: CampaignTaskIn) -> Response[CampaignTask]:
    link, new = service.link_task(caller(app), campaign_id, body)
    return Response(status_code=201 if new else 200, body=link, content_type="application/json")


@app.get("/v1/campaigns/<campaign_id>/tasks")
def campaign_tasks(campaign_id: Id, limit: Annotated[Limit, Query()] = 20, next_token: Token = None) -> TaskPage:
    return service.campaign_tasks(caller(app), campaign_id, limit, next_token)


@app.delete("/v1/campaigns/<campaign_id>/tasks/<task_id>", responses=NO_CONTENT)
def unlink_task(campaign_id: Id, task_id: Id) -> Response[None]:
    service.unlink_task(caller(app), campaign_id, task_id)
    return no_content()


# --- audiences ---
@app.post("/v1/audiences", status_code=201)
def create_audience(body: AudienceIn) -> Response[Audience]:
    return created(service.create_audience(caller(app), body))


@app.get("/v1/audiences")
def list_audiences(limit: Annotated[Limit, Query()] = 20, next_token: Token = None) -> AudiencePage:
    return service.list_audiences(caller(app), limit, next_token)


@app.get("/v1/audiences/<audience_id>")
def get_audience(audience_id: Id) -> Audience:
    return service.get_audience(caller(app), audience_id)


@app.put("/v1/audiences/<audience_id>")
def update_audience(audience_id: Id, body: AudienceIn) -> Audience:
    return service.update_audience(caller(app), audience_id, body)


@app.delete("/v1/audiences/<audience_id>", responses=NO_CONTENT)
def delete_audience(audience_id: Id) -> Response[None]:
    service.delete_audience(caller(app), audience_id)
    return no_content()


@app.post("/v1/audiences/<audience_id>/match")
def match_audience(audience_id: Id, body: AudienceMatchIn) -> AudienceMatch:
    return service.match_audience(caller(app), audience_id, body)


# --- tasks ---
@app.post("/v1/tasks", status_code=201)
def create_task(body: TaskIn) -> Response[Task]:
    return created(service.create_task(caller(app), body))


@app.get("/v1/tasks")
def list_tasks(limit: Annotated[Limit, Query()] = 20, next_token: Token = None) -> TaskPage:
    return service.list_tasks(caller(app), limit, next_token)


@app.post("/v1/tasks/trigger", status_code=202)
def trigger(body: TriggerIn) -> Response[TriggerAccepted]:
    return Response(status_code=202, body=service.trigger(caller(app), body), content_type="application/json")


@app.get("/v1/tasks/<task_id>")
def get_task(task_id: Id) -> Task:
    return service.get_task(caller(app), task_id)


@app.put("/v1/tasks/<task_id>")
def update_task(task_id: Id, body: TaskIn) -> Task:
    return service.update_task(caller(app), task_id, body)


@app.delete("/v1/tasks/<task_id>", responses=NO_CONTENT)
def delete_task(task_id: Id) -> Response[None]:
    service.delete_task(caller(app), task_id)
    return no_content()


@app.get("/v1/tasks/<task_id>/completion-stats")
def completion_stats(task_id: Id) -> CompletionStats:
    return service.completion_stats(caller(app), task_id)


@app.get("/v1/task-completion-logs")
def completion_logs(task_id: Annotated[Identifier | None, Query()] = None,
                    user_id: Annotated[Identifier | None, Query()] = None,
                    limit: Annotated[Limit, Query()] = 20, next_token: Token = None) -> CompletionLogPage:
    return service.completion_logs(caller(app), task_id, user_id, limit, next_token)


@app.get("/v1/users/<user_id>/tasks")
def user_tasks(user_id: Id) -> UserTasks:
    return service.user_tasks(caller(app), user_id)


# --- batch grants ---
@app.post("/v1/rewards/<reward_id>/grant-batches", status_code=202)
def create_grant_batch(reward_id: Id, body: GrantBatchIn) -> Response[GrantBatch]:
    batch = batches.create_batch(caller(app), reward_id, body)
    return Response(status_code=202, body=batch, content_type="application/json")


@app.get("/v1/grant-batches/<grant_batch_id>")
def get_grant_batch(grant_batch_id: Id) -> GrantBatch:
    return batches.get_batch(caller(app), grant_batch_id)


lambda_handler = lambda_handler_for(app)
