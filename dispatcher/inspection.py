"""What an operator looks at (the web console): apps, an app's devices with their
queues, presence and push token, and its latest notifications with their counters.
Reads only; sending and creating go through the same services as the API."""

from __future__ import annotations

from dataclasses import dataclass

from device_registry.sessions import Presence
from device_registry.store import App, Device
from dispatcher.bootstrap import Pushbox
from dispatcher.notifications import Notification
from pushbox_core.errors import DeviceNotFound, NotFound

RECENT_NOTIFICATIONS = 20


@dataclass(frozen=True)
class DeviceState:
    device: Device
    lanes: dict[str, int | None]  # messages ready in each lane; None: the queue is gone
    presence: Presence
    connected: bool  # waiting in a sync or streaming, on any instance


def apps(*, pb: Pushbox) -> list[App]:
    return pb.store.apps()


def app(app_id: str, *, pb: Pushbox) -> App:
    found = pb.store.app(app_id) if app_id.isdigit() else None
    if found is None:
        raise NotFound(f"no app {app_id!r}")
    return found


def find_devices(app_id: str, text: str, *, pb: Pushbox) -> list[Device]:
    """By device id, installation id or user id."""
    text = text.strip()
    return pb.store.find_devices(app_id, text) if text else []


def device_state(app_id: str, device_id: str, *, pb: Pushbox) -> DeviceState:
    device = pb.store.device(device_id)
    if device is None or device.app_id != app_id:
        raise DeviceNotFound(f"no device {device_id!r} in this app")
    return DeviceState(
        device,
        pb.topology.depths(device.id),
        pb.sessions.presence(device.id),
        bool(pb.delivery.connections.connected([device.id])),
    )


def recent_notifications(app_id: str, *, pb: Pushbox) -> list[Notification]:
    return pb.notifications.recent(app_id, RECENT_NOTIFICATIONS)
