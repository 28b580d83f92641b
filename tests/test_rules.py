"""The rule language: grammar, precedence, positions, names, refusals, unknown values, hostile YAML.

These tests need no model: rules are evaluated over :class:`mien.types.Faces` built here, so each
expected value follows from the documented semantics (docs/rules.md). Real photos are in
tests/test_rules_photos.py.
"""

from __future__ import annotations

import numpy as np
import pytest

import mien
from mien.features import _REFUSED_NAMES, _REFUSED_WORDS, REFUSAL_MESSAGE
from mien.rules import (
    FIELDS,
    PROFILES,
    RuleError,
    RuleSet,
    Scene,
    Unknown,
    compile_expression,
    load_profile,
    load_rules,
    parse_rules,
)
from mien.rules.syntax import (
    MAX_DEPTH,
    MAX_EXPRESSION_CHARS,
    MAX_TREE_DEPTH,
    Binary,
    ExpressionError,
    Unary,
    parse_expression,
)
from mien.types import AttributeColumn, ErrorInfo, Faces, ImageResult


def col(values: list[object], conf: list[float] | None = None, reasons=None) -> AttributeColumn:
    c = np.array(conf if conf is not None else [0.9 if v is not None else np.nan for v in values])
    r = (
        reasons
        if reasons is not None
        else [None if v is not None else "face too small" for v in values]
    )
    return AttributeColumn(values=tuple(values), confidence=c.astype(np.float32), reasons=tuple(r))


def make_faces() -> Faces:
    """Three faces: 0 frontal, sharp, eyes open; 1 turned, sunglasses; 2 tiny, unknown pose."""
    boxes = np.array([[100, 50, 300, 300], [400, 60, 480, 160], [10, 10, 18, 20]], np.float32)
    pose = np.array([[2.0, -3.0, 1.0], [35.0, 5.0, -4.0], [np.nan, np.nan, np.nan]], np.float32)
    q = {
        "sharpness": np.array([0.85, 0.3, np.nan], np.float32),
        "exposure": np.array([0.95, 0.9, 0.5], np.float32),
    }
    attrs = {
        "sunglasses": col([False, True, None], [0.9, 0.8, np.nan]),
        "eyes_open": col(
            [{"left": True, "right": True}, {"left": None, "right": True}, None],
            [0.95, 0.7, np.nan],
            # a value known in part carries the reason for its null part
            [None, "left eye too small (4 px wide; needs 5)", "face too small"],
        ),
        "mask": col(["none", "worn", None]),
        "headwear": col([False, True, None], [0.8, 0.6, np.nan]),
    }
    return Faces(
        boxes=boxes,
        scores=np.array([0.99, 0.9, 0.6], np.float32),
        head_pose=pose,
        quality=q,
        attributes=attrs,
    )


SCENE = Scene(make_faces(), 640, 480)


def ev(text: str, face: int | None = None) -> object:
    expr = compile_expression(text, per_face=face is not None)
    return expr.evaluate(SCENE, face)


# -- grammar and precedence ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 + 2 * 3 == 7", True),
        ("(1 + 2) * 3 == 9", True),
        ("2 - 3 - 4 == -5", True),  # left-associative
        ("8 / 4 / 2 == 1", True),
        ("-2 * -3 == 6", True),
        ("--2 == 2", True),
        ("not true or true", True),  # not binds tighter than or
        ("not (true or true)", False),
        ("true or false and false", True),  # and binds tighter than or
        ("(true or false) and false", False),
        ("not 1 > 2", True),  # comparison binds tighter than not
        ("1.5e1 == 15", True),
        (".5 + .5 == 1", True),
        ("'a' == \"a\"", True),
        ("abs(-3) == 3", True),
        ("min(3, 1, 2) == 1 and max(3, 1, 2) == 3", True),
        ("image.width * 0.5 == 320", True),
        ("faces == 3", True),
        ("faces != 1", True),
    ],
)
def test_arithmetic_logic_and_precedence(text: str, expected: bool) -> None:
    assert ev(text) is expected


