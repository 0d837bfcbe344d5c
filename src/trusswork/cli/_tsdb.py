"""``trusswork tsdb``: serve, query, load, inspect and maintain a time-series database.

Every action takes ``--db DIR``, the database directory. Actions that only
read or maintain a database (``query``, ``cardinality``, ``compact``,
``stats``) refuse a directory that does not exist; the others create it.
A database is open in one process at a time: while ``serve`` runs, the
other actions on the same directory fail with a one-line error.

``trusswork tsdb serve --db DIR [--host H] [--port P] [--retention D]
[--raw-retention D]`` serves the Prometheus HTTP API of the database
(:func:`~trusswork.tsdb.build_app`: queries, series and label
look-ups, remote write, text and line-protocol imports, ``/metrics``) on
:mod:`trusswork.http` until SIGTERM or SIGINT, cutting, compacting and
applying retention in the background; the database is closed cleanly on
the way out. The bound address is printed on stderr as ``trusswork.tsdb:
listening on http://HOST:PORT`` once connections are accepted (with
``--port 0``, the port picked).

``trusswork tsdb query --db DIR EXPR [--time T] [--start T [--end T]
[--step S]] [--json]`` evaluates the PromQL expression EXPR at ``--time``
(default now), or with ``--start`` over a range (``--end`` defaults to now,
``--step`` to the range over 250, at least 1 s). Times are Unix seconds,
RFC 3339 (``2026-01-02T03:04:05Z``; no zone means UTC), ``now`` or
``now-1h``. An instant vector prints one row per series; a range result
one row per series with its point count, minimum, maximum and last value.
``--json`` prints the ``data`` object of Prometheus's ``/api/v1/query``. A
query that does not parse prints the position with a caret (exit 1).

``trusswork tsdb import --db DIR FILE... [--format prometheus|influx|auto]
[--precision ns|us|ms|s] [--timestamp T]`` loads Prometheus text exposition
or Influx line protocol files. ``auto`` (the default) goes by the suffix
(``.prom``: exposition; ``.lp``, ``.influx``, ``.line``: line protocol),
else by the first sample line (line protocol has ``field=value`` after
the first space). ``--precision`` is the unit of line-protocol timestamps
(ns); ``--timestamp`` stamps lines that carry none (default now). Each file
is read in slices of lines with a progress bar. It prints the samples
stored per file; every rejected line goes to stderr as ``FILE:LINE:COLUMN:
reason``, the good lines are still stored, and the exit status is then 1.

``trusswork tsdb scrape --db DIR URL [--every S] [--count N] [--timeout S]``
fetches a Prometheus text endpoint (http or https) N times (1), every S
seconds (15 s), stamps each scrape's samples with its time and stores
them; a failed scrape or a rejected line makes the exit status 1.

``trusswork tsdb cardinality --db DIR [--top N] [--json]`` prints the head's
series count and the metrics, label names (by distinct values) and label
pairs with the most series: where a label explosion comes from.

``trusswork tsdb compact --db DIR [--retention D] [--raw-retention D]``
cuts the whole head into a block, merges blocks, writes rollups and applies
retention (raw blocks older than ``--raw-retention`` are replaced by their
rollups, everything older than ``--retention`` deleted), then prints
blocks, samples and bytes before and after. Samples older than the newest
one cut are refused afterwards.

``trusswork tsdb stats --db DIR [--json]`` prints series, samples (head and
blocks), blocks, bytes on disk (blocks, WAL) and bytes per stored sample.

``trusswork tsdb generate --db DIR [--hosts N] [--hours H] [--interval S]
[--seed N]`` writes synthetic node_exporter series (counters, gauges and
constant series, scraped with jitter) for N hosts (4) over the last H
hours (2) at one scrape every S seconds (15), through the batched append
API, with a progress bar: data to try queries on.

Bad values are usage errors (exit 2) naming the option.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from trusswork.cli._app import UsageError
from trusswork.cli._argtypes import whole_number

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from trusswork.tsdb import (
        TSDB,
        BlockMeta,
        CardinalityReport,
        Labels,
        ParsedBatch,
        Result,
        TSDBStats,
    )

#: Formats ``import`` reads, and the file suffixes ``auto`` maps to each.
FORMATS = ("prometheus", "influx", "auto")
SUFFIXES = {".prom": "prometheus", ".lp": "influx", ".influx": "influx", ".line": "influx"}
#: Units of line-protocol timestamps.
PRECISIONS = ("ns", "us", "ms", "s")
#: Lines ``import`` parses and stores at a time (keeps memory flat and the bar moving).
SLICE_LINES = 20_000
#: A range query without ``--step`` has about this many steps.
AUTO_STEPS = 250
#: Samples ``generate`` hands ``append_batch`` per call.
GENERATE_BATCH = 200_000

#: Longest duration an option takes, in seconds (100 years).
MAX_SECONDS = 100 * 365.25 * 86_400
#: The range of times (Unix seconds) a date can show: 0001-01-01 to 9999-12-31.
FIRST_SECOND = -62_135_596_800
LAST_SECOND = 253_402_300_799

_positive_int = whole_number(1)
_port = whole_number(0, 65535, noun="a port number")
_RELATIVE = re.compile(r"now\s*(?:([+-])\s*(\S.*))?")


# ---------------------------------------------------------------- argument types


def _duration(text: str) -> float:
    """Seconds: a number or a duration such as ``15s``, ``5m``, ``1h30m``; more than 0."""
    from trusswork.core.config import parse_duration
    from trusswork.core.errors import InvalidInput

    try:
        value = parse_duration(text)
    except InvalidInput:
        raise argparse.ArgumentTypeError(
            f"expected seconds or a duration such as '15s', '5m' or '1h', got {text!r}"
        ) from None
    if not 0 < value <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(
            f"must be more than 0 seconds and at most 100 years, got {text!r}"
        )
    return value


def _hours(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of hours, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be more than 0 hours, got {text!r}")
    return value


def parse_time(text: str, *, now_ms: int | None = None) -> int:
    """A time argument in ms: Unix seconds, RFC 3339, ``now`` or ``now-DURATION``.

    Times must fall in years 1 to 9999 (what a date can show).

    Raises
    ------
    argparse.ArgumentTypeError
        ``text`` is none of these (argparse reports it naming the option).
    """
    from trusswork.core.config import parse_duration
    from trusswork.core.errors import InvalidInput

    stripped = text.strip()
    relative = _RELATIVE.fullmatch(stripped)
    seconds: float
    if relative is not None:
        now = time.time() if now_ms is None else now_ms / 1000
        sign, offset = relative.groups()
        try:
            shift = 0.0 if sign is None else parse_duration(offset)
        except InvalidInput:
            raise argparse.ArgumentTypeError(
                f"expected 'now', 'now-DURATION' (such as 'now-1h'), got {text!r}"
            ) from None
        seconds = now + shift if sign == "+" else now - shift
    else:
        try:
            seconds = float(stripped)
        except ValueError:
            try:
                moment = datetime.fromisoformat(stripped.replace("Z", "+00:00"))
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"expected Unix seconds, an RFC 3339 time, 'now' or 'now-1h', got {text!r}"
                ) from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            try:
                seconds = moment.timestamp()
            except (OverflowError, ValueError):  # a zone pushes it past year 1 or 9999
                seconds = math.inf
    if not FIRST_SECOND <= seconds <= LAST_SECOND:
        raise argparse.ArgumentTypeError(f"must be a time in years 1 to 9999, got {text!r}")
    return round(seconds * 1000)


# ---------------------------------------------------------------- parser


def register(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="<action>", title="actions")
    actions.required = True

    def action(name: str, help: str, description: str) -> argparse.ArgumentParser:
        child = actions.add_parser(name, help=help, description=description)
        child.add_argument(
            "--db", type=Path, required=True, metavar="DIR", help="the database directory"
        )
        # As for every command: --debug is accepted after the action too.
        child.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
        return child

    serve = action(
        "serve",
        "serve the Prometheus HTTP API of a database",
        "Serve the Prometheus HTTP API (queries, labels, remote write, imports, /metrics) of "
        "the database until SIGTERM/SIGINT; cut, compact and apply retention meanwhile.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    serve.add_argument("--port", type=_port, default=9090, help="port to bind; 0 picks one (9090)")
    _retention_options(serve)

    query = action(
        "query",
        "evaluate a PromQL expression at a time or over a range",
        "Evaluate a PromQL expression at --time (default now), or with --start over a range, "
        "and print the result as a table or as the API's JSON data object.",
    )
    query.add_argument("expr", metavar="EXPR", help="the PromQL expression")
    times = "Unix seconds, RFC 3339, 'now' or 'now-1h'"
    query.add_argument(
        "--time", type=parse_time, default=None, metavar="T", help=f"evaluate at T (now); {times}"
    )
    query.add_argument(
        "--start", type=parse_time, default=None, metavar="T", help="a range query from T"
    )
    query.add_argument(
        "--end", type=parse_time, default=None, metavar="T", help="a range query until T (now)"
    )
    query.add_argument(
        "--step",
        type=_duration,
        default=None,
        metavar="S",
        help="seconds or '1m' between range steps (the range over 250, at least 1 s)",
    )
    query.add_argument("--json", action="store_true", help="print the API's data object")

    load = action(
        "import",
        "load Prometheus text exposition or Influx line protocol files",
        "Store the samples of text exposition or line protocol files; list every rejected "
        "line (the good ones are stored) and exit 1 if there was one.",
    )
    load.add_argument("files", nargs="+", type=Path, metavar="FILE", help="files to load")
    load.add_argument(
        "--format", choices=FORMATS, default="auto", help="(auto: by suffix, else by content)"
    )
    load.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=None,
        help="unit of line-protocol timestamps (ns)",
    )
    load.add_argument(
        "--timestamp",
        type=parse_time,
        default=None,
        metavar="T",
        help="time of lines without one (now)",
    )

    scrape = action(
        "scrape",
        "fetch a Prometheus text endpoint and store it, once or every S seconds",
        "Fetch a Prometheus text exposition endpoint COUNT times, every S seconds, and store "
        "each scrape's samples stamped with its time.",
    )
    scrape.add_argument("url", metavar="URL", help="http(s) URL of the endpoint")
    scrape.add_argument(
        "--every", type=_duration, default=15.0, metavar="S", help="seconds between scrapes (15s)"
    )
    scrape.add_argument(
        "--count", type=_positive_int, default=1, metavar="N", help="scrapes to make (1)"
    )
    scrape.add_argument(
        "--timeout", type=_duration, default=10.0, metavar="S", help="per scrape (10s)"
    )

    cardinality = action(
        "cardinality",
        "show where the series come from (metrics, labels, label pairs)",
        "Print the head's series count and the metrics, label names and label pairs "
        "contributing most series.",
    )
    cardinality.add_argument(
        "--top", type=_positive_int, default=10, metavar="N", help="rows per table (10)"
    )
    cardinality.add_argument("--json", action="store_true", help="print the report as JSON")

    compact = action(
        "compact",
        "cut the head into a block, compact, downsample and apply retention",
        "Cut the whole head into a block, merge blocks, write rollups and apply retention; "
        "print what changed.",
    )
    _retention_options(compact)

    stats = action(
        "stats",
        "print series, samples, blocks and bytes per sample",
        "Print series, samples, blocks, bytes on disk and bytes per stored sample.",
    )
    stats.add_argument("--json", action="store_true", help="print the figures as JSON")

    generate = action(
        "generate",
        "write synthetic node_exporter metrics into a database",
        "Write synthetic node_exporter series (counters, gauges, constants) of N hosts over "
        "the last H hours into the database.",
    )
    generate.add_argument(
        "--hosts", type=whole_number(1, 10_000), default=4, metavar="N", help="hosts (4)"
    )
    generate.add_argument("--hours", type=_hours, default=2.0, metavar="H", help="hours (2)")
    generate.add_argument(
        "--interval", type=_duration, default=15.0, metavar="S", help="scrape interval (15s)"
    )
    generate.add_argument("--seed", type=whole_number(0), default=7, metavar="N", help="(7)")


def _retention_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--retention", type=_duration, default=None, metavar="D", help="delete data older (keep)"
    )
    parser.add_argument(
        "--raw-retention",
        type=_duration,
        default=None,
        metavar="D",
        help="replace raw blocks older than this by their rollups (--retention)",
    )


def run(args: argparse.Namespace) -> int:
    actions: dict[str, Callable[[argparse.Namespace], int]] = {
        "serve": _serve,
        "query": _query,
        "import": _import,
        "scrape": _scrape,
        "cardinality": _cardinality,
        "compact": _compact,
        "stats": _stats,
        "generate": _generate,
    }
    return actions[args.action](args)


# ---------------------------------------------------------------- helpers


def _open(
    path: Path,
    *,
    must_exist: bool,
    background: bool = False,
    retention: tuple[float | None, float | None] = (None, None),
) -> TSDB:
    """The database at ``path``; ``retention`` is (``--retention``, ``--raw-retention``) in s."""
    from trusswork.core.errors import NotFound
    from trusswork.tsdb import TSDB

    if must_exist and not path.is_dir():
        raise NotFound(f"--db {path}: no database directory there")
    keep, keep_raw = (None if s is None else round(s * 1000) for s in retention)
    return TSDB(path, background=background, retention_ms=keep, raw_retention_ms=keep_raw)


def _console() -> Console:
    from rich.console import Console

    stdout = Console(highlight=False)
    if not stdout.is_terminal:  # a file or pipe: room for every column, not 80
        stdout = Console(highlight=False, width=140)
    return stdout


def _progress() -> Progress:
    """A transient bar on stderr; nothing at all when stderr is not a terminal."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

    console = Console(stderr=True, highlight=False)
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


