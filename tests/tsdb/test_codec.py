"""The chunk codec: exact round trips, the documented format, damage, decode_into.

Every chunk the compiled encoder writes is decoded twice, by the compiled
decoder and by the pure-Python oracle ``trusswork.tsdb._codec_ref`` (written
from ``csrc/tsc/tsc.h`` alone), and both must give back the input bit for
bit; the oracle's walk must also agree with ``info()``. Chunks the oracle
writes in modes the compiled encoder would not pick (GRID with any step,
every frame kind, second-order decimals) must decode in C. Damage (every
prefix, every single-byte change of small chunks) must raise Corruption or
decode to what the oracle reads. Property-based versions live in
test_codec_properties.py.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import numpy as np
import numpy.typing as npt
import pytest

from trusswork.core.errors import Corruption, InvalidInput
from trusswork.tsdb import _codec_ref as ref
from trusswork.tsdb.codec import FRAME, decode, decode_into, encode, info, sample_count
from trusswork.tsdb.synthetic import node_exporter_series

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
STALE_BITS = 0x7FF0000000000002
SPECIAL_BITS = [
    0x7FF8000000000000,  # quiet NaN
    0x7FF8000000000001,  # NaN with a payload
    0xFFF8DEADBEEF0001,  # negative NaN with a payload
    0x7FF0000000000001,  # signalling NaN
    STALE_BITS,  # Prometheus's staleness marker
    0x7FF0000000000000,  # +inf
    0xFFF0000000000000,  # -inf
    0x0000000000000000,  # +0.0
    0x8000000000000000,  # -0.0
    0x0000000000000001,  # smallest subnormal
    0x000FFFFFFFFFFFFF,  # largest subnormal
    0x800FFFFFFFFFFFFF,  # negative subnormal
    0x7FEFFFFFFFFFFFFF,  # largest finite
    0x3FF0000000000000,  # 1.0
]
BASE_MS = 1_700_000_000_000


def floats(bits: Sequence[int]) -> F64:
    return np.array(bits, dtype=np.uint64).view(np.float64)


def bits(values: npt.ArrayLike) -> list[int]:
    """Values as bit patterns, so NaN payloads and -0.0 compare exactly."""
    out: list[int] = np.asarray(values, dtype=np.float64).view(np.uint64).tolist()
    return out


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


def roundtrip(ts: npt.ArrayLike, values: npt.ArrayLike) -> ref.ChunkLayout:
    """Encode in C; C and the oracle must both decode the input exactly; returns the layout."""
    t = np.asarray(ts, dtype=np.int64)
    v = np.asarray(values, dtype=np.float64)
    chunk = encode(t, v)
    assert isinstance(chunk, bytes)
    got_ts, got_values = decode(chunk)
    assert got_ts.dtype == np.int64 and got_values.dtype == np.float64
    assert got_ts.tolist() == t.tolist()
    assert bits(got_values) == bits(v)
    ref_ts, ref_values = ref.decode(chunk)
    assert ref_ts == t.tolist()
    assert ref_values == bits(v)
    layout = ref.layout(chunk)
    assert sample_count(chunk) == len(t)
    assert info(chunk) == expected_info(layout)
    return layout


def scrape_ts(n: int, seed: int = 0, interval: int = 15_000) -> I64:
    rng = np.random.default_rng(seed)
    late = np.minimum(rng.geometric(0.55, n) - 1, 12)
    return (BASE_MS + np.arange(n, dtype=np.int64) * interval + late).astype(np.int64)


def plain(kinds: list[str]) -> list[str]:
    """Frame kinds without the scaled mark."""
    return [kind.removeprefix("scaled-") for kind in kinds]


def frames_of(m: int) -> int:
    return (m + FRAME - 1) // FRAME


# ---------------------------------------------------------------- round trips


def test_the_oracle_and_the_codec_cut_frames_alike() -> None:
    assert FRAME == ref.FRAME


@pytest.mark.parametrize(
    "n", [0, 1, 2, 3, 127, 128, 129, 130, 255, 256, 257, 258, 511, 512, 513, 1000, 1283]
)
@pytest.mark.parametrize("shape", ["counter", "gauge", "const", "bits"])
def test_roundtrip_lengths_across_frame_boundaries(n: int, shape: str) -> None:
    rng = np.random.default_rng(n)
    if shape == "counter":
        values = np.cumsum(rng.integers(0, 500, n)) / 100
    elif shape == "gauge":
        values = rng.standard_normal(n)
    elif shape == "const":
        values = np.full(n, 0.25)
    else:
        values = floats(rng.integers(0, 2**64, n, dtype=np.uint64).tolist())
    layout = roundtrip(scrape_ts(n, seed=n), values)
    assert layout.samples == n
    assert len(layout.timestamp_frames) == frames_of(n - 1 if n > 1 else 0)
    if layout.values == "decimal":
        skipped = 1 if layout.order == 1 else 2
        assert len(layout.value_frames) == frames_of(n - skipped)


@pytest.mark.parametrize(
    "ts",
    [
        [INT64_MIN],
        [INT64_MAX],
        [INT64_MIN, INT64_MAX],
        [INT64_MIN, INT64_MIN + 1, -1, 0, 1, INT64_MAX - 1, INT64_MAX],
        [INT64_MIN + i for i in range(300)],
        [INT64_MAX - 299 + i for i in range(300)],
        [INT64_MIN + i * ((2**64 - 1) // 199) for i in range(200)],
        [INT64_MIN + i * 3 for i in range(100)] + [INT64_MAX - 300 + i * 3 for i in range(100)],
    ],
    ids=["min", "max", "min-max", "around-zero", "near-min", "near-max", "spread", "two-ends"],
)
def test_roundtrip_extreme_timestamps(ts: list[int]) -> None:
    values = np.random.default_rng(len(ts)).standard_normal(len(ts))
    roundtrip(ts, values)
    roundtrip(ts, np.arange(len(ts), dtype=np.float64))


def test_roundtrip_a_big_chunk_of_random_bits() -> None:
    rng = np.random.default_rng(13)
    n = 200_000
    ts = np.cumsum(rng.integers(1, 2**40, n))
    layout = roundtrip(ts, rng.integers(0, 2**64, n, dtype=np.uint64).view(np.float64))
    assert len(layout.timestamp_frames) == frames_of(n - 1)


def test_roundtrip_random_timestamps_over_the_whole_range() -> None:
    rng = np.random.default_rng(11)
    raw = rng.integers(INT64_MIN, INT64_MAX, 700, dtype=np.int64, endpoint=True)
    ts = np.unique(np.concatenate([raw, [INT64_MIN, INT64_MAX]]))
    roundtrip(ts, rng.standard_normal(len(ts)))


def test_roundtrip_special_float_bit_patterns() -> None:
    rng = np.random.default_rng(5)
    mixed = floats([SPECIAL_BITS[i] for i in rng.integers(0, len(SPECIAL_BITS), 600)])
    assert roundtrip(scrape_ts(600), mixed).values == "xor"
    for pattern in SPECIAL_BITS:
        # each pattern alone is a constant chunk, kept bit for bit
        assert roundtrip(scrape_ts(300), floats([pattern] * 300)).values == "const"
        # and once among ordinary numbers
        around = np.arange(200, dtype=np.float64)
        around[77] = floats([pattern])[0]
        roundtrip(scrape_ts(200), around)


def test_staleness_marker_in_a_counter() -> None:
    values = np.cumsum(np.ones(400)) / 100
    values[[10, 11, 200]] = floats([STALE_BITS])[0]
    roundtrip(scrape_ts(400), values)


# ------------------------------------------------------- which modes and kinds


def test_equal_bit_patterns_are_const() -> None:
    assert roundtrip(scrape_ts(1000), np.full(1000, 42.5)).values == "const"
    assert roundtrip(scrape_ts(9), floats([STALE_BITS] * 9)).values == "const"
    # a single sample is always constant
    for pattern in SPECIAL_BITS:
        assert roundtrip([7], floats([pattern])).values == "const"


def test_different_nans_are_not_const() -> None:
    layout = roundtrip(scrape_ts(3), floats([0x7FF8000000000000, 0x7FF8000000000001] + [0] * 1))
    assert layout.values == "xor"


def test_zero_and_negative_zero_are_not_decimal() -> None:
    # -0.0 is not an integer over a power of ten (0 / 10**k is +0.0)
    assert roundtrip(scrape_ts(4), [1.0, -0.0, 2.0, 3.0]).values == "xor"


@pytest.mark.parametrize("k", range(16))
def test_decimal_scale_is_the_number_of_decimals(k: int) -> None:
    rng = np.random.default_rng(k)
    numerators = 7 + 10 * rng.integers(0, 10**3, 200)  # never a multiple of 10
    layout = roundtrip(scrape_ts(200), numerators / 10.0**k)
    assert (layout.values, layout.scale) == ("decimal", k)


def test_integer_counter_is_decimal_scale_zero() -> None:
    values = np.cumsum(np.random.default_rng(1).integers(0, 1000, 500)).astype(np.float64)
    layout = roundtrip(scrape_ts(500), values)
    assert (layout.values, layout.scale, layout.order) == ("decimal", 0, 1)


def test_quadratic_integers_take_second_differences() -> None:
    layout = roundtrip(scrape_ts(1000), (np.arange(1000) ** 2).astype(np.float64))
    assert (layout.values, layout.order) == ("decimal", 2)


def test_values_beyond_fifteen_decimals_are_xor() -> None:
    values = np.full(50, 0.1 + 0.2)
    values[::2] = 1.0
    assert roundtrip(scrape_ts(50), values).values == "xor"


def test_scrape_ticker_is_grid_and_exact_intervals_are_delta() -> None:
    rng = np.random.default_rng(2)
    n = 1000
    jittered = BASE_MS + np.arange(n) * 15_000 + rng.integers(0, 4, n)
    layout = roundtrip(jittered, np.ones(n))
    assert (layout.timestamps, layout.step) == ("grid", 15_000)
    assert roundtrip(BASE_MS + np.arange(n) * 15_000, np.ones(n)).timestamps == "delta"
    drifting = BASE_MS + np.cumsum(15_000 + rng.integers(-5, 6, n))
    assert roundtrip(drifting, np.ones(n)).timestamps == "delta"
    assert roundtrip([1], [1.0]).timestamps is None


def _outliers(rng: np.random.Generator, small: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    out = small.copy()
    for start in range(0, len(out), FRAME):
        size = min(FRAME, len(out) - start)
        out[start + rng.choice(size, min(3, size), replace=False)] += 2**30
    return out


def test_frame_kinds_each_appear_and_round_trip() -> None:
    """Data shaped for each frame kind: the kind is used, and decodes exactly."""
    rng = np.random.default_rng(3)
    n = 1000
    ts = BASE_MS + np.arange(n) * 1000
    shapes = {
        "for": rng.integers(0, 2**12, n),
        "patched": _outliers(rng, rng.integers(0, 4, n)),
        "rice": rng.geometric(0.3, n),
        "rice_zz": np.round(rng.normal(1000, 30, n)).astype(np.int64),
        "sparse": np.where(
            rng.random(n) < 0.8, 0, rng.integers(2**20, 2**20 + 2**10, n) * rng.choice([-1, 1], n)
        ),
    }
    for kind, increments in shapes.items():
        layout = roundtrip(ts, (np.cumsum(increments) + 2**40).astype(np.float64))
        assert kind in plain(layout.value_frames), (kind, layout.value_frames)
        deltas = np.abs(increments) + 1
        layout = roundtrip(BASE_MS + np.cumsum(deltas), np.ones(n))
        assert kind in plain(layout.timestamp_frames), (kind, layout.timestamp_frames)


def test_wide_integers_round_trip() -> None:
    rng = np.random.default_rng(4)
    wide = rng.integers(-(2**53), 2**53, 500, endpoint=True).astype(np.float64)
    roundtrip(scrape_ts(500), wide)
    roundtrip(scrape_ts(3), [2.0**53, -(2.0**53), 2.0**53])
    roundtrip(scrape_ts(3), [2.0**53 + 2, 0.0, 1.0])  # beyond 2**53: not decimal


# -------------------------------------------------- the oracle's chunks in C

DATASETS: dict[str, tuple[list[int], list[float]]] = {
    "scrape-counter": (
        scrape_ts(300, seed=1).tolist(),
        (np.cumsum(np.arange(300) % 7) / 100).tolist(),
    ),
    "gauge": (
        scrape_ts(260, seed=2).tolist(),
        np.random.default_rng(2).standard_normal(260).tolist(),
    ),
    "specials": (
        list(range(0, 30_000, 100)),
        floats(SPECIAL_BITS * 21 + SPECIAL_BITS[:6]).tolist(),
    ),
    "extremes": (
        [INT64_MIN, INT64_MIN + 1, 0, INT64_MAX - 1, INT64_MAX],
        [1.5, -2.5, 0.0, 3.0, 1e300],
    ),
    "const": (list(range(5, 5000, 37)), [0.5] * len(range(5, 5000, 37))),
    "three": ([10, 20, 31], [1.0, 4.0, 9.0]),
    "two": ([10, 20], [1.0, 2.0]),
}
FRAME_CHOICES: list[ref.FrameKind | tuple[ref.FrameKind, ...]] = [
    "for",
    "patched",
    "rice",
    "sparse",
    "rice_zz",
    ("sparse", "rice", "patched", "rice_zz", "for"),
]


@pytest.mark.parametrize("frames", FRAME_CHOICES, ids=str)
@pytest.mark.parametrize("timestamps", ["delta", "grid"])
@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_c_decodes_every_mode_the_oracle_writes(
    dataset: str, timestamps: Literal["delta", "grid"], frames: ref.FrameKind
) -> None:
    ts, values = DATASETS[dataset]
    expected = bits(values)
    variants: list[bytes] = [ref.encode(ts, values, timestamps=timestamps, frames=frames)]
    if len(set(expected)) > 1 and len(ts) > 2:
        variants.append(ref.encode(ts, values, timestamps=timestamps, frames=frames, order=2))
    variants.append(ref.encode(ts, values, timestamps=timestamps, frames=frames, value_mode="xor"))
    variants.append(ref.encode(ts, values, timestamps=timestamps, frames=frames, scaled=True))
    for chunk in variants:
        assert ref.decode(chunk) == (ts, expected)
        got_ts, got_values = decode(chunk)
        assert got_ts.tolist() == ts
        assert bits(got_values) == expected
        assert info(chunk) == expected_info(ref.layout(chunk))


@pytest.mark.parametrize("step", [0, 1, -1, 7, 15_000, 2**62, -(2**63)])
def test_c_decodes_grid_with_any_step(step: int) -> None:
    ts = scrape_ts(300).tolist()
    chunk = ref.encode(ts, [1.0] * 300, timestamps="grid", step=step, frames=("rice", "for"))
    assert decode(chunk)[0].tolist() == ts
    assert ref.layout(chunk).step == step


@pytest.mark.parametrize("k", [0, 3, 15])
def test_c_decodes_decimals_at_a_larger_scale_than_needed(k: int) -> None:
    values = [float(i % 9) for i in range(200)]  # 8 * 10**15 < 2**53
    chunk = ref.encode(list(range(200)), values, value_mode="decimal", scale=k, frames="sparse")
    assert ref.layout(chunk).scale == k
    assert bits(decode(chunk)[1]) == bits(values)


@pytest.mark.parametrize(("n", "order"), [(1, 1), (2, 2)])
def test_c_decodes_the_shortest_decimal_chunks(n: int, order: Literal[1, 2]) -> None:
    ts, values = list(range(n)), [float(i + 1) for i in range(n)]
    chunk = ref.encode(ts, values, value_mode="decimal", order=order)
    assert ref.decode(chunk) == (ts, bits(values))
    assert bits(decode(chunk)[1]) == bits(values)


# ----------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("ts", "index"),
    [
        ([1, 2, 2, 3], 2),
        ([5, 4], 1),
        ([0, 1, 2, 3, 4, 5, 6, 7, 8, -9], 9),
        ([INT64_MAX, INT64_MIN], 1),
    ],
)
def test_timestamps_that_do_not_ascend_name_the_index(ts: list[int], index: int) -> None:
    with pytest.raises(InvalidInput, match=rf"ts\[{index}\]"):
        encode(np.array(ts, dtype=np.int64), np.zeros(len(ts)))
    with pytest.raises(InvalidInput):
        ref.encode(ts, [0.0] * len(ts))


def test_long_series_with_one_duplicate_names_its_index() -> None:
    ts = np.arange(5000, dtype=np.int64)
    ts[3210] = ts[3209]
    with pytest.raises(InvalidInput, match=r"ts\[3210\]"):
        encode(ts, np.zeros(5000))


@pytest.mark.parametrize(
    ("ts", "values"),
    [
        (np.arange(3), np.zeros(2)),
        (np.arange(2), np.zeros(3)),
        (np.arange(4).reshape(2, 2), np.zeros(4)),
        (np.arange(4), np.zeros((2, 2))),
        (np.arange(4).reshape(2, 2), np.zeros((2, 2))),
    ],
)
def test_mismatched_or_multidimensional_arrays_are_invalid(ts: I64, values: F64) -> None:
    with pytest.raises(InvalidInput, match="1-d arrays of one length"):
        encode(ts, values)


def _sample_chunks() -> list[bytes]:
    rng = np.random.default_rng(9)
    return [
        encode(np.array([], dtype=np.int64), np.array([])),
        encode([5], [1.0]),
        encode([1, 2, 4], [0.5, 0.25, -0.0]),
        encode(scrape_ts(40), np.cumsum(rng.integers(0, 9, 40)) / 10),
        encode(scrape_ts(140), rng.standard_normal(140)),
        encode(BASE_MS + np.cumsum(rng.geometric(0.3, 200)), np.full(200, 3.0)),
        encode([0, 2, 6, 8, 16], [4096.0, 8192.0, 0.0, 4096.0, 65536.0]),  # SCALED frames
        encode([10, 11, 13, 17], [1.0, float("nan"), 2.5, -1.0]),
        ref.encode([1, 3, 8, 9, 20], [1.0, 2.0, 2.0, 5.0, 7.0], timestamps="grid", frames="sparse"),
        ref.encode([1, 3, 8, 9, 20, 40], [1.0, 2.0, 2.0, 5.0, 7.0, 1.0], frames="patched", order=2),
        ref.encode([1, 3, 8, 9, 20, 40], [1.0, 2.0, 2.0, 5.0, 7.0, 1.0], frames="rice"),
        ref.encode([1, 3, 8, 9, 20, 40], [1.0, 2.0, 2.0, 5.0, 7.0, 1.0], frames="rice_zz"),
    ]


@pytest.mark.parametrize("chunk", _sample_chunks(), ids=lambda c: f"{len(c)}B")
def test_every_prefix_is_corruption(chunk: bytes) -> None:
    for cut in range(len(chunk)):
        prefix = chunk[:cut]
        with pytest.raises(Corruption):
            decode(prefix)
        with pytest.raises(Corruption):
            sample_count(prefix)
        with pytest.raises(Corruption):
            info(prefix)
        with pytest.raises(Corruption):
            ref.decode(prefix)
    with pytest.raises(Corruption):
        decode(chunk + b"\x00")  # and a trailing byte
    with pytest.raises(Corruption):
        ref.decode(chunk + b"\x00")


def _decode_or_none(chunk: bytes) -> tuple[list[int], list[int]] | None:
    try:
        ts, values = decode(chunk)
    except Corruption:
        return None
    return ts.tolist(), bits(values)


def _ref_or_reason(chunk: bytes) -> tuple[list[int], list[int]] | str:
    try:
        return ref.decode(chunk)
    except Corruption as exc:
        return str(exc)


@pytest.mark.parametrize("chunk", [c for c in _sample_chunks() if len(c) <= 64], ids=len)
def test_every_single_byte_change_is_corruption_or_agrees_with_the_oracle(chunk: bytes) -> None:
    for i in range(len(chunk)):
        for byte in range(256):
            if byte == chunk[i]:
                continue
            mutated = chunk[:i] + bytes([byte]) + chunk[i + 1 :]
            got = _decode_or_none(mutated)
            oracle = _ref_or_reason(mutated)
            if got is None:
                continue
            assert sample_count(mutated) == len(got[0])
            assert list(got[0]) == sorted(set(got[0]))  # what C returns always ascends
            # C accepting what the oracle rejects is a gap in C's validation
            assert got == oracle, f"byte {i} = {byte}"


def test_random_bytes_are_corruption_or_a_valid_chunk() -> None:
    rng = np.random.default_rng(12)
    for size in range(0, 64):
        for _ in range(40):
            blob = bytes(rng.integers(0, 256, size, dtype=np.uint8))
            for chunk in (blob, b"\x01" + blob, b"\x01\x01" + blob):
                got = _decode_or_none(chunk)
                oracle = _ref_or_reason(chunk)
                if got is not None and not isinstance(oracle, str):
                    assert got == oracle


def test_the_smallest_chunks() -> None:
    assert decode(b"\x01\x00")[0].tolist() == [] and ref.decode(b"\x01\x00") == ([], [])
    one = b"\x01\x01\x03\x00" + np.float64(2.0).tobytes()  # t0 = -2 (zigzag 3), CONST 2.0
    assert decode(one)[0].tolist() == [-2] and ref.decode(one) == ([-2], bits([2.0]))
    for bad in (b"", b"\x00", b"\x01", b"\x02\x00", b"\x01\x80", b"\x01\x00\x00"):
        with pytest.raises(Corruption):
            decode(bad)
        with pytest.raises(Corruption):
            ref.decode(bad)


# ------------------------------------ scaled and hand-made frames, info, threads


def test_page_multiples_take_scaled_frames() -> None:
    """Byte counts in 4 KiB pages: frames coded as (x - anchor) >> 12, decoded exactly."""
    rng = np.random.default_rng(6)
    pages = np.cumsum(rng.integers(0, 300, 700)) * 4096.0 + 2**33
    layout = roundtrip(scrape_ts(700), pages)
    assert layout.value_frames and all(k.startswith("scaled-") for k in layout.value_frames)
    assert roundtrip([0, 2, 6], [1.0, 1.0, 1.0]).timestamp_frames == ["scaled-for"]


def _varint(u: int) -> bytes:
    out = bytearray()
    while u >= 0x80:
        out.append(u & 0x7F | 0x80)
        u >>= 7
    return bytes([*out, u])


def _patched_chunk(exceptions: list[tuple[int, int]]) -> bytes:
    """Five samples whose four timestamp deltas are one PATCHED frame (width 2, base 1)."""
    head = bytes([1, 5, 2, 1])  # version 1, n = 5, t0 = 1 (zigzag 2), DELTA
    frame = bytes([1, 2, 2, len(exceptions)])  # PATCHED, width 2, base 1, exception count
    frame += b"".join(bytes([j]) + _varint(high) for j, high in exceptions)
    frame += bytes([0b01010101])  # four lows of 1
    return head + frame + bytes([0]) + np.float64(1.0).tobytes()  # CONST 1.0


def test_hand_made_patched_frame_decodes_in_both() -> None:
    chunk = _patched_chunk([(2, 1)])
    # deltas: base 1 + low 1 = 2, except index 2: 1 + (1 | 1 << 2) = 6
    assert ref.decode(chunk)[0] == [1, 3, 5, 11, 13]
    assert decode(chunk)[0].tolist() == [1, 3, 5, 11, 13]


def test_patched_frame_with_a_repeated_index_is_corruption() -> None:
    chunk = _patched_chunk([(2, 1), (2, 1)])
    with pytest.raises(Corruption):
        ref.decode(chunk)
    with pytest.raises(Corruption):
        decode(chunk)


def test_patched_frame_with_high_bits_beyond_64_is_corruption() -> None:
    chunk = _patched_chunk([(2, 2**62 + 1)])
    with pytest.raises(Corruption):
        ref.decode(chunk)
    with pytest.raises(Corruption):
        decode(chunk)


def test_info_of_an_empty_chunk() -> None:
    chunk = encode(np.array([], dtype=np.int64), np.array([]))
    assert info(chunk) == expected_info(ref.layout(chunk))
    assert (info(chunk)["timestamp_bytes"], info(chunk)["value_bytes"]) == (2, 0)


def test_threads_encoding_at_once_get_their_own_chunks() -> None:
    """The encoder's per-thread scratch: concurrent and interleaved calls stay exact."""
    rng = np.random.default_rng(10)
    work = [(scrape_ts(n, seed=n), rng.standard_normal(n)) for n in (5, 300, 2000, 7200)]
    expected = [encode(ts, values) for ts, values in work]

    def run(offset: int) -> bool:
        for i in range(40):
            ts, values = work[(i + offset) % len(work)]
            if encode(ts, values) != expected[(i + offset) % len(work)]:
                return False
        return True

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(run, range(4)))
    for (ts, values), chunk in zip(work, expected, strict=True):
        assert decode(chunk)[0].tolist() == ts.tolist()
        assert bits(decode(chunk)[1]) == bits(values)