def test_tree_shape() -> None:
    node = parse_expression("a.b or c.d and not e.f")
    assert isinstance(node, Binary) and node.op == "or"
    assert isinstance(node.right, Binary) and node.right.op == "and"
    assert isinstance(node.right.right, Unary) and node.right.right.op == "not"


@pytest.mark.parametrize(
    ("text", "offset", "fragment"),
    [
        ("faces = 1", 6, "use =="),
        ("faces == ", 9, "expected a value"),
        ("faces == 1)", 10, "unexpected ')'"),
        ("(faces == 1", 11, "expected ')'"),
        ("0 < faces < 2", 10, "cannot be chained"),
        ("faces && true", 6, "use 'and'"),
        ("faces == 'one", 9, "unterminated string"),
        ("face.", 5, "expected a field name"),
        ("abs(1,", 6, "expected a value"),
        ("", 0, "empty expression"),
        ("faces[0]", 5, "no indexing"),
        ("1 and", 5, "expected a value"),
        ("faces == and", 9, "unexpected keyword"),
    ],
)
def test_syntax_errors_have_positions(text: str, offset: int, fragment: str) -> None:
    with pytest.raises(ExpressionError) as info:
        compile_expression(text, per_face=False)
    assert info.value.offset == offset
    assert fragment in info.value.message


@pytest.mark.parametrize(
    ("text", "per_face", "fragment"),
    [
        ("face.eyes", True, "unknown name 'face.eyes'"),
        ("face.sunglases", True, "did you mean face.sunglasses"),
        ("face.head_pose", True, "group of fields: name one of yaw, pitch, roll"),
        ("face.head_pose.yaw > 10", False, "describes one face"),
        ("frobnicate(faces)", False, "unknown function"),
        ("faces and true", False, "'and' needs true/false"),
        ("face.mask == 'wron'", True, "is not a value of face.mask"),
        ("face.mask > 'none'", True, "compares numbers only"),
        ("face.sunglasses + 1 > 0", True, "needs numbers"),
        ("faces == true", False, "cannot compare"),
        ("any(face.quality.sharpness)", False, "any() needs a true/false value per face"),
        ("any(face.sunglasses)", True, "cannot be used in a per-face rule"),
        ("any(any(face.sunglasses))", False, "inside another aggregate"),
        ("abs(1, 2) > 0", False, "abs() takes one argument"),
        ("count(face.sunglasses, 1) > 0", False, "count() takes one argument"),
        ("not faces", False, "'not' needs a true/false value"),
    ],
)
def test_name_and_type_errors(text: str, per_face: bool, fragment: str) -> None:
    with pytest.raises(ExpressionError) as info:
        compile_expression(text, per_face=per_face)
    assert fragment in info.value.message


# -- fields and evaluation -------------------------------------------------------------------


def test_every_field_is_evaluable_and_not_refused() -> None:
    from mien.features import is_refused

    for path, spec in FIELDS.items():
        assert not any(is_refused(p) for p in path.split(".")), path
        v = spec.get(SCENE, 0)
        assert isinstance(v, float | bool | str | Unknown), path


def test_per_face_values() -> None:
    assert ev("abs(face.head_pose.yaw) > 10", 0) is False
    assert ev("abs(face.head_pose.yaw) > 10", 1) is True
    assert ev("face.box.width < 0.2 * image.width", 1) is True  # 80 px < 128 px
    assert ev("face.box.width < 0.2 * image.width", 0) is False
    assert ev("face.box.center_x == 200", 0) is True
    assert ev("face.mask == 'worn'", 1) is True
    assert ev("face.sunglasses.probability", 0) == pytest.approx(0.1)
    assert ev("face.sunglasses.probability", 1) == pytest.approx(0.8)
    assert ev("face.headwear.confidence", 1) == pytest.approx(0.6)
    assert ev("face.eyes_open", 0) is True


