"""The rule expression language: tokenizer, AST and recursive-descent parser (no eval, no exec).

Grammar (docs/rules.md), lowest precedence first::

    expr       := or_expr
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | comparison
    comparison := sum [("==" | "!=" | "<" | "<=" | ">" | ">=") sum]     (no chains)
    sum        := product (("+" | "-") product)*
    product    := unary (("*" | "/") unary)*
    unary      := "-" unary | primary
    primary    := NUMBER | STRING | "true" | "false" | "(" expr ")"
                | NAME "(" [expr ("," expr)*] ")"                         (a function call)
                | NAME ("." NAME)*                                        (a field)

Positions are 0-based character offsets into the expression text; :class:`ExpressionError`
carries the offset so the loader can point at the line and column of the YAML file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

#: Limits that keep a hostile expression from costing much: characters, tokens, nesting.
MAX_EXPRESSION_CHARS: Final[int] = 4096
MAX_TOKENS: Final[int] = 1024
MAX_DEPTH: Final[int] = 48
MAX_TREE_DEPTH: Final[int] = 128

KEYWORDS: Final[frozenset[str]] = frozenset({"and", "or", "not", "true", "false"})


class ExpressionError(Exception):
    """A syntax or name error at character ``offset`` of an expression."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


@dataclass(frozen=True)
class Token:
    kind: str  # "num", "str", "name", "op", "end"
    text: str
    pos: int


_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<num>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<str>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<op>==|!=|<=|>=|[<>()+\-*/,.])
    """,
    re.VERBOSE,
)

_HINTS: Final[dict[str, str]] = {
    "=": "use == to compare",
    "&": "use 'and'",
    "|": "use 'or'",
    "!": "use 'not' (or != to compare)",
    "%": "there is no % operator",
    "[": "there is no indexing; name fields with dots (face.eyes_open.left)",
    "]": "there is no indexing",
    "{": "there are no literals in braces",
    "}": "there are no literals in braces",
    "?": "there is no conditional operator",
    ":": "there is no ':' in an expression",
    "^": "there is no ^ operator",
}


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens; raise :class:`ExpressionError` at the first bad character."""
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ExpressionError(
            f"expression too long ({len(text)} characters; the limit is {MAX_EXPRESSION_CHARS})", 0
        )
    out: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            ch = text[pos]
            if ch in "\"'":
                raise ExpressionError("unterminated string", pos)
            hint = _HINTS.get(ch)
            raise ExpressionError(
                f"unexpected character {ch!r}" + (f": {hint}" if hint else ""), pos
            )
        kind = m.lastgroup or ""
        if kind != "ws":
            out.append(Token(kind, m.group(), pos))
            if len(out) > MAX_TOKENS:
                raise ExpressionError(f"expression has more than {MAX_TOKENS} tokens", pos)
        pos = m.end()
    out.append(Token("end", "", len(text)))
    return out


# -- AST ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    pos: int


@dataclass(frozen=True)
class Literal(Node):
    value: float | bool | str


@dataclass(frozen=True)
class Field(Node):
    parts: tuple[str, ...]

    @property
    def path(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True)
class Unary(Node):
    op: str  # "-" or "not"
    operand: Node


@dataclass(frozen=True)
class Binary(Node):
    op: str  # + - * / and or == != < <= > >=
    left: Node
    right: Node


@dataclass(frozen=True)
class Call(Node):
    name: str
    args: tuple[Node, ...]


