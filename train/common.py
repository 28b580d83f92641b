"""Shared tools of the training scripts: faces from labelled data through mien's own pipeline,
group-aware splits, fitting + calibrating a :class:`mien.analyzers.attributes.heads.Head`, and
the metrics the benchmarks report.

Training needs scikit-learn (``pip install -e '.[train]'``); running mien does not.
Every script fixes its seeds, so the same data gives the same head, byte for byte.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

import mien
from mien.analyzers.attributes.base import FaceContext
from mien.analyzers.attributes.heads import Head
from mien.detect.nms import iou_matrix

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
MODELS_DIR = REPO / "src" / "mien" / "models" / "data"
SEED = 20261127


def require_data(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        raise SystemExit(f"needs the labelled data at {path} (../shared/data); it is not present")
    return path


def pipeline(**options: object) -> mien.FaceAnalyzer:
    """The analyzer used to turn labelled pictures into faces: mesh + pose, low threshold."""
    opts: dict[str, object] = {"features": "landmarks,head_pose,mesh", "threshold": 0.3}
    opts.update(options)
    return mien.FaceAnalyzer(**opts)  # type: ignore[arg-type]


def _context(rgb: npt.NDArray[np.uint8], faces: mien.Faces, i: int) -> FaceContext:
    assert faces.landmarks is not None and faces.mesh is not None and faces.head_pose is not None
    return FaceContext(
        rgb=rgb,
        boxes=faces.boxes[i : i + 1],
        landmarks=faces.landmarks[i : i + 1],
        mesh=faces.mesh[i : i + 1],
        head_pose=faces.head_pose[i : i + 1],
    )


def face_in_crop(analyzer: mien.FaceAnalyzer, rgb: npt.NDArray[np.uint8]) -> FaceContext | None:
    """The main face of a face crop (largest box near the centre), or None when none is found."""
    faces = analyzer.analyze_array(rgb)
    if not len(faces):
        return None
    h, w = rgb.shape[:2]
    centre = np.array([w / 2, h / 2], np.float32)
    mid = (faces.boxes[:, :2] + faces.boxes[:, 2:]) / 2
    size = faces.widths * faces.heights
    score = size / (1.0 + np.hypot(*(mid - centre).T) / max(h, w))
    return _context(rgb, faces, int(np.argmax(score)))


def faces_at_boxes(
    analyzer: mien.FaceAnalyzer,
    rgb: npt.NDArray[np.uint8],
    truth: npt.NDArray[np.float32],
    min_iou: float = 0.4,
) -> list[tuple[int, FaceContext]]:
    """Detected faces matched one-to-one to ground-truth boxes: ``(truth index, context)``."""
    faces = analyzer.analyze_array(rgb)
    if not len(faces) or not len(truth):
        return []
    iou = iou_matrix(truth, faces.boxes)
    out: list[tuple[int, FaceContext]] = []
    used: set[int] = set()
    for t in np.argsort(-iou.max(axis=1)):
        j = int(np.argmax(np.where(np.isin(np.arange(iou.shape[1]), list(used)), -1, iou[t])))
        if iou[t, j] >= min_iou and j not in used:
            used.add(j)
            out.append((int(t), _context(rgb, faces, j)))
    return out


def group_split(
    groups: Sequence[str], fractions: Sequence[float], seed: int = SEED
) -> list[npt.NDArray[np.intp]]:
    """Split row indices into parts by group (e.g. subject or source picture), never splitting a
    group; ``fractions`` sum to 1. Deterministic for a seed."""
    uniq = sorted(set(groups))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(uniq))
    bounds = np.cumsum([0.0, *fractions]) * len(uniq)
    part_of = {}
    for k, gi in enumerate(order):
        part_of[uniq[gi]] = int(np.searchsorted(bounds, k, side="right") - 1)
    rows = np.arange(len(groups))
    return [rows[[part_of[g] == p for g in groups]] for p in range(len(fractions))]


@dataclass
class Fitted:
    head: Head
    report: dict[str, float]


def fit_head(
    x_train: npt.NDArray[np.float32],
    y_train: npt.NDArray[np.int64],
    x_val: npt.NDArray[np.float32],
    y_val: npt.NDArray[np.int64],
    classes: Sequence[str],
    hidden: int = 0,
    c: float = 1.0,
    seed: int = SEED,
) -> Fitted:
    """Fit a head (logistic regression, or a one-hidden-layer MLP when ``hidden`` > 0) on the
    training part and calibrate it on the validation part (isotonic for two classes, a
    temperature for more). Returns the head and validation metrics after calibration."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    mean = x_train.mean(axis=0).astype(np.float32)
    scale = (x_train.std(axis=0) + 1e-6).astype(np.float32)
    zt = (x_train - mean) / scale
    hidden_w = hidden_b = None
    if hidden:
        mlp = MLPClassifier(
            hidden_layer_sizes=(hidden,),
            alpha=1.0 / c,
            max_iter=400,
            early_stopping=True,
            random_state=seed,
        )
        mlp.fit(zt, y_train)
        hidden_w = mlp.coefs_[0].T.astype(np.float32)
        hidden_b = mlp.intercepts_[0].astype(np.float32)
        coef = mlp.coefs_[1].T.astype(np.float32)
        intercept = mlp.intercepts_[1].astype(np.float32)
    else:
        lr = LogisticRegression(C=c, max_iter=3000, random_state=seed)
        lr.fit(zt, y_train)
        coef = lr.coef_.astype(np.float32)
        intercept = lr.intercept_.astype(np.float32)
    head = Head(tuple(classes), mean, scale, coef, intercept, hidden_w, hidden_b)
    raw = head.raw_scores(x_val).astype(np.float64)
    if len(classes) == 2:
        from sklearn.isotonic import IsotonicRegression

        p = 1.0 / (1.0 + np.exp(-np.clip(raw[:, 0], -50, 50)))
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y_val)
        xs = np.asarray(iso.X_thresholds_, np.float32)
        ys = np.asarray(iso.y_thresholds_, np.float32)
        head = Head(head.classes, mean, scale, coef, intercept, hidden_w, hidden_b, xs, ys)
    else:
        head = Head(
            head.classes,
            mean,
            scale,
            coef,
            intercept,
            hidden_w,
            hidden_b,
            temperature=_fit_temperature(raw, y_val),
        )
    return Fitted(head, classification_report(head.proba(x_val), y_val))


