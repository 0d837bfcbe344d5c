"""Shared search engine: posting lists (and, later, the inverted index and BM25)."""

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

__all__ = [
    "decode_postings",
    "difference",
    "encode_postings",
    "intersect",
    "intersect_many",
    "union",
    "union_many",
]
