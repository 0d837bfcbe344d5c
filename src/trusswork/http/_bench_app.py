"""The applications every server in the HTTP load test runs (:mod:`trusswork.http.loadtest`).

Routes, the same in both applications:

- ``/plaintext``: ``Hello, World!`` as ``text/plain`` (the TechEmpower test);
- ``/json``: a 1 KiB JSON document, serialized per request;
- ``/static``: a 1 MiB file.

:func:`app` is an ASGI 3 callable. Plaintext and JSON are answered by the
bare callable, so a server's own cost dominates what is measured; the static
file goes through Starlette's ``FileResponse``, the way a uvicorn + Starlette
deployment serves files (Starlette is imported on the first ``/static``
request only).

:data:`native_app` is a :class:`trusswork.http.App` with plain (non-``async``)
handlers, so the load test measures its fast path (no task per request):
``Response`` for plaintext, ``JSONResponse`` (orjson) for JSON and
``FileResponse`` (``sendfile``) for the file.

The static file is created on first use in the temporary directory
(``TRUSSWORK_BENCH_STATIC`` names another file).
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from trusswork.http._native import App, FileResponse, HTTPRequest, JSONResponse, Response

__all__ = ["DOCUMENT", "PLAINTEXT", "STATIC_SIZE", "app", "native_app", "static_path"]

PLAINTEXT = b"Hello, World!"
DOCUMENT: dict[str, Any] = {
    "id": 1,
    "name": "trusswork",
    "items": [{"k": i, "v": "x" * 24} for i in range(24)],
}
STATIC_SIZE = 1 << 20


@functools.cache
def static_path() -> Path:
    """The 1 MiB file ``/static`` serves, created (random bytes) if missing."""
    named = os.environ.get("TRUSSWORK_BENCH_STATIC")
    if named:
        return Path(named)
    path = Path(tempfile.gettempdir()) / f"trusswork-bench-static-{STATIC_SIZE}.bin"
    if not path.exists() or path.stat().st_size != STATIC_SIZE:
        part = path.with_suffix(f".{os.getpid()}.part")
        part.write_bytes(os.urandom(STATIC_SIZE))
        part.replace(path)
    return path


_PLAIN_HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"13")]


@functools.cache
def _file_response() -> Any:
    from starlette.responses import FileResponse as StarletteFileResponse

    return StarletteFileResponse


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """ASGI 3 entry point (``lifespan`` is acknowledged and ignored)."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    if path == "/plaintext":
        await send({"type": "http.response.start", "status": 200, "headers": _PLAIN_HEADERS})
        await send({"type": "http.response.body", "body": PLAINTEXT})
    elif path == "/json":
        body = json.dumps(DOCUMENT).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    elif path == "/static":
        await _file_response()(static_path())(scope, receive, send)
    else:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def plaintext(request: HTTPRequest) -> Response:
    """``Hello, World!`` as ``text/plain``."""
    return Response(PLAINTEXT, media_type="text/plain")


def document(request: HTTPRequest) -> JSONResponse:
    """The 1 KiB document, serialized by orjson."""
    return JSONResponse(DOCUMENT)


def static(request: HTTPRequest) -> FileResponse:
    """The 1 MiB file, by ``sendfile``."""
    return FileResponse(static_path())


def build_native_app() -> App:
    """A native :class:`App` with the three routes, as plain (non-``async``) handlers."""
    native = App()
    native.route(("GET", "HEAD"), "/plaintext", plaintext)
    native.route(("GET", "HEAD"), "/json", document)
    native.route(("GET", "HEAD"), "/static", static)
    return native


native_app = build_native_app()
