"""``trusswork logs``: ingest, query, explain, inspect, serve and alert on a log store.

Every action but ``generate`` and ``alerts check`` takes the store directory
PATH first. Actions that only read a store (``query``, ``explain``,
``stats``) refuse a directory that holds no store; ``ingest`` and ``serve``
create it. A store is open in one process at a time: while ``ingest
--follow`` or ``serve`` runs, the other actions on it fail with a one-line
error.

``trusswork logs ingest PATH [FILE...|-] [--format F] [--pattern P]
[--source NAME] [--follow]`` stores the lines of files (``-`` or nothing:
stdin) with a progress bar, then prints lines accepted and rejected per
input; the first rejected lines go to stderr and the exit status is then 1
(the good lines are stored). ``--follow`` (``-F``) follows the files like
``tail -F`` until SIGTERM or SIGINT: each batch is stored together with the
file's position (under the source name, the file's absolute path), so a
restarted follower continues where the last one stopped, across rotations,
with no line stored twice or lost. It prints a status line on stderr at most
once a second while lines arrive.

``trusswork logs query PATH QUERY [--earliest T] [--latest T] [--format
table|json|csv|ndjson] [--limit N] [--explain]`` runs a query of the pipe
language. The table shows ``_time`` and ``_raw`` (cut to the terminal's
width) for events, every column for aggregates, at most ``--limit`` rows
(100 for the table, all for the other formats). ``json`` prints ``{columns,
rows, warnings, plan}``, ``ndjson`` one object per row, ``csv`` a header and
rows. ``--explain`` adds the plan (on stderr for the machine formats). A
query that does not parse prints the position with a caret (exit 1).

``trusswork logs explain PATH QUERY`` runs the query and prints its plan;
``trusswork logs stats PATH [--json]`` prints lines, segments, partitions,
bytes and damaged segments; ``trusswork logs patterns PATH|FILE|- [--query
Q] [--top N]`` mines the templates of a file's lines, or of the ``_raw`` of
a store's query results, and prints the commonest with their counts.

``trusswork logs serve PATH [--host H] [--port P] [--alerts FILE]`` serves
the store's HTTP API until SIGTERM or SIGINT, with the alert manager of
FILE's rules running in the background (events are written to stderr as
JSON lines). It prints ``trusswork.logs: listening on http://HOST:PORT`` on
stderr once connections are accepted.

``trusswork logs alerts check FILE`` checks an alert rules file (TOML, one
``[[alert]]`` table per rule): its syntax, its conditions and its queries;
errors point at the place with a caret (exit 1).

``trusswork logs generate [--lines N] [--format combined|json] [--seed S]``
writes deterministic synthetic web shop logs (nginx combined or JSON) to
stdout, as the demo uses them.

Bad option values are usage errors (exit 2) naming the option.
"""

from __future__ import annotations

import argparse
import csv
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, BinaryIO

from trusswork.cli._app import UsageError
from trusswork.cli._argtypes import whole_number

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from trusswork.logs import IngestResult, LogResult, LogStore

#: Formats ``ingest`` reads (the parsers' names).
FORMATS = ("auto", "json", "logfmt", "syslog", "combined", "regex", "text")
OUTPUTS = ("table", "json", "csv", "ndjson")
#: Rows the table shows without ``--limit``.
TABLE_ROWS = 100
#: Rejected lines listed on stderr after an ingest.
SHOWN_ERRORS = 10
#: Seconds between a follower's status lines (and between its polls when idle).
STATUS_EVERY = 1.0
POLL_INTERVAL = 0.2

_positive_int = whole_number(1)
_port = whole_number(0, 65535, noun="a port number")


