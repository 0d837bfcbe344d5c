"""Conformance of ``trusswork.rules`` with the Common Expression Language (cel-spec).

The cases live in ``conformance_cases.py``, one table per outcome, grouped by
the areas of cel-spec's simple conformance suite; each pytest id is the case's
``"<area>/<name>"``. What is asserted:

* values: the expression compiles and evaluates to the expected value with
  the expected Python type (``1u`` is a ``UInt``, ``1`` an ``int`` and never
  a ``bool``, ``1.0`` a ``float``; NaN by ``math.isnan``, ``-0.0`` by its
  sign; timestamps are aware and in UTC), recursively through lists and maps;
* runtime errors: the expression compiles, and evaluating it raises
  ``EvaluationError`` of the CEL error class cel-spec names;
* static errors: with declarations, ``compile_expression`` itself raises
  ``InvalidInput``, so a bad rule is refused before it ever runs;
* syntax errors: ``compile_expression`` raises ``ParseError`` pointing at the
  line (and, where unambiguous, the column) of the mistake.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pytest
from conformance_cases import (
    RUNTIME_ERROR_CASES,
    STATIC_ERROR_CASES,
    SYNTAX_ERROR_CASES,
    VALUE_CASES,
    RuntimeErrorCase,
    StaticErrorCase,
    SyntaxErrorCase,
    ValueCase,
)

from trusswork import rules
from trusswork.core.errors import InvalidInput, ParseError
from trusswork.rules import CelType, EvaluationError, UInt

# ``compile_expression`` is looked up when each test runs, not imported at the top: until
# the compiler lands every case fails on its own instead of the whole suite failing to collect.


def _params(cases: list[Any]) -> list[Any]:
    return [pytest.param(case, id=case.id) for case in cases]


def assert_cel_equal(actual: object, expected: object, where: str = "result") -> None:
    """Assert ``actual`` is ``expected`` as a CEL value: same value and same CEL type.

    Plain ``==`` is not enough in Python: ``True == 1``, ``UInt(1) == 1`` and
    ``1 == 1.0`` all hold, while in CEL these are values of different types.
    """
    if isinstance(expected, bool):
        assert type(actual) is bool, f"{where}: {actual!r} is not a bool"
        assert actual is expected, f"{where}: {actual!r} != {expected!r}"
    elif isinstance(expected, UInt):
        assert type(actual) is UInt, f"{where}: {actual!r} is not a UInt"
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"
    elif isinstance(expected, int):
        assert type(actual) is int, f"{where}: {actual!r} is not an int"
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"
    elif isinstance(expected, float):
        assert type(actual) is float, f"{where}: {actual!r} is not a float"
        if math.isnan(expected):
            assert math.isnan(actual), f"{where}: {actual!r} is not NaN"
        else:
            assert actual == expected, f"{where}: {actual!r} != {expected!r}"
            assert math.copysign(1.0, actual) == math.copysign(1.0, expected), (
                f"{where}: {actual!r} has the wrong sign"
            )
    elif expected is None:
        assert actual is None, f"{where}: {actual!r} is not null"
    elif isinstance(expected, str | bytes | dt.timedelta):
        assert type(actual) is type(expected), f"{where}: {actual!r} is not {type(expected)}"
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"
    elif isinstance(expected, dt.datetime):
        assert isinstance(actual, dt.datetime), f"{where}: {actual!r} is not a datetime"
        assert actual.tzinfo is not None, f"{where}: {actual!r} is naive"
        assert actual.utcoffset() == dt.timedelta(0), f"{where}: {actual!r} is not in UTC"
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"
    elif isinstance(expected, CelType):
        assert isinstance(actual, CelType), f"{where}: {actual!r} is not a CelType"
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{where}: {actual!r} is not a list"
        assert len(actual) == len(expected), f"{where}: {actual!r} != {expected!r}"
        for index, (got, want) in enumerate(zip(actual, expected, strict=True)):
            assert_cel_equal(got, want, f"{where}[{index}]")
    elif isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: {actual!r} is not a map"
        assert len(actual) == len(expected), f"{where}: {actual!r} != {expected!r}"
        for key, want in expected.items():
            assert key in actual, f"{where}: key {key!r} missing from {actual!r}"
            stored_key = next(k for k in actual if k == key)
            assert_cel_equal(stored_key, key, f"{where} key {key!r}")
            assert_cel_equal(actual[key], want, f"{where}[{key!r}]")
    else:
        raise AssertionError(f"the table holds an unsupported expected value {expected!r}")


@pytest.mark.parametrize("case", _params(VALUE_CASES))
def test_expression_evaluates_to_value(case: ValueCase) -> None:
    program = rules.compile_expression(case.expr, case.declarations)

    result = program.evaluate(dict(case.bindings))

    assert_cel_equal(result, case.expected)


@pytest.mark.parametrize("case", _params(RUNTIME_ERROR_CASES))
def test_expression_raises_runtime_error(case: RuntimeErrorCase) -> None:
    program = rules.compile_expression(case.expr, case.declarations)

    with pytest.raises(EvaluationError) as caught:
        program.evaluate(dict(case.bindings))

    if case.kind is not None:
        assert caught.value.kind == case.kind, str(caught.value)


@pytest.mark.parametrize("case", _params(STATIC_ERROR_CASES))
def test_checker_rejects_expression_at_compile_time(case: StaticErrorCase) -> None:
    with pytest.raises(InvalidInput) as caught:
        rules.compile_expression(case.expr, case.declarations)

    assert not isinstance(caught.value, EvaluationError), str(caught.value)


@pytest.mark.parametrize("case", _params(SYNTAX_ERROR_CASES))
def test_syntax_error_raises_parse_error_with_position(case: SyntaxErrorCase) -> None:
    with pytest.raises(ParseError) as caught:
        rules.compile_expression(case.expr)

    error = caught.value
    assert error.line == case.line, str(error)
    lines = case.expr.split("\n")
    assert error.column is not None, str(error)
    assert 1 <= error.column <= len(lines[case.line - 1]) + 1, str(error)
    if case.column is not None:
        assert error.column == case.column, str(error)


def test_syntax_error_is_parse_error_even_with_declarations() -> None:
    with pytest.raises(ParseError):
        rules.compile_expression("x +", {"x": "int"})


def test_compiled_expression_is_reusable_with_new_bindings() -> None:
    program = rules.compile_expression("x * 2 + 1", {"x": "int"})

    assert [program.evaluate({"x": n}) for n in (0, 1, 20)] == [1, 3, 41]
