"""The outbound policy of stream jobs (SSRF), for real on loopback.

Plain TCP listeners record whether anyone connected to them; they stand in for HTTP, RTSP and
RTMP servers on the loopback/internal network. With the default policy no connection may
reach them, whatever the address looks like; an HLS playlist from an allowed place may not
lead FFmpeg to a segment, a variant playlist or a redirect elsewhere; the allow list opens
exactly what it names; and every failure reads the same. The address classifier is checked
over a table of literals (this machine has no network: host names get an injected resolver).
"""

from __future__ import annotations

import contextlib
import http.server
import ipaddress
import json
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mien.live.guard import _RtspReplies, rtmp_app
from mien.live.outbound import (
    OutboundPolicy,
    OutboundRefused,
    classify,
    parse_allow_entry,
    parse_allow_list,
)
from mien.live.source import StreamSource

from .conftest import shared
from .live_streams import ffmpeg_rtmp_server, free_port, has_ffmpeg, write_hls
from .service_fixtures import Service, service_fixture, start_service
from .test_service_stream import all_results, post_stream

UNREACHABLE = {"code": "StreamUnreachable", "message": "source unreachable"}


# -- the address classifier ------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("93.184.216.34", None),
        ("8.8.8.8", None),
        ("2606:2800:220:1:248:1893:25c8:1946", None),
        ("::ffff:93.184.216.34", None),  # mapped public: judged as the IPv4 address
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("10.0.0.1", "private"),
        ("10.255.255.255", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("172.32.0.1", None),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "shared (CGNAT)"),
        ("100.127.255.255", "shared (CGNAT)"),
        ("100.128.0.1", None),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("240.0.0.1", "reserved"),
        ("192.0.0.8", "reserved"),
        ("192.0.2.10", "documentation"),
        ("198.18.0.1", "benchmarking"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fe80::1%lo", "link-local"),
        ("fec0::1", "site-local"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("ff02::1", "multicast"),
        ("ff05::2", "multicast"),
        ("2001:db8::1", "documentation"),
        ("::ffff:127.0.0.1", "loopback (as IPv6)"),
        ("::ffff:10.1.2.3", "private (as IPv6)"),
        ("::ffff:169.254.169.254", "link-local (as IPv6)"),
        ("::127.0.0.1", "loopback (as IPv6)"),  # IPv4-compatible
        ("::10.0.0.1", "private (as IPv6)"),
        ("64:ff9b::7f00:1", "loopback (as IPv6)"),  # NAT64
        ("2002:7f00:1::", "loopback (as IPv6)"),  # 6to4
        ("2002:c0a8:101::1", "private (as IPv6)"),
        ("100::1", "reserved"),
        ("4000::1", "reserved"),  # outside 2000::/3
    ],
)
def test_classifier(address: str, reason: str | None) -> None:
    assert classify(address) == reason


def test_every_internal_literal_is_refused_and_public_ones_pass() -> None:
    policy = OutboundPolicy()
    for literal in ("127.0.0.1", "10.9.8.7", "::1", "[::1]", "::ffff:7f00:1", "100.64.1.1"):
        with pytest.raises(OutboundRefused):
            policy.resolve(literal, 80)
    assert policy.resolve("93.184.216.34", 443) == [ipaddress.ip_address("93.184.216.34")]


def _resolver(table: dict[str, list[str]]) -> Any:
    calls: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[host]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


def test_names_are_judged_by_every_answer() -> None:
    resolver = _resolver(
        {
            "public.test": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
            "mixed.test": ["93.184.216.34", "10.0.0.7"],  # one internal answer is enough
            "meta.test": ["169.254.169.254"],
            "cam.corp.test": ["10.20.0.5"],
            "mapped.test": ["::ffff:192.168.0.10"],
        }
    )
    policy = OutboundPolicy((), resolver)
    assert len(policy.resolve("public.test", 80)) == 2
    for name in ("mixed.test", "meta.test", "cam.corp.test", "mapped.test", "nowhere.test"):
        with pytest.raises(OutboundRefused):
            policy.resolve(name, 80)
    # the allow list: by network (also reached as a mapped address), by name, by port
    open_net = OutboundPolicy.from_entries(["10.20.0.0/16", "192.168.0.0/24"], resolver)
    assert open_net.resolve("cam.corp.test", 554) == [ipaddress.ip_address("10.20.0.5")]
    assert open_net.resolve("mapped.test", 554)
    with pytest.raises(OutboundRefused):
        open_net.resolve("meta.test", 80)
    by_name = OutboundPolicy.from_entries(["*.corp.test:554"], resolver)
    assert by_name.resolve("cam.corp.test", 554)
    for host, port in (("cam.corp.test", 80), ("10.20.0.5", 554), ("meta.test", 554)):
        with pytest.raises(OutboundRefused):
            by_name.resolve(host, port)


