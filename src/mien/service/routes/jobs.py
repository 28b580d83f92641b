"""Jobs for videos, image batches and live streams: create (202 + Location), status, results,
cancel+purge, and the live events of a stream job (Server-Sent Events)."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import hashlib
import importlib
import json
from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError

from mien.live.source import display_url
from mien.media.sniff import media_kind
from mien.service import streams
from mien.service.analysis import parse_params
from mien.service.auth import require_key
from mien.service.config import parse_duration
from mien.service.media import delete_job_media, job_dir, media_problem
from mien.service.problem import Problem, responses
from mien.service.routes.common import in_thread, state, upload_body
from mien.service.state import AppState
from mien.service.store import MAX_ID, new_id
from mien.service.uploads import (
    Upload,
    form_files,
    form_text,
    is_multipart,
    read_form,
    read_raw,
    require_content,
    save,
)

router = APIRouter(tags=["jobs"])

_FILE_FIELDS = ("files", "file", "images", "image", "video")


class Progress(BaseModel):
    done: int
    failed: int
    total: int
    fraction: float
    results: int  # result records so far (a video yields one per analysed frame)


class Retention(BaseModel):
    seconds: int
    expires_at: str | None
    media_purged: bool


class JobError(BaseModel):
    code: str
    message: str


class Job(BaseModel):
    id: str
    kind: str
    status: str
    progress: Progress
    params: dict[str, Any]
    created_at: str
    started_at: str | None
    finished_at: str | None
    attempts: int
    error: JobError | None
    retention: Retention
    links: dict[str, str]


class ResultItem(BaseModel):
    id: int
    item: int
    seq: int
    kind: str
    result: dict[str, Any]
    flags: list[dict[str, Any]]


class ResultsPage(BaseModel):
    job_id: str
    status: str
    items: list[ResultItem]
    next_cursor: str | None


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return dt.datetime.fromtimestamp(float(t), dt.timezone.utc).isoformat(timespec="seconds")


def job_view(job: dict[str, Any], results: int = 0) -> Job:
    total = int(job["total_items"])
    done = int(job["done_items"])
    error = (
        JobError(code=job["error_code"], message=job["error_message"] or "")
        if job["error_code"]
        else None
    )
    return Job(
        id=job["id"],
        kind=job["kind"],
        status=job["status"],
        progress=Progress(
            done=done,
            failed=int(job["failed_items"]),
            total=total,
            fraction=round(done / total, 4) if total else 1.0,
            results=results,
        ),
        params=json.loads(job["params"]),
        created_at=_iso(job["created_at"]) or "",
        started_at=_iso(job["started_at"]),
        finished_at=_iso(job["finished_at"]),
        attempts=int(job["attempts"]),
        error=error,
        retention=Retention(
            seconds=int(job["retention_s"]),
            expires_at=_iso(job["expires_at"]),
            media_purged=bool(job["media_purged"]),
        ),
        links=_links(str(job["id"]), str(job["kind"])),
    )


def _links(job_id: str, kind: str) -> dict[str, str]:
    links = {"self": f"/v1/jobs/{job_id}", "results": f"/v1/jobs/{job_id}/results"}
    if kind == "stream":
        links["events"] = f"/v1/jobs/{job_id}/events"
    return links


def _accepted(job: dict[str, Any]) -> JSONResponse:
    view = job_view(job)
    return JSONResponse(
        view.model_dump(mode="json"), status_code=202, headers={"Location": view.links["self"]}
    )


def _is_video(upload: Upload) -> bool:
    return media_kind(upload.head(4096)) == "video"


def _fingerprint(kind: str, params: dict[str, Any], retention: int, ups: list[Upload]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([kind, params, retention], sort_keys=True).encode())
    for up in ups:
        h.update(up.name.encode() + b"\0" + up.sha256().encode())
    return h.hexdigest()


def _too_many(active: int, limit: int) -> Problem:
    return Problem(
        "TooManyJobs",
        f"this key has {active} queued or running job(s), the limit is {limit}; "
        "wait for one to finish or delete one",
    )


def _create(
    st: AppState,
    key_id: str,
    kind: str,
    params: dict[str, Any],
    retention: int,
    uploads: list[Upload],
    idem: str | None,
    stream_url: str | None = None,
) -> dict[str, Any]:
    fingerprint = _fingerprint(kind, params, retention, uploads)
    if stream_url is not None:  # the address itself (it may hold credentials) only hashed
        fingerprint = hashlib.sha256((fingerprint + "\0" + stream_url).encode()).hexdigest()
    if idem:
        found = st.store.find_idempotent(key_id, idem)
        if found is not None:
            if found["request_hash"] != fingerprint:
                raise Problem(
                    "IdempotencyConflict",
                    "this Idempotency-Key was used for a different request",
                )
            return found
    limit = st.config.max_jobs_per_key
    active = st.store.active_jobs(key_id)  # a cheap early answer; the insert checks again
    if active >= limit:
        raise _too_many(active, limit)
    job_id = new_id()
    folder = job_dir(st.config.media_dir, job_id)
    try:
        items: list[tuple[str, str | None]] = [
            (up.name, save(up, folder, i)) for i, up in enumerate(uploads)
        ]
        if stream_url is not None:  # no upload: the address waits in the job's media folder
            streams.write_url(folder, stream_url)
            items = [(str(params["stream"]["url"]), None)]
        refused = st.store.create_job(
            job_id=job_id,
            key_id=key_id,
            kind=kind,
            params=params,
            items=items,
            retention_s=retention,
            request_hash=fingerprint,
            idempotency_key=idem,
            max_active=limit,
        )
    except IntegrityError:  # the same Idempotency-Key raced in from another request
        delete_job_media(st.config.media_dir, job_id)
        if idem:
            found = st.store.find_idempotent(key_id, idem)
            if found is not None and found["request_hash"] == fingerprint:
                return found
        raise Problem("IdempotencyConflict", "this Idempotency-Key is being used") from None
    except OSError as exc:  # the media folder is full, read-only or gone: no half-written job
        delete_job_media(st.config.media_dir, job_id)
        raise media_problem(exc) from None
    except BaseException:  # the store failed (or anything else): no folder without a job row
        delete_job_media(st.config.media_dir, job_id)
        raise
    if refused is not None:
        delete_job_media(st.config.media_dir, job_id)
        raise _too_many(refused, limit)
    job = st.store.get_job(job_id)
    assert job is not None
    return job


@router.post(
    "/v1/jobs",
    status_code=202,
    summary="Queue a video, a batch of images or a live stream; 202 with Location of the job",
    openapi_extra=upload_body(
        {
            "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
            "video": {"type": "string", "format": "binary"},
        },
        [
            "features",
            "profile",
            "retention",
            "kind",
            "sample_fps",
            "url",
            "max_seconds",
            "retries",
        ],
    ),
    responses={
        202: {"model": Job, "description": "queued"},
        **responses(400, 401, 409, 413, 415, 422, 429, 501, 507),
    },
    response_model=Job,
)
async def create_job(
    request: Request,
    key_id: str = Depends(require_key),
    features: str | None = Query(None, description="comma-separated feature names, or 'all'"),
    profile: str | None = Query(None, description="a rules profile, e.g. 'id-photo'"),
    retention: str | None = Query(
        None, description="keep the uploads this long after the job ends (0, 90s, 15m, 24h)"
    ),
    kind: str | None = Query(None, pattern="^(images|video|stream)$"),
    sample_fps: float | None = Query(
        None, gt=0, le=240, description="video jobs: frames analysed per second (default: all)"
    ),
    name: str | None = Query(None, max_length=200, description="the label of a raw-body upload"),
    url: str | None = Query(
        None, max_length=2000, description="stream jobs: rtsp://, rtmp:// or http(s)://...m3u8"
    ),
    max_seconds: str | None = Query(
        None, description="stream jobs: stop after this many seconds (default 3600)"
    ),
    retries: str | None = Query(
        None, description="stream jobs: reconnect attempts before a lost source fails (5)"
    ),
    idempotency_key: str | None = Header(None, alias="Idempotency-Key", max_length=200),
) -> JSONResponse:
    st = state(request)
    params = await in_thread(parse_params, features, profile)
    if is_multipart(request):
        form = await read_form(request, max_files=st.config.max_items_per_job + 1)
        uploads = form_files(form, *_FILE_FIELDS)
        f_features, f_profile = form_text(form, "features"), form_text(form, "profile")
        if f_features or f_profile:
            params = await in_thread(parse_params, f_features or features, f_profile or profile)
        retention = form_text(form, "retention") or retention
        kind = form_text(form, "kind") or kind
        fps_text = form_text(form, "sample_fps")
        if fps_text is not None:
            try:
                sample_fps = float(fps_text)
            except ValueError:
                raise Problem("InvalidParameter", "sample_fps must be a number") from None
            if not 0 < sample_fps <= 240:
                raise Problem("InvalidParameter", "sample_fps must lie in (0, 240]")
        url = form_text(form, "url") or url
        max_seconds = form_text(form, "max_seconds") or max_seconds
        retries = form_text(form, "retries") or retries
    elif kind == "stream" or url is not None or _is_urlencoded(request):
        uploads = []
        if _is_urlencoded(request):
            form = await read_form(request, max_files=0)
            f_features, f_profile = form_text(form, "features"), form_text(form, "profile")
            if f_features or f_profile:
                params = await in_thread(parse_params, f_features or features, f_profile or profile)
            retention = form_text(form, "retention") or retention
            kind = form_text(form, "kind") or kind
            url = form_text(form, "url") or url
            max_seconds = form_text(form, "max_seconds") or max_seconds
            retries = form_text(form, "retries") or retries
    else:
        uploads = [await read_raw(request, name)]
    if kind == "stream" or (kind is None and url is not None):
        if uploads:
            raise Problem("BadRequest", "a stream job takes a url, not an upload")
        keep = _retention(st, retention)
        stream = {
            "url": "",
            "max_seconds": streams.parse_int(
                max_seconds,
                "max_seconds",
                streams.DEFAULT_MAX_SECONDS,
                1,
                streams.MAX_SECONDS_LIMIT,
            ),
            "retries": streams.parse_int(
                retries, "retries", streams.DEFAULT_RETRIES, 0, streams.MAX_RETRIES
            ),
        }
        checked = streams.check_stream_url(url)
        stream["url"] = display_url(checked)  # never the credentials
        job = await in_thread(
            _create,
            st,
            key_id,
            "stream",
            {**params.to_json(), "stream": stream},
            keep,
            [],
            idempotency_key,
            checked,
        )
        return _accepted(job)
    require_content(uploads)
    if len(uploads) > st.config.max_items_per_job:
        raise Problem("BadRequest", f"at most {st.config.max_items_per_job} files per job")
    keep = _retention(st, retention)
    videos = [_is_video(up) for up in uploads]
    if kind is None:
        kind = "video" if len(uploads) == 1 and videos[0] else "images"
    if kind not in ("images", "video"):
        raise Problem("InvalidParameter", "kind must be 'images', 'video' or 'stream'")
    if kind == "video":
        if len(uploads) != 1:
            raise Problem("BadRequest", "a video job takes exactly one video file")
        if not videos[0]:
            raise Problem("UnsupportedMedia", f"{uploads[0].name}: not a video file mien reads")
        try:
            importlib.import_module("mien.video")
        except ImportError:
            raise Problem(
                "NotAvailable", "video analysis (mien.video) is not part of this installation"
            ) from None
    if kind == "video" and sample_fps is not None:
        params = dataclasses.replace(params, sample_fps=sample_fps)
    job = await in_thread(
        _create, st, key_id, kind, params.to_json(), keep, uploads, idempotency_key
    )
    return _accepted(job)


def _is_urlencoded(request: Request) -> bool:
    ctype = request.headers.get("content-type", "").lower()
    return ctype.startswith("application/x-www-form-urlencoded")


def _retention(st: AppState, retention: str | None) -> int:
    try:
        keep = st.config.retention_s if retention is None else parse_duration(retention)
    except ValueError as exc:
        raise Problem("InvalidParameter", str(exc)) from None
    if keep > st.config.retention_s:
        raise Problem(
            "InvalidParameter",
            f"retention may be at most the server's {st.config.retention_s} s",
        )
    return keep


def _own_job(st: AppState, job_id: str, key_id: str) -> dict[str, Any]:
    job = st.store.get_job(job_id, key_id) if job_id.isalnum() else None
    if job is None:
        raise Problem("NotFound", f"no job {job_id!r} for this API key")
    return job


@router.get(
    "/v1/jobs/{job_id}",
    summary="Status and progress of a job",
    responses=responses(401, 404),
)
def get_job(job_id: str, request: Request, key_id: str = Depends(require_key)) -> Job:
    st = state(request)
    return job_view(_own_job(st, job_id, key_id), st.store.result_count(job_id))


def _decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        value = int(base64.urlsafe_b64decode(cursor.encode() + b"==").decode())
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Problem("InvalidCursor", "the cursor is not one this server issued") from None
    if not 0 <= value <= MAX_ID:
        raise Problem("InvalidCursor", "the cursor is not one this server issued")
    return value


def _encode_cursor(value: int) -> str:
    return base64.urlsafe_b64encode(str(value).encode()).decode().rstrip("=")


@router.get(
    "/v1/jobs/{job_id}/results",
    summary="Results of a job so far, oldest first, a page at a time (cursor)",
    responses=responses(400, 401, 404),
)
def get_results(
    job_id: str,
    request: Request,
    key_id: str = Depends(require_key),
    cursor: str | None = Query(None, description="next_cursor of the previous page"),
    limit: int = Query(100, ge=1, le=1000),
) -> ResultsPage:
    st = state(request)
    job = _own_job(st, job_id, key_id)
    rows, nxt = st.store.results_page(job_id, _decode_cursor(cursor), limit)
    return ResultsPage(
        job_id=job_id,
        status=job["status"],
        items=[
            ResultItem(
                id=int(r["id"]),
                item=int(r["item_idx"]),
                seq=int(r["seq"]),
                kind=r["kind"],
                result=json.loads(r["data"]),
                flags=json.loads(r["flags"]),
            )
            for r in rows
        ],
        next_cursor=_encode_cursor(nxt) if nxt is not None else None,
    )


@router.delete(
    "/v1/jobs/{job_id}",
    summary="Cancel a job (if queued or running) and delete its uploaded media now",
    responses=responses(401, 404),
)
def delete_job(job_id: str, request: Request, key_id: str = Depends(require_key)) -> Job:
    st = state(request)
    _own_job(st, job_id, key_id)
    st.store.cancel(job_id)
    delete_job_media(st.config.media_dir, job_id)
    job = st.store.get_job(job_id)
    assert job is not None
    return job_view(job, st.store.result_count(job_id))


@router.get(
    "/v1/jobs/{job_id}/events",
    summary="Events of a job as Server-Sent Events: the stored ones, then new ones until it ends",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "`text/event-stream`: `id` (the result id), `event` (its kind), "
            "`data` (the result JSON); ends when the job is final and every event was sent",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **responses(400, 401, 404),
    },
)
def job_events(
    job_id: str,
    request: Request,
    key_id: str = Depends(require_key),
    after: int | None = Query(
        None, ge=0, le=MAX_ID, description="send the events after this result id"
    ),
    last_event_id: str | None = Header(None, alias="Last-Event-ID", max_length=40),
) -> StreamingResponse:
    st = state(request)
    _own_job(st, job_id, key_id)
    start = after or 0
    if last_event_id is not None and last_event_id.strip():
        try:
            start = max(start, int(last_event_id.strip()))
        except ValueError:
            raise Problem("InvalidCursor", "Last-Event-ID is not an event id of this job") from None
        if not 0 <= start <= MAX_ID:
            raise Problem("InvalidCursor", "Last-Event-ID is not an event id of this job")
    return StreamingResponse(
        streams.sse_events(st.store, job_id, start, request.is_disconnected),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
