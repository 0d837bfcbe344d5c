"""CEL source text to the syntax tree of :mod:`._ast`, with lark's LALR parser.

The parser builds the tree while it parses (lark's inline transformer), so no
intermediate parse tree is kept. It also does what CEL's own parsers do at
this stage: decodes literals (escapes, raw and triple-quoted strings, bytes,
hex and unsigned integers), folds a minus sign into a numeric literal so
``-9223372036854775808`` is representable, expands the macros (``has``,
``all``, ``exists``, ``exists_one``, ``map``, ``filter``) and rejects reserved
words as identifiers. Every failure is a :class:`ParseError` pointing at the
offending character; nothing lark or Python raises escapes.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import sys
from typing import Any

import lark
from lark import Lark, Token
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.visitors import Transformer

from trusswork.core.errors import ParseError
from trusswork.rules._ast import (
    Binary,
    Call,
    Comprehension,
    Conditional,
    Ident,
    Index,
    ListExpr,
    Literal,
    MapExpr,
    Node,
    Select,
    Unary,
    walk,
)
from trusswork.rules._grammar import GRAMMAR, RESERVED
from trusswork.rules._values import INT64_MAX, INT64_MIN, UINT64_MAX, UInt

__all__ = [
    "MAX_DEPTH",
    "MAX_LENGTH",
    "Item",
    "parse_expression",
    "parse_file",
    "parse_tree",
    "source_error",
]

# Bounds that keep a hostile source from exhausting the stack or memory of the
# parser, the checker or Python's own compiler (which recurses per nesting level).
MAX_LENGTH = 100_000
MAX_DEPTH = 200

_MACROS = {"all": 2, "exists": 2, "exists_one": 2, "existsOne": 2, "filter": 2, "map": (2, 3)}

_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "`": "`",
    "?": "?",
}
_ESCAPE = re.compile(
    r"\\(?:([abfnrtv\\'\"`?])|([0-3][0-7]{2})|[xX]([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|(.|\n|$))"
)


def source_error(message: str, source: str, offset: int, filename: str | None = None) -> ParseError:
    """A :class:`ParseError` at ``offset`` of ``source``."""
    return ParseError(message, source=source, offset=offset, filename=filename)


class _Fail(Exception):
    """Raised inside the transformer; carries the message and the offset to blame."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


def _decode_string(text: str, offset: int) -> tuple[Any, str]:
    """The value and kind (``string`` or ``bytes``) of a string literal token."""
    prefix_end = 0
    while text[prefix_end] not in "\"'":
        prefix_end += 1
    prefix = text[:prefix_end].lower()
    body = text[prefix_end:]
    quote = 3 if body[:3] in ('"""', "'''") else 1
    inner = body[quote:-quote]
    is_bytes = "b" in prefix
    if "r" in prefix:
        return (inner.encode("utf-8"), "bytes") if is_bytes else (inner, "string")
    base = offset + prefix_end + quote
    if is_bytes:
        return _decode_bytes(inner, base), "bytes"
    return _decode_text(inner, base), "string"


def _decode_text(inner: str, base: int) -> str:
    def replace(match: re.Match[str]) -> str:
        simple, octal, hex2, hex4, hex8, bad = match.groups()
        if simple is not None:
            return _ESCAPES[simple]
        if bad is not None:
            raise _Fail(f"invalid escape sequence '\\{bad}'", base + match.start())
        code = int(octal, 8) if octal else int(hex2 or hex4 or hex8, 16)
        if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
            raise _Fail(f"invalid code point U+{code:04X} in escape", base + match.start())
        return chr(code)

    return _ESCAPE.sub(replace, inner) if "\\" in inner else inner


def _decode_bytes(inner: str, base: int) -> bytes:
    out = bytearray()
    position = 0
    for match in _ESCAPE.finditer(inner):
        out += inner[position : match.start()].encode("utf-8")
        position = match.end()
        simple, octal, hex2, hex4, hex8, bad = match.groups()
        if simple is not None:
            out += _ESCAPES[simple].encode("ascii")
        elif octal or hex2:
            out.append(int(octal, 8) if octal else int(hex2, 16))
        elif bad is None:
            code = int(hex4 or hex8, 16)
            if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
                raise _Fail(f"invalid code point U+{code:04X} in escape", base + match.start())
            out += chr(code).encode("utf-8")
        else:
            raise _Fail(f"invalid escape sequence '\\{bad}'", base + match.start())
    out += inner[position:].encode("utf-8")
    return bytes(out)


def _edge(item: Any, end: bool) -> int:
    if isinstance(item, Token):
        return (item.end_pos if end else item.start_pos) or 0
    if isinstance(item, Node):
        return item.end if end else item.start
    if isinstance(item, Item):
        return item.offset
    if isinstance(item, (list, tuple)) and item:
        return _edge(item[-1] if end else item[0], end)
    return 0


