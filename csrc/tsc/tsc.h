/*
 * tsc.h — the chunk codec of the time-series store.
 *
 * One chunk holds the samples of one series: n strictly ascending int64
 * timestamps (milliseconds) and n float64 values. Encoding is lossless for
 * every bit pattern (NaN payloads, the staleness marker, ±inf, -0.0).
 *
 * Layout (all integers little-endian; "varint" is csrc/common's LEB128,
 * "svarint" a zigzag-mapped varint):
 *
 *   u8 version (1) | varint n | [n > 0] timestamps values
 *
 *   timestamps: svarint t0, then for n > 1:
 *     u8 mode 0 GRID : svarint step T; residuals x_i = t_i - (t0 + i*T)
 *     u8 mode 1 DELTA: x_i = t_i - t_(i-1)
 *     and the n-1 values x_1.. as FRAMES.
 *     GRID suits scrapes on a ticker (timestamps = grid + jitter: the
 *     residual carries the jitter once); DELTA suits drifting intervals. The
 *     encoder measures both and keeps the smaller.
 *
 *   values: u8 mode
 *     0 CONST  : 8 raw bytes; every value has this exact bit pattern.
 *     1 DECIMAL: u8 scale k (0..TW_TSC_MAX_SCALE), u8 order (1 or 2);
 *                every value is a_i / 10^k exactly (IEEE division of the
 *                integer a_i, |a_i| <= 2^53), so counters and values with
 *                few decimals become integers. svarint a_0; order 1 codes
 *                d_i = a_i - a_(i-1) (i >= 1) as FRAMES; order 2 writes
 *                svarint d_1 and codes d_i - d_(i-1) (i >= 2) as FRAMES.
 *     2 XOR    : u32 byte length, then Gorilla's XOR stream (LSB first): the
 *                first value's 64 bits (low 32, then high 32); per further
 *                value x = bits ^ previous bits: one 0 bit when x == 0; else
 *                bits 1,0 and x >> trail in the previous window's
 *                64 - lead - trail bits when x fits it; else bits 1,1, 5 bits
 *                lead (clz capped at 31), 6 bits sig - 1, and sig bits of
 *                x >> trail (low 32 first when sig > 32), which opens a new
 *                window. For chunks no other mode holds exactly.
 *
 *   FRAMES: the values in groups of up to 256 (the last may be shorter),
 *   each group in the cheapest of five kinds, chosen per frame so the
 *   encoding follows the data as it changes:
 *     u8 kind, u8 param, [scaled: u8 shift, svarint anchor], then
 *     0 FOR     (param w, 0..64): svarint base; ceil(len*w/8) bytes holding
 *               x - base mod 2^w, value j at bit j*w, least significant bit
 *               first. base is the frame's minimum.
 *     1 PATCHED (param w, 0..63): svarint base; u8 count c (1..len, < 256); c times
 *               (u8 index, varint high != 0; each index once, high below
 *               2^(64 - w)); packed bytes as FOR. Exceptions
 *               restore the bits above w: x = base + (low | high << w), so
 *               a few outliers do not widen every slot.
 *     2 RICE    (param k, 0..20): svarint base; varint nbytes; a bit stream
 *               (LSB first) of, per value u = x - base with q = u >> k:
 *               q < 32: q one bits, a zero bit, the k low bits of u;
 *               else: 32 one bits, 6 bits (bit length of u) - 1, then u.
 *               Near-geometric data (scrape jitter) costs close to its
 *               entropy instead of a whole bit width.
 *     3 SPARSE  (param w): svarint z; svarint base; ceil(len/8) bytes of
 *               bitmap (bit j set: x_j != z); the values != z packed as FOR
 *               at width w from base. For deltas of gauges that mostly stay.
 *     4 RICE_ZZ (param k, 0..20): svarint center; varint nbytes; the RICE
 *               bit stream of u = zigzag(x - center) (0, -1, 1, -2 ->
 *               0, 1, 2, 3). center is about the frame's mean: noisy
 *               increments spread on both sides of it.
 *   All frame arithmetic is modulo 2^64; a RICE or XOR stream ends within
 *   its last byte (no spare byte), and SPARSE bitmap bits past the frame's
 *   length are zero.
 *   A kind byte with bit 0x80 set is "scaled": the frame's values x were
 *   coded as h = (x - anchor) >> shift (shift 1..63; anchor is the frame's
 *   minimum, every x - anchor a multiple of 2^shift, e.g. byte counts in
 *   4 KiB pages); decoding the kind gives h, and x = anchor + (h << shift).
 *
 * Buffers: every function borrows the caller's buffers. The encoder keeps
 * one scratch buffer per thread (about 50 bytes per sample of the largest
 * chunk encoded), reused by later calls and freed when the thread ends.
 */
#ifndef TW_TSC_H
#define TW_TSC_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

#define TW_TSC_VERSION 1
#define TW_TSC_FRAME 256
#define TW_TSC_MAX_SCALE 15

/* Timestamp modes and value modes, as stored. */
enum { TW_TSC_TS_GRID = 0, TW_TSC_TS_DELTA = 1 };
enum { TW_TSC_V_CONST = 0, TW_TSC_V_DECIMAL = 1, TW_TSC_V_XOR = 2 };

/* What the header of a chunk says (tw_tsc_info). */
typedef struct {
    uint64_t count;     /* samples */
    int ts_mode;        /* TW_TSC_TS_*, -1 when count < 2 */
    int value_mode;     /* TW_TSC_V_*, -1 when count == 0 */
    int scale;          /* decimal scale k, -1 unless DECIMAL */
    int order;          /* 1 or 2 for DECIMAL, else 0 */
    size_t ts_bytes;    /* bytes of the timestamp part (header included) */
    size_t value_bytes; /* bytes of the value part */
} tw_tsc_info;

/* Bytes enough for any chunk of n samples. */
size_t tw_tsc_bound(size_t n);

/*
 * Encodes n samples into out[0..cap); *written gets the chunk length.
 * TW_ERR_INVALID when timestamps are not strictly ascending (*written then
 * holds the index of the first offending timestamp); TW_ERR_NOSPACE when cap
 * is below tw_tsc_bound(n) and the chunk did not fit; TW_ERR_NOMEM.
 */
int tw_tsc_encode(const int64_t *ts, const double *values, size_t n, uint8_t *out, size_t cap,
                  size_t *written);

/*
 * The same, into this thread's scratch: *out points at the chunk, valid
 * until the thread's next encode call (copy it out). No cap to guess.
 */
int tw_tsc_encode_scratch(const int64_t *ts, const double *values, size_t n, const uint8_t **out,
                          size_t *written);

/*
 * Reads the header and walks the chunk without decoding samples: fills
 * *info, or returns TW_ERR_CORRUPT / TW_ERR_TRUNCATED for damaged input.
 * A chunk can claim at most 64 samples per byte of its length (the densest
 * real chunk is far below that), so a tiny damaged chunk cannot make the
 * caller allocate gigabytes.
 */
int tw_tsc_info_of(const uint8_t *chunk, size_t len, tw_tsc_info *info);

/*
 * Decodes a chunk into ts[0..cap) and values[0..cap); *count gets n.
 * TW_ERR_NOSPACE when cap < n; TW_ERR_CORRUPT or TW_ERR_TRUNCATED when the
 * bytes are damaged (including timestamps that do not ascend and trailing
 * bytes). Never reads outside chunk[0..len) nor writes past cap samples.
 */
int tw_tsc_decode(const uint8_t *chunk, size_t len, int64_t *ts, double *values, size_t cap,
                  size_t *count);

#endif
