# cython: boundscheck=False, wraparound=False, cdivision=True
"""Compiled kernels of csrc/common: CRC32C, LEB128 varints, bit packing.

Users call these through trusswork.core.checksum, trusswork.core.varint and
trusswork.core.bits. Every C status passes through check_status; C work
runs without the GIL once inputs are large enough for that to pay.
"""
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport uint8_t, uint32_t, uint64_t

from trusswork._includes.common cimport *

import numpy as np

from trusswork.core.errors import Corruption, InvalidInput

# Below this many bytes, releasing the GIL costs more than it frees.
cdef size_t NOGIL_BYTES = 32768


cdef int check_status(int status, str what, Py_ssize_t where, bint decoding) except -1 nogil:
    """The choke point: turn a csrc/common status into a trusswork error."""
    if status == TW_OK:
        return 0
    with gil:
        if status == TW_ERR_TRUNCATED:
            raise Corruption(f"{what}: input ends inside the item that starts at byte offset {where}")
        if status == TW_ERR_OVERFLOW and decoding:
            raise Corruption(f"{what}: the varint at byte offset {where} is longer than "
                             f"10 bytes or exceeds 64 bits")
        if status == TW_ERR_OVERFLOW:
            raise InvalidInput(f"{what}: the value at index {where} does not fit its bit width")
        if status == TW_ERR_INVALID:
            raise InvalidInput(f"{what}: the width at index {where} is not in 0..64")
        if status == TW_ERR_CORRUPT:
            raise Corruption(f"{what}: damaged data at byte offset {where}")
        raise RuntimeError(f"{what}: internal error (status {status}) at {where}")


cdef int get_bytes(object data, Py_buffer *view, str what) except -1:
    try:
        PyObject_GetBuffer(data, view, PyBUF_SIMPLE)
    except TypeError:
        raise TypeError(f"{what} needs a contiguous bytes-like object, "
                        f"not {type(data).__name__}") from None
    except (ValueError, BufferError) as exc:
        # numpy refuses PyBUF_SIMPLE on strided arrays with a ValueError.
        raise InvalidInput(f"{what} needs a contiguous buffer ({exc}); "
                           f"copy it with np.ascontiguousarray or bytes()") from None
    return 0


# ---------------------------------------------------------------- CRC32C

cdef uint32_t as_seed(object seed, str what) except? 0:
    if type(seed) is int and 0 <= seed <= 0xFFFFFFFF:
        return <uint32_t>seed
    raise InvalidInput(f"{what} seed must be an int in 0..2**32-1, got {seed!r}")


def crc32c(data, seed=0):
    """CRC-32C of ``data``, continuing from ``seed`` (a previous result)."""
    cdef Py_buffer view
    cdef uint32_t crc = 0 if seed is 0 else as_seed(seed, "crc32c")
    cdef size_t length
    if type(data) is bytes:
        # The common case skips the buffer protocol: small checksums are
        # dominated by call overhead, not by the kernel.
        length = PyBytes_GET_SIZE(data)
        if length < NOGIL_BYTES:
            return tw_crc32c(crc, PyBytes_AS_STRING(data), length)
    get_bytes(data, &view, "crc32c")
    try:
        if <size_t>view.len >= NOGIL_BYTES:
            with nogil:
                crc = tw_crc32c(crc, view.buf, view.len)
        else:
            crc = tw_crc32c(crc, view.buf, view.len)
    finally:
        PyBuffer_Release(&view)
    return crc


def crc32c_software(data, seed=0):
    """CRC-32C with the portable table implementation (for tests)."""
    cdef Py_buffer view
    cdef uint32_t crc = as_seed(seed, "crc32c")
    get_bytes(data, &view, "crc32c")
    try:
        with nogil:
            crc = tw_crc32c_software(crc, view.buf, view.len)
    finally:
        PyBuffer_Release(&view)
    return crc


def crc32c_combine(crc_a, crc_b, length_b):
    """CRC-32C of A+B from crc32c(A), crc32c(B) and len(B)."""
    for name, value in (("crc_a", crc_a), ("crc_b", crc_b)):
        if not (type(value) is int and 0 <= value <= 0xFFFFFFFF):
            raise InvalidInput(f"crc32c_combine {name} must be an int in 0..2**32-1, got {value!r}")
    if not (type(length_b) is int and length_b >= 0):
        raise InvalidInput(f"crc32c_combine length_b must be a non-negative int, got {length_b!r}")
    return tw_crc32c_combine(crc_a, crc_b, length_b)


def crc32c_hardware_available():
    """True when crc32c uses the CPU's CRC instruction."""
    return bool(tw_crc32c_hardware_available())


