"""The FCM and APNs clients against local stand-ins that speak the platforms' wire
protocols over real TLS (a local CA trusted through PUSH_CA_FILE), with
REQUESTS_CA_BUNDLE and SSL_CERT_FILE set as on this machine. No MySQL, RabbitMQ or
Redis needed."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import json
import os
import secrets
import ssl
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from dispatcher.platforms import (
    ApnsClient,
    ApnsCredentials,
    CredentialsInvalid,
    FcmClient,
    FcmCredentials,
    Outcome,
    Push,
    deliver,
)
from dispatcher.platforms import apns as apns_module
from dispatcher.platforms import fcm as fcm_module
from dispatcher.platforms.payloads import PRIVATE_TITLE, apns_id, collapse_id
from dispatcher.platforms.transport import retry_after_s, ssl_context
from pushbox_core.errors import InvalidRequest
from pushbox_core.settings import Settings
from tests.standins import ANY_TOKEN, ApnsStandin, FcmStandin, LocalCA
from tests.standins import apns as standins_apns

pytest_plugins = ["tests.standins.fixtures"]  # standin_ca, fcm_standin, apns_standin

SYSTEM_BUNDLE = (
    "/etc/ssl/certs/ca-certificates.crt"
    if os.path.exists("/etc/ssl/certs/ca-certificates.crt")
    else ssl.get_default_verify_paths().openssl_cafile
)
SECRET_TITLE = "Your order 4711 shipped"
SECRET_BODY = "Parcel for Ms Example, 12 Hidden Lane"
SECRET_DATA = {"order": "4711-confidential", "items": [1, 2]}
SECRET_COLLAPSE = "order-4711-status"


@pytest.fixture(autouse=True)
def machine_ca_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """As on this machine: the variables that make `requests` ignore a verify setting."""
    for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE"):
        monkeypatch.setenv(name, SYSTEM_BUNDLE)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def make_push(provider: str = "fcm", **overrides: Any) -> Push:
    values: dict[str, Any] = {
        "provider": provider,
        "token": secrets.token_hex(32) if provider == "apns" else "fcm-" + secrets.token_hex(20),
        "token_registered_at": datetime.now(UTC).replace(tzinfo=None) - timedelta(days=1),
        "mode": "alert",
        "message_id": uuid.uuid4().hex,
        "message_kind": "notification",
        "title": SECRET_TITLE,
        "body": SECRET_BODY,
        "data": SECRET_DATA,
        "collapse_key": SECRET_COLLAPSE,
        "ttl_s": 3600,
    }
    values.update(overrides)
    return Push(**values)


def fcm_client(standin: FcmStandin, ca: LocalCA, **kwargs: Any) -> FcmClient:
    creds = FcmCredentials.parse(standin.service_account)
    return FcmClient(creds, base_url=standin.url, ca_file=ca.ca_file, **kwargs)


def apns_client(standin: ApnsStandin, ca: LocalCA, **kwargs: Any) -> ApnsClient:
    creds = ApnsCredentials.parse(**standin.credentials())
    return ApnsClient(creds, base_url=standin.url, ca_file=ca.ca_file, **kwargs)


async def send_once(client: Any, push: Push) -> Outcome:
    async with client:
        return await client.send(push)


class Sleeps:
    """An injected sleep that records what deliver waited for."""

    def __init__(self, then: Any = None):
        self.delays: list[float] = []
        self.then = then

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        if self.then is not None:
            self.then()


@pytest.fixture(params=["fcm", "apns"])
def platform(request: pytest.FixtureRequest, standin_ca: LocalCA) -> Any:
    """(provider, stand-in, client factory) for tests that hold for both platforms."""
    if request.param == "fcm":
        standin = request.getfixturevalue("fcm_standin")
        return "fcm", standin, lambda: fcm_client(standin, standin_ca)
    standin = request.getfixturevalue("apns_standin")
    return "apns", standin, lambda: apns_client(standin, standin_ca)


# ---- FCM: what arrives ----------------------------------------------------------------


def test_fcm_alert_arrives_as_a_notification_at_high_priority_with_the_id(
    fcm_standin: FcmStandin, standin_ca: LocalCA
) -> None:
    push = make_push()
    outcome = run(send_once(fcm_client(fcm_standin, standin_ca), push))

    assert outcome == Outcome("accepted")
    [sent] = fcm_standin.sends()
    assert sent.http_version == "2"
    assert sent.path == f"/v1/projects/{fcm_standin.project_id}/messages:send"
    assert sent.headers["authorization"].startswith("Bearer ya29.")
    message = sent.json()["message"]
    assert message["token"] == push.token
    assert message["notification"] == {"title": SECRET_TITLE, "body": SECRET_BODY}
    assert message["android"] == {
        "priority": "HIGH",
        "collapse_key": SECRET_COLLAPSE,
        "ttl": "3600s",
    }
    data = message["data"]
    assert data["pushbox_id"] == push.message_id
    assert data["pushbox_kind"] == "notification"
    assert json.loads(data["pushbox_data"]) == SECRET_DATA
    assert all(isinstance(v, str) for v in data.values())


def test_fcm_silent_push_is_data_only_at_normal_priority(
    fcm_standin: FcmStandin, standin_ca: LocalCA
) -> None:
    push = make_push(mode="silent", message_kind="broadcast")
    assert run(send_once(fcm_client(fcm_standin, standin_ca), push)).accepted

    message = fcm_standin.sends()[0].json()["message"]
    assert "notification" not in message
    assert message["data"] == {"pushbox_id": push.message_id, "pushbox_kind": "broadcast"}
    assert message["android"] == {"priority": "NORMAL", "ttl": "3600s"}


def test_fcm_private_alert_carries_a_generic_text_and_the_id_only(
    fcm_standin: FcmStandin, standin_ca: LocalCA
) -> None:
    push = make_push(private=True)
    assert run(send_once(fcm_client(fcm_standin, standin_ca), push)).accepted

    raw = fcm_standin.sends()[0].body
    for secret in (SECRET_TITLE, SECRET_BODY, "4711", SECRET_COLLAPSE):
        assert secret.encode() not in raw
    message = json.loads(raw)["message"]
    assert message["notification"] == {"title": PRIVATE_TITLE}
    assert message["data"] == {"pushbox_id": push.message_id, "pushbox_kind": "notification"}
    assert message["android"]["priority"] == "HIGH"
    assert "collapse_key" not in message["android"]


def test_fcm_push_too_large_drops_data_and_shortens_the_body_to_fit(
    fcm_standin: FcmStandin, standin_ca: LocalCA
) -> None:
    push = make_push(body="é" * 3000, data={"blob": "x" * 3000})
    assert run(send_once(fcm_client(fcm_standin, standin_ca), push)).accepted  # FCM's 4096

    message = fcm_standin.sends()[0].json()["message"]
    assert "pushbox_data" not in message["data"]
    assert message["notification"]["body"].endswith("…")
    assert message["data"]["pushbox_id"] == push.message_id


# ---- FCM: failures ------------------------------------------------------------------


@pytest.mark.parametrize(
    "status, code",
    [(404, "UNREGISTERED"), (400, "INVALID_ARGUMENT"), (403, "SENDER_ID_MISMATCH")],
)
def test_fcm_dead_token_answers_are_invalid_token(
    fcm_standin: FcmStandin, standin_ca: LocalCA, status: int, code: str
) -> None:
    push = make_push()
    fcm_standin.fail(push.token, status, code)
    outcome = run(send_once(fcm_client(fcm_standin, standin_ca), push))
    assert (outcome.result, outcome.reason) == ("invalid_token", code)


def test_fcm_invalid_argument_about_another_field_fails_without_blaming_the_token() -> None:
    body = {
        "error": {
            "code": 400,
            "message": "Invalid value at 'message.android.ttl'",
            "status": "INVALID_ARGUMENT",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.BadRequest",
                    "fieldViolations": [{"field": "message.android.ttl"}],
                }
            ],
        }
    }
    outcome = fcm_module.classify(400, json.dumps(body).encode())
    assert (outcome.result, outcome.reason) == ("failed", "INVALID_ARGUMENT")


def test_fcm_permission_denied_is_credentials_rejected(
    fcm_standin: FcmStandin, standin_ca: LocalCA
) -> None:
    push = make_push()
    fcm_standin.fail(push.token, 403, "")
    outcome = run(send_once(fcm_client(fcm_standin, standin_ca), push))
    assert (outcome.result, outcome.reason) == ("credentials_rejected", "PERMISSION_DENIED")


def test_fcm_401_gets_a_new_access_token_once_then_is_credentials_rejected(
    fcm_standin: FcmStandin, standin_ca: LocalCA
) -> None:
    push = make_push()
    fcm_standin.fail(push.token, 401, "THIRD_PARTY_AUTH_ERROR", times=2)
    outcome = run(send_once(fcm_client(fcm_standin, standin_ca), push))
    assert (outcome.result, outcome.reason) == ("credentials_rejected", "THIRD_PARTY_AUTH_ERROR")
    assert len(fcm_standin.token_requests()) == 2
    assert len(fcm_standin.sends()) == 2


def test_fcm_revoked_access_token_is_replaced_and_the_push_goes_out(
    fcm_standin: FcmStandin, standin_ca: LocalCA
) -> None:
    async def scenario() -> list[Outcome]:
        async with fcm_client(fcm_standin, standin_ca) as client:
            first = await client.send(make_push())
            fcm_standin.revoke_access_tokens()
            return [first, await client.send(make_push())]

    assert [o.result for o in run(scenario())] == ["accepted", "accepted"]
    assert len(fcm_standin.token_requests()) == 2
    assert [r.headers["authorization"] for r in fcm_standin.sends()].count(
        fcm_standin.sends()[0].headers["authorization"]
    ) == 2  # the revoked token was tried once more, then replaced


def test_fcm_refused_key_is_credentials_rejected_and_not_asked_again_at_once(
    fcm_standin: FcmStandin, standin_ca: LocalCA
) -> None:
    fcm_standin.refuse_tokens("invalid_grant", "Invalid JWT Signature.")

    async def scenario() -> list[Outcome]:
        async with fcm_client(fcm_standin, standin_ca) as client:
            return [await client.send(make_push()), await client.send(make_push())]

    outcomes = run(scenario())
    assert [(o.result, o.reason) for o in outcomes] == [
        ("credentials_rejected", "invalid_grant"),
        ("credentials_rejected", "invalid_grant"),
    ]
    assert len(fcm_standin.token_requests()) == 1
    assert fcm_standin.sends() == []


def test_fcm_oauth_token_is_fetched_once_for_many_sends(
    fcm_standin: FcmStandin, standin_ca: LocalCA
) -> None:
    async def scenario() -> list[Outcome]:
        async with fcm_client(fcm_standin, standin_ca) as client:
            burst = await asyncio.gather(*(client.send(make_push()) for _ in range(50)))
            return [*burst, *[await client.send(make_push()) for _ in range(5)]]

    assert all(o.accepted for o in run(scenario()))
    assert len(fcm_standin.token_requests()) == 1
    assert len({r.headers["authorization"] for r in fcm_standin.sends()}) == 1


def test_fcm_token_is_replaced_shortly_before_it_expires(
    fcm_standin: FcmStandin, standin_ca: LocalCA
) -> None:
    fcm_standin.token_lifetime_s = fcm_module.TOKEN_REFRESH_MARGIN_S - 1

    async def scenario() -> None:
        async with fcm_client(fcm_standin, standin_ca) as client:
            for _ in range(2):
                assert (await client.send(make_push())).accepted

    run(scenario())
    assert len(fcm_standin.token_requests()) == 2


def test_fcm_token_not_yet_expired_serves_while_the_token_endpoint_is_down(
    fcm_standin: FcmStandin, standin_ca: LocalCA
) -> None:
    fcm_standin.token_lifetime_s = 200  # due for replacement at once, valid 170 s more

    async def scenario() -> list[Outcome]:
        async with fcm_client(fcm_standin, standin_ca) as client:
            first = await client.send(make_push())
            fcm_standin.refuse_tokens("temporarily_unavailable", "try later", status=503)
            return [first, *[await client.send(make_push()) for _ in range(3)]]

    assert [o.result for o in run(scenario())] == ["accepted"] * 4
    assert len({r.headers["authorization"] for r in fcm_standin.sends()}) == 1
    # one refresh tried (google-auth makes 3 requests of it), not one per send
    assert len(fcm_standin.token_requests()) == 1 + 3


def test_fcm_token_request_is_a_jwt_grant_signed_by_the_service_account(
    fcm_standin: FcmStandin, standin_ca: LocalCA
) -> None:
    assert run(send_once(fcm_client(fcm_standin, standin_ca), make_push())).accepted
    [grant] = fcm_standin.token_requests()
    assert grant.headers["content-type"] == "application/x-www-form-urlencoded"
    assert b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer" in grant.body
    claims_b64 = grant.body.split(b"assertion=")[1].split(b".")[1]
    claims = json.loads(base64.urlsafe_b64decode(claims_b64 + b"=" * (-len(claims_b64) % 4)))
    assert claims["iss"] == fcm_standin.service_account["client_email"]
    assert claims["scope"] == fcm_module.SCOPE


# ---- APNs: what arrives ---------------------------------------------------------------


def test_apns_alert_arrives_with_alert_type_priority_10_and_the_id(
    apns_standin: ApnsStandin, standin_ca: LocalCA
) -> None:
    push = make_push("apns")
    before = int(time.time())
    assert run(send_once(apns_client(apns_standin, standin_ca), push)) == Outcome("accepted")

    [sent] = apns_standin.sends()
    assert sent.http_version == "2"
    assert sent.path == f"/3/device/{push.token}"
    h = sent.headers
    assert h["apns-topic"] == apns_standin.bundle_id
    assert (h["apns-push-type"], h["apns-priority"]) == ("alert", "10")
    assert h["apns-collapse-id"] == SECRET_COLLAPSE
    assert h["apns-id"] == str(uuid.UUID(push.message_id))
    assert before + 3600 <= int(h["apns-expiration"]) <= int(time.time()) + 3600
    assert h["authorization"].startswith("bearer ey")
    assert sent.json() == {
        "aps": {"alert": {"title": SECRET_TITLE, "body": SECRET_BODY}},
        "pushbox": {"id": push.message_id, "kind": "notification"},
        "data": SECRET_DATA,
    }


def test_apns_silent_push_is_background_priority_5_content_available(
    apns_standin: ApnsStandin, standin_ca: LocalCA
) -> None:
    push = make_push("apns", mode="silent", message_kind="broadcast")
    assert run(send_once(apns_client(apns_standin, standin_ca), push)).accepted

    [sent] = apns_standin.sends()
    assert (sent.headers["apns-push-type"], sent.headers["apns-priority"]) == ("background", "5")
    assert "apns-collapse-id" not in sent.headers
    assert sent.json() == {
        "aps": {"content-available": 1},
        "pushbox": {"id": push.message_id, "kind": "broadcast"},
    }


def test_apns_private_alert_is_mutable_and_generic_with_nothing_in_clear(
    apns_standin: ApnsStandin, standin_ca: LocalCA
) -> None:
    push = make_push("apns", private=True)
    assert run(send_once(apns_client(apns_standin, standin_ca), push)).accepted

    [sent] = apns_standin.sends()
    on_the_wire = sent.body + json.dumps(sent.headers).encode()
    for secret in (SECRET_TITLE, SECRET_BODY, "4711", SECRET_COLLAPSE):
        assert secret.encode() not in on_the_wire
    assert "apns-collapse-id" not in sent.headers
    assert sent.json() == {
        "aps": {"alert": {"title": PRIVATE_TITLE}, "mutable-content": 1},
        "pushbox": {"id": push.message_id, "kind": "notification"},
    }


def test_apns_collapse_key_longer_than_64_bytes_is_hashed(
    apns_standin: ApnsStandin, standin_ca: LocalCA
) -> None:
    key = "order-status-" + "x" * 80
    push = make_push("apns", collapse_key=key)
    assert run(send_once(apns_client(apns_standin, standin_ca), push)).accepted
    assert (
        apns_standin.sends()[0].headers["apns-collapse-id"]
        == hashlib.sha256(key.encode()).hexdigest()
    )


# ---- APNs: failures -----------------------------------------------------------------


@pytest.mark.parametrize(
    "status, reason",
    [(400, "BadDeviceToken"), (400, "DeviceTokenNotForTopic"), (410, "Unregistered")],
)
def test_apns_dead_token_answers_are_invalid_token(
    apns_standin: ApnsStandin, standin_ca: LocalCA, status: int, reason: str
) -> None:
    push = make_push("apns")
    apns_standin.fail(push.token, status, reason)  # a 410 says: unregistered just now
    outcome = run(send_once(apns_client(apns_standin, standin_ca), push))
    assert (outcome.result, outcome.reason) == ("invalid_token", reason)


def test_apns_410_from_before_the_token_was_registered_does_not_invalidate_it(
    apns_standin: ApnsStandin, standin_ca: LocalCA
) -> None:
    push = make_push("apns", token_registered_at=datetime.now(UTC) - timedelta(minutes=5))
    unregistered_ms = int((time.time() - 3600) * 1000)
    apns_standin.fail(push.token, 410, "Unregistered", timestamp_ms=unregistered_ms)
    outcome = run(send_once(apns_client(apns_standin, standin_ca), push))
    assert (outcome.result, outcome.reason) == ("failed", "Unregistered")


def test_apns_token_that_is_not_hex_is_invalid_without_asking_apple(
    apns_standin: ApnsStandin, standin_ca: LocalCA
) -> None:
    outcome = run(send_once(apns_client(apns_standin, standin_ca), make_push("apns", token="../x")))
    assert (outcome.result, outcome.reason) == ("invalid_token", "BadDeviceToken")
    assert apns_standin.sends() == []


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"private_key": "another key"}, "InvalidProviderToken"),
        ({"bundle_id": "com.example.other"}, "TopicDisallowed"),
    ],
)
def test_apns_key_or_bundle_apple_does_not_accept_is_credentials_rejected(
    apns_standin: ApnsStandin, standin_ca: LocalCA, change: dict, reason: str
) -> None:
    args = {**apns_standin.credentials(), **change}
    if args["private_key"] == "another key":
        args["private_key"] = _ec_pem()
    client = ApnsClient(
        ApnsCredentials.parse(**args), base_url=apns_standin.url, ca_file=standin_ca.ca_file
    )
    outcome = run(send_once(client, make_push("apns")))
    assert (outcome.result, outcome.reason) == ("credentials_rejected", reason)


def test_apns_expired_provider_token_is_signed_again_once(
    apns_standin: ApnsStandin, standin_ca: LocalCA
) -> None:
    push = make_push("apns")
    apns_standin.fail(push.token, 403, "ExpiredProviderToken")
    client = apns_client(apns_standin, standin_ca)
    assert run(send_once(client, push)).accepted

    first, second = apns_standin.provider_tokens()
    assert first != second
    assert client.tokens.signed == 2


def test_apns_expired_provider_token_twice_is_credentials_rejected(
    apns_standin: ApnsStandin, standin_ca: LocalCA
) -> None:
    push = make_push("apns")
    apns_standin.fail(push.token, 403, "ExpiredProviderToken", times=2)
    client = apns_client(apns_standin, standin_ca)
    outcome = run(send_once(client, push))
    assert (outcome.result, outcome.reason) == ("credentials_rejected", "ExpiredProviderToken")
    assert client.tokens.signed == 2
    assert len(apns_standin.sends()) == 2


def test_apns_jwt_is_reused_across_sends_and_signed_again_after_40_minutes(
    apns_standin: ApnsStandin, standin_ca: LocalCA
) -> None:
    now = [time.time() - 45 * 60]  # Apple takes a JWT up to an hour old
    client = apns_client(apns_standin, standin_ca, clock=lambda: now[0])

    async def scenario() -> None:
        async with client:
            for _ in range(3):
                assert (await client.send(make_push("apns"))).accepted
            now[0] += apns_module.JWT_RESIGN_AFTER_S + 60
            assert (await client.send(make_push("apns"))).accepted

    run(scenario())
    tokens = apns_standin.provider_tokens()
    assert tokens[0] == tokens[1] == tokens[2] != tokens[3]
    assert client.tokens.signed == 2


def test_apns_standin_refuses_a_provider_token_older_than_an_hour(
    apns_standin: ApnsStandin, standin_ca: LocalCA
) -> None:
    client = apns_client(apns_standin, standin_ca, clock=lambda: time.time() - 2 * 3600)
    outcome = run(send_once(client, make_push("apns", ttl_s=None)))
    assert (outcome.result, outcome.reason) == ("credentials_rejected", "ExpiredProviderToken")


def test_apns_standin_checks_a_remembered_provider_token_for_age_on_every_push(
    apns_standin: ApnsStandin, standin_ca: LocalCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = apns_client(apns_standin, standin_ca)

    async def scenario() -> list[Outcome]:
        async with client:
            first = await client.send(make_push("apns"))  # its signature checked, remembered
            monkeypatch.setattr(standins_apns, "PROVIDER_TOKEN_MAX_AGE_S", -60)  # now too old
            return [first, await client.send(make_push("apns"))]

    first, second = run(scenario())
    assert first.accepted
    assert (second.result, second.reason) == ("credentials_rejected", "ExpiredProviderToken")
    # the refused push carried the remembered token (then the client signed anew, once)
    tokens = apns_standin.provider_tokens()
    assert len(tokens) == 3 and tokens[0] == tokens[1] != tokens[2]


def test_apns_standin_refuses_a_token_signed_by_another_key_after_remembering_a_good_one(
    apns_standin: ApnsStandin, standin_ca: LocalCA
) -> None:
    good = apns_client(apns_standin, standin_ca)
    other_key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    forged = ApnsClient(
        ApnsCredentials.parse(**{**apns_standin.credentials(), "private_key": other_key.decode()}),
        base_url=apns_standin.url,
        ca_file=standin_ca.ca_file,
    )
    assert run(send_once(good, make_push("apns"))).accepted
    outcome = run(send_once(forged, make_push("apns")))
    assert (outcome.result, outcome.reason) == ("credentials_rejected", "InvalidProviderToken")


def test_apns_standin_keeps_a_connection_past_a_thousand_pushes_and_sums_them_up(
    apns_standin: ApnsStandin, standin_ca: LocalCA
) -> None:
    """hypercorn closes a connection after 1,000 requests unless told otherwise, cutting
    the streams in flight: APNs does not, and a benchmark sends 10,000 on one."""
    client = apns_client(apns_standin, standin_ca)
    n = 1_050

    async def scenario() -> list[Outcome]:
        limit = asyncio.Semaphore(50)

        async def one() -> Outcome:
            async with limit:
                return await client.send(make_push("apns"))

        async with client:
            return await asyncio.gather(*(one() for _ in range(n)))

    outcomes = run(scenario())
    assert [o.result for o in outcomes] == ["accepted"] * n
    with httpx.Client(verify=ssl_context(standin_ca.ca_file), http2=True) as control:
        summary = control.get(f"{apns_standin.url}/_standin/summary").json()
    assert summary["requests"] == n
    assert summary["statuses"] == {"200": n}
    assert summary["first_at"] <= summary["last_at"]


def test_apns_standin_speaks_http2_only(apns_standin: ApnsStandin, standin_ca: LocalCA) -> None:
    with httpx.Client(verify=ssl_context(standin_ca.ca_file), http2=False) as http1:
        response = http1.post(f"{apns_standin.url}/3/device/{secrets.token_hex(32)}", content=b"{}")
    assert response.status_code == 400
    assert response.json() == {"reason": "HTTP/2 required"}


# ---- both: retries, concurrency, TLS ------------------------------------------------


def test_retry_after_from_a_429_is_honoured_then_the_push_goes_out(platform: Any) -> None:
    provider, standin, make_client = platform
    push = make_push(provider)
    standin.fail(
        push.token, 429, "QUOTA_EXCEEDED" if provider == "fcm" else "TooManyRequests", retry_after=7
    )
    sleeps = Sleeps()

    async def scenario() -> Outcome:
        async with make_client() as client:
            return await deliver(client, push, sleep=sleeps)

    assert run(scenario()).accepted
    assert sleeps.delays == [7.0]
    assert len(standin.sends()) == 2


def test_500_and_503_are_retried_with_backoff(platform: Any) -> None:
    provider, standin, make_client = platform
    push = make_push(provider)
    standin.fail(push.token, 500, "INTERNAL" if provider == "fcm" else "InternalServerError")
    standin.fail(push.token, 503, "UNAVAILABLE" if provider == "fcm" else "ServiceUnavailable")
    sleeps = Sleeps()

    async def scenario() -> Outcome:
        async with make_client() as client:
            return await deliver(client, push, sleep=sleeps)

    assert run(scenario()).accepted
    assert len(sleeps.delays) == 2
    assert 0 < sleeps.delays[0] < sleeps.delays[1] <= 2
    assert len(standin.sends()) == 3


def test_retries_exhausted_is_failed(platform: Any) -> None:
    provider, standin, make_client = platform
    standin.fail(
        ANY_TOKEN, 503, "UNAVAILABLE" if provider == "fcm" else "ServiceUnavailable", times=None
    )
    sleeps = Sleeps()

    async def scenario() -> Outcome:
        async with make_client() as client:
            return await deliver(client, make_push(provider), attempts=3, sleep=sleeps)

    outcome = run(scenario())
    assert (outcome.result, outcome.reason) == ("failed", "retries exhausted")
    assert len(sleeps.delays) == 2


def test_a_platform_that_is_down_is_retried_until_it_is_back(platform: Any) -> None:
    provider, standin, make_client = platform
    sleeps = Sleeps(then=standin.start)

    async def scenario() -> tuple[Outcome, Outcome]:
        async with make_client() as client:
            assert (await client.send(make_push(provider))).accepted  # connected
            standin.stop()
            down = await client.send(make_push(provider))
            return down, await deliver(client, make_push(provider), sleep=sleeps)

    down, delivered = run(scenario())
    assert down.result == "retry"
    assert delivered.accepted
    assert len(sleeps.delays) == 1


def test_many_concurrent_sends_on_one_client_are_all_accepted(platform: Any) -> None:
    provider, standin, make_client = platform

    async def scenario() -> list[Outcome]:
        async with make_client() as client:
            return await asyncio.gather(*(client.send(make_push(provider)) for _ in range(200)))

    outcomes = run(scenario())
    assert [o.result for o in outcomes] == ["accepted"] * 200
    assert len(standin.sends()) == 200
    if provider == "fcm":
        assert len(standin.token_requests()) == 1
    else:
        assert len(set(standin.provider_tokens())) == 1


def test_without_the_extra_ca_the_standin_is_not_trusted_whatever_the_environment_says(
    platform: Any, standin_ca: LocalCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider, standin, _ = platform
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", standin_ca.ca_file)  # requests would obey this
    if provider == "fcm":
        client: Any = FcmClient(FcmCredentials.parse(standin.service_account), base_url=standin.url)
    else:
        client = ApnsClient(ApnsCredentials.parse(**standin.credentials()), base_url=standin.url)
    outcome = run(send_once(client, make_push(provider)))
    assert (outcome.result, outcome.reason) == ("failed", "certificate not trusted")
    assert standin.received == []


def test_ssl_context_verifies_and_trusts_the_system_and_the_extra_ca(standin_ca: LocalCA) -> None:
    ctx = ssl_context(standin_ca.ca_file)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    issuers = [dict(x[0] for x in c["subject"]).get("organizationName") for c in ctx.get_ca_certs()]
    assert "Pushbox stand-ins" in issuers
    assert len(issuers) > 10  # the system's too


def test_clients_take_urls_and_the_ca_file_from_settings(
    monkeypatch: pytest.MonkeyPatch,
    fcm_standin: FcmStandin,
    apns_standin: ApnsStandin,
    standin_ca: LocalCA,
) -> None:
    monkeypatch.setenv("PUSH_FCM_URL", fcm_standin.url)
    monkeypatch.setenv("PUSH_APNS_SANDBOX_URL", apns_standin.url)
    monkeypatch.setenv("PUSH_CA_FILE", standin_ca.ca_file)
    settings = Settings.from_env()
    assert settings.apns_url == "https://api.push.apple.com"
    assert settings.wake_coalesce_s == 30
    fcm = FcmClient.from_settings(FcmCredentials.parse(fcm_standin.service_account), settings)
    sandbox = ApnsCredentials.parse(**apns_standin.credentials("sandbox"))
    apns = ApnsClient.from_settings(sandbox, settings)
    assert run(send_once(fcm, make_push())).accepted
    assert run(send_once(apns, make_push("apns"))).accepted


# ---- credentials: checked for shape -------------------------------------------------


@pytest.fixture(scope="module")
def service_account() -> dict:
    from tests.standins.keys import make_service_account

    return make_service_account("https://oauth2.googleapis.com/token")[0]


def _ec_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _rsa_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.mark.parametrize(
    "change, field",
    [
        ({"type": None}, "service_account.type"),
        ({"type": "authorized_user"}, "service_account.type"),
        ({"project_id": None}, "service_account.project_id"),
        ({"client_email": ""}, "service_account.client_email"),
        ({"client_email": "not-an-address"}, "service_account.client_email"),
        ({"private_key": None}, "service_account.private_key"),
        (
            {"private_key": "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----"},
            "service_account.private_key",
        ),
        ({"private_key": "EC"}, "service_account.private_key"),
        ({"token_uri": None}, "service_account.token_uri"),
        ({"token_uri": "http://example.com/token"}, "service_account.token_uri"),
    ],
)
def test_fcm_credentials_that_are_not_a_key_file_name_the_field(
    service_account: dict, change: dict, field: str
) -> None:
    info = dict(service_account)
    for k, v in change.items():
        if v is None:
            info.pop(k)
        else:
            info[k] = _ec_pem() if v == "EC" else v
    with pytest.raises(CredentialsInvalid) as err:
        FcmCredentials.parse(info)
    assert err.value.field == field
    assert field.split(".")[-1] in str(err.value)
    assert isinstance(err.value, InvalidRequest)  # the API answers 422


def test_fcm_credentials_must_be_an_object() -> None:
    with pytest.raises(CredentialsInvalid) as err:
        FcmCredentials.parse("{}")
    assert err.value.field == "service_account"


def test_fcm_credentials_parse_keeps_what_the_app_may_show(service_account: dict) -> None:
    creds = FcmCredentials.parse(service_account)
    assert creds.public() == {"project_id": "pushbox-test"}
    assert "PRIVATE" not in repr(creds)


@pytest.mark.parametrize(
    "change, field",
    [
        ({"team_id": "TEAM1"}, "team_id"),
        ({"team_id": None}, "team_id"),
        ({"key_id": "key0000001"}, "key_id"),
        ({"bundle_id": "com.example app"}, "bundle_id"),
        ({"environment": "prod"}, "environment"),
        ({"private_key": "RSA"}, "private_key"),
        ({"private_key": "not a key"}, "private_key"),
        ({"private_key": ""}, "private_key"),
    ],
)
def test_apns_credentials_of_the_wrong_shape_name_the_field(change: dict, field: str) -> None:
    args = {
        "team_id": "TEAM000001",
        "key_id": "KEY0000001",
        "bundle_id": "com.example.pushbox",
        "private_key": _ec_pem(),
        "environment": "production",
    }
    for k, v in change.items():
        args[k] = _rsa_pem() if v == "RSA" else v
    with pytest.raises(CredentialsInvalid) as err:
        ApnsCredentials.parse(**args)
    assert err.value.field == field
    assert field in str(err.value)


def test_apns_credentials_take_the_key_without_its_pem_lines() -> None:
    pem = _ec_pem()
    bare = "".join(line for line in pem.splitlines() if not line.startswith("-----"))
    creds = ApnsCredentials.parse(
        "TEAM000001", "KEY0000001", "com.example.pushbox", bare, "sandbox"
    )
    assert creds.public() == {
        "team_id": "TEAM000001",
        "key_id": "KEY0000001",
        "bundle_id": "com.example.pushbox",
        "environment": "sandbox",
    }
    assert "PRIVATE" not in repr(creds)


# ---- pure pieces ----------------------------------------------------------------------


def test_collapse_id_keeps_short_keys_and_hashes_long_ones() -> None:
    assert collapse_id("k" * 64) == "k" * 64
    assert collapse_id("k" * 65) == hashlib.sha256(b"k" * 65).hexdigest()
    assert len(collapse_id("é" * 40)) == 64  # 80 bytes


def test_apns_id_is_the_message_id_as_a_uuid_or_nothing() -> None:
    u = uuid.uuid4()
    assert apns_id(u.hex) == str(u)
    assert apns_id("order-4711") is None


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after_s("30") == 30.0
    assert retry_after_s("Thu, 01 Jan 2026 12:01:00 GMT", now=now) == 60.0
    assert retry_after_s("soon") is None
    assert retry_after_s(None) is None


def test_deliver_waits_no_longer_than_the_cap_and_stops_at_a_final_answer() -> None:
    class Scripted:
        provider = "fcm"

        def __init__(self, outcomes: list[Outcome]):
            self.outcomes = outcomes

        async def send(self, push: Push) -> Outcome:
            return self.outcomes.pop(0)

        async def aclose(self) -> None:
            pass

    sleeps = Sleeps()
    client = Scripted(
        [Outcome("retry", "QUOTA_EXCEEDED", 3600), Outcome("invalid_token", "UNREGISTERED")]
    )
    outcome = run(deliver(client, make_push(), sleep=sleeps))
    assert outcome == Outcome("invalid_token", "UNREGISTERED")
    assert sleeps.delays == [60.0]


def test_push_without_title_or_body_still_shows_something_when_alert() -> None:
    from dispatcher.platforms.payloads import apns_payload, fcm_message

    push = dataclasses.replace(make_push(), title=None, body=None)
    assert fcm_message(push)["notification"] == {"title": PRIVATE_TITLE}
    assert json.loads(apns_payload(push))["aps"]["alert"] == {"title": PRIVATE_TITLE}


def test_an_fcm_404_that_names_no_token_is_not_a_dead_token():
    """A wrong project id or URL answers 404 too: it must not mark every token dead."""
    from dispatcher.platforms.fcm import classify

    body = json.dumps(
        {
            "error": {
                "code": 404,
                "message": "Requested entity was not found.",
                "status": "NOT_FOUND",
            }
        }
    ).encode()
    assert classify(404, body).result == "failed"
    unregistered = json.dumps(
        {
            "error": {
                "code": 404,
                "status": "NOT_FOUND",
                "message": "Requested entity was not found.",
                "details": [
                    {
                        "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                        "errorCode": "UNREGISTERED",
                    }
                ],
            }
        }
    ).encode()
    assert classify(404, unregistered).result == "invalid_token"
