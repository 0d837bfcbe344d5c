/*
 * wal.c — the write path of the segmented write-ahead log.
 *
 * Durability story. An LSN is returned to an appender only when its record
 * is as durable as the log's mode promises:
 *   ALWAYS    the appender writes its own record and fdatasyncs before
 *             returning; appenders are served one at a time.
 *   GROUP     appenders frame their records into a shared buffer; one of
 *             them (the leader) writes the whole buffer and fdatasyncs once
 *             while the others wait on a condition variable; records that
 *             arrive during that sync form the next batch. When the last
 *             batch had more than one record, a new leader first waits a
 *             quarter of the average sync time so the next wave of
 *             appenders joins its batch (an adaptive commit delay; a lone
 *             appender never waits). Every appender returns only after a
 *             sync that covered its record.
 *   INTERVAL  appends return once framed in memory; a thread writes and
 *             syncs every interval_ms. A crash loses at most the last
 *             interval (plus the buffer on process death).
 *   NEVER     appends return once framed in memory; records are written
 *             when the buffer fills, on flush and on close; synced only
 *             when a full segment is sealed (rotation syncs in every mode).
 * A new segment is created (header written and synced, directory synced)
 * only after the previous one was synced, so a sealed segment is complete
 * and damage found in one is corruption, not a torn write.
 *
 * Invariants, under w->mu: written_lsn <= next_lsn - 1; durable_lsn <=
 * written_lsn; `buffer` holds exactly the framed records written_lsn + 1 ..
 * next_lsn - 1 that no flusher has taken; at most one thread flushes
 * (w->flushing) and only the flusher touches the file descriptor.
 *
 * After an I/O error the log is failed: appends return TW_ERR_IO with the
 * message in w->error. Bytes already in the file are left as they are; the
 * next open recovers them like a torn tail.
 */
#include "wal/wal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/byteorder.h"
#include "common/crc32c.h"

static const uint8_t SEGMENT_MAGIC[8] = {'T', 'W', 'W', 'A', 'L', '0', '0', '1'};

/* ---------------------------------------------------------------- framing */

void tw_wal_segment_header(uint8_t out[TW_WAL_SEGMENT_HEADER], uint64_t first_lsn) {
    memset(out, 0, TW_WAL_SEGMENT_HEADER);
    memcpy(out, SEGMENT_MAGIC, sizeof SEGMENT_MAGIC);
    tw_store_le64(out + 8, first_lsn);
    tw_store_le32(out + 28, tw_crc32c(0, out, 28));
}

int tw_wal_read_segment_header(const uint8_t *buf, size_t len, uint64_t *first_lsn) {
    if (len < TW_WAL_SEGMENT_HEADER) return TW_ERR_TRUNCATED;
    if (memcmp(buf, SEGMENT_MAGIC, sizeof SEGMENT_MAGIC) != 0) return TW_ERR_CORRUPT;
    if (tw_load_le32(buf + 28) != tw_crc32c(0, buf, 28)) return TW_ERR_CORRUPT;
    *first_lsn = tw_load_le64(buf + 8);
    return TW_OK;
}

/* Covers everything after the CRC field: length, LSN, type, padding, payload. */
static uint32_t record_crc(const uint8_t *header, uint32_t payload_crc) {
    return tw_crc32c(payload_crc, header + 4, TW_WAL_RECORD_HEADER - 4);
}

void tw_wal_frame(uint8_t *out, uint64_t lsn, uint8_t type, const uint8_t *payload, uint32_t len,
                  uint32_t payload_crc) {
    tw_store_le32(out + 4, len);
    tw_store_le64(out + 8, lsn);
    out[16] = type;
    out[17] = out[18] = out[19] = 0;
    tw_store_le32(out, record_crc(out, payload_crc));
    if (len) memcpy(out + TW_WAL_RECORD_HEADER, payload, len);
}

