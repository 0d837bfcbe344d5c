"""trusswork.retry circuit breakers sharing their state through a real Redis (Lua scripts)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Any

import pytest
import redis
import redis.asyncio
from redis.backoff import NoBackoff
from redis.retry import Retry

from trusswork.core.clock import FakeClock
from trusswork.core.errors import InvalidInput
from trusswork.core.metrics import MetricsRegistry
from trusswork.retry import BreakerState, CircuitBreaker, CircuitOpen


def fleet(
    client: Any, key: str, clock: FakeClock, count: int = 2, **options: Any
) -> list[CircuitBreaker]:
    """``count`` breakers (one per simulated process) sharing ``key``."""
    settings_: dict[str, Any] = {
        "window_size": 10,
        "minimum_calls": 4,
        "open_for": 30.0,
        "half_open_calls": 2,
        "clock": clock,
    }
    settings_.update(options)
    return [
        CircuitBreaker(
            "shared", redis=client, redis_key=key, registry=MetricsRegistry(), **settings_
        )
        for _ in range(count)
    ]


def fail() -> None:
    raise ConnectionError("refused")


def ok() -> str:
    return "ok"


def state_of(breaker: CircuitBreaker) -> BreakerState:
    return breaker.state


def test_breakers_sharing_a_key_open_together(
    redis_client: redis.Redis, redis_prefix: str, fake_clock: FakeClock
) -> None:
    first, second = fleet(redis_client, f"{redis_prefix}b", fake_clock)
    for breaker in (first, second, first, second):  # 4 failures spread over two processes
        with pytest.raises(ConnectionError):
            breaker.call(fail)
    assert state_of(first) is BreakerState.OPEN
    assert state_of(second) is BreakerState.OPEN
    fake_clock.advance(10)
    with pytest.raises(CircuitOpen) as caught:
        second.call(ok)
    assert caught.value.retry_after == pytest.approx(20.0)
    assert second.metrics().failures == 4


def test_listeners_hear_the_changes_their_process_observes(
    redis_client: redis.Redis, redis_prefix: str, fake_clock: FakeClock
) -> None:
    first, second = fleet(redis_client, f"{redis_prefix}b", fake_clock, minimum_calls=1)
    heard: list[tuple[str, str]] = []
    second.add_listener(lambda old, new, b: heard.append((old.value, new.value)))
    with pytest.raises(ConnectionError):
        first.call(fail)
    assert heard == []  # the second process has not looked yet
    with pytest.raises(CircuitOpen):
        second.call(ok)
    assert heard == [("closed", "open")]


def test_half_open_probe_limit_is_fleet_wide(
    redis_client: redis.Redis, redis_prefix: str, fake_clock: FakeClock
) -> None:
    breakers = fleet(redis_client, f"{redis_prefix}b", fake_clock, count=3, half_open_calls=2)
    breakers[0].force_open()
    fake_clock.advance(30)
    with breakers[0], breakers[1]:  # two probes in two processes
        with pytest.raises(CircuitOpen) as caught:
            breakers[2].call(ok)
        assert caught.value.retry_after == 0.0
    assert all(state_of(b) is BreakerState.CLOSED for b in breakers)


def test_a_probe_lost_with_its_process_does_not_wedge_the_fleet(
    redis_client: redis.Redis, redis_prefix: str, fake_clock: FakeClock
) -> None:
    crashed, survivor = fleet(redis_client, f"{redis_prefix}b", fake_clock, half_open_calls=1)
    crashed.force_open()
    fake_clock.advance(30)
    crashed.__enter__()  # takes the only probe and never reports
    with pytest.raises(CircuitOpen):
        survivor.call(ok)
    fake_clock.advance(30)
    assert survivor.call(ok) == "ok"
    assert state_of(survivor) is BreakerState.CLOSED


def test_a_failed_probe_reopens_the_fleet(
    redis_client: redis.Redis, redis_prefix: str, fake_clock: FakeClock
) -> None:
    first, second = fleet(redis_client, f"{redis_prefix}b", fake_clock, half_open_calls=1)
    first.force_open()
    fake_clock.advance(30)
    with pytest.raises(ConnectionError):
        second.call(fail)
    with pytest.raises(CircuitOpen) as caught:
        first.call(ok)
    assert caught.value.retry_after == pytest.approx(30.0)


def test_reset_clears_the_shared_window(
    redis_client: redis.Redis, redis_prefix: str, fake_clock: FakeClock
) -> None:
    first, second = fleet(redis_client, f"{redis_prefix}b", fake_clock)
    for _ in range(3):
        with pytest.raises(ConnectionError):
            first.call(fail)
    assert second.metrics().calls == 3
    second.reset()
    assert first.metrics().calls == 0
    with pytest.raises(ConnectionError):
        first.call(fail)
    assert state_of(first) is BreakerState.CLOSED  # one failure after the reset


def test_shared_time_window_expires(
    redis_client: redis.Redis, redis_prefix: str, fake_clock: FakeClock
) -> None:
    first, second = fleet(
        redis_client, f"{redis_prefix}b", fake_clock, window="time", window_size=10
    )
    for _ in range(3):
        with pytest.raises(ConnectionError):
            first.call(fail)
    fake_clock.advance(10.5)
    assert second.metrics().calls == 0
    with pytest.raises(ConnectionError):
        second.call(fail)
    assert state_of(second) is BreakerState.CLOSED


def test_slow_calls_are_shared(
    redis_client: redis.Redis, redis_prefix: str, fake_clock: FakeClock
) -> None:
    (breaker,) = fleet(
        redis_client,
        f"{redis_prefix}b",
        fake_clock,
        count=1,
        slow_call_duration=1.0,
        slow_call_rate=0.5,
        minimum_calls=2,
    )

    def slow() -> str:
        fake_clock.advance(2.0)
        return "late"

    assert breaker.call(ok) == "ok"
    assert breaker.call(slow) == "late"
    assert state_of(breaker) is BreakerState.OPEN
    assert breaker.metrics().slow_calls == 1


def test_lua_window_stays_exact_under_threads(
    redis_client: redis.Redis, redis_prefix: str, fake_clock: FakeClock
) -> None:
    threads, per_thread = 6, 60
    breakers = fleet(
        redis_client,
        f"{redis_prefix}b",
        fake_clock,
        count=threads,
        window_size=1000,
        failure_rate=1.0,
    )

    def hammer(breaker: CircuitBreaker) -> None:
        for i in range(per_thread):
            with contextlib.suppress(ConnectionError):
                breaker.call(fail if i % 2 else ok)

    workers = [threading.Thread(target=hammer, args=(b,)) for b in breakers]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    snapshot = breakers[0].metrics()
    assert (snapshot.calls, snapshot.failures) == (threads * per_thread, threads * per_thread // 2)


def test_probes_stay_limited_under_threads(
    redis_client: redis.Redis, redis_prefix: str, fake_clock: FakeClock
) -> None:
    threads = 12
    breakers = fleet(redis_client, f"{redis_prefix}b", fake_clock, count=threads, half_open_calls=3)
    breakers[0].force_open()
    fake_clock.advance(30)
    barrier = threading.Barrier(threads)
    admitted: list[CircuitBreaker] = []
    lock = threading.Lock()

    def contend(breaker: CircuitBreaker) -> None:
        barrier.wait()
        with contextlib.suppress(CircuitOpen):
            breaker.__enter__()
            with lock:
                admitted.append(breaker)

    workers = [threading.Thread(target=contend, args=(b,)) for b in breakers]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(admitted) == 3


def test_async_client_with_async_code(redis_url: str, redis_prefix: str) -> None:
    clock = FakeClock()

    async def main() -> None:
        client = redis.asyncio.Redis.from_url(redis_url)
        try:
            first, second = fleet(client, f"{redis_prefix}b", clock, minimum_calls=2)

            @first
            async def get() -> str:
                raise ConnectionError("down")

            with pytest.raises(ConnectionError):
                await get()
            with pytest.raises(ConnectionError):
                async with second:
                    raise ConnectionError("down")
            assert (await second.ametrics()).state is BreakerState.OPEN
            with pytest.raises(CircuitOpen):
                await get()
            assert first.state is BreakerState.OPEN  # the state last observed
            await first.areset()
            assert (await second.ametrics()).state is BreakerState.CLOSED
            with pytest.raises(InvalidInput, match=r"redis\.asyncio"):
                first.call(ok)
            with pytest.raises(InvalidInput, match=r"redis\.asyncio"):
                first(ok)
            with pytest.raises(InvalidInput, match="areset"):
                first.reset()
            await client.delete(f"{redis_prefix}b", f"{redis_prefix}b:window")
        finally:
            await client.aclose()

    asyncio.run(main())


def test_sync_client_serves_async_code_too(
    redis_client: redis.Redis, redis_prefix: str, fake_clock: FakeClock
) -> None:
    first, second = fleet(redis_client, f"{redis_prefix}b", fake_clock, minimum_calls=1)

    @first
    async def get() -> str:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        asyncio.run(get())
    assert state_of(second) is BreakerState.OPEN


def test_redis_outage_falls_back_to_a_local_breaker(
    caplog: pytest.LogCaptureFixture, fake_clock: FakeClock
) -> None:
    # No client-side retries: redis-py's default would back off for seconds per call.
    down = redis.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )
    breaker = CircuitBreaker(
        "outage", redis=down, minimum_calls=2, clock=fake_clock, registry=MetricsRegistry()
    )
    with caplog.at_level(logging.WARNING, logger="trusswork.retry"):
        assert breaker.call(ok) == "ok"
        assert breaker.call(ok) == "ok"
        for _ in range(2):
            with pytest.raises(ConnectionError, match="refused"):
                breaker.call(fail)
        with pytest.raises(CircuitOpen):
            breaker.call(ok)
    assert sum("cannot reach Redis" in r.getMessage() for r in caplog.records) == 1
    assert breaker.metrics().state is BreakerState.OPEN
