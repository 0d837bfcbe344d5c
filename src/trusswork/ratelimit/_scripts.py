"""The Lua scripts of :class:`~trusswork.ratelimit.RedisLimiter`, one per algorithm.

Every script decides with the formulas of the in-process limiters (see
``docs/ratelimit``: GCRA token bucket, exact sliding log, Cloudflare's
sliding-window counter, fixed window), atomically: Redis runs a script as
one command, so concurrent clients on any number of hosts see each decision
whole.

Time
    "Now" is read inside the script with ``redis.call('TIME')``: clients'
    clocks never enter a decision, so skewed hosts share one limit
    correctly. ``ARGV[1]`` may carry an explicit now in integer microseconds
    instead (the limiter always sends ``''``; tests use it to drive the
    scripts with a fake clock).

Numbers
    Lua 5.1 numbers are doubles, exact for integers below 2**53. Absolute
    instants are therefore kept in integer **microseconds** (Redis ``TIME``
    resolution; 2**53 µs is 285 years), and durations (token interval,
    window, retry/reset times) in integer **nanoseconds**, which stay below
    2**53 (104 days) because the limiter rejects larger capacities and
    windows. A GCRA theoretical arrival time, which is not a whole number of
    microseconds, is stored as ``"<µs>:<ns 0..999>"``; window starts are
    whole microseconds because windows must be whole microseconds.

Stored state (one key per limited key, expired with ``PX`` once idle)
    token bucket ``"<tat µs>:<ns>"``; sliding log: a sorted set of one
    member per admitted unit scored by its µs stamp (``max(newest stamp,
    now)``, as the in-process log); counter
    ``"<start µs>:<previous count>:<current count>"``; fixed window
    ``"<start µs>:<count>"``. A value in any other shape (or a key of
    another Redis type) fails the script with a ``TWSTATE``/``WRONGTYPE``
    error instead of deciding on garbage.

Replies
    One bulk string of space-separated integers, four per decision:
    ``allowed remaining retry_ns reset_ns``, where ``retry_ns`` is ``-1``
    for "never" (the cost exceeds the capacity).

Layouts
    Per-algorithm script: ``KEYS`` = the keys of a batch, ``ARGV`` = now,
    mode (``a`` acquire, ``p`` peek: decide, write nothing), parameter 1,
    parameter 2, then one cost per key. Decisions are made in key order,
    each seeing the ones before it, at one "now". A request of cost 0, like
    a peek, stores nothing. Hierarchy script: ``KEYS`` = one key per level, ``ARGV`` =
    now, mode, cost, then per level algorithm code, parameter 1, parameter
    2. It checks every level without writing and writes only when all
    allow, so a denied request consumes from none.

Parameters: token bucket (interval ns, burst), sliding log / counter /
fixed window (limit, window µs).
"""

from __future__ import annotations

import hashlib
from typing import Final

__all__ = ["ALGORITHM_CODES", "COMMON", "HIERARCHY", "SCRIPTS", "sha1"]

#: Lua every script starts with: ``now`` (Redis TIME in µs, or ARGV[1] when given),
#: ``floor``/``ceil`` and ``idiv``, floor division exact below 2**53.
COMMON: Final = r"""
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[1])
end
local floor, ceil = math.floor, math.ceil

-- floor(a / b) for integers below 2**53, exact even where a / b rounds up to an integer.
local function idiv(a, b)
  local q = floor(a / b)
  if q * b > a then q = q - 1 elseif (q + 1) * b <= a then q = q + 1 end
  return q
end
"""

_PRELUDE = (
    COMMON
    + r"""
local function bad(key, value)
  error({err = 'TWSTATE key ' .. key .. ' holds ' .. string.format('%q', tostring(value)) ..
         ', which is not rate-limiter state of this algorithm'})
end

local function ms(ns)
  local m = ceil(ns / 1000000)
  if m < 1 then m = 1 end
  return m
end

local function window_start(w, stored)
  local start = now - now % w
  if stored ~= nil and stored > start then start = stored end
  return start
end
"""
)

