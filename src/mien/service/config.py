"""Settings of the HTTP service (``mien serve``): where data lives, limits, retention, workers."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from mien.live.outbound import OutboundPolicy, parse_allow_list
from mien.options import require_cuda

DEFAULT_RETENTION_S = 24 * 3600
DEFAULT_REVIEW_SESSION_S = 8 * 3600
#: The service's pixel budget (the library's own limit is 100 Mpx); see docs/security.md.
DEFAULT_MAX_PIXELS = 40_000_000
#: The longest duration :func:`parse_duration` accepts (about 10 years; fits a 32-bit column).
MAX_DURATION_S = 3650 * 86400


def default_data_dir() -> Path:
    """``$MIEN_DATA_DIR``, else ``$XDG_DATA_HOME/mien``, else ``~/.local/share/mien``."""
    env = os.environ.get("MIEN_DATA_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "mien"


def parse_duration(text: str) -> int:
    """Seconds from ``"0"``, ``"90"``, ``"90s"``, ``"15m"``, ``"24h"`` or ``"7d"``."""
    t = text.strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    mult = 1
    if t and t[-1] in units:
        mult = units[t[-1]]
        t = t[:-1]
    try:
        value = float(t)
    except ValueError:
        raise ValueError(f"not a duration: {text!r} (use e.g. 0, 90s, 15m, 24h, 7d)") from None
    if not math.isfinite(value) or value * mult > MAX_DURATION_S:
        raise ValueError(f"not a duration: {text!r} (at most {MAX_DURATION_S // 86400} days)")
    if value < 0:
        raise ValueError(f"a duration cannot be negative: {text!r}")
    return round(value * mult)


@dataclass(frozen=True)
class ServiceConfig:
    """Everything the app, its worker processes and the purger need (picklable).

    * ``data_dir``: the SQLite file (unless ``db_url`` is given) and uploaded media live here.
    * ``db_url``: SQLAlchemy URL; ``postgresql://...`` uses PostgreSQL (through psycopg 3).
    * ``workers``: job worker processes (0: jobs stay queued; used by tests of the API alone).
    * ``max_upload_bytes``: largest request body accepted (413 ``ImageTooLarge`` above it).
    * ``max_jobs_per_key``: queued + running jobs one key may have (429 ``TooManyJobs``).
    * ``retention_s``: default retention of uploaded media after a job ends (0: deleted as soon
      as each file is analysed); a job may ask for less, never for more.
    * ``job_lease_s``: a running job whose worker has not sent a heartbeat for this long is
      taken over by another worker (after a crash or a restart).
    * ``max_attempts``: a job is marked failed after this many interrupted runs.
    * ``purge_interval_s``: how often the retention purger runs.
    * ``max_concurrent_analyses``: synchronous analyses (``/v1/faces:analyze``, ``/v1/redact``)
      run at once, each in a process of its own; more requests wait their turn (0: the number
      of CPU cores).
    * ``review_session_s``: how long a review-page sign-in lasts (then the reviewer signs in
      again).
    * ``allow_stream_hosts``: the outbound allow list of stream jobs: CIDR networks, addresses
      and host names (each optionally ``:PORT``; ``*.domain`` for every name under it) that
      a stream job may open although they are loopback, private, link-local... (refused by
      default; see :mod:`mien.live.outbound` and docs/security.md). Public addresses are
      always allowed.
    * ``queue_limit``: synchronous requests that may wait for a free analysis slot; one more is
      answered 503 ``Overloaded`` with ``Retry-After`` (None: 4 per slot; 0: none wait).
    * ``request_time_s``: time budget of one synchronous analysis, from the moment it gets a
      slot; its process is stopped when the budget runs out (503 ``TimeBudgetExceeded``).
    * ``max_pixels``: largest picture (width x height, from its header, before decoding) that
      the service analyses or redacts, in requests and in image jobs (413 ``ImageTooLarge``).
    * ``callback_url``: where the webhooks of a job that names no ``callback_url`` go (None:
      nowhere); checked against the outbound policy like a job's own (:mod:`.webhooks`).
    * ``webhook_tries``: attempts of one webhook delivery before it is given up ("failed").
    * ``webhook_backoff_s``: the wait before the second attempt; each later wait is 3 times
      longer, +-20 % jitter (30 s and 6 tries: about an hour in all).
    * ``webhook_timeout_s``: the time one attempt may take to connect, send and get an answer.
    """

    data_dir: Path = field(default_factory=default_data_dir)
    db_url: str | None = None
    workers: int = 1
    max_upload_bytes: int = 64 * 1024 * 1024
    max_jobs_per_key: int = 4
    max_items_per_job: int = 1000
    retention_s: int = DEFAULT_RETENTION_S
    job_lease_s: float = 30.0
    heartbeat_s: float = 2.0
    max_attempts: int = 3
    purge_interval_s: float = 60.0
    poll_s: float = 0.5
    num_threads: int = 0
    device: str = "cpu"
    max_concurrent_analyses: int = 0
    review_session_s: int = DEFAULT_REVIEW_SESSION_S
    allow_stream_hosts: tuple[str, ...] = ()
    queue_limit: int | None = None
    request_time_s: float = 60.0
    max_pixels: int = DEFAULT_MAX_PIXELS
    callback_url: str | None = None
    webhook_tries: int = 6
    webhook_backoff_s: float = 30.0
    webhook_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir).expanduser())
        if isinstance(self.allow_stream_hosts, str):
            raise ValueError("allow_stream_hosts is a list of entries, not one string")
        allow = tuple(e.text for e in parse_allow_list(self.allow_stream_hosts))
        object.__setattr__(self, "allow_stream_hosts", allow)
        if self.workers < 0:
            raise ValueError("workers must be >= 0")
        if self.max_upload_bytes < 1 or self.max_jobs_per_key < 1 or self.max_items_per_job < 1:
            raise ValueError("limits must be >= 1")
        if self.max_concurrent_analyses < 0:
            raise ValueError("max_concurrent_analyses must be >= 0")
        if self.review_session_s < 1:
            raise ValueError("the review session must last at least 1 s")
        if self.queue_limit is not None and self.queue_limit < 0:
            raise ValueError("queue_limit must be >= 0")
        if not self.request_time_s > 0:
            raise ValueError("request_time_s must be > 0")
        if self.max_pixels < 1:
            raise ValueError("max_pixels must be >= 1")
        if self.retention_s < 0:
            raise ValueError("retention must be >= 0")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device must be cpu or cuda, got {self.device!r}")
        if self.device == "cuda":  # no usable CUDA provider: DeviceUnavailable, at start-up
            require_cuda()
        if self.webhook_tries < 1:
            raise ValueError("webhook_tries must be >= 1")
        if not (self.webhook_backoff_s > 0 and 0 < self.webhook_timeout_s <= 60):
            raise ValueError("the webhook backoff must be > 0 and the timeout in (0, 60] s")
        if self.heartbeat_s <= 0 or self.job_lease_s <= self.heartbeat_s:
            raise ValueError("the job lease must be longer than the heartbeat interval")

    @property
    def database_url(self) -> str:
        if self.db_url:
            url = self.db_url
            if url.startswith("postgresql://"):  # use psycopg 3, which is what we install
                url = "postgresql+psycopg://" + url[len("postgresql://") :]
            elif url.startswith("postgres://"):
                url = "postgresql+psycopg://" + url[len("postgres://") :]
            return url
        return f"sqlite:///{self.data_dir / 'mien.db'}"

    def outbound_policy(self) -> OutboundPolicy:
        """The policy stream jobs and webhooks open their addresses under."""
        return OutboundPolicy.from_entries(self.allow_stream_hosts)

    @property
    def analysis_slots(self) -> int:
        return self.max_concurrent_analyses or os.cpu_count() or 1

    @property
    def wait_queue(self) -> int:
        return 4 * self.analysis_slots if self.queue_limit is None else self.queue_limit

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"
