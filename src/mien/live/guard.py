"""Opening a stream source under an :class:`~mien.live.outbound.OutboundPolicy`.

FFmpeg, left alone, connects wherever a source tells it to: an HLS playlist names segments,
variant playlists and keys on any host, an HTTP server answers with a redirect, an RTSP server
with a ``3xx`` to another host, and a host name may resolve to one address when it is checked
and to another when FFmpeg connects. So a guarded source never lets FFmpeg make a network
connection by itself:

* **HLS** (``http(s)://...m3u8``): FFmpeg's I/O is replaced (PyAV's ``io_open``): every URL
  the HLS demuxer opens — the playlist, variant playlists, segments, init sections — is
  fetched here, in Python, by :class:`GuardedHTTP`: the scheme must be ``http``/``https``,
  the host is resolved and checked, the connection goes to the checked address, and
  redirects are followed here (each one checked the same way, at most
  :data:`MAX_REDIRECTS`). Encrypted segments (``crypto+...``), ``file:``, ``data:`` and every
  other scheme are refused. FFmpeg's own protocols are switched off for this input.
* **RTSP and RTMP**: FFmpeg is given a relay on 127.0.0.1 (:class:`PinnedRelay`) instead
  of the address; for each connection FFmpeg makes to it, the relay resolves and checks the
  source's host and connects to the checked address — never anywhere else, whatever the
  stream says. TLS (``rtsps``/``rtmps``) is spoken by the relay; FFmpeg may use no
  protocol but ``tcp`` (and ``rtmp``). For RTSP the relay reads the server's replies and
  ends the connection on a redirect (any ``3xx`` reply, or a ``REDIRECT`` request), which
  FFmpeg would otherwise follow to another host. RTSP is always interleaved over that one
  TCP connection (no UDP). RTMP has no redirects in FFmpeg; its ``tcUrl`` keeps the
  original host so that virtual hosts on the server still work.

TLS certificates are not verified (as FFmpeg does not verify them by default). FFmpeg cannot
see a redirect through custom I/O, so a playlist reached through one has its relative URIs
made absolute against the address it came from before FFmpeg reads it.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import re
import select
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urljoin, urlsplit, urlunsplit

from mien.live.outbound import OutboundPolicy, OutboundRefused

log = logging.getLogger("mien.live")

MAX_REDIRECTS: Final = 5
#: The most bytes read from one HTTP response (a playlist or a segment); the rest is dropped.
MAX_RESPONSE_BYTES: Final = 512 * 1024 * 1024
#: The most bytes of a playlist that came through a redirect (it is read whole and rewritten).
MAX_PLAYLIST_BYTES: Final = 16 * 1024 * 1024
#: FFmpeg's protocol whitelist for an input whose I/O is ours: a name no protocol has.
NO_PROTOCOLS: Final = "mien-guarded-io"
_RTSP_MAX_HEADER: Final = 64 * 1024
_RELAY_ACCEPTS: Final = 4


def _tls_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _default_port(scheme: str) -> int:
    return {"http": 80, "https": 443, "rtsp": 554, "rtsps": 322, "rtmp": 1935, "rtmps": 443}[scheme]


def _host_port(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        raise OutboundRefused("the address has an invalid port") from None
    host = parts.hostname or ""
    return scheme, host, port if port is not None else _default_port(scheme)


# -- HLS: every request made here -------------------------------------------------------


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP(S) connection whose socket comes from the policy (checked address)."""

    def __init__(
        self, policy: OutboundPolicy, host: str, port: int, tls: bool, timeout: float
    ) -> None:
        super().__init__(host, port, timeout=timeout)
        self._policy = policy
        self._tls = tls

    def connect(self) -> None:
        sock = self._policy.connect(self.host, self.port, float(self.timeout or 10.0))
        if self._tls:
            sock = _tls_context().wrap_socket(sock, server_hostname=self.host)
        self.sock = sock


class _Body:
    """What FFmpeg reads: the body of one response (no seeking)."""

    def __init__(self, conn: http.client.HTTPConnection, response: http.client.HTTPResponse):
        self._conn = conn
        self._response = response
        self._left = MAX_RESPONSE_BYTES

    def read(self, size: int = -1) -> bytes:
        want = self._left if size < 0 else min(size, self._left)
        if want <= 0:
            return b""
        data = self._response.read(want)
        self._left -= len(data)
        return data

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._response.close()
        self._conn.close()


