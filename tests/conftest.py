"""Fixtures the whole suite shares: real services, the fake clock, shared data.

Services are real (ARCHITECTURE.md, "Services in tests"):

* ``redis_url`` / ``redis_client`` / ``redis_prefix``: the Redis at
  ``$TRUSSWORK_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``); when it
  does not answer and a ``redis-server`` binary is on PATH, a private server
  on a free port, started once per session and killed at the end. Each test
  gets a unique key prefix; every key under it is deleted afterwards.
* ``postgres_dsn`` / ``postgres_conn``: the PostgreSQL at
  ``$TRUSSWORK_POSTGRES_DSN`` (default
  ``postgresql://postgres@127.0.0.1:5432/test``). Each test gets its own
  schema, first on the ``search_path`` of ``postgres_dsn`` and of the
  connection, dropped with everything in it afterwards.

Without the service the test is skipped with the reason, except under
``CI=true`` where it fails (:func:`helpers.missing_service`).

``fake_clock`` is a fresh :class:`trusswork.core.clock.FakeClock`;
``shared_data(name)`` is the path of a file in the shared data directory.

A test that hangs dumps every thread's stack and ends the run after
``$TRUSSWORK_TEST_TIMEOUT`` seconds (default 900; 0 disables), unless
pytest's own ``faulthandler_timeout`` is configured.
"""

from __future__ import annotations

import faulthandler
import os
import re
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pytest

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

from helpers import (  # noqa: E402
    missing_service,
    postgres_unreachable,
    private_redis,
    redis_unreachable,
    shared_path,
)

if TYPE_CHECKING:
    import psycopg
    import redis

    from trusswork.core.clock import FakeClock

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"

# ---------------------------------------------------------------- hang guard

_watchdog: dict[str, Any] = {}


def pytest_configure(config: pytest.Config) -> None:
    timeout = float(os.environ.get("TRUSSWORK_TEST_TIMEOUT", "900") or 0)
    if timeout <= 0 or float(config.getini("faulthandler_timeout") or 0) > 0:
        return
    # Capture redirects fd 2 while tests run; the dump must reach the real stderr.
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        fd = 2
    stream: IO[str] = os.fdopen(os.dup(fd), "w")
    _watchdog.update(timeout=timeout, stream=stream)


def pytest_unconfigure(config: pytest.Config) -> None:
    stream = _watchdog.pop("stream", None)
    if stream is not None:
        faulthandler.cancel_dump_traceback_later()
        stream.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    if "stream" not in _watchdog:
        return (yield)
    faulthandler.dump_traceback_later(_watchdog["timeout"], exit=True, file=_watchdog["stream"])
    try:
        return (yield)
    finally:
        faulthandler.cancel_dump_traceback_later()


# ---------------------------------------------------------------- Redis


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a Redis server that answers: the configured one or a private one."""
    try:
        import redis  # noqa: F401
    except ImportError:
        missing_service("Redis", "the redis package is not installed (extra 'redis')")
    url = os.environ.get("TRUSSWORK_REDIS_URL", DEFAULT_REDIS_URL)
    why = redis_unreachable(url)
    if why is None:
        yield url
        return
    server = ExitStack()
    try:
        private_url = server.enter_context(private_redis(tmp_path_factory.mktemp("redis")))
    except (FileNotFoundError, RuntimeError) as exc:
        missing_service(
            "Redis",
            f"nothing answers at {url} ({why}) and no private server could run ({exc}); "
            f"start Redis or set TRUSSWORK_REDIS_URL",
        )
    with server:
        yield private_url


@pytest.fixture
def redis_prefix(request: pytest.FixtureRequest) -> str:
    """A key prefix unique to this test; ``redis_client`` deletes every key under it."""
    # Only plain characters: SCAN MATCH reads [ ] * ? \\ in a parametrized test's name
    # as a pattern, and the cleanup would miss its keys.
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name[:40])
    return f"tw-test:{name}:{uuid.uuid4().hex[:12]}:"


@pytest.fixture
def redis_client(redis_url: str, redis_prefix: str) -> Iterator[redis.Redis]:
    """A redis-py client (bytes responses); keys under ``redis_prefix`` are deleted after the test.

    Write only keys that start with ``redis_prefix``: the server may be shared.
    """
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=10.0)
    try:
        yield client
    finally:
        keys = list(client.scan_iter(match=f"{redis_prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


# ---------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="session")
def postgres_server_dsn() -> str:
    """DSN of a PostgreSQL server that answers (``$TRUSSWORK_POSTGRES_DSN`` or the default)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        missing_service("PostgreSQL", "the psycopg package is not installed (extra 'postgres')")
    dsn = os.environ.get("TRUSSWORK_POSTGRES_DSN", DEFAULT_POSTGRES_DSN)
    why = postgres_unreachable(dsn)
    if why is not None:
        missing_service(
            "PostgreSQL",
            f"cannot connect to {dsn} ({why}); start PostgreSQL or set TRUSSWORK_POSTGRES_DSN",
        )
    return dsn


@pytest.fixture
def postgres_dsn(postgres_server_dsn: str) -> Iterator[str]:
    """DSN whose connections use a schema of this test's own, dropped afterwards.

    Give it to code that opens its own connections; its tables land in the schema.
    """
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    schema = f"tw_test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(postgres_server_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    options = conninfo_to_dict(postgres_server_dsn).get("options") or ""
    dsn = make_conninfo(
        postgres_server_dsn, options=f"{options} -c search_path={schema},public".strip()
    )
    try:
        yield dsn
    finally:
        with psycopg.connect(postgres_server_dsn, autocommit=True) as admin:
            # A test that leaves its own connections open would block the drop forever.
            admin.execute("SET lock_timeout = '10s'")
            admin.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
            )


@pytest.fixture
def postgres_conn(postgres_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """A psycopg 3 connection in autocommit mode, inside this test's own schema."""
    import psycopg

    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        yield conn


# ---------------------------------------------------------------- clock and data


@pytest.fixture
def fake_clock() -> FakeClock:
    """A fresh fake clock: it moves only when the test advances it or code sleeps on it."""
    from trusswork.core.clock import FakeClock

    return FakeClock()


@pytest.fixture
def shared_data() -> Callable[[str], Path]:
    """``shared_data(name)`` -> path of ``name`` in the shared data directory (skips if absent)."""
    return shared_path
