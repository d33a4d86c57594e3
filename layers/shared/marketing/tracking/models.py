"""API models of the tracking capability."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from marketing.core.types import AnyId

VISIT, NEW_USER = 1, 2
BUILT_IN_TRACK_TYPES = {VISIT: "visit", NEW_USER: "new_user"}

TrackType = Annotated[int, Field(ge=1, le=999, description="1 = visit, 2 = new user, others as configured")]
Promcode = Annotated[str, Field(min_length=8, max_length=32, pattern=r"^[A-Za-z0-9]+$")]


class Promo(BaseModel):
    id: str
    user_id: str
    track_type: int
    promcode: str
    share_url: str
    created_at: str


class PromoOwner(BaseModel):
    promcode: str
    user_id: str
    track_type: int
    share_url: str


class TrackIn(BaseModel):
    user_id: AnyId
    track_type: TrackType
    referrer: AnyId | None = Field(default=None, description="the referring user; or give promcode")
    promcode: Promcode | None = Field(default=None, description="resolved to its owner, the referrer")


class Track(BaseModel):
    id: str
    user_id: str
    track_type: int
    referrer: str
    promcode: str | None = None
    created_at: str


class TrackPage(BaseModel):
    items: list[Track]
    next_token: str | None = None


class TrackSummary(BaseModel):
    referrer: str
    counts: dict[str, int] = Field(description="records per track type, keyed by the type's number")


class TrackTypeIn(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]
    once_per_user: bool = Field(default=False, description="recorded at most once per user, first wins")


class TrackTypeConfig(TrackTypeIn):
    track_type: int
