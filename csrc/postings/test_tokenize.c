/*
 * test_tokenize.c — the tokenizer and BM25 top k against worked examples
 * and naive references: fixed log lines, random bytes in exact-size
 * allocations (so ASan in `make sanitize` sees any overrun), the batch form
 * against one call per document with every output capacity, and BM25
 * against a brute-force scorer with a full sort.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "postings/bm25.h"
#include "postings/invert.h"
#include "postings/tokenize.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* The tokens of text, folded, joined by '|', into out. */
static void joined(const char *text, char *out) {
    size_t len = strlen(text), n = 0;
    size_t *starts = malloc(TW_TOKENS_MAX(len) * sizeof *starts);
    size_t *ends = malloc(TW_TOKENS_MAX(len) * sizeof *ends);
    uint8_t *folded = malloc(len + 1);
    CHECK(tw_tokenize((const uint8_t *)text, len, starts, ends, TW_TOKENS_MAX(len), &n) == TW_OK);
    tw_fold_ascii((const uint8_t *)text, len, folded);
    out[0] = 0;
    for (size_t i = 0; i < n; i++) {
        if (i) strcat(out, "|");
        strncat(out, (const char *)folded + starts[i], ends[i] - starts[i]);
    }
    free(starts);
    free(ends);
    free(folded);
}

static void expect(const char *text, const char *tokens) {
    char got[1024];
    joined(text, got);
    if (strcmp(got, tokens) != 0) fprintf(stderr, "%s -> %s (want %s)\n", text, got, tokens);
    CHECK(strcmp(got, tokens) == 0);
}

static void check_examples(void) {
    expect("", "");
    expect("  ..-- ", "");
    expect("GET /api/v1/Users?id=42 HTTP/1.1", "get|api|v1|users|id|42|http|1.1");
    expect("from 10.0.0.1:8080 to 192.168.1.255", "from|10.0.0.1|8080|to|192.168.1.255");
    expect("bad 300.1.1.1 and 1.2.3 and 1.2.3.4.5", "bad|300|1|1|1|and|1|2|3|and|1|2|3|4|5");
    expect("10.0.0.1.x 1.2.3.4a", "10.0.0.1|x|1|2|3|4a");
    expect("pi=3.14 v1.2 3.14abc 3.", "pi|3.14|v1|2|3|14abc|3");
    expect("req 550E8400-e29b-41d4-a716-446655440000 done",
           "req|550e8400-e29b-41d4-a716-446655440000|done");
    expect("x-550e8400-e29b-41d4-a716-446655440000.log",
           "x|550e8400-e29b-41d4-a716-446655440000|log");
    expect("12345678-1234-1234-1234-1234567890123", "12345678|1234|1234|1234|1234567890123");
    expect("1.12345678-1234-1234-1234-123456789012", "1|12345678-1234-1234-1234-123456789012");
    expect("web-01.Example.com snake_case", "web|01|example|com|snake_case");
    expect("Grüße ÅB naïve", "grüße|Åb|naïve");
}

/* Invariants on any input: in bounds, increasing, separated, word bytes. */
static void check_random(void) {
    for (int round = 0; round < 3000; round++) {
        size_t len = rng() % 96;
        uint8_t *text = malloc(len ? len : 1);
        const char alphabet[] = "a1.-:_ Z9f\x80\xc3";
        for (size_t i = 0; i < len; i++)
            text[i] = round % 2 ? (uint8_t)rng() : (uint8_t)alphabet[rng() % (sizeof alphabet - 1)];
        size_t cap = TW_TOKENS_MAX(len), n = 0;
        size_t *starts = malloc(cap * sizeof *starts), *ends = malloc(cap * sizeof *ends);
        CHECK(tw_tokenize(text, len, starts, ends, cap, &n) == TW_OK);
        CHECK(n <= cap);
        for (size_t i = 0; i < n; i++) {
            CHECK(starts[i] < ends[i] && ends[i] <= len);
            if (i) CHECK(ends[i - 1] < starts[i]);
        }
        if (n > 0) {
            size_t short_n = 0;
            CHECK(tw_tokenize(text, len, starts, ends, n - 1, &short_n) == TW_ERR_NOSPACE);
            CHECK(short_n == n - 1);
        }
        free(starts);
        free(ends);
        free(text);
    }
}

