"""The log store: durable ingest, partitions, refresh, merges, recovery, damage."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from trusswork.core.errors import InvalidInput, Unavailable
from trusswork.logs._batch import split_fields
from trusswork.logs._layout import positive_duration as parse_duration
from trusswork.logs._store import LogStore

DAY_MS = 86_400_000


def crash(store: LogStore) -> None:
    """What dying does to an open store: the log is left as is, the lock released,
    nothing buffered is indexed."""
    store._stop.set()
    store._wal.close()
    store._closed = True
    store._lock_file.close()


def stored_lines(store: LogStore) -> list[str]:
    """Every line in the store's segments, read back from the index (refreshing first)."""
    texts: list[str] = []
    for segments in store.snapshot().values():
        for segment in segments:
            texts.extend(segment.texts(range(segment.meta.doc_count)))
    return texts


def json_line(i: int, t_ms: int, **fields: object) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t_ms / 1000))
    return json.dumps({"ts": f"{stamp}.{t_ms % 1000:03d}Z", "msg": f"event {i}", **fields})


def test_ingest_counts_and_makes_lines_searchable(tmp_path: Path) -> None:
    with LogStore(tmp_path / "s", background=False) as store:
        result = store.ingest(
            ['{"msg": "a", "n": 1}', "level=info msg=hello", "", "plain text line"],
            format="auto",
        )
        assert (result.accepted, result.rejected) == (3, 0)
        bad = store.ingest(['{"msg": 1}', "not json", '{"x": 2}'], format="json")
        assert (bad.accepted, bad.rejected) == (2, 1)
        assert bad.errors[0].line == 2
        assert sorted(stored_lines(store)) == sorted(
            [
                '{"msg": "a", "n": 1}',
                "level=info msg=hello",
                "plain text line",
                '{"msg": 1}',
                '{"x": 2}',
            ]
        )


