"""The audit log: bounded in memory and on disk, queryable, newest first."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from trusswork.core.clock import FakeClock
from trusswork.core.errors import InvalidInput
from trusswork.ratelimit._audit import AuditLog


def test_ring_buffer_keeps_only_the_newest_entries(fake_clock: FakeClock) -> None:
    log = AuditLog(3, clock=fake_clock)
    for index in range(5):
        log.record_denial("api", f"k{index}", remaining=0, retry_after=1.5)
        fake_clock.advance(1)
    assert len(log) == 3
    assert [entry.key for entry in log.query()] == ["k4", "k3", "k2"]


def test_entries_carry_what_an_auditor_asks(fake_clock: FakeClock) -> None:
    log = AuditLog(clock=fake_clock)
    denial = log.record_denial("api", b"10.0.0.1", remaining=2, retry_after=0.25, shadow=True)
    assert denial.to_dict() == {
        "time": fake_clock.time(),
        "policy": "api",
        "key": "10.0.0.1",
        "decision": "denied",
        "remaining": 2,
        "shadow": True,
        "retry_after": 0.25,
        "detail": None,
    }
    never = log.record_denial("api", 7, remaining=0, retry_after=math.inf)
    assert never.retry_after is None and never.key == "7"
    change = log.record_change("api", "updated", old={"burst": 1}, new={"burst": 2})
    assert change.detail == {"old": {"burst": 1}, "new": {"burst": 2}}
    assert change.remaining is None


def test_query_filters_combine(fake_clock: FakeClock) -> None:
    log = AuditLog(clock=fake_clock)
    start = fake_clock.time()
    log.record_change("a", "created", old=None, new={"x": 1})
    for index in range(6):
        fake_clock.advance(10)
        log.record_denial("a" if index % 2 else "b", f"k{index % 3}", remaining=0, retry_after=1)
    fake_clock.advance(10)
    log.record_change("b", "deleted", old={"x": 1}, new=None)

    assert [e.decision for e in log.query(policy="b")] == ["deleted", "denied", "denied", "denied"]
    assert [(e.policy, e.key) for e in log.query(key="k1")] == [("b", "k1"), ("a", "k1")]
    assert [e.decision for e in log.query(decision="changed")] == ["deleted", "created"]
    assert len(log.query(decision="denied")) == 6
    window = log.query(since=start + 20, until=start + 40)
    assert [e.time - start for e in window] == [30.0, 20.0]
    assert [e.key for e in log.query(decision="denied", limit=2)] == ["k2", "k1"]
    assert log.query(limit=0) == []
    assert [e.time - start for e in log.query(policy="a", key="k0")] == [40.0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"decision": "maybe"}, "decision filter 'maybe'"),
        ({"limit": -1}, "limit must be an int >= 0"),
        ({"limit": True}, "limit must be an int >= 0"),
    ],
)
def test_bad_queries_say_what_is_wrong(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        AuditLog().query(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_entries": 0}, "max_entries"),
        ({"max_bytes": 10}, "max_bytes"),
        ({"backups": -1}, "backups"),
        ({"flush_interval": math.nan}, "flush_interval"),
    ],
)
def test_bad_bounds_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        AuditLog(**kwargs)  # type: ignore[arg-type]


def test_a_policy_change_must_be_a_known_kind() -> None:
    with pytest.raises(InvalidInput, match="'created', 'updated' or 'deleted'"):
        AuditLog().record_change("a", "denied", old=None, new=None)


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_entries_go_to_a_json_lines_file(tmp_path: Path, fake_clock: FakeClock) -> None:
    path = tmp_path / "audit" / "log.jsonl"
    with AuditLog(path=path, clock=fake_clock) as log:
        log.record_denial("api", "k", remaining=1, retry_after=2.0)
        log.record_change("api", "created", old=None, new={"burst": 3})
    lines = _lines(path)
    assert [line["decision"] for line in lines] == ["denied", "created"]
    assert lines[0]["key"] == "k" and lines[1]["detail"] == {"old": None, "new": {"burst": 3}}
    # a second log on the same file appends
    with AuditLog(path=path, clock=fake_clock) as log:
        log.record_denial("api", "k2", remaining=0, retry_after=1.0)
    assert [line["key"] for line in _lines(path)] == ["k", "", "k2"]


def test_flush_makes_lines_readable_before_close(tmp_path: Path, fake_clock: FakeClock) -> None:
    path = tmp_path / "log.jsonl"
    log = AuditLog(path=path, clock=fake_clock, flush_interval=3600)
    log.record_denial("api", "k", remaining=0, retry_after=1.0)
    log.flush()
    assert [line["key"] for line in _lines(path)] == ["k"]
    log.close()
    log.record_denial("api", "after", remaining=0, retry_after=1.0)  # memory only now
    assert log.query(limit=1)[0].key == "after"
    assert len(_lines(path)) == 1


def test_file_rotates_by_size_and_keeps_a_bounded_number_of_backups(
    tmp_path: Path, fake_clock: FakeClock
) -> None:
    path = tmp_path / "log.jsonl"
    with AuditLog(path=path, max_bytes=1024, backups=2, clock=fake_clock) as log:
        for index in range(200):
            log.record_denial("api", f"key-{index:04d}", remaining=0, retry_after=1.0)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["log.jsonl", "log.jsonl.1", "log.jsonl.2"]
    for name in files:
        assert 0 < (tmp_path / name).stat().st_size <= 1024
    current, older, oldest = (_lines(tmp_path / n) for n in files)
    assert current[-1]["key"] == "key-0199"
    # the files hold consecutive runs of entries, newest in the unsuffixed file
    keys = [line["key"] for line in oldest + older + current]
    assert keys == [f"key-{i:04d}" for i in range(200 - len(keys), 200)]


def test_without_backups_the_file_is_truncated(tmp_path: Path, fake_clock: FakeClock) -> None:
    path = tmp_path / "log.jsonl"
    with AuditLog(path=path, max_bytes=1024, backups=0, clock=fake_clock) as log:
        for index in range(100):
            log.record_denial("api", f"key-{index:04d}", remaining=0, retry_after=1.0)
    assert [p.name for p in tmp_path.iterdir()] == ["log.jsonl"]
    assert path.stat().st_size <= 1024
    assert _lines(path)[-1]["key"] == "key-0099"
