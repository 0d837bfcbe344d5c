"""PromQL engine: semantics by example, vectorised kernels against naive oracles, results."""

from __future__ import annotations

import itertools
import math
import statistics
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import examples
from trusswork.core.errors import InvalidInput, LimitExceeded, ParseError
from trusswork.tsdb._memstore import MemoryStore
from trusswork.tsdb._promql_functions import histogram_quantile
from trusswork.tsdb._series import STALE_NAN, Matcher, labels_of
from trusswork.tsdb.promql import (
    Engine,
    MatrixResult,
    ScalarResult,
    StringResult,
    VectorResult,
)

M = 60_000  # one minute in ms


def store_with(series: dict[str, list[tuple[int, float]]]) -> MemoryStore:
    store = MemoryStore()
    for text, points in series.items():
        name, _, rest = text.partition("{")
        labels = {"__name__": name}
        for pair in filter(None, rest.rstrip("}").split(",")):
            key, value = pair.split("=")
            labels[key.strip()] = value.strip().strip('"')
        store.add_many(labels, [t for t, _ in points], [v for _, v in points])
    return store


def vector(result: object) -> dict[tuple[tuple[str, str], ...], float]:
    assert isinstance(result, VectorResult)
    return {labels: value for labels, _, value in result.samples}


def test_rate_extrapolates_like_prometheus() -> None:
    # samples every minute, 0, 10, ..., 90: window (4m, 9m] holds 50..90 at 5m..9m.
    store = store_with({"x": [(i * M, i * 10.0) for i in range(10)]})
    engine = Engine(store)
    got = vector(engine.instant("rate(x[5m])", 9 * M))
    # 40 over 240 s, extended by 60 s at the start (gap < 1.1 intervals) and 0 at the end.
    assert got == {(): pytest.approx(40 * (300 / 240) / 300)}
    increase = vector(engine.instant("increase(x[5m])", 9 * M))
    assert increase[()] == pytest.approx(50.0)
    delta = vector(engine.instant("delta(x[5m])", 9 * M))
    assert delta[()] == pytest.approx(50.0)


def test_rate_handles_counter_resets_and_never_extrapolates_below_zero() -> None:
    store = store_with({"c": [(0, 5.0), (M, 8.0), (2 * M, 2.0), (3 * M, 4.0)]})
    engine = Engine(store)
    # raw increase: (4 - 5) + 8 (reset) = 7 over 180 s; the window starts 120 s before the
    # first sample, more than 1.1 intervals, so half an interval (30 s) is added at the start
    got = vector(engine.instant("increase(c[5m])", 3 * M))
    assert got[()] == pytest.approx(7 * (180 + 30) / 180)
    zero = store_with({"z": [(2 * M, 1.0), (3 * M, 11.0), (4 * M, 21.0)]})
    # extrapolating 30 s back would go below zero? duration to zero is 120 * 1/20 = 6 s
    got = vector(Engine(zero).instant("increase(z[5m])", 4 * M))
    assert got[()] == pytest.approx(20 * (120 + 6) / 120)


def test_lookback_is_left_open_and_staleness_ends_a_series() -> None:
    store = store_with({"x": [(0, 1.0), (2 * M, STALE_NAN)], "y": [(0, 7.0)]})
    engine = Engine(store)
    assert vector(engine.instant("y", 5 * M - 1)) == {(("__name__", "y"),): 7.0}
    assert vector(engine.instant("y", 5 * M)) == {}
    assert vector(engine.instant("x", M)) == {(("__name__", "x"),): 1.0}
    assert vector(engine.instant("x", 2 * M)) == {}
    # stale markers are not samples of a range vector
    assert vector(engine.instant("count_over_time(x[5m])", 3 * M)) == {(): 1.0}


def test_custom_lookback_delta() -> None:
    store = store_with({"y": [(0, 7.0)]})
    assert vector(Engine(store, lookback_ms=M).instant("y", 2 * M)) == {}
    with pytest.raises(InvalidInput):
        Engine(store, lookback_ms=0)


