"""An index over a directory of segments: add, flush, query across, merge.

Guarantees
----------
* Only complete segments are seen: ``*.tmp`` directories (a crash during a
  write) are ignored.
* A merge writes the merged segment first, then deletes its inputs. A crash
  between the two leaves both; :func:`list_segments` drops the inputs a
  newer segment names in ``merged_from``, so no document is seen twice.
* Documents added are searchable after :meth:`Index.flush`.
* BM25 across segments uses collection-wide statistics (document count,
  document frequencies, average length), so scores compare across segments.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import numpy as np
import numpy.typing as npt

from trusswork.core.errors import InvalidInput, NotFound
from trusswork.search._index import FieldValue, IndexWriter, Postings, SegmentMeta, read_meta
from trusswork.search._segment import Segment, merge_segments, plan_merges
from trusswork.search.postings import union_many

__all__ = ["Index", "list_segments"]


def list_segments(directory: str | os.PathLike[str]) -> list[SegmentMeta]:
    """The complete, live segments in ``directory``, by smallest document id.

    Raises
    ------
    Corruption
        A segment's ``meta.json`` is damaged.
    """
    root = Path(directory)
    metas = [
        read_meta(p)
        for p in sorted(root.iterdir())
        if p.is_dir() and not p.name.endswith(".tmp") and (p / "meta.json").exists()
    ]
    replaced = {name for meta in metas for name in meta.merged_from}
    return sorted(
        (m for m in metas if m.segment_id not in replaced),
        key=lambda m: (m.min_doc_id, m.segment_id),
    )


class Index:
    """Every segment in ``directory`` opened together, plus a writer for new documents.

    Parameters
    ----------
    directory
        Created if missing.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._segments: list[Segment] = []
        try:
            for meta in list_segments(self.directory):
                self._segments.append(Segment.open(meta.path))
        except BaseException:
            self.close()
            raise
        first = max((s.meta.max_doc_id + 1 for s in self._segments), default=0)
        self._writer = IndexWriter(first_doc_id=first)

    @property
    def segments(self) -> list[Segment]:
        """The open segments (a copy of the list)."""
        return list(self._segments)

    def add(self, text: str, fields: Mapping[str, FieldValue] | None = None) -> int:
        """Add a document with the next id; searchable after :meth:`flush`."""
        return self._writer.add(None, text, fields)

    def add_many(
        self, texts: Iterable[str], fields: Iterable[Mapping[str, FieldValue] | None] | None = None
    ) -> Postings:
        """Add documents with the next ids; searchable after :meth:`flush`."""
        return self._writer.add_many(texts, fields)

    def flush(self) -> SegmentMeta | None:
        """Write the added documents as a new segment (None if there were none)."""
        if not len(self._writer):
            return None
        meta = self._writer.write_segment(self.directory)
        self._segments.append(Segment.open(meta.path))
        return meta

    def merge(self, *, merge_factor: int = 10, max_merged_docs: int | None = None) -> int:
        """Merge the groups :func:`plan_merges` chooses; return how many were merged."""
        groups = plan_merges(
            [s.meta for s in self._segments],
            merge_factor=merge_factor,
            max_merged_docs=max_merged_docs,
        )
        for group in groups:
            ids = {m.segment_id for m in group}
            inputs = [s for s in self._segments if s.meta.segment_id in ids]
            merged = Segment.open(merge_segments(inputs, self.directory).path)
            self._segments = [s for s in self._segments if s.meta.segment_id not in ids]
            self._segments.append(merged)
            for segment in inputs:
                segment.close()
                shutil.rmtree(segment.meta.path)
        return len(groups)

    def _each(self, query: str, *args: object) -> Postings:
        return union_many([getattr(s, query)(*args) for s in self._segments])

    def term(self, term: str) -> Postings:
        """Ids of the documents holding ``term``."""
        return self._each("term", term)

    def phrase(self, terms: Sequence[str]) -> Postings:
        """Ids of the documents holding ``terms`` consecutively."""
        if not terms:
            raise InvalidInput("a phrase needs at least one term")
        return self._each("phrase", terms)

    def field(self, name: str, value: str | int) -> Postings:
        """Ids of the documents whose keyword field ``name`` equals ``value``."""
        return self._each("field", name, value)

    def range(self, name: str, lo: float, hi: float) -> Postings:
        """Ids of the documents whose numeric field ``name`` is in ``[lo, hi]``."""
        return self._each("range", name, lo, hi)

    def all(self) -> Postings:
        """Ids of every flushed document."""
        return self._each("all")

    def documents(self, ids: Sequence[int] | npt.ArrayLike) -> list[str]:
        """The stored texts of ``ids``, in the order given.

        Raises
        ------
        NotFound
            An id is in no segment.
        """
        wanted = np.asarray(ids, dtype=np.int64).reshape(-1)
        found: dict[int, str] = {}
        for segment in self._segments:
            inside = np.intersect1d(wanted, segment.doc_ids)
            found.update(zip(inside.tolist(), segment.documents(inside), strict=True))
        missing = [i for i in wanted.tolist() if i not in found]
        if missing:
            raise NotFound(f"document {missing[0]} is in no segment of {self.directory}")
        return [found[i] for i in wanted.tolist()]

    def bm25(
        self, terms: Sequence[str], k: int, *, k1: float = 1.2, b: float = 0.75
    ) -> tuple[Postings, npt.NDArray[np.float64]]:
        """The ``k`` best documents by BM25 with collection-wide statistics."""
        n = sum(s.meta.doc_count for s in self._segments)
        if n == 0:
            return np.empty(0, np.uint32), np.empty(0, np.float64)
        avgdl = sum(s.avg_doc_length * s.meta.doc_count for s in self._segments) / n
        idf = {}
        for t in terms:
            df = sum(s.doc_freq(t) for s in self._segments)
            if df:
                idf[t] = math.log(1.0 + (n - df + 0.5) / (df + 0.5))
        parts = [s._bm25(terms, k, idf, avgdl, k1=k1, b=b) for s in self._segments]
        ids = np.concatenate([p[0] for p in parts]) if parts else np.empty(0, np.uint32)
        scores = np.concatenate([p[1] for p in parts]) if parts else np.empty(0)
        order = np.lexsort((ids, -scores))[:k]
        return ids[order], scores[order]

    def close(self) -> None:
        """Close every segment; unflushed documents are dropped."""
        for segment in self._segments:
            segment.close()
        self._segments = []

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
