"""The lexical layer of the log query parser: its error, time bounds and the scanner.

:class:`QueryParseError` is the only error the parser raises.
:func:`parse_time_bound` reads the value of ``earliest=``/``latest=``, in a
query or on its own (a CLI flag, an HTTP parameter). :class:`_Scanner` holds
the query text and the position every parsing function moves forward; it
skips blanks, reads quoted strings and the tokens of command arguments, and
stops nesting at :data:`MAX_DEPTH` levels. The grammar is in
:mod:`trusswork.logs._dsl_expr` (search and ``where``/``eval`` expressions)
and :mod:`trusswork.logs._dsl` (the query and its commands).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, NoReturn

from trusswork.core.errors import ParseError
from trusswork.logs._ast import AbsoluteTime, RelativeTime, TimeBound
from trusswork.logs._timestamps import parse_timestamp

__all__ = ["MAX_DEPTH", "QueryParseError", "parse_time_bound"]

#: The deepest nesting of parentheses, ``NOT`` and unary operators accepted.
MAX_DEPTH: Final = 64

_SPACE: Final = re.compile(r"\s*")
# A bare search word ends at whitespace, parentheses, a pipe, a quote or a
# comparison operator ('!' alone is part of the word, '!=' is not).
_SEARCH_WORD: Final = re.compile(r'(?:[^\s()|"=<>!]+|!(?!=))+')
_FIELD_NAME: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
_ARG_WORD: Final = re.compile(r"[A-Za-z0-9_*][A-Za-z0-9_.*\-]*")
_INTEGER: Final = re.compile(r"[0-9]+")
_FOUND: Final = re.compile(r"[A-Za-z0-9_]+|\S")
_STRING_BODY: Final = {'"': re.compile(r'[^"\\]*'), "'": re.compile(r"[^'\\]*")}

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


class _Scanner:
    """The query text and the position in it; what every part of the parser reads with."""

    __slots__ = ("depth", "n", "pos", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.n = len(text)
        self.pos = 0
        self.depth = 0

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


def _after_space(text: str, pos: int) -> int:
    match = _SPACE.match(text, pos)
    assert match is not None  # \s* matches the empty string
    return match.end()
