"""Values the PromQL engine passes between nodes, and the results it returns.

Inside the engine every expression is evaluated over the whole step grid at
once: an instant vector is a :class:`Block` holding one row per series and one
column per step (``values`` plus a ``present`` mask, since NaN is an ordinary
value), a scalar is one float per step. Public results
(:class:`ScalarResult`, :class:`StringResult`, :class:`VectorResult`,
:class:`MatrixResult`) are what queries return.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from trusswork.tsdb._series import Labels, SeriesData

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "Block",
    "MatrixResult",
    "Result",
    "ScalarResult",
    "StringResult",
    "VectorResult",
    "format_value",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]


def format_value(value: float) -> str:
    """A float as Prometheus's HTTP API writes it: shortest round-trip, no exponent."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(float(value))
    if "e" in text or "E" in text:
        text = format(Decimal(text), "f")
    if text.endswith(".0"):
        text = text[:-2]
    return "0" if text == "-0" else text


def _metric_json(labels: Labels) -> dict[str, str]:
    return dict(labels)


def _arrow_table(
    labels: list[Labels], counts: list[int], ts: IntArray, values: FloatArray
) -> pa.Table:
    """Long format: per point, one string column per label name, ``timestamp`` and ``value``.

    A series without a label has null in that label's column. Label columns
    are dictionary-encoded (each series' labels repeat on all its points).
    """
    import pyarrow as pa

    names = sorted({name for series in labels for name, _ in series})
    rows = np.repeat(np.arange(len(labels)), counts)
    columns: dict[str, Any] = {}
    for name in names:
        per_series = pa.array([dict(series).get(name) for series in labels], pa.string())
        columns[name] = pa.DictionaryArray.from_arrays(pa.array(rows, pa.int32()), per_series)
    columns["timestamp"] = pa.array(ts, pa.timestamp("ms", tz="UTC"))
    columns["value"] = pa.array(values, pa.float64())
    return pa.table(columns)


@dataclass(slots=True)
class Block:
    """An instant vector over the step grid: rows are series, columns are steps.

    ``drop_name`` marks rows whose ``__name__`` is to be removed when the
    query finishes (Prometheus's delayed name removal), so functions can
    still read the name meanwhile. ``sample_ts`` holds, for rows that come
    straight from a selector, the timestamp of the sample each step used.
    """

    labels: list[Labels]
    values: FloatArray
    present: BoolArray
    drop_name: BoolArray
    sample_ts: IntArray | None = None

    @classmethod
    def empty(cls, steps: int) -> Block:
        return cls(
            [], np.empty((0, steps)), np.empty((0, steps), dtype=bool), np.empty(0, dtype=bool)
        )

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, rows: list[int] | npt.NDArray[np.intp]) -> Block:
        """The sub-block of ``rows`` (in that order)."""
        idx = np.asarray(rows, dtype=np.intp)
        return Block(
            [self.labels[i] for i in idx],
            self.values[idx],
            self.present[idx],
            self.drop_name[idx],
            None if self.sample_ts is None else self.sample_ts[idx],
        )


@dataclass(frozen=True, slots=True)
class ScalarResult:
    """A scalar at one time."""

    ts_ms: int
    value: float
    result_type: Literal["scalar"] = "scalar"

    def to_prometheus_json(self) -> dict[str, Any]:
        """The ``data`` object of Prometheus's HTTP API for this result."""
        return {"resultType": "scalar", "result": [self.ts_ms / 1000, format_value(self.value)]}


@dataclass(frozen=True, slots=True)
class StringResult:
    """A string at one time."""

    ts_ms: int
    value: str
    result_type: Literal["string"] = "string"

    def to_prometheus_json(self) -> dict[str, Any]:
        """The ``data`` object of Prometheus's HTTP API for this result."""
        return {"resultType": "string", "result": [self.ts_ms / 1000, self.value]}


@dataclass(frozen=True, slots=True)
class VectorResult:
    """An instant vector: ``(labels, ts_ms, value)`` per series."""

    samples: list[tuple[Labels, int, float]]
    result_type: Literal["vector"] = "vector"

    def to_arrow(self) -> pa.Table:
        """One row per series: a column per label name, ``timestamp`` and ``value``."""
        return _arrow_table(
            [labels for labels, _, _ in self.samples],
            [1] * len(self.samples),
            np.array([ts for _, ts, _ in self.samples], dtype=np.int64),
            np.array([value for _, _, value in self.samples], dtype=np.float64),
        )

    def to_prometheus_json(self) -> dict[str, Any]:
        """The ``data`` object of Prometheus's HTTP API for this result."""
        return {
            "resultType": "vector",
            "result": [
                {"metric": _metric_json(labels), "value": [ts / 1000, format_value(value)]}
                for labels, ts, value in self.samples
            ],
        }


@dataclass(frozen=True, slots=True)
class MatrixResult:
    """A range vector or the result of a range query: one :class:`SeriesData` per series."""

    series: list[SeriesData]
    result_type: Literal["matrix"] = "matrix"

    def to_arrow(self) -> pa.Table:
        """One row per point (long format): a column per label name, ``timestamp``, ``value``."""
        return _arrow_table(
            [s.labels for s in self.series],
            [len(s.ts) for s in self.series],
            np.concatenate([s.ts for s in self.series]) if self.series else np.empty(0, np.int64),
            np.concatenate([s.values for s in self.series])
            if self.series
            else np.empty(0, np.float64),
        )

    def to_prometheus_json(self) -> dict[str, Any]:
        """The ``data`` object of Prometheus's HTTP API for this result."""
        return {
            "resultType": "matrix",
            "result": [
                {
                    "metric": _metric_json(s.labels),
                    "values": [
                        [int(t) / 1000, format_value(float(v))]
                        for t, v in zip(s.ts, s.values, strict=True)
                    ],
                }
                for s in self.series
            ],
        }


Result = ScalarResult | StringResult | VectorResult | MatrixResult
