"""Property tests of the chunk codec against the pure-Python oracle.

* Any strictly ascending int64 timestamps (the extremes included) and any
  float64 bit patterns survive ``encode``/``decode`` bit for bit, and the
  oracle (``trusswork.tsdb._codec_ref``, written from ``tsc.h``) reads the
  compiled encoder's chunk to the same samples and the same ``info()``.
* Chunks the oracle writes, in modes and frame kinds picked at random, decode
  in C: the compiled decoder reads the format, not only its own choices.
* Damaged chunks (random bytes, bit flips, byte changes, cuts, insertions)
  raise Corruption or decode, in both decoders; what C accepts, the oracle
  accepts too and decodes alike, so nothing tsc.h calls malformed gets
  through C.

``TRUSSWORK_FUZZ=1`` multiplies the example budgets (tests/helpers).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import numpy.typing as npt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import examples
from trusswork.core.errors import Corruption
from trusswork.tsdb import _codec_ref as ref
from trusswork.tsdb.codec import decode, decode_into, encode, info, sample_count

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
SPECIAL_BITS = [
    0x7FF8000000000000,
    0x7FF8000000000001,
    0xFFF8DEADBEEF0001,
    0x7FF0000000000001,
    0x7FF0000000000002,  # staleness marker
    0x7FF0000000000000,
    0xFFF0000000000000,
    0x0000000000000000,
    0x8000000000000000,
    0x0000000000000001,
    0x000FFFFFFFFFFFFF,
    0x800FFFFFFFFFFFFF,
    0x7FEFFFFFFFFFFFFF,
]

SETTINGS: dict[str, Any] = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}

Sample = tuple[list[int], list[int]]  # timestamps, value bit patterns


def floats(bits: list[int]) -> npt.NDArray[np.float64]:
    return np.array(bits, dtype=np.uint64).view(np.float64)


def bits(values: npt.NDArray[np.float64]) -> list[int]:
    out: list[int] = values.view(np.uint64).tolist()
    return out


# ---------------------------------------------------------------- strategies

near_extremes = st.one_of(
    st.integers(INT64_MIN, INT64_MIN + 300),
    st.integers(INT64_MAX - 300, INT64_MAX),
    st.integers(-300, 300),
)


@st.composite
def timestamps(draw: st.DrawFn, max_size: int = 300) -> list[int]:
    style = draw(st.sampled_from(["anywhere", "extremes", "gaps", "ticker"]))
    if style in ("anywhere", "extremes"):
        element = st.integers(INT64_MIN, INT64_MAX)
        if style == "extremes":
            element = st.one_of(near_extremes, element)
        return sorted(draw(st.lists(element, max_size=max_size, unique=True)))
    start = draw(st.one_of(near_extremes, st.integers(INT64_MIN, INT64_MAX)))
    if style == "gaps":
        gap = st.one_of(st.integers(1, 4), st.integers(1, 2**20), st.integers(1, 2**64))
        gaps = draw(st.lists(gap, max_size=max_size))
    else:
        interval = draw(st.sampled_from([1, 2, 1000, 4096, 15_000, 60_000]))
        jitter = draw(st.lists(st.integers(0, 12), max_size=max_size))
        gaps = [interval + j for j in jitter]
    out = [start]
    for g in gaps:
        if out[-1] + g > INT64_MAX:
            break
        out.append(out[-1] + g)
    return out


ANY_BITS = st.one_of(st.integers(0, 2**64 - 1), st.sampled_from(SPECIAL_BITS))


@st.composite
def decimal_bits(draw: st.DrawFn, n: int) -> list[int]:
    """n values a / 10**k: integers over a power of ten, up to 2**53."""
    k = draw(st.integers(0, 15))
    top = draw(st.sampled_from([10, 10**4, 10**9, 2**53]))
    numerators = draw(st.lists(st.integers(-top, top), min_size=n, max_size=n))
    return bits(np.array([a / 10**k for a in numerators], dtype=np.float64))


@st.composite
def counter_bits(draw: st.DrawFn, n: int) -> list[int]:
    """A counter with up to four decimals, now and then the staleness marker."""
    k = draw(st.integers(0, 4))
    start = draw(st.integers(0, 10**12))
    steps = draw(st.lists(st.integers(0, 10**6), min_size=n, max_size=n))
    out = bits(np.cumsum([start, *steps])[:n] / 10**k)
    for i in draw(st.lists(st.integers(0, max(n - 1, 0)), max_size=3)) if n else []:
        out[i] = 0x7FF0000000000002
    return out


def value_bits(n: int) -> st.SearchStrategy[list[int]]:
    """n float64 bit patterns: arbitrary, decimal-friendly, counters or constant."""
    return st.one_of(
        st.lists(ANY_BITS, min_size=n, max_size=n),
        ANY_BITS.map(lambda b: [b] * n),
        decimal_bits(n),
        counter_bits(n),
    )


@st.composite
def samples(draw: st.DrawFn) -> Sample:
    ts = draw(timestamps())
    return ts, draw(value_bits(len(ts)))


@st.composite
def long_samples(draw: st.DrawFn) -> Sample:
    """1000 to 3000 samples built with numpy from a drawn seed (fast to generate)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32)))
    n = draw(st.integers(1000, 3000))
    interval = draw(st.sampled_from([1, 1000, 15_000]))
    start = draw(st.sampled_from([INT64_MIN, -(10**12), 1_700_000_000_000]))
    ts = start + np.cumsum(interval + rng.geometric(0.4, n) - 1, dtype=np.int64)
    shape = draw(st.sampled_from(["counter", "gauge", "bits", "sparse", "outliers"]))
    if shape == "counter":
        values = np.cumsum(rng.integers(0, 10**4, n)) / 100
    elif shape == "gauge":
        values = rng.standard_normal(n)
    elif shape == "bits":
        values = rng.integers(0, 2**64, n, dtype=np.uint64).view(np.float64)
    elif shape == "sparse":
        values = np.cumsum(np.where(rng.random(n) < 0.8, 0, rng.integers(-(2**30), 2**30, n)))
    else:
        values = np.cumsum(rng.integers(0, 4, n) + (rng.random(n) < 0.02) * 2**40)
    return ts.tolist(), bits(np.asarray(values, dtype=np.float64))


