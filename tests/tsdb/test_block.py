"""On-disk blocks: what a reader gets back, and what damage and crashes leave.

Selections are checked against a brute-force filter over the series that
were written; damage tests flip or cut bytes of each file and expect
:class:`Corruption` naming it; the crash test SIGKILLs a writer.
"""

from __future__ import annotations

import json
import os
import random
import signal
import struct
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trusswork.core.checksum import crc32c
from trusswork.core.errors import Corruption, InvalidInput, NotFound
from trusswork.tsdb._block import (
    Block,
    BlockMeta,
    cleanup_tmp,
    delete_block,
    write_block,
)
from trusswork.tsdb._series import STALE_NAN, Labels, Matcher, MatchOp, SeriesData, labels_of

Series = dict[Labels, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]]

NAMES = ["__name__", "job", "instance", "zone", "é"]
VALUES = ["a", "b", "ab", "up", "x-1", "ü", "日本"]
META_KEYS = [
    "version",
    "id",
    "mint",
    "maxt",
    "num_series",
    "num_samples",
    "num_chunks",
    "resolution",
    "level",
    "sources",
]
REGEXES = ["a.*", "b|up", ".*", ".+", "", "x-[0-9]", "[^a]+"]


def bits(values: npt.NDArray[np.float64]) -> list[int]:
    """Values as bit patterns: compares NaN payloads (the stale marker) exactly."""
    return [int(x) for x in np.asarray(values, dtype=np.float64).view(np.uint64)]


Plain = list[tuple[Labels, list[int], list[int]]]


def brute_select(series: Series, matchers: list[Matcher], mint: int, maxt: int) -> Plain:
    out = []
    for labels in sorted(series):
        as_dict = dict(labels)
        if not all(m.matches(as_dict.get(m.name, "")) for m in matchers):
            continue
        ts, values = series[labels]
        keep = (ts >= mint) & (ts <= maxt)
        if keep.any():
            out.append((labels, ts[keep].tolist(), bits(values[keep])))
    return out


def as_plain(result: list[SeriesData]) -> Plain:
    return [(s.labels, s.ts.tolist(), bits(s.values)) for s in result]


def all_series(block: Block) -> Series:
    return {labels: (ts, values) for labels, ts, values in block.series()}


# ------------------------------------------------------------------ strategies

labels_strategy = st.dictionaries(
    st.sampled_from(NAMES), st.sampled_from(VALUES), min_size=1, max_size=4
).map(labels_of)

value_strategy = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.just(STALE_NAN),
    st.integers(-1000, 1000).map(float),
)


@st.composite
def samples_strategy(draw: st.DrawFn) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    ts = sorted(draw(st.sets(st.integers(-50_000, 50_000), max_size=40)))
    values = draw(st.lists(value_strategy, min_size=len(ts), max_size=len(ts)))
    return np.array(ts, dtype=np.int64), np.array(values, dtype=np.float64)


series_strategy = st.dictionaries(labels_strategy, samples_strategy(), max_size=12)


@st.composite
def matcher_strategy(draw: st.DrawFn) -> Matcher:
    name = draw(st.sampled_from([*NAMES, "missing"]))
    op: MatchOp = draw(st.sampled_from(["=", "!=", "=~", "!~"]))
    pool = REGEXES if op in ("=~", "!~") else [*VALUES, "", "zzz"]
    return Matcher(name, op, draw(st.sampled_from(pool)))


def write(
    parent: Path, series: Series, *, mint: int = -50_000, maxt: int = 50_000, chunk_samples: int = 8
) -> BlockMeta:
    items = list(series.items())
    random.Random(len(items)).shuffle(items)  # the writer must sort them
    return write_block(
        parent,
        [(labels, ts, values) for labels, (ts, values) in items],
        mint=mint,
        maxt=maxt,
        chunk_samples=chunk_samples,
    )


# ------------------------------------------------------------------ round trip


