/*
 * btree.c — a B+tree in one file of pages, crash-safe by copy-on-write.
 *
 * Crash story (shadow paging, as LMDB does it). Committed pages are never
 * written in place. A write transaction copies every page it changes -- the
 * path from the root to each leaf it touches -- into pages that no commit
 * uses (free pages, or new ones at the end of the file). Commit writes those
 * pages, fdatasync, then writes the meta page, fdatasync. The two meta pages
 * (0 and 1) alternate: transaction T writes page T % 2, so the meta of the
 * previous commit is intact while T's is written. Opening picks the valid
 * meta (magic, checksum) with the highest transaction id. So:
 *   - a crash before T's meta is durable opens T - 1, whose pages T never
 *     touched (pages freed by T are reused only by T + 1 and later);
 *   - a torn meta page fails its checksum and the other meta is used;
 *   - after the meta's fdatasync, T is what opens.
 * With sync off, nothing is ordered: process death loses nothing the OS
 * has, but power loss may leave a newest meta whose pages never reached the
 * disk; page checksums then report Corruption instead of returning wrong
 * data.
 *
 * File format (all integers little-endian, P = page size):
 *   page 0, 1   meta: "TWBTREE1" | u32 version | u32 P | u64 txn | u64 root |
 *               u64 count | u64 npages | u64 freelist head | u64 free count |
 *               u32 depth | u64 root's txn | ... | u32 crc32c(bytes 0..124) at 124
 *   page n      header (48 bytes): u32 crc32c(bytes 4..P) | u8 type | u8 0 |
 *               u16 nkeys | u64 pgno | u64 txn that wrote it | u64 link |
 *               u32 upper | u32 frag | u64 link's txn
 *     leaf      slots after the header (u16 cell offset | u32 first four key
 *               bytes, big-endian, zero-padded), cells from the end:
 *               u16 klen | u32 vlen (bit 31: overflow) | key | value
 *               (an overflow cell holds u64 first overflow page | u64 its txn)
 *     branch    link = leftmost child; cells u16 klen | u64 child |
 *               u64 child's txn | key; the child of cell i holds keys >= key i
 *               (and < key i + 1)
 *     overflow  link = next page; upper = bytes of value in this page
 *     freelist  link = next page; upper = entries; u64 pgno entries
 * Every page names its own number and carries a checksum, and every pointer
 * to a page names the transaction that wrote it (as btrfs does), so a torn,
 * misdirected or stale page -- a write the disk lost, or with sync off one
 * that never happened -- is Corruption when read, never data. The file is
 * always at least npages long (a commit extends it before its meta page).
 *
 * Free pages. A page freed by transaction F is still part of snapshot F - 1;
 * it becomes reusable when no registered reader snapshot is older than F.
 * The persisted free list (rewritten by every commit into pages no commit
 * uses) lists all of them, since after a restart no reader exists. Pages
 * freed and allocated within one transaction are reused at once.
 *
 * Locking. bt->mu guards the buffer pool, the committed state and the
 * snapshot registry; every entry point takes it. bt->wmu is held by the one
 * writer from begin to commit/abort. Commit writes pages and syncs without
 * bt->mu (the frames it writes are pinned and invisible to readers).
 */
#include "btree/btree.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/byteorder.h"
#include "common/crc32c.h"

static const uint8_t META_MAGIC[8] = {'T', 'W', 'B', 'T', 'R', 'E', 'E', '1'};
#define META_VERSION 1u
#define META_CRC_AT 124u
#define HDR 48u
#define SLOT 6u /* u16 cell offset | u32 first four key bytes (big-endian, zero-padded) */
#define MAX_DEPTH 40
#define MIN_FRAMES 64u

enum { PT_LEAF = 1, PT_BRANCH = 2, PT_OVERFLOW = 3, PT_FREELIST = 4 };
#define OVF_FLAG 0x80000000u

/* ---------------------------------------------------------------- small vectors */

typedef struct {
    uint64_t *v;
    size_t n, cap;
} u64vec;

static int vpush(u64vec *a, uint64_t x) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        uint64_t *v = realloc(a->v, cap * sizeof *v);
        if (!v) return TW_ERR_NOMEM;
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = x;
    return TW_OK;
}

static void vfree(u64vec *a) {
    free(a->v);
    a->v = NULL;
    a->n = a->cap = 0;
}

/* ---------------------------------------------------------------- state */

typedef struct {
    uint64_t txn, root, count, npages, fl_head, fl_count, root_txn;
    uint32_t depth;
} meta_t;

typedef struct {
    uint64_t pgno;
    int32_t next; /* hash chain */
    int32_t self; /* index in bt->frames */
    uint16_t pin;
    uint8_t ref, dirty, used, listed; /* listed: in bt->dirty_list */
    uint8_t *data;
} frame;

typedef struct {
    uint64_t pgno;
    uint8_t *data;
} overlay_page;

struct tw_btree {
    int fd;
    uint32_t P;
    uint32_t max_key, max_inline;
    int sync, closed, failed;
    char error[TW_BT_ERROR_LEN];
    pthread_mutex_t mu, wmu;

    /* buffer pool */
    frame **frames;
    size_t nframes, budget;
    int32_t *buckets;
    size_t nbuckets;
    size_t hand;
    u64vec dirty_list; /* indices of frames dirtied in this transaction (maybe stale) */

    /* committed state */
    meta_t cur;
    uint64_t file_pages; /* the file holds at least this many pages */
    u64vec free_pages; /* reusable now */
    u64vec pending;    /* pairs (pgno, freeing txn) not yet reusable */
    u64vec fl_pages;   /* pages holding the committed free list */

    /* snapshot registry: pairs (txn, refs) */
    u64vec snaps;

    /* the write transaction */
    int in_txn, tx_changed, bulk;
    meta_t tx;
    uint64_t npages_begin;
    u64vec t_alloc, t_reuse, t_freed;
    uint8_t *scratch;     /* 2P: gathering cells for splits */
    uint8_t *scratch2;    /* P: compaction */
    const uint8_t **cellp; /* cells of a page being split */
    uint32_t *cellsz;
    uint8_t *sep[2];      /* separator keys in flight */
    /* bulk load: one page under construction per level */
    uint8_t *bulk_page[MAX_DEPTH];
    uint64_t bulk_pgno[MAX_DEPTH];
    uint8_t *bulk_last; /* last key added */
    size_t bulk_last_len;
    int bulk_levels;

    /* simulated file system */
    int simfs;
    uint64_t crash_at_sync, crash_seed; /* armed power loss: at the nth sync */
    overlay_page *ov;
    size_t nov, capov;
};

static int fail_errno(tw_btree *bt, const char *what) {
    int err = errno;
    snprintf(bt->error, sizeof bt->error, "%s: %s", what, strerror(err));
    return TW_ERR_IO;
}

static int corrupt(tw_btree *bt, uint64_t pgno, const char *what) {
    snprintf(bt->error, sizeof bt->error, "page %llu (byte offset %llu): %s",
             (unsigned long long)pgno, (unsigned long long)pgno * bt->P, what);
    return TW_ERR_CORRUPT;
}

/* ---------------------------------------------------------------- I/O layer */

