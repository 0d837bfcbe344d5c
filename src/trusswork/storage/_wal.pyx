# cython: boundscheck=False, wraparound=False
"""Compiled write path and record codec of the write-ahead log (csrc/wal).

trusswork.storage.wal builds the public WriteAheadLog on these. Every C
status passes through check_status; appends, flushes, waits and batch
parsing run without the GIL.
"""
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc

from trusswork._includes.common cimport (
    TW_ERR_CORRUPT,
    TW_ERR_INVALID,
    TW_ERR_IO,
    TW_ERR_NOMEM,
    TW_ERR_TRUNCATED,
    TW_OK,
)
from trusswork._includes.wal cimport *

from trusswork.core.errors import Corruption, InvalidInput, Unavailable

SEGMENT_HEADER = TW_WAL_SEGMENT_HEADER
RECORD_HEADER = TW_WAL_RECORD_HEADER
MAX_PAYLOAD = TW_WAL_MAX_PAYLOAD
SYNC_MODES = {"always": TW_WAL_SYNC_ALWAYS, "group": TW_WAL_SYNC_GROUP,
              "interval": TW_WAL_SYNC_INTERVAL, "never": TW_WAL_SYNC_NEVER}
# parse() statuses, as Python ints
OK = TW_OK
TRUNCATED = TW_ERR_TRUNCATED
CORRUPT = TW_ERR_CORRUPT


cdef int check_status(int status, _Writer writer, str what) except -1:
    """The choke point: turn a csrc/wal status into a trusswork error."""
    cdef char message[256]
    if status == TW_OK:
        return 0
    if status == TW_ERR_INVALID:
        raise InvalidInput(f"{what}: a record payload is limited to {MAX_PAYLOAD} bytes")
    if status == TW_ERR_NOMEM:
        raise MemoryError(f"{what}: out of memory")
    if status == TW_ERR_IO:
        detail = "the log is closed"
        if writer is not None and writer.log != NULL:
            tw_wal_last_error(writer.log, message, sizeof(message))
            if message[0]:
                detail = message.decode("utf-8", "replace")
        raise Unavailable(f"{what}: write-ahead log failed ({detail}); records not yet "
                          f"durable are lost, reopen the log to recover")
    raise RuntimeError(f"{what}: internal error (status {status})")


cdef class _Writer:
    """The append side of one open log (csrc/wal tw_wal)."""

    # The C log lives as long as this object: close() shuts it down but keeps
    # the memory, so a call racing with close fails cleanly instead of using
    # freed memory; __dealloc__ (no method can be running then) frees it.
    cdef tw_wal *log
    cdef bint closed

    def __cinit__(self, str directory, str segment_path, uint64_t segment_first_lsn,
                  uint64_t next_lsn, str mode, uint64_t segment_bytes, uint32_t interval_ms,
                  uint64_t buffer_bytes):
        cdef tw_wal_options options
        cdef char error[256]
        cdef int status
        options.sync_mode = SYNC_MODES[mode]
        options.segment_bytes = segment_bytes
        options.interval_ms = interval_ms
        options.buffer_bytes = buffer_bytes
        d = directory.encode()
        p = segment_path.encode()
        cdef const char *cd = d
        cdef const char *cp = p
        with nogil:
            status = tw_wal_open(cd, cp, segment_first_lsn, next_lsn, &options, &self.log,
                                 error, sizeof(error))
        if status != TW_OK:
            message = error.decode("utf-8", "replace")
            if status == TW_ERR_IO:
                raise Unavailable(f"cannot open write-ahead log segment: {message}")
            raise InvalidInput(f"cannot open write-ahead log: {message}")

    def __dealloc__(self):
        if self.log != NULL:
            with nogil:
                tw_wal_free(self.log)
            self.log = NULL

    cdef tw_wal *live(self) except NULL:
        if self.closed or self.log == NULL:
            raise InvalidInput("the write-ahead log is closed")
        return self.log

    def append(self, payload):
        cdef Py_buffer view
        cdef uint64_t lsn = 0
        cdef int status
        cdef tw_wal *log = self.live()
        cdef const uint8_t *data
        cdef size_t length
        if type(payload) is bytes:
            data = <const uint8_t *>PyBytes_AS_STRING(payload)
            length = PyBytes_GET_SIZE(payload)
            with nogil:
                status = tw_wal_append(log, data, length, &lsn)
        else:
            try:
                PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE)
            except (TypeError, ValueError, BufferError):
                raise TypeError(f"append needs a bytes-like payload, not "
                                f"{type(payload).__name__}") from None
            try:
                with nogil:
                    status = tw_wal_append(log, <const uint8_t *>view.buf, view.len, &lsn)
            finally:
                PyBuffer_Release(&view)
        check_status(status, self, "append")
        return lsn

    def append_many(self, payloads):
        """Append a sequence of bytes-like payloads; returns the first LSN."""
        try:
            items = [p if type(p) is bytes else memoryview(p).tobytes() for p in payloads]
        except TypeError as exc:
            raise TypeError(f"append_many needs bytes-like payloads ({exc})") from None
        cdef size_t n = len(items), i
        cdef uint64_t first = 0
        cdef int status
        cdef tw_wal *log = self.live()
        cdef const uint8_t **pointers = <const uint8_t **>malloc((n or 1) * sizeof(uint8_t *))
        cdef size_t *lengths = <size_t *>malloc((n or 1) * sizeof(size_t))
        if pointers == NULL or lengths == NULL:
            free(pointers)
            free(lengths)
            raise MemoryError("append_many: out of memory")
        try:
            for i in range(n):
                pointers[i] = <const uint8_t *>PyBytes_AS_STRING(items[i])
                lengths[i] = PyBytes_GET_SIZE(items[i])
            with nogil:
                status = tw_wal_append_many(log, pointers, lengths, n, &first)
        finally:
            free(pointers)
            free(lengths)
        check_status(status, self, "append_many")
        return first

    def flush(self, bint sync):
        cdef int status
        cdef tw_wal *log = self.live()
        with nogil:
            status = tw_wal_flush(log, sync)
        check_status(status, self, "flush")

    def wait_written(self, uint64_t lsn, double timeout, bint durable=False):
        """True once record lsn is in the file (with durable: synced); False after timeout."""
        cdef int status
        # Negative, NaN, infinite or absurdly long (over 30 years) mean: forever.
        cdef int64_t ms = <int64_t>(timeout * 1000) if 0 <= timeout < 1e9 else -1
        cdef tw_wal *log = self.live()
        with nogil:
            status = tw_wal_wait_written(log, lsn, ms, durable)
        if status == TW_ERR_TRUNCATED:
            return False
        check_status(status, self, "follow")
        return True

    def positions(self):
        """(next LSN, last written LSN, last durable LSN)."""
        cdef uint64_t next_lsn, written, durable
        tw_wal_positions(self.live(), &next_lsn, &written, &durable)
        return next_lsn, written, durable

    def active_segment(self):
        return tw_wal_active_segment(self.live())

    def close(self):
        cdef int status
        cdef tw_wal *log = self.log
        if self.closed or log == NULL:
            return
        self.closed = True
        with nogil:
            status = tw_wal_close(log)
        check_status(status, self, "close")

    def simulate_power_loss(self, uint64_t keep_unsynced):
        """Test hook: drop unsynced bytes but keep_unsynced, then close."""
        cdef tw_wal *log = self.live()
        self.closed = True
        with nogil:
            tw_wal_simulate_power_loss(log, keep_unsynced)


