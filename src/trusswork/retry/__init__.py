"""Retries with backoff and jitter for sync and async code.

Usage::

    from trusswork.retry import retry

    @retry(attempts=3, retry_on=ConnectionError)
    def fetch(url: str) -> bytes: ...

``retry`` decorates sync and ``async`` functions alike and keeps their
signatures; :class:`Retrying` retries a block (``for attempt in Retrying():
with attempt: ...``, or ``async for``); :func:`call` retries one call. The
policy (:class:`Policy`) is given as keyword arguments: stop after
``attempts`` or a total ``deadline`` (inherited by nested retries), wait
constant, linear or exponential with ``"full"``, ``"equal"`` or
``"decorrelated"`` jitter, retry on exception types or predicates on
exceptions and results, ``before``/``after`` hooks. Giving up raises
:class:`RetryError` with the attempt history (or the last exception with
``reraise=True``). Cancellation, ``KeyboardInterrupt``, ``SystemExit`` and
``GeneratorExit`` are never retried. Pass a
:class:`~trusswork.core.clock.FakeClock` as ``clock=`` to test retried code
instantly.

This package imports only the standard library and :mod:`trusswork.core`.
"""

from __future__ import annotations

from trusswork.retry._breaker import BreakerMetrics, BreakerState, CircuitBreaker, CircuitOpen
from trusswork.retry._budget import RetryBudget
from trusswork.retry._hedge import hedge, hedged
from trusswork.retry._http import parse_retry_after, retry_after_of, status_of
from trusswork.retry._policy import Attempt, Budget, Policy
from trusswork.retry._retry import (
    AttemptScope,
    AttemptTimeout,
    RetryError,
    Retrying,
    call,
    remaining,
    retry,
)

__all__ = [
    "Attempt",
    "AttemptScope",
    "AttemptTimeout",
    "BreakerMetrics",
    "BreakerState",
    "Budget",
    "CircuitBreaker",
    "CircuitOpen",
    "Policy",
    "RetryBudget",
    "RetryError",
    "Retrying",
    "call",
    "hedge",
    "hedged",
    "parse_retry_after",
    "remaining",
    "retry",
    "retry_after_of",
    "status_of",
]