static int raw_pread(int fd, uint8_t *buf, size_t len, uint64_t off, size_t *got) {
    size_t done = 0;
    while (done < len) {
        ssize_t r = pread(fd, buf + done, len - done, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (r == 0) break;
        done += (size_t)r;
    }
    *got = done;
    return 0;
}

static int raw_pwrite(int fd, const uint8_t *buf, size_t len, uint64_t off) {
    size_t done = 0;
    while (done < len) {
        ssize_t r = pwrite(fd, buf + done, len - done, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        done += (size_t)r;
    }
    return 0;
}

static overlay_page *ov_find(tw_btree *bt, uint64_t pgno) {
    for (size_t i = bt->nov; i-- > 0;)
        if (bt->ov[i].pgno == pgno) return &bt->ov[i];
    return NULL;
}

/* Reads page pgno; TW_ERR_CORRUPT when the file ends before it. */
static int io_read(tw_btree *bt, uint64_t pgno, uint8_t *buf) {
    if (bt->simfs) {
        overlay_page *o = ov_find(bt, pgno);
        if (o) {
            memcpy(buf, o->data, bt->P);
            return TW_OK;
        }
    }
    size_t got;
    if (raw_pread(bt->fd, buf, bt->P, pgno * bt->P, &got) < 0) return fail_errno(bt, "read");
    if (got < bt->P) return corrupt(bt, pgno, "beyond the end of the file (truncated?)");
    return TW_OK;
}

static int io_write(tw_btree *bt, uint64_t pgno, const uint8_t *buf) {
    if (bt->simfs) {
        overlay_page *o = ov_find(bt, pgno);
        if (!o) {
            if (bt->nov == bt->capov) {
                size_t cap = bt->capov ? bt->capov * 2 : 64;
                overlay_page *v = realloc(bt->ov, cap * sizeof *v);
                if (!v) return TW_ERR_NOMEM;
                bt->ov = v;
                bt->capov = cap;
            }
            o = &bt->ov[bt->nov];
            o->data = malloc(bt->P);
            if (!o->data) return TW_ERR_NOMEM;
            o->pgno = pgno;
            bt->nov++;
        }
        memcpy(o->data, buf, bt->P);
        return TW_OK;
    }
    if (raw_pwrite(bt->fd, buf, bt->P, pgno * bt->P) < 0) return fail_errno(bt, "write");
    return TW_OK;
}

static int power_loss(tw_btree *bt, uint64_t seed);

static int io_sync(tw_btree *bt) {
    if (bt->simfs && bt->crash_at_sync && --bt->crash_at_sync == 0) {
        power_loss(bt, bt->crash_seed);
        return TW_ERR_IO;
    }
    if (bt->simfs) {
        for (size_t i = 0; i < bt->nov; i++) {
            if (raw_pwrite(bt->fd, bt->ov[i].data, bt->P, bt->ov[i].pgno * bt->P) < 0)
                return fail_errno(bt, "write");
            free(bt->ov[i].data);
        }
        bt->nov = 0;
    }
    if (fdatasync(bt->fd) < 0) return fail_errno(bt, "fdatasync");
    return TW_OK;
}

/* ---------------------------------------------------------------- pages */

static inline uint32_t pg_crc(const uint8_t *d, uint32_t P) { return tw_crc32c(0, d + 4, P - 4); }
static inline uint8_t pg_type(const uint8_t *d) { return d[4]; }
static inline uint32_t pg_n(const uint8_t *d) { return tw_load_le32(d + 4) >> 16; }
static inline void pg_set_n(uint8_t *d, uint32_t n) {
    d[6] = (uint8_t)n;
    d[7] = (uint8_t)(n >> 8);
}
static inline uint64_t pg_link(const uint8_t *d) { return tw_load_le64(d + 24); }
static inline void pg_set_link(uint8_t *d, uint64_t v) { tw_store_le64(d + 24, v); }
static inline uint32_t pg_upper(const uint8_t *d) { return tw_load_le32(d + 32); }
static inline uint32_t pg_frag(const uint8_t *d) { return tw_load_le32(d + 36); }
static inline uint64_t pg_txn(const uint8_t *d) { return tw_load_le64(d + 16); }
static inline uint32_t slot(const uint8_t *d, uint32_t i) {
    return (uint32_t)d[HDR + SLOT * i] | ((uint32_t)d[HDR + SLOT * i + 1] << 8);
}
static inline uint32_t slot_prefix(const uint8_t *d, uint32_t i) { return tw_load_le32(d + HDR + SLOT * i + 2); }

/* The first four bytes of a key as a number: keys whose prefixes differ
 * compare like their prefixes, so a search reads cells only on a tie. */
static inline uint32_t key_prefix(const uint8_t *k, size_t len) {
    if (len >= 4) return ((uint32_t)k[0] << 24) | ((uint32_t)k[1] << 16) | ((uint32_t)k[2] << 8) | k[3];
    uint32_t p = 0;
    for (size_t i = 0; i < 4; i++) p = (p << 8) | (i < len ? k[i] : 0u);
    return p;
}

static void page_init(uint8_t *d, uint32_t P, uint8_t type, uint64_t pgno, uint64_t txn) {
    memset(d, 0, HDR);
    d[4] = type;
    tw_store_le64(d + 8, pgno);
    tw_store_le64(d + 16, txn);
    tw_store_le32(d + 32, P);
}

/* Cells. Leaf: u16 klen | u32 vlen | key | value-or-u64; branch: u16 klen | u64 child | key. */
static inline uint32_t cell_klen(const uint8_t *c) { return (uint32_t)c[0] | ((uint32_t)c[1] << 8); }
static inline const uint8_t *leaf_key(const uint8_t *c) { return c + 6; }
static inline uint32_t leaf_vfield(const uint8_t *c) { return tw_load_le32(c + 2); }
static inline uint32_t leaf_cell_size(const uint8_t *c) {
    uint32_t vf = leaf_vfield(c);
    return 6 + cell_klen(c) + ((vf & OVF_FLAG) ? 16 : vf);
}
static inline const uint8_t *branch_key(const uint8_t *c) { return c + 18; }
static inline uint64_t branch_child_of(const uint8_t *c) { return tw_load_le64(c + 2); }
static inline uint64_t branch_txn_of(const uint8_t *c) { return tw_load_le64(c + 10); }
static inline uint32_t branch_cell_size(const uint8_t *c) { return 18 + cell_klen(c); }
static inline uint32_t cell_size(uint8_t type, const uint8_t *c) {
    return type == PT_LEAF ? leaf_cell_size(c) : branch_cell_size(c);
}
static inline const uint8_t *cell_key(uint8_t type, const uint8_t *c) {
    return type == PT_LEAF ? leaf_key(c) : branch_key(c);
}

/* Points slot i at the cell at off (already in place) and records its key prefix. */
static inline void set_slot(uint8_t *d, uint32_t i, uint32_t off) {
    const uint8_t *c = d + off;
    d[HDR + SLOT * i] = (uint8_t)off;
    d[HDR + SLOT * i + 1] = (uint8_t)(off >> 8);
    tw_store_le32(d + HDR + SLOT * i + 2, key_prefix(cell_key(pg_type(d), c), cell_klen(c)));
}

static inline int keycmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen) {
    size_t m = alen < blen ? alen : blen;
    int r = m ? memcmp(a, b, m) : 0;
    if (r) return r;
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

/* First index whose key is >= key (exclusive: > key); *exact when equal found. */
static uint32_t page_search(const uint8_t *d, const uint8_t *key, size_t klen, int upper, int *exact) {
    uint8_t type = pg_type(d);
    uint32_t lo = 0, hi = pg_n(d), want = key_prefix(key, klen);
    *exact = 0;
    while (lo < hi) {
        uint32_t mid = (lo + hi) >> 1, have = slot_prefix(d, mid);
        int r;
        if (have != want) {
            r = have < want ? -1 : 1;
        } else {
            const uint8_t *c = d + slot(d, mid);
            r = keycmp(cell_key(type, c), cell_klen(c), key, klen);
        }
        if (r < 0 || (upper && r == 0)) {
            lo = mid + 1;
        } else {
            if (r == 0) *exact = 1;
            hi = mid;
        }
    }
    return lo;
}

/* The child of a branch that holds key: index -1 (leftmost) .. n-1. */
static inline int branch_index(const uint8_t *d, const uint8_t *key, size_t klen) {
    int exact;
    return (int)page_search(d, key, klen, 1, &exact) - 1;
}

static inline uint64_t branch_child(const uint8_t *d, int i) {
    return i < 0 ? pg_link(d) : branch_child_of(d + slot(d, (uint32_t)i));
}

/* The transaction that wrote child i: a read that finds another is a lost write. */
static inline uint64_t branch_child_txn(const uint8_t *d, int i) {
    return i < 0 ? tw_load_le64(d + 40) : branch_txn_of(d + slot(d, (uint32_t)i));
}

static inline void set_branch_child(uint8_t *d, int i, uint64_t child, uint64_t txn) {
    if (i < 0) {
        pg_set_link(d, child);
        tw_store_le64(d + 40, txn);
    } else {
        tw_store_le64(d + slot(d, (uint32_t)i) + 2, child);
        tw_store_le64(d + slot(d, (uint32_t)i) + 10, txn);
    }
}

static inline uint32_t page_free_contig(const uint8_t *d) { return pg_upper(d) - HDR - SLOT * pg_n(d); }
static inline uint32_t page_used(const uint8_t *d, uint32_t P) {
    return P - pg_upper(d) - pg_frag(d) + SLOT * pg_n(d);
}

/* Validates a leaf or branch page's layout so later code can trust it. */
static int page_validate(tw_btree *bt, uint64_t pgno, const uint8_t *d) {
    uint32_t P = bt->P, n = pg_n(d), upper = pg_upper(d), frag = pg_frag(d);
    uint8_t type = pg_type(d);
    if (upper > P || HDR + SLOT * n > upper || frag > P - upper) return corrupt(bt, pgno, "bad page layout");
    uint64_t total = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t off = slot(d, i);
        if (off < upper || off + (type == PT_LEAF ? 6u : 18u) > P) return corrupt(bt, pgno, "bad cell offset");
        const uint8_t *c = d + off;
        uint32_t klen = cell_klen(c);
        if (klen == 0 || klen > bt->max_key) return corrupt(bt, pgno, "bad key length");
        if (type == PT_LEAF) {
            uint32_t vf = leaf_vfield(c);
            if (!(vf & OVF_FLAG) && klen + vf > bt->max_inline) return corrupt(bt, pgno, "bad value length");
        }
        uint32_t sz = cell_size(type, c);
        if ((uint64_t)off + sz > P) return corrupt(bt, pgno, "cell runs past the page");
        if (slot_prefix(d, i) != key_prefix(cell_key(type, c), klen)) return corrupt(bt, pgno, "slot prefix differs from its key");
        total += sz;
    }
    if (total + frag != P - upper) return corrupt(bt, pgno, "cell sizes do not add up");
    return TW_OK;
}

/* ---------------------------------------------------------------- buffer pool */

static inline size_t hslot(const tw_btree *bt, uint64_t pgno) {
    return (size_t)((pgno * 0x9E3779B97F4A7C15ull) >> 20) & (bt->nbuckets - 1);
}

static frame *pool_lookup(tw_btree *bt, uint64_t pgno) {
    int32_t i = bt->buckets[hslot(bt, pgno)];
    while (i >= 0) {
        frame *f = bt->frames[i];
        if (f->pgno == pgno) return f;
        i = f->next;
    }
    return NULL;
}

static void pool_unlink(tw_btree *bt, frame *f, int32_t idx) {
    int32_t *p = &bt->buckets[hslot(bt, f->pgno)];
    while (*p >= 0) {
        if (*p == idx) {
            *p = f->next;
            break;
        }
        p = &bt->frames[*p]->next;
    }
    f->used = 0;
    f->dirty = 0;
}

static void page_seal(tw_btree *bt, uint8_t *d) { tw_store_le32(d, pg_crc(d, bt->P)); }

static int pool_rehash(tw_btree *bt, size_t nbuckets) {
    int32_t *b = malloc(nbuckets * sizeof *b);
    if (!b) return TW_ERR_NOMEM;
    free(bt->buckets);
    bt->buckets = b;
    bt->nbuckets = nbuckets;
    for (size_t i = 0; i < nbuckets; i++) b[i] = -1;
    for (size_t i = 0; i < bt->nframes; i++) {
        frame *f = bt->frames[i];
        if (!f->used) continue;
        size_t h = hslot(bt, f->pgno);
        f->next = b[h];
        b[h] = (int32_t)i;
    }
    return TW_OK;
}

static int pool_add_frame(tw_btree *bt) {
    if ((bt->nframes & (bt->nframes - 1)) == 0 || bt->nframes == 0) {
        size_t cap = bt->nframes ? bt->nframes * 2 : MIN_FRAMES;
        frame **v = realloc(bt->frames, cap * sizeof *v);
        if (!v) return TW_ERR_NOMEM;
        bt->frames = v;
    }
    frame *f = calloc(1, sizeof *f);
    if (!f) return TW_ERR_NOMEM;
    f->data = malloc(bt->P);
    if (!f->data) {
        free(f);
        return TW_ERR_NOMEM;
    }
    f->next = -1;
    f->self = (int32_t)bt->nframes;
    bt->frames[bt->nframes++] = f;
    if (bt->nframes * 2 > bt->nbuckets) return pool_rehash(bt, bt->nbuckets * 2);
    return TW_OK;
}

/* A frame to reuse: unused, or clean and unpinned (clock), or dirty and
 * unpinned (written out first: dirty pages belong to the open transaction and
 * no commit refers to them, so writing one early is harmless). */
static int pool_victim(tw_btree *bt, int32_t *out) {
    if (bt->nframes < bt->budget) {
        int rc = pool_add_frame(bt);
        if (rc) return rc;
        *out = (int32_t)(bt->nframes - 1);
        return TW_OK;
    }
    for (size_t step = 0; step < 3 * bt->nframes; step++) {
        size_t i = bt->hand;
        bt->hand = (bt->hand + 1) % bt->nframes;
        frame *f = bt->frames[i];
        if (!f->used) {
            *out = (int32_t)i;
            return TW_OK;
        }
        if (f->pin) continue;
        if (f->ref) {
            f->ref = 0;
            continue;
        }
        if (f->dirty) {
            page_seal(bt, f->data);
            int rc = io_write(bt, f->pgno, f->data);
            if (rc) return rc;
            f->dirty = 0;
        }
        pool_unlink(bt, f, (int32_t)i);
        *out = (int32_t)i;
        return TW_OK;
    }
    /* everything pinned: grow past the budget rather than fail */
    int rc = pool_add_frame(bt);
    if (rc) return rc;
    *out = (int32_t)(bt->nframes - 1);
    return TW_OK;
}

static frame *pool_install(tw_btree *bt, int32_t idx, uint64_t pgno) {
    frame *f = bt->frames[idx];
    f->pgno = pgno;
    f->used = 1;
    f->ref = 1;
    f->dirty = 0;
    f->pin = 0;
    size_t h = hslot(bt, pgno);
    f->next = bt->buckets[h];
    bt->buckets[h] = idx;
    return f;
}

/* Page pgno of type `type` (0: any), loaded and verified if not cached.
 * want: the transaction its parent says wrote it (0: not checked). */
static int pg_get(tw_btree *bt, uint64_t pgno, uint8_t type, uint64_t want, frame **out) {
    frame *f = pool_lookup(bt, pgno);
    if (!f) {
        if (pgno < 2 || pgno >= (bt->in_txn ? bt->tx.npages : bt->cur.npages))
            return corrupt(bt, pgno, "page number out of range");
        int32_t idx;
        int rc = pool_victim(bt, &idx);
        if (rc) return rc;
        uint8_t *d = bt->frames[idx]->data;
        rc = io_read(bt, pgno, d);
        if (rc) return rc;
        if (tw_load_le32(d) != pg_crc(d, bt->P)) return corrupt(bt, pgno, "checksum mismatch");
        if (tw_load_le64(d + 8) != pgno) return corrupt(bt, pgno, "page holds another page's number");
        uint8_t t = pg_type(d);
        if (t == PT_LEAF || t == PT_BRANCH) {
            rc = page_validate(bt, pgno, d);
            if (rc) return rc;
        } else if (t != PT_OVERFLOW && t != PT_FREELIST) {
            return corrupt(bt, pgno, "unknown page type");
        }
        f = pool_install(bt, idx, pgno);
    }
    f->ref = 1;
    if (want && pg_txn(f->data) != want) {
        char what[128];
        snprintf(what, sizeof what,
                 "stale page: written by transaction %llu, its parent expects %llu (a lost write)",
                 (unsigned long long)pg_txn(f->data), (unsigned long long)want);
        return corrupt(bt, pgno, what);
    }
    if (type && pg_type(f->data) != type) {
        static const char *names[] = {"?", "leaf", "branch", "overflow", "free-list"};
        char what[64];
        snprintf(what, sizeof what, "expected a %s page, found a %s page", names[type],
                 pg_type(f->data) <= 4 ? names[pg_type(f->data)] : "?");
        return corrupt(bt, pgno, what);
    }
    *out = f;
    return TW_OK;
}

static inline void mark_dirty(tw_btree *bt, frame *f) {
    f->dirty = 1;
    if (f->listed) return;
    if (vpush(&bt->dirty_list, (uint64_t)f->self) == TW_OK) {
        f->listed = 1;
    } else {
        /* a page the commit would not write: refuse to commit at all */
        bt->failed = 1;
        snprintf(bt->error, sizeof bt->error, "out of memory tracking dirty pages");
    }
}

/* A frame for a fresh page of this transaction, zeroed header, dirty. */
static int pg_new(tw_btree *bt, uint64_t pgno, uint8_t type, frame **out) {
    frame *f = pool_lookup(bt, pgno);
    if (!f) {
        int32_t idx;
        int rc = pool_victim(bt, &idx);
        if (rc) return rc;
        f = pool_install(bt, idx, pgno);
    }
    f->ref = 1;
    mark_dirty(bt, f);
    page_init(f->data, bt->P, type, pgno, bt->tx.txn);
    *out = f;
    return TW_OK;
}

static void pool_drop(tw_btree *bt, uint64_t pgno) {
    frame *f = pool_lookup(bt, pgno);
    if (f) pool_unlink(bt, f, f->self);
}

/* ---------------------------------------------------------------- snapshots */

static uint64_t oldest_snapshot(const tw_btree *bt) {
    uint64_t m = UINT64_MAX;
    for (size_t i = 0; i < bt->snaps.n; i += 2)
        if (bt->snaps.v[i] < m) m = bt->snaps.v[i];
    return m;
}

int tw_bt_snapshot_begin(tw_btree *bt, tw_bt_snapshot *snap) {
    pthread_mutex_lock(&bt->mu);
    if (bt->closed || bt->failed) {
        pthread_mutex_unlock(&bt->mu);
        return TW_ERR_IO;
    }
    snap->txn = bt->cur.txn;
    snap->root = bt->cur.root;
    snap->root_txn = bt->cur.root_txn;
    snap->count = bt->cur.count;
    snap->depth = bt->cur.depth;
    snap->registered = 1;
    int rc = TW_OK;
    size_t i;
    for (i = 0; i < bt->snaps.n; i += 2)
        if (bt->snaps.v[i] == snap->txn) break;
    if (i < bt->snaps.n)
        bt->snaps.v[i + 1]++;
    else if ((rc = vpush(&bt->snaps, snap->txn)) == TW_OK)
        rc = vpush(&bt->snaps, 1);
    if (rc) snap->registered = 0;
    pthread_mutex_unlock(&bt->mu);
    return rc;
}

void tw_bt_snapshot_end(tw_btree *bt, tw_bt_snapshot *snap) {
    if (!snap->registered) return;
    pthread_mutex_lock(&bt->mu);
    for (size_t i = 0; i < bt->snaps.n; i += 2) {
        if (bt->snaps.v[i] != snap->txn) continue;
        if (--bt->snaps.v[i + 1] == 0) {
            bt->snaps.v[i] = bt->snaps.v[bt->snaps.n - 2];
            bt->snaps.v[i + 1] = bt->snaps.v[bt->snaps.n - 1];
            bt->snaps.n -= 2;
        }
        break;
    }
    snap->registered = 0;
    pthread_mutex_unlock(&bt->mu);
}

/* ---------------------------------------------------------------- meta */

static void meta_encode(const tw_btree *bt, const meta_t *m, uint8_t *d) {
    memset(d, 0, bt->P);
    memcpy(d, META_MAGIC, 8);
    tw_store_le32(d + 8, META_VERSION);
    tw_store_le32(d + 12, bt->P);
    tw_store_le64(d + 16, m->txn);
    tw_store_le64(d + 24, m->root);
    tw_store_le64(d + 32, m->count);
    tw_store_le64(d + 40, m->npages);
    tw_store_le64(d + 48, m->fl_head);
    tw_store_le64(d + 56, m->fl_count);
    tw_store_le32(d + 64, m->depth);
    tw_store_le64(d + 68, m->root_txn);
    tw_store_le32(d + META_CRC_AT, tw_crc32c(0, d, META_CRC_AT));
}

/* 1 when d holds a valid meta (its page size in *P). */
static int meta_decode(const uint8_t *d, meta_t *m, uint32_t *P) {
    if (memcmp(d, META_MAGIC, 8) != 0) return 0;
    if (tw_load_le32(d + META_CRC_AT) != tw_crc32c(0, d, META_CRC_AT)) return 0;
    if (tw_load_le32(d + 8) != META_VERSION) return 0;
    *P = tw_load_le32(d + 12);
    m->txn = tw_load_le64(d + 16);
    m->root = tw_load_le64(d + 24);
    m->count = tw_load_le64(d + 32);
    m->npages = tw_load_le64(d + 40);
    m->fl_head = tw_load_le64(d + 48);
    m->fl_count = tw_load_le64(d + 56);
    m->depth = tw_load_le32(d + 64);
    m->root_txn = tw_load_le64(d + 68);
    if (*P < TW_BT_MIN_PAGE || *P > TW_BT_MAX_PAGE || (*P & (*P - 1))) return 0;
    if (m->npages < 2 || m->depth > MAX_DEPTH || (m->root == 0) != (m->depth == 0)) return 0;
    return 1;
}

int tw_bt_create_file(const char *path, uint32_t page_size, char *error, size_t error_len) {
    if (page_size < TW_BT_MIN_PAGE || page_size > TW_BT_MAX_PAGE || (page_size & (page_size - 1))) {
        snprintf(error, error_len, "page size %u is not a power of two in [512, 65536]", page_size);
        return TW_ERR_INVALID;
    }
    uint8_t *d = calloc(2, page_size);
    if (!d) return TW_ERR_NOMEM;
    tw_btree tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.P = page_size;
    meta_t m;
    memset(&m, 0, sizeof m);
    m.npages = 2;
    meta_encode(&tmp, &m, d);
    meta_encode(&tmp, &m, d + page_size);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int rc = TW_OK;
    if (fd < 0 || raw_pwrite(fd, d, 2 * (size_t)page_size, 0) < 0 || fsync(fd) < 0) {
        snprintf(error, error_len, "%s: %s", path, strerror(errno));
        rc = TW_ERR_IO;
    }
    if (fd >= 0) close(fd);
    free(d);
    return rc;
}

/* ---------------------------------------------------------------- open / close */

static int load_freelist(tw_btree *bt) {
    uint64_t pg = bt->cur.fl_head, seen = 0;
    uint32_t per = (bt->P - HDR) / 8;
    while (pg) {
        if (bt->fl_pages.n > bt->cur.npages) return corrupt(bt, pg, "free-list chain loops");
        frame *f;
        int rc = pg_get(bt, pg, PT_FREELIST, bt->cur.txn, &f);
        if (rc) return rc;
        uint32_t n = pg_upper(f->data);
        if (n > per) return corrupt(bt, pg, "free-list page claims too many entries");
        if ((rc = vpush(&bt->fl_pages, pg))) return rc;
        for (uint32_t i = 0; i < n; i++) {
            uint64_t p = tw_load_le64(f->data + HDR + 8 * i);
            if (p < 2 || p >= bt->cur.npages) return corrupt(bt, pg, "free-list entry out of range");
            if ((rc = vpush(&bt->free_pages, p))) return rc;
        }
        seen += n;
        pg = pg_link(f->data);
    }
    if (seen != bt->cur.fl_count) return corrupt(bt, bt->cur.fl_head, "free-list length differs from the meta page");
    return TW_OK;
}

int tw_bt_open(const char *path, uint32_t page_size, uint64_t cache_bytes, int sync,
               int simulate_fs, tw_btree **out, char *error, size_t error_len) {
    *out = NULL;
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        snprintf(error, error_len, "%s: %s", path, strerror(errno));
        return errno == ENOENT ? TW_BT_NOTFOUND : TW_ERR_IO;
    }
    /* Meta 0 names the page size; if it is damaged, look for meta 1 at every
     * possible page size. */
    uint8_t head[128];
    meta_t m0, m1;
    uint32_t P0 = 0, P1 = 0;
    size_t got;
    int ok0 = 0, ok1 = 0;
    if (raw_pread(fd, head, sizeof head, 0, &got) == 0 && got == sizeof head) ok0 = meta_decode(head, &m0, &P0);
    for (uint32_t p = TW_BT_MIN_PAGE; p <= TW_BT_MAX_PAGE && !ok1; p <<= 1) {
        if (ok0 && p != P0) continue;
        if (raw_pread(fd, head, sizeof head, p, &got) == 0 && got == sizeof head) {
            ok1 = meta_decode(head, &m1, &P1) && P1 == p;
        }
    }
    if (!ok0 && !ok1) {
        close(fd);
        snprintf(error, error_len, "%s: not a trusswork B-tree file, or both meta pages are damaged", path);
        return TW_ERR_CORRUPT;
    }
    const meta_t *m = ok0 && (!ok1 || m0.txn >= m1.txn) ? &m0 : &m1;
    uint32_t P = m == &m0 ? P0 : P1;
    if (page_size && P != page_size) {
        close(fd);
        snprintf(error, error_len, "%s: the file has %u-byte pages, not %u", path, P, page_size);
        return TW_ERR_INVALID;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        snprintf(error, error_len, "%s: %s", path, strerror(errno));
        close(fd);
        return TW_ERR_IO;
    }
    if ((uint64_t)st.st_size / P < m->npages) {
        snprintf(error, error_len,
                 "%s: the meta page of transaction %llu says the tree spans %llu pages, but the file "
                 "ends in page %llu (byte offset %llu): truncated?",
                 path, (unsigned long long)m->txn, (unsigned long long)m->npages,
                 (unsigned long long)((uint64_t)st.st_size / P), (unsigned long long)st.st_size);
        close(fd);
        return TW_ERR_CORRUPT;
    }
    tw_btree *bt = calloc(1, sizeof *bt);
    if (!bt) {
        close(fd);
        return TW_ERR_NOMEM;
    }
    bt->file_pages = (uint64_t)st.st_size / P;
    bt->fd = fd;
    bt->P = P;
    bt->max_key = P / 8;
    bt->max_inline = P / 4 - 8; /* key + value bytes kept in the leaf */
    bt->sync = sync;
    bt->simfs = simulate_fs;
    bt->cur = *m;
    pthread_mutex_init(&bt->mu, NULL);
    pthread_mutex_init(&bt->wmu, NULL);
    uint64_t frames = cache_bytes / P;
    bt->budget = frames < MIN_FRAMES ? MIN_FRAMES : (size_t)frames;
    int rc = TW_OK;
    bt->scratch = malloc(2 * (size_t)P);
    bt->scratch2 = malloc(P);
    bt->sep[0] = malloc(P);
    bt->sep[1] = malloc(P);
    bt->bulk_last = malloc(P);
    bt->cellp = malloc((P / 8 + 2) * sizeof *bt->cellp);
    bt->cellsz = malloc((P / 8 + 2) * sizeof *bt->cellsz);
    if (!bt->scratch || !bt->scratch2 || !bt->sep[0] || !bt->sep[1] || !bt->bulk_last || !bt->cellp ||
        !bt->cellsz)
        rc = TW_ERR_NOMEM;
    if (!rc) rc = pool_rehash(bt, 2 * MIN_FRAMES);
    if (!rc) rc = load_freelist(bt);
    if (rc) {
        snprintf(error, error_len, "%s: %s", path, rc == TW_ERR_NOMEM ? "out of memory" : bt->error);
        tw_bt_free(bt);
        return rc;
    }
    *out = bt;
    return TW_OK;
}

