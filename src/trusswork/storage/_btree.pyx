# cython: boundscheck=False, wraparound=False
"""Compiled B+tree (csrc/btree): the thin layer under trusswork.storage.btree.

Every C status passes through check_status. Every call into the tree runs
without the GIL (a writer blocked on the writer lock, a commit's fdatasync
and a reader's page faults do not stall other Python threads).
"""
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy

from trusswork._includes.common cimport (
    TW_ERR_CORRUPT,
    TW_ERR_INVALID,
    TW_ERR_IO,
    TW_ERR_NOMEM,
    TW_ERR_NOSPACE,
    TW_OK,
)
from trusswork._includes.btree cimport *

from trusswork.core.errors import Corruption, InvalidInput, NotFound, Unavailable

MIN_PAGE = TW_BT_MIN_PAGE
MAX_PAGE = TW_BT_MAX_PAGE
ITEMS = 0
KEYS = 1
VALUES = 2

DEF STACK_VALUE = 512
DEF SCAN_BUFFER = 65536


cdef struct Arg:
    const uint8_t *ptr
    Py_ssize_t len
    bint has_view
    Py_buffer view


cdef int get_arg(object obj, Arg *a, str what) except -1:
    """Borrow the bytes of a bytes-like argument (release with put_arg)."""
    a.has_view = 0
    if type(obj) is bytes:
        a.ptr = <const uint8_t *>PyBytes_AS_STRING(obj)
        a.len = PyBytes_GET_SIZE(obj)
        return 0
    try:
        PyObject_GetBuffer(obj, &a.view, PyBUF_SIMPLE)
    except (TypeError, ValueError, BufferError):
        raise TypeError(f"{what} must be bytes-like (bytes, bytearray, memoryview), "
                        f"not {type(obj).__name__}") from None
    a.has_view = 1
    a.ptr = <const uint8_t *>a.view.buf
    a.len = a.view.len
    return 0


cdef inline void put_arg(Arg *a):
    if a.has_view:
        PyBuffer_Release(&a.view)
        a.has_view = 0


def create_file(str path, uint32_t page_size):
    """Write an empty tree to a new file at path (synced)."""
    cdef char error[256]
    cdef int status
    p = path.encode()
    cdef const char *cp = p
    with nogil:
        status = tw_bt_create_file(cp, page_size, error, sizeof(error))
    if status == TW_ERR_INVALID:
        raise InvalidInput(error.decode("utf-8", "replace"))
    if status != TW_OK:
        raise Unavailable(f"cannot create B-tree file: {error.decode('utf-8', 'replace')}")


cdef class Snapshot:
    """A registered read snapshot: pages it uses are not reused until release()."""
    cdef tw_bt_snapshot snap
    cdef Tree tree

    def release(self):
        if self.snap.registered and self.tree is not None:
            with nogil:
                tw_bt_snapshot_end(self.tree.bt, &self.snap)

    @property
    def txn(self):
        return self.snap.txn

    @property
    def count(self):
        return self.snap.count

    def __dealloc__(self):
        if self.snap.registered and self.tree is not None and self.tree.bt != NULL:
            tw_bt_snapshot_end(self.tree.bt, &self.snap)


