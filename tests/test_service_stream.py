"""Stream jobs of the service, for real: a worker analyses an HLS stream served on loopback,
its events are stored as results and sent as Server-Sent Events (SQLite store). The server
allows 127.0.0.1 (``allow_stream_hosts``); what it refuses is in test_service_ssrf.py."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import shared
from .live_streams import HLSServer, free_port, served_hls, start_growing_hls
from .service_fixtures import Service, start_service


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    # the HLS server is on loopback, which stream jobs may open only when the operator allows it
    tmp = tmp_path_factory.mktemp("svc-stream")
    yield from start_service(tmp, "sqlite", None, allow_stream_hosts=("127.0.0.1/32",))


@pytest.fixture(scope="module")
def hls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HLSServer]:
    folder = tmp_path_factory.mktemp("hls")
    yield from served_hls(shared("pyfeat_media", "single_face.mp4"), folder, max_frames=75)


def post_stream(svc: Service, url: str, **fields: str) -> Any:
    return svc.client.post(
        "/v1/jobs", data={"kind": "stream", "url": url, **fields}, headers=svc.auth
    )


def all_results(svc: Service, job_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        q = f"?limit=7&cursor={cursor}" if cursor else "?limit=7"
        page = svc.client.get(f"/v1/jobs/{job_id}/results{q}", headers=svc.auth).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def parse_sse(body: str) -> list[dict[str, Any]]:
    """The messages of an event stream (comments and ``retry`` skipped)."""
    out = []
    for block in body.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith(":") or ": " not in line:
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if "data" in fields:
            data = json.loads(fields["data"])
            out.append({"id": int(fields["id"]), "event": fields["event"], "data": data})
    return out


def test_stream_job_stores_events_and_sends_them_as_sse(svc: Service, hls: HLSServer) -> None:
    port = hls.httpd.server_address[1]
    url = f"http://viewer:s3cret@127.0.0.1:{port}/index.m3u8"  # credentials are never shown
    r = post_stream(svc, url, features="detection", profile="publish-safe")
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["kind"] == "stream" and job["links"]["events"] == f"/v1/jobs/{job['id']}/events"
    assert job["params"]["stream"]["url"] == f"http://***@127.0.0.1:{port}/index.m3u8"
    # follow the events while the job runs: the response ends when the job is final
    sse = svc.client.get(job["links"]["events"], headers=svc.auth)
    assert sse.status_code == 200
    assert sse.headers["content-type"].startswith("text/event-stream")
    final = svc.wait_job(r.headers["Location"], timeout=120)
    assert final["status"] == "succeeded", final
    assert final["error"] is None and final["progress"]["done"] == 1
    results = all_results(svc, job["id"])
    kinds = [x["kind"] for x in results]
    assert kinds[0] == "stream_started" and kinds[-1] == "summary"
    assert {"frame", "track_started", "track_ended"} <= set(kinds)
    assert [x["seq"] for x in results] == list(range(len(results)))
    summary = results[-1]["result"]
    assert summary["reason"] == "end" and "error" not in summary
    assert summary["frames_analysed"] == kinds.count("frame") > 0
    frames = [x["result"] for x in results if x["kind"] == "frame"]
    assert any(f["faces"] for f in frames)
    assert all(isinstance(f["flags"], list) for f in frames)  # the profile's rules ran live
    # SSE: the same events, in order, with the result ids
    events = parse_sse(sse.text)
    assert [e["id"] for e in events] == [x["id"] for x in results]
    assert [e["event"] for e in events] == kinds
    assert [e["data"] for e in events] == [x["result"] for x in results]
    # resume after an event (Last-Event-ID), or with ?after=
    mid = results[len(results) // 2]["id"]
    again = svc.client.get(job["links"]["events"], headers={**svc.auth, "Last-Event-ID": str(mid)})
    assert [e["id"] for e in parse_sse(again.text)] == [x["id"] for x in results if x["id"] > mid]
    after = svc.client.get(f"{job['links']['events']}?after={mid}", headers=svc.auth)
    assert parse_sse(after.text) == parse_sse(again.text)
    bad = svc.client.get(job["links"]["events"], headers={**svc.auth, "Last-Event-ID": "x"})
    assert bad.status_code == 400 and bad.json()["code"] == "InvalidCursor"
    # the address with its credentials appears nowhere
    for text in (sse.text, json.dumps(final), json.dumps(results)):
        assert "s3cret" not in text
    # another key sees no such job
    _, other = svc.new_key("other")
    head = {"Authorization": f"Bearer {other}"}
    for path in (job["links"]["self"], job["links"]["events"], job["links"]["results"]):
        assert svc.client.get(path, headers=head).status_code == 404
    assert svc.client.delete(job["links"]["self"], headers=head).status_code == 404
    assert svc.client.get(job["links"]["events"]).status_code == 401


def test_unreachable_stream_fails_the_job(svc: Service) -> None:
    url = f"rtmp://127.0.0.1:{free_port()}/live/none"  # nothing listens there
    r = post_stream(svc, url, retries="0")
    assert r.status_code == 202, r.text
    final = svc.wait_job(r.headers["Location"], timeout=90)
    assert final["status"] == "failed"
    assert final["error"]["code"] == "StreamUnreachable"
    results = all_results(svc, final["id"])
    assert results[-1]["kind"] == "summary"
    assert results[-1]["result"]["error"]["code"] == "StreamUnreachable"
    assert not [x for x in results if x["kind"] == "frame"]


def test_delete_cancels_a_running_stream_job(svc: Service, tmp_path: Path) -> None:
    folder = tmp_path / "live"
    # a live playlist, written at the clip's pace (about 12 s)
    writer = start_growing_hls(shared("pyfeat_media", "single_face.mp4"), folder, max_frames=300)
    server = HLSServer(folder)
    try:
        r = post_stream(svc, server.url(), features="detection", retention="0")
        assert r.status_code == 202, r.text
        location = r.headers["Location"]
        job_id = r.json()["id"]
        deadline = time.monotonic() + 60
        while True:  # running, with some frames analysed
            job = svc.client.get(location, headers=svc.auth).json()
            kinds = [x["kind"] for x in all_results(svc, job_id)]
            if job["status"] == "running" and "frame" in kinds:
                break
            assert job["status"] in ("queued", "running"), job
            assert time.monotonic() < deadline, "the stream job never got going"
            time.sleep(0.2)
        gone = svc.client.delete(location, headers=svc.auth)
        assert gone.status_code == 200 and gone.json()["status"] == "cancelled"
        deadline = time.monotonic() + 30
        while True:  # the session stops cleanly: its summary says so
            results = all_results(svc, job_id)
            if results and results[-1]["kind"] == "summary":
                break
            assert time.monotonic() < deadline, "the cancelled stream did not stop"
            time.sleep(0.2)
        assert results[-1]["result"]["reason"] == "stopped"
        assert svc.client.get(location, headers=svc.auth).json()["status"] == "cancelled"
        assert not (svc.config.media_dir / job_id).exists()  # the address is deleted
        sse = svc.client.get(f"/v1/jobs/{job_id}/events", headers=svc.auth)
        assert [e["id"] for e in parse_sse(sse.text)] == [x["id"] for x in results]
    finally:
        writer.join(60)
        server.close()


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"url": "http://127.0.0.1:9/x.m3u8", "features": "age"}, "RefusedAttribute"),
        ({"url": "http://127.0.0.1:9/x.m3u8", "features": "detection,gender"}, "RefusedAttribute"),
        ({"url": "http://127.0.0.1:9/x.m3u8", "profile": "/etc/passwd"}, "InvalidRules"),
        ({"url": "https://example.org/photo.jpg"}, "InvalidParameter"),
        ({"url": "/dev/video0"}, "InvalidParameter"),
        ({"url": "/work/shared/data/pyfeat_media/single_face.mp4"}, "InvalidParameter"),
        ({"url": "file:///etc/passwd"}, "InvalidParameter"),
        ({}, "InvalidParameter"),
        ({"url": "rtsp://127.0.0.1:9/x", "max_seconds": "0"}, "InvalidParameter"),
        ({"url": "rtsp://127.0.0.1:9/x", "max_seconds": "1e9"}, "InvalidParameter"),
        ({"url": "rtsp://127.0.0.1:9/x", "retries": "-2"}, "InvalidParameter"),
    ],
)
def test_bad_stream_requests_are_refused(svc: Service, fields: dict[str, str], code: str) -> None:
    r = svc.client.post("/v1/jobs", data={"kind": "stream", **fields}, headers=svc.auth)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == code


def test_query_parameters_are_checked_too(svc: Service) -> None:
    q = svc.client.post(
        "/v1/jobs?kind=stream&url=rtsp%3A%2F%2Fh%2Fs&features=age", headers=svc.auth
    )
    assert q.status_code == 422 and q.json()["code"] == "RefusedAttribute"
    q = svc.client.post("/v1/jobs?kind=stream&url=%2Fdev%2Fvideo0", headers=svc.auth)
    assert q.status_code == 422 and q.json()["code"] == "InvalidParameter"
