"""Weighted fair sharing of one capacity, shared by many processes through one Redis.

:class:`RedisFairShare` is the distributed twin of
:class:`~trusswork.ratelimit.FairShare`: the same semantics (per-key buckets
filling at ``rate * w / W`` up to ``reserve * w / W``, one global GCRA bucket
``G``, borrowing when ``G - c >= R - x``, idle keys leaving the active set;
see ``_fair.py``), decided atomically by one Lua script per request, so any
number of processes on any hosts share one group.

State
    One fair-share group lives under one Redis Cluster hash tag,
    ``{<prefix>:<name>}``, in three keys: ``<prefix>:fair:{<prefix>:<name>}:s``
    (a hash: ``W`` the active weight, ``F`` the sum of the members' fills,
    ``R``/``Rat`` the running bound and when it was taken, ``B``/``Bat`` the
    global bucket's backlog and when, ``last`` the latest now), ``...:m`` (a
    hash: per key ``"<weight>:<fill>:<anchor µs>"``) and ``...:a`` (the
    active set: a sorted set of keys scored by the µs they were last seen).
    A multi-key script on a cluster needs its keys in one slot, so **on a
    cluster one group lives on one node**: spread load with several groups
    (``name=``), not with one big group. Every request rewrites the three
    keys with ``PX`` = ``max(idle_after, burst / rate)`` (plus one second),
    after which the group decides as if it had never been used.

Time and numbers
    As in ``_scripts.py``: "now" is Redis ``TIME`` in integer µs (clients'
    clocks never enter), durations are integer ns, everything stays below
    2**53 (exact in Lua doubles). A clock that goes back (after a failover)
    is treated as standing still. Tests may pass an explicit now in µs.

Where the answers differ from :class:`FairShare`
    ``FairShare`` keeps weights in units of 1/65536; products such as
    ``W * fill`` would then exceed 2**53 for ordinary parameters, so here
    **weights are whole numbers** (units of 1) and the arithmetic is
    FairShare's at that resolution. Every formula is homogeneous in the
    weight unit except one rounding: a joining key's start
    ``floor(w * F / W_old)`` (FairShare rounds at 1/65536 of the unit, this
    script at the unit). The difference is below one weight-nanosecond, in
    the conservative direction here; decisions agree except when a join
    happens while other buckets are partly full *and* a later decision falls
    exactly on that sub-nanosecond boundary (the comparison test, 3000
    seeded requests of several weights with joins and idling, finds none:
    every field of every decision is equal). A group
    refuses (:class:`~trusswork.core.errors.LimitExceeded`) a key whose
    joining would push ``W * (burst + reserve) / rate`` or
    ``w * W * reserve / rate`` (ns) past 2**53; with weight 1 and
    ``burst / rate`` of 10 s that is about 450 000 active keys. Keys are
    compared as bytes: ``42`` and ``"42"`` are one key (unlike in-process).

Failure policy
    As :class:`~trusswork.ratelimit.RedisLimiter` (whose connection,
    circuit breaker and metrics machinery this class uses): ``"open"``
    admits, ``"closed"`` denies, ``"local"`` decides with an in-process
    :class:`FairShare` of the same parameters while Redis is unreachable.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Final, Literal, Self, TypeAlias

from trusswork.core.errors import Corruption, InvalidInput, LimitExceeded
from trusswork.core.metrics import MetricsRegistry
from trusswork.ratelimit._fair import FairShare
from trusswork.ratelimit._redis import RedisLimiter, _cost, _key_bytes
from trusswork.ratelimit._resp import _bulk
from trusswork.ratelimit._scripts import COMMON, sha1
from trusswork.ratelimit._table import Decision
from trusswork.retry import CircuitBreaker

__all__ = ["FAIR_SHARE", "RedisFairShare"]

Key: TypeAlias = str | bytes | int
WeightSpec: TypeAlias = Mapping[Any, float] | Callable[[Key], float]
FailurePolicy: TypeAlias = Literal["open", "closed", "local"]

_MAX_EXACT: Final = 2**53
_FAIR_UNIT: Final = 1 << 16  # FairShare's weight unit, for its retry computation

#: The script. KEYS: state hash, members hash, active zset. ARGV: now (µs or ''),
#: interval ns, burst, reserve, idle ns, key, cost, weight of the key if it joins.
#: Reply: 8 integers ``code remaining reset_ns weight total level shared reserved``
#: (code 1 allowed, 0 denied, 2 the join would leave exact arithmetic); the last
#: five are the values before spending, from which the client computes retry_after.
FAIR_SHARE: Final = (
    COMMON
    + r"""
