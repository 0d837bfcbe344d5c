"""The Numba kernels of numeric rules agree exactly with row-by-row CEL evaluation."""

from __future__ import annotations

import math
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import examples
from trusswork.core.errors import InvalidInput
from trusswork.rules import CompiledExpression, EvaluationError, compile_expression
from trusswork.rules._jit import PARALLEL_ROWS, NumericKernel, numeric_kernel
from trusswork.rules._values import INT64_MAX, INT64_MIN

DECLARATIONS = {"i": "int", "j": "int", "x": "double", "y": "double", "p": "bool"}
DTYPES = {"int": np.int64, "double": np.float64, "bool": np.bool_}

INT_EDGES = [0, 1, -1, 2, -2, 3, 7, -7, 2**31, -(2**31), 2**53 + 1, INT64_MAX, INT64_MIN,
             INT64_MAX - 1, INT64_MIN + 1, 3037000500, -3037000500]  # fmt: skip
DOUBLE_EDGES = [0.0, -0.0, 1.0, -1.0, 0.5, 2.5, -2.5, math.nan, math.inf, -math.inf, 1e308,
                -1e308, 9.223372036854775807e18, -9.223372036854775808e18, 2.0**53,
                float(2**53 + 2), 5e-324, 3.0, 7.0]  # fmt: skip
INT_LITERALS = ["0", "1", "-1", "2", "3", "7", "9223372036854775807", "(-9223372036854775808)"]
DOUBLE_LITERALS = ["0.0", "-0.0", "1.5", "-2.5", "3.0", "1e308", "9223372036854775807.0"]


def _compile(expr: str) -> tuple[CompiledExpression, NumericKernel | None]:
    compiled = compile_expression(expr, DECLARATIONS)
    return compiled, numeric_kernel(compiled._tree, compiled._checked, compiled.source)


def _kernel(expr: str) -> tuple[CompiledExpression, NumericKernel]:
    compiled, kernel = _compile(expr)
    assert kernel is not None
    return compiled, kernel


# -- a small typed grammar of numeric CEL expressions ----------------------------------------


def _expressions(kind: str, depth: int) -> st.SearchStrategy[str]:
    leaves = {
        "int": st.sampled_from(["i", "j", "i", "j", *INT_LITERALS]),
        "double": st.sampled_from(["x", "y", "x", "y", *DOUBLE_LITERALS]),
        "bool": st.sampled_from(["p", "p", "true", "false"]),
    }[kind]
    if depth == 0:
        return leaves

    def sub(of: str) -> st.SearchStrategy[str]:
        return _expressions(of, depth - 1)

    if kind == "int":
        composite = st.one_of(
            st.tuples(sub("int"), st.sampled_from("+-*/%"), sub("int")).map(
                lambda t: f"({t[0]} {t[1]} {t[2]})"
            ),
            sub("int").map(lambda a: f"-({a})"),
            sub("double").map(lambda a: f"int({a})"),
        )
    elif kind == "double":
        composite = st.one_of(
            st.tuples(sub("double"), st.sampled_from("+-*/"), sub("double")).map(
                lambda t: f"({t[0]} {t[1]} {t[2]})"
            ),
            sub("double").map(lambda a: f"-({a})"),
            sub("int").map(lambda a: f"double({a})"),
        )
    else:
        comparison = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
        numeric = st.sampled_from([("int", "int"), ("double", "double"), ("int", "double"),
                                   ("double", "int"), ("bool", "bool")])  # fmt: skip
        composite = st.one_of(
            st.tuples(numeric, comparison).flatmap(
                lambda t: st.tuples(sub(t[0][0]), sub(t[0][1])).map(
                    lambda s, op=t[1]: f"({s[0]} {op} {s[1]})"
                )
            ),
            st.tuples(sub("bool"), st.sampled_from(["&&", "||"]), sub("bool")).map(
                lambda t: f"({t[0]} {t[1]} {t[2]})"
            ),
            sub("bool").map(lambda a: f"!({a})"),
        )
    conditional = st.tuples(sub("bool"), sub(kind), sub(kind)).map(
        lambda t: f"({t[0]} ? {t[1]} : {t[2]})"
    )
    return st.one_of(leaves, composite, composite, conditional)


