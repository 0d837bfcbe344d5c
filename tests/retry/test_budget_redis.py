"""trusswork.retry retry budgets sharing their level through a real Redis (one Lua script)."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest
import redis
import redis.asyncio
from redis.backoff import NoBackoff
from redis.retry import Retry

from helpers import free_port
from trusswork.core.clock import FakeClock
from trusswork.core.errors import InvalidInput
from trusswork.core.metrics import MetricsRegistry
from trusswork.retry import RetryBudget


def shared(client: Any, key: str, clock: FakeClock, **options: Any) -> RetryBudget:
    """One process's budget on the shared ``key``."""
    settings_: dict[str, Any] = {"max_tokens": 10, "token_ratio": 0.1, "clock": clock}
    settings_.update(options)
    return RetryBudget(
        "shared", redis=client, redis_key=key, registry=MetricsRegistry(), **settings_
    )


def dead_client() -> redis.Redis:
    # Nothing listens on a fresh free port; no client-side retries, so each try fails fast.
    return redis.Redis(
        host="127.0.0.1",
        port=free_port(),
        socket_connect_timeout=0.5,
        retry=Retry(NoBackoff(), 0),
    )


def test_two_budgets_on_one_key_share_the_level(
    redis_client: redis.Redis, redis_prefix: str, fake_clock: FakeClock
) -> None:
    key = f"{redis_prefix}budget"
    first = shared(redis_client, key, fake_clock)
    second = shared(redis_client, key, fake_clock)
    assert [first.record_failure(), second.record_failure(), first.record_failure()] == [
        True,
        True,
        True,
    ]  # 9, 8, 7
    assert second.record_failure() is True  # 6: the second process sees the first's failures
    assert first.record_failure() is False  # 5: at half, refused for the whole fleet
    assert second.flush() == 5.0
    assert redis_client.get(key) == b"5000"
    assert 0 < redis_client.pttl(key) <= 3_600_000


def test_successes_are_batched_and_sent_every_flush_every(
    redis_client: redis.Redis, redis_prefix: str, fake_clock: FakeClock
) -> None:
    key = f"{redis_prefix}budget"
    writer = shared(redis_client, key, fake_clock, flush_every=5)
    reader = shared(redis_client, key, fake_clock)
    for _ in range(4):
        writer.record_failure()  # shared level 6
    for _ in range(4):
        writer.record_success()
    assert writer.tokens == pytest.approx(6.4)  # its own view counts them at once
    assert reader.flush() == 6.0  # not sent yet
    writer.record_success()  # the fifth: the batch goes out
    assert reader.flush() == 6.5


def test_successes_are_sent_after_flush_interval(
    redis_client: redis.Redis, redis_prefix: str, fake_clock: FakeClock
) -> None:
    key = f"{redis_prefix}budget"
    writer = shared(redis_client, key, fake_clock, flush_every=1000, flush_interval=2.0)
    reader = shared(redis_client, key, fake_clock)
    for _ in range(4):
        writer.record_failure()
    writer.record_success()
    assert reader.flush() == 6.0
    fake_clock.advance(2.0)
    writer.record_success()  # the first success at least 2 s after the last send
    assert reader.flush() == 6.2


def test_queued_successes_go_out_with_the_next_failure(
    redis_client: redis.Redis, redis_prefix: str, fake_clock: FakeClock
) -> None:
    key = f"{redis_prefix}budget"
    first = shared(redis_client, key, fake_clock, flush_every=1000)
    for _ in range(4):
        first.record_failure()  # 6
    for _ in range(10):
        first.record_success()  # queued: +1
    assert first.record_failure() is True  # 6 + 1 - 1 = 6 > 5
    assert redis_client.get(key) == b"6000"