@settings(max_examples=60, deadline=None)
@given(series=series_strategy, chunk_samples=st.sampled_from([1, 3, 7, 1024]))
def test_every_sample_reads_back_bit_exact_in_label_order(
    series: Series, chunk_samples: int
) -> None:
    with tempfile.TemporaryDirectory() as parent:
        meta = write(Path(parent), series, chunk_samples=chunk_samples)
        nonempty = {labels: s for labels, s in series.items() if len(s[0])}
        assert meta.num_series == len(nonempty)
        assert meta.num_samples == sum(len(ts) for ts, _ in nonempty.values())
        with Block.open(Path(parent) / meta.id) as block:
            assert block.meta == meta
            got = [(labels, ts.tolist(), bits(values)) for labels, ts, values in block.series()]
            want = [
                (labels, nonempty[labels][0].tolist(), bits(nonempty[labels][1]))
                for labels in sorted(nonempty)
            ]
            assert got == want


# A fixed block that the matcher properties query: 300 random series over a
# few label names, cut into small chunks so ranges cut through chunks.


def _fixed_series() -> Series:
    rng = np.random.default_rng(7)
    out: Series = {}
    while len(out) < 300:
        names = rng.choice(NAMES, size=int(rng.integers(1, 5)), replace=False)
        labels = labels_of({str(n): str(rng.choice(VALUES)) for n in names})
        start = int(rng.integers(-50_000, 40_000))
        ts = np.unique(start + rng.integers(0, 10_000, size=int(rng.integers(1, 60))))
        values = rng.normal(size=len(ts))
        values[rng.random(len(ts)) < 0.05] = STALE_NAN
        out[labels] = (ts.astype(np.int64), values)
    return out


FIXED = _fixed_series()


@pytest.fixture(scope="module")
def fixed_block(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Block]:
    parent = tmp_path_factory.mktemp("blocks")
    meta = write(parent, FIXED, chunk_samples=8)
    with Block.open(parent / meta.id) as block:
        yield block


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    matchers=st.lists(matcher_strategy(), max_size=3),
    bounds=st.tuples(st.integers(-60_000, 60_000), st.integers(-60_000, 60_000)).map(sorted),
)
def test_select_equals_brute_force_filter(
    fixed_block: Block, matchers: list[Matcher], bounds: list[int]
) -> None:
    mint, maxt = bounds
    assert as_plain(fixed_block.select(matchers, mint, maxt)) == brute_select(
        FIXED, matchers, mint, maxt
    )


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    matchers=st.lists(matcher_strategy(), max_size=2),
    name=st.sampled_from([*NAMES, "missing"]),
    bounds=st.one_of(
        st.none(),
        st.tuples(st.integers(-60_000, 60_000), st.integers(-60_000, 60_000)).map(sorted),
    ),
)
def test_label_names_and_values_equal_brute_force(
    fixed_block: Block, matchers: list[Matcher], name: str, bounds: list[int] | None
) -> None:
    mint, maxt = bounds if bounds else (None, None)
    hits = brute_select(
        FIXED, matchers, -(10**12) if mint is None else mint, 10**12 if maxt is None else maxt
    )
    names = sorted({n for labels, _, _ in hits for n, _ in labels})
    values = sorted({v for labels, _, _ in hits for n, v in labels if n == name})
    assert fixed_block.label_names(matchers, mint, maxt) == names
    assert fixed_block.label_values(name, matchers, mint, maxt) == values


def test_empty_matching_matchers_include_series_without_the_label(fixed_block: Block) -> None:
    without_zone = [
        s for s in fixed_block.select([], -(10**9), 10**9) if "zone" not in dict(s.labels)
    ]
    assert without_zone
    got = fixed_block.select([Matcher("zone", "=", "")], -(10**9), 10**9)
    assert [s.labels for s in got] == [s.labels for s in without_zone]
    assert len(fixed_block.select([Matcher("zone", "!~", ".+")], -(10**9), 10**9)) == len(got)


def test_time_range_trims_inside_chunks_and_drops_series_without_samples(tmp_path: Path) -> None:
    ts = np.arange(0, 1000, 10, dtype=np.int64)
    series = {
        labels_of({"__name__": "a"}): (ts, ts.astype(np.float64)),
        labels_of({"__name__": "b"}): (ts[:5], ts[:5].astype(np.float64)),
    }
    meta = write(tmp_path, series, chunk_samples=7, mint=0, maxt=999)
    with Block.open(tmp_path / meta.id) as block:
        (only_a,) = block.select([], 55, 125)
        assert only_a.labels == labels_of({"__name__": "a"})
        assert only_a.ts.tolist() == list(range(60, 121, 10))
        assert only_a.values.tolist() == [float(t) for t in range(60, 121, 10)]
        assert [s.ts.tolist() for s in block.select([], 990, 5000)] == [[990]]
        assert block.select([], 991, 5000) == []
        assert block.select([], 300, 200) == []
        assert [len(s.ts) for s in block.select([], -5, 40)] == [5, 5]
        assert block.label_names([], 100, 200) == ["__name__"]
        assert block.label_values("__name__", [], 100, 200) == ["a"]
        assert block.label_values("__name__", [], 5, 9) == []