def test_aggregates() -> None:
    assert ev("any(face.sunglasses)") is True  # face 1, although face 2 is unknown
    assert ev("count(face.box.width > 50) == 2") is True
    assert ev("max(face.box.width) == 200") is True
    assert ev("min(face.box.width) == 8") is True
    assert ev("all(face.score > 0.5)") is True
    assert ev("all(face.sunglasses)") is False  # face 0 is false: decided despite face 2


def test_unknown_values_follow_kleene_logic() -> None:
    # face 2 has no head pose and no attributes: every comparison with them is unknown
    v = ev("abs(face.head_pose.yaw) > 10", 2)
    assert isinstance(v, Unknown) and "no head pose" in v.reasons[0]
    assert isinstance(ev("face.head_pose.yaw + 1 == 1", 2), Unknown)
    assert isinstance(ev("not face.sunglasses", 2), Unknown)
    assert ev("face.sunglasses and false", 2) is False
    assert ev("face.sunglasses or true", 2) is True
    assert isinstance(ev("face.sunglasses or false", 2), Unknown)
    assert isinstance(ev("face.sunglasses and true", 2), Unknown)
    # one eye unknown: "both open" is unknown, with the eye named
    v = ev("face.eyes_open.left and face.eyes_open.right", 1)
    assert isinstance(v, Unknown)
    assert (
        v.reasons[0]
        == "eyes_open.left could not be judged (left eye too small (4 px wide; needs 5))"
    )
    assert isinstance(ev("face.eyes_open", 1), Unknown)
    # aggregates: unknown when the known faces do not decide
    assert isinstance(ev("any(face.mask == 'worn_incorrectly')"), Unknown)
    u = ev("count(face.sunglasses) > 0")
    assert isinstance(u, Unknown) and u.reasons[0].startswith("face 2:")
    assert isinstance(ev("max(face.quality.sharpness) > 0"), Unknown)
    d = ev("1 / (faces - 3) > 0")
    assert isinstance(d, Unknown) and d.reasons == ("division by zero",)


def test_feature_not_computed_is_unknown_with_reason() -> None:
    faces = Faces(boxes=np.array([[0, 0, 50, 50]], np.float32), scores=np.array([0.9], np.float32))
    v = compile_expression("face.sunglasses", per_face=True).evaluate(Scene(faces, 100, 100), 0)
    assert (
        isinstance(v, Unknown) and "not computed" in v.reasons[0] and "sunglasses" in v.reasons[0]
    )


RULES = """\
name: t
rules:
  - id: one-face
    require: faces == 1
  - id: no-sunglasses
    per_face: true
    flag_if: face.sunglasses
    message: "sunglasses on face (p = {face.sunglasses.probability})"
  - id: frontal
    per_face: true
    require: abs(face.head_pose.yaw) <= 10
  - id: frontal-lenient
    per_face: true
    when_unknown: pass
    severity: warning
    require: abs(face.head_pose.yaw) <= 10
"""


def test_flags_with_reasons_and_face_index() -> None:
    rs = parse_rules(RULES)
    result = ImageResult(source="x.jpg", width=640, height=480, faces=make_faces())
    flags = rs.evaluate(result)
    got = [(f.rule, f.face, f.unknown, f.severity) for f in flags]
    assert got == [
        ("one-face", None, False, "error"),
        ("no-sunglasses", 1, False, "error"),
        ("no-sunglasses", 2, True, "error"),  # when_unknown: flag (the default)
        ("frontal", 1, False, "error"),
        ("frontal", 2, True, "error"),
        ("frontal-lenient", 1, False, "warning"),  # face 2 unknown passes
    ]
    assert flags[0].values == {"faces": 3}
    assert "faces == 1 does not hold" in flags[0].message
    assert flags[1].message == "sunglasses on face (p = 0.8)"
    assert "cannot be checked" in flags[2].message and "face too small" in flags[2].message
    assert flags[2].values == {"face.sunglasses": None}
    assert flags[3].values == {"face.head_pose.yaw": 35}
    check = rs.check(result)
    assert not check.passed and check.to_dict()["flags"][0]["rule"] == "one-face"
    assert set(rs.required_features) == {"detection", "head_pose", "sunglasses"}


