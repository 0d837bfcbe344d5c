/*
 * postings.c — posting-list set operations and the block encoding.
 *
 * Set operations. A merge of two lists of similar size is branch-free: each
 * step writes the smaller head (or the common one) and advances one or both
 * lists by comparison results, so sorted data of any shape runs at the same
 * speed. When one list is TW_POSTINGS_GALLOP_RATIO times longer, each id of
 * the short list is found in the long one by galloping: probe 1, 2, 4, ...
 * places ahead of the last match, then binary search the last doubling.
 * The cost is then O(small * log(gap)), which is what makes a rare term
 * ANDed with a frequent one cheap.
 *
 * Encoding (the byte layout is in postings.h). Ids go in blocks of 128: the
 * first id of each block sits in the skip table next to the block's end
 * offset, so a reader binary searches the skip table and decodes one block
 * (contains), or walks a sorted query through the table decoding only the
 * blocks it lands in (view intersect). Within a block the gaps minus one
 * are bit-packed at the block's own width, so a dense stretch costs a
 * single width byte and one outlier widens only its own block.
 *
 * What must stay true: every byte read while decoding is inside the
 * caller's buffer, whatever the bytes say. The header and skip table are
 * checked before any block is located (view_open); a block's size is
 * checked against its width and count before it is unpacked; everything a
 * decoder accepts is exactly what the encoder writes (canonical widths,
 * zero padding, no trailing bytes), and the checksum covers the rest.
 */
#include "postings/postings.h"

#include <stdlib.h>
#include <string.h>

#include "common/byteorder.h"
#include "common/varint.h"

#define BLOCK TW_POSTINGS_BLOCK
#define FORMAT_OFFSET 4
#define COUNT_OFFSET 5
/* Packed bytes of a block: 127 gaps at 32 bits. */
#define BLOCK_PAYLOAD_MAX ((BLOCK - 1) * 32 / 8)

/* ---------------------------------------------------------------- set operations */

/* The first index p in [lo, n) with l[p] >= x, or n. */
static size_t gallop(const uint32_t *l, size_t lo, size_t n, uint32_t x) {
    if (lo >= n || l[lo] >= x) return lo;
    size_t below = lo; /* l[below] < x */
    size_t step = 1;
    size_t hi;
    for (;;) {
        if (step >= n - lo) {
            hi = n;
            break;
        }
        if (l[lo + step] >= x) {
            hi = lo + step;
            break;
        }
        below = lo + step;
        step <<= 1;
    }
    size_t a = below + 1;
    while (a < hi) {
        size_t mid = a + (hi - a) / 2;
        if (l[mid] < x)
            a = mid + 1;
        else
            hi = mid;
    }
    return a;
}

/* small against large: each id of the small list galloped in the large one. */
static size_t intersect_gallop(const uint32_t *small, size_t ns, const uint32_t *large, size_t nl,
                               uint32_t *out) {
    size_t lo = 0, k = 0;
    for (size_t i = 0; i < ns; i++) {
        uint32_t x = small[i];
        lo = gallop(large, lo, nl, x);
        if (lo == nl) break;
        if (large[lo] == x) {
            out[k++] = x;
            lo++;
        }
    }
    return k;
}

static size_t intersect_merge(const uint32_t *a, size_t na, const uint32_t *b, size_t nb,
                              uint32_t *out) {
    size_t i = 0, j = 0, k = 0;
    /* out[k] is always written; it is kept only on a match. k <= i keeps
     * this safe when out is a. */
    while (i < na && j < nb) {
        uint32_t x = a[i], y = b[j];
        out[k] = x;
        k += x == y;
        i += x <= y;
        j += y <= x;
    }
    return k;
}

static int gallop_worth_it(size_t small, size_t large) {
    return small == 0 || large / small >= TW_POSTINGS_GALLOP_RATIO;
}

