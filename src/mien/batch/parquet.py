"""Parquet tables of batch results: one row per face, with the image key.

An image without a face still has one row (``face_index`` null), and so does an image that
failed (``error_code`` / ``error_message`` set), so every input appears in the table. Every
shard of a job has the same schema (it depends only on the requested features), so the shards
read as one dataset: ``pyarrow.dataset.dataset("OUT_DIR/shards", format="parquet")``. The
dense mesh stays in the JSON Lines shards; observable attributes are one JSON text column.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from mien.analyzers.quality import QUALITY_NAMES
from mien.types import HEAD_POSE_NAMES, LANDMARK_NAMES

__all__ = ["analysis_schema", "analysis_table"]


def _columns(features: Sequence[str]) -> list[tuple[str, str]]:
    cols = [
        ("key", "string"),
        ("source", "string"),
        ("width", "int32"),
        ("height", "int32"),
        ("error_code", "string"),
        ("error_message", "string"),
        ("face_index", "int32"),
        ("x1", "float32"),
        ("y1", "float32"),
        ("x2", "float32"),
        ("y2", "float32"),
        ("score", "float32"),
    ]
    if "landmarks" in features:
        cols += [(f"{n}_{a}", "float32") for n in LANDMARK_NAMES for a in ("x", "y")]
    if "head_pose" in features:
        cols += [(n, "float32") for n in HEAD_POSE_NAMES]
    if "quality" in features:
        cols += [(f"quality_{n}", "float32") for n in QUALITY_NAMES]
    cols.append(("attributes", "string"))
    return cols


def analysis_schema(features: Sequence[str]) -> Any:
    import pyarrow as pa

    return pa.schema([(name, getattr(pa, kind)()) for name, kind in _columns(features)])


def _face_row(face: Mapping[str, Any]) -> dict[str, Any]:
    x1, y1, x2, y2 = face["box"]
    row: dict[str, Any] = {"x1": x1, "y1": y1, "x2": x2, "y2": y2, "score": face["score"]}
    for name, (x, y) in (face.get("landmarks") or {}).items():
        row[f"{name}_x"], row[f"{name}_y"] = x, y
    row.update(face.get("head_pose") or {})
    for name, value in (face.get("quality") or {}).items():
        row[f"quality_{name}"] = value
    row["attributes"] = json.dumps(face.get("attributes") or {}, sort_keys=True)
    return row


def analysis_table(records: Sequence[Mapping[str, Any]], features: Sequence[str]) -> Any:
    """The Parquet table (a ``pyarrow.Table``) of one shard's analysis records."""
    import pyarrow as pa

    schema = analysis_schema(features)
    rows: list[dict[str, Any]] = []
    for rec in records:
        base = {
            "key": rec["key"],
            "source": rec.get("source"),
            "width": rec.get("width"),
            "height": rec.get("height"),
            "error_code": (rec.get("error") or {}).get("code"),
            "error_message": (rec.get("error") or {}).get("message"),
        }
        faces = rec.get("faces") or []
        if not faces:
            rows.append(base)
        for i, face in enumerate(faces):
            rows.append({**base, "face_index": i, **_face_row(face)})
    return pa.Table.from_pylist(rows, schema=schema)
