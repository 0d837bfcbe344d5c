"""Maintenance of a :class:`~trusswork.tsdb._db.TSDB`: from head to blocks to rollups.

:class:`Maintenance` is mixed into ``TSDB`` and holds the work that is not
the write or read path: cutting the head into raw blocks (and truncating the
WAL after a cut), merging blocks, writing rollups, applying retention, the
background thread that runs all of it, and, on opening, reading the blocks
and head bound back (dropping what a crashed compaction left behind). The
state it works on (locks, head, index, WAL, blocks) belongs to ``TSDB``,
which sets it up in ``__init__``.

Cutting and retention
---------------------
When the head spans 1.5 block ranges, the background thread (or
:meth:`TSDB.flush`) cuts its oldest aligned block range into a raw block:
it raises the head's lower bound (older samples are then rejected), writes
the block without holding the lock, swaps it in, drops the cut samples from
the head and truncates WAL segments no head sample needs (live series are
re-logged first, so refs stay defined).

:meth:`TSDB.compact` (also run in the background) merges raw blocks into
larger ones (ranges ``block_range * 3**k``), writes rollup blocks for each
resolution in ``rollups`` once a raw block spans at least
``max(block_range, 12 * resolution)`` and applies retention:

- raw blocks older than ``raw_retention_ms`` (default: ``retention_ms``) are
  deleted, but only after rollups of them exist (they are made first if
  needed), so history degrades to coarser data instead of vanishing;
- rollup blocks are deleted after ``retention_ms``;
- over ``retention_bytes``, the oldest raw blocks go first, then rollups.

Concurrency: one cut or compaction runs at a time (the ``_maintenance``
lock); the database lock is held only to read or swap state, never while a
block is written. Blocks swapped out are closed and deleted once no reader
holds them (:meth:`Maintenance._bury`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from trusswork.core.clock import Clock
from trusswork.core.errors import Corruption
from trusswork.core.files import replace_file
from trusswork.storage.wal import WriteAheadLog
from trusswork.tsdb import _compact
from trusswork.tsdb._block import Block, BlockMeta, delete_block, write_block
from trusswork.tsdb._head import HeadSeries, encode_series
from trusswork.tsdb._index import SeriesIndex
from trusswork.tsdb._series import Labels

__all__ = ["Maintenance"]

_MIN_TS = -(1 << 63)


class Maintenance:
    """Cutting, compaction, downsampling, retention and reopening for ``TSDB``.

    A mixin: the attributes below are set by ``TSDB.__init__``.
    """

    path: Path
    block_range_ms: int
    retention_ms: int | None
    raw_retention_ms: int | None
    retention_bytes: int | None
    rollups: tuple[int, ...]
    corrupt_blocks: list[tuple[Path, str]]
    background_error: BaseException | None
    _clock: Clock
    _lock: threading.RLock
    _maintenance: threading.Lock
    _index: SeriesIndex
    _head: dict[int, HeadSeries]
    _head_max: int | None
    _lower_bound: int
    _blocks: tuple[Block, ...]
    _blocks_dir: Path
    _readers: int
    _graveyard: list[Block]
    _wal: WriteAheadLog
    _closed: bool
    _stop: threading.Event
    _interval: float

    if TYPE_CHECKING:

        def _check_open(self) -> None: ...

    # ------------------------------------------------------------ opening

    def _open_blocks(self) -> tuple[Block, ...]:
        opened: list[Block] = []
        for entry in sorted(self._blocks_dir.iterdir()):
            if not entry.is_dir() or entry.name.endswith(".tmp"):
                continue
            try:
                opened.append(Block.open(entry))
            except Corruption as exc:
                self.corrupt_blocks.append((entry, str(exc)))
        # A compaction that crashed before deleting its sources leaves them beside
        # the merged block: drop every block whose sources another one covers.
        superseded = []
        for block in opened:
            own = set(block.meta.sources) or {block.meta.id}
            for other in opened:
                if (
                    other is not block
                    and other.meta.resolution == block.meta.resolution
                    and other.meta.level > block.meta.level
                    and own <= set(other.meta.sources)
                ):
                    superseded.append(block)
                    break
        for block in superseded:
            block.close()
            delete_block(block.path)
        return tuple(b for b in opened if b not in superseded)

    def _read_lower_bound(self) -> int:
        bound = _MIN_TS
        try:
            bound = int(json.loads((self.path / "head.json").read_text())["lower_bound"])
        except FileNotFoundError:
            pass
        except (ValueError, KeyError, TypeError) as exc:
            raise Corruption(f"{self.path / 'head.json'} is damaged: {exc}") from None
        for block in self._blocks:
            if block.meta.resolution == 0:
                bound = max(bound, block.meta.maxt + 1)
        return bound

    def _write_lower_bound(self) -> None:
        replace_file(
            self.path / "head.json", json.dumps({"lower_bound": self._lower_bound}).encode()
        )

    # ------------------------------------------------------------ maintenance

    def flush(self) -> BlockMeta | None:
        """Cut everything in the head into a block now; return its metadata (None if empty).

        Afterwards samples at or before the newest flushed timestamp are
        rejected as out of order (they would belong to the block).
        """
        with self._maintenance:
            with self._lock:
                self._check_open()
                if self._head_max is None or not any(not s.empty for s in self._head.values()):
                    return None
                boundary = self._head_max + 1
            return self._cut(boundary)

    def _cut(self, boundary: int) -> BlockMeta | None:
        """Move the head's samples older than ``boundary`` into a block (maintenance lock held)."""
        with self._lock:
            self._lower_bound = max(self._lower_bound, boundary)
            refs = list(self._head)
        data: list[tuple[Labels, npt.NDArray[np.int64], npt.NDArray[np.float64]]] = []
        for offset in range(0, len(refs), 1024):
            # Nothing below the new bound can change any more: read in slices so
            # writers wait at most one slice.
            with self._lock:
                for ref in refs[offset : offset + 1024]:
                    series = self._head.get(ref)
                    if series is None:
                        continue
                    ts, values = series.read(_MIN_TS, boundary - 1)
                    if len(ts):
                        data.append((self._index.labels(ref), ts, values))
        meta = None
        block = None
        if data:
            mint = min(int(ts[0]) for _, ts, _ in data)
            meta = write_block(self._blocks_dir, data, mint=mint, maxt=boundary - 1)
            block = Block.open(self._blocks_dir / meta.id)
        with self._lock:
            if block is not None:
                self._blocks = (*self._blocks, block)
            self._write_lower_bound()
            gone = []
            for ref, series in list(self._head.items()):
                # a series is idle when a cut finds it without samples: two idle
                # cuts in a row drop it (one that was just written to is active)
                active = not series.empty
                series.cut(boundary)
                if active:
                    series.empty_cuts = 0
                elif series.empty:
                    series.empty_cuts += 1
                    if series.empty_cuts >= 2:
                        gone.append(ref)
            for ref in gone:
                del self._head[ref]
            self._index.remove(gone)
            floor = min((s.min_lsn() for s in self._head.values()), default=self._wal.next_lsn)
            floor = min(floor, self._wal.next_lsn)
            if self._head:
                self._wal.append(encode_series(self._index.items()))
            self._wal.flush(sync=True)  # the re-logged series outlive the segments cut
            self._wal.truncate_before(floor)
        return meta

    def _maybe_cut(self) -> None:
        """Cut the oldest block range once the head spans 1.5 ranges."""
        with self._maintenance:
            while True:
                with self._lock:
                    if self._closed or self._head_max is None:
                        return
                    mins = [m for s in self._head.values() if (m := s.min_time()) is not None]
                    if not mins:
                        return
                    low = min(mins)
                    if self._head_max - low < self.block_range_ms * 3 // 2:
                        return
                    boundary = (low // self.block_range_ms + 1) * self.block_range_ms
                self._cut(boundary)

    def compact(self) -> None:
        """Merge raw blocks, write rollups and apply retention now."""
        with self._maintenance:
            self._check_open()
            self._compact_blocks()
            self._downsample()
            self._retain()

    def _swap(self, add: Sequence[Block], remove: Sequence[Block]) -> None:
        with self._lock:
            gone = set(map(id, remove))
            self._blocks = tuple(b for b in self._blocks if id(b) not in gone) + tuple(add)
            self._graveyard.extend(remove)
            self._bury()

    def _bury(self) -> None:
        """Close and delete blocks swapped out, once no reader can hold them (lock held)."""
        if self._readers or not self._graveyard:
            return
        doomed, self._graveyard = self._graveyard, []
        for block in doomed:
            block.close()
            if block.path.exists():
                delete_block(block.path)

    def _compact_blocks(self) -> None:
        ranges = [self.block_range_ms * 3**k for k in range(6)]
        while True:
            by_id = {b.meta.id: b for b in self._blocks}
            plan = _compact.plan_compaction([b.meta for b in self._blocks], ranges)
            if not plan:
                return
            for group in plan:
                sources = [by_id[m.id] for m in group]
                meta = _compact.compact(sources, self._blocks_dir)
                self._swap([Block.open(self._blocks_dir / meta.id)], sources)

    def _rollup_span(self, resolution: int) -> int:
        return max(self.block_range_ms, 12 * resolution)

    def _covered(self, raw: Block, resolution: int) -> bool:
        return any(
            b.meta.resolution == resolution
            and b.meta.mint <= raw.meta.mint
            and b.meta.maxt >= raw.meta.maxt
            for b in self._blocks
        )

    def _downsample(self, force: Sequence[Block] = ()) -> None:
        forced = set(map(id, force))
        for raw in [b for b in self._blocks if b.meta.resolution == 0]:
            for resolution in self.rollups:
                span = raw.meta.maxt - raw.meta.mint + 1
                if (span >= self._rollup_span(resolution) or id(raw) in forced) and not (
                    self._covered(raw, resolution)
                ):
                    meta = _compact.downsample(raw, self._blocks_dir, resolution)
                    self._swap([Block.open(self._blocks_dir / meta.id)], [])

    def _retain(self) -> None:
        if self.retention_ms is None and self.retention_bytes is None:
            return
        now_ms = int(self._clock.time() * 1000)
        blocks = self._blocks
        raw = [b for b in blocks if b.meta.resolution == 0]
        rolled = [b for b in blocks if b.meta.resolution]
        sizes = {b.meta.id: b.size_bytes() for b in blocks}
        rolled_bytes = sum(sizes[b.meta.id] for b in rolled)
        raw_limit = (
            None if self.retention_bytes is None else max(0, self.retention_bytes - rolled_bytes)
        )
        victims = set(
            _compact.retention_victims(
                [b.meta for b in raw],
                {b.meta.id: sizes[b.meta.id] for b in raw},
                now_ms=now_ms,
                max_age_ms=self.raw_retention_ms,
                max_bytes=raw_limit,
            )
        )
        doomed = [b for b in raw if b.meta.id in victims]
        if doomed and self.rollups:
            self._downsample(force=doomed)  # history degrades to rollups, not to nothing
        self._swap([], doomed)
        kept_raw = sum(sizes[b.meta.id] for b in raw if b.meta.id not in victims)
        rolled = [b for b in self._blocks if b.meta.resolution]
        rolled_sizes = {b.meta.id: b.size_bytes() for b in rolled}
        rolled_limit = (
            None if self.retention_bytes is None else max(0, self.retention_bytes - kept_raw)
        )
        victims = set(
            _compact.retention_victims(
                [b.meta for b in rolled],
                rolled_sizes,
                now_ms=now_ms,
                max_age_ms=self.retention_ms,
                max_bytes=rolled_limit,
            )
        )
        self._swap([], [b for b in rolled if b.meta.id in victims])

    def _background(self) -> None:
        last_compaction = 0.0
        while not self._stop.wait(self._interval):
            try:
                self._maybe_cut()
                if time.monotonic() - last_compaction >= 10 * self._interval:
                    last_compaction = time.monotonic()
                    with self._maintenance:
                        if self._closed:
                            return
                        self._compact_blocks()
                        self._downsample()
                        self._retain()
            except Exception as exc:  # kept for stats(); the next round tries again
                self.background_error = exc