/* Validates the record at buf[off..len): TW_OK, TW_ERR_TRUNCATED or TW_ERR_CORRUPT. */
static int check_record(const uint8_t *buf, size_t len, size_t off, uint64_t expect_lsn,
                        int exact_lsn, tw_wal_entry *entry) {
    if (len - off < TW_WAL_RECORD_HEADER) return TW_ERR_TRUNCATED;
    const uint8_t *h = buf + off;
    uint32_t length = tw_load_le32(h + 4);
    uint64_t lsn = tw_load_le64(h + 8);
    if ((h[16] != TW_WAL_TYPE_FULL && h[16] != TW_WAL_TYPE_AFTER_SYNC) || h[17] || h[18] || h[19] ||
        length > TW_WAL_MAX_PAYLOAD)
        return TW_ERR_CORRUPT;
    if (exact_lsn ? lsn != expect_lsn : lsn < expect_lsn) return TW_ERR_CORRUPT;
    if (len - off - TW_WAL_RECORD_HEADER < length) return TW_ERR_TRUNCATED;
    uint32_t payload_crc = tw_crc32c(0, h + TW_WAL_RECORD_HEADER, length);
    if (tw_load_le32(h) != record_crc(h, payload_crc)) return TW_ERR_CORRUPT;
    entry->lsn = lsn;
    entry->payload_offset = off + TW_WAL_RECORD_HEADER;
    entry->length = length;
    entry->type = h[16];
    return TW_OK;
}

int tw_wal_parse(const uint8_t *buf, size_t len, size_t offset, uint64_t expect_lsn,
                 tw_wal_entry *out, size_t max, size_t *n, size_t *end) {
    size_t count = 0;
    int status = TW_OK;
    while (count < max && offset < len) {
        status = check_record(buf, len, offset, expect_lsn, 1, &out[count]);
        if (status != TW_OK) break;
        offset = out[count].payload_offset + out[count].length;
        expect_lsn++;
        count++;
    }
    *n = count;
    *end = offset;
    return status;
}

int64_t tw_wal_find_record(const uint8_t *buf, size_t len, size_t from, uint64_t min_lsn) {
    tw_wal_entry entry;
    if (from > len) return -1;
    for (size_t off = from; len - off >= TW_WAL_RECORD_HEADER; off++)
        if (check_record(buf, len, off, min_lsn, 0, &entry) == TW_OK) return (int64_t)off;
    return -1;
}

int64_t tw_wal_find_after_sync(const uint8_t *buf, size_t len, size_t from, uint64_t min_lsn) {
    tw_wal_entry entry;
    if (from > len) return -1;
    for (size_t off = from; len - off >= TW_WAL_RECORD_HEADER; off++)
        if (check_record(buf, len, off, min_lsn, 0, &entry) == TW_OK && entry.type == TW_WAL_TYPE_AFTER_SYNC)
            return (int64_t)off;
    return -1;
}

/* Turns the framed record at rec into a TW_WAL_TYPE_AFTER_SYNC one. */
static void mark_after_sync(uint8_t *rec, uint32_t payload_crc) {
    rec[16] = TW_WAL_TYPE_AFTER_SYNC;
    tw_store_le32(rec, record_crc(rec, payload_crc));
}

/* ---------------------------------------------------------------- writer */

struct tw_wal {
    pthread_mutex_t mu;
    pthread_cond_t changed; /* broadcast whenever written/durable LSNs or state change */
    tw_wal_options opt;
    char *dir;
    int fd;                  /* active segment; touched only by the flusher */
    uint64_t segment_first;  /* first LSN of the active segment */
    uint64_t segment_size;   /* bytes in the active segment file */
    uint64_t synced_size;    /* of those, bytes covered by the last fdatasync */
    uint8_t *buffer, *spare; /* framed records not yet taken by a flusher */
    uint32_t first_crc;      /* payload CRC of the first record in buffer */
    size_t buffer_len, buffer_cap, spare_cap;
    uint64_t next_lsn, written_lsn, durable_lsn;
    int flushing, failed, closing;
    int users;               /* threads inside append/flush/wait; close waits for 0 */
    int gathering;           /* GROUP: a leader is waiting for more records to join */
    int followers;           /* threads in tw_wal_wait_written */
    uint64_t last_batch;     /* records in the last synced batch */
    uint64_t sync_ns;        /* moving average of one write + fdatasync */
    pthread_t thread;
    int has_thread;
    char error[256];
};