int tw_postings_intersect(const uint32_t *a, size_t na, const uint32_t *b, size_t nb,
                          uint32_t *out, size_t out_cap, size_t *n_out) {
    *n_out = 0;
    if (out_cap < (na < nb ? na : nb)) return TW_ERR_NOSPACE;
    if (na <= nb && gallop_worth_it(na, nb))
        *n_out = intersect_gallop(a, na, b, nb, out);
    else if (nb < na && gallop_worth_it(nb, na))
        *n_out = intersect_gallop(b, nb, a, na, out);
    else
        *n_out = intersect_merge(a, na, b, nb, out);
    return TW_OK;
}

int tw_postings_union(const uint32_t *a, size_t na, const uint32_t *b, size_t nb, uint32_t *out,
                      size_t out_cap, size_t *n_out) {
    *n_out = 0;
    if (na > SIZE_MAX - nb || out_cap < na + nb) return TW_ERR_NOSPACE;
    size_t i = 0, j = 0, k = 0;
    while (i < na && j < nb) {
        uint32_t x = a[i], y = b[j];
        out[k++] = x < y ? x : y;
        i += x <= y;
        j += y <= x;
    }
    if (i < na) memcpy(out + k, a + i, (na - i) * sizeof *a);
    k += na - i;
    if (j < nb) memcpy(out + k, b + j, (nb - j) * sizeof *b);
    k += nb - j;
    *n_out = k;
    return TW_OK;
}

int tw_postings_difference(const uint32_t *a, size_t na, const uint32_t *b, size_t nb,
                           uint32_t *out, size_t out_cap, size_t *n_out) {
    *n_out = 0;
    if (out_cap < na) return TW_ERR_NOSPACE;
    size_t i = 0, j = 0, k = 0;
    if (na > 0 && nb / na >= TW_POSTINGS_GALLOP_RATIO) {
        /* Few ids to keep or drop: look each one up in b. */
        for (; i < na; i++) {
            uint32_t x = a[i];
            j = gallop(b, j, nb, x);
            if (j == nb) break;
            if (b[j] == x)
                j++;
            else
                out[k++] = x;
        }
    } else if (nb > 0 && na / nb >= TW_POSTINGS_GALLOP_RATIO) {
        /* Few ids to drop: copy the runs of a between them. */
        for (; j < nb && i < na; j++) {
            size_t p = gallop(a, i, na, b[j]);
            memmove(out + k, a + i, (p - i) * sizeof *a);
            k += p - i;
            i = p;
            if (i < na && a[i] == b[j]) i++;
        }
    } else {
        while (i < na && j < nb) {
            uint32_t x = a[i], y = b[j];
            out[k] = x;
            k += x < y;
            i += x <= y;
            j += y <= x;
        }
    }
    if (i < na) memmove(out + k, a + i, (na - i) * sizeof *a);
    *n_out = k + (na - i);
    return TW_OK;
}

typedef struct {
    const uint32_t *ml_ids;
    size_t ml_len;
} many_list;

static int by_length(const void *x, const void *y) {
    size_t lx = ((const many_list *)x)->ml_len, ly = ((const many_list *)y)->ml_len;
    return (lx > ly) - (lx < ly);
}

int tw_postings_intersect_many(const uint32_t *const *lists, const size_t *lens, size_t k,
                               uint32_t *out, size_t out_cap, size_t *n_out) {
    *n_out = 0;
    if (k == 0) return TW_OK;
    size_t smallest = 0;
    for (size_t i = 1; i < k; i++)
        if (lens[i] < lens[smallest]) smallest = i;
    if (out_cap < lens[smallest]) return TW_ERR_NOSPACE;
    if (k == 1) {
        if (lens[0]) memcpy(out, lists[0], lens[0] * sizeof *out);
        *n_out = lens[0];
        return TW_OK;
    }
    many_list *order = malloc(k * sizeof *order);
    if (!order) return TW_ERR_NOMEM;
    for (size_t i = 0; i < k; i++) {
        order[i].ml_ids = lists[i];
        order[i].ml_len = lens[i];
    }
    qsort(order, k, sizeof *order, by_length);
    size_t n;
    int status = tw_postings_intersect(order[0].ml_ids, order[0].ml_len, order[1].ml_ids,
                                       order[1].ml_len, out, out_cap, &n);
    for (size_t i = 2; i < k && status == TW_OK && n > 0; i++)
        status = tw_postings_intersect(out, n, order[i].ml_ids, order[i].ml_len, out, out_cap, &n);
    free(order);
    if (status == TW_OK) *n_out = n;
    return status;
}

