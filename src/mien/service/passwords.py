"""Reviewer passwords and one-time sign-in links: how they are hashed, checked and throttled.

* Passwords: ``hashlib.scrypt`` (n=2**14, r=8, p=1: 16 MiB and some 50 ms per check) with a
  random 16-byte salt per account, stored as ``scrypt$n$r$p$salt$hash`` (hex) and compared in
  constant time. A name that has no account costs the same check (against a fixed dummy hash),
  so the answer time does not tell which names exist.
* Links: a random 256-bit token; the store keeps its SHA-256 only.
* Cost: at most :data:`PARALLEL_CHECKS` password checks run at once (others wait up to
  :data:`WAIT_S`, then are refused), and each client address may fail :data:`ADDRESS_FAILURES`
  sign-ins per :data:`ADDRESS_WINDOW_S`; the account lock (:data:`ACCOUNT_FAILURES` failures in
  a row lock it for :data:`LOCK_S`) lives in the store.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque

N, R, P = 2**14, 8, 1
_DKLEN = 32
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
LINK_TTL_S = 15 * 60
ACCOUNT_FAILURES = 5
LOCK_S = 15 * 60
ADDRESS_FAILURES = 20
ADDRESS_WINDOW_S = 5 * 60
#: Client addresses whose failures are remembered (the least recently failing go first).
ADDRESS_TABLE = 10_000
PARALLEL_CHECKS = 2
WAIT_S = 5.0


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, dklen=_DKLEN, maxmem=64 * 1024 * 1024
    )


def password_problem(password: str) -> str | None:
    """Why ``password`` cannot be an account's password, or None."""
    if len(password) < MIN_PASSWORD:
        return f"a password needs at least {MIN_PASSWORD} characters"
    if len(password) > MAX_PASSWORD:
        return f"a password has at most {MAX_PASSWORD} characters"
    if "\x00" in password:
        return "a password may not hold a NUL character"
    return None


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = _derive(password, salt, N, R, P)
    return f"scrypt${N}${R}${P}${salt.hex()}${digest.hex()}"


_DUMMY = hash_password(secrets.token_urlsafe(16))


def verify_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches ``stored`` (an account without a password, or a stored
    value that is not ours, never matches, after the same amount of work)."""
    if len(password) > MAX_PASSWORD:
        return False
    try:
        kind, n, r, p, salt, digest = (stored or _DUMMY).split("$")
        params = (int(n), int(r), int(p))
        salt_bytes, expected = bytes.fromhex(salt), bytes.fromhex(digest)
    except ValueError:
        kind, params, salt_bytes, expected = "", (N, R, P), b"", b""
    if kind != "scrypt" or params != (N, R, P):
        _derive(password, b"\0" * 16, N, R, P)
        return False
    ok = hmac.compare_digest(_derive(password, salt_bytes, *params), expected)
    return ok and stored is not None


def new_link_token() -> tuple[str, str]:
    """A one-time sign-in token and the hash the store keeps of it."""
    token = secrets.token_urlsafe(32)
    return token, token_hash(token)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SignInGuard:
    """Bounds the cost of password sign-ins: a few checks at once, and a window of failures
    per client address (in this process; the account lock is in the store)."""

    def __init__(self) -> None:
        self._checks = threading.BoundedSemaphore(PARALLEL_CHECKS)
        self._lock = threading.Lock()
        self._failures: dict[str, deque[float]] = {}

    def blocked(self, address: str) -> bool:
        """Whether ``address`` failed too often in the last window."""
        cutoff = time.monotonic() - ADDRESS_WINDOW_S
        with self._lock:
            seen = self._failures.get(address)
            while seen and seen[0] < cutoff:
                seen.popleft()
            return bool(seen) and len(seen or ()) >= ADDRESS_FAILURES

    def failed(self, address: str) -> None:
        """Count a failed sign-in of ``address``. At most :data:`ADDRESS_TABLE` addresses are
        kept: past that, those whose last failure is oldest are forgotten first, so addresses
        sprayed to fill the table cannot reset the count of one that is failing now."""
        now = time.monotonic()
        with self._lock:
            seen = self._failures.pop(address, None) or deque(maxlen=ADDRESS_FAILURES)
            seen.append(now)
            self._failures[address] = seen  # last in the dict: the most recent failure
            while len(self._failures) > ADDRESS_TABLE:
                del self._failures[next(iter(self._failures))]

    def check(self, password: str, stored: str | None) -> bool | None:
        """:func:`verify_password`, or None when too many checks are running already."""
        if not self._checks.acquire(timeout=WAIT_S):
            return None
        try:
            return verify_password(password, stored)
        finally:
            self._checks.release()
