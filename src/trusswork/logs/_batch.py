"""Columnar batches of parsed lines: what the store logs, buffers and indexes.

A :class:`Batch` holds consecutive documents (ids ``first .. first+n-1``)
as columns: times, raw texts, keyword texts per field (None where a line
lacks the field) and numbers per field (NaN where absent). The write-ahead
log stores a batch as one JSON record; indexing hands the columns to
:meth:`trusswork.search.IndexWriter.add_columns` without a Python step per
line.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from trusswork.logs._ast import number_text, parse_number
from trusswork.logs._fastparse import CombinedColumns
from trusswork.logs._parsers import LogRecord

__all__ = ["RESERVED", "Batch", "concat", "split_fields"]

RESERVED = frozenset({"_time", "_raw", "_id", "source", "sourcetype"})

Floats = npt.NDArray[np.float64]


def _field_name(name: str) -> str:
    if not name or "=" in name:
        name = name.replace("=", "_") or "_"
    return f"extracted_{name}" if name in RESERVED else name


def split_fields(fields: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, float]]:
    """A record's fields as keyword texts and numbers, as the index stores them.

    ``None`` values are left out; lists and objects become JSON text; every
    other value is a keyword (its text: see
    :func:`~trusswork.logs._ast.number_text`), and numbers and numeric text
    (:func:`~trusswork.logs._ast.parse_number`) are also numbers. Field
    names that are empty or hold ``=`` have it replaced by ``_``; names of
    the built-in fields get ``extracted_`` in front.
    """
    keywords: dict[str, str] = {}
    numbers: dict[str, float] = {}
    for name, value in fields.items():
        if value is None:
            continue
        name = _field_name(name)
        if isinstance(value, str):
            keywords[name] = value
            number = parse_number(value)
            if number is not None:
                numbers[name] = number
        elif isinstance(value, bool):
            keywords[name] = "true" if value else "false"
        elif isinstance(value, int):
            keywords[name] = str(value)
            numbers[name] = float(value)
        elif isinstance(value, float):
            if math.isfinite(value):
                keywords[name] = number_text(value)
                numbers[name] = value
            else:
                keywords[name] = repr(value)
        else:
            keywords[name] = orjson.dumps(value, default=str).decode()
    return keywords, numbers


@dataclass
class Batch:
    """Consecutive documents as columns (see the module docstring)."""

    first: int
    times: npt.NDArray[np.int64]
    raw: list[str]
    keywords: dict[str, list[str | None]]
    numbers: dict[str, Floats]

    def __len__(self) -> int:
        return len(self.raw)

    @classmethod
    def empty(cls) -> Batch:
        """A batch of no documents."""
        return cls(0, np.empty(0, dtype=np.int64), [], {}, {})

    @property
    def ids(self) -> npt.NDArray[np.int64]:
        """The documents' ids."""
        return np.arange(self.first, self.first + len(self.raw), dtype=np.int64)

    @classmethod
    def from_records(
        cls, first: int, records: Sequence[LogRecord], source: str, now_ms: int
    ) -> Batch:
        """Columns of parsed records; lines without a time get ``now_ms``."""
        n = len(records)
        keywords: dict[str, list[str | None]] = {}
        numbers: dict[str, Floats] = {}
        for row, record in enumerate(records):
            words, values = split_fields(record.fields)
            for name, text in words.items():
                column = keywords.get(name)
                if column is None:
                    column = keywords[name] = [None] * n
                column[row] = text
            for name, number in values.items():
                array = numbers.get(name)
                if array is None:
                    array = numbers[name] = np.full(n, np.nan)
                array[row] = number
        keywords["source"] = [source] * n
        keywords["sourcetype"] = [r.format for r in records]
        times = np.fromiter(
            (now_ms if r.timestamp_ms is None else r.timestamp_ms for r in records),
            dtype=np.int64,
            count=n,
        )
        return cls(first, times, [r.raw for r in records], keywords, numbers)

    @classmethod
    def from_combined(
        cls,
        first: int,
        columns: CombinedColumns,
        rows: npt.NDArray[np.int64],
        source: str,
        now_ms: int,
    ) -> Batch:
        """Columns of the C-parsed access log lines at ``rows``.

        The same documents :meth:`from_records` makes of the Python parser's
        records for those lines (``tests/logs/test_batch.py`` checks it), with
        no Python step per line but the raw text.
        """
        n = int(rows.size)
        keywords: dict[str, list[str | None]] = {}
        numbers: dict[str, Floats] = {}
        for name, encoded in columns.strings.items():
            codes = encoded.codes[rows]
            if not (codes >= 0).any():
                continue
            values = np.empty(len(encoded.values) + 1, dtype=object)
            values[:-1] = encoded.values
            values[-1] = None
            keywords[name] = list(values[codes].tolist())  # -1 picks the None
            parsed = np.array(
                [np.nan if (v := parse_number(t)) is None else v for t in encoded.values] + [np.nan]
            )
            column = parsed[codes]
            if not np.isnan(column).all():
                numbers[name] = column
        for name, data, null in (
            ("status", columns.status, columns.status_null),
            ("bytes", columns.bytes, columns.bytes_null),
        ):
            present = null[rows] == 0
            if not present.any():
                continue
            picked = data[rows]
            distinct, inverse = np.unique(picked, return_inverse=True)
            texts = np.empty(distinct.size + 1, dtype=object)
            texts[:-1] = [str(v) for v in distinct.tolist()]
            texts[-1] = None
            keywords[name] = list(texts[np.where(present, inverse, distinct.size)].tolist())
            numbers[name] = np.where(present, picked.astype(np.float64), np.nan)
        keywords["source"] = [source] * n
        keywords["sourcetype"] = ["combined"] * n
        times = columns.time_ms[rows]
        times = np.where(times == np.iinfo(np.int64).min, now_ms, times).astype(np.int64)
        raw_line = columns.raw_line
        return cls(first, times, [raw_line(i) for i in rows.tolist()], keywords, numbers)

    # ------------------------------------------------------- reshaping

    def take(self, rows: npt.NDArray[np.int64]) -> Batch:
        """The documents at ``rows`` (their ids are given by :meth:`take_ids`)."""
        return Batch(
            self.first,
            self.times[rows],
            _pick(self.raw, rows),
            {k: _pick(v, rows) for k, v in self.keywords.items()},
            {k: v[rows] for k, v in self.numbers.items()},
        )

    def slice(self, lo: int, hi: int) -> Batch:
        """The documents at rows ``lo:hi``."""
        return Batch(
            self.first + lo,
            self.times[lo:hi],
            self.raw[lo:hi],
            {k: v[lo:hi] for k, v in self.keywords.items()},
            {k: v[lo:hi] for k, v in self.numbers.items()},
        )


