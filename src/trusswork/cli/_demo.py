"""``trusswork demo``: a short tour of every system, as a table and an HTML report.

The tour is a list of sections, :data:`SECTIONS`, one per system. A section
is a function ``demo(ctx: DemoContext) -> SectionResult`` in the module its
row names; it runs its system on embedded defaults, checks that the results
are right (a wrong answer raises), and returns key figures as (figure, value)
rows, optional matplotlib figures and optional notes.

Guarantees: every section runs even when an earlier one fails; a failure is
reported in the table and the report with its message (and, in the report,
its traceback), and the command then exits 1. The report is always written:
``index.html`` (self-contained: inline CSS, plots as inline SVG) and
``demo.json`` (the same figures, for machines) in the output directory.

This module imports nothing heavy at import time; rich, numpy and
matplotlib load when the demo runs.
"""

from __future__ import annotations

import argparse
import importlib
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NamedTuple, TypeVar

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from rich.console import Console
    from rich.progress import Progress

__all__ = [
    "SECTIONS",
    "DemoContext",
    "DemoSection",
    "Plot",
    "SectionOutcome",
    "SectionResult",
    "SkipSection",
    "register",
    "run",
    "run_sections",
]

T = TypeVar("T")


class DemoSection(NamedTuple):
    """One row of the demo registry."""

    name: str
    """Short key, used for file names and ``demo.json`` (``"core"``)."""
    title: str
    """Heading in the table and the report."""
    module: str
    """Module that defines ``demo(ctx: DemoContext) -> SectionResult``."""


#: The tour, in order. A system adds its section with one row here and a
#: ``demo`` function in its CLI module (``trusswork/cli/_<system>.py``).
SECTIONS: tuple[DemoSection, ...] = (
    DemoSection("core", "Core kernels: CRC32C, varint, bit packing", "trusswork.cli._core"),
    DemoSection("storage", "Write-ahead log", "trusswork.cli._storage_demo"),
    DemoSection("btree", "B+tree: crash and damage", "trusswork.cli._btree_demo"),
    DemoSection(
        "retry", "Retries: flaky calls, jitter study, circuit breaker", "trusswork.cli._retry_demo"
    ),
    DemoSection(
        "http", "HTTP server: load against uvicorn, smuggling refused", "trusswork.cli._http_demo"
    ),
    DemoSection(
        "rules", "Rules DSL: compile, explain, check, Numba JIT", "trusswork.cli._rules_demo"
    ),
    DemoSection(
        "ratelimit",
        "Rate limits: a burst, headers, hierarchy, adaptive limits",
        "trusswork.cli._ratelimit_demo",
    ),
    DemoSection("tsdb", "Time series: compression, rollups, PromQL", "trusswork.cli._tsdb_demo"),
    DemoSection(
        "logs", "Logs: ingest, search, stats, timechart, an alert", "trusswork.cli._logs_demo"
    ),
)


@dataclass(frozen=True)
class Plot:
    """A matplotlib figure for the report, with the caption shown above it."""

    title: str
    figure: Figure


@dataclass
class SectionResult:
    """What a section returns.

    The section's title comes from its :class:`DemoSection` row, so that a
    section which crashes before returning still has a heading.

    Attributes
    ----------
    rows:
        Key figures as (figure, value) pairs, values already formatted with
        their unit (``("CRC32C 1 MiB", "14.1 GB/s")``).
    plots:
        Figures for the report, in order.
    notes:
        Short sentences that explain the figures (what was measured, what is
        missing and why).
    """

    rows: list[tuple[str, str]]
    plots: list[Plot] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class SkipSection(Exception):
    """Raised by a section that cannot run here (a service or package is missing).

    The message says why; the section is shown as skipped and does not make
    the demo fail.
    """


