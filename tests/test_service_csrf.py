"""Browser sessions, CSRF and security headers of the service (issue 15, finding 4), with the
real app on SQLite and on the real PostgreSQL.

A browser's cross-site request is what the tests send: ``Origin: http://evil.example`` or
``Sec-Fetch-Site: cross-site`` on a POST, a cookie where an API key used to be, a form without
its CSRF token. Each client here is a fresh "browser" (its own cookie jar) on the running app.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from mien.service.passwords import hash_password
from mien.service.schema import results, review_sessions
from mien.service.security import CSP

from .conftest import SAMPLE
from .service_fixtures import (
    Service,
    browser,
    csrf_of,
    flagged_items,
    problem,
    service_fixture,
)

service = service_fixture(workers=0, max_jobs_per_key=100, max_upload_bytes=2 * 1024 * 1024)
JPEG = SAMPLE.read_bytes()
EVIL = "http://evil.example"
SESSION_TTL = 8 * 3600  # ServiceConfig's default


PASSWORD = "a reviewer's password"


def account(svc: Service, key: str, reviewer: str) -> dict[str, str]:
    """The sign-in form's fields for the reviewer account ``reviewer`` (made on first use)
    assigned to the tenant of API key ``key``. Since issue 18 the page signs in reviewer
    accounts, no longer an API key and a typed name."""
    store = svc.app.state.mien.store
    row = store.get_reviewer(reviewer)
    rid = row.id if row else store.add_reviewer(reviewer, "reviewer", hash_password(PASSWORD))
    assert store.assign_key(rid, key.split("_")[1])
    return {"name": reviewer, "password": PASSWORD}


def sign_in(svc: Service, client: TestClient, key: str, reviewer: str = "Ada") -> str:
    """Sign in through the page as a browser does; returns the session's CSRF token."""
    form = account(svc, key, reviewer)
    login = client.get("/review")
    assert login.status_code == 401 and 'id="password"' in login.text
    r = client.post(
        "/review/login",
        data={**form, "csrf_token": csrf_of(login.text)},
        headers={"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"},
    )
    assert r.status_code == 303, r.text
    page = client.get("/review")
    assert page.status_code == 200 and f'id="reviewer">{reviewer}<' in page.text
    return csrf_of(page.text)


def flagged_item(svc: Service, key_id: str) -> int:
    """A flagged result of a job of ``key_id``, straight in the store (no worker needed)."""
    (item,) = flagged_items(svc, key_id)
    return item


def decision_of(svc: Service, key_id: str, result_id: int) -> Any:
    row = svc.app.state.mien.store.result_with_media(result_id, key_ids=[key_id])
    return row.decision, row.reviewer


@pytest.fixture
def fresh(service: Service) -> Iterator[TestClient]:
    with browser(service) as client:
        yield client


# -- cross-site requests ---------------------------------------------------------------------

