"""``trusswork ratelimit``: serve the limiter, check policy files, try and simulate limits.

``trusswork ratelimit serve --config FILE [--host H] [--port P] [--backend URL]``
runs the standalone limiter service (:func:`trusswork.ratelimit.serve`:
``POST /v1/acquire``, policies, audit log, ``/metrics``) for the policies of
FILE until SIGTERM or SIGINT. ``--backend`` overrides the file's default
backend (``memory`` or a Redis URL) for policies that name none. The bound
address is printed on stderr as ``trusswork.ratelimit: listening on
http://HOST:PORT`` once connections are accepted (with ``--port 0``, the
port picked).

``trusswork ratelimit check --config FILE [--json]`` reads FILE as the
service would and prints its policies (name, algorithm, quota, window, key,
cost, shadow, backend, paths) as a table, or with ``--json`` as
``{"file", "policies": [...], "audit": {...}}``. A bad file is a one-line
error naming the file, the policy and the field (exit 1).

``trusswork ratelimit try --algorithm token_bucket|sliding_window|
sliding_window_counter|fixed_window [--rate R --burst B | --limit L --window S]
[--requests N] [--interval S] [--cost C] [--key K] [--json]`` replays N requests, one
every S seconds from t = 0, against a limiter on a fake clock and prints each
decision (allowed, remaining, retry_after, reset_after) and a summary, so
people see what a limit does before they ship it. ``--rate`` takes ``10``,
``100/s``, ``600/1m``; ``--window`` takes seconds or a duration (``1m``).

``trusswork ratelimit simulate [--capacity C] [--offered O] [--duration S]
[--drop-at S] [--recover-at S] [--drop-to F] [--error-budget E] [--every S]
[--plot FILE] [--json]`` runs :func:`trusswork.ratelimit.simulate_adaptive`:
an :class:`~trusswork.ratelimit.AdaptiveLimit` in front of a service whose
capacity drops to ``F`` of ``C`` and comes back. It prints admitted rate,
limit, capacity and errors every ``--every`` seconds, the error ratio of each
phase and when the limit recovered; ``--plot`` writes admitted rate against
the limit and the capacity (SVG or PNG, by the file's suffix).

Bad values are usage errors (exit 2) naming the option.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trusswork.cli._app import UsageError
from trusswork.cli._argtypes import whole_number

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from rich.console import Console

    from trusswork.ratelimit import Decision, Policy, SimulationRow

#: The algorithms ``try`` can run, with the options each needs.
ALGORITHMS: dict[str, tuple[str, str]] = {
    "token_bucket": ("--rate", "--burst"),
    "sliding_window": ("--limit", "--window"),
    "sliding_window_counter": ("--limit", "--window"),
    "fixed_window": ("--limit", "--window"),
}
#: The figure's file types, by suffix.
PLOT_SUFFIXES = (".svg", ".png")
#: Colours of the simulation plot.
COLORS = {"admitted": "#0969da", "limit": "#1a7f37", "capacity": "#59636e", "errors": "#cf222e"}
#: ``simulate`` counts the limit as recovered once it is back to this share of capacity.
RECOVERED_SHARE = 0.9
#: Control intervals ``simulate`` allows the controller to settle after a drop.
SETTLE = 5.0


# ---------------------------------------------------------------- argument types

_positive_int = whole_number(1)
_cost = whole_number(0)
_port = whole_number(0, 65535, noun="a port number")


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be finite, got {text!r}")
    return value


def _seconds(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, got {text!r}")
    return value


def _positive(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text!r}")
    return value


def _fraction(text: str) -> float:
    value = _number(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a fraction from 0 to 1, got {text!r}")
    return value


def _rate(text: str) -> float:
    from trusswork.core.errors import InvalidInput
    from trusswork.ratelimit import parse_rate

    try:
        return parse_rate(text)
    except InvalidInput as error:
        raise argparse.ArgumentTypeError(error.message) from None


def _window(text: str) -> float:
    from trusswork.core.config import parse_duration
    from trusswork.core.errors import InvalidInput

    try:
        value = float(text)
    except ValueError:
        try:
            value = parse_duration(text)
        except InvalidInput:
            raise argparse.ArgumentTypeError(
                f"expected seconds or a duration such as '1m' or '250ms', got {text!r}"
            ) from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text!r}")
    return value


# ---------------------------------------------------------------- parser


def register(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="<action>", title="actions")
    actions.required = True

    serve = actions.add_parser(
        "serve",
        help="run the limiter service (HTTP decision API) for a policy file",
        description=(
            "Serve the decision API (POST /v1/acquire, /v1/policies, /v1/audit, /metrics) "
            "for the policies of a TOML file until SIGTERM/SIGINT."
        ),
    )
    serve.add_argument("--config", type=Path, required=True, metavar="FILE", help="policy file")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8080, help="port to bind; 0 picks one (8080)")
    serve.add_argument(
        "--backend",
        default=None,
        metavar="URL",
        help="'memory' or a Redis URL for policies that name no backend (default: the file's)",
    )

    check = actions.add_parser(
        "check",
        help="validate a policy file and print its policies",
        description="Read a policy file as the service would and print its policies.",
    )
    check.add_argument("--config", type=Path, required=True, metavar="FILE", help="policy file")
    check.add_argument("--json", action="store_true", help="print the policies as JSON")

    attempt = actions.add_parser(
        "try",
        help="replay requests against a limit on a fake clock",
        description=(
            "Replay N requests, one every --interval seconds from t = 0, against a limiter on "
            "a fake clock, and print each decision and a summary."
        ),
    )
    attempt.add_argument(
        "--algorithm", choices=tuple(ALGORITHMS), default="token_bucket", help="(token_bucket)"
    )
    attempt.add_argument(
        "--rate", type=_rate, default=None, metavar="R", help="token bucket: per second, or N/1m"
    )
    attempt.add_argument(
        "--burst", type=_positive_int, default=None, metavar="B", help="token bucket: capacity"
    )
    attempt.add_argument(
        "--limit", type=_positive_int, default=None, metavar="L", help="windows: requests"
    )
    attempt.add_argument(
        "--window", type=_window, default=None, metavar="S", help="windows: seconds or '1m'"
    )
    attempt.add_argument(
        "--requests", type=_positive_int, default=20, metavar="N", help="requests to send (20)"
    )
    attempt.add_argument(
        "--interval",
        type=_seconds,
        default=0.0,
        metavar="S",
        help="seconds between requests (0: all at once)",
    )
    attempt.add_argument("--cost", type=_cost, default=1, metavar="C", help="units a request takes")
    attempt.add_argument(
        "--key", default="client", help="the key every request uses (default: client)"
    )
    attempt.add_argument("--json", action="store_true", help="print the decisions as JSON")

    simulate = actions.add_parser(
        "simulate",
        help="run an adaptive limit in front of a service whose capacity drops",
        description=(
            "Simulate an AdaptiveLimit protecting a service whose capacity drops and comes "
            "back (fake time, deterministic); print admitted rate, limit and errors."
        ),
    )
    simulate.add_argument(
        "--capacity", type=_positive, default=200.0, metavar="C", help="requests/s served (200)"
    )
    simulate.add_argument(
        "--offered",
        type=_positive,
        default=None,
        metavar="O",
        help="requests/s the clients send (default: 1.5 x capacity)",
    )
    simulate.add_argument(
        "--duration", type=_positive, default=300.0, metavar="S", help="seconds (300)"
    )
    simulate.add_argument(
        "--drop-at", type=_seconds, default=100.0, metavar="S", help="capacity drops (100)"
    )
    simulate.add_argument(
        "--recover-at", type=_seconds, default=200.0, metavar="S", help="capacity returns (200)"
    )
    simulate.add_argument(
        "--drop-to",
        type=_fraction,
        default=0.25,
        metavar="F",
        help="share of capacity left during the drop (0.25)",
    )
    simulate.add_argument(
        "--error-budget",
        type=_fraction,
        default=0.01,
        metavar="E",
        help="the SLO's error budget, a fraction (0.01)",
    )
    simulate.add_argument(
        "--every",
        type=_positive_int,
        default=10,
        metavar="S",
        help="print one row every S seconds (10); --json has every second",
    )
    simulate.add_argument(
        "--plot", type=Path, default=None, metavar="FILE", help="write the plot (.svg or .png)"
    )
    simulate.add_argument("--json", action="store_true", help="print the results as JSON")

    for child in (serve, check, attempt, simulate):
        # As for every command: --debug is accepted after the action too.
        child.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )


def run(args: argparse.Namespace) -> int:
    action: str = args.action
    if action == "serve":
        return _serve(args)
    if action == "check":
        return _check(args)
    if action == "try":
        return _try(args)
    return _simulate(args)


def _console() -> Console:
    from rich.console import Console

    stdout = Console(highlight=False)
    if not stdout.is_terminal:  # a file or pipe: room for every column, not 80
        stdout = Console(highlight=False, width=140)
    return stdout


def _dumps(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2) + "\n")


def _json_seconds(value: float) -> float | None:
    """Seconds for JSON: ``null`` for "never" (``inf``)."""
    return value if math.isfinite(value) else None


def _show_seconds(value: float) -> str:
    return f"{value:.3f}" if math.isfinite(value) else "never"


# ---------------------------------------------------------------- serve


def _serve(args: argparse.Namespace) -> int:
    from trusswork.ratelimit import load_service_config, serve

    host: str = args.host
    load_service_config(args.config, backend=args.backend)  # report a bad file before binding

    def listening(port: int) -> None:
        shown = f"[{host}]" if ":" in host else host
        sys.stderr.write(f"trusswork.ratelimit: listening on http://{shown}:{port}\n")
        sys.stderr.flush()

    serve(args.config, host, args.port, backend=args.backend, on_listening=listening)
    return 0


# ---------------------------------------------------------------- check


def describe_policy(policy: Policy) -> dict[str, str]:
    """A policy's fields as the ``check`` table shows them."""
    if policy.rate is not None:
        quota = f"burst {policy.burst}, {policy.rate:g}/s"
    else:
        quota = f"{policy.limit} per {policy.window:g} s"
    return {
        "name": policy.name,
        "algorithm": policy.algorithm,
        "quota": quota,
        "window": f"{policy.window_seconds:g} s",
        "key": " | ".join(policy.key),
        "cost": str(policy.cost),
        "shadow": "yes" if policy.shadow else "no",
        "backend": policy.backend,
        "paths": ", ".join(policy.paths) or "all",
    }