def test_a_full_bucket_leaves_no_key_behind(
    redis_client: redis.Redis, redis_prefix: str, fake_clock: FakeClock
) -> None:
    key = f"{redis_prefix}budget"
    budget = shared(redis_client, key, fake_clock, flush_every=1, token_ratio=1)
    budget.record_failure()
    assert redis_client.exists(key) == 1
    budget.record_success()
    assert redis_client.exists(key) == 0
    assert budget.flush() == 10.0


def test_reset_fills_the_bucket_for_the_whole_fleet(
    redis_client: redis.Redis, redis_prefix: str, fake_clock: FakeClock
) -> None:
    key = f"{redis_prefix}budget"
    first = shared(redis_client, key, fake_clock)
    second = shared(redis_client, key, fake_clock)
    for _ in range(6):
        first.record_failure()
    second.reset()
    assert first.flush() == 10.0
    assert first.record_failure() is True


def test_the_key_expires_after_ttl(
    redis_client: redis.Redis, redis_prefix: str, fake_clock: FakeClock
) -> None:
    key = f"{redis_prefix}budget"
    budget = shared(redis_client, key, fake_clock, ttl=0.05)
    budget.record_failure()
    assert 0 < redis_client.pttl(key) <= 50


def test_default_key_is_named_after_the_budget(redis_client: redis.Redis) -> None:
    budget = RetryBudget("tw-test-default-key", redis=redis_client, registry=MetricsRegistry())
    try:
        budget.record_failure()
        assert redis_client.get("trusswork:retry-budget:tw-test-default-key") == b"99000"
        assert "redis_key='trusswork:retry-budget:tw-test-default-key'" in repr(budget)
    finally:
        redis_client.delete("trusswork:retry-budget:tw-test-default-key")