static void txn_reset(tw_btree *bt);

int tw_bt_close(tw_btree *bt) {
    pthread_mutex_lock(&bt->mu);
    if (bt->closed) {
        pthread_mutex_unlock(&bt->mu);
        return TW_OK;
    }
    bt->closed = 1;
    int rc = TW_OK;
    if (bt->simfs && bt->nov && !bt->failed) rc = io_sync(bt);
    if (bt->fd >= 0) close(bt->fd);
    bt->fd = -1;
    pthread_mutex_unlock(&bt->mu);
    return rc;
}

void tw_bt_free(tw_btree *bt) {
    if (!bt) return;
    if (!bt->closed) tw_bt_close(bt);
    /* a transaction left open (the caller is its thread): release its lock */
    if (bt->in_txn) {
        bt->in_txn = 0;
        pthread_mutex_unlock(&bt->wmu);
    }
    for (size_t i = 0; i < bt->nframes; i++) {
        free(bt->frames[i]->data);
        free(bt->frames[i]);
    }
    for (size_t i = 0; i < bt->nov; i++) free(bt->ov[i].data);
    for (int i = 0; i < MAX_DEPTH; i++) free(bt->bulk_page[i]);
    free(bt->ov);
    free(bt->frames);
    free(bt->buckets);
    vfree(&bt->free_pages);
    vfree(&bt->pending);
    vfree(&bt->fl_pages);
    vfree(&bt->snaps);
    vfree(&bt->dirty_list);
    vfree(&bt->t_alloc);
    vfree(&bt->t_reuse);
    vfree(&bt->t_freed);
    free(bt->scratch);
    free(bt->scratch2);
    free(bt->sep[0]);
    free(bt->sep[1]);
    free(bt->bulk_last);
    free(bt->cellp);
    free(bt->cellsz);
    pthread_mutex_destroy(&bt->mu);
    pthread_mutex_destroy(&bt->wmu);
    free(bt);
}

