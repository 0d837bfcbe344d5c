"""Test helpers: a trusswork.http server in a thread (own uvloop loop), raw-socket clients."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import uvloop

from trusswork.http._server import Server, ServerConfig
from trusswork.http._workers import build_server


@contextlib.contextmanager
def running(app: Any, middleware: Any = (), **config: Any) -> Iterator[Server]:
    """Serve ``app`` (native App or ASGI) until the block ends; startup errors are re-raised."""
    loop = uvloop.new_event_loop()
    server = build_server(app, port=0, config=ServerConfig(**config), middleware=middleware)
    ready = threading.Event()
    failure: list[BaseException] = []

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.start())
        except BaseException as error:  # handed to the test thread
            failure.append(error)
            ready.set()
            return
        ready.set()
        loop.run_until_complete(server.serve_forever())

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    assert ready.wait(5)
    if failure:
        thread.join(5)
        loop.close()
        raise failure[0]
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(15)
        thread.join(5)
        loop.close()


def connect(server: Server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    return sock


def read_response(
    sock: socket.socket, buffer: bytearray, *, head: bool = False
) -> tuple[int, dict[bytes, bytes], bytes]:
    """One response from ``sock`` (``buffer`` holds bytes read beyond it; no body if ``head``)."""
    while b"\r\n\r\n" not in buffer:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError(f"closed before a response head; got {bytes(buffer)!r}")
        buffer += data
    end = buffer.index(b"\r\n\r\n")
    lines = bytes(buffer[:end]).split(b"\r\n")
    del buffer[: end + 4]
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(b":") for line in lines[1:])}
    body = b""
    if head:
        pass
    elif b"content-length" in headers:
        size = int(headers[b"content-length"])
        while len(buffer) < size:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("closed inside a body")
            buffer += data
        body = bytes(buffer[:size])
        del buffer[:size]
    elif headers.get(b"transfer-encoding") == b"chunked":
        pieces = []
        while True:
            while b"\r\n" not in buffer:
                buffer += sock.recv(65536)
            line_end = buffer.index(b"\r\n")
            size = int(bytes(buffer[:line_end]), 16)
            while len(buffer) < line_end + 2 + size + 2:
                buffer += sock.recv(65536)
            pieces.append(bytes(buffer[line_end + 2 : line_end + 2 + size]))
            del buffer[: line_end + 2 + size + 2]
            if size == 0:
                break
        body = b"".join(pieces)
    return status, headers, body


def is_closed(sock: socket.socket, timeout: float = 3.0) -> bool:
    """True when the server closes the connection within ``timeout`` (data is drained)."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def get(path: str, *extra: str, method: str = "GET", version: str = "1.1") -> bytes:
    lines = [f"{method} {path} HTTP/{version}", "Host: test", *extra, "", ""]
    return "\r\n".join(lines).encode()
