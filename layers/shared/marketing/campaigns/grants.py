"""The grant pipeline (the seed's validator → reserve → generator → distributor), on the rewards capability.

One `task.completed` becomes one grant, whose id is the completion id: every step is idempotent on it, so a
repeated message resumes where the last attempt stopped. The grant moves PENDING → RESERVED → GENERATED →
DISTRIBUTED, or to FAILED with a reason; a failed grant gives back its reservation, then (once FAILED) the
frequency slots it took. Distribution failures are retried (the message comes back, with backoff) until
`GRANT_MAX_ATTEMPTS`, then the grant FAILS.
"""

from __future__ import annotations

import os
import time
from datetime import datetime
from functools import cache
from typing import Any

from marketing.campaigns import channels, dal
from marketing.campaigns.models import Period
from marketing.campaigns.periods import parse_time, period_key
from marketing.core import aws, events
from marketing.core.clock import now
from marketing.core.identity import Caller, Role
from marketing.core.observability import logger, metrics
from marketing.core.outbound import UnsafeDestination
from marketing.rewards import api as rewards
from marketing.rewards.errors import OutOfStock, PerUserLimitReached, ReservationClosed, RewardNotFound

FINAL = {"DISTRIBUTED", "FAILED", "ROLLED_BACK", "USED", "EXPIRED"}
HOLDS_RESERVATION = {"RESERVED", "GENERATED"}
RESERVATION_MINUTES = 60  # longer than every retry of a slow webhook together


class RetryLater(Exception):
    """Distribution failed but attempts remain: the message is retried."""


def max_attempts() -> int:
    return int(os.environ.get("GRANT_MAX_ATTEMPTS", "4"))


def process(detail: dict[str, Any], attempt: int) -> dict:
    """Run (or resume) the pipeline for one `task.completed`; answers the grant. It acts in the tenant and app
    the event names: the completion, the reward, its stock and the grant are all that app's."""
    caller = pipeline_caller(detail["tenant_id"], detail["app_id"])
    log = dal.get_log(caller.scope, detail["task_id"], detail["completion_id"])
    if log is None:
        raise LookupError(f"completion {detail['completion_id']} is unknown")  # never: the log is written first
    return grant_for(caller, log, attempt)


def pipeline_caller(tenant_id: str, app_id: str) -> Caller:
    return Caller(sub="grant-pipeline", tenant_id=tenant_id, app_id=app_id, roles=frozenset({Role.SERVICE}))


_UNREAD = object()


def grant_for(caller: Caller, log: dict, attempt: int, *, reward: Any = _UNREAD,
              grant_batch_id: str | None = None) -> dict:
    """Run (or resume) the pipeline for one grant whose id is `log["completion_id"]`: a task completion's log,
    or a batch grant's stand-in for one (marketing.campaigns.batches). `reward` spares a read when the caller
    holds the reward's settings already (None: unknown or deleted)."""
    grant = rewards.create_grant(caller, grant_id=log["completion_id"], reward_id=log["reward_id"],
                                 user_id=log["user_id"], status="PENDING", task_id=log["task_id"],
                                 campaign_id=log["campaign_id"], reservation_id=log["completion_id"],
                                 grant_batch_id=grant_batch_id)
    return _Pipeline(caller, log, attempt, grant["created_at"], reward).run(grant)