/* The batch form equals one call per document, whatever the capacity. */
static void check_many(void) {
    const char *docs[] = {"a 10.0.0.1", "", "x.y 3.14 Z", "   ",
                          "uuid 00000000-0000-0000-0000-000000000000"};
    size_t n_docs = sizeof docs / sizeof docs[0], offsets[6], len = 0;
    char text[256] = "";
    for (size_t d = 0; d < n_docs; d++) {
        offsets[d] = len;
        strcat(text, docs[d]);
        len += strlen(docs[d]);
    }
    offsets[n_docs] = len;
    size_t want_starts[64], want_ends[64], want_n = 0;
    uint32_t want_docs[64];
    for (size_t d = 0; d < n_docs; d++) {
        size_t n = 0;
        CHECK(tw_tokenize((const uint8_t *)docs[d], strlen(docs[d]), want_starts + want_n,
                          want_ends + want_n, 64 - want_n, &n) == TW_OK);
        for (size_t i = want_n; i < want_n + n; i++) {
            want_starts[i] += offsets[d];
            want_ends[i] += offsets[d];
            want_docs[i] = (uint32_t)d;
        }
        want_n += n;
    }
    for (size_t cap = 4; cap <= 16; cap++) {
        size_t got = 0, first = 0;
        while (first < n_docs) {
            uint32_t docs_out[16];
            size_t starts[16], ends[16], n = 0, done = 0;
            int status = tw_tokenize_many((const uint8_t *)text, len, offsets, n_docs, first,
                                          docs_out, starts, ends, cap, &n, &done);
            CHECK(status == TW_OK || status == TW_ERR_NOSPACE);
            CHECK(done > first || status == TW_OK);
            for (size_t i = 0; i < n; i++) {
                CHECK(docs_out[i] == want_docs[got + i]);
                CHECK(starts[i] == want_starts[got + i] && ends[i] == want_ends[got + i]);
            }
            got += n;
            first = done;
        }
        CHECK(got == want_n);
    }
    size_t bad[3] = {0, 5, 2}, n = 0, done = 0;
    uint32_t d1[4];
    size_t s1[4], e1[4];
    CHECK(tw_tokenize_many((const uint8_t *)text, len, bad, 2, 0, d1, s1, e1, 4, &n, &done) ==
          TW_ERR_INVALID);
    size_t past[2] = {0, 1000};
    CHECK(tw_tokenize_many((const uint8_t *)text, len, past, 1, 0, d1, s1, e1, 4, &n, &done) ==
          TW_ERR_INVALID);
}

