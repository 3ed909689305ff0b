"""Run a stand-in until interrupted, for the demo or a benchmark:

    python -m tests.standins fcm --port 9443 [--dir DIR]
    python -m tests.standins apns --port 9444 [--dir DIR]

Prints one JSON line: its url, the CA file (PUSH_CA_FILE) and the credentials to upload
(a service account key file path, or the APNs key fields). Its recorded requests and
failure injection are at /_standin/requests (/_standin/summary: how many, when),
/_standin/fail and /_standin/reset."""

from __future__ import annotations

import argparse
import json
import signal
import threading
from pathlib import Path

from tests.standins.apns import ApnsStandin
from tests.standins.fcm import FcmStandin
from tests.standins.tls import LocalCA


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.standins")
    parser.add_argument("platform", choices=["fcm", "apns"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--dir", help="where the CA and credentials are written")
    parser.add_argument(
        "--verify-every-token",
        action="store_true",
        help="APNs: check the provider token's signature on every request (default: once)",
    )
    args = parser.parse_args(argv)

    ca = LocalCA(args.dir)
    info: dict[str, object] = {"ca_file": ca.ca_file}
    server: FcmStandin | ApnsStandin
    if args.platform == "fcm":
        server = FcmStandin(ca, host=args.host, port=args.port)
        key_file = Path(ca.dir) / "service-account.json"
        key_file.write_text(json.dumps(server.service_account, indent=2))
        info.update(url=server.url, env="PUSH_FCM_URL", service_account_file=str(key_file))
    else:
        server = ApnsStandin(
            ca, host=args.host, port=args.port, cache_tokens=not args.verify_every_token
        )
        key_file = Path(ca.dir) / "apns-key.p8"
        key_file.write_text(server.private_key)
        creds = server.credentials()
        creds.pop("private_key")
        info.update(url=server.url, env="PUSH_APNS_URL", private_key_file=str(key_file), **creds)

    done = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with server:
        print(json.dumps(info), flush=True)
        done.wait()


if __name__ == "__main__":
    main()