class _Pipeline:
    def __init__(self, caller: Caller, log: dict, attempt: int, granted_at: str, reward: Any = _UNREAD):
        self.caller, self.scope, self.log, self.attempt = caller, caller.scope, log, attempt
        self.granted_at = granted_at
        self.grant_id = log["completion_id"]
        self.reward: dict | None = None
        self._known_reward = reward
        self._issued_once: dict | None = None

    def _settings(self) -> dict | None:
        if self._known_reward is _UNREAD:
            self._known_reward = rewards.reward_settings(self.caller, self.log["reward_id"])
        return self._known_reward

    def run(self, grant: dict) -> dict:
        if grant["status"] in FINAL:
            if grant["status"] == "FAILED":  # a crash between FAILED and giving the slots back: finish it
                self.reward = self._settings()
                self._release_frequencies()
            return grant
        self.reward = self._settings()
        if self.reward is None:
            return self._fail(grant, "the reward is unknown or was deleted")
        if grant["status"] == "PENDING":
            grant = self._reserve(grant)
        if grant["status"] == "RESERVED":
            grant = self._generate(grant)
        if grant["status"] == "GENERATED":
            grant = self._distribute(grant)
        return grant

    # --- validator and reservation ---
    def _frequencies(self) -> list[tuple[str, int]]:
        """(window, limit) of the `frequency` validators, the window taken from the time of the event that
        completed the task (as the task counted it; older logs: the completion's). Rules of the same period share
        one slot (its key is the window), so the smallest limit of a period holds."""
        moment = parse_time(self.log.get("occurred_at") or self.log["completed_at"])
        windows = {"DAY": period_key(Period.DAILY, moment), "WEEK": period_key(Period.WEEKLY, moment),
                   "MONTH": moment.strftime("M%Y-%m"), "TOTAL": "ALL"}
        limits: dict[str, int] = {}
        for rule in self.reward.get("validators", []):
            if rule["type"] == "frequency":
                window = windows[rule.get("period", "TOTAL")]
                limits[window] = min(limits.get(window, rule["max_per_user"]), rule["max_per_user"])
        return list(limits.items())

    def _release_frequencies(self) -> None:
        """Only once the grant is FAILED; DynamoDB gives back just the slots it holds, once."""
        for window, _ in self._frequencies() if self.reward is not None else []:
            dal.release_frequency(self.scope, self.log["user_id"], self.log["reward_id"], window, self.grant_id)

    def _reserve(self, grant: dict) -> dict:
        refusal = refusal_of(self.reward, self.log["user_id"])
        if refusal:
            return self._fail(grant, refusal)
        for window, limit in self._frequencies():
            try:
                taken = dal.take_frequency(self.scope, self.log["user_id"], self.log["reward_id"], window,
                                           self.grant_id, limit)
            except dal.ConditionFailed:  # a racing delivery moved the grant on: go on from where it is
                return rewards.get_grant(self.caller, self.grant_id)
            if not taken:
                return self._fail(grant, f"the user reached the reward's frequency limit of {limit}")
        try:
            rewards.reserve(self.caller, reward_id=self.log["reward_id"], user_id=self.log["user_id"], quantity=1,
                            expire_minutes=RESERVATION_MINUTES, reservation_id=self.grant_id)
        except OutOfStock:
            return self._fail(grant, "out of stock")
        except PerUserLimitReached:
            return self._fail(grant, "the user reached the reward's per-user limit")
        except RewardNotFound:
            return self._fail(grant, "the reward is unknown or was deleted")
        return rewards.transition_grant(self.caller, self.grant_id, to="RESERVED", expected={"PENDING"})

    # --- generator ---
    def _issued(self) -> dict:
        """What the user gets, computed once per attempt (generation and the payload both need it)."""
        if self._issued_once is None:
            self._issued_once = self._generate_issue()
        return self._issued_once

    def _generate_issue(self) -> dict:
        """The reward's terms and validity, counted from the grant's creation so every attempt agrees; a redeem
        code is issued once per grant (a repeat returns the same code), valid as the grant is."""
        reward = self.reward
        valid_from, valid_until = rewards.validity(reward, parse_time(self.granted_at))
        issued = {**rewards.issued_content(reward), "valid_from": valid_from, "valid_until": valid_until}
        if issues_codes(reward):
            code = rewards.issue_code(self.caller, reward_id=reward["reward_id"], user_id=self.log["user_id"],
                                      campaign_id=self.log["campaign_id"], grant_id=self.grant_id,
                                      valid_until=valid_until)
            issued.update(code, valid_until=code["valid_until"] or valid_until)  # a batch code keeps its expiry
        return issued

    def _generate(self, grant: dict) -> dict:
        started = time.perf_counter()
        issued = self._issued()
        details = {k: v for k, v in issued.items() if k not in ("code", "valid_from", "valid_until")}
        if issued.get("code"):
            details["code_suffix"] = issued["code"][-4:]  # the full code stays with the user and the channel
        grant = rewards.transition_grant(self.caller, self.grant_id, to="GENERATED", expected={"RESERVED"},
                                         details=details, validity=(issued["valid_from"], issued["valid_until"]))
        metrics.add_metric(name="RewardGenerationDuration", unit="Milliseconds",
                           value=(time.perf_counter() - started) * 1000)
        return grant

    # --- distributor ---
    def _payload(self) -> dict:
        reward = self.reward
        return {"grant_id": self.grant_id, "tenant_id": self.caller.tenant_id, "app_id": self.caller.app_id,
                "user_id": self.log["user_id"],
                "reward_id": reward["reward_id"], "reward_name": reward["name"], "reward_type": reward["reward_type"],
                "task_id": self.log["task_id"], "campaign_id": self.log["campaign_id"], **self._issued()}

    def _send(self) -> None:
        config = self.reward.get("distributor") or {"type": "auto"}
        contact = self.log.get("contact") or {}
        if config["type"] == "webhook":
            name = config.get("secret_name")
            secret = name and channels.tenant_secret(self.caller.tenant_id, self.caller.app_id, name)
            channels.webhook(str(config["url"]), secret, self._payload())
        elif config["type"] == "email":
            if not contact.get("email"):
                raise _NoRecipient("no e-mail address is known for the user")
            channels.email(contact["email"], config["template"], self._payload())
        elif config["type"] == "sms":
            if not contact.get("phone"):
                raise _NoRecipient("no phone number is known for the user")
            channels.sms(contact["phone"], config["template"], self._payload())
        # auto: the grant itself is the user's reward

    def _distribute(self, grant: dict) -> dict:
        started = time.perf_counter()
        try:
            self._send()
        except _NoRecipient as exc:
            return self._fail(grant, str(exc))
        except UnsafeDestination as exc:  # no retry makes it safe
            return self._fail(grant, f"webhook refused: {exc}")
        except channels.DeliveryFailed as exc:
            if self.attempt < max_attempts():
                logger.warning("distribution failed; retrying", extra={"grant_id": self.grant_id,
                                                                       "attempt": self.attempt, "error": str(exc)})
                raise RetryLater(str(exc)) from exc
            return self._fail(grant, f"distribution failed after {self.attempt} attempts: {exc}")
        try:
            rewards.confirm(self.caller, self.grant_id)
        except ReservationClosed:
            return self._fail(grant, "the reservation expired before the reward was delivered")
        grant = rewards.transition_grant(self.caller, self.grant_id, to="DISTRIBUTED",  # details are replaced
                                         details={**(grant.get("details") or {}), "attempts": self.attempt},
                                         outbox=[self._granted_event()])
        metrics.add_metric(name="RewardDistributionDuration", unit="Milliseconds",
                           value=(time.perf_counter() - started) * 1000)
        metrics.add_metric(name="RewardsDistributed", unit="Count", value=1)
        return grant

    def _granted_event(self) -> dict:
        """`reward.granted`, committed with the grant's move to DISTRIBUTED."""
        return events.outbox(self.caller, source="campaigns", detail_type="reward.granted", event_id=self.grant_id,
                             detail=granted_detail({**self.log, "grant_id": self.grant_id, "status": "DISTRIBUTED"}))

    def _fail(self, grant: dict, reason: str) -> dict:
        """FAILED with a reason; a held reservation goes back to stock first (cancel is safe to repeat), the
        frequency slots after: a delivery that finds the grant distributed by a racing one fails here and
        gives back nothing."""
        if grant["status"] in HOLDS_RESERVATION:
            rewards.cancel(self.caller, self.grant_id)
        grant = rewards.transition_grant(self.caller, self.grant_id, to="FAILED", reason=reason)
        self._release_frequencies()
        metrics.add_metric(name="GrantsFailed", unit="Count", value=1)
        logger.info("grant failed", extra={"grant_id": self.grant_id, "reason": reason})
        return grant


