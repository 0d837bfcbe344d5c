"""Index segments against a brute-force oracle: queries, BM25, merges, damage."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trusswork.core.errors import Conflict, Corruption, InvalidInput, NotFound
from trusswork.search._directory import Index, list_segments
from trusswork.search._index import IndexWriter, SegmentMeta
from trusswork.search._segment import Segment, merge_segments, plan_merges
from trusswork.search.postings import difference, intersect, union

WORDS = ["get", "post", "err", "ok", "api", "db", "10.0.0.1"]
Doc = tuple[int, list[str], dict[str, str | int | float]]

words = st.lists(st.sampled_from(WORDS), max_size=8)
fields: st.SearchStrategy[dict[str, str | int | float]] = st.fixed_dictionaries(
    {},
    optional={
        "status": st.sampled_from([200, 404, 500]),
        "host": st.sampled_from(["a", "b", "c"]),
        "timestamp": st.floats(0, 100, allow_nan=False),
    },
)


@st.composite
def corpora(draw: st.DrawFn, min_size: int = 1) -> list[Doc]:
    ids = draw(st.lists(st.integers(0, 500), min_size=min_size, max_size=25, unique=True))
    return [(i, draw(words), draw(fields)) for i in ids]


def text_of(tokens: list[str]) -> str:
    # Mixed case and punctuation: the index must still see exactly ``tokens``.
    return " ".join(t.upper() if i % 3 == 1 else t for i, t in enumerate(tokens)) + ";"


def build(directory: Path, docs: list[Doc]) -> SegmentMeta:
    writer = IndexWriter()
    for doc_id, tokens, doc_fields in docs:
        writer.add(doc_id, text_of(tokens), doc_fields)
    return writer.write_segment(directory)


def ids(values: object) -> list[int]:
    return sorted(int(v) for v in np.asarray(values).tolist())


def oracle_phrase(docs: list[Doc], phrase: list[str]) -> list[int]:
    m = len(phrase)
    return sorted(
        i for i, toks, _ in docs if any(toks[p : p + m] == phrase for p in range(len(toks)))
    )


@pytest.fixture
def directory() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


@settings(max_examples=40, deadline=None)
@given(corpora(), st.lists(st.sampled_from(WORDS), min_size=1, max_size=3))
def test_queries_match_brute_force(docs: list[Doc], phrase: list[str]) -> None:
    with tempfile.TemporaryDirectory() as name, Segment.open(build(Path(name), docs).path) as seg:
        assert ids(seg.all()) == sorted(d[0] for d in docs)
        for word in WORDS:
            expected = sorted(i for i, toks, _ in docs if word in toks)
            assert ids(seg.term(word)) == expected
            assert seg.doc_freq(word) == len(expected)
        assert ids(seg.phrase(phrase)) == oracle_phrase(docs, phrase)
        for status in (200, 404, 500):
            expected = sorted(i for i, _, f in docs if f.get("status") == status)
            assert ids(seg.field("status", status)) == expected
        assert ids(seg.field("host", "b")) == sorted(i for i, _, f in docs if f.get("host") == "b")
        in_range = sorted(
            i for i, _, f in docs if "timestamp" in f and 20 <= float(f["timestamp"]) <= 60
        )
        assert ids(seg.range("timestamp", 20, 60)) == in_range
        # Boolean combinations through the posting-list operations.
        both = intersect(seg.term("get"), seg.term("err"))
        assert ids(difference(both, seg.field("host", "a"))) == sorted(
            i for i, toks, f in docs if "get" in toks and "err" in toks and f.get("host") != "a"
        )
        assert ids(union(seg.term("db"), seg.range("status", 400, 599))) == sorted(
            i for i, toks, f in docs if "db" in toks or int(f.get("status", 0)) >= 400
        )
        order = [d[0] for d in reversed(docs)]
        assert seg.documents(order) == [text_of(t) for _, t, _ in reversed(docs)]


def python_bm25(
    docs: list[Doc], query: list[str], k1: float = 1.2, b: float = 0.75
) -> dict[int, float]:
    n = len(docs)
    avgdl = sum(len(t) for _, t, _ in docs) / n
    scores: dict[int, float] = {}
    for word in query:
        df = sum(1 for _, t, _ in docs if word in t)
        if not df:
            continue
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        for i, toks, _ in docs:
            tf = Counter(toks)[word]
            if tf:
                norm = k1 * (1 - b + b * len(toks) / avgdl) if avgdl else k1
                scores[i] = scores.get(i, 0.0) + idf * tf * (k1 + 1) / (tf + norm)
    return scores


@settings(max_examples=40, deadline=None)
@given(corpora(), st.lists(st.sampled_from(WORDS), min_size=1, max_size=3), st.integers(1, 10))
def test_bm25_matches_python_bm25(docs: list[Doc], query: list[str], k: int) -> None:
    expected = python_bm25(docs, query)
    best = sorted(expected.values(), reverse=True)[:k]
    with tempfile.TemporaryDirectory() as name, Segment.open(build(Path(name), docs).path) as seg:
        found, scores = seg.bm25(query, k)
    assert len(found) == len(best)
    assert scores.tolist() == pytest.approx(best)
    for doc_id, score in zip(found.tolist(), scores.tolist(), strict=True):
        assert expected[doc_id] == pytest.approx(score)


@settings(max_examples=20, deadline=None)
@given(corpora(), corpora(), st.sampled_from(WORDS))
def test_merge_equals_union(left: list[Doc], right: list[Doc], word: str) -> None:
    taken = {d[0] for d in left}
    right = [(i + 1000, t, f) for i, t, f in right if i + 1000 not in taken]
    with tempfile.TemporaryDirectory() as name:
        root = Path(name)
        with (
            Segment.open(build(root, left).path) as a,
            Segment.open(build(root, right).path) as b,
        ):
            meta = merge_segments([a, b], root)
            assert meta.merged_from == (a.meta.segment_id, b.meta.segment_id)
            with Segment.open(meta.path) as merged:
                assert meta.doc_count == len(left) + len(right)
                assert ids(merged.term(word)) == ids(union(a.term(word), b.term(word)))
                assert ids(merged.phrase([word, "ok"])) == ids(
                    union(a.phrase([word, "ok"]), b.phrase([word, "ok"]))
                )
                assert ids(merged.field("host", "a")) == ids(
                    union(a.field("host", "a"), b.field("host", "a"))
                )
                assert ids(merged.range("status", 300, 500)) == ids(
                    union(a.range("status", 300, 500), b.range("status", 300, 500))
                )
                everyone = [d[0] for d in left + right]
                assert merged.documents(everyone) == [text_of(d[1]) for d in left + right]


def test_merge_refuses_shared_ids(directory: Path) -> None:
    docs: list[Doc] = [(1, ["get"], {})]
    with (
        Segment.open(build(directory, docs).path) as a,
        Segment.open(build(directory, docs).path) as b,
        pytest.raises(Conflict),
    ):
        merge_segments([a, b], directory)


def test_meta_summarises_fields_and_time(directory: Path) -> None:
    meta = build(
        directory,
        [
            (5, ["get"], {"timestamp": 10.0, "host": "a"}),
            (9, ["ok"], {"timestamp": 3, "status": 500}),
        ],
    )
    assert (meta.doc_count, meta.min_doc_id, meta.max_doc_id) == (2, 5, 9)
    assert meta.time_range == (3.0, 10.0)
    assert meta.keyword_fields == {"host": 1, "status": 1, "timestamp": 1}
    assert meta.numeric_fields["status"] == {"count": 1, "min": 500.0, "max": 500.0}


def test_long_texts_span_compressed_blocks(directory: Path) -> None:
    texts = [f"line {i} " + "x" * 50_000 + f" end{i}" for i in range(5)]
    writer = IndexWriter(first_doc_id=100)
    assert writer.add_many(texts).tolist() == [100, 101, 102, 103, 104]
    with Segment.open(writer.write_segment(directory).path) as seg:
        assert seg.documents([104, 100, 102]) == [texts[4], texts[0], texts[2]]
        assert ids(seg.term("end3")) == [103]
        with pytest.raises(NotFound):
            seg.documents([99])


def test_writer_rejects_bad_input(directory: Path) -> None:
    writer = IndexWriter()
    with pytest.raises(InvalidInput):
        writer.write_segment(directory)
    writer.add(3, "x")
    with pytest.raises(Conflict):
        writer.add(3, "y")
    with pytest.raises(InvalidInput):
        writer.add(None, "z", {"flag": True})
    with pytest.raises(InvalidInput):
        writer.add(None, "z", {"a=b": "c"})
    with pytest.raises(InvalidInput):
        writer.add(2**32, "z")
    assert writer.add(None, "next") == 4


def test_the_tokenizer_keeps_addresses_uuids_and_decimals() -> None:
    from trusswork.search import tokenize

    text = "GET /api?id=550E8400-E29B-41D4-A716-446655440000 from 10.0.0.12, 1.2.3 took 2.5 ms Été"
    assert tokenize(text) == [
        "get", "api", "id", "550e8400-e29b-41d4-a716-446655440000",
        "from", "10.0.0.12", "1", "2", "3", "took", "2.5", "ms", "Été",
    ]  # fmt: skip


def test_leftover_tmp_is_ignored(directory: Path) -> None:
    build(directory, [(1, ["get"], {})])
    partial = directory / "seg-crashed.tmp"
    partial.mkdir()
    (partial / "terms.tw").write_bytes(b"half written")
    with Index(directory) as index:
        assert [s.meta.doc_count for s in index.segments] == [1]
        assert ids(index.term("get")) == [1]


FILES = ["terms.tw", "postings.tw", "fields.tw", "numeric.tw", "docs.tw", "meta.json"]


@pytest.mark.parametrize("name", FILES)
def test_damage_raises_corruption(directory: Path, name: str) -> None:
    docs: list[Doc] = [
        (i, ["get", "err", "db"][: i % 3 + 1], {"status": 200 + i}) for i in range(30)
    ]
    healthy = build(directory, docs)
    damaged = build(directory, docs)
    path = damaged.path / name
    original = path.read_bytes()
    for offset in sorted({0, 13, len(original) // 2, len(original) - 1}):
        broken = bytearray(original)
        broken[offset] ^= 0x40
        path.write_bytes(bytes(broken))
        with pytest.raises(Corruption, match=name):
            Segment.open(damaged.path)
    path.write_bytes(original[:-9])
    with pytest.raises(Corruption, match=name):
        Segment.open(damaged.path)
    with Segment.open(healthy.path) as seg:
        assert ids(seg.field("status", 205)) == [5]


def test_missing_segment_is_not_found(directory: Path) -> None:
    with pytest.raises(NotFound):
        Segment.open(directory / "nope")


def meta(segment_id: str, docs: int) -> SegmentMeta:
    return SegmentMeta(segment_id, Path(segment_id), docs, 0, docs, 1, docs)


def test_plan_merges_groups_similar_sizes() -> None:
    metas = [meta(f"s{i}", 2 + i) for i in range(7)] + [meta(f"b{i}", 500) for i in range(3)]
    groups = plan_merges(metas, merge_factor=3)
    assert [[m.segment_id for m in g] for g in groups] == [
        ["s0", "s1", "s2"],
        ["s3", "s4", "s5"],
        ["b0", "b1", "b2"],
    ]
    assert plan_merges(metas, merge_factor=3, max_merged_docs=1000) == groups[:2]
    with pytest.raises(InvalidInput):
        plan_merges(metas, merge_factor=1)


def test_index_flushes_queries_and_merges(directory: Path) -> None:
    with Index(directory) as index:
        for batch in range(4):
            index.add_many(
                [f"batch {batch} line {i} {'error' if i % 2 else 'ok'}" for i in range(5)],
                [{"status": 500 if i % 2 else 200, "timestamp": batch * 10 + i} for i in range(5)],
            )
            index.flush()
        before = ids(index.term("error")), index.bm25(["error", "batch"], 6)
        assert index.merge(merge_factor=4) == 1
        assert len(index.segments) == 1
        assert ids(index.term("error")) == before[0]
        assert ids(index.field("status", 500)) == before[0]
        after = index.bm25(["error", "batch"], 6)
        assert after[0].tolist() == before[1][0].tolist()
        assert after[1] == pytest.approx(before[1][1])
        assert ids(index.phrase(["line", "3", "error"])) == [3, 8, 13, 18]
        assert index.documents([19]) == ["batch 3 line 4 ok"]
    assert len(list_segments(directory)) == 1
    with Index(directory) as reopened:
        assert reopened.add("new") == 20


def test_interrupted_merge_hides_its_inputs(directory: Path) -> None:
    a = build(directory, [(1, ["get"], {})])
    b = build(directory, [(2, ["get"], {})])
    with Segment.open(a.path) as sa, Segment.open(b.path) as sb:
        merge_segments([sa, sb], directory)
    # Crash before the inputs were deleted: both generations are on disk.
    assert len(os.listdir(directory)) == 3
    with Index(directory) as index:
        assert len(index.segments) == 1
        assert ids(index.term("get")) == [1, 2]


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(FILES), st.binary(max_size=300))
def test_arbitrary_file_bytes_raise_corruption(name: str, junk: bytes) -> None:
    with tempfile.TemporaryDirectory() as root:
        meta = build(Path(root), [(1, ["get", "ok"], {"status": 200, "timestamp": 1.0})])
        (meta.path / name).write_bytes(junk)
        with pytest.raises(Corruption):
            Segment.open(meta.path)


def test_unusual_text_round_trips(directory: Path) -> None:
    texts = ["", "Ünïcode wörds ÄND MORE", "tab\tand\nnewline"]
    writer = IndexWriter()
    writer.add_many(texts)
    with pytest.raises(InvalidInput):
        writer.add(None, "lone \ud800 surrogate")
    with pytest.raises(InvalidInput):
        writer.add(None, "fine", {"host": "\udfff"})
    with Segment.open(writer.write_segment(directory).path) as seg:
        assert seg.documents([0, 1, 2]) == texts
        # Only ASCII letters fold, in the text and in the query alike.
        assert ids(seg.term("WöRDS")) == [1]
        assert ids(seg.term("ÄND")) == [1]
        assert ids(seg.term("änd")) == []
        assert ids(seg.phrase(["and", "newline"])) == [2]
        assert ids(seg.term("\ud800")) == []


def columns_of(
    docs: list[Doc],
) -> tuple[list[str], dict[str, list[str | None]], dict[str, npt.NDArray[np.float64]], list[int]]:
    """The documents as add_columns takes them: what add() makes of each field."""
    names = sorted({name for _, _, doc_fields in docs for name in doc_fields})
    keywords: dict[str, list[str | None]] = {}
    numbers: dict[str, npt.NDArray[np.float64]] = {}
    for name in names:
        values = [doc_fields.get(name) for _, _, doc_fields in docs]
        if any(isinstance(v, str | int) for v in values):
            keywords[name] = [str(v) if isinstance(v, str | int) else None for v in values]
        if any(isinstance(v, int | float) and not isinstance(v, str) for v in values):
            numbers[name] = np.array(
                [float(v) if isinstance(v, int | float) else math.nan for v in values]
            )
    return [text_of(tokens) for _, tokens, _ in docs], keywords, numbers, [d[0] for d in docs]


def segment_files(meta: SegmentMeta) -> dict[str, bytes]:
    """Every file of a segment, with the meta's random segment id and checksum left out."""
    files = {p.name: p.read_bytes() for p in meta.path.iterdir()}
    body = json.loads(files.pop("meta.json"))
    del body["segment_id"], body["checksum"]
    files["meta.json"] = json.dumps(body, sort_keys=True).encode()
    return files