local LIM = 9007199254740992
local function cdiv(a, b) return -idiv(-a, b) end
local function bad(key, value)
  error({err = 'TWSTATE key ' .. key .. ' holds ' .. string.format('%q', tostring(value)) ..
         ', which is not fair-share state'})
end

local interval, burst = tonumber(ARGV[2]), tonumber(ARGV[3])
local reserve, idle = tonumber(ARGV[4]), tonumber(ARGV[5])
local key, cost, wjoin = ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8])
local tau, horizon = burst * interval, reserve * interval
local SK, MK, AK = KEYS[1], KEYS[2], KEYS[3]

local st = redis.call('HMGET', SK, 'last', 'W', 'F', 'R', 'Rat', 'B', 'Bat')
local last = tonumber(st[1])
if last ~= nil and now < last then now = last end
local W = tonumber(st[2]) or 0
local F = tonumber(st[3]) or 0
local R = tonumber(st[4]) or 0
local Rat = tonumber(st[5]) or now
local B = tonumber(st[6]) or 0
local Bat = tonumber(st[7]) or now

local function member(k)
  local v = redis.call('HGET', MK, k)
  if not v then return nil end
  local w, f, a = string.match(v, '^(%d+):(%d+):(%d+)$')
  if w == nil then bad(MK, v) end
  return tonumber(w), tonumber(f), tonumber(a)
end

-- idle keys leave: seen_ns <= now_ns - idle  <=>  seen_us <= now_us - ceil(idle / 1000)
local deadline = now - ceil(idle / 1000)
local gone = redis.call('ZRANGEBYSCORE', AK, '-inf', deadline)
for _, k in ipairs(gone) do
  local w, f = member(k)
  if w ~= nil then
    W = W - w
    F = F - f
    redis.call('HDEL', MK, k)
  end
end
if #gone > 0 then redis.call('ZREMRANGEBYSCORE', AK, '-inf', deadline) end
if W <= 0 or redis.call('ZCARD', AK) == 0 then W = 0; F = 0; R = 0 end

local backlog = B - (now - Bat) * 1000
if backlog < 0 then backlog = 0 end
local shared = tau - backlog
local reserved = 0
if W > 0 then
  reserved = R + (now - Rat) * 1000
  if reserved > horizon then reserved = horizon end
end

local weight, fill, anchor = member(key)
local joining = weight == nil
local total, level
if joining then
  weight = wjoin
  total = W + weight
  if total * (tau + horizon) >= LIM or weight * total * horizon >= LIM then
    return '2 0 0 0 0 0 0 0'
  end
  local f = shared - reserved
  if f < 0 then f = 0 end
  f = f * total
  if W > 0 then f = f + idiv(weight * F, W) end
  if f > weight * horizon then f = weight * horizon end
  local added
  if W > 0 then added = cdiv(W * f - weight * F, total * W) else added = cdiv(f, total) end
  level = f
  reserved = reserved + added
else
  total = W
  local d = (now - anchor) * 1000
  if d > horizon then d = horizon end
  level = fill + weight * d
  if level > weight * horizon then level = weight * horizon end
end
local reserved0 = reserved
local spend = cost * interval
local allowed, on_share, after = false, false, level
if cost > burst or shared < spend then
  allowed = false
elseif level >= cost * total * interval then
  allowed, on_share, after = true, true, level - cost * total * interval
else
  allowed = total * (shared - spend - reserved) + level >= 0
  if allowed then after = 0 end
end
local shared0 = shared
if allowed then
  shared = shared - spend
  backlog = backlog + spend
  if on_share then reserved = reserved - spend else reserved = reserved - idiv(level, total) end
end

if joining then
  W = W + weight
  F = F + level
  fill, anchor = level, now
end
if allowed then
  F = F + after - fill
  fill, anchor = after, now
end
local stored = reserved
if stored < 0 then stored = 0 end
local px = ceil(math.max(idle, tau) / 1000000) + 1000
redis.call('HSET', SK, 'last', string.format('%d', now), 'W', string.format('%d', W),
  'F', string.format('%d', F), 'R', string.format('%d', stored), 'Rat', string.format('%d', now),
  'B', string.format('%d', backlog), 'Bat', string.format('%d', now))
redis.call('HSET', MK, key, string.format('%d:%d:%d', weight, fill, anchor))
redis.call('ZADD', AK, now, key)
redis.call('PEXPIRE', SK, px)
redis.call('PEXPIRE', MK, px)
redis.call('PEXPIRE', AK, px)