typedef struct {
    uint32_t hh_id; /* the list's current head */
    size_t hh_list;
    size_t hh_pos;
} heap_head;

static void sift_down(heap_head *heap, size_t n, size_t at) {
    heap_head moving = heap[at];
    for (;;) {
        size_t child = 2 * at + 1;
        if (child >= n) break;
        if (child + 1 < n && heap[child + 1].hh_id < heap[child].hh_id) child++;
        if (heap[child].hh_id >= moving.hh_id) break;
        heap[at] = heap[child];
        at = child;
    }
    heap[at] = moving;
}

int tw_postings_union_many(const uint32_t *const *lists, const size_t *lens, size_t k,
                           uint32_t *out, size_t out_cap, size_t *n_out) {
    *n_out = 0;
    size_t total = 0;
    for (size_t i = 0; i < k; i++) {
        if (lens[i] > SIZE_MAX - total) return TW_ERR_INVALID;
        total += lens[i];
    }
    if (out_cap < total) return TW_ERR_NOSPACE;
    if (k == 0) return TW_OK;
    if (k == 1) {
        if (lens[0]) memcpy(out, lists[0], lens[0] * sizeof *out);
        *n_out = lens[0];
        return TW_OK;
    }
    if (k == 2) return tw_postings_union(lists[0], lens[0], lists[1], lens[1], out, out_cap, n_out);
    heap_head *heap = malloc(k * sizeof *heap);
    if (!heap) return TW_ERR_NOMEM;
    size_t live = 0;
    for (size_t i = 0; i < k; i++) {
        if (lens[i] == 0) continue;
        heap[live].hh_id = lists[i][0];
        heap[live].hh_list = i;
        heap[live].hh_pos = 0;
        live++;
    }
    for (size_t i = live / 2; i-- > 0;) sift_down(heap, live, i);
    size_t n = 0;
    while (live > 0) {
        heap_head *top = &heap[0];
        if (n == 0 || out[n - 1] != top->hh_id) out[n++] = top->hh_id;
        if (++top->hh_pos < lens[top->hh_list])
            top->hh_id = lists[top->hh_list][top->hh_pos];
        else
            heap[0] = heap[--live];
        sift_down(heap, live, 0);
    }
    free(heap);
    *n_out = n;
    return TW_OK;
}

/* ---------------------------------------------------------------- encoding */

uint32_t tw_postings_checksum(const uint8_t *data, size_t len) {
    /* Each step is a bijection of the state for a fixed word, and two
     * words give two states from one state, so changing any single 8-byte
     * word changes the final 64-bit state; the 32 bits kept then miss such
     * damage with probability 2^-32. The length is mixed in first. */
    const uint64_t mul = 0x9fb21c651e98df25ULL;
    uint64_t h = 0x6a09e667f3bcc909ULL ^ (uint64_t)len;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        h = (h ^ tw_load_le64(data + i)) * mul;
        h ^= h >> 31;
    }
    if (i < len) {
        uint64_t tail = 0;
        for (size_t j = 0; i + j < len; j++) tail |= (uint64_t)data[i + j] << (8 * j);
        h = (h ^ tail) * mul;
        h ^= h >> 31;
    }
    h *= mul;
    h ^= h >> 32;
    return (uint32_t)h;
}

