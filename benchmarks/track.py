"""Track how much faster trusswork is than its peers, and fail when a ratio drops below its floor.

Every benchmark group holds our implementation (``extra_info["impl"] ==
"trusswork"``) and its peers, measured in the same run on the same data. For
each peer this script computes ``ratio = peer_time / our_time`` (above 1: we are
faster) from the *minimum* round time of each side. For CPU-bound kernels
noise on a shared machine only ever adds time (preemption, cache evictions by
neighbours), so the minimum is the estimate least disturbed by it; the
median moves with the load of the other processes.

``benchmarks/floors.toml`` holds the lowest acceptable ratio per
``[<system>.<group>]`` and peer. Outcomes per (group, peer):

- ``ok``: ratio at or above its floor;
- ``BELOW FLOOR``: under the floor, and still under it when the group is
  measured once more with longer timings (the machine is shared and noisy;
  the second run's ratio is the one reported);
- ``untracked``: measured, but floors.toml names no floor (not a failure);
- ``peer missing``: the peer was skipped because it is not installed (the
  suite records this in the JSON; not a failure);
- ``VANISHED``: floors.toml names it but the run produced no result for us or
  the peer, so a benchmark was lost (a failure).

Usage::

    track.py [--quick] [--json PATH] [--floors PATH] [--report PATH] [SYSTEM ...]

Without ``--json`` it runs ``benchmarks/bench_<system>.py`` (every suite when
no SYSTEM is named) under pytest-benchmark in a subprocess; ``--quick`` passes
short timing settings and ``TRUSSWORK_BENCH_QUICK=1`` so suites shrink their
inputs. With ``--json`` it checks an existing pytest-benchmark JSON (``make
bench`` writes reports/bench.json) and re-measures nothing. The table goes to
stdout and, as Markdown, to reports/bench-check.md. Exit status: 0 all floors
met, 1 a floor was missed or a tracked benchmark vanished, 2 the benchmarks
could not be run or read.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "benchmarks"
DEFAULT_FLOORS = BENCH_DIR / "floors.toml"
DEFAULT_REPORT = ROOT / "reports" / "bench-check.md"

OURS = "trusswork"
MISSING_PEERS_KEY = "trusswork_missing_peers"  # written by benchmarks/conftest.py

QUICK_ENV = "TRUSSWORK_BENCH_QUICK"
# pytest-benchmark timing options by (quick, re-measure); a re-measurement takes longer.
TIMING = {
    (False, False): (),
    (False, True): ("--benchmark-max-time=2.0",),
    (True, False): ("--benchmark-max-time=0.25", "--benchmark-min-rounds=5"),
    (True, True): ("--benchmark-max-time=0.5", "--benchmark-min-rounds=10"),
}

OK = "ok"
BELOW = "BELOW FLOOR"
UNTRACKED = "untracked"
PEER_MISSING = "peer missing"
VANISHED = "VANISHED"
FAILING = frozenset({BELOW, VANISHED})

GroupKey = tuple[str, str]  # (system, group)
Floors = dict[str, dict[str, dict[str, float]]]  # system -> group -> peer -> floor
#: runner(systems, quick, tests) -> pytest-benchmark JSON; tests are node ids to run alone.
Runner = Callable[[Sequence[str], bool, Sequence[str] | None], dict[str, Any]]


class TrackError(Exception):
    """The benchmarks could not be run, or their results or floors could not be read."""


@dataclass(frozen=True)
class Measurement:
    """One implementation's timing in one group (seconds per call)."""

    system: str
    group: str
    impl: str
    min: float
    median: float
    rounds: int
    test: str  # pytest node id, to re-run this benchmark alone


@dataclass
class Results:
    """Measurements by (system, group) and impl, and the peers skipped as not installed."""

    measurements: dict[GroupKey, dict[str, Measurement]]
    missing: dict[GroupKey, dict[str, str]]  # impl -> reason

    def systems(self) -> set[str]:
        return {system for system, _ in [*self.measurements, *self.missing]}


@dataclass(frozen=True)
class Row:
    """One line of the report: a peer of one group, or a group's lone result."""

    system: str
    group: str
    peer: str
    ours: float | None
    theirs: float | None
    ratio: float | None
    floor: float | None
    status: str
    note: str = ""

    @property
    def failed(self) -> bool:
        return self.status in FAILING


