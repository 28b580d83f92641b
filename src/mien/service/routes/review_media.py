"""Video segments on the review page: the retained video (HTTP range requests), a segment's
filmstrip, and the live review events (Server-Sent Events).

* ``GET /review/items/{id}/media`` (page session or API key) and ``GET /v1/review/items/{id}/media``
  serve the video a segment comes from, whole (200) or one byte range (206, ``Range:
  bytes=a-b``, ``bytes=a-``, ``bytes=-n``). A range that starts past the end, an empty suffix,
  a malformed or a multi-range header answer 416 ``RangeNotSatisfiable`` with
  ``Content-Range: bytes */size``. One answer carries at most :data:`MAX_RANGE_BYTES` (a longer
  or open range is cut there; ``Content-Range`` says what was sent, and players ask for the
  rest), read from disk in :data:`CHUNK` pieces.
* ``GET /review/items/{id}/filmstrip``: one JPEG of evenly spaced frames of the segment.
* ``GET /v1/review/events``: new flagged items of the caller's tenants as ``event: item``
  (``data`` is the ReviewItem, ``id`` its id; ``Last-Event-ID`` resumes), a comment every
  :data:`KEEPALIVE_S` as heartbeat. At most :data:`MAX_STREAMS_PER_KEY` open at once per key;
  each ends after :data:`MAX_STREAM_S` (the browser's EventSource reconnects and resumes), and
  at once when the server is stopping (:data:`mien.service.stopping.STOPPING`).

Only the item's tenant gets anything: another key's item answers 404 ``NotFound``; a video
whose retention ended answers 410 ``MediaPurged``.
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
import os
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path as FilePath
from typing import Any, BinaryIO

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from mien.service.media import job_dir
from mien.service.problem import Problem, responses
from mien.service.routes.review import ItemId, _viewer, review_item
from mien.service.rows import ReviewRow
from mien.service.state import AppState, State
from mien.service.stopping import STOPPING
from mien.service.store import MAX_ID, Store
from mien.service.thumbnails import filmstrip, keyframe_thumbnail

router = APIRouter(tags=["review"], include_in_schema=False)
api = APIRouter(tags=["review"])

#: Largest number of bytes one (ranged) answer carries, and the size of each read.
MAX_RANGE_BYTES = 8 * 1024 * 1024
CHUNK = 64 * 1024
#: Live review events: poll period, heartbeat period, longest life of one stream (s), and
#: open streams per API key.
POLL_S = 0.5
KEEPALIVE_S = 15.0
MAX_STREAM_S = 60.0
MAX_STREAMS_PER_KEY = 4

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def segment_media(
    st: AppState, result_id: int, key_ids: tuple[str, ...]
) -> tuple[ReviewRow, dict[str, Any], FilePath]:
    """A flagged segment of ``key_id`` with its data and the path of its retained video
    (404 ``NotFound`` for others, 410 ``MediaPurged`` when the video is gone)."""
    row = st.store.result_with_media(result_id, key_ids=key_ids)
    if row is None or not row.flagged or row.kind != "segment":
        raise Problem("NotFound", f"no flagged video segment {result_id}")
    if row.media_purged or not row.media_file:
        raise Problem("MediaPurged", "the video is no longer retained")
    path = job_dir(st.config.media_dir, row.job_id) / str(row.media_file)
    if not path.is_file():
        raise Problem("MediaPurged", "the video is no longer retained")
    return row, json.loads(row.data), path


def segment_thumbnail(st: AppState, result_id: int, key_ids: tuple[str, ...]) -> Response:
    """The keyframe of a segment with the face's box (the review page's thumbnail)."""
    _, data, path = segment_media(st, result_id, key_ids)
    return _jpeg(keyframe_thumbnail(path, data))


def _jpeg(data: bytes | None) -> Response:
    if data is None:
        raise Problem("MediaPurged", "the video no longer has the segment's frames")
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The first and last byte (inclusive) of ``Range: header`` in a file of ``size`` bytes,
    at most :data:`MAX_RANGE_BYTES` of them; None without a header; 416 when not satisfiable."""
    if header is None:
        return None
    m = _RANGE.match(header.strip())
    bad = Problem(
        "RangeNotSatisfiable",
        f"the range must be one 'bytes=first-last' within the {size} bytes of the file",
        headers={"Content-Range": f"bytes */{size}"},
    )
    if m is None or (not m.group(1) and not m.group(2)):
        raise bad
    if not m.group(1):  # a suffix: the last n bytes
        n = int(m.group(2))
        if n == 0 or size == 0:
            raise bad
        first, last = max(0, size - n), size - 1
    else:
        first = int(m.group(1))
        last = int(m.group(2)) if m.group(2) else size - 1
        if first >= size or last < first:
            raise bad
        last = min(last, size - 1)
    return first, min(last, first + MAX_RANGE_BYTES - 1)


