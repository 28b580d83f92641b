"""API keys: ``mien_<id>_<secret>``, shown once, stored as the SHA-256 of the secret.

The secret has 256 bits of entropy, so a plain SHA-256 (compared in constant time) is enough:
there is nothing to brute-force that a slow password hash would protect.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from mien.service.store import Store
from mien.service.webhooks import key_secret

PREFIX = "mien_"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(store: Store, name: str = "") -> tuple[str, str]:
    """Create a key; returns ``(key_id, full_key)``. The full key is not stored anywhere."""
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    store.add_key(key_id, name, _hash(secret))
    key_secret(store, key_id)  # the key's webhook signing secret (mien keys webhook-secret)
    return key_id, f"{PREFIX}{key_id}_{secret}"


def verify_key(store: Store, presented: str) -> str | None:
    """The key id when ``presented`` is a valid, unrevoked key, else None."""
    if not presented.startswith(PREFIX):
        return None
    key_id, sep, secret = presented[len(PREFIX) :].partition("_")
    if not sep or not key_id or not secret or len(key_id) > 32:
        return None
    row = store.get_key(key_id)
    if row is None or row["revoked_at"] is not None:
        return None
    return key_id if hmac.compare_digest(row["secret_hash"], _hash(secret)) else None