# ---------------------------------------------------------------- reading


def system_of(node_id: str) -> str:
    """``core`` for ``benchmarks/bench_core.py::test_x[...]``."""
    stem = Path(node_id.split("::", 1)[0]).stem
    return stem.removeprefix("bench_")


def load_results(data: dict[str, Any]) -> Results:
    """Group a pytest-benchmark JSON document by (system, group) and impl.

    A benchmark without ``extra_info["impl"]`` counts under its test name.
    Should one impl appear twice in a group, the faster measurement wins.
    """
    measurements: dict[GroupKey, dict[str, Measurement]] = {}
    try:
        for bench in data["benchmarks"]:
            node_id = bench["fullname"]
            impl = bench.get("extra_info", {}).get("impl") or bench["name"]
            stats = bench["stats"]
            found = Measurement(
                system=system_of(node_id),
                group=bench.get("group") or bench["name"],
                impl=impl,
                min=float(stats["min"]),
                median=float(stats["median"]),
                rounds=int(stats["rounds"]),
                test=node_id,
            )
            impls = measurements.setdefault((found.system, found.group), {})
            if impl not in impls or found.min < impls[impl].min:
                impls[impl] = found
        missing: dict[GroupKey, dict[str, str]] = {}
        for entry in data.get(MISSING_PEERS_KEY, []):
            key = (system_of(entry["test"]), entry["group"])
            missing.setdefault(key, {})[entry["impl"]] = entry["reason"]
    except (KeyError, TypeError, ValueError) as exc:
        raise TrackError(f"not a pytest-benchmark JSON document: missing or bad {exc}") from None
    return Results(measurements, missing)


def remeasured(first: Results, second: Results) -> Results:
    """``first`` with every group that ``second`` measured replaced by ``second``'s numbers.

    A ratio compares two implementations measured side by side under the same
    load, so a re-measured group takes all its numbers from the new run rather
    than mixing the best of each run.
    """
    measurements = {**first.measurements, **second.measurements}
    missing = {key: dict(peers) for key, peers in first.missing.items()}
    for key, peers in second.missing.items():
        missing.setdefault(key, {}).update(peers)
    return Results(measurements, missing)


