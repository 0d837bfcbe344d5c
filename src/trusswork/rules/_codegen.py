"""Code generation: a checked CEL tree to one Python function, compiled once.

Each expression becomes a module with two functions over the bindings
mapping ``_m``:

``_exact(_m)``
    CEL semantics throughout: every operation goes through a helper of
    :mod:`._runtime`, ``&&``/``||``/``?:`` and the macros take their operands as
    closures so an error on one side can be absorbed by the other, as CEL's
    commutative logic requires.
``_evaluate(_m)``
    The fast path, written as a person would write the check by hand: where
    the checker proved the operand types, plain Python operators
    (``_m['status'] >= 500 and _m['path'].startswith('/api')``), with inline
    int64 overflow checks. It runs inside ``try``; on any exception it calls
    ``_exact(_m)``. Because generated code is a pure function of its inputs,
    running it again is safe, and a fast path that completes gives the same
    value CEL would: short-circuiting only skips operands whose value cannot
    change the result, and every fast operator is used only on the types
    where it agrees with CEL's.

Safety: the generated code reads its inputs only through ``_m[...]``
subscripts and calls only the helpers placed in its globals; field selection
compiles to subscripts, never to attribute access, and CEL names never become
Python names (comprehension variables are renamed ``_v0``, ``_v1``, ...). The
globals hold no ``__builtins__`` beyond ``len``, ``all``, ``any`` and ``sum``.
"""

from __future__ import annotations

import ast
import datetime as _dt
from collections.abc import Callable
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
)
from trusswork.rules._checker import FUNCTIONS, OPERATORS, Checked, qualified_name
from trusswork.rules._types import NUMERIC, Type
from trusswork.rules._values import (
    DURATION_TYPE,
    INT64_MAX,
    INT64_MIN,
    TIMESTAMP_TYPE,
    EvaluationError,
    UInt,
)

__all__ = ["FALLBACK", "generate", "python_source"]


class TypeMismatch(Exception):
    """An input's value is not of its declared type: the fast path hands over to the exact one."""


# What sends the fast path to the exact one: CEL errors and whatever Python raises
# when a value is not what the static types promised.
FALLBACK: tuple[type[BaseException], ...] = (
    TypeMismatch,
    EvaluationError,
    RecursionError,
    KeyError,
    IndexError,
    TypeError,
    ValueError,
    ZeroDivisionError,
    OverflowError,
    AttributeError,
)

_SAFE_BUILTINS: dict[str, Any] = {"len": len, "all": all, "any": any, "sum": sum}
_PRIMITIVE_ORDER = frozenset({"int", "uint", "double", "string", "bytes", "bool"})
_ORDERED_SAME = frozenset({"string", "bytes", "bool"})
_TIME = frozenset({"google.protobuf.Timestamp", "google.protobuf.Duration"})
_PY_COMPARE: dict[str, type[ast.cmpop]] = {
    "==": ast.Eq,
    "!=": ast.NotEq,
    "<": ast.Lt,
    "<=": ast.LtE,
    ">": ast.Gt,
    ">=": ast.GtE,
}
_PY_ARITH: dict[str, type[ast.operator]] = {
    "+": ast.Add,
    "-": ast.Sub,
    "*": ast.Mult,
    "/": ast.Div,
}


def variable(bindings: Any, name: str) -> Any:
    """A variable's value from the bindings; CEL's "no such attribute" when it is unbound."""
    try:
        return bindings[name]
    except (KeyError, TypeError, IndexError):
        raise EvaluationError(
            f"no such attribute: '{name}' is not bound", kind="no such attribute"
        ) from None


def undeclared(name: str, *args: Any) -> Any:
    """A call of a function CEL does not know, in an expression compiled unchecked."""
    raise EvaluationError(
        f"no matching overload: function '{name}' is not declared", kind="no matching overload"
    )


def overflow() -> Any:
    raise EvaluationError("integer overflow", kind="overflow")


def convert(error: BaseException) -> EvaluationError:
    """A Python exception met on the exact path, as the CEL error it stands for."""
    if isinstance(error, EvaluationError):
        return error
    if isinstance(error, RecursionError):
        return EvaluationError("value nests too deeply", kind="limit")
    return EvaluationError(f"no matching overload ({error})", kind="no matching overload")


