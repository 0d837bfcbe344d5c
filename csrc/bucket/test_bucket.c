/*
 * test_bucket.c — C tests for the rate-limit tables: each algorithm's
 * decisions, growth with many keys, idle-key sweeps, deletion, levels and
 * many threads on one key. Run by ctest and under ASan/UBSan.
 */
#include "common/check.h"
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "bucket/bucket.h"
#include "common/status.h"

#define SEC 1000000000LL

static void key(uint64_t n, uint64_t *hi, uint64_t *lo) { tw_bucket_hash_u64(n, 7, hi, lo); }

static tw_bucket_decision ask(tw_bucket_table *t, uint64_t n, int64_t cost, int64_t now) {
    uint64_t hi, lo;
    tw_bucket_decision d;
    key(n, &hi, &lo);
    CHECK(tw_bucket_acquire(t, hi, lo, cost, now, 1, &d) == TW_OK);
    return d;
}

static void test_token(void) {
    /* 10 per second, burst 5: five at once, then one every 100 ms. */
    tw_bucket_table *t = tw_bucket_new(TW_BUCKET_TOKEN, SEC / 10, 5, NULL);
    CHECK(t);
    for (int i = 0; i < 5; i++) {
        tw_bucket_decision d = ask(t, 1, 1, 0);
        CHECK(d.allowed && d.remaining == 4 - i);
    }
    tw_bucket_decision d = ask(t, 1, 1, 0);
    CHECK(!d.allowed && d.remaining == 0 && d.retry_after_ns == SEC / 10);
    CHECK(d.reset_after_ns == SEC / 2);
    CHECK(!ask(t, 1, 1, SEC / 10 - 1).allowed);
    CHECK(ask(t, 1, 1, SEC / 10).allowed);
    CHECK(ask(t, 2, 5, 0).allowed); /* another key has its own bucket */
    d = ask(t, 3, 6, 0);
    CHECK(!d.allowed && d.retry_after_ns == TW_BUCKET_NEVER && d.remaining == 5);
    CHECK(tw_bucket_len(t) == 2);
    tw_bucket_free(t);
}

static void test_fixed(void) {
    tw_bucket_table *t = tw_bucket_new(TW_BUCKET_FIXED, 60 * SEC, 3, NULL);
    CHECK(t);
    CHECK(ask(t, 1, 2, 10 * SEC).allowed);
    tw_bucket_decision d = ask(t, 1, 2, 20 * SEC);
    CHECK(!d.allowed && d.remaining == 1 && d.retry_after_ns == 40 * SEC);
    CHECK(ask(t, 1, 1, 59 * SEC).allowed);
    d = ask(t, 1, 3, 60 * SEC); /* a new window */
    CHECK(d.allowed && d.remaining == 0 && d.reset_after_ns == 60 * SEC);
    d = ask(t, 1, 1, -30 * SEC); /* a negative clock: the window [-60 s, 0) */
    CHECK(!d.allowed); /* the clock went back: the later window still counts */
    tw_bucket_free(t);
}

static void test_counter(void) {
    tw_bucket_table *t = tw_bucket_new(TW_BUCKET_COUNTER, 10 * SEC, 10, NULL);
    CHECK(t);
    for (int i = 0; i < 10; i++) CHECK(ask(t, 1, 1, 5 * SEC).allowed);
    CHECK(!ask(t, 1, 1, 9 * SEC).allowed);
    /* At 12.5 s: prev 10 weighted 0.75 = 7.5, so two more fit, not three. */
    CHECK(ask(t, 1, 2, 12 * SEC + SEC / 2).allowed);
    tw_bucket_decision d = ask(t, 1, 1, 12 * SEC + SEC / 2);
    CHECK(!d.allowed && d.retry_after_ns > 0);
    CHECK(ask(t, 1, 1, 12 * SEC + SEC / 2 + d.retry_after_ns).allowed);
    tw_bucket_free(t);
}

static void test_log(void) {
    tw_bucket_table *t = tw_bucket_new(TW_BUCKET_LOG, 10 * SEC, 3, NULL);
    CHECK(t);
    CHECK(ask(t, 1, 1, 0).allowed);
    CHECK(ask(t, 1, 1, 4 * SEC).allowed);
    CHECK(ask(t, 1, 1, 8 * SEC).allowed);
    tw_bucket_decision d = ask(t, 1, 2, 9 * SEC);
    CHECK(!d.allowed && d.remaining == 0 && d.retry_after_ns == 5 * SEC); /* the 4 s unit too */
    CHECK(d.reset_after_ns == 9 * SEC);
    CHECK(!ask(t, 1, 1, 10 * SEC - 1).allowed);
    CHECK(ask(t, 1, 1, 10 * SEC).allowed);
    CHECK(!ask(t, 1, 1, 13 * SEC).allowed);
    CHECK(ask(t, 1, 1, 14 * SEC).allowed);
    CHECK(!ask(t, 1, 4, 100 * SEC).allowed);
    CHECK(tw_bucket_new(TW_BUCKET_LOG, SEC, TW_BUCKET_LOG_MAX + 1, NULL) == NULL);
    tw_bucket_free(t);
}