/* BM25 top k against scoring every document and sorting. */
static void check_bm25(void) {
    enum { DOCS = 300, TERMS = 4 };
    uint32_t lengths[DOCS], post[TERMS][DOCS], tf[TERMS][DOCS];
    size_t lens[TERMS], cursors[TERMS];
    double idf[TERMS];
    for (int round = 0; round < 200; round++) {
        size_t n_docs = 1 + rng() % DOCS, n_terms = rng() % (TERMS + 1);
        for (size_t d = 0; d < n_docs; d++) lengths[d] = 1 + (uint32_t)(rng() % 5);
        for (size_t t = 0; t < n_terms; t++) {
            lens[t] = 0;
            idf[t] = (double)(rng() % 4) / 2;
            for (size_t d = 0; d < n_docs; d++) {
                if (rng() % 3 == 0) {
                    post[t][lens[t]] = (uint32_t)d;
                    tf[t][lens[t]++] = 1 + (uint32_t)(rng() % 3);
                }
            }
        }
        const uint32_t *lists[TERMS], *tfs[TERMS];
        for (size_t t = 0; t < n_terms; t++) {
            lists[t] = post[t];
            tfs[t] = tf[t];
        }
        double avgdl = 2.5, k1 = 1.2, b = round % 2 ? 0.75 : 0.0;
        double want[DOCS];
        int hit[DOCS] = {0};
        for (size_t d = 0; d < n_docs; d++) want[d] = 0;
        for (size_t t = 0; t < n_terms; t++) {
            for (size_t i = 0; i < lens[t]; i++) {
                uint32_t d = post[t][i];
                double norm = k1 * (1 - b + b * (double)lengths[d] / avgdl);
                double f = (double)tf[t][i];
                want[d] += idf[t] * (f * (k1 + 1)) / (f + norm);
                hit[d] = 1;
            }
        }
        size_t k = rng() % 12, n = 0;
        uint32_t ids[12];
        double scores[12];
        CHECK(tw_bm25_top_k(lists, tfs, lens, idf, n_terms, lengths, n_docs, avgdl, k1, b, k,
                            cursors, ids, scores, &n) == TW_OK);
        /* Selection by repeated max: the reference order. */
        size_t matched = 0;
        for (size_t d = 0; d < n_docs; d++) matched += (size_t)hit[d];
        CHECK(n == (k < matched ? k : matched));
        for (size_t i = 0; i < n; i++) {
            size_t best = DOCS;
            for (size_t d = 0; d < n_docs; d++)
                if (hit[d] == 1 && (best == DOCS || want[d] > want[best])) best = d;
            CHECK(ids[i] == best && scores[i] == want[best]);
            hit[best] = 2;
        }
    }
    uint32_t one = 5, tf1 = 1, len1[2] = {1, 1}, ids[1];
    const uint32_t *l1 = &one, *t1 = &tf1;
    size_t n1 = 1, n = 0, cur[1];
    double idf1 = 1, sc[1];
    CHECK(tw_bm25_top_k(&l1, &t1, &n1, &idf1, 1, len1, 2, 1.0, 1.2, 0.75, 1, cur, ids, sc, &n) ==
          TW_ERR_INVALID);
    one = 1;
    CHECK(tw_bm25_top_k(&l1, &t1, &n1, &idf1, 1, len1, 2, 0.0, 1.2, 0.75, 1, cur, ids, sc, &n) ==
          TW_ERR_INVALID);
    CHECK(tw_bm25_top_k(&l1, &t1, &n1, &idf1, 1, len1, 2, 1.0, 1.2, 1.5, 1, cur, ids, sc, &n) ==
          TW_ERR_INVALID);
    CHECK(tw_bm25_top_k(&l1, &t1, &n1, &idf1, 1, len1, 2, 1.0, 1.2, 0.75, 1, cur, ids, sc, &n) ==
          TW_OK);
    CHECK(n == 1 && ids[0] == 1 && fabs(sc[0] - 1.0) < 1e-12);
}

/* One token occurrence, for the naive inverter. */
typedef struct {
    const uint8_t *occ_bytes;
    size_t occ_len;
    uint32_t occ_doc, occ_pos;
} occurrence;

static int compare_occurrences(const void *a, const void *b) {
    const occurrence *x = a, *y = b;
    size_t n = x->occ_len < y->occ_len ? x->occ_len : y->occ_len;
    int c = memcmp(x->occ_bytes, y->occ_bytes, n);
    if (c) return c;
    if (x->occ_len != y->occ_len) return x->occ_len < y->occ_len ? -1 : 1;
    if (x->occ_doc != y->occ_doc) return x->occ_doc < y->occ_doc ? -1 : 1;
    return (x->occ_pos > y->occ_pos) - (x->occ_pos < y->occ_pos);
}

