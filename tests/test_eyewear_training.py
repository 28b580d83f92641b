"""Training helpers of the eyewear heads: synthetic glasses and the multi-label network."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from train.train_glasses import KINDS, draw_varied_eyewear


def _face() -> npt.NDArray[np.uint8]:
    rng = np.random.default_rng(0)
    return rng.integers(90, 200, (48, 48, 3), dtype=np.uint8)


@pytest.mark.parametrize("kind", KINDS)
def test_synthetic_glasses_are_drawn_with_their_labels(kind: str) -> None:
    face = _face()
    scene = np.random.default_rng(1).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    out, sunglasses = draw_varied_eyewear(face, np.random.default_rng(2), kind, scene)
    again, _ = draw_varied_eyewear(face, np.random.default_rng(2), kind, scene)
    assert out.shape == face.shape and out.dtype == np.uint8
    assert np.array_equal(out, again)  # seeded: the same glasses
    assert not np.array_equal(out, face)
    assert sunglasses == {"clear": 0, "tint": None, "dark": 1, "mirror": 1}[kind]


def test_glasses_network_trains_multilabel_leaving_unknown_labels_out() -> None:
    torch = pytest.importorskip("torch")
    from train import cnn

    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (16, 16, 16), dtype=np.uint8)
    y = np.array([[1, -1], [0, 0]] * 8, np.int64)
    net = cnn.train_net(
        crops, y, outputs=2, multilabel=True, epochs=1, batch=8, channels=(4, 8), log=False
    )
    assert net(torch.zeros(1, 1, 16, 16)).shape == (1, 2)
    with pytest.raises(ValueError, match="multilabel"):
        cnn.train_net(crops, y[:, 0], outputs=2, multilabel=True, epochs=1, log=False)
