"""The native interface: a router of ``async`` handlers and zero-copy responses.

Handlers are ``async def handler(request, **params)`` where ``request`` is
an :class:`HTTPRequest` and ``params`` the converted path parameters. They
return a :class:`Response` (or :class:`JSONResponse`, :class:`FileResponse`,
:class:`StreamingResponse`), ``bytes``/any buffer (200, octet-stream), or a
``dict``/``list`` (200, JSON through orjson). Buffers (``memoryview``,
numpy arrays, Arrow buffers) are handed to the transport as a memoryview,
never copied into a new ``bytes``. Errors raised from
:mod:`trusswork.core.errors` become RFC 9457 problem responses with their
``http_status``; any other exception is a 500 (by the server).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from trusswork.core.errors import InvalidInput, NotFound, TrussworkError
from trusswork.core.metrics import MetricsRegistry
from trusswork.http._files import plan, resolve_under
from trusswork.http._parser import Request
from trusswork.http._router import MethodNotAllowed, Router
from trusswork.http._server import Exchange

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = [
    "App",
    "FileResponse",
    "HTTPRequest",
    "JSONResponse",
    "Response",
    "StaticFiles",
    "StreamingResponse",
]

Handler = Callable[..., Awaitable[Any]]
_OCTET_STREAM = ((b"content-type", b"application/octet-stream"),)
#: A middleware takes the next handler and returns a handler with the same signature.
Middleware = Callable[[Handler], Handler]


class HTTPRequest:
    """What a native handler receives: the parsed request plus its path and query."""

    __slots__ = ("_exchange", "path", "query_string", "raw")

    def __init__(self, raw: Request, exchange: Exchange | None = None) -> None:
        self.raw = raw
        self._exchange = exchange
        target = raw.target
        path, _, query = target.partition("?")
        self.path = path
        self.query_string = query

    @property
    def method(self) -> str:
        """The request method (``"GET"``)."""
        return self.raw.method

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        """The header fields in order, names as sent."""
        return self.raw.headers

    @property
    def body(self) -> memoryview:
        """The whole (de-chunked) body, as a read-only view."""
        return memoryview(self.raw.body)

    @property
    def client(self) -> tuple[str, int] | None:
        """The peer's (host, port)."""
        return self._exchange.client if self._exchange is not None else None

    def header(self, name: bytes) -> bytes | None:
        """The value of the first field named ``name`` (case-insensitive), or None."""
        return self.raw.header(name)

    def json(self) -> Any:
        """The body parsed as JSON.

        Raises
        ------
        InvalidInput
            If the body is not valid JSON.
        """
        try:
            return orjson.loads(self.raw.body)
        except orjson.JSONDecodeError as error:
            raise InvalidInput(f"request body is not valid JSON: {error}") from None

    def __repr__(self) -> str:
        return f"<HTTPRequest {self.method} {self.raw.target}>"


class Response:
    """A whole response: status, headers and a body buffer sent without copying."""

    __slots__ = ("body", "headers", "status")

    media_type: bytes | None = None

    def __init__(
        self,
        body: Buffer = b"",
        status: int = 200,
        headers: list[tuple[bytes, bytes]] | None = None,
        *,
        media_type: str | None = None,
    ) -> None:
        self.body = body
        self.status = status
        self.headers = list(headers) if headers else []
        kind = media_type.encode("latin-1") if media_type else self.media_type
        if kind is not None and not any(n == b"content-type" for n, _ in self.headers):
            self.headers.append((b"content-type", kind))

    async def send(self, exchange: Exchange) -> None:
        """Write this response on ``exchange``."""
        exchange.respond(self.status, self.headers, self.body)


class JSONResponse(Response):
    """A value serialized with orjson (``numpy`` arrays and dataclasses included)."""

    __slots__ = ()
    media_type = b"application/json"

    def __init__(
        self,
        content: Any,
        status: int = 200,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        body = orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
        super().__init__(body, status, headers)


class StreamingResponse(Response):
    """A body from an async iterator of buffers, sent chunked (HTTP/1.1)."""

    __slots__ = ("iterator",)

    def __init__(
        self,
        iterator: AsyncIterator[Buffer],
        status: int = 200,
        headers: list[tuple[bytes, bytes]] | None = None,
        *,
        media_type: str | None = None,
    ) -> None:
        super().__init__(b"", status, headers, media_type=media_type)
        self.iterator = iterator

    async def send(self, exchange: Exchange) -> None:
        """Stream the iterator's pieces, waiting whenever the client reads slowly."""
        await exchange.start(self.status, self.headers)
        async for piece in self.iterator:
            await exchange.write(piece)
        await exchange.end()


class FileResponse(Response):
    """A file under ``root`` (or an absolute ``path`` when ``root`` is None), by sendfile.

    GET and HEAD get validators (``ETag``, ``Last-Modified``), conditional
    answers (304, 412) and single ``Range`` requests (206, 416) from
    :func:`trusswork.http._files.plan`. A path outside ``root`` is a 404.
    """

    __slots__ = ("content_type", "path", "root")

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        root: str | os.PathLike[str] | None = None,
        status: int = 200,
        headers: list[tuple[bytes, bytes]] | None = None,
        content_type: str | None = None,
    ) -> None:
        super().__init__(b"", status, headers)
        self.path = path
        self.root = root
        self.content_type = content_type

    async def send(self, exchange: Exchange) -> None:
        """Resolve, plan and send the file; a missing or unsafe path is a 404."""
        if self.root is not None:
            target = resolve_under(self.root, os.fspath(self.path))
        else:
            target = Path(self.path)
            if not target.is_file():
                raise NotFound(f"no file {os.fspath(self.path)!r}")
        with open(target, "rb") as file:
            st = os.fstat(file.fileno())
            answer = plan(
                st, exchange.request.headers, name=target.name, content_type=self.content_type
            )
            headers = [*self.headers, *answer.headers]
            headers = [(n, v) for n, v in headers if n != b"content-length"]
            status = self.status if answer.status == 200 else answer.status
            if answer.length and answer.status in (200, 206):
                await exchange.sendfile(status, headers, file, answer.offset, answer.length)
            else:
                exchange.respond(status, headers, b"")


