"""Query planning and execution over a log store's segments.

The search part of a query runs in the index; the commands after it run over
an Arrow table of the matched rows (:mod:`trusswork.logs._pipeline`).

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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa

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
    parse_number,
)
from trusswork.search._segment import Segment
from trusswork.search.postings import difference, intersect, union_many
from trusswork.search.text import tokenize

if TYPE_CHECKING:
    from trusswork.logs._store import LogStore
    from trusswork.logs._tiers import ColdPartition

__all__ = ["LogResult", "Plan", "resolve_time", "run_query"]

_EMPTY = np.empty(0, dtype=np.uint32)
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


# ------------------------------------------------------------------ the plan


@dataclass
class PlanNode:
    """One step of a plan: what it did, its estimated and actual rows."""

    label: str
    estimated: int | None = None
    actual: int = 0
    children: list[PlanNode] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "estimated": self.estimated,
            "actual": self.actual,
            "children": [c.to_dict() for c in self.children],
        }


@dataclass
class Plan:
    """How a query ran: pruning counts, the search tree with estimated vs actual
    rows (summed over the segments read), and each command's rows in and out."""

    query: str
    time_range: tuple[int | None, int | None]
    partitions_total: int = 0
    partitions_read: int = 0
    segments_total: int = 0
    segments_read: int = 0
    segments_skipped_time: int = 0
    segments_skipped_summary: int = 0
    cold_total: int = 0
    cold_read: int = 0
    counted_in_index: bool = False
    stopped_early: bool = False
    search: PlanNode | None = None
    rows_matched: int = 0
    columns: tuple[str, ...] | None = None
    commands: list[tuple[str, int, int]] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form of the plan."""
        return {
            "query": self.query,
            "time_range": list(self.time_range),
            "partitions": {"total": self.partitions_total, "read": self.partitions_read},
            "segments": {
                "total": self.segments_total,
                "read": self.segments_read,
                "skipped_by_time": self.segments_skipped_time,
                "skipped_by_summary": self.segments_skipped_summary,
            },
            "cold_partitions": {"total": self.cold_total, "read": self.cold_read},
            "stopped_early": self.stopped_early,
            "counted_in_index": self.counted_in_index,
            "search": self.search.to_dict() if self.search else None,
            "rows_matched": self.rows_matched,
            "columns": list(self.columns) if self.columns is not None else None,
            "commands": [{"command": c, "rows_in": i, "rows_out": o} for c, i, o in self.commands],
            "seconds": self.seconds,
        }

    def render(self) -> str:
        """The plan as text, one step per line."""
        lo, hi = self.time_range
        start = "-inf" if lo is None else _iso(lo)
        end = "now" if hi is None else _iso(hi)
        span = "all time" if lo is None and hi is None else f"{start} .. {end}"
        lines = [
            f"query: {self.query}",
            f"time range: {span}",
            f"partitions: {self.partitions_read} of {self.partitions_total} read",
            f"segments: {self.segments_read} of {self.segments_total} read"
            f" ({self.segments_skipped_time} outside the time range,"
            f" {self.segments_skipped_summary} skipped by field summaries)"
            + (", stopped early for head" if self.stopped_early else ""),
            f"cold partitions: {self.cold_read} of {self.cold_total} read",
            "search (estimated -> actual rows):",
        ]
        if self.search is not None:
            lines.extend(_render_node(self.search, 1))
        columns = "all" if self.columns is None else ", ".join(self.columns) or "none"
        lines.append(f"rows matched: {self.rows_matched:,} (columns read: {columns})")
        if self.counted_in_index:
            lines.append("stats count: counted in the index (match totals, keyword codes)")
        if self.commands:
            lines.append("commands (rows in -> out):")
            lines.extend(f"  {c:<40} {i:>12,} -> {o:,}" for c, i, o in self.commands)
        lines.append(f"time: {self.seconds * 1000:.1f} ms")
        return "\n".join(lines)


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


def _render_node(node: PlanNode, depth: int) -> Iterator[str]:
    estimate = "?" if node.estimated is None else f"{node.estimated:,}"
    yield f"{'  ' * depth}{node.label:<{max(44 - 2 * depth, 8)}} {estimate:>12} -> {node.actual:,}"
    for child in node.children:
        yield from _render_node(child, depth + 1)


# ---------------------------------------------------------------- the result


class LogResult:
    """Rows of a query: an Arrow table, plus its plan and warnings."""

    def __init__(self, table: pa.Table, plan: Plan, warnings: Sequence[str] = ()) -> None:
        self.table = table
        self.plan = plan
        self.warnings = list(warnings)

    @property
    def columns(self) -> list[str]:
        """Column names, in order."""
        return list(self.table.column_names)

    def __len__(self) -> int:
        return int(self.table.num_rows)

    def to_arrow(self) -> pa.Table:
        """The rows as a :class:`pyarrow.Table`."""
        return self.table

    def to_pylist(self) -> list[dict[str, Any]]:
        """The rows as dicts (fields a row lacks are left out)."""
        return [{k: v for k, v in row.items() if v is not None} for row in self.table.to_pylist()]

    def to_json(self) -> bytes:
        """``{"columns", "rows", "warnings", "plan"}`` as JSON bytes."""
        return orjson.dumps(
            {
                "columns": self.columns,
                "rows": self.table.to_pylist(),
                "warnings": self.warnings,
                "plan": self.plan.to_dict(),
            },
            option=orjson.OPT_SERIALIZE_NUMPY,
            default=str,
        )

    def __repr__(self) -> str:
        return f"LogResult({len(self)} rows, columns={self.columns})"


# ------------------------------------------------------------ search in a segment


class _Evaluator:
    """Evaluates a search expression in one segment, in document ids."""

    def __init__(self, segment: Segment, nodes: dict[int, PlanNode]) -> None:
        self.segment = segment
        self.nodes = nodes

    def estimate(self, expr: SearchExpr) -> int:
        seg = self.segment
        n = seg.meta.doc_count
        if isinstance(expr, MatchAll):
            return n
        if isinstance(expr, Term):
            if "*" in expr.text:
                return n // 10
            tokens = tokenize(expr.text)
            return min((seg.doc_freq(t) for t in tokens), default=0)
        if isinstance(expr, Phrase):
            tokens = tokenize(expr.text)
            return min((seg.doc_freq(t) for t in tokens), default=0)
        if isinstance(expr, FieldCompare):
            return _estimate_compare(seg, expr)
        if isinstance(expr, And):
            return min((self.estimate(p) for p in expr.parts), default=n)
        if isinstance(expr, Or):
            return min(n, sum(self.estimate(p) for p in expr.parts))
        return max(0, n - self.estimate(expr.part))

    def run(self, expr: SearchExpr) -> npt.NDArray[np.uint32]:
        node = self.nodes[id(expr)]
        estimate = self.estimate(expr)
        node.estimated = (node.estimated or 0) + estimate
        ids = self._run(expr)
        node.actual += int(ids.size)
        return ids

    def _run(self, expr: SearchExpr) -> npt.NDArray[np.uint32]:
        seg = self.segment
        if isinstance(expr, MatchAll):
            return seg.doc_ids
        if isinstance(expr, Term):
            if "*" in expr.text:
                terms = seg.terms_matching(expr.text.lower())
                return union_many([seg.term(t) for t in terms]) if terms else _EMPTY
            tokens = tokenize(expr.text)
            if not tokens:
                return _EMPTY
            return seg.term(tokens[0]) if len(tokens) == 1 else seg.phrase(tokens)
        if isinstance(expr, Phrase):
            tokens = tokenize(expr.text)
            return seg.phrase(tokens) if tokens else _EMPTY
        if isinstance(expr, FieldCompare):
            return _compare(seg, expr)
        if isinstance(expr, Or):
            return union_many([self.run(p) for p in expr.parts])
        if isinstance(expr, Not):
            return difference(seg.doc_ids, self.run(expr.part))
        # AND: positive parts smallest first, then negations as differences.
        positive = [p for p in expr.parts if not isinstance(p, Not)]
        negative = [p for p in expr.parts if isinstance(p, Not)]
        positive.sort(key=self.estimate)
        result: npt.NDArray[np.uint32] | None = None
        for part in positive:
            ids = self.run(part)
            result = ids if result is None else intersect(result, ids)
            if result.size == 0:
                return _EMPTY
        if result is None:
            result = seg.doc_ids
        for negation in negative:
            assert isinstance(negation, Not)
            result = difference(result, self.run(negation.part))
            self.nodes[id(negation)].actual += int(result.size)
            if result.size == 0:
                break
        return result


def _wildcard_match(pattern: str, values: Sequence[str]) -> list[int]:
    import re

    regex = re.compile(".*".join(re.escape(p) for p in pattern.split("*")), re.DOTALL)
    return [i for i, v in enumerate(values) if regex.fullmatch(v)]


def _slots_ids(seg: Segment, name: str, indexes: Sequence[int]) -> npt.NDArray[np.uint32]:
    lo, _ = seg.keyword_range(name)
    rows = [seg.keyword_rows(lo + i) for i in indexes]
    if not rows:
        return _EMPTY
    return seg.doc_ids[union_many(rows)]


def _present(seg: Segment, name: str) -> npt.NDArray[np.uint32]:
    _, codes = seg.keyword_column(name)
    return seg.doc_ids[np.flatnonzero(codes >= 0)]


def _numeric_ids(seg: Segment, name: str, op: str, value: float) -> npt.NDArray[np.uint32]:
    column = seg.numeric_column(name)
    if column is None:
        return _EMPTY
    with np.errstate(invalid="ignore"):
        if op == "=":
            mask = column == value
        elif op == "<":
            mask = column < value
        elif op == "<=":
            mask = column <= value
        elif op == ">":
            mask = column > value
        else:
            mask = column >= value
    return seg.doc_ids[np.flatnonzero(mask)]


def _compare(seg: Segment, expr: FieldCompare) -> npt.NDArray[np.uint32]:
    """The documents whose field compares true; rows lacking the field never match."""
    name, op, value = expr.field, expr.op, expr.value
    if op in ("=", "!="):
        if isinstance(value, str) and value == "*":
            hit = _present(seg, name)
            return hit if op == "=" else _EMPTY
        if isinstance(value, str) and "*" in value:
            values = seg.keyword_values(name)
            hit = _slots_ids(seg, name, _wildcard_match(value, values))
        elif isinstance(value, str):
            hit = seg.field(name, value)
        else:
            hit = _numeric_ids(seg, name, "=", value)
        return hit if op == "=" else difference(_present(seg, name), hit)
    if isinstance(value, float):
        return _numeric_ids(seg, name, op, value)
    # An ordering against text: numeric where both sides are numbers, else by text.
    number = parse_number(value)
    values = seg.keyword_values(name)
    numeric = seg.numeric_column(name)
    picked = []
    for i, v in enumerate(values):
        if number is not None and parse_number(v) is not None:
            continue  # compared numerically below
        if _ordered(v, op, value):
            picked.append(i)
    hit = _slots_ids(seg, name, picked)
    if number is not None and numeric is not None:
        hit = union_many([hit, _numeric_ids(seg, name, op, number)])
    return hit


def _ordered(left: Any, op: str, right: Any) -> bool:
    if op == "<":
        return bool(left < right)
    if op == "<=":
        return bool(left <= right)
    if op == ">":
        return bool(left > right)
    return bool(left >= right)


def _estimate_compare(seg: Segment, expr: FieldCompare) -> int:
    n = seg.meta.doc_count
    name = expr.field
    if name not in seg.meta.keyword_fields and name not in seg.meta.numeric_fields:
        return 0
    if expr.op == "=" and isinstance(expr.value, str) and "*" not in expr.value:
        return int(seg.field(name, expr.value).size)
    summary = seg.meta.numeric_fields.get(name)
    if isinstance(expr.value, float) and summary and summary["count"]:
        lo, hi, count = summary["min"], summary["max"], int(summary["count"])
        if expr.op == "=":
            return max(1, count // max(1, seg.meta.keyword_fields.get(name, 1)))
        if hi <= lo:
            return count
        v = expr.value
        below = min(1.0, max(0.0, (v - lo) / (hi - lo)))
        return int(count * (below if expr.op in ("<", "<=") else 1 - below))
    return n // 2


def _may_match(expr: SearchExpr, seg: Segment) -> bool:
    """False when the segment's summaries prove ``expr`` matches nothing."""
    meta = seg.meta
    if isinstance(expr, And):
        return all(_may_match(p, seg) for p in expr.parts)
    if isinstance(expr, Or):
        return any(_may_match(p, seg) for p in expr.parts)
    if isinstance(expr, FieldCompare):
        if expr.field not in meta.keyword_fields and expr.field not in meta.numeric_fields:
            return False
        summary = meta.numeric_fields.get(expr.field)
        # Numeric comparisons look at numbers only, so the numeric summary decides.
        if isinstance(expr.value, float) and expr.op != "!=" and summary is not None:
            lo, hi, v = summary["min"], summary["max"], expr.value
            if not summary["count"]:
                return False
            return {
                "=": lo <= v <= hi,
                "<": lo < v,
                "<=": lo <= v,
                ">": hi > v,
                ">=": hi >= v,
            }[expr.op]
    return True