def _span(children: list[Any]) -> tuple[int, int]:
    """Start and end offsets of a reduced rule, from its first and last child."""
    return _edge(children[0], False), _edge(children[-1], True)


def _parse_int(text: str) -> int:
    return int(text, 16) if text[:2] in ("0x", "0X") else int(text)


class _Build(Transformer[Token, Any]):
    """Builds :mod:`._ast` nodes as lark reduces rules (used as an inline transformer)."""

    # -- literals ----------------------------------------------------------
    def int_lit(self, children: list[Token]) -> Literal:
        return Literal(_parse_int(children[0]), "int", *_span(children))

    def uint_lit(self, children: list[Token]) -> Literal:
        value = _parse_int(children[0][:-1])
        if value > UINT64_MAX:
            raise _Fail("unsigned integer literal out of range", _span(children)[0])
        return Literal(UInt(value), "uint", *_span(children))

    def float_lit(self, children: list[Token]) -> Literal:
        return Literal(float(children[0]), "double", *_span(children))

    def string_lit(self, children: list[Token]) -> Literal:
        value, kind = _decode_string(str(children[0]), _span(children)[0])
        return Literal(value, kind, *_span(children))

    def bool_lit(self, children: list[Token]) -> Literal:
        return Literal(children[0] == "true", "bool", *_span(children))

    def null_lit(self, children: list[Token]) -> Literal:
        return Literal(None, "null", *_span(children))

    # -- names, members, calls ---------------------------------------------
    def ident(self, children: list[Token]) -> Ident:
        name = children[-1]
        _check_name(name)
        return Ident(str(name), *_span(children))

    def select(self, children: list[Any]) -> Select:
        operand, _dot, name = children
        # Reserved words are fine as field names after a dot: {'as': 1}.as
        return Select(operand, str(name), *_span(children))

    def index(self, children: list[Any]) -> Index:
        operand, _open, key, _close = children
        return Index(operand, key, *_span(children))

    def method(self, children: list[Any]) -> Node:
        target, _dot, name, _open, args, _close = children
        return _call(str(name), args, target, *_span(children))

    def call(self, children: list[Any]) -> Node:
        name, args = children[-4], children[-2]
        return _call(str(name), args, None, *_span(children))

    def args(self, children: list[Node]) -> list[Node]:
        return children

    def group(self, children: list[Any]) -> Node:
        node: Node = children[1]
        if isinstance(node, Literal):
            # `-(-9223372036854775808)` negates a value, not a literal: keep it from folding.
            return Literal(node.value, node.kind, *_span(children), grouped=True)
        return node

    def list_(self, children: list[Any]) -> ListExpr:
        return ListExpr(children[1], *_span(children))

    def map_(self, children: list[Any]) -> MapExpr:
        return MapExpr(children[1], *_span(children))

    def map_entries(self, children: list[tuple[Node, Node]]) -> list[tuple[Node, Node]]:
        return children

    def entry(self, children: list[Node]) -> tuple[Node, Node]:
        return children[0], children[1]

    # -- operators -----------------------------------------------------------
    def unary(self, children: list[Any]) -> Node:
        *ops, operand = children
        op = str(ops[0])
        count = len(ops)
        if (
            op == "-"
            and isinstance(operand, Literal)
            and not operand.grouped
            and operand.kind in ("int", "double")
        ):
            value = -operand.value if count % 2 else operand.value
            return Literal(value, operand.kind, *_span(children))
        if op == "!" and count % 2 == 0:
            # `!!x` is x for a bool, and an error otherwise: keep one pair.
            count = 2
        node: Node = operand
        for _ in range(count):
            node = Unary(op, node, *_span(children))
        return node

    def binary(self, children: list[Any]) -> Binary:
        left, op, right = children
        return Binary(str(op), left, right, *_span(children))

    def conditional(self, children: list[Any]) -> Conditional:
        condition, _q, then, otherwise = children
        return Conditional(condition, then, otherwise, *_span(children))

    def start_expr(self, children: list[Node]) -> Node:
        return children[0]

    # -- rule files: items as plain records, interpreted by ._rulefile --------
    def start_file(self, children: list[Item]) -> list[Item]:
        return children

    def schema(self, children: list[Any]) -> Item:
        decls = [child for child in children if isinstance(child, Item)]
        return Item("schema", "", _edge(children[0], False), decls)

    def decl(self, children: list[Any]) -> Item:
        name, type_text = children[0], children[-1]
        return Item("decl", str(name), _edge(name, False), type_text)

    def type_ref(self, children: list[Any]) -> str:
        parts = [child for child in children if not isinstance(child, Token)]
        name, params = parts[0], parts[1:]
        return f"{name}({', '.join(params)})" if params else str(name)

    def dotted(self, children: list[Token]) -> str:
        return ".".join(str(child) for child in children if child.type == "IDENT")

    def import_(self, children: list[Any]) -> Item:
        token = children[-1]
        value, kind = _decode_string(str(token), _edge(token, False))
        if kind != "string":
            raise _Fail("an import names a file with a string, not bytes", _edge(token, False))
        return Item("import", value, _edge(children[0], False), None)

    def const(self, children: list[Any]) -> Item:
        name = next(
            child for child in children if isinstance(child, Token) and child.type == "IDENT"
        )
        return Item("const", str(name), _edge(name, False), children[-1])

    def let(self, children: list[Any]) -> Item:
        name = next(
            child for child in children if isinstance(child, Token) and child.type == "IDENT"
        )
        return Item("let", str(name), _edge(name, False), children[-1])

    def rule(self, children: list[Any]) -> Item:
        name = next(
            child for child in children if isinstance(child, Token) and child.type == "IDENT"
        )
        fields = [child for child in children if isinstance(child, Item)]
        return Item("rule", str(name), _edge(name, False), fields)

    def field(self, children: list[Any]) -> Item:
        name = children[0]
        return Item("field", str(name), _edge(name, False), children[-1])


