"""``mien keys``: create, list and revoke API keys of the HTTP service (stored hashed)."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any

from mien.cli.common import EXIT_OK, EXIT_SOME_FAILED
from mien.cli.serve import config_from_args, require_service, store_args


def register(sub: Any) -> None:
    p = sub.add_parser("keys", help="create, list or revoke API keys of `mien serve`")
    ksub = p.add_subparsers(dest="keys_command", required=True)
    c = ksub.add_parser("create", help="create a key and print it (shown only this once)")
    c.add_argument("--name", default="", help="a label for the key (who or what uses it)")
    store_args(c)
    c.set_defaults(func=run_create)
    ls = ksub.add_parser("list", help="list keys (ids and labels; secrets are not stored)")
    store_args(ls)
    ls.set_defaults(func=run_list)
    rv = ksub.add_parser("revoke", help="revoke a key by its id")
    rv.add_argument("key_id", metavar="ID")
    store_args(rv)
    rv.set_defaults(func=run_revoke)
    ws = ksub.add_parser(
        "webhook-secret",
        help="print the key's webhook signing secret (receivers verify Mien-Signature with it)",
        description="Print the secret the server signs this key's webhooks with "
        "(HMAC-SHA256; see docs/review.md#webhooks). It is a signing secret, not the API key: "
        "it cannot call the API. --rotate replaces it; webhooks sent from then on are signed "
        "with the new one.",
    )
    ws.add_argument("key_id", metavar="ID")
    ws.add_argument("--rotate", action="store_true", help="make a new secret and print it")
    store_args(ws)
    ws.set_defaults(func=run_webhook_secret)


def _store(args: argparse.Namespace) -> Any:
    return open_store(args, f"mien keys {args.keys_command}")


def open_store(args: argparse.Namespace, command: str) -> Any:
    """The service store that ``--data-dir`` / ``--db`` name (migrated), for ``command``."""
    require_service(args, command)
    from mien.service.store import Store

    config = config_from_args(args)
    config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    return Store.open(config.database_url)


def run_create(args: argparse.Namespace) -> int:
    store = _store(args)
    from mien.service.keys import create_key

    try:
        key_id, key = create_key(store, args.name)
    finally:
        store.close()
    print(key)
    print(
        f"mien: created key {key_id}; it is shown only now, store it safely. Send it as "
        "'Authorization: Bearer <key>'.",
        file=sys.stderr,
    )
    return EXIT_OK


def run_list(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        for row in store.list_keys():
            created = dt.datetime.fromtimestamp(row["created_at"], dt.timezone.utc)
            state = "revoked" if row["revoked_at"] else "active"
            print(f"{row['id']}\t{state}\t{created:%Y-%m-%d %H:%M}Z\t{row['name']}")
    finally:
        store.close()
    return EXIT_OK


def run_revoke(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        ok = store.revoke_key(args.key_id)
    finally:
        store.close()
    if not ok:
        print(f"mien: no active key {args.key_id}", file=sys.stderr)
        return EXIT_SOME_FAILED
    print(f"mien: revoked {args.key_id}", file=sys.stderr)
    return EXIT_OK


def run_webhook_secret(args: argparse.Namespace) -> int:
    store = _store(args)
    from mien.service.webhooks import key_secret

    try:
        secret = key_secret(store, args.key_id, rotate=args.rotate)
    finally:
        store.close()
    if secret is None:
        print(f"mien: no key {args.key_id}", file=sys.stderr)
        return EXIT_SOME_FAILED
    print(secret)
    if args.rotate:
        print(f"mien: new webhook secret for {args.key_id}", file=sys.stderr)
    return EXIT_OK
