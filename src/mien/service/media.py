"""Uploaded media on disk: ``<data_dir>/media/<job id>/<item>.bin``, and their deletion."""

from __future__ import annotations

import errno
import logging
import shutil
import time
from pathlib import Path

from mien.service.problem import Problem
from mien.service.store import Store

log = logging.getLogger("mien.service")


def job_dir(media_root: Path, job_id: str) -> Path:
    if not job_id.isalnum():
        raise ValueError(f"bad job id {job_id!r}")
    return media_root / job_id


_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def media_problem(exc: OSError) -> Problem:
    """The answer when the media folder cannot take an upload: 507 ``InsufficientStorage`` when
    it is full, else 503 ``MediaUnavailable`` (read-only, missing, no permission, I/O error).

    The detail names the cause, never the server's paths; the log has the whole error.
    """
    log.error("the media folder cannot be written: %s", exc)
    reason = exc.strerror or type(exc).__name__
    if exc.errno in _FULL:
        return Problem(
            "InsufficientStorage",
            f"the server has no room left for this upload ({reason}); nothing was kept",
        )
    return Problem(
        "MediaUnavailable",
        f"the server cannot store uploads now ({reason}); nothing was kept",
    )


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


#: A media folder without a job row is removed once it is this old (an upload being saved
#: right now has its folder before its row).
ORPHAN_AGE_S = 600.0


def remove_orphans(
    store: Store, media_root: Path, now: float | None = None, min_age_s: float = ORPHAN_AGE_S
) -> list[str]:
    """Delete media folders that no job row owns (left by a crash between writing an upload
    and inserting its job), when older than ``min_age_s``; returns their names."""
    now = time.time() if now is None else now
    try:
        candidates = {
            p.name: p
            for p in media_root.iterdir()
            if p.is_dir() and not p.is_symlink() and p.name.isalnum()
        }
    except FileNotFoundError:
        return []
    old = {n: p for n, p in candidates.items() if now - p.stat().st_mtime >= min_age_s}
    if not old:
        return []
    known = store.existing_jobs(sorted(old))
    removed = []
    for name in sorted(set(old) - known):
        shutil.rmtree(old[name], ignore_errors=True)
        removed.append(name)
    if removed:
        log.warning("removed %d upload folder(s) that had no job", len(removed))
    return removed