size_t tw_postings_encoded_bound(uint64_t n) {
    if (n > ((uint64_t)1 << 32)) return 0;
    uint64_t blocks = (n + BLOCK - 1) / BLOCK;
    uint64_t per_block = TW_POSTINGS_SKIP_ENTRY + 1 + BLOCK_PAYLOAD_MAX;
    if (blocks > (SIZE_MAX - TW_POSTINGS_HEADER_MAX) / per_block) return 0;
    return (size_t)(TW_POSTINGS_HEADER_MAX + blocks * per_block);
}

static unsigned bit_width(uint32_t v) {
    return v ? 32u - (unsigned)__builtin_clz(v) : 0u;
}

int tw_postings_encode(const uint32_t *ids, size_t n, uint8_t *out, size_t cap, size_t *written) {
    *written = 0;
    if ((uint64_t)n > ((uint64_t)1 << 32)) return TW_ERR_INVALID;
    size_t blocks = (n + BLOCK - 1) / BLOCK;
    size_t pos = COUNT_OFFSET + tw_varint_size(n);
    if (cap < pos || (cap - pos) / TW_POSTINGS_SKIP_ENTRY < blocks) return TW_ERR_NOSPACE;
    out[FORMAT_OFFSET] = TW_POSTINGS_FORMAT;
    tw_varint_put(out + COUNT_OFFSET, n);
    uint8_t *skip = out + pos;
    uint8_t *data = skip + blocks * TW_POSTINGS_SKIP_ENTRY;
    size_t data_cap = cap - pos - blocks * TW_POSTINGS_SKIP_ENTRY;
    size_t data_len = 0;
    for (size_t b = 0; b < blocks; b++) {
        const uint32_t *block = ids + b * BLOCK;
        size_t count = n - b * BLOCK < BLOCK ? n - b * BLOCK : BLOCK;
        if (b > 0 && block[0] <= block[-1]) {
            *written = b * BLOCK;
            return TW_ERR_INVALID;
        }
        uint32_t any = 0;
        for (size_t i = 1; i < count; i++) {
            if (block[i] <= block[i - 1]) {
                *written = b * BLOCK + i;
                return TW_ERR_INVALID;
            }
            any |= block[i] - block[i - 1] - 1;
        }
        unsigned width = bit_width(any);
        size_t size = 1 + ((count - 1) * width + 7) / 8;
        if (data_cap - data_len < size) return TW_ERR_NOSPACE;
        /* Offsets are u32: a list whose blocks pass 4 GiB does not fit the format. */
        if (data_len + size > UINT32_MAX) return TW_ERR_OVERFLOW;
        uint8_t *p = data + data_len;
        *p++ = (uint8_t)width;
        uint64_t acc = 0;
        unsigned bits = 0;
        for (size_t i = 1; i < count; i++) {
            acc |= (uint64_t)(block[i] - block[i - 1] - 1) << bits;
            bits += width;
            while (bits >= 8) {
                *p++ = (uint8_t)acc;
                acc >>= 8;
                bits -= 8;
            }
        }
        if (bits) *p++ = (uint8_t)acc;
        data_len += size;
        tw_store_le32(skip + b * TW_POSTINGS_SKIP_ENTRY, block[0]);
        tw_store_le32(skip + b * TW_POSTINGS_SKIP_ENTRY + 4, (uint32_t)data_len);
    }
    size_t total = pos + blocks * TW_POSTINGS_SKIP_ENTRY + data_len;
    tw_store_le32(out, tw_postings_checksum(out + 4, total - 4));
    *written = total;
    return TW_OK;
}

/*
 * Every list back to back: one call for a whole term dictionary, so the
 * caller pays no per-list call overhead. Lists are independent encodings,
 * exactly what tw_postings_encode writes for each.
 */
