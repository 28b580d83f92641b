"""``mien batch``: analyse or redact a folder, glob or manifest; sharded, resumable, local/Ray."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import TYPE_CHECKING, Any

from mien.batch.run import SHARD_SECONDS, SHARD_SIZE
from mien.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SOME_FAILED,
    EXIT_USAGE,
    command,
    detector_args,
    features_arg,
    log,
    options_from_args,
    redact_options_from_args,
    redaction_args,
)

if TYPE_CHECKING:
    from mien.batch import BatchOptions

BATCH_EPILOG = """resume: rerun the same command; files of committed shards are skipped, the rest is
done. A shard is committed every --shard-size files or --shard-seconds seconds, whichever comes
first, so a stop (Ctrl-C, kill, kill -9, a crash) loses at most the last --shard-seconds of work.
Rerunning into OUT_DIR with other parameters or another input list is refused (exit 2).

exit codes:
  0    every file was processed
  1    some files could not be read (see OUT_DIR/errors.jsonl); the others were processed
  2    usage error, a refused/unknown feature, an unreadable INPUT, or OUT_DIR holds
       another job
  3    mien could not run (model verification, output not writable, workers keep dying)
  130  interrupted (Ctrl-C, or kill PID): committed shards are kept; rerun the same command
       to resume. Started with SIGINT ignored (a background job of a script: cmd &), mien
       ignores Ctrl-C as other programs do; stop it with kill PID (SIGTERM)

mien describes what a face shows. It never infers who a person is or what group they belong
to: no ethnicity, race, gender, age, emotion, identity, recognition or embeddings."""


def register(sub: Any) -> None:
    p = command(
        sub,
        "batch",
        help="analyse or redact many files: sharded, resumable, worker processes or Ray",
        epilog=BATCH_EPILOG,
        later=_redaction_options,
    )
    p.add_argument(
        "input",
        metavar="INPUT",
        help="a folder (searched recursively), a quoted glob ('photos/**/*.jpg'), or a manifest: "
        ".txt with one path per line or .csv with a 'path' column (relative paths are resolved "
        "against the manifest's folder; file:// URIs are read, other URIs are recorded as errors)",
    )
    p.add_argument(
        "-o", "--output", required=True, metavar="OUT_DIR", help="job folder (see docs/batch.md)"
    )
    p.add_argument("--task", choices=("analyze", "redact"), default="analyze")
    p.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: worker processes on this machine (default); ray: Ray Data (the 'ray' extra)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="processes / Ray actors (default: cores)",
    )
    p.add_argument(
        "--shard-size",
        type=int,
        default=SHARD_SIZE,
        metavar="K",
        help=f"most files per shard, the unit of commit and resume (default {SHARD_SIZE})",
    )
    p.add_argument(
        "--shard-seconds",
        type=float,
        default=SHARD_SECONDS,
        metavar="S",
        help="commit a shard at the latest S seconds after its first file is done, even if it "
        f"holds fewer than K files (default {SHARD_SECONDS:g}; local engine)",
    )
    p.add_argument(
        "--format",
        choices=("jsonl", "parquet"),
        default="jsonl",
        help="jsonl: JSON Lines shards; parquet: also a Parquet table per shard, one row per face",
    )
    p.add_argument(
        "--ray-address",
        metavar="ADDR",
        default=None,
        help="an existing Ray cluster (e.g. ray://head:10001 or auto); default: a local Ray",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary line")
    features_arg(p)
    detector_args(p)
    p.set_defaults(threshold=None)  # 0.5 for analyze, the redaction threshold for redact
    for action in p._actions:  # the shared detection options mean something slightly different
        if action.dest == "threads":
            action.help = "intra-op threads per worker (default: cores / workers, at least 1)"
        elif action.dest == "threshold":
            action.help = "minimum detector score in [0, 1] (default 0.5; redact: lower)"
    p.set_defaults(func=run)


def _redaction_options(p: argparse.ArgumentParser) -> None:
    """The covering options, added on first use: their defaults are read from
    :class:`~mien.redact.options.RedactOptions`, whose package loads OpenCV."""
    redaction_args(p.add_argument_group("redaction (--task redact)"))


def _redact_threshold() -> float:
    from mien.redact.options import REDACT_THRESHOLD

    return REDACT_THRESHOLD


def batch_options(args: argparse.Namespace) -> BatchOptions:
    """The :class:`mien.batch.BatchOptions` of the parsed arguments (ValueError, a refused or
    unknown feature before any file is read); fills in the task's default ``--threshold``."""
    from mien.batch import BatchOptions

    if args.threshold is None:
        args.threshold = _redact_threshold() if args.task == "redact" else 0.5
    options = options_from_args(args)  # refused / unknown features fail here, before any file
    redact = redact_options_from_args(args) if args.task == "redact" else None
    return BatchOptions(
        input=args.input,
        output=args.output,
        task=args.task,
        engine=args.engine,
        workers=args.workers,
        threads=args.threads or None,
        shard_size=args.shard_size,
        shard_seconds=args.shard_seconds,
        format=args.format,
        analyzer=options,
        redact=redact,
        ray_address=args.ray_address,
    )


def run(args: argparse.Namespace) -> int:
    from mien.batch import run_batch
    from mien.errors import BatchInputError, JobMismatchError

    batch = batch_options(args)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        summary = run_batch(
            batch, progress=not args.quiet, log=(lambda _m: None) if args.quiet else None
        )
    except (JobMismatchError, BatchInputError) as exc:
        print(f"mien: {exc.code}: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        signal.signal(signal.SIGTERM, previous)
    if not args.quiet or summary.interrupted:
        log.info(
            "batch %s: %d file(s) done, %d failed, %d skipped (already done), %d face(s) in "
            "%.1f s (%.2f files/s); %d shard(s) committed in %s%s",
            "interrupted" if summary.interrupted else "finished",
            summary.done,
            summary.failed,
            summary.skipped,
            summary.faces,
            summary.seconds,
            summary.files_per_second,
            summary.shards_committed,
            args.output,
            "; rerun the same command to resume" if summary.interrupted else "",
        )
        if summary.failed_total:
            log.info(
                "%d file(s) failed in all: see %s/errors.jsonl", summary.failed_total, args.output
            )
    if summary.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_SOME_FAILED if summary.failed_total else EXIT_OK


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
