"""Abstention bands and maturity (issue 17): an attribute below its band says null with the
reason "uncertain (...)"; the band and the maturity come from the model cards; rules treat such
a null as "needs review", never as pass or fail.

Most tests need no model; the end-to-end test runs the pipeline on a real photo of
``../shared/data``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from mien.analyzers.attributes import CARDS, available, create, trust
from mien.analyzers.attributes.base import Abstaining, FaceContext, uncertain_reason, withhold
from mien.errors import ModelIntegrityError
from mien.media.image import load_image
from mien.models import registry
from mien.models.registry import list_cards, load_card
from mien.rules import load_rules, parse_rules
from mien.types import AttributeColumn, Faces, ImageResult, ModelInfo

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def col(values: list[object], conf: list[float], reasons: list[str | None] | None = None):
    return AttributeColumn(
        values=tuple(values),
        confidence=np.array(conf, np.float32),
        reasons=tuple(reasons if reasons is not None else [None] * len(values)),
    )


def test_band_withholds_below_and_keeps_at_or_above() -> None:
    c = col([True, False, True, None], [0.79, 0.81, 0.80, np.nan], [None, None, None, "too small"])
    out = withhold(c, 0.8)
    assert out.values == (None, False, True, None)
    assert out.reasons[0] == "uncertain (confidence 0.79; answers below 0.80 are withheld)"
    assert out.reasons[0] == uncertain_reason(0.79, 0.8)
    assert math.isnan(out.confidence[0])
    assert out.confidence[1] == pytest.approx(0.81) and out.confidence[2] == pytest.approx(0.80)
    assert out.reasons[1:] == (None, None, "too small")  # other nulls keep their own reason
    assert withhold(c, None) is c  # no band: unchanged


def test_band_on_three_classes_and_eyes() -> None:
    mask = withhold(col(["worn", "none"], [0.578, 0.97]), 0.9)
    assert mask.values == (None, "none")
    assert mask.reasons[0] is not None and mask.reasons[0].startswith("uncertain (confidence 0.58")
    # eyes_open: the confidence is the less certain eye's; below the band the whole value goes,
    # and the reason for a null eye is replaced by "uncertain"
    eyes = withhold(
        col(
            [{"left": True, "right": True}, {"left": None, "right": True}],
            [0.6, 0.95],
            [None, "left eye outside the picture"],
        ),
        0.9,
    )
    assert eyes.values[0] is None and eyes.reasons[0] == uncertain_reason(0.6, 0.9)
    assert eyes.values[1] == {"left": None, "right": True}
    assert eyes.reasons[1] == "left eye outside the picture"


class _Fixed:
    """An analyzer whose answer is fixed: p(yes) given."""

    name = "sunglasses"
    models: tuple[ModelInfo, ...] = ()

    def __init__(self, p: float) -> None:
        self.p = p

    def __call__(self, ctx: FaceContext) -> AttributeColumn:
        v = self.p >= 0.5
        return col([v], [self.p if v else 1.0 - self.p])


def test_head_output_just_below_and_above_the_band() -> None:
    band = 0.8
    below = Abstaining(_Fixed(0.795), band)(None)  # type: ignore[arg-type]
    above = Abstaining(_Fixed(0.805), band)(None)  # type: ignore[arg-type]
    assert below.values == (None,)
    assert below.reasons == ("uncertain (confidence 0.80; answers below 0.80 are withheld)",)
    assert above.values == (True,) and above.reasons == (None,)
    no = Abstaining(_Fixed(0.1), band)(None)  # type: ignore[arg-type]
    assert no.values == (False,) and no.confidence[0] == pytest.approx(0.9)


def test_every_attribute_has_maturity_and_a_band() -> None:
    assert set(CARDS) == set(available())
    for name in available():
        maturity, band = trust(name)
        assert maturity == "stable" or maturity.startswith("experimental: "), name
        assert band is not None and 0.5 <= band <= 1.0, name
    for card in list_cards():
        if card.key in CARDS.values():
            assert card.info.maturity == card.maturity and card.info.abstain_below is not None
            d = card.info.to_dict()
            assert d["maturity"] == card.maturity and d["abstain_below"] == card.abstain_below
        else:  # detector, mesh, iris: no attribute, no maturity
            assert card.maturity is None and "maturity" not in card.info.to_dict()


def test_help_shows_every_maturity_as_written() -> None:
    """``--help`` lists each attribute's maturity verbatim, including any ``%`` of a card's text
    (argparse formats help strings with ``%``: a card saying "42% of faces withheld" once made
    ``mien analyze --help`` crash)."""
    import argparse

    from mien.cli.common import features_arg

    parser = argparse.ArgumentParser()
    features_arg(parser)
    text = " ".join(parser.format_help().split())
    for name in available():
        assert f"{name} [{' '.join(trust(name)[0].split())}]" in text, name


def test_create_applies_the_card_band() -> None:
    (a,) = create(["sunglasses"])
    assert (
        isinstance(a, Abstaining) and a.abstain_below == load_card("attr_sunglasses").abstain_below
    )
    assert a.models[0].maturity == load_card("attr_sunglasses").maturity
    (raw,) = create(["sunglasses"], _withhold=False)
    assert not isinstance(raw, Abstaining)


def test_card_fields_are_checked(tmp_path, monkeypatch) -> None:
    text = (registry.CARDS_DIR / "attr_smile.toml").read_text(encoding="utf-8")
    monkeypatch.setattr(registry, "CARDS_DIR", tmp_path)
    for bad in ("abstain_below = 0.3", 'abstain_below = "high"', 'maturity = "beta"'):
        lines = [ln for ln in text.splitlines() if not ln.startswith(("abstain_below", "maturity"))]
        lines.insert(1, bad)
        (tmp_path / "attr_smile.toml").write_text("\n".join(lines), encoding="utf-8")
        with pytest.raises(ModelIntegrityError):
            load_card("attr_smile")


# -- rules: an uncertain attribute needs review ------------------------------------------------


def _id_photo_faces(sunglasses: AttributeColumn) -> Faces:
    """One frontal, sharp, well exposed face with everything known except ``sunglasses``."""
    ok = lambda v, c=0.97: col([v], [c])  # noqa: E731
    return Faces(
        boxes=np.array([[100, 80, 400, 420]], np.float32),
        scores=np.array([0.99], np.float32),
        landmarks=np.array(
            [[[200, 200], [300, 200], [250, 260], [210, 320], [290, 320]]], np.float32
        ),
        head_pose=np.array([[1.0, 2.0, 0.5]], np.float32),
        quality={
            k: np.array([v], np.float32)
            for k, v in {
                "sharpness": 0.9,
                "exposure": 0.95,
                "brightness": 0.5,
                "illumination_uniformity": 0.9,
                "contrast": 0.5,
                "face_size": 340.0,
            }.items()
        },
        attributes={
            "eyes_open": ok({"left": True, "right": True}),
            "sunglasses": sunglasses,
            "headwear": ok(False),
            "mask": ok("none"),
            "mouth_open": ok(False),
        },
    )


def test_id_photo_uncertain_sunglasses_needs_review() -> None:
    idp = load_rules("id-photo")
    uncertain = withhold(col([False], [0.78]), 0.9)  # the selfie of issue 17: "false (0.78)"
    result = ImageResult(source="x.jpg", width=600, height=600, faces=_id_photo_faces(uncertain))
    flags = [f for f in idp.evaluate(result) if f.rule == "no-sunglasses"]
    assert len(flags) == 1 and flags[0].unknown, flags
    assert "uncertain (confidence 0.78" in flags[0].message
    assert not idp.check(result).passed  # an error-severity rule that cannot be checked
    # the same face answered confidently: the rule passes or fails on the value
    sure = ImageResult(
        source="x.jpg", width=600, height=600, faces=_id_photo_faces(col([False], [0.97]))
    )
    assert not [f for f in idp.evaluate(sure) if f.rule == "no-sunglasses"]
    worn = ImageResult(
        source="x.jpg", width=600, height=600, faces=_id_photo_faces(col([True], [0.97]))
    )
    (flag,) = [f for f in idp.evaluate(worn) if f.rule == "no-sunglasses"]
    assert not flag.unknown


def test_when_unknown_pass_does_not_pass_an_attribute_null() -> None:
    rs = parse_rules(
        "rules:\n"
        "  - id: sg\n    per_face: true\n    flag_if: face.sunglasses\n    when_unknown: pass\n"
        "  - id: yaw\n    per_face: true\n    require: abs(face.head_pose.yaw) < 10\n"
        "    when_unknown: pass\n"
    )
    faces = _id_photo_faces(withhold(col([True], [0.6]), 0.9))
    faces = Faces(
        boxes=faces.boxes,
        scores=faces.scores,
        head_pose=np.array([[np.nan, np.nan, np.nan]], np.float32),
        attributes=faces.attributes,
    )
    flags = rs.evaluate(ImageResult(source="x", width=600, height=600, faces=faces))
    # the unknown yaw passes as asked; the uncertain sunglasses still need review
    assert [(f.rule, f.unknown) for f in flags] == [("sg", True)]


# -- end to end, on a real photo ---------------------------------------------------------------


@pytest.mark.skipif(
    not (SHARED / "pyfeat_media" / "multi_face.jpg").exists(), reason="shared data not present"
)
def test_low_confidence_answer_is_now_null_on_a_real_photo() -> None:
    """Every attribute on the five faces of multi_face.jpg: each answer below its band in the
    raw analyzer is null with the "uncertain" reason through the pipeline, the others agree."""
    import mien

    path = SHARED / "pyfeat_media" / "multi_face.jpg"
    names = list(available())
    fa = mien.FaceAnalyzer(
        features=["detection", "landmarks", "head_pose", "quality", "mesh", *names]
    )
    faces = fa.analyze(str(path)).faces
    assert faces is not None and len(faces) == 5
    raw = {a.name: a for a in create(names, _withhold=False)}
    assert faces.landmarks is not None and faces.mesh is not None and faces.head_pose is not None
    ctx = FaceContext(
        rgb=load_image(path).rgb,
        boxes=faces.boxes,
        landmarks=faces.landmarks,
        mesh=faces.mesh,
        head_pose=faces.head_pose,
    )
    withheld = 0
    for name in names:
        band = trust(name)[1]
        assert band is not None
        before = raw[name](ctx)
        after = faces.attributes[name]
        for i in range(5):
            c = float(before.confidence[i])
            if before.values[i] is not None and c < band:
                withheld += 1
                assert after.values[i] is None
                assert after.reasons[i] == uncertain_reason(c, band)
            else:
                assert after.values[i] == before.values[i]
    assert withheld >= 1  # at least one previously low-confidence answer is now withheld
    # the man in dark sunglasses (train/labels/pyfeat_multi_face.csv: sunglasses 1, the face
    # whose box starts at x 217): the head of commit 808baa0 says "no sunglasses" with
    # confidence 0.75; that is now withheld as uncertain - never a confident wrong "false"
    (k,) = [i for i in range(5) if abs(float(faces.boxes[i, 0]) - 217.5) < 15]
    sg = faces.attributes["sunglasses"]
    assert sg.values[k] is not False
    if raw["sunglasses"](ctx).values[k] is False:
        assert sg.values[k] is None and (sg.reasons[k] or "").startswith("uncertain (confidence ")
    assert faces.attributes["eyeglasses"].values[k] is True  # dark glasses are glasses too
    # the four open-eyed faces (three smiling): never "closed" - at commit 808baa0 the head
    # said closed with confidence 0.82, 0.50 and 0.80 on three of them; now withheld
    eyes = faces.attributes["eyes_open"]
    for i in range(5):
        if i != k and eyes.values[i] is not None:
            assert False not in eyes.values[i].values(), (i, eyes.values[i])


def test_annotated_words_mark_experimental_attributes() -> None:
    from mien.render.annotate import _attribute_words

    faces = Faces(
        boxes=np.array([[0, 0, 50, 50]], np.float32),
        scores=np.array([0.9], np.float32),
        attributes={
            "eyeglasses": col([True], [0.95]),
            "sunglasses": col([True], [0.95]),
            "mask": col(["worn"], [0.95]),
            "eyes_open": col([{"left": False, "right": True}], [0.95]),
        },
    )
    words = _attribute_words(faces, 0)
    expect = {
        "eyeglasses": "eyeglasses",
        "sunglasses": "sunglasses",
        "mask": "mask:worn",
        "eyes_open": "closed:left",
    }
    for name, word in expect.items():
        mark = "" if trust(name)[0] == "stable" else "?"
        assert word + mark in words, (name, words)


def test_readme_table_matches_the_cards() -> None:
    """The README's attribute table states each attribute's band and maturity (stable or
    experimental) as the cards do: rerunning train/abstention.py must update it too."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    rows = {
        cells[0]: cells
        for line in readme.splitlines()
        if line.startswith("| ")
        for cells in [[c.strip() for c in line.strip("|").split("|")]]
    }
    for name in available():
        maturity, band = trust(name)
        cells = rows[name]
        assert cells[1].split(":")[0] == maturity.split(":")[0], (name, cells[1])
        assert band is not None and cells[2] == f"{band:.2f}", (name, cells[2])
        assert cells[3], name  # the training data and its terms