void tw_bt_last_error(tw_btree *bt, char *out, size_t out_len) {
    pthread_mutex_lock(&bt->mu);
    snprintf(out, out_len, "%s", bt->error);
    pthread_mutex_unlock(&bt->mu);
}

uint32_t tw_bt_page_size(const tw_btree *bt) { return bt->P; }
uint32_t tw_bt_max_key(const tw_btree *bt) { return bt->max_key; }

static int usable(tw_btree *bt) {
    if (bt->closed) {
        snprintf(bt->error, sizeof bt->error, "the tree is closed");
        return TW_ERR_IO;
    }
    if (bt->failed) return TW_ERR_IO;
    return TW_OK;
}

/* ---------------------------------------------------------------- reading */

/* The root and depth a read sees. */
static void read_view(tw_btree *bt, const tw_bt_snapshot *snap, int in_txn, uint64_t *root, uint64_t *root_txn,
                      uint32_t *depth) {
    if (snap) {
        *root = snap->root;
        *root_txn = snap->root_txn;
        *depth = snap->depth;
    } else if (in_txn && bt->in_txn) {
        *root = bt->tx.root;
        *root_txn = bt->tx.root_txn;
        *depth = bt->tx.depth;
    } else {
        *root = bt->cur.root;
        *root_txn = bt->cur.root_txn;
        *depth = bt->cur.depth;
    }
}

/* Copies an overflow value of vlen bytes starting at page first into buf. */
static int read_overflow(tw_btree *bt, uint64_t first, uint64_t txn, uint8_t *buf, size_t vlen) {
    size_t done = 0;
    uint64_t pg = first;
    while (done < vlen) {
        if (!pg) return corrupt(bt, first, "overflow chain ends early");
        frame *f;
        int rc = pg_get(bt, pg, PT_OVERFLOW, txn, &f);
        if (rc) return rc;
        uint32_t len = pg_upper(f->data);
        if (len > bt->P - HDR || len > vlen - done) return corrupt(bt, pg, "bad overflow length");
        memcpy(buf + done, f->data + HDR, len);
        done += len;
        pg = pg_link(f->data);
        if (len == 0) return corrupt(bt, pg, "empty overflow page");
    }
    return TW_OK;
}

static int get_locked(tw_btree *bt, uint64_t root, uint64_t root_txn, uint32_t depth, const uint8_t *key,
                      size_t klen, uint8_t *buf, size_t cap, size_t *vlen) {
    if (!root) return TW_BT_NOTFOUND;
    uint64_t pg = root, want = root_txn;
    frame *f;
    int rc;
    for (uint32_t lvl = 0; lvl + 1 < depth; lvl++) {
        if ((rc = pg_get(bt, pg, PT_BRANCH, want, &f))) return rc;
        int i = branch_index(f->data, key, klen);
        pg = branch_child(f->data, i);
        want = branch_child_txn(f->data, i);
    }
    if ((rc = pg_get(bt, pg, PT_LEAF, want, &f))) return rc;
    int exact;
    uint32_t i = page_search(f->data, key, klen, 0, &exact);
    if (!exact) return TW_BT_NOTFOUND;
    const uint8_t *c = f->data + slot(f->data, i);
    uint32_t vf = leaf_vfield(c);
    size_t len = vf & ~OVF_FLAG;
    *vlen = len;
    if (len > cap) return TW_ERR_NOSPACE;
    if (vf & OVF_FLAG) {
        const uint8_t *ref = leaf_key(c) + cell_klen(c);
        return read_overflow(bt, tw_load_le64(ref), tw_load_le64(ref + 8), buf, len);
    }
    if (len) memcpy(buf, leaf_key(c) + cell_klen(c), len);
    return TW_OK;
}

int tw_bt_get(tw_btree *bt, const tw_bt_snapshot *snap, int in_txn, const uint8_t *key, size_t klen,
              uint8_t *buf, size_t cap, size_t *vlen) {
    pthread_mutex_lock(&bt->mu);
    int rc = usable(bt);
    if (!rc) {
        uint64_t root, root_txn;
        uint32_t depth;
        read_view(bt, snap, in_txn, &root, &root_txn, &depth);
        rc = get_locked(bt, root, root_txn, depth, key, klen, buf, cap, vlen);
    }
    pthread_mutex_unlock(&bt->mu);
    return rc;
}

/* A cursor: the path of (page, index) from the root to a leaf position. */
typedef struct {
    uint64_t pg[MAX_DEPTH];
    uint64_t txn[MAX_DEPTH]; /* the transaction the parent says wrote pg */
    int idx[MAX_DEPTH];      /* branch: child index -1..n-1; leaf: cell index */
    uint32_t depth;
} cursor;

/* Descends to the leftmost (dir > 0) or rightmost (dir < 0) leaf below level lvl. */
static int cur_descend(tw_btree *bt, cursor *c, uint32_t lvl, int dir) {
    for (; lvl + 1 < c->depth; lvl++) {
        frame *f;
        int rc = pg_get(bt, c->pg[lvl], PT_BRANCH, c->txn[lvl], &f);
        if (rc) return rc;
        int i = dir > 0 ? -1 : (int)pg_n(f->data) - 1;
        c->idx[lvl] = i;
        c->pg[lvl + 1] = branch_child(f->data, i);
        c->txn[lvl + 1] = branch_child_txn(f->data, i);
    }
    frame *f;
    int rc = pg_get(bt, c->pg[lvl], PT_LEAF, c->txn[lvl], &f);
    if (rc) return rc;
    c->idx[lvl] = dir > 0 ? 0 : (int)pg_n(f->data) - 1;
    return TW_OK;
}

/* Moves to the next leaf (dir > 0) or the previous one; *end when none. */
static int cur_step_leaf(tw_btree *bt, cursor *c, int dir, int *end) {
    int lvl = (int)c->depth - 2;
    for (; lvl >= 0; lvl--) {
        frame *f;
        int rc = pg_get(bt, c->pg[lvl], PT_BRANCH, c->txn[lvl], &f);
        if (rc) return rc;
        int n = (int)pg_n(f->data);
        int i = c->idx[lvl] + dir;
        if (i >= -1 && i < n) {
            c->idx[lvl] = i;
            c->pg[lvl + 1] = branch_child(f->data, i);
            c->txn[lvl + 1] = branch_child_txn(f->data, i);
            *end = 0;
            return cur_descend(bt, c, (uint32_t)lvl + 1, dir);
        }
    }
    *end = 1;
    return TW_OK;
}

/* Positions at the first key >= key (or > key when excl), forward; or, with
 * dir < 0, at the last key < key (<= key when !excl). key NULL: the edge. */
static int cur_seek(tw_btree *bt, cursor *c, uint64_t root, uint64_t root_txn, uint32_t depth, const uint8_t *key,
                    size_t klen, int excl, int dir, int *end) {
    c->depth = depth;
    *end = 0;
    if (!root) {
        *end = 1;
        return TW_OK;
    }
    c->pg[0] = root;
    c->txn[0] = root_txn;
    if (!key) return cur_descend(bt, c, 0, dir);
    frame *f;
    int rc;
    uint32_t lvl = 0;
    for (; lvl + 1 < depth; lvl++) {
        if ((rc = pg_get(bt, c->pg[lvl], PT_BRANCH, c->txn[lvl], &f))) return rc;
        int i = branch_index(f->data, key, klen);
        c->idx[lvl] = i;
        c->pg[lvl + 1] = branch_child(f->data, i);
        c->txn[lvl + 1] = branch_child_txn(f->data, i);
    }
    if ((rc = pg_get(bt, c->pg[lvl], PT_LEAF, c->txn[lvl], &f))) return rc;
    int exact;
    /* forward: first >= key (excl: > key); reverse: last < key (incl: <= key) */
    int upper = dir > 0 ? excl : !excl;
    int pos = (int)page_search(f->data, key, klen, upper, &exact);
    if (dir < 0) pos--;
    c->idx[lvl] = pos;
    return TW_OK;
}

int tw_bt_scan(tw_btree *bt, const tw_bt_snapshot *snap, int in_txn, const tw_bt_range *r, uint8_t *buf,
               size_t cap, size_t max_items, size_t *n, size_t *used, int *done) {
    *n = 0;
    *used = 0;
    *done = 0;
    pthread_mutex_lock(&bt->mu);
    int rc = usable(bt);
    if (rc) goto out;
    uint64_t root, root_txn;
    uint32_t depth;
    read_view(bt, snap, in_txn, &root, &root_txn, &depth);
    cursor c;
    int end, dir = r->reverse ? -1 : 1;
    if (dir > 0)
        rc = cur_seek(bt, &c, root, root_txn, depth, r->lo, r->lo_len, r->lo_excl, 1, &end);
    else
        rc = cur_seek(bt, &c, root, root_txn, depth, r->hi, r->hi_len, r->hi_excl, -1, &end);
    if (rc) goto out;
    uint32_t leaf = depth ? depth - 1 : 0;
    frame *f = NULL; /* the current leaf; fetched again after anything that may evict it */
    while (!end && *n < max_items) {
        if (!f && (rc = pg_get(bt, c.pg[leaf], PT_LEAF, c.txn[leaf], &f))) goto out;
        int cnt = (int)pg_n(f->data);
        if (c.idx[leaf] < 0 || c.idx[leaf] >= cnt) {
            f = NULL;
            if ((rc = cur_step_leaf(bt, &c, dir, &end))) goto out;
            continue;
        }
        const uint8_t *cell = f->data + slot(f->data, (uint32_t)c.idx[leaf]);
        uint32_t klen = cell_klen(cell);
        const uint8_t *k = leaf_key(cell);
        if (dir > 0 && r->hi) {
            int cmp = keycmp(k, klen, r->hi, r->hi_len);
            if (cmp > 0 || (cmp == 0 && r->hi_excl)) {
                end = 1;
                break;
            }
        }
        if (dir < 0 && r->lo) {
            int cmp = keycmp(k, klen, r->lo, r->lo_len);
            if (cmp < 0 || (cmp == 0 && r->lo_excl)) {
                end = 1;
                break;
            }
        }
        uint32_t vf = leaf_vfield(cell);
        size_t vlen = r->keys_only ? 0 : (vf & ~OVF_FLAG);
        size_t need = 8 + klen + vlen;
        if (*used + need > cap) {
            if (*n == 0) {
                *used = need;
                rc = TW_ERR_NOSPACE;
            }
            goto out;
        }
        uint8_t *o = buf + *used;
        uint32_t kl32 = klen, vl32 = (uint32_t)vlen;
        memcpy(o, &kl32, 4);
        memcpy(o + 4, &vl32, 4);
        memcpy(o + 8, k, klen);
        if (vlen) {
            if (vf & OVF_FLAG) {
                if ((rc = read_overflow(bt, tw_load_le64(k + klen), tw_load_le64(k + klen + 8), o + 8 + klen, vlen)))
                    goto out;
                f = NULL;
            } else {
                memcpy(o + 8 + klen, k + klen, vlen);
            }
        }
        *used += need;
        (*n)++;
        c.idx[leaf] += dir;
    }
    *done = end;
out:
    pthread_mutex_unlock(&bt->mu);
    return rc;
}

int tw_bt_count(tw_btree *bt, const tw_bt_snapshot *snap, int in_txn, const tw_bt_range *r, uint64_t *count) {
    *count = 0;
    pthread_mutex_lock(&bt->mu);
    int rc = usable(bt);
    if (rc) goto out;
    uint64_t root, root_txn;
    uint32_t depth;
    read_view(bt, snap, in_txn, &root, &root_txn, &depth);
    cursor c;
    int end;
    if ((rc = cur_seek(bt, &c, root, root_txn, depth, r->lo, r->lo_len, r->lo_excl, 1, &end))) goto out;
    uint32_t leaf = depth ? depth - 1 : 0;
    while (!end) {
        frame *f;
        if ((rc = pg_get(bt, c.pg[leaf], PT_LEAF, c.txn[leaf], &f))) goto out;
        int cnt = (int)pg_n(f->data);
        int i = c.idx[leaf] < 0 ? 0 : c.idx[leaf];
        if (r->hi && cnt > i) {
            const uint8_t *last = f->data + slot(f->data, (uint32_t)cnt - 1);
            if (keycmp(leaf_key(last), cell_klen(last), r->hi, r->hi_len) >= 0) {
                int exact;
                int stop = (int)page_search(f->data, r->hi, r->hi_len, 0, &exact);
                if (stop > i) *count += (uint64_t)(stop - i);
                break;
            }
        }
        if (cnt > i) *count += (uint64_t)(cnt - i);
        if ((rc = cur_step_leaf(bt, &c, 1, &end))) goto out;
    }
out:
    pthread_mutex_unlock(&bt->mu);
    return rc;
}

