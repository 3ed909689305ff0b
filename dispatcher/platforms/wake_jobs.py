"""Wake jobs: what the send path hands the wake worker, through a durable RabbitMQ
queue, so that an API request never waits on Google or Apple.

One job a send (not a device): the message as a platform push would show it, and
which devices to wake (the ids a notification reached that have a push token, or the
whole app for a broadcast). The worker decides per device, just before sending, whether
it is connected and whether to push (dispatcher/platforms/wake_worker.py)."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass

from dispatcher.messages import Content, Message
from pushbox_core.errors import PushboxError
from pushbox_core.names import Names
from pushbox_core.rabbit import Outgoing, Rabbit

log = logging.getLogger(__name__)

WAKE_MODES = ("alert", "silent", "none")


def wake_mode(content: Content) -> str:
    """alert | silent | none: as asked, else alert when there is something to show."""
    if content.wake:
        return content.wake
    return "alert" if (content.title or content.body) else "silent"


@dataclass(frozen=True)
class WakeJob:
    app_id: str
    message_id: str
    kind: str  # broadcast | notification
    mode: str  # alert | silent
    title: str | None
    body: str | None
    data: dict | None
    collapse_key: str | None
    created_ms: int  # a broadcast wakes the devices registered by then
    expires_ms: int  # no push for a message that expired meanwhile
    device_ids: list[str] | None  # None: every device of the app with a push token

    @classmethod
    def of(cls, app_id: str, message: Message, mode: str, device_ids: list[str] | None):
        return cls(
            app_id=app_id,
            message_id=message.id,
            kind=message.kind,
            mode=mode,
            title=message.title,
            body=message.body,
            data=message.data,
            collapse_key=message.collapse_key,
            created_ms=int(message.headers()["created_ms"]),
            expires_ms=int(message.headers()["expires_ms"]),
            device_ids=device_ids,
        )

    def encode(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def decode(cls, body: bytes) -> WakeJob:
        data = json.loads(body)
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})


class WakeQueue:
    """The send side: publishes a job (persistent, confirmed) to `<ns>.wakes`."""

    def __init__(self, rabbit: Rabbit, names: Names):
        self.rabbit = rabbit
        self.names = names

    def request(self, job: WakeJob) -> None:
        """Best effort: the message is in the device's queue already, so a job that
        can't be queued costs a wake-up, never a message (it is logged)."""
        try:
            self.rabbit.publish(
                "",
                self.names.wake_queue,
                job.encode(),
                message_id=f"wake-{job.message_id}",
                mandatory=True,
            )
        except PushboxError as e:
            log.warning("no platform wake for %s: could not queue it (%s)", job.message_id, e)

    def request_many(self, jobs: list[WakeJob]) -> None:
        """As request(), with every job's confirm in flight at once (a batch of sends)."""
        outgoing = [
            Outgoing("", self.names.wake_queue, job.encode(), f"wake-{job.message_id}")
            for job in jobs
        ]
        for job, error in zip(jobs, self.rabbit.publish_many(outgoing), strict=True):
            if error is not None:
                log.warning(
                    "no platform wake for %s: could not queue it (%s)", job.message_id, error
                )
