"""Train the ``eyes_open`` head (one head for both eyes) and write ``attr_eyes.npz``.

Usage (from the repository root; needs scikit-learn and ``../shared/data``)::

    .venv/bin/python train/train_eyes.py            # train, print metrics, write the head + card
    .venv/bin/python train/train_eyes.py --dry-run  # train and print, write nothing
    .venv/bin/python train/train_eyes.py --refit    # keep the shipped network (no PyTorch):
                                                    # refit the regression + calibration

``--refit`` on the shipped file rebuilds it byte for byte (checked at version 3); it is for
trying other shape features over the fixed network (docs/attributes.md, eyes_open, "Smiling
faces").

Data (every picture goes through mien's own pipeline, ``train.common.crop_faces``; pictures
without a face or mesh are counted and left out; eyes the analyzer would not judge — turned
away, too small — are left out too):

* closed eyes: CEW ``cew_closed_faces`` (both eyes closed; research use), split by source
  picture into training (50%), calibration (20%) and held-out (30%). The held-out part is
  never trained or calibrated on: ``bench/attributes_face.py`` measures closed-eye recall on it.
* open eyes: SMILEsmileD (LFW crops, research use, no licence stated; 4,000 crops drawn with a
  fixed seed), Olivetti (``olivetti_glasses``, all 300; credit Olivetti Research Laboratory)
  and the CMU faces without sunglasses (``cmu_faces_sunglasses_pose``; UCI teaching data,
  research use), each split the same way (SMILEsmileD by file, the others by subject).
* open eyes, ASSUMED open (not labelled): the faces at least 40 px wide found by mien on the
  CC0 face-mask photos (``facemask_kaggle_voc``, ``train.train_mask.facemask_faces``), split by
  photo exactly as the mask head (``train.train_mask.split``): eyes of the TRAIN photos are
  trained on (the network sees them three times), those of the validation photos are only
  reported (they were used to choose this recipe), the test photos are never read here. These
  are large colour web-photo eyes like CEW's; without them the network learnt "large, sharp
  eye = closed" (every closed eye came from CEW, every open one from small grey sets).

Training faces are also used altered (``augmented_rows``: lost detail, imprecise eye
corners): four copies of each closed face, one of each open face. HELEN is never read here
(evaluation only, bench/attributes_face.py). Closed and open eyes are weighted equally in
training and in calibration (the closed eyes are repeated, deterministically), so the
calibrated confidence assumes no prior preference. Everything is seeded; rerunning rebuilds
``attr_eyes.npz`` byte for byte and rewrites the sha256 in
``src/mien/models/cards/attr_eyes.toml``.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mien.analyzers.attributes import eyes
from mien.analyzers.attributes.base import FaceContext
from mien.analyzers.attributes.heads import ConvNet, Head, sigmoid
from mien.analyzers.attributes.mouth import unknown_reason
from train import cnn
from train.common import (
    SEED,
    CropFaces,
    balanced,
    classification_report,
    crop_faces,
    fit_linear,
    group_split,
    platt,
    require_data,
    write_head,
)
from train.train_mask import facemask_faces
from train.train_mask import split as facemask_split

C = 1.0
#: The eye network: training epochs, channels per block and the random changes of each
#: training patch (no mirroring: the left eye is already mirrored, and mirroring again would
#: swap the inner and outer corners; lost detail on 60% of the patches, not 30%, so that
#: sharpness says less about the class).
EPOCHS = 20
CHANNELS = (16, 32, 64, 96)
AUGMENT = cnn.Augment(flip=False, degrade=0.6)
#: Augmented copies of each training face: closed (CEW) and open.
COPIES_CLOSED = 4
COPIES_OPEN = 1
FRACTIONS = (0.5, 0.2, 0.3)
SMILESMILED_OPEN = 4000
#: Face-mask photos (CC0): faces at least this wide (px) found by mien; their eyes are ASSUMED
#: open (nobody labelled them); copies of each training-photo eye in the network's training set.
FACEMASK_MIN_FACE_PX = 40
FACEMASK_COPIES = 3


@dataclass
class Source:
    """One data set's pictures, their faces, eye state (1 open, 0 closed) and split groups."""

    name: str
    faces: CropFaces
    open_: int
    groups: list[str]


