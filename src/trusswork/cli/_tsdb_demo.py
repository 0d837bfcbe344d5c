"""Demo section for the time-series store: compression, rollups, PromQL, cardinality.

Checked parts, on synthetic node_exporter data (:mod:`trusswork.tsdb.synthetic`:
counters, gauges and constant series of 2 hosts over 24 hours, 4 hosts over
48 hours in the full run, one scrape every 15 s with jitter):

1. Compression per series kind: every series is encoded with the chunk
   codec and with zstd (level 3, over the raw timestamp and value arrays);
   bytes per sample for counters, gauges and constants, ours next to
   zstd's. Each series must decode bit for bit, and ours must be smaller
   than zstd's for every kind.
2. Ingest: the series go into a database (under ``<out>/tsdb/db``) through
   the batched API (``series_ref`` + ``append_batch``), two hours at a time,
   each two hours flushed to a block, like a head being cut; the clock is a
   fake one at the end of the data. Every sample must be stored.
3. Rollups: a long-range query (``sum by (mode) (rate(...[1h]))`` over the
   whole span, one step per 30 minutes) runs on raw blocks, then
   :meth:`~trusswork.tsdb.TSDB.compact` merges blocks, writes 5-minute
   and 1-hour rollups and replaces raw blocks older than 6 hours by their
   rollups, and the query runs again. It must read far fewer samples, and
   its answer must stay within 1% of the raw one (median over the steps).
4. PromQL on raw data: ``sum by (mode) (rate(node_cpu_seconds_total[5m]))``
   over the last 6 hours. The modes of a CPU add up to one second per
   second, so the sum over modes must average the number of CPUs (within
   2%), and ``user`` its share (within 10%). The plot shows it stacked.
5. Cardinality: the head's series count must equal the series generated,
   and ``node_cpu_seconds_total`` (CPUs x 8 modes per host) must lead.

Timings (ingest rate, query times) are reported, never asserted.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trusswork.cli._demo import DemoContext, Plot, SectionResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from trusswork.tsdb import TSDB, CardinalityReport, MatrixResult, SeriesData
    from trusswork.tsdb.synthetic import NodeSeries

HOUR_MS = 3_600_000
#: Scrape interval and the first scrape (2023-11-14T16:00Z, on a 2-hour block boundary).
INTERVAL_MS = 15_000
START_MS = 1_699_977_600_000
#: (hosts, hours) of the quick and the full run.
QUICK_SIZE = (2, 24)
FULL_SIZE = (4, 48)
CPUS = 4
#: Hours ingested (and flushed) at a time: the default block range.
WINDOW_HOURS = 2
#: Raw blocks older than this (from the end of the data) are replaced by rollups.
RAW_RETENTION_HOURS = 6
ZSTD_LEVEL = 3
KINDS = ("counter", "gauge", "constant")
LONG_QUERY = 'sum by (mode) (rate(node_cpu_seconds_total{mode!="idle"}[1h]))'
LONG_STEP_MS = 30 * 60_000
CPU_QUERY = "sum by (mode) (rate(node_cpu_seconds_total[5m]))"
CPU_STEP_MS = 60_000
#: The user mode's share of a CPU in the synthetic data.
USER_SHARE = 0.12
COLORS = ("#0969da", "#1a7f37", "#cf222e", "#8250df", "#bf8700", "#59636e", "#e16f24", "#1b7c83")


@dataclass(frozen=True)
class _Size:
    hosts: int
    hours: int

    @property
    def end_ms(self) -> int:
        return START_MS + self.hours * HOUR_MS


# ---------------------------------------------------------------- 1. compression


def _compression_part(series: Sequence[NodeSeries]) -> list[tuple[str, str]]:
    """Bytes per sample per series kind: the chunk codec against zstd; lossless."""
    import numpy as np
    import zstandard

    from trusswork.tsdb import codec

    compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    rows: list[tuple[str, str]] = []
    for kind in KINDS:
        chosen = [s for s in series if s.kind == kind]
        samples = sum(len(s.ts) for s in chosen)
        ours = zstd = 0
        for s in chosen:
            chunk = codec.encode(s.ts, s.values)
            ts, values = codec.decode(chunk)
            if not (
                np.array_equal(ts, s.ts)
                and np.array_equal(values.view(np.int64), s.values.view(np.int64))
            ):
                raise AssertionError(f"{kind} series {dict(s.labels)} did not decode bit for bit")
            ours += len(chunk)
            zstd += len(compressor.compress(s.ts.tobytes() + s.values.tobytes()))
        if ours >= zstd:
            raise AssertionError(
                f"{kind}: the codec took {ours / samples:.3f} bytes/sample, "
                f"zstd {zstd / samples:.3f}"
            )
        rows.append(
            (
                f"{kind}s ({len(chosen)} series): bytes/sample, ours vs zstd",
                f"{ours / samples:.3f} vs {zstd / samples:.3f} ({zstd / ours:.1f}x smaller)",
            )
        )
    return rows


# ---------------------------------------------------------------- 2. ingest


def _ingest(
    ctx: DemoContext, db: TSDB, series: Sequence[NodeSeries], size: _Size
) -> tuple[int, float]:
    """Append every series two hours at a time through the batched API, flushing each window."""
    import numpy as np

    names = []
    for s in series:
        labels = dict(s.labels)
        names.append((labels.pop("__name__"), labels))
    stored = 0
    started = time.perf_counter()
    window = WINDOW_HOURS * HOUR_MS
    for low in ctx.track(range(START_MS, size.end_ms, window), "tsdb: ingest, 2 h at a time"):
        refs, ts, values = [], [], []
        for (metric, labels), s in zip(names, series, strict=True):
            first, last = np.searchsorted(s.ts, [low, low + window])
            # Refs are asked for per window: a ref may go stale once its series
            # has been cut out of the head (TSDB.series_ref).
            refs.append(np.full(last - first, db.series_ref(metric, labels), np.uint32))
            ts.append(s.ts[first:last])
            values.append(s.values[first:last])
        stored += db.append_batch(np.concatenate(refs), np.concatenate(ts), np.concatenate(values))
        if low + window < size.end_ms:
            db.flush()
    return stored, time.perf_counter() - started


# ---------------------------------------------------------------- 3. rollups


def _samples_read(db: TSDB, size: _Size) -> int:
    from trusswork.tsdb import Matcher

    selected = db.select(
        [Matcher("__name__", "=", "node_cpu_seconds_total")], START_MS, size.end_ms
    )
    return sum(len(s.ts) for s in selected)


def _by_mode(result: MatrixResult) -> dict[str, SeriesData]:
    return {dict(s.labels).get("mode", ""): s for s in result.series}


def _rollup_part(db: TSDB, size: _Size) -> tuple[list[tuple[str, str]], Figure]:
    """The long-range query on raw blocks, then compaction and retention, then again."""
    import numpy as np

    from trusswork.cli._tsdb import block_metas, snapshot
    from trusswork.tsdb import Engine

    engine = Engine(db)
    start = START_MS + HOUR_MS
    raw_read = _samples_read(db, size)
    began = time.perf_counter()
    raw = _by_mode(engine.range(LONG_QUERY, start, size.end_ms, LONG_STEP_MS))
    raw_seconds = time.perf_counter() - began
    before = snapshot(db)
    began = time.perf_counter()
    db.compact()
    compact_seconds = time.perf_counter() - began
    after = snapshot(db)
    if not after.rollup_blocks or after.raw_samples >= before.raw_samples:
        raise AssertionError(
            f"compaction left {after.rollup_blocks} rollup blocks and "
            f"{after.raw_samples:,} of {before.raw_samples:,} raw samples"
        )
    rolled_read = _samples_read(db, size)
    began = time.perf_counter()
    rolled = _by_mode(engine.range(LONG_QUERY, start, size.end_ms, LONG_STEP_MS))
    rolled_seconds = time.perf_counter() - began
    if rolled_read * 2 > raw_read:
        raise AssertionError(f"with rollups the query read {rolled_read:,} samples of {raw_read:,}")
    if sorted(raw) != sorted(rolled):
        raise AssertionError(f"modes {sorted(rolled)} with rollups, {sorted(raw)} without")
    worst = 0.0
    for mode, series in raw.items():
        other = rolled[mode]
        if not np.array_equal(series.ts, other.ts):
            raise AssertionError(f"mode {mode}: the steps differ with rollups")
        busy = series.values != 0
        if busy.any():
            relative = np.abs(other.values[busy] / series.values[busy] - 1)
            worst = max(worst, float(np.median(relative)))
    if worst > 0.01:
        raise AssertionError(f"with rollups the answer moved by {worst:.2%} (median), over 1%")
    raw_start = min((m.mint for m in block_metas(db) if m.resolution == 0), default=size.end_ms)
    rows = [
        (
            "blocks after compaction (raw, rollup)",
            f"{before.raw_blocks}, {before.rollup_blocks} -> {after.raw_blocks}, "
            f"{after.rollup_blocks} in {compact_seconds:.2f} s",
        ),
        (
            f"raw samples kept (newest {RAW_RETENTION_HOURS} h and more)",
            f"{after.raw_samples:,} of {before.raw_samples:,}",
        ),
        (
            f"{size.hours} h query, step 30m: samples read",
            f"{raw_read:,} raw -> {rolled_read:,} with rollups",
        ),
        (
            f"{size.hours} h query: time, raw vs rollups",
            f"{raw_seconds * 1000:.1f} ms vs {rolled_seconds * 1000:.1f} ms",
        ),
        ("answer with rollups vs raw (median difference)", f"{worst:.3%}"),
    ]
    return rows, _long_figure(raw, rolled, raw_start, size)


def _hours(ts: Any) -> Any:
    return (ts - START_MS) / HOUR_MS


def _long_figure(
    raw: dict[str, SeriesData], rolled: dict[str, SeriesData], raw_start: int, size: _Size
) -> Figure:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 3.6), layout="constrained")
    axes = figure.subplots()
    axes.axvspan(0, _hours(raw_start), color="#d1d9e0", alpha=0.35, linewidth=0)
    busy = [mode for mode, s in raw.items() if s.values.any()]
    for color, mode in zip(COLORS, busy, strict=False):
        axes.plot(_hours(raw[mode].ts), raw[mode].values, color=color, linewidth=2, label=mode)
        axes.plot(
            _hours(rolled[mode].ts),
            rolled[mode].values,
            color="black",
            linewidth=0.8,
            linestyle="--",
        )
    axes.set_xlabel("hours since the first sample (shaded: rollups after compaction)")
    axes.set_ylabel("CPU seconds per second")
    axes.set_yscale("log")
    axes.set_xlim(0, size.hours)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    axes.set_title(f"{LONG_QUERY}: raw (colour) and with rollups (dashed)", fontsize=10)
    return figure


# ---------------------------------------------------------------- 4. PromQL on raw data


def _cpu_part(db: TSDB, size: _Size) -> tuple[list[tuple[str, str]], Figure]:
    """sum by (mode) (rate(...[5m])) over the raw hours: modes add up to the CPUs."""
    import numpy as np

    from trusswork.tsdb import Engine

    start = size.end_ms - RAW_RETENTION_HOURS * HOUR_MS
    began = time.perf_counter()
    result = Engine(db).range(CPU_QUERY, start, size.end_ms, CPU_STEP_MS)
    seconds = time.perf_counter() - began
    modes = _by_mode(result)
    if len(modes) != 8:
        raise AssertionError(f"{len(modes)} modes, not 8: {sorted(modes)}")
    steps = len(next(iter(modes.values())).ts)
    if any(len(s.ts) != steps for s in modes.values()):
        raise AssertionError("the modes have different numbers of steps")
    total = sum(s.values for s in modes.values())
    cpus = size.hosts * CPUS
    mean = float(np.mean(total))
    if abs(mean / cpus - 1) > 0.02:
        raise AssertionError(f"the modes add up to {mean:.3f} CPUs on average, not {cpus}")
    user = float(np.mean(modes["user"].values))
    if abs(user / (USER_SHARE * cpus) - 1) > 0.1:
        raise AssertionError(f"user mode {user:.3f} CPUs, not about {USER_SHARE * cpus:.2f}")
    rows = [
        (
            f"{CPU_QUERY}, last {RAW_RETENTION_HOURS} h",
            f"{len(modes)} series x {steps} steps in {seconds * 1000:.1f} ms",
        ),
        ("sum over modes (mean)", f"{mean:.3f} CPUs ({cpus} CPUs generated)"),
        ("user mode (mean)", f"{user:.3f} CPUs"),
    ]
    return rows, _cpu_figure(modes, cpus)


def _cpu_figure(modes: dict[str, SeriesData], cpus: int) -> Figure:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 3.6), layout="constrained")
    axes = figure.subplots()
    # Modes that never run (irq, nice, steal here) would only crowd the legend.
    busy = [mode for mode, series in modes.items() if series.values.any()]
    order = sorted(busy, key=lambda mode: (mode == "idle", mode))
    ts = next(iter(modes.values())).ts
    axes.stackplot(
        _hours(ts),
        [modes[mode].values for mode in order],
        labels=order,
        colors=COLORS[: len(order)],
        alpha=0.85,
    )
    axes.axhline(cpus, color="black", linewidth=0.8, linestyle="--")
    axes.set_xlabel("hours since the first sample")
    axes.set_ylabel("CPU seconds per second")
    axes.set_ylim(0, cpus * 1.15)
    axes.grid(True, alpha=0.3)
    handles, labels = axes.get_legend_handles_labels()
    axes.legend(
        handles[::-1],
        labels[::-1],
        fontsize=8,
        frameon=False,
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
    )
    axes.set_title(f"{CPU_QUERY} (stacked; dashed: {cpus} CPUs)", fontsize=10)
    return figure


# ---------------------------------------------------------------- 5. cardinality


def _cardinality_rows(
    report: CardinalityReport, expected: int, hosts: int
) -> list[tuple[str, str]]:
    if report.total_series != expected:
        raise AssertionError(f"{report.total_series} series in the head, {expected} generated")
    metric, count = report.top_metrics[0]
    if (metric, count) != ("node_cpu_seconds_total", hosts * CPUS * 8):
        raise AssertionError(f"the top metric is {metric} with {count} series")
    return [
        ("cardinality: series in the head", f"{report.total_series:,}"),
        ("top metrics (series)", ", ".join(f"{m} {n}" for m, n in report.top_metrics[:3])),
        (
            "labels with most values",
            ", ".join(f"{name} {n}" for name, n in report.top_label_names[:4]),
        ),
        (
            "top label pairs (series)",
            ", ".join(f"{k}={v} {n}" for (k, v), n in report.top_label_pairs[:3]),
        ),
    ]


# ---------------------------------------------------------------- the section


def demo(ctx: DemoContext) -> SectionResult:
    """Run and check the time-series parts; see the module docstring."""
    from trusswork.core.clock import FakeClock
    from trusswork.tsdb import TSDB
    from trusswork.tsdb.synthetic import node_exporter_series

    size = _Size(*(QUICK_SIZE if ctx.quick else FULL_SIZE))
    series = list(
        node_exporter_series(
            size.hosts, hours=size.hours, interval_ms=INTERVAL_MS, start_ms=START_MS, cpus=CPUS
        )
    )
    samples = sum(len(s.ts) for s in series)
    rows = [
        (
            "synthetic node_exporter data",
            f"{size.hosts} hosts, {size.hours} h every {INTERVAL_MS // 1000} s: "
            f"{len(series)} series, {samples:,} samples",
        )
    ]
    rows += _compression_part(series)
    path = ctx.out_dir / "tsdb" / "db"
    shutil.rmtree(path, ignore_errors=True)
    # A demo database: no fsync (nothing to survive), small WAL segments so the
    # cut data leaves the WAL, and a clock standing at the end of the data.
    with TSDB(
        path,
        background=False,
        fsync="never",
        wal_segment_bytes=1 << 20,
        raw_retention_ms=RAW_RETENTION_HOURS * HOUR_MS,
        retention_ms=30 * 24 * HOUR_MS,
        clock=FakeClock(wall=size.end_ms / 1000),
    ) as db:
        stored, seconds = _ingest(ctx, db, series, size)
        if stored != samples:
            raise AssertionError(f"{stored:,} of {samples:,} samples stored")
        report = db.cardinality(5)
        db.flush()
        raw_bytes = _raw_bytes_per_sample(db)
        rows += [
            (
                "ingest: series_ref + append_batch, flushed every 2 h",
                f"{samples / seconds / 1e6:.2f} M samples/s",
            ),
            ("raw blocks: bytes/sample (chunks and index)", f"{raw_bytes:.3f}"),
        ]
        rollup_rows, long_figure = _rollup_part(db, size)
        rows += rollup_rows
        cpu_rows, cpu_figure = _cpu_part(db, size)
        rows += cpu_rows
    rows += _cardinality_rows(report, len(series), size.hosts)
    notes = [
        "Bytes per sample compare whole series encoded with the chunk codec against zstd "
        f"level {ZSTD_LEVEL} over the raw int64 timestamps and float64 values; the database's "
        "figure is what its raw blocks take on disk, index included.",
        f"The {size.hours} h query runs twice: on raw blocks, and after compaction replaced the "
        f"raw blocks older than {RAW_RETENTION_HOURS} h by 5-minute rollups (each window's "
        "last value), so it reads a fraction of the samples for nearly the same answer.",
        f"The database stays at {path}: try 'trusswork tsdb stats --db {path}' or "
        f"'trusswork tsdb query --db {path} \"{CPU_QUERY}\" --time {size.end_ms // 1000}'.",
        "Ingest rates and query times are measured on a shared machine: indicative, not asserted.",
    ]
    plots = [
        Plot(f"A {size.hours} h query on raw blocks and on rollups", long_figure),
        Plot(f"CPU by mode over the last {RAW_RETENTION_HOURS} h (raw data)", cpu_figure),
    ]
    return SectionResult(rows=rows, plots=plots, notes=notes)


def _raw_bytes_per_sample(db: TSDB) -> float:
    from trusswork.cli._tsdb import snapshot

    shot = snapshot(db)
    if shot.bytes_per_sample is None:
        raise AssertionError("no raw block after flushing")
    return shot.bytes_per_sample
