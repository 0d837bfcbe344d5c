/*
 * test_postings.c — the posting-list kernel against naive references:
 * set operations on both the merge and the galloping paths, k-way
 * operations, encode/decode round trips, views, and damaged encodings
 * (every truncation, every byte flip, structural damage under a valid
 * checksum) that must give a status and never an out-of-bounds read (run
 * under ASan in `make sanitize`; truncated copies sit in exact-size
 * allocations so ASan sees any overrun).
 */
#include "postings/postings.h"

#include <stdlib.h>
#include <string.h>

#include "common/byteorder.h"
#include "common/check.h"

static uint64_t rng_state = 0x243f6a8885a308d3ULL;

static uint64_t rng(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* n sorted unique ids with gaps in 1..max_gap starting near start. */
static size_t make_list(uint32_t *out, size_t n, uint32_t start, uint32_t max_gap) {
    uint64_t id = start;
    size_t k = 0;
    for (; k < n; k++) {
        if (id > UINT32_MAX) break;
        out[k] = (uint32_t)id;
        id += 1 + rng() % max_gap;
    }
    return k;
}

static int has(const uint32_t *l, size_t n, uint32_t x) {
    for (size_t i = 0; i < n; i++)
        if (l[i] == x) return 1;
    return 0;
}

/* Naive references over the union of ids seen. */
static size_t ref_op(const uint32_t *a, size_t na, const uint32_t *b, size_t nb, uint32_t *out,
                     int op) {
    uint32_t *all = malloc((na + nb + 1) * sizeof *all);
    size_t n = 0, k = 0;
    CHECK(tw_postings_union(a, na, b, nb, all, na + nb, &n) == TW_OK);
    for (size_t i = 0; i < n; i++) {
        int in_a = has(a, na, all[i]), in_b = has(b, nb, all[i]);
        int keep = op == 0 ? in_a && in_b : op == 1 ? in_a || in_b : in_a && !in_b;
        if (keep) out[k++] = all[i];
    }
    free(all);
    return k;
}

static void check_union_plain(void) {
    uint32_t a[] = {1, 3, 5, 9}, b[] = {0, 3, 4, 9, 10}, out[9];
    uint32_t want[] = {0, 1, 3, 4, 5, 9, 10};
    size_t n;
    CHECK(tw_postings_union(a, 4, b, 5, out, 9, &n) == TW_OK);
    CHECK(n == 7 && memcmp(out, want, sizeof want) == 0);
    CHECK(tw_postings_union(a, 4, b, 5, out, 8, &n) == TW_ERR_NOSPACE);
}

static void check_pair(size_t na, uint32_t gap_a, size_t nb, uint32_t gap_b) {
    uint32_t *a = malloc((na + 1) * sizeof *a), *b = malloc((nb + 1) * sizeof *b);
    uint32_t *got = malloc((na + nb + 1) * sizeof *got), *want = malloc((na + nb + 1) * 4);
    na = make_list(a, na, (uint32_t)(rng() % 50), gap_a);
    nb = make_list(b, nb, (uint32_t)(rng() % 50), gap_b);
    size_t n, m;
    for (int op = 0; op < 3; op++) {
        m = ref_op(a, na, b, nb, want, op);
        int status = op == 0   ? tw_postings_intersect(a, na, b, nb, got, na + nb, &n)
                     : op == 1 ? tw_postings_union(a, na, b, nb, got, na + nb, &n)
                               : tw_postings_difference(a, na, b, nb, got, na + nb, &n);
        CHECK(status == TW_OK);
        CHECK(n == m);
        CHECK(m == 0 || memcmp(got, want, m * sizeof *got) == 0);
    }
    /* In place, out == a. */
    uint32_t *copy = malloc((na + 1) * sizeof *copy);
    memcpy(copy, a, na * sizeof *a);
    m = ref_op(a, na, b, nb, want, 0);
    CHECK(tw_postings_intersect(copy, na, b, nb, copy, na, &n) == TW_OK);
    CHECK(n == m && (m == 0 || memcmp(copy, want, m * 4) == 0));
    memcpy(copy, a, na * sizeof *a);
    m = ref_op(a, na, b, nb, want, 2);
    CHECK(tw_postings_difference(copy, na, b, nb, copy, na, &n) == TW_OK);
    CHECK(n == m && (m == 0 || memcmp(copy, want, m * 4) == 0));
    free(copy);
    free(a);
    free(b);
    free(got);
    free(want);
}

static void check_set_operations(void) {
    check_union_plain();
    /* Similar sizes (merge), and 40x, 300x apart either way (gallop). */
    size_t sizes[][2] = {{0, 0}, {0, 10}, {10, 0}, {1, 1}, {200, 180}, {10, 400},
                         {400, 10}, {3, 1000}, {1000, 3}, {7, 2100}};
    for (int round = 0; round < 6; round++)
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
            check_pair(sizes[s][0], 1 + round % 3 * 4, sizes[s][1], 1 + round % 2 * 5);
    uint32_t a[] = {1, 2}, b[] = {2, 3, 4}, out[4];
    size_t n;
    CHECK(tw_postings_intersect(a, 2, b, 3, out, 1, &n) == TW_ERR_NOSPACE);
    CHECK(tw_postings_difference(a, 2, b, 3, out, 1, &n) == TW_ERR_NOSPACE);
    uint32_t top[] = {0, UINT32_MAX}, top2[] = {UINT32_MAX};
    CHECK(tw_postings_intersect(top, 2, top2, 1, out, 2, &n) == TW_OK);
    CHECK(n == 1 && out[0] == UINT32_MAX);
}

static void check_many(void) {
    enum { K = 6, N = 600 };
    uint32_t *lists[K];
    size_t lens[K];
    uint32_t *got = malloc(K * N * sizeof *got), *want = malloc(K * N * sizeof *want);
    uint32_t *tmp = malloc(K * N * sizeof *tmp);
    for (int round = 0; round < 20; round++) {
        size_t k = (size_t)round % (K + 1);
        for (size_t i = 0; i < k; i++) {
            lists[i] = malloc(N * sizeof *lists[i]);
            size_t n = (size_t)round % 5 == i ? 0 : (size_t)(rng() % N);
            lens[i] = make_list(lists[i], n, (uint32_t)(rng() % 20), 1 + (uint32_t)(rng() % 6));
        }
        size_t n, m = 0, t;
        /* Reference: pairwise, from the first list. */
        for (int op = 0; op < 2; op++) {
            m = k ? lens[0] : 0;
            if (k) memcpy(want, lists[0], m * sizeof *want);
            for (size_t i = 1; i < k; i++) {
                t = ref_op(want, m, lists[i], lens[i], tmp, op);
                memcpy(want, tmp, t * sizeof *tmp);
                m = t;
            }
            const uint32_t *const *cl = (const uint32_t *const *)lists;
            int status = op == 0 ? tw_postings_intersect_many(cl, lens, k, got, K * N, &n)
                                 : tw_postings_union_many(cl, lens, k, got, K * N, &n);
            CHECK(status == TW_OK);
            CHECK(n == m && (m == 0 || memcmp(got, want, m * sizeof *got) == 0));
        }
        if (k >= 1) {
            const uint32_t *const *cl = (const uint32_t *const *)lists;
            size_t total = 0;
            for (size_t i = 0; i < k; i++) total += lens[i];
            if (total > 0)
                CHECK(tw_postings_union_many(cl, lens, k, got, total - 1, &n) == TW_ERR_NOSPACE);
        }
        for (size_t i = 0; i < k; i++) free(lists[i]);
    }
    free(got);
    free(want);
    free(tmp);
}

/* Encodes, checks the round trip and returns the bytes (malloc'd, exact size). */
static uint8_t *encode_checked(const uint32_t *ids, size_t n, size_t *len) {
    size_t bound = tw_postings_encoded_bound(n);
    uint8_t *buf = malloc(bound);
    CHECK(tw_postings_encode(ids, n, buf, bound, len) == TW_OK);
    CHECK(*len <= bound);
    uint8_t *exact = malloc(*len);
    memcpy(exact, buf, *len);
    free(buf);
    size_t count, err, got_n;
    CHECK(tw_postings_decoded_count(exact, *len, &count, &err) == TW_OK && count == n);
    uint32_t *got = malloc((n + 1) * sizeof *got);
    CHECK(tw_postings_decode(exact, *len, got, n, &got_n, &err) == TW_OK);
    CHECK(got_n == n && (n == 0 || memcmp(got, ids, n * sizeof *ids) == 0));
    if (n > 0) CHECK(tw_postings_decode(exact, *len, got, n - 1, &got_n, &err) == TW_ERR_NOSPACE);
    free(got);
    return exact;
}

static void check_view(const uint8_t *enc, size_t len, const uint32_t *ids, size_t n) {
    tw_postings_view view;
    size_t err;
    CHECK(tw_postings_view_open(&view, enc, len, 1, &err) == TW_OK);
    for (size_t i = 0; i < n; i += 1 + i / 7) {
        int found;
        CHECK(tw_postings_view_contains(&view, ids[i], &found, &err) == TW_OK && found);
        if (ids[i] > 0 && (i == 0 || ids[i - 1] != ids[i] - 1)) {
            CHECK(tw_postings_view_contains(&view, ids[i] - 1, &found, &err) == TW_OK);
            CHECK(!found);
        }
    }
    /* A sorted query: every 3rd id plus its successor (present or not). */
    size_t nq = 0;
    uint32_t *query = malloc((2 * n + 2) * sizeof *query), *want = malloc((2 * n + 2) * 4);
    for (size_t i = 0; i < n; i += 3) {
        query[nq++] = ids[i];
        if (ids[i] < UINT32_MAX && (i + 1 >= n || ids[i + 1] > ids[i] + 1))
            query[nq++] = ids[i] + 1;
    }
    size_t m = ref_op(query, nq, ids, n, want, 0), got;
    CHECK(tw_postings_view_intersect(&view, query, nq, query, nq, &got, &err) == TW_OK);
    CHECK(got == m && (m == 0 || memcmp(query, want, m * 4) == 0));
    free(query);
    free(want);
}

static void check_round_trips(void) {
    enum { N = 5000 };
    uint32_t *ids = malloc(N * sizeof *ids);
    size_t counts[] = {0, 1, 2, 127, 128, 129, 255, 256, 1000, N};
    uint32_t gaps[] = {1, 2, 100, 1u << 20, UINT32_MAX / 2};
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++)
        for (size_t g = 0; g < sizeof gaps / sizeof gaps[0]; g++) {
            size_t n = make_list(ids, counts[c], (uint32_t)(rng() % 1000), gaps[g]);
            size_t len;
            uint8_t *enc = encode_checked(ids, n, &len);
            check_view(enc, len, ids, n);
            free(enc);
        }
    /* A dense run costs one width byte per block. */
    for (size_t i = 0; i < N; i++) ids[i] = (uint32_t)(i + 7);
    size_t len;
    uint8_t *enc = encode_checked(ids, N, &len);
    size_t blocks = (N + 127) / 128;
    CHECK(len == 4 + 1 + 2 + blocks * 9);
    free(enc);
    /* The extremes of the id space. */
    uint32_t edge[] = {0, UINT32_MAX};
    enc = encode_checked(edge, 2, &len);
    check_view(enc, len, edge, 2);
    free(enc);
    for (size_t i = 0; i < 300; i++) ids[i] = UINT32_MAX - 299 + (uint32_t)i;
    enc = encode_checked(ids, 300, &len);
    check_view(enc, len, ids, 300);
    free(enc);
    /* Encoding refuses unsorted input and says where. */
    uint32_t bad[] = {1, 5, 5, 9};
    uint8_t out[64];
    CHECK(tw_postings_encode(bad, 4, out, sizeof out, &len) == TW_ERR_INVALID && len == 2);
    for (size_t i = 0; i < 200; i++) ids[i] = (uint32_t)(i * 3);
    ids[128] = ids[127];
    CHECK(tw_postings_encode(ids, 200, out, 0, &len) == TW_ERR_NOSPACE);
    uint8_t *big = malloc(tw_postings_encoded_bound(200));
    CHECK(tw_postings_encode(ids, 200, big, tw_postings_encoded_bound(200), &len) ==
          TW_ERR_INVALID);
    CHECK(len == 128);
    free(big);
    CHECK(tw_postings_encoded_bound(((uint64_t)1 << 32) + 1) == 0);
    free(ids);
}

