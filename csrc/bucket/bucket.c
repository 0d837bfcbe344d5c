/*
 * bucket.c — rate-limit tables; see bucket.h for the semantics.
 *
 * Layout: one array of `capacity` slots of `stride` uint64 words each:
 * word 0 and 1 are the key's fingerprint (0, 0 = empty), the rest the
 * algorithm's state. Linear probing from hi & (capacity - 1); the table is
 * rebuilt (idle keys dropped, doubled when still over 3/8 full) when an
 * insertion would take it over half full, so probes stay short and idle keys
 * cost nothing until then.
 */
#include "bucket/bucket.h"

#include <math.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "common/status.h"

#define MIN_CAPACITY 16
#define MAX_LEVELS 64

struct tw_bucket_table {
    int lock; /* a spin lock: held for a few dozen ns, except by sweeps and batches */
    int algorithm;
    int64_t period; /* token bucket: ns per token; windows: window length in ns */
    int64_t limit;  /* token bucket: burst; windows: units per window */
    int64_t tau;    /* token bucket: burst * period */
    uint64_t magic; /* token bucket: floor((2^64 - 1) / period), to divide by period fast */
    size_t stride;  /* uint64 words per slot: 2 key words + state */
    size_t capacity;
    size_t count;
    uint64_t *slots;
    uint64_t *scratch; /* the state of a key not in the table (stride - 2 words) */
};

/* ---------------------------------------------------------------- locking */

/* An uncontended pthread mutex costs twice this; waiters spin briefly, then yield. */
static void table_lock(int *lock) {
    while (__atomic_exchange_n(lock, 1, __ATOMIC_ACQUIRE)) {
        for (int spins = 0; __atomic_load_n(lock, __ATOMIC_RELAXED); spins++) {
            if (spins >= 64) {
                sched_yield();
            } else {
#if defined(__x86_64__) || defined(__i386__)
                __builtin_ia32_pause();
#endif
            }
        }
    }
}

static void table_unlock(int *lock) { __atomic_store_n(lock, 0, __ATOMIC_RELEASE); }

/* ---------------------------------------------------------------- arithmetic */

static int64_t sat_add(int64_t a, int64_t b) {
    if (b > 0 && a > INT64_MAX - b) return INT64_MAX;
    if (b < 0 && a < INT64_MIN - b) return INT64_MIN;
    return a + b;
}

static int64_t sat_sub(int64_t a, int64_t b) {
    if (b < 0 && a > INT64_MAX + b) return INT64_MAX;
    if (b > 0 && a < INT64_MIN + b) return INT64_MIN;
    return a - b;
}

/* x / d for 0 <= x and magic = floor((2^64 - 1) / d): one multiplication, one correction. */
static inline int64_t div_by(int64_t x, int64_t d, uint64_t magic) {
    uint64_t q = (uint64_t)(((__uint128_t)(uint64_t)x * magic) >> 64); /* q or q - 1 */
    if ((q + 1) * (uint64_t)d <= (uint64_t)x) q++;
    return (int64_t)q;
}

/* The start of the aligned window holding now: now - (now mod period), floor mod. */
static int64_t window_start(int64_t now, int64_t period) {
    int64_t mod = now % period;
    if (mod < 0) mod += period;
    return now - mod;
}

/* ---------------------------------------------------------------- fingerprints */

static uint64_t mum(uint64_t a, uint64_t b) {
    __uint128_t r = (__uint128_t)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static uint64_t read64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

/* The last 1-7 bytes of a key, little-endian, in at most two loads. */
static uint64_t read_tail(const unsigned char *p, size_t n) {
    if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, p, 4);
        memcpy(&b, p + n - 4, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        a = __builtin_bswap32(a);
        b = __builtin_bswap32(b);
#endif
        return (uint64_t)a | ((uint64_t)b << ((n - 4) * 8));
    }
    uint64_t v = p[0];
    if (n > 1) v |= (uint64_t)p[1] << 8;
    if (n > 2) v |= (uint64_t)p[2] << 16;
    return v;
}

