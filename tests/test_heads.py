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


def test_eyewear_networks_run_once_per_face_each(monkeypatch) -> None:
    from mien.analyzers.attributes.glasses import Eyeglasses, Sunglasses, eye_crop, eyewear_logits

    glasses, sun = Eyeglasses(), Sunglasses()
    # since sunglasses version 4 each head carries its own network (docs/attributes.md)
    assert glasses.net.digest != sun.net.digest
    calls: list[int] = []
    real = ConvNet.__call__

    def counted(self: ConvNet, crops: np.ndarray) -> np.ndarray:
        calls.append(len(crops))
        return real(self, crops)

    monkeypatch.setattr(ConvNet, "__call__", counted)
    ctx = _sample_context()
    g, s = glasses(ctx), sun(ctx)
    assert calls == [1, 1]  # one face: each network once (the verdicts reuse the cached run)
    sun(ctx)
    assert calls == [1, 1]
    assert g.values[0] is False and s.values[0] is False  # the astronaut wears no glasses
    # the sunglasses head reads its own network's logits on the grey eye crop, the same lens
    # measurements as eyeglasses, then the four iris measurements
    fresh = _sample_context()
    sun_features = sun.features(fresh, 0)
    assert sun_features.shape == (14,)
    assert np.allclose(sun_features[:2], eyewear_logits(eye_crop(fresh, 0), sun.net))
    assert np.allclose(glasses.features(fresh, 0)[2:], sun_features[2:10])


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


def test_the_two_eyes_share_evidence() -> None:
    from mien.analyzers.attributes import eyes

    w = eyes.OTHER_EYE_WEIGHT
    assert 0.0 < w < 0.5  # each eye still counts most on its own
    np.testing.assert_allclose(
        eyes.share_between_eyes([4.0, -2.0]), [(1 - w) * 4 - w * 2, (1 - w) * -2 + w * 4]
    )
    np.testing.assert_array_equal(eyes.share_between_eyes([3.0]), [3.0])  # one eye: as it is
    # a clear wink stays a wink; a doubtful "closed" eye beside a plainly open one leans open
    wink = eyes.share_between_eyes([6.0, -6.0])
    assert wink[0] > 0 > wink[1]
    assert eyes.share_between_eyes([-0.5, 6.0])[0] > 0
    # on a real face: p(open) is the sigmoid of the shared calibrated logits
    ctx = _sample_context()
    head = eyes.load_head()
    inputs = [eyes.eye_inputs(ctx, 0, eye) for eye in (eyes.LEFT, eyes.RIGHT)]
    patches, geometry = [p for p, _ in inputs], [g for _, g in inputs]
    p = eyes.open_probability(head, patches, geometry)
    feats = np.concatenate([head.network()(np.stack(patches)), np.stack(geometry)], axis=1)
    alone = head.raw_scores(feats)[:, 0]
    expected = 1 / (1 + np.exp(-eyes.share_between_eyes(alone)))
    np.testing.assert_allclose(p, expected, rtol=1e-5)
    assert (p > 0.5).all()  # the astronaut's eyes are open
    # one eye alone is not shared with anything
    np.testing.assert_allclose(
        eyes.open_probability(head, patches[:1], geometry[:1]),
        1 / (1 + np.exp(-alone[:1])),
        rtol=1e-5,
    )
    with pytest.raises(ValueError, match="eyes of one face"):
        eyes.open_probability(head, patches * 2, geometry * 2)


