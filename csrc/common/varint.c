/*
 * varint.c — array encoders and decoders for LEB128 varints.
 *
 * The loops are written for the common case of many small values: the
 * decoder takes an unchecked fast path while at least ten bytes remain
 * (a whole varint cannot run past the end) and a checked one at the tail.
 * See varint.h for the format and the error contract.
 */
#include "varint.h"

#include "byteorder.h"

size_t tw_varint_encoded_size(const uint64_t *values, size_t n, int zigzag) {
    size_t total = 0;
    if (zigzag) {
        for (size_t i = 0; i < n; i++) total += tw_varint_size(tw_zigzag_encode((int64_t)values[i]));
    } else {
        for (size_t i = 0; i < n; i++) total += tw_varint_size(values[i]);
    }
    return total;
}

/* The seven-bit groups of v (v < 2^56) spread one per byte, low group first. */
static inline uint64_t spread_groups(uint64_t v) {
    return (v & 0x7full) | ((v << 1) & 0x7f00ull) | ((v << 2) & 0x7f0000ull) |
           ((v << 3) & 0x7f000000ull) | ((v << 4) & 0x7f00000000ull) |
           ((v << 5) & 0x7f0000000000ull) | ((v << 6) & 0x7f000000000000ull) |
           ((v << 7) & 0x7f00000000000000ull);
}

/* Continuation bits of a varint of 1..8 bytes, as a little-endian word. */
static const uint64_t continuation_bits[9] = {
    0, 0, 0x80ull, 0x8080ull, 0x808080ull, 0x80808080ull, 0x8080808080ull, 0x808080808080ull,
    0x80808080808080ull};

/*
 * Values below 2^56 (one to eight bytes) are written as one unaligned
 * 8-byte store: the groups spread into bytes, continuation bits on all but
 * the last, and the position advanced by the real size. That needs eight
 * bytes of room, so the last few values go through the byte loop.
 */
int tw_varint_encode(const uint64_t *values, size_t n, int zigzag, uint8_t *out, size_t cap,
                     size_t *written) {
    size_t pos = 0, i = 0;
    for (; i < n && cap - pos >= 8; i++) {
        uint64_t v = zigzag ? tw_zigzag_encode((int64_t)values[i]) : values[i];
        if (v < 0x80) { /* the common case of delta-coded data */
            out[pos++] = (uint8_t)v;
            continue;
        }
        if (v >> 56) {
            if (cap - pos < tw_varint_size(v)) break;
            pos += tw_varint_put(out + pos, v);
            continue;
        }
        size_t size = tw_varint_size(v);
        tw_store_le64(out + pos, spread_groups(v) | continuation_bits[size]);
        pos += size;
    }
    for (; i < n; i++) {
        uint64_t v = zigzag ? tw_zigzag_encode((int64_t)values[i]) : values[i];
        if (cap - pos < tw_varint_size(v)) {
            *written = pos;
            return TW_ERR_NOSPACE;
        }
        pos += tw_varint_put(out + pos, v);
    }
    *written = pos;
    return TW_OK;
}

size_t tw_varint_count(const uint8_t *in, size_t len) {
    size_t count = 0;
    for (size_t i = 0; i < len; i++) count += !(in[i] & 0x80);
    return count;
}

/* One varint with no bounds check: the caller guarantees ten readable bytes. */
static inline int get_unchecked(const uint8_t *in, uint64_t *v, size_t *consumed) {
    uint64_t result = in[0] & 0x7f;
    if (!(in[0] & 0x80)) {
        *v = result;
        *consumed = 1;
        return TW_OK;
    }
    for (size_t i = 1; i < TW_VARINT_MAX_BYTES; i++) {
        uint8_t byte = in[i];
        result |= (uint64_t)(byte & 0x7f) << (7 * i);
        if (!(byte & 0x80)) {
            if (i == 9 && byte > 1) return TW_ERR_OVERFLOW;
            *v = result;
            *consumed = i + 1;
            return TW_OK;
        }
    }
    return TW_ERR_OVERFLOW;
}

int tw_varint_decode(const uint8_t *in, size_t len, int zigzag, uint64_t *out, size_t max_values,
                     size_t *n_values, size_t *consumed) {
    size_t pos = 0, n = 0;
    int status = TW_OK;
    while (n < max_values && pos < len) {
        uint64_t v;
        size_t used;
        status = len - pos >= TW_VARINT_MAX_BYTES ? get_unchecked(in + pos, &v, &used)
                                                  : tw_varint_get(in + pos, len - pos, &v, &used);
        if (status != TW_OK) break;
        out[n++] = zigzag ? (uint64_t)tw_zigzag_decode(v) : v;
        pos += used;
    }
    *n_values = n;
    *consumed = pos;
    return status;
}