#define K0 0xa0761d6478bd642fULL
#define K1 0xe7037ed1a0b428dbULL
#define K2 0x8ebc6af09c88c6e3ULL
#define K3 0x589965cc75374cc3ULL
#define K4 0x1d8e4e27c47d124fULL

/* The fingerprint's last step, shared by the byte and the 64-bit versions. */
static inline void hash_finish(uint64_t a, uint64_t b, uint64_t *hi, uint64_t *lo) {
    uint64_t h = mum(a ^ K3, b ^ K0);
    uint64_t l = mum(b ^ K1, a ^ K4 ^ h);
    if ((h | l) == 0) l = 1;
    *hi = h;
    *lo = l;
}

void tw_bucket_hash(const void *data, size_t len, uint64_t seed, uint64_t *hi, uint64_t *lo) {
    const unsigned char *p = (const unsigned char *)data;
    uint64_t a = seed ^ K0 ^ mum((uint64_t)len, K1);
    uint64_t b = (seed * K2) ^ K3 ^ (uint64_t)len;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w = read64(p + i);
        a = mum(a ^ w, K1);
        b = mum(b ^ w ^ K4, K2);
    }
    if (i < len) {
        uint64_t w = read_tail(p + i, len - i) ^ ((uint64_t)(len - i) << 56);
        a = mum(a ^ w, K1);
        b = mum(b ^ w ^ K4, K2);
    }
    hash_finish(a, b, hi, lo);
}

/* tw_bucket_hash of 8 bytes, the loop unrolled: the same fingerprint. */
static inline void hash_u64(uint64_t value, uint64_t seed, uint64_t *hi, uint64_t *lo) {
    uint64_t a = seed ^ K0 ^ mum(8, K1);
    uint64_t b = (seed * K2) ^ K3 ^ 8;
    hash_finish(mum(a ^ value, K1), mum(b ^ value ^ K4, K2), hi, lo);
}

void tw_bucket_hash_u64(uint64_t value, uint64_t seed, uint64_t *hi, uint64_t *lo) {
    hash_u64(value, seed, hi, lo);
}

/* ---------------------------------------------------------------- state words */

static size_t state_words(int algorithm, int64_t limit) {
    switch (algorithm) {
    case TW_BUCKET_TOKEN: return 1;        /* tat */
    case TW_BUCKET_FIXED: return 2;        /* start, count */
    case TW_BUCKET_COUNTER: return 3;      /* start, prev, cur */
    default: return 1 + (size_t)limit;     /* head | count << 32, ring of limit stamps */
    }
}

/* The state of a key the table does not hold: a full bucket. */
static void fresh_state(const tw_bucket_table *t, uint64_t *st) {
    switch (t->algorithm) {
    case TW_BUCKET_TOKEN: st[0] = (uint64_t)INT64_MIN; break;
    case TW_BUCKET_FIXED: st[0] = (uint64_t)INT64_MIN; st[1] = 0; break;
    case TW_BUCKET_COUNTER: st[0] = (uint64_t)INT64_MIN; st[1] = 0; st[2] = 0; break;
    default: st[0] = 0; break;
    }
}

static int is_idle(const tw_bucket_table *t, const uint64_t *st, int64_t now) {
    int64_t p = t->period;
    switch (t->algorithm) {
    case TW_BUCKET_TOKEN: return (int64_t)st[0] <= now;
    case TW_BUCKET_FIXED: return st[1] == 0 || sat_add((int64_t)st[0], p) <= now;
    case TW_BUCKET_COUNTER:
        return (st[1] == 0 && st[2] == 0) || sat_add((int64_t)st[0], sat_add(p, p)) <= now;
    default: {
        uint64_t head = st[0] & 0xffffffffu, n = st[0] >> 32;
        if (n == 0) return 1;
        uint64_t newest = (head + n - 1) % (uint64_t)t->limit;
        return sat_add((int64_t)st[1 + newest], p) <= now;
    }
    }
}

/* ---------------------------------------------------------------- decisions */

