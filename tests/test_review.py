"""The review page in a real headless Chromium (Playwright driving Debian's /usr/bin/chromium):
sign in with a reviewer account, see flagged items with annotated thumbnails and reasons,
approve, reject, export, sign out (a server-side session: the cookie holds its id, never a key;
forms carry CSRF tokens). Against a real uvicorn server on SQLite and on the real PostgreSQL.

Since issue 18 the page signs in reviewer accounts (name and password, made here in the store as
``mien reviewers add`` does), no longer an API key and a typed name."""

from __future__ import annotations

import csv
import io
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from mien.service.app import create_app
from mien.service.config import ServiceConfig
from mien.service.keys import create_key
from mien.service.passwords import hash_password, new_link_token

from .conftest import SAMPLE, shared
from .service_fixtures import BACKENDS, make_database

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


PASSWORD = "Ada's review password"


@dataclass
class Live:
    base: str
    key: str
    config: ServiceConfig
    app: Any

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module", params=BACKENDS)
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    import uvicorn

    db = make_database(request.param)
    cfg = ServiceConfig(
        data_dir=tmp_path_factory.mktemp(f"review-{request.param}"),
        db_url=db.url,
        workers=1,
        poll_s=0.2,
        heartbeat_s=0.5,
        job_lease_s=3.0,
        num_threads=1,
    )
    app = create_app(cfg)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.1)
    store = app.state.mien.store
    key_id, key = create_key(store, "reviewer")
    assert store.assign_key(store.add_reviewer("Ada", "reviewer", hash_password(PASSWORD)), key_id)
    try:
        yield Live(base, key, cfg, app)
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        db.drop()


def _flagged_job(live: Live) -> dict[str, Any]:
    """A publish-safe job: two photos with faces (flagged) and one without (not flagged)."""
    group = shared("dlib_examples_faces", "images", "bald_guys.jpg")
    dogs = shared("dlib_examples_faces", "images", "dogs.jpg")
    files = [
        ("files", ("astronaut.jpg", SAMPLE.read_bytes(), "image/jpeg")),
        ("files", (group.name, group.read_bytes(), "image/jpeg")),
        ("files", (dogs.name, dogs.read_bytes(), "image/jpeg")),
    ]
    r = httpx.post(
        f"{live.base}/v1/jobs?profile=publish-safe", files=files, headers=live.auth, timeout=60
    )
    return finished_job(live, r)