def _dumps(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2) + "\n")


def _say(console: Console, text: str) -> None:
    console.print(text, markup=False, soft_wrap=True, highlight=False)


def show_time(ms: int) -> str:
    """``2026-01-02T03:04:05Z`` (milliseconds shown only when there are some)."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    spec = "seconds" if ms % 1000 == 0 else "milliseconds"
    return moment.isoformat(timespec=spec).replace("+00:00", "Z")


def show_value(value: float) -> str:
    """A sample value for a table: up to 15 significant digits, NaN, +Inf, -Inf."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:.15g}" if abs(value) < 1e15 else repr(value)


def series_name(labels: Labels) -> str:
    """``metric{label="value", ...}`` as PromQL writes a series (``{}`` without labels)."""
    pairs = dict(labels)
    name = pairs.pop("__name__", "")
    if not pairs:
        return name or "{}"
    inner = ", ".join(
        f"{key}={json.dumps(value, ensure_ascii=False)}" for key, value in pairs.items()
    )
    return f"{name}{{{inner}}}"


def _size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += (Path(root) / name).stat().st_size
            except FileNotFoundError:
                continue  # removed while we looked
    return total


def _bytes(count: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} B"


# ---------------------------------------------------------------- serve


def _serve(args: argparse.Namespace) -> int:
    from trusswork.http import serve
    from trusswork.tsdb import build_app

    host: str = args.host
    with _open(
        args.db, must_exist=False, background=True, retention=(args.retention, args.raw_retention)
    ) as db:

        def listening(port: int) -> None:
            shown = f"[{host}]" if ":" in host else host
            sys.stderr.write(f"trusswork.tsdb: listening on http://{shown}:{port}\n")
            sys.stderr.flush()

        serve(build_app(db), host, args.port, on_listening=listening)
    return 0


