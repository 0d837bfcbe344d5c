"""Demo section for the HTTP server: serve an ASGI app, drive load, compare with uvicorn.

Checked parts:

1. Our server (``trusswork http serve``) and uvicorn (uvloop + httptools),
   each in its own process, serve the same ASGI app (the load test's,
   :mod:`trusswork.http._bench_app`: ``/plaintext``, ``Hello, World!``). A
   small keep-alive load generator in this process (:func:`drive`, 32
   connections) runs against each for a fixed time; every response must be
   a 200 with the right body. The figures are requests per second and the
   ratio. They come from a shared 2-core machine where the load generator
   competes with the server, so they are indicative; the numbers to trust
   come from ``make bench-http`` (wrk, pinned cores). A bar chart of the two
   rates goes into the report.
2. A request-smuggling attempt (``Content-Length`` with
   ``Transfer-Encoding``) must get a 400 and a closed connection.

uvicorn is a bench extra; without it the comparison row says so.
"""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

from trusswork.cli._demo import DemoContext, Plot, SectionResult

BODY = b"Hello, World!"
REQUEST = b"GET /plaintext HTTP/1.1\r\nHost: demo\r\n\r\n"
RESPONSE_END = b"\r\n\r\n" + BODY

APP = "trusswork.http._bench_app:app"  # /plaintext: Hello, World!


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, process: subprocess.Popen[bytes], seconds: float = 20.0) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if process.poll() is not None:
            err = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise AssertionError(f"the server exited with {process.returncode}: {err[-500:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"no server listened on port {port} within {seconds} s")


def _start(kind: str, port: int, where: Path) -> subprocess.Popen[bytes]:
    if kind == "trusswork":
        command = [sys.executable, "-m", "trusswork", "http", "serve", APP, "--port", str(port)]
    else:
        command = [sys.executable, "-m", "uvicorn", APP, "--port", str(port), "--loop", "uvloop",
                   "--http", "httptools", "--log-level", "error", "--no-access-log"]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=where, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        _wait_listening(port, process)
    except BaseException:
        _stop(process)
        raise
    return process


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stderr is not None:
        process.stderr.close()


async def _connection(port: int, until: float, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    buffer = b""
    try:
        while time.monotonic() < until:
            writer.write(REQUEST)
            while RESPONSE_END not in buffer:
                chunk = await reader.read(65536)
                if not chunk:
                    raise AssertionError("the server closed a keep-alive connection")
                buffer += chunk
            head, _, buffer = buffer.partition(RESPONSE_END)
            if not head.startswith(b"HTTP/1.1 200"):
                raise AssertionError(f"expected 200, got {head[:40]!r}")
            counts[0] += 1
    finally:
        writer.close()


def drive(port: int, seconds: float, connections: int = 32) -> float:
    """Requests per second answered correctly on ``connections`` keep-alive connections."""

    async def main() -> int:
        counts = [0]
        until = time.monotonic() + seconds
        await asyncio.gather(*(_connection(port, until, counts) for _ in range(connections)))
        return counts[0]

    start = time.monotonic()
    done = asyncio.run(main())
    return done / (time.monotonic() - start)


def smuggling_is_refused(port: int) -> str:
    """Send CL+TE; return the status line, after checking the connection was closed."""
    attack = (
        b"POST /plaintext HTTP/1.1\r\nHost: demo\r\nContent-Length: 6\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nX"
    )
    with socket.create_connection(("127.0.0.1", port), 5) as sock:
        sock.sendall(attack)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status = answer.split(b"\r\n", 1)[0].decode()
    if not re.fullmatch(r"HTTP/1\.1 400 .*", status):
        raise AssertionError(f"a CL+TE request got {status!r}, not 400")
    return status


def demo(ctx: DemoContext) -> SectionResult:
    """Serve, load, compare and refuse a smuggling request; see the module docstring."""
    where = ctx.out_dir / "http"
    where.mkdir(parents=True, exist_ok=True)
    seconds = 1.0 if ctx.quick else 3.0
    rates: dict[str, float] = {}
    notes: list[str] = []
    rows: list[tuple[str, str]] = []
    try:
        import uvicorn  # noqa: F401

        kinds = ["trusswork", "uvicorn"]
    except ImportError:
        kinds = ["trusswork"]
        notes.append("uvicorn is not installed (bench extra), so there is no comparison.")
    for kind in ctx.track(kinds, "http: serve and drive load"):
        port = _free_port()
        process = _start(kind, port, where)
        try:
            drive(port, 0.2)  # warm-up
            rates[kind] = drive(port, seconds)
            if kind == "trusswork":
                rows.append(("CL+TE smuggling request", f"refused: {smuggling_is_refused(port)}"))
        finally:
            _stop(process)
    rows.insert(0, ("trusswork http serve, plaintext (32 keep-alive connections)",
                    f"{rates['trusswork']:,.0f} req/s"))  # fmt: skip
    if "uvicorn" in rates:
        rows.insert(1, ("uvicorn (uvloop + httptools), same app and load",
                        f"{rates['uvicorn']:,.0f} req/s"))  # fmt: skip
        rows.insert(2, ("ratio", f"{rates['trusswork'] / rates['uvicorn']:.2f}x"))
    notes.append(
        "The load generator shares the machine's cores with the server, so these rates are "
        "indicative; `make bench-http` (or `trusswork http bench`) measures with wrk on "
        "pinned cores."
    )
    from trusswork.http.loadtest import bars_figure

    names = {"trusswork": "trusswork http serve", "uvicorn": "uvicorn"}
    figure = bars_figure(
        {names[kind]: rate for kind, rate in rates.items()},
        f"plaintext, 32 keep-alive connections, {seconds:g} s",
    )
    plots = [Plot("Throughput: requests per second, same ASGI app and load", figure)]
    return SectionResult(rows=rows, plots=plots, notes=notes)
