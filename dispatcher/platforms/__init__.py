"""Waking apps in the background through FCM (HTTP v1) and APNs (HTTP/2, token auth).

Building blocks, no queue or database of their own: the wake worker builds a `Push`,
picks the app's client and calls `deliver(client, push)`, then acts on the `Outcome`
(DESIGN, "Waking apps in the background"; docs/wakes.md)."""

from dispatcher.platforms.apns import ApnsClient, ApnsCredentials
from dispatcher.platforms.delivery import deliver
from dispatcher.platforms.fcm import FcmClient, FcmCredentials
from dispatcher.platforms.push import CredentialsInvalid, Outcome, PlatformClient, Push

__all__ = [
    "ApnsClient",
    "ApnsCredentials",
    "CredentialsInvalid",
    "FcmClient",
    "FcmCredentials",
    "Outcome",
    "PlatformClient",
    "Push",
    "deliver",
]