@pytest.mark.parametrize(
    ("text", "network", "host", "port"),
    [
        ("10.0.0.0/8", "10.0.0.0/8", None, None),
        ("192.168.1.20", "192.168.1.20/32", None, None),
        ("192.168.1.20:554", "192.168.1.20/32", None, 554),
        ("10.0.0.0/8:1935", "10.0.0.0/8", None, 1935),
        ("fd00::/8", "fd00::/8", None, None),
        ("[fd00::5]:8554", "fd00::5/128", None, 8554),
        ("Cam1.Example.:8554", None, "cam1.example", 8554),
        ("*.cams.example", None, "*.cams.example", None),
    ],
)
def test_allow_entries(text: str, network: str | None, host: str | None, port: int | None) -> None:
    entry = parse_allow_entry(text)
    assert (str(entry.network) if entry.network else None, entry.host, entry.port) == (
        network,
        host,
        port,
    )


@pytest.mark.parametrize(
    "text", ["", "cam:0", "cam:99999", "cam:http", "[fd00::1", "bad_name!", "a..b", "10.0.0.0/33"]
)
def test_bad_allow_entries(text: str) -> None:
    with pytest.raises(ValueError):
        parse_allow_entry(text)


def test_allow_list_values_may_hold_several_entries() -> None:
    entries = parse_allow_list(["10.0.0.0/8, cam.lan", "", " , ", "[::1]:80"])
    assert [e.text for e in entries] == ["10.0.0.0/8", "cam.lan", "[::1]:80"]


def test_rtsp_replies_are_read_for_redirects() -> None:
    frame = b"$\x00\x00\x05hello"
    ok = b"RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Length: 4\r\n\r\nv=0\n"
    replies = _RtspReplies()
    passed, redirect = replies.feed(ok[:10])  # nothing until the whole message is there
    assert (passed, redirect) == (b"", False)
    passed, redirect = replies.feed(ok[10:] + frame + frame[:3])
    assert (passed, redirect) == (ok + frame, False)
    assert replies.feed(frame[3:]) == (frame, False)
    for bad in (
        b"RTSP/1.0 302 Moved\r\nLocation: rtsp://10.0.0.1/x\r\n\r\n",
        b"RTSP/1.0 301 Moved\r\nLocation: rtsp://10.0.0.1/x\r\n\r\n",
        b"REDIRECT rtsp://h/x RTSP/1.0\r\nLocation: rtsp://10.0.0.1/x\r\n\r\n",
        b"RTSP/1.0 200 OK\r\nContent-Length: x\r\n\r\n",
        b"x" * (70 * 1024),  # no end of header in sight
    ):
        assert _RtspReplies().feed(frame + bad) == (frame, True)


def test_rtmp_application_as_ffmpeg_reads_it() -> None:
    assert rtmp_app("/live/stream") == "live"
    assert rtmp_app("/live") == "live"
    assert rtmp_app("/live/inst/stream") == "live/inst"
    assert rtmp_app("/vod/mp4:folder/clip.mp4") == "vod"
    assert rtmp_app("/ondemand/clip") == "ondemand"


# -- loopback stand-ins ------------------------------------------------------------------


