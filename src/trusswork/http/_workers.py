"""Running servers: ``serve`` on uvloop, one process or SO_REUSEPORT workers under a supervisor.

:func:`serve` is what ``trusswork http serve`` calls: it builds a
:class:`~trusswork.http.Server` for a native App or an ASGI app
(:func:`build_server`) and runs it until SIGTERM/SIGINT. With ``workers > 1``
:func:`run_workers` forks that many processes, each listening on its own
``SO_REUSEPORT`` socket on the same port, restarts a worker that dies, and
forwards SIGTERM/SIGINT to all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

from trusswork.core.errors import InvalidInput
from trusswork.core.metrics import MetricsRegistry
from trusswork.http._server import ExchangeHandler, Server, ServerConfig

__all__ = ["build_server", "run_workers", "serve"]


def _reuseport_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def run_workers(
    start_worker: Callable[[socket.socket], None],
    *,
    host: str,
    port: int,
    workers: int,
    on_listening: Callable[[int], None] | None = None,
) -> int:
    """Run ``workers`` forked processes, each serving its own SO_REUSEPORT socket.

    The supervisor restarts a worker that exits without being asked to, and
    forwards SIGTERM/SIGINT to every worker before waiting for them.
    ``start_worker(sock)`` runs in the child and must serve until SIGTERM.
    Returns the exit status (0 after a requested shutdown).
    """
    if workers < 1:
        raise InvalidInput(f"workers must be >= 1, got {workers}")
    # Bound (not listening) to reserve the port, so that port=0 picks one port for all.
    anchor = _reuseport_socket(host, port)
    port = anchor.getsockname()[1]
    watched = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, watched)
    children: dict[int, int] = {}

    started: dict[int, float] = {}

    def spawn(slot: int) -> None:
        # A worker that dies within a second of its start is restarted a second
        # later, so a broken app does not turn the supervisor into a fork loop.
        if time.monotonic() - started.get(slot, -10.0) < 1.0:
            time.sleep(1.0)
        started[slot] = time.monotonic()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, watched)
                anchor.close()
                sock = _reuseport_socket(host, port)
                start_worker(sock)
            except BaseException:  # report, then leave the child
                import traceback

                traceback.print_exc()
                code = 1
            finally:
                os._exit(code)
        children[pid] = slot

    for slot in range(workers):
        spawn(slot)
    if on_listening is not None:
        on_listening(port)
    stopping = False
    try:
        while children:
            info = signal.sigwaitinfo(watched)
            if info.si_signo in (signal.SIGTERM, signal.SIGINT) and not stopping:
                stopping = True
                for pid in children:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGTERM)
                continue
            while True:
                try:
                    pid, _status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
                slot = children.pop(pid, -1)
                if slot >= 0 and not stopping:
                    spawn(slot)
    finally:
        anchor.close()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, watched)
    return 0


def build_server(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    config: ServerConfig | None = None,
    sock: socket.socket | None = None,
    metrics: MetricsRegistry | None = None,
    middleware: Iterable[Callable[[ExchangeHandler], ExchangeHandler]] = (),
) -> Server:
    """A :class:`Server` for a native :class:`~trusswork.http.App` or an ASGI 3 callable.

    A native App records its requests in its own ``metrics`` registry; an
    ASGI app's lifespan startup/shutdown runs with the server's start/close.

    Raises
    ------
    InvalidInput
        If ``app`` is neither.
    """
    from trusswork.http._asgi import ASGIAdapter, Lifespan
    from trusswork.http._native import App

    if isinstance(app, App):
        return Server(
            app,
            host=host,
            port=port,
            config=config,
            sock=sock,
            metrics=metrics or app.metrics,
            middleware=middleware,
        )
    if not callable(app):
        raise InvalidInput(f"app must be a trusswork.http.App or an ASGI callable, got {app!r}")
    lifespan = Lifespan(app)
    return Server(
        ASGIAdapter(app, state=lifespan.state),
        host=host,
        port=port,
        config=config,
        sock=sock,
        metrics=metrics,
        on_startup=lifespan.startup,
        on_shutdown=lifespan.shutdown,
        middleware=middleware,
    )


def _loop_factory(loop: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if loop == "asyncio":
        return asyncio.new_event_loop
    if loop != "uvloop":
        raise InvalidInput(f"loop must be 'uvloop' or 'asyncio', got {loop!r}")
    try:
        import uvloop
    except ImportError:  # pragma: no cover -- uvloop is a dependency on Linux
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def serve(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    workers: int = 1,
    config: ServerConfig | None = None,
    metrics: MetricsRegistry | None = None,
    on_listening: Callable[[int], None] | None = None,
    middleware: Iterable[Callable[[ExchangeHandler], ExchangeHandler]] = (),
    loop: str = "uvloop",
    freeze_gc: bool = True,
) -> None:
    """Serve ``app`` (native App or ASGI 3) until SIGTERM/SIGINT, on uvloop.

    Parameters
    ----------
    app:
        A :class:`~trusswork.http.App` or an ASGI 3 application.
    host, port:
        Where to listen; port 0 picks a free port (passed to ``on_listening``).
    workers:
        With more than one, that many forked processes each listen on their
        own ``SO_REUSEPORT`` socket under a supervisor that restarts crashed
        workers (:func:`run_workers`).
    config:
        Limits and timeouts (:class:`ServerConfig`).
    metrics:
        Where to record requests (a native App's registry by default).
    on_listening:
        Called with the bound port once the server accepts connections.
    middleware:
        Wrappers of the exchange handler (see :class:`Server`).
    loop:
        ``"uvloop"`` (the default) or ``"asyncio"`` (the standard library's
        loop; slower, for comparison and for platforms without uvloop).
    freeze_gc:
        Call :func:`gc.freeze` once the server listens (after the app's
        startup), so the cyclic collector stops rescanning every object that
        existed at startup. Objects made later are collected as usual.
    """
    new_loop = _loop_factory(loop)

    def run_one(sock: socket.socket | None, announce: bool) -> None:
        async def main() -> None:
            server = build_server(
                app,
                host=host,
                port=port,
                config=config,
                sock=sock,
                metrics=metrics,
                middleware=middleware,
            )
            await server.start()
            server.install_signal_handlers()
            if freeze_gc:
                # Everything imported and built at startup is long-lived: move it out
                # of the collector's reach, so collections triggered by per-request
                # garbage scan only what requests allocate (the heap of a process
                # that imported its app is large; a full collection walks all of it).
                gc.freeze()
            if announce and on_listening is not None:
                on_listening(server.port)
            await server.serve_forever()

        with asyncio.Runner(loop_factory=new_loop) as runner:
            runner.run(main())

    if workers <= 1:
        run_one(None, True)
        return
    run_workers(
        lambda sock: run_one(sock, False),
        host=host,
        port=port,
        workers=workers,
        on_listening=on_listening,
    )
