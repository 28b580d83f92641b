"""Face-detection metrics for the benchmarks (pure numpy, no detector code).

Protocol
--------
Boxes are ``[x1, y1, x2, y2]`` in pixels; a box's width is ``x2 - x1``.

Matching (per image, :func:`match_image`): detections are visited in decreasing score order
(ties keep their input order) and each one is matched greedily to the *unmatched*, regular
(non-ignored) ground-truth box with the highest IoU, provided that IoU is >= ``iou_thr``
(0.5). Such a detection is a true positive (TP) and the box becomes matched. Otherwise, if
the detection overlaps an *ignore* region with IoU >= ``iou_thr`` it is "ignored": neither TP
nor FP (ignore regions absorb any number of detections, like PASCAL VOC's "difficult" boxes;
a regular box is always preferred to an ignore region, as in COCO). Anything else is a false
positive (FP), including a second detection of an already matched face.

Because the matching is greedy in score order, the matches made by the detections with
score >= t are exactly the matches one would get by matching only those detections. One
matching pass at a low threshold therefore gives the TP/FP labels for every higher
threshold, and for each ground-truth box the score of the detection that matched it
(:attr:`ImageMatch.gt_score`): the box counts as recalled at threshold t iff that score >= t.

Pooled over a data set (:func:`pr_curve`): the operating points are the distinct detection
scores t (all detections with score >= t are kept), recall = TP / #regular faces and
precision = TP / (TP + FP).

* :func:`average_precision`: PASCAL VOC (2010+) all-point interpolated AP: the area under
  the precision envelope (precision at recall r = the maximum precision at any recall >= r).
* :func:`recall_at_precision`: the highest recall over all thresholds whose precision is
  >= the target (0.90), with that point's precision and threshold.
* :func:`recall_by_width`: recall of the regular faces in width bins at one threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Ground-truth width bins in pixels: ``[lo, hi)``.
WIDTH_BINS: tuple[tuple[float, float], ...] = (
    (0.0, 10.0),
    (10.0, 20.0),
    (20.0, 40.0),
    (40.0, float("inf")),
)
WIDTH_BIN_LABELS: tuple[str, ...] = ("<10", "10-20", "20-40", ">=40")

TP, FP, IGNORED = 1, 0, -1


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix between boxes ``a`` (N,4) and ``b`` (M,4), ``[x1, y1, x2, y2]``.

    Continuous-coordinate areas (no +1). Empty boxes have IoU 0 with everything.
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    return iou


@dataclass(frozen=True)
class ImageMatch:
    """Result of matching one image's detections to its ground truth.

    Attributes:
        scores: (N,) detection scores.
        labels: (N,) ``TP`` (1), ``FP`` (0) or ``IGNORED`` (-1) for each detection.
        gt_score: (M,) for each ground-truth box, the score of the detection matched to it,
            ``-inf`` if none (always ``-inf`` for ignore regions).
        gt_width: (M,) ground-truth box widths in pixels.
        gt_ignore: (M,) True for ignore regions.
    """

    scores: np.ndarray
    labels: np.ndarray
    gt_score: np.ndarray
    gt_width: np.ndarray
    gt_ignore: np.ndarray


def match_image(
    det_boxes: np.ndarray,
    det_scores: np.ndarray,
    gt_boxes: np.ndarray,
    gt_ignore: np.ndarray | None = None,
    iou_thr: float = 0.5,
) -> ImageMatch:
    """Greedily match one image's detections to its ground truth (see the module docstring)."""
    det_boxes = np.asarray(det_boxes, dtype=np.float64).reshape(-1, 4)
    det_scores = np.asarray(det_scores, dtype=np.float64).reshape(-1)
    gt_boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    if len(det_boxes) != len(det_scores):
        raise ValueError(f"{len(det_boxes)} boxes but {len(det_scores)} scores")
    n_gt = len(gt_boxes)
    ignore = (
        np.zeros(n_gt, dtype=bool)
        if gt_ignore is None
        else np.asarray(gt_ignore, dtype=bool).reshape(-1)
    )
    if len(ignore) != n_gt:
        raise ValueError(f"{n_gt} ground-truth boxes but {len(ignore)} ignore flags")

    labels = np.full(len(det_scores), FP, dtype=np.int8)
    gt_score = np.full(n_gt, -np.inf)
    matched = np.zeros(n_gt, dtype=bool)
    iou = box_iou(det_boxes, gt_boxes)
    for d in np.argsort(-det_scores, kind="stable"):
        if n_gt == 0:
            break
        row = iou[d]
        regular = np.where(~ignore & ~matched & (row >= iou_thr), row, -1.0)
        g = int(np.argmax(regular))
        if regular[g] >= iou_thr:
            labels[d] = TP
            matched[g] = True
            gt_score[g] = det_scores[d]
        elif np.any(ignore & (row >= iou_thr)):
            labels[d] = IGNORED
    width = gt_boxes[:, 2] - gt_boxes[:, 0]
    return ImageMatch(det_scores, labels, gt_score, width, ignore)


