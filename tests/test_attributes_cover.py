"""The attributes mask, eyeglasses, sunglasses and headwear on real labelled faces.

Every check runs the shipped analyzers through mien's pipeline on faces that were never used to
train or calibrate them (the held-out photos and subjects of train/train_mask.py and
train/train_glasses.py, and the evaluation-only sets). The thresholds sit a margin below the
figures of bench/attributes_cover.py (docs/attributes.md), so a change that makes an attribute
clearly worse fails here.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import jsonschema
import numpy as np
import pytest

import mien
from mien.analyzers.attributes import create
from mien.analyzers.attributes.base import FaceContext
from mien.detect.nms import iou_matrix
from mien.types import MESH_POINTS

from .conftest import shared

REPO = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((REPO / "src/mien/schema/output.schema.json").read_text())
COVER = ("mask", "eyeglasses", "sunglasses", "headwear")


@pytest.fixture(scope="module")
def cover_analyzer() -> mien.FaceAnalyzer:
    return mien.FaceAnalyzer(features=",".join(COVER), threshold=0.3, num_threads=2)


@pytest.fixture(scope="module")
def attrs():
    return {a.name: a for a in create(COVER)}


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _main_face(r: mien.ImageResult) -> int:
    f = r.faces
    assert f is not None and len(f), f"no face found in {r.source}"
    return int(np.argmax(f.widths * f.heights))


# -- mask ------------------------------------------------------------------------------------


def _facemask_test_photos() -> dict[str, list[dict[str, str]]]:
    from train.common import SEED, group_split
    from train.train_mask import FRACTIONS

    rows = _rows(shared("facemask_kaggle_voc", "annotations.csv"))
    by_image: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        by_image[r["image"]].append(r)
    images = sorted(by_image)
    # The same split as train/train_mask.py: by photo, fixed seed (the groups are the photos).
    _, _, test = group_split(images, FRACTIONS, seed=SEED)
    return {images[int(i)]: by_image[images[int(i)]] for i in test}


def test_mask_on_held_out_photos(cover_analyzer) -> None:
    photos = _facemask_test_photos()
    truth_of = {"without_mask": "none", "with_mask": "worn", "mask_weared_incorrect": "worn"}
    got: list[tuple[str, str]] = []
    for image in sorted(photos)[:40]:
        rows = photos[image]
        r = cover_analyzer.analyze(shared("facemask_kaggle_voc", "images", image))
        f = r.faces
        assert f is not None
        truth = np.array([[float(x[k]) for k in ("xmin", "ymin", "xmax", "ymax")] for x in rows])
        if not len(f):
            continue
        iou = iou_matrix(truth.astype(np.float32), f.boxes)
        mask = f.attributes["mask"]
        for t, row in enumerate(rows):
            j = int(np.argmax(iou[t]))
            if truth[t, 2] - truth[t, 0] < 20 or iou[t, j] < 0.4 or mask.values[j] is None:
                continue
            value = "none" if mask.values[j] == "none" else "worn"
            got.append((truth_of[row["label"]], value))
            assert 0.0 <= mask.confidence[j] <= 1.0
    none = [v for t, v in got if t == "none"]
    covered = [v for t, v in got if t == "worn"]
    assert len(none) >= 8 and len(covered) >= 40, (len(none), len(covered))
    # Bench (all test photos, faces >= 20 px): recall 0.90 (none), about 0.95 (covered).
    assert np.mean([v == "none" for v in none]) >= 0.75
    assert np.mean([v == "worn" for v in covered]) >= 0.85


# -- eyewear ---------------------------------------------------------------------------------


def _held_out_subjects(name: str, label: str) -> list[dict[str, str]]:
    """Rows of the test subjects of ``name``, split as train/train_glasses.py splits them."""
    from train.train_glasses import LABELS, _subject_parts

    rows = _rows(shared(name, "labels.csv"))
    if name == "cmu_faces_sunglasses_pose":
        wearers = {
            r["subject"]: int(r["eyeglasses_without_sunglasses"])
            for r in _rows(LABELS / "cmu_eyeglasses_subjects.csv")
        }
        positive = [wearers[r["subject"]] for r in rows]
    else:
        positive = [int(r[label]) for r in rows]
    parts = _subject_parts([r["subject"] for r in rows], positive)
    return [r for r, p in zip(rows, parts, strict=True) if p == "test"]


def test_eyeglasses_on_held_out_olivetti_subjects(cover_analyzer) -> None:
    rows = _held_out_subjects("olivetti_glasses", "eyeglasses")
    right = []
    withheld = 0
    for r in rows:
        res = cover_analyzer.analyze(shared("olivetti_glasses", "images", r["file"]))
        i = _main_face(res)
        col = res.faces.attributes["eyeglasses"]
        value = col.values[i]
        if value is None:  # only ever withheld below the abstention band (issue 17)
            assert (col.reasons[i] or "").startswith("uncertain ("), col.reasons[i]
            withheld += 1
            continue
        right.append(value == bool(int(r["eyeglasses"])))
        assert res.faces.attributes["sunglasses"].values[i] is False
    assert sum(int(r["eyeglasses"]) for r in rows) >= 5
    assert withheld <= len(rows) // 5
    assert np.mean(right) >= 0.95  # bench: 1.00 on these 50 faces (before the bands)


def test_sunglasses_on_held_out_cmu_subjects(attrs) -> None:
    from PIL import Image

    analyzer = mien.FaceAnalyzer(features="landmarks", threshold=0.3, num_threads=2)
    rows = [
        r
        for r in _held_out_subjects("cmu_faces_sunglasses_pose", "sunglasses")
        if r["pose"] in ("straight", "up")
    ]
    right = []
    withheld = 0
    for r in rows:
        with Image.open(shared("cmu_faces_sunglasses_pose", "images", r["file"])) as im:
            rgb = np.asarray(im.convert("RGB"))  # PGM: mien's reader does not take it
        res = analyzer.analyze(rgb)
        i = _main_face(res)
        f = res.faces
        no_mesh = np.full((1, MESH_POINTS, 3), np.nan, np.float32)
        no_pose = np.full((1, 3), np.nan, np.float32)
        ctx = FaceContext(rgb, f.boxes[i : i + 1], f.landmarks[i : i + 1], no_mesh, no_pose)
        col = attrs["sunglasses"](ctx)
        if col.values[0] is None:  # only ever withheld below the abstention band (issue 17)
            assert (col.reasons[0] or "").startswith("uncertain ("), col.reasons[0]
            withheld += 1
            continue
        right.append(col.values[0] == bool(int(r["sunglasses"])))
    assert len(rows) >= 10
    # sunglasses version 4 withholds 3 of these 16 faces (0.73, 0.74 and 0.89, all on the right
    # side), version 3 at most 2; every answer given is right
    assert withheld <= len(rows) // 5
    assert np.mean(right) >= 0.95  # bench (all poses): 1.00 of the answers


def test_eyewear_on_real_web_photos(cover_analyzer) -> None:
    rows = _rows(shared("glasses_slinko", "labels.csv"))
    picked = [r for r in rows if r["file"].startswith("st_")][:10]
    right = []
    for r in picked:
        res = cover_analyzer.analyze(shared("glasses_slinko", "images", r["file"]))
        if res.faces is None or not len(res.faces):
            continue
        value = res.faces.attributes["eyeglasses"].values[_main_face(res)]
        right.append(value == bool(int(r["eyeglasses_any"])))
    assert len(right) >= 8
    assert np.mean(right) >= 0.75  # bench (47 faces): 0.96


def test_sunglasses_selfies(cover_analyzer) -> None:
    """Weak labels (every selfie is filed as 'with sunglasses'): eyeglasses, which includes
    dark glasses, is called on most; sunglasses on fewer - mien's known weak point (bench: 0.93
    and 0.58 recall without the band)."""
    rows = _rows(shared("sunglasses_selfies_scraped", "labels.csv"))[:60]
    eye, sun = [], []
    for r in rows:
        res = cover_analyzer.analyze(shared("sunglasses_selfies_scraped", "images", r["file"]))
        if res.faces is None or not len(res.faces):
            continue
        i = _main_face(res)
        if res.faces.attributes["eyeglasses"].values[i] is None:
            continue
        eye.append(res.faces.attributes["eyeglasses"].values[i])
        # withheld as uncertain (issue 17) counts as not found
        sun.append(res.faces.attributes["sunglasses"].values[i] is True)
    assert len(eye) >= 45
    assert np.mean(eye) >= 0.75
    # measured 0.17 (8 of 46): head version 3 finds more (0.58 of all selfies), but most of
    # its "yes" answers fall below the band of 0.90 and are withheld
    assert np.mean(sun) >= 0.12


# -- headwear --------------------------------------------------------------------------------


def test_headwear_on_hand_labelled_faces(cover_analyzer) -> None:
    photos = _facemask_test_photos()
    labels = [
        r
        for r in _rows(REPO / "train" / "labels" / "facemask_headwear_eyewear.csv")
        if r["image"] in photos and r["headwear"].strip()
    ]
    by_image: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in labels:
        by_image[r["image"]].append(r)
    # the head without its band (what train/abstention.py reads), for the ranking check
    raw = mien.FaceAnalyzer(features="headwear", threshold=0.3, num_threads=2)
    raw._attributes = create(["headwear"], _withhold=False)
    p_yes: list[float] = []
    truth: list[int] = []
    withheld: list[int] = []  # truth of the faces answered "uncertain" (below the band)
    raw_yes: list[float] = []
    raw_truth: list[int] = []
    for image in sorted(by_image):
        res = cover_analyzer.analyze(shared("facemask_kaggle_voc", "images", image))
        raw_res = raw.analyze(shared("facemask_kaggle_voc", "images", image))
        f = res.faces
        if f is None or not len(f):
            continue
        boxes = np.array(
            [[float(r[k]) for k in ("xmin", "ymin", "xmax", "ymax")] for r in by_image[image]],
            np.float32,
        )
        iou = iou_matrix(boxes, f.boxes)
        col = f.attributes["headwear"]
        assert raw_res.faces is not None and np.array_equal(raw_res.faces.boxes, f.boxes)
        raw_col = raw_res.faces.attributes["headwear"]
        for t, r in enumerate(by_image[image]):
            j = int(np.argmax(iou[t]))
            if iou[t, j] < 0.4:
                continue
            if raw_col.values[j] is not None:
                c = float(raw_col.confidence[j])
                raw_yes.append(c if raw_col.values[j] else 1.0 - c)
                raw_truth.append(int(r["headwear"]))
            if col.values[j] is None:
                if (col.reasons[j] or "").startswith("uncertain ("):
                    withheld.append(int(r["headwear"]))
                continue
            c = float(col.confidence[j])
            p_yes.append(c if col.values[j] else 1.0 - c)
            truth.append(int(r["headwear"]))
    # since the abstention bands (issue 17) most covered heads are withheld as uncertain (the
    # head finds 3 of 15): the ranking is checked on the raw head, the rest on the answers given
    assert len(raw_truth) >= 100 and sum(raw_truth) >= 10
    assert _roc_auc(raw_truth, raw_yes) >= 0.8  # bench: 0.88
    assert len(truth) + len(withheld) >= 100 and sum(truth) + sum(withheld) >= 10
    assert len(truth) >= 60
    assert np.mean([(p >= 0.5) == bool(t) for p, t in zip(p_yes, truth, strict=True)]) >= 0.9


def _roc_auc(truth: list[int], score: list[float]) -> float:
    """ROC AUC as the share of (positive, negative) pairs ranked right (ties count half)."""
    t = np.asarray(truth, bool)
    s = np.asarray(score, np.float64)
    pos, neg = s[t][:, None], s[~t][None, :]
    return float(((pos > neg).sum() + 0.5 * (pos == neg).sum()) / (pos.size * neg.size))


# -- unknown, with a reason ------------------------------------------------------------------


def _context(eye_distance: float, yaw: float = float("nan"), top: float = 100.0) -> FaceContext:
    # texture, so that the face is not "too blurred" (flat grey has sharpness 0)
    rgb = np.random.default_rng(0).integers(0, 256, (400, 400, 3), dtype=np.uint8)
    cx, cy = 200.0, top
    right, left = (cx - eye_distance / 2, cy), (cx + eye_distance / 2, cy)
    nose, mouth_r, mouth_l = (cx, cy + 0.6 * eye_distance), (cx - 20, cy + 40), (cx + 20, cy + 40)
    lm = np.array([[right, left, nose, mouth_r, mouth_l]], np.float32)
    box = np.array(
        [[cx - eye_distance, cy - eye_distance, cx + eye_distance, cy + 2 * eye_distance]],
        np.float32,
    )
    mesh = np.full((1, MESH_POINTS, 3), np.nan, np.float32)
    pose = np.array([[yaw, 0.0, 0.0]], np.float32)
    return FaceContext(rgb, box, lm, mesh, pose)


def test_tiny_face_is_unknown_with_a_reason(attrs) -> None:
    ctx = _context(eye_distance=3.0)
    for name in COVER:
        col = attrs[name](ctx)
        assert col.values[0] is None and np.isnan(col.confidence[0])
        assert col.reasons[0] is not None and col.reasons[0].startswith("face too small (3 px")


def test_turned_head_is_unknown_with_a_reason(attrs) -> None:
    ctx = _context(eye_distance=40.0, yaw=70.0)
    for name in COVER:
        col = attrs[name](ctx)
        assert col.values[0] is None
        assert col.reasons[0] == "head turned too far (yaw 70°)"


def test_headwear_needs_the_top_of_the_head(attrs) -> None:
    col = attrs["headwear"](_context(eye_distance=40.0, top=30.0))
    assert col.values[0] is None and col.reasons[0] == "top of the head outside the picture"
    col = attrs["headwear"](_context(eye_distance=40.0, top=200.0))
    # judged: a value, or withheld below the abstention band (issue 17) - not "outside"
    if col.values[0] is None:
        assert (col.reasons[0] or "").startswith("uncertain (confidence ")
    else:
        assert isinstance(col.values[0], bool) and 0.5 <= col.confidence[0] <= 1.0


# -- command line ----------------------------------------------------------------------------


def test_cli_output_follows_the_schema() -> None:
    photo = shared("facemask_kaggle_voc", "images", "maksssksksss1.jpg")
    proc = subprocess.run(
        [sys.executable, "-m", "mien", "analyze", "--features", ",".join(COVER), str(photo)],
        capture_output=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    (rec,) = [json.loads(x) for x in proc.stdout.decode().splitlines() if x.strip()]
    jsonschema.Draft202012Validator(SCHEMA).validate(rec)
    names = {m["name"] for m in rec["models"]}
    assert {f"mien-attr-{n}" for n in COVER} <= names
    assert rec["faces"]
    for face in rec["faces"]:
        assert set(face["attributes"]) == set(COVER)
        mask = face["attributes"]["mask"]
        assert mask["value"] in ("none", "worn", "worn_incorrectly", None)
        for a in face["attributes"].values():
            assert (a["value"] is None) == ("reason" in a) == (a["confidence"] is None)


def test_eyes_open_is_unknown_behind_sunglasses() -> None:
    """Dark lenses show no eyelid: where the sunglasses head calls them, eyes_open is unknown
    with that reason (the issue's "unknown when hidden"); clear glasses and bare eyes are
    still judged."""
    analyzer = mien.FaceAnalyzer(features="eyes_open,sunglasses", threshold=0.3, num_threads=2)
    hidden = 0
    for r in _rows(shared("sunglasses_selfies_scraped", "labels.csv"))[:40]:
        res = analyzer.analyze(shared("sunglasses_selfies_scraped", "images", r["file"]))
        if res.faces is None or not len(res.faces):
            continue
        i = _main_face(res)
        eyes_col = res.faces.attributes["eyes_open"]
        if res.faces.attributes["sunglasses"].values[i] is True:
            assert eyes_col.values[i] is None
            assert (eyes_col.reasons[i] or "").startswith("eyes hidden by sunglasses")
        # below its band the sunglasses answer is withheld as uncertain: the eyes are then not
        # said to be hidden, only that they may be (issue 17: base.HiddenBy)
        why = eyes_col.reasons[i] or ""
        if why.startswith("eyes may be hidden by sunglasses"):
            assert res.faces.attributes["sunglasses"].values[i] is None
            assert "(sunglasses uncertain: yes " in why
        hidden += why.startswith(("eyes hidden by sunglasses", "eyes may be hidden by sunglasses"))
    assert hidden >= 10  # bench: sunglasses called on 40% of the selfies
    bare = 0
    for r in _held_out_subjects("olivetti_glasses", "eyeglasses")[:20]:
        res = analyzer.analyze(shared("olivetti_glasses", "images", r["file"]))
        i = _main_face(res)
        reason = res.faces.attributes["eyes_open"].reasons[i] or ""
        assert "sunglasses" not in reason, (r["file"], reason)
        bare += res.faces.attributes["eyes_open"].values[i] is not None
    assert bare >= 15


def test_mouth_attributes_are_unknown_behind_a_mask() -> None:
    """smile and mouth_open read the mouth: where the mask head calls a mask worn they are
    unknown with that reason; labelled bare faces are still judged."""
    analyzer = mien.FaceAnalyzer(features="mask,smile,mouth_open", threshold=0.3, num_threads=2)
    photos = _facemask_test_photos()
    hidden = 0
    bare: list[bool] = []
    for image in sorted(photos)[:40]:
        rows = photos[image]
        f = analyzer.analyze(shared("facemask_kaggle_voc", "images", image)).faces
        assert f is not None
        if not len(f):
            continue
        truth = np.array([[float(x[k]) for k in ("xmin", "ymin", "xmax", "ymax")] for x in rows])
        iou = iou_matrix(truth.astype(np.float32), f.boxes)
        for j in range(len(f)):
            if f.attributes["mask"].values[j] == "worn":
                # unknown: behind the mask, or for a reason checked first (too small...)
                reasons = {f.attributes[n].reasons[j] for n in ("smile", "mouth_open")}
                assert f.attributes["smile"].values[j] is None
                assert f.attributes["mouth_open"].values[j] is None
                assert len(reasons) == 1 and None not in reasons
                hidden += next(iter(reasons)).startswith("mouth hidden by a mask (mask ")
        for t, row in enumerate(rows):
            j = int(np.argmax(iou[t]))
            wide = truth[t, 2] - truth[t, 0] >= 40
            if row["label"] == "without_mask" and wide and iou[t, j] >= 0.4:
                # judged: a value, or withheld as uncertain below the band (issue 17)
                smile_ = f.attributes["smile"]
                bare.append(
                    smile_.values[j] is not None
                    or (smile_.reasons[j] or "").startswith("uncertain (")
                )
    assert hidden >= 40
    assert len(bare) >= 5 and np.mean(bare) >= 0.6, bare


# -- confident wrong answers on the face-mask test photos (issue 17) ---------------------------

#: (image, labelled box, attribute, the wrong value the head gave, its confidence then). All on
#: the face-mask TEST photos, looked at by eye (labels right; docs/attributes.md, "Confident
#: wrong answers"). The bands were re-chosen on the training/validation photos only.
WITHHELD_NOW = (
    ("maksssksksss216.jpg", (225, 44, 261, 93), "mask", "none", 0.935),  # black mask, turned
    ("maksssksksss110.jpg", (42, 157, 85, 186), "mask", "worn", 0.924),  # head bowed in a crowd
    ("maksssksksss616.jpg", (249, 110, 263, 129), "mask", "worn", 0.934),  # blurred, beside a mask
    ("maksssksksss400.jpg", (165, 95, 214, 148), "headwear", False, 0.905),  # wide-brimmed hat
    ("maksssksksss444.jpg", (242, 146, 282, 184), "headwear", False, 0.958),  # headscarf
)
#: Still answered wrong at >= 0.8 after this change: the heads' own mistakes, far above any band
#: chosen on validation data (a skin-pink mask, a novelty cover, a yellow patterned mask on a
#: turned child, thin rimless glasses, a squinting face read as glasses, thin round frames).
STILL_WRONG = (
    ("maksssksksss478.jpg", (246, 134, 362, 250), "mask", "none", 0.99),
    ("maksssksksss621.jpg", (299, 46, 386, 141), "mask", "none", 0.98),
    ("maksssksksss318.jpg", (315, 59, 337, 88), "mask", "none", 0.975),
    ("maksssksksss809.jpg", (290, 43, 335, 93), "eyeglasses", False, 0.999),
    ("maksssksksss640.jpg", (195, 103, 240, 150), "eyeglasses", True, 0.94),
    ("maksssksksss31.jpg", (209, 90, 278, 165), "eyeglasses", False, 0.905),
)


def _answer_at(analyzer: mien.FaceAnalyzer, image: str, box: tuple[int, ...], name: str):
    r = analyzer.analyze(shared("facemask_kaggle_voc", "images", image))
    f = r.faces
    assert f is not None and len(f)
    iou = iou_matrix(np.asarray([box], np.float32), f.boxes)[0]
    j = int(np.argmax(iou))
    assert iou[j] >= 0.4, f"the labelled face of {image} is not found"
    col = f.attributes[name]
    return col.values[j], col.confidence[j], col.reasons[j]


@pytest.mark.parametrize("image,box,name,wrong,was", WITHHELD_NOW)
def test_named_confident_wrong_answers_are_withheld(
    cover_analyzer, image, box, name, wrong, was
) -> None:
    value, conf, reason = _answer_at(cover_analyzer, image, box, name)
    # never the wrong value with confidence: withheld below the re-chosen band
    assert value != wrong or conf < 0.8, (value, conf, was)
    assert value is None and (reason or "").startswith("uncertain ("), (value, conf, reason)


@pytest.mark.xfail(strict=True, reason="the head's own confident mistake (docs/attributes.md)")
@pytest.mark.parametrize("image,box,name,wrong,was", STILL_WRONG)
def test_named_confident_wrong_answers_that_remain(
    cover_analyzer, image, box, name, wrong, was
) -> None:
    value, conf, _ = _answer_at(cover_analyzer, image, box, name)
    assert value != wrong or conf < 0.8, (value, conf, was)