static void decide_token(const tw_bucket_table *t, uint64_t *st, int64_t cost, int64_t now, int commit,
                         tw_bucket_decision *d) {
    int64_t iv = t->period, tau = t->tau, tat = (int64_t)st[0];
    int64_t base = tat > now ? tat : now;
    int64_t used = sat_sub(base, now); /* above tau only when the clock went back */
    if (cost > t->limit) {
        d->allowed = 0;
        d->remaining = used <= tau ? div_by(tau - used, iv, t->magic) : 0;
        d->retry_after_ns = TW_BUCKET_NEVER;
        d->reset_after_ns = used;
        return;
    }
    int64_t after = sat_add(used, cost * iv);
    if (after <= tau) {
        if (commit) st[0] = (uint64_t)sat_add(base, cost * iv);
        d->allowed = 1;
        d->remaining = div_by(tau - after, iv, t->magic);
        d->retry_after_ns = 0;
        d->reset_after_ns = after;
    } else {
        d->allowed = 0;
        d->remaining = used <= tau ? div_by(tau - used, iv, t->magic) : 0;
        d->retry_after_ns = after - tau;
        d->reset_after_ns = used;
    }
}

static void decide_fixed(const tw_bucket_table *t, uint64_t *st, int64_t cost, int64_t now, int commit,
                         tw_bucket_decision *d) {
    int64_t start = window_start(now, t->period), count = (int64_t)st[1];
    if (start > (int64_t)st[0]) {
        count = 0;
    } else {
        start = (int64_t)st[0]; /* the same window, or the clock went back */
    }
    int64_t until_end = sat_sub(sat_add(start, t->period), now);
    if (cost <= t->limit && count + cost <= t->limit) {
        count += cost;
        if (commit) {
            st[0] = (uint64_t)start;
            st[1] = (uint64_t)count;
        }
        d->allowed = 1;
        d->remaining = t->limit - count;
        d->retry_after_ns = 0;
        d->reset_after_ns = count > 0 ? until_end : 0;
    } else {
        d->allowed = 0;
        d->remaining = t->limit - count;
        d->retry_after_ns = cost > t->limit ? TW_BUCKET_NEVER : until_end;
        d->reset_after_ns = until_end;
    }
}

static void decide_counter(const tw_bucket_table *t, uint64_t *st, int64_t cost, int64_t now, int commit,
                           tw_bucket_decision *d) {
    int64_t w = t->period, limit = t->limit;
    int64_t start = window_start(now, w), stored = (int64_t)st[0];
    int64_t prev, cur;
    if (stored == start) {
        prev = (int64_t)st[1];
        cur = (int64_t)st[2];
    } else if (stored < start && stored == start - w) {
        prev = (int64_t)st[2];
        cur = 0;
    } else if (stored < start) {
        prev = 0;
        cur = 0;
    } else { /* the clock went back: keep counting in the stored window */
        start = stored;
        prev = (int64_t)st[1];
        cur = (int64_t)st[2];
    }
    int64_t elapsed = now - start;
    if (elapsed < 0) elapsed = 0;
    double weight = (double)(w - elapsed) / (double)w;
    double estimate = (double)prev * weight + (double)cur;
    int allowed = cost <= limit && estimate + (double)cost <= (double)limit;
    if (allowed) {
        cur += cost;
        estimate += (double)cost;
        if (commit) {
            st[0] = (uint64_t)start;
            st[1] = (uint64_t)prev;
            st[2] = (uint64_t)cur;
        }
    }
    double left = floor((double)limit - estimate);
    d->allowed = allowed;
    d->remaining = left > 0 ? (int64_t)left : 0;
    if (allowed) {
        d->retry_after_ns = 0;
    } else if (cost > limit) {
        d->retry_after_ns = TW_BUCKET_NEVER;
    } else if (cur + cost <= limit) {
        /* Within this window, once the previous window's weight has decayed enough. */
        double e = ceil((double)w * (1.0 - (double)(limit - cur - cost) / (double)prev));
        int64_t retry = (int64_t)e - elapsed;
        d->retry_after_ns = retry > 1 ? retry : 1;
    } else {
        /* In the next window, where this window's count becomes the previous one. */
        int64_t e2 = 0;
        if (cur > 0) {
            double e = ceil((double)w * (1.0 - (double)(limit - cost) / (double)cur));
            e2 = e > 0 ? (int64_t)e : 0;
        }
        d->retry_after_ns = (w - elapsed) + e2;
    }
    if (cur > 0) {
        d->reset_after_ns = (w - elapsed) + w;
    } else {
        d->reset_after_ns = prev > 0 ? w - elapsed : 0;
    }
}

