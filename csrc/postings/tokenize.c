/*
 * tokenize.c — the term splitter of tokenize.h.
 *
 * Design. One pass over the bytes with a 256-entry class table. At each run
 * start the two whole-token shapes are tried before the plain run: a UUID
 * (a fixed 36-byte pattern, so O(36)), then a chain of digit runs joined by
 * '.'. A chain is walked once to count its runs and once more only when it
 * must be split, so every byte is read a bounded number of times: O(len).
 *
 * Invariants that keep every read in bounds: each probe checks its index
 * against `end` before reading, and every token ends at `end` or before a
 * byte that is not a word byte, which is also why tokens are separated and
 * TW_TOKENS_MAX holds.
 */
#include "postings/tokenize.h"

#define CLASS_WORD 1
#define CLASS_DIGIT 2
#define CLASS_HEX 4

static const uint8_t *byte_class(void) {
    static uint8_t table[256];
    static int ready;
    if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) {
        uint8_t local[256];
        for (int c = 0; c < 256; c++) {
            uint8_t k = 0;
            if (c >= 0x80 || c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
                k |= CLASS_WORD;
            if (c >= '0' && c <= '9') k |= CLASS_WORD | CLASS_DIGIT | CLASS_HEX;
            if ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) k |= CLASS_HEX;
            local[c] = k;
        }
        /* Every thread computes the same bytes, so a racing fill is benign;
         * the release store publishes a complete table. */
        for (int c = 0; c < 256; c++) __atomic_store_n(&table[c], local[c], __ATOMIC_RELAXED);
        __atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
    }
    return table;
}

/* A UUID occupies t[p .. p + 36) and no word byte follows it. */
static int is_uuid(const uint8_t *cls, const uint8_t *t, size_t p, size_t end) {
    if (end - p < 36) return 0;
    for (size_t j = 0; j < 36; j++) {
        if (j == 8 || j == 13 || j == 18 || j == 23) {
            if (t[p + j] != '-') return 0;
        } else if (!(cls[t[p + j]] & CLASS_HEX)) {
            return 0;
        }
    }
    return p + 36 == end || !(cls[t[p + 36]] & CLASS_WORD);
}

/*
 * Whether the run starting at p is digits only; *q gets the end of its
 * digit prefix (p when t[p] is not a digit).
 */
static int digit_run(const uint8_t *cls, const uint8_t *t, size_t p, size_t end, size_t *q) {
    size_t i = p;
    while (i < end && (cls[t[i]] & CLASS_DIGIT)) i++;
    *q = i;
    return i > p && (i == end || !(cls[t[i]] & CLASS_WORD));
}

/* One IPv4 octet: 1-3 digits, at most 255. */
static int is_octet(const uint8_t *t, size_t p, size_t q) {
    size_t n = q - p;
    if (n == 0 || n > 3) return 0;
    unsigned v = 0;
    for (size_t i = p; i < q; i++) v = v * 10 + (unsigned)(t[i] - '0');
    return v <= 255;
}

#define EMIT(s, e)                            \
    do {                                      \
        if (k == cap) {                       \
            *n_tokens = k;                    \
            return TW_ERR_NOSPACE;            \
        }                                     \
        if (docs) docs[k] = doc;              \
        starts[k] = (s);                      \
        ends[k] = (e);                        \
        k++;                                  \
    } while (0)

/* Tokens of t[begin .. end), appended from index *n_tokens. */
static int scan(const uint8_t *t, size_t begin, size_t end, uint32_t doc, uint32_t *docs,
                size_t *starts, size_t *ends, size_t cap, size_t *n_tokens) {
    const uint8_t *cls = byte_class();
    size_t k = *n_tokens, i = begin;
    while (i < end) {
        while (i < end && !(cls[t[i]] & CLASS_WORD)) i++;
        if (i == end) break;
        size_t s = i, q;
        if (is_uuid(cls, t, s, end)) {
            EMIT(s, s + 36);
            i = s + 36;
            continue;
        }
        if (!digit_run(cls, t, s, end, &q)) {
            while (q < end && (cls[t[q]] & CLASS_WORD)) q++;
            EMIT(s, q);
            i = q;
            continue;
        }
        size_t runs = 1, chain_end = q;
        int octets = is_octet(t, s, q);
        while (chain_end + 1 < end && t[chain_end] == '.' &&
               digit_run(cls, t, chain_end + 1, end, &q) && !is_uuid(cls, t, chain_end + 1, end)) {
            octets = octets && is_octet(t, chain_end + 1, q);
            runs++;
            chain_end = q;
        }
        if (runs == 2 || (runs == 4 && octets)) {
            EMIT(s, chain_end);
        } else {
            size_t p = s;
            while (p < chain_end) {
                size_t r = p;
                while (r < chain_end && t[r] != '.') r++;
                EMIT(p, r);
                p = r + 1;
            }
        }
        i = chain_end;
    }
    *n_tokens = k;
    return TW_OK;
}

int tw_tokenize(const uint8_t *text, size_t len, size_t *starts, size_t *ends, size_t cap,
                size_t *n_tokens) {
    *n_tokens = 0;
    return scan(text, 0, len, 0, NULL, starts, ends, cap, n_tokens);
}

int tw_tokenize_many(const uint8_t *text, size_t len, const size_t *offsets, size_t n_docs,
                     size_t first_doc, uint32_t *docs, size_t *starts, size_t *ends, size_t cap,
                     size_t *n_tokens, size_t *docs_done) {
    *n_tokens = 0;
    *docs_done = first_doc;
    if ((uint64_t)n_docs > (uint64_t)UINT32_MAX + 1 || first_doc > n_docs) return TW_ERR_INVALID;
    for (size_t d = first_doc; d < n_docs; d++)
        if (offsets[d] > offsets[d + 1]) return TW_ERR_INVALID;
    if (n_docs > 0 && offsets[n_docs] > len) return TW_ERR_INVALID;
    for (size_t d = first_doc; d < n_docs; d++) {
        size_t before = *n_tokens;
        int status = scan(text, offsets[d], offsets[d + 1], (uint32_t)d, docs, starts, ends, cap,
                          n_tokens);
        if (status != TW_OK) {
            *n_tokens = before;
            *docs_done = d;
            return status;
        }
    }
    *docs_done = n_docs;
    return TW_OK;
}

void tw_fold_ascii(const uint8_t *in, size_t len, uint8_t *out) {
    for (size_t i = 0; i < len; i++) {
        uint8_t c = in[i];
        out[i] = (uint8_t)(c + (((unsigned)(c - 'A') < 26u) << 5));
    }
}
