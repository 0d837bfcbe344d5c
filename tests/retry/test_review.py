"""Review of trusswork.retry: each test pins a bug a code review found (all fixed).

Every test here failed when the review was made, for a bug since fixed, and asserts
the behaviour the docs (``docs/retry/*.md``) or the docstrings promise.
"""

from __future__ import annotations

import asyncio
import pickle
import socket
import threading
from collections.abc import Iterator

import httpx
import pytest
import requests

from trusswork.core.clock import FakeClock
from trusswork.core.errors import InvalidInput
from trusswork.core.metrics import MetricsRegistry
from trusswork.retry import (
    Attempt,
    CircuitBreaker,
    CircuitOpen,
    RetryBudget,
    RetryError,
    Retrying,
    remaining,
    retry,
)
from trusswork.retry.integrations import httpx as httpx_retry
from trusswork.retry.integrations import requests as requests_retry

# ---------------------------------------------------------------- retry core


def test_retries_of_rejected_results_are_throttled_by_the_budget(
    fake_clock: FakeClock,
) -> None:
    registry = MetricsRegistry()
    # One token: the first failure empties it, so no retry may follow.
    budget = RetryBudget("review-results", max_tokens=1, registry=registry)
    calls = 0

    @retry(
        attempts=5,
        retry_if_result=lambda result: result == "overloaded",
        budget=budget,
        clock=fake_clock,
        registry=registry,
    )
    def fetch() -> str:
        nonlocal calls
        calls += 1
        return "overloaded"

    with pytest.raises(RetryError) as caught:
        fetch()
    assert caught.value.reason == "budget"
    assert calls == 1
    assert budget.tokens == 0.0


def test_reraise_keeps_the_original_cause(fake_clock: FakeClock) -> None:
    root = KeyError("root")

    @retry(attempts=2, reraise=True, clock=fake_clock, registry=MetricsRegistry())
    def load() -> None:
        raise ValueError("cannot load") from root

    with pytest.raises(ValueError, match="cannot load") as caught:
        load()
    assert caught.value.__cause__ is root


def test_retrying_asks_retry_if_once_per_failure(fake_clock: FakeClock) -> None:
    registry = MetricsRegistry()
    asked: list[BaseException] = []

    def retry_if(error: BaseException) -> bool:
        asked.append(error)
        return True

    loop = Retrying(
        attempts=2,
        retry_if=retry_if,
        budget=RetryBudget("review-twice", registry=registry),
        clock=fake_clock,
        registry=registry,
    )
    with pytest.raises(RetryError):
        for attempt in loop:
            with attempt:
                raise ValueError("flaky")
    assert len(asked) == 2


def test_a_retry_error_survives_pickling() -> None:
    error = RetryError("gave up", (Attempt(1, ValueError("flaky"), None, 0.0),), "budget")
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == "gave up"
    assert copy.reason == "budget"
    assert len(copy.attempts) == 1


def test_a_circuit_open_error_survives_pickling(fake_clock: FakeClock) -> None:
    breaker = CircuitBreaker("review-pickle", clock=fake_clock, registry=MetricsRegistry())
    breaker.force_open()
    with pytest.raises(CircuitOpen) as caught, breaker:
        pass
    copy = pickle.loads(pickle.dumps(caught.value))
    assert copy.breaker == "review-pickle"
    assert copy.retry_after == caught.value.retry_after


# ---------------------------------------------------------------- circuit breaker


def test_open_for_zero_is_rejected_so_a_hung_probe_cannot_wedge_a_breaker() -> None:
    # A half-open round is restarted after open_for seconds; with zero it never would be.
    with pytest.raises(InvalidInput, match="open_for"):
        CircuitBreaker("review-wedge", open_for=0.0, registry=MetricsRegistry())


# ---------------------------------------------------------------- HTTP integrations


def test_httpx_transport_passes_the_attempt_budget_on(fake_clock: FakeClock) -> None:
    budgets: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        read = timeouts.get("read")
        left = remaining()
        budgets.append(min(x for x in (read, left, float("inf")) if x is not None))
        return httpx.Response(200)

    transport = httpx_retry.RetryTransport(
        httpx.MockTransport(handler),
        policy=httpx_retry.policy(attempt_timeout=1.0, deadline=2.0, clock=fake_clock),
    )
    with httpx.Client(transport=transport, timeout=30.0) as client:
        assert client.get("http://review.test/").status_code == 200
    assert budgets and budgets[0] <= 1.0


def test_async_httpx_transport_enforces_the_attempt_timeout(fake_clock: FakeClock) -> None:
    calls = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.Event().wait()  # a hung attempt
        return httpx.Response(200)

    async def scenario() -> int:
        transport = httpx_retry.AsyncRetryTransport(
            httpx.MockTransport(handler),
            policy=httpx_retry.policy(attempt_timeout=0.05, clock=fake_clock),
        )
        async with httpx.AsyncClient(transport=transport) as client:
            response = await asyncio.wait_for(client.get("http://review.test/"), 0.5)
            return response.status_code

    assert asyncio.run(scenario()) == 200
    assert calls == 2


@pytest.fixture
def broken_then_good_server() -> Iterator[tuple[str, list[int]]]:
    """An HTTP server whose first response's chunked body breaks off, then answers well."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    port = listener.getsockname()[1]
    served: list[int] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5.0)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                served.append(1)
                if len(served) == 1:
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                        b"Connection: close\r\n\r\n5\r\nhel"
                    )
                else:
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
                    )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/", served
    finally:
        stop.set()
        listener.close()
        thread.join(5.0)


def test_requests_adapter_retries_a_broken_chunked_body(
    fake_clock: FakeClock, broken_then_good_server: tuple[str, list[int]]
) -> None:
    url, served = broken_then_good_server
    adapter = requests_retry.RetryAdapter(policy=requests_retry.policy(clock=fake_clock))
    with requests.Session() as session:
        session.mount("http://", adapter)
        response = session.get(url, timeout=5.0)
        with response:
            assert response.text == "hello"
    assert len(served) == 2
