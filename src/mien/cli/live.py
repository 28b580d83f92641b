"""``mien analyze URL`` and ``mien redact URL -o OUT`` for live streams.

The ``analyze`` and ``redact`` commands hand stream addresses (:func:`mien.live.is_stream_url`,
or any input with ``--stream``) to :func:`run_analyze` / :func:`run_redact`. The options only
streams take are added to both parsers by :func:`stream_args`.

Events are written as JSON Lines as they happen (docs/live.md): to stdout or ``-o FILE`` for
``analyze``; to ``--report FILE`` for ``redact`` (whose ``-o`` is the redacted stream). A
one-line summary goes to stderr at the end (unless ``-q``).

Defaults: every live option's default is :class:`mien.live.LiveOptions`'s (or
:class:`~mien.live.ReconnectPolicy`'s, :class:`~mien.live.StreamSource`'s); the options here
default to None and are resolved from there, so a stream gets the live defaults also where an
option is shared with video files (``analyze --detect-side``: 512 for files, 640 for streams).

Exit codes: 0 — the stream ended, ``--duration``/``--max-frames`` was reached, or SIGTERM
stopped it (final summary written), and no written frame was suspect; 1 — the source could
not be opened (or refused the credentials), or was lost and did not come back within the
reconnect attempts; or (redact) some frame was suspect (damaged, or not searched for faces:
covered harder, or, with ``--on-suspect fail``, the session stopped there); 2 — usage error;
3 — mien could not run (model verification, output not writable or target unreachable);
130 — Ctrl-C (final summary written).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import IO, TYPE_CHECKING, Any

from mien.cli.common import (
    EXIT_CANNOT_RUN,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SOME_FAILED,
    default_of,
    log,
    options_from_args,
    redact_options_from_args,
)
from mien.live.decoder import ReconnectPolicy
from mien.live.options import LiveOptions
from mien.live.source import StreamSource
from mien.redact.suspect import ON_SUSPECT

if TYPE_CHECKING:
    from mien.live.session import LiveSession

#: Why a session ended -> exit code (see the module docstring).
_SOURCE_FAILURES = frozenset({"unreachable", "unauthorized", "source_lost", "error"})


def _live_default(name: str) -> Any:
    return default_of(LiveOptions, name)


def _has_option(p: argparse.ArgumentParser, flag: str) -> bool:
    return any(flag in a.option_strings for a in p._actions)


def stream_args(p: argparse.ArgumentParser, *, redact: bool) -> None:
    """Add the options that only live streams take (skipping any the command already has)."""
    g = p.add_argument_group("live streams (rtsp://, rtmp://, http(s)://...m3u8, /dev/videoN)")

    def add(flag: str, **kw: Any) -> None:
        if not _has_option(p, flag):
            g.add_argument(flag, **kw)

    add(
        "--stream",
        action="store_true",
        help="read the input as a live stream: '-' (a pipe) or a recording replayed live",
    )
    add("--realtime", action="store_true", help="pace a file or pipe at its own frame rate")
    add("--input-format", metavar="FMT", help="FFmpeg demuxer of the stream (e.g. mpegts)")
    add(
        "--listen",
        action="store_true",
        help="rtmp://HOST:PORT/APP/KEY: be the server an encoder publishes to",
    )
    add("--duration", type=float, metavar="S", help="stop after S seconds")
    add("--max-frames", type=int, metavar="N", help="stop after N decoded frames")
    add(
        "--queue",
        type=int,
        metavar="N",
        help="decoded frames that may wait; beyond, the oldest is dropped "
        f"(default {_live_default('queue_frames')})",
    )
    retry = _live_default("reconnect")
    add(
        "--reconnect",
        type=int,
        metavar="N",
        help="attempts in a row to reopen a dropped source, with back-off 0.5 s, 1 s, 2 s... "
        f"(0 = never, -1 = forever; default {retry.max_retries})",
    )
    add(
        "--reconnect-max-delay",
        type=float,
        metavar="S",
        help=f"longest wait between two attempts (default {retry.max_delay_s:g})",
    )
    add(
        "--timeout",
        type=float,
        metavar="S",
        help="give up opening or waiting for data after S seconds "
        f"(default {default_of(StreamSource, 'open_timeout_s'):g})",
    )
    add(
        "--detect-side",
        type=int,
        metavar="PX",
        help="run the detector on frames shrunk to a longer side of PX (0 = full; "
        f"default {_live_default('detect_max_side')})",
    )
    add(
        "--max-missed",
        type=int,
        metavar="N",
        help="end a face's track after N searched frames without it "
        f"(default {_live_default('track_max_missed')})",
    )
    if not redact:
        add(
            "--rules",
            metavar="PROFILE",
            help="evaluate a rules profile (name or file) on every analysed frame",
        )
        return
    add(
        "--on-suspect",
        choices=ON_SUSPECT,
        metavar="{" + ",".join(ON_SUSPECT) + "}",
        help="a frame that may be damaged or was not searched for faces: cover = also cover "
        "the known faces' areas grown, or the whole frame when none is known; fail = stop "
        "there; keep = write it covered as usual; it is reported and the exit code is 1 "
        f"whatever the choice (default {_live_default('on_suspect')})",
    )
    add(
        "--hold",
        type=float,
        metavar="S",
        help="keep covering the last known area of every face seen in the last S seconds, "
        f"whatever the detector says (default {_live_default('hold_ms') / 1000:g})",
    )
    add(
        "--detect-every",
        type=float,
        metavar="MS",
        help="search a frame for faces at least every MS ms of stream time, even when "
        f"behind (default {_live_default('detect_every_ms'):g}; 0 = every frame)",
    )
    add(
        "--max-delay",
        type=float,
        metavar="MS",
        help="drop a frame that waited longer than MS ms while newer ones wait "
        f"(default {_live_default('max_delay_ms'):g})",
    )
    add(
        "--hls-time",
        type=float,
        metavar="S",
        help=f"HLS segment length (default {_live_default('hls_time'):g})",
    )
    add(
        "--hls-list-size",
        type=int,
        metavar="N",
        help="segments kept in the HLS playlist "
        f"(0 = all; default {_live_default('hls_list_size')})",
    )
    add("--no-audio", action="store_true", help="do not pass the source's audio through")


def _given(args: argparse.Namespace, name: str) -> Any:
    """An option's value, or None when it was not given (the library default then applies)."""
    return getattr(args, name, None)


