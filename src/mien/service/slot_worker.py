"""One analysis slot of the server: a process that analyses or redacts one picture at a time.

Run as ``python -m mien.service.slot_worker FD NUM_THREADS MAX_PIXELS`` by
:mod:`mien.service.slots`; ``FD`` is this process's end of a socket pair with the server. The
server sends ``(kind, args)``; the answer is ``("ok", value)`` or ``("error", code, message,
extra)``. The server kills this process when the client disconnects or the time budget runs out,
so nothing here needs to be interruptible. After each picture the C allocator is asked to give
free memory back to the system, and a process that still holds more than ``RECYCLE_RSS`` bytes
exits after answering (the server starts a fresh one). The process ends when the server does
(the socket closes; on Linux the kernel also sends SIGKILL when the parent dies).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import io
import os
import signal
import socket
import sys
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from mien.errors import MienError
from mien.features import parse_features
from mien.media.image import ImageLimits, load_image
from mien.service.analysis import AnalysisParams, AnalyzerCache, evaluate, image_record
from mien.service.problem import Problem

#: A slot process holding more than this after a picture exits and is replaced.
RECYCLE_RSS = 1536 * 1024 * 1024

REDACT_FORMATS = {
    "jpeg": ("JPEG", "image/jpeg"),
    "png": ("PNG", "image/png"),
    "webp": ("WEBP", "image/webp"),
}


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when the server dies (even by SIGKILL)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)


def trim_memory() -> None:
    """Give free heap pages back to the system (glibc ``malloc_trim``; no-op elsewhere)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class SlotWork:
    """What one slot process does; kept apart from the process loop so tests can call it."""

    def __init__(self, num_threads: int, max_pixels: int, device: str = "cpu") -> None:
        self.cache = AnalyzerCache(
            size=2, num_threads=num_threads, max_pixels=max_pixels, device=device
        )
        self.limits = ImageLimits(max_pixels=max_pixels)

    def warm(self) -> None:
        """Load the models of the default features (what most requests ask for) and run them
        once on the bundled sample photo, so the first request does not pay for either."""
        with contextlib.suppress(Exception):  # a broken model is reported by the request
            analyzer = self.cache.analyzer(AnalysisParams(features=parse_features(None)))
            analyzer.analyze(Path(__file__).resolve().parent.parent / "samples" / "astronaut.jpg")

    def analyze(self, params_json: dict[str, Any], data: bytes, name: str) -> dict[str, Any]:
        params = AnalysisParams.from_json(params_json)
        # the service's pixel budget is checked against the header before any pixel is decoded
        decoded = load_image(data, name=name, limits=self.limits)
        del data
        analyzer = self.cache.analyzer(params)
        ruleset = self.cache.ruleset(params.profile)
        result = analyzer.analyze(decoded, name=name)
        return image_record(result, params, evaluate(ruleset, result))

    def redact(
        self,
        threshold: float | None,
        options: dict[str, Any],
        fmt: str | None,
        data: bytes,
        name: str,
    ) -> tuple[bytes, str, int]:
        from PIL import Image

        from mien.options import AnalyzerOptions
        from mien.redact.image import redact_array
        from mien.redact.options import RedactOptions

        decoded = load_image(data, name=name, limits=self.limits)
        del data
        an_opts = (
            None
            if threshold is None
            else AnalyzerOptions(features=("detection",), threshold=threshold)
        )
        out, report = redact_array(
            decoded.rgb, analyzer_options=an_opts, options=RedactOptions(**options), name=name
        )
        chosen = fmt or {"JPEG": "jpeg", "WEBP": "webp"}.get(decoded.format or "", "png")
        pil_fmt, mime = REDACT_FORMATS[chosen]
        del decoded
        buf = io.BytesIO()
        Image.fromarray(out).save(buf, pil_fmt, **({"quality": 92} if chosen != "png" else {}))
        return buf.getvalue(), mime, len(report.regions)

    def run(self, kind: str, args: tuple[Any, ...]) -> Any:
        if kind == "analyze":
            return self.analyze(*args)
        if kind == "redact":
            return self.redact(*args)
        if kind == "ping":
            return os.getpid()
        raise ValueError(f"unknown slot task {kind!r}")


def answer(work: SlotWork, kind: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """The reply to one task: never raises (except for interpreter exits)."""
    try:
        return ("ok", work.run(kind, args))
    except Problem as exc:
        return ("error", (exc.code, exc.detail, exc.extra))
    except MienError as exc:
        names = getattr(exc, "names", None)
        return ("error", (exc.code, exc.message, {"refused": list(names)} if names else {}))
    except MemoryError:
        return ("error", ("ImageTooLarge", f"{args[-1]}: out of memory while analysing", {}))
    except Exception as exc:  # a bug: the server answers 500, the slot goes on
        return ("error", ("InternalError", f"analysis failed ({type(exc).__name__})", {}))


def main(argv: list[str]) -> int:
    fd, num_threads, max_pixels = int(argv[0]), int(argv[1]), int(argv[2])
    device = argv[3] if len(argv) > 3 else "cpu"
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C of `mien serve`: the server stops us
    sock = socket.socket(fileno=fd)
    conn = Connection(sock.detach())
    work = SlotWork(num_threads, max_pixels, device)
    work.warm()
    try:
        conn.send(("ready", os.getpid()))
    except OSError:
        return 0
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return 0  # the server is gone or closed us
        if task is None:
            return 0
        kind, args = task
        reply = answer(work, kind, args)
        del task, args
        trim_memory()
        recycle = rss_bytes() > RECYCLE_RSS  # the server starts a fresh process for this slot
        try:
            conn.send((*reply, recycle))
        except (BrokenPipeError, OSError):
            return 0
        del reply
        if recycle:
            return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