static int decode_status(const uint8_t *enc, size_t len, size_t *err) {
    /* An exact-size copy, so ASan flags any read past the end. */
    uint8_t *copy = malloc(len ? len : 1);
    if (len) memcpy(copy, enc, len);
    size_t count = 0, n;
    *err = 0;
    int status = tw_postings_decoded_count(copy, len, &count, err);
    if (status == TW_OK) {
        uint32_t *out = malloc((count + 1) * sizeof *out);
        status = tw_postings_decode(copy, len, out, count, &n, err);
        free(out);
    }
    if (status < 0) CHECK(*err <= len);
    tw_postings_view view;
    size_t verr;
    if (tw_postings_view_open(&view, copy, len, 0, &verr) == TW_OK) {
        int found;
        uint32_t q[3] = {0, 1000, UINT32_MAX};
        (void)tw_postings_view_contains(&view, 1000, &found, &verr);
        (void)tw_postings_view_intersect(&view, q, 3, q, 3, &n, &verr);
    }
    free(copy);
    return status;
}

/* Rewrites the checksum so that only the structure can catch the damage. */
static void reseal(uint8_t *enc, size_t len) {
    tw_store_le32(enc, tw_postings_checksum(enc + 4, len - 4));
}

static void check_damage(void) {
    enum { N = 700 };
    uint32_t ids[N];
    size_t n = make_list(ids, N, 3, 40), len, err;
    uint8_t *enc = encode_checked(ids, n, &len);
    for (size_t cut = 0; cut < len; cut++) CHECK(decode_status(enc, cut, &err) < 0);
    uint8_t *mut = malloc(len);
    for (size_t at = 0; at < len; at++)
        for (int bit = 0; bit < 8; bit += 3) {
            memcpy(mut, enc, len);
            mut[at] ^= (uint8_t)(1u << bit);
            int status = decode_status(mut, len, &err);
            CHECK(status == TW_ERR_CORRUPT || status == TW_ERR_TRUNCATED);
        }
    /* Resealed structural damage: still caught, with a useful offset. */
    size_t blocks = (n + 127) / 128;
    size_t skip = 4 + 1 + 2, data = skip + blocks * 8;
    memcpy(mut, enc, len);
    mut[data] = 33; /* width of block 0 */
    reseal(mut, len);
    CHECK(decode_status(mut, len, &err) == TW_ERR_CORRUPT && err == data);
    memcpy(mut, enc, len);
    tw_store_le32(mut + skip + 8, ids[0]); /* block 1 starts where block 0 does */
    reseal(mut, len);
    CHECK(decode_status(mut, len, &err) == TW_ERR_CORRUPT && err == skip + 8);
    memcpy(mut, enc, len);
    mut[len - 1] |= 0x80; /* padding bit of the last block */
    reseal(mut, len);
    size_t last_start = data + tw_load_le32(mut + skip + 8 * (blocks - 2) + 4);
    CHECK((n - (blocks - 1) * 128 - 1) * mut[last_start] % 8 != 0); /* it has padding */
    CHECK(decode_status(mut, len, &err) == TW_ERR_CORRUPT && err == len - 1);
    memcpy(mut, enc, len);
    mut[4] = 2; /* unknown format */
    reseal(mut, len);
    CHECK(decode_status(mut, len, &err) == TW_ERR_CORRUPT && err == 4);
    /* Trailing bytes. */
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, enc, len);
    longer[len] = 0;
    reseal(longer, len + 1);
    CHECK(decode_status(longer, len + 1, &err) == TW_ERR_CORRUPT);
    free(longer);
    /* Random bytes and random headers: statuses only. */
    for (int round = 0; round < 3000; round++) {
        size_t l = rng() % 80;
        for (size_t i = 0; i < l && i < len; i++) mut[i] = (uint8_t)rng();
        if (l > 5 && round % 2) mut[4] = 1;
        if (l > 4) reseal(mut, l);
        (void)decode_status(mut, l < len ? l : len, &err);
    }
    free(mut);
    free(enc);
}