static void fail_locked(tw_wal *w, const char *what, int err) {
    if (!w->failed)
        snprintf(w->error, sizeof w->error, "%s: %s", what, strerror(err));
    w->failed = 1;
}

static int write_all(int fd, const uint8_t *p, size_t len) {
    while (len) {
        ssize_t done = write(fd, p, len);
        if (done < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += done;
        len -= (size_t)done;
    }
    return 0;
}

static int sync_directory(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    errno = err;
    return rc;
}

/* Creates (or opens) a segment file; a new one gets its header, synced. */
static int open_segment(const char *path, uint64_t first_lsn, uint64_t *size, const char **what) {
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        *what = "open segment";
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        *what = "stat segment";
        goto fail;
    }
    *size = (uint64_t)st.st_size;
    if (st.st_size == 0) {
        uint8_t header[TW_WAL_SEGMENT_HEADER];
        tw_wal_segment_header(header, first_lsn);
        if (write_all(fd, header, sizeof header) < 0 || fdatasync(fd) < 0) {
            *what = "write segment header";
            goto fail;
        }
        *size = sizeof header;
    } else if (fdatasync(fd) < 0) {
        /* what a previous writer left may not be durable yet: make it so, so
         * the first write here may say it follows synced bytes */
        *what = "sync segment";
        goto fail;
    }
    return fd;
fail: {
    int err = errno;
    close(fd);
    errno = err;
    return -1;
}
}

static char *segment_path(const char *dir, uint64_t first_lsn) {
    size_t len = strlen(dir) + 32;
    char *path = malloc(len);
    if (path) snprintf(path, len, "%s/%020llu.wal", dir, (unsigned long long)first_lsn);
    return path;
}

/* After a batch ending at last_lsn: start a new segment if this one is full,
 * syncing the full one first in every mode (so a sealed segment is always
 * complete, and a sync later never has an unsynced older segment behind
 * it); *synced is set then and *rotated_to gets the new segment's first LSN. */
static int rotate_if_full(tw_wal *w, uint64_t last_lsn, int *synced, uint64_t *rotated_to,
                          const char **what) {
    if (w->segment_size < w->opt.segment_bytes) return 0;
    if (!*synced) {
        if (fdatasync(w->fd) < 0) {
            *what = "sync full segment";
            return -1;
        }
        *synced = 1;
    }
    char *path = segment_path(w->dir, last_lsn + 1);
    if (!path) {
        errno = ENOMEM;
        *what = "rotate segment";
        return -1;
    }
    uint64_t size;
    int fd = open_segment(path, last_lsn + 1, &size, what);
    free(path);
    if (fd < 0) return -1;
    if (sync_directory(w->dir) < 0) {
        int err = errno;
        close(fd);
        errno = err;
        *what = "sync log directory";
        return -1;
    }
    close(w->fd);
    w->fd = fd;
    *rotated_to = last_lsn + 1;
    w->segment_size = w->synced_size = size;
    return 0;
}

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static struct timespec deadline_after_ns(uint64_t ns) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    ns += (uint64_t)t.tv_nsec;
    t.tv_sec += (time_t)(ns / 1000000000u);
    t.tv_nsec = (long)(ns % 1000000000u);
    return t;
}

static struct timespec deadline_after(int64_t ms) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (ms % 1000) * 1000000;
    if (t.tv_nsec >= 1000000000) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000;
    }
    return t;
}

/*
 * Takes the buffer and writes it (and syncs, with `sync`) with the lock
 * released. Precondition: mu held, !flushing. Returns with mu held.
 */