def _check(args: argparse.Namespace) -> int:
    from trusswork.ratelimit import load_service_config

    config = load_service_config(args.config)
    if args.json:
        _dumps(
            {
                "file": str(args.config),
                "policies": [policy.to_dict() for policy in config.policies],
                "audit": {
                    "max_entries": config.audit_max_entries,
                    "file": None if config.audit_file is None else str(config.audit_file),
                    "max_bytes": config.audit_max_bytes,
                    "backups": config.audit_backups,
                },
            }
        )
        return 0
    from rich.table import Table

    table = Table()
    rows = [describe_policy(policy) for policy in config.policies]
    for column in rows[0]:
        table.add_column(column, justify="right" if column == "cost" else "left")
    for row in rows:
        table.add_row(*row.values())
    console = _console()
    console.print(f"{args.config}: {len(config.policies)} policies", markup=False, soft_wrap=True)
    console.print(table)
    audit = f"{config.audit_max_entries:,} entries in memory"
    if config.audit_file is not None:
        audit += f", file {config.audit_file} ({config.audit_backups} backups)"
    console.print(f"audit log: {audit}", markup=False, soft_wrap=True)
    return 0


# ---------------------------------------------------------------- try


@dataclass(frozen=True)
class Replay:
    """What ``try`` replayed: the limiter's quota and window, and each request's decision."""

    algorithm: str
    limit: int
    window: float
    times: list[float]
    decisions: list[Decision]

    @property
    def allowed(self) -> int:
        return sum(1 for decision in self.decisions if decision.allowed)


