"""AdaptiveLimit: follows the error budget, protects a degraded service, recovers, holds still."""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest

from trusswork.core.clock import FakeClock
from trusswork.core.errors import InvalidInput
from trusswork.ratelimit._adaptive import (
    SLO,
    AdaptiveLimit,
    LimitChange,
    SimulationRow,
    simulate_adaptive,
)

CAPACITY = 200.0
DROP_AT, RECOVER_AT, DURATION = 100, 200, 320


@pytest.fixture(scope="module")
def run() -> list[SimulationRow]:
    return simulate_adaptive(
        capacity=CAPACITY,
        offered=1.5 * CAPACITY,
        duration=DURATION,
        drop_at=DROP_AT,
        recover_at=RECOVER_AT,
        drop_to=0.25,
    )


def error_ratio(rows: list[SimulationRow]) -> float:
    return sum(r.errors for r in rows) / sum(r.admitted for r in rows)


def between(rows: list[SimulationRow], start: float, stop: float) -> list[SimulationRow]:
    return [r for r in rows if start <= r.time < stop]


def direction_changes(limits: list[float]) -> int:
    steps = [b - a for a, b in itertools.pairwise(limits) if b != a]
    return sum(1 for a, b in itertools.pairwise(steps) if (a > 0) != (b > 0))


def test_simulation_rows_are_a_plain_time_series(run: list[SimulationRow]) -> None:
    assert len(run) == DURATION
    assert [r.time for r in run] == [float(t) for t in range(DURATION)]
    assert {f.name for f in dataclasses.fields(SimulationRow)} == {
        "time",
        "offered",
        "admitted",
        "limit",
        "capacity",
        "errors",
    }
    assert all(r.offered == 1.5 * CAPACITY for r in run)
    assert [r.capacity for r in run[DROP_AT - 1 : DROP_AT + 1]] == [CAPACITY, CAPACITY / 4]
    assert all(r.errors <= r.admitted <= r.offered for r in run)


def test_errors_fall_under_the_slo_within_a_few_intervals_of_the_drop(
    run: list[SimulationRow],
) -> None:
    reduced = CAPACITY / 4
    settle = 5  # control intervals: 0.7 ** 4 takes ~190/s under 50/s
    first_healthy = next(
        r.time for r in between(run, DROP_AT, RECOVER_AT) if r.errors / r.admitted < 0.01
    )
    assert first_healthy <= DROP_AT + settle
    degraded = between(run, DROP_AT + settle + 1, RECOVER_AT)
    assert error_ratio(degraded) < 0.01  # the error budget holds over the whole degraded phase
    mean_admitted = sum(r.admitted for r in degraded) / len(degraded)
    assert 0.8 * reduced <= mean_admitted <= reduced


def test_the_limit_holds_still_at_steady_capacity(run: list[SimulationRow]) -> None:
    steady = between(run, 30, DROP_AT)
    assert direction_changes([r.limit for r in steady]) <= 4
    assert error_ratio(steady) < 0.01
    assert sum(r.admitted for r in steady) / len(steady) >= 0.85 * CAPACITY


def test_plain_aimd_without_ceiling_oscillates_where_the_controller_does_not(
    run: list[SimulationRow],
) -> None:
    """The same loop with the ceiling switched off (expires at once) saw-tooths."""
    plain = simulate_adaptive(
        capacity=CAPACITY,
        offered=1.5 * CAPACITY,
        duration=DROP_AT,
        drop_at=DROP_AT,
        recover_at=RECOVER_AT,
        probe_after=0.0,
    )
    ours = direction_changes([r.limit for r in between(run, 30, DROP_AT)])
    theirs = direction_changes([r.limit for r in between(plain, 30, DROP_AT)])
    assert theirs >= 3 * max(ours, 1)


def test_the_limit_climbs_back_when_capacity_returns(run: list[SimulationRow]) -> None:
    probe_wait_max = 80  # 4 * probe_after, probe_after = 20 intervals
    back_by = next(r.time for r in between(run, RECOVER_AT, DURATION) if r.limit >= 0.9 * CAPACITY)
    assert back_by <= RECOVER_AT + probe_wait_max + 20
    late = between(run, DURATION - 30, DURATION)
    assert sum(r.admitted for r in late) / len(late) >= 0.85 * CAPACITY
    assert error_ratio(late) < 0.01