def _time_bound(text: str) -> str:
    """A ``--earliest``/``--latest`` value, checked here so a bad one is a usage error."""
    from trusswork.logs import QueryParseError, parse_time_bound

    try:
        parse_time_bound(text)
    except QueryParseError:
        raise argparse.ArgumentTypeError(
            f"expected a time such as '-15m', '-1d@d', 'now', epoch seconds or "
            f"'2024-05-01T10:00:00Z', got {text!r}"
        ) from None
    return text


# ---------------------------------------------------------------- parser


def register(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="<action>", title="actions")
    actions.required = True

    def action(
        name: str, help: str, description: str, *, store: bool = True
    ) -> argparse.ArgumentParser:
        child = actions.add_parser(name, help=help, description=description)
        if store:
            child.add_argument("path", type=Path, metavar="PATH", help="the log store directory")
        # As for every command: --debug is accepted after the action too.
        child.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
        return child

    ingest = action(
        "ingest",
        "store the lines of files or stdin, or follow files",
        "Parse and store the lines of files (or stdin); with --follow, follow the files "
        "until SIGTERM/SIGINT, resuming where the last follower stopped.",
    )
    ingest.add_argument(
        "files", nargs="*", metavar="FILE", help="files to read; '-' or none: stdin"
    )
    ingest.add_argument("--format", choices=FORMATS, default="auto", help="line format (auto)")
    ingest.add_argument(
        "--pattern", default=None, metavar="P", help="regular expression or grok pattern (regex)"
    )
    ingest.add_argument(
        "--source", default=None, metavar="NAME", help="the lines' source field (the file path)"
    )
    ingest.add_argument(
        "--follow", "-F", action="store_true", help="follow the files like 'tail -F'"
    )

    times = "'-15m', 'now', epoch seconds or RFC 3339"
    query = action(
        "query",
        "run a query and print its rows",
        "Run a query of the pipe language and print its rows as a table, JSON, CSV or NDJSON.",
    )
    query.add_argument("query", metavar="QUERY", help="the query, e.g. 'status>=500 | stats count'")
    _time_options(query, times)
    query.add_argument("--format", choices=OUTPUTS, default="table", help="output (table)")
    query.add_argument(
        "--limit",
        type=_positive_int,
        default=None,
        metavar="N",
        help=f"rows to print (table: {TABLE_ROWS}, others: all)",
    )
    query.add_argument("--explain", action="store_true", help="print the plan too")

    explain = action(
        "explain",
        "run a query and print its plan",
        "Run a query and print its plan: segments read and skipped, estimated and actual rows.",
    )
    explain.add_argument("query", metavar="QUERY", help="the query")
    _time_options(explain, times)
    explain.add_argument("--json", action="store_true", help="print the plan as JSON")

    stats = action(
        "stats",
        "print lines, segments, partitions and bytes of a store",
        "Print lines, segments, partitions, bytes on disk and damaged segments of a store.",
    )
    stats.add_argument("--json", action="store_true", help="print the figures as JSON")

    patterns = action(
        "patterns",
        "mine the templates of a file's lines or a store's query results",
        "Group lines into templates (<*> for their variable parts) and print the commonest: "
        "the lines of a file (or '-': stdin), or the _raw of a query over a store.",
        store=False,
    )
    patterns.add_argument("source", metavar="PATH|FILE", help="a log store, a file or '-'")
    patterns.add_argument(
        "--query", default=None, metavar="Q", help="the query over a store ('*': every line)"
    )
    patterns.add_argument(
        "--top", type=_positive_int, default=20, metavar="N", help="templates shown (20)"
    )
    patterns.add_argument("--json", action="store_true", help="print the templates as JSON")

    serve = action(
        "serve",
        "serve the HTTP API of a store, with alerts",
        "Serve the store's HTTP API until SIGTERM/SIGINT; with --alerts, evaluate the alert "
        "rules in the background and write their events to stderr.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8080, help="port to bind; 0 picks one (8080)")
    serve.add_argument("--alerts", type=Path, default=None, metavar="FILE", help="alert rules")

    alerts = action(
        "alerts", "check alert rules files", "Work with alert rules files.", store=False
    )
    alert_actions = alerts.add_subparsers(dest="alerts_action", metavar="<action>", title="actions")
    alert_actions.required = True
    check = alert_actions.add_parser(
        "check",
        help="check an alert rules file",
        description="Check an alert rules file: TOML syntax, keys, conditions and queries.",
    )
    check.add_argument("file", type=Path, metavar="FILE", help="the rules file (TOML)")
    check.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )

    generate = action(
        "generate",
        "write synthetic web shop logs to stdout",
        "Write deterministic synthetic logs of a web shop (nginx combined or JSON lines, with "
        "an incident of server errors a third of the way in) to stdout.",
        store=False,
    )
    generate.add_argument(
        "--lines", type=whole_number(0), default=1000, metavar="N", help="lines (1000)"
    )
    generate.add_argument("--format", choices=("combined", "json"), default="combined")
    generate.add_argument("--seed", type=whole_number(0), default=7, metavar="S", help="(7)")


