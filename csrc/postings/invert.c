/*
 * invert.c — the in-memory inverter of invert.h.
 *
 * Pass 1 tokenizes each document (tw_tokenize into per-document scratch)
 * and interns every token: a slot of the open-addressing table holds a term
 * number + 1 (0 when empty) and 32 bits of the token's hash, so a probe
 * only compares bytes when the hashes agree. The table doubles at half
 * load, so probes stay short. Each token leaves its term number (first-seen
 * order) in tok_term; documents and positions are implied by the lengths.
 *
 * Pass 2 sorts the distinct terms by bytes and counting-sorts the tokens by
 * sorted term number. The scatter walks tokens in (document, position)
 * order, so each term's slice comes out in that order too, which is the
 * order positions are stored in; entries are the runs of equal documents
 * within each slice.
 *
 * Invariant that keeps reads in bounds: every term is a (start, length)
 * slice that tw_tokenize returned for a document inside [0, len).
 */
#include "postings/invert.h"

#include <stdlib.h>
#include <string.h>

#include "common/byteorder.h"
#include "postings/tokenize.h"

/* A table slot holds what decides most comparisons, so a probe touches
 * the text only for terms longer than 8 bytes. */
typedef struct {
    uint64_t slot_prefix; /* the term's first 8 bytes (word_prefix) */
    uint32_t slot_len;
    uint32_t slot_term; /* term number + 1; 0 marks an empty slot */
} slot;

/* A recently seen token: log lines repeat most of theirs. */
typedef struct {
    uint64_t recent_prefix;
    const uint8_t *recent_bytes; /* an occurrence in the text */
    uint32_t recent_len;
    uint32_t recent_term; /* term number + 1; 0 marks an empty entry */
} recent;

#define RECENT_SLOTS 8192

/* A term to sort: its first 8 bytes, big-endian and zero-padded, order it
 * unless two share them (tokens hold no zero byte, so padding sorts a
 * prefix first). */
typedef struct {
    uint64_t key_prefix;
    const uint8_t *key_bytes;
    uint32_t key_len;
    uint32_t key_term;
} sort_key;

/*
 * p[0..min(n, 8)) as a little-endian word, zero above; bytes up to end may
 * be read (never past it), so it is one load when 8 bytes remain.
 */
