"""trusswork.ratelimit against the Python rate-limiting libraries a user would pick instead.

Groups (``impl`` names in brackets; ours is ``trusswork``). Peers use the same
algorithm as ours in each group, with their fastest public entry point:
``limits`` a strategy's ``hit(item, key)`` on ``MemoryStorage`` (or
``RedisStorage``), ``pyrate-limiter`` ``Limiter.try_acquire(key,
blocking=False)`` over a per-key ``BucketFactory`` (its README's pattern: one
bucket per key, created with ``factory.create``), ``throttled-py``
``Throttled(...).limiter.limit(key)`` on a ``MemoryStore`` large enough to hold
every key (its default holds 1024).

In-process, one decision per call from Python (``SINGLE_KEYS`` distinct str
keys, each acquired once per round, in a plain ``for`` loop):

- ``single-token-bucket``: :class:`~trusswork.ratelimit.TokenBucket` (GCRA)
  [``pyrate-limiter``: ``StateBucket`` with its ``GCRA``; ``throttled-py``:
  ``gcra``];
- ``single-sliding-window``: exact sliding log, ``SlidingWindow(exact=True)``
  [``limits``: ``MovingWindowRateLimiter``; ``pyrate-limiter``:
  ``InMemoryBucket`` with ``SlidingWindowLog``];
- ``single-sliding-window-counter``: ``SlidingWindow(exact=False)``
  [``limits``: ``SlidingWindowCounterRateLimiter``; ``throttled-py``:
  ``sliding_window``, which is the same counter approximation];
- ``single-fixed-window``: :class:`~trusswork.ratelimit.FixedWindow`
  [``limits``: ``FixedWindowRateLimiter``; ``pyrate-limiter``:
  ``InMemoryBucket`` with ``FixedWindow``; ``throttled-py``: ``fixed_window``].

In-process, batched (``batch-<algorithm>-1M``, the same algorithms and
peers): ``acquire_many`` of ``BATCH_SIZE`` (1 M) int64 keys drawn from
``BATCH_USERS`` distinct users. The peers have no batch API and loop over the
first ``PEER_BATCH`` keys (as str) only: track.py compares minimum round times
and cannot rescale one side, so a peer's ratio here is the per-decision
speed-up divided by ``BATCH_SCALE`` (50), as ``extra_info`` and floors.toml say.

Limits are set so that no implementation is ever denied while it is timed,
so every one does the work of an admitted request: the token bucket refills
``TB_RATE`` (1000) tokens a second up to a burst of as many, so a key's bucket
is full again before its next request (the common case of a key under its
limit); the fixed window and counter allow 10**9 a minute; the exact sliding log
keeps 8 bytes per unit of its limit per key in ours (the peers store one
entry per admitted unit), so its limit is ``LOG_LIMIT`` per second instead
(``LOG_LIMIT_BATCH`` over the batch's many more users), which a key is hit
far less often than. Before timing, every implementation
is checked on a small deterministic scenario (``CHECK_KEYS`` keys, each asked
``CHECK_TRIES`` times against a quota of ``CHECK_QUOTA`` per hour) to admit
exactly the requests ours admits, key by key.

Redis (the local server at ``$TRUSSWORK_REDIS_URL``, default
``redis://127.0.0.1:6379/0``; skipped when it does not answer, failing
under ``CI=true``; every key is under a prefix unique to the run and deleted
afterwards):

- ``redis-sliding-window``: one decision per call, ``REDIS_KEYS`` keys per
  round: :class:`~trusswork.ratelimit.RedisLimiter` (``sliding_window``)
  [``limits``: ``RedisStorage`` + ``MovingWindowRateLimiter``];
- ``redis-batch``: ``RedisLimiter.acquire_many`` (exact sliding window) of
  ``REDIS_SCALE`` (10) times ``REDIS_KEYS`` keys (pipelined script calls)
  [``limits``: the moving window, one call per key, over ``REDIS_KEYS`` keys
  only: its ratio is the speed-up divided by ``REDIS_SCALE``];
- ``redis-batch-sliding-window-counter``, ``redis-batch-fixed-window``: the
  same with those algorithms [``limits``: ``SlidingWindowCounterRateLimiter``,
  ``FixedWindowRateLimiter``]. The exact log costs five Redis calls per
  decision, these two cost two (GET, SET), which is what decides the rate.

HTTP middleware (``middleware-plaintext``): ``MIDDLEWARE_REQUESTS`` pipelined
``GET /plaintext`` requests (``CONNECTIONS`` keep-alive connections, requests
sent ``DEPTH`` at a time, pipelined like TechEmpower's plaintext test) to a native
:class:`trusswork.http.App` with the rate-limit middleware and a token-bucket
policy on the client address that admits everything [``no-middleware``: the
same App without it]. The server runs in its own process pinned to CPU 0
(``trusswork http serve --native``, like :mod:`trusswork.http.loadtest`); this
process, the client, is pinned to CPU 1 while it measures. The ratio is
``rps_with / rps_without``: the issue asks for a loss under 10 % (>= 0.9).
Rounds are short so that there are many of them (the minimum of few long
rounds on a shared machine swings with other jobs); ``extra_info`` also has
the server's CPU time per request (``server_cpu_us_per_request``), which
other jobs' load does not change.

Every benchmark stores decisions (or requests) per second of its best round
in ``extra_info["per_s"]``. Sizes are the same in quick mode
(``TRUSSWORK_BENCH_QUICK=1``) except the Redis and HTTP rounds, which are
halved.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import math
import os
import selectors
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from trusswork.ratelimit import FixedWindow, SlidingWindow, TokenBucket

SEED = 20261207
SINGLE_KEYS = 10_000
BATCH_SIZE = 1_000_000
BATCH_USERS = 100_000
PEER_BATCH = 20_000
BATCH_SCALE = BATCH_SIZE // PEER_BATCH

# Quotas nobody reaches while timed (see the module docstring).
TB_RATE = 1000
WINDOW_LIMIT = 10**9
WINDOW_SECONDS = 60
# The exact log holds LOG_LIMIT stamps per key: 4 KiB per key here (and 512 B per key
# over the batch's 100 000 users); keys are hit far less than LOG_LIMIT times a second.
LOG_LIMIT = 512
LOG_LIMIT_BATCH = 64
LOG_SECONDS = 1

CHECK_KEYS = 20
CHECK_TRIES = 8
CHECK_QUOTA = 5
CHECK_SECONDS = 3600

ALGORITHMS = ("token-bucket", "sliding-window", "sliding-window-counter", "fixed-window")
PEERS = {
    "token-bucket": ("pyrate-limiter", "throttled-py"),
    "sliding-window": ("limits", "pyrate-limiter"),
    "sliding-window-counter": ("limits", "throttled-py"),
    "fixed-window": ("limits", "pyrate-limiter", "throttled-py"),
}
MODULES = {"limits": "limits", "pyrate-limiter": "pyrate_limiter", "throttled-py": "throttled"}

REDIS_URL = os.environ.get("TRUSSWORK_REDIS_URL", "redis://127.0.0.1:6379/0")
REDIS_KEYS = (1000, 500)  # (full, quick) sizes, through the scaled fixture
REDIS_SCALE = 10  # redis-batch: REDIS_SCALE times REDIS_KEYS keys per batch
REDIS_LIMIT = 10**6
REDIS_WINDOW = 60

MIDDLEWARE_REQUESTS = (8_192, 2_048)  # multiples of CONNECTIONS * DEPTH
CONNECTIONS = 8
DEPTH = 64
POLL = 0.0005  # seconds the client sleeps between reads

Decide = Callable[[Any], Any]  # key -> truthy when admitted


def _cases(groups: Sequence[str] = ALGORITHMS) -> list[tuple[str, str]]:
    return [(a, impl) for a in groups for impl in ("trusswork", *PEERS[a])]


def _import_peer(bench: Any, group: str, impl: str) -> Any:
    module = MODULES[impl]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        bench.missing(group, impl, f"cannot import {module}: {exc}")


def _ours_api(name: str, module: str) -> Any:
    """``trusswork.ratelimit.<name>``, or from its private module while it is not exported."""
    import trusswork.ratelimit

    try:
        return getattr(trusswork.ratelimit, name)
    except AttributeError:
        return getattr(importlib.import_module(f"trusswork.ratelimit.{module}"), name)


def _admitted(decide: Decide, keys: Sequence[Any]) -> int:
    admitted = 0
    for key in keys:
        if decide(key):
            admitted += 1
    return admitted


def _record_rate(benchmark: Any, per_round: int, scale: int = 1) -> None:
    """``extra_info["per_s"]``: decisions (or requests) per second of the best round."""
    best = benchmark.stats.stats.min
    benchmark.extra_info["per_s"] = round(per_round / best)
    if scale != 1:
        benchmark.extra_info["ratio_scale"] = scale


# ---------------------------------------------------------------- limiters


@contextlib.contextmanager
def limiter(
    bench: Any, group: str, algorithm: str, impl: str, quota: int, seconds: int
) -> Iterator[Decide]:
    """``decide(key)`` of ``impl`` for ``algorithm``: ``quota`` per ``seconds`` seconds.

    The token bucket refills ``quota`` tokens per ``seconds`` and holds
    ``quota`` at most (its burst).
    """
    if impl == "trusswork":
        yield _ours(algorithm, quota, seconds).acquire
    elif impl == "limits":
        yield _limits_decide(_import_peer(bench, group, impl), algorithm, quota, seconds)
    elif impl == "pyrate-limiter":
        with _pyrate(_import_peer(bench, group, impl), algorithm, quota, seconds) as decide:
            yield decide
    else:
        yield _throttled_decide(_import_peer(bench, group, impl), algorithm, quota, seconds)


def _ours(algorithm: str, quota: int, seconds: int) -> Any:
    if algorithm == "token-bucket":
        return TokenBucket(quota / seconds, quota)
    if algorithm == "sliding-window":
        return SlidingWindow(quota, seconds)
    if algorithm == "sliding-window-counter":
        return SlidingWindow(quota, seconds, exact=False)
    return FixedWindow(quota, seconds)


def _limits_decide(limits: Any, algorithm: str, quota: int, seconds: int) -> Decide:
    strategy = {
        "sliding-window": limits.strategies.MovingWindowRateLimiter,
        "sliding-window-counter": limits.strategies.SlidingWindowCounterRateLimiter,
        "fixed-window": limits.strategies.FixedWindowRateLimiter,
    }[algorithm](limits.storage.MemoryStorage())
    item = limits.RateLimitItemPerSecond(quota, seconds)
    return functools.partial(strategy.hit, item)


def _throttled_decide(throttled: Any, algorithm: str, quota: int, seconds: int) -> Decide:
    using = {"token-bucket": "gcra", "sliding-window-counter": "sliding_window"}.get(
        algorithm, "fixed_window"
    )
    if algorithm == "token-bucket":
        rate = throttled.per_duration(timedelta(seconds=seconds), quota, burst=quota)
    else:
        rate = throttled.per_duration(timedelta(seconds=seconds), quota)
    store = throttled.MemoryStore(options={"MAX_SIZE": 4 * BATCH_USERS})
    limit = throttled.Throttled(using=using, quota=rate, store=store).limiter.limit

    def decide(key: str) -> bool:
        return not limit(key).limited

    return decide


@contextlib.contextmanager
def _pyrate(pyrate: Any, algorithm: str, quota: int, seconds: int) -> Iterator[Decide]:
    ms = seconds * 1000
    if algorithm == "token-bucket":
        rates = [pyrate.Rate(quota, ms, burst=quota)]

        def make(factory: Any) -> Any:
            return factory.create(pyrate.StateBucket, rates, algorithm=pyrate.GCRA())

    else:
        rates = [pyrate.Rate(quota, ms)]
        kind = pyrate.SlidingWindowLog if algorithm == "sliding-window" else pyrate.FixedWindow

        def make(factory: Any) -> Any:
            return factory.create(pyrate.InMemoryBucket, rates, algorithm=kind())

    class PerKey(pyrate.BucketFactory):  # type: ignore[misc,name-defined]
        """One bucket per key, made on first use (pyrate-limiter's README pattern)."""

        def __init__(self) -> None:
            self.clock = pyrate.MonotonicClock()
            self.buckets: dict[str, Any] = {}

        def wrap_item(self, name: str, weight: int = 1) -> Any:
            return pyrate.RateItem(name, self.clock.now(), weight=weight)

        def get(self, item: Any) -> Any:
            bucket = self.buckets.get(item.name)
            if bucket is None:
                bucket = self.buckets[item.name] = make(self)
            return bucket

    with pyrate.Limiter(PerKey()) as limited:
        acquire = limited.try_acquire

        def decide(key: str) -> bool:
            return acquire(key, 1, False)  # type: ignore[no-any-return]

        yield decide


def check_admits_as_ours(bench: Any, group: str, algorithm: str, impl: str) -> None:
    """``impl`` admits exactly the requests ours admits in a small scenario, key by key."""
    keys = [f"check:{i}" for i in range(CHECK_KEYS)] * CHECK_TRIES
    with limiter(bench, group, algorithm, impl, CHECK_QUOTA, CHECK_SECONDS) as decide:
        theirs = [bool(decide(key)) for key in keys]
    with limiter(bench, group, algorithm, "trusswork", CHECK_QUOTA, CHECK_SECONDS) as decide:
        ours = [bool(decide(key)) for key in keys]
    assert sum(ours) == CHECK_KEYS * CHECK_QUOTA
    assert theirs == ours, f"{impl} ({algorithm}) admits other requests than ours"


def _quota(algorithm: str, batch: bool = False) -> tuple[int, int]:
    if algorithm == "token-bucket":
        return TB_RATE, 1
    if algorithm == "sliding-window":
        return (LOG_LIMIT_BATCH if batch else LOG_LIMIT), LOG_SECONDS
    return WINDOW_LIMIT, WINDOW_SECONDS


# ---------------------------------------------------------------- in-process, one key a call


@pytest.fixture(scope="module")
def single_keys() -> list[str]:
    return [f"user:{i}" for i in range(SINGLE_KEYS)]


@pytest.mark.parametrize(("algorithm", "impl"), _cases())
def test_single(
    bench: Any, benchmark: Any, single_keys: list[str], algorithm: str, impl: str
) -> None:
    group = f"single-{algorithm}"
    check_admits_as_ours(bench, group, algorithm, impl)
    quota, seconds = _quota(algorithm)
    with limiter(bench, group, algorithm, impl, quota, seconds) as decide:
        admitted = bench(
            group, impl, _admitted, decide, single_keys, keys=len(single_keys), quota=quota,
            window_s=seconds,
        )  # fmt: skip
    _record_rate(benchmark, len(single_keys))
    if algorithm == "sliding-window":
        assert admitted > 0
    else:
        assert admitted == len(single_keys)


# ---------------------------------------------------------------- in-process, batched


@pytest.fixture(scope="module")
def batch_keys() -> npt.NDArray[np.int64]:
    rng = np.random.default_rng(SEED)
    return rng.integers(0, BATCH_USERS, BATCH_SIZE, dtype=np.int64)


def _acquire_many(limit: Any, keys: npt.NDArray[np.int64]) -> int:
    return int(np.count_nonzero(limit.acquire_many(keys).allowed))


def check_batch_as_single(algorithm: str) -> None:
    """acquire_many decides an interleaved batch exactly as acquire calls in order would."""
    keys = np.tile(np.arange(CHECK_KEYS, dtype=np.int64), CHECK_TRIES)
    many = _ours(algorithm, CHECK_QUOTA, CHECK_SECONDS).acquire_many(keys).allowed
    one = _ours(algorithm, CHECK_QUOTA, CHECK_SECONDS)
    assert many.tolist() == [bool(one.acquire(int(key))) for key in keys]
    assert int(many.sum()) == CHECK_KEYS * CHECK_QUOTA


@pytest.mark.parametrize(("algorithm", "impl"), _cases())
def test_batch(
    bench: Any, benchmark: Any, batch_keys: npt.NDArray[np.int64], algorithm: str, impl: str
) -> None:
    group = f"batch-{algorithm}-1M"
    quota, seconds = _quota(algorithm, batch=True)
    info: dict[str, Any] = {"users": BATCH_USERS, "quota": quota, "window_s": seconds}
    if impl == "trusswork":
        check_batch_as_single(algorithm)
        limit = _ours(algorithm, quota, seconds)
        admitted = bench(group, impl, _acquire_many, limit, batch_keys, keys=BATCH_SIZE, **info)
        _record_rate(benchmark, BATCH_SIZE)
        expected = BATCH_SIZE
    else:
        check_admits_as_ours(bench, group, algorithm, impl)
        keys = [str(key) for key in batch_keys[:PEER_BATCH].tolist()]
        with limiter(bench, group, algorithm, impl, quota, seconds) as decide:
            admitted = bench(
                group, impl, _admitted, decide, keys, keys=PEER_BATCH, scale=BATCH_SCALE, **info
            )
        _record_rate(benchmark, PEER_BATCH, BATCH_SCALE)
        expected = PEER_BATCH
    if algorithm == "sliding-window":
        assert admitted > 0
    else:
        assert admitted == expected


# ---------------------------------------------------------------- Redis


def _redis_client() -> Any:
    try:
        import redis
    except ImportError as exc:
        _no_redis(f"the redis package is not installed: {exc}")
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=10.0)
    try:
        client.ping()
    except redis.RedisError as exc:
        _no_redis(f"nothing answers at {REDIS_URL}: {exc}")
    return client


