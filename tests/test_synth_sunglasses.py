"""Synthetic sunglasses drawn in the photo around the mesh's eye contours
(train/synth_sunglasses.py), on the bundled sample face through mien's own pipeline."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from train.synth_sunglasses import MESH_KINDS, SHAPES, draw_mesh_sunglasses

from mien.analyzers.attributes import base
from mien.analyzers.attributes.glasses import eye_crop, lens_measurements


@pytest.fixture(scope="module")
def ctx(sample_face_ctx: base.FaceContext) -> base.FaceContext:
    return sample_face_ctx


@pytest.mark.parametrize("kind", sorted(MESH_KINDS))
def test_glasses_are_drawn_on_the_eyes_only_and_seeded(ctx: base.FaceContext, kind: str) -> None:
    scene = np.random.default_rng(1).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    drawn = draw_mesh_sunglasses(ctx, np.random.default_rng(3), kind, scene)
    again = draw_mesh_sunglasses(ctx, np.random.default_rng(3), kind, scene)
    assert drawn is not None and again is not None
    assert np.array_equal(drawn.rgb, again.rgb)  # seeded: the same glasses
    assert ctx.rgb is not drawn.rgb and drawn.rgb.shape == ctx.rgb.shape
    changed = np.argwhere((drawn.rgb != ctx.rgb).any(axis=2))
    assert len(changed) > 0
    # only a region around the eyes is drawn on: nothing below the nose tip or far above the brows
    mesh = ctx.mesh[0, :, :2]
    eye_y = float(mesh[[33, 263], 1].mean())
    u = float(np.hypot(*(mesh[263] - mesh[33])))
    assert changed[:, 0].max() <= eye_y + 1.6 * u and changed[:, 0].min() >= eye_y - 1.6 * u
    assert not drawn._crops and drawn.landmarks is not ctx.landmarks


def test_dark_lenses_darken_the_lens_areas_clear_ones_barely(ctx: base.FaceContext) -> None:
    bare = lens_measurements(eye_crop(ctx, 0))[0]  # lens areas / skin, log
    rng = np.random.default_rng(5)
    dark = [draw_mesh_sunglasses(ctx, rng, "dark") for _ in range(8)]
    clear = [draw_mesh_sunglasses(ctx, rng, "clear") for _ in range(8)]
    dark_v = np.median([lens_measurements(eye_crop(d, 0))[0] for d in dark if d is not None])
    clear_v = np.median([lens_measurements(eye_crop(d, 0))[0] for d in clear if d is not None])
    assert dark_v < bare - 0.3, (dark_v, bare)
    assert clear_v > dark_v + 0.3, (clear_v, dark_v)
    assert MESH_KINDS == {"dark": 1, "mirror": 1, "clear": 0} and len(SHAPES) == 5


def test_a_face_without_mesh_gets_none(ctx: base.FaceContext) -> None:
    no_mesh = replace(ctx, mesh=np.full_like(ctx.mesh, np.nan), _crops={})
    assert draw_mesh_sunglasses(no_mesh, np.random.default_rng(0), "dark") is None
