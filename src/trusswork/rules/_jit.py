"""Numeric rules compiled with Numba: one machine-code loop over whole columns.

A CEL expression that only reads ``int``, ``double`` and ``bool`` variables and
only uses arithmetic, comparisons, ``!``, ``&&``, ``||``, ``?:``, ``int()`` and
``double()`` becomes one ``@numba.njit`` kernel that evaluates it row by row
over numpy columns.

Exactness is kept by carrying, next to every sub-expression's value, a flag
saying "CEL would raise here": int64 overflow, int division or modulus by zero,
``int()`` of a double out of range. The flags follow CEL's rules exactly
(``false && error`` is false, ``?:`` only looks at the branch it takes), so a
row is flagged only where the CEL evaluation raises. Flagged rows are then
handed to the exact Python evaluation, which raises the error with its proper
kind and message. Between an int and a double, ordering converts the int to a
double first, as cel-go does and cel-spec's conformance tests expect
(``9223372036854775807 < 9223372036854775808.0`` is false), while ``==`` and
``!=`` compare exactly, as the Python path does.

Numba is imported only when a kernel first runs: importing it takes about half
a second, which ``import trusswork.rules`` must not pay.

Safety: CEL names never become Python names in the generated kernel; columns
are the positional parameters ``c0``, ``c1``, ... and constants are globals
``_k0``, ``_k1``, ....
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from trusswork.core.errors import InvalidInput
from trusswork.rules._ast import Binary, Call, Conditional, Ident, Node, Unary
from trusswork.rules._checker import Checked
from trusswork.rules._values import INT64_MAX, INT64_MIN, EvaluationError

__all__ = ["PARALLEL_ROWS", "NumericKernel", "numeric_kernel"]

# Columns at least this long are split over the cores (prange); shorter ones run on one,
# where starting the threads would cost more than it saves.
PARALLEL_ROWS = 100_000

# One parallel kernel runs at a time in a process: Numba's fallback threading layer
# (workqueue) aborts the process on concurrent parallel launches, so a thread that finds
# one running takes the serial kernel instead. After fork() the child never runs a
# parallel kernel: GNU OpenMP, Numba's usual layer on Linux, is not fork-safe.
_PARALLEL = threading.Lock()
_parallel_allowed = True


def _forbid_parallel_after_fork() -> None:
    global _parallel_allowed
    _parallel_allowed = False


os.register_at_fork(after_in_child=_forbid_parallel_after_fork)

# The flags argument of a counting kernel, which never writes it.
_NO_FLAGS = np.zeros(0, dtype=np.bool_)

_DTYPES: dict[str, type[np.generic]] = {"int": np.int64, "double": np.float64, "bool": np.bool_}
_PYTHON: dict[str, type] = {"int": int, "double": float, "bool": bool}
_ARITHMETIC = frozenset({"+", "-", "*", "/", "%"})
_COMPARISON = frozenset({"==", "!=", "<", "<=", ">", ">="})
# How a three-way comparison result (-1, 0, 1, or 2 for "unordered": a NaN took part)
# answers each operator.
_FROM_ORDER = {
    "==": "({0} == 0)",
    "!=": "({0} != 0)",
    "<": "({0} == -1)",
    "<=": "({0} == -1 or {0} == 0)",
    ">": "({0} == 1)",
    ">=": "({0} == 1 or {0} == 0)",
}
_FLIP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_INT_HELPERS = {"+": "_iadd", "-": "_isub", "*": "_imul", "/": "_idiv", "%": "_imod"}
# Checks simple enough to write into the kernel as expressions, as (error, value) over the
# operands {a} and {b}, the error flag {e} and the result {r}; the others call a helper.
# Int arithmetic wraps through uint64 so that overflow is defined behaviour.
_INLINE = {
    "_iadd": ("(({a} ^ {r}) & ({b} ^ {r})) < 0", "_i64(_u64({a}) + _u64({b}))"),
    "_isub": ("(({a} ^ {b}) & ({a} ^ {r})) < 0", "_i64(_u64({a}) - _u64({b}))"),
    "_ineg": ("{a} == _MIN", "_i64(_U0 - _u64({a}))"),
    "_to_int": (
        "not (-9.223372036854775808e18 < {a} < 9.223372036854775808e18)",
        "_i64(0.0 if {e} else {a})",
    ),
}

# Numba helpers, compiled once per process and shared by every kernel. Each
# returns ``(value, error)``; on error the value means nothing, and no machine
# instruction that could trap (``INT64_MIN // -1``, division by zero) ever runs. Int
# arithmetic wraps through uint64 so that overflow is defined behaviour.
_HELPERS_SOURCE = """
def _imul(a, b):
    r = _i64(_u64(a) * _u64(b))
    if ((_u64(a) + _UHALF) >> _U32) == _U0 and ((_u64(b) + _UHALF) >> _U32) == _U0:
        return r, False
    if b == 0:
        return r, False
    if b == -1:
        return r, a == _MIN
    return r, r // b != a