size_t tw_postings_encoded_bound_many(const uint64_t *starts, size_t k) {
    size_t total = 0;
    for (size_t i = 0; i < k; i++) {
        if (starts[i + 1] < starts[i]) return 0;
        size_t one = tw_postings_encoded_bound(starts[i + 1] - starts[i]);
        if (one == 0 || total > SIZE_MAX - one) return 0;
        total += one;
    }
    return total;
}

int tw_postings_encode_many(const uint32_t *ids, const uint64_t *starts, size_t k, uint8_t *out,
                            size_t cap, uint64_t *offsets, size_t *err_list, size_t *err_index) {
    size_t used = 0;
    *err_list = 0;
    *err_index = 0;
    offsets[0] = 0;
    for (size_t i = 0; i < k; i++) {
        size_t written = 0;
        if (starts[i + 1] < starts[i]) {
            *err_list = i;
            return TW_ERR_INVALID;
        }
        int status = tw_postings_encode(ids + starts[i], (size_t)(starts[i + 1] - starts[i]),
                                        out + used, cap - used, &written);
        if (status != TW_OK) {
            *err_list = i;
            *err_index = status == TW_ERR_INVALID ? written : 0;
            return status;
        }
        used += written;
        offsets[i + 1] = used;
    }
    return TW_OK;
}

/* ---------------------------------------------------------------- reading */

static int fail(int status, size_t offset, size_t *err_offset) {
    *err_offset = offset;
    return status;
}

/*
 * Header and the location of the skip table and blocks; checks that the
 * skip table fits and that the last block ends the buffer (O(1)).
 */
static int parse_header(const uint8_t *in, size_t len, tw_postings_view *v, size_t *err_offset) {
    memset(v, 0, sizeof *v);
    if (len < FORMAT_OFFSET) return fail(TW_ERR_TRUNCATED, 0, err_offset);
    if (len < COUNT_OFFSET) return fail(TW_ERR_TRUNCATED, FORMAT_OFFSET, err_offset);
    if (in[FORMAT_OFFSET] != TW_POSTINGS_FORMAT)
        return fail(TW_ERR_CORRUPT, FORMAT_OFFSET, err_offset);
    uint64_t n;
    size_t used;
    int status = tw_varint_get(in + COUNT_OFFSET, len - COUNT_OFFSET, &n, &used);
    if (status == TW_ERR_TRUNCATED) return fail(TW_ERR_TRUNCATED, COUNT_OFFSET, err_offset);
    if (status != TW_OK || n > ((uint64_t)1 << 32) || used != tw_varint_size(n))
        return fail(TW_ERR_CORRUPT, COUNT_OFFSET, err_offset);
    size_t pos = COUNT_OFFSET + used;
    uint64_t blocks = (n + BLOCK - 1) / BLOCK;
    size_t room = len - pos;
    if (room / TW_POSTINGS_SKIP_ENTRY < blocks)
        return fail(TW_ERR_TRUNCATED, pos + room - room % TW_POSTINGS_SKIP_ENTRY, err_offset);
    size_t data = pos + (size_t)blocks * TW_POSTINGS_SKIP_ENTRY;
    size_t data_len = len - data;
    if (blocks == 0) {
        if (data_len != 0) return fail(TW_ERR_CORRUPT, data, err_offset);
    } else {
        size_t last = data - TW_POSTINGS_SKIP_ENTRY;
        uint32_t end = tw_load_le32(in + last + 4);
        if (end > data_len) {
            /* Cut inside the blocks: name the last block, or the end if that is damaged too. */
            size_t start = blocks > 1 ? tw_load_le32(in + last - 4) : 0;
            return fail(TW_ERR_TRUNCATED, start < data_len ? data + start : len, err_offset);
        }
        if (end < data_len) return fail(TW_ERR_CORRUPT, data + end, err_offset);
        /* Every block holds its width byte. */
        if (data_len < blocks) return fail(TW_ERR_CORRUPT, last + 4, err_offset);
    }
    v->pv_skip = in + pos;
    v->pv_data = in + data;
    v->pv_data_len = data_len;
    v->pv_count = n;
    v->pv_blocks = (size_t)blocks;
    v->pv_base = data;
    return TW_OK;
}