def test_lines_are_partitioned_by_time_window(tmp_path: Path) -> None:
    base = 1_700_000_000_000 - 1_700_000_000_000 % DAY_MS
    lines = [json_line(i, base + i * DAY_MS // 2) for i in range(6)]  # three days
    with LogStore(tmp_path / "s", background=False) as store:
        store.ingest(lines, format="json")
        parts = store.snapshot()
        assert sorted(parts) == [base, base + DAY_MS, base + 2 * DAY_MS]
        for start, segments in parts.items():
            for segment in segments:
                times = segment.numeric_column("_time")
                assert times is not None
                assert ((times >= start) & (times < start + DAY_MS)).all()
        assert store.stats()["partitions"] == 3


def test_lines_without_timestamp_get_ingest_time(tmp_path: Path) -> None:
    with LogStore(tmp_path / "s", background=False, clock=lambda: 1_234_567.0) as store:
        store.ingest(["no time here"])
        (segments,) = store.snapshot().values()
        times = segments[0].numeric_column("_time")
        assert times is not None and times.tolist() == [1_234_567_000.0]


def test_fields_are_indexed_as_keywords_and_numbers() -> None:
    keywords, numbers = split_fields(
        {
            "status": 500,
            "lat": 0.25,
            "ok": True,
            "s": "404",
            "tags": ["a"],
            "none": None,
            "a=b": "x",
            "source": "mine",
            "big": 2.0,
        }
    )
    assert keywords == {
        "status": "500",
        "lat": "0.25",
        "ok": "true",
        "s": "404",
        "tags": '["a"]',
        "a_b": "x",
        "extracted_source": "mine",
        "big": "2",
    }
    assert numbers == {"status": 500.0, "lat": 0.25, "s": 404.0, "big": 2.0}


def test_reopen_keeps_everything_and_ids_keep_counting(tmp_path: Path) -> None:
    with LogStore(tmp_path / "s", background=False) as store:
        store.ingest([f"first {i}" for i in range(50)])
    with LogStore(tmp_path / "s", background=False) as store:
        store.ingest([f"second {i}" for i in range(50)])
        lines = stored_lines(store)
        ids = [i for s in store.snapshot().values() for seg in s for i in seg.doc_ids.tolist()]
    assert sorted(lines) == sorted(
        [f"first {i}" for i in range(50)] + [f"second {i}" for i in range(50)]
    )
    assert sorted(ids) == list(range(100))


def test_unindexed_lines_are_replayed_from_the_log(tmp_path: Path) -> None:
    store = LogStore(tmp_path / "s", background=False)
    store.ingest([f"line {i}" for i in range(10)])
    store.refresh()
    store.ingest([f"late {i}" for i in range(5)])
    # Simulate a crash: the buffer is lost, only the log remains.
    crash(store)
    with LogStore(tmp_path / "s", background=False) as again:
        assert Counter(stored_lines(again)) == Counter(
            [f"line {i}" for i in range(10)] + [f"late {i}" for i in range(5)]
        )


def test_crash_between_segments_and_checkpoint_indexes_nothing_twice(tmp_path: Path) -> None:
    base = 1_700_000_000_000 - 1_700_000_000_000 % DAY_MS
    store = LogStore(tmp_path / "s", background=False)
    store.ingest([json_line(i, base + (i % 2) * DAY_MS) for i in range(20)], format="json")
    # Write the segments of the refresh but "die" before the checkpoint.
    docs = list(store._buffer)
    store._write_partitions(docs)
    crash(store)
    with LogStore(tmp_path / "s", background=False) as again:
        lines = stored_lines(again)
    assert len(lines) == 20 and len(set(lines)) == 20


def test_back_pressure_bounds_the_buffer(tmp_path: Path) -> None:
    with LogStore(tmp_path / "s", background=False, max_buffer_lines=100) as store:
        for batch in range(10):
            store.ingest([f"b{batch} line {i}" for i in range(60)])
            assert store.stats()["buffered"] < 100
        assert len(stored_lines(store)) == 600


def test_background_refresh_makes_lines_searchable_within_the_interval(tmp_path: Path) -> None:
    with LogStore(tmp_path / "s", refresh_interval=0.1) as store:
        store.ingest(["hello background"])
        deadline = time.monotonic() + 10
        while store.stats()["segments"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store.stats()["segments"] == 1
        assert store.stats()["buffered"] == 0


def test_merges_keep_every_line_once(tmp_path: Path) -> None:
    with LogStore(tmp_path / "s", background=False, merge_factor=3) as store:
        for batch in range(9):
            store.ingest([f"m{batch} {i}" for i in range(7)])
            store.refresh()
        assert store.stats()["segments"] == 9
        assert store.merge() >= 3
        assert store.stats()["segments"] < 9
        lines = stored_lines(store)
    assert Counter(lines) == Counter(f"m{b} {i}" for b in range(9) for i in range(7))
    with LogStore(tmp_path / "s", background=False) as again:
        assert len(stored_lines(again)) == 63


def test_damaged_segment_is_reported_and_skipped(tmp_path: Path) -> None:
    base = 1_700_000_000_000 - 1_700_000_000_000 % DAY_MS
    with LogStore(tmp_path / "s", background=False) as store:
        store.ingest([json_line(i, base + (i % 2) * DAY_MS) for i in range(20)], format="json")
        store.refresh()
        victim = next(iter(store.segments())).meta.path
    data = bytearray((victim / "postings.tw").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (victim / "postings.tw").write_bytes(bytes(data))
    with LogStore(tmp_path / "s", background=False) as again:
        assert [p for p, _ in again.corrupt_segments] == [victim]
        assert "postings.tw" in again.corrupt_segments[0][1]  # names the damaged file
        assert len(stored_lines(again)) == 10


def test_source_positions_are_stored_with_their_lines(tmp_path: Path) -> None:
    with LogStore(tmp_path / "s", background=False) as store:
        store.ingest(["a", "b"], source="/var/log/x", position={"offset": 4, "inode": 9})
        assert store.source_position("/var/log/x") == {"offset": 4, "inode": 9}
        store.refresh()
        store.ingest(["c"], source="/var/log/x", position={"offset": 6, "inode": 9})
    with LogStore(tmp_path / "s", background=False) as store:
        assert store.source_position("/var/log/x") == {"offset": 6, "inode": 9}
        assert store.source_position("other") is None


def test_bad_configuration_and_closed_store(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="partition"):
        LogStore(tmp_path / "a", partition="soon")
    with pytest.raises(InvalidInput, match="regex"), LogStore(tmp_path / "b") as store:
        store.ingest(["x"], format="regex")
    store = LogStore(tmp_path / "c", background=False)
    store.close()
    with pytest.raises(Unavailable, match="closed"):
        store.ingest(["x"])
    assert parse_duration("1h") == 3600 and parse_duration(90) == 90
    with pytest.raises(InvalidInput):
        parse_duration("-1h")


def test_garbage_input_is_counted_never_fatal(tmp_path: Path) -> None:
    rng = random.Random(7)
    garbage = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))) for _ in range(200)]
    with LogStore(tmp_path / "s", background=False, max_line_length=100) as store:
        result = store.ingest(garbage)
        assert result.accepted + result.rejected >= 150  # blank pieces are skipped
        assert result.invalid_utf8 > 0 and result.truncated > 0
        assert len(stored_lines(store)) == result.accepted


WRITER = textwrap.dedent(
    """
    import sys
    from trusswork.logs._store import LogStore

    store = LogStore(sys.argv[1], refresh_interval=0.05, max_buffer_lines=500)
    run, n = sys.argv[2], 0
    while True:
        batch = [f"r{run}-line-{n + i} status={200 + (n + i) % 5}" for i in range(37)]
        store.ingest(batch, format="logfmt")
        n += len(batch)
        print(n, flush=True)
    """
)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kill_9_mid_stream_loses_no_acknowledged_line_and_duplicates_none(
    tmp_path: Path, seed: int
) -> None:
    path = tmp_path / "store"
    rng = random.Random(seed)
    acked: dict[int, int] = {}
    for run in range(2):  # kill, restart and kill again on the same store
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(run)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the first acknowledgement, however slow the start
        last = int(first) if first else 0
        deadline = time.monotonic() + rng.uniform(0.3, 1.5)
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            last = int(line)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        assert last > 0, "the writer acknowledged nothing"
        acked[run] = last
    with LogStore(path, background=False) as store:
        lines = stored_lines(store)
    names = Counter(line.split()[0] for line in lines)
    assert not [k for k, c in names.items() if c > 1], "a line was indexed twice"
    for run, count in acked.items():
        missing = [n for n in range(count) if f"r{run}-line-{n}" not in names]
        assert not missing, f"run {run} lost acknowledged lines {missing[:5]}"
