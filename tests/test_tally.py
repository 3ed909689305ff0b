"""Sync counters are written in the background, many syncs' worth in one UPDATE."""

from __future__ import annotations

from device_registry.services import create_app
from device_registry.store import Store
from dispatcher import messages
from dispatcher.messages import Content, Target
from dispatcher.notifications import Notifications, Tally
from pushbox_core.mysql import Database


def test_counts_from_many_syncs_land_together_on_flush(client, settings):
    db = Database.from_settings(settings)
    notes = Notifications(db)
    app_id = create_app("tally", store=Store(db)).app.id
    sent = [messages.build("broadcast", Content(title=f"t{i}")) for i in range(2)]
    for m in sent:
        notes.record(app_id, m, Target("app"), 3)
    tally = Tally(notes, flush_s=3600)  # the writer never wakes: flush by hand
    tally.add({(sent[0].id, "acked"): 1})
    tally.add({(sent[0].id, "acked"): 1, (sent[1].id, "collapsed"): 1})
    tally.add({(sent[0].id, "acked"): 1, (sent[1].id, "acked"): 1})

    def counters(m: messages.Message) -> tuple[int, int]:
        n = notes.get(app_id, m.id)
        assert n is not None
        return n.acked, n.collapsed

    assert [counters(m) for m in sent] == [(0, 0), (0, 0)]  # nothing written yet
    tally.flush()
    assert [counters(m) for m in sent] == [(3, 0), (1, 1)]
    tally.flush()  # nothing pending: nothing counted twice
    assert [counters(m) for m in sent] == [(3, 0), (1, 1)]
    db.close()
