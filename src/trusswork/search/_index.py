"""Inverted index segments: build in memory, write once, read through mmap.

An :class:`IndexWriter` collects documents (a text and optional fields) and
writes them as an immutable *segment*: a directory ``<segment id>/`` holding
the files below (format 2; format 1 segments are refused with a request to
re-index). "Narrow" means the narrowest of u8/u16/u32/u64 that holds every
value of the array, its width given by the section length over the item
count the reader already knows; "zstd blocks" means a width byte, narrow
frame offsets and zstd frames (with content checksums) of a fixed number of
values each (:func:`~trusswork.search._sections.compress_blocks`).

Posting lists, of terms and of keyword values alike, are stored by length:
one row is kept *inline* in the dictionary entry; 2..64 rows are LEB128
varints of the first row and then of each gap minus one (the *short* blob);
longer lists are bit-packed blocks behind a skip table
(:func:`~trusswork.search.postings.encode_postings`, the *long* blob).

Dictionaries (terms, keyword keys) are sorted by UTF-8 bytes and cut into
blocks of 128 keys (:func:`~trusswork.search._sections.write_dictionary`):
the first key of every block stays uncompressed so a lookup bisects the
blocks, decompresses one zstd frame and bisects inside it. A block holds its
keys' lengths, one narrow array per per-key column and the key bytes. Where
a column locates data in another section, the dictionary also stores the
running total at every block start ("bases"); an entry's position is its
block's base plus the column's sum over the entries before it in the block.

``terms.tw``
    the term dictionary; columns: df (documents), npos (positions = sum of
    its tfs), post (the row when df is 1, else the list's byte length);
    bases: postings, positions, long-blob bytes, short-blob bytes, stored tfs.
``postings.tw``
    the long blob, the short blob, the term frequencies (zstd blocks of 64K;
    only for terms some document holds more than once: all other tfs are 1)
    and the positions (zstd blocks of 64K), in term then row order.
``fields.tw``
    the ``name=value`` key dictionary (columns df and post; bases: long and
    short bytes), the long and short blobs, one mode byte per keyword field
    (in ``name=`` byte order) and one narrow *forward column* per field:
    per row, 1 + the index of its value among the field's sorted values, 0
    where the row has none. A field with more distinct values than rows / 8
    (mode 1) keeps no posting lists: its column answers value lookups.
``numeric.tw``
    per numeric field (sorted by name) three sections: a header (u8 kind, 7
    zero bytes, i64 base), the values and a presence bitmap. Kind 1: every
    value is an integer of magnitude <= 2**53, stored as narrow ``value -
    base``, the bitmap (numpy ``packbits``) present only when some row lacks
    a value. Kind 0: float64 per row, NaN where absent, no bitmap.
``docs.tw``
    document ids (u32, or nothing when they are consecutive: meta.json has
    the range), lengths in tokens (narrow), texts' UTF-8 byte lengths
    (narrow) and the texts (zstd blocks of 64 KiB).
``meta.json``
    format, counts, id range, time range and field summaries, with a checksum.

Every ``.tw`` file is framed by :mod:`trusswork.search._sections`: each
section carries a CRC-32C, checked when the segment opens, as are the shape
and bounds of every uncompressed array, so damage raises
:class:`~trusswork.core.errors.Corruption` naming the file and offset; a
compressed block is checked (frame checksum, size, layout) when first read.

Guarantees
----------
* Atomic: a segment is written to ``<id>.tmp/``, every file fsynced, then
  renamed to ``<id>/`` and the parent directory fsynced. A crash leaves a
  ``.tmp`` directory that readers ignore, never a half segment.
* Postings on disk hold *rows* (0..doc_count-1 in doc id order); the query
  API answers in document ids, sorted and unique (uint32).
* Document ids are unique within a segment and kept by a merge, which fails
  with :class:`~trusswork.core.errors.Conflict` if two inputs share an id.
* Terms are the tokenizer's tokens; a query term is passed through the
  tokenizer (``GET`` finds ``get``) when it gives exactly one token.
"""