# -- an uncertain cover (issue 17) ---------------------------------------------------------------


class _Cover:
    """A cover head whose verdict on face 0 is given: what HiddenBy reads of a real one."""

    def __init__(self, name: str, verdict: tuple[object, object]) -> None:
        self.name, self.verdict = name, verdict
        self.models: tuple[ModelInfo, ...] = ()

    def judge(self, ctx: FaceContext, i: int) -> tuple[object, object]:
        return self.verdict


@pytest.mark.parametrize(
    ("name", "value", "what", "maybe"),
    [
        ("mask", "worn", "mouth hidden by a mask", "mouth may be hidden by a mask"),
        ("sunglasses", True, "eyes hidden by sunglasses", "eyes may be hidden by sunglasses"),
    ],
)
def test_uncertain_cover_says_may_be_hidden_not_hidden(
    name: str, value: object, what: str, maybe: str
) -> None:
    """A cover answer at or above the cover's band hides the part; below it the part is not
    said to be hidden: the reason names the cover as uncertain with its band (the dependent's
    own evidence cannot tell a covered part, measured in base.HiddenBy's doc); the other
    value, and a cover that cannot judge, hide nothing."""
    from mien.analyzers.attributes.base import HiddenBy

    band = trust(name)[1]
    assert band is not None
    ctx = FaceContext(
        rgb=np.zeros((4, 4, 3), np.uint8),
        boxes=np.zeros((1, 4), np.float32),
        landmarks=np.zeros((1, 5, 2), np.float32),
        mesh=np.full((1, 478, 3), np.nan, np.float32),
        head_pose=np.full((1, 3), np.nan, np.float32),
    )

    def reason(verdict: tuple[object, object]) -> str | None:
        return HiddenBy(_Cover(name, verdict), value, what, maybe).reason(ctx, 0)  # type: ignore[arg-type]

    assert reason((value, band)) == f"{what} ({name} confidence {band:.2f})"
    word = "yes" if value is True else value
    assert reason((value, band - 0.05)) == (
        f"{maybe} ({name} uncertain: {word} {band - 0.05:.2f}, below its band {band:.2f})"
    )
    other = "none" if name == "mask" else False
    assert reason((other, 0.99)) is None
    assert reason((None, "face too small")) is None