def expected_info(layout: ref.ChunkLayout) -> dict[str, object]:
    return {
        "samples": layout.samples,
        "timestamps": layout.timestamps,
        "values": layout.values,
        "scale": layout.scale,
        "order": layout.order,
        "timestamp_bytes": layout.timestamp_bytes,
        "value_bytes": layout.value_bytes,
    }


def check_roundtrip(ts: list[int], value_bits_: list[int]) -> bytes:
    chunk = encode(np.array(ts, dtype=np.int64), floats(value_bits_))
    got_ts, got_values = decode(chunk)
    assert got_ts.tolist() == ts
    assert bits(got_values) == value_bits_
    assert ref.decode(chunk) == (ts, value_bits_)
    assert sample_count(chunk) == len(ts)
    assert info(chunk) == expected_info(ref.layout(chunk))
    return chunk


# ----------------------------------------------------------------- round trips


@settings(max_examples=examples(600), **SETTINGS)
@given(samples())
def test_c_roundtrip_is_exact_and_the_oracle_reads_it(sample: Sample) -> None:
    ts, value_bits_ = sample
    chunk = check_roundtrip(ts, value_bits_)
    if len(set(value_bits_)) == 1:
        assert ref.layout(chunk).values == "const"


@settings(max_examples=examples(60), **SETTINGS)
@given(long_samples())
def test_long_chunks_roundtrip_and_the_oracle_reads_them(sample: Sample) -> None:
    check_roundtrip(*sample)


frame_kinds = st.lists(st.sampled_from(ref.FRAME_KINDS), min_size=1, max_size=4)


