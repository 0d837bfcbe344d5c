"""Parser of the log query language: text in, a :class:`~trusswork.logs._ast.Query` out.

A hand-written recursive-descent parser over the characters of the query,
with no separate token pass: the search part and the command arguments are
lexed differently (a bare word in a search may hold ``.``, ``/``, ``:``,
``-`` and ``*``; an expression in ``where`` or ``eval`` treats ``-`` as a
minus), so each parsing function scans what it expects from ``_Parser.pos``.

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
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, NoReturn

from trusswork.core.errors import ParseError
from trusswork.logs._ast import (
    AbsoluteTime,
    Agg,
    And,
    Binary,
    Call,
    Command,
    CompareOp,
    Dedup,
    Eval,
    Expr,
    FieldCompare,
    FieldRef,
    Fields,
    Head,
    Literal_,
    MatchAll,
    Not,
    Or,
    Patterns,
    Phrase,
    Query,
    Rare,
    RelativeTime,
    Rex,
    Search,
    SearchExpr,
    Sort,
    SortKey,
    Stats,
    Table,
    Tail,
    Term,
    TimeBound,
    Timechart,
    Top,
    Unary,
    Where,
)
from trusswork.logs._timestamps import parse_timestamp

__all__ = ["MAX_DEPTH", "QueryParseError", "parse_query", "parse_time_bound"]

#: The deepest nesting of parentheses, ``NOT`` and unary operators accepted.
MAX_DEPTH: Final = 64

_SPACE: Final = re.compile(r"\s*")
# A bare search word ends at whitespace, parentheses, a pipe, a quote or a
# comparison operator ('!' alone is part of the word, '!=' is not).
_SEARCH_WORD: Final = re.compile(r'(?:[^\s()|"=<>!]+|!(?!=))+')
_VALUE_WORD: Final = re.compile(r'[^\s()|"]+')
_COMPARE_OP: Final = re.compile(r"!=|<=|>=|=|<|>")
_FIELD_NAME: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
_FIELD_PATTERN: Final = re.compile(r"[A-Za-z0-9_*][A-Za-z0-9_.*\-]*")
_NUMBER: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_COMMAND_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ARG_WORD: Final = re.compile(r"[A-Za-z0-9_*][A-Za-z0-9_.*\-]*")
_EXPR_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*")
_EXPR_NUMBER: Final = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_EXPR_OPS: Final = (
    *("==", "!=", "<=", ">=", "&&", "||"),
    *("<", ">", "=", "!", "+", "-", "*", "/", "%", ".", "(", ")", ","),
)
_INTEGER: Final = re.compile(r"[0-9]+")
_FOUND: Final = re.compile(r"[A-Za-z0-9_]+|\S")
_STRING_BODY: Final = {'"': re.compile(r'[^"\\]*'), "'": re.compile(r"[^'\\]*")}
_PCRE_GROUP: Final = re.compile(r"\\.|\[(?:\\.|[^\]\\])*\]?|\(\?<(?=[A-Za-z_])|.", re.DOTALL)

_UNITS: Final = {
    **dict.fromkeys(("ms", "msec", "millisecond", "milliseconds"), ("ms", 1)),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), ("s", 1000)),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), ("m", 60_000)),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), ("h", 3_600_000)),
    **dict.fromkeys(("d", "day", "days"), ("d", 86_400_000)),
    **dict.fromkeys(("w", "week", "weeks"), ("w", 604_800_000)),
}
_UNIT_HELP: Final = "s, m, h, d, w or ms (also sec, min, hr, day, week)"
_TIME_HELP: Final = "now, -15m, -2h@h, @d, epoch seconds or an ISO 8601 time"
# Years 1..9999 either way: a relative offset or epoch beyond is a typo.
_MAX_MS: Final = 253_402_300_799_999
_WORD_AT: Final = re.compile(r"[A-Za-z]+")
_ISO_START: Final = re.compile(r"[0-9]{4}-")
_EPOCH: Final = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")

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

#: Functions of ``where``/``eval`` and their (least, most) argument counts.
_FUNCTIONS: Final[dict[str, tuple[int, int | None]]] = {
    "if": (3, 3),
    "case": (2, None),
    "coalesce": (1, None),
    "len": (1, 1),
    "lower": (1, 1),
    "upper": (1, 1),
    "substr": (2, 3),
    "trim": (1, 2),
    "round": (1, 2),
    "abs": (1, 1),
    "floor": (1, 1),
    "ceil": (1, 1),
    "sqrt": (1, 1),
    "pow": (2, 2),
    "log": (1, 2),
    "exp": (1, 1),
    "tonumber": (1, 2),
    "tostring": (1, 2),
    "isnull": (1, 1),
    "isnotnull": (1, 1),
    "like": (2, 2),
    "match": (2, 2),
    "replace": (3, 3),
    "split": (2, 2),
    "now": (0, 0),
    "strftime": (2, 2),
    "min": (1, None),
    "max": (1, None),
    "null": (0, 0),
}
_COMPARISONS: Final = {"=": "=", "==": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}

_NESTED_BOUND: Final = (
    "earliest and latest belong at the top level of the search, not inside OR, NOT or parentheses"
)
_COMMAND_BOUND: Final = "earliest and latest belong in the first search, not in '| search'"


class QueryParseError(ParseError):
    """A log query (or a time bound) failed to parse; the message points at the place.

    ``offset`` is the 0-based character offset of the offending character
    (``len(source)`` when the query ended too soon), for callers that mark
    it up themselves (an editor, an HTTP problem body).
    """

    code = "query-parse-error"

    def __init__(self, message: str, *, source: str, offset: int) -> None:
        super().__init__(message, source=source, offset=offset)
        self.offset = offset


def _fail(message: str, source: str, offset: int) -> NoReturn:
    raise QueryParseError(message, source=source, offset=offset)


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


def parse_time_bound(text: str) -> TimeBound:
    """Parse a time bound as given to ``earliest=`` / ``latest=`` (or a CLI flag).

    Parameters
    ----------
    text:
        ``now``, a relative time (``-15m``, ``+1d``, ``-2h@h``, ``@d``),
        epoch seconds (``0``, ``1714557600.5``) or an ISO 8601 time
        (``2024-05-01T10:00:00Z``, with an offset, without a zone meaning
        UTC, or a date alone). Surrounding whitespace is ignored.

    Returns
    -------
    RelativeTime or AbsoluteTime

    Raises
    ------
    QueryParseError
        When the text is none of these.
    """
    start = len(text) - len(text.lstrip())
    return _time_bound(text.strip(), text, start, start)


def _time_bound(value: str, source: str, start: int, at: int) -> TimeBound:
    """Read ``value``, found at ``start`` in ``source``; the node starts at ``at``."""
    if not value:
        _fail(f"expected a time: {_TIME_HELP}", source, start)
    if _ISO_START.match(value):
        stamp = parse_timestamp(value, timestamp_format="iso8601")
        if stamp is None:
            _fail(
                "invalid ISO 8601 time; write 2024-05-01, 2024-05-01T10:00:00Z or "
                "2024-05-01T10:00:00+02:00",
                source,
                start,
            )
        return AbsoluteTime(stamp, at)
    if _EPOCH.fullmatch(value):
        epoch_ms = int(Decimal(value) * 1000)
        if epoch_ms > _MAX_MS:
            _fail("epoch seconds beyond the year 9999", source, start)
        return AbsoluteTime(epoch_ms, at)
    index, offset_ms, snap = 0, 0, None
    if value[:3].lower() == "now":
        index = 3
    elif value[0] in "+-":
        digits = _INTEGER.match(value, 1)
        if digits is None:
            _fail(f"expected a number after {value[0]!r} in a relative time", source, start + 1)
        unit = _WORD_AT.match(value, digits.end())
        if unit is None:
            _fail(f"expected a time unit: {_UNIT_HELP}", source, start + digits.end())
        if unit.group() not in _UNITS:
            _fail(
                f"unknown time unit {unit.group()!r}; use {_UNIT_HELP}",
                source,
                start + unit.start(),
            )
        offset_ms = int(digits.group()) * _UNITS[unit.group()][1]
        if offset_ms > _MAX_MS:
            _fail("relative time beyond 9999 years", source, start + 1)
        offset_ms = -offset_ms if value[0] == "-" else offset_ms
        index = unit.end()
    if value[index : index + 1] == "@":
        unit = _WORD_AT.match(value, index + 1)
        if unit is None or unit.group() not in _UNITS or _UNITS[unit.group()][0] == "ms":
            _fail(
                "expected a unit to snap to after '@': s, m, h, d or w", source, start + index + 1
            )
        snap = _UNITS[unit.group()][0]
        index = unit.end()
    elif index == 0:
        _fail(f"expected a time: {_TIME_HELP}", source, start)
    if index != len(value):
        _fail(f"unexpected {value[index]!r} in the time {value!r}", source, start + index)
    return RelativeTime(offset_ms, snap, at)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "word", "number", "string" ("..."), "name" ('...'), "op", "pipe", "end"
    text: str  # the word or operator as written; a string's value unescaped
    at: int
    end: int


class _Parser:
    __slots__ = ("depth", "earliest", "last_bound_at", "latest", "lexed", "n", "pos", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.n = len(text)
        self.pos = 0
        self.depth = 0
        self.earliest: TimeBound | None = None
        self.latest: TimeBound | None = None
        self.last_bound_at = 0
        # The last expression token lexed: each precedence level peeks at the same one.
        self.lexed: _Token | None = None

    # ------------------------------------------------------------ helpers

    def fail(self, message: str, offset: int) -> NoReturn:
        _fail(message, self.text, offset)

    def skip(self) -> int:
        self.pos = _after_space(self.text, self.pos)
        return self.pos

    def found(self, offset: int) -> str:
        match = _FOUND.match(self.text, offset)
        return "the end of the query" if match is None else repr(match.group())

    def describe(self, token: _Token) -> str:
        if token.kind == "end":
            return "the end of the query"
        if token.kind in ("string", "name"):
            return f"the string {self.text[token.at : token.end]}"
        return repr(token.text)

    def nest(self, offset: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(f"the query nests deeper than {MAX_DEPTH} levels", offset)

    def read_string(self, open_at: int) -> tuple[str, int]:
        """The value of the quoted string opening at ``open_at``, and the offset after it.

        A backslash escapes the quote and itself; before any other character
        it stays, so regular expressions keep their ``\\d``.
        """
        text = self.text
        quote = text[open_at]
        body = _STRING_BODY[quote]
        chunks: list[str] = []
        pos = open_at + 1
        while True:
            match = body.match(text, pos)
            assert match is not None  # the pattern matches the empty string
            chunks.append(match.group())
            pos = match.end()
            if pos >= self.n:
                self.fail(f"unterminated string: no closing {quote} for this one", open_at)
            if text[pos] == quote:
                return "".join(chunks), pos + 1
            escaped = text[pos + 1 : pos + 2]
            if escaped in (quote, "\\"):
                chunks.append(escaped)
                pos += 2
            else:
                chunks.append("\\")
                pos += 1

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

    def arg(self) -> _Token:
        """The next token of a command's arguments (not consumed)."""
        text = self.text
        pos = self.skip()
        if pos >= self.n:
            return _Token("end", "", pos, pos)
        char = text[pos]
        if char == "|":
            return _Token("pipe", "|", pos, pos + 1)
        if char in "\"'":
            value, end = self.read_string(pos)
            return _Token("string" if char == '"' else "name", value, pos, end)
        word = _ARG_WORD.match(text, pos)
        if word is not None:
            return _Token("word", word.group(), pos, word.end())
        return _Token("op", char, pos, pos + 1)

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
        arity = _FUNCTIONS.get(lower)
        if arity is None:
            self.fail(
                f"unknown function {name.text!r}; the functions are "
                f"{', '.join(sorted(_FUNCTIONS))}",
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


def _after_space(text: str, pos: int) -> int:
    match = _SPACE.match(text, pos)
    assert match is not None  # \s* matches the empty string
    return match.end()


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