static void flush_locked(tw_wal *w, int sync) {
    if (w->failed) return; /* nothing is written or acknowledged after a failure */
    w->flushing = 1;
    uint8_t *data = w->buffer;
    size_t len = w->buffer_len;
    size_t data_cap = w->buffer_cap;
    uint64_t last = w->next_lsn - 1;
    uint32_t first_crc = w->first_crc;
    w->buffer = w->spare;
    w->buffer_cap = w->spare_cap;
    w->buffer_len = 0;
    pthread_mutex_unlock(&w->mu);

    const char *what = NULL;
    int err = 0, synced = 0;
    uint64_t rotated_to = 0;
    uint64_t started = now_ns();
    /* A write issued when every earlier byte is synced starts with an
     * AFTER_SYNC record: recovery knows damage before one is not a torn
     * write (see tw_wal_find_after_sync). */
    if (len && w->synced_size == w->segment_size) mark_after_sync(data, first_crc);
    if (len && write_all(w->fd, data, len) < 0) {
        what = "write segment";
    } else {
        w->segment_size += len;
        if (sync && w->synced_size != w->segment_size && fdatasync(w->fd) < 0)
            what = "sync segment";
        else
            synced = sync;
        if (synced) w->synced_size = w->segment_size;
        if (!what) rotate_if_full(w, last, &synced, &rotated_to, &what);
    }
    if (what) err = errno;

    pthread_mutex_lock(&w->mu);
    w->spare = data;
    w->spare_cap = data_cap;
    if (rotated_to) w->segment_first = rotated_to;
    if (what) {
        fail_locked(w, what, err);
    } else {
        if (synced) {
            w->last_batch = last - w->durable_lsn;
            w->sync_ns = (3 * w->sync_ns + (now_ns() - started)) / 4;
            w->durable_lsn = last;
        }
        w->written_lsn = last;
    }
    w->flushing = 0;
    pthread_cond_broadcast(&w->changed);
}

/* Entry and exit of every public call that may block: close() waits until
 * no thread is inside before it frees the log. Called with mu held. */
static int enter_locked(tw_wal *w) {
    if (w->closing) return 0;
    w->users++;
    return 1;
}

static void leave_locked(tw_wal *w) {
    if (--w->users == 0 && w->closing) pthread_cond_broadcast(&w->changed);
}

static int reserve(tw_wal *w, size_t extra) {
    if (w->buffer_cap - w->buffer_len >= extra) return 0;
    size_t cap = w->buffer_cap ? w->buffer_cap : 65536;
    while (cap - w->buffer_len < extra) cap *= 2;
    uint8_t *grown = realloc(w->buffer, cap);
    if (!grown) return -1;
    w->buffer = grown;
    w->buffer_cap = cap;
    return 0;
}

static void timed_wait(tw_wal *w, int64_t timeout_ms, const struct timespec *deadline) {
    if (timeout_ms < 0)
        pthread_cond_wait(&w->changed, &w->mu);
    else
        pthread_cond_timedwait(&w->changed, &w->mu, deadline);
}


/* Frames n records under the lock (payload CRCs computed by the caller). */
static int append_locked(tw_wal *w, const uint8_t *const *payloads, const size_t *lengths,
                         const uint32_t *crcs, size_t n, uint64_t *first_lsn) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++) total += TW_WAL_RECORD_HEADER + lengths[i];
    if (reserve(w, total) < 0) return TW_ERR_NOMEM;
    *first_lsn = w->next_lsn;
    for (size_t i = 0; i < n; i++) {
        if (w->buffer_len == 0) w->first_crc = crcs[i];
        tw_wal_frame(w->buffer + w->buffer_len, w->next_lsn++, TW_WAL_TYPE_FULL, payloads[i],
                     (uint32_t)lengths[i], crcs[i]);
        w->buffer_len += TW_WAL_RECORD_HEADER + lengths[i];
    }
    return TW_OK;
}

