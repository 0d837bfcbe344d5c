# cython: boundscheck=False, wraparound=False
"""Compiled posting-list kernels over csrc/postings.

trusswork.search.postings re-exports these. Inputs become 1-d C-contiguous
uint32 arrays (no copy when they already are); outputs are fresh uint32
arrays allocated at their largest possible size, filled by C without the
GIL, then shrunk in place. Every C status passes through check_status.
"""
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc

from trusswork._includes.common cimport (
    TW_ERR_CORRUPT,
    TW_ERR_INVALID,
    TW_ERR_NOMEM,
    TW_ERR_OVERFLOW,
    TW_ERR_TRUNCATED,
    TW_OK,
)
from trusswork._includes.postings cimport *

import numpy as np

from trusswork.core.errors import Corruption, InvalidInput

# Below this many ids, releasing the GIL costs more than it frees.
cdef size_t NOGIL_IDS = 8192
cdef object UINT32 = np.dtype(np.uint32)
cdef object ID_MAX = 0xFFFFFFFF


cdef int check_status(int status, str what, size_t where) except -1 nogil:
    """The choke point: turn a csrc/postings status into a trusswork error."""
    if status == TW_OK:
        return 0
    with gil:
        if status == TW_ERR_TRUNCATED:
            raise Corruption(f"{what}: the posting list is cut short: it ends inside the "
                             f"item that starts at byte offset {where}")
        if status == TW_ERR_CORRUPT and where == 0:
            raise Corruption(f"{what}: the checksum at byte offset 0 does not match the "
                             f"posting list; the bytes were damaged")
        if status == TW_ERR_CORRUPT:
            raise Corruption(f"{what}: damaged posting list at byte offset {where} "
                             f"(a format rule fails there)")
        if status == TW_ERR_INVALID:
            raise InvalidInput(f"{what}: ids must be strictly increasing, but the id at "
                               f"index {where} is not above the one before it")
        if status == TW_ERR_OVERFLOW:
            raise InvalidInput(f"{what}: the list is too large for the posting format "
                               f"(its blocks would pass 4 GiB)")
        if status == TW_ERR_NOMEM:
            raise MemoryError(what)
        raise RuntimeError(f"{what}: internal error (status {status}, at {where})")


cdef object as_postings(object ids, str what):
    """ids as a 1-d C-contiguous uint32 array; no copy when it already is one."""
    cdef object arr = np.asarray(ids)
    if arr.ndim != 1:
        raise InvalidInput(f"{what} needs a 1-d array of ids, got {arr.ndim} dimensions")
    if arr.dtype == UINT32:
        return np.ascontiguousarray(arr)
    if arr.size == 0:
        return np.empty(0, UINT32)
    kind = arr.dtype.kind
    if kind != "i" and kind != "u":
        raise InvalidInput(f"{what} needs integer ids (uint32), got dtype {arr.dtype}")
    if kind == "i" or arr.dtype.itemsize > 4:
        low = arr.min()
        high = arr.max()
        if low < 0 or high > ID_MAX:
            raise InvalidInput(f"{what}: ids must be in 0..2**32-1, got values from "
                               f"{low} to {high}")
    return np.ascontiguousarray(arr, dtype=UINT32)


cdef inline object shrink(object out, size_t n):
    """out cut to its first n ids, in place (realloc keeps the prefix)."""
    if n < <size_t>out.shape[0]:
        out.resize(n, refcheck=False)
    return out


cdef int pair_op(int op, const uint32_t *a, size_t na, const uint32_t *b, size_t nb,
                 uint32_t *out, size_t cap, size_t *n) noexcept nogil:
    if op == 0:
        return tw_postings_intersect(a, na, b, nb, out, cap, n)
    if op == 1:
        return tw_postings_union(a, na, b, nb, out, cap, n)
    return tw_postings_difference(a, na, b, nb, out, cap, n)


