"""Many processes hammering one RedisLimiter key: the total admitted is exactly the limit.

Each worker is a fresh interpreter (multiprocessing ``spawn``) with its own
connection; half of them run with their clocks (``time.time``,
``time.monotonic``, ``time.time_ns``, ``time.monotonic_ns``) skewed by hours,
which must not matter because the scripts read Redis ``TIME``. Demand is
far above the limit and nothing refills during the test (token bucket rate
1e-4/s, windows of 3e6 s: a 10 s test crosses an aligned window boundary
once in 300,000 runs), so the admitted total must equal the limit exactly.
"""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

import pytest
import redis

from trusswork.ratelimit._redis import RedisHierarchy, RedisLimiter

WORKERS = 6
ATTEMPTS = 150  # per worker: 900 requests against a limit of 300
LIMIT = 300

PARAMS: dict[str, dict[str, Any]] = {
    "token_bucket": {"rate": 1e-4, "burst": LIMIT},
    "sliding_window": {"limit": LIMIT, "window_seconds": 3e6},
    "sliding_window_counter": {"limit": LIMIT, "window_seconds": 3e6},
    "fixed_window": {"limit": LIMIT, "window_seconds": 3e6},
}


def skew_clocks(hours: float) -> None:
    """Move every clock of this process by ``hours`` (the host's clock is wrong)."""
    offset = hours * 3600.0
    for name in ("time", "monotonic", "perf_counter"):
        real = getattr(time, name)
        setattr(time, name, lambda real=real: real() + offset)
    for name in ("time_ns", "monotonic_ns"):
        real_ns = getattr(time, name)
        setattr(time, name, lambda real_ns=real_ns: real_ns() + int(offset * 1e9))


def hammer(url: str, prefix: str, algorithm: str, skew_hours: float, batch: bool) -> int:
    """One worker: ATTEMPTS requests for the shared key; returns how many were admitted."""
    skew_clocks(skew_hours)
    with RedisLimiter(
        url, algorithm=algorithm, prefix=prefix, on_failure="closed", **PARAMS[algorithm]
    ) as limiter:
        if batch:
            return int(limiter.acquire_many(["shared"] * ATTEMPTS).allowed.sum())
        return sum(limiter.acquire("shared").allowed for _ in range(ATTEMPTS))


def hammer_hierarchy(url: str, prefix: str, worker: int, skew_hours: float) -> int:
    """A worker acting as one user: global limit LIMIT, per-user limit 60."""
    skew_clocks(skew_hours)
    glob = RedisLimiter(
        url,
        algorithm="fixed_window",
        prefix=prefix + "g",
        limit=LIMIT,
        window_seconds=3e6,
        on_failure="closed",
    )
    user = RedisLimiter(
        url, algorithm="token_bucket", prefix=prefix + "u", rate=1e-4, burst=60, on_failure="closed"
    )
    with glob, user:
        tiers = RedisHierarchy({"global": glob, "user": user}, tag="t")
        return sum(tiers.acquire(["all", f"user{worker}"]).allowed for _ in range(ATTEMPTS))


def skews() -> list[float]:
    return [(-1) ** i * 3.0 * (i + 1) for i in range(WORKERS)]  # -3 h, +6 h, -9 h, ...


@pytest.mark.parametrize("algorithm", sorted(PARAMS))
def test_processes_together_admit_exactly_the_limit(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str, algorithm: str
) -> None:
    context = multiprocessing.get_context("spawn")
    jobs = [
        (redis_url, redis_prefix + "p", algorithm, skew, index % 3 == 0)
        for index, skew in enumerate(skews())
    ]
    with context.Pool(WORKERS) as pool:
        admitted = pool.starmap(hammer, jobs)
    assert sum(admitted) == LIMIT, admitted
    assert all(0 <= a <= ATTEMPTS for a in admitted)


def test_processes_through_a_hierarchy_never_overrun_either_level(
    redis_url: str, redis_client: redis.Redis, redis_prefix: str
) -> None:
    context = multiprocessing.get_context("spawn")
    jobs = [(redis_url, redis_prefix + "h", index, skew) for index, skew in enumerate(skews())]
    with context.Pool(WORKERS) as pool:
        admitted = pool.starmap(hammer_hierarchy, jobs)
    # Six users of 60 each could take 360; the global level stops them at 300.
    assert sum(admitted) == LIMIT, admitted
    assert all(a <= 60 for a in admitted)