def test_warnings_do_not_fail_and_unreadable_images_do() -> None:
    rs = parse_rules("rules:\n  - id: w\n    severity: warning\n    flag_if: faces > 0\n")
    ok = ImageResult(source="x", width=10, height=10, faces=make_faces())
    assert [f.rule for f in rs.evaluate(ok)] == ["w"] and rs.check(ok).passed
    bad = ImageResult(
        source="y", width=0, height=0, faces=None, error=ErrorInfo("InvalidImage", "corrupt")
    )
    flags = rs.evaluate(bad)
    assert [(f.rule, f.severity) for f in flags] == [("unreadable", "error")]
    assert "InvalidImage" in flags[0].message and not rs.check(bad).passed


def test_image_rule_values_list_per_face() -> None:
    rs = parse_rules("rules:\n  - id: sg\n    flag_if: any(face.sunglasses)\n")
    (flag,) = rs.evaluate(ImageResult(source="x", width=640, height=480, faces=make_faces()))
    assert flag.values == {"face.sunglasses": [False, True, None]}
    assert flag.face is None


# -- refusals --------------------------------------------------------------------------------

EVERY_REFUSED = sorted(_REFUSED_NAMES | _REFUSED_WORDS)


@pytest.mark.parametrize("name", EVERY_REFUSED)
def test_every_refused_name_is_refused_in_rules(name: str) -> None:
    for text in (
        f"face.{name} == true",
        f"face.attributes.{name} > 0.5",
        f"{name}(face.score) > 1",
        f"face.mask == '{name}'",
    ):
        with pytest.raises(mien.RefusedAttributeError) as info:
            compile_expression(text, per_face=True)
        assert info.value.code == "RefusedAttribute"
        assert str(info.value) == REFUSAL_MESSAGE.format(names=", ".join(info.value.names))
    yaml_text = f"rules:\n  - id: r\n    per_face: true\n    flag_if: face.{name} > 0\n"
    with pytest.raises(mien.RefusedAttributeError):
        parse_rules(yaml_text)


@pytest.mark.parametrize("name", ["apparent_age", "faceembedding", "gender_presentation"])
def test_refused_compound_names_and_rule_ids(name: str) -> None:
    with pytest.raises(mien.RefusedAttributeError):
        parse_rules(f"rules:\n  - id: x\n    per_face: true\n    flag_if: face.{name}\n")
    with pytest.raises(mien.RefusedAttributeError):
        parse_rules(f"rules:\n  - id: {name}\n    flag_if: faces > 0\n")
    with pytest.raises(mien.RefusedAttributeError):
        parse_rules(f"name: {name}\nrules:\n  - id: x\n    flag_if: faces > 0\n")


def test_refused_before_unknown() -> None:
    # "face.age" is refused (not merely unknown), even in a message placeholder
    with pytest.raises(mien.RefusedAttributeError):
        parse_rules(
            "rules:\n  - id: x\n    per_face: true\n    flag_if: face.score > 0\n"
            "    message: 'age {face.age}'\n"
        )


# -- YAML: positions, structure, hostile input ----------------------------------------------


def test_unknown_name_error_has_line_and_column() -> None:
    text = "rules:\n  - id: x\n    per_face: true\n    flag_if: face.score > 0 and face.eyez\n"
    with pytest.raises(RuleError) as info:
        parse_rules(text, origin="f.yaml")
    e = info.value
    assert (e.line, e.column) == (4, 33)
    assert str(e).startswith("f.yaml:4:33: unknown name 'face.eyez'")
    assert "^" in str(e) and e.code == "InvalidRules"


def test_quoted_expression_column() -> None:
    with pytest.raises(RuleError) as info:
        parse_rules('rules:\n  - id: x\n    require: "faces = 1"\n')
    assert (info.value.line, info.value.column) == (3, 21)