def test_eyes_doubt_a_smile_or_wide_open_lids() -> None:
    """A face the eyes head calls closed is left unknown when a smile narrows the eyes and the
    eye network does not lean closed, or when the mesh shows every eye's lids wide apart."""
    from mien.analyzers.attributes import eyes

    # an upright face built by hand: eye corners on y = 100, 60 px between the eyes' centres
    mesh = np.zeros((478, 3), np.float32)
    for idx, x in ((eyes.RIGHT.outer, 70), (eyes.RIGHT.inner, 90)):
        mesh[idx, :2] = (x, 100)
    for idx, x in ((eyes.LEFT.inner, 130), (eyes.LEFT.outer, 150)):
        mesh[idx, :2] = (x, 100)
    mesh[list(eyes.LIP_CENTRE), 1] = 160.0
    mesh[list(eyes.MOUTH_CORNERS), 0] = (85.0, 135.0)
    mesh[list(eyes.MOUTH_CORNERS), 1] = 157.0  # corners 3 px (0.05 eye distances) above
    lift, corners, width = eyes.smile_shape(mesh)
    assert lift == pytest.approx(0.05) and corners == pytest.approx(-57 / 60)
    assert width == pytest.approx(50 / 60)
    narrow = [np.array([0.22, *[0.2] * 9], np.float32)] * 2  # EAR 0.22 both eyes
    smile = "eyes narrowed by a smile: open or closed cannot be told"
    # closed by the head, the network's logit leaning open on one eye, a smile: unknown
    assert eyes.doubt_reason([0.2, 0.3], [-1.0, 0.5], narrow, mesh) == smile
    # the network itself says closed on both eyes: the answer stands
    assert eyes.doubt_reason([0.2, 0.3], [-3.0, -1.0], narrow, mesh) is None
    # called open: nothing to doubt
    assert eyes.doubt_reason([0.7, 0.9], [1.0, 2.0], narrow, mesh) is None
    # no smile (corners level with the lips' centre): the answer stands
    flat = mesh.copy()
    flat[list(eyes.MOUTH_CORNERS), 1] = 160.0
    assert eyes.doubt_reason([0.2, 0.3], [-1.0, 0.5], narrow, flat) is None
    # lids wide apart in the mesh on every judged eye while the picture says closed
    wide = [np.array([0.33, *[0.3] * 9], np.float32), np.array([0.31, *[0.3] * 9], np.float32)]
    reason = eyes.doubt_reason([0.05, 0.1], [-6.0, -4.0], wide, flat)
    assert reason is not None and "lids' shape says open" in reason
    assert eyes.doubt_reason([0.05, 0.1], [-6.0, -4.0], [wide[0], narrow[0]], flat) is None
    # an iris showing between bright whites (eyes.IRIS_SHOWS, from CEW's closed faces) while the
    # picture says closed: unknown; a lower contrast, or none measured, leaves the answer
    iris = eyes.doubt_reason([0.05, 0.1], [-6.0, -4.0], narrow, flat, eyes.IRIS_SHOWS)
    assert iris is not None and "an iris shows" in iris
    assert (
        eyes.doubt_reason([0.05, 0.1], [-6.0, -4.0], narrow, flat, eyes.IRIS_SHOWS - 0.01) is None
    )
    assert eyes.doubt_reason([0.7, 0.9], [1.0, 2.0], narrow, flat, 0.9) is None


def test_an_eyes_head_with_an_isotonic_table_is_refused(monkeypatch) -> None:
    """Sharing between the eyes works on calibrated logits: an eyes file whose calibration is an
    isotonic table (version 2) cannot be used that way and is refused at load."""
    from mien.analyzers.attributes import eyes
    from mien.analyzers.attributes import heads as H

    real = H.Head.from_bytes

    def with_table(blob: bytes, info=None):  # type: ignore[no-untyped-def]
        table = np.array([0.0, 1.0], np.float32)
        return dataclasses.replace(real(blob, info), calib_x=table, calib_y=table)

    monkeypatch.setattr(H.Head, "from_bytes", staticmethod(with_table))
    with pytest.raises(ModelIntegrityError, match="out of date"):
        eyes.EyesOpenAnalyzer()


def test_platt_calibration_folds_into_the_head() -> None:
    pytest.importorskip("sklearn", reason="needs scikit-learn (the train extra)")
    from train.common import class_weights, platt, platt_fit

    y = np.array([0, 0, 0, 1], np.int64)
    np.testing.assert_allclose(class_weights(y), [2 / 3, 2 / 3, 2 / 3, 2.0])
    assert class_weights(y).sum() == pytest.approx(len(y))
    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.3).astype(np.int64)
    x = (rng.normal(0, 1, 400) + 2.0 * y).astype(np.float32)[:, None]
    plain = Head.identity()
    np.testing.assert_array_equal(plain.raw_scores(x), x)
    head = platt(plain, x[:, 0].astype(np.float64), y)
    # equal class weights: for unit-variance classes 2 apart the fitted logistic is about
    # 2 * (x - 1), i.e. p = 0.5 at the midpoint between the class means
    a, b = float(head.coef[0, 0]), float(head.intercept[0])
    assert 1.5 < a < 2.6 and -b / a == pytest.approx(1.0, abs=0.2)
    p = head.proba(x)[:, 1]
    np.testing.assert_allclose(p, 1 / (1 + np.exp(-(a * x[:, 0] + b))), rtol=1e-5)
    assert head.calib_x is None
    # without class weights the 30% positives count as they come: the 0.5 point moves towards
    # the positives' side
    a2, b2 = platt_fit(x[:, 0].astype(np.float64), y, weighted=False)
    assert -b2 / a2 > -b / a + 0.1
    with pytest.raises(ValueError, match="isotonic"):
        platt(dataclasses.replace(head, calib_x=p[:2], calib_y=p[:2]), x[:, 0], y)
