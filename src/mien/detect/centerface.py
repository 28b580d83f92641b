"""CenterFace on onnxruntime: one forward pass over one image at one scale.

The model predicts, on a stride-4 grid, a face-centre heatmap, the box size (log scale),
a sub-pixel centre offset and 5 landmark offsets. :meth:`CenterFace.run` decodes them into
pixel boxes, scores and points of the image it was given; scales and tiles are planned in
:mod:`mien.detect.detector`.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from mien.detect.detections import Detections
from mien.models import runtime
from mien.models.registry import ModelCard, load_card, verified_model_bytes


def session_options(num_threads: int = 0, *, spin: bool = False) -> ort.SessionOptions:
    """The onnxruntime options of the detector's session.

    ``num_threads`` intra-op threads (0: onnxruntime's default, one per core) and one inter-op
    thread. ``spin=False`` (the default) makes the worker threads sleep between runs instead of
    busy-waiting for the next one: mien runs the detector beside decoding, encoding and other
    processes, which the spinning threads would starve (measured in docs/benchmarks.md,
    "Speed toward the limit"). Neither changes what the network computes.
    """
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if num_threads:
        opts.intra_op_num_threads = num_threads
        opts.inter_op_num_threads = 1
    if not spin:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return opts


def _chw(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """The network's input for ``rgb``: padded (rather than stretched) to a multiple of 32 so
    the geometry stays exact, channels first, float32."""
    h, w = rgb.shape[:2]
    ph, pw = -(-h // 32) * 32, -(-w // 32) * 32
    if (ph, pw) != (h, w):
        padded = cv2.copyMakeBorder(rgb, 0, ph - h, 0, pw - w, cv2.BORDER_CONSTANT, value=0)
        rgb = np.asarray(padded, dtype=np.uint8)
    return rgb.transpose(2, 0, 1).astype(np.float32)


class CenterFace:
    """The CenterFace ONNX model, verified against its model card and loaded once.

    ``run`` is safe to call from several threads at once (onnxruntime sessions are).
    ``device`` is ``"cpu"`` or ``"cuda"`` (:func:`mien.models.runtime.session`: a CUDA session
    that cannot start raises :class:`mien.errors.DeviceUnavailableError`).
    """

    STRIDE = 4

    def __init__(self, num_threads: int = 0, *, spin: bool = False, device: str = "cpu") -> None:
        self.card: ModelCard = load_card("centerface")
        self.device = device
        self._session = runtime.session(
            verified_model_bytes(self.card), session_options(num_threads, spin=spin), device
        )
        self._input = self._session.get_inputs()[0].name
        self._outputs = [o.name for o in self._session.get_outputs()]

    @property
    def providers(self) -> list[str]:
        """The onnxruntime providers the session got, first the one that runs most of it."""
        return list(self._session.get_providers())

    def run(self, rgb: npt.NDArray[np.uint8], threshold: float) -> Detections:
        """Detect faces in ``rgb`` (H, W, 3 uint8) at its own size."""
        return self.run_many([rgb], threshold)[0]

    def run_many(
        self, images: Sequence[npt.NDArray[np.uint8]], threshold: float
    ) -> list[Detections]:
        """:meth:`run` of each of ``images`` (all of one size) in one batched network run: the
        graph's input has a batch dimension, and on the CPU a batch gives each image the same
        outputs as a run of its own (tests/test_video_lanes.py); a GPU gains from it."""
        if not images:
            return []
        h, w = images[0].shape[:2]
        if any(im.shape != images[0].shape for im in images):
            raise ValueError("run_many takes images of one size")
        blob = np.ascontiguousarray(np.stack([_chw(im) for im in images]))
        heat, scale, offset, lms = self._session.run(self._outputs, {self._input: blob})
        return [
            self._decode(heat[i, 0], scale[i], offset[i], lms[i], threshold, (w, h))
            for i in range(len(images))
        ]

    def _decode(
        self,
        heat: npt.NDArray[np.float32],
        scale: npt.NDArray[np.float32],
        offset: npt.NDArray[np.float32],
        lms: npt.NDArray[np.float32],
        threshold: float,
        size: tuple[int, int],
    ) -> Detections:
        ys, xs = np.nonzero(heat > threshold)
        if ys.size == 0:
            return Detections.empty()
        s = self.STRIDE
        bh = np.exp(scale[0, ys, xs]) * s
        bw = np.exp(scale[1, ys, xs]) * s
        cx = (xs + offset[1, ys, xs] + 0.5) * s
        cy = (ys + offset[0, ys, xs] + 0.5) * s
        x1 = cx - bw / 2
        y1 = cy - bh / 2
        px = lms[1::2, ys, xs].T * bw[:, None] + x1[:, None]
        py = lms[0::2, ys, xs].T * bh[:, None] + y1[:, None]
        w, h = size
        boxes = np.stack(
            [np.clip(x1, 0, w), np.clip(y1, 0, h), np.clip(x1 + bw, 0, w), np.clip(y1 + bh, 0, h)],
            axis=1,
        ).astype(np.float32)
        points = np.stack([px, py], axis=2).astype(np.float32)
        return Detections(boxes, heat[ys, xs].astype(np.float32), points)
