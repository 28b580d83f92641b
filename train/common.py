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
from mien.analyzers.attributes.heads import Head, sigmoid
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


def fit_linear(
    x_train: npt.NDArray[np.float32],
    y_train: npt.NDArray[np.int64],
    classes: Sequence[str],
    hidden: int = 0,
    c: float = 1.0,
    seed: int = SEED,
) -> Head:
    """An uncalibrated head fitted on the training part: a logistic regression, or a
    one-hidden-layer MLP when ``hidden`` > 0, over standardised features."""
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
    return Head(tuple(classes), mean, scale, coef, intercept, hidden_w, hidden_b)


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
    """Fit a head (:func:`fit_linear`) on the training part and calibrate it on the validation
    part (isotonic for two classes, a temperature for more). Returns the head and validation
    metrics after calibration."""
    head = calibrate(fit_linear(x_train, y_train, classes, hidden, c, seed), x_val, y_val)
    return Fitted(head, classification_report(head.proba(x_val), y_val))


def balanced(
    rows: npt.NDArray[np.intp], y: npt.NDArray[np.int64], seed: int
) -> npt.NDArray[np.intp]:
    """``rows`` with the minority class repeated (deterministically) to match the majority."""
    rng = np.random.default_rng(seed)
    pos, neg = rows[y[rows] == 1], rows[y[rows] == 0]
    small, big = (pos, neg) if len(pos) < len(neg) else (neg, pos)
    extra = rng.choice(small, len(big) - len(small), replace=True)
    return np.sort(np.concatenate([big, small, extra]))


def calibrate(head: Head, x_val: npt.NDArray[np.float32], y_val: npt.NDArray[np.int64]) -> Head:
    """``head`` calibrated on validation data: an isotonic table of p(positive) for two
    classes, a temperature for more."""
    import dataclasses

    raw = head.raw_scores(x_val).astype(np.float64)
    if len(head.classes) == 2:
        from sklearn.isotonic import IsotonicRegression

        p = sigmoid(raw[:, 0])
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y_val)
        xs = np.asarray(iso.X_thresholds_, np.float32)
        ys = np.asarray(iso.y_thresholds_, np.float32)
        return dataclasses.replace(head, calib_x=xs, calib_y=ys)
    return dataclasses.replace(head, temperature=_fit_temperature(raw, y_val))


def class_weights(y: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """Per-row weights that make each class of ``y`` count equally (total weight = rows)."""
    counts = np.bincount(y, minlength=int(y.max()) + 1).astype(np.float64)
    present = counts > 0
    per_class = np.where(present, len(y) / (present.sum() * np.maximum(counts, 1.0)), 0.0)
    out: npt.NDArray[np.float64] = per_class[y]
    return out


def platt_fit(
    scores: npt.NDArray[np.float64], y: npt.NDArray[np.int64], weighted: bool = True
) -> tuple[float, float]:
    """Platt scaling: ``(a, b)`` of ``p = sigmoid(a * score + b)`` fitted on ``scores`` and
    labels ``y``; ``weighted``: the two classes weighted equally (exact weights, no
    resampling), else as they come in ``y``."""
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=1e6, max_iter=1000)
    weights = class_weights(y) if weighted else None
    lr.fit(np.asarray(scores, np.float64)[:, None], y, sample_weight=weights)
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def platt(
    head: Head, scores: npt.NDArray[np.float64], y: npt.NDArray[np.int64], weighted: bool = True
) -> Head:
    """``head`` (two classes, linear last layer, no isotonic table) with a Platt calibration
    (:func:`platt_fit`) folded into its last layer, fitted on ``scores``: the head's raw scores
    on calibration data - or scores that stand for them (out-of-fold scores), possibly after an
    affine map whose weights sum to 1, such as an average with other scores. The folded head's
    :meth:`Head.proba` is that calibration."""
    return with_platt(head, *platt_fit(scores, y, weighted))


def with_platt(head: Head, a: float, b: float) -> Head:
    """``head`` with ``sigmoid(a * score + b)`` folded into its last layer (see :func:`platt`)."""
    import dataclasses

    if len(head.classes) != 2 or head.calib_x is not None:
        raise ValueError("platt() takes a two-class head without an isotonic table")
    return dataclasses.replace(
        head,
        coef=(head.coef * a).astype(np.float32),
        intercept=(head.intercept * a + b).astype(np.float32),
    )


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


