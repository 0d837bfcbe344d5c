"""Retry budgets: a token bucket, shared by the calls to one dependency, that caps retries.

A :class:`RetryBudget` follows gRPC's retry throttling (proposal A6): the
bucket holds ``max_tokens`` and starts full; every failed attempt takes one
token (never below 0), every successful call puts back ``token_ratio``
(never above ``max_tokens``), and a retry is allowed only while, after the
failure's token is taken, more than half the bucket is left. In a healthy
system the bucket stays full and retries flow; when more than about
``token_ratio / (1 + token_ratio)`` of the calls fail, the bucket sinks below
half and the fleet stops retrying, so retries cannot multiply the load on a
dependency that is already failing.

Guarantees:

* Exact arithmetic. Like gRPC, tokens are kept as integer thousandths
  (``max_tokens`` and ``token_ratio`` are rounded to three decimals), so ten
  successes at ``token_ratio=0.1`` give back exactly one token and the level
  never drifts.
* Thread-safe and linearisable: one lock guards the level. A success on a
  full local bucket (the healthy steady state) changes nothing and takes no
  lock; any other update holds the lock for a few integer operations.
* The ``trusswork_retry_budget_tokens{budget}`` gauge is exact: it is set
  under the lock by every update that changes the level, and a success on a
  full bucket changes nothing, so the healthy path never touches it.
  ``trusswork_retry_budget_denied_total{budget}`` counts refused retries.
* With ``redis=``, the level lives in one Redis key (an integer number of
  milli-tokens; a missing key means a full bucket), updated by one Lua
  script, so every budget sharing the key sees one level. Successes are
  batched: each process sends its successes with its next failure, or once
  ``flush_every`` have accumulated, or with the first success at least
  ``flush_interval`` seconds after its previous send, or on :meth:`flush`.
  The shared level therefore lags each process by fewer than
  ``flush_every`` successes or ``flush_interval`` seconds of successes
  (whichever comes first, while the process keeps calling). Failures are
  never batched: the decision comes back from Redis. A key left alone for
  ``ttl`` seconds expires, which reads as a full bucket.
* A Redis error never fails the caller's call: the budget logs one
  ``WARNING`` on the ``trusswork.retry`` logger per outage and decides on its
  local copy of the level (the last shared level it saw, plus its own events
  since). Events counted during an outage stay local. Redis is asked again at
  most once per ``flush_interval`` seconds; the first answer ends the outage
  (logged at ``INFO``).
"""

from __future__ import annotations

import logging
import math
import threading
from typing import TYPE_CHECKING, Any, cast

from trusswork.core.clock import SYSTEM_CLOCK, Clock
from trusswork.core.errors import InvalidInput
from trusswork.core.metrics import REGISTRY, MetricsRegistry
from trusswork.retry._checks import seconds

if TYPE_CHECKING:
    import redis as redis_sync
    import redis.asyncio as redis_async

_log = logging.getLogger("trusswork.retry")

#: One token in the integer unit the level is kept in (milli-tokens, as gRPC does).
_TOKEN = 1000

# KEYS[1]: the level in milli-tokens (absent: full).
# ARGV: max milli-tokens, milli-tokens per success, successes, failures, TTL in ms.
# Successes are applied before failures; each step clamps, as one-by-one updates would.
_LUA = """
local max = tonumber(ARGV[1])
local level = tonumber(redis.call('GET', KEYS[1]) or ARGV[1])
if level > max then level = max end
local successes = tonumber(ARGV[3])
local failures = tonumber(ARGV[4])
if successes > 0 then level = math.min(max, level + successes * tonumber(ARGV[2])) end
if failures > 0 then level = math.max(0, level - 1000 * failures) end
if successes > 0 or failures > 0 then
  if level >= max then
    redis.call('DEL', KEYS[1])
  else
    redis.call('SET', KEYS[1], string.format('%d', level), 'PX', ARGV[5])
  end
end
local allowed = 0
if 2 * level > max then allowed = 1 end
return {level, allowed}
"""