class GuardedHTTP:
    """PyAV ``io_open`` for HLS: fetches each URL under ``policy`` (see the module docs)."""

    def __init__(self, policy: OutboundPolicy, timeout_s: float) -> None:
        self.policy = policy
        self.timeout_s = timeout_s

    def __call__(self, url: str, flags: int, options: dict[str, str]) -> _Body | _Bytes | _Chain:
        if flags & 2:  # AVIO_FLAG_WRITE
            raise OutboundRefused("writing is not allowed")
        start = int(options.get("offset", "0") or 0)
        end = int(options.get("end_offset", "0") or 0)
        headers = {"User-Agent": "mien", "Accept": "*/*", "Connection": "close"}
        if start > 0 or end > 0:
            headers["Range"] = f"bytes={start}-{end - 1 if end > 0 else ''}"
        first = url
        for _ in range(MAX_REDIRECTS + 1):
            scheme, host, port = _host_port(url)
            if scheme not in ("http", "https"):
                raise OutboundRefused(f"an HLS source may not open {scheme or 'a'}: URLs")
            parts = urlsplit(url)
            target = urlunsplit(("", "", parts.path or "/", parts.query, ""))
            conn = _PinnedHTTPConnection(self.policy, host, port, scheme == "https", self.timeout_s)
            try:
                conn.request("GET", target, headers=headers)
                response = conn.getresponse()
            except BaseException:
                conn.close()
                raise
            status = response.status
            if status in (301, 302, 303, 307, 308):
                location = response.getheader("Location")
                response.close()
                conn.close()
                if not location:
                    raise OSError(f"HTTP {status} without a Location")
                url = urljoin(url, location.strip())
                continue
            if not 200 <= status < 300:
                response.close()
                conn.close()
                raise OSError(f"HTTP {status}")
            if url != first:
                return _rebased(_Body(conn, response), url)
            return _Body(conn, response)
        raise OSError("too many redirects")


class _Bytes:
    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)

    def read(self, size: int = -1) -> bytes:
        size = len(self._data) if size < 0 else size
        out, self._data = bytes(self._data[:size]), self._data[size:]
        return out

    def close(self) -> None:
        self._data = memoryview(b"")


_URI_ATTR = re.compile(r'(URI=")([^"]*)(")')


def _rebased(body: _Body, final_url: str) -> _Bytes | _Chain:
    """A response reached through a redirect: when it is a playlist, its relative URIs made
    absolute against the address it really came from (FFmpeg, which cannot see the redirect
    through custom I/O, would resolve them against the first address)."""
    head = body.read(7)
    if head != b"#EXTM3U":
        rest = _Bytes(head)
        return _Chain(rest, body)
    data = head + body.read(MAX_PLAYLIST_BYTES)
    body.close()
    lines = []
    for line in data.decode("utf-8", "replace").splitlines():
        text = line.strip()
        if text and not text.startswith("#"):
            line = urljoin(final_url, text)
        elif text.startswith("#EXT"):
            line = _URI_ATTR.sub(lambda m: m[1] + urljoin(final_url, m[2]) + m[3], line)
        lines.append(line)
    return _Bytes(("\n".join(lines) + "\n").encode())


class _Chain:
    def __init__(self, first: _Bytes, then: _Body) -> None:
        self._first = first
        self._then = then

    def read(self, size: int = -1) -> bytes:
        data = self._first.read(size)
        if data:
            return data
        return self._then.read(size)

    def close(self) -> None:
        self._then.close()


# -- RTSP / RTMP: a relay to the checked address -----------------------------------------


