"""LEB128 varints: the compiled codec against the oracle, protobuf's encodings, hostile input."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import examples
from trusswork.core import _reference, varint
from trusswork.core.errors import Corruption, InvalidInput

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
UINT64 = st.integers(min_value=0, max_value=2**64 - 1)
# Bytes that make varints long, short, overlong and overflowing, for hostile input.
VARINT_BYTES = st.sampled_from([0x00, 0x01, 0x02, 0x7F, 0x80, 0x81, 0xFE, 0xFF])
HOSTILE = st.one_of(
    st.binary(max_size=64),
    st.lists(VARINT_BYTES, max_size=64).map(bytes),
)


def uint64_array(values: list[int]) -> np.ndarray:
    return np.array(values, dtype=np.uint64)


def offset_named(error: BaseException) -> int:
    match = re.search(r"byte offset (\d+)", str(error))
    assert match, f"the message does not name a byte offset: {error}"
    return int(match[1])


@settings(max_examples=examples(300))
@given(values=st.lists(INT64, max_size=50))
def test_int64_round_trip_with_zigzag(values: list[int]) -> None:
    encoded = varint.encode(values)
    assert encoded == _reference.varint_encode(values)
    decoded = varint.decode(encoded)
    assert decoded.dtype == np.int64
    assert decoded.tolist() == values


@settings(max_examples=examples(300))
@given(values=st.lists(UINT64, max_size=50))
def test_uint64_round_trip_without_zigzag(values: list[int]) -> None:
    encoded = varint.encode(uint64_array(values), zigzag=False)
    assert encoded == _reference.varint_encode(values, zigzag=False)
    decoded = varint.decode(encoded, zigzag=False)
    assert decoded.dtype == np.uint64
    assert decoded.tolist() == values
    assert _reference.varint_decode(encoded, zigzag=False) == values


def test_python_ints_beyond_int64_encode_without_zigzag() -> None:
    # A plain list mixing small values and values >= 2**63 is what users write.
    values = [5, 2**64 - 1, 2**63]
    encoded = varint.encode(values, zigzag=False)
    assert encoded == _reference.varint_encode(values, zigzag=False)
    assert varint.decode(encoded, zigzag=False).tolist() == values


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, b"\x00"),
        (1, b"\x01"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (150, b"\x96\x01"),
        (300, b"\xac\x02"),
        (2**32 - 1, b"\xff\xff\xff\xff\x0f"),
        (2**63, b"\x80" * 9 + b"\x01"),
        (2**64 - 1, b"\xff" * 9 + b"\x01"),
    ],
)
def test_protobuf_encodings(value: int, encoded: bytes) -> None:
    assert varint.encode(uint64_array([value]), zigzag=False) == encoded
    assert varint.decode(encoded, zigzag=False).tolist() == [value]
    assert _reference.varint_encode([value], zigzag=False) == encoded


@pytest.mark.parametrize(
    ("signed", "zigzagged"),
    [
        # The table in the protobuf encoding guide, extended to 64 bits.
        (0, 0),
        (-1, 1),
        (1, 2),
        (-2, 3),
        (2147483647, 4294967294),
        (-2147483648, 4294967295),
        (2**63 - 1, 2**64 - 2),
        (-(2**63), 2**64 - 1),
    ],
)
def test_zigzag_table(signed: int, zigzagged: int) -> None:
    encoded = varint.encode([signed])
    assert encoded == varint.encode(uint64_array([zigzagged]), zigzag=False)
    assert varint.decode(encoded).tolist() == [signed]
    assert varint.decode(encoded, zigzag=False).tolist() == [zigzagged]


def test_small_magnitudes_of_either_sign_take_one_byte() -> None:
    values = list(range(-64, 64))
    assert len(varint.encode(values)) == len(values)


def test_non_minimal_encodings_are_accepted() -> None:
    assert varint.decode(b"\x80\x00\x81\x80\x00", zigzag=False).tolist() == [0, 1]


def test_accepts_buffers_and_arrays() -> None:
    encoded = varint.encode([1, -2, 300])
    for data in (
        encoded,
        bytearray(encoded),
        memoryview(encoded),
        np.frombuffer(encoded, np.uint8),
    ):
        assert varint.decode(data).tolist() == [1, -2, 300]
    assert varint.encode(np.array([1, -2, 300], dtype=np.int32)) == encoded
    assert varint.encode(np.array([True, False])) == b"\x02\x00"


def test_empty_input() -> None:
    assert varint.encode([]) == b""
    assert varint.decode(b"").tolist() == []


@settings(max_examples=examples(200))
@given(
    junk=st.binary(max_size=20),
    first=st.lists(INT64, max_size=20),
    rest=st.lists(INT64, max_size=20),
)
def test_decode_prefix_reads_count_values_from_offset(
    junk: bytes, first: list[int], rest: list[int]
) -> None:
    head, tail = varint.encode(first), varint.encode(rest)
    data = junk + head + tail
    values, end = varint.decode_prefix(data, len(first), offset=len(junk))
    assert values.tolist() == first
    assert end == len(junk) + len(head)
    values, end = varint.decode_prefix(data, len(rest), offset=end)
    assert values.tolist() == rest
    assert end == len(data)


def test_decode_prefix_edges() -> None:
    data = varint.encode([7, 8])
    values, end = varint.decode_prefix(data, 0, offset=1)
    assert values.tolist() == []
    assert end == 1
    values, end = varint.decode_prefix(data, 1, zigzag=False, offset=1)
    assert values.tolist() == [16]
    assert end == 2


@pytest.mark.parametrize(("count", "offset"), [(-1, 0), (1, -1), (1, 3)])
def test_decode_prefix_rejects_bad_count_or_offset(count: int, offset: int) -> None:
    with pytest.raises(InvalidInput, match="decode_prefix"):
        varint.decode_prefix(b"\x01\x02", count, offset=offset)


def test_decode_prefix_with_too_few_values_is_corruption() -> None:
    with pytest.raises(Corruption, match="expected 3 varints from byte offset 1"):
        varint.decode_prefix(b"\x01\x02\x03", 3, offset=1)


def test_decode_prefix_names_the_absolute_offset_of_damage() -> None:
    # The truncated varint starts at byte 3 of the buffer, whatever `offset` was.
    with pytest.raises(Corruption) as info:
        varint.decode_prefix(b"\x00\x00\x01\x82", 2, offset=2)
    assert offset_named(info.value) == 3


def test_negative_value_without_zigzag_names_its_index() -> None:
    with pytest.raises(InvalidInput, match=r"negative value -3 at index 2 needs zigzag=True"):
        varint.encode([1, 2, -3], zigzag=False)
    with pytest.raises(InvalidInput, match="index 2"):
        _reference.varint_encode([1, 2, -3], zigzag=False)


@pytest.mark.parametrize("values", [[1.5], [1.0, 2.0], np.array([0.5]), ["1"], [2**64]])
def test_non_integers_are_invalid(values: object) -> None:
    with pytest.raises(InvalidInput):
        varint.encode(values)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        varint.encode(values, zigzag=False)  # type: ignore[arg-type]


def test_values_beyond_int64_need_zigzag_false() -> None:
    with pytest.raises(InvalidInput, match="zigzag=False"):
        varint.encode(uint64_array([2**63]))
    with pytest.raises(InvalidInput):
        _reference.varint_encode([2**63])


@pytest.mark.parametrize(
    ("data", "offset", "problem"),
    [
        (b"\x80", 0, "ends inside"),
        (b"\x01\x02\xff\xff", 2, "ends inside"),
        (b"\x00" + b"\x80" * 9 + b"\x01" + b"\x80", 11, "ends inside"),
        (b"\x05" + b"\x80" * 10 + b"\x00", 1, "longer than 10 bytes"),
        (b"\xff" * 9 + b"\x02", 0, "exceeds 64 bits"),
        (b"\x00" * 20 + b"\xff" * 9 + b"\x7f", 20, "exceeds 64 bits"),
    ],
)
def test_damaged_input_is_corruption_naming_the_offset(
    data: bytes, offset: int, problem: str
) -> None:
    for decode in (varint.decode, _reference.varint_decode):
        with pytest.raises(Corruption, match=problem) as info:
            decode(data)
        assert offset_named(info.value) == offset


@settings(max_examples=examples(500))
@given(data=HOSTILE, zigzag=st.booleans())
def test_arbitrary_bytes_decode_like_the_oracle_or_raise_corruption(
    data: bytes, zigzag: bool
) -> None:
    try:
        expected = _reference.varint_decode(data, zigzag=zigzag)
    except Corruption as oracle_error:
        with pytest.raises(Corruption) as info:
            varint.decode(data, zigzag=zigzag)
        assert offset_named(info.value) == offset_named(oracle_error)
    else:
        assert varint.decode(data, zigzag=zigzag).tolist() == expected


@settings(max_examples=examples(300))
@given(data=HOSTILE, count=st.integers(0, 70), offset=st.integers(0, 64))
def test_arbitrary_bytes_into_decode_prefix_never_crash(
    data: bytes, count: int, offset: int
) -> None:
    if offset > len(data):
        with pytest.raises(InvalidInput):
            varint.decode_prefix(data, count, offset=offset)
        return
    try:
        values, end = varint.decode_prefix(data, count, offset=offset)
    except Corruption:
        return
    assert len(values) == count
    assert offset <= end <= len(data)
    assert values.tolist() == _reference.varint_decode(data[offset:end])
