"""Segment format 2 at a size that uses every encoding, against a Python oracle.

The hypothesis corpora of test_segments.py are small: no posting list there
is long enough to be bit-packed, no dictionary spans two blocks, no field
is dropped to its forward column alone. Here one seeded corpus of a few
thousand documents does all of that; damage that keeps every checksum
valid (a section rewritten with a fresh CRC) must still raise Corruption.
"""

from __future__ import annotations

import json
import math
import random
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trusswork.core.errors import Corruption
from trusswork.search._index import _SHORT_LIST, IndexWriter, SegmentMeta, _meta_checksum
from trusswork.search._sections import (
    DICTIONARY_BLOCK,
    DICTIONARY_SECTIONS,
    decode_varint_list,
    encode_varint_lists,
    read_sections,
    write_sections,
)
from trusswork.search._segment import Segment, merge_segments

Fields = dict[str, str | int | float]

COMMON = ["get", "post", "ok", "error", "api"]


def corpus(n: int, seed: int = 7) -> tuple[list[list[str]], list[Fields]]:
    """Tokens and fields of ``n`` documents: common, mid-frequency and unique
    terms, repeats within a document, a low- and a high-cardinality keyword
    field, an integer field with gaps and a float field."""
    rng = random.Random(seed)
    docs, fields = [], []
    for i in range(n):
        tokens = [rng.choice(COMMON) for _ in range(rng.randrange(3, 12))]
        tokens.append(f"mid{rng.randrange(n // 20)}")  # ~20 documents each
        tokens.append(f"few{rng.randrange(n // 3)}")  # a handful each
        tokens.insert(rng.randrange(len(tokens)), f"u{i:05d}x")  # one document
        docs.append(tokens)
        doc: Fields = {"host": f"h{rng.randrange(4)}", "uri": f"/item/{rng.randrange(n)}"}
        if i % 5:
            doc["status"] = rng.choice([200, 200, 404, 500])
        if i % 3 == 0:
            doc["ms"] = rng.random() * 100
        doc["big"] = 2**40 + rng.randrange(10**6)
        fields.append(doc)
    return docs, fields


N = 6000  # > 64K positions: the positions span two zstd frames


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Segment, SegmentMeta]]:
    docs, fields = corpus(N)
    writer = IndexWriter(first_doc_id=1000)
    writer.add_many([" ".join(tokens) for tokens in docs], fields)
    meta = writer.write_segment(tmp_path_factory.mktemp("format"))
    with Segment.open(meta.path) as segment:
        yield segment, meta


