"""``mien redact DIR --workers N``: pictures in the batch engine's worker processes, with the
same outputs, report and exit code as one process, and no worker left behind when stopped."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from mien.media.image import load_image
from tests.conftest import SAMPLE, shared

FACEMASK = ("facemask_kaggle_voc", "images")


def mien(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mien", *args], capture_output=True, text=True, timeout=600
    )


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _report(path: Path, out: Path) -> dict[str, Any]:
    """The folder report with the output folder's name and the creation times taken out."""
    doc = json.loads(path.read_text().replace(str(out), "OUT"))
    for r in doc["reports"]:
        del r["created"]
    return doc


def test_workers_2_write_the_one_process_pixels_and_report(tmp_path: Path) -> None:
    src = tmp_path / "in"
    (src / "a" / "b").mkdir(parents=True)
    (src / "a" / "b" / "astro.jpg").write_bytes(SAMPLE.read_bytes())
    Image.open(SAMPLE).save(src / "top.png")
    Image.open(SAMPLE).save(src / "anim.gif")  # written as .png
    (src / "broken.jpg").write_bytes(SAMPLE.read_bytes()[:300])  # corrupt: reported, no output
    for p in sorted(shared(*FACEMASK).glob("*.jpg"))[:3]:
        shutil.copy(p, src / p.name)
    runs = {}
    for n in ("1", "2"):
        out, rep = tmp_path / f"out{n}", tmp_path / f"report{n}.json"
        proc = mien("redact", str(src), "-o", str(out), "--report", str(rep), "--workers", n)
        assert proc.returncode == 1, proc.stderr  # broken.jpg
        assert f"{src / 'broken.jpg'}: " in proc.stderr
        runs[n] = (out, _report(rep, out), proc.stderr.replace(str(out), "OUT"))
    (out1, doc1, err1), (out2, doc2, err2) = runs["1"], runs["2"]
    assert _files(out1) == _files(out2)
    assert "broken.jpg" not in _files(out2) and "a/b/astro.jpg" in _files(out2)
    assert "anim.png" in _files(out2) and len(_files(out2)) == 6
    for name in _files(out1):
        assert np.array_equal(load_image(out1 / name).rgb, load_image(out2 / name).rgb), name
    assert doc1 == doc2
    assert [e["source"] for e in doc2["errors"]] == [str(src / "broken.jpg")]
    assert len(doc2["reports"]) == 6 and sum(r["counts"]["regions"] for r in doc2["reports"]) > 6
    assert sorted(err1.splitlines()) == sorted(err2.splitlines())  # the same lines


def test_workers_below_one_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "p.jpg").write_bytes(SAMPLE.read_bytes())
    proc = mien("redact", str(tmp_path), "-o", str(tmp_path / "o"), "--workers", "0")
    assert proc.returncode == 2 and "--workers" in proc.stderr


def _children(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        kids = {c for c, pp in parents.items() if pp == p}
        found |= kids
        todo.extend(kids)
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc for the worker processes")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_folder_run_leaves_no_worker_and_no_partial_output(
    tmp_path: Path, sig: signal.Signals
) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for p in sorted(shared(*FACEMASK).glob("*.jpg"))[:60]:
        shutil.copy(p, src / p.name)
    cmd = [sys.executable, "-m", "mien", "redact", str(src), "-o", str(out), "-q"]
    proc = subprocess.Popen(
        [*cmd, "--workers", "2"], stderr=subprocess.PIPE, start_new_session=True
    )
    deadline = time.monotonic() + 300
    kids: set[int] = set()
    while proc.poll() is None and not (out.is_dir() and len(_files(out)) >= 3):
        kids |= _children(proc.pid)
        assert time.monotonic() < deadline, "no picture redacted in 300 s"
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be stopped"
    kids |= _children(proc.pid)
    assert len(kids) >= 2, kids  # the worker processes were there
    os.kill(proc.pid, sig)  # the parent alone: its workers must follow it
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    deadline = time.monotonic() + 30
    while alive := [k for k in kids if _alive(k)]:
        assert time.monotonic() < deadline, f"workers {alive} outlived the stopped run"
        time.sleep(0.1)
    written = _files(out)
    assert 3 <= len(written) < 60
    for name in written:  # every output is a whole redacted picture, nothing partial
        assert name.endswith(".jpg"), name
        assert load_image(out / name).rgb.size > 0


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