def _time_options(parser: argparse.ArgumentParser, times: str) -> None:
    parser.add_argument(
        "--earliest", type=_time_bound, default=None, metavar="T", help=f"from T; {times}"
    )
    parser.add_argument(
        "--latest", type=_time_bound, default=None, metavar="T", help="until T (exclusive)"
    )


def run(args: argparse.Namespace) -> int:
    actions: dict[str, Callable[[argparse.Namespace], int]] = {
        "ingest": _ingest,
        "query": _query,
        "explain": _explain,
        "stats": _stats,
        "patterns": _patterns,
        "serve": _serve,
        "alerts": _alerts,
        "generate": _generate,
    }
    return actions[args.action](args)


# ---------------------------------------------------------------- helpers


def is_store(path: Path) -> bool:
    """Whether ``path`` is a log store directory (it has the store's ``hot`` directory)."""
    return (path / "hot").is_dir()


def _open(path: Path, *, must_exist: bool, background: bool = False) -> LogStore:
    from trusswork.core.errors import NotFound
    from trusswork.logs import LogStore

    if must_exist and not is_store(path):
        raise NotFound(f"{path}: no log store there (create one with 'trusswork logs ingest')")
    return LogStore(path, background=background)


def _console(*, stderr: bool = False) -> Console:
    from rich.console import Console

    console = Console(highlight=False, stderr=stderr)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        # A file or pipe: room for every column, not 80 (COLUMNS still decides).
        console = Console(highlight=False, stderr=stderr, width=160)
    return console


def _progress() -> Progress:
    """A transient bar on stderr; nothing at all when stderr is not a terminal."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
    )

    console = Console(stderr=True, highlight=False)
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        DownloadColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


def _say(console: Console, text: str) -> None:
    console.print(text, markup=False, soft_wrap=True, highlight=False)


def _bytes(count: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} B"


def show_time(ms: int) -> str:
    """``2026-01-02T03:04:05.678Z`` (milliseconds shown only when there are some)."""
    from datetime import UTC, datetime

    moment = datetime.fromtimestamp(ms / 1000, UTC)
    spec = "seconds" if ms % 1000 == 0 else "milliseconds"
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")


def _write_json(document: Any) -> None:
    import orjson

    data = orjson.dumps(
        document, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY, default=str
    )
    sys.stdout.write(data.decode() + "\n")


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGTERM or SIGINT while the block runs (the old handlers come back)."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    old = {signum: signal.signal(signum, handler) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for signum, previous in old.items():
            signal.signal(signum, previous)


# ---------------------------------------------------------------- ingest


@dataclass
class InputReport:
    """What ``ingest`` did with one input."""

    source: str
    accepted: int = 0
    rejected: int = 0
    truncated: int = 0
    errors: list[str] = field(default_factory=list)

    lines: int = 0
    """Lines read so far: where the next batch's line numbers start."""

    def add(self, result: IngestResult, lines: int) -> None:
        """Count ``result``, the outcome of the next ``lines`` lines."""
        self.accepted += result.accepted
        self.rejected += result.rejected
        self.truncated += result.truncated
        room = max(SHOWN_ERRORS - len(self.errors), 0)
        self.errors += [
            f"{self.source}:{self.lines + (error.line or 0)}:{error.column or 1}: {error.reason}"
            for error in result.errors[:room]
        ]
        self.lines += lines


