"""Time as a dependency: a real clock for production, a fake one for tests.

Everything in trusswork that measures or waits (timeouts, leases, TTLs,
rate limits, retries, histogram timers) takes a :class:`Clock` instead of
calling :mod:`time` directly, so tests can drive time by hand.

Two readings, with different guarantees:

* ``monotonic()`` / ``monotonic_ns()`` never go backwards; use them for
  durations, deadlines and timeouts. Their zero point is arbitrary.
* ``time()`` / ``time_ns()`` are wall-clock seconds since the Unix epoch; use
  them for timestamps people read or other machines compare. They may jump,
  backwards too, when the system clock is stepped (NTP, an operator).

:class:`SystemClock` reads the operating system (:data:`SYSTEM_CLOCK` is the
shared instance). :class:`FakeClock` stands still until a test moves it with
:meth:`FakeClock.advance` or until code under test sleeps on it, which
returns at once after moving time forward; every requested sleep is recorded
in :attr:`FakeClock.sleeps` so a test can assert a backoff schedule. Both
clocks reject negative or non-finite sleep durations with
:class:`~trusswork.core.errors.InvalidInput`.
"""

from __future__ import annotations

import math
import threading
import time as _time
from typing import Protocol, final

from trusswork.core.errors import InvalidInput

__all__ = ["SYSTEM_CLOCK", "Clock", "FakeClock", "SystemClock"]


class Clock(Protocol):
    """What trusswork code needs from time; implemented by both clocks here."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (arbitrary zero)."""
        ...

    def monotonic_ns(self) -> int:
        """:meth:`monotonic` in integer nanoseconds."""
        ...

    def time(self) -> float:
        """Wall-clock seconds since the Unix epoch; may jump either way."""
        ...

    def time_ns(self) -> int:
        """:meth:`time` in integer nanoseconds."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block the calling thread for ``seconds``."""
        ...

    async def asleep(self, seconds: float) -> None:
        """Suspend the calling task for ``seconds``."""
        ...


def _check_duration(seconds: float, what: str) -> None:
    if not (seconds >= 0 and math.isfinite(seconds)):
        raise InvalidInput(
            f"{what} needs a finite, non-negative number of seconds, got {seconds!r}"
        )


@final
class SystemClock:
    """The operating system's clocks (:func:`time.monotonic`, :func:`time.time`).

    Readings are the :mod:`time` functions themselves, so they cost nothing
    beyond the system call. Prefer the shared :data:`SYSTEM_CLOCK`.
    """

    __slots__ = ()

    monotonic = staticmethod(_time.monotonic)
    monotonic_ns = staticmethod(_time.monotonic_ns)
    time = staticmethod(_time.time)
    time_ns = staticmethod(_time.time_ns)

    def sleep(self, seconds: float) -> None:
        """Block the calling thread for ``seconds`` (:func:`time.sleep`).

        Raises
        ------
        InvalidInput
            If ``seconds`` is negative, NaN or infinite.
        """
        _check_duration(seconds, "sleep")
        _time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        """Suspend the calling task for ``seconds`` (:func:`asyncio.sleep`).

        Raises
        ------
        InvalidInput
            If ``seconds`` is negative, NaN or infinite.
        """
        _check_duration(seconds, "asleep")
        import asyncio  # lazily: importing trusswork.core must not load asyncio

        await asyncio.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK = SystemClock()
"""The process-wide real clock; the default wherever a ``clock=`` is optional."""


def _to_ns(seconds: float) -> int:
    # Time is kept in integer nanoseconds so that ten advance(0.1) calls land
    # exactly on 1.0 instead of accumulating float error.
    return round(seconds * 1_000_000_000)


@final
class FakeClock:
    """A clock that moves only when told to; for tests of timed code.

    Parameters
    ----------
    wall:
        Initial wall-clock reading, seconds since the epoch. The default is
        2023-11-14T22:13:20Z.
    monotonic:
        Initial monotonic reading, seconds.

    Attributes
    ----------
    sleeps:
        Every duration passed to :meth:`sleep` or :meth:`asleep`, in call
        order, as given. Tests assert backoff schedules against it.

    Notes
    -----
    Time is stored in integer nanoseconds, so readings are exact to the
    nanosecond and repeated small advances do not drift. All methods are
    thread-safe. ``sleep`` and ``asleep`` never block on real time: they
    advance both readings by the requested amount and return (``asleep``
    yields to the event loop once, so other tasks get a turn).
    """

    __slots__ = ("_lock", "_mono_ns", "_wall_ns", "sleeps")

    def __init__(self, *, wall: float = 1_700_000_000.0, monotonic: float = 0.0) -> None:
        for name, value in (("wall", wall), ("monotonic", monotonic)):
            if not math.isfinite(value):
                raise InvalidInput(f"FakeClock {name}= must be a finite number, got {value!r}")
        self._lock = threading.Lock()
        self._wall_ns = _to_ns(wall)
        self._mono_ns = _to_ns(monotonic)
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        """Seconds on the fake monotonic clock."""
        return self._mono_ns / 1_000_000_000

    def monotonic_ns(self) -> int:
        """The fake monotonic clock in integer nanoseconds."""
        return self._mono_ns

    def time(self) -> float:
        """Seconds on the fake wall clock."""
        return self._wall_ns / 1_000_000_000

    def time_ns(self) -> int:
        """The fake wall clock in integer nanoseconds."""
        return self._wall_ns

    def advance(self, seconds: float) -> None:
        """Move both the monotonic and the wall clock forward by ``seconds``.

        Raises
        ------
        InvalidInput
            If ``seconds`` is negative, NaN or infinite: the monotonic clock
            never goes backwards (use :meth:`set_wall` to step the wall clock).
        """
        _check_duration(seconds, "advance")
        step = _to_ns(seconds)
        with self._lock:
            self._mono_ns += step
            self._wall_ns += step

    def set_wall(self, t: float) -> None:
        """Step the wall clock to ``t`` seconds since the epoch, like an NTP step.

        ``t`` may be earlier than the current reading. The monotonic clock
        does not move.

        Raises
        ------
        InvalidInput
            If ``t`` is NaN or infinite.
        """
        if not math.isfinite(t):
            raise InvalidInput(f"set_wall needs a finite time, got {t!r}")
        with self._lock:
            self._wall_ns = _to_ns(t)

    def sleep(self, seconds: float) -> None:
        """Record the request in :attr:`sleeps` and advance by ``seconds`` at once.

        Raises
        ------
        InvalidInput
            If ``seconds`` is negative, NaN or infinite (nothing is recorded).
        """
        _check_duration(seconds, "sleep")
        step = _to_ns(seconds)
        with self._lock:
            self.sleeps.append(seconds)
            self._mono_ns += step
            self._wall_ns += step

    async def asleep(self, seconds: float) -> None:
        """Like :meth:`sleep`, then yield to the event loop once.

        Raises
        ------
        InvalidInput
            If ``seconds`` is negative, NaN or infinite (nothing is recorded).
        """
        self.sleep(seconds)
        import asyncio  # lazily: importing trusswork.core must not load asyncio

        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"FakeClock(wall={self.time()!r}, monotonic={self.monotonic()!r})"
