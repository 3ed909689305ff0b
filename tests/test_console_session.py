"""The console's session and forms, in-process: who gets in, what a form needs, and
that a key is on one page only. The whole console in a real browser:
test_console_browser.py."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from tests.conftest import api_of
from tests.support import bearer, device_session, new_app

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def form_token(client, path: str = "/console/login") -> str:
    page = client.get(path)
    assert page.status_code == 200, page.status_code
    found = CSRF.search(page.get_data(as_text=True))
    assert found, "no form token on " + path
    return found.group(1)


def log_in(client, token: str):
    return client.post(
        "/console/login", data={"token": token, "csrf": form_token(client), "next": ""}
    )


def test_a_page_without_a_session_goes_to_the_login(client):
    r = client.get("/console/apps")
    assert r.status_code == 302
    assert r.headers["Location"].startswith("/console/login?next=/console/apps")
    assert client.get("/console/apps/1/notifications.json").status_code == 401


def test_without_an_admin_token_no_session_opens_the_console(settings):
    """The session key comes from the admin token: without one it is public, so a cookie
    signed with it (as the test client signs it here) must not count."""
    with api_of(replace(settings, admin_token="")) as flask_app:
        forger = flask_app.test_client()
        with forger.session_transaction("/console/apps") as forged:
            forged["admin"] = True
        r = forger.get("/console/apps")
        assert r.status_code == 302 and "/console/login" in r.headers["Location"]


def test_a_wrong_admin_token_is_refused(client, settings):
    r = log_in(client, settings.admin_token + "x")
    assert r.status_code == 401
    assert "That is not the admin token" in r.get_data(as_text=True)
    assert client.get("/console/apps").status_code == 302


def test_the_admin_token_opens_a_session_cookie_for_the_console_only(client, settings):
    r = log_in(client, settings.admin_token)
    assert r.status_code == 302 and r.headers["Location"] == "/console/apps"
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    assert client.get("/console/apps").status_code == 200


def test_a_form_without_its_token_is_refused(client, settings):
    log_in(client, settings.admin_token)
    r = client.post("/console/apps", data={"name": "no token"})
    assert r.status_code == 400
    r = client.post("/console/apps", data={"name": "bad token", "csrf": "x" * 43})
    assert r.status_code == 400


def test_keys_show_once_then_on_no_page(client, settings):
    log_in(client, settings.admin_token)
    token = form_token(client, "/console/apps")
    r = client.post("/console/apps", data={"name": "console shop", "csrf": token})
    assert r.status_code == 201
    assert r.headers["Cache-Control"] == "no-store"
    html = r.get_data(as_text=True)
    app_id = re.search(r'id="app-id">(\d+)<', html).group(1)
    app_key = re.search(r'id="app-key">(ak_[^<]+)<', html).group(1)
    server_key = re.search(r'id="server-key">(sk_[^<]+)<', html).group(1)
    app = {"id": app_id, "app_key": app_key, "server_key": server_key}
    device_id, _, _ = device_session(client, app, user_id="carol")
    pages = [
        "/console/apps",
        f"/console/apps/{app_id}",
        f"/console/apps/{app_id}/devices?q=carol",
        f"/console/apps/{app_id}/devices/{device_id}",
        f"/console/apps/{app_id}/notifications",
        f"/console/apps/{app_id}/notifications.json",
    ]
    for path in pages:
        page = client.get(path)
        assert page.status_code == 200, path
        text = page.get_data(as_text=True)
        assert app_key not in text and server_key not in text, path
        assert settings.admin_token not in text, path


def test_a_device_of_another_app_is_not_found(client, settings):
    mine, other = new_app(client, settings), new_app(client, settings)
    device_id, _, _ = device_session(client, other)
    log_in(client, settings.admin_token)
    r = client.get(f"/console/apps/{mine['id']}/devices/{device_id}")
    assert r.status_code == 404
    assert "no device" in r.get_data(as_text=True)


def test_only_console_paths_are_followed_after_login(client, settings):
    r = client.post(
        "/console/login",
        data={
            "token": settings.admin_token,
            "csrf": form_token(client),
            "next": "//evil.example/console/",
        },
    )
    assert r.headers["Location"] == "/console/apps"


def test_an_apps_credentials_show_without_their_private_keys(
    client, settings, fcm_standin, apns_standin
):
    app = new_app(client, settings)
    auth = bearer(app["server_key"])
    fcm = fcm_standin.service_account
    client.put("/v1/app/credentials/fcm", json={"service_account": fcm}, headers=auth)
    apns = apns_standin.credentials()
    client.put("/v1/app/credentials/apns", json=apns, headers=auth)
    log_in(client, settings.admin_token)
    html = client.get(f"/console/apps/{app['id']}").get_data(as_text=True)
    assert fcm["project_id"] in html and apns["key_id"] in html  # what may be shown is
    for secret in (fcm["private_key"], apns["private_key"]):
        body = "".join(secret.strip().splitlines()[1:-1])  # the PEM's base64, any line
        assert secret not in html and body[:40] not in html


def test_the_campaigns_page_shows_each_campaign_with_its_status_and_counters(client, settings):
    log_in(client, settings.admin_token)
    app = new_app(client, settings, "console campaigns")
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    ids = []
    for body in ({"title": "tomorrow", "send_at": tomorrow}, {"title": "now"}):
        r = client.post("/v1/campaigns", json=body, headers=bearer(app["server_key"]))
        assert r.status_code == 202, r.get_json()
        ids.append(r.get_json()["id"])
    html = client.get(f"/console/apps/{app['id']}/campaigns").get_data(as_text=True)
    rows = dict(re.findall(r'<tr id="c-(\w+)">(.*?)</tr>', html, re.S))
    assert set(rows) == set(ids)
    assert 'class="status">scheduled<' in rows[ids[0]]
    assert 'data-counter="published"' in rows[ids[1]]
    assert '<meta http-equiv="refresh"' in html  # one is unfinished: the page reloads
