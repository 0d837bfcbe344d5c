/*
 * postings.h — posting lists: sorted unique uint32 ids, their set
 * operations and their on-disk encoding.
 *
 * The TSDB series index (label value -> series ids) and the log search
 * inverted index (term -> document ids) both answer queries by combining
 * posting lists, so both use this kernel.
 *
 * Set operations. Every input list must be strictly increasing; that is the
 * caller's duty, not checked here (checking would cost more than a galloping
 * intersection). A list that is not sorted gives an unspecified result but
 * never makes a function read or write outside the buffers it was given.
 * Inputs are borrowed; the caller owns `out` and gives its capacity; no
 * function allocates except the k-way ones (a small index array or heap).
 * Complexity: intersect and difference merge linearly when the lists have
 * similar sizes and gallop (exponential then binary search) through the
 * larger one when it is more than TW_POSTINGS_GALLOP_RATIO times the
 * smaller, O(small * log(large / small)).
 *
 * Encoding (format 1; every integer little-endian):
 *
 *   offset 0   u32   checksum of bytes [4, end) (tw_postings_checksum)
 *   offset 4   u8    format, 1
 *   offset 5   varint count of ids n (LEB128, at most 5 bytes, n <= 2^32)
 *   then       skip table, one 8-byte entry per block of 128 ids:
 *                u32 first id of the block
 *                u32 end offset of the block, counted from the first block
 *   then       the blocks, back to back, the last one ending the buffer:
 *                u8 width w (0..32)
 *                the block's other ids (up to 127) as (id - previous id - 1)
 *                packed at w bits each, least significant bit first, the
 *                last byte padded with zero bits.
 *
 * An empty list is 6 bytes (checksum, format, count 0). The encoding is
 * canonical: w is the smallest width that holds the block's values, so one
 * list has exactly one encoding and decode(encode(x)) == x, encode(decode(b))
 * == b. A run of consecutive ids packs to w = 0: one byte per 128 ids.
 *
 * Damage. Decoding checks every rule above (sizes, offsets, widths, padding,
 * ids strictly increasing across blocks, no id above 2^32 - 1, the
 * checksum) before trusting a byte, and never reads outside [in, in + len).
 * A failed check returns a negative status and the byte offset of the first
 * bad byte found (0 for a checksum mismatch: the damage could be anywhere):
 *
 *   TW_ERR_TRUNCATED  the input ends inside the header, skip table or a block
 *   TW_ERR_CORRUPT    a format rule or the checksum fails
 *   TW_ERR_NOSPACE    the caller's output buffer is smaller than documented
 *   TW_ERR_INVALID    encode: ids not strictly increasing, or more than 2^32;
 *                     union_many: the lengths sum past SIZE_MAX
 *   TW_ERR_OVERFLOW   encode: the blocks would pass 4 GiB (u32 offsets)
 *   TW_ERR_NOMEM      a k-way operation could not allocate its index
 *
 * The skip table lets tw_postings_view_* answer membership and intersect a
 * sorted query with an encoded list while decoding only the blocks that may
 * hold a queried id. A view trusts only what tw_postings_view_open checked
 * (header, skip table, and the checksum when asked); each block it decodes
 * is checked on the way, so a view over damaged bytes never reads out of
 * bounds; without `verify`, damage that keeps every format rule (a flipped
 * gap bit) gives wrong ids instead of a status.
 *
 * Thread safety: no function has hidden state; a view is read-only after
 * open and may be shared between threads.
 */
#ifndef TW_POSTINGS_H
#define TW_POSTINGS_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

#define TW_POSTINGS_FORMAT 1
#define TW_POSTINGS_BLOCK 128
/* The larger list must be this many times the smaller for galloping. */
#define TW_POSTINGS_GALLOP_RATIO 16
/* Bytes of checksum + format + the longest count varint. */
#define TW_POSTINGS_HEADER_MAX 10
#define TW_POSTINGS_SKIP_ENTRY 8

/* ---------------------------------------------------------------- set operations */

/*
 * out = a ∩ b. out_cap must be >= min(na, nb) (else TW_ERR_NOSPACE, nothing
 * written). out may be a itself (in place); it must not overlap b otherwise.
 * *n_out gets the count.
 */
int tw_postings_intersect(const uint32_t *a, size_t na, const uint32_t *b, size_t nb,
                          uint32_t *out, size_t out_cap, size_t *n_out);

/*
 * out = a ∪ b. out_cap must be >= na + nb; out must not overlap a or b.
 */
int tw_postings_union(const uint32_t *a, size_t na, const uint32_t *b, size_t nb, uint32_t *out,
                      size_t out_cap, size_t *n_out);

/*
 * out = a \ b. out_cap must be >= na. out may be a itself (in place); it
 * must not overlap b.
 */
int tw_postings_difference(const uint32_t *a, size_t na, const uint32_t *b, size_t nb,
                           uint32_t *out, size_t out_cap, size_t *n_out);

/*
 * out = the intersection of the k lists lists[i][0..lens[i]), smallest
 * first so that the running result shrinks as fast as possible and the
 * later steps gallop. k == 0 gives the empty list. out_cap must be >= the
 * smallest lens[i]; out must not overlap any list. Allocates k indexes
 * (TW_ERR_NOMEM when that fails).
 */