def _no_redis(why: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"Redis is required under CI=true: {why}")
    pytest.skip(f"Redis unavailable: {why}")


@pytest.fixture(scope="module")
def redis_prefix() -> Iterator[str]:
    """A key prefix unique to this run; every key under it is deleted afterwards."""
    client = _redis_client()
    prefix = f"tw-bench:{os.getpid()}:{uuid.uuid4().hex[:12]}"
    try:
        yield prefix
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
        client.close()


#: limits' Redis strategy for each of our window algorithms.
LIMITS_REDIS_STRATEGY = {
    "sliding_window": "MovingWindowRateLimiter",
    "sliding_window_counter": "SlidingWindowCounterRateLimiter",
    "fixed_window": "FixedWindowRateLimiter",
}


@contextlib.contextmanager
def redis_limiter(
    bench: Any,
    group: str,
    impl: str,
    prefix: str,
    limit: int,
    window: int,
    algorithm: str = "sliding_window",
) -> Iterator[tuple[Decide, Any]]:
    """``(decide, ours_or_None)`` for ``limit`` per ``window`` s in Redis (a sliding window
    by default)."""
    tag = f"{prefix}:{group}:{impl}:{uuid.uuid4().hex[:8]}"
    if impl == "trusswork":
        redis_limiter_class = _ours_api("RedisLimiter", "_redis")
        with redis_limiter_class(
            REDIS_URL,
            algorithm=algorithm,
            limit=limit,
            window_seconds=window,
            prefix=tag,
            on_failure="closed",
        ) as ours:
            yield ours.acquire, ours
        return
    limits = _import_peer(bench, group, impl)
    storage = limits.storage.RedisStorage(REDIS_URL, key_prefix=tag)
    strategy = getattr(limits.strategies, LIMITS_REDIS_STRATEGY[algorithm])(storage)
    yield functools.partial(strategy.hit, limits.RateLimitItemPerSecond(limit, window)), None


