"""``mien keys`` and ``mien serve``'s options, on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mien.cli import build_parser
from mien.service.config import ServiceConfig
from mien.service.keys import verify_key
from mien.service.store import Store

from .service_fixtures import Database, database_fixture

database = database_fixture()


def mien(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mien", *args], capture_output=True, text=True, timeout=120
    )


def test_keys_create_list_revoke(database: Database, tmp_path: Path) -> None:
    where = ["--data-dir", str(tmp_path), *(["--db", database.url] if database.url else [])]
    made = mien("keys", "create", "--name", "ci robot", *where)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("mien_") and len(key) > 40 and "\n" not in key
    assert "shown only now" in made.stderr
    key_id = key.split("_")[1]
    store = Store.open(ServiceConfig(data_dir=tmp_path, db_url=database.url).database_url)
    try:
        assert verify_key(store, key) == key_id
        assert verify_key(store, key + "x") is None
        listed = mien("keys", "list", *where)
        assert listed.returncode == 0
        (line,) = listed.stdout.splitlines()
        assert line.startswith(f"{key_id}\tactive\t") and line.endswith("ci robot")
        assert key.split("_", 2)[2] not in listed.stdout  # the secret is never shown again
        assert mien("keys", "revoke", key_id, *where).returncode == 0
        assert verify_key(store, key) is None
        assert "\trevoked\t" in mien("keys", "list", *where).stdout
        again = mien("keys", "revoke", key_id, *where)
        assert again.returncode == 1 and "no active key" in again.stderr
    finally:
        store.close()
    if database.url is None:
        assert (tmp_path / "mien.db").is_file()  # SQLite needs no set-up


def test_serve_binds_loopback_by_default() -> None:
    args = build_parser().parse_args(["serve"])
    assert args.host == "127.0.0.1" and args.workers == 1 and args.retention == "24h"
    help_text = mien("serve", "--help").stdout
    assert "127.0.0.1" in help_text and "--db" in help_text and "--retention" in help_text


def test_serve_rejects_a_bad_retention(tmp_path: Path) -> None:
    bad = mien("serve", "--data-dir", str(tmp_path), "--retention", "soon")
    assert bad.returncode == 2 and "duration" in bad.stderr
