"""Findings that are known and not fixed yet, so that CI reports them without failing.

Each one has a regression input in ``fuzz/corpus/<target>/`` that tests/test_fuzz_smoke.py replays
as a strict xfail (it turns into a failure, to be removed from here, once the fix lands), and a
signature (:func:`fuzz._common.signature`) that the smoke run's mutated inputs may hit without
failing. docs/fuzzing.md lists them with their owners.
"""

from __future__ import annotations

from typing import Final

#: Target -> finding signature -> what it is (and whose area the fix is in).
KNOWN: Final[dict[str, dict[str, str]]] = {}

#: Regression inputs (path under fuzz/corpus) that still fail -> the signature they show.
XFAIL: Final[dict[str, str]] = {}
