# Declarations of csrc/wal: record framing and the write path.
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t


cdef extern from "wal/wal.h" nogil:
    int TW_WAL_SEGMENT_HEADER
    int TW_WAL_RECORD_HEADER
    unsigned int TW_WAL_MAX_PAYLOAD
    int TW_WAL_TYPE_FULL
    int TW_WAL_SYNC_ALWAYS
    int TW_WAL_SYNC_GROUP
    int TW_WAL_SYNC_INTERVAL
    int TW_WAL_SYNC_NEVER

    ctypedef struct tw_wal_entry:
        uint64_t lsn
        uint64_t payload_offset
        uint32_t length
        uint8_t type

    ctypedef struct tw_wal_options:
        int sync_mode
        uint64_t segment_bytes
        uint32_t interval_ms
        uint64_t buffer_bytes

    ctypedef struct tw_wal:
        pass

    void tw_wal_segment_header(uint8_t *out, uint64_t first_lsn)
    int tw_wal_read_segment_header(const uint8_t *buf, size_t len, uint64_t *first_lsn)
    int tw_wal_parse(const uint8_t *buf, size_t len, size_t offset, uint64_t expect_lsn,
                     tw_wal_entry *out, size_t max, size_t *n, size_t *end)
    int64_t tw_wal_find_record(const uint8_t *buf, size_t len, size_t start, uint64_t min_lsn)
    int64_t tw_wal_find_after_sync(const uint8_t *buf, size_t len, size_t start, uint64_t min_lsn)

    int tw_wal_open(const char *dir, const char *segment_path, uint64_t segment_first_lsn,
                    uint64_t next_lsn, const tw_wal_options *options, tw_wal **out,
                    char *error, size_t error_len)
    int tw_wal_append(tw_wal *w, const uint8_t *payload, size_t len, uint64_t *lsn)
    int tw_wal_append_many(tw_wal *w, const uint8_t *const *payloads, const size_t *lengths,
                           size_t n, uint64_t *first_lsn)
    int tw_wal_flush(tw_wal *w, int sync)
    int tw_wal_wait_written(tw_wal *w, uint64_t lsn, int64_t timeout_ms, int durable)
    void tw_wal_positions(tw_wal *w, uint64_t *next_lsn, uint64_t *written_lsn,
                          uint64_t *durable_lsn)
    uint64_t tw_wal_active_segment(tw_wal *w)
    void tw_wal_last_error(tw_wal *w, char *out, size_t out_len)
    int tw_wal_close(tw_wal *w)
    void tw_wal_free(tw_wal *w)
    int tw_wal_simulate_power_loss(tw_wal *w, uint64_t keep_unsynced)
