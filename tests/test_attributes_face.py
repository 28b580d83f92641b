"""The face-shape attributes ``smile``, ``eyes_open`` and ``mouth_open`` on real labelled faces.

Labelled faces come from ../shared/data (the tests skip with a message when it is absent):
GENKI-4K smiles (never trained on: the smile head is trained on SMILEsmileD) and CEW closed
eyes from the held-out split of train/train_eyes.py (never trained or calibrated on).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import jsonschema
import numpy as np
import pytest
from PIL import Image

import mien
from mien.analyzers.attributes import IMPLEMENTATIONS, eyes, mouth, smile
from mien.analyzers.attributes.base import MIN_SHARPNESS, FaceContext
from mien.analyzers.quality import face_sharpness
from mien.features import AVAILABLE_FEATURES
from mien.models.registry import load_card
from mien.types import Faces

from .conftest import SAMPLE, shared

NAMES = ("smile", "eyes_open", "mouth_open")
SCHEMA = json.loads(
    (Path(__file__).resolve().parents[1] / "src/mien/schema/output.schema.json").read_text()
)


@pytest.fixture(scope="module")
def attr_analyzer() -> mien.FaceAnalyzer:
    return mien.FaceAnalyzer(features=",".join(NAMES), threshold=0.3, num_threads=2)


def main_face(faces: Faces, shape: tuple[int, ...]) -> int | None:
    """The largest face nearest the centre of a face crop (as train.common.face_in_crop)."""
    if not len(faces):
        return None
    h, w = shape[:2]
    mid = (faces.boxes[:, :2] + faces.boxes[:, 2:]) / 2
    dist = np.hypot(*(mid - np.array([w / 2, h / 2])).T) / max(h, w)
    return int(np.argmax(faces.widths * faces.heights / (1.0 + dist)))


def rgb_of(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_blurred_face_is_unknown_with_a_reason(attr_analyzer: mien.FaceAnalyzer) -> None:
    # the same real face, sharp and then blurred (sigma 3 px on a ~100 px face): still found,
    # but every attribute declines to judge it instead of guessing
    rgb = rgb_of(SAMPLE)
    sharp = attr_analyzer.analyze_array(rgb)
    assert face_sharpness(rgb, sharp.boxes[0]) >= MIN_SHARPNESS
    assert all(col.values[0] is not None for col in sharp.attributes.values())
    rgb_blurred = cv2.GaussianBlur(rgb, (0, 0), 3)
    blurred = attr_analyzer.analyze_array(rgb_blurred)
    assert len(blurred) == 1 and face_sharpness(rgb_blurred, blurred.boxes[0]) < MIN_SHARPNESS
    assert set(blurred.attributes) == set(NAMES)
    for col in blurred.attributes.values():
        assert col.values[0] is None
        assert (col.reasons[0] or "").startswith("face too blurred (sharpness 0.")


def test_registered_and_refusal_free() -> None:
    assert set(NAMES) <= set(IMPLEMENTATIONS)
    assert set(NAMES) <= set(AVAILABLE_FEATURES)
    # a smile is a mouth shape; no emotion word appears in what these attributes say
    for module in (smile, eyes, mouth):
        doc = (module.__doc__ or "").lower()
        for word in ("happy", "happiness", "joy", "mood"):
            assert word not in doc.replace("not an emotion", "")


def test_sample_photo(attr_analyzer: mien.FaceAnalyzer) -> None:
    # the astronaut smiles broadly with her teeth showing, lips apart, both eyes open
    faces = attr_analyzer.analyze(SAMPLE).faces
    assert faces is not None and len(faces) == 1
    rec = faces.to_records()[0]["attributes"]
    assert rec["smile"]["value"] is True and rec["smile"]["confidence"] >= 0.8
    assert rec["eyes_open"]["value"] == {"left": True, "right": True}
    assert rec["eyes_open"]["confidence"] >= 0.8
    assert rec["mouth_open"]["value"] is True
    for name in NAMES:
        assert 0.5 <= rec[name]["confidence"] <= 1.0
        assert "reason" not in rec[name]


def test_genki_smiles_cross_data_set(attr_analyzer: mien.FaceAnalyzer) -> None:
    root = shared("genki4k_crops")
    with open(root / "labels.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["crop_status"] == "ok"]
    smiles = [r for r in rows if r["smile"] == "1"]
    others = [r for r in rows if r["smile"] == "0"]
    picked = smiles[:60] + others[:60]
    right = judged = uncertain = 0
    confidences = []
    for r in picked:
        rgb = rgb_of(root / "images" / r["file"])
        faces = attr_analyzer.analyze_array(rgb)
        i = main_face(faces, rgb.shape)
        if i is None:
            continue
        col = faces.attributes["smile"]
        if col.values[i] is None:
            assert col.reasons[i]
            # below the abstention band (issue 17): judged, but the answer is withheld
            uncertain += (col.reasons[i] or "").startswith("uncertain (")
            continue
        judged += 1
        right += col.values[i] == (r["smile"] == "1")
        confidences.append(float(col.confidence[i]))
    # 87 answered and 33 withheld as uncertain at the card's band (0.90) when measured
    assert judged + uncertain >= 100, f"only {judged} + {uncertain} of 120 GENKI faces judged"
    assert judged >= 70, f"only {judged} of 120 GENKI faces answered"
    assert right / judged >= 0.90, f"{right}/{judged} right"
    band = load_card("attr_smile").abstain_below
    assert band is not None and all(band <= c <= 1.0 for c in confidences)


def test_cew_closed_eyes_held_out(attr_analyzer: mien.FaceAnalyzer) -> None:
    root = shared("cew_closed_faces")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from train.train_eyes import cew_heldout_files

    # the first 40 held-out faces (all found): with version 3 of the head, the smile / wide-lid
    # doubts of eyes.doubt_reason and the abstention band of 0.90 (issue 17), measured 31 judged,
    # all 31 called closed (0.775 of the faces, 1.0 of those judged); without the band 37 were
    # judged and 35 called closed. The 9 unknown: 1 too blurred, 1 "narrowed by a smile" (a
    # laughing man, eyes shut), 1 "the lids' shape says open" (closed, heavy eye make-up), 6
    # "uncertain" below the band. A null is a lost closed eye here: the floors keep abstention
    # from eating recall, and the answers given must stay right.
    closed = judged = found = 0
    for name in cew_heldout_files()[:40]:
        rgb = rgb_of(root / "images" / name)
        faces = attr_analyzer.analyze_array(rgb)
        i = main_face(faces, rgb.shape)
        if i is None:
            continue
        found += 1
        value = faces.attributes["eyes_open"].values[i]
        if value is None:
            continue
        judged += 1
        known = [v for v in value.values() if v is not None]
        closed += not any(known)
    assert found >= 38 and judged >= 28, f"{judged} of {found} found faces judged"
    assert closed / found >= 0.7, f"{closed}/{found} found faces called closed"
    assert closed / judged >= 0.95, f"{closed}/{judged} judged faces called closed"


def test_smiling_open_eyes_are_not_called_closed(attr_analyzer: mien.FaceAnalyzer) -> None:
    # pyfeat_media/multi_face.jpg (MIT / Pexels): the faces labelled by eye with open eyes and a
    # smile (train/labels/pyfeat_multi_face.csv; three, with their teeth showing). A smile
    # narrows the eyes from below; before version 4 of the eyes head every one of them came out
    # "closed" (0.50-0.82). Open or unknown is fine; "closed" with confidence >= 0.8 is a bug.
    from mien.detect.nms import iou_matrix

    photo = shared("pyfeat_media", "multi_face.jpg")
    labels = Path(__file__).resolve().parents[1] / "train/labels/pyfeat_multi_face.csv"
    with open(labels, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["eyes_open"] == "1" and r["smile"] == "1"]
    assert len(rows) == 3
    truth = np.array([[float(r[k]) for k in ("xmin", "ymin", "xmax", "ymax")] for r in rows])
    faces = attr_analyzer.analyze_array(rgb_of(photo))
    iou = iou_matrix(truth, faces.boxes)
    col = faces.attributes["eyes_open"]
    for t in range(len(rows)):
        i = int(np.argmax(iou[t]))
        assert iou[t, i] >= 0.5, f"labelled face {t} not found"
        value, confidence = col.values[i], float(col.confidence[i])
        if value is None:
            continue
        called_closed = [side for side, v in value.items() if v is False]
        assert not (called_closed and confidence >= 0.8), (
            f"face {t} (open eyes, smiling): {value} with confidence {confidence:.2f}"
        )


def test_screwed_up_open_eyes_are_not_called_closed(attr_analyzer: mien.FaceAnalyzer) -> None:
    # HELEN (evaluation only) helen_testset/3175828165_1.jpg: a grimacing woman whose eyes are
    # plainly open (crossed; human-landmark eye aspect ratio >= 0.2 both eyes). Before the
    # iris evidence (eyes.IRIS_SHOWS, chosen on CEW's training and calibration closed faces) the
    # head answered "closed" with confidence 0.94; now its irises between the whites withhold it.
    photo = shared("helen_afw_300w", "helen_testset", "3175828165_1.jpg")
    faces = attr_analyzer.analyze_array(rgb_of(photo))
    assert len(faces) >= 1
    i = int(np.argmax(faces.widths))
    col = faces.attributes["eyes_open"]
    value = col.values[i]
    if value is None:
        assert (col.reasons[i] or "").startswith("open or closed cannot be told: an iris shows")
    else:
        assert False not in value.values(), (value, float(col.confidence[i]))


def test_tiny_and_small_faces_are_unknown_with_a_reason(attr_analyzer: mien.FaceAnalyzer) -> None:
    rgb = rgb_of(SAMPLE)
    # face box ~12 px: no mesh
    tiny = cv2.resize(rgb, (72, 72), interpolation=cv2.INTER_AREA)
    faces = attr_analyzer.analyze_array(np.ascontiguousarray(tiny))
    assert len(faces) == 1 and faces.widths[0] < 16
    for name in NAMES:
        col = faces.attributes[name]
        assert col.values[0] is None and col.reasons[0] == "no face mesh"
        assert np.isnan(col.confidence[0])
    rec = faces.to_records()[0]["attributes"]
    assert rec["smile"] == {"value": None, "confidence": None, "reason": "no face mesh"}


def test_small_face_rule_and_turned_eye() -> None:
    # a face context built by hand: the rules read the eye distance, the yaw and the mesh
    mesh = np.zeros((1, 478, 3), np.float32)
    mesh[0, :, 0] = np.linspace(0, 8, 478)
    ctx = FaceContext(
        rgb=np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8),
        boxes=np.array([[10, 10, 30, 30]], np.float32),
        landmarks=np.array([[[14, 18], [22, 18], [18, 22], [15, 26], [21, 26]]], np.float32),
        mesh=mesh,
        head_pose=np.array([[0.0, 0.0, 0.0]], np.float32),
    )
    why = mouth.unknown_reason(ctx, 0, 10.0, 60.0)
    assert why == "face too small (8 px between the eyes; needs 10)"
    ctx.landmarks[0, 1, 0] = 40.0
    ctx.head_pose[0, 0] = 62.0
    assert mouth.unknown_reason(ctx, 0, 10.0, 60.0) == "head turned too far (yaw 62°)"
    # turned to the subject's left: the left eye is hidden, the right one is not
    ctx.head_pose[0, 0] = 45.0
    assert (eyes.eye_unknown(ctx, 0, eyes.LEFT) or "").startswith("head turned away from the left")


def test_mouth_ratio_and_confidence() -> None:
    assert mouth.open_probability(mouth.OPEN_RATIO) == pytest.approx(0.5)
    assert mouth.open_probability(0.0) < 0.01 and mouth.open_probability(0.3) > 0.99
    mesh = np.zeros((478, 3), np.float32)
    mesh[78, 0], mesh[308, 0] = 0.0, 40.0
    for upper, lower in mouth.INNER_LIP_PAIRS:
        mesh[upper, 1], mesh[lower, 1] = 10.0, 18.0
    assert mouth.inner_lip_ratio(mesh) == pytest.approx(8.0 / 40.0)


def test_cli_output_follows_the_schema() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mien", "analyze", "--features", ",".join(NAMES), str(SAMPLE)],
        capture_output=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    rec = json.loads(proc.stdout.decode().splitlines()[0])
    jsonschema.Draft202012Validator(SCHEMA).validate(rec)
    (face,) = rec["faces"]
    assert set(face["attributes"]) == set(NAMES)
    assert {"mien-attr-smile", "mien-attr-eyes"} <= {m["name"] for m in rec["models"]}
    eyes_value = face["attributes"]["eyes_open"]["value"]
    assert set(eyes_value) == {"left", "right"}