local sr = shared - reserved
if sr < 0 then sr = 0 end
local rem = math.min(total * shared, after + total * sr)
rem = idiv(rem, total * interval)
local to_full = cdiv(weight * horizon - after, weight)
local reset = math.max(backlog, to_full)
local code = 0
if allowed then code = 1 end
return string.format('%d %d %d %d %d %d %d %d', code, rem, reset, weight, total, level, shared0,
  reserved0)
"""
)

_SHA: Final = sha1(FAIR_SHARE).encode()


def _weight(key: Key, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"RedisFairShare weight of key {key!r} must be a number, got {value!r}")
    if not (math.isfinite(value) and value >= 1 and value == int(value)):
        raise InvalidInput(
            f"RedisFairShare weight of key {key!r} must be a whole number >= 1 (weights are "
            f"integers in Redis), got {value!r}"
        )
    return int(value)


class RedisFairShare:
    """A capacity of ``rate`` per second (bursts of ``burst``) shared fairly by weight in Redis.

    Parameters
    ----------
    url:
        ``redis://...`` or ``unix://...`` (as :class:`RedisLimiter`).
    rate, burst, reserve, idle_after:
        As :class:`~trusswork.ratelimit.FairShare`: units per second over all
        keys, the shared bucket's capacity (int >= 2), the part of it backing
        the keys' own buckets (``1 <= reserve < burst``, default
        ``burst // 2``) and the seconds after which a silent key leaves the
        active set (default and minimum ``reserve / rate``).
    weights:
        A mapping from key to weight or a callable ``weight(key)``; missing
        keys weigh 1. Weights are whole numbers >= 1, read when a key joins.
    name:
        The group: every limiter with the same ``prefix`` and ``name`` shares
        one capacity.
    prefix:
        Start of every Redis key written.
    on_failure, timeout, breaker, open_for, registry:
        As :class:`RedisLimiter`; ``"local"`` falls back to an in-process
        :class:`FairShare` of the same parameters.

    Raises
    ------
    InvalidInput
        If a parameter is out of range or the URL is malformed.
    """

    algorithm: Final = "fair_share"

    def __init__(
        self,
        url: str,
        *,
        rate: float,
        burst: int,
        reserve: int | None = None,
        weights: WeightSpec | None = None,
        idle_after: float | None = None,
        name: str = "default",
        prefix: str = "trusswork:rl",
        on_failure: FailurePolicy = "open",
        timeout: float = 1.0,
        breaker: CircuitBreaker | None = None,
        open_for: float = 2.0,
        registry: MetricsRegistry | None = None,
    ) -> None:
        # FairShare validates rate, burst, reserve, idle_after and the weights' kind,
        # and serves as the local fallback and the retry_after computation.
        self._fair = FairShare(rate, burst, reserve=reserve, weights=None, idle_after=idle_after)
        if weights is not None and not (isinstance(weights, Mapping) or callable(weights)):
            raise InvalidInput(
                f"RedisFairShare weights must be a mapping or a callable, "
                f"not {type(weights).__name__}"
            )
        if not isinstance(name, str) or not isinstance(prefix, str):
            raise InvalidInput(
                f"RedisFairShare name= and prefix= must be strings, got {name!r}, {prefix!r}"
            )
        self._weights = weights
        self._idle_after = idle_after
        self._local_fair: FairShare | None = None
        self._local_weights = (
            None
            if weights is None
            else (lambda key: float(self._weight_of(key)))  # validated whole numbers
        )
        interval = self._fair._interval
        if burst * interval >= _MAX_EXACT // 4:
            raise InvalidInput(
                f"RedisFairShare burst / rate must be below 2**51 ns (about 26 days), "
                f"got {burst} / {rate!r}"
            )
        self.name = name
        self.prefix = prefix
        self.on_failure: FailurePolicy = on_failure
        self._transport = RedisLimiter(
            url,
            rate=rate,
            burst=burst,
            prefix=prefix,
            on_failure=on_failure,
            timeout=timeout,
            breaker=breaker,
            open_for=open_for,
            name=f"fair:{prefix}:{name}",
            registry=registry,
        )
        tag = b"{" + prefix.encode() + b":" + name.encode() + b"}"
        head = prefix.encode() + b":fair:" + tag
        self.redis_keys: tuple[bytes, bytes, bytes] = (head + b":s", head + b":m", head + b":a")
        self._head = (
            _bulk(b"EVALSHA")
            + _bulk(_SHA)
            + _bulk(b"3")
            + b"".join(_bulk(k) for k in self.redis_keys)
        )
        self._params = b"".join(
            _bulk(str(v).encode())
            for v in (interval, burst, self._fair.reserve, self._fair._idle_ns)
        )

    # -- properties -------------------------------------------------------------------

    @property
    def rate(self) -> float:
        """Units per second over all keys together."""
        return self._fair.rate

    @property
    def burst(self) -> int:
        """Capacity of the shared bucket (also the ``limit`` of decisions)."""
        return self._fair.burst

    @property
    def limit(self) -> int:
        """The quota reported in decisions: the shared burst."""
        return self._fair.burst

    @property
    def reserve(self) -> int:
        """Part of the burst that backs the active keys' own buckets."""
        return self._fair.reserve

    @property
    def breaker(self) -> CircuitBreaker:
        """The circuit breaker guarding the Redis calls."""
        return self._transport.breaker

    # -- decisions ----------------------------------------------------------------------

    def _weight_of(self, key: Key) -> int:
        spec = self._weights
        if spec is None:
            return 1
        value: object = spec.get(key, 1) if isinstance(spec, Mapping) else spec(key)
        return _weight(key, value)

    def acquire(self, key: Key, cost: int = 1) -> Decision:
        """Decide one request of ``cost`` units from ``key`` and spend it if allowed.

        Answers as :meth:`FairShare.acquire <trusswork.ratelimit.FairShare.acquire>`
        (``remaining``, ``retry_after``, ``reset_after`` in seconds; ``limit``
        = ``burst``), or from the failure policy when Redis is unavailable.

        Raises
        ------
        InvalidInput
            For a bad key, cost or weight, or when the limiter is closed.
        LimitExceeded
            When ``key`` would join a group too large for exact arithmetic.
        Corruption
            If Redis holds something else under the group's keys.
        """
        return self._decide(key, cost, b"")

    def _decide(self, key: Key, cost: object, now_us: bytes) -> Decision:
        """Decide at Redis ``TIME`` (``now_us`` empty) or at an explicit µs instant (tests)."""
        raw = _key_bytes(key)
        units = _cost(cost)
        weight = self._weight_of(key)
        payload = (
            b"*14\r\n"
            + self._head
            + _bulk(now_us)
            + self._params
            + _bulk(raw)
            + _bulk(str(units).encode())
            + _bulk(str(weight).encode())
        )
        transport = self._transport
        try:
            values = transport._call((payload,), self.redis_keys[0], 2, (FAIR_SHARE,))
        except Corruption as exc:
            raise Corruption(
                f"RedisFairShare {self.name!r}: the group's Redis keys {self.redis_keys!r} hold "
                f"data that is not fair-share state; another program writes under prefix "
                f"{self.prefix!r}: delete the keys or choose another prefix ({exc})"
            ) from exc
        if values is None:
            return self._fallback(key, units)
        code, remaining, reset, weight, total, level, shared, reserved = values
        if code == 2:
            raise LimitExceeded(
                f"RedisFairShare {self.name!r}: key {key!r} cannot join: the group's active "
                f"weight would make its arithmetic inexact in Redis (above 2**53)"
            )
        allowed = code == 1
        (transport._allowed if allowed else transport._denied).inc()
        if allowed:
            retry = 0.0
        else:
            # FairShare's retry formula is homogeneous in the weight unit: scale to its unit.
            retry = self._fair._retry_after(
                units,
                weight * _FAIR_UNIT,
                total * _FAIR_UNIT,
                level * _FAIR_UNIT,
                shared,
                reserved,
            )
        return Decision(allowed, remaining, retry, reset / 1e9, self._fair.burst)

    def _fallback(self, key: Key, cost: int) -> Decision:
        transport = self._transport
        transport._fallbacks.inc()
        burst = self._fair.burst
        if self.on_failure == "open":
            return Decision(True, burst, 0.0, 0.0, burst)
        if self.on_failure == "closed":
            return Decision(False, 0, transport._open_for, 0.0, burst)
        with transport._local_lock:
            if self._local_fair is None:
                fair = self._fair
                self._local_fair = FairShare(
                    fair.rate,
                    fair.burst,
                    reserve=fair.reserve,
                    weights=self._local_weights,
                    idle_after=self._idle_after,
                )
            local = self._local_fair
        return local.acquire(key, cost)

    # -- lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connections; later calls raise InvalidInput."""
        self._transport.close()

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
        return (
            f"RedisFairShare({self._transport.url!r}, rate={self.rate!r}, burst={self.burst}, "
            f"reserve={self.reserve}, name={self.name!r}, prefix={self.prefix!r}, "
            f"on_failure={self.on_failure!r})"
        )
