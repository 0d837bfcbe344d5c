"""Static CEL types: what the checker infers and what declarations name.

A :class:`Type` is a kind (``int``, ``list``, ``map``, ``type``, ``dyn``, ...)
with parameters (``list(int)`` has one, ``map(string, dyn)`` two). ``dyn``
stands for "not known until run time": an operation with a ``dyn`` operand is
checked when it runs instead of now.

Declarations may name a type as CEL text (``"map(string, list(int))"``,
``"google.protobuf.Timestamp"`` or its short form ``"timestamp"``), as a
:class:`~trusswork.rules.CelType`, or as the Python class that carries the
values (``int``, ``str``, ``UInt``, ``datetime``, ...).
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any, Final

from trusswork.core.errors import InvalidInput
from trusswork.rules._values import DURATION_TYPE, TIMESTAMP_TYPE, CelType, UInt

__all__ = [
    "BOOL",
    "BYTES",
    "DOUBLE",
    "DURATION",
    "DYN",
    "INT",
    "NULL",
    "NUMERIC",
    "STRING",
    "TIMESTAMP",
    "TYPE_IDENTIFIERS",
    "UINT",
    "Type",
    "join",
    "list_of",
    "map_of",
    "parse_type",
    "type_of",
]


class Type:
    """A static CEL type such as ``int`` or ``map(string, list(int))``."""

    __slots__ = ("kind", "params")

    def __init__(self, kind: str, params: tuple[Type, ...] = ()) -> None:
        self.kind = kind
        self.params = params

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Type) and other.kind == self.kind and other.params == self.params

    def __hash__(self) -> int:
        return hash((self.kind, self.params))

    def __str__(self) -> str:
        if self.kind == "type" and self.params:
            return f"type({self.params[0]})"
        if self.params:
            return f"{self.kind}({', '.join(str(param) for param in self.params)})"
        return self.kind

    __repr__ = __str__

    @property
    def is_dyn(self) -> bool:
        return self.kind == "dyn"

    @property
    def element(self) -> Type:
        """The element type of a list, the key type of a map, ``dyn`` otherwise."""
        return self.params[0] if self.kind in ("list", "map") and self.params else DYN

    @property
    def value(self) -> Type:
        """The value type of a map, ``dyn`` otherwise."""
        return self.params[1] if self.kind == "map" and len(self.params) == 2 else DYN


INT: Final = Type("int")
UINT: Final = Type("uint")
DOUBLE: Final = Type("double")
STRING: Final = Type("string")
BYTES: Final = Type("bytes")
BOOL: Final = Type("bool")
NULL: Final = Type("null_type")
TIMESTAMP: Final = Type(TIMESTAMP_TYPE)
DURATION: Final = Type(DURATION_TYPE)
DYN: Final = Type("dyn")
NUMERIC: Final = frozenset({"int", "uint", "double"})


def list_of(element: Type) -> Type:
    return Type("list", (element,))


def map_of(key: Type, value: Type) -> Type:
    return Type("map", (key, value))


def type_of(described: Type) -> Type:
    """The type of a type value: ``type(int)`` for the identifier ``int``."""
    return Type("type", (described,))


def join(first: Type, second: Type) -> Type:
    """The type of a value that is either a ``first`` or a ``second``."""
    if first == second:
        return first
    if first.kind == second.kind == "list":
        return list_of(join(first.element, second.element))
    if first.kind == second.kind == "map":
        return map_of(join(first.element, second.element), join(first.value, second.value))
    if first.kind == "null_type" and second.kind in _NULLABLE:
        return second
    if second.kind == "null_type" and first.kind in _NULLABLE:
        return first
    return DYN


_NULLABLE = frozenset({"dyn"})

# The identifiers that denote types in CEL expressions (``type(x) == int``).
TYPE_IDENTIFIERS: Final[dict[str, Type]] = {
    "int": INT,
    "uint": UINT,
    "double": DOUBLE,
    "string": STRING,
    "bytes": BYTES,
    "bool": BOOL,
    "null_type": NULL,
    "list": list_of(DYN),
    "map": map_of(DYN, DYN),
    "type": type_of(DYN),
    TIMESTAMP_TYPE: TIMESTAMP,
    DURATION_TYPE: DURATION,
}

# What declarations may name: the type identifiers and their common spellings.
_NAMED: Final[dict[str, Type]] = {
    **TYPE_IDENTIFIERS,
    "null": NULL,
    "dyn": DYN,
    "any": DYN,
    "timestamp": TIMESTAMP,
    "duration": DURATION,
    # Protobuf spellings, as cel-spec's type environments write them.
    "int64": INT,
    "int32": INT,
    "sint64": INT,
    "sint32": INT,
    "sfixed64": INT,
    "sfixed32": INT,
    "uint64": UINT,
    "uint32": UINT,
    "fixed64": UINT,
    "fixed32": UINT,
    "float": DOUBLE,
    "boolean": BOOL,
    "google.protobuf.Any": DYN,
    "google.protobuf.Value": DYN,
    "google.protobuf.Struct": map_of(STRING, DYN),
    "google.protobuf.ListValue": list_of(DYN),
}

_PYTHON: Final[dict[type, Type]] = {
    bool: BOOL,
    UInt: UINT,
    int: INT,
    float: DOUBLE,
    str: STRING,
    bytes: BYTES,
    type(None): NULL,
    list: list_of(DYN),
    tuple: list_of(DYN),
    dict: map_of(DYN, DYN),
    _dt.datetime: TIMESTAMP,
    _dt.timedelta: DURATION,
    CelType: type_of(DYN),
}

_TOKEN = re.compile(r"\s*(?:([A-Za-z_][A-Za-z_0-9.]*)|([(),]))")
_MAP_KEYS = frozenset({"int", "uint", "bool", "string", "dyn"})


def parse_type(spec: Any, *, where: str = "declaration") -> Type:
    """The :class:`Type` a declaration names.

    Raises
    ------
    InvalidInput
        For text that is not a CEL type, or a Python class with no CEL meaning.
    """
    if isinstance(spec, Type):
        return spec
    if isinstance(spec, CelType):
        spec = spec.name
    if isinstance(spec, type):
        found = _PYTHON.get(spec)
        if found is None:
            raise InvalidInput(f"{where}: Python type {spec.__name__} has no CEL type")
        return found
    if not isinstance(spec, str):
        raise InvalidInput(f"{where}: a type is a string such as 'int' or 'list(string)'")
    tokens: list[str] = []
    position = 0
    text = spec.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise InvalidInput(f"{where}: cannot read type {spec!r} at character {position + 1}")
        tokens.append(match.group(1) or match.group(2))
        position = match.end()
        while position < len(text) and text[position].isspace():
            position += 1
    parsed, rest = _parse_tokens(tokens, spec, where)
    if rest:
        raise InvalidInput(f"{where}: unexpected {rest[0]!r} in type {spec!r}")
    return parsed


def _parse_tokens(tokens: list[str], spec: str, where: str) -> tuple[Type, list[str]]:
    if not tokens or tokens[0] in "(),":
        raise InvalidInput(f"{where}: {spec!r} is not a type")
    name, rest = tokens[0], tokens[1:]
    params: list[Type] = []
    if rest and rest[0] == "(":
        rest = rest[1:]
        while True:
            param, rest = _parse_tokens(rest, spec, where)
            params.append(param)
            if rest and rest[0] == ",":
                rest = rest[1:]
                continue
            if rest and rest[0] == ")":
                rest = rest[1:]
                break
            raise InvalidInput(f"{where}: unbalanced parentheses in type {spec!r}")
    if name == "list" and params:
        if len(params) != 1:
            raise InvalidInput(f"{where}: list takes one type parameter, as in list(int)")
        return list_of(params[0]), rest
    if name == "map" and params:
        if len(params) != 2:
            raise InvalidInput(f"{where}: map takes two type parameters, as in map(string, int)")
        if params[0].kind not in _MAP_KEYS:
            raise InvalidInput(
                f"{where}: map keys must be int, uint, bool or string, not {params[0]}"
            )
        return map_of(params[0], params[1]), rest
    if name == "type" and params:
        return type_of(params[0]), rest
    found = _NAMED.get(name) or _NAMED.get(name.lower())
    if found is None or params:
        raise InvalidInput(f"{where}: unknown type {name!r}")
    return found, rest
