"""The log store: durable ingest, time-partitioned segments, queries.

Layout of a store directory::

    wal/                      write-ahead log of acknowledged, not yet indexed lines
    checkpoint.json           last indexed document id and source positions
    hot/<window start ms>/    one partition per time window (default one day)
        seg-<uuid>/           immutable index segments (trusswork.search)
    cold/                     partitions moved to Parquet (see trusswork.logs._tiers)

Guarantees
----------
* **Durable on return.** :meth:`LogStore.ingest` returns once the accepted
  lines are in the write-ahead log and synced (``fsync="always"``, the
  default). A process killed at any point loses no acknowledged line.
* **Exactly once.** Every accepted line gets the next document id. A
  refresh writes the buffered lines as one segment per partition, then
  records the last id it indexed in ``checkpoint.json``. Reopening replays
  only the logged lines past that id that no segment holds, so a crash
  between writing segments and the checkpoint indexes nothing twice.
* **Searchable.** A background thread makes buffered lines searchable every
  ``refresh_interval`` seconds (1 s by default), and :meth:`LogStore.query`
  refreshes first, so a query sees every line ingested before it.
* **Bounded memory.** When ``max_buffer_lines`` lines wait, ``ingest``
  indexes them itself before returning: a producer faster than indexing is
  slowed down (back-pressure) instead of growing the buffer.
* **Damage.** A segment that fails its checksums is listed in
  :attr:`LogStore.corrupt_segments`, skipped, and named in every query
  result's ``warnings``; the other segments stay queryable.

Lines keep their text (``_raw``), their time (``_time``: the parsed
timestamp, else the time of ingest, in Unix ms), ``source``, ``sourcetype``
(the format the line was read as) and the parsed fields. Field values are
indexed as keywords (their text) and, when they are numbers or numeric text,
also as numbers, so ``status>=500`` works on JSON, logfmt and access logs
alike.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow.fs as pafs

from trusswork.core.errors import Corruption, InvalidInput, Unavailable
from trusswork.core.files import fsync_directory, replace_file
from trusswork.logs._batch import Batch, concat
from trusswork.logs._ingest import (
    IngestResult,
    _as_bytes,
    _decode_record,
    _encode_record,
    _Options,
    parse_batch,
)
from trusswork.logs._layout import (
    lock_store,
    open_partitions,
    positive_duration,
    settle_partition,
)
from trusswork.logs._parsers import LogParser
from trusswork.logs._tiers import (
    ColdPartition,
    choose_cold,
    choose_expired,
    list_cold,
    partition_table,
    write_cold,
)
from trusswork.search._index import IndexWriter, SegmentMeta
from trusswork.search._segment import Segment, merge_segments, plan_merges
from trusswork.storage.wal import FsyncMode, WriteAheadLog

__all__ = ["IngestResult", "LogStore"]

_MAX_DOC_ID = 2**32 - 1
_MAX_ERRORS = 100


@dataclass(frozen=True)
class SegmentInfo:
    """One live segment as :meth:`LogStore.segments` lists it."""

    partition_ms: int
    meta: SegmentMeta


@dataclass
class _State:
    """What the store holds in memory; swapped under the store's lock."""

    partitions: dict[int, list[Segment]] = field(default_factory=dict)