def test_message_placeholder_error_position() -> None:
    with pytest.raises(RuleError) as info:
        parse_rules("rules:\n  - id: x\n    require: faces == 1\n    message: found {facez}\n")
    assert (info.value.line, info.value.column) == (4, 21)
    with pytest.raises(RuleError, match="unmatched"):
        parse_rules("rules:\n  - id: x\n    require: faces == 1\n    message: 'a } b'\n")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("rules: []\n", "non-empty list"),
        ("name: x\n", "missing 'rules'"),
        ("rules:\n  - id: x\n    require: faces == 1\n    flag_if: faces == 2\n", "exactly one"),
        ("rules:\n  - id: x\n", "exactly one"),
        ("rules:\n  - require: faces == 1\n", "needs an 'id'"),
        ("rules:\n  - id: x\n    require: faces\n", "must be a condition"),
        ("rules:\n  - id: x\n    requires: faces == 1\n", "unknown key 'requires'"),
        ("rules:\n  - id: x\n    require: faces == 1\n    severity: fatal\n", "severity"),
        ("rules:\n  - id: x\n    require: faces == 1\n    when_unknown: maybe\n", "when_unknown"),
        ("rules:\n  - id: x\n    require: faces == 1\n    per_face: yes please\n", "per_face"),
        (
            "rules:\n  - id: x\n    require: faces == 1\n  - id: x\n    require: faces == 2\n",
            "duplicate rule id",
        ),
        ("rules:\n  - id: 'bad id!'\n    require: faces == 1\n", "rule id"),
        ("rules:\n  - id: x\n    require: [faces]\n", "single value"),
        ("version: 2\nrules:\n  - id: x\n    require: faces == 1\n", "unsupported version"),
        ("rules: {a: 1}\n", "non-empty list"),
        ("rules:\n  - id: x\n    require: faces == 1\n    id: y\n", "duplicate key"),
        ("- just\n- a list\n", "mapping"),
        ("rules: [\n", "not valid YAML"),
        ("", "empty"),
        ("a: 1\n---\nb: 2\n", "not valid YAML"),
    ],
)
def test_bad_rule_files(text: str, fragment: str) -> None:
    with pytest.raises(RuleError) as info:
        parse_rules(text)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    "text",
    [
        "rules: !!python/object/apply:os.system ['echo pwned']\n",
        "!!python/object:mien.rules.RuleSet {}\n",
        "rules:\n  - id: x\n    require: !!python/name:os.system faces\n",
        "rules:\n  - !!map {id: x, require: faces == 1}\n",
        "rules:\n  - id: !custom x\n    require: faces == 1\n",
    ],
)
def test_yaml_tags_are_refused(text: str) -> None:
    with pytest.raises(RuleError, match="YAML tags are not allowed"):
        parse_rules(text)


def test_yaml_aliases_billion_laughs_refused() -> None:
    lol = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    lol += "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nrules: *c\n"
    with pytest.raises(RuleError, match="anchors and aliases"):
        parse_rules(lol)


def test_deep_yaml_refused() -> None:
    text = "rules: " + "[" * 5000 + "]" * 5000 + "\n"
    with pytest.raises(RuleError, match="nested more than"):
        parse_rules(text)


def test_huge_yaml_refused(tmp_path) -> None:
    text = "rules:\n" + "  - id: x\n    require: faces == 1\n" * 20000
    with pytest.raises(RuleError, match="too large"):
        parse_rules(text)
    path = tmp_path / "big.yaml"
    path.write_text(text)
    with pytest.raises(RuleError, match="too large"):
        load_rules(str(path))


def test_too_many_rules_refused() -> None:
    text = "rules:\n" + "".join(f"  - id: r{i}\n    require: faces == 1\n" for i in range(300))
    with pytest.raises(RuleError, match="too many rules"):
        parse_rules(text)


