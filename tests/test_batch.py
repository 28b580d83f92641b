"""``mien batch``: sharding, atomic commits and resume after a kill, errors, manifests, Parquet.

Real models on real photos of ../shared/data, copied into a temporary folder; the CLI runs as a
subprocess (as a user runs it) so it can be killed in the middle of a run.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mien.batch.inputs import BatchInputError, list_items
from mien.batch.job import JobFolder
from mien.batch.worker import redacted_relpath
from mien.media.discover import natural_key

from .conftest import shared

FACEMASK = ("facemask_kaggle_voc", "images")


def mien(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mien", *args], capture_output=True, text=True, timeout=timeout
    )


def photos(folder: Path, n: int, *, nested: int = 0) -> list[str]:
    """Copy the first ``n`` facemask photos into ``folder`` (``nested`` of them in sub/)."""
    src = sorted(
        (p for p in shared(*FACEMASK).iterdir() if p.suffix.lower() in (".jpg", ".png")),
        key=lambda p: p.name,
    )[:n]
    if len(src) < n:
        pytest.skip(f"needs {n} photos in {shared(*FACEMASK)}")
    keys = []
    for i, p in enumerate(src):
        rel = Path("sub", p.name) if i < nested else Path(p.name)
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, folder / rel)
        keys.append(rel.as_posix())
    return keys


def records(out: Path) -> list[dict]:
    """Every record of the committed shards, in shard order."""
    recs = []
    for shard in sorted((out / "shards").glob("shard-*.jsonl")):
        recs += [json.loads(line) for line in shard.read_text().splitlines()]
    return recs


def ledger(out: Path) -> list[dict]:
    path = out / "ledger.jsonl"
    if not path.exists():
        return []
    lines = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):  # a line cut by the kill
            lines.append(json.loads(line))
    return lines


@contextlib.contextmanager
def sigint_as_in_a_terminal() -> Iterator[None]:
    """Children started inside this block get SIGINT's default disposition, as in a terminal.

    A test runner started as a background job of a script (``pytest ... &``: a non-interactive
    shell then ignores SIGINT and SIGQUIT for it) passes SIG_IGN on to every child, and a
    Python started with SIGINT ignored installs no KeyboardInterrupt handler: ``mien batch``
    would rightly ignore the Ctrl-C below, run to the end and exit 0. A handler set here is
    reset to SIG_DFL by exec in the child, whose Python then installs its own.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)


def test_kill_then_rerun_resumes_with_no_duplicate_and_no_missing_record(tmp_path) -> None:
    src = tmp_path / "in"
    keys = photos(src, 40, nested=8)
    args = ["--features", "detection,landmarks", "--workers", "2", "--shard-size", "3", "-q"]
    clean = mien("batch", str(src), "-o", str(tmp_path / "clean"), *args)
    assert clean.returncode == 0, clean.stderr
    expected = records(tmp_path / "clean")
    assert sorted(r["key"] for r in expected) == sorted(keys)

    out = tmp_path / "resumed"
    cmd = [sys.executable, "-m", "mien", "batch", str(src), "-o", str(out), *args]
    # kill -9 of everything; `kill PID` of the driver alone; Ctrl-C (SIGINT to the group).
    # Each run is stopped once it has committed 2 more shards than there were at its start.
    for sig, group in ((signal.SIGKILL, True), (signal.SIGTERM, False), (signal.SIGINT, True)):
        start = len(list((out / "shards").glob("shard-*.jsonl"))) if out.exists() else 0
        with sigint_as_in_a_terminal():
            proc = subprocess.Popen(
                cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
            )
        deadline = time.monotonic() + 300
        while len({e["shard"] for e in ledger(out)}) < start + 2 and proc.poll() is None:
            assert time.monotonic() < deadline, "the batch committed no shard in 300 s"
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be stopped"
        n_seen = len({e["shard"] for e in ledger(out)})
        seen = f"{sig.name} sent at {n_seen} committed shard(s), {start} at start"
        if group:
            os.killpg(proc.pid, sig)  # the driver and its workers, as a terminal's Ctrl-C does
        else:
            os.kill(proc.pid, sig)
        _, err = proc.communicate(timeout=120)
        if sig != signal.SIGKILL:
            assert proc.returncode == 130, (seen, err)
            assert b"interrupted" in err and b"rerun the same command" in err, (seen, err)
        committed = len(list((out / "shards").glob("shard-*.jsonl")))
        assert start + 2 <= committed, seen
        assert len(records(out)) < 40, seen  # stopped in the middle

    rerun = mien("batch", str(src), "-o", str(out), *args[:-1])
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming" in rerun.stderr and "skipped (already done)" in rerun.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["skipped"] >= 18 and summary["skipped"] + summary["done"] == 40
    got = records(out)
    assert len({r["key"] for r in got}) == len(got) == 40  # no duplicate, none missing
    assert got == expected  # same records, same order as the uninterrupted run
    assert not list((out / "shards").glob(".*.part"))  # no temporary file left behind
    assert_shards_tile(out, 40)


