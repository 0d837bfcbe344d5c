"""The native interface: a router of handlers and zero-copy responses.

Handlers are ``def`` or ``async def handler(request, **params)`` where
``request`` is an :class:`HTTPRequest` and ``params`` the converted path
parameters. A plain function runs on the event loop inside
``data_received`` and answers without creating a task (the fastest path; it
must not block); a coroutine function runs in a task per request. They
return a :class:`Response` (or :class:`JSONResponse`, :class:`FileResponse`,
:class:`StreamingResponse`), ``bytes``/any buffer (200, octet-stream), or a
``dict``/``list`` (200, JSON through orjson). Buffers (``memoryview``,
numpy arrays, Arrow buffers) are handed to the transport as a memoryview,
never copied into a new ``bytes``. Errors raised from
:mod:`trusswork.core.errors` become RFC 9457 problem responses with their
``http_status``; any other exception is a 500 (by the server).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from trusswork.core.errors import InvalidInput, NotFound, TrussworkError
from trusswork.core.metrics import MetricsRegistry
from trusswork.http._files import plan, resolve_under
from trusswork.http._protocol import KIND_NATIVE, Exchange, HTTPRequest, Response
from trusswork.http._router import MethodNotAllowed, Router

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

Handler = Callable[..., Any]  # returns a result, or an awaitable of one
_OCTET_STREAM = ((b"content-type", b"application/octet-stream"),)
#: A middleware takes the next handler and returns a handler with the same signature.
Middleware = Callable[[Handler], Handler]


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
        self._plain: dict[Handler, bool] = {}  # handler -> is a plain function

    _kind = KIND_NATIVE

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
        pending = self._answer(exchange)
        if pending is not None:
            await pending

    def _answer(
        self, exchange: Exchange, request: HTTPRequest | None = None
    ) -> Awaitable[None] | None:
        """Answer ``exchange`` now if the handler is a plain function returning a
        whole response; else return what the caller must await to finish it.

        The server's connections run the commonest case (a static route to a
        plain handler, no middleware) compiled, and call this for the rest.
        """
        if request is None:
            request = HTTPRequest(exchange.request, exchange)
        try:
            match = self.router.match(exchange.request.method, request.path)
            handler = match.handler if not self.middleware else self._handler(match.handler)
            plain = self._plain.get(handler)
            if plain is None:
                plain = self._plain[handler] = not _is_async(handler)
            if not plain:
                return self._finish(exchange, request, handler(request, **match.params))
            result = handler(request, **match.params)
            kind = type(result)
            if kind is Response or kind is JSONResponse:  # the common cases first
                exchange.respond(result.status, result.headers, result.body)
                return None
            if kind is not bytes and inspect.isawaitable(result):
                return self._finish(exchange, request, result)
            return self._send(exchange, request, result)
        except TrussworkError as error:
            self._answer_error(exchange, request, error)
            return None

    def _answer_error(
        self, exchange: Exchange, request: HTTPRequest, error: TrussworkError
    ) -> None:
        """Answer a trusswork error as an RFC 9457 problem (re-raised once started)."""
        if exchange.started:
            raise error
        problem = _problem(error, request.path)
        exchange.respond(problem.status, problem.headers, problem.body)
        return None

    def _send(
        self, exchange: Exchange, request: HTTPRequest, result: Any
    ) -> Awaitable[None] | None:
        if type(result) is bytes:  # the common case, without a Response object
            exchange.respond(200, _OCTET_STREAM, result)
            return None
        if not isinstance(result, Response):
            result = _coerce(result)
        if type(result) is Response or type(result) is JSONResponse:
            exchange.respond(result.status, result.headers, result.body)
            return None
        return self._finish(exchange, request, result.send(exchange), sent=True)

    async def _finish(
        self,
        exchange: Exchange,
        request: HTTPRequest,
        pending: Awaitable[Any],
        *,
        sent: bool = False,
    ) -> None:
        try:
            result = await pending
            if not sent:
                more = self._send(exchange, request, result)
                if more is not None:
                    await more
        except TrussworkError as error:
            if exchange.started:
                raise
            await _problem(error, request.path).send(exchange)


def _is_async(handler: Any) -> bool:
    """Whether calling ``handler`` returns a coroutine (async functions and callables)."""
    if inspect.iscoroutinefunction(handler):
        return True
    call = getattr(handler, "__call__", None)  # noqa: B004 -- objects with an async __call__
    return call is not None and inspect.iscoroutinefunction(call)


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
