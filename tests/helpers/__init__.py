"""Helpers the test suite shares: service skip-or-fail, shared data, fuzz budgets.

A test that needs something outside the repository (a Redis server, a
PostgreSQL server, a data file in the shared directory) calls
:func:`missing_service` when it is not there: on a developer machine the
test is skipped with the reason, under ``CI=true`` it fails, so CI never
turns green by skipping what it was meant to run.

``redis_unreachable`` / ``postgres_unreachable`` say why a server does not
answer (None when it does); ``private_redis`` runs a throwaway
``redis-server`` on a free port for as long as a ``with`` block lasts.

``examples(n)`` is the hypothesis budget: ``n`` by default, fifty times more
when ``TRUSSWORK_FUZZ=1`` asks for a fuzzing run.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import pytest

__all__ = [
    "FUZZ",
    "REPO_ROOT",
    "examples",
    "free_port",
    "in_ci",
    "missing_service",
    "postgres_unreachable",
    "private_redis",
    "redis_unreachable",
    "shared_dir",
    "shared_path",
]

REPO_ROOT = Path(__file__).resolve().parents[2]

#: True when the environment asks for long fuzzing runs (``TRUSSWORK_FUZZ=1``).
FUZZ = os.environ.get("TRUSSWORK_FUZZ", "").strip() == "1"


def examples(default: int, *, fuzz: int | None = None) -> int:
    """The hypothesis ``max_examples`` budget: ``default``, or ``fuzz`` under TRUSSWORK_FUZZ=1."""
    if not FUZZ:
        return default
    return fuzz if fuzz is not None else 50 * default


def in_ci() -> bool:
    """True when running under continuous integration (``CI=true``, as CI services set it)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def missing_service(what: str, reason: str) -> NoReturn:
    """Skip the current test because ``what`` is unavailable, or fail under ``CI=true``.

    Parameters
    ----------
    what:
        The missing thing, as a reader would name it ("Redis", "shared data file x").
    reason:
        Why it is missing and how to provide it.
    """
    message = f"{what} is not available: {reason}"
    if in_ci():
        pytest.fail(f"{message} (CI=true: services must be present, so this fails)")
    pytest.skip(message)


def shared_dir() -> Path:
    """The shared data directory: ``$TRUSSWORK_SHARED_DIR``, else ``<repo root>/../shared``."""
    override = os.environ.get("TRUSSWORK_SHARED_DIR")
    return Path(override) if override else REPO_ROOT.parent / "shared"


def shared_path(name: str) -> Path:
    """Path of the shared data file or directory ``name``; skips (fails in CI) if absent."""
    path = shared_dir() / name
    if not path.exists():
        missing_service(
            f"shared data {name!r}",
            f"{path} does not exist; put it there or point TRUSSWORK_SHARED_DIR at a "
            f"directory that holds it",
        )
    return path


def redis_unreachable(url: str) -> str | None:
    """None if a Redis server answers PING at ``url``, else the reason it does not."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=2.0)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        client.close()
    return None


def postgres_unreachable(dsn: str) -> str | None:
    """None if PostgreSQL accepts a connection with ``dsn``, else the reason it does not."""
    import psycopg

    try:
        psycopg.connect(dsn, connect_timeout=3).close()
    except psycopg.Error as exc:
        return f"{type(exc).__name__}: {exc}".strip()
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def private_redis(workdir: Path, *, binary: str | None = None) -> Iterator[str]:
    """Run a private, non-persistent ``redis-server`` on a free port; yield its URL.

    The server is killed when the block ends. Raises ``FileNotFoundError`` when
    there is no ``redis-server`` binary and ``RuntimeError`` when it does not
    start answering within ten seconds (the reason and its log path included).
    """
    binary = binary or shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError("no redis-server binary on PATH")
    port = free_port()
    log_path = workdir / f"redis-{port}.log"
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    command += ["--appendonly", "no", "--dir", str(workdir)]
    url = f"redis://127.0.0.1:{port}/0"
    with log_path.open("wb") as log:
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 10.0
            while (why := redis_unreachable(url)) is not None:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"private redis-server on port {port} did not start ({why}); see {log_path}"
                    )
                time.sleep(0.05)
            yield url
        finally:
            server.kill()
            server.wait()


def assert_one_error_line(err: str, *fragments: str) -> None:
    """The CLI's error contract: one ``trusswork: error: ...`` line holding each fragment."""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("trusswork: error: ")
    for fragment in fragments:
        assert fragment in lines[0]
