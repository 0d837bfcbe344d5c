"""The expressions of a log query: the search and the ``where``/``eval`` expressions.

The search (terms, phrases, ``field<op>value``, ``AND``/``OR``/``NOT``,
parentheses, ``earliest=``/``latest=`` at its top level) and the
expressions of ``where`` and ``eval`` (operators by precedence, function
calls checked against their argument counts) are parsed by
:class:`_ExpressionParser`, which :class:`trusswork.logs._dsl._Parser`
extends with the query and its commands. Guarantees and normalisations are
in the module docstring of :mod:`trusswork.logs._dsl`.
"""

from __future__ import annotations

import re
from typing import Final

from trusswork.logs._ast import (
    FUNCTIONS,
    And,
    Binary,
    Call,
    CompareOp,
    Expr,
    FieldCompare,
    FieldRef,
    Literal_,
    MatchAll,
    Not,
    Or,
    Phrase,
    SearchExpr,
    Term,
    TimeBound,
    Unary,
)
from trusswork.logs._dsl_lex import (
    _FIELD_NAME,
    _SEARCH_WORD,
    _after_space,
    _Scanner,
    _time_bound,
    _Token,
)

_VALUE_WORD: Final = re.compile(r'[^\s()|"]+')
_COMPARE_OP: Final = re.compile(r"!=|<=|>=|=|<|>")
_NUMBER: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_EXPR_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*")
_EXPR_NUMBER: Final = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_EXPR_OPS: Final = (
    *("==", "!=", "<=", ">=", "&&", "||"),
    *("<", ">", "=", "!", "+", "-", "*", "/", "%", ".", "(", ")", ","),
)

#: Functions of ``where``/``eval`` and their (least, most) argument counts.
_COMPARISONS: Final = {"=": "=", "==": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}

_NESTED_BOUND: Final = (
    "earliest and latest belong at the top level of the search, not inside OR, NOT or parentheses"
)


