"""Use cases of promo-code tracking. Every function takes the verified caller first."""

from __future__ import annotations

import io
from functools import lru_cache

from marketing.core import config, events
from marketing.core.clock import now_iso
from marketing.core.errors import Conflict, InvalidInput, NotFound
from marketing.core.identity import Caller, Role
from marketing.core.ids import new_id, random_code
from marketing.core.observability import metrics
from marketing.ratelimit import service as ratelimit
from marketing.tracking import dal
from marketing.tracking.models import (
    BUILT_IN_TRACK_TYPES,
    NEW_USER,
    Promo,
    PromoOwner,
    Track,
    TrackIn,
    TrackPage,
    TrackSummary,
    TrackTypeConfig,
    TrackTypeIn,
)

PROMCODE_LENGTH = 8
_CODE_ATTEMPTS = 8


def share_url(caller: Caller, promcode: str) -> str:
    """Codes are unique within an app of a tenant: the link names both, so its landing page resolves it."""
    return f"{config.share_base_url().rstrip('/')}/{caller.tenant_id}/{caller.app_id}/{promcode}"


def _track_type(caller: Caller, track_type: int) -> TrackTypeConfig:
    """Built-in types 1 (visit) and 2 (new user, once per user); others only if the app configured them."""
    if track_type in BUILT_IN_TRACK_TYPES:
        return TrackTypeConfig(track_type=track_type, name=BUILT_IN_TRACK_TYPES[track_type],
                               once_per_user=track_type == NEW_USER)
    configured = dal.get_track_type(caller.scope, track_type)
    if configured is None:
        raise InvalidInput("track_type", f"track type {track_type} is not configured for this app")
    return TrackTypeConfig(**configured)


def get_or_create_promo(caller: Caller, user_id: str, track_type: int) -> Promo:
    """The user's code for this track type, created on the first call. Concurrent first calls race on a
    conditional write; the losers read the winner's code."""
    caller.require_user_access(user_id)
    existing = dal.get_promo(caller.scope, user_id, track_type)
    if existing:
        return Promo(**existing, share_url=share_url(caller, existing["promcode"]))
    _track_type(caller, track_type)
    for _ in range(_CODE_ATTEMPTS):
        promo = {"id": new_id(), "user_id": user_id, "track_type": track_type,
                 "promcode": random_code(PROMCODE_LENGTH), "created_at": now_iso()}
        try:
            dal.create_promo(caller.scope, promo)
            metrics.add_metric(name="PromoCodesCreated", unit="Count", value=1)
            return Promo(**promo, share_url=share_url(caller, promo["promcode"]))
        except dal.PromoExists:
            winner = dal.get_promo(caller.scope, user_id, track_type, consistent=True)
            return Promo(**winner, share_url=share_url(caller, winner["promcode"]))
        except dal.CodeTaken:
            continue
    raise RuntimeError("could not draw a free promo code")  # 31^8 codes: practically unreachable


def promo_owner(caller: Caller, promcode: str) -> PromoOwner:
    owner = dal.get_code_owner(caller.scope, promcode.upper())
    if owner is None:
        raise NotFound(f"promo code {promcode} is unknown")
    return PromoOwner(promcode=promcode.upper(), share_url=share_url(caller, promcode.upper()), **owner)


def promo_qr_svg(caller: Caller, promcode: str) -> str:
    """A QR code of the share URL (the seed's `wxbcode`), as SVG for posters and sharing cards."""
    return qr_svg(promo_owner(caller, promcode).share_url)


@lru_cache(maxsize=256)
def qr_svg(url: str) -> str:
    """Cached: drawing one (choosing its mask) takes tens of ms, and an affiliate's profile shows it on
    every read."""
    import segno  # imported here: ~40 ms that cold starts of functions which never draw a QR code skip

    out = io.BytesIO()
    segno.make(url, error="m").save(out, kind="svg", scale=4, border=2, xmldecl=False)
    return out.getvalue().decode()


def _referrer_of(caller: Caller, body: TrackIn) -> tuple[str, str | None]:
    if body.promcode is None:
        if body.referrer is None:
            raise InvalidInput("referrer", "give the referrer or the promcode it arrived through")
        return body.referrer, None
    try:
        owner = promo_owner(caller, body.promcode)
    except NotFound as exc:
        raise InvalidInput("promcode", f"promo code {body.promcode} is unknown") from exc
    if body.referrer is not None and body.referrer != owner.user_id:
        raise InvalidInput("referrer", "the referrer is not the owner of the promcode")
    return owner.user_id, owner.promcode


def record_arrival(caller: Caller, body: TrackIn) -> tuple[Track, bool]:
    """Record that `user_id` arrived through a referrer. Answers (record, created). A once-per-user type
    (new user) keeps its first attribution: a repeat returns the original record."""
    caller.require_user_access(body.user_id)
    ratelimit.charge(caller, ratelimit.TRACKS)
    kind = _track_type(caller, body.track_type)
    referrer, promcode = _referrer_of(caller, body)
    if referrer == body.user_id:
        raise InvalidInput("referrer", "a user cannot refer themselves")
    record = {"id": new_id(), "user_id": body.user_id, "track_type": body.track_type, "referrer": referrer,
              "promcode": promcode, "created_at": now_iso()}
    track = Track(**record)
    event = events.outbox(caller, source="tracking", detail_type=f"track.{kind.name}", event_id=track.id,
                          occurred_at=track.created_at, detail=track.model_dump())
    try:
        dal.put_arrival(caller.scope, record, once=kind.once_per_user, outbox=[event])
        metrics.add_metric(name="TracksRecorded", unit="Count", value=1)
    except dal.AlreadyRecorded:  # the first attribution committed its event with itself
        return Track(**dal.get_once_arrival(caller.scope, body.user_id, body.track_type)), False
    return track, True


def list_tracks(caller: Caller, referrer: str, track_type: int | None, limit: int,
                next_token: str | None) -> TrackPage:
    caller.require_user_access(referrer)
    items, token = dal.list_arrivals(caller.scope, referrer, track_type, limit, next_token)
    return TrackPage(items=[Track(**i) for i in items], next_token=token)


def summary(caller: Caller, referrer: str) -> TrackSummary:
    caller.require_user_access(referrer)
    return TrackSummary(referrer=referrer, counts=dal.get_counts(caller.scope, referrer))


def configure_track_type(caller: Caller, track_type: int, body: TrackTypeIn) -> TrackTypeConfig:
    caller.require(Role.ADMIN)
    if track_type in BUILT_IN_TRACK_TYPES:
        raise Conflict(f"track type {track_type} is built in")
    config_ = TrackTypeConfig(track_type=track_type, **body.model_dump())
    try:
        dal.create_track_type(caller.scope, config_.model_dump())
    except dal.TrackTypeExists as exc:
        raise Conflict(f"track type {track_type} is configured already") from exc
    return config_


def track_types(caller: Caller) -> list[TrackTypeConfig]:
    built_in = [_track_type(caller, n) for n in BUILT_IN_TRACK_TYPES]
    return built_in + [TrackTypeConfig(**c) for c in dal.list_track_types(caller.scope)]
