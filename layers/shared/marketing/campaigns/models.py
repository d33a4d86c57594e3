"""API models of the campaign engine. Field names follow the seed service; times are UTC ISO 8601."""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, ValidationInfo, field_validator, model_validator

from marketing.campaigns import rules
from marketing.core.clock import iso
from marketing.core.types import AnyId, Identifier, UtcTime

MAX_LIST_USERS = 1000
MAX_EVENT_JSON = 8 * 1024


Name = Annotated[str, Field(min_length=1, max_length=128, pattern=r"\S")]
EventType = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$",
                                 description="the event a task listens to, e.g. USER_REGISTER or track.new_user")]


def time_text(value: datetime | None) -> str | None:
    return iso(value) if value else None


class CampaignStatus(StrEnum):
    DRAFT = "DRAFT"
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    ENDED = "ENDED"


class AudienceType(StrEnum):
    ALL = "ALL"
    LIST = "LIST"
    TAG = "TAG"


class TaskType(StrEnum):
    REGISTER = "REGISTER"
    INVITE = "INVITE"
    PURCHASE = "PURCHASE"
    SHARE = "SHARE"
    SIGN_IN = "SIGN_IN"
    CUSTOM = "CUSTOM"


class Period(StrEnum):
    ONCE = "ONCE"
    DAILY = "DAILY"
    WEEKLY = "WEEKLY"


class _Window(BaseModel):
    @field_validator("end_time", check_fields=False)
    @classmethod
    def _end_after_start(cls, end: datetime | None, info: ValidationInfo) -> datetime | None:
        start = info.data.get("start_time")
        if start and end and start >= end:
            raise ValueError("end_time must be after start_time")
        return end


# --- campaigns -------------------------------------------------------------------------------------------

class CampaignIn(_Window):
    name: Name
    campaign_type: Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Z][A-Z0-9_]*$")] = "PROMOTION"
    description: Annotated[str, Field(max_length=1024)] = ""
    start_time: UtcTime
    end_time: UtcTime
    status: CampaignStatus = CampaignStatus.DRAFT
    audience_id: Identifier | None = None


class Campaign(BaseModel):
    campaign_id: str
    name: str
    campaign_type: str
    description: str = ""
    start_time: str
    end_time: str
    status: CampaignStatus
    audience_id: str | None = None
    created_at: str
    updated_at: str


class CampaignPage(BaseModel):
    items: list[Campaign]
    next_token: str | None = None


# --- audiences -------------------------------------------------------------------------------------------

def _rule_fits(rule: rules.Rule) -> rules.Rule:
    rules.check_size(rule)
    return rule


class AudienceIn(BaseModel):
    name: Name
    audience_type: AudienceType
    description: Annotated[str, Field(max_length=1024)] = ""
    user_ids: Annotated[list[AnyId], Field(max_length=MAX_LIST_USERS)] | None = Field(
        default=None, validate_default=True)
    rule: Annotated[rules.Rule, AfterValidator(_rule_fits)] | None = Field(default=None, validate_default=True)

    @field_validator("user_ids", "rule")
    @classmethod
    def _fields_of_the_type(cls, value: Any, info: ValidationInfo) -> Any:
        wanted = {"user_ids": AudienceType.LIST, "rule": AudienceType.TAG}[info.field_name]
        kind = info.data.get("audience_type")
        if kind is wanted and not value:
            raise ValueError(f"a {wanted.value} audience needs {info.field_name}")
        if kind is not wanted and value:
            raise ValueError(f"only a {wanted.value} audience takes {info.field_name}")
        return value


class Audience(BaseModel):
    audience_id: str
    name: str
    audience_type: AudienceType
    description: str = ""
    user_ids: list[str] | None = None
    rule: dict[str, Any] | None = None
    created_at: str
    updated_at: str


class AudiencePage(BaseModel):
    items: list[Audience]
    next_token: str | None = None


class AudienceMatchIn(BaseModel):
    user_id: AnyId
    user_attributes: dict[str, Any] = Field(default_factory=dict)


class AudienceMatch(BaseModel):
    audience_id: str
    user_id: str
    matches: bool


# --- tasks -----------------------------------------------------------------------------------------------

