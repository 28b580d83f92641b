"""Dense face landmarks: the MediaPipe face-mesh and iris models on face crops.

For each detected face, the crop is rotated so the eyes are level and scaled to the mesh
model's 192x192 input (the face box grown 1.5x, as MediaPipe does). A second pass re-crops
from the first pass's mesh, which centres the face better. The iris model then runs on
64x64 crops around each eye and the two iris centres (5 points each) complete the mesh to 478
points. All points are mapped back to the pixel frame of the input image.

LiteRT interpreters are not thread-safe, so each thread gets its own (created lazily).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
from ai_edge_litert.interpreter import Interpreter

from mien.landmarks import topology as tp
from mien.models.registry import ModelCard, load_card, verified_model_bytes

MESH_SIZE = 192
IRIS_SIZE = 64
MESH_ROI_SCALE = 1.5
IRIS_ROI_SCALE = 2.3


@dataclass(frozen=True)
class MeshResult:
    """The mesh of one face: (478, 3) points in image pixels and a face-presence score."""

    points: npt.NDArray[np.float32]
    presence: float


def _affine_to_crop(
    center: tuple[float, float], size: float, angle: float, out: int
) -> npt.NDArray[np.float64]:
    """2x3 matrix mapping image pixels to an ``out``-px crop of side ``size`` rotated by ``angle``.

    ``angle`` (radians) is the direction of the crop's x axis in the image.
    """
    s = out / size
    c, si = math.cos(angle), math.sin(angle)
    # crop = s * R(-angle) @ (p - center) + out/2
    m = np.array([[c * s, si * s, 0.0], [-si * s, c * s, 0.0]])
    m[:, 2] = np.array([out / 2, out / 2]) - m[:, :2] @ np.asarray(center)
    return m


def _invert(m: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.asarray(cv2.invertAffineTransform(m), dtype=np.float64)


def _apply(m: npt.NDArray[np.float64], pts: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    return (pts[:, :2] @ m[:, :2].T + m[:, 2]).astype(np.float32)


#: What LiteRT's C++ code writes straight to file descriptor 2 when it creates its first CPU
#: delegate, once per process: noise on every run of mien, also with ``-q``.
LITERT_INFO = b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU."

_STDERR_LOCK = threading.Lock()


@contextlib.contextmanager
def quiet_litert_info() -> Iterator[None]:
    """Drop LiteRT's XNNPACK INFO line from stderr while the block runs; keep anything else.

    Python's logging cannot reach it (C++ writes to fd 2), so fd 2 points to a temporary file
    during the block; afterwards it is restored and every captured line other than that INFO
    line is written back to stderr, so real warnings and errors are not lost. Other threads'
    stderr output during the block is captured and written back too (a lock keeps two blocks
    from nesting). Without a usable fd 2 the block runs as is.
    """
    with _STDERR_LOCK:
        try:
            tmp = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the `with tmp` below
        except OSError:
            yield
            return
        with tmp:
            try:
                saved = os.dup(2)
            except OSError:  # no fd 2 (closed): nothing to protect
                saved = -1
            if saved < 0:
                yield
                return
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(tmp.fileno(), 2)
            try:
                yield
            finally:
                with contextlib.suppress(Exception):
                    sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                tmp.seek(0)
                kept = [
                    line
                    for line in tmp.read().splitlines(keepends=True)
                    if line.rstrip(b"\r\n") != LITERT_INFO
                ]
                _write_all(2, b"".join(kept))


def _write_all(fd: int, data: bytes) -> None:
    with contextlib.suppress(OSError):
        while data:
            data = data[os.write(fd, data) :]


class _Runner:
    """One LiteRT interpreter per thread for one model file."""

    def __init__(self, card: ModelCard, num_threads: int) -> None:
        self._blob = verified_model_bytes(card)
        self._threads = num_threads or None
        self._local = threading.local()

    def __call__(self, batch: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
        it = getattr(self._local, "it", None)
        if it is None:
            with quiet_litert_info():
                it = Interpreter(model_content=self._blob, num_threads=self._threads)
                it.allocate_tensors()
            self._local.it = it
            self._local.inp = it.get_input_details()[0]["index"]
            self._local.outs = [d["index"] for d in it.get_output_details()]
        it.set_tensor(self._local.inp, batch)
        it.invoke()
        return [np.array(it.get_tensor(i)) for i in self._local.outs]


class FaceMesher:
    """Runs the face-mesh and iris models; verified against their model cards on load."""

    def __init__(self, num_threads: int = 1) -> None:
        self.mesh_card = load_card("face_mesh")
        self.iris_card = load_card("iris")
        self._mesh = _Runner(self.mesh_card, num_threads)
        self._iris = _Runner(self.iris_card, num_threads)

    def _run_mesh(
        self, rgb: npt.NDArray[np.uint8], center: tuple[float, float], size: float, angle: float
    ) -> tuple[npt.NDArray[np.float32], float]:
        m = _affine_to_crop(center, size, angle, MESH_SIZE)
        crop = cv2.warpAffine(
            rgb, m, (MESH_SIZE, MESH_SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
        )
        x = (crop.astype(np.float32) / 255.0)[None]
        out = self._mesh(x)
        flat = next(o for o in out if o.size == 468 * 3)
        logit = float(next(o for o in out if o.size == 1).reshape(-1)[0])
        pts = flat.reshape(468, 3)
        xy = _apply(_invert(m), pts)
        z = pts[:, 2:3] * (size / MESH_SIZE)
        presence = 1.0 / (1.0 + math.exp(-max(min(logit, 50.0), -50.0)))
        return np.concatenate([xy, z], axis=1).astype(np.float32), presence

    @staticmethod
    def _roi_from_mesh(pts: npt.NDArray[np.float32]) -> tuple[tuple[float, float], float, float]:
        r, l_ = pts[tp.RIGHT_EYE_OUTER, :2], pts[tp.LEFT_EYE_OUTER, :2]
        angle = math.atan2(float(l_[1] - r[1]), float(l_[0] - r[0]))
        # Box of the mesh in the rotated frame, grown by MESH_ROI_SCALE, square.
        c, s = math.cos(angle), math.sin(angle)
        rot = pts[:, :2] @ np.array([[c, -s], [s, c]], np.float32)
        lo, hi = rot.min(0), rot.max(0)
        mid = (lo + hi) / 2
        center = mid @ np.array([[c, s], [-s, c]], np.float32)
        size = float(max(hi - lo)) * MESH_ROI_SCALE
        return (float(center[0]), float(center[1])), size, angle

    def _run_iris(
        self,
        rgb: npt.NDArray[np.uint8],
        outer: npt.NDArray[np.float32],
        inner: npt.NDArray[np.float32],
        mirror: bool,
    ) -> npt.NDArray[np.float32]:
        """The 5 iris points (centre first) of one eye, (5, 3) in image pixels."""
        p, q = (outer, inner) if not mirror else (inner, outer)
        # The crop's x axis runs from the image-left corner to the image-right corner.
        angle = math.atan2(float(q[1] - p[1]), float(q[0] - p[0]))
        center = (float((p[0] + q[0]) / 2), float((p[1] + q[1]) / 2))
        size = max(float(np.hypot(*(q[:2] - p[:2]))) * IRIS_ROI_SCALE, 4.0)
        m = _affine_to_crop(center, size, angle, IRIS_SIZE)
        crop = cv2.warpAffine(
            rgb, m, (IRIS_SIZE, IRIS_SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        if mirror:
            crop = crop[:, ::-1]
        x = np.ascontiguousarray(crop.astype(np.float32) / 255.0)[None]
        out = self._iris(x)
        iris = next(o for o in out if o.size == 15).reshape(5, 3).copy()
        if mirror:
            iris[:, 0] = IRIS_SIZE - iris[:, 0]
        xy = _apply(_invert(m), iris)
        z = iris[:, 2:3] * (size / IRIS_SIZE)
        return np.concatenate([xy, z], axis=1).astype(np.float32)

    def mesh(
        self,
        rgb: npt.NDArray[np.uint8],
        box: npt.NDArray[np.float32],
        points5: npt.NDArray[np.float32],
        refine: bool = True,
    ) -> MeshResult:
        """The 478-point mesh of the face in ``box`` with CenterFace points ``points5``."""
        eye_a, eye_b = points5[0], points5[1]
        angle = math.atan2(float(eye_b[1] - eye_a[1]), float(eye_b[0] - eye_a[0]))
        center = (float((box[0] + box[2]) / 2), float((box[1] + box[3]) / 2))
        size = float(max(box[2] - box[0], box[3] - box[1])) * MESH_ROI_SCALE
        pts, presence = self._run_mesh(rgb, center, max(size, 8.0), angle)
        if refine:
            center, size, angle = self._roi_from_mesh(pts)
            pts, presence = self._run_mesh(rgb, center, max(size, 8.0), angle)
        right = self._run_iris(rgb, pts[tp.RIGHT_EYE_OUTER], pts[tp.RIGHT_EYE_INNER], mirror=False)
        left = self._run_iris(rgb, pts[tp.LEFT_EYE_OUTER], pts[tp.LEFT_EYE_INNER], mirror=True)
        return MeshResult(np.concatenate([pts, right, left], axis=0), presence)