class LogStore:
    """A directory of logs: ingest lines, query them with the pipe language.

    Parameters
    ----------
    path
        The store directory (created if missing).
    partition
        The time window of a partition: seconds or text (``"1d"``, ``"1h"``).
        Fixed when the store is created (default one day); reopening with
        another width raises :class:`~trusswork.core.errors.InvalidInput`.
    refresh_interval
        Seconds between background refreshes (making new lines searchable).
    max_buffer_lines
        Lines that may wait for indexing before ``ingest`` indexes them itself.
    merge_factor
        Segments of one size tier in a partition merged together.
    max_segment_docs
        Segments this big are no longer merged.
    max_line_length
        Longer lines are truncated (with a marker) and counted.
    fsync
        Write-ahead log durability (see :class:`~trusswork.storage.wal.WriteAheadLog`).
    background
        Run the refresh-and-merge thread (tests may drive it by hand).
    clock
        Seconds since the epoch; gives ``_time`` to lines without a timestamp.
    hot_max_age, hot_max_bytes
        Partitions whose window ended longer ago than this (seconds or text
        like ``"7d"``), and the oldest partitions while the hot tier holds
        more bytes than this, move to the cold tier (see :meth:`tier`).
    cold_max_age, cold_max_bytes
        Cold partitions older than this, and the oldest while the cold tier
        holds more bytes, are deleted.
    cold_filesystem, cold_path
        Where cold Parquet files go: any :mod:`pyarrow.fs` filesystem (local,
        S3-compatible, ...) and a directory on it; by default ``cold/`` in
        the store directory.
    tier_interval
        Seconds between the background thread's tiering passes.

    Raises
    ------
    Unavailable
        Another process has the store open.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        partition: str | float | None = None,
        refresh_interval: float = 1.0,
        max_buffer_lines: int = 200_000,
        merge_factor: int = 10,
        max_segment_docs: int = 5_000_000,
        max_line_length: int = 64 * 1024,
        fsync: FsyncMode = "always",
        background: bool = True,
        clock: Callable[[], float] = time.time,
        hot_max_age: str | float | None = None,
        hot_max_bytes: int | None = None,
        cold_max_age: str | float | None = None,
        cold_max_bytes: int | None = None,
        cold_filesystem: pafs.FileSystem | None = None,
        cold_path: str | None = None,
        tier_interval: float = 60.0,
    ) -> None:
        self.path = Path(path)
        wanted_ms = (
            None if partition is None else int(positive_duration(partition, "partition") * 1000)
        )
        if refresh_interval <= 0 or max_buffer_lines < 1 or max_segment_docs < 1:
            raise InvalidInput(
                "refresh_interval, max_buffer_lines and max_segment_docs must be positive"
            )
        self.refresh_interval = float(refresh_interval)
        self.max_buffer_lines = int(max_buffer_lines)
        self.merge_factor = int(merge_factor)
        self.max_segment_docs = int(max_segment_docs)
        self.max_line_length = int(max_line_length)
        self._clock = clock
        self.corrupt_segments: list[tuple[Path, str]] = []
        self.background_error: BaseException | None = None
        self._lock = threading.RLock()
        self._refresh_lock = threading.Lock()
        self._merge_lock = threading.Lock()
        self._parsers: dict[tuple[str, str | None, str | None, int], LogParser] = {}
        self._closed = False

        self.path.mkdir(parents=True, exist_ok=True)
        # One process at a time: the lock comes before any recovery step, so
        # a second opener never deletes what the first is writing.
        self._lock_file = lock_store(self.path)
        try:
            self._open(
                wanted_ms,
                fsync,
                hot_max_age,
                hot_max_bytes,
                cold_max_age,
                cold_max_bytes,
                cold_filesystem,
                cold_path,
                tier_interval,
            )
        except BaseException:
            self._close_segments()
            self._lock_file.close()
            raise
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(
                target=self._background, name=f"logstore-{self.path.name}", daemon=True
            )
            self._thread.start()

    def _open(
        self,
        wanted_ms: int | None,
        fsync: FsyncMode,
        hot_max_age: str | float | None,
        hot_max_bytes: int | None,
        cold_max_age: str | float | None,
        cold_max_bytes: int | None,
        cold_filesystem: pafs.FileSystem | None,
        cold_path: str | None,
        tier_interval: float,
    ) -> None:
        self.partition_ms = settle_partition(self.path / "store.json", wanted_ms)
        self._state = _State()
        self._hot = self.path / "hot"
        self._hot.mkdir(exist_ok=True)
        self._checkpoint_path = self.path / "checkpoint.json"
        checkpoint = self._read_checkpoint()
        self._indexed_through: int = checkpoint.get("indexed_through", -1)
        self._positions: dict[str, dict[str, Any]] = dict(checkpoint.get("sources", {}))
        self._state.partitions = open_partitions(self._hot, self.corrupt_segments)
        self.hot_max_age = (
            None if hot_max_age is None else positive_duration(hot_max_age, "hot_max_age")
        )
        self.cold_max_age = (
            None if cold_max_age is None else positive_duration(cold_max_age, "cold_max_age")
        )
        self.hot_max_bytes = hot_max_bytes
        self.cold_max_bytes = cold_max_bytes
        self.tier_interval = float(tier_interval)
        if cold_filesystem is None:
            self.cold_filesystem: pafs.FileSystem = pafs.LocalFileSystem()
            self.cold_path = str((self.path / "cold").resolve()) if cold_path is None else cold_path
        else:
            if cold_path is None:
                raise InvalidInput("cold_path is required with cold_filesystem")
            self.cold_filesystem, self.cold_path = cold_filesystem, cold_path
        self._cold, damaged = list_cold(self.cold_filesystem, self.cold_path)
        self.corrupt_segments.extend((Path(p), why) for p, why in damaged)
        self._drop_hot_copies()
        self._wal = WriteAheadLog(self.path / "wal", fsync=fsync)
        self._buffer: list[tuple[Batch, npt.NDArray[np.int64]]] = []
        self._buffer_lsn = 0
        try:
            self._next_id = self._replay()
        except BaseException:
            self._wal.close()
            raise

    # ------------------------------------------------------------ opening

    def _read_checkpoint(self) -> dict[str, Any]:
        try:
            data = orjson.loads(self._checkpoint_path.read_bytes())
        except FileNotFoundError:
            return {}
        except orjson.JSONDecodeError as exc:
            raise Corruption(f"{self._checkpoint_path}: not JSON ({exc})") from exc
        if not isinstance(data, dict) or not isinstance(data.get("indexed_through", -1), int):
            raise Corruption(f"{self._checkpoint_path}: not a log store checkpoint")
        return data

    def _drop_hot_copies(self) -> None:
        """Delete hot segments a cold file already holds (a crash after tiering)."""
        gone = {sid for cold in self._cold for sid in cold.segment_ids}
        for start, segments in list(self._state.partitions.items()):
            keep = [s for s in segments if s.meta.segment_id not in gone]
            for segment in segments:
                if segment.meta.segment_id in gone:
                    shutil.rmtree(segment.meta.path, ignore_errors=True)
            if keep:
                self._state.partitions[start] = keep
            else:
                del self._state.partitions[start]

    def _replay(self) -> int:
        """Buffer the logged lines no segment holds; return the next document id."""
        recent = [
            segment
            for segments in self._state.partitions.values()
            for segment in segments
            if segment.meta.max_doc_id > self._indexed_through
        ]
        indexed_ids = np.concatenate(
            [np.empty(0, np.int64), *(s.doc_ids.astype(np.int64) for s in recent)]
        )
        next_id = max(
            [self._indexed_through + 1]
            + [s.meta.max_doc_id + 1 for p in self._state.partitions.values() for s in p]
        )
        for lsn, payload in self._wal.scan():
            try:
                header, items = _decode_record(payload)
                options = _Options(**header["options"])
                sources = header["sources"]
                batch, _, _ = parse_batch(self._parser(options), items, options, int(header["now"]))
                batch.first = int(header["first"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, InvalidInput) as exc:
                raise Corruption(f"{self.path / 'wal'}: record {lsn} is not a log batch") from exc
            ids = batch.ids
            if len(batch):
                keep = (ids > self._indexed_through) & ~np.isin(ids, indexed_ids)
                if not keep.all():
                    rows = np.flatnonzero(keep)
                    batch, ids = batch.take(rows), ids[rows]
                if len(batch):
                    self._buffer.append((batch, ids))
                next_id = max(next_id, int(ids.max(initial=-1)) + 1, batch.first + len(batch))
            self._positions.update(sources)
            self._buffer_lsn = lsn
        return next_id

    # ------------------------------------------------------------- ingest

    def _parser(self, options: _Options) -> LogParser:
        key = (options.format, options.pattern, options.timestamp_field, options.max_line_length)
        parser = self._parsers.get(key)
        if parser is None:
            parser = LogParser(
                options.format,
                pattern=options.pattern,
                timestamp_field=options.timestamp_field,
                max_line_length=options.max_line_length,
            )
            self._parsers[key] = parser
        return parser

    def ingest(
        self,
        lines: Iterable[str | bytes] | str | bytes,
        *,
        format: str = "auto",
        source: str = "api",
        pattern: str | None = None,
        timestamp_field: str | None = None,
        position: Mapping[str, Any] | None = None,
    ) -> IngestResult:
        """Parse, store and (soon) index ``lines``; durable when this returns.

        Parameters
        ----------
        lines
            Lines (``str`` or ``bytes``; invalid UTF-8 is replaced and
            counted), or one block of text split at newlines. Blank lines
            are skipped.
        format
            A parser format (see :mod:`trusswork.logs._parsers`): ``auto``
            (per line), ``json``, ``logfmt``, ``syslog``, ``combined``,
            ``regex`` (with ``pattern``), ``text``.
        source
            Stored as the lines' ``source`` field (a file path, ``stdin``,
            ``http``).
        pattern, timestamp_field
            Passed to the parser.
        position
            A source position (from a file tailer) stored atomically with
            these lines; :meth:`source_position` returns the newest.

        Returns
        -------
        IngestResult
            Counts of accepted and rejected lines, and the first errors.

        Raises
        ------
        InvalidInput
            A bad format or pattern (nothing is stored).
        Unavailable
            The store is closed, or full (2**32 lines).
        """
        options = _Options(format, source, pattern, timestamp_field, self.max_line_length)
        parser = self._parser(options)  # a bad format or pattern fails before anything is stored
        items = _as_bytes(lines)
        now_ms = int(self._clock() * 1000)
        batch, errors, problems = parse_batch(parser, items, options, now_ms)
        sources = {source: dict(position)} if position is not None else {}
        with self._lock:
            self._check_open()
            if self._buffered() >= 4 * self.max_buffer_lines:
                raise Unavailable(
                    f"log store {self.path}: {self._buffered():,} lines wait for indexing and"
                    f" indexing fails ({self.background_error}); nothing was stored"
                )
            if len(batch) or sources:
                first = self._next_id
                if first + len(batch) - 1 > _MAX_DOC_ID:
                    raise Unavailable(f"log store {self.path} is full: 2**32 lines stored")
                batch.first = first
                header = {"first": first, "now": now_ms, "options": options, "sources": sources}
                self._buffer_lsn = self._wal.append(_encode_record(header, items))
                self._next_id = first + len(batch)
                if len(batch):
                    self._buffer.append((batch, batch.ids))
                self._positions.update(sources)
            backlog = self._buffered() >= self.max_buffer_lines
        if backlog:
            try:
                self.refresh()
            except Exception as exc:
                # The lines are acknowledged (logged); a failed refresh must not
                # look like a failed ingest, or a retry would store them twice.
                self.background_error = exc
        return IngestResult(
            accepted=len(batch),
            rejected=len(errors),
            truncated=problems["truncated"],
            invalid_utf8=problems["invalid-utf8"],
            bad_timestamp=problems["bad-timestamp"],
            errors=tuple(errors[:_MAX_ERRORS]),
        )

    def _buffered(self) -> int:
        return sum(len(batch) for batch, _ in self._buffer)

    def source_position(self, source: str) -> dict[str, Any] | None:
        """The newest position stored with lines of ``source`` (see ``ingest``)."""
        with self._lock:
            position = self._positions.get(source)
            return dict(position) if position is not None else None

    # ------------------------------------------------------------ indexing

    def refresh(self) -> int:
        """Index every buffered line now; return how many were indexed."""
        with self._refresh_lock:
            with self._lock:
                self._check_open()
                docs, self._buffer = self._buffer, []
                lsn = self._buffer_lsn
                positions = dict(self._positions)
            if not docs:
                return 0
            try:
                written = self._write_partitions(docs)
            except BaseException:
                with self._lock:
                    self._buffer = docs + self._buffer
                raise
            last = max(int(ids.max()) for _, ids in docs)
            with self._lock:
                for start, segment in written:
                    self._state.partitions.setdefault(start, []).append(segment)
                self._indexed_through = max(self._indexed_through, last)
                body = {"indexed_through": self._indexed_through, "sources": positions}
            replace_file(self._checkpoint_path, orjson.dumps(body))
            self._wal.truncate_before(lsn + 1)
            return sum(len(batch) for batch, _ in docs)

    def _write_partitions(
        self, pieces: Sequence[tuple[Batch, npt.NDArray[np.int64]]]
    ) -> list[tuple[int, Segment]]:
        """Index buffered batches as one new segment per time partition."""
        batch, ids = concat(pieces)
        starts = batch.times - batch.times % self.partition_ms
        if np.any(np.diff(starts) < 0):
            order = np.argsort(starts, kind="stable")
            batch, ids, starts = batch.take(order), ids[order], starts[order]
        bounds = np.flatnonzero(np.diff(starts)) + 1
        written: list[tuple[int, Segment]] = []
        try:
            for lo, hi in zip([0, *bounds.tolist()], [*bounds.tolist(), len(batch)], strict=True):
                written.append(
                    self._write_segment(batch.slice(lo, hi), ids[lo:hi], int(starts[lo]))
                )
        except BaseException as exc:
            # All or nothing: the lines go back to the buffer, so segments
            # already written for them must not stay (they would be read twice).
            for _, segment in written:
                segment.close()
                shutil.rmtree(segment.meta.path, ignore_errors=True)
            if isinstance(exc, OSError):
                raise Unavailable(f"log store {self.path}: cannot write a segment ({exc})") from exc
            raise
        return written

    def _write_segment(
        self, part: Batch, part_ids: npt.NDArray[np.int64], start: int
    ) -> tuple[int, Segment]:
        """One partition's lines as a new segment in ``hot/<start>/``."""
        directory = self._hot / str(start)
        fresh = not directory.exists()
        writer = IndexWriter()
        writer.add_columns(
            part.raw,
            keywords=part.keywords,
            numbers={**part.numbers, "_time": part.times.astype(np.float64)},
            doc_ids=part_ids,
        )
        meta = writer.write_segment(directory)
        if fresh:
            fsync_directory(self._hot)
        return start, Segment.open(meta.path)

    def merge(self) -> int:
        """Merge small segments within each partition now; return merges done."""
        done = 0
        with self._merge_lock:
            with self._lock:
                self._check_open()
                partitions = {k: list(v) for k, v in self._state.partitions.items()}
            for start, segments in partitions.items():
                by_id = {s.meta.segment_id: s for s in segments}
                for group in plan_merges(
                    [s.meta for s in segments],
                    merge_factor=self.merge_factor,
                    max_merged_docs=self.max_segment_docs,
                ):
                    inputs = [by_id[m.segment_id] for m in group]
                    meta = merge_segments(inputs, self._hot / str(start))
                    merged = Segment.open(meta.path)
                    with self._lock:
                        live = self._state.partitions[start]
                        gone = {id(s) for s in inputs}
                        self._state.partitions[start] = [s for s in live if id(s) not in gone] + [
                            merged
                        ]
                    for segment in inputs:
                        shutil.rmtree(segment.meta.path, ignore_errors=True)
                    done += 1
        return done

    def _background(self) -> None:
        next_tier = time.monotonic() + self.tier_interval
        while not self._stop.wait(self.refresh_interval):
            try:
                self.refresh()
                self.merge()
                if time.monotonic() >= next_tier:
                    next_tier = time.monotonic() + self.tier_interval
                    self.tier()
            except Exception as exc:  # kept for the owner to see; the loop goes on
                if self._closed:
                    return
                self.background_error = exc

    # ---------------------------------------------------------------- tiers

    def tier(self, now: float | None = None) -> dict[str, int]:
        """Apply the tier policies now: move old hot partitions to Parquet,
        delete cold ones past their retention.

        Returns
        -------
        dict
            ``moved`` partitions, ``deleted`` cold files, ``rows_moved``.
        """
        now_ms = int((self._clock() if now is None else now) * 1000)
        moved = rows = deleted = 0
        self.refresh()
        with self._merge_lock:
            with self._lock:
                self._check_open()
                # Only segments the checkpoint covers: replay after a crash
                # checks newer lines against hot segments alone.
                partitions = {
                    k: kept
                    for k, v in self._state.partitions.items()
                    if (kept := [s for s in v if s.meta.max_doc_id <= self._indexed_through])
                }
            chosen = choose_cold(
                partitions, now_ms, self.partition_ms, self.hot_max_age, self.hot_max_bytes
            )
            for start in sorted(chosen):
                segments = partitions[start]
                cold = write_cold(
                    partition_table(segments),
                    start,
                    [s.meta.segment_id for s in segments],
                    self.cold_filesystem,
                    self.cold_path,
                )
                with self._lock:
                    gone = {id(s) for s in segments}
                    live = [s for s in self._state.partitions.get(start, []) if id(s) not in gone]
                    if live:
                        self._state.partitions[start] = live
                    else:
                        self._state.partitions.pop(start, None)
                    self._cold.append(cold)
                    self._cold.sort(key=lambda c: (c.start_ms, c.path))
                for segment in segments:
                    shutil.rmtree(segment.meta.path, ignore_errors=True)
                if not any((self._hot / str(start)).iterdir()):
                    (self._hot / str(start)).rmdir()
                moved += 1
                rows += cold.rows
            with self._lock:
                doomed = choose_expired(self._cold, now_ms, self.cold_max_age, self.cold_max_bytes)
                self._cold = [c for c in self._cold if c not in doomed]
            for c in doomed:
                self.cold_filesystem.delete_file(c.path)
                deleted += 1
        return {"moved": moved, "rows_moved": rows, "deleted": deleted}

    def cold_partitions(self) -> list[ColdPartition]:
        """The cold Parquet partitions, oldest first."""
        with self._lock:
            return list(self._cold)

    # -------------------------------------------------------------- reading

    def snapshot(self) -> dict[int, list[Segment]]:
        """The live segments by partition start (refreshing buffered lines first)."""
        self.refresh()
        with self._lock:
            return {k: list(v) for k, v in self._state.partitions.items()}

    def read_view(self) -> tuple[dict[int, list[Segment]], list[ColdPartition]]:
        """Hot segments by partition and cold partitions, taken together under
        the lock (after a refresh), so a concurrent tiering pass never shows a
        partition in both or in neither."""
        self.refresh()
        with self._lock:
            return {k: list(v) for k, v in self._state.partitions.items()}, list(self._cold)

    def segments(self) -> list[SegmentInfo]:
        """Every live segment, oldest partition first."""
        with self._lock:
            return [
                SegmentInfo(start, segment.meta)
                for start, segments in sorted(self._state.partitions.items())
                for segment in segments
            ]

    def stats(self) -> dict[str, Any]:
        """Counts and sizes: lines, segments, partitions, bytes on disk, buffered lines."""
        with self._lock:
            segments = [s for p in self._state.partitions.values() for s in p]
            return {
                "lines": sum(s.meta.doc_count for s in segments)
                + self._buffered()
                + sum(c.rows for c in self._cold),
                "buffered": self._buffered(),
                "segments": len(segments),
                "partitions": len(self._state.partitions),
                "bytes": sum(s.meta.size_bytes for s in segments),
                "cold_partitions": len(self._cold),
                "cold_bytes": sum(c.size_bytes for c in self._cold),
                "corrupt_segments": [str(p) for p, _ in self.corrupt_segments],
            }

    def query(self, text: str, **options: Any) -> Any:
        """Run a query in the pipe language; see :func:`trusswork.logs.run_query`."""
        from trusswork.logs._engine import run_query

        return run_query(self, text, **options)

    def explain(self, text: str, **options: Any) -> Any:
        """Run ``text`` and return its plan with estimated and actual rows."""
        return self.query(text, **options).plan

    # ------------------------------------------------------------- closing

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable(f"log store {self.path} is closed")

    def close(self) -> None:
        """Index what is buffered, stop the background thread, close the log and files."""
        if self._closed:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self.refresh()
        finally:
            with self._lock:
                self._closed = True
            self._wal.close()
            self._close_segments()
            self._lock_file.close()

    def _close_segments(self) -> None:
        state = getattr(self, "_state", None)
        for segments in state.partitions.values() if state is not None else ():
            for segment in segments:
                segment.close()

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
        return f"LogStore({str(self.path)!r})"