def check_redis_admits_as_ours(bench: Any, group: str, impl: str, prefix: str) -> None:
    keys = [f"check:{i}" for i in range(CHECK_KEYS)] * CHECK_TRIES
    outcomes = {}
    for who in (impl, "trusswork"):
        with redis_limiter(bench, group, who, prefix, CHECK_QUOTA, CHECK_SECONDS) as (decide, _):
            outcomes[who] = [bool(decide(key)) for key in keys]
    assert sum(outcomes["trusswork"]) == CHECK_KEYS * CHECK_QUOTA
    assert outcomes[impl] == outcomes["trusswork"]


@pytest.mark.parametrize("impl", ["trusswork", "limits"])
def test_redis_single(
    bench: Any, benchmark: Any, scaled: Callable[[int, int], int], redis_prefix: str, impl: str
) -> None:
    group = "redis-sliding-window"
    check_redis_admits_as_ours(bench, group, impl, redis_prefix)
    keys = [f"user:{i}" for i in range(scaled(*REDIS_KEYS))]
    with redis_limiter(bench, group, impl, redis_prefix, REDIS_LIMIT, REDIS_WINDOW) as (decide, _):
        admitted = bench(group, impl, _admitted, decide, keys, keys=len(keys), limit=REDIS_LIMIT)
    _record_rate(benchmark, len(keys))
    assert admitted == len(keys)


