"""The jitter study reproduces AWS's "Exponential Backoff and Jitter" result with our policies."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from trusswork.core.errors import InvalidInput
from trusswork.retry import simulate as simulation
from trusswork.retry.simulate import (
    STRATEGIES,
    Strategy,
    StudyRow,
    policy_for,
    simulate,
    study,
    totals,
)


@pytest.fixture(scope="module")
def sums() -> dict[Strategy, tuple[float, float]]:
    """A moderately sized study: 10..100 clients, 10 seeds (a fraction of a second)."""
    return totals(study(range(10, 101, 10), seeds=range(10)))


def test_no_jitter_is_by_far_the_worst_in_calls_and_time(
    sums: dict[Strategy, tuple[float, float]],
) -> None:
    none_calls, none_time = sums["none"]
    for strategy in ("full", "equal", "decorrelated"):
        calls, seconds = sums[strategy]
        assert none_calls > 2 * calls, strategy
        assert none_time > 5 * seconds, strategy


def test_full_and_decorrelated_jitter_do_far_less_work_than_no_jitter(
    sums: dict[Strategy, tuple[float, float]],
) -> None:
    assert sums["full"][0] < sums["none"][0] / 2
    assert sums["decorrelated"][0] < sums["none"][0] / 2


def test_full_jitter_does_the_least_work_and_equal_jitter_takes_longer(
    sums: dict[Strategy, tuple[float, float]],
) -> None:
    assert sums["full"][0] < sums["equal"][0]
    assert sums["full"][0] == min(calls for calls, _ in sums.values())
    assert sums["equal"][1] > sums["full"][1]
    # The post: full jitter does less work than decorrelated but takes slightly longer.
    assert sums["decorrelated"][1] < sums["full"][1]


def test_without_jitter_one_client_wins_per_round() -> None:
    # With a fixed round trip, clients that collide retry in lockstep forever after.
    for clients in (1, 2, 5, 30):
        result = simulate("none", clients, seed=3, spread=0)
        assert result.calls == clients * (clients + 1) // 2


def test_waits_come_from_the_policy_schedule() -> None:
    # Two clients, fixed 10 ms round trip: one commits at 10 ms, the other waits the
    # policy's first wait (base, 5 ms), reads at 15 ms and commits at 25 ms.
    result = simulate("none", 2, seed=0, spread=0, base=0.005, slot=0.010)
    assert result.calls == 3
    assert result.completion_time == pytest.approx(0.025)
    assert policy_for("none", seed=0, base=0.005).base_wait(1) == 0.005
    assert policy_for("none", seed=0).jitter is None
    assert policy_for("decorrelated", seed=0).jitter == "decorrelated"


def test_one_client_makes_one_call_within_one_round_trip() -> None:
    result = simulate("full", 1, seed=5)
    assert result.calls == 1
    assert 0.008 <= result.completion_time <= 0.012


def test_runs_are_reproducible_from_the_seed() -> None:
    first = simulate("equal", 40, seed=11)
    assert simulate("equal", 40, seed=11) == first
    assert simulate("equal", 40, seed=12) != first


def test_every_client_commits_so_calls_are_at_least_clients() -> None:
    for strategy in STRATEGIES:
        result = simulate(strategy, 25, seed=1)
        assert result.calls >= 25
        assert math.isfinite(result.completion_time) and result.completion_time > 0


def test_study_rows_are_means_in_the_order_given() -> None:
    rows = study([20, 5], ["equal", "none"], seeds=[1, 2])
    assert [(row.strategy, row.clients, row.seeds) for row in rows] == [
        ("equal", 20, 2),
        ("equal", 5, 2),
        ("none", 20, 2),
        ("none", 5, 2),
    ]
    runs = [simulate("equal", 20, seed=seed) for seed in (1, 2)]
    assert rows[0] == StudyRow(
        "equal",
        20,
        sum(run.calls for run in runs) / 2,
        sum(run.completion_time for run in runs) / 2,
        2,
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: simulate("half", 3, seed=0), "strategy must be one of"),  # type: ignore[arg-type]
        (lambda: simulate("full", 0, seed=0), "clients must be an integer >= 1"),
        (lambda: simulate("full", 3, seed=0, spread=1.0), "spread= must be"),
        (lambda: simulate("full", 3, seed=0, slot=0), "slot= must be"),
        (lambda: simulate("full", 3, seed=0, base=2.0, cap=1.0), "wait_max=1.0 is below"),
        (lambda: study([]), "needs at least one"),
        (lambda: study([5], seeds=[]), "needs at least one"),
        (lambda: study([5], ["full", "nope"]), "strategy must be one of"),  # type: ignore[list-item]
    ],
)
def test_bad_arguments_raise_invalid_input(call: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        call()  # type: ignore[operator]


def test_a_run_that_crawls_is_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(simulation, "MAX_CALLS_PER_CLIENT", 1)
    with pytest.raises(InvalidInput, match="made over 2 calls"):
        simulate("none", 2, seed=0)


def test_importing_the_simulation_loads_no_heavy_library() -> None:
    code = (
        "import sys, trusswork.retry.simulate; "
        "print(sorted({'numpy', 'matplotlib'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_the_docs_table_is_what_the_default_study_gives() -> None:
    # docs/retry/jitter.md shows `trusswork retry simulate` with its defaults.
    page = Path(__file__).resolve().parents[2] / "docs" / "retry" / "jitter.md"
    lines = page.read_text(encoding="utf-8").splitlines()
    table = [line for line in lines if re.match(r"\| (\d+|sum \(5\.\.100\)) \|", line)]
    rows = study(range(5, 101, 5), seeds=range(20))
    by_key = {(row.strategy, row.clients): row for row in rows}
    sums = totals(rows)
    expected = []
    for line in table:
        label = line.split("|")[1].strip()
        cells = []
        for strategy in STRATEGIES:
            if label.isdigit():
                row = by_key[(strategy, int(label))]
                calls, seconds = row.calls, row.completion_time
            else:
                calls, seconds = sums[strategy]
            cells += [f"{calls:,.0f}", f"{seconds:.2f}"]
        expected.append(f"| {label} | " + " | ".join(cells) + " |")
    assert len(table) == 7
    assert table == expected
