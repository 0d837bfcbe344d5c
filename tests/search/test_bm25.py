"""BM25 top k in C against a plain Python scorer over dicts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trusswork.core.errors import InvalidInput
from trusswork.search.text import bm25_top_k


def oracle(
    docs: list[dict[int, int]],
    idf: list[float],
    avgdl: float,
    k: int,
    k1: float,
    b: float,
) -> list[tuple[int, float]]:
    """docs[d] maps term -> tf; the length of d is the sum of its tfs plus one."""
    scored = []
    for d, terms in enumerate(docs):
        if not terms:
            continue
        dl = sum(terms.values()) + 1
        score = 0.0
        for t in sorted(terms):
            tf = terms[t]
            score += idf[t] * (tf * (k1 + 1)) / (tf + k1 * (1 - b + b * dl / avgdl))
        scored.append((d, score))
    scored.sort(key=lambda item: (-item[1], item[0]))
    return scored[:k]


def arrays(
    docs: list[dict[int, int]], n_terms: int
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    postings = [
        np.array([d for d, ts in enumerate(docs) if t in ts], np.uint32) for t in range(n_terms)
    ]
    tfs = [np.array([ts[t] for ts in docs if t in ts], np.uint32) for t in range(n_terms)]
    lengths = np.array([sum(ts.values()) + 1 for ts in docs], np.uint32)
    return postings, tfs, lengths


@given(
    n_terms=st.integers(0, 4),
    data=st.data(),
    k=st.integers(0, 12),
    k1=st.sampled_from([0.0, 1.2, 2.0]),
    b=st.sampled_from([0.0, 0.75, 1.0]),
)
@settings(max_examples=300)
def test_top_k_matches_oracle(
    n_terms: int, data: st.DataObject, k: int, k1: float, b: float
) -> None:
    docs = data.draw(
        st.lists(
            st.dictionaries(
                st.integers(0, max(n_terms - 1, 0)), st.integers(1, 4), max_size=n_terms
            ),
            min_size=1,
            max_size=40,
        )
    )
    idf = data.draw(
        st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.25]), min_size=n_terms, max_size=n_terms)
    )
    postings, tfs, lengths = arrays(docs, n_terms)
    avgdl = float(lengths.mean())
    ids, scores = bm25_top_k(postings, tfs, np.array(idf, np.float64), lengths, avgdl, k, k1, b)
    want = oracle(docs, idf, avgdl, k, k1, b)
    assert ids.dtype == np.uint32 and scores.dtype == np.float64
    assert ids.tolist() == [d for d, _ in want]
    assert scores.tolist() == [s for _, s in want]


def test_rarer_term_and_shorter_document_rank_first() -> None:
    postings = [np.array([0, 1, 2, 3], np.uint32), np.array([2, 3], np.uint32)]
    tfs = [np.array([1, 1, 1, 1], np.uint32), np.array([1, 1], np.uint32)]
    idf = np.array([0.1, 2.0])
    lengths = np.array([10, 10, 5, 50], np.uint32)
    ids, scores = bm25_top_k(postings, tfs, idf, lengths, 18.75, 3)
    assert ids.tolist() == [2, 3, 0]
    assert scores[0] > scores[1] > scores[2]
    assert scores[2] == pytest.approx(0.1 * 2.2 / (1 + 1.2 * (0.25 + 0.75 * 10 / 18.75)))


def test_ties_keep_the_lower_ids() -> None:
    postings = [np.arange(100, dtype=np.uint32)]
    tfs = [np.ones(100, np.uint32)]
    ids, scores = bm25_top_k(postings, tfs, [1.0], np.full(100, 7, np.uint32), 7.0, 5)
    assert ids.tolist() == [0, 1, 2, 3, 4]
    assert len(set(scores.tolist())) == 1


def test_huge_k_returns_every_match() -> None:
    ids, scores = bm25_top_k([[0, 2]], [[1, 3]], [1.0], np.full(3, 4, np.uint32), 4.0, 10**15)
    assert ids.tolist() == [2, 0]
    assert scores[0] > scores[1] > 0


def test_large_query_without_gil_matches_small_path() -> None:
    rng = np.random.default_rng(7)
    n = 50_000
    lengths = rng.integers(1, 40, n).astype(np.uint32)
    postings = [np.flatnonzero(rng.random(n) < p).astype(np.uint32) for p in (0.5, 0.1)]
    tfs = [rng.integers(1, 5, p.size).astype(np.uint32) for p in postings]
    idf = np.array([0.3, 1.7])
    ids, _ = bm25_top_k(postings, tfs, idf, lengths, float(lengths.mean()), 10)
    full_ids, full_scores = bm25_top_k(postings, tfs, idf, lengths, float(lengths.mean()), n)
    assert ids.tolist() == full_ids[:10].tolist()
    assert np.all(np.diff(full_scores) <= 0)
    assert len(full_ids) == len(np.union1d(postings[0], postings[1]))


@pytest.mark.parametrize(
    ("postings", "tfs", "idf", "avgdl", "k", "k1", "b"),
    [
        ([[0, 5]], [[1, 1]], [1.0], 1.0, 3, 1.2, 0.75),  # doc 5 has no length
        ([[0, 1]], [[1]], [1.0], 1.0, 3, 1.2, 0.75),  # tfs shorter than postings
        ([[0]], [[1]], [1.0, 2.0], 1.0, 3, 1.2, 0.75),  # one idf too many
        ([[0]], [[1], [1]], [1.0], 1.0, 3, 1.2, 0.75),  # two tf lists for one term
        ([[0]], [[1]], [1.0], 0.0, 3, 1.2, 0.75),  # avgdl must be positive
        ([[0]], [[1]], [1.0], 1.0, 3, -1.0, 0.75),  # k1 negative
        ([[0]], [[1]], [1.0], 1.0, 3, 1.2, 1.5),  # b above 1
        ([[0]], [[1]], [1.0], 1.0, -1, 1.2, 0.75),  # k negative
        ([[-1]], [[1]], [1.0], 1.0, 3, 1.2, 0.75),  # id out of uint32
        ([[[0]]], [[[1]]], [1.0], 1.0, 3, 1.2, 0.75),  # not 1-d
    ],
)
def test_bad_arguments_are_invalid_input(
    postings: list[object],
    tfs: list[object],
    idf: list[float],
    avgdl: float,
    k: int,
    k1: float,
    b: float,
) -> None:
    with pytest.raises(InvalidInput):
        bm25_top_k(postings, tfs, idf, np.ones(5, np.uint32), avgdl, k, k1, b)  # type: ignore[arg-type]
