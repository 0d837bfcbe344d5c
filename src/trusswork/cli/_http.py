"""``trusswork http``: serve an application with trusswork's HTTP server.

``trusswork http serve module:attr [--host H] [--port P] [--workers N]
[--native] [--keep-alive S] [--max-connections N] [--backlog N]
[--no-tcp-nodelay] [--write-buffer-high BYTES] [--loop uvloop|asyncio]``
imports ``attr`` from ``module`` (the current directory is on ``sys.path``,
as for uvicorn) and serves it until SIGTERM or SIGINT. A :class:`trusswork.http.App` is served
through the native interface, any other callable as an ASGI 3 application;
``--native`` insists on the former. The bound address is printed on stderr
as ``trusswork.http: listening on http://HOST:PORT`` once connections are
accepted (with ``--port 0``, the port picked).

``trusswork http bench`` runs the load test (:mod:`trusswork.http.loadtest`):
our server, on the ASGI app and the native App, against uvicorn and granian,
or with ``--knobs`` the study of the serve knobs; see docs/http/index.md.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
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
    serve.add_argument("--backlog", type=int, default=2048, help="listen backlog (2048)")
    serve.add_argument(
        "--no-tcp-nodelay", action="store_true", help="keep Nagle's algorithm on (off by default)"
    )
    serve.add_argument(
        "--write-buffer-high",
        type=int,
        default=0,
        metavar="BYTES",
        help="transport write-buffer high-water mark; 0 keeps the loop's 64 KiB (0)",
    )
    serve.add_argument(
        "--loop", choices=("uvloop", "asyncio"), default="uvloop", help="event loop (uvloop)"
    )
    bench = actions.add_parser(
        "bench",
        help="load-test our server against uvicorn and granian, or study its knobs",
        description=(
            "Start each server on the load-test app (pinned to CPU 0), drive it with wrk or "
            "the built-in load generator (CPU 1), print req/s and p50/p99/p99.9 and write "
            "results.json, throughput.png and latency.png into --out. With --knobs, measure "
            "our server under one setting of each serve knob at a time instead, and write "
            "knobs.json and knobs.md."
        ),
    )
    bench.add_argument(
        "--servers",
        metavar="LIST",
        help="comma-separated: uvicorn,granian,trusswork,trusswork-native (all)",
    )
    bench.add_argument(
        "--routes", metavar="LIST", help="comma-separated: plaintext,json,static (all)"
    )
    bench.add_argument(
        "--connections", metavar="LIST", help="comma-separated connection counts (16,64,256)"
    )
    bench.add_argument(
        "--duration", type=float, default=5.0, metavar="S", help="seconds per measurement (5)"
    )
    bench.add_argument(
        "--rounds", type=int, metavar="N", help="rounds, server order rotated (3; 1 with --knobs)"
    )
    bench.add_argument(
        "--out",
        type=Path,
        default=Path("reports/http"),
        metavar="DIR",
        help="where to write results and graphs (reports/http)",
    )
    bench.add_argument(
        "--generator",
        choices=("auto", "wrk", "builtin"),
        default="auto",
        help="load generator: wrk when on PATH, else built-in (auto)",
    )
    bench.add_argument(
        "--knobs",
        nargs="?",
        const="all",
        metavar="LIST",
        help=(
            "study serve knobs instead (all, or comma-separated: backlog,tcp_nodelay,"
            "workers,loop,write_buffer_high)"
        ),
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
    if args.action == "bench":
        return run_bench(args)
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
    config = ServerConfig(
        keep_alive_timeout=args.keep_alive,
        max_connections=args.max_connections,
        backlog=args.backlog,
        tcp_nodelay=not args.no_tcp_nodelay,
        write_buffer_high=args.write_buffer_high,
    )

    def announce(port: int) -> None:
        print(
            f"trusswork.http: listening on http://{args.host}:{port}", file=sys.stderr, flush=True
        )

    serve(
        app,
        args.host,
        args.port,
        workers=args.workers,
        config=config,
        on_listening=announce,
        loop=args.loop,
    )
    return 0


def _split(text: str, option: str) -> list[str]:
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise UsageError(
            f"{option} must be a comma-separated list without empty items, got {text!r}"
        )
    return items


def _choose(text: str | None, option: str, known: Sequence[str]) -> list[str]:
    if text is None:
        return list(known)
    items = _split(text, option)
    if unknown := [item for item in items if item not in known]:
        raise UsageError(f"{option}: unknown {', '.join(unknown)}; choose from {', '.join(known)}")
    return items


def _bench_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Check the ``bench`` arguments; UsageError names the option that is wrong."""
    from trusswork.http import loadtest

    if not args.duration > 0:
        raise UsageError(f"--duration must be positive, got {args.duration:g}")
    if args.rounds is not None and args.rounds < 1:
        raise UsageError(f"--rounds must be at least 1, got {args.rounds}")
    settings: dict[str, Any] = {
        "routes": _choose(args.routes, "--routes", loadtest.ROUTES),
        "duration": args.duration,
    }
    if args.knobs is not None:
        for option, value in (("--servers", args.servers), ("--connections", args.connections)):
            if value is not None:
                raise UsageError(
                    f"--knobs measures our server at fixed connection counts; drop {option}"
                )
        knobs = sorted({v.knob for v in loadtest.KNOBS} - {"default"})
        chosen = None if args.knobs == "all" else _choose(args.knobs, "--knobs", knobs)
        settings["variants"] = loadtest.knob_variants(chosen)
        settings["rounds"] = args.rounds or 1
        return settings
    settings["servers"] = _choose(args.servers, "--servers", loadtest.SERVERS)
    settings["rounds"] = args.rounds or 3
    connections = (
        ["16", "64", "256"]
        if args.connections is None
        else _split(args.connections, "--connections")
    )
    try:
        counts = [int(c) for c in connections]
    except ValueError:
        raise UsageError(
            f"--connections must be whole numbers separated by commas, got {args.connections!r}"
        ) from None
    if any(c < 1 for c in counts):
        raise UsageError(f"--connections must be at least 1 each, got {args.connections!r}")
    settings["connections"] = counts
    return settings


