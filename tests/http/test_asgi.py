"""ASGI 3 over a real server: a Starlette app, the scope, message order, lifespan."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route

from helpers.http import running
from trusswork.core.errors import Unavailable
from trusswork.http._server import Exchange, ExchangeHandler

EVENTS: list[str] = []


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    EVENTS.append("startup")
    yield {"greeting": "hello from lifespan"}
    EVENTS.append("shutdown")


async def homepage(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "path": request.url.path,
            "query": request.url.query,
            "greeting": request.state.greeting,
            "agent": request.headers.get("user-agent"),
        }
    )


async def echo(request: Request) -> PlainTextResponse:
    return PlainTextResponse((await request.body()).decode()[::-1])


async def stream(request: Request) -> StreamingResponse:
    async def numbers() -> AsyncIterator[bytes]:
        for i in range(5):
            yield b"%d\n" % i

    return StreamingResponse(numbers(), media_type="text/plain")


async def fail(request: Request) -> PlainTextResponse:
    raise RuntimeError("boom")


def make_app(static: Path) -> Starlette:
    async def file(request: Request) -> FileResponse:
        return FileResponse(static)

    return Starlette(
        routes=[
            Route("/items/{name}", homepage),
            Route("/echo", echo, methods=["POST"]),
            Route("/stream", stream),
            Route("/fail", fail),
            Route("/file", file),
        ],
        lifespan=lifespan,
    )


@pytest.fixture(scope="module")
def starlette_client(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[httpx.Client, bytes]]:
    static = tmp_path_factory.mktemp("asgi") / "data.bin"
    data = bytes(range(256)) * 1000
    static.write_bytes(data)
    EVENTS.clear()
    with running(make_app(static)) as srv:
        assert EVENTS == ["startup"]
        with httpx.Client(base_url=f"http://127.0.0.1:{srv.port}") as client:
            yield client, data
    assert EVENTS == ["startup", "shutdown"]


def test_starlette_routes_json_and_lifespan_state(
    starlette_client: tuple[httpx.Client, bytes],
) -> None:
    client, _ = starlette_client
    response = client.get("/items/a%20b?x=1", headers={"User-Agent": "tests"})
    assert response.status_code == 200
    assert response.json() == {
        "path": "/items/a b",
        "query": "x=1",
        "greeting": "hello from lifespan",
        "agent": "tests",
    }


def test_starlette_request_body(starlette_client: tuple[httpx.Client, bytes]) -> None:
    client, _ = starlette_client
    assert client.post("/echo", content=b"abcdef").text == "fedcba"
    chunked = client.post("/echo", content=iter([b"abc", b"def"]))  # sent chunked
    assert chunked.text == "fedcba"


def test_starlette_streaming_response_is_chunked(
    starlette_client: tuple[httpx.Client, bytes],
) -> None:
    client, _ = starlette_client
    response = client.get("/stream")
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.text == "0\n1\n2\n3\n4\n"


def test_starlette_exception_is_500_and_connection_is_reused(
    starlette_client: tuple[httpx.Client, bytes],
) -> None:
    client, _ = starlette_client
    assert client.get("/fail").status_code == 500
    assert client.get("/items/x").status_code == 200


def test_starlette_file_response_via_pathsend(starlette_client: tuple[httpx.Client, bytes]) -> None:
    client, data = starlette_client
    response = client.get("/file")
    assert response.content == data
    assert response.headers["content-length"] == str(len(data))
    assert client.get("/items/x").status_code == 200  # still in sync


def test_scope_fields() -> None:
    scopes: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan here")  # servers must carry on without it
        scopes.append(scope)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with running(app) as srv, httpx.Client() as client:
        response = client.get(
            f"http://127.0.0.1:{srv.port}/a%2Fb/%C3%A9?q=%20", headers={"X-Up": "1"}
        )
        assert response.status_code == 204
    scope = scopes[0]
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.3"}
    assert (scope["http_version"], scope["method"], scope["scheme"]) == ("1.1", "GET", "http")
    assert scope["path"] == "/a/b/é"
    assert scope["raw_path"] == b"/a%2Fb/%C3%A9"
    assert scope["query_string"] == b"q=%20"
    assert scope["root_path"] == ""
    assert (b"x-up", b"1") in scope["headers"]
    assert scope["client"][0] == "127.0.0.1"
    assert scope["server"] == ("127.0.0.1", srv.port)


def test_send_order_errors_are_500_and_late_errors_close() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/body-first":
            await send({"type": "http.response.body", "body": b"x"})
        elif scope["path"] == "/late":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"partial", "more_body": True})
            raise RuntimeError("after the start")
        else:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

    with running(app) as srv, httpx.Client(base_url=f"http://127.0.0.1:{srv.port}") as client:
        assert client.get("/body-first").status_code == 500
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/late")
        assert client.get("/fine").text == "ok"


def test_receive_reports_disconnect() -> None:
    disconnected = threading.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        assert (await receive())["type"] == "http.request"
        if (await receive())["type"] == "http.disconnect":
            disconnected.set()

    with running(app) as srv:
        with socket.create_connection(("127.0.0.1", srv.port)) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert disconnected.wait(5)


def test_lifespan_startup_failure_stops_the_server() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    with pytest.raises(Unavailable, match="no database"), running(app):
        pass


def test_server_middleware_wraps_asgi_apps() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"app"})

    def blocker(inner: ExchangeHandler) -> ExchangeHandler:
        async def handler(exchange: Exchange) -> None:
            if exchange.request.header(b"x-block") is not None:
                exchange.respond(429, [(b"retry-after", b"1")], b"slow down")
                return
            await inner(exchange)

        return handler

    with (
        running(app, middleware=[blocker]) as srv,
        httpx.Client(base_url=f"http://127.0.0.1:{srv.port}") as client,
    ):
        blocked = client.get("/", headers={"X-Block": "1"})
        assert (blocked.status_code, blocked.text) == (429, "slow down")
        assert client.get("/").text == "app"
