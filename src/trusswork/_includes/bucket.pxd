# Declarations of csrc/bucket: rate-limit tables (token bucket, sliding log,
# sliding-window counter, fixed window) and their key fingerprints.
from libc.stdint cimport int64_t, uint8_t, uint64_t


cdef extern from "bucket/bucket.h" nogil:
    int TW_BUCKET_TOKEN
    int TW_BUCKET_LOG
    int TW_BUCKET_COUNTER
    int TW_BUCKET_FIXED
    int64_t TW_BUCKET_NEVER
    int TW_BUCKET_LOG_MAX

    ctypedef struct tw_bucket_table:
        pass

    ctypedef struct tw_bucket_decision:
        int allowed
        int64_t remaining
        int64_t retry_after_ns
        int64_t reset_after_ns

    tw_bucket_table *tw_bucket_new(int algorithm, int64_t period, int64_t limit, int *status)
    void tw_bucket_free(tw_bucket_table *table)
    int tw_bucket_acquire(tw_bucket_table *table, uint64_t hi, uint64_t lo, int64_t cost,
                          int64_t now, int commit, tw_bucket_decision *out)
    int tw_bucket_acquire_batch(tw_bucket_table *table, const uint64_t *hi, const uint64_t *lo,
                                const int64_t *costs, int64_t cost, size_t n, int64_t now,
                                uint8_t *allowed, int64_t *remaining, double *retry_after,
                                double *reset_after)
    int tw_bucket_acquire_batch_u64(tw_bucket_table *table, const uint64_t *keys, uint64_t seed,
                                    const int64_t *costs, int64_t cost, size_t n, int64_t now,
                                    uint8_t *allowed, int64_t *remaining, double *retry_after,
                                    double *reset_after)
    int tw_bucket_acquire_levels(tw_bucket_table **tables, const uint64_t *hi,
                                 const uint64_t *lo, size_t levels, int64_t cost,
                                 const int64_t *nows, int *allowed, tw_bucket_decision *out)
    int tw_bucket_reset(tw_bucket_table *table, uint64_t hi, uint64_t lo)
    size_t tw_bucket_sweep(tw_bucket_table *table, int64_t now)
    size_t tw_bucket_len(tw_bucket_table *table)
    size_t tw_bucket_memory(tw_bucket_table *table)
    void tw_bucket_hash(const void *data, size_t len, uint64_t seed, uint64_t *hi, uint64_t *lo)
    void tw_bucket_hash_u64(uint64_t value, uint64_t seed, uint64_t *hi, uint64_t *lo)
