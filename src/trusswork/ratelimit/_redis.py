"""Rate limits shared by many processes and hosts through one Redis server.

:class:`RedisLimiter` is the distributed twin of the in-process limiters: the
same algorithms, parameters and :class:`~trusswork.ratelimit.Decision`
answers, with the state of every key in Redis and every decision made by a
Lua script (``_scripts.py``) that Redis runs atomically. :class:`RedisHierarchy`
checks one request against several limits (a global one, per user, per route)
in one script: it passes only if every level allows it, and a denied request
consumes from none.

Guarantees:

* **Atomic, exact limits across processes.** A decision is one ``EVALSHA``;
  Redis runs scripts one at a time, so N processes hammering a key admit
  exactly what one process would.
* **Client clocks do not matter.** Scripts read ``redis.call('TIME')``;
  nothing on the client side reads a clock to decide, so hosts whose clocks
  are off by hours share a limit correctly.
* **Idle keys vanish.** Every write carries ``PX``: a key expires when it
  would decide as if absent.
* **Cluster-ready key names.** A key is ``<prefix>:<algorithm>:{<key>}``; the
  braces are a Redis Cluster hash tag. A hierarchy given ``tag=`` names all
  its levels' keys ``<prefix>:<algorithm>:{<tag>}:<key>`` so they share one
  slot (a multi-key script on a cluster needs that). This client talks to
  one server (standalone, or the address of a primary); ``acquire_many``
  batches keys of any slots into one script, which a cluster would refuse.

Speed: the client speaks RESP itself over one socket per thread, sending
pre-encoded ``EVALSHA`` commands and reading one bulk string of integers
per call; redis-py's per-command cost halved the decision rate (measured on
a 2-core VM: ``acquire`` 1.5-2.4x the rate of redis-py ``EVALSHA`` of the
same script, which is what the ``limits`` package's moving window does per
hit). The round trip dominates: Python adds 4-8 µs per ``acquire``.
``acquire_many`` sends up to :data:`BATCH` keys per script call and all
calls of a batch in one write (one round trip); Redis then spends a few
microseconds per key (most of it in ``SET ... PX``).

Failure policy: when Redis cannot be reached (refused, timed out, not
speaking RESP, loading, out of memory), ``on_failure`` decides: ``"open"``
admits, ``"closed"`` denies (``retry_after`` = ``open_for`` of the breaker),
``"local"`` decides with an in-process limiter of the same parameters (so
each process enforces the limit on its own until Redis returns). A
:class:`~trusswork.retry.CircuitBreaker` stops the limiter from trying a
down Redis on every call; after ``open_for`` seconds it lets one probe
through and Redis is used again as soon as it answers. Counters in
:data:`trusswork.core.metrics.REGISTRY` (or ``registry=``) record allowed
and denied decisions, errors and fallbacks. A Redis that answers but holds
something else under one of our keys (``WRONGTYPE``, malformed state) is not
an outage: it raises :class:`~trusswork.core.errors.Corruption`.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, Self, TypeAlias

import numpy as np

from trusswork.core.errors import Corruption, InvalidInput, Unavailable
from trusswork.core.metrics import REGISTRY, Counter, MetricsRegistry
from trusswork.ratelimit._hierarchy import LevelDecision, NamedLevels
from trusswork.ratelimit._resp import (
    _Address,
    _bulk,
    _command,
    _Connection,
    _ProtocolError,
    _ReplyError,
)
from trusswork.ratelimit._scripts import ALGORITHM_CODES, HIERARCHY, SCRIPTS, sha1
from trusswork.ratelimit._table import Decision, Decisions
from trusswork.retry import CircuitBreaker

__all__ = ["BATCH", "RedisHierarchy", "RedisLimiter"]

_log = logging.getLogger("trusswork.ratelimit")

Key: TypeAlias = str | bytes | int
Algorithm: TypeAlias = Literal[
    "token_bucket", "sliding_window", "sliding_window_counter", "fixed_window"
]
FailurePolicy: TypeAlias = Literal["open", "closed", "local"]

#: Keys per script call in ``acquire_many`` (bounds how long one call holds Redis).
BATCH = 1000

_MAX_EXACT = 2**53  # Lua numbers are doubles: integers must stay below this
_MAX_COST = 2**31
_SLIDING_LOG_MAX = 2**20
_SHORT = {
    "token_bucket": b"tb",
    "sliding_window": b"sl",
    "sliding_window_counter": b"sc",
    "fixed_window": b"fw",
}
_TRANSIENT = (b"LOADING", b"BUSY", b"MASTERDOWN", b"READONLY", b"OOM", b"TRYAGAIN", b"CLUSTERDOWN")


# ---------------------------------------------------------------- parameters


def _round_half_away(x: float) -> int:
    low = math.floor(x)
    return low + 1 if x - low >= 0.5 else low


def _finite_positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(f"RedisLimiter {name}= must be a number, got {value!r}")
    number = float(value)
    if not (math.isfinite(number) and number > 0):
        raise InvalidInput(f"RedisLimiter {name}= must be finite and > 0, got {value!r}")
    return number


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(f"RedisLimiter {name}= must be an int >= 1, got {value!r}")
    return value


def _key_bytes(key: object) -> bytes:
    if isinstance(key, str):
        return key.encode()
    if isinstance(key, bytes):
        return key
    if isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_)):
        return str(int(key)).encode()
    raise InvalidInput(f"rate-limit key must be str, bytes or int, got {type(key).__name__}")


def _cost(cost: object) -> int:
    if type(cost) is int and 0 <= cost < _MAX_COST:
        return cost
    if isinstance(cost, np.integer) and 0 <= cost < _MAX_COST:
        return int(cost)
    raise InvalidInput(f"cost must be an int in [0, 2**31), got {cost!r}")


class _Params:
    """Validated limiter parameters and their encodings for the scripts."""

    __slots__ = ("algorithm", "args", "burst", "limit", "local_args", "rate", "window_seconds")

    def __init__(
        self,
        algorithm: object,
        rate: object,
        burst: object,
        limit: object,
        window_seconds: object,
    ) -> None:
        if algorithm not in _SHORT:
            raise InvalidInput(
                f"RedisLimiter algorithm= must be one of {sorted(_SHORT)}, got {algorithm!r}"
            )
        self.algorithm: str = str(algorithm)
        self.rate: float | None = None
        self.burst: int | None = None
        self.window_seconds: float | None = None
        if algorithm == "token_bucket":
            if limit is not None or window_seconds is not None:
                raise InvalidInput(
                    "RedisLimiter(algorithm='token_bucket') takes rate= and burst=, "
                    "not limit= or window_seconds="
                )
            if rate is None or burst is None:
                raise InvalidInput("RedisLimiter(algorithm='token_bucket') needs rate= and burst=")
            self.rate = _finite_positive("rate", rate)
            self.burst = _positive_int("burst", burst)
            interval = math.ceil(1e9 / self.rate)
            if self.burst * interval >= _MAX_EXACT:
                raise InvalidInput(
                    f"RedisLimiter burst / rate must be below 2**53 ns (about 104 days), "
                    f"got {self.burst} / {self.rate!r}"
                )
            self.limit = self.burst
            self.args = (str(interval).encode(), str(self.burst).encode())
            return
        if rate is not None or burst is not None:
            raise InvalidInput(
                f"RedisLimiter(algorithm={algorithm!r}) takes limit= and window_seconds=, "
                f"not rate= or burst="
            )
        if limit is None or window_seconds is None:
            raise InvalidInput(
                f"RedisLimiter(algorithm={algorithm!r}) needs limit= and window_seconds="
            )
        self.limit = _positive_int("limit", limit)
        if algorithm == "sliding_window" and self.limit > _SLIDING_LOG_MAX:
            raise InvalidInput(
                f"RedisLimiter sliding_window keeps one entry per unit, so limit= is at most "
                f"2**20, got {limit!r}; use algorithm='sliding_window_counter'"
            )
        if self.limit >= _MAX_EXACT:
            raise InvalidInput(f"RedisLimiter limit= must be below 2**53, got {limit!r}")
        self.window_seconds = _finite_positive("window_seconds", window_seconds)
        window_ns = _round_half_away(self.window_seconds * 1e9)
        if window_ns % 1000 or window_ns * 2 >= _MAX_EXACT:
            raise InvalidInput(
                f"RedisLimiter window_seconds= must be a whole number of microseconds (the "
                f"resolution of Redis TIME) below 52 days, got {window_seconds!r}"
            )
        self.args = (str(self.limit).encode(), str(window_ns // 1000).encode())

    def local(self) -> Any:
        """A fresh in-process limiter deciding with the same parameters."""
        from trusswork.ratelimit._table import FixedWindow, SlidingWindow, TokenBucket

        if self.algorithm == "token_bucket":
            assert self.rate is not None and self.burst is not None
            return TokenBucket(self.rate, self.burst)
        assert self.window_seconds is not None
        if self.algorithm == "fixed_window":
            return FixedWindow(self.limit, self.window_seconds)
        exact = self.algorithm == "sliding_window"
        return SlidingWindow(self.limit, self.window_seconds, exact=exact)


def _decisions(values: list[int], limit: int) -> list[Decision]:
    out = []
    for i in range(0, len(values), 4):
        retry = values[i + 2]
        out.append(
            Decision(
                values[i] == 1,
                values[i + 1],
                math.inf if retry < 0 else retry / 1e9,
                values[i + 3] / 1e9,
                limit,
            )
        )
    return out


# ---------------------------------------------------------------- the limiter


class RedisLimiter:
    """A rate limit whose state lives in Redis, shared by every process using it.

    Parameters
    ----------
    url:
        ``redis://[[user]:password@]host[:port][/db]`` or
        ``unix:///path/to/redis.sock[?db=N]``.
    algorithm:
        ``"token_bucket"`` (GCRA; needs ``rate`` and ``burst``),
        ``"sliding_window"`` (exact log; ``limit`` <= 2**20 and
        ``window_seconds``), ``"sliding_window_counter"`` (Cloudflare's
        approximation; ``limit``, ``window_seconds``) or ``"fixed_window"``
        (``limit``, ``window_seconds``). Semantics are those of
        :class:`~trusswork.ratelimit.TokenBucket`,
        :class:`~trusswork.ratelimit.SlidingWindow` and
        :class:`~trusswork.ratelimit.FixedWindow`.
    rate, burst:
        Token bucket: tokens per second and capacity.
    limit, window_seconds:
        Window algorithms: units per window and the window length, a whole
        number of microseconds (Redis ``TIME`` resolution).
    prefix:
        Start of every Redis key this limiter writes.
    on_failure:
        What to answer while Redis is unreachable: ``"open"`` (allow),
        ``"closed"`` (deny) or ``"local"`` (an in-process limiter of the
        same parameters decides).
    timeout:
        Seconds to wait for a connection or a reply before Redis counts as
        down.
    breaker:
        The :class:`~trusswork.retry.CircuitBreaker` guarding Redis calls;
        by default one that opens after 3 failures among the last 10 calls
        and probes again after ``open_for`` seconds.
    open_for:
        Seconds the default breaker stays open (and the ``retry_after`` of a
        fail-closed denial).
    name:
        The ``limiter`` label of this limiter's metrics (default: ``prefix``).
    registry:
        Where metrics go (:data:`trusswork.core.metrics.REGISTRY` by default).

    Raises
    ------
    InvalidInput
        If the URL is malformed or the parameters do not fit the algorithm.

    Notes
    -----
    The connection is opened on first use, one per thread (the limiter is
    safe to share between threads). Use it as a context manager, or call
    :meth:`close`, to close the sockets.
    """

    def __init__(
        self,
        url: str,
        *,
        algorithm: Algorithm = "token_bucket",
        rate: float | None = None,
        burst: int | None = None,
        limit: int | None = None,
        window_seconds: float | None = None,
        prefix: str = "trusswork:rl",
        on_failure: FailurePolicy = "open",
        timeout: float = 1.0,
        breaker: CircuitBreaker | None = None,
        open_for: float = 2.0,
        name: str | None = None,
        registry: MetricsRegistry | None = None,
    ) -> None:
        self._address = _Address(url)
        self._params = _Params(algorithm, rate, burst, limit, window_seconds)
        if not isinstance(prefix, str):
            raise InvalidInput(f"RedisLimiter prefix= must be a string, got {prefix!r}")
        if on_failure not in ("open", "closed", "local"):
            raise InvalidInput(
                f"RedisLimiter on_failure= must be 'open', 'closed' or 'local', got {on_failure!r}"
            )
        self._timeout = _finite_positive("timeout", timeout)
        self._open_for = _finite_positive("open_for", open_for)
        if registry is None:
            registry = REGISTRY
        elif not isinstance(registry, MetricsRegistry):
            raise InvalidInput(
                f"RedisLimiter registry= must be a MetricsRegistry, got {registry!r}"
            )
        self.url = url
        self.prefix = prefix
        self.on_failure: FailurePolicy = on_failure
        self.name = prefix if name is None else str(name)
        self._keyhead = prefix.encode() + b":" + _SHORT[self._params.algorithm] + b":"
        self._script = SCRIPTS[self._params.algorithm]
        self._sha = sha1(self._script).encode()
        self._evalsha = _bulk(b"EVALSHA") + _bulk(self._sha)
        self._single_tail = {
            mode: _bulk(b"") + _bulk(mode) + b"".join(_bulk(a) for a in self._params.args)
            for mode in (b"a", b"p")
        }
        if breaker is None:
            breaker = CircuitBreaker(
                f"ratelimit-redis:{self.name}",
                failure_rate=0.3,
                window_size=10,
                minimum_calls=3,
                open_for=self._open_for,
                half_open_calls=1,
                record_on=Unavailable,
                registry=registry,
            )
        elif not isinstance(breaker, CircuitBreaker):
            raise InvalidInput(f"RedisLimiter breaker= must be a CircuitBreaker, got {breaker!r}")
        self._breaker = breaker
        self._guarded_exchange = breaker(self._exchange)
        self._local_limiter: Any = None
        self._local_lock = threading.Lock()
        self._threads = threading.local()
        self._connections: list[_Connection] = []
        self._connections_lock = threading.Lock()
        self._closed = False
        self._down = False
        decisions = registry.counter(
            "trusswork_ratelimit_redis_decisions",
            "Decisions made by Redis rate limiters, by outcome (fallback decisions excluded).",
            labelnames=("limiter", "outcome"),
        )
        self._allowed: Counter = decisions.labels(self.name, "allowed")
        self._denied: Counter = decisions.labels(self.name, "denied")
        self._errors: Counter = registry.counter(
            "trusswork_ratelimit_redis_errors",
            "Redis calls of a rate limiter that failed (unreachable, timed out, bad reply).",
            labelnames=("limiter",),
        ).labels(self.name)
        self._fallbacks: Counter = registry.counter(
            "trusswork_ratelimit_redis_fallbacks",
            "Decisions taken by the failure policy because Redis was unavailable.",
            labelnames=("limiter", "policy"),
        ).labels(self.name, on_failure)

    # ------------------------------------------------------------ properties

    @property
    def algorithm(self) -> str:
        """The algorithm name, as given."""
        return self._params.algorithm

    @property
    def limit(self) -> int:
        """The quota: ``burst`` for a token bucket, ``limit`` for the window algorithms."""
        return self._params.limit

    @property
    def window(self) -> float:
        """Seconds of the window (token bucket: ``burst / rate``)."""
        params = self._params
        if params.window_seconds is not None:
            return params.window_seconds
        assert params.rate is not None
        return params.limit / params.rate

    @property
    def breaker(self) -> CircuitBreaker:
        """The circuit breaker guarding this limiter's Redis calls."""
        return self._breaker

    def redis_key(self, key: Key) -> bytes:
        """The Redis key holding ``key``'s state (``<prefix>:<algorithm>:{<key>}``).

        An int key is written as its decimal text, so ``42`` and ``"42"`` are
        the same key in Redis (unlike in the in-process tables).
        """
        return self._keyhead + b"{" + _key_bytes(key) + b"}"

    # ------------------------------------------------------------ connection

    def _connection(self) -> _Connection:
        conn: _Connection | None = getattr(self._threads, "conn", None)
        if conn is not None and conn.pid == os.getpid():
            return conn
        if self._closed:
            raise InvalidInput(f"RedisLimiter {self.name!r} is closed")
        conn = _Connection(self._address, self._timeout)
        self._threads.conn = conn
        with self._connections_lock:
            self._connections.append(conn)
        return conn

    def _drop(self, conn: _Connection) -> None:
        conn.close()
        if getattr(self._threads, "conn", None) is conn:
            self._threads.conn = None
        with self._connections_lock:
            if conn in self._connections:
                self._connections.remove(conn)

    def _roundtrip(self, commands: Sequence[bytes], scripts: Sequence[str]) -> list[Any]:
        """Send encoded commands in one write and read their replies; reload lost scripts.

        ``scripts`` are the scripts the commands run, loaded again when Redis
        lost them (restart, ``SCRIPT FLUSH``). Then only the commands that
        met NOSCRIPT are sent again: they did nothing, while the others of
        the pipeline did (a batch whose scripts were flushed midway may
        thus decide its later part after requests of other clients).
        Raises Unavailable when Redis cannot be used (counted by the breaker).
        """
        try:
            conn = self._connection()
        except (OSError, _ProtocolError) as exc:
            raise self._unavailable(exc) from exc
        try:
            out = conn.roundtrip(b"".join(commands), len(commands))
            missing = [
                i
                for i, r in enumerate(out)
                if isinstance(r, _ReplyError) and r.message.startswith(b"NOSCRIPT")
            ]
            if missing:
                loads = [_command(b"SCRIPT", b"LOAD", s.encode()) for s in set(scripts)]
                for reply in conn.roundtrip(b"".join(loads), len(loads)):
                    if isinstance(reply, _ReplyError):
                        message = reply.message.decode(errors="replace")
                        raise self._unavailable(f"SCRIPT LOAD failed: {message}")
                again = conn.roundtrip(b"".join(commands[i] for i in missing), len(missing))
                for index, reply in zip(missing, again, strict=True):
                    out[index] = reply
        except (OSError, _ProtocolError) as exc:
            self._drop(conn)
            raise self._unavailable(exc) from exc
        for reply in out:
            if isinstance(reply, _ReplyError) and reply.message.startswith(_TRANSIENT):
                raise self._unavailable(reply.message.decode(errors="replace"))
        return out

    def _unavailable(self, why: object) -> Unavailable:
        self._errors.inc()
        if not self._down:
            self._down = True
            _log.warning(
                "rate limiter %s cannot use %s (%s); on_failure=%r decides until it answers",
                self.name,
                self._address,
                why,
                self.on_failure,
                extra={"limiter": self.name},
            )
        return Unavailable(f"rate limiter {self.name!r}: {self._address} is unavailable: {why}")

    def _exchange(
        self,
        commands: Sequence[bytes],
        what: bytes | str,
        size: int,
        scripts: Sequence[str],
        array: bool,
    ) -> Any:
        """Run script calls and return their ``4 * size`` integers, in order.

        A list, or an int64 array with ``array`` (``acquire_many``, one call
        per :data:`BATCH` keys). ``what`` names the key(s) in error messages.
        """
        replies = self._roundtrip(commands, scripts)
        for reply in replies:
            self._check(reply, what)
        try:
            if not array:
                values: Any = [int(v) for v in replies[0].split()]
            else:
                values = np.fromstring(b" ".join(replies), dtype=np.int64, sep=" ")
        except ValueError:
            values = []
        if len(values) != 4 * size:
            raise self._unavailable(f"unexpected script reply {replies[0][:80]!r}")
        return values

    def _call(
        self,
        commands: Sequence[bytes],
        what: bytes | str,
        size: int,
        scripts: Sequence[str],
        array: bool = False,
    ) -> Any:
        """The decisions' integers, or None when Redis is unavailable (the policy decides).

        Goes through the circuit breaker, which counts Unavailable as a failure.
        """
        try:
            out = self._guarded_exchange(commands, what, size, scripts, array)
        except Unavailable:  # CircuitOpen included
            return None
        if self._down:
            self._down = False
            _log.warning(
                "rate limiter %s uses %s again",
                self.name,
                self._address,
                extra={"limiter": self.name},
            )
        return out

    def _check(self, reply: Any, what: bytes | str) -> None:
        """Pass a bulk-string script reply; raise Corruption / Unavailable on anything else."""
        if isinstance(reply, bytes):
            return
        if isinstance(reply, _ReplyError):
            message = reply.message.decode(errors="replace")
            if reply.message.startswith((b"WRONGTYPE", b"TWSTATE")):
                raise Corruption(
                    f"rate limiter {self.name!r}: Redis key {what!r} holds data that is not "
                    f"this limiter's {self.algorithm} state ({message}); another program writes "
                    f"under prefix {self.prefix!r}, or the algorithm changed: delete the key "
                    f"or choose another prefix"
                )
            raise self._unavailable(f"Redis refused the script: {message}")
        raise self._unavailable(f"unexpected script reply {reply!r:.80}")

    # ------------------------------------------------------------ failure policy

    def _local(self) -> Any:
        with self._local_lock:
            if self._local_limiter is None:
                self._local_limiter = self._params.local()
            return self._local_limiter

    def _fallback(self, key: Key, cost: int, peek: bool) -> Decision:
        self._fallbacks.inc()
        limit = self._params.limit
        if self.on_failure == "open":
            return Decision(True, limit, 0.0, 0.0, limit)
        if self.on_failure == "closed":
            return Decision(False, 0, self._open_for, 0.0, limit)
        local = self._local()
        if isinstance(key, np.integer):
            key = int(key)
        decision: Decision = local.peek(key, cost) if peek else local.acquire(key, cost)
        return decision

    # ------------------------------------------------------------ decisions

    def _single(self, key: Key, cost: object, mode: bytes) -> Decision:
        rkey = self._keyhead + b"{" + (key.encode() if type(key) is str else _key_bytes(key)) + b"}"
        units = cost if type(cost) is int and 0 <= cost < _MAX_COST else _cost(cost)
        payload = (
            b"*9\r\n"
            + self._evalsha
            + b"$1\r\n1\r\n"
            + _bulk(rkey)
            + self._single_tail[mode]
            + _bulk(str(units).encode())
        )
        values = self._call((payload,), rkey, 1, (self._script,))
        if values is None:
            return self._fallback(key, units, mode == b"p")
        allowed = values[0] == 1
        retry = values[2]
        if mode == b"a":
            (self._allowed if allowed else self._denied).inc()
        return Decision(
            allowed,
            values[1],
            math.inf if retry < 0 else retry / 1e9,
            values[3] / 1e9,
            self._params.limit,
        )

    def acquire(self, key: Key, cost: int = 1) -> Decision:
        """Ask for ``cost`` units of ``key``'s quota; consume them if allowed.

        Parameters
        ----------
        key:
            What is limited (a user, an IP, a route): str, bytes or int.
        cost:
            Units asked for, an int >= 0 (0 looks without consuming).

        Returns
        -------
        Decision
            ``allowed``, ``remaining``, ``retry_after``, ``reset_after``
            (seconds) and ``limit``; from the failure policy when Redis is
            unavailable.

        Raises
        ------
        InvalidInput
            If the key or cost is of the wrong kind, or the limiter is closed.
        Corruption
            If Redis holds something other than this limiter's state at the key.
        """
        return self._single(key, cost, b"a")

    def peek(self, key: Key, cost: int = 1) -> Decision:
        """What :meth:`acquire` would answer now, without consuming anything."""
        return self._single(key, cost, b"p")

    def acquire_many(self, keys: Iterable[Key], costs: int | Iterable[int] = 1) -> Decisions:
        """Decide many requests in one round trip, in order (each sees the ones before).

        Parameters
        ----------
        keys:
            The keys, one per request (repeats allowed).
        costs:
            One cost for all requests, or one per request.

        Returns
        -------
        Decisions
            numpy arrays ``allowed``, ``remaining``, ``retry_after``,
            ``reset_after`` with one entry per request.

        Raises
        ------
        InvalidInput
            If a key or cost is of the wrong kind, or the lengths differ.
        Corruption
            If Redis holds something other than this limiter's state at a key.
        """
        if isinstance(keys, (str, bytes)):
            raise InvalidInput("acquire_many takes a sequence of keys, not one str or bytes key")
        key_list = list(keys)
        n = len(key_list)
        head = self._keyhead + b"{"
        extra = len(head) + 1
        bulks = []
        for key in key_list:
            raw = key.encode() if type(key) is str else _key_bytes(key)
            bulks.append(b"$%d\r\n%s%s}\r\n" % (len(raw) + extra, head, raw))
        if isinstance(costs, int):
            cost_list = [_cost(costs)] * n
            cost_bulks = [_bulk(str(cost_list[0]).encode())] * n if n else []
        else:
            cost_list = [_cost(c) for c in costs]
            if len(cost_list) != n:
                raise InvalidInput(f"acquire_many got {n} keys but {len(cost_list)} costs")
            cost_bulks = [_bulk(str(c).encode()) for c in cost_list]
        if not n:
            values = np.zeros(0, dtype=np.int64)
        else:
            values = self._many(key_list, bulks, cost_list, cost_bulks)
        table = values.reshape(-1, 4)
        retry = table[:, 2].astype(np.float64)
        return Decisions(
            table[:, 0] == 1,
            table[:, 1].copy(),
            np.where(retry < 0, np.inf, retry / 1e9),
            table[:, 3] / 1e9,
            self._params.limit,
        )

    def _many(
        self, keys: list[Key], bulks: list[bytes], costs: list[int], cost_bulks: list[bytes]
    ) -> Any:
        chunks = []
        head = _bulk(b"") + _bulk(b"a") + b"".join(_bulk(a) for a in self._params.args)
        for start in range(0, len(bulks), BATCH):
            part = bulks[start : start + BATCH]
            n = len(part)
            chunks.append(
                b"*%d\r\n" % (7 + 2 * n)
                + self._evalsha
                + _bulk(str(n).encode())
                + b"".join(part)
                + head
                + b"".join(cost_bulks[start : start + BATCH])
            )
        what = f"one of {len(keys)} keys"
        values = self._call(chunks, what, len(keys), (self._script,), array=True)
        if values is None:
            out = []
            for key, cost in zip(keys, costs, strict=True):
                d = self._fallback(key, cost, False)
                out += [
                    int(d.allowed),
                    d.remaining,
                    -1 if math.isinf(d.retry_after) else round(d.retry_after * 1e9),
                    round(d.reset_after * 1e9),
                ]
            return np.array(out, dtype=np.int64)
        admitted = int(values[0::4].sum())
        self._allowed.inc(admitted)
        self._denied.inc(len(keys) - admitted)
        return values

    def reset(self, key: Key) -> None:
        """Forget ``key``: its next request sees a full quota (in Redis and the local fallback).

        Raises
        ------
        Unavailable
            If Redis cannot be reached (the key is not forgotten there).
        """
        rkey = self.redis_key(key)
        if self._local_limiter is not None:
            self._local_limiter.reset(key)
        reply = self._roundtrip((_command(b"DEL", rkey),), ())[0]
        if isinstance(reply, _ReplyError):
            raise Unavailable(
                f"rate limiter {self.name!r}: Redis refused to delete {rkey!r}: "
                f"{reply.message.decode(errors='replace')}"
            )

    # ------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Close every connection this limiter opened; later calls raise InvalidInput."""
        self._closed = True
        with self._connections_lock:
            conns, self._connections = self._connections, []
        for conn in conns:
            conn.close()
        self._threads = threading.local()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        params = self._params
        if params.algorithm == "token_bucket":
            shape = f"rate={params.rate!r}, burst={params.burst}"
        else:
            shape = f"limit={params.limit}, window_seconds={params.window_seconds!r}"
        return (
            f"RedisLimiter({self.url!r}, algorithm={params.algorithm!r}, {shape}, "
            f"prefix={self.prefix!r}, on_failure={self.on_failure!r})"
        )