def _idiv(a, b):
    if b == 0 or (b == -1 and a == _MIN):
        return _ZERO, True
    q = a // b
    if q < 0 and a % b != 0:
        q += 1
    return q, False

def _imod(a, b):
    if b == 0 or (b == -1 and a == _MIN):
        return _ZERO, True
    if b == -1:
        return _ZERO, False
    m = a % b
    if m != 0 and (m < 0) != (a < 0):
        m -= b
    return m, False

def _order(a, b):
    if b != b:
        return 2
    if b >= 9.223372036854775808e18:
        return -1
    if b < -9.223372036854775808e18:
        return 1
    floor = _floor(b)
    whole = _i64(floor)
    if a < whole:
        return -1
    if a > whole:
        return 1
    if b > floor:
        return -1
    return 0
"""


@functools.cache
def _helpers() -> dict[str, Any]:
    import math

    import numba

    namespace: dict[str, Any] = {
        "_u64": np.uint64,
        "_i64": np.int64,
        "_floor": math.floor,
        "_MIN": np.int64(-(2**63)),
        "_ZERO": np.int64(0),
        "_UHALF": np.uint64(2**31),
        "_U32": np.uint64(32),
        "_U0": np.uint64(0),
    }
    exec(_HELPERS_SOURCE, namespace)
    # Inlined into the kernel's Numba IR: a call would keep LLVM from seeing through it
    # (``i % 7`` as a multiplication, vectorised loops), which halves the speed.
    jit = numba.njit(inline="always", error_model="numpy", nogil=True)
    for name in ("_imul", "_idiv", "_imod", "_order"):
        namespace[name] = jit(namespace[name])
    return {name: value for name, value in namespace.items() if not name.startswith("__")}


class _NotNumeric(Exception):
    """The expression uses something the kernel does not support."""


class _Generator:
    def __init__(self, checked: Checked) -> None:
        self.checked = checked
        self.lines: list[str] = []
        self.constants: dict[str, Any] = {}
        self.columns: dict[str, str] = {}
        self.kinds: dict[str, str] = {}
        self.counter = 0

    def kind(self, node: Node) -> str:
        kind = self.checked.type(node).kind
        if kind not in _DTYPES:
            raise _NotNumeric
        return kind

    def temp(self, prefix: str = "t") -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def emit(self, line: str) -> None:
        self.lines.append(line)

    def constant(self, value: Any, kind: str) -> str:
        if type(value) is not _PYTHON[kind] and not (kind == "double" and type(value) is int):
            raise _NotNumeric
        name = f"_k{len(self.constants)}"
        self.constants[name] = _DTYPES[kind](value)
        return name

    def expr(self, node: Node) -> tuple[str, str | None]:
        """``(value, error)``: Python names (or ``None`` for "cannot fail") for ``node``."""
        kind = self.kind(node)
        if id(node) in self.checked.constants:
            return self.constant(self.checked.constants[id(node)], kind), None
        if type(node) is Ident:
            return self.ident(node, kind), None
        if type(node) is Unary:
            return self.unary(node, kind)
        if type(node) is Binary:
            return self.binary(node, kind)
        if type(node) is Conditional:
            return self.conditional(node)
        if type(node) is Call:
            return self.call(node, kind)
        raise _NotNumeric

    def ident(self, node: Ident, kind: str) -> str:
        if self.checked.refs.get(id(node)) != "var":
            raise _NotNumeric
        name = self.columns.get(node.name)
        if name is None:
            name = f"x{len(self.columns)}"
            self.columns[node.name] = name
            self.kinds[node.name] = kind
        return name

    def unary(self, node: Unary, kind: str) -> tuple[str, str | None]:
        value, error = self.expr(node.operand)
        operand_kind = self.kind(node.operand)
        if node.op == "!" and operand_kind == "bool":
            return f"(not {value})", error
        if node.op == "-" and operand_kind == "double":
            return f"(-{value})", error
        if node.op == "-" and operand_kind == "int":
            return self.checked_call("_ineg", [value], [error])
        raise _NotNumeric

    def checked_call(
        self, helper: str, args: list[str], errors: list[str | None]
    ) -> tuple[str, str]:
        result, failed = self.temp(), self.temp("e")
        inline = _INLINE.get(helper)
        if inline is None:
            self.emit(f"{result}, {failed} = {helper}({', '.join(args)})")
        else:
            names = dict(zip("ab", args, strict=False), e=failed, r=result)
            error, value = (template.format(**names) for template in inline)
            # The value first where the check reads it, the check first where the value does.
            if "{e}" in inline[1]:
                self.emit(f"{failed} = {error}")
                self.emit(f"{result} = {value}")
            else:
                self.emit(f"{result} = {value}")
                self.emit(f"{failed} = {error}")
        combined = " | ".join([failed, *(item for item in errors if item is not None)])
        if combined != failed:
            self.emit(f"{failed} = {combined}")
        return result, failed

    def binary(self, node: Binary, kind: str) -> tuple[str, str | None]:
        op = node.op
        if op in ("&&", "||"):
            return self.logical(node)
        left, left_error = self.expr(node.left)
        right, right_error = self.expr(node.right)
        left_kind, right_kind = self.kind(node.left), self.kind(node.right)
        error = _either(left_error, right_error)
        if op in _COMPARISON:
            return self.compare(op, left, left_kind, right, right_kind), error
        if op not in _ARITHMETIC or left_kind != right_kind or left_kind != kind:
            raise _NotNumeric
        if kind == "double" and op != "%":
            result = self.temp()
            self.emit(f"{result} = {left} {op} {right}")
            return result, error
        if kind == "int" and op == "*":
            for operand, factor, operand_error in (
                (left, self.literal(node.right), left_error),
                (right, self.literal(node.left), right_error),
            ):
                if factor is not None:
                    return self.scaled(operand, factor, operand_error)
        if kind == "int":
            return self.checked_call(_INT_HELPERS[op], [left, right], [left_error, right_error])
        raise _NotNumeric

    def literal(self, node: Node) -> int | None:
        """The value of an int constant operand, else ``None``."""
        value = self.checked.constants.get(id(node))
        return value if type(value) is int else None

    def scaled(self, operand: str, factor: int, operand_error: str | None) -> tuple[str, str]:
        """``operand * factor`` for a constant factor: overflow is a range check on the operand.

        ``a * k`` fits in int64 exactly when ``a`` lies in ``[low, high]``, bounds computed
        here with Python's exact integers; the check compiles to two compares, no branch.
        """
        result, failed = self.temp(), self.temp("e")
        self.emit(f"{result} = _i64(_u64({operand}) * _u64({self.constant(factor, 'int')}))")
        if factor == 0:
            self.emit(f"{failed} = False")
        else:
            if factor > 0:
                low, high = -((-INT64_MIN) // factor), INT64_MAX // factor
            else:
                low, high = -(INT64_MAX // -factor), INT64_MIN // factor
            low, high = max(low, INT64_MIN), min(high, INT64_MAX)
            self.emit(
                f"{failed} = ({operand} < {self.constant(low, 'int')}) | "
                f"({operand} > {self.constant(high, 'int')})"
            )
        if operand_error is not None:
            self.emit(f"{failed} = {failed} | {operand_error}")
        return result, failed

    def compare(self, op: str, left: str, left_kind: str, right: str, right_kind: str) -> str:
        if left_kind == right_kind:
            return f"({left} {op} {right})"
        if left_kind == "bool" or right_kind == "bool":
            raise _NotNumeric
        if left_kind == "double":
            left, right, op = right, left, _FLIP[op]
        if op not in ("==", "!="):
            # Ordering an int against a double converts the int, as cel-go does.
            return f"(_f64({left}) {op} {right})"
        order = self.temp("o")
        self.emit(f"{order} = _order({left}, {right})")
        return _FROM_ORDER[op].format(order)

    def logical(self, node: Binary) -> tuple[str, str | None]:
        if self.kind(node.left) != "bool" or self.kind(node.right) != "bool":
            raise _NotNumeric
        left, left_error = self.expr(node.left)
        right, right_error = self.expr(node.right)
        value = self.temp()
        # Bitwise on bools: both sides are computed anyway, and no branch keeps the loop
        # vectorisable.
        self.emit(f"{value} = {left} {'&' if node.op == '&&' else '|'} {right}")
        if left_error is None and right_error is None:
            return value, None
        # An operand that is known (no error) and equal to the absorbing value decides the
        # result whatever the other side did; otherwise any error on either side stands.
        # Written with & | ^ on bools, not and/or/not: no branches, so the loop vectorises.
        flip = " ^ True" if node.op == "&&" else ""
        decided = " | ".join(
            f"(({failed} ^ True) & ({operand}{flip}))"
            if failed is not None
            else f"({operand}{flip})"
            for operand, failed in ((left, left_error), (right, right_error))
        )
        error = self.temp("e")
        self.emit(f"{error} = ({_either(left_error, right_error)}) & (({decided}) ^ True)")
        return value, error

    def conditional(self, node: Conditional) -> tuple[str, str | None]:
        if self.kind(node.condition) != "bool" or self.kind(node.then) != self.kind(node.otherwise):
            raise _NotNumeric
        condition, condition_error = self.expr(node.condition)
        then, then_error = self.expr(node.then)
        otherwise, otherwise_error = self.expr(node.otherwise)
        value = self.temp()
        self.emit(f"{value} = {then} if {condition} else {otherwise}")
        if then_error is None and otherwise_error is None:
            return value, condition_error
        chosen = f"({then_error or 'False'} if {condition} else {otherwise_error or 'False'})"
        error = self.temp("e")
        self.emit(f"{error} = {_either(condition_error, chosen)}")
        return value, error

    def call(self, node: Call, kind: str) -> tuple[str, str | None]:
        if node.target is not None or len(node.args) != 1 or node.function not in ("int", "double"):
            raise _NotNumeric
        argument = node.args[0]
        argument_kind = self.kind(argument)
        value, error = self.expr(argument)
        if argument_kind == kind:
            return value, error
        if kind == "double" and argument_kind == "int":
            return f"_f64({value})", error
        if kind == "int" and argument_kind == "double":
            return self.checked_call("_to_int", [value], [error])
        raise _NotNumeric


def _either(first: str | None, second: str | None) -> str | None:
    if first is None:
        return second
    if second is None:
        return first
    return f"({first} or {second})"


class NumericKernel:
    """A numeric CEL expression compiled to one Numba loop over numpy columns.

    Attributes
    ----------
    variables : tuple of str
        The names of the columns the kernel reads, sorted.
    result_kind : str
        ``"bool"``, ``"int"`` or ``"double"``: the CEL type of the result, and
        so the dtype (bool, int64, float64) of the arrays the kernel returns.
    kinds : dict of str to str
        The CEL type of each variable.
    source : str
        The generated Python source of the kernel, for auditing.
    """

    def __init__(
        self,
        variables: tuple[str, ...],
        kinds: dict[str, str],
        result_kind: str,
        source: str,
        constants: dict[str, Any],
        *,
        can_fail: bool,
        parallel: bool,
        counting_source: str | None = None,
    ) -> None:
        self.variables = variables
        self.kinds = kinds
        self.result_kind = result_kind
        self.source = source
        self._counting_source = counting_source or source
        self._constants = constants
        self._parallel = parallel
        self._can_fail = can_fail
        self._compiled: dict[tuple[bool, bool], Callable[..., int]] = {}
        self._lock = threading.Lock()

    def _kernel(self, parallel: bool, record: bool = True) -> Callable[..., int]:
        """The kernel that counts the rows where CEL raises and, with ``record``,
        flags them in ``failed`` (the counting one writes nothing but ``out``)."""
        with self._lock:
            compiled = self._compiled.get((parallel, record))
            if compiled is None:
                import numba

                namespace = dict(_helpers())
                namespace.update(self._constants)
                namespace["_f64"] = np.float64
                namespace["_range"] = numba.prange if parallel else range
                # Built from a checked tree: no CEL name or text reaches the code (see module).
                exec(self.source if record else self._counting_source, namespace)
                compiled = numba.njit(
                    parallel=parallel,
                    error_model="numpy",
                    boundscheck=False,
                    fastmath=False,
                    nogil=True,
                )(namespace["_kernel"])
                self._compiled[parallel, record] = compiled
            return compiled

    def _run(
        self,
        length: int,
        out: np.ndarray,
        failed: np.ndarray,
        arrays: list[np.ndarray],
        record: bool = True,
    ) -> int:
        """Run the parallel kernel when it is safe and worth it, the serial one otherwise."""
        if self._parallel and length >= PARALLEL_ROWS and _PARALLEL.acquire(blocking=False):
            try:
                if _parallel_allowed:
                    return int(self._kernel(True, record)(length, out, failed, *arrays))
            finally:
                _PARALLEL.release()
        return int(self._kernel(False, record)(length, out, failed, *arrays))

    def _columns(self, columns: Mapping[str, Any]) -> tuple[int, list[np.ndarray]]:
        arrays: list[np.ndarray] = []
        length: int | None = None
        for name in self.variables:
            if name not in columns:
                raise InvalidInput(f"column {name!r} is missing")
            dtype = _DTYPES[self.kinds[name]]
            try:
                given = np.asarray(columns[name])
            except (TypeError, ValueError) as error:
                raise InvalidInput(f"column {name!r} is not an array: {error}") from None
            if given.ndim != 1:
                raise InvalidInput(
                    f"column {name!r} must be one-dimensional, not {given.ndim}-dimensional"
                )
            # Only value-preserving conversions: a float column read as int would be truncated.
            if not np.can_cast(given.dtype, dtype, casting="safe"):
                raise InvalidInput(
                    f"column {name!r} has dtype {given.dtype}, which does not convert exactly "
                    f"to {np.dtype(dtype)} (declared {self.kinds[name]})"
                )
            array = np.ascontiguousarray(given, dtype=dtype)
            if length is None:
                length = len(array)
            elif len(array) != length:
                raise InvalidInput(
                    f"column {name!r} has {len(array)} rows, but {self.variables[0]!r} has {length}"
                )
            arrays.append(array)
        return length or 0, arrays

    def __call__(
        self, columns: Mapping[str, Any], fallback: Callable[[dict[str, Any]], Any]
    ) -> np.ndarray:
        """Evaluate the expression for every row of ``columns``.

        Parameters
        ----------
        columns : mapping of str to array-like
            One 1-D column per name in :attr:`variables`, all of one length;
            other entries are ignored.
        fallback : callable
            The exact evaluation of one row, given its bindings as a dict of
            Python values; called for the rows where CEL raises an error.

        Returns
        -------
        numpy.ndarray
            One result per row: bool, int64 or float64 by :attr:`result_kind`.

        Raises
        ------
        InvalidInput
            For a missing column, a column that is not 1-D, columns of different
            lengths, or a dtype that does not convert exactly to the declared type.
        EvaluationError
            When the expression raises for a row; the message starts with the row
            index (``"row 17: int overflow"``) and ``kind`` is the CEL error's.
        """
        length, arrays = self._columns(columns)
        out = np.empty(length, dtype=_DTYPES[self.result_kind])
        # First only count the rows where CEL raises: no flags to allocate and write.
        # Only when there are some, run again recording which (errors are rare).
        if self._run(length, out, _NO_FLAGS, arrays, record=False):
            failed = np.zeros(length, dtype=np.bool_)
            self._run(length, out, failed, arrays)
            for row in np.flatnonzero(failed).tolist():
                bindings = {
                    name: _PYTHON[self.kinds[name]](array[row])
                    for name, array in zip(self.variables, arrays, strict=True)
                }
                try:
                    out[row] = fallback(bindings)
                except EvaluationError as error:
                    raise EvaluationError(f"row {row}: {error}", kind=error.kind) from error
        return out

    def __repr__(self) -> str:
        return f"NumericKernel(variables={self.variables!r}, result_kind={self.result_kind!r})"


def numeric_kernel(
    tree: Node, checked: Checked, source: str, *, parallel: bool = True
) -> NumericKernel | None:
    """A Numba kernel for a numeric expression, or ``None`` when it is not numeric.

    Parameters
    ----------
    tree : Node
        The parsed expression.
    checked : Checked
        What the checker found for ``tree``.
    source : str
        The expression text (kept in the kernel's source as a comment).
    parallel : bool
        Whether long columns (:data:`PARALLEL_ROWS` rows or more) may be split
        over the CPU cores; see the notes on ``_PARALLEL`` for when they are not.

    Returns
    -------
    NumericKernel or None
        ``None`` unless every variable is an int, double or bool, the result is
        one too, every operation is one the kernel supports (arithmetic,
        comparisons, ``!``, ``&&``, ``||``, ``?:``, ``int()``, ``double()``)
        and the expression reads at least one variable.
    """
    generator = _Generator(checked)
    try:
        result_kind = generator.kind(tree)
        value, error = generator.expr(tree)
    except _NotNumeric:
        return None
    if not generator.columns:
        return None
    variables = tuple(sorted(generator.columns))
    parameters = ", ".join(f"c{index}" for index in range(len(variables)))
    lines = [
        f"# {source!a}",
        f"def _kernel(n, out, failed, {parameters}):",
        "    count = 0",
        "    for i in _range(n):",
    ]
    for index, name in enumerate(variables):
        lines.append(f"        {generator.columns[name]} = c{index}[i]")
    lines.extend(f"        {line}" for line in generator.lines)
    lines.append(f"        out[i] = {value}")
    counting = list(lines)
    if error is not None:
        lines.append(f"        failed[i] = {error}")
        lines.append(f"        count += {error}")
        counting.append(f"        count += {error}")
    lines.append("    return count")
    counting.append("    return count")
    return NumericKernel(
        variables,
        {name: generator.kinds[name] for name in variables},
        result_kind,
        "\n".join(lines) + "\n",
        generator.constants,
        can_fail=error is not None,
        parallel=parallel,
        counting_source="\n".join(counting) + "\n",
    )