def run_bench(args: argparse.Namespace) -> int:
    """``trusswork http bench``: the load test, or with ``--knobs`` the knob study."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from trusswork.http import loadtest

    settings = _bench_settings(args)
    generator = loadtest.pick_generator(args.generator)
    stdout = Console(highlight=False)
    if not stdout.is_terminal:  # a file or pipe: room for every column, not 80
        stdout = Console(highlight=False, width=140)
    stderr = Console(stderr=True, highlight=False)
    if generator == "builtin":
        why = "wrk is not on PATH; " if args.generator == "auto" else ""
        stderr.print(f"note: {why}{loadtest.BUILTIN_NOTE}", markup=False)
    if "variants" in settings:
        variants = settings["variants"]
        total = settings["rounds"] * sum(
            1 for v in variants for cell in v.cells if cell[0] in settings["routes"]
        )
        what = "knob study"
    else:
        runnable, _ = loadtest.available_servers(settings["servers"])
        total = (
            settings["rounds"]
            * len(runnable)
            * len(settings["routes"])
            * len(settings["connections"])
        )
        what = "load test"
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
    )
    with progress:
        task = progress.add_task(f"{what} ({generator})", total=total)

        def step(m: loadtest.Measurement) -> None:
            progress.update(
                task,
                advance=1,
                description=f"{what} ({generator}): {m.server} /{m.route} c={m.connections} "
                f"{m.requests_per_s:,.0f} req/s",
            )

        if "variants" in settings:
            result = loadtest.measure_knobs(
                settings["variants"],
                settings["duration"],
                settings["rounds"],
                routes=settings["routes"],
                generator=generator,
                on_measurement=step,
            )
        else:
            result = loadtest.measure(
                settings["servers"],
                settings["routes"],
                settings["connections"],
                settings["duration"],
                settings["rounds"],
                generator=generator,
                on_measurement=step,
            )
    column = "variant" if result.kind == "knobs" else "server"
    table = Table(title=f"trusswork http bench ({what}, {generator})", title_justify="left")
    for name in ("route", "conns", column, "req/s", "p50 ms", "p99 ms", "p99.9 ms",
                 f"vs {result.baseline}", "errors"):  # fmt: skip
        table.add_column(name, justify="left" if name in ("route", column) else "right")
    for row in result.summary:
        ratio = "" if row["ratio"] is None else f"{row['ratio']:.2f}x"
        table.add_row(
            row["route"], str(row["connections"]), row["server"],
            f"{row['requests_per_s']:,.0f}", f"{row['p50_ms']:.2f}", f"{row['p99_ms']:.2f}",
            f"{row['p999_ms']:.2f}", ratio, str(row["errors"]),
        )  # fmt: skip
    stdout.print(table)
    for name, why in result.skipped.items():
        stdout.print(f"skipped {name}: {why}", markup=False)
    for path in loadtest.write_results(result, args.out):
        stdout.print(f"wrote {path}", markup=False, soft_wrap=True)
    return 0