CROSS_SITE = [
    {"Origin": EVIL},
    {"Origin": "null"},
    {"Origin": "http://testserver.evil.example"},
    {"Origin": "https://testserver:8443"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
    {"Origin": "http://testserver", "Sec-Fetch-Site": "cross-site"},
]


@pytest.mark.parametrize(
    "extra", CROSS_SITE, ids=lambda h: ",".join(f"{k}={v}" for k, v in h.items())
)
def test_cross_site_post_creates_no_job(service: Service, extra: dict[str, str]) -> None:
    store = service.app.state.mien.store
    before = store.active_jobs(service.key_id)
    headers = {**service.auth, "content-type": "image/jpeg", **extra}
    r = service.client.post("/v1/jobs", content=JPEG, headers=headers)
    body = problem(r, 403, "CrossSiteRequest")
    assert body["instance"] == "/v1/jobs"
    assert store.active_jobs(service.key_id) == before
    # the same request from the page's own origin, or from a program (no Origin), is accepted
    same = {**service.auth, "content-type": "image/jpeg", "Origin": "http://testserver"}
    assert service.client.post("/v1/jobs", content=JPEG, headers=same).status_code == 202
    plain = {**service.auth, "content-type": "image/jpeg"}
    assert service.client.post("/v1/jobs", content=JPEG, headers=plain).status_code == 202
    assert store.active_jobs(service.key_id) == before + 2


def test_cross_site_requests_store_no_decision(service: Service, fresh: TestClient) -> None:
    item = flagged_item(service, service.key_id)
    path = f"/v1/review/items/{item}/decision"
    body = {"decision": "reject", "reviewer": "Mallory"}
    for extra in ({"Origin": EVIL}, {"Sec-Fetch-Site": "cross-site"}):
        r = service.client.post(path, json=body, headers={**service.auth, **extra})
        problem(r, 403, "CrossSiteRequest")
    assert decision_of(service, service.key_id, item) == (None, None)
    # the review page's form: a signed-in browser, the right token, but posted from evil.example
    token = sign_in(service, fresh, service.key, "Ada")
    form = {"decision": "reject", "csrf_token": token}
    for extra in ({"Origin": EVIL}, {"Sec-Fetch-Site": "cross-site"}):
        problem(
            fresh.post(f"/review/items/{item}", data=form, headers=extra), 403, "CrossSiteRequest"
        )
    assert decision_of(service, service.key_id, item) == (None, None)
    # a DELETE from another site cancels nothing either
    job = service.client.post(
        "/v1/jobs", content=JPEG, headers={**service.auth, "content-type": "image/jpeg"}
    )
    location = job.headers["location"]
    problem(
        service.client.delete(location, headers={**service.auth, "Origin": EVIL}),
        403,
        "CrossSiteRequest",
    )
    assert service.client.get(location, headers=service.auth).json()["status"] == "queued"
    # the page's own form, same origin: stored, with the session's reviewer
    ok = fresh.post(
        f"/review/items/{item}",
        data={"decision": "approve", "csrf_token": token},
        headers={"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"},
    )
    assert ok.status_code == 303 and ok.headers["location"] == f"/review/items/{item}#history"
    assert decision_of(service, service.key_id, item) == ("approved", "Ada")


def test_origin_behind_a_proxy(service: Service) -> None:
    """The Origin is compared with the Host the request was addressed to (or the proxy's
    X-Forwarded-Host), the default port of its scheme included."""
    headers = {**service.auth, "content-type": "image/jpeg"}
    ok = [
        {"Host": "mien.example", "Origin": "https://mien.example"},
        {"Host": "mien.example:443", "Origin": "https://mien.example"},
        {
            "Host": "127.0.0.1:8000",
            "X-Forwarded-Host": "mien.example",
            "Origin": "https://mien.example",
        },
        {"Host": "[::1]:8000", "Origin": "http://[::1]:8000"},
    ]
    for extra in ok:
        r = service.client.post("/v1/jobs", content=JPEG, headers={**headers, **extra})
        assert r.status_code == 202, (extra, r.text)
    refused = [
        {"Host": "mien.example", "Origin": "https://mien.example:8443"},
        {"Host": "mien.example", "Origin": "https://evil.example"},
        {"Host": "127.0.0.1:8000", "X-Forwarded-Host": "mien.example", "Origin": EVIL},
        {"Host": "mien.example", "Origin": "file://mien.example"},
        {"Host": "mien.example", "Origin": "https://mien.example:99999"},
    ]
    for extra in refused:
        r = service.client.post("/v1/jobs", content=JPEG, headers={**headers, **extra})
        problem(r, 403, "CrossSiteRequest")


# -- cookies are not keys --------------------------------------------------------------------

V1_ROUTES = [
    ("get", "/v1/review/items"),
    ("get", "/v1/review/export?format=csv"),
    ("get", "/v1/jobs/0123456789abcdef"),
    ("post", "/v1/faces:analyze"),
    ("post", "/v1/jobs"),
]


def test_a_cookie_does_not_authenticate_v1(service: Service, fresh: TestClient) -> None:
    # the old attack: the API key itself in the cookie the review page used to set
    with browser(service) as old_browser:
        old_browser.cookies.set("mien_key", service.key)
        for method, path in V1_ROUTES:
            problem(old_browser.request(method, path, content=JPEG), 401, "Unauthorized")
    # a live review session opens the review API only (issue 18: the page's script calls it
    # with the session; its writes need the X-CSRF-Token header), no other /v1 route
    token = sign_in(service, fresh, service.key)
    assert fresh.get("/review").status_code == 200
    for method, path in V1_ROUTES:
        r = fresh.request(method, path, content=JPEG, headers={"content-type": "image/jpeg"})
        if path.startswith("/v1/review/"):
            assert r.status_code == 200, r.text
            assert path != "/v1/review/items" or "counts" in r.json(), r.text
        else:
            problem(r, 401, "Unauthorized")
    item = flagged_item(service, service.key.split("_")[1])
    decide = f"/v1/review/items/{item}/decision"
    problem(fresh.post(decide, json={"decision": "approve"}), 403, "InvalidCsrfToken")
    forged = {"X-CSRF-Token": "x" * 43}
    problem(
        fresh.post(decide, json={"decision": "approve"}, headers=forged), 403, "InvalidCsrfToken"
    )
    ok = fresh.post(decide, json={"decision": "approve"}, headers={"X-CSRF-Token": token})
    assert ok.status_code == 200 and ok.json()["reviewer"] == "Ada", ok.text
    # the page's own export works with the session (and answers what /v1 answers for the key)
    page_csv = fresh.get("/review/export?format=csv")
    api_csv = service.client.get("/v1/review/export?format=csv", headers=service.auth)
    assert page_csv.status_code == 200 and page_csv.text == api_csv.text
    problem(service.client.get("/review/export?format=csv"), 401, "Unauthorized")


def test_the_cookie_holds_a_session_id_not_the_key(service: Service, fresh: TestClient) -> None:
    login = fresh.get("/review")
    pre = login.headers["set-cookie"]
    assert pre.startswith("mien_login=") and "HttpOnly" in pre and "SameSite=strict" in pre
    token = csrf_of(login.text)
    assert f"mien_login={token};" in pre  # double submit: the form's token is the cookie's
    r = fresh.post(
        "/review/login", data={**account(service, service.key, "Ada"), "csrf_token": token}
    )
    assert r.status_code == 303
    cookies = r.headers.get_list("set-cookie")
    (session_cookie,) = [c for c in cookies if c.startswith("mien_session=")]
    value = session_cookie.split(";")[0].split("=", 1)[1]
    secret = service.key.split("_", 2)[2]
    assert value and value != service.key and secret not in value and service.key_id not in value
    assert not any(service.key in c or secret in c for c in cookies)
    attrs = [a.strip().lower() for a in session_cookie.split(";")[1:]]
    assert "httponly" in attrs and "samesite=strict" in attrs and "path=/" in attrs
    assert f"max-age={SESSION_TTL}" in attrs and "secure" not in attrs  # plain http here
    assert any(c.startswith('mien_login="";') or "mien_login=;" in c for c in cookies)  # cleared
    # the store keeps a hash of the id, never the id itself, tied to the reviewer account
    store = service.app.state.mien.store
    ada = store.get_reviewer("Ada")
    with store.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(review_sessions.select()).mappings()]
    mine = [row for row in rows if row["reviewer"] == "Ada" and row["reviewer_id"] == ada.id]
    assert mine and all(value not in str(row) for row in rows)
    import hashlib

    (row,) = [row for row in mine if row["id_hash"] == hashlib.sha256(value.encode()).hexdigest()]
    assert abs(row["expires_at"] - row["created_at"] - SESSION_TTL) < 1