class Listener:
    """A TCP listener on ``host`` that records every connection and its first bytes."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, reply: bytes = b"") -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.host = host
        self.port = int(self.sock.getsockname()[1])
        self.reply = reply
        self.received: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def connections(self) -> int:
        return len(self.received)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                conn.settimeout(1.0)
                try:
                    data = conn.recv(4096)
                except OSError:
                    data = b""
                self.received.append(data)
                if self.reply:
                    with contextlib.suppress(OSError):
                        conn.sendall(self.reply)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


class Routes:
    """An HTTP server on ``host``:``port`` answering fixed routes {path: (status, headers,
    body)}, or the files of ``folder``; anything else is 404. Records the paths asked for."""

    def __init__(
        self,
        host: str,
        routes: dict[str, tuple[int, dict[str, str], bytes]] | None = None,
        *,
        port: int = 0,
        folder: Path | None = None,
    ) -> None:
        self.routes = routes or {}
        self.paths: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.paths.append(self.path)
                found = outer.routes.get(self.path)
                if found is None and folder is not None and (folder / self.path[1:]).is_file():
                    found = (200, {}, (folder / self.path[1:]).read_bytes())
                status, headers, body = found or (404, {}, b"not here")
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self.host = host
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def playlist(*uris: str) -> bytes:
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:2", "#EXT-X-MEDIA-SEQUENCE:0"]
    for uri in uris:
        lines += ["#EXTINF:1.0,", uri]
    return ("\n".join([*lines, "#EXT-X-ENDLIST", ""])).encode()


def master(uri: str) -> bytes:
    return f"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=100000\n{uri}\n".encode()


M3U8 = {"Content-Type": "application/vnd.apple.mpegurl"}


# -- the library: a guarded StreamSource ------------------------------------------------


def _open(url: str, policy: OutboundPolicy) -> Any:
    source = StreamSource(url, policy=policy, open_timeout_s=3, read_timeout_s=3)
    opened = source.connect()
    try:
        return sum(1 for _ in opened.container.decode(video=0))
    finally:
        opened.close()


@pytest.fixture(scope="module")
def hls_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ssrf-hls")
    write_hls(shared("pyfeat_media", "single_face.mp4"), folder, max_frames=25, audio=False)
    return folder


def test_guarded_source_allowed_by_name_and_no_rebinding(hls_folder: Path) -> None:
    """A name on the allow list opens; a literal of the same address does not; and a name
    whose answer changes between the playlist and its segment (DNS rebinding) is caught at
    the segment's own connection."""
    trap = Listener("127.0.0.1")
    playlist_port = free_port()
    # the real HLS server on 127.0.0.2, a trap on 127.0.0.1 at the same port
    server = Routes("127.0.0.2", port=playlist_port, folder=hls_folder)
    same_port_trap = Listener("127.0.0.1", playlist_port)
    try:
        answers = iter(["127.0.0.2"] + ["127.0.0.1"] * 10)
        resolver = _resolver({"cam.test": ["127.0.0.2"]})
        by_name = OutboundPolicy.from_entries(["cam.test"], resolver)
        assert _open(f"http://cam.test:{playlist_port}/index.m3u8", by_name) == 25
        assert resolver.calls.count("cam.test") >= 2  # the playlist and each segment
        with pytest.raises(OSError):
            _open(f"http://127.0.0.2:{playlist_port}/index.m3u8", by_name)
        rebinding = OutboundPolicy.from_entries(
            ["127.0.0.2/32"], lambda host, port: [next(answers)]
        )
        with pytest.raises(Exception):  # noqa: B017 - FFmpeg's error, whichever it is
            _open(f"http://rebind.test:{playlist_port}/index.m3u8", rebinding)
        assert same_port_trap.connections == 0 and trap.connections == 0
    finally:
        same_port_trap.close()
        trap.close()
        server.close()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a certificate")
def test_guarded_https_hls_with_a_redirect(hls_folder: Path, tmp_path: Path) -> None:
    """HLS over https through the guard: TLS to the checked address, a redirect to an allowed
    place followed (and checked), the stream decoded end to end."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
         "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    server = Routes("127.0.0.1", folder=hls_folder)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.httpd.socket = ctx.wrap_socket(server.httpd.socket, server_side=True)
    hop = Routes(
        "127.0.0.1",
        {
            "/live.m3u8": (
                302,
                {"Location": server.url("/index.m3u8").replace("http:", "https:")},
                b"",
            )
        },
    )
    try:
        policy = OutboundPolicy.from_entries(["127.0.0.1"])
        url = f"https://127.0.0.1:{server.port}/index.m3u8"
        assert _open(url, policy) == 25
        assert _open(hop.url("/live.m3u8"), policy) == 25  # http -> https redirect
        assert "/live.m3u8" in hop.paths and server.paths.count("/index.m3u8") == 2
        with pytest.raises(OSError):  # the same, not allowed
            _open(url, OutboundPolicy())
        assert server.paths.count("/index.m3u8") == 2
    finally:
        server.close()
        hop.close()


def test_guarded_rtsp_redirect_is_not_followed() -> None:
    """An RTSP server on an allowed address that answers with a redirect to another host:
    the relay ends the connection, nothing reaches the redirect's target."""
    target = Listener("127.0.0.3")
    reply = (
        f"RTSP/1.0 302 Moved\r\nCSeq: 1\r\nLocation: rtsp://127.0.0.3:{target.port}/cam\r\n\r\n"
    ).encode()
    camera = Listener("127.0.0.2", reply=reply)
    try:
        policy = OutboundPolicy.from_entries(["127.0.0.2"])
        with pytest.raises(Exception):  # noqa: B017 - FFmpeg's error, whichever it is
            _open(f"rtsp://127.0.0.2:{camera.port}/cam", policy)
        assert camera.connections >= 1 and camera.received[0].startswith(b"OPTIONS ")
        assert target.connections == 0
    finally:
        target.close()
        camera.close()