def _columns(seed: int, rows: int) -> dict[str, np.ndarray]:
    """Random columns that mostly hold edge values (overflow, zero, NaN, infinities)."""
    rng = np.random.default_rng(seed)

    def pick(edges: list[Any], random: np.ndarray, dtype: type) -> np.ndarray:
        chosen = np.array(edges, dtype=dtype)[rng.integers(0, len(edges), rows)]
        return np.where(rng.random(rows) < 0.75, chosen, random.astype(dtype))

    return {
        "i": pick(INT_EDGES, rng.integers(-10, 10, rows), np.int64),
        "j": pick(INT_EDGES, rng.integers(INT64_MIN, INT64_MAX, rows, endpoint=True), np.int64),
        "x": pick(DOUBLE_EDGES, rng.normal(0, 1e3, rows), np.float64),
        "y": pick(DOUBLE_EDGES, np.round(rng.normal(0, 10, rows)), np.float64),
        "p": rng.random(rows) < 0.5,
    }


def _row(columns: dict[str, np.ndarray], row: int) -> dict[str, Any]:
    return {name: column[row].item() for name, column in columns.items()}


def _assert_identical(actual: np.ndarray, expected: list[Any], kind: str) -> None:
    wanted = np.array(expected, dtype=DTYPES[kind])
    assert actual.dtype == wanted.dtype
    if kind == "double":
        # NaN equals NaN (its sign and payload are not CEL values: Python's own division
        # gives 0.0 / 0.0 a different sign bit than the hardware does), -0.0 differs from 0.0.
        nan = np.isnan(wanted)
        assert np.array_equal(np.isnan(actual), nan)
        assert np.array_equal(actual[~nan], wanted[~nan])
        assert np.array_equal(np.signbit(actual[~nan]), np.signbit(wanted[~nan]))
    else:
        assert actual.tolist() == wanted.tolist()


@settings(max_examples=examples(25), deadline=None)
@given(
    expr=st.sampled_from(["bool", "int", "double"]).flatmap(lambda kind: _expressions(kind, 3)),
    seed=st.integers(0, 2**32 - 1),
)
def test_kernel_matches_row_by_row_evaluation(expr: str, seed: int) -> None:
    compiled = compile_expression(expr, DECLARATIONS)
    # Serial kernels compile faster; test_serial_kernel_agrees_with_parallel covers the other.
    kernel = numeric_kernel(compiled._tree, compiled._checked, expr, parallel=False)
    if kernel is None:
        # Only an expression that reads no column (once constants are folded) has no kernel.
        try:
            compiled.evaluate({})
        except EvaluationError as error:
            assert error.kind != "no such attribute"
        return
    columns = _columns(seed, 400)
    outcomes: list[tuple[bool, Any]] = []
    for row in range(400):
        try:
            outcomes.append((True, compiled.evaluate(_row(columns, row))))
        except EvaluationError as error:
            outcomes.append((False, error))
    good = np.array([ok for ok, _value in outcomes])
    subset = {name: column[good] for name, column in columns.items()}
    _assert_identical(
        kernel(subset, compiled.evaluate),
        [value for ok, value in outcomes if ok],
        kernel.result_kind,
    )
    if not good.all():
        first = int(np.flatnonzero(~good)[0])
        error = outcomes[first][1]
        with pytest.raises(EvaluationError, match=f"^row {first}: ") as raised:
            kernel(columns, compiled.evaluate)
        assert raised.value.kind == error.kind


def test_int_and_double_order_like_cel_go() -> None:
    # The int side becomes a double (cel-spec's lossy-double conformance cases).
    compiled, kernel = _kernel("i < x")
    ints = [2**53 + 1, 2**53, INT64_MAX, INT64_MIN, -(2**53) - 1, 0, 0, 5]
    doubles = [2.0**53, 2.0**53, 2.0**63, -(2.0**63), -(2.0**53), -0.0, math.nan, math.inf]
    columns = {"i": np.array(ints), "x": np.array(doubles)}
    expected = [compiled.evaluate({"i": a, "x": b}) for a, b in zip(ints, doubles, strict=True)]
    assert kernel(columns, compiled.evaluate).tolist() == expected
    assert expected == [False, False, False, False, False, False, False, True]


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("x == x", [True, False, True]),
        ("x != x", [False, True, False]),
        ("x < 1.0 || x >= 1.0", [True, False, True]),
        ("!(x > 0.0)", [True, True, False]),
        ("i == x", [False, False, False]),
        ("i != x", [True, True, True]),
    ],
)
def test_nan_comparisons_match_python(expr: str, expected: list[bool]) -> None:
    compiled, kernel = _kernel(expr)
    columns = {"x": np.array([-1.0, math.nan, math.inf]), "i": np.array([2, 0, 1])}
    result = kernel(columns, compiled.evaluate)
    assert result.dtype == np.bool_
    assert result.tolist() == expected


