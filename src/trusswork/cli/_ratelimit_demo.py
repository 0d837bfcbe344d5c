"""Demo section for rate limiting: a burst, the RateLimit headers, levels, adaptive limits.

Checked parts, all on fake time (nothing waits for real):

1. A burst against ``TokenBucket(rate=5, burst=10)``: 15 requests at t = 0
   admit exactly 10 (remaining 9 down to 0) and deny 5, each with
   ``retry_after`` 0.2 s (one token at 5/s); one second later exactly 5
   more pass.
2. The RateLimit headers: a :class:`trusswork.http.App` behind
   :func:`~trusswork.ratelimit.ratelimit_middleware` (policy
   ``api``: 3 per minute per ``X-API-Key``, token bucket) is served on
   127.0.0.1 on a free port, in a thread, and asked over real sockets. The
   three allowed answers carry ``RateLimit-Policy: "api";q=3;w=60`` and
   ``RateLimit: "api";r=N;t=T``; the fourth is a 429 with ``Retry-After: 20``
   and an ``application/problem+json`` body naming the policy; another key
   is still allowed.
3. Hierarchical limits: a global fixed window of 5 and a per-user token
   bucket of 3. A request denied by one level is charged to none: the
   global count does not move when a user is over their limit, and a user
   refused by the global limit keeps their own quota.
4. Adaptive limits: :func:`~trusswork.ratelimit.simulate_adaptive`, a
   service whose capacity drops to a quarter and comes back. The errors
   must fall under the SLO's budget within a few control intervals of the
   drop and stay there, and the limit must climb back to 90% of capacity
   after it returns. The plot shows admitted rate, limit and capacity.
5. Batched decisions: ``acquire_many`` on one million int64 keys, timed
   (reported, never asserted).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from trusswork.cli._demo import DemoContext, Plot, SectionResult

if TYPE_CHECKING:
    from trusswork.http import App, Server

#: Part 1: the bucket and the burst.
BURST_RATE = 5.0
BURST = 10
BURST_REQUESTS = 15
#: Part 2: the policy the App enforces.
HEADER_POLICY: dict[str, Any] = {
    "algorithm": "token_bucket",
    "rate": "3/1m",
    "burst": 3,
    "key": ["header:X-API-Key"],
}
#: Part 4: the simulated service (requests per second and seconds).
CAPACITY = 200.0
OFFERED = 300.0
DROP_AT, RECOVER_AT = 100.0, 200.0
DROP_TO = 0.25
ERROR_BUDGET = 0.01
#: Seconds the quick and the full runs simulate (the full run watches the recovery longer).
QUICK_DURATION = 320.0
FULL_DURATION = 400.0
#: Part 5: keys per batch.
BATCH_KEYS = 1_000_000


class _Clock:
    """A settable fake clock: ``clock()`` reads it, ``clock.now`` moves it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# ---------------------------------------------------------------- 1. a burst


def _burst_part() -> list[tuple[str, str]]:
    """15 requests at once into a bucket of 10 at 5/s; then one second later."""
    from trusswork.ratelimit import TokenBucket

    clock = _Clock()
    bucket = TokenBucket(BURST_RATE, BURST, clock=clock)
    first = [bucket.acquire("user:42") for _ in range(BURST_REQUESTS)]
    allowed = [d for d in first if d.allowed]
    denied = [d for d in first if not d.allowed]
    if [d.allowed for d in first] != [True] * BURST + [False] * (BURST_REQUESTS - BURST):
        raise AssertionError(
            f"a burst of {BURST_REQUESTS} into burst {BURST} did not admit the first 10"
        )
    if [d.remaining for d in allowed] != list(range(BURST - 1, -1, -1)):
        raise AssertionError(f"remaining went {[d.remaining for d in allowed]}, not 9 down to 0")
    interval = 1 / BURST_RATE
    if not all(math.isclose(d.retry_after, interval) and d.remaining == 0 for d in denied):
        raise AssertionError(
            f"denials said retry after {[d.retry_after for d in denied]}, not {interval} s"
        )
    if not math.isclose(denied[0].reset_after, BURST / BURST_RATE):
        raise AssertionError(f"reset_after {denied[0].reset_after}, not {BURST / BURST_RATE} s")
    clock.now = 1.0
    later = [bucket.acquire("user:42") for _ in range(BURST_REQUESTS)]
    refilled = sum(1 for d in later if d.allowed)
    if refilled != BURST_RATE * 1.0 or any(d.allowed for d in later[refilled:]):
        raise AssertionError(f"one second later {refilled} passed, not {BURST_RATE:g}")
    return [
        (
            f"TokenBucket(rate={BURST_RATE:g}, burst={BURST}): {BURST_REQUESTS} requests at t=0",
            f"{len(allowed)} allowed, {len(denied)} denied",
        ),
        ("remaining after each allowed one", ", ".join(str(d.remaining) for d in allowed)),
        (
            "each denial",
            f"retry_after {denied[0].retry_after:.3f} s, reset_after {denied[0].reset_after:.3f} s",
        ),
        (f"{BURST_REQUESTS} more at t=1 s", f"{refilled} allowed (5 tokens refilled)"),
    ]


