"""Uploaded media on disk: ``<data_dir>/media/<job id>/<item>.bin``, and their deletion."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from mien.service.store import Store

log = logging.getLogger("mien.service")


def job_dir(media_root: Path, job_id: str) -> Path:
    if not job_id.isalnum():
        raise ValueError(f"bad job id {job_id!r}")
    return media_root / job_id


def delete_job_media(media_root: Path, job_id: str) -> None:
    """Delete every file uploaded for (or derived from) a job."""
    shutil.rmtree(job_dir(media_root, job_id), ignore_errors=True)


def purge_expired(store: Store, media_root: Path, now: float | None = None) -> list[str]:
    """Delete the media of every finished job whose retention has ended; returns their ids."""
    now = time.time() if now is None else now
    purged = []
    for job_id in store.expired_jobs(now):
        delete_job_media(media_root, job_id)
        store.mark_purged(job_id)
        purged.append(job_id)
    if purged:
        log.info("retention: deleted the media of %d job(s)", len(purged))
    return purged
