"""Helpers the code compiled from CEL calls at run time.

Every function implements one CEL operator, function, conversion or macro
with CEL's semantics on the Python representation of CEL values described in
:mod:`trusswork.rules._values`. Each failure raises
:class:`~trusswork.rules._values.EvaluationError` with a ``kind``:
``"overflow"``, ``"division by zero"``, ``"modulus by zero"``, ``"no such
key"``, ``"no matching overload"``, ``"invalid argument"``, ``"range"`` or
``"limit"``.

The compiler inlines the statically typed common cases; these helpers are the
exact, dynamically typed path, so they dispatch on ``type(value)`` through
dictionaries and fall back to :func:`cel_type_name` only for subclasses.

Decisions worth knowing:

* Durations span cel-go's range, int64 nanoseconds (+/-9,223,372,036.85 seconds,
  about 292 years), which cel-spec's conformance tests expect, and timestamps
  years 1 to 9999 (UTC), both at microsecond precision: finer input digits
  are truncated toward zero.
* A Python ``dict`` cannot hold ``true`` and ``1`` as separate keys, so
  :func:`make_map` rejects a map literal that would need both (``invalid
  argument``), and lookups check that a found key has the asked key's kind
  (``{1: 'a'}[true]`` is a missing key, not ``'a'``).
* ``matches`` compiles RE2 syntax with :mod:`re` after rewriting the
  constructs whose meaning differs: ``$`` (outside multi-line mode) and
  ``\\z`` match only at the very end, and ``\\d``, ``\\s``, ``\\w`` are ASCII.
"""

from __future__ import annotations

import datetime as _dt
import functools
import math
import re
import zoneinfo
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final

from trusswork.rules._values import (
    _TYPE_NAMES,
    DURATION_TYPE,
    INT64_MAX,
    INT64_MIN,
    TIMESTAMP_TYPE,
    UINT64_MAX,
    CelType,
    EvaluationError,
    UInt,
    cel_type_name,
)

__all__ = [
    "MAX_ITERATIONS",
    "TYPES",
    "add",
    "all_",
    "and_",
    "check_int",
    "check_uint",
    "cond",
    "contains",
    "div",
    "ends_with",
    "eq",
    "exists_",
    "exists_one_",
    "filter_",
    "ge",
    "get_date",
    "get_day_of_month",
    "get_day_of_week",
    "get_day_of_year",
    "get_full_year",
    "get_hours",
    "get_milliseconds",
    "get_minutes",
    "get_month",
    "get_seconds",
    "gt",
    "has",
    "in_",
    "index",
    "le",
    "lt",
    "make_list",
    "make_map",
    "map_",
    "map_filter_",
    "matches",
    "mod",
    "mul",
    "ne",
    "neg",
    "not_",
    "or_",
    "pairs",
    "select",
    "size",
    "starts_with",
    "sub",
    "to_bool",
    "to_bytes",
    "to_double",
    "to_duration",
    "to_dyn",
    "to_int",
    "to_string",
    "to_timestamp",
    "to_uint",
    "transform_map",
    "type_of",
]

MAX_ITERATIONS: Final = 1_000_000
"""The most iterations one comprehension (``all``, ``map``, ...) may run."""

