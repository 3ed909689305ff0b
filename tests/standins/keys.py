"""Test credentials, made fresh with `cryptography`: a Google service account key file
(RSA) and an APNs .p8 key (P-256)."""

from __future__ import annotations

import secrets

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa


def _pkcs8_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def make_service_account(
    token_uri: str, project_id: str = "pushbox-test"
) -> tuple[dict, rsa.RSAPublicKey]:
    """A key file shaped as the one Google issues, and the public key that checks it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    email = f"firebase-adminsdk@{project_id}.iam.gserviceaccount.com"
    info = {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": secrets.token_hex(20),
        "private_key": _pkcs8_pem(key),
        "client_email": email,
        "client_id": str(secrets.randbelow(10**20)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": f"https://www.googleapis.com/robot/v1/metadata/x509/{email}",
        "universe_domain": "googleapis.com",
    }
    return info, key.public_key()


def make_apns_key() -> tuple[str, ec.EllipticCurvePublicKey]:
    """A .p8 PEM as Apple issues (PKCS#8, P-256), and its public key."""
    key = ec.generate_private_key(ec.SECP256R1())
    return _pkcs8_pem(key), key.public_key()


__all__ = ["make_apns_key", "make_service_account"]