@dataclass(frozen=True)
class PRCurve:
    """Pooled precision/recall at every distinct score threshold, in decreasing threshold order.

    Attributes:
        thresholds: (K,) distinct detection scores, decreasing; point k keeps the
            detections with score >= thresholds[k].
        tp, fp: (K,) cumulative counts at each threshold.
        recall, precision: (K,) at each threshold.
        n_pos: number of regular (non-ignored) ground-truth faces.
    """

    thresholds: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    recall: np.ndarray
    precision: np.ndarray
    n_pos: int


def pr_curve(matches: Sequence[ImageMatch]) -> PRCurve:
    """Pool the matched detections of a data set into a precision/recall curve."""
    n_pos = int(sum(int((~m.gt_ignore).sum()) for m in matches))
    if matches:
        scores = np.concatenate([m.scores for m in matches])
        labels = np.concatenate([m.labels for m in matches])
    else:
        scores, labels = np.zeros(0), np.zeros(0, dtype=np.int8)
    keep = labels != IGNORED
    scores, labels = scores[keep], labels[keep]
    order = np.argsort(-scores, kind="stable")
    scores, labels = scores[order], labels[order]
    tp = np.cumsum(labels == TP)
    fp = np.cumsum(labels == FP)
    # Last index of every run of equal scores: a threshold keeps all tied detections.
    last = (
        np.flatnonzero(np.r_[scores[1:] != scores[:-1], True])
        if len(scores)
        else np.zeros(0, dtype=int)
    )
    tp, fp, thr = tp[last].astype(np.int64), fp[last].astype(np.int64), scores[last]
    recall = tp / n_pos if n_pos else np.zeros(len(tp))
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 1.0)
    return PRCurve(thr, tp, fp, recall.astype(np.float64), precision.astype(np.float64), n_pos)


def average_precision(curve: PRCurve) -> float:
    """VOC all-point interpolated AP; NaN when the data set has no regular face."""
    if curve.n_pos == 0:
        return float("nan")
    if len(curve.recall) == 0:
        return 0.0
    mrec = np.concatenate([[0.0], curve.recall])
    mpre = np.concatenate([curve.precision, [0.0]])
    # Precision envelope: max precision at any recall >= r (right-to-left running max).
    envelope = np.maximum.accumulate(mpre[::-1])[::-1][:-1]
    return float(np.sum((mrec[1:] - mrec[:-1]) * envelope))


@dataclass(frozen=True)
class OperatingPoint:
    """One point of a PR curve (threshold NaN and recall 0 when no point qualifies)."""

    threshold: float
    recall: float
    precision: float
    tp: int
    fp: int


def recall_at_precision(curve: PRCurve, min_precision: float = 0.90) -> OperatingPoint:
    """Highest recall over thresholds with precision >= ``min_precision``.

    Among thresholds with that same recall the highest one (fewest FPs) is reported.
    """
    ok = np.flatnonzero(curve.precision >= min_precision)
    if curve.n_pos == 0 or len(ok) == 0:
        return OperatingPoint(float("nan"), 0.0, float("nan"), 0, 0)
    best = ok[np.argmax(curve.recall[ok])]  # argmax returns the first = highest threshold
    return OperatingPoint(
        float(curve.thresholds[best]),
        float(curve.recall[best]),
        float(curve.precision[best]),
        int(curve.tp[best]),
        int(curve.fp[best]),
    )


