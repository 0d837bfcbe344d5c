"""benchmarks/track.py judges speed ratios correctly and fails exactly when it should.

The logic runs on synthetic pytest-benchmark JSON; the benchmark runner is
replaced by a fake so re-measurement can be steered. One test runs a real
pytest-benchmark session on a throwaway suite to check what
benchmarks/conftest.py adds: collection of ``bench_*.py`` and the record of
peers skipped as not installed.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load_track() -> ModuleType:
    spec = importlib.util.spec_from_file_location("benchmarks_track", ROOT / "benchmarks/track.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being created
    spec.loader.exec_module(module)
    return module


track = _load_track()


def entry(
    group: str, impl: str, min_s: float, *, median: float | None = None, system: str = "core"
) -> dict[str, Any]:
    """One benchmark of a pytest-benchmark JSON document."""
    name = f"test_{group.replace('-', '_')}[{impl}]"
    return {
        "name": name,
        "fullname": f"benchmarks/bench_{system}.py::{name}",
        "group": group,
        "extra_info": {"impl": impl},
        "stats": {"min": min_s, "median": median or min_s * 1.1, "rounds": 10},
    }


def document(*entries: dict[str, Any], missing: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    return {
        "benchmarks": list(entries),
        "trusswork_missing_peers": [
            {
                "group": group,
                "impl": impl,
                "reason": f"cannot import {impl}",
                "test": f"benchmarks/bench_core.py::test_x[{impl}]",
            }
            for group, impl in missing
        ],
    }


CRC_FLOORS = {"core": {"crc": {"peer": 0.9}}}


def judge(data: dict[str, Any], floors: dict[str, Any]) -> dict[tuple[str, str], Any]:
    rows = track.evaluate(track.load_results(data), floors)
    return {(row.group, row.peer): row for row in rows}


def test_ratio_is_peer_minimum_over_our_minimum() -> None:
    data = document(
        entry("crc", "trusswork", 1e-6, median=9e-6), entry("crc", "peer", 3e-6, median=3e-6)
    )
    row = judge(data, CRC_FLOORS)["crc", "peer"]
    assert row.ratio == pytest.approx(3.0)
    assert (row.ours, row.theirs) == (1e-6, 3e-6)
    assert row.status == track.OK
    assert not row.failed


def test_ratio_below_floor_fails_and_at_floor_passes() -> None:
    below = judge(document(entry("crc", "trusswork", 1.0), entry("crc", "peer", 0.89)), CRC_FLOORS)
    at = judge(document(entry("crc", "trusswork", 1.0), entry("crc", "peer", 0.9)), CRC_FLOORS)
    assert below["crc", "peer"].status == track.BELOW
    assert below["crc", "peer"].failed
    assert at["crc", "peer"].status == track.OK


def test_results_without_floor_are_untracked_not_failures() -> None:
    data = document(
        entry("crc", "trusswork", 1.0),
        entry("crc", "peer", 2.0),
        entry("crc", "newcomer", 0.1),
        entry("alone", "trusswork", 1.0),
    )
    rows = judge(data, CRC_FLOORS)
    assert rows["crc", "newcomer"].status == track.UNTRACKED
    assert rows["crc", "newcomer"].ratio == pytest.approx(0.1)
    assert rows["alone", "-"].status == track.UNTRACKED
    assert not any(row.failed for row in rows.values())


def test_floor_without_results_is_a_vanished_benchmark() -> None:
    floors = {"core": {"crc": {"peer": 0.9}, "gone": {"peer": 2.0}}}
    rows = judge(document(entry("crc", "trusswork", 1.0)), floors)
    assert rows["crc", "peer"].status == track.VANISHED  # the peer's benchmark was lost
    assert rows["gone", "peer"].status == track.VANISHED  # the whole group was lost
    assert rows["gone", "peer"].note == "no benchmark of this group produced a result"
    assert all(row.failed for row in rows.values())


def test_our_benchmark_vanishing_fails_a_tracked_group() -> None:
    rows = judge(document(entry("crc", "peer", 1.0)), CRC_FLOORS)
    assert rows["crc", "peer"].status == track.VANISHED
    assert "our benchmark" in rows["crc", "peer"].note


def test_peer_skipped_as_not_installed_is_reported_not_failed() -> None:
    data = document(entry("crc", "trusswork", 1.0), missing=[("crc", "peer")])
    row = judge(data, CRC_FLOORS)["crc", "peer"]
    assert row.status == track.PEER_MISSING
    assert row.note == "cannot import peer"
    assert not row.failed


def test_floors_only_apply_to_the_systems_checked() -> None:
    floors = {"core": {"crc": {"peer": 0.9}}, "tsdb": {"gorilla": {"peer": 3.0}}}
    results = track.load_results(
        document(entry("crc", "trusswork", 1.0), entry("crc", "peer", 1.0))
    )
    checked = track.evaluate(results, floors, ["core"])
    everything = track.evaluate(results, floors)
    assert [row.group for row in checked] == ["crc"]
    assert [(row.group, row.status) for row in everything if row.system == "tsdb"] == [
        ("gorilla", track.VANISHED)
    ]


def test_system_comes_from_the_benchmark_file() -> None:
    assert track.system_of("benchmarks/bench_core.py::test_crc32c[trusswork-1MiB]") == "core"
    assert track.system_of("bench_tsdb.py::test_x") == "tsdb"


def test_load_results_keeps_the_faster_of_duplicate_measurements() -> None:
    results = track.load_results(document(entry("crc", "peer", 2.0), entry("crc", "peer", 1.5)))
    assert results.measurements["core", "crc"]["peer"].min == 1.5


def test_load_results_rejects_other_json() -> None:
    with pytest.raises(track.TrackError, match="not a pytest-benchmark JSON"):
        track.load_results({"machine_info": {}})


def test_load_floors_reads_nested_system_group_tables(tmp_path: Path) -> None:
    path = tmp_path / "floors.toml"
    path.write_text("[core.crc32c-1MiB]\ncrc32c = 0.9\ngoogle-crc32c = 1\n", encoding="utf-8")
    assert track.load_floors(path) == {
        "core": {"crc32c-1MiB": {"crc32c": 0.9, "google-crc32c": 1.0}}
    }


@pytest.mark.parametrize(
    "text",
    ["[core.g]\npeer = 0\n", "[core.g]\npeer = 'fast'\n", "[core.g]\npeer = true\n", "core = 1\n"],
)
def test_load_floors_rejects_what_is_not_a_positive_floor(tmp_path: Path, text: str) -> None:
    path = tmp_path / "floors.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(track.TrackError):
        track.load_floors(path)


def test_the_repository_floors_file_is_valid() -> None:
    floors = track.load_floors(ROOT / "benchmarks/floors.toml")
    assert floors["core"]["varint-encode-1M"]["pure-python"] >= 20  # the requirement
    assert floors["core"]["varint-decode-1M"]["pure-python"] >= 20


class FakeRunner:
    """Stands in for pytest: returns prepared documents and records what it was asked."""

    def __init__(self, *documents: dict[str, Any]) -> None:
        self.documents = list(documents)
        self.calls: list[tuple[list[str], bool, list[str] | None]] = []

    def __call__(
        self, systems: Sequence[str], quick: bool, tests: Sequence[str] | None
    ) -> dict[str, Any]:
        self.calls.append((list(systems), quick, None if tests is None else list(tests)))
        return self.documents.pop(0)


FLOORS = {"core": {"crc": {"peer": 0.9}, "varint": {"peer": 20.0}}}


def slow_crc_run(crc_peer: float) -> dict[str, Any]:
    return document(
        entry("crc", "trusswork", 1.0),
        entry("crc", "peer", crc_peer),
        entry("varint", "trusswork", 1.0),
        entry("varint", "peer", 30.0),
    )


def test_check_runs_once_when_every_floor_is_met() -> None:
    runner = FakeRunner(slow_crc_run(1.0))
    rows, _ = track.check(["core"], FLOORS, runner, quick=True)
    assert runner.calls == [(["core"], True, None)]
    assert not any(row.failed for row in rows)


def test_check_remeasures_only_the_failing_group_and_passes_on_a_good_second_run() -> None:
    runner = FakeRunner(
        slow_crc_run(0.5), document(entry("crc", "trusswork", 1.0), entry("crc", "peer", 1.2))
    )
    rows, results = track.check(["core"], FLOORS, runner, quick=True)
    assert runner.calls[1] == (
        ["core"],
        True,
        [
            "benchmarks/bench_core.py::test_crc[peer]",
            "benchmarks/bench_core.py::test_crc[trusswork]",
        ],
    )
    crc = next(row for row in rows if row.group == "crc")
    assert crc.status == track.OK
    assert crc.ratio == pytest.approx(1.2)
    assert crc.note == "re-measured (first run 0.50x)"
    assert results.measurements["core", "varint"]["peer"].min == 30.0  # kept from the first run
    assert "re-measured" not in next(row for row in rows if row.group == "varint").note


def test_check_fails_when_the_second_run_is_still_below_the_floor() -> None:
    runner = FakeRunner(
        slow_crc_run(0.5), document(entry("crc", "trusswork", 1.0), entry("crc", "peer", 0.6))
    )
    rows, _ = track.check(["core"], FLOORS, runner, quick=False)
    assert len(runner.calls) == 2
    crc = next(row for row in rows if row.group == "crc")
    assert crc.status == track.BELOW
    assert crc.ratio == pytest.approx(0.6)  # the second run's


def test_vanished_benchmarks_are_not_remeasured() -> None:
    runner = FakeRunner(document(entry("crc", "trusswork", 1.0)))
    rows, _ = track.check(["core"], FLOORS, runner, quick=True)
    assert len(runner.calls) == 1
    assert {row.status for row in rows} == {track.VANISHED}


def test_format_seconds_picks_a_readable_unit() -> None:
    assert track.format_seconds(2.5) == "2.5 s"
    assert track.format_seconds(0.00123) == "1.23 ms"
    assert track.format_seconds(4.56e-5) == "45.6 µs"
    assert track.format_seconds(2.1e-7) == "210 ns"
    assert track.format_seconds(None) == "-"


def test_table_lines_up_columns_and_shows_every_row() -> None:
    rows = track.evaluate(track.load_results(slow_crc_run(0.5)), FLOORS)
    table = track.render_table(rows).splitlines()
    assert table[0].split() == [
        "system",
        "group",
        "peer",
        "ours",
        "peer",
        "time",
        "ratio",
        "floor",
        "status",
        "note",
    ]
    assert set(table[1]) <= {"-", " "}
    crc = next(line for line in table if " crc " in line)
    assert "0.50x" in crc and ">= 0.9x" in crc and "BELOW FLOOR" in crc
    ratio_column = table[0].index("ratio")
    assert all(
        line[ratio_column:].startswith(("0.50x", "30.0x", "ratio"))
        for line in table[2:] + table[:1]
    )
    assert track.summary(rows) == "FAIL: 1 ok, 1 BELOW FLOOR"


def test_markdown_report_is_a_table_with_one_line_per_row() -> None:
    rows = [track.Row("core", "g", "p", 1.0, 2.0, 2.0, 1.5, track.OK, "a | b")]
    text = track.render_markdown(rows, mode="quick", command="track.py --quick")
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert len(table) == 3
    assert table[2] == "| core | g | p | 1 s | 2 s | 2.00x | >= 1.5x | ok | a \\| b |"
    assert "**PASS: 1 ok**" in text


def test_main_checks_a_json_file_and_writes_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    floors = tmp_path / "floors.toml"
    floors.write_text("[core.crc]\npeer = 0.9\n", encoding="utf-8")
    results = tmp_path / "bench.json"
    report = tmp_path / "out" / "bench-check.md"
    results.write_text(json.dumps(slow_crc_run(2.0)), encoding="utf-8")
    args = ["--json", str(results), "--floors", str(floors), "--report", str(report)]
    assert track.main(args, runner=FakeRunner()) == 0
    assert "PASS: 1 ok, 1 untracked" in capsys.readouterr().out
    assert "| core | crc | peer |" in report.read_text(encoding="utf-8")
    results.write_text(json.dumps(slow_crc_run(0.5)), encoding="utf-8")
    assert track.main(args, runner=FakeRunner()) == 1


def test_main_runs_the_suites_through_the_runner(tmp_path: Path) -> None:
    floors = tmp_path / "floors.toml"
    floors.write_text("[core.crc]\npeer = 0.9\n", encoding="utf-8")
    runner = FakeRunner(slow_crc_run(1.0))
    report = tmp_path / "bench-check.md"
    assert (
        track.main(["--quick", "--floors", str(floors), "--report", str(report), "core"], runner)
        == 0
    )
    assert runner.calls == [(["core"], True, None)]
    assert "Mode: quick" in report.read_text(encoding="utf-8")


def test_main_refuses_unknown_systems_and_bad_floors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "r.md"
    assert track.main(["--report", str(report), "no-such-system"], FakeRunner()) == 2
    assert "no benchmarks/bench_<system>.py for no-such-system" in capsys.readouterr().err
    floors = tmp_path / "floors.toml"
    floors.write_text("[core.crc]\npeer = -1\n", encoding="utf-8")
    assert track.main(["--floors", str(floors), "--report", str(report)], FakeRunner()) == 2
    assert not report.exists()


FAKE_SUITE = """
import pytest

def square(x):
    return x * x

@pytest.mark.parametrize("impl", ["trusswork", "absent"])
def test_square(bench, scaled, impl):
    if impl == "absent":
        bench.missing("square", impl, "cannot import absent")
    assert bench("square", impl, square, scaled(100, 3)) == 9
"""


def test_conftest_collects_bench_files_once_and_records_missing_peers(tmp_path: Path) -> None:
    suite = tmp_path / "benchmarks"
    suite.mkdir()
    shutil.copy(ROOT / "benchmarks/conftest.py", suite / "conftest.py")
    (suite / "bench_fake.py").write_text(FAKE_SUITE, encoding="utf-8")
    output = tmp_path / "bench.json"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "benchmarks",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--benchmark-json={output}",
        "--benchmark-max-time=0.001",
    ]
    done = subprocess.run(
        command,
        cwd=tmp_path,
        env={"TRUSSWORK_BENCH_QUICK": "1", "PATH": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = track.evaluate(
        track.load_results(json.loads(output.read_text())), {"fake": {"square": {"absent": 2.0}}}
    )
    assert [(row.system, row.group, row.peer, row.status) for row in rows] == [
        ("fake", "square", "absent", track.PEER_MISSING)
    ]
    assert rows[0].ours is not None
