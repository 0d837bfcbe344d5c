"""``compile_expression``: one CEL expression, parsed, checked and compiled to Python."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trusswork.core.errors import InvalidInput
from trusswork.rules._ast import Node
from trusswork.rules._checker import Checked, check
from trusswork.rules._codegen import generate, python_source
from trusswork.rules._diagnostics import Diagnostic, RuleCheckError
from trusswork.rules._limits import final_checks
from trusswork.rules._parser import parse_expression
from trusswork.rules._types import Type, parse_type

__all__ = ["CompiledExpression", "analyse", "compile_expression", "parse_declarations"]


def parse_declarations(
    declarations: Mapping[str, Any] | None, *, where: str = "declaration"
) -> dict[str, Type] | None:
    """Declarations as static types; ``None`` stays ``None`` (undeclared, dynamic)."""
    if declarations is None:
        return None
    if not isinstance(declarations, Mapping):
        raise InvalidInput(f"{where}s must be a mapping of variable names to types")
    parsed: dict[str, Type] = {}
    for name, spec in declarations.items():
        if not isinstance(name, str) or not all(part.isidentifier() for part in name.split(".")):
            raise InvalidInput(f"{where}: {name!r} is not a variable name")
        parsed[name] = parse_type(spec, where=f"{where} of {name!r}")
    return parsed


class CompiledExpression:
    """A CEL expression compiled to a Python function; evaluate it with :meth:`evaluate`.

    Attributes
    ----------
    source:
        The expression text.
    result_type:
        The static type of the result (``"bool"``, ``"int"``, ``"dyn"``, ...).
    warnings:
        The checker's warnings (always-true conditions, unreachable branches,
        shadowed names), each a :class:`~trusswork.rules.Diagnostic`.
    variables:
        The names of the variables the expression reads.
    """

    __slots__ = ("_checked", "_function", "_tree", "result_type", "source", "variables", "warnings")

    def __init__(self, source: str, tree: Node, checked: Checked, *, filename: str) -> None:
        self.source = source
        self._tree = tree
        self._checked = checked
        self._function = generate(tree, checked, filename=filename)
        self.result_type = str(checked.type(tree))
        self.warnings: list[Diagnostic] = [
            item for item in checked.diagnostics if item.severity == "warning"
        ]
        self.variables = frozenset(checked.variables)

    def evaluate(self, bindings: Mapping[str, Any] | None = None) -> Any:
        """Evaluate with variables bound by name.

        Raises
        ------
        EvaluationError
            For CEL runtime errors: overflow, division by zero, a missing key or
            variable, an operation with no overload for its operands' types.
        """
        return self._function({} if bindings is None else bindings)

    def __call__(self, **bindings: Any) -> Any:
        """``expression(x=1)`` is ``expression.evaluate({"x": 1})``."""
        return self._function(bindings)

    def python_source(self) -> str:
        """The generated Python code, for auditing what will run."""
        return python_source(self._tree, self._checked)

    def __repr__(self) -> str:
        return f"CompiledExpression({self.source!r}, result_type={self.result_type!r})"


def compile_expression(
    expr: str, declarations: Mapping[str, Any] | None = None, *, filename: str | None = None
) -> CompiledExpression:
    """Parse, check and compile one CEL expression.

    Parameters
    ----------
    expr:
        The expression, e.g. ``"request.size > 1024 && user.role in ['admin', 'ops']"``.
    declarations:
        Variable names and their CEL types (``{"x": "int", "tags": "list(string)"}``;
        Python classes such as ``int`` work too). With declarations the expression
        is type-checked now and an undeclared name is an error; without (``None``)
        every name is a dynamic variable and type mismatches are runtime errors.
    filename:
        Shown in error messages.

    Returns
    -------
    CompiledExpression
        Call :meth:`CompiledExpression.evaluate` with a mapping of bindings.

    Raises
    ------
    ParseError
        For a syntax error, with line, column and a caret snippet.
    RuleCheckError
        (a :class:`~trusswork.core.errors.ParseError`, hence an
        :class:`~trusswork.core.errors.InvalidInput`) for type errors and
        undeclared names; ``diagnostics`` lists all of them.
    """
    if not isinstance(expr, str):
        raise InvalidInput(f"a CEL expression is a string, not {type(expr).__name__}")
    tree, checked = analyse(expr, declarations, filename=filename)
    return CompiledExpression(expr, tree, checked, filename=filename or "<cel>")


def analyse(
    source: str,
    declarations: Mapping[str, Any] | None,
    *,
    filename: str | None,
    where: str = "declaration",
    condition: bool = False,
) -> tuple[Node, Checked]:
    """Parse and check one expression; :class:`RuleCheckError` lists every error found."""
    types = parse_declarations(declarations, where=where)
    tree = parse_expression(source, filename=filename)
    checked = check(tree, types, source, filename=filename)
    checked.diagnostics.extend(final_checks(tree, checked, source, filename, condition=condition))
    if not checked.ok:
        raise RuleCheckError(checked.diagnostics)
    return tree, checked