static void decide_log(const tw_bucket_table *t, uint64_t *st, int64_t cost, int64_t now, int commit,
                       tw_bucket_decision *d) {
    uint64_t limit = (uint64_t)t->limit;
    uint64_t head = st[0] & 0xffffffffu, n = st[0] >> 32;
    uint64_t *ring = st + 1;
    while (n > 0 && sat_add((int64_t)ring[head], t->period) <= now) {
        head = head + 1 == limit ? 0 : head + 1;
        n--;
    }
    /* The expired stamps are forgotten only when the request is recorded (below): a
     * peek or a denial changes nothing, even for a clock that later goes back. */
    int64_t count = (int64_t)n;
    int64_t newest = n > 0 ? (int64_t)ring[(head + n - 1) % limit] : INT64_MIN;
    if (cost <= t->limit && count + cost <= t->limit) {
        /* Stamps never decrease, so the ring stays sorted even if the clock goes back. */
        int64_t stamp = newest > now ? newest : now;
        if (commit && cost > 0) {
            for (int64_t i = 0; i < cost; i++) ring[(head + n + (uint64_t)i) % limit] = (uint64_t)stamp;
            st[0] = head | ((n + (uint64_t)cost) << 32);
        }
        if (cost > 0) newest = stamp;
        d->allowed = 1;
        d->remaining = t->limit - (count + cost);
        d->retry_after_ns = 0;
    } else {
        d->allowed = 0;
        d->remaining = t->limit - count;
        if (cost > t->limit) {
            d->retry_after_ns = TW_BUCKET_NEVER;
        } else {
            uint64_t k = (uint64_t)(count + cost - t->limit); /* stamps that must expire */
            int64_t stamp = (int64_t)ring[(head + k - 1) % limit];
            d->retry_after_ns = sat_sub(sat_add(stamp, t->period), now);
        }
    }
    d->reset_after_ns = newest == INT64_MIN ? 0 : sat_sub(sat_add(newest, t->period), now);
}

static void decide(const tw_bucket_table *t, uint64_t *st, int64_t cost, int64_t now, int commit,
                   tw_bucket_decision *d) {
    switch (t->algorithm) {
    case TW_BUCKET_TOKEN: decide_token(t, st, cost, now, commit, d); break;
    case TW_BUCKET_FIXED: decide_fixed(t, st, cost, now, commit, d); break;
    case TW_BUCKET_COUNTER: decide_counter(t, st, cost, now, commit, d); break;
    default: decide_log(t, st, cost, now, commit, d); break;
    }
}

/* ---------------------------------------------------------------- the table */

static uint64_t *slot_at(const tw_bucket_table *t, size_t index) { return t->slots + index * t->stride; }

/* The slot holding (hi, lo), or the empty slot where it would go. */
static uint64_t *probe(const tw_bucket_table *t, uint64_t hi, uint64_t lo) {
    size_t mask = t->capacity - 1, i = (size_t)hi & mask;
    for (;;) {
        uint64_t *s = slot_at(t, i);
        if ((s[0] == hi && s[1] == lo) || (s[0] | s[1]) == 0) return s;
        i = (i + 1) & mask;
    }
}

/* Move every live (non-idle at now, unless keep_idle) key into a new array of new_capacity slots. */
static int rebuild(tw_bucket_table *t, size_t new_capacity, int64_t now, int keep_idle) {
    uint64_t *fresh = calloc(new_capacity, t->stride * sizeof(uint64_t));
    if (fresh == NULL) return TW_ERR_NOMEM;
    uint64_t *old = t->slots;
    size_t old_capacity = t->capacity;
    t->slots = fresh;
    t->capacity = new_capacity;
    t->count = 0;
    for (size_t i = 0; i < old_capacity; i++) {
        uint64_t *s = old + i * t->stride;
        if ((s[0] | s[1]) == 0) continue;
        if (!keep_idle && is_idle(t, s + 2, now)) continue;
        memcpy(probe(t, s[0], s[1]), s, t->stride * sizeof(uint64_t));
        t->count++;
    }
    free(old);
    return TW_OK;
}

