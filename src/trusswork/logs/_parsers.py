"""Log line parsers: one raw line in, one :class:`LogRecord` out.

Formats (``format=``):

``json``
    One JSON object per line. Nested objects are flattened with dots
    (``{"http": {"status": 200}}`` -> ``http.status``); arrays stay lists.
    The message is the first string among ``msg``, ``message``, ``log``.
``logfmt``
    ``key=value`` pairs separated by blanks; values may be double-quoted with
    backslash escapes (``\\"``, ``\\\\``, ``\\n``, ``\\t``, ``\\r``); a bare
    ``key`` is ``True``. Values stay strings.
``syslog`` (``rfc5424``, ``rfc3164``)
    RFC 5424 ``<PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD...] MSG`` with each
    structured-data parameter as field ``sd.<SD-ID>.<name>``; RFC 3164
    ``<PRI>Mmm dd hh:mm:ss HOST TAG[PID]: MSG`` with the PRI optional.
    ``priority``, ``facility``/``severity`` (names) and
    ``facility_code``/``severity_code`` come from the PRI; ``host``,
    ``appname``, ``procid``, ``msgid`` from the header (RFC 5424 ``-`` values
    are left out).
``combined``
    nginx/Apache combined (or common) access logs, with the field names of
    Splunk's ``access_combined``: ``clientip``, ``ident``, ``user``,
    ``request``, ``method``, ``uri``, ``uri_path``, ``uri_query`` (``None``
    without ``?``), ``http_version``, ``status`` (int or ``None`` for ``-``),
    ``bytes`` (int or ``None`` for ``-``), ``referer``, ``useragent``.
``regex``
    A user pattern (``pattern=``): a regex with named groups, or a grok
    expression (see :mod:`trusswork.logs._grok`). The message is the
    ``message`` or ``msg`` field when captured, else the line.
``text``
    The whole line is the message; a leading ISO 8601 or syslog timestamp is
    recognised.
``auto``
    Per line: JSON object, RFC 5424, RFC 3164, combined, logfmt (every token
    a ``key=value``), else text. ``auto`` never rejects a line.

Guarantees: a bad line is reported, never fatal to a batch; the only
exceptions are :class:`~trusswork.core.errors.InvalidInput` for a bad
configuration (raised when the parser is built) and, from
:meth:`LogParser.parse_line`, :class:`LogParseError` for a line the chosen
format refuses. Damaged input is repaired and counted on the record's
``problems``: ``invalid-utf8`` (bytes replaced with U+FFFD), ``truncated``
(cut at ``max_line_length`` characters, :data:`TRUNCATION_MARKER` appended),
``bad-timestamp`` (a timestamp was found but is invalid: ``timestamp_ms`` is
``None``), ``missing-timestamp`` (the configured ``timestamp_field`` is
absent), ``bad-conversion`` (a grok ``:int``/``:float`` capture kept as
text), ``no-syslog-header`` (PRI present, header unreadable).

Every format is one precompiled regex (or :func:`json.loads`) per line; the
scanners that locate an error run only for rejected lines.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from trusswork.core.errors import InvalidInput, ParseError
from trusswork.logs._grok import GrokPattern, compile_grok
from trusswork.logs._timestamps import check_timestamp_format, parse_timestamp

__all__ = [
    "FORMATS",
    "TRUNCATION_MARKER",
    "LogParseError",
    "LogParser",
    "LogRecord",
    "ParsedLines",
    "parse_line",
    "parse_lines",
]

FORMATS: Final = (
    "auto",
    "json",
    "logfmt",
    "syslog",
    "rfc5424",
    "rfc3164",
    "combined",
    "regex",
    "text",
)
TRUNCATION_MARKER: Final = "…[truncated]"
DEFAULT_MAX_LINE_LENGTH: Final = 64 * 1024

_TIMESTAMP_KEYS: Final = ("timestamp", "@timestamp", "ts", "time")
_MESSAGE_KEYS: Final = ("msg", "message", "log")
_FACILITIES: Final = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
    "authpriv", "ftp", "ntp", "security", "console", "solaris-cron", "local0", "local1",
    "local2", "local3", "local4", "local5", "local6", "local7",
)  # fmt: skip
_SEVERITIES: Final = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")

_QUOTED_BODY = r'(?:[^"\\]|\\.)*'
# logfmt: a key, then optionally "=" and a quoted or bare value; the line
# check below admits only blank-separated pairs, so it cannot backtrack badly.
_LOGFMT_KEY = r'[^\s="]+'
_LOGFMT_VALUE = rf'"{_QUOTED_BODY}"|[^\s"]*'
_LOGFMT_PAIR: Final = re.compile(rf"({_LOGFMT_KEY})(=(?:{_LOGFMT_VALUE}))?", re.DOTALL)
_LOGFMT_LINE: Final = re.compile(
    rf"\s*(?:{_LOGFMT_KEY}(?:=(?:{_LOGFMT_VALUE}))?(?:\s+|\Z))*", re.DOTALL
)
_ESCAPE: Final = re.compile(r"\\(.)", re.DOTALL)
_ESCAPES: Final = {"n": "\n", "t": "\t", "r": "\r"}

_SD_NAME = r'[^\s="\]]+'
_SD_PARAM_BODY = r'(?:[^"\\\]]|\\.)*'
_SD_ELEMENT = rf'\[{_SD_NAME}(?: {_SD_NAME}="{_SD_PARAM_BODY}")*\]'
_RFC5424: Final = re.compile(
    rf"<([0-9]{{1,3}})>([1-9][0-9]{{0,2}}) (\S+) (\S+) (\S+) (\S+) (\S+) "
    rf"(-|(?:{_SD_ELEMENT})+)(?: (.*))?",
    re.DOTALL,
)
_SD_ELEMENTS: Final = re.compile(rf'\[({_SD_NAME})((?: {_SD_NAME}="{_SD_PARAM_BODY}")*)\]')
_SD_PARAMS: Final = re.compile(rf'({_SD_NAME})="({_SD_PARAM_BODY})"')
_SD_ESCAPE: Final = re.compile(r'\\(["\\\]])')

_PRI: Final = re.compile(r"<([0-9]{1,3})>")
_RFC3164_HEADER: Final = re.compile(
    r"([A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+(?:Z|[+-][0-9]{2}:?[0-9]{2})?) +(.*)",
    re.DOTALL,
)
_RFC3164_TAG: Final = re.compile(r"([^\s\[\]:]{1,48})(?:\[([^\]]*)\])?: ?(.*)", re.DOTALL)
_HOST_REST: Final = re.compile(r"(\S+)(?: (.*))?", re.DOTALL)

_COMBINED: Final = re.compile(
    rf'(\S+) (\S+) (\S+) \[([^\]]*)\] "({_QUOTED_BODY})" ([0-9]{{3}}|-) ([0-9]+|-)'
    rf'(?: "({_QUOTED_BODY})"(?: "({_QUOTED_BODY})")?)?(.*)',
    re.DOTALL,
)
_REQUEST: Final = re.compile(r"([A-Za-z]+) (\S+)(?: (HTTP/[0-9.]+))?")
_QUOTE_ESCAPE: Final = re.compile(r'\\(["\\])')

# Scanners that say where a rejected line went wrong.
_VERSION_AT: Final = re.compile(r"[1-9][0-9]{0,2} ")
_TOKEN_AT: Final = re.compile(r"\S+ ")
_ACCESS_HEAD: Final = re.compile(r"(\S+) (\S+) (\S+) ")
_BRACKETED_AT: Final = re.compile(r"\[[^\]]*\] ")
_QUOTED_AT: Final = re.compile(rf'"{_QUOTED_BODY}" ', re.DOTALL)

_TEXT_TIMESTAMP: Final = re.compile(
    r"\[?([0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:[.,][0-9]+)?"
    r"(?:[Zz]|[+-][0-9]{2}:?[0-9]{2})?"
    r"|[A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2})(?![0-9])"
)


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One parsed log line.

    Attributes
    ----------
    timestamp_ms:
        Unix milliseconds (UTC) of the event, or ``None`` when the line
        carries no (valid) timestamp.
    raw:
        The line as parsed: decoded, without its line ending, truncated when
        it was too long.
    fields:
        Extracted fields (names depend on the format).
    message:
        The human-readable part of the line.
    format:
        The format the line was read as: ``json``, ``logfmt``, ``rfc5424``,
        ``rfc3164``, ``combined``, ``regex`` or ``text``.
    problems:
        What was repaired or could not be read (see the module docstring).
    """

    timestamp_ms: int | None
    raw: str
    fields: dict[str, Any]
    message: str
    format: str
    problems: tuple[str, ...] = ()