class Item:
    """One item of a rule file: ``kind`` is schema, decl, import, const, let, rule or field."""

    __slots__ = ("kind", "name", "offset", "value")

    def __init__(self, kind: str, name: str, offset: int, value: Any) -> None:
        self.kind = kind
        self.name = name
        self.offset = offset
        self.value = value


def _check_name(name: Token) -> None:
    if name in RESERVED:
        raise _Fail(
            f"'{name}' is a reserved word and cannot be used as a name", name.start_pos or 0
        )


# The two-variable comprehensions (cel-go's comprehensions v2): name -> argument counts.
_TWO_VARIABLE = {
    "all": (3,),
    "exists": (3,),
    "exists_one": (3,),
    "existsOne": (3,),
    "transformList": (3, 4),
    "transformMap": (3, 4),
}
_KIND = {"existsOne": "exists_one"}


def _two_variable(name: str, args: list[Node], target: Node, start: int, end: int) -> Node:
    first, second = args[0], args[1]
    for variable in (first, second):
        if not isinstance(variable, Ident):
            raise _Fail(f"the variables of {name}() must be names", variable.start)
    assert isinstance(first, Ident) and isinstance(second, Ident)
    if first.name == second.name:
        raise _Fail(f"the two variables of {name}() must differ", second.start)
    guard = args[2] if len(args) == 4 else None
    return Comprehension(
        _KIND.get(name, name),
        target,
        second.name,
        second.start,
        args[-1],
        guard,
        start,
        end,
        index=first.name,
        index_start=first.start,
    )


def _call(name: str, args: list[Node], target: Node | None, start: int, end: int) -> Node:
    if target is None and name == "has":
        if len(args) != 1 or not isinstance(args[0], Select) or args[0].test_only:
            raise _Fail("has() takes one field selection, as in has(m.field)", start)
        selection = args[0]
        return Select(selection.operand, selection.field, start, end, test_only=True)
    if target is not None and name in _TWO_VARIABLE and len(args) in _TWO_VARIABLE[name]:
        return _two_variable(name, args, target, start, end)
    arity = _MACROS.get(name)
    if target is None or arity is None:
        return Call(name, args, target, start, end)
    counts = arity if isinstance(arity, tuple) else (arity,)
    if len(args) not in counts:
        wanted = " or ".join(str(count) for count in counts)
        raise _Fail(f"the {name}() macro takes {wanted} arguments, got {len(args)}", start)
    variable = args[0]
    if not isinstance(variable, Ident):
        raise _Fail(f"the first argument of {name}() must be a variable name", variable.start)
    guard = args[1] if len(args) == 3 else None
    kind = _KIND.get(name, name)
    return Comprehension(kind, target, variable.name, variable.start, args[-1], guard, start, end)


def _cache_file() -> str | bool:
    """Where the analysed grammar is kept between processes, or ``False`` for nowhere.

    Building the LALR tables takes ~90 ms and loading them ~5 ms. They are kept
    in the user's own cache directory (lark's default, a shared temp directory,
    would load a pickle anyone could have written), named by lark's version and
    the grammar's hash; lark checks the hash again when it loads the file and
    rebuilds, ignoring the file, if it is damaged or stale.
    """
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = os.path.join(base, "trusswork")
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
    except OSError:
        return False
    if not os.access(folder, os.W_OK):
        return False
    digest = hashlib.sha256(GRAMMAR.encode("utf-8")).hexdigest()[:16]
    return os.path.join(folder, f"cel-grammar-lark{lark.__version__}-{digest}.pickle")


