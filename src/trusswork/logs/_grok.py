"""A small grok-like pattern library: ``%{IP:client} %{WORD:method} %{NUMBER:bytes:int}``.

A grok expression is a regular expression in which ``%{NAME}`` stands for a
library pattern, ``%{NAME:field}`` captures it into ``field`` (dots allowed:
``%{IP:client.ip}``) and ``%{NAME:field:int}`` / ``%{NAME:field:float}``
also converts the text. Everything outside ``%{...}`` is plain regex, so a
user regex with named groups is a grok expression without references.

Compiling is cached: the same expression is translated and compiled once
per process. Matching is :meth:`re.Pattern.search` (unanchored, as grok is);
anchor with ``^``/``$`` to require the whole line.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from trusswork.core.errors import InvalidInput

__all__ = ["GROK_PATTERNS", "GrokPattern", "compile_grok"]


def _ipv6() -> str:
    h = "[0-9A-Fa-f]{1,4}"
    forms = [
        # Longest tails first so that alternation does not stop at a prefix;
        # the trailing lookahead forces backtracking into a longer form.
        f"(?:{h}:){{7}}{h}",
        f"(?:{h}:){{6}}{_IPV4}",
        f"(?:{h}:){{1,5}}(?::{h}){{1,2}}|(?:{h}:){{1,4}}(?::{h}){{1,3}}",
        f"(?:{h}:){{1,3}}(?::{h}){{1,4}}|(?:{h}:){{1,2}}(?::{h}){{1,5}}",
        f"{h}:(?::{h}){{1,6}}",
        f"(?:{h}:){{1,6}}:{h}",
        f"(?:{h}:){{1,4}}:{_IPV4}",
        f"::(?:[Ff]{{4}}(?::0{{1,4}})?:)?{_IPV4}",
        f"(?:{h}:){{1,7}}:",
        f":(?:(?::{h}){{1,7}}|:)",
    ]
    return "(?<![0-9A-Fa-f:])(?:" + "|".join(forms) + ")(?![0-9A-Fa-f:])"


_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4 = rf"(?<![0-9.]){_OCTET}(?:\.{_OCTET}){{3}}(?![0-9])"
_IPV6 = _ipv6()

GROK_PATTERNS: Final[Mapping[str, str]] = {
    "INT": r"[+-]?[0-9]+",
    "NUMBER": r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?",
    "WORD": r"\b\w+\b",
    "NOTSPACE": r"\S+",
    "DATA": r".*?",
    "GREEDYDATA": r".*",
    "QUOTEDSTRING": r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'",
    "UUID": r"[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}",
    "IPV4": _IPV4,
    "IPV6": _IPV6,
    "IP": f"{_IPV6}|{_IPV4}",
    "HOSTNAME": r"\b[0-9A-Za-z](?:[0-9A-Za-z-]{0,62})(?:\.[0-9A-Za-z](?:[0-9A-Za-z-]{0,62}))*\.?",
    "PATH": r"(?:/[^\s/]*)+|(?:[A-Za-z]:)?(?:\\[^\s\\]*)+",
    "URIPATHPARAM": r"/[^\s?#]*(?:\?[^\s#]*)?(?:#\S*)?",
    "TIMESTAMP_ISO8601": (
        r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]+)?)?"
        r"(?:[Zz]|[+-][0-9]{2}(?::?[0-9]{2})?)?"
    ),
    "HTTPDATE": r"[0-9]{1,2}/[A-Z][a-z]{2}/[0-9]{4}:[0-9]{2}:[0-9]{2}:[0-9]{2} [+-][0-9]{4}",
    "SYSLOGTIMESTAMP": r"[A-Z][a-z]{2} +[0-9]{1,2} [0-9]{2}:[0-9]{2}:[0-9]{2}",
    "LOGLEVEL": (
        r"\b(?i:trace|debug|info(?:rmation)?|notice|warn(?:ing)?|err(?:or)?"
        r"|crit(?:ical)?|fatal|severe|emerg(?:ency)?|alert)\b"
    ),
}

_REFERENCE: Final = re.compile(r"%\{([A-Za-z0-9_]+)(?::([^:{}]+))?(?::([A-Za-z]+))?\}")
_CONVERTERS: Final[Mapping[str, Callable[[str], Any]]] = {"int": int, "float": float}


@dataclass(frozen=True, slots=True)
class GrokPattern:
    """A compiled grok expression.

    Attributes
    ----------
    regex:
        The compiled regular expression.
    fields:
        Regex group name -> (field name, converter or ``None``), in order.
    """

    regex: re.Pattern[str]
    fields: tuple[tuple[str, str, Callable[[str], Any] | None], ...]

    def extract(self, line: str) -> tuple[dict[str, Any], list[str]] | None:
        """Fields of the first match in ``line``, and the names that failed to convert.

        Returns ``None`` when the expression does not match. A group that did
        not take part in the match is left out; a conversion that fails keeps
        the text and names the field in the second element.
        """
        match = self.regex.search(line)
        if match is None:
            return None
        out: dict[str, Any] = {}
        failed: list[str] = []
        for group, name, convert in self.fields:
            text = match.group(group)
            if text is None:
                continue
            if convert is None:
                out[name] = text
                continue
            try:
                out[name] = convert(text)
            except ValueError:
                out[name] = text
                failed.append(name)
        return out, failed


@lru_cache(maxsize=256)
def compile_grok(expression: str) -> GrokPattern:
    """Translate and compile a grok expression (cached per expression).

    Parameters
    ----------
    expression:
        A regex that may contain ``%{NAME}``, ``%{NAME:field}`` and
        ``%{NAME:field:int|float}`` references, and ``(?P<name>...)`` groups.

    Returns
    -------
    GrokPattern
        The compiled expression and its field map.

    Raises
    ------
    InvalidInput
        For an unknown pattern name or conversion, a field captured twice,
        or a regex that does not compile.
    """
    fields: list[tuple[str, str, Callable[[str], Any] | None]] = []
    seen: set[str] = set()

    def replace(match: re.Match[str]) -> str:
        name, field, kind = match.groups()
        body = GROK_PATTERNS.get(name)
        if body is None:
            raise InvalidInput(
                f"unknown grok pattern %{{{name}}} in {expression!r}; known: "
                + ", ".join(sorted(GROK_PATTERNS))
            )
        if field is None:
            return f"(?:{body})"
        convert = None
        if kind is not None:
            convert = _CONVERTERS.get(kind.lower())
            if convert is None:
                raise InvalidInput(
                    f"unknown conversion {kind!r} for field {field!r}; use int or float"
                )
        if field in seen:
            raise InvalidInput(f"grok field {field!r} is captured twice in {expression!r}")
        seen.add(field)
        group = f"_grok{len(fields)}"
        fields.append((group, field, convert))
        return f"(?P<{group}>{body})"

    translated = _REFERENCE.sub(replace, expression)
    try:
        regex = re.compile(translated)
    except re.error as exc:
        raise InvalidInput(f"pattern {expression!r} is not a valid regex: {exc}") from None
    for group in regex.groupindex:
        if group.startswith("_grok"):
            continue
        if group in seen:
            raise InvalidInput(f"field {group!r} is captured twice in {expression!r}")
        seen.add(group)
        fields.append((group, group, None))
    return GrokPattern(regex, tuple(fields))
