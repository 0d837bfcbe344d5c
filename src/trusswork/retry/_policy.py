"""Retry policies: when to stop, how long to wait, what to retry, and the hooks.

A :class:`Policy` is validated once, at construction, and then only read.
The wait before retry ``n`` (``n = 1`` after the first failure) is, before
jitter, ``wait_initial`` (constant), ``wait_initial + wait_increment * (n - 1)``
(linear) or ``wait_initial * wait_multiplier ** (n - 1)`` (exponential),
capped at ``wait_max``. Jitter follows AWS's "Exponential Backoff and
Jitter" study: ``"full"`` draws from ``[0, d]``, ``"equal"`` from
``[d / 2, d]``, and ``"decorrelated"`` from ``[wait_initial, 3 * previous]``
capped at ``wait_max`` (it ignores the ``wait`` kind). The result is raised
to ``wait_min`` if below it.

Server pushback (``pushback=True``, the default) can lengthen a wait: an
error with a ``retry_after`` attribute (seconds), or a response (or an
error's ``.response``) with a ``Retry-After`` header, asks for at least that
long; a hint above ``max_pushback`` or a server saying "do not retry" ends
the run.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypedDict, cast, runtime_checkable

from trusswork.core.clock import SYSTEM_CLOCK, Clock
from trusswork.core.errors import InvalidInput
from trusswork.core.metrics import MetricsRegistry
from trusswork.retry._checks import (
    callable_or_none,
    exception_types,
    seconds,
)

WaitKind = Literal["constant", "linear", "exponential"]
Jitter = Literal["full", "equal", "decorrelated"]

_WAIT_KINDS = ("constant", "linear", "exponential")
_JITTERS = ("full", "equal", "decorrelated")
_OWNER = "retry policy"


@dataclass(frozen=True, slots=True)
class Attempt:
    """One finished attempt, as kept in :attr:`RetryError.attempts`.

    Attributes
    ----------
    number:
        1 for the first call, 2 for the first retry, and so on.
    error:
        The exception the attempt raised, or ``None`` if it returned.
    result:
        What the attempt returned (``None`` if it raised); set when a
        ``retry_if_result`` predicate asked for a retry.
    elapsed:
        Seconds on the policy's clock from the start of the retry run to the
        end of this attempt. The run starts when the first call starts if the
        policy has a deadline, otherwise when the first failure is seen (the
        success path reads no clock), so then attempt 1 has ``elapsed == 0``.
    """

    number: int
    error: BaseException | None
    result: Any
    elapsed: float

    @property
    def failed(self) -> bool:
        """True if the attempt raised."""
        return self.error is not None


@runtime_checkable
class Budget(Protocol):
    """What a policy needs of a retry budget (:class:`~trusswork.retry.RetryBudget`)."""

    def record_success(self) -> None:
        """Count a successful call."""

    def record_failure(self) -> bool:
        """Count a failed attempt; return whether a retry is allowed now."""

    async def arecord_success(self) -> None:
        """:meth:`record_success` for async code."""

    async def arecord_failure(self) -> bool:
        """:meth:`record_failure` for async code."""


class PolicyOptions(TypedDict, total=False):
    """The keyword arguments of :class:`Policy`, shared by ``retry`` and ``Retrying``."""

    attempts: int
    deadline: float | None
    wait: WaitKind
    wait_initial: float
    wait_max: float
    wait_min: float
    wait_multiplier: float
    wait_increment: float | None
    jitter: Jitter | None
    retry_on: type[BaseException] | tuple[type[BaseException], ...]
    retry_if: Callable[[BaseException], bool] | None
    retry_if_result: Callable[[Any], bool] | None
    retry_on_status: Collection[int] | None
    pushback: bool
    max_pushback: float
    attempt_timeout: float | None
    budget: Budget | None
    before: Callable[[int], object] | None
    after: Callable[[Attempt], object] | None
    reraise: bool
    name: str | None
    registry: MetricsRegistry | None
    clock: Clock
    seed: int | None
    rng: random.Random | None


def _statuses(value: object) -> frozenset[int] | None:
    if value is None:
        return None
    statuses: frozenset[object]
    try:
        statuses = frozenset(value)  # type: ignore[call-overload]
    except TypeError:
        statuses = frozenset((value,))
    if not statuses or not all(
        isinstance(s, int) and not isinstance(s, bool) and 100 <= s <= 599 for s in statuses
    ):
        raise InvalidInput(
            f"retry policy retry_on_status= must be a non-empty collection of HTTP statuses "
            f"(100-599), got {value!r}"
        )
    return cast(frozenset[int], statuses)


class _StatusCheck:
    """``retry_on_status`` (and ``retry_if_result``) as one picklable predicate on results."""

    __slots__ = ("predicate", "status_of", "statuses")

    def __init__(self, statuses: frozenset[int], predicate: Callable[[Any], bool] | None) -> None:
        from trusswork.retry._http import status_of  # once here, not on every result

        self.statuses = statuses
        self.predicate = predicate
        self.status_of = status_of

    def __call__(self, result: Any) -> bool:
        if self.status_of(result) in self.statuses:
            return True
        return self.predicate is not None and bool(self.predicate(result))

    def __reduce__(self) -> tuple[Any, ...]:
        return (_StatusCheck, (self.statuses, self.predicate))


def _result_check(
    predicate: Callable[[Any], bool] | None, statuses: frozenset[int] | None
) -> Callable[[Any], bool] | None:
    if statuses is None:
        return predicate
    return _StatusCheck(statuses, predicate)


@dataclass(frozen=True, slots=True, eq=False, init=False)
class Policy:
    """A validated retry policy; every argument is keyword-only.

    Parameters
    ----------
    attempts:
        Most calls made in total, the first included (at least 1).
    deadline:
        Most seconds a whole run may take, or ``None``. A run never sleeps
        past its deadline; it gives up instead, and an ``async`` attempt
        still running at the deadline is cancelled. Nested retries inherit
        the remaining budget of the enclosing one.
    wait, wait_initial, wait_max, wait_min, wait_multiplier, wait_increment:
        The backoff schedule (see the module docstring). ``wait_increment``
        defaults to ``wait_initial``; ``wait_max`` may not be below
        ``wait_min`` or ``wait_initial``, and ``wait_multiplier`` is at least 1.
    jitter:
        ``"full"`` (the default), ``"equal"``, ``"decorrelated"`` or ``None``.
    retry_on:
        Exception class or tuple of them that may be retried (``Exception``).
        ``asyncio.CancelledError``, ``KeyboardInterrupt``, ``SystemExit`` and
        ``GeneratorExit`` are never retried, whatever this says, and a
        :class:`~trusswork.retry.RetryError` (a nested run that already gave
        up) only if this names ``RetryError`` itself.
    retry_if:
        Predicate on a caught exception; retried only if it returns true.
    retry_if_result:
        Predicate on a returned value; the call is retried while it returns true.
    retry_on_status:
        HTTP statuses to retry (e.g. ``{429, 503}``), or ``None``. A result
        with a ``status_code`` (or integer ``status``) attribute in the set is
        retried; an error carrying a status (itself or on its ``.response``,
        like ``httpx.HTTPStatusError``) is retried only if its status is in
        the set. Other errors follow ``retry_on``/``retry_if``.
    pushback:
        Honour server pushback (see the module docstring); on by default.
    max_pushback:
        Longest server-requested wait honoured, in seconds (300); a longer
        ``Retry-After`` ends the run at once instead of blocking for it.
    attempt_timeout:
        Seconds one attempt may take, or ``None``. ``async`` attempts are
        cancelled when it (or the run's deadline, if sooner) passes, which
        raises :class:`~trusswork.retry.AttemptTimeout`, a retryable
        ``TimeoutError``. Sync code cannot be interrupted: there it is the
        budget that :func:`~trusswork.retry.remaining` reports to the
        attempt (the integrations pass it on as socket timeouts).
    budget:
        A :class:`~trusswork.retry.RetryBudget` shared by the calls to one
        dependency: every success refills it a little, every retryable
        failure drains it, and retries stop while it is below half.
    before:
        Called with the number of the attempt about to start, before each
        retry (never before the first call, which keeps success free).
    after:
        Called with the :class:`Attempt` record of each failed attempt.
        Exceptions a hook raises are logged on the ``trusswork.retry``
        logger and never replace the error being retried.
    reraise:
        On giving up, raise the last exception itself instead of
        :class:`RetryError` (when the last attempt raised).
    name:
        The name of the retried operation in metrics, logs and errors (the
        decorated function's qualified name by default).
    registry:
        Where the retry counters go (:data:`trusswork.core.metrics.REGISTRY`
        by default).
    clock:
        Where time is read and slept; a ``FakeClock`` makes tests instant.
    seed, rng:
        Randomness for jitter: a seed, or a ``random.Random`` to draw from
        (not both). Without either, a generator seeded from the OS.

    Raises
    ------
    InvalidInput
        If an argument is out of range or of the wrong kind.
    """

    attempts: int
    deadline: float | None
    wait: WaitKind
    wait_initial: float
    wait_max: float
    wait_min: float
    wait_multiplier: float
    wait_increment: float
    jitter: Jitter | None
    retry_on: tuple[type[BaseException], ...]
    retry_if: Callable[[BaseException], bool] | None
    retry_if_result: Callable[[Any], bool] | None
    retry_on_status: frozenset[int] | None
    pushback: bool
    max_pushback: float
    attempt_timeout: float | None
    budget: Budget | None
    before: Callable[[int], object] | None
    after: Callable[[Attempt], object] | None
    reraise: bool
    name: str | None
    registry: MetricsRegistry | None
    clock: Clock
    rng: random.Random
    result_check: Callable[[Any], bool] | None
    """``retry_if_result`` and ``retry_on_status`` as one predicate (None: results are final)."""

    def __init__(
        self,
        *,
        attempts: int = 3,
        deadline: float | None = None,
        wait: WaitKind = "exponential",
        wait_initial: float = 0.1,
        wait_max: float = 10.0,
        wait_min: float = 0.0,
        wait_multiplier: float = 2.0,
        wait_increment: float | None = None,
        jitter: Jitter | None = "full",
        retry_on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
        retry_if: Callable[[BaseException], bool] | None = None,
        retry_if_result: Callable[[Any], bool] | None = None,
        retry_on_status: Collection[int] | None = None,
        pushback: bool = True,
        max_pushback: float = 300.0,
        attempt_timeout: float | None = None,
        budget: Budget | None = None,
        before: Callable[[int], object] | None = None,
        after: Callable[[Attempt], object] | None = None,
        reraise: bool = False,
        name: str | None = None,
        registry: MetricsRegistry | None = None,
        clock: Clock = SYSTEM_CLOCK,
        seed: int | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise InvalidInput(f"retry policy attempts= must be an integer >= 1, got {attempts!r}")
        if deadline is not None:
            deadline = seconds(_OWNER, "deadline", deadline, positive=True)
        if wait not in _WAIT_KINDS:
            raise InvalidInput(
                f"retry policy wait= must be one of {', '.join(_WAIT_KINDS)}, got {wait!r}"
            )
        if jitter is not None and jitter not in _JITTERS:
            raise InvalidInput(
                f"retry policy jitter= must be None or one of {', '.join(_JITTERS)}, got {jitter!r}"
            )
        initial = seconds(_OWNER, "wait_initial", wait_initial)
        maximum = seconds(_OWNER, "wait_max", wait_max)
        minimum = seconds(_OWNER, "wait_min", wait_min)
        increment = (
            initial if wait_increment is None else seconds(_OWNER, "wait_increment", wait_increment)
        )
        if maximum < minimum:
            raise InvalidInput(f"retry policy wait_max={wait_max!r} is below wait_min={wait_min!r}")
        if maximum < initial:
            raise InvalidInput(
                f"retry policy wait_max={wait_max!r} is below wait_initial={wait_initial!r}"
            )
        if (
            isinstance(wait_multiplier, bool)
            or not isinstance(wait_multiplier, (int, float))
            or not math.isfinite(wait_multiplier)
            or wait_multiplier < 1
        ):
            raise InvalidInput(
                f"retry policy wait_multiplier= must be a finite number >= 1, "
                f"got {wait_multiplier!r}"
            )
        types = exception_types(_OWNER, "retry_on", retry_on)
        for option, hook in (
            ("retry_if", retry_if),
            ("retry_if_result", retry_if_result),
            ("before", before),
            ("after", after),
        ):
            callable_or_none(_OWNER, option, hook)
        statuses = _statuses(retry_on_status)
        pushback_cap = seconds(_OWNER, "max_pushback", max_pushback)
        if attempt_timeout is not None:
            attempt_timeout = seconds(_OWNER, "attempt_timeout", attempt_timeout, positive=True)
        if budget is not None and not isinstance(budget, Budget):
            raise InvalidInput(
                f"retry policy budget= must be a RetryBudget (record_success/record_failure), "
                f"got {budget!r}"
            )
        if name is not None and (not isinstance(name, str) or not name):
            raise InvalidInput(f"retry policy name= must be a non-empty string, got {name!r}")
        if registry is not None and not isinstance(registry, MetricsRegistry):
            raise InvalidInput(
                f"retry policy registry= must be a MetricsRegistry, got {registry!r}"
            )
        if seed is not None and rng is not None:
            raise InvalidInput("retry policy takes seed= or rng=, not both")
        if rng is not None and not isinstance(rng, random.Random):
            raise InvalidInput(f"retry policy rng= must be a random.Random, got {rng!r}")
        set_ = object.__setattr__
        set_(self, "attempts", attempts)
        set_(self, "deadline", deadline)
        set_(self, "wait", wait)
        set_(self, "wait_initial", initial)
        set_(self, "wait_max", maximum)
        set_(self, "wait_min", minimum)
        set_(self, "wait_multiplier", float(wait_multiplier))
        set_(self, "wait_increment", increment)
        set_(self, "jitter", jitter)
        set_(self, "retry_on", types)
        set_(self, "retry_if", retry_if)
        set_(self, "retry_if_result", retry_if_result)
        set_(self, "retry_on_status", statuses)
        set_(self, "pushback", bool(pushback))
        set_(self, "max_pushback", pushback_cap)
        set_(self, "attempt_timeout", attempt_timeout)
        set_(self, "budget", budget)
        set_(self, "before", before)
        set_(self, "after", after)
        set_(self, "reraise", bool(reraise))
        set_(self, "name", name)
        set_(self, "registry", registry)
        set_(self, "result_check", _result_check(retry_if_result, statuses))
        set_(self, "clock", clock)
        set_(self, "rng", rng if rng is not None else random.Random(seed))

    def base_wait(self, retry: int) -> float:
        """The wait before retry ``retry`` (1-based) without jitter, capped at ``wait_max``."""
        step = retry - 1
        if self.wait == "constant":
            delay = self.wait_initial
        elif self.wait == "linear":
            delay = self.wait_initial + self.wait_increment * step
        else:
            try:
                delay = self.wait_initial * self.wait_multiplier**step
            except OverflowError:
                delay = math.inf
        return min(self.wait_max, delay)

    def next_wait(self, retry: int, previous: float) -> float:
        """The jittered wait before retry ``retry``; ``previous``: the last wait (decorrelated)."""
        jitter = self.jitter
        if jitter == "decorrelated":
            low = self.wait_initial
            high = max(low, previous * 3)
            delay = min(self.wait_max, self.rng.uniform(low, high))
        else:
            delay = self.base_wait(retry)
            if jitter == "full":
                delay = self.rng.uniform(0.0, delay)
            elif jitter == "equal":
                delay = delay / 2 + self.rng.uniform(0.0, delay / 2)
        return max(self.wait_min, delay)