def replay(
    algorithm: str,
    *,
    rate: float | None = None,
    burst: int | None = None,
    limit: int | None = None,
    window: float | None = None,
    requests: int = 20,
    interval: float = 0.0,
    cost: int = 1,
    key: str = "client",
) -> Replay:
    """Send ``requests`` requests, one every ``interval`` seconds from 0, on a fake clock.

    Raises
    ------
    UsageError
        If the parameters do not fit ``algorithm`` (named as ``try``'s options).
    """
    from trusswork.core.errors import InvalidInput
    from trusswork.ratelimit import FixedWindow, SlidingWindow, TokenBucket

    needed = ALGORITHMS.get(algorithm)
    if needed is None:
        raise UsageError(f"--algorithm {algorithm!r}: choose from {', '.join(ALGORITHMS)}")
    given = {"--rate": rate, "--burst": burst, "--limit": limit, "--window": window}
    missing = [option for option in needed if given[option] is None]
    extra = [
        option for option, value in given.items() if value is not None and option not in needed
    ]
    if missing:
        raise UsageError(f"--algorithm {algorithm} needs {' and '.join(missing)}")
    if extra:
        raise UsageError(
            f"--algorithm {algorithm} does not take {' or '.join(extra)} "
            f"(it takes {' and '.join(needed)})"
        )
    now = [0.0]

    def clock() -> float:
        return now[0]

    try:
        if algorithm == "token_bucket":
            assert rate is not None and burst is not None
            limiter: Any = TokenBucket(rate, burst, clock=clock)
        else:
            assert limit is not None and window is not None
            if algorithm == "fixed_window":
                limiter = FixedWindow(limit, window, clock=clock)
            else:
                exact = algorithm == "sliding_window"
                limiter = SlidingWindow(limit, window, exact=exact, clock=clock)
    except InvalidInput as error:
        raise UsageError(error.message) from None
    times: list[float] = []
    decisions: list[Decision] = []
    for index in range(requests):
        now[0] = index * interval
        times.append(now[0])
        decisions.append(limiter.acquire(key, cost))
    return Replay(algorithm, limiter.limit, limiter.window, times, decisions)