/* encode_many writes each list exactly as encode does, back to back. */
static void check_encode_many(void) {
    enum { LISTS = 40, MAX = 700 };
    uint32_t *ids = malloc(LISTS * MAX * sizeof *ids);
    uint64_t starts[LISTS + 1], offsets[LISTS + 1];
    size_t err_list, err_index;
    starts[0] = 0;
    for (size_t i = 0; i < LISTS; i++) {
        size_t n = i % 7 == 0 ? 0 : rng() % MAX; /* empty lists too */
        starts[i + 1] = starts[i] + make_list(ids + starts[i], n, (uint32_t)rng(), 1 + i * 37);
    }
    size_t bound = tw_postings_encoded_bound_many(starts, LISTS);
    CHECK(bound > 0);
    /* Exact-size allocations, so ASan sees any write past the bound. */
    uint8_t *out = malloc(bound);
    CHECK(tw_postings_encode_many(ids, starts, LISTS, out, bound, offsets, &err_list,
                                  &err_index) == TW_OK);
    CHECK(offsets[0] == 0 && offsets[LISTS] <= bound);
    for (size_t i = 0; i < LISTS; i++) {
        size_t n = (size_t)(starts[i + 1] - starts[i]), one = tw_postings_encoded_bound(n), len;
        uint8_t *want = malloc(one);
        CHECK(tw_postings_encode(ids + starts[i], n, want, one, &len) == TW_OK);
        CHECK(offsets[i + 1] - offsets[i] == len && memcmp(out + offsets[i], want, len) == 0);
        free(want);
    }
    CHECK(tw_postings_encode_many(ids, starts, 0, out, 0, offsets, &err_list, &err_index) ==
          TW_OK && offsets[0] == 0);
    /* An out-of-order id names its list and index. */
    size_t victim = 0;
    while (victim < LISTS && starts[victim + 1] - starts[victim] <= 3) victim++;
    CHECK(victim < LISTS);
    uint32_t saved = ids[starts[victim] + 3];
    ids[starts[victim] + 3] = ids[starts[victim] + 2];
    CHECK(tw_postings_encode_many(ids, starts, LISTS, out, bound, offsets, &err_list,
                                  &err_index) == TW_ERR_INVALID);
    CHECK(err_list == victim && err_index == 3);
    ids[starts[victim] + 3] = saved;
    /* Decreasing bounds are refused, not read. */
    uint64_t bad[3] = {0, 5, 2};
    CHECK(tw_postings_encoded_bound_many(bad, 2) == 0);
    CHECK(tw_postings_encode_many(ids, bad, 2, out, bound, offsets, &err_list, &err_index) ==
          TW_ERR_INVALID && err_list == 1);
    free(out);
    free(ids);
}

int main(void) {
    check_set_operations();
    check_many();
    check_round_trips();
    check_damage();
    check_encode_many();
    printf("test_postings: %d checks passed\n", checks);
    return 0;
}
