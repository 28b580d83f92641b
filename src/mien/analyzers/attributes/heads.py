"""Small learned heads for appearance attributes: features -> calibrated class probabilities.

A head is a standardisation, an optional hidden layer (ReLU) and a linear layer with softmax
(or a sigmoid for two classes), calibrated on held-out data: for two classes an isotonic table
or a Platt scaling folded into the linear layer, for more a temperature. It runs on NumPy
alone. A head may also carry a small convolutional network (:class:`ConvNet`, ONNX, run by
onnxruntime) whose outputs on an aligned crop become part of the head's features. Heads are
stored as ``.npz`` files (no pickle; the network as the ONNX bytes in one array) in
``mien/models/data``, each with a model card, and are verified by sha256 on load like every
other model. ``train/`` rebuilds them.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from mien.errors import ModelIntegrityError
from mien.models.registry import ModelCard, load_card, verified_model_bytes
from mien.types import ModelInfo

F32 = npt.NDArray[np.float32]


def sigmoid(z: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """The logistic function, in float64, with the argument clipped to [-50, 50]: how every
    two-class head turns a calibrated logit into a probability."""
    out: npt.NDArray[np.float64] = 1.0 / (
        1.0 + np.exp(-np.clip(np.asarray(z, np.float64), -50, 50))
    )
    return out


class ConvNet:
    """A small convolutional network over square crops, run by onnxruntime on one thread.

    Input: uint8 crops, ``(N, S, S)`` grey or ``(N, S, S, C)`` with the network's ``channels``
    (RGB order), scaled to [0, 1] here; output: ``(N, K)`` float32 (the network's logits).
    Safe to call from several threads (onnxruntime sessions are).
    """

    def __init__(self, onnx_bytes: bytes) -> None:
        import onnxruntime as ort

        self.onnx_bytes = bytes(onnx_bytes)
        #: identifies the network (two heads may carry the same one: its outputs are shared)
        self.digest = hashlib.sha256(self.onnx_bytes).hexdigest()
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(
                self.onnx_bytes, sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelIntegrityError(
                f"an attribute head's network cannot be loaded: {exc}"
            ) from exc
        inp = self._session.get_inputs()[0]
        self._input = inp.name
        self.size = int(inp.shape[-1])
        self.channels = int(inp.shape[1])

    def __call__(self, crops: npt.NDArray[np.uint8]) -> F32:
        x = np.asarray(crops, np.float32) / 255.0
        s, c = self.size, self.channels
        shape = (s, s) if c == 1 else (s, s, c)
        if x.ndim not in (len(shape), len(shape) + 1) or x.shape[x.ndim - len(shape) :] != shape:
            raise ValueError(f"this network takes crops of shape (N, {', '.join(map(str, shape))})")
        x = x.reshape(-1, 1, s, s) if c == 1 else x.reshape(-1, s, s, c).transpose(0, 3, 1, 2)
        out = self._session.run(None, {self._input: x})[0]
        return np.asarray(out, np.float32).reshape(len(x), -1)


@dataclass(frozen=True)
class Head:
    """A trained, calibrated classifier over a fixed-length feature vector."""

    classes: tuple[str, ...]
    mean: F32
    scale: F32
    coef: F32  # (K, H) or (1, H) for two classes
    intercept: F32  # (K,) or (1,)
    hidden_w: F32 | None = None  # (H, D)
    hidden_b: F32 | None = None  # (H,)
    calib_x: F32 | None = None  # isotonic table (two classes): raw p(positive) -> calibrated
    calib_y: F32 | None = None
    temperature: float = 1.0
    net: ConvNet | None = None  # its outputs on the crop come first in the head's features
    info: ModelInfo | None = None

    @classmethod
    def identity(cls, classes: tuple[str, str] = ("no", "yes"), net: ConvNet | None = None) -> Head:
        """A two-class head whose raw score is its single feature as it is (to be calibrated,
        e.g. a network's logit: ``train.common.platt``)."""
        one, zero = np.ones(1, np.float32), np.zeros(1, np.float32)
        return cls(classes, mean=zero, scale=one, coef=one[None], intercept=zero, net=net)

    def network(self) -> ConvNet:
        """The head's network; a head that should carry one and does not is refused."""
        if self.net is None:
            name = self.info.name if self.info is not None else "an attribute head"
            raise ModelIntegrityError(f"{name} has no network (net_onnx): the file is out of date")
        return self.net

    def raw_scores(self, x: npt.ArrayLike) -> F32:
        """Logits before calibration, (N, K) (or (N, 1) for two classes)."""
        z = (np.atleast_2d(np.asarray(x, np.float32)) - self.mean) / self.scale
        if self.hidden_w is not None and self.hidden_b is not None:
            z = np.maximum(z @ self.hidden_w.T + self.hidden_b, 0.0)
        out: F32 = (z @ self.coef.T + self.intercept).astype(np.float32)
        return out

    def proba(self, x: npt.ArrayLike) -> F32:
        """Calibrated class probabilities, (N, len(classes)), rows summing to 1."""
        s = self.raw_scores(x).astype(np.float64)
        if len(self.classes) == 2:
            p = sigmoid(s[:, 0])
            if self.calib_x is not None and self.calib_y is not None:
                p = np.interp(p, self.calib_x, self.calib_y)
            two: F32 = np.stack([1.0 - p, p], axis=1).astype(np.float32)
            return two
        s = s / self.temperature
        s -= s.max(axis=1, keepdims=True)
        e = np.exp(s)
        many: F32 = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
        return many

    # -- storage ---------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        arrays: dict[str, npt.NDArray[np.generic]] = {
            "classes": np.array(self.classes),
            "mean": self.mean,
            "scale": self.scale,
            "coef": self.coef,
            "intercept": self.intercept,
            "temperature": np.array([self.temperature], np.float32),
        }
        for key in ("hidden_w", "hidden_b", "calib_x", "calib_y"):
            value = getattr(self, key)
            if value is not None:
                arrays[key] = np.asarray(value, np.float32)
        if self.net is not None:
            arrays["net_onnx"] = np.frombuffer(self.net.onnx_bytes, np.uint8)
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(buf.getvalue())
        os.replace(tmp, path)  # a reader never sees half a file

    @classmethod
    def from_bytes(cls, blob: bytes, info: ModelInfo | None = None) -> Head:
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:

            def opt(key: str) -> F32 | None:
                return np.asarray(z[key], np.float32) if key in z.files else None

            return cls(
                classes=tuple(str(c) for c in z["classes"]),
                mean=np.asarray(z["mean"], np.float32),
                scale=np.asarray(z["scale"], np.float32),
                coef=np.asarray(z["coef"], np.float32),
                intercept=np.asarray(z["intercept"], np.float32),
                hidden_w=opt("hidden_w"),
                hidden_b=opt("hidden_b"),
                calib_x=opt("calib_x"),
                calib_y=opt("calib_y"),
                temperature=float(z["temperature"][0]),
                net=ConvNet(z["net_onnx"].tobytes()) if "net_onnx" in z.files else None,
                info=info,
            )

    @classmethod
    def load(cls, card_key: str, *, network: bool = False) -> Head:
        """Load the head of model card ``card_key`` after verifying its sha256; ``network``:
        the head must carry a network (:meth:`network`), checked here rather than per face."""
        card: ModelCard = load_card(card_key)
        head = cls.from_bytes(verified_model_bytes(card), card.info)
        if network:
            head.network()
        return head


def to_gray(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    return np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), np.uint8)