# ---------------------------------------------------------------- query


def _query(args: argparse.Namespace) -> int:
    from trusswork.tsdb import Engine, MatrixResult

    now = int(time.time() * 1000)
    ranged = args.start is not None or args.end is not None or args.step is not None
    if ranged and args.time is not None:
        raise UsageError("--time is for an instant query; a range query takes --start/--end")
    if ranged and args.start is None:
        raise UsageError("a range query needs --start (--end and --step are optional)")
    with _open(args.db, must_exist=True) as db:
        engine = Engine(db)
        if ranged:
            start: int = args.start
            end: int = now if args.end is None else args.end
            if end < start:
                raise UsageError(f"--end {show_time(end)} is before --start {show_time(start)}")
            if args.step is None:
                step = max(1000, math.ceil((end - start) / AUTO_STEPS / 1000) * 1000)
            else:
                step = max(1, round(args.step * 1000))
            result: Result = engine.range(args.expr, start, end, step)
            heading = f"{show_time(start)} to {show_time(end)}, step {step / 1000:g} s"
        else:
            at = now if args.time is None else args.time
            result = engine.instant(args.expr, at)
            heading = f"at {show_time(at)}"
    if args.json:
        _dumps(result.to_prometheus_json())
        return 0
    from rich.table import Table

    console = _console()
    table = Table()
    if isinstance(result, MatrixResult):
        points = sum(len(series.ts) for series in result.series)
        _say(console, f"{heading}: {len(result.series)} series, {points} points")
        for column in ("series", "points", "min", "max", "last", "last at"):
            table.add_column(column, justify="left" if column == "series" else "right")
        for series in result.series:
            values = series.values
            table.add_row(
                series_name(series.labels),
                str(len(values)),
                show_value(float(values.min())) if len(values) else "",
                show_value(float(values.max())) if len(values) else "",
                show_value(float(values[-1])) if len(values) else "",
                show_time(int(series.ts[-1])) if len(values) else "",
            )
    elif result.result_type == "vector":
        _say(console, f"{heading}: {len(result.samples)} series")
        table.add_column("series")
        table.add_column("value", justify="right")
        for labels, _, value in result.samples:
            table.add_row(series_name(labels), show_value(value))
    else:
        _say(console, f"{heading}: {result.result_type}")
        table.add_column(result.result_type, justify="right")
        shown = result.value if isinstance(result.value, str) else show_value(result.value)
        table.add_row(shown)
    console.print(table)
    return 0


