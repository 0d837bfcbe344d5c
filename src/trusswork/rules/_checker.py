"""The static checker: types, names, constant folding and lint findings.

The checker walks a syntax tree once against a declared environment and
produces a :class:`Checked` table for the code generator: the static type of
every node, what every identifier refers to (a declared variable, a
comprehension variable or a type), and the value of every node that is a
compile-time constant. Along the way it reports, all in one run:

* errors: undeclared variables and functions, operators and functions applied
  to types they have no overload for, fields selected from non-maps, map keys
  of the wrong type, non-boolean conditions;
* warnings: conditions that are always true or always false (constants, or a
  chain such as ``x > 5 && x < 3`` that no value satisfies), branches that can
  never run because of them, and comprehension variables that shadow another
  name.

With ``strict=False`` (no declarations given) every identifier is a ``dyn``
variable and type mismatches are left to run time, where they raise
``EvaluationError("no matching overload")`` as CEL prescribes for unchecked
expressions.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping
from typing import Any

from trusswork.rules import _runtime
from trusswork.rules._ast import (
    Binary,
    Call,
    Comprehension,
    Conditional,
    Ident,
    Index,
    ListExpr,
    Literal,
    MapExpr,
    Node,
    Select,
    Unary,
    chain,
)
from trusswork.rules._diagnostics import Diagnostic
from trusswork.rules._types import (
    BOOL,
    BYTES,
    DOUBLE,
    DURATION,
    DYN,
    INT,
    NULL,
    NUMERIC,
    STRING,
    TIMESTAMP,
    TYPE_IDENTIFIERS,
    UINT,
    Type,
    join,
    list_of,
    map_of,
    type_of,
)
from trusswork.rules._values import DURATION_TYPE, TIMESTAMP_TYPE, EvaluationError

__all__ = ["FUNCTIONS", "OPERATORS", "Checked", "check", "qualified_name"]

# Binary operators and the runtime helper that implements each with CEL semantics.
OPERATORS: dict[str, str] = {
    "+": "add",
    "-": "sub",
    "*": "mul",
    "/": "div",
    "%": "mod",
    "==": "eq",
    "!=": "ne",
    "<": "lt",
    "<=": "le",
    ">": "gt",
    ">=": "ge",
    "in": "in_",
}

_TS, _DUR = TIMESTAMP_TYPE, DURATION_TYPE
_ANY = "*"
_Sig = tuple[str | None, tuple[str, ...], Type]


def _sigs(target: str | None, kinds: tuple[str, ...], result: Type, *more: str) -> list[_Sig]:
    return [(target, (kind, *more), result) for kind in kinds]


# name -> (runtime helper, overloads as (receiver kind or None, argument kinds, result)).
FUNCTIONS: dict[str, tuple[str, list[_Sig]]] = {
    "size": (
        "size",
        [(None, (kind,), INT) for kind in ("string", "bytes", "list", "map")]
        + [(kind, (), INT) for kind in ("string", "bytes", "list", "map")],
    ),
    "contains": ("contains", [("string", ("string",), BOOL)]),
    "startsWith": ("starts_with", [("string", ("string",), BOOL)]),
    "endsWith": ("ends_with", [("string", ("string",), BOOL)]),
    "matches": ("matches", [("string", ("string",), BOOL), (None, ("string", "string"), BOOL)]),
    "int": ("to_int", _sigs(None, ("int", "uint", "double", "string", _TS), INT)),
    "uint": ("to_uint", _sigs(None, ("int", "uint", "double", "string"), UINT)),
    "double": ("to_double", _sigs(None, ("int", "uint", "double", "string"), DOUBLE)),
    "string": (
        "to_string",
        _sigs(None, ("int", "uint", "double", "string", "bytes", "bool", _TS, _DUR), STRING),
    ),
    "bytes": ("to_bytes", _sigs(None, ("string", "bytes"), BYTES)),
    "bool": ("to_bool", _sigs(None, ("bool", "string"), BOOL)),
    "dyn": ("to_dyn", [(None, (_ANY,), DYN)]),
    "type": ("type_of", [(None, (_ANY,), type_of(DYN))]),
    "timestamp": ("to_timestamp", _sigs(None, ("string", "int", _TS), TIMESTAMP)),
    "duration": ("to_duration", _sigs(None, ("string", _DUR), DURATION)),
}
for _name, _helper in (
    ("getFullYear", "get_full_year"),
    ("getMonth", "get_month"),
    ("getDayOfYear", "get_day_of_year"),
    ("getDayOfMonth", "get_day_of_month"),
    ("getDate", "get_date"),
    ("getDayOfWeek", "get_day_of_week"),
    ("getHours", "get_hours"),
    ("getMinutes", "get_minutes"),
    ("getSeconds", "get_seconds"),
    ("getMilliseconds", "get_milliseconds"),
):
    _overloads: list[_Sig] = [(_TS, (), INT), (_TS, ("string",), INT)]
    if _name in ("getHours", "getMinutes", "getSeconds", "getMilliseconds"):
        _overloads.append((_DUR, (), INT))
    FUNCTIONS[_name] = (_helper, _overloads)


_ORDERED = frozenset({"string", "bytes", "bool", TIMESTAMP_TYPE, DURATION_TYPE})
_MAP_KEYS = frozenset({"int", "uint", "bool", "string", "dyn"})
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


class Checked:
    """What the checker learned about one tree, keyed by ``id(node)``.

    ``types`` holds every node's static type; ``refs`` says what each
    :class:`Ident` (and each qualified type name :class:`Select`) is:
    ``"var"``, ``"local"`` or ``"type"``; ``constants`` the folded value of
    every constant node; ``diagnostics`` the findings.
    """

    __slots__ = ("constants", "diagnostics", "refs", "types", "variables")

    def __init__(self) -> None:
        self.types: dict[int, Type] = {}
        self.refs: dict[int, str] = {}
        self.constants: dict[int, Any] = {}
        self.diagnostics: list[Diagnostic] = []
        self.variables: set[str] = set()

    def type(self, node: Node) -> Type:
        return self.types.get(id(node), DYN)

    def is_constant(self, node: Node) -> bool:
        return id(node) in self.constants

    @property
    def ok(self) -> bool:
        return not any(item.severity == "error" for item in self.diagnostics)


def qualified_name(node: Node) -> str | None:
    """``a.b.c`` for a chain of selections on an identifier, else ``None``."""
    parts: list[str] = []
    while isinstance(node, Select) and not node.test_only:
        parts.append(node.field)
        node = node.operand
    if not isinstance(node, Ident):
        return None
    parts.append(node.name)
    return ".".join(reversed(parts))


class _Checker:
    def __init__(
        self,
        declarations: Mapping[str, Type],
        source: str,
        filename: str | None,
        strict: bool,
        constants: Mapping[str, tuple[Type, Any]],
        origins: Mapping[int, tuple[str, str | None]],
    ) -> None:
        self.origins = origins
        self.declarations = declarations
        self.source = source
        self.filename = filename
        self.strict = strict
        self.named_constants = constants
        self.out = Checked()
        self.scopes: list[str] = []

    # -- reporting -----------------------------------------------------------
    def report(self, node: Node | int, message: str, *, warning: bool = False, code: str) -> None:
        offset = node if isinstance(node, int) else node.start
        source, filename = self.source, self.filename
        if not isinstance(node, int) and id(node) in self.origins:
            # A node of a named sub-expression inlined from another file.
            source, filename = self.origins[id(node)]
        self.out.diagnostics.append(
            Diagnostic("warning" if warning else "error", message, source, offset, filename, code)
        )

    def mismatch(self, node: Node, message: str) -> Type:
        """A type error: reported when strict, left to run time otherwise."""
        if self.strict:
            self.report(node, message, code="type-error")
        return DYN

    # -- the walk -----------------------------------------------------------------
    def visit(self, node: Node) -> Type:
        method: Callable[[Any], Type] = getattr(self, "visit_" + type(node).__name__)
        result = method(node)
        self.out.types[id(node)] = result
        return result

    def visit_Literal(self, node: Literal) -> Type:
        self.out.constants[id(node)] = node.value
        return {"null": NULL}.get(node.kind) or TYPE_IDENTIFIERS[node.kind]

    def visit_Ident(self, node: Ident) -> Type:
        name = node.name
        if name in self.scopes:
            self.out.refs[id(node)] = "local"
            return self.local_types[len(self.scopes) - 1 - self.scopes[::-1].index(name)]
        if name in self.named_constants:
            kind, value = self.named_constants[name]
            self.out.refs[id(node)] = "var"
            self.out.constants[id(node)] = value
            return kind
        if name in self.declarations:
            self.out.refs[id(node)] = "var"
            self.out.variables.add(name)
            return self.declarations[name]
        if name in TYPE_IDENTIFIERS:
            self.out.refs[id(node)] = "type"
            self.out.constants[id(node)] = _runtime.TYPES[name]
            return type_of(TYPE_IDENTIFIERS[name])
        if self.strict:
            self.report(node, f"undeclared reference to '{name}'", code="undeclared")
            return DYN
        self.out.refs[id(node)] = "var"
        self.out.variables.add(name)
        return DYN

    local_types: list[Type]

    def visit_Select(self, node: Select) -> Type:
        qualified = qualified_name(node)
        if qualified in self.declarations and not self.is_local_root(node):
            # A declared qualified name (``request.auth.claims``) is one variable.
            assert qualified is not None
            self.out.refs[id(node)] = "var"
            self.out.variables.add(qualified)
            kind = self.declarations[qualified]
            return BOOL if node.test_only else kind
        if qualified in (TIMESTAMP_TYPE, DURATION_TYPE) and not self.is_variable_root(node):
            self.out.refs[id(node)] = "type"
            self.out.constants[id(node)] = _runtime.TYPES[qualified]
            return type_of(TYPE_IDENTIFIERS[qualified])
        operand = self.visit(node.operand)
        result = self.field_type(node, operand)
        return BOOL if node.test_only else result

    def is_local_root(self, node: Node) -> bool:
        while isinstance(node, Select):
            node = node.operand
        return isinstance(node, Ident) and node.name in self.scopes

    def is_variable_root(self, node: Node) -> bool:
        while isinstance(node, Select):
            node = node.operand
        return isinstance(node, Ident) and (
            node.name in self.declarations or node.name in self.scopes
        )

    def field_type(self, node: Select, operand: Type) -> Type:
        if operand.is_dyn:
            return DYN
        if operand.kind == "map":
            if operand.element.kind not in ("string", "dyn"):
                return self.mismatch(
                    node,
                    f"cannot select field '{node.field}' from a {operand} (keys are not strings)",
                )
            return operand.value
        return self.mismatch(node, f"type '{operand}' has no fields (selecting '{node.field}')")

    def visit_Index(self, node: Index) -> Type:
        operand = self.visit(node.operand)
        index = self.visit(node.index)
        if operand.is_dyn:
            return DYN
        if operand.kind == "list":
            if not (index.is_dyn or index.kind in NUMERIC):
                return self.mismatch(node.index, f"a list index must be an int, not {index}")
            return operand.element
        if operand.kind == "map":
            key = operand.element
            if not (index.is_dyn or key.is_dyn or _comparable(key, index)):
                return self.mismatch(node.index, f"a {operand} has no key of type {index}")
            return operand.value
        return self.mismatch(node, f"type '{operand}' does not support indexing")

    def visit_ListExpr(self, node: ListExpr) -> Type:
        element: Type | None = None
        for item in node.items:
            kind = self.visit(item)
            element = kind if element is None else join(element, kind)
        if all(self.out.is_constant(item) for item in node.items):
            self.out.constants[id(node)] = [self.out.constants[id(item)] for item in node.items]
        return list_of(element or DYN)

    def visit_MapExpr(self, node: MapExpr) -> Type:
        key_type: Type | None = None
        value_type: Type | None = None
        for key, value in node.entries:
            kind = self.visit(key)
            if kind.kind not in _MAP_KEYS:
                self.mismatch(key, f"map keys must be int, uint, bool or string, not {kind}")
            key_type = kind if key_type is None else join(key_type, kind)
            value_kind = self.visit(value)
            value_type = value_kind if value_type is None else join(value_type, value_kind)
        constants = self.out.constants
        if all(id(key) in constants and id(value) in constants for key, value in node.entries):
            pairs = [(constants[id(key)], constants[id(value)]) for key, value in node.entries]
            with contextlib.suppress(EvaluationError):
                constants[id(node)] = _runtime.make_map(pairs)
        return map_of(key_type or DYN, value_type or DYN)

    def visit_Unary(self, node: Unary) -> Type:
        operand = self.visit(node.operand)
        if node.op == "!":
            self.condition(node.operand, operand, "the operand of '!'")
            self.fold(node, lambda value: _runtime.not_(value), node.operand)
            return BOOL
        if operand.is_dyn or operand.kind in ("int", "double"):
            self.fold(node, lambda value: _runtime.neg(value), node.operand)
            return operand
        return self.mismatch(node, f"no matching overload for '-_' applied to ({operand})")

    def visit_Binary(self, node: Binary) -> Type:
        op = node.op
        if op in ("&&", "||"):
            return self.logical(node)
        left = self.visit(node.left)
        right = self.visit(node.right)
        result = self.operator_type(node, op, left, right)
        helper = getattr(_runtime, OPERATORS[op])
        self.fold(node, helper, node.left, node.right)
        return result

    def operator_type(self, node: Binary, op: str, left: Type, right: Type) -> Type:
        either_dyn = left.is_dyn or right.is_dyn
        if op in ("==", "!="):
            if not (either_dyn or _comparable(left, right)):
                return self.mismatch(node, _no_overload(op, left, right))
            return BOOL
        if op in ("<", "<=", ">", ">="):
            ordered = (left.kind in NUMERIC and right.kind in NUMERIC) or (
                left.kind == right.kind and left.kind in _ORDERED
            )
            if not (either_dyn or ordered):
                return self.mismatch(node, _no_overload(op, left, right))
            return BOOL
        if op == "in":
            if right.is_dyn:
                return BOOL
            if right.kind not in ("list", "map"):
                return self.mismatch(node, _no_overload(op, left, right))
            element = right.element
            if not (left.is_dyn or element.is_dyn or _comparable(left, element)):
                return self.mismatch(node, _no_overload(op, left, right))
            return BOOL
        return self.arithmetic(node, op, left, right)

    def arithmetic(self, node: Binary, op: str, left: Type, right: Type) -> Type:
        if left.is_dyn and right.is_dyn:
            return DYN
        if left.is_dyn or right.is_dyn:
            known = right if left.is_dyn else left
            if known.kind in NUMERIC or (op == "+" and known.kind in ("string", "bytes")):
                return known
            return DYN
        kinds = (left.kind, right.kind)
        same = left.kind == right.kind
        if op == "+":
            if same and left.kind in ("int", "uint", "double", "string", "bytes"):
                return left
            if same and left.kind == "list":
                return list_of(join(left.element, right.element))
            if kinds in ((_TS, _DUR), (_DUR, _TS)):
                return TIMESTAMP
            if kinds == (_DUR, _DUR):
                return DURATION
        elif op == "-":
            if same and left.kind in NUMERIC:
                return left
            if kinds == (_TS, _TS):
                return DURATION
            if kinds == (_TS, _DUR):
                return TIMESTAMP
            if kinds == (_DUR, _DUR):
                return DURATION
        elif op in ("*", "/"):
            if same and left.kind in NUMERIC:
                return left
        elif op == "%" and same and left.kind in ("int", "uint"):
            return left
        return self.mismatch(node, _no_overload(op, left, right))

    def logical(self, node: Binary) -> Type:
        left = self.visit(node.left)
        right = self.visit(node.right)
        what = f"an operand of '{node.op}'"
        self.condition(node.left, left, what)
        self.condition(node.right, right, what)
        absorbing = node.op == "||"
        constants = self.out.constants
        for side, other in ((node.left, node.right), (node.right, node.left)):
            value = constants.get(id(side))
            if value is absorbing and side is node.left:
                self.report(
                    side,
                    f"condition is always {_word(value)}, so '{other.text(self.source)}' "
                    "is never evaluated",
                    warning=True,
                    code="unreachable",
                )
            elif isinstance(value, bool):
                self.report(
                    side,
                    f"condition is always {_word(value)}",
                    warning=True,
                    code=f"always-{_word(value)}",
                )
        if id(node.left) in constants and id(node.right) in constants:
            self.fold(node, _LOGIC[node.op], node.left, node.right)
        elif constants.get(id(node.left), None) is absorbing or (
            constants.get(id(node.right), None) is absorbing
        ):
            constants[id(node)] = absorbing
        if node.op == "&&":
            self.contradiction(node)
        return BOOL

    def contradiction(self, node: Binary) -> None:
        """Warn when the comparisons of one name in an ``&&`` chain exclude every value."""
        if self.out.is_constant(node):
            return
        # Bounds stay ints or floats as written: Python compares the two exactly,
        # where converting 2**53 + 1 to a float would not.
        bounds: dict[str, list[float | int]] = {}
        for term in chain(node, "&&"):
            found = _bound(term, self.out.constants)
            if found is None:
                continue
            name, op, limit = found
            low, high = bounds.setdefault(name, [-math.inf, math.inf, 0.0, 0.0])[:2]
            entry = bounds[name]
            if op in (">", ">=") and (limit > low or (limit == low and op == ">")):
                entry[0], entry[2] = limit, 1.0 if op == ">" else 0.0
            elif op in ("<", "<=") and (limit < high or (limit == high and op == "<")):
                entry[1], entry[3] = limit, 1.0 if op == "<" else 0.0
            elif op == "==":
                if limit > entry[0] or (limit == entry[0] and not entry[2]):
                    entry[0], entry[2] = limit, 0.0
                if limit < entry[1] or (limit == entry[1] and not entry[3]):
                    entry[1], entry[3] = limit, 0.0
                if not (entry[0] <= limit <= entry[1]):
                    entry[0], entry[1] = math.inf, -math.inf
        for name, (low, high, open_low, open_high) in bounds.items():
            if low > high or (low == high and (open_low or open_high)):
                self.report(
                    node,
                    f"the conditions on '{name}' can never all be true, so this is always false",
                    warning=True,
                    code="always-false",
                )

    def condition(self, node: Node, kind: Type, what: str) -> None:
        if not (kind.is_dyn or kind == BOOL):
            self.mismatch(node, f"{what} must be a bool, not {kind}")

    def visit_Conditional(self, node: Conditional) -> Type:
        condition = self.visit(node.condition)
        self.condition(node.condition, condition, "the condition of '?:'")
        then = self.visit(node.then)
        otherwise = self.visit(node.otherwise)
        value = self.out.constants.get(id(node.condition))
        if isinstance(value, bool):
            dead = node.otherwise if value else node.then
            self.report(
                node.condition,
                f"condition is always {_word(value)}, so '{dead.text(self.source)}' is never "
                "evaluated",
                warning=True,
                code="unreachable",
            )
            taken = node.then if value else node.otherwise
            if id(taken) in self.out.constants:
                self.out.constants[id(node)] = self.out.constants[id(taken)]
        return join(then, otherwise)

    def visit_Call(self, node: Call) -> Type:
        target = self.visit(node.target) if node.target is not None else None
        args = [self.visit(arg) for arg in node.args]
        entry = FUNCTIONS.get(node.function)
        if entry is None:
            # Unchecked (no declarations), an unknown function is a runtime error, which
            # `||` and `&&` may absorb as CEL prescribes: f_unknown(1) || true is true.
            if self.strict:
                self.report(
                    node, f"undeclared reference to function '{node.function}'", code="undeclared"
                )
            return DYN
        helper, overloads = entry
        result: Type | None = None
        for receiver, kinds, returns in overloads:
            if (receiver is None) != (target is None) or len(kinds) != len(args):
                continue
            if target is not None and not _matches(receiver, target):
                continue
            if all(_matches(kind, arg) for kind, arg in zip(kinds, args, strict=True)):
                result = returns if result is None else join(result, returns)
        if result is None:
            shown = ", ".join(str(arg) for arg in ([target] if target else []) + args)
            form = f"{target}.{node.function}" if target is not None else node.function
            if not self.strict and any(_fits_arity(sig, target, args) for sig in overloads):
                return DYN  # left to run time, where it is a no-matching-overload error
            self.report(
                node, f"no matching overload for '{form}' applied to ({shown})", code="type-error"
            )
            return DYN
        if node.function == "type" and args:
            result = type_of(args[0])
        operands = ([node.target] if node.target is not None else []) + node.args
        if node.function in _FOLDABLE:
            self.fold(node, getattr(_runtime, helper), *operands)
        return result

    def visit_Comprehension(self, node: Comprehension) -> Type:
        range_type = self.visit(node.range)
        index: Type = DYN
        if range_type.is_dyn:
            variable = DYN
        elif range_type.kind == "list":
            index, variable = INT, range_type.element
        elif range_type.kind == "map":
            # One variable ranges over the keys; two over (key, value) pairs.
            index, variable = range_type.element, range_type.element
            if node.index is not None:
                variable = range_type.value
        else:
            variable = self.mismatch(node.range, f"cannot iterate over a {range_type}")
        bound = [(node.variable, node.variable_start, variable)]
        if node.index is not None:
            bound.insert(0, (node.index, node.index_start, index))
        for name, start, _kind in bound:
            if name in self.scopes or name in self.declarations:
                what = (
                    "an enclosing comprehension variable" if name in self.scopes else "a variable"
                )
                self.report(
                    start,
                    f"'{name}' shadows {what} of the same name",
                    warning=True,
                    code="shadowed",
                )
        for name, _start, kind in bound:
            self.scopes.append(name)
            self.local_types.append(kind)
        try:
            if node.guard is not None:
                guard = self.visit(node.guard)
                self.condition(node.guard, guard, f"the filter of {node.kind}()")
            body = self.visit(node.body)
        finally:
            for _ in bound:
                self.scopes.pop()
                self.local_types.pop()
        if node.kind in ("map", "transformList"):
            return list_of(body)
        if node.kind == "transformMap":
            return map_of(index, body)
        self.condition(node.body, body, f"the predicate of {node.kind}()")
        if node.kind == "filter":
            return list_of(variable)
        return BOOL

    # -- constants -------------------------------------------------------------
    def fold(self, node: Node, function: Callable[..., Any], *operands: Node) -> None:
        constants = self.out.constants
        if not all(id(operand) in constants for operand in operands):
            return
        # An error is a value in CEL: it is raised (or absorbed) at run time instead.
        with contextlib.suppress(EvaluationError):
            constants[id(node)] = function(*(constants[id(operand)] for operand in operands))


_FOLDABLE = frozenset({"size", "contains", "startsWith", "endsWith", "int", "uint", "double"})


def _logic_and(left: Any, right: Any) -> Any:
    return _runtime.and_(lambda: left, lambda: right)


def _logic_or(left: Any, right: Any) -> Any:
    return _runtime.or_(lambda: left, lambda: right)


_LOGIC: dict[str, Callable[[Any, Any], Any]] = {"&&": _logic_and, "||": _logic_or}


def _word(value: object) -> str:
    return "true" if value else "false"


def _matches(kind: str | None, actual: Type) -> bool:
    return kind == _ANY or actual.is_dyn or actual.kind == kind


def _fits_arity(sig: _Sig, target: Type | None, args: list[Type]) -> bool:
    return (sig[0] is None) == (target is None) and len(sig[1]) == len(args)


def _comparable(left: Type, right: Type) -> bool:
    if left.is_dyn or right.is_dyn or left.kind == "null_type" or right.kind == "null_type":
        return True
    if left.kind in NUMERIC and right.kind in NUMERIC:
        return True
    return left.kind == right.kind


def _no_overload(op: str, left: Type, right: Type) -> str:
    return f"no matching overload for '_{op}_' applied to ({left}, {right})"


def _bound(term: Node, constants: Mapping[int, Any]) -> tuple[str, str, float | int] | None:
    """``(name, op, number)`` for ``name op number`` or ``number op name``, else ``None``."""
    if not isinstance(term, Binary) or term.op not in _FLIP or term.op == "!=":
        return None
    left, right, op = term.left, term.right, term.op
    if id(left) in constants and id(right) not in constants:
        left, right, op = right, left, _FLIP[op]
    name = qualified_name(left)
    value = constants.get(id(right))
    if name is None or id(left) in constants or isinstance(value, bool):
        return None
    if not isinstance(value, int | float) or (isinstance(value, float) and math.isnan(value)):
        return None
    return name, op, value


def check(
    node: Node,
    declarations: Mapping[str, Type] | None,
    source: str,
    *,
    filename: str | None = None,
    constants: Mapping[str, tuple[Type, Any]] | None = None,
    origins: Mapping[int, tuple[str, str | None]] | None = None,
) -> Checked:
    """Check ``node`` against ``declarations`` (``None``: everything is a ``dyn`` variable).

    ``constants`` names values (a rule file's ``const`` items); ``origins`` maps
    nodes that came from another text (an imported ``let``) to that text and its
    file name, so findings inside them point there.
    """
    checker = _Checker(
        declarations or {},
        source,
        filename,
        declarations is not None,
        constants or {},
        origins or {},
    )
    checker.local_types = []
    checker.visit(node)
    return checker.out