@given(corpora(), st.integers(0, 25), st.booleans())
@settings(max_examples=60, deadline=None)
def test_add_columns_writes_the_bytes_add_writes(
    docs: list[Doc], split: int, explicit_ids: bool
) -> None:
    # The first ``split`` documents go through add() (ids as given), the rest
    # through add_columns, given ids or numbered on from the largest id.
    head, tail = docs[:split], docs[split:]
    with tempfile.TemporaryDirectory() as name:
        one_by_one = IndexWriter()
        for doc_id, tokens, doc_fields in head:
            one_by_one.add(doc_id, text_of(tokens), doc_fields)
        by_columns = IndexWriter()
        for doc_id, tokens, doc_fields in head:
            by_columns.add(doc_id, text_of(tokens), doc_fields)
        texts, keywords, numbers, tail_ids = columns_of(tail)
        got = by_columns.add_columns(
            texts, keywords=keywords, numbers=numbers, doc_ids=tail_ids if explicit_ids else None
        )
        for doc_id, tokens, doc_fields in tail:
            one_by_one.add(doc_id if explicit_ids else None, text_of(tokens), doc_fields)
        expected_ids = tail_ids if explicit_ids else list(range(len(tail)))
        if not explicit_ids and head:
            expected_ids = [max(d[0] for d in head) + 1 + i for i in range(len(tail))]
        assert got.dtype == np.uint32 and got.tolist() == expected_ids
        if not docs:
            return
        left = one_by_one.write_segment(Path(name) / "add")
        right = by_columns.write_segment(Path(name) / "columns")
        assert segment_files(right) == segment_files(left)


