"""The CI smoke run of the fuzz targets (fuzz/, docs/fuzzing.md).

For each target (image decoding, video probing/decoding, the rules loader, the CLI argument
layer): its seeds are valid inputs that mien accepts; a fixed set of mutated inputs (the same on
every run) gives no finding other than the known ones in fuzz/known.py, reaches both mien's
accept and refuse paths, and stays within the time bound and a memory bound; every regression
input in fuzz/corpus/<target>/ replays without a finding (known unfixed ones are xfail). The
harness itself is checked too: an unexpected exception, a hang, a memory step and a wrong exit
code are caught.
The long runs are ``python -m fuzz.run TARGET --seconds N``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

from fuzz import TARGETS
from fuzz._common import (
    CORPUS,
    REPO,
    SHARED_DATA,
    corpus_files,
    load_target,
    minimize,
    mutate,
    mutated_inputs,
    peak_rss_mb,
    run_one,
)
from fuzz.known import KNOWN, XFAIL
from mien.errors import InvalidImageError, InvalidVideoError, RuleError

#: Mutated inputs per target: about 30 s for all four (measured on 2 shared cores, 11 s CPU).
MUTATED = {"image": 10000, "video": 1500, "rules": 3000, "cli": 10000}
SEED = 14

#: Seeds that mien refuses by design (the CLI's --version and --help exit with code 0).
REFUSED_SEEDS = {"cli": 2}


def _hex(data: bytes) -> str:
    return data[:48].hex(" ") + (" ..." if len(data) > 48 else "")


@pytest.mark.parametrize("name", list(TARGETS))
def test_seeds_are_small_inputs_that_mien_accepts(name: str) -> None:
    target = load_target(name)
    seeds = target.seeds()
    assert len(seeds) >= 4
    assert all(0 < len(s) <= target.MAX_LEN for s in seeds)
    accepted = []
    for s in seeds:
        found = run_one(target.fuzz_one, s, target.PER_INPUT_SECONDS)
        assert found is None, found.error
        accepted.append(target.fuzz_one(s))
    assert accepted.count(False) == REFUSED_SEEDS.get(name, 0), accepted


@pytest.mark.parametrize("name", list(TARGETS))
def test_mutated_inputs_give_no_new_finding(name: str, tmp_path: Path) -> None:
    target = load_target(name)
    seeds = target.seeds()
    outcomes: list[object] = []

    def one(data: bytes) -> None:
        outcomes.append(target.fuzz_one(data))

    rss_before = peak_rss_mb()
    started = time.monotonic()
    new: list[Any] = []
    known: set[str] = set()
    for k, data in enumerate(mutated_inputs(seeds, MUTATED[name], SEED, target.MAX_LEN)):
        found = run_one(one, data, target.PER_INPUT_SECONDS)
        if found is None:
            continue
        if found.signature in KNOWN.get(name, {}):
            known.add(found.signature)
            continue
        path = tmp_path / f"finding-{k}.bin"
        path.write_bytes(data)
        new.append(f"{path} ({_hex(data)}):\n{found.error}")
    elapsed = time.monotonic() - started
    for sig in sorted(known):
        warnings.warn(f"known finding of the {name} target: {sig}", stacklevel=1)
    assert not new, f"{len(new)} new finding(s); the first:\n{new[0]}"
    # the mutations reached both what mien accepts and what it refuses with its own errors
    assert outcomes.count(True) > 0 and outcomes.count(False) > 0, outcomes[:20]
    assert peak_rss_mb() - rss_before < 1024, "memory grew by over 1 GiB"
    assert elapsed < 120, f"{MUTATED[name]} inputs took {elapsed:.0f} s"


def _corpus_params() -> list[Any]:
    out = []
    for name in TARGETS:
        for path in corpus_files(name):
            out.append(pytest.param(name, path, id=f"{name}/{path.name}"))
    return out


def _replay_fresh(name: str, path: Path) -> str | None:
    """The finding's signature when ``path`` is replayed in a new process (the peak memory of
    this one has risen already), None when there is none."""
    cmd = [sys.executable, "-m", "fuzz.run", name, "--replay", str(path)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    last = proc.stdout.strip().splitlines()[-1]
    if proc.returncode == 0:
        assert last.endswith(": ok"), proc.stdout
        return None
    assert " FINDING " in last, proc.stdout + proc.stderr
    return last.split(" FINDING ", 1)[1].rsplit(" (", 1)[0]


@pytest.mark.parametrize(("name", "path"), _corpus_params())
def test_corpus_input_replays_without_finding(name: str, path: Path) -> None:
    target = load_target(name)
    rel = path.relative_to(CORPUS).as_posix()
    if XFAIL.get(rel) == "memory":
        sig = _replay_fresh(name, path)
        assert sig == "memory", f"{rel} no longer needs hundreds of MB: remove it from XFAIL"
        pytest.xfail(KNOWN[name]["memory"])
    found = run_one(target.fuzz_one, path.read_bytes(), target.PER_INPUT_SECONDS)
    if rel in XFAIL:
        # still the known finding (once fixed, this fails: remove it from fuzz/known.py)
        assert found is not None, f"{rel} no longer fails: remove it from fuzz/known.py XFAIL"
        assert found.signature == XFAIL[rel], found.error
        pytest.xfail(KNOWN[name][XFAIL[rel]])
    assert found is None, found.error


def test_every_known_finding_has_a_corpus_input() -> None:
    for rel, sig in XFAIL.items():
        assert (CORPUS / rel).is_file(), rel
        assert sig in KNOWN[rel.split("/")[0]], rel
    listed = {sig for sig in XFAIL.values()}
    assert listed == {sig for sigs in KNOWN.values() for sig in sigs}


# -- the harness catches what it should -------------------------------------------------------


def _boom(data: bytes) -> None:
    raise KeyError(data)


def test_an_unexpected_exception_is_a_finding_with_a_stable_signature() -> None:
    found = run_one(_boom, b"x", 5.0)
    assert found is not None
    assert found.signature == "KeyError at test_fuzz_smoke.py:_boom"
    assert "KeyError: b'x'" in found.error


def test_a_hang_is_cut_at_the_time_bound() -> None:
    def spin(data: bytes) -> None:
        while True:
            pass

    started = time.monotonic()
    found = run_one(spin, b"", 0.3)
    assert found is not None and found.signature.startswith("Hang at")
    assert time.monotonic() - started < 5


def test_the_mutator_is_deterministic_and_changes_inputs() -> None:
    seeds = [b"abcdefgh" * 8, b"0123456789" * 5]
    first = list(mutated_inputs(seeds, 200, 7, 100))
    assert first == list(mutated_inputs(seeds, 200, 7, 100))
    assert sum(m not in seeds for m in first) > 150
    assert all(len(m) <= 100 for m in first)


def test_the_minimizer_keeps_the_finding() -> None:
    def needs_xyz(data: bytes) -> None:
        if b"X" in data and b"Y" in data and b"Z" in data:
            raise ValueError("found")

    wanted = "ValueError at test_fuzz_smoke.py:needs_xyz"
    small = minimize(needs_xyz, b"aaaaXbbbbbbYccccccZdddd", wanted, 5.0)
    assert sorted(small) == sorted(b"XYZ")


@pytest.mark.parametrize(
    ("name", "attr", "documented", "other"),
    [
        ("image", "load_image", InvalidImageError("x"), RuntimeError("x")),
        ("video", "probe_video", InvalidVideoError("x"), IndexError("x")),
        ("rules", "parse_rules", RuleError("x"), KeyError("x")),
    ],
)
def test_targets_treat_only_documented_errors_as_expected(
    name: str, attr: str, documented: Exception, other: Exception, monkeypatch: Any
) -> None:
    target = load_target(name)
    data = target.seeds()[0]
    assert target.fuzz_one(data) is True

    def raise_(exc: Exception) -> Any:
        def f(*args: Any, **kwargs: Any) -> Any:
            raise exc

        return f

    monkeypatch.setattr(target, attr, raise_(documented))
    assert target.fuzz_one(data) is False
    monkeypatch.setattr(target, attr, raise_(other))
    with pytest.raises(type(other)):
        target.fuzz_one(data)


def test_cli_target_allows_only_exit_codes_0_and_2(monkeypatch: Any) -> None:
    target = load_target("cli")
    assert target.fuzz_one(b"--version") is False
    assert target.fuzz_one(b"analyze\x00--threshold\x00nan\x00photo.jpg") is False  # ValueError
    assert target.fuzz_one(b"analyze\x00--features\x00age\x00photo.jpg") is False  # refused
    assert target.fuzz_one(b"no-such-command") is False  # exit 2
    assert target.fuzz_one(b"check\x00--list-fields") is True

    class Exits3:
        def parse_args(self, argv: list[str]) -> Any:
            raise SystemExit(3)

    monkeypatch.setattr(target, "_parser", lambda: Exits3())
    with pytest.raises(AssertionError, match="code 3"):
        target.fuzz_one(b"models")


def test_run_module_records_a_session(tmp_path: Path) -> None:
    """``python -m fuzz.run`` (the plain mutator: no Atheris needed) writes its summary."""
    cmd = [sys.executable, "-m", "fuzz.run", "rules", "--engine", "mutate", "--seconds", "2"]
    cmd += ["--work", str(tmp_path)]
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, timeout=120)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["target"] == "rules" and summary["engine"] == "mutate"
    assert summary["executions"] > 10 and summary["new_findings"] == []
    assert len(list((tmp_path / "findings").iterdir())) == 0


def test_replay_of_fixed_findings_is_clean() -> None:
    """``--replay`` of the three video findings, now fixed: no finding, exit 0."""
    paths = [CORPUS / "video" / n for n in ("unknown-codec-tag.mp4", "unknown-audio-codec.mkv")]
    cmd = [sys.executable, "-m", "fuzz.run", "video", "--replay", *map(str, paths)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "FINDING" not in proc.stdout and "AttributeError" not in proc.stderr


def test_mutate_respects_max_len() -> None:
    import random

    rng = random.Random(1)
    assert all(len(mutate(b"x" * 90, rng, [b"y" * 200], 64)) <= 64 for _ in range(200))


@pytest.mark.parametrize("name", ["image", "video"])
def test_seeds_fall_back_to_synthetic_media_without_shared_data(
    name: str, monkeypatch: Any
) -> None:
    """Without ../shared/data the image seeds come from the bundled sample and the video seeds
    from frames made here; they are still inputs mien accepts."""
    target = load_target(name)
    with_data = target.seeds()
    monkeypatch.setattr(target, "shared", lambda *parts: None)
    target._seeds.cache_clear()
    try:
        fallback = target.seeds()
        assert len(fallback) >= 4
        if SHARED_DATA.exists():
            assert set(fallback) != set(with_data)
        assert all(target.fuzz_one(s) is True for s in fallback)
    finally:
        target._seeds.cache_clear()


def test_an_input_that_needs_hundreds_of_mb_is_a_finding() -> None:
    import numpy as np

    from fuzz._common import MEMORY_STEP_MB

    def current_mb() -> float:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * 4096 / 2**20

    # enough to lift the peak (which only rises) by more than the step
    need = int(peak_rss_mb() - current_mb() + MEMORY_STEP_MB + 64)

    def greedy(data: bytes) -> None:
        block = np.ones(need * 2**20, np.uint8)
        assert block[-1] == 1

    found = run_one(greedy, b"", 30.0)
    assert found is not None and found.signature == "memory", found