def test_hostile_expressions_refused_quickly() -> None:
    deep = "(" * 10_000 + "1" + ")" * 10_000
    with pytest.raises(ExpressionError, match="too long"):
        parse_expression(deep)
    nested = "(" * (MAX_DEPTH + 5) + "1" + ")" * (MAX_DEPTH + 5)
    with pytest.raises(ExpressionError, match="nested more than"):
        parse_expression(nested)
    nots = "not " * (MAX_DEPTH + 5) + "true"
    with pytest.raises(ExpressionError, match="nested more than"):
        parse_expression(nots)
    chain = " + ".join(["1"] * (MAX_TREE_DEPTH + 5)) + " > 0"
    assert len(chain) < MAX_EXPRESSION_CHARS
    with pytest.raises(ExpressionError, match="nested more than"):
        parse_expression(chain)
    with pytest.raises(ExpressionError, match="tokens"):
        parse_expression("+".join(["1"] * 1500)[:MAX_EXPRESSION_CHARS])
    with pytest.raises(ExpressionError, match="out of range"):
        parse_expression("1e999 > 0")
    # the expression language has no way to reach Python: names are fields, never attributes
    with pytest.raises(ExpressionError, match="unknown name"):
        compile_expression("face.__class__.__init__", per_face=True)
    with pytest.raises(ExpressionError, match="unknown function"):
        compile_expression("__import__('os') == 0", per_face=False)


def test_load_rules_sources(tmp_path) -> None:
    for name in PROFILES:
        rs = load_rules(name)
        assert isinstance(rs, RuleSet) and rs.name == name and load_rules(name) is rs
    path = tmp_path / "r.yaml"
    path.write_text(RULES)
    assert [r.id for r in load_rules(path).rules] == [r.id for r in load_rules(str(path)).rules]
    assert load_rules(RULES).name == "t"
    mapping = {"name": "m", "rules": [{"id": "a", "require": "faces == 1"}]}
    assert load_rules(mapping).rules[0].test.source == "faces == 1"
    with pytest.raises(RuleError, match="no built-in profile or rule file"):
        load_rules("id-fotos")
    assert load_profile(" id-photo") is load_rules("id-photo")
    with pytest.raises(RuleError, match="no built-in profile"):
        load_profile(str(path))  # never reads a file
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00rules")
    with pytest.raises(RuleError, match="not UTF-8"):
        load_rules(str(tmp_path / "bin.yaml"))


def test_profiles_required_features() -> None:
    idp = load_rules("id-photo")
    assert set(idp.required_features) >= {
        "detection",
        "landmarks",
        "head_pose",
        "quality",
        "eyes_open",
        "sunglasses",
        "headwear",
        "mouth_open",
        "mask",
    }
    assert load_rules("publish-safe").required_features == ("detection",)
    assert idp.features_with("mesh")[-1] != "mesh" or "mesh" in idp.features_with("mesh")
    assert "mesh" in idp.features_with("mesh")
    with pytest.raises(mien.RefusedAttributeError):
        idp.features_with("age")


def test_video_frame_context() -> None:
    rs = parse_rules(
        "rules:\n  - id: sg\n    per_face: true\n    flag_if: face.sunglasses\n"
        "  - id: many\n    flag_if: faces > 2\n"
    )
    base = make_faces()
    faces = Faces(
        boxes=base.boxes,
        scores=base.scores,
        head_pose=base.head_pose,
        quality=base.quality,
        attributes=base.attributes,
        track_ids=np.array([7, 8, 9]),
    )
    flags = rs.evaluate_faces(faces, 640, 480, frame=12, timestamp_ms=480.0)
    got = [(f.rule, f.face, f.track_id, f.frame, f.timestamp_ms, f.unknown) for f in flags]
    assert got == [
        ("sg", 1, 8, 12, 480.0, False),
        ("sg", 2, 9, 12, 480.0, True),
        ("many", None, None, 12, 480.0, False),
    ]
    d = flags[0].to_dict()
    assert (d["frame"], d["timestamp_ms"], d["track_id"]) == (12, 480.0, 8)
    assert "frame" not in rs.evaluate_faces(make_faces(), 640, 480)[0].to_dict()


def test_mapping_that_is_not_plain_data_is_a_rule_error() -> None:
    with pytest.raises(RuleError):
        load_rules({"rules": [{"id": "x", "require": object()}]})
