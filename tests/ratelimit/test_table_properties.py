"""The compiled limiters decide exactly like the pure-Python oracle.

``TokenBucket``, ``SlidingWindow(exact=True/False)`` and ``FixedWindow`` (the C
table behind ``trusswork.ratelimit``) run side by side with
``trusswork.ratelimit._reference`` on a fake clock; every field of every
decision must be equal (seconds = ns / 1e9, never = inf), for ``acquire``,
``peek``, ``acquire_many`` (sequential at one ``now``), ``reset``, ``sweep`` and
``len``. The bounds themselves are proven on the oracle in test_reference.py.
Also here: what the compiled classes reject, a clock that fails, and many
threads on one key.

A clock that goes back is covered too: looking (``peek``, cost 0) leaves no
trace, and the sliding log stamps ``max(newest, now)`` so its stamps stay sorted.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trusswork.core.errors import InvalidInput
from trusswork.ratelimit import Decision, Decisions, FixedWindow, SlidingWindow, TokenBucket
from trusswork.ratelimit._reference import (
    FixedWindowReference,
    Key,
    Outcome,
    SlidingLogReference,
    SlidingWindowCounterReference,
    TokenBucketReference,
    now_ns_from_seconds,
    seconds_from_ns,
    window_ns_from_seconds,
)

Reference = (
    TokenBucketReference
    | SlidingLogReference
    | SlidingWindowCounterReference
    | FixedWindowReference
)
Compiled = TokenBucket | SlidingWindow | FixedWindow

# "7", b"7" and 7 are three keys; 2**70 takes the big-int path of the fingerprint.
KEYS: list[Key] = ["7", b"7", 7, -1, "ключ", b"", 2**70]
INT_KEYS = [7, -1, 12345]
ALL_KINDS = ("tb", "log", "counter", "fixed")
RATES = [1e9, 5e8, 3e8, 1e8, 1e9 / 7, 1000.0, 3.0, 1.0]
WINDOWS = [1e-9, 2e-9, 1e-8, 9.7e-8, 1e-6, 1 / 3, 1.0]


class FakeClock:
    """Seconds from an integer nanosecond reading the test moves."""

    def __init__(self, ns: int) -> None:
        self.ns = ns

    def __call__(self) -> float:
        return self.ns / 1e9

    def now_ns(self) -> int:
        """The ``now`` the compiled table sees: llround(clock() * 1e9)."""
        return now_ns_from_seconds(self())


@dataclass
class Pair:
    compiled: Compiled
    oracle: Reference
    clock: FakeClock
    unit: int  # ns per token, or the window

    @property
    def capacity(self) -> int:
        return self.oracle.capacity


Spec = tuple[str, int, float, int]  # kind, capacity, rate or window seconds, start ns


@st.composite
def specs(draw: st.DrawFn, kinds: tuple[str, ...] = ALL_KINDS) -> Spec:
    kind = draw(st.sampled_from(kinds))
    period = draw(st.sampled_from(RATES if kind == "tb" else WINDOWS))
    unit = math.ceil(1e9 / period) if kind == "tb" else window_ns_from_seconds(period)
    start = draw(st.one_of(st.integers(-100 * unit, 100 * unit), st.just(10**15 + 123)))
    return kind, draw(st.integers(1, 6)), period, start


def make(spec: Spec) -> Pair:
    """The compiled limiter and its oracle, on a fresh fake clock at the spec's start."""
    kind, capacity, period, start = spec
    clock = FakeClock(start)
    compiled: Compiled
    oracle: Reference
    if kind == "tb":
        compiled = TokenBucket(period, capacity, clock=clock)
        oracle = TokenBucketReference.from_rate(period, capacity)
        return Pair(compiled, oracle, clock, oracle.interval_ns)
    unit = window_ns_from_seconds(period)
    if kind == "fixed":
        compiled = FixedWindow(capacity, period, clock=clock)
        oracle = FixedWindowReference(capacity, unit)
    else:
        compiled = SlidingWindow(capacity, period, exact=kind == "log", clock=clock)
        cls = SlidingLogReference if kind == "log" else SlidingWindowCounterReference
        oracle = cls(capacity, unit)
    return Pair(compiled, oracle, clock, unit)


def pairs(kinds: tuple[str, ...] = ALL_KINDS) -> st.SearchStrategy[Pair]:
    return specs(kinds).map(make)


