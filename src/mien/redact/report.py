"""The audit record of a redaction: what was covered, where and (in a video) when.

:class:`RedactionReport` is what :func:`mien.redact.image.redact_image` and
:func:`mien.redact.video.redact_video` return, and what ``mien redact --report FILE.json``
writes (``to_dict()``). It holds boxes and scores only: no pixels and no face crops.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Final, Literal

from mien.redact.options import RedactOptions
from mien.redact.suspect import SuspectFrame
from mien.types import ModelInfo

RegionSource = Literal["detected", "tracked", "interpolated", "suspect"]
REGION_SOURCES: Final[tuple[str, ...]] = ("detected", "tracked", "interpolated", "suspect")


@dataclass(frozen=True)
class CoveredRegion:
    """One covered face area.

    * ``box``: the face box ``[x1, y1, x2, y2]`` in pixels of the (upright) picture or frame;
      the covered area is this box grown by the report's ``options.scale``, clipped.
    * ``score``: detector confidence in ``[0, 1]`` (for tracked/interpolated boxes, the score of
      the detection they were carried from).
    * ``source``: ``"detected"`` (found in this picture/frame), ``"tracked"`` (carried by the
      tracker through a frame where detection missed it) or ``"interpolated"`` (between two
      detections of the same track) or ``"suspect"`` (covered because the frame is suspect:
      a known region grown, a shrunk face's recent size, or the whole frame; score 0 when no
      detection stands behind it; docs/redaction.md, "Fail closed").
    * ``frame_index`` / ``timestamp_ms``: where in a video (None for images).
    * ``track_id``: the video track the region belongs to (None for images).
    """

    box: tuple[float, float, float, float]
    score: float
    source: RegionSource = "detected"
    frame_index: int | None = None
    timestamp_ms: float | None = None
    track_id: int | None = None

    def __post_init__(self) -> None:
        box = tuple(float(v) for v in self.box)
        if len(box) != 4:
            raise ValueError(f"box must have 4 numbers, got {self.box!r}")
        object.__setattr__(self, "box", box)
        object.__setattr__(self, "score", float(self.score))
        if self.source not in REGION_SOURCES:
            raise ValueError(
                f"source must be one of {', '.join(REGION_SOURCES)}, got {self.source!r}"
            )

    def to_dict(self, ndigits: int = 2) -> dict[str, Any]:
        out: dict[str, Any] = {
            "box": [round(v, ndigits) for v in self.box],
            "score": round(self.score, 4),
            "source": self.source,
        }
        if self.frame_index is not None:
            out["frame_index"] = int(self.frame_index)
        if self.timestamp_ms is not None:
            out["timestamp_ms"] = round(float(self.timestamp_ms), 3)
        if self.track_id is not None:
            out["track_id"] = int(self.track_id)
        return out


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class RedactionReport:
    """What one redaction run covered.

    * ``source`` / ``output``: input and output paths (or labels such as ``"<array>"``).
    * ``kind``: ``"image"`` or ``"video"``.
    * ``regions``: every covered area (for a video, one per face per frame).
    * ``frames``: pictures written (1 for an image); ``width`` / ``height``: their size.
    * ``options``: how faces were covered; ``threshold``: the detector threshold used.
    * ``metadata_kept``: whether input metadata (EXIF...) was copied to the output.
    * ``models``: the detector model(s) that ran.
    * ``extra``: kind-specific facts (for a video: fps, codec, audio kept...), JSON-ready.
    * ``created``: when the redaction ran (UTC, ISO 8601).
    * ``suspect_frames``: every frame of a video where redaction could not vouch that every face
      was covered, why, and what was done (:class:`mien.redact.suspect.SuspectFrame`).
    """

    source: str
    output: str
    kind: Literal["image", "video"] = "image"
    regions: tuple[CoveredRegion, ...] = ()
    frames: int = 1
    width: int = 0
    height: int = 0
    options: RedactOptions = field(default_factory=RedactOptions)
    threshold: float | None = None
    metadata_kept: bool = False
    models: tuple[ModelInfo, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=_now)
    suspect_frames: tuple[SuspectFrame, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ("image", "video"):
            raise ValueError(f"kind must be 'image' or 'video', got {self.kind!r}")
        object.__setattr__(self, "regions", tuple(self.regions))
        object.__setattr__(self, "suspect_frames", tuple(self.suspect_frames))

    @property
    def complete(self) -> bool:
        """True when no frame was suspect and the input had no damage to report (the CLI
        exits 1 otherwise)."""
        return not self.suspect_frames and "input_damage" not in self.extra

    @property
    def counts(self) -> dict[str, int]:
        """Covered regions in all and by source, and frames with at least one region."""
        by_source: Counter[str] = Counter(str(r.source) for r in self.regions)
        frames_covered = (
            len({r.frame_index for r in self.regions})
            if self.kind == "video"
            else int(bool(self.regions))
        )
        return {
            "regions": len(self.regions),
            **{s: by_source.get(s, 0) for s in REGION_SOURCES},
            "frames": int(self.frames),
            "frames_with_regions": frames_covered,
            **({"suspect_frames": len(self.suspect_frames)} if self.kind == "video" else {}),
        }

    def to_dict(self) -> dict[str, Any]:
        """The audit JSON object (docs/redaction.md)."""
        o = self.options
        return {
            "source": self.source,
            "output": self.output,
            "kind": self.kind,
            "created": self.created,
            "width": int(self.width),
            "height": int(self.height),
            "options": {
                "method": o.method,
                "shape": o.shape,
                "scale": o.scale,
                **({"color": list(o.color)} if o.method == "fill" else {}),
                **({"blocks": o.blocks} if o.method == "pixelate" else {}),
            },
            "threshold": self.threshold,
            "metadata_kept": self.metadata_kept,
            "models": [m.to_dict() for m in self.models],
            "counts": self.counts,
            "regions": [r.to_dict() for r in self.regions],
            **(
                {"suspect_frames": [f.to_dict() for f in self.suspect_frames]}
                if self.kind == "video"
                else {}
            ),
            **({"extra": dict(self.extra)} if self.extra else {}),
        }
