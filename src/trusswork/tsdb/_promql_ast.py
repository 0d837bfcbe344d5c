"""The PromQL syntax tree: immutable nodes the parser builds and the engine walks.

Every node records ``pos``, the 0-based offset of its first character in the
query text, so evaluation errors can point back at the source. ``value_type``
is the static PromQL type a node evaluates to: ``"scalar"``, ``"string"``,
``"vector"`` (an instant vector) or ``"matrix"`` (a range vector); the parser
checks types, so the engine can trust them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from trusswork.tsdb._series import Matcher

__all__ = [
    "AggregateExpr",
    "AtModifier",
    "BinaryExpr",
    "Call",
    "Expr",
    "MatrixSelector",
    "NumberLiteral",
    "ParenExpr",
    "StringLiteral",
    "SubqueryExpr",
    "UnaryExpr",
    "ValueType",
    "VectorMatching",
    "VectorSelector",
]

ValueType = Literal["scalar", "string", "vector", "matrix"]

#: ``@ <ms>`` pins evaluation to a fixed time; ``start``/``end`` to the query's bounds.
AtModifier = int | Literal["start", "end"] | None


@dataclass(frozen=True, slots=True)
class NumberLiteral:
    """A float literal such as ``1``, ``0x1f``, ``2.5e3``, ``Inf`` or ``NaN``."""

    value: float
    pos: int = 0

    @property
    def value_type(self) -> ValueType:
        return "scalar"


@dataclass(frozen=True, slots=True)
class StringLiteral:
    """A quoted string, already unescaped."""

    value: str
    pos: int = 0

    @property
    def value_type(self) -> ValueType:
        return "string"


@dataclass(frozen=True, slots=True)
class VectorSelector:
    """``name{matchers} offset d @ t``: the latest sample of each matching series."""

    name: str | None
    matchers: tuple[Matcher, ...]
    offset_ms: int = 0
    at: AtModifier = None
    pos: int = 0

    @property
    def value_type(self) -> ValueType:
        return "vector"


@dataclass(frozen=True, slots=True)
class MatrixSelector:
    """``selector[range]``: every sample of each series in a left-open window."""

    selector: VectorSelector
    range_ms: int
    pos: int = 0

    @property
    def value_type(self) -> ValueType:
        return "matrix"


@dataclass(frozen=True, slots=True)
class SubqueryExpr:
    """``expr[range:step] offset d @ t``: an instant expression sampled on a step grid."""

    expr: Expr
    range_ms: int
    step_ms: int | None
    offset_ms: int = 0
    at: AtModifier = None
    pos: int = 0

    @property
    def value_type(self) -> ValueType:
        return "matrix"


@dataclass(frozen=True, slots=True)
class ParenExpr:
    """``( expr )``."""

    expr: Expr
    pos: int = 0

    @property
    def value_type(self) -> ValueType:
        return self.expr.value_type


@dataclass(frozen=True, slots=True)
class UnaryExpr:
    """``-expr`` or ``+expr``."""

    op: Literal["-", "+"]
    expr: Expr
    pos: int = 0

    @property
    def value_type(self) -> ValueType:
        return self.expr.value_type


@dataclass(frozen=True, slots=True)
class VectorMatching:
    """How a binary operator pairs series: ``on``/``ignoring`` labels and grouping side."""

    card: Literal["one-to-one", "many-to-one", "one-to-many", "many-to-many"]
    labels: tuple[str, ...] = ()
    on: bool = False
    include: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BinaryExpr:
    """``lhs op rhs`` with optional ``bool`` and vector-matching modifiers."""

    op: str
    lhs: Expr
    rhs: Expr
    return_bool: bool = False
    matching: VectorMatching | None = None
    pos: int = 0

    @property
    def value_type(self) -> ValueType:
        if self.lhs.value_type == "scalar" and self.rhs.value_type == "scalar":
            return "scalar"
        return "vector"


@dataclass(frozen=True, slots=True)
class AggregateExpr:
    """``op by|without (labels) ([param,] expr)``."""

    op: str
    expr: Expr
    param: Expr | None = None
    grouping: tuple[str, ...] = ()
    without: bool = False
    pos: int = 0

    @property
    def value_type(self) -> ValueType:
        return "vector"


@dataclass(frozen=True, slots=True)
class Call:
    """``func(args...)``."""

    func: str
    args: tuple[Expr, ...] = field(default=())
    return_type: ValueType = "vector"
    pos: int = 0

    @property
    def value_type(self) -> ValueType:
        return self.return_type


Expr = (
    NumberLiteral
    | StringLiteral
    | VectorSelector
    | MatrixSelector
    | SubqueryExpr
    | ParenExpr
    | UnaryExpr
    | BinaryExpr
    | AggregateExpr
    | Call
)
