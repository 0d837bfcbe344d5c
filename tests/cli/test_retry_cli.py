"""``trusswork retry schedule`` and ``simulate``: what they print, write and refuse."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from itertools import accumulate
from pathlib import Path

import pytest

from helpers import assert_one_error_line
from trusswork.cli import main
from trusswork.retry import Policy
from trusswork.retry.simulate import study


def retry_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["retry", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ---------------------------------------------------------------- schedule


def table(out: str) -> list[list[str]]:
    """The rows of the schedule table after its header (attempt 1 has no wait)."""
    lines = out.splitlines()
    return [line.split() for line in lines[3:-1]]


def test_schedule_prints_the_policy_waits_and_when_each_attempt_starts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = retry_cli(
        capsys,
        "schedule",
        "--attempts",
        "6",
        "--wait",
        "exponential",
        "--wait-initial",
        "0.1",
        "--jitter",
        "full",
        "--seed",
        "1",
    )
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "exponential backoff from 0.1 s up to 10 s, full jitter, seed 1"
    assert lines[2].split() == ["1", "0.000"]
    policy = Policy(wait_initial=0.1, jitter="full", seed=1)
    expected, previous = [], policy.wait_initial
    for retry in range(1, 6):
        previous = policy.next_wait(retry, previous)
        expected.append(previous)
    rows = table(out)
    assert [row[0] for row in rows] == ["2", "3", "4", "5", "6"]
    assert [row[1] for row in rows] == [
        "0.000-0.100",
        "0.000-0.200",
        "0.000-0.400",
        "0.000-0.800",
        "0.000-1.600",
    ]
    assert [row[2] for row in rows] == [f"{wait:.3f}" for wait in expected]
    assert [row[3] for row in rows] == [f"{at:.3f}" for at in accumulate(expected)]
    assert lines[-1] == f"6 calls; {sum(expected):.3f} s spent waiting if every call fails"


def test_schedule_without_jitter_doubles_up_to_the_cap(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = retry_cli(
        capsys, "schedule", "--jitter", "none", "--attempts", "6", "--wait-max", "1"
    )
    assert code == 0
    assert [row[1:] for row in table(out)] == [
        ["0.100", "0.100"],
        ["0.200", "0.300"],
        ["0.400", "0.700"],
        ["0.800", "1.500"],
        ["1.000", "2.500"],
    ]


def test_schedule_json_holds_every_retry(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = retry_cli(
        capsys, "schedule", "--jitter", "decorrelated", "--seed", "4", "--attempts", "4", "--json"
    )
    assert code == 0
    document = json.loads(out)
    assert document["jitter"] == "decorrelated"
    retries = document["retries"]
    assert [retry["attempt"] for retry in retries] == [2, 3, 4]
    previous = 0.1
    for retry in retries:
        # Decorrelated jitter draws from [wait_initial, 3 x the previous wait].
        assert retry["low"] == 0.1
        assert retry["high"] == pytest.approx(min(10.0, 3 * previous))
        assert retry["low"] <= retry["wait"] <= retry["high"]
        previous = retry["wait"]
    assert retries[-1]["at"] == pytest.approx(sum(retry["wait"] for retry in retries))


def test_same_seed_same_schedule(capsys: pytest.CaptureFixture[str]) -> None:
    first = retry_cli(capsys, "schedule", "--seed", "9", "--jitter", "equal")
    assert retry_cli(capsys, "schedule", "--seed", "9", "--jitter", "equal") == first


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["--wait-max", "0.05"], ["--wait-max 0.05 is below --wait-initial 0.1"]),
        (["--wait-multiplier", "0.5"], ["--wait-multiplier must be a finite number >= 1"]),
        (["--attempts", "0"], ["argument --attempts", "must be 1 or more"]),
        (["--wait-initial", "-1"], ["argument --wait-initial", "finite number >= 0"]),
        (["--jitter", "half"], ["argument --jitter", "invalid choice"]),
        (["--seed", "x"], ["argument --seed", "expected a whole number"]),
    ],
)
def test_schedule_refuses_bad_arguments_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], fragments: list[str]
) -> None:
    code, out, err = retry_cli(capsys, "schedule", *argv)
    assert (code, out) == (2, "")
    assert_one_error_line(err, *fragments)


# ---------------------------------------------------------------- simulate


def test_simulate_json_matches_the_study(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = retry_cli(capsys, "simulate", "--clients", "10,20", "--seeds", "2", "--json")
    assert code == 0
    document = json.loads(out)
    assert document["seeds"] == 2
    assert document["model"] == {"base": 0.005, "cap": 1.0, "slot": 0.01, "spread": 0.2}
    expected = study([10, 20], seeds=range(2))
    assert [
        (row["strategy"], row["clients"], row["calls"], row["completion_time"])
        for row in document["rows"]
    ] == [(row.strategy, row.clients, row.calls, row.completion_time) for row in expected]


def test_simulate_table_shows_the_study_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = retry_cli(capsys, "simulate", "--clients", "10..100:10", "--seeds", "5")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "total calls, mean of 5 seeds"
    header = "clients no jitter full jitter equal jitter decorrelated jitter"
    assert lines[1].split() == header.split()
    assert [line.split()[0] for line in lines[2:13]] == [str(n) for n in range(10, 101, 10)] + [
        "sum"
    ]
    assert "seconds until every client is done, mean of 5 seeds" in lines
    assert lines[-1] == "least work: full jitter; soonest done: decorrelated jitter"


def test_simulate_runs_only_the_strategies_asked_for(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = retry_cli(
        capsys, "simulate", "--clients", "5..15:5", "--seeds", "1", "--strategies", "full,none"
    )
    assert code == 0
    assert out.splitlines()[1].split() == ["clients", "full", "jitter", "no", "jitter"]
    assert [line.split()[0] for line in out.splitlines()[2:6]] == ["5", "10", "15", "sum"]


def test_simulate_writes_a_small_reproducible_svg_plot(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = ["simulate", "--clients", "10..50:10", "--seeds", "2", "--plot"]
    first, second = tmp_path / "a" / "jitter.svg", tmp_path / "jitter.svg"
    code, out, _ = retry_cli(capsys, *argv, str(first))
    assert code == 0
    assert out.splitlines()[-1] == f"plot: {first}"
    assert retry_cli(capsys, *argv, str(second))[0] == 0
    svg = first.read_text(encoding="utf-8")
    assert "<svg" in svg
    for label in ("no jitter", "full jitter", "equal jitter", "decorrelated jitter", "total calls"):
        assert label in svg
    assert len(svg.encode()) < 200_000
    assert second.read_bytes() == first.read_bytes()


def test_simulate_writes_png(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "jitter.png"
    code, _, _ = retry_cli(
        capsys, "simulate", "--clients", "5,10", "--seeds", "1", "--plot", str(path), "--json"
    )
    assert code == 0
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["--plot", "out.pdf"], ["--plot out.pdf", "must end in .svg or .png"]),
        (["--clients", "20..10"], ["argument --clients", "START is above STOP"]),
        (["--clients", "0..10"], ["argument --clients", "1 or more"]),
        (["--clients", "a..b"], ["argument --clients", "START..STOP[:STEP]"]),
        (["--clients", "1..10:0"], ["argument --clients", "STEP must be 1 or more"]),
        (["--seeds", "0"], ["argument --seeds", "must be 1 or more"]),
        (["--strategies", "full,half"], ["argument --strategies", "unknown strategy 'half'"]),
        (["--cap", "0"], ["argument --cap", "more than 0"]),
        (["--base", "2", "--cap", "1"], ["--base 2 is above --cap 1"]),
    ],
)
def test_simulate_refuses_bad_arguments_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], fragments: list[str]
) -> None:
    code, out, err = retry_cli(capsys, "simulate", "--clients", "5", "--seeds", "1", *argv)
    assert (code, out) == (2, "")
    assert_one_error_line(err, *fragments)


def test_retry_help_imports_no_heavy_library() -> None:
    script = textwrap.dedent(
        """
        import contextlib, io, sys
        from trusswork.cli import main
        for argv in (["retry", "--help"], ["retry", "simulate", "--help"]):
            with contextlib.redirect_stdout(io.StringIO()):
                assert main(argv) == 0, argv
        heavy = {"numpy", "rich", "matplotlib"}
        print(sorted(name for name in sys.modules if name.split(".")[0] in heavy))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]"