def test_the_session_cookie_is_secure_over_https(service: Service) -> None:
    with browser(service, "https://testserver") as client:
        login = client.get("/review")
        assert "secure" in login.headers["set-cookie"].lower()
        r = client.post(
            "/review/login",
            data={**account(service, service.key, "Ada"), "csrf_token": csrf_of(login.text)},
            headers={"Origin": "https://testserver"},
        )
        assert r.status_code == 303
        (cookie,) = [c for c in r.headers.get_list("set-cookie") if c.startswith("mien_session=")]
        assert "secure" in [a.strip().lower() for a in cookie.split(";")]


# -- CSRF tokens -----------------------------------------------------------------------------


def test_sign_in_needs_the_forms_token(service: Service, fresh: TestClient) -> None:
    login = fresh.get("/review")
    token = csrf_of(login.text)
    form = account(service, service.key, "Ada")
    problem(fresh.post("/review/login", data=form), 403, "InvalidCsrfToken")
    problem(
        fresh.post("/review/login", data={**form, "csrf_token": "x" * 43}), 403, "InvalidCsrfToken"
    )
    problem(fresh.post("/review/login", data={**form, "csrf_token": ""}), 403, "InvalidCsrfToken")
    # the token without the browser's cookie (another browser, or the cookie not sent) fails too
    with browser(service) as other:
        problem(
            other.post("/review/login", data={**form, "csrf_token": token}), 403, "InvalidCsrfToken"
        )
        assert other.get("/review").status_code == 401  # no session was made
    assert fresh.get("/review").status_code == 401
    assert fresh.post("/review/login", data={**form, "csrf_token": token}).status_code == 303
    assert fresh.get("/review").status_code == 200


