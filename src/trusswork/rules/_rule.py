"""Rules: a named CEL condition with its metadata, compiled once, evaluated per event.

A :class:`Rule` wraps one boolean CEL expression (its ``when`` condition) with
a severity, tags, a message template and an action name. Calling it runs the
generated Python function (see :mod:`._codegen`); :meth:`Rule.explain` says
which sub-conditions were true or false; :meth:`Rule.evaluate_columns` runs a
numeric rule over numpy arrays through a Numba kernel, compiled on first use.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from trusswork.core.errors import InvalidInput
from trusswork.rules._ast import Node
from trusswork.rules._checker import Checked
from trusswork.rules._codegen import generate, python_source
from trusswork.rules._diagnostics import Diagnostic
from trusswork.rules._explain import Explainer, Explanation
from trusswork.rules._expression import analyse
from trusswork.rules._values import EvaluationError, cel_type_name

if TYPE_CHECKING:
    import numpy as np

__all__ = ["SEVERITIES", "Rule", "compile"]

SEVERITIES = ("debug", "info", "warning", "error", "critical")

_UNSET = object()


class Rule:
    """A compiled rule: call it with inputs (``rule(status=503)``) or :meth:`evaluate` a mapping.

    Attributes
    ----------
    name, severity, tags, action:
        The rule's metadata (``severity`` is one of :data:`SEVERITIES`).
    source:
        The text of the ``when`` condition.
    warnings:
        The checker's warnings for this rule.
    """

    def __init__(
        self,
        name: str,
        source: str,
        tree: Node,
        checked: Checked,
        *,
        severity: str = "warning",
        tags: tuple[str, ...] = (),
        message: Callable[[Mapping[str, Any]], str] | None = None,
        action: str | None = None,
        filename: str | None = None,
        explainer: Explainer | None = None,
    ) -> None:
        self.name = name
        self.source = source
        self.severity = severity
        self.tags = tags
        self.action = action
        self._message = message
        self._tree = tree
        self._checked = checked
        self._function = generate(tree, checked, filename=filename or f"<rule {name}>")
        self._checks_bool = checked.type(tree).kind != "bool"
        if not self._checks_bool:
            # A condition checked to be a bool needs no wrapper: evaluate is the compiled
            # function itself, one call less per event.
            self.evaluate = self._function  # type: ignore[method-assign,assignment]
        self._explainer = explainer or Explainer(tree, checked, source)
        self._kernel: Any = _UNSET
        self.warnings: list[Diagnostic] = [
            item for item in checked.diagnostics if item.severity == "warning"
        ]
        self.variables = frozenset(checked.variables)

    def evaluate(self, inputs: Mapping[str, Any]) -> bool:
        """Whether the rule matches ``inputs`` (a mapping of variable names to values).

        Raises
        ------
        EvaluationError
            When the condition raises a CEL runtime error, or yields a non-bool.
        """
        result = self._function(inputs)
        if self._checks_bool and result is not True and result is not False:
            raise EvaluationError(
                f"rule {self.name!r} evaluated to a {cel_type_name(result)}, not a bool",
                kind="no matching overload",
            )
        return result  # type: ignore[no-any-return]

    def __call__(self, **inputs: Any) -> bool:
        """``rule(status=503, path="/api")`` is ``rule.evaluate({...})``."""
        return self.evaluate(inputs)

    def explain(self, inputs: Mapping[str, Any]) -> Explanation:
        """Which sub-conditions were true or false for ``inputs``, with their values."""
        return self._explainer.explain(self.name, inputs)

    def message(self, inputs: Mapping[str, Any]) -> str | None:
        """The rule's message template rendered for ``inputs`` (``None`` without a template)."""
        return None if self._message is None else self._message(inputs)

    @property
    def jit_eligible(self) -> bool:
        """Whether :meth:`evaluate_columns` runs compiled (every input int, double or bool)."""
        return self._numeric_kernel() is not None

    def _numeric_kernel(self) -> Any:
        if self._kernel is _UNSET:
            from trusswork.rules._jit import numeric_kernel

            self._kernel = numeric_kernel(self._tree, self._checked, self.source)
        return self._kernel

    def evaluate_columns(
        self, columns: Mapping[str, Any] | None = None, **arrays: Any
    ) -> np.ndarray[Any, Any]:
        """Evaluate the rule once per row of equally long arrays, one array per input.

        Numeric rules (inputs declared int, double or bool) run as one Numba
        kernel over the arrays; others run the compiled Python function per row.
        The results are identical either way.

        Returns
        -------
        numpy.ndarray
            One bool per row.
        """
        import numpy as np

        data = dict(columns or {}, **arrays)
        kernel = self._numeric_kernel()
        if kernel is not None:
            result: np.ndarray[Any, Any] = kernel(data, self._function)
            return result
        names = sorted(self.variables)
        missing = [name for name in names if name not in data]
        if missing:
            raise InvalidInput(f"rule {self.name!r}: no column for input {missing[0]!r}")
        lengths = {len(data[name]) for name in names}
        if len(lengths) > 1:
            raise InvalidInput(f"rule {self.name!r}: columns differ in length ({sorted(lengths)})")
        rows = lengths.pop() if lengths else 0
        out = np.empty(rows, dtype=bool)
        columns_list = [(name, data[name]) for name in names]
        for row in range(rows):
            out[row] = self.evaluate({name: _scalar(column[row]) for name, column in columns_list})
        return out

    def python_source(self) -> str:
        """The generated Python code of the condition, for auditing."""
        return python_source(self._tree, self._checked)

    def __repr__(self) -> str:
        return f"Rule({self.name!r}, {self.source!r})"


def _scalar(value: Any) -> Any:
    """A numpy scalar as the Python value CEL expects (``np.int64(3)`` -> ``3``)."""
    item = getattr(value, "item", None)
    return item() if item is not None and type(value).__module__ == "numpy" else value


def compile(
    source: str,
    schema: Mapping[str, Any] | None = None,
    *,
    name: str = "rule",
    filename: str | None = None,
) -> Rule:
    """Compile one CEL condition into a :class:`Rule`.

    Parameters
    ----------
    source:
        A boolean CEL expression, e.g. ``"status >= 500 && path.startsWith('/api')"``.
    schema:
        The inputs and their CEL types (``{"status": "int", "path": "string"}``).
        ``None`` leaves every name dynamic and type errors to run time.
    name:
        The rule's name in explanations and errors.

    Raises
    ------
    ParseError
        For syntax errors; :class:`RuleCheckError` (a ParseError) for type errors,
        undeclared names, a non-bool condition, or a rule over the safety limits,
        listing every error found.
    """
    if not isinstance(source, str):
        raise InvalidInput(f"a rule is a CEL expression string, not {type(source).__name__}")
    tree, checked = analyse(source, schema, filename=filename, where="schema entry", condition=True)
    return Rule(name, source, tree, checked, filename=filename)
