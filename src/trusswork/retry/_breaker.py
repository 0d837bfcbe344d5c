"""Circuit breakers: stop calling a dependency that keeps failing, then probe it.

A :class:`CircuitBreaker` is a three-state machine, as in resilience4j::

    CLOSED --(failure or slow rate >= threshold, after minimum_calls)--> OPEN
    OPEN --(open_for seconds pass; checked on the next call)--> HALF_OPEN
    HALF_OPEN --(half_open_calls probes finish, rates below thresholds)--> CLOSED
    HALF_OPEN --(half_open_calls probes finish, a rate at its threshold)--> OPEN

Guarantees:

* Outcomes of a call are counted only in the state epoch that admitted it:
  every transition bumps a generation number, and an outcome whose
  generation is stale is dropped. A call admitted while closed that fails
  after the breaker opened therefore never counts against the probes.
* A half-open round admits at most ``half_open_calls`` probes. A probe that
  is cancelled, interrupted or raises an ``ignore_on`` error hands its
  permit back. If the probes of a round have not all reported ``open_for``
  seconds after it began (a hung call, a crashed process holding a shared
  permit), the next call starts a new round, so half-open cannot wedge.
* One lock guards the local state; the closed-state success path of a
  decorated sync call takes it once and touches a few integers (about 0.5 µs
  on CPython 3.11, see ``docs/retry/breaker.md``). Listeners, logging and
  counters run after the lock is released.
* With ``redis=``, the state, the window and the open-until timestamp live
  in two Redis hashes updated by one Lua script, so every breaker sharing
  the key sees the same state and the fleet admits ``half_open_calls``
  probes in total. Time there is the caller's wall clock (``clock.time()``),
  passed into the script, so fleet hosts need synchronised clocks (NTP);
  local breakers use ``clock.monotonic()``. A Redis error never fails the
  caller's call: the breaker logs it once and decides locally until Redis
  answers again.
"""

from __future__ import annotations

import enum
import functools
import inspect
import logging
import math
import threading
from collections.abc import Callable, Coroutine, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, ParamSpec, TypeVar, cast

from trusswork.core.clock import SYSTEM_CLOCK, Clock
from trusswork.core.errors import InvalidInput, Unavailable
from trusswork.core.metrics import REGISTRY, MetricsRegistry
from trusswork.retry._checks import exception_types, seconds
from trusswork.retry._retry import _never_retried

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

_log = logging.getLogger("trusswork.retry")


class BreakerState(enum.StrEnum):
    """The state of a :class:`CircuitBreaker`; compares equal to its string value."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


_CLOSED = BreakerState.CLOSED
_OPEN = BreakerState.OPEN
_HALF = BreakerState.HALF_OPEN
_STATE_CODES = {_CLOSED: 0, _OPEN: 1, _HALF: 2}
_STATES_BY_CODE = (_CLOSED, _OPEN, _HALF)

# Outcome codes: bit 0 = failure, bit 1 = slow; _RELEASE hands a permit back uncounted.
_FAILURE = 1
_SLOW = 2
_RELEASE = -1
_EMPTY = -1  # a count-window slot that holds no call yet

Listener = Callable[[BreakerState, BreakerState, "CircuitBreaker"], object]


class CircuitOpen(Unavailable):
    """A call was refused because its circuit breaker is open (or half-open and busy).

    It is an :class:`~trusswork.core.errors.Unavailable` (a ``ConnectionError``,
    HTTP 503), so a retry on connection errors retries it, and its
    ``retry_after`` is honoured as server pushback: the retry waits until the
    breaker may admit a probe.

    Attributes
    ----------
    breaker:
        The name of the breaker that refused the call.
    retry_after:
        Seconds until the breaker turns half-open; ``0.0`` when it is
        half-open and all its probes are taken.
    """

    code = "circuit-open"
    http_status = 503
    title = "Circuit open"

    def __init__(self, message: str, *, breaker: str, retry_after: float) -> None:
        super().__init__(message)
        self.breaker = breaker
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[Any, ...]:
        return (_circuit_open, (type(self), self.message, self.breaker, self.retry_after))


def _circuit_open(
    cls: type[CircuitOpen], message: str, breaker: str, retry_after: float
) -> CircuitOpen:
    """Unpickle a :class:`CircuitOpen` (its constructor takes keyword-only arguments)."""
    return cls(message, breaker=breaker, retry_after=retry_after)


@dataclass(frozen=True, slots=True)
class BreakerMetrics:
    """A snapshot of a breaker, from :meth:`CircuitBreaker.metrics`.

    Closed: the counts of the sliding window. Open: the window that tripped
    it (empty after a failed round of probes). Half-open: the probes finished
    so far.
    """

    state: BreakerState
    calls: int
    failures: int
    slow_calls: int
    retry_after: float
    """Seconds until an open breaker turns half-open (0.0 otherwise)."""

    @property
    def failure_rate(self) -> float:
        """``failures / calls`` (0.0 with no calls)."""
        return self.failures / self.calls if self.calls else 0.0

    @property
    def slow_call_rate(self) -> float:
        """``slow_calls / calls`` (0.0 with no calls)."""
        return self.slow_calls / self.calls if self.calls else 0.0


_LUA = """
local state_key, window_key = KEYS[1], KEYS[2]
local op = ARGV[1]
local now = tonumber(ARGV[2])
local kind = ARGV[3]
local slots = tonumber(ARGV[4])
local width = tonumber(ARGV[5])
local minimum = tonumber(ARGV[6])
local failure_rate = tonumber(ARGV[7])
local slow_rate = tonumber(ARGV[8])
local open_for = tonumber(ARGV[9])
local probes = tonumber(ARGV[10])