# ---------------------------------------------------------------- 2. headers


@contextmanager
def _serving(app: App) -> Iterator[Server]:
    """Serve ``app`` on 127.0.0.1, a free port, in a thread with its own event loop."""
    from trusswork.http import build_server

    loop = asyncio.new_event_loop()
    server = build_server(app, port=0)
    ready = threading.Event()
    failure: list[BaseException] = []

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.start())
        except BaseException as error:  # handed to the demo's thread
            failure.append(error)
            ready.set()
            return
        ready.set()
        loop.run_until_complete(server.serve_forever())

    thread = threading.Thread(target=main, name="ratelimit-demo-server", daemon=True)
    thread.start()
    if not ready.wait(10):
        raise AssertionError("the demo server did not start within 10 s")
    if failure:
        thread.join(5)
        loop.close()
        raise failure[0]
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(15)
        thread.join(5)
        loop.close()


def _get(connection: http.client.HTTPConnection, key: str) -> tuple[int, dict[str, str], bytes]:
    connection.request("GET", "/orders", headers={"X-API-Key": key})
    response = connection.getresponse()
    body = response.read()
    headers = {name.lower(): value for name, value in response.getheaders()}
    return response.status, headers, body


def _headers_part() -> list[tuple[str, str]]:
    """A native App with ratelimit_middleware on a real socket: headers, then a 429."""
    from trusswork.http import App, HTTPRequest
    from trusswork.ratelimit import Policy, PolicySet, ratelimit_middleware

    with PolicySet([Policy.from_mapping("api", HEADER_POLICY)], clock=_Clock()) as policies:
        app = App(middleware=[ratelimit_middleware(policies)])

        @app.get("/orders")
        def orders(request: HTTPRequest) -> dict[str, Any]:
            return {"orders": []}

        with _serving(app) as server:
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            try:
                answers = [_get(connection, "alice") for _ in range(4)]
                other = _get(connection, "bob")
            finally:
                connection.close()
    expected_policy = '"api";q=3;w=60'
    # 3 per minute: a token every 20 s; after n requests the key is full again in 20n s.
    for index, (status, headers, _) in enumerate(answers[:3]):
        state = f'"api";r={2 - index};t={20 * (index + 1)}'
        if (status, headers.get("ratelimit-policy"), headers.get("ratelimit")) != (
            200,
            expected_policy,
            state,
        ):
            raise AssertionError(
                f"request {index + 1}: got {status} with RateLimit-Policy "
                f"{headers.get('ratelimit-policy')!r} and RateLimit {headers.get('ratelimit')!r}, "
                f"not 200 with {expected_policy!r} and {state!r}"
            )
    status, headers, body = answers[3]
    problem = json.loads(body) if body else {}
    if (
        status != 429
        or headers.get("retry-after") != "20"
        or headers.get("content-type") != "application/problem+json"
        or problem.get("status") != 429
        or problem.get("policy") != "api"
        or problem.get("retry_after") != 20
    ):
        raise AssertionError(
            f"the 4th request got {status} {headers} {body!r}, "
            "not a 429 problem with Retry-After 20"
        )
    if other[0] != 200 or other[1].get("ratelimit") != '"api";r=2;t=20':
        raise AssertionError(f"another key was not allowed on its own quota: {other[:2]}")
    allowed_headers = "; ".join(
        f"RateLimit: {headers['ratelimit']}" for _, headers, _ in answers[:3]
    )
    return [
        ("policy 'api' (3/min per X-API-Key): RateLimit-Policy", expected_policy),
        ("requests 1-3: 200 with", allowed_headers),
        ("request 4", f"429, Retry-After: {headers['retry-after']}, {headers['content-type']}"),
        ("its problem detail", str(problem.get("detail", ""))),
        ("another key (bob)", f"{other[0]}, RateLimit: {other[1]['ratelimit']}"),
    ]


