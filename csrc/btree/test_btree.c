/*
 * test_btree.c — the B+tree against a model (an array indexed by key id):
 * random puts, deletes, commits and aborts on 512-byte pages with a tiny
 * buffer pool, full scans both ways, check() after every commit, reopen,
 * snapshots that outlive commits, bulk load, and simulated power loss.
 * Run under ASan/UBSan by `make sanitize`.
 */
#include "common/check.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "btree/btree.h"

#define NKEYS 3000
#define OK(call)                                                                         \
    do {                                                                                 \
        int rc_ = (call);                                                                \
        if (rc_ != TW_OK) {                                                              \
            char e_[256] = "";                                                           \
            if (bt) tw_bt_last_error(bt, e_, sizeof e_);                                 \
            fprintf(stderr, "%s:%d: %s -> %d (%s)\n", __FILE__, __LINE__, #call, rc_, e_); \
            exit(1);                                                                     \
        }                                                                                \
    } while (0)

static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* model: value length per key id (-1: absent); value bytes derived from (id, version) */
static int vlen_of[NKEYS], ver_of[NKEYS];
static int c_vlen[NKEYS], c_ver[NKEYS]; /* committed */

static size_t key_of(int id, uint8_t *out) {
    /* variable length keys sharing prefixes; order = strcmp order of the text */
    return (size_t)sprintf((char *)out, "k%0*d", 1 + id % 7, id);
}

static void value_of(int id, int ver, int len, uint8_t *out) {
    for (int i = 0; i < len; i++) out[i] = (uint8_t)(id * 31 + ver * 7 + i);
}

static int cmp_ids(const void *a, const void *b) {
    uint8_t ka[32], kb[32];
    size_t la = key_of(*(const int *)a, ka), lb = key_of(*(const int *)b, kb);
    size_t m = la < lb ? la : lb;
    int r = memcmp(ka, kb, m);
    return r ? r : (la < lb ? -1 : la > lb);
}

static int order[NKEYS];
static uint8_t vbuf[20000], expect[20000], scanbuf[1 << 16];

static void verify(tw_btree *bt, const int *vl, const int *vr, int in_txn) {
    /* point reads */
    uint64_t n = 0;
    for (int id = 0; id < NKEYS; id++) {
        uint8_t k[32];
        size_t kl = key_of(id, k), got;
        int rc = tw_bt_get(bt, NULL, in_txn, k, kl, vbuf, sizeof vbuf, &got);
        if (vl[id] < 0) {
            CHECK(rc == TW_BT_NOTFOUND);
            continue;
        }
        n++;
        OK(rc);
        CHECK((int)got == vl[id]);
        value_of(id, vr[id], vl[id], expect);
        CHECK(memcmp(vbuf, expect, got) == 0);
    }
    /* scans both ways, in small batches */
    for (int reverse = 0; reverse < 2; reverse++) {
        int pos = reverse ? NKEYS - 1 : 0;
        uint8_t last[32];
        size_t lastlen = 0;
        int done = 0;
        uint64_t seen = 0;
        while (!done) {
            tw_bt_range r = {0};
            r.reverse = reverse;
            if (lastlen) {
                if (reverse) {
                    r.hi = last;
                    r.hi_len = lastlen;
                    r.hi_excl = 1;
                } else {
                    r.lo = last;
                    r.lo_len = lastlen;
                    r.lo_excl = 1;
                }
            }
            size_t cnt, used;
            OK(tw_bt_scan(bt, NULL, in_txn, &r, scanbuf, sizeof scanbuf, 7, &cnt, &used, &done));
            size_t off = 0;
            for (size_t i = 0; i < cnt; i++) {
                uint32_t kl, vlen;
                memcpy(&kl, scanbuf + off, 4);
                memcpy(&vlen, scanbuf + off + 4, 4);
                while (vl[order[pos]] < 0) pos += reverse ? -1 : 1;
                uint8_t k[32];
                size_t ekl = key_of(order[pos], k);
                CHECK(ekl == kl && memcmp(k, scanbuf + off + 8, kl) == 0);
                CHECK((int)vlen == vl[order[pos]]);
                value_of(order[pos], vr[order[pos]], (int)vlen, expect);
                CHECK(memcmp(scanbuf + off + 8 + kl, expect, vlen) == 0);
                memcpy(last, k, kl);
                lastlen = kl;
                off += 8 + kl + vlen;
                pos += reverse ? -1 : 1;
                seen++;
            }
        }
        CHECK(seen == n);
    }
    tw_bt_range all = {0};
    uint64_t c;
    OK(tw_bt_count(bt, NULL, in_txn, &all, &c));
    CHECK(c == n);
}

static int random_vlen(void) {
    uint64_t r = rnd() % 100;
    if (r < 70) return (int)(rnd() % 40);
    if (r < 90) return (int)(rnd() % 200);
    return (int)(rnd() % 5000); /* overflow pages on 512-byte pages */
}

/* ---- threads: readers see whole transactions only.
 * The writer sets all 200 keys to the same version in each transaction; a
 * reader's snapshot scan must find one version across every key. */
#define TKEYS 200
static tw_btree *shared;
static int writer_done;

static void *writer(void *arg) {
    (void)arg;
    tw_btree *bt = shared;
    uint8_t val[64];
    for (uint32_t ver = 1; ver <= 150; ver++) {
        OK(tw_bt_begin(bt));
        for (int i = 0; i < TKEYS; i++) {
            uint8_t k[16];
            size_t kl = (size_t)sprintf((char *)k, "t%04d", i);
            memset(val, 0, sizeof val);
            memcpy(val, &ver, sizeof ver);
            OK(tw_bt_put(bt, k, kl, val, 8 + (size_t)(ver % 50)));
        }
        OK(tw_bt_commit(bt));
    }
    __atomic_store_n(&writer_done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void *reader(void *arg) {
    (void)arg;
    tw_btree *bt = shared;
    static __thread uint8_t buf[1 << 15];
    int rounds = 0;
    while (!__atomic_load_n(&writer_done, __ATOMIC_ACQUIRE) || rounds < 5) {
        tw_bt_snapshot snap;
        OK(tw_bt_snapshot_begin(bt, &snap));
        tw_bt_range r;
        memset(&r, 0, sizeof r);
        size_t n, used, seen = 0;
        int done = 0;
        uint32_t version = 0;
        uint8_t last[16];
        size_t lastlen = 0;
        while (!done) {
            if (lastlen) {
                r.lo = last;
                r.lo_len = lastlen;
                r.lo_excl = 1;
            }
            OK(tw_bt_scan(bt, &snap, 0, &r, buf, sizeof buf, 37, &n, &used, &done));
            size_t off = 0;
            for (size_t i = 0; i < n; i++) {
                uint32_t kl, vl, v;
                memcpy(&kl, buf + off, 4);
                memcpy(&vl, buf + off + 4, 4);
                memcpy(&v, buf + off + 8 + kl, 4);
                if (seen == 0) version = v;
                CHECK(v == version);
                CHECK(vl == 8 + v % 50);
                memcpy(last, buf + off + 8, kl);
                lastlen = kl;
                off += 8 + kl + vl;
                seen++;
            }
        }
        CHECK(seen == 0 || seen == TKEYS);
        tw_bt_snapshot_end(bt, &snap);
        rounds++;
    }
    return NULL;
}

static void threads_test(const char *path) {
    char err[256];
    tw_btree *bt = NULL;
    OK(tw_bt_create_file(path, 4096, err, sizeof err));
    OK(tw_bt_open(path, 4096, 64 * 4096, 0, 0, &bt, err, sizeof err));
    shared = bt;
    pthread_t w, r1, r2;
    CHECK(pthread_create(&r1, NULL, reader, NULL) == 0);
    CHECK(pthread_create(&r2, NULL, reader, NULL) == 0);
    CHECK(pthread_create(&w, NULL, writer, NULL) == 0);
    pthread_join(w, NULL);
    pthread_join(r1, NULL);
    pthread_join(r2, NULL);
    tw_bt_stats st;
    OK(tw_bt_check(bt, &st));
    CHECK(st.keys == TKEYS);
    OK(tw_bt_close(bt));
    tw_bt_free(bt);
}

int main(void) {
    char path[] = "/tmp/test_btree_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    char err[256];
    tw_btree *bt = NULL;
    OK(tw_bt_create_file(path, 512, err, sizeof err));
    OK(tw_bt_open(path, 512, 64 * 512, 0, 0, &bt, err, sizeof err));
    for (int i = 0; i < NKEYS; i++) {
        order[i] = i;
        vlen_of[i] = c_vlen[i] = -1;
    }
    qsort(order, NKEYS, sizeof order[0], cmp_ids);

    tw_bt_snapshot old;
    int old_vlen[NKEYS], old_ver[NKEYS];
    int have_old = 0;
    for (int round = 0; round < 60; round++) {
        OK(tw_bt_begin(bt));
        int ops = (int)(rnd() % 400);
        int shrink = round % 10 >= 6; /* some rounds mostly delete, so pages merge */
        for (int o = 0; o < ops; o++) {
            int id = (int)(rnd() % NKEYS);
            uint8_t k[32];
            size_t kl = key_of(id, k);
            if (rnd() % 100 < (uint64_t)(shrink ? 80 : 30)) {
                int rc = tw_bt_delete(bt, k, kl);
                CHECK(rc == (vlen_of[id] >= 0 ? TW_OK : TW_BT_NOTFOUND));
                vlen_of[id] = -1;
            } else {
                int len = random_vlen();
                ver_of[id]++;
                value_of(id, ver_of[id], len, vbuf);
                OK(tw_bt_put(bt, k, kl, vbuf, (size_t)len));
                vlen_of[id] = len;
            }
        }
        if (round % 7 == 3) {
            verify(bt, vlen_of, ver_of, 1);
            OK(tw_bt_abort(bt));
            memcpy(vlen_of, c_vlen, sizeof c_vlen);
            memcpy(ver_of, c_ver, sizeof c_ver);
        } else {
            OK(tw_bt_commit(bt));
            memcpy(c_vlen, vlen_of, sizeof c_vlen);
            memcpy(c_ver, ver_of, sizeof c_ver);
        }
        tw_bt_stats st;
        OK(tw_bt_check(bt, &st));
        verify(bt, c_vlen, c_ver, 0);
        if (round == 10) {
            /* a snapshot that outlives many commits */
            OK(tw_bt_snapshot_begin(bt, &old));
            memcpy(old_vlen, c_vlen, sizeof c_vlen);
            memcpy(old_ver, c_ver, sizeof c_ver);
            have_old = 1;
        }
        if (have_old && round % 5 == 0) {
            uint64_t n = 0;
            for (int id = 0; id < NKEYS; id++) {
                uint8_t k[32];
                size_t kl = key_of(id, k), got;
                int rc = tw_bt_get(bt, &old, 0, k, kl, vbuf, sizeof vbuf, &got);
                if (old_vlen[id] < 0) {
                    CHECK(rc == TW_BT_NOTFOUND);
                    continue;
                }
                OK(rc);
                n++;
                value_of(id, old_ver[id], old_vlen[id], expect);
                CHECK((int)got == old_vlen[id] && memcmp(vbuf, expect, got) == 0);
            }
            CHECK(n == old.count);
        }
        if (round == 40) {
            tw_bt_snapshot_end(bt, &old);
            have_old = 0;
        }
        if (round % 15 == 14 && !have_old) {
            OK(tw_bt_close(bt));
            tw_bt_free(bt);
            OK(tw_bt_open(path, 512, 64 * 512, 1, 0, &bt, err, sizeof err));
            verify(bt, c_vlen, c_ver, 0);
        }
    }
    /* delete everything: the tree collapses to empty and pages go free */
    OK(tw_bt_begin(bt));
    for (int id = 0; id < NKEYS; id++) {
        uint8_t k[32];
        size_t kl = key_of(id, k);
        int rc = tw_bt_delete(bt, k, kl);
        CHECK(rc == (c_vlen[id] >= 0 ? TW_OK : TW_BT_NOTFOUND));
        c_vlen[id] = -1;
    }
    OK(tw_bt_commit(bt));
    tw_bt_stats st;
    OK(tw_bt_check(bt, &st));
    CHECK(st.keys == 0 && st.depth == 0);
    OK(tw_bt_close(bt));
    tw_bt_free(bt);

    /* bulk load into a fresh file, then random edits on top */
    OK(tw_bt_create_file(path, 512, err, sizeof err));
    OK(tw_bt_open(path, 512, 64 * 512, 0, 0, &bt, err, sizeof err));
    OK(tw_bt_begin(bt));
    for (int i = 0; i < NKEYS; i++) {
        int id = order[i];
        uint8_t k[32];
        size_t kl = key_of(id, k);
        int len = random_vlen();
        c_ver[id] = ver_of[id] = 1;
        c_vlen[id] = vlen_of[id] = len;
        value_of(id, 1, len, vbuf);
        OK(tw_bt_bulk_add(bt, k, kl, vbuf, (size_t)len));
    }
    {
        uint8_t k[32];
        size_t kl = key_of(order[5], k);
        CHECK(tw_bt_bulk_add(bt, k, kl, vbuf, 1) == TW_ERR_INVALID); /* out of order */
    }
    OK(tw_bt_commit(bt));
    OK(tw_bt_check(bt, &st));
    CHECK(st.keys == NKEYS && st.depth >= 3);
    verify(bt, c_vlen, c_ver, 0);
    OK(tw_bt_begin(bt));
    for (int o = 0; o < 2000; o++) {
        int id = (int)(rnd() % NKEYS);
        uint8_t k[32];
        size_t kl = key_of(id, k);
        int len = random_vlen();
        ver_of[id]++;
        value_of(id, ver_of[id], len, vbuf);
        OK(tw_bt_put(bt, k, kl, vbuf, (size_t)len));
        vlen_of[id] = len;
    }
    OK(tw_bt_commit(bt));
    OK(tw_bt_check(bt, &st));
    verify(bt, vlen_of, ver_of, 0);
    memcpy(c_vlen, vlen_of, sizeof c_vlen);
    memcpy(c_ver, ver_of, sizeof c_ver);
    OK(tw_bt_close(bt));
    tw_bt_free(bt);

    /* simulated power loss in the middle of writing a commit: the tree opens
     * at the last synced commit and checks clean */
    for (uint64_t seed = 1; seed <= 30; seed++) {
        OK(tw_bt_open(path, 512, 64 * 512, 1, 1, &bt, err, sizeof err));
        OK(tw_bt_begin(bt));
        for (int o = 0; o < 300; o++) {
            int id = (int)(rnd() % NKEYS);
            uint8_t k[32];
            size_t kl = key_of(id, k);
            int len = random_vlen();
            value_of(id, 99, len, vbuf);
            OK(tw_bt_put(bt, k, kl, vbuf, (size_t)len));
        }
        /* writes of this transaction spilled from the tiny pool are unsynced */
        OK(tw_bt_simulate_power_loss(bt, seed));
        tw_bt_free(bt);
        OK(tw_bt_open(path, 512, 64 * 512, 1, 0, &bt, err, sizeof err));
        OK(tw_bt_check(bt, &st));
        verify(bt, c_vlen, c_ver, 0);
        OK(tw_bt_close(bt));
        tw_bt_free(bt);
    }
    /* power loss inside a commit: at the sync after its pages (the old
     * state must open) or after its meta page (either state may) */
    for (uint64_t seed = 1; seed <= 40; seed++) {
        int at = (int)(seed % 2) + 1;
        OK(tw_bt_open(path, 512, 64 * 512, 1, 1, &bt, err, sizeof err));
        OK(tw_bt_begin(bt));
        for (int o = 0; o < 200; o++) {
            int id = (int)(rnd() % NKEYS);
            uint8_t k[32];
            size_t kl = key_of(id, k);
            if (rnd() % 3 == 0) {
                tw_bt_delete(bt, k, kl);
                vlen_of[id] = -1;
                continue;
            }
            int len = random_vlen();
            ver_of[id]++;
            value_of(id, ver_of[id], len, vbuf);
            OK(tw_bt_put(bt, k, kl, vbuf, (size_t)len));
            vlen_of[id] = len;
        }
        OK(tw_bt_arm_power_loss(bt, (uint64_t)at, seed));
        CHECK(tw_bt_commit(bt) == TW_ERR_IO);
        tw_bt_free(bt);
        OK(tw_bt_open(path, 512, 64 * 512, 1, 0, &bt, err, sizeof err));
        OK(tw_bt_check(bt, &st));
        size_t got;
        int id0 = -1;
        for (int id = 0; id < NKEYS && id0 < 0; id++)
            if (vlen_of[id] != c_vlen[id] || ver_of[id] != c_ver[id]) id0 = id;
        int landed = 0;
        if (id0 >= 0) {
            uint8_t k[32];
            size_t kl = key_of(id0, k);
            int rc = tw_bt_get(bt, NULL, 0, k, kl, vbuf, sizeof vbuf, &got);
            landed = vlen_of[id0] < 0 ? rc == TW_BT_NOTFOUND : (rc == TW_OK && (int)got == vlen_of[id0]);
            if (vlen_of[id0] >= 0 && landed) {
                value_of(id0, ver_of[id0], vlen_of[id0], expect);
                landed = memcmp(vbuf, expect, got) == 0;
            }
        }
        CHECK(!(landed && at == 1));
        if (landed) {
            memcpy(c_vlen, vlen_of, sizeof c_vlen);
            memcpy(c_ver, ver_of, sizeof c_ver);
        } else {
            memcpy(vlen_of, c_vlen, sizeof c_vlen);
            memcpy(ver_of, c_ver, sizeof c_ver);
        }
        verify(bt, c_vlen, c_ver, 0);
        OK(tw_bt_close(bt));
        tw_bt_free(bt);
    }
    threads_test(path);
    unlink(path);
    printf("test_btree: ok\n");
    return 0;
}