def _ingest_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"format": args.format, "pattern": args.pattern}


def _check_ingest(args: argparse.Namespace) -> list[str]:
    files: list[str] = args.files or ["-"]
    if args.format == "regex" and not args.pattern:
        raise UsageError("--format regex needs --pattern")
    if args.pattern and args.format not in ("regex", "auto"):
        raise UsageError(f"--pattern is for --format regex, not --format {args.format}")
    if args.pattern and args.format == "auto":
        args.format = "regex"
    if files.count("-") > 1:
        raise UsageError("stdin ('-') can be read once")
    if args.follow:
        if "-" in files:
            raise UsageError("--follow follows files; stdin cannot be followed ('-')")
        if args.source is not None and len(files) > 1:
            raise UsageError("--source names one followed file; give one file or no --source")
    return files


def _ingest(args: argparse.Namespace) -> int:
    from trusswork.core.errors import InvalidInput

    files = _check_ingest(args)
    if args.follow:
        return _follow(args, files)
    sizes: dict[str, int] = {}
    for name in files:  # every file readable before anything is stored
        if name != "-":
            with open(name, "rb"):
                sizes[name] = os.stat(name).st_size
    reports: list[InputReport] = []
    with _open(args.path, must_exist=False) as store, _progress() as progress:
        task = progress.add_task("ingest", total=sum(sizes.values()) or None)
        for name in files:
            source = args.source or ("stdin" if name == "-" else name)
            report = InputReport(source)
            progress.update(task, description=f"ingest {Path(source).name}")
            if name == "-":
                _ingest_stream(store, sys.stdin.buffer, report, args, lambda _: None)
            else:
                with open(name, "rb") as file:
                    _ingest_stream(
                        store, file, report, args, lambda count: progress.advance(task, count)
                    )
            reports.append(report)
    _print_reports(reports, args.path)
    errors = [line for report in reports for line in report.errors]
    rejected = sum(report.rejected for report in reports)
    if rejected:
        sys.stdout.flush()
        sys.stderr.write("".join(f"{line}\n" for line in errors))
        shown = (
            f"the first {len(errors)} listed above" if rejected > len(errors) else "listed above"
        )
        raise InvalidInput(f"{rejected:,} line(s) rejected ({shown}); the rest was stored")
    return 0


def _ingest_stream(
    store: LogStore,
    stream: BinaryIO,
    report: InputReport,
    args: argparse.Namespace,
    on_bytes: Callable[[int], None],
) -> None:
    from trusswork.logs._sources import read_stream

    for lines in read_stream(stream):
        report.add(store.ingest(lines, source=report.source, **_ingest_options(args)), len(lines))
        on_bytes(sum(len(line) + 1 for line in lines))


def _print_reports(reports: list[InputReport], path: Path) -> None:
    from rich.table import Table

    table = Table()
    for column in ("input", "accepted", "rejected", "truncated"):
        table.add_column(column, justify="left" if column == "input" else "right")
    for report in reports:
        table.add_row(
            report.source, f"{report.accepted:,}", f"{report.rejected:,}", f"{report.truncated:,}"
        )
    console = _console()
    console.print(table)
    total = sum(report.accepted for report in reports)
    _say(console, f"{total:,} lines stored in {path}")