def test_int_arithmetic_follows_cel() -> None:
    compiled, kernel = _kernel("i / j + i % j")
    i = np.array([7, -7, 7, -7, INT64_MIN, INT64_MAX])
    j = np.array([2, 2, -2, -2, 2, -1])
    result = kernel({"i": i, "j": j}, compiled.evaluate)
    assert result.dtype == np.int64
    assert result.tolist() == [4, -4, -2, 2, -(2**62), -INT64_MAX]
    assert result.tolist() == [compiled.evaluate(_row({"i": i, "j": j}, k)) for k in range(6)]


@pytest.mark.parametrize(
    ("expr", "values", "kind"),
    [
        ("i + j", (INT64_MAX, 1), "overflow"),
        ("i - j", (INT64_MIN, 1), "overflow"),
        ("i * j", (3037000500, 3037000500), "overflow"),
        ("i * j", (INT64_MIN, -1), "overflow"),
        ("-i + j", (INT64_MIN, 0), "overflow"),
        ("i / j", (INT64_MIN, -1), "overflow"),
        ("i / j", (5, 0), "division by zero"),
        ("i % j", (5, 0), "modulus by zero"),
        ("i % j", (INT64_MIN, -1), "overflow"),
    ],
)
def test_cel_errors_raise_with_the_row_index(expr: str, values: tuple[int, int], kind: str) -> None:
    compiled, kernel = _kernel(expr)
    columns = {"i": np.array([1, 2, values[0]]), "j": np.array([1, 1, values[1]])}
    with pytest.raises(EvaluationError, match=r"^row 2: ") as raised:
        kernel(columns, compiled.evaluate)
    assert raised.value.kind == kind


def test_errors_absorbed_by_logic_do_not_raise() -> None:
    compiled, kernel = _kernel("(i / j > 1 && p) || (j == 0 ? x > 0.0 : int(x) == i)")
    columns = {
        "i": np.array([5, 5, 5, 5]),
        "j": np.array([0, 0, 1, 1]),
        "p": np.array([False, True, True, False]),
        "x": np.array([1.0, 2.0, math.nan, 5.5]),
    }
    assert kernel.variables == ("i", "j", "p", "x")
    assert kernel(columns, compiled.evaluate).tolist() == [True, True, True, True]


def test_double_division_by_zero_is_ieee() -> None:
    compiled, kernel = _kernel("x / y")
    x = np.array([1.0, -1.0, 0.0, 1.0, math.nan])
    y = np.array([0.0, 0.0, 0.0, -0.0, 0.0])
    result = kernel({"x": x, "y": y}, compiled.evaluate)
    assert result.dtype == np.float64
    assert result[:2].tolist() == [math.inf, -math.inf]
    assert math.isnan(result[2]) and math.isnan(result[4])
    assert result[3] == -math.inf


def test_conversions_match_cel() -> None:
    compiled, kernel = _kernel("double(i) == x ? int(x) : -1")
    columns = {
        "i": np.array([2**53 + 1, 3, 0, -2]),
        "x": np.array([2.0**53, 3.0, 0.5, -2.0]),
    }
    assert kernel(columns, compiled.evaluate).tolist() == [2**53, 3, -1, -2]
    compiled, kernel = _kernel("int(x)")
    with pytest.raises(EvaluationError, match=r"^row 1: ") as raised:
        kernel({"x": np.array([-1.9, 9.223372036854775807e18])}, compiled.evaluate)
    assert raised.value.kind == "range"


@pytest.mark.parametrize(
    ("expr", "declarations"),
    [
        ("s == 'a'", {"s": "string"}),
        ("size(s) > 3", {"s": "string"}),
        ("u > 3u", {"u": "uint"}),
        ("d > 1", {"d": "dyn"}),
        ("l[0] > 1", {"l": "list(int)"}),
        ("i in [1, 2]", {"i": "int"}),
        ("i > 1", None),
        ("[i, 2].all(v, v > 0)", {"i": "int"}),
        ("1 + 2", {}),
    ],
)
def test_non_numeric_expressions_have_no_kernel(
    expr: str, declarations: dict[str, str] | None
) -> None:
    compiled = compile_expression(expr, declarations)
    assert numeric_kernel(compiled._tree, compiled._checked, compiled.source) is None


def test_constant_subexpressions_are_folded_into_the_kernel() -> None:
    compiled, kernel = _kernel("i > size('abcd') && x < 2.0 * 3.0")
    assert kernel.variables == ("i", "x")
    result = kernel({"i": [3, 5, 5], "x": [0.0, 0.0, 6.0]}, compiled.evaluate)
    assert result.tolist() == [False, True, False]