def test_decisions_and_sign_out_need_the_sessions_token(service: Service) -> None:
    item = flagged_item(service, service.key_id)
    with browser(service) as ada, browser(service) as bob:
        ada_token = sign_in(service, ada, service.key, "Ada")
        bob_token = sign_in(service, bob, service.key, "Bob")
        assert ada_token != bob_token
        for form in (
            {"decision": "approve"},
            {"decision": "approve", "csrf_token": ""},
            {"decision": "approve", "csrf_token": ada_token[:-1]},
            {"decision": "approve", "csrf_token": bob_token},  # another session's token
            {"decision": "approve", "csrf_token": ada_token * 4},
        ):
            problem(ada.post(f"/review/items/{item}", data=form), 403, "InvalidCsrfToken")
        assert decision_of(service, service.key_id, item) == (None, None)
        # sign-out without the token keeps the session
        problem(ada.post("/review/logout", data={}), 403, "InvalidCsrfToken")
        problem(ada.post("/review/logout", data={"csrf_token": bob_token}), 403, "InvalidCsrfToken")
        assert ada.get("/review").status_code == 200
        r = bob.post(f"/review/items/{item}", data={"decision": "reject", "csrf_token": bob_token})
        assert r.status_code == 303
        assert decision_of(service, service.key_id, item) == ("rejected", "Bob")


# -- sessions: sign-out, expiry, revocation --------------------------------------------------


def test_sign_out_invalidates_the_session(service: Service, fresh: TestClient) -> None:
    item = flagged_item(service, service.key_id)
    token = sign_in(service, fresh, service.key)
    stolen = fresh.cookies.get("mien_session")
    assert stolen
    thumb_path = f"/review/items/{item}/thumbnail"
    assert fresh.get(thumb_path).status_code != 401  # the session opens the page's routes
    with browser(service) as copy:  # a copy of the cookie works while the session lives
        copy.cookies.set("mien_session", stolen)
        assert copy.get("/review").status_code == 200
    out = fresh.post("/review/logout", data={"csrf_token": token})
    assert out.status_code == 303
    assert any(c.startswith("mien_session=") for c in out.headers.get_list("set-cookie"))
    assert fresh.get("/review").status_code == 401
    # replaying the old cookie (a copy kept by an attacker) does not work: the row is gone
    with browser(service) as replay:
        replay.cookies.set("mien_session", stolen)
        assert replay.get("/review").status_code == 401
        problem(replay.get(thumb_path), 401, "Unauthorized")
        problem(replay.get("/review/export"), 401, "Unauthorized")
        r = replay.post(f"/review/items/{item}", data={"decision": "reject", "csrf_token": token})
        assert r.status_code == 401
    assert decision_of(service, service.key_id, item) == (None, None)


