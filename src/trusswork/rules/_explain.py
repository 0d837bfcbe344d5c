"""Explanations: why a rule matched or did not, condition by condition.

An explanation is a tree that follows the rule's logic: ``&&``, ``||``,
``!`` and ``?:`` are inner nodes, every other sub-expression (a comparison, a
call, a membership test) is a leaf. Each node carries its source text, the
value it had for the given input (or the error it raised) and the input
variables it read, so "why did this alert not fire?" has an answer such as::

    rule slow_api: false
      && false
         latency_ms > SLOW_MS: true   (latency_ms=312.5)
         path.startsWith("/api"): false   (path="/web/cart")

Explaining evaluates every leaf, including those a short-circuit would skip;
that is safe because compiled rules are pure functions of their inputs.
Explanations are for people and tools, not the hot path: each node is
compiled on first use and cached on the rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from trusswork.rules._ast import Binary, Conditional, Node, Unary, chain, walk
from trusswork.rules._checker import Checked, qualified_name
from trusswork.rules._codegen import generate
from trusswork.rules._values import EvaluationError

__all__ = ["Condition", "Explainer", "Explanation"]

_UNBOUND = "<unbound>"


@dataclass(frozen=True, slots=True)
class Condition:
    """One sub-expression of a rule and what it evaluated to.

    Attributes
    ----------
    text:
        The source text (for a named sub-expression, ``name = text``).
    value:
        Its value for the explained input; ``None`` when it raised.
    error:
        The evaluation error's message, when it raised.
    inputs:
        The input variables it reads, with their values.
    children:
        The operands of ``&&``, ``||``, ``!`` and ``?:``; empty for a leaf.
    """

    text: str
    value: Any
    error: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    children: tuple[Condition, ...] = ()

    def lines(self, depth: int = 0) -> list[str]:
        outcome = f"error: {self.error}" if self.error is not None else _show(self.value)
        shown = ", ".join(f"{name}={_show(value)}" for name, value in self.inputs.items())
        suffix = f"   ({shown})" if shown and not self.children else ""
        out = [f"{'  ' * depth}{self.text}: {outcome}{suffix}"]
        for child in self.children:
            out.extend(child.lines(depth + 1))
        return out

    def to_dict(self) -> dict[str, Any]:
        """The condition as JSON-ready data."""
        data: dict[str, Any] = {"text": self.text, "value": _jsonable(self.value)}
        if self.error is not None:
            data["error"] = self.error
        if self.inputs:
            data["inputs"] = {name: _jsonable(value) for name, value in self.inputs.items()}
        if self.children:
            data["children"] = [child.to_dict() for child in self.children]
        return data


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a rule did or did not match an input.

    ``matched`` is true only when the rule's condition evaluated to ``true``;
    ``root`` is the condition tree. ``str()`` renders it as an indented tree.
    """

    rule: str
    matched: bool
    root: Condition

    @property
    def error(self) -> str | None:
        """The evaluation error of the whole condition, if it raised."""
        return self.root.error

    def __str__(self) -> str:
        verdict = "matched" if self.matched else "did not match"
        return "\n".join([f"rule {self.rule}: {verdict}", *self.root.lines(1)])

    def to_dict(self) -> dict[str, Any]:
        """The explanation as JSON-ready data."""
        return {"rule": self.rule, "matched": self.matched, "condition": self.root.to_dict()}


class Explainer:
    """Explains one checked tree; compiled sub-expressions are cached per node."""

    def __init__(
        self,
        tree: Node,
        checked: Checked,
        source: str,
        *,
        labels: Mapping[int, str] | None = None,
        sources: Mapping[int, str] | None = None,
    ) -> None:
        self.tree = tree
        self.checked = checked
        self.source = source
        self.labels = labels or {}
        self.sources = sources or {}
        self._compiled: dict[int, Callable[[Any], Any]] = {}

    def explain(self, name: str, bindings: Mapping[str, Any]) -> Explanation:
        root = self.condition(self.tree, bindings)
        if root.error is None and not isinstance(root.value, bool):
            # As Rule.evaluate does: a condition that is not a bool is an error.
            kind = type(root.value).__name__
            root = replace(root, error=f"the condition evaluated to a {kind}, not a bool")
        return Explanation(name, root.error is None and root.value is True, root)

    def condition(self, node: Node, bindings: Mapping[str, Any]) -> Condition:
        value, error = self.evaluate(node, bindings)
        children: tuple[Condition, ...] = ()
        if isinstance(node, Binary) and node.op in ("&&", "||"):
            children = tuple(self.condition(part, bindings) for part in chain(node, node.op))
        elif isinstance(node, Unary) and node.op == "!":
            children = (self.condition(node.operand, bindings),)
        elif isinstance(node, Conditional):
            test = self.condition(node.condition, bindings)
            branch = node.then if test.value is True else node.otherwise
            children = (test,) if test.error else (test, self.condition(branch, bindings))
        text = self.text(node)
        if isinstance(node, Binary) and children:
            text = node.op
        elif isinstance(node, Unary) and children:
            text = "!"
        elif isinstance(node, Conditional):
            text = "?:"
        label = self.labels.get(id(node))
        if label is not None:
            text = f"{label} = {self.text(node)}"
            if children and len(text) > 60:
                text = label
        return Condition(text, value, error, self.inputs(node, bindings), children)

    def evaluate(self, node: Node, bindings: Mapping[str, Any]) -> tuple[Any, str | None]:
        function = self._compiled.get(id(node))
        if function is None:
            function = generate(node, self.checked, filename="<explain>")
            self._compiled[id(node)] = function
        try:
            return function(bindings), None
        except EvaluationError as error:
            return None, error.message

    def text(self, node: Node) -> str:
        return node.text(self.sources.get(id(node), self.source))

    def inputs(self, node: Node, bindings: Mapping[str, Any]) -> dict[str, Any]:
        names: dict[str, Any] = {}
        refs = self.checked.refs
        for current in walk(node):
            if refs.get(id(current)) == "var" and id(current) not in self.checked.constants:
                name = getattr(current, "name", None) or qualified_name(current)
                if isinstance(name, str) and name not in names:
                    names[name] = bindings.get(name, _UNBOUND)
        return names


def _show(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return f'"{value}"'
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # strict JSON has no NaN or infinity
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    return str(value)