class _Generator:
    def __init__(self, checked: Checked) -> None:
        self.checked = checked
        self.globals: dict[str, Any] = {
            "__builtins__": dict(_SAFE_BUILTINS),
            "_variable": variable,
            "_overflow": overflow,
            "_convert": convert,
            "_EvaluationError": EvaluationError,
            "_FALLBACK": FALLBACK,
        }
        self.constants: dict[int, str] = {}
        # CEL name -> Python local, and the position in a pair for two-variable forms.
        self.scopes: list[tuple[str, str, int | None]] = []
        self.counter = 0
        self.in_iterable = 0
        self.fast = False
        # Fast path only: input name -> the local its checked value is bound to.
        self.inputs: dict[str, str] = {}

    # -- names ------------------------------------------------------------------
    def helper(self, name: str) -> ast.Name:
        key = "_" + name.rstrip("_")
        self.globals[key] = getattr(_runtime, name)
        return ast.Name(key, ast.Load())

    def call(self, name: str, *args: ast.expr) -> ast.Call:
        return ast.Call(self.helper(name), list(args), [])

    def constant(self, value: Any) -> ast.expr:
        if value is None or type(value) in (bool, int, float, str, bytes):
            return ast.Constant(value)
        key = self.constants.get(id(value))
        if key is None:
            key = f"_k{len(self.constants)}"
            self.constants[id(value)] = key
            self.globals[key] = value
        return ast.Name(key, ast.Load())

    def local(self) -> str:
        self.counter += 1
        return f"_v{self.counter}"

    def type(self, node: Node) -> Type:
        return self.checked.type(node)

    def is_bool(self, node: Node) -> bool:
        return self.type(node).kind == "bool"

    # -- expressions -----------------------------------------------------------
    def expr(self, node: Node) -> ast.expr:
        value = self.checked.constants.get(id(node), _MISSING)
        if value is not _MISSING and not isinstance(value, list | dict):
            return self.constant(value)
        method: Callable[[Any], ast.expr] = getattr(self, "gen_" + type(node).__name__)
        return method(node)

    def thunk(self, node: Node) -> ast.Lambda:
        return ast.Lambda(_no_args(), self.expr(node))

    def gen_Literal(self, node: Literal) -> ast.expr:
        return self.constant(node.value)

    def gen_Ident(self, node: Ident) -> ast.expr:
        if id(node) in self.checked.constants:  # a named constant holding a list or map
            return self.constant(self.checked.constants[id(node)])
        ref = self.checked.refs.get(id(node), "var")
        if ref == "local":
            for name, python_name, position in reversed(self.scopes):
                if name == node.name:
                    local = ast.Name(python_name, ast.Load())
                    if position is None:
                        return local
                    # A two-variable comprehension binds one (index, value) pair.
                    return ast.Subscript(local, ast.Constant(position), ast.Load())
        return self.variable(node.name, self.type(node))

    def variable(self, name: str, kind: Type) -> ast.expr:
        read = ast.Subscript(_bindings(), ast.Constant(name), ast.Load())
        if not self.fast:
            return ast.Call(
                ast.Name("_variable", ast.Load()), [_bindings(), ast.Constant(name)], []
            )
        cls = _CLASSES.get(kind.kind)
        if cls is None:
            return read
        # The fast path's plain operators are only right for values of the declared type
        # (a str bound to a list(string) input would make `in` a substring test): each
        # read checks the type, and any other value hands over to the exact path.
        key = f"_c_{cls.__name__}"
        self.globals[key] = cls
        self.globals["_type"] = type
        self.globals["_mismatch"] = mismatch
        if self.in_iterable:  # no walrus in a comprehension's iterable: check in a call
            self.globals["_typed"] = typed
            return ast.Call(ast.Name("_typed", ast.Load()), [read, ast.Name(key, ast.Load())], [])
        local = self.inputs.setdefault(name, f"_i{len(self.inputs)}")
        actual = ast.Call(
            ast.Name("_type", ast.Load()), [ast.NamedExpr(ast.Name(local, ast.Store()), read)], []
        )
        test = ast.Compare(actual, [ast.Is()], [ast.Name(key, ast.Load())])
        failed = ast.Call(ast.Name("_mismatch", ast.Load()), [], [])
        return ast.IfExp(test, ast.Name(local, ast.Load()), failed)

    def gen_Select(self, node: Select) -> ast.expr:
        if self.checked.refs.get(id(node)) == "var" and not node.test_only:
            return self.variable(qualified_name(node) or node.field, self.type(node))
        operand = self.expr(node.operand)
        field = ast.Constant(node.field)
        is_map = self.type(node.operand).kind == "map"
        if node.test_only:
            if self.fast and is_map:
                return ast.Compare(field, [ast.In()], [operand])
            return self.call("has", operand, field)
        if self.fast and is_map:
            return ast.Subscript(operand, field, ast.Load())
        return self.call("select", operand, field)

    def gen_Index(self, node: Index) -> ast.expr:
        operand = self.expr(node.operand)
        index = self.expr(node.index)
        container = self.type(node.operand)
        string_key = container.element.kind == "string" == self.type(node.index).kind
        if self.fast and container.kind == "map" and string_key:
            return ast.Subscript(operand, index, ast.Load())
        return self.call("index", operand, index)

    def gen_ListExpr(self, node: ListExpr) -> ast.expr:
        return ast.List([self.expr(item) for item in node.items], ast.Load())

    def gen_MapExpr(self, node: MapExpr) -> ast.expr:
        pairs: list[ast.expr] = [
            ast.Tuple([self.expr(key), self.expr(value)], ast.Load()) for key, value in node.entries
        ]
        return self.call("make_map", ast.List(pairs, ast.Load()))

    def gen_Unary(self, node: Unary) -> ast.expr:
        operand = self.expr(node.operand)
        if node.op == "!":
            if self.fast and self.is_bool(node.operand):
                return ast.UnaryOp(ast.Not(), operand)
            return self.call("not_", operand)
        if self.fast and self.type(node.operand).kind == "double":
            return ast.UnaryOp(ast.USub(), operand)
        return self.call("neg", operand)

    def gen_Binary(self, node: Binary) -> ast.expr:
        op = node.op
        if op in ("&&", "||"):
            if self.fast and self.is_bool(node.left) and self.is_bool(node.right):
                kind: ast.boolop = ast.And() if op == "&&" else ast.Or()
                return ast.BoolOp(kind, [self.expr(node.left), self.expr(node.right)])
            helper = "and_" if op == "&&" else "or_"
            return self.call(helper, self.thunk(node.left), self.thunk(node.right))
        left = self.expr(node.left)
        right = self.expr(node.right)
        if self.fast:
            fast = self.fast_binary(op, node, left, right)
            if fast is not None:
                return fast
        return self.call(OPERATORS[op], left, right)

    def fast_binary(
        self, op: str, node: Binary, left: ast.expr, right: ast.expr
    ) -> ast.expr | None:
        lt, rt = self.type(node.left), self.type(node.right)
        lk, rk = lt.kind, rt.kind
        if op in _PY_COMPARE:
            numeric = lk in NUMERIC and rk in NUMERIC
            if numeric and op not in ("==", "!=") and lk != rk and "double" in (lk, rk):
                return None  # int against double orders as doubles: the runtime helper does it
            same = lk == rk and (lk in _ORDERED_SAME or lk in _TIME)
            if numeric or same:
                return ast.Compare(left, [_PY_COMPARE[op]()], [right])
            return None
        if op == "in":
            element = rt.element
            primitive = element.kind in ("int", "uint", "string", "bytes", "bool")
            if rk == "list" and primitive and lk == element.kind:
                return ast.Compare(left, [ast.In()], [right])
            if rk == "map" and element.kind == "string" and lk == "string":
                return ast.Compare(left, [ast.In()], [right])
            return None
        if lk != rk:
            return None
        if lk == "double" and op in _PY_ARITH:
            return ast.BinOp(left, _PY_ARITH[op](), right)
        if op == "+" and lk in ("string", "bytes"):
            return ast.BinOp(left, ast.Add(), right)
        if lk == "int" and op in ("+", "-", "*"):
            result = ast.BinOp(left, _PY_ARITH[op](), right)
            if self.in_iterable:
                return self.call("check_int", result)
            return self.checked_int(result)
        return None

    def checked_int(self, value: ast.expr) -> ast.expr:
        """``(_t if MIN <= (_t := value) <= MAX else _overflow())``: int64 range, inline."""
        self.counter += 1
        temp = f"_t{self.counter}"
        test = ast.Compare(
            ast.Constant(INT64_MIN),
            [ast.LtE(), ast.LtE()],
            [ast.NamedExpr(ast.Name(temp, ast.Store()), value), ast.Constant(INT64_MAX)],
        )
        failed = ast.Call(ast.Name("_overflow", ast.Load()), [], [])
        return ast.IfExp(test, ast.Name(temp, ast.Load()), failed)

    def gen_Conditional(self, node: Conditional) -> ast.expr:
        if self.fast and self.is_bool(node.condition):
            return ast.IfExp(
                self.expr(node.condition), self.expr(node.then), self.expr(node.otherwise)
            )
        return self.call(
            "cond", self.expr(node.condition), self.thunk(node.then), self.thunk(node.otherwise)
        )

    def gen_Call(self, node: Call) -> ast.expr:
        operands = ([node.target] if node.target is not None else []) + node.args
        args = [self.expr(operand) for operand in operands]
        if node.function not in FUNCTIONS:  # unchecked code: an error when it runs
            self.globals["_undeclared"] = undeclared
            return ast.Call(
                ast.Name("_undeclared", ast.Load()), [ast.Constant(node.function), *args], []
            )
        helper, _overloads = FUNCTIONS[node.function]
        if self.fast:
            kinds = [self.type(operand).kind for operand in operands]
            if node.function == "size" and kinds[0] in ("string", "bytes", "list", "map"):
                return ast.Call(ast.Name("len", ast.Load()), args, [])
            if kinds == ["string", "string"] and node.target is not None:
                if node.function == "contains":
                    return ast.Compare(args[1], [ast.In()], [args[0]])
                method = {"startsWith": "startswith", "endsWith": "endswith"}.get(node.function)
                if method is not None:
                    attribute = ast.Attribute(args[0], method, ast.Load())
                    return ast.Call(attribute, [args[1]], [])
        return self.call(helper, *args)

    def gen_Comprehension(self, node: Comprehension) -> ast.expr:
        self.in_iterable += 1
        try:
            iterable = self.expr(node.range)
        finally:
            self.in_iterable -= 1
        name = self.local()
        pairs = node.index is not None
        self.scopes.append((node.variable, name, 1 if pairs else None))
        if node.index is not None:
            self.scopes.append((node.index, name, 0))
        try:
            body = self.expr(node.body)
            guard = self.expr(node.guard) if node.guard is not None else None
        finally:
            del self.scopes[-2 if pairs else -1 :]
        if pairs:
            iterable = self.call("pairs", iterable)
        range_kind = self.type(node.range).kind
        if (
            not pairs
            and self.fast
            and range_kind in ("list", "map")
            and (node.kind == "map" or self.is_bool(node.body))
            and (node.guard is None or self.is_bool(node.guard))
        ):
            return self.fast_comprehension(node.kind, name, iterable, body, guard)
        argument = ast.arguments(
            posonlyargs=[],
            args=[ast.arg(name)],
            kwonlyargs=[],
            kw_defaults=[],
            defaults=[],
        )
        body_fn = ast.Lambda(argument, body)
        if node.kind == "transformMap":
            guard_fn = ast.Lambda(argument, guard) if guard is not None else ast.Constant(None)
            return self.call("transform_map", iterable, guard_fn, body_fn)
        if node.kind in ("map", "transformList") and guard is not None:
            guard_fn = ast.Lambda(argument, guard)
            return self.call("map_filter_", iterable, guard_fn, body_fn)
        helper = {"exists_one": "exists_one_", "transformList": "map_"}.get(
            node.kind, node.kind + "_"
        )
        return self.call(helper, iterable, body_fn)

    def fast_comprehension(
        self, kind: str, name: str, iterable: ast.expr, body: ast.expr, guard: ast.expr | None
    ) -> ast.expr:
        target = ast.Name(name, ast.Store())
        if kind in ("all", "exists"):
            loop = ast.comprehension(target, iterable, [], 0)
            generator = ast.GeneratorExp(body, [loop])
            return ast.Call(ast.Name(kind.replace("exists", "any"), ast.Load()), [generator], [])
        if kind == "exists_one":
            loop = ast.comprehension(target, iterable, [body], 0)
            count = ast.Call(
                ast.Name("sum", ast.Load()), [ast.GeneratorExp(ast.Constant(1), [loop])], []
            )
            return ast.Compare(count, [ast.Eq()], [ast.Constant(1)])
        if kind == "filter":
            loop = ast.comprehension(target, iterable, [body], 0)
            return ast.ListComp(ast.Name(name, ast.Load()), [loop])
        loop = ast.comprehension(target, iterable, [guard] if guard is not None else [], 0)
        return ast.ListComp(body, [loop])


