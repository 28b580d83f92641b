"""Train the mask head (none / worn / worn_incorrectly) on the Kaggle face-mask photos.

Data: ``../shared/data/facemask_kaggle_voc`` (CC0), 611 photos with every face boxed and
labelled ``without_mask`` / ``with_mask`` / ``mask_weared_incorrect``. Each photo goes through
mien's own pipeline (:func:`train.common.pipeline`); detected faces are matched to the boxes
(IoU >= 0.4). The photos are split BY PHOTO into train / validation / test (60/20/20, fixed
seed): the head is fitted on train, calibrated (temperature) on validation, and measured on
test only (bench/attributes_cover.py). Because 78% of those faces wear a mask, the GENKI-4K
crops (``../shared/data/genki4k_crops``; "The MPLab GENKI-4K Dataset", http://mplab.ucsd.edu)
are added to the training part as faces without a mask.

Two models are trained and mixed: (1) a one-hidden-layer head over the hand-made colour
features (:func:`mien.analyzers.attributes.mask.mask_features`), fitted on the augmented
training faces; (2) a small colour network (:mod:`train.cnn`, one training thread) on the
48x48 RGB crop of the same view, trained on the training faces, a copy of each with synthetic
glasses, and the GENKI-4K faces (half of them also with glasses), augmented every epoch. The
final head's score per class is ``NET_WEIGHT`` x the network's logit + (1 - ``NET_WEIGHT``) x
the feature head's, then a temperature; ``NET_WEIGHT`` was chosen on the validation photos
(see ``NET_WEIGHT``), and the temperature is fitted there. The test photos are not read here
(bench/attributes_cover.py measures them).

Usage::

    .venv/bin/python train/train_mask.py             # writes attr_mask.npz, sha256 into the card
    .venv/bin/python train/train_mask.py --check     # train and report (validation), write nothing
    .venv/bin/python train/train_mask.py --no-cache  # rerun the pipeline on every photo
    .venv/bin/python train/train_mask.py --synth --check  # the colour-invariant candidate
    .venv/bin/python train/train_mask.py --synth-features --net-from FILE --check  # its features
        # head only, with the network of the head file FILE (docs/attributes.md: neither shipped)
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
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
from mien.analyzers.attributes.heads import ConvNet, Head
from mien.media.image import load_image
from train import cnn, synth_cover
from train.common import (
    SEED,
    CachedPipeline,
    calibrate,
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
        crop = with_glasses(face, M.CROP[0], rng)
    else:
        crop = M.mask_crop(face, 0)
    return colour_jitter(crop, rng)


def with_glasses(ctx: FaceContext, size: int, rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    """The aligned crop (:data:`~mien.analyzers.attributes.mask.CROP`'s view, ``size`` px) of
    face 0 with synthetic glasses drawn on it (dark lenses 60% of the time)."""
    from train.train_glasses import draw_eyewear

    _, eye_y, eye_distance = M.CROP
    s2 = 2 * size
    big = ctx.crop(0, s2, eye_y, eye_distance)
    eyes = (s2 * (0.5 - eye_distance / 2), s2 * (0.5 + eye_distance / 2), s2 * eye_y)
    drawn = draw_eyewear(big, rng, dark=bool(rng.random() < 0.6), eyes=eyes)
    return np.asarray(cv2.resize(drawn, (size, size), interpolation=cv2.INTER_AREA), np.uint8)


# -- colour-invariant copies (issue 17, fourth round: train/synth_cover.py) ------------------

#: Per training face with a mesh: recoloured copies of a masked face (its label kept), and the
#: chance that a bare face gets a synthetic cover (labelled worn) or a darkened, greyed lower
#: face (still none). GENKI-4K faces get the cover / darkening at GENKI_SYNTH each.
RECOLOURED = 2
COVERED_SHARE = 0.5
DARKENED_SHARE = 0.3
GENKI_SYNTH = 0.25
#: Whether the copies above are made (``--synth``). Off: the shipped version 3's recipe. On: the
#: fourth round's version 4 candidate (issue 17), NOT shipped - on the validation photos it
#: answered more at the same precision, but out of domain it called bare faces in sunglasses
#: masked far more often (docs/attributes.md, "Colour-invariant training, tried").
SYNTH = False
#: Whether the network's training crops get them too (``--synth``; ``--synth-features``: only the
#: features head's rows do).
SYNTH_NET = False


def synthetic(
    ctx: FaceContext,
    crop: npt.NDArray[np.uint8],
    label: int,
    rng: np.random.Generator,
    bare_share: tuple[float, float] = (COVERED_SHARE, DARKENED_SHARE),
) -> list[tuple[npt.NDArray[np.uint8], int]]:
    """Colour-invariant copies of ``crop`` (face 0 of ``ctx``, :data:`CROP`'s view at its
    size) with their labels: :data:`RECOLOURED` recoloured covers of a masked face; for a bare
    face, with the chances ``bare_share``, a synthetic cover (``worn``) and a darkened lower
    face (``none``)."""
    _, eye_y, eye_distance = M.CROP
    pts = synth_cover.mesh_in_crop(ctx, crop.shape[0], eye_y, eye_distance)
    if pts is None:
        return []
    out: list[tuple[npt.NDArray[np.uint8], int]] = []
    if label > 0:
        for _ in range(RECOLOURED):
            got = synth_cover.recoloured(crop, pts, rng)
            if got is not None:
                out.append((got, label))
        return out
    if rng.random() < bare_share[0]:
        out.append((synth_cover.covered(crop, pts, rng), 1))
    if rng.random() < bare_share[1]:
        out.append((synth_cover.darkened(crop, pts, rng), 0))
    return out


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
    synth_rng = np.random.default_rng(SEED + 1)
    for i in rows:
        f = faces[int(i)]
        if f.ctx is None or M.unjudgeable(f.ctx, 0) is not None:
            continue
        crop = M.mask_crop(f.ctx, 0)
        crops = [(crop, f.label)]
        if rng is not None:
            crops.append((np.ascontiguousarray(crop[:, ::-1]), f.label))
            crops += [(augmented(f.ctx, rng), f.label) for _ in range(COPIES)]
            if SYNTH:
                crops += synthetic(f.ctx, crop, f.label, synth_rng)
        for c, label in crops:
            feat = M.mask_features(c)
            for _ in range(REPEAT[label] if rng is not None else 1):
                x.append(feat)
                y.append(label)
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
    extra_y = [0] * len(extra)
    if SYNTH:
        synth_rng = np.random.default_rng(SEED + 2)
        for c in unmasked:
            for crop, label in synthetic(
                c, M.mask_crop(c, 0), 0, synth_rng, (GENKI_SYNTH, GENKI_SYNTH)
            ):
                extra.append(M.mask_features(crop))
                extra_y.append(label)
    xt = np.concatenate([xt, np.stack(extra).astype(np.float32)])
    yt = np.concatenate([yt, np.asarray(extra_y, np.int64)])
    xv, yv, _ = mask_rows(faces, va, None)
    fitted = fit_head(xt, yt, xv, yv, M.CLASSES, hidden=HIDDEN, c=C)
    print(f"mask: {len(yt)} training rows ({len(extra)} from GENKI-4K), {len(yv)} validation faces")
    print("  validation:", {k: round(v, 3) for k, v in fitted.report.items()})
    return fitted.head


# -- the colour network and the mixed head ----------------------------------------------------

#: The network (``train.cnn``): epochs, channels per block, random changes every epoch (lost
#: detail on 40% of the crops). Its training crops: each training face, a copy with synthetic
#: glasses, each GENKI-4K face and, for half of them, a copy with glasses; classes weighted as
#: :data:`REPEAT`. Chosen on the validation photos among: 32 or 48 px crops, class weights
#: :data:`REPEAT` or balanced, GENKI-4K weighted 1 or 0.3 (see docs/attributes.md).
EPOCHS = 20
CHANNELS = (16, 32, 64, 96)
AUGMENT = cnn.Augment(degrade=0.4)
GENKI_GLASSES_SHARE = 0.5
#: Weight of the network's logits in the final score (the feature head's get 1 - this); chosen
#: on the validation photos among 0, 0.3, 0.5, 0.7 and 1.
NET_WEIGHT = 0.5


def network_crops(
    faces: list[BoxedFace], rows: npt.NDArray[np.intp], unmasked: list[FaceContext]
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """The network's training crops (:func:`mien.analyzers.attributes.mask.net_crop`) and
    labels: each judgeable matched face of ``rows`` and a copy with glasses, then each GENKI-4K
    face and, for :data:`GENKI_GLASSES_SHARE` of them, a copy with glasses (with
    :data:`SYNTH_NET`, each also followed by its :func:`synthetic` copies)."""
    rng = np.random.default_rng(SEED)
    synth_rng = np.random.default_rng(SEED + 3)
    size = M.NET_CROP_SIZE
    x: list[npt.NDArray[np.uint8]] = []
    y: list[int] = []
    for i in rows:
        f = faces[int(i)]
        if f.ctx is None or M.unjudgeable(f.ctx, 0) is not None:
            continue
        x += [M.net_crop(f.ctx, 0), with_glasses(f.ctx, size, rng)]
        y += [f.label, f.label]
        if SYNTH_NET:
            for crop, label in synthetic(f.ctx, M.net_crop(f.ctx, 0), f.label, synth_rng):
                x.append(crop)
                y.append(label)
    for c in unmasked:
        x.append(M.net_crop(c, 0))
        y.append(0)
        if rng.random() < GENKI_GLASSES_SHARE:
            x.append(with_glasses(c, size, rng))
            y.append(0)
        if SYNTH_NET:
            for crop, label in synthetic(
                c, M.net_crop(c, 0), 0, synth_rng, (GENKI_SYNTH, GENKI_SYNTH)
            ):
                x.append(crop)
                y.append(label)
    return np.stack(x), np.asarray(y, np.int64)


def train_network(faces: list[BoxedFace], unmasked: list[FaceContext]) -> ConvNet:
    """The colour network, trained on the train photos' faces and the GENKI-4K faces, as run by
    mien (ONNX in onnxruntime)."""
    t0 = time.time()
    x, y = network_crops(faces, split(faces)[0], unmasked)
    weights = np.asarray(REPEAT, np.float32)[y]
    net = cnn.train_net(
        x,
        y,
        weights=weights,
        outputs=3,
        epochs=EPOCHS,
        channels=CHANNELS,
        aug=AUGMENT,
        seed=SEED,
        log=False,
    )
    onnx = cnn.export_onnx(net, M.NET_CROP_SIZE, in_channels=3)
    print(f"network: {len(y)} training crops, trained in {time.time() - t0:.0f} s")
    return ConvNet(onnx)


def mixed(features_head: Head, net: ConvNet, weight: float = NET_WEIGHT) -> Head:
    """One head over [network logits (3), mask features]: ``weight`` x the logits + (1 -
    ``weight``) x ``features_head``'s scores (uncalibrated). The logits pass the hidden ReLU
    layer as two units each (relu(l) - relu(-l) = l)."""
    assert features_head.hidden_w is not None and features_head.hidden_b is not None
    k = len(features_head.classes)
    h, d = features_head.hidden_w.shape
    eye = np.eye(k, dtype=np.float32)
    hidden_w = np.zeros((h + 2 * k, k + d), np.float32)
    hidden_w[:h, k:] = features_head.hidden_w
    hidden_w[h : h + k, :k] = eye
    hidden_w[h + k :, :k] = -eye
    hidden_b = np.concatenate([features_head.hidden_b, np.zeros(2 * k, np.float32)])
    coef = np.concatenate(
        [(1.0 - weight) * features_head.coef, weight * eye, -weight * eye], axis=1
    ).astype(np.float32)
    return Head(
        classes=features_head.classes,
        mean=np.concatenate([np.zeros(k, np.float32), features_head.mean]),
        scale=np.concatenate([np.ones(k, np.float32), features_head.scale]),
        coef=coef,
        intercept=((1.0 - weight) * features_head.intercept).astype(np.float32),
        hidden_w=hidden_w,
        hidden_b=hidden_b.astype(np.float32),
        net=net,
    )


def validation_rows(
    faces: list[BoxedFace], net: ConvNet
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """The mixed head's features (network logits first), labels and box widths of the
    validation photos' judgeable matched faces."""
    _, va, _ = split(faces)
    x, y, w = mask_rows(faces, va, None)
    crops: list[npt.NDArray[np.uint8]] = []
    for i in va:
        ctx = faces[int(i)].ctx
        if ctx is not None and M.unjudgeable(ctx, 0) is None:
            crops.append(M.net_crop(ctx, 0))
    logits = np.concatenate([net(np.stack(crops[k : k + 256])) for k in range(0, len(crops), 256)])
    return np.concatenate([logits, x], axis=1).astype(np.float32), y, w


def validation_report(
    head: Head,
    x: npt.NDArray[np.float32],
    y: npt.NDArray[np.int64],
    w: npt.NDArray[np.float32],
    label: str,
) -> None:
    from sklearn.metrics import balanced_accuracy_score

    for name, keep in (("all", w >= 0), ("faces >= 20 px", w >= 20)):
        p = head.proba(x[keep])
        rep = classification_report(p, y[keep])
        rep["balanced_accuracy_covered_vs_none"] = float(
            balanced_accuracy_score(y[keep] > 0, p.argmax(axis=1) > 0)
        )
        print(f"  validation, {label}, {name}:", {k: round(v, 3) for k, v in rep.items()})


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--check", action="store_true", help="train and report; write nothing")
    ap.add_argument("--no-cache", action="store_true", help="rerun the pipeline on every photo")
    ap.add_argument(
        "--synth", action="store_true", help="add the colour-invariant copies (not shipped)"
    )
    ap.add_argument(
        "--synth-features", action="store_true", help="the copies for the features head only"
    )
    ap.add_argument(
        "--net-from", type=Path, help="take the network from this head file (no training)"
    )
    ap.add_argument(
        "--save-val",
        type=Path,
        help="scratch: write the validation features, labels and the head (.head.npz) here",
    )
    args = ap.parse_args(argv)
    global SYNTH, SYNTH_NET
    SYNTH = args.synth or args.synth_features
    SYNTH_NET = args.synth
    # one training thread: the recipe was chosen on one thread, and the network's weights (not
    # only the speed) depend on the thread count
    cnn.THREADS = 1
    cache = None if args.no_cache else DEFAULT_CACHE
    faces = facemask_faces(cache)
    unmasked = genki_faces(cache)
    features_head = train(faces, unmasked)
    if args.net_from is not None:
        net = Head.from_bytes(args.net_from.read_bytes()).network()
    else:
        net = train_network(faces, unmasked)
    x, y, w = validation_rows(faces, net)
    validation_report(features_head, x[:, len(M.CLASSES) :], y, w, "feature head alone")
    head = calibrate(mixed(features_head, net), x, y)
    print(f"  mixed head: network weight {NET_WEIGHT}, temperature {head.temperature:.3f}")
    validation_report(head, x, y, w, "mixed head")
    if args.save_val is not None:
        np.savez(args.save_val, x=x, y=y, w=w, p=head.proba(x))
        head.save(args.save_val.with_suffix(".head.npz"))
    if not args.check:
        write_head(head, "attr_mask")


if __name__ == "__main__":
    main()
