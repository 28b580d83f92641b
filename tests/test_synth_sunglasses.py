"""Synthetic sunglasses drawn in the photo around the mesh's eye contours
(train/synth_sunglasses.py), on the bundled sample face through mien's own pipeline."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from train.synth_sunglasses import (
    MESH_GLASSES,
    MESH_KINDS,
    SHAPES,
    SUN_TRANSMISSION,
    TINT_TRANSMISSION,
    draw_mesh_sunglasses,
)

import mien
from mien.analyzers.attributes import base
from mien.analyzers.attributes.glasses import eye_crop, lens_measurements
from mien.media.image import load_image

from .conftest import SAMPLE


@pytest.fixture(scope="module")
def ctx() -> base.FaceContext:
    rgb = load_image(SAMPLE).rgb
    faces = mien.FaceAnalyzer(features="landmarks,head_pose,mesh").analyze_array(rgb)
    assert len(faces) == 1 and faces.mesh is not None and faces.head_pose is not None
    assert faces.landmarks is not None
    return base.FaceContext(rgb, faces.boxes, faces.landmarks, faces.mesh, faces.head_pose)


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
    assert MESH_KINDS == {"dark": 1, "mirror": 1, "tint": 0, "clear": 0, "fringe": 0}
    assert MESH_GLASSES["fringe"] == 0 and len(SHAPES) == 6


def _eye_light(ctx: base.FaceContext, drawn: base.FaceContext) -> float:
    """Mean brightness of small boxes on both eyes (mesh eye corners' middle), drawn / bare."""
    mesh = ctx.mesh[0, :, :2]
    u = float(np.hypot(*(mesh[263] - mesh[33])))
    r = max(1, round(0.08 * u))
    out = []
    for a, b in ((33, 133), (362, 263)):
        x, y = ((mesh[a] + mesh[b]) / 2).round().astype(int)
        box = (slice(y - r, y + r + 1), slice(x - r, x + r + 1))
        out.append(drawn.rgb[box].mean() / max(float(ctx.rgb[box].mean()), 1.0))
    return float(np.mean(out))


def test_the_opacity_boundary_sunglasses_hide_the_eye_tints_show_it(
    ctx: base.FaceContext,
) -> None:
    """Sunglasses let through at most 35% of the light at the eye, light tints (not
    sunglasses) at least 65%, and the bare face under a fringe keeps its eyes as they were."""
    assert SUN_TRANSMISSION[1] < TINT_TRANSMISSION[0]
    rng = np.random.default_rng(11)
    light = {
        kind: np.median(
            [
                _eye_light(ctx, d)
                for _ in range(10)
                if (d := draw_mesh_sunglasses(ctx, rng, kind)) is not None
            ]
        )
        for kind in ("dark", "tint", "fringe")
    }
    assert light["dark"] < 0.45, light  # highlights and haze add a little light
    assert light["tint"] > 0.55, light
    assert 0.85 < light["fringe"] < 1.15, light


def test_a_face_without_mesh_gets_none(ctx: base.FaceContext) -> None:
    no_mesh = replace(ctx, mesh=np.full_like(ctx.mesh, np.nan), _crops={})
    assert draw_mesh_sunglasses(no_mesh, np.random.default_rng(0), "dark") is None


def test_the_face_is_found_again_through_the_drawn_lenses(ctx: base.FaceContext) -> None:
    """Version 5: the drawn face's eye points and mesh are mien's own guesses on the drawn
    photo - near the bare face's, not the same (version 4 only jittered them)."""
    rng = np.random.default_rng(2)
    drawn = draw_mesh_sunglasses(ctx, rng, "dark")
    assert drawn is not None and drawn.has_mesh(0)
    u = float(np.hypot(*(ctx.landmarks[0, 1] - ctx.landmarks[0, 0])))
    moved = np.hypot(*(drawn.landmarks[0, :2] - ctx.landmarks[0, :2]).T)
    assert (moved < 0.5 * u).all(), moved / u
    assert not np.array_equal(drawn.mesh, ctx.mesh)
    jittered = draw_mesh_sunglasses(ctx, np.random.default_rng(2), "dark", redetect=False)
    assert jittered is not None and np.array_equal(jittered.mesh, ctx.mesh)
