"""Learned attribute heads: a head that carries a network survives save/load unchanged, a broken
network is refused clearly, and the blur gate reuses the quality column's sharpness."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import mien
from mien.analyzers.attributes import base, smile
from mien.analyzers.attributes.heads import ConvNet, Head
from mien.errors import ModelIntegrityError

from .conftest import SAMPLE


def _sample_context() -> base.FaceContext:
    from PIL import Image

    analyzer = mien.FaceAnalyzer(features="landmarks,head_pose,mesh")
    with Image.open(SAMPLE) as im:
        rgb = np.asarray(im.convert("RGB"))
    faces = analyzer.analyze_array(rgb)
    assert len(faces) == 1 and faces.landmarks is not None and faces.mesh is not None
    assert faces.head_pose is not None
    return base.FaceContext(rgb, faces.boxes, faces.landmarks, faces.mesh, faces.head_pose)


def test_smile_head_with_network_round_trips(tmp_path) -> None:
    head = Head.load(smile.CARD)
    assert isinstance(head.net, ConvNet) and head.net.size == smile.CROP_SIZE
    crop = smile.smile_crop(_sample_context(), 0)
    x = smile.smile_features(head, crop[None])
    assert x.shape == (1, 1) and np.isfinite(x).all()
    # the network sees the crop and its mirror image: their mean is the feature
    both = head.net(smile.with_mirror(crop))
    assert x[0, 0] == pytest.approx(float(both.mean()), abs=1e-5)
    path = tmp_path / "head.npz"
    head.save(path)
    again = Head.from_bytes(path.read_bytes())
    assert again.net is not None and again.net.onnx_bytes == head.net.onnx_bytes
    np.testing.assert_array_equal(again.proba(x), head.proba(x))
    p = head.proba(x)[0, 1]
    assert p > 0.8  # the sample astronaut smiles broadly
    assert smile.smile_features(head, np.zeros((0, 48, 48), np.uint8)).shape == (0, 1)


def test_broken_network_is_refused_clearly() -> None:
    with pytest.raises(ModelIntegrityError, match="network cannot be loaded"):
        ConvNet(b"not an onnx file")
    head = Head.load(smile.CARD)
    assert head.net is not None
    broken = bytearray(head.net.onnx_bytes)
    del broken[len(broken) // 2 :]
    with pytest.raises(ModelIntegrityError):
        dataclasses.replace(head, net=ConvNet(bytes(broken)))


def test_blur_gate_reuses_the_quality_sharpness(monkeypatch) -> None:
    analyzer = mien.FaceAnalyzer(features="quality,smile")

    def not_again(*args: object) -> float:
        raise AssertionError("sharpness computed a second time")

    monkeypatch.setattr(base, "face_sharpness", not_again)
    faces = analyzer.analyze(SAMPLE).faces
    assert faces is not None and len(faces) == 1 and faces.quality is not None
    assert faces.attributes["smile"].values[0] is True
    # without the quality column the gate computes it itself
    with pytest.raises(AssertionError, match="second time"):
        mien.FaceAnalyzer(features="smile").analyze(SAMPLE)


def test_eyewear_heads_share_one_network_run_per_face(monkeypatch) -> None:
    from mien.analyzers.attributes.glasses import Eyeglasses, Sunglasses

    glasses, sun = Eyeglasses(), Sunglasses()
    assert glasses.net.digest == sun.net.digest  # the same network in both files
    calls: list[int] = []
    real = ConvNet.__call__

    def counted(self: ConvNet, crops: np.ndarray) -> np.ndarray:
        calls.append(len(crops))
        return real(self, crops)

    monkeypatch.setattr(ConvNet, "__call__", counted)
    ctx = _sample_context()
    g, s = glasses(ctx), sun(ctx)
    assert calls == [1]  # one face, one run, shared by both heads
    assert g.values[0] is False and s.values[0] is False  # the astronaut wears no glasses
    # the shared outputs are the network's own on the grey eye crop
    fresh = _sample_context()
    assert np.allclose(glasses.features(fresh, 0)[:2], sun.features(fresh, 0))


def test_head_without_its_network_is_refused_at_load(tmp_path) -> None:
    head = Head.load(smile.CARD, network=True)
    assert head.network() is head.net
    bare = dataclasses.replace(head, net=None)
    with pytest.raises(ModelIntegrityError, match="mien-attr-smile has no network"):
        bare.network()
    with pytest.raises(ModelIntegrityError, match="no network"):
        smile.smile_features(bare, np.zeros((1, 48, 48), np.uint8))
    # saving replaces the file whole and leaves no temporary file behind
    path = tmp_path / "head.npz"
    path.write_bytes(b"old")
    bare.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["head.npz"]
    again = Head.from_bytes(path.read_bytes())
    assert again.net is None
    with pytest.raises(ModelIntegrityError, match="no network"):
        again.network()


def test_mask_head_carries_a_colour_network() -> None:
    from mien.analyzers.attributes import mask

    analyzer = mask.MaskAnalyzer()
    net = analyzer.head.network()
    assert (net.channels, net.size) == (3, mask.NET_CROP_SIZE)
    ctx = _sample_context()
    crop = mask.net_crop(ctx, 0)
    assert crop.shape == (mask.NET_CROP_SIZE, mask.NET_CROP_SIZE, 3)
    x = analyzer.features(ctx, 0)
    assert x.shape == (3 + len(mask.mask_features(mask.mask_crop(ctx, 0))),)
    np.testing.assert_allclose(x[:3], net(crop[None])[0], rtol=1e-6)
    with pytest.raises(ValueError, match="crops of shape"):
        net(crop[..., 0][None])  # a grey crop into the colour network
    with pytest.raises(ValueError, match="crops of shape"):
        Head.load(smile.CARD).network()(crop[None])  # a colour crop into a grey network
    # the colours matter: the same crop in grey gives other logits
    grey = np.repeat(crop.mean(axis=2, keepdims=True), 3, axis=2).astype(np.uint8)
    assert not np.allclose(net(grey[None])[0], x[:3], atol=1e-3)
    column = analyzer(ctx)
    assert column.values[0] == "none"  # the astronaut wears no mask


@pytest.mark.parametrize("name", ["smile", "eyes_open", "mask", "eyeglasses", "sunglasses"])
def test_every_network_head_is_checked_at_load(monkeypatch, name: str) -> None:
    from mien.analyzers.attributes import create
    from mien.analyzers.attributes import heads as H

    (analyzer,) = create([name])
    assert analyzer.head.network() is not None  # type: ignore[attr-defined]
    real = H.Head.from_bytes

    def without_network(blob: bytes, info=None):  # type: ignore[no-untyped-def]
        return dataclasses.replace(real(blob, info), net=None)

    monkeypatch.setattr(H.Head, "from_bytes", staticmethod(without_network))
    with pytest.raises(ModelIntegrityError, match="has no network"):
        create([name])


def test_context_without_caches_recomputes_everything() -> None:
    from mien.analyzers.attributes import mask

    ctx = _sample_context()
    analyzer = mask.MaskAnalyzer()
    first = analyzer.judge(ctx, 0)
    assert first[0] == "none"
    assert ctx._verdicts and ctx._net_outputs and ctx._crops
    fresh = ctx.without_caches()
    assert not (fresh._verdicts or fresh._net_outputs or fresh._crops or fresh._sharpness)
    assert fresh.rgb is ctx.rgb and len(fresh) == len(ctx)
    assert analyzer.judge(fresh, 0) == first


def test_a_cover_is_judged_once_per_face(monkeypatch) -> None:
    """mask asked with smile and mouth_open (which read the mask head to know whether the
    mouth is hidden): the mask features of each face are computed once, and the mask column
    and the covers agree."""
    from mien.analyzers.attributes import mask

    calls = 0
    real = mask.mask_features

    def counted(rgb):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        return real(rgb)

    monkeypatch.setattr(mask, "mask_features", counted)
    faces = mien.FaceAnalyzer(features="mask,smile,mouth_open").analyze(SAMPLE).faces
    assert faces is not None and len(faces) == 1
    assert calls == 1
    assert faces.attributes["mask"].values[0] == "none"
    assert faces.attributes["smile"].values[0] is True
