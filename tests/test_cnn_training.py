"""train/cnn.py: grey and RGB networks and seed ensembles export to ONNX and give, through
mien's own runtime (:class:`ConvNet`), the outputs PyTorch gives. Needs PyTorch (``.[train]``);
skipped without it."""

from __future__ import annotations

import numpy as np
import pytest

from mien.analyzers.attributes.heads import ConvNet


@pytest.mark.parametrize("shape", [(24, 20, 20), (24, 20, 20, 3)], ids=["grey", "rgb"])
def test_network_and_ensemble_run_the_same_in_onnxruntime(shape: tuple[int, ...]) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")  # torch.onnx.export writes through it
    from train import cnn

    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, shape, dtype=np.uint8)
    y = rng.integers(0, 2, len(crops))
    members = [
        cnn.train_net(crops, y, epochs=1, batch=8, channels=(4, 8), seed=s, log=False)
        for s in (0, 1)
    ]
    channels = 1 if len(shape) == 3 else 3
    x = torch.from_numpy(cnn._as_nchw(crops))
    with torch.no_grad():
        each = [m(x).numpy() for m in members]
        mean = cnn.ensemble(members)(x).numpy()
    np.testing.assert_allclose(mean, (each[0] + each[1]) / 2, atol=1e-6)
    assert not np.allclose(each[0], each[1])  # two seeds, two networks
    for net, expected in ((members[0], each[0]), (cnn.ensemble(members), mean)):
        conv = ConvNet(cnn.export_onnx(net, shape[1], in_channels=channels))
        assert (conv.size, conv.channels) == (shape[1], channels)
        np.testing.assert_allclose(conv(crops), expected, atol=1e-5)


def test_crops_of_the_wrong_shape_are_refused() -> None:
    pytest.importorskip("torch")
    from train import cnn

    with pytest.raises(ValueError, match=r"\(N, S, S\)"):
        cnn.train_net(np.zeros((4, 8), np.uint8), np.zeros(4, np.int64), epochs=1, log=False)
