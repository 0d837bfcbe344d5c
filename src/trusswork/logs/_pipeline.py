"""Running the commands of a log query over the rows its search matched.

The store reads the matched lines out of its index as a :class:`pyarrow.Table`
(``_time`` in Unix ms, ``_raw``, ``source``, ``sourcetype`` and one column per
extracted field, newest first) and :func:`run_commands` runs the ``|``
commands of :mod:`trusswork.logs._ast` over it, in order.
:func:`match_rows` is the row-level meaning of a search expression, the oracle
the index's own evaluation is tested against; :func:`required_fields` tells
the store which columns a pipeline can read, so it loads only those.

Semantics
---------
Search (:func:`match_rows`)
    ``Term``: the text's tokens (:func:`trusswork.search.tokenize`); with a
    ``*`` the lower-cased text is a pattern (``*`` any run of characters,
    nothing else special) that must match a whole token of the line; one
    token must be among the line's tokens; several are a phrase; none match
    nothing. ``Phrase``: its tokens at adjacent positions. ``FieldCompare``:
    a row lacking the field never matches (not even ``!=``). A string value
    with ``*`` (``=``/``!=``) is a case-sensitive pattern over the value's
    text; another string value compares texts (ints as ``str(int)``,
    integral floats as ``500``, other floats as ``repr``, booleans as
    ``true``/``false``). A number compares numerically with numbers and with
    strings that spell one (:func:`~trusswork.logs._ast.parse_number`: no
    blanks, ``_``, ``inf`` or ``nan``; both sides as float64); with other
    values ``=``/``!=`` compare texts and ``< <= > >=`` never match. An
    ordering against a string value is numeric when both sides parse as
    numbers, else by code points. ``NOT`` includes rows lacking the field.
Expressions (``eval``, ``where``)
    Columns are typed (int64, float64, bool, string); a field no row has is
    all null. An integral number literal is an int64. Nulls propagate: null
    in arithmetic, concatenation, comparison or a function gives null, and
    ``where`` keeps only rows where the condition is true. ``and``/``or``
    use three-valued logic. ``+ - *`` keep int64 for two ints (overflow is
    an error) and give float64 otherwise; ``/`` always gives float64, ``%``
    takes the sign of the dividend; dividing by zero gives null. Strings are
    never converted to numbers implicitly: arithmetic on a string or boolean
    is an error that points at ``tonumber()``; ``+`` on two strings and
    ``.`` on anything join texts. ``=``/``!=`` between a number and a string
    compare texts; ordering them is an error. Branches of ``if``/``case``/
    ``coalesce``/``min``/``max`` of different types become numbers (int and
    float) or, failing that, texts.
Functions
    ``if case coalesce null isnull isnotnull len lower upper substr trim ltrim
    rtrim tostring tonumber round abs floor ceil sqrt pow log ln exp like
    match replace strftime now min max``. ``substr`` is 1-based (a negative
    start counts from the end); ``log(x, base=10)``; ``sqrt``/``log`` of
    numbers out of their domain give null; ``tonumber`` gives int64 when
    every value is an integer, else float64 (text it cannot read is null);
    ``like``/``match``/``replace``/``strftime`` take literal patterns and
    formats (``match``/``replace`` use Python regular expressions);
    ``now()`` is ``now_ms`` in milliseconds, like ``_time``; ``strftime``
    takes milliseconds and formats in UTC. ``split`` (multivalue fields) is
    not supported.
Commands
    ``sort``: nulls last, stable; in a string column the values that parse
    as numbers sort numerically before the others; descending reverses
    everything but the nulls. ``dedup`` keeps the first rows in input order
    and drops rows lacking one of its fields; ``tail`` keeps input order.
    ``stats`` drops rows lacking a ``by`` field and sorts groups by the
    ``by`` values (as ``sort``); without ``by`` it gives one row, over no
    rows ``count``/``dc`` 0 and other aggregations null. ``sum``/``avg``/
    ``median``/``perc``/``stdev`` read numbers (strings that parse as
    numbers count, other values are ignored); ``min``/``max`` of strings
    compare texts; percentiles are exact with linear interpolation (numpy's
    default); ``stdev`` is the sample deviation; ``values`` is the distinct
    texts, sorted; ``first``/``last`` are the first/last non-null values in
    input order (newest first). ``timechart`` buckets ``_time`` down to multiples of the
    span and fills the buckets between the first and last with ``count``/
    ``dc`` 0 and other aggregations null; with ``by`` the series are the
    ``limit`` values (0: all) with the largest total of the first
    aggregation, in ``sort`` order of their texts, and the rest aggregate
    as ``OTHER`` (last); rows lacking the by-field are not counted.
    ``top``/``rare`` count combinations of values of rows having all the
    fields, ``percent`` relative to those rows (per ``by`` group).
    ``patterns`` mines :class:`~trusswork.logs.PatternMiner` templates in
    input order; ``sample`` is the first value seen for each template.

Errors
------
Every problem raises :class:`~trusswork.core.errors.InvalidInput` naming the
command and the offset of the node at fault.

Complexity
----------
``where``/``eval`` arithmetic and comparisons, ``stats``, ``sort``,
``dedup`` and field filters of the search run in Arrow kernels; conversions
between texts and numbers, regular expressions and the tokenizer-based
terms run in Python once per distinct value (terms: per row whose folded
text holds the term), so cost follows the number of distinct values.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from trusswork.core.errors import InvalidInput
from trusswork.logs._ast import (
    Agg,
    And,
    Binary,
    Call,
    Command,
    Dedup,
    Eval,
    Expr,
    FieldCompare,
    FieldRef,
    Fields,
    Head,
    Literal_,
    MatchAll,
    Not,
    Or,
    Patterns,
    Phrase,
    Rare,
    Rex,
    Search,
    SearchExpr,
    Sort,
    SortKey,
    Stats,
    Table,
    Tail,
    Term,
    Timechart,
    Top,
    Unary,
    Where,
    number_text,
    parse_number,
)
from trusswork.logs._patterns import PatternMiner
from trusswork.search import tokenize

__all__ = ["evaluate", "match_rows", "required_fields", "run_commands"]

# What Arrow, numpy and Python raise on values they cannot handle; the public
# functions turn them into InvalidInput so callers see one error type.
_RUNTIME_ERRORS = (pa.ArrowException, ValueError, TypeError, ArithmeticError, LookupError, re.error)

#: Most time buckets a ``timechart`` may produce.
MAX_BUCKETS = 100_000

_PY_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_PC_COMPARE: dict[str, Callable[..., Any]] = {
    "=": pc.equal,
    "!=": pc.not_equal,
    "<": pc.less,
    "<=": pc.less_equal,
    ">": pc.greater,
    ">=": pc.greater_equal,
}
_COMMAND_NAMES: dict[type, str] = {
    Search: "search",
    Where: "where",
    Eval: "eval",
    Rex: "rex",
    Fields: "fields",
    Table: "table",
    Sort: "sort",
    Head: "head",
    Tail: "tail",
    Dedup: "dedup",
    Stats: "stats",
    Timechart: "timechart",
    Top: "top",
    Rare: "rare",
    Patterns: "patterns",
}

# ------------------------------------------------------------ values and texts


def _kind(data_type: Any) -> str:
    """The value family of an Arrow type: int, float, bool, str, null or other."""
    if pa.types.is_null(data_type):
        return "null"
    if pa.types.is_boolean(data_type):
        return "bool"
    if pa.types.is_integer(data_type):
        return "int"
    if pa.types.is_floating(data_type):
        return "float"
    if pa.types.is_string(data_type) or pa.types.is_large_string(data_type):
        return "str"
    return "other"


def _normalize(array: Any) -> Any:
    """``array`` as one of the types the pipeline works with (int64, float64, bool, string)."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    kind = _kind(array.type)
    if kind == "int" and array.type != pa.int64():
        return pc.cast(array, pa.int64())
    if kind == "float" and array.type != pa.float64():
        return pc.cast(array, pa.float64())
    if kind == "str" and array.type != pa.string():
        return pc.cast(array, pa.string())
    if kind == "other":
        return _map_values(array, str, pa.string())
    return array