def _redis_many(ours: Any, keys: list[str]) -> int:
    return int(np.count_nonzero(ours.acquire_many(keys).allowed))


#: The redis-batch groups: the exact log keeps the historical name.
REDIS_BATCH_GROUPS = {
    "sliding_window": "redis-batch",
    "sliding_window_counter": "redis-batch-sliding-window-counter",
    "fixed_window": "redis-batch-fixed-window",
}


@pytest.mark.parametrize("algorithm", list(REDIS_BATCH_GROUPS))
@pytest.mark.parametrize("impl", ["trusswork", "limits"])
def test_redis_batch(
    bench: Any,
    benchmark: Any,
    scaled: Callable[[int, int], int],
    redis_prefix: str,
    impl: str,
    algorithm: str,
) -> None:
    group = REDIS_BATCH_GROUPS[algorithm]
    n = scaled(*REDIS_KEYS)
    with redis_limiter(bench, group, impl, redis_prefix, REDIS_LIMIT, REDIS_WINDOW, algorithm) as (
        decide,
        ours,
    ):
        if ours is not None:
            keys = [f"user:{i}" for i in range(n * REDIS_SCALE)]
            # One batch admits what the same acquire calls would: with each key asked
            # CHECK_TRIES times in turn, its first CHECK_QUOTA asks pass.
            check = [f"check:{i}" for i in range(CHECK_KEYS)] * CHECK_TRIES
            with redis_limiter(
                bench, group, impl, redis_prefix, CHECK_QUOTA, CHECK_SECONDS, algorithm
            ) as (_, small):
                allowed = small.acquire_many(check).allowed.tolist()
            assert allowed == [i < CHECK_KEYS * CHECK_QUOTA for i in range(len(check))]
            admitted = bench(group, impl, _redis_many, ours, keys, keys=len(keys))
            _record_rate(benchmark, len(keys))
        else:
            keys = [f"user:{i}" for i in range(n)]
            admitted = bench(
                group, impl, _admitted, decide, keys, keys=len(keys), scale=REDIS_SCALE
            )
            _record_rate(benchmark, len(keys), REDIS_SCALE)
    assert admitted == len(keys)