def test_sessions_expire(service: Service, fresh: TestClient) -> None:
    token = sign_in(service, fresh, service.key, "Expiring")
    item = flagged_item(service, service.key_id)
    store = service.app.state.mien.store
    with store.engine.begin() as conn:
        conn.execute(
            update(review_sessions)
            .where(review_sessions.c.reviewer == "Expiring")
            .values(expires_at=time.time() - 1)
        )
    assert fresh.get("/review").status_code == 401
    r = fresh.post(f"/review/items/{item}", data={"decision": "approve", "csrf_token": token})
    assert r.status_code == 401 and decision_of(service, service.key_id, item) == (None, None)
    # the next sign-in (anyone's) deletes the expired rows
    with browser(service) as other:
        sign_in(service, other, service.key, "Someone")
    with store.engine.connect() as conn:
        left = conn.execute(
            review_sessions.select().where(review_sessions.c.reviewer == "Expiring")
        ).all()
    assert left == []


def test_revoking_the_key_hides_its_items(service: Service, fresh: TestClient) -> None:
    """A session belongs to a reviewer account (issue 18); revoking an API key takes its
    tenant's items out of every reviewer's view at the next request."""
    key_id, key = service.new_key("revoked while signed in")
    item = flagged_item(service, key_id)
    sign_in(service, fresh, key, "Revoked-tenant reviewer")
    assert f"item-{item}" in fresh.get(f"/review/items/{item}").text
    assert item in [it["id"] for it in fresh.get("/v1/review/items").json()["items"]]
    assert service.app.state.mien.store.revoke_key(key_id)
    assert fresh.get("/review").status_code == 200  # still signed in
    assert fresh.get("/v1/review/items").json()["items"] == []
    problem(fresh.get(f"/review/items/{item}"), 404, "NotFound")
    problem(fresh.get(f"/review/items/{item}/thumbnail"), 404, "NotFound")


def test_a_new_sign_in_replaces_the_session(service: Service, fresh: TestClient) -> None:
    """Signing in never keeps a session id the browser already had (no session fixation): the
    old session is deleted and a new id is issued."""
    sign_in(service, fresh, service.key, "First")
    first = fresh.cookies.get("mien_session")
    with browser(service) as form_source, browser(service) as tab:
        form_page = form_source.get("/review")
        tab.cookies.set("mien_session", first)
        tab.cookies.set("mien_login", form_source.cookies["mien_login"], path="/review")
        r = tab.post(
            "/review/login",
            data={
                **account(service, service.key, "Second"),
                "csrf_token": csrf_of(form_page.text),
            },
        )
        assert r.status_code == 303
        second = r.cookies.get("mien_session")
        assert second and second != first
    assert fresh.get("/review").status_code == 401  # the first session was ended


# -- headers ---------------------------------------------------------------------------------


def assert_security_headers(resp: httpx.Response) -> None:
    h = resp.headers
    assert h["content-security-policy"] == CSP, resp.request.url
    assert "frame-ancestors 'none'" in CSP and "script-src 'self'" in CSP
    assert "unsafe" not in CSP  # no inline script, no eval: the review page's JS is a file
    assert h["x-content-type-options"] == "nosniff"
    assert h["x-frame-options"] == "DENY"
    assert h["referrer-policy"] == "same-origin"
    assert len(h.get_list("content-security-policy")) == 1


def test_security_headers_everywhere(service: Service, fresh: TestClient) -> None:
    answers = [
        fresh.get("/review"),  # sign-in page, 401 HTML
        fresh.get("/docs"),
        fresh.get("/openapi.json"),
        fresh.get("/review/static/review.css"),
        service.client.get("/health"),
        service.client.get("/v1/review/items", headers=service.auth),
        service.client.get("/v1/review/items"),  # 401
        service.client.get("/v1/jobs/nope", headers=service.auth),  # 404
        service.client.get("/nowhere"),  # 404 of the router
        service.client.put("/health"),  # 405
        service.client.get("/v1/review/items?limit=0", headers=service.auth),  # 422
        service.client.post(  # 413 from the body limit middleware
            "/v1/faces:analyze",
            content=b"\0" * (3 * 1024 * 1024),
            headers={**service.auth, "content-type": "image/jpeg"},
        ),
        service.client.post("/v1/jobs", headers={"Origin": EVIL}),  # 403 of the guard
        fresh.post("/review/login", data={}),  # 403 InvalidCsrfToken
    ]
    assert [r.status_code for r in answers] == [
        401, 200, 200, 200, 200, 200, 401, 404, 404, 405, 422, 413, 403, 403,
    ]  # fmt: skip
    for resp in answers:
        assert_security_headers(resp)
    token = sign_in(service, fresh, service.key)
    page = fresh.get("/review")
    assert_security_headers(page)
    out = fresh.post("/review/logout", data={"csrf_token": token})
    assert out.status_code == 303
    assert_security_headers(out)