cdef size_t run_pair(int op, const uint32_t[::1] a, const uint32_t[::1] b,
                     uint32_t[::1] out) except? 0:
    """One two-list operation into out; the buffers are released on return."""
    cdef size_t na = a.shape[0], nb = b.shape[0], cap = out.shape[0], n = 0
    cdef int status
    if na + nb >= NOGIL_IDS:
        with nogil:
            status = pair_op(op, &a[0], na, &b[0], nb, &out[0], cap, &n)
    else:
        status = pair_op(op, &a[0], na, &b[0], nb, &out[0], cap, &n)
    check_status(status, ("intersect", "union", "difference")[op], 0)
    return n


def intersect(a, b):
    """Ids in both lists.

    Galloping search through the longer list when one list is at least 16
    times the other, so a rare id list against a frequent one costs
    O(small * log(large / small)); a linear merge otherwise.

    Parameters
    ----------
    a, b : array_like of uint32
        Sorted, unique ids (1-d). Other integer dtypes are converted after a
        range check. Sortedness is the caller's duty: it is not checked (that
        would cost more than the intersection), and unsorted input gives an
        unspecified result.

    Returns
    -------
    numpy.ndarray of uint32
        A new sorted unique array.

    Raises
    ------
    InvalidInput
        An input is not 1-d, not integers, or holds ids outside 0..2**32-1.
    """
    a = as_postings(a, "intersect")
    b = as_postings(b, "intersect")
    out = np.empty(min(a.shape[0], b.shape[0]), UINT32)
    return shrink(out, run_pair(0, a, b, out))


def union(a, b):
    """Ids in either list.

    Parameters
    ----------
    a, b : array_like of uint32
        Sorted, unique ids (1-d); conversion and the caller's duty as in
        :func:`intersect`.

    Returns
    -------
    numpy.ndarray of uint32
        A new sorted unique array.

    Raises
    ------
    InvalidInput
        An input is not 1-d, not integers, or holds ids outside 0..2**32-1.
    """
    a = as_postings(a, "union")
    b = as_postings(b, "union")
    out = np.empty(a.shape[0] + b.shape[0], UINT32)
    return shrink(out, run_pair(1, a, b, out))


def difference(a, b):
    """Ids in ``a`` and not in ``b``.

    Gallops like :func:`intersect` when the sizes differ 16 times or more.

    Parameters
    ----------
    a, b : array_like of uint32
        Sorted, unique ids (1-d); conversion and the caller's duty as in
        :func:`intersect`.

    Returns
    -------
    numpy.ndarray of uint32
        A new sorted unique array.

    Raises
    ------
    InvalidInput
        An input is not 1-d, not integers, or holds ids outside 0..2**32-1.
    """
    a = as_postings(a, "difference")
    b = as_postings(b, "difference")
    out = np.empty(a.shape[0], UINT32)
    return shrink(out, run_pair(2, a, b, out))


cdef int many_op(int op, const uint32_t **lists, const size_t *lens, size_t k, uint32_t *out,
                 size_t cap, size_t *n) noexcept nogil:
    if op == 0:
        return tw_postings_intersect_many(lists, lens, k, out, cap, n)
    return tw_postings_union_many(lists, lens, k, out, cap, n)


cdef size_t run_many(int op, list arrays, uint32_t[::1] out) except? 0:
    cdef size_t k = len(arrays), i, n = 0, total = 0
    cdef const uint32_t[::1] view
    cdef const uint32_t **lists = <const uint32_t **>malloc((k + 1) * sizeof(uint32_t *))
    cdef size_t *lens = <size_t *>malloc((k + 1) * sizeof(size_t))
    cdef int status
    try:
        if lists == NULL or lens == NULL:
            raise MemoryError("posting list pointers")
        for i in range(k):
            # The arrays outlive this call (the caller holds them), and numpy
            # never moves an array's data, so the pointer stays valid.
            view = arrays[i]
            lists[i] = &view[0]
            lens[i] = view.shape[0]
            total += lens[i]
        if total >= NOGIL_IDS:
            with nogil:
                status = many_op(op, lists, lens, k, &out[0], out.shape[0], &n)
        else:
            status = many_op(op, lists, lens, k, &out[0], out.shape[0], &n)
        check_status(status, ("intersect_many", "union_many")[op], 0)
        return n
    finally:
        free(lists)
        free(lens)