def _milli(name: str, value: object, *, high: float) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not 0 < value <= high
    ):
        raise InvalidInput(
            f"RetryBudget {name}= must be a finite number in (0, {high:g}], got {value!r}"
        )
    milli = round(value * _TOKEN)
    if milli < 1:
        raise InvalidInput(
            f"RetryBudget {name}= must be at least 0.001 (tokens are counted in thousandths, "
            f"as gRPC does), got {value!r}"
        )
    return milli


class RetryBudget:
    """A token bucket that lets the calls to one dependency retry only while most succeed.

    Give one budget to every retry policy that calls the same dependency
    (``Policy(budget=...)``, ``@retry(budget=...)``). The retry core reports
    each successful call with :meth:`record_success` and each failed attempt
    it would retry with :meth:`record_failure`, which answers whether the
    retry may go ahead. See the module docstring for the algorithm (gRPC's
    retry throttling) and its guarantees.

    Parameters
    ----------
    name:
        Names the budget in metrics (label ``budget``), logs and the default
        Redis key.
    max_tokens:
        Size of the bucket (default 100); retries stop while the level is at
        or below half of it. gRPC's service config allows up to 1000; any
        positive size up to one million is accepted here.
    token_ratio:
        Tokens a successful call puts back, in (0, 1] (default 0.1: ten
        successes pay for one failure). Rounded to three decimals.
    redis:
        A ``redis.Redis`` or ``redis.asyncio.Redis`` client to share the
        level with every budget using the same key (other processes, other
        hosts). Give it short socket timeouts and no retries of its own: a
        failure waits for its round trip. With a ``redis.asyncio`` client the
        async methods talk to Redis without blocking the loop; the sync
        methods then decide on the local copy and queue their events for the
        next async call. With a sync client the async methods make a
        blocking round trip (one per failure and per batch of successes).
    redis_key:
        The key holding the shared level; ``trusswork:retry-budget:{name}``
        by default. Needs ``redis``.
    registry:
        Where the gauge and the counter go (:data:`~trusswork.core.metrics.REGISTRY`
        by default).
    flush_every:
        With ``redis``: send accumulated successes once this many are queued
        (default 50).
    flush_interval:
        With ``redis``: send accumulated successes with the first success at
        least this many seconds after the previous send (default 1.0); also
        how often Redis is asked again during an outage.
    ttl:
        With ``redis``: seconds after its last update that a drained level
        expires (default 3600); an expired key reads as a full bucket.
    clock:
        The monotonic clock ``flush_interval`` is measured on.

    Raises
    ------
    InvalidInput
        If an argument is out of range or of the wrong kind; the message
        names it.
    """

    __slots__ = (
        "_async_redis",
        "_client",
        "_clock",
        "_denied",
        "_down",
        "_flush_at",
        "_flush_every",
        "_flush_interval",
        "_gauge",
        "_level",
        "_lock",
        "_max",
        "_misuse_logged",
        "_pending_failures",
        "_pending_successes",
        "_ratio",
        "_redis_errors",
        "_redis_key",
        "_retry_redis_at",
        "_script",
        "_ttl_ms",
        "name",
    )

    def __init__(
        self,
        name: str = "default",
        *,
        max_tokens: float = 100.0,
        token_ratio: float = 0.1,
        redis: redis_sync.Redis | redis_async.Redis | None = None,
        redis_key: str | None = None,
        registry: MetricsRegistry | None = None,
        flush_every: int = 50,
        flush_interval: float = 1.0,
        ttl: float = 3600.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise InvalidInput(f"RetryBudget name= must be a non-empty string, got {name!r}")
        self.name = name
        self._max = _milli("max_tokens", max_tokens, high=1_000_000.0)
        self._ratio = _milli("token_ratio", token_ratio, high=1.0)
        if registry is None:
            registry = REGISTRY
        elif not isinstance(registry, MetricsRegistry):
            raise InvalidInput(f"RetryBudget registry= must be a MetricsRegistry, got {registry!r}")
        if isinstance(flush_every, bool) or not isinstance(flush_every, int) or flush_every < 1:
            raise InvalidInput(
                f"RetryBudget flush_every= must be an integer >= 1, got {flush_every!r}"
            )
        self._flush_every = flush_every
        self._flush_interval = seconds(
            "RetryBudget", "flush_interval", flush_interval, positive=True
        )
        self._ttl_ms = max(1, math.ceil(seconds("RetryBudget", "ttl", ttl, positive=True) * 1000))
        self._clock = clock
        self._lock = threading.Lock()
        self._level = self._max
        self._gauge = registry.gauge(
            "trusswork_retry_budget_tokens",
            "Tokens in a retry budget (retries stop at or below half of its size).",
            labelnames=("budget",),
        ).labels(name)
        self._denied = registry.counter(
            "trusswork_retry_budget_denied",
            "Retries refused because their retry budget was at or below half.",
            labelnames=("budget",),
        ).labels(name)
        self._gauge.set(self._max / _TOKEN)
        self._client: Any = None
        self._script: Any = None
        self._async_redis = False
        self._redis_key = ""
        self._redis_errors: tuple[type[BaseException], ...] = ()
        self._pending_successes = 0
        self._pending_failures = 0
        self._flush_at = 0.0
        self._down = False
        self._retry_redis_at = 0.0
        self._misuse_logged = False
        if redis is not None:
            self._setup_redis(redis, redis_key)
        elif redis_key is not None:
            raise InvalidInput("RetryBudget redis_key= needs redis= (a Redis client)")

    def _setup_redis(self, client: object, key: str | None) -> None:
        if not hasattr(client, "register_script"):
            raise InvalidInput(
                f"RetryBudget redis= must be a redis.Redis or redis.asyncio.Redis client, "
                f"got {client!r}"
            )
        if key is None:
            key = f"trusswork:retry-budget:{self.name}"
        elif not isinstance(key, str) or not key:
            raise InvalidInput(f"RetryBudget redis_key= must be a non-empty string, got {key!r}")
        import redis.asyncio
        from redis.exceptions import RedisError

        self._async_redis = isinstance(client, redis.asyncio.Redis)
        self._redis_errors = (RedisError, OSError)
        self._client = client
        self._script = cast(Any, client).register_script(_LUA)
        self._redis_key = key
        self._flush_at = self._clock.monotonic() + self._flush_interval

    # ------------------------------------------------------------ reading

    @property
    def max_tokens(self) -> float:
        """The size of the bucket."""
        return self._max / _TOKEN

    @property
    def token_ratio(self) -> float:
        """Tokens one success puts back (rounded to three decimals)."""
        return self._ratio / _TOKEN

    @property
    def tokens(self) -> float:
        """The current level, as this process knows it (no Redis round trip).

        Shared through Redis, this is the level last read from Redis plus
        this process's own events since; :meth:`flush` returns the shared one.
        """
        return self._level / _TOKEN

    @property
    def allows_retry(self) -> bool:
        """Whether retries are flowing: the level is above half the bucket.

        :meth:`record_failure` takes its token before it decides, so a
        failure recorded while the level is at most one token above half is
        already refused.
        """
        return 2 * self._level > self._max

    # ------------------------------------------------------------ local bucket

    # The two hot paths call acquire/release rather than ``with``: about half the
    # cost on CPython 3.11 (as core.metrics does).

    def _succeed_locally(self) -> None:
        lock = self._lock
        lock.acquire()
        try:
            level = self._level + self._ratio
            if level > self._max:
                level = self._max
            self._level = level
            self._gauge.set(level / _TOKEN)
        finally:
            lock.release()

    def _fail_locally(self) -> bool:
        lock = self._lock
        lock.acquire()
        try:
            level = self._level - _TOKEN
            if level < 0:
                level = 0
            self._level = level
            self._gauge.set(level / _TOKEN)
        finally:
            lock.release()
        return 2 * level > self._max

    def _decided(self, allowed: bool) -> bool:
        if not allowed:
            self._denied.inc()
        return allowed

    # ------------------------------------------------------------ shared bucket

    def _reachable(self, now: float) -> bool:
        """Whether to talk to Redis now (not inside an outage's back-off)."""
        return not self._down or now >= self._retry_redis_at

    def _queue_success(self, can_send: bool) -> tuple[int, int] | None:
        """Count a success locally and queue it; return a batch to send, if one is due."""
        now = self._clock.monotonic()
        with self._lock:
            level = self._level + self._ratio
            if level > self._max:
                level = self._max
            self._level = level
            self._gauge.set(level / _TOKEN)
            if not self._reachable(now):
                return None  # during an outage, events stay local
            self._pending_successes += 1
            if not can_send or (
                self._pending_successes < self._flush_every and now < self._flush_at
            ):
                return None
            return self._take(now)

    def _take(self, now: float) -> tuple[int, int]:
        """Hand the queued events to the caller for sending (holding the lock)."""
        batch = (self._pending_successes, self._pending_failures)
        self._pending_successes = self._pending_failures = 0
        self._flush_at = now + self._flush_interval
        return batch

    def _args(self, successes: int, failures: int) -> list[int]:
        return [self._max, self._ratio, successes, failures, self._ttl_ms]

    def _adopt(self, reply: list[Any]) -> bool:
        """Take the shared level of a script reply as ours; return its verdict."""
        if self._down:
            self._down = False
            _log.info("retry budget %s reaches Redis again", self.name, extra={"budget": self.name})
        with self._lock:
            # Events queued since the batch left are not in the reply yet.
            level = int(reply[0]) + self._pending_successes * self._ratio
            if level > self._max:
                level = self._max
            level -= self._pending_failures * _TOKEN
            if level < 0:
                level = 0
            self._level = level
            self._gauge.set(level / _TOKEN)
        return bool(int(reply[1]))

    def _redis_failed(self, error: BaseException, now: float) -> None:
        self._retry_redis_at = now + self._flush_interval
        if not self._down:
            self._down = True
            _log.warning(
                "retry budget %s cannot reach Redis (%r); deciding on the local copy of the "
                "level and asking Redis again every %g s",
                self.name,
                error,
                self._flush_interval,
                extra={"budget": self.name},
            )

    def _send(self, successes: int, failures: int, now: float) -> list[Any] | None:
        try:
            reply = self._script(keys=[self._redis_key], args=self._args(successes, failures))
        except self._redis_errors as exc:
            self._redis_failed(exc, now)
            return None
        return cast(list[Any], reply)

    async def _asend(self, successes: int, failures: int, now: float) -> list[Any] | None:
        try:
            reply = await self._script(keys=[self._redis_key], args=self._args(successes, failures))
        except self._redis_errors as exc:
            self._redis_failed(exc, now)
            return None
        return cast(list[Any], reply)

    def _fail_offline(self) -> bool:
        """A failure a sync call records on a budget with a ``redis.asyncio`` client."""
        if not self._misuse_logged:
            self._misuse_logged = True
            _log.warning(
                "retry budget %s shares its level through a redis.asyncio client but was "
                "called from sync code; sync calls decide on the local copy and their events "
                "reach Redis with the next async call",
                self.name,
                extra={"budget": self.name},
            )
        allowed = self._fail_locally()
        if self._reachable(self._clock.monotonic()):
            with self._lock:
                self._pending_failures += 1
        return allowed

    # ------------------------------------------------------------ recording

    def record_success(self) -> None:
        """Count a successful call: put back ``token_ratio`` tokens (up to ``max_tokens``).

        Local budgets: no lock and no clock reading while the bucket is full.
        Shared budgets queue the success and send the queue when it is due
        (a Redis round trip with a sync client; with a ``redis.asyncio``
        client the next async call sends it).
        """
        if self._script is None:
            if self._level < self._max:
                self._succeed_locally()
            return
        batch = self._queue_success(not self._async_redis)
        if batch is not None:
            self._flush_batch(batch)

    def record_failure(self) -> bool:
        """Count a failed attempt (take one token); return whether to retry it.

        Returns
        -------
        bool
            True if, with the token taken, more than half the bucket is left
            (retry), False if the retry must be skipped. A refusal counts in
            ``trusswork_retry_budget_denied_total``.
        """
        if self._script is None:
            return self._decided(self._fail_locally())
        if self._async_redis:
            return self._decided(self._fail_offline())
        now = self._clock.monotonic()
        if not self._reachable(now):
            return self._decided(self._fail_locally())
        with self._lock:
            successes, failures = self._take(now)
        reply = self._send(successes, failures + 1, now)
        if reply is None:
            return self._decided(self._fail_locally())
        return self._decided(self._adopt(reply))

    async def arecord_success(self) -> None:
        """:meth:`record_success` for async code.

        With a ``redis.asyncio`` client a due batch is sent without blocking
        the loop; otherwise this is :meth:`record_success` (with a sync
        client, a due batch is a blocking round trip).
        """
        if not self._async_redis:
            self.record_success()
            return
        batch = self._queue_success(True)
        if batch is not None:
            reply = await self._asend(*batch, self._clock.monotonic())
            if reply is not None:
                self._adopt(reply)

    async def arecord_failure(self) -> bool:
        """:meth:`record_failure` for async code.

        With a ``redis.asyncio`` client the decision comes from Redis without
        blocking the loop; otherwise this is :meth:`record_failure` (with a
        sync client, a blocking round trip).
        """
        if not self._async_redis:
            return self.record_failure()
        now = self._clock.monotonic()
        if not self._reachable(now):
            return self._decided(self._fail_locally())
        with self._lock:
            successes, failures = self._take(now)
        reply = await self._asend(successes, failures + 1, now)
        if reply is None:
            return self._decided(self._fail_locally())
        return self._decided(self._adopt(reply))

    # ------------------------------------------------------------ flushing and reset

    def _flush_batch(self, batch: tuple[int, int]) -> None:
        reply = self._send(*batch, self._clock.monotonic())
        if reply is not None:
            self._adopt(reply)

    def flush(self) -> float:
        """Send the queued successes to Redis now; return the shared level.

        Call it before a process exits so its last successes count for the
        fleet. A local budget has nothing to send and returns :attr:`tokens`;
        so does a shared one while Redis cannot be reached.

        Raises
        ------
        InvalidInput
            If the budget has a ``redis.asyncio`` client (use :meth:`aflush`).
        """
        if self._script is None:
            return self.tokens
        if self._async_redis:
            raise InvalidInput(
                f"retry budget {self.name!r} has a redis.asyncio client; use await aflush()"
            )
        now = self._clock.monotonic()
        with self._lock:
            batch = self._take(now)
        self._flush_batch(batch)
        return self.tokens

    async def aflush(self) -> float:
        """:meth:`flush` for async code; non-blocking with a ``redis.asyncio`` client."""
        if not self._async_redis:
            return self.flush()
        now = self._clock.monotonic()
        with self._lock:
            batch = self._take(now)
        reply = await self._asend(*batch, now)
        if reply is not None:
            self._adopt(reply)
        return self.tokens

    def _reset_locally(self) -> None:
        with self._lock:
            self._level = self._max
            self._pending_successes = self._pending_failures = 0
            self._gauge.set(self._max / _TOKEN)

    def reset(self) -> None:
        """Fill the bucket (for every budget sharing the key, when shared).

        A Redis error is logged as an outage, and the local copy is filled.

        Raises
        ------
        InvalidInput
            If the budget has a ``redis.asyncio`` client (use :meth:`areset`).
        """
        if self._async_redis:
            raise InvalidInput(
                f"retry budget {self.name!r} has a redis.asyncio client; use await areset()"
            )
        self._reset_locally()
        if self._script is not None:
            try:
                self._client.delete(self._redis_key)
            except self._redis_errors as exc:
                self._redis_failed(exc, self._clock.monotonic())

    async def areset(self) -> None:
        """:meth:`reset` for async code; non-blocking with a ``redis.asyncio`` client."""
        if not self._async_redis:
            self.reset()
            return
        self._reset_locally()
        try:
            await self._client.delete(self._redis_key)
        except self._redis_errors as exc:
            self._redis_failed(exc, self._clock.monotonic())

    def __repr__(self) -> str:
        shared = f", redis_key={self._redis_key!r}" if self._script is not None else ""
        return (
            f"RetryBudget({self.name!r}, tokens={self.tokens:g}, max_tokens={self.max_tokens:g}, "
            f"token_ratio={self.token_ratio:g}{shared})"
        )