def test_offset_and_at_modifiers() -> None:
    store = store_with({"x": [(i * M, float(i)) for i in range(20)]})
    engine = Engine(store)
    assert vector(engine.instant("x offset 5m", 10 * M)) == {(("__name__", "x"),): 5.0}
    assert vector(engine.instant("x @ 180", 10 * M)) == {(("__name__", "x"),): 3.0}
    ranged = engine.range("x @ end()", 0, 4 * M, M)
    assert ranged.series[0].values.tolist() == [4.0] * 5


def test_aggregations_and_grouping() -> None:
    store = store_with(
        {
            'm{job="a",i="1"}': [(0, 1.0)],
            'm{job="a",i="2"}': [(0, 3.0)],
            'm{job="b",i="1"}': [(0, 10.0)],
        }
    )
    engine = Engine(store)
    assert vector(engine.instant("sum by (job) (m)", 0)) == {
        (("job", "a"),): 4.0,
        (("job", "b"),): 10.0,
    }
    assert vector(engine.instant("avg without (i) (m)", 0)) == {
        (("job", "a"),): 2.0,
        (("job", "b"),): 10.0,
    }
    assert vector(engine.instant("count(m)", 0)) == {(): 3.0}
    assert vector(engine.instant("stdvar by (job) (m)", 0))[(("job", "a"),)] == 1.0
    top = engine.instant("topk(2, m)", 0)
    assert isinstance(top, VectorResult)
    assert [v for _, _, v in top.samples] == [10.0, 3.0]
    bottom = engine.instant("bottomk by (job) (1, m)", 0)
    assert sorted(v for _, _, v in bottom.samples) == [1.0, 10.0]  # type: ignore[union-attr]
    values = vector(engine.instant('count_values("v", m)', 0))
    assert values == {(("v", "1"),): 1.0, (("v", "3"),): 1.0, (("v", "10"),): 1.0}
    assert vector(engine.instant("quantile(0.5, m)", 0)) == {(): 3.0}


def test_binary_operators_and_vector_matching() -> None:
    store = store_with(
        {
            'errors{job="a",code="500"}': [(0, 2.0)],
            'errors{job="a",code="404"}': [(0, 4.0)],
            'total{job="a"}': [(0, 8.0)],
            'other{job="b"}': [(0, 1.0)],
        }
    )
    engine = Engine(store)
    ratio = vector(engine.instant("errors / on (job) group_left total", 0))
    assert ratio == {
        (("code", "500"), ("job", "a")): 0.25,
        (("code", "404"), ("job", "a")): 0.5,
    }
    with pytest.raises(InvalidInput, match="many-to-one matching must be explicit"):
        engine.instant("errors / on (job) total", 0)
    with pytest.raises(InvalidInput, match="many-to-many matching not allowed"):
        engine.instant("total / on (job) errors", 0)
    assert vector(engine.instant("errors > 3", 0)) == {
        (("__name__", "errors"), ("code", "404"), ("job", "a")): 4.0
    }
    assert vector(engine.instant("errors > bool 3", 0)) == {
        (("code", "404"), ("job", "a")): 1.0,
        (("code", "500"), ("job", "a")): 0.0,
    }
    union = vector(engine.instant("total or other", 0))
    assert set(union) == {
        (("__name__", "total"), ("job", "a")),
        (("__name__", "other"), ("job", "b")),
    }
    assert vector(engine.instant("errors and on (job) other", 0)) == {}
    assert len(vector(engine.instant("errors unless on (job) other", 0))) == 2
    scalar = engine.instant("2 ^ 3 ^ 2 - 1", 0)
    assert isinstance(scalar, ScalarResult) and scalar.value == 2**9 - 1


