"""PromQL: parse queries and evaluate them against any :class:`~trusswork.tsdb._series.Queryable`.

Usage::

    from trusswork.tsdb.promql import Engine

    engine = Engine(storage)                      # lookback delta 5 minutes
    result = engine.instant('sum by (mode) (rate(node_cpu_seconds_total[5m]))', at_ms=t)
    body = result.to_prometheus_json()            # the "data" object of /api/v1/query

Range queries (``Engine.range``) are vectorised across steps: each series
costs a handful of numpy calls whatever the number of steps. Semantics are
Prometheus 3's: left-open lookback and range windows, staleness markers,
rate/increase/delta extrapolation, delayed ``__name__`` removal. Syntax errors
raise :class:`~trusswork.core.errors.ParseError` pointing at the offending
token; evaluation errors (type or matching errors) raise
:class:`~trusswork.core.errors.InvalidInput`.
"""

from __future__ import annotations

from trusswork.core.errors import InvalidInput
from trusswork.tsdb._promql_ast import Expr
from trusswork.tsdb._promql_engine import Evaluator as _Evaluator
from trusswork.tsdb._promql_parser import parse, parse_duration
from trusswork.tsdb._promql_values import (
    MatrixResult,
    Result,
    ScalarResult,
    StringResult,
    VectorResult,
)
from trusswork.tsdb._series import Queryable as _Queryable

__all__ = [
    "Engine",
    "Expr",
    "MatrixResult",
    "Result",
    "ScalarResult",
    "StringResult",
    "VectorResult",
    "parse",
    "parse_duration",
]

#: Longest range query, in steps, before the engine refuses (memory is steps x series).
MAX_STEPS = 11_000


class Engine:
    """Evaluates PromQL over a storage.

    Parameters
    ----------
    storage:
        Where samples come from; read only through ``select``.
    lookback_ms:
        How far back an instant selector looks for a sample (Prometheus's
        lookback delta, 5 minutes by default).
    max_samples:
        Most values one selection may hold (series x steps for an instant
        selector, samples for a range selector, steps for a subquery); a
        query beyond it raises :class:`~trusswork.core.errors.LimitExceeded`.
    downsample:
        Read rollups instead of raw samples over long ranges, when the
        storage has them (a :class:`~trusswork.tsdb.TSDB` after compaction):
        ``rate``, ``increase``, ``delta``, ``last_over_time`` and
        ``present_over_time`` read each window's last value,
        ``min/max/sum/count_over_time`` its min, max, sum and count, and
        plain selectors of a range query its last value. A rollup of
        resolution r is used when the range and the step span at least 5 r
        (an instant selector's 5 minute lookback holds one 5 m window), so
        answers change by at most a window's worth at the edges of each
        range; queries at raw resolution are exact as before.
    """

    def __init__(
        self,
        storage: _Queryable,
        *,
        lookback_ms: int = 300_000,
        max_samples: int = 50_000_000,
        downsample: bool = True,
    ) -> None:
        if lookback_ms <= 0:
            raise InvalidInput(f"lookback_ms must be positive, got {lookback_ms}")
        if max_samples <= 0:
            raise InvalidInput(f"max_samples must be positive, got {max_samples}")
        self.storage = storage
        self.lookback_ms = lookback_ms
        self.max_samples = max_samples
        self.downsample = downsample

    def instant(self, query: str, at_ms: int) -> Result:
        """Evaluate ``query`` at one time (ms since the epoch).

        Returns
        -------
        Result
            A scalar, string, instant vector or (for a range-vector expression) matrix.

        Raises
        ------
        ParseError
            If the query does not parse.
        InvalidInput
            If evaluation fails (type or vector-matching errors).
        LimitExceeded
            If a selection would hold more than ``max_samples`` values.
        """
        expr = parse(query)
        evaluator = _Evaluator(
            self.storage,
            lookback_ms=self.lookback_ms,
            max_samples=self.max_samples,
            downsample=self.downsample,
            start_ms=at_ms,
            end_ms=at_ms,
            step_ms=0,
        )
        return evaluator.instant_result(expr)

    def range(self, query: str, start_ms: int, end_ms: int, step_ms: int) -> MatrixResult:
        """Evaluate ``query`` at ``start_ms, start_ms + step_ms, ...`` up to ``end_ms``.

        Returns
        -------
        MatrixResult
            One series per result label set, with its points at the steps where it has a value.

        Raises
        ------
        ParseError
            If the query does not parse.
        InvalidInput
            If the range is invalid, the expression is not a scalar or instant vector, or
            evaluation fails.
        LimitExceeded
            If a selection would hold more than ``max_samples`` values.
        """
        if step_ms <= 0:
            raise InvalidInput(f"step must be positive, got {step_ms} ms")
        if end_ms < start_ms:
            raise InvalidInput("end timestamp must not be before start time")
        if (end_ms - start_ms) // step_ms + 1 > MAX_STEPS:
            raise InvalidInput(
                f"exceeded maximum resolution of {MAX_STEPS} points per "
                f"timeseries; try decreasing the query resolution (?step=XX)"
            )
        expr = parse(query)
        evaluator = _Evaluator(
            self.storage,
            lookback_ms=self.lookback_ms,
            max_samples=self.max_samples,
            downsample=self.downsample,
            start_ms=start_ms,
            end_ms=end_ms,
            step_ms=step_ms,
        )
        return evaluator.range_result(expr)