/* Remove the key in slot `index`; backward-shift deletion keeps every other key
 * reachable without tombstones. */
static void delete_at(tw_bucket_table *t, size_t index) {
    size_t mask = t->capacity - 1, hole = index, j = index;
    for (;;) {
        j = (j + 1) & mask;
        uint64_t *next = slot_at(t, j);
        if ((next[0] | next[1]) == 0) break;
        size_t home = (size_t)next[0] & mask;
        /* next may fill the hole if its home is not cyclically in (hole, j]. */
        int stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
        if (!stays) {
            memcpy(slot_at(t, hole), next, t->stride * sizeof(uint64_t));
            hole = j;
        }
    }
    memset(slot_at(t, hole), 0, t->stride * sizeof(uint64_t));
    t->count--;
}

/* Drop the idle keys without moving the table. The scan starts just after an empty
 * slot and goes once round: a deletion only pulls later keys of the same run back
 * into the slot being looked at, so every key is looked at. */
static void drop_idle(tw_bucket_table *t, int64_t now) {
    size_t mask = t->capacity - 1, start = 0;
    while ((slot_at(t, start)[0] | slot_at(t, start)[1]) != 0) start++;
    for (size_t step = 1; step <= t->capacity; step++) {
        size_t i = (start + step) & mask;
        uint64_t *s = slot_at(t, i);
        while ((s[0] | s[1]) != 0 && is_idle(t, s + 2, now)) delete_at(t, i);
    }
}

/* Room for one more key: drop idle keys, and double while the live ones fill over 3/8. */
static int make_room(tw_bucket_table *t, int64_t now) {
    if ((t->count + 1) * 2 <= t->capacity) return TW_OK;
    size_t live = 0;
    for (size_t i = 0; i < t->capacity; i++) {
        uint64_t *s = slot_at(t, i);
        if ((s[0] | s[1]) != 0 && !is_idle(t, s + 2, now)) live++;
    }
    size_t capacity = t->capacity;
    while ((live + 1) * 8 > capacity * 3) {
        if (capacity > SIZE_MAX / 2 / (t->stride * sizeof(uint64_t))) return TW_ERR_NOMEM;
        capacity *= 2;
    }
    if (capacity == t->capacity) {
        drop_idle(t, now);
        return TW_OK;
    }
    return rebuild(t, capacity, now, 0);
}

tw_bucket_table *tw_bucket_new(int algorithm, int64_t period, int64_t limit, int *status) {
    int code = TW_ERR_INVALID;
    tw_bucket_table *t = NULL;
    if (algorithm < TW_BUCKET_TOKEN || algorithm > TW_BUCKET_FIXED || period < 1 || limit < 1) goto fail;
    if (algorithm == TW_BUCKET_LOG && limit > TW_BUCKET_LOG_MAX) goto fail;
    if (algorithm == TW_BUCKET_TOKEN && limit > INT64_MAX / period) goto fail;
    if (algorithm != TW_BUCKET_TOKEN && period > INT64_MAX / 4) goto fail;
    code = TW_ERR_NOMEM;
    t = calloc(1, sizeof(*t));
    if (t == NULL) goto fail;
    t->algorithm = algorithm;
    t->period = period;
    t->limit = limit;
    t->tau = algorithm == TW_BUCKET_TOKEN ? limit * period : 0;
    t->magic = UINT64_MAX / (uint64_t)period;
    t->stride = 2 + state_words(algorithm, limit);
    t->capacity = MIN_CAPACITY;
    t->slots = calloc(t->capacity, t->stride * sizeof(uint64_t));
    t->scratch = calloc(t->stride - 2, sizeof(uint64_t));
    if (t->slots == NULL || t->scratch == NULL) goto fail;
    if (status) *status = TW_OK;
    return t;
fail:
    if (t) {
        free(t->slots);
        free(t->scratch);
        free(t);
    }
    if (status) *status = code;
    return NULL;
}

