"""Which campaign, if any, makes a task live for a user at a moment: the campaign is ACTIVE, the moment is
inside the campaign's and the task's windows, and the campaign's audience takes the user."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from marketing.campaigns import rules
from marketing.campaigns.models import AudienceType, CampaignStatus
from marketing.campaigns.periods import parse_time


def in_window(item: dict[str, Any], at: datetime) -> bool:
    start, end = item.get("start_time"), item.get("end_time")
    return (not start or parse_time(start) <= at) and (not end or at <= parse_time(end))


def audience_takes(audience: dict[str, Any] | None, user_id: str, attributes: dict[str, Any] | None) -> bool:
    """`attributes=None` means unknown (the user's task view): a TAG audience is then given the benefit of
    the doubt, and decided when an event carries the attributes."""
    if audience is None:
        return False
    kind = audience["audience_type"]
    if kind == AudienceType.ALL:
        return True
    if kind == AudienceType.LIST:
        return user_id in (audience.get("user_ids") or [])
    if attributes is None:
        return True
    return rules.matches(rules.parse(audience["rule_json"]), attributes)  # parsed once per rule version


def live_campaign(task: dict[str, Any], campaigns: dict[str, dict], audiences: dict[str, dict], user_id: str,
                  attributes: dict[str, Any] | None, at: datetime) -> dict | None:
    """The first (by id) of the task's campaigns under which the task is live for this user, else None."""
    if not in_window(task, at):
        return None
    for campaign_id in task.get("campaign_ids", []):
        campaign = campaigns.get(campaign_id)
        if not campaign or campaign["status"] != CampaignStatus.ACTIVE or not in_window(campaign, at):
            continue
        audience_id = campaign.get("audience_id")
        if audience_id is None or audience_takes(audiences.get(audience_id), user_id, attributes):
            return campaign
    return None


def audience_ids_of(campaigns: dict[str, dict]) -> set[str]:
    return {c["audience_id"] for c in campaigns.values()
            if c.get("audience_id") and c["status"] == CampaignStatus.ACTIVE}