void tw_bt_stats_get(tw_btree *bt, int in_txn, tw_bt_stats *s) {
    pthread_mutex_lock(&bt->mu);
    const meta_t *m = in_txn && bt->in_txn ? &bt->tx : &bt->cur;
    memset(s, 0, sizeof *s);
    s->txn = m->txn;
    s->keys = m->count;
    s->pages = m->npages;
    s->free_pages = bt->cur.fl_count;
    s->depth = m->depth;
    s->page_size = bt->P;
    pthread_mutex_unlock(&bt->mu);
}

/* ---------------------------------------------------------------- allocation */

static int alloc_page(tw_btree *bt, uint64_t *out) {
    int rc;
    if (bt->t_reuse.n) {
        *out = bt->t_reuse.v[--bt->t_reuse.n];
        return TW_OK;
    }
    if (bt->free_pages.n) {
        *out = bt->free_pages.v[--bt->free_pages.n];
    } else {
        *out = bt->tx.npages++;
    }
    if ((rc = vpush(&bt->t_alloc, *out))) return rc;
    return TW_OK;
}

/* Frees a page: one this transaction allocated is reusable at once; a
 * committed one only after this commit and its readers are gone. */
static int free_page(tw_btree *bt, uint64_t pgno, int private_page) {
    if (private_page) return vpush(&bt->t_reuse, pgno);
    return vpush(&bt->t_freed, pgno);
}

/* The transaction's own copy of page pgno (copying it if committed). */
static int cow(tw_btree *bt, uint64_t pgno, uint64_t want, uint64_t *out) {
    frame *f;
    int rc = pg_get(bt, pgno, 0, want, &f);
    if (rc) return rc;
    if (pg_txn(f->data) == bt->tx.txn) {
        *out = pgno;
        return TW_OK;
    }
    uint64_t np;
    if ((rc = alloc_page(bt, &np))) return rc;
    f->pin++;
    frame *nf;
    rc = pg_new(bt, np, pg_type(f->data), &nf);
    f->pin--;
    if (rc) return rc;
    memcpy(nf->data, f->data, bt->P);
    tw_store_le64(nf->data + 8, np);
    tw_store_le64(nf->data + 16, bt->tx.txn);
    if ((rc = free_page(bt, pgno, 0))) return rc;
    *out = np;
    return TW_OK;
}

/* ---------------------------------------------------------------- page edits */

/* Rewrites page d with its cells in order, no fragmentation. */
static void page_compact(tw_btree *bt, uint8_t *d) {
    uint32_t P = bt->P, n = pg_n(d);
    uint8_t type = pg_type(d);
    memcpy(bt->scratch2, d, P);
    uint32_t upper = P;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *c = bt->scratch2 + slot(bt->scratch2, i);
        uint32_t sz = cell_size(type, c);
        upper -= sz;
        memcpy(d + upper, c, sz);
        set_slot(d, i, upper);
    }
    tw_store_le32(d + 32, upper);
    tw_store_le32(d + 36, 0);
}

/* Inserts a cell at position pos; TW_ERR_NOSPACE when it does not fit. */
static int page_insert(tw_btree *bt, uint8_t *d, uint32_t pos, const uint8_t *cell, uint32_t sz) {
    uint32_t n = pg_n(d);
    if (page_free_contig(d) < sz + SLOT) {
        if (page_free_contig(d) + pg_frag(d) < sz + SLOT) return TW_ERR_NOSPACE;
        page_compact(bt, d);
    }
    uint32_t upper = pg_upper(d) - sz;
    memcpy(d + upper, cell, sz);
    memmove(d + HDR + SLOT * (pos + 1), d + HDR + SLOT * pos, SLOT * (n - pos));
    set_slot(d, pos, upper);
    tw_store_le32(d + 32, upper);
    pg_set_n(d, n + 1);
    return TW_OK;
}

static void page_remove(uint8_t *d, uint32_t pos) {
    uint32_t n = pg_n(d);
    uint32_t sz = cell_size(pg_type(d), d + slot(d, pos));
    memmove(d + HDR + SLOT * pos, d + HDR + SLOT * (pos + 1), SLOT * (n - pos - 1));
    pg_set_n(d, n - 1);
    tw_store_le32(d + 36, pg_frag(d) + sz);
}

/* Builds a page from a list of cells (offsets into scratch). */
static void page_fill(tw_btree *bt, uint8_t *d, const uint8_t *const *cells, const uint32_t *sizes,
                      uint32_t from, uint32_t to) {
    uint32_t upper = bt->P;
    for (uint32_t i = from; i < to; i++) {
        upper -= sizes[i];
        memcpy(d + upper, cells[i], sizes[i]);
        set_slot(d, i - from, upper);
    }
    pg_set_n(d, to - from);
    tw_store_le32(d + 32, upper);
    tw_store_le32(d + 36, 0);
}

static uint32_t make_leaf_cell(uint8_t *out, const uint8_t *key, uint32_t klen, const uint8_t *val,
                               uint32_t vlen, uint64_t ovf_page, uint64_t ovf_txn) {
    out[0] = (uint8_t)klen;
    out[1] = (uint8_t)(klen >> 8);
    memcpy(out + 6, key, klen);
    if (ovf_page) {
        tw_store_le32(out + 2, vlen | OVF_FLAG);
        tw_store_le64(out + 6 + klen, ovf_page);
        tw_store_le64(out + 14 + klen, ovf_txn);
        return 6 + klen + 16;
    }
    tw_store_le32(out + 2, vlen);
    if (vlen) memcpy(out + 6 + klen, val, vlen);
    return 6 + klen + vlen;
}

static uint32_t make_branch_cell(uint8_t *out, const uint8_t *key, uint32_t klen, uint64_t child, uint64_t txn) {
    out[0] = (uint8_t)klen;
    out[1] = (uint8_t)(klen >> 8);
    tw_store_le64(out + 2, child);
    tw_store_le64(out + 10, txn);
    memcpy(out + 18, key, klen);
    return 18 + klen;
}

/* Writes a value to a chain of overflow pages; *first gets the first page. */
static int write_overflow(tw_btree *bt, const uint8_t *val, size_t vlen, uint64_t *first) {
    uint32_t per = bt->P - HDR;
    size_t npg = (vlen + per - 1) / per;
    uint64_t next = 0;
    int rc;
    /* back to front, so each page knows its successor */
    for (size_t i = npg; i-- > 0;) {
        uint64_t pg;
        if ((rc = alloc_page(bt, &pg))) return rc;
        frame *f;
        if ((rc = pg_new(bt, pg, PT_OVERFLOW, &f))) return rc;
        size_t off = i * per, len = vlen - off < per ? vlen - off : per;
        memcpy(f->data + HDR, val + off, len);
        memset(f->data + HDR + len, 0, bt->P - HDR - len);
        tw_store_le32(f->data + 32, (uint32_t)len);
        pg_set_link(f->data, next);
        next = pg;
    }
    *first = next;
    return TW_OK;
}

static int free_overflow(tw_btree *bt, uint64_t pg, uint64_t txn) {
    uint64_t guard = 0;
    while (pg) {
        frame *f;
        int rc = pg_get(bt, pg, PT_OVERFLOW, txn, &f);
        if (rc) return rc;
        uint64_t next = pg_link(f->data);
        if ((rc = free_page(bt, pg, txn == bt->tx.txn))) return rc;
        pg = next;
        if (++guard > bt->tx.npages) return corrupt(bt, pg, "overflow chain loops");
    }
    return TW_OK;
}

/* ---------------------------------------------------------------- put */

typedef struct {
    uint64_t pg[MAX_DEPTH];
    int idx[MAX_DEPTH];
    uint32_t depth;
} wpath;

/* Descends from the root copying each page (copy-on-write); path.pg holds
 * the transaction's pages, path.idx the child taken at each branch. */
static int descend_cow(tw_btree *bt, const uint8_t *key, size_t klen, wpath *p) {
    int rc;
    uint64_t pg;
    if ((rc = cow(bt, bt->tx.root, bt->tx.root_txn, &pg))) return rc;
    bt->tx.root = pg;
    bt->tx.root_txn = bt->tx.txn;
    p->depth = bt->tx.depth;
    if (p->depth >= MAX_DEPTH) return corrupt(bt, pg, "tree too deep");
    for (uint32_t lvl = 0; lvl + 1 < p->depth; lvl++) {
        frame *f;
        if ((rc = pg_get(bt, pg, PT_BRANCH, 0, &f))) return rc;
        int i = branch_index(f->data, key, klen);
        uint64_t child = branch_child(f->data, i), ctxn = branch_child_txn(f->data, i), nc;
        if ((rc = cow(bt, child, ctxn, &nc))) return rc;
        if (nc != child || ctxn != bt->tx.txn) {
            if ((rc = pg_get(bt, pg, PT_BRANCH, 0, &f))) return rc;
            set_branch_child(f->data, i, nc, bt->tx.txn);
            mark_dirty(bt, f);
        }
        p->pg[lvl] = pg;
        p->idx[lvl] = i;
        pg = nc;
    }
    p->pg[p->depth - 1] = pg;
    return TW_OK;
}

/* Shortest prefix of right that sorts after left (suffix truncation). */
static uint32_t separator(const uint8_t *left, uint32_t llen, const uint8_t *right, uint32_t rlen) {
    uint32_t i = 0;
    while (i < llen && i < rlen && left[i] == right[i]) i++;
    return i + 1 <= rlen ? i + 1 : rlen;
}

/* Copies the cells of page d, with `cell` inserted at pos, in order into
 * bt->scratch; bt->cellp / bt->cellsz get each one's place and size.
 * Returns the bytes they take in a page, slots included. */
static uint32_t gather_cells(tw_btree *bt, const uint8_t *d, uint32_t pos, const uint8_t *cell, uint32_t sz) {
    uint8_t type = pg_type(d);
    uint32_t n = pg_n(d), total = 0, at = 0;
    for (uint32_t i = 0; i <= n; i++) {
        const uint8_t *src = cell;
        uint32_t csz = sz;
        if (i != pos) {
            src = d + slot(d, i < pos ? i : i - 1);
            csz = cell_size(type, src);
        }
        memcpy(bt->scratch + at, src, csz);
        bt->cellp[i] = bt->scratch + at;
        bt->cellsz[i] = csz;
        at += csz;
        total += csz + SLOT;
    }
    return total;
}

/* Inserts (sep -> right) after child index ci of the branch at path level lvl,
 * splitting upward as needed. sep is in bt->sep[which]. */
static int insert_separator(tw_btree *bt, wpath *p, int lvl, uint32_t seplen, int which, uint64_t right) {
    int rc;
    uint8_t cellbuf[18 + TW_BT_MAX_PAGE / 8];
    for (;;) {
        if (lvl < 0) {
            /* new root */
            uint64_t np;
            if ((rc = alloc_page(bt, &np))) return rc;
            frame *f;
            if ((rc = pg_new(bt, np, PT_BRANCH, &f))) return rc;
            set_branch_child(f->data, -1, bt->tx.root, bt->tx.root_txn);
            uint32_t sz = make_branch_cell(cellbuf, bt->sep[which], seplen, right, bt->tx.txn);
            if ((rc = page_insert(bt, f->data, 0, cellbuf, sz))) return rc;
            bt->tx.root = np;
            bt->tx.root_txn = bt->tx.txn;
            bt->tx.depth++;
            return TW_OK;
        }
        frame *f;
        if ((rc = pg_get(bt, p->pg[lvl], PT_BRANCH, 0, &f))) return rc;
        uint32_t pos = (uint32_t)(p->idx[lvl] + 1);
        uint32_t sz = make_branch_cell(cellbuf, bt->sep[which], seplen, right, bt->tx.txn);
        mark_dirty(bt, f);
        rc = page_insert(bt, f->data, pos, cellbuf, sz);
        if (rc != TW_ERR_NOSPACE) return rc;
        /* split the branch: gather cells with the new one, promote the middle */
        uint8_t *d = f->data;
        uint32_t n = pg_n(d);
        const uint8_t **cells = bt->cellp;
        uint32_t *sizes = bt->cellsz;
        uint32_t total = gather_cells(bt, d, pos, cellbuf, sz);
        uint32_t m = 0, acc = 0;
        while (m < n && acc + sizes[m] + SLOT < total / 2) acc += sizes[m++] + SLOT;
        if (m == 0) m = 1;
        if (m >= n) m = n - 1;
        /* cells[m] moves up: its key is the separator, its child the right's leftmost */
        uint64_t rp;
        f->pin++;
        rc = alloc_page(bt, &rp);
        frame *rf = NULL;
        if (!rc) rc = pg_new(bt, rp, PT_BRANCH, &rf);
        f->pin--;
        if (rc) return rc;
        set_branch_child(rf->data, -1, branch_child_of(cells[m]), branch_txn_of(cells[m]));
        page_fill(bt, rf->data, cells, sizes, m + 1, n + 1);
        page_fill(bt, d, cells, sizes, 0, m);
        mark_dirty(bt, f);
        int other = !which;
        seplen = cell_klen(cells[m]);
        memcpy(bt->sep[other], branch_key(cells[m]), seplen);
        which = other;
        right = rp;
        lvl--;
    }
}