def load_floors(path: Path) -> Floors:
    """Read floors.toml: ``[<system>.<group>]`` tables of ``peer = minimum ratio``."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise TrackError(f"{path}: cannot read floors: {exc}") from None
    floors: Floors = {}
    for system, groups in document.items():
        if not isinstance(groups, dict):
            raise TrackError(f"{path}: {system!r} must be a table of [{system}.<group>] tables")
        for group, peers in groups.items():
            if not isinstance(peers, dict):
                raise TrackError(f"{path}: [{system}.{group}] must be a table of peer = ratio")
            for peer, floor in peers.items():
                if isinstance(floor, bool) or not isinstance(floor, int | float) or floor <= 0:
                    raise TrackError(
                        f"{path}: [{system}.{group}] {peer} = {floor!r}: a floor is a positive "
                        f"number, the lowest acceptable peer_time / our_time"
                    )
                floors.setdefault(system, {}).setdefault(group, {})[peer] = float(floor)
    return floors


# ---------------------------------------------------------------- judging


def evaluate(results: Results, floors: Floors, systems: Iterable[str] | None = None) -> list[Row]:
    """One row per (group, peer) of the given systems (default: all in results or floors)."""
    wanted = set(systems) if systems is not None else results.systems() | set(floors)
    keys = {key for key in [*results.measurements, *results.missing] if key[0] in wanted}
    keys |= {(system, group) for system in wanted for group in floors.get(system, {})}
    rows = []
    for system, group in sorted(keys):
        impls = results.measurements.get((system, group), {})
        missing = results.missing.get((system, group), {})
        group_floors = floors.get(system, {}).get(group, {})
        ours = impls.get(OURS)
        peers = sorted((set(impls) | set(missing) | set(group_floors)) - {OURS})
        if not peers:
            rows.append(
                Row(
                    system,
                    group,
                    "-",
                    ours.min if ours else None,
                    None,
                    None,
                    None,
                    UNTRACKED,
                    "no peer in this group",
                )
            )
        for peer in peers:
            rows.append(
                _judge(
                    system,
                    group,
                    peer,
                    ours,
                    impls.get(peer),
                    group_floors.get(peer),
                    missing.get(peer),
                )
            )
    return rows


def _judge(
    system: str,
    group: str,
    peer: str,
    ours: Measurement | None,
    theirs: Measurement | None,
    floor: float | None,
    missing_reason: str | None,
) -> Row:
    our_time = ours.min if ours else None
    their_time = theirs.min if theirs else None
    if missing_reason is not None and theirs is None:
        return Row(system, group, peer, our_time, None, None, floor, PEER_MISSING, missing_reason)
    if ours is None or theirs is None:
        if ours is None and theirs is None:
            note = "no benchmark of this group produced a result"
        elif ours is None:
            note = "our benchmark produced no result"
        else:
            note = "the peer's benchmark produced no result"
        status = UNTRACKED if floor is None else VANISHED
        return Row(system, group, peer, our_time, their_time, None, floor, status, note)
    ratio = theirs.min / ours.min
    if floor is None:
        return Row(system, group, peer, our_time, their_time, ratio, None, UNTRACKED)
    status = OK if ratio >= floor else BELOW
    return Row(system, group, peer, our_time, their_time, ratio, floor, status)


def groups_below(rows: Iterable[Row]) -> set[GroupKey]:
    return {(row.system, row.group) for row in rows if row.status == BELOW}


def check(
    systems: Sequence[str], floors: Floors, runner: Runner, *, quick: bool
) -> tuple[list[Row], Results]:
    """Measure, judge, re-measure the groups below their floor once, and judge again."""
    results = load_results(runner(systems, quick, None))
    rows = evaluate(results, floors, systems)
    retry = groups_below(rows)
    if not retry:
        return rows, results
    tests = sorted(
        measurement.test for key in retry for measurement in results.measurements[key].values()
    )
    again = load_results(runner(systems, quick, tests))
    results = remeasured(results, again)
    first = {_row_key(row): row.ratio for row in rows}
    rows = [
        replace(row, note=_join(row.note, _remeasure_note(first.get(_row_key(row)))))
        if (row.system, row.group) in retry
        else row
        for row in evaluate(results, floors, systems)
    ]
    return rows, results


def _row_key(row: Row) -> tuple[str, str, str]:
    return row.system, row.group, row.peer


def _remeasure_note(first_ratio: float | None) -> str:
    if first_ratio is None:
        return "re-measured"
    return f"re-measured (first run {format_ratio(first_ratio)})"


def _join(*notes: str) -> str:
    return "; ".join(note for note in notes if note)


# ---------------------------------------------------------------- rendering

HEADER = ("system", "group", "peer", "ours", "peer time", "ratio", "floor", "status", "note")


def format_seconds(seconds: float | None) -> str:
    """``1.23 ms``: three significant digits in the unit that fits."""
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def format_ratio(ratio: float | None) -> str:
    if ratio is None:
        return "-"
    return f"{ratio:.2f}x" if ratio < 10 else f"{ratio:.1f}x"


def format_floor(floor: float | None) -> str:
    return "-" if floor is None else f">= {floor:g}x"


def _cells(row: Row) -> tuple[str, ...]:
    return (
        row.system,
        row.group,
        row.peer,
        format_seconds(row.ours),
        format_seconds(row.theirs),
        format_ratio(row.ratio),
        format_floor(row.floor),
        row.status,
        row.note,
    )


def render_table(rows: Sequence[Row]) -> str:
    """The rows as an aligned plain-text table."""
    lines = [HEADER, *(_cells(row) for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER))]
    text = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    ]
    text.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(text)


def summary(rows: Sequence[Row]) -> str:
    failed = [row for row in rows if row.failed]
    counts = {
        status: sum(row.status == status for row in rows)
        for status in (OK, BELOW, VANISHED, UNTRACKED, PEER_MISSING)
    }
    text = ", ".join(f"{count} {status}" for status, count in counts.items() if count)
    return f"{'FAIL' if failed else 'PASS'}: {text or 'no benchmarks'}"


def render_markdown(rows: Sequence[Row], *, mode: str, command: str) -> str:
    """The report written to reports/bench-check.md."""
    escape = str.maketrans({"|": "\\|"})
    lines = [
        "# Benchmark check",
        "",
        f"Mode: {mode}. Ratio = peer time / our time, from the minimum round time of each",
        "side (above 1: trusswork is faster). Floors: `benchmarks/floors.toml`.",
        "",
        f"Command: `{command}`",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join("---" for _ in HEADER) + "|",
    ]
    lines += [
        "| " + " | ".join(cell.translate(escape) for cell in _cells(row)) + " |" for row in rows
    ]
    lines += ["", f"**{summary(rows)}**", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------- running


def discover_systems() -> list[str]:
    """Systems with a suite: ``core`` for ``benchmarks/bench_core.py``."""
    return sorted(path.stem.removeprefix("bench_") for path in BENCH_DIR.glob("bench_*.py"))


def run_pytest(systems: Sequence[str], quick: bool, tests: Sequence[str] | None) -> dict[str, Any]:
    """Run the suites of ``systems`` (or only the node ids ``tests``) and return their JSON."""
    targets = list(tests) if tests else [f"benchmarks/bench_{system}.py" for system in systems]
    env = dict(os.environ)
    env[QUICK_ENV] = "1" if quick else "0"
    timing = TIMING[quick, bool(tests)]
    what = f"re-measuring {len(targets)} benchmarks" if tests else "running " + " ".join(targets)
    print(f"{what} ({'quick' if quick else 'full'} mode) ...", file=sys.stderr, flush=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="trusswork-bench-") as tmp:
        output = Path(tmp) / "bench.json"
        command = [
            sys.executable,
            "-m",
            "pytest",
            *targets,
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "python_files=bench_*.py",
            f"--benchmark-json={output}",
            *timing,
        ]
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        if done.returncode != 0 or not output.exists():
            sys.stderr.write(done.stdout + done.stderr)
            raise TrackError(
                f"benchmark run failed (pytest exit {done.returncode}): {' '.join(command)}"
            )
        data: dict[str, Any] = json.loads(output.read_text(encoding="utf-8"))
    print(f"  done in {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    return data


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="track.py",
        description="Check peer_time / our_time of every benchmark group against floors.toml.",
    )
    parser.add_argument(
        "systems",
        nargs="*",
        metavar="SYSTEM",
        help="suites to check (bench_<SYSTEM>.py); default: all",
    )
    parser.add_argument(
        "--quick", action="store_true", help="short timings and smaller inputs (what CI runs)"
    )
    parser.add_argument(
        "--json",
        type=Path,
        metavar="PATH",
        help="check this pytest-benchmark JSON instead of running",
    )
    parser.add_argument("--floors", type=Path, default=DEFAULT_FLOORS, metavar="PATH")
    parser.add_argument(
        "--report",
        type=Path,
        default=DEFAULT_REPORT,
        metavar="PATH",
        help="where to write the Markdown table (default reports/bench-check.md)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, runner: Runner = run_pytest) -> int:
    args = parse_args(argv)
    command = "track.py " + " ".join(sys.argv[1:] if argv is None else argv)
    try:
        floors = load_floors(args.floors)
        if args.json is not None:
            try:
                data = json.loads(args.json.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise TrackError(f"{args.json}: cannot read: {exc}") from None
            results = load_results(data)
            systems = args.systems or sorted(results.systems() | set(floors))
            rows = evaluate(results, floors, systems)
            mode = f"results of {args.json}"
        else:
            known = discover_systems()
            unknown = sorted(set(args.systems) - set(known))
            if unknown:
                raise TrackError(
                    f"no benchmarks/bench_<system>.py for {', '.join(unknown)}; "
                    f"suites: {', '.join(known) or 'none'}"
                )
            systems = args.systems or known
            rows, _ = check(systems, floors, runner, quick=args.quick)
            mode = "quick (smaller inputs, short timings)" if args.quick else "full"
    except TrackError as exc:
        print(f"track.py: {exc}", file=sys.stderr)
        return 2
    print(render_table(rows))
    print(summary(rows))
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(render_markdown(rows, mode=mode, command=command), encoding="utf-8")
    return 1 if any(row.failed for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
