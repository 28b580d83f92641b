"""What the fuzz targets share: data paths, the per-input time bound and a small mutator.

The mutator is a plain, seeded byte mutator (bit flips, interesting values, inserts, deletes,
copies, truncation, splicing with another seed). The CI smoke run (tests/test_fuzz_smoke.py) uses
it so that it needs no Atheris and gives the same inputs on every run; the long runs use Atheris'
coverage-guided mutator (``python -m fuzz.run``).
"""

from __future__ import annotations

import contextlib
import importlib
import random
import resource
import signal
import struct
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Final

from fuzz import TARGETS

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SAMPLE = REPO / "src" / "mien" / "samples" / "astronaut.jpg"
CORPUS = Path(__file__).resolve().parent / "corpus"


def shared(*parts: str) -> Path | None:
    """A path under ../shared/data, or None when it is absent (seeds then fall back)."""
    path = SHARED_DATA.joinpath(*parts)
    return path if path.exists() else None


def load_target(name: str) -> ModuleType:
    """The module of target ``name`` (one of :data:`fuzz.TARGETS`)."""
    if name not in TARGETS:
        raise ValueError(f"unknown fuzz target {name!r} (targets: {', '.join(TARGETS)})")
    return importlib.import_module(TARGETS[name])


def corpus_files(name: str) -> list[Path]:
    """The regression inputs of target ``name`` (fuzz/corpus/<name>/*, README files aside)."""
    folder = CORPUS / name
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("README"))


# -- the per-input time bound ---------------------------------------------------------------


class Hang(BaseException):
    """An input ran longer than its time bound (raised by :func:`time_bound`)."""


@contextlib.contextmanager
def time_bound(seconds: float) -> Iterator[None]:
    """Raise :class:`Hang` in the main thread when the block runs longer than ``seconds``.

    A backstop only: a signal handler runs between Python bytecodes, so native code that never
    returns to Python is not interrupted (the caller also compares the elapsed time).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _alarm(signum: int, frame: object) -> None:
        raise Hang(f"input ran longer than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def peak_rss_mb() -> float:
    """The peak resident set size of this process so far, in MiB (Linux: ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def signature(exc: BaseException) -> str:
    """A finding's name: exception type and innermost frame (``file:function``, no line number,
    so that it survives edits of the file)."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{Path(frames[-1].filename).name}:{frames[-1].name}" if frames else "?"
    return f"{type(exc).__name__} at {where}"


@dataclass(frozen=True)
class Finding:
    """One input that made a target fail: its signature (see :func:`signature`; ``slow`` for an
    input over the time bound), the full error and how long it ran."""

    data: bytes
    signature: str
    error: str
    seconds: float


#: An input that raises the process' peak memory by more than this (MiB) is a finding: the
#: targets' limits keep an accepted input to a few tens of MB.
MEMORY_STEP_MB: Final = 256


def run_one(fuzz_one: Callable[[bytes], object], data: bytes, seconds: float) -> Finding | None:
    """Run one input under the time bound; a Finding for any exception, hang, slow run, or a rise
    of the peak memory by over :data:`MEMORY_STEP_MB` (the peak only rises, so this catches the
    first input that needs so much, not every one)."""
    start = time.perf_counter()
    peak = peak_rss_mb()
    try:
        with time_bound(seconds):
            fuzz_one(data)
    except (Exception, Hang) as exc:
        text = "".join(traceback.format_exception(exc))
        return Finding(data, signature(exc), text, time.perf_counter() - start)
    elapsed = time.perf_counter() - start
    if elapsed > seconds:
        return Finding(data, "slow", f"slow: {elapsed:.1f} s (bound {seconds:g} s)", elapsed)
    grown = peak_rss_mb() - peak
    if grown > MEMORY_STEP_MB:
        return Finding(data, "memory", f"memory: the peak grew by {grown:.0f} MiB", elapsed)
    return None


def minimize(
    fuzz_one: Callable[[bytes], object], data: bytes, wanted: str, seconds: float
) -> bytes:
    """A shorter input with the same finding signature ``wanted`` (greedy chunk deletion)."""

    def same(candidate: bytes) -> bool:
        found = run_one(fuzz_one, candidate, seconds)
        return found is not None and found.signature == wanted

    chunk = max(1, len(data) // 2)
    while chunk >= 1:
        i = 0
        while i < len(data):
            candidate = data[:i] + data[i + chunk :]
            if candidate and same(candidate):
                data = candidate
            else:
                i += chunk
        chunk //= 2
    return data


# -- a small seeded mutator -----------------------------------------------------------------

_INTERESTING_8 = (0, 1, 0x7F, 0x80, 0xFF, 0x20, 0x0A, 0x00)
_INTERESTING_32 = (0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFF, 0x10000, 0x100, 16, 64)


def mutate(data: bytes, rng: random.Random, pool: Sequence[bytes], max_len: int) -> bytes:
    """``data`` changed by one to four random edits (``pool``: other inputs to splice with)."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(9)
        n = len(buf)
        if op == 0 and n:  # flip one bit
            i = rng.randrange(n)
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1 and n:  # one byte to an interesting value
            buf[rng.randrange(n)] = rng.choice(_INTERESTING_8)
        elif op == 2 and n >= 4:  # a 32-bit field to an interesting value (either byte order)
            i = rng.randrange(n - 3)
            fmt = rng.choice((">I", "<I"))
            buf[i : i + 4] = struct.pack(fmt, rng.choice(_INTERESTING_32))
        elif op == 3:  # insert random bytes
            i = rng.randrange(n + 1)
            buf[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif op == 4 and n:  # delete a range
            i = rng.randrange(n)
            del buf[i : i + rng.randint(1, max(1, min(64, n - i)))]
        elif op == 5 and n:  # copy a range elsewhere (duplicated structures, repeated boxes)
            i = rng.randrange(n)
            chunk = buf[i : i + rng.randint(1, 64)]
            j = rng.randrange(n + 1)
            buf[j:j] = chunk
        elif op == 6 and n > 1:  # truncate (cut files)
            del buf[rng.randrange(1, n) :]
        elif op == 7 and pool:  # splice with another input
            other = rng.choice(pool)
            if other:
                i = rng.randrange(n + 1)
                j = rng.randrange(len(other))
                buf = buf[:i] + other[j:]
        elif op == 8 and n:  # overwrite a range with random bytes
            i = rng.randrange(n)
            for k in range(i, min(n, i + rng.randint(1, 8))):
                buf[k] = rng.randrange(256)
    return bytes(buf[:max_len])


def mutated_inputs(seeds: Sequence[bytes], count: int, seed: int, max_len: int) -> Iterator[bytes]:
    """``count`` mutated inputs made from ``seeds`` by :func:`mutate`, the same for a ``seed``."""
    rng = random.Random(seed)
    for _ in range(count):
        yield mutate(rng.choice(seeds), rng, seeds, max_len)
