"""Settings read from the environment the template gives every function."""

from __future__ import annotations

import os


def stage() -> str:
    return os.environ.get("STAGE", "dev")


def table_name() -> str:
    return os.environ["TABLE_NAME"]


def idempotency_table_name() -> str:
    return os.environ["IDEMPOTENCY_TABLE_NAME"]


def event_bus_name() -> str:
    return os.environ["EVENT_BUS_NAME"]


def share_base_url() -> str:
    return os.environ.get("SHARE_BASE_URL", "https://example.com/s")
