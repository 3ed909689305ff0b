"""A device's queues and Pushbox's own, as Topology declares them (the lanes' own
behaviour: tests/test_registration.py, tests/test_cluster.py)."""

from __future__ import annotations

import logging
from dataclasses import replace

from device_registry.topology import Topology
from pushbox_core.names import Names
from pushbox_core.rabbit import Rabbit


def test_an_own_queue_declared_before_with_another_type_is_kept_as_it_is(
    settings, rabbit_channel, caplog
):
    # a namespace that ran classic, then PUSH_QUEUE_TYPE=quorum: the workers must still
    # start (a queue cannot change its type in place; the lanes are kept the same way)
    names = Names(settings.namespace + "t", settings.redis_prefix)
    queue = names.wake_queue
    rabbit_channel.queue_declare(queue, durable=True)  # classic, as before
    rabbit = Rabbit(settings.rabbitmq_url, name="test-topology")
    try:
        quorum = Topology(rabbit, names, replace(settings, queue_type="quorum"))
        assert quorum.own_queue_arguments() == {"x-queue-type": "quorum"}
        with caplog.at_level(logging.WARNING):
            quorum.declare_own_queue(queue)
        assert f"queue {queue} kept" in caplog.text
        assert rabbit.queue_depth(queue) == 0  # there, and usable
        classic = Topology(rabbit, names, settings)
        assert classic.own_queue_arguments(**{"x-dead-letter-exchange": "x"}) == {
            "x-dead-letter-exchange": "x"
        }
        classic.declare_own_queue(queue)  # its own arguments: no warning needed
    finally:
        rabbit.close()
        rabbit_channel.queue_delete(queue)