def _pick(values: list[Any], rows: npt.NDArray[np.int64]) -> list[Any]:
    """``[values[i] for i in rows]`` at C speed."""
    column = np.empty(len(values), dtype=object)
    column[:] = values
    return list(column[rows].tolist())


def concat(
    batches: Iterable[tuple[Batch, npt.NDArray[np.int64]]],
) -> tuple[Batch, npt.NDArray[np.int64]]:
    """One batch of the given (batch, ids) pieces; returns it with its ids."""
    pieces = list(batches)
    n = sum(len(b) for b, _ in pieces)
    names = sorted({k for b, _ in pieces for k in b.keywords})
    numeric = sorted({k for b, _ in pieces for k in b.numbers})
    keywords: dict[str, list[str | None]] = {}
    for name in names:
        column: list[str | None] = []
        for batch, _ in pieces:
            part = batch.keywords.get(name)
            column.extend(part if part is not None else [None] * len(batch))
        keywords[name] = column
    numbers = {
        name: np.concatenate([b.numbers.get(name, np.full(len(b), np.nan)) for b, _ in pieces])
        if pieces
        else np.empty(0)
        for name in numeric
    }
    raw = [line for b, _ in pieces for line in b.raw]
    times = np.concatenate([b.times for b, _ in pieces]) if pieces else np.empty(0, np.int64)
    ids = np.concatenate([i for _, i in pieces]) if pieces else np.empty(0, np.int64)
    assert len(raw) == n
    return Batch(0, times, raw, keywords, numbers), ids
