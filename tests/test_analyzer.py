"""The analyzer on real photos: detection, landmarks, pose, quality, mesh, orientation, threads."""

from __future__ import annotations

import io
import pickle
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

import mien
from mien.detect.nms import iou_matrix

from .conftest import SAMPLE, shared


def _recall(found: np.ndarray, truth: np.ndarray, iou: float = 0.5) -> float:
    if len(truth) == 0:
        return 1.0
    if len(found) == 0:
        return 0.0
    return float((iou_matrix(truth, found).max(axis=1) >= iou).mean())


def test_sample_photo(analyzer) -> None:
    r = analyzer.analyze(SAMPLE)
    assert r.ok and (r.width, r.height) == (512, 512)
    f = r.faces
    assert len(f) == 1
    x1, y1, x2, y2 = f.boxes[0]
    # The astronaut's face is in the upper middle of the picture.
    assert 150 < x1 < 220 and 30 < y1 < 100 and 240 < x2 < 300 and 150 < y2 < 210
    assert f.scores[0] > 0.8
    lm = dict(zip(mien.LANDMARK_NAMES, f.landmarks[0], strict=True))
    # Subject's right eye appears on the image left for a face turned to the camera.
    assert lm["right_eye"][0] < lm["nose_tip"][0] < lm["left_eye"][0]
    assert lm["mouth_right"][0] < lm["mouth_left"][0]
    assert max(lm["right_eye"][1], lm["left_eye"][1]) < lm["nose_tip"][1] < lm["mouth_left"][1]
    yaw, _pitch, roll = f.head_pose[0]
    assert abs(yaw) < 15 and abs(roll) < 15
    assert f.mesh.shape == (1, 478, 3)
    # Iris centres lie inside their eye, within a few pixels of the eye landmarks.
    assert np.hypot(*(f.mesh[0, 468, :2] - lm["right_eye"])) < 1e-3
    q = {k: float(v[0]) for k, v in f.quality.items()}
    assert 0.5 < q["sharpness"] <= 1 and 0.8 < q["exposure"] <= 1
    assert 30 < q["inter_eye_distance"] < 60
    assert q["face_width"] == pytest.approx(x2 - x1, abs=0.01)
    assert [m.name for m in r.models] == ["centerface", "mediapipe-face-mesh", "mediapipe-iris"]


def test_blur_lowers_sharpness(analyzer) -> None:
    import cv2

    rgb = np.asarray(Image.open(SAMPLE).convert("RGB"))
    sharp = analyzer.analyze(rgb).faces.quality["sharpness"][0]
    blurred = analyzer.analyze(cv2.GaussianBlur(rgb, (0, 0), 3)).faces.quality["sharpness"][0]
    assert blurred < sharp - 0.2


def test_dlib_photos_boxes(analyzer, dlib_boxes) -> None:
    folder = shared("dlib_examples_faces", "images")
    hits = total = 0
    for name, truth in dlib_boxes.items():
        f = analyzer.analyze(folder / name).faces
        hits += round(_recall(f.boxes, truth) * len(truth))
        total += len(truth)
    assert total >= 30
    assert hits / total >= 0.95
    dogs = analyzer.analyze(folder / "dogs.jpg").faces
    assert len(dogs) == 0


def test_exif_orientation_is_applied(analyzer, tmp_path) -> None:
    img = Image.open(SAMPLE).convert("RGB").crop((0, 0, 512, 400))  # not square
    # Store the pixels turned, with EXIF orientation 6 ("rotate 90 CW to display").
    stored = img.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "turned.jpg"
    stored.save(path, exif=exif.tobytes())
    r = analyzer.analyze(path)
    assert (r.width, r.height) == (512, 400)
    upright = analyzer.analyze(np.asarray(img))
    assert len(r.faces) == 1
    np.testing.assert_allclose(r.faces.boxes, upright.faces.boxes, atol=4)


