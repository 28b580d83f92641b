"""Issue 18 end to end in a real headless Chromium (Playwright driving Debian's /usr/bin/chromium)
against a real uvicorn server, on SQLite and the real PostgreSQL: a real video job's segment plays
in its card (from ``start_s``, stopping at ``end_s``, through HTTP range requests under the CSP);
new flagged items reach an open page over ``GET /v1/review/events`` (another tenant's never);
another reviewer's disagreeing decision shows as a badge and in the item's history (with its
note); a reviewer without the admin role is refused the admin route; a reviewer of one tenant
sees nothing of another. And ``mien serve`` stops within seconds of SIGTERM while a review
event stream is open.

With ``MIEN_DOC_SCREENSHOTS=1`` (SQLite run) it writes docs/review/segment.png, live.png and
item.png (shown in docs/review.md)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mien.service.keys import create_key
from mien.service.passwords import hash_password
from mien.service.store import Store

from .conftest import shared
from .review_seed import seed_queue
from .service_fixtures import cli_key, free_port, spawn_server, wait_healthy
from .test_review import (  # noqa: F401
    CHROMIUM,
    CHROMIUM_ARGS,
    PASSWORD,
    Live,
    finished_job,
    live,
)
from .test_review_page import _ids, _shot, _then_loaded

CLIP = "single_face.mp4"  # 2.4 s, H.264, one face: one segment with sample_fps=2, id-photo


def _need_chromium() -> None:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"needs Debian's Chromium at {CHROMIUM} (apt-get install chromium)")


@pytest.fixture(scope="module")
def store(live: Live) -> Iterator[Store]:  # noqa: F811
    """A second handle on the live server's store (rows written here reach the server)."""
    s = Store.open(live.config.database_url, migrate_schema=False)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture()
def chromium() -> Iterator[Any]:
    _need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def _sign_in(browser: Any, live: Live, name: str, password: str) -> tuple[Any, list[str]]:  # noqa: F811
    """A new browser context signed in as ``name`` on the queue page, and its console."""
    page = browser.new_context(viewport={"width": 1100, "height": 900}).new_page()
    console: list[str] = []
    page.on("console", lambda msg: console.append(msg.text))
    page.goto(f"{live.base}/review")
    page.fill("#reviewer-name", name)
    page.fill("#password", password)
    _then_loaded(page, lambda: page.click("#sign-in"))
    return page, console


def _account(store: Store, name: str, key_id: str, role: str = "reviewer") -> str:
    password = f"{name}'s long review password"
    assert store.assign_key(store.add_reviewer(name, role, hash_password(password)), key_id)
    return password


def _items(live: Live, auth: dict[str, str], **params: Any) -> list[dict[str, Any]]:  # noqa: F811
    r = httpx.get(f"{live.base}/v1/review/items", params=params, headers=auth, timeout=30)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def _clean(console: list[str]) -> None:
    assert not [m for m in console if "Content Security Policy" in m], console
    assert not [m for m in console if "rror" in m], console


def _video_job(live: Live) -> dict[str, Any]:  # noqa: F811
    video = shared("pyfeat_media", CLIP)
    r = httpx.post(
        f"{live.base}/v1/jobs",
        files=[("video", (video.name, video.read_bytes(), "video/mp4"))],
        data={"sample_fps": "2", "profile": "id-photo", "retention": "3600"},
        headers=live.auth,
        timeout=60,
    )
    return finished_job(live, r)


