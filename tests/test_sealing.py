"""Private keys sealed at rest with PUSH_SECRETS_KEY (Fernet, MultiFernet for rotation)."""

from __future__ import annotations

import pytest

from pushbox_core.sealing import SealBroken, Sealer, SecretsKeyInvalid, new_key

PEM = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49\n-----END PRIVATE KEY-----\n"


def test_a_sealed_secret_opens_to_the_same_bytes_and_does_not_show_it() -> None:
    sealer = Sealer(new_key())
    sealed = sealer.seal(PEM)
    assert "PRIVATE KEY" not in sealed
    assert sealer.open_text(sealed) == PEM
    assert sealer.seal(PEM) != sealed  # a fresh IV each time


def test_rotation_prepend_a_key_reseal_then_drop_the_old_one() -> None:
    old, new = new_key(), new_key()
    sealed_old = Sealer(old).seal(PEM)

    both = Sealer(f"{new}, {old}")  # step 1: prepend the new key; the old still opens
    assert both.open_text(sealed_old) == PEM
    resealed = both.reseal(sealed_old)  # step 2: re-seal what is stored

    only_new = Sealer(new)  # step 3: drop the old key
    assert only_new.open_text(resealed) == PEM
    with pytest.raises(SealBroken):
        only_new.open(sealed_old)


def test_a_wrong_key_fails_clearly() -> None:
    sealed = Sealer(new_key()).seal(PEM)
    with pytest.raises(SealBroken, match="PUSH_SECRETS_KEY"):
        Sealer(new_key()).open(sealed)
    with pytest.raises(SealBroken):
        Sealer(new_key()).open(sealed[:-4] + "AAAA")


@pytest.mark.parametrize(
    "value, words", [("", "not set"), (" , ", "not set"), ("abc", "entry 1 of 1")]
)
def test_a_missing_or_malformed_secrets_key_is_named(value: str, words: str) -> None:
    with pytest.raises(SecretsKeyInvalid, match=words):
        Sealer(value)


def test_second_malformed_entry_is_named() -> None:
    with pytest.raises(SecretsKeyInvalid, match="entry 2 of 2"):
        Sealer(f"{new_key()},nope")
