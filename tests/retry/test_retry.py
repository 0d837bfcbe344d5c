"""trusswork.retry: the decorator, ``call`` and ``Retrying``, sync and async, on a fake clock."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from trusswork.core.clock import FakeClock
from trusswork.core.errors import InvalidInput, TrussworkError, Unavailable
from trusswork.retry import Attempt, Policy, RetryError, Retrying, call, retry


class Flaky:
    """Raises ``errors`` in turn, then returns ``value``; counts calls."""

    def __init__(self, *errors: BaseException, value: Any = "ok") -> None:
        self.errors = list(errors)
        self.value = value
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.value


def no_wait(clock: FakeClock, **options: Any) -> Policy:
    return Policy(clock=clock, jitter=None, wait="constant", wait_initial=0.0, **options)


# ---------------------------------------------------------------- decorator, sync


def test_success_returns_at_once_without_touching_the_clock(fake_clock: FakeClock) -> None:
    @retry(attempts=3, clock=fake_clock)
    def add(a: int, b: int = 1) -> int:
        return a + b

    assert add(2, b=5) == 7
    assert fake_clock.sleeps == []


def test_retries_until_success_with_the_planned_waits(fake_clock: FakeClock) -> None:
    flaky = Flaky(ConnectionError("a"), ConnectionError("b"), value=42)
    wrapped = retry(attempts=3, jitter=None, wait_initial=0.5, clock=fake_clock)(flaky)
    assert wrapped() == 42
    assert flaky.calls == 3
    assert fake_clock.sleeps == [0.5, 1.0]


def test_five_exponential_retries_run_instantly_on_a_fake_clock(fake_clock: FakeClock) -> None:
    flaky = Flaky(*(TimeoutError(str(n)) for n in range(5)), value="done")
    wrapped = retry(attempts=6, jitter=None, wait_initial=1.0, wait_max=60.0, clock=fake_clock)(
        flaky
    )
    start = fake_clock.monotonic()
    assert wrapped() == "done"
    assert fake_clock.sleeps == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert fake_clock.monotonic() - start == sum(fake_clock.sleeps) == 31.0


def test_giving_up_raises_retry_error_with_the_history(fake_clock: FakeClock) -> None:
    errors = [ConnectionError(f"down {n}") for n in range(3)]
    flaky = Flaky(*errors)
    wrapped = retry(attempts=3, jitter=None, wait_initial=2.0, clock=fake_clock)(flaky)
    with pytest.raises(RetryError) as info:
        wrapped()
    error = info.value
    assert isinstance(error, TrussworkError)
    assert not isinstance(error, ConnectionError)  # an outer retry on ConnectionError stops here
    assert error.http_status == 503
    assert [(a.number, a.error, a.elapsed) for a in error.attempts] == [
        (1, errors[0], 0.0),
        (2, errors[1], 2.0),
        (3, errors[2], 6.0),
    ]
    assert error.last.failed and error.__cause__ is errors[2]
    assert "after 3 attempts" in str(error) and "down 2" in str(error)


def test_reraise_raises_the_last_exception_itself(fake_clock: FakeClock) -> None:
    last = ConnectionError("third")
    flaky = Flaky(ConnectionError("first"), ConnectionError("second"), last)
    wrapped = retry(policy=no_wait(fake_clock, attempts=3, reraise=True))(flaky)
    with pytest.raises(ConnectionError) as info:
        wrapped()
    assert info.value is last
    assert flaky.calls == 3


def test_only_retry_on_types_are_retried(fake_clock: FakeClock) -> None:
    flaky = Flaky(ConnectionError("retry me"), KeyError("not me"))
    wrapped = retry(policy=no_wait(fake_clock, retry_on=(ConnectionError, TimeoutError)))(flaky)
    with pytest.raises(KeyError):
        wrapped()
    assert flaky.calls == 2


def test_first_error_outside_retry_on_propagates_unchanged(fake_clock: FakeClock) -> None:
    error = ValueError("bad")
    wrapped = retry(policy=no_wait(fake_clock, retry_on=ConnectionError))(Flaky(error))
    with pytest.raises(ValueError) as info:
        wrapped()
    assert info.value is error


def test_exception_predicate_decides(fake_clock: FakeClock) -> None:
    def transient(error: BaseException) -> bool:
        return "transient" in str(error)

    flaky = Flaky(OSError("transient"), OSError("fatal"), value=1)
    wrapped = retry(policy=no_wait(fake_clock, attempts=5, retry_if=transient))(flaky)
    with pytest.raises(OSError, match="fatal"):
        wrapped()
    assert flaky.calls == 2


def test_result_predicate_retries_until_the_result_is_accepted(fake_clock: FakeClock) -> None:
    results = iter([503, 503, 200])
    wrapped = retry(policy=no_wait(fake_clock, attempts=5, retry_if_result=lambda r: r >= 500))(
        lambda: next(results)
    )
    assert wrapped() == 200


def test_result_predicate_gives_up_with_the_results_in_history(fake_clock: FakeClock) -> None:
    wrapped = retry(policy=no_wait(fake_clock, attempts=2, retry_if_result=lambda r: r is None))(
        lambda: None
    )
    with pytest.raises(RetryError) as info:
        wrapped()
    assert [(a.number, a.failed, a.result) for a in info.value.attempts] == [
        (1, False, None),
        (2, False, None),
    ]
    assert "last result None" in str(info.value)


@pytest.mark.parametrize(
    "error", [KeyboardInterrupt(), SystemExit(1), GeneratorExit(), asyncio.CancelledError()]
)
def test_cancellation_and_exit_are_never_retried(
    fake_clock: FakeClock, error: BaseException
) -> None:
    flaky = Flaky(error)
    wrapped = retry(policy=no_wait(fake_clock, attempts=5, retry_on=BaseException))(flaky)
    with pytest.raises(type(error)):
        wrapped()
    assert flaky.calls == 1


def test_cancellation_after_a_retry_is_not_retried(fake_clock: FakeClock) -> None:
    flaky = Flaky(ConnectionError(), KeyboardInterrupt())
    wrapped = retry(policy=no_wait(fake_clock, attempts=5, retry_on=BaseException))(flaky)
    with pytest.raises(KeyboardInterrupt):
        wrapped()
    assert flaky.calls == 2


# ---------------------------------------------------------------- hooks


def test_hooks_see_each_retry_and_failure(fake_clock: FakeClock) -> None:
    seen: list[object] = []
    flaky = Flaky(ConnectionError("x"), ConnectionError("y"), value="ok")
    policy = no_wait(
        fake_clock,
        attempts=3,
        before=lambda n: seen.append(("before", n)),
        after=lambda a: seen.append(("after", a.number, str(a.error))),
    )
    assert retry(policy=policy)(flaky)() == "ok"
    assert seen == [("after", 1, "x"), ("before", 2), ("after", 2, "y"), ("before", 3)]


def test_hooks_raising_never_swallow_the_original_error(
    fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(_: object) -> None:
        raise RuntimeError("hook bug")

    original = ConnectionError("the real problem")
    flaky = Flaky(ConnectionError("first"), original)
    policy = no_wait(fake_clock, attempts=2, before=broken, after=broken, reraise=True)
    with (
        caplog.at_level(logging.ERROR, logger="trusswork.retry"),
        pytest.raises(ConnectionError) as info,
    ):
        retry(policy=policy)(flaky)()
    assert info.value is original
    assert flaky.calls == 2
    assert sum("hook" in r.getMessage() for r in caplog.records) == 3  # after, before, after


def test_hooks_raising_do_not_stop_a_recovery(fake_clock: FakeClock) -> None:
    def broken(_: object) -> None:
        raise RuntimeError("hook bug")

    flaky = Flaky(ConnectionError(), value=5)
    policy = no_wait(fake_clock, before=broken, after=broken)
    assert retry(policy=policy)(flaky)() == 5


# ---------------------------------------------------------------- deadlines


def test_deadline_gives_up_before_sleeping_past_it(fake_clock: FakeClock) -> None:
    flaky = Flaky(*(ConnectionError() for _ in range(10)))
    wrapped = retry(
        attempts=10, deadline=10.0, jitter=None, wait_initial=1.0, wait_max=60.0, clock=fake_clock
    )(flaky)
    with pytest.raises(RetryError) as info:
        wrapped()
    # waits 1, 2, 4 (t = 7); the next wait of 8 would end past t = 10
    assert fake_clock.sleeps == [1.0, 2.0, 4.0]
    assert flaky.calls == 4
    assert "deadline reached" in str(info.value)


def test_deadline_counts_the_first_attempt(fake_clock: FakeClock) -> None:
    def slow() -> None:
        fake_clock.advance(9.5)
        raise ConnectionError

    wrapped = retry(attempts=5, deadline=10.0, jitter=None, wait_initial=1.0, clock=fake_clock)(
        slow
    )
    with pytest.raises(RetryError) as info:
        wrapped()
    assert len(info.value.attempts) == 1
    assert info.value.attempts[0].elapsed == 9.5


def test_nested_retry_never_overruns_the_outer_deadline(fake_clock: FakeClock) -> None:
    inner_calls = 0

    @retry(attempts=100, jitter=None, wait="constant", wait_initial=1.0, clock=fake_clock)
    def inner() -> None:
        nonlocal inner_calls
        inner_calls += 1
        raise ConnectionError

    @retry(attempts=3, deadline=5.0, retry_on=ConnectionError, clock=fake_clock)
    def outer() -> None:
        inner()

    start = fake_clock.monotonic()
    with pytest.raises(RetryError) as info:
        outer()
    # The inner run inherits 5 s: calls at t = 0..4, gives up before sleeping to t = 5.
    assert fake_clock.monotonic() - start < 5.0
    assert inner_calls == 5
    assert isinstance(info.value, RetryError) and len(info.value.attempts) == 5


def test_inner_deadline_is_the_smaller_of_own_and_outer(fake_clock: FakeClock) -> None:
    inner_calls = 0

    @retry(
        attempts=100,
        deadline=2.5,
        jitter=None,
        wait="constant",
        wait_initial=1.0,
        clock=fake_clock,
    )
    def inner() -> None:
        nonlocal inner_calls
        inner_calls += 1
        raise ConnectionError

    for attempt in Retrying(attempts=1, deadline=100.0, clock=fake_clock):
        with attempt, pytest.raises(RetryError):
            inner()
    assert inner_calls == 3  # t = 0, 1, 2; own 2.5 s is tighter than the outer 100 s


def test_outer_deadline_on_another_clock_is_translated(fake_clock: FakeClock) -> None:
    outer_clock = FakeClock(monotonic=1000.0)
    inner_calls = 0

    def inner() -> None:
        nonlocal inner_calls
        inner_calls += 1
        fake_clock.advance(1.0)  # each attempt takes one second on the inner clock
        raise ConnectionError

    policy = Policy(attempts=50, jitter=None, wait_initial=0.0, wait="constant", clock=fake_clock)
    for attempt in Retrying(attempts=1, deadline=3.0, clock=outer_clock):
        with attempt, pytest.raises(RetryError):
            call(inner, policy=policy)
    # The inner run starts at its first failure with the outer 3 s left, measured on
    # its own clock: attempts end at 1, 2, 3 and 4 s, and at 4 s the budget is spent.
    assert inner_calls == 4


# ---------------------------------------------------------------- signatures and typing


def test_signature_name_and_docs_are_preserved() -> None:
    def fetch(url: str, *, timeout: float = 1.0) -> bytes:
        """Fetch a URL."""
        return url.encode()

    wrapped = retry(attempts=2)(fetch)
    assert inspect.signature(wrapped) == inspect.signature(fetch)
    assert wrapped.__name__ == "fetch" and wrapped.__doc__ == "Fetch a URL."
    assert wrapped.__wrapped__ is fetch  # type: ignore[attr-defined]
    assert wrapped("x", timeout=2.0) == b"x"


def test_async_functions_stay_coroutine_functions() -> None:
    async def fetch(url: str) -> str:
        return url

    wrapped = retry(attempts=2)(fetch)
    assert inspect.iscoroutinefunction(wrapped)
    assert inspect.signature(wrapped) == inspect.signature(fetch)
    assert asyncio.run(wrapped("u")) == "u"


def test_decorating_a_non_callable_is_rejected() -> None:
    with pytest.raises(InvalidInput, match="decorates a callable"):
        retry()(42)  # type: ignore[arg-type]


MYPY_SNIPPET = """
from trusswork.retry import CircuitBreaker, hedge, retry

