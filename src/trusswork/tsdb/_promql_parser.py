"""PromQL text to syntax tree: a hand-written lexer and precedence-climbing parser.

The parser also type-checks, as Prometheus does at parse time: function
argument types, aggregation parameters, which operators scalars accept, and
that ranges only follow selectors. Every error is a
:class:`~trusswork.core.errors.ParseError` whose column points at the
offending token.

Operator precedence, lowest first: ``or``; ``and``/``unless``; comparisons;
``+ -``; ``* / % atan2``; ``^`` (right-associative). Unary minus binds
looser than ``^`` (``-2^2`` is ``-4``) and tighter than ``*``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NoReturn

from trusswork.core.errors import InvalidInput, ParseError
from trusswork.tsdb._promql_ast import (
    AggregateExpr,
    AtModifier,
    BinaryExpr,
    Call,
    Expr,
    MatrixSelector,
    NumberLiteral,
    ParenExpr,
    StringLiteral,
    SubqueryExpr,
    UnaryExpr,
    ValueType,
    VectorMatching,
    VectorSelector,
)
from trusswork.tsdb._promql_lexer import (
    LABEL_NAME_RE,
    Lexer,
    Token,
    parse_duration,
    translate_regex,
)
from trusswork.tsdb._series import Matcher

__all__ = ["AGGREGATORS", "FUNCTIONS", "parse", "parse_duration", "translate_regex"]

# name -> (argument types, minimum argument count or -1 when all are required,
#          whether the last type repeats, return type)
_V: ValueType = "vector"
_M: ValueType = "matrix"
_S: ValueType = "scalar"
_STR: ValueType = "string"


@dataclass(frozen=True, slots=True)
class _Signature:
    args: tuple[ValueType, ...]
    min_args: int
    variadic: bool
    returns: ValueType


def _sig(
    args: tuple[ValueType, ...],
    returns: ValueType = "vector",
    *,
    min_args: int | None = None,
    variadic: bool = False,
) -> _Signature:
    return _Signature(args, len(args) if min_args is None else min_args, variadic, returns)


FUNCTIONS: dict[str, _Signature] = {
    **{
        name: _sig((_V,))
        for name in (
            "abs",
            "ceil",
            "floor",
            "exp",
            "ln",
            "log2",
            "log10",
            "sqrt",
            "sgn",
            "sin",
            "cos",
            "tan",
            "asin",
            "acos",
            "atan",
            "sinh",
            "cosh",
            "tanh",
            "asinh",
            "acosh",
            "atanh",
            "deg",
            "rad",
            "timestamp",
            "sort",
            "sort_desc",
            "absent",
        )
    },
    **{
        name: _sig((_V,), min_args=0)
        for name in (
            "day_of_month",
            "day_of_week",
            "day_of_year",
            "days_in_month",
            "hour",
            "minute",
            "month",
            "year",
        )
    },
    **{
        name: _sig((_M,))
        for name in (
            "rate",
            "irate",
            "increase",
            "delta",
            "idelta",
            "changes",
            "resets",
            "deriv",
            "avg_over_time",
            "min_over_time",
            "max_over_time",
            "sum_over_time",
            "count_over_time",
            "last_over_time",
            "first_over_time",
            "stddev_over_time",
            "stdvar_over_time",
            "present_over_time",
            "absent_over_time",
            "mad_over_time",
            "ts_of_first_over_time",
            "ts_of_last_over_time",
            "ts_of_min_over_time",
            "ts_of_max_over_time",
        )
    },
    "quantile_over_time": _sig((_S, _M)),
    "predict_linear": _sig((_M, _S)),
    "double_exponential_smoothing": _sig((_M, _S, _S)),
    "round": _sig((_V, _S), min_args=1),
    "clamp": _sig((_V, _S, _S)),
    "clamp_min": _sig((_V, _S)),
    "clamp_max": _sig((_V, _S)),
    "pi": _sig((), "scalar"),
    "start": _sig((), "scalar"),
    "end": _sig((), "scalar"),
    "step": _sig((), "scalar"),
    "range": _sig((), "scalar"),
    "min_of": _sig((_S, _S), "scalar"),
    "max_of": _sig((_S, _S), "scalar"),
    "time": _sig((), "scalar"),
    "vector": _sig((_S,)),
    "scalar": _sig((_V,), "scalar"),
    "label_replace": _sig((_V, _STR, _STR, _STR, _STR)),
    "label_join": _sig((_V, _STR, _STR, _STR), min_args=3, variadic=True),
    "sort_by_label": _sig((_V, _STR), min_args=1, variadic=True),
    "sort_by_label_desc": _sig((_V, _STR), min_args=1, variadic=True),
    "histogram_quantile": _sig((_S, _V)),
}

#: Aggregation operators, and whether each takes a parameter before the vector.
AGGREGATORS: dict[str, ValueType | None] = {
    "sum": None,
    "avg": None,
    "count": None,
    "min": None,
    "max": None,
    "group": None,
    "stddev": None,
    "stdvar": None,
    "topk": "scalar",
    "bottomk": "scalar",
    "count_values": "string",
    "quantile": "scalar",
    "limitk": "scalar",
    "limit_ratio": "scalar",
}

_KEYWORDS = frozenset(
    {
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset",
        "and",
        "or",
        "unless",
        "atan2",
    }
)

_PRECEDENCE = {
    "or": 1,
    "and": 2,
    "unless": 2,
    "==": 3,
    "!=": 3,
    "<=": 3,
    "<": 3,
    ">=": 3,
    ">": 3,
    "+": 4,
    "-": 4,
    "*": 5,
    "/": 5,
    "%": 5,
    "atan2": 5,
    "^": 6,
}
_COMPARISONS = frozenset({"==", "!=", "<=", "<", ">=", ">"})
_SET_OPS = frozenset({"and", "or", "unless"})


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = Lexer(text).tokens
        self.i = 0

    # -- token helpers -------------------------------------------------------
    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def next(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind != "eof":
            self.i += 1
        return tok

    def fail(self, message: str, pos: int | None = None) -> NoReturn:
        raise ParseError(
            message,
            source=self.text,
            offset=self.peek().pos if pos is None else pos,
            filename="<query>",
        )

    def describe(self, tok: Token) -> str:
        return "end of input" if tok.kind == "eof" else repr(tok.text)

    def is_op(self, text: str) -> bool:
        tok = self.peek()
        return tok.kind == "op" and tok.text == text

    def is_word(self, word: str) -> bool:
        tok = self.peek()
        return tok.kind == "ident" and tok.text.lower() == word

    def expect_op(self, text: str, context: str) -> Token:
        if not self.is_op(text):
            self.fail(f"unexpected {self.describe(self.peek())} {context}, expected {text!r}")
        return self.next()

    # -- grammar -------------------------------------------------------------
    def parse(self) -> Expr:
        if self.peek().kind == "eof":
            self.fail("no expression found in input")
        expr = self.expr(0)
        if self.peek().kind != "eof":
            self.fail(f"unexpected {self.describe(self.peek())} after a complete expression")
        return expr

    def binary_op(self) -> str | None:
        tok = self.peek()
        if tok.kind == "op" and tok.text in _PRECEDENCE:
            return tok.text
        if tok.kind == "ident" and tok.text.lower() in ("and", "or", "unless", "atan2"):
            return tok.text.lower()
        return None

    def expr(self, min_prec: int) -> Expr:
        lhs = self.unary()
        while True:
            op = self.binary_op()
            if op is None or _PRECEDENCE[op] < min_prec:
                return lhs
            op_tok = self.next()
            prec = _PRECEDENCE[op]
            return_bool = False
            if self.is_word("bool"):
                if op not in _COMPARISONS:
                    self.fail("bool modifier can only be used on comparison operators")
                self.next()
                return_bool = True
            matching = self.vector_matching(op)
            rhs = self.expr(prec if op == "^" else prec + 1)
            lhs = self.check_binary(op, lhs, rhs, return_bool, matching, op_tok.pos)

    def vector_matching(self, op: str) -> VectorMatching | None:
        card = "many-to-many" if op in _SET_OPS else "one-to-one"
        labels: tuple[str, ...] = ()
        on = False
        include: tuple[str, ...] = ()
        seen = False
        if self.is_word("on") or self.is_word("ignoring"):
            on = self.next().text.lower() == "on"
            labels = self.label_list()
            seen = True
        if self.is_word("group_left") or self.is_word("group_right"):
            tok = self.next()
            if not seen:
                self.fail(f"{tok.text} must follow on() or ignoring()", tok.pos)
            if op in _SET_OPS:
                self.fail(f"no grouping allowed for {op!r} operation", tok.pos)
            card = "many-to-one" if tok.text.lower() == "group_left" else "one-to-many"
            if self.is_op("("):
                include = self.label_list()
            if on and set(include) & set(labels):
                self.fail("label must not occur in ON and GROUP clause at once", tok.pos)
        if not seen and op not in _SET_OPS:
            return None
        return VectorMatching(card, labels, on, include)  # type: ignore[arg-type]

    def check_binary(
        self,
        op: str,
        lhs: Expr,
        rhs: Expr,
        return_bool: bool,
        matching: VectorMatching | None,
        pos: int,
    ) -> Expr:
        lt, rt = lhs.value_type, rhs.value_type
        for side, vt in ((lhs, lt), (rhs, rt)):
            if vt not in ("scalar", "vector"):
                self.fail(
                    f"binary expression must contain only scalar and instant vector types, "
                    f"got {vt}",
                    getattr(side, "pos", pos),
                )
        both_vectors = lt == "vector" and rt == "vector"
        if op in _SET_OPS and not both_vectors:
            self.fail(f"set operator {op!r} not allowed in binary scalar expression", pos)
        if op in _COMPARISONS and lt == "scalar" and rt == "scalar" and not return_bool:
            self.fail("comparisons between scalars must use BOOL modifier", pos)
        if matching is not None and not both_vectors:
            if matching.card != "one-to-one" or matching.labels or matching.on:
                self.fail("vector matching only allowed between instant vectors", pos)
            matching = None
        if both_vectors and matching is None:
            matching = VectorMatching("many-to-many" if op in _SET_OPS else "one-to-one")
        return BinaryExpr(op, lhs, rhs, return_bool, matching, pos)

    def unary(self) -> Expr:
        tok = self.peek()
        if tok.kind == "op" and tok.text in ("-", "+"):
            self.next()
            operand = self.expr(_PRECEDENCE["^"])
            if operand.value_type not in ("scalar", "vector"):
                self.fail(
                    f"unary expression only allowed on expressions of type scalar or "
                    f"instant vector, got {operand.value_type}",
                    tok.pos,
                )
            if isinstance(operand, NumberLiteral):
                value = -operand.value if tok.text == "-" else operand.value
                return NumberLiteral(value, tok.pos)
            if tok.text == "+":
                return operand
            return UnaryExpr("-", operand, tok.pos)
        return self.postfix(self.primary())

    def postfix(self, expr: Expr) -> Expr:
        while True:
            if self.is_op("["):
                expr = self.range_suffix(expr)
            elif self.is_word("offset"):
                expr = self.offset_suffix(expr)
            elif self.is_op("@"):
                expr = self.at_suffix(expr)
            else:
                return expr

    def duration(self, context: str, *, allow_negative: bool = False) -> int:
        tok = self.peek()
        sign = 1
        if allow_negative and tok.kind == "op" and tok.text in ("-", "+"):
            sign = -1 if tok.text == "-" else 1
            self.next()
            tok = self.peek()
        if tok.kind == "duration":
            self.next()
            return sign * int(tok.value)  # type: ignore[call-overload,no-any-return]
        if tok.kind == "number":
            self.next()
            seconds = float(tok.value)  # type: ignore[arg-type]
            if not math.isfinite(seconds) or abs(seconds) > 9.2e15:
                self.fail(f"duration out of range in {context}", tok.pos)
            return sign * round(seconds * 1000)
        if tok.kind == "ident" and self.peek(1).kind == "op" and self.peek(1).text == "(":
            self.fail(
                f"unknown function with name {tok.text!r} (duration expressions are not supported)",
                tok.pos,
            )
        self.fail(f"unexpected {self.describe(tok)} in {context}, expected a duration", tok.pos)

    def range_suffix(self, expr: Expr) -> Expr:
        open_tok = self.next()
        range_ms = self.duration("range")
        if range_ms <= 0:
            self.fail("range must be greater than 0", open_tok.pos + 1)
        if self.is_op(":"):
            self.next()
            step: int | None = None
            if not self.is_op("]"):
                step = self.duration("subquery step")
                if step <= 0:
                    self.fail("subquery step must be greater than 0", open_tok.pos)
            self.expect_op("]", "in subquery")
            if expr.value_type != "vector":
                self.fail(
                    f"subquery is only allowed on instant vector, got {expr.value_type}",
                    open_tok.pos,
                )
            return SubqueryExpr(expr, range_ms, step, pos=getattr(expr, "pos", 0))
        self.expect_op("]", "in range selector")
        if not isinstance(expr, VectorSelector):
            self.fail("ranges only allowed for vector selectors", open_tok.pos)
        if expr.offset_ms or expr.at is not None:
            self.fail("no offset or @ modifiers allowed before range", open_tok.pos)
        return MatrixSelector(expr, range_ms, expr.pos)

    def offset_suffix(self, expr: Expr) -> Expr:
        tok = self.next()
        offset = self.duration("offset", allow_negative=True)
        if isinstance(expr, VectorSelector):
            if expr.offset_ms:
                self.fail("offset may not be set multiple times", tok.pos)
            return VectorSelector(expr.name, expr.matchers, offset, expr.at, expr.pos)
        if isinstance(expr, MatrixSelector):
            sel = expr.selector
            if sel.offset_ms:
                self.fail("offset may not be set multiple times", tok.pos)
            inner = VectorSelector(sel.name, sel.matchers, offset, sel.at, sel.pos)
            return MatrixSelector(inner, expr.range_ms, expr.pos)
        if isinstance(expr, SubqueryExpr):
            if expr.offset_ms:
                self.fail("offset may not be set multiple times", tok.pos)
            return SubqueryExpr(expr.expr, expr.range_ms, expr.step_ms, offset, expr.at, expr.pos)
        self.fail(
            "offset modifier must be preceded by an instant vector selector or range "
            "vector selector or a subquery",
            tok.pos,
        )

    def at_suffix(self, expr: Expr) -> Expr:
        tok = self.next()
        at: AtModifier
        nxt = self.peek()
        if nxt.kind == "ident" and nxt.text.lower() in ("start", "end"):
            self.next()
            self.expect_op("(", f"after {nxt.text}")
            self.expect_op(")", f"after {nxt.text}(")
            at = "start" if nxt.text.lower() == "start" else "end"
        else:
            sign = 1.0
            if nxt.kind == "op" and nxt.text in ("-", "+"):
                sign = -1.0 if nxt.text == "-" else 1.0
                self.next()
                nxt = self.peek()
            if nxt.kind not in ("number", "duration"):
                self.fail(f"unexpected {self.describe(nxt)} after @, expected a timestamp", nxt.pos)
            self.next()
            raw = float(nxt.value)  # type: ignore[arg-type]
            seconds = sign * (raw / 1000 if nxt.kind == "duration" else raw)
            if not math.isfinite(seconds) or abs(seconds) > 9.2e15:
                self.fail("timestamp out of bounds for @ modifier", nxt.pos)
            at = round(seconds * 1000)
        if isinstance(expr, VectorSelector):
            if expr.at is not None:
                self.fail("@ <timestamp> may not be set multiple times", tok.pos)
            return VectorSelector(expr.name, expr.matchers, expr.offset_ms, at, expr.pos)
        if isinstance(expr, MatrixSelector):
            sel = expr.selector
            if sel.at is not None:
                self.fail("@ <timestamp> may not be set multiple times", tok.pos)
            inner = VectorSelector(sel.name, sel.matchers, sel.offset_ms, at, sel.pos)
            return MatrixSelector(inner, expr.range_ms, expr.pos)
        if isinstance(expr, SubqueryExpr):
            if expr.at is not None:
                self.fail("@ <timestamp> may not be set multiple times", tok.pos)
            return SubqueryExpr(
                expr.expr, expr.range_ms, expr.step_ms, expr.offset_ms, at, expr.pos
            )
        self.fail(
            "@ modifier must be preceded by an instant vector selector or range vector "
            "selector or a subquery",
            tok.pos,
        )

    def primary(self) -> Expr:
        tok = self.peek()
        if tok.kind == "number":
            self.next()
            return NumberLiteral(float(tok.value), tok.pos)  # type: ignore[arg-type]
        if tok.kind == "duration":
            self.next()
            return NumberLiteral(int(tok.value) / 1000, tok.pos)  # type: ignore[call-overload]
        if tok.kind == "string":
            self.next()
            return StringLiteral(str(tok.value), tok.pos)
        if tok.kind == "op" and tok.text == "(":
            self.next()
            inner = self.expr(0)
            self.expect_op(")", "in parenthesized expression")
            return ParenExpr(inner, tok.pos)
        if tok.kind == "op" and tok.text == "{":
            return self.selector(None, tok.pos)
        if tok.kind == "ident":
            return self.identifier()
        self.fail(f"unexpected {self.describe(tok)}, expected an expression")

    def identifier(self) -> Expr:
        tok = self.next()
        word = tok.text
        lower = word.lower()
        nxt = self.peek()
        if lower in ("inf", "nan"):
            return NumberLiteral(math.inf if lower == "inf" else math.nan, tok.pos)
        if lower in AGGREGATORS and (
            (nxt.kind == "op" and nxt.text == "(") or self.is_word("by") or self.is_word("without")
        ):
            return self.aggregate(lower, tok)
        if nxt.kind == "op" and nxt.text == "(":
            if word in _KEYWORDS:
                self.fail(f"unexpected keyword {word!r}", tok.pos)
            return self.call(tok)
        if lower in _KEYWORDS and lower not in (
            "on",
            "ignoring",
            "group_left",
            "group_right",
            "bool",
        ):
            self.fail(f"unexpected keyword {word!r}, expected an expression", tok.pos)
        return self.selector(word, tok.pos)

    def call(self, tok: Token) -> Expr:
        sig = FUNCTIONS.get(tok.text)
        if sig is None:
            self.fail(f"unknown function with name {tok.text!r}", tok.pos)
        self.next()
        args: list[Expr] = []
        arg_pos: list[int] = []
        while not self.is_op(")"):
            arg_pos.append(self.peek().pos)
            args.append(self.expr(0))
            if not self.is_op(","):
                break
            self.next()
        close = self.expect_op(")", f"in call to {tok.text}")
        max_args = None if sig.variadic else len(sig.args)
        if len(args) < sig.min_args or (max_args is not None and len(args) > max_args):
            expected = (
                str(sig.min_args)
                if max_args == sig.min_args
                else (
                    f"at least {sig.min_args}"
                    if max_args is None
                    else f"{sig.min_args} to {max_args}"
                )
            )
            self.fail(
                f"expected {expected} argument(s) in call to {tok.text!r}, got {len(args)}",
                close.pos if len(args) < sig.min_args else arg_pos[-1],
            )
        for k, arg in enumerate(args):
            want = sig.args[min(k, len(sig.args) - 1)]
            if arg.value_type != want:
                self.fail(
                    f"expected type {_type_name(want)} in call to function {tok.text!r}, "
                    f"got {_type_name(arg.value_type)}",
                    arg_pos[k],
                )
        return Call(tok.text, tuple(args), sig.returns, tok.pos)

    def label_list(self) -> tuple[str, ...]:
        self.expect_op("(", "in grouping")
        names: list[str] = []
        while not self.is_op(")"):
            tok = self.next()
            if tok.kind == "ident" and LABEL_NAME_RE.match(tok.text):
                names.append(tok.text)
            elif tok.kind == "string":
                names.append(str(tok.value))
            else:
                self.fail(
                    f"unexpected {self.describe(tok)} in grouping opts, expected label", tok.pos
                )
            if not self.is_op(","):
                break
            self.next()
        self.expect_op(")", "in grouping opts")
        return tuple(names)

    def aggregate(self, op: str, tok: Token) -> Expr:
        grouping: tuple[str, ...] = ()
        without = False
        have_grouping = False
        if self.is_word("by") or self.is_word("without"):
            without = self.next().text.lower() == "without"
            grouping = self.label_list()
            have_grouping = True
        self.expect_op("(", f"in aggregation {op}")
        args: list[Expr] = []
        arg_pos: list[int] = []
        while not self.is_op(")"):
            arg_pos.append(self.peek().pos)
            args.append(self.expr(0))
            if not self.is_op(","):
                break
            self.next()
        close = self.expect_op(")", f"in aggregation {op}")
        if not have_grouping and (self.is_word("by") or self.is_word("without")):
            without = self.next().text.lower() == "without"
            grouping = self.label_list()
        param_type = AGGREGATORS[op]
        want = 1 if param_type is None else 2
        if len(args) != want:
            self.fail(
                f"wrong number of arguments for aggregate expression provided, expected "
                f"{want}, got {len(args)}",
                close.pos,
            )
        param = args[0] if param_type is not None else None
        expr = args[-1]
        if param is not None and param.value_type != param_type:
            self.fail(
                f"expected type {_type_name(param_type or 'scalar')} in aggregation "
                f"parameter, got {_type_name(param.value_type)}",
                arg_pos[0],
            )
        if expr.value_type != "vector":
            self.fail(
                f"expected type instant vector in aggregation expression, got "
                f"{_type_name(expr.value_type)}",
                arg_pos[-1],
            )
        return AggregateExpr(op, expr, param, grouping, without, tok.pos)

    def selector(self, name: str | None, pos: int) -> Expr:
        matchers: list[Matcher] = []
        if name is not None:
            matchers.append(Matcher("__name__", "=", name))
        if self.is_op("{"):
            self.next()
            while not self.is_op("}"):
                tok = self.next()
                if tok.kind == "string" and (self.is_op(",") or self.is_op("}")):
                    if name is not None:
                        self.fail("metric name must not be set twice", tok.pos)
                    name = str(tok.value)
                    matchers.append(Matcher("__name__", "=", name))
                elif tok.kind in ("ident", "string"):
                    label = tok.text if tok.kind == "ident" else str(tok.value)
                    if tok.kind == "ident" and not LABEL_NAME_RE.match(label):
                        self.fail(f"invalid label name {label!r}", tok.pos)
                    op_tok = self.next()
                    if op_tok.kind != "op" or op_tok.text not in ("=", "!=", "=~", "!~"):
                        self.fail(
                            f"unexpected {self.describe(op_tok)} in label matching, "
                            f"expected one of '=', '!=', '=~' or '!~'",
                            op_tok.pos,
                        )
                    val_tok = self.next()
                    if val_tok.kind != "string":
                        self.fail(
                            f"unexpected {self.describe(val_tok)} in label matching, "
                            f"expected string",
                            val_tok.pos,
                        )
                    value = str(val_tok.value)
                    if op_tok.text in ("=~", "!~"):
                        value = translate_regex(value)
                    try:
                        matchers.append(Matcher(label, op_tok.text, value))  # type: ignore[arg-type]
                    except InvalidInput as exc:
                        self.fail(str(exc), val_tok.pos)
                else:
                    self.fail(
                        f"unexpected {self.describe(tok)} in label matching, expected label name",
                        tok.pos,
                    )
                if not self.is_op(","):
                    break
                self.next()
            self.expect_op("}", "in label matching")
        names = [m for m in matchers if m.name == "__name__"]
        if name is not None and len(names) > 1:
            self.fail(f"metric name must not be set twice: {name!r}", pos)
        if not any(not m.matches_empty() for m in matchers):
            self.fail("vector selector must contain at least one non-empty matcher", pos)
        return VectorSelector(name, tuple(matchers), pos=pos)


def _type_name(vt: str) -> str:
    return {"vector": "instant vector", "matrix": "range vector"}.get(vt, vt)


def parse(text: str) -> Expr:
    """Parse a PromQL expression.

    Parameters
    ----------
    text:
        The query.

    Returns
    -------
    Expr
        The type-checked syntax tree.

    Raises
    ------
    ParseError
        If the text is not valid PromQL; the column points at the offending token, or the
        expression nests deeper than ``MAX_DEPTH`` levels.
    """
    parser = _Parser(text)
    try:
        expr = parser.parse()
    except RecursionError:
        parser.fail(f"expression is nested too deeply (more than {MAX_DEPTH} levels)")
    deepest, pos = _depth(expr)
    if deepest > MAX_DEPTH:
        raise ParseError(
            f"expression is nested too deeply (more than {MAX_DEPTH} levels)",
            source=text,
            offset=pos,
            filename="<query>",
        )
    return expr


#: Deepest syntax tree accepted; evaluation recurses once or twice per level.
MAX_DEPTH = 200


def _children(expr: Expr) -> tuple[Expr, ...]:
    if isinstance(expr, ParenExpr | UnaryExpr | SubqueryExpr):
        return (expr.expr,)
    if isinstance(expr, MatrixSelector):
        return (expr.selector,)
    if isinstance(expr, BinaryExpr):
        return (expr.lhs, expr.rhs)
    if isinstance(expr, AggregateExpr):
        return (expr.expr,) if expr.param is None else (expr.param, expr.expr)
    if isinstance(expr, Call):
        return expr.args
    return ()


def _depth(expr: Expr) -> tuple[int, int]:
    """Depth of the tree and the position of its deepest node, without recursion."""
    deepest, where = 0, 0
    stack = [(expr, 1)]
    while stack:
        node, level = stack.pop()
        if level > deepest:
            deepest, where = level, node.pos
        stack.extend((child, level + 1) for child in _children(node))
    return deepest, where
