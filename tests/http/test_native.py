"""The native interface over a real server: router, buffers, JSON, files, metrics, middleware."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from helpers.http import running
from trusswork.core.errors import InvalidInput
from trusswork.http._native import (
    App,
    FileResponse,
    HTTPRequest,
    JSONResponse,
    Response,
    StaticFiles,
)

FILE_SIZE = 300_000
HUGE_SIZE = 16 << 20  # more than the socket buffers: sendfile must wait for writability


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, App, Path]]:
    base = tmp_path_factory.mktemp("site")
    public = base / "public"
    public.mkdir()
    (public / "big.bin").write_bytes(os.urandom(FILE_SIZE))
    (public / "huge.bin").write_bytes(os.urandom(HUGE_SIZE))
    (public / "index.html").write_text("<h1>hi</h1>")
    (base / "secret.txt").write_text("top secret")

    seen: list[str] = []

    def tagging(handler: Any) -> Any:
        async def wrapped(request: HTTPRequest, **params: Any) -> Any:
            seen.append(request.path)
            response = await handler(request, **params)
            if isinstance(response, Response):
                response.headers.append((b"x-middleware", b"yes"))
            return response

        return wrapped

    app = App(middleware=[tagging])
    app.add_metrics_route()
    app.route(("GET", "HEAD"), "/static/{path:path}", StaticFiles(public))

    @app.get("/array")
    async def array(request: HTTPRequest) -> np.ndarray[Any, Any]:
        return np.arange(1000, dtype=np.float64)

    @app.get("/view")
    async def view(request: HTTPRequest) -> Response:
        data = bytearray(b"0123456789" * 5000)
        return Response(memoryview(data)[10:], media_type="application/octet-stream")

    @app.get("/users/{user_id:int}")
    async def user(request: HTTPRequest, user_id: int) -> dict[str, Any]:
        return {"id": user_id, "query": request.query_string}

    @app.post("/json")
    async def echo_json(request: HTTPRequest) -> JSONResponse:
        return JSONResponse({"got": request.json()}, status=201)

    @app.get("/tagged")
    async def tagged(request: HTTPRequest) -> Response:
        return Response(b"ok")

    @app.get("/file")
    async def file(request: HTTPRequest) -> FileResponse:
        return FileResponse(public / "index.html")

    with running(app) as srv, httpx.Client(base_url=f"http://127.0.0.1:{srv.port}") as client:
        yield client, app, public
    assert "/tagged" in seen


def test_buffer_responses_are_sent_whole(site: tuple[httpx.Client, App, Path]) -> None:
    client, _, _ = site
    array = client.get("/array")
    assert array.headers["content-length"] == str(8000)
    assert np.array_equal(np.frombuffer(array.content, dtype=np.float64), np.arange(1000))
    view = client.get("/view")
    assert view.content == (b"0123456789" * 5000)[10:]


def test_path_parameters_and_json(site: tuple[httpx.Client, App, Path]) -> None:
    client, _, _ = site
    assert client.get("/users/7?x=1").json() == {"id": 7, "query": "x=1"}
    assert client.get("/users/abc").status_code == 404
    created = client.post("/json", content=orjson.dumps([1, 2]))
    assert (created.status_code, created.json()) == (201, {"got": [1, 2]})
    bad = client.post("/json", content=b"{nope")
    assert bad.status_code == 400
    assert bad.headers["content-type"] == "application/problem+json"
    assert "not valid JSON" in bad.json()["detail"]


def test_static_file_by_sendfile_with_range_and_conditional_get(
    site: tuple[httpx.Client, App, Path],
) -> None:
    client, _, public = site
    data = (public / "big.bin").read_bytes()
    whole = client.get("/static/big.bin")
    assert whole.status_code == 200 and whole.content == data
    etag = whole.headers["etag"]
    part = client.get("/static/big.bin", headers={"Range": "bytes=1000-1999"})
    assert part.status_code == 206 and part.content == data[1000:2000]
    assert part.headers["content-range"] == f"bytes 1000-1999/{FILE_SIZE}"
    cached = client.get("/static/big.bin", headers={"If-None-Match": etag})
    assert cached.status_code == 304 and cached.content == b""
    head = client.head("/static/big.bin")
    assert head.headers["content-length"] == str(FILE_SIZE) and head.content == b""
    # the connection is still in sync after HEAD and 304
    assert client.get("/static/index.html").text == "<h1>hi</h1>"
    assert client.get("/file").headers["content-type"] == "text/html"


def test_file_larger_than_socket_buffers_arrives_whole(
    site: tuple[httpx.Client, App, Path],
) -> None:
    client, _, public = site
    with client.stream("GET", "/static/huge.bin") as response:
        received = bytearray()
        for piece in response.iter_bytes():
            received += piece
    assert received == (public / "huge.bin").read_bytes()
    assert client.get("/users/3").json()["id"] == 3  # the connection is still in sync


@pytest.mark.parametrize(
    "path", ["/static/../secret.txt", "/static/%2e%2e/secret.txt", "/static/..%2fsecret.txt"]
)
def test_path_traversal_is_404(site: tuple[httpx.Client, App, Path], path: str) -> None:
    client, _, _ = site
    # httpx would normalize "..": send the raw target
    response = client.send(httpx.Request("GET", client.base_url.join("/"), extensions={}))
    assert response.status_code == 404
    raw = client.build_request("GET", "/")
    raw.url = raw.url.copy_with(raw_path=path.encode())
    answer = client.send(raw)
    assert answer.status_code == 404
    assert b"top secret" not in answer.content


def test_metrics_route_counts_requests(site: tuple[httpx.Client, App, Path]) -> None:
    client, app, _ = site
    client.get("/users/1")
    client.get("/users/1")
    text = client.get("/metrics").text
    assert 'trusswork_http_requests_total{method="GET",status="200"}' in text
    assert "trusswork_http_request_seconds_bucket" in text
    counter = app.metrics.get("trusswork_http_requests_total")
    assert counter.labels("GET", "200").value >= 2  # type: ignore[union-attr]


def test_middleware_wraps_handlers(site: tuple[httpx.Client, App, Path]) -> None:
    client, _, _ = site
    assert client.get("/tagged").headers["x-middleware"] == "yes"


def test_static_files_root_must_exist(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="not a directory"):
        StaticFiles(tmp_path / "missing")


def test_plain_middleware_runs_on_every_request_of_a_static_route() -> None:
    # After the first request a plain handler wrapped in plain middleware is answered
    # by the server's compiled path; the middleware must still run every time.
    calls: list[str] = []

    def counting(handler: Any) -> Any:
        def wrapped(request: HTTPRequest, **params: Any) -> Any:
            calls.append(request.path)
            if request.header(b"x-block"):
                return Response(b"blocked", status=429)
            response = handler(request, **params)
            response.headers.append((b"x-count", str(len(calls)).encode()))
            return response

        return wrapped

    app = App(middleware=[counting])

    @app.get("/plain")
    def plain(request: HTTPRequest) -> Response:
        return Response(b"ok")

    with running(app) as srv, httpx.Client(base_url=f"http://127.0.0.1:{srv.port}") as client:
        counts = [client.get("/plain").headers["x-count"] for _ in range(3)]
        blocked = client.get("/plain", headers={"x-block": "1"})
    assert counts == ["1", "2", "3"] and calls == ["/plain"] * 4
    assert (blocked.status_code, blocked.content) == (429, b"blocked")