from __future__ import annotations

import json
import math
import os
import struct
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from trusswork.core.checksum import crc32c
from trusswork.core.errors import Conflict, Corruption, InvalidInput, NotFound
from trusswork.core.files import publish_directory, write_file
from trusswork.search._postings import encode_postings_many
from trusswork.search._sections import (
    compress_blocks,
    dictionary_bases,
    encode_varint_lists,
    narrow,
    write_dictionary,
    write_sections,
)
from trusswork.search._tokenize import check_values, invert, invert_values
from trusswork.search.text import tokenize

__all__ = [
    "IndexWriter",
    "SegmentMeta",
    "read_meta",
]


def query_term(term: str) -> str:
    """``term`` as the index stores it: its single token, else ``term`` unchanged."""
    try:
        tokens = tokenize(term)
    except InvalidInput:
        # Not UTF-8 (a lone surrogate): no indexed text holds it either.
        return term
    return tokens[0] if len(tokens) == 1 else term


Postings = npt.NDArray[np.uint32]
FieldValue = str | int | float

_FORMAT = 2
_TEXT_BLOCK = 64 * 1024
_ZSTD_LEVEL = 1
_MAX_DOC_ID = 2**32 - 1
_EMPTY = np.empty(0, dtype=np.uint32)


@dataclass(frozen=True)
class SegmentMeta:
    """What ``meta.json`` says about a segment; enough to plan merges."""

    segment_id: str
    path: Path
    doc_count: int
    min_doc_id: int
    max_doc_id: int
    term_count: int
    size_bytes: int
    time_range: tuple[float, float] | None = None
    keyword_fields: Mapping[str, int] = field(default_factory=dict)
    numeric_fields: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    merged_from: tuple[str, ...] = ()


# ---------------------------------------------------------------- writing