static uint64_t word_prefix(const uint8_t *p, size_t n, const uint8_t *end) {
    size_t k = n < 8 ? n : 8;
    uint64_t v = 0;
    if (k == 0) return 0;
    if (end - p >= 8) {
        v = tw_load_le64(p);
        if (k < 8) v &= ~(uint64_t)0 >> (64 - 8 * k);
    } else {
        for (size_t i = 0; i < k; i++) v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

/* A 64-bit hash of p[0..n) whose first 8 bytes are prefix (word_prefix). */
static uint64_t hash_bytes(uint64_t prefix, const uint8_t *p, size_t n, const uint8_t *end) {
    uint64_t h = (prefix ^ (0x9E3779B97F4A7C15ull * (uint64_t)n)) * 0xbf58476d1ce4e5b9ull;
    h ^= h >> 31;
    for (size_t at = 8; at < n; at += 8) {
        h = (h ^ word_prefix(p + at, n - at, end)) * 0x94d049bb133111ebull;
        h ^= h >> 29;
    }
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 32);
}

/* Whether a[0..n) == b[0..n); tokens are short, so no call for them. */
static int same_bytes(const uint8_t *a, const uint8_t *b, size_t n) {
    if (n > 16) return memcmp(a, b, n) == 0;
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

static int compare_keys(const void *a, const void *b) {
    const sort_key *x = a, *y = b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key_bytes, y->key_bytes, n);
    if (c) return c;
    return (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

/*
 * Sorts keys[0..n) by bytes: an LSD radix sort on the 8-byte prefixes
 * (skipping the passes where every key has the same byte), then a
 * comparison sort of each run of equal prefixes. O(n) for short terms.
 */
static int sort_terms(sort_key *keys, size_t n) {
    sort_key *tmp = malloc((n + 1) * sizeof *tmp);
    if (!tmp) return TW_ERR_NOMEM;
    sort_key *from = keys, *to = tmp;
    for (unsigned shift = 0; shift < 64; shift += 8) {
        size_t count[257] = {0};
        for (size_t i = 0; i < n; i++) count[((from[i].key_prefix >> shift) & 0xFF) + 1]++;
        int one_bucket = 0;
        for (unsigned b = 1; b <= 256; b++) one_bucket |= count[b] == n;
        if (one_bucket) continue;
        for (unsigned b = 1; b <= 256; b++) count[b] += count[b - 1];
        for (size_t i = 0; i < n; i++) to[count[(from[i].key_prefix >> shift) & 0xFF]++] = from[i];
        sort_key *swap = from;
        from = to;
        to = swap;
    }
    if (from != keys) memcpy(keys, from, n * sizeof *keys);
    free(tmp);
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && keys[j].key_prefix == keys[i].key_prefix) j++;
        if (j - i > 1) qsort(keys + i, j - i, sizeof *keys, compare_keys);
        i = j;
    }
    return TW_OK;
}

/* Grows *array (of size item) to hold at least need items; cap doubles. */
static int reserve(void **array, size_t *cap, size_t need, size_t item) {
    if (need <= *cap) return TW_OK;
    size_t grown = *cap ? *cap : 1024;
    while (grown < need) {
        if (grown > SIZE_MAX / 2 / item) return TW_ERR_NOMEM;
        grown *= 2;
    }
    void *p = realloc(*array, grown * item);
    if (!p) return TW_ERR_NOMEM;
    *array = p;
    *cap = grown;
    return TW_OK;
}

/* Rehashes every term into a table of twice the size. */
static int table_grow(slot **table, size_t *mask, const uint8_t *text, const uint64_t *term_start,
                      const uint8_t *end) {
    size_t size = (*mask + 1) * 2;
    slot *bigger = calloc(size, sizeof *bigger);
    if (!bigger) return TW_ERR_NOMEM;
    for (size_t i = 0; i <= *mask; i++) {
        slot s = (*table)[i];
        if (!s.slot_term) continue;
        const uint8_t *p = text + term_start[s.slot_term - 1];
        size_t j = hash_bytes(s.slot_prefix, p, s.slot_len, end) & (size - 1);
        while (bigger[j].slot_term) j = (j + 1) & (size - 1);
        bigger[j] = s;
    }
    free(*table);
    *table = bigger;
    *mask = size - 1;
    return TW_OK;
}

typedef struct {
    slot *in_table;
    size_t in_mask;
    uint64_t *in_term_start; /* per term: its first occurrence in text */
    size_t in_term_cap;
    size_t in_terms;
    uint32_t *in_tok_term; /* per token: its term, first-seen numbering */
    size_t in_tok_cap;
    size_t in_tokens;
} interner;

static void interner_free(interner *in) {
    free(in->in_table);
    free(in->in_term_start);
    free(in->in_tok_term);
}

/*
 * Pass 1. The table's size is a power of two > 2 * terms, at least 64K
 * (log batches have many terms; small batches pay 512 KiB of calloc).
 */
static int intern_all(const uint8_t *text, const size_t *offsets, size_t n_docs, int whole,
                      uint32_t *lengths, interner *in) {
    size_t longest = 0;
    for (size_t d = 0; d < n_docs; d++)
        if (offsets[d + 1] - offsets[d] > longest) longest = offsets[d + 1] - offsets[d];
    size_t cap = TW_TOKENS_MAX(longest);
    size_t *starts = malloc(cap * sizeof *starts), *ends = malloc(cap * sizeof *ends);
    uint64_t *prefixes = malloc(cap * sizeof *prefixes), *hashes = malloc(cap * sizeof *hashes);
    recent *recents = calloc(RECENT_SLOTS, sizeof *recents);
    const uint8_t *text_end = text + (n_docs ? offsets[n_docs] : 0);
    int status = TW_OK;
    /* Room for the most tokens the text can hold: pages never touched cost
     * nothing, and the array never moves. */
    status = reserve((void **)&in->in_tok_term, &in->in_tok_cap,
                     TW_TOKENS_MAX(n_docs ? offsets[n_docs] : 0), sizeof *in->in_tok_term);
    if (status != TW_OK) goto done;
    in->in_mask = (1u << 16) - 1;
    in->in_table = calloc(in->in_mask + 1, sizeof *in->in_table);
    if (!starts || !ends || !prefixes || !hashes || !recents || !in->in_table) {
        status = TW_ERR_NOMEM;
        goto done;
    }
    for (size_t d = 0; d < n_docs; d++) {
        size_t n = 0, base = offsets[d];
        /* cap holds any document's tokens: TW_ERR_NOSPACE cannot happen. */
        if (whole) {
            starts[0] = 0;
            ends[0] = offsets[d + 1] - base;
            n = 1;
        } else {
            tw_tokenize(text + base, offsets[d + 1] - base, starts, ends, cap, &n);
        }
        if ((uint64_t)n > UINT32_MAX) {
            status = TW_ERR_OVERFLOW;
            goto done;
        }
        lengths[d] = (uint32_t)n;
        status = reserve((void **)&in->in_tok_term, &in->in_tok_cap, in->in_tokens + n,
                         sizeof *in->in_tok_term);
        if (status != TW_OK) goto done;
        /* The table costs a cache miss per probe (and one more on the text
         * for long terms): hash the document's tokens first and prefetch
         * their slots, so the misses overlap. A direct-mapped cache of
         * recent tokens, which stays in L2, answers most tokens of log
         * lines (they repeat most of theirs) without the table. */
        for (size_t i = 0; i < n; i++) {
            const uint8_t *p = text + base + starts[i];
            size_t length = ends[i] - starts[i];
            prefixes[i] = word_prefix(p, length, text_end);
            hashes[i] = hash_bytes(prefixes[i], p, length, text_end);
            __builtin_prefetch(&in->in_table[hashes[i] & in->in_mask]);
        }
        for (size_t i = 0; i < n; i++) {
            const uint8_t *p = text + base + starts[i];
            size_t length = ends[i] - starts[i];
            uint64_t prefix = prefixes[i], hash = hashes[i];
            recent *r = &recents[(hash >> 40) & (RECENT_SLOTS - 1)];
            uint32_t term;
            if (r->recent_term && r->recent_prefix == prefix && r->recent_len == length &&
                (length <= 8 || same_bytes(r->recent_bytes + 8, p + 8, length - 8))) {
                in->in_tok_term[in->in_tokens++] = r->recent_term - 1;
                continue;
            }
            size_t j = hash & in->in_mask;
            for (;;) {
                slot s = in->in_table[j];
                if (!s.slot_term) {
                    if (in->in_terms >= UINT32_MAX - 1) {
                        status = TW_ERR_OVERFLOW;
                        goto done;
                    }
                    status = reserve((void **)&in->in_term_start, &in->in_term_cap,
                                     in->in_terms + 1, sizeof *in->in_term_start);
                    if (status != TW_OK) goto done;
                    term = (uint32_t)in->in_terms++;
                    in->in_term_start[term] = base + starts[i];
                    in->in_table[j] = (slot){prefix, (uint32_t)length, term + 1};
                    if (in->in_terms * 2 > in->in_mask) {
                        status = table_grow(&in->in_table, &in->in_mask, text,
                                            in->in_term_start, text_end);
                        if (status != TW_OK) goto done;
                    }
                    break;
                }
                if (s.slot_prefix == prefix && s.slot_len == length &&
                    (length <= 8 || same_bytes(text + in->in_term_start[s.slot_term - 1] + 8,
                                               p + 8, length - 8))) {
                    term = s.slot_term - 1;
                    break;
                }
                j = (j + 1) & in->in_mask;
            }
            r->recent_prefix = prefix;
            r->recent_bytes = p;
            r->recent_len = (uint32_t)length;
            r->recent_term = term + 1;
            in->in_tok_term[in->in_tokens++] = term;
        }
    }
done:
    free(starts);
    free(ends);
    free(prefixes);
    free(hashes);
    free(recents);
    return status;
}

void tw_inverted_free(tw_inverted *inv) {
    free(inv->inv_term_bytes);
    free(inv->inv_term_offsets);
    free(inv->inv_entry_starts);
    free(inv->inv_position_starts);
    free(inv->inv_entry_rows);
    free(inv->inv_tfs);
    free(inv->inv_positions);
    free(inv->inv_lengths);
    memset(inv, 0, sizeof *inv);
}

static int invert(const uint8_t *text, size_t len, const size_t *offsets, size_t n_docs,
                  int whole, tw_inverted *out) {
    memset(out, 0, sizeof *out);
    if ((uint64_t)n_docs > (uint64_t)UINT32_MAX + 1) return TW_ERR_INVALID;
    for (size_t d = 0; d < n_docs; d++)
        if (offsets[d] > offsets[d + 1]) return TW_ERR_INVALID;
    if (n_docs > 0 && offsets[n_docs] > len) return TW_ERR_INVALID;
    interner in;
    memset(&in, 0, sizeof in);
    sort_key *keys = NULL;
    uint32_t *rank = NULL, *slot_docs = NULL;
    uint64_t *cursor = NULL;
    out->inv_docs = n_docs;
    out->inv_lengths = malloc((n_docs + 1) * sizeof *out->inv_lengths);
    int status = out->inv_lengths ? TW_OK : TW_ERR_NOMEM;
    if (status == TW_OK) status = intern_all(text, offsets, n_docs, whole, out->inv_lengths, &in);
    if (status != TW_OK) goto done;
    size_t m = in.in_terms, n = in.in_tokens;
    out->inv_terms = m;
    out->inv_tokens = n;

    /* The dictionary: terms sorted by bytes, rank[first-seen] = sorted index. */
    keys = malloc((m + 1) * sizeof *keys);
    rank = malloc((m + 1) * sizeof *rank);
    out->inv_term_offsets = malloc((m + 1) * sizeof *out->inv_term_offsets);
    size_t term_bytes = 0;
    if (!keys || !rank || !out->inv_term_offsets) {
        status = TW_ERR_NOMEM;
        goto done;
    }
    /* Every term has one slot, which knows its length and first bytes. */
    for (size_t j = 0, k = 0; j <= in.in_mask; j++) {
        slot s = in.in_table[j];
        if (!s.slot_term) continue;
        uint32_t t = s.slot_term - 1;
        /* Big-endian, so that comparing prefixes compares the bytes. */
        uint64_t prefix = 0;
        for (unsigned b = 0; b < 8; b++) prefix = prefix << 8 | ((s.slot_prefix >> (8 * b)) & 0xFF);
        keys[k++] = (sort_key){prefix, text + in.in_term_start[t], s.slot_len, t};
        term_bytes += s.slot_len;
    }
    status = sort_terms(keys, m);
    if (status != TW_OK) goto done;
    out->inv_term_bytes = malloc(term_bytes + 1);
    if (!out->inv_term_bytes) {
        status = TW_ERR_NOMEM;
        goto done;
    }
    out->inv_term_offsets[0] = 0;
    for (size_t r = 0; r < m; r++) {
        uint64_t at = out->inv_term_offsets[r];
        memcpy(out->inv_term_bytes + at, keys[r].key_bytes, keys[r].key_len);
        out->inv_term_offsets[r + 1] = at + keys[r].key_len;
        rank[keys[r].key_term] = (uint32_t)r;
    }

    /* Counting sort of the tokens by sorted term. */
    out->inv_position_starts = calloc(m + 1, sizeof *out->inv_position_starts);
    cursor = malloc((m + 1) * sizeof *cursor);
    out->inv_positions = malloc((n + 1) * sizeof *out->inv_positions);
    slot_docs = malloc((n + 1) * sizeof *slot_docs);
    if (!out->inv_position_starts || !cursor || !out->inv_positions || !slot_docs) {
        status = TW_ERR_NOMEM;
        goto done;
    }
    for (size_t i = 0; i < n; i++) out->inv_position_starts[rank[in.in_tok_term[i]] + 1]++;
    for (size_t r = 0; r < m; r++) {
        out->inv_position_starts[r + 1] += out->inv_position_starts[r];
        cursor[r] = out->inv_position_starts[r];
    }
    size_t i = 0;
    for (size_t d = 0; d < n_docs; d++) {
        for (uint32_t p = 0; p < out->inv_lengths[d]; p++, i++) {
            uint64_t at = cursor[rank[in.in_tok_term[i]]]++;
            out->inv_positions[at] = p;
            slot_docs[at] = (uint32_t)d;
        }
    }

    /* Entries: the runs of one document within each term's slice. */
    size_t entries = 0;
    for (size_t r = 0; r < m; r++)
        for (uint64_t s = out->inv_position_starts[r]; s < out->inv_position_starts[r + 1]; s++)
            entries += s == out->inv_position_starts[r] || slot_docs[s] != slot_docs[s - 1];
    out->inv_entries = entries;
    out->inv_entry_starts = malloc((m + 1) * sizeof *out->inv_entry_starts);
    out->inv_entry_rows = malloc((entries + 1) * sizeof *out->inv_entry_rows);
    out->inv_tfs = malloc((entries + 1) * sizeof *out->inv_tfs);
    if (!out->inv_entry_starts || !out->inv_entry_rows || !out->inv_tfs) {
        status = TW_ERR_NOMEM;
        goto done;
    }
    size_t e = 0;
    for (size_t r = 0; r < m; r++) {
        out->inv_entry_starts[r] = e;
        for (uint64_t s = out->inv_position_starts[r]; s < out->inv_position_starts[r + 1]; s++) {
            if (s == out->inv_position_starts[r] || slot_docs[s] != slot_docs[s - 1]) {
                out->inv_entry_rows[e] = slot_docs[s];
                out->inv_tfs[e++] = 1;
            } else {
                out->inv_tfs[e - 1]++;
            }
        }
    }
    out->inv_entry_starts[m] = e;
done:
    interner_free(&in);
    free(keys);
    free(rank);
    free(cursor);
    free(slot_docs);
    return status;
}

int tw_invert(const uint8_t *text, size_t len, const size_t *offsets, size_t n_docs,
              tw_inverted *out) {
    return invert(text, len, offsets, n_docs, 0, out);
}

int tw_invert_whole(const uint8_t *text, size_t len, const size_t *offsets, size_t n_docs,
                    tw_inverted *out) {
    return invert(text, len, offsets, n_docs, 1, out);
}