static int append_records(tw_wal *w, const uint8_t *const *payloads, const size_t *lengths,
                          const uint32_t *crcs, size_t n, uint64_t *first_lsn) {
    pthread_mutex_lock(&w->mu);
    if (!enter_locked(w)) {
        pthread_mutex_unlock(&w->mu);
        return TW_ERR_IO;
    }
    int mode = w->opt.sync_mode;
    if (mode == TW_WAL_SYNC_ALWAYS)
        while (w->flushing && !w->failed) pthread_cond_wait(&w->changed, &w->mu);
    int status = w->failed ? TW_ERR_IO : append_locked(w, payloads, lengths, crcs, n, first_lsn);
    if (status != TW_OK) {
        leave_locked(w);
        pthread_mutex_unlock(&w->mu);
        return status;
    }
    uint64_t last = w->next_lsn - 1;
    if (mode == TW_WAL_SYNC_INTERVAL || mode == TW_WAL_SYNC_NEVER) {
        if (w->followers) pthread_cond_broadcast(&w->changed); /* they write it out */
        if (w->buffer_len >= w->opt.buffer_bytes) {
            while (w->flushing) pthread_cond_wait(&w->changed, &w->mu);
            if (w->buffer_len >= w->opt.buffer_bytes) flush_locked(w, 0);
        }
    } else {
        while (w->durable_lsn < last && !w->failed) {
            if (w->flushing || w->gathering) {
                pthread_cond_wait(&w->changed, &w->mu);
            } else if (mode == TW_WAL_SYNC_GROUP && w->last_batch > 1) {
                /* Commit delay: appenders arrive in waves (the last batch had
                 * company), so wait a quarter of a sync for more of them to
                 * join this one. Costs latency, saves syncs. */
                w->gathering = 1;
                struct timespec deadline = deadline_after_ns(w->sync_ns / 4);
                pthread_cond_timedwait(&w->changed, &w->mu, &deadline);
                w->gathering = 0;
                /* Others waited on `gathering`; wake them whatever happens next. */
                pthread_cond_broadcast(&w->changed);
                if (!w->flushing && w->durable_lsn < last) flush_locked(w, 1);
            } else {
                flush_locked(w, 1);
            }
        }
    }
    status = w->failed && w->durable_lsn < last && mode <= TW_WAL_SYNC_GROUP ? TW_ERR_IO : TW_OK;
    leave_locked(w);
    pthread_mutex_unlock(&w->mu);
    return status;
}

int tw_wal_append(tw_wal *w, const uint8_t *payload, size_t len, uint64_t *lsn) {
    if (len > TW_WAL_MAX_PAYLOAD) return TW_ERR_INVALID;
    uint32_t crc = tw_crc32c(0, payload, len);
    return append_records(w, &payload, &len, &crc, 1, lsn);
}

int tw_wal_append_many(tw_wal *w, const uint8_t *const *payloads, const size_t *lengths, size_t n,
                       uint64_t *first_lsn) {
    if (n == 0) {
        pthread_mutex_lock(&w->mu);
        *first_lsn = w->next_lsn;
        pthread_mutex_unlock(&w->mu);
        return TW_OK;
    }
    uint32_t *crcs = malloc(n * sizeof *crcs);
    if (!crcs) return TW_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        if (lengths[i] > TW_WAL_MAX_PAYLOAD) {
            free(crcs);
            return TW_ERR_INVALID;
        }
        crcs[i] = tw_crc32c(0, payloads[i], lengths[i]);
    }
    int status = append_records(w, payloads, lengths, crcs, n, first_lsn);
    free(crcs);
    return status;
}

static int flush_all_locked(tw_wal *w, int sync) {
    uint64_t last = w->next_lsn - 1;
    while (!w->failed && (w->written_lsn < last || (sync && w->durable_lsn < last))) {
        if (!w->flushing)
            flush_locked(w, sync);
        else
            pthread_cond_wait(&w->changed, &w->mu);
    }
    return w->failed ? TW_ERR_IO : TW_OK;
}