class CachedPipeline:
    """The :func:`pipeline` analyzer with its per-picture results kept on disk by a key (e.g. the
    picture's path), so that retraining a head does not rerun detection and the mesh.

    What is stored are the analyzer's own float32 outputs (boxes, scores, landmarks, mesh, head
    pose), so a run from the cache and a run from scratch give the same head byte for byte.
    ``path=None`` disables the cache. Use ``for_key(key)`` where an analyzer is expected
    (:func:`face_in_crop`, :func:`faces_at_boxes`), then :meth:`save`.

    A cache file is used only when it was made with the same pipeline options, the same
    detector / mesh model files (their sha256) and the same source of mien's detection, mesh,
    pose and analyzer modules (their sha256); otherwise it is rebuilt.
    """

    _FIELDS = ("boxes", "scores", "landmarks", "head_pose", "mesh")

    def __init__(self, path: Path | None, **options: object) -> None:
        self.path = path
        self.options = options
        self._analyzer: mien.FaceAnalyzer | None = None
        self._faces: dict[str, mien.Faces] = {}
        self._dirty = False
        self.fingerprint = self._fingerprint(options)
        if path is not None and path.exists():
            with np.load(path, allow_pickle=False) as z:
                if "fingerprint" in z.files and str(z["fingerprint"]) == self.fingerprint:
                    keys = [str(k) for k in z["keys"]]
                    for k, key in enumerate(keys):
                        self._faces[key] = mien.Faces(**{f: z[f"{k}.{f}"] for f in self._FIELDS})

    @staticmethod
    def _fingerprint(options: dict[str, object]) -> str:
        import hashlib

        from mien.models.registry import load_card

        shas = [load_card(k).sha256 for k in ("centerface", "face_mesh", "iris")]
        src = Path(mien.__file__).parent
        code = hashlib.sha256()
        files = [
            *src.glob("detect/*.py"),
            *src.glob("landmarks/*.py"),
            *src.glob("media/*.py"),
            src / "analyzer.py",
            src / "options.py",
            src / "analyzers" / "head_pose.py",
        ]
        for f in sorted(files):
            code.update(f.read_bytes())
        return "|".join([repr(sorted(options.items())), *shas, code.hexdigest()])

    def faces(self, key: str, rgb: npt.NDArray[np.uint8]) -> mien.Faces:
        out = self._faces.get(key)
        if out is None:
            if self._analyzer is None:
                self._analyzer = pipeline(**self.options)
            out = self._analyzer.analyze_array(rgb)
            self._faces[key] = out
            self._dirty = True
        return out

    def for_key(self, key: str) -> mien.FaceAnalyzer:
        cache = self

        class _One:
            def analyze_array(self, rgb: npt.NDArray[np.uint8]) -> mien.Faces:
                return cache.faces(key, rgb)

        return _One()  # type: ignore[return-value]

    def save(self) -> None:
        if self.path is None or not self._dirty:
            return
        arrays: dict[str, npt.NDArray[np.generic]] = {
            "keys": np.array(list(self._faces)),
            "fingerprint": np.array(self.fingerprint),
        }
        for k, faces in enumerate(self._faces.values()):
            for f in self._FIELDS:
                arrays[f"{k}.{f}"] = np.asarray(getattr(faces, f))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".part.npz")
        np.savez(tmp, **arrays)  # type: ignore[arg-type]
        tmp.replace(self.path)
        self._dirty = False


# -- faces of face-crop data sets, cached (added for the smile / eyes / mouth heads) -----------