def test_a_video_segment_plays_in_its_card(live: Live, chromium: Any) -> None:  # noqa: F811
    pytest.importorskip("mien.video", reason="video jobs need mien.video")
    job = _video_job(live)
    (seg,) = _items(live, live.auth, job_id=job["id"])
    assert seg["kind"] == "segment" and seg["media_url"], seg
    start, end = seg["start_s"], seg["end_s"]
    stop = max(end, start + 0.5)
    page, console = _sign_in(chromium, live, "Ada", PASSWORD)
    page.fill("#f-job", job["id"])
    _then_loaded(page, lambda: page.click("#apply"))
    assert _ids(page) == [seg["id"]]
    card = f"#item-{seg['id']}"
    assert f"{start:.1f} s to {end:.1f} s" in page.inner_text(f"{card} .meta")
    video = page.locator(f"{card} video").element_handle()
    assert video is not None
    page.wait_for_function("v => v.readyState >= 1", arg=video)
    assert abs(page.evaluate("v => v.currentTime", video) - start) < 0.1
    page.evaluate("v => v.play()", video)
    # it plays: not paused, at or after start_s, with data to show, and time moves on
    page.wait_for_function(
        "([v, s]) => !v.paused && v.readyState >= 2 && v.currentTime > s + 0.2",
        arg=[video, start],
        timeout=15_000,
    )
    state = page.evaluate(
        "v => ({paused: v.paused, t: v.currentTime, ready: v.readyState, err: v.error})", video
    )
    assert not state["paused"] and state["t"] >= start - 0.1 and state["ready"] >= 2, state
    assert state["err"] is None
    # ... and stops at end_s by itself (timeupdate comes every 250 ms at most)
    page.wait_for_function("v => v.paused && v.dataset.stoppedAt", arg=video, timeout=15_000)
    stopped = float(page.evaluate("v => v.dataset.stoppedAt", video))
    assert stop <= stopped <= stop + 0.3, (stopped, start, end)
    # the player reads the video in byte ranges, with the page's session
    ranged = page.request.get(live.base + seg["media_url"], headers={"Range": "bytes=0-99"})
    assert ranged.status == 206 and len(ranged.body()) == 100
    assert ranged.headers["content-range"].startswith("bytes 0-99/")
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0",
        arg=page.locator(f"{card} img.filmstrip").element_handle(),
    )
    _shot(page, live, "segment")
    # the item's own page plays it too, by media fragment (no script): #t=start,end
    page.goto(f"{live.base}/review/items/{seg['id']}")
    src = page.get_attribute(f"{card} video", "src") or ""
    assert src == f"{seg['media_url']}#t={start:.3f},{stop:.3f}"
    fragment = page.locator(f"{card} video").element_handle()
    page.wait_for_function("v => v.readyState >= 1", arg=fragment)
    page.evaluate("v => v.play()", fragment)
    page.wait_for_function("v => !v.paused && v.readyState >= 2", arg=fragment, timeout=15_000)
    page.wait_for_function("v => v.paused", arg=fragment, timeout=15_000)
    ended_at = page.evaluate("v => v.currentTime", fragment)
    assert stop - 0.1 <= ended_at <= stop + 0.3, (ended_at, start, end)  # (the clip is 2.4 s)
    print(f"\nsegment {start}-{end} s: card stopped at {stopped:.3f}, fragment at {ended_at:.3f}")
    _clean(console)


def test_new_flagged_items_reach_an_open_page(
    live: Live,  # noqa: F811
    store: Store,
    chromium: Any,
) -> None:
    key_id = live.key.split("_")[1]
    seed_queue(store, key_id, 3)  # something to have the focus on
    other_id, other_key = create_key(store, "tenant B")
    page, console = _sign_in(chromium, live, "Ada", PASSWORD)
    page.wait_for_selector("#queue[data-live='open']", state="attached")
    page.keyboard.press("j")
    focused = page.get_attribute("#items > li.focus", "data-id")
    shown = _ids(page)
    # another tenant's item first, then two of Ada's tenant
    (theirs_job,) = seed_queue(store, other_id, 1)
    mine_job, *_ = seed_queue(store, key_id, 2)
    theirs = [it["id"] for it in _items(live, {"X-API-Key": other_key}, job_id=theirs_job)]
    mine = sorted(it["id"] for it in _items(live, live.auth, job_id=mine_job))
    assert len(theirs) == 1 and len(mine) == 2 and theirs[0] < mine[0]
    page.wait_for_function(
        "() => document.getElementById('fresh-count').textContent === '2'", timeout=20_000
    )
    assert page.is_visible("#fresh")
    arrived = sorted(int(x) for x in (page.get_attribute("#fresh", "data-ids") or "").split(","))
    assert arrived == mine
    # nothing moved under the reviewer's keys: same items, same focus
    assert _ids(page) == shown
    assert page.get_attribute("#items > li.focus", "data-id") == focused
    _shot(page, live, "live")
    _then_loaded(page, lambda: page.keyboard.press("n"))
    now = _ids(page)
    assert now[:2] == sorted(mine, reverse=True) and theirs[0] not in now
    assert page.is_hidden("#fresh")
    # still nothing of tenant B, however long the page stays open
    time.sleep(1.5)
    assert page.inner_text("#fresh-count") == "0" and page.is_hidden("#fresh")
    _clean(console)


