"""Creating jobs, apart from HTTP: what a request asks for (:func:`job_request`) and
:class:`JobService`, which owns the request's fingerprint, its ``Idempotency-Key``, the per-key
quota and the saving of its media, so the route only reads the request and answers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from mien.live.source import display_url
from mien.media.sniff import media_kind
from mien.service import streams
from mien.service.analysis import AnalysisParams, parse_params
from mien.service.config import ServiceConfig, parse_duration
from mien.service.media import delete_job_media, job_dir, media_problem
from mien.service.problem import Problem
from mien.service.rows import JobRow
from mien.service.store import Store, new_id
from mien.service.uploads import RequestBody, Upload, require_content, save
from mien.service.webhooks import check_callback_url


@dataclass(frozen=True)
class NewJob:
    """A validated job request: what :meth:`JobService.create` stores."""

    kind: str
    params: dict[str, Any]  # the job's parameters as stored (JSON)
    retention_s: int
    uploads: list[Upload]
    #: a stream job's address; only hashed and written to the job's media folder, never stored
    #: in the database (it may hold credentials)
    stream_url: str | None = None
    #: where the job's webhooks go (checked against the outbound policy); not in ``params``
    callback_url: str | None = None


def job_request(
    config: ServiceConfig,
    params: AnalysisParams,
    query: Mapping[str, str | None],
    body: RequestBody,
    sample_fps: float | None,
) -> NewJob:
    """The job that a request asks for: the query's fields, overridden by the form's; refuses
    a job this server will not run (wrong kind, too many files, retention over the limit...)."""
    fields = {k: v for k, v in query.items() if v is not None} | body.fields
    job = _job_request(config, params, fields, body, sample_fps)
    callback = fields.get("callback_url")
    if callback is not None and callback.strip():
        return dataclasses.replace(
            job, callback_url=check_callback_url(callback, config.outbound_policy())
        )
    return dataclasses.replace(job, callback_url=config.callback_url)


def _job_request(
    config: ServiceConfig,
    params: AnalysisParams,
    fields: dict[str, str],
    body: RequestBody,
    sample_fps: float | None,
) -> NewJob:
    if "features" in body.fields or "profile" in body.fields:
        params = parse_params(fields.get("features"), fields.get("profile"))
    if body.multipart and "sample_fps" in body.fields:
        sample_fps = _sample_fps(body.fields["sample_fps"])
    kind = fields.get("kind")
    url = fields.get("url")
    if kind == "stream" or (kind is None and url is not None):
        return _stream_job(config, params, fields, body.uploads)
    uploads = body.uploads
    require_content(uploads)
    if len(uploads) > config.max_items_per_job:
        raise Problem("BadRequest", f"at most {config.max_items_per_job} files per job")
    keep = _retention(config, fields.get("retention"))
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
        if sample_fps is not None:
            params = dataclasses.replace(params, sample_fps=sample_fps)
    return NewJob(kind, params.to_json(), keep, uploads)


def _stream_job(
    config: ServiceConfig, params: AnalysisParams, fields: dict[str, str], uploads: list[Upload]
) -> NewJob:
    if uploads:
        raise Problem("BadRequest", "a stream job takes a url, not an upload")
    keep = _retention(config, fields.get("retention"))
    stream: dict[str, Any] = {
        "url": "",
        "max_seconds": streams.parse_int(
            fields.get("max_seconds"),
            "max_seconds",
            streams.DEFAULT_MAX_SECONDS,
            1,
            streams.MAX_SECONDS_LIMIT,
        ),
        "retries": streams.parse_int(
            fields.get("retries"), "retries", streams.DEFAULT_RETRIES, 0, streams.MAX_RETRIES
        ),
    }
    checked = streams.check_stream_url(fields.get("url"))
    stream["url"] = display_url(checked)  # never the credentials
    return NewJob("stream", {**params.to_json(), "stream": stream}, keep, [], checked)


def _sample_fps(text: str) -> float:
    try:
        fps = float(text)
    except ValueError:
        raise Problem("InvalidParameter", "sample_fps must be a number") from None
    if not 0 < fps <= 240:
        raise Problem("InvalidParameter", "sample_fps must lie in (0, 240]")
    return fps


def _is_video(upload: Upload) -> bool:
    return media_kind(upload.head(4096)) == "video"


def _retention(config: ServiceConfig, retention: str | None) -> int:
    try:
        keep = config.retention_s if retention is None else parse_duration(retention)
    except ValueError as exc:
        raise Problem("InvalidParameter", str(exc)) from None
    if keep > config.retention_s:
        raise Problem(
            "InvalidParameter",
            f"retention may be at most the server's {config.retention_s} s",
        )
    return keep


class JobService:
    """Queues jobs in the store, each with its media saved under the media folder."""

    def __init__(self, store: Store, config: ServiceConfig) -> None:
        self.store = store
        self.config = config

    def create(self, key_id: str, job: NewJob, idempotency_key: str | None) -> JobRow:
        """Queue ``job`` for API key ``key_id``; the job row.

        A repeated ``idempotency_key`` answers the job it created when the request is the same
        (its fingerprint), else 409 ``IdempotencyConflict``. A key with ``max_jobs_per_key``
        queued or running jobs is refused (429 ``TooManyJobs``). Media is saved before the row
        is inserted and deleted again when the insert fails: no folder without a job.
        """
        idem = idempotency_key
        fingerprint = _fingerprint(job)
        if idem:
            found = self.store.find_idempotent(key_id, idem)
            if found is not None:
                if found.request_hash != fingerprint:
                    raise Problem(
                        "IdempotencyConflict",
                        "this Idempotency-Key was used for a different request",
                    )
                return found
        limit = self.config.max_jobs_per_key
        active = self.store.active_jobs(key_id)  # a cheap early answer; the insert checks again
        if active >= limit:
            raise _too_many(active, limit)
        job_id = new_id()
        media = self.config.media_dir
        try:
            refused = self._insert(job_id, key_id, job, fingerprint, idem)
        except IntegrityError:  # the same Idempotency-Key raced in from another request
            delete_job_media(media, job_id)
            if idem:
                found = self.store.find_idempotent(key_id, idem)
                if found is not None and found.request_hash == fingerprint:
                    return found
            raise Problem("IdempotencyConflict", "this Idempotency-Key is being used") from None
        except OSError as exc:  # the media folder is full, read-only or gone: no half-written job
            delete_job_media(media, job_id)
            raise media_problem(exc) from None
        except BaseException:  # the store failed (or anything else): no folder without a job row
            delete_job_media(media, job_id)
            raise
        if refused is not None:
            delete_job_media(media, job_id)
            raise _too_many(refused, limit)
        row = self.store.get_job(job_id)
        assert row is not None
        return row

    def _insert(
        self, job_id: str, key_id: str, job: NewJob, fingerprint: str, idem: str | None
    ) -> int | None:
        """Save the media, then insert the job; the active job count that refused it, if any."""
        folder = job_dir(self.config.media_dir, job_id)
        items: list[tuple[str, str | None]] = [
            (up.name, save(up, folder, i)) for i, up in enumerate(job.uploads)
        ]
        if job.stream_url is not None:  # no upload: the address waits in the job's media folder
            streams.write_url(folder, job.stream_url)
            items = [(str(job.params["stream"]["url"]), None)]
        return self.store.create_job(
            job_id=job_id,
            key_id=key_id,
            kind=job.kind,
            params=job.params,
            items=items,
            retention_s=job.retention_s,
            request_hash=fingerprint,
            idempotency_key=idem,
            max_active=self.config.max_jobs_per_key,
            callback_url=job.callback_url,
        )


def _fingerprint(job: NewJob) -> str:
    """What makes two requests the same one: kind, parameters, retention, the callback address,
    the uploads' names and contents and a stream's address (only hashed: it may hold
    credentials)."""
    h = hashlib.sha256()
    fixed: list[Any] = [job.kind, job.params, job.retention_s]
    if job.callback_url is not None:
        fixed.append(job.callback_url)
    h.update(json.dumps(fixed, sort_keys=True).encode())
    for up in job.uploads:
        h.update(up.name.encode() + b"\0" + up.sha256().encode())
    fingerprint = h.hexdigest()
    if job.stream_url is None:
        return fingerprint
    return hashlib.sha256((fingerprint + "\0" + job.stream_url).encode()).hexdigest()


def _too_many(active: int, limit: int) -> Problem:
    return Problem(
        "TooManyJobs",
        f"this key has {active} queued or running job(s), the limit is {limit}; "
        "wait for one to finish or delete one",
    )