class IndexWriter:
    """Collects documents in memory and writes them as one immutable segment.

    Documents come one at a time (:meth:`add`, :meth:`add_many`) or as whole
    columns (:meth:`add_columns`, the fast path for log ingest); both give
    the same segment bytes for the same documents.

    Parameters
    ----------
    first_doc_id
        The id given to the first document added without one; later ones
        count up from the largest id seen.
    """

    def __init__(self, *, first_doc_id: int = 0) -> None:
        if not 0 <= first_doc_id <= _MAX_DOC_ID:
            raise InvalidInput(f"first_doc_id {first_doc_id} is outside 0..2**32-1")
        self._first_doc_id = first_doc_id
        self._reset()

    def _reset(self) -> None:
        self._next_id = self._first_doc_id
        self._ids: list[int] = []
        self._seen: set[int] = set()
        self._texts: list[str] = []
        # Keywords and numbers of add(): name -> (rows, values); of
        # add_columns(): (first row, name, column).
        self._keywords: dict[str, tuple[list[int], list[str | None]]] = {}
        self._keyword_columns: list[tuple[int, str, list[str | None]]] = []
        self._numbers: dict[str, tuple[list[int], list[float]]] = {}
        self._number_columns: list[tuple[int, str, npt.NDArray[np.float64]]] = []

    def __len__(self) -> int:
        return len(self._ids)

    def add(
        self, doc_id: int | None, text: str, fields: Mapping[str, FieldValue] | None = None
    ) -> int:
        """Add one document and return its id.

        Parameters
        ----------
        doc_id
            The document's id (unique, 0..2**32-1), or None for the next one.
        text
            The text to index and store.
        fields
            ``str`` values become keyword terms (``name=value``); ``float``
            values numeric columns; ``int`` values both.

        Raises
        ------
        InvalidInput
            A bad id, field name or field value type.
        Conflict
            ``doc_id`` was already added.
        """
        keywords: dict[str, str] = {}
        numbers: dict[str, float] = {}
        for name, value in (fields or {}).items():
            _check_field_name(name)
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise InvalidInput(
                    f"field {name!r}: {type(value).__name__} is not str, int or float"
                )
            if isinstance(value, str | int):
                keywords[name] = str(value)
            if not isinstance(value, str):
                numbers[name] = float(value)
        return self._add_parsed(doc_id, text, keywords, numbers)

    def add_many(
        self, texts: Iterable[str], fields: Iterable[Mapping[str, FieldValue] | None] | None = None
    ) -> npt.NDArray[np.uint32]:
        """Add documents with automatic ids; ``fields`` (if given) pairs with ``texts``."""
        texts = list(texts)
        per_doc = [None] * len(texts) if fields is None else list(fields)
        if len(per_doc) != len(texts):
            raise InvalidInput(f"{len(texts)} texts but {len(per_doc)} field mappings")
        ids = [self.add(None, text, f) for text, f in zip(texts, per_doc, strict=True)]
        return np.asarray(ids, dtype=np.uint32)

    def add_columns(
        self,
        texts: Sequence[str],
        *,
        keywords: Mapping[str, Sequence[str | None]] | None = None,
        numbers: Mapping[str, npt.ArrayLike] | None = None,
        doc_ids: npt.ArrayLike | None = None,
    ) -> npt.NDArray[np.uint32]:
        """Add a batch of documents given as columns; return their ids.

        The same documents as ``add(doc_ids[i], texts[i], fields_i)`` for
        each ``i``, where ``fields_i`` maps each keyword name to
        ``keywords[name][i]`` (left out where it is None) and each numeric
        name to ``numbers[name][i]``, and the segment written is the same,
        byte for byte. No Python code runs per document or per value: texts
        and keyword values are checked, interned, sorted and grouped in C
        (csrc/postings/invert.h), which makes this the ingest path.

        Parameters
        ----------
        texts
            The texts to index and store.
        keywords
            Per field name, one ``str`` (a keyword term ``name=value``) or
            None (no value) per document. An int field of :meth:`add` is a
            keyword column of ``str(value)`` plus a numeric column.
        numbers
            Per field name, one number per document (1-d, integer or float;
            NaN, like absence, stores as NaN).
        doc_ids
            One unique id per document, or None for the next ids.

        Returns
        -------
        numpy.ndarray of uint32
            The documents' ids.

        Raises
        ------
        InvalidInput
            A column's length differs from ``len(texts)``, or a bad id, field
            name, value type or text (not str, or not encodable as UTF-8).
        Conflict
            An id was already added or repeats within ``doc_ids``.
        """
        texts = list(texts)
        n = len(texts)
        _check_texts(texts)
        ids = self._new_ids(n, doc_ids)
        offset = len(self._ids)
        keyword_columns = [
            (offset, name, _keyword_column(name, values, n))
            for name, values in (keywords or {}).items()
        ]
        number_columns = [
            (offset, name, _number_column(name, values, n))
            for name, values in (numbers or {}).items()
        ]
        # Everything is checked: only now does the writer change.
        id_list = ids.tolist()
        self._seen.update(id_list)
        self._ids.extend(id_list)
        self._texts.extend(texts)
        if n:
            self._next_id = max(self._next_id, int(ids.max()) + 1)
        self._keyword_columns.extend(keyword_columns)
        self._number_columns.extend(number_columns)
        return ids

    def _new_ids(self, n: int, doc_ids: npt.ArrayLike | None) -> npt.NDArray[np.uint32]:
        """The ids of n new documents, checked against each other and the writer's."""
        if doc_ids is None:
            if self._next_id + n - 1 > _MAX_DOC_ID:
                raise InvalidInput(
                    f"{n} automatic ids from {self._next_id} pass 2**32-1; give doc_ids"
                )
            # Every id seen is below _next_id: automatic ids cannot collide.
            return np.arange(self._next_id, self._next_id + n, dtype=np.uint32)
        given = np.asarray(doc_ids)
        if given.shape != (n,) or (n and given.dtype.kind not in "iu"):
            raise InvalidInput(f"doc_ids must be {n} integers (one per text), got {given!r:.60}")
        if n and (int(given.min()) < 0 or int(given.max()) > _MAX_DOC_ID):
            raise InvalidInput(f"doc_ids must be in 0..2**32-1, got {given.min()}..{given.max()}")
        ids = given.astype(np.uint32)
        unique = np.unique(ids)
        if unique.size != n:
            repeated = unique[
                np.diff(np.searchsorted(np.sort(ids), unique, side="right"), prepend=0) > 1
            ]
            raise Conflict(f"document id {int(repeated[0])} appears twice in doc_ids")
        if self._seen and not self._seen.isdisjoint(ids.tolist()):
            clash = next(i for i in ids.tolist() if i in self._seen)
            raise Conflict(f"document id {clash} was already added to this writer")
        return ids

    def _add_parsed(
        self,
        doc_id: int | None,
        text: str,
        keywords: Mapping[str, str],
        numbers: Mapping[str, float],
    ) -> int:
        if not isinstance(text, str):
            raise InvalidInput(f"document text must be str, not {type(text).__name__}")
        for part in (text, *keywords.values()):
            if not part.isascii():
                _check_utf8(part)
        if doc_id is None:
            doc_id = self._next_id
        if not 0 <= doc_id <= _MAX_DOC_ID:
            raise InvalidInput(f"document id {doc_id} is outside 0..2**32-1")
        if doc_id in self._seen:
            raise Conflict(f"document id {doc_id} was already added to this writer")
        row = len(self._ids)
        self._seen.add(doc_id)
        self._ids.append(doc_id)
        self._texts.append(text)
        self._next_id = max(self._next_id, doc_id + 1)
        for name, value in keywords.items():
            rows_of_name, values_of_name = self._keywords.setdefault(name, ([], []))
            rows_of_name.append(row)
            values_of_name.append(value)
        for name, number in numbers.items():
            rows, values = self._numbers.setdefault(name, ([], []))
            rows.append(row)
            values.append(number)
        return doc_id

    def write_segment(self, directory: str | os.PathLike[str]) -> SegmentMeta:
        """Write the collected documents as a new segment under ``directory``.

        The writer is empty afterwards (ids keep counting up).

        Raises
        ------
        InvalidInput
            No documents were added.
        """
        if not self._ids:
            raise InvalidInput("the writer holds no documents; add some before write_segment")
        meta = _write(Path(directory), self._build(), merged_from=())
        next_id = self._next_id
        self._reset()
        self._next_id = next_id
        return meta

    def _build(self) -> _Built:
        ids = np.asarray(self._ids, dtype=np.int64)
        # Rows are documents in the order added; the segment stores them in
        # id order. Ingest adds them in order already: then nothing moves.
        order: npt.NDArray[np.int64] | None = None
        texts = self._texts
        if ids.size > 1 and not bool(np.all(ids[1:] > ids[:-1])):
            order = np.argsort(ids, kind="stable")
            texts = [texts[i] for i in order]
            ids = ids[order]
        (
            utf8,
            text_offsets,
            term_blob,
            term_offsets,
            entry_starts,
            entry_rows,
            tfs,
            position_starts,
            positions,
            lengths,
        ) = invert(texts)
        key_blob, key_offsets, keyword_fields, key_starts, key_rows, key_columns = (
            self._keyword_postings(order, ids.size)
        )
        return _Built(
            doc_ids=ids.astype(np.uint32),
            utf8=utf8,
            text_offsets=text_offsets,
            lengths=lengths,
            term_blob=term_blob,
            term_offsets=term_offsets,
            entry_starts=entry_starts,
            entry_rows=entry_rows,
            tfs=tfs,
            position_starts=position_starts,
            positions=positions,
            key_blob=key_blob,
            key_offsets=key_offsets,
            keyword_fields=keyword_fields,
            key_starts=key_starts,
            key_rows=key_rows,
            key_columns=key_columns,
            numbers=self._number_columns_in_order(order),
        )

    def _keyword_postings(
        self, order: npt.NDArray[np.int64] | None, count: int
    ) -> tuple[
        bytes,
        npt.NDArray[np.uint64],
        dict[str, int],
        npt.NDArray[np.uint64],
        Postings,
        dict[str, npt.NDArray[np.uint32]],
    ]:
        """Keys sorted by bytes and their offsets, keys per name, per key its rows,
        and per name its forward column (per row 1 + the value's index among
        the name's sorted values, 0 where the row has none).

        No name holds ``=``, so the keys of one name sort together and names
        sort by ``name=``: one C call per name interns, sorts and groups its
        values (csrc/postings/invert.h), never a Python object per value.
        """
        sources: dict[str, tuple[list[str | None], list[npt.NDArray[np.int64]]]] = {}
        for name, (rows_list, values_list) in self._keywords.items():
            values, rows = sources.setdefault(name, ([], []))
            values.extend(values_list)
            rows.append(np.asarray(rows_list, dtype=np.int64))
        for offset, name, column in self._keyword_columns:
            values, rows = sources.setdefault(name, ([], []))
            values.extend(column)
            rows.append(np.arange(offset, offset + len(column), dtype=np.int64))
        row_rank = None
        if order is not None:
            row_rank = np.empty_like(order)
            row_rank[order] = np.arange(order.size)
        blobs: list[bytes] = []
        key_offsets: list[npt.NDArray[np.uint64]] = [np.zeros(1, dtype=np.uint64)]
        starts: list[npt.NDArray[np.uint64]] = [np.zeros(1, dtype=np.uint64)]
        postings: list[Postings] = []
        counts: dict[str, int] = {}
        columns: dict[str, npt.NDArray[np.uint32]] = {}
        blob_size = entries = 0
        for name in sorted(sources, key=lambda n: f"{n}=".encode()):
            values, rows = sources[name]
            keys, offsets, key_starts, indexes = invert_values(values, f"{name}=")
            if len(offsets) == 1:
                continue
            counts[name] = len(offsets) - 1
            name_rows = np.concatenate(rows)[indexes]
            if row_rank is not None:
                name_rows = row_rank[name_rows]
            # Rows ascend within each key unless add() and add_columns()
            # interleaved or ids came out of order: then sort them.
            bounds = key_starts.astype(np.int64)
            per_key = bounds[1:] - bounds[:-1]
            pairs = (np.repeat(np.arange(counts[name]), per_key) << 32) | name_rows
            if pairs.size > 1 and not bool(np.all(pairs[1:] > pairs[:-1])):
                name_rows = np.sort(pairs) & 0xFFFFFFFF
            forward = np.zeros(count, dtype=np.uint32)
            forward[name_rows] = np.repeat(np.arange(1, counts[name] + 1, dtype=np.uint32), per_key)
            columns[name] = forward
            blobs.append(keys)
            key_offsets.append(offsets[1:] + np.uint64(blob_size))
            starts.append(key_starts[1:] + np.uint64(entries))
            postings.append(name_rows.astype(np.uint32))
            blob_size += len(keys)
            entries += int(key_starts[-1])
        return (
            b"".join(blobs),
            np.concatenate(key_offsets),
            counts,
            np.concatenate(starts),
            np.concatenate(postings) if postings else _EMPTY,
            columns,
        )

    def _number_columns_in_order(
        self, order: npt.NDArray[np.int64] | None
    ) -> dict[str, npt.NDArray[np.float64]]:
        count = len(self._ids)
        numbers: dict[str, npt.NDArray[np.float64]] = {}
        for name, (rows, values) in self._numbers.items():
            column = numbers.setdefault(name, np.full(count, np.nan))
            column[np.asarray(rows, dtype=np.int64)] = values
        for offset, name, values_array in self._number_columns:
            column = numbers.setdefault(name, np.full(count, np.nan))
            column[offset : offset + values_array.size] = values_array
        if order is not None:
            numbers = {name: column[order] for name, column in numbers.items()}
        return numbers