def test_rotation_search_finds_turned_faces(dlib_boxes) -> None:
    folder = shared("dlib_examples_faces", "images")
    plain = mien.FaceAnalyzer(features="detection")
    search = mien.FaceAnalyzer(features="detection", rotation_search=True)
    found_plain = found_search = total = 0
    for name, truth in dlib_boxes.items():
        rgb = np.asarray(Image.open(folder / name).convert("RGB"))
        turned = np.ascontiguousarray(np.rot90(rgb, 2))  # upside down
        h, w = rgb.shape[:2]
        t = truth.copy()
        t[:, [0, 2]] = w - truth[:, [2, 0]]
        t[:, [1, 3]] = h - truth[:, [3, 1]]
        found_plain += round(_recall(plain.analyze(turned).faces.boxes, t) * len(t))
        found_search += round(_recall(search.analyze(turned).faces.boxes, t) * len(t))
        total += len(t)
    assert found_search / total >= 0.9
    assert found_search > found_plain


def test_small_faces_in_a_large_picture_are_found_by_tiling(dlib_boxes) -> None:
    folder = shared("dlib_examples_faces", "images")
    name = "2007_007763.jpg"  # 7 faces of ~37 px in a 500x375 photo, shrunk to ~22 px
    rgb = np.asarray(Image.open(folder / name).convert("RGB").resize((300, 225)))
    canvas = np.full((4000, 6000, 3), 127, np.uint8)
    canvas[2500:2725, 3500:3800] = rgb
    truth = dlib_boxes[name] * 0.6 + np.array([3500, 2500, 3500, 2500], np.float32)
    tiled = mien.FaceAnalyzer(features="detection").analyze(canvas).faces
    untiled = mien.FaceAnalyzer(features="detection", tiling=False).analyze(canvas).faces
    assert _recall(tiled.boxes, truth) >= 6 / 7
    assert _recall(tiled.boxes, truth) > _recall(untiled.boxes, truth)


def test_options_threshold_min_face_max_faces(dlib_boxes) -> None:
    path = shared("dlib_examples_faces", "images", "2007_007763.jpg")
    base = mien.FaceAnalyzer(features="detection").analyze(path).faces
    strict = mien.FaceAnalyzer(features="detection", threshold=0.9).analyze(path).faces
    assert len(strict) <= len(base) and (strict.scores >= 0.9).all()
    big = mien.FaceAnalyzer(features="detection", min_face=1000).analyze(path).faces
    assert len(big) == 0
    two = mien.FaceAnalyzer(features="detection", max_faces=2).analyze(path).faces
    assert len(two) == 2 and np.all(np.diff(two.scores) <= 0)


def test_bad_inputs_are_recorded_and_the_batch_goes_on(analyzer, tmp_path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(SAMPLE.read_bytes()[:3000])
    text = tmp_path / "notes.jpg"
    text.write_text("not a picture")
    results = list(analyzer.analyze_many([broken, SAMPLE, text, tmp_path / "missing.png"]))
    codes = [r.error.code if r.error else None for r in results]
    assert codes == ["InvalidImage", None, "InvalidImage", "NotFound"]
    assert len(results[1].faces) == 1
    with pytest.raises(mien.InvalidImageError):
        analyzer.analyze(broken)


def test_inputs_of_every_kind_give_the_same_faces(analyzer) -> None:
    data = SAMPLE.read_bytes()
    rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    a = analyzer.analyze(SAMPLE).faces
    for source in (data, rgb, Image.open(io.BytesIO(data))):
        np.testing.assert_allclose(analyzer.analyze(source).faces.boxes, a.boxes, atol=1e-3)


def test_threads_share_one_analyzer(analyzer, dlib_boxes) -> None:
    folder = shared("dlib_examples_faces", "images")
    paths = [folder / n for n in sorted(dlib_boxes)] * 2
    serial = [analyzer.analyze(p).faces for p in paths]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda p: analyzer.analyze(p).faces, paths))
    for a, b in zip(serial, parallel, strict=True):
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-4)
        np.testing.assert_allclose(a.mesh, b.mesh, atol=1e-3)


def _count_faces(args):
    analyzer, path = args
    return len(analyzer.analyze(path).faces)


def test_analyzer_pickles_into_worker_processes(analyzer) -> None:
    clone = pickle.loads(pickle.dumps(analyzer))
    assert clone.options == analyzer.options
    with ProcessPoolExecutor(2) as pool:
        counts = list(pool.map(_count_faces, [(analyzer, SAMPLE)] * 2))
    assert counts == [1, 1]
