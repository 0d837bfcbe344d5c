"""Prometheus remote write 1.0: snappy-compressed protobuf ``WriteRequest`` bodies.

The HTTP body is a snappy *block* (not the framed stream format) holding a
protobuf ``prometheus.WriteRequest``; the fields read here are::

    WriteRequest { repeated TimeSeries timeseries = 1; repeated MetricMetadata metadata = 3; }
    TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2;
                   repeated Exemplar exemplars = 3; repeated Histogram histograms = 4; }
    Label        { string name = 1; string value = 2; }
    Sample       { double value = 1; int64 timestamp = 2; }

Everything else (metadata, exemplars, native histograms, fields added by
later versions) is skipped by its wire type, groups included, as protobuf
requires of unknown fields. Missing scalars take their proto3 defaults, and
a scalar given twice keeps the last value.

Both decoders here are pure Python and defensive: truncated varints, bad
snappy offsets, lengths that run past the end, a declared size that does
not match (or exceeds ``max_size``, the decompression-bomb cap) all raise
:class:`~trusswork.core.errors.InvalidInput` naming the fault and its byte
offset. The body is a request from a client, so the error answers 400 (do
not retry) rather than the 500 of :class:`~trusswork.core.errors.Corruption`.
Work is bounded by the input: every snappy element consumes input and the
output never outgrows the declared size.

A series whose labels are unusable (an invalid or repeated label name, no
metric name, a string that is not UTF-8) is listed in
:attr:`ParsedBatch.errors` as a :class:`~trusswork.core.errors.ParseError`
whose ``line`` is the series' 1-based position in the request; the other
series are kept. Values keep their exact bits, so staleness markers survive.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Final

from trusswork.core.errors import InvalidInput, ParseError
from trusswork.tsdb._ingest import LABEL_NAME, METRIC_NAME, ParsedBatch, Sample
from trusswork.tsdb._series import Labels

__all__ = [
    "DEFAULT_MAX_SIZE",
    "decode_write_request",
    "encode_write_request",
    "snappy_compress",
    "snappy_decompress",
]

DEFAULT_MAX_SIZE: Final = 64 << 20
"""The largest decompressed body accepted by default (64 MiB)."""

_DOUBLE: Final = struct.Struct("<d")
_MAX_GROUP_DEPTH: Final = 64
_UINT64: Final = (1 << 64) - 1


# --------------------------------------------------------------------------- snappy


def snappy_decompress(
    data: bytes | bytearray | memoryview, *, max_size: int = DEFAULT_MAX_SIZE
) -> bytes:
    """Decompress one snappy block (the format of a remote-write body).

    Parameters
    ----------
    data:
        The compressed block: a varint uncompressed length, then literal and
        copy elements.
    max_size:
        Refuse blocks that declare more than this many uncompressed bytes.

    Returns
    -------
    bytes
        Exactly the declared number of bytes.

    Raises
    ------
    InvalidInput
        Damage, with the byte offset into ``data``: a bad length header, an
        element cut short, a copy reaching before the start of the output,
        output longer or shorter than declared, or a declared size over
        ``max_size``.
    """
    buf = bytes(data)
    end = len(buf)
    expected = 0
    pos = 0
    shift = 0
    while True:
        if pos >= end:
            raise InvalidInput("snappy: truncated length header at byte 0")
        byte = buf[pos]
        pos += 1
        expected |= (byte & 0x7F) << shift
        if byte < 0x80:
            break
        shift += 7
        if shift >= 35:
            raise InvalidInput(f"snappy: length header longer than 5 bytes at byte {pos - 1}")
    if expected > 0xFFFFFFFF:
        raise InvalidInput(f"snappy: declared length {expected} exceeds 2^32-1 (byte 0)")
    if expected > max_size:
        raise InvalidInput(
            f"snappy: declared length {expected} exceeds the limit of {max_size} bytes (byte 0)"
        )
    # No element yields more than 64 bytes for 3 of input: a larger claim is a lie.
    if expected > (end - pos) * 64 // 3:
        raise InvalidInput(
            f"snappy: declared length {expected} cannot come from {end - pos} bytes of elements"
        )
    out = bytearray()
    while pos < end:
        start = pos
        tag = buf[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:
            length = tag >> 2
            if length >= 60:
                width = length - 59
                if pos + width > end:
                    raise InvalidInput(f"snappy: literal length cut short at byte {start}")
                length = int.from_bytes(buf[pos : pos + width], "little")
                pos += width
            length += 1
            if pos + length > end:
                raise InvalidInput(
                    f"snappy: literal of {length} bytes at byte {start} runs past the end ({end})"
                )
            if len(out) + length > expected:
                raise InvalidInput(
                    f"snappy: literal at byte {start} grows the output past the declared "
                    f"{expected} bytes"
                )
            out += buf[pos : pos + length]
            pos += length
            continue
        if kind == 1:
            if pos >= end:
                raise InvalidInput(f"snappy: copy cut short at byte {start}")
            length = 4 + ((tag >> 2) & 7)
            offset = ((tag >> 5) << 8) | buf[pos]
            pos += 1
        elif kind == 2:
            if pos + 2 > end:
                raise InvalidInput(f"snappy: copy cut short at byte {start}")
            length = (tag >> 2) + 1
            offset = buf[pos] | (buf[pos + 1] << 8)
            pos += 2
        else:
            if pos + 4 > end:
                raise InvalidInput(f"snappy: copy cut short at byte {start}")
            length = (tag >> 2) + 1
            offset = int.from_bytes(buf[pos : pos + 4], "little")
            pos += 4
        size = len(out)
        if offset == 0 or offset > size:
            raise InvalidInput(
                f"snappy: copy at byte {start} has offset {offset} with {size} bytes of output"
            )
        if size + length > expected:
            raise InvalidInput(
                f"snappy: copy at byte {start} grows the output past the declared {expected} bytes"
            )
        source = size - offset
        if offset >= length:
            out += out[source : source + length]
        else:
            # Overlapping copy: the pattern of the last ``offset`` bytes repeats.
            out += (out[source:] * (length // offset + 1))[:length]
    if len(out) != expected:
        raise InvalidInput(
            f"snappy: block ends at byte {end} after {len(out)} bytes, header declared {expected}"
        )
    return bytes(out)


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _emit_literal(out: bytearray, data: bytes, start: int, stop: int) -> None:
    length = stop - start
    if length <= 0:
        return
    n = length - 1
    if n < 60:
        out.append(n << 2)
    else:
        width = (n.bit_length() + 7) // 8
        out.append((59 + width) << 2)
        out += n.to_bytes(width, "little")
    out += data[start:stop]


def _emit_copy(out: bytearray, offset: int, length: int) -> None:
    while length > 0:
        chunk = min(length, 64)
        if 4 <= chunk <= 11 and offset < 2048:
            out.append(((offset >> 8) << 5) | ((chunk - 4) << 2) | 1)
            out.append(offset & 0xFF)
        elif offset <= 0xFFFF:
            out.append(((chunk - 1) << 2) | 2)
            out += offset.to_bytes(2, "little")
        else:
            out.append(((chunk - 1) << 2) | 3)
            out += offset.to_bytes(4, "little")
        length -= chunk


def snappy_compress(data: bytes | bytearray | memoryview) -> bytes:
    """Compress bytes into one snappy block (greedy 4-byte matching).

    Simpler than the reference compressor and slower, but its output is a
    valid block any snappy decoder reads; use it for clients and tests.

    Parameters
    ----------
    data:
        Up to 2^32-1 bytes.

    Returns
    -------
    bytes
        The block.
    """
    src = bytes(data)
    n = len(src)
    if n > 0xFFFFFFFF:
        raise InvalidInput(f"snappy: cannot compress {n} bytes (limit 2^32-1)")
    out = bytearray(_uvarint(n))
    table: dict[bytes, int] = {}
    pos = 0
    literal_start = 0
    limit = n - 4
    while pos <= limit:
        key = src[pos : pos + 4]
        candidate = table.get(key)
        table[key] = pos
        if candidate is None:
            # Skip faster through data that does not compress.
            pos += 1 + ((pos - literal_start) >> 5)
            continue
        length = 4
        while pos + length + 32 <= n and (
            src[candidate + length : candidate + length + 32]
            == src[pos + length : pos + length + 32]
        ):
            length += 32
        while pos + length < n and src[candidate + length] == src[pos + length]:
            length += 1
        _emit_literal(out, src, literal_start, pos)
        _emit_copy(out, pos - candidate, length)
        pos += length
        literal_start = pos
    _emit_literal(out, src, literal_start, n)
    return bytes(out)


# --------------------------------------------------------------------------- protobuf


def _fault(what: str, pos: int) -> InvalidInput:
    return InvalidInput(f"remote write: {what} at byte {pos} of the decompressed protobuf")


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """Read a varint at ``pos`` (not past ``end``); return (value, next position)."""
    result = 0
    shift = 0
    start = pos
    while True:
        if pos >= end:
            raise _fault("truncated varint", start)
        byte = buf[pos]
        pos += 1
        if shift == 63 and byte > 1:
            raise _fault("varint overflows 64 bits", start)
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _skip(buf: bytes, pos: int, end: int, key: int, key_pos: int) -> int:
    """Skip the value of an unknown field whose key was read at ``key_pos``."""
    field = key >> 3
    wire = key & 7
    if field == 0:
        raise _fault("field number 0", key_pos)
    if wire == 0:
        return _varint(buf, pos, end)[1]
    if wire == 1:
        stop = pos + 8
    elif wire == 5:
        stop = pos + 4
    elif wire == 2:
        length, pos = _varint(buf, pos, end)
        stop = pos + length
    elif wire == 3:
        return _skip_group(buf, pos, end, field, key_pos)
    elif wire == 4:
        raise _fault(f"end-group for field {field} without a start", key_pos)
    else:
        raise _fault(f"invalid wire type {wire} for field {field}", key_pos)
    if stop > end:
        raise _fault(f"field {field} runs past the end of its message ({end})", key_pos)
    return stop


def _skip_group(buf: bytes, pos: int, end: int, field: int, key_pos: int) -> int:
    """Skip a (deprecated) group up to its matching end-group key."""
    open_fields = [field]
    while True:
        if pos >= end:
            raise _fault(f"group of field {open_fields[-1]} is never closed", key_pos)
        inner_pos = pos
        key, pos = _varint(buf, pos, end)
        wire = key & 7
        if wire == 4:
            if key >> 3 != open_fields[-1]:
                raise _fault(
                    f"end-group for field {key >> 3} inside field {open_fields[-1]}", inner_pos
                )
            open_fields.pop()
            if not open_fields:
                return pos
        elif wire == 3:
            if key >> 3 == 0:
                raise _fault("field number 0", inner_pos)
            if len(open_fields) >= _MAX_GROUP_DEPTH:
                raise _fault(f"groups nested deeper than {_MAX_GROUP_DEPTH}", inner_pos)
            open_fields.append(key >> 3)
        else:
            pos = _skip(buf, pos, end, key, inner_pos)


def _length_delimited(buf: bytes, pos: int, end: int, what: str, key_pos: int) -> tuple[int, int]:
    length, pos = _varint(buf, pos, end)
    stop = pos + length
    if stop > end:
        raise _fault(f"{what} of {length} bytes runs past the end of its message ({end})", key_pos)
    return pos, stop


def _wrong_wire(what: str, wire: int, expected: int, key_pos: int) -> InvalidInput:
    return _fault(f"{what} has wire type {wire}, expected {expected}", key_pos)


def _decode_label(buf: bytes, pos: int, end: int) -> tuple[bytes, bytes]:
    name = value = b""
    while pos < end:
        key_pos = pos
        key = buf[pos]
        if key < 0x80:
            pos += 1
        else:
            key, pos = _varint(buf, pos, end)
        if key == 0x0A or key == 0x12:
            start, pos = _length_delimited(buf, pos, end, "label string", key_pos)
            if key == 0x0A:
                name = buf[start:pos]
            else:
                value = buf[start:pos]
        elif key >> 3 in (1, 2):
            raise _wrong_wire("label string", key & 7, 2, key_pos)
        else:
            pos = _skip(buf, pos, end, key, key_pos)
    return name, value


def _decode_sample(buf: bytes, pos: int, end: int) -> tuple[float, int]:
    value = 0.0
    timestamp = 0
    while pos < end:
        key_pos = pos
        key = buf[pos]
        if key < 0x80:
            pos += 1
        else:
            key, pos = _varint(buf, pos, end)
        if key == 0x09:
            if pos + 8 > end:
                raise _fault("sample value runs past the end of its message", key_pos)
            value = _DOUBLE.unpack_from(buf, pos)[0]
            pos += 8
        elif key == 0x10:
            timestamp, pos = _varint(buf, pos, end)
            if timestamp >> 63:
                timestamp -= 1 << 64
        elif key >> 3 == 1:
            raise _wrong_wire("sample value", key & 7, 1, key_pos)
        elif key >> 3 == 2:
            raise _wrong_wire("sample timestamp", key & 7, 0, key_pos)
        else:
            pos = _skip(buf, pos, end, key, key_pos)
    return value, timestamp


def _series_labels(
    raw: list[tuple[bytes, bytes]], names_ok: set[bytes]
) -> tuple[Labels | None, str]:
    """Canonical labels of one series, or None and the reason they are unusable."""
    pairs: dict[str, str] = {}
    for name_bytes, value_bytes in raw:
        try:
            name = name_bytes.decode()
            value = value_bytes.decode()
        except UnicodeDecodeError:
            return None, f"label {name_bytes!r}={value_bytes!r} is not valid UTF-8"
        if name_bytes not in names_ok:
            if LABEL_NAME.fullmatch(name) is None:
                return None, f"invalid label name {name!r}"
            names_ok.add(name_bytes)
        if name in pairs:
            return None, f"label {name!r} appears twice"
        pairs[name] = value
    metric = pairs.get("__name__", "")
    if METRIC_NAME.fullmatch(metric) is None:
        return None, f"invalid metric name {metric!r}" if metric else "series has no metric name"
    return tuple(sorted(item for item in pairs.items() if item[1])), ""


def decode_write_request(
    body: bytes | bytearray | memoryview,
    *,
    max_size: int = DEFAULT_MAX_SIZE,
    filename: str = "<remote-write>",
) -> ParsedBatch:
    """Decode a remote-write 1.0 HTTP body into samples.

    Parameters
    ----------
    body:
        The request body: a snappy block holding a protobuf ``WriteRequest``.
    max_size:
        Largest decompressed size accepted (decompression-bomb cap).
    filename:
        Named in the per-series errors.

    Returns
    -------
    ParsedBatch
        One sample per (series, sample) in request order, and one error per
        series with unusable labels (``line`` = the series' position).

    Raises
    ------
    InvalidInput
        The body is not a well-formed snappy block or protobuf message; the
        message names the fault and the byte offset.
    """
    buf = snappy_decompress(body, max_size=max_size)
    batch = ParsedBatch()
    samples = batch.samples
    names_ok: set[bytes] = {b"__name__"}
    end = len(buf)
    pos = 0
    index = 0
    while pos < end:
        key_pos = pos
        key, pos = _varint(buf, pos, end)
        if key != 0x0A:
            if key >> 3 == 1:
                raise _wrong_wire("timeseries", key & 7, 2, key_pos)
            pos = _skip(buf, pos, end, key, key_pos)
            continue
        start, pos = _length_delimited(buf, pos, end, "timeseries", key_pos)
        index += 1
        raw_labels: list[tuple[bytes, bytes]] = []
        points: list[tuple[float, int]] = []
        inner = start
        while inner < pos:
            inner_key_pos = inner
            inner_key, inner = _varint(buf, inner, pos)
            if inner_key == 0x12:
                first, inner = _length_delimited(buf, inner, pos, "sample", inner_key_pos)
                points.append(_decode_sample(buf, first, inner))
            elif inner_key == 0x0A:
                first, inner = _length_delimited(buf, inner, pos, "label", inner_key_pos)
                raw_labels.append(_decode_label(buf, first, inner))
            elif inner_key >> 3 in (1, 2):
                raise _wrong_wire("label or sample", inner_key & 7, 2, inner_key_pos)
            else:
                inner = _skip(buf, inner, pos, inner_key, inner_key_pos)
        labels, reason = _series_labels(raw_labels, names_ok)
        if labels is None:
            batch.errors.append(
                ParseError(
                    f"time series #{index} at byte {key_pos}: {reason}",
                    line=index,
                    filename=filename,
                )
            )
            continue
        samples.extend([Sample(labels, ts, value) for value, ts in points])
    return batch


def _string_field(number: int, text: str) -> bytes:
    try:
        data = text.encode()
    except UnicodeEncodeError:
        raise InvalidInput(f"label text {text!r} cannot be encoded as UTF-8") from None
    return _uvarint(number << 3 | 2) + _uvarint(len(data)) + data


def encode_write_request(samples: Iterable[Sample]) -> bytes:
    """Encode samples as a remote-write 1.0 HTTP body (snappy-compressed protobuf).

    Samples of the same labels share one ``TimeSeries``, in order of first
    appearance; within a series they are sorted by timestamp, as the
    protocol asks of senders.

    Parameters
    ----------
    samples:
        Samples with timestamps.

    Returns
    -------
    bytes
        The body :func:`decode_write_request` (or Prometheus) reads.

    Raises
    ------
    InvalidInput
        A sample has no timestamp or a label that is not encodable as UTF-8.
    """
    series: dict[Labels, list[tuple[int, float]]] = {}
    for sample in samples:
        if sample.ts_ms is None:
            raise InvalidInput(f"remote write needs timestamps; sample {sample.labels} has none")
        points = series.get(sample.labels)
        if points is None:
            points = series[sample.labels] = []
        points.append((sample.ts_ms, sample.value))
    out = bytearray()
    for labels, points in series.items():
        message = bytearray()
        for name, value in labels:
            label = _string_field(1, name) + _string_field(2, value)
            message += b"\x0a" + _uvarint(len(label)) + label
        points.sort(key=lambda point: point[0])
        for ts, number in points:
            body = b"\x09" + _DOUBLE.pack(number) + b"\x10" + _uvarint(ts & _UINT64)
            message += b"\x12" + _uvarint(len(body)) + body
        out += b"\x0a" + _uvarint(len(message)) + message
    return snappy_compress(out)
