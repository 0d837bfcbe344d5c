# Declarations of csrc/postings: posting lists.
from libc.stdint cimport uint8_t, uint32_t, uint64_t


cdef extern from "postings/postings.h" nogil:
    int TW_POSTINGS_FORMAT
    int TW_POSTINGS_BLOCK

    int tw_postings_intersect(const uint32_t *a, size_t na, const uint32_t *b, size_t nb,
                              uint32_t *out, size_t out_cap, size_t *n_out)
    int tw_postings_union(const uint32_t *a, size_t na, const uint32_t *b, size_t nb,
                          uint32_t *out, size_t out_cap, size_t *n_out)
    int tw_postings_difference(const uint32_t *a, size_t na, const uint32_t *b, size_t nb,
                               uint32_t *out, size_t out_cap, size_t *n_out)
    int tw_postings_intersect_many(const uint32_t *const *lists, const size_t *lens, size_t k,
                                   uint32_t *out, size_t out_cap, size_t *n_out)
    int tw_postings_union_many(const uint32_t *const *lists, const size_t *lens, size_t k,
                               uint32_t *out, size_t out_cap, size_t *n_out)

    uint32_t tw_postings_checksum(const uint8_t *data, size_t len)
    size_t tw_postings_encoded_bound(uint64_t n)
    int tw_postings_encode(const uint32_t *ids, size_t n, uint8_t *out, size_t cap,
                           size_t *written)
    int tw_postings_decoded_count(const uint8_t *data, size_t len, size_t *n, size_t *err_offset)
    int tw_postings_decode(const uint8_t *data, size_t len, uint32_t *out, size_t cap,
                           size_t *n_out, size_t *err_offset)

    ctypedef struct tw_postings_view:
        uint64_t pv_count
        size_t pv_blocks
    int tw_postings_view_open(tw_postings_view *view, const uint8_t *data, size_t len,
                              int verify, size_t *err_offset)
    int tw_postings_view_contains(const tw_postings_view *view, uint32_t id, int *found,
                                  size_t *err_offset)
    int tw_postings_view_intersect(const tw_postings_view *view, const uint32_t *ids, size_t n,
                                   uint32_t *out, size_t out_cap, size_t *n_out,
                                   size_t *err_offset)
