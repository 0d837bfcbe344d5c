"""A limit that follows the protected service's error budget (AIMD with hysteresis).

:class:`AdaptiveLimit` is a rate limit (requests per second, per key) whose
value a controller moves from what the protected service reports: the
requests that failed or were slower than the SLO's latency objective, fed in
through :meth:`AdaptiveLimit.observe` (counts) or :meth:`AdaptiveLimit.record`
(one request). Once per control ``interval`` the controller computes the
*burn rate* over the samples since its last decision, the observed bad
fraction divided by the error budget (``slo.error_rate``), and then:

* **tightens** (multiplies the limit by ``decrease``) when the burn rate is
  above ``tighten_above`` (default 1: the budget is being overspent);
* **relaxes** (adds ``increase``, but at most ``max_relax`` of the current
  limit, so a small limit probes in small steps) when it is below
  ``relax_below`` (default 0.5) *and* the limit was binding (it denied
  requests in the interval), so an idle service does not drift to the maximum;
* **holds** in between: the dead band between the two thresholds is the
  first layer of hysteresis.

The second layer stops the additive-increase / multiplicative-decrease
saw-tooth that plain AIMD draws under steady overload: a tighten remembers
the limit that overspent the budget as a *ceiling*, and relaxing stops at
``ceiling * (1 - headroom)``. The ceiling expires after ``probe_after``
seconds so the controller can find capacity that came back; a probe that
fails again doubles the wait (up to ``max_probe_after``), a probe that
stays healthy for an interval above the old ceiling resets it.

Bounds and pacing: the limit stays within ``[min_limit, max_limit]``; two
changes are at least ``cooldown`` seconds apart (default: one interval); an
evaluation needs ``min_samples`` observations, otherwise samples keep
accumulating. Every change is appended to :attr:`AdaptiveLimit.history` and
passed to ``on_change`` (for an audit log).

Admission is a token bucket that never loses its state when the limit
moves: one compiled :class:`~trusswork.ratelimit.TokenBucket` counting
nanoseconds, where a request costs ``ceil(1e9 / limit)`` ns. A key's backlog is
time, which keeps its meaning at any rate, so a change takes effect at once
without handing every key a fresh burst.

:func:`simulate_adaptive` runs the controller in front of a service whose capacity
drops and comes back, deterministically, and returns the time series the
docs and the demo plot.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias

from trusswork.core.errors import InvalidInput
from trusswork.ratelimit._table import Decision, TokenBucket

__all__ = ["SLO", "AdaptiveLimit", "LimitChange", "SimulationRow", "simulate_adaptive"]

Key: TypeAlias = str | bytes | int

_NS_PER_SECOND: Final = 1_000_000_000


def _finite(name: str, value: object, *, low: float, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"AdaptiveLimit {name} must be a number, got {value!r}")
    number = float(value)
    if not (math.isfinite(number) and low <= number <= high):
        raise InvalidInput(
            f"AdaptiveLimit {name} must be a finite number in [{low}, {high}], got {value!r}"
        )
    return number


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"AdaptiveLimit.observe {name}= must be an int >= 0, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class SLO:
    """What "healthy" means for the protected service.

    Parameters
    ----------
    error_rate:
        The error budget: the fraction of requests allowed to be bad,
        ``0 < error_rate < 1`` (default 1%).
    latency:
        Seconds; a request slower than this counts as bad too. ``None``: only
        failures count.
    """

    error_rate: float = 0.01
    latency: float | None = None

    def __post_init__(self) -> None:
        rate = self.error_rate
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate < 1:
            raise InvalidInput(f"SLO error_rate must be a fraction in (0, 1), got {rate!r}")
        latency = self.latency
        if latency is not None and not (
            isinstance(latency, int | float) and math.isfinite(latency) and latency > 0
        ):
            raise InvalidInput(
                f"SLO latency must be a finite number of seconds > 0, got {latency!r}"
            )


@dataclass(frozen=True, slots=True)
class LimitChange:
    """One move of the limit, as recorded in history and passed to ``on_change``.

    Attributes
    ----------
    time:
        Clock reading (seconds) when the change was made.
    old, new:
        The limit before and after, requests per second.
    reason:
        ``"tighten"`` or ``"relax"``.
    burn_rate:
        The burn rate that caused it (bad fraction / error budget).
    bad, total:
        The samples it was computed from.
    """

    time: float
    old: float
    new: float
    reason: Literal["tighten", "relax"]
    burn_rate: float
    bad: int
    total: int


class AdaptiveLimit:
    """A per-key rate limit moved by the protected service's error budget.

    Every key gets the current limit; for one limit over all traffic to a
    service, acquire with one key.

    Parameters
    ----------
    initial:
        Starting limit, requests per second (default ``max_limit``).
    min_limit, max_limit:
        Bounds of the limit, ``0 < min_limit <= max_limit``.
    slo:
        The service's objective; its ``error_rate`` is the error budget.
    interval:
        Seconds between evaluations of the burn rate (the control interval).
    cooldown:
        Minimum seconds between two changes (default ``interval``).
    decrease:
        Factor applied on tighten, ``0 < decrease < 1`` (default 0.7).
    increase:
        Requests per second added on relax (default ``(max_limit - min_limit) / 20``).
    max_relax:
        A relax adds at most this fraction of the current limit (default 0.1).
    tighten_above, relax_below:
        Burn-rate thresholds, ``0 <= relax_below < tighten_above``; between
        them the limit holds.
    headroom:
        Relaxing stops at ``ceiling * (1 - headroom)`` below the last limit
        that overspent the budget (default 0.1).
    probe_after:
        Seconds a ceiling lasts before relaxing may probe above it (default
        ``20 * interval``); doubles after each failed probe up to
        ``max_probe_after`` (default ``4 * probe_after``).
    min_samples:
        Observations needed for an evaluation (default 20).
    burst:
        Seconds of the current limit a key may spend at once; at least
        ``1 / min_limit`` (one request at the lowest limit). Default
        ``max(0.1, 1 / min_limit)``. Keep it short: under overload a long burst
        lets a lowered limit pass more than it says until the burst is spent.
    on_change:
        Called with each :class:`LimitChange`, after it took effect, outside
        the lock.
    clock:
        Zero-argument callable returning seconds; default :func:`time.monotonic`.

    Raises
    ------
    InvalidInput
        If a parameter is out of range.

    Examples
    --------
    >>> from trusswork.core.clock import FakeClock
    >>> clock = FakeClock()
    >>> limit = AdaptiveLimit(100, min_limit=10, max_limit=200, clock=clock.monotonic)
    >>> limit.acquire("api").allowed
    True
    >>> limit.observe(errors=30, total=1000)   # 3% errors against a 1% budget
    >>> clock.advance(1.0)
    >>> limit.update().new                      # tightened by ``decrease``
    70.0
    >>> limit.history
    [(0.0, 100.0), (1.0, 70.0)]
    """

    def __init__(
        self,
        initial: float | None = None,
        *,
        min_limit: float,
        max_limit: float,
        slo: SLO | None = None,
        interval: float = 1.0,
        cooldown: float | None = None,
        decrease: float = 0.7,
        increase: float | None = None,
        max_relax: float = 0.1,
        tighten_above: float = 1.0,
        relax_below: float = 0.5,
        headroom: float = 0.1,
        probe_after: float | None = None,
        max_probe_after: float | None = None,
        min_samples: int = 20,
        burst: float | None = None,
        on_change: Callable[[LimitChange], None] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        low = _finite("min_limit", min_limit, low=1e-9)
        high = _finite("max_limit", max_limit, low=low)
        start = high if initial is None else _finite("initial", initial, low=low, high=high)
        self._interval = _finite("interval", interval, low=1e-9)
        self._cooldown = (
            self._interval if cooldown is None else _finite("cooldown", cooldown, low=0.0)
        )
        self._decrease = _finite("decrease", decrease, low=1e-9, high=1 - 1e-9)
        step = (high - low) / 20 if increase is None else increase
        self._increase = _finite("increase", step, low=0.0)
        self._max_relax = _finite("max_relax", max_relax, low=0.0)
        self._tighten_above = _finite("tighten_above", tighten_above, low=0.0)
        self._relax_below = _finite("relax_below", relax_below, low=0.0)
        if self._relax_below >= self._tighten_above:
            raise InvalidInput(
                f"AdaptiveLimit needs relax_below < tighten_above (a dead band), got "
                f"{relax_below!r} >= {tighten_above!r}"
            )
        self._headroom = _finite("headroom", headroom, low=0.0, high=1 - 1e-9)
        probe = 20 * self._interval if probe_after is None else probe_after
        self._probe_after = _finite("probe_after", probe, low=0.0)
        probe_max = 4 * self._probe_after if max_probe_after is None else max_probe_after
        self._max_probe_after = _finite("max_probe_after", probe_max, low=self._probe_after)
        if isinstance(min_samples, bool) or not isinstance(min_samples, int) or min_samples < 1:
            raise InvalidInput(
                f"AdaptiveLimit min_samples must be an int >= 1, got {min_samples!r}"
            )
        self._min_samples = min_samples
        burst_s = max(0.1, 1 / low) if burst is None else _finite("burst", burst, low=1e-9)
        self._burst_ns = round(burst_s * 1e9)
        if self._burst_ns < math.ceil(_NS_PER_SECOND / low):
            raise InvalidInput(
                f"AdaptiveLimit burst={burst!r} s holds no request at min_limit={min_limit!r}/s; "
                f"use burst >= {1 / low!r}"
            )
        if on_change is not None and not callable(on_change):
            raise InvalidInput(f"AdaptiveLimit on_change must be callable, got {on_change!r}")
        if clock is not None and not callable(clock):
            raise InvalidInput(f"AdaptiveLimit clock must be callable, got {clock!r}")
        self.slo = SLO() if slo is None else slo
        if not isinstance(self.slo, SLO):
            raise InvalidInput(f"AdaptiveLimit slo must be an SLO, got {slo!r}")
        self.min_limit = low
        self.max_limit = high
        self._clock: Callable[[], float] = clock if clock is not None else time.monotonic
        self._on_change = on_change
        self._lock = threading.Lock()
        # rate 1e9 gives a 1 ns emission interval: costs and burst below are nanoseconds.
        self._bucket = TokenBucket(1e9, self._burst_ns, clock=self._clock)
        now = self._clock()
        self._limit = start
        self._unit_ns = self._unit(start)
        self.history: list[tuple[float, float]] = [(now, start)]
        """(time, limit) at creation and after every change."""
        self.changes: list[LimitChange] = []
        """Every change with its reason, oldest first."""
        self.burn_rate: float | None = None
        """The burn rate of the last evaluation (``None`` before the first)."""
        self._next_evaluation = now + self._interval
        self._last_change = -math.inf
        self._bad = 0
        self._total = 0
        self._denied = 0
        self._ceiling: float | None = None
        self._ceiling_until = math.inf
        self._probe_wait = self._probe_after
        self._probing_above: float | None = None

    # -- reading ---------------------------------------------------------------------------

    @property
    def limit(self) -> float:
        """The current limit, requests per second per key."""
        return self._limit

    @property
    def rate(self) -> float:
        """Same as :attr:`limit`."""
        return self._limit

    @property
    def ceiling(self) -> float | None:
        """The last limit that overspent the budget, while it still caps relaxing."""
        return self._ceiling

    def __repr__(self) -> str:
        return (
            f"AdaptiveLimit(limit={self._limit!r}, min_limit={self.min_limit!r}, "
            f"max_limit={self.max_limit!r}, slo={self.slo!r})"
        )

    # -- admission -------------------------------------------------------------------------

    def _unit(self, limit: float) -> int:
        return math.ceil(_NS_PER_SECOND / limit)

    def acquire(self, key: Key, cost: int = 1) -> Decision:
        """Decide a request of ``cost`` from ``key`` against the current limit.

        Returns
        -------
        Decision
            ``remaining`` and ``limit`` are requests at the current limit
            (``limit`` is the burst); times are seconds.

        Raises
        ------
        InvalidInput
            If ``key`` or ``cost`` is invalid (as for :class:`TokenBucket`).
        """
        if isinstance(cost, bool) or not isinstance(cost, int) or cost < 0:
            raise InvalidInput(f"AdaptiveLimit cost must be an int >= 0, got {cost!r}")
        change = self._maybe_evaluate()
        unit = self._unit_ns
        decision = self._bucket.acquire(key, cost * unit)
        if not decision.allowed:
            with self._lock:
                self._denied += 1
        if change is not None:
            self._notify(change)
        return Decision(
            decision.allowed,
            decision.remaining // unit,
            decision.retry_after,
            decision.reset_after,
            self._burst_ns // unit,
        )

    # -- signal ----------------------------------------------------------------------------

    def observe(self, *, errors: int, total: int, slow: int = 0, denied: int = 0) -> None:
        """Report ``total`` requests the service handled, ``errors`` of them failed.

        Parameters
        ----------
        errors:
            Requests that failed.
        total:
            Requests handled (``errors + slow`` beyond ``total`` is capped).
        slow:
            Requests that succeeded slower than ``slo.latency``.
        denied:
            Requests this process denied by other means than :meth:`acquire`
            (they tell the controller the limit is binding).

        Raises
        ------
        InvalidInput
            If a count is not an int >= 0.
        """
        bad = _count("errors", errors) + _count("slow", slow)
        handled = _count("total", total)
        extra = _count("denied", denied)
        with self._lock:
            self._bad += min(bad, handled)
            self._total += handled
            self._denied += extra
        self._evaluate_and_notify()

    def record(self, success: bool, latency: float | None = None) -> None:
        """Report one request: bad if it failed or took longer than ``slo.latency``."""
        objective = self.slo.latency
        slow = latency is not None and objective is not None and latency > objective
        with self._lock:
            self._bad += int(not success or slow)
            self._total += 1
        self._evaluate_and_notify()

    def update(self) -> LimitChange | None:
        """Evaluate now if an interval has passed; return the change made, if any.

        :meth:`acquire`, :meth:`observe` and :meth:`record` call this already.
        """
        change = self._maybe_evaluate()
        if change is not None:
            self._notify(change)
        return change

    # -- control ---------------------------------------------------------------------------

    def _evaluate_and_notify(self) -> None:
        change = self._maybe_evaluate()
        if change is not None:
            self._notify(change)

    def _notify(self, change: LimitChange) -> None:
        if self._on_change is not None:
            self._on_change(change)

    def _maybe_evaluate(self) -> LimitChange | None:
        now = self._clock()
        if now < self._next_evaluation:
            return None
        with self._lock:
            if now < self._next_evaluation:
                return None
            missed = math.floor((now - self._next_evaluation) / self._interval)
            self._next_evaluation += (missed + 1) * self._interval
            return self._evaluate(now)

    def _evaluate(self, now: float) -> LimitChange | None:
        if self._ceiling is not None and now >= self._ceiling_until:
            self._probing_above = self._ceiling  # the next relax may pass it: a probe
            self._ceiling = None
        if self._total < self._min_samples:
            return None
        bad, total, binding = self._bad, self._total, self._denied > 0
        self._bad = self._total = self._denied = 0
        burn = bad / total / self.slo.error_rate
        self.burn_rate = burn
        if now - self._last_change < self._cooldown - 1e-9:  # float sums of intervals
            return None
        old = self._limit
        if burn > self._tighten_above:
            new = max(self.min_limit, old * self._decrease)
            probe_failed = self._probing_above is not None
            self._probe_wait = (
                min(self._max_probe_after, 2 * self._probe_wait)
                if probe_failed
                else self._probe_after
            )
            self._probing_above = None
            self._ceiling = old
            self._ceiling_until = now + self._probe_wait
            reason: Literal["tighten", "relax"] = "tighten"
        elif burn < self._relax_below and binding:
            cap = self.max_limit
            if self._ceiling is not None:
                cap = min(cap, self._ceiling * (1 - self._headroom))
            new = min(old + min(self._increase, old * self._max_relax), cap)
            if self._probing_above is not None and old > self._probing_above:
                # A whole interval above the old ceiling stayed healthy: capacity came back.
                self._probing_above = None
                self._probe_wait = self._probe_after
            reason = "relax"
        else:
            return None
        if new == old or (reason == "relax" and new < old):
            return None
        self._limit = new
        self._unit_ns = self._unit(new)
        self._last_change = now
        self.history.append((now, new))
        change = LimitChange(now, old, new, reason, burn, bad, total)
        self.changes.append(change)
        return change


# -- simulation -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SimulationRow:
    """One reporting period of :func:`simulate_adaptive`; rates are per second over the period."""

    time: float
    """Start of the period, seconds."""
    offered: float
    """Requests per second the clients sent."""
    admitted: float
    """Requests per second the limiter let through."""
    limit: float
    """The limit at the end of the period."""
    capacity: float
    """The service's capacity during the period (requests per second)."""
    errors: float
    """Admitted requests per second the service failed."""