class TaskCondition(BaseModel):
    """`count`: each event adds 1; `sum`: each event adds `event_data[field]` (an integer, e.g. cents)."""

    type: Literal["count", "sum"]
    field: Annotated[str | None, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                                       validate_default=True)] = None
    operator: Literal[">=", ">", "=="] = ">="
    value: Annotated[int, Field(ge=1, le=10**12)]

    @field_validator("field")
    @classmethod
    def _field_for_sum(cls, field: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("type") == "sum" and not field:
            raise ValueError("a sum condition needs the event_data field it adds up")
        return field

    @field_validator("value")
    @classmethod
    def _count_bound(cls, value: int, info: ValidationInfo) -> int:
        if info.data.get("type") == "count" and value > 10_000:
            raise ValueError("a count condition goes up to 10000 events")
        return value


class TaskIn(_Window):
    name: Name
    description: Annotated[str, Field(max_length=1024)] = ""
    task_type: TaskType
    event_type: EventType
    condition: TaskCondition
    period: Period = Period.ONCE
    max_count: Annotated[int, Field(ge=1, le=10_000, description="completions per user, all periods")] | None = None
    reward_id: Identifier
    start_time: UtcTime | None = None
    end_time: UtcTime | None = None

    @field_validator("max_count")
    @classmethod
    def _once_is_once(cls, max_count: int | None, info: ValidationInfo) -> int | None:
        if info.data.get("period") is Period.ONCE and max_count not in (None, 1):
            raise ValueError("a ONCE task completes once: max_count must be 1 or left out")
        return max_count


class Task(BaseModel):
    task_id: str
    name: str
    description: str = ""
    task_type: TaskType
    event_type: str
    condition: TaskCondition
    period: Period
    max_count: int | None = None
    reward_id: str
    start_time: str | None = None
    end_time: str | None = None
    campaign_ids: list[str] = Field(default_factory=list)
    created_at: str
    updated_at: str


class TaskPage(BaseModel):
    items: list[Task]
    next_token: str | None = None


class CampaignTaskIn(BaseModel):
    task_id: Identifier


class CampaignTask(BaseModel):
    campaign_id: str
    task_id: str
    created_at: str


# --- triggering, progress, completions ---------------------------------------------------------------------

class TriggerIn(BaseModel):
    tenant_id: str | None = Field(default=None, description="optional; must be the caller's own tenant")
    app_id: str | None = Field(default=None, description="optional; must be the caller's own app")
    event_type: EventType
    user_id: AnyId
    event_id: Identifier | None = Field(default=None, description="stable id of the fact; repeats are dropped")
    occurred_at: UtcTime | None = None
    event_data: dict[str, Any] = Field(default_factory=dict)
    user_attributes: dict[str, Any] = Field(default_factory=dict, description="what TAG audiences look at")

    @model_validator(mode="after")
    def _small(self) -> TriggerIn:
        if len(json.dumps(self.event_data, default=str)) + len(json.dumps(self.user_attributes, default=str)) \
                > MAX_EVENT_JSON:
            raise ValueError(f"event_data and user_attributes together exceed {MAX_EVENT_JSON} bytes")
        return self


class TriggerAccepted(BaseModel):
    event_id: str
    status: Literal["ACCEPTED"] = "ACCEPTED"


class CompletionLog(BaseModel):
    completion_id: str
    task_id: str
    campaign_id: str
    user_id: str
    period: str
    reward_id: str
    event_id: str
    completed_at: str


class CompletionLogPage(BaseModel):
    items: list[CompletionLog]
    next_token: str | None = None


class CompletionStats(BaseModel):
    task_id: str
    total_completions: int
    unique_users: int


class UserTask(BaseModel):
    task_id: str
    name: str
    task_type: TaskType
    event_type: str
    campaign_id: str
    period: Period
    period_key: str
    condition: TaskCondition
    progress: int
    completed: bool = Field(description="completed in the current period")
    completions: int
    max_count: int | None = None
    reward_id: str
    end_time: str | None = None


class UserTasks(BaseModel):
    user_id: str
    items: list[UserTask]


class TaskCompleted(BaseModel):
    """The detail of a `task.completed` event (docs/events.md), as the grant worker receives it."""

    event_id: str
    tenant_id: str
    app_id: str
    occurred_at: str
    task_id: str
    campaign_id: str
    user_id: str
    period: str
    completion_id: str


class BusEvent(BaseModel):
    """The part of an EventBridge event the task engine reads (moto's deliveries omit `account`, so
    Powertools' full EventBridgeModel is stricter than we need)."""

    detail_type: str = Field(alias="detail-type")
    source: str
    detail: dict[str, Any]


# --- batch grants (the seed's 批量发放) ---------------------------------------------------------------------

MAX_BATCH_USERS = 100_000


class GrantBatchStatus(StrEnum):
    QUEUING = "QUEUING"
    PROCESSING = "PROCESSING"
    DONE = "DONE"


class GrantBatchIn(BaseModel):
    user_ids: Annotated[list[Identifier], Field(min_length=1, max_length=MAX_BATCH_USERS)] | None = Field(
        default=None, description="the users, each granted at most once (repeats count once); or audience_id")
    audience_id: Identifier | None = Field(default=None, description="a LIST audience whose users are granted")
    reason: str = Field(min_length=1, max_length=500, description="why: kept on the batch for the record")
    idempotency_key: Identifier | None = Field(
        default=None, description="yours: a repeat with the same key and users answers the same batch")

    @model_validator(mode="after")
    def _one_source(self) -> GrantBatchIn:
        if (self.user_ids is None) == (self.audience_id is None):
            raise ValueError("give either user_ids or audience_id")
        return self


class GrantBatch(BaseModel):
    batch_id: str
    reward_id: str
    reason: str
    status: GrantBatchStatus
    total: int = Field(description="distinct users")
    granted: int
    failed: int
    failed_reasons: dict[str, int] = Field(description="failed users by reason (each grant keeps its own reason)")
    audience_id: str | None = None
    created_by: str
    created_at: str
    updated_at: str
