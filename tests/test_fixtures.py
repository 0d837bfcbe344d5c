"""The test infrastructure itself: the crash helper, the service fixtures, skip-or-fail."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import (
    REPO_ROOT,
    free_port,
    in_ci,
    missing_service,
    postgres_unreachable,
    private_redis,
    redis_unreachable,
    shared_dir,
    shared_path,
)
from helpers.crash import Checkpoint, ChildFailed, CrashTimeout, run_and_kill

# ---------------------------------------------------------------- crash helper
# Targets run in a spawned child, so they live at module level (picklable).


def append_lines(path: str, count: int, checkpoint: Checkpoint) -> None:
    with open(path, "a", encoding="utf-8") as file:
        for number in range(count):
            file.write(f"line {number}\n")
            file.flush()
            os.fsync(file.fileno())
            checkpoint("line")
    checkpoint("done")


def append_forever(path: str, checkpoint: Checkpoint) -> None:
    with open(path, "a", encoding="utf-8") as file:
        number = 0
        while True:
            file.write(f"line {number}\n")
            file.flush()
            checkpoint("line")
            number += 1
            time.sleep(0.001)


def hang(checkpoint: Checkpoint) -> None:
    checkpoint("started")
    time.sleep(3600)


def fail(message: str, checkpoint: Checkpoint) -> None:
    checkpoint("started")
    raise ValueError(message)


def read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


@pytest.mark.parametrize(("kill_at", "lines"), [("line", 1), ("line#3", 3), ("line#10", 10)])
def test_kill_at_nth_checkpoint_stops_the_child_exactly_there(
    tmp_path: Path, kill_at: str, lines: int
) -> None:
    path = tmp_path / "log.txt"
    result = run_and_kill(append_lines, str(path), 10, kill_at=kill_at)
    assert result.killed
    assert result.signal == signal.SIGKILL
    assert result.exitcode is None
    assert result.killed_at == kill_at
    assert result.checkpoints == ("line",) * lines
    assert read_lines(path) == [f"line {n}" for n in range(lines)]


def test_child_without_kill_point_runs_to_completion(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    result = run_and_kill(append_lines, str(path), 4)
    assert not result.killed
    assert result.signal is None
    assert result.exitcode == 0
    assert result.checkpoints == ("line", "line", "line", "line", "done")
    assert read_lines(path) == [f"line {n}" for n in range(4)]


def test_kill_after_kills_a_running_child_between_whole_writes(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    result = run_and_kill(append_forever, str(path), kill_after=0.5, timeout=20.0)
    assert result.killed
    assert result.killed_at is None
    lines = read_lines(path)
    # Each line is one write(); the kill lands between writes or after a write
    # whose checkpoint was not yet reported.
    assert lines == [f"line {n}" for n in range(len(lines))]
    assert len(result.checkpoints) in (len(lines), len(lines) - 1)
    assert len(lines) > 0


def test_hanging_child_is_killed_at_timeout_and_reported() -> None:
    start = time.monotonic()
    with pytest.raises(
        CrashTimeout, match=r"neither reached 'never' nor ended within 5\.0 s"
    ) as info:
        run_and_kill(hang, kill_at="never", timeout=5.0)
    assert time.monotonic() - start < 30.0
    assert info.value.checkpoints == ("started",)
    with pytest.raises(ProcessLookupError):
        os.kill(info.value.pid, 0)  # killed and reaped: no orphan, no zombie


def test_exception_in_child_is_raised_with_its_traceback() -> None:
    with pytest.raises(ChildFailed, match=r"(?s)ValueError: disk on fire"):
        run_and_kill(fail, "disk on fire", kill_at="started#2")


def test_kill_point_never_reached_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ChildFailed, match=r"without reaching checkpoint 'line#11'"):
        run_and_kill(append_lines, str(tmp_path / "log.txt"), 10, kill_at="line#11")


# ---------------------------------------------------------------- skip or fail


@pytest.mark.parametrize("value", ["true", "TRUE", "1"])
def test_missing_service_fails_under_ci(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    assert in_ci()
    with pytest.raises(pytest.fail.Exception, match=r"Redis is not available: down.*CI=true"):
        missing_service("Redis", "down")


@pytest.mark.parametrize("value", [None, "", "false", "0"])
def test_missing_service_skips_outside_ci(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert not in_ci()
    with pytest.raises(pytest.skip.Exception, match=r"PostgreSQL is not available: down"):
        missing_service("PostgreSQL", "down")


def test_shared_dir_defaults_to_the_sibling_of_the_repository(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TRUSSWORK_SHARED_DIR", raising=False)
    assert (REPO_ROOT / "pyproject.toml").is_file()
    assert shared_dir() == REPO_ROOT.parent / "shared"


def test_shared_data_resolves_names_in_the_shared_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, shared_data: Callable[[str], Path]
) -> None:
    monkeypatch.setenv("TRUSSWORK_SHARED_DIR", str(tmp_path))
    (tmp_path / "corpus.txt").write_text("words\n")
    assert shared_data("corpus.txt") == tmp_path / "corpus.txt"
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"shared data 'absent.bin'"):
        shared_path("absent.bin")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"TRUSSWORK_SHARED_DIR"):
        shared_path("absent.bin")


# ---------------------------------------------------------------- services


def test_unreachable_servers_are_reported_with_a_reason() -> None:
    port = free_port()
    assert redis_unreachable(f"redis://127.0.0.1:{port}/0")
    assert postgres_unreachable(f"postgresql://postgres@127.0.0.1:{port}/test")


def test_private_redis_serves_and_is_killed(tmp_path: Path) -> None:
    try:
        with private_redis(tmp_path) as url:
            assert redis_unreachable(url) is None
    except FileNotFoundError:
        missing_service("redis-server", "no redis-server binary on PATH")
    assert redis_unreachable(url) is not None


# Keys and schemas the service tests created, checked once their fixtures are torn down.
_leftovers: dict[str, Any] = {}


@pytest.fixture(scope="module")
def cleanup_is_checked(redis_url: str, postgres_server_dsn: str) -> Iterator[None]:
    yield
    import psycopg
    import redis

    if "redis_prefix" in _leftovers:
        with redis.Redis.from_url(redis_url) as client:
            assert list(client.scan_iter(match=f"{_leftovers['redis_prefix']}*")) == []
    if "schema" in _leftovers:
        with psycopg.connect(postgres_server_dsn) as conn:
            row = conn.execute(
                "SELECT count(*) FROM information_schema.schemata WHERE schema_name = %s",
                (_leftovers["schema"],),
            ).fetchone()
            assert row == (0,)


def test_redis_client_talks_to_a_real_server(
    cleanup_is_checked: None, redis_client: Any, redis_prefix: str
) -> None:
    key = f"{redis_prefix}counter"
    assert redis_client.incr(key) == 1
    assert redis_client.incrby(key, 41) == 42
    redis_client.hset(f"{redis_prefix}hash", mapping={"a": "1"})
    assert redis_client.get(key) == b"42"
    _leftovers["redis_prefix"] = redis_prefix


def test_postgres_conn_works_in_a_private_schema(
    cleanup_is_checked: None, postgres_conn: Any, postgres_dsn: str
) -> None:
    import psycopg

    (schema,) = postgres_conn.execute("SELECT current_schema()").fetchone()
    assert schema.startswith("tw_test_")
    postgres_conn.execute("CREATE TABLE events (id int PRIMARY KEY, body text)")
    postgres_conn.execute("INSERT INTO events VALUES (1, 'hello')")
    # Code that opens its own connections from the DSN lands in the same schema.
    with psycopg.connect(postgres_dsn) as other:
        assert other.execute("SELECT body FROM events").fetchall() == [("hello",)]
    _leftovers["schema"] = schema


def test_fake_clock_moves_only_when_advanced(fake_clock: Any) -> None:
    from trusswork.core.clock import FakeClock

    assert isinstance(fake_clock, FakeClock)
    before = fake_clock.monotonic()
    time.sleep(0.01)
    assert fake_clock.monotonic() == before
    fake_clock.advance(2.5)
    assert fake_clock.monotonic() == before + 2.5