def test_histogram_quantile_from_classic_buckets() -> None:
    buckets = {
        f'h_bucket{{le="{le}"}}': [(0, count)]
        for le, count in [("0.1", 10.0), ("0.5", 30.0), ("1", 40.0), ("+Inf", 40.0)]
    }
    engine = Engine(store_with(buckets))
    got = vector(engine.instant("histogram_quantile(0.5, h_bucket)", 0))
    # rank 20 falls in (0.1, 0.5] holding 20 observations: 0.1 + 0.4 * (10 / 20)
    assert got == {(): pytest.approx(0.3)}


def test_label_functions_and_absent() -> None:
    engine = Engine(store_with({'up{job="api-1"}': [(0, 1.0)]}))
    replaced = vector(engine.instant('label_replace(up, "svc", "$1", "job", "(.*)-\\\\d")', 0))
    assert list(replaced) == [(("__name__", "up"), ("job", "api-1"), ("svc", "api"))]
    joined = vector(engine.instant('label_join(up, "x", "/", "job", "job")', 0))
    assert dict(next(iter(joined)))["x"] == "api-1/api-1"
    assert vector(engine.instant('absent(nope{job="x"})', 0)) == {(("job", "x"),): 1.0}
    assert vector(engine.instant("absent(up)", 0)) == {}


def test_results_render_as_prometheus_json() -> None:
    engine = Engine(store_with({'x{a="1"}': [(0, 1.5), (M, math.inf)]}))
    instant = engine.instant("x", M)
    assert instant.to_prometheus_json() == {
        "resultType": "vector",
        "result": [{"metric": {"__name__": "x", "a": "1"}, "value": [60.0, "+Inf"]}],
    }
    ranged = engine.range("x * 2", 0, M, M)
    assert ranged.to_prometheus_json() == {
        "resultType": "matrix",
        "result": [{"metric": {"a": "1"}, "values": [[0.0, "3"], [60.0, "+Inf"]]}],
    }
    assert engine.instant("1e21", 0).to_prometheus_json() == {
        "resultType": "scalar",
        "result": [0.0, "1000000000000000000000"],
    }
    text = engine.instant('"hi"', 5)
    assert isinstance(text, StringResult)
    assert text.to_prometheus_json() == {"resultType": "string", "result": [0.005, "hi"]}
    matrix = engine.instant("x[2m]", M)
    assert isinstance(matrix, MatrixResult)
    assert matrix.series[0].ts.tolist() == [0, M]


def test_evaluation_errors_are_invalid_input() -> None:
    engine = Engine(store_with({"x": [(0, 1.0)]}))
    with pytest.raises(InvalidInput, match="range vector"):
        engine.range("x[5m]", 0, M, M)
    with pytest.raises(InvalidInput, match="step"):
        engine.range("x", 0, M, 0)
    with pytest.raises(InvalidInput, match="before start"):
        engine.range("x", M, 0, M)
    with pytest.raises(ParseError):
        engine.instant("rate(x)", 0)
    with pytest.raises(InvalidInput, match="Parameter value is NaN"):
        engine.instant("topk(NaN, x)", 0)


def test_windows_fall_back_when_timestamps_span_too_far() -> None:
    # Two series at opposite ends of the int64 range cannot share one search key.
    far = 2**61
    store = store_with({'x{a="1"}': [(0, 1.0), (M, 2.0)], 'x{a="2"}': [(far, 5.0)]})
    got = vector(Engine(store).instant("sum_over_time(x[5m])", M))
    assert got == {(("a", "1"),): 3.0}


# --- properties: range == instant at every step; kernels == naive per-window oracles ------

QUERIES = [
    "rate(s[3m])",
    "increase(s[2m])",
    "delta(s[150s])",
    "irate(s[3m])",
    "idelta(s[3m])",
    "sum_over_time(s[3m])",
    "avg_over_time(s[3m])",
    "min_over_time(s[4m])",
    "max_over_time(s[4m])",
    "count_over_time(s[2m])",
    "last_over_time(s[2m])",
    "changes(s[5m])",
    "resets(s[5m])",
    "stddev_over_time(s[3m])",
    "quantile_over_time(0.3, s[3m])",
    "deriv(s[4m])",
    "sum by (k) (s)",
    "max_over_time(rate(s[2m])[4m:1m])",
    "s - s offset 1m",
    "topk(1, s)",
]

