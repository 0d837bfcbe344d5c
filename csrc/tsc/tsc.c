/*
 * tsc.c — the chunk codec of the time-series store (format in tsc.h).
 */
#include "tsc/tsc.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/varint.h"

#define FRAME TW_TSC_FRAME
#define EXACT_LIMIT 9007199254740992.0 /* 2^53 */
/* Exceptions per frame the encoder will consider (cost search bound). */
#define MAX_EXCEPTIONS 32

static const double P10[TW_TSC_MAX_SCALE + 1] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                                 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};

/* ---------------------------------------------------------- thread scratch */

/*
 * Each thread keeps one scratch buffer, grown on demand and freed when the
 * thread ends: a chunk of 7 200 samples needs ~350 KiB, which malloc would
 * otherwise map and the kernel zero on every call.
 */
typedef struct {
    uint8_t *buf;
    size_t cap;
} scratch_t;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static int scratch_key_ok;

static void scratch_free(void *p) {
    scratch_t *s = p;
    free(s->buf);
    free(s);
}

static void scratch_make_key(void) { scratch_key_ok = pthread_key_create(&scratch_key, scratch_free) == 0; }

/* At least `need` bytes of this thread's scratch (valid until its next call), or NULL. */
static uint8_t *thread_scratch(size_t need) {
    pthread_once(&scratch_once, scratch_make_key);
    if (!scratch_key_ok) return NULL;
    scratch_t *s = pthread_getspecific(scratch_key);
    if (s == NULL) {
        s = calloc(1, sizeof *s);
        if (s == NULL) return NULL;
        if (pthread_setspecific(scratch_key, s) != 0) {
            free(s);
            return NULL;
        }
    }
    if (s->cap < need) {
        size_t cap = need + need / 4;
        uint8_t *grown = realloc(s->buf, cap);
        if (grown == NULL) return NULL;
        s->buf = grown;
        s->cap = cap;
    }
    return s->buf;
}

/* ------------------------------------------------------------ byte output */

typedef struct {
    uint8_t *buf;
    size_t len, cap;
    int full;
} out_t;

static inline void put_u8(out_t *o, uint8_t b) {
    if (o->len < o->cap) o->buf[o->len++] = b;
    else o->full = 1;
}

static inline void put_bytes(out_t *o, const void *src, size_t n) {
    if (o->cap - o->len >= n) {
        memcpy(o->buf + o->len, src, n);
        o->len += n;
    } else {
        o->full = 1;
    }
}

static inline void put_varint(out_t *o, uint64_t v) {
    if (o->cap - o->len >= TW_VARINT_MAX_BYTES) o->len += tw_varint_put(o->buf + o->len, v);
    else {
        uint8_t tmp[TW_VARINT_MAX_BYTES];
        put_bytes(o, tmp, tw_varint_put(tmp, v));
    }
}

static inline void put_svarint(out_t *o, int64_t v) { put_varint(o, tw_zigzag_encode(v)); }

/* ------------------------------------------------------------- byte input */

typedef struct {
    const uint8_t *buf;
    size_t len, pos;
} in_t;

static inline int get_u8(in_t *in, uint8_t *b) {
    if (in->pos >= in->len) return TW_ERR_TRUNCATED;
    *b = in->buf[in->pos++];
    return TW_OK;
}

static inline int get_varint(in_t *in, uint64_t *v) {
    size_t used;
    int status = tw_varint_get(in->buf + in->pos, in->len - in->pos, v, &used);
    if (status == TW_ERR_OVERFLOW) return TW_ERR_CORRUPT;
    if (status != TW_OK) return status;
    in->pos += used;
    return TW_OK;
}

static inline int get_svarint(in_t *in, int64_t *v) {
    uint64_t u;
    int status = get_varint(in, &u);
    if (status == TW_OK) *v = tw_zigzag_decode(u);
    return status;
}

static inline uint64_t load64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static inline void or64(uint8_t *p, uint64_t v) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    uint64_t old;
    memcpy(&old, p, 8);
    old |= v;
    memcpy(p, &old, 8);
}

static inline unsigned bit_length(uint64_t v) { return v ? 64u - (unsigned)__builtin_clzll(v) : 0u; }

static inline uint64_t low_mask(unsigned w) { return w >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << w) - 1); }

/* ------------------------------------------------------- bits, LSB first */

typedef struct {
    out_t *o;
    uint64_t acc;
    unsigned bits;
} bitw_t;

static inline void bw_put(bitw_t *w, uint64_t v, unsigned nb) {
    if (nb == 0) return;
    w->acc |= v << w->bits;
    if (w->bits + nb >= 64) {
        uint8_t bytes[8];
        uint64_t a = w->acc;
        for (int i = 0; i < 8; i++) bytes[i] = (uint8_t)(a >> (8 * i));
        put_bytes(w->o, bytes, 8);
        unsigned spill = w->bits + nb - 64;
        w->acc = spill ? v >> (nb - spill) : 0;
        w->bits = spill;
    } else {
        w->bits += nb;
    }
}

static inline void bw_finish(bitw_t *w) {
    for (unsigned i = 0; i < (w->bits + 7) / 8; i++) put_u8(w->o, (uint8_t)(w->acc >> (8 * i)));
    w->acc = 0;
    w->bits = 0;
}

/* ------------------------------------------------------------------ frames */

