"""Safety of compiled rules: no way out to Python objects, bounded work, no crash on any input.

* Dunder names, builtins and attribute-looking selections are either compile
  errors or plain data access on the bindings: evaluating ``x.__class__`` on
  a dict is a "no such key" error, never the dict's class.
* The generated source only names its bindings, its helpers and four safe
  builtins, and touches no attribute but ``startswith``/``endswith``.
* Comprehension nesting and estimated cost are bounded at compile time, deep
  nesting and over-long sources are a ParseError (never a RecursionError).
* Fuzzing: any text is compiled or rejected with ParseError/InvalidInput; any
  compiled expression evaluated over random bindings gives a value or an
  EvaluationError. ``TRUSSWORK_FUZZ=1`` raises the budgets fiftyfold.
"""

from __future__ import annotations

import ast
import contextlib
import re
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import examples
from trusswork.core.errors import InvalidInput, ParseError
from trusswork.rules import (
    CompiledExpression,
    EvaluationError,
    RuleCheckError,
    UInt,
    compile,
    compile_expression,
    compile_rules,
)
from trusswork.rules import _runtime as runtime
from trusswork.rules._limits import MAX_COST, MAX_NESTING
from trusswork.rules._parser import MAX_DEPTH, MAX_LENGTH

# -- no way out to Python objects -------------------------------------------------------


@pytest.mark.parametrize("declarations", [None, {"x": "dyn"}, {"x": "map(string, dyn)"}])
@pytest.mark.parametrize(
    "expr", ["x.__class__", "x['__class__']", "x.__dict__", "x.keys", "x.__class__.__name__"]
)
def test_dunder_selection_on_a_dict_is_a_missing_key(
    expr: str, declarations: dict[str, str] | None
) -> None:
    expression = compile_expression(expr, declarations)
    with pytest.raises(EvaluationError) as caught:
        expression.evaluate({"x": {"a": 1}})
    assert caught.value.kind == "no such key"
    assert "<class" not in str(caught.value)


def test_dunder_key_that_is_present_is_plain_data() -> None:
    expression = compile_expression("x.__class__")
    assert expression.evaluate({"x": {"__class__": "just a string"}}) == "just a string"


def test_dunder_selection_on_a_literal_map_is_a_missing_key() -> None:
    with pytest.raises(EvaluationError) as caught:
        compile_expression("{}.__init__").evaluate({})
    assert caught.value.kind == "no such key"


@pytest.mark.parametrize("value", [1, "text", b"bytes", 1.5, True, None, [1]])
def test_selection_on_non_maps_never_reads_python_attributes(value: Any) -> None:
    expression = compile_expression("x.__class__")
    with pytest.raises(EvaluationError) as caught:
        expression.evaluate({"x": value})
    assert "<class" not in str(caught.value)


def test_selection_on_an_arbitrary_object_does_not_read_its_attributes() -> None:
    touched: list[str] = []

    class Secretive:
        @property
        def secret(self) -> str:
            touched.append("secret")
            return "leaked"

    with pytest.raises(EvaluationError):
        compile_expression("x.secret == 'leaked'").evaluate({"x": Secretive()})
    assert touched == []


@pytest.mark.parametrize(
    "expr",
    [
        "__import__('os')",
        "exec('1')",
        "eval('1 + 1')",
        "open('/etc/passwd')",
        "globals()",
        "locals()",
        "getattr(x, 'y')",
        "vars(x)",
        "x.__getattribute__('y')",
        "x.__class__()",
        "x.format('{0.__class__}')",
        "'{0.__class__}'.format(x)",
    ],
)
def test_python_builtins_and_methods_are_undeclared_functions(expr: str) -> None:
    # Checked, each is a compile error; unchecked, a CEL runtime error: never a Python call.
    with pytest.raises(RuleCheckError) as caught:
        compile_expression(expr, {"x": "dyn"})
    assert [item.code for item in caught.value.errors] == ["undeclared"]
    with pytest.raises(EvaluationError) as raised:
        compile_expression(expr).evaluate({"x": {"y": 1}})
    assert raised.value.kind == "no matching overload"