_MISSING = object()


def _no_args() -> ast.arguments:
    return ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[])


def _bindings() -> ast.Name:
    return ast.Name("_m", ast.Load())


def _function(name: str, body: list[ast.stmt]) -> ast.FunctionDef:
    arguments = ast.arguments(
        posonlyargs=[], args=[ast.arg("_m")], kwonlyargs=[], kw_defaults=[], defaults=[]
    )
    return ast.FunctionDef(name, arguments, body, [], None, None)


def _handler(kind: str, body: list[ast.stmt], *, bind: str | None = None) -> ast.ExceptHandler:
    return ast.ExceptHandler(ast.Name(kind, ast.Load()), bind, body)


def _locate(tree: ast.AST) -> None:
    """Give every node the location ``compile()`` requires (all generated code is "line 1").

    A leaner :func:`ast.fix_missing_locations`: it does not recurse and does not
    copy locations from parents, which compile time of large rule files notices.
    """
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if "lineno" in node._attributes:
            node.lineno = node.end_lineno = 1  # type: ignore[attr-defined]
            node.col_offset = node.end_col_offset = 0  # type: ignore[attr-defined]
        for name in node._fields:
            value = getattr(node, name, None)
            if isinstance(value, ast.AST):
                stack.append(value)
            elif isinstance(value, list):
                stack.extend(item for item in value if isinstance(item, ast.AST))


