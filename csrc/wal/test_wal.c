/*
 * test_wal.c — C tests for the write-ahead log: framing, parsing, the
 * writer in every sync mode, group commit from many threads, rotation and
 * simulated power loss. Run by ctest and under ASan/UBSan.
 */
#include "common/check.h"
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/crc32c.h"
#include "wal/wal.h"



static char *make_dir(void) {
    char *dir = strdup("/tmp/tw_wal_test_XXXXXX");
    CHECK(dir && mkdtemp(dir));
    return dir;
}

static void remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[512];
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    if (d) closedir(d);
    rmdir(dir);
}

static uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(*len + 1);
    CHECK(buf && fread(buf, 1, *len, f) == *len);
    fclose(f);
    return buf;
}

/* Parses every segment of dir in LSN order; returns the number of records,
 * checking LSNs run 1..n and payload i is "record <lsn>". */
static uint64_t verify_log(const char *dir) {
    struct dirent **names;
    int count = scandir(dir, &names, NULL, alphasort);
    CHECK(count >= 0);
    uint64_t expect = 1;
    tw_wal_entry *entries = malloc(100000 * sizeof *entries);
    for (int i = 0; i < count; i++) {
        if (strstr(names[i]->d_name, ".wal")) {
            char path[512];
            snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
            size_t len, n, end;
            uint8_t *buf = read_file(path, &len);
            uint64_t first;
            CHECK(tw_wal_read_segment_header(buf, len, &first) == TW_OK);
            CHECK(first == expect);
            CHECK(tw_wal_parse(buf, len, TW_WAL_SEGMENT_HEADER, first, entries, 100000, &n, &end) ==
                  TW_OK);
            CHECK(end == len);
            for (size_t k = 0; k < n; k++) {
                char want[64];
                int wl = snprintf(want, sizeof want, "record %llu", (unsigned long long)entries[k].lsn);
                CHECK(entries[k].length == (uint32_t)wl);
                CHECK(memcmp(buf + entries[k].payload_offset, want, (size_t)wl) == 0);
            }
            expect += n;
            free(buf);
        }
        free(names[i]);
    }
    free(names);
    free(entries);
    return expect - 1;
}

static tw_wal *open_log(const char *dir, int mode, uint64_t segment_bytes) {
    tw_wal_options opt = {mode, segment_bytes, 5, 4096};
    char path[512], error[256];
    snprintf(path, sizeof path, "%s/%020llu.wal", dir, 1ull);
    tw_wal *w;
    CHECK(tw_wal_open(dir, path, 1, 1, &opt, &w, error, sizeof error) == TW_OK);
    return w;
}

static uint64_t append_text(tw_wal *w, uint64_t *lsn_hint) {
    char text[64];
    /* The payload names the LSN it will get: only valid single-threaded. */
    int len = snprintf(text, sizeof text, "record %llu", (unsigned long long)*lsn_hint);
    uint64_t lsn;
    CHECK(tw_wal_append(w, (const uint8_t *)text, (size_t)len, &lsn) == TW_OK);
    CHECK(lsn == *lsn_hint);
    (*lsn_hint)++;
    return lsn;
}

static void test_framing(void) {
    uint8_t buf[256];
    const char *payload = "hello";
    tw_wal_frame(buf, 7, TW_WAL_TYPE_FULL, (const uint8_t *)payload, 5, tw_crc32c(0, payload, 5));
    tw_wal_entry e;
    size_t n, end;
    CHECK(tw_wal_parse(buf, 25, 0, 7, &e, 1, &n, &end) == TW_OK && n == 1 && end == 25);
    CHECK(e.lsn == 7 && e.length == 5 && e.payload_offset == 20);
    CHECK(tw_wal_parse(buf, 24, 0, 7, &e, 1, &n, &end) == TW_ERR_TRUNCATED && n == 0 && end == 0);
    CHECK(tw_wal_parse(buf, 25, 0, 8, &e, 1, &n, &end) == TW_ERR_CORRUPT);
    for (size_t i = 0; i < 25; i++) {
        buf[i] ^= 0x40;
        CHECK(tw_wal_parse(buf, 25, 0, 7, &e, 1, &n, &end) != TW_OK);
        buf[i] ^= 0x40;
    }
    memset(buf + 25, 0, 40);
    CHECK(tw_wal_find_record(buf, 65, 1, 7) == -1);
    CHECK(tw_wal_find_record(buf, 65, 0, 7) == 0);
    CHECK(tw_wal_find_record(buf, 65, SIZE_MAX - 3, 7) == -1);
    uint8_t header[TW_WAL_SEGMENT_HEADER];
    uint64_t first;
    tw_wal_segment_header(header, 42);
    CHECK(tw_wal_read_segment_header(header, sizeof header, &first) == TW_OK && first == 42);
    header[9] ^= 1;
    CHECK(tw_wal_read_segment_header(header, sizeof header, &first) == TW_ERR_CORRUPT);
    CHECK(tw_wal_read_segment_header(header, 31, &first) == TW_ERR_TRUNCATED);
}

