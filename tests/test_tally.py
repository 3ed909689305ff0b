"""Sync counters are written in the background, many syncs' worth in one UPDATE."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest

from device_registry.services import add_app
from device_registry.store import Store
from dispatcher import messages
from dispatcher.delivery.tally import Tally
from dispatcher.messages import Content, Target
from dispatcher.notifications import Notifications
from pushbox_core.mysql import Database
from tests.support import eventually
from tests.tcp_proxy import TcpProxy


@dataclass
class Counted:
    notes: Notifications
    app_id: int
    sent: list[messages.Message]

    def counters(self, i: int = 0) -> tuple[int, int]:
        n = self.notes.get(self.app_id, self.sent[i].id)  # type: ignore[arg-type]
        assert n is not None
        return n.acked, n.collapsed


@pytest.fixture
def counted(client, settings) -> Iterator[Counted]:
    """Two notifications recorded in a new app, nothing counted yet."""
    db = Database.from_settings(settings)
    notes = Notifications(db)
    app_id = add_app("tally", store=Store(db)).app.id
    sent = [messages.build("broadcast", Content(title=f"t{i}")) for i in range(2)]
    for m in sent:
        notes.record(app_id, m, Target("app"), 3)
    yield Counted(notes, app_id, sent)
    db.close()


def test_counts_from_many_syncs_land_together_on_flush(counted):
    first, second = (m.id for m in counted.sent)
    tally = Tally(counted.notes, flush_s=3600)  # the writer never wakes: flush by hand
    tally.add({(first, "acked"): 1})
    tally.add({(first, "acked"): 1, (second, "collapsed"): 1})
    tally.add({(first, "acked"): 1, (second, "acked"): 1})
    assert [counted.counters(i) for i in (0, 1)] == [(0, 0), (0, 0)]  # nothing written yet
    tally.flush()
    assert [counted.counters(i) for i in (0, 1)] == [(3, 0), (1, 1)]
    tally.flush()  # nothing pending: nothing counted twice
    assert [counted.counters(i) for i in (0, 1)] == [(3, 0), (1, 1)]


def test_counts_wait_out_a_mysql_outage_and_are_written_once(counted, settings):
    proxy = TcpProxy(settings.mysql_host, settings.mysql_port)
    cut_db = Database.from_settings(replace(settings, mysql_port=proxy.port))
    tally = Tally(Notifications(cut_db), flush_s=3600)
    key = (counted.sent[0].id, "acked")
    tally.add({key: 1})
    tally.flush()  # MySQL answers through the proxy: written
    proxy.cut()
    tally.add({key: 2})
    tally.flush()  # MySQL is unreachable: nothing raised, the counts are kept
    assert counted.counters() == (1, 0)
    proxy.restore()
    tally.flush()
    assert counted.counters() == (3, 0)
    tally.flush()
    assert counted.counters() == (3, 0)
    proxy.close()
    cut_db.close()


def test_a_failing_flush_does_not_stop_the_writer(counted):
    tally = Tally(counted.notes, flush_s=0.05)
    tally.add({(counted.sent[0].id, "no-such-counter"): 1})  # count() raises ValueError
    assert eventually(lambda: not tally._pending, seconds=5)  # the bad flush was tried
    tally.add({(counted.sent[0].id, "acked"): 1})  # the writer is still there to write it
    assert eventually(lambda: counted.counters() == (1, 0), seconds=5)


def test_a_flush_waits_for_the_write_in_progress(counted, settings):
    """A stop's flush that comes while the writer is writing waits for that write (which
    may yet put its counts back), rather than find nothing pending and return at once."""
    first = counted.sent[0].id
    tally = Tally(counted.notes, flush_s=3600)  # the writer never wakes: flush by hand
    tally.add({(first, "acked"): 1})
    locker = Database.from_settings(settings)
    seen: list[tuple[int, int]] = []

    def stop_flush() -> None:
        assert tally.flush()
        seen.append(counted.counters(0))  # what the stop's flush left written

    try:
        with locker.connection() as conn:
            conn.begin()
            with conn.cursor() as cur:  # the writer's UPDATE waits on this row
                cur.execute("SELECT id FROM notifications WHERE id = %s FOR UPDATE", (first,))
            writer = threading.Thread(target=tally.flush)  # as the background writer
            writer.start()
            eventually(lambda: tally.pending() == 0)  # it took them and is writing
            stopping = threading.Thread(target=stop_flush)
            stopping.start()
            time.sleep(0.3)  # (an order, not a measure: the stop's flush is under way)
            conn.rollback()
        writer.join(30)
        stopping.join(30)
    finally:
        locker.close()
    assert seen == [(1, 0)]
