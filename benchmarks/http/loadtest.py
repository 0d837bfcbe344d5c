"""HTTP load test: trusswork's server against uvicorn and granian, driven by wrk.

Each server runs the same ASGI app (``benchmarks/http/app.py``) with one
worker on loopback, pinned to CPU 0 with ``taskset``; ``wrk`` (one thread)
runs pinned to CPU 1. For every round, route and connection count the
servers are measured one after another in an order that rotates from round
to round, so slow drifts of a shared machine hit every server alike.
Results are compared as the median over rounds of per-round ratios against
uvicorn (runs on a shared 2-core machine vary by up to ~45%).

Usage (from the repository root; ``make bench-http`` runs the default)::

    .venv/bin/python benchmarks/http/loadtest.py [--servers uvicorn,granian,trusswork]
        [--routes plaintext,json,static] [--connections 16,64,256]
        [--duration 5] [--rounds 3] [--out reports/http]

Writes ``results.json`` (every measurement and the summary) and
``throughput.png`` / ``latency.png`` into ``--out``. A server whose program
or package is missing is reported as skipped with the reason; so is a
missing ``wrk`` (``make bench-http`` installs it with apt-get).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
APP = "app:app"  # benchmarks/http/app.py, found through PYTHONPATH
ROUTES = ("plaintext", "json", "static")
BASELINE = "uvicorn"


@dataclass(frozen=True)
class Measurement:
    """One wrk run against one server."""

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


def server_command(name: str, port: int) -> list[str] | str:
    """The command that starts ``name`` on ``port``, or why it cannot run."""
    py = sys.executable
    if name == "uvicorn":
        try:
            import uvicorn  # noqa: F401
        except ImportError as exc:
            return f"uvicorn is not installed ({exc}); install the bench extra"
        return [py, "-m", "uvicorn", APP, "--port", str(port), "--loop", "uvloop",
                "--http", "httptools", "--log-level", "error", "--no-access-log",
                "--workers", "1"]  # fmt: skip
    if name == "granian":
        if shutil.which("granian", path=str(Path(py).parent)) is None:
            return "granian is not installed; install the bench extra"
        return [str(Path(py).parent / "granian"), "--interface", "asgi", "--port", str(port),
                "--workers", "1", "--loop", "uvloop", "--log-level", "error",
                "--no-ws", APP]  # fmt: skip
    if name == "trusswork":
        try:
            import importlib

            importlib.import_module("trusswork.http").serve  # noqa: B018
        except (ImportError, AttributeError):
            return "trusswork.http has no server yet (issue 4: the parser landed first)"
        return [py, "-m", "trusswork", "http", "serve", APP, "--port", str(port),
                "--workers", "1"]  # fmt: skip
    return f"unknown server {name!r}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"server did not listen on port {port} within {timeout} s")


def _pin(cpu: int) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(cpu)]
    return []


@contextlib.contextmanager
def running(name: str, command: list[str], port: int) -> Iterator[None]:
    """Start a server pinned to CPU 0; stop it (SIGINT, then SIGKILL) afterwards."""
    env = dict(os.environ, PYTHONPATH=f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    process = subprocess.Popen(
        [*_pin(0), *command], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        wait_for_port(port, process)
        yield
    except RuntimeError as exc:
        stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
        raise RuntimeError(f"{name}: {exc}\n{stderr[-2000:]}") from exc
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def parse_wrk(output: str) -> dict[str, float]:
    """The JSON line ``report.lua`` prints at the end of a wrk run."""
    for line in reversed(output.splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            return dict(json.loads(line))
    raise ValueError(f"no result line in wrk's output:\n{output[-1000:]}")


def run_wrk(port: int, route: str, connections: int, duration: float) -> dict[str, float]:
    command = [
        *_pin(1),
        "wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--timeout", "5s",
        "-s", str(HERE / "report.lua"), f"http://127.0.0.1:{port}/{route}",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 30)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    return parse_wrk(done.stdout)


def measure(
    servers: Sequence[str],
    routes: Sequence[str],
    connections: Sequence[int],
    duration: float,
    rounds: int,
) -> tuple[list[Measurement], dict[str, str]]:
    skipped: dict[str, str] = {}
    runnable = []
    for name in servers:
        command = server_command(name, 0)
        if isinstance(command, str):
            skipped[name] = command
        else:
            runnable.append(name)
    results: list[Measurement] = []
    for round_ in range(rounds):
        order = runnable[round_ % len(runnable) :] + runnable[: round_ % len(runnable)]
        for name in order:
            port = free_port()
            command = server_command(name, port)
            assert not isinstance(command, str)
            with running(name, command, port):
                run_wrk(port, "plaintext", 8, 1.0)  # warm-up
                for route in routes:
                    for conns in connections:
                        raw = run_wrk(port, route, conns, duration)
                        seconds = raw["duration_us"] / 1e6
                        results.append(
                            Measurement(
                                round=round_,
                                server=name,
                                route=route,
                                connections=conns,
                                requests_per_s=raw["requests"] / seconds,
                                mb_per_s=raw["bytes"] / seconds / 1e6,
                                p50_ms=raw["p50"] / 1000,
                                p90_ms=raw["p90"] / 1000,
                                p99_ms=raw["p99"] / 1000,
                                p999_ms=raw["p999"] / 1000,
                                errors=int(raw["errors"]),
                                non2xx=int(raw["non2xx"]),
                            )
                        )
                        print(
                            f"round {round_} {name:10} {route:9} c={conns:<4} "
                            f"{results[-1].requests_per_s:>10,.0f} req/s  "
                            f"p99 {results[-1].p99_ms:.2f} ms",
                            flush=True,
                        )
    return results, skipped


def summarize(results: Sequence[Measurement]) -> list[dict[str, object]]:
    """Medians per (server, route, connections) and median per-round ratios to uvicorn."""
    keys = sorted({(m.route, m.connections, m.server) for m in results})
    by = {(m.round, m.route, m.connections, m.server): m for m in results}
    rounds = sorted({m.round for m in results})
    rows: list[dict[str, object]] = []
    for route, conns, server in keys:
        mine = [m for m in results if (m.route, m.connections, m.server) == (route, conns, server)]
        ratios = [
            by[(r, route, conns, server)].requests_per_s
            / by[(r, route, conns, BASELINE)].requests_per_s
            for r in rounds
            if (r, route, conns, server) in by and (r, route, conns, BASELINE) in by
        ]
        rows.append(
            {
                "route": route,
                "connections": conns,
                "server": server,
                "requests_per_s": statistics.median(m.requests_per_s for m in mine),
                "p50_ms": statistics.median(m.p50_ms for m in mine),
                "p99_ms": statistics.median(m.p99_ms for m in mine),
                "p999_ms": statistics.median(m.p999_ms for m in mine),
                "ratio_to_uvicorn": statistics.median(ratios) if ratios else None,
                "errors": sum(m.errors + m.non2xx for m in mine),
            }
        )
    return rows


def plot(summary: Sequence[dict[str, object]], out: Path) -> list[Path]:
    """Throughput vs connections (one panel per route) and p50/p99/p99.9 at 64 connections."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    routes = sorted({str(row["route"]) for row in summary})
    servers = sorted({str(row["server"]) for row in summary})
    fig, axes = plt.subplots(1, len(routes), figsize=(4.2 * len(routes), 3.4), squeeze=False)
    for ax, route in zip(axes[0], routes, strict=True):
        for server in servers:
            points = sorted(
                (int(str(r["connections"])), float(str(r["requests_per_s"])))
                for r in summary
                if r["route"] == route and r["server"] == server
            )
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", label=server)
        ax.set_title(f"/{route}")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("connections")
        ax.set_ylabel("requests/s (median)")
        ax.grid(alpha=0.3)
    axes[0][0].legend()
    fig.tight_layout()
    paths = [out / "throughput.png"]
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)

    conns = sorted({int(str(r["connections"])) for r in summary})
    at = 64 if 64 in conns else conns[len(conns) // 2]
    fig, axes = plt.subplots(1, len(routes), figsize=(4.2 * len(routes), 3.4), squeeze=False)
    for ax, route in zip(axes[0], routes, strict=True):
        rows = [r for r in summary if r["route"] == route and r["connections"] == at]
        for i, key in enumerate(("p50_ms", "p99_ms", "p999_ms")):
            ax.bar(
                [j + i * 0.27 for j in range(len(rows))],
                [float(str(r[key])) for r in rows],
                width=0.27,
                label=key.removesuffix("_ms").replace("p999", "p99.9"),
            )
        ax.set_xticks([j + 0.27 for j in range(len(rows))], [str(r["server"]) for r in rows])
        ax.set_title(f"/{route}, {at} connections")
        ax.set_ylabel("latency (ms)")
        ax.set_yscale("log")
    axes[0][0].legend()
    fig.tight_layout()
    paths.append(out / "latency.png")
    fig.savefig(paths[1], dpi=110)
    plt.close(fig)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default="uvicorn,granian,trusswork")
    parser.add_argument("--routes", default=",".join(ROUTES))
    parser.add_argument("--connections", default="16,64,256")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "http")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("skipped: wrk is not installed (make bench-http installs it with apt-get)")
        return 0
    routes = [r for r in args.routes.split(",") if r]
    if unknown := set(routes) - set(ROUTES):
        parser.error(f"--routes: unknown route(s) {', '.join(sorted(unknown))}")
    try:
        connections = [int(c) for c in args.connections.split(",")]
    except ValueError:
        parser.error(f"--connections must be integers separated by commas, got {args.connections}")
    servers = [s for s in args.servers.split(",") if s]
    if BASELINE not in servers:
        servers.insert(0, BASELINE)
    results, skipped = measure(servers, routes, connections, args.duration, args.rounds)
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")
    summary = summarize(results)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(
        json.dumps(
            {
                "servers": servers,
                "skipped": skipped,
                "summary": summary,
                "measurements": [asdict(m) for m in results],
            },
            indent=1,
        )
    )
    for row in summary:
        ratio = row["ratio_to_uvicorn"]
        versus = f"  x{ratio:.2f} uvicorn" if ratio is not None else ""
        print(
            f"{row['route']:9} c={row['connections']:<4} {row['server']:10} "
            f"{row['requests_per_s']:>10,.0f} req/s  p99 {row['p99_ms']:.2f} ms{versus}"
        )
    for path in plot(summary, args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