# -- the service ---------------------------------------------------------------------------


#: The default policy (nothing internal is allowed), on SQLite and on PostgreSQL.
svc = service_fixture(max_jobs_per_key=64)


@pytest.fixture(scope="module")
def playlist_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def open_svc(tmp_path_factory: pytest.TempPathFactory, playlist_port: int) -> Iterator[Service]:
    """127.0.0.1 allowed on every port, 127.0.0.2 on one port only."""
    allow = ("127.0.0.1/32", f"127.0.0.2:{playlist_port}")
    tmp = tmp_path_factory.mktemp("svc-ssrf-open")
    yield from start_service(tmp, "sqlite", None, allow_stream_hosts=allow, max_jobs_per_key=64)


def run_jobs(svc: Service, urls: list[str]) -> list[dict[str, Any]]:
    """Stream jobs for ``urls`` (no reconnect), waited for; their final job documents."""
    locations = []
    for url in urls:
        r = post_stream(svc, url, retries="0", max_seconds="30", features="detection")
        assert r.status_code == 202, (url, r.text)
        locations.append(r.headers["Location"])
    return [svc.wait_job(loc, timeout=120) for loc in locations]


def assert_uniform_failure(svc: Service, job: dict[str, Any]) -> None:
    assert job["status"] == "failed", job
    assert job["error"] == UNREACHABLE, job
    results = all_results(svc, job["id"])
    kinds = [x["kind"] for x in results]
    assert kinds == ["error", "summary"], kinds
    assert results[0]["result"]["message"] == "source unreachable"
    assert results[-1]["result"]["error"] == UNREACHABLE
    text = json.dumps(results)
    leaks = (
        "Errno",
        "efused",
        "InvalidData",
        "HTTP 404",
        "Not Found",
        "OpenSSH",
        "Lavf",
        "127.0.0",
    )
    for leak in leaks:
        assert leak not in text.replace(job["params"]["stream"]["url"], ""), leak


def test_default_policy_reaches_no_internal_listener(svc: Service) -> None:
    v4 = Listener("127.0.0.1")
    v6 = Listener("::1")
    try:
        p, q = v4.port, v6.port
        urls = [
            f"http://127.0.0.1:{p}/x.m3u8",
            f"rtsp://127.0.0.1:{p}/cam",
            f"rtsp://user:pw@127.0.0.1:{p}/cam",
            f"rtsps://127.0.0.1:{p}/cam",
            f"rtmp://127.0.0.1:{p}/live/key",
            f"rtmps://127.0.0.1:{p}/live/key",
            f"https://127.0.0.1:{p}/x.m3u8",
            f"http://localhost:{p}/x.m3u8",  # a name that resolves to loopback
            f"rtsp://2130706433:{p}/cam",  # 127.0.0.1 as one number
            f"rtsp://0x7f.1:{p}/cam",  # ...in hex, shortened
            f"rtmp://127.1:{p}/live/key",
            f"http://[::ffff:127.0.0.1]:{p}/x.m3u8",  # IPv4-mapped IPv6
            f"rtsp://[::1]:{q}/cam",
            f"http://[::1]:{q}/x.m3u8",
            f"rtsp://0.0.0.0:{p}/cam",  # "this host"
        ]
        jobs = run_jobs(svc, urls)
        for job in jobs:
            assert_uniform_failure(svc, job)
        assert v4.connections == 0 and v6.connections == 0
    finally:
        v4.close()
        v6.close()