# --------------------------------------------------------------- decode_into


def test_decode_into_the_middle_of_a_bigger_array() -> None:
    ts_in = scrape_ts(100)
    values_in = np.cumsum(np.ones(100)) / 4
    chunk = encode(ts_in, values_in)
    ts = np.full(1000, -7, dtype=np.int64)
    values = np.full(1000, -7.5)
    assert decode_into(chunk, ts, values, 300) == 100
    assert ts[300:400].tolist() == ts_in.tolist()
    assert bits(values[300:400]) == bits(values_in)
    untouched = np.r_[0:300, 400:1000]
    assert (ts[untouched] == -7).all() and (values[untouched] == -7.5).all()


def test_decode_into_exact_room_and_an_empty_chunk_at_the_end() -> None:
    chunk = encode([1, 2, 3], [1.0, 2.0, 3.0])
    ts, values = np.zeros(5, dtype=np.int64), np.zeros(5)
    assert decode_into(chunk, ts, values, 2) == 3
    assert ts.tolist() == [0, 0, 1, 2, 3]
    empty = encode(np.array([], dtype=np.int64), np.array([]))
    assert decode_into(empty, ts, values, 5) == 0
    assert decode_into(empty, np.zeros(0, dtype=np.int64), np.zeros(0)) == 0


