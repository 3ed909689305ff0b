"""HTTPS (DESIGN "Operating it"): with PUSH_TLS_CERT and PUSH_TLS_KEY, nginx serves
HTTPS with HTTP/2, and plain HTTP only redirects there. The certificate comes from a
local CA (trustme) that only the test's clients trust."""

from __future__ import annotations

import re
import ssl

import httpx
import pytest
import trustme

from tests.conftest import free_port, settings_env, stack_of_its_own
from tests.support import bearer


@pytest.fixture(scope="module")
def tls(settings, tmp_path_factory):
    """(the stack, the CA file a client must trust)."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file, ca_file = folder / "cert.pem", folder / "key.pem", folder / "ca.pem"
    cert_file.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    env = {**settings_env(settings), "PUSH_TLS_CERT": str(cert_file), "PUSH_TLS_KEY": str(key_file)}
    with stack_of_its_own(env) as st:
        st.with_dispatcher = False  # nginx and one API instance are what TLS concerns
        st.api_ports = st.api_ports[:1]
        st.tls_port = free_port()
        st.up()
        yield st, str(ca_file)


def test_a_client_that_trusts_the_ca_gets_http2_over_tls(tls, settings):
    st, ca_file = tls
    with httpx.Client(http2=True, verify=ssl.create_default_context(cafile=ca_file)) as client:
        r = client.get(f"https://127.0.0.1:{st.tls_port}/healthz")
        assert r.status_code == 200 and r.http_version == "HTTP/2"
        created = client.post(
            f"https://localhost:{st.tls_port}/v1/apps",
            json={"name": "over tls"},
            headers=bearer(settings.admin_token),
        )
        assert created.status_code == 201 and created.http_version == "HTTP/2"


def test_a_client_that_does_not_trust_the_ca_is_refused(tls):
    st, _ = tls
    untrusting = ssl.create_default_context()  # the system's CAs only
    with httpx.Client(verify=untrusting) as client, pytest.raises(httpx.ConnectError):
        client.get(f"https://127.0.0.1:{st.tls_port}/healthz")


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_plain_http_only_redirects(tls, method):
    st, _ = tls
    r = httpx.request(method, f"http://127.0.0.1:{st.nginx_port}/v1/device?x=1")
    assert r.status_code == 308  # keeps the method and the body
    assert r.headers["Location"] == f"https://127.0.0.1:{st.tls_port}/v1/device?x=1"
    assert "X-Pushbox-Instance" not in r.headers  # nginx answered; no API instance saw it


def test_the_console_cookie_is_secure_over_https(tls, settings):
    st, ca_file = tls
    base = f"https://127.0.0.1:{st.tls_port}"
    with httpx.Client(verify=ssl.create_default_context(cafile=ca_file)) as client:
        page = client.get(f"{base}/console/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        r = client.post(f"{base}/console/login", data={"token": settings.admin_token, "csrf": csrf})
        assert r.status_code == 302
        assert "Secure" in r.headers["Set-Cookie"]
