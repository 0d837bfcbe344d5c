"""The HTTP server over real sockets: keep-alive, pipelining, errors, timeouts, workers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvloop

from helpers.http import connect, get, is_closed, read_response, running
from trusswork.http._native import App, HTTPRequest, StreamingResponse
from trusswork.http._server import Server
from trusswork.http._workers import build_server

ROOT = Path(__file__).resolve().parents[2]


def make_app() -> App:
    app = App()

    @app.get("/hello")
    async def hello(request: HTTPRequest) -> bytes:
        return b"Hello, World!"

    @app.get("/slow/{ms:int}")
    async def slow(request: HTTPRequest, ms: int) -> bytes:
        await asyncio.sleep(ms / 1000)
        return b"slow %d" % ms

    @app.get("/boom")
    async def boom(request: HTTPRequest) -> bytes:
        raise RuntimeError("the handler failed")

    @app.post("/echo")
    async def echo(request: HTTPRequest) -> bytes:
        return bytes(request.body)

    @app.get("/stream")
    async def stream(request: HTTPRequest) -> StreamingResponse:
        async def pieces() -> Any:
            for i in range(3):
                yield b"part%d;" % i

        return StreamingResponse(pieces(), media_type="text/plain")

    return app


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running(make_app()) as srv:
        yield srv


def test_keep_alive_serves_several_requests_on_one_connection(server: Server) -> None:
    with connect(server) as sock:
        buffer = bytearray()
        for _ in range(3):
            sock.sendall(get("/hello"))
            status, headers, body = read_response(sock, buffer)
            assert (status, body) == (200, b"Hello, World!")
            assert headers[b"content-length"] == b"13"
            assert b"date" in headers and headers[b"server"] == b"trusswork"


def test_pipelined_requests_in_one_send_are_answered_in_order(server: Server) -> None:
    with connect(server) as sock:
        sock.sendall(get("/slow/60") + get("/hello") + get("/slow/1") + get("/echo", method="HEAD"))
        buffer = bytearray()
        bodies = [read_response(sock, buffer)[2] for _ in range(3)]
        assert bodies == [b"slow 60", b"Hello, World!", b"slow 1"]
        status, headers, _ = read_response(sock, buffer, head=True)
        assert status == 405
        assert b"POST" in headers[b"allow"]


def test_head_has_length_but_no_body(server: Server) -> None:
    with connect(server) as sock:
        sock.sendall(get("/hello", method="HEAD") + get("/hello"))
        buffer = bytearray()
        status, headers, _ = read_response(sock, buffer, head=True)
        assert status == 200 and headers[b"content-length"] == b"13"
        # Had the HEAD response carried a body, this would read "Hello, World!HTTP/1.1 ...".
        buffer_before = bytes(buffer)
        assert not buffer_before.startswith(b"Hello")
        assert read_response(sock, buffer)[2] == b"Hello, World!"


def test_native_router_404_and_405(server: Server) -> None:
    with connect(server) as sock:
        buffer = bytearray()
        sock.sendall(get("/missing"))
        status, headers, _body = read_response(sock, buffer)
        assert status == 404 and headers[b"content-type"] == b"application/problem+json"
        sock.sendall(get("/hello", method="DELETE"))
        assert read_response(sock, buffer)[0] == 405


def test_http10_closes_unless_keep_alive(server: Server) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /hello HTTP/1.0\r\n\r\n")
        status, headers, body = read_response(sock, bytearray())
        assert (status, body) == (200, b"Hello, World!")
        assert is_closed(sock)
    with connect(server) as sock:
        buffer = bytearray()
        for _ in range(2):
            sock.sendall(b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            status, headers, _ = read_response(sock, buffer)
            assert status == 200 and headers[b"connection"] == b"keep-alive"


def test_connection_close_header_closes_after_the_response(server: Server) -> None:
    with connect(server) as sock:
        sock.sendall(get("/hello", "Connection: close"))
        assert read_response(sock, bytearray())[0] == 200
        assert is_closed(sock)


def test_missing_host_is_400_and_closes(server: Server) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /hello HTTP/1.1\r\n\r\n")
        assert read_response(sock, bytearray())[0] == 400
        assert is_closed(sock)


def test_smuggling_request_is_400_and_closes_after_earlier_responses(server: Server) -> None:
    smuggle = (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )
    with connect(server) as sock:
        sock.sendall(get("/hello"))
        buffer = bytearray()
        assert read_response(sock, buffer)[0] == 200
        sock.sendall(smuggle)
        status, headers, body = read_response(sock, buffer)
        assert status == 400 and headers[b"connection"] == b"close"
        assert b"Transfer-Encoding" in body
        assert is_closed(sock)


def test_unsupported_transfer_coding_is_501(server: Server) -> None:
    with connect(server) as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
        )
        assert read_response(sock, bytearray())[0] == 501
        assert is_closed(sock)


def test_handler_exception_is_500_and_connection_stays_usable(server: Server) -> None:
    with connect(server) as sock:
        buffer = bytearray()
        sock.sendall(get("/boom"))
        assert read_response(sock, buffer)[0] == 500
        sock.sendall(get("/hello"))
        assert read_response(sock, buffer)[2] == b"Hello, World!"


def test_chunked_request_and_streamed_response(server: Server) -> None:
    with connect(server) as sock:
        buffer = bytearray()
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        )
        assert read_response(sock, buffer)[2] == b"abcde"
        sock.sendall(get("/stream"))
        _status, headers, body = read_response(sock, buffer)
        assert headers[b"transfer-encoding"] == b"chunked"
        assert body == b"part0;part1;part2;"


def test_expect_continue_gets_100_before_the_body(server: Server) -> None:
    with connect(server) as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
        )
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        assert read_response(sock, bytearray())[2] == b"hello"


def test_client_disconnecting_mid_body_does_not_hurt_the_server(server: Server) -> None:
    for _ in range(3):
        with connect(server) as sock:
            sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\npartial")
    with connect(server) as sock:
        sock.sendall(get("/hello"))
        assert read_response(sock, bytearray())[0] == 200


def test_many_pipelined_requests_with_reading_paused() -> None:
    with running(make_app(), max_pipelined=4) as srv, connect(srv) as sock:
        sock.sendall(b"".join(get(f"/slow/{i % 3}") for i in range(100)))
        buffer = bytearray()
        bodies = [read_response(sock, buffer)[2] for _ in range(100)]
        assert bodies == [b"slow %d" % (i % 3) for i in range(100)]


def test_slowloris_head_is_cut_by_the_header_timeout() -> None:
    with running(make_app(), header_timeout=0.2) as srv, connect(srv) as sock:
        sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        started = time.monotonic()
        assert is_closed(sock, timeout=3)
        assert time.monotonic() - started < 2


def test_stalled_body_is_cut_by_the_body_timeout() -> None:
    with running(make_app(), header_timeout=5, body_timeout=0.2) as srv, connect(srv) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
        started = time.monotonic()
        assert is_closed(sock, timeout=3)
        assert time.monotonic() - started < 2


def test_slow_reader_gets_backpressure_not_unbounded_buffering() -> None:
    piece = b"x" * 65536
    app = App()

    @app.get("/big")
    async def big(request: HTTPRequest) -> StreamingResponse:
        async def pieces() -> Any:
            for _ in range(200):
                yield piece

        return StreamingResponse(pieces())

    with running(app) as srv, connect(srv) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.sendall(get("/big"))
        time.sleep(0.3)  # the client does not read: the server must wait, not buffer 12 MiB
        (connection,) = srv.connections
        assert connection.transport is not None
        assert connection.transport.get_write_buffer_size() < 1 << 20
        assert connection.paused_writing
        _, _, body = read_response(sock, bytearray())
        assert body == piece * 200


def test_idle_keep_alive_connection_is_closed_by_the_timeout() -> None:
    with running(make_app(), keep_alive_timeout=0.2) as srv, connect(srv) as sock:
        sock.sendall(get("/hello"))
        assert read_response(sock, bytearray())[0] == 200
        assert is_closed(sock, timeout=3)


def test_connection_limit_refuses_extra_connections() -> None:
    with running(make_app(), max_connections=2) as srv:
        first, second = connect(srv), connect(srv)
        with first, second:
            first.sendall(get("/hello"))
            assert read_response(first, bytearray())[0] == 200
            with connect(srv) as third:
                assert read_response(third, bytearray())[0] == 503
                assert is_closed(third)
            second.sendall(get("/hello"))
            assert read_response(second, bytearray())[0] == 200


def test_graceful_shutdown_finishes_the_request_in_flight() -> None:
    loop = uvloop.new_event_loop()
    server = build_server(make_app(), port=0)
    loop.run_until_complete(server.start())
    result: dict[str, Any] = {}

    def client() -> None:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(get("/slow/300"))
            result["response"] = read_response(sock, bytearray())
            result["closed"] = is_closed(sock)

    async def scenario() -> None:
        thread = threading.Thread(target=client)
        thread.start()
        while not any(c.busy for c in server.connections):
            await asyncio.sleep(0.005)
        await server.close()
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", server.port)
        await asyncio.to_thread(thread.join, 5)

    loop.run_until_complete(scenario())
    loop.close()
    status, headers, body = result["response"]
    assert (status, body) == (200, b"slow 300")
    assert headers[b"connection"] == b"close"
    assert result["closed"]


WORKER_APP = """
import os
from trusswork.http import _native

