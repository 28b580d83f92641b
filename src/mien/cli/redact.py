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
  or read-only folder, full disk); nothing partial is left at the output path;
* 130 — interrupted; outputs completed so far are kept, the one in progress is not.
"""

from __future__ import annotations

import argparse
import json
import os
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
    detector_args,
    log,
    options_from_args,
)
from mien.errors import MediaError, MienError

#: Suffixes handled as videos without probing (anything else PyAV opens with a video stream
#: is a video too).
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"})

EXIT_DOC = """exit codes:
  0    every input was redacted
  1    some inputs could not be read or redacted (error on stderr, no output for them);
       the other inputs of a folder were redacted; or a video had suspect frames (see
       --on-suspect; listed in --report)
  2    usage error (bad option, unknown output suffix, folder input with a file output)
  3    mien could not run (model verification failed, output not writable); no partial output
  130  interrupted"""


def register(sub: Any) -> None:
    from mien.redact.options import DEFAULT_SCALE, METHODS, REDACT_THRESHOLD, SHAPES

    p = sub.add_parser(
        "redact",
        help="cover faces in pictures, videos, folders or streams (blur, pixelate, fill)",
        description="Cover every face found in INPUT and write the result to OUTPUT. "
        "Pictures lose their metadata (EXIF, GPS, XMP, ICC) unless --keep-metadata.",
        epilog=EXIT_DOC + "\n\n" + EPILOG.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
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
    g.add_argument("--method", choices=METHODS, default="blur", help="how faces are covered")
    g.add_argument("--shape", choices=SHAPES, default="ellipse", help="covered area's shape")
    g.add_argument(
        "--scale",
        type=float,
        default=DEFAULT_SCALE,
        metavar="F",
        help="grow each face box F times around its centre before covering "
        f"(1-4; default {DEFAULT_SCALE})",
    )
    g.add_argument(
        "--color",
        default="#000000",
        metavar="COLOUR",
        help="fill colour for --method fill: #rrggbb or r,g,b (default black)",
    )
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
    from mien.redact.suspect import ON_SUSPECT

    g.add_argument(
        "--on-suspect",
        choices=ON_SUSPECT,
        default="cover",
        help="videos: a frame where a face may be uncovered (damaged, not searched, a face "
        "lost or shrunk) is covered where faces were known, or whole (cover, the default), "
        "stops the video with no output (fail), or is written as found (keep); it is listed "
        "in the report and the exit code is 1 in every case",
    )
    g.add_argument("-q", "--quiet", action="store_true", help="no per-file log")
    detector_args(p)
    for action in p._actions:  # redaction searches harder than analysis by default
        if action.dest == "threshold":
            action.default = REDACT_THRESHOLD
            action.help = (
                f"minimum detector score in [0, 1] (default {REDACT_THRESHOLD}: lower than "
                "analyze's 0.5, a missed face leaks)"
            )
    # --- live streams (mien.live; docs/live.md) ---
    from mien.live.cli import stream_args

    stream_args(p, redact=True)
    p.set_defaults(func=run, features="detection")


# ------------------------------------------------------------------------------------------


def is_stream(text: str) -> bool:
    """A live source for ``mien.live`` (its own test when it is installed)."""
    try:
        from mien.live import is_stream_url
    except ImportError:
        low = text.lower()
        return (
            low.startswith(("rtsp://", "rtsps://", "rtmp://", "rtmps://", "srt://", "udp://"))
            or (low.startswith(("http://", "https://")) and ".m3u8" in low)
            or low.startswith("/dev/video")
        )
    return bool(is_stream_url(text))


def is_video(path: Path) -> bool:
    """A video by suffix, or any other file that PyAV opens and that has a video stream
    (picture suffixes are never probed)."""
    from mien.media.discover import IMAGE_SUFFIXES

    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return True
    if suffix in IMAGE_SUFFIXES or not path.is_file():
        return False
    try:
        import av

        from mien.media.regular import fd_path, open_regular

        fd = open_regular(path)  # never blocks on a FIFO swapped in after is_file()
        try:
            with av.open(fd_path(fd) or str(path)) as container:
                return bool(container.streams.video)
        finally:
            os.close(fd)
    except Exception:  # not a media file PyAV reads: leave it to the picture loader
        return False


@dataclass
class Outcome:
    reports: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    cannot_run: bool = False
    suspect: bool = False


def _redact_one(src: Path, dst: Path, args: argparse.Namespace, ctx: dict[str, Any]) -> Any:
    if is_video(src):
        try:
            from mien.redact.video import redact_video
        except ImportError as exc:
            raise _NoVideo(f"{src}: video redaction is not available in this build") from exc
        from mien.redact.video import VideoRedactOptions

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


class _NoVideo(MediaError):
    code = "UnsupportedMedia"


def _do(src: Path, dst: Path, args: argparse.Namespace, ctx: dict[str, Any], out: Outcome) -> None:
    from mien.media.regular import check_regular
    from mien.media.write import OutputError

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


def run(args: argparse.Namespace) -> int:
    from mien.redact.options import RedactOptions, parse_color

    if is_stream(args.input) or getattr(args, "stream", False):
        try:
            from mien.live.cli import run_redact
        except ImportError:
            print(
                "mien: error: live stream redaction is not available in this build", file=sys.stderr
            )
            return EXIT_USAGE
        code: int = run_redact(args)
        return code

    redact = RedactOptions(
        method=args.method, shape=args.shape, scale=args.scale, color=parse_color(args.color)
    )
    analyzer = options_from_args(args)
    ctx = {"analyzer": analyzer, "redact": redact}
    src, dst = Path(args.input), Path(args.output)
    out = Outcome()

    if src.is_dir():
        if dst.exists() and not dst.is_dir():
            print(
                f"mien: error: {src} is a folder, so -o must be a folder ({dst} is a file)",
                file=sys.stderr,
            )
            return EXIT_USAGE
        items = _folder_items(src, dst)
        for s, d in items:
            try:
                d.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                print(
                    f"mien: OutputError: cannot create {d.parent}: {exc.strerror or exc}",
                    file=sys.stderr,
                )
                return EXIT_CANNOT_RUN
            _do(s, d, args, ctx, out)
        if not args.quiet:
            log.info(
                "redacted %d of %d file(s) from %s into %s", len(out.reports), len(items), src, dst
            )
    else:
        if dst.is_dir():
            dst = dst / src.name
        if _special(src):
            pass  # _do records "not a regular file" (exit 1), whatever the output suffix
        elif not is_video(src):
            from mien.redact.image import OUTPUT_FORMATS

            if dst.suffix.lower() not in OUTPUT_FORMATS:
                print(
                    f"mien: error: cannot write a picture to {dst}: use one of "
                    f"{', '.join(sorted(OUTPUT_FORMATS))}",
                    file=sys.stderr,
                )
                return EXIT_USAGE
        _do(src, dst, args, ctx, out)

    if args.report:
        doc: dict[str, Any]
        if src.is_dir():
            doc = {
                "source": str(src),
                "output": str(dst),
                "kind": "folder",
                "reports": out.reports,
                "errors": out.errors,
            }
        elif out.reports:
            doc = out.reports[0]
        else:
            doc = {"source": str(src), "output": str(dst), "errors": out.errors}
        try:
            from mien.media.write import atomic_output

            with atomic_output(args.report) as fh:
                fh.write((json.dumps(doc, indent=2, allow_nan=False) + "\n").encode())
        except (MienError, OSError) as exc:
            print(f"mien: OutputError: cannot write report {args.report}: {exc}", file=sys.stderr)
            return EXIT_CANNOT_RUN
    if out.cannot_run:
        return EXIT_CANNOT_RUN
    return EXIT_SOME_FAILED if out.errors or out.suspect else EXIT_OK
