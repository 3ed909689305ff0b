"""Random keys, secrets and tokens, and how they are stored (hashed).

Every key is 256 random bits, so a fast hash is the right one: there is nothing to
brute-force, and a slow password hash would only cost throughput.
"""

import hashlib
import secrets


def new_key(prefix: str = "") -> str:
    return prefix + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def same_key(given: str, expected: str) -> bool:
    return secrets.compare_digest(given.encode(), expected.encode())
