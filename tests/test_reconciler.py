"""The reconciler repairs drift between MySQL and RabbitMQ, both ways."""

from __future__ import annotations

import pytest

from device_registry.reconciler import list_device_queues, reconcile
from tests.support import device_session, new_app, register, routes


@pytest.fixture
def run_reconcile(app, settings, names):
    d = app.extensions["pushbox"]

    def run():
        return reconcile(
            store=d.store,
            topology=d.topology,
            names=names,
            settings=settings,
            queues=list_device_queues(settings, names),
        )

    return run


def exists(channel, queue: str) -> bool:
    ch = channel.connection.channel()
    try:
        ch.queue_declare(queue, passive=True)
        ch.close()
        return True
    except Exception:  # noqa: BLE001 - 404 closes the channel
        return False


def test_missing_queue_of_an_active_device_comes_back_with_bindings(
    client, settings, names, rabbit_channel, run_reconcile
):
    shop = new_app(client, settings)
    device_id, _, headers = device_session(client, shop, user_id="fay", topics=["t"])
    for q in names.device_queues(device_id):
        rabbit_channel.queue_delete(q)
    report = run_reconcile()
    assert device_id in report.recreated
    assert all(exists(rabbit_channel, q) for q in names.device_queues(device_id))
    assert routes(rabbit_channel, names.direct_exchange("normal"), f"user.{shop['id']}.fay")
    assert routes(rabbit_channel, names.direct_exchange("high"), f"topic.{shop['id']}.t")
    assert client.get("/v1/device", headers=headers).status_code == 200


def test_expired_queue_marks_the_device_stale(
    client, settings, names, app, rabbit_channel, run_reconcile
):
    shop = new_app(client, settings)
    device_id, _, headers = device_session(client, shop)
    app.extensions["pushbox"].db.execute(
        "UPDATE devices SET last_active_at = UTC_TIMESTAMP(6) - INTERVAL %s SECOND WHERE id = %s",
        (settings.device_queue_expires_s + 60, device_id),
    )
    for q in names.device_queues(device_id):
        rabbit_channel.queue_delete(q)
    report = run_reconcile()
    assert device_id in report.marked_stale
    assert client.get("/v1/device", headers=headers).status_code == 404
    # registering again brings it back, same id, fresh queues
    row = app.extensions["pushbox"].store.device(device_id)
    status, again = register(client, shop, row.installation_id)
    assert status == 200 and again["device_id"] == device_id
    assert all(exists(rabbit_channel, q) for q in names.device_queues(device_id))


def test_queue_without_a_row_is_deleted(settings, names, rabbit_channel, run_reconcile):
    orphan = names.device_queue("987654321", "normal")
    rabbit_channel.queue_declare(orphan, durable=True)
    report = run_reconcile()
    assert report.listed_queues
    assert orphan in report.orphan_queues_deleted
    assert not exists(rabbit_channel, orphan)


def test_abandoned_pending_registration_is_cleaned_up(
    client, settings, names, app, rabbit_channel, run_reconcile
):
    shop = new_app(client, settings)
    d = app.extensions["pushbox"]
    device_id = d.store.insert_pending_device(
        shop["id"],
        "crashed-midway",
        "0" * 64,
        {"platform": "ios", "user_id": None, "locale": None, "app_version": None},
        [],
    )
    rabbit_channel.queue_declare(
        names.device_queue(device_id, "high"), durable=True, arguments=d.topology.queue_arguments()
    )
    d.db.execute(
        "UPDATE devices SET updated_at = UTC_TIMESTAMP(6) - INTERVAL 1 HOUR WHERE id = %s",
        (device_id,),
    )
    report = run_reconcile()
    assert device_id in report.abandoned
    assert d.store.device(device_id).status == "deleted"
    assert not exists(rabbit_channel, names.device_queue(device_id, "high"))