# ---------------------------------------------------------------- hierarchy


class RedisHierarchy(NamedLevels[RedisLimiter]):
    """Named levels of Redis limits, every one of which must admit a request.

    The Redis twin of :class:`~trusswork.ratelimit.Hierarchy`, with the same
    calls and answers. One script decides every level atomically: it looks
    at each level without writing and charges all of them only if all
    admit the request, so a denied request consumes from none.

    Parameters
    ----------
    levels:
        ``{name: RedisLimiter}`` or ``[(name, RedisLimiter), ...]``,
        outermost first (``{"global": ..., "user": ..., "route": ...}``).
        All must use the same Redis URL; the first level's connection,
        breaker, failure policy and metrics serve the hierarchy.
    tag:
        For Redis Cluster: a hash tag shared by all levels' keys, so they
        land in one slot (for example the tenant id), as a multi-key script
        on a cluster requires. With ``tag=None`` each level uses its own key
        names (``limiter.redis_key(key)``), the same state that
        ``limiter.acquire(key)`` uses, which works on one server only. With
        a tag the keys are ``<prefix>:<algorithm>:{<tag>}:<key>``, a state of
        their own.

    Raises
    ------
    InvalidInput
        If there are no levels, a name repeats, a level is not a
        RedisLimiter, or the URLs differ.
    """

    def __init__(
        self,
        levels: Mapping[str, RedisLimiter] | Sequence[tuple[str, RedisLimiter]],
        *,
        tag: str | None = None,
    ) -> None:
        super().__init__(levels, RedisLimiter, "a RedisLimiter")
        first = self._levels[0]
        for name, level in zip(self._names, self._levels, strict=True):
            if level.url != first.url:
                raise InvalidInput(
                    f"level {name!r}: every level must use one Redis, {level.url!r} is not "
                    f"{first.url!r}"
                )
        if tag is not None and not isinstance(tag, str):
            raise InvalidInput(f"RedisHierarchy tag= must be a string or None, got {tag!r}")
        self.tag = tag
        self._sha = sha1(HIERARCHY).encode()
        self._args = b"".join(
            _bulk(str(ALGORITHM_CODES[level.algorithm]).encode())
            + b"".join(_bulk(a) for a in level._params.args)
            for level in self._levels
        )
        self._local_lock = threading.Lock()

    def redis_keys(self, keys: Mapping[str, Key] | Sequence[Key]) -> list[bytes]:
        """The Redis key of each level for these level keys."""
        ordered = self._ordered(keys)
        if self.tag is None:
            return [level.redis_key(k) for level, k in zip(self._levels, ordered, strict=True)]
        tagged = b"{" + self.tag.encode() + b"}:"
        return [
            level._keyhead + tagged + _key_bytes(k)
            for level, k in zip(self._levels, ordered, strict=True)
        ]

    def acquire(self, keys: Mapping[str, Key] | Sequence[Key], cost: int = 1) -> LevelDecision:
        """Decide one request of ``cost`` units: ``keys`` gives each level's key.

        Returns
        -------
        LevelDecision
            ``allowed`` (charged in every level) or not (charged in none),
            each level's own decision, the levels that refused.

        Raises
        ------
        InvalidInput
            When ``keys`` does not give exactly one key per level, or for a bad
            key or cost.
        Corruption
            If Redis holds something other than limiter state at a level's key.
        """
        return self._decide(keys, cost, b"a")

    def peek(self, keys: Mapping[str, Key] | Sequence[Key], cost: int = 1) -> LevelDecision:
        """The decision :meth:`acquire` would make now, recording nothing."""
        return self._decide(keys, cost, b"p")

    def _decide(
        self, keys: Mapping[str, Key] | Sequence[Key], cost: object, mode: bytes
    ) -> LevelDecision:
        ordered = self._ordered(keys)
        rkeys = self.redis_keys(ordered)
        units = _cost(cost)
        first = self._levels[0]
        n = len(rkeys)
        payload = (
            b"*%d\r\n" % (3 + n + 3 + 3 * n)
            + _bulk(b"EVALSHA")
            + _bulk(self._sha)
            + _bulk(str(n).encode())
            + b"".join(_bulk(k) for k in rkeys)
            + _bulk(b"")
            + _bulk(mode)
            + _bulk(str(units).encode())
            + self._args
        )
        values = first._call((payload,), f"one of {rkeys!r}", n, (HIERARCHY,))
        if values is None:
            decisions = self._fallback(ordered, units, mode == b"p")
        else:
            decisions = [
                _decisions(values[4 * i : 4 * i + 4], level.limit)[0]
                for i, level in enumerate(self._levels)
            ]
        allowed = all(d.allowed for d in decisions)
        if values is not None and mode == b"a":
            (first._allowed if allowed else first._denied).inc()
        return self._answer(allowed, decisions)

    def _fallback(self, keys: list[Key], cost: int, peek: bool) -> list[Decision]:
        first = self._levels[0]
        first._fallbacks.inc()
        if first.on_failure == "open":
            return [Decision(True, lv.limit, 0.0, 0.0, lv.limit) for lv in self._levels]
        if first.on_failure == "closed":
            return [Decision(False, 0, first._open_for, 0.0, lv.limit) for lv in self._levels]
        limiters = [level._local() for level in self._levels]
        with self._local_lock:
            looks = [lim.peek(k, cost) for lim, k in zip(limiters, keys, strict=True)]
            if peek or not all(d.allowed for d in looks):
                return looks
            return [lim.acquire(k, cost) for lim, k in zip(limiters, keys, strict=True)]

    def __repr__(self) -> str:
        inner = ", ".join(
            f"{name!r}: {level!r}" for name, level in zip(self._names, self._levels, strict=True)
        )
        return f"RedisHierarchy({{{inner}}}, tag={self.tag!r})"