void tw_bucket_free(tw_bucket_table *t) {
    if (t == NULL) return;
    free(t->slots);
    free(t->scratch);
    free(t);
}

/* One decision with the lock held. */
static int acquire_locked(tw_bucket_table *t, uint64_t hi, uint64_t lo, int64_t cost, int64_t now, int commit,
                          tw_bucket_decision *d) {
    if (cost < 0 || (hi | lo) == 0) return TW_ERR_INVALID;
    if (cost == 0) commit = 0; /* asking without taking records nothing */
    uint64_t *s = probe(t, hi, lo);
    if ((s[0] | s[1]) != 0) {
        decide(t, s + 2, cost, now, commit, d);
        return TW_OK;
    }
    /* A key not held: decide on a full bucket, store it only if it changed. */
    uint64_t *st = t->scratch;
    fresh_state(t, st);
    decide(t, st, cost, now, commit, d);
    if (commit && d->allowed && cost > 0) {
        int code = make_room(t, now);
        if (code != TW_OK) return code;
        s = probe(t, hi, lo);
        s[0] = hi;
        s[1] = lo;
        memcpy(s + 2, st, (t->stride - 2) * sizeof(uint64_t));
        t->count++;
    }
    return TW_OK;
}

int tw_bucket_acquire(tw_bucket_table *t, uint64_t hi, uint64_t lo, int64_t cost, int64_t now, int commit,
                      tw_bucket_decision *out) {
    table_lock(&t->lock);
    int code = acquire_locked(t, hi, lo, cost, now, commit, out);
    table_unlock(&t->lock);
    return code;
}

static double seconds(int64_t ns) { return ns == TW_BUCKET_NEVER ? INFINITY : (double)ns / 1e9; }

/* Load the slot where a key's probe starts into the cache ahead of its turn. */
static inline void prefetch_home(const tw_bucket_table *t, uint64_t hi) {
    __builtin_prefetch(slot_at(t, (size_t)hi & (t->capacity - 1)));
}

/* Keys this far ahead of the one being decided have their home slot prefetched. */
#define AHEAD 8

static int batch_one(tw_bucket_table *t, size_t i, uint64_t hi, uint64_t lo, const int64_t *costs,
                     int64_t cost, int64_t now, uint8_t *allowed, int64_t *remaining,
                     double *retry_after, double *reset_after) {
    tw_bucket_decision d;
    int code = acquire_locked(t, hi, lo, costs ? costs[i] : cost, now, 1, &d);
    if (code != TW_OK) return code;
    allowed[i] = (uint8_t)d.allowed;
    remaining[i] = d.remaining;
    retry_after[i] = seconds(d.retry_after_ns);
    reset_after[i] = seconds(d.reset_after_ns);
    return TW_OK;
}

int tw_bucket_acquire_batch(tw_bucket_table *t, const uint64_t *hi, const uint64_t *lo, const int64_t *costs,
                            int64_t cost, size_t n, int64_t now, uint8_t *allowed, int64_t *remaining,
                            double *retry_after, double *reset_after) {
    int code = TW_OK;
    table_lock(&t->lock);
    for (size_t i = 0; i < n && i < AHEAD; i++) prefetch_home(t, hi[i]);
    for (size_t i = 0; i < n && code == TW_OK; i++) {
        if (i + AHEAD < n) prefetch_home(t, hi[i + AHEAD]);
        code = batch_one(t, i, hi[i], lo[i], costs, cost, now, allowed, remaining, retry_after, reset_after);
    }
    table_unlock(&t->lock);
    return code;
}

