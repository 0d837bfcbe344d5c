# cython: boundscheck=False, wraparound=False
"""Compiled in-process rate limiters over csrc/bucket tables.

trusswork.ratelimit re-exports these. A key (str, bytes or int) becomes a
128-bit fingerprint here; the decision is made in C under the table's mutex.
Batches (acquire_many) are decided without the GIL.
"""
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.long cimport PyLong_AsLongLong, PyLong_AsLongLongAndOverflow
from cpython.number cimport PyIndex_Check
from libc.math cimport INFINITY, isfinite, llround
from libc.stdint cimport INT64_MAX, int64_t, uint8_t, uint64_t
from libc.stdlib cimport free, malloc
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

from trusswork._includes.bucket cimport *
from trusswork._includes.common cimport TW_ERR_INVALID, TW_ERR_NOMEM, TW_OK

import math
import os

from trusswork.core.errors import InvalidInput

cdef extern from "Python.h":
    const char *PyUnicode_AsUTF8AndSize(object unicode, Py_ssize_t *size) except NULL

ALGORITHMS = ("token_bucket", "sliding_window", "sliding_window_counter", "fixed_window")
LOG_MAX = TW_BUCKET_LOG_MAX

# Seeds of the key kinds: "a" (str), b"a" and 97 are three keys. Random per process, so
# nobody can choose keys that collide in another process's table.
cdef uint64_t _seed = int.from_bytes(os.urandom(8), "little")
cdef uint64_t SEED_STR = _seed ^ 0x9e3779b97f4a7c15ULL
cdef uint64_t SEED_BYTES = _seed ^ 0xc2b2ae3d27d4eb4fULL
cdef uint64_t SEED_INT = _seed ^ 0x165667b19e3779f9ULL
cdef uint64_t SEED_BIGINT = _seed ^ 0x27d4eb2f165667c5ULL
cdef int64_t MAX_LEVELS = 64


@cython.freelist(64)
cdef class Decision:
    """The answer to one request.

    Attributes
    ----------
    allowed : bool
        Whether the request may go ahead. ``bool(decision)`` is the same.
    remaining : int
        Units the key may still spend now, after this decision.
    retry_after : float
        Seconds until this same request would be allowed: 0.0 when it is
        allowed, ``math.inf`` when its cost is above the limit's capacity.
    reset_after : float
        Seconds until the key is back to its full capacity.
    limit : int
        The quota: the burst of a token bucket, the units per window of the
        window algorithms.
    """

    cdef readonly bint allowed
    cdef readonly int64_t remaining
    cdef readonly double retry_after
    cdef readonly double reset_after
    cdef readonly int64_t limit

    def __init__(self, bint allowed, int64_t remaining, double retry_after, double reset_after,
                 int64_t limit):
        self.allowed = allowed
        self.remaining = remaining
        self.retry_after = retry_after
        self.reset_after = reset_after
        self.limit = limit

    def __bool__(self):
        return self.allowed

    def __eq__(self, other):
        if type(other) is not Decision:
            return NotImplemented
        cdef Decision o = other
        return (self.allowed == o.allowed and self.remaining == o.remaining
                and self.retry_after == o.retry_after and self.reset_after == o.reset_after
                and self.limit == o.limit)

    def __hash__(self):
        return hash((self.allowed, self.remaining, self.retry_after, self.reset_after, self.limit))

    def __repr__(self):
        return (f"Decision(allowed={self.allowed}, remaining={self.remaining}, "
                f"retry_after={self.retry_after!r}, reset_after={self.reset_after!r}, "
                f"limit={self.limit})")

    def __reduce__(self):
        return (Decision, (self.allowed, self.remaining, self.retry_after, self.reset_after,
                           self.limit))

    def as_dict(self):
        """The decision as a JSON-ready dict (``retry_after`` inf becomes ``None``)."""
        return {
            "allowed": self.allowed,
            "remaining": self.remaining,
            "retry_after": self.retry_after if isfinite(self.retry_after) else None,
            "reset_after": self.reset_after,
            "limit": self.limit,
        }


cdef inline double _seconds(int64_t ns) noexcept nogil:
    return INFINITY if ns == TW_BUCKET_NEVER else <double>ns / 1e9


cdef inline Decision _decision(tw_bucket_decision *d, int64_t limit):
    cdef Decision r = Decision.__new__(Decision)
    r.allowed = d.allowed
    r.remaining = d.remaining
    r.retry_after = _seconds(d.retry_after_ns)
    r.reset_after = _seconds(d.reset_after_ns)
    r.limit = limit
    return r