def oracle_terms(docs: list[list[str]]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for row, tokens in enumerate(docs):
        for token in sorted(set(tokens)):
            found.setdefault(token, []).append(1000 + row)
    return found


def test_terms_phrases_and_bm25_inputs_match_the_oracle(
    built: tuple[Segment, SegmentMeta],
) -> None:
    segment, meta = built
    docs, _ = corpus(N)
    expected = oracle_terms(docs)
    assert meta.term_count == len(expected) > 4 * DICTIONARY_BLOCK
    lengths = sorted({len(v) for v in expected.values()})
    assert lengths[0] == 1 and lengths[-1] > _SHORT_LIST  # inline, short and long lists
    rng = random.Random(3)
    sample = COMMON + rng.sample(sorted(expected), 400)
    for term in sample:
        assert segment.term(term).tolist() == expected[term], term
        assert segment.doc_freq(term) == len(expected[term])
    assert list(segment.terms()) == sorted(expected, key=lambda t: t.encode())
    assert segment.terms_matching("mid1*") == sorted(t for t in expected if t.startswith("mid1"))
    for pair in (["get", "ok"], ["error", "error"], ["api", "mid3"], ["u00042x", "get"]):
        want = [
            1000 + row
            for row, tokens in enumerate(docs)
            if any(tokens[p : p + 2] == pair for p in range(len(tokens) - 1))
        ]
        assert segment.phrase(pair).tolist() == want, pair
    assert segment.doc_lengths.tolist() == [len(tokens) for tokens in docs]
    found, scores = segment.bm25(["error", "u00042x"], 3)
    assert found[0] == 1042 and scores[0] > scores[1]


def test_keyword_fields_in_both_modes_match_the_oracle(
    built: tuple[Segment, SegmentMeta],
) -> None:
    segment, _ = built
    _, fields = corpus(N)
    for name in ("host", "uri", "status"):
        values, codes = segment.keyword_column(name)
        assert values == sorted({str(f[name]) for f in fields if name in f}, key=str.encode)
        assert [values[c] if c >= 0 else None for c in codes.tolist()] == [
            str(f[name]) if name in f else None for f in fields
        ]
        lo, hi = segment.keyword_range(name)
        assert segment.keyword_values(name) == values and hi - lo == len(values)
        for slot in (lo, (lo + hi) // 2, hi - 1):
            value = values[slot - lo]
            want = [row for row, f in enumerate(fields) if str(f.get(name)) == value]
            assert segment.keyword_rows(slot).tolist() == want
            assert segment.field(name, value).tolist() == [1000 + row for row in want]
    assert segment.field("uri", "/nowhere").size == 0
    assert segment.keyword_column("absent")[1].tolist() == [-1] * N


def test_numeric_columns_round_trip(built: tuple[Segment, SegmentMeta]) -> None:
    segment, _ = built
    _, fields = corpus(N)
    for name in ("status", "ms", "big"):
        column = segment.numeric_column(name)
        assert column is not None and column.dtype == np.float64
        want = [float(f[name]) if name in f else math.nan for f in fields]
        assert np.array_equal(column, np.array(want), equal_nan=True)
    assert segment.range("big", 0, 2**40 + 10).tolist() == [
        1000 + row for row, f in enumerate(fields) if float(f["big"]) <= 2**40 + 10
    ]
    assert segment.numeric_column("absent") is None


def test_documents_and_both_writers_agree(
    built: tuple[Segment, SegmentMeta], tmp_path: Path
) -> None:
    segment, meta = built
    docs, fields = corpus(N)
    texts = [" ".join(tokens) for tokens in docs]
    assert segment.documents([1000 + N - 1, 1000, 1003]) == [texts[-1], texts[0], texts[3]]
    names = sorted({name for f in fields for name in f})
    keywords: dict[str, list[str | None]] = {}
    numbers: dict[str, Any] = {}
    for name in names:
        present = [f.get(name) for f in fields]
        if name != "ms":
            keywords[name] = [None if v is None else str(v) for v in present]
        if name != "host" and name != "uri":
            numbers[name] = np.array([math.nan if v is None else float(v) for v in present])
    writer = IndexWriter(first_doc_id=1000)
    writer.add_columns(texts, keywords=keywords, numbers=numbers)
    other = writer.write_segment(tmp_path)
    for file in ("terms.tw", "postings.tw", "fields.tw", "numeric.tw", "docs.tw"):
        assert (other.path / file).read_bytes() == (meta.path / file).read_bytes(), file


def test_merge_keeps_columns_and_postings(
    built: tuple[Segment, SegmentMeta], tmp_path: Path
) -> None:
    segment, _ = built
    docs, fields = corpus(N)
    half = N // 2
    writers = [IndexWriter(first_doc_id=1000), IndexWriter(first_doc_id=1000 + half)]
    for part, writer in zip((slice(0, half), slice(half, N)), writers, strict=True):
        writer.add_many([" ".join(tokens) for tokens in docs[part]], fields[part])
    metas = [w.write_segment(tmp_path) for w in writers]
    parts = [Segment.open(m.path) for m in metas]
    try:
        merged_meta = merge_segments(parts, tmp_path)
    finally:
        for part_segment in parts:
            part_segment.close()
    with Segment.open(merged_meta.path) as merged:
        for name in ("host", "uri", "status"):
            assert merged.keyword_column(name)[0] == segment.keyword_column(name)[0]
            assert np.array_equal(merged.keyword_column(name)[1], segment.keyword_column(name)[1])
        assert merged.term("get").tolist() == segment.term("get").tolist()
        assert merged.phrase(["get", "ok"]).tolist() == segment.phrase(["get", "ok"]).tolist()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sets(st.integers(0, 2**32 - 1), min_size=1, max_size=70), max_size=6))
def test_varint_lists_round_trip(lists: list[set[int]]) -> None:
    rows = np.array([r for s in lists for r in sorted(s)], dtype=np.uint32)
    counts = np.array([len(s) for s in lists], dtype=np.int64)
    blob, lengths = encode_varint_lists(rows, counts)
    assert int(lengths.sum()) == len(blob)
    at = 0
    for ids, length in zip(lists, lengths.tolist(), strict=True):
        assert decode_varint_list(blob[at : at + length], len(ids), "x").tolist() == sorted(ids)
        at += length
    if blob:
        with pytest.raises(Corruption):
            decode_varint_list(blob[: lengths[0]], len(lists[0]) + 1, "x")


# ------------------------------------------------ damage behind valid CRCs


def rewrite(path: Path, index: int, payload: bytes) -> None:
    """Replace section ``index`` of ``path``, with a correct checksum."""
    count = int.from_bytes(path.read_bytes()[8:12], "little")
    mapped, sections = read_sections(path, count)
    parts = [bytes(s) for s in sections]
    del sections
    mapped.close()
    parts[index] = payload
    write_sections(path, parts)


