"""Run one fuzz target for a while: ``python -m fuzz.run TARGET --seconds N`` (docs/fuzzing.md).

With Atheris installed (the default engine) the target runs under libFuzzer's coverage-guided
mutator in a worker process, started over after a hang (``-timeout``) or a memory blow-up
(``-rss_limit_mb``) until the time is used. An exception that is a finding is recorded and the
run goes on (one file per distinct finding). Without Atheris, ``--engine mutate`` runs the plain
seeded mutator of :mod:`fuzz._common` for the same time.

Everything a run makes goes under ``--work`` (default ``/tmp/mien-fuzz/TARGET``): ``corpus/``
(seeds, the regression corpus and what the fuzzer found interesting), ``findings/`` (each
finding's input and traceback), ``log.txt``, and ``summary.json`` with the duration, the number
of executions and the findings. A finding's input is reproduced with
``python -m fuzz.run TARGET --replay FILE``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

from fuzz import INSTRUMENT, TARGETS
from fuzz._common import (
    MEMORY_STEP_MB,
    REPO,
    corpus_files,
    load_target,
    minimize,
    mutate,
    peak_rss_mb,
    run_one,
    signature,
)
from fuzz.known import KNOWN


def _record(findings: Path, data: bytes, kind: str, text: str) -> bool:
    """Write a finding (input + description) once per signature; True when it is new."""
    findings.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha1(kind.encode()).hexdigest()[:12]
    stem = findings / f"finding-{key}"
    if stem.with_suffix(".bin").exists():
        return False
    stem.with_suffix(".bin").write_bytes(data)
    stem.with_suffix(".txt").write_text(f"{kind}\n\n{text}\n")
    return True


def _dict_file(target: Any, path: Path) -> Path | None:
    words = getattr(target, "DICTIONARY", ())
    if not words:
        return None
    lines = ['"' + "".join(f"\\x{b:02x}" for b in w) + '"' for w in words if w]
    path.write_text("\n".join(lines) + "\n")
    return path


def _worker(args: argparse.Namespace) -> None:
    """Inside the worker process: instrument, load the target and hand over to libFuzzer."""
    import atheris

    warnings.simplefilter("ignore")  # Pillow's metadata warnings would fill the log
    include = INSTRUMENT[args.target]

    def load() -> Any:
        target = load_target(args.target)
        for data in target.seeds():  # imports what the target touches lazily (Pillow plugins)
            target.fuzz_one(data)
        return target

    for name in list(sys.modules):
        if name.split(".")[0] in include:
            del sys.modules[name]  # imported again below, instrumented
    with atheris.instrument_imports(include=list(include)):
        target = load()
    work = Path(args.work)
    findings = work / "findings"

    def test_one_input(data: bytes) -> None:
        peak = peak_rss_mb()
        try:
            target.fuzz_one(data)
        except Exception as exc:
            kind = signature(exc)
            if _record(findings, data, kind, traceback.format_exc()):
                print(f"FINDING {kind}", file=sys.stderr, flush=True)
            return
        grown = peak_rss_mb() - peak
        text = f"memory: the peak grew by {grown:.0f} MiB"
        # one input needed hundreds of MB (see fuzz._common.MEMORY_STEP_MB)
        if grown > MEMORY_STEP_MB and _record(findings, data, "memory", text):
            print(f"FINDING memory (+{grown:.0f} MiB)", file=sys.stderr, flush=True)

    argv = [
        sys.argv[0],
        str(work / "corpus"),
        f"-max_total_time={max(1, int(args.seconds))}",
        f"-timeout={int(target.PER_INPUT_SECONDS)}",
        f"-rss_limit_mb={args.rss_limit_mb}",
        f"-max_len={target.MAX_LEN}",
        f"-artifact_prefix={findings}/",
        "-print_final_stats=1",
    ]
    dict_path = _dict_file(target, work / "dictionary.txt")
    if dict_path is not None:
        argv.append(f"-dict={dict_path}")
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


def _prepare(target_name: str, work: Path) -> None:
    target = load_target(target_name)
    corpus = work / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    (work / "findings").mkdir(parents=True, exist_ok=True)
    for k, data in enumerate(target.seeds()):
        (corpus / f"seed-{k:03d}").write_bytes(data)
    for p in corpus_files(target_name):
        shutil.copyfile(p, corpus / f"regression-{p.name}")


_RUNS = re.compile(r"^#(\d+)\s", re.M)
_DONE = re.compile(r"^Done (\d+) runs in", re.M)
_STAT = re.compile(r"^stat::number_of_executed_units:\s*(\d+)", re.M)


def _executions(log: str) -> int:
    for pattern in (_STAT, _DONE):
        found = pattern.findall(log)
        if found:
            return int(found[-1])
    found = _RUNS.findall(log)
    return int(found[-1]) if found else 0


def _atheris(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Supervise worker processes until ``--seconds`` are used; collect their statistics."""
    _prepare(args.target, work)
    started = time.monotonic()
    executions = 0
    restarts = 0
    log_path = work / "log.txt"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), str(REPO / "src"), *filter(None, [env.get("PYTHONPATH")])]
    )
    with open(log_path, "a") as log:
        while True:
            left = args.seconds - (time.monotonic() - started)
            if left < 5:
                break
            cmd = [
                sys.executable,
                "-m",
                "fuzz.run",
                args.target,
                "--worker",
                "--seconds",
                str(int(left)),
                "--work",
                str(work),
                "--rss-limit-mb",
                str(args.rss_limit_mb),
            ]
            proc = subprocess.run(
                cmd, cwd=REPO, env=env, capture_output=True, text=True, errors="replace"
            )
            text = proc.stdout + proc.stderr
            log.write(text)
            log.flush()
            executions += _executions(text)
            if proc.returncode != 0:
                restarts += 1
                reason = re.findall(r"==\d+== ERROR: libFuzzer: ([^\n]+)", text)
                print(f"worker ended ({proc.returncode}): {reason[-1:] or 'see log'}", flush=True)
                if restarts > 50:
                    break
    return {"executions": executions, "worker_restarts": restarts}


