"""``mien reviewers``: reviewer accounts of the review page (separate from API keys).

An account has a role (``reviewer`` or ``admin``), a password (scrypt-hashed) and/or one-time
sign-in links (valid 15 minutes, single use, stored as a SHA-256), and sees the review queues
of the API keys (tenants) assigned to it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
from typing import Any

from mien.cli.common import EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE
from mien.cli.keys import open_store
from mien.cli.serve import store_args

DEFAULT_BASE_URL = "http://127.0.0.1:8000"


def register(sub: Any) -> None:
    p = sub.add_parser("reviewers", help="manage reviewer accounts of the review page")
    rsub = p.add_subparsers(dest="reviewers_command", required=True)

    add = rsub.add_parser("add", help="create an account (password from stdin, or a link)")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--role", choices=("reviewer", "admin"), default="reviewer")
    how = add.add_mutually_exclusive_group(required=True)
    how.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    how.add_argument(
        "--link", action="store_true", help="no password: print a one-time sign-in link"
    )
    _base_url(add)
    add.set_defaults(func=run_add)

    for verb, text in (("assign", "let NAME see"), ("unassign", "stop NAME seeing")):
        a = rsub.add_parser(verb, help=f"{text} the review queue of an API key (its id)")
        a.add_argument("name", metavar="NAME")
        a.add_argument("key_id", metavar="KEY_ID")
        a.set_defaults(func=run_assign if verb == "assign" else run_unassign)

    rsub.add_parser("list", help="list accounts, roles and assigned keys").set_defaults(
        func=run_list
    )
    dis = rsub.add_parser("disable", help="disable an account (its sessions end at once)")
    dis.add_argument("name", metavar="NAME")
    dis.set_defaults(func=run_disable)
    link = rsub.add_parser("link", help="print a one-time sign-in link (15 minutes)")
    link.add_argument("name", metavar="NAME")
    _base_url(link)
    link.set_defaults(func=run_link)
    for parser in rsub.choices.values():
        store_args(parser)


def _base_url(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--base-url",
        default=DEFAULT_BASE_URL,
        help=f"the server's address as reviewers reach it (default {DEFAULT_BASE_URL})",
    )


def _store(args: argparse.Namespace) -> Any:
    return open_store(args, f"mien reviewers {args.reviewers_command}")


def _fail(message: str, code: int = EXIT_SOME_FAILED) -> int:
    print(f"mien: {message}", file=sys.stderr)
    return code


def _print_link(store: Any, reviewer_id: int, base_url: str) -> None:
    from mien.service.passwords import LINK_TTL_S, new_link_token

    token, digest = new_link_token()
    store.add_link(digest, reviewer_id, LINK_TTL_S)
    print(f"{base_url.rstrip('/')}/review/login/{token}")
    print(
        f"mien: a one-time sign-in link, valid {LINK_TTL_S // 60} minutes; it is shown only now.",
        file=sys.stderr,
    )


def run_add(args: argparse.Namespace) -> int:
    from mien.service.passwords import hash_password, password_problem
    from mien.service.reviewers import NAME_PATTERN

    name = args.name.strip()
    if not name or len(name) > 200 or not re.match(NAME_PATTERN, name):
        return _fail("a reviewer name has 1 to 200 characters, no control characters", EXIT_USAGE)
    password_hash = None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        problem = password_problem(password)
        if problem:
            return _fail(problem, EXIT_USAGE)
        password_hash = hash_password(password)
    store = _store(args)
    try:
        if store.get_reviewer(name) is not None:
            return _fail(f"there is already a reviewer {name!r}")
        reviewer_id = store.add_reviewer(name, args.role, password_hash)
        print(f"mien: created {args.role} {name!r}", file=sys.stderr)
        if args.link:
            _print_link(store, reviewer_id, args.base_url)
    finally:
        store.close()
    return EXIT_OK


def _with_reviewer(args: argparse.Namespace, action: Any) -> int:
    """Run ``action(store, reviewer_row)`` for the account ``args.name`` (exit 1 without)."""
    store = _store(args)
    try:
        row = store.get_reviewer(args.name)
        if row is None:
            return _fail(f"no reviewer {args.name!r}")
        code: int = action(store, row)
        return code
    finally:
        store.close()


def run_assign(args: argparse.Namespace) -> int:
    def assign(store: Any, row: Any) -> int:
        if not store.assign_key(row.id, args.key_id):
            return _fail(f"no API key {args.key_id}")
        print(f"mien: {row.name} sees the review queue of key {args.key_id}", file=sys.stderr)
        return EXIT_OK

    return _with_reviewer(args, assign)


def run_unassign(args: argparse.Namespace) -> int:
    def unassign(store: Any, row: Any) -> int:
        if not store.unassign_key(row.id, args.key_id):
            return _fail(f"key {args.key_id} is not assigned to {row.name}")
        print(f"mien: {row.name} no longer sees key {args.key_id}", file=sys.stderr)
        return EXIT_OK

    return _with_reviewer(args, unassign)


def run_list(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        for row, keys in store.list_reviewers():
            created = dt.datetime.fromtimestamp(row.created_at, dt.timezone.utc)
            state = "disabled" if row.disabled_at else "active"
            sign_in = "password" if row.password_hash else "link only"
            print(
                f"{row.name}\t{row.role}\t{state}\t{sign_in}\t{created:%Y-%m-%d %H:%M}Z\t"
                f"{','.join(keys) or '-'}"
            )
    finally:
        store.close()
    return EXIT_OK


def run_disable(args: argparse.Namespace) -> int:
    def disable(store: Any, row: Any) -> int:
        if not store.disable_reviewer(row.id):
            return _fail(f"{row.name} is disabled already")
        print(f"mien: disabled {row.name}; their sessions and links ended", file=sys.stderr)
        return EXIT_OK

    return _with_reviewer(args, disable)


def run_link(args: argparse.Namespace) -> int:
    def link(store: Any, row: Any) -> int:
        if row.disabled_at is not None:
            return _fail(f"{row.name} is disabled")
        _print_link(store, row.id, args.base_url)
        return EXIT_OK

    return _with_reviewer(args, link)
