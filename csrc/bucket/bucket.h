/*
 * bucket.h — in-process rate-limit tables: token bucket (GCRA), sliding log,
 * sliding-window counter and fixed window over an open-addressing hash table.
 *
 * One table holds one limit (one algorithm and its parameters) for any number
 * of keys. A key is a 128-bit fingerprint (hi, lo) of the caller's key bytes,
 * made with tw_bucket_hash; (0, 0) is reserved as the empty slot, so the hash
 * never returns it. Every slot has the same size, fixed by the algorithm when
 * the table is made: 16 bytes of fingerprint plus 8 (token bucket), 16 (fixed
 * window), 24 (counter) or 8 + 8 * limit (sliding log) bytes of state.
 *
 * Time is int64 nanoseconds on whatever clock the caller uses; it only has to
 * be the same clock for every call on one table. A clock that goes back is
 * tolerated: the decisions stay within the limit (the later of the stored
 * and the given times counts).
 *
 * Semantics, per algorithm (the Python oracle, trusswork/ratelimit/_reference.py,
 * and the Redis scripts follow the same formulas):
 *   - token bucket (GCRA): one theoretical arrival time (TAT) per key;
 *     interval = ns per token, tau = burst * interval. A request of cost c is
 *     admitted when max(tat, now) + c * interval - now <= tau.
 *   - sliding log: the times of the last `limit` admitted units; a unit counts
 *     while now < t + window. Exact.
 *   - sliding-window counter: counts of the current and previous aligned
 *     windows; estimate = prev * (window - elapsed) / window + cur (Cloudflare).
 *   - fixed window: count of the current aligned window.
 *
 * Thread safety: every function that takes a table holds its lock, so calls
 * from several threads (with or without the Python GIL) are safe. No function
 * calls back into the caller.
 */
#ifndef TW_BUCKET_H
#define TW_BUCKET_H

#include <stddef.h>
#include <stdint.h>

#define TW_BUCKET_TOKEN 0
#define TW_BUCKET_LOG 1
#define TW_BUCKET_COUNTER 2
#define TW_BUCKET_FIXED 3

/* retry_after_ns of a request that can never be admitted (cost above capacity). */
#define TW_BUCKET_NEVER INT64_MAX

/* The largest limit of a sliding log (its state is 8 bytes per unit). */
#define TW_BUCKET_LOG_MAX (1 << 20)

typedef struct tw_bucket_table tw_bucket_table;

typedef struct {
    int allowed;
    int64_t remaining;      /* units left after this decision, >= 0 */
    int64_t retry_after_ns; /* 0 when allowed; TW_BUCKET_NEVER when it never will be */
    int64_t reset_after_ns; /* until the key is back to full capacity */
} tw_bucket_decision;

/*
 * A new table. algorithm is one of TW_BUCKET_*; for TW_BUCKET_TOKEN, period is
 * the interval (ns per token) and limit the burst; for the others, period is
 * the window (ns) and limit the number of units per window. Returns NULL for
 * bad parameters (period < 1, limit < 1, a sliding log above
 * TW_BUCKET_LOG_MAX, tau overflowing int64) or when memory runs out; *status
 * (if not NULL) tells which (TW_ERR_INVALID or TW_ERR_NOMEM).
 */
tw_bucket_table *tw_bucket_new(int algorithm, int64_t period, int64_t limit, int *status);
void tw_bucket_free(tw_bucket_table *table);

/*
 * Decide a request of `cost` units (cost >= 0) for key (hi, lo) at `now`.
 * With commit, an admitted request is recorded; without, nothing changes
 * (a peek). Returns TW_OK, TW_ERR_INVALID for a negative cost or the (0, 0)
 * key, or TW_ERR_NOMEM when the table could not grow.
 */
int tw_bucket_acquire(tw_bucket_table *table, uint64_t hi, uint64_t lo, int64_t cost, int64_t now,
                      int commit, tw_bucket_decision *out);

/*
 * n decisions in order, as n calls of tw_bucket_acquire at one `now`, under
 * one lock. costs may be NULL (every cost is `cost`). Outputs are arrays of
 * n: allowed (0/1), remaining, retry_after and reset_after in seconds
 * (retry_after is +inf for never). Stops at the first error and returns it.
 */
int tw_bucket_acquire_batch(tw_bucket_table *table, const uint64_t *hi, const uint64_t *lo,
                            const int64_t *costs, int64_t cost, size_t n, int64_t now,
                            uint8_t *allowed, int64_t *remaining, double *retry_after,
                            double *reset_after);

/* tw_bucket_acquire_batch for keys that are 64-bit integers, hashed here with `seed`. */
int tw_bucket_acquire_batch_u64(tw_bucket_table *table, const uint64_t *keys, uint64_t seed,
                                const int64_t *costs, int64_t cost, size_t n, int64_t now,
                                uint8_t *allowed, int64_t *remaining, double *retry_after,
                                double *reset_after);

/*
 * One request checked against several tables at once (a global limit and
 * per-user, per-route limits...): it is admitted only when every level admits
 * it, and then recorded in every level; a denied request is recorded in none.
 * tables[i] is decided for key (hi[i], lo[i]) at nows[i]; out[i] gets each
 * level's decision (so a caller can tell which level refused); when the
 * request is denied, a level that would have admitted it reports what it holds
 * now (its decision for cost 0). All tables are locked for the whole
 * decision, in address order.
 * *allowed gets the overall answer. A table may appear more than once only
 * with different keys.
 */
int tw_bucket_acquire_levels(tw_bucket_table *const *tables, const uint64_t *hi, const uint64_t *lo,
                             size_t levels, int64_t cost, const int64_t *nows, int *allowed,
                             tw_bucket_decision *out);

/* Forget key (hi, lo): its next request finds a full bucket. Returns 1 if it was held. */
int tw_bucket_reset(tw_bucket_table *table, uint64_t hi, uint64_t lo);

/* Drop every key that is idle at `now` (back to full capacity). Returns how many. */
size_t tw_bucket_sweep(tw_bucket_table *table, int64_t now);

/* Keys held (idle keys count until a sweep or a growth drops them). */
size_t tw_bucket_len(tw_bucket_table *table);

/* Bytes of slot memory the table holds now. */
size_t tw_bucket_memory(tw_bucket_table *table);

/*
 * A 128-bit fingerprint of len bytes, never (0, 0). `seed` separates key kinds
 * (str, bytes, int) and tables; equal (data, seed) give equal fingerprints.
 */
void tw_bucket_hash(const void *data, size_t len, uint64_t seed, uint64_t *hi, uint64_t *lo);

/* tw_bucket_hash of the 8 little-endian bytes of value. */
void tw_bucket_hash_u64(uint64_t value, uint64_t seed, uint64_t *hi, uint64_t *lo);

#endif
