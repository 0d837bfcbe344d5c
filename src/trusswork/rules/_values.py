"""CEL values as Python values, and the error CEL evaluation raises.

CEL's types map onto Python's: ``int`` -> :class:`int`, ``uint`` ->
:class:`UInt` (an ``int`` subclass, so arithmetic and comparisons with plain
ints work), ``double`` -> :class:`float`, ``string`` -> :class:`str`,
``bytes`` -> :class:`bytes`, ``bool`` -> :class:`bool`, ``null`` -> ``None``,
``list`` -> :class:`list`, ``map`` -> :class:`dict`, ``timestamp`` -> an aware
:class:`datetime.datetime`, ``duration`` -> :class:`datetime.timedelta`, and
type values (``type(1)``, ``int``) -> :class:`CelType`.

Python's ``bool`` is an ``int`` subclass and ``UInt`` is one too, so code that
needs the CEL type of a value asks :func:`cel_type_name` rather than
``isinstance(value, int)``.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Final

from trusswork.core.errors import InvalidInput

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "UINT64_MAX",
    "CelType",
    "EvaluationError",
    "UInt",
    "cel_type_name",
]

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
UINT64_MAX: Final = 2**64 - 1


class EvaluationError(InvalidInput):
    """A CEL runtime error: overflow, division by zero, no such key, no matching overload.

    ``kind`` names the CEL error class in a stable, machine-readable way
    (``"overflow"``, ``"division by zero"``, ``"modulus by zero"``,
    ``"no such key"``, ``"no such attribute"``, ``"no matching overload"``,
    ``"invalid argument"``, ``"range"``, ``"limit"``).
    """

    code = "evaluation-error"
    title = "Evaluation error"

    def __init__(self, message: str, *, kind: str = "invalid argument") -> None:
        super().__init__(message)
        self.kind = kind


class UInt(int):
    """A CEL ``uint``: an unsigned 64-bit integer (``1u``).

    Construction checks the range, so ``UInt(-1)`` raises :class:`EvaluationError`.
    """

    __slots__ = ()

    def __new__(cls, value: Any = 0) -> UInt:
        number = int(value)
        if not 0 <= number <= UINT64_MAX:
            raise EvaluationError(f"uint out of range: {number}", kind="range")
        return super().__new__(cls, number)

    def __repr__(self) -> str:
        return f"UInt({int(self)})"


class CelType:
    """A CEL type value, as ``type(1)`` or the identifier ``int`` evaluates to.

    Two type values are equal when their names are; ``str()`` gives the CEL name
    (``"int"``, ``"list"``, ``"google.protobuf.Timestamp"``).
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CelType) and other.name == self.name

    def __hash__(self) -> int:
        return hash(("CelType", self.name))

    def __repr__(self) -> str:
        return f"CelType({self.name!r})"

    def __str__(self) -> str:
        return self.name


TIMESTAMP_TYPE: Final = "google.protobuf.Timestamp"
DURATION_TYPE: Final = "google.protobuf.Duration"


def cel_type_name(value: object) -> str:
    """The CEL type name of a Python value (``"int"``, ``"uint"``, ``"map"``, ...).

    Raises :class:`EvaluationError` for a value with no CEL meaning.
    """
    kind = type(value)
    name = _TYPE_NAMES.get(kind)
    if name is not None:
        return name
    # Subclasses (an IntEnum, a str subclass, an OrderedDict) map by their base;
    # bool before int and UInt before int because both are int subclasses.
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, UInt):
        return "uint"
    for base, base_name in _TYPE_NAMES.items():
        if isinstance(value, base):
            return base_name
    raise EvaluationError(
        f"a value of Python type {kind.__name__} has no CEL type", kind="no matching overload"
    )


_TYPE_NAMES: Final[dict[type, str]] = {
    bool: "bool",
    UInt: "uint",
    int: "int",
    float: "double",
    str: "string",
    bytes: "bytes",
    type(None): "null_type",
    list: "list",
    tuple: "list",
    dict: "map",
    _dt.datetime: TIMESTAMP_TYPE,
    _dt.timedelta: DURATION_TYPE,
    CelType: "type",
}
