"""The webhook sender: a thread of the server process that POSTs the pending deliveries
:func:`mien.service.webhooks.emit` recorded.

Each attempt runs on a thread of its own (at most :data:`SENDERS` at once), so one slow or
hanging receiver holds one thread for at most the timeout and never the others (and never a
job: jobs only record rows). An attempt resolves the callback host under the outbound policy
and connects to a checked address (no DNS rebinding between check and connection), sends the
signed body, reads at most :data:`MAX_RESPONSE` bytes of the answer and follows no redirect.
A 2xx answer delivers it; anything else is tried again after
``webhook_backoff_s * 3**(n-1)`` (+-20 % jitter) until ``webhook_tries`` attempts, then the
delivery is marked ``failed`` and logged as an error.

A delivery is held by the sender that claimed it for a while longer than an attempt can take;
when the server dies mid-attempt, the next server takes it up once that hold runs out. Every
thread is a daemon (it ends with the process); :meth:`WebhookSender.stop` ends the claiming
with the app, and an attempt still in flight ends within its timeout.
"""

from __future__ import annotations

import http.client
import logging
import random
import ssl
import threading
import time
from urllib.parse import urlsplit

from mien.live.outbound import OutboundPolicy, OutboundRefused
from mien.service.config import ServiceConfig
from mien.service.rows import ClaimedDelivery
from mien.service.store import Store
from mien.service.webhooks import claim_due, key_secret, record_attempt, signature_header

log = logging.getLogger("mien.service.webhooks")

#: The most of a receiver's answer that is read (and then dropped).
MAX_RESPONSE = 64 * 1024
#: Attempts in flight at once.
SENDERS = 4
USER_AGENT = "mien-webhooks/1"


def backoff(config: ServiceConfig, attempts: int, rng: random.Random | None = None) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt."""
    jitter = (rng or random).uniform(0.8, 1.2)
    return float(config.webhook_backoff_s * 3 ** max(attempts - 1, 0) * jitter)


def post(
    url: str, body: bytes, headers: dict[str, str], policy: OutboundPolicy, timeout: float
) -> int:
    """POST ``body`` to ``url`` through ``policy``; the answer's status code. OSError (and
    OutboundRefused, ssl and http.client errors) when it cannot be sent."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    sock = policy.connect(host, port, timeout)
    try:
        if https:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        conn.sock = sock  # already connected to a checked address: never resolved again
        netloc = parts.netloc.rpartition("@")[2]
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request("POST", target, body, {"Host": netloc, **headers})
        response = conn.getresponse()
        response.read(MAX_RESPONSE)
        return int(response.status)
    finally:
        sock.close()


class WebhookSender:
    """Delivers the store's pending webhooks while the app runs (see the module docs)."""

    def __init__(self, config: ServiceConfig, store: Store) -> None:
        self.config = config
        self.store = store
        self.policy = config.outbound_policy()
        self.stopping = threading.Event()
        self._busy = threading.Semaphore(SENDERS)
        self._thread = threading.Thread(target=self._run, daemon=True, name="webhook-sender")
        #: how long a claimed delivery is held: the attempt's time limits (connect, send,
        #: answer) and a margin
        self.hold_s = config.webhook_timeout_s * 4 + 5

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self.stopping.wait(self.config.poll_s):
            try:
                self._dispatch()
            except Exception:  # the store is down for a moment: say so, try again next poll
                log.exception("webhook sender: could not read the pending deliveries")

    def _dispatch(self) -> None:
        free = 0
        while self._busy.acquire(blocking=False):
            free += 1
        if free == 0:
            return
        rows = claim_due(self.store, free, self.hold_s) if not self.store.fault() else []
        for _ in range(free - len(rows)):
            self._busy.release()
        for row in rows:  # each attempt on a daemon thread of its own: it dies with the process
            threading.Thread(target=self._attempt, args=(row,), daemon=True, name="webhook").start()

    def _attempt(self, row: ClaimedDelivery) -> None:
        try:
            self._deliver(row)
        except Exception:
            log.exception("webhook %s: the attempt could not be recorded", row.event_id)
        finally:
            self._busy.release()

    def _deliver(self, row: ClaimedDelivery) -> None:
        body = str(row.body).encode()
        # a key made before webhooks existed gets its secret now
        secret = row.webhook_secret or key_secret(self.store, str(row.key_id)) or ""
        now = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Mien-Webhook-Id": str(row.event_id),
            "Mien-Webhook-Timestamp": str(now),
            "Mien-Signature": signature_header(str(secret), now, body),
        }
        code: int | None = None
        error: str | None = None
        try:
            code = post(str(row.url), body, headers, self.policy, self.config.webhook_timeout_s)
            if not 200 <= code < 300:
                error = f"the receiver answered {code}" + (
                    " (redirects are not followed)" if 300 <= code < 400 else ""
                )
        except OutboundRefused as exc:
            error = f"refused by the outbound policy: {exc.reason}"
        except (OSError, http.client.HTTPException, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        attempts = int(row.attempts)
        retry = error is not None and attempts < self.config.webhook_tries
        next_try = time.time() + backoff(self.config, attempts) if retry else None
        record_attempt(self.store, int(row.id), status_code=code, error=error, next_try_at=next_try)
        if error is not None and not retry:
            log.error(
                "webhook %s (%s of job %s) to %s failed for good after %d attempts: %s",
                row.event_id,
                row.event,
                row.job_id,
                _shown(str(row.url)),
                attempts,
                error,
            )
        elif error is not None:
            log.warning("webhook %s attempt %d failed: %s", row.event_id, attempts, error)


def _shown(url: str) -> str:
    """The URL without its query (which may hold a token) for the log."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
