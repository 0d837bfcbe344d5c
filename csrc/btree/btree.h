/*
 * btree.h — a disk-resident B+tree with copy-on-write shadow paging.
 *
 * One file of fixed-size pages. Committed pages are never modified in place:
 * a write transaction copies the pages it changes into free pages and a
 * commit makes the new root current by writing one of two meta pages. See the
 * top of btree.c for the format and the crash story.
 *
 * Threads: any number of readers (point gets, scans, snapshots) run while one
 * writer works; every function takes the tree's lock itself, and none calls
 * back into Python, so callers may release the GIL around all of them. The
 * writer holds the writer lock from tw_bt_begin to tw_bt_commit/tw_bt_abort;
 * write calls must come from the thread that began the transaction.
 */
#ifndef TW_BTREE_H
#define TW_BTREE_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

#define TW_BT_MIN_PAGE 512u
#define TW_BT_MAX_PAGE 65536u
#define TW_BT_ERROR_LEN 256

/* Extra status: the key is not in the tree (not an error for delete). */
#define TW_BT_NOTFOUND 1

typedef struct tw_btree tw_btree;

/* A registered read snapshot: the committed tree as of one transaction. */
typedef struct {
    uint64_t txn;
    uint64_t root;
    uint64_t root_txn;
    uint64_t count;
    uint32_t depth;
    uint32_t registered;
} tw_bt_snapshot;

typedef struct {
    uint64_t txn;
    uint64_t keys;
    uint64_t pages;       /* pages the committed tree spans (meta high-water mark) */
    uint64_t free_pages;  /* entries of the committed free list */
    uint64_t leaf_pages;  /* filled in by tw_bt_check */
    uint64_t branch_pages;
    uint64_t overflow_pages;
    uint64_t freelist_pages;
    uint32_t depth;
    uint32_t page_size;
} tw_bt_stats;

/* Writes an empty tree (two meta pages) to a new file at path, synced. */
int tw_bt_create_file(const char *path, uint32_t page_size, char *error, size_t error_len);

/*
 * Opens an existing tree file. page_size is what the caller expects: a file
 * with another page size gives TW_ERR_INVALID; 0 takes the file's own. cache_bytes bounds the buffer
 * pool (at least 64 pages are kept). sync: fdatasync at every commit.
 * simulate_fs: unsynced writes stay in memory until fdatasync (test mode for
 * tw_bt_simulate_power_loss). On failure *out is NULL and error says why.
 */
int tw_bt_open(const char *path, uint32_t page_size, uint64_t cache_bytes, int sync,
               int simulate_fs, tw_btree **out, char *error, size_t error_len);

/* Aborts an open transaction, closes the file; further calls get TW_ERR_IO.
 * The memory stays valid until tw_bt_free. */
int tw_bt_close(tw_btree *bt);
/* Frees the tree. A transaction still open is dropped; then the caller must
 * be the thread that began it. */
void tw_bt_free(tw_btree *bt);

/* The message of the last failure on this tree (thread-unsafe diagnostics). */
void tw_bt_last_error(tw_btree *bt, char *out, size_t out_len);

uint32_t tw_bt_page_size(const tw_btree *bt);
uint32_t tw_bt_max_key(const tw_btree *bt);

/* ---------------------------------------------------------------- reading */

/* Registers the latest committed snapshot; pages it uses are not reused
 * until tw_bt_snapshot_end. */
int tw_bt_snapshot_begin(tw_btree *bt, tw_bt_snapshot *snap);
void tw_bt_snapshot_end(tw_btree *bt, tw_bt_snapshot *snap);

/*
 * Looks key up. snap NULL: the latest commit; in_txn nonzero: the open write
 * transaction (with its own writes). The value is copied to buf; when cap is
 * too small the result is TW_ERR_NOSPACE and *vlen says how much is needed.
 * TW_BT_NOTFOUND when the key is absent.
 */
int tw_bt_get(tw_btree *bt, const tw_bt_snapshot *snap, int in_txn, const uint8_t *key,
              size_t klen, uint8_t *buf, size_t cap, size_t *vlen);

/*
 * Copies up to max_items entries in key order into buf, each as
 * u32 klen | u32 vlen | key | value (host order). Forward: keys k with
 * lo <= k (lo_excl: lo < k) and k < hi. Reverse: the same range walked from
 * the top, where hi_excl=0 makes hi inclusive. A NULL bound is open.
 * *n entries, *used bytes; *done is 1 when the range is exhausted. When the
 * first entry alone does not fit cap: TW_ERR_NOSPACE, *used = bytes needed.
 * keys_only: values are not copied (vlen 0).
 */
typedef struct {
    const uint8_t *lo;
    size_t lo_len;
    int lo_excl;
    const uint8_t *hi;
    size_t hi_len;
    int hi_excl;
    int reverse;
    int keys_only;
} tw_bt_range;

int tw_bt_scan(tw_btree *bt, const tw_bt_snapshot *snap, int in_txn, const tw_bt_range *range,
               uint8_t *buf, size_t cap, size_t max_items, size_t *n, size_t *used, int *done);

/* Number of keys in [lo, hi) (NULL: open), counted leaf by leaf. */
int tw_bt_count(tw_btree *bt, const tw_bt_snapshot *snap, int in_txn, const tw_bt_range *range,
                uint64_t *count);

/* Stats of the latest commit (snap NULL), a snapshot, or the open transaction. */
void tw_bt_stats_get(tw_btree *bt, int in_txn, tw_bt_stats *out);

/* Walks the latest commit from disk and verifies every page: checksums, key
 * order, separators, leaf depth, overflow chains, the free list, and that
 * every page is used exactly once. TW_ERR_CORRUPT with a message on a fault. */
int tw_bt_check(tw_btree *bt, tw_bt_stats *out);

/* ---------------------------------------------------------------- writing */

/* Waits for the writer lock and starts a transaction on the latest commit. */
int tw_bt_begin(tw_btree *bt);
int tw_bt_put(tw_btree *bt, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen);
/* TW_OK when the key was deleted, TW_BT_NOTFOUND when it was not there. */
int tw_bt_delete(tw_btree *bt, const uint8_t *key, size_t klen);
/* Bulk load: only into a transaction whose tree is empty and that has not
 * written yet; keys strictly increasing (TW_ERR_INVALID otherwise).
 * tw_bt_bulk_finish links the levels; it runs at commit if not called. */
int tw_bt_bulk_add(tw_btree *bt, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen);
int tw_bt_bulk_finish(tw_btree *bt);
int tw_bt_commit(tw_btree *bt);
int tw_bt_abort(tw_btree *bt);

/* Test hook (simulate_fs trees only): applies a seeded random subset of the
 * writes since the last fdatasync to the file, some torn at a 512-byte
 * boundary, drops the rest, and fails the tree. */
int tw_bt_simulate_power_loss(tw_btree *bt, uint64_t seed);

/* Test hook (simulate_fs trees only): the nth fdatasync from now (1: the
 * next) does tw_bt_simulate_power_loss(seed) instead and fails with
 * TW_ERR_IO. A commit syncs twice: after its pages, after its meta page. */
int tw_bt_arm_power_loss(tw_btree *bt, uint64_t nth_sync, uint64_t seed);

#endif
