"""Inverted index segments: build in memory, write once, read through mmap.

An :class:`IndexWriter` collects documents (a text and optional fields) and
writes them as an immutable *segment*: a directory ``<segment id>/`` holding

``terms.tw``
    the term dictionary: terms sorted by UTF-8 bytes, and per term the offsets
    of its posting list, its term frequencies and its positions;
``postings.tw``
    posting lists (rows, by :func:`~trusswork.search.postings.encode_postings`),
    term frequencies (one per posting) and positions (one per token), each in
    the narrowest unsigned integer type that holds them (so are the offsets);
``fields.tw``
    keyword field postings, one per ``name=value`` key, in a sorted dictionary;
``numeric.tw``
    one float64 column per numeric field (NaN where a document lacks it);
``docs.tw``
    document ids, lengths in tokens and the original texts in zstd blocks;
``meta.json``
    counts, id range, time range and field summaries, with a checksum.

Every ``.tw`` file is framed by :mod:`trusswork.search._sections`: each
section carries a CRC-32C, checked when the segment opens, so damage raises
:class:`~trusswork.core.errors.Corruption` naming the file and offset.

Guarantees
----------
* Atomic: a segment is written to ``<id>.tmp/``, every file fsynced, then
  renamed to ``<id>/`` and the parent directory fsynced. A crash leaves a
  ``.tmp`` directory that readers ignore, never a half segment.
* Postings on disk hold *rows* (0..doc_count-1 in doc id order); the query
  API answers in document ids, sorted and unique (uint32).
* Document ids are unique within a segment and kept by a merge, which fails
  with :class:`~trusswork.core.errors.Conflict` if two inputs share an id.
* Terms are the tokenizer's tokens; a query term is passed through the
  tokenizer (``GET`` finds ``get``) when it gives exactly one token.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import zstandard

from trusswork.core.checksum import crc32c
from trusswork.core.errors import Conflict, Corruption, InvalidInput, NotFound
from trusswork.core.files import publish_directory, write_file
from trusswork.search._sections import write_sections
from trusswork.search.postings import encode_postings
from trusswork.search.text import tokenize, tokenize_many

__all__ = [
    "IndexWriter",
    "SegmentMeta",
    "read_meta",
]


def query_term(term: str) -> str:
    """``term`` as the index stores it: its single token, else ``term`` unchanged."""
    try:
        tokens = tokenize(term)
    except InvalidInput:
        # Not UTF-8 (a lone surrogate): no indexed text holds it either.
        return term
    return tokens[0] if len(tokens) == 1 else term


Postings = npt.NDArray[np.uint32]
FieldValue = str | int | float

_FORMAT = 1
_TEXT_BLOCK = 64 * 1024
_ZSTD_LEVEL = 3
_MAX_DOC_ID = 2**32 - 1
_EMPTY = np.empty(0, dtype=np.uint32)


@dataclass(frozen=True)
class SegmentMeta:
    """What ``meta.json`` says about a segment; enough to plan merges."""

    segment_id: str
    path: Path
    doc_count: int
    min_doc_id: int
    max_doc_id: int
    term_count: int
    size_bytes: int
    time_range: tuple[float, float] | None = None
    keyword_fields: Mapping[str, int] = field(default_factory=dict)
    numeric_fields: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    merged_from: tuple[str, ...] = ()


# ---------------------------------------------------------------- writing


class IndexWriter:
    """Collects documents in memory and writes them as one immutable segment.

    Parameters
    ----------
    first_doc_id
        The id given to the first document added without one; later ones
        count up from the largest id seen.
    """

    def __init__(self, *, first_doc_id: int = 0) -> None:
        if not 0 <= first_doc_id <= _MAX_DOC_ID:
            raise InvalidInput(f"first_doc_id {first_doc_id} is outside 0..2**32-1")
        self._first_doc_id = first_doc_id
        self._reset()

    def _reset(self) -> None:
        self._next_id = self._first_doc_id
        self._ids: list[int] = []
        self._seen: set[int] = set()
        self._texts: list[str] = []
        self._keywords: dict[str, list[int]] = {}
        self._numbers: dict[str, tuple[list[int], list[float]]] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def add(
        self, doc_id: int | None, text: str, fields: Mapping[str, FieldValue] | None = None
    ) -> int:
        """Add one document and return its id.

        Parameters
        ----------
        doc_id
            The document's id (unique, 0..2**32-1), or None for the next one.
        text
            The text to index and store.
        fields
            ``str`` values become keyword terms (``name=value``); ``float``
            values numeric columns; ``int`` values both.

        Raises
        ------
        InvalidInput
            A bad id, field name or field value type.
        Conflict
            ``doc_id`` was already added.
        """
        keywords: dict[str, str] = {}
        numbers: dict[str, float] = {}
        for name, value in (fields or {}).items():
            if not name or "=" in name:
                raise InvalidInput(f"field name {name!r} must be non-empty and contain no '='")
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise InvalidInput(
                    f"field {name!r}: {type(value).__name__} is not str, int or float"
                )
            if isinstance(value, str | int):
                keywords[name] = str(value)
            if not isinstance(value, str):
                numbers[name] = float(value)
        return self._add_parsed(doc_id, text, keywords, numbers)

    def add_many(
        self, texts: Iterable[str], fields: Iterable[Mapping[str, FieldValue] | None] | None = None
    ) -> npt.NDArray[np.uint32]:
        """Add documents with automatic ids; ``fields`` (if given) pairs with ``texts``."""
        texts = list(texts)
        per_doc = [None] * len(texts) if fields is None else list(fields)
        if len(per_doc) != len(texts):
            raise InvalidInput(f"{len(texts)} texts but {len(per_doc)} field mappings")
        ids = [self.add(None, text, f) for text, f in zip(texts, per_doc, strict=True)]
        return np.asarray(ids, dtype=np.uint32)

    def _add_parsed(
        self,
        doc_id: int | None,
        text: str,
        keywords: Mapping[str, str],
        numbers: Mapping[str, float],
    ) -> int:
        if not isinstance(text, str):
            raise InvalidInput(f"document text must be str, not {type(text).__name__}")
        for part in (text, *keywords.values()):
            if not part.isascii():
                try:
                    part.encode("utf-8")
                except UnicodeEncodeError as exc:
                    raise InvalidInput(
                        f"{exc.reason} at index {exc.start} of {part[:40]!r}; text and field"
                        " values must be encodable as UTF-8 (no lone surrogates)"
                    ) from exc
        if doc_id is None:
            doc_id = self._next_id
        if not 0 <= doc_id <= _MAX_DOC_ID:
            raise InvalidInput(f"document id {doc_id} is outside 0..2**32-1")
        if doc_id in self._seen:
            raise Conflict(f"document id {doc_id} was already added to this writer")
        row = len(self._ids)
        self._seen.add(doc_id)
        self._ids.append(doc_id)
        self._texts.append(text)
        self._next_id = max(self._next_id, doc_id + 1)
        for name, value in keywords.items():
            self._keywords.setdefault(f"{name}={value}", []).append(row)
        for name, number in numbers.items():
            rows, values = self._numbers.setdefault(name, ([], []))
            rows.append(row)
            values.append(number)
        return doc_id

    def write_segment(self, directory: str | os.PathLike[str]) -> SegmentMeta:
        """Write the collected documents as a new segment under ``directory``.

        The writer is empty afterwards (ids keep counting up).

        Raises
        ------
        InvalidInput
            No documents were added.
        """
        if not self._ids:
            raise InvalidInput("the writer holds no documents; add some before write_segment")
        meta = _write(Path(directory), self._build(), merged_from=())
        next_id = self._next_id
        self._reset()
        self._next_id = next_id
        return meta

    def _build(self) -> _Built:
        ids = np.asarray(self._ids, dtype=np.int64)
        order = np.argsort(ids, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        texts = [self._texts[i] for i in order]
        tokens, tok_docs, tok_pos = tokenize_many(texts)
        # A first-seen numbering through a C-level map: no Python loop per token.
        vocab: defaultdict[str, int] = defaultdict(itertools.count().__next__)
        first = np.fromiter(map(vocab.__getitem__, tokens), dtype=np.int64, count=len(tokens))
        encoded = [t.encode("utf-8") for t in vocab]
        order_terms = sorted(range(len(encoded)), key=encoded.__getitem__)
        remap = np.empty(len(encoded), dtype=np.int64)
        remap[order_terms] = np.arange(len(encoded))
        terms = [encoded[i] for i in order_terms]
        term_ids = remap[first]
        docs = np.asarray(tok_docs, dtype=np.int64)
        pos = np.asarray(tok_pos, dtype=np.int64)
        in_order = bool(np.all((np.diff(docs) > 0) | ((np.diff(docs) == 0) & (np.diff(pos) > 0))))
        # Tokenizers emit tokens in (document, position) order; a stable sort by
        # term alone then yields (term, document, position) order.
        by = np.argsort(term_ids, kind="stable") if in_order else np.lexsort((pos, docs, term_ids))
        term_ids, docs = term_ids[by], docs[by]
        positions = np.asarray(tok_pos, dtype=np.uint32)[by]
        starts = np.flatnonzero(np.diff((term_ids << 32) | docs, prepend=-1))
        entry_rows = docs[starts].astype(np.uint32)
        tfs = np.diff(np.append(starts, term_ids.size)).astype(np.uint32)
        bounds = np.arange(len(terms) + 1)
        entry_starts = np.searchsorted(term_ids[starts], bounds).astype(np.uint64)
        position_starts = np.searchsorted(term_ids, bounds).astype(np.uint64)
        lengths = np.bincount(docs, minlength=ids.size).astype(np.uint32)
        keywords = {
            key: np.unique(rank[np.asarray(rows, dtype=np.int64)]).astype(np.uint32)
            for key, rows in self._keywords.items()
        }
        numbers = {}
        for name, (rows, values) in self._numbers.items():
            column = np.full(ids.size, np.nan)
            column[rank[np.asarray(rows, dtype=np.int64)]] = values
            numbers[name] = column
        return _Built(
            doc_ids=ids[order].astype(np.uint32),
            texts=texts,
            lengths=lengths,
            terms=terms,
            entry_starts=entry_starts,
            entry_rows=entry_rows,
            tfs=tfs,
            position_starts=position_starts,
            positions=positions,
            keywords=keywords,
            numbers=numbers,
        )


@dataclass
class _Built:
    doc_ids: npt.NDArray[np.uint32]
    texts: list[str]
    lengths: npt.NDArray[np.uint32]
    terms: list[bytes]
    entry_starts: npt.NDArray[np.uint64]
    entry_rows: npt.NDArray[np.uint32]
    tfs: npt.NDArray[np.uint32]
    position_starts: npt.NDArray[np.uint64]
    positions: npt.NDArray[np.uint32]
    keywords: dict[str, npt.NDArray[np.uint32]]
    numbers: dict[str, npt.NDArray[np.float64]]


def _narrow(values: npt.NDArray[np.unsignedinteger[Any]]) -> bytes:
    """``values`` in the narrowest unsigned dtype holding them all.

    Readers know how many items such a section holds, so its length gives
    the item size; tfs and positions mostly fit a byte.
    """
    top = int(values.max()) if values.size else 0
    for dtype in (np.uint8, np.uint16, np.uint32):
        if top <= np.iinfo(dtype).max:
            return values.astype(dtype).tobytes()
    return values.astype(np.uint64).tobytes()


def _dictionary(keys: Sequence[bytes]) -> tuple[bytes, npt.NDArray[np.uint64]]:
    offsets = np.zeros(len(keys) + 1, dtype=np.uint64)
    np.cumsum([len(k) for k in keys], out=offsets[1:])
    return b"".join(keys), offsets


def _encode_all(lists: Iterable[npt.NDArray[np.uint32]]) -> tuple[bytes, npt.NDArray[np.uint64]]:
    blobs = [encode_postings(rows) for rows in lists]
    offsets = np.zeros(len(blobs) + 1, dtype=np.uint64)
    np.cumsum([len(b) for b in blobs], out=offsets[1:])
    return b"".join(blobs), offsets


def _text_blocks(texts: Sequence[str]) -> tuple[bytes, bytes, bytes]:
    raw = [t.encode("utf-8") for t in texts]
    text_offsets = np.zeros(len(raw) + 1, dtype=np.uint64)
    np.cumsum([len(r) for r in raw], out=text_offsets[1:])
    stream = b"".join(raw)
    compressor = zstandard.ZstdCompressor(level=_ZSTD_LEVEL)
    blocks = [
        compressor.compress(stream[i : i + _TEXT_BLOCK]) for i in range(0, len(stream), _TEXT_BLOCK)
    ]
    block_offsets = np.zeros(len(blocks) + 1, dtype=np.uint64)
    np.cumsum([len(b) for b in blocks], out=block_offsets[1:])
    return text_offsets.tobytes(), block_offsets.tobytes(), b"".join(blocks)


def _meta_checksum(body: Mapping[str, Any]) -> int:
    return crc32c(json.dumps(body, sort_keys=True).encode("ascii"))


def _write(directory: Path, built: _Built, *, merged_from: Sequence[str]) -> SegmentMeta:
    segment_id = f"seg-{uuid.uuid4().hex}"
    tmp = directory / f"{segment_id}.tmp"
    tmp.mkdir(parents=True)
    n_terms = len(built.terms)
    term_blob, term_offsets = _dictionary(built.terms)
    post_blob, post_offsets = _encode_all(
        built.entry_rows[int(built.entry_starts[i]) : int(built.entry_starts[i + 1])]
        for i in range(n_terms)
    )
    write_sections(
        tmp / "terms.tw",
        [
            term_blob,
            _narrow(term_offsets),
            _narrow(post_offsets),
            _narrow(built.entry_starts),
            _narrow(built.position_starts),
        ],
    )
    write_sections(tmp / "postings.tw", [post_blob, _narrow(built.tfs), _narrow(built.positions)])
    keys = sorted(built.keywords, key=lambda k: k.encode("utf-8"))
    key_blob, key_offsets = _dictionary([k.encode("utf-8") for k in keys])
    field_blob, field_offsets = _encode_all(built.keywords[k] for k in keys)
    write_sections(
        tmp / "fields.tw", [key_blob, key_offsets.tobytes(), field_offsets.tobytes(), field_blob]
    )
    numeric_names = sorted(built.numbers)
    write_sections(tmp / "numeric.tw", [built.numbers[n].tobytes() for n in numeric_names])
    write_sections(
        tmp / "docs.tw",
        [built.doc_ids.tobytes(), built.lengths.tobytes(), *_text_blocks(built.texts)],
    )
    keyword_fields: dict[str, int] = {}
    for key in keys:
        name = key.split("=", 1)[0]
        keyword_fields[name] = keyword_fields.get(name, 0) + 1
    numeric_fields = {}
    for name in numeric_names:
        column = built.numbers[name]
        present = column[~np.isnan(column)]
        numeric_fields[name] = {
            "count": int(present.size),
            "min": float(present.min()) if present.size else math.nan,
            "max": float(present.max()) if present.size else math.nan,
        }
    stamp = numeric_fields.get("timestamp")
    body: dict[str, Any] = {
        "format": _FORMAT,
        "segment_id": segment_id,
        "doc_count": int(built.doc_ids.size),
        "min_doc_id": int(built.doc_ids[0]),
        "max_doc_id": int(built.doc_ids[-1]),
        "term_count": n_terms,
        "time_range": [stamp["min"], stamp["max"]] if stamp and stamp["count"] else None,
        "keyword_fields": keyword_fields,
        "numeric_fields": numeric_fields,
        "merged_from": list(merged_from),
    }
    meta_body = {**body, "checksum": _meta_checksum(body)}
    write_file(tmp / "meta.json", json.dumps(meta_body, sort_keys=True).encode())
    final = directory / segment_id
    publish_directory(tmp, final)
    return _meta_from(final, body)


def _meta_from(path: Path, body: Mapping[str, Any]) -> SegmentMeta:
    size = sum(p.stat().st_size for p in path.iterdir())
    time_range = body["time_range"]
    return SegmentMeta(
        segment_id=body["segment_id"],
        path=path,
        doc_count=body["doc_count"],
        min_doc_id=body["min_doc_id"],
        max_doc_id=body["max_doc_id"],
        term_count=body["term_count"],
        size_bytes=size,
        time_range=(time_range[0], time_range[1]) if time_range else None,
        keyword_fields=body["keyword_fields"],
        numeric_fields=body["numeric_fields"],
        merged_from=tuple(body["merged_from"]),
    )


def read_meta(path: str | os.PathLike[str]) -> SegmentMeta:
    """Read and check a segment's ``meta.json``."""
    path = Path(path)
    meta_path = path / "meta.json"
    if not path.is_dir():
        raise NotFound(f"no segment directory at {path}")
    try:
        data = json.loads(meta_path.read_bytes())
        checksum = data.pop("checksum")
        if checksum != _meta_checksum(data) or data["format"] != _FORMAT:
            raise Corruption(f"{meta_path}: checksum or format mismatch at offset 0")
        return _meta_from(path, data)
    except Corruption:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise Corruption(f"{meta_path}: unreadable at offset 0 ({exc})") from exc