cdef class Tree:
    """One open tree file (csrc/btree tw_btree)."""
    # close() shuts the tree down but keeps the C memory, so a call racing
    # with close fails cleanly; __dealloc__ frees it.
    cdef tw_btree *bt
    cdef readonly str path
    cdef readonly uint32_t page_size
    cdef readonly uint32_t max_key
    cdef bint closed

    def __cinit__(self, str path, uint32_t page_size, uint64_t cache_bytes, bint sync,
                  bint simulate_fs):
        cdef char error[256]
        cdef int status
        self.path = path
        p = path.encode()
        cdef const char *cp = p
        with nogil:
            status = tw_bt_open(cp, page_size, cache_bytes, sync, simulate_fs, &self.bt, error,
                                sizeof(error))
        if status != TW_OK:
            message = error.decode("utf-8", "replace")
            if status == TW_BT_NOTFOUND:
                raise NotFound(f"no B-tree file: {message}")
            if status == TW_ERR_CORRUPT:
                raise Corruption(message)
            if status == TW_ERR_INVALID:
                raise InvalidInput(message)
            if status == TW_ERR_NOMEM:
                raise MemoryError(f"opening {path}: out of memory")
            raise Unavailable(f"cannot open B-tree file: {message}")
        self.page_size = tw_bt_page_size(self.bt)
        self.max_key = tw_bt_max_key(self.bt)

    def __dealloc__(self):
        if self.bt != NULL:
            with nogil:
                tw_bt_free(self.bt)
            self.bt = NULL

    cdef str last_error(self):
        cdef char message[256]
        tw_bt_last_error(self.bt, message, sizeof(message))
        return message.decode("utf-8", "replace")

    cdef int check_status(self, int status, str what) except -1:
        """The choke point: turn a csrc/btree status into a trusswork error."""
        if status == TW_OK:
            return 0
        if status == TW_ERR_CORRUPT:
            raise Corruption(f"{self.path}: {what}: {self.last_error()}")
        if status == TW_ERR_INVALID:
            raise InvalidInput(f"{what}: {self.last_error()}")
        if status == TW_ERR_IO:
            detail = self.last_error() or "failed"
            raise Unavailable(f"{self.path}: {what}: {detail}; reopen the tree to recover "
                              f"its last commit")
        if status == TW_ERR_NOMEM:
            raise MemoryError(f"{what}: out of memory")
        raise RuntimeError(f"{what}: internal error (status {status})")

    cdef int live(self) except -1:
        if self.closed:
            raise Unavailable(f"{self.path}: the B-tree is closed")
        return 0

    cdef int check_key(self, Arg *k) except -1:
        if k.len == 0 or k.len > self.max_key:
            put_arg(k)
            raise InvalidInput(f"key of {k.len} bytes: keys are 1 to {self.max_key} bytes")
        return 0

    def close(self):
        cdef int status
        if self.closed:
            return
        self.closed = True
        with nogil:
            status = tw_bt_close(self.bt)
        self.check_status(status, "close")

    def snapshot(self):
        self.live()
        cdef Snapshot s = Snapshot.__new__(Snapshot)
        cdef int status
        with nogil:
            status = tw_bt_snapshot_begin(self.bt, &s.snap)
        self.check_status(status, "snapshot")
        s.tree = self
        return s

    def get(self, key, Snapshot snap=None, bint in_txn=False):
        """The value of key, or None."""
        return self.fetch(key, snap, in_txn)

    def lookup(self, key, default=None):
        """The value of key in the last commit, or default (BTree.get)."""
        value = self.fetch(key, None, False)
        return default if value is None else value

    cdef object fetch(self, key, Snapshot snap, bint in_txn):
        self.live()
        cdef Arg k
        cdef uint8_t stack[STACK_VALUE]
        cdef size_t vlen = 0, cap
        cdef uint8_t *out
        cdef int status
        cdef const tw_bt_snapshot *sp = &snap.snap if snap is not None else NULL
        get_arg(key, &k, "key")
        self.check_key(&k)
        try:
            with nogil:
                status = tw_bt_get(self.bt, sp, in_txn, k.ptr, k.len, stack, STACK_VALUE, &vlen)
            if status == TW_OK:
                return PyBytes_FromStringAndSize(<char *>stack, vlen)
            while status == TW_ERR_NOSPACE:
                cap = vlen
                result = PyBytes_FromStringAndSize(NULL, cap)
                out = <uint8_t *>PyBytes_AS_STRING(result)
                with nogil:
                    status = tw_bt_get(self.bt, sp, in_txn, k.ptr, k.len, out, cap, &vlen)
                if status == TW_OK:
                    return result if vlen == cap else result[:vlen]
            if status == TW_BT_NOTFOUND:
                return None
            self.check_status(status, "get")
        finally:
            put_arg(&k)

    def begin(self):
        self.live()
        cdef int status
        with nogil:
            status = tw_bt_begin(self.bt)
        self.check_status(status, "begin transaction")

    def put(self, key, value):
        self.write_pair(key, value, False)

    cdef int write_pair(self, key, value, bint bulk) except -1:
        """Put (or bulk-add) one pair: argument checks, then C without the GIL."""
        self.live()
        cdef Arg k, v
        cdef int status
        get_arg(key, &k, "key")
        self.check_key(&k)
        try:
            get_arg(value, &v, "value")
        except BaseException:
            put_arg(&k)
            raise
        try:
            with nogil:
                if bulk:
                    status = tw_bt_bulk_add(self.bt, k.ptr, k.len, v.ptr, v.len)
                else:
                    status = tw_bt_put(self.bt, k.ptr, k.len, v.ptr, v.len)
        finally:
            put_arg(&k)
            put_arg(&v)
        return self.check_status(status, "bulk load" if bulk else "put")

    def delete(self, key):
        """True when key was there."""
        self.live()
        cdef Arg k
        cdef int status
        get_arg(key, &k, "key")
        self.check_key(&k)
        try:
            with nogil:
                status = tw_bt_delete(self.bt, k.ptr, k.len)
        finally:
            put_arg(&k)
        if status == TW_BT_NOTFOUND:
            return False
        self.check_status(status, "delete")
        return True

    def bulk_add(self, key, value):
        self.write_pair(key, value, True)

    def commit(self):
        self.live()
        cdef int status
        with nogil:
            status = tw_bt_commit(self.bt)
        self.check_status(status, "commit")

    def abort(self):
        cdef int status
        with nogil:
            status = tw_bt_abort(self.bt)
        self.check_status(status, "abort")

    def count(self, Snapshot snap, bint in_txn, lo, hi):
        self.live()
        cdef tw_bt_range r
        cdef Arg lo_a, hi_a
        cdef uint64_t c = 0
        cdef int status
        cdef const tw_bt_snapshot *sp = &snap.snap if snap is not None else NULL
        lo_a.has_view = 0
        hi_a.has_view = 0
        r.lo = NULL
        r.hi = NULL
        r.lo_len = r.hi_len = 0
        r.lo_excl = 0
        r.hi_excl = 1
        r.reverse = 0
        r.keys_only = 1
        try:
            if lo is not None:
                get_arg(lo, &lo_a, "start")
                r.lo = lo_a.ptr
                r.lo_len = lo_a.len
            if hi is not None:
                get_arg(hi, &hi_a, "stop")
                r.hi = hi_a.ptr
                r.hi_len = hi_a.len
            with nogil:
                status = tw_bt_count(self.bt, sp, in_txn, &r, &c)
        finally:
            put_arg(&lo_a)
            put_arg(&hi_a)
        self.check_status(status, "count")
        return c

    def stats(self, bint in_txn=False):
        self.live()
        cdef tw_bt_stats s
        with nogil:
            tw_bt_stats_get(self.bt, in_txn, &s)
        return _stats_dict(&s)

    def check(self):
        self.live()
        cdef tw_bt_stats s
        cdef int status
        with nogil:
            status = tw_bt_check(self.bt, &s)
        self.check_status(status, "check")
        return _stats_dict(&s)

    def simulate_power_loss(self, uint64_t seed):
        cdef int status
        with nogil:
            status = tw_bt_simulate_power_loss(self.bt, seed)
        if status == TW_ERR_INVALID:
            raise InvalidInput("power loss needs a tree opened with _simulate_fs=True")
        self.check_status(status, "simulate power loss")

    def arm_power_loss(self, uint64_t nth_sync, uint64_t seed):
        cdef int status = tw_bt_arm_power_loss(self.bt, nth_sync, seed)
        if status == TW_ERR_INVALID:
            raise InvalidInput("power loss needs a tree opened with _simulate_fs=True")


