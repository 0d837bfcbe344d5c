"""The time-series database: head block + WAL for writes, immutable blocks for history.

Layout of a database directory::

    <path>/wal/        write-ahead log of series definitions and samples
    <path>/blocks/     one directory per block (raw and rollup), see ``_block``
    <path>/head.json   the head's lower time bound (data below it is in blocks)

Write path
----------
Every append is validated (names, label value length, cardinality limits,
out-of-order window, duplicates), then logged as *one* WAL record per call
and applied to the in-memory head. A new series is logged once as a "series"
record (ref + labels); sample records carry only refs, int64 timestamps and
float64 values as raw arrays, so the batched calls (:meth:`TSDB.append_many`,
:meth:`TSDB.append_batch`) cost a few numpy copies per call plus one WAL
sync. Appends are serialized by one lock held for validate + log + apply, so
WAL order is apply order and replay rebuilds the same head.

Admission rules (out-of-order window, duplicates) are those of
:mod:`trusswork.tsdb._head`; samples older than the head's lower bound (the
end of the newest cut block) are always out of order. Validation and limit
errors store nothing; out-of-order and duplicate samples are dropped one by
one, the rest of the call is stored, then the error is raised with counts.

Series refs (``uint32``) are never reused while a WAL record may name them.
A series without samples for two cuts is dropped from the head (its ref then
raises :class:`~trusswork.core.errors.NotFound`); cardinality limits count
the series in the head (active series), as :meth:`TSDB.cardinality` reports.

Durability: a call returns once its record is as durable as ``fsync`` says
(``"group"``/``"always"``: on disk). In ``"group"`` mode the record is
buffered under the lock and synced after the lock is released, so appenders
that arrive during a sync share the next one (a sample can be visible to
readers a moment before it is durable; it is acknowledged only after).
Reopening replays the WAL; a torn last record (a crash mid-write) was never
acknowledged and is dropped.

Cutting, compaction, rollups and retention
------------------------------------------
The head is cut into raw blocks as it grows, blocks are merged and
downsampled into rollups, and retention turns old raw data into rollups
before deleting it; :mod:`trusswork.tsdb._maintenance` describes how.

:meth:`TSDB.select` reads raw data (head + raw blocks) where it exists and,
for the part of the range older than the oldest raw block, the ``last``
value of each window of the finest rollup available.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from trusswork.core.clock import SYSTEM_CLOCK, Clock
from trusswork.core.errors import Corruption, InvalidInput, LimitExceeded, NotFound
from trusswork.storage.wal import FsyncMode, WriteAheadLog
from trusswork.tsdb._block import Aggregate, Block, BlockMeta, cleanup_tmp
from trusswork.tsdb._head import (
    DuplicatePolicy,
    DuplicateSample,
    HeadSeries,
    OutOfOrderSample,
    decode_record,
    encode_samples,
    encode_series,
    encode_series_samples,
    merge_series,
)
from trusswork.tsdb._index import (
    CardinalityLimitExceeded,
    CardinalityReport,
    LabelValidator,
    SeriesIndex,
)
from trusswork.tsdb._ingest import Sample
from trusswork.tsdb._maintenance import Maintenance
from trusswork.tsdb._series import Labels, Matcher, SeriesData

__all__ = ["TSDB", "CardinalityReport", "TSDBStats"]

HOUR_MS = 3_600_000
_MIN_TS = -(1 << 63)
_MAX_TS = (1 << 63) - 1


@dataclass(frozen=True)
class TSDBStats:
    """Counters and sizes of a database (see :meth:`TSDB.stats`)."""

    series: int
    head_samples: int
    head_chunks: int
    head_min_time: int | None
    head_max_time: int | None
    head_lower_bound: int
    blocks: int
    rollup_blocks: int
    block_bytes: int
    wal_next_lsn: int
    samples_appended: int
    out_of_order_rejected: int
    duplicates_rejected: int
    series_limit_rejected: int
    corrupt_blocks: int
    background_error: str | None


def _stand_in(raw: list[SeriesData], aggregate: Aggregate) -> list[SeriesData]:
    """Raw samples standing for rollup points: themselves, or 1.0 each for ``count``."""
    if aggregate != "count":
        return raw
    return [SeriesData(s.labels, s.ts, np.ones(len(s.ts))) for s in raw]


def _render_labels(labels: Labels) -> str:
    pairs = dict(labels)
    name = pairs.pop("__name__", "")
    inner = ",".join(f'{k}="{v}"' for k, v in pairs.items())
    return f"{name}{{{inner}}}"


def _as_samples(ts: Any, values: Any) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    try:
        t = np.ascontiguousarray(ts, dtype=np.int64)
        v = np.ascontiguousarray(values, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidInput(f"timestamps must be int64 ms and values floats: {exc}") from None
    if t.ndim != 1 or t.shape != v.shape:
        raise InvalidInput(
            f"timestamps and values must be 1-d arrays of one length, got {t.shape} and {v.shape}"
        )
    return t, v


class TSDB(Maintenance):
    """An embedded time-series database in a directory (a :class:`Queryable`).

    Parameters
    ----------
    path:
        The database directory; created if missing.
    block_range_ms:
        Time span of a block cut from the head (default 2 h).
    fsync:
        WAL durability mode (see :class:`~trusswork.storage.wal.WriteAheadLog`).
    retention_ms, retention_bytes:
        Delete blocks older than this / beyond this total size (None: keep).
        ``retention_ms`` applies to rollups; see ``raw_retention_ms``.
    raw_retention_ms:
        Age after which raw blocks are replaced by their rollups (default:
        ``retention_ms``).
    max_series, max_series_per_metric:
        Cardinality limits on the head's series (None: no limit).
    max_label_value_length:
        Longer label values are rejected.
    out_of_order_window_ms:
        How far behind a series' newest sample an older one is accepted.
    duplicates:
        ``"reject"`` or ``"last-write-wins"`` for a changed value at a stored timestamp.
    rollups:
        Rollup resolutions in ms.
    chunk_samples:
        Samples per sealed head chunk.
    wal_segment_bytes:
        Size of a WAL segment (the unit in which the WAL is truncated).
    clock:
        Wall clock for retention (default: the system clock).
    background:
        Run cutting, compaction and retention in a background thread.
    background_interval:
        Seconds between the background thread's checks for a cut (compaction
        and retention run every tenth check).

    Raises
    ------
    InvalidInput
        Bad options.
    Conflict
        The database is already open (the WAL is locked).
    Corruption
        The WAL is damaged beyond a torn tail.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        block_range_ms: int = 2 * HOUR_MS,
        fsync: FsyncMode = "group",
        retention_ms: int | None = None,
        retention_bytes: int | None = None,
        raw_retention_ms: int | None = None,
        max_series: int | None = None,
        max_series_per_metric: int | None = None,
        max_label_value_length: int = 2048,
        out_of_order_window_ms: int = 0,
        duplicates: DuplicatePolicy = "reject",
        rollups: Sequence[int] = (300_000, 3_600_000),
        chunk_samples: int = 240,
        wal_segment_bytes: int = 64 << 20,
        clock: Clock | None = None,
        background: bool = True,
        background_interval: float = 1.0,
    ) -> None:
        if block_range_ms <= 0 or out_of_order_window_ms < 0 or max_label_value_length <= 0:
            raise InvalidInput(
                "block_range_ms and max_label_value_length must be positive and "
                "out_of_order_window_ms not negative"
            )
        if duplicates not in ("reject", "last-write-wins"):
            raise InvalidInput(
                f"duplicates must be 'reject' or 'last-write-wins', not {duplicates!r}"
            )
        if any(r <= 0 for r in rollups) or not 2 <= chunk_samples <= 1 << 20:
            raise InvalidInput(
                "rollup resolutions must be positive and chunk_samples in [2, 2**20]"
            )
        self.path = Path(path)
        self.block_range_ms = int(block_range_ms)
        self.retention_ms = retention_ms
        self.raw_retention_ms = raw_retention_ms if raw_retention_ms is not None else retention_ms
        self.retention_bytes = retention_bytes
        self.max_series = max_series
        self.max_series_per_metric = max_series_per_metric
        self.max_label_value_length = max_label_value_length
        self.out_of_order_window_ms = int(out_of_order_window_ms)
        self.duplicates: DuplicatePolicy = duplicates
        self.rollups = tuple(sorted(int(r) for r in rollups))
        self._chunk_samples = chunk_samples
        self._clock = clock or SYSTEM_CLOCK
        self._lock = threading.RLock()
        self._maintenance = threading.Lock()  # one cut/compaction at a time
        self._index = SeriesIndex()
        self._head: dict[int, HeadSeries] = {}
        self._labels = LabelValidator(max_label_value_length)
        self._head_max: int | None = None
        self._counters = {"appended": 0, "ooo": 0, "dup": 0, "limit": 0}
        self._blocks: tuple[Block, ...] = ()
        self._readers = 0
        self._graveyard: list[Block] = []
        self.corrupt_blocks: list[tuple[Path, str]] = []
        self.background_error: BaseException | None = None
        self._closed = False

        self.path.mkdir(parents=True, exist_ok=True)
        self._blocks_dir = self.path / "blocks"
        self._blocks_dir.mkdir(exist_ok=True)
        cleanup_tmp(self._blocks_dir)
        self._blocks = self._open_blocks()
        self._lower_bound = self._read_lower_bound()
        # "group": records are buffered under the lock and synced after it is
        # released, so concurrent appenders share syncs (see _settle).
        self._group_commit = fsync == "group"
        self._wal = WriteAheadLog(
            self.path / "wal",
            fsync="never" if self._group_commit else fsync,
            segment_bytes=wal_segment_bytes,
        )
        try:
            self._replay()
        except BaseException:
            self._wal.close()
            self._close_blocks(self._blocks)
            raise
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if background:
            self._interval = background_interval
            self._thread = threading.Thread(
                target=self._background, name=f"tsdb-{self.path.name}", daemon=True
            )
            self._thread.start()

    # ------------------------------------------------------------ opening

    def _replay(self) -> None:
        """Rebuild the head from the WAL: series definitions first, then samples."""
        definitions: dict[int, Labels] = {}
        for _, payload in self._wal.scan():
            if payload[:1] == b"\x01":
                record = decode_record(payload)
                assert isinstance(record, list)
                definitions.update(record)
        # A series dropped from the head and created again has an old and a new
        # ref; the newest is kept and the older ones become aliases of it.
        newest = {labels: ref for ref, labels in sorted(definitions.items())}
        for labels, ref in sorted(newest.items(), key=lambda item: item[1]):
            self._index.add(labels, ref)
            self._head[ref] = HeadSeries(ref, self._chunk_samples)
        self._index.reserve(max(definitions, default=-1) + 1)
        aliases = [ref for ref, labels in definitions.items() if newest[labels] != ref]
        for ref in aliases:
            self._head[ref] = self._head[newest[definitions[ref]]]
        for lsn, payload in self._wal.scan():
            if payload[:1] == b"\x01":
                continue
            record = decode_record(payload)
            assert isinstance(record, tuple)
            refs, ts, values = record
            keep = ts >= self._lower_bound
            refs, ts, values = refs[keep], ts[keep], values[keep]
            self._apply(refs, ts, values, lsn, what=f"WAL record {lsn}")
        for ref in aliases:
            del self._head[ref]
        empty = [ref for ref, series in self._head.items() if series.empty]
        for ref in empty:
            del self._head[ref]
        self._index.remove(empty)

    # ------------------------------------------------------------ writing

    def _canonical(self, metric: str, labels: Mapping[str, str]) -> Labels:
        return self._labels.canonical(metric, labels)

    def _check_limits(self, new: list[Labels]) -> None:
        try:
            self._index.check_limits(new, self.max_series, self.max_series_per_metric)
        except CardinalityLimitExceeded:
            self._counters["limit"] += 1
            raise

    def _create(self, new: list[Labels]) -> list[tuple[int, Labels]]:
        created = []
        for labels in new:
            ref = self._index.add(labels)
            self._head[ref] = HeadSeries(ref, self._chunk_samples)
            created.append((ref, labels))
        return created

    def _resolve(self, metric: str, labels: Mapping[str, str]) -> tuple[int | None, Labels]:
        canonical = self._canonical(metric, labels)
        return self._index.get(canonical), canonical

    def _apply(
        self,
        refs: npt.NDArray[np.uint32],
        ts: npt.NDArray[np.int64],
        values: npt.NDArray[np.float64],
        lsn: int,
        *,
        what: str,
    ) -> None:
        if not len(refs):
            return
        order = np.argsort(refs, kind="stable")
        refs, ts, values = refs[order], ts[order], values[order]
        starts = np.flatnonzero(np.concatenate(([True], refs[1:] != refs[:-1])))
        ends = np.append(starts[1:], len(refs))
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
            series = self._head.get(int(refs[start]))
            if series is None:
                raise Corruption(f"{what} refers to series ref {int(refs[start])}, never defined")
            series.apply(ts[start:end], values[start:end], lsn)
        top = int(ts.max())
        self._head_max = top if self._head_max is None else max(self._head_max, top)

    def _admit(
        self,
        series: HeadSeries,
        ts: npt.NDArray[np.int64],
        values: npt.NDArray[np.float64],
        rejected: list[int],
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        kept_ts, kept_values, ooo, dup = series.admit(
            ts,
            values,
            lower_bound=self._lower_bound,
            window_ms=self.out_of_order_window_ms,
            policy=self.duplicates,
        )
        rejected[0] += ooo
        rejected[1] += dup
        return kept_ts, kept_values

    def _outcome(self, stored: int, rejected: list[int], where: str) -> Exception | None:
        """Count a call's samples; the error to raise for its rejected ones, if any."""
        ooo, dup = rejected
        self._counters["appended"] += stored
        self._counters["ooo"] += ooo
        self._counters["dup"] += dup
        if ooo:
            return OutOfOrderSample(
                f"{ooo} sample(s) of {where} are older than their series allows "
                f"(out_of_order_window_ms={self.out_of_order_window_ms}, head lower bound "
                f"{self._lower_bound}); {stored} stored, {ooo + dup} rejected",
                accepted=stored,
                rejected=ooo + dup,
            )
        if dup:
            return DuplicateSample(
                f"{dup} sample(s) of {where} repeat a stored timestamp with a different value "
                f"(duplicates={self.duplicates!r}); {stored} stored, {dup} rejected",
                accepted=stored,
                rejected=dup,
            )
        return None

    def _settle(self, wrote: bool, error: Exception | None) -> None:
        """After the lock is released: wait for durability (group commit), then raise."""
        if wrote and self._group_commit:
            # Every appender that arrives while a sync runs shares the next one.
            self._wal.flush(sync=True)
        if error is not None:
            raise error

    def append(self, metric: str, labels: Mapping[str, str], ts_ms: int, value: float) -> None:
        """Store one sample of the series ``metric{labels}``.

        Raises
        ------
        InvalidInput
            A bad metric or label name, or a label value over the length limit.
        CardinalityLimitExceeded
            The sample would create a series beyond a limit; nothing is stored.
        OutOfOrderSample
            The sample is older than its series (or the head) accepts.
        DuplicateSample
            A different value at a stored timestamp (``duplicates="reject"``).
        """
        self.append_many(metric, labels, np.array([ts_ms], np.int64), np.array([value], np.float64))

    def append_many(
        self, metric: str, labels: Mapping[str, str], ts: npt.ArrayLike, values: npt.ArrayLike
    ) -> int:
        """Store many samples of one series in one WAL record; return how many were stored.

        Samples may come in any order. Errors are those of :meth:`append`;
        out-of-order and duplicate samples are dropped one by one, the rest
        stored, and then the error (with ``accepted``/``rejected`` counts)
        raised. Validation and limit errors store nothing.
        """
        t, v = _as_samples(ts, values)
        rejected = [0, 0]
        wrote = False
        with self._lock:
            self._check_open()
            ref, canonical = self._resolve(metric, labels)
            series = self._head[ref] if ref is not None else HeadSeries(-1, 2)
            kept_ts, kept_values = self._admit(series, t, v, rejected)
            if len(kept_ts):
                records = []
                if ref is None:
                    self._check_limits([canonical])
                    created = self._create([canonical])
                    ref = created[0][0]
                    records.append(encode_series(created))
                records.append(encode_series_samples(ref, kept_ts, kept_values))
                lsn = self._wal.append_many(records)[-1]
                wrote = True
                self._head[ref].apply(kept_ts, kept_values, lsn)
                top = int(kept_ts[-1])
                self._head_max = top if self._head_max is None else max(self._head_max, top)
            error = self._outcome(len(kept_ts), rejected, f"series {metric}")
        self._settle(wrote, error)
        return len(kept_ts)

    def series_ref(self, metric: str, labels: Mapping[str, str]) -> int:
        """The ref of series ``metric{labels}`` for :meth:`append_batch`, creating it if new.

        A ref stays valid while the series is in the head; a series without
        samples for two block cuts is dropped and its ref then raises
        :class:`~trusswork.core.errors.NotFound` (ask again for a new one).

        Raises
        ------
        InvalidInput, CardinalityLimitExceeded
            As :meth:`append`.
        """
        with self._lock:
            self._check_open()
            ref, canonical = self._resolve(metric, labels)
            if ref is None:
                self._check_limits([canonical])
                created = self._create([canonical])
                self._wal.append(encode_series(created))
                ref = created[0][0]
            return ref

    def append_batch(
        self,
        series: npt.ArrayLike | Sequence[Mapping[str, str]],
        ts: npt.ArrayLike,
        values: npt.ArrayLike,
    ) -> int:
        """Store samples of many series in one WAL record; return how many were stored.

        ``series`` gives each sample's series: an integer array of refs from
        :meth:`series_ref` (fastest), or one label mapping per sample with the
        metric under ``"__name__"``. Errors are those of :meth:`append_many`;
        a cardinality limit hit by any new series stores nothing.
        """
        t, v = _as_samples(ts, values)
        if len(series) != len(t):  # type: ignore[arg-type]
            raise InvalidInput(f"{len(series)} series for {len(t)} samples")  # type: ignore[arg-type]
        rejected = [0, 0]
        wrote = False
        with self._lock:
            self._check_open()
            records: list[bytes] = []
            if isinstance(series, np.ndarray) and series.dtype.kind in "iu":
                if len(series) and (series.min() < 0 or series.max() >= 1 << 32):
                    raise InvalidInput("series refs must be uint32 values from series_ref()")
                refs = series.astype(np.uint32, copy=False)
            else:
                refs, created = self._refs_of(series)
                if created:
                    records.append(encode_series(created))
            order = np.lexsort((t, refs))
            refs, t, v = refs[order], t[order], v[order]
            starts = np.flatnonzero(np.concatenate(([True], refs[1:] != refs[:-1])))[: len(refs)]
            ends = np.append(starts[1:], len(refs))
            try:
                targets = [self._head[ref] for ref in refs[starts].tolist()]
            except KeyError as exc:
                raise NotFound(
                    f"series ref {exc.args[0]} is not in the head (dropped or never made); "
                    f"call series_ref again"
                ) from None
            fast = self._all_newer(targets, refs, t, starts)
            if fast:
                groups = list(zip(targets, starts.tolist(), ends.tolist(), strict=True))
                if len(t):
                    records.append(encode_samples(refs, t, v))
            else:
                refs, t, v, groups = self._admit_groups(targets, t, v, starts, ends, rejected)
                if len(t):
                    records.append(encode_samples(refs, t, v))
            if records:
                lsn = self._wal.append_many(records)[-1]
                wrote = True
                for target, start, end in groups:
                    if fast and end - start == 1:
                        target.append_one(int(t[start]), float(v[start]), lsn)
                    else:
                        target.apply(t[start:end], v[start:end], lsn)
                if len(t):
                    top = int(t.max())
                    self._head_max = top if self._head_max is None else max(self._head_max, top)
            error = self._outcome(len(t), rejected, "the batch")
        self._settle(wrote, error)
        return len(t)

    def _all_newer(
        self,
        targets: list[HeadSeries],
        refs: npt.NDArray[np.uint32],
        t: npt.NDArray[np.int64],
        starts: npt.NDArray[np.intp],
    ) -> bool:
        """Whether every sample (sorted by ref, then time) is newer than its series' last one."""
        if not len(t):
            return True
        lasts = np.fromiter(
            (_MIN_TS if s.last_ts is None else s.last_ts for s in targets),
            np.int64,
            count=len(targets),
        )
        firsts = t[starts]
        if not bool(((firsts > lasts) & (firsts >= self._lower_bound)).all()):
            return False
        same_series = refs[1:] == refs[:-1]
        return bool((t[1:][same_series] > t[:-1][same_series]).all())

    def _admit_groups(
        self,
        targets: list[HeadSeries],
        t: npt.NDArray[np.int64],
        v: npt.NDArray[np.float64],
        starts: npt.NDArray[np.intp],
        ends: npt.NDArray[np.intp],
        rejected: list[int],
    ) -> tuple[
        npt.NDArray[np.uint32],
        npt.NDArray[np.int64],
        npt.NDArray[np.float64],
        list[tuple[HeadSeries, int, int]],
    ]:
        """The slow path: admit series by series; return the kept samples and their groups."""
        kept_refs, kept_ts, kept_values = [], [], []
        groups: list[tuple[HeadSeries, int, int]] = []
        at = 0
        for target, start, end in zip(targets, starts.tolist(), ends.tolist(), strict=True):
            ts_kept, values_kept = self._admit(target, t[start:end], v[start:end], rejected)
            if len(ts_kept):
                groups.append((target, at, at + len(ts_kept)))
                at += len(ts_kept)
                kept_refs.append(np.full(len(ts_kept), target.ref, np.uint32))
                kept_ts.append(ts_kept)
                kept_values.append(values_kept)
        if not groups:
            return (np.empty(0, np.uint32), np.empty(0, np.int64), np.empty(0, np.float64), [])
        return (
            np.concatenate(kept_refs),
            np.concatenate(kept_ts),
            np.concatenate(kept_values),
            groups,
        )

    def _refs_of(
        self, series: npt.ArrayLike | Sequence[Mapping[str, str]]
    ) -> tuple[npt.NDArray[np.uint32], list[tuple[int, Labels]]]:
        """Refs for one label mapping per sample, creating new series after the limit check."""
        if not isinstance(series, Sequence):
            raise InvalidInput("series must be an integer array of refs or label mappings")
        canonical: list[Labels] = []
        for labels in series:
            if not isinstance(labels, Mapping) or "__name__" not in labels:
                raise InvalidInput("each series mapping needs the metric name under '__name__'")
            canonical.append(self._canonical(str(labels["__name__"]), labels))
        new = list(dict.fromkeys(c for c in canonical if self._index.get(c) is None))
        self._check_limits(new)
        created = self._create(new)
        index = self._index
        refs = np.fromiter((index.get(c) for c in canonical), np.uint32, count=len(canonical))
        return refs, created

    # ------------------------------------------------------------ reading

    def _check_open(self) -> None:
        if self._closed:
            raise InvalidInput(f"the database {self.path} is closed")

    @contextmanager
    def _reading(self) -> Iterator[tuple[Block, ...]]:
        """The current blocks, kept open (not deleted) until the read ends."""
        with self._lock:
            self._check_open()
            self._readers += 1
            blocks = self._blocks
        try:
            yield blocks
        finally:
            with self._lock:
                self._readers -= 1
                self._bury()

    def _head_select(self, matchers: Sequence[Matcher], mint: int, maxt: int) -> list[SeriesData]:
        out = []
        with self._lock:
            for ref in self._index.select(matchers).tolist():
                ts, values = self._head[ref].read(mint, maxt)
                if len(ts):
                    out.append(SeriesData(self._index.labels(ref), ts, values))
        return out

    def _raw_start(self, blocks: Sequence[Block]) -> int | None:
        """The oldest time raw data covers (head or raw blocks); None without raw data."""
        starts = [b.meta.mint for b in blocks if b.meta.resolution == 0]
        if starts:
            return min(starts)  # the head only holds data newer than every raw block
        with self._lock:
            head = [m for s in self._head.values() if (m := s.min_time()) is not None]
        return min(head) if head else None

    def store_samples(self, samples: Iterable[Sample], default_ts_ms: int) -> tuple[int, list[str]]:
        """Store parsed samples (of any series) in one WAL record; return (stored, problems).

        This is how the text, line-protocol and remote-write imports land:
        ``samples`` come from a :class:`~trusswork.tsdb.ParsedBatch`, and one
        without a timestamp gets ``default_ts_ms``. A series the database
        refuses (a bad name, a cardinality limit) is reported in ``problems``
        and the others are still stored; so are the samples of a call that
        has out-of-order or duplicate ones (their error is reported too).
        """
        refs: dict[Labels, int] = {}
        refused: set[Labels] = set()
        problems: list[str] = []
        ref_list: list[int] = []
        ts_list: list[int] = []
        value_list: list[float] = []
        for sample in samples:
            key = sample.labels
            ref = refs.get(key)
            if ref is None:
                if key in refused:
                    continue
                labels = dict(key)
                metric = labels.pop("__name__", "")
                try:
                    ref = refs[key] = self.series_ref(metric, labels)
                except (InvalidInput, LimitExceeded) as exc:
                    refused.add(key)
                    problems.append(f"series {_render_labels(key)}: {exc}")
                    continue
            ref_list.append(ref)
            ts_list.append(default_ts_ms if sample.ts_ms is None else sample.ts_ms)
            value_list.append(sample.value)
        if not ref_list:
            return 0, problems
        try:
            stored = self.append_batch(
                np.array(ref_list, np.uint32),
                np.array(ts_list, np.int64),
                np.array(value_list, np.float64),
            )
        except (OutOfOrderSample, DuplicateSample) as exc:  # the rest was stored
            problems.append(str(exc))
            stored = exc.accepted
        return stored, problems

    def blocks(self) -> tuple[BlockMeta, ...]:
        """The metadata of the blocks on disk (raw and rollup), oldest first."""
        with self._lock:
            return tuple(block.meta for block in self._blocks)

    def select(self, matchers: Sequence[Matcher], mint: int, maxt: int) -> list[SeriesData]:
        """Series matching every matcher, with samples in ``[mint, maxt]`` (ms, inclusive).

        Raw samples where raw data exists; older than that, the ``last`` value
        of each window of the finest rollup that has data.
        """
        if mint > maxt:
            return []
        with self._reading() as blocks:
            raw = [b for b in blocks if b.meta.resolution == 0]
            sources = [
                b.select(matchers, mint, maxt)
                for b in raw
                if b.meta.maxt >= mint and b.meta.mint <= maxt
            ]
            sources.append(self._head_select(matchers, mint, maxt))
            rolled = any(b.meta.resolution for b in blocks)
            start = self._raw_start(blocks) if rolled else None
            hi = maxt if start is None else min(maxt, start - 1)
            older: list[list[SeriesData]] = []
            for resolution in self.rollups:
                if hi < mint:
                    break
                level = [
                    b
                    for b in blocks
                    if b.meta.resolution == resolution and b.meta.maxt >= mint and b.meta.mint <= hi
                ]
                if not level:
                    continue
                older.extend(b.select(matchers, mint, hi) for b in level)
                hi = min(b.meta.mint for b in level) - 1
            return merge_series(older + sources)

    def select_rollup(
        self,
        matchers: Sequence[Matcher],
        mint: int,
        maxt: int,
        resolution: int,
        aggregate: Aggregate = "last",
    ) -> list[SeriesData]:
        """One aggregate (min, max, sum, count, last) of the rollup blocks of a resolution.

        Only data already downsampled is returned (see :meth:`compact`).

        Raises
        ------
        InvalidInput
            ``resolution`` is not one of ``rollups``, or the aggregate is unknown.
        """
        if resolution not in self.rollups:
            raise InvalidInput(f"resolution {resolution} is not one of rollups={self.rollups}")
        with self._reading() as blocks:
            level = [
                b
                for b in blocks
                if b.meta.resolution == resolution and b.meta.maxt >= mint and b.meta.mint <= maxt
            ]
            return merge_series([b.select_rollup(matchers, mint, maxt, aggregate) for b in level])

    def select_downsampled(
        self,
        matchers: Sequence[Matcher],
        mint: int,
        maxt: int,
        resolution: int,
        aggregate: Aggregate = "last",
    ) -> list[SeriesData]:
        """``aggregate`` of the ``resolution`` rollups where they exist, raw samples elsewhere.

        What queries over long ranges read (see the ``downsample`` option of
        :class:`~trusswork.tsdb.Engine`): one point per window (stamped at
        the window's end - 1 ms) over the span the rollups cover, and the raw
        samples before and after it, each standing for itself (``min``,
        ``max``, ``sum``, ``last``) or for 1.0 (``count``), so sums of counts
        and extremes stay right across the seam.

        Raises
        ------
        InvalidInput
            ``resolution`` is not one of ``rollups``.
        """
        if resolution not in self.rollups:
            raise InvalidInput(f"resolution {resolution} is not one of rollups={self.rollups}")
        if mint > maxt:
            return []
        with self._reading() as blocks:
            level = [b.meta for b in blocks if b.meta.resolution == resolution]
        first = min((m.mint for m in level), default=None)
        last = max((m.maxt for m in level), default=None)
        if first is None or last is None or last < mint or first > maxt:
            return _stand_in(self.select(matchers, mint, maxt), aggregate)
        parts = [
            self.select_rollup(matchers, max(mint, first), min(maxt, last), resolution, aggregate)
        ]
        if mint < first:
            parts.append(_stand_in(self.select(matchers, mint, first - 1), aggregate))
        if maxt > last:
            parts.append(_stand_in(self.select(matchers, last + 1, maxt), aggregate))
        return merge_series(parts)

    def label_names(
        self, matchers: Sequence[Matcher] = (), mint: int | None = None, maxt: int | None = None
    ) -> list[str]:
        """Sorted label names of the matching series (head and blocks).

        ``mint``/``maxt`` pick the blocks; head series count whatever their times.
        """
        names: set[str] = set()
        with self._reading() as blocks:
            for block in self._overlapping(blocks, mint, maxt):
                names.update(block.label_names(matchers, mint, maxt))
            with self._lock:
                ids = self._index.select(matchers) if matchers else None
                names.update(self._index.label_names(ids))
        return sorted(names)

    def label_values(
        self,
        name: str,
        matchers: Sequence[Matcher] = (),
        mint: int | None = None,
        maxt: int | None = None,
    ) -> list[str]:
        """Sorted values of label ``name`` among the matching series (head and blocks)."""
        values: set[str] = set()
        with self._reading() as blocks:
            for block in self._overlapping(blocks, mint, maxt):
                values.update(block.label_values(name, matchers, mint, maxt))
            with self._lock:
                ids = self._index.select(matchers) if matchers else None
                values.update(self._index.label_values(name, ids))
        return sorted(values)

    @staticmethod
    def _overlapping(blocks: Sequence[Block], mint: int | None, maxt: int | None) -> list[Block]:
        lo = _MIN_TS if mint is None else mint
        hi = _MAX_TS if maxt is None else maxt
        return [b for b in blocks if b.meta.maxt >= lo and b.meta.mint <= hi]

    def cardinality(self, top: int = 10) -> CardinalityReport:
        """The head's series count and where it comes from, for finding label explosions."""
        with self._lock:
            return self._index.cardinality(top)

    def stats(self) -> TSDBStats:
        """Sizes and counters: head, blocks, WAL, rejected samples."""
        with self._lock:
            head = list(self._head.values())
            mins = [m for s in head if (m := s.min_time()) is not None]
            blocks = self._blocks
            return TSDBStats(
                series=len(self._index),
                head_samples=sum(s.sample_count for s in head),
                head_chunks=sum(s.chunk_count for s in head),
                head_min_time=min(mins) if mins else None,
                head_max_time=self._head_max if mins else None,
                head_lower_bound=self._lower_bound,
                blocks=sum(1 for b in blocks if b.meta.resolution == 0),
                rollup_blocks=sum(1 for b in blocks if b.meta.resolution),
                block_bytes=sum(b.size_bytes() for b in blocks),
                wal_next_lsn=self._wal.next_lsn,
                samples_appended=self._counters["appended"],
                out_of_order_rejected=self._counters["ooo"],
                duplicates_rejected=self._counters["dup"],
                series_limit_rejected=self._counters["limit"],
                corrupt_blocks=len(self.corrupt_blocks),
                background_error=None
                if self.background_error is None
                else repr(self.background_error),
            )

    # ------------------------------------------------------------ closing

    @staticmethod
    def _close_blocks(blocks: Sequence[Block]) -> None:
        for block in blocks:
            block.close()

    def close(self) -> None:
        """Stop the background thread, close the WAL and the blocks. Idempotent.

        The head is not flushed: reopening replays it from the WAL.
        """
        if self._closed:
            return
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        with self._maintenance, self._lock:
            self._closed = True
            if self._group_commit:
                self._wal.flush(sync=True)
            self._wal.close()
            self._close_blocks(self._blocks)
            self._readers = 0
            self._bury()

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
        state = "closed" if self._closed else f"{len(self._index)} series"
        return f"<TSDB {str(self.path)!r} {state}>"