# -- the controller, step by step ------------------------------------------------------------


class Harness:
    def __init__(self, **options: object) -> None:
        self.clock = FakeClock()
        self.changes: list[LimitChange] = []
        options.setdefault("min_limit", 10.0)
        options.setdefault("max_limit", 200.0)
        options.setdefault("min_samples", 10)
        self.limiter = AdaptiveLimit(
            options.pop("initial", 100.0),  # type: ignore[arg-type]
            clock=self.clock.monotonic,
            on_change=self.changes.append,
            **options,  # type: ignore[arg-type]
        )

    def interval(self, *, errors: int, total: int = 1000, binding: bool = True) -> float:
        """One control interval of samples, then its evaluation; returns the limit."""
        self.limiter.observe(errors=errors, total=total, denied=int(binding))
        self.clock.advance(1.0)
        self.limiter.update()
        return self.limiter.limit


def test_overspending_the_budget_tightens_multiplicatively_and_reports_it() -> None:
    h = Harness()
    assert h.interval(errors=50) == pytest.approx(70.0)  # 5% errors: burn 5 > 1
    [change] = h.changes
    assert (change.time, change.old, change.reason, change.bad, change.total) == (
        1.0,
        100.0,
        "tighten",
        50,
        1000,
    )
    assert change.new == pytest.approx(70.0)
    assert change.burn_rate == pytest.approx(5.0)
    assert h.limiter.changes == [change]
    assert h.limiter.history == [(0.0, 100.0), (1.0, pytest.approx(70.0))]
    assert h.limiter.ceiling == 100.0


def test_inside_the_dead_band_nothing_moves() -> None:
    h = Harness()
    for _ in range(10):
        assert h.interval(errors=7) == 100.0  # burn 0.7: between relax (0.5) and tighten (1)
    assert h.changes == []
    assert h.limiter.burn_rate == pytest.approx(0.7)


def test_relaxing_needs_a_binding_limit_and_moves_in_bounded_steps() -> None:
    h = Harness(increase=50.0, max_relax=0.1)
    assert h.interval(errors=0, binding=False) == 100.0  # healthy but nobody was denied
    assert h.interval(errors=0) == pytest.approx(110.0)  # +50 asked, 10% of 100 allowed
    assert h.changes[-1].reason == "relax"


def test_the_limit_stays_within_its_bounds() -> None:
    h = Harness(
        initial=20.0, min_limit=15.0, max_limit=25.0, increase=5.0, max_relax=1.0, probe_after=0.0
    )
    assert h.interval(errors=500) == 15.0
    assert h.interval(errors=500) == 15.0
    for _ in range(5):
        h.interval(errors=0)
    assert h.limiter.limit == 25.0


def test_changes_are_at_least_a_cooldown_apart() -> None:
    h = Harness(cooldown=3.0)
    limits = [h.interval(errors=500) for _ in range(7)]
    assert limits == pytest.approx([70.0, 70.0, 70.0, 49.0, 49.0, 49.0, 34.3])


def test_relaxing_stops_below_the_ceiling_until_it_expires() -> None:
    h = Harness(increase=5.0, headroom=0.1, probe_after=10.0)
    h.interval(errors=500)  # tighten at t=1 from 100: ceiling 100, limit 70
    limits = [h.interval(errors=0) for _ in range(9)]  # t = 2..10
    assert max(limits) == pytest.approx(90.0)  # ceiling * (1 - headroom)
    assert limits[-3:] == pytest.approx([90.0] * 3)
    assert h.limiter.ceiling == 100.0
    assert h.interval(errors=0) == pytest.approx(95.0)  # t=11: the ceiling expired, a probe
    assert h.limiter.ceiling is None
    assert h.interval(errors=0) == pytest.approx(100.0)


def test_a_failed_probe_doubles_the_wait_before_the_next() -> None:
    h = Harness(increase=10.0, headroom=0.1, probe_after=5.0, max_probe_after=100.0)
    h.interval(errors=500)  # t=1: ceiling 100 for 5 s
    while h.limiter.ceiling is not None:
        h.interval(errors=0)
    while h.limiter.limit <= 100.0:  # probing above the old ceiling...
        h.interval(errors=0)
    h.interval(errors=500)  # ...fails
    failed_at = h.clock.monotonic()
    held = 0
    while h.limiter.ceiling is not None:
        h.interval(errors=0)
        held += 1
    assert h.clock.monotonic() - failed_at == pytest.approx(10.0)
    assert held == 10


