"""Text for the inverted index: tokenizing documents and ranking them by BM25.

The log search index and hybrid vector ranking must see the same terms at
index time and at query time, so both call :func:`tokenize` (one text) or
:func:`tokenize_many` (a batch, for building an index). Both run in C
(csrc/postings/tokenize.c) without the GIL; :func:`bm25_top_k`
(csrc/postings/bm25.c) ranks the documents a query's posting lists reach.

Guarantees
----------
* Tokens are maximal runs of ASCII letters, digits, ``_`` and non-ASCII
  characters, with ASCII letters lower-cased (non-ASCII text is left as it
  is). Every other character separates tokens.
* Kept whole across their separators: IPv4 addresses (``10.0.0.1``; a
  ``:8080`` port is its own token), UUIDs (8-4-4-4-12 hex digits) and
  decimal numbers (``3.14``). Other dotted or dashed words split
  (``web-01.example.com`` gives ``web``, ``01``, ``example``, ``com``), and
  so do digit chains that are neither (``1.2.3``, ``300.1.1.1``).
* Any input, including arbitrary bytes, tokenizes without error; bytes that
  are not UTF-8 come back as U+FFFD inside their token.
* Linear time. :func:`tokenize_many` works through a single buffer, about
  100 MB/s of log lines on one core including building the token strings.
* :func:`bm25_top_k` scores documents matching any query term (Okapi BM25,
  terms summed in query order), O(postings * terms + matches * log k), and
  orders the result by score descending, then document id ascending.
"""

from __future__ import annotations

import re

from trusswork.search._tokenize import bm25_top_k as bm25_top_k
from trusswork.search._tokenize import tokenize as tokenize
from trusswork.search._tokenize import tokenize_many as tokenize_many

__all__ = ["bm25_top_k", "tokenize", "tokenize_many", "wildcard_regex"]


def wildcard_regex(pattern: str) -> re.Pattern[str]:
    """A regex for a wildcard ``pattern``: ``*`` any run of characters, the rest
    literal (match with ``fullmatch``). Term and field-value wildcards of the
    log search use it in the index and row by row alike."""
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)
