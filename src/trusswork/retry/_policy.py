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
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

from trusswork.core.clock import SYSTEM_CLOCK, Clock
from trusswork.core.errors import InvalidInput

WaitKind = Literal["constant", "linear", "exponential"]
Jitter = Literal["full", "equal", "decorrelated"]

_WAIT_KINDS = ("constant", "linear", "exponential")
_JITTERS = ("full", "equal", "decorrelated")


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
    before: Callable[[int], object] | None
    after: Callable[[Attempt], object] | None
    reraise: bool
    clock: Clock
    seed: int | None
    rng: random.Random | None


def _seconds(name: str, value: object, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(f"retry policy {name}= must be a number of seconds, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < 0 or (positive and number == 0):
        need = "positive" if positive else "non-negative"
        raise InvalidInput(
            f"retry policy {name}= must be a finite, {need} number of seconds, got {value!r}"
        )
    return number


def _exception_types(value: object) -> tuple[type[BaseException], ...]:
    types = value if isinstance(value, tuple) else (value,)
    if not types or not all(isinstance(t, type) and issubclass(t, BaseException) for t in types):
        raise InvalidInput(
            f"retry policy retry_on= must be an exception class or a non-empty tuple of them, "
            f"got {value!r}"
        )
    return types


def _callable_or_none(name: str, value: object) -> None:
    if value is not None and not callable(value):
        raise InvalidInput(f"retry policy {name}= must be callable or None, got {value!r}")


@dataclass(frozen=True, slots=True, eq=False, init=False)
class Policy:
    """A validated retry policy; every argument is keyword-only.

    Parameters
    ----------
    attempts:
        Most calls made in total, the first included (at least 1).
    deadline:
        Most seconds a whole run may take, or ``None``. A run never sleeps
        past its deadline; it gives up instead. Nested retries inherit the
        remaining budget of the enclosing one.
    wait, wait_initial, wait_max, wait_min, wait_multiplier, wait_increment:
        The backoff schedule (see the module docstring). ``wait_increment``
        defaults to ``wait_initial``; ``wait_max`` may not be below
        ``wait_min`` or ``wait_initial``, and ``wait_multiplier`` is at least 1.
    jitter:
        ``"full"`` (the default), ``"equal"``, ``"decorrelated"`` or ``None``.
    retry_on:
        Exception class or tuple of them that may be retried (``Exception``).
        ``asyncio.CancelledError``, ``KeyboardInterrupt``, ``SystemExit`` and
        ``GeneratorExit`` are never retried, whatever this says.
    retry_if:
        Predicate on a caught exception; retried only if it returns true.
    retry_if_result:
        Predicate on a returned value; the call is retried while it returns true.
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
    before: Callable[[int], object] | None
    after: Callable[[Attempt], object] | None
    reraise: bool
    clock: Clock
    rng: random.Random

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
        before: Callable[[int], object] | None = None,
        after: Callable[[Attempt], object] | None = None,
        reraise: bool = False,
        clock: Clock = SYSTEM_CLOCK,
        seed: int | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise InvalidInput(f"retry policy attempts= must be an integer >= 1, got {attempts!r}")
        if deadline is not None:
            deadline = _seconds("deadline", deadline, positive=True)
        if wait not in _WAIT_KINDS:
            raise InvalidInput(
                f"retry policy wait= must be one of {', '.join(_WAIT_KINDS)}, got {wait!r}"
            )
        if jitter is not None and jitter not in _JITTERS:
            raise InvalidInput(
                f"retry policy jitter= must be None or one of {', '.join(_JITTERS)}, got {jitter!r}"
            )
        initial = _seconds("wait_initial", wait_initial)
        maximum = _seconds("wait_max", wait_max)
        minimum = _seconds("wait_min", wait_min)
        increment = (
            initial if wait_increment is None else _seconds("wait_increment", wait_increment)
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
        types = _exception_types(retry_on)
        for name, hook in (
            ("retry_if", retry_if),
            ("retry_if_result", retry_if_result),
            ("before", before),
            ("after", after),
        ):
            _callable_or_none(name, hook)
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
        set_(self, "before", before)
        set_(self, "after", after)
        set_(self, "reraise", bool(reraise))
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