@dataclass
class DemoContext:
    """What a section gets to work with.

    Attributes
    ----------
    out_dir:
        The report directory; a section may write files (data, extra plots)
        under ``out_dir / <section name>``.
    quick:
        Smaller inputs and shorter timings (``trusswork demo --quick``);
        each section should keep its quick mode to a few seconds.
    console:
        A rich console on stderr for messages; they print above the
        progress bar.
    progress:
        The rich progress display; :meth:`track` is the simple way to use it.
    """

    out_dir: Path
    quick: bool
    console: Console
    progress: Progress

    def track(self, steps: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
        """Iterate over ``steps`` while a progress bar counts them."""
        if total is None and isinstance(steps, Sequence):
            total = len(steps)
        task = self.progress.add_task(description, total=total)
        try:
            for step in steps:
                yield step
                self.progress.advance(task)
        finally:
            self.progress.remove_task(task)


@dataclass
class SectionOutcome:
    """How one section went: its result, or why there is none."""

    section: DemoSection
    status: Literal["ok", "failed", "skipped"]
    seconds: float
    result: SectionResult | None = None
    error: str = ""
    """One-line reason when failed or skipped."""
    details: str = ""
    """The traceback when failed."""
    plots: list[tuple[str, str]] = field(default_factory=list)
    """The result's plots rendered as (title, inline SVG)."""


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        help="write the report here (created if missing; default: a new temporary directory)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smaller inputs and shorter timings (a few seconds)"
    )


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from trusswork.cli import _report

    started = time.perf_counter()
    out_dir: Path = args.out if args.out is not None else Path(_new_temp_dir())
    out_dir.mkdir(parents=True, exist_ok=True)
    stdout = Console(highlight=False)
    stderr = Console(stderr=True, highlight=False)
    outcomes = run_sections(SECTIONS, out_dir=out_dir, quick=args.quick, console=stderr)
    elapsed = time.perf_counter() - started
    report = _report.write(out_dir, outcomes, quick=args.quick, seconds=elapsed)
    _report.print_table(stdout, outcomes, seconds=elapsed)
    stdout.print(f"report: {report}", soft_wrap=True)
    failed = [outcome.section.name for outcome in outcomes if outcome.status == "failed"]
    if failed:
        stderr.print(f"trusswork: error: demo section(s) failed: {', '.join(failed)}", markup=False)
        return 1
    return 0


def _new_temp_dir() -> str:
    # Kept after the run: the report is what the user came for.
    return tempfile.mkdtemp(prefix="trusswork-demo-")


def run_sections(
    sections: Sequence[DemoSection], *, out_dir: Path, quick: bool, console: Console
) -> list[SectionOutcome]:
    """Run each section in order, catching its failure; never raises for a section.

    ``KeyboardInterrupt`` is not caught: Ctrl-C stops the whole tour.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=True,
    )
    outcomes: list[SectionOutcome] = []
    with progress:
        overall = progress.add_task("demo", total=len(sections))
        for section in sections:
            progress.update(overall, description=f"demo: {section.title}")
            context = DemoContext(out_dir=out_dir, quick=quick, console=console, progress=progress)
            outcomes.append(_run_one(section, context))
            progress.advance(overall)
    return outcomes


def _run_one(section: DemoSection, context: DemoContext) -> SectionOutcome:
    from trusswork.cli import _report

    started = time.perf_counter()
    status: Literal["ok", "failed", "skipped"] = "ok"
    result: SectionResult | None = None
    error = details = ""
    plots: list[tuple[str, str]] = []
    try:
        demo: Callable[[DemoContext], SectionResult] = importlib.import_module(section.module).demo
        result = demo(context)
        # Rendering belongs to the section: a figure that cannot be drawn fails it.
        plots = [
            (plot.title, _report.render_svg(plot.figure, salt=f"{section.name}-{index}"))
            for index, plot in enumerate(result.plots)
        ]
    except SkipSection as skip:
        status, error = "skipped", str(skip)
    except Exception as exc:
        first_line = (str(exc).splitlines() or [""])[0]
        status = "failed"
        error = f"{type(exc).__name__}: {first_line}" if first_line else type(exc).__name__
        details = "".join(traceback.format_exception(exc))
        context.console.print(
            f"trusswork demo: section {section.name!r} failed: {error}", markup=False
        )
    seconds = time.perf_counter() - started
    return SectionOutcome(section, status, seconds, result, error, details, plots)