int tw_postings_decoded_count(const uint8_t *in, size_t len, size_t *n, size_t *err_offset) {
    tw_postings_view v;
    *n = 0;
    *err_offset = 0;
    int status = parse_header(in, len, &v, err_offset);
    if (status == TW_OK) *n = (size_t)v.pv_count;
    return status;
}

static size_t skip_offset(const tw_postings_view *v, size_t b) {
    return v->pv_base - v->pv_blocks * TW_POSTINGS_SKIP_ENTRY + b * TW_POSTINGS_SKIP_ENTRY;
}

static uint32_t skip_first(const tw_postings_view *v, size_t b) {
    return tw_load_le32(v->pv_skip + b * TW_POSTINGS_SKIP_ENTRY);
}

static size_t block_start(const tw_postings_view *v, size_t b) {
    return b ? tw_load_le32(v->pv_skip + (b - 1) * TW_POSTINGS_SKIP_ENTRY + 4) : 0;
}

int tw_postings_view_open(tw_postings_view *view, const uint8_t *in, size_t len, int verify,
                          size_t *err_offset) {
    *err_offset = 0;
    int status = parse_header(in, len, view, err_offset);
    if (status != TW_OK) return status;
    uint64_t prev_first = 0;
    size_t prev_end = 0;
    for (size_t b = 0; b < view->pv_blocks; b++) {
        uint64_t first = skip_first(view, b);
        size_t end = tw_load_le32(view->pv_skip + b * TW_POSTINGS_SKIP_ENTRY + 4);
        /* A full block spans at least 128 ids, so the next one starts that much later. */
        if (b > 0 && first < prev_first + BLOCK)
            return fail(TW_ERR_CORRUPT, skip_offset(view, b), err_offset);
        if (end <= prev_end || end > view->pv_data_len)
            return fail(TW_ERR_CORRUPT, skip_offset(view, b) + 4, err_offset);
        prev_first = first;
        prev_end = end;
    }
    if (view->pv_blocks > 0) {
        uint64_t last_count = view->pv_count - (uint64_t)(view->pv_blocks - 1) * BLOCK;
        if (prev_first + last_count - 1 > UINT32_MAX)
            return fail(TW_ERR_CORRUPT, skip_offset(view, view->pv_blocks - 1), err_offset);
    }
    if (verify && tw_postings_checksum(in + 4, len - 4) != tw_load_le32(in))
        return fail(TW_ERR_CORRUPT, 0, err_offset);
    return TW_OK;
}

/* Decodes block b (checked) into out[0..128); *count gets its id count. */
static int block_decode(const tw_postings_view *v, size_t b, uint32_t *out, size_t *count,
                        size_t *err_offset) {
    size_t start = block_start(v, b);
    size_t end = tw_load_le32(v->pv_skip + b * TW_POSTINGS_SKIP_ENTRY + 4);
    size_t c = b + 1 < v->pv_blocks ? BLOCK : (size_t)(v->pv_count - (uint64_t)b * BLOCK);
    const uint8_t *p = v->pv_data + start;
    unsigned width = p[0];
    if (width > 32 || end - start != 1 + ((c - 1) * width + 7) / 8)
        return fail(TW_ERR_CORRUPT, v->pv_base + start, err_offset);
    uint32_t mask = width == 32 ? UINT32_MAX : ((uint32_t)1 << width) - 1;
    uint64_t acc = 0, id = skip_first(v, b);
    unsigned bits = 0;
    uint32_t any = 0;
    size_t pos = 1;
    out[0] = (uint32_t)id;
    for (size_t i = 1; i < c; i++) {
        while (bits < width) {
            acc |= (uint64_t)p[pos++] << bits;
            bits += 8;
        }
        uint32_t gap = (uint32_t)acc & mask;
        acc >>= width;
        bits -= width;
        any |= gap;
        id += (uint64_t)gap + 1;
        out[i] = (uint32_t)id;
    }
    if (acc != 0) return fail(TW_ERR_CORRUPT, v->pv_base + end - 1, err_offset);
    if (bit_width(any) != width) return fail(TW_ERR_CORRUPT, v->pv_base + start, err_offset);
    uint64_t limit = b + 1 < v->pv_blocks ? skip_first(v, b + 1) : (uint64_t)UINT32_MAX + 1;
    if (id >= limit) return fail(TW_ERR_CORRUPT, v->pv_base + start, err_offset);
    *count = c;
    return TW_OK;
}

