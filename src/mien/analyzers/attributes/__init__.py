"""Observable attributes of a face: what it shows (glasses, a smile's mouth shape, a mask...).

Each attribute lives in its own module and is listed in :data:`IMPLEMENTATIONS` as
``"module:Class"``; the class is imported only when the attribute is asked for. An attribute
is never a judgement of who a person is or what group they belong to (docs/refusal.md).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from mien.analyzers.attributes.base import Abstaining, AttributeAnalyzer, FaceContext
from mien.features import ATTRIBUTE_FEATURES
from mien.models.registry import ATTRIBUTE_CARDS as CARDS
from mien.models.registry import attribute_trust as trust

#: Every attribute mien may report, in output order (the names are the feature gate's:
#: :data:`mien.features.ATTRIBUTE_FEATURES`).
ATTRIBUTE_NAMES: tuple[str, ...] = ATTRIBUTE_FEATURES

#: Attribute name -> "module:Class" of its analyzer (only the implemented ones).
IMPLEMENTATIONS: dict[str, str] = {
    "smile": "mien.analyzers.attributes.smile:SmileAnalyzer",
    "eyes_open": "mien.analyzers.attributes.eyes:EyesOpenAnalyzer",
    "mouth_open": "mien.analyzers.attributes.mouth:MouthOpenAnalyzer",
    "eyeglasses": "mien.analyzers.attributes.glasses:Eyeglasses",
    "sunglasses": "mien.analyzers.attributes.glasses:Sunglasses",
    "mask": "mien.analyzers.attributes.mask:MaskAnalyzer",
    "headwear": "mien.analyzers.attributes.headwear:HeadwearAnalyzer",
}


def available() -> tuple[str, ...]:
    """Names of the attributes this installation implements, in output order."""
    return tuple(n for n in ATTRIBUTE_NAMES if n in IMPLEMENTATIONS)


def create(names: Iterable[str], *, _withhold: bool = True) -> list[AttributeAnalyzer]:
    """Instantiate the analyzers of ``names`` (each loads and verifies its model files), each
    answering ``None`` with the reason "uncertain (...)" below its abstention band
    (:func:`trust`, :class:`~mien.analyzers.attributes.base.Abstaining`). ``_withhold=False``
    gives the raw analyzers: only for train/abstention.py, which chooses the bands."""
    out: list[AttributeAnalyzer] = []
    for name in names:
        module, cls = IMPLEMENTATIONS[name].split(":")
        analyzer = getattr(importlib.import_module(module), cls)()
        out.append(Abstaining(analyzer, trust(name)[1]) if _withhold else analyzer)
    return out


__all__ = [
    "ATTRIBUTE_NAMES",
    "CARDS",
    "IMPLEMENTATIONS",
    "AttributeAnalyzer",
    "FaceContext",
    "available",
    "create",
    "trust",
]
