"""The ASGI app every server in the HTTP load test runs (``benchmarks/http/loadtest.py``).

Routes:

- ``/plaintext``: ``Hello, World!`` as ``text/plain`` (the TechEmpower test);
- ``/json``: a 1 KiB JSON document, serialized per request;
- ``/static``: a 1 MiB file through Starlette's ``FileResponse``, the way a
  uvicorn + Starlette deployment serves files.

Plaintext and JSON are answered by a bare ASGI callable, so a server's own
cost dominates what is measured. The static file is created on import in a
temporary directory (``TRUSSWORK_BENCH_STATIC`` names another file).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from starlette.responses import FileResponse

PLAINTEXT = b"Hello, World!"
DOCUMENT = {"id": 1, "name": "trusswork", "items": [{"k": i, "v": "x" * 24} for i in range(24)]}
STATIC_SIZE = 1 << 20


def _static_file() -> Path:
    named = os.environ.get("TRUSSWORK_BENCH_STATIC")
    if named:
        return Path(named)
    path = Path(tempfile.gettempdir()) / f"trusswork-bench-static-{STATIC_SIZE}.bin"
    if not path.exists() or path.stat().st_size != STATIC_SIZE:
        part = path.with_suffix(f".{os.getpid()}.part")
        part.write_bytes(os.urandom(STATIC_SIZE))
        part.replace(path)
    return path


STATIC = _static_file()
_PLAIN_HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"13")]


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
        await FileResponse(STATIC)(scope, receive, send)
    else:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
