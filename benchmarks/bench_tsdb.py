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
- ``query-rate-sum-http``: the same query over the same blocks, asked through
  the Prometheus HTTP API (``/api/v1/query_range``, one persistent
  ``http.client`` connection) [``prometheus``: Debian's ``prometheus`` server
  over the same samples backfilled with ``promtool tsdb create-blocks-from
  openmetrics``, its 2 h blocks kept uncompacted; ours is
  :func:`~trusswork.tsdb.build_app` in its own process, no background
  maintenance]. ``extra_info`` holds each side's disk bytes per sample (every
  file of the blocks, and the chunk files alone). The Prometheus run checks
  its answer against our engine's: equal to 1e-6 on a grid half a scrape
  interval off, and on the benchmark's grid everywhere except the steps whose
  window starts exactly on a sample, which Prometheus 2 counts in (its windows
  are left-closed) and Prometheus 3 and we leave out. Without ``promtool`` and
  ``prometheus`` in PATH that peer is recorded as missing (``make
  bench-prometheus`` installs the package).

``extra_info`` of the codec groups carries ``bytes_per_sample`` (whole set),
``bytes_per_sample_nonconstant`` (the set without its constant series) and
``msamples_per_s`` measured on the same data; the codec tests hold the
compressed sizes, this file the speed ratios.
"""

from __future__ import annotations

import contextlib
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
        **_sizes(data, blobs),
    )
    bench.record_rate(data.samples, "msamples_per_s", unit=1e6)
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
        **_sizes(data, blobs),
    )
    bench.record_rate(data.samples, "msamples_per_s", unit=1e6)
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
    stored = bench(group, impl, run, samples_per_batch=INGEST_SERIES * INGEST_SCRAPES)
    bench.record_rate(INGEST_SERIES * INGEST_SCRAPES, "msamples_per_s", unit=1e6)
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


# ---------------------------------------------------------------- Prometheus

HTTP_GROUP = "query-rate-sum-http"
HTTP_IMPLS = ["trusswork", "prometheus"]
#: Seconds to wait for a server to listen (Prometheus loads its blocks first).
START_TIMEOUT = 60.0
_OUR_SERVER = """
import sys

from trusswork.http import serve
from trusswork.tsdb import TSDB, build_app


def listening(port: int) -> None:
    print(f"listening on http://127.0.0.1:{port}", file=sys.stderr, flush=True)


with TSDB(sys.argv[1], background=False) as db:
    serve(build_app(db), "127.0.0.1", 0, on_listening=listening)
