"""Train the mask head (none / worn / worn_incorrectly) on the Kaggle face-mask photos.

Data: ``../shared/data/facemask_kaggle_voc`` (CC0), 611 photos with every face boxed and
labelled ``without_mask`` / ``with_mask`` / ``mask_weared_incorrect``. Each photo goes through
mien's own pipeline (:func:`train.common.pipeline`); detected faces are matched to the boxes
(IoU >= 0.4). The photos are split BY PHOTO into train / validation / test (60/20/20, fixed
seed): the head is fitted on train, calibrated (temperature) on validation, and measured on
test only (bench/attributes_cover.py). Because 78% of those faces wear a mask, the GENKI-4K
crops (``../shared/data/genki4k_crops``; "The MPLab GENKI-4K Dataset", http://mplab.ucsd.edu)
are added to the training part as faces without a mask.

Usage::

    .venv/bin/python train/train_mask.py             # writes attr_mask.npz, sha256 into the card
    .venv/bin/python train/train_mask.py --check     # train and report, write nothing
    .venv/bin/python train/train_mask.py --no-cache  # rerun the pipeline on every photo
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mien.analyzers.attributes import mask as M
from mien.analyzers.attributes.base import FaceContext
from mien.analyzers.attributes.heads import Head
from mien.media.image import load_image
from train.common import (
    SEED,
    CachedPipeline,
    classification_report,
    face_in_crop,
    faces_at_boxes,
    fit_head,
    require_data,
    write_head,
)

DATA = "facemask_kaggle_voc"
GENKI = "genki4k_crops"
LABELS = {"without_mask": 0, "with_mask": 1, "mask_weared_incorrect": 2}
#: Photos split by photo: train / validation (calibration) / test.
FRACTIONS = (0.6, 0.2, 0.2)
DEFAULT_CACHE = Path("/tmp/mien-train-cache")


@dataclass
class BoxedFace:
    """One ground-truth face box of the face-mask photos, with mien's face matched to it."""

    image: str
    box: tuple[float, float, float, float]
    label: int  # index into mien.analyzers.attributes.mask.CLASSES
    ctx: FaceContext | None  # None when the detector found no face at this box

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]