def test_metadata_counts_and_cardinality(tmp_path: Path) -> None:
    ts = np.arange(0, 100, dtype=np.int64)
    series = {labels_of({"__name__": "up", "job": j}): (ts, np.ones(100)) for j in ("a", "b", "c")}
    series[labels_of({"__name__": "down"})] = (ts[:10], np.ones(10))
    series[labels_of({"job": "nameless"})] = (ts[:1], np.ones(1))
    meta = write(tmp_path, series, chunk_samples=30, mint=0, maxt=99)
    assert (meta.num_series, meta.num_samples, meta.num_chunks) == (5, 311, 14)
    assert (meta.level, meta.resolution, meta.sources) == (1, 0, (meta.id,))
    with Block.open(tmp_path / meta.id) as block:
        assert block.series_count_by_metric() == {"down": 1, "up": 3}
        files = ("chunks", "index", "meta.json")
        assert block.size_bytes() == sum((tmp_path / meta.id / f).stat().st_size for f in files)
        assert block.label_values("job") == ["a", "b", "c", "nameless"]


def test_ids_sort_by_creation_and_name_the_directory(tmp_path: Path) -> None:
    metas = [write_block(tmp_path, [], mint=0, maxt=1) for _ in range(20)]
    ids = [m.id for m in metas]
    assert ids == sorted(ids) and len(set(ids)) == 20
    assert all(len(i) == 26 for i in ids)
    assert sorted(p.name for p in tmp_path.iterdir()) == ids
    with Block.open(tmp_path / ids[0]) as empty:
        assert empty.select([], 0, 1) == [] and empty.label_names() == []


def test_ids_stay_above_existing_blocks_when_the_clock_is_behind(tmp_path: Path) -> None:
    digits = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    now = write_block(tmp_path / "other", [], mint=0, maxt=1).id
    value = sum(digits.index(c) << (5 * i) for i, c in enumerate(reversed(now)))
    value += 3_600_000 << 80  # an hour ahead of this process's clock
    future = "".join(digits[(value >> (5 * i)) & 31] for i in range(25, -1, -1))
    (tmp_path / future).mkdir()
    meta = write_block(tmp_path, [], mint=0, maxt=1)
    assert meta.id > future and len(meta.id) == 26
    assert write_block(tmp_path, [], mint=0, maxt=1).id > meta.id


def test_raw_block_has_no_rollups(tmp_path: Path) -> None:
    meta = write(tmp_path, {labels_of({"a": "b"}): (np.array([1]), np.array([1.0]))})
    with Block.open(tmp_path / meta.id) as block, pytest.raises(InvalidInput, match="raw"):
        block.select_rollup([], 0, 10, "max")


def test_closed_block_refuses_queries(tmp_path: Path) -> None:
    meta = write(tmp_path, {labels_of({"a": "b"}): (np.array([1]), np.array([1.0]))})
    block = Block.open(tmp_path / meta.id)
    block.close()
    with pytest.raises(InvalidInput, match="closed"):
        block.select([], 0, 10)


