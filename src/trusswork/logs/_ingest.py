"""Ingest plumbing of the log store: lines in, parsed batches and log records out.

A batch of lines is logged as one write-ahead log record (:func:`_encode_record`):
the options it was parsed with, then the lines' bytes as given. Parsing
(:func:`parse_batch`) is deterministic in those options and the ingest time,
so a replay after a crash rebuilds exactly the batch that was acknowledged,
with the same document ids.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from trusswork.core.errors import InvalidInput
from trusswork.logs._batch import Batch, concat
from trusswork.logs._fastparse import parse_combined
from trusswork.logs._parsers import LogParseError, LogParser

__all__ = ["IngestResult", "parse_batch"]


@dataclass(frozen=True)
class IngestResult:
    """What :meth:`LogStore.ingest` did with a batch.

    Attributes
    ----------
    accepted:
        Lines stored (durable when ``ingest`` returned).
    rejected:
        Lines the chosen format refused (never stored); ``errors`` holds the
        first 100 with their line numbers.
    truncated, invalid_utf8, bad_timestamp:
        Stored lines that were cut at the line limit, had undecodable bytes
        replaced, or carried a timestamp that could not be read (they get
        the ingest time).
    """

    accepted: int
    rejected: int
    truncated: int = 0
    invalid_utf8: int = 0
    bad_timestamp: int = 0
    errors: tuple[LogParseError, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (errors as their messages)."""
        return {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "truncated": self.truncated,
            "invalid_utf8": self.invalid_utf8,
            "bad_timestamp": self.bad_timestamp,
            "errors": [str(e) for e in self.errors],
        }


@dataclass(frozen=True)
class _Options:
    """How a batch was parsed; logged with it so a replay parses it the same way."""

    format: str
    source: str
    pattern: str | None
    timestamp_field: str | None
    max_line_length: int


def _as_bytes(lines: Iterable[str | bytes] | str | bytes) -> list[bytes]:
    """The lines as bytes, as the log stores them (``str`` as UTF-8; lone
    surrogates become bytes that read back as invalid UTF-8, replaced and counted)."""
    if isinstance(lines, str):
        lines = lines.split("\n")
    elif isinstance(lines, bytes | bytearray | memoryview):
        lines = bytes(lines).split(b"\n")
    out = []
    for line in lines:
        if isinstance(line, str):
            out.append(line.encode("utf-8", "surrogatepass"))
        elif isinstance(line, bytes | bytearray | memoryview):
            out.append(bytes(line))
        else:
            raise InvalidInput(f"a log line is str or bytes, not {type(line).__name__}")
    return out


_RECORD = struct.Struct("<II")  # header bytes, line count


def _encode_record(header: Mapping[str, Any], items: Sequence[bytes]) -> bytes:
    """A log record: header JSON, the line lengths (u32), the lines' bytes."""
    head = orjson.dumps(header, option=orjson.OPT_PASSTHROUGH_DATACLASS, default=_dataclass_dict)
    lengths = np.fromiter(map(len, items), dtype=np.uint32, count=len(items))
    return b"".join((_RECORD.pack(len(head), len(items)), head, lengths.tobytes(), *items))


def _dataclass_dict(value: Any) -> Any:
    if isinstance(value, _Options):
        return dict(value.__dict__)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _decode_record(payload: bytes) -> tuple[dict[str, Any], list[bytes]]:
    """Inverse of :func:`_encode_record` (ValueError when the bytes do not fit)."""
    try:
        head_size, count = _RECORD.unpack_from(payload, 0)
    except struct.error as exc:
        raise ValueError(f"record of {len(payload)} bytes has no header") from exc
    at = _RECORD.size
    header = orjson.loads(payload[at : at + head_size])
    if not isinstance(header, dict) or len(payload) < at + head_size + 4 * count:
        raise ValueError("record header or line lengths cut off")
    at += head_size
    lengths = np.frombuffer(payload, dtype=np.uint32, count=count, offset=at).astype(np.int64)
    at += 4 * count
    ends = at + np.cumsum(lengths)
    if (int(ends[-1]) if count else at) != len(payload):
        raise ValueError("line lengths do not add up to the record")
    starts = ends - lengths
    return header, [payload[a:b] for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]


def parse_batch(
    parser: LogParser, items: list[bytes], options: _Options, now_ms: int
) -> tuple[Batch, list[LogParseError], Counter[str]]:
    """Parse ``items`` into a batch (ids from 0); deterministic, so replay repeats it.

    Combined access lines go through the C parser (:mod:`trusswork.logs._fastparse`);
    the lines it leaves (other formats, damaged or overlong lines) through
    :class:`~trusswork.logs._parsers.LogParser`, which gives the errors.
    """
    problems: Counter[str] = Counter()
    errors: list[LogParseError] = []
    fast_rows = np.empty(0, dtype=np.int64)
    slow: Sequence[int] = range(len(items))
    columns = None
    if options.format in ("combined", "auto") and options.timestamp_field is None:
        columns = parse_combined(items, max_line_length=options.max_line_length)
        ok = columns.ok.astype(bool)
        if options.format == "auto":
            # auto reads JSON objects and syslog PRI lines first.
            ok &= np.array([not i.startswith((b"{", b"<")) for i in items], dtype=bool)
        fast_rows = np.flatnonzero(ok)
        slow = np.flatnonzero(~ok).tolist()
        problems["invalid-utf8"] += int(columns.invalid_utf8[fast_rows].sum())
        problems["bad-timestamp"] += int(
            (columns.time_ms[fast_rows] == np.iinfo(np.int64).min).sum()
        )
    records, record_rows = [], []
    for row in slow:
        line = items[row]
        if not line.strip():
            continue
        try:
            record = parser.parse_line(line, lineno=row + 1)
        except LogParseError as error:
            errors.append(error)
            continue
        records.append(record)
        record_rows.append(row)
        problems.update(record.problems)
    parts = []
    if fast_rows.size:
        assert columns is not None
        parts.append(
            (Batch.from_combined(0, columns, fast_rows, options.source, now_ms), fast_rows)
        )
    if records:
        rows = np.asarray(record_rows, dtype=np.int64)
        parts.append((Batch.from_records(0, records, options.source, now_ms), rows))
    if not parts:
        return Batch.empty(), errors, problems
    if len(parts) == 1:
        return parts[0][0], errors, problems
    batch, rows = concat(parts)
    return batch.take(np.argsort(rows, kind="stable")), errors, problems
