/*
 * bitio.h — a bit writer and a bit reader, most significant bit first.
 *
 * The time-series codecs (Gorilla XOR floats, delta-of-delta timestamps)
 * and bit-packed integer blocks are written with these. Bits fill each
 * byte from its high end; the last byte is padded with zero bits.
 *
 * Writer: tw_bitwriter_write(w, value, nbits) appends the low nbits
 * (0..64) of value; a value with bits set above nbits is refused with
 * TW_ERR_OVERFLOW so callers catch their own width bugs. When the caller's
 * buffer is full the write returns TW_ERR_NOSPACE; the writer then holds a
 * prefix of what was written and must not be used further.
 *
 * Reader: tw_bitreader_read(r, nbits, &value) returns TW_ERR_TRUNCATED when
 * fewer than nbits remain, leaving what it read so far buffered.
 *
 * Both borrow the caller's buffer and allocate nothing.
 */
#ifndef TW_BITIO_H
#define TW_BITIO_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

typedef struct {
    uint8_t *bw_buf;
    size_t bw_cap;
    size_t bw_len;   /* whole bytes written to bw_buf */
    uint64_t bw_acc; /* pending bits in the low bw_bits bits */
    unsigned bw_bits;
} tw_bitwriter;

typedef struct {
    const uint8_t *br_buf;
    size_t br_len;
    size_t br_pos;   /* next byte to load */
    uint64_t br_acc; /* loaded, unread bits in the low br_bits bits */
    unsigned br_bits;
} tw_bitreader;

static inline void tw_bitwriter_init(tw_bitwriter *w, uint8_t *buf, size_t cap) {
    w->bw_buf = buf;
    w->bw_cap = cap;
    w->bw_len = 0;
    w->bw_acc = 0;
    w->bw_bits = 0;
}

/* nbits <= 32 and value < 2^nbits; flushes every completed byte. */
static inline int tw_bitwriter_put32(tw_bitwriter *w, uint64_t value, unsigned nbits) {
    w->bw_acc = (w->bw_acc << nbits) | value;
    w->bw_bits += nbits;
    while (w->bw_bits >= 8) {
        if (w->bw_len == w->bw_cap) return TW_ERR_NOSPACE;
        w->bw_bits -= 8;
        w->bw_buf[w->bw_len++] = (uint8_t)(w->bw_acc >> w->bw_bits);
    }
    return TW_OK;
}

static inline int tw_bitwriter_write(tw_bitwriter *w, uint64_t value, unsigned nbits) {
    if (nbits > 64) return TW_ERR_INVALID;
    if (nbits < 64 && (value >> nbits) != 0) return TW_ERR_OVERFLOW;
    if (nbits > 32) {
        int status = tw_bitwriter_put32(w, value >> 32, nbits - 32);
        if (status != TW_OK) return status;
        return tw_bitwriter_put32(w, value & 0xffffffffu, 32);
    }
    return tw_bitwriter_put32(w, value, nbits);
}

/* Total bits written so far. */
static inline uint64_t tw_bitwriter_bit_length(const tw_bitwriter *w) {
    return (uint64_t)w->bw_len * 8 + w->bw_bits;
}

/* Pads the last byte with zero bits; *nbytes gets the bytes used. */
static inline int tw_bitwriter_finish(tw_bitwriter *w, size_t *nbytes) {
    if (w->bw_bits) {
        int status = tw_bitwriter_put32(w, 0, 8 - w->bw_bits);
        if (status != TW_OK) return status;
    }
    *nbytes = w->bw_len;
    return TW_OK;
}

static inline void tw_bitreader_init(tw_bitreader *r, const uint8_t *buf, size_t len) {
    r->br_buf = buf;
    r->br_len = len;
    r->br_pos = 0;
    r->br_acc = 0;
    r->br_bits = 0;
}

static inline int tw_bitreader_get32(tw_bitreader *r, unsigned nbits, uint64_t *value) {
    while (r->br_bits < nbits) {
        if (r->br_pos == r->br_len) return TW_ERR_TRUNCATED;
        r->br_acc = (r->br_acc << 8) | r->br_buf[r->br_pos++];
        r->br_bits += 8;
    }
    r->br_bits -= nbits;
    *value = (r->br_acc >> r->br_bits) & (((uint64_t)1 << nbits) - 1);
    return TW_OK;
}

static inline int tw_bitreader_read(tw_bitreader *r, unsigned nbits, uint64_t *value) {
    if (nbits > 64) return TW_ERR_INVALID;
    if (nbits > 32) {
        uint64_t high, low;
        if ((uint64_t)r->br_bits + 8 * (uint64_t)(r->br_len - r->br_pos) < nbits)
            return TW_ERR_TRUNCATED;
        int status = tw_bitreader_get32(r, nbits - 32, &high);
        if (status != TW_OK) return status;
        status = tw_bitreader_get32(r, 32, &low);
        if (status != TW_OK) return status;
        *value = (high << 32) | low;
        return TW_OK;
    }
    return tw_bitreader_get32(r, nbits, value);
}

/* Bits not yet read. */
static inline uint64_t tw_bitreader_remaining(const tw_bitreader *r) {
    return (uint64_t)r->br_bits + 8 * (uint64_t)(r->br_len - r->br_pos);
}

#endif
