# Declarations of csrc/tsc: the time-series chunk codec.
from libc.stdint cimport int64_t, uint8_t, uint64_t


cdef extern from "tsc/tsc.h" nogil:
    int TW_TSC_VERSION
    int TW_TSC_FRAME
    int TW_TSC_MAX_SCALE
    int TW_TSC_TS_GRID
    int TW_TSC_TS_DELTA
    int TW_TSC_V_CONST
    int TW_TSC_V_DECIMAL
    int TW_TSC_V_XOR

    ctypedef struct tw_tsc_info:
        uint64_t count
        int ts_mode
        int value_mode
        int scale
        int order
        size_t ts_bytes
        size_t value_bytes

    size_t tw_tsc_bound(size_t n)
    int tw_tsc_encode(const int64_t *ts, const double *values, size_t n, uint8_t *out, size_t cap,
                      size_t *written)
    int tw_tsc_encode_scratch(const int64_t *ts, const double *values, size_t n,
                              const uint8_t **out, size_t *written)
    int tw_tsc_info_of(const uint8_t *chunk, size_t len, tw_tsc_info *info)
    int tw_tsc_decode(const uint8_t *chunk, size_t len, int64_t *ts, double *values, size_t cap,
                      size_t *count)


cdef extern from "common/varint.h" nogil:
    int tw_varint_get(const uint8_t *data, size_t length, uint64_t *value, size_t *consumed)
