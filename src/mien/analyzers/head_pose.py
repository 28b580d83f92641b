"""Head pose (yaw, pitch, roll in degrees) from the 3-D face mesh.

The mesh model predicts x, y in pixels and z (depth) on the same scale, so the head's own
axes can be read off the mesh directly (a weak-perspective model; no camera intrinsics needed):

* the *lateral* axis runs from the subject's right to their left, averaged over symmetric
  point pairs (eye corners, mouth corners, cheeks, jaw);
* the *facing* axis is the normal of the plane that best fits the central face points
  (least squares), pointing towards the camera;
* the *vertical* axis completes the right-handed frame.

Angles follow the conventions of :mod:`mien.types`: yaw > 0 when the subject turns to their own
left, pitch > 0 when they look up, roll > 0 when the head tilts to their left shoulder.
``PITCH_OFFSET_DEG`` is the angle between the fitted face plane and the image plane for a face
looking straight into the camera (measured by ``bench/head_pose.py --calibrate``; see the
comment at the constant and docs/output.md).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

# Symmetric pairs (subject's right point, subject's left point) of the face mesh.
_PAIRS = np.array(
    [
        (33, 263),
        (133, 362),
        (61, 291),
        (234, 454),
        (93, 323),
        (132, 361),
        (58, 288),
        (70, 300),
        (105, 334),
        (50, 280),
        (36, 266),
    ],
    dtype=np.intp,
)
# Central face points used to fit the face plane: eyes, nose bridge, cheeks, mouth, forehead.
_PLANE = np.array(
    [
        10,
        151,
        9,
        8,
        168,
        6,
        33,
        133,
        362,
        263,
        234,
        454,
        93,
        323,
        61,
        291,
        0,
        17,
        152,
        50,
        280,
        70,
        300,
        105,
        334,
        205,
        425,
        58,
        288,
    ],
    dtype=np.intp,
)

# Raw pitch (offset 0) of faces looking straight into the camera: the median over the 50
# "straight" images without sunglasses of cmu_faces_sunglasses_pose (a set used for nothing
# else), measured by `.venv/bin/python bench/head_pose.py --calibrate` (-19.29 -> -19.3;
# -19.14 before the mirrored detection pass changed the crops slightly).
# The 128x120 CMU images have pixels 1.25x taller than wide (4:3 frames stored as 128x120;
# the faces' eye-to-mouth / eye-width ratio is 0.84 as stored vs 0.72 on HELEN photos, 0.71
# after the correction), so the script first resizes them to 128x96; as stored they give
# -12.1, because the vertical stretch flattens the apparent pitch.
PITCH_OFFSET_DEG = -19.3


def head_pose_from_mesh(mesh: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """``(yaw, pitch, roll)`` in degrees for one (478 or 468, 3) mesh in image pixels."""
    # Camera frame: X to the image right, Y up, Z towards the camera.
    p = mesh[:, :3].astype(np.float64) * np.array([1.0, -1.0, -1.0])
    lateral = (p[_PAIRS[:, 1]] - p[_PAIRS[:, 0]]).mean(axis=0)
    lateral /= np.linalg.norm(lateral) + 1e-12
    pts = p[_PLANE]
    centred = pts - pts.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    facing = vt[2]
    if facing[2] < 0:
        facing = -facing
    facing -= lateral * float(facing @ lateral)
    facing /= np.linalg.norm(facing) + 1e-12
    vertical = np.cross(facing, lateral)
    vertical /= np.linalg.norm(vertical) + 1e-12
    yaw = math.degrees(math.atan2(facing[0], facing[2]))
    pitch = math.degrees(math.atan2(facing[1], math.hypot(facing[0], facing[2]))) - PITCH_OFFSET_DEG
    roll = math.degrees(math.atan2(-lateral[1], lateral[0]))
    return np.array([yaw, pitch, roll], dtype=np.float32)


def head_pose_batch(meshes: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Head pose of every mesh of an (N, P, 3) array, as (N, 3) degrees."""
    if len(meshes) == 0:
        return np.zeros((0, 3), np.float32)
    return np.stack([head_pose_from_mesh(m) for m in meshes]).astype(np.float32)
