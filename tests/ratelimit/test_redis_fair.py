"""trusswork.ratelimit.RedisFairShare against a real Redis.

Most tests drive the script with an explicit "now" in microseconds (the
private ``_decide(key, cost, now_us)``) so that a fake clock decides, and
compare with the in-process FairShare. Parameters keep the keys' expiry
(real time, ``max(idle_after, burst / rate)``) far longer than a test.
"""

from __future__ import annotations

import multiprocessing
import random
from collections.abc import Iterator

import pytest
import redis

from helpers import free_port
from trusswork.core.errors import Corruption, InvalidInput, LimitExceeded
from trusswork.core.metrics import MetricsRegistry
from trusswork.ratelimit import Decision, FairShare, TokenBucket
from trusswork.ratelimit._redis_fair import RedisFairShare

MS = 1000  # µs


@pytest.fixture
def url(redis_url: str, redis_client: redis.Redis) -> str:
    """The Redis URL; ``redis_client`` (requested too) deletes the test's keys afterwards."""
    return redis_url


class Clock:
    """A fake clock in integer µs, readable in seconds by the in-process limiters."""

    def __init__(self, start_us: int = 1_000_000) -> None:
        self.us = start_us

    def seconds(self) -> float:
        return self.us / 1e6


def decide(fair: RedisFairShare, clock: Clock, key: str, cost: int = 1) -> Decision:
    return fair._decide(key, cost, str(clock.us).encode())


@pytest.fixture
def group(url: str, redis_prefix: str) -> Iterator[RedisFairShare]:
    with RedisFairShare(
        url,
        rate=10,
        burst=40,
        reserve=20,
        idle_after=10,
        prefix=redis_prefix,
        registry=MetricsRegistry(),
    ) as fair:
        yield fair


def test_same_decisions_as_the_in_process_fair_share(url: str, redis_prefix: str) -> None:
    clock = Clock()
    weights = {"gold": 3, "silver": 2}
    local = FairShare(10, 40, reserve=20, weights=weights, clock=clock.seconds)
    rng = random.Random(7)
    keys = ["heavy"] * 6 + ["gold", "silver", "a", "b", "c", "d"]
    steps = [0, 0, 7, 1 * MS, 50 * MS, 100 * MS, 250 * MS]
    with RedisFairShare(
        url,
        rate=10,
        burst=40,
        reserve=20,
        weights=weights,
        prefix=redis_prefix,
        registry=MetricsRegistry(),
    ) as fair:
        for step in range(3000):
            # now and then a pause long enough for every key to go idle (idle_after = 2 s)
            clock.us += 3_000_000 if rng.random() < 0.01 else rng.choice(steps)
            key, cost = rng.choice(keys), rng.choice([0, 1, 1, 1, 2, 5, 50])
            expected = local.acquire(key, cost)
            assert decide(fair, clock, key, cost) == expected, (step, key, cost)


def admitted_stream_conforms(stream: list[tuple[int, int]], rate: float, burst: int) -> bool:
    """Replay (µs, cost) admissions through the compiled TokenBucket with a fake clock."""
    clock = Clock()
    bucket = TokenBucket(rate, burst, clock=clock.seconds)
    for at, cost in stream:
        clock.us = at
        if not bucket.acquire("all", cost).allowed:
            return False
    return True