local s = redis.call('HMGET', state_key, 'state', 'gen', 'until', 'admitted', 'done',
                     'failed', 'slow')
local state = tonumber(s[1]) or 0
local gen = tonumber(s[2]) or 0
local open_until = tonumber(s[3]) or 0
local admitted = tonumber(s[4]) or 0
local done = tonumber(s[5]) or 0
local failed = tonumber(s[6]) or 0
local slow = tonumber(s[7]) or 0

local function move(to)
  gen = gen + 1
  state = to
  admitted, done, failed, slow = 0, 0, 0, 0
  open_until = now + open_for
  if to ~= 1 then redis.call('DEL', window_key) end
  redis.call('HSET', state_key, 'state', state, 'gen', gen,
             'until', string.format('%.17g', open_until),
             'admitted', 0, 'done', 0, 'failed', 0, 'slow', 0)
end

local function tripped(calls, fails, slows)
  return calls > 0 and (fails / calls >= failure_rate or slows / calls >= slow_rate)
end

local function add_count(code)
  local w = redis.call('HMGET', window_key, 'cursor', 'calls', 'fails', 'slows')
  local cursor = tonumber(w[1]) or 0
  local calls = tonumber(w[2]) or 0
  local fails = tonumber(w[3]) or 0
  local slows = tonumber(w[4]) or 0
  if code < 0 then return calls, fails, slows end
  local old = tonumber(redis.call('HGET', window_key, 's' .. cursor))
  if old == nil then
    calls = calls + 1
  else
    fails = fails - old % 2
    slows = slows - math.floor(old / 2)
  end
  fails = fails + code % 2
  slows = slows + math.floor(code / 2)
  redis.call('HSET', window_key, 's' .. cursor, code, 'cursor', (cursor + 1) % slots,
             'calls', calls, 'fails', fails, 'slows', slows)
  return calls, fails, slows
end

local function add_time(code)
  local w = redis.call('HMGET', window_key, 'last', 'calls', 'fails', 'slows')
  local epoch = math.floor(now / width)
  local last = tonumber(w[1]) or epoch
  local calls = tonumber(w[2]) or 0
  local fails = tonumber(w[3]) or 0
  local slows = tonumber(w[4]) or 0
  if epoch > last then
    for k = 1, math.min(epoch - last, slots) do
      local i = (last + k) % slots
      local b = redis.call('HMGET', window_key, 'c' .. i, 'f' .. i, 'x' .. i)
      calls = calls - (tonumber(b[1]) or 0)
      fails = fails - (tonumber(b[2]) or 0)
      slows = slows - (tonumber(b[3]) or 0)
      redis.call('HDEL', window_key, 'c' .. i, 'f' .. i, 'x' .. i)
    end
    last = epoch
  end
  if code >= 0 then
    local i = last % slots
    redis.call('HINCRBY', window_key, 'c' .. i, 1)
    calls = calls + 1
    if code % 2 == 1 then
      redis.call('HINCRBY', window_key, 'f' .. i, 1)
      fails = fails + 1
    end
    if code >= 2 then
      redis.call('HINCRBY', window_key, 'x' .. i, 1)
      slows = slows + 1
    end
  end
  redis.call('HSET', window_key, 'last', last, 'calls', calls, 'fails', fails, 'slows', slows)
  return calls, fails, slows
end

local function add(code)
  if kind == 'count' then return add_count(code) end
  return add_time(code)
end

local function wait()
  if state == 1 then return string.format('%.6f', math.max(0, open_until - now)) end
  return '0'
end

if op == 'acquire' then
  if state == 1 and now >= open_until then
    move(2)
  elseif state == 2 and admitted >= probes and open_for > 0 and now >= open_until then
    move(2)
  end
  if state == 0 then return {0, state, gen, '0'} end
  if state == 2 and admitted < probes then
    admitted = admitted + 1
    redis.call('HSET', state_key, 'admitted', admitted)
    return {1, state, gen, '0'}
  end
  return {2, state, gen, wait()}
