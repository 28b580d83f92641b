"""The review queue at volume (issue 18, "a queue you can work through"), on SQLite and the real
PostgreSQL: ``GET /v1/review/items`` (filters, sorts, cursor paging, counts) and the page in a
real headless Chromium (Playwright driving Debian's /usr/bin/chromium) against 2,000 flagged
items: sign in, filter, page, review 50 items by keyboard, bulk-reject 20, undo, counts, decided
items leaving the undecided view.

With ``MIEN_DOC_SCREENSHOTS=1`` the browser test writes docs/review/*.png (shown in
docs/review.md); CI leaves them alone."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mien.service.store import Store

from .review_seed import PER_JOB, seed_queue
from .test_review import (  # noqa: F401
    CHROMIUM,
    CHROMIUM_ARGS,
    PASSWORD,
    Live,
    _flagged_job,
    live,
)

SEEDED = 1998  # + the 2 real photos of _flagged_job = 2,000 flagged items
#: seeded items of the video jobs (every 4th job) and of the id-photo jobs (every 2nd job)
SEGMENTS = sum(min(PER_JOB, SEEDED - j * PER_JOB) for j in range(3, 20, 4))
ID_PHOTO = sum(min(PER_JOB, SEEDED - j * PER_JOB) for j in range(1, 20, 2))
SHOTS = Path(__file__).resolve().parent.parent / "docs" / "review"


@pytest.fixture(scope="module")
def queue(live: Live) -> Iterator[dict[str, Any]]:  # noqa: F811
    """The live server's store seeded with 2,000 flagged items of its key."""
    job = _flagged_job(live)
    store = Store.open(live.config.database_url, migrate_schema=False)
    key_id = live.key.split("_")[1]
    try:
        job_ids = seed_queue(store, key_id, SEEDED)
        yield {"job": job, "job_ids": job_ids, "store": store}
    finally:
        store.close()


def _get(live: Live, **params: Any) -> httpx.Response:  # noqa: F811
    return httpx.get(f"{live.base}/v1/review/items", params=params, headers=live.auth, timeout=30)


def test_queue_api_filters_sorts_and_pages(live: Live, queue: dict[str, Any]) -> None:  # noqa: F811
    first = _get(live, status="undecided", limit=200).json()
    assert first["counts"] == {"undecided": 2000, "approved": 0, "rejected": 0, "all": 2000}
    # every item exactly once through the cursors, newest first
    seen: list[int] = []
    page = first
    while True:
        seen += [it["id"] for it in page["items"]]
        if page["next_cursor"] is None:
            break
        page = _get(live, status="undecided", limit=200, cursor=page["next_cursor"]).json()
    assert len(seen) == 2000 and len(set(seen)) == 2000 and seen == sorted(seen, reverse=True)
    oldest = _get(live, sort="oldest", limit=5).json()["items"]
    assert [it["id"] for it in oldest] == sorted(seen)[:5]
    # severity: errors first, then more flags; ties newest first; pages continue the order
    sev = _get(live, sort="severity", limit=100).json()
    nxt = _get(live, sort="severity", limit=100, cursor=sev["next_cursor"]).json()

    def key(it: dict[str, Any]) -> tuple[int, int]:
        errors = sum(f.get("severity") == "error" for f in it["flags"])
        return (errors * 100 + len(it["flags"]), it["id"])

    keys = [key(it) for it in sev["items"] + nxt["items"]]
    assert keys == sorted(keys, reverse=True) and keys[0][0] >= 100
    # filters: kind, rule, profile, job, time; counts follow the filters
    segments = _get(live, kind="segment", limit=200).json()
    assert segments["counts"]["all"] == SEGMENTS
    assert all(it["kind"] == "segment" and it["end_s"] > it["start_s"] for it in segments["items"])
    assert all(it["track_id"] is not None for it in segments["items"])
    masks = _get(live, rule="mask", limit=200).json()
    assert 0 < masks["counts"]["all"] < 2000
    assert all(any(f["rule"] == "mask" for f in it["flags"]) for it in masks["items"])
    id_photo = _get(live, profile="id-photo", limit=200).json()
    assert id_photo["counts"]["all"] == ID_PHOTO
    assert all(it["profile"] == "id-photo" for it in id_photo["items"])
    job = _get(live, job_id=queue["job"]["id"]).json()
    assert sorted(it["name"] for it in job["items"]) == ["astronaut.jpg", "bald_guys.jpg"]
    some = sorted(seen)[1000]
    row = queue["store"].result_with_media(some, key_ids=(live.key.split("_")[1],))
    since = _get(live, since=row.created_at, limit=1).json()["counts"]["all"]
    until = _get(live, until=row.created_at, limit=1).json()["counts"]["all"]
    assert since + until == 2000 and 900 < since < 1100
    iso = dt.datetime.fromtimestamp(row.created_at, dt.timezone.utc).isoformat()
    assert _get(live, since=iso, limit=1).json()["counts"]["all"] == since  # ISO 8601 alike
    # a bad cursor, or one of another sort, is a 422 problem; so are bad filters
    for cursor in ("garbage!", "W10", first["next_cursor"] + "x", "A" * 300):
        bad = _get(live, cursor=cursor)
        assert bad.status_code == 422 and bad.json()["code"] == "InvalidParameter", bad.text
    other_sort = _get(live, sort="oldest", cursor=first["next_cursor"])
    assert other_sort.status_code == 422 and "sort" in other_sort.json()["detail"]
    for params in (
        {"status": "maybe"},
        {"kind": "gif"},
        {"limit": 201},
        {"rule": "a'b"},
        {"until": "inf"},
        {"since": "nan"},
        {"since": "yesterday"},
    ):
        assert _get(live, **params).status_code == 422, params
    # the old alias and another tenant
    assert len(_get(live, undecided=True, limit=3).json()["items"]) == 3
    from mien.service.keys import create_key

    _, other = create_key(queue["store"], "other tenant")
    theirs = httpx.get(f"{live.base}/v1/review/items", headers={"X-API-Key": other}).json()
    assert theirs["items"] == [] and theirs["counts"]["all"] == 0