class LogParseError(ParseError):
    """A log line the chosen format refuses; shows only that line under the caret.

    ``line`` is the 1-based line number in the batch, ``reason`` what was
    wrong, ``line_text`` the offending line.
    """

    def __init__(
        self, reason: str, *, line_text: str, line: int, column: int, filename: str
    ) -> None:
        super().__init__(reason, line_text=line_text, line=line, column=column, filename=filename)


class ParsedLines(NamedTuple):
    """The result of :func:`parse_lines`: unpacks as ``records, errors``."""

    records: list[LogRecord]
    errors: list[LogParseError]

    @property
    def problems(self) -> Counter[str]:
        """How many records had each problem (``invalid-utf8``, ``truncated``, ...)."""
        counts: Counter[str] = Counter()
        for record in self.records:
            if record.problems:
                counts.update(record.problems)
        return counts


class _Reject(Exception):
    """Internal: the current format refuses the line at a 0-based column."""

    def __init__(self, reason: str, column: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.column = column


def _unescape(match: re.Match[str]) -> str:
    char = match.group(1)
    return _ESCAPES.get(char, char)


def _flatten(obj: dict[str, Any]) -> dict[str, Any]:
    """Nested objects joined with dots; iterative, so depth cannot overflow the stack."""
    if not any(type(value) is dict for value in obj.values()):
        return obj
    out: dict[str, Any] = {}
    stack: list[tuple[str, dict[str, Any]]] = [("", obj)]
    while stack:
        prefix, node = stack.pop()
        for key, value in node.items():
            if type(value) is dict and value:
                stack.append((f"{prefix}{key}.", value))
            else:
                out[prefix + key] = value
    return out


def _priority_fields(pri_text: str) -> dict[str, Any]:
    priority = int(pri_text)
    if priority > 191:
        raise _Reject(f"syslog priority {priority} is out of the range 0..191", 1)
    facility, severity = divmod(priority, 8)
    return {
        "priority": priority,
        "facility": _FACILITIES[facility],
        "severity": _SEVERITIES[severity],
        "facility_code": facility,
        "severity_code": severity,
    }


class LogParser:
    """A configured, reusable log line parser (patterns are compiled once).

    Parameters
    ----------
    format:
        One of :data:`FORMATS`.
    pattern:
        The regex or grok expression, required for ``format="regex"`` and
        refused otherwise.
    timestamp_field:
        Field that holds the event time (JSON, logfmt, regex; for syslog and
        combined it overrides the header time). Without it the first of
        ``timestamp``, ``@timestamp``, ``ts``, ``time`` is used.
    timestamp_format:
        How to read that field (see
        :func:`trusswork.logs._timestamps.parse_timestamp`); ``None`` detects.
    reference_year:
        Year for syslog timestamps, which carry none; ``None`` uses the
        current year (or the previous one for a time in the future).
    max_line_length:
        Longer lines are cut to this many characters and marked.
    filename:
        Shown in error messages.

    Raises
    ------
    InvalidInput
        For an unknown format, a bad or missing pattern, a bad
        ``timestamp_format`` or a ``max_line_length`` below 1.
    """

    def __init__(
        self,
        format: str = "auto",
        *,
        pattern: str | None = None,
        timestamp_field: str | None = None,
        timestamp_format: str | None = None,
        reference_year: int | None = None,
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
        filename: str = "<logs>",
    ) -> None:
        if format not in FORMATS:
            raise InvalidInput(f"unknown log format {format!r}; use one of {', '.join(FORMATS)}")
        if (format == "regex") != (pattern is not None):
            raise InvalidInput("format='regex' needs pattern=, and pattern= needs format='regex'")
        if max_line_length < 1:
            raise InvalidInput(f"max_line_length must be at least 1, not {max_line_length}")
        check_timestamp_format(timestamp_format)
        self.format = format
        self.timestamp_field = timestamp_field
        self.timestamp_format = timestamp_format
        self.reference_year = reference_year
        self.max_line_length = max_line_length
        self.filename = filename
        self._grok: GrokPattern | None = compile_grok(pattern) if pattern is not None else None
        parsers: dict[str, Callable[[str, list[str]], LogRecord]] = {
            "auto": self._auto,
            "json": self._json,
            "logfmt": self._logfmt,
            "syslog": self._syslog,
            "rfc5424": self._rfc5424,
            "rfc3164": self._rfc3164,
            "combined": self._combined,
            "regex": self._regex,
            "text": self._text,
        }
        self._parse = parsers[format]

    # -- public --------------------------------------------------------------

    def parse_line(self, line: str | bytes, *, lineno: int = 1) -> LogRecord:
        """Parse one line (a trailing ``\\n``/``\\r\\n`` is ignored).

        Raises
        ------
        LogParseError
            When the configured format refuses the line (never for ``auto``
            or ``text``).
        InvalidInput
            When ``line`` is neither ``str`` nor ``bytes``.
        """
        problems: list[str] = []
        text = self._prepare(line, problems)
        try:
            return self._parse(text, problems)
        except _Reject as reject:
            raise LogParseError(
                reject.reason,
                line_text=text,
                line=lineno,
                column=reject.column + 1,
                filename=self.filename,
            ) from None

    def parse_lines(self, lines: Iterable[str | bytes] | str | bytes) -> ParsedLines:
        """Parse many lines; blank lines are skipped, bad lines reported with their number.

        Parameters
        ----------
        lines:
            An iterable of lines, or one ``str``/``bytes`` block split at ``\\n``.

        Returns
        -------
        ParsedLines
            The records of the good lines in order, and one
            :class:`LogParseError` per refused line (``.line`` is its number).

        Raises
        ------
        InvalidInput
            When an item of ``lines`` is neither ``str`` nor ``bytes``.
        """
        if isinstance(lines, str):
            lines = lines.split("\n")
        elif isinstance(lines, bytes | bytearray):
            lines = bytes(lines).split(b"\n")
        records: list[LogRecord] = []
        errors: list[LogParseError] = []
        parse = self.parse_line
        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                records.append(parse(line, lineno=lineno))
            except LogParseError as error:
                errors.append(error)
        return ParsedLines(records, errors)

    # -- shared steps --------------------------------------------------------

    def _prepare(self, line: str | bytes, problems: list[str]) -> str:
        limit = self.max_line_length
        if isinstance(line, bytes | bytearray):
            data = bytes(line)
            if len(data) > 4 * limit + 4:
                data = data[: 4 * limit + 4]
            try:
                line = data.decode("utf-8")
            except UnicodeDecodeError:
                line = data.decode("utf-8", errors="replace")
                problems.append("invalid-utf8")
        elif not isinstance(line, str):
            raise InvalidInput(f"a log line is str or bytes, not {type(line).__name__}")
        if line.endswith("\n"):
            line = line[:-1]
        if line.endswith("\r"):
            line = line[:-1]
        if len(line) > limit:
            line = line[:limit] + TRUNCATION_MARKER
            problems.append("truncated")
        return line

    def _timestamp(
        self, value: object, problems: list[str], timestamp_format: str | None
    ) -> int | None:
        if value is None:
            return None
        stamp = parse_timestamp(
            value, timestamp_format=timestamp_format, reference_year=self.reference_year
        )
        if stamp is None:
            problems.append("bad-timestamp")
        return stamp

    def _field_timestamp(self, fields: dict[str, Any], problems: list[str]) -> int | None:
        field = self.timestamp_field
        if field is not None:
            if field not in fields:
                problems.append("missing-timestamp")
                return None
            return self._timestamp(fields[field], problems, self.timestamp_format)
        for key in _TIMESTAMP_KEYS:
            if key in fields:
                return self._timestamp(fields[key], problems, self.timestamp_format)
        return None

    def _header_timestamp(
        self, fields: dict[str, Any], header: str | None, problems: list[str], form: str
    ) -> int | None:
        if self.timestamp_field is not None:
            return self._field_timestamp(fields, problems)
        return self._timestamp(header, problems, form)

    # -- formats -------------------------------------------------------------

    def _json(self, line: str, problems: list[str]) -> LogRecord:
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _Reject(f"invalid JSON: {exc.msg}", exc.pos) from None
        except (ValueError, RecursionError) as exc:
            raise _Reject(f"invalid JSON: {exc}") from None
        if type(obj) is not dict:
            raise _Reject(f"a JSON log line is an object, not {type(obj).__name__}")
        fields = _flatten(obj)
        message = line
        for key in _MESSAGE_KEYS:
            value = fields.get(key)
            if isinstance(value, str):
                message = value
                break
        stamp = self._field_timestamp(fields, problems)
        return LogRecord(stamp, line, fields, message, "json", tuple(problems))

    def _logfmt(self, line: str, problems: list[str], *, strict: bool = False) -> LogRecord:
        if _LOGFMT_LINE.fullmatch(line) is None:
            raise _Reject(*_locate_logfmt_error(line))
        fields: dict[str, Any] = {}
        for key, value in _LOGFMT_PAIR.findall(line):
            if not value:
                if strict:
                    raise _Reject("bare key in auto-detected logfmt")
                fields[key] = True
                continue
            if value[1:2] == '"':
                value = value[2:-1]
                if "\\" in value:
                    value = _ESCAPE.sub(_unescape, value)
            else:
                value = value[1:]
            fields[key] = value
        if not fields:
            raise _Reject("no key=value pairs")
        message = line
        for key in _MESSAGE_KEYS:
            value = fields.get(key)
            if isinstance(value, str):
                message = value
                break
        stamp = self._field_timestamp(fields, problems)
        return LogRecord(stamp, line, fields, message, "logfmt", tuple(problems))

    def _syslog(self, line: str, problems: list[str]) -> LogRecord:
        match = _RFC5424.fullmatch(line)
        if match is not None:
            return self._rfc5424(line, problems, match)
        return self._rfc3164(line, problems)

    def _rfc5424(
        self, line: str, problems: list[str], match: re.Match[str] | None = None
    ) -> LogRecord:
        if match is None:
            match = _RFC5424.fullmatch(line)
            if match is None:
                raise _Reject(*_locate_rfc5424_error(line))
        pri, version, stamp_text, host, app, procid, msgid, sd, message = match.groups()
        fields = _priority_fields(pri)
        fields["version"] = int(version)
        for name, value in (("host", host), ("appname", app), ("procid", procid), ("msgid", msgid)):
            if value != "-":
                fields[name] = value
        if sd != "-":
            for sd_id, params in _SD_ELEMENTS.findall(sd):
                for param, value in _SD_PARAMS.findall(params):
                    if "\\" in value:
                        value = _SD_ESCAPE.sub(r"\1", value)
                    fields[f"sd.{sd_id}.{param}"] = value
        if message is None:
            message = ""
        elif message.startswith("\ufeff"):
            message = message[1:]
        header = None if stamp_text == "-" else stamp_text
        stamp = self._header_timestamp(fields, header, problems, "rfc3339")
        return LogRecord(stamp, line, fields, message, "rfc5424", tuple(problems))

    def _rfc3164(self, line: str, problems: list[str]) -> LogRecord:
        fields: dict[str, Any] = {}
        rest = line
        pri = _PRI.match(line)
        if pri is not None:
            fields = _priority_fields(pri.group(1))
            rest = line[pri.end() :]
        header = _RFC3164_HEADER.match(rest)
        if header is None:
            if pri is None:
                raise _Reject("expected <PRI> or a 'Mmm dd hh:mm:ss' syslog timestamp")
            problems.append("no-syslog-header")
            return LogRecord(None, line, fields, rest, "rfc3164", tuple(problems))
        stamp_text, rest = header.groups()
        tag = _RFC3164_TAG.match(rest)
        if tag is None:
            host_rest = _HOST_REST.match(rest)
            if host_rest is not None:
                fields["host"] = host_rest.group(1)
                rest = host_rest.group(2) or ""
                tag = _RFC3164_TAG.match(rest)
        if tag is not None:
            app, procid, rest = tag.groups()
            fields["appname"] = app
            if procid is not None:
                fields["procid"] = procid
        form = "syslog" if stamp_text[:1].isalpha() else "rfc3339"
        stamp = self._header_timestamp(fields, stamp_text, problems, form)
        return LogRecord(stamp, line, fields, rest, "rfc3164", tuple(problems))

    def _combined(
        self, line: str, problems: list[str], match: re.Match[str] | None = None
    ) -> LogRecord:
        if match is None:
            match = _COMBINED.fullmatch(line)
            if match is None:
                raise _Reject(*_locate_combined_error(line))
        clientip, ident, user, time_local, request, status, size, referer, agent, extra = (
            match.groups()
        )
        if "\\" in request:
            request = _QUOTE_ESCAPE.sub(r"\1", request)
        fields: dict[str, Any] = {
            "clientip": clientip,
            "ident": ident,
            "user": user,
            "request": request,
        }
        parts = _REQUEST.fullmatch(request)
        if parts is not None:
            method, uri, version = parts.groups()
            path, question, query = uri.partition("?")
            fields["method"] = method
            fields["uri"] = uri
            fields["uri_path"] = path
            fields["uri_query"] = query if question else None
            fields["http_version"] = version
        fields["status"] = None if status == "-" else int(status)
        fields["bytes"] = None if size == "-" else int(size)
        if referer is not None:
            fields["referer"] = _QUOTE_ESCAPE.sub(r"\1", referer) if "\\" in referer else referer
        if agent is not None:
            fields["useragent"] = _QUOTE_ESCAPE.sub(r"\1", agent) if "\\" in agent else agent
        extra = extra.strip()
        if extra:
            fields["extra"] = extra
        stamp = self._header_timestamp(fields, time_local, problems, "httpdate")
        return LogRecord(stamp, line, fields, line, "combined", tuple(problems))

    def _regex(self, line: str, problems: list[str]) -> LogRecord:
        grok = self._grok
        assert grok is not None  # guaranteed by __init__ for format="regex"
        found = grok.extract(line)
        if found is None:
            raise _Reject("line does not match the pattern")
        fields, failed = found
        if failed:
            problems.append("bad-conversion")
        message = line
        for key in ("message", "msg"):
            value = fields.get(key)
            if isinstance(value, str):
                message = value
                break
        stamp = self._field_timestamp(fields, problems)
        return LogRecord(stamp, line, fields, message, "regex", tuple(problems))

    def _text(self, line: str, problems: list[str]) -> LogRecord:
        stamp = None
        if line[:1].isalnum() or line[:1] == "[":
            found = _TEXT_TIMESTAMP.match(line)
            if found is not None:
                text = found.group(1)
                form = "syslog" if text[:1].isalpha() else "rfc3339"
                stamp = self._timestamp(text, problems, form)
        return LogRecord(stamp, line, {}, line, "text", tuple(problems))

    def _auto(self, line: str, problems: list[str]) -> LogRecord:
        first = line.lstrip()[:1]
        try:
            if first == "{":
                return self._json(line, problems)
            if first == "<":
                return self._syslog(line, problems)
        except _Reject:
            pass
        if first.isupper() and _RFC3164_HEADER.match(line) is not None:
            return self._rfc3164(line, problems)
        if '"' in line:
            match = _COMBINED.fullmatch(line)
            if match is not None:
                return self._combined(line, problems, match)
        if "=" in line:
            try:
                return self._logfmt(line, problems, strict=True)
            except _Reject:
                pass
        return self._text(line, problems)


# -- error location (rejected lines only) -------------------------------------------


def _locate_logfmt_error(line: str) -> tuple[str, int]:
    pos = len(line) - len(line.lstrip())
    while pos < len(line):
        pair = _LOGFMT_PAIR.match(line, pos)
        if pair is None:
            if line[pos] == "=":
                return "expected a key before '='", pos
            return "unterminated quoted value", pos
        end = pair.end()
        if end < len(line) and not line[end].isspace():
            if line[end] == '"':
                return "unterminated quoted value or stray '\"'", end
            return "expected a blank between pairs", end
        pos = end + len(line[end:]) - len(line[end:].lstrip())
    return "malformed logfmt", 0


def _locate_rfc5424_error(line: str) -> tuple[str, int]:
    pri = _PRI.match(line)
    if pri is None:
        return "expected <PRI> (a priority in angle brackets) at the start", 0
    version = _VERSION_AT.match(line, pri.end())
    if version is None:
        return "expected the syslog version (1) and a space after <PRI>", pri.end()
    pos = version.end()
    for name in ("TIMESTAMP", "HOSTNAME", "APP-NAME", "PROCID", "MSGID"):
        token = _TOKEN_AT.match(line, pos)
        if token is None:
            return f"expected {name} followed by a space", pos
        pos = token.end()
    return "expected '-' or [SD-ID param=\"value\" ...] structured data", pos


def _locate_combined_error(line: str) -> tuple[str, int]:
    head = _ACCESS_HEAD.match(line)
    if head is None:
        return "expected 'clientip ident user ' at the start", 0
    pos = head.end()
    if _BRACKETED_AT.match(line, pos) is None:
        return "expected [time] after the user", pos
    pos = line.index("] ", pos) + 2
    if _QUOTED_AT.match(line, pos) is None:
        return 'expected the quoted "request"', pos
    return "expected status and size after the request", pos


# -- module-level conveniences ----------------------------------------------------


def parse_line(line: str | bytes, format: str = "auto", **options: Any) -> LogRecord:
    """Parse one line; ``options`` are those of :class:`LogParser`.

    Raises
    ------
    LogParseError
        When ``format`` refuses the line.
    InvalidInput
        For a bad configuration or a line that is neither str nor bytes.
    """
    return LogParser(format, **options).parse_line(line)


def parse_lines(
    lines: Iterable[str | bytes] | str | bytes, format: str = "auto", **options: Any
) -> ParsedLines:
    """Parse lines into ``(records, errors)``; bad lines never stop the batch.

    ``options`` are those of :class:`LogParser`. See :meth:`LogParser.parse_lines`.
    """
    return LogParser(format, **options).parse_lines(lines)
