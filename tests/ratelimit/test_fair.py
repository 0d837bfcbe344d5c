"""FairShare: keys under their weighted share are never starved; the total stays in capacity."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from trusswork.core.clock import FakeClock
from trusswork.core.errors import InvalidInput
from trusswork.ratelimit import TokenBucket
from trusswork.ratelimit._fair import FairShare

RATE = 100.0
BURST = 200
TICK = 0.01  # seconds; every client makes its requests for the tick at the tick's start


def conforms_to_capacity(admitted: list[tuple[float, int]], rate: float, burst: int) -> bool:
    """Replay the admitted requests through the compiled token bucket: all must pass."""
    at = [0.0]
    replay = TokenBucket(rate, burst, clock=lambda: at[0])
    for when, cost in admitted:
        at[0] = when
        if not replay.acquire("all", cost).allowed:
            return False
    return True


class Run:
    """Drive clients against a FairShare on a fake clock, recording every decision."""

    def __init__(self, fair: FairShare, clock: FakeClock) -> None:
        self.fair = fair
        self.clock = clock
        self.asked: Counter[str] = Counter()
        self.got: Counter[str] = Counter()
        self.admitted: list[tuple[float, int]] = []

    def ask(self, key: str, cost: int = 1) -> bool:
        decision = self.fair.acquire(key, cost)
        self.asked[key] += cost
        if decision.allowed:
            self.got[key] += cost
            self.admitted.append((self.clock.monotonic(), cost))
        return decision.allowed

    def ticks(self, seconds: float, each_tick: Callable[[int], None]) -> None:
        start = round(self.clock.monotonic() / TICK)
        for n in range(start, start + round(seconds / TICK)):
            each_tick(n)
            self.clock.advance(TICK)


def light_every(n: int, period_ticks: int, phase: int) -> bool:
    return n % period_ticks == phase % period_ticks


def test_light_clients_get_everything_while_a_heavy_one_takes_the_rest() -> None:
    clock = FakeClock()
    fair = FairShare(RATE, BURST, clock=clock.monotonic)
    run = Run(fair, clock)
    lights = [f"light-{i}" for i in range(9)]

    def tick(n: int) -> None:
        for _ in range(5):  # 500 requests/s, 100x a light client, first in every tick
            run.ask("heavy")
        for i, key in enumerate(lights):  # 5 requests/s each; fair share is 100/10 = 10/s
            if light_every(n, 20, 2 * i):
                run.ask(key)

    run.ticks(30.0, tick)

    for key in lights:
        assert run.asked[key] == 150
        assert run.got[key] == run.asked[key], key
    light_total = sum(run.got[key] for key in lights)
    capacity = RATE * 30.0 + BURST
    # The heavy client gets what the light ones leave, less at most the reserve held for them.
    assert run.got["heavy"] >= capacity - light_total - BURST
    assert run.got["heavy"] + light_total <= capacity
    assert run.got["heavy"] < run.asked["heavy"]
    assert conforms_to_capacity(run.admitted, RATE, BURST)


def test_light_client_joining_a_flood_is_served_from_its_first_request() -> None:
    clock = FakeClock()
    fair = FairShare(RATE, BURST, clock=clock.monotonic)
    run = Run(fair, clock)
    lights = [f"light-{i}" for i in range(4)]

    def tick(n: int) -> None:
        for _ in range(5):
            run.ask("heavy")
        for i, key in enumerate(lights):
            if light_every(n, 20, 3 * i):
                run.ask(key)
        if n >= 500 and light_every(n, 25, 7):  # joins at 5 s, 4 requests/s
            run.ask("late")

    run.ticks(15.0, tick)

    assert run.asked["late"] == 40
    assert run.got["late"] == run.asked["late"]
    for key in lights:
        assert run.got[key] == run.asked[key], key
    assert conforms_to_capacity(run.admitted, RATE, BURST)


def test_two_heavy_keys_split_the_capacity_by_weight() -> None:
    clock = FakeClock()
    fair = FairShare(90.0, 60, weights={"gold": 2}, clock=clock.monotonic)
    run = Run(fair, clock)

    def flood(n: int) -> None:
        for _ in range(3):
            run.ask("gold")
            run.ask("bronze")

    run.ticks(2.0, flood)  # past the initial burst
    before = run.got.copy()
    run.ticks(20.0, flood)
    gold = run.got["gold"] - before["gold"]
    bronze = run.got["bronze"] - before["bronze"]

    assert fair.fair_rate("gold") == pytest.approx(60.0)
    assert fair.fair_rate("bronze") == pytest.approx(30.0)
    # 20 s at 60/s and 30/s, give or take what a bucket holds (reserve 30 * w / W).
    assert abs(gold - 1200) <= 20
    assert abs(bronze - 600) <= 10
    assert conforms_to_capacity(run.admitted, 90.0, 60)


def test_a_key_that_goes_idle_releases_its_share() -> None:
    clock = FakeClock()
    fair = FairShare(RATE, BURST, clock=clock.monotonic)
    run = Run(fair, clock)
    keys = ["a", "b", "c", "d"]

    def flood(active: list[str]) -> Callable[[int], None]:
        def tick(n: int) -> None:
            for key in active:
                for _ in range(3):
                    run.ask(key)

        return tick

    run.ticks(5.0, flood(keys))
    assert len(fair) == 4
    assert fair.fair_rate("a") == pytest.approx(25.0)

    run.ticks(2.0, flood(["a", "b"]))  # c and d stop; idle after reserve / rate = 1 s
    assert len(fair) == 2
    assert fair.fair_rate("a") == pytest.approx(50.0)

    before = run.got.copy()
    run.ticks(10.0, flood(["a", "b"]))
    for key in ("a", "b"):
        assert abs(run.got[key] - before[key] - 500) <= 50
    assert conforms_to_capacity(run.admitted, RATE, BURST)


def test_a_lone_key_can_use_the_whole_burst_then_the_rate() -> None:
    clock = FakeClock()
    fair = FairShare(10.0, 20, clock=clock.monotonic)
    decisions = [fair.acquire("only") for _ in range(25)]
    assert [d.allowed for d in decisions] == [True] * 20 + [False] * 5
    assert decisions[0].remaining == 19
    assert decisions[19].remaining == 0
    denied = decisions[20]
    assert denied.retry_after == pytest.approx(0.1)
    assert denied.reset_after == pytest.approx(2.0)
    assert denied.limit == 20
    clock.advance(denied.retry_after)
    assert fair.acquire("only").allowed
    assert not fair.acquire("only").allowed


def test_retry_after_of_a_borrowing_key_is_when_it_passes() -> None:
    clock = FakeClock()
    fair = FairShare(RATE, BURST, clock=clock.monotonic)
    fair.acquire("light")
    while fair.acquire("heavy", 7).allowed:
        pass
    denied = fair.peek("heavy", 7)
    assert not denied.allowed
    assert 0 < denied.retry_after < math.inf
    clock.advance(denied.retry_after - 0.001)
    assert not fair.acquire("heavy", 7).allowed
    clock.advance(0.001)
    assert fair.acquire("heavy", 7).allowed


def test_cost_above_burst_never_passes() -> None:
    fair = FairShare(RATE, BURST, clock=FakeClock().monotonic)
    decision = fair.acquire("k", BURST + 1)
    assert not decision.allowed
    assert decision.retry_after == math.inf


def test_peek_changes_nothing() -> None:
    clock = FakeClock()
    fair = FairShare(10.0, 20, clock=clock.monotonic)
    assert fair.peek("a", 5).allowed
    assert len(fair) == 0
    first = fair.acquire("a", 5)
    assert fair.peek("a", 5).remaining == first.remaining - 5
    assert fair.acquire("a", 1).remaining == first.remaining - 1


def test_weights_from_a_callable_and_reported() -> None:
    clock = FakeClock()
    fair = FairShare(
        60.0,
        40,
        weights=lambda key: 3 if str(key).startswith("vip") else 1.5,
        clock=clock.monotonic,
    )
    fair.acquire("vip-1")
    fair.acquire("user-1")
    assert fair.weight("vip-1") == 3.0
    assert fair.weight("user-1") == 1.5
    assert fair.fair_rate("vip-1") == pytest.approx(40.0)
    assert fair.fair_rate("user-1") == pytest.approx(20.0)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"rate": 0, "burst": 10}, "rate"),
        ({"rate": math.nan, "burst": 10}, "rate"),
        ({"rate": 1.0, "burst": 1}, "burst"),
        ({"rate": 1.0, "burst": 10, "reserve": 10}, "reserve"),
        ({"rate": 1.0, "burst": 10, "reserve": 0}, "reserve"),
        ({"rate": 1.0, "burst": 10, "idle_after": 1.0}, "idle_after"),
        ({"rate": 1.0, "burst": 10, "weights": 3}, "weights"),
    ],
)
def test_bad_parameters_are_refused(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(InvalidInput, match=needle):
        FairShare(**kwargs)  # type: ignore[arg-type]


def test_bad_keys_costs_and_weights_are_refused() -> None:
    fair = FairShare(1.0, 10, weights={"zero": 0, "nan": math.nan}, clock=FakeClock().monotonic)
    with pytest.raises(InvalidInput, match="key"):
        fair.acquire(True)
    with pytest.raises(InvalidInput, match="key"):
        fair.acquire(1.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="cost"):
        fair.acquire("k", -1)
    with pytest.raises(InvalidInput, match="weight of key 'zero'"):
        fair.acquire("zero")
    with pytest.raises(InvalidInput, match="weight of key 'nan'"):
        fair.acquire("nan")


@settings(max_examples=60, deadline=None)
@given(
    n_light=st.integers(1, 6),
    light_weight=st.sampled_from([1, 2, 0.5]),
    heavy=st.lists(
        st.tuples(st.integers(0, 2), st.integers(1, 8), st.integers(0, 40)), max_size=300
    ),
    reserve=st.integers(20, 60),
)
def test_conforming_keys_always_pass_whatever_the_others_do(
    n_light: int,
    light_weight: float,
    heavy: list[tuple[int, int, int]],
    reserve: int,
) -> None:
    """Light keys that spend at their fair rate (from a full bucket) are never denied."""
    clock = FakeClock()
    weights: dict[str | bytes | int, float] = {f"light-{i}": light_weight for i in range(n_light)}
    fair = FairShare(50.0, reserve + 30, reserve=reserve, weights=weights, clock=clock.monotonic)
    lights = list(weights)
    for key in lights:  # active, buckets full, before any heavy key shows up
        fair.acquire(key, 0)
    admitted: list[tuple[float, int]] = []
    heavy_weight_total = 3  # three heavy keys of weight 1, active from their first request
    total_weight = n_light * light_weight + heavy_weight_total
    light_rate = 50.0 * light_weight / total_weight  # the smallest share a light key can have
    spent = {key: 0.0 for key in lights}
    for step, (who, cost, gap_ms) in enumerate(heavy):
        decision = fair.acquire(f"heavy-{who}", cost)
        if decision.allowed:
            admitted.append((clock.monotonic(), cost))
        if step % 5 == 0:
            for key in lights:
                fair.acquire(key, 0)  # stays active (a gap of 5 steps is under idle_after)
                # Spend only what a bucket of rate light_rate (and no burst) has earned.
                if clock.monotonic() * light_rate - spent[key] >= 1:
                    assert fair.acquire(key).allowed, (key, clock.monotonic())
                    spent[key] += 1
                    admitted.append((clock.monotonic(), 1))
        clock.advance(gap_ms / 1000)
    assert conforms_to_capacity(admitted, 50.0, reserve + 30)


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.integers(0, 9),  # which key (weights below)
            st.integers(0, 10),  # cost
            st.sampled_from([0, 0, 0, 1, 10, 50, 300]),  # ms to wait before the request
        ),
        max_size=200,
    )
)
@example(steps=[(0, 1, 0)] * 40 + [(1, 0, 0)])  # a key drains everything, another joins
def test_every_bucket_is_backed_by_the_shared_capacity(steps: list[tuple[int, int, int]]) -> None:
    """The invariant the guarantee rests on: G >= S, and the running bound R >= S.

    G is what the shared bucket holds, S the sum of what the keys' own buckets hold
    (a bucket that holds a cost must find it in G). Checked after every decision, with
    keys joining, going idle and coming back, in whole ns-units multiplied by W.
    """
    clock = FakeClock()
    weights = {k: (1, 2, 3, 0.5, 1.25)[k % 5] for k in range(10)}
    fair = FairShare(40.0, 30, reserve=18, weights=weights, clock=clock.monotonic)
    for key, cost, wait_ms in steps:
        clock.advance(wait_ms / 1000)
        fair.acquire(key, cost)
        now = round(clock.monotonic() * 1e9)
        members = fair._members
        total = sum(m.weight for m in members.values())
        assert total == fair._total_weight
        levels = sum(fair._level(m, now) for m in members.values())
        shared = fair._tau - max(0, fair._tat - now)
        assert total * shared >= levels
        assert total * fair._reserved_now(now) >= levels