def _version(page: Any) -> int:
    if page.locator("#queue").count() == 0:
        return 0  # the sign-in form
    return int(page.get_attribute("#queue", "data-version") or 0)


def _then_loaded(page: Any, action: Any) -> None:
    """Do ``action`` and wait until the page has loaded the queue again."""
    before = _version(page)
    action()
    page.wait_for_function(
        "([q, before]) => (q = document.getElementById('queue')) !== null && "
        "Number(q.dataset.version) > before && q.dataset.busy === '0'",
        arg=[None, before],
    )


def _count(page: Any, status: str) -> int:
    return int(page.inner_text(f"#c-{status}"))


def _ids(page: Any) -> list[int]:
    return [
        int(x)
        for x in page.eval_on_selector_all("#items > li", "els => els.map(e => e.dataset.id)")
    ]


def _shot(page: Any, live: Live, name: str) -> None:  # noqa: F811
    if os.environ.get("MIEN_DOC_SCREENSHOTS") == "1" and "sqlite" in live.config.database_url:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(SHOTS / f"{name}.png"))


def test_queue_page_by_keyboard(live: Live, queue: dict[str, Any]) -> None:  # noqa: F811
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"needs Debian's Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    start = _get(live, status="all", limit=1).json()["counts"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            console: list[str] = []
            page.on("console", lambda msg: console.append(msg.text))
            page.goto(f"{live.base}/review")
            page.fill("#reviewer-name", "Ada")  # the account of the `live` fixture
            page.fill("#password", PASSWORD)
            _then_loaded(page, lambda: page.click("#sign-in"))
            assert page.locator("#items > li").count() == 50
            assert _count(page, "undecided") == start["undecided"]

            # filter: the real job's two photos, with annotated thumbnails
            page.fill("#f-job", queue["job"]["id"])
            _then_loaded(page, lambda: page.click("#apply"))
            assert page.locator("#items > li").count() == 2 and _count(page, "all") == 2
            for img in page.locator("#items img").all():
                page.wait_for_function(
                    "el => el.complete && el.naturalWidth > 0", arg=img.element_handle()
                )
            _shot(page, live, "photos")
            page.fill("#f-job", "")
            _then_loaded(page, lambda: page.select_option("#f-kind", "segment"))
            assert _count(page, "all") == SEGMENTS
            assert "track" in page.inner_text("#items > li:first-child .meta")
            _shot(page, live, "segments")
            _then_loaded(page, lambda: page.select_option("#f-kind", ""))

            # page forward and back (buttons and arrow keys)
            first_page = _ids(page)
            _then_loaded(page, lambda: page.click("#next"))
            second_page = _ids(page)
            assert page.inner_text("#page-no") == "2" and max(second_page) < min(first_page)
            _then_loaded(page, lambda: page.keyboard.press("ArrowLeft"))
            assert _ids(page) == first_page and page.is_disabled("#prev")

            # j/k move the focus
            page.keyboard.press("j")
            page.keyboard.press("j")
            page.keyboard.press("k")
            assert page.get_attribute("#items > li.focus", "data-id") == str(first_page[1])
            page.keyboard.press("k")

            # review 50 items by keyboard: a / r, each decided item leaves the undecided view
            decided: dict[int, str] = {}
            for n in range(50):
                item = int(page.get_attribute("#items > li.focus", "data-id") or 0)
                key = "a" if n % 2 == 0 else "r"
                _then_loaded(page, lambda key=key: page.keyboard.press(key))
                decided[item] = "approved" if key == "a" else "rejected"
                assert page.locator(f"#item-{item}").count() == 0
            assert _count(page, "undecided") == start["undecided"] - 50
            assert _count(page, "approved") == 25 and _count(page, "rejected") == 25
            api = {it["id"]: it for it in _get(live, status="all", limit=200).json()["items"]}
            assert all(
                api[i]["decision"] == d and api[i]["reviewer"] == "Ada" for i, d in decided.items()
            )

            # bulk: select 20 with x (moving with j), reject them with shift+R
            selected = _ids(page)[:20]
            for _ in range(20):
                page.keyboard.press("x")
                page.keyboard.press("j")
            assert page.inner_text("#selected-count") == "20"
            _shot(page, live, "queue")
            _then_loaded(page, lambda: page.keyboard.press("Shift+R"))
            assert not set(selected) & set(_ids(page))
            assert _count(page, "rejected") == 45
            assert _count(page, "undecided") == start["undecided"] - 70

            # undo: the 20 are undecided again and back in the view
            _then_loaded(page, lambda: page.keyboard.press("u"))
            assert _count(page, "rejected") == 25
            assert _count(page, "undecided") == start["undecided"] - 50
            assert set(selected) <= set(_ids(page))
            back = {it["id"]: it for it in _get(live, limit=200).json()["items"]}
            assert all(back[i]["decision"] is None for i in selected)

            # the approved view holds what was approved by keyboard
            _then_loaded(page, lambda: page.select_option("#f-status", "approved"))
            approved = {i for i, d in decided.items() if d == "approved"}
            assert set(_ids(page)) == approved
            assert "approved by Ada" in page.inner_text("#items > li:first-child .decision")

            page.keyboard.press("?")
            assert page.is_visible("#help")
            _shot(page, live, "help")
            # an item's own page (a link in each card; its forms work without JavaScript)
            one = next(iter(approved))
            page.goto(f"{live.base}/review/items/{one}")
            assert "approved by Ada" in page.inner_text(f"#item-{one} .decision")
            assert page.request.get(f"{live.base}/review/items/999999").status == 404
            assert not [m for m in console if "Content Security Policy" in m], console
            assert not [m for m in console if "rror" in m], console
        finally:
            browser.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migration_0005_fills_the_severity_of_older_results(backend: str, tmp_path: Path) -> None:
    """Rows stored before 0005 get the severity :func:`severity_of` gives new rows."""
    from importlib import resources

    from alembic import command
    from alembic.config import Config
    from sqlalchemy import column, insert, select, table

    from mien.service.queue import severity_of
    from mien.service.schema import api_keys, job_items, jobs, results
    from mien.service.store import make_engine

    from .service_fixtures import make_database

    db = make_database(backend)
    engine = make_engine(db.url or f"sqlite:///{tmp_path / 'old.db'}")
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("mien.service") / "migrations"))
    flag_sets = [[], [{"rule": "a", "severity": "warning", "message": "m"}]]
    flag_sets += [
        [{"rule": f"r{i}", "severity": s, "message": "x"} for i, s in enumerate(sev)]
        for sev in (["error"], ["error", "warning", "error"], ["info"] * 4)
    ]
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0004")
        # the results table as 0004 made it (no severity column)
        old = table("results", *[column(c.name) for c in results.c if c.name != "severity"])
        with engine.begin() as conn:
            conn.execute(insert(api_keys).values(id="k", secret_hash="h", created_at=0.0))
            conn.execute(
                insert(jobs).values(
                    id="j" * 32,
                    key_id="k",
                    kind="images",
                    status="succeeded",
                    params="{}",
                    request_hash="h",
                    total_items=1,
                    created_at=0.0,
                    retention_s=60,
                )
            )
            conn.execute(insert(job_items).values(job_id="j" * 32, idx=0, name="x", status="done"))
            for seq, flags in enumerate(flag_sets):
                values = {
                    "job_id": "j" * 32,
                    "item_idx": 0,
                    "seq": seq,
                    "kind": "image",
                    "data": "{}",
                    "flags": json.dumps(flags),
                    "flagged": bool(flags),
                    "created_at": 0.0,
                }
                conn.execute(insert(old).values(**values))
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
        with engine.connect() as conn:
            got = conn.execute(select(results.c.seq, results.c.severity).order_by("seq")).all()
        assert [s for _, s in got] == [severity_of(f) for f in flag_sets] == [0, 1, 101, 203, 4]
    finally:
        engine.dispose()
        db.drop()