cdef int _fingerprint(object key, uint64_t *hi, uint64_t *lo) except -1:
    """The 128-bit fingerprint of a key; InvalidInput for anything but str, bytes, int."""
    cdef Py_ssize_t size
    cdef const char *data
    cdef type kind = type(key)
    if kind is str:
        data = PyUnicode_AsUTF8AndSize(key, &size)
        tw_bucket_hash(data, <size_t>size, SEED_STR, hi, lo)
        return 0
    cdef int overflow = 0
    cdef long long value
    if kind is int:
        value = PyLong_AsLongLongAndOverflow(key, &overflow)
        if not overflow:
            tw_bucket_hash_u64(<uint64_t>value, SEED_INT, hi, lo)
        else:
            data_bytes = str(key).encode()
            tw_bucket_hash(PyBytes_AS_STRING(data_bytes), <size_t>PyBytes_GET_SIZE(data_bytes),
                           SEED_BIGINT, hi, lo)
        return 0
    if kind is bytes:
        tw_bucket_hash(PyBytes_AS_STRING(key), <size_t>PyBytes_GET_SIZE(key), SEED_BYTES, hi, lo)
        return 0
    if isinstance(key, str):
        return _fingerprint(str.__str__(key), hi, lo)
    if isinstance(key, (bytes, bytearray, memoryview)) and not isinstance(key, str):
        return _fingerprint(bytes(key), hi, lo)
    if not isinstance(key, bool) and PyIndex_Check(key):
        return _fingerprint(int(key.__index__()), hi, lo)
    raise InvalidInput(f"a rate-limit key must be str, bytes or int, not {kind.__name__}")


cdef int64_t _cost(object cost) except -1:
    cdef int overflow = 0
    cdef long long value
    if type(cost) is int:
        value = PyLong_AsLongLongAndOverflow(cost, &overflow)
        if not overflow and value >= 0:
            return value
    if isinstance(cost, bool) or not PyIndex_Check(cost):
        raise InvalidInput(f"cost must be a non-negative int, not {type(cost).__name__}")
    index = cost.__index__()
    if not 0 <= index <= INT64_MAX:
        raise InvalidInput(f"cost must be a non-negative int (at most 2**63 - 1), not {index}")
    return index


cdef int64_t _to_ns(double seconds, str what) except? -1:
    if not isfinite(seconds) or not -9.2e9 < seconds < 9.2e9:
        raise InvalidInput(f"{what} must be a finite number of seconds, not {seconds!r}")
    return llround(seconds * 1e9)