def steps(unit: int, *, backwards: bool) -> st.SearchStrategy[int]:
    forward = st.one_of(
        st.just(0),
        st.integers(1, 3),
        st.integers(0, unit),
        st.integers(0, 3 * unit),
        st.integers(0, 40 * unit),
    )
    return st.one_of(forward, st.integers(-3 * unit, -1)) if backwards else forward


def ops(
    pair: Pair, *, backwards: bool = False, min_cost: int = 0
) -> st.SearchStrategy[list[tuple[Any, ...]]]:
    """(step, kind, args...) operations on both limiters."""
    cost = st.integers(min_cost, pair.capacity + 1)
    one = st.tuples(st.sampled_from(["acquire", "acquire", "peek"]), st.sampled_from(KEYS), cost)
    many = st.tuples(
        st.just("many"),
        st.lists(st.sampled_from(KEYS), max_size=6),
        st.one_of(cost, st.lists(cost, min_size=6, max_size=6)),
    )
    many_ints = st.tuples(
        st.just("many_ints"), st.lists(st.sampled_from(INT_KEYS), max_size=6), cost
    )
    other = st.tuples(st.sampled_from(["reset", "sweep"]), st.sampled_from(KEYS))
    op = st.one_of(one, one, many, many_ints, other)
    return st.lists(
        st.tuples(steps(pair.unit, backwards=backwards), op).map(lambda t: (t[0], *t[1])),
        max_size=40,
    )


def expected(outcome: Outcome, limit: int) -> Decision:
    allowed, remaining, retry, reset = outcome
    return Decision(allowed, remaining, seconds_from_ns(retry), seconds_from_ns(reset), limit)


def as_list(decisions: Decisions) -> list[Decision]:
    assert decisions.allowed.dtype == np.bool_
    assert decisions.remaining.dtype == np.int64
    assert decisions.retry_after.dtype == np.float64
    assert decisions.reset_after.dtype == np.float64
    return [
        Decision(bool(a), int(r), float(t), float(s), decisions.limit)
        for a, r, t, s in zip(
            decisions.allowed,
            decisions.remaining,
            decisions.retry_after,
            decisions.reset_after,
            strict=True,
        )
    ]


def play(pair: Pair, script: list[tuple[Any, ...]]) -> None:
    """Run ``script`` on both; assert every answer and the key count agree."""
    compiled, oracle, clock, limit = pair.compiled, pair.oracle, pair.clock, pair.capacity
    for step, kind, *args in script:
        clock.ns += step
        now = clock.now_ns()
        where = f"{kind}{tuple(args)} at {now} ns"
        if kind in ("acquire", "peek"):
            key, cost = args
            got = getattr(compiled, kind)(key, cost)
            want = expected(oracle.decide(key, cost, now, commit=kind == "acquire"), limit)
            assert got == want, where
            assert bool(got) is got.allowed
        elif kind in ("many", "many_ints"):
            keys, costs = args
            cost_list = costs if isinstance(costs, list) else [costs] * len(keys)
            cost_list = cost_list[: len(keys)]
            batch_keys: Any = np.array(keys, dtype=np.int64) if kind == "many_ints" else keys
            batch_costs: Any = (
                np.array(cost_list, dtype=np.int64) if isinstance(costs, list) else costs
            )
            got_many = compiled.acquire_many(batch_keys, batch_costs)
            assert len(got_many) == len(keys)
            want_many = [expected(o, limit) for o in oracle.decide_many(keys, cost_list, now)]
            assert as_list(got_many) == want_many, where
        elif kind == "reset":
            compiled.reset(args[0])
            oracle.reset(args[0])
        else:
            assert compiled.sweep() == oracle.sweep(now), where
        assert len(compiled) == len(oracle), where


# ------------------------------------------------------------- equal decisions


@pytest.mark.parametrize("kind", ALL_KINDS)
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_compiled_decides_like_the_oracle(data: st.DataObject, kind: str) -> None:
    pair = data.draw(pairs((kind,)))
    play(pair, data.draw(ops(pair)))


@pytest.mark.parametrize("kind", ["tb", "log", "counter", "fixed"])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_compiled_follows_the_clock_going_back_rules(data: st.DataObject, kind: str) -> None:
    """The contract's rules when the clock steps back (stored TAT, stored later window)."""
    pair = data.draw(pairs((kind,)))
    play(pair, data.draw(ops(pair, backwards=True, min_cost=0)))