static void test_many_keys_sweep_reset(void) {
    tw_bucket_table *t = tw_bucket_new(TW_BUCKET_TOKEN, SEC, 2, NULL);
    CHECK(t);
    for (uint64_t k = 0; k < 100000; k++) CHECK(ask(t, k, 1, 0).allowed);
    CHECK(tw_bucket_len(t) == 100000);
    for (uint64_t k = 0; k < 100000; k++) {
        tw_bucket_decision d = ask(t, k, 1, 0);
        CHECK(d.allowed && d.remaining == 0);
    }
    for (uint64_t k = 0; k < 100000; k += 2) {
        uint64_t hi, lo;
        key(k, &hi, &lo);
        CHECK(tw_bucket_reset(t, hi, lo) == 1);
        CHECK(tw_bucket_reset(t, hi, lo) == 0);
    }
    CHECK(tw_bucket_len(t) == 50000);
    for (uint64_t k = 0; k < 100000; k++) CHECK(ask(t, k, 1, 0).allowed == (k % 2 == 0));
    CHECK(tw_bucket_sweep(t, 1) == 0);         /* still within their 2 s */
    CHECK(tw_bucket_sweep(t, 2 * SEC) == 100000); /* all full again */
    CHECK(tw_bucket_len(t) == 0 && tw_bucket_memory(t) < 4096);
    tw_bucket_free(t);
}

static void test_levels(void) {
    tw_bucket_table *global = tw_bucket_new(TW_BUCKET_FIXED, SEC, 3, NULL);
    tw_bucket_table *user = tw_bucket_new(TW_BUCKET_TOKEN, SEC, 2, NULL);
    CHECK(global && user);
    tw_bucket_table *tables[2] = {global, user};
    uint64_t hi[2], lo[2];
    int64_t nows[2] = {0, 0};
    tw_bucket_decision out[2];
    int allowed;
    key(0, &hi[0], &lo[0]);
    for (uint64_t u = 1; u <= 4; u++) {
        key(u, &hi[1], &lo[1]);
        CHECK(tw_bucket_acquire_levels(tables, hi, lo, 2, 1, nows, &allowed, out) == TW_OK);
        CHECK(allowed == (u <= 3));
    }
    key(1, &hi[1], &lo[1]);
    /* user 1 is denied by the global level: its own bucket must not be charged */
    CHECK(tw_bucket_acquire_levels(tables, hi, lo, 2, 1, nows, &allowed, out) == TW_OK);
    CHECK(!allowed && !out[0].allowed && out[1].allowed && out[1].remaining == 1); /* what it holds */
    tw_bucket_decision d;
    CHECK(tw_bucket_acquire(user, hi[1], lo[1], 1, 0, 0, &d) == TW_OK && d.allowed);
    tw_bucket_free(global);
    tw_bucket_free(user);
}

static tw_bucket_table *shared;
static int admitted;

static void *hammer(void *arg) {
    (void)arg;
    for (int i = 0; i < 20000; i++) {
        tw_bucket_decision d = ask(shared, 42, 1, 0);
        if (d.allowed) __atomic_add_fetch(&admitted, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

static void test_threads(void) {
    shared = tw_bucket_new(TW_BUCKET_LOG, SEC, 1000, NULL);
    CHECK(shared);
    pthread_t threads[4];
    for (int i = 0; i < 4; i++) CHECK(pthread_create(&threads[i], NULL, hammer, NULL) == 0);
    for (int i = 0; i < 4; i++) pthread_join(threads[i], NULL);
    CHECK(admitted == 1000);
    tw_bucket_free(shared);
}

static void test_hash(void) {
    uint64_t a_hi, a_lo, b_hi, b_lo;
    tw_bucket_hash("user:1", 6, 1, &a_hi, &a_lo);
    tw_bucket_hash("user:1", 6, 2, &b_hi, &b_lo);
    CHECK(a_hi != b_hi || a_lo != b_lo); /* the seed separates kinds */
    tw_bucket_hash("user:2", 6, 1, &b_hi, &b_lo);
    CHECK(a_hi != b_hi && a_lo != b_lo);
    tw_bucket_hash("", 0, 0, &b_hi, &b_lo);
    CHECK((b_hi | b_lo) != 0);
    int status = 0;
    CHECK(tw_bucket_new(TW_BUCKET_TOKEN, 0, 1, &status) == NULL && status == TW_ERR_INVALID);
    CHECK(tw_bucket_new(TW_BUCKET_TOKEN, INT64_MAX / 2, 3, &status) == NULL && status == TW_ERR_INVALID);
}

int main(void) {
    test_token();
    test_fixed();
    test_counter();
    test_log();
    test_many_keys_sweep_reset();
    test_levels();
    test_threads();
    test_hash();
    printf("test_bucket: %d checks passed\n", checks);
    return 0;
}
