"""Rules in Google's Common Expression Language (CEL), compiled to Python.

Usage::

    from trusswork import rules

    rule = rules.compile("status >= 500 && path.startsWith('/api')",
                         {"status": "int", "path": "string"})
    rule(status=503, path="/api/cart")        # True
    print(rule.explain({"status": 200, "path": "/api"}))

    checks = rules.load_rules("alerts.rules")  # schema, consts, lets, named rules
    for match in checks.evaluate(event):
        print(match.rule, match.severity, match.message)

:func:`compile_expression` compiles any CEL expression (not only conditions).
Expressions are parsed with lark's LALR parser into a typed tree, checked
against the declared inputs (every error reported at once, with a caret),
and compiled to one Python function with no access to anything but its
inputs; numeric rules also run over numpy arrays through Numba
(:meth:`Rule.evaluate_columns`).
"""

from __future__ import annotations

from trusswork.rules._diagnostics import Diagnostic, RuleCheckError
from trusswork.rules._explain import Condition, Explanation
from trusswork.rules._expression import CompiledExpression, compile_expression
from trusswork.rules._rule import SEVERITIES, Rule, compile
from trusswork.rules._rulefile import Match, RuleSet, compile_rules, load_rules
from trusswork.rules._values import CelType, EvaluationError, UInt

__all__ = [
    "SEVERITIES",
    "CelType",
    "CompiledExpression",
    "Condition",
    "Diagnostic",
    "EvaluationError",
    "Explanation",
    "Match",
    "Rule",
    "RuleCheckError",
    "RuleSet",
    "UInt",
    "compile",
    "compile_expression",
    "compile_rules",
    "load_rules",
]