series_points = st.lists(
    st.tuples(st.integers(0, 40), st.floats(-50, 50, allow_nan=False)), min_size=1, max_size=25
)


@pytest.mark.parametrize("query", QUERIES)
@settings(max_examples=examples(6), deadline=None)
@given(st.lists(series_points, min_size=1, max_size=3))
def test_range_query_equals_instant_query_at_every_step(
    query: str, all_points: list[list[tuple[int, float]]]
) -> None:
    store = MemoryStore()
    for k, points in enumerate(all_points):
        for slot, value in points:
            store.add({"__name__": "s", "k": str(k % 2), "i": str(k)}, slot * 20_000, value)
    engine = Engine(store)
    ranged = engine.range(query, 0, 15 * M, M)
    by_labels = {
        s.labels: dict(zip(s.ts.tolist(), s.values.tolist(), strict=True)) for s in ranged.series
    }
    for step in range(16):
        at = step * M
        instant = engine.instant(query, at)
        assert isinstance(instant, VectorResult)
        for labels, _, value in instant.samples:
            assert labels in by_labels, (query, at, labels)
            assert by_labels[labels][at] == pytest.approx(value, nan_ok=True), (query, at)
        expected = {lab for lab, points in by_labels.items() if at in points}
        assert {lab for lab, _, _ in instant.samples} == expected, (query, at)


def naive(func: str, ts: list[int], values: list[float], end: int, window: int) -> float | None:
    inside = [(t, v) for t, v in zip(ts, values, strict=True) if end - window < t <= end]
    vals = [v for _, v in inside]
    if not inside:
        return None
    if func == "sum_over_time":
        return math.fsum(vals)
    if func == "count_over_time":
        return float(len(vals))
    if func == "min_over_time":
        return min(vals)
    if func == "max_over_time":
        return max(vals)
    if func == "last_over_time":
        return vals[-1]
    if func == "changes":
        return float(sum(1 for a, b in itertools.pairwise(vals) if a != b))
    if func == "stdvar_over_time":
        return float(statistics.pvariance([Fraction(v) for v in vals]))
    if func == "quantile_over_time":
        ordered = sorted(vals)
        rank = 0.3 * (len(ordered) - 1)
        low = math.floor(rank)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] * (1 - (rank - low)) + ordered[high] * (rank - low)
    if func == "mad_over_time":
        median = statistics.median(vals)
        return float(statistics.median([abs(v - median) for v in vals]))
    if func == "resets":
        return float(sum(1 for a, b in itertools.pairwise(vals) if b < a))
    if len(inside) < 2:
        return None
    first_t_ms = inside[0][0]
    if func == "deriv":
        xs = [Fraction(t - first_t_ms, 1000) for t, _ in inside]
        ys = [Fraction(v) for v in vals]
        mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
        var_x = sum((x - mean_x) ** 2 for x in xs)
        if all(y == ys[0] for y in ys):
            return 0.0
        return float(sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var_x)
    # rate, following the documented extrapolation rules
    raw = vals[-1] - vals[0] + sum(a for a, b in itertools.pairwise(vals) if b < a)
    first_t, last_t = inside[0][0], inside[-1][0]
    sampled = (last_t - first_t) / 1000
    average = sampled / (len(vals) - 1)
    to_start = (first_t - (end - window)) / 1000
    to_end = (end - last_t) / 1000
    if to_start >= average * 1.1:
        to_start = average / 2
    if raw > 0 and vals[0] >= 0:
        to_start = min(to_start, sampled * vals[0] / raw)
    if to_end >= average * 1.1:
        to_end = average / 2
    return raw * (sampled + to_start + to_end) / sampled / (window / 1000)


