"""Pure-Python reference implementations of the four in-process limiters.

This module is the test oracle of :mod:`trusswork.ratelimit` (the compiled
table in ``_table.pyx`` and the Redis Lua scripts must agree with it bit for
bit); it is not public API and is written to be obviously right, not fast:
a ``dict`` of per-key state, no numpy, the formulas of the design contract
(issue 9, "Algorithm semantics" and "Exact arithmetic") transcribed one to one.

Time is integer nanoseconds throughout. Every limiter has
``decide(key, cost, now_ns, commit=True)`` returning
``(allowed, remaining, retry_after_ns, reset_after_ns)``; ``retry_after_ns`` is
:data:`NEVER` when the cost can never pass (it exceeds the capacity), and is 0
exactly when the request is allowed. ``commit=False`` is ``peek``: the same
answer, nothing stored. A committed, allowed decision of ``cost >= 1`` stores
the key's state after the decision; a denied decision stores nothing, and so
does ``cost == 0`` ("look without consuming": it is a peek).

Guarantees with a clock that never goes back (the property tests check them):

* token bucket: the cost admitted in any closed interval of ``T`` ns is at most
  ``T // interval_ns + burst``;
* sliding log: at most ``limit`` units in any half-open interval of ``window_ns``;
* fixed window: at most ``limit`` units per aligned window;
* sliding-window counter: at most ``limit`` units per aligned window, so at most
  ``2 * limit`` in any interval of ``window_ns`` (precisely: the units admitted in
  ``[start + x - window, start + x)`` for an aligned ``start`` and ``0 < x <= window``
  are at most ``limit + prev * x / window``, ``prev`` the previous window's count).

When the clock goes back, the contract's rules apply: the token bucket keeps its
stored theoretical arrival time, windows keep the stored (later) window with
``elapsed = max(0, now - start)``, the sliding log counts every stored unit with
``now < t + window``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Final, Generic, TypeAlias, TypeVar

from trusswork.core.errors import InvalidInput

__all__ = [
    "NEVER",
    "FixedWindowReference",
    "Key",
    "Outcome",
    "SlidingLogReference",
    "SlidingWindowCounterReference",
    "TokenBucketReference",
    "interval_ns_from_rate",
    "now_ns_from_seconds",
    "round_half_away",
    "seconds_from_ns",
    "window_ns_from_seconds",
]

NEVER: Final = -1
"""``retry_after_ns`` of a request whose cost exceeds the capacity (``math.inf`` seconds)."""

NS_PER_SECOND: Final = 1_000_000_000

Key: TypeAlias = str | bytes | int
Outcome: TypeAlias = tuple[bool, int, int, int]
"""``(allowed, remaining, retry_after_ns, reset_after_ns)``."""

_State = TypeVar("_State")


def round_half_away(x: float) -> int:
    """Round ``x`` to the nearest integer, halves away from zero (C ``llround``).

    Exact for every finite double: ``x - floor(x)`` is representable, so no
    addition of 0.5 can round the wrong way.

    Raises
    ------
    InvalidInput
        If ``x`` is NaN or infinite.
    """
    if not math.isfinite(x):
        raise InvalidInput(f"cannot round {x!r} to an integer number of nanoseconds")
    low = math.floor(x)
    fraction = x - low
    if fraction > 0.5 or (fraction == 0.5 and x > 0):
        return low + 1
    return low


def now_ns_from_seconds(seconds: float) -> int:
    """The contract's ``now_ns = llround(clock() * 1e9)``."""
    return round_half_away(seconds * 1e9)


def window_ns_from_seconds(seconds: float) -> int:
    """The contract's ``window_ns = llround(window_seconds * 1e9)``."""
    return round_half_away(seconds * 1e9)


def interval_ns_from_rate(rate: float) -> int:
    """The contract's GCRA emission interval, ``math.ceil(1e9 / rate)`` ns."""
    if not (math.isfinite(rate) and rate > 0):
        raise InvalidInput(f"rate must be a finite number > 0, got {rate!r}")
    return math.ceil(1e9 / rate)


def seconds_from_ns(ns: int) -> float:
    """A ``Decision`` field in seconds: ``ns / 1e9``, :data:`NEVER` -> ``math.inf``."""
    return math.inf if ns == NEVER else ns / 1e9


def _aligned_start(now_ns: int, window_ns: int) -> int:
    # Floor modulo, so windows stay aligned on negative clocks too.
    return now_ns - now_ns % window_ns


def _check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(f"{name} must be an int >= 1, got {value!r}")


def _check_cost(cost: int) -> None:
    if isinstance(cost, bool) or not isinstance(cost, int) or cost < 0:
        raise InvalidInput(f"cost must be an int >= 0, got {cost!r}")