@pytest.mark.parametrize("expr", ["().__class__", "lambda: 1", "x[1:2]"])
def test_python_syntax_is_a_parse_error(expr: str) -> None:
    with pytest.raises(ParseError):
        compile_expression(expr)


@pytest.mark.parametrize(
    "name", ["exec", "eval", "open", "globals", "__builtins__", "__import__", "_m", "_exact"]
)
def test_python_names_are_plain_variables(name: str) -> None:
    expression = compile_expression(name)
    with pytest.raises(EvaluationError) as caught:
        expression.evaluate({})
    assert caught.value.kind == "no such attribute"
    assert expression.evaluate({name: 42}) == 42


def test_comprehension_variables_cannot_reach_generated_names() -> None:
    expression = compile_expression("[1, 2].map(_m, _m + 1) == [2, 3] && _m == 'outer'")
    assert expression.evaluate({"_m": "outer"}) is True


def test_a_string_bound_to_a_declared_list_is_not_searched_as_text() -> None:
    expression = compile_expression("'admin' in roles", {"roles": "list(string)"})
    with pytest.raises(EvaluationError):
        expression.evaluate({"roles": "superadmin"})


@pytest.mark.parametrize(
    ("expr", "declared"),
    [
        ("x.startsWith('a')", "string"),
        ("x.endsWith('a')", "string"),
        ("size(x) > 0", "string"),
        ("x.contains('a')", "string"),
        ("x.y == 1", "map(string, int)"),
        ("'a' in x", "map(string, int)"),
        ("x.all(a, a)", "list(bool)"),
    ],
)
def test_methods_of_a_wrongly_typed_binding_are_never_called(expr: str, declared: str) -> None:
    called: list[str] = []

    class Impostor:
        def startswith(self, prefix: str) -> bool:
            called.append("startswith")
            return True

        def endswith(self, suffix: str) -> bool:
            called.append("endswith")
            return True

        def __len__(self) -> int:
            called.append("__len__")
            return 3

        def __contains__(self, item: object) -> bool:
            called.append("__contains__")
            return True

        def __getitem__(self, key: object) -> int:
            called.append("__getitem__")
            return 1

        def __iter__(self) -> Any:
            called.append("__iter__")
            return iter([True])

    expression = compile_expression(expr, {"x": declared})
    with pytest.raises(EvaluationError):
        expression.evaluate({"x": Impostor()})
    assert called == []