cdef class _Limiter:
    """One limit for any number of keys: a csrc/bucket table and its clock."""

    cdef tw_bucket_table *table
    cdef object _clock
    cdef int64_t _limit
    cdef int64_t _period
    cdef readonly str algorithm

    def __cinit__(self):
        self.table = NULL
        self._clock = None

    def __dealloc__(self):
        tw_bucket_free(self.table)

    cdef int _make(self, int algorithm, int64_t period, int64_t limit, object clock) except -1:
        cdef int status = TW_OK
        if clock is not None and not callable(clock):
            raise InvalidInput(f"clock must be a callable returning seconds, not {type(clock).__name__}")
        if self.table != NULL:
            raise InvalidInput(f"{type(self).__name__} is already initialised")
        self.table = tw_bucket_new(algorithm, period, limit, &status)
        if self.table == NULL:
            if status == TW_ERR_NOMEM:
                raise MemoryError("out of memory making a rate-limit table")
            raise InvalidInput(f"rate-limit parameters out of range (period {period} ns, limit {limit})")
        self._clock = clock
        self._limit = limit
        self._period = period
        self.algorithm = ALGORITHMS[algorithm]
        return 0

    cdef inline int _ready(self) except -1:
        if self.table == NULL:
            raise InvalidInput(f"{type(self).__name__} was not initialised")
        return 0

    cdef int64_t _now(self) except? -1:
        cdef timespec ts
        if self._clock is None:
            clock_gettime(CLOCK_MONOTONIC, &ts)
            return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec
        now = self._clock()
        if type(now) is not float and (isinstance(now, bool) or not isinstance(now, (int, float))):
            raise InvalidInput(f"the clock returned {type(now).__name__}, not a number of seconds")
        return _to_ns(now, "the clock's time")

    cdef int _check(self, int status) except -1:
        if status == TW_OK:
            return 0
        if status == TW_ERR_NOMEM:
            raise MemoryError("out of memory growing a rate-limit table")
        raise InvalidInput("invalid rate-limit request")

    cdef Decision _decide(self, object key, object cost, int commit):
        cdef uint64_t hi, lo
        cdef tw_bucket_decision d
        cdef int64_t c = _cost(cost)
        self._ready()
        _fingerprint(key, &hi, &lo)
        self._check(tw_bucket_acquire(self.table, hi, lo, c, self._now(), commit, &d))
        return _decision(&d, self._limit)

    def acquire(self, key, cost=1):
        """Decide a request of ``cost`` units for ``key`` and record it if allowed.

        Parameters
        ----------
        key : str, bytes or int
            Whose limit: a user, an IP, a route. Keys of different types are
            different keys (``"1"``, ``b"1"`` and ``1``).
        cost : int
            Units the request takes (default 1); 0 asks without taking.

        Returns
        -------
        Decision

        Raises
        ------
        InvalidInput
            For a key of another type, or a cost that is not a non-negative int.
        """
        return self._decide(key, cost, 1)

    def peek(self, key, cost=1):
        """The decision :meth:`acquire` would make now, without recording anything."""
        return self._decide(key, cost, 0)

    def acquire_many(self, keys, costs=1):
        """Decide many requests in order, as ``acquire`` one after another at one time.

        Parameters
        ----------
        keys : numpy integer array or sequence of keys
            An integer array is hashed without the GIL (its values are the same
            keys as the Python ints); a sequence may mix str, bytes and int.
        costs : int or sequence of int
            One cost for all, or one per key.

        Returns
        -------
        Decisions
            numpy arrays ``allowed``, ``remaining``, ``retry_after``, ``reset_after``.
        """
        import numpy as np

        cdef Py_ssize_t n, i
        cdef int64_t one_cost = 0
        cdef int status
        cdef bint integers
        cdef int64_t now
        cdef uint64_t[::1] hi
        cdef uint64_t[::1] lo
        cdef int64_t[::1] ints
        cdef const int64_t *cost_data = NULL
        cdef int64_t[::1] cost_view
        self._ready()
        array = keys if isinstance(keys, np.ndarray) else None
        if array is not None and array.ndim != 1:
            raise InvalidInput(f"keys must be one-dimensional, not {array.ndim}-dimensional")
        integers = array is not None and array.dtype.kind in "iu" and (
            array.dtype.kind == "i" or array.size == 0 or array.max() <= INT64_MAX
        )
        if integers:
            # Hashed in C, in the decision loop: the same keys as the Python ints.
            ints = np.ascontiguousarray(array, dtype=np.int64)
            n = ints.shape[0]
        else:
            if array is not None and array.dtype.kind not in "iuUSO":
                raise InvalidInput(f"keys of dtype {array.dtype} are not str, bytes or int")
            items = array.tolist() if array is not None else list(keys)
            n = len(items)
            hi = np.empty(n, dtype=np.uint64)
            lo = np.empty(n, dtype=np.uint64)
            for i in range(n):
                _fingerprint(items[i], &hi[i], &lo[i])
        if isinstance(costs, (int, np.integer)) and not isinstance(costs, bool):
            one_cost = _cost(costs)
        else:
            given = np.asarray(costs)
            if given.dtype.kind not in "iu" or given.ndim != 1:
                raise InvalidInput("costs must be an int or a one-dimensional sequence of ints")
            if given.shape[0] != n:
                raise InvalidInput(f"{given.shape[0]} costs for {n} keys")
            if n and given.min() < 0:
                raise InvalidInput("costs must be non-negative")
            if given.dtype.kind == "u" and n and given.max() > INT64_MAX:
                raise InvalidInput("a cost is above 2**63 - 1")
            cost_view = np.ascontiguousarray(given, dtype=np.int64)
            if n:
                cost_data = &cost_view[0]
        allowed = np.empty(n, dtype=np.bool_)
        remaining = np.empty(n, dtype=np.int64)
        retry_after = np.empty(n, dtype=np.float64)
        reset_after = np.empty(n, dtype=np.float64)
        cdef uint8_t[::1] allowed_view = allowed.view(np.uint8)
        cdef int64_t[::1] remaining_view = remaining
        cdef double[::1] retry_view = retry_after
        cdef double[::1] reset_view = reset_after
        now = self._now()
        if n and integers:
            with nogil:
                status = tw_bucket_acquire_batch_u64(
                    self.table, <const uint64_t *>&ints[0], SEED_INT, cost_data, one_cost,
                    <size_t>n, now, &allowed_view[0], &remaining_view[0], &retry_view[0],
                    &reset_view[0])
            self._check(status)
        elif n:
            with nogil:
                status = tw_bucket_acquire_batch(
                    self.table, &hi[0], &lo[0], cost_data, one_cost, <size_t>n, now,
                    &allowed_view[0], &remaining_view[0], &retry_view[0], &reset_view[0])
            self._check(status)
        return Decisions(allowed, remaining, retry_after, reset_after, self._limit)

    def reset(self, key):
        """Forget ``key``: its next request finds a full bucket. True if it was held."""
        cdef uint64_t hi, lo
        self._ready()
        _fingerprint(key, &hi, &lo)
        return bool(tw_bucket_reset(self.table, hi, lo))

    def sweep(self):
        """Drop every key that is back to full capacity now; returns how many."""
        self._ready()
        cdef int64_t now = self._now()
        cdef size_t dropped
        with nogil:
            dropped = tw_bucket_sweep(self.table, now)
        return dropped

    def __len__(self):
        self._ready()
        return tw_bucket_len(self.table)

    @property
    def memory_bytes(self):
        """Bytes of key slots the table holds now."""
        self._ready()
        return tw_bucket_memory(self.table)

    @property
    def limit(self):
        """The quota: burst for a token bucket, units per window otherwise."""
        return self._limit


