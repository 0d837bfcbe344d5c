"""trusswork.ratelimit.RedisLimiter against a real Redis (Lua scripts, failure policy).

The scripts are compared decision by decision with the pure-Python oracle
(``_reference``): they accept an explicit "now" in microseconds in place of
Redis ``TIME`` (``ARGV[1]``), which the tests use to drive them with a fake
clock. Parameters keep every key's expiry (real time) far longer than a test.
"""

from __future__ import annotations

import contextlib
import math
import random
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
import redis
from redis.crc import key_slot

from helpers import free_port, redis_unreachable
from trusswork.core.errors import Corruption, InvalidInput
from trusswork.core.metrics import MetricsRegistry
from trusswork.ratelimit import Decision, Decisions, TokenBucket
from trusswork.ratelimit import _reference as ref
from trusswork.ratelimit._redis import RedisHierarchy, RedisLimiter
from trusswork.ratelimit._scripts import ALGORITHM_CODES, HIERARCHY, SCRIPTS

PARAMS: dict[str, dict[str, Any]] = {
    "token_bucket": {"rate": 0.5, "burst": 5},
    "sliding_window": {"limit": 5, "window_seconds": 20.0},
    "sliding_window_counter": {"limit": 5, "window_seconds": 20.0},
    "fixed_window": {"limit": 5, "window_seconds": 20.0},
}


def oracle(algorithm: str, params: dict[str, Any]) -> Any:
    if algorithm == "token_bucket":
        return ref.TokenBucketReference.from_rate(params["rate"], params["burst"])
    window_ns = ref.window_ns_from_seconds(params["window_seconds"])
    cls = {
        "sliding_window": ref.SlidingLogReference,
        "sliding_window_counter": ref.SlidingWindowCounterReference,
        "fixed_window": ref.FixedWindowReference,
    }[algorithm]
    return cls(params["limit"], window_ns)


def script_args(algorithm: str, params: dict[str, Any]) -> list[str]:
    if algorithm == "token_bucket":
        return [str(math.ceil(1e9 / params["rate"])), str(params["burst"])]
    return [str(params["limit"]), str(round(params["window_seconds"] * 1e6))]


def run_batch(
    client: redis.Redis,
    algorithm: str,
    keys: list[str],
    costs: list[int],
    now_us: int,
    mode: str = "a",
) -> list[tuple[bool, int, int, int]]:
    """Run an algorithm's script directly with an explicit now (µs)."""
    reply = client.eval(
        SCRIPTS[algorithm],
        len(keys),
        *keys,
        str(now_us),
        mode,
        *script_args(algorithm, PARAMS[algorithm]),
        *costs,
    )
    values = [int(v) for v in reply.split()]
    return [
        (values[i] == 1, values[i + 1], values[i + 2], values[i + 3])
        for i in range(0, len(values), 4)
    ]


@pytest.fixture
def url(redis_url: str, redis_client: redis.Redis) -> str:
    """The Redis URL; requesting it also cleans the test's prefix afterwards."""
    return redis_url


#: Limits for tests on Redis' real clock: nothing refills and no aligned window ends
#: while a test runs (a 3e6 s window is crossed by a 10 s test once in 300,000 runs).
REAL_PARAMS: dict[str, dict[str, Any]] = {
    "token_bucket": {"rate": 1e-4, "burst": 5},
    "sliding_window": {"limit": 5, "window_seconds": 3e6},
    "sliding_window_counter": {"limit": 5, "window_seconds": 3e6},
    "fixed_window": {"limit": 5, "window_seconds": 3e6},
}


def limiter(url: str, prefix: str, algorithm: str = "fixed_window", **kwargs: Any) -> RedisLimiter:
    params = dict(REAL_PARAMS[algorithm])
    options = {"registry": MetricsRegistry()}
    for name in ("rate", "burst", "limit", "window_seconds"):
        if name in kwargs:
            params[name] = kwargs.pop(name)
    options.update(kwargs)
    return RedisLimiter(url, algorithm=algorithm, prefix=prefix + "rl", **params, **options)  # type: ignore[arg-type]


# ---------------------------------------------------------------- scripts vs oracle