CRC32C_IMPLEMENTATIONS = {"software": TW_CRC32C_SOFTWARE, "sse4.2": TW_CRC32C_SSE42,
                          "sse4.2+vpclmulqdq": TW_CRC32C_FUSED}


def crc32c_implementations():
    """Names of the CRC32C implementations this CPU can run, slowest first."""
    return [name for name, code in CRC32C_IMPLEMENTATIONS.items()
            if tw_crc32c_implementation_available(code)]


def crc32c_using(str implementation, data, seed=0):
    """CRC-32C with a named implementation (tests and benchmarks compare them)."""
    cdef Py_buffer view
    cdef int code
    cdef uint32_t crc = as_seed(seed, "crc32c")
    if implementation not in CRC32C_IMPLEMENTATIONS:
        raise InvalidInput(f"unknown crc32c implementation {implementation!r}; "
                           f"choose from {sorted(CRC32C_IMPLEMENTATIONS)}")
    code = CRC32C_IMPLEMENTATIONS[implementation]
    if not tw_crc32c_implementation_available(code):
        raise InvalidInput(f"crc32c implementation {implementation!r} needs CPU features "
                           f"this machine lacks")
    get_bytes(data, &view, "crc32c")
    try:
        with nogil:
            crc = tw_crc32c_using(code, crc, view.buf, view.len)
    finally:
        PyBuffer_Release(&view)
    return crc


# ---------------------------------------------------------------- varints

cdef object as_words(object values, bint zigzag, str what):
    """values as a contiguous 1-D int64 (zigzag) or uint64 array."""
    arr = np.asarray(values)
    if arr.dtype.kind in "fO" and not isinstance(values, np.ndarray) and arr.size:
        # numpy turns a list mixing small ints with ones above 2**63 into
        # float64 (or object); convert such Python ints exactly instead.
        if all(isinstance(v, int) for v in np.asarray(values, dtype=object).reshape(-1)):
            try:
                arr = np.asarray(values, dtype=np.int64 if zigzag else np.uint64)
            except OverflowError as exc:
                raise InvalidInput(f"{what}: {exc}; values must fit "
                                   f"{'int64' if zigzag else 'uint64'}") from None
    if arr.dtype.kind not in "iub" and arr.size:
        raise InvalidInput(f"{what} needs integers, got an array of {arr.dtype}")
    if zigzag:
        if arr.dtype == np.uint64 and arr.size and arr.max() > 0x7FFFFFFFFFFFFFFF:
            raise InvalidInput(f"{what}: value {arr.max()} exceeds int64; pass zigzag=False")
        return np.ascontiguousarray(arr, dtype=np.int64).reshape(-1)
    if arr.dtype.kind == "i" and arr.size and arr.min() < 0:
        index = int(np.argmax(arr.reshape(-1) < 0))
        raise InvalidInput(f"{what}: negative value {arr.reshape(-1)[index]} at index {index} "
                           f"needs zigzag=True")
    return np.ascontiguousarray(arr, dtype=np.uint64).reshape(-1)


def varint_encode(values, *, bint zigzag=True):
    """Encode integers as LEB128 varints (zigzag-mapped first when ``zigzag``)."""
    words = as_words(values, zigzag, "varint.encode")
    cdef const uint64_t[::1] view = words.view(np.uint64)
    cdef size_t n = view.shape[0], written = 0
    cdef const uint64_t *src = &view[0] if n else NULL
    # Encode into a worst-case scratch buffer (untouched pages cost nothing)
    # and copy out the used prefix: cheaper than a sizing pass over the input.
    scratch = np.empty(n * 10, dtype=np.uint8)
    cdef uint8_t[::1] buffer = scratch
    cdef uint8_t *dst = &buffer[0] if n else NULL
    cdef int status
    with nogil:
        status = tw_varint_encode(src, n, zigzag, dst, n * 10, &written)
    check_status(status, "varint.encode", written, False)
    return PyBytes_FromStringAndSize(<char *>dst, written)


cdef object decode_into(const uint8_t *src, size_t length, size_t count, bint zigzag,
                        size_t base, str what):
    """Decode up to count varints; returns (array, bytes consumed).

    ``base`` is the offset of ``src`` in the caller's buffer, so errors name
    absolute offsets.
    """
    result = np.empty(count, dtype=np.int64 if zigzag else np.uint64)
    cdef uint64_t[::1] out = result.view(np.uint64)
    cdef uint64_t *dst = &out[0] if count else NULL
    cdef size_t decoded = 0, consumed = 0
    cdef int status
    with nogil:
        status = tw_varint_decode(src, length, zigzag, dst, count, &decoded, &consumed)
    check_status(status, what, base + consumed, True)
    return result[:decoded], consumed


