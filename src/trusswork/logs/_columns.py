"""Arrow columns as the log pipeline sees them, for the modules that run its commands.

Every column the pipeline computes with is int64, float64, bool or string
(:func:`_normalize` brings the others there); a value's text is
:func:`~trusswork.logs._ast.number_text` for numbers and ``true``/``false``
for booleans. Conversions that need Python (parsing numbers, regular
expressions) run once per distinct value (:func:`_map_values`). The
semantics these helpers serve are in :mod:`trusswork.logs._pipeline`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from trusswork.core.errors import InvalidInput
from trusswork.logs._ast import number_text, parse_number
from trusswork.search.text import wildcard_regex

# What Arrow, numpy and Python raise on values they cannot handle; the public
# functions turn them into InvalidInput so callers see one error type.
_RUNTIME_ERRORS = (pa.ArrowException, ValueError, TypeError, ArithmeticError, LookupError, re.error)

_PC_COMPARE: dict[str, Callable[..., Any]] = {
    "=": pc.equal,
    "!=": pc.not_equal,
    "<": pc.less,
    "<=": pc.less_equal,
    ">": pc.greater,
    ">=": pc.greater_equal,
}


def _kind(data_type: Any) -> str:
    """The value family of an Arrow type: int, float, bool, str, null or other."""
    if pa.types.is_null(data_type):
        return "null"
    if pa.types.is_boolean(data_type):
        return "bool"
    if pa.types.is_integer(data_type):
        return "int"
    if pa.types.is_floating(data_type):
        return "float"
    if pa.types.is_string(data_type) or pa.types.is_large_string(data_type):
        return "str"
    return "other"


def _normalize(array: Any) -> Any:
    """``array`` as one of the types the pipeline works with (int64, float64, bool, string)."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    kind = _kind(array.type)
    if kind == "int" and array.type != pa.int64():
        return pc.cast(array, pa.int64())
    if kind == "float" and array.type != pa.float64():
        return pc.cast(array, pa.float64())
    if kind == "str" and array.type != pa.string():
        return pc.cast(array, pa.string())
    if kind == "other":
        return _map_values(array, str, pa.string())
    return array


def _text_of(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return number_text(value)
    return str(value)


def _map_values(array: Any, function: Callable[[Any], Any], out_type: Any) -> Any:
    """``function`` applied once per distinct non-null value of ``array``; null stays null."""
    if len(array) == array.null_count:
        return pa.nulls(len(array), out_type)
    encoded = pc.dictionary_encode(array)
    mapped = pa.array([function(v) for v in encoded.dictionary.to_pylist()], type=out_type)
    return mapped.take(encoded.indices)


def _as_text(array: Any) -> Any:
    """The texts of ``array``'s values (see :func:`number_text`)."""
    kind = _kind(array.type)
    if kind == "str":
        return array
    if kind in ("int", "bool"):
        return pc.cast(array, pa.string())
    if kind == "null":
        return pa.nulls(len(array), pa.string())
    return _map_values(array, _text_of, pa.string())


def _as_numbers(array: Any) -> Any:
    """``array`` as float64 for numeric aggregations: strings that parse, else null."""
    kind = _kind(array.type)
    if kind == "int":
        return pc.cast(array, pa.float64(), safe=False)
    if kind == "float":
        return array
    if kind == "str":
        return _map_values(array, parse_number, pa.float64())
    return pa.nulls(len(array), pa.float64())


def _to_numpy_bool(array: Any) -> np.ndarray[Any, Any]:
    return np.asarray(array.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def _column(table: Any, name: str) -> Any:
    """The column ``name`` of ``table``, normalized; None when there is none."""
    if name not in table.column_names:
        return None
    return _normalize(table.column(name))


def _column_or_nulls(table: Any, name: str) -> Any:
    column = _column(table, name)
    return pa.nulls(table.num_rows) if column is None else column


def _set_column(table: Any, name: str, array: Any) -> Any:
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, array)
    return table.append_column(name, array)


_wildcard = wildcard_regex  # the index's wildcard semantics, row by row


def _where(at: int) -> str:
    return f" (at offset {at})"


def _type_name(kind: str) -> str:
    return {"str": "string", "int": "number", "float": "number", "bool": "boolean"}.get(kind, kind)


def _compile_regex(pattern: str, at: int) -> re.Pattern[str]:
    """A Python regex; PCRE's ``(?<name>...)`` groups are accepted as ``(?P<name>...)``."""
    try:
        return re.compile(re.sub(r"\(\?<(?=[A-Za-z_])", "(?P<", pattern))
    except re.error as exc:
        raise InvalidInput(f"bad regular expression {pattern!r}: {exc}{_where(at)}") from exc
