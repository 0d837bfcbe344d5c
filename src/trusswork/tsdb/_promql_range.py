"""PromQL range-vector functions (``rate``, ``*_over_time``, ...), vectorised across steps.

All series of a range vector are concatenated, and one ``np.searchsorted`` of
the window bounds gives, for every (series, step) at once, the half-open index
range ``[lo, hi)`` of the samples in the left-open window ``(t - range, t]``;
prefix sums, a sparse table and the sorted positions of counter resets then
give counts, sums, extremes and reset corrections per window without a
per-step Python loop. Kernels run over chunks of rows so temporaries stay in
cache. Only the rarely used order statistics (quantile, stddev, regression,
smoothing) loop over windows.

``rate``/``increase``/``delta`` follow Prometheus's extrapolation exactly:
the first and last samples are extended towards the window edges by at most
half the average sample interval (or the full gap when it is shorter than
1.1 intervals), and a counter is never extrapolated below zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from trusswork.core.errors import InvalidInput
from trusswork.tsdb._promql_values import Block
from trusswork.tsdb._series import Labels, is_stale

__all__ = ["RANGE_FUNCTIONS", "RangeArg", "latest_samples", "quantile_columns"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(slots=True)
class RangeArg:
    """A range vector over the step grid: each series' samples and the window ends."""

    labels: list[Labels]
    ts: list[IntArray]
    values: list[FloatArray]
    drop_name: list[bool]
    eval_ts: IntArray
    range_ms: int
    #: The samples are rollup points (one per window), not raw samples.
    from_rollups: bool = False


@dataclass(slots=True)
class _Windows:
    """Every series' samples concatenated, and each (series, step) window as ``[lo, hi)``.

    ``lo``/``hi`` have shape (series, steps) and index the concatenated arrays; a
    window never crosses into a neighbouring series.
    """

    ts: IntArray
    values: FloatArray
    lo: IntArray
    hi: IntArray
    eval_ts: IntArray
    range_ms: int
    #: Per-query prefix arrays (reset corrections, change counts), shared by all row chunks.
    cache: dict[str, npt.NDArray[Any]] = field(default_factory=dict)

    def rows(self, start: int, stop: int) -> _Windows:
        """The same samples, with the windows of rows ``start:stop`` only."""
        return _Windows(
            self.ts,
            self.values,
            self.lo[start:stop],
            self.hi[start:stop],
            self.eval_ts,
            self.range_ms,
            self.cache,
        )


#: Kernels run over this many (series x step) windows at a time, so temporaries stay in cache.
_CHUNK_CELLS = 1 << 16


def _flat_windows(arg: RangeArg) -> _Windows:
    count, steps = len(arg.ts), len(arg.eval_ts)
    lengths = np.array([len(t) for t in arg.ts], dtype=np.int64)
    total = int(lengths.sum())
    if total == 0:
        zero = np.zeros((count, steps), dtype=np.int64)
        return _Windows(np.zeros(0, np.int64), np.zeros(0), zero, zero, arg.eval_ts, arg.range_ms)
    ts = np.concatenate(arg.ts).astype(np.int64, copy=False)
    values = np.concatenate(arg.values).astype(np.float64, copy=False)
    base = int(ts.min())
    extent = int(ts.max()) - base
    span = extent + 3
    if count * span < 2**62:
        # One searchsorted for all series: series i owns keys [i*span, i*span + extent].
        key = ts - base + np.repeat(np.arange(count, dtype=np.int64) * span, lengths)
        owner = (np.arange(count, dtype=np.int64) * span)[:, None]
        upper = np.clip(arg.eval_ts - base, -1, extent + 1)[None, :]
        lower = np.clip(arg.eval_ts - arg.range_ms - base, -1, extent + 1)[None, :]
        lo = np.searchsorted(key, owner + lower, side="right").astype(np.int64)
        hi = np.searchsorted(key, owner + upper, side="right").astype(np.int64)
    else:
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        lo = np.empty((count, steps), dtype=np.int64)
        hi = np.empty((count, steps), dtype=np.int64)
        for row, (start, series_ts) in enumerate(zip(offsets.tolist(), arg.ts, strict=True)):
            lo[row] = start + np.searchsorted(series_ts, arg.eval_ts - arg.range_ms, "right")
            hi[row] = start + np.searchsorted(series_ts, arg.eval_ts, side="right")
    return _Windows(ts, values, lo, hi, arg.eval_ts, arg.range_ms)