int tw_bucket_acquire_batch_u64(tw_bucket_table *t, const uint64_t *keys, uint64_t seed,
                                const int64_t *costs, int64_t cost, size_t n, int64_t now,
                                uint8_t *allowed, int64_t *remaining, double *retry_after,
                                double *reset_after) {
    int code = TW_OK;
    uint64_t his[AHEAD], los[AHEAD];
    table_lock(&t->lock);
    for (size_t i = 0; i < n && i < AHEAD; i++) {
        hash_u64(keys[i], seed, &his[i], &los[i]);
        prefetch_home(t, his[i]);
    }
    for (size_t i = 0; i < n && code == TW_OK; i++) {
        size_t r = i % AHEAD;
        uint64_t hi = his[r], lo = los[r];
        if (i + AHEAD < n) {
            hash_u64(keys[i + AHEAD], seed, &his[r], &los[r]);
            prefetch_home(t, his[r]);
        }
        code = batch_one(t, i, hi, lo, costs, cost, now, allowed, remaining, retry_after, reset_after);
    }
    table_unlock(&t->lock);
    return code;
}

static int by_address(const void *a, const void *b) {
    uintptr_t x = (uintptr_t) * (tw_bucket_table *const *)a, y = (uintptr_t) * (tw_bucket_table *const *)b;
    return x < y ? -1 : x > y;
}

int tw_bucket_acquire_levels(tw_bucket_table *const *tables, const uint64_t *hi, const uint64_t *lo,
                             size_t levels, int64_t cost, const int64_t *nows, int *allowed,
                             tw_bucket_decision *out) {
    if (levels == 0 || levels > MAX_LEVELS || cost < 0) return TW_ERR_INVALID;
    tw_bucket_table *order[MAX_LEVELS];
    memcpy(order, tables, levels * sizeof(*order));
    qsort(order, levels, sizeof(*order), by_address);
    size_t unique = 0;
    for (size_t i = 0; i < levels; i++) {
        if (unique == 0 || order[unique - 1] != order[i]) order[unique++] = order[i];
    }
    for (size_t i = 0; i < unique; i++) table_lock(&order[i]->lock);
    int code = TW_OK, all = 1;
    for (size_t i = 0; i < levels && code == TW_OK; i++) {
        code = acquire_locked(tables[i], hi[i], lo[i], cost, nows[i], 0, &out[i]);
        all = all && out[i].allowed;
    }
    if (code == TW_OK && all && cost > 0) {
        for (size_t i = 0; i < levels && code == TW_OK; i++) {
            code = acquire_locked(tables[i], hi[i], lo[i], cost, nows[i], 1, &out[i]);
        }
    } else if (code == TW_OK && !all) {
        /* Nothing was charged: a level that would have admitted reports what it holds now. */
        for (size_t i = 0; i < levels && code == TW_OK; i++) {
            if (out[i].allowed) code = acquire_locked(tables[i], hi[i], lo[i], 0, nows[i], 0, &out[i]);
        }
    }
    for (size_t i = unique; i > 0; i--) table_unlock(&order[i - 1]->lock);
    *allowed = code == TW_OK && all;
    return code;
}

int tw_bucket_reset(tw_bucket_table *t, uint64_t hi, uint64_t lo) {
    table_lock(&t->lock);
    int held = 0;
    uint64_t *s = probe(t, hi, lo);
    if ((hi | lo) != 0 && (s[0] | s[1]) != 0) {
        delete_at(t, (size_t)(s - t->slots) / t->stride);
        held = 1;
    }
    table_unlock(&t->lock);
    return held;
}

size_t tw_bucket_sweep(tw_bucket_table *t, int64_t now) {
    table_lock(&t->lock);
    size_t before = t->count;
    drop_idle(t, now);
    /* Shrink while the live keys would fill less than 1/8 of half the slots. */
    while (t->capacity > MIN_CAPACITY && t->count * 16 < t->capacity) {
        if (rebuild(t, t->capacity / 2, now, 1) != TW_OK) break;
    }
    size_t dropped = before - t->count;
    table_unlock(&t->lock);
    return dropped;
}

size_t tw_bucket_len(tw_bucket_table *t) {
    table_lock(&t->lock);
    size_t n = t->count;
    table_unlock(&t->lock);
    return n;
}

size_t tw_bucket_memory(tw_bucket_table *t) {
    table_lock(&t->lock);
    size_t bytes = t->capacity * t->stride * sizeof(uint64_t);
    table_unlock(&t->lock);
    return bytes;
}
