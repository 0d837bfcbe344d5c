"""The HTTP/1.1 server: configuration, listening, timeouts, shutdown and metrics.

The per-connection work (parsing, the exchange, the ASGI cycle, response
heads) is compiled: see ``trusswork/http/_protocol.pyx`` for
:class:`HttpProtocol` and :class:`Exchange` and the guarantees they give
(ordering, errors, backpressure). This module holds :class:`Server`, which
binds, sweeps the timeouts and shuts down:

* Timeouts (checked by one sweep per server, not a timer per connection):
  an idle keep-alive connection is closed after ``keep_alive_timeout``; a
  head not complete ``header_timeout`` after its first byte, and a body that
  receives nothing for ``body_timeout``, close the connection (slowloris).
* Shutdown: :meth:`Server.close` stops accepting, closes idle connections,
  lets requests in flight finish for up to ``graceful_timeout`` seconds and
  then aborts what is left.
"""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from trusswork.core.errors import InvalidInput
from trusswork.core.metrics import Counter, Histogram, MetricsRegistry
from trusswork.http._protocol import (
    KIND_GENERIC,
    Exchange,
    HttpProtocol,
    Outbox,
    Tally,
)

__all__ = [
    "Exchange",
    "ExchangeHandler",
    "HttpProtocol",
    "Server",
    "ServerConfig",
]


ExchangeHandler = Callable[["Exchange"], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Limits and timeouts of a :class:`Server` (seconds, counts)."""

    max_connections: int = 10000
    keep_alive_timeout: float = 5.0
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    graceful_timeout: float = 10.0
    max_pipelined: int = 32
    backlog: int = 2048
    max_body: int = 1 << 30
    #: Disable Nagle's algorithm on accepted TCP sockets (responses leave at once).
    tcp_nodelay: bool = True
    #: The transport's write-buffer high-water mark in bytes (0: the loop's
    #: default, 64 KiB); writes past it pause the handler until it drains.
    write_buffer_high: int = 0

    def __post_init__(self) -> None:
        for name in ("keep_alive_timeout", "header_timeout", "body_timeout", "graceful_timeout"):
            if not getattr(self, name) > 0:
                raise InvalidInput(f"ServerConfig.{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("max_connections", "max_pipelined", "backlog", "max_body"):
            if not getattr(self, name) >= 1:
                raise InvalidInput(f"ServerConfig.{name} must be >= 1, got {getattr(self, name)!r}")
        if self.write_buffer_high < 0:
            raise InvalidInput(
                f"ServerConfig.write_buffer_high must be >= 0, got {self.write_buffer_high!r}"
            )


class Server:
    """Serves an :data:`ExchangeHandler` on a host and port (or a given socket).

    ``middleware`` is a list of callables that each take an
    :data:`ExchangeHandler` and return one wrapping it (the first is the
    outermost): the hook for rate limiting, tracing and headers common to
    ASGI and native apps.

    Use as ``async with Server(handler) as server: await server.serve_forever()``,
    or :meth:`start` / :meth:`close`. ``port=0`` binds a free port; read it from
    :attr:`port` after :meth:`start`.
    """

    def __init__(
        self,
        handler: ExchangeHandler,
        *,
        host: str = "127.0.0.1",
        port: int = 8000,
        config: ServerConfig | None = None,
        metrics: MetricsRegistry | None = None,
        sock: socket.socket | None = None,
        on_startup: Callable[[], Awaitable[None]] | None = None,
        on_shutdown: Callable[[], Awaitable[None]] | None = None,
        middleware: Iterable[Callable[[ExchangeHandler], ExchangeHandler]] = (),
    ) -> None:
        # the first middleware is the outermost
        layers = list(middleware)
        for layer in reversed(layers):
            handler = layer(handler)
        self.handler = handler
        #: How connections answer (see _protocol): ASGI apps and native Apps
        #: have compiled paths; middleware or any other handler run in a task
        #: per request (a failure is a 500, or a close once the response started).
        self.kind: int = KIND_GENERIC if layers else getattr(handler, "_kind", KIND_GENERIC)
        #: Batches request metrics per event-loop turn (set by :meth:`start`).
        self.tally: Tally | None = None
        #: Holds responses written inside data_received until the turn's reads are done.
        self.outbox: Outbox | None = None
        self.host = host
        self.port = port
        self.config = config or ServerConfig()
        self.connections: set[HttpProtocol] = set()
        self.closing = False
        self._sock = sock
        self._server: asyncio.AbstractServer | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._closed: asyncio.Event | None = None
        self._on_startup = on_startup
        self._on_shutdown = on_shutdown
        self.loop: asyncio.AbstractEventLoop  # set by start()
        self._requests: Counter | None = None
        self._seconds: Histogram | None = None
        if metrics is not None:
            self._requests = metrics.counter(
                "trusswork_http_requests_total",
                "HTTP requests answered, by method and status",
                labelnames=("method", "status"),
            )
            self._seconds = metrics.histogram(
                "trusswork_http_request_seconds", "Time to answer an HTTP request"
            )

    async def start(self) -> None:
        """Run the startup hook, bind and start accepting connections."""
        self.loop = asyncio.get_running_loop()
        self._closed = asyncio.Event()
        if self._requests is not None and self._seconds is not None:
            self.tally = Tally(self.loop, self._requests, self._seconds)
        self.outbox = Outbox(self.loop)
        if self._on_startup is not None:
            await self._on_startup()
        if self._sock is not None:
            self._server = await self.loop.create_server(
                lambda: HttpProtocol(self), sock=self._sock, backlog=self.config.backlog
            )
        else:
            self._server = await self.loop.create_server(
                lambda: HttpProtocol(self),
                self.host,
                self.port,
                backlog=self.config.backlog,
                reuse_address=True,
            )
        self.port = self._server.sockets[0].getsockname()[1]
        self._sweeper = self.loop.create_task(self._sweep())

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def serve_forever(self) -> None:
        """Serve until :meth:`close` is called (for instance by a signal)."""
        assert self._closed is not None, "start() first"
        await self._closed.wait()

    def install_signal_handlers(self) -> None:
        """Close gracefully on SIGTERM and SIGINT."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(sig, lambda: self.loop.create_task(self.close()))

    async def close(self) -> None:
        """Stop accepting, finish requests in flight (up to the grace period), close."""
        if self.closing:
            if self._closed is not None:
                await self._closed.wait()
            return
        self.closing = True
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.shutdown()
        deadline = self.loop.time() + self.config.graceful_timeout
        while self.connections and self.loop.time() < deadline:
            await asyncio.sleep(0.01)
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.abort()
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self.tally is not None:
            self.tally.flush()
        if self._on_shutdown is not None:
            await self._on_shutdown()
        assert self._closed is not None
        self._closed.set()

    async def _sweep(self) -> None:
        config = self.config
        tick = min(config.keep_alive_timeout, config.header_timeout, config.body_timeout) / 4
        tick = min(max(tick, 0.02), 1.0)
        while True:
            await asyncio.sleep(tick)
            now = self.loop.time()
            for connection in [c for c in self.connections if c.timed_out(now)]:
                if connection.transport is not None:
                    connection.transport.abort()

    def count(self, method: str, status: int, seconds: float) -> None:
        """Record one answered request in the metrics (when enabled)."""
        if self.tally is not None:
            self.tally.add(method, status, seconds)