def _plan_nodes(expr: SearchExpr, nodes: dict[int, PlanNode]) -> PlanNode:
    label = _describe(expr)
    node = PlanNode(label)
    nodes[id(expr)] = node
    if isinstance(expr, And | Or):
        node.children = [_plan_nodes(p, nodes) for p in expr.parts]
    elif isinstance(expr, Not):
        node.children = [_plan_nodes(expr.part, nodes)]
    return node


def _describe(expr: SearchExpr) -> str:
    if isinstance(expr, MatchAll):
        return "all lines"
    if isinstance(expr, Term):
        return f"term {expr.text}" if "*" not in expr.text else f"wildcard {expr.text}"
    if isinstance(expr, Phrase):
        return f'phrase "{expr.text}"'
    if isinstance(expr, FieldCompare):
        value = expr.value if isinstance(expr.value, str) else number_text(expr.value)
        return f"{expr.field}{expr.op}{value}"
    if isinstance(expr, And):
        return "AND"
    if isinstance(expr, Or):
        return "OR"
    return "NOT"


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
    codes = [seg.keyword_column(name)[1][rows] for name in by]
    present = np.logical_and.reduce([c >= 0 for c in codes])
    if not present.all():
        rows, codes = rows[present], [c[present] for c in codes]
    if rows.size == 0:
        return None
    if len(codes) == 1:
        counts = np.bincount(codes[0])
        groups = np.flatnonzero(counts)
        some_row = np.empty(counts.size, dtype=np.int64)
        some_row[codes[0]] = np.arange(codes[0].size)  # any row of each value will do
        first, counts = some_row[groups], counts[groups]
    else:
        stacked = np.stack(codes, axis=1)
        _, first, counts = np.unique(stacked, axis=0, return_index=True, return_counts=True)
    chunk = _segment_columns(seg, rows[first], frozenset(by))
    chunk[_COUNT] = pa.array(counts.astype(np.int64))
    return chunk


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
    table = cold.read(store.cold_filesystem, columns, lo_ms, hi_ms)
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
    partitions = store.snapshot()
    colds = store.cold_partitions()
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
        if head is not None and found >= head and index + 1 < len(units):
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
