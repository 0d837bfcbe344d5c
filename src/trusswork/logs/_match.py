"""The row-level meaning of a search expression: which rows of a table it matches.

:func:`match_rows` is the oracle the store's index is tested against: the
index must select exactly these rows. The rules (terms, phrases, field
comparisons, ``NOT``) are in the module docstring of
:mod:`trusswork.logs._pipeline`. Terms tokenize only the rows whose folded
``_raw`` holds the term; field comparisons run once per distinct value.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from trusswork.core.errors import InvalidInput
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
from trusswork.logs._columns import (
    _PC_COMPARE,
    _RUNTIME_ERRORS,
    _as_text,
    _column,
    _kind,
    _map_values,
    _text_of,
    _to_numpy_bool,
    _where,
    _wildcard,
)
from trusswork.search import tokenize

__all__ = ["match_rows"]

_PY_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


class _Matcher:
    """Evaluates a search expression over one table (rules: :mod:`trusswork.logs._pipeline`)."""

    def __init__(self, table: Any) -> None:
        self.table = table
        self.rows = table.num_rows
        raw = _column(table, "_raw")
        self._raw: Any = None if raw is None else _as_text(raw)
        self._folded: Any = None

    def match(self, expr: SearchExpr) -> np.ndarray[Any, Any]:
        if isinstance(expr, MatchAll):
            return np.ones(self.rows, dtype=bool)
        if isinstance(expr, And):
            mask = np.ones(self.rows, dtype=bool)
            for part in expr.parts:
                mask &= self.match(part)
            return mask
        if isinstance(expr, Or):
            mask = np.zeros(self.rows, dtype=bool)
            for part in expr.parts:
                mask |= self.match(part)
            return mask
        if isinstance(expr, Not):
            return ~self.match(expr.part)
        if isinstance(expr, Term):
            return self._term(expr.text)
        if isinstance(expr, Phrase):
            return self._phrase(tokenize(expr.text))
        if isinstance(expr, FieldCompare):
            return self._compare(expr)
        raise InvalidInput(f"not a search expression: {type(expr).__name__}")

    # -- text -------------------------------------------------------------

    def _candidates(self, needle: str) -> np.ndarray[Any, Any]:
        """Rows whose ``_raw``, ASCII-folded, holds ``needle`` (every token of a line does)."""
        if self._raw is None:
            return np.zeros(0, dtype=np.int64)
        if self._folded is None:
            self._folded = pc.ascii_lower(self._raw)
        hits = pc.match_substring(self._folded, needle) if needle else pc.is_valid(self._folded)
        return np.flatnonzero(_to_numpy_bool(hits))

    def _rows_where(self, needle: str, test: Callable[[list[str]], bool]) -> np.ndarray[Any, Any]:
        """Rows whose ``_raw`` tokens pass ``test``, tokenizing only the rows holding ``needle``."""
        mask = np.zeros(self.rows, dtype=bool)
        rows = self._candidates(needle)
        if len(rows):
            texts = self._raw.take(pa.array(rows)).to_pylist()
            mask[rows] = [test(tokenize(text)) for text in texts]
        return mask

    def _term(self, text: str) -> np.ndarray[Any, Any]:
        if "*" in text:
            pattern = text.lower()
            regex = _wildcard(pattern)
            literals = [part for part in pattern.split("*") if part.isascii()]
            needle = max(literals, key=len, default="")
            return self._rows_where(needle, lambda tokens: any(regex.fullmatch(t) for t in tokens))
        tokens = tokenize(text)
        if len(tokens) == 1:
            token = tokens[0]
            return self._rows_where(token, lambda line: token in line)
        return self._phrase(tokens)

    def _phrase(self, tokens: list[str]) -> np.ndarray[Any, Any]:
        if not tokens:
            return np.zeros(self.rows, dtype=bool)
        width = len(tokens)
        first = tokens[0]

        def holds(line: list[str]) -> bool:
            return any(
                line[i] == first and line[i : i + width] == tokens
                for i in range(len(line) - width + 1)
            )

        return self._rows_where(max(tokens, key=len), holds)

    # -- fields -----------------------------------------------------------

    def _compare(self, expr: FieldCompare) -> np.ndarray[Any, Any]:
        column = _column(self.table, expr.field)
        if column is None or column.null_count == len(column):
            return np.zeros(self.rows, dtype=bool)
        present = _to_numpy_bool(pc.is_valid(column))
        op, value = expr.op, expr.value
        kind = _kind(column.type)
        if op not in _PY_COMPARE:
            raise InvalidInput(f"unknown comparison {op!r}{_where(expr.at)}")
        if isinstance(value, str) and op in ("=", "!="):
            if "*" in value:
                regex = _wildcard(value)
                hits = _map_values(
                    _as_text(column), lambda s: regex.fullmatch(s) is not None, pa.bool_()
                )
            else:
                hits = pc.equal(_as_text(column), pa.scalar(value, pa.string()))
            mask = _to_numpy_bool(hits)
            return present & ~mask if op == "!=" else mask
        compare = _PY_COMPARE[op]
        if isinstance(value, str):
            number = parse_number(value)
            if number is not None and kind in ("int", "float"):
                return self._numeric(column, op, number)

            def against_text(v: Any) -> bool:
                if number is not None:
                    mine = parse_number(v) if isinstance(v, str) else None
                    if mine is not None:
                        return compare(mine, number)
                return compare(_text_of(v), value)

            return _to_numpy_bool(_map_values(column, against_text, pa.bool_()))
        number = float(value)
        if kind in ("int", "float"):
            return self._numeric(column, op, number)
        text = number_text(number)

        def against_number(v: Any) -> bool:
            mine = parse_number(v) if isinstance(v, str) else None
            if mine is not None:
                return compare(mine, number)
            return op in ("=", "!=") and compare(_text_of(v), text)

        return _to_numpy_bool(_map_values(column, against_number, pa.bool_()))

    @staticmethod
    def _numeric(column: Any, op: str, number: float) -> np.ndarray[Any, Any]:
        values = pc.cast(column, pa.float64(), safe=False)
        return _to_numpy_bool(_PC_COMPARE[op](values, pa.scalar(number, pa.float64())))


def match_rows(table: pa.Table, expr: SearchExpr) -> np.ndarray[Any, Any]:
    """Which rows of ``table`` a search expression matches.

    This is the meaning of a search: the store's index must select exactly
    these rows (see the module docstring of :mod:`trusswork.logs._pipeline`).

    Parameters
    ----------
    table:
        Rows with ``_raw`` and field columns (missing columns read as null).
    expr:
        The search expression.

    Returns
    -------
    numpy.ndarray
        One bool per row.

    Raises
    ------
    InvalidInput
        ``expr`` is not a search expression or holds an unknown operator.
    """
    try:
        return _Matcher(table).match(expr)
    except InvalidInput:
        raise
    except _RUNTIME_ERRORS as exc:
        raise InvalidInput(f"search{_where(getattr(expr, 'at', 0))}: {exc}") from exc
