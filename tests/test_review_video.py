"""Video reviewed by segment, for real: a video job through the service (SQLite and PostgreSQL)
gives segment items with their times, keyframe thumbnail, filmstrip and the retained video
with HTTP range requests; a stream job's segments reach ``GET /v1/review/events`` (SSE) while
it runs."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image

from mien.service.routes import review_media

from .conftest import shared
from .live_streams import HLSServer, served_hls
from .service_fixtures import Service, service_fixture, start_service
from .test_service_csrf import browser, sign_in
from .test_service_stream import parse_sse, post_stream

pytest.importorskip("mien.video", reason="video jobs need mien.video")

service = service_fixture(max_upload_bytes=3 * 1024 * 1024)
CLIP = "WolfgangLanger_Pexels.mp4"  # 19.7 s, 640 x 360, one face all along


def problem(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body: dict[str, Any] = resp.json()
    assert body["code"] == code, body
    return body


@pytest.fixture(scope="module")
def video_job(service: Service) -> dict[str, Any]:
    """The issue's case: a 20 s clip, sample_fps=2, profile id-photo."""
    video = shared("pyfeat_media", CLIP)
    r = service.client.post(
        "/v1/jobs",
        files=[("video", (video.name, video.read_bytes(), "video/mp4"))],
        data={"sample_fps": "2", "profile": "id-photo", "retention": "3600"},
        headers=service.auth,
    )
    assert r.status_code == 202, r.text
    job = service.wait_job(r.headers["location"], timeout=600)
    assert job["status"] == "succeeded", job
    page = service.client.get(
        r.headers["location"] + "/results", params={"limit": 1000}, headers=service.auth
    ).json()
    items = service.client.get("/v1/review/items", headers=service.auth).json()["items"]
    return {
        "job": job,
        "results": page["items"],
        "items": [it for it in items if it["job_id"] == job["id"]],
        "bytes": video.read_bytes(),
    }


def test_a_video_job_gives_segment_items(video_job: dict[str, Any]) -> None:
    results, items = video_job["results"], video_job["items"]
    frames = [r for r in results if r["kind"] == "frame"]
    flagged = [f for f in frames if f["flags"]]
    assert len(frames) == 40 and len(flagged) == 40  # the frames keep their flags ...
    assert {it["kind"] for it in items} == {"segment"}  # ... but the review items are segments
    assert 1 <= len(items) <= 5, [(it["start_s"], it["end_s"], it["track_id"]) for it in items]
    assert [r["kind"] for r in results][-1] == "video"
    # every flagged face of every frame is in one segment, at the right time
    covered = 0
    for it in items:
        (seg,) = [r["result"] for r in results if r["kind"] == "segment" and r["id"] == it["id"]]
        assert (it["start_s"], it["end_s"], it["track_id"]) == (
            seg["start_s"],
            seg["end_s"],
            seg["track_id"],
        )
        inside = [
            f
            for f in flagged
            if it["start_s"] <= f["result"]["timestamp_ms"] / 1000 <= it["end_s"]
            and any(x.get("track_id") == it["track_id"] for x in f["flags"])
        ]
        assert len(inside) == seg["frames"]
        times = [f["result"]["timestamp_ms"] / 1000 for f in inside]
        assert (it["start_s"], it["end_s"]) == (round(min(times), 3), round(max(times), 3))
        fired = {x["rule"] for f in inside for x in f["flags"] if x.get("track_id") is not None}
        assert set(seg["rules"]) == fired == {x["rule"] for x in it["flags"]}
        assert seg["keyframe"] in {f["result"]["frame"] for f in inside}
        assert it["media_url"] == f"/v1/review/items/{it['id']}/media"
        assert it["filmstrip_url"] == f"/review/items/{it['id']}/filmstrip"
        assert it["profile"] == "id-photo" and it["name"] == CLIP
        covered += len(inside)
    assert covered == len(flagged)
    print(f"\n{CLIP}, sample_fps=2, id-photo: {len(frames)} frames flagged -> {len(items)} items")


def test_keyframe_thumbnail_and_filmstrip(service: Service, video_job: dict[str, Any]) -> None:
    it = video_job["items"][0]
    thumb = service.client.get(f"/review/items/{it['id']}/thumbnail", headers=service.auth)
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(thumb.content)).size == (480, 270)
    strip = service.client.get(it["filmstrip_url"], headers=service.auth)
    assert strip.status_code == 200 and strip.headers["content-type"] == "image/jpeg"
    img = Image.open(io.BytesIO(strip.content))
    assert img.format == "JPEG" and img.size == (6 * 213, 120)  # six 640x360 frames, 120 px high
    # the frames differ (evenly spaced over 19.5 s, not one frame six times)
    tiles = [img.crop((213 * k, 0, 213 * (k + 1), 120)).tobytes() for k in range(6)]
    assert len(set(tiles)) == 6


