"""The expressions of ``eval`` and ``where``: an Arrow column for every expression.

:func:`evaluate` computes an expression over all rows of a table at once,
in Arrow kernels where one exists and once per distinct value where Python
is needed (number parsing, regular expressions, ``strftime``). The types,
null propagation and the functions (:data:`~trusswork.logs._ast.FUNCTIONS`,
one ``_fn_<name>`` method each) are described in the module docstring of
:mod:`trusswork.logs._pipeline`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from trusswork.core.errors import InvalidInput
from trusswork.logs._ast import (
    FUNCTIONS,
    Binary,
    Call,
    Expr,
    FieldRef,
    Literal_,
    Unary,
    parse_number,
)
from trusswork.logs._columns import (
    _PC_COMPARE,
    _RUNTIME_ERRORS,
    _as_text,
    _column_or_nulls,
    _compile_regex,
    _kind,
    _map_values,
    _to_numpy_bool,
    _type_name,
    _where,
)

__all__ = ["evaluate"]


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
        if name not in FUNCTIONS:
            raise InvalidInput(f"unknown function {expr.name}(){_where(expr.at)}")
        fewest, most = FUNCTIONS[name]
        if not fewest <= len(expr.args) <= (most if most is not None else len(expr.args)):
            wanted = str(fewest) if fewest == most else f"{fewest} to {most}"
            if most is None:
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