def acquisitions(
    pair: Pair, script: list[tuple[str, Key, int, int]], *, looks: bool
) -> list[Decision]:
    """Acquire answers of ``script``; with ``looks``, also run its peeks and cost-0 acquires."""
    out = []
    for kind, key, cost, step in script:
        pair.clock.ns += step
        if kind == "acquire" and cost > 0:
            out.append(pair.compiled.acquire(key, cost))
        elif looks and kind == "acquire":
            pair.compiled.acquire(key, 0)
        elif looks:
            pair.compiled.peek(key, cost)
    return out


# ------------------------------------------- looking leaves no trace, and the clock going back


@pytest.mark.parametrize("kind", ALL_KINDS)
@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_looking_never_changes_later_decisions(data: st.DataObject, kind: str) -> None:
    """With a clock that never goes back: ``peek`` and ``acquire(cost=0)`` leave no trace."""
    spec = data.draw(specs((kind,)))
    unit = make(spec).unit
    script = data.draw(
        st.lists(
            st.tuples(
                st.sampled_from(["acquire", "acquire", "peek"]),
                st.sampled_from(KEYS[:3]),
                st.integers(0, spec[1] + 1),
                steps(unit, backwards=False),
            ),
            max_size=40,
        )
    )
    assert acquisitions(make(spec), script, looks=True) == acquisitions(
        make(spec), script, looks=False
    )


