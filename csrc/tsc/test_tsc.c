/* test_tsc.c — round trips and damage for the chunk codec (csrc/tsc). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "tsc/tsc.h"

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static size_t roundtrip(const int64_t *ts, const double *v, size_t n) {
    size_t cap = tw_tsc_bound(n), len, count;
    uint8_t *buf = malloc(cap);
    int64_t *t2 = malloc(sizeof(int64_t) * (n + 1));
    double *v2 = malloc(sizeof(double) * (n + 1));
    CHECK(buf && t2 && v2);
    CHECK(tw_tsc_encode(ts, v, n, buf, cap, &len) == TW_OK);
    CHECK(len <= cap);
    tw_tsc_info info;
    CHECK(tw_tsc_info_of(buf, len, &info) == TW_OK);
    CHECK(info.count == n);
    CHECK(tw_tsc_decode(buf, len, t2, v2, n, &count) == TW_OK);
    CHECK(count == n);
    CHECK(n == 0 || memcmp(ts, t2, n * 8) == 0);
    CHECK(n == 0 || memcmp(v, v2, n * 8) == 0);
    if (n > 0) CHECK(tw_tsc_decode(buf, len, t2, v2, n - 1, &count) == TW_ERR_NOSPACE);
    /* every truncation and every single-byte change: an error or a valid decode, never a crash */
    for (size_t cut = 0; cut < len; cut++)
        CHECK(tw_tsc_decode(buf, cut, t2, v2, n, &count) != TW_OK);
    for (size_t i = 0; i < len && i < 400; i++) {
        uint8_t saved = buf[i];
        buf[i] ^= (uint8_t)(1u << (next() % 8));
        (void)tw_tsc_decode(buf, len, t2, v2, n, &count);
        CHECK(count <= n);
        buf[i] = saved;
    }
    free(buf);
    free(t2);
    free(v2);
    return len;
}

int main(void) {
    enum { N = 2000 };
    static int64_t ts[N];
    static double v[N];
    /* empty and single */
    roundtrip(ts, v, 0);
    ts[0] = -5;
    v[0] = -0.0;
    roundtrip(ts, v, 1);
    /* scrape grid with jitter, counter with 2 decimals */
    int64_t base = 1700000000000;
    double c = 1234.5;
    for (size_t i = 0; i < N; i++) {
        ts[i] = base + (int64_t)i * 15000 + (int64_t)(next() % 4);
        c += (double)(next() % 300) / 100.0;
        v[i] = round(c * 100) / 100;
    }
    size_t len = roundtrip(ts, v, N);
    CHECK(len < N * 3 / 2); /* under 1.5 bytes/sample: ~2 bits of jitter + ~8.2 bits of increments */
    tw_tsc_info info;
    size_t cap = tw_tsc_bound(N), written;
    uint8_t *buf = malloc(cap);
    CHECK(tw_tsc_encode(ts, v, N, buf, cap, &written) == TW_OK);
    CHECK(tw_tsc_info_of(buf, written, &info) == TW_OK);
    CHECK(info.value_mode == TW_TSC_V_DECIMAL && info.scale == 2);
    /* constant values */
    for (size_t i = 0; i < N; i++) v[i] = 42.0;
    CHECK(roundtrip(ts, v, N) < N / 2);
    /* special values force Gorilla XOR */
    for (size_t i = 0; i < N; i++) {
        uint64_t bits = next();
        memcpy(&v[i], &bits, 8);
    }
    v[3] = NAN;
    v[4] = INFINITY;
    v[5] = -INFINITY;
    v[6] = -0.0;
    roundtrip(ts, v, N);
    /* extreme timestamps */
    ts[0] = INT64_MIN;
    ts[1] = 0;
    ts[2] = INT64_MAX;
    roundtrip(ts, v, 3);
    /* not ascending */
    ts[1] = ts[0];
    CHECK(tw_tsc_encode(ts, v, 3, buf, cap, &written) == TW_ERR_INVALID && written == 1);
    /* Rice escapes: small values with rare huge outliers, every frame kind */
    for (int round = 0; round < 200; round++) {
        size_t n = 1 + next() % 600;
        int64_t t = 0;
        for (size_t i = 0; i < n; i++) {
            uint64_t r = next();
            t += 1 + (int64_t)(r % 5 == 0 ? (r >> 8) % ((uint64_t)1 << (1 + round % 62)) : r % 4);
            ts[i] = t;
            v[i] = (double)(int64_t)(r % 9 == 0 ? (r >> 12) % 1000000007ull : (r >> 20) % 3);
        }
        roundtrip(ts, v, n);
    }
    /* random small chunks */
    for (int round = 0; round < 300; round++) {
        size_t n = 1 + next() % 300;
        int64_t t = (int64_t)(next() % 1000000) - 500000;
        for (size_t i = 0; i < n; i++) {
            t += 1 + (int64_t)(next() % (round % 3 == 0 ? 3 : 100000));
            ts[i] = t;
            switch (round % 4) {
            case 0: v[i] = (double)(int64_t)(next() % 1000); break;
            case 1: v[i] = (double)(int64_t)(next() % 100000) / 1000.0; break;
            case 2: v[i] = i % 7 ? v[i > 0 ? i - 1 : 0] : (double)next(); break;
            default: {
                uint64_t bits = next();
                memcpy(&v[i], &bits, 8);
            }
            }
        }
        roundtrip(ts, v, n);
    }
    /* garbage never crashes */
    static int64_t t2[N];
    static double v2[N];
    for (int round = 0; round < 20000; round++) {
        uint8_t junk[64];
        size_t n = next() % sizeof junk, count;
        for (size_t i = 0; i < n; i++) junk[i] = (uint8_t)next();
        if (n) junk[0] = TW_TSC_VERSION;
        (void)tw_tsc_decode(junk, n, t2, v2, N, &count);
        (void)tw_tsc_info_of(junk, n, &info);
    }
    free(buf);
    printf("test_tsc: %d checks passed\n", checks);
    return 0;
}
