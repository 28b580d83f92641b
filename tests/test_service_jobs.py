"""Jobs in the store: DELETE cancels and purges, retention purges, limits, the atomic claim,
the migrations — against SQLite and the real PostgreSQL."""

from __future__ import annotations

import json
import time

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from mien.service.config import ServiceConfig
from mien.service.media import purge_expired
from mien.service.schema import metadata
from mien.service.store import Store

from .conftest import SAMPLE, shared
from .service_fixtures import Database, Service, database_fixture, service_fixture

JPEG = SAMPLE.read_bytes()
queued = service_fixture(workers=0, max_jobs_per_key=2)  # jobs stay queued: no worker runs
running = service_fixture(retention_s=3600)
database = database_fixture()


def post_job(svc: Service, query: str = "", data: bytes = JPEG):
    return svc.client.post(
        f"/v1/jobs{query}", content=data, headers={**svc.auth, "content-type": "image/jpeg"}
    )


def media_files(svc: Service, job_id: str) -> list[str]:
    folder = svc.config.media_dir / job_id
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_delete_cancels_a_queued_job_and_purges_its_media(queued: Service) -> None:
    r = post_job(queued)
    assert r.status_code == 202
    job_id = r.json()["id"]
    assert media_files(queued, job_id) == ["00000.bin"]
    assert (queued.config.media_dir / job_id / "00000.bin").read_bytes() == JPEG
    d = queued.client.delete(r.headers["location"], headers=queued.auth)
    assert d.status_code == 200
    job = d.json()
    assert job["status"] == "cancelled" and job["retention"]["media_purged"]
    assert not (queued.config.media_dir / job_id).exists()
    assert queued.client.get(r.headers["location"], headers=queued.auth).json() == job
    # deleting again is harmless
    assert queued.client.delete(r.headers["location"], headers=queued.auth).status_code == 200


def test_concurrent_jobs_per_key_limit(queued: Service) -> None:
    _, key = queued.new_key("limited")
    auth = {"Authorization": f"Bearer {key}", "content-type": "image/jpeg"}
    made = [queued.client.post("/v1/jobs", content=JPEG, headers=auth) for _ in range(2)]
    assert [m.status_code for m in made] == [202, 202]
    over = queued.client.post("/v1/jobs", content=JPEG, headers=auth)
    assert over.status_code == 429 and over.json()["code"] == "TooManyJobs"
    queued.client.delete(made[0].headers["location"], headers=auth)
    again = queued.client.post("/v1/jobs", content=JPEG, headers=auth)
    assert again.status_code == 202
    for r in (made[1], again):
        queued.client.delete(r.headers["location"], headers=auth)


def test_retention_purges_media_but_keeps_numbers(running: Service) -> None:
    photo = shared("dlib_examples_faces", "images", "2008_002506.jpg")
    r = running.client.post(
        "/v1/jobs",
        files=[("files", (photo.name, photo.read_bytes(), "image/jpeg"))],
        data={"retention": "2s"},
        headers=running.auth,
    )
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    assert media_files(running, job_id) == ["00000.bin"]
    job = running.wait_job(r.headers["location"])
    assert job["status"] == "succeeded" and job["retention"]["seconds"] == 2
    deadline = time.monotonic() + 60
    while not job["retention"]["media_purged"]:  # the purger runs every 0.5 s in these tests
        assert time.monotonic() < deadline, job
        time.sleep(0.3)
        job = running.client.get(r.headers["location"], headers=running.auth).json()
    assert not (running.config.media_dir / job_id).exists()
    page = running.client.get(r.headers["location"] + "/results", headers=running.auth).json()
    (item,) = page["items"]
    assert len(item["result"]["faces"]) >= 1
    text = json.dumps(item)
    assert len(text) < 20_000  # numbers only: no picture or crop is kept
    assert "base64" not in text and "data:image" not in text


def test_retention_zero_keeps_no_media(running: Service) -> None:
    r = post_job(running, "?retention=0")
    assert r.status_code == 202
    job = running.wait_job(r.headers["location"])
    assert job["status"] == "succeeded"
    assert job["retention"]["seconds"] == 0 and job["retention"]["media_purged"]
    assert not (running.config.media_dir / job["id"]).exists()
    page = running.client.get(r.headers["location"] + "/results", headers=running.auth).json()
    assert len(page["items"][0]["result"]["faces"]) == 1


def test_delete_of_a_finished_job_purges_media_and_keeps_status(running: Service) -> None:
    r = post_job(running)
    job = running.wait_job(r.headers["location"])
    assert job["status"] == "succeeded" and media_files(running, job["id"])
    d = running.client.delete(r.headers["location"], headers=running.auth).json()
    assert d["status"] == "succeeded" and d["retention"]["media_purged"]
    assert not (running.config.media_dir / job["id"]).exists()
    page = running.client.get(r.headers["location"] + "/results", headers=running.auth).json()
    assert len(page["items"]) == 1


