"""Normalised SQL text: defaults, CHECK expressions and index predicates compare equal
however PostgreSQL, SQLite or SQLAlchemy happened to spell them.

``normalize_sql`` tokenizes, lower-cases unquoted words, drops ``::type`` and ``CAST(x AS t)``,
canonicalises a few operator spellings PostgreSQL deparses differently (``~~`` for LIKE,
``= ANY (ARRAY[...])`` for IN), and removes parentheses that PostgreSQL's operator precedence
makes redundant. Text it cannot tokenize only has its whitespace tidied. Raises nothing.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import cast

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>[Ee]'(?:[^'\\]|\\.|'')*'|'(?:[^']|'')*')
  | (?P<quoted>"(?:[^"]|"")*")
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<punct>[()\[\],.;])
  | (?P<op>::|[-+*/<>=~!@#%^&|`?]+)
    """,
    re.VERBOSE,
)

# PostgreSQL deparses LIKE and friends as operators.
_OPERATOR_WORDS = {
    "~~": ("like",),
    "!~~": ("not", "like"),
    "~~*": ("ilike",),
    "!~~*": ("not", "ilike"),
    "!=": ("<>",),
}

# Binary operator precedence, after PostgreSQL's table (lowest binds loosest):
# https://www.postgresql.org/docs/current/sql-syntax-lexical.html#SQL-PRECEDENCE
_PRECEDENCE = {
    "or": 1,
    "and": 2,
    "is": 4,
    "isnull": 4,
    "notnull": 4,
    "from": 4,  # IS DISTINCT FROM
    "=": 5,
    "<": 5,
    ">": 5,
    "<=": 5,
    ">=": 5,
    "<>": 5,
    "between": 6,
    "in": 6,
    "like": 6,
    "ilike": 6,
    "similar": 6,
    "+": 8,
    "-": 8,
    "*": 9,
    "/": 9,
    "%": 9,
    "^": 10,
    "collate": 12,
    "at": 12,
}
_PREFIX_NOT = 3
_OTHER_OPERATOR = 7
_UNARY = 11
_SUBSCRIPT = 12
_NON_ASSOCIATIVE = {4, 5, 6}
_ASSOCIATIVE_WORDS = {"or", "and"}
# Words after which "(" opens a grouping, not a function call's arguments.
_GROUP_PRECEDERS = {
    "and", "or", "not", "is", "like", "ilike", "similar", "between", "case", "when", "then",
    "else", "from", "escape", "as", "select", "where", "distinct", "to", "at", "collate",
}  # fmt: skip
_LIST_PRECEDERS = {"in", "values"}
_BOUNDARY_WORDS = {"case", "when", "then", "else", "end", "as", "asc", "desc", "nulls"}
_NOT_COMBINES = {"in", "like", "ilike", "between", "similar"}
_TYPE_CONTINUATIONS = {"varying", "precision"}
_TIME_ZONE_SUFFIXES = (("with", "time", "zone"), ("without", "time", "zone"))
_CLOSERS = {"(": ")", "[": "]"}


@dataclass(slots=True, eq=False)
class _Group:
    """A bracketed run of tokens: ``(`` or ``[`` and what is inside."""

    open: str
    items: list[_Node]

    @property
    def close(self) -> str:
        return _CLOSERS[self.open]


_Node = str | _Group


class _Unparsable(Exception):
    """Text the tokenizer cannot read; normalize_sql falls back to whitespace folding."""


@functools.lru_cache(maxsize=8192)  # pure; a schema repeats the same defaults and checks
def normalize_sql(sql: str) -> str:
    """Canonical text of a SQL expression, for comparing what two sources wrote.

    Unquoted words are lower-cased, casts dropped, redundant parentheses removed; literals
    and quoted identifiers are kept as written. Text it cannot tokenize only has its
    whitespace folded.
    """
    try:
        tokens = _strip_casts(_tokenize(sql))
        return _render(_normalize_groups(_rewrite(_parse(tokens))))
    except _Unparsable:
        return " ".join(sql.split())