@pytest.mark.parametrize(
    ("series", "message"),
    [
        ([((("b", "1"), ("a", "1")), [1], [1.0])], "sorted"),
        ([((("a", ""),), [1], [1.0])], "non-empty"),
        ([((("a", "1"),), [2, 1], [1.0, 2.0])], "ascending"),
        ([((("a", "1"),), [1, 1], [1.0, 2.0])], "ascending"),
        ([((("a", "1"),), [1, 2], [1.0])], "same length"),
        ([((("a", "1"),), [1.5], [1.0])], "integers"),
        ([((("a", "1"),), [1], ["one"])], "floats"),
        ([((("a", "1"),), [200], [1.0])], "outside"),
        ([((("a", "1"),), [1], [1.0]), ((("a", "1"),), [2], [1.0])], "twice"),
    ],
)
def test_bad_series_are_refused_and_leave_nothing(
    tmp_path: Path, series: list[tuple[Labels, list[float], list[float]]], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        write_block(tmp_path, series, mint=0, maxt=100)
    assert list(tmp_path.iterdir()) == []


def test_bad_options_are_refused(tmp_path: Path) -> None:
    for options in (
        {"mint": 5, "maxt": 4},
        {"mint": 0, "maxt": 4, "chunk_samples": 0},
        {"mint": 0, "maxt": 4, "level": 0},
        {"mint": 0, "maxt": 4, "resolution": 300_000},
        {"mint": 0, "maxt": 4, "sources": ("not-an-id",)},
    ):
        with pytest.raises(InvalidInput):
            write_block(tmp_path, [], **options)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ damage


def small_block(parent: Path) -> BlockMeta:
    ts = np.arange(0, 40, 3, dtype=np.int64)
    series = {labels_of({"__name__": "m", "k": str(i)}): (ts, np.sin(ts + i)) for i in range(3)}
    return write(parent, series, chunk_samples=5, mint=0, maxt=100)


def read_everything(path: Path) -> None:
    with Block.open(path) as block:
        list(block.series())
        block.select([Matcher("k", "=", "1")], 0, 100)


@pytest.mark.parametrize("name", ["index", "chunks"])
def test_every_flipped_byte_is_reported_as_corruption_naming_the_file(
    tmp_path: Path, name: str
) -> None:
    meta = small_block(tmp_path / "a")
    other = small_block(tmp_path / "a")
    path = tmp_path / "a" / meta.id / name
    original = path.read_bytes()
    for position in range(len(original)):
        damaged = bytearray(original)
        damaged[position] ^= 0x5A
        path.write_bytes(bytes(damaged))
        with pytest.raises(Corruption) as caught:
            read_everything(path.parent)
        assert str(path) in str(caught.value) and "offset" in str(caught.value)
    path.write_bytes(original)
    read_everything(path.parent)
    read_everything(tmp_path / "a" / other.id)


@pytest.mark.parametrize("name", ["index", "chunks"])
def test_truncated_files_are_corruption_and_neighbours_still_open(
    tmp_path: Path, name: str
) -> None:
    meta, other = small_block(tmp_path), small_block(tmp_path)
    path = tmp_path / meta.id / name
    original = path.read_bytes()
    for length in (0, 7, len(original) // 2, len(original) - 1):
        path.write_bytes(original[:length])
        with pytest.raises(Corruption, match=name):
            read_everything(path.parent)
    read_everything(tmp_path / other.id)


@pytest.mark.parametrize(
    "damage",
    [
        lambda p: p.unlink(),
        lambda p: p.write_text("{not json"),
        lambda p: p.write_text("[]"),
        lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "version": 9})),
        lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "num_series": 1})),
        lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "id": "0" * 26})),
        lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "mint": "0"})),
    ],
)
def test_damaged_meta_json_is_corruption_naming_it(
    tmp_path: Path, damage: Callable[[Path], object]
) -> None:
    meta, other = small_block(tmp_path), small_block(tmp_path)
    damage(tmp_path / meta.id / "meta.json")
    with pytest.raises(Corruption, match=r"meta\.json"):
        Block.open(tmp_path / meta.id)
    read_everything(tmp_path / other.id)


@pytest.mark.parametrize("name", ["index", "chunks"])
def test_missing_data_file_is_corruption_naming_it(tmp_path: Path, name: str) -> None:
    meta = small_block(tmp_path)
    (tmp_path / meta.id / name).unlink()
    with pytest.raises(Corruption, match=name):
        Block.open(tmp_path / meta.id)


def test_opening_a_missing_block_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        Block.open(tmp_path / "01ARZ3NDEKTSV4RRFFQ69G5FAV")


# ------------------------------------------------------------------ atomicity


def test_failed_write_leaves_no_block_and_no_tmp(tmp_path: Path) -> None:
    def series() -> Iterator[tuple[Labels, list[int], list[float]]]:
        yield labels_of({"a": "1"}), [1], [1.0]
        raise OSError("disk on fire")

    with pytest.raises(OSError, match="fire"):
        write_block(tmp_path, series(), mint=0, maxt=10)
    assert list(tmp_path.iterdir()) == []


