"""Shared search engine: an inverted index of immutable segments over C kernels.

Posting lists (set operations, a checksummed encoding), the tokenizer and
BM25 top-k scoring are C (csrc/postings). :class:`IndexWriter` builds a
segment (terms with positions, keyword and numeric fields, stored texts);
:class:`Segment` reads one through a memory map; :class:`Index` queries a
directory of segments and merges them. Used by log analytics now, and by
vector search's hybrid ranking and the security scanner later.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trusswork.core.lazy import lazy_getattr
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

if TYPE_CHECKING:
    from trusswork.search._directory import Index, list_segments
    from trusswork.search._index import IndexWriter, SegmentMeta
    from trusswork.search._segment import Segment, merge_segments, plan_merges

# The index modules (zstandard, mmap) load on first use: the TSDB imports the
# posting lists alone.
__getattr__ = lazy_getattr(
    __name__,
    {
        "Index": "trusswork.search._directory",
        "list_segments": "trusswork.search._directory",
        "IndexWriter": "trusswork.search._index",
        "SegmentMeta": "trusswork.search._index",
        "Segment": "trusswork.search._segment",
        "merge_segments": "trusswork.search._segment",
        "plan_merges": "trusswork.search._segment",
    },
)

__all__ = [
    "Index",
    "IndexWriter",
    "Segment",
    "SegmentMeta",
    "bm25_top_k",
    "decode_postings",
    "difference",
    "encode_postings",
    "intersect",
    "intersect_many",
    "list_segments",
    "merge_segments",
    "plan_merges",
    "tokenize",
    "tokenize_many",
    "union",
    "union_many",
]