class _Reference(Generic[_State]):
    """Per-key state in a dict; ``sweep`` drops the idle keys.

    A key is idle when its state decides like no state at all (as long as the
    clock does not go back): token bucket ``tat <= now``; sliding log, every unit
    expired; fixed window, count 0 or the window over; counter, both counts 0 or
    both windows over (``start + 2 * window <= now``).
    """

    algorithm: str = ""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._states: dict[Key, _State] = {}

    def __len__(self) -> int:
        """Keys holding state (idle ones included until :meth:`sweep`)."""
        return len(self._states)

    def keys(self) -> list[Key]:
        """The keys holding state, in insertion order."""
        return list(self._states)

    def reset(self, key: Key) -> None:
        """Forget ``key``: its next request sees a full quota."""
        self._states.pop(key, None)

    def is_idle(self, key: Key, now_ns: int) -> bool:
        """True when ``key`` holds no state or :meth:`sweep` at ``now_ns`` would drop it."""
        state = self._states.get(key)
        return state is None or self._idle(state, now_ns)

    def live_keys(self, now_ns: int) -> list[Key]:
        """The keys that :meth:`sweep` at ``now_ns`` would keep."""
        return [key for key, state in self._states.items() if not self._idle(state, now_ns)]

    def sweep(self, now_ns: int) -> int:
        """Drop every idle key at ``now_ns``; return how many were dropped."""
        idle = [key for key, state in self._states.items() if self._idle(state, now_ns)]
        for key in idle:
            del self._states[key]
        return len(idle)

    def decide_many(self, keys: Iterable[Key], costs: Iterable[int], now_ns: int) -> list[Outcome]:
        """Committed decisions one after another at one ``now_ns`` (``acquire_many``)."""
        return [self.decide(key, cost, now_ns) for key, cost in zip(keys, costs, strict=True)]

    def decide(self, key: Key, cost: int, now_ns: int, commit: bool = True) -> Outcome:
        """Decide a request of ``cost`` units for ``key`` at ``now_ns``.

        Parameters
        ----------
        key:
            The limited key.
        cost:
            Units asked for, ``>= 0``.
        now_ns:
            The clock, integer nanoseconds (any sign).
        commit:
            ``False`` to peek: decide without storing anything.

        Returns
        -------
        tuple
            ``(allowed, remaining, retry_after_ns, reset_after_ns)``.

        Raises
        ------
        InvalidInput
            If ``cost`` is not an int ``>= 0``.
        """
        _check_cost(cost)
        return self._decide(key, cost, now_ns, commit)

    def _decide(self, key: Key, cost: int, now_ns: int, commit: bool) -> Outcome:
        raise NotImplementedError

    def _idle(self, state: _State, now_ns: int) -> bool:
        raise NotImplementedError