@pytest.mark.parametrize("room", [0, 1, 49])
def test_decode_into_too_little_room_is_invalid_and_writes_nothing(room: int) -> None:
    chunk = encode(scrape_ts(50), np.arange(50.0))
    ts, values = np.full(99, 3, dtype=np.int64), np.full(99, 3.0)
    offset = 99 - room
    with pytest.raises(InvalidInput, match="room"):
        decode_into(chunk, ts, values, offset)
    assert (ts == 3).all() and (values == 3.0).all()


@pytest.mark.parametrize(
    ("ts_len", "values_len", "offset"), [(10, 10, -1), (10, 10, 11), (10, 9, 0), (9, 10, 0)]
)
def test_decode_into_bad_offset_or_arrays_is_invalid(
    ts_len: int, values_len: int, offset: int
) -> None:
    chunk = encode([1], [1.0])
    with pytest.raises(InvalidInput):
        decode_into(chunk, np.zeros(ts_len, dtype=np.int64), np.zeros(values_len), offset)


@pytest.mark.parametrize(
    "arrays",
    [
        (np.zeros(2, dtype=np.int32), np.zeros(2)),
        (np.zeros(2, dtype=np.int64), np.zeros(2, dtype=np.float32)),
        (np.zeros(4, dtype=np.int64)[::2], np.zeros(2)),
        (np.frombuffer(bytes(16), dtype=np.int64), np.zeros(2)),
    ],
    ids=["int32", "float32", "strided", "read-only"],
)
def test_decode_into_unusable_arrays_are_invalid_input(arrays: tuple[I64, F64]) -> None:
    with pytest.raises(InvalidInput):
        decode_into(encode([1, 2], [1.0, 2.0]), *arrays)


