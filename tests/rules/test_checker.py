"""The static checker as users meet it: every error at once, in the right place, and warnings.

Errors come back together in one :class:`RuleCheckError` whose diagnostics
point at the right line and column and whose message draws a caret there;
declarations may be CEL type text, Python classes or nested types; warnings
(always-true/false conditions, unreachable branches, contradictory ranges,
shadowed comprehension variables) never stop a compile.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import examples
from trusswork.core.errors import InvalidInput, ParseError
from trusswork.rules import (
    CompiledExpression,
    Diagnostic,
    EvaluationError,
    RuleCheckError,
    UInt,
    compile,
    compile_expression,
)


def check_errors(expr: str, declarations: dict[str, Any] | None) -> list[Diagnostic]:
    """The error diagnostics ``expr`` fails with (the test fails if it compiles)."""
    with pytest.raises(RuleCheckError) as caught:
        compile_expression(expr, declarations)
    return caught.value.errors


def codes(items: list[Diagnostic]) -> list[str]:
    return [item.code for item in items]


def caret_column(rendered: str) -> int:
    """The 1-based column a rendered snippet's caret points at, in its source line."""
    lines = rendered.splitlines()
    caret = next(i for i, line in enumerate(lines) if line.rstrip().endswith("^"))
    source_line = lines[caret - 1]
    gutter = source_line.index("| ") + 2
    return lines[caret].index("^") - gutter + 1


# -- several errors in one run ------------------------------------------------------


def test_all_errors_of_one_expression_are_reported_together() -> None:
    decl = {"x": "int", "y": "string", "z": "int"}
    with pytest.raises(RuleCheckError) as caught:
        compile_expression("x + 'a' == 1 && y > 1 && z.foo == 2", decl)
    error = caught.value
    places = [(item.line, item.column) for item in error.errors]
    assert places == [(1, 1), (1, 17), (1, 26)]
    assert all(item.severity == "error" for item in error.errors)
    assert str(error).startswith("3 errors:")
    assert "'_+_' applied to (int, string)" in str(error)
    assert "'_>_' applied to (string, int)" in str(error)
    assert "selecting 'foo'" in str(error)


def test_the_error_is_positioned_at_the_first_diagnostic() -> None:
    with pytest.raises(RuleCheckError) as caught:
        compile_expression("1 + 1 == 2 && nope && alsonope", {})
    error = caught.value
    assert isinstance(error, ParseError)
    assert (error.line, error.column) == (1, 15)
    assert [item.column for item in error.errors] == [15, 23]


def test_each_rendered_diagnostic_has_a_caret_under_its_column() -> None:
    source = "size(flag) > 0 && count.name == 'x'"
    with pytest.raises(RuleCheckError) as caught:
        compile_expression(source, {"flag": "bool", "count": "int"})
    for item in caught.value.errors:
        rendered = item.render()
        assert rendered.startswith(f"<input>:{item.line}:{item.column}: error: ")
        assert caret_column(rendered) == item.column
        assert source in rendered


def test_multi_line_expression_reports_line_and_column_of_each_error() -> None:
    source = "a > 1 &&\n  b.startsWith('x') &&\n      c[0] == 'q'"
    with pytest.raises(RuleCheckError) as caught:
        compile_expression(source, {"a": "string", "b": "int", "c": "map(string, string)"})
    places = [(item.line, item.column) for item in caught.value.errors]
    assert places == [(1, 1), (2, 3), (3, 9)]
    third = caught.value.errors[2].render()
    assert "  3 |       c[0] == 'q'" in third
    assert caret_column(third) == 9


def test_filename_appears_in_diagnostics() -> None:
    with pytest.raises(RuleCheckError) as caught:
        compile_expression("missing > 1", {}, filename="alerts.cel")
    assert caught.value.errors[0].filename == "alerts.cel"
    assert str(caught.value).startswith("alerts.cel:1:1: error: ")


def test_diagnostic_to_dict_carries_position_and_code() -> None:
    with pytest.raises(RuleCheckError) as caught:
        compile_expression("x\n  && missing", {"x": "bool"})
    assert caught.value.errors[0].to_dict() == {
        "severity": "error",
        "code": "undeclared",
        "message": "undeclared reference to 'missing'",
        "file": None,
        "line": 2,
        "column": 6,
    }


# -- undeclared names and functions -------------------------------------------------


def test_undeclared_variable_is_an_error_with_declarations() -> None:
    errors = check_errors("status > 1 && other", {"status": "int"})
    assert codes(errors) == ["undeclared"]
    assert errors[0].message == "undeclared reference to 'other'"
    assert errors[0].column == 15


