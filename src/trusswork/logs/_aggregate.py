"""Ordering, grouping and aggregating rows: the commands that work on groups of rows.

``sort``, ``dedup``, ``stats``, ``timechart``, ``top``, ``rare`` and
``patterns`` share the sort order (nulls last, stable, texts that are
numbers before the others) and the grouping by combinations of values; the
semantics of each command are in the module docstring of
:mod:`trusswork.logs._pipeline`. Grouping and aggregation run in Arrow's
hash aggregation; percentiles and ``patterns`` run in Python.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from trusswork.core.errors import InvalidInput
from trusswork.logs._ast import Agg, Patterns, Rare, SortKey, Timechart, Top, parse_number
from trusswork.logs._columns import (
    _as_numbers,
    _as_text,
    _column_or_nulls,
    _kind,
    _map_values,
    _set_column,
    _text_of,
    _to_numpy_bool,
    _where,
)
from trusswork.logs._patterns import PatternMiner

#: Most time buckets a ``timechart`` may produce.
MAX_BUCKETS = 100_000


# ---------------------------------------------------------------- sorting


def _sort_columns(array: Any, descending: bool) -> list[tuple[Any, str]]:
    """Arrays whose lexicographic order (nulls last) is ``array``'s sort order."""
    order = "descending" if descending else "ascending"
    kind = _kind(array.type)
    if kind == "null":
        return []
    if kind == "bool":
        return [(pc.cast(array, pa.int8()), order)]
    if kind != "str":
        return [(array, order)]

    def number(text: str) -> float | None:
        value = parse_number(text)
        return None if value is None or math.isnan(value) else value

    numbers = _map_values(array, number, pa.float64())
    rank = pc.if_else(pc.is_valid(numbers), 0, 1)
    rank = pc.if_else(pc.is_valid(array), rank, pa.scalar(None, pa.int64()))
    return [(rank, order), (numbers, order), (array, order)]


def _sort_indices(columns: list[tuple[Any, bool]], rows: int) -> Any:
    """Stable order of rows by ``(array, descending)`` keys, nulls last."""
    keys: dict[str, Any] = {}
    sort_keys = []
    for array, descending in columns:
        for part, order in _sort_columns(array, descending):
            name = f"k{len(keys)}"
            keys[name] = part
            sort_keys.append((name, order, "at_end"))
    if not sort_keys:
        return pa.array(np.arange(rows, dtype=np.int64))
    return pc.sort_indices(pa.table(keys), sort_keys=sort_keys)


def _sort(table: Any, keys: Sequence[SortKey], limit: int | None) -> Any:
    columns = [(_column_or_nulls(table, key.field), key.descending) for key in keys]
    indices = _sort_indices(columns, table.num_rows)
    if limit:
        indices = indices[:limit]
    return table.take(indices)


# ----------------------------------------------------------- group helpers


def _codes(array: Any) -> np.ndarray[Any, Any]:
    """Per row, the id of its value (equal values, equal ids); -1 for null."""
    if len(array) == array.null_count:
        return np.full(len(array), -1, dtype=np.int64)
    indices = pc.dictionary_encode(array).indices
    return np.asarray(
        pc.cast(indices, pa.int64()).fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64
    )