def _try(args: argparse.Namespace) -> int:
    result = replay(
        args.algorithm,
        rate=args.rate,
        burst=args.burst,
        limit=args.limit,
        window=args.window,
        requests=args.requests,
        interval=args.interval,
        cost=args.cost,
        key=args.key,
    )
    denied = [i for i, decision in enumerate(result.decisions) if not decision.allowed]
    if args.json:
        parameters: dict[str, Any] = (
            {"rate": args.rate, "burst": args.burst}
            if args.algorithm == "token_bucket"
            else {"limit": args.limit, "window": args.window}
        )
        _dumps(
            {
                "algorithm": args.algorithm,
                **parameters,
                "quota": result.limit,
                "window_seconds": result.window,
                "requests": args.requests,
                "interval": args.interval,
                "cost": args.cost,
                "decisions": [
                    {
                        "request": index + 1,
                        "at": at,
                        "allowed": decision.allowed,
                        "remaining": decision.remaining,
                        "retry_after": _json_seconds(decision.retry_after),
                        "reset_after": decision.reset_after,
                    }
                    for index, (at, decision) in enumerate(
                        zip(result.times, result.decisions, strict=True)
                    )
                ],
                "allowed": result.allowed,
                "denied": len(denied),
                "first_denied": denied[0] + 1 if denied else None,
            }
        )
        return 0
    from rich.table import Table
    from rich.text import Text

    if args.algorithm == "token_bucket":
        what = f"token bucket: {args.rate:g}/s, burst {args.burst}"
    else:
        what = f"{args.algorithm.replace('_', ' ')}: {args.limit} per {args.window:g} s"
    spacing = "all at t = 0" if args.interval == 0 else f"one every {args.interval:g} s"
    table = Table()
    for column in ("#", "t s", "decision", "remaining", "retry_after s", "reset_after s"):
        table.add_column(column, justify="left" if column == "decision" else "right")
    for index, (at, decision) in enumerate(zip(result.times, result.decisions, strict=True)):
        table.add_row(
            str(index + 1),
            f"{at:.3f}",
            Text("allowed", style="green") if decision.allowed else Text("denied", style="red"),
            str(decision.remaining),
            _show_seconds(decision.retry_after),
            f"{decision.reset_after:.3f}",
        )
    console = _console()
    heading = f"{what}; {args.requests} requests of cost {args.cost}, {spacing}"
    console.print(heading, markup=False, soft_wrap=True)
    console.print(table)
    summary = f"{result.allowed} allowed, {len(denied)} denied of {args.requests}"
    if denied:
        first = result.decisions[denied[0]]
        summary += (
            f"; first denial: request {denied[0] + 1} at {result.times[denied[0]]:.3f} s, "
            f"retry after {_show_seconds(first.retry_after)} s"
        )
    console.print(summary, markup=False, soft_wrap=True)
    return 0


