"""`python -m device_registry reconcile`: repair drift between MySQL and RabbitMQ."""

from __future__ import annotations

import argparse
import logging
import sys

from device_registry.reconciler import list_device_queues, reconcile
from dispatcher.bootstrap import bootstrap
from pushbox_core.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m device_registry")
    parser.add_argument("command", choices=["reconcile"])
    parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    pushbox = bootstrap(settings, role="reconciler")
    try:
        report = reconcile(
            store=pushbox.store,
            topology=pushbox.topology,
            names=pushbox.names,
            settings=settings,
            queues=list_device_queues(settings, pushbox.names),
        )
    finally:
        pushbox.close()
    print(f"reconcile: {report.summary()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
