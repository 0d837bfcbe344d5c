"""The PromQL evaluator: every node is evaluated over the whole step grid at once.

An instant query is a range query with one step. Instant vectors travel as
:class:`~trusswork.tsdb._promql_values.Block` (series x steps), scalars as one
float per step, so selectors, functions, operators and aggregations cost a
few numpy calls per series rather than per step.

Semantics follow Prometheus 3: lookback and range windows are left-open
(``(t - window, t]``); a staleness marker ends a series; ``__name__`` removal
is delayed to the end of the query (functions can still read it, and two
series only collide if they are still identical once names are dropped).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from trusswork.core.errors import InvalidInput, LimitExceeded
from trusswork.tsdb import _promql_functions as fn
from trusswork.tsdb import _promql_operators as ops
from trusswork.tsdb import _promql_range as rng
from trusswork.tsdb._promql_ast import (
    AggregateExpr,
    AtModifier,
    BinaryExpr,
    Call,
    Expr,
    MatrixSelector,
    NumberLiteral,
    ParenExpr,
    StringLiteral,
    SubqueryExpr,
    UnaryExpr,
    VectorSelector,
)
from trusswork.tsdb._promql_lexer import translate_regex
from trusswork.tsdb._promql_values import (
    Block,
    MatrixResult,
    Result,
    ScalarResult,
    StringResult,
    VectorResult,
)
from trusswork.tsdb._series import Labels, Queryable, SeriesData, is_stale

__all__ = ["Evaluator"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_DEFAULT_SUBQUERY_STEP_MS = 60_000

#: Range functions that can read rollups: the aggregate to read, and the
#: function that then gives the answer (a count over time is the sum of the
#: windows' counts). Others (irate, changes, quantiles, ...) read raw samples.
_DOWNSAMPLED: dict[str, tuple[str, str]] = {
    "rate": ("last", "rate"),
    "increase": ("last", "increase"),
    "delta": ("last", "delta"),
    "last_over_time": ("last", "last_over_time"),
    "present_over_time": ("last", "present_over_time"),
    "min_over_time": ("min", "min_over_time"),
    "max_over_time": ("max", "max_over_time"),
    "sum_over_time": ("sum", "sum_over_time"),
    "count_over_time": ("count", "sum_over_time"),
}
#: A rollup is used when the range (and the step of a range query) spans at
#: least this many of its windows.
_WINDOWS_PER_STEP = 5
_COMPARISONS = frozenset({"==", "!=", "<=", "<", ">=", ">"})


@dataclass(slots=True)
class _Scalar:
    values: FloatArray


@dataclass(slots=True)
class _String:
    value: str


_Value = Block | _Scalar | _String | rng.RangeArg


def _drop_name(labels: Labels) -> Labels:
    return tuple(p for p in labels if p[0] != "__name__")


class Evaluator:
    """Evaluates one parsed query against a :class:`Queryable` over a step grid."""

    def __init__(
        self,
        storage: Queryable,
        *,
        lookback_ms: int,
        start_ms: int,
        end_ms: int,
        step_ms: int,
        max_samples: int = 50_000_000,
        downsample: bool = False,
    ) -> None:
        self.storage = storage
        self.max_samples = max_samples
        self.downsample = downsample
        self.lookback_ms = lookback_ms
        self.start_ms = start_ms
        self.end_ms = end_ms
        self.step_ms = step_ms
        count = (end_ms - start_ms) // step_ms + 1 if step_ms > 0 else 1
        self.grid = start_ms + step_ms * np.arange(count, dtype=np.int64)

    # -- entry points ---------------------------------------------------------
    def instant_result(self, expr: Expr) -> Result:
        """Evaluate at ``start_ms`` and return a Prometheus instant-query result."""
        at = int(self.grid[0])
        value = self.eval(expr, self.grid)
        if isinstance(value, _Scalar):
            return ScalarResult(at, float(value.values[0]))
        if isinstance(value, _String):
            return StringResult(at, value.value)
        if isinstance(value, rng.RangeArg):
            series = [
                SeriesData(_drop_name(lab) if drop else lab, ts, vals)
                for lab, ts, vals, drop in zip(
                    value.labels, value.ts, value.values, value.drop_name, strict=True
                )
                if len(ts)
            ]
            self._check_unique([s.labels for s in series])
            return MatrixResult(sorted(series, key=lambda s: s.labels))
        block = self._finish(value)
        return VectorResult(
            [
                (lab, at, float(block.values[i, 0]))
                for i, lab in enumerate(block.labels)
                if block.present[i, 0]
            ]
        )

    def range_result(self, expr: Expr) -> MatrixResult:
        """Evaluate over the grid and return a Prometheus range-query result."""
        if expr.value_type not in ("scalar", "vector"):
            raise InvalidInput(
                f"invalid expression type {_type_word(expr.value_type)!r} for range "
                f"query, must be Scalar or instant Vector"
            )
        value = self.eval(expr, self.grid)
        if isinstance(value, _Scalar):
            return MatrixResult([SeriesData((), self.grid.copy(), value.values.copy())])
        assert isinstance(value, Block)
        block = self._finish(value)
        series = [
            SeriesData(lab, self.grid[block.present[i]], block.values[i][block.present[i]])
            for i, lab in enumerate(block.labels)
            if block.present[i].any()
        ]
        return MatrixResult(sorted(series, key=lambda s: s.labels))

    def _finish(self, block: Block) -> Block:
        """Drop the names marked for removal; rows that now coincide merge unless they overlap."""
        labels = [
            _drop_name(lab) if drop else lab
            for lab, drop in zip(block.labels, block.drop_name.tolist(), strict=True)
        ]
        out = Block(labels, block.values, block.present, np.zeros(len(labels), dtype=bool))
        return ops.merge_rows(out)

    @staticmethod
    def _check_unique(labels: Sequence[Labels]) -> None:
        if len(set(labels)) != len(labels):
            raise InvalidInput("vector cannot contain metrics with the same labelset")

    # -- dispatch ---------------------------------------------------------------
    def eval(self, expr: Expr, times: IntArray) -> _Value:
        if isinstance(expr, NumberLiteral):
            return _Scalar(np.full(len(times), expr.value))
        if isinstance(expr, StringLiteral):
            return _String(expr.value)
        if isinstance(expr, ParenExpr):
            return self.eval(expr.expr, times)
        if isinstance(expr, VectorSelector):
            return self.select_instant(expr, times)
        if isinstance(expr, MatrixSelector | SubqueryExpr):
            return self.range_arg(expr, times)
        if isinstance(expr, UnaryExpr):
            inner = self.eval(expr.expr, times)
            if isinstance(inner, _Scalar):
                return _Scalar(-inner.values)
            assert isinstance(inner, Block)
            return Block(
                inner.labels, -inner.values, inner.present, np.ones(len(inner), dtype=bool)
            )
        if isinstance(expr, BinaryExpr):
            return self.binary(expr, times)
        if isinstance(expr, AggregateExpr):
            return self.aggregate(expr, times)
        if isinstance(expr, Call):
            return self.call(expr, times)
        raise InvalidInput(f"cannot evaluate {type(expr).__name__}")

    def _charge(self, samples: int) -> None:
        """Refuse a query whose selections would hold more than ``max_samples`` values."""
        if samples > self.max_samples:
            raise LimitExceeded(
                f"query processing would load too many samples into memory "
                f"({samples} > {self.max_samples})"
            )

    def _times_for(self, times: IntArray, at: AtModifier, offset_ms: int) -> IntArray:
        if at is None:
            base = times
        else:
            fixed = self.start_ms if at == "start" else self.end_ms if at == "end" else int(at)
            base = np.full(len(times), fixed, dtype=np.int64)
        return base - offset_ms

    # -- selectors ---------------------------------------------------------------
    def select_instant(self, sel: VectorSelector, times: IntArray) -> Block:
        eval_ts = self._times_for(times, sel.at, sel.offset_ms)
        steps = len(times)
        if steps == 0:
            return Block.empty(0)
        lo, hi = int(eval_ts.min()) - self.lookback_ms + 1, int(eval_ts.max())
        resolution = self._rollup_for(self.lookback_ms, instant=True)
        if resolution:
            found = self.storage.select_downsampled(  # type: ignore[attr-defined]
                sel.matchers, lo, hi, resolution, "last"
            )
        else:
            found = self.storage.select(sel.matchers, lo, hi)
        if not found:
            return Block.empty(steps)
        self._charge(len(found) * steps)
        # The lookback window is a range window whose last sample (unless stale) is the value.
        window = rng.RangeArg(
            [series.labels for series in found],
            [series.ts for series in found],
            [series.values for series in found],
            [False] * len(found),
            eval_ts,
            self.lookback_ms,
        )
        values, present, sample_ts = rng.latest_samples(window)
        return Block(window.labels, values, present, np.zeros(len(found), dtype=bool), sample_ts)

    def _rollup_for(self, range_ms: int, *, instant: bool = False) -> int:
        """The coarsest rollup resolution a selection may read instead of raw samples (0: none).

        Only with ``downsample`` on a storage that has rollups
        (``select_downsampled``), and only when the range, and a range
        query's step, span at least five of its windows; an instant
        selector's lookback must hold a window.
        """
        if not self.downsample or not hasattr(self.storage, "select_downsampled"):
            return 0
        if instant and self.step_ms == 0:
            return 0  # one step: a lookback's worth of raw samples is already small

        def fits(r: int) -> bool:
            spans = r <= range_ms if instant else _WINDOWS_PER_STEP * r <= range_ms
            return spans and (self.step_ms == 0 or _WINDOWS_PER_STEP * r <= self.step_ms)

        return max((r for r in getattr(self.storage, "rollups", ()) if fits(r)), default=0)

    def range_arg(self, expr: Expr, times: IntArray, aggregate: str | None = None) -> rng.RangeArg:
        """The samples of a range-vector argument; ``aggregate`` allows reading rollups."""
        while isinstance(expr, ParenExpr):
            expr = expr.expr
        if isinstance(expr, MatrixSelector):
            sel = expr.selector
            eval_ts = self._times_for(times, sel.at, sel.offset_ms)
            resolution = self._rollup_for(expr.range_ms) if aggregate else 0
            lo, hi = int(eval_ts.min()) - expr.range_ms + 1, int(eval_ts.max())
            if not len(times):
                found = []
            elif resolution:
                found = self.storage.select_downsampled(  # type: ignore[attr-defined]
                    sel.matchers, lo, hi, resolution, aggregate
                )
            else:
                found = self.storage.select(sel.matchers, lo, hi)
            self._charge(sum(len(series.ts) for series in found))
            ts_list, val_list = [], []
            for series in found:
                keep = ~is_stale(series.values)
                if keep.all():
                    ts_list.append(series.ts)
                    val_list.append(series.values)
                else:
                    ts_list.append(series.ts[keep])
                    val_list.append(series.values[keep])
            return rng.RangeArg(
                [s.labels for s in found],
                ts_list,
                val_list,
                [False] * len(found),
                eval_ts,
                expr.range_ms,
                from_rollups=bool(resolution),
            )
        if not isinstance(expr, SubqueryExpr):
            raise InvalidInput(f"expected a range vector, got {type(expr).__name__}")
        eval_ts = self._times_for(times, expr.at, expr.offset_ms)
        step = expr.step_ms or _DEFAULT_SUBQUERY_STEP_MS
        lowest = int(eval_ts.min()) - expr.range_ms
        first = (lowest // step) * step
        if first <= lowest:
            first += step
        last = int(eval_ts.max())
        self._charge((last - first) // step + 1)
        inner_times = np.arange(first, last + 1, step, dtype=np.int64)
        inner = self.eval(expr.expr, inner_times)
        assert isinstance(inner, Block)
        inner = ops.merge_rows(inner)
        return rng.RangeArg(
            list(inner.labels),
            [inner_times[inner.present[i]] for i in range(len(inner))],
            [inner.values[i][inner.present[i]] for i in range(len(inner))],
            inner.drop_name.tolist(),
            eval_ts,
            expr.range_ms,
        )

    # -- binary operators ----------------------------------------------------------
    def binary(self, expr: BinaryExpr, times: IntArray) -> _Value:
        lhs = self.eval(expr.lhs, times)
        rhs = self.eval(expr.rhs, times)
        op = expr.op
        if isinstance(lhs, _Scalar) and isinstance(rhs, _Scalar):
            return _Scalar(ops.arith(op, lhs.values, rhs.values))
        if isinstance(lhs, Block) and isinstance(rhs, Block):
            assert expr.matching is not None
            if op in ("and", "or", "unless"):
                return ops.set_op(op, lhs, rhs, expr.matching)
            return ops.vector_op(expr, lhs, rhs, expr.matching)
        if isinstance(lhs, Block) and isinstance(rhs, _Scalar):
            return ops.vector_scalar(expr, lhs, rhs.values[None, :], swap=False)
        assert isinstance(lhs, _Scalar) and isinstance(rhs, Block)
        return ops.vector_scalar(expr, rhs, lhs.values[None, :], swap=True)

    # -- aggregation ------------------------------------------------------------------
    def aggregate(self, expr: AggregateExpr, times: IntArray) -> Block:
        vec = self.eval(expr.expr, times)
        assert isinstance(vec, Block)
        param: FloatArray | str | None = None
        if expr.param is not None:
            value = self.eval(expr.param, times)
            assert isinstance(value, _Scalar | _String)
            param = value.values if isinstance(value, _Scalar) else value.value
        return ops.aggregate(expr, vec, param)

    # -- functions ----------------------------------------------------------------------
    def call(self, expr: Call, times: IntArray) -> _Value:
        name = expr.func
        steps = len(times)
        if name in rng.RANGE_FUNCTIONS:
            args = list(expr.args)
            params: list[FloatArray] = []
            if name == "quantile_over_time":
                params.append(self._scalar(args.pop(0), times))
            aggregate, function = _DOWNSAMPLED.get(name, (None, name))
            matrix = self.range_arg(args[0], times, aggregate)
            if not matrix.from_rollups:
                function = name
            params.extend(self._scalar(a, times) for a in args[1:])
            if name == "predict_linear":
                # The line is anchored at the step time, even under offset or @.
                params.append(times.astype(np.float64))
            return rng.RANGE_FUNCTIONS[function](matrix, params)
        if name in fn.INSTANT_FUNCTIONS:
            vec = self.eval(expr.args[0], times)
            assert isinstance(vec, Block)
            params = [self._scalar(a, times)[None, :] for a in expr.args[1:]]
            with np.errstate(all="ignore"):
                values = fn.INSTANT_FUNCTIONS[name](vec.values, params)
            return Block(vec.labels, values, vec.present, np.ones(len(vec), dtype=bool))
        if name == "clamp":
            vec = self.eval(expr.args[0], times)
            assert isinstance(vec, Block)
            low = self._scalar(expr.args[1], times)[None, :]
            high = self._scalar(expr.args[2], times)[None, :]
            values = np.maximum(low, np.minimum(high, vec.values))
            present = vec.present & ~(high < low)
            return Block(vec.labels, values, present, np.ones(len(vec), dtype=bool))
        if name in ("time", "pi"):
            return _Scalar(times / 1000 if name == "time" else np.full(steps, math.pi))
        if name in ("start", "end", "step", "range"):
            # Properties of the whole query, not of the step being evaluated.
            seconds = {
                "start": self.start_ms,
                "end": self.end_ms,
                "step": self.step_ms,
                "range": self.end_ms - self.start_ms,
            }[name] / 1000
            return _Scalar(np.full(steps, seconds))
        if name in ("min_of", "max_of"):
            a, b = (self._scalar(arg, times) for arg in expr.args)
            return _Scalar(np.minimum(a, b) if name == "min_of" else np.maximum(a, b))
        if name == "vector":
            values = self._scalar(expr.args[0], times)
            return Block(
                [()],
                values[None, :].copy(),
                np.ones((1, steps), dtype=bool),
                np.zeros(1, dtype=bool),
            )
        if name == "scalar":
            vec = self.eval(expr.args[0], times)
            assert isinstance(vec, Block)
            count = vec.present.sum(axis=0)
            single = np.where(vec.present, vec.values, 0).sum(axis=0)
            return _Scalar(np.where(count == 1, single, np.nan))
        if name == "timestamp":
            vec = self.eval(expr.args[0], times)
            assert isinstance(vec, Block)
            source = (
                vec.sample_ts
                if vec.sample_ts is not None
                else np.broadcast_to(times, vec.values.shape)
            )
            return Block(vec.labels, source / 1000, vec.present, np.ones(len(vec), dtype=bool))
        if name in ("sort", "sort_desc", "sort_by_label", "sort_by_label_desc"):
            return self._sort(expr, times)
        if name in ("absent", "absent_over_time"):
            return self._absent(expr, times)
        if name == "label_replace":
            return self._label_replace(expr, times)
        if name == "label_join":
            return self._label_join(expr, times)
        if name == "histogram_quantile":
            return self._histogram_quantile(expr, times)
        if name in (
            "day_of_month",
            "day_of_week",
            "day_of_year",
            "days_in_month",
            "hour",
            "minute",
            "month",
            "year",
        ):
            return self._date(expr, times)
        raise InvalidInput(f"function {name!r} is not implemented")

    def _scalar(self, expr: Expr, times: IntArray) -> FloatArray:
        value = self.eval(expr, times)
        assert isinstance(value, _Scalar)
        return value.values

    def _string(self, expr: Expr, times: IntArray) -> str:
        value = self.eval(expr, times)
        assert isinstance(value, _String)
        return value.value

    def _sort(self, expr: Call, times: IntArray) -> Block:
        vec = self.eval(expr.args[0], times)
        assert isinstance(vec, Block)
        if vec.values.shape[1] != 1 or not len(vec):
            return vec
        name = expr.func
        rows = [i for i in range(len(vec)) if vec.present[i, 0]]
        if name in ("sort", "sort_desc"):

            def value_key(i: int) -> tuple[bool, float]:
                v = float(vec.values[i, 0])
                return (math.isnan(v), -v if name == "sort_desc" else v)

            rows.sort(key=value_key)
        else:
            names = [self._string(a, times) for a in expr.args[1:]]
            rows.sort(
                key=lambda i: (
                    tuple(fn.natural_key(dict(vec.labels[i]).get(n, "")) for n in names),
                    vec.labels[i],
                ),
                reverse=name == "sort_by_label_desc",
            )
        return vec.take(rows)

    def _absent(self, expr: Call, times: IntArray) -> Block:
        steps = len(times)
        arg = expr.args[0]
        has: BoolArray
        if expr.func == "absent":
            vec = self.eval(arg, times)
            assert isinstance(vec, Block)
            has = np.asarray(vec.present.any(axis=0), dtype=bool)
        else:
            matrix = self.range_arg(arg, times)
            has = np.zeros(steps, dtype=bool)
            for ts in matrix.ts:
                lo = np.searchsorted(ts, matrix.eval_ts - matrix.range_ms, side="right")
                hi = np.searchsorted(ts, matrix.eval_ts, side="right")
                has |= hi > lo
        inner: Expr = arg
        while isinstance(inner, ParenExpr):
            inner = inner.expr
        if isinstance(inner, MatrixSelector):
            inner = inner.selector
        labels: Labels = ()
        if isinstance(inner, VectorSelector):
            seen: dict[str, int] = defaultdict(int)
            values: dict[str, str] = {}
            for m in inner.matchers:
                seen[m.name] += 1
                if m.op == "=" and m.name != "__name__":
                    values[m.name] = m.value
            labels = tuple(sorted((k, v) for k, v in values.items() if seen[k] == 1 and v))
        return Block([labels], np.ones((1, steps)), ~has[None, :], np.zeros(1, dtype=bool))

    def _relabel(self, vec: Block, labels: list[Labels], dst: str) -> Block:
        drops = vec.drop_name.copy()
        if dst == "__name__":
            drops[:] = False
        out = Block(labels, vec.values, vec.present, drops, None)
        return ops.merge_rows(out)

    def _label_replace(self, expr: Call, times: IntArray) -> Block:
        vec = self.eval(expr.args[0], times)
        assert isinstance(vec, Block)
        dst, replacement, src, pattern = (self._string(a, times) for a in expr.args[1:])
        try:
            regex = re.compile(f"(?s:{translate_regex(pattern)})\\Z")
        except re.error as exc:
            raise InvalidInput(
                f"invalid regular expression in label_replace(): {pattern!r}: {exc}"
            ) from None
        fn.check_label_name(dst)
        new_labels: list[Labels] = []
        for lab in vec.labels:
            current = dict(lab)
            match = regex.match(current.get(src, ""))
            if match is not None:
                value = fn.expand_template(replacement, match)
                if value:
                    current[dst] = value
                else:
                    current.pop(dst, None)
            new_labels.append(tuple(sorted(current.items())))
        return self._relabel(vec, new_labels, dst)

    def _label_join(self, expr: Call, times: IntArray) -> Block:
        vec = self.eval(expr.args[0], times)
        assert isinstance(vec, Block)
        dst = self._string(expr.args[1], times)
        sep = self._string(expr.args[2], times)
        sources = [self._string(a, times) for a in expr.args[3:]]
        fn.check_label_name(dst)
        new_labels: list[Labels] = []
        for lab in vec.labels:
            current = dict(lab)
            value = sep.join(current.get(s, "") for s in sources)
            if value:
                current[dst] = value
            else:
                current.pop(dst, None)
            new_labels.append(tuple(sorted(current.items())))
        return self._relabel(vec, new_labels, dst)

    def _histogram_quantile(self, expr: Call, times: IntArray) -> Block:
        q = self._scalar(expr.args[0], times)
        vec = self.eval(expr.args[1], times)
        assert isinstance(vec, Block)
        steps = len(times)
        groups: dict[Labels, list[tuple[float, int]]] = {}
        for i, lab in enumerate(vec.labels):
            le_text = dict(lab).get("le")
            if le_text is None:
                continue
            try:
                upper = float(le_text.strip())
            except ValueError:
                continue
            key = tuple(p for p in lab if p[0] not in ("le", "__name__"))
            groups.setdefault(key, []).append((upper, i))
        out_labels: list[Labels] = []
        rows_v: list[FloatArray] = []
        rows_p: list[BoolArray] = []
        for key, buckets in groups.items():
            buckets.sort()
            uppers = np.array(sorted({upper for upper, _ in buckets}))
            # Buckets with the same bound (le="1" and le="1.0") add up.
            slot = np.searchsorted(uppers, [upper for upper, _ in buckets])
            counts = np.zeros((len(uppers), steps))
            present = np.zeros((len(uppers), steps), dtype=bool)
            for target, (_, row) in zip(slot.tolist(), buckets, strict=True):
                counts[target] += np.where(vec.present[row], vec.values[row], 0.0)
                present[target] |= vec.present[row]
            values, live = fn.histogram_quantile(q, uppers, counts, present)
            out_labels.append(key)
            rows_v.append(values)
            rows_p.append(live)
        if not out_labels:
            return Block.empty(steps)
        return Block(
            out_labels, np.vstack(rows_v), np.vstack(rows_p), np.zeros(len(out_labels), dtype=bool)
        )

    def _date(self, expr: Call, times: IntArray) -> Block:
        if expr.args:
            vec = self.eval(expr.args[0], times)
            assert isinstance(vec, Block)
        else:
            vec = Block(
                [()],
                (times / 1000)[None, :],
                np.ones((1, len(times)), dtype=bool),
                np.zeros(1, dtype=bool),
            )
        raw = vec.values
        finite = np.isfinite(raw)
        seconds = np.where(finite, raw, 0).astype(np.int64)
        moment = seconds.astype("datetime64[s]")
        days = moment.astype("datetime64[D]")
        months = moment.astype("datetime64[M]")
        years = moment.astype("datetime64[Y]")
        name = expr.func
        if name == "year":
            result = years.astype(np.int64) + 1970
        elif name == "month":
            result = months.astype(np.int64) % 12 + 1
        elif name == "day_of_month":
            result = (days - months.astype("datetime64[D]")).astype(np.int64) + 1
        elif name == "day_of_year":
            result = (days - years.astype("datetime64[D]")).astype(np.int64) + 1
        elif name == "day_of_week":
            result = (days.astype(np.int64) + 4) % 7
        elif name == "days_in_month":
            result = ((months + 1).astype("datetime64[D]") - months.astype("datetime64[D]")).astype(
                np.int64
            )
        elif name == "hour":
            result = (seconds // 3600) % 24
        else:
            result = (seconds // 60) % 60
        values = np.where(finite, result.astype(np.float64), np.nan)
        return Block(vec.labels, values, vec.present, np.ones(len(vec), dtype=bool))


def _type_word(vt: str) -> str:
    return {"vector": "instant vector", "matrix": "range vector"}.get(vt, vt)
