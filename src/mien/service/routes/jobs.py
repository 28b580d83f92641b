"""Jobs for videos, image batches and live streams: create (202 + Location), status, results,
cancel+purge, and the live events of a stream job (Server-Sent Events)."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel

from mien.service import streams, webhooks
from mien.service.analysis import parse_params
from mien.service.auth import require_key
from mien.service.jobs import JobService, job_request
from mien.service.media import delete_job_media
from mien.service.problem import Problem, responses
from mien.service.routes.common import FEATURES, PROFILE, in_thread, upload_body
from mien.service.rows import JobRow
from mien.service.state import AppState, State
from mien.service.store import ACTIVE, MAX_ID
from mien.service.uploads import read_body

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


class Delivery(BaseModel):
    id: int
    event_id: str
    event: str
    url: str
    status: str  # pending | delivered | failed
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_try_at: str | None
    created_at: str
    finished_at: str | None


class DeliveriesPage(BaseModel):
    job_id: str
    deliveries: list[Delivery]
    next_cursor: str | None


class ResultsPage(BaseModel):
    job_id: str
    status: str
    items: list[ResultItem]
    next_cursor: str | None


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return dt.datetime.fromtimestamp(float(t), dt.timezone.utc).isoformat(timespec="seconds")


def job_view(job: JobRow, results: int = 0) -> Job:
    total = int(job.total_items)
    done = int(job.done_items)
    error = (
        JobError(code=job.error_code, message=job.error_message or "") if job.error_code else None
    )
    return Job(
        id=job.id,
        kind=job.kind,
        status=job.status,
        progress=Progress(
            done=done,
            failed=int(job.failed_items),
            total=total,
            fraction=round(done / total, 4) if total else 1.0,
            results=results,
        ),
        params=json.loads(job.params),
        created_at=_iso(job.created_at) or "",
        started_at=_iso(job.started_at),
        finished_at=_iso(job.finished_at),
        attempts=int(job.attempts),
        error=error,
        retention=Retention(
            seconds=int(job.retention_s),
            expires_at=_iso(job.expires_at),
            media_purged=bool(job.media_purged),
        ),
        links=_links(str(job.id), str(job.kind)),
    )


def _links(job_id: str, kind: str) -> dict[str, str]:
    links = {"self": f"/v1/jobs/{job_id}", "results": f"/v1/jobs/{job_id}/results"}
    if kind == "stream":
        links["events"] = f"/v1/jobs/{job_id}/events"
    return links


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
            "callback_url",
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
    st: State,
    key_id: str = Depends(require_key),
    features: str | None = FEATURES,
    profile: str | None = PROFILE,
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
    callback_url: str | None = Query(
        None,
        max_length=2000,
        description="http(s) address the job's signed webhooks are POSTed to (job.finished, "
        "item.flagged, review.decided); default: the server's --callback-url",
    ),
    idempotency_key: str | None = Header(None, alias="Idempotency-Key", max_length=200),
) -> JSONResponse:
    params = await in_thread(parse_params, features, profile)  # refused names: before the body
    body = await read_body(
        request,
        _FILE_FIELDS,
        max_files=st.config.max_items_per_job + 1,
        name=name,
        text_form=True,
        raw=kind != "stream" and url is None,  # a stream job sends no media
    )
    query = {
        "features": features,
        "profile": profile,
        "retention": retention,
        "kind": kind,
        "url": url,
        "max_seconds": max_seconds,
        "retries": retries,
        "callback_url": callback_url,
    }
    new = await in_thread(job_request, st.config, params, query, body, sample_fps)
    job = await in_thread(JobService(st.store, st.config).create, key_id, new, idempotency_key)
    view = job_view(job)
    return JSONResponse(
        view.model_dump(mode="json"), status_code=202, headers={"Location": view.links["self"]}
    )


def _own_job(st: AppState, job_id: str, key_id: str) -> JobRow:
    job = st.store.get_job(job_id, key_id) if job_id.isalnum() else None
    if job is None:
        raise Problem("NotFound", f"no job {job_id!r} for this API key")
    return job


@router.get(
    "/v1/jobs/{job_id}",
    summary="Status and progress of a job",
    responses=responses(401, 404),
)
def get_job(job_id: str, st: State, key_id: str = Depends(require_key)) -> Job:
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
    st: State,
    key_id: str = Depends(require_key),
    cursor: str | None = Query(None, description="next_cursor of the previous page"),
    limit: int = Query(100, ge=1, le=1000),
) -> ResultsPage:
    job = _own_job(st, job_id, key_id)
    rows, nxt = st.store.results_page(job_id, _decode_cursor(cursor), limit)
    return ResultsPage(
        job_id=job_id,
        status=job.status,
        items=[
            ResultItem(
                id=int(r.id),
                item=int(r.item_idx),
                seq=int(r.seq),
                kind=r.kind,
                result=json.loads(r.data),
                flags=json.loads(r.flags),
            )
            for r in rows
        ],
        next_cursor=_encode_cursor(nxt) if nxt is not None else None,
    )


@router.get(
    "/v1/jobs/{job_id}/deliveries",
    summary="The job's webhook deliveries, oldest first: attempts, last answer, next try",
    responses=responses(400, 401, 404),
)
def get_deliveries(
    job_id: str,
    st: State,
    key_id: str = Depends(require_key),
    cursor: str | None = Query(None, description="next_cursor of the previous page"),
    limit: int = Query(100, ge=1, le=1000),
) -> DeliveriesPage:
    _own_job(st, job_id, key_id)
    rows, nxt = webhooks.job_deliveries(st.store, job_id, _decode_cursor(cursor), limit)
    return DeliveriesPage(
        job_id=job_id,
        deliveries=[
            Delivery(
                id=r.id,
                event_id=r.event_id,
                event=r.event,
                url=r.url,
                status=r.status,
                attempts=r.attempts,
                last_status_code=r.last_status_code,
                last_error=r.last_error,
                next_try_at=_iso(r.next_try_at),
                created_at=_iso(r.created_at) or "",
                finished_at=_iso(r.finished_at),
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
def delete_job(job_id: str, st: State, key_id: str = Depends(require_key)) -> Job:
    before = _own_job(st, job_id, key_id)
    st.store.cancel(job_id)
    delete_job_media(st.config.media_dir, job_id)
    job = st.store.get_job(job_id)
    assert job is not None
    if before.status in ACTIVE and job.status == "cancelled":
        webhooks.job_finished(st.store, job_id)
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
    st: State,
    key_id: str = Depends(require_key),
    after: int | None = Query(
        None, ge=0, le=MAX_ID, description="send the events after this result id"
    ),
    last_event_id: str | None = Header(None, alias="Last-Event-ID", max_length=40),
) -> StreamingResponse:
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