def _fit_temperature(logits: npt.NDArray[np.float64], y: npt.NDArray[np.int64]) -> float:
    best, best_t = np.inf, 1.0
    for t in np.exp(np.linspace(np.log(0.2), np.log(10), 200)):
        s = logits / t
        s = s - s.max(axis=1, keepdims=True)
        nll = float(-(s[np.arange(len(y)), y] - np.log(np.exp(s).sum(axis=1))).mean())
        if nll < best:
            best, best_t = nll, float(t)
    return best_t


def expected_calibration_error(
    conf: npt.ArrayLike, correct: npt.ArrayLike, bins: int = 10
) -> float:
    """ECE, equal-width confidence bins: sum over bins of |accuracy - mean confidence| x share."""
    conf = np.asarray(conf, np.float64)
    correct = np.asarray(correct, np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in itertools.pairwise(edges):
        m = (conf > lo) & (conf <= hi) if lo > 0 else (conf >= lo) & (conf <= hi)
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def classification_report(
    proba: npt.NDArray[np.float32], y: npt.NDArray[np.int64]
) -> dict[str, float]:
    """Accuracy, balanced accuracy, ROC AUC (two classes: positive = class 1; more: macro
    one-vs-rest) and expected calibration error of the predicted class's confidence."""
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score

    pred = proba.argmax(axis=1)
    out = {
        "n": float(len(y)),
        "accuracy": float((pred == y).mean()),
        "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
        "ece": expected_calibration_error(proba.max(axis=1), pred == y),
    }
    try:
        if proba.shape[1] == 2:
            out["roc_auc"] = float(roc_auc_score(y, proba[:, 1]))
        else:
            out["roc_auc"] = float(
                roc_auc_score(
                    y, proba, multi_class="ovr", average="macro", labels=list(range(proba.shape[1]))
                )
            )
    except ValueError:
        out["roc_auc"] = float("nan")
    return out


def extract(
    items: Sequence[object],
    featurize: Callable[[object], npt.NDArray[np.float32] | None],
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.intp]]:
    """Features of every item that yields some; returns (features, indices of those items)."""
    feats: list[npt.NDArray[np.float32]] = []
    kept: list[int] = []
    for k, item in enumerate(items):
        f = featurize(item)
        if f is not None:
            feats.append(f)
            kept.append(k)
    if not feats:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.intp)
    return np.stack(feats).astype(np.float32), np.asarray(kept, np.intp)
