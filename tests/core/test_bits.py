"""Bit packing: the compiled packer and reader against the oracle, widths 0..64."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import examples
from trusswork.core import _reference, bits
from trusswork.core.errors import Corruption, InvalidInput

WIDTH = st.integers(min_value=0, max_value=64)


@st.composite
def widths_and_values(draw: st.DrawFn, max_size: int = 40) -> tuple[list[int], list[int]]:
    widths = draw(st.lists(WIDTH, max_size=max_size))
    values = [draw(st.integers(min_value=0, max_value=(1 << w) - 1)) for w in widths]
    return widths, values


def as_uint64(values: list[int]) -> np.ndarray:
    return np.array(values, dtype=np.uint64)


@settings(max_examples=examples(300))
@given(case=widths_and_values())
def test_pack_and_unpack_match_the_oracle(case: tuple[list[int], list[int]]) -> None:
    widths, values = case
    packed = bits.pack(as_uint64(values), widths)
    assert packed == _reference.bits_pack(values, widths)
    assert len(packed) == (sum(widths) + 7) // 8
    unpacked = bits.unpack(packed, widths)
    assert unpacked.dtype == np.uint64
    assert unpacked.tolist() == values
    assert _reference.bits_unpack(packed, widths) == values


@settings(max_examples=examples(200))
@given(width=WIDTH, data=st.data())
def test_single_width_with_count(width: int, data: st.DataObject) -> None:
    values = data.draw(st.lists(st.integers(0, (1 << width) - 1), max_size=40))
    packed = bits.pack(as_uint64(values), width)
    assert packed == _reference.bits_pack(values, width)
    assert bits.unpack(packed, width, count=len(values)).tolist() == values
    assert bits.unpack(packed, [width] * len(values)).tolist() == values


def test_layout_is_most_significant_bit_first_with_zero_padding() -> None:
    assert bits.pack([1, 0, 5], [1, 2, 3]) == bytes([0b1_00_101_00])
    assert bits.pack([0xABC], [12]) == b"\xab\xc0"
    assert bits.unpack(b"\xab\xc0", [4, 4, 4]).tolist() == [0xA, 0xB, 0xC]


def test_zero_widths_take_no_space() -> None:
    assert bits.pack([0, 0, 0], [0, 0, 0]) == b""
    assert bits.unpack(b"", 0, count=5).tolist() == [0] * 5


def test_full_width_values() -> None:
    values = as_uint64([2**64 - 1, 0, 2**63])
    packed = bits.pack(values, 64)
    assert packed == b"\xff" * 8 + bytes(8) + b"\x80" + bytes(7)
    assert bits.unpack(packed, 64, count=3).tolist() == [2**64 - 1, 0, 2**63]


def test_trailing_bytes_are_ignored() -> None:
    assert bits.unpack(b"\xf0\xff\xff", [4]).tolist() == [15]


@pytest.mark.parametrize(("value", "width"), [(2, 1), (1, 0), (256, 8), (2**32, 32), (2**63, 63)])
def test_value_too_wide_for_its_width_is_invalid(value: int, width: int) -> None:
    with pytest.raises(InvalidInput, match="value at index 1 does not fit its bit width"):
        bits.pack(as_uint64([0, value]), [width, width])
    with pytest.raises(InvalidInput, match="index 1"):
        _reference.bits_pack([0, value], [width, width])


@pytest.mark.parametrize("width", [-1, 65, 200])
def test_widths_outside_0_to_64_are_invalid(width: int) -> None:
    with pytest.raises(InvalidInput, match=rf"width {width} at index 1 is not in 0\.\.64"):
        bits.pack([0, 0], [1, width])
    with pytest.raises(InvalidInput, match=r"not in 0\.\.64"):
        bits.unpack(b"\x00" * 20, [1, width])
    with pytest.raises(InvalidInput, match=r"not in 0\.\.64"):
        _reference.bits_pack([0, 0], [1, width])


def test_mismatched_counts_and_missing_count_are_invalid() -> None:
    with pytest.raises(InvalidInput, match="1 widths for 2 values"):
        bits.pack([1, 2], [3])
    with pytest.raises(InvalidInput, match="count="):
        bits.unpack(b"\xff", 4)
    with pytest.raises(InvalidInput, match="count="):
        _reference.bits_unpack(b"\xff", 4)
    with pytest.raises(InvalidInput, match="non-negative"):
        bits.unpack(b"\xff", 4, count=-1)


def test_negative_or_fractional_values_are_invalid() -> None:
    with pytest.raises(InvalidInput):
        bits.pack([1, -1], 8)
    with pytest.raises(InvalidInput):
        bits.pack([1.5], 8)
    with pytest.raises(InvalidInput):
        bits.pack([1], [1.5])


def test_truncated_data_is_corruption() -> None:
    packed = bits.pack([1, 2, 3], [20, 20, 20])  # 60 bits in 8 bytes
    with pytest.raises(Corruption, match=r"input of 7 bytes ends inside value 2 of 3"):
        bits.unpack(packed[:7], [20, 20, 20])
    with pytest.raises(Corruption, match=r"input of 7 bytes ends inside value 2 of 3"):
        _reference.bits_unpack(packed[:7], [20, 20, 20])


@settings(max_examples=examples(500))
@given(data=st.binary(max_size=48), widths=st.lists(WIDTH, max_size=16))
def test_unpack_of_arbitrary_bytes_matches_the_oracle_or_raises_corruption(
    data: bytes, widths: list[int]
) -> None:
    try:
        expected = _reference.bits_unpack(data, widths)
    except Corruption:
        with pytest.raises(Corruption):
            bits.unpack(data, widths)
    else:
        assert bits.unpack(data, widths).tolist() == expected


@settings(max_examples=examples(100))
@given(case=widths_and_values(max_size=400))
def test_pack_of_a_long_run_round_trips(case: tuple[list[int], list[int]]) -> None:
    widths, values = case
    packed = bits.pack(as_uint64(values), np.array(widths, dtype=np.uint8))
    assert bits.unpack(memoryview(packed), np.array(widths, dtype=np.int64)).tolist() == values