# ---------------------------------------------------------------- import


@dataclass
class FileReport:
    """What ``import`` did with one file."""

    source: str
    format: str
    stored: int = 0
    rejected: list[str] = field(default_factory=list)
    """``source:line:column: reason`` per refused line, or ``source: reason`` per refused series."""


def detect_format(path: Path, head: bytes) -> str:
    """``prometheus`` or ``influx`` for ``--format auto``: by suffix, else by the first sample."""
    known = SUFFIXES.get(path.suffix.lower())
    if known is not None:
        return known
    for raw in head.splitlines():
        line = raw.decode("utf-8", "replace").strip()
        if not line or line.startswith("#"):
            continue
        first, _, rest = line.partition(" ")
        if "{" in first:
            return "prometheus"
        fields = rest.strip().split(" ", 1)[0]
        return "influx" if "=" in fields else "prometheus"
    return "prometheus"


def _slices(file: BinaryIO, size: int) -> Iterator[tuple[int, list[str], list[int], int]]:
    """``(first line number, lines, numbers of undecodable lines, bytes)`` per slice.

    A line that is not UTF-8 is handed on blank (the parsers skip it) and
    reported by number, so the other lines of its slice still load.
    """
    number = 1
    while True:
        raw = [line for _, line in zip(range(size), file, strict=False)]
        if not raw:
            return
        data = b"".join(raw)
        try:
            lines = data.decode("utf-8").split("\n")
            bad: list[int] = []
        except UnicodeDecodeError:
            lines, bad = [], []
            for offset, line in enumerate(raw):
                try:
                    lines.append(line.decode("utf-8").rstrip("\n"))
                except UnicodeDecodeError:
                    lines.append("")
                    bad.append(number + offset)
        yield number, lines, bad, len(data)
        number += len(raw)