def test_hls_may_not_lead_elsewhere(open_svc: Service, playlist_port: int) -> None:
    """A playlist from an allowed place (127.0.0.2, one port) names a segment, a variant
    playlist, a redirect target elsewhere, and non-network schemes: none is opened."""
    other_port = Listener("127.0.0.2")  # same host, another port: not on the allow list
    other_host = Listener("127.0.0.3")  # another host
    seg_a = f"http://127.0.0.2:{other_port.port}/seg.ts"
    seg_b = f"http://127.0.0.3:{other_host.port}/seg.ts"
    routes = {
        "/segment-port.m3u8": (200, M3U8, playlist(seg_a)),
        "/segment-host.m3u8": (200, M3U8, playlist(seg_b)),
        "/variant.m3u8": (200, M3U8, master(f"http://127.0.0.3:{other_host.port}/v.m3u8")),
        "/redirect.m3u8": (302, {"Location": f"http://127.0.0.3:{other_host.port}/r.m3u8"}, b""),
        "/seg-redirect.m3u8": (200, M3U8, playlist("/hop.ts")),
        "/hop.ts": (307, {"Location": seg_a}, b""),
        "/file.m3u8": (200, M3U8, playlist("file:///etc/passwd")),
        "/concat.m3u8": (200, M3U8, playlist("concat:/etc/passwd|/etc/hosts")),
        "/subfile.m3u8": (200, M3U8, playlist("subfile,,start,0,end,0,,:/etc/passwd")),
        "/data.m3u8": (200, M3U8, playlist("data:video/mp2t;base64,R0lG")),
        "/crypto.m3u8": (200, M3U8, playlist(f"crypto+{seg_a}")),
    }
    server = Routes("127.0.0.2", routes, port=playlist_port)
    try:
        urls = [server.url(path) for path in routes if path.endswith(".m3u8")]
        for job in run_jobs(open_svc, urls):
            assert_uniform_failure(open_svc, job)
        assert other_port.connections == 0 and other_host.connections == 0
        # the playlists themselves were fetched (the allowed place is reachable)...
        assert "/segment-host.m3u8" in server.paths and "/seg-redirect.m3u8" in server.paths
        assert "/hop.ts" in server.paths  # ...and the redirect was seen, not followed
    finally:
        server.close()
        other_port.close()
        other_host.close()


def test_allow_list_opens_exactly_what_it_names(open_svc: Service, playlist_port: int) -> None:
    """127.0.0.1/32 opens every port of 127.0.0.1 (HTTP, RTSP and RTMP clients connect);
    127.0.0.2:PORT opens that port only; 127.0.0.3 stays closed."""
    http_l, rtsp_l, rtmp_l = Listener(), Listener(), Listener()
    wrong_port, wrong_host = Listener("127.0.0.2"), Listener("127.0.0.3")
    try:
        jobs = run_jobs(
            open_svc,
            [
                f"http://127.0.0.1:{http_l.port}/x.m3u8",
                f"rtsp://127.0.0.1:{rtsp_l.port}/cam",
                f"rtmp://127.0.0.1:{rtmp_l.port}/live/key",
                f"rtsp://127.0.0.2:{wrong_port.port}/cam",
                f"http://127.0.0.3:{wrong_host.port}/x.m3u8",
                f"rtmp://127.0.0.3:{wrong_host.port}/live/key",
            ],
        )
        for job in jobs:  # none of them speaks a stream: all fail the same way
            assert_uniform_failure(open_svc, job)
        assert http_l.received and http_l.received[0].startswith(b"GET /x.m3u8 HTTP/1.1\r\n")
        assert rtsp_l.received and rtsp_l.received[0].startswith(b"OPTIONS rtsp://")
        assert rtmp_l.received and rtmp_l.received[0][:1] == b"\x03"  # the RTMP handshake
        assert wrong_port.connections == 0 and wrong_host.connections == 0
    finally:
        for listener in (http_l, rtsp_l, rtmp_l, wrong_port, wrong_host):
            listener.close()