def _rows(name: str) -> list[dict[str, str]]:
    with open(require_data(name) / "labels.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def cew_groups() -> tuple[list[dict[str, str]], list[str]]:
    """CEW rows and their split groups: the source pictures (``closed_eye_NNNN.jpg``)."""
    rows = _rows("cew_closed_faces")
    return rows, [r["file"].split("_face_")[0] for r in rows]


def cew_heldout_files() -> list[str]:
    """File names of the CEW faces never trained or calibrated on (no pipeline run)."""
    rows, groups = cew_groups()
    return [rows[k]["file"] for k in group_split(groups, FRACTIONS, seed=SEED)[2]]


def cew() -> Source:
    """CEW closed faces, grouped by source picture."""
    rows, groups = cew_groups()
    root = require_data("cew_closed_faces", "images")
    faces = crop_faces("cew_closed_faces", [root / r["file"] for r in rows])
    return Source("cew", faces, 0, groups)


def cew_heldout() -> tuple[CropFaces, npt.NDArray[np.intp]]:
    """The CEW faces never trained or calibrated on, as row indices of their faces."""
    src = cew()
    return src.faces, group_split(src.groups, FRACTIONS, seed=SEED)[2]


def _subset(faces: CropFaces, pick: npt.NDArray[np.intp]) -> CropFaces:
    return CropFaces(
        [faces.paths[k] for k in pick],
        faces.found[pick],
        faces.boxes[pick],
        faces.landmarks[pick],
        faces.mesh[pick],
        faces.head_pose[pick],
    )


def _all_faces(name: str, folder: str) -> tuple[list[dict[str, str]], CropFaces]:
    rows = _rows(name)
    root = require_data(name, folder) if folder else require_data(name)
    return rows, crop_faces(name, [root / r["file"] for r in rows])


def open_sources() -> list[Source]:
    """Open-eyed faces: a fixed subset of SMILEsmileD, Olivetti, CMU without sunglasses."""
    rows = _rows("smilesmiled")
    rng = np.random.default_rng(SEED)
    pick = np.sort(rng.choice(len(rows), SMILESMILED_OPEN, replace=False))
    # only the drawn crops go through the pipeline (the same faces as running all of them)
    root = require_data("smilesmiled")
    faces = crop_faces("smilesmiled_eyes", [root / rows[k]["file"] for k in pick])
    out = [Source("smilesmiled", faces, 1, [rows[k]["file"] for k in pick])]
    rows, faces = _all_faces("olivetti_glasses", "images")
    out.append(Source("olivetti", faces, 1, [r["subject"] for r in rows]))
    rows, faces = _all_faces("cmu_faces_sunglasses_pose", "images")
    pick = np.array([k for k, r in enumerate(rows) if r["sunglasses"] == "0"], np.intp)
    out.append(Source("cmu", _subset(faces, pick), 1, [rows[k]["subject"] for k in pick]))
    return out


Eyes = tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]]


def _stack(patches: list[npt.NDArray[np.uint8]], geometry: list[npt.NDArray[np.float32]]) -> Eyes:
    return np.stack(patches), np.stack(geometry).astype(np.float32)


def eye_rows(src: Source) -> tuple[Eyes, npt.NDArray[np.intp]]:
    """Patches and shape values of every judgeable eye of ``src``, and the picture index each
    comes from."""
    patches: list[npt.NDArray[np.uint8]] = []
    geometry: list[npt.NDArray[np.float32]] = []
    owner: list[int] = []
    for k in np.nonzero(src.faces.found)[0]:
        for patch, geo in judgeable_eyes(src.faces.context(int(k))):
            patches.append(patch)
            geometry.append(geo)
            owner.append(int(k))
    return _stack(patches, geometry), np.asarray(owner, np.intp)


def judgeable_eyes(
    ctx: FaceContext,
) -> list[tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]]]:
    """(patch, shape values) of each eye of face 0 the analyzer would judge, right eye first."""
    if unknown_reason(ctx, 0, eyes.MIN_EYE_PX, eyes.MAX_YAW) is not None:
        return []
    return [
        eyes.eye_inputs(ctx, 0, eye)
        for eye in (eyes.RIGHT, eyes.LEFT)
        if eyes.eye_unknown(ctx, 0, eye) is None
    ]