int tw_wal_flush(tw_wal *w, int sync) {
    pthread_mutex_lock(&w->mu);
    int status = TW_ERR_IO;
    if (enter_locked(w)) {
        status = flush_all_locked(w, sync);
        leave_locked(w);
    }
    pthread_mutex_unlock(&w->mu);
    return status;
}

int tw_wal_wait_written(tw_wal *w, uint64_t lsn, int64_t timeout_ms, int durable) {
    struct timespec deadline = deadline_after(timeout_ms < 0 ? 0 : timeout_ms);
    pthread_mutex_lock(&w->mu);
    if (!enter_locked(w)) {
        pthread_mutex_unlock(&w->mu);
        return TW_ERR_IO;
    }
    int status = TW_OK;
    w->followers++;
    while ((durable ? w->durable_lsn : w->written_lsn) < lsn) {
        if (w->failed || w->closing) {
            status = TW_ERR_IO;
            break;
        }
        /* Records already buffered become readable without waiting for the thread. */
        if (!durable && w->next_lsn > lsn && !w->flushing) {
            flush_locked(w, 0);
            continue;
        }
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        if (timeout_ms >= 0 && (now.tv_sec > deadline.tv_sec ||
                                (now.tv_sec == deadline.tv_sec && now.tv_nsec >= deadline.tv_nsec))) {
            status = TW_ERR_TRUNCATED;
            break;
        }
        timed_wait(w, timeout_ms, &deadline);
    }
    w->followers--;
    leave_locked(w);
    pthread_mutex_unlock(&w->mu);
    return status;
}

void tw_wal_positions(tw_wal *w, uint64_t *next_lsn, uint64_t *written_lsn, uint64_t *durable_lsn) {
    pthread_mutex_lock(&w->mu);
    *next_lsn = w->next_lsn;
    *written_lsn = w->written_lsn;
    *durable_lsn = w->durable_lsn;
    pthread_mutex_unlock(&w->mu);
}

uint64_t tw_wal_active_segment(tw_wal *w) {
    pthread_mutex_lock(&w->mu);
    uint64_t first = w->segment_first;
    pthread_mutex_unlock(&w->mu);
    return first;
}

void tw_wal_last_error(tw_wal *w, char *out, size_t out_len) {
    pthread_mutex_lock(&w->mu);
    snprintf(out, out_len, "%s", w->failed ? w->error : "");
    pthread_mutex_unlock(&w->mu);
}

/* Every interval_ms: write and sync what arrived. Wake-ups by other flushes
 * do not move the deadline, and a flush in progress at the deadline is
 * waited for, so a busy log still syncs on schedule. */