def _follow(args: argparse.Namespace, files: list[str]) -> int:
    from trusswork.logs._sources import FileTailer, TailPosition

    reports: dict[str, InputReport] = {}
    status_at = time.monotonic()
    unreported = False
    with _open(args.path, must_exist=False) as store, _stop_on_signals() as stop:
        tailers: list[tuple[FileTailer, InputReport]] = []
        try:
            for name in files:
                source = args.source or os.path.abspath(name)
                saved = store.source_position(source)
                position = TailPosition.from_dict(saved) if saved is not None else None
                report = reports.setdefault(source, InputReport(source))
                tailers.append(
                    (FileTailer(name, position=position, poll_interval=POLL_INTERVAL), report)
                )
                resumed = f"resuming at byte {position.offset:,}" if position else "from the start"
                sys.stderr.write(f"trusswork.logs: following {name} ({resumed})\n")
            sys.stderr.write("trusswork.logs: stop with Ctrl-C or SIGTERM\n")
            sys.stderr.flush()
            while not stop.is_set():
                busy = False
                for tailer, report in tailers:
                    batch = tailer.read_batch()
                    if batch is None:
                        continue
                    busy = busy or bool(batch.lines)
                    if batch.lost_position:
                        sys.stderr.write(
                            f"trusswork.logs: warning: {tailer.path}: the saved position was "
                            "not found (file rotated away and removed?); reading from the start\n"
                        )
                    report.add(
                        store.ingest(
                            batch.lines,
                            source=report.source,
                            position=batch.position.to_dict(),
                            **_ingest_options(args),
                        ),
                        len(batch.lines),
                    )
                    unreported = unreported or bool(batch.lines)
                now = time.monotonic()
                if unreported and now - status_at >= STATUS_EVERY:
                    _follow_status(reports)
                    status_at, unreported = now, False
                if not busy:
                    stop.wait(POLL_INTERVAL)
        finally:
            for tailer, _ in tailers:
                tailer.close()
    _follow_status(reports)
    _print_reports(list(reports.values()), args.path)
    for report in reports.values():
        sys.stderr.write("".join(f"{line}\n" for line in report.errors))
    return 0


def _follow_status(reports: dict[str, InputReport]) -> None:
    accepted = sum(report.accepted for report in reports.values())
    rejected = sum(report.rejected for report in reports.values())
    sys.stderr.write(f"trusswork.logs: {accepted} lines stored, {rejected} rejected\n")
    sys.stderr.flush()


# ---------------------------------------------------------------- query and explain


def _run_query(args: argparse.Namespace) -> LogResult:
    with _open(args.path, must_exist=True) as store:
        result: LogResult = store.query(args.query, earliest=args.earliest, latest=args.latest)
    return result


def _warn(result: LogResult) -> None:
    for warning in result.warnings:
        sys.stderr.write(f"trusswork.logs: warning: {warning}\n")


def _query(args: argparse.Namespace) -> int:
    from trusswork.logs import LogResult

    result = _run_query(args)
    limit = (
        args.limit if args.limit is not None else (TABLE_ROWS if args.format == "table" else None)
    )
    shown = (
        result
        if limit is None
        else LogResult(result.to_arrow().slice(0, limit), result.plan, result.warnings)
    )
    sys.stdout.flush()
    _warn(result)
    if args.format == "json":
        sys.stdout.write(shown.to_json().decode() + "\n")
    elif args.format == "ndjson":
        import orjson

        for row in shown.to_pylist():
            sys.stdout.write(
                orjson.dumps(row, option=orjson.OPT_SERIALIZE_NUMPY, default=str).decode() + "\n"
            )
    elif args.format == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(shown.columns)
        for row in shown.to_arrow().to_pylist():
            writer.writerow(["" if row[name] is None else row[name] for name in shown.columns])
    else:
        _print_table(shown, total=len(result), seconds=result.plan.seconds)
    if args.explain:
        plan = result.plan.render() + "\n"
        if args.format == "table":
            sys.stdout.write("\n" + plan)
        else:
            sys.stdout.flush()
            sys.stderr.write(plan)
    return 0