def _exact_function(
    root: Node, checked: Checked, name: str
) -> tuple[ast.FunctionDef, dict[str, Any]]:
    """``def name(_m)``: the CEL-exact evaluation, Python errors turned into CEL ones."""
    generator = _Generator(checked)
    exact = generator.expr(root)
    generator.globals["Exception"] = Exception
    convert_error = ast.Call(ast.Name("_convert", ast.Load()), [ast.Name("_error", ast.Load())], [])
    handlers = [
        _handler("_EvaluationError", [ast.Raise(None, None)]),
        _handler("Exception", [ast.Raise(convert_error, ast.Constant(None))], bind="_error"),
    ]
    body: list[ast.stmt] = [ast.Try([ast.Return(exact)], handlers, [], [])]
    return _function(name, body), generator.globals


def _fast_function(root: Node, checked: Checked) -> tuple[ast.FunctionDef, dict[str, Any]]:
    """``def _evaluate(_m)``: the typed fast path, falling back to ``_exact(_m)``."""
    generator = _Generator(checked)
    generator.fast = True
    fast = generator.expr(root)
    call_exact = ast.Call(ast.Name("_exact", ast.Load()), [_bindings()], [])
    handler = _handler("_FALLBACK", [ast.Return(call_exact)])
    body: list[ast.stmt] = [ast.Return(fast)]
    return _function("_evaluate", [ast.Try(body, [handler], [], [])]), generator.globals