def _parse_slice(
    text: str, kind: str, *, precision: str, default_ts: int, carried: ParsedBatch
) -> tuple[ParsedBatch, int]:
    """Parse one slice; returns the batch and how many lines were put in front of it.

    The exposition parser checks ``# TYPE``/``# HELP`` across a file (a
    family declared twice, a histogram bucket without ``le``): the families
    of earlier slices are declared again in front of each slice, so a file
    read in slices is checked as if read whole.
    """
    from trusswork.tsdb import parse_exposition, parse_line_protocol

    if kind == "influx":
        return parse_line_protocol(text, precision=precision, default_ts_ms=default_ts), 0
    prefix = [f"# TYPE {name} {family}" for name, family in carried.types.items()]
    prefix += [f"# HELP {name} -" for name in carried.help]
    batch = parse_exposition("\n".join([*prefix, text]), default_ts_ms=default_ts)
    carried.types.update(batch.types)
    carried.help.update(batch.help)
    return batch, len(prefix)


def load_file(
    db: TSDB,
    path: Path,
    kind: str,
    *,
    precision: str,
    default_ts: int,
    on_bytes: Callable[[int], None] = lambda count: None,
) -> FileReport:
    """Parse and store one file slice by slice; list every refused line.

    Raises
    ------
    OSError
        The file cannot be read.
    """
    from trusswork.tsdb import ParsedBatch

    report = FileReport(str(path), kind)
    carried = ParsedBatch()
    with open(path, "rb") as file:
        for first, lines, bad, size in _slices(file, SLICE_LINES):
            batch, shift = _parse_slice(
                "\n".join(lines), kind, precision=precision, default_ts=default_ts, carried=carried
            )
            refused = [(number, f"{path}:{number}:1: not UTF-8 text") for number in bad]
            for error in batch.errors:
                line = (error.line or 1) - shift + first - 1
                refused.append((line, f"{path}:{line}:{error.column or 1}: {error.reason}"))
            report.rejected += [text for _, text in sorted(refused)]
            stored, problems = db.store_samples(batch.samples, default_ts)
            report.stored += stored
            report.rejected += [f"{path}: {problem}" for problem in problems]
            on_bytes(size)
    return report