def test_without_declarations_every_name_is_a_dynamic_input() -> None:
    expression = compile_expression("status > 1 && other")
    assert expression.variables == {"status", "other"}
    assert expression.result_type == "bool"
    assert expression.evaluate({"status": 2, "other": True}) is True


def test_undeclared_function_is_a_static_error_with_declarations() -> None:
    errors = check_errors("frobnicate(x) || x.wibble()", {"x": "int"})
    assert codes(errors) == ["undeclared", "undeclared"]
    assert "function 'frobnicate'" in errors[0].message
    assert "function 'wibble'" in errors[1].message


def test_undeclared_function_is_a_runtime_error_when_unchecked() -> None:
    # As CEL prescribes for unchecked expressions: an error that || may absorb.
    assert compile_expression("frobnicate(1) || true").evaluate({}) is True
    with pytest.raises(EvaluationError) as caught:
        compile_expression("x.wibble() && true").evaluate({"x": 1})
    assert caught.value.kind == "no matching overload"
    assert "'wibble'" in str(caught.value)


# -- type errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "declarations", "fragment"),
    [
        ("x - 'a'", {"x": "int"}, "'_-_' applied to (int, string)"),
        ("x % 2.0", {"x": "double"}, "'_%_' applied to (double, double)"),
        ("x * y", {"x": "int", "y": "uint"}, "'_*_' applied to (int, uint)"),
        ("x < 'b'", {"x": "bool"}, "'_<_' applied to (bool, string)"),
        ("x == 'b'", {"x": "int"}, "'_==_' applied to (int, string)"),
        ("1 in x", {"x": "string"}, "'_in_' applied to (int, string)"),
        ("-x", {"x": "string"}, "'-_' applied to (string)"),
        ("!x", {"x": "int"}, "the operand of '!' must be a bool, not int"),
        ("x && true", {"x": "string"}, "an operand of '&&' must be a bool, not string"),
    ],
)
def test_operator_type_errors(expr: str, declarations: dict[str, str], fragment: str) -> None:
    errors = check_errors(expr, declarations)
    assert len(errors) == 1
    assert fragment in errors[0].message


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [
        ("size(n)", "no matching overload for 'size' applied to (int)"),
        ("s.startsWith(1)", "'string.startsWith' applied to (string, int)"),
        ("n.contains('a')", "'int.contains' applied to (int, string)"),
        ("int(l)", "'int' applied to (list(int))"),
        ("size(s, s)", "'size' applied to (string, string)"),
    ],
)
def test_function_type_errors(expr: str, fragment: str) -> None:
    errors = check_errors(expr, {"n": "int", "s": "string", "l": "list(int)"})
    assert codes(errors) == ["type-error"]
    assert fragment in errors[0].message


@pytest.mark.parametrize(
    ("expr", "fragment", "column"),
    [
        ("n.field", "type 'int' has no fields (selecting 'field')", 1),
        ("ints.field", "cannot select field 'field' from a map(int, string)", 1),
        ("l['a']", "a list index must be an int, not string", 3),
        ("m[1]", "a map(string, list(int)) has no key of type int", 3),
        ("n[0]", "type 'int' does not support indexing", 1),
    ],
)
def test_selection_and_indexing_type_errors(expr: str, fragment: str, column: int) -> None:
    declarations = {
        "n": "int",
        "ints": "map(int, string)",
        "l": "list(int)",
        "m": "map(string, list(int))",
    }
    errors = check_errors(expr, declarations)
    assert fragment in errors[0].message
    assert errors[0].column == column


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [
        ("n ? 1 : 2", "the condition of '?:' must be a bool, not int"),
        ("l.all(v, v + 1)", "the predicate of all() must be a bool, not int"),
        ("l.exists(v, 'x')", "the predicate of exists() must be a bool, not string"),
        ("l.map(v, v, v * 2)", "the filter of map() must be a bool, not int"),
        ("n.all(v, true)", "cannot iterate over a int"),
    ],
)
def test_condition_type_errors(expr: str, fragment: str) -> None:
    errors = check_errors(expr, {"n": "int", "l": "list(int)"})
    assert fragment in errors[0].message


def test_rule_condition_must_be_bool() -> None:
    with pytest.raises(RuleCheckError) as caught:
        compile("count + 1", {"count": "int"})
    assert caught.value.errors[0].message == "a rule's condition must be a bool, not int"


def test_nested_declared_types_flow_through_selection_and_indexing() -> None:
    declarations = {"m": "map(string, list(int))"}
    expression = compile_expression("m.scores[1] + m['scores'][0]", declarations)
    assert expression.result_type == "int"
    assert expression.evaluate({"m": {"scores": [4, 5]}}) == 9
    errors = check_errors("m.scores[0].startsWith('a')", declarations)
    assert "'int.startsWith'" in errors[0].message


