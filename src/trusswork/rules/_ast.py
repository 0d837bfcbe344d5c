"""The typed syntax tree of CEL expressions, as the parser builds it.

Every node records ``start`` and ``end``: character offsets of its text in the
source, so diagnostics can point at it with a caret and explanations can quote
it. Macros (``has``, ``all``, ``exists``, ``exists_one``, ``map``, ``filter``)
are expanded by the parser into :class:`Select` (``test_only``) and
:class:`Comprehension` nodes, as CEL's own parsers do; later stages never see
them as calls.

Nodes are plain slotted classes compared by identity: the checker keys its
type table by ``id(node)`` and the tree is never mutated after parsing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = [
    "Binary",
    "Call",
    "Comprehension",
    "Conditional",
    "Ident",
    "Index",
    "ListExpr",
    "Literal",
    "MapExpr",
    "Node",
    "Select",
    "Unary",
    "chain",
    "walk",
]


class Node:
    """Base of every syntax node: a span of source text."""

    __slots__ = ("end", "start")

    def __init__(self, start: int, end: int) -> None:
        self.start = start
        self.end = end

    def children(self) -> tuple[Node, ...]:
        """Direct sub-expressions, in evaluation order."""
        return ()

    def text(self, source: str) -> str:
        """The source text this node was parsed from."""
        return source[self.start : self.end]


class Literal(Node):
    """A constant: ``kind`` is the CEL type name (int, uint, double, string, bytes, bool, null).

    ``grouped`` marks a literal written in parentheses, which a minus sign
    negates as a value (``-(-9223372036854775808)`` overflows) instead of
    joining it as part of the literal.
    """

    __slots__ = ("grouped", "kind", "value")

    def __init__(
        self, value: Any, kind: str, start: int, end: int, *, grouped: bool = False
    ) -> None:
        super().__init__(start, end)
        self.value = value
        self.kind = kind
        self.grouped = grouped


class Ident(Node):
    """A name: a declared variable, a comprehension variable, or a type (``int``)."""

    __slots__ = ("name",)

    def __init__(self, name: str, start: int, end: int) -> None:
        super().__init__(start, end)
        self.name = name


class Select(Node):
    """``operand.field``; with ``test_only`` it is ``has(operand.field)``."""

    __slots__ = ("field", "operand", "test_only")

    def __init__(
        self, operand: Node, field: str, start: int, end: int, *, test_only: bool = False
    ) -> None:
        super().__init__(start, end)
        self.operand = operand
        self.field = field
        self.test_only = test_only

    def children(self) -> tuple[Node, ...]:
        return (self.operand,)


class Index(Node):
    """``operand[index]`` on a list or a map."""

    __slots__ = ("index", "operand")

    def __init__(self, operand: Node, index: Node, start: int, end: int) -> None:
        super().__init__(start, end)
        self.operand = operand
        self.index = index

    def children(self) -> tuple[Node, ...]:
        return (self.operand, self.index)


class Call(Node):
    """A function call ``f(args)`` or, with ``target``, a method call ``target.f(args)``."""

    __slots__ = ("args", "function", "target")

    def __init__(
        self, function: str, args: list[Node], target: Node | None, start: int, end: int
    ) -> None:
        super().__init__(start, end)
        self.function = function
        self.args = args
        self.target = target

    def children(self) -> tuple[Node, ...]:
        return (self.target, *self.args) if self.target is not None else tuple(self.args)


class ListExpr(Node):
    """A list literal ``[a, b]``."""

    __slots__ = ("items",)

    def __init__(self, items: list[Node], start: int, end: int) -> None:
        super().__init__(start, end)
        self.items = items

    def children(self) -> tuple[Node, ...]:
        return tuple(self.items)


class MapExpr(Node):
    """A map literal ``{k: v}``; ``entries`` keeps source order."""

    __slots__ = ("entries",)

    def __init__(self, entries: list[tuple[Node, Node]], start: int, end: int) -> None:
        super().__init__(start, end)
        self.entries = entries

    def children(self) -> tuple[Node, ...]:
        return tuple(node for pair in self.entries for node in pair)


class Unary(Node):
    """``!operand`` or ``-operand``."""

    __slots__ = ("op", "operand")

    def __init__(self, op: str, operand: Node, start: int, end: int) -> None:
        super().__init__(start, end)
        self.op = op
        self.operand = operand

    def children(self) -> tuple[Node, ...]:
        return (self.operand,)


class Binary(Node):
    """``left op right`` for arithmetic, comparison, ``in``, ``&&`` and ``||``."""

    __slots__ = ("left", "op", "right")

    def __init__(self, op: str, left: Node, right: Node, start: int, end: int) -> None:
        super().__init__(start, end)
        self.op = op
        self.left = left
        self.right = right

    def children(self) -> tuple[Node, ...]:
        return (self.left, self.right)


class Conditional(Node):
    """``condition ? then : otherwise``."""

    __slots__ = ("condition", "otherwise", "then")

    def __init__(self, condition: Node, then: Node, otherwise: Node, start: int, end: int) -> None:
        super().__init__(start, end)
        self.condition = condition
        self.then = then
        self.otherwise = otherwise

    def children(self) -> tuple[Node, ...]:
        return (self.condition, self.then, self.otherwise)


class Comprehension(Node):
    """An expanded macro over ``range``: ``range.all(variable, body)`` and friends.

    ``kind`` is ``all``, ``exists``, ``exists_one``, ``map``, ``filter``, or one of
    the two-variable forms' ``transformList`` and ``transformMap``; ``body`` is the
    predicate (or the transform); ``guard`` is the filter of the three-argument
    ``map(x, guard, transform)`` (and of the four-argument transforms).
    ``index`` names the first variable of a two-variable comprehension
    (``list.all(i, v, p)``: the index, or a map's key), with ``variable`` the
    element (or the map's value); it is ``None`` for the one-variable forms.
    """

    __slots__ = (
        "body",
        "guard",
        "index",
        "index_start",
        "kind",
        "range",
        "variable",
        "variable_start",
    )

    def __init__(
        self,
        kind: str,
        range_: Node,
        variable: str,
        variable_start: int,
        body: Node,
        guard: Node | None,
        start: int,
        end: int,
        *,
        index: str | None = None,
        index_start: int = 0,
    ) -> None:
        super().__init__(start, end)
        self.kind = kind
        self.range = range_
        self.variable = variable
        self.variable_start = variable_start
        self.body = body
        self.guard = guard
        self.index = index
        self.index_start = index_start

    def children(self) -> tuple[Node, ...]:
        if self.guard is not None:
            return (self.range, self.guard, self.body)
        return (self.range, self.body)


def walk(node: Node) -> Iterator[Node]:
    """Every node of the tree under ``node`` (itself first), depth first."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.children()))


def chain(node: Node, op: str) -> list[Node]:
    """The operands of a run of one logical operator: ``a && b && c`` -> ``[a, b, c]``."""
    if isinstance(node, Binary) and node.op == op:
        return chain(node.left, op) + chain(node.right, op)
    return [node]
