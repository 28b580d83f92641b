"""HTTP service throughput: concurrent clients on loopback against the library in one process.

Starts a real ``mien serve`` (one uvicorn process, job workers off: only the synchronous
``POST /v1/faces:analyze`` route is measured) on a free loopback port, creates an API key with
``mien keys create``, and sends the same photos (raw JPEG bodies, default features) from 1, 4
and 16 concurrent client threads (one keep-alive ``httpx.Client`` each). For each level:
requests/s (completed requests / wall time), p50 and p99 latency, errors (any answer but 200).

Then a backpressure run (``--overload-clients``, default 32, for ``--overload-seconds``, default
60) against a second server started with ``--queue-limit`` (default 4): every client sends
requests back to back and, after a 503, waits what its ``Retry-After`` says. Reported: answered
requests/s (200s), p50/p99 latency of the 200s, p99 of all answers, the share of 503s, the
``Retry-After`` values seen, and any other error (expected none).

The baseline is the library in one process: ``FaceAnalyzer.analyze(jpeg_bytes)`` on the same
photos one after the other, with the same detector threads, in images/s. ``ratio`` is the
server's requests/s / the library's images/s (target >= 0.8 per worker: the server runs one
worker process). The server's JSON answers are checked against the library's for every photo.

    .venv/bin/python bench/service.py                         # 30 photos, 90 requests a level
    .venv/bin/python bench/service.py --limit 8 --requests 16 --levels 1,4    # smoke run
    .venv/bin/python bench/service.py --levels '' --out bench/results/service_overload.json

Results: ``bench/results/service.json`` and ``bench/results/service.md``. Throughput numbers
are only meaningful on an otherwise idle machine: the JSON records the load average.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common_pose import (
    DEFAULT_DATA,
    RESULTS,
    command_line,
    machine_info,
    markdown_table,
    write_json,
)
from mien.analyzer import FaceAnalyzer


def _run_clients(client: Callable[[], None], clients: int) -> float:
    """Run ``client`` in ``clients`` threads at once; the wall-clock seconds until all end."""
    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _photos(data: Path, dataset: str, limit: int) -> list[tuple[str, bytes]]:
    folder = data / dataset / "images"
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    return [(p.name, p.read_bytes()) for p in files[:limit]]


def library_rate(analyzer: FaceAnalyzer, photos: list[tuple[str, bytes]], n: int) -> float:
    """Images/s of ``n`` sequential ``analyze`` calls (the photos in turn) in this process."""
    t0 = time.perf_counter()
    for i in range(n):
        analyzer.analyze(photos[i % len(photos)][1])
    return n / (time.perf_counter() - t0)


class Server:
    def __init__(self, data_dir: Path, threads: int, *extra: str) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        made = subprocess.run(
            [sys.executable, "-m", "mien", "keys", "create", "--data-dir", str(data_dir)],
            capture_output=True,
            text=True,
            check=True,
        )
        self.key = made.stdout.strip()
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "mien", "serve", "--data-dir", str(data_dir),
                "--port", str(self.port), "--workers", "0", "--threads", str(threads),
                "--log-level", "warning", "--max-upload-mb", "64", *extra,
            ],
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base}/health", timeout=2).status_code == 200:
                    return
            time.sleep(0.3)
        raise RuntimeError("mien serve did not start")

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=60)


def run_level(
    server: Server, photos: list[tuple[str, bytes]], clients: int, requests: int
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {server.key}", "content-type": "image/jpeg"}
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def client() -> None:
        with httpx.Client(base_url=server.base, headers=headers, timeout=300) as c:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                name, data = photos[i % len(photos)]
                t0 = time.perf_counter()
                try:
                    r = c.post("/v1/faces:analyze", content=data)
                    ok = r.status_code == 200
                    why = f"{r.status_code} {r.text[:100]}"
                except httpx.HTTPError as exc:
                    ok, why = False, repr(exc)
                dt = time.perf_counter() - t0
                with lock:
                    latencies.append(dt)
                    if not ok:
                        errors.append(f"{name}: {why}")

    wall = _run_clients(client, clients)
    lat = sorted(latencies)
    return {
        "clients": clients,
        "requests": requests,
        "wall_s": wall,
        "requests_per_s": requests / wall,
        "p50_ms": 1000 * statistics.median(lat),
        "p99_ms": 1000 * lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))],
        "errors": len(errors),
        "error_samples": errors[:5],
    }


def run_overload(
    server: Server, photos: list[tuple[str, bytes]], clients: int, seconds: float
) -> dict[str, Any]:
    """``clients`` threads send requests back to back for ``seconds``; after a 503 a client waits
    what its ``Retry-After`` says (at most until the end), as a well-behaved client would."""
    headers = {"Authorization": f"Bearer {server.key}", "content-type": "image/jpeg"}
    ok_lat: list[float] = []
    all_lat: list[float] = []
    busy: list[int] = []  # Retry-After of each 503
    errors: list[str] = []
    lock = threading.Lock()
    sent = iter(range(10**9))
    end = time.perf_counter() + seconds

    def client() -> None:
        with httpx.Client(base_url=server.base, headers=headers, timeout=300) as c:
            while time.perf_counter() < end:
                with lock:
                    i = next(sent)
                name, data = photos[i % len(photos)]
                t0 = time.perf_counter()
                try:
                    r = c.post("/v1/faces:analyze", content=data)
                    status, retry = r.status_code, r.headers.get("retry-after")
                    why = f"{r.status_code} {r.text[:100]}"
                except httpx.HTTPError as exc:
                    status, retry, why = 0, None, repr(exc)
                dt = time.perf_counter() - t0
                with lock:
                    all_lat.append(dt)
                    if status == 200:
                        ok_lat.append(dt)
                    elif status == 503 and retry is not None:
                        busy.append(int(retry))
                    else:
                        errors.append(f"{name}: {why}")
                if status == 503 and retry is not None:
                    time.sleep(max(0.0, min(float(retry), end - time.perf_counter())))

    wall = _run_clients(client, clients)

    def p99(xs: list[float]) -> float:
        xs = sorted(xs)
        return 1000 * xs[min(len(xs) - 1, round(0.99 * (len(xs) - 1)))] if xs else float("nan")

    return {
        "clients": clients,
        "seconds": seconds,
        "requests": len(all_lat),
        "wall_s": wall,
        "answered_per_s": len(ok_lat) / wall,
        "ok": len(ok_lat),
        "overloaded_503": len(busy),
        "share_503": len(busy) / max(1, len(all_lat)),
        "retry_after_s": sorted(set(busy)),
        "p50_ok_ms": 1000 * statistics.median(ok_lat) if ok_lat else float("nan"),
        "p99_ok_ms": p99(ok_lat),
        "p99_all_ms": p99(all_lat),
        "errors": len(errors),
        "error_samples": errors[:5],
    }


def check_answers(server: Server, photos: list[tuple[str, bytes]], analyzer: FaceAnalyzer) -> int:
    """How many photos the server answers differently from the library (expected 0)."""
    headers = {"Authorization": f"Bearer {server.key}", "content-type": "image/jpeg"}
    differ = 0
    with httpx.Client(base_url=server.base, headers=headers, timeout=300) as c:
        for name, data in photos:
            got = c.post("/v1/faces:analyze", params={"name": name}, content=data).json()
            want = analyzer.analyze(data, name=name).to_dict(include_mesh=False)
            want = json.loads(json.dumps(want))
            differ += got != want
    return differ


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--dataset", default="facemask_kaggle_voc")
    ap.add_argument("--limit", type=int, default=30, help="photos (default 30)")
    ap.add_argument("--requests", type=int, default=90, help="requests per level (default 90)")
    ap.add_argument("--levels", default="1,4,16", help="concurrent clients (default 1,4,16)")
    ap.add_argument("--threads", type=int, default=2, help="detector threads, both sides")
    ap.add_argument("--overload-clients", type=int, default=32, help="0: no backpressure run")
    ap.add_argument("--overload-seconds", type=float, default=60.0)
    ap.add_argument("--queue-limit", type=int, default=4, help="of the backpressure server")
    ap.add_argument("--max-concurrent", type=int, default=0, help="of both servers (0: cores)")
    ap.add_argument("--out", type=Path, default=RESULTS / "service.json")
    args = ap.parse_args(argv)

    photos = _photos(args.data, args.dataset, args.limit)
    info = machine_info()
    analyzer = FaceAnalyzer(num_threads=args.threads)
    for _, data in photos[:3]:
        analyzer.analyze(data)  # warm-up
    levels = []
    library = []
    with tempfile.TemporaryDirectory(prefix="mien-bench-service-") as tmp:
        slots = ("--max-concurrent", str(args.max_concurrent))
        server = Server(Path(tmp) / "levels", args.threads, *slots)
        try:
            differ = check_answers(server, photos, analyzer)  # also warms the server up
            for clients in (int(c) for c in args.levels.split(",") if c.strip()):
                # the library runs just before each level, so both see the same machine load
                lib_rate = library_rate(analyzer, photos, args.requests)
                library.append(lib_rate)
                level = run_level(server, photos, clients, args.requests)
                level["library_images_per_s"] = lib_rate
                level["ratio_to_library"] = level["requests_per_s"] / lib_rate
                levels.append(level)
                print(
                    f"{clients:>3} clients: {level['requests_per_s']:.2f} req/s, p50 "
                    f"{level['p50_ms']:.0f} ms, p99 {level['p99_ms']:.0f} ms, errors "
                    f"{level['errors']}, ratio {level['ratio_to_library']:.2f}",
                    file=sys.stderr,
                )
        finally:
            server.stop()
        overload = None
        if args.overload_clients > 0:
            server = Server(
                Path(tmp) / "overload", args.threads, *slots, "--queue-limit", str(args.queue_limit)
            )
            try:
                check_answers(server, photos[:3], analyzer)  # warm
                overload = run_overload(
                    server, photos, args.overload_clients, args.overload_seconds
                )
                print(
                    f"{args.overload_clients} clients, queue limit {args.queue_limit}: "
                    f"{overload['answered_per_s']:.2f} answered/s, p99 "
                    f"{overload['p99_ok_ms']:.0f} ms (200s) / {overload['p99_all_ms']:.0f} ms "
                    f"(all), 503 share {overload['share_503']:.2f}, errors {overload['errors']}",
                    file=sys.stderr,
                )
            finally:
                server.stop()
    info["load_average_after"] = list(os.getloadavg())
    report = {
        "command": command_line(),
        "dataset": args.dataset,
        "photos": len(photos),
        "threads": args.threads,
        "server": "mien serve, 1 uvicorn process, --workers 0 (no job workers), SQLite store",
        "library_images_per_s": library,
        "answers_differing_from_library": differ,
        "levels": levels,
        "overload": overload,
        "queue_limit": args.queue_limit,
        "machine": info,
    }
    write_json(args.out, report)
    rows = [
        [
            lv["clients"],
            f"{lv['library_images_per_s']:.2f}",
            f"{lv['requests_per_s']:.2f}",
            f"{lv['p50_ms']:.0f}",
            f"{lv['p99_ms']:.0f}",
            lv["errors"],
            f"{lv['ratio_to_library']:.2f}",
        ]
        for lv in levels
    ]
    md = [
        "# HTTP service throughput",
        "",
        f"Command: `{report['command']}`",
        "",
        f"{len(photos)} photos of `{args.dataset}` (first {args.limit}, raw JPEG bodies), "
        f"{args.requests} requests per level. The library baseline (`FaceAnalyzer.analyze` on "
        f"the JPEG bytes, one process, one call at a time, {args.threads} detector threads) "
        "runs just before each level; ratio = server requests/s / library images/s (one "
        "server worker process). Server answers identical to the library's for "
        f"{len(photos) - differ}/{len(photos)} photos.",
        "",
        markdown_table(
            [
                "clients",
                "library images/s",
                "server requests/s",
                "p50 ms",
                "p99 ms",
                "errors",
                "ratio",
            ],
            rows,
        ),
        "",
    ]
    if overload is not None:
        md += [
            f"Backpressure: {overload['clients']} clients sending back to back for "
            f"{overload['seconds']:g} s ({overload['requests']} requests), server with "
            f"`--queue-limit {args.queue_limit}`; after a 503 a client waits its Retry-After.",
            "",
            markdown_table(
                [
                    "clients",
                    "answered (200) /s",
                    "p50 ms (200)",
                    "p99 ms (200)",
                    "p99 ms (all)",
                    "503 share",
                    "Retry-After s",
                    "other errors",
                ],
                [
                    [
                        overload["clients"],
                        f"{overload['answered_per_s']:.2f}",
                        f"{overload['p50_ok_ms']:.0f}",
                        f"{overload['p99_ok_ms']:.0f}",
                        f"{overload['p99_all_ms']:.0f}",
                        f"{overload['share_503']:.2f}",
                        ",".join(str(v) for v in overload["retry_after_s"]) or "-",
                        overload["errors"],
                    ]
                ],
            ),
            "",
        ]
    md += [
        f"Load average {info['load_average'][0]:.1f} before, "
        f"{info['load_average_after'][0]:.1f} after ({info['cpus_available']} cores).",
        "",
    ]
    args.out.with_suffix(".md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