def _check_field_name(name: object) -> None:
    if not isinstance(name, str) or not name or "=" in name:
        raise InvalidInput(f"field name {name!r} must be non-empty and contain no '='")


def _check_utf8(part: str) -> None:
    try:
        part.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(
            f"{exc.reason} at index {exc.start} of {part[:40]!r}; text and field"
            " values must be encodable as UTF-8 (no lone surrogates)"
        ) from exc


def _check_texts(texts: list[str]) -> None:
    try:
        check_values(texts, what="text", allow_none=False)
    except InvalidInput as exc:
        raise InvalidInput(f"document {exc}; texts must be str encodable as UTF-8") from None


def _keyword_column(name: str, values: Sequence[str | None], n: int) -> list[str | None]:
    _check_field_name(name)
    column = list(values)
    if len(column) != n:
        raise InvalidInput(f"keyword column {name!r} has {len(column)} values for {n} texts")
    try:
        check_values(column)
    except InvalidInput as exc:
        raise InvalidInput(f"keyword column {name!r}: {exc}") from None
    return column


def _number_column(name: str, values: npt.ArrayLike, n: int) -> npt.NDArray[np.float64]:
    _check_field_name(name)
    array = np.asarray(values)
    if array.shape != (n,) or (n and array.dtype.kind not in "iuf"):
        raise InvalidInput(
            f"numeric column {name!r} must be {n} numbers (one per text), got"
            f" {array.dtype} of shape {array.shape}"
        )
    return array.astype(np.float64)


