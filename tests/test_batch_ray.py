"""``mien batch --engine ray`` on a local Ray: the same records as the local engine, and resume
across engines (Ray start takes 10-20 s, so this stays small: 2 actors, 10 photos)."""

from __future__ import annotations

import json
import os

import pytest

from .test_batch import mien, photos, records

pytest.importorskip("ray.data", reason="needs Ray Data (pip install 'mien[ray]')")


def test_ray_engine_gives_the_local_engine_records_and_resumes_its_job(tmp_path) -> None:
    src = tmp_path / "in"
    keys = photos(src, 10, nested=3)
    (src / "broken.jpg").write_bytes(b"not a picture")
    common = ["--workers", "2", "--shard-size", "3", "--format", "parquet", "-q"]
    local = mien("batch", str(src), "-o", str(tmp_path / "local"), *common)
    assert local.returncode == 1, local.stderr
    ray = mien("batch", str(src), "-o", str(tmp_path / "ray"), "--engine", "ray", *common)
    assert ray.returncode == 1, ray.stderr
    expected, got = records(tmp_path / "local"), records(tmp_path / "ray")
    assert [r["key"] for r in got] == sorted([*keys, "broken.jpg"], key=_nat)
    assert got == expected
    for name in ("local", "ray"):  # byte-identical shards, and the same errors file
        assert (tmp_path / name / "errors.jsonl").read_text().count("InvalidImage") == 1
    for shard in (tmp_path / "local" / "shards").glob("shard-*.jsonl"):
        assert (tmp_path / "ray" / "shards" / shard.name).read_bytes() == shard.read_bytes()
    summary = json.loads((tmp_path / "ray" / "summary.json").read_text())
    assert summary["engine"] == "ray" and summary["done"] == 11 and summary["failed"] == 1

    # A job started by the local engine is finished by Ray: only the missing shards run.
    part = tmp_path / "mixed"
    (tmp_path / "local").rename(part)
    for shard in sorted((part / "shards").glob("shard-*.jsonl"))[2:]:
        shard.unlink()
    (part / "ledger.jsonl").write_text(
        "\n".join((part / "ledger.jsonl").read_text().splitlines()[:2]) + "\n"
    )
    rest = mien("batch", str(src), "-o", str(part), "--engine", "ray", *common[:-1])
    assert rest.returncode == 1, rest.stderr
    assert "6 skipped (already done)" in rest.stderr
    assert records(part) == expected


def _nat(key: str):
    from mien.media.discover import natural_key

    return natural_key(key)


def test_ray_usage_stats_are_off_unless_the_user_set_them(monkeypatch) -> None:
    from mien.batch.ray_engine import _import_ray

    monkeypatch.delenv("RAY_USAGE_STATS_ENABLED", raising=False)
    _import_ray()
    assert os.environ["RAY_USAGE_STATS_ENABLED"] == "0"
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "1")
    _import_ray()
    assert os.environ["RAY_USAGE_STATS_ENABLED"] == "1"  # the user's choice is kept