# ---------------------------------------------------------------- HTTP middleware

PLAINTEXT = b"Hello, World!"


def _app(limited: bool) -> Any:
    from trusswork.http import App, Response

    middleware = []
    if limited:
        ratelimit_middleware = _ours_api("ratelimit_middleware", "_middleware")
        policy_class = _ours_api("Policy", "_policy")
        # One key (the client address) and a quota no benchmark can spend.
        policy = policy_class("bench", "token_bucket", rate=1e9, burst=10**9, key=("ip",))
        middleware.append(ratelimit_middleware([policy]))
    app = App(middleware=middleware)

    def plaintext(request: Any) -> Response:
        return Response(PLAINTEXT, media_type="text/plain")

    app.route(("GET",), "/plaintext", plaintext)
    return app


def __getattr__(name: str) -> Any:
    # The apps the benchmark's server process serves (bench_ratelimit:limited_app).
    if name in ("limited_app", "plain_app"):
        return _app(name == "limited_app")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class PipelinedClient:
    """``CONNECTIONS`` keep-alive connections sending ``DEPTH`` requests per write."""

    def __init__(self, port: int) -> None:
        self.request = b"GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        self.socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(CONNECTIONS)]
        for sock in self.socks:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.selector = selectors.DefaultSelector()
        self.answered = 0  # responses received over the client's life

    def close(self) -> None:
        self.selector.close()
        for sock in self.socks:
            sock.close()

    def run(self, total: int) -> int:
        """Send ``total`` requests (whole writes of DEPTH); return the responses received.

        Each connection keeps two writes of DEPTH requests in flight, so the
        server always has work queued, and the client sleeps POLL seconds
        between reads, so each read takes many responses: the client spends
        little CPU per request and stays far from being the bottleneck.
        """
        marker = PLAINTEXT
        keep = len(marker) - 1
        batch = self.request * DEPTH
        sent = 0
        pending: dict[socket.socket, list[Any]] = {}
        for _ in range(2):
            for sock in self.socks:
                if sent >= total:
                    break
                sock.sendall(batch)
                sent += DEPTH
                pending.setdefault(sock, [0, b""])[0] += DEPTH
        for sock in pending:
            self.selector.register(sock, selectors.EVENT_READ)
        done = 0
        try:
            while pending:
                time.sleep(POLL)
                for key, _ in self.selector.select(10.0):
                    sock = key.fileobj
                    state = pending[sock]  # type: ignore[index]
                    data = sock.recv(1 << 20)  # type: ignore[union-attr]
                    if not data:
                        raise ConnectionError("the server closed a connection")
                    chunk = state[1] + data
                    got = chunk.count(marker)
                    state[1] = chunk[-keep:]
                    state[0] -= got
                    done += got
                    self.answered += got
                    if state[0] <= DEPTH and sent < total:
                        sock.sendall(batch)  # type: ignore[union-attr]
                        sent += DEPTH
                        state[0] += DEPTH
                    elif state[0] <= 0:
                        self.selector.unregister(sock)
                        del pending[sock]  # type: ignore[arg-type]
        finally:
            for sock in list(pending):
                self.selector.unregister(sock)
        return done


