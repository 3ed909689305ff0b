"""Secrets at rest: private keys (FCM service accounts, APNs .p8 keys) are sealed with
Fernet before they reach MySQL, so a database dump alone does not reveal them.

PUSH_SECRETS_KEY is a comma-separated list of Fernet keys. The first one seals; every
one of them opens. Rotation: prepend a new key, re-seal what is stored (`reseal`), then
drop the old key (docs/wakes.md)."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from pushbox_core.errors import PushboxError


class SealingError(PushboxError):
    """PUSH_SECRETS_KEY is missing or malformed, or a sealed value cannot be opened."""


class SecretsKeyInvalid(SealingError):
    pass


class SealBroken(SealingError):
    """No configured key opens the value: it was sealed with a key since dropped, or
    it was altered."""


def new_key() -> str:
    """A fresh Fernet key (32 random bytes, url-safe base64), as PUSH_SECRETS_KEY takes."""
    return Fernet.generate_key().decode()


class Sealer:
    def __init__(self, secrets_key: str):
        keys = [k.strip() for k in secrets_key.split(",") if k.strip()]
        if not keys:
            raise SecretsKeyInvalid(
                "PUSH_SECRETS_KEY is not set: private keys cannot be stored without it"
                " (make one with: python -c 'from pushbox_core.sealing import new_key;"
                " print(new_key())')"
            )
        fernets = []
        for n, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key))
            except ValueError:
                raise SecretsKeyInvalid(
                    f"PUSH_SECRETS_KEY entry {n} of {len(keys)} is not a Fernet key"
                    " (32 bytes, url-safe base64)"
                ) from None
        self._fernet = MultiFernet(fernets)

    def seal(self, secret: str | bytes) -> str:
        data = secret.encode() if isinstance(secret, str) else secret
        return self._fernet.encrypt(data).decode()

    def open(self, sealed: str) -> bytes:
        try:
            return self._fernet.decrypt(sealed.encode())
        except InvalidToken:
            raise SealBroken(
                "a stored secret cannot be opened with any key in PUSH_SECRETS_KEY"
                " (sealed with a key since removed, or altered)"
            ) from None

    def open_text(self, sealed: str) -> str:
        return self.open(sealed).decode()

    def reseal(self, sealed: str) -> str:
        """The same secret sealed with the first key: step two of a rotation."""
        try:
            return self._fernet.rotate(sealed.encode()).decode()
        except InvalidToken:
            raise SealBroken(
                "a stored secret cannot be re-sealed: no key in PUSH_SECRETS_KEY opens it"
            ) from None


__all__ = ["SealBroken", "Sealer", "SealingError", "SecretsKeyInvalid", "new_key"]
