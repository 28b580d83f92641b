"""Stream jobs: a live stream analysed by a worker, its events stored and sent as SSE.

A stream job (``POST /v1/jobs`` with ``kind=stream`` and ``url``) has one item and no upload.
The address, which may carry credentials, is kept only in a file of the job's media folder
(deleted with the job's media: on ``DELETE``, at the end of its retention, or at once with
``retention=0``); the job's params, results and errors show it with credentials hidden
(:func:`mien.live.display_url`).

The worker opens the address under the server's outbound policy (``--allow-stream-hosts``;
:mod:`mien.live.outbound`, :mod:`mien.live.guard`, docs/security.md) and runs a
:class:`mien.live.LiveSession` and stores every event as a result row
(``kind`` = the event type, ``seq`` = the event's ``seq``). ``GET /v1/jobs/{id}/events``
sends the stored events as Server-Sent Events and follows new ones until the job is final.

Frame events keep their flags but are not review items: the flagged faces are grouped into
segments (:mod:`mien.service.segments`, at most ``STREAM_MAX_S`` long), each stored as a
``segment`` result as soon as it closes (the last ones just before the ``summary``), which
``GET /v1/review/events`` then sends to open review pages. Results are numbered (``seq``)
0, 1, 2... over events and segments; an event's own ``seq`` stays in its JSON.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

from mien.live.outbound import OutboundPolicy
from mien.rules import RuleSet
from mien.service import webhooks
from mien.service.problem import Problem
from mien.service.rows import ResultRow
from mien.service.segments import (
    REVIEW_BY_RULES,
    STREAM_MAX_S,
    Segment,
    Segmenter,
    frame_observations,
    segment_row,
)
from mien.service.stopping import STOPPING
from mien.service.store import FINAL, Store

#: The file (in the job's media folder) that holds the stream address.
URL_FILE = "stream.url"
#: Default and largest duration of a stream job, seconds.
DEFAULT_MAX_SECONDS = 3600
MAX_SECONDS_LIMIT = 24 * 3600
#: Reconnect attempts in a row before a lost source fails the job (default, largest).
DEFAULT_RETRIES = 5
MAX_RETRIES = 20
_NETWORK = ("rtsp", "rtmp", "hls")
#: How often the events route looks for new events, and sends a keep-alive comment.
POLL_S = 0.25
KEEPALIVE_S = 15.0
#: Rows stored at once at most, and the longest a stored event waits.
_FLUSH_ROWS = 50
_FLUSH_S = 0.2


def check_stream_url(url: str | None) -> str:
    """``url`` when it is a network stream address the service may open, else a Problem.

    Only ``rtsp(s)://``, ``rtmp(s)://`` and ``http(s)://...m3u8`` are accepted: never a file,
    a device or a pipe of the server.
    """
    from mien.live import source_kind

    if not url:
        raise Problem("InvalidParameter", "a stream job needs a url (rtsp://, rtmp://, ...m3u8)")
    url = url.strip()
    if len(url) > 2000:
        raise Problem("InvalidParameter", "the stream url is longer than 2000 characters")
    if source_kind(url) not in _NETWORK:
        raise Problem(
            "InvalidParameter",
            "url must be a network stream address: rtsp://, rtmp:// or http(s)://....m3u8 "
            "(files, devices and pipes of the server are not opened from the API)",
        )
    return url


def parse_int(text: str | None, name: str, default: int, low: int, high: int) -> int:
    if text is None or not str(text).strip():
        return default
    try:
        value = int(str(text).strip())
    except ValueError:
        raise Problem("InvalidParameter", f"{name} must be a whole number") from None
    if not low <= value <= high:
        raise Problem("InvalidParameter", f"{name} must lie in [{low}, {high}]")
    return value


def write_url(folder: Path, url: str) -> None:
    """Keep the address in the job's media folder (0700), in a file only the server reads
    (created 0600: never readable by others, not even for a moment)."""
    folder.parent.mkdir(exist_ok=True, mode=0o700)
    folder.mkdir(exist_ok=True, mode=0o700)
    fd = os.open(folder / URL_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(url)


def run_stream(
    store: Store,
    job_id: str,
    idx: int,
    url: str,
    params: Any,
    stream: dict[str, Any],
    num_threads: int,
    ruleset: RuleSet | None,
    should_stop: Callable[[], bool],
    policy: OutboundPolicy,
    device: str = "cpu",
) -> tuple[str, str] | None:
    """Analyse the stream until it ends, stores its events; the error that ended it, if any.

    The address is opened under ``policy`` (the server's outbound policy): every connection,
    the first and each one the stream leads to, goes only where it allows, and every failure
    to reach the source reads the same ("source unreachable").

    ``should_stop`` is asked a few times a second (from a watcher thread, so a silent stream
    stops too); when it says so the session is stopped and ends with ``track_ended`` and
    ``summary`` events.
    """
    from mien.live import LiveOptions, LiveSession, ReconnectPolicy, StreamSource
    from mien.live.source import hide_credentials

    options = LiveOptions(
        duration_s=float(stream.get("max_seconds", DEFAULT_MAX_SECONDS)),
        reconnect=ReconnectPolicy(max_retries=int(stream.get("retries", DEFAULT_RETRIES))),
    )
    session = LiveSession(
        StreamSource(url, policy=policy),
        analyzer_options=params.options(num_threads, device=device),
        options=options,
        rules=ruleset,
    )
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.25):
            if should_stop():
                session.stop()
                return

    watcher = threading.Thread(target=watch, daemon=True, name="stream-watch")
    watcher.start()
    rows: list[dict[str, Any]] = []
    last = time.monotonic()
    error: tuple[str, str] | None = None
    segments = Segmenter(max_s=STREAM_MAX_S, by_rules=REVIEW_BY_RULES)
    numbers = itertools.count()
    try:
        for event in session.events():
            data = event.to_dict()
            for err in (data, data.get("error")):  # error texts may quote the address
                if isinstance(err, dict) and isinstance(err.get("message"), str):
                    err["message"] = hide_credentials(err["message"])
            if event.type == "error":
                error = (str(data.get("code")), str(data.get("message", "")))
            if event.type == "summary" and error is None and isinstance(data.get("error"), dict):
                error = (str(data["error"].get("code")), str(data["error"].get("message", "")))
            flags = list(data.get("flags", [])) if event.type == "frame" else []
            row: dict[str, Any] = {"kind": event.type, "data": data, "flags": flags}
            closed: list[Segment] = []
            if event.type == "frame":  # the review items are the segments, not the frames
                row["flagged"] = False
                t_s = float(data.get("timestamp_ms") or 0.0) / 1000.0
                closed = segments.add(frame_observations(data, flags), t_s)
            elif event.type == "summary":  # the last segments go before the closing summary
                rows += _numbered(
                    [segment_row(seg, profile=params.profile) for seg in segments.close()], numbers
                )
            rows += _numbered(
                [row] + [segment_row(seg, profile=params.profile) for seg in closed], numbers
            )
            now = time.monotonic()
            urgent = bool(closed) or event.type != "frame"
            if urgent or len(rows) >= _FLUSH_ROWS or now - last >= _FLUSH_S:
                store.add_results(job_id, idx, rows)
                webhooks.items_flagged(store, job_id, idx, rows)
                rows, last = [], now
    finally:
        done.set()
        session.stop()
        rows += _numbered(
            [segment_row(seg, profile=params.profile) for seg in segments.close()], numbers
        )
        store.add_results(job_id, idx, rows)
        webhooks.items_flagged(store, job_id, idx, rows)
        watcher.join(timeout=2)
    return error


def _numbered(rows: list[dict[str, Any]], numbers: Iterator[int]) -> list[dict[str, Any]]:
    """``rows`` with the next result numbers (``seq``: 0, 1, 2... over events and segments)."""
    for row in rows:
        row["seq"] = next(numbers)
    return rows


def _sse(row: ResultRow) -> str:
    data = json.dumps(json.loads(row.data), separators=(",", ":"))
    return f"id: {int(row.id)}\nevent: {row.kind}\ndata: {data}\n\n"


async def sse_events(
    store: Store, job_id: str, after: int, is_disconnected: Callable[[], Any]
) -> AsyncIterator[str]:
    """Stored events after result id ``after``, then new ones, until the job is final."""
    from starlette.concurrency import run_in_threadpool

    last_sent = time.monotonic()
    yield "retry: 2000\n\n"
    while True:
        rows, _ = await run_in_threadpool(store.results_page, job_id, after, 500)
        if rows:
            for row in rows:
                yield _sse(row)
                after = int(row.id)
            last_sent = time.monotonic()
            continue
        job = await run_in_threadpool(store.get_job, job_id)
        if job is None:
            return
        if job.status in FINAL:
            rows, _ = await run_in_threadpool(store.results_page, job_id, after, 500)
            if not rows:
                return
            continue
        if STOPPING.is_set() or await is_disconnected():
            return  # (a stopping server: the client reconnects to the next one and resumes)
        if time.monotonic() - last_sent >= KEEPALIVE_S:
            yield ": keep-alive\n\n"
            last_sent = time.monotonic()
        await asyncio.sleep(POLL_S)
