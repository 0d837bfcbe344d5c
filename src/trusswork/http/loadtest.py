"""HTTP load test: trusswork's server against uvicorn and granian, and a study of its knobs.

Every server runs the same application (:mod:`trusswork.http._bench_app`:
``/plaintext``, ``/json`` with a 1 KiB document, ``/static`` with a 1 MiB
file) with one worker on loopback, pinned to CPU 0 with ``taskset``; the
load generator runs pinned to CPU 1. Servers:

- ``uvicorn``: uvloop + httptools, the ASGI app (the baseline);
- ``granian``: its ASGI interface, the ASGI app;
- ``trusswork``: ``trusswork http serve`` with the ASGI app;
- ``trusswork-native``: ``trusswork http serve --native`` with the native
  :class:`trusswork.http.App` of the same routes.

The load generator is ``wrk`` (one thread, keep-alive) when it is on
``PATH``; otherwise a built-in one (:func:`run_builtin`): a uvloop client
in its own process holding N keep-alive connections, one request in flight
on each. It is slower than wrk and times in Python, so its rates are lower
bounds and its latencies coarser; results say which generator was used.

For every round, route and connection count the servers are measured one
after another, in an order that rotates from round to round so that slow
drifts of a shared machine hit every server alike; servers are compared as
the median over rounds of per-round ratios to the baseline.

:func:`measure_knobs` measures our server under one setting of each
``trusswork http serve`` knob at a time (listen backlog, ``TCP_NODELAY``,
``SO_REUSEPORT`` workers, event loop, write-buffer high-water mark) against
the default configuration.

Entry points: ``trusswork http bench`` and ``make bench-http``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, cast

from trusswork.core.errors import InvalidInput, Unavailable

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "ASGI_APP",
    "BASELINE",
    "BUILTIN_NOTE",
    "KNOBS",
    "NATIVE_APP",
    "ROUTES",
    "SERVERS",
    "BenchResult",
    "KnobVariant",
    "Measurement",
    "available_servers",
    "bars_figure",
    "free_port",
    "knob_variants",
    "knobs_markdown",
    "main",
    "measure",
    "measure_knobs",
    "parse_wrk",
    "pick_generator",
    "plot",
    "run_builtin",
    "run_load",
    "run_wrk",
    "running",
    "server_command",
    "summarize",
    "summary_lines",
    "wait_for_port",
    "write_results",
]

ASGI_APP = "trusswork.http._bench_app:app"
NATIVE_APP = "trusswork.http._bench_app:native_app"
ROUTES = ("plaintext", "json", "static")
SERVERS = ("uvicorn", "granian", "trusswork", "trusswork-native")
BASELINE = "uvicorn"
Generator = Literal["wrk", "builtin"]
BUILTIN_NOTE = (
    "the built-in load generator was used, not wrk (a Python/uvloop client, slower than wrk "
    "and timing in Python), so rates are lower bounds and latencies coarser than wrk's; "
    "install wrk for the real measurement"
)

# Printed by wrk at the end of a run: the totals and latency percentiles (microseconds).
_WRK_SCRIPT = """\
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "bytes": %d, "errors": %d, "non2xx": %d, ' ..
    '"p50": %d, "p90": %d, "p99": %d, "p999": %d, "max": %d}\\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
