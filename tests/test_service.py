"""The HTTP service, every route, against SQLite and against the real PostgreSQL.

Real models, real photos (the bundled sample and ../shared/data), real worker processes.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from PIL import Image

from mien.analyzer import FaceAnalyzer
from mien.features import REFUSAL_MESSAGE

from .conftest import REPO, SAMPLE, shared
from .service_fixtures import Service, service_fixture

service = service_fixture(max_upload_bytes=3 * 1024 * 1024, max_jobs_per_key=8)
PROBLEM = "application/problem+json"
SCHEMA = json.loads((REPO / "src/mien/schema/output.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
JPEG = SAMPLE.read_bytes()


def problem(resp, status: int, code: str) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM)
    body = resp.json()
    assert body["code"] == code and body["status"] == status
    assert body["type"].endswith(code) and body["title"] and body["detail"]
    return body


def raw(svc: Service, path: str, data: bytes, ctype: str = "image/jpeg", **kw):
    return svc.client.post(path, content=data, headers={**svc.auth, "content-type": ctype}, **kw)


# -- health and keys -------------------------------------------------------------------------


def test_health_needs_no_key(service: Service) -> None:
    r = service.client.get("/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"
    assert r.json()["store"] == service.backend


@pytest.mark.parametrize(
    "route",
    [
        ("post", "/v1/faces:analyze"),
        ("post", "/v1/redact"),
        ("post", "/v1/jobs"),
        ("get", "/v1/jobs/abc"),
        ("get", "/v1/jobs/abc/results"),
        ("delete", "/v1/jobs/abc"),
        ("get", "/v1/review/items"),
        ("get", "/v1/review/export"),
        ("post", "/v1/review/items/1/decision"),
        ("get", "/review/items/1/thumbnail"),
    ],
)
def test_every_route_needs_a_key(service: Service, route: tuple[str, str]) -> None:
    method, path = route
    r = service.client.request(method, path, content=JPEG)
    body = problem(r, 401, "Unauthorized")
    assert r.headers["www-authenticate"] == "Bearer"
    assert body["instance"] == path
    wrong = {"Authorization": "Bearer mien_0000000000000000_nope"}
    problem(service.client.request(method, path, content=JPEG, headers=wrong), 401, "Unauthorized")


def test_key_forms_and_revocation(service: Service) -> None:
    key_id, key = service.new_key("x-api-key user")
    store = service.app.state.mien.store
    assert store.get_key(key_id)["secret_hash"] != key  # stored hashed
    assert key.split("_", 2)[2] not in json.dumps(store.get_key(key_id))
    ok = service.client.get("/v1/review/items", headers={"X-API-Key": key})
    assert ok.status_code == 200
    other_id, other = service.new_key("revoked before use")
    assert store.revoke_key(other_id)
    problem(
        service.client.get("/v1/review/items", headers={"X-API-Key": other}), 401, "Unauthorized"
    )
    garbled = key[:-3] + "xyz"
    problem(
        service.client.get("/v1/review/items", headers={"X-API-Key": garbled}), 401, "Unauthorized"
    )


# -- POST /v1/faces:analyze --------------------------------------------------------------------


@pytest.fixture(scope="module")
def library() -> FaceAnalyzer:
    return FaceAnalyzer(num_threads=1)


def test_analyze_answers_the_cli_json(service: Service, library: FaceAnalyzer) -> None:
    r = service.client.post(
        "/v1/faces:analyze?name=astronaut.jpg",
        content=JPEG,
        headers={**service.auth, "content-type": "image/jpeg"},
    )
    assert r.status_code == 200, r.text
    got = r.json()
    VALIDATOR.validate(got)
    want = library.analyze(JPEG, name="astronaut.jpg").to_dict(include_mesh=False)
    assert got == json.loads(json.dumps(want))
    assert len(got["faces"]) == 1


def test_analyze_multipart_with_features(service: Service) -> None:
    photo = shared("dlib_examples_faces", "images", "bald_guys.jpg")
    r = service.client.post(
        "/v1/faces:analyze",
        files={"image": (photo.name, photo.read_bytes(), "image/jpeg")},
        data={"features": "detection,mesh,eyeglasses"},
        headers=service.auth,
    )
    assert r.status_code == 200, r.text
    rec = r.json()
    VALIDATOR.validate(rec)
    assert rec["source"] == photo.name and len(rec["faces"]) >= 5
    face = rec["faces"][0]
    assert len(face["mesh"]) == 478 and "eyeglasses" in face["attributes"]
    assert "landmarks" not in face


@pytest.mark.parametrize(
    ("where", "value"),
    [("query", "gender"), ("form", "age,detection"), ("query", "face embedding")],
)
def test_refused_features_get_the_cli_explanation(service: Service, where: str, value: str) -> None:
    if where == "query":
        r = service.client.post(
            "/v1/faces:analyze",
            params={"features": value},
            content=JPEG,
            headers={**service.auth, "content-type": "image/jpeg"},
        )
    else:
        r = service.client.post(
            "/v1/faces:analyze",
            files={"image": ("a.jpg", JPEG, "image/jpeg")},
            data={"features": value},
            headers=service.auth,
        )
    body = problem(r, 422, "RefusedAttribute")
    refused = [n for n in value.split(",") if n != "detection"]
    assert body["detail"] == REFUSAL_MESSAGE.format(names=", ".join(refused))
    assert body["refused"] == refused


def test_refused_profile_and_jobs_params(service: Service) -> None:
    r = raw(service, "/v1/faces:analyze?profile=ethnicity", JPEG)
    problem(r, 422, "RefusedAttribute")
    r = service.client.post(
        "/v1/jobs",
        files=[("files", ("a.jpg", JPEG, "image/jpeg"))],
        data={"features": "emotion"},
        headers=service.auth,
    )
    problem(r, 422, "RefusedAttribute")
    problem(raw(service, "/v1/jobs?features=race", JPEG), 422, "RefusedAttribute")


def test_unknown_feature_and_bad_parameters(service: Service) -> None:
    body = problem(raw(service, "/v1/faces:analyze?features=sparkle", JPEG), 422, "UnknownFeature")
    assert "sparkle" in body["detail"]
    problem(raw(service, "/v1/faces:analyze?threshold=7", JPEG), 422, "InvalidParameter")
    problem(raw(service, "/v1/faces:analyze?profile=../../etc/passwd", JPEG), 422, "InvalidRules")


def test_bad_uploads(service: Service) -> None:
    problem(raw(service, "/v1/faces:analyze", b""), 400, "EmptyBody")
    r = service.client.post(
        "/v1/faces:analyze", files={"image": ("e.jpg", b"", "image/jpeg")}, headers=service.auth
    )
    problem(r, 400, "EmptyBody")
    r = service.client.post(  # a multipart form without a file
        "/v1/faces:analyze", files={"features": (None, "detection")}, headers=service.auth
    )
    problem(r, 400, "EmptyBody")
    r = service.client.post("/v1/faces:analyze", data={"x": "1"}, headers=service.auth)
    problem(r, 415, "UnsupportedMedia")  # a urlencoded form carries no picture
    problem(raw(service, "/v1/faces:analyze", b"hello", "text/plain"), 415, "UnsupportedMedia")
    problem(
        raw(service, "/v1/faces:analyze", b'{"a": 1}', "application/json"), 415, "UnsupportedMedia"
    )
    pdf = b"%PDF-1.4\n1 0 obj << >> endobj\n%%EOF\n"
    problem(raw(service, "/v1/faces:analyze", pdf), 415, "UnsupportedMedia")
    problem(raw(service, "/v1/faces:analyze", JPEG[: len(JPEG) // 3]), 422, "InvalidImage")
    problem(raw(service, "/v1/faces:analyze", b"\xff\xd8\xff" + b"\0" * 100), 422, "InvalidImage")


def test_over_size_upload(service: Service) -> None:
    big = b"\xff\xd8\xff" + b"\0" * (4 * 1024 * 1024)
    body = problem(raw(service, "/v1/faces:analyze", big), 413, "ImageTooLarge")
    assert str(service.config.max_upload_bytes) in body["detail"]

    def chunks():  # no Content-Length: the limit is enforced while streaming
        for _ in range(8):
            yield b"\0" * (512 * 1024)

    r = service.client.post(
        "/v1/faces:analyze",
        content=chunks(),
        headers={**service.auth, "content-type": "image/jpeg"},
    )
    problem(r, 413, "ImageTooLarge")
    r = service.client.post(
        "/v1/jobs", files=[("files", ("big.jpg", big, "image/jpeg"))], headers=service.auth
    )
    problem(r, 413, "ImageTooLarge")


def test_decompression_bomb_is_refused(service: Service) -> None:
    buf = io.BytesIO()
    Image.new("L", (12000, 12000)).save(buf, "PNG")  # 144 MP of zeros, a few hundred KB
    body = problem(
        raw(service, "/v1/faces:analyze", buf.getvalue(), "image/png"), 413, "ImageTooLarge"
    )
    assert "pixels" in body["detail"] or "large" in body["detail"]


# -- POST /v1/redact ----------------------------------------------------------------------------


def test_redact_returns_the_redacted_picture(service: Service, library: FaceAnalyzer) -> None:
    pytest.importorskip("mien.redact.image", reason="mien.redact is not in this tree yet")
    r = raw(service, "/v1/redact?method=fill&shape=box&scale=1.0", JPEG)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/jpeg"
    assert int(r.headers["x-mien-faces-covered"]) == 1
    out = np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"))
    orig = np.asarray(Image.open(SAMPLE).convert("RGB"))
    assert out.shape == orig.shape
    x1, y1, x2, y2 = (int(v) for v in library.analyze(JPEG).faces.boxes[0])
    inner = out[y1 + 8 : y2 - 8, x1 + 8 : x2 - 8].astype(int)
    assert inner.mean() < 12  # filled black (JPEG noise aside)
    assert np.abs(out[:40, :40].astype(int) - orig[:40, :40]).mean() < 6  # rest untouched
    png = raw(service, "/v1/redact?format=png", JPEG)
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    problem(raw(service, "/v1/redact?method=melt", JPEG), 422, "InvalidParameter")
    problem(raw(service, "/v1/redact", b"garbage"), 422, "InvalidImage")


# -- jobs ------------------------------------------------------------------------------------------


def _dlib_photos(n: int) -> list[Path]:
    folder = shared("dlib_examples_faces", "images")
    return sorted(p for p in folder.iterdir() if p.suffix == ".jpg")[:n]


def test_image_batch_job_end_to_end(service: Service, library: FaceAnalyzer) -> None:
    photos = _dlib_photos(3)
    files = [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in photos]
    files.append(("files", ("broken.jpg", JPEG[:3000], "image/jpeg")))
    r = service.client.post("/v1/jobs", files=files, headers=service.auth)
    assert r.status_code == 202, r.text
    loc = r.headers["location"]
    job = r.json()
    assert loc == f"/v1/jobs/{job['id']}" and job["status"] in ("queued", "running")
    assert job["progress"]["total"] == 4 and job["kind"] == "images"
    done = service.wait_job(loc)
    assert done["status"] == "succeeded", done
    assert done["progress"] == {"done": 4, "failed": 1, "total": 4, "fraction": 1.0, "results": 4}
    assert done["retention"]["expires_at"] and not done["retention"]["media_purged"]
    # results, two per page, through the cursor
    items, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = service.client.get(f"{loc}/results", params=params, headers=service.auth).json()
        items += page["items"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 2 and [it["item"] for it in items] == [0, 1, 2, 3]
    by_source = {it["result"]["source"]: it["result"] for it in items}
    for p in photos:
        VALIDATOR.validate(by_source[p.name])
        want = library.analyze(p, name=p.name).to_dict(include_mesh=False)
        assert by_source[p.name] == json.loads(json.dumps(want))
    assert by_source["broken.jpg"]["error"]["code"] == "InvalidImage"


def test_raw_body_job_and_idempotency(service: Service) -> None:
    headers = {**service.auth, "content-type": "image/jpeg", "Idempotency-Key": "same-request"}
    first = service.client.post("/v1/jobs?retention=1h", content=JPEG, headers=headers)
    assert first.status_code == 202, first.text
    again = service.client.post("/v1/jobs?retention=1h", content=JPEG, headers=headers)
    assert again.status_code == 202
    assert again.headers["location"] == first.headers["location"]
    assert again.json()["id"] == first.json()["id"]
    other = service.client.post("/v1/jobs?retention=1h", content=JPEG[:-10], headers=headers)
    problem(other, 409, "IdempotencyConflict")
    # another key may use the same Idempotency-Key for its own job
    _, key2 = service.new_key()
    mine = service.client.post(
        "/v1/jobs?retention=1h",
        content=JPEG,
        headers={
            "Authorization": f"Bearer {key2}",
            "content-type": "image/jpeg",
            "Idempotency-Key": "same-request",
        },
    )
    assert mine.status_code == 202 and mine.json()["id"] != first.json()["id"]
    job = service.wait_job(first.headers["location"])
    assert job["status"] == "succeeded" and job["retention"]["seconds"] == 3600


def test_job_errors(service: Service) -> None:
    problem(service.client.get("/v1/jobs/0123456789abcdef", headers=service.auth), 404, "NotFound")
    problem(service.client.get("/v1/jobs/..%2F..%2Fetc", headers=service.auth), 404, "NotFound")
    problem(service.client.delete("/v1/jobs/nope", headers=service.auth), 404, "NotFound")
    problem(service.client.get("/v1/jobs/nope/results", headers=service.auth), 404, "NotFound")
    problem(raw(service, "/v1/jobs", b""), 400, "EmptyBody")
    problem(raw(service, "/v1/jobs", b"text", "text/plain"), 415, "UnsupportedMedia")
    problem(raw(service, "/v1/jobs?retention=forever", JPEG), 422, "InvalidParameter")
    problem(raw(service, "/v1/jobs?retention=30d", JPEG), 422, "InvalidParameter")
    problem(raw(service, "/v1/jobs?kind=video", JPEG), 415, "UnsupportedMedia")
    # a job is visible to its own key only
    r = raw(service, "/v1/jobs?retention=0", JPEG)
    assert r.status_code == 202
    _, key2 = service.new_key()
    other = {"Authorization": f"Bearer {key2}"}
    problem(service.client.get(r.headers["location"], headers=other), 404, "NotFound")
    problem(service.client.delete(r.headers["location"], headers=other), 404, "NotFound")
    bad = service.client.get(
        r.headers["location"] + "/results", params={"cursor": "%%%"}, headers=service.auth
    )
    problem(bad, 400, "InvalidCursor")
    service.wait_job(r.headers["location"])


def test_video_job(service: Service) -> None:
    video = shared("pyfeat_media", "single_face.mp4")
    r = service.client.post(
        "/v1/jobs",
        files=[("video", (video.name, video.read_bytes(), "video/mp4"))],
        data={"sample_fps": "2", "profile": "publish-safe"},
        headers=service.auth,
    )
    try:
        import mien.video  # noqa: F401
    except ImportError:
        problem(r, 501, "NotAvailable")
        pytest.skip("mien.video is not in this tree yet: video jobs answer 501 NotAvailable")
    assert r.status_code == 202, r.text
    assert r.json()["kind"] == "video" and r.json()["params"]["sample_fps"] == 2.0
    job = service.wait_job(r.headers["location"], timeout=600)
    assert job["status"] == "succeeded", job
    page = service.client.get(
        r.headers["location"] + "/results", params={"limit": 1000}, headers=service.auth
    ).json()
    items = page["items"]
    kinds = [it["kind"] for it in items]
    assert kinds[-1] == "video" and {"frame", "track", "segment"} <= set(kinds)
    assert {it["result"]["source"] for it in items} == {video.name}
    closing = items[-1]["result"]
    assert closing["frames_analysed"] == kinds.count("frame") < closing["frames_decoded"]
    assert job["progress"]["results"] == len(items) and job["progress"]["done"] == 1
    frames = [it for it in items if it["kind"] == "frame"]
    assert any(f["result"]["faces"] for f in frames)
    for f in frames:  # publish-safe flags every frame that shows an unredacted face
        assert bool(f["flags"]) == bool(f["result"]["faces"])
        assert f["result"]["profile"] == "publish-safe"
    assert [it["seq"] for it in items] == list(range(len(items)))
    # the flagged frames reach the review list as segments of a face track, each with the
    # keyframe as thumbnail (tests/test_review_video.py has the rest)
    review = service.client.get(
        "/v1/review/items", params={"limit": 200}, headers=service.auth
    ).json()["items"]
    frames_flagged = [it for it in review if it["job_id"] == job["id"]]
    assert frames_flagged and {it["kind"] for it in frames_flagged} == {"segment"}
    thumb = service.client.get(
        f"/review/items/{frames_flagged[0]['id']}/thumbnail", headers=service.auth
    )
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    # another API key sees none of this job's items: not listed, not exported, not decidable
    _, other = service.new_key("another team")
    other_auth = {"Authorization": f"Bearer {other}"}
    seen = service.client.get("/v1/review/items", headers=other_auth).json()["items"]
    assert not [it for it in seen if it["job_id"] == job["id"]]
    exported = service.client.get("/v1/review/export", headers=other_auth).json()
    assert not [row for row in exported if row["job_id"] == job["id"]]
    decision = {"decision": "approve", "reviewer": "someone else"}
    url = f"/v1/review/items/{frames_flagged[0]['id']}/decision"
    problem(service.client.post(url, json=decision, headers=other_auth), 404, "NotFound")
    # a video job takes exactly one video
    two = service.client.post(
        "/v1/jobs",
        files=[("video", (video.name, video.read_bytes(), "video/mp4"))] * 2,
        data={"kind": "video"},
        headers=service.auth,
    )
    problem(two, 400, "BadRequest")