def segment_header(uint64_t first_lsn):
    out = PyBytes_FromStringAndSize(NULL, TW_WAL_SEGMENT_HEADER)
    tw_wal_segment_header(<uint8_t *>PyBytes_AS_STRING(out), first_lsn)
    return out


def read_segment_header(const uint8_t[::1] data):
    """First LSN from a segment header; None if truncated, -1 if damaged."""
    cdef uint64_t first = 0
    cdef int status = tw_wal_read_segment_header(&data[0] if data.shape[0] else NULL,
                                                 data.shape[0], &first)
    if status == TW_ERR_TRUNCATED:
        return None
    if status != TW_OK:
        return -1
    return first


def parse(data, size_t offset, uint64_t expect_lsn, size_t max_records):
    """Parse up to max_records records from data[offset:]; returns (records, end, status).

    records is a list of (lsn, payload bytes); status is OK, TRUNCATED (a
    record at `end` runs past the data) or CORRUPT (the record at `end` is
    damaged or out of sequence).
    """
    cdef Py_buffer view
    cdef size_t n = 0, end = offset, i
    cdef int status
    cdef tw_wal_entry *entries
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    entries = NULL
    try:
        if offset > <size_t>view.len:
            raise InvalidInput(f"parse: offset {offset} beyond {view.len} bytes")
        if max_records == 0 or offset == <size_t>view.len:
            return [], offset, TW_OK
        # No more records can fit than headers in the remaining bytes (one more
        # slot lets the parser see, and report, a partial record at the end).
        max_records = min(max_records, (view.len - offset) // TW_WAL_RECORD_HEADER + 1)
        entries = <tw_wal_entry *>malloc(max_records * sizeof(tw_wal_entry))
        if entries == NULL:
            raise MemoryError("parse: out of memory")
        with nogil:
            status = tw_wal_parse(<const uint8_t *>view.buf, view.len, offset, expect_lsn,
                                  entries, max_records, &n, &end)
        base = <const char *>view.buf
        records = [(entries[i].lsn,
                    PyBytes_FromStringAndSize(base + entries[i].payload_offset, entries[i].length))
                   for i in range(n)]
    finally:
        PyBuffer_Release(&view)
        free(entries)
    return records, end, status


def find_record(data, size_t start, uint64_t min_lsn, bint after_sync=False):
    """Offset of the first whole valid record at or after start with lsn >= min_lsn
    (with after_sync: of type AFTER_SYNC, which begins a write made once every
    earlier byte was synced), or -1."""
    cdef Py_buffer view
    cdef int64_t found
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        with nogil:
            if after_sync:
                found = tw_wal_find_after_sync(<const uint8_t *>view.buf, view.len, start, min_lsn)
            else:
                found = tw_wal_find_record(<const uint8_t *>view.buf, view.len, start, min_lsn)
    finally:
        PyBuffer_Release(&view)
    return found