"""


@dataclass(frozen=True)
class Measurement:
    """One load-generator run against one server (or knob variant)."""

    round: int
    server: str
    route: str
    connections: int
    requests_per_s: float
    mb_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    errors: int
    non2xx: int


@dataclass(frozen=True)
class KnobVariant:
    """One configuration of our server in the knob study.

    Attributes
    ----------
    name:
        Label in tables (``"backlog=128"``); ``"default"`` is the reference.
    knob:
        The knob it varies (``"backlog"``), or ``"default"``.
    args:
        Extra ``trusswork http serve`` arguments.
    cells:
        The (route, connections) pairs it is measured on.
    server_cpus:
        The CPUs the server is pinned to (``"0"``; ``"0,1"`` for 2 workers,
        which then share CPU 1 with the load generator).
    """

    name: str
    knob: str
    args: tuple[str, ...]
    cells: tuple[tuple[str, int], ...]
    server_cpus: str = "0"


_BOTH = (("plaintext", 64), ("static", 64))
#: The knob study: the default configuration, then one change at a time.
KNOBS: tuple[KnobVariant, ...] = (
    KnobVariant("default", "default", (), (*_BOTH, ("plaintext", 1024))),
    KnobVariant(
        "backlog=128", "backlog", ("--backlog", "128"), (("plaintext", 64), ("plaintext", 1024))
    ),
    KnobVariant("tcp_nodelay=off", "tcp_nodelay", ("--no-tcp-nodelay",), _BOTH),
    KnobVariant("workers=2", "workers", ("--workers", "2"), _BOTH, server_cpus="0,1"),
    KnobVariant("loop=asyncio", "loop", ("--loop", "asyncio"), _BOTH),
    KnobVariant(
        "write_buffer_high=16KiB",
        "write_buffer_high",
        ("--write-buffer-high", "16384"),
        (("static", 64),),
    ),
    KnobVariant(
        "write_buffer_high=1MiB",
        "write_buffer_high",
        ("--write-buffer-high", "1048576"),
        (("static", 64),),
    ),
)


@dataclass
class BenchResult:
    """What :func:`measure` or :func:`measure_knobs` found, ready for :func:`write_results`."""

    kind: Literal["servers", "knobs"]
    generator: Generator
    baseline: str
    measurements: list[Measurement]
    skipped: dict[str, str] = field(default_factory=dict)
    summary: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        """The JSON document (``results.json`` / ``knobs.json``)."""
        return {
            "kind": self.kind,
            "generator": self.generator,
            "generator_note": BUILTIN_NOTE if self.generator == "builtin" else "wrk, one thread",
            "baseline": self.baseline,
            "settings": self.settings,
            "skipped": self.skipped,
            "summary": self.summary,
            "measurements": [asdict(m) for m in self.measurements],
        }


# --------------------------------------------------------------------------- servers


def _has_module(name: str) -> str | None:
    import importlib.util

    try:
        found = importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        found = False
    return None if found else f"{name} is not installed; install the bench extra"


def server_command(name: str, port: int, extra: Sequence[str] = ()) -> list[str] | str:
    """The command that starts server ``name`` on ``port``, or why it cannot run here.

    ``extra`` are further ``trusswork http serve`` arguments (ignored for
    the other servers).
    """
    py = sys.executable
    if name == "uvicorn":
        if (why := _has_module("uvicorn")) or (why := _has_module("httptools")):
            return why
        return [py, "-m", "uvicorn", ASGI_APP, "--port", str(port), "--loop", "uvloop",
                "--http", "httptools", "--log-level", "error", "--no-access-log",
                "--workers", "1"]  # fmt: skip
    if name == "granian":
        program = shutil.which("granian", path=str(Path(py).parent)) or shutil.which("granian")
        if program is None:
            return "granian is not installed; install the bench extra"
        return [program, "--interface", "asgi", "--port", str(port), "--workers", "1",
                "--loop", "uvloop", "--log-level", "error", "--no-ws", ASGI_APP]  # fmt: skip
    if name in ("trusswork", "trusswork-native"):
        serve = [py, "-m", "trusswork", "http", "serve", "--port", str(port), *extra]
        if name == "trusswork":
            return [*serve, ASGI_APP]
        return [*serve, "--native", NATIVE_APP]
    return f"unknown server {name!r}; known: {', '.join(SERVERS)}"


def available_servers(servers: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """Split ``servers`` into those that can run here and those skipped (with the reason)."""
    runnable: list[str] = []
    skipped: dict[str, str] = {}
    for name in servers:
        command = server_command(name, 0)
        if isinstance(command, str):
            skipped[name] = command
        else:
            runnable.append(name)
    return runnable, skipped


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """Wait until something accepts connections on ``port``.

    Raises
    ------
    Unavailable
        If ``process`` exits first, or nothing listens within ``timeout`` seconds.
    """
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if process.poll() is not None:
            raise Unavailable(f"the server exited with {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise Unavailable(f"the server did not listen on port {port} within {timeout} s")


def _pin(cpus: str) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", cpus]
    return []


def _tail(stream: IO[bytes]) -> str:
    stream.seek(0)
    return stream.read().decode(errors="replace")[-2000:]


@contextlib.contextmanager
def running(
    name: str, command: Sequence[str], port: int, *, cpus: str = "0"
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server pinned to ``cpus`` while the block runs; stop it afterwards.

    The server gets SIGTERM, then (after 5 s) SIGKILL for its whole process
    group, so that worker processes go too.

    Raises
    ------
    Unavailable
        If the server does not come up (with the end of its stderr).
    """
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            [*_pin(cpus), *command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
        try:
            try:
                wait_for_port(port, process)
            except Unavailable as exc:
                raise Unavailable(f"{name}: {exc.message}\n{_tail(stderr)}") from None
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(5)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)  # workers left behind, if any
            process.wait()