/*
 * tw_invert against sorting every (term, document, position) occurrence:
 * random documents over a small alphabet (so terms repeat, within and
 * across documents, and the hash table grows), some of them empty.
 */
static void check_invert(void) {
    static const char alphabet[] = "ab1. -9x\x80Z";
    for (int round = 0; round < 40; round++) {
        size_t n_docs = rng() % 300, len = 0;
        size_t *offsets = malloc((n_docs + 1) * sizeof *offsets);
        uint8_t *text = malloc(n_docs * 40 + 1);
        size_t kinds = 2 + rng() % (sizeof alphabet - 2); /* how varied the tokens are */
        for (size_t d = 0; d < n_docs; d++) {
            offsets[d] = len;
            size_t doc_len = rng() % 40;
            for (size_t i = 0; i < doc_len; i++)
                text[len++] = (uint8_t)alphabet[rng() % kinds];
        }
        offsets[n_docs] = len;
        tw_fold_ascii(text, len, text);
        occurrence *occ = malloc((TW_TOKENS_MAX(len) + n_docs + 1) * sizeof *occ);
        size_t *starts = malloc((TW_TOKENS_MAX(len) + 1) * sizeof *starts);
        size_t *ends = malloc((TW_TOKENS_MAX(len) + 1) * sizeof *ends);
        size_t total = 0;
        for (size_t d = 0; d < n_docs; d++) {
            size_t n = 0;
            CHECK(tw_tokenize(text + offsets[d], offsets[d + 1] - offsets[d], starts, ends,
                              TW_TOKENS_MAX(len), &n) == TW_OK);
            for (size_t i = 0; i < n; i++)
                occ[total++] = (occurrence){text + offsets[d] + starts[i], ends[i] - starts[i],
                                            (uint32_t)d, (uint32_t)i};
        }
        qsort(occ, total, sizeof *occ, compare_occurrences);
        tw_inverted inv;
        CHECK(tw_invert(text, len, offsets, n_docs, &inv) == TW_OK);
        CHECK(inv.inv_docs == n_docs && inv.inv_tokens == total);
        size_t t = 0, e = 0, lengths_sum = 0;
        for (size_t d = 0; d < n_docs; d++) lengths_sum += inv.inv_lengths[d];
        CHECK(lengths_sum == total);
        for (size_t i = 0; i < total; i++) {
            int new_term = i == 0 || occ[i].occ_len != occ[i - 1].occ_len ||
                           memcmp(occ[i].occ_bytes, occ[i - 1].occ_bytes, occ[i].occ_len) != 0;
            int new_entry = new_term || occ[i].occ_doc != occ[i - 1].occ_doc;
            if (new_term) {
                CHECK(t < inv.inv_terms);
                CHECK(inv.inv_term_offsets[t + 1] - inv.inv_term_offsets[t] == occ[i].occ_len);
                CHECK(memcmp(inv.inv_term_bytes + inv.inv_term_offsets[t], occ[i].occ_bytes,
                             occ[i].occ_len) == 0);
                CHECK(inv.inv_position_starts[t] == i && inv.inv_entry_starts[t] == e);
                t++;
            }
            if (new_entry) {
                CHECK(e < inv.inv_entries && inv.inv_entry_rows[e] == occ[i].occ_doc);
                CHECK(inv.inv_tfs[e] >= 1);
                e++;
            }
            CHECK(inv.inv_positions[i] == occ[i].occ_pos);
        }
        CHECK(t == inv.inv_terms && e == inv.inv_entries);
        CHECK(inv.inv_position_starts[t] == total && inv.inv_entry_starts[t] == e);
        uint64_t tf_sum = 0;
        for (size_t k = 0; k < e; k++) tf_sum += inv.inv_tfs[k];
        CHECK(tf_sum == total);
        tw_inverted_free(&inv);
        CHECK(inv.inv_terms == 0 && inv.inv_positions == NULL);
        free(occ);
        free(starts);
        free(ends);
        free(text);
        free(offsets);
    }
    /* Whole values: each document is one term, the empty one too. */
    static const char *const values[] = {"b", "", "a b", "b", "", "ab", "a", "b"};
    size_t n_values = sizeof values / sizeof *values, at = 0;
    size_t value_offsets[sizeof values / sizeof *values + 1];
    char joined_values[32];
    for (size_t v = 0; v < n_values; v++) {
        value_offsets[v] = at;
        memcpy(joined_values + at, values[v], strlen(values[v]));
        at += strlen(values[v]);
    }
    value_offsets[n_values] = at;
    tw_inverted whole;
    CHECK(tw_invert_whole((const uint8_t *)joined_values, at, value_offsets, n_values, &whole) ==
          TW_OK);
    /* Sorted: "", "a", "a b", "ab", "b", with their rows. */
    static const char *const want_terms[] = {"", "a", "a b", "ab", "b"};
    static const uint32_t want_rows[] = {1, 4, 6, 2, 5, 0, 3, 7};
    static const uint64_t want_starts[] = {0, 2, 3, 4, 5, 8};
    CHECK(whole.inv_terms == 5 && whole.inv_entries == n_values && whole.inv_tokens == n_values);
    for (size_t t = 0; t < 5; t++) {
        size_t length = whole.inv_term_offsets[t + 1] - whole.inv_term_offsets[t];
        CHECK(length == strlen(want_terms[t]));
        CHECK(memcmp(whole.inv_term_bytes + whole.inv_term_offsets[t], want_terms[t], length) == 0);
        CHECK(whole.inv_entry_starts[t] == want_starts[t]);
    }
    CHECK(whole.inv_entry_starts[5] == 8);
    for (size_t e = 0; e < n_values; e++)
        CHECK(whole.inv_entry_rows[e] == want_rows[e] && whole.inv_tfs[e] == 1 &&
              whole.inv_positions[e] == 0 && whole.inv_lengths[e] == 1);
    tw_inverted_free(&whole);
    /* Many distinct terms: the table grows several times. */
    size_t n_docs = 40000, len = 0;
    size_t *offsets = malloc((n_docs + 1) * sizeof *offsets);
    char *text = malloc(n_docs * 24);
    for (size_t d = 0; d < n_docs; d++) {
        offsets[d] = len;
        len += (size_t)sprintf(text + len, "w%zu x%zu ", d, d % 7);
    }
    offsets[n_docs] = len;
    tw_inverted inv;
    CHECK(tw_invert((const uint8_t *)text, len, offsets, n_docs, &inv) == TW_OK);
    CHECK(inv.inv_terms == n_docs + 7 && inv.inv_tokens == 2 * n_docs);
    for (size_t r = 1; r < inv.inv_terms; r++) {
        const uint8_t *a = inv.inv_term_bytes + inv.inv_term_offsets[r - 1];
        const uint8_t *b = inv.inv_term_bytes + inv.inv_term_offsets[r];
        size_t la = inv.inv_term_offsets[r] - inv.inv_term_offsets[r - 1];
        size_t lb = inv.inv_term_offsets[r + 1] - inv.inv_term_offsets[r];
        int c = memcmp(a, b, la < lb ? la : lb);
        CHECK(c < 0 || (c == 0 && la < lb));
    }
    tw_inverted_free(&inv);
    /* Bad offsets are refused. */
    size_t bad[3] = {0, 5, 2};
    CHECK(tw_invert((const uint8_t *)text, len, bad, 2, &inv) == TW_ERR_INVALID);
    size_t past[2] = {0, len + 1};
    CHECK(tw_invert((const uint8_t *)text, len, past, 1, &inv) == TW_ERR_INVALID);
    tw_inverted_free(&inv);
    free(text);
    free(offsets);
}

int main(void) {
    check_examples();
    check_random();
    check_many();
    check_bm25();
    check_invert();
    printf("test_tokenize: %d checks passed\n", checks);
    return 0;
}
