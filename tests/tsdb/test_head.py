"""Head series and WAL records: storage vs a dict oracle, the admission policy, record format."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import examples
from trusswork.core.errors import Corruption
from trusswork.tsdb._head import (
    HeadSeries,
    decode_record,
    encode_samples,
    encode_series,
    encode_series_samples,
)
from trusswork.tsdb._series import STALE_NAN, labels_of

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

timestamps = st.integers(-50, 400)
floats = st.one_of(st.floats(allow_nan=False, width=64), st.just(STALE_NAN))


def bits(values: npt.ArrayLike) -> list[int]:
    out: list[int] = np.asarray(values, dtype=np.float64).view(np.uint64).tolist()
    return out


def arrays(samples: list[tuple[int, float]]) -> tuple[I64, F64]:
    return (
        np.array([t for t, _ in samples], np.int64),
        np.array([v for _, v in samples], np.float64),
    )


@settings(max_examples=examples(150), deadline=None)
@given(
    st.lists(st.lists(st.tuples(timestamps, floats), max_size=30), max_size=8),
    st.integers(-60, 400),
    st.integers(0, 450),
)
def test_apply_read_and_cut_match_a_dict(
    calls: list[list[tuple[int, float]]], mint: int, boundary: int
) -> None:
    """Unchecked apply (WAL replay) is last-write-wins; reads and cuts see exactly that."""
    series = HeadSeries(0, chunk_samples=4)  # tiny chunks: sealing happens all the time
    oracle: dict[int, float] = {}
    for lsn, call in enumerate(calls, start=1):
        series.apply(*arrays(call), lsn)
        oracle.update(call)
    ts, values = series.read(mint, 10_000)
    expect = sorted((t, v) for t, v in oracle.items() if t >= mint)
    assert ts.tolist() == [t for t, _ in expect]
    assert bits(values) == bits([v for _, v in expect])
    for t, v in oracle.items():
        stored = series.value_at(t)
        assert stored is not None and bits([stored]) == bits([v])

    cut_ts, cut_values = series.cut(boundary)
    below = sorted((t, v) for t, v in oracle.items() if t < boundary)
    assert cut_ts.tolist() == [t for t, _ in below]
    assert bits(cut_values) == bits([v for _, v in below])
    rest_ts, _ = series.read(-(1 << 62), 1 << 62)
    assert rest_ts.tolist() == sorted(t for t in oracle if t >= boundary)
    assert series.empty == (not rest_ts.size)


def admit(
    series: HeadSeries, samples: list[tuple[int, float]], **policy: Any
) -> tuple[list[tuple[int, float]], int, int]:
    options: dict[str, Any] = {"lower_bound": -(1 << 62), "window_ms": 0, "policy": "reject"}
    options.update(policy)
    ts, values, ooo, dup = series.admit(*arrays(samples), **options)
    return list(zip(ts.tolist(), values.tolist(), strict=True)), ooo, dup


def stored(samples: list[tuple[int, float]]) -> HeadSeries:
    series = HeadSeries(0, chunk_samples=3)
    series.apply(*arrays(samples), 1)
    return series


def test_admit_rejects_older_samples_without_a_window() -> None:
    series = stored([(10, 1.0), (20, 2.0)])
    assert admit(series, [(15, 5.0), (25, 6.0)]) == ([(25, 6.0)], 1, 0)


def test_admit_accepts_older_samples_within_the_window_only() -> None:
    series = stored([(100, 1.0)])
    kept, ooo, dup = admit(series, [(40, 1.0), (60, 2.0), (99, 3.0)], window_ms=50)
    assert (kept, ooo, dup) == ([(60, 2.0), (99, 3.0)], 1, 0)


def test_admit_never_accepts_below_the_lower_bound() -> None:
    fresh = HeadSeries(0, chunk_samples=3)
    assert admit(fresh, [(5, 1.0), (50, 2.0)], lower_bound=10, window_ms=1000) == (
        [(50, 2.0)],
        1,
        0,
    )


def test_duplicates_same_value_is_a_no_op_and_different_value_is_rejected() -> None:
    series = stored([(10, 1.0), (20, 2.0), (30, float("nan"))])
    kept, ooo, dup = admit(series, [(20, 2.0), (30, float("nan")), (20, 9.0)], window_ms=100)
    assert (kept, ooo, dup) == ([], 0, 1)
    # The stale marker is not the same value as an ordinary NaN.
    assert admit(series, [(30, STALE_NAN)], window_ms=100)[2] == 1


def test_retrying_old_identical_samples_is_safe_without_a_window() -> None:
    series = stored([(10, 1.0), (20, 2.0), (30, 3.0)])
    assert admit(series, [(10, 1.0), (20, 2.0), (40, 4.0)]) == ([(40, 4.0)], 0, 0)
    assert admit(series, [(10, 1.5)]) == ([], 1, 0)  # a changed old value is out of order


def test_duplicates_within_one_call() -> None:
    fresh = HeadSeries(0, chunk_samples=3)
    assert admit(fresh, [(5, 1.0), (5, 1.0), (5, 2.0)]) == ([(5, 1.0)], 0, 1)
    kept, _, dup = admit(fresh, [(5, 1.0), (5, 2.0)], policy="last-write-wins")
    assert (kept, dup) == ([(5, 2.0)], 0)


def test_last_write_wins_replaces_a_sealed_value() -> None:
    series = stored([(1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0)])  # 1..3 are a sealed chunk
    # Without a window only the newest timestamp may be rewritten.
    assert admit(series, [(2, 20.0)], policy="last-write-wins") == ([], 1, 0)
    kept, _, dup = admit(series, [(2, 20.0), (4, 40.0)], policy="last-write-wins", window_ms=5)
    assert (kept, dup) == ([(2, 20.0), (4, 40.0)], 0)
    series.apply(*arrays(kept), 2)
    assert series.read(0, 10)[1].tolist() == [1.0, 20.0, 3.0, 40.0]


def test_min_lsn_is_the_oldest_record_still_held() -> None:
    series = HeadSeries(0, chunk_samples=2)
    series.apply(*arrays([(1, 1.0), (2, 2.0)]), 5)  # sealed chunk, LSN 5
    series.apply(*arrays([(3, 3.0)]), 9)  # open chunk, LSN 9
    assert series.min_lsn() == 5
    series.cut(3)
    assert series.min_lsn() == 9
    series.cut(4)
    assert series.empty and series.min_lsn() > 1 << 60


@settings(max_examples=examples(100), deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2**32 - 1),
            st.dictionaries(st.text(min_size=1), st.text(min_size=1), min_size=1),
        ),
        max_size=5,
    ),
    st.lists(
        st.tuples(st.integers(0, 2**32 - 1), st.integers(-(2**63), 2**63 - 1), floats), max_size=20
    ),
)
def test_records_round_trip(
    definitions: list[tuple[int, dict[str, str]]], samples: list[tuple[int, int, float]]
) -> None:
    items = [(ref, labels_of(labels)) for ref, labels in definitions]
    assert decode_record(encode_series(items)) == items
    refs = np.array([r for r, _, _ in samples], np.uint32)
    ts = np.array([t for _, t, _ in samples], np.int64)
    values = np.array([v for _, _, v in samples], np.float64)
    record = decode_record(encode_samples(refs, ts, values))
    assert isinstance(record, tuple)
    got_refs, got_ts, got_values = record
    assert got_refs.tolist() == refs.tolist() and got_ts.tolist() == ts.tolist()
    assert bits(got_values) == bits(values)
    one = decode_record(encode_series_samples(7, ts, values))
    assert isinstance(one, tuple)
    assert one[0].tolist() == [7] * len(ts) and one[1].tolist() == ts.tolist()


@settings(max_examples=examples(300), deadline=None)
@given(st.binary(max_size=64))
def test_malformed_records_raise_corruption(payload: bytes) -> None:
    with contextlib.suppress(Corruption):
        decode_record(payload)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x09",
        b"\x02\x05\x00\x00\x00",
        b"\x03\x01\x00\x00\x00\x02\x00\x00\x00",
        b"\x01\x02\x00\x00\x00" + b"\x00" * 8 + b"a\xffb",
    ],
)
def test_known_bad_records(payload: bytes) -> None:
    with pytest.raises(Corruption, match="malformed"):
        decode_record(payload)
