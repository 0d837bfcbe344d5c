"""The public surface, pinned: adding or removing a public name is a deliberate edit here.

For every public module, ``__all__`` must equal the expected set, hold no
duplicates, name only things that exist, and miss nothing the module itself
defines without a leading underscore.
"""

from __future__ import annotations

import importlib
import types

import pytest

EXPECTED: dict[str, set[str]] = {
    "trusswork": {"__version__"},
    "trusswork.core.errors": {
        "Conflict",
        "Corruption",
        "InvalidInput",
        "LimitExceeded",
        "NotFound",
        "ParseError",
        "TrussworkError",
        "Unavailable",
    },
    "trusswork.core.checksum": {"combine", "crc32c", "hardware_available"},
    "trusswork.core.varint": {"decode", "decode_prefix", "encode"},
    "trusswork.core.bits": {"pack", "unpack"},
    "trusswork.core.lazy": {"lazy_getattr"},
    "trusswork.core.files": {"fsync_directory", "publish_directory", "replace_file", "write_file"},
    "trusswork.core.clock": {"Clock", "FakeClock", "SYSTEM_CLOCK", "SystemClock"},
    "trusswork.core.metrics": {
        "Counter",
        "DEFAULT_BUCKETS",
        "Gauge",
        "Histogram",
        "MetricsRegistry",
        "REGISTRY",
    },
    "trusswork.core.config": {
        "CONFIG_FILENAME",
        "ENV_PREFIX",
        "Seconds",
        "load_config",
        "parse_duration",
        "read_toml",
    },
    "trusswork.http": {
        "App",
        "ERROR_NAMES",
        "Exchange",
        "ExchangeHandler",
        "FileResponse",
        "HTTPRequest",
        "HttpParseError",
        "JSONResponse",
        "Match",
        "MethodNotAllowed",
        "Request",
        "RequestParser",
        "Response",
        "Router",
        "Server",
        "ServerConfig",
        "StaticFiles",
        "StreamingResponse",
        "build_server",
        "format_head",
        "parse_request",
        "parse_requests",
        "reason_phrase",
        "serve",
    },
    "trusswork.ratelimit": {
        "SLO",
        "AdaptiveLimit",
        "AuditEntry",
        "AuditLog",
        "Decision",
        "Decisions",
        "FairShare",
        "FixedWindow",
        "Hierarchy",
        "LevelDecision",
        "LimitChange",
        "Policy",
        "PolicySet",
        "RateLimitMiddleware",
        "RedisFairShare",
        "RedisHierarchy",
        "RedisLimiter",
        "ServiceConfig",
        "SimulationRow",
        "SlidingWindow",
        "TokenBucket",
        "build_app",
        "load_policies",
        "load_service_config",
        "parse_rate",
        "ratelimit_middleware",
        "serve",
        "simulate_adaptive",
    },
    "trusswork.retry": {
        "Attempt",
        "AttemptScope",
        "AttemptTimeout",
        "BreakerMetrics",
        "BreakerState",
        "Budget",
        "CircuitBreaker",
        "CircuitOpen",
        "Policy",
        "RetryBudget",
        "RetryError",
        "Retrying",
        "call",
        "hedge",
        "hedged",
        "parse_retry_after",
        "remaining",
        "retry",
        "retry_after_of",
        "status_of",
    },
    "trusswork.storage": {
        "BTree",
        "BTreeStats",
        "CheckReport",
        "Recovery",
        "Transaction",
        "WriteAheadLog",
        "check_btree",
        "check_log",
        "read_log",
    },
    "trusswork.rules": {
        "SEVERITIES",
        "CelType",
        "CompiledExpression",
        "Condition",
        "Diagnostic",
        "EvaluationError",
        "Explanation",
        "Match",
        "Rule",
        "RuleCheckError",
        "RuleSet",
        "UInt",
        "compile",
        "compile_expression",
        "compile_rules",
        "load_rules",
    },
    "trusswork.tsdb": {
        "STALE_NAN",
        "TSDB",
        "Block",
        "BlockMeta",
        "CardinalityLimitExceeded",
        "CardinalityReport",
        "DuplicateSample",
        "Engine",
        "Labels",
        "Matcher",
        "MatrixResult",
        "MemoryStore",
        "OutOfOrderSample",
        "ParsedBatch",
        "Queryable",
        "Result",
        "Sample",
        "ScalarResult",
        "SeriesData",
        "StringResult",
        "TSDBStats",
        "VectorResult",
        "build_app",
        "decode_write_request",
        "encode_write_request",
        "format_exposition",
        "format_line_protocol",
        "is_stale",
        "labels_of",
        "parse_exposition",
        "parse_line_protocol",
    },
    "trusswork.tsdb.synthetic": {"NodeSeries", "node_exporter_series", "scrape_times"},
    "trusswork.tsdb.codec": {"FRAME", "decode", "decode_into", "encode", "info", "sample_count"},
    "trusswork.tsdb.promql": {
        "Engine",
        "Expr",
        "MatrixResult",
        "Result",
        "ScalarResult",
        "StringResult",
        "VectorResult",
        "parse",
        "parse_duration",
    },
    "trusswork.search.text": {"bm25_top_k", "tokenize", "tokenize_many", "wildcard_regex"},
    "trusswork.search": {
        "Index",
        "IndexWriter",
        "Segment",
        "SegmentMeta",
        "list_segments",
        "merge_segments",
        "plan_merges",
        "bm25_top_k",
        "tokenize",
        "tokenize_many",
        "decode_postings",
        "difference",
        "encode_postings",
        "intersect",
        "intersect_many",
        "union",
        "union_many",
    },
    "trusswork.logs": {
        "FileTailer",
        "TailBatch",
        "TailPosition",
        "read_stream",
        "AlertEvent",
        "AlertManager",
        "AlertRule",
        "AlertState",
        "CallbackNotifier",
        "IngestResult",
        "LogNotifier",
        "LogResult",
        "LogStore",
        "Notifier",
        "Plan",
        "Query",
        "QueryParseError",
        "WebhookNotifier",
        "load_alert_rules",
        "parse_query",
        "parse_time_bound",
        "WILDCARD",
        "PatternMiner",
        "Template",
        "grouping_accuracy",
        "patterns",
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
    },
    "trusswork.storage.btree": {"BTree", "BTreeStats", "Transaction", "check_btree"},
    "trusswork.storage.wal": {
        "CheckReport",
        "FsyncMode",
        "Recovery",
        "WriteAheadLog",
        "check_log",
        "read_log",
    },
}

