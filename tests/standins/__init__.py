"""Local stand-ins for FCM and APNs that speak their wire protocols over real TLS, for
tests, the demo and benchmarks. Never imported by the product.

    ca = LocalCA()                          # ca.ca_file is what PUSH_CA_FILE takes
    with FcmStandin(ca) as fcm:             # a background thread; .stop() takes it down
        creds = FcmCredentials.parse(fcm.service_account)
        ... FcmClient(creds, base_url=fcm.url, ca_file=ca.ca_file) ...
        fcm.sends()[0].json()               # what arrived, as bytes (.body) and headers
        fcm.fail(token, 404, "UNREGISTERED")  # the next request for token fails so

From the command line: `python -m tests.standins fcm|apns --port N`. pytest fixtures:
tests/standins/fixtures.py."""

from tests.standins.apns import ApnsStandin
from tests.standins.fcm import FcmStandin
from tests.standins.server import ANY_TOKEN, Received, Standin
from tests.standins.tls import LocalCA

__all__ = ["ANY_TOKEN", "ApnsStandin", "FcmStandin", "LocalCA", "Received", "Standin"]
