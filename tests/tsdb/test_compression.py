"""Compressed size of the reference node_exporter data against zstd, the issue's peers.

Sizes are deterministic (seeded data, deterministic encoder), so these are
plain assertions, not benchmarks: bytes per sample on the whole set and on its
non-constant series, below zstd level 3 over the raw arrays and over numpy
first differences, per series as in ``benchmarks/bench_tsdb.py``.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
import zstandard

from trusswork.tsdb import codec
from trusswork.tsdb.synthetic import NodeSeries, node_exporter_series


def _zstd_raw(s: NodeSeries) -> int:
    return len(zstandard.ZstdCompressor(level=3).compress(s.ts.tobytes() + s.values.tobytes()))


def _zstd_delta(s: NodeSeries) -> int:
    dt = np.diff(s.ts, prepend=np.int64(0))
    dv = np.diff(s.values.view(np.int64), prepend=np.int64(0))
    return len(zstandard.ZstdCompressor(level=3).compress(dt.tobytes() + dv.tobytes()))


def _per_kind(interval_ms: int) -> dict[str, dict[str, float]]:
    """bytes/sample per impl for each series kind, 'all' and 'nonconstant'."""
    sizes: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for s in node_exporter_series(4, hours=2.0, interval_ms=interval_ms, seed=7):
        chunk = codec.encode(s.ts, s.values)
        ts, values = codec.decode(chunk)
        assert np.array_equal(ts, s.ts)
        assert np.array_equal(values.view(np.uint64), s.values.view(np.uint64))
        kinds = [s.kind, "all"] + (["nonconstant"] if s.kind != "constant" else [])
        for kind in kinds:
            sizes[kind]["samples"] += len(s.ts)
            sizes[kind]["trusswork"] += len(chunk)
            sizes[kind]["zstd"] += _zstd_raw(s)
            sizes[kind]["zstd-delta"] += _zstd_delta(s)
    return {
        kind: {impl: total / by["samples"] for impl, total in by.items() if impl != "samples"}
        for kind, by in sizes.items()
    }


@pytest.fixture(scope="module", params=[15_000, 1_000], ids=["15s", "1s"])
def ratios(request: pytest.FixtureRequest) -> dict[str, dict[str, float]]:
    return _per_kind(request.param)


@pytest.mark.parametrize("kind", ["all", "nonconstant", "counter", "gauge", "constant"])
def test_smaller_than_both_zstd_peers(ratios: dict[str, dict[str, float]], kind: str) -> None:
    ours = ratios[kind]["trusswork"]
    assert ours < ratios[kind]["zstd"], ratios[kind]
    assert ours < ratios[kind]["zstd-delta"], ratios[kind]


def test_reference_set_at_most_one_byte_per_sample() -> None:
    """The issue's bound on the reference set: 15 s and 1 s scrapes together."""
    samples = size = 0
    for interval, seed in ((15_000, 7), (1_000, 8)):
        for s in node_exporter_series(4, hours=2.0, interval_ms=interval, seed=seed):
            samples += len(s.ts)
            size += len(codec.encode(s.ts, s.values))
    assert size / samples <= 1.0


def test_constant_series_cost_little_more_than_their_timestamps(
    ratios: dict[str, dict[str, float]],
) -> None:
    # jittered timestamps stay near their ~1.8-bit entropy; a constant value costs ~nothing
    assert ratios["constant"]["trusswork"] < 0.4