def assert_shards_tile(out: Path, n: int) -> None:
    """The committed shards (ledger and files) hold the inputs 0..n-1, each exactly once."""
    entries = {e["shard"]: e["files"] for e in ledger(out)}
    files = {
        int(p.stem.split("-")[1]): len(p.read_text().splitlines())
        for p in (out / "shards").glob("shard-*.jsonl")
    }
    assert entries == files
    at = 0
    for start in sorted(entries):
        assert start == at, (start, at)  # no gap, no overlap
        at += entries[start]
    assert at == n


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def test_a_worker_killed_mid_run_does_not_stop_the_batch(tmp_path) -> None:
    if not Path("/proc/self/stat").exists():
        pytest.skip("needs /proc to find the worker processes")
    src = tmp_path / "in"
    photos(src, 16)
    args = ["--features", "detection", "--workers", "2", "--shard-size", "2"]
    clean = mien("batch", str(src), "-o", str(tmp_path / "clean"), *args, "-q")
    assert clean.returncode == 0, clean.stderr
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mien", "batch", str(src), "-o", str(out), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while not ledger(out) and proc.poll() is None:
        assert time.monotonic() < deadline, "the batch committed no shard in 300 s"
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before a worker could be killed"
    # forkserver: driver -> fork server -> workers (spawn: driver -> workers)
    workers = [g for c in _children(proc.pid) for g in _children(c)] or _children(proc.pid)
    assert workers
    os.kill(workers[0], signal.SIGKILL)  # as the out-of-memory killer would
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert b"a worker process died; retrying" in err
    assert records(out) == records(tmp_path / "clean")  # every record, none lost or doubled


