"""Reading index segments (through mmap), merging them and planning merges.

The on-disk layout is described in :mod:`trusswork.search._index`. Opening a
segment maps its files and checks every section checksum and the shape of
every uncompressed array, so any damage is reported by :meth:`Segment.open`
as :class:`~trusswork.core.errors.Corruption` naming the file and offset.
Compressed blocks (dictionary blocks, positions, tfs, texts) are checked
when first decompressed and raise Corruption then; queries never read
outside the mapped bytes.

Keyword columns come straight from each field's forward column (a view of
the map and one subtraction); a high-cardinality field has no posting lists
and :meth:`Segment.keyword_rows` scans its column instead.
"""

from __future__ import annotations

import bisect
import contextlib
import math
import mmap
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from trusswork.core.errors import Conflict, Corruption, InvalidInput, NotFound
from trusswork.search._index import (
    _FLOAT,
    _INTEGER,
    _NUMERIC_HEADER,
    _POSITION_BLOCK,
    _SHORT_LIST,
    _TEXT_BLOCK,
    IndexWriter,
    Postings,
    SegmentMeta,
    _write,
    query_term,
    read_meta,
)
from trusswork.search._sections import (
    DICTIONARY_BLOCK,
    DICTIONARY_SECTIONS,
    Blocks,
    Dictionary,
    decode_varint_list,
    read_sections,
    unsigned,
)
from trusswork.search.postings import decode_postings, intersect_many
from trusswork.search.text import bm25_top_k, wildcard_regex

__all__ = ["Segment", "merge_segments", "plan_merges"]

_EMPTY = np.empty(0, dtype=np.uint32)


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
class _Term:
    """Where one dictionary entry's data lives (all counts absolute)."""

    df: int
    npos: int
    post: int  # the row when df == 1, else the encoded list's length
    entry: int  # index of its first posting among all postings
    position: int  # index of its first position
    offset: int  # byte offset of its list (df >= 2) in the long or short blob
    tf: int  # index of its first stored tf (when npos > df)


def _list_offset(
    df: int,
    head_df: npt.NDArray[np.int64],
    head_post: npt.NDArray[np.int64],
    long_base: int,
    short_base: int,
) -> int:
    """Byte offset of a list of ``df`` rows, from the entries before it in its block."""
    if df > _SHORT_LIST:
        return long_base + int(head_post[head_df > _SHORT_LIST].sum())
    return short_base + int(head_post[(head_df >= 2) & (head_df <= _SHORT_LIST)].sum())


