"""The redaction primitives: options, covering regions of a picture, the audit report."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mien.media.image import load_image
from mien.redact import CoveredRegion, RedactionReport, RedactOptions, redact_regions, region_mask
from mien.redact.draw import _needed, _windows, covered_boxes
from mien.redact.options import parse_color
from tests.conftest import SAMPLE

FACE = np.array([[170.0, 40.0, 270.0, 160.0]])  # the astronaut's face (checked by the detector)
SHAPES = ("ellipse", "box")


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return load_image(SAMPLE).rgb


def test_options_defaults_and_validation() -> None:
    o = RedactOptions()
    assert (o.method, o.shape, o.scale, o.color) == ("blur", "ellipse", 1.8, (0, 0, 0))
    for bad in (
        {"method": "smudge"},
        {"shape": "circle"},
        {"scale": 0.5},
        {"scale": 9},
        {"scale": "x"},
        {"color": (0, 0)},
        {"color": (0, 0, 256)},
        {"color": (0.5, 0, 0)},
        {"blocks": 1},
    ):
        with pytest.raises(ValueError):
            RedactOptions(**bad)  # type: ignore[arg-type]
    assert RedactOptions(scale=2).scale == 2.0


def test_parse_color() -> None:
    assert parse_color("#ff8000") == (255, 128, 0)
    assert parse_color("10, 20,30") == (10, 20, 30)
    for bad in ("red", "#ff80", "1,2,300", "1,2"):
        with pytest.raises(ValueError):
            parse_color(bad)


@pytest.mark.parametrize("method", ["blur", "pixelate", "fill"])
@pytest.mark.parametrize("shape", ["ellipse", "box"])
def test_covers_the_face_and_nothing_else(astronaut: np.ndarray, method: str, shape: str) -> None:
    opts = RedactOptions(method=method, shape=shape)  # type: ignore[arg-type]
    before = astronaut.copy()
    out = redact_regions(astronaut, FACE, opts)
    assert np.array_equal(astronaut, before), "the input must not be modified"
    assert out.shape == astronaut.shape and out.dtype == np.uint8
    mask = region_mask(astronaut.shape[:2], FACE, opts)
    # Everything outside the covered area is untouched, bit for bit.
    assert np.array_equal(out[~mask], astronaut[~mask])
    # The face box itself is (nearly) all inside the covered area with the default scale 1.8.
    x1, y1, x2, y2 = FACE[0].astype(int)
    assert mask[y1:y2, x1:x2].mean() > 0.97
    # The face's detail is gone: little high-frequency energy left in the central face area.
    inner = slice(y1 + 15, y2 - 15), slice(x1 + 15, x2 - 15)
    grad_before = np.abs(np.diff(astronaut[inner].astype(float), axis=1)).mean()
    grad_after = np.abs(np.diff(out[inner].astype(float), axis=1)).mean()
    assert grad_after < 0.35 * grad_before
    # And the pixels changed strongly.
    assert np.abs(out[inner].astype(int) - astronaut[inner].astype(int)).mean() > 8


def test_blur_keeps_too_few_samples_to_recover(astronaut: np.ndarray) -> None:
    out = redact_regions(astronaut, FACE, RedactOptions(method="blur", shape="box"))
    win = out[
        int(FACE[0, 1] - 18) : int(FACE[0, 3] + 18), int(FACE[0, 0] - 15) : int(FACE[0, 2]) + 15
    ]
    # Shrinking the covered area to 6x6 and back loses almost nothing more: it held no detail.
    import cv2

    small = cv2.resize(win, (6, 6), interpolation=cv2.INTER_AREA)
    back = cv2.resize(small, win.shape[1::-1], interpolation=cv2.INTER_LINEAR)
    assert np.abs(back.astype(int) - win.astype(int)).mean() < 6


def test_pixelate_is_coarse_blocks(astronaut: np.ndarray) -> None:
    out = redact_regions(astronaut, FACE, RedactOptions(method="pixelate", shape="box"))
    win = out[40:160, 170:270].reshape(-1, 3)
    # At most blocks x blocks distinct colours (8 across the longer side of the grown box).
    assert len(np.unique(win, axis=0)) <= 8 * 8


def test_fill_colour(astronaut: np.ndarray) -> None:
    out = redact_regions(astronaut, FACE, RedactOptions(method="fill", color=(255, 0, 128)))
    assert (out[100, 220] == (255, 0, 128)).all()


def test_scale_grows_area_and_clips_to_picture() -> None:
    rgb = np.random.default_rng(0).integers(0, 255, (50, 60, 3), dtype=np.uint8)
    small = region_mask((50, 60), [[20, 20, 30, 30]], RedactOptions(scale=1.0, shape="box"))
    big = region_mask((50, 60), [[20, 20, 30, 30]], RedactOptions(scale=2.0, shape="box"))
    assert small.sum() == 100 and big.sum() == 400
    # Partly outside: clipped, no error; wholly outside, NaN or empty: skipped.
    boxes = [[-10, -10, 10, 10], [100, 100, 120, 120], [np.nan, 0, 5, 5], [5, 5, 5, 5]]
    out = redact_regions(rgb, boxes, RedactOptions(method="fill", shape="box", scale=1.0))
    assert (out[:10, :10] == 0).all()
    assert np.array_equal(out[12:, 12:], rgb[12:, 12:])
    cb = covered_boxes([[-10, -10, 10, 10]], 1.0, 60, 50)
    assert cb.tolist() == [[0, 0, 10, 10]]


def test_tiny_and_empty_inputs() -> None:
    rgb = np.full((20, 20, 3), 200, np.uint8)
    rgb[9, 9] = 0
    out = redact_regions(rgb, [[9.2, 9.2, 9.6, 9.6]], RedactOptions(method="fill", color=(1, 2, 3)))
    assert (out[9, 9] == (1, 2, 3)).all()  # a sub-pixel face still covers its pixel
    assert np.array_equal(redact_regions(rgb, np.zeros((0, 4))), rgb)
    with pytest.raises(ValueError):
        redact_regions(rgb.astype(np.float32), FACE)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        redact_regions(rgb[..., 0], FACE)  # type: ignore[arg-type]


def test_overlapping_faces_stay_covered(astronaut: np.ndarray) -> None:
    boxes = np.array([[170.0, 40.0, 270.0, 160.0], [200.0, 60.0, 300.0, 180.0]])
    out = redact_regions(astronaut, boxes, RedactOptions(method="fill"))
    mask = region_mask(astronaut.shape[:2], boxes, RedactOptions(method="fill"))
    assert (out[mask] == 0).all()


def test_report_to_dict_is_json() -> None:
    regions = (
        CoveredRegion((1, 2, 3, 4), 0.9),
        CoveredRegion((5, 6, 7, 8), 0.7, "tracked", frame_index=3, timestamp_ms=100.0, track_id=2),
        CoveredRegion((5, 6, 7, 8), 0.7, "interpolated", frame_index=4, timestamp_ms=133.3),
    )
    rep = RedactionReport("in.mp4", "out.mp4", "video", regions, frames=10, width=8, height=9)
    d = json.loads(json.dumps(rep.to_dict()))
    assert d["counts"] == {
        "regions": 3,
        "detected": 1,
        "tracked": 1,
        "interpolated": 1,
        "suspect": 0,
        "frames": 10,
        "frames_with_regions": 3,
        "suspect_frames": 0,
    }
    assert d["suspect_frames"] == [] and rep.complete
    assert d["regions"][1] == {
        "box": [5.0, 6.0, 7.0, 8.0],
        "score": 0.7,
        "source": "tracked",
        "frame_index": 3,
        "timestamp_ms": 100.0,
        "track_id": 2,
    }
    assert d["options"] == {"method": "blur", "shape": "ellipse", "scale": 1.8}
    assert d["created"].endswith("Z")
    with pytest.raises(ValueError):
        CoveredRegion((1, 2, 3, 4), 0.5, "guessed")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        RedactionReport("a", "b", "audio")  # type: ignore[arg-type]


@pytest.mark.parametrize("method", ["blur", "pixelate", "fill"])
def test_area_whose_centre_is_outside_covers_a_pixel_and_does_not_crash(method: str) -> None:
    """Issue 14: a box whose centre lies outside the picture and whose clipped ellipse covers
    no pixel centre crashed with IndexError in ``_window_mask`` (a panning crowd clip)."""
    rgb = np.random.default_rng(1).integers(0, 255, (720, 1280, 3), dtype=np.uint8)
    opts = RedactOptions(method=method, color=(1, 2, 3))
    # centre (-30, -30), grown half-size 36 px: its window is the picture's 6x6 corner, but the
    # ellipse reaches no pixel centre there; same at the opposite corner.
    boxes = np.array([[-50.0, -50.0, -10.0, -10.0], [1290.0, 730.0, 1330.0, 770.0]])
    out = redact_regions(rgb, boxes, opts)
    mask = region_mask(rgb.shape[:2], boxes, opts)
    assert mask[0, 0] and mask[719, 1279] and mask.sum() == 2
    assert not np.array_equal(out[0, 0], rgb[0, 0]) or method != "fill"
    assert np.array_equal(out[~mask], rgb[~mask])


def _nested_boxes(seed: int, n: int) -> np.ndarray:
    """Boxes as a suspect video frame has them: faces of 1-40 px (some tiny, some past the
    edges), each again grown 1.5x around its centre, a few given twice."""
    rng = np.random.default_rng(seed)
    c = rng.uniform(-10, 130, (n, 2))
    half = rng.uniform(0.2, 20, (n, 2))
    faces = np.concatenate([c - half, c + half], axis=1)
    grown = np.concatenate([c - 1.5 * half, c + 1.5 * half], axis=1)
    return np.concatenate([faces, grown, faces[: n // 3]])[rng.permutation(n * 2 + n // 3)]


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 40), shape=st.sampled_from(SHAPES))
def test_areas_inside_others_are_drawn_once_and_the_covered_pixels_stay_the_same(
    seed: int, n: int, shape: str
) -> None:
    boxes = _nested_boxes(seed, n)
    opts = RedactOptions(method="fill", shape=shape, color=(255, 0, 0))  # type: ignore[arg-type]
    img = np.zeros((120, 120, 3), np.uint8)
    out = redact_regions(img, boxes, opts)
    changed = (out != img).any(axis=2)
    assert np.array_equal(changed, region_mask(img.shape[:2], boxes, opts))
    # The one-by-one cover of every area (what was drawn before) covers the same pixels.
    each = np.zeros(img.shape[:2], bool)
    for b in boxes:
        each |= region_mask(img.shape[:2], b[None], opts)
    assert np.array_equal(changed, each)


@pytest.mark.parametrize("shape", SHAPES)
def test_a_grown_copy_of_every_face_leaves_only_the_grown_ones_to_draw(shape: str) -> None:
    boxes = _nested_boxes(3, 30)
    wins = _windows(boxes, 1.8, 120, 120)
    kept = _needed(wins, shape)
    assert 0 < len(kept) <= 30 < len(wins)
    # Nothing kept lies inside another kept area.
    assert _needed(kept, shape) == kept


def test_many_areas_are_compared_in_row_blocks_and_past_the_cap_all_drawn() -> None:
    from mien.redact.draw import _NEEDED_ROWS, NEEDED_MAX

    boxes = _nested_boxes(7, 150)  # 350 areas: two row blocks
    opts = RedactOptions(method="fill", color=(255, 0, 0))
    wins = _windows(boxes, opts.scale, 120, 120)
    assert len(wins) > _NEEDED_ROWS
    kept = _needed(wins, opts.shape)
    assert len(kept) < len(wins) and _needed(kept, opts.shape) == kept
    img = np.zeros((120, 120, 3), np.uint8)
    changed = (redact_regions(img, boxes, opts) != img).any(axis=2)
    assert np.array_equal(changed, region_mask(img.shape[:2], boxes, opts))
    many = [wins[0]] * (NEEDED_MAX + 1)
    assert _needed(many, opts.shape) == many