def normalize_default(sql: str | None) -> str | None:
    """A server default as :func:`normalize_sql` gives it; ``'true'``/``'false'`` unquoted."""
    if sql is None:
        return None
    normalized = normalize_sql(sql)
    return {"'true'": "true", "'false'": "false"}.get(normalized, normalized)


_SAME_DEFAULTS = {
    "current_timestamp": "now()",
    "transaction_timestamp()": "now()",
}


def comparable_default(sql: str | None) -> str | None:
    """A normalised default with equivalent spellings merged (``CURRENT_TIMESTAMP`` is
    ``now()``); for comparing only, the model keeps the spelling that was reflected."""
    if sql is None:
        return None
    return _SAME_DEFAULTS.get(sql, sql)


def _tokenize(sql: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    for match in _TOKEN.finditer(sql):
        if match.start() != position:
            raise _Unparsable(sql)
        position = match.end()
        kind = match.lastgroup
        value = match.group()
        if kind == "ws":
            continue
        if kind == "word":
            tokens.append(value.lower())
        elif kind == "op" and value in _OPERATOR_WORDS:
            tokens.extend(_OPERATOR_WORDS[value])
        else:
            tokens.append(value)
    if position != len(sql):
        raise _Unparsable(sql)
    return tokens


def _is_word(token: _Node) -> bool:
    return isinstance(token, str) and (token[:1].isalpha() or token[:1] in '_"')


def _is_operator(token: _Node) -> bool:
    return isinstance(token, str) and bool(token) and token[0] in "-+*/<>=~!@#%^&|`?"


def _strip_casts(tokens: list[str]) -> list[str]:
    """Drop ``::type`` (with ``(n, m)``, ``[]``, multi-word and qualified names)."""
    out: list[str] = []
    i = 0
    while i < len(tokens):
        if tokens[i] != "::":
            out.append(tokens[i])
            i += 1
            continue
        j = i + 1
        if j < len(tokens) and _is_word(tokens[j]):
            j += 1
            while j + 1 < len(tokens) and tokens[j] == "." and _is_word(tokens[j + 1]):
                j += 2
        while True:
            if j < len(tokens) and tokens[j] in _TYPE_CONTINUATIONS:
                j += 1
            elif tuple(tokens[j : j + 3]) in _TIME_ZONE_SUFFIXES:
                j += 3
            elif j < len(tokens) and tokens[j] == "(":
                end = j + 1
                while end < len(tokens) and (tokens[end] == "," or tokens[end].isdigit()):
                    end += 1
                if end >= len(tokens) or tokens[end] != ")":
                    break
                j = end + 1
            elif tokens[j : j + 2] == ["[", "]"]:
                j += 2
            else:
                break
        i = j
    return out


def _parse(tokens: list[str]) -> list[_Node]:
    root: list[_Node] = []
    stack: list[_Group] = []
    current = root
    for token in tokens:
        if token in _CLOSERS:
            group = _Group(token, [])
            current.append(group)
            stack.append(group)
            current = group.items
        elif token in (")", "]"):
            if not stack or stack[-1].close != token:
                raise _Unparsable(token)
            stack.pop()
            current = stack[-1].items if stack else root
        else:
            current.append(token)
    if stack:
        raise _Unparsable("unbalanced")
    return root


def _rewrite(items: list[_Node]) -> list[_Node]:
    """``CAST(x AS t)`` -> ``(x)``; ``x = ANY (ARRAY[..])`` -> ``x IN (..)``; ``<> ALL``."""
    out: list[_Node] = []
    i = 0
    while i < len(items):
        item = items[i]
        nxt = items[i + 1] if i + 1 < len(items) else None
        if isinstance(item, _Group):
            out.append(_Group(item.open, _rewrite(item.items)))
        elif item == "cast" and isinstance(nxt, _Group) and nxt.open == "(" and "as" in nxt.items:
            cut = len(nxt.items) - 1 - nxt.items[::-1].index("as")
            out.append(_Group("(", _rewrite(nxt.items[:cut])))
            i += 1
        elif (
            item in ("=", "<>")
            and nxt == ("any" if item == "=" else "all")
            and i + 2 < len(items)
            and (array := _array_literal(items[i + 2])) is not None
        ):
            out.extend(["in"] if item == "=" else ["not", "in"])
            out.append(_Group("(", _rewrite(array)))
            i += 2
        else:
            out.append(item)
        i += 1
    return out


def _array_literal(node: _Node) -> list[_Node] | None:
    # ``ANY ((ARRAY[..])::text[])`` keeps a group of its own once the cast is gone.
    while (
        isinstance(node, _Group)
        and node.open == "("
        and len(node.items) == 1
        and isinstance(node.items[0], _Group)
    ):
        node = node.items[0]
    if (
        isinstance(node, _Group)
        and node.open == "("
        and len(node.items) == 2
        and node.items[0] == "array"
        and isinstance(node.items[1], _Group)
        and node.items[1].open == "["
    ):
        return node.items[1].items
    return None


def _is_call(previous: _Node | None) -> bool:
    """Does a "(" after ``previous`` hold a function's arguments (or a list)?"""
    if previous is None or isinstance(previous, _Group):
        return False
    if previous in _LIST_PRECEDERS:
        return True
    return _is_word(previous) and previous not in _GROUP_PRECEDERS


def _is_unary(previous: _Node | None) -> bool:
    return (
        previous is None
        or previous == ","
        or _is_operator(previous)
        or (isinstance(previous, str) and previous in _PRECEDENCE)
        or previous in _GROUP_PRECEDERS
    )


def _inner_precedence(items: list[_Node]) -> tuple[int, set[str]] | None:
    """Loosest top-level operator of a group and the operators at that level.

    None when the group must keep its parentheses (a row, a subquery).
    """
    if not items or items[0] in ("select", "values", "with") or "," in items:
        return None
    loosest = 99
    operators: set[str] = set()
    pending_between = 0
    depth_case = 0
    previous: _Node | None = None
    for index, item in enumerate(items):
        nxt = items[index + 1] if index + 1 < len(items) else None
        precedence: int | None = None
        if item == "case":
            depth_case += 1
        elif item == "end" and depth_case:
            depth_case -= 1
        elif depth_case or isinstance(item, _Group):
            pass
        elif item == "between":
            pending_between += 1
            precedence = _PRECEDENCE["between"]
        elif item == "and" and pending_between:
            pending_between -= 1
        elif item == "not":
            if previous != "is" and nxt not in _NOT_COMBINES:
                precedence = _PREFIX_NOT
        elif isinstance(item, str) and item in _PRECEDENCE and item not in ("collate", "at"):
            precedence = _PRECEDENCE[item]
            if item in ("+", "-") and _is_unary(previous):
                precedence = _UNARY
        elif _is_operator(item):
            precedence = _UNARY if _is_unary(previous) else _OTHER_OPERATOR
        if precedence is not None:
            if precedence < loosest:
                loosest, operators = precedence, set()
            if precedence == loosest:
                operators.add(cast(str, item))
        previous = item
    return loosest, operators


def _outer_precedence(neighbour: _Node | None, beyond: _Node | None, left: bool) -> int | None:
    """How tightly ``neighbour`` binds a group next to it; None: keep the parentheses.

    ``beyond`` is the token on the far side of ``neighbour`` (to tell unary minus apart).
    """
    if neighbour is None or neighbour == "," or neighbour in _BOUNDARY_WORDS:
        return 0
    if isinstance(neighbour, _Group):
        return _SUBSCRIPT if (not left and neighbour.open == "[") else None
    if neighbour == "not":
        return _PREFIX_NOT if left else _PRECEDENCE["in"]
    if neighbour in ("+", "-") and left and _is_unary(beyond):
        return _UNARY
    if neighbour in _PRECEDENCE:
        return _PRECEDENCE[neighbour]
    if _is_operator(neighbour):
        return _UNARY if left and _is_unary(beyond) else _OTHER_OPERATOR
    return None


def _normalize_groups(items: list[_Node]) -> list[_Node]:
    out: list[_Node] = []
    for index, item in enumerate(items):
        if not isinstance(item, _Group):
            out.append(item)
            continue
        inner = _normalize_groups(item.items)
        previous = out[-1] if out else None
        if item.open != "(" or _is_call(previous):
            out.append(_Group(item.open, inner))
            continue
        nxt = items[index + 1] if index + 1 < len(items) else None
        beyond_left = out[-2] if len(out) > 1 else None
        beyond_right = items[index + 2] if index + 2 < len(items) else None
        if _redundant(inner, previous, beyond_left, nxt, beyond_right):
            out.extend(inner)
        else:
            out.append(_Group("(", inner))
    return out


def _redundant(
    inner: list[_Node],
    previous: _Node | None,
    beyond_left: _Node | None,
    nxt: _Node | None,
    beyond_right: _Node | None,
) -> bool:
    analysed = _inner_precedence(inner)
    left = _outer_precedence(previous, beyond_left, left=True)
    right = _outer_precedence(nxt, beyond_right, left=False)
    if analysed is None or left is None or right is None:
        return False
    loosest, operators = analysed
    if loosest == 99:
        # An atom: a name, a literal, a call, CASE .. END. A subscript needs a plain name.
        return right != _SUBSCRIPT or len(inner) == 1
    associative = operators <= _ASSOCIATIVE_WORDS and len(operators) == 1
    left_ok = left < loosest or (left == loosest and associative and previous in operators)
    right_ok = right < loosest or (
        right == loosest
        and (loosest not in _NON_ASSOCIATIVE and loosest != _PREFIX_NOT)
        and (loosest not in (1, 2) or nxt in operators)
    )
    return left_ok and right_ok


def _render(items: list[_Node]) -> str:
    pieces: list[str] = []
    for index, item in enumerate(items):
        previous = items[index - 1] if index else None
        if isinstance(item, _Group):
            piece = f"{item.open}{_render(item.items)}{item.close}"
            tight = item.open == "[" or (_is_call(previous) and previous not in _LIST_PRECEDERS)
        else:
            piece = item
            tight = (
                item in (",", ".")
                or previous == "."
                or (previous in ("+", "-") and _is_unary(items[index - 2] if index >= 2 else None))
            )
        pieces.append(piece if tight or index == 0 else " " + piece)
    return "".join(pieces)


def parse_create_index(sql: str) -> tuple[tuple[str, ...], bool, str | None] | None:
    """``(elements, unique, predicate)`` of a ``CREATE INDEX`` statement as SQLite stores it.

    A plain column element is its unquoted name; any other element (an expression, or a
    column with COLLATE or a sort order) is its normalised text. None for text this cannot
    read.
    """
    spans = [(m.lastgroup, m.group(), m.start(), m.end()) for m in _TOKEN.finditer(sql)]
    spans = [span for span in spans if span[0] != "ws"]
    words = [value.lower() if kind == "word" else value for kind, value, _, _ in spans]
    if "on" not in words or "(" not in words[words.index("on") :]:
        return None
    unique = len(words) > 1 and words[1] == "unique"
    opening = words.index("(", words.index("on"))
    depth, start, elements, closing = 0, spans[opening][3], [], None
    for position in range(opening, len(spans)):
        value = words[position]
        if value in "([":
            depth += 1
        elif value in ")]":
            depth -= 1
            if depth == 0:
                elements.append(sql[start : spans[position][2]])
                closing = position
                break
        elif value == "," and depth == 1:
            elements.append(sql[start : spans[position][2]])
            start = spans[position][3]
    if closing is None:
        return None
    predicate = None
    if closing + 1 < len(spans) and words[closing + 1] == "where":
        predicate = normalize_sql(sql[spans[closing + 1][3] :].strip().rstrip(";"))
    return tuple(_element(text.strip()) for text in elements), unique, predicate


def _element(text: str) -> str:
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", text):
        return text
    if re.fullmatch(r'"(?:[^"]|"")*"', text):
        return text[1:-1].replace('""', '"')
    return normalize_sql(text)