@pytest.mark.parametrize("algorithm", sorted(SCRIPTS))
@pytest.mark.parametrize("seed", range(3))
def test_scripts_agree_with_the_oracle_decision_by_decision(
    redis_client: redis.Redis, redis_prefix: str, algorithm: str, seed: int
) -> None:
    rng = random.Random(seed)
    model = oracle(algorithm, PARAMS[algorithm])
    keys = [f"{redis_prefix}{algorithm}:{{k{i}}}" for i in range(3)]
    now_us = 1_700_000_000_000_000 + rng.randrange(20_000_000)  # a realistic Unix time
    for step in range(300):
        roll = rng.random()
        if roll < 0.05:
            now_us -= rng.randrange(1, 3_000_000)  # the clock went back
        elif roll < 0.5:
            now_us += rng.choice([0, 1, 7, 999, 1_000, rng.randrange(4_000_000)])
        mode = "p" if rng.random() < 0.15 else "a"
        batch = [rng.choice(keys) for _ in range(rng.choice([1, 1, 1, 4]))]
        costs = [rng.choice([0, 1, 1, 1, 2, 3, 6]) for _ in batch]
        got = run_batch(redis_client, algorithm, batch, costs, now_us, mode)
        want = [
            model.decide(key, cost, now_us * 1000, commit=mode == "a")
            for key, cost in zip(batch, costs, strict=True)
        ]
        want = [(a, r, -1 if t == ref.NEVER else t, z) for a, r, t, z in want]
        assert got == want, f"step {step}: {batch} costs {costs} at {now_us} ({mode})"


def test_hierarchy_script_agrees_with_the_oracle_levels(
    redis_client: redis.Redis, redis_prefix: str
) -> None:
    rng = random.Random(7)
    algorithms = ["fixed_window", "token_bucket", "sliding_window_counter", "sliding_window"]
    models = [oracle(a, PARAMS[a]) for a in algorithms]
    now_us = 1_700_000_000_000_000
    for step in range(300):
        now_us += rng.choice([0, 5, 100_000, 2_000_000])
        keys = [f"{redis_prefix}{{t}}:{a}:{rng.randrange(2)}" for a in algorithms]
        cost = rng.choice([0, 1, 1, 2])
        args: list[Any] = [str(now_us), "a", cost]
        for algorithm in algorithms:
            args += [ALGORITHM_CODES[algorithm], *script_args(algorithm, PARAMS[algorithm])]
        values = [int(v) for v in redis_client.eval(HIERARCHY, len(keys), *keys, *args).split()]
        looks = [
            m.decide(k, cost, now_us * 1000, commit=False)
            for m, k in zip(models, keys, strict=True)
        ]
        if all(look[0] for look in looks):
            looks = [m.decide(k, cost, now_us * 1000) for m, k in zip(models, keys, strict=True)]
        flat = [int(x) for look in looks for x in look]
        assert values == flat, f"step {step}"


# ---------------------------------------------------------------- the limiter


@pytest.mark.parametrize("algorithm", sorted(PARAMS))
def test_a_burst_is_admitted_up_to_the_limit_then_denied(
    url: str, redis_prefix: str, algorithm: str
) -> None:
    with limiter(url, redis_prefix, algorithm) as lim:
        decisions = [lim.acquire("user:1") for _ in range(7)]
        assert [d.allowed for d in decisions] == [True] * 5 + [False] * 2
        assert [d.remaining for d in decisions[:5]] == [4, 3, 2, 1, 0]
        denied = decisions[-1]
        assert isinstance(denied, Decision) and not denied
        assert 0 < denied.retry_after <= 3e6 and denied.limit == 5
        assert 0 < denied.reset_after <= 2 * 3e6
        assert lim.peek("user:1").allowed is False
        assert lim.acquire("user:2").allowed  # keys are independent
        never = lim.acquire("user:3", cost=6)
        assert not never and never.retry_after == math.inf
        lim.reset("user:1")
        assert lim.acquire("user:1").remaining == 4


@pytest.mark.parametrize("algorithm", sorted(PARAMS))
def test_idle_keys_expire_and_carry_a_hash_tag(
    url: str, redis_prefix: str, redis_client: redis.Redis, algorithm: str
) -> None:
    with limiter(url, redis_prefix, algorithm) as lim:
        key = lim.redis_key("k")
        assert lim.peek("k").allowed and lim.acquire("k", cost=0).allowed
        assert not redis_client.exists(key)  # looking writes nothing
        decision = lim.acquire("k", cost=2)
        assert key.endswith(b"{k}")
        ttl_ms = redis_client.pttl(key)
        # The key expires when it would decide as if absent: back to full capacity.
        assert ttl_ms > 0 and abs(ttl_ms - decision.reset_after * 1000) < 2000
        assert key_slot(key) == key_slot(b"{k}")