# ---------------------------------------------------------------- simulate


def _between(rows: Sequence[SimulationRow], start: float, stop: float) -> list[SimulationRow]:
    return [row for row in rows if start <= row.time < stop]


def _ratio(rows: Sequence[SimulationRow]) -> float | None:
    admitted = sum(row.admitted for row in rows)
    return sum(row.errors for row in rows) / admitted if admitted else None


def _mean_admitted(rows: Sequence[SimulationRow]) -> float | None:
    return sum(row.admitted for row in rows) / len(rows) if rows else None


def summarize(
    rows: Sequence[SimulationRow],
    *,
    capacity: float,
    drop_at: float,
    recover_at: float,
    duration: float,
    error_budget: float,
) -> dict[str, Any]:
    """Per-phase figures of a :func:`simulate_adaptive` run.

    ``phases`` has, for ``before`` (until the drop), ``degraded`` (from
    :data:`SETTLE` seconds after the drop until the recovery) and
    ``recovered`` (after it): ``errors`` (error ratio of admitted requests,
    ``None`` when nothing was admitted) and ``admitted`` (mean per second).
    ``healthy_at`` is the first second after the drop whose error ratio is
    under the budget, ``limit_back_at`` the first second after the recovery
    with the limit at :data:`RECOVERED_SHARE` of capacity (``None``: never).
    """
    spans = {
        "before": (0.0, drop_at),
        "degraded": (drop_at + SETTLE, recover_at),
        "recovered": (recover_at, duration),
    }
    phases = {}
    for name, (start, stop) in spans.items():
        chosen = _between(rows, start, stop)
        phases[name] = {
            "start": start,
            "stop": stop,
            "errors": _ratio(chosen),
            "admitted": _mean_admitted(chosen),
        }
    healthy_at = next(
        (
            row.time
            for row in _between(rows, drop_at, recover_at)
            if row.admitted and row.errors / row.admitted < error_budget
        ),
        None,
    )
    limit_back_at = next(
        (
            row.time
            for row in _between(rows, recover_at, duration)
            if row.limit >= RECOVERED_SHARE * capacity
        ),
        None,
    )
    return {"phases": phases, "healthy_at": healthy_at, "limit_back_at": limit_back_at}