app = _native.App()

@app.get("/pid")
async def pid(request):
    return str(os.getpid()).encode()
"""


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.update(int(p) for p in text)
    return found


def _get_pid(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(get("/pid"))
        return int(read_response(sock, bytearray())[2])


def test_workers_share_the_port_and_a_killed_worker_is_restarted(tmp_path: Path) -> None:
    (tmp_path / "workerapp.py").write_text(textwrap.dedent(WORKER_APP))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trusswork",
            "http",
            "serve",
            "workerapp:app",
            "--port",
            "0",
            "--workers",
            "2",
        ],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        port = int(line.rsplit(":", 1)[1])
        deadline = time.monotonic() + 10
        workers: set[int] = set()
        while len(workers) < 2 and time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                workers.add(_get_pid(port))
        assert workers == _children(process.pid)
        victim = workers.pop()
        os.kill(victim, signal.SIGKILL)
        answered = []
        deadline = time.monotonic() + 10
        while len(_children(process.pid) - {victim}) < 2 and time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                answered.append(_get_pid(port))
        for _ in range(10):
            answered.append(_get_pid(port))
        assert victim not in answered[-10:]
        assert len(_children(process.pid)) == 2
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


def test_ten_thousand_idle_connections_in_a_server_process(tmp_path: Path) -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    count = min(10_000, soft - 500)
    (tmp_path / "workerapp.py").write_text(textwrap.dedent(WORKER_APP))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trusswork",
            "http",
            "serve",
            "workerapp:app",
            "--port",
            "0",
            "--keep-alive",
            "60",
            "--max-connections",
            str(count + 10),
        ],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    sockets: list[socket.socket] = []
    try:
        assert process.stderr is not None
        port = int(process.stderr.readline().rsplit(":", 1)[1])
        for _ in range(count):
            sockets.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        # every connection is accepted and answered, the first one last
        for sock in [*sockets[-1:], *sockets[:: count // 10]]:
            sock.sendall(get("/pid"))
            assert int(read_response(sock, bytearray())[2]) == process.pid
        assert len(os.listdir(f"/proc/{process.pid}/fd")) >= count
    finally:
        for sock in sockets:
            sock.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        if process.stderr is not None:
            process.stderr.close()