@dataclass
class _Tally:
    offered: int = 0
    admitted: int = 0
    errors: int = 0


def simulate_adaptive(
    *,
    capacity: float = 200.0,
    offered: float = 300.0,
    duration: float = 300.0,
    drop_at: float = 100.0,
    recover_at: float = 200.0,
    drop_to: float = 0.25,
    tick: float = 0.1,
    report_every: float = 1.0,
    slo: SLO | None = None,
    **controller: Any,
) -> list[SimulationRow]:
    """Run an :class:`AdaptiveLimit` in front of a service whose capacity drops and returns.

    Deterministic and instant (a simulated clock, no sleeping). Clients send
    ``offered`` requests per second, evenly spaced, through
    :meth:`AdaptiveLimit.acquire` (one key: the limit is the service's). The
    service serves ``capacity`` requests per second, ``capacity * drop_to``
    from ``drop_at`` to ``recover_at``; in every ``tick`` the admitted
    requests beyond what it can serve in that tick fail, and the tick's
    outcome is reported with :meth:`AdaptiveLimit.observe`.

    Parameters
    ----------
    capacity, offered:
        Requests per second.
    duration, drop_at, recover_at, tick, report_every:
        Seconds.
    drop_to:
        Fraction of ``capacity`` left during the drop.
    slo:
        Passed to the controller (default ``SLO()``: 1% errors).
    **controller:
        Other :class:`AdaptiveLimit` options; ``min_limit`` defaults to
        ``capacity / 20`` and ``max_limit`` to ``2 * capacity``.

    Returns
    -------
    list of SimulationRow
        One row per ``report_every`` seconds, in time order.

    Raises
    ------
    InvalidInput
        If a parameter is out of range.
    """
    for name, value in (
        ("capacity", capacity),
        ("offered", offered),
        ("duration", duration),
        ("tick", tick),
        ("report_every", report_every),
    ):
        _finite(f"simulate_adaptive {name}", value, low=1e-9)
    _finite("simulate_adaptive drop_to", drop_to, low=0.0, high=1.0)
    ticks_per_report = round(report_every / tick)
    if ticks_per_report < 1 or not math.isclose(ticks_per_report * tick, report_every):
        raise InvalidInput(
            f"simulate_adaptive report_every={report_every!r} must be a multiple of tick={tick!r}"
        )
    now = [0.0]
    controller.setdefault("min_limit", capacity / 20)
    controller.setdefault("max_limit", 2 * capacity)
    limiter = AdaptiveLimit(slo=slo, clock=lambda: now[0], **controller)
    rows: list[SimulationRow] = []
    tally = _Tally()
    period_capacity = capacity
    sent = 0
    for n in range(round(duration / tick)):
        start = n * report_every / ticks_per_report
        end = (n + 1) * report_every / ticks_per_report
        serving = capacity * drop_to if drop_at <= start < recover_at else capacity
        if n % ticks_per_report == 0:
            period_capacity = serving
        due = math.floor(offered * end + 1e-9)
        admitted = 0
        for k in range(sent, due):
            now[0] = max(start, k / offered)
            if limiter.acquire("service").allowed:
                admitted += 1
        tally.offered += due - sent
        sent = due
        errors = max(0, admitted - math.floor(serving * tick + 1e-9))
        now[0] = end
        limiter.observe(errors=errors, total=admitted)
        tally.admitted += admitted
        tally.errors += errors
        if (n + 1) % ticks_per_report == 0:
            rows.append(
                SimulationRow(
                    time=end - report_every,
                    offered=tally.offered / report_every,
                    admitted=tally.admitted / report_every,
                    limit=limiter.limit,
                    capacity=period_capacity,
                    errors=tally.errors / report_every,
                )
            )
            tally = _Tally()
    return rows