# Each algorithm: decide(key, cost, p1, p2, write) -> allowed, remaining, retry_ns, reset_ns.
_TOKEN_BUCKET = r"""
local function token_bucket(key, cost, interval, burst, write)
  local tau = burst * interval
  local d = 0
  local v = redis.call('GET', key)
  if v then
    local hi, lo = string.match(v, '^(%-?%d+):(%d%d?%d?)$')
    if hi == nil then bad(key, v) end
    d = (tonumber(hi) - now) * 1000 + tonumber(lo)
    if d < 0 then d = 0 end
  end
  if cost > burst then
    local r = idiv(tau - d, interval)
    if r < 0 then r = 0 end
    return 0, r, -1, d
  end
  local nd = d + cost * interval
  if nd <= tau then
    if write and cost > 0 then
      local rem = nd % 1000
      redis.call('SET', key, string.format('%d:%d', now + (nd - rem) / 1000, rem), 'PX', ms(nd))
    end
    return 1, idiv(tau - nd, interval), 0, nd
  end
  local r = idiv(tau - d, interval)
  if r < 0 then r = 0 end
  return 0, r, nd - tau, d
end
"""

_SLIDING_LOG = r"""
local function sliding_log(key, cost, limit, w, write)
  -- Units stamped at or before now - w no longer count; only a write drops them.
  local live = string.format('(%d', now - w)
  local count
  if write then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', string.format('%d', now - w))
    count = redis.call('ZCARD', key)
  else
    count = redis.call('ZCOUNT', key, live, '+inf')
  end
  local newest = nil
  if count > 0 then
    newest = tonumber(redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')[2])
  end
  if cost > limit or count + cost > limit then
    local remaining = limit - count
    if remaining < 0 then remaining = 0 end
    local reset = 0
    if newest ~= nil then reset = (newest + w - now) * 1000 end
    if cost > limit then return 0, remaining, -1, reset end
    local k = count + cost - limit
    local tk = tonumber(redis.call('ZRANGEBYSCORE', key, live, '+inf', 'WITHSCORES',
                                   'LIMIT', k - 1, 1)[2])
    return 0, remaining, (tk + w - now) * 1000, reset
  end
  if cost > 0 then
    -- Units are stamped max(newest, now): stamps never go below the newest one, so the
    -- log stays in admission order when the clock goes back. Members are
    -- "<stamp>:<now>:<index>", unique because two requests at one now see each other.
    if newest == nil or newest < now then newest = now end
    if write then
      local args, n = {}, 0
      for i = 1, cost do
        args[n + 1] = string.format('%d', newest)
        args[n + 2] = string.format('%d:%d:%d', newest, now, count + i)
        n = n + 2
        if n >= 1000 or i == cost then
          redis.call('ZADD', key, unpack(args, 1, n))
          n = 0
        end
      end
      redis.call('PEXPIRE', key, ms((newest + w - now) * 1000))
    end
  end
  local reset = 0
  if newest ~= nil then reset = (newest + w - now) * 1000 end
  return 1, limit - count - cost, 0, reset
end
"""

_COUNTER = r"""
local function sliding_counter(key, cost, limit, w, write)
  local sstart, prev, cur = nil, 0, 0
  local v = redis.call('GET', key)
  if v then
    local a, b, c = string.match(v, '^(%-?%d+):(%d+):(%d+)$')
    if a == nil then bad(key, v) end
    sstart, prev, cur = tonumber(a), tonumber(b), tonumber(c)
  end
  local start = window_start(w, sstart)
  if sstart ~= start then
    if sstart == start - w then prev, cur = cur, 0 else prev, cur = 0, 0 end
  end
  local wn = w * 1000
  local elapsed = (now - start) * 1000
  if elapsed < 0 then elapsed = 0 end
  local estimate = prev * ((wn - elapsed) / wn) + cur
  if estimate + cost <= limit then
    cur = cur + cost
    if write and cost > 0 then
      redis.call('SET', key, string.format('%d:%d:%d', start, prev, cur), 'PX',
                 ms(2 * wn - elapsed))
    end
    local remaining = floor(limit - (estimate + cost))
    if remaining < 0 then remaining = 0 end
    local reset = 0
    if cur > 0 then reset = (wn - elapsed) + wn elseif prev > 0 then reset = wn - elapsed end
    return 1, remaining, 0, reset
  end
  local remaining = floor(limit - estimate)
  if remaining < 0 then remaining = 0 end
  local reset = 0
  if cur > 0 then reset = (wn - elapsed) + wn elseif prev > 0 then reset = wn - elapsed end
  if cost > limit then return 0, remaining, -1, reset end
  local retry
  if cur + cost <= limit then
    retry = ceil(wn * (1.0 - (limit - cur - cost) / prev)) - elapsed
  else
    local e2 = 0
    if cur > 0 then
      e2 = ceil(wn * (1.0 - (limit - cost) / cur))
      if e2 < 0 then e2 = 0 end
    end
    retry = (wn - elapsed) + e2
  end
  return 0, remaining, retry, reset
end
"""