class TokenBucketReference(_Reference[int]):
    """GCRA: one theoretical arrival time (TAT, ns) per key.

    Parameters
    ----------
    interval_ns:
        Nanoseconds per token, ``ceil(1e9 / rate)`` (see :meth:`from_rate`).
    burst:
        Capacity in tokens; the tolerance is ``tau = burst * interval_ns``.
    """

    algorithm = "token_bucket"

    def __init__(self, interval_ns: int, burst: int) -> None:
        _check_positive("interval_ns", interval_ns)
        _check_positive("burst", burst)
        super().__init__(burst)
        self.interval_ns = interval_ns
        self.burst = burst
        self.tau_ns = burst * interval_ns

    @classmethod
    def from_rate(cls, rate: float, burst: int) -> TokenBucketReference:
        """The bucket ``TokenBucket(rate, burst)`` is: ``rate`` tokens per second."""
        return cls(interval_ns_from_rate(rate), burst)

    def _decide(self, key: Key, cost: int, now_ns: int, commit: bool) -> Outcome:
        interval, tau = self.interval_ns, self.tau_ns
        base = max(self._states.get(key, now_ns), now_ns)
        new_tat = base + cost * interval
        if cost <= self.burst and new_tat - now_ns <= tau:
            if commit and cost > 0:
                self._states[key] = new_tat
            return True, (tau - (new_tat - now_ns)) // interval, 0, new_tat - now_ns
        retry = NEVER if cost > self.burst else new_tat - now_ns - tau
        # Clamped: after the clock went back, base - now can exceed tau.
        remaining = max(0, (tau - (base - now_ns)) // interval)
        return False, remaining, retry, base - now_ns

    def _idle(self, state: int, now_ns: int) -> bool:
        return state <= now_ns


class SlidingLogReference(_Reference[list[int]]):
    """Exact sliding window: one timestamp per admitted unit.

    A unit admitted at ``t`` counts while ``now < t + window_ns``. Units that no
    longer count are forgotten when a request is admitted, so a key holds at
    most ``limit`` timestamps. Units are stamped ``max(newest stamp, now)``, so the
    stamps stay sorted if the clock goes back.
    """

    algorithm = "sliding_window"

    def __init__(self, limit: int, window_ns: int) -> None:
        _check_positive("limit", limit)
        _check_positive("window_ns", window_ns)
        super().__init__(limit)
        self.limit = limit
        self.window_ns = window_ns

    def _decide(self, key: Key, cost: int, now_ns: int, commit: bool) -> Outcome:
        limit, window = self.limit, self.window_ns
        live = sorted(t for t in self._states.get(key, []) if now_ns < t + window)
        count = len(live)
        allowed = cost <= limit and count + cost <= limit
        # Stamps never go below the newest one, so they stay sorted if the clock goes back.
        stamp = max(live[-1], now_ns) if live else now_ns
        after = live + [stamp] * cost if allowed else live
        if not allowed:
            retry = NEVER if cost > limit else live[count + cost - limit - 1] + window - now_ns
        else:
            retry = 0
            if commit and cost > 0:
                self._states[key] = after
        reset = max(after) + window - now_ns if after else 0
        return allowed, limit - len(after), retry, reset

    def _idle(self, state: list[int], now_ns: int) -> bool:
        return all(now_ns >= t + self.window_ns for t in state)


class FixedWindowReference(_Reference[tuple[int, int]]):
    """Fixed windows aligned on multiples of ``window_ns``: state ``(start, count)``."""

    algorithm = "fixed_window"

    def __init__(self, limit: int, window_ns: int) -> None:
        _check_positive("limit", limit)
        _check_positive("window_ns", window_ns)
        super().__init__(limit)
        self.limit = limit
        self.window_ns = window_ns

    def _current(self, key: Key, now_ns: int) -> tuple[int, int]:
        start = _aligned_start(now_ns, self.window_ns)
        stored = self._states.get(key)
        if stored is None or stored[0] < start:
            return start, 0
        return stored  # same window, or a later one when the clock went back

    def _decide(self, key: Key, cost: int, now_ns: int, commit: bool) -> Outcome:
        start, count = self._current(key, now_ns)
        window_end = start + self.window_ns - now_ns
        if cost <= self.limit and count + cost <= self.limit:
            if commit and cost > 0:
                self._states[key] = (start, count + cost)
            count += cost
            return True, self.limit - count, 0, window_end if count > 0 else 0
        retry = NEVER if cost > self.limit else window_end
        return False, self.limit - count, retry, window_end

    def _idle(self, state: tuple[int, int], now_ns: int) -> bool:
        start, count = state
        return count == 0 or start + self.window_ns <= now_ns


class SlidingWindowCounterReference(_Reference[tuple[int, int, int]]):
    """Cloudflare's sliding-window counter: state ``(start, prev, cur)``.

    The previous window's count is assumed spread evenly over it, so the
    estimate is ``prev * (window - elapsed) / window + cur``.
    """

    algorithm = "sliding_window_counter"

    def __init__(self, limit: int, window_ns: int) -> None:
        _check_positive("limit", limit)
        _check_positive("window_ns", window_ns)
        super().__init__(limit)
        self.limit = limit
        self.window_ns = window_ns

    def _current(self, key: Key, now_ns: int) -> tuple[int, int, int]:
        window = self.window_ns
        start = _aligned_start(now_ns, window)
        stored = self._states.get(key)
        if stored is None:
            return start, 0, 0
        stored_start, _, cur = stored
        if stored_start >= start:  # same window, or a later one when the clock went back
            return stored
        if stored_start == start - window:
            return start, cur, 0
        return start, 0, 0

    def _decide(self, key: Key, cost: int, now_ns: int, commit: bool) -> Outcome:
        limit, window = self.limit, self.window_ns
        start, prev, cur = self._current(key, now_ns)
        elapsed = max(0, now_ns - start)
        weight = float(window - elapsed) / float(window)
        estimate = float(prev) * weight + float(cur)
        allowed = cost <= limit and estimate + cost <= limit
        if allowed:
            if commit and cost > 0:
                self._states[key] = (start, prev, cur + cost)
            remaining = max(0, math.floor(limit - (estimate + cost)))
            retry = 0
            cur += cost
        else:
            remaining = max(0, math.floor(limit - estimate))
            if cost > limit:
                retry = NEVER
            elif cur + cost <= limit:
                e = math.ceil(float(window) * (1.0 - float(limit - cur - cost) / float(prev)))
                retry = e - elapsed
            else:
                e2 = (
                    0
                    if cur == 0
                    else max(0, math.ceil(float(window) * (1.0 - float(limit - cost) / float(cur))))
                )
                retry = (window - elapsed) + e2
        if cur > 0:
            reset = (window - elapsed) + window
        elif prev > 0:
            reset = window - elapsed
        else:
            reset = 0
        return allowed, remaining, retry, reset

    def _idle(self, state: tuple[int, int, int], now_ns: int) -> bool:
        # Empty, or both of its windows over. (A key one window old whose count
        # has just become `prev` may hold prev > 0 and cur == 0; it stays.)
        start, prev, cur = state
        return (prev == 0 and cur == 0) or start + 2 * self.window_ns <= now_ns
