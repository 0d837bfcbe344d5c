"""trusswork.tsdb against what a user would otherwise store and query series with.

The reference data set is :func:`trusswork.tsdb._synthetic.node_exporter_series`:
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

``extra_info`` of each side carries ``bytes_per_sample`` (whole set),
``bytes_per_sample_nonconstant`` (the set without its constant series) and
``msamples_per_s`` measured on the same data; the codec tests hold the
compressed sizes, this file the speed ratios.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from trusswork.tsdb import codec
from trusswork.tsdb._synthetic import NodeSeries, node_exporter_series

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