def _read(f: BinaryIO, first: int, length: int) -> Iterator[bytes]:
    """``length`` bytes of the open file ``f`` from ``first`` on, in :data:`CHUNK` pieces."""
    try:
        f.seek(first)
        left = length
        while left > 0:
            chunk = f.read(min(CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk
    finally:
        f.close()


def _media_response(
    st: AppState, result_id: int, key_ids: tuple[str, ...], range_header: str | None
) -> Response:
    row, _, path = segment_media(st, result_id, key_ids)
    try:  # opened now: a purge from here on does not cut the answer short
        f = open(path, "rb")  # noqa: SIM115 (closed by _read, or after the response)
        size = os.fstat(f.fileno()).st_size
    except OSError:
        raise Problem("MediaPurged", "the video is no longer retained") from None
    kind = mimetypes.guess_type(str(row.name))[0] or ""
    headers = {
        "Accept-Ranges": "bytes",
        "Cache-Control": "no-store",
        "Content-Disposition": "inline",
    }
    try:
        span = parse_range(range_header, size)
    except Problem:
        f.close()
        raise
    if span is None:
        first, length, status = 0, min(size, MAX_RANGE_BYTES), 200
        if size > MAX_RANGE_BYTES:  # never more than the cap at once: answer a range instead
            status = 206
            headers["Content-Range"] = f"bytes 0-{length - 1}/{size}"
    else:
        first, length, status = span[0], span[1] - span[0] + 1, 206
        headers["Content-Range"] = f"bytes {span[0]}-{span[1]}/{size}"
    headers["Content-Length"] = str(length)
    return StreamingResponse(
        _read(f, first, length),
        status_code=status,
        media_type=kind if kind.startswith("video/") else "application/octet-stream",
        headers=headers,
        background=BackgroundTask(f.close),  # also when the body was never read
    )


_MEDIA_DOC: dict[int | str, dict[str, Any]] = {
    200: {"description": "the whole video", "content": {"video/*": {}}},
    206: {"description": "one byte range of the video", "content": {"video/*": {}}},
    **responses(401, 404, 410, 416, 422),
}


@router.get("/review/items/{result_id}/media")
def page_media(request: Request, st: State, result_id: int = ItemId) -> Response:
    return _media_response(st, result_id, _viewer(request), request.headers.get("range"))


@api.get(
    "/v1/review/items/{result_id}/media",
    summary="The retained video of a flagged segment, with HTTP range requests",
    response_class=Response,
    responses=_MEDIA_DOC,
)
def media(
    request: Request,
    st: State,
    result_id: int = ItemId,
    range: str | None = Header(None, max_length=200, description="bytes=first-last"),
) -> Response:
    return _media_response(st, result_id, _viewer(request), range)


@router.get("/review/items/{result_id}/filmstrip")
def page_filmstrip(request: Request, st: State, result_id: int = ItemId) -> Response:
    _, data, path = segment_media(st, result_id, _viewer(request))
    return _jpeg(filmstrip(path, data))


# -- live review events ------------------------------------------------------------------------


class StreamCount:
    """Open event streams per API key, bounded."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()

    def take(self, key_ids: tuple[str, ...]) -> Callable[[], None]:
        with self._lock:
            if any(self._open.get(k, 0) >= self.limit for k in key_ids):
                raise Problem(
                    "TooManyStreams",
                    f"at most {self.limit} review event streams may be open per key",
                    headers={"Retry-After": "5"},
                )
            for k in key_ids:
                self._open[k] = self._open.get(k, 0) + 1
        done = threading.Event()

        def give_back() -> None:
            with self._lock:
                if done.is_set():
                    return
                done.set()
                for k in key_ids:
                    self._open[k] -= 1
                    if not self._open[k]:
                        del self._open[k]

        return give_back


STREAMS = StreamCount(MAX_STREAMS_PER_KEY)


def _event(row: ReviewRow) -> str:
    data = review_item(row).model_dump_json()
    return f"id: {int(row.id)}\nevent: item\ndata: {data}\n\n"


async def review_events(
    store: Store,
    key_ids: tuple[str, ...],
    after: int,
    is_disconnected: Callable[[], Any],
    release: Callable[[], None],
) -> AsyncIterator[str]:
    """``item`` events for the flagged results of ``key_ids`` after id ``after``, as they come."""
    try:
        started = last_sent = time.monotonic()
        # the start as the stream's last event id: a browser that reconnects before any item
        # came (Last-Event-ID) resumes from here, and misses nothing stored in between
        yield f"retry: 2000\nid: {int(after)}\n\n"
        while time.monotonic() - started < MAX_STREAM_S and not STOPPING.is_set():
            rows = await run_in_threadpool(store.flagged_after, key_ids=key_ids, after=after)
            for row in rows:
                yield _event(row)
                after = int(row.id)
            if rows:
                last_sent = time.monotonic()
                continue
            if await is_disconnected():
                return
            if time.monotonic() - last_sent >= KEEPALIVE_S:
                yield ": keep-alive\n\n"
                last_sent = time.monotonic()
            await asyncio.sleep(POLL_S)
    finally:
        release()


@api.get(
    "/v1/review/events",
    summary="New flagged items (video segments of stream jobs as they close) as Server-Sent Events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "`text/event-stream`: `event: item`, `id` (the item id), `data` (the "
            "ReviewItem); a comment line as heartbeat; ends after a minute (reconnect with "
            "Last-Event-ID)",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **responses(400, 401, 429),
    },
)
def events(
    request: Request,
    st: State,
    after: int | None = Query(
        None, ge=0, le=MAX_ID, description="send the items after this id (default: new ones only)"
    ),
    last_event_id: str | None = Header(None, alias="Last-Event-ID", max_length=40),
) -> StreamingResponse:
    key_ids = _viewer(request)
    start = st.store.last_result_id() if after is None else after
    if last_event_id is not None and last_event_id.strip():
        try:
            start = int(last_event_id.strip())
        except ValueError:
            raise Problem("InvalidCursor", "Last-Event-ID is not an item id") from None
        if not 0 <= start <= MAX_ID:
            raise Problem("InvalidCursor", "Last-Event-ID is not an item id")
    release = STREAMS.take(key_ids)
    return StreamingResponse(
        review_events(st.store, key_ids, start, request.is_disconnected, release),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        background=BackgroundTask(release),  # also when the stream never started
    )


#: Both routers, for the app to include.
routes = APIRouter()
routes.include_router(router)
routes.include_router(api)