def test_disagreement_history_admin_route_and_tenants(
    live: Live,  # noqa: F811
    store: Store,
    chromium: Any,
) -> None:
    key_id = live.key.split("_")[1]
    (job,) = seed_queue(store, key_id, 2)
    item = max(it["id"] for it in _items(live, live.auth, job_id=job))
    bob = _account(store, "Bob", key_id)
    other_id, other_key = create_key(store, "tenant B")
    (their_job,) = seed_queue(store, other_id, 1)
    (their_item,) = [it["id"] for it in _items(live, {"X-API-Key": other_key}, job_id=their_job)]
    carol = _account(store, "Carol", other_id)

    # Ada approves by keyboard on the queue page
    ada, ada_console = _sign_in(chromium, live, "Ada", PASSWORD)
    ada.fill("#f-job", job)
    _then_loaded(ada, lambda: ada.click("#apply"))
    assert ada.get_attribute("#items > li.focus", "data-id") == str(item)
    _then_loaded(ada, lambda: ada.keyboard.press("a"))
    # Bob rejects it on the item's page, with a note
    bob_page, bob_console = _sign_in(chromium, live, "Bob", bob)
    bob_page.goto(f"{live.base}/review/items/{item}")
    bob_page.fill("#note", "a second face in the mirror")
    bob_page.click(f"#item-{item} button.reject")
    bob_page.wait_for_url(f"**/review/items/{item}#history")
    rows = bob_page.locator("#history tbody tr")
    assert rows.count() == 2
    assert "Ada" in rows.nth(0).inner_text() and "approved" in rows.nth(0).inner_text()
    assert "Bob" in rows.nth(1).inner_text() and "rejected" in rows.nth(1).inner_text()
    assert bob_page.inner_text("#history tbody tr:nth-child(2) td.note") == (
        "a second face in the mirror"
    )
    # Ada sees the disagreement on the card and the history on the item's page
    _then_loaded(ada, lambda: ada.select_option("#f-status", "all"))
    badge = ada.locator(f"#item-{item} .badge.disagree")
    assert badge.count() == 1 and "2 decisions" in ada.inner_text(f"#item-{item} .decision")
    assert "rejected by Bob" in ada.inner_text(f"#item-{item} .decision")
    badge.click()
    ada.wait_for_url(f"**/review/items/{item}#history")
    assert ada.locator(f"#item-{item} .badge.disagree").count() == 1
    assert ada.locator("#history tbody tr").count() == 2
    api = ada.request.get(f"{live.base}/v1/review/items/{item}/history").json()
    assert [(h["reviewer"], h["decision"], h["note"]) for h in api] == [
        ("Ada", "approved", None),
        ("Bob", "rejected", "a second face in the mirror"),
    ]
    _shot(ada, live, "item")
    # a reviewer without the admin role is refused the admin route, in the browser too
    refused = ada.request.get(f"{live.base}/v1/review/reviewers")
    assert refused.status == 403 and refused.json()["code"] == "Forbidden"
    # Carol (tenant B) sees her tenant's item and nothing of Ada's tenant
    carol_page, carol_console = _sign_in(chromium, live, "Carol", carol)
    _then_loaded(carol_page, lambda: carol_page.select_option("#f-status", "all"))
    assert _ids(carol_page) == [their_item] and carol_page.inner_text("#c-all") == "1"
    for url in (
        f"/review/items/{item}",
        f"/v1/review/items/{item}/history",
        f"/review/items/{item}/thumbnail",
    ):
        assert carol_page.request.get(live.base + url).status == 404, url
    exported = carol_page.request.get(f"{live.base}/review/export?format=json").json()
    assert [e["result_id"] for e in exported] == [their_item]
    listed = carol_page.request.get(f"{live.base}/v1/review/items?status=all&limit=200").json()
    assert [it["id"] for it in listed["items"]] == [their_item]
    for console in (ada_console, bob_console, carol_console):
        _clean(console)