def test_light_clients_are_never_starved_by_a_heavy_one(group: RedisFairShare) -> None:
    # 1 heavy + 9 light keys of weight 1: each one's share is 1 unit/s. The light keys
    # ask 0.5/s each, the heavy one 100/s (100x its share), for 60 s.
    clock = Clock()
    lights = [f"light{i}" for i in range(9)]
    stream: list[tuple[int, int]] = []
    denied_light = heavy_admitted = light_asked = 0
    for key in [*lights, "heavy"]:  # everyone active from the start, buckets full
        assert decide(group, clock, key)
        stream.append((clock.us, 1))
    start = clock.us
    for tick in range(1, 6001):  # 10 ms ticks
        clock.us = start + tick * 10 * MS
        # light i asks once every 2 s, at tick 20 * i + 5 of each 200; off the heavy key's
        # rhythm (it takes each token as it arrives, every 10 ticks), so the shared bucket
        # is half a token short when a light key asks: only its reserve can pass it
        phase = tick % 200
        if phase % 20 == 5 and phase < 180:
            light = lights[phase // 20]
            light_asked += 1
            if decide(group, clock, light):
                stream.append((clock.us, 1))
            else:
                denied_light += 1
        if decide(group, clock, "heavy"):
            heavy_admitted += 1
            stream.append((clock.us, 1))
    assert light_asked == 270
    assert denied_light == 0
    # the heavy key gets the rest of 10/s over 60 s: 600 - 270 (less what is kept in reserve)
    assert heavy_admitted >= 600 - 270 - 20
    assert admitted_stream_conforms(stream, 10, 40)


def share_test(fair: RedisFairShare, gold_every_ms: int) -> int:
    """heavy (100/s), gold (every gold_every_ms) and silver (1/s) for 30 s: gold's denials."""
    clock = Clock()
    for key in ("gold", "silver", "heavy"):
        decide(fair, clock, key)
    start, denied = clock.us, 0
    for tick in range(1, 3001):
        clock.us = start + tick * 10 * MS
        if (tick * 10) % gold_every_ms == 0 and not decide(fair, clock, "gold"):
            denied += 1
        if tick % 100 == 0:
            assert decide(fair, clock, "silver")
        decide(fair, clock, "heavy")
    return denied


def test_weights_are_honoured(url: str, redis_prefix: str) -> None:
    # rate 10 among gold, silver, heavy. With gold weighing 3 (W = 5) gold's share is 6/s,
    # so asking 5/s it is always admitted; weighing 1 (share 3.3/s) it is not.
    def group(name: str, weights: dict[str, int] | None) -> RedisFairShare:
        return RedisFairShare(
            url,
            rate=10,
            burst=40,
            reserve=20,
            weights=weights,
            name=name,
            prefix=redis_prefix,
            registry=MetricsRegistry(),
        )

    with group("weighted", {"gold": 3}) as weighted, group("flat", None) as flat:
        assert share_test(weighted, 200) == 0
        assert share_test(flat, 200) > 20  # 150 asks at 5/s over a share of 3.3/s


def test_idle_keys_leave_the_active_set_and_release_their_share(
    group: RedisFairShare, redis_client: redis.Redis
) -> None:
    clock = Clock()
    for key in ("a", "b", "c", "heavy"):
        decide(group, clock, key)
    state, members, active = group.redis_keys
    assert redis_client.zcard(active) == 4
    assert redis_client.hget(state, "W") == b"4"
    # only heavy keeps asking; after idle_after (10 s) the others leave
    for _ in range(1100):  # 11 s at 100/s
        clock.us += 10 * MS
        decide(group, clock, "heavy")
    assert redis_client.zrange(active, 0, -1) == [b"heavy"]
    assert redis_client.hkeys(members) == [b"heavy"]
    assert redis_client.hget(state, "W") == b"1"
    # alone, heavy's own bucket now holds the whole reserve: after 2 s of silence it
    # gets the full burst back (its share of the reserve is 20, the free part 20)
    clock.us += 9_000_000
    assert sum(decide(group, clock, "heavy").allowed for _ in range(50)) == 40
    # every key of the group expires (PX) once idle
    assert 0 < redis_client.pttl(active) <= 11_000


def test_zero_cost_joins_without_spending_and_cost_above_burst_never_passes(
    group: RedisFairShare,
) -> None:
    clock = Clock()
    first = decide(group, clock, "k", 0)
    assert first.allowed and first.remaining == 40
    big = decide(group, clock, "k", 41)
    assert not big.allowed and big.retry_after == float("inf")


def hammer(url: str, prefix: str, worker: int) -> int:
    """One process: a heavy key and a light key of its own, real Redis TIME."""
    with RedisFairShare(
        url, rate=1e-3, burst=60, reserve=30, prefix=prefix, on_failure="closed"
    ) as fair:
        admitted = 0
        for i in range(150):
            key = f"light{worker}" if i % 10 == 0 else f"heavy{worker}"
            admitted += fair.acquire(key).allowed
        return admitted


def test_processes_sharing_a_group_never_exceed_its_capacity(url: str, redis_prefix: str) -> None:
    # rate 1e-3/s: over the test's few seconds the capacity is the burst, 60.
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        counts = pool.starmap(hammer, [(url, redis_prefix, w) for w in range(4)])
    assert sum(counts) <= 60
    # what is not admitted is at most what stays reserved for keys under their share
    assert sum(counts) >= 60 - 30


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rate": 0, "burst": 10},
        {"rate": float("nan"), "burst": 10},
        {"rate": 1, "burst": 1},
        {"rate": 1, "burst": 10, "reserve": 10},
        {"rate": 1, "burst": 10, "reserve": 0},
        {"rate": 1, "burst": 10, "idle_after": 1.0},
        {"rate": 1, "burst": 10, "weights": 3},
        {"rate": 1, "burst": 10, "on_failure": "maybe"},
        {"rate": 1e-9, "burst": 10**6},
    ],
)
def test_bad_parameters_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        RedisFairShare("redis://127.0.0.1:1/0", **kwargs)  # type: ignore[arg-type]


def test_bad_requests_are_refused(url: str, redis_prefix: str) -> None:
    with RedisFairShare(
        url, rate=1, burst=10, weights={"half": 1.5, "zero": 0}, prefix=redis_prefix
    ) as fair:
        for key, cost in [("k", -1), ("k", 1.0), (1.5, 1), ("half", 1), ("zero", 1)]:
            with pytest.raises(InvalidInput):
                fair.acquire(key, cost)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        fair.acquire("k")  # closed


def closed_port_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


def test_failure_policy_when_redis_is_unreachable() -> None:
    url = closed_port_url()
    with RedisFairShare(url, rate=1, burst=4, registry=MetricsRegistry()) as fair:
        assert all(fair.acquire("k").allowed for _ in range(10))
    with RedisFairShare(
        url, rate=1, burst=4, on_failure="closed", open_for=5, registry=MetricsRegistry()
    ) as fair:
        decision = fair.acquire("k")
        assert not decision.allowed and decision.retry_after == 5.0
    with RedisFairShare(
        url, rate=1e-3, burst=4, on_failure="local", registry=MetricsRegistry()
    ) as fair:
        assert [fair.acquire("k").allowed for _ in range(6)] == [True] * 4 + [False] * 2


def test_a_join_beyond_exact_arithmetic_is_refused(url: str, redis_prefix: str) -> None:
    # interval 1e12 ns, burst 1000: W * (burst + reserve) * interval reaches 2**53 at W = 6
    with RedisFairShare(
        url, rate=1e-3, burst=1000, weights={"big": 10}, prefix=redis_prefix
    ) as fair:
        assert fair.acquire("small").allowed
        with pytest.raises(LimitExceeded):
            fair.acquire("big")
        assert fair.acquire("small").allowed  # the group is unharmed


def test_foreign_data_under_the_group_keys_is_corruption(
    group: RedisFairShare, redis_client: redis.Redis
) -> None:
    redis_client.set(group.redis_keys[1], b"not a hash")
    with pytest.raises(Corruption):
        group.acquire("k")
