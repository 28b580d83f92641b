"""Rules, rule sets and the flags they raise (docs/rules.md)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from mien.features import parse_features
from mien.rules.expression import Expression
from mien.rules.fields import Scene
from mien.rules.values import Unknown, Value, render, to_json
from mien.types import ErrorInfo, Faces, ImageResult, with_present

SEVERITIES: Final[tuple[str, ...]] = ("error", "warning", "info")
WHEN_UNKNOWN: Final[tuple[str, ...]] = ("flag", "pass")

#: The rule id of the flag raised for an image that could not be read.
UNREADABLE: Final[str] = "unreadable"

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")


@dataclass(frozen=True)
class Flag:
    """One finding: which rule, how serious, why (with the measured values), which face.

    ``face`` is the index of the face in the result's ``faces`` (None for an image-level rule);
    ``unknown`` is true when the rule flagged because a value it needs could not be judged;
    ``values`` holds every field the rule read (``None`` where unknown; a list per face for a
    field read inside ``any``/``all``/``count``/``min``/``max``). For video and stream frames
    (:meth:`RuleSet.evaluate_faces` with a frame), ``frame``, ``timestamp_ms`` and the face's
    ``track_id`` are set too; they appear in ``to_dict()`` only when set.
    """

    rule: str
    severity: str
    message: str
    face: int | None = None
    unknown: bool = False
    values: Mapping[str, Any] = field(default_factory=dict)
    frame: int | None = None
    timestamp_ms: float | None = None
    track_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return with_present(
            {
                "rule": self.rule,
                "severity": self.severity,
                "message": self.message,
                "face": self.face,
                "unknown": self.unknown,
                "values": dict(self.values),
            },
            frame=self.frame,
            timestamp_ms=self.timestamp_ms,
            track_id=self.track_id,
        )


@dataclass(frozen=True)
class Message:
    """A message template: literal text and ``{expression}`` placeholders."""

    parts: tuple[str | Expression, ...]

    def render(self, scene: Scene, face: int | None) -> str:
        out: list[str] = []
        for p in self.parts:
            if isinstance(p, str):
                out.append(p)
            else:
                out.append(render(p.evaluate(scene, face)))
        return "".join(out)


@dataclass(frozen=True)
class Rule:
    """One rule: flag when ``flag_if`` holds, or when ``require`` does not.

    Exactly one of the two expressions is set (``test`` holds it, ``flags_when`` says which
    outcome flags: True for ``flag_if``, False for ``require``).
    """

    id: str
    test: Expression
    flags_when: bool
    per_face: bool = False
    severity: str = "error"
    when_unknown: str = "flag"
    description: str = ""
    message: Message | None = None

    @property
    def keyword(self) -> str:
        return "flag_if" if self.flags_when else "require"

    def evaluate(self, scene: Scene) -> list[Flag]:
        faces = range(len(scene.faces)) if self.per_face else [None]
        out: list[Flag] = []
        for i in faces:
            record: dict[str, Any] = {}
            value = self.test.evaluate(scene, i, record)
            flag = self._flag(scene, i, value, record)
            if flag is not None:
                out.append(flag)
        return out

    def _flag(
        self, scene: Scene, face: int | None, value: Value, record: dict[str, Any]
    ) -> Flag | None:
        values = {k: _record_json(v, len(scene.faces)) for k, v in record.items()}
        title = self.description or self.id
        if isinstance(value, Unknown):
            if self.when_unknown == "pass" and not value.attribute:
                return None  # an attribute's null (e.g. "uncertain") always needs review
            reasons = "; ".join(value.reasons) or "a value could not be measured"
            return Flag(
                self.id,
                self.severity,
                f"{title}: cannot be checked: {reasons}",
                face,
                True,
                values,
            )
        if value is not self.flags_when:
            return None
        if self.message is not None:
            text = self.message.render(scene, face)
        else:
            verb = "does not hold" if self.keyword == "require" else "holds"
            measured = ", ".join(f"{k} = {render(_record_value(v))}" for k, v in record.items())
            text = f"{title}: {self.test.source} {verb}" + (f" ({measured})" if measured else "")
        return Flag(self.id, self.severity, text, face, False, values)


def _record_value(v: Any) -> Any:
    if isinstance(v, dict):
        return [v[k] for k in sorted(v)]
    return v


def _record_json(v: Any, n: int) -> Any:
    if isinstance(v, dict):
        return [to_json(v[i]) if i in v else None for i in range(n)]
    return to_json(v)


@dataclass(frozen=True)
class CheckResult:
    """The verdict on one image: ``passed`` when no flag has severity ``error``."""

    source: str
    width: int
    height: int
    faces: int | None
    passed: bool
    flags: tuple[Flag, ...]
    ruleset: str
    error: ErrorInfo | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source": self.source,
            "width": self.width,
            "height": self.height,
            "faces": self.faces,
            "rules": self.ruleset,
            "passed": self.passed,
            "flags": [f.to_dict() for f in self.flags],
        }
        if self.error is not None:
            out["error"] = self.error.to_dict()
        return out


@dataclass(frozen=True)
class RuleSet:
    """A named list of rules; see :mod:`mien.rules` for the API and docs/rules.md for the YAML."""

    name: str
    rules: tuple[Rule, ...]
    description: str = ""

    @property
    def required_features(self) -> tuple[str, ...]:
        """The ``mien.features`` names an analysis must compute for these rules, canonical order."""
        names: set[str] = {"detection"}
        for r in self.rules:
            names |= r.test.features
            if r.message is not None:
                for p in r.message.parts:
                    if isinstance(p, Expression):
                        names |= p.features
        return parse_features(sorted(names))

    def features_with(self, features: Iterable[str] | str | None) -> tuple[str, ...]:
        """``features`` (validated by ``parse_features``) plus :attr:`required_features`."""
        extra = parse_features(features) if features is not None else ()
        return parse_features([*extra, *self.required_features])

    def evaluate(self, result: ImageResult) -> list[Flag]:
        """Every flag the rules raise on ``result``, in rule order, then face order.

        An image that could not be read (``result.error``) gets one ``error`` flag with rule id
        ``"unreadable"`` and the error's code and message.
        """
        if result.faces is None:
            err = result.error
            msg = f"{err.code}: {err.message}" if err is not None else "no faces were analysed"
            return [Flag(UNREADABLE, "error", msg)]
        return self.evaluate_faces(result.faces, result.width, result.height)

    def evaluate_faces(
        self,
        faces: Faces,
        width: int,
        height: int,
        *,
        frame: int | None = None,
        timestamp_ms: float | None = None,
    ) -> list[Flag]:
        """The flags for the faces of one picture or video frame of ``width`` x ``height`` px.

        For a video or stream frame, pass its ``frame`` index and/or ``timestamp_ms``: every
        flag then carries them, and per-face flags carry the face's ``track_id`` when
        ``faces.track_ids`` is set.
        """
        scene = Scene(faces, int(width), int(height))
        out: list[Flag] = []
        for r in self.rules:
            out += r.evaluate(scene)
        if frame is None and timestamp_ms is None and faces.track_ids is None:
            return out
        tids = faces.track_ids
        return [
            replace(
                f,
                frame=frame,
                timestamp_ms=None if timestamp_ms is None else float(timestamp_ms),
                track_id=None if tids is None or f.face is None else int(tids[f.face]),
            )
            for f in out
        ]

    def check(self, result: ImageResult) -> CheckResult:
        """:meth:`evaluate` with the verdict: passed when no flag has severity ``error``."""
        flags = tuple(self.evaluate(result))
        return CheckResult(
            source=result.source,
            width=result.width,
            height=result.height,
            faces=None if result.faces is None else len(result.faces),
            passed=passes(flags),
            flags=flags,
            ruleset=self.name,
            error=result.error,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description of the rules (their YAML fields, as loaded)."""
        return {
            "name": self.name,
            "description": self.description,
            "required_features": list(self.required_features),
            "rules": [
                {
                    "id": r.id,
                    "description": r.description,
                    "per_face": r.per_face,
                    r.keyword: r.test.source,
                    "when_unknown": r.when_unknown,
                    "severity": r.severity,
                }
                for r in self.rules
            ],
        }


def passes(flags: Iterable[Flag]) -> bool:
    """True when none of ``flags`` has severity ``error``."""
    return not any(f.severity == "error" for f in flags)