COMPARISONS: Final[frozenset[str]] = frozenset({"==", "!=", "<", "<=", ">", ">="})


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    # -- helpers

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        t = self.tokens[self.i]
        self.i += 1
        return t

    def at(self, kind: str, text: str | None = None) -> bool:
        t = self.tok
        return t.kind == kind and (text is None or t.text == text)

    def expect_op(self, text: str, what: str) -> Token:
        if not self.at("op", text):
            raise ExpressionError(f"expected {what}, found {_describe(self.tok)}", self.tok.pos)
        return self.advance()

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionError(
                f"expression nested more than {MAX_DEPTH} levels deep", self.tok.pos
            )

    # -- grammar

    def parse(self) -> Node:
        if self.at("end"):
            raise ExpressionError("empty expression", 0)
        node = self.expr()
        if not self.at("end"):
            t = self.tok
            if t.kind == "op" and t.text in COMPARISONS:
                raise ExpressionError(
                    "comparisons cannot be chained; join them with 'and' (0.2 < x and x < 0.8)",
                    t.pos,
                )
            raise ExpressionError(f"unexpected {_describe(t)}", t.pos)
        return node

    def expr(self) -> Node:
        self.enter()
        try:
            return self.or_expr()
        finally:
            self.depth -= 1

    def or_expr(self) -> Node:
        node = self.and_expr()
        while self.at("name", "or"):
            t = self.advance()
            node = Binary(t.pos, "or", node, self.and_expr())
        return node

    def and_expr(self) -> Node:
        node = self.not_expr()
        while self.at("name", "and"):
            t = self.advance()
            node = Binary(t.pos, "and", node, self.not_expr())
        return node

    def not_expr(self) -> Node:
        if self.at("name", "not"):
            t = self.advance()
            self.enter()
            try:
                return Unary(t.pos, "not", self.not_expr())
            finally:
                self.depth -= 1
        return self.comparison()

    def comparison(self) -> Node:
        node = self.sum()
        if self.tok.kind == "op" and self.tok.text in COMPARISONS:
            t = self.advance()
            node = Binary(t.pos, t.text, node, self.sum())
        return node

    def sum(self) -> Node:
        node = self.product()
        while self.tok.kind == "op" and self.tok.text in ("+", "-"):
            t = self.advance()
            node = Binary(t.pos, t.text, node, self.product())
        return node

    def product(self) -> Node:
        node = self.unary()
        while self.tok.kind == "op" and self.tok.text in ("*", "/"):
            t = self.advance()
            node = Binary(t.pos, t.text, node, self.unary())
        return node

    def unary(self) -> Node:
        if self.at("op", "-"):
            t = self.advance()
            self.enter()
            try:
                return Unary(t.pos, "-", self.unary())
            finally:
                self.depth -= 1
        return self.primary()

    def primary(self) -> Node:
        t = self.tok
        if t.kind == "num":
            self.advance()
            value = float(t.text)
            if value != value or value in (float("inf"), float("-inf")):
                raise ExpressionError(f"number out of range: {t.text}", t.pos)
            return Literal(t.pos, value)
        if t.kind == "str":
            self.advance()
            return Literal(t.pos, _unquote(t))
        if t.kind == "op" and t.text == "(":
            self.advance()
            node = self.expr()
            self.expect_op(")", "')'")
            return node
        if t.kind == "name":
            if t.text in ("true", "false"):
                self.advance()
                return Literal(t.pos, t.text == "true")
            if t.text in KEYWORDS:
                raise ExpressionError(f"unexpected keyword '{t.text}'", t.pos)
            self.advance()
            if self.at("op", "("):
                return self.call(t)
            parts = [t.text]
            while self.at("op", "."):
                self.advance()
                n = self.tok
                if n.kind != "name" or n.text in KEYWORDS:
                    raise ExpressionError(
                        f"expected a field name after '.', found {_describe(n)}", n.pos
                    )
                parts.append(self.advance().text)
            return Field(t.pos, tuple(parts))
        raise ExpressionError(f"expected a value, found {_describe(t)}", t.pos)

    def call(self, name: Token) -> Node:
        self.advance()  # "("
        args: list[Node] = []
        if not self.at("op", ")"):
            args.append(self.expr())
            while self.at("op", ","):
                self.advance()
                args.append(self.expr())
        self.expect_op(")", "',' or ')' closing the call of " + name.text)
        return Call(name.pos, name.text, tuple(args))


def _unquote(t: Token) -> str:
    body = t.text[1:-1]
    return re.sub(r"\\(.)", r"\1", body)


def _describe(t: Token) -> str:
    if t.kind == "end":
        return "the end of the expression"
    return f"'{t.text}'"


def parse_expression(text: str) -> Node:
    """Parse ``text`` into an AST; raise :class:`ExpressionError` with the offset of the fault."""
    node = _Parser(text).parse()
    stack: list[tuple[Node, int]] = [(node, 1)]
    while stack:
        n, d = stack.pop()
        if d > MAX_TREE_DEPTH:
            raise ExpressionError(
                f"expression nested more than {MAX_TREE_DEPTH} operations deep", n.pos
            )
        if isinstance(n, Unary):
            stack.append((n.operand, d + 1))
        elif isinstance(n, Binary):
            stack += [(n.left, d + 1), (n.right, d + 1)]
        elif isinstance(n, Call):
            stack += [(a, d + 1) for a in n.args]
    return node


def iter_nodes(node: Node) -> list[Node]:
    """Every node of the tree under ``node`` (itself first), without recursion."""
    out: list[Node] = []
    stack = [node]
    while stack:
        n = stack.pop()
        out.append(n)
        if isinstance(n, Unary):
            stack.append(n.operand)
        elif isinstance(n, Binary):
            stack += [n.right, n.left]
        elif isinstance(n, Call):
            stack += list(reversed(n.args))
    return out