static void test_modes(void) {
    for (int mode = TW_WAL_SYNC_ALWAYS; mode <= TW_WAL_SYNC_NEVER; mode++) {
        char *dir = make_dir();
        tw_wal *w = open_log(dir, mode, 4096);
        uint64_t next = 1;
        for (int i = 0; i < 500; i++) append_text(w, &next);
        uint64_t n, written, durable;
        tw_wal_positions(w, &n, &written, &durable);
        CHECK(n == 501);
        if (mode <= TW_WAL_SYNC_GROUP) CHECK(durable == 500 && written == 500);
        CHECK(tw_wal_wait_written(w, 500, 1000, 0) == TW_OK);
        if (mode <= TW_WAL_SYNC_GROUP) CHECK(tw_wal_wait_written(w, 500, 1000, 1) == TW_OK);
        CHECK(tw_wal_wait_written(w, 501, 10, 0) == TW_ERR_TRUNCATED);
        CHECK(tw_wal_active_segment(w) > 1); /* rotated: 4 KiB segments */
        CHECK(tw_wal_close(w) == TW_OK);
        CHECK(tw_wal_close(w) == TW_OK); /* twice is harmless */
        tw_wal_free(w);
        CHECK(verify_log(dir) == 500);
        remove_dir(dir);
        free(dir);
    }
}

typedef struct {
    tw_wal *w;
    uint64_t *lsns;
    int count;
} worker_args;

static void *worker(void *arg) {
    worker_args *a = arg;
    for (int i = 0; i < a->count; i++) {
        const uint8_t payload[100] = {0};
        CHECK(tw_wal_append(a->w, payload, sizeof payload, &a->lsns[i]) == TW_OK);
    }
    return NULL;
}

static void test_group_commit_threads(void) {
    enum { THREADS = 8, EACH = 300 };
    char *dir = make_dir();
    tw_wal *w = open_log(dir, TW_WAL_SYNC_GROUP, 1 << 20);
    pthread_t threads[THREADS];
    worker_args args[THREADS];
    uint64_t *lsns = calloc(THREADS * EACH, sizeof *lsns);
    for (int t = 0; t < THREADS; t++) {
        args[t] = (worker_args){w, lsns + t * EACH, EACH};
        CHECK(pthread_create(&threads[t], NULL, worker, &args[t]) == 0);
    }
    for (int t = 0; t < THREADS; t++) pthread_join(threads[t], NULL);
    /* Every LSN 1..THREADS*EACH handed out exactly once. */
    uint8_t *seen = calloc(THREADS * EACH + 1, 1);
    for (int i = 0; i < THREADS * EACH; i++) {
        CHECK(lsns[i] >= 1 && lsns[i] <= THREADS * EACH && !seen[lsns[i]]);
        seen[lsns[i]] = 1;
    }
    uint64_t next, written, durable;
    tw_wal_positions(w, &next, &written, &durable);
    CHECK(durable == THREADS * EACH);
    CHECK(tw_wal_close(w) == TW_OK);
    tw_wal_free(w);
    free(seen);
    free(lsns);
    remove_dir(dir);
    free(dir);
}

static void test_power_loss(void) {
    /* GROUP: everything acknowledged survives; NEVER: nothing unsynced does. */
    char *dir = make_dir();
    tw_wal *w = open_log(dir, TW_WAL_SYNC_GROUP, 1 << 20);
    uint64_t next = 1;
    for (int i = 0; i < 100; i++) append_text(w, &next);
    CHECK(tw_wal_simulate_power_loss(w, 1000) == TW_OK);
    uint64_t lsn;
    CHECK(tw_wal_append(w, (const uint8_t *)"x", 1, &lsn) == TW_ERR_IO);
    tw_wal_free(w);
    CHECK(verify_log(dir) == 100);
    remove_dir(dir);
    free(dir);

    dir = make_dir();
    w = open_log(dir, TW_WAL_SYNC_NEVER, 1 << 20);
    next = 1;
    for (int i = 0; i < 100; i++) append_text(w, &next);
    CHECK(tw_wal_flush(w, 0) == TW_OK);
    CHECK(tw_wal_simulate_power_loss(w, 0) == TW_OK);
    tw_wal_free(w);
    CHECK(verify_log(dir) == 0);
    remove_dir(dir);
    free(dir);
}

int main(void) {
    test_framing();
    test_modes();
    test_group_commit_threads();
    test_power_loss();
    printf("test_wal: %d checks passed\n", checks);
    return 0;
}
