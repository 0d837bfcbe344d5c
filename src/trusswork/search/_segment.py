"""Reading index segments (through mmap), merging them and planning merges.

The on-disk layout is described in :mod:`trusswork.search._index`. Opening a
segment maps its files and checks every section checksum and the shape of
every array, so any damage is reported by :meth:`Segment.open` as
:class:`~trusswork.core.errors.Corruption` naming the file and offset;
queries afterwards never read outside the mapped bytes.
"""

from __future__ import annotations

import bisect
import contextlib
import math
import mmap
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import zstandard

from trusswork.core.errors import Conflict, Corruption, InvalidInput, NotFound
from trusswork.search._index import (
    IndexWriter,
    Postings,
    SegmentMeta,
    _write,
    query_term,
    read_meta,
)
from trusswork.search._sections import read_sections
from trusswork.search.postings import decode_postings, intersect_many
from trusswork.search.text import bm25_top_k

__all__ = ["Segment", "merge_segments", "plan_merges"]

_EMPTY = np.empty(0, dtype=np.uint32)


def _wildcard_regex(pattern: str) -> re.Pattern[str]:
    """``pattern`` with ``*`` as any run of characters and nothing else special."""
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


class _Dictionary:
    """Sorted byte-string keys, searched by bisection without decoding them all."""

    def __init__(self, blob: memoryview, offsets: npt.NDArray[np.uint64], where: str) -> None:
        if (
            offsets.size == 0
            or offsets[0] != 0
            or offsets[-1] != len(blob)
            or np.any(np.diff(offsets.astype(np.int64)) < 0)
        ):
            raise Corruption(f"{where}: dictionary offsets do not match its key bytes")
        self._blob = blob
        self._offsets = offsets

    def __len__(self) -> int:
        return int(self._offsets.size) - 1

    def __getitem__(self, index: int) -> bytes:
        return bytes(self._blob[int(self._offsets[index]) : int(self._offsets[index + 1])])

    def find(self, key: bytes) -> int:
        """Index of ``key``, or -1."""
        at = bisect.bisect_left(self, key)
        return at if at < len(self) and self[at] == key else -1


def _array(
    view: memoryview, dtype: type[np.generic], count: int | None, where: str
) -> npt.NDArray[Any]:
    itemsize = np.dtype(dtype).itemsize
    if len(view) % itemsize or (count is not None and len(view) != count * itemsize):
        raise Corruption(f"{where}: array of {len(view)} bytes, expected {count} x {itemsize}")
    return np.frombuffer(view, dtype=dtype)


def _unsigned(view: memoryview, count: int, where: str) -> npt.NDArray[Any]:
    """An unsigned array of ``count`` items whose width the section length gives."""
    if count == 0 and len(view) == 0:
        return np.empty(0, dtype=np.uint32)
    itemsize, extra = divmod(len(view), count) if count else (0, 1)
    if extra or itemsize not in (1, 2, 4, 8):
        raise Corruption(f"{where}: {len(view)} bytes cannot hold {count} unsigned integers")
    return np.frombuffer(view, dtype=f"<u{itemsize}")


def _check_offsets(offsets: npt.NDArray[np.uint64], end: int, where: str) -> None:
    if offsets[0] != 0 or offsets[-1] != end or np.any(np.diff(offsets.astype(np.int64)) < 0):
        raise Corruption(f"{where}: offsets are not increasing from 0 to {end}")


@dataclass(frozen=True)
class _Entries:
    rows: npt.NDArray[np.uint32]
    tfs: npt.NDArray[np.uint32]
    positions: npt.NDArray[np.uint32]