def intersect_many(lists):
    """Ids in every list.

    The lists are intersected smallest first, so the running result shrinks
    as early as possible and the later steps gallop.

    Parameters
    ----------
    lists : sequence of array_like of uint32
        Sorted, unique id lists (see :func:`intersect`).

    Returns
    -------
    numpy.ndarray of uint32
        A new sorted unique array; empty when ``lists`` is empty.

    Raises
    ------
    InvalidInput
        A list is not 1-d, not integers, or holds ids outside 0..2**32-1.
    """
    cdef list arrays = [as_postings(ids, "intersect_many") for ids in lists]
    out = np.empty(min([x.shape[0] for x in arrays], default=0), UINT32)
    return shrink(out, run_many(0, arrays, out))


def union_many(lists):
    """Ids in any list.

    A k-way merge through a heap of list heads: O(total * log k).

    Parameters
    ----------
    lists : sequence of array_like of uint32
        Sorted, unique id lists (see :func:`intersect`).

    Returns
    -------
    numpy.ndarray of uint32
        A new sorted unique array; empty when ``lists`` is empty.

    Raises
    ------
    InvalidInput
        A list is not 1-d, not integers, or holds ids outside 0..2**32-1.
    """
    cdef list arrays = [as_postings(ids, "union_many") for ids in lists]
    out = np.empty(sum([x.shape[0] for x in arrays]), UINT32)
    return shrink(out, run_many(1, arrays, out))


def encode_postings(ids):
    """A sorted unique id list as compact bytes for disk.

    Blocks of 128 ids, each delta-encoded and bit-packed at its own width,
    behind a skip table of each block's first id and a checksum; the byte
    layout is documented in csrc/postings/postings.h. A run of consecutive
    ids costs about one byte per 128 ids.

    Parameters
    ----------
    ids : array_like of uint32
        Strictly increasing ids (checked here).

    Returns
    -------
    bytes
        The encoding; :func:`decode_postings` gives the ids back.

    Raises
    ------
    InvalidInput
        ``ids`` is not 1-d integers in 0..2**32-1, or not strictly increasing
        (the message gives the first index out of order).
    """
    cdef const uint32_t[::1] view = as_postings(ids, "encode_postings")
    cdef size_t n = view.shape[0], written = 0
    cdef size_t bound = tw_postings_encoded_bound(n)
    cdef uint8_t *buf
    cdef int status
    if bound == 0:
        raise InvalidInput(f"encode_postings: {n} ids cannot be unique uint32 ids")
    buf = <uint8_t *>malloc(bound)
    if buf == NULL:
        raise MemoryError("encode_postings")
    try:
        if n >= NOGIL_IDS:
            with nogil:
                status = tw_postings_encode(&view[0], n, buf, bound, &written)
        else:
            status = tw_postings_encode(&view[0], n, buf, bound, &written)
        check_status(status, "encode_postings", written)
        return PyBytes_FromStringAndSize(<char *>buf, written)
    finally:
        free(buf)


def decode_postings(data):
    """The ids :func:`encode_postings` wrote.

    Every format rule and the checksum are checked; no byte outside ``data``
    is read whatever it holds.

    Parameters
    ----------
    data : bytes-like
        One encoded posting list, exactly (no trailing bytes).

    Returns
    -------
    numpy.ndarray of uint32
        The sorted unique ids.

    Raises
    ------
    Corruption
        The bytes are cut short or damaged; the message gives the byte
        offset of the first damage found (0 when only the checksum fails).
    """
    cdef const uint8_t[::1] view
    cdef size_t count = 0, n = 0, where = 0
    cdef int status
    try:
        view = data
    except (TypeError, ValueError, BufferError) as exc:
        raise InvalidInput(f"decode_postings needs contiguous bytes, not "
                           f"{type(data).__name__} ({exc})") from None
    cdef size_t length = view.shape[0]
    status = tw_postings_decoded_count(&view[0], length, &count, &where)
    check_status(status, "decode_postings", where)
    out = np.empty(count, UINT32)
    cdef uint32_t[::1] ids = out
    if count >= NOGIL_IDS:
        with nogil:
            status = tw_postings_decode(&view[0], length, &ids[0], count, &n, &where)
    else:
        status = tw_postings_decode(&view[0], length, &ids[0], count, &n, &where)
    check_status(status, "decode_postings", where)
    return out


