"""Streaming log analytics (issue 8, in progress): log parsers and template mining.

Usage::

    from trusswork.logs import parse_lines

    records, errors = parse_lines(lines, format="auto")
    for record in records:
        record.timestamp_ms, record.fields, record.message

Parsers read JSON lines, logfmt, syslog (RFC 3164 and 5424), nginx/Apache
combined access logs (Splunk's ``access_combined`` field names), and regular
expressions or grok patterns with named fields; ``auto`` detects per line.
Bad lines never stop a batch: each is reported with its line number.

``patterns(lines)`` gives each line its template (``<*>`` for the variable
parts), and :class:`PatternMiner` does the same online, so logs can be
grouped and counted by pattern.
"""

from __future__ import annotations

from trusswork.logs._grok import GROK_PATTERNS, compile_grok
from trusswork.logs._parsers import (
    FORMATS,
    TRUNCATION_MARKER,
    LogParseError,
    LogParser,
    LogRecord,
    ParsedLines,
    parse_line,
    parse_lines,
)
from trusswork.logs._patterns import (
    WILDCARD,
    PatternMiner,
    Template,
    grouping_accuracy,
    patterns,
)
from trusswork.logs._timestamps import parse_timestamp

__all__ = [
    "FORMATS",
    "GROK_PATTERNS",
    "TRUNCATION_MARKER",
    "WILDCARD",
    "LogParseError",
    "LogParser",
    "LogRecord",
    "ParsedLines",
    "PatternMiner",
    "Template",
    "compile_grok",
    "grouping_accuracy",
    "parse_line",
    "parse_lines",
    "parse_timestamp",
    "patterns",
]