/* Splits the full leaf at the bottom of p while inserting cell at pos. */
static int split_leaf(tw_btree *bt, wpath *p, uint32_t pos, const uint8_t *cell, uint32_t sz) {
    int lvl = (int)p->depth - 1, rc;
    int rightmost = 1;
    for (int l = 0; l < lvl; l++) {
        frame *pf;
        if ((rc = pg_get(bt, p->pg[l], PT_BRANCH, 0, &pf))) return rc;
        if (p->idx[l] != (int)pg_n(pf->data) - 1) rightmost = 0;
    }
    frame *f;
    if ((rc = pg_get(bt, p->pg[lvl], PT_LEAF, 0, &f))) return rc;
    uint8_t *d = f->data;
    uint32_t n = pg_n(d);
    const uint8_t **cells = bt->cellp;
    uint32_t *sizes = bt->cellsz;
    uint32_t total = gather_cells(bt, d, pos, cell, sz);
    uint32_t m;
    if (rightmost && pos == n) {
        m = n; /* appending at the end of the tree: keep the left page full */
    } else {
        uint32_t acc = 0;
        m = 0;
        while (m < n && acc + sizes[m] + SLOT < total / 2) acc += sizes[m++] + SLOT;
        if (m == 0) m = 1;
    }
    /* both halves must fit */
    for (;;) {
        uint32_t left = 0;
        for (uint32_t i = 0; i < m; i++) left += sizes[i] + SLOT;
        if (left > bt->P - HDR) {
            m--;
            continue;
        }
        if (total - left > bt->P - HDR) {
            m++;
            continue;
        }
        break;
    }
    uint64_t rp;
    f->pin++;
    rc = alloc_page(bt, &rp);
    frame *rf = NULL;
    if (!rc) rc = pg_new(bt, rp, PT_LEAF, &rf);
    f->pin--;
    if (rc) return rc;
    page_fill(bt, rf->data, cells, sizes, m, n + 1);
    page_fill(bt, d, cells, sizes, 0, m);
    mark_dirty(bt, f);
    const uint8_t *lk = leaf_key(cells[m - 1]), *rk = leaf_key(cells[m]);
    uint32_t seplen = separator(lk, cell_klen(cells[m - 1]), rk, cell_klen(cells[m]));
    memcpy(bt->sep[0], rk, seplen);
    return insert_separator(bt, p, lvl - 1, seplen, 0, rp);
}

static int check_key(tw_btree *bt, size_t klen) {
    if (klen == 0 || klen > bt->max_key) {
        snprintf(bt->error, sizeof bt->error, "key of %zu bytes: keys are 1 to %u bytes", klen, bt->max_key);
        return TW_ERR_INVALID;
    }
    return TW_OK;
}

static int writable(tw_btree *bt) {
    int rc = usable(bt);
    if (rc) return rc;
    if (!bt->in_txn) {
        snprintf(bt->error, sizeof bt->error, "no write transaction is open");
        return TW_ERR_INVALID;
    }
    return TW_OK;
}

#define LEAF_CELL_MAX (6 + TW_BT_MAX_PAGE / 8 + TW_BT_MAX_PAGE / 4)

/* Checks a pair and frames its leaf cell, writing a large value to overflow
 * pages first; marks the transaction changed. */
static int leaf_cell_for(tw_btree *bt, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                         uint8_t *cell, uint32_t *sz) {
    int rc;
    if ((rc = check_key(bt, klen))) return rc;
    if (vlen > 0x7fffffffu) {
        snprintf(bt->error, sizeof bt->error, "value of %zu bytes: at most 2**31 - 1", vlen);
        return TW_ERR_INVALID;
    }
    bt->tx_changed = 1;
    uint64_t ovf = 0;
    if (klen + vlen > bt->max_inline && (rc = write_overflow(bt, val, vlen, &ovf))) return rc;
    *sz = make_leaf_cell(cell, key, (uint32_t)klen, val, (uint32_t)vlen, ovf, bt->tx.txn);
    return TW_OK;
}

static int put_locked(tw_btree *bt, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen) {
    int rc;
    uint8_t cell[LEAF_CELL_MAX];
    uint32_t sz;
    if ((rc = leaf_cell_for(bt, key, klen, val, vlen, cell, &sz))) return rc;
    if (!bt->tx.root) {
        uint64_t pg;
        if ((rc = alloc_page(bt, &pg))) return rc;
        frame *f;
        if ((rc = pg_new(bt, pg, PT_LEAF, &f))) return rc;
        if ((rc = page_insert(bt, f->data, 0, cell, sz))) return rc;
        bt->tx.root = pg;
        bt->tx.root_txn = bt->tx.txn;
        bt->tx.depth = 1;
        bt->tx.count = 1;
        return TW_OK;
    }
    wpath p;
    if ((rc = descend_cow(bt, key, klen, &p))) return rc;
    frame *f;
    if ((rc = pg_get(bt, p.pg[p.depth - 1], PT_LEAF, 0, &f))) return rc;
    int exact;
    uint32_t pos = page_search(f->data, key, klen, 0, &exact);
    mark_dirty(bt, f);
    if (exact) {
        const uint8_t *old = f->data + slot(f->data, pos);
        uint32_t vf = leaf_vfield(old);
        uint64_t old_ovf = (vf & OVF_FLAG) ? tw_load_le64(leaf_key(old) + cell_klen(old)) : 0;
        uint64_t old_txn = old_ovf ? tw_load_le64(leaf_key(old) + cell_klen(old) + 8) : 0;
        page_remove(f->data, pos);
        if (old_ovf) {
            f->pin++;
            rc = free_overflow(bt, old_ovf, old_txn);
            f->pin--;
            if (rc) return rc;
        }
    } else {
        bt->tx.count++;
    }
    rc = page_insert(bt, f->data, pos, cell, sz);
    if (rc == TW_ERR_NOSPACE) rc = split_leaf(bt, &p, pos, cell, sz);
    return rc;
}

/* ---------------------------------------------------------------- delete */

/* Merges underfull pages upward from path level lvl. */
static int rebalance(tw_btree *bt, wpath *p, int lvl) {
    int rc;
    uint32_t P = bt->P;
    for (; lvl > 0; lvl--) {
        frame *f;
        if ((rc = pg_get(bt, p->pg[lvl], 0, 0, &f))) return rc;
        uint8_t type = pg_type(f->data);
        if (pg_n(f->data) > 0 && page_used(f->data, P) >= (P - HDR) / 4) return TW_OK;
        frame *pf;
        if ((rc = pg_get(bt, p->pg[lvl - 1], PT_BRANCH, 0, &pf))) return rc;
        int ci = p->idx[lvl - 1], pn = (int)pg_n(pf->data);
        if (pn == 0) return TW_OK; /* an only child: nothing to merge with */
        /* left page index li and right index li + 1 among the parent's children */
        int li = ci >= 0 ? ci - 1 : -1, ri = li + 1;
        uint64_t lpg = branch_child(pf->data, li), rpg = branch_child(pf->data, ri), nl, nr;
        uint64_t ltxn = branch_child_txn(pf->data, li), rtxn = branch_child_txn(pf->data, ri);
        if ((rc = cow(bt, lpg, ltxn, &nl))) return rc;
        if ((rc = cow(bt, rpg, rtxn, &nr))) return rc;
        if ((rc = pg_get(bt, p->pg[lvl - 1], PT_BRANCH, 0, &pf))) return rc;
        set_branch_child(pf->data, li, nl, bt->tx.txn);
        set_branch_child(pf->data, ri, nr, bt->tx.txn);
        mark_dirty(bt, pf);
        frame *lf, *rf;
        pf->pin++;
        rc = pg_get(bt, nl, type, 0, &lf);
        if (!rc) {
            lf->pin++;
            rc = pg_get(bt, nr, type, 0, &rf);
            lf->pin--;
        }
        pf->pin--;
        if (rc) return rc;
        const uint8_t *sepcell = pf->data + slot(pf->data, (uint32_t)ri);
        uint32_t extra = type == PT_BRANCH ? branch_cell_size(sepcell) + SLOT : 0;
        /* too full to merge: leave it (an empty leaf here is skipped by scans) */
        if (page_used(lf->data, P) + page_used(rf->data, P) + extra > P - HDR) return TW_OK;
        lf->pin++;
        rf->pin++;
        uint8_t cellbuf[18 + TW_BT_MAX_PAGE / 8];
        uint32_t ln = pg_n(lf->data);
        if (type == PT_BRANCH) {
            uint32_t sz = make_branch_cell(cellbuf, branch_key(sepcell), cell_klen(sepcell), pg_link(rf->data),
                                           tw_load_le64(rf->data + 40));
            rc = page_insert(bt, lf->data, ln++, cellbuf, sz);
        }
        for (uint32_t i = 0; !rc && i < pg_n(rf->data); i++) {
            const uint8_t *c = rf->data + slot(rf->data, i);
            rc = page_insert(bt, lf->data, ln++, c, cell_size(type, c));
        }
        lf->pin--;
        rf->pin--;
        if (rc) return rc;
        mark_dirty(bt, lf);
        pool_drop(bt, nr);
        if ((rc = free_page(bt, nr, 1))) return rc;
        if ((rc = pg_get(bt, p->pg[lvl - 1], PT_BRANCH, 0, &pf))) return rc;
        page_remove(pf->data, (uint32_t)ri);
        mark_dirty(bt, pf);
    }
    /* the root: collapse empty levels */
    for (;;) {
        frame *f;
        if ((rc = pg_get(bt, bt->tx.root, 0, 0, &f))) return rc;
        if (pg_n(f->data) > 0) return TW_OK;
        uint64_t old = bt->tx.root;
        if (pg_type(f->data) == PT_LEAF) {
            bt->tx.root = 0;
            bt->tx.root_txn = 0;
            bt->tx.depth = 0;
        } else {
            bt->tx.root = pg_link(f->data);
            bt->tx.root_txn = tw_load_le64(f->data + 40);
            bt->tx.depth--;
        }
        pool_drop(bt, old);
        if ((rc = free_page(bt, old, 1))) return rc;
        if (!bt->tx.root) return TW_OK;
    }
}

static int delete_locked(tw_btree *bt, const uint8_t *key, size_t klen) {
    int rc;
    if ((rc = check_key(bt, klen))) return rc;
    size_t vlen;
    rc = get_locked(bt, bt->tx.root, bt->tx.root_txn, bt->tx.depth, key, klen, NULL, 0, &vlen);
    if (rc == TW_BT_NOTFOUND) return rc;
    if (rc && rc != TW_ERR_NOSPACE) return rc;
    bt->tx_changed = 1;
    wpath p;
    if ((rc = descend_cow(bt, key, klen, &p))) return rc;
    frame *f;
    if ((rc = pg_get(bt, p.pg[p.depth - 1], PT_LEAF, 0, &f))) return rc;
    int exact;
    uint32_t pos = page_search(f->data, key, klen, 0, &exact);
    if (!exact) return corrupt(bt, p.pg[p.depth - 1], "key vanished during delete");
    const uint8_t *old = f->data + slot(f->data, pos);
    uint32_t vf = leaf_vfield(old);
    uint64_t old_ovf = (vf & OVF_FLAG) ? tw_load_le64(leaf_key(old) + cell_klen(old)) : 0;
    uint64_t old_txn = old_ovf ? tw_load_le64(leaf_key(old) + cell_klen(old) + 8) : 0;
    page_remove(f->data, pos);
    mark_dirty(bt, f);
    bt->tx.count--;
    if (old_ovf && (rc = free_overflow(bt, old_ovf, old_txn))) return rc;
    return rebalance(bt, &p, (int)p.depth - 1);
}

/* ---------------------------------------------------------------- bulk load */

