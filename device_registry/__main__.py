"""`python -m device_registry reconcile`: repair drift between MySQL and RabbitMQ."""

from __future__ import annotations

import argparse
import logging
import sys

from device_registry.reconciler import list_device_queues, reconcile
from device_registry.store import Store
from device_registry.topology import Topology
from pushbox_core.mysql import Database
from pushbox_core.names import Names
from pushbox_core.rabbit import Rabbit
from pushbox_core.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m device_registry")
    parser.add_argument("command", choices=["reconcile"])
    parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    names = Names(settings.namespace, settings.redis_prefix)
    rabbit = Rabbit(settings.rabbitmq_url, name="pushbox-reconciler")
    store = Store(Database.from_settings(settings))
    topology = Topology(rabbit, names, settings)
    report = reconcile(
        store=store,
        topology=topology,
        names=names,
        settings=settings,
        queues=list_device_queues(settings, names),
    )
    print(f"reconcile: {report.summary()}")
    rabbit.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