@contextlib.contextmanager
def _pinned(cpus: set[int]) -> Iterator[None]:
    if not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) < 2:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


@contextlib.contextmanager
def _server(limited: bool) -> Iterator[tuple[int, int]]:
    """``(port, pid)`` of a server of the plain or the rate-limited app, pinned to CPU 0."""
    from trusswork.http.loadtest import free_port, running

    port = free_port()
    name = "limited_app" if limited else "plain_app"
    command = [
        sys.executable, "-m", "trusswork", "http", "serve", "--port", str(port), "--native",
        f"{Path(__file__).stem}:{name}",
    ]  # fmt: skip
    here = str(Path(__file__).resolve().parent)
    path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = here if not path else f"{here}{os.pathsep}{path}"
    try:
        with running(name, command, port, cpus="0") as process:
            yield port, process.pid
    finally:
        if path is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = path


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads) so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _head(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), 5.0) as sock:
        sock.sendall(b"GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        data = b""
        while PLAINTEXT not in data:
            more = sock.recv(65536)
            if not more:
                break
            data += more
    return data.lower()


@pytest.mark.parametrize("impl", ["trusswork", "no-middleware"])
def test_middleware(
    bench: Any, benchmark: Any, scaled: Callable[[int, int], int], impl: str
) -> None:
    group = "middleware-plaintext"
    requests = scaled(*MIDDLEWARE_REQUESTS)
    limited = impl == "trusswork"
    with _server(limited) as (port, pid):
        head = _head(port)
        assert head.startswith(b"http/1.1 200") and head.endswith(PLAINTEXT.lower())
        assert (b"\r\nratelimit: " in head) == limited
        client = PipelinedClient(port)
        try:
            client.run(CONNECTIONS * DEPTH * 4)  # warm up
            cpu, answered = _cpu_seconds(pid), client.answered
            with _pinned({1}):
                done = bench(
                    group, impl, client.run, requests, requests=requests,
                    connections=CONNECTIONS, depth=DEPTH,
                )  # fmt: skip
            cpu = _cpu_seconds(pid) - cpu
            answered = client.answered - answered
        finally:
            client.close()
    _record_rate(benchmark, requests)
    # The server's CPU time per request over every timed round (clock ticks, summed over
    # about a second or more): unlike req/s, it does not move with other jobs' load.
    benchmark.extra_info["server_cpu_us_per_request"] = round(cpu / answered * 1e6, 2)
    assert done == requests