def test_cleanup_removes_only_leftover_tmp_dirs(tmp_path: Path) -> None:
    meta = small_block(tmp_path)
    leftover = tmp_path / "01ARZ3NDEKTSV4RRFFQ69G5FAV.tmp"
    leftover.mkdir()
    (leftover / "chunks").write_bytes(b"TWCK partial")
    unrelated = tmp_path / "notes.tmp"
    unrelated.mkdir()
    assert cleanup_tmp(tmp_path) == [leftover]
    assert sorted(p.name for p in tmp_path.iterdir()) == [meta.id, "notes.tmp"]
    read_everything(tmp_path / meta.id)
    assert cleanup_tmp(tmp_path / "absent") == []


def test_delete_block_removes_it_whole(tmp_path: Path) -> None:
    meta, other = small_block(tmp_path), small_block(tmp_path)
    delete_block(tmp_path / meta.id)
    assert [p.name for p in tmp_path.iterdir()] == [other.id]
    with pytest.raises(NotFound):
        delete_block(tmp_path / meta.id)
    with pytest.raises(InvalidInput):
        delete_block(tmp_path)


WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import numpy as np
    from trusswork.tsdb._block import write_block

    def series():
        for i in range(1000):
            if i == 50:
                print("writing", flush=True)
                time.sleep(60)
            yield (("a", str(i)),), np.arange(10), np.ones(10)

    write_block(Path(sys.argv[1]), series(), mint=0, maxt=10)
    """
)


def test_writer_killed_mid_block_leaves_only_a_tmp_dir(tmp_path: Path) -> None:
    before = small_block(tmp_path)
    with subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None and proc.stdout.readline() == "writing\n"
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 2 and names[0] == before.id and names[1].endswith(".tmp")
    assert [p.name for p in cleanup_tmp(tmp_path)] == [names[1]]
    assert [p.name for p in tmp_path.iterdir()] == [before.id]
    read_everything(tmp_path / before.id)


# ------------------------------------------------------------------ fuzzing

TOC = struct.Struct("<QQIQQIQQIQ")


def reseal(index: bytearray) -> None:
    """Recompute every section CRC and the table of contents' CRC in place."""
    at = len(index) - TOC.size - 8
    toc = list(TOC.unpack_from(index, at))
    for i in range(3):
        start, length = toc[3 * i], toc[3 * i + 1]
        toc[3 * i + 2] = crc32c(bytes(index[start : start + length]))
    TOC.pack_into(index, at, *toc)
    struct.pack_into("<I", index, at + TOC.size, crc32c(bytes(index[at : at + TOC.size])))


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    parent = tmp_path_factory.mktemp("fuzz")
    path = parent / small_block(parent).id
    return path, (path / "index").read_bytes()


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4)
)
def test_resealed_damage_inside_index_sections_is_corruption_or_harmless(
    pristine: tuple[Path, bytes], edits: list[tuple[int, int]]
) -> None:
    # Damage that checksums cannot see (a buggy writer, a crafted file) must
    # still end in Corruption or a readable block, never another exception.
    path, original = pristine
    damaged = bytearray(original)
    body = len(original) - TOC.size - 8 - 8
    for position, value in edits:
        damaged[8 + position % body] = value
    reseal(damaged)
    (path / "index").write_bytes(bytes(damaged))
    try:
        read_everything(path)
    except Corruption as exc:
        assert str(path / "index") in str(exc) or "chunks" in str(exc) or "meta" in str(exc)
    finally:
        (path / "index").write_bytes(original)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    content=st.one_of(
        st.binary(max_size=200),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=5),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.sampled_from(META_KEYS), inner, max_size=10)
            ),
            max_leaves=12,
        ).map(lambda value: json.dumps(value).encode()),
    )
)
def test_any_meta_json_is_corruption_or_a_valid_block(
    pristine: tuple[Path, bytes], content: bytes
) -> None:
    path, _ = pristine
    meta_path = path / "meta.json"
    original = meta_path.read_bytes()
    meta_path.write_bytes(content)
    try:
        with pytest.raises(Corruption, match=r"meta\.json"):
            Block.open(path)
    finally:
        meta_path.write_bytes(original)
