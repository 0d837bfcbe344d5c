"""trusswork.core's compiled kernels against the peers a user would pick instead.

Groups (``impl`` names in brackets; ours is ``trusswork``):

- ``crc32c-64B``, ``crc32c-4KiB``, ``crc32c-1MiB``: :func:`trusswork.core.checksum.crc32c`
  [``crc32c`` package, ``google-crc32c`` package] on random bytes.
- ``varint-encode-1M``, ``varint-decode-1M``: :mod:`trusswork.core.varint` with zigzag
  on a million int64 shaped like delta-encoded data [``pure-python`` loop,
  ``numpy`` vectorized codec written below].
- ``bits-pack-1M``, ``bits-unpack-1M``: :mod:`trusswork.core.bits` with 13-bit
  values [``numpy`` codec built on ``np.packbits`` / ``np.unpackbits``].

Quick mode (``TRUSSWORK_BENCH_QUICK=1``) runs the varint groups on 250 000
values instead of a million (the pure-Python peer needs tenths of a second
per million), the same data for every member of a group, so the ratios stay
comparable; the group names keep the size of a full run. Every benchmark
first checks that its implementation gives our result: a peer that computes
something else is not a peer.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from trusswork.core import bits, checksum, varint

SEED = 20240601
CRC_SIZES = {"64B": 64, "4KiB": 4096, "1MiB": 1 << 20}
VARINT_VALUES = (1_000_000, 250_000)  # (full, quick) number of values of varint-*-1M
BIT_VALUES = 1_000_000
BIT_WIDTH = 13

Int64Array = npt.NDArray[np.int64]
UInt64Array = npt.NDArray[np.uint64]


def _import_peer(bench: Any, group: str, impl: str, module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        bench.missing(group, impl, f"cannot import {module}: {exc}")


# ---------------------------------------------------------------- CRC32C


@pytest.fixture(scope="module")
def crc_payload() -> bytes:
    return np.random.default_rng(SEED).bytes(max(CRC_SIZES.values()))


def _crc32c_impl(bench: Any, group: str, impl: str) -> tuple[Callable[[bytes], int], str]:
    if impl == "trusswork":
        variant = "hardware" if checksum.hardware_available() else "software"
        return checksum.crc32c, variant
    if impl == "crc32c":
        module = _import_peer(bench, group, impl, "crc32c")
        return module.crc32c, "hardware" if module.hardware_based else "software"
    module = _import_peer(bench, group, impl, "google_crc32c")
    return module.value, module.implementation


@pytest.mark.parametrize("size", list(CRC_SIZES))
@pytest.mark.parametrize("impl", ["trusswork", "crc32c", "google-crc32c"])
def test_crc32c(bench: Any, crc_payload: bytes, impl: str, size: str) -> None:
    group = f"crc32c-{size}"
    data = crc_payload[: CRC_SIZES[size]]
    func, variant = _crc32c_impl(bench, group, impl)
    expected = checksum.crc32c(data)
    assert func(data) == expected
    assert bench(group, impl, func, data, bytes=len(data), variant=variant) == expected


# ---------------------------------------------------------------- varints


def delta_mix(n: int, seed: int = SEED) -> Int64Array:
    """Int64 shaped like delta-encoded series: 90% within ±64, 9% within ±2**20, 1% huge.

    Zigzag varints of these take 1.26 bytes per value on average.
    """
    rng = np.random.default_rng(seed)
    kind = rng.random(n)
    small = rng.integers(-64, 64, n)
    medium = rng.integers(-(1 << 20), 1 << 20, n)
    huge = rng.integers(-(1 << 62), 1 << 62, n)
    mixed = np.where(kind < 0.90, small, np.where(kind < 0.99, medium, huge))
    return mixed.astype(np.int64)


def py_varint_encode(values: Int64Array) -> bytes:
    """Zigzag LEB128 in a plain Python loop: what a user writes without a compiled codec.

    Deliberately lean: ``trusswork.core._reference.varint_encode``, the oracle
    of the property tests, validates every value and runs about half as fast,
    which would flatter our ratio.
    """
    out = bytearray()
    for value in values.tolist():
        word = (value << 1) ^ (value >> 63)
        while word > 0x7F:
            out.append((word & 0x7F) | 0x80)
            word >>= 7
        out.append(word)
    return bytes(out)


def py_varint_decode(data: bytes) -> Int64Array:
    """Inverse of :func:`py_varint_encode`, also a plain Python loop."""
    out = []
    word = shift = 0
    for byte in data:
        word |= (byte & 0x7F) << shift
        if byte & 0x80:
            shift += 7
        else:
            out.append((word >> 1) ^ -(word & 1))
            word = shift = 0
    return np.array(out, dtype=np.int64)


_THRESHOLDS = np.array([1 << (7 * k) for k in range(1, 10)], dtype=np.uint64)


def np_varint_encode(values: Int64Array) -> bytes:
    """Zigzag LEB128 with numpy: byte lengths by search, then one scatter per 7-bit group.

    Each pass writes one byte of every varint still unfinished and keeps only
    those, so data of mostly one-byte varints costs little more than one pass.
    """
    signed = np.asarray(values, dtype=np.int64)
    words = ((signed << 1) ^ (signed >> 63)).view(np.uint64)
    lengths = np.searchsorted(_THRESHOLDS, words, side="right") + 1
    ends = np.cumsum(lengths)
    out = np.empty(int(ends[-1]) if ends.size else 0, dtype=np.uint8)
    position = ends - lengths
    while words.size:
        more = words > 0x7F
        out[position] = (words & 0x7F).astype(np.uint8) | (more.astype(np.uint8) << 7)
        words = words[more] >> np.uint64(7)
        position = position[more] + 1
    return out.tobytes()


def np_varint_decode(data: bytes) -> Int64Array:
    """Inverse of :func:`np_varint_encode`: find the last byte of each varint, gather groups.

    Unlike ours it checks nothing (truncation, overlong varints), which only
    makes it faster.
    """
    raw = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(raw < 0x80)
    starts = np.empty_like(ends)
    starts[:1] = 0
    starts[1:] = ends[:-1] + 1
    words = (raw[starts] & 0x7F).astype(np.uint64)
    pending = np.flatnonzero(ends > starts)
    k = 1
    while pending.size:
        group = (raw[starts[pending] + k] & 0x7F).astype(np.uint64)
        words[pending] |= group << np.uint64(7 * k)
        pending = pending[ends[pending] > starts[pending] + k]
        k += 1
    magnitude = (words >> np.uint64(1)).view(np.int64)
    sign = -(words & np.uint64(1)).view(np.int64)
    return magnitude ^ sign


VARINT_ENCODERS: dict[str, Callable[[Int64Array], bytes]] = {
    "trusswork": varint.encode,
    "pure-python": py_varint_encode,
    "numpy": np_varint_encode,
}
VARINT_DECODERS: dict[str, Callable[[bytes], Any]] = {
    "trusswork": varint.decode,
    "pure-python": py_varint_decode,
    "numpy": np_varint_decode,
}


@pytest.fixture(scope="module")
def varint_values(scaled: Callable[[int, int], int]) -> Int64Array:
    return delta_mix(scaled(*VARINT_VALUES))


@pytest.fixture(scope="module")
def varint_bytes(varint_values: Int64Array) -> bytes:
    return varint.encode(varint_values)


@pytest.mark.parametrize("impl", list(VARINT_ENCODERS))
def test_varint_encode(
    bench: Any, varint_values: Int64Array, varint_bytes: bytes, impl: str
) -> None:
    func = VARINT_ENCODERS[impl]
    assert bytes(func(varint_values)) == varint_bytes
    result = bench("varint-encode-1M", impl, func, varint_values, values=len(varint_values))
    assert bytes(result) == varint_bytes


@pytest.mark.parametrize("impl", list(VARINT_DECODERS))
def test_varint_decode(
    bench: Any, varint_values: Int64Array, varint_bytes: bytes, impl: str
) -> None:
    func = VARINT_DECODERS[impl]
    assert np.array_equal(np.asarray(func(varint_bytes)), varint_values)
    result = bench("varint-decode-1M", impl, func, varint_bytes, values=len(varint_values))
    assert np.array_equal(np.asarray(result), varint_values)


# ---------------------------------------------------------------- bit packing


def np_bits_pack(values: UInt64Array, width: int) -> bytes:
    """MSB-first fixed-width packing with numpy: one bit plane per column, then np.packbits."""
    words = np.asarray(values, dtype=np.uint64)
    planes = np.empty((words.size, width), dtype=np.uint8)
    for bit in range(width):
        planes[:, bit] = (words >> np.uint64(width - 1 - bit)) & np.uint64(1)
    return np.packbits(planes.reshape(-1)).tobytes()


def np_bits_unpack(data: bytes, width: int, count: int) -> UInt64Array:
    """Inverse of :func:`np_bits_pack`: np.unpackbits, then weigh the bit planes."""
    planes = np.unpackbits(np.frombuffer(data, dtype=np.uint8), count=count * width)
    weights = np.uint64(1) << np.arange(width - 1, -1, -1, dtype=np.uint64)
    result: UInt64Array = planes.reshape(count, width) @ weights
    return result


@pytest.fixture(scope="module")
def bit_values() -> UInt64Array:
    rng = np.random.default_rng(SEED)
    return rng.integers(0, 1 << BIT_WIDTH, BIT_VALUES, dtype=np.uint64)


@pytest.fixture(scope="module")
def bit_bytes(bit_values: UInt64Array) -> bytes:
    return bits.pack(bit_values, BIT_WIDTH)


@pytest.mark.parametrize("impl", ["trusswork", "numpy"])
def test_bits_pack(bench: Any, bit_values: UInt64Array, bit_bytes: bytes, impl: str) -> None:
    func = bits.pack if impl == "trusswork" else np_bits_pack
    assert func(bit_values, BIT_WIDTH) == bit_bytes
    result = bench(
        "bits-pack-1M", impl, func, bit_values, BIT_WIDTH, values=len(bit_values), width=BIT_WIDTH
    )
    assert result == bit_bytes


@pytest.mark.parametrize("impl", ["trusswork", "numpy"])
def test_bits_unpack(bench: Any, bit_values: UInt64Array, bit_bytes: bytes, impl: str) -> None:
    func = bits.unpack if impl == "trusswork" else np_bits_unpack
    count = len(bit_values)
    assert np.array_equal(func(bit_bytes, BIT_WIDTH, count), bit_values)
    result = bench(
        "bits-unpack-1M", impl, func, bit_bytes, BIT_WIDTH, count, values=count, width=BIT_WIDTH
    )
    assert np.array_equal(result, bit_values)