enum { F_FOR = 0, F_PATCHED = 1, F_RICE = 2, F_SPARSE = 3, F_RICE_ZZ = 4, F_SCALED = 0x80 };
#define RICE_MAX_K 20
#define RICE_ESCAPE 32
/* A Rice stream is at most 102 bits per value; its pad leaves room for a
 * damaged stream to overrun by as much again before the one check. */
#define RICE_MAX_BYTES (FRAME * 13)
#define RICE_PAD (2 * RICE_MAX_BYTES + 32)

/* Packs len values (v - base) mod 2^w, LSB first, into out. */
static void put_packed(out_t *o, const uint64_t *f, size_t len, uint64_t base, unsigned w,
                       const uint64_t *skip, uint64_t z) {
    if (w == 0) return;
    uint8_t packed[FRAME * 8 + 16];
    size_t nbytes = (len * w + 7) / 8;
    memset(packed, 0, sizeof packed);
    uint64_t mask = low_mask(w);
    size_t bit = 0;
    for (size_t j = 0; j < len; j++) {
        if (skip && f[j] == z) continue;
        uint64_t u = (f[j] - base) & mask;
        unsigned shift = (unsigned)(bit & 7);
        or64(packed + (bit >> 3), u << shift);
        if (shift && shift + w > 64) or64(packed + (bit >> 3) + 8, u >> (64 - shift));
        bit += w;
    }
    put_bytes(o, packed, skip ? (bit + 7) / 8 : nbytes);
}

/* Reads len packed values of width w from src (which has 16 readable bytes past them). */
static void get_packed(const uint8_t *src, size_t len, unsigned w, uint64_t base, uint64_t *f) {
    uint64_t mask = low_mask(w);
    size_t bit = 0;
    if (w == 0) {
        for (size_t j = 0; j < len; j++) f[j] = base;
    } else if (w <= 56) {
        for (size_t j = 0; j < len; j++, bit += w)
            f[j] = base + ((load64(src + (bit >> 3)) >> (bit & 7)) & mask);
    } else {
        for (size_t j = 0; j < len; j++, bit += w) {
            unsigned shift = (unsigned)(bit & 7);
            uint64_t v = load64(src + (bit >> 3)) >> shift;
            if (shift) v |= load64(src + (bit >> 3) + 8) << (64 - shift);
            f[j] = base + (v & mask);
        }
    }
}

static inline size_t rice_bits(uint64_t u, unsigned k) {
    uint64_t q = u >> k;
    return q < RICE_ESCAPE ? (size_t)q + 1 + k : RICE_ESCAPE + 6 + bit_length(u);
}

/*
 * Encodes one frame in its cheapest kind. With shift > 0 the values are
 * (x - anchor) >> shift, and the header says so.
 */