int tw_postings_intersect_many(const uint32_t *const *lists, const size_t *lens, size_t k,
                               uint32_t *out, size_t out_cap, size_t *n_out);

/*
 * out = the union of the k lists. out_cap must be >= the sum of lens[i]
 * (an overflowing sum is TW_ERR_INVALID); out must not overlap any list.
 * Two lists merge directly; more go through a binary heap of list heads,
 * O(total * log k), allocated here (TW_ERR_NOMEM when that fails).
 */
int tw_postings_union_many(const uint32_t *const *lists, const size_t *lens, size_t k,
                           uint32_t *out, size_t out_cap, size_t *n_out);

/* ---------------------------------------------------------------- encoding */

/* The checksum the format stores: a 32-bit hash of data[0..len). */
uint32_t tw_postings_checksum(const uint8_t *data, size_t len);

/*
 * The most bytes tw_postings_encode can write for n ids. Returns 0 when n
 * is above 2^32 (no such list of unique uint32 exists).
 */
size_t tw_postings_encoded_bound(uint64_t n);

/*
 * Encodes ids[0..n) into out[0..cap) (cap >= tw_postings_encoded_bound(n)
 * always suffices); *written gets the byte count. Returns TW_ERR_INVALID
 * when the ids are not strictly increasing, with *written set to the index
 * of the first id not above its predecessor, or when n > 2^32;
 * TW_ERR_OVERFLOW when the blocks would pass 4 GiB (the skip table's
 * offsets are u32; only lists of about a billion sparse ids get there);
 * TW_ERR_NOSPACE when cap is short (out then holds garbage).
 */
int tw_postings_encode(const uint32_t *ids, size_t n, uint8_t *out, size_t cap, size_t *written);

/*
 * The most bytes tw_postings_encode_many can write for the k lists whose
 * bounds starts[0..k] gives (non-decreasing). Returns 0 when a list is too
 * long, starts decreases, or the sum passes SIZE_MAX.
 */
size_t tw_postings_encoded_bound_many(const uint64_t *starts, size_t k);

/*
 * Encodes k lists, list i being ids[starts[i] .. starts[i + 1]), back to
 * back into out[0..cap) (cap >= tw_postings_encoded_bound_many(starts, k)
 * always suffices); each is exactly tw_postings_encode's bytes. offsets
 * (k + 1 entries) gets where each encoding starts, offsets[k] the total.
 * On failure returns tw_postings_encode's status (TW_ERR_INVALID also when
 * starts decreases) with *err_list the failing list and, for ids out of
 * order, *err_index the index within that list.
 */
int tw_postings_encode_many(const uint32_t *ids, const uint64_t *starts, size_t k, uint8_t *out,
                            size_t cap, uint64_t *offsets, size_t *err_list, size_t *err_index);

/*
 * The id count an encoded list declares, from its header alone, after
 * checking that the header, the skip table and the end offset of the last
 * block agree with len (so a damaged count cannot make the caller allocate
 * more than 15 ids per input byte). Checks no block and no checksum.
 * On failure *err_offset gets the offset of the bad byte.
 */
int tw_postings_decoded_count(const uint8_t *in, size_t len, size_t *n, size_t *err_offset);

/*
 * Decodes in[0..len) into out[0..cap) after checking every rule of the
 * format and the checksum. cap must be >= the count (TW_ERR_NOSPACE).
 * *n_out gets the count; on failure *err_offset gets the offset of the bad
 * byte and out holds garbage.
 */
int tw_postings_decode(const uint8_t *in, size_t len, uint32_t *out, size_t cap, size_t *n_out,
                       size_t *err_offset);

/* ---------------------------------------------------------------- views */

/*
 * An encoded list read in place. Borrows the bytes given to open, which
 * must outlive the view and not change.
 */
typedef struct {
    const uint8_t *pv_skip;   /* the skip table, pv_blocks entries */
    const uint8_t *pv_data;   /* the first block */
    size_t pv_data_len;       /* bytes of all blocks */
    uint64_t pv_count;        /* ids in the list */
    size_t pv_blocks;         /* blocks in the list */
    size_t pv_base;           /* offset of pv_data in the input, for error offsets */
} tw_postings_view;

/*
 * Opens a view: checks the header and the skip table (first ids strictly
 * increasing, end offsets increasing and ending the buffer), O(blocks), and
 * with `verify` the checksum, O(len). Blocks are checked when read.
 */
int tw_postings_view_open(tw_postings_view *view, const uint8_t *in, size_t len, int verify,
                          size_t *err_offset);

/* *found = whether id is in the list; decodes at most one block. */
int tw_postings_view_contains(const tw_postings_view *view, uint32_t id, int *found,
                              size_t *err_offset);

/*
 * out = ids[0..n) ∩ the viewed list, for strictly increasing ids. Decodes
 * only the blocks whose range holds a queried id. out_cap must be >= n;
 * out may be ids itself.
 */
int tw_postings_view_intersect(const tw_postings_view *view, const uint32_t *ids, size_t n,
                               uint32_t *out, size_t out_cap, size_t *n_out, size_t *err_offset);

#endif
