"""Loading rule sets from YAML: built-in profiles, files, text or mappings (docs/rules.md).

The YAML is read with PyYAML's *safe* parser and never constructed into Python objects by it:
the loader walks the composed node tree itself, so only plain mappings, sequences and scalars
exist. Explicit tags (``!!python/object``...), anchors and aliases are refused, as are texts over
:data:`MAX_YAML_BYTES`, more than :data:`MAX_RULES` rules and nesting deeper than
:data:`MAX_YAML_DEPTH`. Every error names the line and column it found.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from importlib import resources
from typing import Any, Final

import yaml

from mien.errors import MienError, RuleError
from mien.features import check_refused
from mien.media.regular import read_regular
from mien.rules.expression import Expression, compile_expression
from mien.rules.ruleset import SEVERITIES, WHEN_UNKNOWN, Message, Rule, RuleSet
from mien.rules.syntax import ExpressionError

MAX_YAML_BYTES: Final[int] = 256 * 1024
MAX_RULES: Final[int] = 256
MAX_YAML_DEPTH: Final[int] = 8
MAX_YAML_EVENTS: Final[int] = 50_000
MAX_MESSAGE_CHARS: Final[int] = 1000

#: Built-in profiles shipped in ``mien/rules/profiles/<name>.yaml``.
PROFILES: Final[tuple[str, ...]] = ("id-photo", "publish-safe")

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_TOP_KEYS: Final[tuple[str, ...]] = ("version", "name", "description", "rules")
_RULE_KEYS: Final[tuple[str, ...]] = (
    "id",
    "description",
    "per_face",
    "require",
    "flag_if",
    "when_unknown",
    "severity",
    "message",
)
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


def load_rules(source: str | os.PathLike[str] | Mapping[str, Any] | RuleSet) -> RuleSet:
    """A :class:`RuleSet` from a built-in profile name, a YAML file path, YAML text or a mapping.

    A string is a profile name when it is one of :data:`PROFILES`, YAML text when it holds a
    line break, and otherwise a path to a file (so never pass untrusted strings here: a web
    parameter goes to :func:`load_profile` or :func:`parse_rules`). Raises
    :class:`mien.errors.RuleError` for a bad rule file, :class:`mien.errors.RefusedAttributeError`
    when a rule names something mien refuses to compute.
    """
    if isinstance(source, RuleSet):
        return source
    if isinstance(source, Mapping):
        try:
            text = yaml.dump(dict(source), Dumper=_NoAliasDumper, sort_keys=False)
        except yaml.YAMLError as exc:
            raise RuleError(f"<mapping>: cannot be read as rules: {exc}") from None
        return parse_rules(text, origin="<mapping>")
    if isinstance(source, str) and source.strip() in PROFILES:
        return _profile(source.strip())
    if isinstance(source, str) and "\n" in source:
        return parse_rules(source, origin="<text>")
    path = os.fspath(source)
    try:
        size = os.stat(path).st_size
    except OSError:
        raise RuleError(
            f"no built-in profile or rule file named {path!r} (profiles: {', '.join(PROFILES)})"
        ) from None
    if size > MAX_YAML_BYTES:
        raise RuleError(
            f"{path}: rule file too large ({size} bytes; the limit is {MAX_YAML_BYTES})"
        )
    try:
        # A regular file only: a FIFO or device would block or never end (never opened).
        data = read_regular(path, MAX_YAML_BYTES)
    except MienError as exc:
        reason = exc.message.removeprefix(f"{path}: ")
        raise RuleError(f"{path}: cannot read the rule file: {reason}") from None
    if len(data) > MAX_YAML_BYTES:  # it grew since stat
        raise RuleError(f"{path}: rule file too large (the limit is {MAX_YAML_BYTES} bytes)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise RuleError(f"{path}: the rule file is not UTF-8 text") from None
    return parse_rules(text, origin=path)


class _NoAliasDumper(yaml.SafeDumper):  # type: ignore[misc]
    def ignore_aliases(self, data: Any) -> bool:
        return True


def load_profile(name: str) -> RuleSet:
    """A built-in profile by name; never reads a file (use this for untrusted input)."""
    key = name.strip() if isinstance(name, str) else name
    if key not in PROFILES:
        raise RuleError(f"no built-in profile {name!r} (profiles: {', '.join(PROFILES)})")
    return _profile(key)


@functools.cache
def _profile(name: str) -> RuleSet:
    text = resources.files("mien.rules").joinpath("profiles", f"{name}.yaml").read_text("utf-8")
    return parse_rules(text, origin=f"profile {name}")


def profile_text(name: str) -> str:
    """The YAML text of a built-in profile."""
    if name not in PROFILES:
        raise RuleError(f"no built-in profile {name!r} (profiles: {', '.join(PROFILES)})")
    return resources.files("mien.rules").joinpath("profiles", f"{name}.yaml").read_text("utf-8")


# -- YAML -----------------------------------------------------------------------------------


class _Ctx:
    def __init__(self, origin: str) -> None:
        self.origin = origin

    def error(self, node: yaml.Node | yaml.Mark | None, message: str) -> RuleError:
        mark = node.start_mark if isinstance(node, yaml.Node) else node
        if mark is None:
            return RuleError(f"{self.origin}: {message}")
        line, col = mark.line + 1, mark.column + 1
        return RuleError(f"{self.origin}:{line}:{col}: {message}", line, col)


def _scan(text: str, ctx: _Ctx) -> None:
    """Refuse tags, anchors, aliases, deep nesting and huge documents before composing."""
    depth = 0
    try:
        for count, ev in enumerate(yaml.parse(text, Loader=yaml.SafeLoader)):
            if count > MAX_YAML_EVENTS:
                raise ctx.error(ev.start_mark, "rule file too large (too many YAML items)")
            if isinstance(ev, yaml.AliasEvent) or getattr(ev, "anchor", None) is not None:
                raise ctx.error(ev.start_mark, "YAML anchors and aliases are not allowed")
            tag = getattr(ev, "tag", None)
            if tag is not None and not _implicit(ev):
                raise ctx.error(ev.start_mark, f"YAML tags are not allowed (found {tag})")
            if isinstance(ev, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    raise ctx.error(
                        ev.start_mark, f"YAML nested more than {MAX_YAML_DEPTH} levels deep"
                    )
            elif isinstance(ev, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.MarkedYAMLError as exc:
        raise ctx.error(exc.problem_mark, f"not valid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ctx.error(None, f"not valid YAML: {exc}") from None


def _implicit(ev: yaml.Event) -> bool:
    implicit = getattr(ev, "implicit", None)
    if isinstance(implicit, tuple):
        return bool(implicit[0] or implicit[1])
    return bool(implicit)


def parse_rules(text: str, origin: str = "<text>") -> RuleSet:
    """Parse YAML ``text`` into a :class:`RuleSet` (errors name ``origin`` and line:column)."""
    ctx = _Ctx(origin)
    if len(text.encode("utf-8", "surrogatepass")) > MAX_YAML_BYTES:
        raise RuleError(f"{origin}: rule text too large (the limit is {MAX_YAML_BYTES} bytes)")
    _scan(text, ctx)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise ctx.error(exc.problem_mark, f"not valid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ctx.error(None, f"not valid YAML: {exc}") from None
    if root is None:
        raise RuleError(f"{origin}: the rule file is empty")
    top = _mapping(root, ctx, "the rule file", _TOP_KEYS)
    if "version" in top and _scalar(top["version"], ctx, "version") != "1":
        raise ctx.error(top["version"], "unsupported version (this mien reads version 1)")
    name = _scalar(top["name"], ctx, "name") if "name" in top else origin
    if "name" in top:
        check_refused([name])
    description = _scalar(top["description"], ctx, "description") if "description" in top else ""
    if "rules" not in top:
        raise ctx.error(root, "missing 'rules' (a list of rules)")
    seq = top["rules"]
    if not isinstance(seq, yaml.SequenceNode) or not seq.value:
        raise ctx.error(seq, "'rules' must be a non-empty list of rules")
    if len(seq.value) > MAX_RULES:
        raise ctx.error(seq, f"too many rules ({len(seq.value)}; the limit is {MAX_RULES})")
    rules: list[Rule] = []
    seen: set[str] = set()
    for node in seq.value:
        rule = _rule(node, ctx)
        if rule.id in seen:
            raise ctx.error(node, f"duplicate rule id {rule.id!r}")
        seen.add(rule.id)
        rules.append(rule)
    return RuleSet(name=name, rules=tuple(rules), description=description)


def _mapping(node: yaml.Node, ctx: _Ctx, what: str, keys: tuple[str, ...]) -> dict[str, yaml.Node]:
    if not isinstance(node, yaml.MappingNode):
        raise ctx.error(node, f"{what} must be a mapping of keys to values")
    out: dict[str, yaml.Node] = {}
    for k, v in node.value:
        if not isinstance(k, yaml.ScalarNode):
            raise ctx.error(k, "keys must be plain words")
        if k.value not in keys:
            raise ctx.error(k, f"unknown key {k.value!r} in {what} (allowed: {', '.join(keys)})")
        if k.value in out:
            raise ctx.error(k, f"duplicate key {k.value!r}")
        out[k.value] = v
    return out


def _scalar(node: yaml.Node, ctx: _Ctx, key: str) -> str:
    if not isinstance(node, yaml.ScalarNode):
        raise ctx.error(node, f"{key!r} must be a single value, not a list or mapping")
    return str(node.value)


def _bool(node: yaml.Node, ctx: _Ctx, key: str) -> bool:
    v = _scalar(node, ctx, key).strip().lower()
    if v not in ("true", "false"):
        raise ctx.error(node, f"{key!r} must be true or false")
    return v == "true"


def _choice(node: yaml.Node, ctx: _Ctx, key: str, choices: tuple[str, ...]) -> str:
    v = _scalar(node, ctx, key).strip()
    if v not in choices:
        raise ctx.error(node, f"{key!r} must be one of {', '.join(choices)} (got {v!r})")
    return v


def _rule(node: yaml.Node, ctx: _Ctx) -> Rule:
    m = _mapping(node, ctx, "a rule", _RULE_KEYS)
    if "id" not in m:
        raise ctx.error(node, "a rule needs an 'id'")
    rule_id = _scalar(m["id"], ctx, "id").strip()
    if not _ID.match(rule_id):
        raise ctx.error(
            m["id"], f"rule id {rule_id!r} must be 1-64 letters, digits, '-', '_' or '.'"
        )
    check_refused([rule_id])
    per_face = _bool(m["per_face"], ctx, "per_face") if "per_face" in m else False
    which = [k for k in ("require", "flag_if") if k in m]
    if len(which) != 1:
        raise ctx.error(node, f"rule {rule_id!r} needs exactly one of 'require' or 'flag_if'")
    key = which[0]
    test = _expression(m[key], ctx, per_face, key)
    if test.type != "bool":
        raise ctx.error(m[key], f"{key!r} must be a condition (true/false), not a {test.type}")
    message = _message(m["message"], ctx, per_face) if "message" in m else None
    description = _scalar(m["description"], ctx, "description") if "description" in m else ""
    return Rule(
        id=rule_id,
        test=test,
        flags_when=key == "flag_if",
        per_face=per_face,
        severity=_choice(m["severity"], ctx, "severity", SEVERITIES)
        if "severity" in m
        else "error",
        when_unknown=_choice(m["when_unknown"], ctx, "when_unknown", WHEN_UNKNOWN)
        if "when_unknown" in m
        else "flag",
        description=description,
        message=message,
    )


def _position(node: yaml.ScalarNode, offset: int) -> yaml.Mark:
    """The mark of character ``offset`` of a scalar, exact for one-line scalars."""
    start, end = node.start_mark, node.end_mark
    if start.line != end.line:
        return start
    shift = 1 if node.style in ("'", '"') else 0
    return yaml.Mark(
        start.name,
        start.index + shift + offset,
        start.line,
        start.column + shift + offset,
        None,
        None,
    )


def _expression(node: yaml.Node, ctx: _Ctx, per_face: bool, key: str) -> Expression:
    text = _scalar(node, ctx, key)
    assert isinstance(node, yaml.ScalarNode)
    try:
        return compile_expression(text, per_face=per_face)
    except ExpressionError as exc:
        raise _expr_error(ctx, node, text, exc, 0) from None


def _expr_error(
    ctx: _Ctx, node: yaml.ScalarNode, text: str, exc: ExpressionError, base: int
) -> RuleError:
    offset = base + exc.offset
    caret = _caret(text, offset)
    err = ctx.error(_position(node, offset), f"{exc.message}\n{caret}")
    return err


def _caret(text: str, offset: int) -> str:
    line_start = text.rfind("\n", 0, offset) + 1
    line_end = text.find("\n", offset)
    line = text[line_start : line_end if line_end >= 0 else len(text)]
    col = offset - line_start
    if len(line) > 100:
        lo = max(0, col - 50)
        line, col = line[lo : lo + 100], col - lo
    return f"    {line}\n    {' ' * col}^"


def _message(node: yaml.Node, ctx: _Ctx, per_face: bool) -> Message:
    text = _scalar(node, ctx, "message")
    assert isinstance(node, yaml.ScalarNode)
    if len(text) > MAX_MESSAGE_CHARS:
        raise ctx.error(node, f"message longer than {MAX_MESSAGE_CHARS} characters")
    parts: list[str | Expression] = []
    pos = 0
    for m in _PLACEHOLDER.finditer(text):
        parts.append(text[pos : m.start()])
        pos = m.end()
        tok = m.group()
        if tok in ("{{", "}}"):
            parts.append(tok[0])
        elif tok in ("{", "}"):
            raise _expr_error(
                ctx,
                node,
                text,
                ExpressionError(f"unmatched '{tok}' (write {tok * 2})", 0),
                m.start(),
            )
        else:
            inner = m.group(1)
            try:
                parts.append(compile_expression(inner, per_face=per_face))
            except ExpressionError as exc:
                raise _expr_error(ctx, node, text, exc, m.start() + 1) from None
    parts.append(text[pos:])
    return Message(tuple(p for p in parts if p != ""))