class Segment:
    """One immutable segment, memory-mapped; every query answers in document ids.

    Open with :meth:`open`; use as a context manager or call :meth:`close`.
    """

    def __init__(self, meta: SegmentMeta) -> None:
        self.meta = meta
        self._maps: list[mmap.mmap] = []
        self._columns: dict[str, tuple[list[str], npt.NDArray[np.int32]]] = {}
        self._decompressor = zstandard.ZstdDecompressor()

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Segment:
        """Map the segment at ``path`` and check it.

        Raises
        ------
        NotFound
            No segment directory at ``path``.
        Corruption
            A file is missing, truncated or fails a checksum or shape check.
        """
        meta = read_meta(path)
        segment = cls(meta)
        try:
            segment._load()
        except BaseException:
            segment.close()
            raise
        return segment

    def _sections(self, name: str, count: int) -> list[memoryview]:
        mapped, sections = read_sections(self.meta.path / name, count)
        self._maps.append(mapped)
        return sections

    def _load(self) -> None:
        n = self.meta.doc_count
        where = str(self.meta.path)
        docs = self._sections("docs.tw", 5)
        self.doc_ids: Postings = _array(docs[0], np.uint32, n, f"{where}/docs.tw")
        self.doc_lengths = _array(docs[1], np.uint32, n, f"{where}/docs.tw")
        self._text_offsets = _array(docs[2], np.uint64, n + 1, f"{where}/docs.tw")
        self._block_offsets = _array(docs[3], np.uint64, None, f"{where}/docs.tw")
        self._blocks = docs[4]
        _check_offsets(self._block_offsets, len(self._blocks), f"{where}/docs.tw")
        if n and (
            self.doc_ids[0] != self.meta.min_doc_id
            or np.any(np.diff(self.doc_ids.astype(np.int64)) <= 0)
        ):
            raise Corruption(f"{where}/docs.tw: document ids are not sorted and unique")
        self._avgdl = float(self.doc_lengths.mean()) if n else 0.0

        terms = self._sections("terms.tw", 5)
        m = self.meta.term_count
        self._terms = _Dictionary(
            terms[0], _unsigned(terms[1], m + 1, f"{where}/terms.tw"), f"{where}/terms.tw"
        )
        self._post_offsets = _unsigned(terms[2], m + 1, f"{where}/terms.tw")
        self._entry_starts = _unsigned(terms[3], m + 1, f"{where}/terms.tw")
        self._position_starts = _unsigned(terms[4], m + 1, f"{where}/terms.tw")
        postings = self._sections("postings.tw", 3)
        self._postings = postings[0]
        self._tfs = _unsigned(postings[1], int(self._entry_starts[-1]), f"{where}/postings.tw")
        self._positions = _unsigned(
            postings[2], int(self._position_starts[-1]), f"{where}/postings.tw"
        )
        _check_offsets(self._post_offsets, len(self._postings), f"{where}/terms.tw")

        fields = self._sections("fields.tw", 4)
        key_offsets = _array(fields[1], np.uint64, None, f"{where}/fields.tw")
        self._fields = _Dictionary(fields[0], key_offsets, f"{where}/fields.tw")
        self._field_offsets = _array(
            fields[2], np.uint64, len(self._fields) + 1, f"{where}/fields.tw"
        )
        self._field_postings = fields[3]
        _check_offsets(self._field_offsets, len(self._field_postings), f"{where}/fields.tw")

        names = sorted(self.meta.numeric_fields)
        numeric = self._sections("numeric.tw", len(names))
        self._numbers = {
            name: _array(view, np.float64, n, f"{where}/numeric.tw")
            for name, view in zip(names, numeric, strict=True)
        }

    def close(self) -> None:
        """Unmap the files (arrays handed out keep their pages alive)."""
        maps, self._maps = self._maps, []
        for mapped in maps:
            # An array still viewing the map keeps it alive until it goes.
            with contextlib.suppress(BufferError):
                mapped.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Segment({self.meta.segment_id!r}, docs={self.meta.doc_count})"

    # ------------------------------------------------------------ lookups

    def _decode(
        self, blob: memoryview, offsets: npt.NDArray[np.uint64], index: int, where: str
    ) -> npt.NDArray[np.uint32]:
        rows = decode_postings(blob[int(offsets[index]) : int(offsets[index + 1])])
        if rows.size and rows[-1] >= self.meta.doc_count:
            raise Corruption(
                f"{self.meta.path}/{where}: posting list {index} names row {rows[-1]} past the end"
            )
        return rows

    def _entries(self, term: str) -> _Entries | None:
        index = self._terms.find(query_term(term).encode("utf-8", "replace"))
        if index < 0:
            return None
        rows = self._decode(self._postings, self._post_offsets, index, "postings.tw")
        e0, e1 = int(self._entry_starts[index]), int(self._entry_starts[index + 1])
        p0, p1 = int(self._position_starts[index]), int(self._position_starts[index + 1])
        if e1 - e0 != rows.size:
            raise Corruption(
                f"{self.meta.path}/terms.tw: term {index} has {rows.size} postings"
                f" but {e1 - e0} frequencies"
            )
        return _Entries(rows, self._tfs[e0:e1], self._positions[p0:p1])

    def term(self, term: str) -> Postings:
        """Ids of the documents holding ``term`` (normalized by the tokenizer)."""
        entries = self._entries(term)
        return _EMPTY if entries is None else self.doc_ids[entries.rows]

    def doc_freq(self, term: str) -> int:
        """How many documents hold ``term``."""
        index = self._terms.find(query_term(term).encode("utf-8", "replace"))
        return 0 if index < 0 else int(self._entry_starts[index + 1] - self._entry_starts[index])

    def phrase(self, terms: Sequence[str]) -> Postings:
        """Ids of the documents holding ``terms`` at consecutive positions."""
        if not terms:
            raise InvalidInput("a phrase needs at least one term")
        found = [self._entries(t) for t in terms]
        entries = [e for e in found if e is not None]
        if len(entries) < len(found):
            return _EMPTY
        candidates = intersect_many([e.rows for e in entries])
        keys: npt.NDArray[np.int64] | None = None
        for offset, e in enumerate(entries):
            chosen = np.flatnonzero(np.isin(e.rows, candidates, assume_unique=True))
            ends = np.cumsum(e.tfs, dtype=np.int64)
            counts = e.tfs[chosen].astype(np.int64)
            starts = ends[chosen] - counts
            index = np.repeat(starts - (np.cumsum(counts) - counts), counts) + np.arange(
                int(counts.sum())
            )
            rows = np.repeat(e.rows[chosen].astype(np.int64), counts)
            here = (rows << 32) | (e.positions[index].astype(np.int64) + len(entries) - offset)
            keys = here if keys is None else np.intersect1d(keys, here, assume_unique=True)
        assert keys is not None
        return self.doc_ids[np.unique(keys >> 32)]

    def field(self, name: str, value: str | int) -> Postings:
        """Ids of the documents whose keyword field ``name`` equals ``value``."""
        index = self._fields.find(f"{name}={value}".encode("utf-8", "replace"))
        if index < 0:
            return _EMPTY
        return self.doc_ids[
            self._decode(self._field_postings, self._field_offsets, index, "fields.tw")
        ]

    def range(self, name: str, lo: float, hi: float) -> Postings:
        """Ids of the documents whose numeric field ``name`` is in ``[lo, hi]``."""
        column = self._numbers.get(name)
        if column is None:
            return _EMPTY
        return self.doc_ids[np.flatnonzero((column >= lo) & (column <= hi))]

    def all(self) -> Postings:
        """Ids of every document in the segment."""
        return self.doc_ids.copy()

    def documents(self, ids: Sequence[int] | npt.ArrayLike) -> list[str]:
        """The stored texts of the documents ``ids``, in the order given.

        Raises
        ------
        NotFound
            An id is not in this segment.
        """
        wanted = np.asarray(ids, dtype=np.int64).reshape(-1)
        rows = np.searchsorted(self.doc_ids, wanted)
        missing = (rows >= self.doc_ids.size) | (
            self.doc_ids[np.minimum(rows, self.doc_ids.size - 1)] != wanted
        )
        if np.any(missing):
            raise NotFound(
                f"document {int(wanted[np.argmax(missing)])}"
                f" is not in segment {self.meta.segment_id}"
            )
        return self.texts(rows)

    def bm25(
        self, terms: Sequence[str], k: int, *, k1: float = 1.2, b: float = 0.75
    ) -> tuple[Postings, npt.NDArray[np.float64]]:
        """The ``k`` best documents for ``terms`` by BM25 with this segment's statistics.

        Returns
        -------
        ids, scores
            Best first; ties in increasing id order.
        """
        n = self.meta.doc_count
        idf = {
            t: math.log(1.0 + (n - df + 0.5) / (df + 0.5))
            for t in terms
            if (df := self.doc_freq(t))
        }
        return self._bm25(terms, k, idf, self._avgdl, k1=k1, b=b)

    def _bm25(
        self,
        terms: Sequence[str],
        k: int,
        idf: dict[str, float],
        avgdl: float,
        *,
        k1: float,
        b: float,
    ) -> tuple[Postings, npt.NDArray[np.float64]]:
        rows, tfs, weights = [], [], []
        for t in terms:
            entries = self._entries(t)
            if entries is not None:
                rows.append(entries.rows)
                tfs.append(entries.tfs.astype(np.uint32))
                weights.append(idf[t])
        if not rows:
            return _EMPTY, np.empty(0, dtype=np.float64)
        best, scores = bm25_top_k(rows, tfs, np.asarray(weights), self.doc_lengths, avgdl, k, k1, b)
        # Rows are in id order, so the row tie-break is the id tie-break.
        return self.doc_ids[np.asarray(best, dtype=np.int64)], np.asarray(scores, dtype=np.float64)

    @property
    def avg_doc_length(self) -> float:
        """Mean document length in tokens."""
        return self._avgdl

    def terms(self) -> Iterator[str]:
        """Every term in the segment, in UTF-8 byte order."""
        for i in range(len(self._terms)):
            yield self._terms[i].decode("utf-8")

    def terms_matching(self, pattern: str) -> list[str]:
        """The terms matching a wildcard ``pattern`` (``*`` any run of characters).

        The literal prefix before the first ``*`` narrows the dictionary by
        bisection; the rest is matched term by term.
        """
        prefix = pattern.split("*", 1)[0].encode("utf-8", "replace")
        regex = _wildcard_regex(pattern)
        found = []
        for i in range(bisect.bisect_left(self._terms, prefix), len(self._terms)):
            key = self._terms[i]
            if not key.startswith(prefix):
                break
            text = key.decode("utf-8")
            if regex.fullmatch(text):
                found.append(text)
        return found

    def keyword_range(self, name: str) -> tuple[int, int]:
        """The dictionary slots ``[lo, hi)`` of keyword field ``name``'s values."""
        prefix = f"{name}=".encode("utf-8", "replace")
        lo = bisect.bisect_left(self._fields, prefix)
        hi = bisect.bisect_left(self._fields, prefix[:-1] + b">")  # '>' follows '='
        return lo, hi

    def keyword_values(self, name: str) -> list[str]:
        """The distinct values of keyword field ``name``, in UTF-8 byte order."""
        lo, hi = self.keyword_range(name)
        cut = len(name.encode("utf-8")) + 1
        return [self._fields[i][cut:].decode("utf-8") for i in range(lo, hi)]

    def keyword_rows(self, slot: int) -> npt.NDArray[np.uint32]:
        """The rows (not ids) holding the keyword at dictionary ``slot``."""
        return self._decode(self._field_postings, self._field_offsets, slot, "fields.tw")

    def keyword_column(self, name: str) -> tuple[list[str], npt.NDArray[np.int32]]:
        """Keyword field ``name`` as a dictionary-encoded column over rows.

        Returns
        -------
        values, codes
            ``values[codes[row]]`` is the row's value; ``codes[row]`` is -1
            where the row lacks the field. Built from the postings once per
            segment and field, then cached.
        """
        cached = self._columns.get(name)
        if cached is None:
            lo, hi = self.keyword_range(name)
            codes = np.full(self.meta.doc_count, -1, dtype=np.int32)
            for code, slot in enumerate(range(lo, hi)):
                codes[self.keyword_rows(slot)] = code
            cached = (self.keyword_values(name), codes)
            self._columns[name] = cached
        return cached

    def numeric_column(self, name: str) -> npt.NDArray[np.float64] | None:
        """Numeric field ``name`` over rows (NaN where a row lacks it), or None."""
        return self._numbers.get(name)

    def rows_of(self, ids: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Rows of the documents ``ids`` (which must be in this segment)."""
        return np.searchsorted(self.doc_ids, np.asarray(ids, dtype=np.int64)).astype(np.int64)

    def texts(self, rows: npt.ArrayLike) -> list[str]:
        """The stored texts of ``rows``, decompressing each block once."""
        from trusswork.search._index import _TEXT_BLOCK

        wanted = np.asarray(rows, dtype=np.int64).reshape(-1)
        if wanted.size == 0:
            return []
        if wanted.min() < 0 or wanted.max() >= self.meta.doc_count:
            raise InvalidInput(f"rows outside 0..{self.meta.doc_count - 1}")
        starts = self._text_offsets[wanted].astype(np.int64)
        ends = self._text_offsets[wanted + 1].astype(np.int64)
        blocks: dict[int, bytes] = {}
        out = []
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
            first, last = start // _TEXT_BLOCK, max(start, end - 1) // _TEXT_BLOCK
            if end == start:
                out.append("")
                continue
            parts = []
            for block in range(first, last + 1):
                data = blocks.get(block)
                if data is None:
                    data = blocks[block] = self._block(block)
                parts.append(data)
            raw = parts[0] if len(parts) == 1 else b"".join(parts)
            base = first * _TEXT_BLOCK
            out.append(raw[start - base : end - base].decode("utf-8"))
        return out

    def _block(self, block: int) -> bytes:
        if block + 1 >= self._block_offsets.size:
            raise Corruption(f"{self.meta.path}/docs.tw: text block {block} is past the last one")
        lo, hi = int(self._block_offsets[block]), int(self._block_offsets[block + 1])
        try:
            return self._decompressor.decompress(self._blocks[lo:hi])
        except zstandard.ZstdError as exc:
            raise Corruption(
                f"{self.meta.path}/docs.tw: text block {block} at offset {lo} does not decompress"
            ) from exc

    def _field_items(self) -> Iterator[tuple[str, str, npt.NDArray[np.uint32]]]:
        for i in range(len(self._fields)):
            name, value = self._fields[i].decode("utf-8").split("=", 1)
            yield (
                name,
                value,
                self._decode(self._field_postings, self._field_offsets, i, "fields.tw"),
            )


def merge_segments(segments: Sequence[Segment], directory: str | os.PathLike[str]) -> SegmentMeta:
    """Write one segment holding every document of ``segments``; ids are kept.

    The inputs are left in place; the new segment's meta names them in
    ``merged_from`` so a reader that finds both can drop the inputs.

    Raises
    ------
    InvalidInput
        No segments given.
    Conflict
        Two segments hold the same document id.
    """
    if not segments:
        raise InvalidInput("merge_segments needs at least one segment")
    all_ids = np.concatenate([s.doc_ids for s in segments])
    if np.unique(all_ids).size != all_ids.size:
        raise Conflict(
            "the segments share document ids; a merge keeps ids, so they must be disjoint"
        )
    writer = IndexWriter()
    for segment in segments:
        n = segment.meta.doc_count
        keywords: list[dict[str, str]] = [{} for _ in range(n)]
        for name, value, rows in segment._field_items():
            for row in rows.tolist():
                keywords[row][name] = value
        columns = [(name, col) for name, col in segment._numbers.items()]
        texts = segment.documents(segment.doc_ids)
        for row in range(n):
            numbers = {name: float(col[row]) for name, col in columns if not math.isnan(col[row])}
            writer._add_parsed(int(segment.doc_ids[row]), texts[row], keywords[row], numbers)
    return _write(
        Path(directory), writer._build(), merged_from=[s.meta.segment_id for s in segments]
    )


def plan_merges(
    metas: Sequence[SegmentMeta],
    *,
    merge_factor: int = 10,
    tier_base: float = 10.0,
    max_merged_docs: int | None = None,
) -> list[list[SegmentMeta]]:
    """Choose groups of similar-sized segments to merge (a tiered policy).

    Segments fall into tiers by ``floor(log(doc_count, tier_base))``; every
    ``merge_factor`` segments of one tier, smallest first, form a group.
    Segments already at ``max_merged_docs`` or more, and groups that would
    exceed it, are left alone.

    Returns
    -------
    list of groups
        Each group is merged into one segment; no segment is in two groups.
    """
    if merge_factor < 2 or tier_base <= 1:
        raise InvalidInput("merge_factor must be >= 2 and tier_base > 1")
    tiers: dict[int, list[SegmentMeta]] = {}
    for meta in metas:
        if max_merged_docs is not None and meta.doc_count >= max_merged_docs:
            continue
        tier = math.floor(math.log(max(meta.doc_count, 1), tier_base) + 1e-9)
        tiers.setdefault(tier, []).append(meta)
    groups = []
    for tier in sorted(tiers):
        members = sorted(tiers[tier], key=lambda m: (m.doc_count, m.segment_id))
        for start in range(0, len(members) - merge_factor + 1, merge_factor):
            group = members[start : start + merge_factor]
            if max_merged_docs is None or sum(m.doc_count for m in group) <= max_merged_docs:
                groups.append(group)
    return groups
