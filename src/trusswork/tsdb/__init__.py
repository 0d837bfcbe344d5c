"""Time-series store: compressed chunks in C, blocks, rollups and PromQL.

Usage::

    from trusswork.tsdb import TSDB, Engine

    with TSDB("metrics") as db:                   # a directory; WAL + blocks
        db.append("node_load1", {"instance": "a:9100"}, ts_ms, 0.42)
        db.append_many("up", {"instance": "a:9100"}, ts_array, values_array)
        engine = Engine(db)
        result = engine.range("avg_over_time(node_load1[5m])", start_ms, end_ms, 60_000)

:class:`TSDB` keeps new samples in an in-memory head backed by a write-ahead
log, cuts them into immutable, checksummed blocks of compressed chunks
(:mod:`trusswork.tsdb.codec`, C), compacts blocks, downsamples them into
5 minute and 1 hour rollups and applies retention in the background.
:class:`Engine` evaluates PromQL over any :class:`Queryable` (the database,
a :class:`Block`, a :class:`MemoryStore`), and :func:`build_app` serves the
Prometheus HTTP API so Grafana can use the store as a Prometheus data source.
Samples also arrive as Prometheus text (:func:`parse_exposition`), Influx
line protocol (:func:`parse_line_protocol`) and remote write
(:func:`decode_write_request`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trusswork.core.lazy import lazy_getattr
from trusswork.tsdb._block import Block, BlockMeta
from trusswork.tsdb._db import TSDB, CardinalityReport, TSDBStats
from trusswork.tsdb._head import DuplicateSample, OutOfOrderSample
from trusswork.tsdb._index import CardinalityLimitExceeded
from trusswork.tsdb._series import (
    STALE_NAN,
    Labels,
    Matcher,
    Queryable,
    SeriesData,
    is_stale,
    labels_of,
)

if TYPE_CHECKING:
    from trusswork.tsdb._api import build_app
    from trusswork.tsdb._exposition import format_exposition, parse_exposition
    from trusswork.tsdb._ingest import ParsedBatch, Sample
    from trusswork.tsdb._lineproto import format_line_protocol, parse_line_protocol
    from trusswork.tsdb._memstore import MemoryStore
    from trusswork.tsdb._remote_write import decode_write_request, encode_write_request
    from trusswork.tsdb.promql import (
        Engine,
        MatrixResult,
        Result,
        ScalarResult,
        StringResult,
        VectorResult,
    )

# Names whose modules import more (the HTTP server, the parsers): loaded on
# first use, so `import trusswork.tsdb` stays light.
_LAZY = {
    "build_app": "trusswork.tsdb._api",
    "parse_exposition": "trusswork.tsdb._exposition",
    "format_exposition": "trusswork.tsdb._exposition",
    "ParsedBatch": "trusswork.tsdb._ingest",
    "Sample": "trusswork.tsdb._ingest",
    "parse_line_protocol": "trusswork.tsdb._lineproto",
    "format_line_protocol": "trusswork.tsdb._lineproto",
    "MemoryStore": "trusswork.tsdb._memstore",
    "decode_write_request": "trusswork.tsdb._remote_write",
    "encode_write_request": "trusswork.tsdb._remote_write",
    "Engine": "trusswork.tsdb.promql",
    "Result": "trusswork.tsdb.promql",
    "ScalarResult": "trusswork.tsdb.promql",
    "StringResult": "trusswork.tsdb.promql",
    "VectorResult": "trusswork.tsdb.promql",
    "MatrixResult": "trusswork.tsdb.promql",
}


__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = [
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
]