cdef extern from "postings/postings.h" nogil:
    size_t tw_postings_encoded_bound_many(const uint64_t *starts, size_t k)
    int tw_postings_encode_many(const uint32_t *ids, const uint64_t *starts, size_t k,
                                uint8_t *out, size_t cap, uint64_t *offsets, size_t *err_list,
                                size_t *err_index)


def encode_postings_many(ids, starts):
    """Many posting lists, each encoded as by :func:`encode_postings`, back to back.

    One call for a whole term dictionary: list ``i`` is
    ``ids[starts[i]:starts[i + 1]]``. Encoding runs without the GIL.

    Parameters
    ----------
    ids : array_like of uint32
        Every list's ids, one after another; each list strictly increasing.
    starts : array_like of int
        ``k + 1`` non-decreasing bounds into ``ids``, from 0 to ``len(ids)``.

    Returns
    -------
    blob : bytes
        The ``k`` encodings back to back.
    offsets : numpy.ndarray of uint64
        ``k + 1`` offsets: list ``i`` is ``blob[offsets[i]:offsets[i + 1]]``.

    Raises
    ------
    InvalidInput
        ``ids`` is not 1-d integers in 0..2**32-1, ``starts`` does not run
        from 0 to ``len(ids)`` without decreasing, or a list is not strictly
        increasing (the message names the list and the index in it).
    """
    cdef const uint32_t[::1] view = as_postings(ids, "encode_postings_many")
    bounds = np.asarray(starts)
    if bounds.ndim != 1 or bounds.shape[0] == 0 or bounds.dtype.kind not in "iu":
        raise InvalidInput("encode_postings_many needs starts as a 1-d integer array of "
                           "k + 1 bounds")
    cdef Py_ssize_t last = bounds.shape[0] - 1
    if bounds[0] != 0 or bounds[last] != view.shape[0] or np.any(bounds[1:] < bounds[:last]):
        raise InvalidInput(f"encode_postings_many: starts must run from 0 to len(ids) = "
                           f"{view.shape[0]} without decreasing")
    cdef const uint64_t[::1] bound_view = np.ascontiguousarray(bounds, dtype=np.uint64)
    cdef size_t k = bound_view.shape[0] - 1, cap, err_list = 0, err_index = 0
    cap = tw_postings_encoded_bound_many(&bound_view[0], k)
    if cap == 0 and k > 0:
        raise InvalidInput("encode_postings_many: a list is too long for the posting format")
    offsets = np.empty(k + 1, np.uint64)
    cdef uint64_t[::1] offsets_view = offsets
    cdef const uint32_t *ids_ptr = &view[0] if view.shape[0] else NULL
    cdef uint8_t *buf = <uint8_t *>malloc(cap + 1)
    cdef int status
    if buf == NULL:
        raise MemoryError("encode_postings_many")
    try:
        with nogil:
            status = tw_postings_encode_many(ids_ptr, &bound_view[0], k, buf, cap,
                                             &offsets_view[0], &err_list, &err_index)
        if status == TW_ERR_INVALID:
            raise InvalidInput(f"encode_postings_many: list {err_list}: ids must be strictly "
                               f"increasing, but the id at index {err_index} is not above the "
                               f"one before it")
        check_status(status, "encode_postings_many", 0)
        return PyBytes_FromStringAndSize(<char *>buf, <Py_ssize_t>offsets_view[k]), offsets
    finally:
        free(buf)
