"""``mien redact``: cover the faces of pictures, videos, folders or live streams.

Exit codes (the common ones of ``mien``):

* 0 — every input was redacted and written;
* 1 — at least one input could not be read or redacted (corrupt, truncated, not a picture or
  video, no video stream...): an error line on stderr, no output written for it; the other
  inputs of a folder were redacted; or a video had *suspect frames* (damaged, not searched, a
  face lost or shrunk: docs/redaction.md, "Fail closed"), covered unless ``--on-suspect keep``
  and listed in the report (``--on-suspect fail``: no output for that video);
* 2 — usage error (bad option, unknown output suffix, input and output of different kinds);
* 3 — mien could not run: a model failed verification, or an output cannot be written (missing
  or read-only folder, full disk) or is refused by mien's output rule (the input, a link, a
  device, a FIFO...: :func:`mien.media.write.check_output_path`); nothing partial is left at the
  output path, and the output and its ``--report`` are committed together (both or neither);
* 130 — interrupted; outputs completed so far are kept, the one in progress is not.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mien.cli.common import (
    EPILOG,
    EXIT_CANNOT_RUN,
    EXIT_OK,
    EXIT_SOME_FAILED,
    EXIT_USAGE,
    command,
    default_of,
    detector_args,
    log,
    options_from_args,
    redact_options_from_args,
    redaction_args,
    worker_count,
)
from mien.errors import MediaError, MienError, OutputError
from mien.media.discover import VIDEO_SUFFIXES

EXIT_DOC = """exit codes:
  0    every input was redacted
  1    some inputs could not be read or redacted (error on stderr, no output for them);
       the other inputs of a folder were redacted; or a video had suspect frames (see
       --on-suspect; listed in --report)
  2    usage error (bad option, unknown output suffix, folder input with a file output)
  3    mien could not run (model verification failed, output or report not writable or
       refused); no partial output, and never an output without its report
  130  interrupted"""


def register(sub: Any) -> None:
    command(
        sub,
        "redact",
        help="cover faces in pictures, videos, folders or streams (blur, pixelate, fill)",
        description="Cover every face found in INPUT and write the result to OUTPUT. "
        "Pictures lose their metadata (EXIF, GPS, XMP, ICC) unless --keep-metadata.",
        epilog=EXIT_DOC + "\n\n" + EPILOG.split("\n\n", 1)[1],
        later=_add_options,
    )


def _add_options(p: argparse.ArgumentParser) -> None:
    """``mien redact``'s options: added on first use, as their defaults are read from the
    redaction and live option classes, whose modules load OpenCV and PyAV."""
    from mien.redact.options import REDACT_THRESHOLD
    from mien.redact.suspect import ON_SUSPECT
    from mien.redact.video import VideoRedactOptions

    p.add_argument(
        "input",
        metavar="INPUT",
        help="a picture, a video, a folder (redacted recursively) or a stream URL "
        "(rtsp://, rtmp://, http(s)://...m3u8, /dev/videoN)",
    )
    p.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="OUTPUT",
        help="output file (format from its suffix), or a folder for a folder INPUT "
        "(same layout); an existing folder for a file INPUT gets a file of the same name",
    )
    g = p.add_argument_group("redaction")
    redaction_args(g)
    g.add_argument(
        "--keep-metadata",
        action="store_true",
        help="pictures: keep EXIF (orientation reset; no thumbnail, maker notes or XMP) and "
        "the ICC profile; default: strip all metadata",
    )
    g.add_argument(
        "--report",
        metavar="FILE.json",
        help="write the audit JSON (what was covered, where, and when) to FILE.json",
    )
    g.add_argument(
        "--on-suspect",
        choices=ON_SUSPECT,
        default=default_of(VideoRedactOptions, "on_suspect"),
        help="videos: a frame where a face may be uncovered (damaged, not searched, a face "
        "lost or shrunk) is covered where faces were known, or whole (cover, the default), "
        "stops the video with no output (fail), or is written as found (keep); it is listed "
        "in the report and the exit code is 1 in every case",
    )
    g.add_argument("-q", "--quiet", action="store_true", help="no per-file log")
    g.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="folders: worker processes for the pictures (default: cores; 1: this process); "
        "videos are redacted in this process, on their own threads",
    )
    detector_args(p)
    for action in p._actions:  # redaction searches harder than analysis by default
        if action.dest == "threshold":
            action.default = REDACT_THRESHOLD
            action.help = (
                f"minimum detector score in [0, 1] (default {REDACT_THRESHOLD}: lower than "
                "analyze's 0.5, a missed face leaks)"
            )
    # --- live streams (mien.live; docs/live.md) ---
    from mien.cli.live import stream_args

    stream_args(p, redact=True)
    p.set_defaults(func=run, features="detection")


# ------------------------------------------------------------------------------------------


def is_stream(text: str) -> bool:
    """A live source for ``mien.live`` (:func:`mien.live.source.is_stream_url`)."""
    from mien.live.source import is_stream_url

    return is_stream_url(text)


def is_video(path: Path) -> bool:
    """Whether ``path`` is redacted as a video (:func:`mien.media.sniff.media_kind`: a video
    suffix, or content in a video container; single still pictures such as SVG, JPEG 2000 or
    ICO are pictures, whatever FFmpeg makes of them)."""
    from mien.media.sniff import media_kind

    return media_kind(path) == "video"


@dataclass
class Outcome:
    reports: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    cannot_run: bool = False
    suspect: bool = False


def _redact_one(src: Path, dst: Path, args: argparse.Namespace, ctx: dict[str, Any]) -> Any:
    if is_video(src):
        from mien.redact.video import VideoRedactOptions, redact_video

        return redact_video(
            str(src),
            str(dst),
            analyzer_options=ctx["analyzer"],
            options=ctx["redact"],
            video=VideoRedactOptions(on_suspect=args.on_suspect),
        )
    from mien.redact.image import redact_image

    return redact_image(
        str(src),
        str(dst),
        analyzer_options=ctx["analyzer"],
        options=ctx["redact"],
        keep_metadata=args.keep_metadata,
    )


def _do(src: Path, dst: Path, args: argparse.Namespace, ctx: dict[str, Any], out: Outcome) -> None:
    from mien.media.regular import check_regular

    try:
        check_regular(src)  # a FIFO, socket or device: an error line, never opened
        report = _redact_one(src, dst, args, ctx)
    except OutputError as exc:
        out.cannot_run = True
        out.errors.append({"source": str(src), "code": exc.code, "message": exc.message})
        print(f"mien: {exc.code}: {exc.message}", file=sys.stderr)
        return
    except MediaError as exc:
        out.errors.append({"source": str(src), "code": exc.code, "message": exc.message})
        print(f"mien: {src}: {exc.code}: {exc.message}", file=sys.stderr)
        return
    except Exception as exc:  # a bug or a hostile file: no output for it, the folder goes on
        log.debug("redacting %s failed", src, exc_info=True)
        message = f"{type(exc).__name__}: {exc}"
        out.errors.append({"source": str(src), "code": "InternalError", "message": message})
        print(f"mien: {src}: InternalError: {message}", file=sys.stderr)
        return
    out.reports.append(report.to_dict())
    if not report.complete:
        out.suspect = True
        _warn_incomplete(src, report)
    if not args.quiet:
        n = report.counts["regions"]
        print(f"mien: {src}: {n} face region(s) covered -> {dst}", file=sys.stderr)


def _warn_incomplete(src: Path, report: Any) -> None:
    """The stderr line of a video with suspect frames or reported damage (always printed)."""
    from collections import Counter

    from mien.redact.suspect import SUSPECT_REASONS

    parts = []
    if report.suspect_frames:
        reasons = Counter(r for f in report.suspect_frames for r in f.reasons)
        actions = Counter(f.action for f in report.suspect_frames)
        why = ", ".join(f"{SUSPECT_REASONS.get(r, r)}: {n}" for r, n in reasons.most_common())
        done = ", ".join(f"{a.replace('_', ' ')}: {n}" for a, n in actions.most_common())
        parts.append(f"{len(report.suspect_frames)} suspect frame(s) ({why}; {done})")
    if "input_damage" in report.extra:
        parts.append(str(report.extra["input_damage"]))
    print(f"mien: {src}: SuspectFrames: {'; '.join(parts)}", file=sys.stderr)


def _special(path: Path) -> bool:
    """Whether ``path`` exists and is not a regular file or folder (FIFO, socket, device)."""
    from mien.media.regular import special_kind

    try:
        kind = special_kind(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False
    return kind not in (None, "folder")


def _folder_items(src: Path, dst: Path) -> list[tuple[Path, Path]]:
    """Every picture and video under ``src`` (hidden entries skipped), mirrored under ``dst``;
    ``dst`` itself is never walked when it lies inside ``src``. Entries that are not regular
    files (a FIFO, socket or device with a picture or video suffix) are listed too: ``_do``
    gives each an error line and record without opening it."""
    from mien.media.discover import IMAGE_SUFFIXES, natural_key
    from mien.redact.image import OUTPUT_FORMATS

    items: list[tuple[Path, Path]] = []
    dst_real = os.path.realpath(dst)
    for root, dirs, files in os.walk(src, followlinks=False):
        if os.path.realpath(root) == dst_real:
            dirs[:] = []
            continue
        dirs[:] = sorted(
            (
                d
                for d in dirs
                if not d.startswith(".") and os.path.realpath(os.path.join(root, d)) != dst_real
            ),
            key=natural_key,
        )
        for name in sorted(files, key=natural_key):
            if name.startswith("."):
                continue
            suffix = Path(name).suffix.lower()
            if suffix not in IMAGE_SUFFIXES and suffix not in VIDEO_SUFFIXES:
                continue
            rel = Path(root, name).relative_to(src)
            target = dst / rel
            if suffix in IMAGE_SUFFIXES and suffix not in OUTPUT_FORMATS:
                target = target.with_suffix(".png")  # e.g. .gif/.heic in -> lossless .png out
            items.append((Path(root, name), target))
    return items


def _folder_output_problem(src: Path, dst: Path) -> str | None:
    """Why ``dst`` cannot be the output of the folder ``src`` (a usage error), or None."""
    from mien.media.discover import IMAGE_SUFFIXES

    if os.path.lexists(dst):
        if dst.is_dir():  # a folder, or a link to one: files are written inside it
            return None
        return f"{src} is a folder, so -o must be a folder ({dst} is not a folder)"
    if dst.suffix.lower() in IMAGE_SUFFIXES or dst.suffix.lower() in VIDEO_SUFFIXES:
        return (
            f"{src} is a folder, so -o must be a folder ({dst} names a picture or video file; "
            "nothing was created)"
        )
    return None


def _file_output_problem(src: Path, dst: Path) -> str | None:
    """Why ``dst`` has the wrong suffix for ``src`` (a usage error), or None."""
    from mien.redact.image import OUTPUT_FORMATS

    if is_video(src):
        if dst.suffix.lower() not in VIDEO_SUFFIXES:
            return (
                f"cannot write the video {src} to {dst}: use one of "
                f"{', '.join(sorted(VIDEO_SUFFIXES))}"
            )
        return None
    if dst.suffix.lower() not in OUTPUT_FORMATS:
        return f"cannot write a picture to {dst}: use one of {', '.join(sorted(OUTPUT_FORMATS))}"
    return None


def _same_path(a: Path, b: Path) -> bool:
    if os.path.abspath(a) == os.path.abspath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _check_report(report: str | None, src: Path, dst: Path | None) -> None:
    """The output rule for ``--report`` (before any work): OutputError, exit 3."""
    if report is None:
        return
    from mien.media.write import check_output_path

    if dst is not None and _same_path(Path(report), dst):
        raise OutputError(f"refusing to write the report {report}: it is the output path")
    check_output_path(report, sources=(src,), kind="file")


def _report_doc(src: Path, dst: Path, out: Outcome, folder: bool) -> dict[str, Any]:
    if folder:
        return {
            "source": str(src),
            "output": str(dst),
            "kind": "folder",
            "reports": out.reports,
            "errors": out.errors,
        }
    if out.reports:
        return out.reports[0]
    return {"source": str(src), "output": str(dst), "errors": out.errors}


def _write_report(report: str, doc: dict[str, Any], src: Path, raise_errors: bool = False) -> bool:
    """Write the audit JSON atomically; False (after an error line) when it cannot be written,
    or :class:`OutputError` when ``raise_errors``."""
    from mien.media.write import atomic_output

    try:
        with atomic_output(report, sources=(src,)) as fh:
            fh.write((json.dumps(doc, indent=2, allow_nan=False) + "\n").encode())
    except (MienError, OSError, ValueError) as exc:
        message = getattr(exc, "message", None) or str(exc)
        error = OutputError(f"cannot write report {report}: {message}")
        if raise_errors:
            raise error from exc
        print(f"mien: {error.code}: {error.message}", file=sys.stderr)
        return False
    return True


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _pooled(path: Path) -> bool:
    """Whether a folder entry goes to the worker processes: a regular file, not a video."""
    return os.path.isfile(path) and not _special(path) and not is_video(path)


def _redact_folder(
    items: list[tuple[Path, Path]],
    dst: Path,
    args: argparse.Namespace,
    ctx: dict[str, Any],
    out: Outcome,
) -> None:
    """Redact the ``(source, output)`` pairs of a folder into ``out`` in their order: pictures
    in ``--workers`` processes (:func:`mien.batch.pool.pool_records`, each output written
    atomically by its worker), videos and entries that are not regular files in this
    process; with one worker, or one picture, everything in this process."""
    workers = worker_count(args.workers)
    pooled = [i for i, (s, _) in enumerate(items) if _pooled(s)] if workers > 1 else []
    if len(pooled) < 2:
        for s, d in items:
            _do(s, d, args, ctx, out)
        return
    from mien.batch.pool import pool_records

    done: dict[int, Outcome] = {}
    records = pool_records(
        [str(items[i][0]) for i in pooled],
        ctx["analyzer"],
        workers,
        task="redact",
        out_dir=str(dst),
        redact=ctx["redact"],
        keys=[items[i][1].relative_to(dst).as_posix() for i in pooled],
        keep_metadata=args.keep_metadata,
    )
    for i, record in zip(pooled, records, strict=True):
        done[i] = _pool_outcome(items[i][0], items[i][1], record, args)
    for i, (s, d) in enumerate(items):
        if i not in done:
            done[i] = Outcome()
            _do(s, d, args, ctx, done[i])
    for i in range(len(items)):
        got = done[i]
        out.reports += got.reports
        out.errors += got.errors
        out.cannot_run |= got.cannot_run
        out.suspect |= got.suspect


def _pool_outcome(
    src: Path, dst: Path, record: dict[str, Any], args: argparse.Namespace
) -> Outcome:
    """The :class:`Outcome` of one picture redacted by a worker process (as :func:`_do`
    records it in this process), its line printed."""
    got = Outcome()
    error = record.get("error")
    if error is None:
        got.reports.append(record)
        _announce(src, dst, args, record)
        return got
    got.errors.append({"source": str(src), "code": error["code"], "message": error["message"]})
    if error["code"] == OutputError.code:
        got.cannot_run = True
        print(f"mien: {error['code']}: {error['message']}", file=sys.stderr)
    else:
        print(f"mien: {src}: {error['code']}: {error['message']}", file=sys.stderr)
    return got


def _announce(src: Path, dst: Path, args: argparse.Namespace, report: dict[str, Any]) -> None:
    """The success line of one input, printed once its output is in place."""
    if not args.quiet:
        n = report["counts"]["regions"]
        print(f"mien: {src}: {n} face region(s) covered -> {dst}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from mien.cli.live import is_live, run_redact

    if is_live(args, args.input):
        return run_redact(args)

    redact = redact_options_from_args(args)
    analyzer = options_from_args(args)
    ctx = {"analyzer": analyzer, "redact": redact}
    src, dst = Path(args.input), Path(args.output)
    out = Outcome()

    if src.is_dir():
        problem = _folder_output_problem(src, dst)
        if problem is not None:
            print(f"mien: error: {problem}", file=sys.stderr)
            return EXIT_USAGE
        _check_report(args.report, src, None)  # exit 3 before any work
        items = _folder_items(src, dst)
        for _, d in items:
            try:
                d.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                print(
                    f"mien: OutputError: cannot create {d.parent}: {exc.strerror or exc}",
                    file=sys.stderr,
                )
                return EXIT_CANNOT_RUN
        previous = signal.signal(signal.SIGTERM, _interrupt)  # kill PID: exit 130 as Ctrl-C
        try:
            _redact_folder(items, dst, args, ctx, out)
        finally:
            signal.signal(signal.SIGTERM, previous)
        if not args.quiet:
            log.info(
                "redacted %d of %d file(s) from %s into %s", len(out.reports), len(items), src, dst
            )
        # Each file of a folder is committed when it is done; the report comes last.
        if args.report and not _write_report(args.report, _report_doc(src, dst, out, True), src):
            return EXIT_CANNOT_RUN
    else:
        if dst.is_dir():
            dst = dst / src.name
        # a FIFO, socket or device: _do records "not a regular file" (exit 1), whatever the
        # output suffix
        problem = None if _special(src) else _file_output_problem(src, dst)
        if problem is not None:
            print(f"mien: error: {problem}", file=sys.stderr)
            return EXIT_USAGE
        _check_report(args.report, src, dst)  # exit 3 before any work
        from mien.media.write import committed_together

        try:
            # The output and the report are renamed into place together: both or neither.
            with committed_together():
                # quiet here: the success line waits until the output is in place
                _do(src, dst, argparse.Namespace(**{**vars(args), "quiet": True}), ctx, out)
                if args.report:
                    _write_report(args.report, _report_doc(src, dst, out, False), src, True)
        except OutputError as exc:
            print(f"mien: {exc.code}: {exc.message}", file=sys.stderr)
            return EXIT_CANNOT_RUN
        if out.reports:
            _announce(src, dst, args, out.reports[0])

    if out.cannot_run:
        return EXIT_CANNOT_RUN
    return EXIT_SOME_FAILED if out.errors or out.suspect else EXIT_OK
