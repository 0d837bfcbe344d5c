"""Parser of the log query language: text in, a :class:`~trusswork.logs._ast.Query` out.

A hand-written recursive-descent parser over the characters of the query,
with no separate token pass: the search part and the command arguments are
lexed differently (a bare word in a search may hold ``.``, ``/``, ``:``,
``-`` and ``*``; an expression in ``where`` or ``eval`` treats ``-`` as a
minus), so each parsing function scans what it expects from ``_Parser.pos``.
The layers build on each other: :mod:`~trusswork.logs._dsl_lex` (the error,
time bounds, the scanner), :mod:`~trusswork.logs._dsl_expr` (the search and
the expressions) and this module (the query and its commands).

Guarantees:

* Linear in the length of the query; nesting (parentheses, ``NOT``, unary
  operators) is limited to :data:`MAX_DEPTH` levels, so no input can exhaust
  the stack.
* :func:`parse_query` raises :class:`QueryParseError` and nothing else, for
  any string. The error names what was expected and points (0-based
  ``offset``, shown as line, column and a caret) at the offending character;
  an unterminated string points at its opening quote.
* Every node's ``at`` is the offset where its text starts. An empty search
  is ``MatchAll`` at the offset where the search would start.

Normalisations: command, function and aggregation names are lower-cased;
in expressions ``==`` becomes ``=``, ``&&``/``AND`` become ``and``,
``||``/``OR`` become ``or``, and ``!``/``NOT`` both become ``Unary("not")``
(``!`` binds like a unary operator, ``NOT`` below the comparisons). In
``rex``, PCRE's ``(?<name>...)`` is rewritten to Python's ``(?P<name>...)``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from trusswork.logs._ast import (
    Agg,
    Command,
    Dedup,
    Eval,
    Expr,
    Fields,
    Head,
    Patterns,
    Query,
    Rare,
    Rex,
    Search,
    Sort,
    SortKey,
    Stats,
    Table,
    Tail,
    Timechart,
    Top,
    Where,
)
from trusswork.logs._dsl_expr import _ExpressionParser
from trusswork.logs._dsl_lex import (
    _FIELD_NAME,
    _INTEGER,
    _MAX_MS,
    _SEARCH_WORD,
    _UNITS,
    MAX_DEPTH,
    QueryParseError,
    _after_space,
    _Token,
    parse_time_bound,
)

__all__ = ["MAX_DEPTH", "QueryParseError", "parse_query", "parse_time_bound"]

_FIELD_PATTERN: Final = re.compile(r"[A-Za-z0-9_*][A-Za-z0-9_.*\-]*")
_COMMAND_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PCRE_GROUP: Final = re.compile(r"\\.|\[(?:\\.|[^\]\\])*\]?|\(\?<(?=[A-Za-z_])|.", re.DOTALL)

_AGGREGATIONS: Final = {
    "count": "count",
    "sum": "sum",
    "avg": "avg",
    "mean": "avg",
    "min": "min",
    "max": "max",
    "dc": "dc",
    "distinct_count": "dc",
    "values": "values",
    "median": "median",
    "stdev": "stdev",
    "first": "first",
    "last": "last",
}
_PERCENTILE: Final = re.compile(r"(?:p|perc|percentile)([0-9]+(?:\.[0-9]+)?)")

_COMMAND_BOUND: Final = "earliest and latest belong in the first search, not in '| search'"


def parse_query(text: str) -> Query:
    """Parse a log query: a search, then ``|``-separated commands.

    Parameters
    ----------
    text:
        The query, e.g. ``error status>=500 earliest=-15m | stats count by host``.

    Returns
    -------
    Query
        The syntax tree; ``Query.text`` is ``text``.

    Raises
    ------
    QueryParseError
        When the text is not a query; the message says what was expected and
        shows the column with a caret.
    """
    return _Parser(text).query()


class _Parser(_ExpressionParser):
    """The query and its commands, on top of the search and expression parser."""

    __slots__ = ()

    # ------------------------------------------------------------ query

    def query(self) -> Query:
        text = self.text
        start = self.skip()
        word = _SEARCH_WORD.match(text, start)
        if (
            word is not None
            and word.group().lower() == "search"
            and text[word.end() : word.end() + 1] not in ("=", "<", ">", "!")
        ):
            self.pos = word.end()
        search = self.search_part(None)
        commands: list[Command] = []
        while self.pos < self.n:  # at a '|'
            self.pos += 1
            commands.append(self.command())
        return Query(search, self.earliest, self.latest, tuple(commands), text)

    # ------------------------------------------------------------ commands

    def command(self) -> Command:
        start = self.skip()
        if start >= self.n or self.text[start] == "|":
            self.fail(f"expected a command after '|', found {self.found(start)}", start)
        name = _COMMAND_NAME.match(self.text, start)
        if name is None:
            self.fail(f"expected a command name after '|', found {self.found(start)}", start)
        handler = _COMMANDS.get(name.group().lower())
        if handler is None:
            self.fail(
                f"unknown command {name.group()!r}; the commands are "
                f"{', '.join(sorted(_COMMANDS))}",
                start,
            )
        self.pos = name.end()
        return handler(self, start)

    def field_name(self, token: _Token, *, wildcards: bool = False) -> str:
        if token.kind in ("string", "name") and token.text:
            return token.text
        pattern = _FIELD_PATTERN if wildcards else _FIELD_NAME
        if token.kind == "word" and pattern.fullmatch(token.text):
            return token.text
        self.fail(f"expected a field name, found {self.describe(token)}", token.at)

    def integer(self, token: _Token, what: str, minimum: int) -> int:
        if token.kind != "word" or not _INTEGER.fullmatch(token.text):
            self.fail(f"expected {what} (an integer), found {self.describe(token)}", token.at)
        value = int(token.text)
        if value < minimum:
            self.fail(f"{what} must be at least {minimum}", token.at)
        return value

    def option(
        self, token: _Token, command: str, allowed: tuple[str, ...], options: dict[str, _Token]
    ) -> bool:
        """If ``token`` starts ``name=value``, read it into ``options`` and say so."""
        text = self.text
        if token.kind != "word":
            return False
        equals = _after_space(text, token.end)
        if text[equals : equals + 1] != "=":
            return False
        name = token.text.lower()
        if name not in allowed:
            known = f"; it takes {', '.join(f'{a}=' for a in allowed)}" if allowed else ""
            self.fail(f"unknown option {token.text!r} for {command}{known}", token.at)
        if name in options:
            self.fail(f"{name}= is given twice", token.at)
        self.pos = equals + 1
        value = self.arg()
        if value.kind not in ("word", "string", "name"):
            self.fail(f"expected a value after {name}=, found {self.describe(value)}", value.at)
        self.pos = value.end
        options[name] = value
        return True

    def field_list(
        self,
        command: str,
        options: dict[str, _Token],
        *,
        allowed: tuple[str, ...] = (),
        wildcards: bool = False,
        stop_at_by: bool = False,
    ) -> tuple[list[tuple[str, int]], _Token]:
        """Field names separated by commas and/or spaces, and ``name=value`` options.

        Stops before ``|``, the end or (with ``stop_at_by``) the word ``by``,
        and returns that token too.
        """
        names: list[tuple[str, int]] = []
        comma = False
        while True:
            token = self.arg()
            if token.kind in ("end", "pipe") or (
                stop_at_by and token.kind == "word" and token.text.lower() == "by"
            ):
                if comma:
                    self.fail(
                        f"expected a field name after ',', found {self.describe(token)}", token.at
                    )
                return names, token
            if token.kind == "op" and token.text == ",":
                if comma or not names:
                    self.fail("expected a field name, found ','", token.at)
                comma = True
                self.pos = token.end
                continue
            comma = False
            if not self.option(token, command, allowed, options):
                names.append((self.field_name(token, wildcards=wildcards), token.at))
                self.pos = token.end

    def by_fields(
        self, command: str, options: dict[str, _Token], allowed: tuple[str, ...]
    ) -> list[tuple[str, int]]:
        """The fields after ``by`` (the current token), to the end of the command."""
        by = self.arg()
        self.pos = by.end
        names, end = self.field_list(command, options, allowed=allowed)
        if not names:
            self.fail(f"expected a field name after 'by', found {self.describe(end)}", end.at)
        return names

    def aggregations(
        self, command: str, options: dict[str, _Token], allowed: tuple[str, ...]
    ) -> tuple[list[Agg], _Token]:
        aggs: list[Agg] = []
        comma = False
        while True:
            token = self.arg()
            if token.kind in ("end", "pipe") or (
                token.kind == "word" and token.text.lower() == "by"
            ):
                if comma or not aggs:
                    self.fail(
                        "expected an aggregation such as count or avg(<field>), "
                        f"found {self.describe(token)}",
                        token.at,
                    )
                return aggs, token
            if token.kind == "op" and token.text == ",":
                if comma or not aggs:
                    self.fail("expected an aggregation, found ','", token.at)
                comma = True
                self.pos = token.end
                continue
            comma = False
            if not self.option(token, command, allowed, options):
                aggs.append(self.aggregation(token))

    def aggregation(self, token: _Token) -> Agg:
        written = token.text.lower()
        func = _AGGREGATIONS.get(written) if token.kind == "word" else None
        percentile: float | None = None
        if token.kind == "word" and func is None and (match := _PERCENTILE.fullmatch(written)):
            func, percentile = "perc", float(match.group(1))
            if percentile > 100:
                self.fail("a percentile is between 0 and 100", token.at)
        if func is None:
            self.fail(
                f"expected an aggregation ({', '.join(_AGGREGATIONS)}, p95, perc99), "
                f"found {self.describe(token)}",
                token.at,
            )
        self.pos = token.end
        field: str | None = None
        name = "count"
        paren = self.arg()
        if paren.text == "(" and paren.kind == "op":
            self.pos = paren.end
            field_token = self.arg()
            field = self.field_name(field_token)
            self.pos = field_token.end
            close = self.arg()
            if close.text != ")" or close.kind != "op":
                self.fail(
                    f"expected ')' after {written}({field}, found {self.describe(close)}", close.at
                )
            self.pos = close.end
            name = f"{written}({field})"
        elif func != "count":
            self.fail(f"{written} needs a field: {written}(<field>)", paren.at)
        alias = self.arg()
        if alias.kind == "word" and alias.text.lower() == "as":
            self.pos = alias.end
            name_token = self.arg()
            name = self.field_name(name_token)
            self.pos = name_token.end
        return Agg(func, field, name, percentile, token.at)

    # One method per command; each starts after the name and stops before '|' or the end.

    def search_command(self, start: int) -> Search:
        expr_at = self.skip()
        if expr_at >= self.n or self.text[expr_at] == "|":
            self.fail(
                f"expected a search expression after 'search', found {self.found(expr_at)}", expr_at
            )
        return Search(self.search_part(_COMMAND_BOUND), start)

    def where_command(self, start: int) -> Where:
        expr = self.expression("where")
        self.expect_expression_end("'|'")
        return Where(expr, start)

    def eval_command(self, start: int) -> Eval:
        assignments: list[tuple[str, Expr]] = []
        while True:
            target = self.arg()
            if target.kind in ("end", "pipe", "op"):
                self.fail(
                    "expected a field to assign, as in eval x=<expression>, "
                    f"found {self.describe(target)}",
                    target.at,
                )
            name = self.field_name(target)
            self.pos = target.end
            equals = self.arg()
            if equals.kind != "op" or equals.text != "=":
                self.fail(f"expected '=' after {name}, found {self.describe(equals)}", equals.at)
            self.pos = equals.end
            assignments.append((name, self.expression(f"{name}=")))
            token = self.expr_token()
            if token.kind in ("end", "pipe"):
                return Eval(tuple(assignments), start)
            if token.text != ",":
                self.fail(
                    f"expected an operator, ',' or '|', found {self.describe(token)}", token.at
                )
            self.pos = token.end

    def rex_command(self, start: int) -> Rex:
        options: dict[str, _Token] = {}
        pattern: str | None = None
        while True:
            token = self.arg()
            if token.kind in ("end", "pipe"):
                break
            if token.kind == "string":
                if pattern is not None:
                    self.fail("rex takes one regular expression", token.at)
                pattern = self.regex(token)
                self.pos = token.end
            elif not self.option(token, "rex", ("field",), options):
                self.fail(
                    "expected field=<name> or a quoted regular expression, "
                    f"found {self.describe(token)}",
                    token.at,
                )
        if pattern is None:
            self.fail(
                "rex needs a quoted regular expression with named groups, "
                'as in rex "(?<user>\\w+)"',
                token.at,
            )
        field = self.field_name(options["field"]) if "field" in options else "_raw"
        return Rex(pattern, field, start)

    def regex(self, token: _Token) -> str:
        """The pattern of ``token`` in Python syntax, checked to compile with a named group."""
        pieces = _PCRE_GROUP.findall(token.text)
        pattern = "".join("(?P<" if piece == "(?<" else piece for piece in pieces)
        try:
            compiled = re.compile(pattern)
        except (re.error, OverflowError, RecursionError, ValueError) as error:
            position = getattr(error, "pos", None)
            offset = token.at
            if isinstance(position, int):
                offset = self.string_offset(token.at, _written_index(pieces, position))
            self.fail(f"invalid regular expression: {getattr(error, 'msg', error)}", offset)
        if not compiled.groupindex:
            self.fail(
                "the regular expression has no named group to extract: (?<field>...)", token.at
            )
        return pattern

    def string_offset(self, open_at: int, index: int) -> int:
        """The offset in the query of character ``index`` of the string opening at ``open_at``."""
        pos = open_at + 1
        for _ in range(index):
            if self.text[pos] == "\\" and self.text[pos + 1] in ('"', "\\"):
                pos += 1
            pos += 1
        return pos

    def fields_command(self, start: int) -> Fields:
        sign = self.arg()
        exclude = sign.kind == "op" and sign.text == "-"
        if sign.kind == "op" and sign.text in "+-":
            self.pos = sign.end
        names, end = self.field_list("fields", {}, wildcards=True)
        if not names:
            self.fail(f"expected a field name, found {self.describe(end)}", end.at)
        return Fields(tuple(name for name, _ in names), exclude, start)

    def table_command(self, start: int) -> Table:
        names, end = self.field_list("table", {}, wildcards=True)
        if not names:
            self.fail(f"expected a field name, found {self.describe(end)}", end.at)
        return Table(tuple(name for name, _ in names), start)

    def sort_command(self, start: int) -> Sort:
        options: dict[str, _Token] = {}
        limit: int | None = None
        first = self.arg()
        if first.kind == "word" and _INTEGER.fullmatch(first.text):
            limit = self.integer(first, "the sort limit", 0)
            self.pos = first.end
        keys: list[SortKey] = []
        comma = False
        while True:
            token = self.arg()
            if token.kind in ("end", "pipe"):
                if comma or not keys:
                    self.fail(
                        f"expected a field to sort by, found {self.describe(token)}", token.at
                    )
                break
            if token.kind == "op" and token.text == ",":
                if comma or not keys:
                    self.fail("expected a field to sort by, found ','", token.at)
                comma = True
                self.pos = token.end
                continue
            comma = False
            if self.option(token, "sort", ("limit",), options):
                if limit is not None:
                    self.fail("the sort limit is given twice", token.at)
                limit = self.integer(options["limit"], "the sort limit", 0)
                continue
            signed = token.kind == "op" and token.text in "+-"
            descending = signed and token.text == "-"
            if signed:
                self.pos = token.end
                token = self.arg()
            keys.append(SortKey(self.field_name(token), descending))
            self.pos = token.end
            order = self.arg()
            if order.kind == "word" and order.text.lower() in ("asc", "desc"):
                if signed:
                    self.fail("give the order once: a '-' prefix or desc, not both", order.at)
                keys[-1] = SortKey(keys[-1].field, order.text.lower() == "desc")
                self.pos = order.end
        return Sort(tuple(keys), limit, start)

    def count_argument(self, command: str, default: int, minimum: int) -> int:
        options: dict[str, _Token] = {}
        count: int | None = None
        while True:
            token = self.arg()
            if token.kind in ("end", "pipe"):
                return default if count is None else count
            if count is not None:
                self.fail(f"unexpected {self.describe(token)}; {command} takes one count", token.at)
            if self.option(token, command, ("limit",), options):
                count = self.integer(options["limit"], "the limit", minimum)
            else:
                count = self.integer(token, f"the number of rows for {command}", minimum)
                self.pos = token.end

    def head_command(self, start: int) -> Head:
        return Head(self.count_argument("head", 10, 0), start)

    def tail_command(self, start: int) -> Tail:
        return Tail(self.count_argument("tail", 10, 0), start)

    def dedup_command(self, start: int) -> Dedup:
        keep = 1
        first = self.arg()
        if first.kind == "word" and _INTEGER.fullmatch(first.text):
            keep = self.integer(first, "the number of rows to keep", 1)
            self.pos = first.end
        names, end = self.field_list("dedup", {})
        if not names:
            self.fail(f"expected a field name, found {self.describe(end)}", end.at)
        return Dedup(tuple(name for name, _ in names), keep, start)

    def stats_command(self, start: int) -> Stats:
        aggs, stop = self.aggregations("stats", {}, ())
        by: list[tuple[str, int]] = []
        if stop.kind == "word":
            by = self.by_fields("stats", {}, ())
        return Stats(tuple(aggs), tuple(name for name, _ in by), start)

    def timechart_command(self, start: int) -> Timechart:
        allowed = ("span", "limit")
        options: dict[str, _Token] = {}
        aggs, stop = self.aggregations("timechart", options, allowed)
        by: str | None = None
        if stop.kind == "word":
            names = self.by_fields("timechart", options, allowed)
            if len(names) > 1:
                self.fail("timechart splits by one field only", names[1][1])
            by = names[0][0]
        span_ms = 60_000
        if "span" in options:
            span_ms = self.duration(options["span"])
        limit = self.integer(options["limit"], "the limit", 0) if "limit" in options else 10
        return Timechart(span_ms, tuple(aggs), by, limit, start)

    def duration(self, token: _Token) -> int:
        match = re.fullmatch(r"([0-9]+)([A-Za-z]+)", token.text)
        if token.kind != "word" or match is None or match.group(2) not in _UNITS:
            self.fail(
                f"expected a span such as 30s, 1m, 1h or 1d, found {self.describe(token)}", token.at
            )
        span_ms = int(match.group(1)) * _UNITS[match.group(2)][1]
        if not 0 < span_ms <= _MAX_MS:
            self.fail("the span must be more than 0 and less than 9999 years", token.at)
        return span_ms

    def top_rare(self, command: str) -> tuple[tuple[str, ...], int, tuple[str, ...]]:
        options: dict[str, _Token] = {}
        names, stop = self.field_list(command, options, allowed=("limit",), stop_at_by=True)
        if not names:
            self.fail(f"expected a field name, found {self.describe(stop)}", stop.at)
        by: list[tuple[str, int]] = []
        if stop.kind == "word":
            by = self.by_fields(command, options, ("limit",))
        limit = self.integer(options["limit"], "the limit", 0) if "limit" in options else 10
        return tuple(n for n, _ in names), limit, tuple(n for n, _ in by)

    def top_command(self, start: int) -> Top:
        return Top(*self.top_rare("top"), at=start)

    def rare_command(self, start: int) -> Rare:
        return Rare(*self.top_rare("rare"), at=start)

    def patterns_command(self, start: int) -> Patterns:
        options: dict[str, _Token] = {}
        names, _ = self.field_list("patterns", options, allowed=("field", "limit"))
        if names:
            self.fail("patterns takes only field= and limit=", names[0][1])
        field = self.field_name(options["field"]) if "field" in options else "_raw"
        limit = self.integer(options["limit"], "the limit", 1) if "limit" in options else None
        return Patterns(field, limit, start)


def _written_index(pieces: list[str], position: int) -> int:
    """Where character ``position`` of the rewritten pattern was in the pattern as written."""
    rewritten = written = 0
    for piece in pieces:
        width = len("(?P<") if piece == "(?<" else len(piece)
        if rewritten + width > position:
            return written + min(position - rewritten, len(piece))
        rewritten += width
        written += len(piece)
    return written


_COMMANDS: Final[dict[str, Callable[[_Parser, int], Command]]] = {
    "dedup": _Parser.dedup_command,
    "eval": _Parser.eval_command,
    "fields": _Parser.fields_command,
    "head": _Parser.head_command,
    "patterns": _Parser.patterns_command,
    "rare": _Parser.rare_command,
    "rex": _Parser.rex_command,
    "search": _Parser.search_command,
    "sort": _Parser.sort_command,
    "stats": _Parser.stats_command,
    "table": _Parser.table_command,
    "tail": _Parser.tail_command,
    "timechart": _Parser.timechart_command,
    "top": _Parser.top_command,
    "where": _Parser.where_command,
}