cdef class TokenBucket(_Limiter):
    """A token bucket per key, in GCRA form: one timestamp per key, no refill thread.

    Parameters
    ----------
    rate : float
        Tokens added per second.
    burst : int
        The bucket's capacity: how many units a full bucket admits at once.
    clock : callable, optional
        Zero-argument callable returning seconds; ``time.monotonic`` by default.
    """

    cdef readonly double rate
    cdef readonly int64_t burst

    def __init__(self, rate, burst, *, clock=None):
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate <= 0:
            raise InvalidInput(f"rate must be a positive number of tokens per second, not {rate!r}")
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise InvalidInput(f"burst must be an int >= 1, not {burst!r}")
        interval = math.ceil(1e9 / rate)
        if interval < 1 or interval > INT64_MAX or burst > INT64_MAX // interval:
            raise InvalidInput(f"rate {rate!r} with burst {burst} is out of range")
        self._make(TW_BUCKET_TOKEN, interval, burst, clock)
        self.rate = rate
        self.burst = burst

    @property
    def window(self):
        """Seconds a full bucket takes to refill from empty: ``burst / rate``."""
        return self._period * self._limit / 1e9

    def __repr__(self):
        return f"TokenBucket(rate={self.rate!r}, burst={self.burst})"


cdef int64_t _window_ns(object window_seconds) except -1:
    if (isinstance(window_seconds, bool) or not isinstance(window_seconds, (int, float))
            or not math.isfinite(window_seconds) or window_seconds <= 0):
        raise InvalidInput(f"window_seconds must be a positive number, not {window_seconds!r}")
    ns = _to_ns(window_seconds, "window_seconds")
    if ns < 1:
        raise InvalidInput(f"window_seconds {window_seconds!r} is under a nanosecond")
    return ns


cdef int64_t _limit_arg(object limit) except -1:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1 or limit > INT64_MAX:
        raise InvalidInput(f"limit must be an int >= 1, not {limit!r}")
    return limit


cdef class SlidingWindow(_Limiter):
    """At most ``limit`` units per key in any window of ``window_seconds``.

    Parameters
    ----------
    limit : int
        Units admitted per window.
    window_seconds : float
        The window's length.
    exact : bool
        True (default): a sliding log, exact, 8 bytes per unit of ``limit``
        per key (``limit`` at most 2**20). False: Cloudflare's sliding-window
        counter, 24 bytes per key, approximate (it assumes the previous
        window's requests were spread evenly).
    clock : callable, optional
        Zero-argument callable returning seconds; ``time.monotonic`` by default.
    """

    cdef readonly bint exact

    def __init__(self, limit, window_seconds, *, exact=True, clock=None):
        cdef int64_t units = _limit_arg(limit)
        if exact and units > TW_BUCKET_LOG_MAX:
            raise InvalidInput(
                f"an exact sliding window keeps one timestamp per unit: limit {limit} is above "
                f"{TW_BUCKET_LOG_MAX}; use exact=False (the sliding-window counter)")
        self._make(TW_BUCKET_LOG if exact else TW_BUCKET_COUNTER, _window_ns(window_seconds), units,
                   clock)
        self.exact = exact

    @property
    def window(self):
        """The window's length in seconds."""
        return self._period / 1e9

    def __repr__(self):
        return f"SlidingWindow(limit={self._limit}, window_seconds={self.window!r}, exact={self.exact})"