static void *interval_thread(void *arg) {
    tw_wal *w = arg;
    pthread_mutex_lock(&w->mu);
    struct timespec deadline = deadline_after(w->opt.interval_ms);
    while (!w->closing && !w->failed) {
        if (pthread_cond_timedwait(&w->changed, &w->mu, &deadline) != ETIMEDOUT) continue;
        /* A flush running at the deadline (a full buffer written without a
         * sync) must not make this period's sync wait a whole interval. */
        while (w->flushing && !w->closing && !w->failed) pthread_cond_wait(&w->changed, &w->mu);
        if (w->closing || w->failed) break;
        if (w->buffer_len || w->durable_lsn < w->written_lsn) flush_locked(w, 1);
        deadline = deadline_after(w->opt.interval_ms);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int tw_wal_open(const char *dir, const char *path, uint64_t segment_first_lsn, uint64_t next_lsn,
                const tw_wal_options *options, tw_wal **out, char *error, size_t error_len) {
    *out = NULL;
    if (options->sync_mode < TW_WAL_SYNC_ALWAYS || options->sync_mode > TW_WAL_SYNC_NEVER ||
        next_lsn < segment_first_lsn || segment_first_lsn == 0) {
        snprintf(error, error_len, "invalid write-ahead log options");
        return TW_ERR_INVALID;
    }
    tw_wal *w = calloc(1, sizeof *w);
    if (!w || !(w->dir = strdup(dir))) {
        free(w);
        snprintf(error, error_len, "out of memory");
        return TW_ERR_NOMEM;
    }
    w->opt = *options;
    if (w->opt.buffer_bytes == 0) w->opt.buffer_bytes = 1 << 20;
    const char *what = NULL;
    w->fd = open_segment(path, segment_first_lsn, &w->segment_size, &what);
    if (w->fd < 0) {
        snprintf(error, error_len, "%s %s: %s", what, path, strerror(errno));
        free(w->dir);
        free(w);
        return TW_ERR_IO;
    }
    if (w->segment_size == TW_WAL_SEGMENT_HEADER && sync_directory(dir) < 0) {
        /* A segment this call created must survive power loss by name too. */
        snprintf(error, error_len, "sync log directory %s: %s", dir, strerror(errno));
        close(w->fd);
        free(w->dir);
        free(w);
        return TW_ERR_IO;
    }
    w->synced_size = w->segment_size;
    w->segment_first = segment_first_lsn;
    w->next_lsn = next_lsn;
    w->written_lsn = w->durable_lsn = next_lsn - 1;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->changed, NULL);
    if (w->opt.sync_mode == TW_WAL_SYNC_INTERVAL) {
        if (w->opt.interval_ms == 0) w->opt.interval_ms = 1;
        if (pthread_create(&w->thread, NULL, interval_thread, w) != 0) {
            snprintf(error, error_len, "cannot start the flush thread");
            close(w->fd);
            free(w->dir);
            free(w);
            return TW_ERR_NOMEM;
        }
        w->has_thread = 1;
    }
    *out = w;
    return TW_OK;
}

int tw_wal_close(tw_wal *w) {
    pthread_mutex_lock(&w->mu);
    if (w->fd < 0) { /* closed before */
        pthread_mutex_unlock(&w->mu);
        return TW_OK;
    }
    w->closing = 1;
    pthread_cond_broadcast(&w->changed);
    while (w->users) pthread_cond_wait(&w->changed, &w->mu);
    int status = flush_all_locked(w, w->opt.sync_mode != TW_WAL_SYNC_NEVER);
    pthread_mutex_unlock(&w->mu);
    if (w->has_thread) {
        pthread_join(w->thread, NULL);
        w->has_thread = 0;
    }
    pthread_mutex_lock(&w->mu);
    close(w->fd);
    w->fd = -1;
    pthread_mutex_unlock(&w->mu);
    return status;
}

void tw_wal_free(tw_wal *w) {
    if (!w) return;
    tw_wal_close(w);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->changed);
    free(w->buffer);
    free(w->spare);
    free(w->dir);
    free(w);
}

int tw_wal_simulate_power_loss(tw_wal *w, uint64_t keep_unsynced) {
    pthread_mutex_lock(&w->mu);
    while (w->flushing) pthread_cond_wait(&w->changed, &w->mu);
    if (w->fd < 0) {
        pthread_mutex_unlock(&w->mu);
        return TW_ERR_IO;
    }
    /* Appenders still waiting must not be told their records are durable. */
    if (!w->failed) snprintf(w->error, sizeof w->error, "simulated power loss");
    w->failed = 1;
    uint64_t unsynced = w->segment_size - w->synced_size;
    uint64_t keep = w->synced_size + (keep_unsynced < unsynced ? keep_unsynced : unsynced);
    int status = ftruncate(w->fd, (off_t)keep) < 0 ? TW_ERR_IO : TW_OK;
    w->buffer_len = 0;
    w->segment_size = w->synced_size = keep;
    pthread_cond_broadcast(&w->changed);
    pthread_mutex_unlock(&w->mu);
    tw_wal_close(w);
    return status;
}
