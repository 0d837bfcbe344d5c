"""trusswork.retry: status sets, server pushback, attempt timeouts, budgets, metrics, logs."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from trusswork.core.clock import FakeClock
from trusswork.core.errors import InvalidInput, LimitExceeded
from trusswork.core.metrics import MetricsRegistry
from trusswork.retry import (
    AttemptTimeout,
    Policy,
    RetryError,
    Retrying,
    call,
    remaining,
    retry,
)


class Response:
    """A response-like object as httpx and requests return."""

    def __init__(self, status_code: int, headers: dict[str, str] | None = None) -> None:
        self.status_code = status_code
        self.headers = headers or {}


class StatusError(Exception):
    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.response = Response(status, headers)


class Script:
    """Returns or raises the given outcomes in turn; counts calls."""

    def __init__(self, *outcomes: Any) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


class CountingBudget:
    """A test double of RetryBudget: allows ``allow`` retries, counts what it is told."""

    def __init__(self, allow: int) -> None:
        self.allow = allow
        self.successes = 0
        self.failures = 0

    def record_success(self) -> None:
        self.successes += 1

    def record_failure(self) -> bool:
        self.failures += 1
        return self.failures <= self.allow

    async def arecord_success(self) -> None:
        self.record_success()

    async def arecord_failure(self) -> bool:
        return self.record_failure()


def run_async(test: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    """Run an ``async def`` test on a fresh event loop (the suite has no asyncio plugin)."""

    @functools.wraps(test)
    def runner() -> None:
        asyncio.run(test())

    return runner


def quick(clock: FakeClock, **options: Any) -> dict[str, Any]:
    return {"clock": clock, "jitter": None, "wait": "constant", "wait_initial": 0.5, **options}


# ---------------------------------------------------------------- bare decorator


def test_bare_decorator_uses_the_defaults() -> None:
    calls = []

    @retry
    def double(x: int) -> int:
        calls.append(x)
        return 2 * x

    assert double(21) == 42
    assert calls == [21]
    assert double.__name__ == "double"


@run_async
async def test_bare_decorator_on_a_coroutine_function() -> None:
    @retry
    async def double(x: int) -> int:
        return 2 * x

    assert await double(4) == 8


# ---------------------------------------------------------------- status sets


def test_results_with_a_listed_status_are_retried(fake_clock: FakeClock) -> None:
    script = Script(Response(503), Response(429), Response(200))
    fetch = retry(attempts=5, retry_on_status={429, 503}, **quick(fake_clock))(script)
    assert fetch().status_code == 200
    assert script.calls == 3


def test_a_status_outside_the_set_is_returned(fake_clock: FakeClock) -> None:
    script = Script(Response(404))
    fetch = retry(attempts=5, retry_on_status={503}, **quick(fake_clock))(script)
    assert fetch().status_code == 404
    assert script.calls == 1


def test_errors_carrying_a_status_are_retried_only_for_listed_statuses(
    fake_clock: FakeClock,
) -> None:
    script = Script(StatusError(503), StatusError(404))
    fetch = retry(attempts=5, retry_on_status=[503], **quick(fake_clock))(script)
    with pytest.raises(StatusError, match="404"):
        fetch()
    assert script.calls == 2


def test_errors_without_a_status_follow_retry_on(fake_clock: FakeClock) -> None:
    script = Script(ConnectionError("reset"), "ok")
    fetch = retry(attempts=3, retry_on_status={503}, **quick(fake_clock))(script)
    assert fetch() == "ok"


def test_giving_up_on_a_status_names_the_last_result(fake_clock: FakeClock) -> None:
    script = Script(Response(503), Response(503))
    fetch = retry(attempts=2, retry_on_status={503}, **quick(fake_clock))(script)
    with pytest.raises(RetryError, match="last result") as caught:
        fetch()
    assert caught.value.last.result.status_code == 503


@pytest.mark.parametrize("bad", [set(), {99}, {600}, {"503"}, {True}, 3.5])
def test_invalid_status_sets_are_rejected(bad: Any) -> None:
    with pytest.raises(InvalidInput, match="retry_on_status"):
        Policy(retry_on_status=bad)


# ---------------------------------------------------------------- pushback


def test_retry_after_attribute_lengthens_the_wait(fake_clock: FakeClock) -> None:
    script = Script(LimitExceeded("slow down", retry_after=7.0), "ok")
    fetch = retry(attempts=3, **quick(fake_clock))(script)
    assert fetch() == "ok"
    assert fake_clock.sleeps == [7.0]


def test_retry_after_never_shortens_the_backoff(fake_clock: FakeClock) -> None:
    script = Script(LimitExceeded("slow down", retry_after=0.1), "ok")
    fetch = retry(attempts=3, **quick(fake_clock))(script)
    assert fetch() == "ok"
    assert fake_clock.sleeps == [0.5]


def test_retry_after_header_of_a_response_is_honoured(fake_clock: FakeClock) -> None:
    script = Script(Response(503, {"Retry-After": "3"}), Response(200))
    fetch = retry(attempts=3, retry_on_status={503}, **quick(fake_clock))(script)
    assert fetch().status_code == 200
    assert fake_clock.sleeps == [3.0]


def test_pushback_can_be_switched_off(fake_clock: FakeClock) -> None:
    script = Script(LimitExceeded("slow down", retry_after=7.0), "ok")
    fetch = retry(attempts=3, pushback=False, **quick(fake_clock))(script)
    assert fetch() == "ok"
    assert fake_clock.sleeps == [0.5]


def test_pushback_above_the_cap_gives_up_at_once(fake_clock: FakeClock) -> None:
    script = Script(LimitExceeded("come back tomorrow", retry_after=86_400.0), "ok")
    fetch = retry(attempts=5, max_pushback=60, **quick(fake_clock))(script)
    with pytest.raises(RetryError, match="asked to wait 86400") as caught:
        fetch()
    assert caught.value.reason == "pushback"
    assert script.calls == 1
    assert fake_clock.sleeps == []


def test_pushback_past_the_deadline_gives_up_instead_of_sleeping(fake_clock: FakeClock) -> None:
    script = Script(LimitExceeded("wait", retry_after=30.0), "ok")
    fetch = retry(attempts=5, deadline=10.0, **quick(fake_clock))(script)
    with pytest.raises(RetryError, match="deadline") as caught:
        fetch()
    assert caught.value.reason == "deadline"
    assert fake_clock.sleeps == []


# ---------------------------------------------------------------- attempt timeouts


def test_remaining_is_none_outside_a_retry() -> None:
    assert remaining() is None


def test_remaining_reports_the_attempt_budget_to_sync_code(fake_clock: FakeClock) -> None:
    seen: list[float | None] = []

    @retry(attempts=3, attempt_timeout=2.0, deadline=5.0, **quick(fake_clock))
    def work() -> str:
        seen.append(remaining())
        fake_clock.advance(1.0)
        if len(seen) < 3:
            raise ConnectionError("again")
        return "ok"

    assert work() == "ok"
    # attempt 1 at t=0: 2.0 left; attempt 2 at t=1.5; attempt 3 at t=3.0: the deadline leaves 2.0
    assert seen == [2.0, 2.0, 2.0]
    assert remaining() is None


def test_remaining_never_exceeds_what_the_deadline_leaves(fake_clock: FakeClock) -> None:
    seen: list[float | None] = []

    @retry(attempts=4, attempt_timeout=3.0, deadline=4.0, **quick(fake_clock))
    def work() -> str:
        seen.append(remaining())
        fake_clock.advance(1.0)
        raise ConnectionError("again")

    with pytest.raises(RetryError):
        work()
    # t=0: 3.0; t=1.5: the deadline at 4.0 leaves 2.5; t=3.0: 1.0; at t=4.5 it has passed
    assert seen == [3.0, 2.5, 1.0]


@run_async
async def test_async_attempts_are_cancelled_at_the_attempt_timeout() -> None:
    calls = 0

    @retry(attempts=3, attempt_timeout=0.05, jitter=None, wait="constant", wait_initial=0.0)
    async def slow_then_fast() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(10)
        return "fast"

    assert await asyncio.wait_for(slow_then_fast(), 5) == "fast"
    assert calls == 2


@run_async
async def test_attempt_timeouts_are_retried_even_if_retry_on_is_narrow() -> None:
    @retry(
        attempts=2,
        attempt_timeout=0.02,
        retry_on=ConnectionError,
        jitter=None,
        wait="constant",
        wait_initial=0.0,
    )
    async def hang() -> None:
        await asyncio.sleep(10)

    with pytest.raises(RetryError) as caught:
        await asyncio.wait_for(hang(), 5)
    assert [type(a.error) for a in caught.value.attempts] == [AttemptTimeout, AttemptTimeout]
    assert isinstance(caught.value.last.error, TimeoutError)


@run_async
async def test_a_timeout_raised_by_the_function_itself_is_not_an_attempt_timeout() -> None:
    @retry(attempts=2, attempt_timeout=5.0, retry_on=ConnectionError)
    async def fails() -> None:
        raise TimeoutError("from the server")

    with pytest.raises(TimeoutError, match="from the server") as caught:
        await fails()
    assert not isinstance(caught.value, AttemptTimeout)


@run_async
async def test_async_with_attempt_enforces_the_timeout_in_a_retrying_loop() -> None:
    numbers = []
    async for attempt in Retrying(
        attempts=3, attempt_timeout=0.02, jitter=None, wait="constant", wait_initial=0.0
    ):
        async with attempt:
            numbers.append(attempt.number)
            if attempt.number == 1:
                await asyncio.sleep(10)
    assert numbers == [1, 2]


@run_async
async def test_async_with_attempt_gives_up_with_the_timeout_as_last_error() -> None:
    with pytest.raises(RetryError) as caught:
        async for attempt in Retrying(
            attempts=2, attempt_timeout=0.01, jitter=None, wait="constant", wait_initial=0.0
        ):
            async with attempt:
                await asyncio.sleep(10)
    assert isinstance(caught.value.last.error, AttemptTimeout)


def test_attempt_timeout_must_be_positive() -> None:
    with pytest.raises(InvalidInput, match="attempt_timeout"):
        Policy(attempt_timeout=0)


# ---------------------------------------------------------------- budgets


def test_budget_is_told_of_every_success_and_retryable_failure(fake_clock: FakeClock) -> None:
    budget = CountingBudget(allow=10)
    script = Script(ConnectionError("a"), "ok", "ok")
    fetch = retry(attempts=3, budget=budget, **quick(fake_clock))(script)
    assert fetch() == "ok"
    assert fetch() == "ok"
    assert (budget.successes, budget.failures) == (2, 1)


def test_an_empty_budget_stops_retries(fake_clock: FakeClock) -> None:
    budget = CountingBudget(allow=1)
    script = Script(ConnectionError("a"), ConnectionError("b"), "ok")
    fetch = retry(attempts=5, budget=budget, **quick(fake_clock))(script)
    with pytest.raises(RetryError, match="retry budget") as caught:
        fetch()
    assert caught.value.reason == "budget"
    assert script.calls == 2


def test_non_retryable_errors_do_not_drain_the_budget(fake_clock: FakeClock) -> None:
    budget = CountingBudget(allow=10)
    script = Script(ValueError("bad request"))
    fetch = retry(attempts=3, retry_on=ConnectionError, budget=budget, **quick(fake_clock))(script)
    with pytest.raises(ValueError):
        fetch()
    assert budget.failures == 0


@run_async
async def test_async_calls_use_the_async_budget_methods() -> None:
    class AsyncOnly(CountingBudget):
        def record_success(self) -> None:
            raise AssertionError("the sync method was used from async code")

        async def arecord_success(self) -> None:
            self.successes += 1

    budget = AsyncOnly(allow=5)

    @retry(attempts=3, budget=budget, jitter=None, wait="constant", wait_initial=0.0)
    async def ok() -> str:
        return "ok"

    assert await ok() == "ok"
    assert budget.successes == 1


def test_retrying_blocks_report_to_the_budget(fake_clock: FakeClock) -> None:
    budget = CountingBudget(allow=10)
    for attempt in Retrying(attempts=3, budget=budget, **quick(fake_clock)):
        with attempt:
            if attempt.number == 1:
                raise ConnectionError("a")
    assert (budget.successes, budget.failures) == (1, 1)


def test_a_budget_must_have_the_budget_methods() -> None:
    with pytest.raises(InvalidInput, match="budget"):
        Policy(budget=object())  # type: ignore[arg-type]


# ---------------------------------------------------------------- metrics and logs


def test_metrics_count_attempts_retries_and_give_ups(fake_clock: FakeClock) -> None:
    registry = MetricsRegistry()
    script = Script(ConnectionError("a"), "ok", ConnectionError("b"), ConnectionError("c"))
    fetch = retry(attempts=2, name="fetch", registry=registry, **quick(fake_clock))(script)
    assert fetch() == "ok"
    with pytest.raises(RetryError):
        fetch()
    text = registry.exposition()
    assert 'trusswork_retry_attempts_total{name="fetch"} 4.0' in text
    assert 'trusswork_retry_retries_total{name="fetch"} 2.0' in text
    assert 'trusswork_retry_giveups_total{name="fetch",reason="attempts"} 1.0' in text


def test_policy_keeps_the_operation_name() -> None:
    assert Policy(name="fetch", after=lambda attempt: None).name == "fetch"
    assert Policy().name is None


def test_first_attempt_successes_touch_no_metric(fake_clock: FakeClock) -> None:
    registry = MetricsRegistry()
    fetch = retry(name="quiet", registry=registry, **quick(fake_clock))(lambda: "ok")
    assert fetch() == "ok"
    assert 'name="quiet"' not in registry.exposition()


def test_each_retry_is_logged_with_structured_fields(
    fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    script = Script(ConnectionError("reset"), ConnectionError("reset"))
    fetch = retry(attempts=2, name="fetch-user", **quick(fake_clock))(script)
    with caplog.at_level(logging.INFO, logger="trusswork.retry"), pytest.raises(RetryError):
        fetch()
    retried, gave_up = caplog.records
    assert retried.levelno == logging.INFO
    assert retried.__dict__["retry_name"] == "fetch-user"
    assert retried.__dict__["retry_attempt"] == 1
    assert retried.__dict__["retry_wait"] == 0.5
    assert "ConnectionError('reset')" in retried.__dict__["retry_error"]
    assert gave_up.levelno == logging.WARNING
    assert gave_up.__dict__["retry_reason"] == "attempts"


def test_call_honours_status_sets(fake_clock: FakeClock) -> None:
    script = Script(Response(503), Response(200))
    policy = Policy(attempts=2, retry_on_status={503}, **quick(fake_clock))
    assert call(script, policy=policy).status_code == 200


def test_a_nested_run_that_gave_up_is_not_retried_by_the_outer_one(fake_clock: FakeClock) -> None:
    inner_calls = 0

    @retry(attempts=3, **quick(fake_clock))
    def inner() -> None:
        nonlocal inner_calls
        inner_calls += 1
        raise ConnectionError("down")

    @retry(attempts=3, **quick(fake_clock))
    def outer() -> None:
        inner()

    with pytest.raises(RetryError):
        outer()
    assert inner_calls == 3


def test_naming_retry_error_lets_an_outer_run_retry_it(fake_clock: FakeClock) -> None:
    inner = Script(ConnectionError("a"), ConnectionError("b"), "ok")
    wrapped_inner = retry(attempts=2, **quick(fake_clock))(inner)
    outer = retry(attempts=2, retry_on=RetryError, **quick(fake_clock))(wrapped_inner)
    assert outer() == "ok"
    assert inner.calls == 3


@run_async
async def test_an_async_attempt_is_cancelled_at_the_run_deadline() -> None:
    calls = 0

    @retry(attempts=5, deadline=0.05, jitter=None, wait="constant", wait_initial=0.0)
    async def hang() -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(10)

    with pytest.raises(RetryError) as caught:
        await asyncio.wait_for(hang(), 5)
    assert caught.value.reason in {"deadline", "attempts"}
    assert isinstance(caught.value.last.error, AttemptTimeout)