def _import(args: argparse.Namespace) -> int:
    from trusswork.core.errors import InvalidInput

    files: list[Path] = args.files
    if args.format == "prometheus" and args.precision is not None:
        raise UsageError("--precision is for line protocol; --format prometheus has ms times")
    kinds: dict[Path, str] = {}
    sizes: dict[Path, int] = {}
    for path in files:  # every file readable before anything is stored
        with open(path, "rb") as file:
            kinds[path] = (
                args.format if args.format != "auto" else detect_format(path, file.read(8192))
            )
        sizes[path] = path.stat().st_size
    default_ts = int(time.time() * 1000) if args.timestamp is None else args.timestamp
    reports: list[FileReport] = []
    with _open(args.db, must_exist=False) as db, _progress() as progress:
        task = progress.add_task("import", total=sum(sizes.values()) or None)
        for path in files:
            progress.update(task, description=f"import {path.name}")
            reports.append(
                load_file(
                    db,
                    path,
                    kinds[path],
                    precision=args.precision or "ns",
                    default_ts=default_ts,
                    on_bytes=lambda count: progress.advance(task, count),
                )
            )
    from rich.table import Table

    table = Table()
    for column in ("file", "format", "samples stored", "rejected"):
        table.add_column(
            column, justify="right" if column in ("samples stored", "rejected") else "left"
        )
    for report in reports:
        table.add_row(report.source, report.format, f"{report.stored:,}", str(len(report.rejected)))
    console = _console()
    console.print(table)
    total = sum(report.stored for report in reports)
    _say(console, f"{total:,} samples stored in {args.db}")
    rejected = [line for report in reports for line in report.rejected]
    if rejected:
        sys.stdout.flush()
        sys.stderr.write("".join(f"{line}\n" for line in rejected))
        raise InvalidInput(
            f"{len(rejected)} line(s) or series rejected (listed above); the rest was stored"
        )
    return 0


# ---------------------------------------------------------------- scrape


