"""The mask head's colour-invariant training copies (train/synth_cover.py; issue 17, fourth
round), on the bundled sample face (no mask) through mien's own pipeline."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest
from train import synth_cover as S
from train.train_mask import RECOLOURED, synthetic

from mien.analyzers.attributes import base
from mien.analyzers.attributes import mask as M

SIZE = M.NET_CROP_SIZE


@pytest.fixture(scope="module")
def ctx(sample_face_ctx: base.FaceContext) -> base.FaceContext:
    return sample_face_ctx


@pytest.fixture(scope="module")
def crop_pts(ctx: base.FaceContext) -> tuple[np.ndarray, np.ndarray]:
    pts = S.mesh_in_crop(ctx, SIZE, M.CROP[1], M.CROP[2])
    assert pts is not None
    return M.net_crop(ctx, 0), pts


def _lum(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)


def _changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pixels clearly changed (more than 8 of 255 in some channel)."""
    return np.asarray((np.abs(a.astype(int) - b.astype(int)) > 8).any(axis=2))


def _mouth(pts: np.ndarray) -> tuple[slice, slice]:
    """The box around the lips (mesh points 61, 291: mouth corners; 0, 17: lips' middle)."""
    x0, x1 = int(pts[61, 0]) - 1, int(pts[291, 0]) + 2
    y0, y1 = int(pts[0, 1]) - 1, int(pts[17, 1]) + 2
    return slice(y0, y1), slice(x0, x1)


def test_mesh_lands_on_the_aligned_crop(crop_pts) -> None:
    _, pts = crop_pts
    # eyes at 40% of the height, nose bridge between them, chin below the mouth, in the crop
    eyes_y = pts[[33, 263], 1].mean()
    assert abs(eyes_y - M.CROP[1] * SIZE) < 0.06 * SIZE
    assert pts[S.NOSE_BRIDGE, 1] < pts[S.NOSE_TIP, 1] < pts[0, 1] < pts[152, 1] <= SIZE + 2


def test_a_face_without_mesh_gets_none(ctx: base.FaceContext) -> None:
    no_mesh = replace(ctx, mesh=np.full_like(ctx.mesh, np.nan), _crops={})
    assert S.mesh_in_crop(no_mesh, SIZE, M.CROP[1], M.CROP[2]) is None
    assert synthetic(no_mesh, M.net_crop(no_mesh, 0), 1, np.random.default_rng(0)) == []


def test_cover_hides_nose_and_mouth_only_and_is_seeded(crop_pts) -> None:
    crop, pts = crop_pts
    covered = S.covered(crop, pts, np.random.default_rng(1))
    assert np.array_equal(covered, S.covered(crop, pts, np.random.default_rng(1)))
    changed = _changed(covered, crop)
    rows = np.argwhere(changed)[:, 0]
    # nothing above the nose bridge (but a soft edge of a few pixels) is painted
    assert rows.min() >= pts[S.NOSE_BRIDGE, 1] - 3
    mouth = _mouth(pts)
    assert changed[mouth].mean() > 0.95
    # no lip or tooth shows through: the mouth's fine detail (Laplacian) is mostly gone
    lap_before = np.abs(cv2.Laplacian(_lum(crop), cv2.CV_32F))[mouth].mean()
    lap_after = np.abs(cv2.Laplacian(_lum(covered), cv2.CV_32F))[mouth].mean()
    assert lap_after < 0.6 * lap_before, (lap_after, lap_before)


def test_recolouring_changes_the_cover_colour_and_keeps_the_rest(crop_pts) -> None:
    crop, pts = crop_pts
    masked = S.covered(crop, pts, np.random.default_rng(4))  # a face "with a mask"
    colours = []
    for seed in range(6):
        got = S.recoloured(masked, pts, np.random.default_rng(seed))
        assert got is not None
        changed = _changed(got, masked)
        assert np.argwhere(changed)[:, 0].min() >= pts[S.NOSE_BRIDGE, 1] - 3
        colours.append(got[_mouth(pts)].reshape(-1, 3).mean(axis=0))
    # random colours: the cover's mean colour varies widely between copies
    assert np.ptp(np.asarray(colours), axis=0).max() > 60


def test_darkened_lower_face_keeps_its_detail(crop_pts) -> None:
    crop, pts = crop_pts
    dark = S.darkened(crop, pts, np.random.default_rng(2))
    mouth = _mouth(pts)
    assert _lum(dark)[mouth].mean() < 0.85 * _lum(crop)[mouth].mean()
    # the eyes and above are untouched
    top = int(pts[[33, 263], 1].max()) + 1
    assert np.array_equal(dark[:top], crop[:top])
    # the lips are still there: the mouth's light and dark parts follow the original's
    a, b = _lum(crop)[mouth].ravel(), _lum(dark)[mouth].ravel()
    assert np.corrcoef(a, b)[0, 1] > 0.6  # stubble speckle lowers it a little


def test_copies_and_their_labels(ctx: base.FaceContext, crop_pts) -> None:
    crop, _ = crop_pts
    rng = np.random.default_rng(0)
    # a bare face: a pasted cover is "worn" (1), a darkened lower face stays "none" (0)
    assert [label for _, label in synthetic(ctx, crop, 0, rng, (1.0, 1.0))] == [1, 0]
    assert synthetic(ctx, crop, 0, rng, (0.0, 0.0)) == []
    # a masked face keeps its label on each recoloured copy
    masked = S.covered(crop, crop_pts[1], rng)
    got = synthetic(ctx, masked, 2, rng)
    assert len(got) == RECOLOURED and {label for _, label in got} == {2}
