/*
 * wal.h — segmented write-ahead log: record framing and the append path.
 *
 * A log is a directory of segment files, each named by the LSN of its first
 * record (%020llu.wal). The Python layer (trusswork.storage.wal) lists
 * segments, recovers the tail on open and serves readers; this file frames
 * records and runs the write path, where the GIL is released and many
 * threads append at once.
 *
 * Segment file
 *     header   32 bytes: magic "TWWAL001" | u64 first_lsn | u64 0 | u32 0 |
 *              u32 crc32c(header[0..28))
 *     records  back to back, each:
 *              u32 crc | u32 length | u64 lsn | u8 type | 3 zero bytes | payload
 *              crc = crc32c(length..pad, seed = crc32c(payload)), so the
 *              payload's checksum is computed before the appender takes the
 *              log's lock, and a damaged length is caught like any other byte.
 * All integers little-endian. LSNs start at 1 and increase by one per record
 * across segments; type is 1 (TW_WAL_TYPE_FULL) or 2 (..._AFTER_SYNC, below);
 * type 0 never occurs, so zero-filled space never parses.
 *
 * Ownership: payload buffers are borrowed for the duration of a call; the
 * log owns its buffers, file descriptors and its flush thread.
 */
#ifndef TW_WAL_H
#define TW_WAL_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

#define TW_WAL_SEGMENT_HEADER 32
#define TW_WAL_RECORD_HEADER 20
#define TW_WAL_MAX_PAYLOAD (1u << 30)
#define TW_WAL_TYPE_FULL 1
/* A full record that begins a write issued when every earlier byte of the
 * log was synced. Damage followed by one of these cannot be a torn write
 * (that write was durable before the next began). Damage followed only by
 * TYPE_FULL records may be the last write landing out of order on power
 * loss -- or damage to it after it was synced; recovery cannot tell, so it
 * raises Corruption and says which case is possible. */
#define TW_WAL_TYPE_AFTER_SYNC 2

enum tw_wal_sync {
    TW_WAL_SYNC_ALWAYS = 0,   /* each append written and fdatasync'ed before it returns */
    TW_WAL_SYNC_GROUP = 1,    /* appenders waiting together share one write + fdatasync */
    TW_WAL_SYNC_INTERVAL = 2, /* buffered; a thread writes and syncs every interval_ms */
    TW_WAL_SYNC_NEVER = 3     /* buffered; written when the buffer fills or on flush; synced
                                 only when a full segment is sealed */
};

/* ---------------------------------------------------------------- framing */

/* Writes the 32-byte segment header for first_lsn into out. */
void tw_wal_segment_header(uint8_t out[TW_WAL_SEGMENT_HEADER], uint64_t first_lsn);

/* Checks a segment header; TW_ERR_TRUNCATED if len < 32, TW_ERR_CORRUPT if
 * the magic or checksum is wrong. */
int tw_wal_read_segment_header(const uint8_t *buf, size_t len, uint64_t *first_lsn);

/* Frames one record into out (TW_WAL_RECORD_HEADER + len bytes);
 * payload_crc is tw_crc32c(0, payload, len). */
void tw_wal_frame(uint8_t *out, uint64_t lsn, uint8_t type, const uint8_t *payload, uint32_t len,
                  uint32_t payload_crc);

typedef struct {
    uint64_t lsn;
    uint64_t payload_offset; /* offset of the payload in the parsed buffer */
    uint32_t length;
    uint8_t type;
} tw_wal_entry;

/*
 * Parses records in buf[offset..len) whose LSNs must run expect_lsn,
 * expect_lsn + 1, ...; stops after max entries. On return *n entries are
 * in out and *end is the offset after the last one.
 *   TW_OK             stopped at max entries or exactly at len
 *   TW_ERR_TRUNCATED  a record starting at *end runs past len
 *   TW_ERR_CORRUPT    the record at *end fails its checksum, has an
 *                     unexpected LSN, type or length
 */