def test_result_dtypes_follow_the_cel_type() -> None:
    columns = {"i": np.array([1, 2]), "x": np.array([1.0, 2.5]), "p": np.array([True, False])}
    cases = [("p", "bool", np.bool_), ("i + 1", "int", np.int64), ("x * 2.0", "double", np.float64)]
    for expr, kind, dtype in cases:
        compiled, kernel = _kernel(expr)
        assert kernel.result_kind == kind
        result = kernel(columns, compiled.evaluate)
        assert result.dtype == dtype
        assert result.tolist() == [compiled.evaluate(_row(columns, row)) for row in range(2)]


def test_empty_columns_give_an_empty_result() -> None:
    compiled, kernel = _kernel("i > 1")
    assert kernel({"i": np.array([], dtype=np.int64)}, compiled.evaluate).tolist() == []


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"i": np.array([1, 2])}, "'x' is missing"),
        ({"i": np.array([1, 2]), "x": np.array([1.0])}, "'x' has 1 rows"),
        ({"i": np.array([[1, 2]]), "x": np.array([1.0])}, "'i' must be one-dimensional"),
        ({"i": np.array(3), "x": np.array([1.0])}, "'i' must be one-dimensional"),
        ({"i": np.array([1.5, 2.0]), "x": np.array([1.0, 2.0])}, "'i' has dtype float64"),
        ({"i": np.array(["a", "b"]), "x": np.array([1.0, 2.0])}, "'i' has dtype <U1"),
    ],
)
def test_bad_columns_are_invalid_input(columns: dict[str, Any], message: str) -> None:
    compiled, kernel = _kernel("i > x")
    with pytest.raises(InvalidInput, match=message):
        kernel(columns, compiled.evaluate)


def test_columns_of_other_exact_dtypes_and_lists_are_converted() -> None:
    compiled, kernel = _kernel("i + 1 > x")
    columns = {"i": np.array([1, 2], dtype=np.int8), "x": [2.5, 2.5]}
    assert kernel(columns, compiled.evaluate).tolist() == [False, True]


def test_importing_rules_does_not_import_numba() -> None:
    code = "import sys, trusswork.rules, trusswork.rules._jit; print('numba' in sys.modules)"
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert output.stdout.strip() == "False"


def test_serial_kernel_agrees_with_parallel() -> None:
    compiled = compile_expression("i % 3 == 0 ? x : -x", DECLARATIONS)
    serial = numeric_kernel(compiled._tree, compiled._checked, compiled.source, parallel=False)
    parallel = numeric_kernel(compiled._tree, compiled._checked, compiled.source)
    assert serial is not None and parallel is not None
    rows = PARALLEL_ROWS + 3
    columns = {"i": np.arange(rows), "x": np.linspace(-1.0, 1.0, rows)}
    assert np.array_equal(serial(columns, compiled.evaluate), parallel(columns, compiled.evaluate))
    assert any(parallel_flag for parallel_flag, _ in parallel._compiled), (
        "long columns did not take the parallel kernel"
    )


def test_threads_evaluating_at_once_all_get_exact_results() -> None:
    # Only one parallel kernel runs at a time; the others take the serial one.
    compiled, kernel = _kernel("i * 2 > j && x < 0.5")
    rows = PARALLEL_ROWS * 2
    rng = np.random.default_rng(3)
    columns = {"i": rng.integers(-100, 100, rows), "j": rng.integers(-100, 100, rows),
               "x": rng.random(rows)}  # fmt: skip
    expected = (columns["i"] * 2 > columns["j"]) & (columns["x"] < 0.5)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: kernel(columns, compiled.evaluate), range(8)))
    assert all(np.array_equal(result, expected) for result in results)


def test_a_forked_child_evaluates_with_the_serial_kernel() -> None:
    code = """
import os, numpy as np
from trusswork.rules import compile
from trusswork.rules._jit import PARALLEL_ROWS
rule = compile("x > 0.5", {"x": "double"})
columns = {"x": np.linspace(0, 1, PARALLEL_ROWS)}
parent = rule.evaluate_columns(columns)
pid = os.fork()
if pid == 0:
    child = rule.evaluate_columns(columns)
    serial = any(not parallel for parallel, _ in rule._kernel._compiled)
    os._exit(0 if np.array_equal(child, parent) and serial else 3)
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status))
"""
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert output.stdout.strip() == "0", output.stderr
