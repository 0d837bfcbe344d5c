"""trusswork.retry circuit breaker: the state machine, windows, hooks and concurrency, locally."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import examples
from trusswork.core.clock import FakeClock
from trusswork.core.errors import InvalidInput, Unavailable
from trusswork.core.metrics import MetricsRegistry
from trusswork.retry import BreakerMetrics, BreakerState, CircuitBreaker, CircuitOpen


def make(clock: FakeClock, **options: Any) -> CircuitBreaker:
    settings_: dict[str, Any] = {
        "window_size": 10,
        "minimum_calls": 4,
        "open_for": 30.0,
        "half_open_calls": 2,
        "clock": clock,
        "registry": MetricsRegistry(),
    }
    settings_.update(options)
    return CircuitBreaker("dep", **settings_)


def state_of(breaker: CircuitBreaker) -> BreakerState:
    """``breaker.state``, read through a call so type checkers do not narrow it between reads."""
    return breaker.state


def fail() -> None:
    raise ConnectionError("refused")


def ok() -> str:
    return "ok"


def outcome(breaker: CircuitBreaker, fn: Callable[[], Any]) -> str:
    """Run ``fn`` through the breaker; name what happened."""
    try:
        breaker.call(fn)
    except CircuitOpen:
        return "rejected"
    except ConnectionError:
        return "failed"
    return "ok"


def trip(breaker: CircuitBreaker, failures: int = 4) -> None:
    for _ in range(failures):
        assert outcome(breaker, fail) == "failed"
    assert state_of(breaker) is BreakerState.OPEN


# ---------------------------------------------------------------- state machine


def test_opens_at_the_threshold_only_after_minimum_calls(fake_clock: FakeClock) -> None:
    breaker = make(fake_clock, minimum_calls=4)
    for _ in range(3):
        assert outcome(breaker, fail) == "failed"
        assert state_of(breaker) == "closed"  # 100 % failures, but fewer than 4 calls
    assert outcome(breaker, fail) == "failed"
    assert state_of(breaker) == "open"


def test_rate_below_the_threshold_keeps_it_closed(fake_clock: FakeClock) -> None:
    breaker = make(fake_clock, failure_rate=0.5, minimum_calls=4)
    for fn in (fail, ok, ok, ok, fail, ok, ok):
        outcome(breaker, fn)
    assert state_of(breaker) is BreakerState.CLOSED
    assert breaker.metrics() == BreakerMetrics(BreakerState.CLOSED, 7, 2, 0, 0.0)
    assert outcome(breaker, fail) == "failed"
    assert outcome(breaker, fail) == "failed"  # 4 of 9 failed: still below a half
    assert state_of(breaker) is BreakerState.CLOSED
    assert outcome(breaker, fail) == "failed"  # 5 of 10
    assert state_of(breaker) is BreakerState.OPEN


def test_open_breaker_rejects_without_calling_and_says_when(fake_clock: FakeClock) -> None:
    breaker = make(fake_clock, open_for=30.0)
    trip(breaker)
    fake_clock.advance(12.5)
    called = []
    with pytest.raises(CircuitOpen) as caught:
        breaker.call(lambda: called.append(1))
    error = caught.value
    assert called == []
    assert error.retry_after == pytest.approx(17.5)
    assert error.breaker == "dep"
    assert isinstance(error, Unavailable) and isinstance(error, ConnectionError)
    assert error.code == "circuit-open" and error.http_status == 503
    assert "'dep'" in str(error) and "17.500 s" in str(error)
    assert breaker.metrics().retry_after == pytest.approx(17.5)


def test_half_open_after_open_for_and_closes_after_good_probes(fake_clock: FakeClock) -> None:
    breaker = make(fake_clock, open_for=30.0, half_open_calls=2)
    trip(breaker)
    fake_clock.advance(29.999)
    assert state_of(breaker) is BreakerState.OPEN
    fake_clock.advance(0.001)
    assert state_of(breaker) is BreakerState.HALF_OPEN
    assert outcome(breaker, ok) == "ok"
    assert state_of(breaker) is BreakerState.HALF_OPEN  # one of two probes done
    assert outcome(breaker, ok) == "ok"
    assert state_of(breaker) is BreakerState.CLOSED
    assert breaker.metrics().calls == 0  # the window starts afresh


def test_a_failed_probe_reopens_for_another_open_for(fake_clock: FakeClock) -> None:
    breaker = make(fake_clock, open_for=30.0, half_open_calls=2, failure_rate=0.5)
    trip(breaker)
    fake_clock.advance(30)
    assert outcome(breaker, ok) == "ok"
    assert outcome(breaker, fail) == "failed"  # 1 of 2 probes failed: rate 0.5 >= 0.5
    assert state_of(breaker) is BreakerState.OPEN
    with pytest.raises(CircuitOpen) as caught:
        breaker.call(ok)
    assert caught.value.retry_after == pytest.approx(30.0)


def test_half_open_admits_only_half_open_calls_probes(fake_clock: FakeClock) -> None:
    breaker = make(fake_clock, half_open_calls=2)
    trip(breaker)
    fake_clock.advance(30)
    with breaker, breaker:  # two probes in flight
        with pytest.raises(CircuitOpen) as caught:
            breaker.call(ok)
        assert caught.value.retry_after == 0.0
        assert "half-open" in str(caught.value)
    assert state_of(breaker) is BreakerState.CLOSED


def test_a_round_of_hung_probes_is_restarted_after_open_for(fake_clock: FakeClock) -> None:
    breaker = make(fake_clock, half_open_calls=1, open_for=30.0)
    trip(breaker)
    fake_clock.advance(30)
    with pytest.raises(ConnectionError), breaker:  # a probe that hangs for 30 s...
        assert outcome(breaker, ok) == "rejected"
        fake_clock.advance(30)
        assert outcome(breaker, ok) == "ok"  # ...does not wedge the breaker
        raise ConnectionError("the hung probe finally fails")
    assert state_of(breaker) is BreakerState.CLOSED  # its late outcome was dropped


def test_calls_admitted_before_opening_do_not_count_as_probes(fake_clock: FakeClock) -> None:
    breaker = make(fake_clock, half_open_calls=1)
    with pytest.raises(ConnectionError), breaker:  # admitted while closed...
        trip(breaker)  # ...the breaker opens and half-opens meanwhile...
        fake_clock.advance(30)
        assert outcome(breaker, ok) == "ok"  # ...and the probe closes it
        raise ConnectionError("late failure of the old call")
    assert state_of(breaker) is BreakerState.CLOSED
    assert breaker.metrics().failures == 0


def test_reset_and_force_open(fake_clock: FakeClock) -> None:
    breaker = make(fake_clock)
    breaker.force_open()
    assert outcome(breaker, ok) == "rejected"
    breaker.reset()
    assert state_of(breaker) is BreakerState.CLOSED
    assert outcome(breaker, ok) == "ok"
    assert repr(breaker) == (
        "CircuitBreaker('dep', state='closed', failure_rate=0.5, window='count', window_size=10)"
    )


# ---------------------------------------------------------------- windows and outcomes


def test_slow_call_rate_opens_the_breaker(fake_clock: FakeClock) -> None:
    breaker = make(fake_clock, slow_call_duration=1.0, slow_call_rate=0.5, minimum_calls=4)

    def slow() -> str:
        fake_clock.advance(1.5)
        return "late"

    for fn in (ok, slow, ok):
        assert breaker.call(fn) in ("ok", "late")
    assert breaker.metrics().slow_calls == 1
    assert state_of(breaker) is BreakerState.CLOSED
    assert breaker.call(slow) == "late"  # 2 of 4 slow
    assert state_of(breaker) is BreakerState.OPEN
    assert breaker.metrics().slow_call_rate == 0.5
    assert breaker.metrics().failure_rate == 0.0


def test_time_window_forgets_old_calls(fake_clock: FakeClock) -> None:
    breaker = make(fake_clock, window="time", window_size=10, minimum_calls=4)
    for _ in range(3):
        outcome(breaker, fail)
    assert breaker.metrics().calls == 3
    fake_clock.advance(10)
    assert breaker.metrics().calls == 0
    outcome(breaker, fail)
    assert state_of(breaker) is BreakerState.CLOSED  # the three old failures fell out
    fake_clock.advance(5)
    for _ in range(3):
        outcome(breaker, fail)
    assert state_of(breaker) is BreakerState.OPEN


def test_time_window_slides_per_bucket(fake_clock: FakeClock) -> None:
    breaker = make(fake_clock, window="time", window_size=4, minimum_calls=100)
    for step in (1.0, 1.0, 1.0, 0.9):  # calls at t = 0, 1, 2, 3; ten buckets of 0.4 s
        outcome(breaker, fail)
        fake_clock.advance(step)
    assert breaker.metrics().calls == 4  # t = 3.9
    fake_clock.advance(0.3)  # t = 4.2: the call at t = 0 has left the window
    assert breaker.metrics().calls == 3
    fake_clock.advance(1.0)  # t = 5.2: so has the call at t = 1
    assert breaker.metrics().calls == 2


def test_count_window_slides(fake_clock: FakeClock) -> None:
    breaker = make(fake_clock, window_size=4, minimum_calls=4, failure_rate=0.75)
    for fn in (fail, fail, ok, ok, ok):
        outcome(breaker, fn)
    assert breaker.metrics() == BreakerMetrics(BreakerState.CLOSED, 4, 1, 0, 0.0)
    for fn in (fail, fail):
        outcome(breaker, fn)
    assert state_of(breaker) is BreakerState.CLOSED  # ok, ok, fail, fail: 0.5
    outcome(breaker, fail)
    assert state_of(breaker) is BreakerState.OPEN  # ok, fail, fail, fail: 0.75


def test_ignore_on_counts_neither_way(fake_clock: FakeClock) -> None:
    breaker = make(fake_clock, ignore_on=KeyError, minimum_calls=2)

    def missing() -> None:
        raise KeyError("k")

    for _ in range(5):
        with pytest.raises(KeyError):
            breaker.call(missing)
    assert breaker.metrics().calls == 0


def test_errors_outside_record_on_count_as_successes(fake_clock: FakeClock) -> None:
    breaker = make(fake_clock, record_on=ConnectionError, minimum_calls=2)

    def bad_request() -> None:
        raise ValueError("400")

    for _ in range(4):
        with pytest.raises(ValueError):
            breaker.call(bad_request)
    assert breaker.metrics() == BreakerMetrics(BreakerState.CLOSED, 4, 0, 0, 0.0)


def test_failure_if_result_counts_bad_results(fake_clock: FakeClock) -> None:
    breaker = make(fake_clock, failure_if_result=lambda r: r is None, minimum_calls=2)
    assert breaker.call(lambda: None) is None
    assert breaker.call(lambda: None) is None
    assert state_of(breaker) is BreakerState.OPEN


def test_a_raising_result_predicate_hands_the_probe_back(fake_clock: FakeClock) -> None:
    def predicate(result: object) -> bool:
        raise RuntimeError("bug in predicate")

    breaker = make(fake_clock, failure_if_result=predicate, half_open_calls=1)
    breaker.force_open()
    fake_clock.advance(30)
    with pytest.raises(RuntimeError):
        breaker.call(ok)
    with pytest.raises(RuntimeError):
        breaker.call(ok)  # admitted: the first probe's permit came back


# ---------------------------------------------------------------- listeners, metrics, logs


def test_listeners_run_in_order_and_a_raising_one_is_logged(
    fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[tuple[str, str, str]] = []

    def broken(old: BreakerState, new: BreakerState, breaker: CircuitBreaker) -> None:
        raise RuntimeError("listener bug")

    breaker = make(
        fake_clock,
        listeners=[lambda o, n, b: seen.append(("first", o.value, n.value)), broken],
    )
    breaker.add_listener(lambda o, n, b: seen.append(("last", o.value, b.name)))
    with caplog.at_level(logging.WARNING, logger="trusswork.retry"):
        trip(breaker)
        fake_clock.advance(30)
        assert outcome(breaker, ok) == "ok"
    assert seen == [
        ("first", "closed", "open"),
        ("last", "closed", "dep"),
        ("first", "open", "half_open"),
        ("last", "open", "dep"),
    ]
    assert sum("listener" in r.getMessage() for r in caplog.records) == 2
    changes = [r for r in caplog.records if getattr(r, "to", None) is not None]
    assert [(r.breaker, r.__dict__["from"], r.to) for r in changes] == [  # type: ignore[attr-defined]
        ("dep", "closed", "open"),
        ("dep", "open", "half_open"),
    ]
    assert all(r.levelno == logging.WARNING for r in changes)


def test_metrics_track_state_transitions_and_rejections(fake_clock: FakeClock) -> None:
    registry = MetricsRegistry()
    breaker = make(fake_clock, registry=registry, half_open_calls=1)
    trip(breaker)
    outcome(breaker, ok)
    outcome(breaker, ok)
    text = registry.exposition()
    assert 'trusswork_breaker_state{breaker="dep"} 1' in text
    assert 'trusswork_breaker_rejected_total{breaker="dep"} 2' in text
    assert (
        'trusswork_breaker_transitions_total{breaker="dep",from_state="closed",to_state="open"} 1'
        in text
    )
    fake_clock.advance(30)
    assert state_of(breaker) is BreakerState.HALF_OPEN
    assert 'trusswork_breaker_state{breaker="dep"} 2' in registry.exposition()


# ---------------------------------------------------------------- decorator, context manager, async


def test_sync_decorator_keeps_the_signature(fake_clock: FakeClock) -> None:
    breaker = make(fake_clock, minimum_calls=2)

    @breaker
    def get(key: str, *, default: int = 0) -> int:
        """Fetch a key."""
        if key == "down":
            raise ConnectionError(key)
        return default

    assert get("a", default=3) == 3
    assert get.__name__ == "get" and get.__doc__ == "Fetch a key."
    assert str(inspect.signature(get)) == "(key: 'str', *, default: 'int' = 0) -> 'int'"
    for _ in range(2):
        with pytest.raises(ConnectionError):
            get("down")
    with pytest.raises(CircuitOpen):
        get("a")


def test_sync_context_manager_counts_the_block(fake_clock: FakeClock) -> None:
    breaker = make(fake_clock, minimum_calls=2)
    for _ in range(2):
        with pytest.raises(ConnectionError), breaker:
            raise ConnectionError("x")
    with pytest.raises(CircuitOpen), breaker:
        pytest.fail("the block must not run")  # pragma: no cover


def test_async_decorator_context_manager_and_call(fake_clock: FakeClock) -> None:
    breaker = make(fake_clock, minimum_calls=3)

    @breaker
    async def get(key: str) -> str:
        await asyncio.sleep(0)
        if key == "down":
            raise ConnectionError(key)
        return key

    async def main() -> None:
        assert inspect.iscoroutinefunction(get)
        assert await get("a") == "a"
        with pytest.raises(ConnectionError):
            await get("down")
        with pytest.raises(ConnectionError):
            async with breaker:
                raise ConnectionError("block")
        with pytest.raises(ConnectionError):
            await breaker.call(get, "down")
        assert state_of(breaker) is BreakerState.OPEN  # 3 of 4 failed
        with pytest.raises(CircuitOpen):
            await get("a")
        with pytest.raises(CircuitOpen):
            async with breaker:
                pass  # pragma: no cover

    asyncio.run(main())


def test_cancelled_probe_hands_its_permit_back(fake_clock: FakeClock) -> None:
    breaker = make(fake_clock, half_open_calls=1)
    trip(breaker)
    fake_clock.advance(30)
    started = asyncio.Event()

    @breaker
    async def hang() -> None:
        started.set()
        await asyncio.Event().wait()

    async def main() -> None:
        task = asyncio.create_task(hang())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert state_of(breaker) is BreakerState.HALF_OPEN
        assert breaker.metrics().calls == 0  # the cancelled probe did not count

        async def probe() -> str:
            return "probe"

        assert await breaker.call(probe) == "probe"

    asyncio.run(main())
    assert state_of(breaker) is BreakerState.CLOSED


def test_keyboard_interrupt_is_not_a_failure(fake_clock: FakeClock) -> None:
    breaker = make(fake_clock, minimum_calls=1)

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        breaker.call(interrupted)
    assert breaker.metrics().calls == 0
    assert state_of(breaker) is BreakerState.CLOSED


def test_nested_with_on_two_breakers_settles_each(fake_clock: FakeClock) -> None:
    outer = make(fake_clock, minimum_calls=1)
    inner = CircuitBreaker("inner", clock=fake_clock, registry=MetricsRegistry(), minimum_calls=1)
    with pytest.raises(ConnectionError), outer, inner:
        raise ConnectionError("x")
    assert state_of(outer) is BreakerState.OPEN and state_of(inner) is BreakerState.OPEN


# ---------------------------------------------------------------- threads


def test_threads_hammering_keep_exact_counts(fake_clock: FakeClock) -> None:
    threads, per_thread = 8, 1500
    breaker = make(fake_clock, window_size=threads * per_thread, failure_rate=1.0)

    @breaker
    def work(i: int) -> int:
        if i % 3 == 0:
            raise ConnectionError(i)
        return i

    def hammer() -> None:
        for i in range(per_thread):
            with contextlib.suppress(ConnectionError):
                work(i)

    workers = [threading.Thread(target=hammer) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    snapshot = breaker.metrics()
    assert snapshot.calls == threads * per_thread
    assert snapshot.failures == threads * len(range(0, per_thread, 3))
    assert snapshot.state is BreakerState.CLOSED


def test_threads_racing_for_probes_get_exactly_half_open_calls(fake_clock: FakeClock) -> None:
    breaker = make(fake_clock, half_open_calls=3)
    trip(breaker)
    fake_clock.advance(30)
    threads = 16
    barrier = threading.Barrier(threads)
    release = threading.Event()
    admitted: list[int] = []
    rejected: list[int] = []
    lock = threading.Lock()

    def probe() -> None:
        with lock:
            admitted.append(1)
        release.wait(10)

    def contend() -> None:
        barrier.wait()
        try:
            breaker.call(probe)
        except CircuitOpen:
            with lock:
                rejected.append(1)

    workers = [threading.Thread(target=contend) for _ in range(threads)]
    for worker in workers:
        worker.start()
    while len(admitted) + len(rejected) < threads:  # every thread has asked once
        threading.Event().wait(0.001)
    release.set()
    for worker in workers:
        worker.join()
    assert len(admitted) == 3
    assert state_of(breaker) is BreakerState.CLOSED


# ---------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"failure_rate": 0}, "failure_rate"),
        ({"failure_rate": 1.5}, "failure_rate"),
        ({"failure_rate": True}, "failure_rate"),
        ({"slow_call_rate": -0.1}, "slow_call_rate"),
        ({"slow_call_duration": 0}, "slow_call_duration"),
        ({"slow_call_duration": float("inf")}, "slow_call_duration"),
        ({"window": "sliding"}, "window"),
        ({"window_size": 0}, "window_size"),
        ({"window_size": 2.5}, "window_size"),
        ({"window": "time", "window_size": -1}, "window_size"),
        ({"window": "time", "window_size": 100_000}, "window_size"),
        ({"minimum_calls": 0}, "minimum_calls"),
        ({"window_size": 5, "minimum_calls": 6}, "minimum_calls"),
        ({"open_for": -1}, "open_for"),
        ({"open_for": float("nan")}, "open_for"),
        ({"half_open_calls": 0}, "half_open_calls"),
        ({"record_on": ()}, "record_on"),
        ({"record_on": "ConnectionError"}, "record_on"),
        ({"ignore_on": int}, "ignore_on"),
        ({"failure_if_result": 3}, "failure_if_result"),
        ({"listeners": [3]}, "listener"),
        ({"registry": {}}, "registry"),
        ({"redis_key": "k"}, "redis_key"),
        ({"redis": object()}, "redis"),
    ],
)
def test_invalid_arguments_are_rejected_by_name(options: dict[str, Any], named: str) -> None:
    with pytest.raises(InvalidInput, match=named):
        CircuitBreaker("x", **options)


def test_name_must_be_a_non_empty_string() -> None:
    with pytest.raises(InvalidInput, match="name"):
        CircuitBreaker("")


def test_decorating_a_non_callable_is_rejected(fake_clock: FakeClock) -> None:
    with pytest.raises(InvalidInput, match="callable"):
        make(fake_clock)(42)  # type: ignore[arg-type]


# ---------------------------------------------------------------- property: count window vs oracle


def oracle(outcomes: list[bool], size: int, minimum: int, rate: float) -> int | None:
    """Index of the call after which a count-window breaker opens (True = failure), or None."""
    for end in range(1, len(outcomes) + 1):
        window = outcomes[max(0, end - size) : end]
        if len(window) >= minimum and sum(window) / len(window) >= rate:
            return end - 1
    return None


@settings(max_examples=examples(200), deadline=None)
@given(
    outcomes=st.lists(st.booleans(), max_size=60),
    size=st.integers(1, 12),
    minimum=st.integers(1, 12),
    rate=st.sampled_from([0.1, 0.25, 1 / 3, 0.5, 0.6, 0.75, 1.0]),
)
def test_count_window_matches_the_oracle(
    outcomes: list[bool], size: int, minimum: int, rate: float
) -> None:
    minimum = min(minimum, size)
    clock = FakeClock()
    breaker = CircuitBreaker(
        "prop",
        window_size=size,
        minimum_calls=minimum,
        failure_rate=rate,
        clock=clock,
        registry=MetricsRegistry(),
    )
    opened_at = oracle(outcomes, size, minimum, rate)
    for index, failed in enumerate(outcomes):
        assert outcome(breaker, fail if failed else ok) == ("failed" if failed else "ok")
        window = outcomes[max(0, index + 1 - size) : index + 1]
        snapshot = breaker.metrics()
        if opened_at is not None and index >= opened_at:
            assert snapshot.state is BreakerState.OPEN
            break
        assert snapshot == BreakerMetrics(BreakerState.CLOSED, len(window), sum(window), 0, 0.0)


# ---------------------------------------------------------------- with the retry core


def test_a_retry_around_a_breaker_waits_for_the_half_open_state(fake_clock: FakeClock) -> None:
    from trusswork.retry import retry

    breaker = make(fake_clock, half_open_calls=1, open_for=30.0)
    trip(breaker)
    fake_clock.advance(10)

    @retry(attempts=2, clock=fake_clock, jitter=None, wait_initial=0.1)
    @breaker
    def fetch() -> str:
        return "ok"

    assert fetch() == "ok"
    assert fake_clock.sleeps == [pytest.approx(20.0)]
    assert state_of(breaker) is BreakerState.CLOSED
