"""trusswork.tsdb against what a user would otherwise store and query series with.

The reference data set is :func:`trusswork.tsdb.synthetic.node_exporter_series`:
node_exporter-style counters, gauges and constant series of 4 hosts over 2
hours, scraped every 15 s with a few milliseconds of jitter, plus the same at
1 s. Each series is one unit (one chunk for us, one compressed frame for the
peers), so every side pays the same per-series costs.

Groups (``impl`` names in brackets; ours is ``trusswork``):

- ``codec-encode``: compress every series of the set [``zstd`` level 3 over
  the raw int64 timestamp and float64 value arrays, ``zstd-delta`` level 3
  over numpy first differences of both (the value's bits as int64)].
- ``codec-decode``: decompress every series back to numpy arrays [the same
  peers; ``zstd-delta`` also undoes the differences with ``np.cumsum``].

- ``ingest-batched``: store batches of 100 000 samples (1 000 series x 100
  scrapes, numpy arrays) durably [``sqlite3``: ``executemany`` into a
  ``(series, ts, value)`` table in WAL mode with ``synchronous=NORMAL``, one
  transaction per batch; ``duckdb``: the same rows appended from Arrow].
  Ours is :meth:`TSDB.append_batch` with series refs and the WAL in
  group-commit mode. ``extra_info["msamples_per_s"]`` is the issue's >= 2 M/s.
- ``query-rate-sum``: ``sum by (mode) (rate(node_cpu_seconds_total[5m]))``
  as a range query over one day at a 1 minute step, on 1 000 CPU counters
  scraped every 15 s (quick: 250), read from on-disk blocks [``duckdb`` over
  a Parquet file of the same samples: per step and series the first and
  last sample of the 5 minute window, their slope, summed per mode; no
  extrapolation or counter-reset handling, so the peer does less work].

``extra_info`` of the codec groups carries ``bytes_per_sample`` (whole set),
``bytes_per_sample_nonconstant`` (the set without its constant series) and
``msamples_per_s`` measured on the same data; the codec tests hold the
compressed sizes, this file the speed ratios.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from trusswork.tsdb import TSDB, Engine, codec
from trusswork.tsdb.synthetic import NodeSeries, node_exporter_series

CODEC_IMPLS = ["trusswork", "zstd", "zstd-delta"]
ZSTD_LEVEL = 3


@dataclass(frozen=True)
class DataSet:
    series: list[NodeSeries]
    samples: int
    nonconstant: list[bool]


@pytest.fixture(scope="module")
def data(scaled: Callable[[int, int], int]) -> DataSet:
    hosts = scaled(4, 2)
    series = list(node_exporter_series(hosts, hours=2.0, interval_ms=15_000, seed=7))
    series += list(node_exporter_series(hosts, hours=2.0, interval_ms=1_000, seed=8))
    return DataSet(
        series,
        sum(len(s.ts) for s in series),
        [s.kind != "constant" for s in series],
    )


def _zstd(bench: Any, group: str, impl: str) -> Any:
    try:
        import zstandard
    except ImportError as exc:  # pragma: no cover - zstandard is a dependency
        bench.missing(group, impl, f"cannot import zstandard: {exc}")
    return zstandard


def _delta(s: NodeSeries) -> bytes:
    dt = np.diff(s.ts, prepend=np.int64(0))
    dv = np.diff(s.values.view(np.int64), prepend=np.int64(0))
    return dt.tobytes() + dv.tobytes()


def _undelta(raw: bytes, n: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    both = np.frombuffer(raw, dtype=np.int64)
    return np.cumsum(both[:n]), np.cumsum(both[n:]).view(np.float64)


def _encoder(bench: Any, group: str, impl: str) -> Callable[[NodeSeries], bytes]:
    if impl == "trusswork":
        return lambda s: codec.encode(s.ts, s.values)
    compressor = _zstd(bench, group, impl).ZstdCompressor(level=ZSTD_LEVEL)
    if impl == "zstd":
        return lambda s: compressor.compress(s.ts.tobytes() + s.values.tobytes())
    return lambda s: compressor.compress(_delta(s))


def _decoder(bench: Any, group: str, impl: str) -> Callable[[bytes, int], Any]:
    if impl == "trusswork":
        return lambda blob, n: codec.decode(blob)
    decompressor = _zstd(bench, group, impl).ZstdDecompressor()
    if impl == "zstd":

        def raw(blob: bytes, n: int) -> Any:
            both = decompressor.decompress(blob)
            return np.frombuffer(both, np.int64, n), np.frombuffer(both, np.float64, n, 8 * n)

        return raw
    return lambda blob, n: _undelta(decompressor.decompress(blob), n)


def _sizes(data: DataSet, blobs: list[bytes]) -> dict[str, float]:
    nonconstant = [len(b) for b, keep in zip(blobs, data.nonconstant, strict=True) if keep]
    samples_nc = sum(
        len(s.ts) for s, keep in zip(data.series, data.nonconstant, strict=True) if keep
    )
    return {
        "bytes_per_sample": round(sum(map(len, blobs)) / data.samples, 4),
        "bytes_per_sample_nonconstant": round(sum(nonconstant) / samples_nc, 4),
    }


def _rate(samples: int, run: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return round(samples / best / 1e6, 1)


@pytest.mark.parametrize("impl", CODEC_IMPLS)
def test_codec_encode(bench: Any, data: DataSet, impl: str) -> None:
    group = "codec-encode"
    encode = _encoder(bench, group, impl)
    blobs = [encode(s) for s in data.series]

    def run() -> int:
        return sum(len(encode(s)) for s in data.series)

    total = bench(
        group,
        impl,
        run,
        samples=data.samples,
        msamples_per_s=_rate(data.samples, run),
        **_sizes(data, blobs),
    )
    assert total == sum(map(len, blobs))


@pytest.mark.parametrize("impl", CODEC_IMPLS)
def test_codec_decode(bench: Any, data: DataSet, impl: str) -> None:
    group = "codec-decode"
    blobs = [_encoder(bench, group, impl)(s) for s in data.series]
    decode = _decoder(bench, group, impl)
    sizes = [len(s.ts) for s in data.series]
    for blob, s in zip(blobs[:50], data.series[:50], strict=False):
        ts, values = decode(blob, len(s.ts))
        assert np.array_equal(ts, s.ts)
        assert np.array_equal(values.view(np.uint64), s.values.view(np.uint64))

    def run() -> int:
        return sum(len(decode(blob, n)[0]) for blob, n in zip(blobs, sizes, strict=True))

    total = bench(
        group,
        impl,
        run,
        samples=data.samples,
        msamples_per_s=_rate(data.samples, run),
        **_sizes(data, blobs),
    )
    assert total == data.samples


# ---------------------------------------------------------------- ingest

INGEST_IMPLS = ["trusswork", "sqlite3", "duckdb"]
INGEST_SERIES = 1_000
INGEST_SCRAPES = 100


class _Batches:
    """Successive batches of new samples: each call moves on by INGEST_SCRAPES scrapes."""

    def __init__(self) -> None:
        rng = np.random.default_rng(3)
        self.refs = np.repeat(np.arange(INGEST_SERIES, dtype=np.uint32), INGEST_SCRAPES)
        self.offsets = np.tile(np.arange(INGEST_SCRAPES, dtype=np.int64) * 15_000, INGEST_SERIES)
        self.values = np.round(rng.random(INGEST_SERIES * INGEST_SCRAPES) * 1e4, 2)
        self.start = 1_700_000_000_000

    def next(self) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        ts = self.offsets + self.start
        self.start += INGEST_SCRAPES * 15_000
        return self.refs, ts, self.values


def _ingest_target(bench: Any, impl: str, path: Path) -> Iterator[Callable[[], int]]:
    batches = _Batches()
    if impl == "trusswork":
        with TSDB(path / "db", fsync="group", background=False) as db:
            refs = np.array(
                [db.series_ref("bench_metric", {"series": str(i)}) for i in range(INGEST_SERIES)],
                np.uint32,
            )

            def ours() -> int:
                r, ts, values = batches.next()
                return db.append_batch(refs[r], ts, values)

            yield ours
        return
    if impl == "sqlite3":
        conn = sqlite3.connect(path / "bench.sqlite3")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE samples (series INTEGER, ts INTEGER, value REAL)")

        def lite() -> int:
            r, ts, values = batches.next()
            with conn:
                conn.executemany(
                    "INSERT INTO samples VALUES (?, ?, ?)",
                    zip(r.tolist(), ts.tolist(), values.tolist(), strict=True),
                )
            return len(ts)

        yield lite
        conn.close()
        return
    try:
        import duckdb
        import pyarrow as pa
    except ImportError as exc:
        bench.missing("ingest-batched", impl, f"cannot import duckdb: {exc}")
    con = duckdb.connect(str(path / "bench.duckdb"))
    con.execute("CREATE TABLE samples (series UINTEGER, ts BIGINT, value DOUBLE)")

    def duck() -> int:
        r, ts, values = batches.next()
        batch = pa.table({"series": r, "ts": ts, "value": values})
        con.register("batch", batch)
        con.execute("INSERT INTO samples SELECT * FROM batch")
        con.unregister("batch")
        return len(ts)

    yield duck
    con.close()


@pytest.mark.parametrize("impl", INGEST_IMPLS)
def test_ingest_batched(bench: Any, tmp_path: Path, impl: str) -> None:
    group = "ingest-batched"
    target = _ingest_target(bench, impl, tmp_path)
    run = next(target)
    assert run() == INGEST_SERIES * INGEST_SCRAPES
    rate = _rate(INGEST_SERIES * INGEST_SCRAPES, run)
    stored = bench(
        group, impl, run, samples_per_batch=INGEST_SERIES * INGEST_SCRAPES, msamples_per_s=rate
    )
    assert stored == INGEST_SERIES * INGEST_SCRAPES
    for _ in target:  # close
        pass


# ---------------------------------------------------------------- query

QUERY_IMPLS = ["trusswork", "duckdb"]
QUERY = "sum by (mode) (rate(node_cpu_seconds_total[5m]))"
DAY_MS = 86_400_000
STEP_MS = 60_000
MODES = ("idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user")


@dataclass(frozen=True)
class CpuDay:
    path: Path
    start: int
    end: int
    series: int


@pytest.fixture(scope="module")
def cpu_day(tmp_path_factory: pytest.TempPathFactory, scaled: Callable[[int, int], int]) -> CpuDay:
    """One day of node_cpu_seconds_total: a TSDB with it in blocks, and a Parquet file."""
    series = scaled(1_000, 250)
    path = tmp_path_factory.mktemp("cpu-day")
    rng = np.random.default_rng(11)
    start = 1_700_000_000_000 - 1_700_000_000_000 % DAY_MS
    n = DAY_MS // 15_000
    ts = start + np.arange(n, dtype=np.int64) * 15_000 + rng.geometric(0.55, n) - 1
    rows_series, rows_mode, rows_ts, rows_value = [], [], [], []
    with TSDB(path / "db", fsync="never", background=False) as db:
        for i in range(series):
            mode = MODES[i % len(MODES)]
            rate = rng.uniform(0.0, 0.5)
            values = (
                np.round(
                    rng.uniform(1e4, 1e6) * 100 + np.cumsum(rng.normal(rate * 1500, 40, n).clip(0))
                )
                / 100
            )
            db.append_many(
                "node_cpu_seconds_total",
                {"instance": f"host-{i // 64:03d}:9100", "cpu": str(i // 8 % 8), "mode": mode},
                ts,
                values,
            )
            rows_series.append(np.full(n, i, np.int32))
            rows_mode.append(np.full(n, MODES.index(mode), np.int8))
            rows_ts.append(ts)
            rows_value.append(values)
        db.flush()
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "series": np.concatenate(rows_series),
            "mode": pa.DictionaryArray.from_arrays(np.concatenate(rows_mode), pa.array(MODES)),
            "ts": np.concatenate(rows_ts),
            "value": np.concatenate(rows_value),
        }
    )
    pq.write_table(table, path / "cpu.parquet")
    return CpuDay(path, start, start + DAY_MS - 1, series)


_DUCKDB_RATE = """
WITH steps AS (SELECT unnest(range(?::BIGINT, ?::BIGINT + 1, ?::BIGINT)) AS t),
windows AS (
    SELECT s.t, d.series, any_value(d.mode) AS mode,
           arg_min(d.value, d.ts) AS first_v, arg_max(d.value, d.ts) AS last_v,
           min(d.ts) AS first_ts, max(d.ts) AS last_ts
    FROM steps s JOIN read_parquet(?) d ON d.ts > s.t - 300000 AND d.ts <= s.t
    GROUP BY s.t, d.series
    HAVING count(*) >= 2
)
SELECT t, mode, sum((last_v - first_v) / ((last_ts - first_ts) / 1000.0)) AS rate
FROM windows GROUP BY t, mode ORDER BY t, mode
"""


@pytest.mark.parametrize("impl", QUERY_IMPLS)
def test_query_rate_sum(bench: Any, cpu_day: CpuDay, impl: str) -> None:
    group = "query-rate-sum"
    start, end = cpu_day.start + 3_600_000, cpu_day.end
    if impl == "trusswork":
        with TSDB(cpu_day.path / "db", background=False) as db:
            engine = Engine(db)

            def ours() -> int:
                result = engine.range(QUERY, start, end, STEP_MS)
                return sum(len(s.ts) for s in result.series)

            points = bench(
                group, impl, ours, series=cpu_day.series, steps=(end - start) // STEP_MS + 1
            )
    else:
        try:
            import duckdb
        except ImportError as exc:
            bench.missing(group, impl, f"cannot import duckdb: {exc}")
        con = duckdb.connect()
        parquet = str(cpu_day.path / "cpu.parquet")

        def duck() -> int:
            return len(con.execute(_DUCKDB_RATE, [start, end, STEP_MS, parquet]).fetchall())

        points = bench(group, impl, duck, series=cpu_day.series, steps=(end - start) // STEP_MS + 1)
        con.close()
    modes_present = len({MODES[i % len(MODES)] for i in range(cpu_day.series)})
    assert points == modes_present * ((end - start) // STEP_MS + 1)