static void encode_frame(out_t *o, const uint64_t *f, size_t len, unsigned shift, int64_t anchor) {
    do {
        int64_t lo = (int64_t)f[0], hi = (int64_t)f[0];
        for (size_t j = 1; j < len; j++) {
            int64_t v = (int64_t)f[j];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        uint64_t base = (uint64_t)lo;
        unsigned full = bit_length((uint64_t)hi - base);
        if (full == 0) { /* constant frame */
            put_u8(o, F_FOR);
            put_u8(o, 0);
            put_svarint(o, lo);
            continue;
        }
        /* FOR and PATCHED: histogram of bit lengths; narrower widths while few overflow. */
        uint32_t hist[65] = {0};
        uint64_t sum = 0;
        /* the SPARSE candidates for the common value: 0, the minimum, the first */
        const uint64_t head = f[0];
        size_t count_zero = 0, count_min = 0, count_first = 0;
        for (size_t j = 0; j < len; j++) {
            uint64_t u = f[j] - base;
            hist[bit_length(u)]++;
            sum += u >> 8 > ((uint64_t)1 << 48) ? ((uint64_t)1 << 56) : u; /* saturating-ish */
            count_zero += f[j] == 0;
            count_min += u == 0;
            count_first += f[j] == head;
        }
        int kind = F_FOR;
        unsigned param = full, exceptions = 0;
        size_t best = (len * full + 7) / 8 + 1;
        unsigned over = 0;
        for (unsigned b = full; b-- > 0;) {
            over += hist[b + 1];
            if (over > MAX_EXCEPTIONS) break;
            size_t cost = (len * b + 7) / 8 + 2;
            for (unsigned l = b + 1; l <= full; l++) cost += (size_t)hist[l] * (1 + (l - b + 6) / 7);
            if (cost < best) {
                best = cost;
                kind = F_PATCHED;
                param = b;
                exceptions = over;
            }
        }
        /* RICE of x - min around log2 of the mean (one-sided data: jitter), and
         * RICE_ZZ of zigzag(x - mean) (two-sided data: noisy increments). */
        unsigned rice_k = 0;
        size_t rice_len = 0;
        uint64_t rice[FRAME], zz[FRAME];
        int64_t center = 0;
        if (full <= 40) {
            uint64_t zsum = 0;
            center = (int64_t)(base + sum / len);
            for (size_t j = 0; j < len; j++) {
                rice[j] = f[j] - base;
                zz[j] = tw_zigzag_encode((int64_t)(f[j] - (uint64_t)center));
                zsum += zz[j];
            }
            for (int zigzag = 0; zigzag < 2; zigzag++) {
                const uint64_t *u = zigzag ? zz : rice;
                unsigned k0 = bit_length((zigzag ? zsum : sum) / len);
                unsigned lo_k = k0 > 0 ? k0 - 1 : 0;
                unsigned hi_k = k0 + 1 > RICE_MAX_K ? RICE_MAX_K : k0 + 1;
                for (unsigned k = lo_k; k <= hi_k; k++) {
                    size_t bits = 0;
                    for (size_t j = 0; j < len; j++) bits += rice_bits(u[j], k);
                    size_t bytes = (bits + 7) / 8;
                    size_t cost = bytes + 1 + tw_varint_size(bytes) + (zigzag ? 2 : 0);
                    if (cost < best) {
                        best = cost;
                        kind = zigzag ? F_RICE_ZZ : F_RICE;
                        param = k;
                        rice_k = k;
                        rice_len = bytes;
                    }
                }
            }
        }
        /* SPARSE: one common value z flagged in a bitmap, the rest packed. */
        uint64_t z = 0;
        size_t zcount = count_zero;
        if (count_min > zcount) {
            zcount = count_min;
            z = base;
        }
        if (count_first > zcount) {
            zcount = count_first;
            z = head;
        }
        int64_t slo = 0, shi = 0;
        unsigned sparse_w = 0;
        if (zcount >= len / 4 && zcount < len) {
            int first = 1;
            for (size_t j = 0; j < len; j++) {
                if (f[j] == z) continue;
                int64_t v = (int64_t)f[j];
                if (first || v < slo) slo = v;
                if (first || v > shi) shi = v;
                first = 0;
            }
            sparse_w = bit_length((uint64_t)shi - (uint64_t)slo);
            size_t cost = 1 + 1 + 10 + (len + 7) / 8 + ((len - zcount) * sparse_w + 7) / 8;
            if (cost < best) {
                best = cost;
                kind = F_SPARSE;
                param = sparse_w;
            }
        }
        put_u8(o, (uint8_t)(kind | (shift ? F_SCALED : 0)));
        put_u8(o, (uint8_t)param);
        if (shift) {
            put_u8(o, (uint8_t)shift);
            put_svarint(o, anchor);
        }
        if (kind == F_SPARSE) {
            put_svarint(o, (int64_t)z);
            put_svarint(o, slo);
            uint8_t bitmap[FRAME / 8] = {0};
            for (size_t j = 0; j < len; j++)
                if (f[j] != z) bitmap[j >> 3] |= (uint8_t)(1u << (j & 7));
            put_bytes(o, bitmap, (len + 7) / 8);
            put_packed(o, f, len, (uint64_t)slo, sparse_w, f, z);
            continue;
        }
        put_svarint(o, kind == F_RICE_ZZ ? center : lo);
        if (kind == F_RICE || kind == F_RICE_ZZ) {
            const uint64_t *values = kind == F_RICE_ZZ ? zz : rice;
            put_varint(o, rice_len);
            size_t before = o->len;
            bitw_t w = {o, 0, 0};
            for (size_t j = 0; j < len; j++) {
                uint64_t u = values[j], q = u >> rice_k;
                if (q < RICE_ESCAPE) {
                    bw_put(&w, low_mask((unsigned)q), (unsigned)q + 1); /* q ones, a zero */
                    bw_put(&w, u & low_mask(rice_k), rice_k);
                } else {
                    unsigned l = bit_length(u);
                    bw_put(&w, low_mask(RICE_ESCAPE), RICE_ESCAPE);
                    bw_put(&w, l - 1, 6);
                    if (l > 32) {
                        bw_put(&w, u & 0xffffffffu, 32);
                        bw_put(&w, u >> 32, l - 32);
                    } else {
                        bw_put(&w, u, l);
                    }
                }
            }
            bw_finish(&w);
            if (!o->full && o->len - before != rice_len) o->full = 2; /* cost model bug: refuse */
            continue;
        }
        if (kind == F_PATCHED) {
            put_u8(o, (uint8_t)exceptions);
            for (size_t j = 0; j < len; j++) {
                uint64_t u = f[j] - base;
                if ((u >> param) != 0) {
                    put_u8(o, (uint8_t)j);
                    put_varint(o, u >> param);
                }
            }
        }
        put_packed(o, f, len, base, param, NULL, 0);
    } while (0);
}

/*
 * Encodes m values (two's complement int64 in uint64) as FRAMES. Frames whose
 * values differ only in multiples of 2^s (byte counts in 4 KiB pages) are
 * coded as (x - min) >> s.
 */
static void encode_frames(out_t *o, const uint64_t *x, size_t m) {
    uint64_t h[FRAME];
    for (size_t start = 0; start < m; start += FRAME) {
        size_t len = m - start < FRAME ? m - start : FRAME;
        const uint64_t *f = x + start;
        int64_t lo = (int64_t)f[0];
        for (size_t j = 1; j < len; j++) lo = (int64_t)f[j] < lo ? (int64_t)f[j] : lo;
        uint64_t bits = 0;
        for (size_t j = 0; j < len; j++) bits |= f[j] - (uint64_t)lo;
        unsigned shift = bits ? (unsigned)__builtin_ctzll(bits) : 0;
        if (shift == 0) {
            encode_frame(o, f, len, 0, 0);
        } else {
            for (size_t j = 0; j < len; j++) h[j] = (f[j] - (uint64_t)lo) >> shift;
            encode_frame(o, h, len, shift, lo);
        }
    }
}

/* Decodes m FRAMES values into x (or only walks them when x is NULL). */
static int decode_frames(in_t *in, uint64_t *x, size_t m) {
    uint8_t pad[RICE_PAD > FRAME * 8 + 16 ? RICE_PAD : FRAME * 8 + 16];
    uint8_t exc_index[FRAME];
    uint64_t exc_high[FRAME];
    for (size_t start = 0; start < m; start += FRAME) {
        size_t len = m - start < FRAME ? m - start : FRAME;
        uint64_t *f = x ? x + start : NULL;
        uint8_t kind, param;
        int64_t base_s;
        int status;
        uint8_t shift = 0;
        int64_t anchor = 0;
        if ((status = get_u8(in, &kind)) != TW_OK) return status;
        if ((status = get_u8(in, &param)) != TW_OK) return status;
        if (kind & F_SCALED) {
            kind &= (uint8_t)~F_SCALED;
            if ((status = get_u8(in, &shift)) != TW_OK) return status;
            if ((status = get_svarint(in, &anchor)) != TW_OK) return status;
            if (shift == 0 || shift > 63) return TW_ERR_CORRUPT;
        }
        do {
        if (kind == F_SPARSE) {
            int64_t z_s;
            if (param > 64) return TW_ERR_CORRUPT;
            if ((status = get_svarint(in, &z_s)) != TW_OK) return status;
            if ((status = get_svarint(in, &base_s)) != TW_OK) return status;
            size_t mbytes = (len + 7) / 8;
            if (in->len - in->pos < mbytes) return TW_ERR_TRUNCATED;
            const uint8_t *bitmap = in->buf + in->pos;
            in->pos += mbytes;
            size_t nnz = 0;
            for (size_t b = 0; b < mbytes; b++) nnz += (size_t)__builtin_popcount(bitmap[b]);
            if (len & 7 && bitmap[mbytes - 1] >> (len & 7)) return TW_ERR_CORRUPT;
            size_t nbytes = (nnz * param + 7) / 8;
            if (in->len - in->pos < nbytes) return TW_ERR_TRUNCATED;
            const uint8_t *src = in->buf + in->pos;
            in->pos += nbytes;
            if (!f) continue;
            uint64_t packed[FRAME];
            memcpy(pad, src, nbytes);
            memset(pad + nbytes, 0, 16);
            get_packed(pad, nnz, param, (uint64_t)base_s, packed);
            size_t p = 0;
            for (size_t j = 0; j < len; j++) {
                if (bitmap[j >> 3] >> (j & 7) & 1) f[j] = packed[p++];
                else f[j] = (uint64_t)z_s;
            }
            continue;
        }
        if ((status = get_svarint(in, &base_s)) != TW_OK) return status;
        uint64_t base = (uint64_t)base_s;
        if (kind == F_RICE || kind == F_RICE_ZZ) {
            uint64_t nbytes;
            if (param > RICE_MAX_K) return TW_ERR_CORRUPT;
            if ((status = get_varint(in, &nbytes)) != TW_OK) return status;
            if (nbytes > RICE_MAX_BYTES) return TW_ERR_CORRUPT;
            if (in->len - in->pos < nbytes) return TW_ERR_TRUNCATED;
            const uint8_t *src = in->buf + in->pos;
            in->pos += (size_t)nbytes;
            if (!f) continue;
            memcpy(pad, src, (size_t)nbytes);
            memset(pad + nbytes, 0, RICE_PAD - (size_t)nbytes);
            uint64_t pos = 0, end = nbytes * 8, kmask = low_mask(param);
            for (size_t j = 0; j < len; j++) {
                uint64_t word = load64(pad + (pos >> 3)) >> (pos & 7);
                unsigned q = (unsigned)__builtin_ctzll(~word); /* word has >= 57 valid bits */
                if (q < RICE_ESCAPE) {
                    f[j] = ((word >> (q + 1)) & kmask) | ((uint64_t)q << param);
                    pos += q + 1 + param;
                } else {
                    pos += RICE_ESCAPE;
                    word = load64(pad + (pos >> 3)) >> (pos & 7);
                    unsigned l = (unsigned)(word & 63) + 1;
                    pos += 6;
                    uint64_t u = load64(pad + (pos >> 3)) >> (pos & 7);
                    if (l > 56 && (pos & 7)) u |= load64(pad + (pos >> 3) + 8) << (64 - (pos & 7));
                    f[j] = u & low_mask(l);
                    pos += l;
                }
            }
            /* checked once: damaged input can only run past `end` into the zeroed pad
             * (at most 102 bits per value), never out of it */
            if (pos > end || end - pos >= 8) return TW_ERR_CORRUPT;
            if (kind == F_RICE_ZZ) {
                for (size_t j = 0; j < len; j++) f[j] = base + (uint64_t)tw_zigzag_decode(f[j]);
            } else {
                for (size_t j = 0; j < len; j++) f[j] += base;
            }
            continue;
        }
        if (kind != F_FOR && kind != F_PATCHED) return TW_ERR_CORRUPT;
        unsigned width = param;
        if (width > 64) return TW_ERR_CORRUPT;
        unsigned exceptions = 0;
        if (kind == F_PATCHED) {
            uint8_t c;
            if ((status = get_u8(in, &c)) != TW_OK) return status;
            if (c == 0 || c > len || width >= 64) return TW_ERR_CORRUPT;
            exceptions = c;
            uint64_t seen[FRAME / 64] = {0};
            for (unsigned e = 0; e < exceptions; e++) {
                if ((status = get_u8(in, &exc_index[e])) != TW_OK) return status;
                if ((status = get_varint(in, &exc_high[e])) != TW_OK) return status;
                unsigned at = exc_index[e];
                /* one high part per index, holding only the 64 - w bits above w */
                if (at >= len || exc_high[e] == 0 || (width && exc_high[e] >> (64 - width)) ||
                    (seen[at / 64] >> (at % 64) & 1))
                    return TW_ERR_CORRUPT;
                seen[at / 64] |= (uint64_t)1 << (at % 64);
            }
        }
        size_t nbytes = (len * width + 7) / 8;
        if (in->len - in->pos < nbytes) return TW_ERR_TRUNCATED;
        const uint8_t *src = in->buf + in->pos;
        in->pos += nbytes;
        if (!f) continue;
        if (width && (width > 56 || in->len - (size_t)(src - in->buf) < nbytes + 16)) {
            memcpy(pad, src, nbytes);
            memset(pad + nbytes, 0, 16);
            src = pad;
        }
        get_packed(src, len, width, base, f);
        for (unsigned e = 0; e < exceptions; e++) f[exc_index[e]] += exc_high[e] << width;
        } while (0);
        if (shift && f) {
            for (size_t j = 0; j < len; j++) f[j] = (uint64_t)anchor + (f[j] << shift);
        }
    }
    return TW_OK;
}

/* Sum over frames of the frame's full width: a cheap size estimate in bits. */
static uint64_t frames_cost(const uint64_t *x, size_t m) {
    uint64_t bits = 0;
    for (size_t start = 0; start < m; start += FRAME) {
        size_t len = m - start < FRAME ? m - start : FRAME;
        int64_t lo = (int64_t)x[start], hi = lo;
        for (size_t j = 1; j < len; j++) {
            int64_t v = (int64_t)x[start + j];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        bits += 16 + len * bit_length((uint64_t)hi - (uint64_t)lo);
    }
    return bits;
}

/* -------------------------------------------------------------- Gorilla XOR */

static void encode_xor(out_t *o, const double *values, size_t n) {
    /* length-prefixed so a reader can skip it: encode into a scratch tail. */
    size_t mark = o->len;
    put_bytes(o, "\0\0\0\0", 4); /* u32 byte length, patched below */
    bitw_t w = {o, 0, 0};
    uint64_t prev;
    memcpy(&prev, &values[0], 8);
    bw_put(&w, prev & 0xffffffffu, 32);
    bw_put(&w, prev >> 32, 32);
    unsigned plead = 65, ptrail = 0;
    for (size_t i = 1; i < n; i++) {
        uint64_t cur;
        memcpy(&cur, &values[i], 8);
        uint64_t x = cur ^ prev;
        prev = cur;
        if (x == 0) {
            bw_put(&w, 0, 1);
            continue;
        }
        unsigned lead = (unsigned)__builtin_clzll(x), trail = (unsigned)__builtin_ctzll(x);
        if (lead > 31) lead = 31;
        if (plead <= 64 && lead >= plead && trail >= ptrail) {
            bw_put(&w, 1, 2); /* bits 1,0 */
            bw_put(&w, x >> ptrail, 64 - plead - ptrail);
        } else {
            unsigned sig = 64 - lead - trail;
            bw_put(&w, 3, 2); /* bits 1,1 */
            bw_put(&w, lead, 5);
            bw_put(&w, sig - 1, 6);
            if (sig > 32) {
                bw_put(&w, (x >> trail) & 0xffffffffu, 32);
                bw_put(&w, x >> (trail + 32), sig - 32);
            } else {
                bw_put(&w, x >> trail, sig);
            }
            plead = lead;
            ptrail = trail;
        }
    }
    bw_finish(&w);
    if (!o->full) {
        uint32_t nbytes = (uint32_t)(o->len - mark - 4);
        for (int i = 0; i < 4; i++) o->buf[mark + (size_t)i] = (uint8_t)(nbytes >> (8 * i));
    }
}

typedef struct {
    const uint8_t *buf; /* padded with 16 zero bytes */
    uint64_t pos, end;  /* in bits */
} bitr_t;

static inline int br_get(bitr_t *r, unsigned nb, uint64_t *v) {
    if (nb == 0) {
        *v = 0;
        return TW_OK;
    }
    if (r->end - r->pos < nb) return TW_ERR_TRUNCATED;
    unsigned shift = (unsigned)(r->pos & 7);
    uint64_t word = load64(r->buf + (r->pos >> 3)) >> shift;
    if (shift + nb > 64) word |= load64(r->buf + (r->pos >> 3) + 8) << (64 - shift);
    r->pos += nb;
    *v = word & low_mask(nb);
    return TW_OK;
}

static int decode_xor(in_t *in, double *values, size_t n) {
    if (in->len - in->pos < 4) return TW_ERR_TRUNCATED;
    const uint8_t *p = in->buf + in->pos;
    uint32_t nbytes = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    in->pos += 4;
    if (in->len - in->pos < nbytes) return TW_ERR_TRUNCATED;
    /* Needs at least 64 bits + 1 bit per further value. */
    if ((uint64_t)nbytes * 8 < 64 + (uint64_t)(n - 1)) return TW_ERR_CORRUPT;
    const uint8_t *src = in->buf + in->pos;
    in->pos += nbytes;
    if (values == NULL) return TW_OK;
    uint8_t *pad = malloc((size_t)nbytes + 16);
    if (pad == NULL) return TW_ERR_NOMEM;
    memcpy(pad, src, nbytes);
    memset(pad + nbytes, 0, 16);
    bitr_t r = {pad, 0, (uint64_t)nbytes * 8};
    int status = TW_OK;
    uint64_t lo, hi, prev, bit, v;
    br_get(&r, 32, &lo);
    br_get(&r, 32, &hi);
    prev = lo | hi << 32;
    memcpy(&values[0], &prev, 8);
    unsigned plead = 65, ptrail = 0;
    for (size_t i = 1; i < n; i++) {
        if ((status = br_get(&r, 1, &bit)) != TW_OK) break;
        if (bit) {
            if ((status = br_get(&r, 1, &bit)) != TW_OK) break;
            if (bit == 0) {
                if (plead > 64) {
                    status = TW_ERR_CORRUPT;
                    break;
                }
                if ((status = br_get(&r, 64 - plead - ptrail, &v)) != TW_OK) break;
                prev ^= v << ptrail;
            } else {
                uint64_t lead, sigm1;
                if ((status = br_get(&r, 5, &lead)) != TW_OK) break;
                if ((status = br_get(&r, 6, &sigm1)) != TW_OK) break;
                unsigned sig = (unsigned)sigm1 + 1;
                if (lead + sig > 64) {
                    status = TW_ERR_CORRUPT;
                    break;
                }
                unsigned trail = 64 - (unsigned)lead - sig;
                if (sig > 32) {
                    uint64_t low32, high;
                    if ((status = br_get(&r, 32, &low32)) != TW_OK) break;
                    if ((status = br_get(&r, sig - 32, &high)) != TW_OK) break;
                    v = low32 | high << 32;
                } else if ((status = br_get(&r, sig, &v)) != TW_OK) {
                    break;
                }
                prev ^= v << trail;
                plead = (unsigned)lead;
                ptrail = trail;
            }
        }
        memcpy(&values[i], &prev, 8);
    }
    if (status == TW_OK && r.end - r.pos >= 8) status = TW_ERR_CORRUPT; /* more than padding left */
    if (status == TW_ERR_TRUNCATED) status = TW_ERR_CORRUPT;
    free(pad);
    return status;
}

/* ------------------------------------------------------------------ encode */

size_t tw_tsc_bound(size_t n) {
    /* frames: <= 2 + 10 + 8*len bytes per frame (exceptions only when cheaper);
     * XOR: <= 77 bits per value; headers. Two sections. */
    size_t frames = (n / FRAME + 1) * 16;
    return 64 + 2 * (8 * n + frames) + n * 10;
}

/* Which timestamp mode: residuals of both candidates, cheaper one wins. */
static void encode_timestamps(out_t *o, const int64_t *ts, size_t n, uint64_t *scratch) {
    put_svarint(o, ts[0]);
    if (n < 2) return;
    size_t m = n - 1;
    uint64_t span = (uint64_t)ts[n - 1] - (uint64_t)ts[0];
    uint64_t step = (span + (uint64_t)m / 2) / (uint64_t)m;
    uint64_t *grid = scratch, *delta = scratch + m;
    uint64_t t0 = (uint64_t)ts[0];
    for (size_t i = 1; i < n; i++) {
        grid[i - 1] = (uint64_t)ts[i] - (t0 + (uint64_t)i * step);
        delta[i - 1] = (uint64_t)ts[i] - (uint64_t)ts[i - 1];
    }
    if (frames_cost(grid, m) + 64 <= frames_cost(delta, m)) {
        put_u8(o, TW_TSC_TS_GRID);
        put_svarint(o, (int64_t)step);
        encode_frames(o, grid, m);
    } else {
        put_u8(o, TW_TSC_TS_DELTA);
        encode_frames(o, delta, m);
    }
}

static inline int decimal_fits(double v, int k, int64_t *a) {
    double x = v * P10[k];
    if (!(fabs(x) <= EXACT_LIMIT)) return 0; /* also NaN */
    /* v * 10^k is rarely an exact integer (v itself is rounded); the nearest
     * integer is the candidate, and only the round trip decides. */
    int64_t i = fabs(x) >= 4503599627370496.0 /* 2^52: already integral */
                    ? (int64_t)x
                    : (int64_t)(x + (x < 0 ? -0.5 : 0.5));
    double back = k ? (double)i / P10[k] : (double)i;
    uint64_t b1, b2;
    memcpy(&b1, &back, 8);
    memcpy(&b2, &v, 8);
    if (b1 != b2) return 0;
    *a = i;
    return 1;
}

/* Integers a_i with values[i] == a_i / 10^k exactly; returns k or -1. */
static int find_decimal(const double *values, size_t n, int64_t *a) {
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        while (!decimal_fits(values[i], k, &a[i])) {
            if (++k > TW_TSC_MAX_SCALE) return -1;
            for (size_t j = 0; j < i; j++) {
                if (a[j] > (int64_t)(EXACT_LIMIT / 10) || a[j] < -(int64_t)(EXACT_LIMIT / 10)) return -1;
                a[j] *= 10;
            }
        }
    }
    return k;
}

static void encode_decimal(out_t *o, const int64_t *a, size_t n, int k, uint64_t *scratch) {
    put_u8(o, TW_TSC_V_DECIMAL);
    put_u8(o, (uint8_t)k);
    size_t m = n - 1;
    uint64_t *d1 = scratch, *d2 = scratch + n;
    for (size_t i = 1; i < n; i++) d1[i - 1] = (uint64_t)(a[i] - a[i - 1]);
    for (size_t i = 1; i < m; i++) d2[i - 1] = d1[i] - d1[i - 1];
    int order = 1;
    if (m >= 2 && frames_cost(d2, m - 1) + 64 < frames_cost(d1, m)) order = 2;
    put_u8(o, (uint8_t)order);
    put_svarint(o, a[0]);
    if (order == 1) {
        encode_frames(o, d1, m);
    } else {
        put_svarint(o, (int64_t)d1[0]);
        encode_frames(o, d2, m - 1);
    }
}

/* Encodes with scratch at `scratch` (3 * n + 1 uint64 slots). */
static int encode_with(const int64_t *ts, const double *values, size_t n, uint8_t *out, size_t cap,
                       size_t *written, uint64_t *scratch) {
    *written = 0;
    for (size_t i = 1; i < n; i++) {
        if (ts[i] <= ts[i - 1]) {
            *written = i;
            return TW_ERR_INVALID;
        }
    }
    out_t o = {out, 0, cap, 0};
    put_u8(&o, TW_TSC_VERSION);
    put_varint(&o, n);
    if (n == 0) goto done;
    encode_timestamps(&o, ts, n, scratch);

    uint64_t first;
    memcpy(&first, &values[0], 8);
    size_t i = 1;
    for (; i < n; i++) {
        uint64_t bits;
        memcpy(&bits, &values[i], 8);
        if (bits != first) break;
    }
    if (i == n) {
        put_u8(&o, TW_TSC_V_CONST);
        put_bytes(&o, &values[0], 8);
    } else {
        int64_t *a = (int64_t *)(scratch + 2 * n); /* scratch[0..2n) is free again */
        int k = n > 1 ? find_decimal(values, n, a) : -1;
        size_t mark = o.len;
        if (k >= 0) {
            encode_decimal(&o, a, n, k, scratch); /* deltas in scratch[0..2n) */
            /* Wide integers: Gorilla may be smaller; keep whichever is. */
            if (!o.full && (o.len - mark) > 6 * n) {
                size_t decimal_len = o.len - mark;
                uint8_t *saved = malloc(decimal_len);
                if (saved == NULL) return TW_ERR_NOMEM;
                memcpy(saved, o.buf + mark, decimal_len);
                o.len = mark;
                put_u8(&o, TW_TSC_V_XOR);
                encode_xor(&o, values, n);
                if (o.full || o.len - mark >= decimal_len) {
                    o.full = 0;
                    o.len = mark;
                    put_bytes(&o, saved, decimal_len);
                }
                free(saved);
            }
        } else {
            put_u8(&o, TW_TSC_V_XOR);
            encode_xor(&o, values, n);
        }
    }
done:
    if (o.full) return TW_ERR_NOSPACE;
    *written = o.len;
    return TW_OK;
}

int tw_tsc_encode(const int64_t *ts, const double *values, size_t n, uint8_t *out, size_t cap,
                  size_t *written) {
    uint64_t *scratch = (uint64_t *)thread_scratch(sizeof(uint64_t) * (3 * n + 1));
    *written = 0;
    if (scratch == NULL) return TW_ERR_NOMEM;
    return encode_with(ts, values, n, out, cap, written, scratch);
}

int tw_tsc_encode_scratch(const int64_t *ts, const double *values, size_t n, const uint8_t **out,
                          size_t *written) {
    size_t cap = tw_tsc_bound(n), slots = 3 * n + 1;
    uint8_t *buf = thread_scratch(sizeof(uint64_t) * slots + cap);
    *out = NULL;
    *written = 0;
    if (buf == NULL) return TW_ERR_NOMEM;
    uint8_t *chunk = buf + sizeof(uint64_t) * slots;
    int status = encode_with(ts, values, n, chunk, cap, written, (uint64_t *)buf);
    if (status == TW_OK) *out = chunk;
    return status;
}

/* ------------------------------------------------------------------ decode */

typedef struct {
    uint64_t n;
    int ts_mode, value_mode, scale, order;
    int64_t t0, step, a0, d1;
    size_t ts_frames, value_frames; /* offsets of the FRAMES / XOR sections */
    size_t ts_end, end;
} layout_t;

/* Walks the chunk; with decode buffers NULL only validates the structure. */
static int walk(const uint8_t *chunk, size_t len, layout_t *L, int64_t *ts, double *values) {
    in_t in = {chunk, len, 0};
    uint8_t version, mode;
    int status;
    memset(L, 0, sizeof *L);
    L->ts_mode = L->value_mode = L->scale = -1;
    if ((status = get_u8(&in, &version)) != TW_OK) return status;
    if (version != TW_TSC_VERSION) return TW_ERR_CORRUPT;
    if ((status = get_varint(&in, &L->n)) != TW_OK) return status;
    if (L->n > 64 * (uint64_t)len || L->n > ((uint64_t)1 << 40)) return TW_ERR_CORRUPT;
    size_t n = (size_t)L->n;
    if (n == 0) {
        L->ts_end = in.pos; /* the header belongs to the timestamp part */
        goto end;
    }
    if ((status = get_svarint(&in, &L->t0)) != TW_OK) return status;
    if (n > 1) {
        if ((status = get_u8(&in, &mode)) != TW_OK) return status;
        if (mode != TW_TSC_TS_GRID && mode != TW_TSC_TS_DELTA) return TW_ERR_CORRUPT;
        L->ts_mode = mode;
        if (mode == TW_TSC_TS_GRID && (status = get_svarint(&in, &L->step)) != TW_OK) return status;
        L->ts_frames = in.pos;
        uint64_t *x = ts ? (uint64_t *)(ts + 1) : NULL;
        if ((status = decode_frames(&in, x, n - 1)) != TW_OK) return status;
        if (ts) {
            uint64_t t0 = (uint64_t)L->t0, acc = t0, bad = 0;
            ts[0] = L->t0;
            if (mode == TW_TSC_TS_GRID) {
                uint64_t step = (uint64_t)L->step, grid = t0;
                for (size_t i = 1; i < n; i++) {
                    grid += step;
                    ts[i] = (int64_t)(grid + (uint64_t)ts[i]);
                    bad |= (uint64_t)(ts[i] <= ts[i - 1]);
                }
            } else {
                for (size_t i = 1; i < n; i++) {
                    acc += (uint64_t)ts[i];
                    ts[i] = (int64_t)acc;
                    bad |= (uint64_t)(ts[i] <= ts[i - 1]);
                }
            }
            if (bad) return TW_ERR_CORRUPT;
        }
    } else if (ts) {
        ts[0] = L->t0;
    }
    L->ts_end = in.pos;
    if ((status = get_u8(&in, &mode)) != TW_OK) return status;
    L->value_mode = mode;
    if (mode == TW_TSC_V_CONST) {
        if (len - in.pos < 8) return TW_ERR_TRUNCATED;
        if (values) {
            double v;
            memcpy(&v, in.buf + in.pos, 8);
            for (size_t i = 0; i < n; i++) values[i] = v;
        }
        in.pos += 8;
    } else if (mode == TW_TSC_V_DECIMAL) {
        uint8_t k, order;
        if ((status = get_u8(&in, &k)) != TW_OK) return status;
        if ((status = get_u8(&in, &order)) != TW_OK) return status;
        if (k > TW_TSC_MAX_SCALE || order < 1 || order > 2 || (order == 2 && n < 2))
            return TW_ERR_CORRUPT;
        L->scale = k;
        L->order = order;
        if ((status = get_svarint(&in, &L->a0)) != TW_OK) return status;
        if (order == 2 && (status = get_svarint(&in, &L->d1)) != TW_OK) return status;
        L->value_frames = in.pos;
        size_t m = order == 1 ? n - 1 : n - 2;
        /* decode the integer stream into the value buffer itself (8-byte slots) */
        uint64_t *x = values ? (uint64_t *)(values + (order == 1 ? 1 : 2)) : NULL;
        if ((status = decode_frames(&in, x, m)) != TW_OK) return status;
        if (values) {
            uint64_t *a = (uint64_t *)values;
            uint64_t acc = (uint64_t)L->a0, bad = 0;
            const double scale = P10[k];
            a[0] = acc;
            if (order == 1) {
                for (size_t i = 1; i < n; i++) {
                    acc += a[i];
                    a[i] = acc;
                }
            } else {
                uint64_t d = (uint64_t)L->d1;
                acc += d;
                a[1] = acc;
                for (size_t i = 2; i < n; i++) {
                    d += a[i];
                    acc += d;
                    a[i] = acc;
                }
            }
            for (size_t i = 0; i < n; i++) {
                int64_t s = (int64_t)a[i];
                bad |= (uint64_t)(s > (int64_t)EXACT_LIMIT || s < -(int64_t)EXACT_LIMIT);
            }
            if (bad) return TW_ERR_CORRUPT;
            if (k == 0) {
                for (size_t i = 0; i < n; i++) values[i] = (double)(int64_t)a[i];
            } else {
                for (size_t i = 0; i < n; i++) values[i] = (double)(int64_t)a[i] / scale;
            }
        }
    } else if (mode == TW_TSC_V_XOR) {
        L->value_frames = in.pos;
        if ((status = decode_xor(&in, values, n)) != TW_OK) return status;
    } else {
        return TW_ERR_CORRUPT;
    }
end:
    L->end = in.pos;
    if (in.pos != len) return TW_ERR_CORRUPT; /* trailing bytes */
    return TW_OK;
}

int tw_tsc_info_of(const uint8_t *chunk, size_t len, tw_tsc_info *info) {
    layout_t L;
    int status = walk(chunk, len, &L, NULL, NULL);
    if (status != TW_OK) return status;
    info->count = L.n;
    info->ts_mode = L.ts_mode;
    info->value_mode = L.value_mode;
    info->scale = L.value_mode == TW_TSC_V_DECIMAL ? L.scale : -1;
    info->order = L.order;
    info->ts_bytes = L.ts_end;
    info->value_bytes = L.end - L.ts_end;
    return TW_OK;
}

int tw_tsc_decode(const uint8_t *chunk, size_t len, int64_t *ts, double *values, size_t cap,
                  size_t *count) {
    layout_t L;
    uint64_t n;
    size_t used;
    *count = 0;
    /* the count first, to check the caller's room before writing anything */
    if (len < 1) return TW_ERR_TRUNCATED;
    if (chunk[0] != TW_TSC_VERSION) return TW_ERR_CORRUPT;
    int status = tw_varint_get(chunk + 1, len - 1, &n, &used);
    if (status == TW_ERR_OVERFLOW) return TW_ERR_CORRUPT;
    if (status != TW_OK) return status;
    if (n > cap) return TW_ERR_NOSPACE;
    status = walk(chunk, len, &L, ts, values);
    if (status == TW_OK) *count = (size_t)L.n;
    return status;
}