@functools.cache
def _lark() -> Lark:
    return Lark(
        GRAMMAR,
        parser="lalr",
        lexer="contextual",
        start=["start_expr", "start_file"],
        maybe_placeholders=False,
        transformer=_Build(),
        cache=_cache_file(),
    )


_TOKEN_NAMES = {
    "RPAR": "')'",
    "LPAR": "'('",
    "RSQB": "']'",
    "LSQB": "'['",
    "RBRACE": "'}'",
    "LBRACE": "'{'",
    "COLON": "':'",
    "COMMA": "','",
    "$END": "the end of the input",
    "IDENT": "a name",
    "STRING": "a string",
}


def _describe(token: Token) -> str:
    if token.type == "$END":
        return "end of input"
    return f"'{token}'"


def _unexpected(error: UnexpectedInput, source: str) -> tuple[str, int]:
    if isinstance(error, UnexpectedCharacters):
        position = error.pos_in_stream or 0
        char = source[position] if position < len(source) else ""
        if char in "\"'":
            return "unterminated string literal", position
        return f"unexpected character {char!r}", position
    if isinstance(error, UnexpectedToken):
        token = error.token
        offset = token.start_pos if token.start_pos is not None else len(source)
        if token.type == "$END":
            offset = len(source.rstrip())
        expected = sorted(error.expected)
        operand_tokens = {"IDENT", "INT", "FLOAT", "STRING", "LPAR"}
        if operand_tokens & set(expected):
            want = "an expression"
        else:
            want = " or ".join(_TOKEN_NAMES.get(name, name.lower()) for name in expected[:4])
        if token.type == "$END":
            return f"unexpected end of input: expected {want}", offset
        if token.type == "IDENT" and str(token) in RESERVED:
            return f"'{token}' is a reserved word and cannot be used as a name", offset
        return f"unexpected {_describe(token)}: expected {want}", offset
    return str(error).splitlines()[0], getattr(error, "pos_in_stream", 0) or 0


def parse_tree(source: str, start: str, *, filename: str | None = None) -> Any:
    """Parse ``source`` from the grammar rule ``start``; :class:`ParseError` on any failure."""
    if len(source) > MAX_LENGTH:
        raise source_error(
            f"source is {len(source)} characters long; the limit is {MAX_LENGTH}",
            source,
            MAX_LENGTH,
            filename,
        )
    limit = sys.getrecursionlimit()
    try:
        return _lark().parse(source, start=start)
    except _Fail as failure:
        raise source_error(failure.message, source, failure.offset, filename) from None
    except UnexpectedInput as error:
        message, offset = _unexpected(error, source)
        raise source_error(message, source, offset, filename) from None
    except LarkError as error:  # a transformer failure wrapped by lark
        cause = error.__context__
        if isinstance(cause, _Fail):
            raise source_error(cause.message, source, cause.offset, filename) from None
        raise source_error(str(error).splitlines()[0], source, 0, filename) from None
    except RecursionError:
        raise source_error("expression nests too deeply", source, 0, filename) from None
    finally:
        sys.setrecursionlimit(limit)


def check_tree(node: Node, source: str, filename: str | None = None) -> None:
    """Reject what the grammar cannot: out-of-range int literals and excessive nesting."""
    depth: dict[int, int] = {id(node): 1}
    for current in walk(node):
        level = depth[id(current)]
        if level > MAX_DEPTH:
            raise source_error(
                f"expression nests more than {MAX_DEPTH} levels deep",
                source,
                current.start,
                filename,
            )
        for child in current.children():
            depth[id(child)] = level + 1
        out_of_range = (
            isinstance(current, Literal)
            and current.kind == "int"
            and not (INT64_MIN <= current.value <= INT64_MAX)
        )
        if out_of_range:
            raise source_error("integer literal out of range", source, current.start, filename)


def parse_file(source: str, *, filename: str | None = None) -> list[Item]:
    """Parse a rule file into its items; every expression in it is checked like one of
    :func:`parse_expression`.

    Raises
    ------
    ParseError
        With line, column and a caret snippet, for any syntax error.
    """
    items: list[Item] = parse_tree(source, "start_file", filename=filename)
    for item in items:
        children = item.value if item.kind in ("rule", "schema") else [item]
        for child in children:
            if isinstance(child.value, Node):
                check_tree(child.value, source, filename)
    return items


def parse_expression(source: str, *, filename: str | None = None) -> Node:
    """Parse one CEL expression into its syntax tree.

    Raises
    ------
    ParseError
        With line, column and a caret snippet, for any syntax error.
    """
    node: Node = parse_tree(source, "start_expr", filename=filename)
    check_tree(node, source, filename)
    return node