def test_mien_serve_stops_soon_with_an_open_event_stream(tmp_path: Path) -> None:
    """SIGTERM while a review page follows ``/v1/review/events``: the stream ends at its next
    poll and the server exits in seconds (the stream itself would last a minute, and uvicorn
    waits for open requests up to the analysis budget + 5 s)."""
    store = ["--data-dir", str(tmp_path)]
    key = cli_key(store)
    port = free_port()
    log = tmp_path / "server.log"
    proc = spawn_server([*store, "--port", str(port), "--workers", "1", "--threads", "1"], log)
    base = f"http://127.0.0.1:{port}"
    opened = threading.Event()
    ended: list[str] = []

    def follow() -> None:
        try:
            with httpx.stream(
                "GET", f"{base}/v1/review/events", headers={"X-API-Key": key}, timeout=120
            ) as r:
                for chunk in r.iter_text():
                    if "retry:" in chunk:
                        opened.set()
            ended.append("closed")
        except httpx.HTTPError as e:
            ended.append(type(e).__name__)

    try:
        wait_healthy(proc, base, log)
        client = threading.Thread(target=follow, daemon=True)
        client.start()
        assert opened.wait(30), log.read_text()
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
        took = time.monotonic() - t0
        client.join(timeout=10)
        assert took < 5, (took, log.read_text())
        # uvicorn ends by raising the signal again once it has shut down cleanly
        assert code in (0, -signal.SIGTERM), log.read_text()
        assert "Application shutdown complete" in log.read_text()
        assert "Cancel" not in log.read_text()  # the stream ended; nothing had to be cancelled
        print(f"\nmien serve stopped {took:.1f} s after SIGTERM with an open event stream")
        assert ended, "the event stream was not closed"
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_a_bulk_decision_queues_one_webhook_per_item(live: Live, store: Store) -> None:  # noqa: F811
    """``POST /v1/review/decisions`` records ``review.decided`` for each decided item whose job
    has a callback address (one query and one insert for the whole bulk), none for others."""
    import json

    from sqlalchemy import select, update

    from mien.service.schema import jobs, webhook_deliveries

    key_id = live.key.split("_")[1]
    hooked, plain = seed_queue(store, key_id, 150)  # two jobs of 100 and 50 items
    with store.engine.begin() as c:
        c.execute(
            update(jobs).where(jobs.c.id == hooked).values(callback_url="https://hooks.example/x")
        )
    ids = [it["id"] for it in _items(live, live.auth, job_id=hooked, limit=5)]
    ids += [it["id"] for it in _items(live, live.auth, job_id=plain, limit=5)]
    r = httpx.post(
        f"{live.base}/v1/review/decisions",
        json={"item_ids": ids, "decision": "reject", "reviewer": "bulk"},
        headers=live.auth,
        timeout=30,
    )
    assert r.status_code == 200 and sorted(r.json()["decided"]) == sorted(ids), r.text
    with store.engine.connect() as c:
        rows = c.execute(
            select(webhook_deliveries.c.job_id, webhook_deliveries.c.body).where(
                webhook_deliveries.c.event == "review.decided",
                webhook_deliveries.c.job_id.in_([hooked, plain]),
            )
        ).all()
    bodies = [json.loads(b) for _, b in rows]
    assert {j for j, _ in rows} == {hooked}
    assert sorted(b["data"]["result_id"] for b in bodies) == sorted(ids[:5])
    assert all(
        b["data"]["decision"] == "rejected"
        and b["data"]["actor"] == {"kind": "key", "name": "bulk", "key_id": key_id}
        and b["data"]["job_id"] == hooked
        for b in bodies
    )
    assert len({b["id"] for b in bodies}) == 5