@pytest.fixture
def small(tmp_path: Path) -> SegmentMeta:
    writer = IndexWriter()
    for i in range(300):
        writer.add(
            i * 2,  # ids not consecutive: docs.tw stores them
            f"get item{i} {'error' if i % 7 else 'ok ok'} api{i % 40}",
            {"host": f"h{i % 3}", "uri": f"/x/{i}", "status": 200 + i % 2},
        )
    return writer.write_segment(tmp_path)


def narrow_bytes(values: list[int], dtype: str) -> bytes:
    return np.array(values, dtype=dtype).tobytes()


DAMAGE = {
    # The uri column (high-cardinality) names a value past the field's count.
    "fields.tw": lambda sections, meta: (
        DICTIONARY_SECTIONS + 5 + 2,
        narrow_bytes([301] * 300, "<u2"),
    ),
    # Term dictionary: per-block entry bases that do not start at 0.
    "terms.tw": lambda sections, meta: (
        DICTIONARY_SECTIONS,
        b"\x01" + bytes(sections[DICTIONARY_SECTIONS][1:]),
    ),
    # Positions claim a width of 3 bytes.
    "postings.tw": lambda sections, meta: (5, b"\x03"),
    # Ids out of order.
    "docs.tw": lambda sections, meta: (
        0,
        narrow_bytes([4, 2] + [2 * i for i in range(2, 300)], "<u4"),
    ),
    # A numeric field header of an unknown kind.
    "numeric.tw": lambda sections, meta: (0, struct.pack("<B7xq", 9, 0)),
}


@pytest.mark.parametrize("name", sorted(DAMAGE))
def test_consistent_checksums_over_bad_contents_raise_corruption(
    small: SegmentMeta, name: str
) -> None:
    path = small.path / name
    count = int.from_bytes(path.read_bytes()[8:12], "little")
    mapped, sections = read_sections(path, count)
    index, payload = DAMAGE[name](sections, small)
    del sections
    mapped.close()
    rewrite(path, index, payload)
    with pytest.raises(Corruption, match=name):
        Segment.open(small.path)


def test_undecodable_dictionary_block_raises_corruption_on_lookup(small: SegmentMeta) -> None:
    path = small.path / "terms.tw"
    count = int.from_bytes(path.read_bytes()[8:12], "little")
    mapped, sections = read_sections(path, count)
    frames = bytearray(sections[3])
    del sections
    mapped.close()
    frames[len(frames) // 2] ^= 0xFF
    rewrite(path, 3, bytes(frames))
    with Segment.open(small.path) as segment, pytest.raises(Corruption, match=r"terms\.tw"):
        list(segment.terms())


def test_format_1_segments_ask_to_reindex(small: SegmentMeta) -> None:
    path = small.path / "meta.json"
    body = json.loads(path.read_bytes())
    del body["checksum"]
    body["format"] = 1
    path.write_text(json.dumps({**body, "checksum": _meta_checksum(body)}, sort_keys=True))
    with pytest.raises(Corruption, match="segment format 1: re-index"):
        Segment.open(small.path)


def test_consecutive_ids_take_no_space(tmp_path: Path) -> None:
    writer = IndexWriter(first_doc_id=77)
    writer.add_many(["a b", "b c", "c d"])
    meta = writer.write_segment(tmp_path)
    _, sections = read_sections(meta.path / "docs.tw", 6)
    assert len(sections[0]) == 0
    with Segment.open(meta.path) as segment:
        assert segment.doc_ids.tolist() == [77, 78, 79]
        assert segment.term("c").tolist() == [78, 79]


def test_empty_texts_and_a_text_ending_on_a_block_boundary(tmp_path: Path) -> None:
    texts = ["x" * 65536, "", ""]  # the empty ones start where the stream ends
    writer = IndexWriter()
    writer.add_many(texts)
    with Segment.open(writer.write_segment(tmp_path / "a").path) as segment:
        assert segment.documents([2, 0, 1]) == [texts[2], texts[0], texts[1]]
    nothing = IndexWriter()
    nothing.add_many(["", "..."], [{"n": 1}, {}])
    with Segment.open(nothing.write_segment(tmp_path / "b").path) as segment:
        assert segment.meta.term_count == 0 and list(segment.terms()) == []
        assert segment.term("x").size == 0 and segment.phrase(["x", "y"]).size == 0
        assert segment.field("n", 1).tolist() == [0]
        assert segment.documents([1]) == ["..."]