def test_failures_read_the_same(open_svc: Service) -> None:
    """A closed port, an open one that says nothing useful, an HTTP 404, an HTTP answer that
    is not a playlist, and an address the policy refuses: one error, word for word."""
    silent = Listener()
    chatty = Listener(reply=b"SSH-2.0-OpenSSH_9.2\r\n")
    web = Routes("127.0.0.1", {"/junk.m3u8": (200, {}, b"<html>hello</html>")})
    try:
        closed = free_port()
        urls = [
            f"http://127.0.0.1:{closed}/x.m3u8",
            f"http://127.0.0.1:{silent.port}/x.m3u8",
            f"http://127.0.0.1:{chatty.port}/x.m3u8",
            web.url("/missing.m3u8"),
            web.url("/junk.m3u8"),
            f"http://127.0.0.3:{closed}/x.m3u8",
            f"rtsp://127.0.0.1:{closed}/cam",
            f"rtsp://127.0.0.1:{chatty.port}/cam",
            f"rtsp://127.0.0.1:{web.port}/cam",
            f"rtmp://127.0.0.1:{closed}/live/key",
            f"rtmp://127.0.0.1:{chatty.port}/live/key",
        ]
        jobs = run_jobs(open_svc, urls)
        for job in jobs:
            assert_uniform_failure(open_svc, job)
        assert {json.dumps(j["error"], sort_keys=True) for j in jobs} == {
            json.dumps(UNREACHABLE, sort_keys=True)
        }
        assert "/missing.m3u8" in web.paths and "/junk.m3u8" in web.paths
        # with a reconnect: the reconnecting event says no more than the error
        r = post_stream(open_svc, f"rtsp://127.0.0.1:{closed}/cam", retries="1")
        job = open_svc.wait_job(r.headers["Location"], timeout=120)
        assert job["error"] == UNREACHABLE
        results = all_results(open_svc, job["id"])
        assert [x["kind"] for x in results] == ["reconnecting", "error", "summary"]
        assert results[0]["result"]["error"] == "source unreachable"
    finally:
        silent.close()
        chatty.close()
        web.close()


@pytest.mark.skipif(not has_ffmpeg(), reason="needs the ffmpeg program as an RTMP server")
def test_allowed_rtmp_stream_is_analysed(open_svc: Service) -> None:
    """An allowed RTMP server works end to end through the relay (frames and faces)."""
    port = free_port()
    url = f"rtmp://127.0.0.1:{port}/live/cam"
    server = ffmpeg_rtmp_server(shared("pyfeat_media", "single_face.mp4"), url, seconds=40)
    try:
        r = post_stream(open_svc, url, retries="2", max_seconds="4", features="detection")
        assert r.status_code == 202, r.text
        job = open_svc.wait_job(r.headers["Location"], timeout=120)
        assert job["status"] == "succeeded", job
        results = all_results(open_svc, job["id"])
        # on a busy machine ffmpeg's listener may not be up at the first try: a reconnect
        kinds = [x["kind"] for x in results]
        first = kinds.index("stream_started")
        assert set(kinds[:first]) <= {"reconnecting"}, kinds
        assert results[first]["result"]["kind"] == "rtmp"
        frames = [x["result"] for x in results if x["kind"] == "frame"]
        assert frames and any(f["faces"] for f in frames)
        assert results[-1]["result"]["reason"] == "duration"
    finally:
        server.kill()
        server.wait(10)


def test_serve_option_and_config(tmp_path: Path) -> None:
    from mien.cli import build_parser
    from mien.cli.serve import config_from_args
    from mien.service.config import ServiceConfig

    args = build_parser().parse_args(
        ["serve", "--allow-stream-hosts", "10.0.0.0/8,cam1.lan:554", "--allow-stream-hosts",
         "[fd00::1]:8554", "--data-dir", str(tmp_path)]
    )  # fmt: skip
    config = config_from_args(args, allow_stream_hosts=tuple(args.allow_stream_hosts))
    assert config.allow_stream_hosts == ("10.0.0.0/8", "cam1.lan:554", "[fd00::1]:8554")
    assert [e.port for e in config.outbound_policy().allow] == [None, 554, 8554]
    with pytest.raises(ValueError, match="allow-list"):
        ServiceConfig(data_dir=tmp_path, allow_stream_hosts=("10.0.0.0/8", "no such host!"))
    assert ServiceConfig(data_dir=tmp_path).outbound_policy().allow == ()
    # a bad entry is a usage error (exit 2) before anything starts
    bad = subprocess.run(
        [sys.executable, "-m", "mien", "serve", "--data-dir", str(tmp_path),
         "--allow-stream-hosts", "10.0.0.0/8,bad!"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2, bad.stderr
    assert "not an allow-list entry: 'bad!'" in bad.stderr