def augmented_rows(
    src: Source, rows: npt.NDArray[np.intp], copies: int, rng: np.random.Generator
) -> Eyes:
    """Patches and shape values of ``copies`` altered versions of each face of ``rows``
    (training only): the picture shrunk to 40-100% and enlarged back (lost detail), and each
    eye corner moved by a normal offset of 4% of the eye's width (imprecise alignment)."""
    patches: list[npt.NDArray[np.uint8]] = []
    geometry: list[npt.NDArray[np.float32]] = []
    for k in rows:
        if not src.faces.found[k]:
            continue
        ctx = src.faces.context(int(k))
        if unknown_reason(ctx, 0, eyes.MIN_EYE_PX, eyes.MAX_YAW) is not None:
            continue
        for _ in range(copies):
            rgb, mesh = ctx.rgb, ctx.mesh.copy()
            s = float(rng.uniform(0.4, 1.0))
            if s < 0.95 and eyes.eye_width(mesh[0], eyes.RIGHT) * s >= eyes.MIN_EYE_WIDTH_PX:
                h, w = rgb.shape[:2]
                small = cv2.resize(
                    rgb, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA
                )
                rgb = np.ascontiguousarray(
                    cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR), np.uint8
                )
            for eye in (eyes.RIGHT, eyes.LEFT):
                width = eyes.eye_width(mesh[0], eye)
                for idx in (eye.outer, eye.inner):
                    mesh[0, idx, :2] += rng.normal(0.0, 0.04 * width, 2).astype(np.float32)
            alt = FaceContext(
                rgb=rgb,
                boxes=ctx.boxes,
                landmarks=ctx.landmarks,
                mesh=mesh,
                head_pose=ctx.head_pose,
            )
            for eye in (eyes.RIGHT, eyes.LEFT):
                if eyes.eye_unknown(alt, 0, eye) is None:
                    patch, geo = eyes.eye_inputs(alt, 0, eye)
                    patches.append(patch)
                    geometry.append(geo)
    return _stack(patches, geometry)


def facemask_eyes() -> list[tuple[Eyes, npt.NDArray[np.intp]]]:
    """Patches and shape values of the judgeable eyes of the face-mask photos' faces at least
    :data:`FACEMASK_MIN_FACE_PX` wide, per part of the mask head's split by photo
    (``train.train_mask.split``: train, validation, test), with the face each eye belongs to.
    The eyes are ASSUMED open: large
    colour web-photo eyes like CEW's, so that picture size and sharpness stop telling the
    classes apart. Only the train photos are trained on; the validation photos are reported
    (used to choose), the test photos never read here."""
    faces = facemask_faces()
    out: list[tuple[Eyes, npt.NDArray[np.intp]]] = []
    for rows in facemask_split(faces)[:2]:
        patches: list[npt.NDArray[np.uint8]] = []
        geometry: list[npt.NDArray[np.float32]] = []
        owner: list[int] = []
        for k in sorted(int(r) for r in rows):
            ctx = faces[k].ctx
            if ctx is None or faces[k].width < FACEMASK_MIN_FACE_PX or not ctx.has_mesh(0):
                continue
            for patch, geo in judgeable_eyes(ctx):
                patches.append(patch)
                geometry.append(geo)
                owner.append(k)
        out.append((_stack(patches, geometry), np.asarray(owner, np.intp)))
    return out


def train_network(
    patches: npt.NDArray[np.uint8], y: npt.NDArray[np.int64], epochs: int
) -> tuple[ConvNet, float]:
    """The eye network trained on ``patches`` (closed and open weighted equally), as run by
    mien (ONNX in onnxruntime), and the seconds it took."""
    t0 = time.time()
    weights = np.where(y == 0, (y == 1).sum() / max((y == 0).sum(), 1), 1.0).astype(np.float32)
    net = cnn.train_net(
        patches, y, weights=weights, epochs=epochs, aug=AUGMENT, seed=SEED, channels=CHANNELS
    )
    return ConvNet(cnn.export_onnx(net, eyes.PATCH_SIZE)), time.time() - t0


def features(net: ConvNet, data: Eyes) -> npt.NDArray[np.float32]:
    """The head's features: the network's logit on each patch, then the 10 shape values."""
    patches, geometry = data
    logit = np.concatenate([net(patches[k : k + 1024]) for k in range(0, len(patches), 1024)])
    return np.concatenate([logit, geometry], axis=1).astype(np.float32)


