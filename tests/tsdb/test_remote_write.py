"""Remote write 1.0: snappy block codec, protobuf WriteRequest, damage and fuzzing."""

from __future__ import annotations

import operator
import re
import string
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trusswork.core.errors import Corruption, InvalidInput, ParseError
from trusswork.tsdb._ingest import ParsedBatch, Sample
from trusswork.tsdb._remote_write import (
    DEFAULT_MAX_SIZE,
    decode_write_request,
    encode_write_request,
    snappy_compress,
    snappy_decompress,
)
from trusswork.tsdb._series import STALE_NAN, labels_of

# ------------------------------------------------------------ hand-made protobuf


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def key(field: int, wire: int) -> bytes:
    return varint(field << 3 | wire)


def ld(field: int, payload: bytes) -> bytes:
    return key(field, 2) + varint(len(payload)) + payload


def label(name: str, value: str) -> bytes:
    return ld(1, ld(1, name.encode()) + ld(2, value.encode()))


def sample(value: float, ts: int) -> bytes:
    return ld(2, key(1, 1) + struct.pack("<d", value) + key(2, 0) + varint(ts))


def series(*parts: bytes) -> bytes:
    return ld(1, b"".join(parts))


def decode_proto(proto: bytes) -> ParsedBatch:
    return decode_write_request(snappy_compress(proto))


# A field of every wire type, groups nested, for the skipping rules.
UNKNOWN = (
    key(9, 0) + varint(2**64 - 1)
    + key(10, 1) + b"12345678"
    + ld(11, b"\x0a\x03abc")
    + key(12, 5) + b"1234"
    + key(13, 3) + key(1, 0) + b"\x01" + key(14, 3) + ld(2, b"xy") + key(14, 4) + key(13, 4)
)  # fmt: skip


# ------------------------------------------------------------------------- snappy