class Segment:
    """One immutable segment, memory-mapped; every query answers in document ids.

    Open with :meth:`open`; use as a context manager or call :meth:`close`.
    """

    def __init__(self, meta: SegmentMeta) -> None:
        self.meta = meta
        self._maps: list[mmap.mmap] = []
        self._term_sums: dict[int, tuple[npt.NDArray[np.int64], ...]] = {}
        self._columns: dict[str, tuple[list[str], npt.NDArray[np.int32]]] = {}
        self._numbers: dict[str, npt.NDArray[np.float64]] = {}

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
        self._load_docs(n, f"{where}/docs.tw")
        self._load_terms(f"{where}/terms.tw", f"{where}/postings.tw")
        self._load_fields(n, f"{where}/fields.tw")
        self._load_numbers(n, f"{where}/numeric.tw")

    def _load_docs(self, n: int, where: str) -> None:
        docs = self._sections("docs.tw", 6)
        lo, hi = self.meta.min_doc_id, self.meta.max_doc_id
        if len(docs[0]) == 0:
            if hi - lo + 1 != n:
                raise Corruption(f"{where}: ids {lo}..{hi} are not {n} consecutive ones")
            self.doc_ids: Postings = np.arange(lo, hi + 1, dtype=np.uint32)
        else:
            self.doc_ids = _array(docs[0], np.uint32, n, where)
            if n and (
                self.doc_ids[0] != lo
                or self.doc_ids[-1] != hi
                or np.any(self.doc_ids[1:] <= self.doc_ids[:-1])
            ):
                raise Corruption(f"{where}: document ids are not sorted and unique")
        self.doc_lengths = unsigned(docs[1], n, where).astype(np.uint32)
        self._text_offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(unsigned(docs[2], n, where), out=self._text_offsets[1:])
        self._texts = Blocks(docs[3:6], int(self._text_offsets[-1]), _TEXT_BLOCK, where)
        if self._texts.width != 1:
            raise Corruption(f"{where}: text blocks must hold bytes")
        self._avgdl = float(self.doc_lengths.mean()) if n else 0.0

    def _load_terms(self, where: str, postings_where: str) -> None:
        terms = self._sections("terms.tw", DICTIONARY_SECTIONS + 5)
        self._terms = Dictionary(terms, self.meta.term_count, 3, where)
        _, positions, long_bytes, short_bytes, tf_count = (int(b[-1]) for b in self._terms.bases)
        postings = self._sections("postings.tw", 8)
        self._postings = (postings[0], postings[1])
        if len(postings[0]) != long_bytes or len(postings[1]) != short_bytes:
            raise Corruption(f"{postings_where}: posting lists do not fill their sections")
        self._tf_values = Blocks(postings[2:5], tf_count, _POSITION_BLOCK, postings_where)
        self._positions = Blocks(postings[5:8], positions, _POSITION_BLOCK, postings_where)

    def _load_fields(self, n: int, where: str) -> None:
        names = sorted(self.meta.keyword_fields, key=lambda name: f"{name}=".encode())
        counts = [int(self.meta.keyword_fields[name]) for name in names]
        fields = self._sections("fields.tw", DICTIONARY_SECTIONS + 5 + len(names))
        self._fields = Dictionary(fields[: DICTIONARY_SECTIONS + 2], sum(counts), 2, where)
        self._field_postings = (fields[DICTIONARY_SECTIONS + 2], fields[DICTIONARY_SECTIONS + 3])
        if len(self._field_postings[0]) != int(self._fields.bases[0][-1]) or len(
            self._field_postings[1]
        ) != int(self._fields.bases[1][-1]):
            raise Corruption(f"{where}: keyword posting lists do not fill their sections")
        modes = np.frombuffer(fields[DICTIONARY_SECTIONS + 4], dtype=np.uint8)
        if modes.size != len(names) or np.any(modes > 1):
            raise Corruption(f"{where}: bad keyword field modes")
        # name -> (first slot, value count, column of 1 + code per row, 0 = absent)
        self._field_slots: dict[str, tuple[int, int, npt.NDArray[Any]]] = {}
        self._column_only: list[bool] = []
        self._slot_starts = np.zeros(len(names) + 1, dtype=np.int64)
        slot = 0
        for i, (name, count) in enumerate(zip(names, counts, strict=True)):
            column = unsigned(fields[DICTIONARY_SECTIONS + 5 + i], n, where)
            if column.size and int(column.max()) > count:
                raise Corruption(f"{where}: column {name!r} names a value past its {count}")
            self._field_slots[name] = (slot, count, column)
            self._column_only.append(bool(modes[i]))
            slot += count
            self._slot_starts[i + 1] = slot
        self._field_names = names

    def _load_numbers(self, n: int, where: str) -> None:
        names = sorted(self.meta.numeric_fields)
        numeric = self._sections("numeric.tw", 3 * len(names))
        self._number_parts: dict[str, tuple[int, int, npt.NDArray[Any], memoryview]] = {}
        for i, name in enumerate(names):
            head, values, bitmap = numeric[3 * i : 3 * i + 3]
            if len(head) != _NUMERIC_HEADER.size:
                raise Corruption(f"{where}: bad header of numeric field {name!r}")
            kind, base = _NUMERIC_HEADER.unpack(head)
            if kind == _FLOAT and len(bitmap) == 0:
                array = _array(values, np.float64, n, where)
            elif kind == _INTEGER and len(bitmap) in (0, (n + 7) // 8):
                array = unsigned(values, n, where)
            else:
                raise Corruption(f"{where}: bad layout of numeric field {name!r}")
            self._number_parts[name] = (kind, base, array, bitmap)

    def close(self) -> None:
        """Unmap the files; the segment cannot be read afterwards.

        The segment's own views of the maps go first, so the maps close now;
        arrays handed out earlier keep their pages (and a map) alive until
        they go.
        """
        maps, self._maps = self._maps, []
        for name in [n for n in vars(self) if n not in ("meta", "_maps")]:
            delattr(self, name)
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

    def _corrupt(self, name: str, what: str) -> Corruption:
        return Corruption(f"{self.meta.path}/{name}: {what}")

    def _term_at(self, index: int) -> _Term:
        block, at = divmod(index, DICTIONARY_BLOCK)
        df, npos, post = self._terms.block(block)[1]
        bases = [int(b[block]) for b in self._terms.bases]
        sums = self._block_sums(block)
        d, p = int(df[at]), int(npos[at])
        if d == 0 or p < d:
            raise self._corrupt("terms.tw", f"term {index} has {d} postings and {p} positions")
        entries, positions, long_bytes, short_bytes, tfs = (int(s[at]) for s in sums)
        return _Term(
            df=d,
            npos=p,
            post=int(post[at]),
            entry=bases[0] + entries,
            position=bases[1] + positions,
            offset=bases[2] + long_bytes if d > _SHORT_LIST else bases[3] + short_bytes,
            tf=bases[4] + tfs,
        )

    def _block_sums(self, block: int) -> tuple[npt.NDArray[np.int64], ...]:
        """Per term of a dictionary block, the totals of the terms before it in the
        block: postings, positions, long-list bytes, short-list bytes, stored tfs."""
        sums = self._term_sums.get(block)
        if sums is None:
            df, npos, post = (a.astype(np.int64) for a in self._terms.block(block)[1])
            short = (df >= 2) & (df <= _SHORT_LIST)
            parts: list[npt.NDArray[np.int64]] = [df, npos]
            parts += [np.where(df > _SHORT_LIST, post, 0), np.where(short, post, 0)]
            parts.append(np.where(npos > df, df, 0))
            sums = tuple(np.concatenate(([0], np.cumsum(part))) for part in parts)
            if len(self._term_sums) >= 1024:
                self._term_sums.clear()
            self._term_sums[block] = sums
        return sums

    def _rows(
        self, info: _Term, blobs: tuple[memoryview, memoryview], name: str
    ) -> npt.NDArray[np.uint32]:
        if info.df == 1:
            rows = np.array([info.post], dtype=np.uint32)
        else:
            blob = blobs[0] if info.df > _SHORT_LIST else blobs[1]
            end = info.offset + info.post
            if end > len(blob):
                raise self._corrupt(name, f"a posting list ends past its section at {end}")
            if info.df > _SHORT_LIST:
                rows = decode_postings(blob[info.offset : end])
            else:
                rows = decode_varint_list(
                    blob[info.offset : end], info.df, f"{self.meta.path}/{name}"
                )
            if rows.size != info.df:
                raise self._corrupt(name, f"a list of {rows.size} rows, expected {info.df}")
        if rows.size and rows[-1] >= self.meta.doc_count:
            raise self._corrupt(name, f"a posting list names row {rows[-1]} past the end")
        return rows

    def _term_tfs(self, info: _Term) -> npt.NDArray[np.uint32]:
        if info.npos == info.df:
            return np.ones(info.df, dtype=np.uint32)
        if info.tf + info.df > len(self._tf_values):
            raise self._corrupt("postings.tw", "term frequencies past the section")
        tfs = self._tf_values.slice(info.tf, info.tf + info.df).astype(np.uint32)
        if int(tfs.sum(dtype=np.int64)) != info.npos or not bool(np.all(tfs)):
            raise self._corrupt("postings.tw", "term frequencies do not add up")
        return tfs

    def _find_term(self, term: str) -> _Term | None:
        index = self._terms.find(query_term(term).encode("utf-8", "replace"))
        return None if index < 0 else self._term_at(index)

    def term(self, term: str) -> Postings:
        """Ids of the documents holding ``term`` (normalized by the tokenizer)."""
        info = self._find_term(term)
        return (
            _EMPTY
            if info is None
            else self.doc_ids[self._rows(info, self._postings, "postings.tw")]
        )

    def doc_freq(self, term: str) -> int:
        """How many documents hold ``term``."""
        info = self._find_term(term)
        return 0 if info is None else info.df

    def phrase(self, terms: Sequence[str]) -> Postings:
        """Ids of the documents holding ``terms`` at consecutive positions."""
        if not terms:
            raise InvalidInput("a phrase needs at least one term")
        found = [self._find_term(t) for t in terms]
        infos = [e for e in found if e is not None]
        if len(infos) < len(found):
            return _EMPTY
        all_rows = [self._rows(e, self._postings, "postings.tw") for e in infos]
        candidates = intersect_many(all_rows)
        keys: npt.NDArray[np.int64] | None = None
        for offset, (info, e_rows) in enumerate(zip(infos, all_rows, strict=True)):
            if not candidates.size:
                break
            tfs = self._term_tfs(info)
            if info.position + info.npos > len(self._positions):
                raise self._corrupt("terms.tw", "a term's positions run past the positions")
            positions = self._positions.slice(info.position, info.position + info.npos)
            # candidates is a sorted subset of the sorted e_rows: find its places.
            chosen = np.searchsorted(e_rows, candidates)
            ends = np.cumsum(tfs, dtype=np.int64)
            counts = tfs[chosen].astype(np.int64)
            starts = ends[chosen] - counts
            index = np.repeat(starts - (np.cumsum(counts) - counts), counts) + np.arange(
                int(counts.sum())
            )
            rows = np.repeat(e_rows[chosen].astype(np.int64), counts)
            here = (rows << 32) | (positions[index].astype(np.int64) + len(infos) - offset)
            keys = here if keys is None else np.intersect1d(keys, here, assume_unique=True)
            candidates = np.unique(keys >> 32).astype(np.uint32)
        return self.doc_ids[candidates]

    def field(self, name: str, value: str | int) -> Postings:
        """Ids of the documents whose keyword field ``name`` equals ``value``."""
        index = self._fields.find(f"{name}={value}".encode("utf-8", "replace"))
        if index < 0:
            return _EMPTY
        return self.doc_ids[self.keyword_rows(index)]

    def range(self, name: str, lo: float, hi: float) -> Postings:
        """Ids of the documents whose numeric field ``name`` is in ``[lo, hi]``."""
        column = self.numeric_column(name)
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
            info = self._find_term(t)
            if info is not None:
                rows.append(self._rows(info, self._postings, "postings.tw"))
                tfs.append(self._term_tfs(info))
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
        for start in range(0, len(self._terms), DICTIONARY_BLOCK):
            for key in self._terms.keys(start, min(start + DICTIONARY_BLOCK, len(self._terms))):
                yield key.decode("utf-8")

    def terms_matching(self, pattern: str) -> list[str]:
        """The terms matching a wildcard ``pattern`` (``*`` any run of characters).

        The literal prefix before the first ``*`` narrows the dictionary by
        bisection; the rest is matched term by term.
        """
        prefix = pattern.split("*", 1)[0].encode("utf-8", "replace")
        regex = wildcard_regex(pattern)
        found: list[str] = []
        count = len(self._terms)
        at = self._terms.bisect_left(prefix)
        while at < count:
            stop = min((at // DICTIONARY_BLOCK + 1) * DICTIONARY_BLOCK, count)
            for key in self._terms.keys(at, stop):
                if not key.startswith(prefix):
                    return found
                text = key.decode("utf-8")
                if regex.fullmatch(text):
                    found.append(text)
            at = stop
        return found

    def keyword_range(self, name: str) -> tuple[int, int]:
        """The dictionary slots ``[lo, hi)`` of keyword field ``name``'s values."""
        slots = self._field_slots.get(name)
        if slots is None:
            # Where the name would sort: an empty range there.
            at = bisect.bisect_left(
                [f"{n}=".encode() for n in self._field_names], f"{name}=".encode("utf-8", "replace")
            )
            edge = int(self._slot_starts[at])
            return edge, edge
        return slots[0], slots[0] + slots[1]

    def keyword_values(self, name: str) -> list[str]:
        """The distinct values of keyword field ``name``, in UTF-8 byte order."""
        lo, hi = self.keyword_range(name)
        cut = len(name.encode("utf-8")) + 1
        return [key[cut:].decode("utf-8") for key in self._fields.keys(lo, hi)]

    def keyword_rows(self, slot: int) -> npt.NDArray[np.uint32]:
        """The rows (not ids) holding the keyword at dictionary ``slot``."""
        if not 0 <= slot < len(self._fields):
            raise InvalidInput(f"keyword slot {slot} is outside 0..{len(self._fields) - 1}")
        field = int(np.searchsorted(self._slot_starts, slot, side="right")) - 1
        first, _, column = self._field_slots[self._field_names[field]]
        if self._column_only[field]:
            return np.flatnonzero(column == slot - first + 1).astype(np.uint32)
        block, at = divmod(slot, DICTIONARY_BLOCK)
        df, post = self._fields.block(block)[1]
        head_df = df[:at].astype(np.int64)
        bases = [int(b[block]) for b in self._fields.bases]
        info = _Term(
            df=int(df[at]),
            npos=int(df[at]),
            post=int(post[at]),
            entry=0,
            position=0,
            offset=_list_offset(int(df[at]), head_df, post[:at].astype(np.int64), *bases),
            tf=0,
        )
        if info.df == 0:
            raise self._corrupt("fields.tw", f"keyword {slot} has no rows")
        return self._rows(info, self._field_postings, "fields.tw")

    def keyword_column(self, name: str) -> tuple[list[str], npt.NDArray[np.int32]]:
        """Keyword field ``name`` as a dictionary-encoded column over rows.

        Returns
        -------
        values, codes
            ``values[codes[row]]`` is the row's value; ``codes[row]`` is -1
            where the row lacks the field. Read from the segment's forward
            column for the field (one subtraction), cached per field.
        """
        cached = self._columns.get(name)
        if cached is None:
            slots = self._field_slots.get(name)
            if slots is None:
                codes = np.full(self.meta.doc_count, -1, dtype=np.int32)
            else:
                codes = np.subtract(slots[2], 1, dtype=np.int32)
            cached = (self.keyword_values(name), codes)
            self._columns[name] = cached
        return cached

    def numeric_column(self, name: str) -> npt.NDArray[np.float64] | None:
        """Numeric field ``name`` over rows (NaN where a row lacks it), or None."""
        column = self._numbers.get(name)
        if column is None:
            parts = self._number_parts.get(name)
            if parts is None:
                return None
            kind, base, values, bitmap = parts
            if kind == _FLOAT:
                column = values
            else:
                column = values.astype(np.float64) + float(base)
                if len(bitmap):
                    present = np.unpackbits(
                        np.frombuffer(bitmap, dtype=np.uint8), count=values.size
                    ).astype(bool)
                    column[~present] = np.nan
            self._numbers[name] = column
        return column

    def rows_of(self, ids: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """Rows of the documents ``ids`` (which must be in this segment)."""
        return np.searchsorted(self.doc_ids, np.asarray(ids, dtype=np.int64)).astype(np.int64)

    def texts(self, rows: npt.ArrayLike) -> list[str]:
        """The stored texts of ``rows``, decompressing each block once."""
        wanted = np.asarray(rows, dtype=np.int64).reshape(-1)
        if wanted.size == 0:
            return []
        if wanted.min() < 0 or wanted.max() >= self.meta.doc_count:
            raise InvalidInput(f"rows outside 0..{self.meta.doc_count - 1}")
        # In stored order, so each block is decompressed once however the
        # rows were asked for.
        order = np.argsort(wanted, kind="stable")
        starts = self._text_offsets[wanted[order]].tolist()
        ends = self._text_offsets[wanted[order] + 1].tolist()
        out: list[str] = [""] * wanted.size
        frames: dict[int, bytes] = {}
        for at, start, end in zip(order.tolist(), starts, ends, strict=True):
            first, last = start // _TEXT_BLOCK, max(start, end - 1) // _TEXT_BLOCK
            if start == end:
                raw = b""
            elif first == last:
                data = frames.get(first)
                if data is None:
                    frames.clear()  # rows come in stored order: never needed again
                    data = frames[first] = self._texts.frame(first).tobytes()
                base = first * _TEXT_BLOCK
                raw = data[start - base : end - base]
            else:
                raw = self._texts.slice(start, end).tobytes()
            try:
                out[at] = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise self._corrupt("docs.tw", f"text at byte {start} is not UTF-8") from exc
        return out


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
    # Column by column: each segment's keyword codes, numbers and texts go to
    # the batch indexer, with no Python step per document.
    writer = IndexWriter()
    for segment in segments:
        keywords: dict[str, list[str | None]] = {}
        for name in segment.meta.keyword_fields:
            values, codes = segment.keyword_column(name)
            lookup = np.empty(len(values) + 1, dtype=object)
            lookup[:-1] = values  # codes of -1 pick the None at the end
            keywords[name] = lookup[codes].tolist()
        numbers = {
            name: column
            for name in segment.meta.numeric_fields
            if (column := segment.numeric_column(name)) is not None
        }
        texts = segment.texts(np.arange(segment.meta.doc_count))
        writer.add_columns(texts, keywords=keywords, numbers=numbers, doc_ids=segment.doc_ids)
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