# --------------------------------------------------------------------------- load generators


def pick_generator(choice: str = "auto") -> Generator:
    """``"wrk"`` or ``"builtin"``: ``"auto"`` means wrk when it is on ``PATH``.

    Raises
    ------
    InvalidInput
        If ``choice`` is not auto, wrk or builtin.
    Unavailable
        If wrk is asked for and not installed.
    """
    if choice == "auto":
        return "wrk" if shutil.which("wrk") else "builtin"
    if choice == "wrk":
        if shutil.which("wrk") is None:
            raise Unavailable("wrk is not on PATH (Debian/Ubuntu: apt-get install wrk)")
        return "wrk"
    if choice == "builtin":
        return "builtin"
    raise InvalidInput(f"the load generator must be auto, wrk or builtin, got {choice!r}")


def parse_wrk(output: str) -> dict[str, float]:
    """The JSON line the wrk script prints at the end of a run.

    Raises
    ------
    ParseError
        If the output has no such line.
    """
    from trusswork.core.errors import ParseError

    for line in reversed(output.splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            return dict(json.loads(line))
    raise ParseError(f"no result line in wrk's output:\n{output[-1000:]}")


def run_wrk(port: int, route: str, connections: int, duration: float) -> dict[str, float]:
    """Drive ``/route`` on ``port`` with wrk (one thread, pinned to CPU 1).

    Returns wrk's totals: requests, duration_us, bytes, errors, non2xx and
    the p50/p90/p99/p999/max latencies in microseconds. wrk takes whole
    seconds: ``duration`` is rounded, to at least 1 s.
    """
    seconds = max(1, round(duration))
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="trusswork-wrk-") as script:
        script.write(_WRK_SCRIPT)
        script.flush()
        command = [
            *_pin("1"),
            "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s",
            "-s", script.name, f"http://127.0.0.1:{port}/{route}",
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60)
    if done.returncode != 0:
        raise Unavailable(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    return parse_wrk(done.stdout)


def run_builtin(port: int, route: str, connections: int, duration: float) -> dict[str, float]:
    """Drive ``/route`` on ``port`` with the built-in generator, in a process pinned to CPU 1.

    Same result keys as :func:`run_wrk`.
    """
    command = [
        *_pin("1"),
        sys.executable,
        "-c",
        "import sys; from trusswork.http.loadtest import _client_main; "
        "sys.exit(_client_main(sys.argv[1:]))",
        str(port),
        route,
        str(connections),
        repr(duration),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60)
    if done.returncode != 0:
        raise Unavailable(
            f"the built-in load generator failed ({done.returncode}): {done.stderr.strip()[-1500:]}"
        )
    return parse_wrk(done.stdout)


def run_load(
    generator: Generator, port: int, route: str, connections: int, duration: float
) -> dict[str, float]:
    """Run ``generator`` (:func:`run_wrk` or :func:`run_builtin`)."""
    runner = run_wrk if generator == "wrk" else run_builtin
    return runner(port, route, connections, duration)


class _Client(asyncio.Protocol):
    """One keep-alive connection of the built-in generator: one request in flight.

    A connection the server closes is counted as an error and not reopened.
    """

    def __init__(self, request: bytes, until: float, stats: _Stats, done: asyncio.Future[None]):
        self.request = request
        self.until = until
        self.stats = stats
        self.done = done
        self.head = bytearray()
        self.remaining = -1  # body bytes still to come; -1 while reading a head
        self.status_ok = True
        self.sent = 0
        self.transport: asyncio.Transport | None = None
        self.failed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self._next()

    def _next(self) -> None:
        assert self.transport is not None
        now = time.perf_counter()
        if now >= self.until:
            self.transport.close()
            return
        self.sent = time.perf_counter_ns()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.stats.bytes += len(data)
        view = memoryview(data)
        while view:
            if self.remaining < 0:
                self.head += view
                end = self.head.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(self.head[:end]).lower()
                view = memoryview(bytes(self.head[end + 4 :]))
                self.head.clear()
                self.status_ok = head[9:10] == b"2"
                at = head.find(b"\r\ncontent-length:")
                if at < 0:
                    self._fail()  # no framing we can follow
                    return
                line_end = head.find(b"\r\n", at + 2)
                self.remaining = int(head[at + 17 : line_end if line_end > 0 else None])
            take = min(self.remaining, len(view))
            self.remaining -= take
            view = view[take:]
            if self.remaining == 0:
                self.remaining = -1
                self.stats.latencies.append(time.perf_counter_ns() - self.sent)
                if not self.status_ok:
                    self.stats.non2xx += 1
                if view:  # more than one response to one request
                    self._fail()
                    return
                self._next()

    def _fail(self) -> None:
        self.stats.errors += 1
        self.failed = True
        assert self.transport is not None
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.failed:
            pass  # counted already
        elif self.remaining >= 0 or self.head or time.perf_counter() < self.until:
            self.stats.errors += 1  # closed by the server in the middle of the run
        if not self.done.done():
            self.done.set_result(None)


@dataclass
class _Stats:
    latencies: list[int] = field(default_factory=list)
    bytes: int = 0
    errors: int = 0
    non2xx: int = 0


def _percentile(ordered: Sequence[int], q: float) -> float:
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return float(ordered[index])


async def _drive(port: int, route: str, connections: int, duration: float) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    request = f"GET /{route} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    stats = _Stats()
    start = time.perf_counter()
    until = start + duration
    futures: list[asyncio.Future[None]] = []
    for _ in range(connections):
        done: asyncio.Future[None] = loop.create_future()
        futures.append(done)
        try:
            await loop.create_connection(
                lambda done=done: _Client(request, until, stats, done),  # type: ignore[misc]
                "127.0.0.1",
                port,
            )
        except OSError:
            stats.errors += 1
            done.set_result(None)
    await asyncio.wait_for(asyncio.gather(*futures), duration + 15)
    seconds = time.perf_counter() - start
    ordered = sorted(stats.latencies)
    return {
        "requests": len(ordered),
        "duration_us": seconds * 1e6,
        "bytes": stats.bytes,
        "errors": stats.errors,
        "non2xx": stats.non2xx,
        "p50": _percentile(ordered, 50) / 1000,
        "p90": _percentile(ordered, 90) / 1000,
        "p99": _percentile(ordered, 99) / 1000,
        "p999": _percentile(ordered, 99.9) / 1000,
        "max": (ordered[-1] / 1000) if ordered else 0.0,
    }


def _client_main(argv: Sequence[str]) -> int:
    """The built-in generator's process: ``PORT ROUTE CONNECTIONS SECONDS``; prints a JSON line."""
    port, route, connections, duration = argv
    try:
        import uvloop

        runner: Callable[[Any], Any] = uvloop.run
    except ImportError:  # pragma: no cover -- uvloop is a dependency on Linux
        runner = asyncio.run
    result = runner(_drive(int(port), route, int(connections), float(duration)))
    print(json.dumps(result), flush=True)
    return 0


# --------------------------------------------------------------------------- measuring


def _measurement(
    raw: Mapping[str, float], round_: int, server: str, route: str, connections: int
) -> Measurement:
    seconds = max(raw["duration_us"] / 1e6, 1e-9)
    return Measurement(
        round=round_,
        server=server,
        route=route,
        connections=connections,
        requests_per_s=raw["requests"] / seconds,
        mb_per_s=raw["bytes"] / seconds / 1e6,
        p50_ms=raw["p50"] / 1000,
        p90_ms=raw["p90"] / 1000,
        p99_ms=raw["p99"] / 1000,
        p999_ms=raw["p999"] / 1000,
        errors=int(raw["errors"]),
        non2xx=int(raw["non2xx"]),
    )


def _warm_up(generator: Generator, port: int, duration: float) -> None:
    run_load(generator, port, "plaintext", 8, min(1.0, max(0.2, duration / 2)))


def _check(
    servers: Sequence[str], routes: Sequence[str], connections: Sequence[int], rounds: int
) -> None:
    if unknown := [s for s in servers if s not in SERVERS]:
        raise InvalidInput(f"unknown server(s) {', '.join(unknown)}; known: {', '.join(SERVERS)}")
    if unknown := [r for r in routes if r not in ROUTES]:
        raise InvalidInput(f"unknown route(s) {', '.join(unknown)}; known: {', '.join(ROUTES)}")
    if not servers or not routes:
        raise InvalidInput("at least one server and one route are needed")
    if not connections or any(c < 1 for c in connections):
        raise InvalidInput(f"connection counts must be at least 1, got {list(connections)}")
    if rounds < 1:
        raise InvalidInput(f"rounds must be at least 1, got {rounds}")


def measure(
    servers: Sequence[str] = SERVERS,
    routes: Sequence[str] = ROUTES,
    connections: Sequence[int] = (16, 64, 256),
    duration: float = 5.0,
    rounds: int = 3,
    *,
    generator: Generator = "wrk",
    on_measurement: Callable[[Measurement], None] | None = None,
) -> BenchResult:
    """Measure every runnable server on every route and connection count, ``rounds`` times.

    Parameters
    ----------
    servers, routes, connections:
        What to measure (names from :data:`SERVERS` and :data:`ROUTES`).
    duration:
        Seconds of load per measurement.
    rounds:
        Repetitions, each in a rotated server order.
    generator:
        ``"wrk"`` or ``"builtin"`` (see :func:`pick_generator`).
    on_measurement:
        Called after each measurement (progress display).

    Returns
    -------
    BenchResult
        Every measurement, the skipped servers with the reason, and the
        summary (:func:`summarize`) against :data:`BASELINE`.

    Raises
    ------
    InvalidInput
        For unknown servers or routes, or non-positive counts.
    Unavailable
        If a server does not start or the load generator fails.
    """
    _check(servers, routes, connections, rounds)
    if duration <= 0:
        raise InvalidInput(f"duration must be positive, got {duration}")
    runnable, skipped = available_servers(servers)
    results: list[Measurement] = []
    for round_ in range(rounds):
        shift = round_ % max(1, len(runnable))
        for name in runnable[shift:] + runnable[:shift]:
            port = free_port()
            command = server_command(name, port)
            assert not isinstance(command, str)
            with running(name, command, port):
                _warm_up(generator, port, duration)
                for route in routes:
                    for conns in connections:
                        raw = run_load(generator, port, route, conns, duration)
                        results.append(_measurement(raw, round_, name, route, conns))
                        if on_measurement is not None:
                            on_measurement(results[-1])
    return BenchResult(
        kind="servers",
        generator=generator,
        baseline=BASELINE,
        measurements=results,
        skipped=skipped,
        summary=summarize(results, BASELINE),
        settings={
            "servers": list(servers),
            "routes": list(routes),
            "connections": list(connections),
            "duration_s": duration,
            "rounds": rounds,
            "cpus": os.cpu_count(),
        },
    )


def knob_variants(knobs: Sequence[str] | None = None) -> list[KnobVariant]:
    """The default configuration plus the variants of ``knobs`` (all when None).

    Raises
    ------
    InvalidInput
        For a knob that is not studied.
    """
    names = sorted({v.knob for v in KNOBS} - {"default"})
    if knobs is None:
        return list(KNOBS)
    if unknown := [k for k in knobs if k not in names]:
        raise InvalidInput(f"unknown knob(s) {', '.join(unknown)}; known: {', '.join(names)}")
    return [v for v in KNOBS if v.knob == "default" or v.knob in knobs]


def measure_knobs(
    variants: Sequence[KnobVariant] = KNOBS,
    duration: float = 3.0,
    rounds: int = 1,
    *,
    routes: Sequence[str] = ROUTES,
    generator: Generator = "wrk",
    on_measurement: Callable[[Measurement], None] | None = None,
) -> BenchResult:
    """Measure our server (ASGI app) under each knob variant on its (route, connections) cells.

    ``routes`` keeps only the cells on those routes (a variant left without
    cells is not run); ``default`` runs only the cells the other variants
    are compared on. The summary compares each variant with ``default``
    on the same cell (median of per-round ratios).

    Raises
    ------
    InvalidInput
        For bad durations or rounds, or variants without ``default``.
    Unavailable
        If the server does not start or the load generator fails.
    """
    if duration <= 0:
        raise InvalidInput(f"duration must be positive, got {duration}")
    if rounds < 1:
        raise InvalidInput(f"rounds must be at least 1, got {rounds}")
    if unknown := [r for r in routes if r not in ROUTES]:
        raise InvalidInput(f"unknown route(s) {', '.join(unknown)}; known: {', '.join(ROUTES)}")
    if not any(v.name == "default" for v in variants):
        raise InvalidInput("the knob study needs the 'default' variant to compare with")
    others = {cell for v in variants if v.name != "default" for cell in v.cells}
    chosen: list[tuple[KnobVariant, list[tuple[str, int]]]] = []
    for variant in variants:
        cells = [cell for cell in variant.cells if cell[0] in routes]
        if variant.name == "default" and others:  # only what some variant is compared on
            cells = [cell for cell in cells if cell in others]
        if cells:
            chosen.append((variant, cells))
    results: list[Measurement] = []
    for round_ in range(rounds):
        shift = round_ % max(1, len(chosen))
        for variant, cells in chosen[shift:] + chosen[:shift]:
            port = free_port()
            command = server_command("trusswork", port, variant.args)
            assert not isinstance(command, str)
            with running(variant.name, command, port, cpus=variant.server_cpus):
                _warm_up(generator, port, duration)
                for route, conns in cells:
                    raw = run_load(generator, port, route, conns, duration)
                    results.append(_measurement(raw, round_, variant.name, route, conns))
                    if on_measurement is not None:
                        on_measurement(results[-1])
    return BenchResult(
        kind="knobs",
        generator=generator,
        baseline="default",
        measurements=results,
        summary=summarize(results, "default"),
        settings={
            "variants": {
                v.name: {"args": list(v.args), "server_cpus": v.server_cpus} for v, _ in chosen
            },
            "duration_s": duration,
            "rounds": rounds,
            "cpus": os.cpu_count(),
        },
    )


def summarize(results: Sequence[Measurement], baseline: str = BASELINE) -> list[dict[str, Any]]:
    """Medians per (route, connections, server) and the median per-round ratio to ``baseline``.

    Each row has route, connections, server, requests_per_s, mb_per_s,
    p50_ms, p99_ms, p999_ms, ratio (None without a baseline measurement)
    and errors (transport errors plus non-2xx answers).
    """
    keys = sorted({(m.route, m.connections, m.server) for m in results})
    by = {(m.round, m.route, m.connections, m.server): m for m in results}
    rounds = sorted({m.round for m in results})
    rows: list[dict[str, Any]] = []
    for route, conns, server in keys:
        mine = [m for m in results if (m.route, m.connections, m.server) == (route, conns, server)]
        ratios = [
            by[(r, route, conns, server)].requests_per_s
            / by[(r, route, conns, baseline)].requests_per_s
            for r in rounds
            if (r, route, conns, server) in by
            and (r, route, conns, baseline) in by
            and by[(r, route, conns, baseline)].requests_per_s > 0
        ]
        rows.append(
            {
                "route": route,
                "connections": conns,
                "server": server,
                "requests_per_s": statistics.median(m.requests_per_s for m in mine),
                "mb_per_s": statistics.median(m.mb_per_s for m in mine),
                "p50_ms": statistics.median(m.p50_ms for m in mine),
                "p99_ms": statistics.median(m.p99_ms for m in mine),
                "p999_ms": statistics.median(m.p999_ms for m in mine),
                "ratio": statistics.median(ratios) if ratios else None,
                "errors": sum(m.errors + m.non2xx for m in mine),
            }
        )
    return rows


# --------------------------------------------------------------------------- reporting


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def plot(summary: Sequence[Mapping[str, Any]], out: Path) -> list[Path]:
    """Write ``throughput.png`` (req/s vs connections, a panel per route) and
    ``latency.png`` (p50/p99/p99.9 per server at 64 connections, or the middle count).
    """
    routes = [r for r in ROUTES if any(row["route"] == r for row in summary)]
    servers = list(dict.fromkeys(str(row["server"]) for row in summary))
    fig = _figure(4.2 * len(routes), 3.4)
    axes = fig.subplots(1, len(routes), squeeze=False)[0]
    for ax, route in zip(axes, routes, strict=True):
        for server in servers:
            points = sorted(
                (int(r["connections"]), float(r["requests_per_s"]))
                for r in summary
                if r["route"] == route and r["server"] == server
            )
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker="o", label=server)
        ax.set_title(f"/{route}")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("connections")
        ax.set_ylabel("requests/s (median)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")
    fig.tight_layout()
    paths = [out / "throughput.png"]
    fig.savefig(paths[0], dpi=110)

    conns = sorted({int(r["connections"]) for r in summary})
    at = 64 if 64 in conns else conns[len(conns) // 2]
    fig = _figure(4.2 * len(routes), 3.4)
    axes = fig.subplots(1, len(routes), squeeze=False)[0]
    for ax, route in zip(axes, routes, strict=True):
        rows = [r for r in summary if r["route"] == route and r["connections"] == at]
        for i, key in enumerate(("p50_ms", "p99_ms", "p999_ms")):
            ax.bar(
                [j + i * 0.27 for j in range(len(rows))],
                [max(float(r[key]), 1e-3) for r in rows],
                width=0.27,
                label=key.removesuffix("_ms").replace("p999", "p99.9"),
            )
        ax.set_xticks([j + 0.27 for j in range(len(rows))], [str(r["server"]) for r in rows])
        ax.tick_params(axis="x", labelsize="small")
        ax.set_title(f"/{route}, {at} connections")
        ax.set_ylabel("latency (ms)")
        ax.set_yscale("log")
    axes[0].legend(fontsize="small")
    fig.tight_layout()
    paths.append(out / "latency.png")
    fig.savefig(paths[1], dpi=110)
    return paths


def bars_figure(rates: Mapping[str, float], title: str, unit: str = "requests/s") -> Figure:
    """A bar chart of one figure per server (``{"trusswork": 41000.0, "uvicorn": 30000.0}``)."""
    fig = _figure(5.0, 2.8)
    ax = fig.subplots()
    names = list(rates)
    colours = ["#0969da" if n.startswith("trusswork") else "#8c959f" for n in names]
    bars = ax.barh(names, [rates[n] for n in names], color=colours)
    ax.bar_label(bars, labels=[f"{rates[n]:,.0f}" for n in names], padding=3, fontsize="small")
    ax.invert_yaxis()
    ax.set_xlabel(unit)
    ax.set_title(title, fontsize="medium")
    ax.set_xlim(0, max([*rates.values(), 1.0]) * 1.2)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def knobs_markdown(result: BenchResult) -> str:
    """The knob study as a Markdown table: req/s, p99 and the ratio to ``default``."""
    lines = [
        "| variant | route | connections | req/s | p99 ms | vs default |",
        "|---|---|---:|---:|---:|---:|",
    ]
    order = {v.name: i for i, v in enumerate(KNOBS)}
    rows = sorted(
        result.summary,
        key=lambda r: (order.get(r["server"], len(order)), r["route"], r["connections"]),
    )
    for row in rows:
        ratio = "—" if row["ratio"] is None else f"{row['ratio']:.2f}x"
        lines.append(
            f"| {row['server']} | {row['route']} | {row['connections']} | "
            f"{row['requests_per_s']:,.0f} | {row['p99_ms']:.2f} | {ratio} |"
        )
    note = f"\nLoad generator: {result.document()['generator_note']}.\n"
    return "\n".join(lines) + "\n" + note


def summary_lines(result: BenchResult) -> list[str]:
    """The summary as plain text lines (one per route, connections and server)."""
    lines = []
    for row in result.summary:
        ratio = row["ratio"]
        versus = f"  x{ratio:.2f} {result.baseline}" if ratio is not None else ""
        lines.append(
            f"{row['route']:9} c={row['connections']:<4} {row['server']:24} "
            f"{row['requests_per_s']:>10,.0f} req/s  p50 {row['p50_ms']:.2f} ms  "
            f"p99 {row['p99_ms']:.2f} ms  p99.9 {row['p999_ms']:.2f} ms{versus}"
        )
    return lines


def write_results(result: BenchResult, out: Path) -> list[Path]:
    """Write the result into ``out`` (created if missing); return the paths written.

    Server runs: ``results.json``, ``throughput.png``, ``latency.png``.
    Knob study: ``knobs.json`` and ``knobs.md``.
    """
    out.mkdir(parents=True, exist_ok=True)
    if result.kind == "knobs":
        paths = [out / "knobs.json", out / "knobs.md"]
        paths[0].write_text(json.dumps(result.document(), indent=1) + "\n", encoding="utf-8")
        paths[1].write_text(knobs_markdown(result), encoding="utf-8")
        return paths
    path = out / "results.json"
    path.write_text(json.dumps(result.document(), indent=1) + "\n", encoding="utf-8")
    return [path, *(plot(result.summary, out) if result.summary else [])]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m trusswork.http.loadtest --port P``: drive a running server and print the result.

    Waits (up to 20 s) for the port to accept connections, runs one load
    (``--route``, ``--connections``, ``--duration``, ``--generator``) and
    prints req/s and latency percentiles (``--wait-only``: just wait).
    ``make profile-http`` uses it to load the server it profiles.
    """
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m trusswork.http.loadtest", description=main.__doc__
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--route", choices=ROUTES, default="plaintext")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--generator", choices=("auto", "wrk", "builtin"), default="auto")
    parser.add_argument(
        "--wait-only", action="store_true", help="only wait until the port accepts connections"
    )
    args = parser.parse_args(argv)
    generator = pick_generator(args.generator)
    end = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", args.port), 0.2).close()
            break
        except OSError:
            if time.monotonic() > end:
                print(f"nothing listens on port {args.port}", file=sys.stderr)
                return 1
            time.sleep(0.05)
    if args.wait_only:
        return 0
    raw = run_load(generator, args.port, args.route, args.connections, args.duration)
    m = _measurement(raw, 0, "server", args.route, args.connections)
    print(
        f"{generator}: /{m.route} c={m.connections} {m.requests_per_s:,.0f} req/s  "
        f"p50 {m.p50_ms:.2f} ms  p99 {m.p99_ms:.2f} ms  p99.9 {m.p999_ms:.2f} ms  "
        f"errors {m.errors + m.non2xx}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