def point_at_threshold(matches: Sequence[ImageMatch], threshold: float) -> OperatingPoint:
    """Precision/recall keeping the detections with score >= ``threshold`` (-inf keeps all)."""
    n_pos = sum(int((~m.gt_ignore).sum()) for m in matches)
    tp = sum(int(((m.labels == TP) & (m.scores >= threshold)).sum()) for m in matches)
    fp = sum(int(((m.labels == FP) & (m.scores >= threshold)).sum()) for m in matches)
    recall = tp / n_pos if n_pos else float("nan")
    precision = tp / (tp + fp) if tp + fp else float("nan")
    return OperatingPoint(float(threshold), recall, precision, tp, fp)


@dataclass(frozen=True)
class WidthBin:
    """Recall of the regular faces whose width falls in ``[lo, hi)``."""

    label: str
    lo: float
    hi: float
    n: int
    recalled: int

    @property
    def recall(self) -> float:
        """Fraction recalled, NaN for an empty bin."""
        return self.recalled / self.n if self.n else float("nan")


def recall_by_width(
    matches: Sequence[ImageMatch],
    threshold: float = -np.inf,
    bins: Sequence[tuple[float, float]] = WIDTH_BINS,
    labels: Sequence[str] = WIDTH_BIN_LABELS,
) -> list[WidthBin]:
    """Recall per ground-truth width bin, counting a face as found when its matching
    detection has score >= ``threshold`` (NaN threshold: nothing is found)."""
    if matches:
        width = np.concatenate([m.gt_width for m in matches])
        score = np.concatenate([m.gt_score for m in matches])
        regular = ~np.concatenate([m.gt_ignore for m in matches])
    else:
        width, score, regular = np.zeros(0), np.zeros(0), np.zeros(0, dtype=bool)
    # Unmatched boxes hold -inf, which must stay "not found" even for threshold=-inf.
    found = np.isfinite(score) & (score >= threshold)
    out = []
    for (lo, hi), label in zip(bins, labels, strict=True):
        in_bin = regular & (width >= lo) & (width < hi)
        out.append(WidthBin(label, lo, hi, int(in_bin.sum()), int((in_bin & found).sum())))
    return out


def downsample_curve(curve: PRCurve, max_points: int = 200) -> dict[str, list[float]]:
    """A JSON-friendly copy of the curve with at most ``max_points`` evenly spaced points
    (the last point, the lowest threshold, is always kept)."""
    k = len(curve.thresholds)
    idx = np.unique(np.r_[np.linspace(0, k - 1, min(k, max_points)).round().astype(int)])
    idx = idx[idx < k] if k else idx
    return {
        "threshold": [round(float(v), 6) for v in curve.thresholds[idx]],
        "recall": [round(float(v), 6) for v in curve.recall[idx]],
        "precision": [round(float(v), 6) for v in curve.precision[idx]],
    }


# -- uncertainty of a rate or a balanced accuracy -------------------------------------------


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion ``k / n`` (``(nan, nan)`` when ``n == 0``)."""
    if n <= 0:
        return math.nan, math.nan
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean recall over the classes present in ``y`` (labels and predictions as integers)."""
    y, pred = np.asarray(y), np.asarray(pred)
    classes = np.unique(y)
    if not len(classes):
        return math.nan
    return float(np.mean([np.mean(pred[y == c] == c) for c in classes]))


def bootstrap_interval(
    y: np.ndarray, pred: np.ndarray, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """95% percentile-bootstrap interval of :func:`balanced_accuracy`, resampling the faces
    within each true class (so every resample keeps the class counts)."""
    y, pred = np.asarray(y), np.asarray(pred)
    if len(y) == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    groups = [pred[y == c] == c for c in np.unique(y)]
    stats = np.empty(n_boot)
    for b in range(n_boot):
        stats[b] = np.mean([g[rng.integers(0, len(g), len(g))].mean() for g in groups])
    lo, hi = np.percentile(stats, [2.5, 97.5])
    return float(lo), float(hi)