def test_add_columns_of_log_lines_answers_queries(directory: Path) -> None:
    writer = IndexWriter(first_doc_id=10)
    texts = [f"GET /api/{i % 3} {200 if i % 4 else 500} from 10.0.0.{i % 5}" for i in range(40)]
    statuses = [200 if i % 4 else 500 for i in range(40)]
    ids_added = writer.add_columns(
        texts,
        keywords={"status": [str(s) for s in statuses], "path": [None] * 39 + ["/x"]},
        numbers={"status": np.array(statuses), "ms": np.arange(40) / 2},
    )
    assert ids_added.tolist() == list(range(10, 50))
    with Segment.open(writer.write_segment(directory).path) as segment:
        assert ids(segment.field("status", "500")) == [10 + i for i in range(0, 40, 4)]
        assert ids(segment.field("path", "/x")) == [49]
        assert ids(segment.term("10.0.0.3")) == [10 + i for i in range(3, 40, 5)]
        assert ids(segment.range("ms", 0, 1)) == [10, 11, 12]
        assert segment.documents([12]) == [texts[2]]


def test_add_columns_rejects_bad_batches_and_changes_nothing() -> None:
    writer = IndexWriter()
    writer.add(5, "five")
    bad_calls: list[tuple[type[Exception], dict[str, object]]] = [
        (InvalidInput, {"keywords": {"a": ["x"]}}),
        (InvalidInput, {"keywords": {"a=b": ["x", "y"]}}),
        (InvalidInput, {"keywords": {"": ["x", "y"]}}),
        (InvalidInput, {"keywords": {"a": ["x", 3]}}),
        (InvalidInput, {"keywords": {"a": ["x", "\udc00"]}}),
        (InvalidInput, {"numbers": {"n": np.array([1.0])}}),
        (InvalidInput, {"numbers": {"n": np.array(["1", "2"])}}),
        (InvalidInput, {"doc_ids": [1]}),
        (InvalidInput, {"doc_ids": [1, -1]}),
        (InvalidInput, {"doc_ids": [1, 2**32]}),
        (Conflict, {"doc_ids": [7, 7]}),
        (Conflict, {"doc_ids": [6, 5]}),
    ]
    for error, options in bad_calls:
        with pytest.raises(error):
            writer.add_columns(["a b", "c"], **options)  # type: ignore[arg-type]
    for texts in (["ok", 3], ["ok", "lone \ud800"]):
        with pytest.raises(InvalidInput):
            writer.add_columns(texts)  # type: ignore[arg-type]
    assert len(writer) == 1
    assert writer.add_columns(["a", "b"]).tolist() == [6, 7]
    with pytest.raises(InvalidInput):
        IndexWriter(first_doc_id=2**32 - 1).add_columns(["a", "b"])
