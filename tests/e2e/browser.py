"""Headless Chromium (Debian's, installed by `make test`) driven by Playwright, for the console's tests.

Never `playwright install`: its browser download cannot work here. The flags keep Chromium off the network
(its background connections are refused on a closed network) and out of the sandbox (we run as root)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from local_stack.template import ROOT

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = ROOT / "test-results" / "console"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@contextmanager
def chromium() -> Iterator:
    """Debian's Chromium under Playwright; `launch` gives it a fresh temporary user-data dir of its own."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Console:
    """One browser tab on the console, failing its test on any console error or uncaught exception except
    the API refusals the test expects (Chromium logs every 4xx answer as an error)."""

    page: object
    base: str
    errors: list[str] = field(default_factory=list)
    expected: list[tuple[int, str]] = field(default_factory=list)

    def __post_init__(self):
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))

    def _on_console(self, message) -> None:
        if message.type != "error":
            return
        text, url = message.text, message.location.get("url", "")
        status = re.search(r"status of (\d{3})", text)
        for i, (code, part) in enumerate(self.expected):
            if status and int(status.group(1)) == code and part in url:
                del self.expected[i]
                return
        self.errors.append(f"{text} ({url})")

    def expect_refusal(self, status: int, url_part: str) -> None:
        """The next console error for an answer `status` from a URL containing `url_part` is expected."""
        self.expected.append((status, url_part))

    def open(self, hash_: str = "") -> None:
        self.page.goto(f"{self.base}/console/{hash_}")

    def field(self, label: str):
        """An input by its label. (A select's label text holds its options for Playwright's get_by_label, so
        selects are found by role: `choose`.)"""
        return self.page.get_by_label(label, exact=True)

    def choose(self, label: str, *, value: str | None = None, text: str | None = None) -> None:
        select = self.page.get_by_role("combobox", name=label, exact=True)
        select.select_option(value=value) if value is not None else select.select_option(label=text)

    def sign_in(self, tenant: str, *, role: str = "admin", sub: str = "ops", app: str = "app1") -> None:
        self.open()
        self.field("Tenant").fill(tenant)
        self.field("App").fill(app)
        self.choose("Role", value=role)
        self.field("User (sub)").fill(sub)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.locator("header .who").wait_for()

    def nav(self, name: str) -> None:
        self.page.get_by_role("navigation", name="Sections").get_by_role("link", name=name).click()
        self.page.get_by_role("heading", level=1).first.wait_for()

    def confirm(self, button: str) -> None:
        dialog = self.page.get_by_role("dialog")
        dialog.get_by_role("button", name=button).click()
        dialog.wait_for(state="detached")

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def check(self, server_log: list[str]) -> None:
        assert self.errors == [], "browser console errors:\n" + "\n".join(self.errors) + \
            "\n\nthe local stack's last lines:\n" + "".join(server_log)
        assert self.expected == [], f"expected API refusals that never happened: {self.expected}"
