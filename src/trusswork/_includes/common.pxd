# Declarations of csrc/common: status codes, CRC32C, varints, bit I/O.
from libc.stdint cimport uint8_t, uint32_t, uint64_t


cdef extern from "common/status.h" nogil:
    int TW_OK
    int TW_ERR_NOSPACE
    int TW_ERR_TRUNCATED
    int TW_ERR_OVERFLOW
    int TW_ERR_INVALID
    int TW_ERR_CORRUPT
    int TW_ERR_IO
    int TW_ERR_NOMEM


cdef extern from "common/crc32c.h" nogil:
    uint32_t tw_crc32c(uint32_t crc, const void *data, size_t len)
    uint32_t tw_crc32c_software(uint32_t crc, const void *data, size_t len)
    int TW_CRC32C_SOFTWARE
    int TW_CRC32C_SSE42
    int TW_CRC32C_FUSED
    int tw_crc32c_hardware_available()
    int tw_crc32c_best_implementation()
    int tw_crc32c_implementation_available(int implementation)
    uint32_t tw_crc32c_using(int implementation, uint32_t crc, const void *data, size_t len)
    uint32_t tw_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b)


cdef extern from "common/varint.h" nogil:
    size_t tw_varint_encoded_size(const uint64_t *values, size_t n, int zigzag)
    int tw_varint_encode(const uint64_t *values, size_t n, int zigzag, uint8_t *out,
                         size_t cap, size_t *written)
    size_t tw_varint_count(const uint8_t *data, size_t len)
    int tw_varint_decode(const uint8_t *data, size_t len, int zigzag, uint64_t *out,
                         size_t max_values, size_t *n_values, size_t *consumed)


cdef extern from "common/bitio.h" nogil:
    ctypedef struct tw_bitwriter:
        pass
    ctypedef struct tw_bitreader:
        pass
    void tw_bitwriter_init(tw_bitwriter *w, uint8_t *buf, size_t cap)
    int tw_bitwriter_write(tw_bitwriter *w, uint64_t value, unsigned nbits)
    int tw_bitwriter_finish(tw_bitwriter *w, size_t *nbytes)
    void tw_bitreader_init(tw_bitreader *r, const uint8_t *buf, size_t len)
    int tw_bitreader_read(tw_bitreader *r, unsigned nbits, uint64_t *value)
