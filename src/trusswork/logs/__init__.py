"""Streaming log analytics: ingest, index and query logs with a pipe language.

Usage::

    from trusswork.logs import LogStore

    with LogStore("logs.d") as store:
        store.ingest(open("access.log", "rb"), format="combined", source="access.log")
        result = store.query("status>=500 earliest=-1h | stats count by uri_path")
        result.to_pylist()        # [{"uri_path": "/api", "count": 12}, ...]
        result.to_arrow()         # a pyarrow.Table
        print(result.plan.render())

:class:`LogStore` keeps lines durable in a write-ahead log, indexes them into
time-partitioned segments of the shared search engine (:mod:`trusswork.search`)
and answers queries in an SPL-like pipe language (:func:`parse_query`):
``search`` terms, phrases, field filters and time ranges pushed into the
index, then ``where``, ``eval``, ``rex``, ``stats``, ``timechart``, ``top``,
``patterns`` and more over Arrow tables.

Parsers read JSON lines, logfmt, syslog (RFC 3164 and 5424), nginx/Apache
combined access logs (Splunk's ``access_combined`` field names), and regular
expressions or grok patterns with named fields; ``auto`` detects per line.
``patterns(lines)`` gives each line its template (``<*>`` for the variable
parts). :class:`AlertManager` evaluates saved searches on a schedule with
conditions in the rules language; :class:`FileTailer` follows files.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trusswork.core.lazy import lazy_getattr
from trusswork.logs._ast import Query
from trusswork.logs._dsl import QueryParseError, parse_query, parse_time_bound
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

if TYPE_CHECKING:
    from trusswork.logs._alerts import (
        AlertEvent,
        AlertManager,
        AlertRule,
        AlertState,
        CallbackNotifier,
        LogNotifier,
        Notifier,
        WebhookNotifier,
        load_alert_rules,
    )
    from trusswork.logs._result import LogResult, Plan
    from trusswork.logs._sources import FileTailer, TailBatch, TailPosition, read_stream
    from trusswork.logs._store import IngestResult, LogStore

# The store, the engine and alerting load pyarrow, zstandard and the rules
# compiler on first use; parsing lines and queries needs none of them.
__getattr__ = lazy_getattr(
    __name__,
    {
        "AlertEvent": "trusswork.logs._alerts",
        "AlertManager": "trusswork.logs._alerts",
        "AlertRule": "trusswork.logs._alerts",
        "AlertState": "trusswork.logs._alerts",
        "CallbackNotifier": "trusswork.logs._alerts",
        "LogNotifier": "trusswork.logs._alerts",
        "Notifier": "trusswork.logs._alerts",
        "WebhookNotifier": "trusswork.logs._alerts",
        "load_alert_rules": "trusswork.logs._alerts",
        "LogResult": "trusswork.logs._result",
        "Plan": "trusswork.logs._result",
        "FileTailer": "trusswork.logs._sources",
        "TailBatch": "trusswork.logs._sources",
        "TailPosition": "trusswork.logs._sources",
        "read_stream": "trusswork.logs._sources",
        "IngestResult": "trusswork.logs._store",
        "LogStore": "trusswork.logs._store",
    },
)

__all__ = [
    "FORMATS",
    "GROK_PATTERNS",
    "TRUNCATION_MARKER",
    "WILDCARD",
    "AlertEvent",
    "AlertManager",
    "AlertRule",
    "AlertState",
    "CallbackNotifier",
    "FileTailer",
    "IngestResult",
    "LogNotifier",
    "LogParseError",
    "LogParser",
    "LogRecord",
    "LogResult",
    "LogStore",
    "Notifier",
    "ParsedLines",
    "PatternMiner",
    "Plan",
    "Query",
    "QueryParseError",
    "TailBatch",
    "TailPosition",
    "Template",
    "WebhookNotifier",
    "compile_grok",
    "grouping_accuracy",
    "load_alert_rules",
    "parse_line",
    "parse_lines",
    "parse_query",
    "parse_time_bound",
    "parse_timestamp",
    "patterns",
    "read_stream",
]
