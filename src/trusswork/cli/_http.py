"""``trusswork http``: serve an application with trusswork's HTTP server.

``trusswork http serve module:attr [--host H] [--port P] [--workers N]
[--native] [--keep-alive S] [--max-connections N]`` imports ``attr`` from
``module`` (the current directory is on ``sys.path``, as for uvicorn) and
serves it until SIGTERM or SIGINT. A :class:`trusswork.http.App` is served
through the native interface, any other callable as an ASGI 3 application;
``--native`` insists on the former. The bound address is printed on stderr
as ``trusswork.http: listening on http://HOST:PORT`` once connections are
accepted (with ``--port 0``, the port picked).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Any

from trusswork.cli._app import UsageError


def register(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="<action>", title="actions")
    actions.required = True
    serve = actions.add_parser(
        "serve",
        help="serve an ASGI application or a trusswork.http.App",
        description="Serve module:attr (ASGI 3 callable or native App) until SIGTERM/SIGINT.",
    )
    serve.add_argument("app", help="the application, as module:attribute")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to bind; 0 picks one (8000)")
    serve.add_argument(
        "--workers", type=int, default=1, help="worker processes sharing the port (1)"
    )
    serve.add_argument("--native", action="store_true", help="require a native trusswork.http.App")
    serve.add_argument(
        "--keep-alive", type=float, default=5.0, help="idle keep-alive timeout, seconds (5)"
    )
    serve.add_argument(
        "--max-connections", type=int, default=10000, help="open connections per worker (10000)"
    )


def load_app(spec: str) -> Any:
    """Import ``module:attr`` (dots allowed in attr).

    Raises
    ------
    UsageError
        If the spec is malformed or names nothing.
    """
    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name or not attribute:
        raise UsageError(f"the app must be given as module:attribute, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as error:
        raise UsageError(f"cannot import {module_name!r}: {error}") from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise UsageError(f"module {module_name!r} has no attribute {attribute!r}") from None
    return target


def run(args: argparse.Namespace) -> int:
    from trusswork.http._native import App
    from trusswork.http._server import ServerConfig
    from trusswork.http._workers import serve

    app = load_app(args.app)
    if args.native and not isinstance(app, App):
        raise UsageError(f"--native needs a trusswork.http.App, {args.app} is {type(app).__name__}")
    if not callable(app):
        raise UsageError(f"{args.app} is not an ASGI application or a trusswork.http.App")
    if args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be in 0..65535, got {args.port}")
    config = ServerConfig(keep_alive_timeout=args.keep_alive, max_connections=args.max_connections)

    def announce(port: int) -> None:
        print(
            f"trusswork.http: listening on http://{args.host}:{port}", file=sys.stderr, flush=True
        )

    serve(app, args.host, args.port, workers=args.workers, config=config, on_listening=announce)
    return 0
