"""``trusswork storage``: inspect the files of the shared storage engines.

Write-ahead logs: ``trusswork storage wal-check PATH [--repair] [--json]``
reads every record of a log and reports the first bad spot: a torn tail (a
write cut short by a crash, which opening the log repairs by itself) or
damage (which opening refuses with ``Corruption``). The exit status is 0 for
a healthy log and 1 when a problem was found, even if ``--repair`` fixed it,
so scripts notice. ``trusswork storage wal-dump PATH [--from LSN] [--limit N]``
prints records as ``lsn<TAB>length<TAB>repr of the first 60 bytes``. Both read
without the writer's lock; ``--repair`` must not run while a writer has the
log open.

B+trees: ``trusswork storage btree-check PATH [--json]`` walks every page of
the last commit (:func:`~trusswork.storage.check_btree`) and prints the keys,
depth, pages by kind and free pages; exit status 0 for a healthy tree, 1 when
a page is damaged, with the page number and what is wrong.
``trusswork storage btree-stats PATH [--json]`` prints the same figures from
the meta page alone (cheap, checks nothing else).
``trusswork storage btree-dump PATH [--start KEY] [--stop KEY] [--limit N]
[--reverse]`` prints pairs with ``start <= key < stop`` as
``repr(key)<TAB>value length<TAB>repr of the first 60 value bytes``; a KEY is
text (encoded as UTF-8) or hexadecimal after ``hex:``. The B+tree actions
open the file as a writer would, holding its lock for as long as they run:
a tree open in another process gives ``Conflict``. They never write to a
tree file (an empty, zero-byte file is the exception: opening makes it an
empty tree, as :class:`~trusswork.storage.BTree` does).
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trusswork.cli._argtypes import whole_number

if TYPE_CHECKING:
    from trusswork.storage import BTree, BTreeStats, CheckReport

#: Bytes of each payload (``wal-dump``) or value (``btree-dump``) shown.
DUMP_PREFIX = 60
#: Buffer pool of the B+tree actions: they read each page about once.
BTREE_CACHE_BYTES = 4 << 20
#: Where the engine's Corruption messages name the page (csrc/btree/btree.c, ``corrupt``).
_PAGE_PROBLEM = re.compile(r"page (?P<page>\d+) \(byte offset (?P<offset>\d+)\): .+")


_non_negative = whole_number(0)
_positive = whole_number(1)


def _key(text: str) -> bytes:
    """A B+tree key from the command line: UTF-8 text, or hexadecimal after ``hex:``."""
    if text.startswith("hex:"):
        try:
            return bytes.fromhex(text[4:])
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not hexadecimal after 'hex:' (two digits a byte, like hex:00ff)"
            ) from None
    # surrogateescape: bytes that are not UTF-8 in argv come back as they were.
    return text.encode("utf-8", "surrogateescape")


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
    btree_check = actions.add_parser(
        "btree-check",
        help="check every page of a B+tree file and report damage",
        description=(
            "Walk every page of a B+tree's last commit: checksums, key order, overflow "
            "chains, the free list, and that every page is used exactly once. "
            "Exit status: 0 healthy, 1 a page is damaged."
        ),
    )
    btree_check.add_argument("path", type=Path, help="the B+tree file")
    btree_check.add_argument("--json", action="store_true", help="print the report as JSON")
    btree_stats = actions.add_parser(
        "btree-stats",
        help="print the keys, depth and pages of a B+tree from its meta page",
        description=(
            "Print the keys, depth, pages, free pages, page size and transaction id of a "
            "B+tree's last commit, read from its meta page (cheap; checks nothing else)."
        ),
    )
    btree_stats.add_argument("path", type=Path, help="the B+tree file")
    btree_stats.add_argument("--json", action="store_true", help="print the figures as JSON")
    btree_dump = actions.add_parser(
        "btree-dump",
        help="print the pairs of a B+tree in key order",
        description=(
            f"Print the pairs with START <= key < STOP as: repr of the key, value length, "
            f"repr of the first {DUMP_PREFIX} value bytes (tab-separated). A KEY is text "
            f"(encoded as UTF-8) or hexadecimal after 'hex:' (hex:00ff)."
        ),
    )
    btree_dump.add_argument("path", type=Path, help="the B+tree file")
    btree_dump.add_argument(
        "--start", metavar="KEY", type=_key, default=None, help="the first key (default: open)"
    )
    btree_dump.add_argument(
        "--stop",
        metavar="KEY",
        type=_key,
        default=None,
        help="stop before this key (default: open)",
    )
    btree_dump.add_argument(
        "--limit", metavar="N", type=_positive, default=None, help="print at most N pairs"
    )
    btree_dump.add_argument(
        "--reverse",
        action="store_true",
        help="walk the same range from the largest key down",
    )
    for child in (check, dump, btree_check, btree_stats, btree_dump):
        # As for every command: --debug is accepted after the action too.
        child.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )


def run(args: argparse.Namespace) -> int:
    if args.action == "wal-check":
        return _wal_check(args.path, repair=args.repair, as_json=args.json)
    if args.action == "wal-dump":
        return _wal_dump(args.path, from_lsn=args.from_lsn, limit=args.limit)
    if args.action == "btree-check":
        return _btree_check(args.path, as_json=args.json)
    if args.action == "btree-stats":
        return _btree_stats(args.path, as_json=args.json)
    return _btree_dump(
        args.path, start=args.start, stop=args.stop, limit=args.limit, reverse=args.reverse
    )


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


# ---------------------------------------------------------------- B+tree


def _open_btree(path: Path) -> BTree:
    """Open an existing tree with the page size its meta page records."""
    from trusswork.storage import BTree

    return BTree(path, page_size=None, create=False, cache_bytes=BTREE_CACHE_BYTES)


def _write_json(document: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(document, indent=2) + "\n")


def _btree_check(path: Path, *, as_json: bool) -> int:
    import dataclasses

    from trusswork.core.errors import Corruption
    from trusswork.storage import check_btree

    try:
        stats = check_btree(path)
    except Corruption as error:
        problem = btree_problem(path, error.message)
        if as_json:
            _write_json({"path": str(path), "ok": False, **problem})
        else:
            sys.stdout.write("".join(f"{line}\n" for line in describe_btree_problem(path, problem)))
        return 1
    if as_json:
        _write_json({"path": str(path), "ok": True, **dataclasses.asdict(stats)})
    else:
        sys.stdout.write("".join(f"{line}\n" for line in describe_btree(path, stats)))
    return 0


def btree_problem(path: Path, message: str) -> dict[str, Any]:
    """What a Corruption message from the engine says: problem, page, byte offset.

    ``page`` and ``byte_offset`` are None when the fault is not in one page
    (both meta pages unreadable, say).
    """
    found = _PAGE_PROBLEM.search(message)
    if found is None:
        return {
            "problem": message.removeprefix(f"{path}: "),
            "page": None,
            "byte_offset": None,
        }
    return {
        "problem": found[0],
        "page": int(found["page"]),
        "byte_offset": int(found["offset"]),
    }


def describe_btree(path: Path, stats: BTreeStats, *, checked: bool = True) -> list[str]:
    """The lines ``btree-check`` (``checked``) or ``btree-stats`` prints for ``stats``."""
    lines = [
        f"B+tree {path}",
        f"  keys:        {stats.keys}",
        f"  depth:       {stats.depth}",
        f"  page size:   {stats.page_size} B",
    ]
    if checked:
        kinds = (
            f"2 meta, {stats.branch_pages} branch, {stats.leaf_pages} leaf, "
            f"{stats.overflow_pages} overflow, {stats.freelist_pages} free-list, "
            f"{stats.free_pages} free"
        )
        lines.append(f"  pages:       {stats.pages} ({kinds})")
    else:
        lines.append(f"  pages:       {stats.pages} ({stats.free_pages} free)")
    lines.append(f"  transaction: {stats.txn_id} (the last commit)")
    if checked:
        lines.append("  status:      ok, every page checked")
    return lines


def describe_btree_problem(path: Path, problem: dict[str, Any]) -> list[str]:
    """The lines ``btree-check`` prints for a damaged tree (see :func:`btree_problem`)."""
    lines = [f"B+tree {path}", f"  problem:     {problem['problem']}"]
    if problem["page"] is not None:
        lines.append(
            "               reads that reach this page raise Corruption; there is no repair:"
        )
        lines.append(
            "               restore the file from a copy, or save the key ranges that still "
            "read (btree-dump)"
        )
    else:
        lines.append("               there is no repair: restore the file from a copy")
    return lines


def _btree_stats(path: Path, *, as_json: bool) -> int:
    with _open_btree(path) as tree:
        stats = tree.stats()
    if as_json:
        _write_json(
            {
                "path": str(path),
                "keys": stats.keys,
                "depth": stats.depth,
                "pages": stats.pages,
                "free_pages": stats.free_pages,
                "page_size": stats.page_size,
                "txn_id": stats.txn_id,
            }
        )
    else:
        sys.stdout.write(
            "".join(f"{line}\n" for line in describe_btree(path, stats, checked=False))
        )
    return 0


def _btree_dump(
    path: Path, *, start: bytes | None, stop: bytes | None, limit: int | None, reverse: bool
) -> int:
    write = sys.stdout.write
    with _open_btree(path) as tree:
        # islice stops before reading past the limit, where damage would raise.
        for key, value in itertools.islice(tree.items(start, stop, reverse=reverse), limit):
            write(f"{key!r}\t{len(value)}\t{value[:DUMP_PREFIX]!r}\n")
    return 0
