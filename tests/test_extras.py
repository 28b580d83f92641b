"""A plain ``pip install mien`` (no extras): commands that need an extra stop with one clear
line and exit 3, never a traceback, and before any work is done.

Each case runs the CLI in a fresh interpreter in which the extra's packages cannot be imported:
a finder placed first on ``sys.meta_path`` refuses them (and their submodules), as if they were
not installed, even though the test environment has them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import SAMPLE

BLOCKER = """
import importlib.abc, sys
BLOCKED = set(sys.argv[1].split(","))

class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Absent())
from mien.cli import main
raise SystemExit(main(sys.argv[2:]))
"""


def without(blocked: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``mien ARGS`` in an interpreter where the comma-separated packages are not installed."""
    return subprocess.run(
        [sys.executable, "-c", BLOCKER, blocked, *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_missing(proc: subprocess.CompletedProcess[str], command: str, extra: str) -> None:
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert f"mien: MissingExtra: {command} needs the {extra} extra" in proc.stderr, proc.stderr
    assert f"pip install 'mien[{extra}]'" in proc.stderr
    assert proc.stdout == ""


def test_the_blocker_makes_a_package_look_uninstalled() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            BLOCKER.replace("from mien.cli", "import fastapi\nfrom mien.cli"),
            "fastapi",
            "--version",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1 and "No module named 'fastapi'" in proc.stderr


SERVICE = "fastapi,uvicorn,starlette,python_multipart,multipart,sqlalchemy,alembic,psycopg"


def test_serve_without_the_service_extra(tmp_path: Path) -> None:
    proc = without(SERVICE, "serve", "--data-dir", str(tmp_path / "data"), "--port", "1")
    assert_missing(proc, "mien serve", "service")
    assert not (tmp_path / "data").exists()
    # any one missing package of the extra is named
    proc = without("uvicorn", "serve", "--data-dir", str(tmp_path / "data"), "--port", "1")
    assert_missing(proc, "mien serve", "service")
    assert "uvicorn is not installed" in proc.stderr


@pytest.mark.parametrize("sub", ["create", "list"])
def test_keys_without_the_service_extra(tmp_path: Path, sub: str) -> None:
    proc = without(SERVICE, "keys", sub, "--data-dir", str(tmp_path / "data"))
    assert_missing(proc, f"mien keys {sub}", "service")
    assert not (tmp_path / "data").exists()  # nothing created


def test_keys_on_postgresql_without_psycopg(tmp_path: Path) -> None:
    proc = without("psycopg", "keys", "list", "--db", "postgresql://nobody@127.0.0.1:1/mien")
    assert_missing(proc, "mien keys list", "service")
    assert "psycopg is not installed" in proc.stderr


def test_batch_parquet_and_ray_without_their_extras(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.jpg").write_bytes(SAMPLE.read_bytes())
    out = tmp_path / "out"
    proc = without("pyarrow", "batch", str(src), "-o", str(out), "--format", "parquet", "-q")
    assert_missing(proc, "mien batch --format parquet", "parquet")
    assert not out.exists()  # refused before the job folder is made, not after the first shard
    proc = without("ray", "batch", str(src), "-o", str(out), "--engine", "ray", "-q")
    assert_missing(proc, "mien batch --engine ray", "ray")
    assert not out.exists()
    # the plain install still runs the local engine with JSON Lines output
    proc = without(
        SERVICE + ",pyarrow,ray", "batch", str(src), "-o", str(out), "-q", "--features", "detection"
    )
    assert proc.returncode == 0, proc.stderr
    assert (out / "summary.json").exists()
