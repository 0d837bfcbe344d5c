"""JSON values as CEL values, by a declared schema.

JSON has one number type and string-only object keys; a rule's inputs are
typed. :func:`coerce_event` converts what JSON cannot say directly and loses
nothing doing it: integral numbers for ``int`` and ``uint`` inputs, numbers
for ``double``, RFC 3339 text for timestamps, Go-style text for durations,
and the same inside lists and maps (map keys too). Undeclared inputs pass
through unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trusswork.core.errors import InvalidInput
from trusswork.rules._runtime import to_duration, to_timestamp
from trusswork.rules._types import Type
from trusswork.rules._values import (
    DURATION_TYPE,
    INT64_MAX,
    INT64_MIN,
    TIMESTAMP_TYPE,
    UINT64_MAX,
    EvaluationError,
    UInt,
)

__all__ = ["coerce_event"]


def coerce_event(event: Mapping[str, Any], types: Mapping[str, Type], where: str) -> dict[str, Any]:
    """``event`` with each declared input converted to its declared type where JSON differs.

    Raises
    ------
    InvalidInput
        For a value that cannot be its declared type (``1.5`` for an ``int``).
    """
    return {
        key: _convert(value, types[key], where, key) if key in types else value
        for key, value in event.items()
    }


def _convert(value: Any, kind: Type, where: str, path: str) -> Any:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind.kind in ("int", "uint") and number:
        if isinstance(value, float):
            if not value.is_integer():
                raise InvalidInput(f"{where}: {path!r} is declared {kind}, but is {value!r}")
            value = int(value)
        low, high = (INT64_MIN, INT64_MAX) if kind.kind == "int" else (0, UINT64_MAX)
        if not low <= value <= high:
            raise InvalidInput(f"{where}: {path!r} is declared {kind}, but {value} is out of range")
        return UInt(value) if kind.kind == "uint" else value
    if kind.kind == "double" and number:
        return float(value)
    if kind.kind in (TIMESTAMP_TYPE, DURATION_TYPE) and isinstance(value, str):
        try:
            return to_timestamp(value) if kind.kind == TIMESTAMP_TYPE else to_duration(value)
        except EvaluationError as error:
            raise InvalidInput(f"{where}: {path!r}: {error.message}") from None
    if kind.kind == "list" and isinstance(value, list):
        return [
            _convert(item, kind.element, where, f"{path}[{index}]")
            for index, item in enumerate(value)
        ]
    if kind.kind == "map" and isinstance(value, dict):
        return {
            _map_key(key, kind.element, where, path): _convert(
                item, kind.value, where, f"{path}[{key!r}]"
            )
            for key, item in value.items()
        }
    return value


def _map_key(key: str, kind: Type, where: str, path: str) -> Any:
    """A JSON object key (always text) as the map's declared key type."""
    if kind.kind not in ("int", "uint"):
        return key
    try:
        number = int(key)
    except ValueError:
        raise InvalidInput(f"{where}: {path!r} has {kind} keys, but a key is {key!r}") from None
    return _convert(number, kind, where, f"{path} key")