def _nested_list(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("expr", ["x == y", "x in [y]", "x.exists(e, e == y)"])
def test_deeply_nested_input_values_give_an_evaluation_error(expr: str) -> None:
    expression = compile_expression(expr)
    with pytest.raises(EvaluationError):
        expression.evaluate({"x": _nested_list(5000), "y": _nested_list(5000)})


# -- the generated source -----------------------------------------------------------

_HELPERS = {"_" + name.rstrip("_") for name in dir(runtime) if not name.startswith("__")}
_FIXED_NAMES = {
    "_m",
    "_exact",
    "_evaluate",
    "_error",
    "_variable",
    "_overflow",
    "_convert",
    "_EvaluationError",
    "_FALLBACK",
    "Exception",
    "_type",
    "_mismatch",
    "_typed",
    "len",
    "all",
    "any",
    "sum",
}
# Locals: comprehension variables, temporaries, constants, checked inputs (_i0) and
# the classes the fast path checks inputs against (_c_int, _c_str, ...).
_LOCAL_NAME = re.compile(
    r"_[vtki][0-9]+|_c_(?:int|UInt|float|str|bytes|bool|list|dict|datetime|timedelta)"
)
_ATTRIBUTES = {"startswith", "endswith"}

_AUDIT_DECLARATIONS = {
    "s": "string",
    "l": "list(int)",
    "n": "int",
    "m": "map(string, int)",
    "x": "list(double)",
    "a": "int",
    "b": "int",
    "c": "int",
    "t": "string",
    "d": "string",
}
AUDITED = [
    "s.startsWith('a') && s.endsWith('z') && s.contains('m')",
    "size(l) > n && m.k in l && x.exists(v, v > 1.5)",
    "a + b * 2 - c > 0 ? [1, 2].map(v, v * a) : {'k': a}.k",
    "has(m.__init__) && m.filter(k, k.startsWith('_')).size() == 0",
    "timestamp(t).getFullYear() > 2000 && duration('1s') < duration(d)",
    "l.exists_one(v, v == n) && l.all(v, l.exists(w, w == v)) && type(n) == int",
]
AUDITED_DYNAMIC = [
    "x.__class__ == 1 && y['__dict__'] == 2 || z.exists(q, q.__len__ > 0)",
    "exec == eval && open != globals && _m == _exact",
    "a.b.c + d[0] - -e * f / g % h > 1 ? [i] + [j] : {k: l}",
]


def audit(source: str) -> None:
    """Fail if generated ``source`` names or touches anything outside the allow-list."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name):
            allowed = node.id in _FIXED_NAMES or node.id in _HELPERS
            assert allowed or _LOCAL_NAME.fullmatch(node.id), node.id
        elif isinstance(node, ast.Attribute):
            assert node.attr in _ATTRIBUTES, node.attr
        elif isinstance(node, ast.arg):
            assert node.arg == "_m" or _LOCAL_NAME.fullmatch(node.arg), node.arg
        assert not isinstance(node, ast.Import | ast.ImportFrom | ast.Global | ast.Nonlocal)


@pytest.mark.parametrize("expr", AUDITED)
def test_generated_source_of_typed_expressions_passes_the_audit(expr: str) -> None:
    audit(compile_expression(expr, _AUDIT_DECLARATIONS).python_source())


@pytest.mark.parametrize("expr", AUDITED_DYNAMIC)
def test_generated_source_of_dynamic_expressions_passes_the_audit(expr: str) -> None:
    audit(compile_expression(expr).python_source())


def test_rule_source_is_audited_the_same_way() -> None:
    rule = compile("x.__class__ == 'a' || size(l) > 0", {"x": "map(string, string)", "l": "list"})
    audit(rule.python_source())


def test_dunder_keys_appear_only_as_string_constants() -> None:
    source = compile_expression("x.__class__ == x['__bases__']").python_source()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute):
            assert "__" not in node.attr
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and "__" in node.value:
            assert node.value in ("__class__", "__bases__")


# -- bounds on work -----------------------------------------------------------------


def caret_column(text: str) -> int:
    lines = text.splitlines()
    caret = lines[-1]
    gutter = lines[-2].index("| ") + 2
    return caret.index("^") - gutter + 1


def test_comprehensions_nested_beyond_the_limit_are_a_compile_error_with_a_caret() -> None:
    expr = "l.all(a, l.all(b, l.all(c, l.all(d, d > 0))))"
    with pytest.raises(RuleCheckError) as caught:
        compile_expression(expr, {"l": "list(int)"})
    (error,) = caught.value.errors
    assert error.code == "limit"
    assert error.message == f"comprehensions nest 4 deep; the limit is {MAX_NESTING}"
    assert error.column == expr.index("l.all(d") + 1
    assert caret_column(error.render()) == error.column


def test_nesting_at_the_limit_over_small_literals_compiles() -> None:
    expr = "[1, 2].all(a, [3, 4].all(b, [5, 6].exists(c, a + b + c > 8)))"
    assert compile_expression(expr).evaluate({}) is True


def test_cost_over_the_bound_is_a_compile_error_with_a_caret() -> None:
    expr = "l.all(a, l.all(b, l.exists(c, a + b + c > 0)))"
    with pytest.raises(RuleCheckError) as caught:
        compile("n > 0 &&\n  " + expr, {"l": "list(int)", "n": "int"})
    (error,) = caught.value.errors
    assert error.code == "limit"
    assert f"over the limit of {MAX_COST:,}" in error.message
    assert (error.line, error.column) == (1, 1)
    assert caret_column(error.render()) == 1


def test_limits_apply_to_rules_in_rule_files() -> None:
    source = "rule heavy {\n  when: l.all(a, l.all(b, l.all(c, l.all(d, true))))\n}"
    with pytest.raises(RuleCheckError) as caught:
        compile_rules(source, {"l": "list(int)"})
    (error,) = caught.value.errors
    assert error.code == "limit"
    assert error.line == 2


DEEP = [
    "(" * 1000 + "x + 1" + ")" * 1000,
    "(" * 1000 + "1" + ")" * 1000,
    "!" * 1000 + "true",
    "!" * 1001 + "true",
    "-" * 1000 + "1",
    "-" * 1001 + "x",
    "-(" * 1000 + "1" + ")" * 1000,
    "!(" * 1000 + "true" + ")" * 1000,
    "[" * 300 + "]" * 300,
    "{1: " * 300 + "1" + "}" * 300,
    "f(" * 500 + ")" * 500,
    "a" + ".b" * 1000,
    "x" + "[0]" * 1000,
    "1" + " + 1" * 5000,
    "true" + " && true" * 5000,
    "1 == 1 ? " * 500 + "1" + " : 2" * 500,
    "[1].map(a, " * 300 + "a" + ")" * 300,
]


@pytest.mark.parametrize("expr", DEEP, ids=lambda expr: expr[:12] + "..." + str(len(expr)))
def test_deep_nesting_is_a_parse_error_or_a_correct_result_never_a_recursion_error(
    expr: str,
) -> None:
    try:
        expression = compile_expression(expr)
    except ParseError as error:
        assert not isinstance(error, RuleCheckError) or error.errors
        return
    value = expression.evaluate({"x": 1})
    assert value in (2, 1, True, -1)


@pytest.mark.parametrize(
    "expr",
    ["[" * 300 + "]" * 300, "-(" * 1000 + "1" + ")" * 1000, "x" + "[0]" * 1000],
    ids=["lists", "negations", "indexes"],
)
def test_nesting_beyond_max_depth_is_a_parse_error(expr: str) -> None:
    with pytest.raises(ParseError, match=f"more than {MAX_DEPTH} levels"):
        compile_expression(expr)


def test_deep_nesting_in_a_rule_file_is_a_parse_error() -> None:
    source = "rule deep {\n  when: " + "[" * 300 + "]" * 300 + " == []\n}"
    with pytest.raises(ParseError) as caught:
        compile_rules(source)
    assert caught.value.line == 2


def test_source_over_max_length_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="limit is"):
        compile_expression("1 + " * (MAX_LENGTH // 4) + "1")
    with pytest.raises(ParseError, match="limit is"):
        compile_rules("// " + "x" * MAX_LENGTH)


def test_source_at_max_length_compiles() -> None:
    expr = "'" + "a" * (MAX_LENGTH - 2) + "'"
    assert compile_expression(expr).evaluate({}) == "a" * (MAX_LENGTH - 2)


# -- fuzzing ----------------------------------------------------------------------------

_TOKENS = [
    *("+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "&&", "||", "!", "?", ":"),
    *(" in ", ".", ",", "(", ")", "[", "]", "{", "}", " "),
    *("0", "1", "-1", "2.5", "1e308", "9223372036854775807", "9223372036854775808"),
    *("18446744073709551615u", "1u", "0x1F", "'a'", '"b"', "b'\\xff'", "r'\\d'", "''"),
    *("'''x'''", "'\\u00e9'", "true", "false", "null", "[]", "{}"),
    *("x", "y", "m", "l", "s", "_m", "__class__", "exec", "int", "type", "dyn", "list"),
    *("size", "has", "all", "exists", "exists_one", "map", "filter", "matches"),
    *("startsWith", "contains", "timestamp", "duration", "string", "double", "uint"),
    *("getFullYear", "const", "let", "rule", "import", "//", "\n", "\\", "`", "#"),
]

_FUZZ_DECLARATIONS = {
    "x": "int",
    "y": "double",
    "m": "map(string, dyn)",
    "l": "list(int)",
    "s": "string",
}

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=0, max_value=2**64 - 1).map(UInt),
    st.floats(),
    st.text(max_size=8),
    st.binary(max_size=8),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=4), st.integers(-3, 3)), inner, max_size=4),
    ),
    max_leaves=10,
)
_BINDINGS = st.dictionaries(st.sampled_from(["x", "y", "m", "l", "s", "_m", "exec"]), _VALUES)

_ATOMS = st.sampled_from(
    [
        *("0", "1", "-1", "2.5", "-0.0", "9223372036854775807", "-9223372036854775808"),
        *("18446744073709551615u", "1u", "'a'", "''", "b'\\xff'", "true", "false", "null"),
        *("x", "y", "m", "l", "s", "m.k", "l[0]", "[]", "{}", "int", "1e308", "0.0"),
    ]
)
_BINARY = st.sampled_from(
    ["+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "&&", "||", "in"]
)
_FUNCTIONS = st.sampled_from(
    ["size", "int", "uint", "double", "string", "bytes", "bool", "type", "dyn", "timestamp"]
)
_MACROS = st.sampled_from(["all", "exists", "exists_one", "map", "filter"])


def _structured(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(inner, _BINARY, inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(st.sampled_from(["!", "-"]), inner).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(inner, inner, inner).map(lambda t: f"({t[0]} ? {t[1]} : {t[2]})"),
        st.tuples(_FUNCTIONS, inner).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(inner, inner).map(lambda t: f"{t[0]}[{t[1]}]"),
        st.tuples(inner, st.sampled_from(["k", "__class__", "size"])).map(
            lambda t: f"{t[0]}.{t[1]}"
        ),
        st.lists(inner, max_size=3).map(lambda items: f"[{', '.join(items)}]"),
        st.tuples(inner, inner).map(lambda t: f"{{{t[0]}: {t[1]}}}"),
        st.tuples(inner, _MACROS, inner).map(lambda t: f"{t[0]}.{t[1]}(e, {t[2]})"),
        st.tuples(inner, st.sampled_from(["startsWith", "contains", "matches"]), inner).map(
            lambda t: f"{t[0]}.{t[1]}({t[2]})"
        ),
    )


_SOURCES = st.one_of(
    st.text(alphabet=string.printable, max_size=60),
    st.lists(st.sampled_from(_TOKENS), max_size=25).map("".join),
    st.lists(st.sampled_from(_TOKENS), max_size=25).map(" ".join),
    st.recursive(_ATOMS, _structured, max_leaves=12),
)


def _compile_or_reject(
    source: str, declarations: dict[str, str] | None
) -> CompiledExpression | None:
    """The compiled expression, or None when it is rejected the way rejections must be."""
    try:
        return compile_expression(source, declarations)
    except InvalidInput:
        return None


def _evaluate_safely(expression: CompiledExpression, bindings: dict[str, Any]) -> None:
    with contextlib.suppress(EvaluationError):
        expression.evaluate(bindings)


_FUZZ = settings(
    max_examples=examples(300),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@_FUZZ
@given(source=_SOURCES, bindings=_BINDINGS)
def test_fuzz_without_declarations(source: str, bindings: dict[str, Any]) -> None:
    expression = _compile_or_reject(source, None)
    if expression is not None:
        _evaluate_safely(expression, bindings)
        audit(expression.python_source())


@_FUZZ
@given(source=_SOURCES, bindings=_BINDINGS)
def test_fuzz_with_declarations(source: str, bindings: dict[str, Any]) -> None:
    expression = _compile_or_reject(source, _FUZZ_DECLARATIONS)
    if expression is not None:
        _evaluate_safely(expression, bindings)


_WELL_TYPED = st.fixed_dictionaries(
    {
        "x": st.integers(min_value=-(2**63), max_value=2**63 - 1),
        "y": st.floats(),
        "m": st.dictionaries(st.text(max_size=3), _VALUES, max_size=3),
        "l": st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), max_size=4),
        "s": st.text(max_size=6),
    }
)


@_FUZZ
@given(source=_SOURCES, bindings=_WELL_TYPED)
def test_fuzz_with_declarations_and_well_typed_bindings(
    source: str, bindings: dict[str, Any]
) -> None:
    expression = _compile_or_reject(source, _FUZZ_DECLARATIONS)
    if expression is not None:
        _evaluate_safely(expression, bindings)


@_FUZZ
@given(source=_SOURCES)
def test_fuzz_rule_files(source: str) -> None:
    try:
        rules = compile_rules(f"rule fuzz {{ when: {source} }}", _FUZZ_DECLARATIONS)
    except InvalidInput:
        return
    for match in rules.evaluate({}, errors="skip"):
        assert match.rule == "fuzz"
