"""The log store when things go wrong: failed writes, a second opener, races
with tiering, reopening with other settings, fields named like built-ins."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import trusswork.logs._store as store_module
from trusswork.core.errors import InvalidInput, Unavailable
from trusswork.logs import LogStore

DAY_MS = 86_400_000
BASE = 1_700_000_000_000 - 1_700_000_000_000 % DAY_MS
NOW = (BASE + 3 * DAY_MS) / 1000


def stamp(ms: int) -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


def test_a_refresh_failing_halfway_leaves_no_segment_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LogStore(tmp_path / "s", background=False)
    store.ingest([f"{stamp(BASE)} day-one", f"{stamp(BASE + DAY_MS)} day-two"])
    real = store_module.IndexWriter.write_segment
    calls = {"n": 0}

    def disk_full_on_the_second(self: object, directory: Path) -> object:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        return real(self, directory)  # type: ignore[arg-type]

    monkeypatch.setattr(store_module.IndexWriter, "write_segment", disk_full_on_the_second)
    with pytest.raises(Unavailable, match="No space left"):
        store.refresh()
    assert store.stats()["segments"] == 0 and store.stats()["buffered"] == 2
    monkeypatch.setattr(store_module.IndexWriter, "write_segment", real)
    assert store.refresh() == 2
    assert len(store.query("day")) == 2
    store.close()
    with LogStore(tmp_path / "s", background=False, merge_factor=2) as again:
        assert len(again.query("day")) == 2
        again.merge()


def test_ingest_stays_acknowledged_when_its_back_pressure_refresh_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with LogStore(tmp_path / "s", background=False, max_buffer_lines=2) as store:

        def broken(self: object, directory: Path) -> object:
            raise OSError(5, "I/O error")

        monkeypatch.setattr(store_module.IndexWriter, "write_segment", broken)
        result = store.ingest(["a", "b", "c"])
        assert result.accepted == 3  # logged: a retry would store them twice
        assert isinstance(store.background_error, Unavailable)
        store.ingest(["d", "e", "f"])
        store.ingest(["g", "h"])
        with pytest.raises(Unavailable, match="nothing was stored"):
            store.ingest(["i"])  # the buffer is at its hard cap (4 x max_buffer_lines)
        monkeypatch.undo()
        assert sorted(r["_raw"] for r in store.query("*").to_pylist()) == list("abcdefgh")


def test_a_second_opener_is_refused_before_it_touches_anything(tmp_path: Path) -> None:
    with LogStore(tmp_path / "s", background=False) as store:
        store.ingest(["x"])
        store.refresh()
        in_flight = store.path / "hot" / "123" / "seg-unfinished.tmp"
        in_flight.mkdir(parents=True)
        with pytest.raises(Unavailable, match="open in another process"):
            LogStore(tmp_path / "s", background=False)
        assert in_flight.exists(), "the second opener deleted the first one's work"
    # Closed: the next opener cleans the leftover up.
    with LogStore(tmp_path / "s", background=False):
        assert not in_flight.exists()


def test_the_partition_width_is_fixed_when_the_store_is_created(tmp_path: Path) -> None:
    with LogStore(tmp_path / "s", partition="1h", background=False) as store:
        store.ingest([f"{stamp(BASE + 14 * 3_600_000)} afternoon"])
    with LogStore(tmp_path / "s", background=False) as store:  # no partition= given
        assert store.partition_ms == 3_600_000
        lo = (BASE + 14 * 3_600_000) // 1000
        assert len(store.query(f"afternoon earliest={lo}")) == 1
    with pytest.raises(InvalidInput, match="created with partitions of 3600s"):
        LogStore(tmp_path / "s", partition="1d", background=False)
    assert json.loads((tmp_path / "s" / "store.json").read_text())["partition_ms"] == 3_600_000


def test_a_field_named_id_is_kept_as_the_users_own(tmp_path: Path) -> None:
    line = json.dumps({"ts": stamp(BASE), "_id": "abc123", "msg": "hello"})
    with LogStore(tmp_path / "s", background=False, clock=lambda: NOW, hot_max_age="1d") as store:
        store.ingest([line], format="json")
        (row,) = store.query("hello").to_pylist()
        assert row["extracted__id"] == "abc123"
        store.tier()
        assert store.cold_partitions()
        (row,) = store.query("extracted__id=abc123").to_pylist()
        assert row["msg"] == "hello"


def test_head_reads_a_window_that_is_both_cold_and_hot(tmp_path: Path) -> None:
    with LogStore(tmp_path / "s", background=False, clock=lambda: NOW, hot_max_age="1d") as store:
        store.ingest([f"{stamp(BASE + 23 * 3_600_000)} late evening"])
        store.tier()  # the window goes cold
        store.ingest([f"{stamp(BASE + 3_600_000)} early morning"])  # a late line, same window
        (row,) = store.query("* | head 1").to_pylist()
        assert row["_raw"].endswith("late evening"), "head must see the newest row of the window"


def test_close_releases_files_and_maps(tmp_path: Path) -> None:
    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    with LogStore(tmp_path / "s", background=False) as store:
        for i in range(5):
            store.ingest([f"{stamp(BASE + i * DAY_MS)} line {i}"])
            store.refresh()
    before = open_fds()
    kept = []
    for _ in range(5):
        store = LogStore(tmp_path / "s", background=False)
        assert len(store.query("line")) == 5
        store.close()
        kept.append(store)  # still referenced: only close() can have freed them
    assert open_fds() <= before + 2
