/*
 * varint.h — unsigned LEB128 varints and zigzag for signed values.
 *
 * Format: seven value bits per byte, least significant group first, the
 * high bit set on every byte but the last (protobuf's varint). A uint64
 * takes 1 to 10 bytes. Signed values are zigzag-mapped first
 * (0, -1, 1, -2, ... -> 0, 1, 2, 3, ...) so small magnitudes stay short.
 *
 * Decoders accept non-minimal encodings (as protobuf does) and reject a
 * varint longer than 10 bytes or whose tenth byte carries bits beyond 64
 * (TW_ERR_OVERFLOW), and input that ends inside a varint
 * (TW_ERR_TRUNCATED). On either error *consumed is the offset of the first
 * byte of the offending varint and the values before it are in `out`.
 *
 * Buffers are borrowed; the caller owns `out` and says how big it is.
 */
#ifndef TW_VARINT_H
#define TW_VARINT_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define TW_VARINT_MAX_BYTES 10

static inline uint64_t tw_zigzag_encode(int64_t v) {
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static inline int64_t tw_zigzag_decode(uint64_t v) {
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

/* Bytes the varint of v takes: 1..10. */
static inline size_t tw_varint_size(uint64_t v) {
    return (size_t)((63 - __builtin_clzll(v | 1)) / 7 + 1);
}

/* Writes v at out (which must have tw_varint_size(v) bytes); returns that size. */
static inline size_t tw_varint_put(uint8_t *out, uint64_t v) {
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

/* Reads one varint from in[0..len); sets *v and *consumed. */
static inline int tw_varint_get(const uint8_t *in, size_t len, uint64_t *v, size_t *consumed) {
    uint64_t result = 0;
    size_t limit = len < TW_VARINT_MAX_BYTES ? len : TW_VARINT_MAX_BYTES;
    for (size_t i = 0; i < limit; i++) {
        uint8_t byte = in[i];
        if (i == 9 && byte > 1) return TW_ERR_OVERFLOW;
        result |= (uint64_t)(byte & 0x7f) << (7 * i);
        if (!(byte & 0x80)) {
            *v = result;
            *consumed = i + 1;
            return TW_OK;
        }
    }
    return len < TW_VARINT_MAX_BYTES ? TW_ERR_TRUNCATED : TW_ERR_OVERFLOW;
}

/* Total encoded size of n values (zigzag-mapped first when `zigzag`). */
size_t tw_varint_encoded_size(const uint64_t *values, size_t n, int zigzag);

/*
 * Encodes n values into out[0..cap); *written gets the byte count.
 * With `zigzag`, values are read as int64 and zigzag-mapped.
 * Returns TW_ERR_NOSPACE (and writes nothing useful) when cap is short.
 */
int tw_varint_encode(const uint64_t *values, size_t n, int zigzag, uint8_t *out, size_t cap,
                     size_t *written);

/* Number of varints that end in in[0..len) (bytes with the high bit clear). */
size_t tw_varint_count(const uint8_t *in, size_t len);

/*
 * Decodes varints from in[0..len) into out[0..max_values) until the input
 * or the output is used up. *n_values gets the count decoded and
 * *consumed the bytes they took. With `zigzag`, values are unmapped to
 * int64 (stored in the same 64 bits).
 */
int tw_varint_decode(const uint8_t *in, size_t len, int zigzag, uint64_t *out, size_t max_values,
                     size_t *n_values, size_t *consumed);

#endif
