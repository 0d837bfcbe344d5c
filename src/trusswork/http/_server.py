"""The HTTP/1.1 server: an asyncio (uvloop) protocol, timeouts, shutdown and workers.

One :class:`HttpProtocol` serves one connection. ``data_received`` feeds the
strict :class:`~trusswork.http.RequestParser`; complete requests are queued
and handled one at a time, so pipelined responses leave in request order.
The application is an :data:`ExchangeHandler`: an ``async`` callable taking
an :class:`Exchange`, which writes the response (the ASGI adapter and the
native :class:`~trusswork.http.App` are both such handlers).

Guarantees:

* Ordering: responses are written in the order of the requests; a parse
  error is answered (its ``http_status``, ``Connection: close``) only after
  the responses of the requests before it.
* Errors: a handler that raises before starting its response gets a 500 and
  the connection stays usable; one that raises after starting it has its
  connection closed (the client sees a truncated response, never a wrong one).
* Backpressure: when the transport's write buffer is over its high-water
  mark, :meth:`Exchange.write` waits for ``resume_writing``; when more than
  ``max_pipelined`` requests wait, the connection stops reading.
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
import contextlib
import logging
import os
import signal
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from email.utils import formatdate
from typing import TYPE_CHECKING, Any, cast

from trusswork.core.errors import InvalidInput
from trusswork.core.metrics import Counter, Histogram, MetricsRegistry
from trusswork.http._parser import HttpParseError, Request, RequestParser, format_head

__all__ = [
    "Exchange",
    "ExchangeHandler",
    "HttpProtocol",
    "Server",
    "ServerConfig",
]

if TYPE_CHECKING:
    from typing_extensions import Buffer

_log = logging.getLogger("trusswork.http")
#: Bodies up to this size are joined with the head into one ``transport.write``.
SMALL_BODY = 16384
SERVER_NAME = b"trusswork"

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

    def __post_init__(self) -> None:
        for name in ("keep_alive_timeout", "header_timeout", "body_timeout", "graceful_timeout"):
            if not getattr(self, name) > 0:
                raise InvalidInput(f"ServerConfig.{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("max_connections", "max_pipelined", "backlog", "max_body"):
            if not getattr(self, name) >= 1:
                raise InvalidInput(f"ServerConfig.{name} must be >= 1, got {getattr(self, name)!r}")


class _DateCache:
    """The ``Date`` and ``Server`` header pair, rebuilt at most once a second."""

    __slots__ = ("_second", "_value")

    def __init__(self) -> None:
        self._second = -1
        self._value: tuple[tuple[bytes, bytes], tuple[bytes, bytes]] = ((b"", b""), (b"", b""))

    def headers(self) -> tuple[tuple[bytes, bytes], tuple[bytes, bytes]]:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = (
                (b"date", formatdate(now, usegmt=True).encode()),
                (b"server", SERVER_NAME),
            )
        return self._value


_DATE = _DateCache()
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _other_coding(request: Request) -> bool:
    """Whether a chunked request also uses a coding the server cannot decode (gzip...)."""
    codings = b",".join(v for n, v in request.headers if n.lower() == b"transfer-encoding")
    return any(c.strip().lower() not in (b"chunked", b"") for c in codings.split(b","))


class _ResponseStateError(RuntimeError):
    """A handler used its Exchange out of order (a bug in the handler)."""


class Exchange:
    """One request and the response to it, on one connection.

    A handler answers with :meth:`respond` (whole body known) or with
    :meth:`start` followed by :meth:`write` calls and :meth:`end`
    (streaming: chunked on HTTP/1.1 when no ``Content-Length`` is given), or
    with :meth:`sendfile`. Header names must be lowercase bytes.
    """

    __slots__ = (
        "_chunked",
        "_head",
        "_keep_alive",
        "_protocol",
        "_remaining",
        "finished",
        "request",
        "started",
        "status",
    )

    def __init__(self, protocol: HttpProtocol, request: Request) -> None:
        self._protocol = protocol
        self.request = request
        self.started = False
        self.finished = False
        self.status = 0
        self._head = b""
        self._chunked = False
        self._keep_alive = request.keep_alive and not protocol.closing
        self._remaining: int | None = None

    @property
    def client(self) -> tuple[str, int] | None:
        """The peer's (host, port), when the socket has one."""
        return self._protocol.client

    @property
    def server(self) -> tuple[str, int] | None:
        """The local (host, port) the request came in on."""
        return self._protocol.sockname

    @property
    def disconnected(self) -> bool:
        """True once the client has gone away."""
        return self._protocol.lost.done()

    async def wait_disconnect(self) -> None:
        """Return when the client goes away (never, if the connection outlives the exchange)."""
        await asyncio.shield(self._protocol.lost)

    def _make_head(
        self, status: int, headers: Iterable[tuple[bytes, bytes]], length: int | None
    ) -> bytes:
        if self.started:
            raise _ResponseStateError("the response has already started")
        self.started = True
        self.status = status
        if self._protocol.closing:
            self._keep_alive = False
        out = list(headers)
        has_length = False
        for name, value in out:
            if name == b"content-length":
                has_length = True
                if length is None:
                    with contextlib.suppress(ValueError):
                        length = int(value)
            elif name == b"connection" and value.lower() == b"close":
                self._keep_alive = False
        if length is not None and not has_length and status >= 200 and status not in (204, 304):
            out.append((b"content-length", b"%d" % length))
        elif length is None and status >= 200 and status not in (204, 304):
            if self.request.version == "1.1":
                self._chunked = True
                out.append((b"transfer-encoding", b"chunked"))
            else:
                self._keep_alive = False
        self._remaining = length
        out.extend(_DATE.headers())
        if not self._keep_alive:
            out.append((b"connection", b"close"))
        elif self.request.version == "1.0":
            out.append((b"connection", b"keep-alive"))
        return format_head(status, out)

    def respond(
        self, status: int, headers: Iterable[tuple[bytes, bytes]] = (), body: Buffer = b""
    ) -> None:
        """Write a whole response; ``Content-Length`` is set from ``body``."""
        view = memoryview(body)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")
        head = self._make_head(status, headers, view.nbytes)
        self.finished = True
        transport = self._protocol.transport
        if transport is None:
            return
        if self.request.method == "HEAD" or status in (204, 304) or not view.nbytes:
            transport.write(head)
        elif view.nbytes <= SMALL_BODY:
            transport.write(head + view)
        else:
            transport.write(head)
            transport.write(view)  # no copy: the transport keeps a reference if it must

    async def start(self, status: int, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
        """Start a streamed response; the head is sent with the first body bytes."""
        self._head = self._make_head(status, headers, None)

    async def write(self, data: Buffer, *, more: bool = True) -> None:
        """Send the next piece of a started response; ``more=False`` ends it."""
        if not self.started:
            raise _ResponseStateError("write() before start()")
        if self.finished:
            raise _ResponseStateError("write() after the response ended")
        protocol = self._protocol
        if protocol.paused_writing:
            await protocol.drain()
        transport = protocol.transport
        if transport is None:
            self.finished = not more
            return
        view: bytes | memoryview = data if isinstance(data, bytes) else memoryview(data).cast("B")
        size = len(view)
        head, self._head = self._head, b""
        pieces: list[bytes | memoryview] = [head] if head else []
        if self.request.method == "HEAD" or self.status in (204, 304):
            pass
        elif self._chunked:
            if size:
                pieces += [b"%x\r\n" % size, view, b"\r\n"]
            if not more:
                pieces.append(b"0\r\n\r\n")
        elif size:
            pieces.append(view)
        if pieces:
            if size > SMALL_BODY:
                transport.writelines(pieces)
            else:
                transport.write(b"".join(pieces))
        if not more:
            self.finished = True

    async def end(self) -> None:
        """End a started response."""
        await self.write(b"", more=False)

    async def sendfile(
        self,
        status: int,
        headers: Iterable[tuple[bytes, bytes]],
        file: Any,
        offset: int,
        count: int,
    ) -> None:
        """Send ``count`` bytes of the open binary ``file`` from ``offset``.

        ``loop.sendfile`` uses ``os.sendfile`` when the transport allows it
        (plain TCP) and falls back to reads and writes otherwise.
        """
        head = self._make_head(status, headers, count)
        protocol = self._protocol
        transport = protocol.transport
        if transport is None:
            self.finished = True
            return
        transport.write(head)
        if count and self.request.method != "HEAD" and status not in (204, 304):
            complete = await protocol.sendfile(file, offset, count)
            if not complete:
                self._keep_alive = False
                return
        self.finished = True


class HttpProtocol(asyncio.Protocol):
    """One HTTP/1.1 connection; see the module docstring."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.config = server.config
        self.parser = RequestParser(max_body=server.config.max_body)
        self.transport: asyncio.Transport | None = None
        self.queue: deque[Request | HttpParseError] = deque()
        self.busy = False
        self.closing = False
        self.paused_reading = False
        self.paused_writing = False
        self._drain: asyncio.Future[None] | None = None
        # `lost`: the client went away or half-closed (what ASGI calls a disconnect);
        # `closed`: the transport is gone.
        self.lost: asyncio.Future[None] = server.loop.create_future()
        self.closed: asyncio.Future[None] = server.loop.create_future()
        self.client: tuple[str, int] | None = None
        self.sockname: tuple[str, int] | None = None
        self.deadline = 0.0
        # Bytes of the request being received, kept only while it is incomplete,
        # to see when its head has ended (Expect: 100-continue, body timeout).
        self._partial = bytearray()
        self._continue_sent = False
        self.eof = False

    # asyncio callbacks ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport implements asyncio.Transport without subclassing it
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        server = self.server
        if len(server.connections) >= self.config.max_connections or server.closing:
            transport.write(
                format_head(503, [(b"content-length", b"0"), (b"connection", b"close")])
            )
            transport.close()
            self.transport = None
            return
        server.connections.add(self)
        peer = transport.get_extra_info("peername")
        self.client = tuple(peer[:2]) if isinstance(peer, tuple) else None
        local = transport.get_extra_info("sockname")
        self.sockname = tuple(local[:2]) if isinstance(local, tuple) else None
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.deadline = server.loop.time() + self.config.keep_alive_timeout

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.server.connections.discard(self)
        if not self.lost.done():
            self.lost.set_result(None)
        if not self.closed.done():
            self.closed.set_result(None)
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def pause_writing(self) -> None:
        self.paused_writing = True

    def resume_writing(self) -> None:
        self.paused_writing = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    async def drain(self) -> None:
        """Wait until the transport accepts more data (or the connection is lost)."""
        if not self.paused_writing or self.transport is None:
            return
        if self._drain is None or self._drain.done():
            self._drain = self.server.loop.create_future()
        await self._drain

    async def flush(self) -> None:
        """Wait until the transport's write buffer is empty (or the connection is lost)."""
        transport = self.transport
        if transport is None or not transport.get_write_buffer_size():
            return
        low, high = transport.get_write_buffer_limits()
        # With both limits at 0 the transport pauses us until its buffer is empty.
        transport.set_write_buffer_limits(high=0, low=0)
        try:
            while self.transport is not None and transport.get_write_buffer_size():
                if self.paused_writing:
                    await self.drain()
                else:
                    await asyncio.sleep(0.001)  # a transport that did not pause us
        finally:
            if self.transport is not None:
                transport.set_write_buffer_limits(high=high, low=low)

    async def sendfile(self, file: Any, offset: int, count: int) -> bool:
        """Send ``count`` bytes of ``file`` from ``offset`` with ``os.sendfile``.

        The transport's buffer is flushed first so bytes stay in order; the
        socket is written through a duplicate descriptor (uvloop neither
        implements ``loop.sendfile`` nor lets a transport's descriptor be
        watched), waiting for writability with ``add_writer``. Returns whether
        every byte was sent.
        """
        await self.flush()
        transport = self.transport
        if transport is None:
            return False
        loop = self.server.loop
        out = os.dup(transport.get_extra_info("socket").fileno())
        source = file.fileno()
        try:
            while count > 0:
                try:
                    sent = os.sendfile(out, source, offset, min(count, 1 << 30))
                except BlockingIOError:
                    sent = -1
                except OSError:  # the client went away
                    return False
                if sent == 0:
                    return False  # the file shrank under us: the response cannot be completed
                if sent > 0:
                    offset += sent
                    count -= sent
                    continue
                writable: asyncio.Future[None] = loop.create_future()
                loop.add_writer(out, _wake, writable)
                try:
                    await asyncio.wait((writable, self.closed), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    loop.remove_writer(out)
                if self.transport is None:
                    return False
        finally:
            os.close(out)
        return True

    def data_received(self, data: bytes) -> None:
        if self.closing and not self.busy and not self.queue:
            return
        try:
            requests = self.parser.feed(data)
        except HttpParseError as error:
            self.queue.append(error)
            self._partial.clear()
            self._pause()
        else:
            self._track_partial(data, bool(requests))
            self.queue.extend(requests)
            if len(self.queue) > self.config.max_pipelined:
                self._pause()
        if self.queue and not self.busy:
            self.busy = True
            self.server.loop.create_task(self._serve())

    def eof_received(self) -> bool | None:
        self.eof = True
        # A client that half-closes has usually gone; ASGI apps waiting in
        # receive() learn it (http.disconnect), the response can still be sent.
        if not self.lost.done():
            self.lost.set_result(None)
        if not self.busy:
            self._close()
        return True  # keep the transport half-open until the queued responses are sent

    # internals ---------------------------------------------------------------

    def _pause(self) -> None:
        if not self.paused_reading and self.transport is not None:
            self.paused_reading = True
            self.transport.pause_reading()

    def _track_partial(self, data: bytes, completed: bool) -> None:
        pending = self.parser.pending_bytes
        now = self.server.loop.time()
        if not pending:
            if self._partial:
                self._partial.clear()
            self._continue_sent = False
            if not self.busy and not self.queue:
                self.deadline = now + self.config.keep_alive_timeout
            return
        if completed or not self._partial:
            # the incomplete request started in this chunk
            self._partial[:] = data[-pending:] if pending <= len(data) else data
            self._continue_sent = False
            self.deadline = now + self.config.header_timeout
        elif len(self._partial) < 65536 + 4:
            self._partial += data
        end = self._partial.find(b"\r\n\r\n")
        if end >= 0:
            # the head is complete, the body is being received
            self.deadline = now + self.config.body_timeout
            if not self._continue_sent:
                self._continue_sent = True
                head = bytes(self._partial[:end]).lower()
                if b"\nexpect:" in head and b"100-continue" in head and self.transport:
                    self.transport.write(_CONTINUE)

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def timed_out(self, now: float) -> bool:
        """Whether the current deadline passed (checked by the server's sweep)."""
        return not self.busy and self.deadline <= now

    async def _serve(self) -> None:
        queue = self.queue
        server = self.server
        try:
            while queue:
                item = queue.popleft()
                if (
                    self.paused_reading
                    and len(queue) <= self.config.max_pipelined // 2
                    and not isinstance(item, HttpParseError)
                    and self.transport is not None
                ):
                    self.paused_reading = False
                    self.transport.resume_reading()
                if self.transport is None:
                    queue.clear()
                    return
                if isinstance(item, HttpParseError):
                    self._error_response(item.http_status, str(item))
                    queue.clear()
                    return
                if item.version == "1.1" and item.header(b"host") is None:
                    self._error_response(400, "an HTTP/1.1 request must have a Host header")
                    queue.clear()
                    return
                if item.chunked and _other_coding(item):
                    self._error_response(
                        501, "transfer codings other than chunked are not supported"
                    )
                    queue.clear()
                    return
                exchange = Exchange(self, item)
                await server.dispatch(exchange)
                if not exchange._keep_alive or self.parser.upgraded or not exchange.finished:
                    queue.clear()
                    self._close()
                    return
                if self.paused_writing:
                    await self.drain()
        finally:
            self.busy = False
            if self.transport is not None:
                if self.closing or self.eof:
                    self._close()
                else:
                    self.deadline = server.loop.time() + (
                        self.config.keep_alive_timeout
                        if self.parser.at_boundary
                        else self.config.header_timeout
                    )

    def _error_response(self, status: int, message: str) -> None:
        body = message.encode("utf-8", "replace") + b"\n"
        head = format_head(
            status,
            [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", b"%d" % len(body)),
                *_DATE.headers(),
                (b"connection", b"close"),
            ],
        )
        if self.transport is not None:
            self.transport.write(head + body)
        self.server.count(self._method_of_error(), status, 0.0)
        self._close()

    @staticmethod
    def _method_of_error() -> str:
        return "-"

    def shutdown(self) -> None:
        """Close now if idle, else after the response in flight."""
        self.closing = True
        if not self.busy:
            self._close()


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
        for layer in reversed(list(middleware)):
            handler = layer(handler)
        self.handler = handler
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
        self._series: dict[tuple[str, int], Counter] = {}  # labels() children, looked up once
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

    async def dispatch(self, exchange: Exchange) -> None:
        """Run the handler on one exchange; turn its failure into a 500 or a close."""
        start = self.loop.time() if self._seconds is not None else 0.0
        try:
            await self.handler(exchange)
        except Exception as error:  # the app's bug must not kill the server
            if not exchange.started:
                body = b"Internal Server Error\n"
                exchange.respond(500, [(b"content-type", b"text/plain; charset=utf-8")], body)
            elif not exchange.finished:
                exchange._keep_alive = False  # a truncated response: only closing can say so
            # else the response went out whole (Starlette re-raises after its 500 page):
            # the connection stays usable
            _log.error(
                "error in handler for %s %s",
                exchange.request.method,
                exchange.request.target,
                exc_info=error,
            )
        else:
            if not exchange.started:
                exchange.respond(
                    500,
                    [(b"content-type", b"text/plain; charset=utf-8")],
                    b"the application sent no response\n",
                )
        if self._requests is not None:
            self.count(exchange.request.method, exchange.status, self.loop.time() - start)

    def count(self, method: str, status: int, seconds: float) -> None:
        """Record one answered request in the metrics (when enabled)."""
        if self._requests is not None and self._seconds is not None:
            series = self._series.get((method, status))
            if series is None:
                series = self._series[(method, status)] = self._requests.labels(method, str(status))
            series.inc()
            self._seconds.observe(seconds)