@retry(attempts=3)
def add(a: int, b: int = 1) -> int:
    return a + b

@retry(attempts=3)
async def fetch(url: str) -> bytes:
    return b""

@retry
def bare(n: int) -> str:
    return str(n)

@CircuitBreaker("db")
def query(sql: str) -> list[int]:
    return []

@hedge(delay=0.05)
async def read(key: str) -> bytes:
    return b""

reveal_type(add)
reveal_type(fetch)
reveal_type(bare)
reveal_type(query)
reveal_type(read)
add("x")
"""


def test_mypy_sees_the_wrapped_signature(tmp_path: Any) -> None:
    pytest.importorskip("mypy")
    source = tmp_path / "snippet.py"
    source.write_text(MYPY_SNIPPET, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(source)],
        capture_output=True,
        text=True,
    )
    out = done.stdout
    assert '"def (a: int, b: int =) -> int"' in out
    assert '"def (url: str) -> typing.Coroutine[Any, Any, bytes]"' in out
    assert '"def (n: int) -> str"' in out
    assert '"def (sql: str) -> list[int]"' in out
    assert '"def (key: str) -> typing.Coroutine[Any, Any, bytes]"' in out
    assert 'Argument 1 to "add" has incompatible type "str"; expected "int"' in out


# ---------------------------------------------------------------- call()


def test_call_retries_one_call_with_a_policy(fake_clock: FakeClock) -> None:
    flaky = Flaky(Unavailable("peer down"), value="ok")
    assert call(flaky, 1, key="v", policy=no_wait(fake_clock)) == "ok"
    assert flaky.calls == 2


def test_call_without_policy_uses_the_defaults() -> None:
    assert call(lambda a, b: a * b, 6, 7) == 42


def test_call_async_returns_an_awaitable(fake_clock: FakeClock) -> None:
    flaky = Flaky(ConnectionError(), value="ok")

    async def fetch() -> str:
        return str(flaky())

    assert asyncio.run(call(fetch, policy=no_wait(fake_clock))) == "ok"
    assert flaky.calls == 2


def test_call_rejects_a_non_policy() -> None:
    with pytest.raises(InvalidInput, match="policy="):
        call(print, policy={"attempts": 3})  # type: ignore[arg-type]


# ---------------------------------------------------------------- async decorator


def run(coroutine_function: Callable[[], Any]) -> Any:
    return asyncio.run(coroutine_function())


def test_async_retries_sleep_on_the_fake_clock(fake_clock: FakeClock) -> None:
    flaky = Flaky(ConnectionError(), ConnectionError(), value=9)

    @retry(attempts=3, jitter=None, wait_initial=1.0, clock=fake_clock)
    async def fetch() -> int:
        await asyncio.sleep(0)
        return int(flaky())

    assert run(fetch) == 9
    assert fake_clock.sleeps == [1.0, 2.0]


def test_async_gives_up_with_history(fake_clock: FakeClock) -> None:
    @retry(policy=no_wait(fake_clock, attempts=4))
    async def fetch() -> None:
        raise TimeoutError("slow")

    with pytest.raises(RetryError) as info:
        run(fetch)
    assert [a.number for a in info.value.attempts] == [1, 2, 3, 4]


def test_async_result_predicate_and_deadline(fake_clock: FakeClock) -> None:
    results = iter([None, None, "x"])

    @retry(
        attempts=5,
        deadline=30.0,
        jitter=None,
        wait_initial=1.0,
        retry_if_result=lambda r: r is None,
        clock=fake_clock,
    )
    async def poll() -> str | None:
        return next(results)

    assert run(poll) == "x"
    assert fake_clock.sleeps == [1.0, 2.0]


def test_async_cancellation_is_not_retried(fake_clock: FakeClock) -> None:
    calls = 0

    @retry(policy=no_wait(fake_clock, attempts=5, retry_on=BaseException))
    async def work() -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(3600)

    async def main() -> None:
        task = asyncio.create_task(work())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert calls == 1


def test_async_nested_deadline(fake_clock: FakeClock) -> None:
    calls = 0

    @retry(attempts=100, jitter=None, wait="constant", wait_initial=1.0, clock=fake_clock)
    async def inner() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError

    @retry(attempts=2, deadline=3.0, retry_on=ConnectionError, clock=fake_clock)
    async def outer() -> None:
        await inner()

    with pytest.raises(RetryError):
        run(outer)
    assert calls == 3


# ---------------------------------------------------------------- Retrying


def test_retrying_block_retries_until_it_passes(fake_clock: FakeClock) -> None:
    flaky = Flaky(ConnectionError(), ConnectionError(), value="ok")
    numbers = []
    for attempt in Retrying(attempts=5, jitter=None, wait_initial=1.0, clock=fake_clock):
        with attempt:
            numbers.append(attempt.number)
            result = flaky()
    assert result == "ok" and numbers == [1, 2, 3]
    assert fake_clock.sleeps == [1.0, 2.0]


def test_retrying_block_gives_up_with_retry_error(fake_clock: FakeClock) -> None:
    with pytest.raises(RetryError) as info:
        for attempt in Retrying(policy=no_wait(fake_clock, attempts=2)):
            with attempt:
                raise ConnectionError("nope")
    assert [a.number for a in info.value.attempts] == [1, 2]
    assert isinstance(info.value.__cause__, ConnectionError)


def test_retrying_block_reraise_and_non_retryable(fake_clock: FakeClock) -> None:
    with pytest.raises(ConnectionError, match="last"):
        for attempt in Retrying(policy=no_wait(fake_clock, attempts=2, reraise=True)):
            with attempt:
                raise ConnectionError("last")
    calls = 0
    with pytest.raises(KeyError):
        for attempt in Retrying(policy=no_wait(fake_clock, retry_on=ConnectionError)):
            with attempt:
                calls += 1
                raise KeyError("x")
    assert calls == 1


def test_retrying_async_for(fake_clock: FakeClock) -> None:
    flaky = Flaky(ConnectionError(), value="ok")

    async def main() -> str:
        async for attempt in Retrying(attempts=3, jitter=None, wait_initial=0.25, clock=fake_clock):
            with attempt:
                await asyncio.sleep(0)
                value = str(flaky())
        return value

    assert asyncio.run(main()) == "ok"
    assert fake_clock.sleeps == [0.25]


def test_retrying_is_reusable(fake_clock: FakeClock) -> None:
    loop = Retrying(policy=no_wait(fake_clock, attempts=2))
    for _ in range(2):
        flaky = Flaky(ConnectionError(), value=1)
        for attempt in loop:
            with attempt:
                flaky()
        assert flaky.calls == 2


# ---------------------------------------------------------------- records and imports


def test_attempt_records_are_frozen() -> None:
    attempt = Attempt(1, None, 3, 0.0)
    assert not attempt.failed
    with pytest.raises(AttributeError):
        attempt.number = 2  # type: ignore[misc]


def test_importing_retry_loads_no_numpy_or_asyncio() -> None:
    code = (
        "import sys, trusswork.retry; "
        "print(sorted(m for m in ('numpy', 'faiss', 'asyncio') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_wrapping_preserves_functools_partial_callables(fake_clock: FakeClock) -> None:
    wrapped = retry(policy=no_wait(fake_clock))(functools.partial(pow, 2))
    assert wrapped(10) == 1024
