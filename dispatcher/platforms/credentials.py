"""An app's settings and its platform credentials: what `GET/PATCH /v1/app` and
`PUT/DELETE /v1/app/credentials/<provider>` do, and how the wake worker opens them.

Credentials are checked for shape when uploaded (CredentialsInvalid: 422 naming the
field); the private part is sealed with PUSH_SECRETS_KEY before it reaches MySQL: for
FCM the whole service-account file, for APNs the .p8 key. What may be shown
(`public`) is stored beside it in clear."""

from __future__ import annotations

import json
from dataclasses import dataclass

from device_registry.store import App, Credential, Store
from dispatcher.platforms.apns import ApnsCredentials
from dispatcher.platforms.fcm import FcmCredentials
from pushbox_core.errors import DependencyDown, NotFound
from pushbox_core.sealing import Sealer

PlatformCredentials = FcmCredentials | ApnsCredentials


@dataclass(frozen=True)
class AppView:
    app: App
    credentials: dict[str, Credential]


def view_app(app_id: str, *, store: Store) -> AppView:
    app = store.app(app_id)
    if app is None:
        raise NotFound("this app no longer exists")
    return AppView(app, store.credentials(app_id))


def change_settings(app_id: str, values: dict, *, store: Store) -> AppView:
    store.update_app_settings(app_id, values)
    return view_app(app_id, store=store)


def put_fcm(app_id: str, service_account: object, *, store: Store, sealer: Sealer | None):
    creds = FcmCredentials.parse(service_account)
    sealed = _sealer(sealer).seal(json.dumps(creds.info))
    store.put_credential(app_id, "fcm", creds.public(), sealed)
    return view_app(app_id, store=store)


def put_apns(app_id: str, body: dict, *, store: Store, sealer: Sealer | None) -> AppView:
    creds = ApnsCredentials.parse(
        body.get("team_id"),
        body.get("key_id"),
        body.get("bundle_id"),
        body.get("private_key"),
        body.get("environment"),
    )
    sealed = _sealer(sealer).seal(creds.private_key)
    store.put_credential(app_id, "apns", creds.public(), sealed)
    return view_app(app_id, store=store)


def delete(app_id: str, provider: str, *, store: Store) -> None:
    store.delete_credential(app_id, provider)


def open_credentials(credential: Credential, sealer: Sealer) -> PlatformCredentials:
    """The stored credentials, ready for a client (they were checked on upload)."""
    secret = sealer.open_text(credential.sealed)
    if credential.provider == "fcm":
        return FcmCredentials.parse(json.loads(secret))
    p = credential.public
    return ApnsCredentials.parse(
        p["team_id"], p["key_id"], p["bundle_id"], secret, p["environment"]
    )


def reseal_all(*, store: Store, sealer: Sealer) -> int:
    """Seal every stored private key again with the first key of PUSH_SECRETS_KEY (step
    two of a rotation, docs/wakes.md); returns how many. Safe to run again."""
    rows = store.all_sealed()
    for app_id, provider, sealed in rows:
        store.replace_sealed(app_id, provider, sealed, sealer.reseal(sealed))
    return len(rows)


def _sealer(sealer: Sealer | None) -> Sealer:
    if sealer is None:
        raise DependencyDown("credential storage", "PUSH_SECRETS_KEY is not set")
    return sealer