MODULES = sorted(EXPECTED)


@pytest.mark.parametrize("name", MODULES)
def test_all_is_exactly_the_expected_public_names(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert len(exported) == len(set(exported)), f"{name}.__all__ lists a name twice"
    assert set(exported) == EXPECTED[name]


@pytest.mark.parametrize("name", MODULES)
def test_every_exported_name_exists(name: str) -> None:
    module = importlib.import_module(name)
    missing = [attr for attr in module.__all__ if not hasattr(module, attr)]
    assert missing == [], f"{name}.__all__ names what the module does not have: {missing}"


def defined_here(module: types.ModuleType, value: object) -> bool:
    """True for classes and functions defined in ``module`` or a private module it wraps."""
    if not isinstance(value, (type, types.FunctionType, types.BuiltinFunctionType)):
        return False  # constants and type variables are judged by hand
    owner = getattr(value, "__module__", None)
    if not isinstance(owner, str):
        return False
    return owner == module.__name__ or (
        owner.startswith("trusswork.") and owner.rsplit(".", 1)[-1].startswith("_")
    )


@pytest.mark.parametrize("name", MODULES)
def test_public_definitions_are_exported(name: str) -> None:
    module = importlib.import_module(name)
    unexported = [
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_") and attr not in module.__all__ and defined_here(module, value)
    ]
    assert unexported == [], (
        f"{name} defines public names it does not export: {unexported}; "
        f"add them to __all__ (and here) or give them a leading underscore"
    )
