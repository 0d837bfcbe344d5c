"""Properties of the pure-Python rate-limit oracle (``trusswork.ratelimit._reference``).

The oracle is what the compiled table and the Redis scripts are compared
against, so its own guarantees are proven here with a fake clock (integer
nanoseconds) over arbitrary request sequences: several keys, costs from 0 to
capacity + 1, time steps of zero, a few ns and long jumps.

Bounds checked (clock never going back):

* token bucket: the cost admitted for one key in any closed interval
  ``[a, b]`` is at most ``(b - a) // interval + burst``. Proof: let the first
  admission in the interval be at ``t1 >= a`` and the last at ``tn <= b``. Each
  admission of cost ``c`` moves the TAT to ``max(tat, t) + c * interval``, so after
  the last one ``TAT >= t1 + S * interval`` (S = admitted cost), and the last
  admission needed ``TAT - tn <= burst * interval``. Hence
  ``S * interval <= tn - t1 + burst * interval <= (b - a) + burst * interval``;
  S is an integer, so ``S <= (b - a) // interval + burst``. With
  ``interval = ceil(1e9 / rate)`` this is also ``<= rate * T + burst``.
* sliding log: at most ``limit`` units in any half-open interval of length window.
* fixed window: at most ``limit`` units per aligned window.
* sliding-window counter: at most ``limit`` units per aligned window (the estimate
  is never below ``cur``), hence at most ``2 * limit`` in any interval of one
  window. Sharper, and what is asserted: for an aligned start ``S`` and
  ``1 <= x <= window``, the units admitted in ``[S + x - window, S + x)`` are at most
  ``limit + prev * (x - 1) / window`` where ``prev`` is the count admitted in
  ``[S - window, S)``. (The last admission in ``[S, S + x)`` happened at elapsed
  ``e <= x - 1`` with ``prev * (window - e) / window + C <= limit``; the part of the
  interval before ``S`` holds at most ``prev`` units.) So the excess over
  ``limit`` is the fraction of the previous window that slid out of the estimate
  while its units were in fact bunched at its end; with evenly spread traffic
  the counter admits within 3% of ``limit`` per window.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trusswork.core.errors import InvalidInput
from trusswork.ratelimit._reference import (
    NEVER,
    FixedWindowReference,
    Key,
    SlidingLogReference,
    SlidingWindowCounterReference,
    TokenBucketReference,
    interval_ns_from_rate,
    now_ns_from_seconds,
    round_half_away,
    seconds_from_ns,
)

Limiter = (
    TokenBucketReference
    | SlidingLogReference
    | SlidingWindowCounterReference
    | FixedWindowReference
)

KEYS: list[Key] = ["alice", b"bob", 7]
ALL_KINDS = ("tb", "log", "counter", "fixed")
SETTINGS = settings(max_examples=100, deadline=None)

# ------------------------------------------------------------------ strategies


@st.composite
def limiters(
    draw: st.DrawFn, kinds: tuple[str, ...] = ("tb", "log", "counter", "fixed")
) -> Limiter:
    """A limiter of one of ``kinds`` with a small capacity and a small-to-huge time unit."""
    kind = draw(st.sampled_from(kinds))
    capacity = draw(st.integers(1, 6))
    unit = draw(st.sampled_from([1, 2, 3, 7, 10, 1000, 333_333_334, 1_000_000_000]))
    if kind == "tb":
        return TokenBucketReference(unit, capacity)
    cls = {
        "log": SlidingLogReference,
        "counter": SlidingWindowCounterReference,
        "fixed": FixedWindowReference,
    }[kind]
    return cls(capacity, unit)


def unit_of(limiter: Limiter) -> int:
    return limiter.interval_ns if isinstance(limiter, TokenBucketReference) else limiter.window_ns


def steps(unit: int, *, backwards: bool = False) -> st.SearchStrategy[int]:
    """Clock steps in ns: zero, a few ns, about one unit, long jumps (and back)."""
    forward = st.one_of(
        st.just(0),
        st.integers(1, 3),
        st.integers(0, unit),
        st.integers(0, 3 * unit),
        st.integers(0, 40 * unit),
    )
    if not backwards:
        return forward
    return st.one_of(forward, st.integers(-3 * unit, -1))


Request = tuple[Key, int, int]  # key, cost, clock step before it


def requests(
    limiter: Limiter, *, backwards: bool = False, max_size: int = 60
) -> st.SearchStrategy[list[Request]]:
    return st.lists(
        st.tuples(
            st.sampled_from(KEYS),
            st.integers(0, limiter.capacity + 1),
            steps(unit_of(limiter), backwards=backwards),
        ),
        max_size=max_size,
    )


def starts(limiter: Limiter) -> st.SearchStrategy[int]:
    """Where the clock starts: around zero (negative too) or far from it."""
    unit = unit_of(limiter)
    return st.one_of(st.integers(-100 * unit, 100 * unit), st.just(10**15 + 123))


def run(
    limiter: Limiter, start: int, reqs: list[Request]
) -> list[tuple[Key, int, int, tuple[bool, int, int, int]]]:
    """Acquire every request in order; return (key, cost, now, outcome) each."""
    now = start
    out = []
    for key, cost, step in reqs:
        now += step
        out.append((key, cost, now, limiter.decide(key, cost, now)))
    return out


def admitted_units(
    history: list[tuple[Key, int, int, tuple[bool, int, int, int]]],
) -> dict[Key, list[int]]:
    """Per key, the time of every admitted unit (a cost-3 admission is three units)."""
    units: dict[Key, list[int]] = defaultdict(list)
    for key, cost, now, outcome in history:
        if outcome[0]:
            units[key].extend([now] * cost)
    return units


def count_in(times: list[int], low: int, high: int) -> int:
    """Units with ``low <= t < high`` in sorted ``times``."""
    return bisect.bisect_left(times, high) - bisect.bisect_left(times, low)


# ----------------------------------------------------------------- the bounds


@SETTINGS
@given(data=st.data(), limiter=limiters(("tb",)))
def test_token_bucket_admits_at_most_rate_times_t_plus_burst(
    data: st.DataObject, limiter: TokenBucketReference
) -> None:
    history = run(limiter, data.draw(starts(limiter)), data.draw(requests(limiter)))
    interval, burst = limiter.interval_ns, limiter.burst
    rate = 1e9 / interval
    for times in admitted_units(history).values():
        for i, a in enumerate(times):
            for b in times[i:]:
                admitted = count_in(times, a, b + 1)
                assert admitted <= (b - a) // interval + burst
                assert admitted <= rate * (b - a) / 1e9 + burst + 1e-9


@SETTINGS
@given(data=st.data(), limiter=limiters(("log",)))
def test_sliding_log_admits_at_most_limit_in_any_window(
    data: st.DataObject, limiter: SlidingLogReference
) -> None:
    history = run(limiter, data.draw(starts(limiter)), data.draw(requests(limiter)))
    for times in admitted_units(history).values():
        # The fullest half-open window [a, a + w) ends just after one of its units.
        for b in times:
            assert count_in(times, b - limiter.window_ns + 1, b + 1) <= limiter.limit


@SETTINGS
@given(data=st.data(), limiter=limiters(("fixed", "counter")))
def test_windows_admit_at_most_limit_per_aligned_window(
    data: st.DataObject, limiter: FixedWindowReference | SlidingWindowCounterReference
) -> None:
    history = run(limiter, data.draw(starts(limiter)), data.draw(requests(limiter)))
    for times in admitted_units(history).values():
        per_window: dict[int, int] = defaultdict(int)
        for t in times:
            per_window[t - t % limiter.window_ns] += 1
        assert max(per_window.values(), default=0) <= limiter.limit


@SETTINGS
@given(data=st.data(), limiter=limiters(("counter",)))
def test_counter_error_stays_within_its_bound(
    data: st.DataObject, limiter: SlidingWindowCounterReference
) -> None:
    history = run(limiter, data.draw(starts(limiter)), data.draw(requests(limiter)))
    window, limit = limiter.window_ns, limiter.limit
    for times in admitted_units(history).values():
        for b in times:  # the window (b - w, b], i.e. [S + x - w, S + x)
            in_window = count_in(times, b - window + 1, b + 1)
            aligned = b - b % window
            x = b + 1 - aligned
            prev = count_in(times, aligned - window, aligned)
            assert in_window <= 2 * limit
            assert in_window <= limit + prev * (x - 1) / window + 1e-9 * limit


@pytest.mark.parametrize(("limit", "overload"), [(100, 1.1), (100, 2.0), (250, 1.5), (1000, 3.0)])
@settings(max_examples=5, deadline=None)
@given(phase=st.integers(0, 10**9))
def test_counter_with_evenly_spread_traffic_admits_close_to_limit(
    limit: int, overload: float, phase: int
) -> None:
    window = 10**9
    limiter = SlidingWindowCounterReference(limit, window)
    gap = int(window / (limit * overload))
    times = []
    for n in range(int(12 * limit * overload)):
        t = phase + n * gap
        if limiter.decide("k", 1, t)[0]:
            times.append(t)
    first = phase - phase % window + 2 * window  # after two windows of warm-up
    for start in range(first, times[-1] - window, window // 7):
        assert 0.97 * limit <= count_in(times, start, start + window) <= limit


@pytest.mark.parametrize("limit", [10, 100, 1000])
def test_counter_admits_evenly_spread_traffic_at_80_percent_of_its_limit(limit: int) -> None:
    window = 1_000_000
    limiter = SlidingWindowCounterReference(limit, window)
    gap = int(window / (0.8 * limit))
    assert all(limiter.decide("k", 1, 5 + n * gap)[0] for n in range(10 * limit))


# ------------------------------------------------------ liveness and retry_after


@SETTINGS
@given(limiter=limiters(), start=st.integers(-(10**12), 10**12))
def test_a_fresh_key_admits_exactly_its_capacity_at_one_instant(
    limiter: Limiter, start: int
) -> None:
    outcomes = [limiter.decide("k", 1, start) for _ in range(limiter.capacity + 3)]
    assert [o[0] for o in outcomes] == [True] * limiter.capacity + [False] * 3
    assert [o[1] for o in outcomes[: limiter.capacity]] == list(range(limiter.capacity))[::-1]


@SETTINGS
@given(interval=st.integers(1, 10**9), burst=st.integers(1, 6), waited=st.integers(0, 8))
def test_token_bucket_refills_one_token_per_interval(
    interval: int, burst: int, waited: int
) -> None:
    limiter = TokenBucketReference(interval, burst)
    for _ in range(burst):
        assert limiter.decide("k", 1, 0)[0]
    later = waited * interval
    admitted = 0
    while limiter.decide("k", 1, later)[0]:
        admitted += 1
    assert admitted == min(waited, burst)


@SETTINGS
@given(data=st.data(), limiter=limiters())
def test_denied_request_passes_exactly_retry_after_later(
    data: st.DataObject, limiter: Limiter
) -> None:
    """Retried exactly ``retry_after`` later with nothing in between, a denied request
    is allowed, and one ns earlier it is still denied (retry_after is the least wait).

    The counter's contract formula ``ceil(window * (1.0 - free / prev))`` can land
    1 ns late when the float product lies just above an integer (see the worked
    example below, ``ceil(30.000000000000004)``); it is never early.
    """
    slack = 1 if isinstance(limiter, SlidingWindowCounterReference) else 0
    now = data.draw(starts(limiter))
    for key, cost, step in data.draw(requests(limiter)):
        now += step
        allowed, _, retry, _ = limiter.decide(key, cost, now)
        if allowed or retry == NEVER:
            continue
        assert retry > 0
        assert limiter.decide(key, cost, now + retry, commit=False)[0]
        assert not limiter.decide(key, cost, now + retry - 1 - slack, commit=False)[0]


@pytest.mark.parametrize("window", [7, 97, 100, 1000, 333_333_334, 10**9])
def test_counter_retry_after_is_never_early_and_at_most_1ns_late(window: int) -> None:
    """Exhaustively over small counts: the float retry formula of the contract."""
    late = 0
    for limit in range(1, 11):
        for prev in range(limit + 1):
            for cur in range(limit + 1):
                for cost in range(1, limit + 1):
                    for elapsed in {0, 1, window // 3, window // 2, window - 1}:
                        limiter = SlidingWindowCounterReference(limit, window)
                        limiter.decide("k", prev, -window)
                        limiter.decide("k", cur, 0)
                        allowed, _, retry, _ = limiter.decide("k", cost, elapsed, commit=False)
                        if allowed:
                            continue
                        assert limiter.decide("k", cost, elapsed + retry, commit=False)[0]
                        assert not limiter.decide("k", cost, elapsed + retry - 2, commit=False)[0]
                        late += limiter.decide("k", cost, elapsed + retry - 1, commit=False)[0]
    assert late < 2000  # rare: a float rounding, not a wrong formula


# -------------------------------------------------- consistency of the fields


@SETTINGS
@given(data=st.data(), limiter=limiters())
def test_decision_fields_are_consistent(data: st.DataObject, limiter: Limiter) -> None:
    capacity = limiter.capacity
    now = data.draw(starts(limiter))
    for key, cost, step in data.draw(requests(limiter)):
        now += step
        allowed, remaining, retry, reset = limiter.decide(key, cost, now)
        assert 0 <= remaining <= capacity
        assert reset >= 0
        assert (retry == 0) == allowed
        assert (retry == NEVER) == (cost > capacity)
        assert allowed or retry == NEVER or retry > 0
        if allowed and cost > 0:
            assert reset > 0
        # remaining is exact: that many more units pass now, one more does not.
        assert limiter.decide(key, remaining, now, commit=False)[0]
        if remaining < capacity:
            assert not limiter.decide(key, remaining + 1, now, commit=False)[0]
        # reset_after is when the key is full again, and not a ns earlier. (A key
        # that is full already may still report the window's end: the contract
        # has a fixed window answer reset = window end for any denial, also
        # for a cost above the limit in an empty window.)
        assert limiter.decide(key, 0, now + reset, commit=False)[1] == capacity
        if reset > 0 and remaining < capacity:
            assert limiter.decide(key, 0, now + reset - 1, commit=False)[1] < capacity


@SETTINGS
@given(data=st.data(), limiter=limiters())
def test_cost_above_capacity_never_passes(data: st.DataObject, limiter: Limiter) -> None:
    run(limiter, data.draw(starts(limiter)), data.draw(requests(limiter)))
    now = data.draw(st.integers(-(10**15), 10**15))
    for key in KEYS:
        allowed, _, retry, _ = limiter.decide(key, limiter.capacity + 1, now)
        assert not allowed
        assert retry == NEVER
        assert seconds_from_ns(retry) == float("inf")


# --------------------------------------------------- peeks and sweeps are inert


Op = tuple[str, Key, int, int]  # kind, key, cost, clock step before it


def ops(limiter: Limiter, *, backwards: bool) -> st.SearchStrategy[list[Op]]:
    return st.lists(
        st.tuples(
            st.sampled_from(["acquire", "acquire", "peek", "sweep"]),
            st.sampled_from(KEYS),
            st.integers(0, limiter.capacity + 1),
            steps(unit_of(limiter), backwards=backwards),
        ),
        max_size=60,
    )


def acquisitions(
    limiter: Limiter, start: int, script: list[Op], keep: Callable[[str], bool]
) -> list[tuple[bool, int, int, int]]:
    """Run ``script`` doing only the ops ``keep`` accepts; return the acquire outcomes."""
    now = start
    out = []
    for kind, key, cost, step in script:
        now += step
        if not keep(kind):
            continue
        if kind == "sweep":
            limiter.sweep(now)
        else:
            outcome = limiter.decide(key, cost, now, commit=kind == "acquire")
            if kind == "acquire":
                out.append(outcome)
    return out


@SETTINGS
@given(data=st.data(), kind=st.sampled_from(ALL_KINDS))
def test_peek_never_changes_later_decisions(data: st.DataObject, kind: str) -> None:
    """Even with a clock that goes back: a peek stores nothing."""
    first = data.draw(limiters((kind,)))
    second = type(first)(*_args(first))
    script = data.draw(ops(first, backwards=True))
    start = data.draw(starts(first))
    with_peeks = acquisitions(first, start, script, lambda k: k != "sweep")
    without = acquisitions(second, start, script, lambda k: k == "acquire")
    assert with_peeks == without


@SETTINGS
@given(data=st.data(), kind=st.sampled_from(ALL_KINDS))
def test_sweeping_idle_keys_never_changes_later_decisions(data: st.DataObject, kind: str) -> None:
    """With a clock that never goes back, dropping idle keys is invisible."""
    first = data.draw(limiters((kind,)))
    second = type(first)(*_args(first))
    script = data.draw(ops(first, backwards=False))
    start = data.draw(starts(first))
    swept = acquisitions(first, start, script, lambda k: True)
    kept = acquisitions(second, start, script, lambda k: k == "acquire")
    assert swept == kept


def _args(limiter: Limiter) -> tuple[int, int]:
    if isinstance(limiter, TokenBucketReference):
        return limiter.interval_ns, limiter.burst
    return limiter.limit, limiter.window_ns


@SETTINGS
@given(data=st.data(), limiter=limiters())
def test_sweep_keeps_exactly_the_keys_that_are_not_idle(
    data: st.DataObject, limiter: Limiter
) -> None:
    history = run(limiter, data.draw(starts(limiter)), data.draw(requests(limiter)))
    now = (history[-1][2] if history else 0) + data.draw(steps(unit_of(limiter)))
    live = limiter.live_keys(now)
    before = len(limiter)
    assert limiter.sweep(now) == before - len(live)
    assert limiter.keys() == live
    for key in KEYS:
        fresh = type(limiter)(*_args(limiter))
        # A key that was dropped decides exactly like one never seen.
        if key not in live:
            assert limiter.decide(key, 1, now, commit=False) == fresh.decide(key, 1, now)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_looking_stores_nothing(kind: str) -> None:
    """``commit=False`` and ``cost=0`` decide without keeping any state."""
    limiter = {
        "tb": TokenBucketReference(10, 2),
        "log": SlidingLogReference(2, 10),
        "counter": SlidingWindowCounterReference(2, 10),
        "fixed": FixedWindowReference(2, 10),
    }[kind]
    assert limiter.decide("k", 2, 0, commit=False)[:3] == (True, 0, 0)
    assert limiter.decide("k", 0, 0) == (True, 2, 0, 0)
    assert limiter.decide("k", 2, 0, commit=False)[:3] == (True, 0, 0)
    assert len(limiter) == 0
    assert limiter.decide("k", 2, 3)[0]
    assert len(limiter) == 1


def test_reset_forgets_a_key() -> None:
    limiter = SlidingLogReference(2, 100)
    assert limiter.decide("k", 2, 0)[0]
    assert not limiter.decide("k", 1, 1)[0]
    limiter.reset("k")
    assert limiter.decide("k", 2, 1) == (True, 0, 0, 100)
    assert len(limiter) == 1


# ------------------------------------------------------ arithmetic of the contract


def test_examples_from_the_contract_formulas() -> None:
    tb = TokenBucketReference.from_rate(3.0, 2)  # interval ceil(1e9 / 3) = 333333334
    assert tb.interval_ns == 333_333_334
    assert tb.decide("k", 1, 0) == (True, 1, 0, 333_333_334)
    assert tb.decide("k", 1, 0) == (True, 0, 0, 666_666_668)
    assert tb.decide("k", 1, 10) == (False, 0, 333_333_324, 666_666_658)
    fixed = FixedWindowReference(3, 100)
    assert fixed.decide("k", 3, -30) == (True, 0, 0, 30)  # window [-100, 0)
    assert fixed.decide("k", 1, -1) == (False, 0, 1, 1)
    assert fixed.decide("k", 0, 0) == (True, 3, 0, 0)
    counter = SlidingWindowCounterReference(10, 100)
    assert counter.decide("k", 10, 50) == (True, 0, 0, 150)
    # Next window at elapsed 25: estimate = 10 * 75 / 100 = 7.5.
    # Exactly, 3 more pass at elapsed 30; the contract's float formula says
    # ceil(100 * (1.0 - 7 / 10)) = ceil(30.000000000000004) = 31, so retry is 6 ns.
    assert counter.decide("k", 3, 125) == (False, 2, 6, 75)
    assert counter.decide("k", 3, 130, commit=False)[0]
    assert counter.decide("k", 2, 125) == (True, 0, 0, 175)
    log = SlidingLogReference(3, 100)
    assert log.decide("k", 2, 0) == (True, 1, 0, 100)
    assert log.decide("k", 1, 40) == (True, 0, 0, 100)
    assert log.decide("k", 2, 50) == (False, 0, 50, 90)  # 2nd oldest unit (t=0) expires at 100
    assert log.decide("k", 3, 60) == (False, 0, 80, 80)  # 3rd oldest (t=40) expires at 140


def test_rounding_is_half_away_from_zero() -> None:
    assert [round_half_away(x) for x in (0.5, 1.5, 2.5, -0.5, -1.5)] == [1, 2, 3, -1, -2]
    assert round_half_away(0.49999999999999994) == 0
    assert now_ns_from_seconds(-1.5) == -1_500_000_000
    assert now_ns_from_seconds(1e-9) == 1
    assert interval_ns_from_rate(1e10) == 1
    with pytest.raises(InvalidInput):
        round_half_away(float("nan"))


@pytest.mark.parametrize(
    "make",
    [
        lambda: TokenBucketReference(0, 1),
        lambda: TokenBucketReference(1, 0),
        lambda: TokenBucketReference.from_rate(float("inf"), 1),
        lambda: TokenBucketReference.from_rate(-1.0, 1),
        lambda: SlidingLogReference(0, 1),
        lambda: SlidingWindowCounterReference(1, 0),
        lambda: FixedWindowReference(True, 10),
    ],
)
def test_bad_parameters_are_rejected(make: Callable[[], object]) -> None:
    with pytest.raises(InvalidInput):
        make()


@pytest.mark.parametrize("cost", [-1, 1.0, True])
def test_bad_costs_are_rejected(cost: int) -> None:
    with pytest.raises(InvalidInput):
        TokenBucketReference(10, 2).decide("k", cost, 0)
