"""A trusswork.http server on a free port, in a thread with its own uvloop loop."""

from __future__ import annotations

import asyncio
import contextlib
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
