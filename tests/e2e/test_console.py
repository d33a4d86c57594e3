"""The operator console in a real browser (headless Chromium) against the local stack: sign-in, the forms,
a 3,000-code batch to 100 % and its export, statistics, affiliates, what a `user` sees, a phone's width and
the keyboard, and the OpenID Connect sign-in with PKCE. Each page's screenshot lands in test-results/console/;
any browser console error fails the test."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import re
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from playwright.sync_api import expect

from tests.e2e.browser import DESKTOP, PHONE, Console, chromium

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


@pytest.fixture
def console(browser, local_stack, request):
    size = PHONE if request.node.get_closest_marker("phone") else DESKTOP
    context = browser.new_context(viewport=size, timezone_id="UTC", accept_downloads=True, locale="en-GB")
    tab = Console(context.new_page(), local_stack.api_url)
    yield tab
    context.close()
    tab.check(server_log=local_stack.log[-40:])


def local(moment: datetime) -> str:
    """A datetime-local input's value (the browser runs in UTC)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


def eventually(check, timeout: float = 60, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(every)


def seed_reward(api, name: str = "Gift code", stock: int = 100_000) -> dict:
    answer = api.post("/v1/rewards", {"name": name, "reward_type": "REDEEM_CODE", "content": {"description": name},
                                      "total_stock": stock})
    assert answer.status_code == 201, answer.text
    return answer.json()


def seed_campaign(api, name: str = "Spring") -> dict:
    now = datetime.now(UTC)
    answer = api.post("/v1/campaigns", {"name": name, "campaign_type": "PROMOTION", "status": "ACTIVE",
                                        "start_time": (now - timedelta(hours=1)).isoformat(),
                                        "end_time": (now + timedelta(days=30)).isoformat()})
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_an_admin_signs_in_and_creates_a_reward_and_a_campaign_whose_task_completes(console, tenant, local_stack):
    page = console.page
    console.sign_in(tenant, sub="ops")
    who = page.locator("header .who")
    for shown in ("ops", tenant, "app1", "admin"):
        assert shown in who.inner_text()

    # A coupon through the typed form: the content fields follow the chosen type.
    console.nav("Rewards")
    page.get_by_role("button", name="New reward").click()
    console.field("Name").fill("Welcome coupon")
    console.choose("Type", value="POINTS")
    assert console.field("Points").is_visible()
    console.choose("Type", value="COUPON")
    console.field("Discount").fill("500")
    console.field("Stock").fill("100")
    console.field("Per user").fill("1")
    page.get_by_role("button", name="Create reward").click()
    page.get_by_role("heading", name="Welcome coupon").wait_for()
    gauge = page.locator(".stock-big .gauge-text")
    expect(gauge).to_have_text("100 available, 0 reserved, 0 issued of 100")
    console.field("Top up by").fill("50")
    page.get_by_role("button", name="Change stock").click()
    expect(gauge).to_have_text("150 available, 0 reserved, 0 issued of 150")
    console.screenshot("reward")
    console.nav("Rewards")
    page.get_by_role("link", name="Welcome coupon").wait_for()
    console.screenshot("rewards")

    # A campaign: the API's refusal appears beside the field it names, then the fixed form creates it.
    console.nav("Campaigns")
    page.get_by_role("button", name="New campaign").click()
    now = datetime.now(UTC)
    console.field("Name").fill("Welcome")
    console.field("Starts").fill(local(now - timedelta(hours=1)))
    console.field("Ends").fill(local(now - timedelta(hours=2)))
    console.expect_refusal(422, "/v1/campaigns")
    page.get_by_role("button", name="Create campaign").click()
    ends = page.locator(".field", has=console.field("Ends"))
    ends.locator(".field-error").filter(has_text="end_time must be after start_time").wait_for()
    assert console.field("Ends").get_attribute("aria-invalid") == "true"
    console.screenshot("campaign-error")
    console.field("Ends").fill(local(now + timedelta(days=30)))
    page.get_by_role("button", name="Create campaign").click()
    page.get_by_role("heading", name="Welcome DRAFT").wait_for()
    page.get_by_role("button", name="Activate").click()
    page.get_by_role("heading", name="Welcome ACTIVE").wait_for()

    # A task created in the campaign, then an event that completes it: the statistics count it.
    console.field("Name").fill("Register")
    console.field("Event").fill("USER_REGISTER")
    console.choose("Reward", text="Welcome coupon")
    page.get_by_role("button", name="Create and link task").click()
    row = page.get_by_role("row", name=re.compile("Register"))
    row.wait_for()
    assert row.get_by_role("cell").nth(5).inner_text() == "0"
    trigger = local_stack.api(tenant).post("/v1/tasks/trigger", {"event_type": "USER_REGISTER", "user_id": "bob",
                                                                 "event_data": {}})
    assert trigger.status_code == 202, trigger.text

    def completed():
        page.reload()
        assert page.get_by_role("row", name=re.compile("Register")).get_by_role("cell").nth(5).inner_text() == "1"

    eventually(completed, timeout=60, every=1)
    console.screenshot("campaign")
    page.get_by_role("button", name="Pause").click()
    page.get_by_role("heading", name="Welcome PAUSED").wait_for()
    console.nav("Campaigns")
    page.get_by_role("row", name=re.compile("Welcome")).get_by_role("button", name="Activate").wait_for()
    console.screenshot("campaigns")


def test_a_batch_of_3000_codes_reaches_100_percent_exports_downloads_and_revokes_a_code(console, tenant, local_stack):
    api = local_stack.api(tenant)
    reward, campaign = seed_reward(api), seed_campaign(api)
    page = console.page
    console.sign_in(tenant)
    console.nav("Redeem codes")
    console.choose("Campaign", text=campaign["name"])
    console.choose("Reward", text=reward["name"])
    console.field("How many").fill("3000")
    console.field("Prefix").fill("GIFT")
    page.get_by_role("button", name="Generate").click()
    console.confirm("Generate")

    # The progress bar follows the worker to 100 %.
    progress = page.get_by_role("progressbar", name="Generation progress")
    progress.wait_for()
    assert progress.get_attribute("max") == "3000"
    page.get_by_text("3,000 of 3,000 (100 %)").wait_for(timeout=180_000)
    page.get_by_role("heading", name="Generated").wait_for()
    assert page.evaluate("document.querySelector('#batch-progress').value") == 3000
    console.screenshot("codes-batch")

    # Export all as CSV: the file downloads, with every code once.
    with page.expect_download(timeout=60_000) as download:
        page.get_by_role("button", name="Export").click()
        console.confirm("Export")
    rows = list(csv.DictReader(io.StringIO(download.value.path().read_text(encoding="utf-8"))))
    codes = [r["code"] for r in rows]
    assert len(codes) == 3000 == len(set(codes))
    assert all(c.startswith("GIFT-") for c in codes)
    page.get_by_role("link", name="Download the file").wait_for()

    # The listing is masked; revoking one code shows it under the REVOKED filter.
    listing = page.get_by_role("region", name="Codes of the batch, masked")
    assert re.fullmatch(r"\*+[0-9A-Z]{4}", listing.locator("tbody tr td code").first.inner_text())
    console.field("Full code").fill(codes[0])
    page.get_by_role("button", name="Revoke", exact=True).click()
    console.confirm("Revoke code")
    console.choose("Status", value="REVOKED")
    revoked = listing.locator("tbody tr")
    expect(revoked).to_have_count(1)
    assert revoked.first.locator("code").inner_text().endswith(codes[0][-4:])
    console.screenshot("codes")


def test_statistics_of_a_topic_show_the_chart_the_totals_and_the_records(console, tenant, local_stack):
    events = [{"event_id": f"v-{i}", "event_type": "activity.visit", "topic_type": "activity", "topic_id": "spring",
               "wu_id": user, "channel_type": "wx"} for i, user in enumerate(["u1", "u2", "u1"])]
    api = local_stack.api(tenant)
    posted = api.post("/v1/events", {"events": events})
    assert posted.status_code == 202 and posted.json()["accepted"] == 3, posted.text

    def counted_by_the_api():  # the console then reads settled numbers and records
        assert api.get("/v1/stats/activity/spring").json()["totals"]["visits"] == 3

    eventually(counted_by_the_api)
    page = console.page
    console.sign_in(tenant)
    console.nav("Statistics")
    console.field("Topic id").fill("spring")
    page.get_by_role("button", name="Show").click()
    totals = page.get_by_role("region", name="Totals")

    expect(totals.get_by_role("row", name="visits 3")).to_be_visible()
    expect(totals.get_by_role("row", name="visitors 2")).to_be_visible()
    chart = page.get_by_role("img", name=re.compile("^Daily visits"))
    chart.wait_for()
    # expect() polls without eval; wait_for_function's string predicate trips the console's CSP.
    expect(page.locator("img.chart")).to_have_js_property("complete", True)
    assert page.evaluate("document.querySelector('img.chart').naturalWidth") > 0
    records = page.get_by_role("region", name="Operation records of the day")
    records.wait_for()
    assert records.locator("tbody tr").count() == 3
    console.field("Channel").fill("other")
    page.get_by_role("button", name="Show").click()
    page.get_by_text("Nothing counted in this range.").wait_for()
    page.go_back()
    totals.get_by_role("row", name="visits 3").wait_for()
    console.screenshot("stats")


def test_an_affiliate_shows_its_qr_code_downline_upline_and_earnings(console, tenant, local_stack):
    api = local_stack.api(tenant)
    alice = api.post("/v1/affiliates", {"user_id": "alice"}).json()
    assert api.post("/v1/affiliates", {"user_id": "bob", "invite_code": alice["invite_code"]}).status_code == 201
    page = console.page
    console.sign_in(tenant)
    console.nav("Affiliates")
    console.field("User id").fill("alice")
    page.get_by_role("button", name="Look up").click()
    qr = page.get_by_role("img", name="QR code of alice's invite link")
    qr.wait_for()
    assert page.evaluate("document.querySelector('img.qr').naturalWidth") > 0
    assert page.get_by_text(alice["invite_url"]).is_visible()
    for figure in ("Pending", "Available", "Reversed"):
        assert page.locator(".figures div", has_text=figure).locator("dd").inner_text() == "0.00"
    downline = page.get_by_role("region", name="Downline")
    downline.get_by_role("link", name="bob").wait_for()
    console.screenshot("affiliates")
    downline.get_by_role("link", name="bob").click()
    page.get_by_role("heading", name="bob").wait_for()
    assert page.get_by_role("listitem").filter(has_text="Level 1: alice").is_visible()


def test_a_user_sees_no_admin_action(console, tenant, local_stack):
    reward = seed_reward(local_stack.api(tenant), name="Member gift")
    page = console.page
    console.sign_in(tenant, role="user", sub="alice")
    assert "user" in page.locator("header .who").inner_text()
    nav = page.get_by_role("navigation", name="Sections")
    assert nav.get_by_role("link").all_inner_texts() == ["Rewards", "Affiliates"]
    page.get_by_role("link", name="Member gift").wait_for()
    assert page.get_by_role("button", name="New reward").count() == 0
    console.screenshot("user-rewards")
    page.get_by_role("link", name="Member gift").click()
    page.get_by_role("heading", name="Member gift").wait_for()
    for action in ("Delete", "Change stock"):
        assert page.get_by_role("button", name=action).count() == 0
    console.open("#/campaigns")  # not theirs: the console lands on their first page
    page.get_by_role("heading", name="Rewards", level=1).wait_for()
    console.open("#/codes/anything")
    page.get_by_role("heading", name="Rewards", level=1).wait_for()
    assert reward["reward_id"]


@pytest.mark.phone
def test_every_page_fits_a_phone_and_works_by_keyboard(console, tenant, local_stack):
    api = local_stack.api(tenant)
    seed_reward(api, name="Phone gift")
    seed_campaign(api, name="Phone campaign")
    page = console.page
    console.open()
    # Sign in by keyboard alone: the tenant field has focus; Tab moves through the form; Enter submits.
    console.field("Tenant").wait_for()
    page.keyboard.press("Control+A")
    page.keyboard.type(tenant)
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("Control+A")
    page.keyboard.type("ops")
    page.keyboard.press("Enter")
    page.locator("header .who").wait_for()
    for name in ("Campaigns", "Rewards", "Redeem codes", "Affiliates", "Statistics"):
        link = page.get_by_role("navigation", name="Sections").get_by_role("link", name=name)
        link.focus()
        page.keyboard.press("Enter")
        expect(page.locator("nav.sections [aria-current=page]")).to_have_text(name)
        expect(page.locator("main [role=status]")).to_have_count(0)  # its data has arrived
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{name} is wider than the phone by {overflow}px"
        console.screenshot(f"phone-{name.lower().replace(' ', '-')}")

    # A destructive action asks first; Escape answers no.
    console.nav("Rewards")
    page.get_by_role("link", name="Phone gift").click()
    page.get_by_role("button", name="Delete").focus()
    page.keyboard.press("Enter")
    page.get_by_role("dialog").wait_for()
    page.keyboard.press("Escape")
    page.get_by_role("dialog").wait_for(state="detached")
    assert page.get_by_role("heading", name="Phone gift").is_visible()


def test_the_openid_connect_sign_in_uses_pkce(console, tenant, local_stack):
    """The identity provider is played on the console's own origin by routes the browser never sends out."""
    page, base = console.page, local_stack.api_url
    idp = {"authorize": f"{base}/_test_idp/authorize", "token": f"{base}/_test_idp/token"}
    seen: dict = {}
    page.route(f"{base}/console/config.json", lambda route: route.fulfill(json={"oidc": {
        "issuer": "https://auth.local.example", "client_id": "console", "authorize_url": idp["authorize"],
        "token_url": idp["token"], "scopes": "openid email", "bearer": "id_token"}}))

    def authorize(route):
        query = {k: v[0] for k, v in parse_qs(urlsplit(route.request.url).query).items()}
        seen["authorize"] = query
        back = f"{query['redirect_uri']}?{urlencode({'code': 'one-time-code', 'state': query['state']})}"
        route.fulfill(status=302, headers={"Location": back})

    def token(route):
        form = {k: v[0] for k, v in parse_qs(route.request.post_data).items()}
        seen["token"] = form
        challenge = base64.urlsafe_b64encode(hashlib.sha256(form["code_verifier"].encode()).digest()).rstrip(b"=")
        if challenge.decode() != seen["authorize"]["code_challenge"] or form["code"] != "one-time-code":
            route.fulfill(status=400, json={"error": "invalid_grant"})
            return
        route.fulfill(json={"id_token": local_stack.token(tenant, sub="carol", roles="service"),
                            "access_token": "opaque", "token_type": "Bearer", "expires_in": 3600})

    page.route(f"{idp['authorize']}?*", authorize)
    page.route(idp["token"], token)
    console.open()
    page.get_by_role("button", name="Sign in").click()
    page.locator("header .who").wait_for()
    assert seen["authorize"]["code_challenge_method"] == "S256"
    assert seen["authorize"]["response_type"] == "code" and seen["authorize"]["client_id"] == "console"
    assert seen["authorize"]["redirect_uri"] == f"{base}/console/"
    assert seen["token"]["grant_type"] == "authorization_code" and seen["token"]["redirect_uri"] == f"{base}/console/"
    assert "code=" not in page.url, "the one-time code must leave the address bar"
    who = page.locator("header .who").inner_text()
    assert "carol" in who and tenant in who and "service" in who
    # A service account reads campaigns but gets no admin action.
    page.get_by_role("heading", name="Campaigns").wait_for()
    assert page.get_by_role("button", name="New campaign").count() == 0