def _text_of(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return number_text(value)
    return str(value)


def _map_values(array: Any, function: Callable[[Any], Any], out_type: Any) -> Any:
    """``function`` applied once per distinct non-null value of ``array``; null stays null."""
    if len(array) == array.null_count:
        return pa.nulls(len(array), out_type)
    encoded = pc.dictionary_encode(array)
    mapped = pa.array([function(v) for v in encoded.dictionary.to_pylist()], type=out_type)
    return mapped.take(encoded.indices)


def _as_text(array: Any) -> Any:
    """The texts of ``array``'s values (see :func:`number_text`)."""
    kind = _kind(array.type)
    if kind == "str":
        return array
    if kind in ("int", "bool"):
        return pc.cast(array, pa.string())
    if kind == "null":
        return pa.nulls(len(array), pa.string())
    return _map_values(array, _text_of, pa.string())


def _as_numbers(array: Any) -> Any:
    """``array`` as float64 for numeric aggregations: strings that parse, else null."""
    kind = _kind(array.type)
    if kind == "int":
        return pc.cast(array, pa.float64(), safe=False)
    if kind == "float":
        return array
    if kind == "str":
        return _map_values(array, parse_number, pa.float64())
    return pa.nulls(len(array), pa.float64())


def _to_numpy_bool(array: Any) -> np.ndarray[Any, Any]:
    return np.asarray(array.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def _column(table: Any, name: str) -> Any:
    """The column ``name`` of ``table``, normalized; None when there is none."""
    if name not in table.column_names:
        return None
    return _normalize(table.column(name))


def _column_or_nulls(table: Any, name: str) -> Any:
    column = _column(table, name)
    return pa.nulls(table.num_rows) if column is None else column


def _set_column(table: Any, name: str, array: Any) -> Any:
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, array)
    return table.append_column(name, array)


def _wildcard(pattern: str) -> re.Pattern[str]:
    """A regex for a ``*`` pattern: ``*`` any run of characters, the rest literal."""
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def _where(at: int) -> str:
    return f" (at offset {at})"


# ------------------------------------------------------------------ search


class _Matcher:
    """Evaluates a search expression over one table (see the module docstring)."""

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
    these rows (see the module docstring for the rules).

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


# ------------------------------------------------------------- expressions

# name -> (fewest, most) arguments
_ARITY: dict[str, tuple[int, int]] = {
    "if": (3, 3),
    "case": (2, 1_000),
    "coalesce": (1, 1_000),
    "null": (0, 0),
    "isnull": (1, 1),
    "isnotnull": (1, 1),
    "len": (1, 1),
    "lower": (1, 1),
    "upper": (1, 1),
    "substr": (2, 3),
    "trim": (1, 2),
    "ltrim": (1, 2),
    "rtrim": (1, 2),
    "tostring": (1, 1),
    "tonumber": (1, 2),
    "round": (1, 2),
    "abs": (1, 1),
    "floor": (1, 1),
    "ceil": (1, 1),
    "sqrt": (1, 1),
    "pow": (2, 2),
    "log": (1, 2),
    "ln": (1, 1),
    "exp": (1, 1),
    "like": (2, 2),
    "match": (2, 2),
    "replace": (3, 3),
    "strftime": (2, 2),
    "now": (0, 0),
    "min": (1, 1_000),
    "max": (1, 1_000),
}


def _literal_array(value: Any, rows: int) -> Any:
    if value is None:
        return pa.nulls(rows)
    if isinstance(value, bool):
        return pa.repeat(pa.scalar(value, pa.bool_()), rows)
    if isinstance(value, int) or (
        isinstance(value, float) and value.is_integer() and abs(value) < 2**63
    ):
        return pa.repeat(pa.scalar(int(value), pa.int64()), rows)
    if isinstance(value, float):
        return pa.repeat(pa.scalar(value, pa.float64()), rows)
    return pa.repeat(pa.scalar(str(value), pa.string()), rows)


def _unify(arrays: list[Any]) -> list[Any]:
    """``arrays`` cast to one type: int64, float64, bool, or else string."""
    kinds = {_kind(a.type) for a in arrays} - {"null"}
    if not kinds:
        return arrays
    if kinds <= {"int", "float"}:
        target = pa.int64() if kinds == {"int"} else pa.float64()
        return [pc.cast(a, target, safe=False) for a in arrays]
    if len(kinds) == 1:
        target = arrays[[_kind(a.type) for a in arrays].index(kinds.pop())].type
        return [a if a.type == target else pa.nulls(len(a), target) for a in arrays]
    return [_as_text(a) for a in arrays]


class _Evaluator:
    def __init__(self, table: Any, now_ms: int) -> None:
        self.table = table
        self.rows = table.num_rows
        self.now_ms = now_ms

    def eval(self, expr: Expr) -> Any:
        if isinstance(expr, Literal_):
            return _literal_array(expr.value, self.rows)
        if isinstance(expr, FieldRef):
            return _column_or_nulls(self.table, expr.name)
        if isinstance(expr, Unary):
            return self._unary(expr)
        if isinstance(expr, Binary):
            return self._binary(expr)
        if isinstance(expr, Call):
            return self._call(expr)
        raise InvalidInput(f"not an expression: {type(expr).__name__}")

    def _numeric(self, array: Any, what: str, at: int) -> str:
        kind = _kind(array.type)
        if kind not in ("int", "float", "null"):
            raise InvalidInput(
                f"{what} needs numbers, got a {_type_name(kind)}{_where(at)}; "
                f"convert text with tonumber()"
            )
        return kind

    def _boolean(self, array: Any, what: str, at: int) -> Any:
        kind = _kind(array.type)
        if kind == "null":
            return pa.nulls(len(array), pa.bool_())
        if kind != "bool":
            raise InvalidInput(
                f"{what} needs a condition (true/false), got a {_type_name(kind)}{_where(at)}"
            )
        return array

    def _unary(self, expr: Unary) -> Any:
        operand = self.eval(expr.operand)
        if expr.op == "-":
            kind = self._numeric(operand, "'-'", expr.at)
            if kind == "null":
                return pa.nulls(self.rows, pa.int64())
            return pc.negate_checked(operand) if kind == "int" else pc.negate(operand)
        if expr.op in ("not", "!"):
            return pc.invert(self._boolean(operand, "'not'", expr.at))
        raise InvalidInput(f"unknown operator {expr.op!r}{_where(expr.at)}")

    def _binary(self, expr: Binary) -> Any:
        op = expr.op.lower()
        left, right = self.eval(expr.left), self.eval(expr.right)
        if op in ("and", "&&", "or", "||"):
            left = self._boolean(left, f"'{expr.op}'", expr.at)
            right = self._boolean(right, f"'{expr.op}'", expr.at)
            return pc.and_kleene(left, right) if op in ("and", "&&") else pc.or_kleene(left, right)
        if op == ".":
            return pc.binary_join_element_wise(_as_text(left), _as_text(right), "")
        if op in ("=", "==", "!=", "<", "<=", ">", ">="):
            return self._comparison("=" if op == "==" else op, left, right, expr.at)
        if op in ("+", "-", "*", "/", "%"):
            kinds = {_kind(left.type), _kind(right.type)}
            if op == "+" and kinds <= {"str", "null"} and "str" in kinds:
                return pc.binary_join_element_wise(_as_text(left), _as_text(right), "")
            return self._arithmetic(op, left, right, expr.at)
        raise InvalidInput(f"unknown operator {expr.op!r}{_where(expr.at)}")

    def _arithmetic(self, op: str, left: Any, right: Any, at: int) -> Any:
        kinds = {self._numeric(left, f"'{op}'", at), self._numeric(right, f"'{op}'", at)}
        floats = op == "/" or "float" in kinds
        target = pa.float64() if floats else pa.int64()
        if "null" in kinds:
            return pa.nulls(self.rows, target)
        left = pc.cast(left, target, safe=False)
        right = pc.cast(right, target, safe=False)
        if op in ("/", "%"):
            zero = _to_numpy_bool(pc.equal(right, pa.scalar(0, target)))
            invalid = zero | _to_numpy_bool(pc.is_null(left)) | _to_numpy_bool(pc.is_null(right))
            one = pa.scalar(1, target)
            divisor = pc.if_else(pa.array(zero), one, right).fill_null(one)
            dividend = left.fill_null(pa.scalar(0, target))
            if op == "/":
                result = pc.divide(dividend, divisor)
                return pa.array(result.to_numpy(zero_copy_only=False), mask=invalid)
            with np.errstate(all="ignore"):  # inf % x is NaN, as in IEEE arithmetic
                values = np.fmod(
                    dividend.to_numpy(zero_copy_only=False),
                    divisor.to_numpy(zero_copy_only=False),
                )
            return pa.array(values, type=target, mask=invalid)
        functions = {
            "+": (pc.add_checked, pc.add),
            "-": (pc.subtract_checked, pc.subtract),
            "*": (pc.multiply_checked, pc.multiply),
        }
        checked, plain = functions[op]
        if floats:
            return plain(left, right)
        try:
            return checked(left, right)
        except pa.ArrowInvalid as exc:
            raise InvalidInput(f"'{op}': integer overflow{_where(at)}") from exc

    def _comparison(self, op: str, left: Any, right: Any, at: int) -> Any:
        kinds = (_kind(left.type), _kind(right.type))
        if "null" in kinds:
            return pa.nulls(self.rows, pa.bool_())
        if set(kinds) <= {"int", "float"}:
            if kinds[0] != kinds[1]:
                left = pc.cast(left, pa.float64(), safe=False)
                right = pc.cast(right, pa.float64(), safe=False)
        elif kinds[0] != kinds[1]:
            if op not in ("=", "!="):
                raise InvalidInput(
                    f"'{op}' cannot order a {_type_name(kinds[0])} and a "
                    f"{_type_name(kinds[1])}{_where(at)}; convert with tonumber() or tostring()"
                )
            left, right = _as_text(left), _as_text(right)
        return _PC_COMPARE[op](left, right)

    # -- functions --------------------------------------------------------

    def _call(self, expr: Call) -> Any:
        name = expr.name.lower()
        if name == "split":
            raise InvalidInput(
                f"split() is not supported (multivalue fields are not implemented){_where(expr.at)}"
            )
        if name not in _ARITY:
            raise InvalidInput(f"unknown function {expr.name}(){_where(expr.at)}")
        fewest, most = _ARITY[name]
        if not fewest <= len(expr.args) <= most:
            wanted = str(fewest) if fewest == most else f"{fewest} to {most}"
            if most == 1_000:
                wanted = f"at least {fewest}"
            raise InvalidInput(
                f"{name}() takes {wanted} argument{'' if most == 1 else 's'}, got "
                f"{len(expr.args)}{_where(expr.at)}"
            )
        method: Callable[[Call], Any] = getattr(self, f"_fn_{name}")
        return method(expr)

    def _args(self, expr: Call) -> list[Any]:
        return [self.eval(arg) for arg in expr.args]

    def _literal(self, expr: Call, index: int, kind: type) -> Any:
        """Argument ``index`` of ``expr``, which must be a literal of ``kind``."""
        node = expr.args[index]
        value = node.value if isinstance(node, Literal_) else None
        if kind is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise InvalidInput(
                f"{expr.name}(): argument {index + 1} must be a literal "
                f"{kind.__name__}{_where(node.at)}"
            )
        return value

    def _number_arg(self, expr: Call, index: int) -> tuple[Any, str]:
        array = self.eval(expr.args[index])
        return array, self._numeric(array, f"{expr.name}()", expr.args[index].at)

    def _float_arg(self, expr: Call, index: int) -> Any:
        array, kind = self._number_arg(expr, index)
        if kind == "null":
            return pa.nulls(self.rows, pa.float64())
        return pc.cast(array, pa.float64(), safe=False)

    def _fn_if(self, expr: Call) -> Any:
        condition, yes, no = self._args(expr)
        condition = self._boolean(condition, "if()", expr.args[0].at).fill_null(False)
        yes, no = _unify([yes, no])
        if _kind(yes.type) == "null" and _kind(no.type) == "null":
            return yes
        return pc.if_else(condition, yes, no)

    def _fn_case(self, expr: Call) -> Any:
        if len(expr.args) % 2:
            raise InvalidInput(
                f"case() takes condition, value pairs; got {len(expr.args)} arguments"
                f"{_where(expr.at)}"
            )
        args = self._args(expr)
        conditions = [
            self._boolean(args[i], "case()", expr.args[i].at).fill_null(False)
            for i in range(0, len(args), 2)
        ]
        values = _unify([*args[1::2], pa.nulls(self.rows)])
        result = values[-1]
        if _kind(result.type) == "null":
            return result
        result = pa.nulls(self.rows, values[0].type)
        for condition, value in reversed(list(zip(conditions, values, strict=False))):
            result = pc.if_else(condition, value, result)
        return result

    def _fn_coalesce(self, expr: Call) -> Any:
        values = _unify(self._args(expr))
        if all(_kind(v.type) == "null" for v in values):
            return values[0]
        return pc.coalesce(*[v for v in values if _kind(v.type) != "null"])

    def _fn_null(self, expr: Call) -> Any:
        return pa.nulls(self.rows)

    def _fn_isnull(self, expr: Call) -> Any:
        return pc.is_null(self.eval(expr.args[0]))

    def _fn_isnotnull(self, expr: Call) -> Any:
        return pc.is_valid(self.eval(expr.args[0]))

    def _fn_len(self, expr: Call) -> Any:
        return pc.cast(pc.utf8_length(_as_text(self.eval(expr.args[0]))), pa.int64())

    def _fn_lower(self, expr: Call) -> Any:
        return pc.utf8_lower(_as_text(self.eval(expr.args[0])))

    def _fn_upper(self, expr: Call) -> Any:
        return pc.utf8_upper(_as_text(self.eval(expr.args[0])))

    def _fn_tostring(self, expr: Call) -> Any:
        return _as_text(self.eval(expr.args[0]))

    def _fn_substr(self, expr: Call) -> Any:
        text = _as_text(self.eval(expr.args[0]))
        numbers = []
        for index in range(1, len(expr.args)):
            array, kind = self._number_arg(expr, index)
            numbers.append(pc.cast(array, pa.int64(), safe=False) if kind != "null" else array)

        def substr(value: str, start: int, length: int | None = None) -> str:
            begin = start - 1 if start > 0 else max(len(value) + start, 0) if start < 0 else 0
            end = len(value) if length is None else begin + max(length, 0)
            return value[begin:end]

        return _rowwise(substr, [text, *numbers], pa.string())

    def _trim(self, expr: Call, side: str) -> Any:
        text = _as_text(self.eval(expr.args[0]))
        if len(expr.args) == 1:
            function = {"both": pc.utf8_trim_whitespace, "left": pc.utf8_ltrim_whitespace}
            return function.get(side, pc.utf8_rtrim_whitespace)(text)
        characters = self._literal(expr, 1, str)
        function = {"both": pc.utf8_trim, "left": pc.utf8_ltrim}.get(side, pc.utf8_rtrim)
        return function(text, characters=characters)

    def _fn_trim(self, expr: Call) -> Any:
        return self._trim(expr, "both")

    def _fn_ltrim(self, expr: Call) -> Any:
        return self._trim(expr, "left")

    def _fn_rtrim(self, expr: Call) -> Any:
        return self._trim(expr, "right")

    def _fn_tonumber(self, expr: Call) -> Any:
        array = self.eval(expr.args[0])
        base = self._literal(expr, 1, int) if len(expr.args) == 2 else None
        if base is not None and not 2 <= base <= 36:
            raise InvalidInput(f"tonumber(): base must be 2 to 36, got {base}{_where(expr.at)}")
        kind = _kind(array.type)
        if kind in ("int", "float") and base is None:
            return array
        if kind in ("bool", "null"):
            return pa.nulls(self.rows, pa.float64())

        def parse(value: str) -> int | float | None:
            try:
                return int(value, base if base is not None else 10)
            except ValueError:
                # tonumber() forgives surrounding blanks, as int() does.
                return None if base is not None else parse_number(value.strip())

        text = _as_text(array)
        if len(text) == text.null_count:
            return pa.nulls(self.rows, pa.float64())
        encoded = pc.dictionary_encode(text)
        parsed = [parse(v) for v in encoded.dictionary.to_pylist()]
        integers = all(v is None or (isinstance(v, int) and -(2**63) <= v < 2**63) for v in parsed)
        if integers:
            return pa.array(parsed, pa.int64()).take(encoded.indices)
        floats = [None if v is None else float(v) for v in parsed]
        return pa.array(floats, pa.float64()).take(encoded.indices)

    def _fn_round(self, expr: Call) -> Any:
        array, kind = self._number_arg(expr, 0)
        digits = self._literal(expr, 1, int) if len(expr.args) == 2 else 0
        if kind == "null" or (kind == "int" and digits >= 0):
            return array
        return pc.round(
            pc.cast(array, pa.float64(), safe=False),
            ndigits=digits,
            round_mode="half_towards_infinity",
        )

    def _fn_abs(self, expr: Call) -> Any:
        array, kind = self._number_arg(expr, 0)
        if kind == "null":
            return array
        return pc.abs_checked(array) if kind == "int" else pc.abs(array)

    def _fn_floor(self, expr: Call) -> Any:
        array, kind = self._number_arg(expr, 0)
        return pc.floor(array) if kind == "float" else array

    def _fn_ceil(self, expr: Call) -> Any:
        array, kind = self._number_arg(expr, 0)
        return pc.ceil(array) if kind == "float" else array

    def _domain(self, values: Any, valid: Any, function: Callable[[Any], Any]) -> Any:
        """``function`` of ``values`` where ``valid`` holds, null elsewhere."""
        one = pa.scalar(1.0, pa.float64())
        result = function(pc.if_else(valid, values, one))
        return pc.if_else(valid, result, pa.scalar(None, pa.float64()))

    def _fn_sqrt(self, expr: Call) -> Any:
        values = self._float_arg(expr, 0)
        return self._domain(values, pc.greater_equal(values, 0.0), pc.sqrt)

    def _fn_pow(self, expr: Call) -> Any:
        return pc.power(self._float_arg(expr, 0), self._float_arg(expr, 1))

    def _fn_ln(self, expr: Call) -> Any:
        values = self._float_arg(expr, 0)
        return self._domain(values, pc.greater(values, 0.0), pc.ln)

    def _fn_log(self, expr: Call) -> Any:
        values = self._float_arg(expr, 0)
        if len(expr.args) == 1:
            return self._domain(values, pc.greater(values, 0.0), pc.log10)
        base = self._float_arg(expr, 1)
        valid = pc.and_(
            pc.greater(values, 0.0), pc.and_(pc.greater(base, 0.0), pc.not_equal(base, 1.0))
        )
        return self._domain(
            values, valid, lambda v: pc.divide(pc.ln(v), pc.ln(pc.if_else(valid, base, 2.0)))
        )

    def _fn_exp(self, expr: Call) -> Any:
        return pc.exp(self._float_arg(expr, 0))

    def _fn_like(self, expr: Call) -> Any:
        pattern = self._literal(expr, 1, str)
        return pc.match_like(_as_text(self.eval(expr.args[0])), pattern)

    def _regex(self, expr: Call, index: int) -> re.Pattern[str]:
        return _compile_regex(self._literal(expr, index, str), expr.args[index].at)

    def _fn_match(self, expr: Call) -> Any:
        regex = self._regex(expr, 1)
        text = _as_text(self.eval(expr.args[0]))
        return _map_values(text, lambda s: regex.search(s) is not None, pa.bool_())

    def _fn_replace(self, expr: Call) -> Any:
        regex = self._regex(expr, 1)
        replacement = self._literal(expr, 2, str)
        text = _as_text(self.eval(expr.args[0]))
        try:
            return _map_values(text, lambda s: regex.sub(replacement, s), pa.string())
        except (re.error, IndexError) as exc:
            raise InvalidInput(
                f"replace(): bad replacement {replacement!r}: {exc}{_where(expr.args[2].at)}"
            ) from exc

    def _fn_strftime(self, expr: Call) -> Any:
        times = self._float_arg(expr, 0)
        layout = self._literal(expr, 1, str)

        def format_time(ms: float) -> str | None:
            try:
                return datetime.fromtimestamp(ms / 1000, UTC).strftime(layout)
            except (ValueError, OverflowError, OSError):
                return None

        return _map_values(times, format_time, pa.string())

    def _fn_now(self, expr: Call) -> Any:
        return _literal_array(self.now_ms, self.rows)

    def _extreme(self, expr: Call, function: Callable[..., Any]) -> Any:
        values = _unify(self._args(expr))
        present = [v for v in values if _kind(v.type) != "null"]
        if not present:
            return values[0]
        if _kind(present[0].type) == "bool":
            raise InvalidInput(f"{expr.name}() needs numbers or texts{_where(expr.at)}")
        return function(*present, skip_nulls=True)

    def _fn_min(self, expr: Call) -> Any:
        return self._extreme(expr, pc.min_element_wise)

    def _fn_max(self, expr: Call) -> Any:
        return self._extreme(expr, pc.max_element_wise)


def _type_name(kind: str) -> str:
    return {"str": "string", "int": "number", "float": "number", "bool": "boolean"}.get(kind, kind)


def _rowwise(function: Callable[..., Any], arrays: list[Any], out_type: Any) -> Any:
    """``function`` over the rows of ``arrays``; a null argument gives null."""
    columns = [a.to_pylist() for a in arrays]
    return pa.array(
        [
            None if any(v is None for v in values) else function(*values)
            for values in zip(*columns, strict=True)
        ],
        type=out_type,
    )


def _compile_regex(pattern: str, at: int) -> re.Pattern[str]:
    """A Python regex; PCRE's ``(?<name>...)`` groups are accepted as ``(?P<name>...)``."""
    try:
        return re.compile(re.sub(r"\(\?<(?=[A-Za-z_])", "(?P<", pattern))
    except re.error as exc:
        raise InvalidInput(f"bad regular expression {pattern!r}: {exc}{_where(at)}") from exc


def evaluate(expr: Expr, table: pa.Table, *, now_ms: int) -> pa.Array:
    """The value of an ``eval``/``where`` expression for every row of ``table``.

    Parameters
    ----------
    expr:
        The expression.
    table:
        The rows; a field without a column reads as null.
    now_ms:
        What ``now()`` returns (Unix milliseconds).

    Returns
    -------
    pyarrow.Array
        One value per row (int64, float64, bool, string or all-null).

    Raises
    ------
    InvalidInput
        A type error, an unknown function, bad arguments, a bad regular
        expression or an integer overflow; the message gives the offset.
    """
    try:
        return _Evaluator(table, now_ms).eval(expr)
    except InvalidInput:
        raise
    except _RUNTIME_ERRORS as exc:
        raise InvalidInput(f"{exc}{_where(getattr(expr, 'at', 0))}") from exc


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


# ------------------------------------------------------------ projection


def _expand(table: Any, names: Iterable[str]) -> list[str]:
    """``names`` with ``*`` patterns replaced by the matching columns, in table order."""
    out: list[str] = []
    for name in names:
        if "*" in name:
            regex = _wildcard(name)
            out += [c for c in table.column_names if regex.fullmatch(c) and c not in out]
        elif name not in out:
            out.append(name)
    return out


def _fields(table: Any, command: Fields) -> Any:
    names = _expand(table, command.names)
    if command.exclude:
        return table.drop_columns([n for n in names if n in table.column_names])
    return table.select([n for n in names if n in table.column_names])


def _table(table: Any, command: Table) -> Any:
    names = _expand(table, command.names)
    return pa.table(
        {n: table.column(n) if n in table.column_names else pa.nulls(table.num_rows) for n in names}
    )


# ---------------------------------------------------------------- driver


def _run(table: Any, command: Command, now_ms: int) -> Any:
    if isinstance(command, Search):
        return table.filter(pa.array(_Matcher(table).match(command.expr)))
    if isinstance(command, Where):
        condition = _Evaluator(table, now_ms).eval(command.expr)
        kind = _kind(condition.type)
        if kind == "null":
            return table.slice(0, 0)
        if kind != "bool":
            raise InvalidInput(
                f"the condition is a {_type_name(kind)}, not true/false{_where(command.expr.at)}"
            )
        return table.filter(condition.fill_null(False))
    if isinstance(command, Eval):
        for name, expr in command.assignments:
            table = _set_column(table, name, _Evaluator(table, now_ms).eval(expr))
        return table
    if isinstance(command, Rex):
        return _rex(table, command)
    if isinstance(command, Fields):
        return _fields(table, command)
    if isinstance(command, Table):
        return _table(table, command)
    if isinstance(command, Sort):
        if command.limit is not None and command.limit < 0:
            raise InvalidInput(f"sort limit must be >= 0, got {command.limit}")
        return _sort(table, command.keys, command.limit)
    if isinstance(command, Head | Tail):
        if command.count < 0:
            raise InvalidInput(f"the row count must be >= 0, got {command.count}")
        if isinstance(command, Head):
            return table.slice(0, command.count)
        return table.slice(max(table.num_rows - command.count, 0))
    if isinstance(command, Dedup):
        return _dedup(table, command.fields, command.keep, command.at)
    if isinstance(command, Stats):
        return _stats(table, command.aggs, command.by, command.at)
    if isinstance(command, Timechart):
        return _timechart(table, command)
    if isinstance(command, Top | Rare):
        return _top(table, command)
    if isinstance(command, Patterns):
        return _patterns(table, command)
    raise InvalidInput(f"not a command: {type(command).__name__}")


def _rex(table: Any, command: Rex) -> Any:
    regex = _compile_regex(command.pattern, command.at)
    names = list(regex.groupindex)
    if not names:
        raise InvalidInput(
            f"rex needs a named group such as (?<name>...) in {command.pattern!r}"
            f"{_where(command.at)}"
        )
    text = _as_text(_column_or_nulls(table, command.field))
    if len(text) == text.null_count:
        extracted = {name: pa.nulls(len(text), pa.string()) for name in names}
    else:
        encoded = pc.dictionary_encode(text)
        matches = [regex.search(v) for v in encoded.dictionary.to_pylist()]
        extracted = {
            name: pa.array(
                [m.group(name) if m is not None else None for m in matches], pa.string()
            ).take(encoded.indices)
            for name in names
        }
    for name, values in extracted.items():
        table = _set_column(table, name, values)
    return table


def run_commands(table: pa.Table, commands: Sequence[Command], *, now_ms: int) -> pa.Table:
    """Run the ``|`` commands of a query over the rows its search matched.

    Parameters
    ----------
    table:
        The matched rows, newest first: ``_time`` (Unix ms), ``_raw``,
        ``source``, ``sourcetype`` and one column per extracted field.
    commands:
        The commands, run in order.
    now_ms:
        The query's "now" in Unix milliseconds (``now()`` in expressions).

    Returns
    -------
    pyarrow.Table
        The rows (or the aggregated table) the last command produced.

    Raises
    ------
    InvalidInput
        A command cannot run on these rows: a type error in an expression,
        an unknown function or aggregation, a bad regular expression, a bad
        argument. The message names the command and the offset.
    """
    for command in commands:
        name = _COMMAND_NAMES.get(type(command), type(command).__name__)
        where = _where(getattr(command, "at", 0))
        try:
            table = _run(table, command, now_ms)
        except InvalidInput as exc:
            raise InvalidInput(f"| {name}{where}: {exc.message}") from exc
        except _RUNTIME_ERRORS as exc:
            raise InvalidInput(f"| {name}{where}: {exc}") from exc
    return table


# -------------------------------------------------------- required fields


def _expr_fields(expr: Expr) -> set[str]:
    if isinstance(expr, FieldRef):
        return {expr.name}
    if isinstance(expr, Unary):
        return _expr_fields(expr.operand)
    if isinstance(expr, Binary):
        return _expr_fields(expr.left) | _expr_fields(expr.right)
    if isinstance(expr, Call):
        return set().union(*(_expr_fields(a) for a in expr.args))
    return set()


def _search_fields(expr: SearchExpr) -> set[str]:
    if isinstance(expr, Term | Phrase):
        return {"_raw"}
    if isinstance(expr, FieldCompare):
        return {expr.field}
    if isinstance(expr, And | Or):
        return set().union(*(_search_fields(p) for p in expr.parts))
    if isinstance(expr, Not):
        return _search_fields(expr.part)
    return set()


def required_fields(commands: Sequence[Command]) -> frozenset[str] | None:
    """The columns the store must read for ``commands``, or None for all of them.

    The commands up to the first one that reduces the columns (``stats``,
    ``timechart``, ``top``, ``rare``, ``patterns``, ``table``, ``fields``
    without ``-``) can only see the fields they name, plus ``_raw`` for
    terms, phrases, ``rex`` and ``patterns`` on it, and ``_time`` for
    ``timechart``. Without such a command the user sees every field, and a
    ``*`` pattern in ``table``/``fields`` names fields unknown in advance:
    both give None.
    """
    needed: set[str] = set()
    for command in commands:
        if isinstance(command, Search):
            needed |= _search_fields(command.expr)
        elif isinstance(command, Where):
            needed |= _expr_fields(command.expr)
        elif isinstance(command, Eval):
            for _, expr in command.assignments:
                needed |= _expr_fields(expr)
        elif isinstance(command, Rex):
            needed.add(command.field)
        elif isinstance(command, Sort):
            needed |= {key.field for key in command.keys}
        elif isinstance(command, Dedup):
            needed |= set(command.fields)
        elif isinstance(command, Fields | Table):
            if isinstance(command, Fields) and command.exclude:
                continue
            if any("*" in name for name in command.names):
                return None
            return frozenset(needed | set(command.names))
        elif isinstance(command, Stats | Timechart):
            needed |= {agg.field for agg in command.aggs if agg.field is not None}
            if isinstance(command, Stats):
                needed |= set(command.by)
            else:
                needed.add("_time")
                if command.by is not None:
                    needed.add(command.by)
            return frozenset(needed)
        elif isinstance(command, Top | Rare):
            return frozenset(needed | set(command.fields) | set(command.by))
        elif isinstance(command, Patterns):
            return frozenset(needed | {command.field})
    return None
