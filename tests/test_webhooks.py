"""Webhooks for real: a loopback HTTP listener (the allow list opened for it) receives
``job.finished``, ``item.flagged`` and ``review.decided`` from a running service on SQLite and
on PostgreSQL, and checks their signatures with the receiver code that docs/review.md shows.
A receiver that answers 500 twice is retried and logged; one that never answers does not hold
up jobs; a server killed in the middle of a delivery sends it after its restart; a callback to a
loopback or private address is refused at submission.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from mien.live.outbound import OutboundPolicy
from mien.service.problem import Problem
from mien.service.webhooks import check_callback_url, key_secret

from .conftest import REPO, SAMPLE, shared
from .service_fixtures import (
    BACKENDS,
    Service,
    cli_key,
    free_port,
    make_database,
    service_fixture,
    spawn_server,
    store_args,
    wait_healthy,
)


def _documented_verifier() -> Callable[..., bool]:
    """``verify_webhook`` exactly as docs/review.md shows it to receivers."""
    text = (REPO / "docs" / "review.md").read_text(encoding="utf-8")
    found = re.search(r"<!-- webhook-verify -->\s*```python\n(.*?)```", text, re.S)
    assert found, "docs/review.md has no receiver example"
    scope: dict[str, Any] = {}
    exec(compile(found.group(1), "docs/review.md", "exec"), scope)
    verify: Callable[..., bool] = scope["verify_webhook"]
    return verify


verify_webhook = _documented_verifier()


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body)
        return value


@dataclass
class Receiver:
    """A loopback HTTP server recording every POST; ``answers[path]`` says what each request to
    that path gets, in turn (the last one repeats; default 200). ``hold`` paths never answer."""

    port: int = 0
    got: list[Received] = field(default_factory=list)
    answers: dict[str, list[int]] = field(default_factory=dict)
    hold: set[str] = field(default_factory=set)
    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Received]:
        return [r for r in list(self.got) if r.path == path]

    def wait_for(self, path: str, n: int, timeout: float = 60.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.at(path)) < n:
            assert time.monotonic() < deadline, f"{path}: {len(self.at(path))} of {n} arrived"
            time.sleep(0.05)
        return self.at(path)


@contextlib.contextmanager
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            rec.got.append(Received(self.path, headers, body))
            rec.arrived.set()
            if self.path in rec.hold:
                rec.release.wait(60)
                return
            plan = rec.answers.get(self.path) or [200]
            code = plan.pop(0) if len(plan) > 1 else plan[0]
            self.send_response(code)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *_args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    rec.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        rec.release.set()
        server.shutdown()
        server.server_close()


WEBHOOKS = {
    "allow_stream_hosts": ("127.0.0.1",),
    "webhook_tries": 4,
    "webhook_backoff_s": 0.3,
    "webhook_timeout_s": 1.0,
}
svc = service_fixture(**WEBHOOKS)


@pytest.fixture(scope="module")
def hooks() -> Iterator[Receiver]:
    with receiver() as rec:
        yield rec


def _submit(svc: Service, callback: str, profile: str | None = None, files: int = 1) -> str:
    data = {"callback_url": callback, **({"profile": profile} if profile else {})}
    upload = [("files", (f"a{i}.jpg", SAMPLE.read_bytes(), "image/jpeg")) for i in range(files)]
    r = svc.client.post("/v1/jobs", data=data, files=upload, headers=svc.auth)
    assert r.status_code == 202, r.text
    return str(r.headers["location"])


def _deliveries(svc: Service, job_id: str) -> list[dict[str, Any]]:
    r = svc.client.get(f"/v1/jobs/{job_id}/deliveries", headers=svc.auth)
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["job_id"] == job_id
    return list(page["deliveries"])


def _until(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
    return value


def _authentic(svc: Service, got: Received) -> bool:
    secret = key_secret(svc.app.state.mien.store, svc.key_id)
    return verify_webhook(secret, got.headers, got.body)


def test_job_finished_and_item_flagged_arrive_signed(svc: Service, hooks: Receiver) -> None:
    path = f"/signed-{svc.backend}"
    job = svc.wait_job(_submit(svc, hooks.url(path), profile="publish-safe"))
    assert job["status"] == "succeeded", job
    got = hooks.wait_for(path, 2)
    by_event = {r.event["event"]: r for r in got}
    assert set(by_event) == {"job.finished", "item.flagged"}, [r.event for r in got]
    for r in got:
        assert _authentic(svc, r), r.headers
        assert r.headers["mien-webhook-id"] == r.event["id"]
        assert r.headers["content-type"] == "application/json"
        t = int(r.headers["mien-webhook-timestamp"])
        assert abs(time.time() - t) < 120
        assert r.headers["mien-signature"].startswith(f"t={t},v1=")
    finished = by_event["job.finished"].event["data"]
    assert finished["job_id"] == job["id"] and finished["status"] == "succeeded"
    assert finished["counts"] == {"items": 1, "done": 1, "failed": 0, "results": 1, "flagged": 1}
    flagged = by_event["item.flagged"].event["data"]
    results = svc.client.get(f"/v1/jobs/{job['id']}/results", headers=svc.auth).json()["items"]
    assert flagged["result_id"] == results[0]["id"]
    assert flagged["rules"] == sorted({f["rule"] for f in results[0]["flags"]})
    assert flagged["rules"]

    # a forged or stale event fails the documented check
    real = by_event["job.finished"]
    assert not verify_webhook("whsec_wrong", real.headers, real.body)
    secret = key_secret(svc.app.state.mien.store, svc.key_id)
    assert not verify_webhook(secret, real.headers, real.body.replace(b"succeeded", b"failed"))
    from mien.service.webhooks import signature_header

    old = int(time.time()) - 301
    stale = {**real.headers, "mien-signature": signature_header(secret, old, real.body)}
    assert not verify_webhook(secret, stale, real.body)

    # a review decision through the API
    r = svc.client.post(
        f"/v1/review/items/{flagged['result_id']}/decision",
        json={"decision": "reject", "reviewer": "ana"},
        headers=svc.auth,
    )
    assert r.status_code == 200, r.text
    decided = hooks.wait_for(path, 3)[-1]
    assert _authentic(svc, decided)
    assert decided.event["event"] == "review.decided"
    assert decided.event["data"] == {
        "result_id": flagged["result_id"],
        "job_id": job["id"],
        "decision": "rejected",
        "actor": {"kind": "key", "name": "ana", "key_id": svc.key_id},
    }
    log = _until(lambda: [d for d in _deliveries(svc, job["id"]) if d["status"] == "delivered"])
    assert len(log) == 3 and all(d["attempts"] == 1 and d["last_status_code"] == 200 for d in log)


def test_a_failing_receiver_is_retried_and_logged(svc: Service, hooks: Receiver) -> None:
    path = f"/flaky-{svc.backend}"
    hooks.answers[path] = [500, 500, 200]
    job = svc.wait_job(_submit(svc, hooks.url(path)))
    got = hooks.wait_for(path, 3)
    assert len({r.headers["mien-webhook-id"] for r in got}) == 1  # one event, three attempts
    assert len({r.body for r in got}) == 1  # the same bytes each time
    assert all(_authentic(svc, r) for r in got)
    (row,) = _until(
        lambda: [d for d in _deliveries(svc, job["id"]) if d["status"] == "delivered"] or None
    )
    assert row["attempts"] == 3 and row["last_status_code"] == 200 and row["last_error"] is None
    assert row["event"] == "job.finished" and row["next_try_at"] is None


def test_a_receiver_that_always_fails_is_given_up(svc: Service, hooks: Receiver) -> None:
    path = f"/down-{svc.backend}"
    hooks.answers[path] = [503]
    job = svc.wait_job(_submit(svc, hooks.url(path)))
    (row,) = _until(
        lambda: [d for d in _deliveries(svc, job["id"]) if d["status"] == "failed"] or None
    )
    assert row["attempts"] == WEBHOOKS["webhook_tries"] == len(hooks.at(path))
    assert row["last_status_code"] == 503 and "503" in row["last_error"]


def test_a_hanging_receiver_does_not_hold_up_jobs(svc: Service, hooks: Receiver) -> None:
    hang, fine = f"/hang-{svc.backend}", f"/fine-{svc.backend}"
    hooks.hold.add(hang)
    hanging = [svc.wait_job(_submit(svc, hooks.url(hang)), timeout=120) for _ in range(2)]
    job = svc.wait_job(_submit(svc, hooks.url(fine)), timeout=120)
    assert all(j["status"] == "succeeded" for j in [*hanging, job])
    (got,) = hooks.wait_for(fine, 1, timeout=30)
    assert got.event["data"]["job_id"] == job["id"]
    # the hanging receiver's attempts time out after webhook_timeout_s and are retried later
    timed_out = _until(
        lambda: [d for d in _deliveries(svc, hanging[0]["id"]) if d["last_error"]] or None
    )
    assert "timed out" in timed_out[0]["last_error"].lower(), timed_out


def test_a_stream_job_sends_item_flagged_for_each_flagged_segment(
    svc: Service, hooks: Receiver, tmp_path: Path
) -> None:
    from .live_streams import HLSServer, has_ffmpeg, write_hls

    if not has_ffmpeg():
        pytest.skip("needs the ffmpeg command to make an HLS stream")
    write_hls(shared("pyfeat_media", "single_face.mp4"), tmp_path, max_frames=30, audio=False)
    server = HLSServer(tmp_path)
    try:
        path = f"/stream-{svc.backend}"
        data = {"kind": "stream", "url": server.url(), "profile": "publish-safe"}
        r = svc.client.post(
            "/v1/jobs", data={**data, "callback_url": hooks.url(path)}, headers=svc.auth
        )
        assert r.status_code == 202, r.text
        job = svc.wait_job(r.headers["Location"], timeout=120)
    finally:
        server.close()
    assert job["status"] == "succeeded", job
    page = svc.client.get(f"/v1/jobs/{job['id']}/results?limit=1000", headers=svc.auth).json()
    # the review items of a stream are its flagged face-track segments (docs/review.md); the
    # frames keep their flags in the results but are not items of their own
    flagged = sorted(x["id"] for x in page["items"] if x["kind"] == "segment")
    assert flagged, "the publish-safe profile flagged no segment of a clip with a face"
    assert all(x["flags"] for x in page["items"] if x["kind"] == "segment")
    got = hooks.wait_for(path, len(flagged) + 1)
    assert all(_authentic(svc, x) for x in got)
    events = [x.event for x in got]
    assert sorted(e["data"]["result_id"] for e in events if e["event"] == "item.flagged") == flagged
    assert [e["event"] for e in events].count("job.finished") == 1


def test_a_key_made_before_webhooks_gets_a_secret(svc: Service, hooks: Receiver) -> None:
    from sqlalchemy import update

    from mien.service.schema import api_keys

    store = svc.app.state.mien.store
    key_id, key = svc.new_key("old")
    with store.engine.begin() as c:  # as after migration 0004: the column is empty
        c.execute(update(api_keys).where(api_keys.c.id == key_id).values(webhook_secret=None))
    path = f"/old-key-{svc.backend}"
    upload = {"files": ("a.jpg", SAMPLE.read_bytes(), "image/jpeg")}
    auth = {"Authorization": f"Bearer {key}"}
    data = {"callback_url": hooks.url(path)}
    r = svc.client.post("/v1/jobs", data=data, files=upload, headers=auth)
    assert r.status_code == 202, r.text
    (got,) = hooks.wait_for(path, 1)
    secret = store.get_key(key_id)["webhook_secret"]
    assert secret and verify_webhook(secret, got.headers, got.body)


def test_a_cancelled_job_sends_job_finished(svc: Service, hooks: Receiver) -> None:
    path = f"/cancel-{svc.backend}"
    busy = _submit(svc, hooks.url(path), files=4)  # the one worker is busy with this one
    queued = _submit(svc, hooks.url(path))
    r = svc.client.delete(queued, headers=svc.auth)
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
    svc.wait_job(busy)
    got = {r.event["data"]["job_id"]: r.event["data"] for r in hooks.wait_for(path, 2)}
    assert got[r.json()["id"]]["status"] == "cancelled"
    assert got[busy.rsplit("/", 1)[1]]["status"] == "succeeded"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.2:8080/hook",  # loopback, not the allowed address
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "ftp://127.0.0.1/hook",
        "http://user:pw@127.0.0.1/hook",
        "not a url",
    ],
)
def test_a_refused_callback_is_refused_at_submission(svc: Service, url: str) -> None:
    before = svc.app.state.mien.store.active_jobs(svc.key_id)
    upload = [("files", ("a.jpg", SAMPLE.read_bytes(), "image/jpeg"))]
    for kw in ({"data": {"callback_url": url}}, {"params": {"callback_url": url}}):
        r = svc.client.post("/v1/jobs", files=upload, headers=svc.auth, **kw)  # type: ignore[arg-type]
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["code"] == "CallbackRefused"
    assert svc.app.state.mien.store.active_jobs(svc.key_id) == before


def test_loopback_needs_the_allow_list() -> None:
    for url in ("http://127.0.0.1:9/x", "http://192.168.1.5/x", "https://[fd00::1]/x"):
        with pytest.raises(Problem) as err:
            check_callback_url(url, OutboundPolicy())
        assert err.value.code == "CallbackRefused"
    assert check_callback_url(" http://127.0.0.1:9/x ", OutboundPolicy.from_entries(["127.0.0.1"]))
    public = OutboundPolicy.from_entries([], resolver=lambda _h, _p: ["93.184.216.34"])
    assert check_callback_url("https://hooks.example/x?t=1", public)
    rebound = OutboundPolicy.from_entries([], resolver=lambda _h, _p: ["127.0.0.1"])
    with pytest.raises(Problem):
        check_callback_url("https://hooks.example/x", rebound)


def test_each_attempt_checks_the_address_again_and_follows_no_redirect() -> None:
    from mien.live.outbound import OutboundRefused
    from mien.service.webhook_sender import post

    with receiver() as hooks:
        hooks.answers["/moved"] = [302]
        url = f"http://hooks.example:{hooks.port}/moved"
        # the name now resolves to loopback (DNS rebinding after the submission's check)
        rebound = OutboundPolicy.from_entries([], resolver=lambda _h, _p: ["127.0.0.1"])
        with pytest.raises(OutboundRefused):
            post(url, b"{}", {}, rebound, 1.0)
        assert hooks.got == []  # nothing was sent
        allowed = OutboundPolicy.from_entries(["127.0.0.1"], resolver=lambda _h, _p: ["127.0.0.1"])
        assert post(url, b"{}", {}, allowed, 1.0) == 302  # answered, not followed
        (got,) = hooks.got
        assert got.headers["host"] == f"hooks.example:{hooks.port}" and got.body == b"{}"


def test_serve_refuses_a_refused_default_callback(tmp_path: Path) -> None:
    from mien.cli.common import EXIT_CANNOT_RUN

    run = subprocess.run(
        [sys.executable, "-m", "mien", "serve", "--data-dir", str(tmp_path), "--port", "9",
         "--callback-url", "http://10.1.2.3/hook"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == EXIT_CANNOT_RUN, run.stderr
    assert "--callback-url" in run.stderr and "private" in run.stderr


# -- a real `mien serve`, killed in the middle of a delivery ---------------------------------


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest) -> Iterator[Any]:
    db = make_database(request.param)
    yield db
    db.drop()


def test_a_killed_server_resumes_its_deliveries(database: Any, tmp_path: Path) -> None:
    store = store_args(tmp_path, database)
    key = cli_key(store)
    key_id = key.split("_")[1]
    secret = subprocess.run(
        [sys.executable, "-m", "mien", "keys", "webhook-secret", key_id, *store],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.strip()
    assert secret.startswith("whsec_")
    with receiver() as hooks:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        args = [
            "--port", str(port), *store, "--allow-stream-hosts", "127.0.0.1",
            "--callback-url", hooks.url("/default"),  # the server's default: the job names none
            "--webhook-timeout", "1", "--webhook-backoff", "0.3", "--job-lease", "3",
        ]  # fmt: skip
        log = tmp_path / "serve.log"
        hooks.hold.add("/default")
        proc = spawn_server(args, log)
        try:
            wait_healthy(proc, base, log)
            auth = {"Authorization": f"Bearer {key}"}
            upload = {"files": ("a.jpg", SAMPLE.read_bytes(), "image/jpeg")}
            r = httpx.post(f"{base}/v1/jobs", files=upload, headers=auth, timeout=60)
            assert r.status_code == 202, r.text
            job_id = r.json()["id"]
            assert hooks.arrived.wait(180), log.read_text()
            os.killpg(proc.pid, signal.SIGKILL)  # in the middle of the first attempt
            proc.wait(timeout=30)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        hooks.hold.discard("/default")
        proc = spawn_server(args, log)
        try:
            wait_healthy(proc, base, log)
            got = hooks.wait_for("/default", 2, timeout=60)
            assert got[0].headers["mien-webhook-id"] == got[1].headers["mien-webhook-id"]
            assert got[1].event["event"] == "job.finished"
            assert got[1].event["data"]["job_id"] == job_id
            assert all(verify_webhook(secret, r.headers, r.body) for r in got)

            def delivered() -> Any:
                page = httpx.get(f"{base}/v1/jobs/{job_id}/deliveries", headers=auth).json()
                return [d for d in page["deliveries"] if d["status"] == "delivered"]

            (row,) = _until(delivered)
            assert row["attempts"] == 2 and row["last_status_code"] == 200
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def test_the_webhook_secret_rotates(tmp_path: Path) -> None:
    from mien.service.keys import create_key
    from mien.service.store import Store

    store = Store.open(f"sqlite:///{tmp_path / 'k.db'}")
    try:
        key_id, key = create_key(store, "k")
        first = key_secret(store, key_id)
        assert first and first.startswith("whsec_") and first not in key
        assert key_secret(store, key_id) == first
        second = key_secret(store, key_id, rotate=True)
        assert second and second != first and key_secret(store, key_id) == second
        assert key_secret(store, "nosuchkey") is None
    finally:
        store.close()
