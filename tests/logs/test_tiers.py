"""Hot/cold tiers: old partitions move to zstd Parquet and queries span both."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from trusswork.logs import LogStore

DAY_MS = 86_400_000
BASE = 1_700_000_000_000 - 1_700_000_000_000 % DAY_MS
NOW = (BASE + 3 * DAY_MS + DAY_MS // 2) / 1000  # seconds: half a day after the last window


def lines(day: int, n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        t = BASE + day * DAY_MS + i * 7_000
        stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(t / 1000))
        out.append(
            f'10.1.{i % 9}.{i % 31} - - [{stamp}] "{rng.choice(["GET", "POST"])} /item/{i % 50}'
            f' HTTP/1.1" {rng.choice([200, 200, 404, 500])} {rng.randrange(200, 9000)} "-"'
            f' "agent/{i % 4}"'
        )
    return out


QUERIES = [
    "*",
    "POST status=500",
    '"GET /item/7"',
    "status>=404 | stats count, avg(bytes) by status",
    "item NOT status=200 | stats count by clientip | sort -count, clientip | head 5",
    "* | stats count by method, status",
]


def run_all(store: LogStore) -> list[list[dict[str, object]]]:
    return [store.query(q, now=NOW).to_pylist() for q in QUERIES]


def make_store(path: Path, **options: object) -> LogStore:
    return LogStore(path, background=False, clock=lambda: NOW, **options)  # type: ignore[arg-type]


def test_partitions_move_to_parquet_and_queries_give_the_same_rows(tmp_path: Path) -> None:
    raw_bytes = 0
    with make_store(tmp_path / "s", hot_max_age="1d") as store:
        for day in range(3):
            batch = lines(day, 3000, day)
            raw_bytes += sum(len(x) + 1 for x in batch)
            store.ingest(batch, format="combined")
        store.refresh()
        before = run_all(store)
        report = store.tier()
        assert report["moved"] == 2 and report["rows_moved"] == 6000  # day 2 ended < 1 d ago
        assert store.stats()["partitions"] == 1
        cold = store.cold_partitions()
        assert [c.start_ms for c in cold] == [BASE, BASE + DAY_MS]
        assert all(Path(c.path).suffix == ".parquet" for c in cold)
        assert run_all(store) == before
        plan = store.query("POST", now=NOW).plan
        assert plan.cold_read == 2 and plan.cold_total == 2
        # Cold files are zstd Parquet: far smaller than the text they hold (these
        # are small files; bench_logs.py measures the ratio at scale).
        cold_raw = raw_bytes * 2 / 3
        assert sum(c.size_bytes for c in cold) < 0.35 * cold_raw
    with make_store(tmp_path / "s") as store:  # reopened: both tiers still there
        assert run_all(store) == before


def test_time_ranges_skip_cold_files(tmp_path: Path) -> None:
    with make_store(tmp_path / "s", hot_max_age="1d") as store:
        for day in range(3):
            store.ingest(lines(day, 200, day), format="combined")
        store.tier()
        lo = (BASE + DAY_MS) // 1000
        result = store.query(f"* earliest={lo} latest={lo + 86_400}", now=NOW)
        assert len(result) == 200
        assert result.plan.cold_read == 1


def test_late_lines_for_a_cold_window_are_queried_with_it(tmp_path: Path) -> None:
    with make_store(tmp_path / "s", hot_max_age="1d") as store:
        store.ingest(lines(0, 100, 1), format="combined")
        store.tier()
        store.ingest(lines(0, 10, 2), format="combined")  # late, same window
        assert len(store.query("*", now=NOW)) == 110
        store.tier()
        assert len(store.cold_partitions()) == 2
        assert len(store.query("*", now=NOW)) == 110


def test_hot_bytes_limit_and_cold_retention(tmp_path: Path) -> None:
    with make_store(tmp_path / "s", hot_max_bytes=1, cold_max_age="3d") as store:
        for day in range(3):
            store.ingest(lines(day, 300, day), format="combined")
        store.tier()
        # Only the newest partition stays hot; the oldest cold one is past 3 days.
        assert store.stats()["partitions"] == 1
        assert [c.start_ms for c in store.cold_partitions()] == [BASE + DAY_MS]
        assert len(store.query("*", now=NOW)) == 600
    with make_store(tmp_path / "t", cold_max_bytes=1, hot_max_age=0.001) as store:
        store.ingest(lines(0, 50, 0), format="combined")
        assert store.tier()["deleted"] == 1
        assert len(store.query("*", now=NOW)) == 0


def test_crash_after_the_cold_file_drops_the_hot_copy_on_reopen(tmp_path: Path) -> None:
    from trusswork.logs._tiers import partition_table, write_cold

    with make_store(tmp_path / "s") as store:
        store.ingest(lines(0, 120, 3), format="combined")
        (segments,) = store.snapshot().values()
        # The cold file is written and renamed, then the "process dies".
        write_cold(
            partition_table(segments),
            BASE,
            [s.meta.segment_id for s in segments],
            store.cold_filesystem,
            store.cold_path,
        )
    with make_store(tmp_path / "s") as store:
        assert store.stats()["segments"] == 0
        assert len(store.query("*", now=NOW)) == 120


def test_damaged_cold_file_is_reported_and_skipped(tmp_path: Path) -> None:
    with make_store(tmp_path / "s", hot_max_age="1d") as store:
        for day in range(3):
            store.ingest(lines(day, 100, day), format="combined")
        store.tier()
        victim = store.cold_partitions()[0].path
    Path(victim).write_bytes(Path(victim).read_bytes()[:-100])
    with make_store(tmp_path / "s") as store:
        assert [str(p) for p, _ in store.corrupt_segments] == [victim]
        result = store.query("*", now=NOW)
        assert len(result) == 200
        assert any(victim in w for w in result.warnings)


def test_cold_tier_on_another_pyarrow_filesystem(tmp_path: Path) -> None:
    (tmp_path / "bucket").mkdir()
    remote = pafs.SubTreeFileSystem(str(tmp_path / "bucket"), pafs.LocalFileSystem())
    with make_store(
        tmp_path / "s", hot_max_age="1d", cold_filesystem=remote, cold_path="logs/cold"
    ) as store:
        for day in range(2):
            store.ingest(lines(day, 100, day), format="combined")
        store.tier()
        assert len(store.query("*", now=NOW)) == 200
    assert sorted(p.name for p in (tmp_path / "bucket" / "logs" / "cold").iterdir()) == [
        f"{BASE}.parquet",
        f"{BASE + DAY_MS}.parquet",
    ]
    with pytest.raises(Exception, match="cold_path"):
        LogStore(tmp_path / "x", cold_filesystem=remote)


def test_json_fields_survive_the_move(tmp_path: Path) -> None:
    with make_store(tmp_path / "s", hot_max_age="1d") as store:
        rows = [
            json.dumps({"ts": BASE / 1000 + i, "msg": f"m{i}", "n": i, "f": i / 4, "b": i % 2 == 0})
            for i in range(50)
        ]
        store.ingest(rows, format="json", timestamp_field="ts")
        before = store.query("n>=10 | sort n | table n, f, b, msg", now=NOW).to_pylist()
        store.tier()
        assert store.query("n>=10 | sort n | table n, f, b, msg", now=NOW).to_pylist() == before
        assert before[0] == {"n": 10, "f": 2.5, "b": "true", "msg": "m10"}
