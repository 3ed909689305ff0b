"""The console in a real browser (DESIGN "Operating it"): headless Chromium (Debian's
`chromium`, which scripts/install.sh installs) driven by Playwright, through nginx.

An operator logs in, creates an app, finds a device, sends it a test notification and
watches its counter change once the device has synced. A screenshot of each page is
saved under tests/output/console/ (git-ignored) for a reviewer to look at."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.support import OverHttp, device_session

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).parent / "output" / "console"
LIVE_WAIT_MS = 30_000  # how long the page may take to show the ack (polls every 2 s)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (scripts/install.sh)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Visit:
    """A browser tab that keeps a screenshot and the HTML of each page it shows."""

    def __init__(self, browser: Browser, base: str):
        self.page: Page = browser.new_page(viewport={"width": 1280, "height": 800})
        self.base = base
        self.html: dict[str, str] = {}
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def go(self, path: str) -> Page:
        self.page.goto(self.base + path)
        return self.page

    def shot(self, name: str) -> None:
        self.html[name] = self.page.content()
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")


def test_an_operator_sends_a_test_and_watches_the_device_ack_it(browser, stack, settings, http):
    tab = Visit(browser, stack.base)
    page = tab.go("/console/apps")
    # no session: the login page, which leads back
    assert page.url.startswith(f"{stack.base}/console/login?next=/console/apps")
    tab.shot("01-login")

    page.fill("input[name=token]", "adm_not-the-token")
    page.click("button[type=submit]")
    expect(page.locator("#refused")).to_be_visible()
    tab.shot("02-login-refused")

    page.fill("input[name=token]", settings.admin_token)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{stack.base}/console/apps")
    tab.shot("03-apps")

    page.fill("input[name=name]", "Browser shop")
    page.click("button:has-text('Create')")
    app = {
        "id": page.inner_text("#app-id"),
        "app_key": page.inner_text("#app-key"),
        "server_key": page.inner_text("#server-key"),
    }
    assert app["app_key"].startswith("ak_") and app["server_key"].startswith("sk_")
    tab.shot("04-app-created")

    installation = f"phone-{uuid.uuid4().hex[:8]}"
    device_id, _, headers = device_session(
        OverHttp(stack.base, http), app, installation_id=installation, user_id="beatrice"
    )

    tab.go(f"/console/apps/{app['id']}")
    tab.shot("05-app")

    tab.go(f"/console/apps/{app['id']}/devices")
    page.fill("input[name=q]", installation)
    page.click("button:has-text('Find')")
    expect(page.locator("#devices tbody tr")).to_have_count(1)
    tab.shot("06-devices-found")
    page.click(f"#devices >> text='{device_id}'")
    expect(page.locator("h1")).to_contain_text(f"Device {device_id}")
    expect(page.locator("#lane-high")).to_have_text("0 ready")
    tab.shot("07-device")

    page.click("#send-test")
    expect(page.locator(".flash")).to_contain_text(f"to device {device_id}")
    row = page.locator("tr.just-sent")
    sent_id = row.get_attribute("id").removeprefix("n-")
    expect(row.locator("td[data-counter=targets]")).to_have_text("1")
    expect(row.locator("td[data-counter=acked]")).to_have_text("0")
    tab.shot("08-notifications-sent")

    tab.go(f"/console/apps/{app['id']}/devices/{device_id}")
    expect(page.locator("#lane-high")).to_have_text("1 ready")
    tab.shot("09-device-with-a-message")

    tab.go(f"/console/apps/{app['id']}/notifications")
    acked = page.locator(f"#n-{sent_id} td[data-counter=acked]")
    expect(acked).to_have_text("0")
    # the device syncs and acks, over HTTP, as a phone would
    got = http.post(f"{stack.base}/v1/device/sync", json={}, headers=headers).json()["messages"]
    assert [m["id"] for m in got] == [sent_id]
    http.post(f"{stack.base}/v1/device/sync", json={"ack": [sent_id]}, headers=headers)
    expect(acked).to_have_text("1", timeout=LIVE_WAIT_MS)  # no reload: the page polled
    tab.shot("10-notifications-acked-live")

    for name, html in tab.html.items():
        if name != "04-app-created":
            assert app["app_key"] not in html and app["server_key"] not in html, name
        assert settings.admin_token not in html, name
    tab.page.close()
