"""Immutable on-disk blocks: reading one back (:class:`Block`).

The format (directory layout, ``chunks``, ``index`` and ``meta.json``) is
described in :mod:`trusswork.tsdb._block_format`; blocks are written and
deleted by :mod:`trusswork.tsdb._block_write`. Both modules' names are
re-exported here, so ``trusswork.tsdb._block`` stays the one place to import
blocks from.

Guarantees
----------
- Checked: :meth:`Block.open` reads the index in one read and verifies every
  byte of it (header, section CRCs, table of contents) and ``meta.json``;
  each chunk's CRC32C is verified when the chunk is read. Damage raises
  :class:`~trusswork.core.errors.Corruption` naming the file and byte offset.
- Cheap reads: queries decode only the chunks that overlap their time range,
  of the series their matchers select through the postings.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from itertools import pairwise
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from trusswork.core.checksum import crc32c
from trusswork.core.errors import Corruption, InvalidInput, NotFound
from trusswork.search.postings import (
    decode_postings,
    difference,
    intersect_many,
    union_many,
)
from trusswork.tsdb import codec

# The public names of the block format and writer stay importable from here.
from trusswork.tsdb._block_format import (
    _CHUNK_ROW,
    _CHUNKS_MAGIC,
    _FOOTER_SIZE,
    _FORMAT_VERSION,
    _FRAME,
    _HEADER,
    _INDEX_MAGIC,
    _POSTING_ROW,
    _SECTIONS,
    _TOC,
)
from trusswork.tsdb._block_format import AGGREGATES as AGGREGATES
from trusswork.tsdb._block_format import DEFAULT_CHUNK_SAMPLES as DEFAULT_CHUNK_SAMPLES
from trusswork.tsdb._block_format import Aggregate as Aggregate
from trusswork.tsdb._block_format import BlockMeta as BlockMeta
from trusswork.tsdb._block_format import Columns as Columns
from trusswork.tsdb._block_format import Float64Array as Float64Array
from trusswork.tsdb._block_format import Int64Array as Int64Array
from trusswork.tsdb._block_write import cleanup_tmp as cleanup_tmp
from trusswork.tsdb._block_write import delete_block as delete_block
from trusswork.tsdb._block_write import write_block as write_block
from trusswork.tsdb._series import Labels, Matcher, SeriesData

__all__ = [
    "AGGREGATES",
    "DEFAULT_CHUNK_SAMPLES",
    "Aggregate",
    "Block",
    "BlockMeta",
    "cleanup_tmp",
    "delete_block",
    "write_block",
]

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1


def _corrupt(path: Path, offset: int, what: str) -> Corruption:
    return Corruption(
        f"{path}: {what} (byte offset {offset}); the block is damaged, "
        "restore it from a copy or delete it"
    )


# ------------------------------------------------------------------ reading


def _read_meta(path: Path, expected_id: str) -> BlockMeta:
    try:
        body = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise _corrupt(path, 0, "meta.json is missing") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise _corrupt(path, getattr(exc, "pos", 0) or 0, f"meta.json is not JSON: {exc}") from None
    ints = ("mint", "maxt", "num_series", "num_samples", "num_chunks", "resolution", "level")
    if (
        not isinstance(body, dict)
        or body.get("version") != _FORMAT_VERSION
        or not isinstance(body.get("id"), str)
        or not all(type(body.get(key)) is int for key in ints)
        or not isinstance(body.get("sources"), list)
        or not all(isinstance(s, str) for s in body["sources"])
    ):
        raise _corrupt(path, 0, "meta.json lacks a field or has an unknown version")
    meta = BlockMeta(
        id=body["id"],
        **{key: body[key] for key in ints},
        sources=tuple(body["sources"]),
    )
    if meta.id != expected_id:
        raise _corrupt(path, 0, f"meta.json names block {meta.id}, not its directory's")
    if meta.mint > meta.maxt or meta.resolution < 0 or meta.level < 1:
        raise _corrupt(path, 0, "meta.json has an impossible range, resolution or level")
    return meta


class _Section:
    """Bounds-checked cursor over one index section."""

    def __init__(self, path: Path, data: bytes, name: str, start: int, length: int) -> None:
        self.path, self.data, self.name = path, data, name
        self.position, self.end = start, start + length

    def fail(self, what: str, offset: int | None = None) -> Corruption:
        where = self.position if offset is None else offset
        return _corrupt(self.path, where, f"index section {self.name!r}: {what}")

    def array(self, dtype: npt.DTypeLike, count: int) -> npt.NDArray[Any]:
        size = np.dtype(dtype).itemsize * count
        if count < 0 or self.position + size > self.end:
            raise self.fail(f"{count} entries run past the section end")
        out = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.position)
        self.position += size
        return out

    def counts(self, n: int) -> list[int]:
        return [int(x) for x in self.array("<u8", n)]

    def rest(self) -> memoryview:
        view = memoryview(self.data)[self.position : self.end]
        self.position = self.end
        return view


def _check_starts(section: _Section, starts: npt.NDArray[Any], total: int, what: str) -> None:
    if int(starts[0]) != 0 or int(starts[-1]) != total or bool(np.any(np.diff(starts) < 0)):
        raise section.fail(f"{what} offsets are not ascending within the section")


class Block:
    """A read-only block on disk: a :class:`~trusswork.tsdb._series.Queryable`.

    Open with :meth:`Block.open`; it holds the parsed index in memory and the
    chunks file mapped until :meth:`close` (also a context manager). Safe to
    query from several threads at once.
    """

    meta: BlockMeta
    path: Path

    def __init__(self, path: Path, meta: BlockMeta, index: bytes, chunks: mmap.mmap) -> None:
        self.path = path
        self.meta = meta
        self._index_path = path / "index"
        self._chunks_path = path / "chunks"
        self._chunks: mmap.mmap | None = chunks
        self._parse_index(index, len(chunks))

    @classmethod
    def open(cls, path: Path) -> Block:
        """Open the block in directory ``path`` and verify its index and metadata.

        Raises
        ------
        NotFound
            ``path`` is not a directory.
        Corruption
            ``meta.json``, ``index`` or ``chunks`` is missing, truncated or
            fails a checksum; the message names the file and byte offset.
        """
        path = Path(path)
        if not path.is_dir():
            raise NotFound(f"no block directory at {path}")
        meta = _read_meta(path / "meta.json", path.name)
        index_path, chunks_path = path / "index", path / "chunks"
        try:
            index = index_path.read_bytes()
        except FileNotFoundError:
            raise _corrupt(index_path, 0, "index file is missing") from None
        try:
            with open(chunks_path, "rb") as file:
                size = os.fstat(file.fileno()).st_size
                if size < _HEADER.size:
                    raise _corrupt(chunks_path, size, "chunks file is shorter than its header")
                chunks = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        except FileNotFoundError:
            raise _corrupt(chunks_path, 0, "chunks file is missing") from None
        if _HEADER.unpack_from(chunks, 0) != (_CHUNKS_MAGIC, _FORMAT_VERSION):
            chunks.close()
            raise _corrupt(chunks_path, 0, "not a version-1 chunks file")
        try:
            return cls(path, meta, index, chunks)
        except BaseException:
            chunks.close()
            raise

    def _parse_index(self, data: bytes, chunks_size: int) -> None:
        path, size = self._index_path, len(data)
        if size < _HEADER.size + _FOOTER_SIZE:
            raise _corrupt(path, size, f"index is {size} bytes, too short (truncated?)")
        if _HEADER.unpack_from(data, 0) != (_INDEX_MAGIC, _FORMAT_VERSION):
            raise _corrupt(path, 0, "not a version-1 index file")
        if data[-4:] != _INDEX_MAGIC:
            raise _corrupt(path, size - 4, "index end marker is missing (truncated?)")
        toc_at = size - _FOOTER_SIZE
        toc = _TOC.unpack_from(data, toc_at)
        if crc32c(data[toc_at : toc_at + _TOC.size]) != struct.unpack_from("<I", data, size - 8)[0]:
            raise _corrupt(path, toc_at, "index table of contents fails its CRC32C")
        sections = {}
        for i, name in enumerate(_SECTIONS):
            start, length, crc = toc[3 * i : 3 * i + 3]
            if start < _HEADER.size or start + length > toc_at:
                raise _corrupt(path, toc_at, f"index section {name!r} lies outside the file")
            if crc32c(memoryview(data)[start : start + length]) != crc:
                raise _corrupt(path, start, f"index section {name!r} fails its CRC32C")
            sections[name] = _Section(path, data, name, start, length)
        if toc[-1] != chunks_size:
            raise _corrupt(
                self._chunks_path,
                chunks_size,
                f"chunks file is {chunks_size} bytes, the index expects {toc[-1]} (truncated?)",
            )

        sym = sections["symbols"]
        (count,) = sym.counts(1)
        offsets = sym.array("<u8", count + 1)
        blob = bytes(sym.rest())
        if not 0 <= len(blob) - int(offsets[-1]) < 8:
            raise sym.fail("symbol blob length disagrees with its offsets")
        _check_starts(sym, offsets, int(offsets[-1]), "symbol")
        try:
            self._symbols = [blob[a:b].decode() for a, b in pairwise(offsets.tolist())]
        except UnicodeDecodeError:
            raise sym.fail("a symbol is not UTF-8") from None
        if any(a >= b for a, b in pairwise(self._symbols)):
            raise sym.fail("symbols are not sorted")

        ser = sections["series"]
        num_series, num_pairs, num_rows = ser.counts(3)
        self._label_start = ser.array("<u8", num_series + 1)
        self._chunk_start = ser.array("<u8", num_series + 1)
        self._pairs = ser.array("<u4", 2 * num_pairs).reshape(-1, 2)
        self._rows = ser.array(_CHUNK_ROW, num_rows)
        _check_starts(ser, self._label_start, num_pairs, "label")
        _check_starts(ser, self._chunk_start, num_rows, "chunk")
        width = len(AGGREGATES) if self.meta.resolution else 1
        rows = self._rows
        if (num_pairs and int(self._pairs.max()) >= count) or (
            num_rows
            and (
                int(rows["kind"].max()) >= width
                or int(rows["offset"].max()) + _FRAME.size > chunks_size
                or bool(np.any(rows["mint"] > rows["maxt"]))
                or int(rows["count"].min()) == 0
            )
        ):
            raise ser.fail("a label or chunk reference is out of range")
        if num_series != self.meta.num_series or num_rows != self.meta.num_chunks:
            raise _corrupt(self.path / "meta.json", 0, "meta.json counts disagree with the index")

        post = sections["postings"]
        (entries,) = post.counts(1)
        self._postings = post.array(_POSTING_ROW, entries)
        self._postings_at = post.position
        self._posting_blob = post.rest()
        table = self._postings
        keys = (table["name"].astype(np.uint64) << np.uint64(32)) | table["value"]
        if entries and (
            int(table["name"].max()) >= count
            or int(table["value"].max()) >= count
            or bool(np.any(np.diff(keys) == 0))
            or bool(np.any(keys[1:] < keys[:-1]))
            or int((table["offset"] + table["length"]).max()) > len(self._posting_blob)
        ):
            raise post.fail("posting table is out of order or out of range")
        self._posting_names = np.ascontiguousarray(table["name"])

    # -------------------------------------------------------------- internals

    def _live_chunks(self) -> mmap.mmap:
        if self._chunks is None:
            raise InvalidInput(f"block {self.path} is closed")
        return self._chunks

    def _symbol_ref(self, text: str) -> int | None:
        i = bisect_left(self._symbols, text)
        return i if i < len(self._symbols) and self._symbols[i] == text else None

    def _name_rows(self, name: str) -> tuple[int, int]:
        ref = self._symbol_ref(name)
        if ref is None:
            return 0, 0
        names = self._posting_names
        return (
            int(np.searchsorted(names, ref, "left")),
            int(np.searchsorted(names, ref, "right")),
        )

    def _row_postings(self, row: int) -> npt.NDArray[np.uint32]:
        entry = self._postings[row]
        start, length = int(entry["offset"]), int(entry["length"])
        try:
            ids = decode_postings(bytes(self._posting_blob[start : start + length]))
        except Corruption as exc:
            raise _corrupt(self._index_path, self._postings_at + start, str(exc)) from None
        if len(ids) != int(entry["count"]) or (len(ids) and int(ids[-1]) >= self.meta.num_series):
            raise _corrupt(self._index_path, self._postings_at + start, "bad posting list")
        return ids

    def _matching(self, matchers: Sequence[Matcher]) -> npt.NDArray[np.uint32]:
        """Ids of the series matching every matcher, ascending (= label order)."""
        required: list[npt.NDArray[np.uint32]] = []
        excluded: list[npt.NDArray[np.uint32]] = []
        for matcher in matchers:
            lo, hi = self._name_rows(matcher.name)
            values = self._postings["value"][lo:hi]
            if matcher.op == "=" and matcher.value:
                ref = self._symbol_ref(matcher.value)
                at = int(np.searchsorted(values, ref)) if ref is not None else len(values)
                if at >= len(values) or int(values[at]) != ref:
                    return np.empty(0, np.uint32)
                required.append(self._row_postings(lo + at))
                continue
            # A matcher that accepts "" also accepts series without the label:
            # drop the series whose value fails it instead of keeping the hits.
            keep_hits = not matcher.matches_empty()
            rows = [
                lo + i
                for i, ref in enumerate(values.tolist())
                if matcher.matches(self._symbols[ref]) == keep_hits
            ]
            lists = [self._row_postings(row) for row in rows]
            if keep_hits:
                if not lists:
                    return np.empty(0, np.uint32)
                required.append(union_many(lists))
            elif lists:
                excluded.append(union_many(lists))
        if required:
            ids = intersect_many(required)
        else:
            ids = np.arange(self.meta.num_series, dtype=np.uint32)
        for drop in excluded:
            ids = difference(ids, drop)
        return ids

    def _labels(self, series_id: int) -> Labels:
        start, end = int(self._label_start[series_id]), int(self._label_start[series_id + 1])
        symbols = self._symbols
        return tuple((symbols[a], symbols[b]) for a, b in self._pairs[start:end].tolist())

    def _series_rows(self, series_id: int, kind: int, mint: int, maxt: int) -> npt.NDArray[Any]:
        rows = self._rows[int(self._chunk_start[series_id]) : int(self._chunk_start[series_id + 1])]
        wanted: npt.NDArray[Any] = rows[
            (rows["kind"] == kind) & (rows["maxt"] >= mint) & (rows["mint"] <= maxt)
        ]
        return wanted

    def _read_chunk(self, row: Any) -> tuple[Int64Array, Float64Array]:
        chunks = self._live_chunks()
        offset = int(row["offset"])
        length, crc = _FRAME.unpack_from(chunks, offset)
        end = offset + _FRAME.size + length
        if end > len(chunks):
            raise _corrupt(self._chunks_path, offset, f"chunk of {length} bytes runs past the end")
        payload = chunks[offset + _FRAME.size : end]
        if crc32c(payload) != crc:
            raise _corrupt(self._chunks_path, offset, "chunk fails its CRC32C")
        try:
            ts, values = codec.decode(payload)
        except Corruption as exc:
            raise _corrupt(self._chunks_path, offset, f"chunk does not decode: {exc}") from None
        if (
            len(ts) != int(row["count"])
            or int(ts[0]) != int(row["mint"])
            or int(ts[-1]) != int(row["maxt"])
        ):
            raise _corrupt(self._chunks_path, offset, "chunk disagrees with its index entry")
        return ts, values

    def _samples(
        self, series_id: int, kind: int, mint: int, maxt: int
    ) -> tuple[Int64Array, Float64Array]:
        parts = [self._read_chunk(row) for row in self._series_rows(series_id, kind, mint, maxt)]
        if not parts:
            return np.empty(0, np.int64), np.empty(0, np.float64)
        ts = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
        values = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
        lo = int(np.searchsorted(ts, mint, "left"))
        hi = int(np.searchsorted(ts, maxt, "right"))
        return ts[lo:hi], values[lo:hi]

    def _has_samples(self, series_id: int, mint: int, maxt: int) -> bool:
        rows = self._series_rows(series_id, 0, mint, maxt)
        if bool(np.any((rows["mint"] >= mint) & (rows["maxt"] <= maxt))):
            return True
        return any(
            bool(np.any((ts >= mint) & (ts <= maxt))) for ts, _ in map(self._read_chunk, rows)
        )

    def _select_kind(
        self, matchers: Sequence[Matcher], mint: int, maxt: int, kind: int
    ) -> list[SeriesData]:
        self._live_chunks()
        if mint > maxt or maxt < self.meta.mint or mint > self.meta.maxt:
            return []
        out = []
        for series_id in self._matching(matchers).tolist():
            ts, values = self._samples(series_id, kind, mint, maxt)
            if len(ts):
                out.append(SeriesData(self._labels(series_id), ts, values))
        return out

    def _filtered(
        self, matchers: Sequence[Matcher], mint: int | None, maxt: int | None
    ) -> list[int]:
        ids: list[int] = self._matching(matchers).tolist()
        if mint is None and maxt is None:
            return ids
        lo = _INT64_MIN if mint is None else mint
        hi = _INT64_MAX if maxt is None else maxt
        return [series_id for series_id in ids if self._has_samples(series_id, lo, hi)]

    def _columns(self) -> Iterator[Columns]:
        """Every series with all its value columns, in label order (for merging)."""
        width = len(AGGREGATES) if self.meta.resolution else 1
        for series_id in range(self.meta.num_series):
            ts: Int64Array = np.empty(0, np.int64)
            cols = []
            for kind in range(width):
                ts, values = self._samples(series_id, kind, _INT64_MIN, _INT64_MAX)
                cols.append(values)
            yield self._labels(series_id), ts, cols

    # -------------------------------------------------------------- public reads

    def select(self, matchers: Sequence[Matcher], mint: int, maxt: int) -> list[SeriesData]:
        """Series matching every matcher with their samples in ``[mint, maxt]``.

        Equality matchers use the postings; other matchers test each value
        of their label. Series without samples in the range are left out;
        the result is ordered by labels. On a rollup block the values are
        each window's ``last`` (what a coarser scrape would have seen).
        """
        kind = AGGREGATES.index("last") if self.meta.resolution else 0
        return self._select_kind(matchers, mint, maxt, kind)

    def select_rollup(
        self, matchers: Sequence[Matcher], mint: int, maxt: int, aggregate: Aggregate
    ) -> list[SeriesData]:
        """Like :meth:`select` on a rollup block, with one aggregate's values.

        Timestamps are window ends minus one ms (see ``downsample``).

        Raises
        ------
        InvalidInput
            The block holds raw samples, or ``aggregate`` is unknown.
        """
        if not self.meta.resolution:
            raise InvalidInput(f"block {self.meta.id} holds raw samples, not rollups")
        if aggregate not in AGGREGATES:
            raise InvalidInput(f"unknown aggregate {aggregate!r}; use one of {AGGREGATES}")
        return self._select_kind(matchers, mint, maxt, AGGREGATES.index(aggregate))

    def series(self) -> Iterator[tuple[Labels, Int64Array, Float64Array]]:
        """Every series and all its samples, in label order (``last`` for rollups)."""
        for labels, ts, cols in self._columns():
            yield labels, ts, cols[-1]

    def label_names(
        self, matchers: Sequence[Matcher] = (), mint: int | None = None, maxt: int | None = None
    ) -> list[str]:
        """Sorted label names of the matching series with samples in the range."""
        self._live_chunks()
        if not matchers and mint is None and maxt is None:
            return [self._symbols[ref] for ref in np.unique(self._posting_names).tolist()]
        refs: set[int] = set()
        for series_id in self._filtered(matchers, mint, maxt):
            start, end = int(self._label_start[series_id]), int(self._label_start[series_id + 1])
            refs.update(self._pairs[start:end, 0].tolist())
        return [self._symbols[ref] for ref in sorted(refs)]

    def label_values(
        self,
        name: str,
        matchers: Sequence[Matcher] = (),
        mint: int | None = None,
        maxt: int | None = None,
    ) -> list[str]:
        """Sorted values of label ``name`` among the matching series in the range."""
        self._live_chunks()
        if not matchers and mint is None and maxt is None:
            lo, hi = self._name_rows(name)
            return [self._symbols[ref] for ref in self._postings["value"][lo:hi].tolist()]
        found = {
            value
            for series_id in self._filtered(matchers, mint, maxt)
            for label, value in self._labels(series_id)
            if label == name
        }
        return sorted(found)

    def series_count_by_metric(self) -> dict[str, int]:
        """Series per metric name (``__name__`` value), for cardinality reports."""
        lo, hi = self._name_rows("__name__")
        rows = self._postings[lo:hi]
        return {
            self._symbols[value]: count
            for value, count in zip(rows["value"].tolist(), rows["count"].tolist(), strict=True)
        }

    def size_bytes(self) -> int:
        """Bytes the block's files take (chunks, index, meta.json)."""
        return sum(entry.stat().st_size for entry in self.path.iterdir() if entry.is_file())

    def close(self) -> None:
        """Unmap the chunks file; later queries raise InvalidInput."""
        if self._chunks is not None:
            self._chunks.close()
            self._chunks = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        m = self.meta
        return (
            f"Block({m.id}, [{m.mint}, {m.maxt}], series={m.num_series}, "
            f"resolution={m.resolution}, level={m.level})"
        )