_UTC: Final = _dt.UTC
_EPOCH: Final = _dt.datetime(1970, 1, 1, tzinfo=_UTC)
_SECOND: Final = _dt.timedelta(seconds=1)
_MAX_DURATION: Final = _dt.timedelta(microseconds=(2**63 - 1) // 1000)
_MIN_UNIX: Final = -62_135_596_800
_MAX_UNIX: Final = 253_402_300_799

_INT: Final = "int"
_UINT: Final = "uint"
_DOUBLE: Final = "double"
_STRING: Final = "string"
_BYTES: Final = "bytes"
_BOOL: Final = "bool"
_LIST: Final = "list"
_MAP: Final = "map"
_TS: Final = TIMESTAMP_TYPE
_DUR: Final = DURATION_TYPE

_NUMERIC_NAMES: Final = frozenset({_INT, _UINT, _DOUBLE})
_NUMERIC_TYPES: Final = frozenset({int, UInt, float})
_ORDERED_NAMES: Final = frozenset({_STRING, _BYTES, _BOOL, _TS, _DUR})
_MAP_KEY_TYPES: Final = frozenset({int, UInt, bool, str})

TYPES: Final[dict[str, CelType]] = {
    name: CelType(name)
    for name in (
        _INT,
        _UINT,
        _DOUBLE,
        _STRING,
        _BYTES,
        _BOOL,
        "null_type",
        _LIST,
        _MAP,
        "type",
        _TS,
        _DUR,
    )
}
"""The type values the identifiers ``int``, ``string``, ... denote, by CEL name."""


# --- errors and dispatch -------------------------------------------------------------------------


def _name(value: object) -> str:
    name = _TYPE_NAMES.get(type(value))
    return name if name is not None else cel_type_name(value)


def _describe(value: object) -> str:
    # Error messages must not fail themselves on a value with no CEL type.
    try:
        return _name(value)
    except EvaluationError:
        return type(value).__name__


def _no_overload(function: str, *args: object) -> EvaluationError:
    types = ", ".join(_describe(arg) for arg in args)
    return EvaluationError(
        f"no matching overload for '{function}' applied to ({types})",
        kind="no matching overload",
    )


def _overflow(kind: str) -> EvaluationError:
    return EvaluationError(f"{kind} overflow", kind="overflow")


def _literal(value: object) -> str:
    kind = type(value)
    if kind is str:
        return repr(value)
    if kind is bool:
        return "true" if value else "false"
    if isinstance(value, UInt):
        return f"{int(value)}u"
    return str(value)


_Binary = Callable[[Any, Any], Any]


def _dispatch(table: dict[tuple[str, str], _Binary], function: str, a: Any, b: Any) -> Any:
    handler = table.get((_name(a), _name(b)))
    if handler is None:
        raise _no_overload(function, a, b)
    return handler(a, b)


def _uint(value: int) -> UInt:
    # The callers have checked the range; skipping UInt.__new__'s own check halves the cost.
    return int.__new__(UInt, value)


def check_int(result: int) -> int:
    """Return an int result if it fits CEL's int64, else raise an overflow error.

    Parameters
    ----------
    result : int
        The exact result of an int operation.

    Returns
    -------
    int
        ``result`` unchanged.

    Raises
    ------
    EvaluationError
        ``kind="overflow"`` when ``result`` is outside int64.
    """
    if INT64_MIN <= result <= INT64_MAX:
        return result
    raise _overflow("int")


def check_uint(result: int) -> UInt:
    """Return a uint result as :class:`UInt` if it fits uint64, else raise an overflow error.

    Parameters
    ----------
    result : int
        The exact result of a uint operation.

    Returns
    -------
    UInt
        ``result`` as a CEL uint.

    Raises
    ------
    EvaluationError
        ``kind="overflow"`` when ``result`` is negative or above ``UINT64_MAX``.
    """
    if 0 <= result <= UINT64_MAX:
        return _uint(result)
    raise _overflow("uint")


# --- time helpers --------------------------------------------------------------------------------


def _ts(value: _dt.datetime) -> _dt.datetime:
    # Timestamps should arrive as aware UTC datetimes; a naive one is read as UTC
    # so that comparisons never mix naive and aware values.
    zone = value.tzinfo
    if zone is _UTC:
        return value
    if zone is None:
        return value.replace(tzinfo=_UTC)
    try:
        return value.astimezone(_UTC)
    except OverflowError:
        raise EvaluationError("timestamp out of range", kind="range") from None


def _check_duration(value: _dt.timedelta) -> _dt.timedelta:
    if -_MAX_DURATION <= value <= _MAX_DURATION:
        return value
    raise EvaluationError("duration out of range", kind="range")


def _micros(value: _dt.timedelta) -> int:
    return (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds


def _trunc_div(a: int, b: int) -> int:
    quotient = abs(a) // abs(b)
    return -quotient if (a < 0) != (b < 0) else quotient


def _add_ts_duration(ts: _dt.datetime, duration: _dt.timedelta) -> _dt.datetime:
    try:
        return _ts(ts) + duration
    except OverflowError:
        raise EvaluationError("timestamp out of range", kind="range") from None


# --- arithmetic ----------------------------------------------------------------------------------


def _int_add(a: Any, b: Any) -> int:
    return check_int(int(a) + int(b))


def _uint_add(a: Any, b: Any) -> UInt:
    return check_uint(int(a) + int(b))


def _list_add(a: Any, b: Any) -> list[Any]:
    return [*a, *b]


def _duration_add(a: Any, b: Any) -> _dt.timedelta:
    try:
        return _check_duration(a + b)
    except OverflowError:
        raise EvaluationError("duration out of range", kind="range") from None


_ADD: Final[dict[tuple[str, str], _Binary]] = {
    (_INT, _INT): _int_add,
    (_UINT, _UINT): _uint_add,
    (_DOUBLE, _DOUBLE): lambda a, b: float(a) + float(b),
    (_STRING, _STRING): lambda a, b: str(a) + str(b),
    (_BYTES, _BYTES): lambda a, b: bytes(a) + bytes(b),
    (_LIST, _LIST): _list_add,
    (_TS, _DUR): _add_ts_duration,
    (_DUR, _TS): lambda a, b: _add_ts_duration(b, a),
    (_DUR, _DUR): _duration_add,
}


def add(a: Any, b: Any) -> Any:
    """CEL ``a + b``: numbers of one kind, strings, bytes, lists, timestamps and durations.

    Parameters
    ----------
    a, b : Any
        CEL values.

    Returns
    -------
    Any
        The sum or concatenation.

    Raises
    ------
    EvaluationError
        ``overflow`` for int/uint results outside 64 bits, ``range`` for a
        timestamp or duration outside CEL's range, ``no matching overload``
        for mixed kinds (``1 + 1.0``).
    """
    kind = type(a)
    if kind is type(b):
        if kind is int:
            result = a + b
            if INT64_MIN <= result <= INT64_MAX:
                return result
            raise _overflow("int")
        if kind is float or kind is str:
            return a + b
        if kind is UInt:
            return check_uint(a + b)
    return _dispatch(_ADD, "_+_", a, b)


def _ts_sub(a: Any, b: Any) -> _dt.timedelta:
    return _check_duration(_ts(a) - _ts(b))


def _ts_sub_duration(a: Any, b: Any) -> _dt.datetime:
    return _add_ts_duration(a, -b)


def _duration_sub(a: Any, b: Any) -> _dt.timedelta:
    try:
        return _check_duration(a - b)
    except OverflowError:
        raise EvaluationError("duration out of range", kind="range") from None


_SUB: Final[dict[tuple[str, str], _Binary]] = {
    (_INT, _INT): lambda a, b: check_int(int(a) - int(b)),
    (_UINT, _UINT): lambda a, b: check_uint(int(a) - int(b)),
    (_DOUBLE, _DOUBLE): lambda a, b: float(a) - float(b),
    (_TS, _TS): _ts_sub,
    (_TS, _DUR): _ts_sub_duration,
    (_DUR, _DUR): _duration_sub,
}


def sub(a: Any, b: Any) -> Any:
    """CEL ``a - b``: numbers of one kind, timestamps and durations.

    Parameters
    ----------
    a, b : Any
        CEL values.

    Returns
    -------
    Any
        The difference; timestamp minus timestamp is a duration.

    Raises
    ------
    EvaluationError
        ``overflow`` (``0u - 1u`` included), ``range``, or ``no matching overload``.
    """
    kind = type(a)
    if kind is type(b):
        if kind is int:
            result = a - b
            if INT64_MIN <= result <= INT64_MAX:
                return result
            raise _overflow("int")
        if kind is float:
            return a - b
        if kind is UInt:
            return check_uint(a - b)
    return _dispatch(_SUB, "_-_", a, b)


_MUL: Final[dict[tuple[str, str], _Binary]] = {
    (_INT, _INT): lambda a, b: check_int(int(a) * int(b)),
    (_UINT, _UINT): lambda a, b: check_uint(int(a) * int(b)),
    (_DOUBLE, _DOUBLE): lambda a, b: float(a) * float(b),
}


def mul(a: Any, b: Any) -> Any:
    """CEL ``a * b`` on two ints, two uints or two doubles.

    Parameters
    ----------
    a, b : Any
        CEL numbers of the same kind.

    Returns
    -------
    Any
        The product.

    Raises
    ------
    EvaluationError
        ``overflow`` for int/uint, ``no matching overload`` for other operands.
    """
    kind = type(a)
    if kind is type(b):
        if kind is int:
            result = a * b
            if INT64_MIN <= result <= INT64_MAX:
                return result
            raise _overflow("int")
        if kind is float:
            return a * b
        if kind is UInt:
            return check_uint(a * b)
    return _dispatch(_MUL, "_*_", a, b)


def _int_div(a: Any, b: Any) -> int:
    if b == 0:
        raise EvaluationError("division by zero", kind="division by zero")
    return check_int(_trunc_div(int(a), int(b)))


def _uint_div(a: Any, b: Any) -> UInt:
    if b == 0:
        raise EvaluationError("division by zero", kind="division by zero")
    return _uint(int(a) // int(b))


def _double_div(a: Any, b: Any) -> float:
    x = float(a)
    y = float(b)
    if y != 0.0:
        return x / y
    # IEEE 754: x / +-0 is +-inf with the sign of x * y, and NaN when x is 0 or NaN.
    if x == 0.0 or math.isnan(x):
        return math.nan
    return math.copysign(math.inf, x) * math.copysign(1.0, y)


_DIV: Final[dict[tuple[str, str], _Binary]] = {
    (_INT, _INT): _int_div,
    (_UINT, _UINT): _uint_div,
    (_DOUBLE, _DOUBLE): _double_div,
}


def div(a: Any, b: Any) -> Any:
    """CEL ``a / b``: int and uint division truncates toward zero; double follows IEEE 754.

    Parameters
    ----------
    a, b : Any
        CEL numbers of the same kind.

    Returns
    -------
    Any
        The quotient (``1.0 / 0.0`` is ``inf``).

    Raises
    ------
    EvaluationError
        ``division by zero`` for int/uint, ``overflow`` for ``INT64_MIN / -1``,
        ``no matching overload`` for other operands.
    """
    return _dispatch(_DIV, "_/_", a, b)


def _int_mod(a: Any, b: Any) -> int:
    x = int(a)
    y = int(b)
    if y == 0:
        raise EvaluationError("modulus by zero", kind="modulus by zero")
    if x == INT64_MIN and y == -1:
        raise _overflow("int")
    remainder = abs(x) % abs(y)
    return -remainder if x < 0 else remainder


def _uint_mod(a: Any, b: Any) -> UInt:
    if b == 0:
        raise EvaluationError("modulus by zero", kind="modulus by zero")
    return _uint(int(a) % int(b))


_MOD: Final[dict[tuple[str, str], _Binary]] = {
    (_INT, _INT): _int_mod,
    (_UINT, _UINT): _uint_mod,
}


def mod(a: Any, b: Any) -> Any:
    """CEL ``a % b`` on two ints or two uints; the sign follows the dividend.

    Parameters
    ----------
    a, b : Any
        CEL integers of the same kind.

    Returns
    -------
    Any
        The remainder.

    Raises
    ------
    EvaluationError
        ``modulus by zero``, ``overflow`` for ``INT64_MIN % -1``, and
        ``no matching overload`` for doubles and mixed kinds.
    """
    return _dispatch(_MOD, "_%_", a, b)


def neg(a: Any) -> Any:
    """CEL unary ``-a`` on an int, a double or a duration.

    Parameters
    ----------
    a : Any
        A CEL value.

    Returns
    -------
    Any
        The negation.

    Raises
    ------
    EvaluationError
        ``overflow`` for ``-INT64_MIN``, ``no matching overload`` for uint and others.
    """
    name = _name(a)
    if name == _INT:
        return check_int(-int(a))
    if name == _DOUBLE:
        return -float(a)
    if name == _DUR:
        return -a
    raise _no_overload("-_", a)


# --- logic ---------------------------------------------------------------------------------------


def not_(a: Any) -> bool:
    """CEL ``!a`` on a bool.

    Parameters
    ----------
    a : Any
        A CEL value.

    Returns
    -------
    bool
        The negation.

    Raises
    ------
    EvaluationError
        ``no matching overload`` when ``a`` is not a bool.
    """
    if type(a) is bool:
        return not a
    raise _no_overload("!_", a)


def _operand(function: str, thunk: Callable[[], Any]) -> bool | EvaluationError:
    try:
        value = thunk()
    except EvaluationError as error:
        return error
    if type(value) is bool:
        return value
    return _no_overload(function, value)


def and_(fa: Callable[[], Any], fb: Callable[[], Any]) -> bool:
    """CEL ``a && b``, commutative: a false operand absorbs an error on either side.

    Parameters
    ----------
    fa, fb : callable
        Zero-argument callables evaluating the operands; ``fb`` runs only
        when ``fa`` does not give false.

    Returns
    -------
    bool
        The conjunction.

    Raises
    ------
    EvaluationError
        The first operand's error (a non-bool operand counts as a
        ``no matching overload`` error) when no operand is false.
    """
    first = _operand("_&&_", fa)
    if first is False:
        return False
    second = _operand("_&&_", fb)
    if second is False:
        return False
    if isinstance(first, EvaluationError):
        raise first
    if isinstance(second, EvaluationError):
        raise second
    return True


def or_(fa: Callable[[], Any], fb: Callable[[], Any]) -> bool:
    """CEL ``a || b``, commutative: a true operand absorbs an error on either side.

    Parameters
    ----------
    fa, fb : callable
        Zero-argument callables evaluating the operands; ``fb`` runs only
        when ``fa`` does not give true.

    Returns
    -------
    bool
        The disjunction.

    Raises
    ------
    EvaluationError
        The first operand's error (a non-bool operand counts as a
        ``no matching overload`` error) when no operand is true.
    """
    first = _operand("_||_", fa)
    if first is True:
        return True
    second = _operand("_||_", fb)
    if second is True:
        return True
    if isinstance(first, EvaluationError):
        raise first
    if isinstance(second, EvaluationError):
        raise second
    return False


def cond(c: Any, fa: Callable[[], Any], fb: Callable[[], Any]) -> Any:
    """CEL ``c ? a : b``: evaluate only the chosen branch.

    Parameters
    ----------
    c : Any
        The condition; must be a bool.
    fa, fb : callable
        Zero-argument callables evaluating the branches.

    Returns
    -------
    Any
        The chosen branch's value.

    Raises
    ------
    EvaluationError
        ``no matching overload`` when ``c`` is not a bool.
    """
    if c is True:
        return fa()
    if c is False:
        return fb()
    raise _no_overload("_?_:_", c)


# --- equality and ordering -----------------------------------------------------------------------

_MISSING: Final = object()

_SCALAR_TYPES: Final = frozenset(
    {int, UInt, float, str, bytes, bool, type(None), _dt.timedelta, CelType}
)


def _map_get(mapping: Any, key: Any) -> Any:
    """The value under a CEL-equal key, or ``_MISSING``."""
    try:
        value = mapping.get(key, _MISSING)
    except TypeError:  # an unhashable key (a list) is never a map key
        return _MISSING
    if value is _MISSING or type(key) is str:
        return value
    # Python hashes True, 1, 1u and 1.0 alike; CEL keeps bool apart from numbers.
    if type(key) is bool or key == 0 or key == 1:
        asked_bool = type(key) is bool
        for stored in mapping:
            if stored == key and (type(stored) is bool) is asked_bool:
                return value
        return _MISSING
    return value


def _list_eq(a: Any, b: Any) -> bool:
    if len(a) != len(b):
        return False
    return all(map(eq, a, b))


def _map_eq(a: Any, b: Any) -> bool:
    if len(a) != len(b):
        return False
    for key, value in a.items():
        other = _map_get(b, key)
        if other is _MISSING or not eq(value, other):
            return False
    return True


def eq(a: Any, b: Any) -> bool:
    """CEL ``a == b``: heterogeneous numeric equality, structural lists and maps.

    Values of different kinds are unequal (``true == 1`` is false); ints,
    uints and doubles compare by exact numeric value (``1 == 1u == 1.0``,
    ``NaN != NaN``).

    Parameters
    ----------
    a, b : Any
        CEL values.

    Returns
    -------
    bool
        Whether the values are equal.

    Raises
    ------
    EvaluationError
        ``no matching overload`` only for a Python value with no CEL type.
    """
    kind = type(a)
    other_kind = type(b)
    if kind is other_kind:
        if kind in _SCALAR_TYPES:
            return bool(a == b)
        if kind is list or kind is tuple:
            return _list_eq(a, b)
        if kind is dict:
            return _map_eq(a, b)
    elif kind in _NUMERIC_TYPES and other_kind in _NUMERIC_TYPES:
        return bool(a == b)
    name = _name(a)
    other = _name(b)
    if name in _NUMERIC_NAMES and other in _NUMERIC_NAMES:
        return _plain_number(a, name) == _plain_number(b, other)
    if name != other:
        return False
    if name == _LIST:
        return _list_eq(a, b)
    if name == _MAP:
        return _map_eq(a, b)
    if name == _TS:
        return _ts(a) == _ts(b)
    return bool(a == b)


def ne(a: Any, b: Any) -> bool:
    """CEL ``a != b``, the negation of :func:`eq`.

    Parameters
    ----------
    a, b : Any
        CEL values.

    Returns
    -------
    bool
        Whether the values differ.
    """
    return not eq(a, b)


def _plain_number(value: Any, name: str) -> int | float:
    return float(value) if name == _DOUBLE else int(value)


def _ordered(function: str, a: Any, b: Any) -> tuple[Any, Any]:
    name = _name(a)
    other = _name(b)
    if name in _NUMERIC_NAMES and other in _NUMERIC_NAMES:
        # Ordering an int or uint against a double converts it to a double first, as
        # cel-go does and cel-spec's conformance tests expect
        # (9223372036854775807 < 9223372036854775808.0 is false); equality stays exact.
        if _DOUBLE in (name, other):
            return float(a), float(b)
        return _plain_number(a, name), _plain_number(b, other)
    if name == other and name in _ORDERED_NAMES:
        if name == _TS:
            return _ts(a), _ts(b)
        return a, b
    raise _no_overload(function, a, b)


_FAST_ORDERED: Final = frozenset({int, float, str, bytes, bool, _dt.timedelta})


def lt(a: Any, b: Any) -> bool:
    """CEL ``a < b`` on numbers (across kinds), strings, bytes, bools, timestamps, durations.

    Parameters
    ----------
    a, b : Any
        CEL values.

    Returns
    -------
    bool
        The comparison; false whenever a NaN takes part.

    Raises
    ------
    EvaluationError
        ``no matching overload`` for other operands.
    """
    kind = type(a)
    other_kind = type(b)
    if kind is other_kind and kind in _FAST_ORDERED:
        return bool(a < b)
    if kind in _NUMERIC_TYPES and other_kind in _NUMERIC_TYPES:
        if kind is float or other_kind is float:
            return bool(float(a) < float(b))  # as cel-go: the int side becomes a double
        return bool(a < b)
    x, y = _ordered("_<_", a, b)
    return bool(x < y)


def le(a: Any, b: Any) -> bool:
    """CEL ``a <= b``; see :func:`lt`.

    Parameters
    ----------
    a, b : Any
        CEL values.

    Returns
    -------
    bool
        The comparison.
    """
    kind = type(a)
    other_kind = type(b)
    if kind is other_kind and kind in _FAST_ORDERED:
        return bool(a <= b)
    if kind in _NUMERIC_TYPES and other_kind in _NUMERIC_TYPES:
        if kind is float or other_kind is float:
            return bool(float(a) <= float(b))  # as cel-go: the int side becomes a double
        return bool(a <= b)
    x, y = _ordered("_<=_", a, b)
    return bool(x <= y)


def gt(a: Any, b: Any) -> bool:
    """CEL ``a > b``; see :func:`lt`.

    Parameters
    ----------
    a, b : Any
        CEL values.

    Returns
    -------
    bool
        The comparison.
    """
    kind = type(a)
    other_kind = type(b)
    if kind is other_kind and kind in _FAST_ORDERED:
        return bool(a > b)
    if kind in _NUMERIC_TYPES and other_kind in _NUMERIC_TYPES:
        if kind is float or other_kind is float:
            return bool(float(a) > float(b))  # as cel-go: the int side becomes a double
        return bool(a > b)
    x, y = _ordered("_>_", a, b)
    return bool(x > y)


def ge(a: Any, b: Any) -> bool:
    """CEL ``a >= b``; see :func:`lt`.

    Parameters
    ----------
    a, b : Any
        CEL values.

    Returns
    -------
    bool
        The comparison.
    """
    kind = type(a)
    other_kind = type(b)
    if kind is other_kind and kind in _FAST_ORDERED:
        return bool(a >= b)
    if kind in _NUMERIC_TYPES and other_kind in _NUMERIC_TYPES:
        if kind is float or other_kind is float:
            return bool(float(a) >= float(b))  # as cel-go: the int side becomes a double
        return bool(a >= b)
    x, y = _ordered("_>=_", a, b)
    return bool(x >= y)


# --- containers ----------------------------------------------------------------------------------


def in_(elem: Any, container: Any) -> bool:
    """CEL ``elem in container``: list membership by :func:`eq`, or map key presence.

    Parameters
    ----------
    elem : Any
        The value looked for.
    container : Any
        A list or a map.

    Returns
    -------
    bool
        Whether the list holds an equal element or the map an equal key
        (``1u in {1: 'a'}`` and ``1.0 in {1: 'a'}`` are true).

    Raises
    ------
    EvaluationError
        ``no matching overload`` when ``container`` is neither list nor map.
    """
    name = _name(container)
    if name == _LIST:
        return any(eq(elem, item) for item in container)
    if name == _MAP:
        return _map_get(container, elem) is not _MISSING
    raise _no_overload("@in", elem, container)


def _missing_key(key: Any) -> EvaluationError:
    return EvaluationError(f"no such key: {_literal(key)}", kind="no such key")


def _list_position(key: Any, length: int, container: Any) -> int:
    name = _name(key)
    if name in (_INT, _UINT):
        position = int(key)
    elif name == _DOUBLE:
        if not math.isfinite(key) or key != math.floor(key):
            raise EvaluationError(f"invalid list index: {key}", kind="invalid argument")
        position = int(key)
    else:
        raise _no_overload("_[_]", container, key)
    if not 0 <= position < length:
        raise EvaluationError(
            f"index out of range: {position} (list size {length})", kind="invalid argument"
        )
    return position


def index(container: Any, key: Any) -> Any:
    """CEL ``container[key]`` on a list (int, uint or integral double index) or a map.

    Parameters
    ----------
    container : Any
        A list or a map.
    key : Any
        The index or key.

    Returns
    -------
    Any
        The element.

    Raises
    ------
    EvaluationError
        ``invalid argument`` for an index out of range (negative included) or
        a fractional double index, ``no such key`` for a missing map key,
        ``no matching overload`` for other operand kinds.
    """
    kind = type(container)
    if kind is dict:
        value = _map_get(container, key)
        if value is _MISSING:
            raise _missing_key(key)
        return value
    if kind is list or kind is tuple:
        if type(key) is int and 0 <= key < len(container):
            return container[key]
        return container[_list_position(key, len(container), container)]
    name = _name(container)
    if name == _LIST:
        return container[_list_position(key, len(container), container)]
    if name == _MAP:
        value = _map_get(container, key)
        if value is _MISSING:
            raise _missing_key(key)
        return value
    raise _no_overload("_[_]", container, key)


def select(obj: Any, field: str) -> Any:
    """CEL field selection ``obj.field`` on a map.

    Parameters
    ----------
    obj : Any
        A map.
    field : str
        The field name.

    Returns
    -------
    Any
        The value under the key ``field``.

    Raises
    ------
    EvaluationError
        ``no such key`` when the key is absent, ``no matching overload`` when
        ``obj`` is not a map.
    """
    if type(obj) is dict or _name(obj) == _MAP:
        value = obj.get(field, _MISSING)
        if value is _MISSING:
            raise _missing_key(field)
        return value
    raise EvaluationError(
        f"no matching overload for field selection '.{field}' on {_describe(obj)}",
        kind="no matching overload",
    )


def has(obj: Any, field: str) -> bool:
    """CEL ``has(obj.field)`` on a map: whether the key is present.

    Parameters
    ----------
    obj : Any
        A map.
    field : str
        The field name.

    Returns
    -------
    bool
        Whether ``obj`` has the key ``field``.

    Raises
    ------
    EvaluationError
        ``no matching overload`` when ``obj`` is not a map.
    """
    if type(obj) is dict or _name(obj) == _MAP:
        return field in obj
    raise EvaluationError(
        f"no matching overload for has(_.{field}) on {_describe(obj)}",
        kind="no matching overload",
    )


def make_list(items: Iterable[Any]) -> list[Any]:
    """Build a CEL list.

    Parameters
    ----------
    items : iterable
        The elements.

    Returns
    -------
    list
        A new list.
    """
    return list(items)


def make_map(pairs: Iterable[tuple[Any, Any]]) -> dict[Any, Any]:
    """Build a CEL map from key-value pairs.

    Parameters
    ----------
    pairs : iterable of (key, value)
        The entries, in order.

    Returns
    -------
    dict
        A new map.

    Raises
    ------
    EvaluationError
        ``invalid argument`` for a key that is not int, uint, bool or string,
        for a repeated key (``{1: 'a', 1u: 'b'}`` repeats, as ``1 == 1u``),
        and for a bool key next to an equal number (``{true: 1, 1: 2}``),
        which a Python dict cannot keep apart.
    """
    result: dict[Any, Any] = {}
    for key, value in pairs:
        if type(key) not in _MAP_KEY_TYPES and _describe(key) not in (_INT, _UINT, _BOOL, _STRING):
            raise EvaluationError(
                f"unsupported map key type: {_describe(key)}", kind="invalid argument"
            )
        if key in result:
            asked_bool = type(key) is bool
            for stored in result:
                if stored == key and (type(stored) is bool) is not asked_bool:
                    raise EvaluationError(
                        f"map keys {_literal(stored)} and {_literal(key)} cannot both be held",
                        kind="invalid argument",
                    )
            raise EvaluationError(f"repeated key: {_literal(key)}", kind="invalid argument")
        result[key] = value
    return result


# --- functions -----------------------------------------------------------------------------------


def size(x: Any) -> int:
    """CEL ``size(x)``: code points of a string, bytes, list elements or map entries.

    Parameters
    ----------
    x : Any
        A string, bytes, list or map.

    Returns
    -------
    int
        The size.

    Raises
    ------
    EvaluationError
        ``no matching overload`` for other values.
    """
    if _name(x) in (_STRING, _BYTES, _LIST, _MAP):
        return len(x)
    raise _no_overload("size", x)


def _strings(function: str, s: Any, other: Any) -> None:
    if (type(s) is not str and _name(s) != _STRING) or (
        type(other) is not str and _name(other) != _STRING
    ):
        raise _no_overload(function, s, other)


def contains(s: Any, sub: Any) -> bool:
    """CEL ``s.contains(sub)`` on strings.

    Parameters
    ----------
    s, sub : Any
        Strings.

    Returns
    -------
    bool
        Whether ``sub`` occurs in ``s``.

    Raises
    ------
    EvaluationError
        ``no matching overload`` for non-strings.
    """
    _strings("contains", s, sub)
    return sub in s


def starts_with(s: Any, prefix: Any) -> bool:
    """CEL ``s.startsWith(prefix)`` on strings.

    Parameters
    ----------
    s, prefix : Any
        Strings.

    Returns
    -------
    bool
        Whether ``s`` begins with ``prefix``.

    Raises
    ------
    EvaluationError
        ``no matching overload`` for non-strings.
    """
    _strings("startsWith", s, prefix)
    return s.startswith(prefix)  # type: ignore[no-any-return]


def ends_with(s: Any, suffix: Any) -> bool:
    """CEL ``s.endsWith(suffix)`` on strings.

    Parameters
    ----------
    s, suffix : Any
        Strings.

    Returns
    -------
    bool
        Whether ``s`` ends with ``suffix``.

    Raises
    ------
    EvaluationError
        ``no matching overload`` for non-strings.
    """
    _strings("endsWith", s, suffix)
    return s.endswith(suffix)  # type: ignore[no-any-return]


_MULTILINE_FLAG: Final = re.compile(r"\(\?[a-zA-Z]*m")
_CLASS_ESCAPES: Final = {"d": "0-9", "s": "\\t\\n\\f\\r ", "w": "0-9A-Za-z_"}
_OUTSIDE_ESCAPES: Final = {
    "d": "[0-9]",
    "D": "[^0-9]",
    "s": "[\\t\\n\\f\\r ]",
    "S": "[^\\t\\n\\f\\r ]",
    "w": "[0-9A-Za-z_]",
    "W": "[^0-9A-Za-z_]",
    "z": "\\Z",
}


def _translate_re2(pattern: str) -> str:
    # Rewrites the RE2 constructs Python's re reads differently; see the module docstring.
    end = "$" if _MULTILINE_FLAG.search(pattern) else "\\Z"
    out: list[str] = []
    in_class = False
    i = 0
    length = len(pattern)
    while i < length:
        char = pattern[i]
        if char == "\\" and i + 1 < length:
            escaped = pattern[i + 1]
            table = _CLASS_ESCAPES if in_class else _OUTSIDE_ESCAPES
            out.append(table.get(escaped, char + escaped))
            i += 2
            continue
        if in_class:
            if char == "]":
                in_class = False
        elif char == "[":
            in_class = True
            out.append(char)
            i += 1
            # A ']' right after '[' or '[^' is a literal member, in RE2 as in re.
            if i < length and pattern[i] == "^":
                out.append("^")
                i += 1
            if i < length and pattern[i] == "]":
                out.append("]")
                i += 1
            continue
        elif char == "$":
            out.append(end)
            i += 1
            continue
        out.append(char)
        i += 1
    return "".join(out)


@functools.lru_cache(maxsize=256)
def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(_translate_re2(pattern))


def matches(s: Any, pattern: Any) -> bool:
    """CEL ``s.matches(pattern)``: whether the RE2 pattern matches anywhere in ``s``.

    Parameters
    ----------
    s : Any
        The string searched.
    pattern : Any
        An RE2 regular expression (unanchored, like RE2's partial match).

    Returns
    -------
    bool
        Whether the pattern matches a substring of ``s``.

    Raises
    ------
    EvaluationError
        ``invalid argument`` for a pattern that does not compile,
        ``no matching overload`` for non-strings.
    """
    _strings("matches", s, pattern)
    try:
        compiled = _compile(str(pattern))
    except re.error as error:
        raise EvaluationError(
            f"invalid regular expression {pattern!r}: {error}", kind="invalid argument"
        ) from None
    return compiled.search(s) is not None


# --- conversions ---------------------------------------------------------------------------------

_DECIMAL_INT: Final = re.compile(r"[+-]?[0-9]+")
_DECIMAL_UINT: Final = re.compile(r"[0-9]+")
_DECIMAL_FLOAT: Final = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_HEX_FLOAT: Final = re.compile(
    r"[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?[0-9]+"
)
_INFINITY: Final = re.compile(r"[+-]?(?:inf|infinity)", re.IGNORECASE)
_BOOL_TEXT: Final = {
    "1": True,
    "t": True,
    "T": True,
    "true": True,
    "TRUE": True,
    "True": True,
    "0": False,
    "f": False,
    "F": False,
    "false": False,
    "FALSE": False,
    "False": False,
}


def _conversion_error(target: str, value: Any) -> EvaluationError:
    return EvaluationError(f"cannot convert {_literal(value)} to {target}", kind="invalid argument")


def _range_error(target: str, value: Any) -> EvaluationError:
    return EvaluationError(f"{target} out of range: {_literal(value)}", kind="range")


def to_int(x: Any) -> int:
    """CEL ``int(x)`` from int, uint, double (truncated toward zero), string or timestamp.

    Parameters
    ----------
    x : Any
        The value converted.

    Returns
    -------
    int
        The int; a timestamp gives whole seconds since the Unix epoch.

    Raises
    ------
    EvaluationError
        ``range`` for values outside int64 (doubles at or beyond +/-2**63,
        NaN, infinities), ``invalid argument`` for non-decimal text,
        ``no matching overload`` for other kinds.
    """
    name = _name(x)
    if name == _INT:
        return int(x)
    if name == _UINT:
        if x > INT64_MAX:
            raise _range_error("int", x)
        return int(x)
    if name == _DOUBLE:
        # Like cel-go, the bounds are exclusive: -2**63 as a double is rejected too.
        if math.isnan(x) or not -9.223372036854775808e18 < x < 9.223372036854775808e18:
            raise _range_error("int", x)
        return int(x)
    if name == _STRING:
        if _DECIMAL_INT.fullmatch(x) is None:
            raise _conversion_error("int", x)
        number = int(x)
        if not INT64_MIN <= number <= INT64_MAX:
            raise _range_error("int", x)
        return number
    if name == _TS:
        return (_ts(x) - _EPOCH) // _SECOND
    raise _no_overload("int", x)


def to_uint(x: Any) -> UInt:
    """CEL ``uint(x)`` from uint, int, double (truncated toward zero) or string.

    Parameters
    ----------
    x : Any
        The value converted.

    Returns
    -------
    UInt
        The uint.

    Raises
    ------
    EvaluationError
        ``range`` for negative values and values at or above 2**64,
        ``invalid argument`` for non-decimal text, ``no matching overload``
        for other kinds.
    """
    name = _name(x)
    if name == _UINT:
        return x if type(x) is UInt else _uint(int(x))
    if name == _INT:
        if x < 0:
            raise _range_error("uint", x)
        return _uint(int(x))
    if name == _DOUBLE:
        if math.isnan(x) or not 0.0 <= x < 1.8446744073709551616e19:
            raise _range_error("uint", x)
        return _uint(int(x))
    if name == _STRING:
        if _DECIMAL_UINT.fullmatch(x) is None:
            raise _conversion_error("uint", x)
        number = int(x)
        if number > UINT64_MAX:
            raise _range_error("uint", x)
        return _uint(number)
    raise _no_overload("uint", x)


def _parse_double(text: str) -> float:
    # The grammar of Go's strconv.ParseFloat, which cel-go uses.
    if _DECIMAL_FLOAT.fullmatch(text) is not None:
        value = float(text)
    elif _HEX_FLOAT.fullmatch(text) is not None:
        try:
            value = float.fromhex(text)
        except OverflowError:
            raise _range_error("double", text) from None
    elif _INFINITY.fullmatch(text) is not None:
        return -math.inf if text[0] == "-" else math.inf
    elif text.lower() == "nan":
        return math.nan
    else:
        raise _conversion_error("double", text)
    if math.isinf(value):
        raise _range_error("double", text)
    return value


def to_double(x: Any) -> float:
    """CEL ``double(x)`` from double, int, uint (rounded to nearest) or string.

    Parameters
    ----------
    x : Any
        The value converted.

    Returns
    -------
    float
        The double. Text follows Go's ``strconv.ParseFloat``: decimal and
        hexadecimal (``0x1p-2``) notation, ``inf``, ``infinity`` and ``nan``
        in any case.

    Raises
    ------
    EvaluationError
        ``invalid argument`` for malformed text, ``range`` for finite text
        too large for a double, ``no matching overload`` for other kinds.
    """
    name = _name(x)
    if name == _DOUBLE:
        return float(x)
    if name in (_INT, _UINT):
        return float(int(x))
    if name == _STRING:
        return _parse_double(x)
    raise _no_overload("double", x)


def _format_double(x: float) -> str:
    # Go's fmt "%g" with the shortest round-trip digits, as cel-go formats doubles:
    # scientific notation when the decimal exponent is below -4 or at least 6.
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    sign = "-" if math.copysign(1.0, x) < 0 else ""
    if x == 0.0:
        return sign + "0"
    mantissa, _, exponent = repr(abs(x)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    point = len(whole) + (int(exponent) if exponent else 0)
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    exp = point - 1
    if exp < -4 or exp >= 6:
        head = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{head}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def _format_timestamp(ts: _dt.datetime) -> str:
    ts = _ts(ts)
    text = (
        f"{ts.year:04d}-{ts.month:02d}-{ts.day:02d}T{ts.hour:02d}:{ts.minute:02d}:{ts.second:02d}"
    )
    if ts.microsecond:
        text += "." + f"{ts.microsecond:06d}".rstrip("0")
    return text + "Z"


def _format_duration(duration: _dt.timedelta) -> str:
    micros = _micros(duration)
    sign = "-" if micros < 0 else ""
    seconds, fraction = divmod(abs(micros), 1_000_000)
    text = f"{sign}{seconds}"
    if fraction:
        text += "." + f"{fraction:06d}".rstrip("0")
    return text + "s"


def to_string(x: Any) -> str:
    """CEL ``string(x)`` from string, int, uint, double, bytes, bool, timestamp or duration.

    Parameters
    ----------
    x : Any
        The value converted.

    Returns
    -------
    str
        The text: doubles as Go's ``%g`` (``"1"``, ``"1e+100"``, ``"-0"``),
        bytes decoded as UTF-8, ``"true"``/``"false"``, timestamps as RFC 3339
        in UTC with fractional seconds only when nonzero, durations as
        seconds with an ``s`` suffix (``"1.5s"``).

    Raises
    ------
    EvaluationError
        ``invalid argument`` for bytes that are not UTF-8,
        ``no matching overload`` for other kinds.
    """
    name = _name(x)
    if name == _STRING:
        return str(x)
    if name in (_INT, _UINT):
        return str(int(x))
    if name == _DOUBLE:
        return _format_double(float(x))
    if name == _BYTES:
        try:
            return bytes(x).decode("utf-8")
        except UnicodeDecodeError:
            raise EvaluationError(
                "invalid UTF-8 in bytes converted to string", kind="invalid argument"
            ) from None
    if name == _BOOL:
        return "true" if x else "false"
    if name == _TS:
        return _format_timestamp(x)
    if name == _DUR:
        return _format_duration(x)
    raise _no_overload("string", x)


def to_bytes(x: Any) -> bytes:
    """CEL ``bytes(x)`` from bytes or string (UTF-8 encoded).

    Parameters
    ----------
    x : Any
        The value converted.

    Returns
    -------
    bytes
        The bytes.

    Raises
    ------
    EvaluationError
        ``invalid argument`` for a string holding lone surrogates,
        ``no matching overload`` for other kinds.
    """
    name = _name(x)
    if name == _BYTES:
        return bytes(x)
    if name == _STRING:
        try:
            return str(x).encode("utf-8")
        except UnicodeEncodeError:
            raise EvaluationError(
                "string is not valid Unicode text", kind="invalid argument"
            ) from None
    raise _no_overload("bytes", x)


def to_bool(x: Any) -> bool:
    """CEL ``bool(x)`` from bool or string (as Go's ``strconv.ParseBool``).

    Parameters
    ----------
    x : Any
        The value converted.

    Returns
    -------
    bool
        The bool; text may be ``1 t T true TRUE True`` or ``0 f F false FALSE False``.

    Raises
    ------
    EvaluationError
        ``invalid argument`` for other text, ``no matching overload`` for other kinds.
    """
    name = _name(x)
    if name == _BOOL:
        return bool(x)
    if name == _STRING:
        value = _BOOL_TEXT.get(x)
        if value is None:
            raise _conversion_error("bool", x)
        return value
    raise _no_overload("bool", x)


def to_dyn(x: Any) -> Any:
    """CEL ``dyn(x)``: the value itself.

    Parameters
    ----------
    x : Any
        Any CEL value.

    Returns
    -------
    Any
        ``x``.
    """
    return x


def type_of(x: Any) -> CelType:
    """CEL ``type(x)``: the type value of ``x``.

    Parameters
    ----------
    x : Any
        A CEL value.

    Returns
    -------
    CelType
        The type (``int``, ``list``, ``google.protobuf.Timestamp``, ...).

    Raises
    ------
    EvaluationError
        ``no matching overload`` for a Python value with no CEL type.
    """
    return TYPES[_name(x)]


_RFC3339: Final = re.compile(
    r"([0-9]{4,})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?(?:(Z)|([+-])([0-9]{2}):([0-9]{2}))"
)


def _parse_timestamp(text: str) -> _dt.datetime:
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise _conversion_error("timestamp", text)
    year, month, day, hour, minute, second = (int(match[i]) for i in range(1, 7))
    if not 1 <= year <= 9999:
        raise _range_error("timestamp", text)
    if len(match[1]) != 4:  # a padded year such as 02009
        raise _conversion_error("timestamp", text)
    micros = int((match[7] or "0")[:6].ljust(6, "0"))
    offset = 0
    if match[8] is None:
        hours = int(match[10])
        minutes = int(match[11])
        if hours > 23 or minutes > 59:
            raise _conversion_error("timestamp", text)
        offset = (hours * 60 + minutes) * 60 * (-1 if match[9] == "-" else 1)
    try:
        local = _dt.datetime(year, month, day, hour, minute, second, micros, tzinfo=_UTC)
    except ValueError:
        raise _conversion_error("timestamp", text) from None
    try:
        return local - _dt.timedelta(seconds=offset)
    except OverflowError:
        raise _range_error("timestamp", text) from None


def to_timestamp(x: Any) -> _dt.datetime:
    """CEL ``timestamp(x)`` from timestamp, RFC 3339 string or int (Unix seconds).

    Parameters
    ----------
    x : Any
        The value converted.

    Returns
    -------
    datetime.datetime
        An aware UTC datetime. Text is ``YYYY-MM-DDThh:mm:ss`` with optional
        fractional seconds (any number of digits, truncated to microseconds)
        and ``Z`` or a ``+hh:mm``/``-hh:mm`` offset.

    Raises
    ------
    EvaluationError
        ``range`` outside years 1 to 9999, ``invalid argument`` for malformed
        text, ``no matching overload`` for other kinds.
    """
    name = _name(x)
    if name == _TS:
        return _ts(x)
    if name == _STRING:
        return _parse_timestamp(x)
    if name == _INT:
        if not _MIN_UNIX <= x <= _MAX_UNIX:
            raise _range_error("timestamp", x)
        return _EPOCH + _dt.timedelta(seconds=int(x))
    raise _no_overload("timestamp", x)


_DURATION_TEXT: Final = re.compile(
    r"[+-]?(?:0|(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|\u00b5s|\u03bcs|ms|s|m|h))+)"
)
_DURATION_PART: Final = re.compile(r"([0-9]*)(?:\.([0-9]*))?(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_UNIT_NANOS: Final = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,
    "\u03bcs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}


def _parse_duration(text: str) -> _dt.timedelta:
    # The grammar of Go's time.ParseDuration, computed exactly and bounded by CEL's range.
    if _DURATION_TEXT.fullmatch(text) is None:
        raise _conversion_error("duration", text)
    nanos = 0
    for whole, fraction, unit in _DURATION_PART.findall(text):
        scale = _UNIT_NANOS[unit]
        nanos += int(whole or "0") * scale
        if fraction:
            nanos += int(fraction) * scale // 10 ** len(fraction)
    micros = nanos // 1_000
    if text.startswith("-"):
        micros = -micros
    if abs(micros) > (2**63 - 1) // 1000:
        raise _range_error("duration", text)
    return _dt.timedelta(microseconds=micros)


def to_duration(x: Any) -> _dt.timedelta:
    """CEL ``duration(x)`` from duration or Go duration text (``"1h30m"``, ``"-1.5s"``).

    Parameters
    ----------
    x : Any
        The value converted.

    Returns
    -------
    datetime.timedelta
        The duration; units are ``h m s ms us µs ns``, digits below a
        microsecond are truncated toward zero.

    Raises
    ------
    EvaluationError
        ``range`` beyond int64 nanoseconds (about 292 years), ``invalid argument``
        for malformed text, ``no matching overload`` for other kinds.
    """
    name = _name(x)
    if name == _DUR:
        return _check_duration(x)
    if name == _STRING:
        return _parse_duration(x)
    raise _no_overload("duration", x)


# --- timestamp and duration accessors ------------------------------------------------------------

_OFFSET: Final = re.compile(r"([+-]?)([0-9]{2}):([0-9]{2})")


@functools.lru_cache(maxsize=128)
def _zone(name: str) -> _dt.tzinfo:
    match = _OFFSET.fullmatch(name)
    if match is not None:
        hours = int(match[2])
        minutes = int(match[3])
        if hours > 23 or minutes > 59:
            raise EvaluationError(f"invalid time zone offset: {name!r}", kind="invalid argument")
        delta = _dt.timedelta(hours=hours, minutes=minutes)
        return _dt.timezone(-delta if match[1] == "-" else delta)
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise EvaluationError(f"unknown time zone: {name!r}", kind="invalid argument") from None


def _local(function: str, value: Any, tz: Any) -> _dt.datetime:
    if _name(value) != _TS:
        raise _no_overload(function, value) if tz is None else _no_overload(function, value, tz)
    if tz is None:
        return _ts(value)
    if type(tz) is not str:
        raise _no_overload(function, value, tz)
    try:
        return _ts(value).astimezone(_zone(tz))
    except OverflowError:
        raise EvaluationError(f"timestamp out of range in time zone {tz!r}", kind="range") from None


def _duration_micros(value: Any, tz: Any) -> int | None:
    if tz is None and _name(value) == _DUR:
        return _micros(value)
    return None


def get_full_year(value: Any, tz: Any = None) -> int:
    """CEL ``ts.getFullYear([tz])``: the year in the time zone (default UTC).

    Parameters
    ----------
    value : Any
        A timestamp.
    tz : str, optional
        An IANA zone name (``"America/Los_Angeles"``) or offset (``"+05:30"``).

    Returns
    -------
    int
        The year.

    Raises
    ------
    EvaluationError
        ``invalid argument`` for an unknown zone, ``no matching overload``
        for a value that is not a timestamp.
    """
    return _local("getFullYear", value, tz).year


def get_month(value: Any, tz: Any = None) -> int:
    """CEL ``ts.getMonth([tz])``: the month, 0 for January.

    Parameters
    ----------
    value : Any
        A timestamp.
    tz : str, optional
        A time zone, as for :func:`get_full_year`.

    Returns
    -------
    int
        The 0-based month.
    """
    return _local("getMonth", value, tz).month - 1


def get_day_of_year(value: Any, tz: Any = None) -> int:
    """CEL ``ts.getDayOfYear([tz])``: the day of the year, 0 for January 1st.

    Parameters
    ----------
    value : Any
        A timestamp.
    tz : str, optional
        A time zone, as for :func:`get_full_year`.

    Returns
    -------
    int
        The 0-based day of the year.
    """
    return _local("getDayOfYear", value, tz).timetuple().tm_yday - 1


def get_day_of_month(value: Any, tz: Any = None) -> int:
    """CEL ``ts.getDayOfMonth([tz])``: the day of the month, 0-based.

    Parameters
    ----------
    value : Any
        A timestamp.
    tz : str, optional
        A time zone, as for :func:`get_full_year`.

    Returns
    -------
    int
        The 0-based day of the month.
    """
    return _local("getDayOfMonth", value, tz).day - 1


def get_date(value: Any, tz: Any = None) -> int:
    """CEL ``ts.getDate([tz])``: the day of the month, 1-based.

    Parameters
    ----------
    value : Any
        A timestamp.
    tz : str, optional
        A time zone, as for :func:`get_full_year`.

    Returns
    -------
    int
        The 1-based day of the month.
    """
    return _local("getDate", value, tz).day


def get_day_of_week(value: Any, tz: Any = None) -> int:
    """CEL ``ts.getDayOfWeek([tz])``: the weekday, 0 for Sunday.

    Parameters
    ----------
    value : Any
        A timestamp.
    tz : str, optional
        A time zone, as for :func:`get_full_year`.

    Returns
    -------
    int
        The weekday, Sunday = 0 to Saturday = 6.
    """
    return (_local("getDayOfWeek", value, tz).weekday() + 1) % 7


def get_hours(value: Any, tz: Any = None) -> int:
    """CEL ``getHours``: a timestamp's hour in the zone, or a duration's whole hours.

    Parameters
    ----------
    value : Any
        A timestamp or a duration.
    tz : str, optional
        A time zone for timestamps, as for :func:`get_full_year`.

    Returns
    -------
    int
        The hour of the day, or the duration in hours truncated toward zero.
    """
    micros = _duration_micros(value, tz)
    if micros is not None:
        return _trunc_div(micros, 3_600_000_000)
    return _local("getHours", value, tz).hour


def get_minutes(value: Any, tz: Any = None) -> int:
    """CEL ``getMinutes``: a timestamp's minute in the zone, or a duration's whole minutes.

    Parameters
    ----------
    value : Any
        A timestamp or a duration.
    tz : str, optional
        A time zone for timestamps, as for :func:`get_full_year`.

    Returns
    -------
    int
        The minute of the hour, or the duration in minutes truncated toward zero.
    """
    micros = _duration_micros(value, tz)
    if micros is not None:
        return _trunc_div(micros, 60_000_000)
    return _local("getMinutes", value, tz).minute


def get_seconds(value: Any, tz: Any = None) -> int:
    """CEL ``getSeconds``: a timestamp's second in the zone, or a duration's whole seconds.

    Parameters
    ----------
    value : Any
        A timestamp or a duration.
    tz : str, optional
        A time zone for timestamps, as for :func:`get_full_year`.

    Returns
    -------
    int
        The second of the minute, or the duration in seconds truncated toward zero.
    """
    micros = _duration_micros(value, tz)
    if micros is not None:
        return _trunc_div(micros, 1_000_000)
    return _local("getSeconds", value, tz).second


def get_milliseconds(value: Any, tz: Any = None) -> int:
    """CEL ``getMilliseconds``: the millisecond within the second.

    For a duration this is the milliseconds component, as the CEL conformance
    suite defines it (``123.321456789s`` gives 321, and a negative duration a
    negative component), not the duration in milliseconds.

    Parameters
    ----------
    value : Any
        A timestamp or a duration.
    tz : str, optional
        A time zone for timestamps, as for :func:`get_full_year`.

    Returns
    -------
    int
        The milliseconds, 0 to 999 (-999 to 999 for durations).
    """
    micros = _duration_micros(value, tz)
    if micros is not None:
        component = abs(micros) // 1_000 % 1_000
        return -component if micros < 0 else component
    return _local("getMilliseconds", value, tz).microsecond // 1_000


# --- macros --------------------------------------------------------------------------------------


def _over_limit(items: Iterable[Any]) -> Iterator[Any]:
    for count, item in enumerate(items):
        if count >= MAX_ITERATIONS:
            raise EvaluationError(
                f"comprehension exceeded {MAX_ITERATIONS} iterations", kind="limit"
            )
        yield item


def _range(function: str, iterable: Any) -> Iterable[Any]:
    kind = type(iterable)
    if not (kind is list or kind is tuple or kind is dict) and _name(iterable) not in (
        _LIST,
        _MAP,
    ):
        raise _no_overload(function, iterable)
    if len(iterable) > MAX_ITERATIONS:
        return _over_limit(iterable)
    return iterable  # type: ignore[no-any-return]


def _predicate(function: str, fn: Callable[[Any], Any], item: Any) -> bool:
    result = fn(item)
    if type(result) is bool:
        return result
    raise _no_overload(function, result)


def all_(iterable: Any, fn: Callable[[Any], Any]) -> bool:
    """CEL ``x.all(v, p)``: whether the predicate holds for every element (map: every key).

    Parameters
    ----------
    iterable : Any
        A list or a map.
    fn : callable
        The predicate.

    Returns
    -------
    bool
        False as soon as one element gives false, even if others erred;
        true when all give true.

    Raises
    ------
    EvaluationError
        The first predicate error (a non-bool result counts as one) when no
        element gives false, ``limit`` past :data:`MAX_ITERATIONS`.
    """
    first_error: EvaluationError | None = None
    for item in _range("all", iterable):
        try:
            if not _predicate("all", fn, item):
                return False
        except EvaluationError as error:
            if first_error is None:
                first_error = error
    if first_error is not None:
        raise first_error
    return True


def exists_(iterable: Any, fn: Callable[[Any], Any]) -> bool:
    """CEL ``x.exists(v, p)``: whether the predicate holds for some element.

    Parameters
    ----------
    iterable : Any
        A list or a map.
    fn : callable
        The predicate.

    Returns
    -------
    bool
        True as soon as one element gives true, even if others erred;
        false when all give false.

    Raises
    ------
    EvaluationError
        The first predicate error when no element gives true, ``limit`` past
        :data:`MAX_ITERATIONS`.
    """
    first_error: EvaluationError | None = None
    for item in _range("exists", iterable):
        try:
            if _predicate("exists", fn, item):
                return True
        except EvaluationError as error:
            if first_error is None:
                first_error = error
    if first_error is not None:
        raise first_error
    return False


def exists_one_(iterable: Any, fn: Callable[[Any], Any]) -> bool:
    """CEL ``x.exists_one(v, p)``: whether the predicate holds for exactly one element.

    Parameters
    ----------
    iterable : Any
        A list or a map.
    fn : callable
        The predicate.

    Returns
    -------
    bool
        Whether exactly one element gives true.

    Raises
    ------
    EvaluationError
        Any predicate error, at once; ``limit`` past :data:`MAX_ITERATIONS`.
    """
    count = 0
    for item in _range("exists_one", iterable):
        if _predicate("exists_one", fn, item):
            count += 1
    return count == 1


def map_(iterable: Any, fn: Callable[[Any], Any]) -> list[Any]:
    """CEL ``x.map(v, f)``: the list of ``f`` applied to each element (map: each key).

    Parameters
    ----------
    iterable : Any
        A list or a map.
    fn : callable
        The transform.

    Returns
    -------
    list
        The transformed elements, in order.

    Raises
    ------
    EvaluationError
        Any error of ``fn``; ``limit`` past :data:`MAX_ITERATIONS`.
    """
    return [fn(item) for item in _range("map", iterable)]


def map_filter_(
    iterable: Any, filter_fn: Callable[[Any], Any], fn: Callable[[Any], Any]
) -> list[Any]:
    """CEL ``x.map(v, p, f)``: ``f`` applied to the elements the predicate keeps.

    Parameters
    ----------
    iterable : Any
        A list or a map.
    filter_fn : callable
        The predicate; must give a bool.
    fn : callable
        The transform.

    Returns
    -------
    list
        The transformed kept elements, in order.

    Raises
    ------
    EvaluationError
        Any error of either callable (a non-bool predicate result is
        ``no matching overload``); ``limit`` past :data:`MAX_ITERATIONS`.
    """
    return [fn(item) for item in _range("map", iterable) if _predicate("map", filter_fn, item)]


def filter_(iterable: Any, fn: Callable[[Any], Any]) -> list[Any]:
    """CEL ``x.filter(v, p)``: the elements (map: keys) the predicate keeps.

    Parameters
    ----------
    iterable : Any
        A list or a map.
    fn : callable
        The predicate; must give a bool.

    Returns
    -------
    list
        The kept elements, in order.

    Raises
    ------
    EvaluationError
        Any predicate error (a non-bool result is ``no matching overload``);
        ``limit`` past :data:`MAX_ITERATIONS`.
    """
    return [item for item in _range("filter", iterable) if _predicate("filter", fn, item)]


def pairs(iterable: Any) -> list[tuple[Any, Any]]:
    """The (index, element) pairs of a list, or the (key, value) pairs of a map.

    What a two-variable comprehension (``list.all(i, v, p)``) ranges over.

    Raises
    ------
    EvaluationError
        ``no matching overload`` for anything but a list or a map.
    """
    items = _range("comprehension", iterable)
    if type(iterable) is dict or _name(iterable) == _MAP:
        return list(iterable.items())
    return list(enumerate(items))


def transform_map(
    iterable: Any, filter_fn: Callable[[Any], Any] | None, fn: Callable[[Any], Any]
) -> dict[Any, Any]:
    """CEL ``x.transformMap(k, v, [p,] f)``: a map from each key (list: index) to ``f``.

    Parameters
    ----------
    iterable : Any
        The (key, value) pairs from :func:`pairs`.
    filter_fn : callable or None
        Keeps the pairs it gives true for; must give a bool.
    fn : callable
        The new value of each kept pair.

    Raises
    ------
    EvaluationError
        Any error of either callable.
    """
    return {
        pair[0]: fn(pair)
        for pair in iterable
        if filter_fn is None or _predicate("transformMap", filter_fn, pair)
    }
