"""trusswork.retry.integrations: httpx transports and requests adapter against a real local
HTTP server, and redis-py / psycopg error classification against real servers."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import psycopg
import psycopg.errors
import pytest
import redis
import redis.backoff
import redis.exceptions
import redis.retry
import requests

from trusswork.core.clock import FakeClock
from trusswork.core.errors import InvalidInput
from trusswork.retry import Policy, RetryError, retry
from trusswork.retry.integrations import httpx as httpx_retry
from trusswork.retry.integrations import psycopg as psycopg_retry
from trusswork.retry.integrations import redis as redis_retry
from trusswork.retry.integrations import requests as requests_retry

DROP = "drop"  # close the connection without answering


@dataclass
class Server:
    """A real HTTP server answering from a script; counts the requests it saw."""

    url: str = ""
    script: list[Any] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def plan(self, *steps: Any) -> None:
        """Queue answers: (status, headers) pairs or DROP; then 200 "ok" forever."""
        self.script.extend(steps)

    def next_step(self, method: str) -> Any:
        with self.lock:
            self.seen.append(method)
            return self.script.pop(0) if self.script else (200, {})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # closed again: nothing listens there now


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # one request per connection: no idle keep-alive threads

        def answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            step = state.next_step(self.command)
            if step == DROP:
                self.close_connection = True
                return
            status, headers = step
            body = b"ok" if status == 200 else b"nope"
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/item"
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def http_policy(clock: FakeClock, **overrides: Any) -> Policy:
    """The httpx policy with a tiny, unjittered backoff so waits are easy to assert."""
    options: dict[str, Any] = {"clock": clock, "jitter": None, "wait_initial": 0.01}
    options.update(overrides)
    return httpx_retry.policy(**options)


def sync_client(clock: FakeClock, **overrides: Any) -> httpx.Client:
    return httpx.Client(
        transport=httpx_retry.RetryTransport(policy=http_policy(clock, **overrides))
    )


# ---------------------------------------------------------------- httpx, sync


def test_httpx_503_with_retry_after_waits_that_long_then_succeeds(
    server: Server, fake_clock: FakeClock
) -> None:
    server.plan((503, {"Retry-After": "2"}))
    with sync_client(fake_clock) as client:
        response = client.get(server.url)
    assert (response.status_code, response.text) == (200, "ok")
    assert server.seen == ["GET", "GET"]
    assert fake_clock.sleeps == [2.0]


def test_httpx_429_with_an_http_date_waits_until_that_date(
    server: Server, fake_clock: FakeClock
) -> None:
    server.plan((429, {"Retry-After": formatdate(fake_clock.time() + 7, usegmt=True)}))
    with sync_client(fake_clock) as client:
        assert client.get(server.url).status_code == 200
    assert len(server.seen) == 2
    assert fake_clock.sleeps == [7.0]


def test_httpx_404_is_not_retried(server: Server, fake_clock: FakeClock) -> None:
    server.plan((404, {}))
    with sync_client(fake_clock) as client:
        assert client.get(server.url).status_code == 404
    assert server.seen == ["GET"]
    assert fake_clock.sleeps == []


def test_httpx_dropped_connection_is_retried_with_backoff(
    server: Server, fake_clock: FakeClock
) -> None:
    server.plan(DROP, DROP)
    with sync_client(fake_clock) as client:
        assert client.get(server.url).text == "ok"
    assert len(server.seen) == 3
    assert fake_clock.sleeps == [0.01, 0.02]


def test_httpx_gives_up_with_the_last_response_or_the_last_error(
    server: Server, fake_clock: FakeClock
) -> None:
    server.plan((503, {}), (503, {}), (503, {}), DROP, DROP, DROP)
    with sync_client(fake_clock, attempts=3) as client:
        assert client.get(server.url).status_code == 503
        with pytest.raises(httpx.RemoteProtocolError):
            client.get(server.url)
    assert len(server.seen) == 6


def test_httpx_post_is_not_retried_unless_methods_allow_it(
    server: Server, fake_clock: FakeClock
) -> None:
    server.plan((503, {}), (503, {}))
    with sync_client(fake_clock) as client:
        assert client.post(server.url, content=b"x").status_code == 503
    assert server.seen == ["POST"]
    transport = httpx_retry.RetryTransport(policy=http_policy(fake_clock), methods={"post"})
    with httpx.Client(transport=transport) as client:
        assert client.post(server.url, content=b"x").status_code == 200
    assert server.seen == ["POST", "POST", "POST"]


def test_httpx_streamed_request_bodies_are_not_replayed(
    server: Server, fake_clock: FakeClock
) -> None:
    server.plan((503, {}))
    with sync_client(fake_clock) as client:
        assert client.put(server.url, content=iter([b"chunk"])).status_code == 503
    assert server.seen == ["PUT"]


def test_httpx_pushback_beyond_max_pushback_or_the_deadline_ends_the_run(
    server: Server, fake_clock: FakeClock
) -> None:
    server.plan((503, {"Retry-After": "3600"}), (503, {"Retry-After": "5"}))
    with sync_client(fake_clock) as client:
        assert client.get(server.url).status_code == 503  # 3600 s > max_pushback=60
    with sync_client(fake_clock, deadline=1.0) as client:
        assert client.get(server.url).status_code == 503  # 5 s > the 1 s deadline
    assert len(server.seen) == 2
    assert fake_clock.sleeps == []


def test_httpx_policy_status_set_replaces_the_default(
    server: Server, fake_clock: FakeClock
) -> None:
    server.plan((404, {}), (503, {}))
    with sync_client(fake_clock, retry_on_status={404}) as client:
        assert client.get(server.url).status_code == 503
    assert len(server.seen) == 2


def test_httpx_invalid_transport_options_are_rejected() -> None:
    with pytest.raises(InvalidInput, match="methods"):
        httpx_retry.RetryTransport(methods="GET")
    with pytest.raises(InvalidInput, match="policy"):
        httpx_retry.AsyncRetryTransport(policy={"attempts": 3})  # type: ignore[arg-type]


# ---------------------------------------------------------------- httpx, async


def test_httpx_async_transport_honours_retry_after_and_retries_drops(
    server: Server, fake_clock: FakeClock
) -> None:
    server.plan((503, {"Retry-After": "4"}), DROP, (404, {}))

    async def scenario() -> list[int]:
        transport = httpx_retry.AsyncRetryTransport(policy=http_policy(fake_clock))
        async with httpx.AsyncClient(transport=transport) as client:
            first = await client.get(server.url)  # 503, drop, then 404: not retried
            second = await client.get(server.url)
        return [first.status_code, second.status_code]

    assert asyncio.run(scenario()) == [404, 200]
    assert len(server.seen) == 4
    assert fake_clock.sleeps == [4.0, 0.02]


# ---------------------------------------------------------------- requests


def session(clock: FakeClock, **overrides: Any) -> requests.Session:
    options: dict[str, Any] = {"clock": clock, "jitter": None, "wait_initial": 0.01}
    options.update(overrides)
    adapter = requests_retry.RetryAdapter(policy=requests_retry.policy(**options))
    result = requests.Session()
    result.mount("http://", adapter)
    return result


def test_requests_503_with_retry_after_then_200(server: Server, fake_clock: FakeClock) -> None:
    server.plan((503, {"Retry-After": "2"}))
    with session(fake_clock) as client:
        response = client.get(server.url, timeout=5)
    assert (response.status_code, response.text) == (200, "ok")
    assert len(server.seen) == 2
    assert fake_clock.sleeps == [2.0]


def test_requests_429_with_an_http_date(server: Server, fake_clock: FakeClock) -> None:
    server.plan((429, {"Retry-After": formatdate(fake_clock.time() + 7, usegmt=True)}))
    with session(fake_clock) as client:
        assert client.get(server.url, timeout=5).status_code == 200
    assert fake_clock.sleeps == [7.0]


def test_requests_404_and_post_are_not_retried(server: Server, fake_clock: FakeClock) -> None:
    server.plan((404, {}), (503, {}))
    with session(fake_clock) as client:
        assert client.get(server.url, timeout=5).status_code == 404
        assert client.post(server.url, data=b"x", timeout=5).status_code == 503
    assert server.seen == ["GET", "POST"]
    assert fake_clock.sleeps == []


def test_requests_dropped_connection_is_retried_and_gives_up_with_the_error(
    server: Server, fake_clock: FakeClock
) -> None:
    server.plan(DROP, DROP, DROP, DROP)
    with session(fake_clock, attempts=3) as client:
        with pytest.raises(requests.ConnectionError):
            client.get(server.url, timeout=5)
        assert client.get(server.url, timeout=5).text == "ok"  # drop, then 200
    assert len(server.seen) == 5
    assert fake_clock.sleeps == [0.01, 0.02, 0.01]


def test_requests_adapter_turns_urllib3_retries_off() -> None:
    adapter = requests_retry.RetryAdapter()
    assert adapter.max_retries.total == 0
    assert adapter.retry_policy.retry_if is requests_retry.is_retryable


# ---------------------------------------------------------------- classification


def test_httpx_classification() -> None:
    request = httpx.Request("GET", "http://example.test/")

    def status_error(status: int) -> httpx.HTTPStatusError:
        response = httpx.Response(status, request=request)
        return httpx.HTTPStatusError("x", request=request, response=response)

    retryable = [
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("slow"),
        httpx.ReadTimeout("slow"),
        httpx.ReadError("reset"),
        httpx.WriteError("reset"),
        httpx.PoolTimeout("busy"),
        httpx.RemoteProtocolError("dropped"),
        *(status_error(s) for s in (408, 425, 429, 500, 502, 503, 504)),
    ]
    permanent = [
        httpx.InvalidURL("bad"),
        httpx.UnsupportedProtocol("ftp"),
        httpx.DecodingError("gzip"),
        httpx.TooManyRedirects("loop"),
        httpx.LocalProtocolError("bad header"),
        status_error(404),
        status_error(501),
        ConnectionError("not from httpx"),
    ]
    assert all(httpx_retry.is_retryable(e) for e in retryable)
    assert not any(httpx_retry.is_retryable(e) for e in permanent)


def test_requests_classification() -> None:
    def status_error(status: int) -> requests.HTTPError:
        response = requests.Response()
        response.status_code = status
        return requests.HTTPError(response=response)

    def read_timeout(method: str) -> requests.ReadTimeout:
        request = requests.Request(method, "http://example.test/").prepare()
        return requests.ReadTimeout(request=request)

    retryable = [
        requests.ConnectionError("reset"),
        requests.ConnectTimeout("slow"),
        requests.exceptions.ProxyError("proxy down"),
        requests.exceptions.ChunkedEncodingError("cut"),
        read_timeout("GET"),
        requests.ReadTimeout("no request known"),
        status_error(503),
        status_error(429),
    ]
    permanent = [
        read_timeout("POST"),
        requests.exceptions.SSLError("certificate verify failed"),
        requests.exceptions.InvalidURL("bad"),
        requests.exceptions.MissingSchema("no scheme"),
        requests.TooManyRedirects("loop"),
        status_error(404),
        requests.HTTPError("no response"),
    ]
    assert all(requests_retry.is_retryable(e) for e in retryable)
    assert not any(requests_retry.is_retryable(e) for e in permanent)


def test_requests_classification_of_a_real_refused_connection() -> None:
    with pytest.raises(requests.ConnectionError) as caught:
        requests.get(f"http://127.0.0.1:{free_port()}/", timeout=2)
    assert requests_retry.is_retryable(caught.value)


def test_redis_classification_of_constructed_errors() -> None:
    errors = redis.exceptions
    retryable = [
        errors.ConnectionError("reset"),
        errors.TimeoutError("slow"),
        errors.BusyLoadingError("loading"),
        errors.ReadOnlyError("replica"),
        errors.ClusterDownError("down"),
        errors.MasterDownError("no primary"),
        errors.TryAgainError("resharding"),
    ]
    permanent = [
        errors.ResponseError("WRONGTYPE"),
        errors.DataError("bad value"),
        errors.AuthenticationError("wrong password"),
        errors.AuthorizationError("no"),
        errors.WatchError("changed"),
        ConnectionError("not from redis"),
    ]
    assert all(redis_retry.is_retryable(e) for e in retryable)
    assert not any(redis_retry.is_retryable(e) for e in permanent)


def test_redis_real_refused_connection_is_retried_by_the_ready_policy(
    fake_clock: FakeClock,
) -> None:
    # redis-py retries on its own by default (with real sleeps): one retry layer is enough.
    no_retry = redis.retry.Retry(redis.backoff.NoBackoff(), 0)
    client = redis.Redis(port=free_port(), socket_connect_timeout=2, retry=no_retry)
    attempts: list[int] = []

    @retry(policy=redis_retry.policy(clock=fake_clock))
    def ping() -> Any:
        attempts.append(1)
        return client.ping()

    try:
        with pytest.raises(RetryError) as caught:
            ping()
    finally:
        client.close()
    assert len(attempts) == 3
    error = caught.value.last.error
    assert isinstance(error, redis.exceptions.ConnectionError)
    assert redis_retry.is_retryable(error)


def test_redis_real_response_errors_are_not_retryable(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    key = f"{redis_prefix}string"
    redis_client.set(key, "x")
    with pytest.raises(redis.exceptions.ResponseError) as caught:
        redis_client.lpush(key, "y")  # WRONGTYPE
    assert not redis_retry.is_retryable(caught.value)


def test_psycopg_classification_by_sqlstate() -> None:
    errors = psycopg.errors
    retryable = [
        errors.SerializationFailure(),
        errors.DeadlockDetected(),
        errors.LockNotAvailable(),
        errors.TooManyConnections(),
        errors.AdminShutdown(),
        errors.CrashShutdown(),
        errors.CannotConnectNow(),
        errors.ConnectionFailure(),  # 08006
        errors.ProtocolViolation(),  # 08P01
        psycopg.OperationalError("connection lost"),  # raised by the client: no SQLSTATE
    ]
    permanent = [
        errors.UniqueViolation(),
        errors.SyntaxError(),
        errors.UndefinedTable(),
        errors.DivisionByZero(),
        errors.QueryCanceled(),
        psycopg.InterfaceError("closed cursor"),
        psycopg.DataError("bad value"),
        TimeoutError("not from psycopg"),
    ]
    assert all(psycopg_retry.is_retryable(e) for e in retryable)
    assert not any(psycopg_retry.is_retryable(e) for e in permanent)


def test_psycopg_real_unique_violation_and_syntax_error_are_not_retryable(
    postgres_conn: psycopg.Connection[Any],
) -> None:
    postgres_conn.execute("CREATE TABLE item (id int PRIMARY KEY)")
    postgres_conn.execute("INSERT INTO item VALUES (1)")
    with pytest.raises(psycopg.errors.UniqueViolation) as duplicate:
        postgres_conn.execute("INSERT INTO item VALUES (1)")
    with pytest.raises(psycopg.errors.SyntaxError) as syntax:
        postgres_conn.execute("SELEC 1")
    assert not psycopg_retry.is_retryable(duplicate.value)
    assert not psycopg_retry.is_retryable(syntax.value)


def test_psycopg_real_connection_failure_is_retryable() -> None:
    with pytest.raises(psycopg.OperationalError) as caught:
        psycopg.connect(f"postgresql://postgres@127.0.0.1:{free_port()}/x", connect_timeout=2)
    assert psycopg_retry.is_retryable(caught.value)


def test_psycopg_serialization_failure_reruns_the_whole_transaction(
    postgres_conn: psycopg.Connection[Any], postgres_dsn: str, fake_clock: FakeClock
) -> None:
    postgres_conn.execute("CREATE TABLE account (id int PRIMARY KEY, balance int)")
    postgres_conn.execute("INSERT INTO account VALUES (1, 100)")
    failures: list[BaseException] = []

    def record(attempt: Any) -> None:
        failures.append(attempt.error)

    @retry(policy=psycopg_retry.policy(clock=fake_clock, after=record))
    def add_interest() -> int:
        with psycopg.connect(postgres_dsn) as conn:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            row = conn.execute("SELECT balance FROM account WHERE id = 1").fetchone()
            assert row is not None
            (balance,) = row
            if not failures:  # a concurrent writer commits in between, the first time only
                postgres_conn.execute("UPDATE account SET balance = balance + 50 WHERE id = 1")
            conn.execute("UPDATE account SET balance = %s WHERE id = 1", (balance * 2,))
            conn.commit()
            return int(balance * 2)

    assert add_interest() == 300  # re-run from the start: (100 + 50) * 2
    assert len(failures) == 1
    assert isinstance(failures[0], psycopg.errors.SerializationFailure)
    assert psycopg_retry.is_retryable(failures[0])


def test_httpx_transport_reports_each_failed_attempt_to_the_after_hook(
    server: Server, fake_clock: FakeClock
) -> None:
    server.plan((503, {}), DROP)
    failed: list[tuple[int, object]] = []

    def after(attempt: Any) -> None:
        outcome = attempt.result.status_code if attempt.error is None else type(attempt.error)
        failed.append((attempt.number, outcome))

    with sync_client(fake_clock, after=after) as client:
        assert client.get(server.url).status_code == 200
    assert failed == [(1, 503), (2, httpx.RemoteProtocolError)]


def test_ready_policies_take_overrides_and_retry_returned_responses(
    fake_clock: FakeClock,
) -> None:
    assert httpx_retry.policy(attempts=2).attempts == 2
    assert requests_retry.policy().retry_on == (requests.RequestException,)
    assert redis_retry.policy(wait_initial=1.0).wait_initial == 1.0
    assert psycopg_retry.policy().retry_if is psycopg_retry.is_retryable
    answers = iter([httpx.Response(503, headers={"Retry-After": "1"}), httpx.Response(200)])
    client = httpx.Client(transport=httpx.MockTransport(lambda request: next(answers)))

    @retry(policy=http_policy(fake_clock))
    def fetch() -> httpx.Response:
        return client.get("http://example.test/")

    with client:
        assert fetch().status_code == 200
    assert fake_clock.sleeps == [1.0]


def test_a_session_with_a_retry_adapter_survives_pickling() -> None:
    import pickle

    with requests.Session() as original:
        original.mount("http://", requests_retry.RetryAdapter())
        copy = pickle.loads(pickle.dumps(original))
    adapter = copy.get_adapter("http://example.test/")
    assert adapter.retry_policy.attempts == 4
    copy.close()