cdef dict _stats_dict(tw_bt_stats *s):
    return {"txn_id": s.txn, "keys": s.keys, "pages": s.pages, "free_pages": s.free_pages,
            "leaf_pages": s.leaf_pages, "branch_pages": s.branch_pages,
            "overflow_pages": s.overflow_pages, "freelist_pages": s.freelist_pages,
            "depth": s.depth, "page_size": s.page_size}


cdef class Iter:
    """Iterator over a key range, filled from C in batches.

    Each batch re-seeks just past the last key returned, so an iterator over
    a snapshot sees exactly that snapshot and one inside a transaction sees
    the transaction's writes as they happen, never an invalid position.
    """
    cdef Tree tree
    cdef Snapshot snap
    cdef bint in_txn, lo_excl, hi_excl, reverse, done
    cdef int mode
    cdef bytes lo
    cdef bytes hi
    cdef uint8_t *buf
    cdef size_t cap, n, i, off, batch

    def __cinit__(self, Tree tree, Snapshot snap, bint in_txn, start, stop, bint reverse,
                  int mode):
        self.tree = tree
        self.snap = snap
        self.in_txn = in_txn
        self.reverse = reverse
        self.mode = mode
        self.hi_excl = True
        for bound in (start, stop):
            if bound is not None and not isinstance(bound, (bytes, bytearray, memoryview)):
                raise TypeError(f"start and stop must be bytes-like or None, not "
                                f"{type(bound).__name__}")
        self.lo = None if start is None else bytes(start)
        self.hi = None if stop is None else bytes(stop)
        # The first batch is one pair, so first()/last() and iterators stopped
        # early read only the leaves they need (a damaged leaf beyond them is
        # not touched); batches then grow 4x per fill up to 1024.
        self.batch = 1
        self.cap = SCAN_BUFFER
        self.buf = <uint8_t *>malloc(self.cap)
        if self.buf == NULL:
            raise MemoryError("iterator: out of memory")

    def __dealloc__(self):
        free(self.buf)
        self.release()

    cdef void release(self):
        if self.snap is not None:
            self.snap.release()
            self.snap = None

    def __iter__(self):
        return self

    cdef int fill(self) except -1:
        cdef tw_bt_range r
        cdef int status, done = 0
        cdef size_t used = 0
        cdef uint8_t *grown
        cdef const tw_bt_snapshot *sp = &self.snap.snap if self.snap is not None else NULL
        self.tree.live()
        r.lo = NULL if self.lo is None else <const uint8_t *>PyBytes_AS_STRING(self.lo)
        r.lo_len = 0 if self.lo is None else PyBytes_GET_SIZE(self.lo)
        r.hi = NULL if self.hi is None else <const uint8_t *>PyBytes_AS_STRING(self.hi)
        r.hi_len = 0 if self.hi is None else PyBytes_GET_SIZE(self.hi)
        r.lo_excl = self.lo_excl
        r.hi_excl = self.hi_excl
        r.reverse = self.reverse
        r.keys_only = self.mode == KEYS
        while True:
            with nogil:
                status = tw_bt_scan(self.tree.bt, sp, self.in_txn, &r, self.buf, self.cap,
                                    self.batch, &self.n, &used, &done)
            if status != TW_ERR_NOSPACE:
                break
            grown = <uint8_t *>realloc(self.buf, used)
            if grown == NULL:
                raise MemoryError("iterator: out of memory")
            self.buf = grown
            self.cap = used
        self.tree.check_status(status, "scan")
        self.done = done
        self.i = 0
        self.off = 0
        if self.batch < 1024:
            self.batch *= 4
        return 0

    def __next__(self):
        cdef uint32_t kl, vl
        cdef uint8_t *p
        if self.i == self.n:
            if self.done:
                self.release()
                raise StopIteration
            self.fill()
            if self.n == 0:
                self.release()
                raise StopIteration
        p = self.buf + self.off
        memcpy(&kl, p, 4)
        memcpy(&vl, p + 4, 4)
        self.off += 8 + kl + vl
        self.i += 1
        key = None
        if self.mode != VALUES or self.i == self.n:
            key = PyBytes_FromStringAndSize(<char *>p + 8, kl)
        if self.i == self.n:
            # the next batch starts just past this key
            if self.reverse:
                self.hi = key
                self.hi_excl = True
            else:
                self.lo = key
                self.lo_excl = True
        if self.mode == KEYS:
            return key
        value = PyBytes_FromStringAndSize(<char *>p + 8 + kl, vl)
        if self.mode == VALUES:
            return value
        return (key, value)