def refusal_of(reward: dict, user: str) -> str | None:
    """The reward's time window and user validators; frequency, stock and the per-user limit are exact
    DynamoDB conditions (the frequency slot, then the reservation)."""
    moment = now()
    if not _inside(moment, reward.get("valid_from"), reward.get("valid_until")):
        return "the reward is outside its validity"
    for rule in reward.get("validators", []):
        if rule["type"] == "time_window" and not _inside(moment, rule.get("start"), rule.get("end")):
            return "outside the reward's time window"
        if rule["type"] == "user" and (user in rule.get("deny", []) or
                                       (rule.get("allow") and user not in rule["allow"])):
            return "the user may not receive this reward"
    return None


def issues_codes(reward: dict) -> bool:
    return reward["reward_type"] == "REDEEM_CODE" or reward.get("generator", {}).get("type") == "redeem_code"


def granted_detail(grant: dict) -> dict:
    return {"grant_id": grant["grant_id"], "reward_id": grant["reward_id"], "task_id": grant.get("task_id"),
            "campaign_id": grant.get("campaign_id"), "user_id": grant["user_id"], "status": grant["status"]}


def publish_granted(caller: Caller, grants: list[dict]) -> None:
    """`reward.granted` for each grant a batch issued in bulk (ten events a request). A bulk issue commits no
    outbox item (its transactions are full of grants): a redelivered chunk publishes again instead."""
    events.publish_many(caller, source="campaigns", detail_type="reward.granted",
                        entries=[(g["grant_id"], granted_detail(g)) for g in grants])


class _NoRecipient(Exception):
    """Retrying cannot help: the event never told us where to send the reward."""


def _inside(moment: datetime, start: str | None, end: str | None) -> bool:
    return (not start or moment >= parse_time(start)) and (not end or moment <= parse_time(end))


BACKOFF_SECONDS = 10  # doubled per attempt, at most 15 minutes


@cache
def _sqs():
    return aws.client("sqs")


def back_off(receipt_handle: str, attempt: int, queue_variable: str = "GRANT_QUEUE_URL") -> None:
    """Push a grant message's next delivery back (10 s, 20 s, 40 s, ...): a struggling webhook gets room."""
    try:
        _sqs().change_message_visibility(QueueUrl=os.environ[queue_variable], ReceiptHandle=receipt_handle,
                                         VisibilityTimeout=min(900, BACKOFF_SECONDS * 2 ** (attempt - 1)))
    except Exception:  # the retry still happens, after the queue's visibility timeout
        logger.exception("could not set the backoff")