def test_security_headers_on_a_500(service: Service) -> None:
    """A crash inside a route (here: a result row that is not JSON) still carries the headers:
    the guard sits outside Starlette's error handler."""
    key_id, key = service.new_key("broken row")
    item = flagged_item(service, key_id)
    store = service.app.state.mien.store
    with store.engine.begin() as conn:
        conn.execute(update(results).where(results.c.id == item).values(data="{not json"))
    with TestClient(service.app, raise_server_exceptions=False) as client:
        r = client.get("/v1/review/items", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 500
    assert_security_headers(r)


def test_pages_load_nothing_from_elsewhere_and_run_no_script(
    service: Service, fresh: TestClient
) -> None:
    flagged_item(service, service.key_id)
    docs = fresh.get("/docs")
    assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
    sign_in(service, fresh, service.key)
    review = fresh.get("/review")
    with browser(service) as anon:
        login = anon.get("/review")
    # the queue page loads one script, a same-origin file (the CSP forbids inline script)
    tag = '<script src="/review/static/review.js" defer></script>'
    assert review.text.count(tag) == 1
    assert (
        fresh.get("/review/static/review.js").headers["content-type"].startswith("text/javascript")
    )
    for page in (docs.text, review.text.replace(tag, ""), login.text):
        assert "<script" not in page.lower() and "javascript:" not in page.lower()
        assert not re.search(r"<[^>]*\son[a-z]+\s*=", page, re.IGNORECASE)  # no onclick=...
        assert "style=" not in page.lower() and "<style" not in page.lower()
        for url in re.findall(r'(?:src|href|action)\s*=\s*["\']([^"\']*)["\']', page):
            assert url.startswith(("/", "#")) and not url.startswith("//"), url
    # the reference covers the API and points to the machine-readable document
    assert "POST /v1/jobs" in docs.text and "/v1/faces:analyze" in docs.text
    assert 'href="/openapi.json"' in docs.text
    paths = fresh.get("/openapi.json").json()["paths"]
    assert "403" in paths["/v1/jobs"]["post"]["responses"]  # the cross-site refusal
    assert "403" in paths["/v1/jobs/{job_id}"]["delete"]["responses"]
    assert "403" not in paths["/v1/jobs/{job_id}"]["get"]["responses"]
    assert fresh.get("/docs/oauth2-redirect").status_code == 404  # no Swagger UI left


@pytest.fixture(params=["sqlite", "postgresql"])
def short_sessions(request: pytest.FixtureRequest, tmp_path) -> Iterator[Service]:
    from .service_fixtures import make_database, start_service

    db = make_database(request.param)
    try:
        yield from start_service(tmp_path, request.param, db.url, workers=0, review_session_s=3)
    finally:
        db.drop()


def test_the_configured_lifetime_ends_the_session(short_sessions: Service) -> None:
    svc = short_sessions
    with browser(svc) as client:
        login = client.get("/review")
        r = client.post(
            "/review/login",
            data={**account(svc, svc.key, "Ada"), "csrf_token": csrf_of(login.text)},
        )
        (cookie,) = [c for c in r.headers.get_list("set-cookie") if c.startswith("mien_session=")]
        assert "max-age=3" in [a.strip().lower() for a in cookie.split(";")]
        started = time.monotonic()
        value = cookie.split(";")[0].split("=", 1)[1]
    # a copy of the cookie without its Max-Age (as a thief would keep it): the server decides
    with browser(svc) as copy:
        copy.cookies.set("mien_session", value)
        assert copy.get("/review").status_code == 200
        time.sleep(max(0.0, 3.2 - (time.monotonic() - started)))
        assert copy.get("/review").status_code == 401