# The Python class a value of each static type must have for the fast path to apply.
_CLASSES: dict[str, type] = {
    "int": int,
    "uint": UInt,
    "double": float,
    "string": str,
    "bytes": bytes,
    "bool": bool,
    "list": list,
    "map": dict,
    TIMESTAMP_TYPE: _dt.datetime,
    DURATION_TYPE: _dt.timedelta,
}


def mismatch() -> Any:
    raise TypeMismatch


def typed(value: Any, cls: type) -> Any:
    """``value`` if it is exactly a ``cls``; :class:`TypeMismatch` otherwise."""
    if type(value) is not cls:
        raise TypeMismatch
    return value


def _load(function: ast.FunctionDef, namespace: dict[str, Any], filename: str) -> Any:
    module = ast.Module([function], [])
    _locate(module)
    exec(compile(module, filename, "exec"), namespace)
    return namespace[function.name]


class _LazyExact:
    """Stands in for ``_exact`` until a fast path first falls back, then compiles it.

    Most evaluations never fall back, so compiling the exact function only on
    demand halves the compile time of a rule file.
    """

    __slots__ = ("checked", "filename", "namespace", "root")

    def __init__(self, root: Node, checked: Checked, namespace: dict[str, Any], filename: str):
        self.root = root
        self.checked = checked
        self.namespace = namespace
        self.filename = filename

    def __call__(self, bindings: Any) -> Any:
        function, namespace = _exact_function(self.root, self.checked, "_exact")
        exact = _load(function, namespace, self.filename)
        self.namespace["_exact"] = exact
        return exact(bindings)


def generate(
    root: Node, checked: Checked, *, filename: str = "<cel>", exact_only: bool = False
) -> Callable[[Any], Any]:
    """Compile ``root`` to a Python function of the bindings mapping.

    ``exact_only`` skips the fast path (for code that runs rarely, such as
    message placeholders).
    """
    if exact_only:
        function, namespace = _exact_function(root, checked, "_evaluate")
    else:
        function, namespace = _fast_function(root, checked)
        namespace["_exact"] = _LazyExact(root, checked, namespace, filename)
    compiled: Callable[[Any], Any] = _load(function, namespace, filename)
    return compiled


def python_source(root: Node, checked: Checked) -> str:
    """The generated module as Python source text, for auditing."""
    exact, _exact_globals = _exact_function(root, checked, "_exact")
    fast, _fast_globals = _fast_function(root, checked)
    module = ast.Module([exact, fast], [])
    _locate(module)
    return ast.unparse(module)