def _group_ids(arrays: list[Any], rows: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """(row has every value, group id per such row) for the combinations of ``arrays``."""
    if not arrays:
        return np.ones(rows, dtype=bool), np.zeros(rows, dtype=np.int64)
    codes = np.stack([_codes(a) for a in arrays], axis=1)
    present: np.ndarray[Any, Any] = np.asarray((codes >= 0).all(axis=1), dtype=bool)
    if not present.any():
        return present, np.zeros(0, dtype=np.int64)
    codes = codes[present]
    # One integer per combination (mixed radix) when it fits, else rows as keys.
    sizes = codes.max(axis=0) + 1
    if float(np.prod(sizes.astype(np.float64))) < 2.0**62:
        radix = np.cumprod(np.r_[1, sizes[::-1][:-1]])[::-1]
        _, groups = np.unique(codes @ radix, return_inverse=True)
    else:
        _, groups = np.unique(codes, axis=0, return_inverse=True)
    return present, np.asarray(groups, dtype=np.int64).reshape(-1)


def _ranks(groups: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Per row, how many earlier rows share its group."""
    order = np.argsort(groups, kind="stable")
    sorted_groups = groups[order]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    run_start = np.repeat(starts, np.diff(np.r_[starts, len(groups)]))
    ranks = np.empty(len(groups), dtype=np.int64)
    ranks[order] = np.arange(len(groups)) - run_start
    return ranks


def _dedup(table: Any, fields: Sequence[str], keep: int, at: int) -> Any:
    if keep < 1:
        raise InvalidInput(f"dedup keeps at least 1 row per combination, got {keep}{_where(at)}")
    arrays = [_column_or_nulls(table, f) for f in fields]
    present, groups = _group_ids(arrays, table.num_rows)
    rows = np.flatnonzero(present)
    return table.take(pa.array(rows[_ranks(groups) < keep]))


# ------------------------------------------------------------------ stats

_COUNTS = ("count", "dc")


def _agg_spec(agg: Agg, column: Any, at: int) -> tuple[Any, str, Any]:
    """(input array, Arrow hash aggregation, options) for one aggregation."""
    func = agg.func
    if func == "count" and agg.field is None:
        return column, "count", pc.CountOptions(mode="all")
    if agg.field is None:
        raise InvalidInput(f"{func}() needs a field{_where(agg.at or at)}")
    if _kind(column.type) == "null":
        column = pa.nulls(len(column), pa.float64())
    if func == "count":
        return column, "count", pc.CountOptions(mode="only_valid")
    if func == "dc":
        return column, "count_distinct", pc.CountOptions(mode="only_valid")
    if func == "values":
        return column, "distinct", pc.CountOptions(mode="only_valid")
    if func in ("min", "max", "first", "last"):
        return column, func, None
    numbers = _as_numbers(column)
    if func == "sum":
        # a sum of integers stays an integer
        addends = column if _kind(column.type) == "int" else numbers
        return addends, "sum", pc.ScalarAggregateOptions(min_count=1)
    if func == "avg":
        return numbers, "mean", pc.ScalarAggregateOptions(min_count=1)
    if func == "stdev":
        return numbers, "stddev", pc.VarianceOptions(ddof=1)
    if func in ("median", "perc"):
        return numbers, "list", None
    raise InvalidInput(f"unknown aggregation {func}(){_where(agg.at or at)}")


def _percentile(agg: Agg) -> float:
    if agg.func == "median":
        return 50.0
    if agg.percentile is None or not 0.0 <= agg.percentile <= 100.0:
        raise InvalidInput(
            f"{agg.name}: the percentile must be 0 to 100, got {agg.percentile}{_where(agg.at)}"
        )
    return float(agg.percentile)


def _finish(agg: Agg, values: Any) -> Any:
    """The output column of an aggregation from Arrow's result."""
    if agg.func in ("median", "perc"):
        q = _percentile(agg)
        out: list[float | None] = []
        for group in values.to_pylist():
            present = [v for v in group if v is not None and not math.isnan(v)]
            with np.errstate(all="ignore"):  # inf - inf between neighbours is NaN
                out.append(float(np.percentile(np.array(present), q)) if present else None)
        return pa.array(out, pa.float64())
    if agg.func == "values":
        return pa.array(
            [sorted({_text_of(v) for v in group}) for group in values.to_pylist()],
            pa.list_(pa.string()),
        )
    return values


def _stats(table: Any, aggs: Sequence[Agg], by: Sequence[str], at: int) -> Any:
    names = [agg.name for agg in aggs] + list(by)
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise InvalidInput(f"stats would make two columns named {duplicate!r}{_where(at)}")
    for agg in aggs:
        if agg.func in ("median", "perc"):
            _percentile(agg)
    rows = table.num_rows
    keys = [_column_or_nulls(table, f) for f in by]
    present = np.ones(rows, dtype=bool)
    for key in keys:
        present &= _to_numpy_bool(pc.is_valid(key))
    work: dict[str, Any] = {f"k{i}": key for i, key in enumerate(keys)}
    if not keys:
        work["k"] = pa.repeat(pa.scalar(0, pa.int64()), rows)
    specs = []
    for j, agg in enumerate(aggs):
        if agg.field is None:
            source = pa.repeat(pa.scalar(True), rows)
        else:
            source = _column_or_nulls(table, agg.field)
        array, func, options = _agg_spec(agg, source, at)
        work[f"a{j}"] = array
        specs.append((f"a{j}", func, options) if options is not None else (f"a{j}", func))
    grouped_input = pa.table(work).filter(pa.array(present))
    result = grouped_input.group_by(
        [name for name in work if name.startswith("k")], use_threads=False
    ).aggregate(specs)
    output: dict[str, Any] = {}
    for i, field in enumerate(by):
        output[field] = result.column(f"k{i}").combine_chunks()
    for j, (agg, spec) in enumerate(zip(aggs, specs, strict=True)):
        output[agg.name] = _finish(agg, result.column(f"a{j}_{spec[1]}").combine_chunks())
    if not by and result.num_rows == 0:
        empty: dict[str, Any] = {}
        for agg, column in zip(aggs, output.values(), strict=True):
            value = 0 if agg.func in _COUNTS else None
            empty[agg.name] = pa.array([value], column.type)
        return pa.table(empty) if empty else pa.table({})
    out = pa.table(output)
    if by:
        order = _sort_indices([(out.column(f).combine_chunks(), False) for f in by], out.num_rows)
        out = out.take(order)
    return out


# -------------------------------------------------------------- timechart


def _timechart(table: Any, command: Timechart) -> Any:
    span = command.span_ms
    if span <= 0:
        raise InvalidInput(f"timechart span must be positive, got {span} ms{_where(command.at)}")
    times = _column_or_nulls(table, "_time")
    if _kind(times.type) not in ("int", "float", "null"):
        raise InvalidInput(f"timechart needs a numeric _time{_where(command.at)}")
    times = pc.cast(times, pa.int64(), safe=False) if _kind(times.type) != "null" else times
    table = table.filter(pc.is_valid(times))
    times = times.filter(pc.is_valid(times))
    start = end = 0
    if len(times):
        values = np.asarray(times.to_numpy(zero_copy_only=False), dtype=np.int64)
        buckets = (values // span) * span
        start, end = int(buckets.min()), int(buckets.max())
        if (end - start) // span + 1 > MAX_BUCKETS:
            raise InvalidInput(
                f"timechart span={span}ms makes more than {MAX_BUCKETS} buckets; use a longer "
                f"span{_where(command.at)}"
            )
        table = _set_column(table, "\x00bucket", pa.array(buckets, pa.int64()))
    else:
        table = _set_column(table, "\x00bucket", pa.array([], pa.int64()))
    grid = list(range(start, end + 1, span)) if len(times) else []
    if command.by is None:
        stats = _stats(table, command.aggs, ["\x00bucket"], command.at)
        series: dict[tuple[str, ...], Any] = {(): stats}
        return _pivot(grid, command.aggs, series, single=True)
    by = command.by
    text = _as_text(_column_or_nulls(table, by))
    table = _set_column(table, "\x00series", text)
    stats = _stats(table, command.aggs, ["\x00bucket", "\x00series"], command.at)
    first = command.aggs[0].name if command.aggs else None
    totals: dict[str, float] = {}
    weights = stats.column(first).to_pylist() if first is not None else [1] * stats.num_rows
    for value, weight in zip(stats.column("\x00series").to_pylist(), weights, strict=True):
        numeric = isinstance(weight, int | float) and not isinstance(weight, bool)
        # values(), first() of text and the like: a bucket counts as 1
        number = float(weight) if numeric else 0.0 if weight is None else 1.0
        totals[value] = totals.get(value, 0.0) + (0.0 if math.isnan(number) else number)
    ranked = sorted(totals, key=lambda v: (-totals[v], v))
    kept = ranked if command.limit <= 0 else ranked[: command.limit]
    if len(kept) < len(ranked):
        kept_set = pa.array(kept, pa.string())
        other = pc.if_else(pc.is_in(text, value_set=kept_set), text, "OTHER")
        other = pc.if_else(pc.is_valid(text), other, pa.scalar(None, pa.string()))
        table = _set_column(table, "\x00series", other)
        stats = _stats(table, command.aggs, ["\x00bucket", "\x00series"], command.at)
    names = pa.array(kept, pa.string())
    order = _sort_indices([(names, False)], len(kept)).to_pylist()
    labels = [kept[i] for i in order] + (["OTHER"] if len(kept) < len(ranked) else [])
    series = {}
    label_column = stats.column("\x00series")
    for label in labels:
        series[(label,)] = stats.filter(pc.equal(label_column, label))
    return _pivot(grid, command.aggs, series, single=len(command.aggs) == 1)


def _pivot(
    grid: list[int], aggs: Sequence[Agg], series: dict[tuple[str, ...], Any], *, single: bool
) -> Any:
    """One row per bucket of ``grid``; one column per (series, aggregation)."""
    position = {bucket: i for i, bucket in enumerate(grid)}
    output: dict[str, Any] = {"_time": pa.array(grid, pa.int64())}
    for key, stats in series.items():
        rows = [position[b] for b in stats.column("\x00bucket").to_pylist()]
        for agg in aggs:
            column = stats.column(agg.name).combine_chunks()
            fill = 0 if agg.func in _COUNTS else None
            values: list[Any] = [fill] * len(grid)
            for row, value in zip(rows, column.to_pylist(), strict=True):
                values[row] = value
            name = agg.name if not key else key[0] if single else f"{agg.name}: {key[0]}"
            output[name] = pa.array(values, column.type)
    return pa.table(output)


# --------------------------------------------------------------- top, rare


def _top(table: Any, command: Top | Rare) -> Any:
    rare = isinstance(command, Rare)
    fields, by = list(dict.fromkeys(command.fields)), list(dict.fromkeys(command.by))
    name = "rare" if rare else "top"
    if not fields:
        raise InvalidInput(f"{name} needs a field{_where(command.at)}")
    both = [f for f in fields if f in by or f in ("count", "percent")]
    if both:
        raise InvalidInput(
            f"{name} cannot count {both[0]!r}: it is a by field or an output column"
            f"{_where(command.at)}"
        )
    count = _stats(table, [Agg("count", None, "count")], [*by, *fields], command.at)
    counts = np.asarray(count.column("count").to_numpy(), dtype=np.float64)
    _, groups = _group_ids([count.column(f).combine_chunks() for f in by], count.num_rows)
    totals = np.bincount(groups, weights=counts) if len(groups) else np.zeros(0)
    percent = counts * 100.0 / totals[groups] if len(groups) else counts
    count = count.append_column("percent", pa.array(percent, pa.float64()))
    keys = [(count.column(f).combine_chunks(), False) for f in by]
    keys.append((count.column("count").combine_chunks(), not rare))
    keys += [(count.column(f).combine_chunks(), False) for f in fields]
    count = count.take(_sort_indices(keys, count.num_rows))
    if command.limit > 0:
        _, groups = _group_ids([count.column(f).combine_chunks() for f in by], count.num_rows)
        count = count.filter(pa.array(_ranks(groups) < command.limit))
    return count.select([*by, *fields, "count", "percent"])


# --------------------------------------------------------------- patterns


def _patterns(table: Any, command: Patterns) -> Any:
    if command.limit is not None and command.limit < 0:
        raise InvalidInput(f"patterns limit must be >= 0, got {command.limit}{_where(command.at)}")
    miner = PatternMiner()
    mined: list[tuple[int, str]] = []
    for value in _as_text(_column_or_nulls(table, command.field)).to_pylist():
        if value is not None:
            mined.append((miner.add(value)[0], value))
    # Templates merge as lines arrive: count (and sample) by the id each line's
    # template ends up under, in input order, so the sample is the first line.
    counts: dict[int, int] = {}
    first_sample: dict[int, str] = {}
    for template_id, value in mined:
        final = miner.template_id(template_id)
        counts[final] = counts.get(final, 0) + 1
        first_sample.setdefault(final, value)
    texts = {final: miner.template(final) for final in counts}
    order = sorted(counts, key=lambda t: (-counts[t], texts[t]))
    if command.limit is not None:
        order = order[: command.limit]
    return pa.table(
        {
            "pattern": pa.array([texts[t] for t in order], pa.string()),
            "count": pa.array([counts[t] for t in order], pa.int64()),
            "sample": pa.array([first_sample[t] for t in order], pa.string()),
        }
    )