def shared_by_face(
    scores: npt.NDArray[np.float64],
    face: npt.NDArray[np.intp],
    weight: float = eyes.OTHER_EYE_WEIGHT,
) -> npt.NDArray[np.float64]:
    """``scores`` (one per eye) shared between the eyes of each face, as the analyzer does
    (:func:`mien.analyzers.attributes.eyes.share_between_eyes`); ``face``: each eye's face."""
    out = np.asarray(scores, np.float64).copy()
    for f in np.unique(face):
        rows = np.nonzero(face == f)[0]
        out[rows] = eyes.share_between_eyes(out[rows], weight)
    return out


def faces_called_closed(
    called_closed: npt.NDArray[np.bool_], y: npt.NDArray[np.int64], face: npt.NDArray[np.intp]
) -> dict[int, tuple[float, int]]:
    """Per class present in ``y`` (0 closed, 1 open): the share of its faces called closed, as
    the benchmark counts (a closed face when every judged eye is called closed, an open face
    when any is), and the number of faces."""
    out: dict[int, tuple[float, int]] = {}
    for cls, rule in ((0, np.all), (1, np.any)):
        groups = np.unique(face[y == cls])
        if len(groups):
            share = float(np.mean([bool(rule(called_closed[face == f])) for f in groups]))
            out[cls] = (share, len(groups))
    return out