def adaptive_figure(
    rows: Sequence[SimulationRow], *, drop_at: float, recover_at: float, error_budget: float
) -> Figure:
    """Admitted rate, the adaptive limit and the capacity (and errors) against time."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 3.6), layout="constrained")
    axes = figure.subplots()
    times = [row.time for row in rows]
    axes.axvspan(drop_at, recover_at, color="#d1d9e0", alpha=0.35, linewidth=0)
    axes.step(
        times,
        [row.capacity for row in rows],
        where="post",
        color=COLORS["capacity"],
        linestyle="--",
        linewidth=1.5,
        label="capacity",
    )
    axes.plot(times, [row.limit for row in rows], color=COLORS["limit"], linewidth=2, label="limit")
    axes.plot(
        times,
        [row.admitted for row in rows],
        color=COLORS["admitted"],
        linewidth=1,
        alpha=0.85,
        label="admitted",
    )
    axes.plot(
        times,
        [row.errors for row in rows],
        color=COLORS["errors"],
        linewidth=1,
        label="errors (admitted, failed)",
    )
    axes.set_xlabel("seconds (simulated)")
    axes.set_ylabel("requests per second")
    axes.set_ylim(bottom=0)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8, frameon=False, loc="upper right")
    offered = rows[0].offered if rows else 0.0
    axes.set_title(
        f"adaptive limit: {offered:g} req/s offered, capacity drops at {drop_at:g} s and "
        f"returns at {recover_at:g} s; error budget {error_budget:.1%}",
        fontsize=10,
    )
    return figure


def write_plot(
    rows: Sequence[SimulationRow],
    path: Path,
    *,
    drop_at: float,
    recover_at: float,
    error_budget: float,
) -> None:
    """Write :func:`adaptive_figure` to ``path`` (SVG or PNG, by suffix; SVG reproducible)."""
    import matplotlib

    figure = adaptive_figure(
        rows, drop_at=drop_at, recover_at=recover_at, error_budget=error_budget
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".svg":
        with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "ratelimit-adaptive"}):
            figure.savefig(path, format="svg", metadata={"Date": None, "Creator": None})
    else:
        figure.savefig(path, format="png", dpi=120)


def _simulate(args: argparse.Namespace) -> int:
    from trusswork.core.errors import InvalidInput
    from trusswork.ratelimit import SLO, simulate_adaptive

    plot: Path | None = args.plot
    if plot is not None and plot.suffix.lower() not in PLOT_SUFFIXES:
        raise UsageError(f"--plot {plot}: the file name must end in .svg or .png")
    if args.recover_at < args.drop_at:
        raise UsageError(f"--recover-at {args.recover_at:g} is before --drop-at {args.drop_at:g}")
    if not 0 < args.error_budget < 1:
        raise UsageError(f"--error-budget must be above 0 and below 1, got {args.error_budget:g}")
    offered = 1.5 * args.capacity if args.offered is None else args.offered
    try:
        rows = simulate_adaptive(
            capacity=args.capacity,
            offered=offered,
            duration=args.duration,
            drop_at=args.drop_at,
            recover_at=args.recover_at,
            drop_to=args.drop_to,
            slo=SLO(error_rate=args.error_budget),
        )
    except InvalidInput as error:
        raise UsageError(error.message) from None
    if not rows:
        raise UsageError(f"--duration {args.duration:g} is shorter than one report (1 s)")
    summary = summarize(
        rows,
        capacity=args.capacity,
        drop_at=args.drop_at,
        recover_at=args.recover_at,
        duration=args.duration,
        error_budget=args.error_budget,
    )
    if plot is not None:
        write_plot(
            rows,
            plot,
            drop_at=args.drop_at,
            recover_at=args.recover_at,
            error_budget=args.error_budget,
        )
    if args.json:
        import dataclasses

        document: dict[str, Any] = {
            "capacity": args.capacity,
            "offered": offered,
            "duration": args.duration,
            "drop_at": args.drop_at,
            "recover_at": args.recover_at,
            "drop_to": args.drop_to,
            "error_budget": args.error_budget,
            "rows": [dataclasses.asdict(row) for row in rows],
            **summary,
        }
        if plot is not None:
            document["plot"] = str(plot)
        _dumps(document)
        return 0
    from rich.table import Table

    table = Table()
    for column in ("t s", "capacity/s", "limit/s", "admitted/s", "errors/s"):
        table.add_column(column, justify="right")
    for row in rows:
        if round(row.time, 6) % args.every == 0:
            table.add_row(
                f"{row.time:g}",
                f"{row.capacity:g}",
                f"{row.limit:.1f}",
                f"{row.admitted:g}",
                f"{row.errors:g}",
            )
    console = _console()
    console.print(
        f"adaptive limit: capacity {args.capacity:g}/s, {args.drop_to:g} of it from "
        f"{args.drop_at:g} s to {args.recover_at:g} s; {offered:g}/s offered",
        markup=False,
        soft_wrap=True,
    )
    console.print(table)
    for name, phase in summary["phases"].items():
        errors = "n/a" if phase["errors"] is None else f"{phase['errors']:.2%}"
        admitted = "n/a" if phase["admitted"] is None else f"{phase['admitted']:.1f}/s"
        console.print(
            f"{name} ({phase['start']:g}-{phase['stop']:g} s): errors {errors} of admitted, "
            f"{admitted} admitted",
            markup=False,
            soft_wrap=True,
        )
    healthy, back = summary["healthy_at"], summary["limit_back_at"]
    console.print(
        "under the error budget again at "
        + ("never" if healthy is None else f"{healthy:g} s")
        + f"; limit back to {RECOVERED_SHARE:.0%} of capacity at "
        + ("never" if back is None else f"{back:g} s"),
        markup=False,
        soft_wrap=True,
    )
    if plot is not None:
        console.print(f"plot: {plot}", markup=False, soft_wrap=True)
    return 0
