"""The search part of a query in one segment of the index, in document ids.

:class:`_Evaluator` runs a search expression against one
:class:`~trusswork.search._segment.Segment`: the parts of an ``AND`` from the
smallest estimated result (term document frequencies, keyword posting sizes,
numeric ranges as a uniform fraction of min/max), stopping at the first empty
one, negations last as differences. Each step adds its estimated and actual
rows to the query's :class:`~trusswork.logs._result.PlanNode` tree, built by
:func:`_plan_nodes`. :func:`_may_match` is the summary pruning: a segment whose
field summaries prove that a conjunct cannot match is not searched at all.

Comparisons never match rows that lack the field.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from trusswork.logs._ast import (
    And,
    FieldCompare,
    MatchAll,
    Not,
    Or,
    Phrase,
    SearchExpr,
    Term,
    number_text,
    parse_number,
)
from trusswork.logs._result import PlanNode
from trusswork.search._segment import Segment
from trusswork.search.postings import difference, intersect, union_many
from trusswork.search.text import tokenize, wildcard_regex

_EMPTY = np.empty(0, dtype=np.uint32)


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
        exact = isinstance(expr, MatchAll) or (
            isinstance(expr, Term) and "*" not in expr.text and len(tokenize(expr.text)) == 1
        )
        # A single term's estimate is its document frequency: the exact count,
        # so it is taken from the result instead of a second dictionary lookup.
        estimate = None if exact else self.estimate(expr)
        ids = self._run(expr)
        node.estimated = (node.estimated or 0) + (int(ids.size) if estimate is None else estimate)
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
    regex = wildcard_regex(pattern)
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
