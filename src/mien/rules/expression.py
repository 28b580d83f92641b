"""Checking and evaluating a parsed rule expression, with three-valued logic for unknown values.

:func:`compile_expression` parses the text, refuses names that ask for who a person is or what
group they belong to, resolves every field against :data:`mien.rules.fields.FIELDS` and checks
types, all before any image is read. :meth:`Expression.evaluate` walks the tree (no ``eval``).

Unknown values (docs/rules.md): arithmetic and comparisons with an unknown are unknown; ``and``,
``or`` and ``not`` follow Kleene's three-valued logic (``false and unknown`` is false, ``true or
unknown`` is true, otherwise unknown); ``any``/``all`` likewise over the faces; ``count``,
``min`` and ``max`` are unknown when any face's value is.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Final

from mien.features import check_refused, is_refused
from mien.rules.fields import FIELDS, GROUPS, FieldSpec, Scene
from mien.rules.syntax import (
    Binary,
    Call,
    ExpressionError,
    Field,
    Literal,
    Node,
    Unary,
    iter_nodes,
    parse_expression,
)
from mien.rules.values import Unknown, Value, unknown

#: Functions: name -> short description (docs/rules.md).
FUNCTIONS: Final[dict[str, str]] = {
    "abs": "abs(x): absolute value of a number",
    "min": "min(a, b, ...): the smallest number; min(x) in an image rule: the smallest over faces",
    "max": "max(a, b, ...): the largest number; max(x) in an image rule: the largest over faces",
    "any": "any(c): in an image rule, true when c holds for at least one face",
    "all": "all(c): in an image rule, true when c holds for every face (true when none)",
    "count": "count(c): in an image rule, the number of faces for which c holds",
}
AGGREGATES: Final[frozenset[str]] = frozenset({"any", "all", "count", "min", "max"})


def refuse_names(node: Node) -> None:
    """Raise :class:`mien.errors.RefusedAttributeError` for any refused word in the expression."""
    words: list[str] = []
    for n in iter_nodes(node):
        if isinstance(n, Field):
            bad = [p for p in n.parts if is_refused(p)]
            if not bad and is_refused("_".join(n.parts)):
                bad = [n.path]
            words += bad
        elif isinstance(n, Call) and is_refused(n.name):
            words.append(n.name)
        elif isinstance(n, Literal) and isinstance(n.value, str) and is_refused(n.value):
            words.append(n.value)
    if words:
        check_refused(list(dict.fromkeys(words)))


def _field_spec(n: Field) -> FieldSpec:
    spec = FIELDS.get(n.path)
    if spec is not None:
        return spec
    if n.path in GROUPS:
        members = ", ".join(GROUPS[n.path])
        raise ExpressionError(f"'{n.path}' is a group of fields: name one of {members}", n.pos)
    close = difflib.get_close_matches(n.path, list(FIELDS), n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    raise ExpressionError(
        f"unknown name '{n.path}'{hint} (a rule can name only what mien computes; "
        "see docs/rules.md or `mien check --list-fields`)",
        n.pos,
    )


class _Checker:
    """Resolves fields and infers types; raises :class:`ExpressionError` at the fault."""

    def __init__(self, per_face: bool) -> None:
        self.per_face = per_face
        self.fields: dict[str, FieldSpec] = {}

    def check(self, n: Node, in_aggregate: bool = False) -> str:
        if isinstance(n, Literal):
            if isinstance(n.value, bool):
                return "bool"
            return "string" if isinstance(n.value, str) else "number"
        if isinstance(n, Field):
            spec = _field_spec(n)
            if spec.scope == "face" and not (self.per_face or in_aggregate):
                raise ExpressionError(
                    f"'{n.path}' describes one face: use it in a per-face rule "
                    "(per_face: true) or inside any(), all(), count(), min() or max()",
                    n.pos,
                )
            self.fields[spec.path] = spec
            return spec.type
        if isinstance(n, Unary):
            t = self.check(n.operand, in_aggregate)
            want = "bool" if n.op == "not" else "number"
            if t != want:
                raise ExpressionError(f"'{n.op}' needs a {_noun(want)}, not a {_noun(t)}", n.pos)
            return want
        if isinstance(n, Binary):
            lt = self.check(n.left, in_aggregate)
            rt = self.check(n.right, in_aggregate)
            if n.op in ("and", "or"):
                for side, t in (("left", lt), ("right", rt)):
                    if t != "bool":
                        raise ExpressionError(
                            f"'{n.op}' needs true/false on both sides; its {side} side is a "
                            f"{_noun(t)}",
                            n.pos,
                        )
                return "bool"
            if n.op in ("+", "-", "*", "/"):
                if lt != "number" or rt != "number":
                    raise ExpressionError(
                        f"'{n.op}' needs numbers, not a {_noun(lt)} and a {_noun(rt)}", n.pos
                    )
                return "number"
            if lt != rt:
                raise ExpressionError(f"cannot compare a {_noun(lt)} with a {_noun(rt)}", n.pos)
            if n.op not in ("==", "!=") and lt != "number":
                raise ExpressionError(f"'{n.op}' compares numbers only; use == or !=", n.pos)
            self._check_choice(n.left, n.right)
            self._check_choice(n.right, n.left)
            return "bool"
        if isinstance(n, Call):
            return self._check_call(n, in_aggregate)
        raise ExpressionError("unsupported expression", n.pos)  # pragma: no cover

    def _check_choice(self, field: Node, lit: Node) -> None:
        if not (isinstance(field, Field) and isinstance(lit, Literal)):
            return
        spec = FIELDS[field.path]
        if spec.choices is not None and lit.value not in spec.choices:
            raise ExpressionError(
                f"{lit.value!r} is not a value of {field.path} (one of: {', '.join(spec.choices)})",
                lit.pos,
            )

    def _check_call(self, n: Call, in_aggregate: bool) -> str:
        if n.name not in FUNCTIONS:
            close = difflib.get_close_matches(n.name, list(FUNCTIONS), n=1)
            hint = f"; did you mean {close[0]}()?" if close else ""
            raise ExpressionError(
                f"unknown function '{n.name}'{hint} (functions: {', '.join(FUNCTIONS)})", n.pos
            )
        nargs = len(n.args)
        aggregate = n.name in ("any", "all", "count") or (n.name in ("min", "max") and nargs == 1)
        if aggregate:
            if nargs != 1:
                raise ExpressionError(f"{n.name}() takes one argument", n.pos)
            if self.per_face or in_aggregate:
                where = "inside another aggregate" if in_aggregate else "in a per-face rule"
                raise ExpressionError(
                    f"{n.name}() over faces cannot be used {where} ('face' is already one face)",
                    n.pos,
                )
            t = self.check(n.args[0], True)
            want = "number" if n.name in ("min", "max") else "bool"
            if t != want:
                raise ExpressionError(
                    f"{n.name}() needs a {_noun(want)} per face, not a {_noun(t)}", n.args[0].pos
                )
            return "number" if n.name != "any" and n.name != "all" else "bool"
        if n.name == "abs" and nargs != 1:
            raise ExpressionError("abs() takes one argument", n.pos)
        if n.name in ("min", "max") and nargs < 1:
            raise ExpressionError(f"{n.name}() needs at least one argument", n.pos)
        for a in n.args:
            t = self.check(a, in_aggregate)
            if t != "number":
                raise ExpressionError(f"{n.name}() needs numbers, not a {_noun(t)}", a.pos)
        return "number"


def _noun(t: str) -> str:
    return {"bool": "true/false value", "number": "number", "string": "string"}[t]


@dataclass(frozen=True)
class Expression:
    """A checked expression: its text, tree, result type and the fields it reads."""

    source: str
    node: Node
    type: str
    fields: tuple[FieldSpec, ...]

    @property
    def features(self) -> frozenset[str]:
        out: set[str] = set()
        for f in self.fields:
            out |= f.features
        return frozenset(out)

    def evaluate(
        self, scene: Scene, face: int | None, record: dict[str, Any] | None = None
    ) -> Value:
        """The value for ``scene`` (and face index ``face`` in a per-face rule).

        ``record``, when given, receives every field value read: ``path -> value``, or
        ``path -> {face index: value}`` for fields read inside an aggregate.
        """
        return _Evaluator(scene, record).eval(self.node, face, False)


def compile_expression(text: str, *, per_face: bool) -> Expression:
    """Parse, refuse, resolve and type-check ``text`` (raises ExpressionError or Refused...)."""
    node = parse_expression(text)
    refuse_names(node)
    checker = _Checker(per_face)
    t = checker.check(node)
    return Expression(text, node, t, tuple(checker.fields.values()))


class _Evaluator:
    def __init__(self, scene: Scene, record: dict[str, Any] | None) -> None:
        self.scene = scene
        self.record = record

    def eval(self, n: Node, face: int | None, agg: bool) -> Value:
        if isinstance(n, Literal):
            return n.value
        if isinstance(n, Field):
            spec = FIELDS[n.path]
            if spec.scope == "image":
                v = spec.get(self.scene, -1)
            else:
                assert face is not None
                v = spec.get(self.scene, face)
            if self.record is not None:
                if agg and spec.scope == "face":
                    self.record.setdefault(n.path, {})[face] = v
                else:
                    self.record[n.path] = v
            return v
        if isinstance(n, Unary):
            v = self.eval(n.operand, face, agg)
            if isinstance(v, Unknown):
                return v
            return (not v) if n.op == "not" else -float(v)
        if isinstance(n, Binary):
            return self._binary(n, face, agg)
        if isinstance(n, Call):
            return self._call(n, face, agg)
        raise TypeError(f"unsupported node {n!r}")  # pragma: no cover

    def _binary(self, n: Binary, face: int | None, agg: bool) -> Value:
        if n.op in ("and", "or"):
            stop = n.op == "or"  # the value that decides: true for or, false for and
            left = self.eval(n.left, face, agg)
            if left is stop:
                return stop
            right = self.eval(n.right, face, agg)
            if right is stop:
                return stop
            if isinstance(left, Unknown) or isinstance(right, Unknown):
                return _merge(left, right)
            return not stop
        left = self.eval(n.left, face, agg)
        right = self.eval(n.right, face, agg)
        if isinstance(left, Unknown) or isinstance(right, Unknown):
            return _merge(left, right)
        op = n.op
        if op == "==":
            return left == right
        if op == "!=":
            return left != right
        a, b = float(left), float(right)
        if op == "<":
            return a < b
        if op == "<=":
            return a <= b
        if op == ">":
            return a > b
        if op == ">=":
            return a >= b
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            return a / b if b != 0 else unknown("division by zero")
        raise TypeError(f"unsupported operator {op}")  # pragma: no cover

    def _call(self, n: Call, face: int | None, agg: bool) -> Value:
        nargs = len(n.args)
        if n.name in ("any", "all", "count") or (n.name in ("min", "max") and nargs == 1):
            return self._aggregate(n)
        values = [self.eval(a, face, agg) for a in n.args]
        unknowns = [v for v in values if isinstance(v, Unknown)]
        if unknowns:
            return _merge(*unknowns)
        nums = [float(v) for v in values if not isinstance(v, Unknown)]
        if n.name == "abs":
            return abs(nums[0])
        return min(nums) if n.name == "min" else max(nums)

    def _aggregate(self, n: Call) -> Value:
        arg = n.args[0]
        values: list[Value] = []
        for i in range(len(self.scene.faces)):
            v = self.eval(arg, i, True)
            if isinstance(v, Unknown):
                v = Unknown(tuple(f"face {i}: {r}" for r in v.reasons), v.attribute)
            values.append(v)
        unknowns = [v for v in values if isinstance(v, Unknown)]
        known = [v for v in values if not isinstance(v, Unknown)]
        if n.name == "any":
            if any(v is True for v in known):
                return True
            return _merge(*unknowns) if unknowns else False
        if n.name == "all":
            if any(v is False for v in known):
                return False
            return _merge(*unknowns) if unknowns else True
        if unknowns:
            return _merge(*unknowns)
        if n.name == "count":
            return float(sum(1 for v in known if v is True))
        if not known:
            return unknown(f"{n.name}() over no faces")
        nums = [float(v) for v in known]
        return min(nums) if n.name == "min" else max(nums)


def _merge(*values: Value) -> Unknown:
    out = Unknown(())
    for v in values:
        if isinstance(v, Unknown):
            out = out.merge(v)
    return out