@settings(max_examples=examples(400), **SETTINGS)
@given(
    samples(),
    st.sampled_from(["delta", "grid"]),
    st.one_of(st.none(), st.integers(INT64_MIN, INT64_MAX), st.integers(-100, 100_000)),
    st.sampled_from(["auto", "xor"]),
    st.sampled_from([1, 2]),
    frame_kinds,
    st.booleans(),
)
def test_c_decodes_the_oracles_chunks(
    sample: Sample,
    timestamps_mode: Any,
    step: int | None,
    value_mode: Any,
    order: Any,
    kinds: Any,
    scaled: bool,
) -> None:
    ts, value_bits_ = sample
    if order == 2 and len(ts) < 2:
        order = 1  # second differences need a first one
    chunk = ref.encode(
        ts,
        floats(value_bits_).tolist(),
        timestamps=timestamps_mode,
        step=step,
        value_mode=value_mode,
        order=order,
        frames=kinds,
        scaled=scaled,
    )
    assert ref.decode(chunk) == (ts, value_bits_)
    got_ts, got_values = decode(chunk)
    assert got_ts.tolist() == ts
    assert bits(got_values) == value_bits_
    assert info(chunk) == expected_info(ref.layout(chunk))


@settings(max_examples=examples(50), **SETTINGS)
@given(long_samples(), st.lists(st.integers(0, 3000), max_size=6))
def test_decode_into_reassembles_a_split_series(sample: Sample, cuts: list[int]) -> None:
    ts, value_bits_ = sample
    n = len(ts)
    edges = sorted({0, n, *(min(c, n) for c in cuts)})
    t = np.array(ts, dtype=np.int64)
    v = floats(value_bits_)
    out_ts, out_values = np.empty(n + 5, dtype=np.int64), np.empty(n + 5)
    offset = 2
    for a, b in itertools.pairwise(edges):
        offset += decode_into(encode(t[a:b], v[a:b]), out_ts, out_values, offset)
    assert offset == n + 2
    assert out_ts[2 : n + 2].tolist() == ts
    assert bits(out_values[2 : n + 2]) == value_bits_


# ---------------------------------------------------------------------- damage


def c_decode(chunk: bytes) -> Sample | None:
    try:
        ts, values = decode(chunk)
    except Corruption:
        return None
    # whatever C accepts, its own info() and sample_count() accept too
    assert sample_count(chunk) == len(ts)
    assert info(chunk)["samples"] == len(ts)
    assert ts.tolist() == sorted(set(ts.tolist()))
    return ts.tolist(), bits(values)


def oracle_decode(chunk: bytes) -> Sample | str:
    try:
        return ref.decode(chunk)
    except Corruption as exc:
        return str(exc)


def check_damaged(chunk: bytes) -> None:
    """Corruption or a decode from each; what C accepts, the oracle reads alike."""
    got = c_decode(chunk)
    oracle = oracle_decode(chunk)
    if got is not None:
        # the oracle rejecting what C accepts would be a gap in C's validation
        assert got == oracle


@settings(max_examples=examples(1000), **SETTINGS)
@given(st.one_of(st.binary(max_size=300), st.binary(max_size=300).map(lambda b: b"\x01" + b)))
def test_random_bytes(blob: bytes) -> None:
    check_damaged(blob)


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    ts, value_bits_ = draw(samples())
    chunk = bytearray(encode(np.array(ts, dtype=np.int64), floats(value_bits_)))
    for _ in range(draw(st.integers(1, 3))):
        what = draw(st.sampled_from(["flip", "byte", "cut", "insert", "delete"]))
        i = draw(st.integers(0, max(len(chunk) - 1, 0)))
        if what == "flip" and chunk:
            chunk[i] ^= 1 << draw(st.integers(0, 7))
        elif what == "byte" and chunk:
            chunk[i] = draw(st.integers(0, 255))
        elif what == "cut":
            del chunk[i:]
        elif what == "insert":
            chunk[i:i] = draw(st.binary(min_size=1, max_size=4))
        elif chunk:
            del chunk[i]
    return bytes(chunk)


@settings(max_examples=examples(1500), **SETTINGS)
@given(damaged())
def test_damaged_chunks(chunk: bytes) -> None:
    check_damaged(chunk)
