"""``trusswork retry``: look at retry policies and rerun the jitter study.

``trusswork retry schedule [--attempts N] [--wait KIND] [--wait-initial S]
[--wait-max S] [--wait-multiplier M] [--wait-increment S] [--jitter J]
[--seed N] [--json]`` prints the wait a :class:`~trusswork.retry.Policy`
takes before each retry, the wait before jitter, and the time since the
first call (the calls themselves taken as instant), so people can see what a
policy does before they ship it.

``trusswork retry simulate [--clients A..B[:STEP] | N,N,...] [--seeds K]
[--strategies S,S] [--base S] [--cap S] [--slot S] [--plot FILE] [--json]``
runs :func:`trusswork.retry.simulate.study`, AWS's "Exponential Backoff and
Jitter" contention experiment, prints the mean total calls and completion
time per strategy and client count, and with ``--plot`` writes the
two-panel figure (SVG or PNG, by the file's suffix). The default run (20
client counts, 20 seeds) takes a couple of seconds.

Bad values are usage errors (exit 2): argparse checks the form, and a
policy that :class:`~trusswork.retry.Policy` rejects (``--wait-max`` below
``--wait-initial``, say) is reported with the option names.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trusswork.cli._app import UsageError
from trusswork.cli._argtypes import whole_number

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from trusswork.retry import Policy
    from trusswork.retry.simulate import Strategy, StudyRow

#: ``--clients`` when not given: 5, 10, ..., 100.
DEFAULT_CLIENTS = "5..100:5"
DEFAULT_SEEDS = 20
#: The figure's file types, by suffix.
PLOT_SUFFIXES = (".svg", ".png")
#: Colours of the strategies in the plot (no jitter stands out in red).
COLORS = {
    "none": "#cf222e",
    "full": "#0969da",
    "equal": "#9a6700",
    "decorrelated": "#1a7f37",
}
_STRATEGY_NAMES = ("none", "full", "equal", "decorrelated")
#: A policy argument in one of Policy's messages (``wait_max=0.05``), to name its option.
_POLICY_ARGUMENT = re.compile(r"\b(attempts|wait_[a-z]+)=(\S*)")


_positive_int = whole_number(1)
_int = whole_number()


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def _positive_seconds(text: str) -> float:
    value = _seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text!r}")
    return value


def parse_clients(text: str) -> list[int]:
    """Client counts from ``A..B`` (every count), ``A..B:STEP`` or ``N,N,...``.

    ``B`` is included when the steps land on it (``5..100:5`` ends at 100).

    Raises
    ------
    argparse.ArgumentTypeError
        If the text has neither form, or a count is below 1.
    """
    form = "expected START..STOP[:STEP] (like 5..100:5) or a list (like 10,50,100)"
    try:
        if ".." in text:
            span, _, step_text = text.partition(":")
            start_text, _, stop_text = span.partition("..")
            start, stop = int(start_text), int(stop_text)
            step = int(step_text) if step_text else 1
            if step < 1:
                raise argparse.ArgumentTypeError(f"STEP must be 1 or more, got {text!r}")
            counts = list(range(start, stop + 1, step))
        else:
            counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{form}, got {text!r}") from None
    if not counts:
        raise argparse.ArgumentTypeError(f"no client counts in {text!r}: START is above STOP")
    if min(counts) < 1:
        raise argparse.ArgumentTypeError(f"client counts must be 1 or more, got {text!r}")
    return counts


def _strategies(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",")]
    unknown = [name for name in names if name not in _STRATEGY_NAMES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown strategy {unknown[0]!r}; choose from {', '.join(_STRATEGY_NAMES)}"
        )
    return list(dict.fromkeys(names))


def register(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="<action>", title="actions")
    actions.required = True
    schedule = actions.add_parser(
        "schedule",
        help="print the wait before each retry of a policy",
        description=(
            "Print the wait a retry policy takes before each retry, the wait before jitter, "
            "and the time since the first call (calls taken as instant)."
        ),
    )
    schedule.add_argument(
        "--attempts",
        type=_positive_int,
        default=6,
        metavar="N",
        help="calls in total, the first included (default: 6)",
    )
    schedule.add_argument(
        "--wait",
        choices=("constant", "linear", "exponential"),
        default="exponential",
        help="how the wait grows (default: exponential)",
    )
    schedule.add_argument(
        "--wait-initial",
        type=_seconds,
        default=0.1,
        metavar="S",
        help="first wait in seconds (default: 0.1)",
    )
    schedule.add_argument(
        "--wait-max",
        type=_seconds,
        default=10.0,
        metavar="S",
        help="longest wait in seconds (default: 10)",
    )
    schedule.add_argument(
        "--wait-multiplier",
        type=float,
        default=2.0,
        metavar="M",
        help="growth factor of exponential waits, >= 1 (default: 2)",
    )
    schedule.add_argument(
        "--wait-increment",
        type=_seconds,
        default=None,
        metavar="S",
        help="growth of linear waits in seconds (default: --wait-initial)",
    )
    schedule.add_argument(
        "--jitter",
        choices=_STRATEGY_NAMES,
        default="full",
        help="jitter of each wait; none for no jitter (default: full)",
    )
    schedule.add_argument(
        "--seed", type=_int, default=None, metavar="N", help="seed the jitter (default: random)"
    )
    schedule.add_argument("--json", action="store_true", help="print the schedule as JSON")
    simulate = actions.add_parser(
        "simulate",
        help="rerun AWS's backoff-and-jitter contention study",
        description=(
            "Simulate N clients each making one optimistic-concurrency write to one contended "
            "row, retrying with exponential backoff and each jitter strategy; print the mean "
            "total calls and time until every client is done (AWS's 'Exponential Backoff and "
            "Jitter' study, see docs/retry/jitter.md)."
        ),
    )
    simulate.add_argument(
        "--clients",
        type=parse_clients,
        default=parse_clients(DEFAULT_CLIENTS),
        metavar="A..B[:STEP]",
        help=f"client counts to run: a range or a comma-separated list (default: "
        f"{DEFAULT_CLIENTS})",
    )
    simulate.add_argument(
        "--seeds",
        type=_positive_int,
        default=DEFAULT_SEEDS,
        metavar="K",
        help=f"runs per point, seeded 0..K-1; the table shows means (default: {DEFAULT_SEEDS})",
    )
    simulate.add_argument(
        "--strategies",
        type=_strategies,
        default=list(_STRATEGY_NAMES),
        metavar="S,S",
        help=f"which strategies to run (default: {','.join(_STRATEGY_NAMES)})",
    )
    simulate.add_argument(
        "--base",
        type=_positive_seconds,
        default=None,
        metavar="S",
        help="first backoff wait in seconds (default: 0.005)",
    )
    simulate.add_argument(
        "--cap",
        type=_positive_seconds,
        default=None,
        metavar="S",
        help="longest backoff wait in seconds (default: 1)",
    )
    simulate.add_argument(
        "--slot",
        type=_positive_seconds,
        default=None,
        metavar="S",
        help="mean round trip of an attempt in seconds (default: 0.01)",
    )
    simulate.add_argument(
        "--plot",
        type=Path,
        default=None,
        metavar="FILE",
        help="write the two-panel plot here (.svg or .png)",
    )
    simulate.add_argument("--json", action="store_true", help="print the results as JSON")
    for child in (schedule, simulate):
        # As for every command: --debug is accepted after the action too.
        child.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )


def run(args: argparse.Namespace) -> int:
    if args.action == "schedule":
        return _schedule(args)
    return _simulate(args)


# ---------------------------------------------------------------- schedule


def _usage_error(message: str) -> UsageError:
    def option(match: re.Match[str]) -> str:
        name = "--" + match[1].replace("_", "-")
        return f"{name} {match[2]}" if match[2] else name

    return UsageError(_POLICY_ARGUMENT.sub(option, message.replace("retry policy ", "")))


def schedule(
    *,
    attempts: int,
    wait: str,
    wait_initial: float,
    wait_max: float,
    wait_multiplier: float,
    wait_increment: float | None,
    jitter: str,
    seed: int | None,
) -> list[dict[str, float]]:
    """The waits of a policy as ``schedule`` prints them: one dict per retry.

    Each dict has ``attempt`` (the number of the call the wait comes
    before, 2 for the first retry), ``low`` and ``high`` (the range the
    jittered wait is drawn from, as :meth:`Policy.next_wait
    <trusswork.retry.Policy.next_wait>` draws it), ``wait`` (the wait
    drawn) and ``at`` (seconds since the first call when the attempt
    starts). The waits are drawn the way a retry run draws them:
    ``previous`` starts at ``wait_initial`` and is the last wait taken.

    Raises
    ------
    UsageError
        If :class:`~trusswork.retry.Policy` rejects the arguments.
    """
    from trusswork.core.errors import InvalidInput
    from trusswork.retry import Policy

    try:
        policy = Policy(
            attempts=attempts,
            wait=wait,  # type: ignore[arg-type]  # argparse choices
            wait_initial=wait_initial,
            wait_max=wait_max,
            wait_multiplier=wait_multiplier,
            wait_increment=wait_increment,
            jitter=None if jitter == "none" else jitter,  # type: ignore[arg-type]
            seed=seed,
        )
    except InvalidInput as error:
        raise _usage_error(error.message) from None
    rows: list[dict[str, float]] = []
    previous = policy.wait_initial
    at = 0.0
    for retry in range(1, attempts):
        low, high = _wait_range(policy, retry, previous)
        taken = policy.next_wait(retry, previous)
        previous = taken
        at += taken
        rows.append({"attempt": retry + 1, "low": low, "high": high, "wait": taken, "at": at})
    return rows


def _wait_range(policy: Policy, retry: int, previous: float) -> tuple[float, float]:
    """The range ``policy.next_wait(retry, previous)`` draws from (see its module docstring)."""
    if policy.jitter == "decorrelated":
        low = policy.wait_initial
        high = min(policy.wait_max, max(low, previous * 3))
        low = min(low, high)
    else:
        high = policy.base_wait(retry)
        low = {"full": 0.0, "equal": high / 2}.get(policy.jitter or "", high)
    return max(policy.wait_min, low), max(policy.wait_min, high)


def _schedule(args: argparse.Namespace) -> int:
    rows = schedule(
        attempts=args.attempts,
        wait=args.wait,
        wait_initial=args.wait_initial,
        wait_max=args.wait_max,
        wait_multiplier=args.wait_multiplier,
        wait_increment=args.wait_increment,
        jitter=args.jitter,
        seed=args.seed,
    )
    if args.json:
        document = {
            "attempts": args.attempts,
            "wait": args.wait,
            "wait_initial": args.wait_initial,
            "wait_max": args.wait_max,
            "wait_multiplier": args.wait_multiplier,
            "wait_increment": args.wait_increment,
            "jitter": None if args.jitter == "none" else args.jitter,
            "seed": args.seed,
            "retries": rows,
        }
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
        return 0
    write = sys.stdout.write
    seed = "" if args.seed is None else f", seed {args.seed}"
    span = f"from {args.wait_initial:g} s up to {args.wait_max:g} s"
    if args.jitter == "decorrelated":
        write(f"decorrelated jitter {span} (--wait does not apply){seed}\n")
    else:
        jitter = "no jitter" if args.jitter == "none" else f"{args.jitter} jitter"
        write(f"{args.wait} backoff {span}, {jitter}{seed}\n")
    write(f"{'attempt':>7}  {'drawn from s':>15}  {'wait s':>8}  {'starts at s':>11}\n")
    write(f"{1:>7}  {'':>15}  {'':>8}  {0.0:>11.3f}\n")
    for row in rows:
        drawn = f"{row['low']:.3f}-{row['high']:.3f}" if row["low"] < row["high"] else ""
        write(f"{row['attempt']:>7}  {drawn:>15}  {row['wait']:>8.3f}  {row['at']:>11.3f}\n")
    total = rows[-1]["at"] if rows else 0.0
    write(f"{args.attempts} calls; {total:.3f} s spent waiting if every call fails\n")
    return 0


# ---------------------------------------------------------------- simulate


def _model(args: argparse.Namespace) -> dict[str, Any]:
    from trusswork.retry import simulate

    return {
        "base": simulate.BASE if args.base is None else args.base,
        "cap": simulate.CAP if args.cap is None else args.cap,
        "slot": simulate.SLOT if args.slot is None else args.slot,
        "spread": simulate.SPREAD,
    }


def _simulate(args: argparse.Namespace) -> int:
    from trusswork.core.errors import InvalidInput
    from trusswork.retry.simulate import study

    plot: Path | None = args.plot
    if plot is not None and plot.suffix.lower() not in PLOT_SUFFIXES:
        raise UsageError(f"--plot {plot}: the file name must end in .svg or .png")
    model = _model(args)
    if model["base"] > model["cap"]:
        raise UsageError(f"--base {model['base']:g} is above --cap {model['cap']:g}")
    try:
        rows = study(args.clients, args.strategies, range(args.seeds), **model)
    except InvalidInput as error:
        raise UsageError(error.message) from None
    if plot is not None:
        write_plot(rows, plot, seeds=args.seeds)
    if args.json:
        import dataclasses

        document = {
            "model": model,
            "seeds": args.seeds,
            "rows": [dataclasses.asdict(row) for row in rows],
        }
        if plot is not None:
            document["plot"] = str(plot)
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
        return 0
    sys.stdout.write("".join(f"{line}\n" for line in describe(rows, seeds=args.seeds)))
    if plot is not None:
        sys.stdout.write(f"plot: {plot}\n")
    return 0


def describe(rows: Sequence[StudyRow], *, seeds: int) -> list[str]:
    """The lines ``retry simulate`` prints: two tables (calls, time) and the verdict."""
    from trusswork.retry.simulate import LABELS, totals

    strategies = list(dict.fromkeys(row.strategy for row in rows))
    counts = list(dict.fromkeys(row.clients for row in rows))
    by_key = {(row.strategy, row.clients): row for row in rows}
    width = max(len(LABELS[strategy]) for strategy in strategies) + 2
    header = f"{'clients':>7}" + "".join(f"{LABELS[s]:>{width}}" for s in strategies)
    sums = totals(rows)
    lines: list[str] = []
    for title, index, fmt in (
        (f"total calls, mean of {seeds} seeds", 0, "{:,.1f}"),
        (f"seconds until every client is done, mean of {seeds} seeds", 1, "{:,.3f}"),
    ):
        lines += [title, header]
        for count in counts:
            cells = (fmt.format(_figure(by_key[(s, count)], index)) for s in strategies)
            lines.append(f"{count:>7}" + "".join(f"{cell:>{width}}" for cell in cells))
        cells = (fmt.format(sums[s][index]) for s in strategies)
        lines.append(f"{'sum':>7}" + "".join(f"{cell:>{width}}" for cell in cells))
        lines.append("")
    least_work = min(strategies, key=lambda s: sums[s][0])
    soonest = min(strategies, key=lambda s: sums[s][1])
    lines.append(f"least work: {LABELS[least_work]}; soonest done: {LABELS[soonest]}")
    return lines


def _figure(row: StudyRow, index: int) -> float:
    return row.calls if index == 0 else row.completion_time


def study_figure(rows: Sequence[StudyRow], *, seeds: int) -> Figure:
    """The study's two panels: total calls and completion time against clients."""
    from matplotlib.figure import Figure

    from trusswork.retry.simulate import LABELS

    figure = Figure(figsize=(9, 3.4), layout="constrained")
    calls_axes, time_axes = figure.subplots(1, 2)
    strategies: list[Strategy] = list(dict.fromkeys(row.strategy for row in rows))
    for strategy in strategies:
        mine = [row for row in rows if row.strategy == strategy]
        clients = [row.clients for row in mine]
        style: dict[str, Any] = {
            "label": LABELS[strategy],
            "color": COLORS[strategy],
            "marker": "o",
            "markersize": 3,
            "linewidth": 1.5,
        }
        calls_axes.plot(clients, [row.calls for row in mine], **style)
        time_axes.plot(clients, [row.completion_time for row in mine], **style)
    calls_axes.set_title("work: total calls", fontsize=10)
    calls_axes.set_ylabel("calls (all clients)")
    time_axes.set_title("time until every client is done", fontsize=10)
    time_axes.set_ylabel("seconds")
    time_axes.set_yscale("log")
    for axes in (calls_axes, time_axes):
        axes.set_xlabel("contending clients")
        axes.grid(True, alpha=0.3)
    calls_axes.legend(fontsize=8, frameon=False)
    figure.suptitle(
        f"exponential backoff and jitter, optimistic concurrency, mean of {seeds} seeds",
        fontsize=10,
    )
    return figure


def write_plot(rows: Sequence[StudyRow], path: Path, *, seeds: int) -> None:
    """Write :func:`study_figure` to ``path`` (SVG or PNG, by suffix).

    The SVG is reproducible (no date, fixed ids) and keeps text as text,
    so it is small and diffs well when committed.
    """
    import matplotlib

    figure = study_figure(rows, seeds=seeds)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".svg":
        with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "retry-jitter"}):
            figure.savefig(path, format="svg", metadata={"Date": None, "Creator": None})
    else:
        figure.savefig(path, format="png", dpi=120)