elseif op == 'record' then
  local pgen = tonumber(ARGV[11])
  local probe = ARGV[12] == '1'
  local code = tonumber(ARGV[13])
  if pgen == gen then
    if probe and state == 2 then
      if code < 0 then
        admitted = math.max(0, admitted - 1)
        redis.call('HSET', state_key, 'admitted', admitted)
      else
        done = done + 1
        failed = failed + code % 2
        slow = slow + math.floor(code / 2)
        redis.call('HSET', state_key, 'done', done, 'failed', failed, 'slow', slow)
        if done >= probes then
          if tripped(done, failed, slow) then move(1) else move(0) end
        end
      end
    elseif (not probe) and state == 0 and code >= 0 then
      local calls, fails, slows = add(code)
      if calls >= minimum and tripped(calls, fails, slows) then move(1) end
    end
  end
  return {state, gen, wait()}
elseif op == 'set' then
  move(tonumber(ARGV[11]))
  return {state, gen, wait()}
end
if state == 1 and now >= open_until then move(2) end
if state == 2 then return {state, gen, wait(), done, failed, slow} end
local calls, fails, slows = add(-1)
return {state, gen, wait(), calls, fails, slows}
"""


_OWNER = "CircuitBreaker"


def _fraction(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise InvalidInput(f"CircuitBreaker {name}= must be a number in (0, 1], got {value!r}")
    return float(value)


def _count(name: str, value: object, low: int = 1, high: int = 1_000_000) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(
            f"CircuitBreaker {name}= must be an integer in [{low}, {high}], got {value!r}"
        )
    return value


def _redis_errors() -> tuple[type[BaseException], ...]:
    from redis.exceptions import RedisError

    return (RedisError, OSError)


#: The breakers entered by ``with``/``async with`` in this context, innermost last.
_HELD: ContextVar[tuple[tuple[CircuitBreaker, tuple[int, bool, bool, float]], ...]] = ContextVar(
    "trusswork_breaker_held", default=()
)


class CircuitBreaker:
    """Stop calling a failing dependency for a while, then let a few probes through.

    Use it as a decorator (sync or ``async`` functions; the signature is
    kept), as ``with breaker:`` / ``async with breaker:`` around a block, or
    with :meth:`call`. A refused call raises :class:`CircuitOpen` without
    running. All arguments but ``name`` are keyword-only.

    Parameters
    ----------
    name:
        Names the breaker in errors, logs, metrics and the default Redis key.
    failure_rate:
        Open when at least this fraction of the calls in the window failed,
        in (0, 1].
    slow_call_rate:
        Open when at least this fraction of the calls in the window were
        slow, in (0, 1].
    slow_call_duration:
        Seconds after which a call counts as slow, or ``None`` (slow calls
        are not tracked and no clock is read on the success path).
    window:
        ``"count"``: the last ``window_size`` calls; ``"time"``: the calls of
        the last ``window_size`` seconds, kept in ``max(10, ceil(window_size))``
        buckets of at most one second.
    window_size:
        Calls (1 to 1,000,000) or seconds (at most 86,400).
    minimum_calls:
        Calls the window must hold before the rates are judged (at most
        ``window_size`` for a count window).
    open_for:
        Seconds the breaker stays open before admitting probes (positive: a
        half-open round whose probes have not all reported after this long
        is restarted, so a hung probe cannot wedge the breaker).
    half_open_calls:
        Probes admitted in half-open; when all have finished the breaker
        closes if both rates are below their thresholds and re-opens
        otherwise.
    record_on:
        Exception class(es) counted as failures. Other exceptions count as
        successes (the dependency answered); cancellation,
        ``KeyboardInterrupt``, ``SystemExit`` and ``GeneratorExit`` are never
        counted.
    ignore_on:
        Exception class(es) counted neither way; takes precedence over
        ``record_on``.
    failure_if_result:
        Predicate on a returned value; true counts the call as a failure
        (the value is still returned).
    clock:
        Where time is read; a ``FakeClock`` makes tests instant.
    listeners:
        Called as ``listener(old_state, new_state, breaker)`` on every
        transition, in order, after the breaker's lock is released.
        Exceptions they raise are logged on ``trusswork.retry`` and dropped.
    redis, redis_key:
        A ``redis.Redis`` or ``redis.asyncio.Redis`` client to share the
        state through, and the key of the state hash (the window lives at
        ``redis_key + ":window"``); ``trusswork:breaker:{name}`` by default.
    registry:
        Where the breaker's metrics go (:data:`trusswork.core.metrics.REGISTRY`).

    Raises
    ------
    InvalidInput
        If an argument is out of range or of the wrong kind.
    """

    __slots__ = (
        "__weakref__",
        "_admitted",
        "_async_redis",
        "_buckets",
        "_calls",
        "_clock",
        "_cursor",
        "_done",
        "_fails",
        "_failure_if_result",
        "_failure_rate",
        "_gauge",
        "_gen",
        "_half_open_calls",
        "_ignore_on",
        "_last_epoch",
        "_listeners",
        "_lock",
        "_minimum_calls",
        "_open_for",
        "_open_until",
        "_probe_failed",
        "_probe_slow",
        "_record_on",
        "_redis_args",
        "_redis_down",
        "_redis_errors",
        "_redis_keys",
        "_rejected",
        "_ring",
        "_script",
        "_slots",
        "_slow_call_duration",
        "_slow_call_rate",
        "_slows",
        "_state",
        "_transitions",
        "_width",
        "_window",
        "name",
    )

    def __init__(
        self,
        name: str = "default",
        *,
        failure_rate: float = 0.5,
        slow_call_rate: float = 1.0,
        slow_call_duration: float | None = None,
        window: Literal["count", "time"] = "count",
        window_size: float = 100,
        minimum_calls: int = 10,
        open_for: float = 30.0,
        half_open_calls: int = 5,
        record_on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
        ignore_on: type[BaseException] | tuple[type[BaseException], ...] = (),
        failure_if_result: Callable[[Any], bool] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        listeners: Iterable[Listener] = (),
        redis: Any = None,
        redis_key: str | None = None,
        registry: MetricsRegistry | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise InvalidInput(f"CircuitBreaker name must be a non-empty string, got {name!r}")
        self.name = name
        self._failure_rate = _fraction("failure_rate", failure_rate)
        self._slow_call_rate = _fraction("slow_call_rate", slow_call_rate)
        self._slow_call_duration = (
            None
            if slow_call_duration is None
            else seconds(_OWNER, "slow_call_duration", slow_call_duration, positive=True)
        )
        if window == "count":
            self._slots = _count("window_size", window_size)
            self._width = 0.0
            self._minimum_calls = _count("minimum_calls", minimum_calls, high=self._slots)
        elif window == "time":
            size = seconds(_OWNER, "window_size", window_size, positive=True)
            if size > 86_400:
                raise InvalidInput(
                    f"CircuitBreaker window_size= of a time window is at most 86400 seconds, "
                    f"got {window_size!r}"
                )
            self._slots = max(10, math.ceil(size))
            self._width = size / self._slots
            self._minimum_calls = _count("minimum_calls", minimum_calls)
        else:
            raise InvalidInput(f"CircuitBreaker window= must be 'count' or 'time', got {window!r}")
        self._window = window
        self._open_for = seconds(_OWNER, "open_for", open_for, positive=True)
        self._half_open_calls = _count("half_open_calls", half_open_calls)
        self._record_on = exception_types(_OWNER, "record_on", record_on)
        self._ignore_on = exception_types(_OWNER, "ignore_on", ignore_on, empty=True)
        if failure_if_result is not None and not callable(failure_if_result):
            raise InvalidInput(
                f"CircuitBreaker failure_if_result= must be callable or None, "
                f"got {failure_if_result!r}"
            )
        self._failure_if_result = failure_if_result
        self._clock = clock
        self._listeners: list[Listener] = []
        for listener in listeners:
            self.add_listener(listener)
        if registry is None:
            registry = REGISTRY
        elif not isinstance(registry, MetricsRegistry):
            raise InvalidInput(
                f"CircuitBreaker registry= must be a MetricsRegistry, got {registry!r}"
            )
        self._gauge = registry.gauge(
            "trusswork_breaker_state",
            "Circuit breaker state (0 closed, 1 open, 2 half-open).",
            labelnames=("breaker",),
        ).labels(name)
        self._transitions = registry.counter(
            "trusswork_breaker_transitions",
            "Circuit breaker state transitions (as observed by this process).",
            labelnames=("breaker", "from_state", "to_state"),
        )
        self._rejected = registry.counter(
            "trusswork_breaker_rejected",
            "Calls refused by an open or busy half-open circuit breaker.",
            labelnames=("breaker",),
        ).labels(name)
        self._gauge.set(0)
        self._lock = threading.Lock()
        self._state = _CLOSED
        self._gen = 0
        self._open_until = 0.0
        self._admitted = self._done = self._probe_failed = self._probe_slow = 0
        self._clear_window()
        self._script: Any = None
        self._async_redis = False
        self._redis_down = False
        self._redis_keys: list[str] = []
        self._redis_args: list[str] = []
        self._redis_errors: tuple[type[BaseException], ...] = ()
        if redis is not None:
            self._setup_redis(redis, redis_key)
        elif redis_key is not None:
            raise InvalidInput("CircuitBreaker redis_key= needs redis= (a Redis client)")

    def _setup_redis(self, client: Any, key: str | None) -> None:
        if not hasattr(client, "register_script"):
            raise InvalidInput(
                f"CircuitBreaker redis= must be a redis.Redis or redis.asyncio.Redis client, "
                f"got {client!r}"
            )
        if key is None:
            key = f"trusswork:breaker:{self.name}"
        elif not isinstance(key, str) or not key:
            raise InvalidInput(f"CircuitBreaker redis_key= must be a non-empty string, got {key!r}")
        import redis.asyncio

        self._async_redis = isinstance(client, redis.asyncio.Redis)
        self._redis_errors = _redis_errors()
        self._script = client.register_script(_LUA)
        self._redis_keys = [key, f"{key}:window"]
        slow_rate = self._slow_call_rate if self._slow_call_duration is not None else 2.0
        self._redis_args = [
            self._window,
            str(self._slots),
            repr(self._width if self._width else 1.0),
            str(self._minimum_calls),
            repr(self._failure_rate),
            repr(slow_rate),
            repr(self._open_for),
            str(self._half_open_calls),
        ]

    # ------------------------------------------------------------ local state

    def _clear_window(self) -> None:
        self._calls = self._fails = self._slows = 0
        self._cursor = 0
        self._ring = [_EMPTY] * self._slots if self._window == "count" else []
        # Time window: per bucket [calls, failures, slow calls]; _last_epoch is the
        # bucket index (now // width) of the newest bucket.
        self._buckets = [[0, 0, 0] for _ in range(self._slots)] if self._window == "time" else []
        self._last_epoch: int | None = None

    def _advance(self, now: float) -> None:
        """Drop the time-window buckets that fell out of the window by ``now``."""
        epoch = int(now // self._width)
        last = self._last_epoch
        if last is None:
            self._last_epoch = epoch
            return
        if epoch <= last:
            return
        slots = self._slots
        buckets = self._buckets
        for k in range(1, min(epoch - last, slots) + 1):
            bucket = buckets[(last + k) % slots]
            self._calls -= bucket[0]
            self._fails -= bucket[1]
            self._slows -= bucket[2]
            bucket[0] = bucket[1] = bucket[2] = 0
        self._last_epoch = epoch

    def _to(self, new: BreakerState, now: float) -> tuple[BreakerState, BreakerState]:
        """Move to ``new`` (under the lock); the caller announces the returned change."""
        old = self._state
        self._state = new
        self._gen += 1
        self._admitted = self._done = self._probe_failed = self._probe_slow = 0
        # Open: when probes may start. Half-open: when a round whose probes never
        # all reported (a hung call, a crashed process) may be started afresh.
        self._open_until = now + self._open_for
        if new is not _OPEN:
            self._clear_window()
        self._gauge.set(_STATE_CODES[new])
        return old, new

    def _stale_round(self, now: float) -> bool:
        """True if every probe of this half-open round is taken and ``open_for`` has passed."""
        return (
            self._state is _HALF
            and self._admitted >= self._half_open_calls
            and self._open_for > 0
            and now >= self._open_until
        )

    def _tripped(self, calls: int, fails: int, slows: int) -> bool:
        return calls > 0 and (
            fails / calls >= self._failure_rate or slows / calls >= self._slow_call_rate
        )

    def _admit_local(self) -> tuple[int, bool]:
        """A permit (generation, is_probe), or raise CircuitOpen."""
        change = None
        wait = 0.0
        with self._lock:
            state = self._state
            if state is _CLOSED:
                return self._gen, False
            now = self._clock.monotonic()
            if state is _OPEN and now >= self._open_until:
                change = self._to(_HALF, now)
            elif self._stale_round(now):
                self._to(_HALF, now)  # late outcomes of the old round are dropped
            permit = None
            if self._state is _HALF:
                if self._admitted < self._half_open_calls:
                    self._admitted += 1
                    permit = (self._gen, True)
            else:
                wait = self._open_until - now
        if change is not None:
            self._announce(*change)
        if permit is None:
            raise self._reject(wait)
        return permit

    def _record_local(self, gen: int, probe: bool, code: int) -> None:
        change = None
        with self._lock:
            if gen != self._gen:
                return
            if probe:
                if code < 0:
                    self._admitted -= 1
                    return
                self._done += 1
                self._probe_failed += code & 1
                self._probe_slow += code >> 1
                if self._done >= self._half_open_calls:
                    now = self._clock.monotonic()
                    tripped = self._tripped(self._done, self._probe_failed, self._probe_slow)
                    change = self._to(_OPEN if tripped else _CLOSED, now)
            elif code >= 0:
                now = 0.0
                if self._window == "count":
                    ring = self._ring
                    cursor = self._cursor
                    old = ring[cursor]
                    ring[cursor] = code
                    self._cursor = (cursor + 1) % self._slots
                    if old < 0:
                        self._calls += 1
                    else:
                        self._fails -= old & 1
                        self._slows -= old >> 1
                else:
                    now = self._clock.monotonic()
                    self._advance(now)
                    bucket = self._buckets[cast(int, self._last_epoch) % self._slots]
                    bucket[0] += 1
                    bucket[1] += code & 1
                    bucket[2] += code >> 1
                    self._calls += 1
                self._fails += code & 1
                self._slows += code >> 1
                if (
                    (self._fails or self._slows)
                    and self._calls >= self._minimum_calls
                    and self._tripped(self._calls, self._fails, self._slows)
                ):
                    change = self._to(_OPEN, now or self._clock.monotonic())
        if change is not None:
            self._announce(*change)

    def _succeeded_closed(self, gen: int) -> None:
        """The closed-state success of a count-window call without slow tracking."""
        if not (self._fails or self._slows) and self._calls == self._slots:
            # A full window of successes: recording one more changes no count, and
            # where the cursor stands does not matter while every slot holds 0.
            return
        with self._lock:
            if gen != self._gen:
                return
            ring = self._ring
            cursor = self._cursor
            old = ring[cursor]
            ring[cursor] = 0
            cursor += 1
            self._cursor = 0 if cursor == self._slots else cursor
            if old:
                if old < 0:
                    self._calls += 1
                else:
                    self._fails -= old & 1
                    self._slows -= old >> 1
            if not (self._fails or self._slows) or self._calls < self._minimum_calls:
                return
            if not self._tripped(self._calls, self._fails, self._slows):
                return
            change = self._to(_OPEN, self._clock.monotonic())
        self._announce(*change)

    # ------------------------------------------------------------ shared state

    def _run_script(self, op: str, now: float, extra: tuple[object, ...]) -> list[Any]:
        return cast(
            list[Any],
            self._script(keys=self._redis_keys, args=[op, repr(now), *self._redis_args, *extra]),
        )

    async def _arun_script(self, op: str, now: float, extra: tuple[object, ...]) -> list[Any]:
        reply = self._script(keys=self._redis_keys, args=[op, repr(now), *self._redis_args, *extra])
        return cast(list[Any], await reply)

    def _observed(self, code: int) -> None:
        """Announce a change of the shared state first seen by this process."""
        new = _STATES_BY_CODE[int(code)]
        with self._lock:
            old = self._state
            if old is new:
                return
            self._state = new
            self._gauge.set(_STATE_CODES[new])
        self._announce(old, new)

    def _redis_failed(self, error: BaseException) -> None:
        if not self._redis_down:
            self._redis_down = True
            _log.warning(
                "circuit breaker %s cannot reach Redis (%r); deciding locally until it answers",
                self.name,
                error,
                extra={"breaker": self.name},
            )

    def _redis_back(self) -> None:
        if self._redis_down:
            self._redis_down = False
            _log.warning(
                "circuit breaker %s reaches Redis again", self.name, extra={"breaker": self.name}
            )

    def _admit_reply(self, reply: list[Any]) -> tuple[int, bool]:
        """The (generation, is_probe) of an ``acquire`` reply, or raise CircuitOpen."""
        self._redis_back()
        verdict, gen, wait = int(reply[0]), int(reply[2]), float(reply[3])
        self._observed(reply[1])
        if verdict == 2:
            raise self._reject(wait)
        return gen, verdict == 1

    def _start(self) -> float:
        """When an admitted call starts, for slow-call tracking (0.0 when untracked)."""
        return self._clock.monotonic() if self._slow_call_duration is not None else 0.0

    def _admit(self) -> tuple[int, bool, bool, float]:
        """A permit (generation, is_probe, is_shared, start) or raise CircuitOpen."""
        if self._script is None:
            gen, probe = self._admit_local()
            return gen, probe, False, self._start()
        if self._async_redis:
            raise InvalidInput(
                f"circuit breaker {self.name!r} shares its state through a redis.asyncio "
                f"client, so it guards only async code (async def, async with); give it a "
                f"redis.Redis client to guard sync code"
            )
        try:
            reply = self._run_script("acquire", self._clock.time(), ())
        except self._redis_errors as exc:
            self._redis_failed(exc)
            gen, probe = self._admit_local()
            return gen, probe, False, self._start()
        gen, probe = self._admit_reply(reply)
        return gen, probe, True, self._start()

    async def _aadmit(self) -> tuple[int, bool, bool, float]:
        if not self._async_redis:
            return self._admit()
        try:
            reply = await self._arun_script("acquire", self._clock.time(), ())
        except self._redis_errors as exc:
            self._redis_failed(exc)
            gen, probe = self._admit_local()
            return gen, probe, False, self._start()
        gen, probe = self._admit_reply(reply)
        return gen, probe, True, self._start()

    def _record(self, permit: tuple[int, bool, bool, float], code: int) -> None:
        gen, probe, shared, _ = permit
        if not shared:
            self._record_local(gen, probe, code)
            return
        try:
            reply = self._run_script("record", self._clock.time(), (gen, int(probe), code))
        except self._redis_errors as exc:
            self._redis_failed(exc)
            return
        self._redis_back()
        self._observed(reply[0])

    async def _arecord(self, permit: tuple[int, bool, bool, float], code: int) -> None:
        if not (self._async_redis and permit[2]):
            self._record(permit, code)
            return
        gen, probe, _, _ = permit
        try:
            reply = await self._arun_script("record", self._clock.time(), (gen, int(probe), code))
        except self._redis_errors as exc:
            self._redis_failed(exc)
            return
        self._redis_back()
        self._observed(reply[0])

    # ------------------------------------------------------------ outcomes

    def _reject(self, wait: float) -> CircuitOpen:
        self._rejected.inc()
        wait = max(0.0, wait)
        if wait > 0:
            why = f"open; it admits a probe in {wait:.3f} s"
        else:
            why = "half-open and all its probes are running; try again shortly"
        return CircuitOpen(
            f"circuit breaker {self.name!r} is {why}", breaker=self.name, retry_after=wait
        )

    def _error_code(self, error: BaseException, start: float) -> int:
        if isinstance(error, self._ignore_on) or _never_retried(error):
            return _RELEASE
        if isinstance(error, self._record_on):
            return _FAILURE | self._slow_bit(start)
        return self._slow_bit(start)

    def _slow_bit(self, start: float) -> int:
        limit = self._slow_call_duration
        if limit is None:
            return 0
        return _SLOW if self._clock.monotonic() - start >= limit else 0

    def _result_code(self, result: object, start: float) -> int:
        check = self._failure_if_result
        failed = check is not None and bool(check(result))
        return (_FAILURE if failed else 0) | self._slow_bit(start)

    def _announce(self, old: BreakerState, new: BreakerState) -> None:
        self._transitions.labels(self.name, old.value, new.value).inc()
        _log.warning(
            "circuit breaker %s: %s -> %s",
            self.name,
            old.value,
            new.value,
            extra={"breaker": self.name, "from": old.value, "to": new.value},
        )
        for listener in tuple(self._listeners):
            try:
                listener(old, new, self)
            except Exception:
                _log.exception(
                    "circuit breaker %s: listener %r raised; ignored", self.name, listener
                )

    # ------------------------------------------------------------ public API

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorate ``fn`` (sync or ``async``) so every call goes through the breaker."""
        if not callable(fn):
            raise InvalidInput(f"a CircuitBreaker decorates a callable, got {fn!r}")
        if inspect.iscoroutinefunction(fn):
            return cast(Callable[P, R], self._wrap_async(cast(Any, fn)))
        if self._async_redis:
            raise InvalidInput(
                f"circuit breaker {self.name!r} shares its state through a redis.asyncio "
                f"client and cannot guard the sync function {fn!r}"
            )
        return self._wrap_sync(fn)

    def _fast(self) -> bool:
        """Whether calls may take the local closed-state shortcut (no clock, no Redis)."""
        return (
            self._script is None
            and self._window == "count"
            and self._slow_call_duration is None
            and self._failure_if_result is None
        )

    def _wrap_sync(self, fn: Callable[P, R]) -> Callable[P, R]:
        fast = self._fast()
        admit = self._admit
        record = self._record
        error_code = self._error_code
        result_code = self._result_code

        if fast:
            succeeded = self._succeeded_closed
            record_local = self._record_local
            admit_local = self._admit_local

            def guarded_fast(*args: P.args, **kwargs: P.kwargs) -> R:
                gen = self._gen
                probe = False
                if self._state is not _CLOSED:
                    gen, probe = admit_local()
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:
                    record_local(gen, probe, error_code(exc, 0.0))
                    raise
                if probe:
                    record_local(gen, True, 0)
                else:
                    succeeded(gen)
                return result

            return functools.wraps(fn)(guarded_fast)

        def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            permit = admit()
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                record(permit, error_code(exc, permit[3]))
                raise
            try:
                code = result_code(result, permit[3])
            except BaseException:
                record(permit, _RELEASE)
                raise
            record(permit, code)
            return result

        return functools.wraps(fn)(guarded)

    def _wrap_async(
        self, fn: Callable[P, Coroutine[Any, Any, T]]
    ) -> Callable[P, Coroutine[Any, Any, T]]:
        admit = self._aadmit
        record = self._arecord
        error_code = self._error_code
        result_code = self._result_code

        if self._fast():
            succeeded = self._succeeded_closed
            record_local = self._record_local
            admit_local = self._admit_local

            async def guarded_fast(*args: P.args, **kwargs: P.kwargs) -> T:
                gen = self._gen
                probe = False
                if self._state is not _CLOSED:
                    gen, probe = admit_local()
                try:
                    result = await fn(*args, **kwargs)
                except BaseException as exc:
                    record_local(gen, probe, error_code(exc, 0.0))
                    raise
                if probe:
                    record_local(gen, True, 0)
                else:
                    succeeded(gen)
                return result

            return functools.wraps(fn)(guarded_fast)

        async def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
            permit = await admit()
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                await record(permit, error_code(exc, permit[3]))
                raise
            try:
                code = result_code(result, permit[3])
            except BaseException:
                await record(permit, _RELEASE)
                raise
            await record(permit, code)
            return result

        return functools.wraps(fn)(guarded)

    def call(self, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """Call ``fn(*args, **kwargs)`` through the breaker; an ``async`` fn returns an awaitable.

        Raises
        ------
        CircuitOpen
            If the breaker refuses the call (``fn`` is not called).
        """
        if inspect.iscoroutinefunction(fn):
            return cast(R, self._wrap_async(cast(Any, fn))(*args, **kwargs))
        return self._wrap_sync(fn)(*args, **kwargs)

    def __enter__(self) -> CircuitBreaker:
        permit = self._admit()
        _HELD.set((*_HELD.get(), (self, permit)))
        return self

    def _pop(self) -> tuple[int, bool, bool, float]:
        held = _HELD.get()
        for index in range(len(held) - 1, -1, -1):
            if held[index][0] is self:
                _HELD.set(held[:index] + held[index + 1 :])
                return held[index][1]
        raise InvalidInput(f"circuit breaker {self.name!r} exited without being entered")

    def _exit_code(self, error: BaseException | None, start: float) -> int:
        if error is None:
            return self._slow_bit(start)
        return self._error_code(error, start)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        permit = self._pop()
        self._record(permit, self._exit_code(error, permit[3]))

    async def __aenter__(self) -> CircuitBreaker:
        permit = await self._aadmit()
        _HELD.set((*_HELD.get(), (self, permit)))
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        permit = self._pop()
        await self._arecord(permit, self._exit_code(error, permit[3]))

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(old_state, new_state, breaker)`` on every transition from now on."""
        if not callable(listener):
            raise InvalidInput(f"CircuitBreaker listener must be callable, got {listener!r}")
        self._listeners.append(listener)

    @property
    def state(self) -> BreakerState:
        """The current state; an open breaker whose ``open_for`` has passed reads half-open.

        With a ``redis.asyncio`` client this is the state last observed by
        this process (use :meth:`ametrics` for a fresh reading).
        """
        return self.metrics().state

    def metrics(self) -> BreakerMetrics:
        """A snapshot of the state and the window (read from Redis when shared)."""
        if self._script is not None and not self._async_redis:
            now = self._clock.time()
            try:
                reply = self._run_script("read", now, ())
            except self._redis_errors as exc:
                self._redis_failed(exc)
            else:
                return self._remote_metrics(reply)
        return self._local_metrics(observed_only=self._async_redis)

    async def ametrics(self) -> BreakerMetrics:
        """:meth:`metrics` for async code; reads Redis through a ``redis.asyncio`` client."""
        if not self._async_redis:
            return self.metrics()
        try:
            reply = await self._arun_script("read", self._clock.time(), ())
        except self._redis_errors as exc:
            self._redis_failed(exc)
            return self._local_metrics(observed_only=True)
        return self._remote_metrics(reply)

    def _remote_metrics(self, reply: list[Any]) -> BreakerMetrics:
        self._redis_back()
        self._observed(reply[0])
        state = _STATES_BY_CODE[int(reply[0])]
        calls, fails, slows = (int(v) for v in reply[3:6])
        return BreakerMetrics(state, calls, fails, slows, float(reply[2]))

    def _local_metrics(self, *, observed_only: bool) -> BreakerMetrics:
        change = None
        with self._lock:
            now = self._clock.monotonic()
            if not observed_only and self._state is _OPEN and now >= self._open_until:
                change = self._to(_HALF, now)
            state = self._state
            if state is _HALF:
                counts = (self._done, self._probe_failed, self._probe_slow)
            else:
                if self._window == "time" and self._calls:
                    self._advance(now)
                counts = (self._calls, self._fails, self._slows)
            wait = max(0.0, self._open_until - now) if state is _OPEN else 0.0
        if change is not None:
            self._announce(*change)
        return BreakerMetrics(state, *counts, wait)

    def _set(self, target: BreakerState) -> None:
        if self._script is not None:
            if self._async_redis:
                raise InvalidInput(
                    f"circuit breaker {self.name!r} uses a redis.asyncio client; "
                    f"call areset() / aforce_open() instead"
                )
            try:
                reply = self._run_script("set", self._clock.time(), (_STATE_CODES[target],))
            except self._redis_errors as exc:
                self._redis_failed(exc)
            else:
                self._redis_back()
                self._observed(reply[0])
        self._set_local(target)

    def _set_local(self, target: BreakerState) -> None:
        with self._lock:
            old = self._state
            self._to(target, self._clock.monotonic())
        if old is not target:
            self._announce(old, target)

    async def _aset(self, target: BreakerState) -> None:
        if not self._async_redis:
            self._set(target)
            return
        try:
            reply = await self._arun_script("set", self._clock.time(), (_STATE_CODES[target],))
        except self._redis_errors as exc:
            self._redis_failed(exc)
        else:
            self._redis_back()
            self._observed(reply[0])
        self._set_local(target)

    def reset(self) -> None:
        """Close the breaker and forget the window (everywhere, when shared through Redis)."""
        self._set(_CLOSED)

    def force_open(self) -> None:
        """Open the breaker now, as if a threshold were crossed; half-open after ``open_for``."""
        self._set(_OPEN)

    async def areset(self) -> None:
        """:meth:`reset` for a breaker with a ``redis.asyncio`` client."""
        await self._aset(_CLOSED)

    async def aforce_open(self) -> None:
        """:meth:`force_open` for a breaker with a ``redis.asyncio`` client."""
        await self._aset(_OPEN)

    def __repr__(self) -> str:
        shared = f", redis_key={self._redis_keys[0]!r}" if self._redis_keys else ""
        return (
            f"CircuitBreaker({self.name!r}, state={self._state.value!r}, "
            f"failure_rate={self._failure_rate:g}, window={self._window!r}, "
            f"window_size={self._slots if self._window == 'count' else self._slots * self._width:g}"
            f"{shared})"
        )


__all__ = ["BreakerMetrics", "BreakerState", "CircuitBreaker", "CircuitOpen"]