class _ExpressionParser(_Scanner):
    """Parses the search and the expressions; remembers the search's time bounds."""

    __slots__ = ("earliest", "last_bound_at", "latest", "lexed")

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.earliest: TimeBound | None = None
        self.latest: TimeBound | None = None
        self.last_bound_at = 0
        # The last expression token lexed: each precedence level peeks at the same one.
        self.lexed: _Token | None = None

    # ------------------------------------------------------------ search

    def search_part(self, bound_error: str | None) -> SearchExpr:
        start = self.skip()
        if start >= self.n or self.text[start] == "|":
            return MatchAll(start)
        expr = self.search_or(bound_error, "")
        if self.pos < self.n and self.text[self.pos] == ")":
            self.fail("unmatched ')'", self.pos)
        return MatchAll(start) if expr is None else expr

    def keyword(self, word: str) -> bool:
        """Whether the bare word at ``pos`` is exactly ``word`` (keywords are uppercase)."""
        end = self.pos + len(word)
        return self.text.startswith(word, self.pos) and _SEARCH_WORD.match(self.text, end) is None

    def search_or(self, bound_error: str | None, after: str) -> SearchExpr | None:
        bounds_before = self.bound_count()
        start = self.skip()
        first = self.search_and(bound_error, after)
        parts: list[SearchExpr] = []
        while self.keyword("OR"):
            if self.bound_count() > bounds_before or first is None:
                self.fail(_NESTED_BOUND, self.last_bound_at)
            self.pos += 2
            part = self.search_and(_NESTED_BOUND, " after OR")
            assert part is not None  # time bounds raised above
            parts.append(part)
        if not parts:
            return first
        assert first is not None
        return Or((first, *parts), start)

    def bound_count(self) -> int:
        return (self.earliest is not None) + (self.latest is not None)

    def search_and(self, bound_error: str | None, after: str) -> SearchExpr | None:
        text = self.text
        parts: list[SearchExpr] = []
        first_at = 0
        seen = False
        while True:
            pos = self.skip()
            char = text[pos : pos + 1]
            if char in ("", "|", ")") or self.keyword("OR"):
                if not seen:
                    self.fail(f"expected a search term{after}, found {self.found(pos)}", pos)
                break
            if self.keyword("AND"):
                if not seen:
                    self.fail("expected a search term before AND", pos)
                self.pos += 3
                after_and = self.skip()
                char = text[after_and : after_and + 1]
                if char in ("", "|", ")") or self.keyword("OR") or self.keyword("AND"):
                    self.fail(
                        f"expected a search term after AND, found {self.found(after_and)}",
                        after_and,
                    )
                continue
            part = self.search_not(bound_error)
            seen = True
            if part is not None:
                first_at = first_at if parts else pos
                parts.append(part)
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else And(tuple(parts), first_at)

    def search_not(self, bound_error: str | None) -> SearchExpr | None:
        text = self.text
        start = self.pos
        if self.keyword("NOT"):
            self.pos += 3
            operand_at = self.skip()
            char = text[operand_at : operand_at + 1]
            if char in ("", "|", ")") or self.keyword("OR") or self.keyword("AND"):
                self.fail(
                    f"expected a search term after NOT, found {self.found(operand_at)}", operand_at
                )
        elif text[start] == "-":
            if text[start + 1 : start + 2] in ("", "|", ")") or text[start + 1].isspace():
                self.fail("expected a search term right after '-'", start + 1)
            self.pos += 1
        else:
            return self.search_primary(bound_error)
        self.nest(start)
        part = self.search_not(_NESTED_BOUND)
        self.depth -= 1
        assert part is not None  # time bounds raised in search_not's operand
        return Not(part, start)

    def search_primary(self, bound_error: str | None) -> SearchExpr | None:
        text = self.text
        start = self.pos
        char = text[start]
        if char == "(":
            self.nest(start)
            self.pos += 1
            inner = self.search_or(_NESTED_BOUND, " inside '('")
            close = self.skip()
            if text[close : close + 1] != ")":
                self.fail(
                    f"expected ')' to close the '(' at offset {start}, found {self.found(close)}",
                    close,
                )
            self.pos = close + 1
            self.depth -= 1
            return inner
        if char == '"':
            value, self.pos = self.read_string(start)
            return Phrase(value, start)
        word = _SEARCH_WORD.match(text, start)
        if word is None:
            self.fail(f"expected a search term, found {self.found(start)}", start)
        operator = _COMPARE_OP.match(text, _after_space(text, word.end()))
        if operator is None:
            self.pos = word.end()
            return MatchAll(start) if word.group() == "*" else Term(word.group(), start)
        return self.field_compare(word.group(), start, operator, bound_error)

    def field_compare(
        self, field: str, start: int, operator: re.Match[str], bound_error: str | None
    ) -> SearchExpr | None:
        text = self.text
        op = operator.group()
        if not _FIELD_NAME.fullmatch(field):
            self.fail(
                f"{field!r} is not a field name: use letters, digits, '_', '.' and '-' "
                "(not first), or quote the whole term",
                start,
            )
        value_at = _after_space(text, operator.end())
        quoted = text[value_at : value_at + 1] == '"'
        if quoted:
            value, self.pos = self.read_string(value_at)
        else:
            match = _VALUE_WORD.match(text, value_at)
            if match is None or text[value_at] in "=<>":
                self.fail(
                    f"expected a value after {field}{op}, found {self.found(value_at)}", value_at
                )
            value, self.pos = match.group(), match.end()
        if field in ("earliest", "latest"):
            if op != "=":
                self.fail(f"{field} takes '=', as in {field}=-15m", operator.start())
            if bound_error is not None:
                self.fail(bound_error, start)
            if (self.earliest if field == "earliest" else self.latest) is not None:
                self.fail(f"{field} is given twice", start)
            bound = _time_bound(value, text, value_at + quoted, value_at)
            if field == "earliest":
                self.earliest = bound
            else:
                self.latest = bound
            self.last_bound_at = start
            return None
        if field == "_time":
            self.fail("_time cannot be compared in a search: use earliest= and latest=", start)
        compared: str | float = value
        if not quoted and _NUMBER.fullmatch(value):
            compared = float(value)
        return FieldCompare(field, _compare_op(op), compared, start)

    # ------------------------------------------------------------ expressions

    def expr_token(self) -> _Token:
        """The next token of an expression (not consumed)."""
        lexed = self.lexed
        if lexed is not None and lexed.at == self.pos:
            return lexed
        self.lexed = token = self.lex_expression()
        return token

    def lex_expression(self) -> _Token:
        text = self.text
        pos = self.skip()
        if pos >= self.n:
            return _Token("end", "", pos, pos)
        char = text[pos]
        if char in "\"'":
            value, end = self.read_string(pos)
            return _Token("string" if char == '"' else "name", value, pos, end)
        if char == "|" and text[pos + 1 : pos + 2] != "|":
            return _Token("pipe", "|", pos, pos + 1)
        if match := _EXPR_NUMBER.match(text, pos):
            return _Token("number", match.group(), pos, match.end())
        if match := _EXPR_NAME.match(text, pos):
            return _Token("word", match.group(), pos, match.end())
        for op in _EXPR_OPS:
            if text.startswith(op, pos):
                return _Token("op", op, pos, pos + len(op))
        return _Token("op", char, pos, pos + 1)

    def expect_expression_end(self, what: str) -> None:
        token = self.expr_token()
        if token.kind not in ("end", "pipe"):
            self.fail(f"expected an operator or {what}, found {self.describe(token)}", token.at)

    def expression(self, after: str) -> Expr:
        token = self.expr_token()
        if token.kind in ("end", "pipe"):
            self.fail(
                f"expected an expression after {after}, found {self.describe(token)}", token.at
            )
        return self.expr_or()

    def binary_word(self, symbol: str, word: str) -> _Token | None:
        token = self.expr_token()
        if (token.kind == "op" and token.text == symbol) or (
            token.kind == "word" and token.text.lower() == word
        ):
            self.pos = token.end
            return token
        return None

    def expr_or(self) -> Expr:
        start = self.skip()
        left = self.expr_and()
        while self.binary_word("||", "or"):
            left = Binary("or", left, self.expr_and(), start)
        return left

    def expr_and(self) -> Expr:
        start = self.skip()
        left = self.expr_not()
        while self.binary_word("&&", "and"):
            left = Binary("and", left, self.expr_not(), start)
        return left

    def expr_not(self) -> Expr:
        token = self.expr_token()
        if token.kind == "word" and token.text.lower() == "not":
            self.pos = token.end
            self.nest(token.at)
            operand = self.expr_not()
            self.depth -= 1
            return Unary("not", operand, token.at)
        return self.expr_compare()

    def expr_compare(self) -> Expr:
        start = self.skip()
        left = self.expr_add()
        token = self.expr_token()
        if token.kind != "op" or token.text not in _COMPARISONS:
            return left
        self.pos = token.end
        result = Binary(_COMPARISONS[token.text], left, self.expr_add(), start)
        again = self.expr_token()
        if again.kind == "op" and again.text in _COMPARISONS:
            self.fail("comparisons do not chain: join them with AND", again.at)
        return result

    def expr_add(self) -> Expr:
        start = self.skip()
        left = self.expr_multiply()
        while (token := self.expr_token()).kind == "op" and token.text in ("+", "-", "."):
            self.pos = token.end
            left = Binary(token.text, left, self.expr_multiply(), start)
        return left

    def expr_multiply(self) -> Expr:
        start = self.skip()
        left = self.expr_unary()
        while (token := self.expr_token()).kind == "op" and token.text in ("*", "/", "%"):
            self.pos = token.end
            left = Binary(token.text, left, self.expr_unary(), start)
        return left

    def expr_unary(self) -> Expr:
        token = self.expr_token()
        if token.kind == "op" and token.text in ("-", "!"):
            self.pos = token.end
            self.nest(token.at)
            operand = self.expr_unary()
            self.depth -= 1
            return Unary("-" if token.text == "-" else "not", operand, token.at)
        return self.expr_primary()

    def expr_primary(self) -> Expr:
        token = self.expr_token()
        self.pos = token.end
        if token.kind == "number":
            return Literal_(float(token.text), token.at)
        if token.kind == "string":
            return Literal_(token.text, token.at)
        if token.kind == "name" and token.text:
            return FieldRef(token.text, token.at)
        if token.kind == "op" and token.text == "(":
            self.nest(token.at)
            inner = self.expr_or()
            close = self.expr_token()
            if close.text != ")" or close.kind != "op":
                self.fail(
                    f"expected ')' to close the '(' at offset {token.at}, "
                    f"found {self.describe(close)}",
                    close.at,
                )
            self.pos = close.end
            self.depth -= 1
            return inner
        if token.kind == "word":
            lower = token.text.lower()
            after = self.skip()
            if self.text[after : after + 1] == "(":
                return self.call(token, lower)
            if lower in ("true", "false"):
                return Literal_(lower == "true", token.at)
            if lower == "null":
                return Literal_(None, token.at)
            if lower not in ("and", "or", "not"):
                return FieldRef(token.text, token.at)
        self.fail(f"expected an expression, found {self.describe(token)}", token.at)

    def call(self, name: _Token, lower: str) -> Call:
        arity = FUNCTIONS.get(lower)
        if arity is None:
            self.fail(
                f"unknown function {name.text!r}; the functions are {', '.join(sorted(FUNCTIONS))}",
                name.at,
            )
        self.nest(name.at)
        self.pos += 1  # the '('
        args: list[Expr] = []
        token = self.expr_token()
        if token.kind == "op" and token.text == ")":
            self.pos = token.end
        else:
            while True:
                args.append(self.expr_or())
                token = self.expr_token()
                self.pos = token.end
                if token.kind == "op" and token.text == ")":
                    break
                if token.kind != "op" or token.text != ",":
                    self.fail(
                        f"expected ',' or ')' in the arguments of {lower}(), "
                        f"found {self.describe(token)}",
                        token.at,
                    )
        self.depth -= 1
        least, most = arity
        if len(args) < least or (most is not None and len(args) > most):
            wanted = (
                f"{least}"
                if least == most
                else f"{least} to {most}"
                if most
                else f"at least {least}"
            )
            self.fail(f"{lower}() takes {wanted} arguments, got {len(args)}", name.at)
        if lower == "case" and len(args) % 2:
            self.fail("case() takes pairs of condition, value", name.at)
        return Call(lower, tuple(args), name.at)


def _compare_op(op: str) -> CompareOp:
    for candidate in ("=", "!=", "<", "<=", ">", ">="):
        if op == candidate:
            return candidate
    raise AssertionError(op)