@dataclass
class _Built:
    doc_ids: npt.NDArray[np.uint32]
    utf8: bytes
    text_offsets: npt.NDArray[np.uint64]
    lengths: npt.NDArray[np.uint32]
    term_blob: bytes
    term_offsets: npt.NDArray[np.uint64]
    entry_starts: npt.NDArray[np.uint64]
    entry_rows: npt.NDArray[np.uint32]
    tfs: npt.NDArray[np.uint32]
    position_starts: npt.NDArray[np.uint64]
    positions: npt.NDArray[np.uint32]
    key_blob: bytes
    key_offsets: npt.NDArray[np.uint64]
    keyword_fields: dict[str, int]
    key_starts: npt.NDArray[np.uint64]
    key_rows: npt.NDArray[np.uint32]
    key_columns: dict[str, npt.NDArray[np.uint32]]
    numbers: dict[str, npt.NDArray[np.float64]]


_POSITION_BLOCK = 64 * 1024
"""Positions per zstd frame: a phrase query decompresses the frames its terms span."""

_SHORT_LIST = 64
"""Posting lists of 2.._SHORT_LIST rows are varints; longer ones bit-packed blocks."""

_HIGH_CARDINALITY = 8
"""A keyword field with more distinct values than rows / this keeps no postings."""