@pytest.mark.parametrize(
    "func",
    [
        "stdvar_over_time",
        "quantile_over_time",
        "mad_over_time",
        "deriv",
        "sum_over_time",
        "count_over_time",
        "min_over_time",
        "max_over_time",
        "last_over_time",
        "changes",
        "resets",
        "rate",
    ],
)
@settings(max_examples=examples(10), deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 60), st.integers(0, 30)), min_size=1, max_size=40),
    st.sampled_from([30_000, 60_000, 150_000, 300_000]),
)
def test_vectorised_kernels_match_a_naive_window_scan(
    func: str, points: list[tuple[int, int]], window: int
) -> None:
    store = MemoryStore()
    samples = dict(points)
    ts = sorted(samples)
    store.add_many({"__name__": "c"}, [t * 10_000 for t in ts], [float(samples[t]) for t in ts])
    arg = f"c[{window // 1000}s]"
    query = f"{func}(0.3, {arg})" if func == "quantile_over_time" else f"{func}({arg})"
    result = Engine(store).range(query, 0, 12 * M, 30_000)
    got = {int(t): float(v) for s in result.series for t, v in zip(s.ts, s.values, strict=True)}
    for step in range(25):
        end = step * 30_000
        want = naive(func, [t * 10_000 for t in ts], [float(samples[t]) for t in ts], end, window)
        if want is None:
            assert end not in got, (func, end)
        else:
            assert got[end] == pytest.approx(want, rel=1e-9, abs=1e-9), (func, end)


# --- the in-memory store -------------------------------------------------------------------


def test_memory_store_selects_inclusive_ranges_and_lists_labels() -> None:
    store = MemoryStore()
    store.add({"__name__": "a", "x": "1"}, 10, 1.0)
    store.add({"__name__": "a", "x": "1"}, 20, 2.0)
    store.add({"__name__": "a", "x": "1"}, 10, 5.0)  # replaces the first sample
    store.add({"__name__": "b", "y": "2"}, 30, 3.0)
    found = store.select([Matcher("__name__", "=", "a")], 10, 20)
    assert len(found) == 1
    assert found[0].labels == labels_of({"__name__": "a", "x": "1"})
    assert found[0].values.tolist() == [5.0, 2.0]
    assert store.select([Matcher("__name__", "=", "a")], 21, 100) == []
    assert store.label_names() == ["__name__", "x", "y"]
    assert store.label_values("__name__", mint=25, maxt=40) == ["b"]
    store.clear()
    assert store.select([], 0, 100) == []


def test_queries_beyond_the_sample_budget_raise_limit_exceeded() -> None:
    store = store_with({'x{a="1"}': [(0, 1.0)], 'x{a="2"}': [(0, 2.0)]})
    engine = Engine(store, max_samples=10)
    assert len(vector(engine.instant("x", 0))) == 2
    with pytest.raises(LimitExceeded, match="too many samples"):
        engine.range("x", 0, 10 * M, M)  # 2 series x 11 steps
    with pytest.raises(LimitExceeded):
        engine.instant("max_over_time(x[1h:1s])", 0)


def test_label_names_may_be_any_valid_utf8() -> None:
    engine = Engine(store_with({'up{job="a"}': [(0, 1.0)]}))
    got = vector(engine.instant('label_replace(up, "service.name", "$1", "job", "(.*)")', 0))
    assert dict(next(iter(got)))["service.name"] == "a"
    with pytest.raises(InvalidInput, match='invalid label name "a\\\\xc5z"'):
        engine.instant(r'count_values("a\xc5z", up)', 0)


def naive_aggregate(op: str, values: list[float]) -> float:
    if op == "sum":
        return math.fsum(values)
    if op == "avg":
        return math.fsum(values) / len(values)
    if op == "count":
        return float(len(values))
    if op == "min":
        return min(values)
    if op == "max":
        return max(values)
    if op == "stdvar":
        return float(statistics.pvariance([Fraction(v) for v in values]))
    ordered = sorted(values)  # quantile(0.75, ...)
    rank = 0.75 * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] * (1 - (rank - low)) + ordered[high] * (rank - low)


