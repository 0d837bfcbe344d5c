"""PromQL instant-vector functions and the helpers other parts share.

Element-wise math (``abs``, ``round``, trig, ``clamp_*``), Go-compatible
regexp template expansion for ``label_replace``, natural sort keys for
``sort_by_label``, and classic-bucket ``histogram_quantile``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from trusswork.core.errors import InvalidInput

__all__ = [
    "INSTANT_FUNCTIONS",
    "check_label_name",
    "expand_template",
    "histogram_quantile",
    "natural_key",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def _round(values: FloatArray, params: list[FloatArray]) -> FloatArray:
    to_nearest = params[0] if params else np.ones(values.shape[-1])
    inverse = 1.0 / to_nearest
    return np.floor(values * inverse + 0.5) / inverse


def _sgn(values: FloatArray, params: list[FloatArray]) -> FloatArray:
    return np.where(np.isnan(values), values, np.sign(values))


def _simple(
    fn: Callable[[FloatArray], FloatArray],
) -> Callable[[FloatArray, list[FloatArray]], FloatArray]:
    def run(values: FloatArray, params: list[FloatArray]) -> FloatArray:
        return fn(values)

    return run


#: Element-wise functions on an instant vector (``__name__`` is dropped).
INSTANT_FUNCTIONS: dict[str, Callable[[FloatArray, list[FloatArray]], FloatArray]] = {
    "abs": _simple(np.abs),
    "ceil": _simple(np.ceil),
    "floor": _simple(np.floor),
    "exp": _simple(np.exp),
    "ln": _simple(np.log),
    "log2": _simple(np.log2),
    "log10": _simple(np.log10),
    "sqrt": _simple(np.sqrt),
    "sin": _simple(np.sin),
    "cos": _simple(np.cos),
    "tan": _simple(np.tan),
    "asin": _simple(np.arcsin),
    "acos": _simple(np.arccos),
    "atan": _simple(np.arctan),
    "sinh": _simple(np.sinh),
    "cosh": _simple(np.cosh),
    "tanh": _simple(np.tanh),
    "asinh": _simple(np.arcsinh),
    "acosh": _simple(np.arccosh),
    "atanh": _simple(np.arctanh),
    "deg": _simple(np.degrees),
    "rad": _simple(np.radians),
    "sgn": _sgn,
    "round": _round,
    "clamp_min": lambda v, p: np.where(np.isnan(p[0]), np.nan, np.maximum(v, p[0])),
    "clamp_max": lambda v, p: np.where(np.isnan(p[0]), np.nan, np.minimum(v, p[0])),
}


_TEMPLATE_RE = re.compile(r"\$(?:\$|\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")


def expand_template(template: str, match: re.Match[str]) -> str:
    """Expand ``$1``, ``${1}``, ``$name`` and ``$$`` in a replacement as Go's regexp does."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name is None:
            return "$"
        if name.isdigit():
            index = int(name)
            if index > (match.re.groups or 0):
                return ""
            return match.group(index) or ""
        try:
            return match.group(name) or ""
        except IndexError:
            return ""

    return _TEMPLATE_RE.sub(sub, template)


def check_label_name(name: str) -> None:
    """Raise InvalidInput unless ``name`` is a valid label name: any non-empty valid UTF-8.

    Prometheus 3 accepts UTF-8 label names; a name built from ``\\x`` escapes that are not
    valid UTF-8 carries surrogate escapes and is refused.
    """
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        shown = name.encode("utf-8", "surrogateescape").decode("ascii", "backslashreplace")
        raise InvalidInput(f'invalid label name "{shown}"') from None
    if not name:
        raise InvalidInput("invalid label name: empty")


_NAT_RE = re.compile(r"(\d+)")


def natural_key(value: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders digit runs numerically ("a2" < "a10")."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part)
        for part in _NAT_RE.split(value)
        if part != ""
    )


_MIN_NORMAL = 2.2250738585072014e-308


def _almost_equal(a: FloatArray, b: FloatArray, epsilon: float) -> BoolArray:
    """Prometheus's relative float comparison (absolute near zero)."""
    total = np.abs(a) + np.abs(b)
    diff = np.abs(a - b)
    tiny = (a == 0) | (b == 0) | (total < _MIN_NORMAL)
    relative = diff / np.minimum(total, np.finfo(np.float64).max) < epsilon
    close: BoolArray = (a == b) | np.where(tiny, diff < epsilon * _MIN_NORMAL, relative)
    return close


def histogram_quantile(
    q: FloatArray, uppers: FloatArray, counts: FloatArray, present: BoolArray
) -> tuple[FloatArray, BoolArray]:
    """The ``q[s]`` quantile of classic cumulative buckets at every step ``s`` at once.

    ``uppers`` are the buckets' ``le`` bounds in ascending order (distinct),
    ``counts``/``present`` have one row per bucket and one column per step;
    only present buckets count at a step. Follows Prometheus: NaN unless the
    highest bucket is ``+Inf`` and there are two buckets and observations;
    counts are forced monotonic (near-equal ones, within 1e-12, snap together);
    the rank is interpolated linearly inside its bucket, the first bucket
    starting at zero unless its bound is not positive.
    """
    steps = counts.shape[1]
    fixed = counts.copy()
    prev = np.full(steps, np.nan)
    seen = np.zeros(steps, dtype=np.int64)
    last_row = np.full(steps, -1)
    second_upper = np.full(steps, np.nan)
    last_upper = np.full(steps, np.nan)
    with np.errstate(all="ignore"):
        for row, upper in enumerate(uppers.tolist()):
            mask = present[row]
            cur = counts[row]
            near = _almost_equal(prev, cur, 1e-12)
            snapped = np.where((seen > 0) & ((cur < prev) | near), prev, cur)
            fixed[row] = np.where(mask, snapped, cur)
            prev = np.where(mask, snapped, prev)
            second_upper = np.where(mask, last_upper, second_upper)
            last_upper = np.where(mask, upper, last_upper)
            last_row = np.where(mask, row, last_row)
            seen += mask
        columns = np.arange(steps)
        observations = np.where(last_row >= 0, fixed[np.maximum(last_row, 0), columns], np.nan)
        rank = q * observations
        result = np.full(steps, np.nan)
        found = np.zeros(steps, dtype=bool)
        below_upper = np.zeros(steps)
        below_count = np.zeros(steps)
        first = np.ones(steps, dtype=bool)
        for row, upper in enumerate(uppers.tolist()):
            mask = present[row] & (row != last_row)
            hit = mask & ~found & (fixed[row] >= rank)
            start = np.where(first, 0.0, below_upper)
            base = np.where(first, 0.0, below_count)
            inside = start + (upper - start) * ((rank - base) / (fixed[row] - base))
            value = np.where(first & (upper <= 0), upper, inside)
            result = np.where(hit, value, result)
            found |= hit
            below_upper = np.where(mask, upper, below_upper)
            below_count = np.where(mask, fixed[row], below_count)
            first &= ~mask
        result = np.where(found, result, second_upper)
        bad = ~np.isposinf(last_upper) | (seen < 2) | (observations == 0) | np.isnan(observations)
        result = np.where(bad, np.nan, result)
        result = np.where(q < 0, -np.inf, np.where(q > 1, np.inf, result))
        result = np.where(np.isnan(q), np.nan, result)
    return result, seen > 0