def test_type_errors_without_declarations_are_left_to_run_time() -> None:
    expression = compile_expression("x + 'a'")
    assert expression.evaluate({"x": "b"}) == "ba"
    with pytest.raises(EvaluationError):
        expression.evaluate({"x": 1})


# -- declarations ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "shown"),
    [
        ("int", "int"),
        ("  list( string )", "list(string)"),
        ("map(string, list(int))", "map(string, list(int))"),
        ("map(int, map(string, bool))", "map(int, map(string, bool))"),
        ("timestamp", "google.protobuf.Timestamp"),
        ("google.protobuf.Duration", "google.protobuf.Duration"),
        ("dyn", "dyn"),
        (int, "int"),
        (str, "string"),
        (float, "double"),
        (bytes, "bytes"),
        (bool, "bool"),
        (UInt, "uint"),
        (dt.datetime, "google.protobuf.Timestamp"),
        (dt.timedelta, "google.protobuf.Duration"),
        (list, "list(dyn)"),
        (dict, "map(dyn, dyn)"),
    ],
)
def test_declarations_as_text_or_python_classes(spec: Any, shown: str) -> None:
    assert compile_expression("x", {"x": spec}).result_type == shown


def test_python_class_declarations_are_type_checked() -> None:
    declarations = {"n": int, "s": str, "u": UInt, "when": dt.datetime}
    expression = compile_expression(
        "n > 0 && s.size() > 0 && u > 1u && when.getFullYear() > 2000", declarations
    )
    moment = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    assert expression.evaluate({"n": 1, "s": "a", "u": UInt(2), "when": moment}) is True
    errors = check_errors("n + s == 1 || u + n > 1u", declarations)
    assert len(errors) == 2


@pytest.mark.parametrize(
    "declarations",
    [
        {"x": "integer"},
        {"x": "list(int"},
        {"x": "list(int, int)"},
        {"x": "map(string)"},
        {"x": "map(list(int), int)"},
        {"x": "map(double, int)"},
        {"x": "int(string)"},
        {"x": "list()"},
        {"x": ""},
        {"x": "int; import os"},
        {"x": object},
        {"x": set},
        {"x": 3},
        {"x": None},
        {"1x": "int"},
        {"a-b": "int"},
        {5: "int"},
    ],
)
def test_invalid_declarations_are_invalid_input(declarations: dict[Any, Any]) -> None:
    with pytest.raises(InvalidInput) as caught:
        compile_expression("true", declarations)
    assert not isinstance(caught.value, ParseError)


def test_declarations_must_be_a_mapping() -> None:
    with pytest.raises(InvalidInput):
        compile_expression("x", ["x"])  # type: ignore[arg-type]


# -- warnings ------------------------------------------------------------------------


def warnings_of(expr: str, declarations: dict[str, Any] | None = None) -> list[Diagnostic]:
    expression = compile_expression(expr, declarations)
    assert isinstance(expression, CompiledExpression)
    return expression.warnings


def test_constant_operand_makes_condition_always_true() -> None:
    found = warnings_of("x > 1 || true", {"x": "int"})
    assert codes(found) == ["always-true"]
    assert found[0].severity == "warning"
    assert found[0].column == 10


def test_constant_false_operand_makes_and_always_false() -> None:
    found = warnings_of("x > 1 && false", {"x": "int"})
    assert codes(found) == ["always-false"]


def test_constant_absorbing_left_operand_makes_right_unreachable() -> None:
    found = warnings_of("false && x > 1", {"x": "int"})
    assert codes(found) == ["unreachable"]
    assert "'x > 1' is never evaluated" in found[0].message


def test_unreachable_ternary_branch() -> None:
    found = warnings_of("1 < 2 ? x : x + 1", {"x": "int"})
    assert codes(found) == ["unreachable"]
    assert "'x + 1' is never evaluated" in found[0].message
    assert (found[0].line, found[0].column) == (1, 1)


@pytest.mark.parametrize(
    "expr",
    [
        "x > 5 && x < 3",
        "x == 1 && x == 2",
        "x > 5 && x <= 5",
        "x >= 5 && x < 5",
        "3 > x && x > 5",
        "x > 1 && y && x < 0",
        "m.a > 10.5 && m.a < 2",
        "x > 1 && (x < 10 && x > 20)",
    ],
)
def test_contradictory_range_is_always_false(expr: str) -> None:
    found = warnings_of(expr, {"x": "int", "y": "bool", "m": "map(string, double)"})
    assert "always-false" in codes(found)
    assert "can never all be true" in found[-1].message


