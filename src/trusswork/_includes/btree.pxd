# Declarations of csrc/btree: the copy-on-write B+tree.
from libc.stdint cimport uint8_t, uint32_t, uint64_t


cdef extern from "btree/btree.h" nogil:
    unsigned int TW_BT_MIN_PAGE
    unsigned int TW_BT_MAX_PAGE
    int TW_BT_NOTFOUND

    ctypedef struct tw_btree:
        pass

    ctypedef struct tw_bt_snapshot:
        uint64_t txn
        uint64_t root
        uint64_t root_txn
        uint64_t count
        uint32_t depth
        uint32_t registered

    ctypedef struct tw_bt_stats:
        uint64_t txn
        uint64_t keys
        uint64_t pages
        uint64_t free_pages
        uint64_t leaf_pages
        uint64_t branch_pages
        uint64_t overflow_pages
        uint64_t freelist_pages
        uint32_t depth
        uint32_t page_size

    ctypedef struct tw_bt_range:
        const uint8_t *lo
        size_t lo_len
        int lo_excl
        const uint8_t *hi
        size_t hi_len
        int hi_excl
        int reverse
        int keys_only

    int tw_bt_create_file(const char *path, uint32_t page_size, char *error, size_t error_len)
    int tw_bt_open(const char *path, uint32_t page_size, uint64_t cache_bytes, int sync,
                   int simulate_fs, tw_btree **out, char *error, size_t error_len)
    int tw_bt_close(tw_btree *bt)
    void tw_bt_free(tw_btree *bt)
    void tw_bt_last_error(tw_btree *bt, char *out, size_t out_len)
    uint32_t tw_bt_page_size(const tw_btree *bt)
    uint32_t tw_bt_max_key(const tw_btree *bt)

    int tw_bt_snapshot_begin(tw_btree *bt, tw_bt_snapshot *snap)
    void tw_bt_snapshot_end(tw_btree *bt, tw_bt_snapshot *snap)
    int tw_bt_get(tw_btree *bt, const tw_bt_snapshot *snap, int in_txn, const uint8_t *key,
                  size_t klen, uint8_t *buf, size_t cap, size_t *vlen)
    int tw_bt_scan(tw_btree *bt, const tw_bt_snapshot *snap, int in_txn, const tw_bt_range *range,
                   uint8_t *buf, size_t cap, size_t max_items, size_t *n, size_t *used, int *done)
    int tw_bt_count(tw_btree *bt, const tw_bt_snapshot *snap, int in_txn, const tw_bt_range *range,
                    uint64_t *count)
    void tw_bt_stats_get(tw_btree *bt, int in_txn, tw_bt_stats *out)
    int tw_bt_check(tw_btree *bt, tw_bt_stats *out)

    int tw_bt_begin(tw_btree *bt)
    int tw_bt_put(tw_btree *bt, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
    int tw_bt_delete(tw_btree *bt, const uint8_t *key, size_t klen)
    int tw_bt_bulk_add(tw_btree *bt, const uint8_t *key, size_t klen, const uint8_t *val,
                       size_t vlen)
    int tw_bt_bulk_finish(tw_btree *bt)
    int tw_bt_commit(tw_btree *bt)
    int tw_bt_abort(tw_btree *bt)
    int tw_bt_simulate_power_loss(tw_btree *bt, uint64_t seed)
    int tw_bt_arm_power_loss(tw_btree *bt, uint64_t nth_sync, uint64_t seed)