# -- the store alone ----------------------------------------------------------------------------


def _store(database: Database, tmp_path) -> Store:
    cfg = ServiceConfig(data_dir=tmp_path, db_url=database.url)
    return Store.open(cfg.database_url)


def _job(store: Store, job_id: str, key_id: str, items: int = 2, retention: int = 60) -> None:
    store.create_job(
        job_id=job_id,
        key_id=key_id,
        kind="images",
        params={"features": ["detection"]},
        items=[(f"{i}.jpg", f"{i:05d}.bin") for i in range(items)],
        retention_s=retention,
        request_hash="h",
        idempotency_key=None,
    )


def test_migrations_match_the_tables(database: Database, tmp_path) -> None:
    store = _store(database, tmp_path)
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    store.close()
    assert diff == []
    Store.open(ServiceConfig(data_dir=tmp_path, db_url=database.url).database_url).close()


def test_claim_is_exclusive_and_stale_jobs_are_taken_over(database: Database, tmp_path) -> None:
    store = _store(database, tmp_path)
    store.add_key("k1", "", "x" * 64)
    _job(store, "a" * 32, "k1")
    _job(store, "b" * 32, "k1")
    first = store.claim("w1", lease_s=30)
    second = store.claim("w2", lease_s=30)
    assert first and second and first.job_id != second.job_id
    assert store.claim("w3", lease_s=30) is None  # both held, leases fresh
    # w1 dies: after its lease, another worker takes the job over (attempt 2)
    time.sleep(0.3)
    store.heartbeat(second.job_id, "w2")
    taken = store.claim("w3", lease_s=0.2)
    assert taken is not None and taken.job_id == first.job_id and taken.attempts == 2
    assert not store.heartbeat(first.job_id, "w1")  # w1 has lost it
    assert not store.finish_item(first.job_id, 0, "w1")
    assert store.finish_item(first.job_id, 0, "w3")
    assert store.finish_job(first.job_id, "w3", "succeeded")
    job = store.get_job(first.job_id)
    assert job is not None and job.status == "succeeded" and job.done_items == 1 and job.expires_at
    # the purge deletes media of jobs whose retention ended, only those
    folder = tmp_path / "media" / first.job_id
    folder.mkdir(parents=True)
    (folder / "00000.bin").write_bytes(b"x")
    assert purge_expired(store, tmp_path / "media", now=time.time()) == []
    assert purge_expired(store, tmp_path / "media", now=time.time() + 61) == [first.job_id]
    assert not folder.exists() and store.get_job(first.job_id).media_purged
    store.close()


def test_requeue_and_give_up_after_max_attempts(database: Database, tmp_path) -> None:
    store = _store(database, tmp_path)
    store.add_key("k1", "", "x" * 64)
    _job(store, "c" * 32, "k1")
    assert store.claim("w1", lease_s=30)
    time.sleep(0.2)
    assert store.recover_stale(lease_s=0.1) == 1
    assert store.get_job("c" * 32).status == "queued"
    claim = store.claim("w2", lease_s=30)
    assert claim and claim.attempts == 2
    assert store.fail_exhausted(claim.job_id, "w2", 2)
    job = store.get_job(claim.job_id)
    assert job is not None and job.status == "failed" and job.error_code == "JobInterrupted"
    store.close()


@pytest.mark.parametrize("text", ["0", "90", "90s", "15m", "24h", "7d", "1.5h"])
def test_durations(text: str) -> None:
    from mien.service.config import parse_duration

    expected = {"0": 0, "90": 90, "90s": 90, "15m": 900, "24h": 86400, "7d": 604800}
    assert parse_duration(text) == expected.get(text, 5400)
    with pytest.raises(ValueError):
        parse_duration("-" + text if text != "0" else "soon")


def test_a_crashed_worker_is_replaced_and_its_job_resumed(running: Service) -> None:
    import os
    import signal

    photos = sorted(shared("dlib_examples_faces", "images").glob("*.jpg"))
    files = [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in photos]
    r = running.client.post("/v1/jobs", files=files, headers=running.auth)
    assert r.status_code == 202
    supervisor = running.app.state.supervisor
    (pid,) = supervisor.worker_pids()
    deadline = time.monotonic() + 300
    while (job := running.client.get(r.headers["location"], headers=running.auth).json())[
        "progress"
    ]["done"] < 1:
        assert job["status"] in ("queued", "running") and time.monotonic() < deadline, job
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)  # the worker process this app started, mid-job
    job = running.wait_job(r.headers["location"], timeout=600)
    assert job["status"] == "succeeded" and job["attempts"] == 2, job
    (new_pid,) = supervisor.worker_pids()
    assert new_pid != pid
    page = running.client.get(
        r.headers["location"] + "/results", params={"limit": 100}, headers=running.auth
    ).json()
    assert sorted(it["item"] for it in page["items"]) == list(range(len(files)))
