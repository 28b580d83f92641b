"""mien refuses to infer who a person is or what group they belong to, before reading anything."""

from __future__ import annotations

import subprocess
import sys

import pytest

import mien
from mien.features import REFUSAL_MESSAGE, is_refused, parse_features

# Every name the foundation issue lists, plus obvious synonyms and spellings.
REFUSED = [
    "ethnicity",
    "race",
    "skin colour",
    "skin_color",
    "skin-tone",
    "nationality",
    "religion",
    "gender",
    "sex",
    "age",
    "emotion",
    "mood",
    "identity",
    "recognition",
    "embedding",
    "template",
    "Ethnic_Group",
    "racial",
    "apparent_age",
    "age_range",
    "AGE",
    "emotions",
    "facial_expression",
    "face_embedding",
    "faceembedding",
    "face-template",
    "identify",
    "face_recognition",
    "person_id",
    "gender_presentation",
    "religious",
    "citizenship",
    "sexual_orientation",
    "ancestry",
    "biometric_template",
    "descriptor",
    "encoding",
]
ALLOWED = ["detection", "landmarks", "head_pose", "quality", "mesh", "all"]


@pytest.mark.parametrize("name", REFUSED)
def test_library_refuses_each_name(name: str) -> None:
    assert is_refused(name)
    with pytest.raises(mien.RefusedAttributeError) as info:
        parse_features(["detection", name])
    assert info.value.code == "RefusedAttribute"
    assert name in info.value.names
    assert "does not infer who a person is or what group they belong to" in str(info.value)
    with pytest.raises(mien.RefusedAttributeError):
        mien.AnalyzerOptions(features=(name,))


def test_refusal_happens_before_any_image_is_read(tmp_path) -> None:
    missing = tmp_path / "never-read.jpg"  # would be a NotFound error if it were read
    with pytest.raises(mien.RefusedAttributeError):
        mien.analyze(missing, features="landmarks,gender")
    with pytest.raises(mien.RefusedAttributeError):
        mien.FaceAnalyzer(features=["age"])


def test_refusal_is_not_an_unknown_feature() -> None:
    # A refused name gets the refusal (with its reason), not a generic "unknown" error.
    with pytest.raises(mien.RefusedAttributeError):
        parse_features("gender")
    with pytest.raises(mien.UnknownFeatureError):
        parse_features("frobnicate")
    assert not issubclass(mien.RefusedAttributeError, mien.UnknownFeatureError)


@pytest.mark.parametrize("name", ALLOWED)
def test_allowed_names_are_not_refused(name: str) -> None:
    assert not is_refused(name)
    assert "detection" in parse_features(name)


def test_message_explains_why() -> None:
    msg = REFUSAL_MESSAGE.format(names="gender")
    assert "surveillance" in msg and "ethnic minorities" in msg and "docs/refusal.md" in msg


@pytest.mark.parametrize("name", ["gender", "ethnicity", "age", "emotion", "face embedding"])
def test_cli_exits_2_before_reading(tmp_path, name: str) -> None:
    missing = tmp_path / "never-read.jpg"
    proc = subprocess.run(
        [sys.executable, "-m", "mien", "analyze", str(missing), "--features", f"landmarks,{name}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "does not infer who a person is or what group they belong to" in proc.stderr
    assert "NotFound" not in proc.stderr  # the image was never read
    assert proc.stdout == ""
