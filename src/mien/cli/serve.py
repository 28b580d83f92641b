"""``mien serve``: the HTTP service (FastAPI on uvicorn); SQLite by default, or PostgreSQL."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any

from mien.cli.common import EXIT_CANNOT_RUN, EXIT_OK, device_arg


def store_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        help="where the SQLite store and uploads live (default: $MIEN_DATA_DIR or "
        "~/.local/share/mien)",
    )
    p.add_argument(
        "--db",
        metavar="URL",
        help="database URL instead of SQLite, e.g. postgresql://user@host/mien",
    )


def register(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="run the HTTP service (photos, redaction, jobs, review page)",
        description="Run the HTTP API. Every route except /health needs an API key "
        "(mien keys create). Binds to 127.0.0.1 unless --host says otherwise.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    store_args(p)
    p.add_argument("--workers", type=int, default=1, help="job worker processes (default 1)")
    p.add_argument(
        "--retention",
        default="24h",
        help="keep uploaded media this long after a job ends; 0 = delete each upload as soon "
        "as it is analysed (default 24h; jobs may ask for less)",
    )
    p.add_argument(
        "--max-upload-mb", type=float, default=64.0, help="largest request body (default 64)"
    )
    p.add_argument(
        "--max-jobs-per-key",
        type=int,
        default=4,
        help="queued + running jobs one API key may have (default 4)",
    )
    p.add_argument(
        "--job-lease",
        type=float,
        default=30.0,
        metavar="S",
        help="a running job whose worker is silent this long is resumed by another (default 30)",
    )
    p.add_argument("--threads", type=int, default=0, help="detector threads (default: all cores)")
    device_arg(p)
    p.add_argument(
        "--max-concurrent",
        type=int,
        default=0,
        metavar="N",
        help="photos analysed or redacted at once by the server, each in a process of its "
        "own (default: one per core); further requests wait",
    )
    p.add_argument(
        "--queue-limit",
        type=int,
        default=None,
        metavar="N",
        help="photo requests that may wait for a free analysis slot; more are answered 503 "
        "with Retry-After (default: 4 per slot; 0: none wait)",
    )
    p.add_argument(
        "--request-timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="time budget of one photo analysis or redaction once it runs; it is stopped "
        "after that (503 TimeBudgetExceeded; default 60)",
    )
    p.add_argument(
        "--max-megapixels",
        type=float,
        default=40.0,
        metavar="MPX",
        help="largest picture the service accepts, width x height from its header before "
        "decoding (413 ImageTooLarge; default 40; the library's own limit is 100)",
    )
    p.add_argument(
        "--review-session",
        default="8h",
        metavar="D",
        help="how long a sign-in on the review page lasts (default 8h)",
    )
    p.add_argument(
        "--allow-stream-hosts",
        action="append",
        default=[],
        metavar="LIST",
        help="addresses stream jobs may open although they are loopback, private, link-local "
        "or otherwise internal (refused by default): CIDRs, addresses and host names, each "
        "optionally with :PORT, comma separated or repeated, e.g. 10.20.0.0/16,cam1.lan:554",
    )
    p.add_argument(
        "--callback-url",
        metavar="URL",
        default=None,
        help="where the webhooks of jobs that name no callback_url go (http or https; "
        "internal addresses only with --allow-stream-hosts)",
    )
    p.add_argument(
        "--webhook-tries",
        type=int,
        default=6,
        metavar="N",
        help="attempts of one webhook delivery before it is marked failed (default 6)",
    )
    p.add_argument(
        "--webhook-backoff",
        type=float,
        default=30.0,
        metavar="S",
        help="wait before the second attempt; each later one waits 3x longer, +-20%% "
        "(default 30: 6 tries take about an hour)",
    )
    p.add_argument(
        "--webhook-timeout",
        type=float,
        default=5.0,
        metavar="S",
        help="time limit of one webhook attempt's connect, send and answer (default 5)",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace, **overrides: Any) -> Any:
    from mien.service.config import ServiceConfig, default_data_dir

    values: dict[str, Any] = {
        "data_dir": Path(args.data_dir) if args.data_dir else default_data_dir(),
        "db_url": args.db,
    }
    values.update(overrides)
    return ServiceConfig(**values)


def require_service(args: argparse.Namespace, what: str) -> None:
    """Stop with ``MissingExtra`` (exit 3) unless the ``service`` extra is installed."""
    from mien.extras import require_extra

    db = (args.db or "").lower()
    require_extra("service", what, also=("psycopg",) if db.startswith("postgres") else ())


#: Seconds a stopping server (SIGTERM, Ctrl+C) gives open requests beyond the time budget of
#: one analysis (``--request-timeout``) before it cancels them. Event streams end at once
#: (:data:`mien.service.stopping.STOPPING`); this bounds whatever else is still open.
GRACE_S = 5.0


def run(args: argparse.Namespace) -> int:
    require_service(args, "mien serve")
    import uvicorn

    from mien.service.app import create_app
    from mien.service.config import parse_duration

    if not 0 < args.max_megapixels <= 100_000:  # also refuses nan and inf
        raise ValueError(f"--max-megapixels must lie in (0, 100000], got {args.max_megapixels}")
    config = config_from_args(
        args,
        workers=args.workers,
        retention_s=parse_duration(args.retention),
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        max_jobs_per_key=args.max_jobs_per_key,
        job_lease_s=args.job_lease,
        heartbeat_s=min(2.0, args.job_lease / 3),
        num_threads=args.threads,
        device=args.device,
        max_concurrent_analyses=args.max_concurrent,
        review_session_s=parse_duration(args.review_session),
        allow_stream_hosts=tuple(args.allow_stream_hosts),
        queue_limit=args.queue_limit,
        request_time_s=args.request_timeout,
        max_pixels=round(args.max_megapixels * 1_000_000),
        callback_url=args.callback_url,
        webhook_tries=args.webhook_tries,
        webhook_backoff_s=args.webhook_backoff,
        webhook_timeout_s=args.webhook_timeout,
    )
    problem = check_store(config) or check_callback(config)
    if problem:
        print(f"mien serve: {problem}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    app = create_app(config)
    server = _server_class()(
        uvicorn.Config(
            app,
            host=args.host,
            port=args.port,
            log_level=args.log_level,
            timeout_graceful_shutdown=round(config.request_time_s + GRACE_S),
        )
    )
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn raises Ctrl+C again at its end
        server.run()
    if not server.started:  # (uvicorn logged why: the port is taken, ...)
        return EXIT_CANNOT_RUN
    return EXIT_OK


def _server_class() -> Any:
    import uvicorn

    from mien.service.stopping import STOPPING

    class Server(uvicorn.Server):
        """uvicorn's server that, told to stop, first tells the app's event streams to end."""

        def handle_exit(self, sig: int, frame: Any) -> None:
            STOPPING.set()
            super().handle_exit(sig, frame)

    return Server


def check_store(config: Any) -> str | None:
    """Why the store cannot be opened (and migrated), in one line, or ``None``."""
    from sqlalchemy.exc import OperationalError, SQLAlchemyError

    from mien.service.store import Store

    try:
        Store.open(config.database_url).close()
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        where = "the PostgreSQL database" if config.db_url else str(config.data_dir / "mien.db")
        first = str(cause).splitlines()[0] if str(cause) else ""
        hint = (
            "is it running and reachable?"
            if isinstance(exc, OperationalError)
            else "a damaged database: restore it from a backup"
        )
        return f"cannot open the store {where}: {type(cause).__name__}: {first} ({hint})"
    return None


def check_callback(config: Any) -> str | None:
    """Why ``--callback-url`` cannot be used (the outbound policy refuses it), or ``None``."""
    if config.callback_url is None:
        return None
    from mien.service.problem import Problem
    from mien.service.webhooks import check_callback_url

    try:
        check_callback_url(config.callback_url, config.outbound_policy())
    except Problem as exc:
        return f"--callback-url: {exc.detail}"
    return None
