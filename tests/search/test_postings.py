"""Posting lists against Python sets: set operations, the encoding, damage."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trusswork.core.errors import Corruption, InvalidInput
from trusswork.search._postings import encode_postings_many
from trusswork.search.postings import (
    decode_postings,
    difference,
    encode_postings,
    intersect,
    intersect_many,
    union,
    union_many,
)

ID_MAX = 2**32 - 1


def as_list(ids: set[int]) -> npt.NDArray[np.uint32]:
    return np.array(sorted(ids), dtype=np.uint32)


def is_postings(arr: npt.NDArray[np.uint32]) -> bool:
    return arr.dtype == np.uint32 and arr.ndim == 1 and bool(np.all(arr[1:] > arr[:-1]))


@st.composite
def strided_sets(draw: st.DrawFn) -> set[int]:
    """A long arithmetic run with holes: large lists for the galloping paths."""
    start = draw(st.integers(0, 2000))
    step = draw(st.integers(1, 7))
    count = draw(st.integers(0, 3000))
    holes = draw(st.sets(st.integers(0, max(count - 1, 0)), max_size=20))
    return {start + i * step for i in range(count) if i not in holes}


id_sets = st.one_of(
    st.sets(st.integers(0, 400), max_size=300),  # dense, overlapping
    st.sets(st.integers(0, ID_MAX), max_size=60),  # anywhere, up to the top id
    st.sets(st.integers(0, 40), max_size=4),  # tiny against anything: gallop
    strided_sets(),
)


@given(id_sets, id_sets)
def test_pairwise_operations_match_python_sets(a: set[int], b: set[int]) -> None:
    x, y = as_list(a), as_list(b)
    for got, want in (
        (intersect(x, y), a & b),
        (union(x, y), a | b),
        (difference(x, y), a - b),
        (difference(y, x), b - a),
    ):
        assert is_postings(got)
        assert got.tolist() == sorted(want)


@given(st.lists(id_sets, max_size=6))
def test_many_operations_match_python_sets(sets: list[set[int]]) -> None:
    lists = [as_list(s) for s in sets]
    want_and = sorted(sets[0].intersection(*sets[1:])) if sets else []
    want_or = sorted(set().union(*sets))
    got_and, got_or = intersect_many(lists), union_many(lists)
    assert is_postings(got_and) and got_and.tolist() == want_and
    assert is_postings(got_or) and got_or.tolist() == want_or


@given(id_sets)
def test_encode_decode_round_trip_is_canonical(ids: set[int]) -> None:
    data = encode_postings(as_list(ids))
    decoded = decode_postings(data)
    assert is_postings(decoded)
    assert decoded.tolist() == sorted(ids)
    assert encode_postings(decoded) == data


def test_large_lists_agree_with_numpy() -> None:
    rng = np.random.default_rng(7)
    big = np.unique(rng.integers(0, 2_000_000, 300_000)).astype(np.uint32)
    small = np.unique(rng.integers(0, 2_000_000, 3_000)).astype(np.uint32)
    other = np.unique(rng.integers(0, 2_000_000, 250_000)).astype(np.uint32)
    assert np.array_equal(intersect(big, small), np.intersect1d(big, small))
    assert np.array_equal(intersect(small, big), np.intersect1d(big, small))
    assert np.array_equal(intersect(big, other), np.intersect1d(big, other))
    assert np.array_equal(union(big, other), np.union1d(big, other))
    assert np.array_equal(difference(big, small), np.setdiff1d(big, small))
    assert np.array_equal(difference(small, big), np.setdiff1d(small, big))
    assert np.array_equal(
        intersect_many([big, other, small]), np.intersect1d(np.intersect1d(big, other), small)
    )
    assert np.array_equal(
        union_many([big, other, small]), np.union1d(np.union1d(big, other), small)
    )
    assert np.array_equal(decode_postings(encode_postings(big)), big)


def test_other_integer_dtypes_and_layouts_are_converted() -> None:
    ids = np.array([1, 5, 9, 12], dtype=np.uint32)
    assert intersect([5, 12, 40], ids).tolist() == [5, 12]
    assert union(np.array([2], dtype=np.int8), ids).tolist() == [1, 2, 5, 9, 12]
    assert difference(ids.astype(np.uint64), np.array([9], dtype=np.int64)).tolist() == [1, 5, 12]
    assert intersect(ids.astype(">u4"), ids).tolist() == ids.tolist()
    readonly = np.frombuffer(ids.tobytes(), dtype=np.uint32)
    assert union(readonly, [0]).tolist() == [0, 1, 5, 9, 12]
    strided = np.arange(0, 40, dtype=np.uint32)[::4]
    assert intersect(strided, ids).tolist() == [12]
    assert union([], []).dtype == np.uint32
    assert decode_postings(encode_postings([ID_MAX])).tolist() == [ID_MAX]


@pytest.mark.parametrize(
    "bad",
    [[-1, 3], [2**32], np.array([1.5]), np.array([[1, 2]], dtype=np.uint32), "abc", 7],
)
def test_bad_ids_are_invalid_input(bad: object) -> None:
    with pytest.raises(InvalidInput):
        intersect(bad, [1])  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        union_many([[1], bad])  # type: ignore[list-item]
    with pytest.raises(InvalidInput):
        encode_postings(bad)  # type: ignore[arg-type]


def test_encode_refuses_unsorted_ids_and_says_where() -> None:
    with pytest.raises(InvalidInput, match="index 3"):
        encode_postings([1, 4, 8, 8, 10])
    with pytest.raises(InvalidInput, match="index 200"):
        encode_postings(np.r_[np.arange(200), [150]])


@given(st.lists(st.integers(0, 1000), max_size=50), st.lists(st.integers(0, 1000), max_size=50))
def test_unsorted_input_gives_some_list_without_failing(a: list[int], b: list[int]) -> None:
    # Sortedness is the caller's duty; the kernel must still stay in bounds.
    assert len(intersect(a, b)) <= min(len(a), len(b))
    assert len(union(a, b)) <= len(a) + len(b)
    assert len(difference(a, b)) <= len(a)
    assert len(union_many([a, b, a])) <= 2 * len(a) + len(b)


def test_dense_runs_encode_compactly() -> None:
    data = encode_postings(np.arange(10_000, 20_000, dtype=np.uint32))
    # One width byte and one 8-byte skip entry per 128 ids.
    assert len(data) < 10_000 // 128 * 9 + 20
    sparse = np.arange(0, 10_000 * 1000, 1000, dtype=np.uint32)
    assert len(encode_postings(sparse)) < 10_000 * 1.4


def test_decode_accepts_any_contiguous_bytes() -> None:
    data = encode_postings([3, 30, 300])
    assert decode_postings(bytearray(data)).tolist() == [3, 30, 300]
    assert decode_postings(memoryview(data)).tolist() == [3, 30, 300]
    with pytest.raises(InvalidInput):
        decode_postings("not bytes")  # type: ignore[arg-type]


def test_every_truncation_and_byte_flip_is_corruption_with_an_offset() -> None:
    ids = np.unique(np.random.default_rng(3).integers(0, 50_000, 400)).astype(np.uint32)
    data = encode_postings(ids)
    for cut in range(len(data)):
        with pytest.raises(Corruption, match=r"byte offset \d+"):
            decode_postings(data[:cut])
    with pytest.raises(Corruption, match=r"byte offset \d+"):
        decode_postings(data + b"\0")
    for at in range(len(data)):
        damaged = bytearray(data)
        damaged[at] ^= 0x10
        with pytest.raises(Corruption, match=r"byte offset \d+"):
            decode_postings(bytes(damaged))


@settings(max_examples=300)
@given(
    id_sets,
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4),
    st.integers(0, 10_000),
)
def test_fuzzed_encodings_decode_or_raise_corruption(
    ids: set[int], edits: list[tuple[int, int]], cut: int
) -> None:
    damaged = bytearray(encode_postings(as_list(ids)))
    for at, value in edits:
        damaged[at % len(damaged)] = value
    del damaged[len(damaged) - cut % 3 :]
    try:
        decoded = decode_postings(bytes(damaged))
    except Corruption as exc:
        assert "byte offset" in str(exc)
    else:
        assert is_postings(decoded)


@given(st.binary(max_size=200))
def test_random_bytes_decode_or_raise_corruption(data: bytes) -> None:
    try:
        decoded = decode_postings(data)
    except Corruption:
        return
    assert is_postings(decoded)


posting_lists = st.lists(st.sets(st.integers(0, ID_MAX), max_size=300) | strided_sets(), max_size=8)


@given(posting_lists)
@settings(max_examples=200)
def test_encode_postings_many_is_encode_postings_per_list(sets: list[set[int]]) -> None:
    lists = [as_list(s) for s in sets]
    starts = np.cumsum([0] + [len(x) for x in lists])
    ids = np.concatenate(lists) if lists else np.empty(0, dtype=np.uint32)
    blob, offsets = encode_postings_many(ids, starts)
    expected = [encode_postings(x) for x in lists]
    assert (
        offsets.dtype == np.uint64
        and offsets.tolist() == np.cumsum([0] + [len(e) for e in expected]).tolist()
    )
    assert blob == b"".join(expected)
    for i, x in enumerate(lists):
        assert decode_postings(blob[offsets[i] : offsets[i + 1]]).tolist() == x.tolist()


def test_encode_postings_many_names_the_list_out_of_order() -> None:
    ids = np.array([1, 2, 3, 7, 9, 9, 10], dtype=np.uint32)
    with pytest.raises(InvalidInput, match=r"list 1: .* index 2"):
        encode_postings_many(ids, [0, 3, 7])


@pytest.mark.parametrize("starts", [[1, 3], [0, 2], [0, 3, 1, 3], [], [[0, 3]], [0.0, 3.0]])
def test_encode_postings_many_refuses_bad_bounds(starts: list[object]) -> None:
    with pytest.raises(InvalidInput):
        encode_postings_many(np.array([1, 2, 3], dtype=np.uint32), starts)  # type: ignore[arg-type]
