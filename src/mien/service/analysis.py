"""What the routes and the job workers share: request parameters -> analyzer, rules and records.

Every ``features`` and ``profile`` value goes through :func:`mien.features.parse_features` and the
rules loader before anything is read, so refused names answer 422 ``RefusedAttribute`` with the
same explanation as the CLI.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from mien.analyzer import FaceAnalyzer
from mien.features import check_refused, parse_features
from mien.options import AnalyzerOptions
from mien.rules import PROFILES, Flag, RuleSet, load_rules
from mien.service.problem import Problem
from mien.types import ImageResult


@dataclass(frozen=True)
class AnalysisParams:
    """Validated parameters of an analysis request (stored with a job as JSON)."""

    features: tuple[str, ...]
    profile: str | None = None
    threshold: float = 0.5
    min_face: float = 0.0
    max_faces: int | None = None
    sample_fps: float | None = None  # video jobs: analyse this many frames a second (None: all)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AnalysisParams:
        return cls(
            features=tuple(data["features"]),
            profile=data.get("profile"),
            threshold=float(data.get("threshold", 0.5)),
            min_face=float(data.get("min_face", 0.0)),
            max_faces=data.get("max_faces"),
            sample_fps=data.get("sample_fps"),
        )

    def options(
        self, num_threads: int = 0, max_pixels: int | None = None, device: str = "cpu"
    ) -> AnalyzerOptions:
        opts = AnalyzerOptions(
            features=self.features,
            threshold=self.threshold,
            min_face=self.min_face,
            max_faces=self.max_faces,
            num_threads=num_threads,
            device="cuda" if device == "cuda" else "cpu",
        )
        return opts if max_pixels is None else dataclasses.replace(opts, max_pixels=max_pixels)


def load_ruleset(profile: str) -> RuleSet:
    """The rule set of a built-in or installed profile (by name only, never a server path)."""
    check_refused([profile])
    if profile not in PROFILES:  # never a path: load_rules would read a file of the server
        raise Problem(
            "InvalidRules", f"no profile {profile!r}; the profiles are: {', '.join(PROFILES)}"
        )
    return load_rules(profile)


def parse_params(
    features: str | None,
    profile: str | None = None,
    threshold: float | None = None,
    min_face: float | None = None,
    max_faces: int | None = None,
) -> AnalysisParams:
    """Validate request parameters (refused names raise before any upload is read)."""
    names = parse_features(features or None)
    if profile:
        ruleset = load_ruleset(profile)
        if ruleset.required_features:
            names = parse_features((*names, *ruleset.required_features))
    params = AnalysisParams(
        features=names,
        profile=profile or None,
        threshold=0.5 if threshold is None else float(threshold),
        min_face=0.0 if min_face is None else float(min_face),
        max_faces=max_faces,
    )
    try:
        params.options()  # validates ranges
    except ValueError as exc:
        raise Problem("InvalidParameter", str(exc)) from None
    return params


class AnalyzerCache:
    """A few :class:`FaceAnalyzer` objects, one per option set, reused across requests."""

    def __init__(
        self,
        size: int = 4,
        num_threads: int = 0,
        max_pixels: int | None = None,
        device: str = "cpu",
    ) -> None:
        self._size = size
        self._num_threads = num_threads
        self._device = device
        self._max_pixels = max_pixels
        self._lock = threading.Lock()
        self._items: OrderedDict[AnalysisParams, FaceAnalyzer] = OrderedDict()
        self._rules: dict[str, RuleSet] = {}

    def analyzer(self, params: AnalysisParams) -> FaceAnalyzer:
        key = dataclasses.replace(params, profile=None)
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                return found
        made = FaceAnalyzer(params.options(self._num_threads, self._max_pixels, self._device))
        with self._lock:
            self._items[key] = made
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return made

    def ruleset(self, profile: str | None) -> RuleSet | None:
        if not profile:
            return None
        with self._lock:
            if profile not in self._rules:
                self._rules[profile] = load_ruleset(profile)
            return self._rules[profile]


def flag_record(flag: Flag) -> dict[str, Any]:
    """The JSON object of one rules flag."""
    return flag.to_dict()


def evaluate(ruleset: RuleSet | None, result: ImageResult) -> list[dict[str, Any]]:
    if ruleset is None:
        return []
    return [flag_record(f) for f in ruleset.evaluate(result)]


def image_record(
    result: ImageResult, params: AnalysisParams, flags: list[dict[str, Any]] | None
) -> dict[str, Any]:
    """The CLI's per-image JSON, plus ``profile`` and ``flags`` when a profile was applied."""
    record = result.to_dict(include_mesh="mesh" in params.features)
    if params.profile:
        record["profile"] = params.profile
        record["flags"] = flags or []
    return record
