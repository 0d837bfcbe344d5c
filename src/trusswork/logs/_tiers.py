"""Cold tier: old partitions as zstd Parquet files, on any pyarrow filesystem.

A hot partition (index segments, memory-mapped) older than the store's
``hot_max_age`` (or pushed out by ``hot_max_bytes``) is rewritten as one
Parquet file ``<window start ms>.parquet``: every row with ``_time``,
``_raw``, ``source``, ``sourcetype`` and its fields as typed columns,
sorted by time, in row groups of 64 k rows, zstd-compressed. The sparse
index is Parquet's own: per row group min/max statistics, which queries use
to skip row groups by time and field bounds. Queries read only the columns
they need and match the search row by row with the same semantics as the
index (:func:`trusswork.logs._pipeline.match_rows`).

Guarantees: a cold file is written under a temporary name and renamed into
place, so readers never see half a file; its footer names the segments it
holds, and a hot segment named there is deleted (also when reopening after
a crash between the rename and the delete). Lines that arrive late for a
cold window go to a new hot partition of the same window; queries read both.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from trusswork.core.errors import Corruption, NotFound
from trusswork.search._segment import Segment

__all__ = ["ColdPartition", "choose_cold", "choose_expired", "list_cold", "write_cold"]

_META_KEY = b"trusswork.logs"
_ROW_GROUP = 64 * 1024
_ZSTD_LEVEL = 9


@dataclass(frozen=True)
class ColdPartition:
    """One cold Parquet file and what its footer says."""

    path: str
    start_ms: int
    rows: int
    size_bytes: int
    time_min: int
    time_max: int
    segment_ids: tuple[str, ...]
    columns: tuple[str, ...]

    def read(
        self,
        filesystem: pafs.FileSystem,
        columns: Sequence[str] | None,
        lo: float,
        hi: float,
    ) -> pa.Table:
        """Rows with ``lo <= _time < hi``; only ``columns`` (None: all) plus ``_time``, ``_id``."""
        wanted = None
        if columns is not None:
            wanted = [c for c in self.columns if c in set(columns) | {"_time", "_id"}]
        filters = []
        if lo > -np.inf:
            filters.append(("_time", ">=", int(lo)))
        if hi < np.inf:
            filters.append(("_time", "<", int(hi)))
        try:
            return pq.read_table(
                self.path,
                filesystem=filesystem,
                columns=wanted,
                filters=filters or None,
            )
        except FileNotFoundError as exc:
            raise NotFound(f"cold partition {self.path} was deleted (retention)") from exc
        except (OSError, pa.ArrowInvalid) as exc:
            raise Corruption(f"cold partition {self.path}: unreadable ({exc})") from exc


def write_cold(
    table: pa.Table,
    start_ms: int,
    segment_ids: Sequence[str],
    filesystem: pafs.FileSystem,
    base: str,
) -> ColdPartition:
    """Write ``table`` (the rows of a partition, any order) as a cold partition file."""
    table = table.take(
        pc.sort_indices(table, sort_keys=[("_time", "ascending"), ("_id", "ascending")])
    )
    times = table.column("_time")
    meta = {
        "start_ms": start_ms,
        "rows": table.num_rows,
        "time_min": pc.min(times).as_py() if table.num_rows else start_ms,
        "time_max": pc.max(times).as_py() if table.num_rows else start_ms,
        "segment_ids": list(segment_ids),
    }
    table = table.replace_schema_metadata({_META_KEY: orjson.dumps(meta)})
    filesystem.create_dir(base, recursive=True)
    final = posixpath.join(base, f"{start_ms}.parquet")
    if _exists(filesystem, final):
        # Late lines already went cold once for this window: keep both files.
        final = posixpath.join(base, f"{start_ms}.{segment_ids[0]}.parquet")
    tmp = final + ".tmp"
    pq.write_table(
        table,
        tmp,
        filesystem=filesystem,
        compression="zstd",
        compression_level=_ZSTD_LEVEL,
        row_group_size=_ROW_GROUP,
        use_dictionary=True,
        write_statistics=True,
    )
    filesystem.move(tmp, final)
    return _describe(filesystem, final)


def _exists(filesystem: pafs.FileSystem, path: str) -> bool:
    return bool(filesystem.get_file_info(path).type != pafs.FileType.NotFound)


def _describe(filesystem: pafs.FileSystem, path: str) -> ColdPartition:
    try:
        with filesystem.open_input_file(path) as handle:
            metadata = pq.read_metadata(handle)
        raw = (metadata.metadata or {}).get(_META_KEY)
        if raw is None:
            raise Corruption(f"cold partition {path}: no trusswork.logs footer")
        meta = orjson.loads(raw)
        size = filesystem.get_file_info(path).size or 0
        return ColdPartition(
            path=path,
            start_ms=int(meta["start_ms"]),
            rows=int(meta["rows"]),
            size_bytes=int(size),
            time_min=int(meta["time_min"]),
            time_max=int(meta["time_max"]),
            segment_ids=tuple(meta["segment_ids"]),
            columns=tuple(metadata.schema.to_arrow_schema().names),
        )
    except Corruption:
        raise
    except (OSError, pa.ArrowInvalid, orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise Corruption(f"cold partition {path}: unreadable footer ({exc})") from exc


def list_cold(
    filesystem: pafs.FileSystem, base: str
) -> tuple[list[ColdPartition], list[tuple[str, str]]]:
    """The cold partitions under ``base`` (oldest first) and the damaged ones with why.

    Leftover ``.tmp`` files (a write cut short) are deleted.
    """
    found: list[ColdPartition] = []
    damaged: list[tuple[str, str]] = []
    try:
        infos = filesystem.get_file_info(pafs.FileSelector(base, allow_not_found=True))
    except OSError as exc:
        raise Corruption(f"cold tier {base}: cannot list ({exc})") from exc
    for info in sorted(infos, key=lambda i: i.path):
        if info.type != pafs.FileType.File:
            continue
        if info.path.endswith(".parquet.tmp"):
            filesystem.delete_file(info.path)
            continue
        if not info.path.endswith(".parquet"):
            continue
        try:
            found.append(_describe(filesystem, info.path))
        except Corruption as exc:
            damaged.append((info.path, str(exc)))
    found.sort(key=lambda c: (c.start_ms, c.path))
    return found, damaged


def choose_cold(
    partitions: Mapping[int, Sequence[Segment]],
    now_ms: int,
    partition_ms: int,
    max_age: float | None,
    max_bytes: int | None,
) -> list[int]:
    """The hot partitions (window starts) the policies move to the cold tier.

    Windows that ended more than ``max_age`` seconds before ``now_ms``; then,
    while the hot tier holds more than ``max_bytes``, the oldest others (the
    newest partition stays hot).
    """
    chosen: list[int] = []
    if max_age is not None:
        limit = now_ms - max_age * 1000
        chosen = [k for k in sorted(partitions) if k + partition_ms <= limit]
    if max_bytes is not None:
        sizes = {k: sum(s.meta.size_bytes for s in v) for k, v in partitions.items()}
        total = sum(sizes.values()) - sum(sizes[k] for k in chosen)
        for k in sorted(partitions)[:-1]:
            if total <= max_bytes:
                break
            if k not in chosen:
                chosen.append(k)
                total -= sizes[k]
    return sorted(chosen)


def choose_expired(
    colds: Sequence[ColdPartition], now_ms: int, max_age: float | None, max_bytes: int | None
) -> list[ColdPartition]:
    """The cold partitions retention deletes: older than ``max_age`` seconds,
    then the oldest while the cold tier holds more than ``max_bytes``."""
    doomed: list[ColdPartition] = []
    if max_age is not None:
        limit = now_ms - max_age * 1000
        doomed = [c for c in colds if c.time_max < limit]
    if max_bytes is not None:
        total = sum(c.size_bytes for c in colds if c not in doomed)
        for c in colds:
            if total <= max_bytes:
                break
            if c not in doomed:
                doomed.append(c)
                total -= c.size_bytes
    return doomed


def partition_table(segments: Sequence[Segment]) -> pa.Table:
    """Every row of ``segments`` as one table with all columns and ``_id``."""
    from trusswork.logs._engine import _segment_columns, _unify

    chunks = []
    for segment in segments:
        rows = np.arange(segment.meta.doc_count, dtype=np.int64)
        chunk = _segment_columns(segment, rows, None)
        chunk["_id"] = pa.array(segment.doc_ids.astype(np.int64))
        chunks.append(chunk)
    return _unify(chunks)
