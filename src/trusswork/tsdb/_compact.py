"""Block maintenance: which blocks to merge, merging them, rollups, retention.

The store cuts a level-1 block from the head every 2 h. Left alone that
makes many small blocks, each opened and searched by every query, so
:func:`plan_compaction` groups adjacent blocks that fill a larger aligned
range (2 h -> 6 h -> 24 h -> 72 h, as Prometheus does) and any blocks whose
ranges overlap; :func:`compact` merges a group into one block.
:func:`downsample` turns a block into a rollup block of per-window
aggregates for long-range queries, and :func:`retention_victims` picks the
blocks that retention by age or size deletes.

Guarantees
----------
- Merging is last-write-wins: when blocks hold a sample of the same series
  at the same timestamp, the newer block's value is kept. A block's age is
  its newest level-1 source (its own id for a level-1 block), so ids,
  which sort by creation time, decide.
- Outputs are written atomically (see :func:`~trusswork.tsdb._block.write_block`);
  deleting the inputs afterwards is the caller's job, after the output is
  durable.
- Merging streams one series at a time: memory holds the index of each
  input and one series' samples, not whole blocks.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Mapping, Sequence
from itertools import groupby, pairwise
from pathlib import Path

import numpy as np

from trusswork.core.errors import InvalidInput
from trusswork.tsdb._block import (
    Block,
    BlockMeta,
    Columns,
    Float64Array,
    Int64Array,
)
from trusswork.tsdb._block_write import _write_columns
from trusswork.tsdb._series import Labels, is_stale, newest_per_timestamp

__all__ = [
    "DEFAULT_RANGES",
    "RESOLUTIONS",
    "compact",
    "downsample",
    "plan_compaction",
    "retention_victims",
]

_HOUR = 3_600_000
#: Block ranges (ms) of the compaction levels: head blocks are 2 h; each
#: larger range is a multiple of the one before so aligned ranges nest.
DEFAULT_RANGES: tuple[int, ...] = (2 * _HOUR, 6 * _HOUR, 24 * _HOUR, 72 * _HOUR)
#: The rollup resolutions the store makes: 5 minutes and 1 hour.
RESOLUTIONS: tuple[int, ...] = (300_000, _HOUR)


# ------------------------------------------------------------------ planning


def plan_compaction(
    metas: Sequence[BlockMeta], ranges: Sequence[int] = DEFAULT_RANGES
) -> list[list[BlockMeta]]:
    """Groups of blocks worth merging, each group to become one block.

    Blocks are only grouped with blocks of the same resolution. Two kinds of
    group are returned, disjoint from each other:

    - blocks whose time ranges overlap (out-of-order writes, or a block
      copied in), always merged, whatever their size;
    - otherwise, for the smallest range of ``ranges[1:]`` that yields any,
      two or more blocks lying inside one range-aligned window
      ``[k * range, (k + 1) * range)`` that either fill the window exactly
      or end before the newest block starts (that window will get no more
      blocks). The newest window waits until it is full.

    Compacting every group and planning again until the plan is empty
    reaches the largest range.

    Parameters
    ----------
    metas:
        The blocks present, in any order.
    ranges:
        Ascending block ranges in ms, each a multiple of the one before;
        ``ranges[0]`` is the size of head blocks.

    Returns
    -------
    list of list of BlockMeta
        Each group sorted by ``mint``; overlap groups first.
    """
    _check_ranges(ranges)
    by_resolution: dict[int, list[BlockMeta]] = {}
    for meta in metas:
        by_resolution.setdefault(meta.resolution, []).append(meta)
    plan: list[list[BlockMeta]] = []
    for resolution in sorted(by_resolution):
        blocks = sorted(by_resolution[resolution], key=lambda m: (m.mint, m.maxt, m.id))
        overlapping = _overlap_groups(blocks)
        taken = {meta.id for group in overlapping for meta in group}
        plan += overlapping
        plan += _level_groups([m for m in blocks if m.id not in taken], ranges)
    return plan


def _check_ranges(ranges: Sequence[int]) -> None:
    if not ranges or any(r <= 0 for r in ranges):
        raise InvalidInput(f"compaction ranges must be positive ms, got {list(ranges)}")
    for small, large in pairwise(ranges):
        if large <= small or large % small:
            raise InvalidInput(
                f"compaction ranges must ascend, each a multiple of the one before: {list(ranges)}"
            )


def _overlap_groups(blocks: list[BlockMeta]) -> list[list[BlockMeta]]:
    """Connected runs of blocks (sorted by mint) whose ranges overlap."""
    groups: list[list[BlockMeta]] = []
    current: list[BlockMeta] = []
    end = 0
    for meta in blocks:
        if current and meta.mint <= end:
            current.append(meta)
            end = max(end, meta.maxt)
            continue
        if len(current) > 1:
            groups.append(current)
        current, end = [meta], meta.maxt
    if len(current) > 1:
        groups.append(current)
    return groups


def _level_groups(blocks: list[BlockMeta], ranges: Sequence[int]) -> list[list[BlockMeta]]:
    if not blocks:
        return []
    newest_start = max(meta.mint for meta in blocks)
    for width in ranges[1:]:
        windows: dict[int, list[BlockMeta]] = {}
        for meta in blocks:
            start = meta.mint // width * width
            if meta.maxt < start + width:
                windows.setdefault(start, []).append(meta)
        chosen = []
        for start, group in sorted(windows.items()):
            first = min(meta.mint for meta in group)
            last = max(meta.maxt for meta in group)
            fills = first == start and last == start + width - 1
            if len(group) > 1 and (fills or last < newest_start):
                chosen.append(group)
        if chosen:
            return chosen
    return []


# ------------------------------------------------------------------ merging


def _recency(meta: BlockMeta) -> tuple[str, str]:
    return max(meta.sources, default=meta.id), meta.id


def compact(blocks: Sequence[Block], parent: Path) -> BlockMeta:
    """Merge blocks into one new block under ``parent``; the inputs are untouched.

    The result covers the union of the inputs' ranges, holds every series of
    every input, is one level above the highest input and lists the union of
    their sources. Where inputs hold a sample of the same series at the same
    timestamp, the newest input wins: the one whose newest source id is
    highest (ids sort by creation time). Staleness markers are samples like
    any other.

    Raises
    ------
    InvalidInput
        No blocks, the same block twice, or blocks of different resolutions.
    """
    if not blocks:
        raise InvalidInput("compact needs at least one block")
    metas = [block.meta for block in blocks]
    if len({meta.id for meta in metas}) != len(metas):
        raise InvalidInput("compact was given the same block twice")
    resolutions = {meta.resolution for meta in metas}
    if len(resolutions) != 1:
        raise InvalidInput(f"cannot merge blocks of different resolutions {sorted(resolutions)}")
    ordered = sorted(blocks, key=lambda block: _recency(block.meta))
    streams = [_ranked(block, rank) for rank, block in enumerate(ordered)]
    merged = heapq.merge(*streams, key=lambda item: (item[0], item[1]))
    series = (
        _merge_series(labels, [(ts, cols) for _, _, ts, cols in group])
        for labels, group in groupby(merged, key=lambda item: item[0])
    )
    return _write_columns(
        parent,
        series,
        mint=min(meta.mint for meta in metas),
        maxt=max(meta.maxt for meta in metas),
        resolution=resolutions.pop(),
        level=max(meta.level for meta in metas) + 1,
        sources=tuple(sorted({source for meta in metas for source in meta.sources})),
        after=max(meta.id for meta in metas),
    )


def _ranked(
    block: Block, rank: int
) -> Iterator[tuple[Labels, int, Int64Array, list[Float64Array]]]:
    for labels, ts, cols in block._columns():
        yield labels, rank, ts, cols


def _merge_series(labels: Labels, parts: list[tuple[Int64Array, list[Float64Array]]]) -> Columns:
    """One series from its parts, oldest part first; the newest wins a timestamp."""
    if len(parts) == 1:
        ts, cols = parts[0]
        return labels, ts, cols
    ts_all = np.concatenate([ts for ts, _ in parts])
    keep = newest_per_timestamp(ts_all)
    width = len(parts[0][1])
    cols = [np.concatenate([part[1][i] for part in parts])[keep] for i in range(width)]
    return labels, ts_all[keep], cols


# ------------------------------------------------------------------ rollups


def downsample(block: Block, parent: Path, resolution: int) -> BlockMeta:
    """Write a rollup block of ``block`` at ``resolution`` ms under ``parent``.

    Each series' samples are cut into windows ``[k * resolution, (k + 1) *
    resolution)``; each window with at least one sample becomes one rollup
    point stamped at the window's **end minus one ms**, ``(k + 1) *
    resolution - 1``, so no point summarizes samples later than its own
    timestamp and every point stays inside its window. The point holds the
    window's ``min``, ``max``, ``sum``, ``count`` and ``last`` value.

    Staleness markers are ignored (not counted, not a ``last``); a window
    holding only markers yields no point. Other NaNs are values: they make
    ``min``, ``max`` and ``sum`` NaN as float arithmetic does and are counted.
    A rollup block can be downsampled again to a multiple of its resolution
    (``min`` of mins, ``sum`` of counts, ...), which equals downsampling the
    raw block directly.

    The rollup block covers the source's range widened to whole windows and
    keeps its level and sources.

    Raises
    ------
    InvalidInput
        ``resolution`` is not positive, or not a larger multiple of the
        block's own resolution.
    """
    source = block.meta
    if resolution <= 0:
        raise InvalidInput(f"resolution must be a positive number of ms, got {resolution}")
    if source.resolution and (resolution <= source.resolution or resolution % source.resolution):
        raise InvalidInput(
            f"a {source.resolution} ms rollup block can only be downsampled to a larger "
            f"multiple of its resolution, not {resolution} ms"
        )
    return _write_columns(
        parent,
        _rollups(block, resolution),
        mint=source.mint // resolution * resolution,
        maxt=source.maxt // resolution * resolution + resolution - 1,
        resolution=resolution,
        level=source.level,
        sources=source.sources,
        after=source.id,
    )


def _rollups(block: Block, resolution: int) -> Iterator[Columns]:
    rolled_up = bool(block.meta.resolution)
    for labels, ts, cols in block._columns():
        if rolled_up:  # columns in AGGREGATES order, as they are written below
            mins, maxes, sums, counts, lasts = cols
        else:
            fresh = ~is_stale(cols[0])
            ts = ts[fresh]
            mins = maxes = sums = lasts = cols[0][fresh]
            counts = np.ones(len(ts), dtype=np.float64)
        if len(ts) == 0:
            continue
        window = ts // resolution
        starts = np.flatnonzero(np.concatenate(([True], window[1:] != window[:-1])))
        ends = np.append(starts[1:], len(ts)) - 1
        # NaN and infinities propagate as in any float sum; no warnings for them.
        with np.errstate(invalid="ignore", over="ignore"):
            aggregates = [
                np.minimum.reduceat(mins, starts),
                np.maximum.reduceat(maxes, starts),
                np.add.reduceat(sums, starts),
                np.add.reduceat(counts, starts),
                lasts[ends],
            ]
        yield labels, window[starts] * resolution + (resolution - 1), aggregates


# ------------------------------------------------------------------ retention


def retention_victims(
    metas: Sequence[BlockMeta],
    sizes: Mapping[str, int],
    *,
    now_ms: int,
    max_age_ms: int | None,
    max_bytes: int | None,
) -> list[str]:
    """Ids of the whole blocks retention deletes, oldest first.

    By age, a block goes once all of it is older than ``now_ms -
    max_age_ms`` (its ``maxt`` is before that). By size, blocks are kept
    newest first (by ``maxt``) while their total stays within ``max_bytes``;
    the first block that would pass it and every older one go, as in
    Prometheus. ``None`` switches a rule off. Apply it per resolution to
    give rollups a longer retention than raw blocks.

    Parameters
    ----------
    metas:
        The blocks present.
    sizes:
        Bytes of each block by id (:meth:`Block.size_bytes`).

    Raises
    ------
    InvalidInput
        A negative limit, or a block missing from ``sizes`` when
        ``max_bytes`` is set.
    """
    if max_age_ms is not None and max_age_ms < 0:
        raise InvalidInput(f"max_age_ms must be >= 0, got {max_age_ms}")
    if max_bytes is not None and max_bytes < 0:
        raise InvalidInput(f"max_bytes must be >= 0, got {max_bytes}")
    oldest_first = sorted(metas, key=lambda m: (m.maxt, m.mint, m.id))
    victims: set[str] = set()
    if max_age_ms is not None:
        cutoff = now_ms - max_age_ms
        victims.update(meta.id for meta in oldest_first if meta.maxt < cutoff)
    if max_bytes is not None:
        total = 0
        survivors = [meta for meta in oldest_first if meta.id not in victims]
        for position in range(len(survivors) - 1, -1, -1):
            meta = survivors[position]
            if meta.id not in sizes:
                raise InvalidInput(f"no size given for block {meta.id}")
            total += sizes[meta.id]
            if total > max_bytes:
                victims.update(m.id for m in survivors[: position + 1])
                break
    return [meta.id for meta in oldest_first if meta.id in victims]