def test_encode_accepts_lists_strided_and_big_endian_arrays() -> None:
    wide = np.arange(20, dtype=">i8")[::2]
    chunk = encode(wide, np.arange(10, dtype=">f8"))
    assert decode(chunk)[0].tolist() == list(range(0, 20, 2))
    assert encode(list(range(0, 20, 2)), [float(i) for i in range(10)]) == chunk
    assert encode(wide.astype(np.int64), np.arange(10, dtype=np.float32)) == chunk


def test_decode_into_a_damaged_chunk_is_corruption() -> None:
    chunk = encode(scrape_ts(50), np.arange(50.0))
    with pytest.raises(Corruption):
        decode_into(chunk[:-1], np.zeros(50, dtype=np.int64), np.zeros(50))


def test_decode_into_concatenates_the_chunks_of_one_series() -> None:
    rng = np.random.default_rng(8)
    n = 3000
    ts_in = scrape_ts(n, seed=8)
    values_in = np.cumsum(rng.integers(0, 50, n)) / 10
    values_in[1500:1600] = np.nan
    cuts = [0, 1, 129, 129, 257, 1000, 1001, 2048, n]  # includes an empty chunk
    chunks = [encode(ts_in[a:b], values_in[a:b]) for a, b in itertools.pairwise(cuts)]
    ts, values = np.empty(n, dtype=np.int64), np.empty(n)
    offset = 0
    for chunk in chunks:
        offset += decode_into(chunk, ts, values, offset)
    assert offset == n
    assert ts.tolist() == ts_in.tolist()
    assert bits(values) == bits(values_in)


def test_decode_accepts_bytearray_and_memoryview() -> None:
    chunk = encode(scrape_ts(20), np.arange(20.0))
    for view in (bytearray(chunk), memoryview(chunk)):
        assert decode(view)[1].tolist() == list(range(20))
        assert sample_count(view) == 20


# ------------------------------------------------------------- compression


def test_node_exporter_data_takes_under_two_bytes_per_sample() -> None:
    """A regression guard on the encodings' choices (not a benchmark)."""
    samples = size = 0
    for series in node_exporter_series(2, hours=2.0):
        for start in range(0, len(series.ts), 120):
            ts, values = series.ts[start : start + 120], series.values[start : start + 120]
            chunk = encode(ts, values)
            assert ref.decode(chunk) == (ts.tolist(), bits(values))
            samples += len(ts)
            size += len(chunk)
    assert samples > 10_000
    assert size / samples < 2.0, f"{size / samples:.3f} bytes per sample"


def test_constant_and_ticker_series_are_tiny() -> None:
    ts = BASE_MS + np.arange(1024) * 15_000
    assert len(encode(ts, np.zeros(1024))) < 80  # 16 KiB of samples