cdef class FixedWindow(_Limiter):
    """At most ``limit`` units per key in each aligned window of ``window_seconds``.

    Windows start at multiples of ``window_seconds`` on the clock, so a burst
    of up to twice the limit can pass around a window's edge; use
    :class:`SlidingWindow` where that matters.
    """

    def __init__(self, limit, window_seconds, *, clock=None):
        self._make(TW_BUCKET_FIXED, _window_ns(window_seconds), _limit_arg(limit), clock)

    @property
    def window(self):
        """The window's length in seconds."""
        return self._period / 1e9

    def __repr__(self):
        return f"FixedWindow(limit={self._limit}, window_seconds={self.window!r})"


class Decisions:
    """The decisions of :meth:`acquire_many`, as numpy arrays of one entry per request.

    Attributes
    ----------
    allowed : numpy.ndarray of bool
    remaining : numpy.ndarray of int64
    retry_after : numpy.ndarray of float64
    reset_after : numpy.ndarray of float64
    limit : int
    """

    __slots__ = ("allowed", "remaining", "reset_after", "retry_after", "limit")

    def __init__(self, allowed, remaining, retry_after, reset_after, limit):
        self.allowed = allowed
        self.remaining = remaining
        self.retry_after = retry_after
        self.reset_after = reset_after
        self.limit = limit

    def __len__(self):
        return len(self.allowed)

    def __getitem__(self, index):
        return Decision(bool(self.allowed[index]), int(self.remaining[index]),
                        float(self.retry_after[index]), float(self.reset_after[index]), self.limit)

    def __iter__(self):
        for index in range(len(self.allowed)):
            yield self[index]

    def __repr__(self):
        return f"Decisions({len(self)} requests, {int(self.allowed.sum())} allowed)"


def acquire_levels(levels, cost=1):
    """Decide one request against several limiters at once; see :class:`Hierarchy`.

    Parameters
    ----------
    levels : sequence of (limiter, key)
        In-process limiters (TokenBucket, SlidingWindow, FixedWindow) and the
        key to charge in each.
    cost : int

    Returns
    -------
    tuple of (bool, list of Decision)
        Whether every level admits the request (then it is recorded in every
        level; otherwise in none) and each level's own decision (on a denial,
        a level that would have admitted reports what it holds now).
    """
    cdef Py_ssize_t n = len(levels), i, j
    cdef int64_t c = _cost(cost)
    cdef int allowed = 0, status
    cdef _Limiter limiter
    if n < 1 or n > MAX_LEVELS:
        raise InvalidInput(f"between 1 and {MAX_LEVELS} levels, not {n}")
    cdef tw_bucket_table **tables = <tw_bucket_table **>malloc(n * sizeof(tw_bucket_table *))
    cdef uint64_t *hi = <uint64_t *>malloc(n * sizeof(uint64_t))
    cdef uint64_t *lo = <uint64_t *>malloc(n * sizeof(uint64_t))
    cdef int64_t *nows = <int64_t *>malloc(n * sizeof(int64_t))
    cdef tw_bucket_decision *out = <tw_bucket_decision *>malloc(n * sizeof(tw_bucket_decision))
    try:
        if not (tables and hi and lo and nows and out):
            raise MemoryError("out of memory")
        limits = []
        for i in range(n):
            pair = levels[i]
            if not isinstance(pair, tuple) or len(pair) != 2 or not isinstance(pair[0], _Limiter):
                raise InvalidInput(
                    f"level {i}: expected (in-process limiter, key), not {type(pair).__name__}")
            limiter = pair[0]
            limiter._ready()
            _fingerprint(pair[1], &hi[i], &lo[i])
            for j in range(i):
                if tables[j] == limiter.table and hi[j] == hi[i] and lo[j] == lo[i]:
                    raise InvalidInput(f"level {i}: the same limiter and key as level {j}")
            tables[i] = limiter.table
            nows[i] = limiter._now()
            limits.append(limiter._limit)
        with nogil:
            status = tw_bucket_acquire_levels(tables, hi, lo, <size_t>n, c, nows, &allowed, out)
        if status == TW_ERR_NOMEM:
            raise MemoryError("out of memory growing a rate-limit table")
        if status != TW_OK:
            raise InvalidInput("invalid rate-limit request")
        return bool(allowed), [_decision(&out[i], limits[i]) for i in range(n)]
    finally:
        free(tables)
        free(hi)
        free(lo)
        free(nows)
        free(out)
