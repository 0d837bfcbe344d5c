"""Query planning and execution over a log store's segments.

The search part of a query runs in the index, segment by segment
(:mod:`trusswork.logs._search`); the commands after it run over an Arrow
table of the matched rows (:mod:`trusswork.logs._pipeline`). This module
reads hot segments and cold Parquet files and runs the whole query; what it
returns, :class:`~trusswork.logs._result.LogResult` with its
:class:`~trusswork.logs._result.Plan`, is defined in :mod:`trusswork.logs._result`.

Optimizations, all visible in :meth:`Plan.render`:

* **Time pruning.** Partitions and then segments whose ``_time`` range lies
  outside the query's range are not opened; inside a segment the range is a
  filter on its ``_time`` column, skipped when the segment lies inside it.
* **Summary pruning.** A segment is skipped when its field summaries prove
  that a conjunct cannot match: the field is absent, or a numeric bound
  lies outside the field's min/max.
* **Intersection order.** The parts of an ``AND`` run from the smallest
  estimated result (term document frequencies, keyword posting sizes,
  numeric ranges as a uniform fraction of min/max), stopping at the first
  empty one; negations run last, as differences.
* **Columns on demand.** Only the fields the commands read are loaded, and
  keyword fields come straight from the postings, dictionary-encoded.
* **Streaming head.** ``| head N`` first reads partitions newest first and
  stops once N rows are found.

Rows come newest first (``_time`` descending, then ingest order descending).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from trusswork.core.errors import NotFound
from trusswork.logs._ast import (
    AbsoluteTime,
    Agg,
    And,
    FieldCompare,
    Head,
    MatchAll,
    Not,
    Or,
    Phrase,
    Query,
    SearchExpr,
    Stats,
    Term,
    TimeBound,
    Timechart,
    number_text,
)
from trusswork.logs._result import LogResult, Plan, PlanNode
from trusswork.logs._search import _Evaluator, _may_match, _plan_nodes
from trusswork.search._segment import Segment

if TYPE_CHECKING:
    from trusswork.logs._store import LogStore
    from trusswork.logs._tiers import ColdPartition

__all__ = ["LogResult", "Plan", "resolve_time", "run_query"]

_SNAP_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_MONDAY_MS = 4 * 86_400_000  # 1970-01-01 was a Thursday
_BUILTIN = ("_time", "_raw")


def resolve_time(bound: TimeBound, now_ms: int) -> int:
    """Unix ms of ``bound`` at ``now_ms`` (relative bounds snap down in UTC)."""
    if isinstance(bound, AbsoluteTime):
        return bound.epoch_ms
    t = now_ms + bound.offset_ms
    if bound.snap is not None:
        unit = _SNAP_MS[bound.snap]
        base = _MONDAY_MS if bound.snap == "w" else 0
        t = (t - base) // unit * unit + base
    return t


# ------------------------------------------------------------- materializing


def _segment_columns(
    seg: Segment, rows: npt.NDArray[np.int64], wanted: frozenset[str] | None
) -> dict[str, pa.Array]:
    """The wanted columns of ``rows`` (all fields when ``wanted`` is None)."""
    names = set(seg.meta.keyword_fields) | set(seg.meta.numeric_fields)
    names.discard("_time")
    if wanted is not None:
        names &= wanted
    columns: dict[str, pa.Array] = {}
    time_column = seg.numeric_column("_time")
    assert time_column is not None
    columns["_time"] = pa.array(time_column[rows].astype(np.int64))
    if wanted is None or "_raw" in wanted:
        columns["_raw"] = pa.array(seg.texts(rows), type=pa.string())
    for name in sorted(names):
        columns[name] = _field_column(seg, name, rows)
    return columns


def _field_column(seg: Segment, name: str, rows: npt.NDArray[np.int64]) -> pa.Array:
    numeric = seg.numeric_column(name)
    if name not in seg.meta.keyword_fields:
        assert numeric is not None
        return pa.array(numeric[rows], mask=np.isnan(numeric[rows]))
    values, codes = seg.keyword_column(name)
    picked = codes[rows]
    absent = picked < 0
    if numeric is not None:
        has_number = ~np.isnan(numeric)
        # Numbers only when every value of the field in the segment is one.
        if np.array_equal(has_number, codes >= 0):
            column = numeric[rows]
            if all(_is_int_text(v) and v == str(int(v)) for v in values):
                ints = np.array([int(v) for v in values], dtype=np.int64)
                return pa.array(ints[np.where(absent, 0, picked)], mask=absent)
            return pa.array(column, mask=absent)
    dictionary = pa.array(values, type=pa.string())
    indices = pa.array(np.where(absent, 0, picked).astype(np.int32), mask=absent)
    return pa.DictionaryArray.from_arrays(indices, dictionary).cast(pa.string())


def _is_int_text(text: str) -> bool:
    body = text[1:] if text[:1] == "-" else text
    return body.isdigit() and body.isascii() and len(body) < 19


def _unify(chunks: list[dict[str, pa.Array]]) -> pa.Table:
    """One table from per-segment columns whose types may differ."""
    names: list[str] = []
    for chunk in chunks:
        names.extend(n for n in chunk if n not in names)
    names = [*[n for n in _BUILTIN if n in names], *sorted(n for n in names if n not in _BUILTIN)]
    columns = {}
    for name in names:
        parts = [chunk.get(name) for chunk in chunks]
        types = {p.type for p in parts if p is not None}
        if name == "_time" or types <= {pa.int64()}:
            target = pa.int64()
        elif types <= {pa.int64(), pa.float64()}:
            target = pa.float64()
        else:
            target = pa.string()
        arrays = []
        for chunk, part in zip(chunks, parts, strict=True):
            length = len(next(iter(chunk.values())))
            if part is None:
                arrays.append(pa.nulls(length, type=target))
            elif part.type != target:
                arrays.append(_to_text(part) if target == pa.string() else part.cast(target))
            else:
                arrays.append(part)
        columns[name] = pa.chunked_array(arrays, type=target)
    return pa.table(columns)


def _to_text(array: pa.Array) -> pa.Array:
    if pa.types.is_floating(array.type):
        return pa.array(
            [None if v is None else number_text(v) for v in array.to_pylist()],
            type=pa.string(),
        )
    return array.cast(pa.string())


# ---------------------------------------------------------------- reading


def _read_hot(
    store: LogStore,
    segments: list[Segment],
    start: int,
    search: SearchExpr,
    nodes: dict[int, PlanNode],
    wanted: frozenset[str] | None,
    lo_ms: float,
    hi_ms: float,
    plan: Plan,
    chunks: list[dict[str, pa.Array]],
    counted: tuple[str, ...] | None = None,
) -> int:
    """Search one hot partition's segments; append their rows to ``chunks``.

    With ``counted`` (by-fields), append per-group counts instead of rows.
    """
    if start + store.partition_ms <= lo_ms or start >= hi_ms:
        plan.segments_skipped_time += len(segments)
        return 0
    plan.partitions_read += 1
    found = 0
    for seg in segments:
        summary = seg.meta.numeric_fields.get("_time")
        t0 = summary["min"] if summary else -math.inf
        t1 = summary["max"] if summary else math.inf
        if t1 < lo_ms or t0 >= hi_ms:
            plan.segments_skipped_time += 1
            continue
        if not _may_match(search, seg):
            plan.segments_skipped_summary += 1
            continue
        plan.segments_read += 1
        ids = _Evaluator(seg, nodes).run(search)
        clipped = t0 < lo_ms or t1 >= hi_ms
        if counted == () and not clipped:
            found += int(ids.size)  # a total: no rows to look at
            continue
        if ids is seg.doc_ids or ids.size == seg.meta.doc_count:
            rows = np.arange(seg.meta.doc_count, dtype=np.int64)
        else:
            rows = seg.rows_of(ids)
        if clipped:
            times = seg.numeric_column("_time")
            assert times is not None
            picked = times[rows]
            rows = rows[(picked >= lo_ms) & (picked < hi_ms)]
        if rows.size and counted == ():
            found += int(rows.size)  # a total: nothing to read
        elif rows.size and counted is not None:
            chunk = _group_counts(seg, rows, counted)
            if chunk is not None:
                chunks.append(chunk)
            found += int(rows.size)
        elif rows.size:
            chunk = _segment_columns(seg, rows, wanted)
            chunk["_id"] = pa.array(seg.doc_ids[rows].astype(np.int64))
            chunks.append(chunk)
            found += int(rows.size)
    return found


_COUNT = "__count"


def _group_counts(
    seg: Segment, rows: npt.NDArray[np.int64], by: tuple[str, ...]
) -> dict[str, pa.Array] | None:
    """One row per distinct ``by`` combination of ``rows``, with its count.

    Counting runs on the keyword columns' codes (a bincount or a unique over
    stacked codes); each group is represented by one of its rows, so the
    values come out typed exactly as the full rows would.
    """
    whole = rows.size == seg.meta.doc_count  # every row: no gather needed
    codes = [
        seg.keyword_column(name)[1] if whole else seg.keyword_column(name)[1][rows] for name in by
    ]
    if any(int(c.min()) < 0 for c in codes):
        present = np.logical_and.reduce([c >= 0 for c in codes])
        rows, codes = rows[present], [c[present] for c in codes]
    if rows.size == 0:
        return None
    if len(codes) == 1:
        counts = np.bincount(codes[0])
        groups = np.flatnonzero(counts)
        first, counts = _first_rows(codes[0], groups), counts[groups]
    else:
        stacked = np.stack(codes, axis=1)
        _, first, counts = np.unique(stacked, axis=0, return_index=True, return_counts=True)
    chunk = _segment_columns(seg, rows[first], frozenset(by))
    chunk[_COUNT] = pa.array(counts.astype(np.int64))
    return chunk


def _first_rows(
    codes: npt.NDArray[np.int32], groups: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """The first position of each of ``groups`` in ``codes``, reading growing prefixes
    (the values of a field mostly all show up early)."""
    found: dict[int, int] = {}
    need = set(groups.tolist())
    start, step = 0, 4096
    while need:
        chunk = codes[start : start + step]
        values, index = np.unique(chunk, return_index=True)
        for value, at in zip(values.tolist(), index.tolist(), strict=True):
            if value in need:
                found[value] = start + at
                need.discard(value)
        start, step = start + step, step * 4
    return np.array([found[g] for g in groups.tolist()], dtype=np.int64)


def _counted_fields(commands: Sequence[Any]) -> tuple[str, ...] | None:
    """The by-fields (maybe none) when the first command is ``stats count[, ...] [by ...]``."""
    if not commands or not isinstance(commands[0], Stats):
        return None
    stats = commands[0]
    if any(a.func != "count" or a.field is not None for a in stats.aggs):
        return None
    if len({a.name for a in stats.aggs}) < len(stats.aggs):
        return None
    if any(name in _BUILTIN for name in stats.by):
        return None
    return tuple(stats.by)


def _order_free(commands: Sequence[Any]) -> bool:
    """True when the first command's result does not depend on the rows' order."""
    first = commands[0] if commands else None
    if isinstance(first, Stats | Timechart):
        return not any(a.func in ("first", "last") for a in first.aggs)
    return False


def _search_columns(expr: SearchExpr) -> set[str]:
    """The columns the row-level match of ``expr`` reads."""
    if isinstance(expr, FieldCompare):
        return {expr.field}
    if isinstance(expr, Term | Phrase):
        return {"_raw"}
    if isinstance(expr, And | Or):
        return set().union(*(_search_columns(p) for p in expr.parts))
    if isinstance(expr, Not):
        return _search_columns(expr.part)
    return set()


def _read_cold(
    store: LogStore,
    cold: ColdPartition,
    search: SearchExpr,
    wanted: frozenset[str] | None,
    lo_ms: float,
    hi_ms: float,
    plan: Plan,
    chunks: list[dict[str, pa.Array]],
    counted: tuple[str, ...] | None = None,
) -> int:
    """Read one cold Parquet partition: row groups by time, then the search row by row."""
    from trusswork.logs._pipeline import match_rows

    if cold.time_max < lo_ms or cold.time_min >= hi_ms:
        return 0
    plan.cold_read += 1
    if counted == ():
        wanted = frozenset()
    columns = None if wanted is None else sorted(wanted | _search_columns(search))
    try:
        table = cold.read(store.cold_filesystem, columns, lo_ms, hi_ms)
    except NotFound:
        return 0  # retention deleted it after the query listed it: its rows are gone
    if not isinstance(search, MatchAll):
        table = table.filter(pa.array(match_rows(table, search)))
    if wanted is not None:
        table = table.select([c for c in table.column_names if c in wanted | {"_time", "_id"}])
    if table.num_rows and counted != ():
        chunk = {name: table.column(name).combine_chunks() for name in table.column_names}
        if counted is not None:
            chunk[_COUNT] = pa.array(np.ones(table.num_rows, dtype=np.int64))
        chunks.append(chunk)
    return int(table.num_rows)


# ---------------------------------------------------------------- running


def run_query(
    store: LogStore,
    text: str,
    *,
    earliest: str | int | None = None,
    latest: str | int | None = None,
    now: float | None = None,
) -> LogResult:
    """Run a query against ``store``.

    Parameters
    ----------
    text
        The query in the pipe language (see :mod:`trusswork.logs._ast`).
    earliest, latest
        Override the query's time range: Unix ms, or text as the query
        accepts it (``-15m``, ``2024-05-01T10:00:00Z``, ``0``).
    now
        The time relative bounds are taken from (seconds; default now).

    Raises
    ------
    QueryParseError
        The query does not parse (the message points at the column).
    InvalidInput
        A command cannot run (a bad regular expression, a type error).
    """
    from trusswork.logs._dsl import parse_query, parse_time_bound
    from trusswork.logs._pipeline import required_fields, run_commands

    started = time.perf_counter()
    query = _parsed(text, parse_query)
    now_ms = int((time.time() if now is None else now) * 1000)

    def bound(override: str | int | None, own: TimeBound | None) -> int | None:
        if override is not None:
            if isinstance(override, int):
                return override
            return resolve_time(parse_time_bound(str(override)), now_ms)
        return None if own is None else resolve_time(own, now_ms)

    lo = bound(earliest, query.earliest)
    hi = bound(latest, query.latest)
    plan = Plan(query=text, time_range=(lo, hi))
    nodes: dict[int, PlanNode] = {}
    plan.search = _plan_nodes(query.search, nodes)
    commands = query.commands
    wanted = required_fields(commands)
    plan.columns = None if wanted is None else tuple(sorted(wanted | {"_time"}))
    partitions, colds = store.read_view()
    plan.partitions_total = len(partitions)
    plan.segments_total = sum(len(v) for v in partitions.values())
    plan.cold_total = len(colds)
    head = commands[0].count if commands and isinstance(commands[0], Head) else None
    counted = _counted_fields(commands)
    if counted is not None:
        plan.counted_in_index = True
    if counted:
        # stats count by keyword fields: counted per segment on the codes,
        # then summed per group by the same stats command.
        stats = commands[0]
        assert isinstance(stats, Stats)
        sums = tuple(Agg("sum", _COUNT, a.name, at=a.at) for a in stats.aggs)
        commands = (Stats(sums, stats.by, at=stats.at), *commands[1:])
        plan.counted_in_index = True
    chunks: list[dict[str, pa.Array]] = []
    found = 0
    lo_ms = -math.inf if lo is None else lo
    hi_ms = math.inf if hi is None else hi
    # Newest window first; at one window, hot segments before cold files.
    units: list[tuple[int, int, Any]] = [(k, 1, v) for k, v in partitions.items()]
    units += [(c.start_ms, 0, c) for c in colds]
    units.sort(key=lambda u: (u[0], u[1]), reverse=True)
    for index, (start, hot, unit) in enumerate(units):
        if hot:
            found += _read_hot(
                store, unit, start, query.search, nodes, wanted, lo_ms, hi_ms, plan, chunks, counted
            )
        else:
            found += _read_cold(
                store, unit, query.search, wanted, lo_ms, hi_ms, plan, chunks, counted
            )
        at_boundary = index + 1 < len(units) and units[index + 1][0] != start
        if head is not None and found >= head and at_boundary:
            plan.stopped_early = True
            break
    plan.rows_matched = found
    if counted == ():
        # stats count with no by: the total of the matches, nothing read.
        first = commands[0]
        assert isinstance(first, Stats)
        table = pa.table({a.name: pa.array([found], type=pa.int64()) for a in first.aggs})
        plan.commands.append((_command_text(text, first), found, 1))
        commands = commands[1:]
    elif chunks and (counted is not None or _order_free(commands)):
        table = _unify(chunks).drop_columns(["_id"]) if counted is None else _unify(chunks)
    elif chunks:
        table = _unify(chunks)
        table = table.take(
            pa.compute.sort_indices(
                table, sort_keys=[("_time", "descending"), ("_id", "descending")]
            )
        )
        table = table.drop_columns(["_id"])
    else:
        table = pa.table({"_time": pa.array([], type=pa.int64())})
        if counted is not None:
            table = table.append_column(_COUNT, pa.array([], type=pa.int64()))
        if wanted is None or "_raw" in wanted:
            table = table.append_column("_raw", pa.array([], type=pa.string()))
    for command in commands:
        rows_in = found if command is commands[0] and counted else table.num_rows
        table = run_commands(table, [command], now_ms=now_ms)
        plan.commands.append((_command_text(text, command), rows_in, table.num_rows))
    plan.seconds = time.perf_counter() - started
    warnings = [f"damaged segment skipped: {path}: {why}" for path, why in store.corrupt_segments]
    return LogResult(table, plan, warnings)


_PARSED: dict[str, Query] = {}
_PARSED_MAX = 512


def _parsed(text: str, parse: Any) -> Query:
    """``parse(text)``, remembered: dashboards and alerts repeat their queries."""
    query = _PARSED.get(text)
    if query is None:
        query = parse(text)
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[text] = query
    return query


def _command_text(text: str, command: Any) -> str:
    """The command as the query wrote it (up to the next pipe)."""
    at = getattr(command, "at", 0)
    end = text.find("|", at)
    snippet = text[at : end if end >= 0 else len(text)].strip()
    return snippet[:40] if snippet else type(command).__name__.lower()
