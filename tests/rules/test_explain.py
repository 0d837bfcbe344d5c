"""Explanations: why a rule matched or not, sub-condition by sub-condition.

The tree follows ``&&``, ``||``, ``!`` and ``?:``; leaves carry their value
(or their error) and the inputs they read; a ``let`` appears under its name;
``to_dict`` is JSON; and the verdict always agrees with :meth:`Rule.evaluate`,
checked over generated rules and inputs.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import examples
from trusswork.rules import (
    Condition,
    EvaluationError,
    Explanation,
    Rule,
    UInt,
    compile,
    compile_rules,
)

SCHEMA = {"a": "int", "b": "int", "f": "bool", "s": "string", "m": "map(string, int)"}


def leaves(condition: Condition) -> list[Condition]:
    if not condition.children:
        return [condition]
    return [leaf for child in condition.children for leaf in leaves(child)]


def test_and_chain_is_one_node_with_a_leaf_per_operand() -> None:
    rule = compile("a > 1 && b < 5 && f", SCHEMA, name="limits")
    explanation = rule.explain({"a": 2, "b": 7, "f": True})
    assert isinstance(explanation, Explanation)
    assert explanation.rule == "limits"
    assert explanation.matched is False
    root = explanation.root
    assert (root.text, root.value) == ("&&", False)
    assert [(c.text, c.value, c.inputs) for c in root.children] == [
        ("a > 1", True, {"a": 2}),
        ("b < 5", False, {"b": 7}),
        ("f", True, {"f": True}),
    ]


def test_non_match_points_at_the_false_leaf_in_the_rendering() -> None:
    rule = compile("a >= 500 && s.startsWith('/api')", {"a": "int", "s": "string"}, name="slow_api")
    text = str(rule.explain({"a": 503, "s": "/web/cart"}))
    assert text.splitlines() == [
        "rule slow_api: did not match",
        "  &&: false",
        "    a >= 500: true   (a=503)",
        "    s.startsWith('/api'): false   (s=\"/web/cart\")",
    ]


def test_or_not_and_conditional_nodes_carry_values_and_inputs() -> None:
    rule = compile("(a > 1 || b > 1) && !(f ? a == b : s == 'x')", SCHEMA)
    explanation = rule.explain({"a": 0, "b": 2, "f": True, "s": "x"})
    assert explanation.matched is True
    either, negation = explanation.root.children
    assert (either.text, either.value) == ("||", True)
    assert [(c.text, c.value) for c in either.children] == [("a > 1", False), ("b > 1", True)]
    assert (negation.text, negation.value) == ("!", True)
    (conditional,) = negation.children
    assert (conditional.text, conditional.value) == ("?:", False)
    assert conditional.inputs == {"f": True, "a": 0, "b": 2, "s": "x"}
    test, taken = conditional.children
    assert (test.text, test.value) == ("f", True)
    assert (taken.text, taken.value, taken.inputs) == ("a == b", False, {"a": 0, "b": 2})


def test_conditional_explains_the_branch_taken() -> None:
    rule = compile("f ? a == b : s == 'x'", SCHEMA)
    test, taken = rule.explain({"a": 0, "b": 2, "f": False, "s": "x"}).root.children
    assert (test.value, taken.text, taken.value) == (False, "s == 'x'", True)


def test_error_is_shown_on_its_leaf_and_the_rest_is_still_explained() -> None:
    rule = compile("a > 1 && m['z'] > 0 && b < 5", SCHEMA)
    explanation = rule.explain({"a": 2, "b": 1, "m": {"k": 2}})
    assert explanation.matched is False
    assert explanation.error == "no such key: 'z'"
    first, missing, last = explanation.root.children
    assert (first.value, first.error) == (True, None)
    assert missing.value is None
    assert missing.error == "no such key: 'z'"
    assert missing.inputs == {"m": {"k": 2}}
    assert (last.value, last.error) == (True, None)
    assert "m['z'] > 0: error: no such key: 'z'   (m={'k': 2})" in str(explanation)


def test_an_error_absorbed_by_or_still_shows_on_its_leaf() -> None:
    rule = compile("a > 1 || m['z'] > 0", SCHEMA)
    explanation = rule.explain({"a": 2, "m": {}})
    assert explanation.matched is True
    assert explanation.error is None
    _true, failing = explanation.root.children
    assert failing.error == "no such key: 'z'"


def test_unbound_input_is_reported_not_raised() -> None:
    rule = compile("a > 1", SCHEMA)
    explanation = rule.explain({})
    assert explanation.matched is False
    assert explanation.error is not None
    assert "'a'" in explanation.error
    assert explanation.root.inputs == {"a": "<unbound>"}


def test_every_leaf_is_evaluated_even_after_a_short_circuit() -> None:
    rule = compile("a > 100 && b / a > 1", SCHEMA)
    explanation = rule.explain({"a": 0, "b": 1})
    assert explanation.root.value is False
    assert [leaf.error for leaf in leaves(explanation.root)] == [None, "division by zero"]


def test_lets_are_shown_by_name_with_their_text() -> None:
    source = """
    let is_error = status >= 500
    let is_api = path.startsWith("/api")
    rule api_error { when: is_error && is_api }
    """
    rules = compile_rules(source, {"status": "int", "path": "string"})
    explanation = rules["api_error"].explain({"status": 503, "path": "/web"})
    assert [(c.text, c.value) for c in explanation.root.children] == [
        ("is_error = status >= 500", True),
        ('is_api = path.startsWith("/api")', False),
    ]
    assert "is_error = status >= 500: true   (status=503)" in str(explanation)


def test_rule_set_explains_every_rule_in_file_order() -> None:
    rules = compile_rules("rule low { when: n < 10 }\nrule high { when: n > 100 }", {"n": "int"})
    explained = rules.explain({"n": 5})
    assert [(e.rule, e.matched) for e in explained] == [("low", True), ("high", False)]


def test_to_dict_is_json_with_nested_conditions() -> None:
    rule = compile("(a > 1 || m['z'] > 0) && !f", SCHEMA, name="r")
    data = rule.explain({"a": 0, "f": False, "m": {"k": 1}}).to_dict()
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert data["rule"] == "r"
    assert data["matched"] is False
    either = data["condition"]["children"][0]
    assert either["children"][1] == {
        "text": "m['z'] > 0",
        "value": None,
        "error": "no such key: 'z'",
        "inputs": {"m": {"k": 1}},
    }


def test_to_dict_turns_non_json_values_into_json() -> None:
    rule = compile(
        "t > timestamp('2020-01-01T00:00:00Z') && b == b'x' && u > 1u && size(l) > 0",
        {"t": "timestamp", "b": "bytes", "u": "uint", "l": "list(dyn)"},
    )
    inputs = {
        "t": dt.datetime(2021, 1, 1, tzinfo=dt.UTC),
        "b": b"x",
        "u": UInt(3),
        "l": [b"q", {1: 2}, dt.timedelta(seconds=1), (1, 2)],
    }
    data = rule.explain(inputs).to_dict()
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert data["matched"] is True


def test_to_dict_of_a_nan_input_is_strict_json() -> None:
    rule = compile("d > 1.0", {"d": "double"})
    json.dumps(rule.explain({"d": math.nan}).to_dict(), allow_nan=False)


def test_explanation_reports_the_error_of_a_non_bool_result() -> None:
    rule = compile("x", None)
    with pytest.raises(EvaluationError):
        rule.evaluate({"x": 1})
    assert rule.explain({"x": 1}).error is not None


# -- the verdict agrees with evaluate ------------------------------------------------

_ATOMS = [
    "a > 1",
    "b == a",
    "f",
    "m['k'] > 0",
    "has(m.k)",
    "s.startsWith('x')",
    "b / a > 0",
    "a + b < 3",
    "true",
    "false",
    "[1, 2, 3].exists(v, v == a)",
]


def _expressions() -> st.SearchStrategy[str]:
    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(inner, st.sampled_from(["&&", "||"]), inner).map(
                lambda t: f"({t[0]} {t[1]} {t[2]})"
            ),
            inner.map(lambda e: f"!({e})"),
            st.tuples(inner, inner, inner).map(lambda t: f"({t[0]} ? {t[1]} : {t[2]})"),
        )

    return st.recursive(st.sampled_from(_ATOMS), extend, max_leaves=8)


_INPUTS = st.fixed_dictionaries(
    {},
    optional={
        "a": st.integers(min_value=-3, max_value=3),
        "b": st.integers(min_value=-3, max_value=3),
        "f": st.booleans(),
        "s": st.sampled_from(["", "x", "xyz", "abc"]),
        "m": st.dictionaries(st.sampled_from(["k", "j"]), st.integers(-2, 2), max_size=2),
    },
)


def _verdict(rule: Rule, inputs: dict[str, Any]) -> tuple[bool, bool]:
    """``(matched, raised)`` as :meth:`Rule.evaluate` says."""
    try:
        return rule.evaluate(inputs), False
    except EvaluationError:
        return False, True


@settings(max_examples=examples(300), deadline=None)
@given(source=_expressions(), inputs=_INPUTS)
def test_explanation_verdict_agrees_with_evaluate(source: str, inputs: dict[str, Any]) -> None:
    rule = compile(source, SCHEMA)
    matched, raised = _verdict(rule, inputs)
    explanation = rule.explain(inputs)
    assert explanation.matched is matched
    assert (explanation.error is not None) is raised
    if not raised:
        assert explanation.root.value is matched
    json.dumps(explanation.to_dict(), allow_nan=False)
    assert str(explanation).startswith(f"rule rule: {'matched' if matched else 'did not match'}")
