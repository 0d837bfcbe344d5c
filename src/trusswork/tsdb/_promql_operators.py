"""PromQL operators on whole step grids: arithmetic, comparisons, vector matching, aggregation.

Every function takes and returns :class:`~trusswork.tsdb._promql_values.Block`
values (series x steps), so an operator costs a few numpy calls per series
or per match group, never a Python loop per step. Vector matching pairs
series by signature once for the whole grid and then checks, step by step
and vectorised, the rules Prometheus enforces per instant: at most one
"one"-side series per signature, and unique result label sets.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict

import numpy as np
import numpy.typing as npt

from trusswork.core.errors import InvalidInput
from trusswork.tsdb import _promql_functions as fn
from trusswork.tsdb._promql_ast import AggregateExpr, BinaryExpr, VectorMatching
from trusswork.tsdb._promql_range import quantile_columns
from trusswork.tsdb._promql_values import Block, format_value
from trusswork.tsdb._series import Labels

__all__ = [
    "COMPARISONS",
    "aggregate",
    "arith",
    "merge_rows",
    "render_labels",
    "set_op",
    "vector_op",
    "vector_scalar",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

COMPARISONS = frozenset({"==", "!=", "<=", "<", ">=", ">"})


def render_labels(labels: Labels) -> str:
    """Labels as Prometheus prints them in error messages: ``{a="1", b="2"}``."""
    inner = ", ".join(f'{k}="{v}"' for k, v in labels)
    return f"{{{inner}}}"


def merge_rows(block: Block) -> Block:
    """Merge rows with identical labels and name flag; two present at one step is an error."""
    groups: dict[tuple[Labels, bool], list[int]] = defaultdict(list)
    for i, (lab, drop) in enumerate(zip(block.labels, block.drop_name.tolist(), strict=True)):
        groups[(lab, drop)].append(i)
    if len(groups) == len(block):
        return block
    block = Block(block.labels, block.values.copy(), block.present.copy(), block.drop_name, None)
    rows = []
    for members in groups.values():
        rows.append(members[0])
        if len(members) == 1:
            continue
        present = block.present[members]
        if (present.sum(axis=0) > 1).any():
            raise InvalidInput("vector cannot contain metrics with the same labelset")
        first = members[0]
        for other in members[1:]:
            mask = block.present[other]
            block.values[first] = np.where(mask, block.values[other], block.values[first])
            block.present[first] |= mask
    return block.take(rows)


_COMPARE_UFUNCS = {
    "==": np.equal,
    "!=": np.not_equal,
    "<": np.less,
    ">": np.greater,
    "<=": np.less_equal,
    ">=": np.greater_equal,
}


def arith(op: str, a: FloatArray, b: FloatArray) -> FloatArray:
    with np.errstate(all="ignore"):
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            return np.true_divide(a, b)
        if op == "%":
            return np.fmod(a, b)
        if op == "^":
            power: FloatArray = np.power(a, b)
            return power
        if op == "atan2":
            angle: FloatArray = np.arctan2(a, b)
            return angle
        compare = _COMPARE_UFUNCS.get(op)
        if compare is not None:
            truth: BoolArray = compare(a, b)
            return truth.astype(np.float64)
    raise InvalidInput(f"operator {op!r} not allowed for scalar or vector operands")


#: Below this magnitude a pairwise float sum is as exact as Prometheus's Kahan sum needs.
_BENIGN_MAGNITUDE = 2.0**40


def kahan_rows(values: FloatArray, present: BoolArray) -> FloatArray:
    """Sum down the rows of each column, counting only present cells.

    Ordinary values take numpy's pairwise summation (one call for the whole
    group); huge or non-finite ones take Prometheus's Kahan summation row by row.
    """
    masked = np.where(present, values, 0.0)
    with np.errstate(invalid="ignore"):
        biggest = float(np.abs(masked).max()) if masked.size else 0.0
    if biggest < _BENIGN_MAGNITUDE:
        # Transposed so the reduction runs along contiguous memory, where numpy is pairwise.
        pairwise: FloatArray = np.ascontiguousarray(masked.T).sum(axis=1)
        return pairwise
    total = np.zeros(values.shape[1])
    comp = np.zeros(values.shape[1])
    with np.errstate(invalid="ignore"):
        for row, mask in zip(values, present, strict=True):
            inc = np.where(mask, row, 0.0)
            t = total + inc
            c = np.where(np.abs(total) >= np.abs(inc), (total - t) + inc, (inc - t) + total)
            comp = np.where(np.isinf(t), 0.0, comp + np.where(mask, c, 0.0))
            total = t
        return np.where(np.isinf(total), total, total + comp)


def welford_rows(values: FloatArray, present: BoolArray) -> FloatArray:
    """Population variance down the rows (Welford: exact zero for constant input)."""
    n = np.zeros(values.shape[1])
    mean = np.zeros(values.shape[1])
    m2 = np.zeros(values.shape[1])
    with np.errstate(all="ignore"):
        for row, mask in zip(values, present, strict=True):
            n1 = n + mask
            delta = row - mean
            new_mean = np.where(mask, mean + delta / np.maximum(n1, 1), mean)
            m2 = np.where(mask, m2 + delta * (row - new_mean), m2)
            mean, n = new_mean, n1
        return m2 / n


def vector_scalar(expr: BinaryExpr, vec: Block, scalar: FloatArray, *, swap: bool) -> Block:
    a, b = (scalar, vec.values) if swap else (vec.values, scalar)
    result = arith(
        expr.op, np.broadcast_to(a, vec.values.shape), np.broadcast_to(b, vec.values.shape)
    )
    if expr.op in COMPARISONS:
        if expr.return_bool:
            return Block(vec.labels, result, vec.present.copy(), np.ones(len(vec), dtype=bool))
        return Block(
            vec.labels, vec.values, vec.present & (result == 1.0), vec.drop_name, vec.sample_ts
        )
    return Block(vec.labels, result, vec.present.copy(), np.ones(len(vec), dtype=bool))


def signature(labels: Labels, matching: VectorMatching) -> Labels:
    if matching.on:
        keep = set(matching.labels)
        return tuple(p for p in labels if p[0] in keep)
    drop = set(matching.labels) | {"__name__"}
    return tuple(p for p in labels if p[0] not in drop)


def set_op(op: str, lhs: Block, rhs: Block, matching: VectorMatching) -> Block:
    steps = lhs.values.shape[1]

    def any_present(block: Block) -> dict[Labels, BoolArray]:
        out: dict[Labels, BoolArray] = {}
        for i, lab in enumerate(block.labels):
            sig = signature(lab, matching)
            prev = out.get(sig)
            out[sig] = block.present[i] if prev is None else prev | block.present[i]
        return out

    none = np.zeros(steps, dtype=bool)
    if op in ("and", "unless"):
        right = any_present(rhs)
        present = lhs.present.copy()
        for i, lab in enumerate(lhs.labels):
            hit = right.get(signature(lab, matching), none)
            present[i] &= hit if op == "and" else ~hit
        return Block(lhs.labels, lhs.values, present, lhs.drop_name, lhs.sample_ts)
    left = any_present(lhs)
    rpresent = rhs.present.copy()
    for i, lab in enumerate(rhs.labels):
        rpresent[i] &= ~left.get(signature(lab, matching), none)
    return Block(
        lhs.labels + rhs.labels,
        np.vstack([lhs.values, rhs.values]),
        np.vstack([lhs.present, rpresent]),
        np.concatenate([lhs.drop_name, rhs.drop_name]),
    )


def vector_op(expr: BinaryExpr, lhs: Block, rhs: Block, matching: VectorMatching) -> Block:
    op = expr.op
    steps = lhs.values.shape[1]
    many, one = (rhs, lhs) if matching.card == "one-to-many" else (lhs, rhs)
    one_side = "left" if matching.card == "one-to-many" else "right"
    # Collapse the "one" side to a single row per signature; two present at a step is an error.
    one_rows: dict[Labels, list[int]] = defaultdict(list)
    for i, lab in enumerate(one.labels):
        one_rows[signature(lab, matching)].append(i)
    merged: dict[Labels, tuple[FloatArray, BoolArray, IntArray]] = {}
    for sig, members in one_rows.items():
        if len(members) == 1:
            m = members[0]
            merged[sig] = (one.values[m], one.present[m], np.full(steps, m))
            continue
        counts = one.present[members].sum(axis=0)
        if (counts > 1).any():
            step = int(np.argmax(counts > 1))
            names = ", ".join(render_labels(one.labels[m]) for m in members if one.present[m, step])
            raise InvalidInput(
                f"found duplicate series for the match group {render_labels(sig)} on the "
                f"{one_side} hand-side of the operation: [{names}];many-to-many matching not "
                f"allowed: matching labels must be unique on one side"
            )
        values = np.zeros(steps)
        present = np.zeros(steps, dtype=bool)
        which = np.zeros(steps, dtype=np.int64)
        for m in members:
            mask = one.present[m]
            values = np.where(mask, one.values[m], values)
            which = np.where(mask, m, which)
            present |= mask
        merged[sig] = (values, present, which)

    out_labels: list[Labels] = []
    out_values: list[FloatArray] = []
    out_present: list[BoolArray] = []
    out_drop: list[bool] = []
    matched: dict[Labels, list[tuple[int, BoolArray]]] = defaultdict(list)
    is_comparison = op in COMPARISONS
    for i, lab in enumerate(many.labels):
        sig = signature(lab, matching)
        found = merged.get(sig)
        if found is None:
            continue
        one_values, one_present, which = found
        both = many.present[i] & one_present
        if not both.any():
            continue
        vl, vr = (
            (one_values, many.values[i])
            if matching.card == "one-to-many"
            else (many.values[i], one_values)
        )
        result = arith(op, vl, vr)
        if is_comparison and not expr.return_bool:
            keep = both & (result == 1.0)
            value = vl
        else:
            keep = both
            value = result
        if matching.include:
            # group_x(labels): the result label set may differ per "one" row.
            for m in np.unique(which[both]).tolist():
                part = both & (which == m)
                new = _result_labels(lab, one.labels[m], expr, matching)
                matched[sig].append((len(out_labels), part))
                out_labels.append(new)
                out_values.append(value)
                out_present.append(keep & part)
                out_drop.append(_result_drop(expr, many.drop_name[i]))
            continue
        matched[sig].append((len(out_labels), both))
        out_labels.append(_result_labels(lab, (), expr, matching))
        out_values.append(value)
        out_present.append(keep)
        out_drop.append(_result_drop(expr, many.drop_name[i]))
    for entries in matched.values():
        if len(entries) < 2:
            continue
        if matching.card == "one-to-one":
            counts = np.sum([mask for _, mask in entries], axis=0)
            if (counts > 1).any():
                raise InvalidInput(
                    "multiple matches for labels: many-to-one matching must be "
                    "explicit (group_left/group_right)"
                )
        else:
            by_labels: dict[Labels, list[BoolArray]] = defaultdict(list)
            for idx, mask in entries:
                by_labels[out_labels[idx]].append(mask)
            for masks in by_labels.values():
                if len(masks) > 1 and (np.sum(masks, axis=0) > 1).any():
                    raise InvalidInput(
                        "multiple matches for labels: grouping labels must ensure unique matches"
                    )
    if not out_labels:
        return Block.empty(steps)
    return Block(
        out_labels,
        np.vstack(out_values),
        np.vstack(out_present),
        np.array(out_drop, dtype=bool),
    )


def _result_drop(expr: BinaryExpr, many_drop: bool) -> bool:
    if expr.op in COMPARISONS and not expr.return_bool:
        return bool(many_drop)
    return True


def _result_labels(
    labels: Labels, one_labels: Labels, expr: BinaryExpr, matching: VectorMatching
) -> Labels:
    out = dict(labels)
    if matching.card == "one-to-one":
        if matching.on:
            keep = set(matching.labels)
            out = {k: v for k, v in out.items() if k in keep}
        else:
            for name in matching.labels:
                out.pop(name, None)
    if matching.include:
        source = dict(one_labels)
        for name in matching.include:
            if source.get(name):
                out[name] = source[name]
            else:
                out.pop(name, None)
    return tuple(sorted(out.items()))


def aggregate(expr: AggregateExpr, vec: Block, param: FloatArray | str | None) -> Block:
    """Evaluate aggregation ``expr`` over ``vec``; ``param`` is its evaluated parameter."""
    steps = vec.values.shape[1]
    groups: dict[Labels, list[int]] = {}
    for i, lab in enumerate(vec.labels):
        if not vec.present[i].any():
            continue
        if expr.without:
            drop = set(expr.grouping) | {"__name__"}
            key = tuple(p for p in lab if p[0] not in drop)
        else:
            keep = set(expr.grouping)
            key = tuple(p for p in lab if p[0] in keep)
        groups.setdefault(key, []).append(i)
    op = expr.op
    if op in ("topk", "bottomk"):
        assert isinstance(param, np.ndarray)
        return _topk(op, vec, groups, param)
    if op in ("limitk", "limit_ratio"):
        assert isinstance(param, np.ndarray)
        return _limit(op, vec, groups, param)
    if op == "count_values":
        assert isinstance(param, str)
        return _count_values(param, vec, groups)
    out_labels: list[Labels] = []
    rows_v: list[FloatArray] = []
    rows_p: list[BoolArray] = []
    drops: list[bool] = []
    for key, members in groups.items():
        values = vec.values[members]
        present = vec.present[members]
        count = present.sum(axis=0)
        any_present = count > 0
        with np.errstate(all="ignore"):
            if op == "sum":
                result = kahan_rows(values, present)
            elif op == "avg":
                result = kahan_rows(values, present) / count
                overflow = np.isinf(result) & ~np.isinf(np.where(present, values, 0)).any(axis=0)
                if overflow.any():
                    result = np.where(
                        overflow, kahan_rows(values / np.maximum(count, 1), present), result
                    )
            elif op == "count":
                result = count.astype(np.float64)
            elif op == "group":
                result = np.ones(steps)
            elif op == "min":
                result = np.fmin.reduce(np.where(present, values, np.nan), axis=0)
            elif op == "max":
                result = np.fmax.reduce(np.where(present, values, np.nan), axis=0)
            elif op in ("stddev", "stdvar"):
                dev = welford_rows(values, present)
                result = np.sqrt(dev) if op == "stddev" else dev
            elif op == "quantile":
                assert isinstance(param, np.ndarray)
                result = quantile_columns(param, values, present)
            else:
                raise InvalidInput(f"unknown aggregation {op!r}")
        out_labels.append(key)
        rows_v.append(result)
        rows_p.append(any_present)
        drops.append("__name__" in dict(key) and bool(vec.drop_name[members].any()))
    if not out_labels:
        return Block.empty(steps)
    return Block(out_labels, np.vstack(rows_v), np.vstack(rows_p), np.array(drops, dtype=bool))


def _topk(op: str, vec: Block, groups: dict[Labels, list[int]], k: FloatArray) -> Block:
    if np.isnan(k).any():
        raise InvalidInput("Parameter value is NaN")
    steps = vec.values.shape[1]
    kk = np.clip(np.nan_to_num(k), -1, 2**62).astype(np.int64)
    present = np.zeros_like(vec.present)
    order: list[int] = []
    for members in groups.values():
        values = vec.values[members]
        mask = vec.present[members]
        # rank: present non-NaN first (best value first), then NaN, then absent.
        category = np.where(mask, np.where(np.isnan(values), 1, 0), 2)
        key = -values if op == "topk" else values
        key = np.where(category == 0, key, 0.0)
        ranking = np.lexsort((key.T, category.T))  # (steps, members)
        ranks = np.empty_like(ranking)
        np.put_along_axis(ranks, ranking, np.arange(len(members))[None, :], axis=1)
        chosen = (kk[None, :] > ranks.T) & mask
        present[members] = chosen
        if steps == 1:
            order.extend(members[j] for j in ranking[0] if chosen[j, 0])
        else:
            order.extend(members)
    block = Block(vec.labels, vec.values, present, vec.drop_name, None)
    return block.take(order) if order else Block.empty(steps)


def _limit(op: str, vec: Block, groups: dict[Labels, list[int]], param: FloatArray) -> Block:
    """limitk: the first k series of each group; limit_ratio: a stable hash-based sample."""
    if np.isnan(param).any():
        raise InvalidInput("Parameter value is NaN" if op == "limitk" else "Ratio value is NaN")
    present = np.zeros_like(vec.present)
    rows = [i for members in groups.values() for i in members]
    if op == "limitk":
        k = np.clip(param, -1, 2**62).astype(np.int64)
        for members in groups.values():
            mask = vec.present[members]
            present[members] = mask & (np.cumsum(mask, axis=0) <= k[None, :])
    else:
        ratio = np.clip(param, -1.0, 1.0)
        for i in rows:
            digest = hashlib.blake2b(repr(vec.labels[i]).encode(), digest_size=8).digest()
            position = int.from_bytes(digest, "little") / 2.0**64
            keep = np.where(ratio >= 0, position < ratio, position >= 1.0 + ratio)
            present[i] = vec.present[i] & keep
    block = Block(vec.labels, vec.values, present, vec.drop_name, None)
    return block.take(rows) if rows else Block.empty(vec.values.shape[1])


def _count_values(label: str, vec: Block, groups: dict[Labels, list[int]]) -> Block:
    fn.check_label_name(label)
    steps = vec.values.shape[1]
    counts: dict[Labels, FloatArray] = {}
    for key, members in groups.items():
        rows, columns = np.nonzero(vec.present[members])
        if not len(rows):
            continue
        # Count each distinct value per step at once; only distinct values are formatted.
        distinct, which = np.unique(vec.values[members][rows, columns], return_inverse=True)
        per_value = np.zeros((len(distinct), steps))
        np.add.at(per_value, (which.ravel(), columns), 1.0)
        for value, row in zip(distinct.tolist(), per_value, strict=True):
            out = dict(key)
            out[label] = format_value(value)
            labels = tuple(sorted(out.items()))
            if labels in counts:
                counts[labels] = counts[labels] + row
            else:
                counts[labels] = row
    if not counts:
        return Block.empty(steps)
    values = np.vstack(list(counts.values()))
    return Block(list(counts), values, values > 0, np.zeros(len(counts), dtype=bool))
