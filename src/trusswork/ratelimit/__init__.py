"""Rate limiting: token buckets and sliding windows in C, distributed over Redis.

Usage::

    from trusswork.ratelimit import TokenBucket

    limiter = TokenBucket(rate=10, burst=20)   # 10 per second, bursts of 20
    decision = limiter.acquire("user:42")
    if not decision:
        wait(decision.retry_after)

In-process limiters (:class:`TokenBucket`, :class:`SlidingWindow`,
:class:`FixedWindow`) keep one compiled table for millions of keys; their
:class:`RedisLimiter` twin shares limits between processes with atomic Lua
scripts. Every limiter answers ``acquire(key, cost=1)`` with a
:class:`Decision` (``allowed``, ``remaining``, ``retry_after``,
``reset_after``). :class:`Hierarchy` checks a request against several
limits at once, :class:`FairShare` divides a capacity among active keys and
:class:`AdaptiveLimit` moves a limit with the protected service's error
budget. :mod:`trusswork.ratelimit` also has the HTTP middleware (RateLimit
headers, 429 responses) and the standalone limiter service.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trusswork.core.lazy import lazy_getattr
from trusswork.ratelimit._table import (
    Decision,
    Decisions,
    FixedWindow,
    SlidingWindow,
    TokenBucket,
)

if TYPE_CHECKING:
    from trusswork.ratelimit._adaptive import (
        SLO,
        AdaptiveLimit,
        LimitChange,
        SimulationRow,
        simulate_adaptive,
    )
    from trusswork.ratelimit._audit import AuditEntry, AuditLog
    from trusswork.ratelimit._fair import FairShare
    from trusswork.ratelimit._hierarchy import Hierarchy, LevelDecision
    from trusswork.ratelimit._middleware import RateLimitMiddleware, ratelimit_middleware
    from trusswork.ratelimit._policy import Policy, load_policies, parse_rate
    from trusswork.ratelimit._policyset import PolicySet
    from trusswork.ratelimit._redis import RedisHierarchy, RedisLimiter
    from trusswork.ratelimit._redis_fair import RedisFairShare
    from trusswork.ratelimit._service import ServiceConfig, build_app, load_service_config, serve

# Public names defined in modules that import more (redis, the HTTP server): loaded on
# first use, so `import trusswork.ratelimit` stays light.
_LAZY = {
    "Hierarchy": "trusswork.ratelimit._hierarchy",
    "LevelDecision": "trusswork.ratelimit._hierarchy",
    "FairShare": "trusswork.ratelimit._fair",
    "AdaptiveLimit": "trusswork.ratelimit._adaptive",
    "SLO": "trusswork.ratelimit._adaptive",
    "LimitChange": "trusswork.ratelimit._adaptive",
    "SimulationRow": "trusswork.ratelimit._adaptive",
    "simulate_adaptive": "trusswork.ratelimit._adaptive",
    "RedisLimiter": "trusswork.ratelimit._redis",
    "RedisHierarchy": "trusswork.ratelimit._redis",
    "RedisFairShare": "trusswork.ratelimit._redis_fair",
    "Policy": "trusswork.ratelimit._policy",
    "load_policies": "trusswork.ratelimit._policy",
    "parse_rate": "trusswork.ratelimit._policy",
    "ServiceConfig": "trusswork.ratelimit._service",
    "load_service_config": "trusswork.ratelimit._service",
    "PolicySet": "trusswork.ratelimit._policyset",
    "AuditLog": "trusswork.ratelimit._audit",
    "AuditEntry": "trusswork.ratelimit._audit",
    "ratelimit_middleware": "trusswork.ratelimit._middleware",
    "RateLimitMiddleware": "trusswork.ratelimit._middleware",
    "build_app": "trusswork.ratelimit._service",
    "serve": "trusswork.ratelimit._service",
}


__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = [
    "SLO",
    "AdaptiveLimit",
    "AuditEntry",
    "AuditLog",
    "Decision",
    "Decisions",
    "FairShare",
    "FixedWindow",
    "Hierarchy",
    "LevelDecision",
    "LimitChange",
    "Policy",
    "PolicySet",
    "RateLimitMiddleware",
    "RedisFairShare",
    "RedisHierarchy",
    "RedisLimiter",
    "ServiceConfig",
    "SimulationRow",
    "SlidingWindow",
    "TokenBucket",
    "build_app",
    "load_policies",
    "load_service_config",
    "parse_rate",
    "ratelimit_middleware",
    "serve",
    "simulate_adaptive",
]