# ---------------------------------------------------------------- 3. hierarchy


def _hierarchy_part() -> list[tuple[str, str]]:
    """A global limit and a per-user one; a denied request is charged to neither."""
    from trusswork.ratelimit import FixedWindow, Hierarchy, TokenBucket

    clock = _Clock()
    limits = Hierarchy(
        {
            "global": FixedWindow(5, 60.0, clock=clock),
            "user": TokenBucket(1.0, 3, clock=clock),
        }
    )

    def ask(user: str) -> bool:
        return limits.acquire({"global": "all", "user": user}).allowed

    def left(level: str, key: str) -> int:
        return limits[level].peek(key, 0).remaining

    alice = [ask("alice") for _ in range(4)]
    refused = limits.acquire({"global": "all", "user": "alice"})
    if alice != [True, True, True, False] or refused.denied_by != ("user",):
        raise AssertionError(f"alice's 4th request was not refused by her own limit: {alice}")
    global_after_alice = left("global", "all")
    if global_after_alice != 2:
        raise AssertionError(
            f"the global limit has {global_after_alice} left after alice's 3 admitted "
            "requests and 2 refused ones, not 2: a denied request was charged"
        )
    bob = [ask("bob") for _ in range(2)]
    carol = limits.acquire({"global": "all", "user": "carol"})
    if bob != [True, True] or carol.allowed or carol.denied_by != ("global",):
        raise AssertionError(f"bob {bob} then carol {carol} did not exhaust the global limit")
    carol_left = left("user", "carol")
    if carol_left != 3:
        raise AssertionError(f"carol, refused by the global limit, has {carol_left} of 3 left")
    return [
        ("levels", "global: 5 per minute (fixed window); user: burst 3, 1/s (token bucket)"),
        ("alice, 5 requests", "3 allowed, 2 denied by 'user'"),
        ("global quota left after alice", f"{global_after_alice} of 5 (denials charged nowhere)"),
        ("bob, 2 requests", "2 allowed (global now 0 left)"),
        ("carol, 1 request", f"denied by 'global'; her own quota still {carol_left} of 3"),
    ]


# ---------------------------------------------------------------- 4. adaptive


def _adaptive_part(ctx: DemoContext) -> tuple[list[tuple[str, str]], Plot, list[str]]:
    """simulate_adaptive with a capacity drop; check the SLO and the recovery; plot it."""
    from trusswork.cli._ratelimit import RECOVERED_SHARE, SETTLE, adaptive_figure, summarize
    from trusswork.ratelimit import SLO, simulate_adaptive

    duration = QUICK_DURATION if ctx.quick else FULL_DURATION
    rows = simulate_adaptive(
        capacity=CAPACITY,
        offered=OFFERED,
        duration=duration,
        drop_at=DROP_AT,
        recover_at=RECOVER_AT,
        drop_to=DROP_TO,
        slo=SLO(error_rate=ERROR_BUDGET),
    )
    summary = summarize(
        rows,
        capacity=CAPACITY,
        drop_at=DROP_AT,
        recover_at=RECOVER_AT,
        duration=duration,
        error_budget=ERROR_BUDGET,
    )
    degraded, recovered = summary["phases"]["degraded"], summary["phases"]["recovered"]
    healthy_at, back_at = summary["healthy_at"], summary["limit_back_at"]
    reduced = CAPACITY * DROP_TO
    if healthy_at is None or healthy_at > DROP_AT + SETTLE:
        raise AssertionError(
            f"errors were not under the {ERROR_BUDGET:.0%} budget within {SETTLE:g} s of the "
            f"drop (first healthy second: {healthy_at})"
        )
    if degraded["errors"] is None or degraded["errors"] >= ERROR_BUDGET:
        raise AssertionError(f"errors {degraded['errors']} during the drop exceed the budget")
    if not 0.8 * reduced <= degraded["admitted"] <= reduced:
        raise AssertionError(
            f"{degraded['admitted']:.1f}/s admitted during the drop, not 80-100% of {reduced:g}/s"
        )
    if back_at is None:
        raise AssertionError(f"the limit never climbed back to {RECOVERED_SHARE:.0%} of capacity")
    late = [row for row in rows if row.time >= duration - 30]
    late_admitted = sum(row.admitted for row in late) / len(late)
    if late_admitted < 0.85 * CAPACITY:
        raise AssertionError(
            f"only {late_admitted:.1f}/s admitted at the end, capacity {CAPACITY:g}"
        )
    figure = adaptive_figure(
        rows, drop_at=DROP_AT, recover_at=RECOVER_AT, error_budget=ERROR_BUDGET
    )
    table = [
        (
            "simulated service",
            f"capacity {CAPACITY:g}/s, {reduced:g}/s from {DROP_AT:g} to {RECOVER_AT:g} s; "
            f"{OFFERED:g}/s offered",
        ),
        (
            "errors under the budget again at",
            f"{healthy_at:g} s ({healthy_at - DROP_AT:g} s after)",
        ),
        (
            f"errors during the drop (from {DROP_AT + SETTLE:g} s)",
            f"{degraded['errors']:.2%} of admitted (budget {ERROR_BUDGET:.0%})",
        ),
        ("admitted during the drop", f"{degraded['admitted']:.1f}/s of {reduced:g}/s"),
        (
            f"limit back to {RECOVERED_SHARE:.0%} of capacity at",
            f"{back_at:g} s ({back_at - RECOVER_AT:g} s after)",
        ),
        ("admitted over the last 30 s", f"{late_admitted:.1f}/s"),
        ("errors after the recovery", f"{recovered['errors']:.2%} of admitted"),
    ]
    plot = Plot("Adaptive limit: admitted rate, limit and capacity against time", figure)
    notes = [
        "The adaptive limit tightens multiplicatively when the error budget burns faster than "
        "it is earned and relaxes in small steps below the last limit that overspent it; the "
        "ceiling expires after a while so capacity that returns is found again (waits double "
        "after a failed probe, which is why the climb back starts late). Rerun it with "
        "'trusswork ratelimit simulate --plot adaptive.svg'.",
    ]
    return table, plot, notes