"""


@dataclass(frozen=True)
class Disk:
    """Bytes of the blocks holding ``samples`` samples (every file under the block dirs).

    ``chunk_bytes`` is the part in chunk files (the rest: index and metadata).
    """

    bytes: int
    chunk_bytes: int
    samples: int
    blocks: int

    @property
    def per_sample(self) -> float:
        return round(self.bytes / self.samples, 4)

    @property
    def chunks_per_sample(self) -> float:
        return round(self.chunk_bytes / self.samples, 4)


@dataclass(frozen=True)
class PromDay:
    """The ``cpu_day`` samples backfilled into a Prometheus TSDB, or why that was impossible."""

    path: Path | None
    disk: Disk | None
    backfill_s: float
    reason: str = ""


def _dir_bytes(path: Path, chunks_only: bool = False) -> int:
    """Bytes of the files under ``path`` (only ``chunks`` and ``chunks/*`` if ``chunks_only``)."""
    return sum(
        f.stat().st_size
        for f in path.rglob("*")
        if f.is_file() and (not chunks_only or "chunks" in f.relative_to(path).parts)
    )


def _our_disk(cpu_day: CpuDay) -> Disk:
    """Raw blocks of the ``cpu_day`` database as flushed (2 h blocks, nothing compacted)."""
    with TSDB(cpu_day.path / "db", background=False) as db:
        metas = [m for m in db.blocks() if m.resolution == 0]
        root = db.path / "blocks"
    return Disk(
        sum(_dir_bytes(root / m.id) for m in metas),
        sum(_dir_bytes(root / m.id, chunks_only=True) for m in metas),
        sum(m.num_samples for m in metas),
        len(metas),
    )


def _prometheus_disk(path: Path) -> Disk:
    import json

    dirs = [d for d in path.iterdir() if (d / "meta.json").is_file()]
    samples = sum(json.loads((d / "meta.json").read_text())["stats"]["numSamples"] for d in dirs)
    return Disk(
        sum(_dir_bytes(d) for d in dirs),
        sum(_dir_bytes(d, chunks_only=True) for d in dirs),
        samples,
        len(dirs),
    )


def _write_openmetrics(cpu_day: CpuDay, out: Path) -> int:
    """The Parquet copy of ``cpu_day`` as OpenMetrics text, one series after another.

    Timestamps are exact decimal seconds and values Python's shortest
    round-trip repr, which Go parses back to the same float64; returns the
    number of samples written.
    """
    import pyarrow.parquet as pq

    table = pq.read_table(cpu_day.path / "cpu.parquet", columns=["series", "ts", "value"])
    ids = table.column("series").to_numpy()
    ts = table.column("ts").to_numpy()
    values = table.column("value").to_numpy()
    n = len(ids) // cpu_day.series
    assert np.array_equal(ids[::n], np.arange(cpu_day.series))  # series are contiguous runs
    stamps = [f"{t // 1000}.{t % 1000:03d}\n" for t in ts[:n].tolist()]
    with open(out, "w", encoding="ascii") as file:
        for i in range(cpu_day.series):
            rows = slice(i * n, (i + 1) * n)
            assert np.array_equal(ts[rows], ts[:n])  # every series shares the scrape times
            prefix = (
                f'node_cpu_seconds_total{{cpu="{i // 8 % 8}",'
                f'instance="host-{i // 64:03d}:9100",mode="{MODES[i % len(MODES)]}"}} '
            )
            file.write(
                "".join(
                    f"{prefix}{v!r} {t}" for v, t in zip(values[rows].tolist(), stamps, strict=True)
                )
            )
        file.write("# EOF\n")
    return len(ids)


@pytest.fixture(scope="module")
def our_disk(cpu_day: CpuDay) -> Disk:
    return _our_disk(cpu_day)


@pytest.fixture(scope="module")
def prom_day(tmp_path_factory: pytest.TempPathFactory, cpu_day: CpuDay) -> PromDay:
    """``promtool tsdb create-blocks-from openmetrics`` over the ``cpu_day`` samples."""
    import shutil
    import subprocess

    missing = [tool for tool in ("promtool", "prometheus") if shutil.which(tool) is None]
    if missing:
        return PromDay(None, None, 0.0, f"{' and '.join(missing)} not in PATH")
    path = tmp_path_factory.mktemp("prometheus")
    source = path / "cpu.om"
    samples = _write_openmetrics(cpu_day, source)
    start = time.perf_counter()
    done = subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", "--quiet", str(source), "data"],
        cwd=path,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    elapsed = time.perf_counter() - start
    source.unlink()
    if done.returncode != 0:
        return PromDay(None, None, elapsed, f"promtool failed: {done.stderr.strip()[-500:]}")
    disk = _prometheus_disk(path / "data")
    assert disk.samples == samples, "promtool stored other samples than it was given"
    return PromDay(path / "data", disk, elapsed)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _get(conn: Any, target: str) -> tuple[int, bytes]:
    conn.request("GET", target)
    response = conn.getresponse()
    return response.status, response.read()


def _wait_ready(proc: Any, port: int, log: Path, url: str | None = None) -> int:
    """Poll until the server answers ``url`` with 200 (or, without it, logs its port)."""
    import http.client
    import re

    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        if url is None:
            found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", log.read_text())
            if found:
                return int(found.group(1))
        else:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                if _get(conn, url)[0] == 200:
                    return port
            except OSError:
                pass
            finally:
                conn.close()
        time.sleep(0.1)
    raise RuntimeError(f"server not ready after {START_TIMEOUT} s: {log.read_text()[-2000:]}")


@contextlib.contextmanager
def _server(impl: str, data: Path, work: Path) -> Iterator[int]:
    """Start the server of ``impl`` on ``data``; yield its port; stop it however the test ends."""
    import subprocess
    import sys

    log = work / f"{impl}.log"
    if impl == "trusswork":
        cmd = [sys.executable, "-c", _OUR_SERVER, str(data)]
        port = 0
    else:
        config = work / "prometheus.yml"
        config.write_text("scrape_configs: []\n")
        port = _free_port()
        cmd = [
            "prometheus",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--config.file={config}",
            "--storage.tsdb.retention.time=100y",
            # Hidden flags: keep the backfilled 2 h blocks as they are while we
            # measure (as ours stay: that server runs no background compaction).
            "--storage.tsdb.min-block-duration=2h",
            "--storage.tsdb.max-block-duration=2h",
            "--log.level=warn",
        ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=work)
    try:
        yield _wait_ready(proc, port, log, None if impl == "trusswork" else "/-/ready")
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _range_target(start: int, end: int) -> str:
    from urllib.parse import urlencode

    params = {"query": QUERY, "start": start / 1000, "end": end / 1000, "step": STEP_MS / 1000}
    return "/api/v1/query_range?" + urlencode(params)


def _by_mode(data: dict[str, Any]) -> dict[str, list[tuple[float, float]]]:
    assert data["resultType"] == "matrix"
    return {
        s["metric"]["mode"]: [(float(t), float(v)) for t, v in s["values"]] for s in data["result"]
    }


@dataclass(frozen=True)
class Agreement:
    """How two range answers compare: ``worst`` over the steps that must agree."""

    worst: float
    boundary_steps: int
    boundary_differ: int
    boundary_worst: float


def _compare(
    ours: dict[str, Any], theirs: dict[str, Any], boundary: frozenset[float] = frozenset()
) -> Agreement:
    """Assert both range answers have the same modes and steps and agree to 1e-6.

    Steps in ``boundary`` (seconds) are exempt from the value check: there a
    sample lies exactly at the window's start, which Prometheus 3 (and we)
    leave out and Prometheus 2 counts in. Their deviations are returned.
    """
    a, b = _by_mode(ours), _by_mode(theirs)
    assert sorted(a) == sorted(b)
    worst = boundary_worst = 0.0
    differ: set[float] = set()
    for mode, points in a.items():
        assert len(points) == len(b[mode]), mode
        for (t1, v1), (t2, v2) in zip(points, b[mode], strict=True):
            assert t1 == t2, (mode, t1, t2)
            deviation = abs(v1 - v2) / max(abs(v1), abs(v2), 1e-300)
            if t1 in boundary:
                boundary_worst = max(boundary_worst, deviation)
                if deviation > 1e-6:
                    differ.add(t1)
                continue
            assert deviation <= 1e-6, (mode, t1, v1, v2)
            worst = max(worst, deviation)
    return Agreement(worst, len(boundary), len(differ), boundary_worst)


def _boundary_steps(cpu_day: CpuDay, start: int, end: int) -> frozenset[float]:
    """Steps (s) whose 5 minute window starts exactly on a sample (all series share times)."""
    import pyarrow.parquet as pq

    ts = pq.read_table(cpu_day.path / "cpu.parquet", columns=["ts"]).column("ts").to_numpy()
    stamps = set(ts[: len(ts) // cpu_day.series].tolist())
    return frozenset(t / 1000 for t in range(start, end + 1, STEP_MS) if t - 300_000 in stamps)


def _check_answers(
    cpu_day: CpuDay, conn: Any, start: int, end: int, answer: dict[str, Any]
) -> tuple[Agreement, Agreement]:
    """Prometheus's answers against our engine's, on the benchmark's grid and a shifted one.

    The shifted grid (half a scrape interval later) puts no sample on a
    window boundary, so there every value must agree.
    """
    import json

    shifted = start + 7_500
    status, body = _get(conn, _range_target(shifted, end))
    assert status == 200, body[:500]
    with TSDB(cpu_day.path / "db", background=False) as db:
        engine = Engine(db)
        ours = engine.range(QUERY, start, end, STEP_MS).to_prometheus_json()
        ours_shifted = engine.range(QUERY, shifted, end, STEP_MS).to_prometheus_json()
    aligned = _compare(ours, answer, _boundary_steps(cpu_day, start, end))
    off_grid = _compare(ours_shifted, json.loads(body)["data"])
    return aligned, off_grid


@pytest.mark.parametrize("impl", HTTP_IMPLS)
def test_query_rate_sum_http(
    bench: Any,
    benchmark: Any,
    cpu_day: CpuDay,
    our_disk: Disk,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    impl: str,
) -> None:
    """The ``query-rate-sum`` query through each server's Prometheus HTTP API.

    ``extra_info`` carries both sides' disk bytes per sample when Prometheus
    is installed (ours alone otherwise); the Prometheus run also checks that
    its answer matches our engine's and that our blocks are the smaller.
    """
    import http.client
    import json

    start, end = cpu_day.start + 3_600_000, cpu_day.end
    steps = (end - start) // STEP_MS + 1
    target = _range_target(start, end)
    prom: PromDay | None = None
    if impl == "prometheus" or _has_prometheus():
        prom = request.getfixturevalue("prom_day")
    if impl == "prometheus" and (prom is None or prom.path is None):
        bench.missing(HTTP_GROUP, impl, prom.reason if prom else "prometheus not in PATH")
    info: dict[str, Any] = {
        "series": cpu_day.series,
        "steps": steps,
        "samples": our_disk.samples,
        "trusswork_disk_bytes_per_sample": our_disk.per_sample,
        "trusswork_chunk_bytes_per_sample": our_disk.chunks_per_sample,
        "trusswork_blocks": our_disk.blocks,
    }
    if prom is not None and prom.disk is not None:
        info["prometheus_disk_bytes_per_sample"] = prom.disk.per_sample
        info["prometheus_chunk_bytes_per_sample"] = prom.disk.chunks_per_sample
        info["prometheus_blocks"] = prom.disk.blocks
        info["prometheus_backfill_s"] = round(prom.backfill_s, 1)
    data = cpu_day.path / "db" if impl == "trusswork" else prom.path  # type: ignore[union-attr]
    assert data is not None
    with _server(impl, data, tmp_path) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

        def query() -> dict[str, Any]:
            status, body = _get(conn, target)
            assert status == 200, body[:500]
            answer: dict[str, Any] = json.loads(body)["data"]
            return answer

        answer = bench(HTTP_GROUP, impl, query, **info)
        checks = _check_answers(cpu_day, conn, start, end, answer) if impl == "prometheus" else None
        conn.close()
    points = sum(len(s["values"]) for s in answer["result"])
    assert points == len({MODES[i % len(MODES)] for i in range(cpu_day.series)}) * steps
    with capsys.disabled():
        line = f"\n{HTTP_GROUP}: {cpu_day.series} series, {our_disk.samples} samples;"
        line += f" disk bytes/sample (chunks alone) trusswork {our_disk.per_sample}"
        line += f" ({our_disk.chunks_per_sample}; {our_disk.blocks} blocks)"
        if prom is not None and prom.disk is not None:
            line += f", prometheus {prom.disk.per_sample} ({prom.disk.chunks_per_sample};"
            line += f" {prom.disk.blocks} blocks, backfilled in {prom.backfill_s:.1f} s)"
        if checks is not None:
            aligned, off_grid = checks
            line += (
                f"\n  answers: shifted grid agrees everywhere (largest relative deviation"
                f" {off_grid.worst:.3g}); benchmark grid agrees to {aligned.worst:.3g} on the"
                f" {steps - aligned.boundary_steps} steps without a sample on the window start,"
                f" differs on {aligned.boundary_differ} of the {aligned.boundary_steps} with one"
                f" (up to {aligned.boundary_worst:.3g}: Prometheus 2 windows are left-closed)"
            )
            benchmark.extra_info["agree_max_rel_dev"] = max(aligned.worst, off_grid.worst)
            benchmark.extra_info["boundary_steps"] = aligned.boundary_steps
            benchmark.extra_info["boundary_steps_differing"] = aligned.boundary_differ
            benchmark.extra_info["boundary_max_rel_dev"] = aligned.boundary_worst
        print(line)
    if impl == "prometheus":
        assert prom is not None and prom.disk is not None
        assert our_disk.samples == prom.disk.samples
        assert our_disk.per_sample < prom.disk.per_sample


def _has_prometheus() -> bool:
    import shutil

    return shutil.which("promtool") is not None and shutil.which("prometheus") is not None