def test_samples_accumulate_until_there_are_enough() -> None:
    h = Harness(min_samples=100)
    assert h.interval(errors=5, total=50) == 100.0  # 50 samples: no evaluation
    assert h.limiter.burn_rate is None
    assert h.interval(errors=5, total=50) == pytest.approx(70.0)  # 10/100 over both intervals
    assert h.changes[0].total == 100


def test_slow_requests_spend_the_budget_when_the_slo_has_a_latency() -> None:
    h = Harness(slo=SLO(error_rate=0.05, latency=0.2))
    for i in range(100):
        h.limiter.record(True, latency=0.5 if i % 10 == 0 else 0.05)  # 10% slow
    h.clock.advance(1.0)
    h.limiter.update()
    assert h.limiter.limit == pytest.approx(70.0)
    assert h.changes[0].burn_rate == pytest.approx(2.0)

    fast = Harness(slo=SLO(error_rate=0.05))  # no latency objective: slow is fine
    for _ in range(100):
        fast.limiter.record(True, latency=0.5)
    fast.clock.advance(1.0)
    assert fast.limiter.update() is None


def test_acquire_admits_the_limit_and_keeps_backlog_across_a_change() -> None:
    clock = FakeClock()
    limiter = AdaptiveLimit(
        10.0,
        min_limit=1.0,
        max_limit=10.0,
        burst=2.0,
        decrease=0.5,
        min_samples=1,
        clock=clock.monotonic,
    )
    first = limiter.acquire("svc")
    assert first.allowed and first.limit == 20 and first.remaining == 19
    assert sum(limiter.acquire("svc").allowed for _ in range(25)) == 19
    denied = limiter.acquire("svc")
    assert not denied.allowed and denied.retry_after == pytest.approx(0.1)

    limiter.observe(errors=10, total=10)
    clock.advance(1.0)  # 1 s of the 2 s backlog is gone, then the limit halves to 5/s
    assert sum(limiter.acquire("svc").allowed for _ in range(20)) == 5
    assert limiter.limit == 5.0
    again = limiter.acquire("svc")
    assert not again.allowed and again.retry_after == pytest.approx(0.2)
    assert again.limit == 10


def test_other_keys_have_their_own_buckets() -> None:
    clock = FakeClock()
    limiter = AdaptiveLimit(5.0, min_limit=1.0, max_limit=5.0, burst=1.0, clock=clock.monotonic)
    assert sum(limiter.acquire("a").allowed for _ in range(10)) == 5
    assert sum(limiter.acquire("b").allowed for _ in range(10)) == 5


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"min_limit": 0.0, "max_limit": 10.0}, "min_limit"),
        ({"min_limit": 20.0, "max_limit": 10.0}, "max_limit"),
        ({"min_limit": 1.0, "max_limit": 10.0, "initial": 11.0}, "initial"),
        ({"min_limit": 1.0, "max_limit": 10.0, "relax_below": 1.0}, "dead band"),
        ({"min_limit": 1.0, "max_limit": 10.0, "decrease": 1.0}, "decrease"),
        ({"min_limit": 1.0, "max_limit": 10.0, "burst": 0.5}, "burst"),
        ({"min_limit": 1.0, "max_limit": 10.0, "min_samples": 0}, "min_samples"),
        ({"min_limit": 1.0, "max_limit": 10.0, "interval": math.inf}, "interval"),
    ],
)
def test_bad_parameters_are_refused(options: dict[str, object], needle: str) -> None:
    initial = options.pop("initial", None)
    with pytest.raises(InvalidInput, match=needle):
        AdaptiveLimit(initial, **options)  # type: ignore[arg-type]


def test_bad_signals_are_refused() -> None:
    limiter = AdaptiveLimit(min_limit=1.0, max_limit=10.0, clock=FakeClock().monotonic)
    with pytest.raises(InvalidInput, match="errors"):
        limiter.observe(errors=-1, total=10)
    with pytest.raises(InvalidInput, match="total"):
        limiter.observe(errors=0, total=1.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="cost"):
        limiter.acquire("k", -1)
    with pytest.raises(InvalidInput, match="error_rate"):
        SLO(error_rate=0.0)
    with pytest.raises(InvalidInput, match="latency"):
        SLO(latency=-1.0)