# ---------------------------------------------------------------- 5. batched decisions


def _batch_part(ctx: DemoContext) -> list[tuple[str, str]]:
    """acquire_many on a million distinct int64 keys: first pass inserts, second updates."""
    import numpy as np

    from trusswork.ratelimit import TokenBucket

    keys = np.arange(BATCH_KEYS, dtype=np.int64)
    bucket = TokenBucket(1000.0, 100)
    passes = 2 if ctx.quick else 5
    seconds: list[float] = []
    for _ in ctx.track(range(passes), "ratelimit: acquire_many on 1M keys"):
        started = time.perf_counter()
        decisions = bucket.acquire_many(keys)
        seconds.append(time.perf_counter() - started)
        admitted = int(decisions.allowed.sum())
        if admitted != BATCH_KEYS:  # 100 tokens per key: every pass passes
            raise AssertionError(f"{admitted:,} of {BATCH_KEYS:,} keys admitted in a pass")
    if len(bucket) != BATCH_KEYS:
        raise AssertionError(f"the table holds {len(bucket):,} keys, not {BATCH_KEYS:,}")
    insert, best = seconds[0], min(seconds[1:])
    return [
        (
            f"acquire_many, {BATCH_KEYS:,} new int64 keys (inserts)",
            f"{BATCH_KEYS / insert / 1e6:.1f} M decisions/s",
        ),
        (
            f"acquire_many, the same keys again (best of {passes - 1})",
            f"{BATCH_KEYS / best / 1e6:.1f} M decisions/s",
        ),
        ("table memory for 1M keys", f"{bucket.memory_bytes / 2**20:.0f} MiB"),
    ]


# ---------------------------------------------------------------- the section


def demo(ctx: DemoContext) -> SectionResult:
    """Run and check the rate limiting parts; see the module docstring."""
    rows = _burst_part()
    rows += _headers_part()
    rows += _hierarchy_part()
    adaptive_rows, plot, notes = _adaptive_part(ctx)
    rows += adaptive_rows
    rows += _batch_part(ctx)
    notes.insert(
        0,
        "Parts 1-3 run on a fake clock, so every count and header is exact; part 2 is a real "
        "trusswork.http server on 127.0.0.1 with the rate limit middleware. "
        "Try a limit yourself with 'trusswork ratelimit try'.",
    )
    notes.append(
        "Batched decision rates are measured here on a shared machine, with the table growing "
        "to a million keys on the first pass; they are indicative, not asserted."
    )
    return SectionResult(rows=rows, plots=[plot], notes=notes)
