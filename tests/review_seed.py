"""A review queue at volume, written straight into a store (no analysis): flagged photo items
and video segment rows of several jobs of one API key, with varied rules, severities, profiles
and times. Used by tests/test_review_page.py and bench/review.py."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from sqlalchemy import insert

from mien.service.queue import severity_of
from mien.service.schema import job_items, jobs, results
from mien.service.store import Store

RULES = ("eyes-closed", "sunglasses", "face-too-small", "mask", "head-turned")
PROFILES = ("publish-safe", "id-photo")
PER_JOB = 100


def _flags(i: int) -> list[dict[str, Any]]:
    """1 to 3 flags; every 7th item has an error (the severity sort puts those first)."""
    out = []
    for k in range(1 + i % 3):
        out.append(
            {
                "rule": RULES[(i + k) % len(RULES)],
                "severity": "error" if i % 7 == 0 and k == 0 else "warning",
                "message": f"synthetic flag {k} of item {i}",
                "face": k,
                "unknown": False,
                "values": {},
            }
        )
    return out


def seed_queue(store: Store, key_id: str, n: int, *, segment_every: int = 4) -> list[str]:
    """``n`` flagged items for ``key_id`` (every ``segment_every``-th job a video job whose
    rows are segments), oldest first, 10 ms apart from now on; returns the job ids."""
    start = time.time()
    job_ids: list[str] = []
    job_rows: list[dict[str, Any]] = []
    item_rows: list[dict[str, Any]] = []
    result_rows: list[dict[str, Any]] = []
    for j in range((n + PER_JOB - 1) // PER_JOB):
        job_id = uuid.uuid4().hex
        job_ids.append(job_id)
        video = j % segment_every == segment_every - 1
        profile = PROFILES[j % len(PROFILES)]
        count = min(PER_JOB, n - j * PER_JOB)
        job_rows.append(
            {
                "id": job_id,
                "key_id": key_id,
                "kind": "video" if video else "images",
                "status": "succeeded",
                "params": json.dumps({"profile": profile}),
                "request_hash": "0" * 64,
                "total_items": 1 if video else count,
                "done_items": 1 if video else count,
                "created_at": start + j * PER_JOB * 0.01,
                "finished_at": start + j * PER_JOB * 0.01,
                "retention_s": 86400,
            }
        )
        for idx in range(1 if video else count):
            name = f"clip-{j}.mp4" if video else f"photo-{j}-{idx}.jpg"
            item_rows.append({"job_id": job_id, "idx": idx, "name": name, "status": "done"})
        for k in range(count):
            i = j * PER_JOB + k
            data: dict[str, Any] = {"source": f"item {i}", "profile": profile, "faces": [{}]}
            if video:
                data.update(start_s=2.0 * k, end_s=2.0 * k + 1.5, track_id=k % 5)
            result_rows.append(
                {
                    "job_id": job_id,
                    "item_idx": 0 if video else k,
                    "seq": k if video else 0,
                    "kind": "segment" if video else "image",
                    "data": json.dumps(data),
                    "flags": json.dumps(_flags(i)),
                    "severity": severity_of(_flags(i)),
                    "flagged": True,
                    "created_at": start + i * 0.01,
                }
            )
    with store.engine.begin() as c:
        c.execute(insert(jobs), job_rows)
        c.execute(insert(job_items), item_rows)
        for at in range(0, len(result_rows), 1000):
            c.execute(insert(results), result_rows[at : at + 1000])
    return job_ids