/* The page under construction at level lvl is complete: install it as a dirty frame. */
static int bulk_seal(tw_btree *bt, int lvl) {
    frame *f;
    int rc = pg_new(bt, bt->bulk_pgno[lvl], pg_type(bt->bulk_page[lvl]), &f);
    if (rc) return rc;
    memcpy(f->data, bt->bulk_page[lvl], bt->P);
    return TW_OK;
}

static int bulk_new_page(tw_btree *bt, int lvl, uint8_t type, uint64_t leftmost) {
    int rc;
    if (lvl >= MAX_DEPTH) return corrupt(bt, 0, "bulk load: tree too deep");
    if (!bt->bulk_page[lvl] && !(bt->bulk_page[lvl] = malloc(bt->P))) return TW_ERR_NOMEM;
    if ((rc = alloc_page(bt, &bt->bulk_pgno[lvl]))) return rc;
    page_init(bt->bulk_page[lvl], bt->P, type, bt->bulk_pgno[lvl], bt->tx.txn);
    if (leftmost) set_branch_child(bt->bulk_page[lvl], -1, leftmost, bt->tx.txn);
    if (lvl + 1 > bt->bulk_levels) bt->bulk_levels = lvl + 1;
    return TW_OK;
}

/* Appends a cell to the page under construction at level lvl. When the page
 * is full it is sealed and a new one started; the separator goes one level
 * up (created on demand, its leftmost child the sealed page). For a leaf the
 * separator is the shortest prefix of key after prev; a branch cell that does
 * not fit moves up itself, its child becoming the new page's leftmost. */
static int bulk_push(tw_btree *bt, int lvl, const uint8_t *cell, uint32_t sz, const uint8_t *prev,
                     uint32_t prevlen) {
    int rc;
    uint8_t *d = bt->bulk_page[lvl];
    uint32_t limit = (bt->P - HDR) - (bt->P - HDR) / 16; /* leave ~6% for later inserts */
    if (pg_n(d) == 0 || (page_free_contig(d) >= sz + SLOT && page_used(d, bt->P) + sz + SLOT <= limit))
        return page_insert(bt, d, pg_n(d), cell, sz);
    uint64_t sealed = bt->bulk_pgno[lvl];
    if ((rc = bulk_seal(bt, lvl))) return rc;
    int leaf = pg_type(d) == PT_LEAF;
    if ((rc = bulk_new_page(bt, lvl, pg_type(d), leaf ? 0 : branch_child_of(cell)))) return rc;
    if (lvl + 1 >= bt->bulk_levels && (rc = bulk_new_page(bt, lvl + 1, PT_BRANCH, sealed))) return rc;
    uint8_t up[18 + TW_BT_MAX_PAGE / 8];
    uint32_t upsz;
    if (leaf) {
        uint32_t sl = separator(prev, prevlen, leaf_key(cell), cell_klen(cell));
        upsz = make_branch_cell(up, leaf_key(cell), sl, bt->bulk_pgno[lvl], bt->tx.txn);
    } else {
        upsz = make_branch_cell(up, branch_key(cell), cell_klen(cell), bt->bulk_pgno[lvl], bt->tx.txn);
    }
    if ((rc = bulk_push(bt, lvl + 1, up, upsz, NULL, 0))) return rc;
    if (leaf) return page_insert(bt, bt->bulk_page[lvl], 0, cell, sz);
    return TW_OK;
}

int tw_bt_bulk_add(tw_btree *bt, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen) {
    pthread_mutex_lock(&bt->mu);
    int rc = writable(bt);
    if (rc) goto out;
    if (!bt->bulk) {
        if (bt->tx.root || bt->tx_changed) {
            snprintf(bt->error, sizeof bt->error, "bulk load needs an empty tree and a fresh transaction");
            rc = TW_ERR_INVALID;
            goto out;
        }
        bt->bulk = 1;
        bt->bulk_levels = 0;
        bt->bulk_last_len = 0;
    }
    if (bt->bulk_last_len && keycmp(key, klen, bt->bulk_last, bt->bulk_last_len) <= 0) {
        snprintf(bt->error, sizeof bt->error, "bulk load keys must be strictly increasing");
        rc = TW_ERR_INVALID;
        goto out;
    }
    uint8_t cell[LEAF_CELL_MAX];
    uint32_t sz;
    if ((rc = leaf_cell_for(bt, key, klen, val, vlen, cell, &sz))) goto out;
    if (bt->bulk_levels == 0 && (rc = bulk_new_page(bt, 0, PT_LEAF, 0))) goto out;
    rc = bulk_push(bt, 0, cell, sz, bt->bulk_last, (uint32_t)bt->bulk_last_len);
    if (rc) goto out;
    memcpy(bt->bulk_last, key, klen);
    bt->bulk_last_len = klen;
    bt->tx.count++;
out:
    pthread_mutex_unlock(&bt->mu);
    return rc;
}

static int bulk_finish_locked(tw_btree *bt) {
    if (!bt->bulk) return TW_OK;
    int rc;
    for (int lvl = 0; lvl < bt->bulk_levels; lvl++)
        if ((rc = bulk_seal(bt, lvl))) return rc;
    bt->tx.root = bt->bulk_levels ? bt->bulk_pgno[bt->bulk_levels - 1] : 0;
    bt->tx.root_txn = bt->bulk_levels ? bt->tx.txn : 0;
    bt->tx.depth = (uint32_t)bt->bulk_levels;
    bt->bulk = 0;
    bt->bulk_levels = 0;
    return TW_OK;
}

int tw_bt_bulk_finish(tw_btree *bt) {
    pthread_mutex_lock(&bt->mu);
    int rc = writable(bt);
    if (!rc) rc = bulk_finish_locked(bt);
    pthread_mutex_unlock(&bt->mu);
    return rc;
}

/* ---------------------------------------------------------------- transactions */

int tw_bt_begin(tw_btree *bt) {
    pthread_mutex_lock(&bt->wmu);
    pthread_mutex_lock(&bt->mu);
    int rc = usable(bt);
    if (rc) {
        pthread_mutex_unlock(&bt->mu);
        pthread_mutex_unlock(&bt->wmu);
        return rc;
    }
    /* pages freed by commits no reader still sees become reusable */
    uint64_t oldest = oldest_snapshot(bt);
    size_t keep = 0;
    for (size_t i = 0; i < bt->pending.n; i += 2) {
        if (bt->pending.v[i + 1] <= oldest) {
            if ((rc = vpush(&bt->free_pages, bt->pending.v[i]))) break;
        } else {
            bt->pending.v[keep++] = bt->pending.v[i];
            bt->pending.v[keep++] = bt->pending.v[i + 1];
        }
    }
    if (!rc) bt->pending.n = keep;
    bt->tx = bt->cur;
    bt->tx.txn = bt->cur.txn + 1;
    bt->npages_begin = bt->cur.npages;
    bt->in_txn = 1;
    bt->tx_changed = 0;
    bt->bulk = 0;
    bt->t_alloc.n = bt->t_reuse.n = bt->t_freed.n = 0;
    pthread_mutex_unlock(&bt->mu);
    return rc;
}

int tw_bt_put(tw_btree *bt, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen) {
    pthread_mutex_lock(&bt->mu);
    int rc = writable(bt);
    if (!rc && bt->bulk) rc = bulk_finish_locked(bt);
    if (!rc) rc = put_locked(bt, key, klen, val, vlen);
    if (rc && rc != TW_ERR_INVALID) bt->failed = 1;
    pthread_mutex_unlock(&bt->mu);
    return rc;
}

int tw_bt_delete(tw_btree *bt, const uint8_t *key, size_t klen) {
    pthread_mutex_lock(&bt->mu);
    int rc = writable(bt);
    if (!rc && bt->bulk) rc = bulk_finish_locked(bt);
    if (!rc) rc = delete_locked(bt, key, klen);
    if (rc && rc != TW_ERR_INVALID && rc != TW_BT_NOTFOUND) bt->failed = 1;
    pthread_mutex_unlock(&bt->mu);
    return rc;
}

static void txn_reset(tw_btree *bt) {
    bt->in_txn = 0;
    bt->tx_changed = 0;
    bt->bulk = 0;
    bt->t_alloc.n = bt->t_reuse.n = bt->t_freed.n = 0;
}

static int abort_locked(tw_btree *bt) {
    int rc = TW_OK;
    for (size_t i = 0; i < bt->dirty_list.n; i++) bt->frames[bt->dirty_list.v[i]]->listed = 0;
    bt->dirty_list.n = 0;
    for (size_t i = 0; i < bt->t_alloc.n; i++) {
        uint64_t pg = bt->t_alloc.v[i];
        pool_drop(bt, pg);
        if (pg < bt->npages_begin && (rc = vpush(&bt->free_pages, pg))) break;
    }
    txn_reset(bt);
    return rc;
}

int tw_bt_abort(tw_btree *bt) {
    pthread_mutex_lock(&bt->mu);
    int rc = TW_OK;
    if (bt->in_txn) {
        rc = abort_locked(bt);
        pthread_mutex_unlock(&bt->mu);
        pthread_mutex_unlock(&bt->wmu);
        return rc;
    }
    pthread_mutex_unlock(&bt->mu);
    return rc;
}

static int cmp_frame(const void *a, const void *b) {
    uint64_t x = (*(frame *const *)a)->pgno, y = (*(frame *const *)b)->pgno;
    return x < y ? -1 : x > y;
}

/* Writes the free list for the commit into fresh pages. */
static int write_freelist(tw_btree *bt, u64vec *flp) {
    int rc;
    /* the committed free-list pages are freed by this commit */
    for (size_t i = 0; i < bt->fl_pages.n; i++)
        if ((rc = vpush(&bt->t_freed, bt->fl_pages.v[i]))) return rc;
    uint32_t per = (bt->P - HDR) / 8;
    size_t entries = bt->free_pages.n + bt->pending.n / 2 + bt->t_freed.n + bt->t_reuse.n;
    size_t k = (entries + per - 1) / per;
    for (size_t i = 0; i < k; i++) {
        uint64_t pg;
        if ((rc = alloc_page(bt, &pg))) return rc;
        if ((rc = vpush(flp, pg))) return rc;
    }
    /* all entries, in page order */
    const u64vec *lists[3] = {&bt->free_pages, &bt->t_freed, &bt->t_reuse};
    size_t li = 0, pos = 0, pi = 0;
    uint64_t count = 0;
    for (size_t i = 0; i < k; i++) {
        frame *f;
        if ((rc = pg_new(bt, flp->v[i], PT_FREELIST, &f))) return rc;
        memset(f->data + HDR, 0, bt->P - HDR);
        uint32_t n = 0;
        while (n < per) {
            uint64_t v;
            if (pi < bt->pending.n) {
                v = bt->pending.v[pi];
                pi += 2;
            } else {
                while (li < 3 && pos >= lists[li]->n) {
                    li++;
                    pos = 0;
                }
                if (li == 3) break;
                v = lists[li]->v[pos++];
            }
            tw_store_le64(f->data + HDR + 8 * n, v);
            n++;
        }
        tw_store_le32(f->data + 32, n);
        pg_set_link(f->data, i + 1 < k ? flp->v[i + 1] : 0);
        count += n;
    }
    bt->tx.fl_head = k ? flp->v[0] : 0;
    bt->tx.fl_count = count;
    return TW_OK;
}

