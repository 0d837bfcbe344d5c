"""The compiled fast paths: plain native handlers, the outbox, batched metrics, response heads."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from helpers.http import connect, get, is_closed, read_response, running
from trusswork.core.errors import InvalidInput, NotFound
from trusswork.core.metrics import Counter, Histogram, MetricsRegistry
from trusswork.http import App, FileResponse, HTTPRequest, JSONResponse, Response
from trusswork.http._server import Server, ServerConfig
from trusswork.http._workers import serve

MANY = 60  # more fields than the head writer keeps on the stack


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, App]]:
    root = tmp_path_factory.mktemp("plain")
    (root / "page.html").write_text("<p>page</p>")
    app = App()
    app.add_metrics_route()

    def hello(request: HTTPRequest) -> Response:
        return Response(b"hello", headers=[(b"x-path", request.path.encode())])

    def raw(request: HTTPRequest) -> bytes:
        return b"raw bytes"

    def document(request: HTTPRequest) -> dict[str, Any]:
        return {"query": request.query_string}

    def many(request: HTTPRequest) -> Response:
        return Response(b"many", headers=[(f"x-h{i}".encode(), b"%d" % i) for i in range(MANY)])

    def missing(request: HTTPRequest) -> Response:
        raise NotFound("nothing here")

    def broken(request: HTTPRequest) -> Response:
        raise ValueError("a bug")

    def injected(request: HTTPRequest) -> Response:
        return Response(b"x", headers=[(b"x-evil", b"a\r\nset-cookie: stolen=1")])

    def page(request: HTTPRequest) -> FileResponse:
        return FileResponse(root / "page.html")

    def deferred(request: HTTPRequest) -> Any:
        async def later() -> JSONResponse:
            await asyncio.sleep(0)
            return JSONResponse({"later": True})

        return later()

    for pattern, handler in [
        ("/hello", hello),
        ("/raw", raw),
        ("/doc", document),
        ("/many", many),
        ("/missing", missing),
        ("/broken", broken),
        ("/injected", injected),
        ("/page", page),
        ("/deferred", deferred),
    ]:
        app.route(("GET", "HEAD"), pattern, handler)
    with running(app) as server:
        yield server, app


@pytest.fixture
def client(plain: tuple[Server, App]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://127.0.0.1:{plain[0].port}") as http:
        yield http


def test_plain_handlers_answer_every_kind_of_result(client: httpx.Client) -> None:
    hello = client.get("/hello")
    assert (hello.status_code, hello.content, hello.headers["x-path"]) == (200, b"hello", "/hello")
    assert hello.headers["content-length"] == "5"
    assert client.get("/raw").content == b"raw bytes"
    assert client.get("/doc?a=1").json() == {"query": "a=1"}
    assert client.get("/page").text == "<p>page</p>"  # a FileResponse: sendfile in a task
    assert client.get("/deferred").json() == {"later": True}  # an awaitable from a plain def


def test_head_requests_get_the_length_but_no_body(plain: tuple[Server, App]) -> None:
    with connect(plain[0]) as sock:
        sock.sendall(get("/hello", method="HEAD") + get("/hello"))
        buffer = bytearray()
        status, headers, body = read_response(sock, buffer, head=True)
        assert (status, headers[b"content-length"], body) == (200, b"5", b"")
        assert read_response(sock, buffer)[2] == b"hello"  # the next response is intact


def test_a_response_with_many_fields_keeps_them_all(client: httpx.Client) -> None:
    answer = client.get("/many")
    assert answer.content == b"many"
    assert [answer.headers[f"x-h{i}"] for i in range(MANY)] == [str(i) for i in range(MANY)]


def test_errors_in_plain_handlers(client: httpx.Client) -> None:
    missing = client.get("/missing")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert client.get("/broken").status_code == 500
    # a header value with CR LF is refused before anything is sent: a 500, not a split response
    injected = client.get("/injected")
    assert injected.status_code == 500
    assert "set-cookie" not in injected.headers
    assert client.get("/hello").status_code == 200  # the connection pool still works


def test_pipelined_plain_requests_are_answered_in_order(plain: tuple[Server, App]) -> None:
    paths = ["/hello", "/raw", "/doc?n=1", "/page", "/deferred", "/hello", "/missing", "/raw"]
    with connect(plain[0]) as sock:
        sock.sendall(b"".join(get(path) for path in paths))
        buffer = bytearray()
        bodies = [read_response(sock, buffer)[2] for _ in paths]
    assert bodies[0] == b"hello"
    assert bodies[1] == b"raw bytes"
    assert bodies[2] == b'{"query":"n=1"}'
    assert bodies[3] == b"<p>page</p>"
    assert bodies[4] == b'{"later":true}'
    assert bodies[5] == b"hello"
    assert b"nothing here" in bodies[6]
    assert bodies[7] == b"raw bytes"


def test_a_close_after_held_responses_sends_them_first(plain: tuple[Server, App]) -> None:
    # Both responses are written inside one data_received (held in the outbox); the
    # second asks for the close, which must not overtake them.
    with connect(plain[0]) as sock:
        sock.sendall(get("/hello") + get("/raw", "Connection: close"))
        buffer = bytearray()
        assert read_response(sock, buffer)[2] == b"hello"
        status, headers, body = read_response(sock, buffer)
        assert (status, body, headers[b"connection"]) == (200, b"raw bytes", b"close")
        assert is_closed(sock)


def test_a_parse_error_after_held_responses_comes_after_them(plain: tuple[Server, App]) -> None:
    with connect(plain[0]) as sock:
        sock.sendall(get("/hello") + b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n")
        buffer = bytearray()
        assert read_response(sock, buffer)[2] == b"hello"
        assert read_response(sock, buffer)[0] == 400
        assert is_closed(sock)


def test_plain_requests_are_counted_in_the_metrics(
    plain: tuple[Server, App], client: httpx.Client
) -> None:
    app = plain[1]
    counter = app.metrics.get("trusswork_http_requests_total")
    assert isinstance(counter, Counter)
    before = counter.labels("GET", "200").value
    for _ in range(5):
        client.get("/raw")
    text = client.get("/metrics").text  # served after the flush of the earlier turns
    assert counter.labels("GET", "200").value >= before + 5
    assert 'trusswork_http_requests_total{method="GET",status="200"}' in text
    histogram = app.metrics.get("trusswork_http_request_seconds")
    assert isinstance(histogram, Histogram)
    assert histogram.count >= 5


def test_observe_many_matches_observe() -> None:
    registry = MetricsRegistry()
    one = registry.histogram("one_seconds", "one by one", buckets=(0.1, 1.0))
    batch = registry.histogram("batch_seconds", "in a batch", buckets=(0.1, 1.0))
    values = [0.05, 0.1, 0.5, 1.0, 3.0, 0.0]
    for value in values:
        one.observe(value)
    batch.observe_many(values)
    assert batch.bucket_counts() == one.bucket_counts()
    assert (batch.count, batch.sum) == (one.count, one.sum)
    with pytest.raises(InvalidInput, match="NaN"):
        batch.observe_many([1.0, float("nan")])
    assert batch.count == len(values)  # nothing of a refused batch is recorded


def test_requests_without_host_are_refused_on_both_paths(plain: tuple[Server, App]) -> None:
    with connect(plain[0]) as sock:
        sock.sendall(b"GET /hello HTTP/1.1\r\n\r\n")
        assert read_response(sock, bytearray())[0] == 400
        assert is_closed(sock)
    with socket.create_connection(("127.0.0.1", plain[0].port), timeout=5) as sock:
        sock.sendall(b"GET /hello HTTP/1.0\r\n\r\n")  # HTTP/1.0 needs no Host
        assert read_response(sock, bytearray())[2] == b"hello"


async def lying_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Declares a Content-Length its body does not keep (``/short``, ``/long``, streamed)."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    headers = [(b"content-length", b"10")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if path == "/whole-short":
        await send({"type": "http.response.body", "body": b"12345"})
    elif path == "/stream-long":
        await send({"type": "http.response.body", "body": b"12345", "more_body": True})
        await send({"type": "http.response.body", "body": b"678901234", "more_body": False})
    elif path == "/stream-short":
        await send({"type": "http.response.body", "body": b"12345", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    else:
        await send({"type": "http.response.body", "body": b"0123456789"})


def test_a_body_that_breaks_its_content_length_never_leaves_as_a_valid_response() -> None:
    with running(lying_app) as server:
        with connect(server) as sock:  # known before anything is sent: a 500, connection kept
            sock.sendall(get("/whole-short") + get("/fine"))
            buffer = bytearray()
            assert read_response(sock, buffer)[0] == 500
            assert read_response(sock, buffer)[2] == b"0123456789"
        for path in ("/stream-long", "/stream-short"):  # found mid-stream: the connection closes
            with connect(server) as sock:
                sock.sendall(get(path))
                received = bytearray()
                while chunk := sock.recv(65536):
                    received += chunk
                head, _, body = bytes(received).partition(b"\r\n\r\n")
                assert b"content-length: 10" in head.lower()
                assert len(body) < 10, f"{path}: a response that looks whole: {body!r}"


def test_knobs_reach_the_accepted_sockets() -> None:
    app = App()
    app.route("GET", "/", lambda request: b"ok")
    for nodelay, high in ((True, 0), (False, 16384)):
        with (
            running(app, tcp_nodelay=nodelay, write_buffer_high=high) as server,
            connect(server) as sock,
        ):
            sock.sendall(get("/"))
            assert read_response(sock, bytearray())[2] == b"ok"
            (protocol,) = server.connections
            assert protocol.transport is not None
            accepted = protocol.transport.get_extra_info("socket")
            assert bool(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)) is nodelay
            if high:
                assert protocol.transport.get_write_buffer_limits()[1] == high


def test_bad_knobs_are_refused() -> None:
    with pytest.raises(InvalidInput, match="write_buffer_high"):
        ServerConfig(write_buffer_high=-1)
    with pytest.raises(InvalidInput, match="loop must be"):
        serve(App(), loop="trio")


def test_a_client_that_does_not_read_is_not_read_either() -> None:
    big = b"z" * (1 << 20)
    app = App()
    app.route("GET", "/big", lambda request: big)
    with running(app) as server, connect(server) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        count = 200
        sock.sendall(b"".join(get("/big") for _ in range(count)))
        deadline = time.monotonic() + 5
        paused = False
        while time.monotonic() < deadline and not paused:
            # the server may not have registered the connection yet
            paused = any(p.paused_reading and p.paused_writing for p in list(server.connections))
            time.sleep(0.01)
        assert paused, "the server kept reading a client that does not read"
        buffer = bytearray()
        bodies = [read_response(sock, buffer)[2] for _ in range(count)]
    assert all(body == big for body in bodies)


def test_native_handlers_see_body_and_headers_as_memoryviews() -> None:
    seen: dict[str, Any] = {}

    def inspect_request(request: HTTPRequest) -> bytes:
        seen["body"] = request.body
        seen["headers"] = request.headers
        return bytes(request.body).upper()

    app = App()
    app.route("POST", "/inspect", inspect_request)
    with running(app) as server, connect(server) as sock:
        sock.sendall(get("/inspect", "X-Trace: abc", "Content-Length: 5", method="POST") + b"hello")
        assert read_response(sock, bytearray())[2] == b"HELLO"
    assert isinstance(seen["body"], memoryview) and seen["body"].readonly
    assert all(isinstance(n, memoryview) and isinstance(v, memoryview) for n, v in seen["headers"])
    assert (b"X-Trace", b"abc") in [(bytes(n), bytes(v)) for n, v in seen["headers"]]
