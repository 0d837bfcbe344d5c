"""What a log query returns: its rows, and the plan that says how it ran.

:class:`LogResult` holds the matched rows as an Arrow table with the query's
warnings; :class:`Plan` records pruning counts, the search tree with
estimated and actual rows (:class:`PlanNode`), and each command's rows in and
out, as :meth:`Plan.render` prints them for ``explain``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa

__all__ = ["LogResult", "Plan", "PlanNode"]


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