def _mutate(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The plain mutator for ``--seconds`` (no Atheris): findings recorded like Atheris'."""
    target = load_target(args.target)
    pool = list(target.seeds()) + [p.read_bytes() for p in corpus_files(args.target)]
    rng = random.Random(args.seed)
    started = time.monotonic()
    executions = 0
    findings = work / "findings"
    findings.mkdir(parents=True, exist_ok=True)
    while time.monotonic() - started < args.seconds:
        data = mutate(rng.choice(pool), rng, pool, target.MAX_LEN)
        found = run_one(target.fuzz_one, data, target.PER_INPUT_SECONDS)
        executions += 1
        if found is not None and _record(findings, data, found.signature, found.error):
            print(f"FINDING {found.signature}", flush=True)
    return {"executions": executions}


def _minimize(args: argparse.Namespace) -> int:
    """Shrink a finding's input (same signature) and write it to ``--out``."""
    target = load_target(args.target)
    data = Path(args.minimize).read_bytes()
    found = run_one(target.fuzz_one, data, target.PER_INPUT_SECONDS)
    if found is None:
        print(f"{args.minimize}: no finding; nothing to minimise")
        return 1
    small = minimize(target.fuzz_one, data, found.signature, target.PER_INPUT_SECONDS)
    out = Path(args.out or f"{args.minimize}.min")
    out.write_bytes(small)
    print(f"{found.signature}: {len(data)} -> {len(small)} bytes in {out}")
    return 0


def _replay(args: argparse.Namespace) -> int:
    """Run inputs once with the time and memory checks; print each one's verdict."""
    target = load_target(args.target)
    target.seeds()  # lazy imports and set-up, so that they do not count as the input's memory
    status = 0
    for name in args.replay:
        found = run_one(target.fuzz_one, Path(name).read_bytes(), target.PER_INPUT_SECONDS)
        if found is None:
            print(f"{name}: ok")
            continue
        status = 1
        print(found.error, file=sys.stderr)
        print(f"{name}: FINDING {found.signature} ({found.seconds:.2f} s)")
    return status


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fuzz.run", description=__doc__.split("\n")[0])
    p.add_argument("target", choices=sorted(TARGETS))
    p.add_argument("--seconds", type=float, default=60.0, help="how long to fuzz (default 60)")
    p.add_argument("--engine", choices=("atheris", "mutate"), default=None)
    p.add_argument("--work", default=None, help="working folder (default /tmp/mien-fuzz/TARGET)")
    p.add_argument("--rss-limit-mb", type=int, default=2048, help="memory bound (default 2048)")
    p.add_argument("--seed", type=int, default=0, help="--engine mutate: random seed")
    p.add_argument("--replay", nargs="+", metavar="FILE", help="run these inputs once and exit")
    p.add_argument("--minimize", metavar="FILE", help="shrink a finding's input and exit")
    p.add_argument("--out", metavar="FILE", help="--minimize: where to write (FILE.min)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.replay:
        return _replay(args)
    if args.minimize:
        return _minimize(args)
    work = Path(args.work or f"/tmp/mien-fuzz/{args.target}")
    if args.worker:
        _worker(args)
        return 0
    engine = args.engine
    if engine is None:
        try:
            import atheris  # noqa: F401
        except ImportError:
            engine = "mutate"
        else:
            engine = "atheris"
    work.mkdir(parents=True, exist_ok=True)
    before = set((work / "findings").glob("*"))
    started = time.monotonic()
    stats = _atheris(args, work) if engine == "atheris" else _mutate(args, work)
    findings = sorted(set((work / "findings").glob("*")) - before)
    known = KNOWN.get(args.target, {})
    summary = {
        "target": args.target,
        "engine": engine,
        "seconds": round(time.monotonic() - started, 1),
        **stats,
        "new_findings": [f.name for f in findings],
        # finding files whose signature is one of fuzz/known.py (the same bug found again)
        "known": [
            f.name
            for f in findings
            if f.suffix == ".txt" and f.read_text(errors="replace").split("\n", 1)[0] in known
        ],
    }
    (work / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
