"""Browser-facing protections on every response and every state-changing request.

:class:`BrowserGuard` wraps the whole ASGI app (outside Starlette's error handler, so a 500 gets
them too) and

* adds the security headers (:data:`SECURITY_HEADERS`) to every response: a Content Security
  Policy that allows no script at all and only this server's own styles and images,
  ``frame-ancestors 'none'`` and ``X-Frame-Options: DENY``, ``X-Content-Type-Options: nosniff``
  and ``Referrer-Policy: same-origin``;
* refuses (403 ``CrossSiteRequest``) any request with an unsafe method (everything but GET,
  HEAD, OPTIONS) that a browser marks as coming from another site: ``Sec-Fetch-Site`` is
  ``cross-site`` or ``same-site``, or ``Origin`` names another origin than the one the request
  was sent to (``null`` included). Programs (curl, SDKs) send neither header and pass.

``Referrer-Policy`` is ``same-origin`` rather than ``no-referrer`` on purpose: under
``no-referrer`` browsers send ``Origin: null`` even on the page's own form posts.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mien.service.problem import problem_response

CSP = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; "
    "img-src 'self'; media-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)

SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("content-security-policy", CSP),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "same-origin"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
)
_NAMES = {name.encode() for name, _ in SECURITY_HEADERS}
_RAW = [(name.encode(), value.encode()) for name, value in SECURITY_HEADERS]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_ALLOWED_FETCH_SITES = frozenset({"same-origin", "none"})


def _host_port(netloc: str, default_port: int) -> tuple[str, int] | None:
    try:
        parts = urlsplit(f"//{netloc.strip()}")
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host:
        return None
    return host.lower().rstrip("."), port or default_port


def _same_origin(origin: str, headers: Headers) -> bool:
    """Whether ``origin`` is the origin the request was addressed to (its ``Host``, or the
    ``X-Forwarded-Host`` a reverse proxy set)."""
    try:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False
        default = 443 if parts.scheme == "https" else 80
        wanted = (parts.hostname.lower().rstrip("."), parts.port or default)
    except ValueError:
        return False
    candidates = [headers.get("host", "")]
    forwarded = headers.get("x-forwarded-host")
    if forwarded:
        candidates.append(forwarded.split(",")[0])
    return any(_host_port(c, default) == wanted for c in candidates if c)


def cross_site_reason(method: str, headers: Headers) -> str | None:
    """Why a request must be refused as cross-site, or None when it may go on."""
    if method.upper() in SAFE_METHODS:
        return None
    site = headers.get("sec-fetch-site")
    if site is not None and site.strip().lower() not in _ALLOWED_FETCH_SITES:
        return f"the browser sent this request for another site (Sec-Fetch-Site: {site[:40]})"
    origin = headers.get("origin")
    if origin is not None and not _same_origin(origin, headers):
        return f"the request comes from another origin (Origin: {origin[:100]})"
    return None


class BrowserGuard:
    """ASGI middleware: security headers on every response, cross-site writes refused."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in _NAMES]
                message = {**message, "headers": kept + _RAW}
            await send(message)

        reason = cross_site_reason(scope.get("method", "GET"), Headers(scope=scope))
        if reason is not None:
            response = problem_response("CrossSiteRequest", reason, instance=scope.get("path"))
            await response(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)
