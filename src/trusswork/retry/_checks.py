"""Argument checks shared by the retry package's constructors.

Each raises :class:`~trusswork.core.errors.InvalidInput` naming the owner
(``"retry policy"``, ``"CircuitBreaker"``...), the argument and the value.
"""

from __future__ import annotations

import math

from trusswork.core.errors import InvalidInput
from trusswork.core.metrics import MetricsRegistry


def seconds(owner: str, name: str, value: object, *, positive: bool = False) -> float:
    """``value`` as a finite number of seconds, ``>= 0`` (``> 0`` if ``positive``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(f"{owner} {name}= must be a number of seconds, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < 0 or (positive and number == 0):
        need = "positive" if positive else "non-negative"
        raise InvalidInput(
            f"{owner} {name}= must be a finite, {need} number of seconds, got {value!r}"
        )
    return number


def exception_types(
    owner: str, name: str, value: object, *, empty: bool = False
) -> tuple[type[BaseException], ...]:
    """An exception class or tuple of them as a tuple (an empty one only if ``empty``)."""
    types = value if isinstance(value, tuple) else (value,)
    if (not types and not empty) or not all(
        isinstance(t, type) and issubclass(t, BaseException) for t in types
    ):
        some = "a tuple" if empty else "a non-empty tuple"
        raise InvalidInput(
            f"{owner} {name}= must be an exception class or {some} of them, got {value!r}"
        )
    return types


def callable_or_none(owner: str, name: str, value: object) -> None:
    """Reject a ``value`` that is neither callable nor None."""
    if value is not None and not callable(value):
        raise InvalidInput(f"{owner} {name}= must be callable or None, got {value!r}")


def name_or_none(owner: str, value: object) -> None:
    """Reject a ``name=`` that is not None or a non-empty string."""
    if value is not None and (not isinstance(value, str) or not value):
        raise InvalidInput(f"{owner} name= must be a non-empty string, got {value!r}")


def registry_or_none(owner: str, value: object) -> None:
    """Reject a ``registry=`` that is not None or a MetricsRegistry."""
    if value is not None and not isinstance(value, MetricsRegistry):
        raise InvalidInput(f"{owner} registry= must be a MetricsRegistry, got {value!r}")