def latest_samples(arg: RangeArg) -> tuple[FloatArray, BoolArray, IntArray]:
    """Each window's last sample: values, whether there is one (and it is not a staleness
    marker), and its timestamp; shape (series, steps). This is an instant selector's lookup.
    """
    windows = _flat_windows(arg)
    if len(windows.ts) == 0:
        shape = windows.lo.shape
        return np.zeros(shape), np.zeros(shape, dtype=bool), np.zeros(shape, dtype=np.int64)
    _, last = _first_last(windows)
    values = windows.values[last]
    present = (windows.hi > windows.lo) & ~is_stale(values)
    return values, present, windows.ts[last]


RangeKernel = Callable[[_Windows, list[FloatArray]], tuple[FloatArray, BoolArray]]


def _apply_range(
    kernel: RangeKernel, keep_name: bool = False
) -> Callable[[RangeArg, list[FloatArray]], Block]:
    def run(arg: RangeArg, params: list[FloatArray]) -> Block:
        steps = len(arg.eval_ts)
        if not arg.labels:
            return Block.empty(steps)
        windows = _flat_windows(arg)
        if len(windows.ts) == 0:
            values = np.zeros(windows.lo.shape)
            present = np.zeros(windows.lo.shape, dtype=bool)
        else:
            values = np.empty(windows.lo.shape)
            present = np.empty(windows.lo.shape, dtype=bool)
            per_chunk = max(1, _CHUNK_CELLS // max(steps, 1))
            for start in range(0, len(arg.labels), per_chunk):
                stop = start + per_chunk
                values[start:stop], present[start:stop] = kernel(windows.rows(start, stop), params)
        drop = np.array([d or not keep_name for d in arg.drop_name], dtype=bool)
        return Block(list(arg.labels), values, present, drop)

    return run


def _first_last(w: _Windows) -> tuple[IntArray, IntArray]:
    top = len(w.ts) - 1
    return np.minimum(w.lo, top), np.clip(w.hi - 1, 0, top)


def _extrapolated(is_counter: bool, is_rate: bool) -> RangeKernel:
    def kernel(w: _Windows, params: list[FloatArray]) -> tuple[FloatArray, BoolArray]:
        n = w.hi - w.lo
        ok = n >= 2
        first_i, last_i = _first_last(w)
        vals = w.values
        first_v, last_v = vals[first_i], vals[last_i]
        result = last_v - first_v
        if is_counter:
            # Counter resets are rare: keep the positions j where vals[j] < vals[j-1] and the
            # running total of the pre-reset values; a window [lo, hi) corrects by the resets
            # at lo < j < hi, which never straddle two series.
            positions = w.cache.get("reset_at")
            if positions is None:
                drop = vals[1:] < vals[:-1]
                positions = w.cache["reset_at"] = np.flatnonzero(drop) + 1
                running = np.zeros(len(positions) + 1)
                np.cumsum(vals[positions - 1], out=running[1:])
                w.cache["reset_sum"] = running
            if len(positions):
                running = w.cache["reset_sum"]
                upper = np.searchsorted(positions, w.hi - 1, side="right")
                lower = np.searchsorted(positions, w.lo, side="right")
                result = result + (running[np.maximum(upper, lower)] - running[lower])
        t_first = w.ts[first_i].astype(np.float64)
        t_last = w.ts[last_i].astype(np.float64)
        range_end = w.eval_ts.astype(np.float64)[None, :]
        range_start = range_end - w.range_ms
        with np.errstate(divide="ignore", invalid="ignore"):
            to_start = (t_first - range_start) / 1000
            to_end = (range_end - t_last) / 1000
            sampled = (t_last - t_first) / 1000
            average = sampled / np.maximum(n - 1, 1)
            threshold = average * 1.1
            to_start = np.where(to_start >= threshold, average / 2, to_start)
            if is_counter:
                # A counter is never extrapolated below zero.
                to_zero = sampled * (first_v / result)
                use_zero = (result > 0) & (first_v >= 0) & (to_zero < to_start)
                to_start = np.where(use_zero, to_zero, to_start)
            to_end = np.where(to_end >= threshold, average / 2, to_end)
            factor = (sampled + to_start + to_end) / sampled
            if is_rate:
                factor = factor / (w.range_ms / 1000)
            out = result * factor
        return out, ok

    return kernel


def _instant_delta(is_rate: bool) -> RangeKernel:
    def kernel(w: _Windows, params: list[FloatArray]) -> tuple[FloatArray, BoolArray]:
        ok = w.hi - w.lo >= 2
        top = len(w.ts) - 1
        last_i = np.clip(w.hi - 1, 0, top)
        prev_i = np.clip(w.hi - 2, 0, top)
        last, prev = w.values[last_i], w.values[prev_i]
        # irate treats a drop as a counter reset; idelta takes the plain difference.
        result = np.where(last < prev, last, last - prev) if is_rate else last - prev
        interval = (w.ts[last_i] - w.ts[prev_i]).astype(np.float64)
        ok &= interval != 0
        if is_rate:
            with np.errstate(divide="ignore", invalid="ignore"):
                result = result / (interval / 1000)
        return result, ok

    return kernel


def _prefix_window_sum(w: _Windows) -> FloatArray:
    """Window sums by prefix sums in extended precision; exact enough for ordinary data."""
    prefix = w.cache.get("prefix")
    if prefix is None:
        prefix = w.cache["prefix"] = np.zeros(len(w.values) + 1, dtype=np.longdouble)
        np.cumsum(w.values, dtype=np.longdouble, out=prefix[1:])
    return np.asarray(prefix[w.hi] - prefix[w.lo], dtype=np.float64)


def _kahan_inc(inc: float, total: float, comp: float) -> tuple[float, float]:
    """Prometheus's compensated-summation step (``kahanSumInc``)."""
    t = total + inc
    if math.isinf(t):
        comp = 0.0
    elif abs(total) >= abs(inc):
        comp += (total - t) + inc
    else:
        comp += (inc - t) + total
    return t, comp


def _kahan_sum(x: FloatArray) -> float:
    total, comp = 0.0, 0.0
    for v in x.tolist():
        total, comp = _kahan_inc(v, total, comp)
    return total if math.isinf(total) else total + comp


def _needs_careful_sum(w: _Windows) -> bool:
    """Whether prefix sums could lose precision (huge or non-finite values)."""
    flag = w.cache.get("careful")
    if flag is None:
        vals = w.values
        careful = not bool(np.isfinite(vals).all()) or float(np.abs(vals).max()) > 1e12
        flag = w.cache["careful"] = np.array(careful)
    return bool(flag)


def _each_window(w: _Windows, single: Callable[[FloatArray], float]) -> FloatArray:
    out = np.zeros(w.lo.size)
    for k, (a, b) in enumerate(zip(w.lo.ravel().tolist(), w.hi.ravel().tolist(), strict=True)):
        if b > a:
            out[k] = single(w.values[a:b])
    return out.reshape(w.lo.shape)


def _sum_kernel(w: _Windows, params: list[FloatArray]) -> tuple[FloatArray, BoolArray]:
    ok = w.hi > w.lo
    if _needs_careful_sum(w):
        return _each_window(w, _kahan_sum), ok
    return _prefix_window_sum(w), ok


def _avg_single(x: FloatArray) -> float:
    if len(x) == 1:
        return float(x[0])
    total = _kahan_sum(x)
    if not math.isinf(total) or np.isinf(x).any():
        return total / len(x)
    # The plain sum overflowed: sum the pre-divided values instead.
    return _kahan_sum(x / len(x))


def _avg_kernel(w: _Windows, params: list[FloatArray]) -> tuple[FloatArray, BoolArray]:
    ok = w.hi > w.lo
    if _needs_careful_sum(w):
        return _each_window(w, _avg_single), ok
    with np.errstate(divide="ignore", invalid="ignore"):
        return _prefix_window_sum(w) / np.maximum(w.hi - w.lo, 1), ok


def _count_kernel(w: _Windows, params: list[FloatArray]) -> tuple[FloatArray, BoolArray]:
    return (w.hi - w.lo).astype(np.float64), w.hi > w.lo


def _present_kernel(w: _Windows, params: list[FloatArray]) -> tuple[FloatArray, BoolArray]:
    return np.ones(w.lo.shape), w.hi > w.lo


def _pick_kernel(which: str, timestamps: bool = False) -> RangeKernel:
    def kernel(w: _Windows, params: list[FloatArray]) -> tuple[FloatArray, BoolArray]:
        first_i, last_i = _first_last(w)
        idx = first_i if which == "first" else last_i
        source = w.ts / 1000 if timestamps else w.values
        return source[idx].astype(np.float64), w.hi > w.lo

    return kernel


def _extreme_kernel(fn: Callable[..., FloatArray]) -> RangeKernel:
    """Window min/max (NaN-skipping) from a sparse table, built only as deep as needed."""

    def kernel(w: _Windows, params: list[FloatArray]) -> tuple[FloatArray, BoolArray]:
        ok = w.hi > w.lo
        length = np.maximum(w.hi - w.lo, 1)
        level_of = np.floor(np.log2(length)).astype(np.int64)
        out = np.zeros(w.lo.shape)
        top = len(w.values) - 1
        for level in range(int(level_of.max()) + 1):
            table = w.values if level == 0 else w.cache.get(f"level{level}")
            if table is None:
                below = w.cache.get(f"level{level - 1}", w.values)
                width = 1 << (level - 1)
                table = fn(below[:-width], below[width:]) if len(below) > width else below
                w.cache[f"level{level}"] = table
            sel = (level_of == level) & ok
            if sel.any():
                last = len(table) - 1
                a = np.minimum(w.lo[sel], last)
                b = np.clip(w.hi[sel] - (1 << level), 0, min(last, top))
                out[sel] = fn(table[a], table[b])
        return out, ok

    return kernel


def _count_changes(kind: str) -> RangeKernel:
    def kernel(w: _Windows, params: list[FloatArray]) -> tuple[FloatArray, BoolArray]:
        vals = w.values
        counts = w.cache.get(kind)
        if counts is None:
            counts = w.cache[kind] = np.zeros(len(vals), dtype=np.int64)
            if len(vals) > 1:
                cur, prev = vals[1:], vals[:-1]
                if kind == "changes":
                    hit = ~((cur == prev) | (np.isnan(cur) & np.isnan(prev)))
                else:
                    hit = cur < prev
                counts[1:] = np.cumsum(hit)
        first_i, last_i = _first_last(w)
        return (counts[last_i] - counts[first_i]).astype(np.float64), w.hi > w.lo

    return kernel


#: Padded windows are gathered this many values at a time.
_PADDED_VALUES = 1 << 21


@dataclass(slots=True)
class _Padded:
    """A batch of windows side by side: row i holds window i left-aligned, ``valid`` marks data."""

    values: FloatArray
    ts: IntArray
    valid: BoolArray
    count: IntArray
    step: IntArray  # which step each row belongs to, for per-step parameters

    @property
    def width(self) -> int:
        return int(self.values.shape[1])


PaddedKernel = Callable[[_Padded, list[FloatArray]], tuple[FloatArray, BoolArray]]


def _padded(kernel: PaddedKernel, min_samples: int = 1) -> RangeKernel:
    """Run ``kernel`` over windows gathered into padded 2-D batches (no per-window loop)."""

    def run(w: _Windows, params: list[FloatArray]) -> tuple[FloatArray, BoolArray]:
        lo, hi = w.lo.ravel(), w.hi.ravel()
        steps = len(w.eval_ts)
        out = np.zeros(lo.size)
        ok = np.zeros(lo.size, dtype=bool)
        count = hi - lo
        width = int(count.max()) if count.size else 0
        if width < min_samples:
            return out.reshape(w.lo.shape), ok.reshape(w.lo.shape)
        per_batch = max(1, _PADDED_VALUES // width)
        columns = np.arange(width)
        top = len(w.values) - 1
        for start in range(0, lo.size, per_batch):
            part = slice(start, start + per_batch)
            valid = columns[None, :] < count[part, None]
            index = np.where(valid, lo[part, None] + columns[None, :], 0).clip(0, top)
            batch = _Padded(
                w.values[index],
                w.ts[index],
                valid,
                count[part],
                np.arange(start, start + len(index)) % steps,
            )
            with np.errstate(all="ignore"):
                values, good = kernel(batch, params)
            out[part] = values
            ok[part] = good & (count[part] >= min_samples)
        return out.reshape(w.lo.shape), ok.reshape(w.lo.shape)

    return run


def _kahan_add(
    inc: FloatArray, total: FloatArray, comp: FloatArray, mask: BoolArray
) -> tuple[FloatArray, FloatArray]:
    """Prometheus's Kahan step, applied where ``mask`` holds."""
    t = total + inc
    c = np.where(
        np.abs(total) >= np.abs(inc), comp + ((total - t) + inc), comp + ((inc - t) + total)
    )
    c = np.where(np.isinf(t), 0.0, c)
    return np.where(mask, t, total), np.where(mask, c, comp)


def _variance(p: _Padded) -> FloatArray:
    """Population variance per row the way Prometheus computes it (Welford, Kahan)."""
    rows = len(p.values)
    count = np.zeros(rows)
    mean, c_mean = np.zeros(rows), np.zeros(rows)
    aux, c_aux = np.zeros(rows), np.zeros(rows)
    for j in range(p.width):
        mask = p.valid[:, j]
        x = p.values[:, j]
        count = count + mask
        delta = x - (mean + c_mean)
        mean, c_mean = _kahan_add(delta / np.maximum(count, 1), mean, c_mean, mask)
        aux, c_aux = _kahan_add(delta * (x - (mean + c_mean)), aux, c_aux, mask)
    return (aux + c_aux) / count


def _stdvar(p: _Padded, params: list[FloatArray]) -> tuple[FloatArray, BoolArray]:
    return _variance(p), p.count > 0


def _stddev(p: _Padded, params: list[FloatArray]) -> tuple[FloatArray, BoolArray]:
    return np.sqrt(_variance(p)), p.count > 0


def _go_sorted(p: _Padded) -> tuple[FloatArray, IntArray]:
    """Each row's values sorted as Go sorts floats (NaN first), and the NaN count per row."""
    nan = np.isnan(p.values) & p.valid
    ordered = np.sort(np.where(p.valid & ~nan, p.values, np.inf), axis=1)
    return ordered, nan.sum(axis=1)


def _quantile_rows(
    q: FloatArray, ordered: FloatArray, nans: IntArray, count: IntArray
) -> FloatArray:
    """Prometheus's quantile over the first ``count`` values of each row (NaN-first order)."""
    n = count.astype(np.float64)
    rank = q * (n - 1)
    lower = np.maximum(0.0, np.floor(rank))
    upper = np.minimum(n - 1, lower + 1)
    weight = rank - np.floor(rank)

    def pick(position: FloatArray) -> FloatArray:
        index = np.nan_to_num(position, nan=0.0).astype(np.int64)
        shifted = np.clip(index - nans, 0, ordered.shape[1] - 1)
        got = np.take_along_axis(ordered, shifted[:, None], axis=1)[:, 0]
        return np.where(index < nans, np.nan, got)

    result = pick(lower) * (1 - weight) + pick(upper) * weight
    result = np.where(q < 0, -np.inf, np.where(q > 1, np.inf, result))
    return np.where(np.isnan(q) | (count == 0), np.nan, result)


def quantile_columns(q: FloatArray, values: FloatArray, present: BoolArray) -> FloatArray:
    """Prometheus's quantile ``q[s]`` of the present values of each column ``s``."""
    columns = _Padded(
        values.T,
        np.zeros(values.T.shape, dtype=np.int64),
        present.T,
        present.sum(axis=0),
        np.arange(values.shape[1]),
    )
    ordered, nans = _go_sorted(columns)
    with np.errstate(all="ignore"):
        return _quantile_rows(q, ordered, nans, columns.count)


def _quantile_over_time(p: _Padded, params: list[FloatArray]) -> tuple[FloatArray, BoolArray]:
    ordered, nans = _go_sorted(p)
    return _quantile_rows(params[0][p.step], ordered, nans, p.count), p.count > 0


def _mad(p: _Padded, params: list[FloatArray]) -> tuple[FloatArray, BoolArray]:
    ordered, nans = _go_sorted(p)
    half = np.full(len(p.values), 0.5)
    median = _quantile_rows(half, ordered, nans, p.count)
    deviations = _Padded(np.abs(p.values - median[:, None]), p.ts, p.valid, p.count, p.step)
    spread, _ = _go_sorted(deviations)
    result = _quantile_rows(half, spread, np.zeros_like(nans), p.count)
    return np.where(nans > 0, np.nan, result), p.count > 0


def _regression(p: _Padded, intercept_ms: IntArray) -> tuple[FloatArray, FloatArray]:
    """Least-squares slope and intercept per row, Kahan-summed like Prometheus."""
    rows = len(p.values)
    zero = np.zeros(rows)
    n = zero.copy()
    sums = {name: (zero.copy(), zero.copy()) for name in ("x", "y", "xy", "x2")}
    first = p.values[:, 0]
    constant = np.ones(rows, dtype=bool)
    for j in range(p.width):
        mask = p.valid[:, j]
        y = p.values[:, j]
        constant &= ~mask | (y == first)
        n = n + mask
        x = (p.ts[:, j] - intercept_ms) / 1000
        for name, inc in (("x", x), ("y", y), ("xy", x * y), ("x2", x * x)):
            total, comp = sums[name]
            sums[name] = _kahan_add(inc, total, comp, mask)
    sum_x, sum_y, sum_xy, sum_x2 = (total + comp for total, comp in sums.values())
    cov = sum_xy - sum_x * sum_y / n
    var = sum_x2 - sum_x * sum_x / n
    slope = cov / var
    intercept = sum_y / n - slope * sum_x / n
    const_slope = np.where(np.isinf(first), np.nan, 0.0)
    const_intercept = np.where(np.isinf(first), np.nan, first)
    return (
        np.where(constant, const_slope, slope),
        np.where(constant, const_intercept, intercept),
    )


def _deriv(p: _Padded, params: list[FloatArray]) -> tuple[FloatArray, BoolArray]:
    slope, _ = _regression(p, p.ts[:, 0])
    return slope, p.count >= 2


def _predict_linear(p: _Padded, params: list[FloatArray]) -> tuple[FloatArray, BoolArray]:
    # params: seconds ahead, then the step time the line is anchored at
    anchor = params[1][p.step].astype(np.int64)
    slope, intercept = _regression(p, anchor)
    return intercept + slope * params[0][p.step], p.count >= 2


def _smoothing(p: _Padded, params: list[FloatArray]) -> tuple[FloatArray, BoolArray]:
    sf, tf = params[0][p.step], params[1][p.step]
    used = p.count >= 2
    bad_sf = used & ~((sf > 0) & (sf < 1))
    if bad_sf.any():
        got = float(sf[bad_sf][0])
        raise InvalidInput(f"invalid smoothing factor. Expected: 0 < sf < 1, got: {got:f}")
    bad_tf = used & ~((tf > 0) & (tf < 1))
    if bad_tf.any():
        got = float(tf[bad_tf][0])
        raise InvalidInput(f"invalid trend factor. Expected: 0 < tf < 1, got: {got:f}")
    values = p.values
    s0 = np.zeros(len(values))
    s1 = values[:, 0].copy()
    trend = values[:, 1] - values[:, 0] if p.width > 1 else np.zeros(len(values))
    for i in range(1, p.width):
        mask = p.valid[:, i]
        if i > 1:
            trend = np.where(mask, tf * (s1 - s0) + (1 - tf) * trend, trend)
        new = sf * values[:, i] + (1 - sf) * (s1 + trend)
        s0, s1 = np.where(mask, s1, s0), np.where(mask, new, s1)
    return s1, used


def _ts_of_extreme(which: str) -> PaddedKernel:
    """Timestamp of the last min/max sample (NaN only when every sample is NaN: the first)."""

    def kernel(p: _Padded, params: list[FloatArray]) -> tuple[FloatArray, BoolArray]:
        real = p.valid & ~np.isnan(p.values)
        fill = -np.inf if which == "max" else np.inf
        keyed = np.where(real, p.values, fill)
        best = keyed.max(axis=1) if which == "max" else keyed.min(axis=1)
        hits = real & (p.values == best[:, None])
        last = p.width - 1 - np.argmax(hits[:, ::-1], axis=1)
        index = np.where(hits.any(axis=1), last, 0)
        return p.ts[np.arange(len(index)), index] / 1000, p.count > 0

    return kernel


#: name -> (implementation, whether it keeps ``__name__``); parameters after the range
#: vector (or the leading quantile) arrive as per-step float arrays.
RANGE_FUNCTIONS: dict[str, Callable[[RangeArg, list[FloatArray]], Block]] = {
    "rate": _apply_range(_extrapolated(True, True)),
    "increase": _apply_range(_extrapolated(True, False)),
    "delta": _apply_range(_extrapolated(False, False)),
    "irate": _apply_range(_instant_delta(True)),
    "idelta": _apply_range(_instant_delta(False)),
    "sum_over_time": _apply_range(_sum_kernel),
    "avg_over_time": _apply_range(_avg_kernel),
    "count_over_time": _apply_range(_count_kernel),
    "present_over_time": _apply_range(_present_kernel),
    "last_over_time": _apply_range(_pick_kernel("last"), keep_name=True),
    "first_over_time": _apply_range(_pick_kernel("first"), keep_name=True),
    "ts_of_last_over_time": _apply_range(_pick_kernel("last", timestamps=True)),
    "ts_of_first_over_time": _apply_range(_pick_kernel("first", timestamps=True)),
    "ts_of_min_over_time": _apply_range(_padded(_ts_of_extreme("min"))),
    "ts_of_max_over_time": _apply_range(_padded(_ts_of_extreme("max"))),
    "min_over_time": _apply_range(_extreme_kernel(np.fmin)),
    "max_over_time": _apply_range(_extreme_kernel(np.fmax)),
    "changes": _apply_range(_count_changes("changes")),
    "resets": _apply_range(_count_changes("resets")),
    "stddev_over_time": _apply_range(_padded(_stddev)),
    "stdvar_over_time": _apply_range(_padded(_stdvar)),
    "quantile_over_time": _apply_range(_padded(_quantile_over_time)),
    "mad_over_time": _apply_range(_padded(_mad)),
    "deriv": _apply_range(_padded(_deriv, 2)),
    "predict_linear": _apply_range(_padded(_predict_linear, 2)),
    "double_exponential_smoothing": _apply_range(_padded(_smoothing, 2)),
}