def test_snappy_hand_made_blocks() -> None:
    assert snappy_decompress(b"\x00") == b""
    assert snappy_decompress(b"\x03\x08abc") == b"abc"
    # literal "ab", then a 2-byte-offset copy of 8 bytes at offset 2 (overlapping)
    assert snappy_decompress(b"\x0a\x04ab\x1e\x02\x00") == b"ababababab"
    # literal "abcd", then a 1-byte-offset copy: length 4 + 3, offset 1 (run of 'd')
    assert snappy_decompress(b"\x0b\x0cabcd\x0d\x01") == b"abcdddddddd"
    # 4-byte-offset copy of 3 bytes at offset 4
    assert snappy_decompress(b"\x07\x0cabcd\x0b\x04\x00\x00\x00") == b"abcdabc"
    # literal with a 1-byte length (tag 60): 100 bytes
    assert snappy_decompress(b"\x64\xf0\x63" + bytes(range(100))) == bytes(range(100))
    # literal with a 2-byte length (tag 61): 300 bytes
    data = bytes(300)
    assert snappy_decompress(varint(300) + b"\xf4\x2b\x01" + data) == data


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (b"", "truncated length header at byte 0"),
        (b"\x80\x80", "truncated length header at byte 0"),
        (b"\x80\x80\x80\x80\x80\x01", "longer than 5 bytes at byte 4"),
        (b"\xff\xff\xff\xff\x1f" + bytes(10**6), "exceeds 2^32-1"),
        (b"\x05\x10ab", "literal of 5 bytes at byte 1 runs past the end"),
        (b"\x05\xf0", "literal length cut short at byte 1"),
        (b"\x03\x0cabcd", "literal at byte 1 grows the output past the declared 3"),
        (b"\x05\x04ab\x01", "copy cut short at byte 4"),
        (b"\x05\x04ab\x02\x01", "copy cut short at byte 4"),
        (b"\x05\x04ab\x03\x01\x00\x00", "copy cut short at byte 4"),
        (b"\x06\x04ab\x01\x00", "copy at byte 4 has offset 0"),
        (b"\x06\x04ab\x0a\x03\x00", "copy at byte 4 has offset 3 with 2 bytes of output"),
        (b"\x05\x04ab\x0e\x02\x00", "copy at byte 4 grows the output past the declared 5"),
        (b"\x05\x04ab", "block ends at byte 4 after 2 bytes, header declared 5"),
        (b"\x64\x00", "cannot come from 1 bytes of elements"),
    ],
)
def test_snappy_damage_names_the_fault_and_byte(block: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        snappy_decompress(block)


def test_snappy_bomb_is_refused_before_decompressing() -> None:
    block = snappy_compress(bytes(200_000))
    assert len(block) < 20_000
    with pytest.raises(InvalidInput, match="exceeds the limit of 100000 bytes"):
        snappy_decompress(block, max_size=100_000)
    assert snappy_decompress(block) == bytes(200_000)
    with pytest.raises(InvalidInput, match="limit"):
        decode_write_request(block, max_size=1000)
    assert DEFAULT_MAX_SIZE == 64 << 20


def test_snappy_compressor_finds_repeats_and_far_offsets() -> None:
    text = b"the quick brown fox jumps over the lazy dog. " * 200
    assert len(snappy_compress(text)) < len(text) // 10
    far = bytes(range(256)) * 300  # repeats at a 256-byte period beyond a 64 KiB window too
    blob = far + bytes(70_000) + far
    assert snappy_decompress(snappy_compress(blob)) == blob


@settings(max_examples=200)
@given(st.binary(max_size=300), st.integers(1, 40))
def test_snappy_round_trip(chunk: bytes, repeat: int) -> None:
    data = chunk * repeat + chunk[: len(chunk) // 2]
    assert snappy_decompress(snappy_compress(data)) == data


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_fuzz_snappy_random_blocks(block: bytes) -> None:
    try:
        out = snappy_decompress(block, max_size=1 << 16)
    except InvalidInput:
        return
    assert snappy_decompress(snappy_compress(out)) == out


# ----------------------------------------------------------------------- protobuf


def test_decodes_series_labels_and_samples() -> None:
    proto = series(
        label("__name__", "up"), label("job", "api"), sample(1.0, 1000), sample(0.5, 2000)
    ) + series(label("instance", "b:9"), label("__name__", "down"), sample(-2.0, -5))
    batch = decode_proto(proto)
    assert batch.errors == []
    up = (("__name__", "up"), ("job", "api"))
    down = (("__name__", "down"), ("instance", "b:9"))  # labels come back sorted
    assert batch.samples == [
        Sample(up, 1000, 1.0),
        Sample(up, 2000, 0.5),
        Sample(down, -5, -2.0),
    ]


def test_unknown_fields_metadata_and_groups_are_skipped_at_every_level() -> None:
    proto = (
        UNKNOWN
        + ld(3, ld(1, varint(1)) + ld(2, b"up"))  # MetricMetadata
        + series(
            UNKNOWN,
            ld(1, UNKNOWN + ld(1, b"__name__") + UNKNOWN + ld(2, b"up") + UNKNOWN),
            ld(2, UNKNOWN + key(1, 1) + struct.pack("<d", 3.0) + UNKNOWN + key(2, 0) + varint(7)),
            ld(3, b"\x0a\x00"),  # exemplar
            ld(4, b"\x08\x01"),  # native histogram
        )
        + UNKNOWN
    )
    batch = decode_proto(proto)
    assert batch.errors == []
    assert batch.samples == [Sample((("__name__", "up"),), 7, 3.0)]


def test_proto3_defaults_and_last_scalar_wins() -> None:
    proto = series(
        label("__name__", "m"),
        ld(2, b""),  # no value, no timestamp
        ld(2, key(1, 1) + struct.pack("<d", 1.0) + key(1, 1) + struct.pack("<d", 2.0)),
        ld(1, ld(1, b"job") + ld(2, b"x") + ld(2, b"y")),
        label("empty", ""),  # empty values mean "no label"
    )
    batch = decode_proto(proto)
    labels = (("__name__", "m"), ("job", "y"))
    assert batch.samples == [Sample(labels, 0, 0.0), Sample(labels, 0, 2.0)]


def test_timestamps_are_signed_int64_and_stale_markers_keep_their_bits() -> None:
    proto = series(label("__name__", "m"), sample(STALE_NAN, -(2**63)), sample(1.0, 2**63 - 1))
    batch = decode_proto(proto)
    assert [s.ts_ms for s in batch.samples] == [-(2**63), 2**63 - 1]
    bits = struct.unpack("<Q", struct.pack("<d", batch.samples[0].value))[0]
    assert bits == 0x7FF0000000000002


@pytest.mark.parametrize(
    ("proto", "message"),
    [
        (b"\x0a", "truncated varint at byte 1"),
        (
            b"\x0a\x05\x0a",
            "timeseries of 5 bytes runs past the end of its message (3) at byte 0",
        ),
        (
            series(b"\x0a\x09"),
            "label of 9 bytes runs past the end of its message (4) at byte 2",
        ),
        (series(b"\x12\x01\x09"), "sample value runs past the end of its message at byte 4"),
        (b"\x08\x01", "timeseries has wire type 0, expected 2 at byte 0"),
        (series(b"\x08\x01"), "label or sample has wire type 0, expected 2 at byte 2"),
        (series(ld(2, b"\x08\x01")), "sample value has wire type 0, expected 1 at byte 4"),
        (series(ld(2, b"\x11" + bytes(8))), "sample timestamp has wire type 1, expected 0"),
        (series(ld(1, b"\x08\x01")), "label string has wire type 0, expected 2 at byte 4"),
        (b"\x16", "invalid wire type 6 for field 2"),
        (b"\x7f", "invalid wire type 7 for field 15"),
        (b"\x00\x00", "field number 0 at byte 0"),
        (b"\x4c", "end-group for field 9 without a start at byte 0"),
        (b"\x4b\x08\x01", "group of field 9 is never closed at byte 0"),
        (b"\x4b\x54", "end-group for field 10 inside field 9 at byte 1"),
        (b"\x48" + b"\xff" * 9 + b"\x02", "varint overflows 64 bits at byte 1"),
        (b"\x48" + b"\xff" * 10 + b"\x01", "varint overflows 64 bits at byte 1"),
        (b"\x51" + bytes(7), "field 10 runs past the end of its message (8) at byte 0"),
        (b"\x4b" * 65, "groups nested deeper than 64"),
    ],
)
def test_protobuf_damage_names_the_fault_and_byte(proto: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        decode_proto(proto)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (label("bad-name", "x"), "invalid label name 'bad-name'"),
        (label("job", "a") + label("job", "b"), "label 'job' appears twice"),
        (ld(1, ld(1, b"job") + ld(2, b"\xff")), "is not valid UTF-8"),
        (label("__name__", "1up"), "invalid metric name '1up'"),
        (label("job", "a"), "series has no metric name"),
    ],
)
def test_series_with_unusable_labels_are_reported_others_kept(bad: bytes, reason: str) -> None:
    good = series(label("__name__", "ok"), sample(1.0, 1))
    if b"__name__" not in bad and "metric name" not in reason:
        bad = label("__name__", "m") + bad
    proto = good + series(bad, sample(2.0, 2)) + good
    batch = decode_proto(proto)
    assert [s.value for s in batch.samples] == [1.0, 1.0]
    assert len(batch.errors) == 1
    error = batch.errors[0]
    assert isinstance(error, ParseError)
    assert error.line == 2  # the second time series
    assert error.filename == "<remote-write>"
    assert reason in error.reason
    assert f"at byte {len(good)}" in error.reason


def test_empty_request_is_an_empty_batch() -> None:
    batch = decode_write_request(b"\x00")
    assert batch.samples == [] and batch.errors == []


def test_encode_groups_by_series_and_sorts_by_time() -> None:
    a = labels_of({"__name__": "a", "x": "1"})
    b = (("__name__", "b"),)
    body = encode_write_request([Sample(a, 30, 3.0), Sample(b, 5, 9.0), Sample(a, 10, 1.0)])
    proto = snappy_decompress(body)
    assert proto == series(
        label("__name__", "a"), label("x", "1"), sample(1.0, 10), sample(3.0, 30)
    ) + series(label("__name__", "b"), sample(9.0, 5))


def test_encode_needs_timestamps_and_utf8() -> None:
    with pytest.raises(InvalidInput, match="needs timestamps"):
        encode_write_request([Sample((("__name__", "a"),), None, 1.0)])
    with pytest.raises(InvalidInput, match="UTF-8"):
        encode_write_request([Sample((("__name__", "a\udc80"),), 1, 1.0)])


# --------------------------------------------------------------------- properties

NAME_HEAD = string.ascii_letters + "_"
metric_names = st.builds(
    operator.add,
    st.sampled_from(NAME_HEAD + ":"),
    st.text(alphabet=NAME_HEAD + string.digits + ":", max_size=8),
)
label_names = st.builds(
    operator.add,
    st.sampled_from(NAME_HEAD),
    st.text(alphabet=NAME_HEAD + string.digits, max_size=8),
).filter(lambda n: n != "__name__")
float_bits = st.integers(0, 2**64 - 1).map(lambda b: struct.unpack("<d", struct.pack("<Q", b))[0])


@st.composite
def samples(draw: st.DrawFn) -> Sample:
    labels = draw(st.dictionaries(label_names, st.text(max_size=10), max_size=3))
    labels["__name__"] = draw(metric_names)
    value = draw(st.floats() | float_bits)
    return Sample(labels_of(labels), draw(st.integers(-(2**63), 2**63 - 1)), value)


def canonical(batch: list[Sample]) -> list[tuple[object, ...]]:
    return sorted((s.labels, s.ts_ms, struct.pack("<d", s.value)) for s in batch)


@settings(max_examples=150)
@given(st.lists(samples(), max_size=10))
def test_round_trip_encoder_to_decoder(batch: list[Sample]) -> None:
    decoded = decode_write_request(encode_write_request(batch))
    assert decoded.errors == []
    assert canonical(decoded.samples) == canonical(batch)  # same samples, value bits included
    for earlier, later in zip(decoded.samples, decoded.samples[1:], strict=False):
        if earlier.labels == later.labels:
            assert earlier.ts_ms is not None and later.ts_ms is not None
            assert earlier.ts_ms <= later.ts_ms


def check(body: bytes) -> None:
    """Decoding answers a batch of valid samples or a typed error, nothing else."""
    try:
        batch = decode_write_request(body, max_size=1 << 16)
    except (InvalidInput, Corruption):
        return
    assert all(isinstance(e, ParseError) for e in batch.errors)
    for s in batch.samples:
        assert s.name and isinstance(s.ts_ms, int) and isinstance(s.value, float)
        assert s.labels == labels_of(s.labels)


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_fuzz_random_bodies(body: bytes) -> None:
    check(body)


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_fuzz_random_protobuf_behind_valid_snappy(proto: bytes) -> None:
    check(snappy_compress(proto))


def mutate(data: bytes, draw: st.DataObject) -> bytes:
    out = bytearray(data)
    for _ in range(draw.draw(st.integers(1, 4))):
        op = draw.draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
        at = draw.draw(st.integers(0, max(0, len(out) - 1)))
        if op == "flip" and out:
            out[at] ^= 1 << draw.draw(st.integers(0, 7))
        elif op == "truncate":
            del out[at:]
        elif op == "insert":
            out[at:at] = draw.draw(st.binary(min_size=1, max_size=4))
        elif out:
            del out[at]
    return bytes(out)


@settings(max_examples=300)
@given(st.lists(samples(), min_size=1, max_size=4), st.data())
def test_fuzz_mutated_bodies(batch: list[Sample], data: st.DataObject) -> None:
    body = encode_write_request(batch)
    check(mutate(body, data))
    check(snappy_compress(mutate(snappy_decompress(body), data)))