@pytest.mark.parametrize("clip", [CLIP, "face_noface.mov"])
def test_a_seek_finds_the_frame_the_analysis_saw(clip: str) -> None:
    """Thumbnails seek (cost bounded by the key frame interval, not the position): the frame
    found for a timestamp is the one that sequential decoding gives at that timestamp."""
    from mien.media.video import VideoReader

    path = shared("pyfeat_media", clip)
    with VideoReader(path, full=False, scaled_side=480, threaded=False) as seq:
        frames = [(f.timestamp_ms, f.scaled) for f in seq]
    picks = [frames[0], frames[len(frames) // 3], frames[-2], frames[-1]]
    with VideoReader(path, full=False, scaled_side=480, threaded=False) as reader:
        for ts, want in picks:
            got = reader.frame_at(round(ts / 1000, 3) * 1000)  # as stored: ms, 3 decimals
            assert got is not None and got.timestamp_ms == ts
            assert got.scaled is not None and (got.scaled == want).all()
        assert reader.frame_at(10**9) is not None  # past the end: the last frame there is


def test_range_requests(service: Service, video_job: dict[str, Any]) -> None:
    it, data = video_job["items"][0], video_job["bytes"]
    size = len(data)
    url = it["media_url"]

    def get(rng: str | None, path: str = url, **headers: str) -> Any:
        h = {**service.auth, **headers}
        if rng is not None:
            h["Range"] = rng
        return service.client.get(path, headers=h)

    whole = get(None)
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-type"] == "video/mp4"
    for rng, first, last in [
        ("bytes=0-99", 0, 99),  # the first bytes
        ("bytes=500000-600000", 500000, 600000),  # the middle
        ("bytes=-500", size - 500, size - 1),  # a suffix
        (f"bytes={size - 10}-", size - 10, size - 1),  # open end
        (f"bytes=10-{size * 2}", 10, size - 1),  # past the end: cut at the end
    ]:
        r = get(rng)
        assert r.status_code == 206, (rng, r.text)
        assert r.headers["content-range"] == f"bytes {first}-{last}/{size}"
        assert r.content == data[first : last + 1]
        assert int(r.headers["content-length"]) == last - first + 1
    # the page's route (session or key) answers the same
    assert get("bytes=0-9", f"/review/items/{it['id']}/media").content == data[:10]
    for bad in [f"bytes={size}-", "bytes=-0", "bytes=5-1", "bytes=0-1,5-9", "items=0-1", "bytes=-"]:
        r = get(bad)
        problem(r, 416, "RangeNotSatisfiable")
        assert r.headers["content-range"] == f"bytes */{size}"
    # only the item's tenant gets anything
    _, other = service.new_key("another team")
    other_auth = {"Authorization": f"Bearer {other}"}
    problem(service.client.get(url, headers=other_auth), 404, "NotFound")
    problem(service.client.get(it["filmstrip_url"], headers=other_auth), 404, "NotFound")
    problem(service.client.get(url), 401, "Unauthorized")
    # a frame result is no segment
    frame = next(r for r in video_job["results"] if r["kind"] == "frame")
    problem(get(None, f"/v1/review/items/{frame['id']}/media"), 404, "NotFound")


def test_a_bounded_answer_for_a_large_file(service: Service, video_job: dict[str, Any]) -> None:
    it, data = video_job["items"][0], video_job["bytes"]
    old = review_media.MAX_RANGE_BYTES
    review_media.MAX_RANGE_BYTES = 100_000
    try:
        whole = service.client.get(it["media_url"], headers=service.auth)
        ranged = service.client.get(
            it["media_url"], headers={**service.auth, "Range": "bytes=1000-"}
        )
    finally:
        review_media.MAX_RANGE_BYTES = old
    assert whole.status_code == 206 and whole.content == data[:100_000]
    assert whole.headers["content-range"] == f"bytes 0-99999/{len(data)}"
    assert ranged.status_code == 206 and ranged.content == data[1000:101_000]


def test_the_page_session_reaches_media_and_events(
    service: Service, video_job: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The review page's session (cookie, no key) plays the video and follows the events."""
    it, data = video_job["items"][0], video_job["bytes"]
    page = browser(service)
    sign_in(service, page, service.key)
    r = page.get(f"/review/items/{it['id']}/media", headers={"Range": "bytes=100-199"})
    assert r.status_code == 206 and r.content == data[100:200]
    assert page.get(it["media_url"], headers={"Range": "bytes=-4"}).content == data[-4:]
    assert page.get(it["filmstrip_url"]).headers["content-type"] == "image/jpeg"
    monkeypatch.setattr(review_media, "MAX_STREAM_S", 1.0)
    sse = page.get("/v1/review/events", params={"after": it["id"] - 1})
    assert sse.status_code == 200
    (first, *_) = parse_sse(sse.text)
    assert first["id"] == it["id"] and first["event"] == "item"
    assert first["data"]["start_s"] == it["start_s"] and first["data"]["kind"] == "segment"
    # without key or session: nothing
    problem(browser(service).get("/v1/review/events"), 401, "Unauthorized")


def test_after_the_purge_the_video_is_gone(service: Service, video_job: dict[str, Any]) -> None:
    it = video_job["items"][0]
    r = service.client.delete(f"/v1/jobs/{video_job['job']['id']}", headers=service.auth)
    assert r.status_code == 200, r.text
    problem(service.client.get(it["media_url"], headers=service.auth), 410, "MediaPurged")
    thumb = service.client.get(f"/review/items/{it['id']}/thumbnail", headers=service.auth)
    problem(thumb, 410, "MediaPurged")
    items = service.client.get("/v1/review/items", headers=service.auth).json()["items"]
    (after,) = [x for x in items if x["id"] == it["id"]]
    assert after["media_url"] is None and after["filmstrip_url"] is None
    assert (after["start_s"], after["end_s"]) == (it["start_s"], it["end_s"])


# -- live review events from a stream job ----------------------------------------------------


@pytest.fixture(scope="module")
def stream_svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp = tmp_path_factory.mktemp("svc-review-stream")
    yield from start_service(tmp, "sqlite", None, allow_stream_hosts=("127.0.0.1/32",))


@pytest.fixture(scope="module")
def hls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HLSServer]:
    folder = tmp_path_factory.mktemp("hls-review")
    yield from served_hls(shared("pyfeat_media", "single_face.mp4"), folder, max_frames=75)


def test_stream_segments_reach_the_review_events(
    stream_svc: Service, hls: HLSServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = stream_svc
    monkeypatch.setattr(review_media, "MAX_STREAM_S", 30.0)  # the stream ends by itself
    monkeypatch.setattr(review_media, "KEEPALIVE_S", 0.5)
    monkeypatch.setattr(review_media.STREAMS, "limit", 1)
    _, other = svc.new_key("another team")
    other_auth = {"Authorization": f"Bearer {other}"}
    bodies: dict[str, Any] = {}

    def listen(name: str, headers: dict[str, str]) -> None:
        r = svc.client.get("/v1/review/events", headers=headers)
        bodies[name] = r

    threads = [
        threading.Thread(target=listen, args=("mine", svc.auth)),
        threading.Thread(target=listen, args=("other", other_auth)),
    ]
    for t in threads:
        t.start()
    # both streams are open (one per key): a second one of the same key is refused
    deadline = time.monotonic() + 10
    while len(review_media.STREAMS._open) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    problem(svc.client.get("/v1/review/events", headers=svc.auth), 429, "TooManyStreams")
    port = hls.httpd.server_address[1]
    r = post_stream(svc, f"http://127.0.0.1:{port}/index.m3u8", profile="id-photo")
    assert r.status_code == 202, r.text
    job = r.json()
    for t in threads:
        t.join(timeout=60)
    mine, theirs = bodies["mine"], bodies["other"]
    assert mine.status_code == 200 and mine.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(mine.text)
    assert events and {e["event"] for e in events} == {"item"}
    got = [e["data"] for e in events if e["data"]["job_id"] == job["id"]]
    assert got and {it["kind"] for it in got} == {"segment"}
    for it in got:
        assert it["start_s"] <= it["end_s"] and it["flags"] and it["media_url"] is None
        assert [e["id"] for e in events if e["data"]["id"] == it["id"]] == [it["id"]]
    assert ": keep-alive" in mine.text  # heartbeats while nothing happens
    # the other key saw nothing of this job, only heartbeats
    assert theirs.status_code == 200 and parse_sse(theirs.text) == []
    assert ": keep-alive" in theirs.text
    assert review_media.STREAMS._open == {}  # every stream gave its place back
    # the stored segments are the ones sent
    stored = svc.client.get("/v1/review/items", headers=svc.auth).json()["items"]
    assert {it["id"] for it in stored if it["job_id"] == job["id"]} == {it["id"] for it in got}
    # Last-Event-ID resumes after the given item; a bad one is refused
    monkeypatch.setattr(review_media, "MAX_STREAM_S", 1.0)
    resumed = svc.client.get(
        "/v1/review/events",
        params={"after": 0},
        headers={**svc.auth, "Last-Event-ID": str(got[0]["id"] - 1)},
    )
    assert [e["data"]["id"] for e in parse_sse(resumed.text)][: len(got)] == [
        it["id"] for it in got
    ]
    bad = svc.client.get("/v1/review/events", headers={**svc.auth, "Last-Event-ID": "x"})
    problem(bad, 400, "InvalidCursor")