class _RtspReplies:
    """Reads what an RTSP server sends (interleaved ``$`` frames and text messages) and says
    when a message is a redirect."""

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(bytes that may be passed on, whether a redirect was seen)."""
        self.buf += data
        out = bytearray()
        while self.buf:
            if self.buf[:1] == b"$":
                if len(self.buf) < 4:
                    break
                size = 4 + int.from_bytes(self.buf[2:4], "big")
                if len(self.buf) < size:
                    break
                out += self.buf[:size]
                self.buf = self.buf[size:]
                continue
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > _RTSP_MAX_HEADER:
                    return bytes(out), True  # not RTSP as we know it: end it
                break
            head = self.buf[:end].decode("latin-1")
            first = head.split("\r\n", 1)[0]
            words = first.split()
            if first.upper().startswith("REDIRECT") or (
                len(words) >= 2 and words[0].upper().startswith("RTSP/") and words[1][:1] == "3"
            ):
                return bytes(out), True
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    try:
                        length = max(0, int(value.strip()))
                    except ValueError:
                        return bytes(out), True
            size = end + 4 + length
            if len(self.buf) < size:
                break
            out += self.buf[:size]
            self.buf = self.buf[size:]
        return bytes(out), False


class PinnedRelay:
    """Listens on 127.0.0.1 and forwards each connection (a few at most) to ``host``:``port``
    through :meth:`OutboundPolicy.connect` — one resolution, checked, per connection — with TLS
    when ``tls``. With ``rtsp``, a redirect from the server ends the connection."""

    def __init__(
        self,
        policy: OutboundPolicy,
        host: str,
        port: int,
        *,
        tls: bool,
        rtsp: bool,
        timeout_s: float,
    ) -> None:
        self.policy = policy
        self.host = host
        self.port = port
        self.tls = tls
        self.rtsp = rtsp
        self.timeout_s = timeout_s
        self.refused = False
        self._closed = threading.Event()
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(_RELAY_ACCEPTS)
        self._listener.settimeout(0.25)
        self.local_port = int(self._listener.getsockname()[1])
        self._thread = threading.Thread(target=self._accept, daemon=True, name="mien-relay")
        self._thread.start()

    def _accept(self) -> None:
        accepted = 0
        try:
            while not self._closed.is_set() and accepted < _RELAY_ACCEPTS:
                try:
                    client, _ = self._listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                accepted += 1
                threading.Thread(
                    target=self._serve, args=(client,), daemon=True, name="mien-relay-conn"
                ).start()
        finally:
            with contextlib.suppress(OSError):
                self._listener.close()

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            upstream = self.policy.connect(self.host, self.port, self.timeout_s)
            if self.tls:
                upstream = _tls_context().wrap_socket(upstream, server_hostname=self.host)
        except OSError as exc:
            if isinstance(exc, OutboundRefused):
                self.refused = True
            log.info("stream source %s:%d: %s", self.host, self.port, exc)
            with contextlib.suppress(OSError):
                client.close()
            return
        with self._lock:
            self._socks += [client, upstream]
        self._pump(client, upstream)

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        replies = _RtspReplies() if self.rtsp else None
        client.setblocking(True)
        upstream.settimeout(None)
        try:
            while not self._closed.is_set():
                ready, _, _ = select.select([client, upstream], [], [], 0.25)
                if isinstance(upstream, ssl.SSLSocket) and upstream.pending():
                    ready = list({*ready, upstream})
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is client:
                        upstream.sendall(data)
                        continue
                    if replies is not None:
                        data, redirect = replies.feed(data)
                        if redirect:
                            log.info(
                                "stream source %s:%d: an RTSP redirect, not followed",
                                self.host,
                                self.port,
                            )
                            self.refused = True
                            return
                    if data:
                        client.sendall(data)
        except OSError:
            return
        finally:
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.close()

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            socks, self._socks = self._socks, []
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()


def rtmp_app(path: str) -> str:
    """The RTMP application FFmpeg takes from a URL path (its ``rtmp_open`` rules)."""
    qmark = path.find("?")
    if qmark >= 0 and "slist=" in path[qmark:]:
        return path[1:]
    if path.startswith("/ondemand/"):
        return "ondemand"
    nxt = path[1:] if path else path
    slash = nxt.find("/")
    if slash < 0:
        return nxt
    p = slash + 1  # index in path of the first '/' after the app's first part
    rest = path[p + 1 :]
    colon = rest.find(":")
    fname = rest.find("/")
    if fname < 0 or (0 <= colon < fname):
        return path[1:p]
    return path[1 : p + 1 + fname]


@dataclass
class Guarded:
    """What :func:`open_guarded` opened: the container, and what to close with it."""

    container: Any
    relay: PinnedRelay | None = None

    def close(self) -> None:
        try:
            self.container.close()
        finally:
            if self.relay is not None:
                self.relay.close()


def open_guarded(
    address: str,
    kind: str,
    options: dict[str, str],
    policy: OutboundPolicy,
    timeout: tuple[float, float],
) -> Guarded:
    """Open a network stream (``kind`` rtsp/rtmp/hls) under ``policy``; FFmpeg's errors or
    OutboundRefused when it cannot be opened."""
    import av

    scheme, host, port = _host_port(address)
    policy.check_scheme(scheme)
    opts = dict(options)
    if kind == "hls":
        if scheme not in ("http", "https"):
            raise OutboundRefused(f"an HLS source must be http(s), not {scheme}")
        opts.update(
            protocol_whitelist=NO_PROTOCOLS,
            http_persistent="0",
            http_multiple="0",
            http_seekable="0",
        )
        for name in ("reconnect", "reconnect_on_network_error", "reconnect_delay_max"):
            opts.pop(name, None)  # options of FFmpeg's HTTP, which is not used
        io = GuardedHTTP(policy, timeout[1])
        container = av.open(address, mode="r", format="hls", options=opts, timeout=timeout,
                            io_open=io)  # fmt: skip
        return Guarded(container)
    if kind not in ("rtsp", "rtmp"):
        raise OutboundRefused(f"{kind} sources are not network streams")
    policy.resolve(host, port)  # refuse before anything listens
    relay = PinnedRelay(
        policy,
        host,
        port,
        tls=scheme.endswith("s"),
        rtsp=kind == "rtsp",
        timeout_s=timeout[0],
    )
    parts = urlsplit(address)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"127.0.0.1:{relay.local_port}"
    if userinfo:  # credentials go to the server through the relay, as before
        netloc = f"{userinfo}@{netloc}"
    plain = "rtsp" if kind == "rtsp" else "rtmp"
    local = urlunsplit((plain, netloc, parts.path, parts.query, ""))
    if kind == "rtsp":
        opts.update(protocol_whitelist="tcp", rtsp_transport="tcp")
        opts.pop("rtsp_flags", None)
    else:
        shown = f"[{host}]" if ":" in host else host
        opts.setdefault("rtmp_tcurl", f"{scheme}://{shown}:{port}/{rtmp_app(parts.path)}")
        opts.update(protocol_whitelist="rtmp,tcp")
    try:
        container = av.open(local, mode="r", options=opts, timeout=timeout)
    except BaseException:
        relay.close()
        if relay.refused:
            raise OutboundRefused("the source redirected or was refused") from None
        raise
    return Guarded(container, relay)
