"""Refit the ``sunglasses`` head over the fixed eyewear network and the lens measurements.

The convolutional network is not retrained (no PyTorch needed): it is read from the shipped
``attr_sunglasses.npz`` (``net_onnx``) and run by onnxruntime. What is refitted is the head
over its outputs: a logistic regression (scikit-learn) over the network's two logits, the eight
:func:`mien.analyzers.attributes.glasses.lens_measurements` and the four
:func:`mien.analyzers.attributes.glasses.iris_measurements` (what the lens lets through: is a
dark round iris with bright whites either side seen inside it?), then a Platt calibration.

Data and parts are those of train/train_glasses.py (:func:`train.train_glasses.eyewear_faces`:
CMU and Olivetti split by subject, the face-mask photos by photo, 60/20/20, fixed seed):

* fitted on the TRAIN part: the real faces as they are, and for each training face that wears no
  eyewear four synthetic pairs drawn on it (dark, mirrored: sunglasses; clear: not; light tint:
  left out), drawn on the finer crop the iris measurements read and shrunk for the network;
* chosen (:data:`VARIANTS`) and Platt-calibrated on the VALIDATION part: the real faces as they
  are plus the same synthetic pairs drawn on the validation faces that wear none (the real
  sunglasses of the validation part are all CMU's one black model; the synthetic dark and
  mirrored lenses stand for the other kinds);
* the test part and the evaluation-only sets (glasses_slinko, meglass_samples,
  sunglasses_selfies_scraped) are only measured, after the choice, by bench/attributes_cover.py.

Usage::

    .venv/bin/python train/refit_sunglasses.py           # writes attr_sunglasses.npz + card sha
    .venv/bin/python train/refit_sunglasses.py --check   # report the variants, write nothing
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mien.analyzers.attributes import glasses as G
from mien.analyzers.attributes.heads import ConvNet, Head
from train.common import (
    SEED,
    classification_report,
    fit_linear,
    platt,
    write_head,
)
from train.synth_sunglasses import MESH_KINDS, draw_mesh_sunglasses
from train.train_glasses import (
    MESH_DRAWN,
    EyeFace,
    draw_varied_eyewear,
    eyewear_faces,
    judgeable,
    photometric,
    scene_photos,
)
from train.train_mask import DEFAULT_CACHE

#: Synthetic pairs drawn on each face without eyewear, and their sunglasses label (None: left
#: out of the sunglasses fit, as in train/train_glasses.py).
SYNTHETIC: tuple[str, ...] = ("dark", "mirror", "clear", "tint")


@dataclass
class Table:
    """Feature rows (:func:`mien.analyzers.attributes.glasses.sunglasses_features`) with their
    sunglasses label, kind ("real" / "synthetic <kind>") and data set."""

    x: npt.NDArray[np.float32]
    y: npt.NDArray[np.int64]
    kind: list[str]
    source: list[str]


def table(faces: list[EyeFace], part: str, net: ConvNet, rng: np.random.Generator) -> Table:
    """The rows of one part: each judgeable face labelled for sunglasses as it is, then the
    synthetic pairs on its faces without eyewear."""
    scenes = scene_photos(faces)  # the face-mask training photos: reflections on mirrors
    side = G.IRIS_CROP_SIZE
    eyes = (G._EX[0] * side / 48, G._EX[1] * side / 48, G._EY * side / 48)
    xs: list[npt.NDArray[np.float32]] = []
    ys: list[int] = []
    kinds: list[str] = []
    sources: list[str] = []
    for f in faces:
        if f.part != part or not judgeable(f):
            continue
        assert f.ctx is not None
        if f.sunglasses is not None:
            xs.append(G.sunglasses_features_of(f.ctx, 0, net))
            ys.append(int(f.sunglasses))
            kinds.append("real")
            sources.append(f.source)
        if f.eyeglasses == 0 and f.sunglasses in (0, None):
            fine = G.iris_crop(f.ctx, 0)
            irises = G.iris_points(f.ctx, 0)
            for kd in SYNTHETIC:
                scene = scenes[int(rng.integers(0, len(scenes)))]
                drawn, sg = draw_varied_eyewear(fine, rng, kd, scene, eyes=eyes)
                drawn = photometric(drawn, rng)
                if sg is None:
                    continue
                small = np.asarray(cv2.resize(drawn, (48, 48), interpolation=cv2.INTER_AREA))
                xs.append(G.sunglasses_features(small, G.eyewear_logits(small, net), drawn, irises))
                ys.append(sg)
                kinds.append(f"synthetic {kd}")
                sources.append(f.source)
            if f.source == "facemask_kaggle_voc":  # glasses drawn in the photo itself
                for kd in MESH_DRAWN:
                    scene = scenes[int(rng.integers(0, len(scenes)))]
                    drawn_ctx = draw_mesh_sunglasses(f.ctx, rng, kd, scene)
                    if drawn_ctx is None:
                        continue
                    xs.append(G.sunglasses_features_of(drawn_ctx, 0, net))
                    ys.append(MESH_KINDS[kd])
                    kinds.append(f"mesh {kd}")
                    sources.append(f.source)
    return Table(np.stack(xs).astype(np.float32), np.asarray(ys, np.int64), kinds, sources)


#: Variants compared on the validation part: (name, feature columns, inverse regularisation C,
#: hidden units: 0 for a logistic regression). Columns: 0-1 the network's logits, 2-9 the lens
#: measurements, 10-13 the iris measurements.
VARIANTS: tuple[tuple[str, tuple[int, ...], float, int], ...] = (
    ("dark-lens logit alone", (1,), 1.0, 0),
    ("logits + lens", tuple(range(10)), 1.0, 0),
    ("logits + lens + iris", tuple(range(14)), 1.0, 0),
    ("logits + lens + iris, C=0.1", tuple(range(14)), 0.1, 0),
    ("logits + iris", (0, 1, 10, 11, 12, 13), 1.0, 0),
    ("logits + lens + iris, 8 hidden", tuple(range(14)), 1.0, 8),
    ("logits + lens + iris, 16 hidden", tuple(range(14)), 1.0, 16),
)


def masked_head(head: Head, cols: tuple[int, ...], n: int) -> Head:
    """``head`` fitted on columns ``cols`` as a head over all ``n`` features (the others get
    weight 0, mean 0, scale 1)."""
    mean = np.zeros(n, np.float32)
    scale = np.ones(n, np.float32)
    idx = list(cols)
    mean[idx], scale[idx] = head.mean, head.scale
    if head.hidden_w is not None:
        hidden_w = np.zeros((head.hidden_w.shape[0], n), np.float32)
        hidden_w[:, idx] = head.hidden_w
        return replace(head, mean=mean, scale=scale, hidden_w=hidden_w)
    coef = np.zeros((1, n), np.float32)
    coef[0, idx] = head.coef[0]
    return replace(head, mean=mean, scale=scale, coef=coef)


def fit(tr: Table, cols: tuple[int, ...], c: float, va: Table, hidden: int = 0) -> Head:
    """Logistic regression on the train rows (the synthetic dark and mirrored pairs keep
    the classes near balance), Platt (classes weighted equally) on validation."""
    linear = fit_linear(tr.x[:, list(cols)], tr.y, ("no", "yes"), hidden=hidden, c=c)
    head = masked_head(linear, cols, tr.x.shape[1])
    raw = head.raw_scores(va.x)[:, 0].astype(np.float64)
    return platt(head, raw, va.y, weighted=True)


def report(head: Head, t: Table) -> dict[str, float]:
    p = head.proba(t.x)
    out: dict[str, float] = {}
    real = np.array([k == "real" for k in t.kind])
    rep = classification_report(p[real], t.y[real])
    out["real bal.acc"] = rep.get("balanced_accuracy", float("nan"))
    out["real AUC"] = rep.get("roc_auc", float("nan"))
    out["real ECE"] = rep.get("ece", float("nan"))
    for kd in (*SYNTHETIC, *(f"mesh {k}" for k in MESH_DRAWN)):
        m = np.array([k == kd or k == f"synthetic {kd}" for k in t.kind])
        if m.any():
            out[f"{kd} yes"] = float((p[m, 1] >= 0.5).mean())
    neg = real & (t.y == 0)
    out["real no>=0.5"] = float((p[neg, 1] >= 0.5).mean())
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--check", action="store_true", help="report the variants; write nothing")
    ap.add_argument("--variant", default=CHOSEN, help="the variant written")
    args = ap.parse_args(argv)
    faces = eyewear_faces(DEFAULT_CACHE)
    net = Head.load("attr_sunglasses", network=True).network()
    heads = refit(faces, net)
    if not args.check:
        write_head(replace(heads[args.variant], net=net), "attr_sunglasses")


def refit(faces: list[EyeFace], net: ConvNet) -> dict[str, Head]:
    """Every variant of :data:`VARIANTS` fitted over ``net``, reported on validation."""
    rng = np.random.default_rng(SEED)
    tr = table(faces, "train", net, rng)
    va = table(faces, "validation", net, rng)
    print(f"train rows {len(tr.y)} ({int(tr.y.sum())} yes), validation {len(va.y)}")
    heads = {}
    for name, cols, c, hidden in VARIANTS:
        heads[name] = fit(tr, cols, c, va, hidden)
        rep = report(heads[name], va)
        print(f"{name}: " + ", ".join(f"{k} {v:.3f}" for k, v in rep.items()))
    return heads


#: The variant shipped (chosen on the validation part: docs/attributes.md).
CHOSEN = "logits + lens + iris"

if __name__ == "__main__":
    main()
