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
from trusswork.logs._timestamps import parse_timestamp

__all__ = [
    "FORMATS",
    "GROK_PATTERNS",
    "TRUNCATION_MARKER",
    "LogParseError",
    "LogParser",
    "LogRecord",
    "ParsedLines",
    "compile_grok",
    "parse_line",
    "parse_lines",
    "parse_timestamp",
]