int tw_wal_parse(const uint8_t *buf, size_t len, size_t offset, uint64_t expect_lsn,
                 tw_wal_entry *out, size_t max, size_t *n, size_t *end);

/* First offset >= from holding a whole valid record with lsn >= min_lsn, or
 * -1. Used on recovery to tell a torn tail (nothing valid follows the bad
 * spot) from damage in the middle (something does). */
int64_t tw_wal_find_record(const uint8_t *buf, size_t len, size_t from, uint64_t min_lsn);

/* First offset >= from of a whole valid TW_WAL_TYPE_AFTER_SYNC record with
 * lsn >= min_lsn, or -1: damage followed by one is not a torn write. */
int64_t tw_wal_find_after_sync(const uint8_t *buf, size_t len, size_t from, uint64_t min_lsn);

/* ---------------------------------------------------------------- writer */

typedef struct tw_wal tw_wal;

typedef struct {
    int sync_mode;            /* enum tw_wal_sync */
    uint64_t segment_bytes;   /* rotate once a segment reaches this size */
    uint32_t interval_ms;     /* TW_WAL_SYNC_INTERVAL: flush period */
    uint64_t buffer_bytes;    /* INTERVAL/NEVER: write once this much is buffered */
} tw_wal_options;

/*
 * Opens the writer on the segment `segment_path` (created with a header for
 * `segment_first_lsn` when it does not exist), appending at its current end;
 * the next record gets `next_lsn`. `dir` is the log directory (new segments
 * are created there). The caller has already recovered the segment's tail.
 * On failure *out is NULL and `error` holds a message.
 */
int tw_wal_open(const char *dir, const char *segment_path, uint64_t segment_first_lsn,
                uint64_t next_lsn, const tw_wal_options *options, tw_wal **out, char *error,
                size_t error_len);

/* Appends one record; *lsn gets its LSN once it is as durable as the mode promises. */
int tw_wal_append(tw_wal *w, const uint8_t *payload, size_t len, uint64_t *lsn);

/* Appends n records atomically ordered (consecutive LSNs); *first_lsn gets the first. */
int tw_wal_append_many(tw_wal *w, const uint8_t *const *payloads, const size_t *lengths, size_t n,
                       uint64_t *first_lsn);

/* Writes buffered records to the file; with `sync`, also fdatasync. */
int tw_wal_flush(tw_wal *w, int sync);

/* Waits until record `lsn` is in the file (readable) -- or, with `durable`,
 * synced -- or timeout_ms passes (negative: forever). TW_OK when it is,
 * TW_ERR_TRUNCATED on timeout. */
int tw_wal_wait_written(tw_wal *w, uint64_t lsn, int64_t timeout_ms, int durable);

/* LSN positions: next to assign, last written to the file, last durable. */
void tw_wal_positions(tw_wal *w, uint64_t *next_lsn, uint64_t *written_lsn, uint64_t *durable_lsn);

/* First LSN of the segment being appended to (never deleted by truncation). */
uint64_t tw_wal_active_segment(tw_wal *w);

/* Copies the message of the last failure (I/O errors make the log refuse
 * further appends: what reached the file is intact, the rest is not). */
void tw_wal_last_error(tw_wal *w, char *out, size_t out_len);

/* Refuses new calls (they return TW_ERR_IO), waits for threads inside
 * append/flush/wait to leave, flushes (syncing unless the mode is NEVER),
 * stops the flush thread and closes the file. The memory stays valid, so a
 * call racing with close fails cleanly; tw_wal_free releases it. A second
 * close returns TW_OK. */
int tw_wal_close(tw_wal *w);

/* Closes the log if still open and frees it; w is invalid after. */
void tw_wal_free(tw_wal *w);

/* Test hook: simulates power loss. Everything written since the last
 * fdatasync is discarded from the active segment except a prefix of
 * `keep_unsynced` bytes; appenders still waiting get TW_ERR_IO; the log is
 * closed (not freed). */
int tw_wal_simulate_power_loss(tw_wal *w, uint64_t keep_unsynced);

#endif
