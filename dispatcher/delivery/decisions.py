"""What a read of a device's mailbox decides, as pure functions over plain values.

A sync (and a stream) takes messages off a device's lanes and must then decide which
of them to give the device, which to ack without giving (expired, collapsed, copies of
one id), and how to ack delivery tags in as few frames as is safe. Nothing here talks
to the broker: `mailbox.py` does what these functions decide.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class Taken:
    """A message as delivered to us."""

    id: str
    lane: str
    tag: int
    redelivered: bool
    body: bytes
    collapse_key: str | None
    created_ms: int
    expires_ms: int | None

    def wire(self) -> bytes:
        """The stored JSON with `redelivered` added, without decoding it."""
        flag = b"true" if self.redelivered else b"false"
        return self.body[:-1] + b',"redelivered":' + flag + b"}"


@dataclass
class Settlement:
    """What a read acks on the broker without returning it, by counter, and the tags."""

    acked: list[Taken] = field(default_factory=list)  # the device acked them
    expired: list[Taken] = field(default_factory=list)
    collapsed: list[Taken] = field(default_factory=list)  # an older one of a collapse key
    copies: list[Taken] = field(default_factory=list)  # a second copy of one id
    done: int = 0  # of `acked`, the first ones acked and counted already (see settle_early)

    def settle_early(self) -> tuple[list[int], list[str]]:
        """The tags and ids acked so far, to ack and count before reading on; later
        calls of tags() and counts() leave them out."""
        early = self.acked[self.done :]
        self.done = len(self.acked)
        return [t.tag for t in early], list(dict.fromkeys(t.id for t in early))

    def tags(self) -> list[int]:
        """Every tag still to ack."""
        rest = self.acked[self.done :] + self.expired + self.collapsed + self.copies
        return [t.tag for t in rest]

    def counts(self) -> dict[str, list[str]]:
        """What the notification counters still get, by counter: an acked id once (and
        not again if it was counted early); copies count nothing."""
        early = {t.id for t in self.acked[: self.done]}
        late = dict.fromkeys(t.id for t in self.acked[self.done :] if t.id not in early)
        return {
            "acked": list(late),
            "expired": [t.id for t in self.expired],
            "collapsed": [t.id for t in self.collapsed],
        }


def split_held(held: list[Taken], ack: set[str]) -> tuple[list[Taken], list[Taken], set[str]]:
    """Messages given to the device before: (acked now, still held, marked redelivered
    since the device has seen them; ack ids that matched nothing held here)."""
    acked, kept = [], []
    for t in held:
        if t.id in ack:
            acked.append(t)
        else:
            t.redelivered = True
            kept.append(t)
    return acked, kept, ack - {t.id for t in acked}


def take_fresh(
    ahead: list[Taken], unknown: set[str], want: int
) -> tuple[list[Taken], list[Taken], list[Taken]]:
    """From the head of a lane: (acked: ids the device acked that another process gave
    it, found here; fresh: up to `want` others to return; rest: stays ahead, in order).
    Ids found are removed from `unknown`."""
    acked: list[Taken] = []
    fresh: list[Taken] = []
    rest: list[Taken] = []
    for t in ahead:
        if t.id in unknown:
            acked.append(t)
            unknown.discard(t.id)
        elif len(fresh) < want:
            fresh.append(t)
        else:
            rest.append(t)
    return acked, fresh, rest


def screen(taken: Iterable[Taken], now_ms: int, seen: set[str], settled: Settlement) -> list[Taken]:
    """Drop what must never reach the device, in order: a second copy of an id (a send
    whose confirm was lost went again under its id) and expired messages; both go to
    `settled`. `seen`: ids already acked or returned (grows as it goes)."""
    live = []
    for t in taken:
        if t.id in seen:
            settled.copies.append(t)
        elif t.expires_ms is not None and t.expires_ms <= now_ms:
            settled.expired.append(t)
        else:
            live.append(t)
        seen.add(t.id)
    return live


def collapse(live: list[Taken], settled: Settlement) -> list[Taken]:
    """Of the messages with one collapse key, keep the newest (by creation, then by
    arrival); older ones the device has not been given go to `settled`. One it was given
    before (redelivered) stays: the app has it already, so dropping it hides nothing."""
    newest: dict[str, Taken] = {}
    for t in live:
        if t.collapse_key:
            seen = newest.get(t.collapse_key)
            if seen is None or (t.created_ms, t.tag) > (seen.created_ms, seen.tag):
                newest[t.collapse_key] = t
    kept = []
    for t in live:
        if t.collapse_key and newest[t.collapse_key] is not t and not t.redelivered:
            settled.collapsed.append(t)
        else:
            kept.append(t)
    return kept


def decide(lanes: list[list[Taken]], now_ms: int, settled: Settlement) -> list[Taken]:
    """The messages to give the device, lanes in reading order (high first): copies and
    expired ones screened out, then collapsed."""
    seen = {t.id for t in settled.acked}
    live = screen((t for lane in lanes for t in lane), now_ms, seen, settled)
    return collapse(live, settled)


@dataclass
class AckFrames:
    """Acks to send: one `multiple` frame up to `multiple_to` (0: none), then singles."""

    multiple_to: int
    singles: list[int]
    floor: int  # every tag up to it is acked afterwards
    above: set[int]  # tags past the floor acked one by one, afterwards


def ack_frames(tags: Iterable[int], floor: int = 0, above: Iterable[int] = ()) -> AckFrames:
    """Ack delivery tags in as few frames as is safe.

    Tags on a channel count up by one with every delivery (consumed or got). `floor`:
    every tag up to it is acked; `above`: tags past it acked one by one before. One
    `multiple` frame covers the run of tags from floor + 1 that are all acked now or
    before, up to the last one acked now; a tag missing from the run is a delivery this
    process has not seen (pika may hold it undispatched while a basic.get waits), which
    `multiple` would ack unseen, so the run stops there and the rest go one by one."""
    to_ack = set(tags)
    done = set(above)
    end = run = floor
    while run + 1 in to_ack or run + 1 in done:
        run += 1
        if run in to_ack:
            end = run
    singles = sorted(t for t in to_ack if t > end)
    # what is acked afterwards: the floor climbs over every run now complete
    after = {t for t in done | to_ack if t > end}
    new_floor = end
    while new_floor + 1 in after:
        new_floor += 1
        after.discard(new_floor)
    return AckFrames(end if end > floor else 0, singles, new_floor, after)