int tw_bt_commit(tw_btree *bt) {
    pthread_mutex_lock(&bt->mu);
    int rc = writable(bt);
    if (rc) {
        /* a closed or failed tree: the transaction is lost, the writer lock released */
        int had = bt->in_txn;
        if (had) abort_locked(bt);
        pthread_mutex_unlock(&bt->mu);
        if (had) pthread_mutex_unlock(&bt->wmu);
        return rc;
    }
    if (!bt->tx_changed) {
        txn_reset(bt);
        pthread_mutex_unlock(&bt->mu);
        pthread_mutex_unlock(&bt->wmu);
        return TW_OK;
    }
    u64vec flp = {0};
    frame **dirty = NULL;
    size_t nd = 0;
    rc = bulk_finish_locked(bt);
    if (!rc) rc = write_freelist(bt, &flp);
    if (!rc) {
        dirty = malloc((bt->dirty_list.n + 1) * sizeof *dirty);
        if (!dirty) rc = TW_ERR_NOMEM;
    }
    if (!rc) {
        for (size_t i = 0; i < bt->dirty_list.n; i++) {
            frame *f = bt->frames[bt->dirty_list.v[i]];
            f->listed = 0;
            if (f->used && f->dirty) {
                f->pin++;
                dirty[nd++] = f;
            }
        }
        bt->dirty_list.n = 0;
    }
    meta_t m = bt->tx;
    /* the simulated file system's overlay is shared with readers: keep the lock */
    int unlocked = !bt->simfs;
    if (unlocked) pthread_mutex_unlock(&bt->mu);

    /* pages, sync, meta, sync: readers keep going meanwhile */
    uint8_t *metabuf = NULL;
    if (!rc) {
        qsort(dirty, nd, sizeof *dirty, cmp_frame);
        if (m.npages > bt->file_pages) {
            /* the file must hold every page the meta names, written or free */
            struct stat st;
            if (fstat(bt->fd, &st) < 0) {
                rc = fail_errno(bt, "fstat");
            } else if ((uint64_t)st.st_size < m.npages * bt->P &&
                       ftruncate(bt->fd, (off_t)(m.npages * bt->P)) < 0) {
                rc = fail_errno(bt, "ftruncate");
            }
            if (!rc) bt->file_pages = m.npages;
        }
        for (size_t i = 0; i < nd && !rc; i++) {
            page_seal(bt, dirty[i]->data);
            rc = io_write(bt, dirty[i]->pgno, dirty[i]->data);
        }
        if (!rc && bt->sync) rc = io_sync(bt);
        if (!rc) {
            metabuf = malloc(bt->P);
            if (!metabuf) rc = TW_ERR_NOMEM;
        }
        if (!rc) {
            meta_encode(bt, &m, metabuf);
            rc = io_write(bt, m.txn % 2, metabuf);
        }
        if (!rc && bt->sync) rc = io_sync(bt);
    }
    free(metabuf);

    if (unlocked) pthread_mutex_lock(&bt->mu);
    for (size_t i = 0; i < nd; i++) {
        dirty[i]->pin--;
        if (!rc) dirty[i]->dirty = 0;
    }
    free(dirty);
    if (rc) {
        /* whether the meta landed is unknown: refuse further use; reopening
         * finds the last commit that did */
        bt->failed = 1;
        abort_locked(bt);
        vfree(&flp);
        pthread_mutex_unlock(&bt->mu);
        pthread_mutex_unlock(&bt->wmu);
        return rc;
    }
    bt->cur = m;
    for (size_t i = 0; i < bt->t_freed.n && !rc; i++) {
        rc = vpush(&bt->pending, bt->t_freed.v[i]);
        if (!rc) rc = vpush(&bt->pending, m.txn);
    }
    for (size_t i = 0; i < bt->t_reuse.n && !rc; i++) rc = vpush(&bt->free_pages, bt->t_reuse.v[i]);
    vfree(&bt->fl_pages);
    bt->fl_pages = flp;
    if (rc) bt->failed = 1;
    txn_reset(bt);
    pthread_mutex_unlock(&bt->mu);
    pthread_mutex_unlock(&bt->wmu);
    return rc;
}

/* ---------------------------------------------------------------- check */

typedef struct {
    tw_btree *bt;
    uint8_t *seen; /* bitmap over npages */
    uint64_t npages;
    uint8_t *bufs[MAX_DEPTH + 1];
    tw_bt_stats *st;
    uint32_t depth;
    uint64_t keys;
} checker;

static int mark(checker *ck, uint64_t pg, const char *what) {
    if (pg < 2 || pg >= ck->npages) return corrupt(ck->bt, pg, "page number out of range");
    if (ck->seen[pg >> 3] & (1u << (pg & 7))) {
        char msg[96];
        snprintf(msg, sizeof msg, "used twice (again as %s)", what);
        return corrupt(ck->bt, pg, msg);
    }
    ck->seen[pg >> 3] |= (uint8_t)(1u << (pg & 7));
    return TW_OK;
}

static int check_read(checker *ck, uint64_t pg, uint8_t *d, uint8_t type, uint64_t want) {
    tw_btree *bt = ck->bt;
    int rc = io_read(bt, pg, d);
    if (rc) return rc;
    if (tw_load_le32(d) != pg_crc(d, bt->P)) return corrupt(bt, pg, "checksum mismatch");
    if (tw_load_le64(d + 8) != pg) return corrupt(bt, pg, "page holds another page's number");
    uint8_t t = pg_type(d);
    if (type ? t != type : t != PT_LEAF && t != PT_BRANCH) return corrupt(bt, pg, "wrong page type");
    if (pg_txn(d) != want) return corrupt(bt, pg, "stale page: not the version its parent points to (a lost write)");
    return type ? TW_OK : page_validate(bt, pg, d);
}

static int check_node(checker *ck, uint64_t pg, uint64_t txn, uint32_t lvl, const uint8_t *lo, uint32_t lolen, const uint8_t *hi,
                      uint32_t hilen) {
    tw_btree *bt = ck->bt;
    int rc;
    if (lvl >= ck->depth) return corrupt(bt, pg, "tree deeper than the meta page says");
    uint8_t *d = ck->bufs[lvl];
    uint8_t kind = lvl + 1 == ck->depth ? PT_LEAF : PT_BRANCH;
    if ((rc = mark(ck, pg, "tree page"))) return rc;
    if ((rc = check_read(ck, pg, d, 0, txn))) return rc;
    if (pg_type(d) != kind) return corrupt(bt, pg, kind == PT_LEAF ? "branch page where a leaf belongs (uneven depth)" : "leaf page above the bottom level (uneven depth)");
    uint32_t n = pg_n(d);
    const uint8_t *prev = NULL;
    uint32_t prevlen = 0;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *c = d + slot(d, i);
        const uint8_t *k = cell_key(kind, c);
        uint32_t kl = cell_klen(c);
        if (prev && keycmp(prev, prevlen, k, kl) >= 0) return corrupt(bt, pg, "keys out of order");
        if (lo && keycmp(k, kl, lo, lolen) < 0) return corrupt(bt, pg, "key below its parent's separator");
        if (hi && keycmp(k, kl, hi, hilen) >= 0) return corrupt(bt, pg, "key at or above the next separator");
        prev = k;
        prevlen = kl;
    }
    if (kind == PT_LEAF) {
        ck->st->leaf_pages++;
        ck->keys += n;
        for (uint32_t i = 0; i < n; i++) {
            const uint8_t *c = d + slot(d, i);
            uint32_t vf = leaf_vfield(c);
            if (!(vf & OVF_FLAG)) continue;
            uint64_t ov = tw_load_le64(leaf_key(c) + cell_klen(c));
            uint64_t ovtxn = tw_load_le64(leaf_key(c) + cell_klen(c) + 8);
            uint64_t left = vf & ~OVF_FLAG;
            uint8_t *od = ck->bufs[MAX_DEPTH];
            if (left == 0) return corrupt(bt, pg, "empty value stored in overflow pages");
            while (left) {
                if (!ov) return corrupt(bt, pg, "overflow chain ends early");
                if ((rc = mark(ck, ov, "overflow page"))) return rc;
                if ((rc = check_read(ck, ov, od, PT_OVERFLOW, ovtxn))) return rc;
                uint32_t len = pg_upper(od);
                if (len == 0 || len > bt->P - HDR || len > left) return corrupt(bt, ov, "bad overflow length");
                left -= len;
                ck->st->overflow_pages++;
                ov = pg_link(od);
            }
            if (ov) return corrupt(bt, pg, "overflow chain longer than its value");
        }
        return TW_OK;
    }
    ck->st->branch_pages++;
    for (int i = -1; i < (int)n; i++) {
        const uint8_t *clo = lo, *chi = hi;
        uint32_t clolen = lolen, chilen = hilen;
        if (i >= 0) {
            const uint8_t *c = d + slot(d, (uint32_t)i);
            clo = branch_key(c);
            clolen = cell_klen(c);
        }
        if (i + 1 < (int)n) {
            const uint8_t *c = d + slot(d, (uint32_t)i + 1);
            chi = branch_key(c);
            chilen = cell_klen(c);
        }
        if ((rc = check_node(ck, branch_child(d, i), branch_child_txn(d, i), lvl + 1, clo, clolen, chi, chilen)))
            return rc;
        /* the child's read overwrote deeper buffers only: d is intact */
    }
    return TW_OK;
}

int tw_bt_check(tw_btree *bt, tw_bt_stats *out) {
    tw_bt_snapshot snap;
    int rc = tw_bt_snapshot_begin(bt, &snap);
    if (rc) return rc;
    pthread_mutex_lock(&bt->mu);
    meta_t m = bt->cur;
    memset(out, 0, sizeof *out);
    out->txn = m.txn;
    out->keys = m.count;
    out->pages = m.npages;
    out->depth = m.depth;
    out->page_size = bt->P;
    checker ck;
    memset(&ck, 0, sizeof ck);
    ck.bt = bt;
    ck.st = out;
    ck.npages = m.npages;
    ck.depth = m.depth;
    ck.seen = calloc((size_t)(m.npages / 8 + 1), 1);
    for (int i = 0; i <= MAX_DEPTH; i++)
        if (!(ck.bufs[i] = malloc(bt->P))) rc = TW_ERR_NOMEM;
    if (!ck.seen) rc = TW_ERR_NOMEM;
    if (!rc && m.root) rc = check_node(&ck, m.root, m.root_txn, 0, NULL, 0, NULL, 0);
    if (!rc && ck.keys != m.count) {
        snprintf(bt->error, sizeof bt->error, "the meta page counts %llu keys, the leaves hold %llu",
                 (unsigned long long)m.count, (unsigned long long)ck.keys);
        rc = TW_ERR_CORRUPT;
    }
    /* free list */
    uint64_t pg = m.fl_head, entries = 0;
    while (!rc && pg) {
        uint8_t *d = ck.bufs[MAX_DEPTH];
        if ((rc = mark(&ck, pg, "free-list page"))) break;
        if ((rc = check_read(&ck, pg, d, PT_FREELIST, m.txn))) break;
        out->freelist_pages++;
        uint32_t n = pg_upper(d);
        if (n > (bt->P - HDR) / 8) {
            rc = corrupt(bt, pg, "free-list page claims too many entries");
            break;
        }
        for (uint32_t i = 0; i < n && !rc; i++) rc = mark(&ck, tw_load_le64(d + HDR + 8 * i), "free page");
        entries += n;
        pg = pg_link(d);
    }
    if (!rc && entries != m.fl_count) {
        snprintf(bt->error, sizeof bt->error, "the meta page lists %llu free pages, the free list holds %llu",
                 (unsigned long long)m.fl_count, (unsigned long long)entries);
        rc = TW_ERR_CORRUPT;
    }
    out->free_pages = entries;
    for (uint64_t p = 2; !rc && p < m.npages; p++)
        if (!(ck.seen[p >> 3] & (1u << (p & 7)))) rc = corrupt(bt, p, "neither in the tree nor free (leaked)");
    free(ck.seen);
    for (int i = 0; i <= MAX_DEPTH; i++) free(ck.bufs[i]);
    pthread_mutex_unlock(&bt->mu);
    tw_bt_snapshot_end(bt, &snap);
    return rc;
}

/* ---------------------------------------------------------------- power loss */

/* Applies a seeded random subset of the unsynced writes (some torn at a
 * 512-byte boundary), drops the rest and fails the tree. Caller holds mu. */
static int power_loss(tw_btree *bt, uint64_t seed) {
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    int rc = TW_OK;
    for (size_t i = 0; i < bt->nov; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int choice = (int)(x % 4); /* 0,1: dropped; 2: written; 3: torn */
        if (choice >= 2) {
            size_t len = bt->P;
            if (choice == 3) len = 512 * (size_t)((x >> 8) % (bt->P / 512));
            if (len && raw_pwrite(bt->fd, bt->ov[i].data, len, bt->ov[i].pgno * bt->P) < 0) rc = TW_ERR_IO;
        }
        free(bt->ov[i].data);
    }
    bt->nov = 0;
    bt->failed = 1;
    snprintf(bt->error, sizeof bt->error, "simulated power loss");
    return rc;
}

int tw_bt_simulate_power_loss(tw_btree *bt, uint64_t seed) {
    pthread_mutex_lock(&bt->mu);
    int rc = bt->simfs ? power_loss(bt, seed) : TW_ERR_INVALID;
    pthread_mutex_unlock(&bt->mu);
    return rc;
}

int tw_bt_arm_power_loss(tw_btree *bt, uint64_t nth_sync, uint64_t seed) {
    pthread_mutex_lock(&bt->mu);
    int rc = bt->simfs ? TW_OK : TW_ERR_INVALID;
    if (!rc) {
        bt->crash_at_sync = nth_sync;
        bt->crash_seed = seed;
    }
    pthread_mutex_unlock(&bt->mu);
    return rc;
}
