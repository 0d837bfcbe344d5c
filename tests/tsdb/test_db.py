"""The database object: appends vs a dict oracle, policies, limits, blocks, reopening.

Round trips compare :meth:`TSDB.select` with a plain ``{labels: {ts: value}}``
oracle, before and after reopening and across flushes into blocks.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import examples
from trusswork.core.clock import FakeClock
from trusswork.core.errors import Conflict, InvalidInput, LimitExceeded, NotFound
from trusswork.tsdb._db import TSDB
from trusswork.tsdb._head import DuplicateSample, OutOfOrderSample
from trusswork.tsdb._index import CardinalityLimitExceeded
from trusswork.tsdb._series import STALE_NAN, Labels, Matcher, labels_of

OpenDB = Callable[..., TSDB]
Oracle = dict[Labels, dict[int, float]]
ALL = -(1 << 62), 1 << 62
SERIES: list[tuple[str, dict[str, str]]] = [
    ("up", {"job": "api"}),
    ("up", {"job": "db", "zone": "eu"}),
    ("cpu", {"host": "a"}),
]


def bits(values: npt.ArrayLike) -> list[int]:
    out: list[int] = np.asarray(values, dtype=np.float64).view(np.uint64).tolist()
    return out


def key(metric: str, labels: dict[str, str]) -> Labels:
    return labels_of({"__name__": metric, **labels})


def contents(
    db: TSDB, matchers: list[Matcher] | None = None
) -> dict[Labels, list[tuple[int, int]]]:
    """Everything select returns, as {labels: [(ts, value bits)]}."""
    return {
        s.labels: list(zip(s.ts.tolist(), bits(s.values), strict=True))
        for s in db.select(matchers or [Matcher("__name__", "=~", ".+")], *ALL)
    }


def expected(oracle: Oracle) -> dict[Labels, list[tuple[int, int]]]:
    return {
        labels: [(t, bits([v])[0]) for t, v in sorted(samples.items())]
        for labels, samples in oracle.items()
        if samples
    }


calls = st.lists(
    st.tuples(
        st.sampled_from(["append", "append_many", "append_batch", "flush"]),
        st.lists(
            st.tuples(
                st.integers(0, 2),
                st.integers(0, 300),
                st.one_of(st.floats(allow_nan=False), st.just(STALE_NAN)),
            ),
            min_size=1,
            max_size=12,
        ),
    ),
    max_size=10,
)


@settings(max_examples=examples(60), deadline=None)
@given(calls)
def test_round_trip_against_a_dict(ops: list[tuple[str, list[tuple[int, int, float]]]]) -> None:
    """Last-write-wins with a wide window accepts everything: select equals the oracle."""
    oracle: Oracle = {key(m, lab): {} for m, lab in SERIES}
    with tempfile.TemporaryDirectory() as tmp:
        options = {
            "background": False,
            "duplicates": "last-write-wins",
            "out_of_order_window_ms": 10**9,
            "chunk_samples": 4,
        }
        base = 0  # samples go after everything flushed so far
        with TSDB(tmp, **options) as db:  # type: ignore[arg-type]
            for kind, samples in ops:
                if kind == "flush":
                    db.flush()
                    base = max((t for s in oracle.values() for t in s), default=-1) + 1
                    continue
                if kind == "append":
                    for which, t, v in samples:
                        db.append(*SERIES[which], base + t, v)
                        oracle[key(*SERIES[which])][base + t] = v
                elif kind == "append_many":
                    which = samples[0][0]
                    db.append_many(
                        *SERIES[which],
                        [base + t for _, t, _ in samples],
                        [v for _, _, v in samples],
                    )
                    for _, t, v in samples:
                        oracle[key(*SERIES[which])][base + t] = v
                else:
                    mappings = [{"__name__": SERIES[w][0], **SERIES[w][1]} for w, _, _ in samples]
                    db.append_batch(
                        mappings, [base + t for _, t, _ in samples], [v for _, _, v in samples]
                    )
                    for which, t, v in samples:
                        oracle[key(*SERIES[which])][base + t] = v
            assert contents(db) == expected(oracle)
        with TSDB(tmp, **options) as db:  # type: ignore[arg-type]
            assert contents(db) == expected(oracle)


def check_matchers(db: TSDB, *, flush: bool) -> None:
    for i, (metric, labels) in enumerate(SERIES):
        db.append(metric, labels, 100, float(i))
    if flush:
        db.flush()
    db.append("up", {"job": "batch"}, 200, 9.0)
    assert set(contents(db, [Matcher("zone", "=", "")])) == {
        key("up", {"job": "api"}),
        key("cpu", {"host": "a"}),
        key("up", {"job": "batch"}),
    }
    assert set(contents(db, [Matcher("__name__", "=", "up"), Matcher("job", "!~", "a.*")])) == {
        key("up", {"job": "db", "zone": "eu"}),
        key("up", {"job": "batch"}),
    }
    assert db.label_values("job") == ["api", "batch", "db"]
    assert db.label_values("job", [Matcher("zone", "=", "eu")]) == ["db"]
    assert db.label_names([Matcher("__name__", "=", "cpu")]) == ["__name__", "host"]
    assert db.select([Matcher("job", "=", "api")], 101, 500) == []


@settings(max_examples=examples(60), deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 2), st.integers(0, 30), st.sampled_from([0.0, 1.0])), max_size=40
    ),
    st.integers(0, 10),
)
def test_default_policy_against_a_model(samples: list[tuple[int, int, float]], window: int) -> None:
    """Reject mode: each append is stored, ignored (same value) or refused, as the model says."""
    oracle: Oracle = {key(m, lab): {} for m, lab in SERIES}
    with (
        tempfile.TemporaryDirectory() as tmp,
        TSDB(tmp, background=False, out_of_order_window_ms=window, chunk_samples=3) as db,
    ):
        for which, t, v in samples:
            stored = oracle[key(*SERIES[which])]
            newest = max(stored, default=None)
            if stored.get(t) == v:
                outcome = "ok"  # a retry
            elif newest is not None and t < newest - window:
                outcome = "out-of-order"
            elif t in stored:
                outcome = "duplicate"
            else:
                outcome = "ok"
                stored[t] = v
            if outcome == "ok":
                db.append(*SERIES[which], t, v)
            else:
                error = DuplicateSample if outcome == "duplicate" else OutOfOrderSample
                with pytest.raises(error):
                    db.append(*SERIES[which], t, v)
        assert contents(db) == expected(oracle)


@pytest.mark.parametrize("flush", [False, True], ids=["head", "blocks"])
def test_matchers_follow_prometheus_semantics(open_db: OpenDB, flush: bool) -> None:
    check_matchers(open_db(), flush=flush)  # with flush, "batch" is in the head, the rest not


def test_out_of_order_samples_are_rejected_and_counted(open_db: OpenDB) -> None:
    db = open_db()
    db.append("up", {}, 1000, 1.0)
    with pytest.raises(OutOfOrderSample) as info:
        db.append("up", {}, 999, 2.0)
    assert isinstance(info.value, InvalidInput)
    # A batch keeps what it can and says what it dropped.
    with pytest.raises(OutOfOrderSample) as info:
        db.append_many("up", {}, [500, 1001, 1002], [0.0, 2.0, 3.0])
    assert (info.value.accepted, info.value.rejected) == (2, 1)
    assert contents(db)[key("up", {})] == [
        (1000, bits([1.0])[0]),
        (1001, bits([2.0])[0]),
        (1002, bits([3.0])[0]),
    ]
    assert db.stats().out_of_order_rejected == 2


def test_out_of_order_window(open_db: OpenDB) -> None:
    db = open_db(out_of_order_window_ms=100)
    db.append("up", {}, 1000, 1.0)
    db.append("up", {}, 950, 0.5)
    with pytest.raises(OutOfOrderSample):
        db.append("up", {}, 899, 0.0)
    series = db.select([Matcher("__name__", "=", "up")], *ALL)[0]
    assert series.ts.tolist() == [950, 1000]


def test_duplicate_policy(open_db: OpenDB, tmp_path: Path) -> None:
    db = open_db()
    db.append("up", {}, 1000, 1.0)
    db.append("up", {}, 1000, 1.0)  # a retry: no-op
    with pytest.raises(DuplicateSample) as info:
        db.append("up", {}, 1000, 2.0)
    assert isinstance(info.value, Conflict)
    assert db.stats().duplicates_rejected == 1
    assert db.select([], *ALL)[0].values.tolist() == [1.0]

    lww = open_db(tmp_path / "lww", duplicates="last-write-wins")
    lww.append("up", {}, 1000, 1.0)
    lww.append("up", {}, 1000, 2.0)
    assert lww.select([], *ALL)[0].values.tolist() == [2.0]


def test_cardinality_limits_store_nothing(open_db: OpenDB) -> None:
    db = open_db(max_series=3, max_series_per_metric=2)
    db.append("up", {"i": "1"}, 1, 1.0)
    db.append("up", {"i": "2"}, 1, 1.0)
    with pytest.raises(CardinalityLimitExceeded) as info:
        db.append("up", {"i": "3"}, 1, 1.0)
    assert isinstance(info.value, LimitExceeded)
    assert (info.value.limit, info.value.metric) == ("max_series_per_metric", "up")
    db.append("cpu", {}, 1, 1.0)
    with pytest.raises(CardinalityLimitExceeded, match="max_series="):
        db.append_batch([{"__name__": "up", "i": "1"}, {"__name__": "mem"}], [2, 2], [1.0, 1.0])
    # The existing series of the rejected batch got nothing either.
    assert [s.ts.tolist() for s in db.select([Matcher("i", "=", "1")], *ALL)] == [[1]]
    assert db.label_values("__name__") == ["cpu", "up"]
    db.append("up", {"i": "1"}, 2, 2.0)  # existing series are not limited
    assert db.stats().series_limit_rejected == 2


def test_cardinality_report(open_db: OpenDB) -> None:
    db = open_db()
    for i in range(5):
        db.append("http_requests", {"path": f"/p{i}", "code": "200"}, 1, 1.0)
    db.append("up", {"code": "200"}, 1, 1.0)
    report = db.cardinality(top=2)
    assert report.total_series == 6
    assert report.top_metrics == [("http_requests", 5), ("up", 1)]
    assert report.top_label_names == [("path", 5), ("__name__", 2)]
    assert report.top_label_pairs[0] == (("code", "200"), 6)


@pytest.mark.parametrize(
    ("metric", "labels"),
    [
        ("1bad", {}),
        ("ok", {"bad-name": "x"}),
        ("ok", {"__reserved": "x"}),
        ("ok", {"__name__": "other"}),
        ("ok", {"v": "x" * 33}),
        ("ok", {"v": "\ud800"}),
    ],
)
def test_invalid_names_and_values(open_db: OpenDB, metric: str, labels: dict[str, str]) -> None:
    db = open_db(max_label_value_length=32)
    with pytest.raises(InvalidInput):
        db.append(metric, labels, 1, 1.0)
    assert db.stats().series == 0


def test_bad_arguments(open_db: OpenDB) -> None:
    db = open_db()
    with pytest.raises(InvalidInput):
        db.append_many("up", {}, [1, 2], [1.0])
    with pytest.raises(NotFound):
        db.append_batch(np.array([42], np.uint32), [1], [1.0])
    with pytest.raises(InvalidInput):
        open_db(Path(tempfile.mkdtemp()), duplicates="maybe")


def test_append_batch_with_refs(open_db: OpenDB, tmp_path: Path) -> None:
    db = open_db(tmp_path / "db", chunk_samples=64)
    refs = np.array([db.series_ref("m", {"i": str(i)}) for i in range(50)], np.uint32)
    for k in range(4):
        ts = np.tile(np.arange(k * 100, (k + 1) * 100, dtype=np.int64), len(refs))
        values = ts * 10.0 + np.repeat(np.arange(len(refs)), 100)
        assert db.append_batch(np.repeat(refs, 100), ts, values) == 5000
    db.close()
    db = open_db(tmp_path / "db")
    got = db.select([Matcher("__name__", "=", "m")], *ALL)
    assert len(got) == 50
    for series in got:
        i = int(dict(series.labels)["i"])
        assert series.ts.tolist() == list(range(400))
        assert series.values.tolist() == [t * 10.0 + i for t in range(400)]


def test_a_batch_stores_what_it_can_and_reports_the_rest(open_db: OpenDB) -> None:
    db = open_db()
    a, b = db.series_ref("up", {"i": "a"}), db.series_ref("up", {"i": "b"})
    db.append_batch(np.array([a, b], np.uint32), [10, 10], [1.0, 1.0])
    with pytest.raises(OutOfOrderSample) as info:
        db.append_batch(np.array([a, b, b, a], np.uint32), [5, 20, 10, 11], [0.0, 2.0, 1.0, 3.0])
    # a@5 is out of order; b@10 repeats a stored sample (no-op); a@11 and b@20 are new.
    assert (info.value.accepted, info.value.rejected) == (2, 1)
    got = {dict(s.labels)["i"]: s.ts.tolist() for s in db.select([], *ALL)}
    assert got == {"a": [10, 11], "b": [10, 20]}
    assert db.stats().samples_appended == 4


def test_refs_of_dropped_series_are_refused(open_db: OpenDB) -> None:
    db = open_db()
    idle = db.series_ref("idle", {})
    db.append("busy", {}, 1, 1.0)
    for t in (2, 3):  # a series without samples for two cuts leaves the head
        db.flush()
        db.append("busy", {}, t, 1.0)
    with pytest.raises(NotFound, match="series_ref"):
        db.append_batch(np.array([idle], np.uint32), [10], [1.0])
    again = db.series_ref("idle", {})
    assert again != idle
    db.append_batch(np.array([again], np.uint32), [10], [1.0])
    assert db.label_values("__name__") == ["busy", "idle"]


def test_series_written_between_cuts_keep_their_refs(open_db: OpenDB) -> None:
    db = open_db()
    ref = db.series_ref("busy", {"job": "x"})
    for t in (1, 2, 3, 4):  # written before every cut: never idle, never dropped
        db.append_batch(np.array([ref], np.uint32), [t], [float(t)])
        db.flush()
    db.append_batch(np.array([ref], np.uint32), [5], [5.0])
    assert db.cardinality().total_series == 1
    (found,) = db.select([Matcher("__name__", "=", "busy")], 0, 10)
    assert found.values.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_batch_argument_errors_store_nothing(open_db: OpenDB) -> None:
    db = open_db()
    with pytest.raises(InvalidInput):
        db.append_batch(np.array([0, 0]), [1], [1.0])
    with pytest.raises(InvalidInput):
        db.append_batch(np.array([-1]), [1], [1.0])
    with pytest.raises(InvalidInput):
        db.append_batch([{"job": "no-metric"}], [1], [1.0])
    assert db.stats().series == 0 and db.stats().wal_next_lsn == 1


def test_flush_makes_a_block_and_closes_the_past(open_db: OpenDB, tmp_path: Path) -> None:
    db = open_db(tmp_path / "db")
    db.append_many("up", {}, [1, 2, 3], [1.0, 2.0, 3.0])
    meta = db.flush()
    assert meta is not None and (meta.mint, meta.maxt, meta.num_samples) == (1, 3, 3)
    assert db.flush() is None  # nothing left
    with pytest.raises(OutOfOrderSample):
        db.append("cpu", {}, 3, 1.0)  # would belong to the block
    db.append("up", {}, 4, 4.0)
    assert db.stats().blocks == 1
    db.close()
    db = open_db(tmp_path / "db")
    assert db.select([], *ALL)[0].ts.tolist() == [1, 2, 3, 4]
    with pytest.raises(OutOfOrderSample):
        db.append("cpu", {}, 2, 1.0)


def test_wal_is_truncated_after_cuts_and_reopen_keeps_everything(
    open_db: OpenDB, tmp_path: Path
) -> None:
    path = tmp_path / "db"
    db = open_db(path, wal_segment_bytes=4096)
    oracle: Oracle = {}
    for k in range(12):
        ts = np.arange(k * 100, (k + 1) * 100, dtype=np.int64)
        for host in ("a", "b"):
            db.append_many("cpu", {"host": host}, ts, ts * 2.0)
            oracle.setdefault(key("cpu", {"host": host}), {}).update(
                dict(zip(ts.tolist(), (ts * 2.0).tolist(), strict=True))
            )
        if k % 3 == 2:
            db.flush()
    segments = len(list((path / "wal").glob("*.wal")))
    assert segments <= 3, "segments before the last cut should be gone"
    db.close()
    db = open_db(path)
    assert contents(db) == expected(oracle)


def test_background_thread_cuts_blocks(open_db: OpenDB, tmp_path: Path) -> None:
    db = open_db(
        tmp_path / "db", background=True, background_interval=0.01, block_range_ms=1000, rollups=()
    )
    ts = np.arange(0, 6000, 10, dtype=np.int64)
    db.append_many("up", {}, ts, ts.astype(np.float64))
    deadline = time.monotonic() + 10
    while db.stats().head_min_time != 5000 and time.monotonic() < deadline:
        time.sleep(0.01)
    stats = db.stats()
    # Cut until the head spans less than 1.5 block ranges: [0, 5000) is in blocks.
    assert stats.head_lower_bound == 5000 and stats.head_min_time == 5000
    assert stats.blocks >= 1 and stats.background_error is None
    got = db.select([], *ALL)[0]
    assert got.ts.tolist() == ts.tolist()


def test_readers_and_writers_while_the_background_cuts(open_db: OpenDB) -> None:
    """Threads append and query while blocks are cut and compacted; nothing is lost."""
    db = open_db(background=True, background_interval=0.002, block_range_ms=200, rollups=())
    errors: list[BaseException] = []
    # Writers keep step (samples more than half a block range behind the newest
    # one fall before the head's lower bound once a cut happens).
    step = threading.Barrier(2)

    def writer(host: str) -> None:
        try:
            for k in range(60):
                step.wait(timeout=10)
                ts = np.arange(k * 50, (k + 1) * 50, 5, dtype=np.int64)
                db.append_many("cpu", {"host": host}, ts, ts * 1.0)
                time.sleep(0.002)  # let cuts land between calls
        except BaseException as exc:
            errors.append(exc)

    def reader() -> None:
        try:
            for _ in range(40):
                for series in db.select([Matcher("__name__", "=", "cpu")], *ALL):
                    # Whatever a reader sees is a prefix of what was written, without gaps.
                    assert series.ts.tolist() == list(range(0, len(series.ts) * 5, 5))
                    assert np.array_equal(series.values, series.ts * 1.0)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(h,)) for h in "ab"]
    threads.append(threading.Thread(target=reader))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    deadline = time.monotonic() + 10
    while (db.stats().head_min_time or 0) < 2800 and time.monotonic() < deadline:
        time.sleep(0.01)  # the head ends up spanning less than 1.5 block ranges
    stats = db.stats()
    assert stats.blocks >= 1 and stats.head_min_time == 2800 and stats.background_error is None
    for series in db.select([Matcher("__name__", "=", "cpu")], *ALL):
        assert series.ts.tolist() == list(range(0, 3000, 5))


def test_a_torn_wal_tail_loses_only_the_unfinished_call(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with TSDB(path, background=False) as db:
        db.append_many("up", {}, [1, 2], [1.0, 2.0])
        db.append_many("up", {}, [3, 4], [3.0, 4.0])
    segment = sorted((path / "wal").glob("*.wal"))[-1]
    with open(segment, "r+b") as file:  # a crash half-way through the last record
        file.truncate(segment.stat().st_size - 5)
    with TSDB(path, background=False) as db:
        assert db.select([], *ALL)[0].ts.tolist() == [1, 2]
        db.append("up", {}, 3, 30.0)
        assert db.select([], *ALL)[0].values.tolist() == [1.0, 2.0, 30.0]


def test_a_damaged_block_is_reported_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with TSDB(path, background=False) as db:
        db.append("up", {}, 1, 1.0)
        first = db.flush()
        db.append("up", {}, 2, 2.0)
        db.flush()
        db.append("up", {}, 3, 3.0)
    assert first is not None
    index = path / "blocks" / first.id / "index"
    data = bytearray(index.read_bytes())
    data[len(data) // 2] ^= 0xFF
    index.write_bytes(bytes(data))
    with TSDB(path, background=False) as db:
        assert [p.name for p, _ in db.corrupt_blocks] == [first.id]
        assert db.stats().corrupt_blocks == 1
        assert db.select([], *ALL)[0].ts.tolist() == [2, 3]


def test_compaction_keeps_every_sample(open_db: OpenDB) -> None:
    db = open_db(block_range_ms=1000, rollups=())
    ts = np.arange(0, 9000, 50, dtype=np.int64)
    db.append_many("up", {"job": "a"}, ts, ts * 1.5)
    db._maybe_cut()  # the background thread's step, run here
    before = db.stats().blocks
    assert before >= 6
    db.compact()
    assert db.stats().blocks < before
    assert db.select([], *ALL)[0].ts.tolist() == ts.tolist()


def test_raw_retention_falls_back_to_rollups(open_db: OpenDB) -> None:
    clock = FakeClock(wall=20.0)  # now = 20 000 ms
    db = open_db(
        block_range_ms=1000,
        rollups=(100,),
        raw_retention_ms=10_000,
        retention_ms=100_000,
        clock=clock,
    )
    ts = np.arange(0, 10_000, 10, dtype=np.int64)
    db.append_many("up", {}, ts, ts.astype(np.float64))
    db._maybe_cut()  # blocks of [0, 9000) (merged by compact); the head keeps the rest
    db.compact()
    stats = db.stats()
    assert stats.rollup_blocks >= 1
    # Raw blocks older than 10 000 ms are gone; the rollup's "last" per 100 ms window remains.
    got = db.select([], *ALL)[0]
    old = got.ts < 7000
    assert got.ts[old].tolist() == list(range(99, 7000, 100))
    assert got.values[old].tolist() == [float(t - 9) for t in range(99, 7000, 100)]
    assert got.ts[got.ts >= 9000].tolist() == list(range(9000, 10_000, 10))
    assert got.ts[(got.ts >= 7000) & (got.ts < 9000)].tolist() == list(range(7099, 9000, 100))
    maxima = db.select_rollup([], 0, 999, 100, "max")[0]
    assert maxima.values.tolist() == [float(t - 9) for t in range(99, 1000, 100)]
    counts = db.select_rollup([], 0, 999, 100, "count")[0]
    assert counts.values.tolist() == [10.0] * 10
    with pytest.raises(InvalidInput):
        db.select_rollup([], 0, 999, 5, "max")


def test_closed_database_refuses_work(open_db: OpenDB) -> None:
    db = open_db()
    db.close()
    db.close()
    with pytest.raises(InvalidInput, match="closed"):
        db.append("up", {}, 1, 1.0)
    with pytest.raises(InvalidInput, match="closed"):
        db.select([], *ALL)


def test_one_process_at_a_time(open_db: OpenDB, tmp_path: Path) -> None:
    open_db(tmp_path / "db")
    with pytest.raises(Conflict):
        TSDB(tmp_path / "db", background=False)