def test_peek_and_cost_zero_consume_nothing(url: str, redis_prefix: str) -> None:
    with limiter(url, redis_prefix, "sliding_window") as lim:
        lim.acquire("k", cost=3)
        for _ in range(5):
            assert lim.peek("k", cost=2).allowed and lim.peek("k", cost=0).remaining == 2
            assert lim.acquire("k", cost=0).remaining == 2
        assert lim.acquire("k", cost=2).allowed
        assert not lim.acquire("k")


def test_acquire_many_decides_in_order_in_one_call(url: str, redis_prefix: str) -> None:
    with limiter(url, redis_prefix, "token_bucket") as lim:
        keys = ["a"] * 7 + ["b"] * 2 + [f"x{i}" for i in range(2500)]
        result = lim.acquire_many(keys)
        assert isinstance(result, Decisions) and len(result) == len(keys)
        assert result.allowed[:9].tolist() == [True] * 5 + [False] * 2 + [True] * 2
        assert result.remaining[:5].tolist() == [4, 3, 2, 1, 0]
        assert result.allowed[9:].all()
        assert result.retry_after[5] > 0 and result.retry_after[0] == 0
        costs = lim.acquire_many(["c", "c", "c"], [3, 3, 2])
        assert costs.allowed.tolist() == [True, False, True]
        assert lim.acquire_many([]).allowed.size == 0
        one = lim.acquire_many(iter(["d"]), costs=[2])
        assert one.allowed.tolist() == [True] and one.remaining.tolist() == [3]
        ids = lim.acquire_many(np.array([7, 7, 8], dtype=np.int64), np.array([4, 2, 1]))
        assert ids.allowed.tolist() == [True, False, True]
        assert lim.peek(7, cost=0).remaining == 1  # numpy ints name the same keys


def test_scripts_are_reloaded_after_script_flush(
    url: str, redis_prefix: str, redis_client: redis.Redis
) -> None:
    with limiter(url, redis_prefix, "fixed_window", on_failure="closed") as lim:
        assert lim.acquire("k").remaining == 4
        redis_client.script_flush()
        assert lim.acquire("k").remaining == 3
        redis_client.script_flush()
        assert lim.acquire_many(["k", "k"]).remaining.tolist() == [2, 1]
        redis_client.script_flush()
        assert lim.peek("k", cost=0).remaining == 1
        redis_client.script_flush()
        many = lim.acquire_many([f"m{i}" for i in range(2500)], 2)  # three script calls
        assert many.remaining.tolist() == [3] * 2500


