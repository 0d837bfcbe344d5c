"""trusswork.retry._hedge: hedged async calls, first result wins, nothing leaks."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from trusswork.core.clock import FakeClock
from trusswork.core.errors import InvalidInput
from trusswork.core.metrics import MetricsRegistry
from trusswork.retry import hedge, hedged


class Copies:
    """A scripted operation: copy ``n`` (0-based) runs ``behaviours[n]``; records what happened."""

    def __init__(self, clock: FakeClock, *behaviours: Callable[[], Awaitable[Any]]) -> None:
        self.clock = clock
        self.behaviours = behaviours
        self.started: list[float] = []
        self.cancelled: list[int] = []

    async def __call__(self) -> Any:
        number = len(self.started)
        self.started.append(self.clock.monotonic())
        try:
            return await self.behaviours[number]()
        except asyncio.CancelledError:
            self.cancelled.append(number)
            raise


async def forever() -> str:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


def returns(value: str) -> Callable[[], Awaitable[str]]:
    async def behaviour() -> str:
        return value

    return behaviour


def raises(error: BaseException) -> Callable[[], Awaitable[str]]:
    async def behaviour() -> str:
        raise error

    return behaviour


def counter(registry: MetricsRegistry, metric: str, name: str) -> float:
    return registry.get(metric).labels(name).value  # type: ignore[union-attr]


def run(awaitable: Awaitable[Any]) -> Any:
    async def bounded() -> Any:
        async with asyncio.timeout(5):  # a hang fails the test instead of the run
            return await awaitable

    return asyncio.run(bounded())


def test_a_fast_primary_wins_and_no_hedge_is_started(fake_clock: FakeClock) -> None:
    registry = MetricsRegistry()
    copies = Copies(fake_clock, returns("primary"), returns("hedge"))
    result = run(hedged(copies, delay=0.05, clock=fake_clock, registry=registry, name="get"))
    assert result == "primary"
    assert len(copies.started) == 1
    assert counter(registry, "trusswork_hedge_calls", "get") == 1
    assert counter(registry, "trusswork_hedge_launched", "get") == 0
    assert counter(registry, "trusswork_hedge_wins", "get") == 0


def test_a_slow_primary_is_hedged_after_the_delay_and_cancelled_when_the_hedge_wins(
    fake_clock: FakeClock,
) -> None:
    registry = MetricsRegistry()
    copies = Copies(fake_clock, forever, returns("hedge"))
    result = run(hedged(copies, delay=0.05, clock=fake_clock, registry=registry, name="get"))
    assert result == "hedge"
    assert copies.started == [0.0, 0.05]
    assert copies.cancelled == [0]
    assert counter(registry, "trusswork_hedge_launched", "get") == 1
    assert counter(registry, "trusswork_hedge_wins", "get") == 1


def test_hedges_are_spaced_by_the_delay_up_to_the_limit(fake_clock: FakeClock) -> None:
    copies = Copies(fake_clock, forever, forever, forever, returns("third hedge"))
    result = run(hedged(copies, delay=0.1, hedges=3, clock=fake_clock))
    assert result == "third hedge"
    assert copies.started == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert sorted(copies.cancelled) == [0, 1, 2]


def test_no_more_than_hedges_extra_copies_are_started(fake_clock: FakeClock) -> None:
    async def scenario() -> tuple[str, Copies]:
        release = asyncio.Event()

        async def slow() -> str:
            await release.wait()
            return "slow primary"

        copies = Copies(fake_clock, slow, forever, returns("never started"))
        task = asyncio.ensure_future(hedged(copies, delay=0.1, hedges=1, clock=fake_clock))
        for _ in range(20):  # many fake delays pass: still only one hedge
            await asyncio.sleep(0)
        release.set()
        return await task, copies

    result, copies = run(scenario())
    assert result == "slow primary"
    assert len(copies.started) == 2
    assert copies.cancelled == [1]


def test_a_failed_copy_starts_the_next_hedge_at_once() -> None:
    # hedged() sleeps on the real clock, and the delay is far beyond run()'s 5 s bound:
    # only the failure can have started the hedge in time.
    copies = Copies(FakeClock(), raises(ConnectionError("reset")), returns("hedge"))
    assert run(hedged(copies, delay=60.0)) == "hedge"
    assert len(copies.started) == 2


def test_when_every_copy_fails_the_first_error_is_raised_with_the_others_noted(
    fake_clock: FakeClock,
) -> None:
    first = ConnectionError("primary reset")
    copies = Copies(fake_clock, raises(first), raises(TimeoutError("hedge timed out")))
    with pytest.raises(ConnectionError) as caught:
        run(hedged(copies, delay=0.05, clock=fake_clock))
    assert caught.value is first
    assert any("hedge timed out" in note for note in caught.value.__notes__)


def test_a_non_retryable_error_ends_the_call_at_once_and_cancels_the_others(
    fake_clock: FakeClock,
) -> None:
    async def late_bug() -> str:
        await fake_clock.asleep(0.01)
        raise KeyError("bug")

    copies = Copies(fake_clock, forever, late_bug)
    with pytest.raises(KeyError):
        run(hedged(copies, delay=0.05, retry_on=ConnectionError, clock=fake_clock))
    assert copies.cancelled == [0]


def test_retry_if_decides_which_failures_hedge(fake_clock: FakeClock) -> None:
    copies = Copies(fake_clock, raises(ConnectionError("refused")), returns("hedge"))
    with pytest.raises(ConnectionError):
        run(hedged(copies, delay=0.05, retry_if=lambda e: "reset" in str(e), clock=fake_clock))
    assert len(copies.started) == 1


def test_cancelling_the_caller_cancels_every_copy(fake_clock: FakeClock) -> None:
    copies = Copies(fake_clock, forever, forever)

    async def scenario() -> None:
        task = asyncio.ensure_future(hedged(copies, delay=0.05, clock=fake_clock))
        while len(copies.started) < 2:
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert sorted(copies.cancelled) == [0, 1]
        leftover = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert leftover == []

    run(scenario())


def test_the_decorator_keeps_the_function_and_counts_under_its_name(
    fake_clock: FakeClock,
) -> None:
    registry = MetricsRegistry()
    calls: list[str] = []

    @hedge(delay=0.05, clock=fake_clock, registry=registry)
    async def lookup(key: str) -> str:
        calls.append(key)
        if len(calls) == 1:
            await forever()
        return key.upper()

    assert lookup.__name__ == "lookup"
    assert run(lookup("k")) == "K"
    assert calls == ["k", "k"]
    name = lookup.__qualname__
    assert counter(registry, "trusswork_hedge_wins", name) == 1
    assert "trusswork_hedge_calls_total{name=" in registry.exposition()


def test_hedge_without_parentheses_applies_to_the_function() -> None:
    async def ping() -> str:
        return "pong"

    hedged_ping = hedge(ping, delay=0.01)
    assert run(hedged_ping()) == "pong"


def test_sync_functions_are_rejected() -> None:
    with pytest.raises(InvalidInput, match="async function"):

        @hedge(delay=0.05)  # type: ignore[arg-type]
        def fetch() -> str:
            return "x"


@pytest.mark.parametrize(
    "options",
    [
        {"delay": -1.0},
        {"delay": float("nan")},
        {"delay": True},
        {"delay": 0.1, "hedges": 0},
        {"delay": 0.1, "hedges": 1.5},
        {"delay": 0.1, "retry_on": "ConnectionError"},
        {"delay": 0.1, "retry_if": 3},
        {"delay": 0.1, "registry": {}},
    ],
)
def test_invalid_options_are_rejected_at_decoration(options: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput, match="hedge"):
        hedge(**options)