def facemask_faces(cache_dir: Path | None = DEFAULT_CACHE) -> list[BoxedFace]:
    """Every labelled box of the face-mask photos, in file order, each with its detected face
    (IoU >= 0.4, :func:`train.common.faces_at_boxes`) or None."""
    root = require_data(DATA)
    by_image: dict[str, list[dict[str, str]]] = defaultdict(list)
    with open(root / "annotations.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            by_image[row["image"]].append(row)
    cache = CachedPipeline(None if cache_dir is None else cache_dir / f"{DATA}.npz")
    out: list[BoxedFace] = []
    for image in sorted(by_image):
        rows = by_image[image]
        truth = np.array(
            [[float(r[k]) for k in ("xmin", "ymin", "xmax", "ymax")] for r in rows], np.float32
        )
        rgb = load_image(root / "images" / image).rgb
        matched = dict(faces_at_boxes(cache.for_key(image), rgb, truth))
        for t, r in enumerate(rows):
            box = (float(truth[t, 0]), float(truth[t, 1]), float(truth[t, 2]), float(truth[t, 3]))
            out.append(BoxedFace(image, box, LABELS[r["label"]], matched.get(t)))
    cache.save()
    return out


def split(faces: list[BoxedFace]) -> list[npt.NDArray[np.intp]]:
    """Row indices of the train / validation / test parts (by photo, fixed seed)."""
    from train.common import group_split

    return group_split([f.image for f in faces], FRACTIONS, seed=SEED)


# -- augmentation ----------------------------------------------------------------------------


def jittered(ctx: FaceContext, rng: np.random.Generator, amount: float = 0.05) -> FaceContext:
    """The same face with its two eye points moved by about ``amount`` x the eye distance (as an
    imprecise landmark would): the aligned crop shifts, turns and scales a little."""
    lm = ctx.landmarks.copy()
    d = float(np.hypot(*(lm[0, 1] - lm[0, 0])))
    lm[0, :2] += rng.normal(0.0, amount * d, (2, 2)).astype(np.float32)
    return replace(ctx, landmarks=lm, _crops={})


def colour_jitter(rgb: npt.NDArray[np.uint8], rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    """Colour cast, brightness, resolution loss, mirroring."""
    x = rgb.astype(np.float32)
    x = x * np.exp(rng.normal(0.0, 0.06, 3)).astype(np.float32) * float(np.exp(rng.normal(0, 0.15)))
    if rng.random() < 0.3:
        s = int(rng.choice([8, 12, 16]))
        size = x.shape[0]
        small = cv2.resize(x, (s, s), interpolation=cv2.INTER_AREA)
        x = cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.5:
        x = x[:, ::-1]
    return np.clip(x, 0, 255).astype(np.uint8)


#: Share of the augmented copies that get synthetic glasses (dark or clear) drawn on them: the
#: photos have few, and a mask head must not read dark lenses as a cover.
EYEWEAR_SHARE = 0.35


def augmented(ctx: FaceContext, rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    """An augmented 32x32 mask crop: jittered alignment, sometimes synthetic glasses, colour."""
    face = jittered(ctx, rng)
    if rng.random() < EYEWEAR_SHARE:
        from train.train_glasses import draw_eyewear

        size, eye_y, eye_distance = M.CROP
        s2 = 2 * size
        big = face.crop(0, s2, eye_y, eye_distance)
        eyes = (s2 * (0.5 - eye_distance / 2), s2 * (0.5 + eye_distance / 2), s2 * eye_y)
        drawn = draw_eyewear(big, rng, dark=bool(rng.random() < 0.6), eyes=eyes)
        crop = np.asarray(cv2.resize(drawn, (size, size), interpolation=cv2.INTER_AREA), np.uint8)
    else:
        crop = M.mask_crop(face, 0)
    return colour_jitter(crop, rng)


# -- training --------------------------------------------------------------------------------

#: Augmented copies per training face, and how often each class's rows are repeated in
#: training (none, worn, worn_incorrectly): the classes are 18% / 78% / 4% of the faces.
COPIES = 4
REPEAT = (2, 1, 6)
HIDDEN, C = 32, 0.1


def mask_rows(
    faces: list[BoxedFace], rows: npt.NDArray[np.intp], rng: np.random.Generator | None
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Features, labels and box widths of the judgeable matched faces among ``rows``; with
    ``rng``, training rows: the face, its mirror image and :data:`COPIES` augmented copies, each
    class repeated :data:`REPEAT` times."""
    x: list[npt.NDArray[np.float32]] = []
    y: list[int] = []
    w: list[float] = []
    for i in rows:
        f = faces[int(i)]
        if f.ctx is None or M.unjudgeable(f.ctx, 0) is not None:
            continue
        crop = M.mask_crop(f.ctx, 0)
        crops = [crop]
        if rng is not None:
            crops.append(np.ascontiguousarray(crop[:, ::-1]))
            crops += [augmented(f.ctx, rng) for _ in range(COPIES)]
        for c in crops:
            feat = M.mask_features(c)
            for _ in range(REPEAT[f.label] if rng is not None else 1):
                x.append(feat)
                y.append(f.label)
                w.append(f.width)
    return np.stack(x).astype(np.float32), np.asarray(y, np.int64), np.asarray(w, np.float32)


def genki_faces(cache_dir: Path | None = DEFAULT_CACHE) -> list[FaceContext]:
    """Faces without masks from GENKI-4K (64x64 crops of web photos taken before masks were
    common): the usable crops (``crop_status == ok``, no byte-identical duplicate), in file
    order, where mien finds the face and can judge it."""
    root = require_data(GENKI)
    cache = CachedPipeline(None if cache_dir is None else cache_dir / f"{GENKI}.npz")
    out: list[FaceContext] = []
    with open(root / "labels.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["crop_status"] == "ok"]
    seen: set[str] = set()
    for r in rows:
        if r["file"] in seen:
            continue
        seen.update(x for x in r.get("identical_bytes_as", "").split(";") if x)
        rgb = load_image(root / "images" / r["file"]).rgb
        ctx = face_in_crop(cache.for_key(r["file"]), rgb)
        if ctx is not None and M.unjudgeable(ctx, 0) is None:
            out.append(ctx)
    cache.save()
    return out


def train(faces: list[BoxedFace], unmasked: list[FaceContext]) -> Head:
    """Fit on the train photos' faces plus the GENKI-4K faces (as ``none``: each as it is and
    one augmented copy), calibrate on the validation photos' faces."""
    tr, va, _ = split(faces)
    rng = np.random.default_rng(SEED)
    xt, yt, _ = mask_rows(faces, tr, rng)
    extra = [M.mask_features(M.mask_crop(c, 0)) for c in unmasked]
    extra += [M.mask_features(augmented(c, rng)) for c in unmasked]
    xt = np.concatenate([xt, np.stack(extra).astype(np.float32)])
    yt = np.concatenate([yt, np.zeros(len(extra), np.int64)])
    xv, yv, _ = mask_rows(faces, va, None)
    fitted = fit_head(xt, yt, xv, yv, M.CLASSES, hidden=HIDDEN, c=C)
    print(f"mask: {len(yt)} training rows ({len(extra)} from GENKI-4K), {len(yv)} validation faces")
    print("  validation:", {k: round(v, 3) for k, v in fitted.report.items()})
    return fitted.head


def test_report(head: Head, faces: list[BoxedFace], min_width: float = 20.0) -> dict[str, float]:
    """3-class report on the test photos' matched, judgeable faces >= ``min_width`` px, plus the
    2-class (covered vs none) balanced accuracy."""
    from sklearn.metrics import balanced_accuracy_score

    _, _, te = split(faces)
    x, y, w = mask_rows(faces, te, None)
    keep = w >= min_width
    p = head.proba(x[keep])
    rep = classification_report(p, y[keep])
    pred = p.argmax(axis=1)
    rep["balanced_accuracy_covered_vs_none"] = float(balanced_accuracy_score(y[keep] > 0, pred > 0))
    return rep


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--check", action="store_true", help="train and report; write nothing")
    ap.add_argument("--no-cache", action="store_true", help="rerun the pipeline on every photo")
    args = ap.parse_args(argv)
    cache = None if args.no_cache else DEFAULT_CACHE
    faces = facemask_faces(cache)
    head = train(faces, genki_faces(cache))
    print("  test (faces >= 20 px):", {k: round(v, 3) for k, v in test_report(head, faces).items()})
    if not args.check:
        write_head(head, "attr_mask")


if __name__ == "__main__":
    main()
