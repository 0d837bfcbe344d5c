# cython: boundscheck=False, wraparound=False
"""Compiled chunk codec (csrc/tsc): one series' samples <-> bytes.

trusswork.tsdb.codec re-exports these. Every C status passes through
check_status; encoding and decoding run without the GIL.
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport int64_t, uint8_t, uint64_t

from trusswork._includes.common cimport (
    TW_ERR_CORRUPT,
    TW_ERR_INVALID,
    TW_ERR_NOMEM,
    TW_ERR_NOSPACE,
    TW_ERR_TRUNCATED,
    TW_OK,
)
from trusswork._includes.tsc cimport *

import numpy as np

from trusswork.core.errors import Corruption, InvalidInput

FRAME = TW_TSC_FRAME
_TS_MODES = {TW_TSC_TS_GRID: "grid", TW_TSC_TS_DELTA: "delta"}
_VALUE_MODES = {TW_TSC_V_CONST: "const", TW_TSC_V_DECIMAL: "decimal", TW_TSC_V_XOR: "xor"}


cdef int check_status(int status, str what) except -1:
    """The choke point: turn a csrc/tsc status into a trusswork error."""
    if status == TW_OK:
        return 0
    if status == TW_ERR_CORRUPT or status == TW_ERR_TRUNCATED:
        kind = "ends early" if status == TW_ERR_TRUNCATED else "is damaged"
        raise Corruption(f"{what}: the chunk {kind} (not a valid trusswork chunk)")
    if status == TW_ERR_NOMEM:
        raise MemoryError(f"{what}: out of memory")
    raise RuntimeError(f"{what}: internal error (status {status})")


def _arrays(ts, values):
    t = np.ascontiguousarray(ts, dtype=np.int64)
    v = np.ascontiguousarray(values, dtype=np.float64)
    if t.ndim != 1 or v.ndim != 1 or t.shape[0] != v.shape[0]:
        raise InvalidInput(
            f"timestamps and values must be 1-d arrays of one length, got shapes "
            f"{np.shape(ts)} and {np.shape(values)}")
    return t, v


def encode(ts, values):
    """Encode strictly ascending int64 ms timestamps and float64 values as one chunk."""
    t, v = _arrays(ts, values)
    cdef const int64_t[::1] tv = t
    cdef const double[::1] vv = v
    cdef size_t n = <size_t>tv.shape[0], written = 0
    cdef const uint8_t *chunk = NULL
    cdef int status
    with nogil:
        status = tw_tsc_encode_scratch(&tv[0] if n else NULL, &vv[0] if n else NULL, n, &chunk,
                                       &written)
    if status == TW_ERR_INVALID:
        i = <Py_ssize_t>written
        raise InvalidInput(
            f"timestamps must strictly ascend: ts[{i}] = {t[i]} follows ts[{i - 1}] = {t[i - 1]}")
    check_status(status, "encode")
    # the chunk lives in this thread's scratch until its next encode: copy it now
    return PyBytes_FromStringAndSize(<const char *>chunk, <Py_ssize_t>written)


def sample_count(chunk):
    """Samples in a chunk, read from its header after checking its structure."""
    cdef const uint8_t[::1] c = memoryview(chunk).cast("B")
    cdef tw_tsc_info info
    cdef int status
    with nogil:
        status = tw_tsc_info_of(&c[0] if c.shape[0] else NULL, <size_t>c.shape[0], &info)
    check_status(status, "sample_count")
    return info.count


def info(chunk):
    """How a chunk is encoded: samples, modes and the bytes of each part."""
    cdef const uint8_t[::1] c = memoryview(chunk).cast("B")
    cdef tw_tsc_info i
    cdef int status
    with nogil:
        status = tw_tsc_info_of(&c[0] if c.shape[0] else NULL, <size_t>c.shape[0], &i)
    check_status(status, "info")
    return {
        "samples": i.count,
        "timestamps": _TS_MODES.get(i.ts_mode),
        "values": _VALUE_MODES.get(i.value_mode),
        "scale": i.scale if i.scale >= 0 else None,
        "order": i.order or None,
        "timestamp_bytes": i.ts_bytes,
        "value_bytes": i.value_bytes,
    }


def _output(array, str name):
    """``array`` as a writable C-contiguous 1-d int64/float64 buffer, or InvalidInput."""
    dtype = np.int64 if name == "ts" else np.float64
    if not isinstance(array, np.ndarray) or array.dtype != dtype or array.ndim != 1:
        raise InvalidInput(f"decode_into: {name} must be a 1-d numpy array of {np.dtype(dtype)}")
    if not array.flags.c_contiguous or not array.flags.writeable:
        raise InvalidInput(f"decode_into: {name} must be C-contiguous and writable")
    return array


def decode_into(chunk, ts, values, Py_ssize_t offset=0):
    """Decode a chunk into ``ts[offset:]`` and ``values[offset:]``; returns the sample count."""
    cdef const uint8_t[::1] c = memoryview(chunk).cast("B")
    cdef int64_t[::1] tv = _output(ts, "ts")
    cdef double[::1] vv = _output(values, "values")
    cdef size_t count = 0, cap
    cdef int status
    if offset < 0 or offset > tv.shape[0] or tv.shape[0] != vv.shape[0]:
        raise InvalidInput("decode_into: output arrays of one length and 0 <= offset <= length")
    cap = <size_t>(tv.shape[0] - offset)
    with nogil:
        status = tw_tsc_decode(&c[0] if c.shape[0] else NULL, <size_t>c.shape[0],
                               &tv[offset] if cap else NULL, &vv[offset] if cap else NULL,
                               cap, &count)
    if status == TW_ERR_NOSPACE:
        raise InvalidInput(f"decode_into: the chunk holds more than the {cap} samples of room")
    check_status(status, "decode")
    return count


def decode(chunk):
    """Decode a chunk into new (int64 timestamps, float64 values) arrays."""
    cdef const uint8_t *data
    cdef Py_ssize_t length
    cdef const uint8_t[::1] view
    cdef uint64_t count = 0
    cdef size_t used = 0, got = 0
    cdef int status
    if type(chunk) is bytes:
        data = <const uint8_t *>PyBytes_AS_STRING(chunk)
        length = PyBytes_GET_SIZE(chunk)
    else:
        view = memoryview(chunk).cast("B")
        length = view.shape[0]
        data = &view[0] if length else NULL
    # the sample count from the header; the decoder checks it against the length
    if length < 2 or data[0] != TW_TSC_VERSION:
        check_status(TW_ERR_CORRUPT if length else TW_ERR_TRUNCATED, "decode")
    status = tw_varint_get(data + 1, <size_t>length - 1, &count, &used)
    if status != TW_OK or count > 64 * <uint64_t>length:
        check_status(TW_ERR_CORRUPT, "decode")
    ts = np.empty(count, dtype=np.int64)
    values = np.empty(count, dtype=np.float64)
    cdef int64_t[::1] tv = ts
    cdef double[::1] vv = values
    with nogil:
        status = tw_tsc_decode(data, <size_t>length, &tv[0] if count else NULL,
                               &vv[0] if count else NULL, <size_t>count, &got)
    check_status(status, "decode")
    return ts, values