def _source(args: argparse.Namespace, address: str) -> StreamSource:
    timeout = _given(args, "timeout")
    kw = {} if timeout is None else {"open_timeout_s": timeout, "read_timeout_s": timeout}
    return StreamSource(
        address,
        input_format=getattr(args, "input_format", None),
        listen=bool(getattr(args, "listen", False)),
        **kw,
    )


def _live_options(args: argparse.Namespace, *, redact: bool) -> LiveOptions:
    """:class:`LiveOptions` from the options given; the others keep the library's defaults."""
    retry = _live_default("reconnect")
    retries, max_delay = _given(args, "reconnect"), _given(args, "reconnect_max_delay")
    kw: dict[str, Any] = {
        "reconnect": ReconnectPolicy(
            max_retries=retry.max_retries if retries is None else int(retries),
            max_delay_s=retry.max_delay_s if max_delay is None else max(0.5, float(max_delay)),
        ),
        "realtime": bool(getattr(args, "realtime", False)),
        "duration_s": _given(args, "duration"),
        "max_frames": _given(args, "max_frames"),
    }
    given = {
        "queue_frames": _given(args, "queue"),
        "track_max_missed": _given(args, "max_missed"),
    }
    side = _given(args, "detect_side")
    if side is not None:
        kw["detect_max_side"] = int(side) or None  # 0: the full frame
    if redact:
        hold = _given(args, "hold")
        given.update(
            on_suspect=_given(args, "on_suspect"),
            hold_ms=None if hold is None else float(hold) * 1000.0,
            detect_every_ms=_given(args, "detect_every"),
            max_delay_ms=_given(args, "max_delay"),
            hls_time=_given(args, "hls_time"),
            hls_list_size=_given(args, "hls_list_size"),
        )
        kw["audio"] = not getattr(args, "no_audio", False)
    kw.update({k: v for k, v in given.items() if v is not None})
    return LiveOptions(**kw)


@contextlib.contextmanager
def _signals(session: LiveSession) -> Iterator[dict[str, bool]]:
    """SIGTERM and Ctrl-C end the session cleanly (the summary is still written)."""
    state = {"interrupted": False, "terminated": False}
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def on_term(signum: int, frame: FrameType | None) -> None:
        state["terminated"] = True
        session.stop()

    def on_int(signum: int, frame: FrameType | None) -> None:
        state["interrupted"] = True
        session.stop()

    old_term = signal.signal(signal.SIGTERM, on_term)
    old_int = signal.signal(signal.SIGINT, on_int)
    try:
        yield state
    finally:
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGINT, old_int)