@pytest.mark.parametrize("op", ["sum", "avg", "count", "min", "max", "stdvar", "quantile"])
@settings(max_examples=examples(15), deadline=None)
@given(
    st.lists(
        st.lists(st.one_of(st.none(), st.integers(-1000, 1000)), min_size=6, max_size=6),
        min_size=1,
        max_size=6,
    )
)
def test_aggregations_match_a_naive_per_step_computation(
    op: str, rows: list[list[int | None]]
) -> None:
    store = MemoryStore()
    for i, row in enumerate(rows):
        for step, value in enumerate(row):
            if value is not None:
                store.add({"__name__": "g", "i": str(i), "k": str(i % 2)}, step * M, float(value))
    query = f"{op} by (k) (g)" if op != "quantile" else "quantile by (k) (0.75, g)"
    result = Engine(store, lookback_ms=M // 2).range(query, 0, 5 * M, M)
    got = {
        (dict(s.labels)["k"], int(t)): float(v)
        for s in result.series
        for t, v in zip(s.ts, s.values, strict=True)
    }
    for step in range(6):
        for k in ("0", "1"):
            present = [
                float(value)
                for i, row in enumerate(rows)
                if str(i % 2) == k and (value := row[step]) is not None
            ]
            key = (k, step * M)
            if not present:
                assert key not in got
            else:
                assert got[key] == pytest.approx(naive_aggregate(op, present), abs=1e-9)


def scalar_bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """A straightforward one-step implementation of Prometheus's classic bucket quantile."""
    if math.isnan(q):
        return math.nan
    if q < 0 or q > 1:
        return -math.inf if q < 0 else math.inf
    if not buckets or buckets[-1][0] != math.inf or len(buckets) < 2:
        return math.nan
    fixed = [list(buckets[0])]
    for upper, count in buckets[1:]:
        fixed.append([upper, max(count, fixed[-1][1])])
    observations = fixed[-1][1]
    if observations == 0:
        return math.nan
    rank = q * observations
    index = next((i for i, (_, c) in enumerate(fixed[:-1]) if c >= rank), len(fixed) - 1)
    if index == len(fixed) - 1:
        return fixed[-2][0]
    if index == 0 and fixed[0][0] <= 0:
        return fixed[0][0]
    start, base = (0.0, 0.0) if index == 0 else (fixed[index - 1][0], fixed[index - 1][1])
    in_bucket = fixed[index][1] - base
    if in_bucket == 0:  # q = 0 on an empty bucket: Go's 0 / 0, NaN
        return math.nan
    return start + (fixed[index][0] - start) * ((rank - base) / in_bucket)


@settings(max_examples=examples(60), deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([-1.0, 0.0, 0.1, 0.5, 1.0, 2.5, 10.0, math.inf]),
            st.lists(st.one_of(st.none(), st.integers(0, 50)), min_size=4, max_size=4),
        ),
        min_size=1,
        max_size=6,
        unique_by=lambda bucket: bucket[0],
    ),
    st.lists(
        st.sampled_from([math.nan, -0.5, 0.0, 0.25, 0.5, 0.9, 1.0, 1.5]), min_size=4, max_size=4
    ),
)
def test_vectorised_histogram_quantile_matches_a_one_step_implementation(
    buckets: list[tuple[float, list[int | None]]], qs: list[float]
) -> None:
    buckets.sort()
    uppers = np.array([upper for upper, _ in buckets])
    counts = np.array([[float(c or 0) for c in column] for _, column in buckets])
    present = np.array([[c is not None for c in column] for _, column in buckets])
    got, live = histogram_quantile(np.array(qs), uppers, counts, present)
    for step in range(4):
        step_buckets = [(u, float(c[step] or 0)) for u, c in buckets if c[step] is not None]
        assert live[step] == bool(step_buckets)
        if step_buckets:
            want = scalar_bucket_quantile(qs[step], step_buckets)
            assert got[step] == pytest.approx(want, nan_ok=True), (step_buckets, qs[step])