def test_corrupt_files_are_recorded_and_the_rest_goes_on(tmp_path) -> None:
    src = tmp_path / "in"
    keys = photos(src, 5)
    good = (src / keys[0]).read_bytes()
    (src / "garbage.jpg").write_bytes(b"this is not a picture")
    (src / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (src / "empty.jpg").write_bytes(b"")
    (src / "notes.txt").write_text("not an image suffix: not listed")
    proc = mien("batch", str(src), "-o", str(tmp_path / "out"), "--workers", "2", "-q")
    assert proc.returncode == 1, proc.stderr
    recs = {r["key"]: r for r in records(tmp_path / "out")}
    assert set(recs) == {*keys, "garbage.jpg", "truncated.jpg", "empty.jpg"}
    errors = [json.loads(x) for x in (tmp_path / "out/errors.jsonl").read_text().splitlines()]
    assert {e["key"] for e in errors} == {"garbage.jpg", "truncated.jpg", "empty.jpg"}
    for e in errors:
        assert e["code"] == "InvalidImage" and e["message"]
        assert recs[e["key"]]["error"]["code"] == "InvalidImage"
    for key in keys:
        assert "error" not in recs[key] and recs[key]["width"] > 0
    assert sum(len(recs[k]["faces"]) for k in keys) > 0
    summary = json.loads((tmp_path / "out/summary.json").read_text())
    assert (summary["done"], summary["failed"], summary["skipped"]) == (8, 3, 0)


def test_empty_input_and_a_glob_that_matches_nothing(tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    proc = mien("batch", str(tmp_path / "empty"), "-o", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert "0 file(s) done" in proc.stderr
    assert records(tmp_path / "out") == []
    assert json.loads((tmp_path / "out/summary.json").read_text())["total"] == 0
    proc = mien("batch", str(tmp_path / "empty" / "*.jpg"), "-o", str(tmp_path / "out2"), "-q")
    assert proc.returncode == 0, proc.stderr
    proc = mien("batch", str(tmp_path / "missing"), "-o", str(tmp_path / "out3"))
    assert proc.returncode == 2 and "no such folder" in proc.stderr


def test_manifests_txt_and_csv(tmp_path) -> None:
    src = tmp_path / "data"
    keys = photos(src, 4)
    lists = tmp_path / "lists"
    lists.mkdir()
    txt = lists / "todo.txt"
    txt.write_text(
        "# comment lines and blank lines are ignored\n\n"
        f"../data/{keys[0]}\n"
        f"{src / keys[1]}\n"
        f"file://{src / keys[2]}\n"
        f"../data/{keys[0]}\n"  # listed twice: processed once
        "s3://bucket/photo.jpg\n"
        "../data/missing.jpg\n"
        "fifo.jpg\n"  # a named pipe would block a reader forever
    )
    os.mkfifo(lists / "fifo.jpg")
    proc = mien("batch", str(txt), "-o", str(tmp_path / "out"), "--features", "detection", "-q")
    assert proc.returncode == 1, proc.stderr
    recs = {r["key"]: r for r in records(tmp_path / "out")}
    assert len(recs) == 6
    assert recs["fifo.jpg"]["error"]["code"] == "UnsupportedMedia"
    assert recs[f"../data/{keys[0]}"]["source"] == str(src / keys[0])
    assert recs[f"file://{src / keys[2]}"]["source"] == str(src / keys[2])
    assert all("faces" in recs[k] for k in (f"../data/{keys[0]}", str(src / keys[1])))
    assert recs["s3://bucket/photo.jpg"]["error"]["code"] == "UnsupportedMedia"
    assert "file://" in recs["s3://bucket/photo.jpg"]["error"]["message"]
    assert recs["../data/missing.jpg"]["error"]["code"] == "NotFound"

    csv = lists / "todo.csv"
    csv.write_text(f"id,path\n1,../data/{keys[3]}\n2,../data/{keys[1]}\n")
    proc = mien("batch", str(csv), "-o", str(tmp_path / "out_csv"), "--features", "detection")
    assert proc.returncode == 0, proc.stderr
    assert [r["key"] for r in records(tmp_path / "out_csv")] == sorted(
        [f"../data/{keys[3]}", f"../data/{keys[1]}"], key=natural_key
    )
    (lists / "bad.csv").write_text("name\nx.jpg\n")
    proc = mien("batch", str(lists / "bad.csv"), "-o", str(tmp_path / "out_bad"))
    assert proc.returncode == 2 and "'path' column" in proc.stderr


def test_resume_with_other_parameters_or_inputs_is_refused(tmp_path) -> None:
    src = tmp_path / "in"
    keys = photos(src, 3)
    out = str(tmp_path / "out")
    base = ["batch", str(src), "-o", out, "--features", "detection", "--shard-size", "2", "-q"]
    assert mien(*base).returncode == 0
    before = records(tmp_path / "out")
    proc = mien(*base, "--threshold", "0.6")
    assert proc.returncode == 2
    assert "other parameters" in proc.stderr and "threshold" in proc.stderr
    proc = mien(*base[:-3], "--shard-size", "3")  # shard sizes do not change the records
    assert proc.returncode == 0 and "resuming" in proc.stderr
    shutil.copy(src / keys[0], src / "new.jpg")
    proc = mien(*base)
    assert proc.returncode == 2 and "input changed" in proc.stderr
    assert records(tmp_path / "out") == before  # nothing was touched
    # Engine, workers and threads do not change the records: resuming with others is fine.
    os.unlink(src / "new.jpg")
    assert mien(*base, "--workers", "1", "--threads", "2").returncode == 0
    # A non-empty folder that holds no job is not written into.
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("user data")
    proc = mien("batch", str(src), "-o", str(other))
    assert proc.returncode == 2 and "holds no mien batch job" in proc.stderr
    assert [p.name for p in other.iterdir()] == ["keep.txt"]  # nothing added to it
    # Two runs on one job folder at once: the second is refused while the first holds it.
    with JobFolder(out, parquet=False, n_items=3):
        proc = mien(*base)
    assert proc.returncode == 3 and "another mien batch is running" in proc.stderr
    assert mien(*base).returncode == 0  # released


def test_refused_feature_reads_nothing(tmp_path) -> None:
    (tmp_path / "in").mkdir()
    proc = mien("batch", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--features", "age")
    assert proc.returncode == 2 and "refused" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_parquet_output_is_one_row_per_face_and_reads_as_one_table(tmp_path) -> None:
    pq = pytest.importorskip("pyarrow.parquet", reason="needs pyarrow (the parquet extra)")
    src = tmp_path / "in"
    keys = photos(src, 5)
    # sorted first, these three make shard 0: a shard without a single face
    (src / "a1_broken.jpg").write_bytes(b"\xff\xd8 not really")
    shutil.copy(shared("dlib_examples_faces", "images", "dogs.jpg"), src / "a2_dogs.jpg")
    (src / "a3_empty.png").write_bytes(b"")
    out = tmp_path / "out"
    proc = mien("batch", str(src), "-o", str(out), "--format", "parquet", "--shard-size", "3", "-q")
    assert proc.returncode == 1, proc.stderr
    files = sorted((out / "parquet").glob("shard-*.parquet"))
    assert len(files) == 3
    schemas = [pq.read_schema(f) for f in files]
    assert all(s.equals(schemas[0]) for s in schemas)  # one schema, faces or not
    table = pq.read_table(out / "parquet")
    recs = records(out)
    assert not any(r.get("faces") for r in recs[:3])
    n_faces = sum(len(r.get("faces", [])) for r in recs)
    empty = [r["key"] for r in recs if not r.get("faces")]
    assert empty[:3] == ["a1_broken.jpg", "a2_dogs.jpg", "a3_empty.png"]
    assert table.num_rows == n_faces + len(empty)
    rows = table.to_pylist()
    assert {r["key"] for r in rows} == {*keys, "a1_broken.jpg", "a2_dogs.jpg", "a3_empty.png"}
    broken = [r for r in rows if r["key"] == "a1_broken.jpg"]
    assert broken[0]["error_code"] == "InvalidImage" and broken[0]["face_index"] is None
    dogs = [r for r in rows if r["key"] == "a2_dogs.jpg"]
    assert dogs[0]["error_code"] is None and dogs[0]["width"] > 0 and dogs[0]["x1"] is None
    faces = [r for r in rows if r["face_index"] is not None]
    assert len(faces) == n_faces > 0
    first = next(r for r in recs if r.get("faces"))
    row = next(r for r in faces if r["key"] == first["key"] and r["face_index"] == 0)
    assert row["x1"] == pytest.approx(first["faces"][0]["box"][0], abs=1e-3)
    assert row["yaw"] == pytest.approx(first["faces"][0]["head_pose"]["yaw"], abs=1e-3)
    assert row["right_eye_x"] == pytest.approx(
        first["faces"][0]["landmarks"]["right_eye"][0], abs=1e-3
    )
    assert json.loads(row["attributes"]) == first["faces"][0]["attributes"]


def test_redact_task_writes_redacted_copies_and_reports(tmp_path) -> None:
    pytest.importorskip("mien.redact.image", reason="redaction is not in this build")
    import numpy as np
    from PIL import Image

    from mien.redact.options import REDACT_THRESHOLD

    src = tmp_path / "in"
    keys = photos(src, 3, nested=1)
    out = tmp_path / "out"
    proc = mien("batch", str(src), "-o", str(out), "--task", "redact", "--method", "fill", "-q")
    assert proc.returncode == 0, proc.stderr
    recs = {r["key"]: r for r in records(out)}
    assert set(recs) == set(keys)
    for key in keys:
        rec = recs[key]
        target = out / "redacted" / key
        assert rec["output"] == str(target) and target.exists()
        assert rec["threshold"] == REDACT_THRESHOLD and rec["options"]["method"] == "fill"
        if rec["regions"]:
            x1, y1, x2, y2 = (round(v) for v in rec["regions"][0]["box"])
            cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
            pixel = np.asarray(Image.open(target).convert("RGB"))[cy, cx]
            assert pixel.max() < 40  # the face centre is filled black (JPEG/PNG noise aside)
    assert sum(r["counts"]["regions"] for r in recs.values()) > 0


def test_inputs_keys_sorting_and_globs(tmp_path) -> None:
    for rel in ("b/img10.jpg", "b/img2.jpg", "a.png", ".hidden.jpg", "c/readme.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    assert [i.key for i in list_items(str(tmp_path))] == ["a.png", "b/img2.jpg", "b/img10.jpg"]
    assert [i.key for i in list_items(str(tmp_path / "b" / "*.jpg"))] == ["img2.jpg", "img10.jpg"]
    assert [i.key for i in list_items(str(tmp_path / "**" / "*.jpg"))] == [
        "b/img2.jpg",
        "b/img10.jpg",
    ]
    # the job's own output folder, inside the input, is never read back
    (tmp_path / "out" / "redacted").mkdir(parents=True)
    (tmp_path / "out" / "redacted" / "a.png").write_bytes(b"x")
    assert len(list_items(str(tmp_path), exclude=tmp_path / "out")) == 3
    with pytest.raises(BatchInputError):
        list_items(str(tmp_path / "a.png"))  # a single picture is not a batch input
    assert redacted_relpath("../../etc/passwd.jpg") == "etc/passwd.jpg"
    assert redacted_relpath("/abs/x.heic") == "abs/x.heic.png"
    assert redacted_relpath("file:///data/y.png") == "data/y.png"


def test_ray_engine_without_ray_is_a_clear_error(monkeypatch) -> None:
    from mien.batch.ray_engine import run_ray
    from mien.batch.worker import WorkerConfig
    from mien.errors import MissingExtraError
    from mien.options import AnalyzerOptions

    monkeypatch.setitem(sys.modules, "ray", None)  # as if the 'ray' extra were not installed
    config = WorkerConfig("analyze", AnalyzerOptions(), 1, "out")
    with pytest.raises(MissingExtraError, match=r"mien\[ray\]"):
        next(run_ray([(0, [])], config, 1))


def test_python_api_run_batch_summary_and_commit_hook(tmp_path) -> None:
    from mien.batch import BatchOptions, run_batch
    from mien.options import AnalyzerOptions

    src = tmp_path / "in"
    keys = photos(src, 5)
    options = BatchOptions(
        input=str(src),
        output=str(tmp_path / "out"),
        workers=1,
        shard_size=2,
        analyzer=AnalyzerOptions(features="detection"),
    )
    committed: list[int] = []
    summary = run_batch(options, progress=False, on_commit=lambda e: committed.append(e.shard))
    assert committed == [0, 2, 4]  # shards are named by their first input
    assert (summary.total, summary.done, summary.failed, summary.skipped) == (5, 5, 0, 0)
    assert summary.faces == sum(len(r["faces"]) for r in records(tmp_path / "out")) > 0
    assert [r["key"] for r in records(tmp_path / "out")] == sorted(keys, key=natural_key)
    again = run_batch(options, progress=False, log=lambda _m: None)
    assert (again.done, again.skipped, again.shards_committed) == (0, 5, 3)


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        kids = _children(todo.pop())
        out += kids
        todo += kids
    return out


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie awaiting its reaper has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _wait_for_ledger(out: Path, proc: subprocess.Popen, n: int = 1) -> None:
    deadline = time.monotonic() + 300
    while len(ledger(out)) < n and proc.poll() is None:
        assert time.monotonic() < deadline, "the batch committed no shard in 300 s"
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"


def test_a_shard_is_committed_after_shard_seconds_and_kill_9_keeps_it(tmp_path) -> None:
    """Shards far larger than the job are still committed on time (--shard-seconds); kill -9 of
    the driver and its workers after the first commit loses only uncommitted work; the rerun
    does the rest, once: every photo exactly once, committed shards neither redone nor
    rewritten. 160 photos and a 1 s limit, so that even a quiet machine, which detects faces on
    24 of these photos in under 2 s, is still working when the first shard is committed."""
    n = 160
    src = tmp_path / "in"
    keys = photos(src, n)
    out = tmp_path / "out"
    args = ["--features", "detection", "--workers", "2", "--shard-size", "1000"]
    cmd = [sys.executable, "-m", "mien", "batch", str(src), "-o", str(out), *args, "-q"]
    proc = subprocess.Popen(
        [*cmd, "--shard-seconds", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    _wait_for_ledger(out, proc)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver, the fork server and the workers
    proc.communicate(timeout=60)
    kept = {p.name: p.stat() for p in (out / "shards").glob("shard-*.jsonl")}
    first = records(out)
    assert 0 < len(first) < n  # the time limit cut a shard of the 1000-file size limit
    rerun = mien("batch", str(src), "-o", str(out), *args, "--shard-seconds", "600")
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(first)} of {n} file(s) already done" in rerun.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["skipped"], summary["done"]) == (len(first), n - len(first))  # none redone
    for name, st in kept.items():  # the committed shards were not rewritten
        now = (out / "shards" / name).stat()
        assert (now.st_ino, now.st_mtime_ns) == (st.st_ino, st.st_mtime_ns), name
    got = records(out)
    assert [r["key"] for r in got] == sorted(keys, key=natural_key)  # each once, in order
    assert got[: len(first)] == first
    assert all("faces" in r for r in got)
    assert_shards_tile(out, n)


def test_workers_exit_when_the_batch_is_killed_with_sigkill(tmp_path) -> None:
    if not Path("/proc/self/stat").exists():
        pytest.skip("needs /proc to find the worker processes")
    src = tmp_path / "in"
    photos(src, 16)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mien",
            "batch",
            str(src),
            "-o",
            str(out),
            "-q",
            "--features",
            "detection",
            "--workers",
            "2",
            "--shard-size",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    _wait_for_ledger(out, proc)
    helpers = _descendants(proc.pid)  # fork server, workers, resource tracker
    try:
        assert len(helpers) >= 3, helpers
        os.kill(proc.pid, signal.SIGKILL)  # the driver alone: nothing else is signalled
        proc.wait(timeout=30)
        deadline = time.monotonic() + 20
        while any(_running(p) for p in helpers) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [p for p in helpers if _running(p)]
        assert not left, f"processes left running after kill -9 of the batch: {left}"
    finally:
        for p in helpers:
            with contextlib.suppress(OSError):
                if _running(p):
                    os.kill(p, signal.SIGKILL)


def test_batch_redaction_covers_like_mien_redact() -> None:
    """``mien batch --task redact`` and ``mien redact`` cover a face alike by default: the
    covering options come from RedactOptions (batch grew boxes 1.3x while redact grew them
    1.8x, so a batch covered less of each face)."""
    from mien.cli import build_parser
    from mien.cli.common import redact_options_from_args
    from mien.redact.options import RedactOptions

    parser = build_parser()
    batch = parser.parse_args(["batch", "in/", "-o", "out/", "--task", "redact"])
    single = parser.parse_args(["redact", "in.jpg", "-o", "out.jpg"])
    assert redact_options_from_args(batch) == redact_options_from_args(single) == RedactOptions()


def test_a_redaction_worker_loads_the_detector_once(tmp_path, monkeypatch) -> None:
    """A worker process of ``mien redact DIR`` loads CenterFace once, not once for a model
    list and again for redact_image's shared detector."""
    from mien.batch.inputs import BatchItem
    from mien.batch.worker import Worker, WorkerConfig
    from mien.detect import centerface
    from mien.options import AnalyzerOptions
    from mien.redact import RedactOptions
    from mien.redact.image import _detector

    loads: list[int] = []
    real_init = centerface.CenterFace.__init__

    def counting(self, *args, **kwargs) -> None:
        loads.append(1)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(centerface.CenterFace, "__init__", counting)
    _detector.cache_clear()
    keys = photos(tmp_path / "in", 2)
    config = WorkerConfig("redact", AnalyzerOptions(), 1, str(tmp_path / "out"), RedactOptions())
    worker = Worker(config)
    records = [worker.process(BatchItem(k, str(tmp_path / "in" / k))) for k in keys]
    assert all("error" not in r for r in records), records
    assert [m["name"] for m in records[0]["models"]] == ["centerface"]
    assert len(loads) == 1
    _detector.cache_clear()
