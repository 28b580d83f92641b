"""Reviewer accounts and decisions as history (issue 18), on the real app with SQLite and the
real PostgreSQL: the ``mien reviewers`` command, password and one-time-link sign-in, lockout,
CSRF on the review API, tenant isolation, the admin route, the decision history (two reviewers
disagreeing, undo, bulk, API-key decisions), the export and the migration from 0002."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text, update

from mien.service.passwords import ACCOUNT_FAILURES, ADDRESS_FAILURES, SignInGuard, hash_password
from mien.service.rows import Actor
from mien.service.schema import review_decisions, review_sessions, reviewer_links, reviewers
from mien.service.store import Store, make_engine, migrate

from .service_fixtures import (
    Database,
    Service,
    browser,
    csrf_of,
    database_fixture,
    flagged_items,
    problem,
    service_fixture,
    store_args,
)

service = service_fixture(workers=0)
database = database_fixture()
SAME_ORIGIN = {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}
PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _fresh_guard(service: Service) -> None:
    """Each test starts with no failed sign-ins counted for the test client's address."""
    service.app.state.mien.sign_ins = SignInGuard()


def store_of(svc: Service) -> Store:
    store: Store = svc.app.state.mien.store
    return store


_names = iter(range(10**6))


def account(
    svc: Service,
    role: str = "reviewer",
    keys: tuple[str, ...] = (),
    password: str | None = PASSWORD,
) -> str:
    """A new reviewer account (a unique name) assigned to ``keys``; returns its name."""
    name = f"{role}-{next(_names)}-{time.time_ns() % 10**6}"
    store = store_of(svc)
    rid = store.add_reviewer(name, role, hash_password(password) if password else None)
    for key_id in keys:
        assert store.assign_key(rid, key_id)
    return name


def try_sign_in(client: TestClient, name: str, password: str) -> httpx.Response:
    login = client.get("/review")
    assert login.status_code in (200, 401) and 'id="password"' in login.text
    return client.post(
        "/review/login",
        data={"name": name, "password": password, "csrf_token": csrf_of(login.text)},
        headers=SAME_ORIGIN,
    )


def sign_in(client: TestClient, name: str, password: str = PASSWORD) -> str:
    """Sign in through the page's form; returns the session's CSRF token."""
    r = try_sign_in(client, name, password)
    assert r.status_code == 303, r.text
    page = client.get("/review")
    assert page.status_code == 200 and f'id="reviewer">{name}<' in page.text
    return csrf_of(page.text)


def decide(client: TestClient, item: int, decision: str, **extra: Any) -> httpx.Response:
    headers = extra.pop("headers", {})
    return client.post(
        f"/v1/review/items/{item}/decision", json={"decision": decision, **extra}, headers=headers
    )


# -- the command line ------------------------------------------------------------------------


