"""Shared search engine: posting lists, the tokenizer and BM25 ranking in C."""

from __future__ import annotations

from trusswork.search.postings import (
    decode_postings as decode_postings,
)
from trusswork.search.postings import (
    difference as difference,
)
from trusswork.search.postings import (
    encode_postings as encode_postings,
)
from trusswork.search.postings import (
    intersect as intersect,
)
from trusswork.search.postings import (
    intersect_many as intersect_many,
)
from trusswork.search.postings import (
    union as union,
)
from trusswork.search.postings import (
    union_many as union_many,
)
from trusswork.search.text import bm25_top_k as bm25_top_k
from trusswork.search.text import tokenize as tokenize
from trusswork.search.text import tokenize_many as tokenize_many

__all__ = [
    "bm25_top_k",
    "decode_postings",
    "difference",
    "encode_postings",
    "intersect",
    "intersect_many",
    "tokenize",
    "tokenize_many",
    "union",
    "union_many",
]