def test_threads_against_redis_leave_the_exact_level(
    redis_client: redis.Redis, redis_prefix: str, fake_clock: FakeClock
) -> None:
    key = f"{redis_prefix}budget"
    budgets = [
        shared(redis_client, key, fake_clock, max_tokens=1000, flush_every=7) for _ in range(2)
    ]
    for _ in range(100):
        budgets[0].record_failure()  # 900: no step below can reach 0 or the cap
    threads, rounds = 4, 25

    def work(budget: RetryBudget) -> None:
        for _ in range(rounds):
            budget.record_failure()
            for _ in range(5):
                budget.record_success()

    workers = [threading.Thread(target=work, args=(budgets[n % 2],)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    budgets[1].flush()
    # each round: -1 + 5 * 0.1 = -0.5 token
    assert budgets[0].flush() == 900 - threads * rounds * 0.5


def test_async_client_shares_the_level_without_blocking(
    redis_url: str, redis_prefix: str, fake_clock: FakeClock
) -> None:
    key = f"{redis_prefix}budget"

    async def main() -> tuple[list[bool], float, float]:
        client = redis.asyncio.Redis.from_url(redis_url)
        try:
            first = shared(client, key, fake_clock, flush_every=10)
            second = shared(client, key, fake_clock)
            answers = [await first.arecord_failure() for _ in range(3)]
            answers.append(await second.arecord_failure())
            answers.append(await second.arecord_failure())  # 5: refused
            for _ in range(10):
                await first.arecord_success()  # the tenth sends the batch
            level = await second.aflush()
            await first.areset()
            return answers, level, await second.aflush()
        finally:
            await client.delete(key)
            await client.aclose()

    answers, level, after_reset = asyncio.run(main())
    assert answers == [True, True, True, True, False]
    assert level == 6.0
    assert after_reset == 10.0


def test_sync_calls_on_an_async_client_decide_locally_and_queue(
    redis_url: str, redis_prefix: str, fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    key = f"{redis_prefix}budget"

    async def main() -> tuple[bool, float]:
        client = redis.asyncio.Redis.from_url(redis_url)
        try:
            budget = shared(client, key, fake_clock)
            with caplog.at_level(logging.WARNING, logger="trusswork.retry"):
                allowed = budget.record_failure()
                budget.record_failure()
            with pytest.raises(InvalidInput, match="aflush"):
                budget.flush()
            with pytest.raises(InvalidInput, match="areset"):
                budget.reset()
            return allowed, await budget.aflush()  # the queued failures reach Redis
        finally:
            await client.delete(key)
            await client.aclose()

    allowed, level = asyncio.run(main())
    assert allowed is True
    assert level == 8.0
    warnings = [r for r in caplog.records if r.name == "trusswork.retry"]
    assert len(warnings) == 1 and "called from sync code" in warnings[0].getMessage()


def test_sync_client_serves_async_code_too(
    redis_client: redis.Redis, redis_prefix: str, fake_clock: FakeClock
) -> None:
    key = f"{redis_prefix}budget"
    budget = shared(redis_client, key, fake_clock)

    async def main() -> bool:
        await budget.arecord_success()
        return await budget.arecord_failure()

    assert asyncio.run(main()) is True
    assert redis_client.get(key) == b"9000"


def test_redis_down_falls_back_to_the_local_bucket(
    caplog: pytest.LogCaptureFixture, fake_clock: FakeClock
) -> None:
    registry = MetricsRegistry()
    budget = RetryBudget(
        "outage",
        max_tokens=10,
        token_ratio=0.1,
        redis=dead_client(),
        flush_every=1,
        registry=registry,
        clock=fake_clock,
    )
    with caplog.at_level(logging.WARNING, logger="trusswork.retry"):
        answers = [budget.record_failure() for _ in range(5)]
        for _ in range(10):
            budget.record_success()
        assert budget.flush() == 6.0
        budget.reset()
        fake_clock.advance(5.0)  # past flush_interval: Redis is asked again, still down
        assert budget.record_failure() is True
    assert answers == [True, True, True, True, False]
    assert budget.tokens == 9.0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "outage" in warnings[0].getMessage() and "cannot reach Redis" in warnings[0].getMessage()
    denied = registry.counter("trusswork_retry_budget_denied", "", labelnames=("budget",))
    denied = denied.labels("outage")
    assert denied.value == 1.0


def test_async_redis_down_falls_back_to_the_local_bucket(
    caplog: pytest.LogCaptureFixture, fake_clock: FakeClock
) -> None:
    async def main() -> list[bool]:
        client = redis.asyncio.Redis(
            host="127.0.0.1",
            port=free_port(),
            socket_connect_timeout=0.5,
            retry=redis.asyncio.retry.Retry(NoBackoff(), 0),
        )
        try:
            budget = shared(client, "unused", fake_clock, flush_every=1)
            answers = [await budget.arecord_failure() for _ in range(5)]
            await budget.arecord_success()
            assert await budget.aflush() == pytest.approx(5.1)
            await budget.areset()
            return answers
        finally:
            await client.aclose()

    with caplog.at_level(logging.WARNING, logger="trusswork.retry"):
        assert asyncio.run(main()) == [True, True, True, True, False]
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


def test_the_budget_returns_to_redis_when_it_answers_again(
    redis_client: redis.Redis,
    redis_prefix: str,
    fake_clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = f"{redis_prefix}budget"
    budget = shared(redis_client, key, fake_clock, flush_interval=1.0)
    healthy = budget._script
    broken = dead_client().register_script("return 0")
    budget._script = broken  # Redis "goes down"
    with caplog.at_level(logging.INFO, logger="trusswork.retry"):
        assert budget.record_failure() is True  # local: 9
        budget._script = healthy  # Redis is back, but not asked until 1 s passed
        assert budget.record_failure() is True  # local: 8
        assert redis_client.exists(key) == 0
        fake_clock.advance(1.0)
        assert budget.record_failure() is True  # Redis: 9 (events of the outage stayed local)
    assert redis_client.get(key) == b"9000"
    messages = [r.getMessage() for r in caplog.records if r.name == "trusswork.retry"]
    assert len(messages) == 2
    assert "cannot reach Redis" in messages[0] and "reaches Redis again" in messages[1]