def _cell(name: str, value: Any) -> str:
    if value is None:
        return ""
    if name == "_time" and isinstance(value, int):
        return show_time(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _print_table(result: LogResult, *, total: int, seconds: float) -> None:
    from rich.table import Table

    console = _console()
    columns = result.columns
    events = "_raw" in columns
    if events:  # events: their time and text; the fields are in the other formats
        columns = [name for name in ("_time", "_raw") if name in columns]
    table = Table()
    for name in columns:
        if name == "_raw":
            table.add_column(name, no_wrap=True, overflow="ellipsis", ratio=1)
        else:
            table.add_column(name, no_wrap=True, justify="left" if name == "_time" else "right")
    for row in result.to_arrow().select(columns).to_pylist():
        table.add_row(*(_cell(name, row[name]) for name in columns))
    what = "events" if events else "rows"
    more = f", {len(result):,} shown (--limit)" if len(result) < total else ""
    _say(console, f"{total:,} {what}{more} in {seconds * 1000:.1f} ms")
    if columns:
        table.expand = events
        console.print(table)


def _explain(args: argparse.Namespace) -> int:
    result = _run_query(args)
    _warn(result)
    if args.json:
        _write_json(result.plan.to_dict())
    else:
        sys.stdout.write(result.plan.render() + "\n")
    return 0


# ---------------------------------------------------------------- stats


def store_figures(store: LogStore) -> dict[str, Any]:
    """What ``stats --json`` prints: the store's counts plus the time range of its lines."""
    store.refresh()
    figures = dict(store.stats())
    ranges = [
        info.meta.numeric_fields["_time"]
        for info in store.segments()
        if "_time" in info.meta.numeric_fields
    ]
    figures["earliest_ms"] = int(min(r["min"] for r in ranges)) if ranges else None
    figures["latest_ms"] = int(max(r["max"] for r in ranges)) if ranges else None
    return figures


def _stats(args: argparse.Namespace) -> int:
    with _open(args.path, must_exist=True) as store:
        figures = store_figures(store)
    if args.json:
        _write_json(figures)
        return 0
    from rich.table import Table

    earliest, latest = figures["earliest_ms"], figures["latest_ms"]
    rows = [
        ("lines", f"{figures['lines']:,}"),
        ("segments", f"{figures['segments']:,}"),
        ("partitions", f"{figures['partitions']:,}"),
        ("bytes in segments", _bytes(figures["bytes"])),
        (
            "bytes per line",
            f"{figures['bytes'] / figures['lines']:.1f}" if figures["lines"] else "n/a",
        ),
        ("earliest line", "" if earliest is None else show_time(earliest)),
        ("latest line", "" if latest is None else show_time(latest)),
        ("damaged segments", str(len(figures["corrupt_segments"]))),
    ]
    table = Table()
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in rows:
        table.add_row(name, value)
    console = _console()
    _say(console, str(args.path))
    console.print(table)
    for path in figures["corrupt_segments"]:
        _say(console, f"damaged (skipped by queries): {path}")
    return 0


# ---------------------------------------------------------------- patterns


def _pattern_lines(args: argparse.Namespace) -> Iterator[bytes | str]:
    from trusswork.logs._sources import read_stream

    source = Path(args.source)
    if args.source != "-" and source.is_dir():
        with _open(source, must_exist=True) as store:
            result = store.query(args.query or "*")
        if "_raw" not in result.columns:
            raise UsageError(f"--query {args.query!r} has no _raw column to mine; give a search")
        for value in result.to_arrow().column("_raw").to_pylist():
            if value is not None:
                yield value
        return
    if args.query is not None:
        raise UsageError("--query is for a log store; a file's lines are all mined")
    if args.source == "-":
        for lines in read_stream(sys.stdin.buffer):
            yield from lines
        return
    with open(source, "rb") as file:
        for lines in read_stream(file):
            yield from lines


def _patterns(args: argparse.Namespace) -> int:
    from trusswork.logs import PatternMiner

    miner = PatternMiner()
    total = 0
    for line in _pattern_lines(args):
        miner.add(line)
        total += 1
    templates = sorted(miner.templates(), key=lambda t: (-t.count, t.text))
    top = templates[: args.top]
    if args.json:
        _write_json(
            {
                "lines": total,
                "templates": len(templates),
                "top": [{"template": t.text, "count": t.count} for t in top],
            }
        )
        return 0
    from rich.table import Table

    console = _console()
    _say(console, f"{total:,} lines, {len(templates):,} templates; the {len(top)} commonest:")
    table = Table()
    table.add_column("count", justify="right")
    table.add_column("share", justify="right")
    table.add_column("template", overflow="fold")
    for template in top:
        table.add_row(f"{template.count:,}", f"{template.count / total:.1%}", template.text)
    console.print(table)
    return 0


# ---------------------------------------------------------------- serve


_MAX_BODY = 16 << 20  # build_app's default max_body_bytes


def _serve(args: argparse.Namespace) -> int:
    from trusswork.http import ServerConfig, serve
    from trusswork.logs import AlertEvent, AlertManager, CallbackNotifier, load_alert_rules
    from trusswork.logs._api import build_app

    rules = load_alert_rules(args.alerts) if args.alerts is not None else None
    host: str = args.host

    def write_event(event: AlertEvent) -> None:
        sys.stderr.write(f"trusswork.logs: alert: {event.to_json()}\n")
        sys.stderr.flush()

    with _open(args.path, must_exist=False, background=True) as store:
        manager = None
        if rules is not None:
            manager = AlertManager(
                lambda q, lo, hi: store.query(q, earliest=lo, latest=hi).to_pylist(),
                rules,
                notifiers={"stderr": CallbackNotifier(write_event)},
            )
            manager.start()

        def listening(port: int) -> None:
            shown = f"[{host}]" if ":" in host else host
            sys.stderr.write(f"trusswork.logs: listening on http://{shown}:{port}\n")
            sys.stderr.flush()

        try:
            app = build_app(store, alerts=manager)
            # Bodies past the app's limit are refused (413) as they arrive, not after.
            config = ServerConfig(max_body=_MAX_BODY)
            serve(app, host, args.port, config=config, on_listening=listening)
        finally:
            if manager is not None:
                manager.close()
    return 0


# ---------------------------------------------------------------- alerts check


def _alerts(args: argparse.Namespace) -> int:
    from trusswork.core.errors import ParseError
    from trusswork.logs import QueryParseError, load_alert_rules, parse_query

    path: Path = args.file
    rules = load_alert_rules(path)
    for rule in rules:
        try:
            parse_query(rule.query)
        except QueryParseError as error:
            raise ParseError(
                error.reason,
                source=rule.query,
                offset=error.offset,
                filename=f"{path}: alert {rule.name!r}: key 'query'",
            ) from error
    from rich.table import Table

    table = Table()
    for column in ("alert", "query", "condition", "window", "every", "for", "severity"):
        table.add_column(column, overflow="fold")
    for rule in rules:
        table.add_row(
            rule.name,
            rule.query,
            rule.condition,
            f"{rule.window:g} s",
            f"{rule.every:g} s",
            f"{rule.for_:g} s",
            rule.severity,
        )
    console = _console()
    _say(console, f"{path}: {len(rules)} alert rule(s), all valid")
    if rules:
        console.print(table)
    return 0


# ---------------------------------------------------------------- generate


def _generate(args: argparse.Namespace) -> int:
    from trusswork.cli._logs_demo import generate_lines

    write = sys.stdout.write
    for line in generate_lines(args.lines, format=args.format, seed=args.seed):
        write(line + "\n")
    return 0
