"""Compaction planning, merging, downsampling and retention against simple oracles.

Merges are checked against a dict-per-series replay of the inputs oldest
first (so later writes win), rollups against per-window numpy reductions.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trusswork.core.errors import InvalidInput
from trusswork.tsdb._block import Block, BlockMeta, write_block
from trusswork.tsdb._compact import (
    DEFAULT_RANGES,
    compact,
    downsample,
    plan_compaction,
    retention_victims,
)
from trusswork.tsdb._series import STALE_NAN, Labels, Matcher, is_stale, labels_of

H = 3_600_000
Series = dict[Labels, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]]


def bits(values: npt.ArrayLike) -> list[int]:
    return [int(x) for x in np.asarray(values, dtype=np.float64).view(np.uint64)]


def write(
    parent: Path, series: Series, mint: int, maxt: int, *, chunk_samples: int = 1024
) -> Block:
    items = [(k, ts, v) for k, (ts, v) in series.items()]
    meta = write_block(parent, items, mint=mint, maxt=maxt, chunk_samples=chunk_samples)
    return Block.open(parent / meta.id)


def meta(name: str, mint: int, maxt: int, resolution: int = 0) -> BlockMeta:
    block_id = name.rjust(26, "0")
    return BlockMeta(block_id, mint, maxt, 1, 1, 1, resolution, 1, (block_id,))


# ------------------------------------------------------------------ merging

LABELS = [labels_of({"__name__": "m", "i": str(i)}) for i in range(4)]
value_strategy = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.just(STALE_NAN), st.just(0.0)
)


@st.composite
def block_series(draw: st.DrawFn) -> Series:
    out: Series = {}
    for labels in draw(st.sets(st.sampled_from(LABELS))):
        ts = sorted(draw(st.sets(st.integers(0, 200), max_size=25)))
        values = draw(st.lists(value_strategy, min_size=len(ts), max_size=len(ts)))
        out[labels] = (np.array(ts, dtype=np.int64), np.array(values, dtype=np.float64))
    return out


@settings(max_examples=40, deadline=None)
@given(inputs=st.lists(block_series(), min_size=1, max_size=4), chunk=st.sampled_from([2, 1024]))
def test_compaction_is_the_union_with_the_newest_block_winning(
    inputs: list[Series], chunk: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        parent = Path(tmp)
        blocks = [write(parent, s, 0, 200, chunk_samples=chunk) for s in inputs]
        expected: dict[Labels, dict[int, float]] = {}
        for series in inputs:  # written oldest first: later writes win
            for labels, (ts, values) in series.items():
                expected.setdefault(labels, {}).update(zip(ts.tolist(), values, strict=True))
        # Hand the blocks over in a scrambled order: recency, not position, decides.
        result = compact(blocks[::-1][1:] + blocks[-1:], parent / "out")
        with Block.open(parent / "out" / result.id) as merged:
            got = {labels: (ts.tolist(), bits(values)) for labels, ts, values in merged.series()}
        want = {
            labels: (sorted(samples), bits([samples[t] for t in sorted(samples)]))
            for labels, samples in expected.items()
            if samples
        }
        assert got == want
        assert result.num_samples == sum(len(ts) for ts, _ in want.values())
        for block in blocks:
            block.close()


def test_compacted_meta_has_union_range_level_and_sources(tmp_path: Path) -> None:
    def one(at: int) -> Series:
        return {LABELS[0]: (np.array([at]), np.array([1.0]))}

    a = write(tmp_path, one(5), 0, 2 * H - 1)
    b = write(tmp_path, one(2 * H), 2 * H, 4 * H - 1)
    first = compact([a, b], tmp_path)
    c = write(tmp_path, one(6 * H - 1), 4 * H, 6 * H - 1)
    with Block.open(tmp_path / first.id) as merged:
        second = compact([c, merged], tmp_path)
    assert (first.mint, first.maxt, first.level) == (0, 4 * H - 1, 2)
    assert first.sources == (a.meta.id, b.meta.id)
    assert (second.mint, second.maxt, second.level) == (0, 6 * H - 1, 3)
    assert second.sources == (a.meta.id, b.meta.id, c.meta.id)
    assert a.meta.id < b.meta.id < first.id < c.meta.id < second.id
    for block in (a, b, c):
        block.close()


def test_compaction_keeps_the_newest_source_even_through_a_merged_block(tmp_path: Path) -> None:
    def at(value: float) -> Series:
        return {LABELS[0]: (np.array([100]), np.array([value]))}

    old = write(tmp_path, at(1.0), 0, 200)
    newer = write(tmp_path, at(2.0), 0, 200)
    newest = write(tmp_path, at(3.0), 0, 200)
    # the merged block holds `newest` as a source, so it beats `newer`
    with Block.open(tmp_path / compact([old, newest], tmp_path).id) as merged:
        final = Block.open(tmp_path / compact([merged, newer], tmp_path).id)
    with final:
        assert [v.tolist() for _, _, v in final.series()] == [[3.0]]
    for block in (old, newer, newest):
        block.close()


def test_compaction_refuses_bad_inputs(tmp_path: Path) -> None:
    one = {LABELS[0]: (np.array([0, 1]), np.array([1.0, 2.0]))}
    raw = write(tmp_path, one, 0, 2 * H - 1)
    rollup = Block.open(tmp_path / downsample(raw, tmp_path, 300_000).id)
    with rollup, pytest.raises(InvalidInput, match="resolutions"):
        compact([raw, rollup], tmp_path / "x")
    with pytest.raises(InvalidInput, match="same block"):
        compact([raw, raw], tmp_path / "x")
    with pytest.raises(InvalidInput):
        compact([], tmp_path / "x")
    assert not (tmp_path / "x").exists() or list((tmp_path / "x").iterdir()) == []
    raw.close()


def test_rollup_blocks_merge_every_aggregate(tmp_path: Path) -> None:
    ts = np.arange(0, 2 * H, 60_000, dtype=np.int64)
    left = write(tmp_path, {LABELS[0]: (ts[:60], np.arange(60.0))}, 0, 2 * H - 1)
    right = write(tmp_path, {LABELS[0]: (ts[60:], np.arange(60.0, 120.0))}, 0, 2 * H - 1)
    rollups = [Block.open(tmp_path / downsample(b, tmp_path, H).id) for b in (left, right)]
    merged_meta = compact(rollups, tmp_path)
    assert merged_meta.resolution == H
    with Block.open(tmp_path / merged_meta.id) as merged:
        got = {
            agg: merged.select_rollup([], 0, 2 * H, agg)[0].values.tolist()
            for agg in ("min", "max", "sum", "count", "last")
        }
    assert got == {
        "min": [0.0, 60.0],
        "max": [59.0, 119.0],
        "sum": [float(sum(range(60))), float(sum(range(60, 120)))],
        "count": [60.0, 60.0],
        "last": [59.0, 119.0],
    }
    for block in (left, right, *rollups):
        block.close()


# ------------------------------------------------------------------ rollups


def oracle_rollup(
    ts: npt.NDArray[np.int64], values: npt.NDArray[np.float64], resolution: int
) -> dict[str, list[float]]:
    fresh = ~is_stale(values)
    ts, values = ts[fresh], values[fresh]
    out: dict[str, list[float]] = {k: [] for k in ("ts", "min", "max", "sum", "count", "last")}
    for window in sorted(set((ts // resolution).tolist())):
        v = values[ts // resolution == window]
        out["ts"].append((window + 1) * resolution - 1)
        out["min"].append(float(np.min(v)))
        out["max"].append(float(np.max(v)))
        with np.errstate(invalid="ignore", over="ignore"):  # inf - inf is NaN, quietly
            out["sum"].append(float(np.sum(v)))
        out["count"].append(float(len(v)))
        out["last"].append(float(v[-1]))
    return out


rollup_values = st.one_of(
    st.floats(-1e6, 1e6),
    st.just(float("nan")),
    st.just(float("inf")),
    st.just(-float("inf")),
    st.just(STALE_NAN),
)


@settings(max_examples=40, deadline=None)
@given(
    samples=st.dictionaries(st.integers(-10_000, 10_000), rollup_values, max_size=60),
    resolution=st.sampled_from([7, 100, 1000, 30_000]),
)
def test_downsample_equals_numpy_per_window(samples: dict[int, float], resolution: int) -> None:
    ts = np.array(sorted(samples), dtype=np.int64)
    values = np.array([samples[t] for t in sorted(samples)], dtype=np.float64)
    want = oracle_rollup(ts, values, resolution)
    with tempfile.TemporaryDirectory() as tmp:
        parent = Path(tmp)
        with write(parent, {LABELS[0]: (ts, values)}, -10_000, 10_000, chunk_samples=5) as raw:
            rolled = downsample(raw, parent, resolution)
        assert rolled.resolution == resolution
        assert rolled.mint <= -10_000 and rolled.maxt >= 10_000
        assert rolled.num_samples == len(want["ts"])
        with Block.open(parent / rolled.id) as block:
            for aggregate in ("min", "max", "sum", "count", "last"):
                got = block.select_rollup([], rolled.mint, rolled.maxt, aggregate)
                if not want["ts"]:
                    assert got == []
                    continue
                (series,) = got
                assert series.ts.tolist() == want["ts"]
                np.testing.assert_allclose(series.values, want[aggregate], rtol=1e-9)
                assert np.array_equal(np.isnan(series.values), np.isnan(want[aggregate]))
            assert [bits(s.values) for s in block.select([], rolled.mint, rolled.maxt)] == (
                [bits(want["last"])] if want["ts"] else []
            )


def test_downsampling_a_rollup_equals_downsampling_raw(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    ts = np.unique(rng.integers(0, 6 * H, size=3000)).astype(np.int64)
    values = rng.normal(size=len(ts))
    values[::37] = STALE_NAN
    with write(tmp_path, {LABELS[1]: (ts, values)}, 0, 6 * H - 1) as raw:
        direct = Block.open(tmp_path / downsample(raw, tmp_path, H).id)
        fine = Block.open(tmp_path / downsample(raw, tmp_path, 300_000).id)
    coarse = Block.open(tmp_path / downsample(fine, tmp_path, H).id)
    for aggregate in ("min", "max", "sum", "count", "last"):
        (a,) = direct.select_rollup([Matcher("i", "=", "1")], 0, 6 * H, aggregate)
        (b,) = coarse.select_rollup([Matcher("i", "=", "1")], 0, 6 * H, aggregate)
        assert a.ts.tolist() == b.ts.tolist() == [(k + 1) * H - 1 for k in range(6)]
        np.testing.assert_allclose(a.values, b.values, rtol=1e-12)
    assert coarse.meta.sources == raw.meta.sources
    for block in (direct, fine, coarse):
        block.close()


def test_downsample_refuses_bad_resolutions(tmp_path: Path) -> None:
    with write(tmp_path, {LABELS[0]: (np.array([1]), np.array([1.0]))}, 0, H - 1) as raw:
        with pytest.raises(InvalidInput):
            downsample(raw, tmp_path, 0)
        with Block.open(tmp_path / downsample(raw, tmp_path, 300_000).id) as rollup:
            for bad in (300_000, 100_000, 450_000):
                with pytest.raises(InvalidInput, match="multiple"):
                    downsample(rollup, tmp_path, bad)


def test_select_rollup_refuses_unknown_aggregates(tmp_path: Path) -> None:
    with write(tmp_path, {LABELS[0]: (np.array([1]), np.array([1.0]))}, 0, H - 1) as raw:
        rollup = Block.open(tmp_path / downsample(raw, tmp_path, 300_000).id)
    with rollup, pytest.raises(InvalidInput, match="aggregate"):
        rollup.select_rollup([], 0, H, "avg")  # type: ignore[arg-type]


# ------------------------------------------------------------------ planning


def ids(plan: list[list[BlockMeta]]) -> list[list[str]]:
    return [[m.id.lstrip("0") for m in group] for group in plan]


def two_hour(name: str, k: int) -> BlockMeta:
    return meta(name, k * 2 * H, (k + 1) * 2 * H - 1)


def test_plan_merges_blocks_that_fill_a_range() -> None:
    blocks = [two_hour("a", 0), two_hour("b", 1), two_hour("c", 2), two_hour("d", 3)]
    assert ids(plan_compaction(blocks)) == [["a", "b", "c"]]


def test_plan_waits_while_the_newest_range_is_filling() -> None:
    assert plan_compaction([two_hour("a", 0), two_hour("b", 1)]) == []
    assert plan_compaction([two_hour("a", 0)]) == []


def test_plan_merges_an_unfilled_range_once_newer_blocks_exist() -> None:
    blocks = [two_hour("a", 0), two_hour("b", 1), two_hour("c", 4)]
    assert ids(plan_compaction(blocks)) == [["a", "b"]]


def test_plan_climbs_levels_from_the_smallest_range() -> None:
    six_hour = [meta(f"s{k}", k * 6 * H, (k + 1) * 6 * H - 1) for k in range(4)]
    assert ids(plan_compaction(six_hour)) == [["s0", "s1", "s2", "s3"]]
    mixed = [*six_hour[:3], two_hour("x", 9), two_hour("y", 10), two_hour("z", 12)]
    assert ids(plan_compaction(mixed)) == [["x", "y"]]


def test_plan_always_merges_overlapping_blocks_per_resolution() -> None:
    blocks = [
        meta("a", 0, 100),
        meta("b", 50, 150),
        meta("c", 150, 151),
        meta("d", 1000, 2000),
        meta("r", 0, 100, resolution=300_000),
        meta("s", 90, 100, resolution=300_000),
        meta("t", 101, 200, resolution=300_000),
    ]
    assert ids(plan_compaction(blocks)) == [["a", "b", "c"], ["r", "s"]]


@settings(max_examples=200, deadline=None)
@given(
    spans=st.lists(
        st.tuples(st.integers(0, 40), st.sampled_from([1, 1, 1, 3, 12])), min_size=1, max_size=12
    )
)
def test_planned_groups_are_disjoint_and_lie_in_one_range_or_overlap(
    spans: list[tuple[int, int]],
) -> None:
    blocks = [meta(str(i), k * 2 * H, (k + n) * 2 * H - 1) for i, (k, n) in enumerate(spans)]
    plan = plan_compaction(blocks)
    members = [m.id for group in plan for m in group]
    assert len(members) == len(set(members))
    for group in plan:
        assert len(group) > 1
        ordered = sorted(group, key=lambda m: m.mint)
        ends = np.maximum.accumulate([m.maxt for m in ordered])
        connected = all(b.mint <= end for b, end in zip(ordered[1:], ends, strict=False))
        lo, hi = ordered[0].mint, int(ends[-1])
        fits = any(lo // r == hi // r for r in DEFAULT_RANGES[1:])
        assert connected or fits


def test_plan_refuses_bad_ranges() -> None:
    for ranges in ([], [0, 2], [2 * H, H], [2 * H, 5 * H]):
        with pytest.raises(InvalidInput):
            plan_compaction([], ranges)


# ------------------------------------------------------------------ retention


def test_retention_by_age_deletes_blocks_entirely_older_than_the_cutoff() -> None:
    blocks = [two_hour("c", 2), two_hour("a", 0), two_hour("b", 1)]
    sizes = dict.fromkeys((m.id for m in blocks), 10)
    victims = retention_victims(
        sizes=sizes, metas=blocks, now_ms=6 * H, max_age_ms=2 * H + 1, max_bytes=None
    )
    assert [v.lstrip("0") for v in victims] == ["a"]
    everything = retention_victims(blocks, sizes, now_ms=100 * H, max_age_ms=H, max_bytes=None)
    assert [v.lstrip("0") for v in everything] == ["a", "b", "c"]
    assert retention_victims(blocks, sizes, now_ms=6 * H, max_age_ms=None, max_bytes=None) == []


def test_retention_by_size_keeps_the_newest_blocks_that_fit() -> None:
    blocks = [two_hour(name, k) for k, name in enumerate("abcd")]
    sizes = {m.id: 100 for m in blocks}
    for max_bytes, kept in ((400, 4), (399, 3), (250, 2), (100, 1), (99, 0)):
        victims = retention_victims(blocks, sizes, now_ms=0, max_age_ms=None, max_bytes=max_bytes)
        assert victims == [m.id for m in blocks[: 4 - kept]]


def test_retention_combines_age_and_size() -> None:
    blocks = [two_hour(name, k) for k, name in enumerate("abcd")]
    sizes = {m.id: 100 for m in blocks}
    victims = retention_victims(blocks, sizes, now_ms=8 * H, max_age_ms=5 * H, max_bytes=150)
    # age takes a (ends before 3 h); of b, c, d only d fits in 150 bytes
    assert [v.lstrip("0") for v in victims] == ["a", "b", "c"]


def test_retention_refuses_bad_arguments() -> None:
    blocks = [two_hour("a", 0)]
    with pytest.raises(InvalidInput, match="size"):
        retention_victims(blocks, {}, now_ms=0, max_age_ms=None, max_bytes=10)
    with pytest.raises(InvalidInput):
        retention_victims(blocks, {}, now_ms=0, max_age_ms=-1, max_bytes=None)
    with pytest.raises(InvalidInput):
        retention_victims(blocks, {}, now_ms=0, max_age_ms=None, max_bytes=-1)