@pytest.mark.parametrize(
    "expr",
    [
        "x > 5 && x < 10",
        "x >= 5 && x <= 5",
        "x == 5 && x >= 5",
        "x > 5 && y < 3",
        "x > 5 || x < 3",
        "x != 1 && x != 2",
        "x > 5 && double(x) < 3.0",
    ],
)
def test_satisfiable_ranges_give_no_warning(expr: str) -> None:
    assert warnings_of(expr, {"x": "int", "y": "int"}) == []


def test_no_contradiction_warning_for_large_int_bounds_that_a_value_satisfies() -> None:
    expression = compile_expression("x > 9007199254740992 && x <= 9007199254740993", {"x": "int"})
    assert expression.evaluate({"x": 9007199254740993}) is True
    assert expression.warnings == []


_RELATIONS = st.sampled_from(["<", "<=", ">", ">=", "=="])
_BOUNDS = st.integers(min_value=-(2**40), max_value=2**40)


@settings(max_examples=examples(200), deadline=None)
@given(op1=_RELATIONS, a=_BOUNDS, op2=_RELATIONS, b=_BOUNDS, flip=st.booleans())
def test_an_always_false_warning_is_never_wrong(
    op1: str, a: int, op2: str, b: int, flip: bool
) -> None:
    second = f"{b} {_MIRROR[op2]} x" if flip else f"x {op2} {b}"
    expression = compile_expression(f"x {op1} {a} && {second}", {"x": "int"})
    warned = "always-false" in codes(expression.warnings)
    candidates = {a - 1, a, a + 1, b - 1, b, b + 1, (a + b) // 2}
    satisfied = [x for x in candidates if expression.evaluate({"x": x})]
    assert not (warned and satisfied), f"warned always-false but x in {satisfied} matches"


_MIRROR = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "=="}


def test_comprehension_variable_shadowing_an_input_is_a_warning() -> None:
    found = warnings_of("l.all(x, x > 0)", {"x": "int", "l": "list(int)"})
    assert codes(found) == ["shadowed"]
    assert found[0].column == 7
    assert "'x' shadows a variable" in found[0].message


def test_comprehension_variable_shadowing_an_enclosing_one_is_a_warning() -> None:
    found = warnings_of("l.all(y, l.exists(y, y > 0))", {"l": "list(int)"})
    assert codes(found) == ["shadowed"]
    assert found[0].column == 19
    assert "enclosing comprehension variable" in found[0].message


def test_inner_shadowing_variable_refers_to_the_inner_element() -> None:
    expression = compile_expression("l.all(y, l.exists(y, y == 3))", {"l": "list(int)"})
    assert expression.evaluate({"l": [1, 3]}) is True
    assert expression.evaluate({"l": [1, 2]}) is False


def test_warnings_do_not_stop_compilation_of_expressions() -> None:
    expression = compile_expression("x > 5 && x < 3", {"x": "int"})
    assert codes(expression.warnings) == ["always-false"]
    assert expression.evaluate({"x": 4}) is False


def test_warnings_do_not_stop_compilation_of_rules() -> None:
    rule = compile("x > 1 || true", {"x": "int"})
    assert codes(rule.warnings) == ["always-true"]
    assert rule(x=0) is True


def test_warnings_are_kept_alongside_errors() -> None:
    with pytest.raises(RuleCheckError) as caught:
        compile_expression("(x > 1 || true) && nope", {"x": "int"})
    error = caught.value
    assert codes(error.errors) == ["undeclared"]
    assert "always-true" in codes(error.diagnostics)
    assert "warning" not in str(error)


def test_a_clean_expression_has_no_warnings() -> None:
    assert warnings_of("x > 1 && s.startsWith('a')", {"x": "int", "s": "string"}) == []


def test_two_variable_comprehensions_type_their_index_key_and_value() -> None:
    declarations = {"m": "map(string, int)", "l": "list(string)"}
    expression = compile_expression(
        "m.exists(k, v, k.startsWith('a') && v > 1) && l.all(i, s, i >= 0 && size(s) > 0)",
        declarations,
    )
    assert expression.evaluate({"m": {"ab": 2}, "l": ["x"]}) is True
    assert expression.evaluate({"m": {"ab": 1}, "l": ["x"]}) is False
    errors = check_errors(
        "m.all(k, v, v.startsWith('a')) || l.all(i, s, i.size() > 0)", declarations
    )
    assert codes(errors) == ["type-error", "type-error"]
