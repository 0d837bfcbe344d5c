"""``trusswork storage``: inspect the files of the shared storage engines.

``trusswork storage wal-check PATH [--repair] [--json]`` reads every record
of a write-ahead log and reports the first bad spot: a torn tail (a write cut
short by a crash, which opening the log repairs by itself) or damage (which
opening refuses with ``Corruption``). The exit status is 0 for a healthy log
and 1 when a problem was found, even if ``--repair`` fixed it, so scripts
notice. ``trusswork storage wal-dump PATH [--from LSN] [--limit N]`` prints
records as ``lsn<TAB>length<TAB>repr of the first 60 bytes``.

Both read without the writer's lock; ``--repair`` must not run while a
writer has the log open.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trusswork.storage import CheckReport

#: Bytes of each payload that ``wal-dump`` shows.
DUMP_PREFIX = 60


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _positive(text: str) -> int:
    value = _non_negative(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be 1 or more, got 0")
    return value


def register(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="<action>", title="actions")
    actions.required = True
    check = actions.add_parser(
        "wal-check",
        help="read every record of a write-ahead log and report damage",
        description=(
            "Read every record of a write-ahead log and report the first damage. "
            "Exit status: 0 healthy, 1 a problem was found (even if repaired)."
        ),
    )
    check.add_argument("path", type=Path, help="the log directory")
    check.add_argument(
        "--repair",
        action="store_true",
        help="cut the log at the first bad record, keeping every record before it "
        "(never while a writer has the log open)",
    )
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    dump = actions.add_parser(
        "wal-dump",
        help="print the records of a write-ahead log",
        description=f"Print records as: LSN, payload length, repr of the first "
        f"{DUMP_PREFIX} payload bytes (tab-separated).",
    )
    dump.add_argument("path", type=Path, help="the log directory")
    dump.add_argument(
        "--from",
        dest="from_lsn",
        metavar="LSN",
        type=_non_negative,
        default=0,
        help="start at this LSN (default: the oldest record kept)",
    )
    dump.add_argument(
        "--limit", metavar="N", type=_positive, default=None, help="print at most N records"
    )
    for child in (check, dump):
        # As for every command: --debug is accepted after the action too.
        child.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )


def run(args: argparse.Namespace) -> int:
    if args.action == "wal-check":
        return _wal_check(args.path, repair=args.repair, as_json=args.json)
    return _wal_dump(args.path, from_lsn=args.from_lsn, limit=args.limit)


def _wal_check(path: Path, *, repair: bool, as_json: bool) -> int:
    import dataclasses

    from trusswork.storage import check_log

    report = check_log(path, repair=repair)
    if as_json:
        document = {**dataclasses.asdict(report), "ok": report.ok}
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        sys.stdout.write("".join(f"{line}\n" for line in describe(report)))
    return 0 if report.ok else 1


def describe(report: CheckReport) -> list[str]:
    """The human-readable lines ``wal-check`` prints for ``report``."""
    lines = [f"write-ahead log {report.path}", f"  segments: {report.segments}"]
    if report.first_lsn is not None and report.last_lsn is not None:
        span = f"LSN {report.first_lsn}..{report.last_lsn}"
        readable = "" if report.ok else " readable"
        lines.append(f"  records:  {report.records}{readable} ({span})")
    else:
        lines.append(f"  records:  {report.records}")
    if report.ok:
        lines.append("  status:   ok, every record reads back intact")
        return lines
    segment = Path(report.problem_segment).name if report.problem_segment else "?"
    where = f"{segment} at byte offset {report.problem_offset}"
    if report.torn_tail:
        lines.append(f"  problem:  torn tail in {where}: {report.problem}")
        lines.append(
            "            a write cut short by a crash; opening the log truncates it by itself"
        )
    else:
        lines.append(f"  problem:  damage in {where}: {report.problem}")
        lines.append(
            "            opening the log refuses it (Corruption); --repair cuts the log "
            "there and loses every record from this point on"
        )
    if report.repaired:
        lines.append(
            f"  repaired: log cut at {segment} offset {report.problem_offset}; "
            f"records before it kept"
        )
    return lines


def _wal_dump(path: Path, *, from_lsn: int, limit: int | None) -> int:
    from trusswork.storage import read_log

    write = sys.stdout.write
    # islice stops before reading past the limit, where damage would raise.
    for lsn, payload in itertools.islice(read_log(path, from_lsn), limit):
        write(f"{lsn}\t{len(payload)}\t{payload[:DUMP_PREFIX]!r}\n")
    return 0