def fetch(url: str, timeout: float) -> str:
    """The body of a Prometheus text endpoint.

    Raises
    ------
    Unavailable
        The endpoint did not answer, answered with an error status, or sent
        something that is not UTF-8 text.
    """
    import urllib.error
    import urllib.request

    import trusswork
    from trusswork.core.errors import Unavailable

    request = urllib.request.Request(
        url,
        headers={
            "Accept": "text/plain;version=0.0.4;q=1,*/*;q=0.1",
            "User-Agent": f"trusswork/{trusswork.__version__}",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body: bytes = response.read()
            charset = response.headers.get_content_charset() or "utf-8"
    except urllib.error.HTTPError as error:
        raise Unavailable(f"scrape of {url} failed: HTTP {error.code} {error.reason}") from None
    except urllib.error.URLError as error:
        raise Unavailable(f"scrape of {url} failed: {error.reason}") from None
    except (TimeoutError, OSError) as error:
        raise Unavailable(f"scrape of {url} failed: {error}") from None
    try:
        return body.decode(charset)
    except (UnicodeDecodeError, LookupError):
        raise Unavailable(f"scrape of {url} failed: the body is not {charset} text") from None


def _scrape(args: argparse.Namespace) -> int:
    from urllib.parse import urlsplit

    from trusswork.core.errors import InvalidInput, Unavailable
    from trusswork.tsdb import parse_exposition

    url: str = args.url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"URL {url!r}: expected an http:// or https:// address")
    console = _console()
    failures: list[str] = []
    rejected: list[str] = []
    with _open(args.db, must_exist=False) as db:
        started = time.monotonic()  # scrape k is due at started + k * every
        for index in range(args.count):
            if index:
                time.sleep(max(0.0, started + index * args.every - time.monotonic()))
            at = int(time.time() * 1000)
            began = time.perf_counter()
            try:
                text = fetch(url, args.timeout)
            except Unavailable as error:
                if args.count == 1:
                    raise
                failures.append(error.message)
                sys.stderr.write(f"scrape {index + 1}: {error.message}\n")
                continue
            batch = parse_exposition(text, default_ts_ms=at, filename=url)
            stored, problems = db.store_samples(batch.samples, at)
            refused = [f"{url}:{e.line}:{e.column or 1}: {e.reason}" for e in batch.errors]
            refused += [f"{url}: {problem}" for problem in problems]
            rejected += refused
            seconds = time.perf_counter() - began
            _say(
                console,
                f"scrape {index + 1} at {show_time(at)}: {stored:,} samples stored, "
                f"{len(refused)} rejected ({seconds * 1000:.0f} ms)",
            )
    if rejected:
        sys.stdout.flush()
        sys.stderr.write("".join(f"{line}\n" for line in rejected))
    if failures or rejected:
        raise InvalidInput(
            f"{len(failures)} of {args.count} scrape(s) failed, {len(rejected)} line(s) or "
            "series rejected; the rest was stored"
        )
    return 0


# ---------------------------------------------------------------- cardinality


def cardinality_document(report: CardinalityReport) -> dict[str, Any]:
    """The cardinality report as ``cardinality --json`` prints it."""
    return {
        "total_series": report.total_series,
        "top_metrics": [{"metric": m, "series": n} for m, n in report.top_metrics],
        "top_label_names": [{"label": name, "values": n} for name, n in report.top_label_names],
        "top_label_pairs": [
            {"label": name, "value": value, "series": n}
            for (name, value), n in report.top_label_pairs
        ],
    }


def _cardinality(args: argparse.Namespace) -> int:
    with _open(args.db, must_exist=True) as db:
        report = db.cardinality(args.top)
    if args.json:
        _dumps(cardinality_document(report))
        return 0
    from rich.table import Table

    def share(count: int) -> str:
        return f"{count / report.total_series:.1%}" if report.total_series else ""

    console = _console()
    _say(console, f"{report.total_series:,} series in the head of {args.db}")
    if not report.total_series:
        _say(
            console, "(the head is empty: series that only have samples in blocks are not counted)"
        )
        return 0
    tables = (
        ("metric", "series", [(m, n, share(n)) for m, n in report.top_metrics]),
        ("label", "distinct values", [(m, n, "") for m, n in report.top_label_names]),
        (
            "label pair",
            "series",
            [
                (f"{k}={json.dumps(v, ensure_ascii=False)}", n, share(n))
                for (k, v), n in report.top_label_pairs
            ],
        ),
    )
    for what, counted, rows in tables:
        _say(console, f"top {what}s by {counted}:")
        table = Table()
        table.add_column(what)
        table.add_column(counted, justify="right")
        if counted == "series":
            table.add_column("share", justify="right")
        for name, count, part in rows:
            cells = [name, f"{count:,}"] + ([part] if counted == "series" else [])
            table.add_row(*cells)
        console.print(table)
    return 0


# ---------------------------------------------------------------- stats and compact


@dataclass(frozen=True)
class Snapshot:
    """Sizes of a database: ``stats`` prints one, ``compact`` two."""

    series: int
    """Series in the head."""
    block_series: int
    """Series of the raw block that has most (a series in two blocks counts once per block)."""
    head_samples: int
    raw_blocks: int
    raw_samples: int
    raw_bytes: int
    rollup_blocks: int
    rollup_windows: int
    rollup_bytes: int
    wal_bytes: int
    disk_bytes: int

    @property
    def bytes_per_sample(self) -> float | None:
        """Bytes of raw blocks per sample in them (``None`` without raw blocks)."""
        return self.raw_bytes / self.raw_samples if self.raw_samples else None


def block_metas(db: TSDB) -> list[BlockMeta]:
    """The metadata of ``db``'s blocks, raw and rollup."""
    return list(db.blocks())


def snapshot(db: TSDB) -> Snapshot:
    """Series, samples and bytes of ``db`` (head, raw blocks, rollups, WAL, whole directory)."""
    stats: TSDBStats = db.stats()
    blocks = db.path / "blocks"
    sizes = {meta.id: _size(blocks / meta.id) for meta in block_metas(db)}
    raw = [meta for meta in block_metas(db) if meta.resolution == 0]
    rolled = [meta for meta in block_metas(db) if meta.resolution]
    return Snapshot(
        series=stats.series,
        block_series=max((meta.num_series for meta in raw), default=0),
        head_samples=stats.head_samples,
        raw_blocks=len(raw),
        raw_samples=sum(meta.num_samples for meta in raw),
        raw_bytes=sum(sizes[meta.id] for meta in raw),
        rollup_blocks=len(rolled),
        rollup_windows=sum(meta.num_samples for meta in rolled),
        rollup_bytes=sum(sizes[meta.id] for meta in rolled),
        wal_bytes=_size(db.path / "wal"),
        disk_bytes=_size(db.path),
    )


def _snapshot_rows(shot: Snapshot) -> list[tuple[str, str]]:
    per_sample = shot.bytes_per_sample
    return [
        ("series in the head", f"{shot.series:,}"),
        ("series in the largest raw block", f"{shot.block_series:,}"),
        ("samples in the head", f"{shot.head_samples:,}"),
        ("raw blocks", f"{shot.raw_blocks}"),
        ("samples in raw blocks", f"{shot.raw_samples:,}"),
        ("rollup blocks", f"{shot.rollup_blocks}"),
        ("rollup windows", f"{shot.rollup_windows:,}"),
        ("raw block bytes", _bytes(shot.raw_bytes)),
        ("rollup block bytes", _bytes(shot.rollup_bytes)),
        ("WAL bytes", _bytes(shot.wal_bytes)),
        ("bytes on disk", _bytes(shot.disk_bytes)),
        ("bytes/sample (raw blocks)", "n/a" if per_sample is None else f"{per_sample:.3f}"),
    ]


def _stats(args: argparse.Namespace) -> int:
    with _open(args.db, must_exist=True) as db:
        shot = snapshot(db)
    if args.json:
        import dataclasses

        _dumps({**dataclasses.asdict(shot), "bytes_per_sample": shot.bytes_per_sample})
        return 0
    from rich.table import Table

    table = Table()
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in _snapshot_rows(shot):
        table.add_row(name, value)
    console = _console()
    _say(console, str(args.db))
    console.print(table)
    return 0


def _compact(args: argparse.Namespace) -> int:
    with _open(args.db, must_exist=True, retention=(args.retention, args.raw_retention)) as db:
        before = snapshot(db)
        started = time.perf_counter()
        cut = db.flush()
        db.compact()
        seconds = time.perf_counter() - started
        after = snapshot(db)
    from rich.table import Table

    table = Table()
    for column in ("figure", "before", "after"):
        table.add_column(column, justify="left" if column == "figure" else "right")
    for (name, old), (_, new) in zip(_snapshot_rows(before), _snapshot_rows(after), strict=True):
        table.add_row(name, old, new)
    console = _console()
    if cut is None:
        _say(console, "the head was empty: nothing to cut")
    else:
        _say(
            console,
            f"cut {cut.num_samples:,} samples of {cut.num_series:,} series "
            f"({show_time(cut.mint)} to {show_time(cut.maxt)}) into a block",
        )
    console.print(table)
    _say(console, f"compacted in {seconds:.2f} s")
    return 0


# ---------------------------------------------------------------- generate


def _instance(labels: Labels) -> str:
    return dict(labels).get("instance", "")


def _generate(args: argparse.Namespace) -> int:
    import itertools

    import numpy as np

    from trusswork.tsdb.synthetic import node_exporter_series

    interval_ms = max(1, round(args.interval * 1000))
    scrapes = int(args.hours * 3_600_000 // interval_ms)
    if scrapes < 1:
        raise UsageError(f"--hours {args.hours:g} is shorter than one --interval")
    now = int(time.time() * 1000)
    start = (now // interval_ms - scrapes) * interval_ms
    kinds: dict[str, int] = {}
    samples = 0
    generated = node_exporter_series(
        args.hosts, hours=args.hours, interval_ms=interval_ms, start_ms=start, seed=args.seed
    )
    with _open(args.db, must_exist=False) as db, _progress() as progress:
        task = progress.add_task("generate", total=args.hosts)
        # One host at a time (its series come together): memory stays one host's worth.
        for _, group in itertools.groupby(generated, key=lambda s: _instance(s.labels)):
            host = list(group)
            refs = []
            for series in host:
                kinds[series.kind] = kinds.get(series.kind, 0) + 1
                labels = dict(series.labels)
                ref = db.series_ref(labels.pop("__name__"), labels)
                refs.append(np.full(len(series.ts), ref, np.uint32))
            all_refs = np.concatenate(refs)
            ts = np.concatenate([series.ts for series in host])
            values = np.concatenate([series.values for series in host])
            for offset in range(0, len(ts), GENERATE_BATCH):
                part = slice(offset, offset + GENERATE_BATCH)
                samples += db.append_batch(all_refs[part], ts[part], values[part])
            progress.advance(task)
    last = start + (scrapes - 1) * interval_ms
    console = _console()
    described = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
    _say(
        console,
        f"generated {sum(kinds.values()):,} series ({described}) of {args.hosts} host(s): "
        f"{samples:,} samples from {show_time(start)} to {show_time(last)} "
        f"(plus scrape jitter), every {interval_ms / 1000:g} s, into {args.db}",
    )
    _say(console, f"they are in the head; 'trusswork tsdb compact --db {args.db}' cuts a block")
    return 0