def varint_decode(data, *, bint zigzag=True):
    """Decode every varint in ``data`` into an int64 (or uint64) array."""
    cdef Py_buffer view
    cdef size_t count
    get_bytes(data, &view, "varint.decode")
    try:
        with nogil:
            count = tw_varint_count(<const uint8_t *>view.buf, view.len)
        result, consumed = decode_into(<const uint8_t *>view.buf, view.len, count, zigzag, 0,
                                       "varint.decode")
        if consumed != <size_t>view.len:
            raise Corruption(f"varint.decode: input ends inside the item that starts at "
                             f"byte offset {consumed}")
        return result
    finally:
        PyBuffer_Release(&view)


def varint_decode_prefix(data, Py_ssize_t count, *, bint zigzag=True, Py_ssize_t offset=0):
    """Decode ``count`` varints starting at ``offset``; return (values, end offset)."""
    cdef Py_buffer view
    get_bytes(data, &view, "varint.decode_prefix")
    try:
        if count < 0 or offset < 0 or offset > view.len:
            raise InvalidInput(f"varint.decode_prefix: count {count} and offset {offset} must be "
                               f"non-negative and offset at most {view.len}")
        result, consumed = decode_into(<const uint8_t *>view.buf + offset, view.len - offset,
                                       count, zigzag, offset, "varint.decode_prefix")
        if len(result) != count:
            raise Corruption(f"varint.decode_prefix: expected {count} varints from byte offset "
                             f"{offset}, the input holds {len(result)}")
        return result, offset + consumed
    finally:
        PyBuffer_Release(&view)


# ---------------------------------------------------------------- bit packing

cdef object as_widths(object widths, Py_ssize_t count, str what):
    arr = np.asarray(widths)
    if arr.ndim == 0:
        arr = np.full(count, arr)
    arr = arr.reshape(-1)
    if arr.dtype.kind not in "iu" and arr.size:
        raise InvalidInput(f"{what}: widths must be integers, got {arr.dtype}")
    if arr.shape[0] != count:
        raise InvalidInput(f"{what}: {arr.shape[0]} widths for {count} values")
    if arr.size and (arr.min() < 0 or arr.max() > 64):
        bad = int(np.argmax((arr < 0) | (arr > 64)))
        raise InvalidInput(f"{what}: width {arr[bad]} at index {bad} is not in 0..64")
    return np.ascontiguousarray(arr, dtype=np.uint8)


def bits_pack(values, widths):
    """Pack values MSB-first, value i in widths[i] bits; pad the last byte with zeros."""
    words = as_words(values, False, "bits.pack")
    cdef const uint64_t[::1] vals = words
    cdef Py_ssize_t n = vals.shape[0], i = 0
    cdef const uint8_t[::1] w = as_widths(widths, n, "bits.pack")
    cdef uint64_t total = int(np.asarray(w, dtype=np.uint64).sum()) if n else 0
    cdef size_t cap = (total + 7) // 8, nbytes = 0
    out = PyBytes_FromStringAndSize(NULL, cap)
    cdef uint8_t *dst = <uint8_t *>PyBytes_AS_STRING(out)
    cdef tw_bitwriter writer
    cdef int status = TW_OK
    with nogil:
        tw_bitwriter_init(&writer, dst, cap)
        while i < n:
            status = tw_bitwriter_write(&writer, vals[i], w[i])
            if status != TW_OK:
                break
            i += 1
        if status == TW_OK:
            status = tw_bitwriter_finish(&writer, &nbytes)
    check_status(status, "bits.pack", i, False)
    return out


def bits_unpack(data, widths, count=None):
    """Read values packed by bits_pack; ``count`` is needed with a single width."""
    cdef Py_buffer view
    if count is None:
        if np.ndim(widths) == 0:
            raise InvalidInput("bits.unpack: pass count= when widths is a single width")
        count = np.size(widths)
    if count < 0:
        raise InvalidInput(f"bits.unpack: count must be non-negative, got {count}")
    cdef Py_ssize_t n = count, i = 0
    cdef const uint8_t[::1] w = as_widths(widths, n, "bits.unpack")
    result = np.empty(n, dtype=np.uint64)
    cdef uint64_t[::1] out = result
    cdef tw_bitreader reader
    cdef int status = TW_OK
    get_bytes(data, &view, "bits.unpack")
    try:
        with nogil:
            tw_bitreader_init(&reader, <const uint8_t *>view.buf, view.len)
            while i < n:
                status = tw_bitreader_read(&reader, w[i], &out[i])
                if status != TW_OK:
                    break
                i += 1
    finally:
        PyBuffer_Release(&view)
    if status == TW_ERR_TRUNCATED:
        raise Corruption(f"bits.unpack: input of {view.len} bytes ends inside value {i} "
                         f"of {n}")
    check_status(status, "bits.unpack", i, True)
    return result
