"""Bounds on evaluation, checked before a rule runs.

CEL is not Turing-complete: no loops but the macros, no recursion, no
unbounded iteration. What remains is size: comprehensions nest, and each
level multiplies the work by the length of what it iterates. Compilation
therefore rejects expressions whose comprehensions nest deeper than
:data:`MAX_NESTING` or whose estimated cost exceeds :data:`MAX_COST`, where
the cost is the number of node evaluations, a comprehension costing its
body times the length of its range (a literal's own length, else
:data:`ASSUMED_LENGTH` for an input list or map). At run time the exact path
also stops any one comprehension after ``MAX_ITERATIONS`` steps.
"""

from __future__ import annotations

from typing import Final

from trusswork.rules._ast import Comprehension, ListExpr, MapExpr, Node
from trusswork.rules._checker import Checked
from trusswork.rules._diagnostics import Diagnostic

__all__ = [
    "ASSUMED_LENGTH",
    "MAX_COST",
    "MAX_NESTING",
    "check_limits",
    "estimate_cost",
    "final_checks",
]

MAX_NESTING: Final = 3
MAX_COST: Final = 10_000_000
ASSUMED_LENGTH: Final = 1_000


def _length(node: Node) -> int:
    if isinstance(node, ListExpr):
        return len(node.items)
    if isinstance(node, MapExpr):
        return len(node.entries)
    if isinstance(node, Comprehension) and node.kind in (
        "map",
        "filter",
        "transformList",
        "transformMap",
    ):
        return _length(node.range)
    return ASSUMED_LENGTH


def estimate_cost(node: Node) -> int:
    """The estimated number of node evaluations of ``node`` in the worst case."""
    if isinstance(node, Comprehension):
        body = estimate_cost(node.body) + (estimate_cost(node.guard) if node.guard else 0)
        return 1 + estimate_cost(node.range) + _length(node.range) * body
    return 1 + sum(estimate_cost(child) for child in node.children())


def _nesting(node: Node) -> tuple[int, Node | None]:
    """The deepest comprehension nesting under ``node`` and the innermost one at that depth."""
    best, where = 0, None
    for child in node.children():
        depth, found = _nesting(child)
        if depth > best:
            best, where = depth, found
    if isinstance(node, Comprehension):
        return best + 1, where or node
    return best, where


def check_limits(
    tree: Node, checked: Checked, source: str, filename: str | None = None
) -> list[Diagnostic]:
    """Errors for a tree over the nesting or cost bound (empty when within them)."""
    out: list[Diagnostic] = []
    depth, innermost = _nesting(tree)
    if depth > MAX_NESTING and innermost is not None:
        out.append(
            Diagnostic(
                "error",
                f"comprehensions nest {depth} deep; the limit is {MAX_NESTING}",
                source,
                innermost.start,
                filename,
                "limit",
            )
        )
        return out
    cost = estimate_cost(tree)
    if cost > MAX_COST:
        out.append(
            Diagnostic(
                "error",
                f"estimated cost {cost:,} node evaluations is over the limit of {MAX_COST:,} "
                f"(input lists counted as {ASSUMED_LENGTH:,} long)",
                source,
                tree.start,
                filename,
                "limit",
            )
        )
    return out


def final_checks(
    tree: Node, checked: Checked, source: str, filename: str | None, *, condition: bool
) -> list[Diagnostic]:
    """What a checked tree must also satisfy to compile: the bounds, and for a rule's
    condition (``condition=True``) a bool result."""
    out: list[Diagnostic] = []
    kind = checked.type(tree)
    if condition and kind.kind not in ("bool", "dyn"):
        message = f"a rule's condition must be a bool, not {kind}"
        out.append(Diagnostic("error", message, source, tree.start, filename, "type-error"))
    out.extend(check_limits(tree, checked, source, filename))
    return out
