"""``mien check``: evaluate rules (a built-in profile or a YAML file) on photos; JSON Lines.

Exit codes: 0 every image passed; 1 some image was flagged (a flag of severity ``error``) or
could not be read; 2 usage error, invalid rules, or a rule naming a refused attribute; 3 mien
could not run.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from mien.cli.common import (
    EXIT_OK,
    EXIT_SOME_FAILED,
    analyze_item,
    check_output,
    command,
    detector_args,
    inputs,
    listing_args,
    log,
    note_unreadable,
    options_from_args,
    progress,
    sink,
)

CHECK_EPILOG = """exit codes:
  0    every image passed (no flag of severity "error"; warnings do not fail)
  1    some image was flagged, or could not be read (its line has "error")
  2    usage error, invalid rules, or a rule naming something mien refuses to compute
  3    mien could not run (model verification failed, output not writable)
  130  interrupted

profiles: id-photo, publish-safe (docs/rules.md); or --rules FILE.yaml."""


def register(sub: Any) -> None:
    ck = command(
        sub,
        "check",
        help="check photos against rules (a profile or a YAML file); one JSON object per image",
        epilog=CHECK_EPILOG,
    )
    ck.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="image files or folders (searched recursively); '-' reads one image from stdin",
    )
    which = ck.add_mutually_exclusive_group()
    which.add_argument(
        "--profile", metavar="NAME", help="a built-in profile: id-photo or publish-safe"
    )
    which.add_argument("--rules", metavar="FILE", help="a YAML rule file (docs/rules.md)")
    ck.add_argument("-o", "--output", metavar="FILE", help="write JSON Lines to FILE (atomically)")
    ck.add_argument(
        "--analysis",
        action="store_true",
        help="include the analysis (the `mien analyze` object, without mesh) in each line",
    )
    listing_args(ck, pretty_help="indent the JSON")
    ck.add_argument(
        "--list-fields",
        action="store_true",
        help="print the names rules may use, with their types, and exit",
    )
    ck.add_argument(
        "--show-rules",
        action="store_true",
        help="print the rules (the profile's YAML, or the file's rules as JSON) and exit",
    )
    detector_args(ck)
    ck.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mien.rules import FIELDS, FUNCTIONS, load_rules, profile_text

    if args.list_fields:
        for spec in FIELDS.values():
            extra = f" ({', '.join(spec.choices)})" if spec.choices else ""
            print(f"{spec.path}\t{spec.type}{extra}\t{spec.scope}\t{spec.doc}")
        for doc in FUNCTIONS.values():
            print(f"function\t{doc}")
        return EXIT_OK
    if args.profile is None and args.rules is None:
        raise ValueError("name a profile (--profile id-photo|publish-safe) or --rules FILE.yaml")
    # Invalid or refused rules fail here (exit 2), before any image is read.
    ruleset = load_rules(args.profile if args.profile is not None else args.rules)
    if args.show_rules:
        if args.profile is not None:
            sys.stdout.write(profile_text(args.profile.strip()))
        else:
            print(json.dumps(ruleset.to_dict(), indent=2))
        return EXIT_OK
    if not args.paths:
        raise ValueError("no PATH given")
    return _check(args, ruleset)


def _check(args: argparse.Namespace, ruleset: Any) -> int:

    from mien.analyzer import FaceAnalyzer

    options = options_from_args(args, features=ruleset.required_features)
    items = inputs(args.paths, recursive=not args.no_recursive)
    sources = [item for item in items if isinstance(item, str)]
    check_output(args.output, sources)  # exit 3 before any work when -o may not be written
    analyzer = FaceAnalyzer(options)
    failed = unreadable = 0
    show = not args.quiet and len(items) > 1
    with (
        sink(args.output, sources) as out,
        progress(len(items), "img", show) as bar,
    ):
        for item in items:
            result = analyze_item(analyzer, item)
            verdict = ruleset.check(result)
            if note_unreadable(result, bar, args.quiet):
                unreadable += 1
            if not verdict.passed:
                failed += 1
                if not args.quiet and result.error is None:
                    rules = sorted({f.rule for f in verdict.flags if f.severity == "error"})
                    bar.write(
                        f"mien: {result.source}: flagged: {', '.join(rules)}", file=sys.stderr
                    )
            record = verdict.to_dict()
            if args.analysis:
                record["analysis"] = result.to_dict(include_mesh=False)
            out.write(json.dumps(record, indent=2 if args.pretty else None, allow_nan=False) + "\n")
            out.flush()
            bar.update(1)
    if show:
        log.info(
            "checked %d image(s) against %s: %d passed, %d flagged or unreadable (%d unreadable)",
            len(items),
            ruleset.name,
            len(items) - failed,
            failed,
            unreadable,
        )
    return EXIT_SOME_FAILED if failed else EXIT_OK