def StaticFiles(root: str | os.PathLike[str]) -> Handler:
    """A handler serving files under ``root``; route it as ``/prefix/{path:path}``.

    Example: ``app.route("GET", "/static/{path:path}", StaticFiles("public"))``.
    """
    base = Path(root)
    if not base.is_dir():
        raise InvalidInput(f"StaticFiles root {os.fspath(root)!r} is not a directory")

    async def static(request: HTTPRequest, path: str) -> Response:
        return FileResponse(path, root=base)

    return static


def _problem(error: TrussworkError, instance: str) -> Response:
    headers: list[tuple[bytes, bytes]] = [(b"content-type", b"application/problem+json")]
    if isinstance(error, MethodNotAllowed):
        headers.append((b"allow", ", ".join(error.allowed).encode()))
    body = orjson.dumps(error.to_problem(instance=instance))
    return Response(body, error.http_status, headers)


class App:
    """A native application: a :class:`Router` of handlers plus middleware.

    ``middleware`` is a list of callables, each taking a handler and
    returning one; the first wraps all the others. ``metrics`` is the
    registry the server records requests in and :meth:`add_metrics_route`
    exposes.
    """

    def __init__(
        self,
        *,
        middleware: list[Middleware] | None = None,
        metrics: MetricsRegistry | None = None,
    ) -> None:
        self.router: Router[Handler] = Router()
        self.middleware: list[Middleware] = list(middleware or [])
        self.metrics = metrics if metrics is not None else MetricsRegistry()
        self._wrapped: dict[Handler, Handler] = {}

    def route(
        self, methods: str | tuple[str, ...] | list[str], pattern: str, handler: Handler
    ) -> None:
        """Route ``methods`` on ``pattern`` to ``handler`` (see :class:`Router`)."""
        self.router.add(methods, pattern, handler)

    def get(self, pattern: str) -> Callable[[Handler], Handler]:
        """Decorator: route GET (and HEAD) on ``pattern``."""
        return self.router.get(pattern)

    def post(self, pattern: str) -> Callable[[Handler], Handler]:
        """Decorator: route POST on ``pattern``."""
        return self.router.post(pattern)

    def put(self, pattern: str) -> Callable[[Handler], Handler]:
        """Decorator: route PUT on ``pattern``."""
        return self.router.put(pattern)

    def delete(self, pattern: str) -> Callable[[Handler], Handler]:
        """Decorator: route DELETE on ``pattern``."""
        return self.router.delete(pattern)

    def add_metrics_route(self, pattern: str = "/metrics") -> None:
        """Answer GET ``pattern`` with the Prometheus exposition of :attr:`metrics`."""

        async def metrics(request: HTTPRequest) -> Response:
            return Response(
                self.metrics.exposition().encode(),
                media_type="text/plain; version=0.0.4; charset=utf-8",
            )

        self.route(("GET", "HEAD"), pattern, metrics)

    def _handler(self, handler: Handler) -> Handler:
        wrapped = self._wrapped.get(handler)
        if wrapped is None:
            wrapped = handler
            for layer in reversed(self.middleware):
                wrapped = layer(wrapped)
            self._wrapped[handler] = wrapped
        return wrapped

    async def __call__(self, exchange: Exchange) -> None:
        """Answer one exchange (the server's handler interface)."""
        request = HTTPRequest(exchange.request, exchange)
        try:
            match = self.router.match(exchange.request.method, request.path)
            if not self.middleware:
                result = await match.handler(request, **match.params)
            else:
                result = await self._handler(match.handler)(request, **match.params)
            if type(result) is bytes:  # the common case, without a Response object
                exchange.respond(200, _OCTET_STREAM, result)
                return
            if not isinstance(result, Response):
                result = _coerce(result)
            await result.send(exchange)
        except TrussworkError as error:
            if exchange.started:
                raise
            await _problem(error, request.path).send(exchange)


def _coerce(result: Any) -> Response:
    if isinstance(result, (dict, list)):
        return JSONResponse(result)
    if isinstance(result, str):
        return Response(result.encode(), media_type="text/plain; charset=utf-8")
    if result is None:
        return Response(b"", 204)
    try:
        memoryview(result)
    except TypeError:
        raise InvalidInput(
            f"a handler returned {type(result).__name__}; return a Response, a buffer, "
            "a dict or a list"
        ) from None
    return Response(result, media_type="application/octet-stream")