@dataclass
class CropFaces:
    """The main face of every picture of a crop data set, as found by mien's own pipeline.

    Row ``k`` belongs to ``paths[k]``; ``found[k]`` is False when no face (or no mesh) was found,
    and the other rows are then NaN. Rebuild a :class:`FaceContext` with :meth:`context`.
    """

    paths: list[Path]
    found: npt.NDArray[np.bool_]
    boxes: npt.NDArray[np.float32]
    landmarks: npt.NDArray[np.float32]
    mesh: npt.NDArray[np.float32]
    head_pose: npt.NDArray[np.float32]

    def context(self, k: int, rgb: npt.NDArray[np.uint8] | None = None) -> FaceContext:
        if rgb is None:
            rgb = load_rgb(self.paths[k])
        return FaceContext(
            rgb=rgb,
            boxes=self.boxes[k : k + 1],
            landmarks=self.landmarks[k : k + 1],
            mesh=self.mesh[k : k + 1],
            head_pose=self.head_pose[k : k + 1],
        )


def load_rgb(path: Path) -> npt.NDArray[np.uint8]:
    """A picture as (H, W, 3) uint8 RGB (grey pictures are repeated over the three channels)."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), np.uint8)


def crop_faces(name: str, paths: Sequence[Path], cache: bool = True) -> CropFaces:
    """Run :func:`face_in_crop` on every picture of ``paths``; the result is cached in
    ``bench/.cache/faces`` (git-ignored), keyed by the file list, the pipeline's model hashes
    and its source code (every mien module outside ``analyzers/attributes``), so reruns skip
    the pipeline. The pipeline is deterministic, so the cache changes nothing but the time
    taken."""
    import hashlib

    from mien.models.registry import list_cards

    paths = [Path(p) for p in paths]
    key = hashlib.sha256()
    for p in paths:
        key.update(str(p.resolve().relative_to(SHARED_DATA.resolve())).encode() + b"\0")
    for card in list_cards():
        if card.key in ("centerface", "face_mesh", "iris"):
            key.update(card.sha256.encode())
    # the pipeline's code too (detection, mesh, pose...), but not the attributes' own code
    src = Path(mien.__file__).resolve().parent
    for py in sorted(src.rglob("*.py")):
        if "attributes" not in py.relative_to(src).parts:
            key.update(py.relative_to(src).as_posix().encode() + py.read_bytes())
    cache_file = REPO / "bench" / ".cache" / "faces" / f"{name}-{key.hexdigest()[:16]}.npz"
    if cache and cache_file.exists():
        with np.load(cache_file, allow_pickle=False) as z:
            return CropFaces(
                paths, z["found"], z["boxes"], z["landmarks"], z["mesh"], z["head_pose"]
            )
    n = len(paths)
    found = np.zeros(n, bool)
    boxes = np.full((n, 4), np.nan, np.float32)
    landmarks = np.full((n, 5, 2), np.nan, np.float32)
    mesh = np.full((n, 478, 3), np.nan, np.float32)
    pose = np.full((n, 3), np.nan, np.float32)
    analyzer = pipeline()
    for k, p in enumerate(paths):
        if k and k % 1000 == 0:
            print(f"  {name}: {k}/{n} pictures through the pipeline", flush=True)
        ctx = face_in_crop(analyzer, load_rgb(p))
        if ctx is None or not ctx.has_mesh(0):
            continue
        found[k] = True
        boxes[k], landmarks[k], mesh[k], pose[k] = (
            ctx.boxes[0],
            ctx.landmarks[0],
            ctx.mesh[0],
            ctx.head_pose[0],
        )
    out = CropFaces(paths, found, boxes, landmarks, mesh, pose)
    if cache:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".part.npz")
        np.savez(tmp, found=found, boxes=boxes, landmarks=landmarks, mesh=mesh, head_pose=pose)
        tmp.replace(cache_file)
    return out


def write_head(head: Head, card_key: str) -> str:
    """Save ``head`` as ``mien/models/data/<card_key>.npz`` and put its sha256 into the model
    card ``cards/<card_key>.toml`` (the card's other fields are written by hand)."""
    import hashlib
    import re

    path = MODELS_DIR / f"{card_key}.npz"
    head.save(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    card = MODELS_DIR.parent / "cards" / f"{card_key}.toml"
    text, count = re.subn(
        r'(?m)^sha256 = "[0-9a-f]*"$', f'sha256 = "{digest}"', card.read_text(encoding="utf-8")
    )
    if count != 1:
        raise SystemExit(f"{card} has no sha256 line to update")
    card.write_text(text, encoding="utf-8")
    print(f"wrote {path.relative_to(REPO)} sha256 {digest} (card updated)")
    return digest