_NUMERIC_HEADER = struct.Struct("<B7xq")
_FLOAT, _INTEGER = 0, 1


def _counts(starts: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
    """Items per group, from the groups' start offsets (one more than groups)."""
    bounds = starts.astype(np.int64)
    return bounds[1:] - bounds[:-1]


@dataclass
class _Lists:
    """Posting lists as a dictionary stores them (see the module docstring)."""

    post: npt.NDArray[np.int64]  # per key: its row, or its list's byte length
    long_bytes: npt.NDArray[np.int64]  # per key: bytes in the long-list blob
    short_bytes: npt.NDArray[np.int64]  # per key: bytes in the short-list blob
    long_blob: bytes
    short_blob: bytes


def _lists(
    rows: npt.NDArray[np.uint32], starts: npt.NDArray[np.uint64], keep: npt.NDArray[np.bool_]
) -> _Lists:
    """Encode the lists ``rows[starts[i]:starts[i + 1]]`` for the keys in ``keep``.

    One row: inline (``post`` is the row). Up to _SHORT_LIST rows: varints.
    Longer: bit-packed blocks behind a skip table (encode_postings).
    """
    bounds = starts.astype(np.int64)
    df = _counts(starts)
    long = keep & (df > _SHORT_LIST)
    short = keep & (df >= 2) & ~long
    long_blob, long_offsets = encode_postings_many(
        rows[np.repeat(long, df)], np.concatenate(([0], np.cumsum(df[long])))
    )
    short_blob, short_lengths = encode_varint_lists(rows[np.repeat(short, df)], df[short])
    long_bytes = np.zeros(df.size, dtype=np.int64)
    long_bytes[long] = np.diff(long_offsets.astype(np.int64))
    short_bytes = np.zeros(df.size, dtype=np.int64)
    short_bytes[short] = short_lengths
    first_row = rows[bounds[:-1]] if df.size else np.zeros(0, dtype=np.uint32)
    post = np.where(keep & (df == 1), first_row, long_bytes + short_bytes)
    return _Lists(post, long_bytes, short_bytes, long_blob, short_blob)


def _term_sections(built: _Built) -> tuple[list[bytes], list[bytes]]:
    """The sections of terms.tw and postings.tw."""
    df = _counts(built.entry_starts)
    npos = _counts(built.position_starts)
    lists = _lists(built.entry_rows, built.entry_starts, np.ones(df.size, dtype=bool))
    # Term frequencies are stored only for terms some document holds twice.
    has_tfs = npos > df
    n = df.size
    terms = write_dictionary(
        built.term_blob,
        built.term_offsets,
        [df, npos, lists.post],
        [
            dictionary_bases(df, n),
            dictionary_bases(npos, n),
            dictionary_bases(lists.long_bytes, n),
            dictionary_bases(lists.short_bytes, n),
            dictionary_bases(np.where(has_tfs, df, 0), n),
        ],
    )
    postings = [
        lists.long_blob,
        lists.short_blob,
        *compress_blocks(built.tfs[np.repeat(has_tfs, df)], _POSITION_BLOCK, _ZSTD_LEVEL),
        *compress_blocks(built.positions, _POSITION_BLOCK, _ZSTD_LEVEL),
    ]
    return terms, postings


def _field_sections(built: _Built) -> list[bytes]:
    """The sections of fields.tw."""
    n = int(built.doc_ids.size)
    names = sorted(built.keyword_fields, key=lambda name: f"{name}=".encode())
    counts = np.array([built.keyword_fields[name] for name in names], dtype=np.int64)
    modes = (counts > n // _HIGH_CARDINALITY).astype(np.uint8)
    # Keys of a high-cardinality field keep no postings: its column answers.
    keyed = np.repeat(modes == 0, counts)
    df = _counts(built.key_starts)
    lists = _lists(built.key_rows, built.key_starts, keyed)
    keys = write_dictionary(
        built.key_blob,
        built.key_offsets,
        [df, lists.post],
        [dictionary_bases(lists.long_bytes, df.size), dictionary_bases(lists.short_bytes, df.size)],
    )
    return [
        *keys,
        lists.long_blob,
        lists.short_blob,
        modes.tobytes(),
        *(narrow(built.key_columns[name]) for name in names),
    ]


def _numeric_sections(column: npt.NDArray[np.float64]) -> list[bytes]:
    """A numeric column: integers as narrow offsets from their minimum plus a
    presence bitmap (empty when every row has a value); else float64."""
    present = ~np.isnan(column)
    values = column[present]
    if (
        values.size
        and bool(np.all(np.abs(values) <= 2.0**53))
        and bool(np.all(values == np.floor(values)))
    ):
        base = int(values.min())
        offsets = np.zeros(column.size, dtype=np.int64)
        offsets[present] = values.astype(np.int64) - base
        bitmap = b"" if values.size == column.size else np.packbits(present).tobytes()
        return [_NUMERIC_HEADER.pack(_INTEGER, base), narrow(offsets), bitmap]
    return [_NUMERIC_HEADER.pack(_FLOAT, 0), column.tobytes(), b""]


def _doc_sections(built: _Built) -> list[bytes]:
    """The sections of docs.tw; consecutive ids store as nothing (meta has the range)."""
    ids = built.doc_ids
    consecutive = int(ids[-1]) - int(ids[0]) + 1 == ids.size
    return [
        b"" if consecutive else ids.tobytes(),
        narrow(built.lengths),
        narrow(np.diff(built.text_offsets.astype(np.int64))),
        *compress_blocks(np.frombuffer(built.utf8, dtype=np.uint8), _TEXT_BLOCK, _ZSTD_LEVEL),
    ]


def _meta_checksum(body: Mapping[str, Any]) -> int:
    return crc32c(json.dumps(body, sort_keys=True).encode("ascii"))


def _write(directory: Path, built: _Built, *, merged_from: Sequence[str]) -> SegmentMeta:
    segment_id = f"seg-{uuid.uuid4().hex}"
    tmp = directory / f"{segment_id}.tmp"
    tmp.mkdir(parents=True)
    n_terms = built.term_offsets.size - 1
    terms, postings = _term_sections(built)
    write_sections(tmp / "terms.tw", terms)
    write_sections(tmp / "postings.tw", postings)
    write_sections(tmp / "fields.tw", _field_sections(built))
    numeric_names = sorted(built.numbers)
    write_sections(
        tmp / "numeric.tw",
        [part for name in numeric_names for part in _numeric_sections(built.numbers[name])],
    )
    write_sections(tmp / "docs.tw", _doc_sections(built))
    keyword_fields = built.keyword_fields
    numeric_fields = {}
    for name in numeric_names:
        column = built.numbers[name]
        present = column[~np.isnan(column)]
        numeric_fields[name] = {
            "count": int(present.size),
            "min": float(present.min()) if present.size else math.nan,
            "max": float(present.max()) if present.size else math.nan,
        }
    stamp = numeric_fields.get("timestamp")
    body: dict[str, Any] = {
        "format": _FORMAT,
        "segment_id": segment_id,
        "doc_count": int(built.doc_ids.size),
        "min_doc_id": int(built.doc_ids[0]),
        "max_doc_id": int(built.doc_ids[-1]),
        "term_count": n_terms,
        "time_range": [stamp["min"], stamp["max"]] if stamp and stamp["count"] else None,
        "keyword_fields": keyword_fields,
        "numeric_fields": numeric_fields,
        "merged_from": list(merged_from),
    }
    meta_body = {**body, "checksum": _meta_checksum(body)}
    write_file(tmp / "meta.json", json.dumps(meta_body, sort_keys=True).encode())
    final = directory / segment_id
    publish_directory(tmp, final)
    return _meta_from(final, body)


def _meta_from(path: Path, body: Mapping[str, Any]) -> SegmentMeta:
    size = sum(p.stat().st_size for p in path.iterdir())
    time_range = body["time_range"]
    return SegmentMeta(
        segment_id=body["segment_id"],
        path=path,
        doc_count=body["doc_count"],
        min_doc_id=body["min_doc_id"],
        max_doc_id=body["max_doc_id"],
        term_count=body["term_count"],
        size_bytes=size,
        time_range=(time_range[0], time_range[1]) if time_range else None,
        keyword_fields=body["keyword_fields"],
        numeric_fields=body["numeric_fields"],
        merged_from=tuple(body["merged_from"]),
    )


def read_meta(path: str | os.PathLike[str]) -> SegmentMeta:
    """Read and check a segment's ``meta.json``."""
    path = Path(path)
    meta_path = path / "meta.json"
    if not path.is_dir():
        raise NotFound(f"no segment directory at {path}")
    try:
        data = json.loads(meta_path.read_bytes())
        checksum = data.pop("checksum")
        if checksum != _meta_checksum(data):
            raise Corruption(f"{meta_path}: checksum mismatch at offset 0")
        if data["format"] != _FORMAT:
            raise Corruption(
                f"{meta_path}: segment format {data['format']}: re-index (this version"
                f" reads format {_FORMAT} only)"
            )
        return _meta_from(path, data)
    except Corruption:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise Corruption(f"{meta_path}: unreadable at offset 0 ({exc})") from exc