def finished_job(live: Live, submitted: httpx.Response) -> dict[str, Any]:
    """The job a ``POST /v1/jobs`` answer names, once it has succeeded (5 minutes at most)."""
    assert submitted.status_code == 202, submitted.text
    loc = live.base + submitted.headers["location"]
    deadline = time.monotonic() + 300
    while (job := httpx.get(loc, headers=live.auth).json())["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.3)
    assert job["status"] == "succeeded", job
    return dict(job)


def test_profile_flags_on_the_analyze_route(live: Live) -> None:
    r = httpx.post(
        f"{live.base}/v1/faces:analyze?profile=id-photo",
        content=(shared("dlib_examples_faces", "images", "bald_guys.jpg")).read_bytes(),
        headers={**live.auth, "content-type": "image/jpeg"},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    rec = r.json()
    assert rec["profile"] == "id-photo"
    rules = {f["rule"] for f in rec["flags"]}
    assert "one-face" in rules  # a group photo is no ID photo
    assert all(f["message"] for f in rec["flags"])
    # the profile's features were computed (id-photo needs sunglasses, eyes_open, ...)
    assert "eyes_open" in rec["faces"][0]["attributes"]
    r = httpx.post(
        f"{live.base}/v1/faces:analyze?profile=no-such-profile",
        content=SAMPLE.read_bytes(),
        headers={**live.auth, "content-type": "image/jpeg"},
    )
    assert r.status_code == 422 and r.json()["code"] == "InvalidRules"


def test_review_page_in_chromium(live: Live) -> None:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"needs Debian's Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    job = _flagged_job(live)
    items = httpx.get(f"{live.base}/v1/review/items", headers=live.auth).json()["items"]
    mine = sorted((it for it in items if it["job_id"] == job["id"]), key=lambda it: it["id"])
    assert [it["name"] for it in mine] == ["astronaut.jpg", "bald_guys.jpg"]  # not dogs.jpg
    assert all(it["flags"] and it["media_retained"] for it in mine)
    first, second = mine

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            console: list[str] = []
            page.on("console", lambda msg: console.append(msg.text))
            resp = page.goto(f"{live.base}/review")
            assert resp is not None and resp.status == 401  # sign-in form, no data
            assert page.locator("#password").count() == 1 and "astronaut" not in page.content()
            assert page.locator("#key").count() == 0  # no API key on the page any more
            page.fill("#reviewer-name", "Ada")
            page.fill("#password", "not the password")
            page.click("#sign-in")
            assert "Wrong name or password" in page.inner_text(".error")
            page.fill("#reviewer-name", "Ada")
            page.fill("#password", PASSWORD)
            page.click("#sign-in")
            page.wait_for_selector(f"#item-{first['id']}")
            assert page.inner_text("#reviewer") == "Ada"
            one = page.locator(f"#item-{first['id']}")
            assert "astronaut.jpg" in one.inner_text()
            assert "unredacted-face" in one.locator(".reasons").inner_text()
            img = one.locator("img")
            img.wait_for()
            page.wait_for_function(
                "el => el.complete && el.naturalWidth > 0", arg=img.element_handle()
            )
            assert 0 < img.evaluate("el => el.naturalWidth") <= 480
            assert page.locator(f"#item-{second['id']} .reasons li").count() >= 20

            # decided items leave the (default) undecided view without a page load
            one.locator("button.approve").click()
            page.wait_for_selector(f"#item-{first['id']}", state="detached")
            page.locator(f"#item-{second['id']} button.reject").click()
            page.wait_for_selector(f"#item-{second['id']}", state="detached")
            page.select_option("#f-status", "all")
            page.wait_for_selector(f"#item-{first['id']}.approved")
            assert "approved by Ada" in page.inner_text(f"#item-{first['id']} .decision")
            assert "rejected by Ada" in page.inner_text(f"#item-{second['id']} .decision")
            page.reload()
            page.select_option("#f-status", "approved")
            page.wait_for_selector(f"#item-{first['id']}.approved")
            # the browser holds a session id, never the key (HttpOnly, SameSite=Strict)
            cookies = {c["name"]: c for c in page.context.cookies()}
            session = cookies["mien_session"]
            assert session["httpOnly"] and session["sameSite"] == "Strict"
            assert session["path"] == "/" and not session["secure"]  # plain http here
            assert all(live.key not in c["value"] for c in cookies.values())
            assert page.evaluate("document.cookie") == ""  # HttpOnly: no script sees it
            # the page's export link works with the session, and so does the review API (issue
            # 18: the page's script calls it); the rest of /v1 does not take the cookie
            csv_text = page.request.get(f"{live.base}/review/export?format=csv").text()
            assert page.request.get(f"{live.base}/v1/review/export?format=csv").text() == csv_text
            assert page.request.get(f"{live.base}/v1/jobs/{job['id']}").status == 401
            with httpx.Client(cookies={"mien_session": session["value"]}) as replayer:
                queue = replayer.get(f"{live.base}/v1/review/items?status=all").text
                assert "astronaut" in queue  # the cookie works
            page.click("#sign-out")
            page.wait_for_selector("#sign-in")
            assert "mien_session" not in {c["name"] for c in page.context.cookies()}
            # the session is gone on the server: its old cookie opens nothing any more
            with httpx.Client(cookies={"mien_session": session["value"]}) as replayer:
                replay = replayer.get(f"{live.base}/review")
                replay_api = replayer.get(f"{live.base}/v1/review/items?status=all")
            assert replay.status_code == 401 and "astronaut" not in replay.text
            assert replay_api.status_code == 401 and "astronaut" not in replay_api.text
            # a one-time link (as `mien reviewers link` prints it): its page, then its button
            token, digest = new_link_token()
            store = live.app.state.mien.store
            ada = store.get_reviewer("Ada")
            assert ada is not None
            store.add_link(digest, ada.id, 900)
            page.goto(f"{live.base}/review/login/{token}")
            assert page.inner_text("#link-reviewer") == "Ada"
            page.click("#link-sign-in")
            page.wait_for_selector("#f-status")  # the queue (the first item is decided by now)
            assert page.inner_text("#reviewer") == "Ada"
            page.select_option("#f-status", "approved")
            page.wait_for_selector(f"#item-{first['id']}.approved")
            again = page.goto(f"{live.base}/review/login/{token}")
            assert again is not None and again.status == 401  # used up
            # the Content Security Policy held everything the page uses (no violation reported)
            assert not [m for m in console if "Content Security Policy" in m], console
        finally:
            browser.close()

    rows = {int(r["result_id"]): r for r in csv.DictReader(io.StringIO(csv_text))}
    assert rows[first["id"]]["decision"] == "approved" and rows[first["id"]]["reviewer"] == "Ada"
    assert rows[second["id"]]["decision"] == "rejected"
    assert rows[first["id"]]["decided_at"].endswith("+00:00")
    exported = httpx.get(f"{live.base}/v1/review/export?format=json", headers=live.auth).json()
    by_id = {r["result_id"]: r for r in exported}
    assert by_id[second["id"]]["reviewer"] == "Ada"
    assert any("unredacted face" in m for m in by_id[first["id"]]["flags"])


def test_review_api_and_purged_thumbnails(live: Live) -> None:
    job = _flagged_job(live)
    items = httpx.get(
        f"{live.base}/v1/review/items", params={"undecided": True}, headers=live.auth
    ).json()["items"]
    mine = [it for it in items if it["job_id"] == job["id"]]
    assert len(mine) == 2
    target = mine[0]["id"]
    thumb = httpx.get(f"{live.base}/review/items/{target}/thumbnail", headers=live.auth)
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    d = httpx.post(
        f"{live.base}/v1/review/items/{target}/decision",
        json={"decision": "reject", "reviewer": "Grace"},
        headers=live.auth,
    )
    assert d.status_code == 200, d.text
    assert d.json()["decision"] == "rejected" and d.json()["reviewer"] == "Grace"
    bad = httpx.post(
        f"{live.base}/v1/review/items/{target}/decision",
        json={"decision": "maybe", "reviewer": "Grace"},
        headers=live.auth,
    )
    assert bad.status_code == 422 and bad.json()["code"] == "InvalidParameter"
    missing = httpx.post(
        f"{live.base}/v1/review/items/999999/decision",
        json={"decision": "approve", "reviewer": "Grace"},
        headers=live.auth,
    )
    assert missing.status_code == 404 and missing.json()["code"] == "NotFound"
    # DELETE purges the media: the thumbnail is gone, the flags and decision stay
    httpx.delete(f"{live.base}/v1/jobs/{job['id']}", headers=live.auth)
    gone = httpx.get(f"{live.base}/review/items/{target}/thumbnail", headers=live.auth)
    assert gone.status_code == 410 and gone.json()["code"] == "MediaPurged"
    after = httpx.get(f"{live.base}/v1/review/items", headers=live.auth).json()["items"]
    (item,) = [it for it in after if it["id"] == target]
    assert not item["media_retained"] and item["decision"] == "rejected" and item["flags"]


def test_thumbnail_geometry_roundtrip() -> None:
    from mien.analyzer import FaceAnalyzer
    from mien.service.thumbnails import annotated_thumbnail, faces_from_record

    result = FaceAnalyzer(num_threads=1).analyze(SAMPLE)
    faces = faces_from_record(result.to_dict())
    assert result.faces is not None
    assert (abs(faces.boxes - result.faces.boxes) < 0.01).all()
    jpeg = annotated_thumbnail(Path(SAMPLE), result.to_dict())
    assert jpeg[:3] == b"\xff\xd8\xff"