int tw_postings_decode(const uint8_t *in, size_t len, uint32_t *out, size_t cap, size_t *n_out,
                       size_t *err_offset) {
    tw_postings_view v;
    *n_out = 0;
    int status = tw_postings_view_open(&v, in, len, 0, err_offset);
    if (status != TW_OK) return status;
    if (cap < v.pv_count) return TW_ERR_NOSPACE;
    size_t n = 0, count;
    for (size_t b = 0; b < v.pv_blocks; b++) {
        status = block_decode(&v, b, out + n, &count, err_offset);
        if (status != TW_OK) return status;
        n += count;
    }
    if (tw_postings_checksum(in + 4, len - 4) != tw_load_le32(in))
        return fail(TW_ERR_CORRUPT, 0, err_offset);
    *n_out = n;
    return TW_OK;
}

/* The last block whose first id is <= id, searching [lo, blocks); lo - 1 if none. */
static size_t find_block(const tw_postings_view *v, size_t lo, uint32_t id) {
    size_t hi = v->pv_blocks;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (skip_first(v, mid) <= id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo - 1;
}

int tw_postings_view_contains(const tw_postings_view *view, uint32_t id, int *found,
                              size_t *err_offset) {
    uint32_t ids[BLOCK];
    size_t count;
    *found = 0;
    if (view->pv_blocks == 0 || id < skip_first(view, 0)) return TW_OK;
    size_t b = find_block(view, 0, id);
    int status = block_decode(view, b, ids, &count, err_offset);
    if (status != TW_OK) return status;
    size_t at = gallop(ids, 0, count, id);
    *found = at < count && ids[at] == id;
    return TW_OK;
}

int tw_postings_view_intersect(const tw_postings_view *view, const uint32_t *ids, size_t n,
                               uint32_t *out, size_t out_cap, size_t *n_out,
                               size_t *err_offset) {
    uint32_t block[BLOCK];
    size_t count = 0, k = 0, i = 0;
    *n_out = 0;
    if (out_cap < n) return TW_ERR_NOSPACE;
    if (view->pv_blocks == 0) return TW_OK;
    size_t loaded = SIZE_MAX;
    size_t b = 0;
    while (i < n) {
        uint32_t x = ids[i];
        if (x < skip_first(view, 0)) {
            i++;
            continue;
        }
        /* The block that may hold x; queries are sorted, so never go back. */
        b = find_block(view, b, x);
        if (b != loaded) {
            int status = block_decode(view, b, block, &count, err_offset);
            if (status != TW_OK) return status;
            loaded = b;
        }
        /* Every query id below the next block's first id belongs here. */
        uint64_t limit =
            b + 1 < view->pv_blocks ? skip_first(view, b + 1) : (uint64_t)UINT32_MAX + 1;
        size_t end = i;
        while (end < n && ids[end] < limit) end++;
        size_t matched;
        int status = tw_postings_intersect(ids + i, end - i, block, count, out + k, out_cap - k,
                                           &matched);
        if (status != TW_OK) return status;
        k += matched;
        i = end;
    }
    *n_out = k;
    return TW_OK;
}