_FIXED = r"""
local function fixed_window(key, cost, limit, w, write)
  local sstart, count = nil, 0
  local v = redis.call('GET', key)
  if v then
    local a, b = string.match(v, '^(%-?%d+):(%d+)$')
    if a == nil then bad(key, v) end
    sstart, count = tonumber(a), tonumber(b)
  end
  local start = window_start(w, sstart)
  if sstart ~= start then count = 0 end
  local left = (start + w - now) * 1000
  if cost <= limit and count + cost <= limit then
    count = count + cost
    if write and cost > 0 then
      redis.call('SET', key, string.format('%d:%d', start, count), 'PX', ms(left))
    end
    local reset = 0
    if count > 0 then reset = left end
    return 1, limit - count, 0, reset
  end
  local remaining = limit - count
  if remaining < 0 then remaining = 0 end
  if cost > limit then return 0, remaining, -1, left end
  return 0, remaining, left, left
end
"""

_BATCH_MAIN = r"""
local write = ARGV[2] == 'a'
local p1, p2 = tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {}
for i = 1, #KEYS do
  local a, r, t, z = DECIDE(KEYS[i], tonumber(ARGV[4 + i]), p1, p2, write)
  out[i] = string.format('%d %d %d %d', a, r, t, z)
end
return table.concat(out, ' ')
"""

_HIERARCHY_MAIN = r"""
local algorithms = {token_bucket, sliding_log, sliding_counter, fixed_window}
local cost = tonumber(ARGV[3])
local n = #KEYS
local results = {}
local all = true
for pass = 1, 2 do
  for i = 1, n do
    local base = 3 + (i - 1) * 3
    local decide = algorithms[tonumber(ARGV[base + 1])]
    local a, r, t, z = decide(KEYS[i], cost, tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3]),
                              pass == 2)
    results[i] = string.format('%d %d %d %d', a, r, t, z)
    if a == 0 then all = false end
  end
  if not all or ARGV[2] ~= 'a' then break end
end
return table.concat(results, ' ')
"""

#: Algorithm name -> its code in the hierarchy script (1-based, in its table order).
ALGORITHM_CODES = {
    "token_bucket": 1,
    "sliding_window": 2,
    "sliding_window_counter": 3,
    "fixed_window": 4,
}

_FUNCTIONS = {
    "token_bucket": ("token_bucket", _TOKEN_BUCKET),
    "sliding_window": ("sliding_log", _SLIDING_LOG),
    "sliding_window_counter": ("sliding_counter", _COUNTER),
    "fixed_window": ("fixed_window", _FIXED),
}

#: Algorithm name -> the batch script deciding with it.
SCRIPTS: dict[str, str] = {
    algorithm: _PRELUDE + body + _BATCH_MAIN.replace("DECIDE", function)
    for algorithm, (function, body) in _FUNCTIONS.items()
}

#: The script deciding several levels at once (every algorithm inside).
HIERARCHY = _PRELUDE + _TOKEN_BUCKET + _SLIDING_LOG + _COUNTER + _FIXED + _HIERARCHY_MAIN


def sha1(script: str) -> str:
    """The SHA-1 Redis names ``script`` by (what ``SCRIPT LOAD`` returns)."""
    return hashlib.sha1(script.encode()).hexdigest()
