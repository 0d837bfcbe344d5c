# cython: boundscheck=False, wraparound=False
"""Compiled tokenizer and BM25 top k over csrc/postings (tokenize.h, bm25.h).

trusswork.search.text re-exports these. Text goes to C as UTF-8 (the cached
UTF-8 of a str, which for ASCII text is the string's own buffer), folded to
lower case and tokenized without the GIL; only building the Python token
strings holds it. Every C status passes through check_status.
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcmp, memcpy, memset

from trusswork._includes.common cimport (
    TW_ERR_INVALID,
    TW_ERR_NOMEM,
    TW_ERR_NOSPACE,
    TW_ERR_OVERFLOW,
    TW_OK,
)
from trusswork._includes.tokenize cimport *

import numpy as np

from trusswork.core.errors import InvalidInput


cdef extern from "Python.h":
    const char *PyUnicode_AsUTF8AndSize(object text, Py_ssize_t *size) except NULL


# Below this many bytes (or postings), releasing the GIL costs more than it frees.
cdef size_t NOGIL_BYTES = 16384
# Tokens per round of tokenize_many: bounds the offset arrays, not the input.
cdef size_t ROUND_TOKENS = 1 << 16
# Slots of tokenize_many's token cache, minus one (a power of two).
cdef enum:
    CACHE_MASK = 4095
cdef object UINT32 = np.dtype(np.uint32)
cdef object FLOAT64 = np.dtype(np.float64)


cdef int check_status(int status, str what) except -1 nogil:
    """The choke point: turn a tokenize.h / bm25.h status into a trusswork error."""
    if status == TW_OK:
        return 0
    with gil:
        if status == TW_ERR_INVALID:
            raise InvalidInput(f"{what}: an argument is out of range (doc ids must be below "
                               f"len(doc_lengths); avgdl > 0, k1 >= 0, 0 <= b <= 1)")
        raise RuntimeError(f"{what}: internal error (status {status})")


cdef const char *utf8_of(object text, Py_ssize_t *size, str what) except NULL:
    """The UTF-8 bytes of a str (cached by CPython) or of a bytes object."""
    if isinstance(text, bytes):
        size[0] = len(<bytes>text)
        return <const char *>(<bytes>text)
    if isinstance(text, str):
        try:
            return PyUnicode_AsUTF8AndSize(text, size)
        except UnicodeEncodeError as exc:
            raise InvalidInput(f"{what}: the text is not encodable as UTF-8 ({exc.reason} at "
                               f"index {exc.start}); lone surrogates cannot be indexed") from None
    raise InvalidInput(f"{what} needs str or bytes, not {type(text).__name__}")


def tokenize(text):
    """The index terms of one text, in order.

    Tokens are maximal runs of ASCII letters, digits, ``_`` and non-ASCII
    characters, lower-cased (ASCII only). Kept whole across their
    separators: IPv4 addresses (``10.0.0.1``; a ``:port`` is its own
    token), UUIDs (8-4-4-4-12 hex digits) and decimal numbers (``3.14``).
    Host names, paths and other dotted or dashed words split into parts.

    Parameters
    ----------
    text : str or bytes
        Bytes are read as UTF-8; invalid sequences inside a token come back
        as U+FFFD.

    Returns
    -------
    list of str

    Raises
    ------
    InvalidInput
        ``text`` is neither str nor bytes, or holds lone surrogates.
    """
    cdef Py_ssize_t size = 0
    cdef const char *data = utf8_of(text, &size, "tokenize")
    cdef size_t length = <size_t>size, cap = TW_TOKENS_MAX(length), n = 0, i
    cdef uint8_t *folded = <uint8_t *>malloc(length + 1)
    cdef size_t *starts = <size_t *>malloc(cap * sizeof(size_t))
    cdef size_t *ends = <size_t *>malloc(cap * sizeof(size_t))
    cdef int status
    cdef list tokens = []
    try:
        if folded == NULL or starts == NULL or ends == NULL:
            raise MemoryError("tokenize")
        if length >= NOGIL_BYTES:
            with nogil:
                tw_fold_ascii(<const uint8_t *>data, length, folded)
                status = tw_tokenize(folded, length, starts, ends, cap, &n)
        else:
            tw_fold_ascii(<const uint8_t *>data, length, folded)
            status = tw_tokenize(folded, length, starts, ends, cap, &n)
        check_status(status, "tokenize")
        for i in range(n):
            tokens.append(PyUnicode_DecodeUTF8(<const char *>folded + starts[i],
                                               ends[i] - starts[i], "replace"))
        return tokens
    finally:
        free(folded)
        free(starts)
        free(ends)


def tokenize_many(texts):
    """The index terms of many texts, flattened, for building an index.

    Same rules as :func:`tokenize`. The texts are folded into one buffer and
    tokenized without the GIL; one round of C work covers as many whole
    texts as fit 65536 tokens.

    Parameters
    ----------
    texts : sequence of str or bytes

    Returns
    -------
    tokens : list of str
        Every token of every text, in order.
    doc_ids : numpy.ndarray of uint32
        For each token, the index in ``texts`` of the text it came from.
    positions : numpy.ndarray of uint32
        For each token, its 0-based position among its text's tokens.

    Raises
    ------
    InvalidInput
        A text is neither str nor bytes or holds lone surrogates, or there
        are 2**32 texts or more.
    """
    cdef list items = list(texts)
    cdef size_t n_docs = len(items), d, total = 0, longest = 0, cap, i, n, done, first = 0
    cdef Py_ssize_t size = 0
    cdef const char *data
    cdef int status
    if n_docs > 0xFFFFFFFF:
        raise InvalidInput(f"tokenize_many: {n_docs} texts; at most 2**32 - 1 fit uint32 ids")
    cdef const char **sources = <const char **>malloc((n_docs + 1) * sizeof(char *))
    cdef size_t *offsets = <size_t *>malloc((n_docs + 1) * sizeof(size_t))
    cdef uint8_t *buf = NULL
    cdef uint32_t *docs = NULL
    cdef size_t *starts = NULL
    cdef size_t *ends = NULL
    cdef list tokens = []
    cdef uint32_t[::1] out_docs
    cdef uint32_t[::1] out_pos
    cdef size_t k = 0
    cdef uint32_t pos = 0, prev = 0xFFFFFFFF
    cdef uint32_t h
    cdef size_t length, j
    cdef const char *start
    # The cache's keys point into buf, which outlives it; empty slots have
    # length 0, which no token has.
    cdef list cache = [None] * (CACHE_MASK + 1)
    cdef const char *cache_key[CACHE_MASK + 1]
    cdef size_t cache_len[CACHE_MASK + 1]
    memset(cache_len, 0, sizeof(cache_len))
    try:
        if sources == NULL or offsets == NULL:
            raise MemoryError("tokenize_many")
        for d in range(n_docs):
            # items keeps every text alive, so the UTF-8 pointers stay valid.
            sources[d] = utf8_of(items[d], &size, "tokenize_many")
            offsets[d] = total
            total += <size_t>size
            if <size_t>size > longest:
                longest = <size_t>size
        offsets[n_docs] = total
        cap = max(ROUND_TOKENS, TW_TOKENS_MAX(longest))
        buf = <uint8_t *>malloc(total + 1)
        docs = <uint32_t *>malloc(cap * sizeof(uint32_t))
        starts = <size_t *>malloc(cap * sizeof(size_t))
        ends = <size_t *>malloc(cap * sizeof(size_t))
        if buf == NULL or docs == NULL or starts == NULL or ends == NULL:
            raise MemoryError("tokenize_many")
        with nogil:
            for d in range(n_docs):
                tw_fold_ascii(<const uint8_t *>sources[d], offsets[d + 1] - offsets[d],
                              buf + offsets[d])
        doc_ids = np.empty(TW_TOKENS_MAX(total) if total < 4 * ROUND_TOKENS else total // 4 + 1,
                           UINT32)
        positions = np.empty(doc_ids.shape[0], UINT32)
        out_docs = doc_ids
        out_pos = positions
        while first < n_docs:
            with nogil:
                status = tw_tokenize_many(buf, total, offsets, n_docs, first, docs, starts, ends,
                                          cap, &n, &done)
            if status != TW_ERR_NOSPACE:
                check_status(status, "tokenize_many")
            if k + n > <size_t>out_docs.shape[0]:
                grown = max(2 * <size_t>out_docs.shape[0], k + n)
                out_docs = None
                out_pos = None
                doc_ids.resize(grown, refcheck=False)
                positions.resize(grown, refcheck=False)
                out_docs = doc_ids
                out_pos = positions
            for i in range(n):
                # Log lines repeat most of their tokens: a direct-mapped cache
                # keyed by the folded bytes hands out one str per distinct
                # recent token instead of allocating one per occurrence.
                length = ends[i] - starts[i]
                start = <const char *>buf + starts[i]
                h = 2166136261
                for j in range(length):
                    h = (h ^ <uint8_t>start[j]) * 16777619
                h = (h ^ (h >> 15)) & CACHE_MASK
                if cache_len[h] == length and memcmp(cache_key[h], start, length) == 0:
                    tokens.append(cache[h])
                else:
                    token = PyUnicode_DecodeUTF8(start, length, "replace")
                    cache[h] = token
                    cache_key[h] = start
                    cache_len[h] = length
                    tokens.append(token)
                if docs[i] != prev:
                    prev = docs[i]
                    pos = 0
                out_docs[k] = docs[i]
                out_pos[k] = pos
                pos += 1
                k += 1
            first = done
        out_docs = None
        out_pos = None
        doc_ids.resize(k, refcheck=False)
        positions.resize(k, refcheck=False)
        return tokens, doc_ids, positions
    finally:
        free(sources)
        free(offsets)
        free(buf)
        free(docs)
        free(starts)
        free(ends)


cdef object as_uint32(object values, str what):
    """values as a 1-d C-contiguous uint32 array; no copy when it already is one."""
    cdef object arr = np.asarray(values)
    if arr.ndim != 1:
        raise InvalidInput(f"bm25_top_k: {what} must be 1-d, got {arr.ndim} dimensions")
    if arr.dtype == UINT32:
        return np.ascontiguousarray(arr)
    if arr.size == 0:
        return np.empty(0, UINT32)
    if arr.dtype.kind != "i" and arr.dtype.kind != "u":
        raise InvalidInput(f"bm25_top_k: {what} must hold integers, got dtype {arr.dtype}")
    if arr.min() < 0 or arr.max() > 0xFFFFFFFF:
        raise InvalidInput(f"bm25_top_k: {what} must be in 0..2**32-1")
    return np.ascontiguousarray(arr, dtype=UINT32)


def bm25_top_k(postings, tfs, idf, doc_lengths, double avgdl, Py_ssize_t k,
               double k1=1.2, double b=0.75):
    """The ``k`` best documents for a disjunctive query, by Okapi BM25.

    A document matching any term scores the sum over its matching terms,
    in term order, of ``idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl /
    avgdl))``. Exhaustive document-at-a-time scoring with a size-k heap:
    O(postings * terms + matches * log k), without the GIL for large
    queries.

    Parameters
    ----------
    postings : sequence of array_like of uint32
        Per query term, its strictly increasing document ids (the caller's
        duty: unsorted lists rank unpredictably but safely).
    tfs : sequence of array_like of uint32
        Per query term, the term frequency of each posting.
    idf : array_like of float64
        Per query term, its inverse document frequency.
    doc_lengths : array_like of uint32
        Length in tokens of every document, indexed by doc id.
    avgdl : float
        Average document length (> 0).
    k : int
        How many documents to return (>= 0).
    k1, b : float
        BM25 parameters: k1 >= 0, 0 <= b <= 1.

    Returns
    -------
    ids : numpy.ndarray of uint32
    scores : numpy.ndarray of float64
        At most ``k`` documents, by score descending then id ascending.

    Raises
    ------
    InvalidInput
        Lengths disagree, a doc id is not below ``len(doc_lengths)``, or a
        parameter is out of range.
    """
    cdef list lists = [as_uint32(ids, "postings") for ids in postings]
    cdef list freqs = [as_uint32(freq, "tfs") for freq in tfs]
    cdef size_t n_terms = len(lists), t, n = 0
    if k < 0:
        raise InvalidInput(f"bm25_top_k: k must be >= 0, got {k}")
    if len(freqs) != n_terms:
        raise InvalidInput(f"bm25_top_k: {n_terms} posting lists but {len(freqs)} tf lists")
    cdef const double[::1] idf_view = np.ascontiguousarray(idf, dtype=FLOAT64).reshape(-1)
    if <size_t>idf_view.shape[0] != n_terms:
        raise InvalidInput(f"bm25_top_k: {n_terms} posting lists but {idf_view.shape[0]} idf "
                           f"values")
    cdef const uint32_t[::1] lengths = as_uint32(doc_lengths, "doc_lengths")
    cdef const uint32_t[::1] view
    # No more documents can match than there are postings: a huge k costs nothing.
    cdef size_t total = sum([arr.shape[0] for arr in lists])
    cdef size_t cap = min(<size_t>k, total)
    ids = np.empty(cap, UINT32)
    scores = np.empty(cap, FLOAT64)
    cdef uint32_t[::1] ids_view = ids
    cdef double[::1] scores_view = scores
    cdef const uint32_t **p_lists = <const uint32_t **>malloc((n_terms + 1) * sizeof(uint32_t *))
    cdef const uint32_t **p_tfs = <const uint32_t **>malloc((n_terms + 1) * sizeof(uint32_t *))
    cdef size_t *lens = <size_t *>malloc((n_terms + 1) * sizeof(size_t))
    cdef size_t *cursors = <size_t *>malloc((n_terms + 1) * sizeof(size_t))
    cdef int status
    try:
        if p_lists == NULL or p_tfs == NULL or lens == NULL or cursors == NULL:
            raise MemoryError("bm25_top_k")
        for t in range(n_terms):
            if lists[t].shape[0] != freqs[t].shape[0]:
                raise InvalidInput(f"bm25_top_k: term {t} has {lists[t].shape[0]} postings but "
                                   f"{freqs[t].shape[0]} term frequencies")
            # lists and freqs hold the arrays until return; numpy never moves data.
            view = lists[t]
            p_lists[t] = &view[0]
            lens[t] = view.shape[0]
            view = freqs[t]
            p_tfs[t] = &view[0]
        if total >= NOGIL_BYTES:
            with nogil:
                status = tw_bm25_top_k(p_lists, p_tfs, lens, &idf_view[0], n_terms,
                                       &lengths[0], lengths.shape[0], avgdl, k1, b, cap,
                                       cursors, &ids_view[0], &scores_view[0], &n)
        else:
            status = tw_bm25_top_k(p_lists, p_tfs, lens, &idf_view[0], n_terms, &lengths[0],
                                   lengths.shape[0], avgdl, k1, b, cap, cursors, &ids_view[0],
                                   &scores_view[0], &n)
        check_status(status, "bm25_top_k")
    finally:
        free(p_lists)
        free(p_tfs)
        free(lens)
        free(cursors)
    ids_view = None
    scores_view = None
    if n < cap:
        ids.resize(n, refcheck=False)
        scores.resize(n, refcheck=False)
    return ids, scores


cdef extern from "postings/invert.h" nogil:
    ctypedef struct tw_inverted:
        size_t inv_docs
        size_t inv_tokens
        size_t inv_terms
        size_t inv_entries
        uint8_t *inv_term_bytes
        uint64_t *inv_term_offsets
        uint64_t *inv_entry_starts
        uint64_t *inv_position_starts
        uint32_t *inv_entry_rows
        uint32_t *inv_tfs
        uint32_t *inv_positions
        uint32_t *inv_lengths
    int tw_invert(const uint8_t *text, size_t len, const size_t *offsets, size_t n_docs,
                  tw_inverted *out)
    int tw_invert_whole(const uint8_t *text, size_t len, const size_t *offsets, size_t n_docs,
                        tw_inverted *out)
    void tw_inverted_free(tw_inverted *inv)


cdef object copy_array(const void *data, size_t n, object dtype):
    """A new numpy array of n items of dtype copied from data (NULL when n is 0)."""
    out = np.empty(n, dtype)
    cdef uint8_t[::1] raw = out.view(np.uint8)
    if n:
        memcpy(&raw[0], data, n * out.itemsize)
    return out


def invert(texts):
    """The inverted index of a batch of texts, for writing an index segment.

    Same terms as :func:`tokenize_many`, interned, sorted and grouped in C
    without the GIL (see csrc/postings/invert.h): no Python object is made
    per token or per term.

    Parameters
    ----------
    texts : sequence of str
        The documents; row ``d`` is ``texts[d]``.

    Returns
    -------
    utf8 : bytes
        The texts' UTF-8 bytes back to back (not case-folded).
    text_offsets : numpy.ndarray of uint64
        ``len(texts) + 1`` offsets of each text in ``utf8``.
    terms : bytes
        The distinct terms, sorted by bytes, back to back (UTF-8).
    term_offsets : numpy.ndarray of uint64
        ``len(term list) + 1`` offsets of each term in ``terms``.
    entry_starts : numpy.ndarray of uint64
        Per term, where its entries start in ``entry_rows`` / ``tfs``, and
        the total at the end.
    entry_rows, tfs : numpy.ndarray of uint32
        Per entry, the row of a document holding the term and how often.
    position_starts : numpy.ndarray of uint64
        Per term, where its positions start in ``positions``; the total last.
    positions : numpy.ndarray of uint32
        Per term, per entry, the token positions of its occurrences.
    lengths : numpy.ndarray of uint32
        Tokens per text.

    Raises
    ------
    InvalidInput
        A text is not str or holds lone surrogates, or there are 2**32
        texts, or 2**32 distinct terms, or more.
    """
    cdef list items = list(texts)
    cdef size_t n_docs = len(items), d, total = 0
    cdef Py_ssize_t size = 0
    cdef int status
    cdef tw_inverted inv
    if n_docs > 0xFFFFFFFF:
        raise InvalidInput(f"invert: {n_docs} texts; at most 2**32 - 1 fit uint32 rows")
    for d in range(n_docs):
        if not isinstance(items[d], str):
            raise InvalidInput(f"invert needs str texts, not {type(items[d]).__name__} (text {d})")
    cdef const char **sources = <const char **>malloc((n_docs + 1) * sizeof(char *))
    cdef size_t *offsets = <size_t *>malloc((n_docs + 1) * sizeof(size_t))
    text_offsets = np.empty(n_docs + 1, np.uint64)
    cdef uint64_t[::1] offsets_view = text_offsets
    cdef uint8_t *folded = NULL
    cdef char *raw
    memset(&inv, 0, sizeof(inv))
    try:
        if sources == NULL or offsets == NULL:
            raise MemoryError("invert")
        for d in range(n_docs):
            # items keeps every text alive, so the UTF-8 pointers stay valid.
            sources[d] = utf8_of(items[d], &size, "invert")
            offsets[d] = total
            offsets_view[d] = total
            total += <size_t>size
        offsets[n_docs] = total
        offsets_view[n_docs] = total
        utf8 = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>total)
        raw = PyBytes_AS_STRING(utf8)
        folded = <uint8_t *>malloc(total + 1)
        if folded == NULL:
            raise MemoryError("invert")
        with nogil:
            for d in range(n_docs):
                memcpy(raw + offsets[d], sources[d], offsets[d + 1] - offsets[d])
            tw_fold_ascii(<const uint8_t *>raw, total, folded)
            status = tw_invert(folded, total, offsets, n_docs, &inv)
        if status == TW_ERR_OVERFLOW:
            raise InvalidInput("invert: 2**32 distinct terms, or a text of 2**32 tokens, or "
                               "more; write smaller segments")
        if status == TW_ERR_NOMEM:
            raise MemoryError("invert")
        check_status(status, "invert")
        return (
            utf8,
            text_offsets,
            PyBytes_FromStringAndSize(<const char *>inv.inv_term_bytes,
                                      <Py_ssize_t>inv.inv_term_offsets[inv.inv_terms]),
            copy_array(inv.inv_term_offsets, inv.inv_terms + 1, np.uint64),
            copy_array(inv.inv_entry_starts, inv.inv_terms + 1, np.uint64),
            copy_array(inv.inv_entry_rows, inv.inv_entries, np.uint32),
            copy_array(inv.inv_tfs, inv.inv_entries, np.uint32),
            copy_array(inv.inv_position_starts, inv.inv_terms + 1, np.uint64),
            copy_array(inv.inv_positions, inv.inv_tokens, np.uint32),
            copy_array(inv.inv_lengths, n_docs, np.uint32),
        )
    finally:
        tw_inverted_free(&inv)
        free(sources)
        free(offsets)
        free(folded)


cdef const char *value_utf8(object value, Py_ssize_t index, Py_ssize_t *size,
                            str what="keyword value") except? NULL:
    """The UTF-8 of a value (NULL for None); InvalidInput names the index."""
    if value is None:
        return NULL
    if not isinstance(value, str):
        raise InvalidInput(f"{what} {index} is {type(value).__name__}, not str")
    try:
        return PyUnicode_AsUTF8AndSize(value, size)
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"{what} {index} is not encodable as UTF-8 ({exc.reason} at "
                           f"index {exc.start}); lone surrogates cannot be indexed") from None


def check_values(values, *, str what="keyword value", bint allow_none=True):
    """Check values to index: each a str encodable as UTF-8 (or None if allowed).

    A loop in C; the UTF-8 of a non-ASCII str is cached in it, where
    :func:`invert` and :func:`invert_values` find it again.

    Parameters
    ----------
    values : list of str or None
    what : str
        What a value is, for the message (``"text"``).
    allow_none : bool
        Whether None passes (a keyword column's missing value).

    Raises
    ------
    InvalidInput
        The message names the first bad value's index.
    """
    cdef list items = values if type(values) is list else list(values)
    cdef Py_ssize_t i, size = 0
    cdef object value
    for i in range(len(items)):
        value = items[i]
        if value is None and not allow_none:
            raise InvalidInput(f"{what} {i} is None, not str")
        value_utf8(value, i, &size, what)


def invert_values(values, str prefix):
    """The postings of keyword values: each distinct value, sorted, with its indexes.

    Like :func:`invert` with every value one whole term (not tokenized, not
    case-folded), in C without the GIL; None values are left out.

    Parameters
    ----------
    values : list of str or None
    prefix : str
        Written before every key (``name=``).

    Returns
    -------
    keys : bytes
        ``prefix + value`` for each distinct value, sorted by bytes, back
        to back (UTF-8).
    key_offsets : numpy.ndarray of uint64
        ``len(key list) + 1`` offsets of each key in ``keys``.
    starts : numpy.ndarray of uint64
        Per key, where its indexes start in ``indexes``; the total last.
    indexes : numpy.ndarray of uint32
        Per key, ascending, the indexes in ``values`` holding its value.

    Raises
    ------
    InvalidInput
        A value is neither str nor None or is not encodable as UTF-8, or
        there are 2**32 values or more.
    """
    cdef list items = values if type(values) is list else list(values)
    cdef size_t n = len(items), i, kept = 0, total = 0, k, t
    cdef Py_ssize_t size = 0
    cdef const char *data
    cdef int status
    cdef tw_inverted inv
    if n > 0xFFFFFFFF:
        raise InvalidInput(f"invert_values: {n} values; at most 2**32 - 1 fit uint32 indexes")
    cdef bytes prefix_utf8 = prefix.encode("utf-8")
    cdef size_t prefix_len = len(prefix_utf8)
    cdef const char *prefix_ptr = prefix_utf8
    cdef const char **sources = <const char **>malloc((n + 1) * sizeof(char *))
    cdef size_t *offsets = <size_t *>malloc((n + 1) * sizeof(size_t))
    cdef uint32_t *kept_index = <uint32_t *>malloc((n + 1) * sizeof(uint32_t))
    cdef char *buf = NULL
    cdef char *out
    cdef uint64_t[::1] out_offsets
    cdef uint32_t[::1] out_indexes
    memset(&inv, 0, sizeof(inv))
    try:
        if sources == NULL or offsets == NULL or kept_index == NULL:
            raise MemoryError("invert_values")
        for i in range(n):
            # items keeps every value alive, so the UTF-8 pointers stay valid.
            data = value_utf8(items[i], i, &size)
            if data == NULL:
                continue
            sources[kept] = data
            offsets[kept] = total
            kept_index[kept] = <uint32_t>i
            kept += 1
            total += <size_t>size
        offsets[kept] = total
        buf = <char *>malloc(total + 1)
        if buf == NULL:
            raise MemoryError("invert_values")
        with nogil:
            for k in range(kept):
                memcpy(buf + offsets[k], sources[k], offsets[k + 1] - offsets[k])
            status = tw_invert_whole(<const uint8_t *>buf, total, offsets, kept, &inv)
        if status == TW_ERR_NOMEM:
            raise MemoryError("invert_values")
        check_status(status, "invert_values")
        key_bytes = inv.inv_term_offsets[inv.inv_terms] + inv.inv_terms * prefix_len
        keys = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>key_bytes)
        out = PyBytes_AS_STRING(keys)
        key_offsets = np.empty(inv.inv_terms + 1, np.uint64)
        indexes = np.empty(inv.inv_entries, np.uint32)
        out_offsets = key_offsets
        out_indexes = indexes
        with nogil:
            out_offsets[0] = 0
            for t in range(inv.inv_terms):
                memcpy(out + out_offsets[t], prefix_ptr, prefix_len)
                memcpy(out + out_offsets[t] + prefix_len,
                       inv.inv_term_bytes + inv.inv_term_offsets[t],
                       inv.inv_term_offsets[t + 1] - inv.inv_term_offsets[t])
                out_offsets[t + 1] = (out_offsets[t] + prefix_len + inv.inv_term_offsets[t + 1]
                                      - inv.inv_term_offsets[t])
            for k in range(inv.inv_entries):
                out_indexes[k] = kept_index[inv.inv_entry_rows[k]]
        return (keys, key_offsets, copy_array(inv.inv_entry_starts, inv.inv_terms + 1, np.uint64),
                indexes)
    finally:
        tw_inverted_free(&inv)
        free(sources)
        free(offsets)
        free(kept_index)
        free(buf)