def mien(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mien", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_reviewers_cli(database: Database, tmp_path: Path) -> None:
    where = store_args(tmp_path, database)
    made = mien("keys", "create", *where)
    assert made.returncode == 0, made.stderr
    key_id = made.stdout.strip().split("_")[1]
    add = mien("reviewers", "add", "Ada", "--role", "admin", "--password-stdin", *where,
               stdin=PASSWORD + "\n")  # fmt: skip
    assert add.returncode == 0 and add.stdout == "", add.stderr
    assert mien("reviewers", "add", "Ada", "--link", *where).returncode == 1  # taken
    short = mien("reviewers", "add", "Cy", "--password-stdin", *where, stdin="short\n")
    assert short.returncode == 2 and "at least" in short.stderr
    neither = mien("reviewers", "add", "Cy", *where)
    assert neither.returncode == 2  # --password-stdin or --link is required
    linked = mien("reviewers", "add", "Bob", "--link", "--base-url", "https://m.example/", *where)
    assert linked.returncode == 0, linked.stderr
    link = linked.stdout.strip()
    assert re.fullmatch(r"https://m\.example/review/login/[A-Za-z0-9_-]{43}", link), link
    assert mien("reviewers", "assign", "Ada", key_id, *where).returncode == 0
    assert mien("reviewers", "assign", "Ada", "0000", *where).returncode == 1  # no such key
    assert mien("reviewers", "assign", "Nobody", key_id, *where).returncode == 1
    listed = mien("reviewers", "list", *where)
    lines = {ln.split("\t")[0]: ln.split("\t") for ln in listed.stdout.splitlines()}
    assert lines["Ada"][1:4] == ["admin", "active", "password"] and lines["Ada"][5] == key_id
    assert lines["Bob"][1:4] == ["reviewer", "active", "link only"] and lines["Bob"][5] == "-"
    assert mien("reviewers", "unassign", "Ada", key_id, *where).returncode == 0
    assert mien("reviewers", "unassign", "Ada", key_id, *where).returncode == 1
    assert mien("reviewers", "disable", "Bob", *where).returncode == 0
    assert mien("reviewers", "link", "Bob", *where).returncode == 1  # disabled: no link
    again = mien("reviewers", "link", "Ada", *where)
    assert again.returncode == 0 and again.stdout.startswith("http://127.0.0.1:8000/review/login/")
    # what the store holds: hashes only (scrypt with a salt; the links' SHA-256)
    store = Store.open(database.url or f"sqlite:///{tmp_path / 'mien.db'}")
    try:
        with store.engine.connect() as c:
            ada = c.execute(select(reviewers).where(reviewers.c.name == "Ada")).mappings().one()
            links = c.execute(select(reviewer_links)).mappings().all()
        assert ada["password_hash"].startswith("scrypt$16384$8$1$") and PASSWORD not in str(ada)
        token = again.stdout.strip().rsplit("/", 1)[1]
        digest = hashlib.sha256(token.encode()).hexdigest()
        assert [row["token_hash"] for row in links] == [digest]  # Bob's link ended with him
        state = {r.name: r.disabled_at is not None for r, _ in store.list_reviewers()}
        assert state == {"Ada": False, "Bob": True}
    finally:
        store.close()


# -- sign-in ---------------------------------------------------------------------------------


def test_password_sign_in_session_and_sign_out(service: Service) -> None:
    item = flagged_items(service, service.key_id)[0]
    name = account(service, keys=(service.key_id,))
    with browser(service) as client:
        login = client.get("/review")
        assert login.status_code == 401 and 'id="key"' not in login.text  # no API-key form
        r = try_sign_in(client, name, PASSWORD)
        assert r.status_code == 303 and r.headers["location"] == "/review"
        (cookie,) = [c for c in r.headers.get_list("set-cookie") if c.startswith("mien_session=")]
        attrs = [a.strip().lower() for a in cookie.split(";")[1:]]
        assert "httponly" in attrs and "samesite=strict" in attrs and "secure" not in attrs
        value = cookie.split(";")[0].split("=", 1)[1]
        assert service.key not in cookie and PASSWORD not in cookie and len(value) >= 43
        page = client.get("/review")  # the queue's shell; its script reads the queue API
        assert page.status_code == 200 and f'id="reviewer">{name}<' in page.text
        listed = client.get("/v1/review/items", params={"status": "all"}).json()["items"]
        assert item in [it["id"] for it in listed]
        with store_of(service).engine.connect() as c:
            rows = c.execute(select(review_sessions)).mappings().all()
        mine = [row for row in rows if row["reviewer"] == name]
        assert [row["id_hash"] for row in mine] == [hashlib.sha256(value.encode()).hexdigest()]
        assert mine[0]["reviewer_id"] is not None and mine[0]["key_id"] is None
        token = csrf_of(page.text)
        assert client.post("/review/logout", data={"csrf_token": token}).status_code == 303
        assert client.get("/review").status_code == 401
    with browser(service, "https://testserver") as tls:
        login = tls.get("/review")
        r = tls.post(
            "/review/login",
            data={"name": name, "password": PASSWORD, "csrf_token": csrf_of(login.text)},
            headers={"Origin": "https://testserver"},
        )
        (cookie,) = [c for c in r.headers.get_list("set-cookie") if c.startswith("mien_session=")]
        assert "secure" in [a.strip().lower() for a in cookie.split(";")]


def test_wrong_password_and_lockout(service: Service) -> None:
    name = account(service, keys=(service.key_id,))
    with browser(service) as client:
        for wrong in ("wrong password!", "", PASSWORD + " "):
            r = try_sign_in(client, name, wrong)
            assert r.status_code == 401 and "Wrong name or password" in r.text
            assert "mien_session" not in r.headers.get("set-cookie", "")
        # an unknown name gets the very same answer
        r = try_sign_in(client, "nobody-at-all", PASSWORD)
        assert r.status_code == 401 and "Wrong name or password" in r.text
        for _ in range(ACCOUNT_FAILURES - 3):
            assert try_sign_in(client, name, "still wrong!!").status_code == 401
        # locked now: even the right password is refused, with the same message
        r = try_sign_in(client, name, PASSWORD)
        assert r.status_code == 401 and "Wrong name or password" in r.text
        row = store_of(service).get_reviewer(name)
        assert row is not None and row.locked_until and row.locked_until > time.time() + 800
        # once the lock ran out, the right password works (and resets the count)
        with store_of(service).engine.begin() as c:
            c.execute(update(reviewers).where(reviewers.c.name == name).values(locked_until=1.0))
        sign_in(client, name)
        row = store_of(service).get_reviewer(name)
        assert row is not None and row.failed_logins == 0 and row.locked_until is None


def test_failures_from_one_address_are_limited(service: Service) -> None:
    name = account(service, keys=(service.key_id,))
    with browser(service) as client:
        for i in range(ADDRESS_FAILURES):  # unknown names: no account gets locked
            assert try_sign_in(client, f"guess-{i}", "guessing password").status_code == 401
        r = try_sign_in(client, name, PASSWORD)
        assert r.status_code == 429 and "Too many failed sign-ins" in r.text
    assert store_of(service).get_reviewer(name).failed_logins == 0  # type: ignore[union-attr]


def test_addresses_sprayed_to_fill_the_table_do_not_reset_an_attacker() -> None:
    from mien.service.passwords import ADDRESS_TABLE

    guard = SignInGuard()
    for _ in range(ADDRESS_FAILURES):
        guard.failed("203.0.113.9")
    assert guard.blocked("203.0.113.9")
    for i in range(ADDRESS_TABLE + 50):  # the table overflows; the oldest entries go first
        guard.failed(f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}")
        if i % 1000 == 0:
            guard.failed("203.0.113.9")  # the attacker keeps failing meanwhile
    assert guard.blocked("203.0.113.9")
    assert len(guard._failures) == ADDRESS_TABLE
    assert "10.0.0.1" not in guard._failures  # the least recently failing were forgotten


def use_link(client: TestClient, token: str, **headers: str) -> httpx.Response:
    """Open a one-time link and press its button, as a browser does."""
    page = client.get(f"/review/login/{token}")
    if page.status_code != 200:
        return page
    return client.post(
        f"/review/login/{token}",
        data={"csrf_token": csrf_of(page.text)},
        headers={**SAME_ORIGIN, **headers},
    )


def test_one_time_link(service: Service) -> None:
    from mien.service.passwords import new_link_token

    store = store_of(service)
    name = account(service, keys=(service.key_id,), password=None)  # a link-only account
    row = store.get_reviewer(name)
    assert row is not None
    token, digest = new_link_token()
    store.add_link(digest, row.id, 900)
    with browser(service) as client:
        assert try_sign_in(client, name, "").status_code == 401  # no password to match
        # opening the link changes nothing (a mail scanner fetching it uses nothing up)
        for _ in range(2):
            page = client.get(f"/review/login/{token}")
            assert page.status_code == 200 and f'id="link-reviewer">{name}<' in page.text
            assert page.headers["cache-control"] == "no-store"
            assert not any(
                c.startswith("mien_session=") for c in page.headers.get_list("set-cookie")
            )
        csrf = csrf_of(page.text)
        # its button posts it with the form's token: not without, not from another site
        problem(client.post(f"/review/login/{token}", data={}), 403, "InvalidCsrfToken")
        evil = client.post(
            f"/review/login/{token}", data={"csrf_token": csrf}, headers={"Origin": "http://e.x"}
        )
        problem(evil, 403, "CrossSiteRequest")
        r = use_link(client, token)
        assert r.status_code == 303 and r.headers["location"] == "/review"
        assert any(c.startswith("mien_session=") for c in r.headers.get_list("set-cookie"))
        assert f'id="reviewer">{name}<' in client.get("/review").text
    with browser(service) as other:  # single use: the same link again opens nothing
        again = other.get(f"/review/login/{token}")
        assert again.status_code == 401 and "not valid" in again.text
        login = other.get("/review")
        replay = other.post(
            f"/review/login/{token}", data={"csrf_token": csrf_of(login.text)}, headers=SAME_ORIGIN
        )
        assert replay.status_code == 401 and other.get("/review").status_code == 401
    # expired links, unknown tokens and links of a disabled account do not work
    token2, digest2 = new_link_token()
    store.add_link(digest2, row.id, 900)
    with store.engine.begin() as c:
        c.execute(
            update(reviewer_links)
            .where(reviewer_links.c.token_hash == digest2)
            .values(expires_at=time.time() - 1)
        )
    token3, digest3 = new_link_token()
    store.add_link(digest3, row.id, 900)
    with browser(service) as client:
        assert use_link(client, token2).status_code == 401
        assert use_link(client, "A" * 43).status_code == 401
        assert client.get("/review/login/not%20a%20token").status_code == 401
        page = client.get(f"/review/login/{token3}")
        assert page.status_code == 200
        assert store.disable_reviewer(row.id)  # disabled between the page and the button
        r = client.post(
            f"/review/login/{token3}", data={"csrf_token": csrf_of(page.text)}, headers=SAME_ORIGIN
        )
        assert r.status_code == 401 and client.get("/review").status_code == 401


def test_disabling_an_account_ends_its_sessions(service: Service) -> None:
    name = account(service, keys=(service.key_id,))
    with browser(service) as client:
        sign_in(client, name)
        row = store_of(service).get_reviewer(name)
        assert row is not None and store_of(service).disable_reviewer(row.id)
        assert client.get("/review").status_code == 401
        problem(client.get("/v1/review/items"), 401, "Unauthorized")
        assert try_sign_in(client, name, PASSWORD).status_code == 401


# -- the review API with a session: CSRF, tenants, roles -------------------------------------


def test_session_on_the_review_api_needs_the_csrf_header(service: Service) -> None:
    item = flagged_items(service, service.key_id)[0]
    name = account(service, keys=(service.key_id,))
    with browser(service) as client:
        token = sign_in(client, name)
        assert item in [it["id"] for it in client.get("/v1/review/items").json()["items"]]
        problem(decide(client, item, "approve"), 403, "InvalidCsrfToken")
        problem(decide(client, item, "approve", headers={"X-CSRF-Token": token[:-1]}), 403,
                "InvalidCsrfToken")  # fmt: skip
        body = {"item_ids": [item], "decision": "reject"}
        problem(client.post("/v1/review/decisions", json=body), 403, "InvalidCsrfToken")
        assert store_of(service).history(item, key_ids=[service.key_id]) == []
        ok = decide(client, item, "approve", headers={"X-CSRF-Token": token, **SAME_ORIGIN})
        assert ok.status_code == 200 and ok.json()["reviewer"] == name
        # the session opens the review API only: no other /v1 route takes it
        problem(client.get("/v1/jobs/0123456789abcdef"), 401, "Unauthorized")
        r = client.post("/v1/jobs", content=b"x", headers={"content-type": "image/jpeg"})
        problem(r, 401, "Unauthorized")
        # and from another site the browser's request is refused before anything
        evil = decide(
            client, item, "reject", headers={"X-CSRF-Token": token, "Origin": "http://e.x"}
        )
        problem(evil, 403, "CrossSiteRequest")


def test_a_reviewer_sees_only_assigned_tenants(service: Service) -> None:
    key_b, _ = service.new_key("tenant B")
    mine = flagged_items(service, service.key_id, 2)
    theirs = flagged_items(service, key_b, 2)
    name = account(service, keys=(service.key_id,))
    with browser(service) as client:
        token = sign_in(client, name)
        csrf = {"X-CSRF-Token": token}
        ids = {
            it["id"] for it in client.get("/v1/review/items?status=all&limit=200").json()["items"]
        }
        assert set(mine) <= ids and not ids & set(theirs)
        assert f"item-{mine[0]}" in client.get(f"/review/items/{mine[0]}").text
        problem(client.get(f"/review/items/{theirs[0]}"), 404, "NotFound")
        for other in theirs:  # 404, as for an item that does not exist: nothing leaks
            problem(client.get(f"/v1/review/items/{other}/history"), 404, "NotFound")
            problem(decide(client, other, "reject", headers=csrf), 404, "NotFound")
            problem(client.get(f"/review/items/{other}/thumbnail"), 404, "NotFound")
            r = client.post(
                f"/review/items/{other}", data={"decision": "reject", "csrf_token": token}
            )
            problem(r, 404, "NotFound")
        bulk = client.post(
            "/v1/review/decisions", json={"item_ids": [*mine, *theirs], "decision": "reject"},
            headers=csrf,
        )  # fmt: skip
        assert bulk.json() == {"decided": mine, "not_found": theirs}
        exported = {r["result_id"] for r in client.get("/v1/review/export").json()}
        assert set(mine) <= exported and not exported & set(theirs)
        assert store_of(service).history(theirs[0], key_ids=[key_b]) == []  # B untouched
        # unassigning takes effect at the next request
        row = store_of(service).get_reviewer(name)
        assert row is not None and store_of(service).unassign_key(row.id, service.key_id)
        assert client.get("/v1/review/items").json()["items"] == []
        problem(client.get(f"/v1/review/items/{mine[0]}/history"), 404, "NotFound")
    # an API key sees its own tenant only, the same way
    problem(service.client.get(f"/v1/review/items/{theirs[0]}/history", headers=service.auth),
            404, "NotFound")  # fmt: skip


def test_admin_route_refuses_non_admins(service: Service) -> None:
    plain = account(service, keys=(service.key_id,))
    admin = account(service, role="admin", keys=(service.key_id,))
    with browser(service) as client:
        sign_in(client, plain)
        body = problem(client.get("/v1/review/reviewers"), 403, "Forbidden")
        assert body["status"] == 403 and body["title"]
    problem(service.client.get("/v1/review/reviewers", headers=service.auth), 403, "Forbidden")
    problem(service.client.get("/v1/review/reviewers"), 401, "Unauthorized")
    with browser(service) as client:
        sign_in(client, admin)
        listed = {r["name"]: r for r in client.get("/v1/review/reviewers").json()}
        assert listed[plain] == {
            "name": plain, "role": "reviewer", "disabled": False, "keys": [service.key_id]
        }  # fmt: skip
        assert listed[admin]["role"] == "admin"


# -- decisions as history --------------------------------------------------------------------


def test_two_reviewers_disagree_and_undo(service: Service) -> None:
    item = flagged_items(service, service.key_id)[0]
    ada = account(service, keys=(service.key_id,))
    bob = account(service, keys=(service.key_id,))
    with browser(service) as a, browser(service) as b:
        a_token, b_token = sign_in(a, ada), sign_in(b, bob)
        r = decide(a, item, "approve", note="looks fine", headers={"X-CSRF-Token": a_token})
        first = r.json()
        assert first["decision"] == "approved" and first["reviewer"] == ada
        assert first["decision_count"] == 1 and not first["disagreement"]
        # the page's form still works and appends too
        form = b.post(f"/review/items/{item}", data={"decision": "reject", "csrf_token": b_token})
        assert form.status_code == 303
        (latest,) = [it for it in a.get("/v1/review/items").json()["items"] if it["id"] == item]
        assert latest["decision"] == "rejected" and latest["reviewer"] == bob
        assert latest["disagreement"] and latest["decision_count"] == 2
        hist = b.get(f"/v1/review/items/{item}/history").json()
        assert [(h["decision"], h["reviewer"], h["actor_kind"]) for h in hist] == [
            ("approved", ada, "reviewer"),
            ("rejected", bob, "reviewer"),
        ]
        assert hist[0]["note"] == "looks fine" and hist[1]["note"] is None
        assert hist[0]["key_id"] is None and hist[0]["at"].endswith("+00:00")
        # Bob undoes: the item is undecided again, the history keeps all three
        cleared = decide(b, item, "clear", headers={"X-CSRF-Token": b_token}).json()
        assert cleared["decision"] is None and cleared["reviewer"] is None
        assert cleared["decided_at"] is None and cleared["decision_count"] == 3
        assert not cleared["disagreement"]  # Bob withdrew; Ada's approval stands alone
        undecided = a.get("/v1/review/items?undecided=true").json()["items"]
        assert item in [it["id"] for it in undecided]
        hist = a.get(f"/v1/review/items/{item}/history").json()
        assert [h["decision"] for h in hist] == ["approved", "rejected", "cleared"]
        # the same reviewer changing their mind is no disagreement
        decide(a, item, "reject", headers={"X-CSRF-Token": a_token})
        again = decide(b, item, "reject", headers={"X-CSRF-Token": b_token}).json()
        assert again["decision"] == "rejected" and not again["disagreement"]


def test_an_api_key_decision_records_the_key(service: Service) -> None:
    item = flagged_items(service, service.key_id)[0]
    auth = service.auth
    problem(decide(service.client, item, "approve", headers=auth), 422, "InvalidParameter")
    r = decide(service.client, item, "approve", reviewer="moderation-bot", headers=auth)
    assert r.status_code == 200 and r.json()["reviewer"] == "moderation-bot"
    problem(decide(service.client, item, "maybe", reviewer="x", headers=auth), 422,
            "InvalidParameter")  # fmt: skip
    problem(decide(service.client, item, "approve", reviewer="x", note="a\x00b", headers=auth),
            422, "InvalidParameter")  # fmt: skip
    (entry,) = service.client.get(f"/v1/review/items/{item}/history", headers=auth).json()
    assert entry["actor_kind"] == "key" and entry["key_id"] == service.key_id
    assert entry["reviewer"] == "moderation-bot" and entry["decision"] == "approved"
    with store_of(service).engine.connect() as c:
        row = (
            c.execute(select(review_decisions).where(review_decisions.c.result_id == item))
            .mappings()
            .one()
        )
    assert row["reviewer_id"] is None and row["key_id"] == service.key_id


def test_bulk_decisions(service: Service) -> None:
    items = flagged_items(service, service.key_id, 5)
    auth = service.auth
    body = {"item_ids": [*items, items[0], 999_999_999], "decision": "reject", "reviewer": "Bulk"}
    r = service.client.post("/v1/review/decisions", json=body, headers=auth)
    assert r.status_code == 200 and r.json() == {"decided": items, "not_found": [999_999_999]}
    listed = {
        it["id"]: it for it in service.client.get("/v1/review/items", headers=auth).json()["items"]
    }
    assert all(listed[i]["decision"] == "rejected" and listed[i]["decision_count"] == 1
               for i in items)  # fmt: skip
    undo = {"item_ids": items[:2], "decision": "clear", "reviewer": "Bulk"}
    assert service.client.post("/v1/review/decisions", json=undo, headers=auth).status_code == 200
    listed = {
        it["id"]: it for it in service.client.get("/v1/review/items", headers=auth).json()["items"]
    }
    assert [listed[i]["decision"] for i in items] == [
        None,
        None,
        "rejected",
        "rejected",
        "rejected",
    ]
    too_many = {"item_ids": list(range(1, 502)), "decision": "reject", "reviewer": "Bulk"}
    problem(service.client.post("/v1/review/decisions", json=too_many, headers=auth), 422,
            "InvalidParameter")  # fmt: skip
    empty = {"item_ids": [], "decision": "reject", "reviewer": "Bulk"}
    problem(service.client.post("/v1/review/decisions", json=empty, headers=auth), 422,
            "InvalidParameter")  # fmt: skip
    huge = {"item_ids": [2**63], "decision": "reject", "reviewer": "Bulk"}
    problem(service.client.post("/v1/review/decisions", json=huge, headers=auth), 422,
            "InvalidParameter")  # fmt: skip
    # 500 at once, one transaction
    many = flagged_items(service, service.key_id, 500)
    body = {"item_ids": many, "decision": "approve", "reviewer": "Bulk"}
    r = service.client.post("/v1/review/decisions", json=body, headers=auth)
    assert r.status_code == 200 and r.json()["decided"] == many


def test_export_carries_the_history(service: Service) -> None:
    key_id, key = service.new_key("export")
    auth = {"Authorization": f"Bearer {key}"}
    first, second = flagged_items(service, key_id, 2)
    decide(service.client, first, "approve", reviewer="Ada", note="ok", headers=auth)
    decide(service.client, first, "reject", reviewer="=Bob", headers=auth)
    rows = {r["result_id"]: r for r in service.client.get("/v1/review/export", headers=auth).json()}
    assert rows[first]["decision"] == "rejected" and rows[first]["disagreement"] is True
    assert rows[first]["decision_count"] == 2 and rows[second]["history"] == []
    hist = rows[first]["history"]
    assert [(h["decision"], h["reviewer"], h["note"]) for h in hist] == [
        ("approved", "Ada", "ok"), ("rejected", "=Bob", None)
    ]  # fmt: skip
    assert all(h["actor_kind"] == "key" and h["key_id"] == key_id for h in hist)
    text_csv = service.client.get("/v1/review/export?format=csv", headers=auth).text
    by_id = {int(r["result_id"]): r for r in csv.DictReader(io.StringIO(text_csv))}
    assert by_id[first]["reviewer"] == "'=Bob"  # a formula is neutralised
    assert json.loads(by_id[first]["history"]) == hist
    assert by_id[first]["disagreement"] == "True" and by_id[second]["history"] == "[]"
    # the page's export (a session) answers the same for the tenants of the account
    name = account(service, keys=(key_id,))
    with browser(service) as client:
        sign_in(client, name)
        assert client.get("/review/export?format=csv").text == text_csv


# -- the migration ---------------------------------------------------------------------------


def test_migration_from_0002_keeps_decisions(database: Database, tmp_path: Path) -> None:
    url = database.url or f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    migrate(engine, "0002")
    with engine.begin() as c:
        c.execute(text("INSERT INTO api_keys (id, name, secret_hash, created_at) "
                       "VALUES ('k1', 'old', 'h', 1.0)"))  # fmt: skip
        c.execute(text(
            "INSERT INTO jobs (id, key_id, kind, status, params, request_hash, total_items, "
            "created_at, retention_s) VALUES ('j1', 'k1', 'images', 'succeeded', '{}', 'h', 2, "
            "1.0, 60)"
        ))  # fmt: skip
        c.execute(text("INSERT INTO job_items (job_id, idx, name, status) VALUES "
                       "('j1', 0, 'a.jpg', 'done'), ('j1', 1, 'b.jpg', 'done')"))  # fmt: skip
        c.execute(text(
            "INSERT INTO results (job_id, item_idx, seq, kind, data, flags, flagged, created_at, "
            "decision, reviewer, reviewer_key, decided_at) VALUES "
            "('j1', 0, 0, 'image', '{}', '[{\"rule\": \"r\"}]', TRUE, 2.0, 'rejected', 'Ada', "
            "'k1', 3.0), "
            "('j1', 1, 0, 'image', '{}', '[{\"rule\": \"r\"}]', TRUE, 2.0, NULL, NULL, NULL, NULL)"
        ))  # fmt: skip
        c.execute(text(
            "INSERT INTO review_sessions (id_hash, key_id, reviewer, csrf_token, created_at, "
            "expires_at) VALUES ('s', 'k1', 'Ada', 't', 1.0, 9e12)"
        ))  # fmt: skip
    engine.dispose()
    store = Store.open(url)  # migrates to the head
    try:
        decided, open_item = [r.id for r in store.flagged(key_ids=["k1"])]
        (entry,) = store.history(decided, key_ids=["k1"]) or []
        assert (entry.decision, entry.actor_kind, entry.reviewer_name, entry.key_id, entry.at) == (
            "rejected", "key", "Ada", "k1", 3.0
        )  # fmt: skip
        assert store.history(open_item, key_ids=["k1"]) == []
        row = store.result_with_media(decided, key_ids=["k1"])
        assert row is not None and row.decision == "rejected" and row.decision_count == 1
        assert row.disagreement is False
        with store.engine.connect() as c:
            assert c.execute(select(review_sessions)).all() == []  # old key sessions are gone
        # and the new history goes on from there
        bob = Actor("key", "Bob", key_id="k1")
        assert store.append_decision(decided, "approved", bob, key_ids=["k1"])
        row = store.result_with_media(decided, key_ids=["k1"])
        assert row is not None and row.disagreement and row.decision_count == 2
    finally:
        store.close()


def test_openapi_documents_the_review_routes() -> None:
    from mien.service.app import openapi_document

    paths = openapi_document()["paths"]
    assert "post" in paths["/v1/review/decisions"]
    assert "get" in paths["/v1/review/items/{result_id}/history"]
    assert "403" in paths["/v1/review/reviewers"]["get"]["responses"]
    decision = paths["/v1/review/items/{result_id}/decision"]["post"]
    assert "403" in decision["responses"]  # a session without its CSRF token
