"""ASGI 3 adapter: runs an ASGI application (HTTP and lifespan) on the server.

Scope (``type: "http"``): ``asgi {"version": "3.0", "spec_version": "2.3"}``,
``http_version``, ``method``, ``scheme "http"``, ``path`` (percent-decoded
``str``), ``raw_path``, ``query_string``, ``root_path ""``, ``headers``
(lowercased names), ``client``, ``server`` and ``state`` (a shallow copy of
what lifespan startup stored).

The parser hands over whole bodies, so ``receive()`` returns one
``http.request`` with the body and ``more_body: False``, then waits for the
client to go away and returns ``http.disconnect``. The ``http.response.pathsend``
extension is offered (Starlette's ``FileResponse`` uses it): the file is sent
with ``os.sendfile``. ``send()`` checks the
message order: a second ``http.response.start``, a body before the start, or
anything after the last body raises :class:`RuntimeError` (the server turns
it into a 500 if nothing was sent, else closes the connection). A response
without ``content-length`` is sent chunked.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from trusswork.core.errors import Unavailable
from trusswork.http._protocol import ASGI_VERSION, KIND_ASGI, ASGICycle, Exchange, asgi_scope

__all__ = ["ASGIAdapter", "Lifespan"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Lifespan:
    """Runs the app's lifespan protocol: :meth:`startup` and :meth:`shutdown`.

    An app that raises on the lifespan scope before answering does not
    support it; startup then simply continues (as uvicorn's ``auto`` mode).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.state: dict[str, Any] = {}
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._started: asyncio.Future[Message] | None = None
        self._stopped: asyncio.Future[Message] | None = None
        self._task: asyncio.Task[None] | None = None
        self.supported = True

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": ASGI_VERSION, "state": self.state}
        try:
            await self.app(scope, self._inbox.get, self._send)
        except Exception as error:
            for waiter in (self._started, self._stopped):
                if waiter is not None and not waiter.done():
                    waiter.set_exception(error)
        finally:
            for waiter in (self._started, self._stopped):
                if waiter is not None and not waiter.done():
                    waiter.set_result({"type": "lifespan.unsupported"})

    async def _send(self, message: Message) -> None:
        kind = message["type"]
        waiter = self._started if kind.startswith("lifespan.startup.") else self._stopped
        if waiter is not None and not waiter.done():
            waiter.set_result(message)

    async def startup(self) -> None:
        """Send ``lifespan.startup`` and wait for the answer.

        Raises
        ------
        Unavailable
            If the app answers ``lifespan.startup.failed``.
        """
        loop = asyncio.get_running_loop()
        self._started = loop.create_future()
        self._task = loop.create_task(self._run())
        await self._inbox.put({"type": "lifespan.startup"})
        try:
            answer = await self._started
        except Exception:
            self.supported = False  # the app does not speak lifespan
            return
        if answer["type"] == "lifespan.startup.failed":
            raise Unavailable(f"ASGI lifespan startup failed: {answer.get('message', '')}")
        if answer["type"] == "lifespan.unsupported":
            self.supported = False

    async def shutdown(self) -> None:
        """Send ``lifespan.shutdown`` and wait for the answer (if startup worked)."""
        if not self.supported or self._task is None or self._task.done():
            return
        self._stopped = asyncio.get_running_loop().create_future()
        await self._inbox.put({"type": "lifespan.shutdown"})
        try:
            await self._stopped
        except Exception as error:
            logging.getLogger("trusswork.http").error(
                "ASGI lifespan shutdown failed", exc_info=error
            )


class ASGIAdapter:
    """An :data:`~trusswork.http._server.ExchangeHandler` running an ASGI 3 app.

    A server whose handler is an ASGIAdapter (and has no middleware) does not
    call it: its connections run ``app(scope, receive, send)`` themselves
    (``_kind``), with the same scope and messages.
    """

    _kind = KIND_ASGI

    def __init__(self, app: ASGIApp, *, state: dict[str, Any] | None = None) -> None:
        self.app = app
        self.state = state if state is not None else {}

    def scope(self, exchange: Exchange) -> Scope:
        """The ASGI HTTP scope of ``exchange``'s request."""
        return asgi_scope(exchange, self.state)

    async def __call__(self, exchange: Exchange) -> None:
        """Run the app on one exchange."""
        cycle = ASGICycle(exchange)
        await self.app(asgi_scope(exchange, self.state), cycle.receive, cycle.send)
        cycle.finish()