@contextlib.contextmanager
def _events_out(path: str | None) -> Iterator[IO[str]]:
    """JSON Lines written as they happen (a live log, not an atomic file)."""
    if path is None or path == "-":
        yield sys.stdout
        return
    from mien.media.write import check_output_path

    check_output_path(path)  # mien's output rule: no link, device, FIFO, socket or folder
    try:
        fh = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as exc:
        from mien.errors import LiveOutputError

        raise LiveOutputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        yield fh
    finally:
        fh.close()


def _drive(session: LiveSession, out: IO[str] | None, args: argparse.Namespace) -> int:
    quiet = bool(getattr(args, "quiet", False))
    pretty = bool(getattr(args, "pretty", False))
    with _signals(session) as state:
        for event in session.events():
            record = event.to_dict()
            if out is not None:
                out.write(json.dumps(record, indent=2 if pretty else None, allow_nan=False) + "\n")
                out.flush()
            if not quiet and event.type in ("reconnecting", "gap", "error"):
                log.info("%s", _describe(record))
    summary = session.summary or {}
    if not quiet:
        log.info("%s", _describe({"type": "summary", **summary}))
    if state["interrupted"]:
        return EXIT_INTERRUPTED
    error = summary.get("error") or {}
    if summary.get("reason") in ("output_error",) or error.get("code") in (
        "OutputError",
        "ModelIntegrity",
    ):
        return EXIT_CANNOT_RUN
    if summary.get("reason") in _SOURCE_FAILURES and not state["terminated"]:
        return EXIT_SOME_FAILED
    if summary.get("suspect_frames"):  # covered harder, kept, or stopped: reported, exit 1
        return EXIT_SOME_FAILED
    if error and summary.get("reason") not in ("stopped", "duration", "max_frames"):
        return EXIT_CANNOT_RUN
    return EXIT_OK


def _describe(r: dict[str, Any]) -> str:
    t = r.get("type")
    if t == "reconnecting":
        return (
            f"source dropped ({r.get('error')}); attempt {r.get('attempt')} in {r.get('delay_s')} s"
        )
    if t == "gap":
        return f"source back after {r.get('gap_s')} s"
    if t == "error":
        return f"{r.get('code')}: {r.get('message')}"
    lat = r.get("latency_ms") or {}
    text = (
        f"{r.get('source')}: {r.get('reason')} after {r.get('duration_s')} s; "
        f"{r.get('frames_decoded')} frames decoded, {r.get('frames_analysed')} analysed, "
        f"{r.get('frames_dropped')} dropped, {r.get('reconnects')} reconnects, "
        f"{r.get('tracks')} tracks; latency p50 {lat.get('p50')} ms, p99 {lat.get('p99')} ms"
    )
    if "frames_written" in r:
        text += f"; {r['frames_written']} frames written to {r.get('output')}"
    if r.get("suspect_frames"):
        reasons = ", ".join(f"{k} {v}" for k, v in (r.get("suspect_reasons") or {}).items())
        text += f"; {r['suspect_frames']} suspect frames ({reasons})"
    return text


def _single_input(args: argparse.Namespace, attr: str) -> str:
    value = getattr(args, attr)
    if isinstance(value, list):
        if len(value) != 1:
            raise ValueError("a live stream is analysed on its own: give one stream address")
        value = value[0]
    return str(value)


def run_analyze(args: argparse.Namespace) -> int:
    """``mien analyze STREAM``: JSON Lines events to stdout or ``-o FILE``."""
    from mien.live.session import LiveSession

    options = options_from_args(args)  # refused/unknown features fail here, before connecting
    address = _single_input(args, "paths")
    session = LiveSession(
        _source(args, address),
        analyzer_options=options,
        options=_live_options(args, redact=False),
        rules=getattr(args, "rules", None),
    )
    with _events_out(getattr(args, "output", None)) as out:
        return _drive(session, out, args)


def run_redact(args: argparse.Namespace) -> int:
    """``mien redact STREAM -o OUT``: the covered stream to OUT, events to ``--report``."""
    from mien.live.session import LiveSession

    redact = redact_options_from_args(args)
    options = options_from_args(args)
    address = _single_input(args, "input")
    session = LiveSession(
        _source(args, address),
        analyzer_options=options,
        options=_live_options(args, redact=True),
        redact=redact,
        output=args.output,
    )
    report = getattr(args, "report", None)
    if report is None:
        return _drive(session, None, args)
    with _events_out(report) as out:
        return _drive(session, out, args)


def is_live(args: argparse.Namespace, inputs: str | list[str]) -> bool:
    """Whether a command's inputs are a live stream (a stream address, or ``--stream``)."""
    from mien.live.source import is_stream_url

    items = [inputs] if isinstance(inputs, str) else list(inputs)
    return bool(getattr(args, "stream", False)) or any(is_stream_url(i) for i in items)
