"""`python -m sdk_stub`: be one phone, or many, against a running Pushbox.

python -m sdk_stub phone --app-key ak_... --state phone.json [--user alice] [--topic deals]
python -m sdk_stub phone --app-key ak_... --state phone.json --stream [--window 100]
python -m sdk_stub simulate --app-key ak_... --devices 100 --seconds 30
python -m sdk_stub events [--namespace push] [--key 'device.*' ...]   # another service
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid

from sdk_stub.client import Phone
from sdk_stub.events import DEFAULT_AMQP_URL, EventListener


def run_phone(args: argparse.Namespace) -> int:
    phone = Phone(
        args.url, args.app_key, state_file=args.state, user_id=args.user, topics=args.topic or None
    )
    phone.open_session()
    print(f"device {phone.device_id}: listening (Ctrl-C to stop)", flush=True)
    deadline = time.monotonic() + args.seconds if args.seconds else None
    if args.stream:
        try:
            code = phone.stream(
                lambda m: print(json.dumps(m), flush=True),
                window=args.window,
                until=lambda: deadline is not None and time.monotonic() >= deadline,
            )
        except KeyboardInterrupt:
            return 0
        if code == 4001:
            print("replaced by another connection of this device", file=sys.stderr)
        return 0
    try:
        while deadline is None or time.monotonic() < deadline:
            for m in phone.sync(wait=args.wait, max=100):
                print(json.dumps(m), flush=True)
    except KeyboardInterrupt:
        pass
    phone.flush_acks()
    return 0


def simulate(args: argparse.Namespace) -> int:
    received = [0] * args.devices
    stop = time.monotonic() + args.seconds
    errors: list[str] = []

    def one(i: int) -> None:
        phone = Phone(
            args.url, args.app_key, user_id=f"sim-{uuid.uuid4().hex[:8]}", topics=args.topic or None
        )
        try:
            phone.open_session()
            while time.monotonic() < stop:
                received[i] += len(phone.sync(wait=min(args.wait, max(stop - time.monotonic(), 0))))
            phone.flush_acks()
        except Exception as e:  # noqa: BLE001 - report and let the others go on
            errors.append(f"phone {i}: {e}")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(args.devices)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"{args.devices} phones, {sum(received)} messages received, {len(errors)} errors")
    for e in errors[:10]:
        print("  " + e)
    return 1 if errors else 0


def print_events(args: argparse.Namespace) -> int:
    listener = EventListener(args.amqp_url, args.namespace, args.key or ["#"])
    print(f"listening on {listener.exchange} ({', '.join(args.key or ['#'])}); Ctrl-C to stop")
    try:
        listener.run(lambda key, event: print(key, json.dumps(event), flush=True))
    except KeyboardInterrupt:
        pass
    finally:
        listener.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sdk_stub",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    phones = argparse.ArgumentParser(add_help=False)
    phones.add_argument("--url", default="http://127.0.0.1:8080")
    phones.add_argument("--app-key", required=True)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("phone", parents=[phones], help="one phone, printing what it receives")
    p.add_argument("--state", help="file keeping its installation id, secret and seen ids")
    p.add_argument("--user")
    p.add_argument("--topic", action="append")
    p.add_argument("--wait", type=float, default=25)
    p.add_argument("--seconds", type=float, default=0, help="stop after this long (0: never)")
    p.add_argument("--stream", action="store_true", help="the live stream, not long polls")
    p.add_argument("--window", type=int, default=100, help="with --stream: unacked in flight")
    s = sub.add_parser("simulate", parents=[phones], help="many phones long-polling at once")
    s.add_argument("--devices", type=int, default=10)
    s.add_argument("--seconds", type=float, default=10)
    s.add_argument("--wait", type=float, default=25)
    s.add_argument("--topic", action="append")
    e = sub.add_parser("events", help="another service: print Pushbox's events as they come")
    e.add_argument("--amqp-url", default=DEFAULT_AMQP_URL)
    e.add_argument("--namespace", default="push", help="PUSH_NAMESPACE of the stack")
    e.add_argument("--key", action="append", help="binding key (default #: every event)")
    args = parser.parse_args(argv)
    commands = {"phone": run_phone, "simulate": simulate, "events": print_events}
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