class StepClock:
    """A clock read from a list the test changes: ``clock.t = 2.0``."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _after_a_look_and_the_clock_back(make: Callable[[StepClock], Compiled], look: str) -> Decision:
    """Admit one unit at 0 s, look at 2.5 s (or not), step back to 0.5 s, acquire."""
    clock = StepClock()
    limiter = make(clock)
    assert limiter.acquire("k")
    clock.t = 2.5
    if look == "peek":
        limiter.peek("k")
    elif look == "cost 0":
        limiter.acquire("k", 0)
    clock.t = 0.5
    return limiter.acquire("k")


LOOKS = [
    pytest.param(
        lambda clock: TokenBucket(1.0, 2, clock=clock),
        "cost 0",
        id="token-bucket-cost-0",
    ),
    pytest.param(
        lambda clock: FixedWindow(1, 1.0, clock=clock),
        "cost 0",
        id="fixed-window-cost-0",
    ),
    pytest.param(
        lambda clock: SlidingWindow(1, 1.0, exact=False, clock=clock),
        "cost 0",
        id="counter-cost-0",
    ),
    pytest.param(
        lambda clock: SlidingWindow(1, 1.0, clock=clock),
        "peek",
        id="sliding-log-peek",
    ),
    pytest.param(lambda clock: TokenBucket(1.0, 2, clock=clock), "peek", id="token-bucket-peek"),
    pytest.param(lambda clock: FixedWindow(1, 1.0, clock=clock), "peek", id="fixed-window-peek"),
    pytest.param(
        lambda clock: SlidingWindow(1, 1.0, exact=False, clock=clock), "peek", id="counter-peek"
    ),
    pytest.param(
        lambda clock: SlidingWindow(1, 1.0, clock=clock),
        "cost 0",
        id="sliding-log-cost-0",
    ),
]


@pytest.mark.parametrize(("make_limiter", "look"), LOOKS)
def test_looking_leaves_no_trace_when_the_clock_goes_back(
    make_limiter: Callable[[StepClock], Compiled], look: str
) -> None:
    """``peek`` and ``acquire(cost=0)`` ("look without consuming") change nothing later."""
    assert _after_a_look_and_the_clock_back(make_limiter, look) == (
        _after_a_look_and_the_clock_back(make_limiter, "nothing")
    )


def test_sliding_log_stamps_stay_sorted_when_the_clock_goes_back() -> None:
    clock = StepClock()
    limiter = SlidingWindow(2, 1.0, clock=clock)
    oracle = SlidingLogReference(2, 1_000_000_000)
    for t in (1.0, 0.0, 1.5):
        clock.t = t
        assert limiter.acquire("k") == expected(oracle.decide("k", 1, now_ns_from_seconds(t)), 2)


# ------------------------------------------------------------------ bad input

LIMITERS: list[Callable[..., Compiled]] = [
    lambda **kw: TokenBucket(10.0, 3, **kw),
    lambda **kw: SlidingWindow(3, 1.0, **kw),
    lambda **kw: SlidingWindow(3, 1.0, exact=False, **kw),
    lambda **kw: FixedWindow(3, 1.0, **kw),
]
LIMITER_IDS = ["token-bucket", "sliding-log", "counter", "fixed-window"]


@pytest.mark.parametrize("make_limiter", LIMITERS, ids=LIMITER_IDS)
@pytest.mark.parametrize("key", [1.5, None, True, False, [1], ("a",), {"a": 1}, object()])
def test_keys_that_are_not_str_bytes_or_int_are_rejected(
    make_limiter: Callable[..., Compiled], key: Any
) -> None:
    limiter = make_limiter(clock=FakeClock(0))
    for call in (
        lambda: limiter.acquire(key),
        lambda: limiter.peek(key),
        lambda: limiter.reset(key),
        lambda: limiter.acquire_many(["ok", key]),
    ):
        with pytest.raises(InvalidInput):
            call()
    assert len(limiter) == 0
    assert limiter.acquire("ok").remaining == 2  # nothing was charged by the failed batch


@pytest.mark.parametrize("make_limiter", LIMITERS, ids=LIMITER_IDS)
@pytest.mark.parametrize("cost", [-1, -(2**70), 1.0, 0.5, "1", None, True, 2**64])
def test_negative_or_non_int_costs_are_rejected(
    make_limiter: Callable[..., Compiled], cost: Any
) -> None:
    limiter = make_limiter(clock=FakeClock(0))
    with pytest.raises(InvalidInput):
        limiter.acquire("k", cost)
    with pytest.raises(InvalidInput):
        limiter.peek("k", cost)
    with pytest.raises(InvalidInput):
        limiter.acquire_many(["k"], [cost])
    assert len(limiter) == 0


@pytest.mark.parametrize("make_limiter", LIMITERS, ids=LIMITER_IDS)
@pytest.mark.parametrize(
    "costs", [[1, 2], [1, -1, 1], np.array([1.0, 1.0, 1.0]), np.ones((3, 1), dtype=np.int64)]
)
def test_acquire_many_rejects_costs_that_do_not_fit_the_keys(
    make_limiter: Callable[..., Compiled], costs: Any
) -> None:
    limiter = make_limiter(clock=FakeClock(0))
    with pytest.raises(InvalidInput):
        limiter.acquire_many(["a", "b", "c"], costs)
    assert len(limiter) == 0


@pytest.mark.parametrize(
    "make",
    [
        lambda: TokenBucket(0, 1),
        lambda: TokenBucket(-1.0, 1),
        lambda: TokenBucket(math.nan, 1),
        lambda: TokenBucket(math.inf, 1),
        lambda: TokenBucket("10", 1),
        lambda: TokenBucket(10.0, 0),
        lambda: TokenBucket(10.0, -3),
        lambda: TokenBucket(10.0, 1.5),
        lambda: TokenBucket(10.0, True),
        lambda: TokenBucket(1e-12, 2**62),  # tau overflows int64 nanoseconds
        lambda: SlidingWindow(0, 1.0),
        lambda: SlidingWindow(-1, 1.0),
        lambda: SlidingWindow(2.5, 1.0),
        lambda: SlidingWindow(3, 0),
        lambda: SlidingWindow(3, -1.0),
        lambda: SlidingWindow(3, math.nan),
        lambda: SlidingWindow(3, math.inf),
        lambda: SlidingWindow(3, 1e-10),  # under a nanosecond
        lambda: SlidingWindow(2**20 + 1, 1.0),  # one stamp per unit: use exact=False
        lambda: SlidingWindow(0, 1.0, exact=False),
        lambda: FixedWindow(0, 1.0),
        lambda: FixedWindow(3, 0.0),
        lambda: FixedWindow(3, math.nan),
        lambda: FixedWindow(True, 1.0),
        lambda: TokenBucket(10.0, 3, clock="not callable"),
    ],
)
def test_bad_constructor_arguments_are_rejected(make: Callable[[], object]) -> None:
    with pytest.raises(InvalidInput):
        make()


def test_the_largest_exact_window_and_a_larger_counter_are_accepted() -> None:
    assert SlidingWindow(2**20, 1.0, clock=FakeClock(0)).acquire("k", 2**20)
    assert SlidingWindow(2**20 + 1, 1.0, exact=False, clock=FakeClock(0)).acquire("k", 2**20 + 1)


class ClockBroke(Exception):
    pass


def _broken_clock() -> float:
    raise ClockBroke("the clock is gone")


@pytest.mark.parametrize("make_limiter", LIMITERS, ids=LIMITER_IDS)
def test_an_exception_from_the_clock_propagates(make_limiter: Callable[..., Compiled]) -> None:
    limiter = make_limiter(clock=_broken_clock)
    for call in (
        lambda: limiter.acquire("k"),
        lambda: limiter.peek("k"),
        lambda: limiter.acquire_many(["k", "j"]),
        limiter.sweep,
    ):
        with pytest.raises(ClockBroke, match="the clock is gone"):
            call()
    assert len(limiter) == 0


@pytest.mark.parametrize("make_limiter", LIMITERS, ids=LIMITER_IDS)
@pytest.mark.parametrize("reading", [math.nan, math.inf, -math.inf, None, "1.0", 1e300, True])
def test_a_clock_returning_no_usable_time_is_invalid_input(
    make_limiter: Callable[..., Compiled], reading: Any
) -> None:
    limiter = make_limiter(clock=lambda: reading)
    for call in (
        lambda: limiter.acquire("k"),
        lambda: limiter.peek("k"),
        lambda: limiter.acquire_many(["k"]),
        limiter.sweep,
    ):
        with pytest.raises(InvalidInput):
            call()
    assert len(limiter) == 0


# ----------------------------------------------------------- the public surface


def test_attributes_of_the_compiled_limiters() -> None:
    clock = FakeClock(0)
    bucket = TokenBucket(4.0, 10, clock=clock)
    assert (bucket.algorithm, bucket.limit) == ("token_bucket", 10)
    assert bucket.window == pytest.approx(10 / 4.0)
    log = SlidingWindow(5, 2.5, clock=clock)
    counter = SlidingWindow(5, 2.5, exact=False, clock=clock)
    fixed = FixedWindow(5, 2.5, clock=clock)
    assert [(x.algorithm, x.limit, x.window) for x in (log, counter, fixed)] == [
        ("sliding_window", 5, 2.5),
        ("sliding_window_counter", 5, 2.5),
        ("fixed_window", 5, 2.5),
    ]
    decision = bucket.acquire("k", 3)
    assert decision == Decision(True, 7, 0.0, 0.75, 10)
    assert decision and not Decision(False, 0, math.inf, 1.0, 10)
    batch = fixed.acquire_many(np.array([1, 2, 1], dtype=np.int64), 3)
    assert len(batch) == 3
    assert batch.allowed.tolist() == [True, True, False]
    assert batch.retry_after.tolist() == [0.0, 0.0, 2.5]


def test_the_default_clock_is_monotonic_time() -> None:
    limiter = TokenBucket(0.001, 3)  # one token per 1000 s: the test cannot wait for one
    assert [bool(limiter.acquire("k")) for _ in range(4)] == [True, True, True, False]
    denied = limiter.peek("k")
    assert 990.0 < denied.retry_after <= 1000.0
    assert len(limiter) == 1


# --------------------------------------------------------------------- threads


def test_threads_hammering_one_key_admit_exactly_the_burst() -> None:
    """A frozen clock: whatever the interleaving, exactly ``burst`` units pass in total."""
    burst, threads, attempts = 3_000, 6, 1_500
    limiter = TokenBucket(1.0, burst, clock=lambda: 1234.5)
    oracle = TokenBucketReference.from_rate(1.0, burst)
    oracle_total = sum(
        oracle.decide("k", 1, 1_234_500_000_000)[0] for _ in range(threads * attempts)
    )
    admitted = [0] * threads
    start = threading.Barrier(threads)

    def hammer(index: int) -> None:
        start.wait()
        for n in range(attempts):
            if index % 2:
                admitted[index] += bool(limiter.acquire("k"))
            elif n % 50 == 0:  # the batch path shares the same lock
                admitted[index] += int(limiter.acquire_many(["k"] * 50).allowed.sum())

    workers = [threading.Thread(target=hammer, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sum(admitted) == oracle_total == burst
    assert limiter.peek("k", 0).remaining == 0
    assert len(limiter) == 1
