"""Values of the rule language: numbers (float), booleans, strings, and :class:`Unknown`."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Unknown:
    """A value that could not be measured or judged, with the reasons why. ``attribute``: it
    comes (at least in part) from an observable attribute that answered null (too small,
    covered, or "uncertain" below its abstention band): a rule whose result is such an unknown
    always needs review (it is flagged as unknown even with ``when_unknown: pass``)."""

    reasons: tuple[str, ...]
    attribute: bool = False

    def merge(self, other: Unknown) -> Unknown:
        return Unknown(
            tuple(dict.fromkeys(self.reasons + other.reasons)), self.attribute or other.attribute
        )


Value = float | bool | str | Unknown


def unknown(*reasons: str) -> Unknown:
    return Unknown(tuple(reasons))


def number(x: object, reason: str) -> float | Unknown:
    """``x`` as a float, or :class:`Unknown` with ``reason`` when it is NaN, infinite or None."""
    if x is None:
        return Unknown((reason,))
    v = float(x)  # type: ignore[arg-type]
    return v if math.isfinite(v) else Unknown((reason,))


def render(value: object) -> str:
    """A short human form of a value for messages: 23.4, 0.352, 640, true, unknown."""
    if isinstance(value, Unknown):
        return "unknown"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float | int):
        v = float(value)
        if v.is_integer() and abs(v) < 1e15:
            return str(int(v))
        if abs(v) >= 10:
            return f"{v:.1f}"
        return f"{v:.3g}" if abs(v) >= 0.001 else f"{v:.2g}"
    if isinstance(value, list):
        return "[" + ", ".join(render(v) for v in value) + "]"
    return str(value)


def to_json(value: object) -> object:
    """A JSON-ready form: Unknown becomes None, floats are rounded to 4 decimals."""
    if isinstance(value, Unknown):
        return None
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float | int):
        v = float(value)
        return int(v) if v.is_integer() and abs(v) < 1e15 else round(v, 4)
    if isinstance(value, list):
        return [to_json(v) for v in value]
    return str(value)