def face_rates(
    called_closed: npt.NDArray[np.bool_], y: npt.NDArray[np.int64], face: npt.NDArray[np.intp]
) -> str:
    """:func:`faces_called_closed` in words."""
    label = {0: "closed faces called closed", 1: "open faces called closed"}
    return "; ".join(
        f"{label[cls]} {share:.3f} of {n}"
        for cls, (share, n) in faces_called_closed(called_closed, y, face).items()
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="train and print; write nothing")
    ap.add_argument("--c", type=float, default=C)
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument(
        "--refit",
        action="store_true",
        help="keep the shipped file's network (no PyTorch needed); refit the regression and "
        "its calibration on the same splits",
    )
    args = ap.parse_args()

    # one training thread: the recipe was chosen on one thread, and the weights (not only the
    # speed) depend on the thread count
    cnn.THREADS = 1
    t0 = time.time()
    patches: list[list[npt.NDArray[np.uint8]]] = [[], [], [], []]
    geometry: list[list[npt.NDArray[np.float32]]] = [[], [], [], []]
    ys: list[list[npt.NDArray[np.int64]]] = [[], [], [], []]
    face_ids: list[list[npt.NDArray[np.intp]]] = [[], [], [], []]
    names: list[list[str]] = [[], [], [], []]
    rng = np.random.default_rng(SEED)
    next_face = 0  # face ids, unique across sources (the eyes of one face share evidence)
    for src in [cew(), *open_sources()]:
        (x_patch, x_geo), owner = eye_rows(src)
        parts = group_split(src.groups, FRACTIONS, seed=SEED)
        a_patch, a_geo = augmented_rows(
            src, parts[0], COPIES_OPEN if src.open_ else COPIES_CLOSED, rng
        )
        missing = int((~src.faces.found).sum())
        print(
            f"{src.name}: {len(src.groups)} pictures, no face or no mesh in {missing} "
            f"({missing / len(src.groups):.1%}); {len(x_geo)} judgeable eyes "
            f"({'open' if src.open_ else 'closed'})"
        )
        for p, rows in enumerate(parts):
            m = np.isin(owner, rows)
            patches[p].append(x_patch[m])
            geometry[p].append(x_geo[m])
            ys[p].append(np.full(int(m.sum()), src.open_, np.int64))
            face_ids[p].append(owner[m] + next_face)
            names[p] += [src.name] * int(m.sum())
        next_face += len(src.groups)
        # part 3: the altered copies of the training faces (each eye reported on its own)
        patches[3].append(a_patch)
        geometry[3].append(a_geo)
        ys[3].append(np.full(len(a_geo), src.open_, np.int64))
        face_ids[3].append(np.arange(len(a_geo), dtype=np.intp) + next_face)
        next_face += len(a_geo)
        names[3] += [f"{src.name} (altered)"] * len(a_geo)
    (mask_train, train_owner), (mask_val, val_owner) = facemask_eyes()
    print(
        f"facemask: {len(mask_train[1])} training-photo eyes, {len(mask_val[1])} validation-photo "
        "eyes (faces >= 40 px, assumed open)"
    )
    patches[0].append(mask_train[0])
    geometry[0].append(mask_train[1])
    ys[0].append(np.ones(len(mask_train[1]), np.int64))
    face_ids[0].append(train_owner + next_face)
    next_face += int(train_owner.max(initial=-1)) + 1
    names[0] += ["facemask"] * len(mask_train[1])
    data: list[Eyes] = [
        (np.concatenate(pv), np.concatenate(gv)) for pv, gv in zip(patches, geometry, strict=True)
    ]
    y_parts = [np.concatenate(v) for v in ys]
    f_parts = [np.concatenate(v) for v in face_ids]
    print(f"eyes ready ({time.time() - t0:.0f} s); training the network on {len(y_parts[0])} eyes")

    if args.refit:
        # the network of the shipped file, as trained by this script (version 3 onwards)
        net = Head.load(eyes.CARD, network=True).network()
        print("network: kept from the shipped file (--refit)")
    else:
        # the network sees the face-mask training eyes FACEMASK_COPIES times (last in part 0)
        extra = np.tile(mask_train[0], (FACEMASK_COPIES - 1, 1, 1))
        net, seconds = train_network(
            np.concatenate([data[0][0], extra]),
            np.concatenate([y_parts[0], np.ones(len(extra), np.int64)]),
            args.epochs,
        )
        print(f"network trained in {seconds:.0f} s ({cnn.THREADS} threads)")
    x_parts = [features(net, d) for d in data]
    # the logistic regression: the training eyes as they are and altered, closed and open
    # weighted equally
    x_train = np.concatenate([x_parts[0], x_parts[3]])
    y_train = np.concatenate([y_parts[0], y_parts[3]])
    tr = balanced(np.arange(len(y_train)), y_train, SEED)
    linear = fit_linear(x_train[tr], y_train[tr], ("closed", "open"), c=args.c, seed=SEED)
    # the calibration (Platt, folded into the regression): on the calibration part's eyes with
    # their scores shared within each face, as the analyzer shares them; closed and open eyes
    # weighted equally (exact weights: no random repetition, which moved the 0.5 point of the
    # isotonic table used before)
    raw = linear.raw_scores(x_parts[1])[:, 0].astype(np.float64)
    head = replace(platt(linear, shared_by_face(raw, f_parts[1]), y_parts[1]), net=net)
    a = float(head.coef[0, 0] / linear.coef[0, 0])
    b = float(head.intercept[0] - a * linear.intercept[0])
    print(f"calibration on {len(y_parts[1])} eyes: logit = {a:.3f} x score {b:+.3f}")
    x_parts.append(features(net, mask_val))
    y_parts.append(np.ones(len(mask_val[1]), np.int64))
    f_parts.append(val_owner + next_face)
    names.append(["facemask validation"] * len(mask_val[1]))
    for label, x, y, face, src_names in zip(
        ("training", "calibration", "held-out", "altered", "facemask val"),
        x_parts,
        y_parts,
        f_parts,
        names,
        strict=True,
    ):
        z = shared_by_face(head.raw_scores(x)[:, 0].astype(np.float64), face)
        p_open = sigmoid(z)
        proba = np.stack([1.0 - p_open, p_open], axis=1).astype(np.float32)
        called_closed = p_open <= 0.5
        per = "  ".join(
            f"{n}: {called_closed[np.asarray(src_names) == n].mean():.3f}"
            for n in dict.fromkeys(src_names)
        )
        faces_line = face_rates(called_closed, y, face)
        if len(np.unique(y)) < 2:  # the face-mask eyes: all assumed open
            print(f"{label:12s} eyes={len(y):5d}  share called closed: {per}; {faces_line}")
            continue
        rep = classification_report(proba, y)
        print(
            f"{label:12s} eyes={len(y):5d}  acc {rep['accuracy']:.3f}  bal.acc "
            f"{rep['balanced_accuracy']:.3f}  AUC {rep['roc_auc']:.3f}  ECE {rep['ece']:.3f}  "
            f"share called closed: {per}; {faces_line}"
        )
    print(f"total {time.time() - t0:.0f} s")
    if args.dry_run:
        return
    write_head(head, "attr_eyes")


if __name__ == "__main__":
    main()
