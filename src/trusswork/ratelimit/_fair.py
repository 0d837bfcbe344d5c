"""Weighted fair sharing of one capacity among the keys that are using it.

:class:`FairShare` admits at most what a token bucket of ``rate`` per second
and ``burst`` would admit in total, and divides that capacity among the keys
*active* now (keys that asked within the last ``idle_after`` seconds). Key
``k`` of weight ``w_k`` is entitled to its fair share ``rate * w_k / W`` (``W``
the sum of the active keys' weights); what a key leaves unused is lent to keys
that want more. A key that stays under its share is never starved by heavy
keys, and heavy keys take what is left: max-min fairness.

How it works
------------
Each active key has its own bucket that fills at its fair rate
``rate * w_k / W`` up to its share ``reserve * w_k / W`` of the *reserve* (a
part of the burst kept for keys under their share). Beside them runs one
global GCRA token bucket ``G`` (the contract's token bucket: emission interval
``I = ceil(1e9 / rate)`` ns, capacity ``burst``). A request of cost ``c`` from
key ``k`` passes

* on its own share, when ``k``'s bucket holds ``c``: both buckets pay ``c``;
* by borrowing, otherwise, when ``G - c >= R - x`` for ``x`` the tokens in
  ``k``'s bucket and ``R`` a running upper bound of ``S``, the sum of all the
  keys' buckets: ``k``'s bucket is emptied and ``G`` pays ``c``.

``R`` never exceeds ``reserve`` (the buckets hold at most that together) and
is kept cheaply: it grows at ``rate`` (the fair rates add up to ``rate``) up
to ``reserve`` and drops by what the buckets pay. The invariant is
``G >= S``: spending on one's own share lowers both sides by ``c``, borrowing
leaves ``G - c >= R - x >= S - x``, the buckets refill no faster than ``G``,
and ``G`` stops refilling only when full (``burst > reserve >= S``). Hence a
key whose bucket holds ``c`` always finds ``c`` in ``G``, whatever the heavy
keys did before.

Guarantees
----------
* Capacity: the admitted requests, all keys together, always conform to
  ``TokenBucket(rate, burst)``: at most ``burst + T / I`` units in any ``T`` ns.
* Fairness: while the active set does not change, a key whose requests
  conform to a token bucket of rate ``rate * w_k / W`` and burst
  ``reserve * w_k / W`` (in any interval of ``T`` seconds it asks for at most
  ``reserve * w_k / W + rate * w_k / W * T`` units, counted from a full
  bucket) is admitted every time, whatever the other keys ask. A key's share
  of the reserve must hold its cost, so with ``n`` equal keys the reserve must
  be at least ``n * cost``.
* Lending: what keys under their share do not use flows to keys over their
  share, first come, first served (not in proportion to weight); the lent
  capacity is never the part of ``G`` that backs the buckets.
* Joining: a key that becomes active starts with a full bucket when the free
  part of ``G`` (beyond ``R``) and the unused buckets of the others pay
  for it, otherwise with what they pay for (possibly empty; it fills at the
  key's fair rate). Joining shrinks every share (``W`` grows) at once.
* Leaving: a key idle for ``idle_after`` seconds (at least ``reserve / rate``,
  so its bucket is full and gives nothing back) leaves the active set and its
  share goes back to the others.

Arithmetic is exact: integer nanoseconds and integer weights (in units of
1/65536: a float weight is rounded to the nearest), so the guarantees above
hold to the unit, with no rounding slack.

Complexity: O(1) per decision, amortised (expiring idle keys is paid for by
the requests that made them active). A lock makes the object thread-safe.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeAlias

from trusswork.core.errors import InvalidInput
from trusswork.ratelimit._table import Decision

__all__ = ["FairShare"]

Key: TypeAlias = str | bytes | int
# Mapping is invariant in its key type: Any lets a dict[str, float] through.
WeightSpec: TypeAlias = Mapping[Any, float] | Callable[[Key], float]

_NS_PER_SECOND: Final = 1_000_000_000
_WEIGHT_UNIT: Final = 1 << 16
"""Weights are kept as integers in units of 1/65536, so all arithmetic is integer."""


def _now_ns(seconds: float) -> int:
    # The contract's now_ns = llround(clock() * 1e9): halves away from zero.
    x = seconds * 1e9
    if not math.isfinite(x):
        raise InvalidInput(f"FairShare clock returned {seconds!r}, not a finite number of seconds")
    low = math.floor(x)
    fraction = x - low
    if fraction > 0.5 or (fraction == 0.5 and x > 0):
        return low + 1
    return low


def _ceil_div(a: int, b: int) -> int:
    return -((-a) // b)


def _check_key(key: object) -> None:
    if isinstance(key, bool) or not isinstance(key, str | bytes | int):
        raise InvalidInput(f"a FairShare key must be str, bytes or int, not {type(key).__name__}")


def _check_cost(cost: object) -> int:
    if isinstance(cost, bool) or not isinstance(cost, int) or cost < 0:
        raise InvalidInput(f"FairShare cost must be an int >= 0, got {cost!r}")
    return cost


def _weight_units(key: Key, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"FairShare weight of key {key!r} must be a number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise InvalidInput(f"FairShare weight of key {key!r} must be finite and > 0, got {value!r}")
    units = value * _WEIGHT_UNIT if isinstance(value, int) else round(value * _WEIGHT_UNIT)
    if units < 1:
        raise InvalidInput(
            f"FairShare weight of key {key!r} is below the resolution 1/{_WEIGHT_UNIT}: {value!r}"
        )
    return units


class _Member:
    """An active key: its weight and its bucket.

    ``fill`` is the bucket at time ``anchor`` in weight-nanoseconds: the bucket
    holds ``fill / (W * I)`` units and gains ``weight`` per nanosecond up to
    ``weight * horizon``. Keeping it in these units makes it independent of
    ``W``, so a change of the active set rescales every bucket at once.
    """

    __slots__ = ("anchor", "fill", "weight")

    def __init__(self, weight: int, fill: int, anchor: int) -> None:
        self.weight = weight
        self.fill = fill
        self.anchor = anchor


class FairShare:
    """A capacity of ``rate`` per second (bursts of ``burst``) shared fairly by weight.

    Keys under their fair share ``rate * w / W`` get everything they ask for;
    keys over it share what the others leave (see the module documentation
    for the exact guarantees).

    Parameters
    ----------
    rate:
        Units per second admitted over all keys together (> 0).
    burst:
        Capacity of the shared token bucket, int >= 2.
    reserve:
        Part of ``burst`` backing the keys' own buckets, ``1 <= reserve < burst``;
        default ``burst // 2``. Key ``k``'s bucket holds ``reserve * w_k / W``
        units, so a bigger reserve lets more keys (or costlier requests) be
        guaranteed; heavy keys can borrow at least ``burst - reserve`` at once.
    weights:
        A mapping from key to weight or a callable ``weight(key)``; a key's
        weight is read when it becomes active. Missing keys weigh 1. Weights
        are finite numbers >= 1/65536 (their resolution).
    idle_after:
        Seconds without a request after which a key leaves the active set;
        default and minimum ``reserve / rate`` (the time a bucket takes to fill).
    clock:
        Zero-argument callable returning seconds; default :func:`time.monotonic`.
        A clock that goes back is treated as standing still.

    Raises
    ------
    InvalidInput
        If a parameter is out of range.

    Examples
    --------
    >>> from trusswork.core.clock import FakeClock
    >>> clock = FakeClock()
    >>> fair = FairShare(10, 20, weights={"gold": 3}, clock=clock.monotonic)
    >>> fair.acquire("gold").allowed
    True
    >>> fair.fair_rate("gold"), fair.fair_rate("silver")
    (10.0, 2.5)
    """

    algorithm: Final = "fair_share"

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        reserve: int | None = None,
        weights: WeightSpec | None = None,
        idle_after: float | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if isinstance(rate, bool) or not isinstance(rate, int | float):
            raise InvalidInput(f"FairShare rate must be a number, got {rate!r}")
        if not (math.isfinite(rate) and rate > 0):
            raise InvalidInput(f"FairShare rate must be a finite number > 0, got {rate!r}")
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 2:
            raise InvalidInput(f"FairShare burst must be an int >= 2, got {burst!r}")
        if reserve is None:
            reserve = burst // 2
        if isinstance(reserve, bool) or not isinstance(reserve, int) or not 1 <= reserve < burst:
            raise InvalidInput(
                f"FairShare reserve must be an int with 1 <= reserve < burst ({burst}), "
                f"got {reserve!r}"
            )
        interval = math.ceil(1e9 / rate)
        horizon = reserve * interval
        if idle_after is None:
            idle_ns = horizon
        else:
            if not (isinstance(idle_after, int | float) and math.isfinite(idle_after)):
                raise InvalidInput(
                    f"FairShare idle_after must be finite seconds, got {idle_after!r}"
                )
            idle_ns = max(math.ceil(idle_after * 1e9), 0)
            if idle_ns < horizon:
                raise InvalidInput(
                    f"FairShare idle_after={idle_after!r} is shorter than reserve / rate = "
                    f"{horizon / 1e9!r} s, the time a key's bucket takes to fill"
                )
        if weights is not None and not (isinstance(weights, Mapping) or callable(weights)):
            raise InvalidInput(
                f"FairShare weights must be a mapping or a callable, not {type(weights).__name__}"
            )
        if clock is not None and not callable(clock):
            raise InvalidInput(f"FairShare clock must be callable, not {type(clock).__name__}")
        self._rate = float(rate)
        self._burst = burst
        self._reserve = reserve
        self._interval = interval
        self._tau = burst * interval
        self._horizon = horizon
        self._idle_ns = idle_ns
        self._weights = weights
        self._clock: Callable[[], float] = clock if clock is not None else time.monotonic
        self._lock = threading.Lock()
        self._members: OrderedDict[Key, _Member] = OrderedDict()
        self._seen: dict[Key, int] = {}
        self._total_weight: int = 0
        # Sum of the members' `fill` at their anchors: a lower bound of the sum of
        # their buckets now (buckets only grow between decisions).
        self._total_fill: int = 0
        # An upper bound of S (the sum of the buckets, in ns of the shared bucket) as of
        # `_reserved_at`: S grows at most 1 ns per ns (the fair rates add up to `rate`)
        # and never beyond the horizon, so the bound grows the same way.
        self._reserved = 0
        self._reserved_at = 0
        self._tat = 0
        self._last_now: int | None = None

    # -- properties ------------------------------------------------------------------------

    @property
    def rate(self) -> float:
        """Units per second over all keys together."""
        return self._rate

    @property
    def burst(self) -> int:
        """Capacity of the shared bucket."""
        return self._burst

    @property
    def limit(self) -> int:
        """The quota reported in decisions: the shared burst."""
        return self._burst

    @property
    def reserve(self) -> int:
        """Part of the burst that backs the active keys' own buckets."""
        return self._reserve

    def __len__(self) -> int:
        """Number of keys active now."""
        with self._lock:
            self._sweep(self._now())
            return len(self._members)

    def __repr__(self) -> str:
        return (
            f"FairShare(rate={self._rate!r}, burst={self._burst}, reserve={self._reserve}, "
            f"active={len(self._members)})"
        )

    # -- public operations ----------------------------------------------------------------

    def acquire(self, key: Key, cost: int = 1) -> Decision:
        """Decide one request of ``cost`` units from ``key`` and spend it if allowed.

        Any request, allowed or not, keeps ``key`` active.

        Returns
        -------
        Decision
            ``remaining``: units ``key`` could still get now (its own bucket
            plus what it could borrow); ``retry_after``: seconds until this
            request would pass if no other key spent meanwhile (``math.inf``
            when ``cost > burst``); ``reset_after``: seconds until ``key``'s
            bucket and the shared one are full; ``limit``: ``burst``.

        Raises
        ------
        InvalidInput
            If ``key`` is not str, bytes or int, or ``cost`` is not an int >= 0.
        """
        return self._decide(key, cost, commit=True)

    def peek(self, key: Key, cost: int = 1) -> Decision:
        """Like :meth:`acquire`, but change nothing (``key`` does not become active)."""
        return self._decide(key, cost, commit=False)

    def fair_rate(self, key: Key) -> float:
        """Units per second ``key`` is guaranteed now: ``rate * w / W``.

        For a key that is not active, the share it would get on becoming active.
        """
        _check_key(key)
        with self._lock:
            self._sweep(self._now())
            member = self._members.get(key)
            if member is None:
                weight = self._weight_of(key)
                total = self._total_weight + weight
            else:
                weight, total = member.weight, self._total_weight
            return _NS_PER_SECOND / self._interval * weight / total

    def weight(self, key: Key) -> float:
        """The weight of ``key`` (as used: read when it became active)."""
        _check_key(key)
        with self._lock:
            member = self._members.get(key)
            units = member.weight if member is not None else self._weight_of(key)
            return units / _WEIGHT_UNIT

    # -- internals --------------------------------------------------------------------------

    def _now(self) -> int:
        now = _now_ns(self._clock())
        if self._last_now is not None and now < self._last_now:
            now = self._last_now
        self._last_now = now
        return now

    def _weight_of(self, key: Key) -> int:
        spec = self._weights
        if spec is None:
            return _WEIGHT_UNIT
        value: object = spec.get(key, 1) if isinstance(spec, Mapping) else spec(key)
        return _weight_units(key, value)

    def _sweep(self, now: int) -> None:
        members, seen = self._members, self._seen
        deadline = now - self._idle_ns
        while members:
            key = next(iter(members))
            if seen[key] > deadline:
                break
            member = members.pop(key)
            del seen[key]
            self._total_weight -= member.weight
            self._total_fill -= member.fill
        if not members:
            self._total_weight = 0
            self._total_fill = 0
            self._reserved = 0

    def _level(self, member: _Member, now: int) -> int:
        full = member.weight * self._horizon
        return min(full, member.fill + member.weight * (now - member.anchor))

    def _reserved_now(self, now: int) -> int:
        if not self._members:
            return 0
        return min(self._horizon, self._reserved + (now - self._reserved_at))

    def _join(self, weight: int, shared: int, reserved: int) -> tuple[int, int]:
        """The bucket a key joining now starts with, and the bound it adds to ``S``.

        Joining rescales every bucket: ``S`` changes by
        ``(W_old * fill - weight * M) / (W_new * W_old)`` where ``M >= total_fill``
        is the sum of the members' levels. Choosing ``fill`` so that this is at
        most the free part of ``G`` (``G - reserved``) keeps ``G >= S``.
        """
        old = self._total_weight
        total = old + weight
        fill: int = max(0, shared - reserved) * total
        if old:
            fill += (weight * self._total_fill) // old
        fill = min(weight * self._horizon, fill)
        if old:
            added = _ceil_div(old * fill - weight * self._total_fill, total * old)
        else:
            added = _ceil_div(fill, total)
        return fill, added

    def _decide(self, key: Key, cost: int, *, commit: bool) -> Decision:
        _check_key(key)
        cost = _check_cost(cost)
        with self._lock:
            now = self._now()
            self._sweep(now)
            interval = self._interval
            member = self._members.get(key)
            backlog = max(0, self._tat - now)
            shared = self._tau - backlog
            reserved = self._reserved_now(now)
            if member is None:
                weight = self._weight_of(key)
                total = self._total_weight + weight
                level, added = self._join(weight, shared, reserved)
                reserved += added
            else:
                weight, total = member.weight, self._total_weight
                level = self._level(member, now)
            need = cost * total * interval
            spend = cost * interval
            after: int = level
            on_share = False
            if cost > self._burst or shared < spend:
                allowed = False
            elif level >= need:  # on the key's own share
                allowed, on_share, after = True, True, level - need
            else:  # borrow c - x: G - c must still cover the buckets, S - x <= reserved - x
                allowed = total * (shared - spend - reserved) + level >= 0
                if allowed:
                    after = 0
            if allowed:
                shared -= spend
                backlog += spend
                reserved -= spend if on_share else level // total
            if commit:
                self._commit(key, member, weight, level, after, allowed, now, spend)
                self._reserved, self._reserved_at = max(0, reserved), now
            remaining = min(total * shared, after + total * max(0, shared - reserved)) // (
                total * interval
            )
            if allowed:
                retry: float = 0.0
            else:
                retry = self._retry_after(cost, weight, total, level, shared, reserved)
            to_full = _ceil_div(weight * self._horizon - after, weight)
            reset = max(backlog, to_full) / 1e9
            return Decision(allowed, int(remaining), retry, reset, self._burst)

    def _commit(
        self,
        key: Key,
        member: _Member | None,
        weight: int,
        level: int,
        after: int,
        allowed: bool,
        now: int,
        spend: int,
    ) -> None:
        if member is None:
            member = _Member(weight, level, now)
            self._members[key] = member
            self._total_weight += weight
            self._total_fill += level
        else:
            self._members.move_to_end(key)
        self._seen[key] = now
        if allowed:
            self._total_fill += after - member.fill
            member.fill = after
            member.anchor = now
            self._tat = max(self._tat, now) + spend

    def _retry_after(
        self,
        cost: int,
        weight: int,
        total: int,
        level: int,
        shared: int,
        reserved: int,
    ) -> float:
        """Seconds until ``cost`` passes for this key if nobody else spends meanwhile."""
        if cost > self._burst:
            return math.inf
        interval, horizon, tau = self._interval, self._horizon, self._tau
        full = weight * horizon
        need = cost * total * interval
        spend = cost * interval
        wait_shared = max(0, spend - shared)
        best: int | None = None
        if need <= full:  # on the key's own share
            best = max(wait_shared, _ceil_div(max(0, need - level), weight))

        # By borrowing: total * (G(t) - R(t)) + level(t) >= total * spend with G(t) >= spend.
        # G, the bound R and the bucket grow linearly until full, so the left side is
        # linear between the breakpoints below (the bucket's, rounded up to a whole ns,
        # is a concave kink: interpolating across it errs late, never early).
        def borrow_room(t: int) -> int:
            g = min(tau, shared + t)
            r = min(horizon, reserved + t)
            return total * (g - r) + min(full, level + weight * t)

        target = total * spend
        points = sorted(
            {
                wait_shared,
                max(wait_shared, tau - shared),
                max(wait_shared, horizon - reserved),
                max(wait_shared, _ceil_div(full - level, weight)),
            }
        )
        for index, start in enumerate(points):
            at_start = borrow_room(start)
            if at_start >= target:
                found: int | None = start
                break
            if index + 1 == len(points):
                found = None
                break
            stop = points[index + 1]
            at_stop = borrow_room(stop)
            if at_stop >= target:
                found = start + _ceil_div((target - at_start) * (stop - start), at_stop - at_start)
                break
        if found is not None:
            best = found if best is None else min(best, found)
        return math.inf if best is None else best / 1e9
