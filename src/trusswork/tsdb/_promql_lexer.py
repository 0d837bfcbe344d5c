"""PromQL tokens: numbers, durations, strings (with Go escapes), identifiers, operators.

Also home to the small text conversions the parser needs: Prometheus
durations (``1h30m``) to milliseconds, and RE2 inline flags in mid-pattern
rewritten for Python's ``re``. Errors are
:class:`~trusswork.core.errors.ParseError` pointing at the offending character.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NoReturn

from trusswork.core.errors import InvalidInput, ParseError

__all__ = ["LABEL_NAME_RE", "Lexer", "Token", "parse_duration", "translate_regex"]

_DURATION_RE = re.compile(r"(?:[0-9]+(?:ms|[smhdwy]))+")
_DURATION_PART = re.compile(r"([0-9]+)(ms|[smhdwy])")
_UNIT_MS = {
    "ms": 1,
    "s": 1000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
    "w": 604_800_000,
    "y": 31_536_000_000,
}
_NUMBER_RE = re.compile(
    r"0[xX][0-9a-fA-F]+|(?:[0-9]+(?:_[0-9]+)*\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
)
_DIGITS = frozenset("0123456789")
_OCTAL_DIGITS = frozenset("01234567")
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_IDENT_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_OPERATORS = (
    "==",
    "!=",
    "<=",
    ">=",
    "=~",
    "!~",
    "+",
    "-",
    "*",
    "/",
    "%",
    "^",
    "<",
    ">",
    "=",
    "(",
    ")",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "@",
)
_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
}


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "ident", "number", "duration", "string", "op", "eof"
    text: str
    pos: int
    value: object = None


def parse_duration(text: str) -> int:
    """Milliseconds in a Prometheus duration such as ``1h30m`` or ``250ms``.

    Raises
    ------
    InvalidInput
        If ``text`` is not a duration.
    """
    if not _DURATION_RE.fullmatch(text):
        raise InvalidInput(f"not a valid duration: {text!r}")
    return sum(int(n) * _UNIT_MS[unit] for n, unit in _DURATION_PART.findall(text))


class Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[Token] = []
        self._scan()

    def fail(self, message: str, pos: int) -> NoReturn:
        raise ParseError(message, source=self.text, offset=pos, filename="<query>")

    def _scan(self) -> None:
        text, n, i = self.text, len(self.text), 0
        brackets = 0
        while i < n:
            ch = text[i]
            if ch == ":" and brackets > 0:
                # Inside [range:step] a colon separates; elsewhere it may start a metric name.
                self.tokens.append(Token("op", ":", i))
                i += 1
                continue
            if ch in " \t\r\n":
                i += 1
                continue
            if ch == "#":
                while i < n and text[i] != "\n":
                    i += 1
                continue
            if ch in "\"'`":
                i = self._string(i)
                continue
            if ch in _DIGITS or (ch == "." and i + 1 < n and text[i + 1] in _DIGITS):
                dur = _DURATION_RE.match(text, i)
                if dur and not (
                    dur.end() < n and (text[dur.end()].isalnum() or text[dur.end()] == "_")
                ):
                    self.tokens.append(
                        Token("duration", dur.group(), i, parse_duration(dur.group()))
                    )
                    i = dur.end()
                    continue
                num = _NUMBER_RE.match(text, i)
                assert num is not None
                end = num.end()
                if end < n and (text[end].isalpha() or text[end] == "_"):
                    self.fail(f"bad number or duration syntax: {text[i : end + 1]!r}", i)
                literal = num.group().replace("_", "")
                value = float(int(literal, 16)) if literal[:2].lower() == "0x" else float(literal)
                self.tokens.append(Token("number", num.group(), i, value))
                i = end
                continue
            ident = _IDENT_RE.match(text, i)
            if ident:
                self.tokens.append(Token("ident", ident.group(), i))
                i = ident.end()
                continue
            for op in _OPERATORS:
                if text.startswith(op, i):
                    brackets += {"[": 1, "]": -1}.get(op, 0)
                    self.tokens.append(Token("op", op, i))
                    i += len(op)
                    break
            else:
                self.fail(f"unexpected character {ch!r}", i)
        self.tokens.append(Token("eof", "", n))

    def _string(self, start: int) -> int:
        """Scan a quoted string. As in Go, ``\\x`` and octal escapes are raw bytes (decoded as
        UTF-8 with surrogate escapes, so invalid UTF-8 stays detectable); ``\\u``/``\\U`` are
        code points.
        """
        text, quote = self.text, self.text[start]
        i = start + 1
        out: list[str | bytes] = []
        while i < len(text):
            ch = text[i]
            if ch == quote:
                self.tokens.append(Token("string", text[start : i + 1], start, _join(out)))
                return i + 1
            if ch == "\n" and quote != "`":
                break
            if ch == "\\" and quote != "`":
                i += 1
                if i >= len(text):
                    break
                esc = text[i]
                if esc in _ESCAPES:
                    out.append(_ESCAPES[esc])
                    i += 1
                elif esc in "xuU" or esc in _DIGITS:
                    i = self._numeric_escape(esc, i, out)
                else:
                    self.fail(f"unknown escape sequence \\{esc}", i - 1)
                continue
            out.append(ch)
            i += 1
        self.fail("unterminated quoted string", start)

    def _numeric_escape(self, esc: str, i: int, out: list[str | bytes]) -> int:
        octal = esc in _DIGITS
        width = 3 if octal else {"x": 2, "u": 4, "U": 8}[esc]
        digits = self.text[i : i + 3] if octal else self.text[i + 1 : i + 1 + width]
        valid = len(digits) == width and all(
            c in (_OCTAL_DIGITS if octal else _HEX_DIGITS) for c in digits
        )
        code = int(digits, 8 if octal else 16) if valid else -1
        if esc in "uU":
            if not 0 <= code <= 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                self.fail(f"invalid escape sequence in string: \\{esc}{digits}", i - 1)
            out.append(chr(code))
        else:
            if not 0 <= code <= 0xFF:
                self.fail(f"invalid escape sequence in string: \\{esc}{digits}", i - 1)
            out.append(bytes([code]))
        return i + width if octal else i + width + 1


def _join(pieces: list[str | bytes]) -> str:
    """Concatenate string pieces, decoding runs of raw bytes as UTF-8 (invalid bytes escaped)."""
    out: list[str] = []
    raw = bytearray()
    for piece in pieces:
        if isinstance(piece, bytes):
            raw += piece
            continue
        if raw:
            out.append(raw.decode("utf-8", "surrogateescape"))
            raw.clear()
        out.append(piece)
    if raw:
        out.append(raw.decode("utf-8", "surrogateescape"))
    return "".join(out)


_INLINE_FLAGS = re.compile(r"\(\?([imsU]+)\)")


def translate_regex(pattern: str) -> str:
    """Rewrite RE2 inline flags in mid-pattern (``a(?i)b``) into Python's scoped form.

    RE2 lets ``(?i)`` switch a flag on until the end of the enclosing group;
    Python only accepts flags at the very start, so the rest of that group is
    wrapped as ``(?i:...)``.
    """
    if "(?" not in pattern:
        return pattern
    out: list[str] = []
    closers: list[int] = [0]  # per open group: how many scoped groups to close at its end
    i, in_class = 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
            out.append(ch)
            i += 1
            continue
        if ch == "[":
            in_class = True
            out.append(ch)
            if pattern[i + 1 : i + 2] == "]":
                out.append("]")
                i += 1
            i += 1
            continue
        flags = _INLINE_FLAGS.match(pattern, i)
        if flags is not None and i > 0:
            out.append(f"(?{flags.group(1).replace('U', '')}:")
            closers[-1] += 1
            i = flags.end()
            continue
        if ch == "(":
            closers.append(0)
        elif ch == ")" and len(closers) > 1:
            out.append(")" * closers.pop())
        out.append(ch)
        i += 1
    out.append(")" * closers[0])
    return "".join(out)