def test_client_clocks_do_not_enter_decisions(
    url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    base_time, base_mono, base_ns = time.time, time.monotonic, time.time_ns
    with (
        limiter(url, redis_prefix, "sliding_window") as ahead,
        limiter(url, redis_prefix, "sliding_window") as behind,
    ):
        admitted = 0
        for i in range(12):
            skew = 6 * 3600.0 if i % 2 else -9 * 3600.0
            monkeypatch.setattr(time, "time", lambda s=skew: base_time() + s)
            monkeypatch.setattr(time, "monotonic", lambda s=skew: base_mono() + s)
            monkeypatch.setattr(time, "time_ns", lambda s=skew: base_ns() + int(s * 1e9))
            decision = (ahead if i % 2 else behind).acquire("shared")
            admitted += decision.allowed
            assert decision.reset_after <= 3e6
        assert admitted == 5


def test_threads_sharing_a_limiter_admit_exactly_the_limit(url: str, redis_prefix: str) -> None:
    with limiter(url, redis_prefix, "fixed_window", limit=100) as lim:
        admitted: list[int] = []

        def worker() -> None:
            admitted.append(sum(lim.acquire("hot").allowed for _ in range(60)))

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sum(admitted) == 100


# ---------------------------------------------------------------- hierarchy


def test_hierarchy_passes_only_when_every_level_allows(url: str, redis_prefix: str) -> None:
    registry = MetricsRegistry()
    glob = limiter(url, redis_prefix + "g", "fixed_window", limit=3, registry=registry)
    user = limiter(url, redis_prefix + "u", "token_bucket", burst=2, registry=registry)
    with glob, user:
        tiers = RedisHierarchy({"global": glob, "user": user})
        assert tiers.acquire({"global": "all", "user": "alice"}).allowed
        assert tiers.acquire(["all", "alice"]).allowed
        denied = tiers.acquire(["all", "alice"])  # alice is out, global has 1 left
        assert not denied and denied.denied_by == ("user",)
        assert denied.levels["global"].allowed and denied.retry_after > 0
        assert glob.peek("all", cost=0).remaining == 1  # the denied request took nothing
        assert tiers.peek(["all", "bob"]).allowed
        assert tiers.acquire(["all", "bob"]).allowed
        last = tiers.acquire(["all", "carol"])
        assert not last and last.denied_by == ("global",) and last.binding[0] == "global"
        assert user.peek("carol", cost=0).remaining == 2  # carol was not charged
        assert not user.peek("alice")  # the levels' own keys: shared with user.acquire
        counted = registry.get("trusswork_ratelimit_redis_decisions")
        assert counted.labels(glob.name, "allowed").value == 3
        assert counted.labels(glob.name, "denied").value == 2


def test_hierarchy_with_a_tag_keeps_every_level_in_one_slot(
    url: str, redis_prefix: str, redis_client: redis.Redis
) -> None:
    levels = [
        (f"level{i}", limiter(url, redis_prefix + str(i), "fixed_window", limit=9 - i))
        for i in range(3)
    ]
    tiers = RedisHierarchy(levels, tag="tenant-7")
    decision = tiers.acquire(["all", "user:1", "route:/x"], cost=2)
    assert decision.allowed and decision.binding == ("level2", decision.levels["level2"])
    assert decision.levels["level2"].remaining == 5
    keys = list(redis_client.scan_iter(match=f"{redis_prefix}*"))
    assert sorted(keys) == sorted(tiers.redis_keys(["all", "user:1", "route:/x"]))
    assert {key_slot(k) for k in keys} == {key_slot(b"{tenant-7}")}
    for _, level in levels:
        level.close()


def test_hierarchy_rejects_bad_levels_and_keys(url: str, redis_prefix: str) -> None:
    with limiter(url, redis_prefix) as one:
        other = RedisLimiter("redis://127.0.0.1:1/0", rate=1, burst=1)
        for levels in (
            [],
            [("a", one), ("a", one)],
            [("a", TokenBucket(1, 1))],
            [("a", one), ("b", other)],
        ):
            with pytest.raises(InvalidInput):
                RedisHierarchy(levels)  # type: ignore[arg-type]
        tiers = RedisHierarchy({"a": one})
        for keys in ("k", ["k", "j"], {"b": "k"}):
            with pytest.raises(InvalidInput):
                tiers.acquire(keys)  # type: ignore[arg-type]


def test_hierarchy_local_fallback_charges_all_levels_or_none() -> None:
    url = closed_port_url()
    glob = RedisLimiter(url, rate=1e-4, burst=3, on_failure="local", prefix="g")
    user = RedisLimiter(url, rate=1e-4, burst=2, on_failure="local", prefix="u")
    tiers = RedisHierarchy({"global": glob, "user": user})
    outcomes = [tiers.acquire(["all", "alice"]).allowed for _ in range(3)]
    assert outcomes == [True, True, False]
    assert tiers.acquire(["all", "bob"]).allowed  # global still had 1: alice's denial took none
    assert not tiers.acquire(["all", "carol"])


# ---------------------------------------------------------------- bad input, bad state


@pytest.mark.parametrize(
    "bad_url", ["", "http://127.0.0.1:6379", "redis://", "redis://h:port/0", "redis://h/x", 7]
)
def test_bad_urls_are_invalid_input(bad_url: Any) -> None:
    with pytest.raises(InvalidInput):
        RedisLimiter(bad_url, rate=1, burst=1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"algorithm": "leaky", "rate": 1, "burst": 1},
        {"rate": 1},
        {"rate": 0, "burst": 1},
        {"rate": math.nan, "burst": 1},
        {"rate": 1, "burst": 0},
        {"rate": 1, "burst": True},
        {"rate": 1, "burst": 2, "limit": 3},
        {"rate": 1e-9, "burst": 10**9},
        {"algorithm": "fixed_window", "limit": 5},
        {"algorithm": "fixed_window", "limit": 5, "window_seconds": -1},
        {"algorithm": "fixed_window", "limit": 5, "window_seconds": 1e-7},
        {"algorithm": "fixed_window", "limit": 5, "window_seconds": 10**8},
        {"algorithm": "fixed_window", "limit": 0, "window_seconds": 1},
        {"algorithm": "fixed_window", "limit": 5, "window_seconds": 1, "rate": 2},
        {"algorithm": "sliding_window", "limit": 2**20 + 1, "window_seconds": 1},
        {"rate": 1, "burst": 1, "on_failure": "maybe"},
        {"rate": 1, "burst": 1, "timeout": 0},
        {"rate": 1, "burst": 1, "prefix": 5},
    ],
)
def test_bad_parameters_are_invalid_input(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        RedisLimiter("redis://127.0.0.1:6379/0", **kwargs)


def test_bad_keys_and_costs_are_invalid_input(url: str, redis_prefix: str) -> None:
    with limiter(url, redis_prefix) as lim:
        for key in (1.5, None, True, ("a",)):
            with pytest.raises(InvalidInput):
                lim.acquire(key)  # type: ignore[arg-type]
        for cost in (-1, 1.0, True, 2**31):
            with pytest.raises(InvalidInput):
                lim.acquire("k", cost)  # type: ignore[arg-type]
        with pytest.raises(InvalidInput):
            lim.acquire_many(["a", "b"], [1])
        with pytest.raises(InvalidInput):
            lim.acquire_many("ab")
        assert lim.acquire(b"bytes").allowed and lim.acquire(42).allowed
    with pytest.raises(InvalidInput):
        lim.acquire("k")  # closed


@pytest.mark.parametrize("algorithm", sorted(PARAMS))
def test_foreign_data_under_our_key_is_corruption(
    url: str, redis_prefix: str, redis_client: redis.Redis, algorithm: str
) -> None:
    with limiter(url, redis_prefix, algorithm, on_failure="open") as lim:
        key = lim.redis_key("k")
        redis_client.hset(key, "field", "1")
        with pytest.raises(Corruption, match="not this limiter's"):
            lim.acquire("k")
        redis_client.delete(key)
        if algorithm != "sliding_window":
            redis_client.set(key, "hello")
            with pytest.raises(Corruption, match="hello"):
                lim.acquire("k")
        else:
            redis_client.set(key, "1:2")
            with pytest.raises(Corruption):
                lim.acquire_many(["k"])


class FakeServer:
    """A TCP server answering every request with fixed bytes (not a working Redis).

    With ``answer=b""`` it reads requests and never answers (a hung server).
    """

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.url = f"redis://127.0.0.1:{self.sock.getsockname()[1]}/0"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                try:
                    while conn.recv(65536):
                        if self.answer:
                            conn.sendall(self.answer)
                except OSError:
                    pass

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize(
    "answer",
    [b"HTTP/1.1 400 Bad Request\r\n\r\n", b":1\r\n", b"$5\r\nhello\r\n", b"-ERR nope\r\n"],
)
def test_a_server_answering_garbage_triggers_the_failure_policy(answer: bytes) -> None:
    server = FakeServer(answer)
    registry = MetricsRegistry()
    try:
        with RedisLimiter(
            server.url, rate=1, burst=1, on_failure="closed", registry=registry, open_for=60
        ) as lim:
            decision = lim.acquire("k")
            assert not decision and decision.retry_after == 60
            assert (
                registry.get("trusswork_ratelimit_redis_errors").labels("trusswork:rl").value >= 1
            )
    finally:
        server.close()


def test_a_refused_password_or_database_is_an_outage(redis_url: str) -> None:
    parts = urlsplit(redis_url)
    host = f"{parts.hostname}:{parts.port or 6379}"
    for url in (f"redis://:not-the-password@{host}/0", f"redis://{host}/99999"):
        registry = MetricsRegistry()
        with RedisLimiter(url, rate=1, burst=1, on_failure="closed", registry=registry) as lim:
            assert not lim.acquire("k")
        errors = registry.get("trusswork_ratelimit_redis_errors").labels("trusswork:rl")
        assert errors.value == 1


def test_a_hung_server_times_out_into_the_failure_policy() -> None:
    server = FakeServer(b"")
    try:
        with RedisLimiter(
            server.url, rate=1, burst=2, on_failure="local", timeout=0.2, registry=MetricsRegistry()
        ) as lim:
            decisions = [lim.acquire("k") for _ in range(3)]
            assert [d.allowed for d in decisions] == [True, True, False]  # the local bucket
    finally:
        server.close()


# ---------------------------------------------------------------- failure policy


def closed_port_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


def test_fail_open_and_fail_closed_when_redis_is_down() -> None:
    url = closed_port_url()
    with RedisLimiter(url, rate=1, burst=2, registry=MetricsRegistry()) as lim:
        assert all(lim.acquire("k").allowed for _ in range(10))
    with RedisLimiter(
        url, rate=1, burst=2, on_failure="closed", open_for=5, registry=MetricsRegistry()
    ) as lim:
        decision = lim.acquire("k")
        assert not decision and decision.retry_after == 5.0
        assert not lim.acquire_many(["a", "b"]).allowed.any()


def test_local_fallback_enforces_the_same_limit_in_process() -> None:
    url = closed_port_url()
    with RedisLimiter(url, rate=0.001, burst=3, on_failure="local") as lim:
        assert [lim.acquire("k").allowed for _ in range(5)] == [True] * 3 + [False] * 2
        assert lim.acquire("other").allowed
        assert lim.acquire_many(["z"] * 4).allowed.tolist() == [True] * 3 + [False]
        reference = TokenBucket(0.001, 3)
        assert lim.peek("fresh") == reference.peek("fresh")


def test_breaker_stops_calling_a_down_redis_and_metrics_count_it() -> None:
    registry = MetricsRegistry()
    with RedisLimiter(
        closed_port_url(), rate=1, burst=1, on_failure="open", registry=registry, open_for=60
    ) as lim:
        for _ in range(50):
            lim.acquire("k")
        errors = registry.get("trusswork_ratelimit_redis_errors").labels("trusswork:rl").value
        fallbacks = registry.get("trusswork_ratelimit_redis_fallbacks").labels(
            "trusswork:rl", "open"
        )
        assert 1 <= errors <= 10  # the breaker opened; later calls did not try Redis
        assert fallbacks.value == 50
        assert lim.breaker.state == "open"


class Proxy:
    """A TCP forwarder from a local port to a real Redis, switched on and off by the test."""

    def __init__(self, port: int, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.port = port
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self.listener: socket.socket | None = None
        self.sockets: list[socket.socket] = []

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            source.close()
            sink.close()

    def stop(self) -> None:
        if self.listener is not None:
            with contextlib.suppress(OSError):
                self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() thread
            self.listener.close()
            self.listener = None
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.sockets = []


class RedisProcess:
    """A private ``redis-server --port N --save ''``, started and killed by the test."""

    def __init__(self, binary: str, port: int, workdir: Path) -> None:
        self.command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        self.command += ["--appendonly", "no", "--dir", str(workdir)]
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while redis_unreachable(self.url) is not None:
            assert self.process.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()


@pytest.fixture(params=["redis-server", "proxy"])
def switchable_redis(
    request: pytest.FixtureRequest, url: str, tmp_path: Path
) -> Iterator[tuple[int, Any]]:
    """(port, server): nothing listens on the port until ``server.start()``.

    ``redis-server``: a private server process (the proxy stands in where no
    binary exists); ``proxy``: a forwarder to the test Redis.
    """
    port = free_port()
    binary = shutil.which("redis-server")
    server: Any
    if request.param == "redis-server" and binary is not None:
        server = RedisProcess(binary, port, tmp_path)
    else:
        server = Proxy(port, url)
    try:
        yield port, server
    finally:
        server.stop()


def test_recovery_when_redis_comes_back(
    switchable_redis: tuple[int, Any], redis_client: redis.Redis, redis_prefix: str
) -> None:
    port, server = switchable_redis
    registry = MetricsRegistry()
    lim = RedisLimiter(
        f"redis://127.0.0.1:{port}/0",
        algorithm="fixed_window",
        limit=2,
        window_seconds=3e6,
        prefix=redis_prefix + "rl",
        on_failure="closed",
        open_for=0.2,
        registry=registry,
    )
    with lim:
        assert not lim.acquire("k")  # nothing listens yet: fail closed
        server.start()
        deadline = time.monotonic() + 10
        while not (decision := lim.acquire("k")) and time.monotonic() < deadline:
            time.sleep(0.05)  # the breaker lets a probe through after open_for
        assert decision.allowed and decision.remaining == 1  # decided by Redis
        server.stop()
        assert not lim.acquire("k")  # down again: closed
        server.start()
        deadline = time.monotonic() + 10
        while not (decision := lim.acquire("k")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert decision.allowed
        counted = registry.get("trusswork_ratelimit_redis_decisions")
        assert counted.labels(lim.name, "allowed").value == 2
        assert registry.get("trusswork_ratelimit_redis_errors").labels(lim.name).value >= 2
        assert lim.breaker.state == "closed"


@pytest.mark.parametrize("case", ["x"])
def test_fixture_prefix(redis_prefix: str, case: str) -> None:
    assert not any(char in redis_prefix for char in "[]*?\\")
