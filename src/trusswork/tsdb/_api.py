"""The Prometheus HTTP API over a :class:`~trusswork.tsdb.TSDB`, so Grafana can use it.

``trusswork tsdb serve`` runs :func:`build_app` on :mod:`trusswork.http`:

=====================================  ===========================================================
``GET|POST /api/v1/query``             ``query``, ``time`` (RFC 3339 or Unix seconds; default now)
``GET|POST /api/v1/query_range``       ``query``, ``start``, ``end``, ``step`` (seconds or ``15s``)
``GET|POST /api/v1/series``            ``match[]`` (one or more selectors), ``start``, ``end``
``GET|POST /api/v1/labels``            ``match[]`` (optional), ``start``, ``end``
``GET /api/v1/label/{name}/values``    the same parameters
``GET /api/v1/status/buildinfo``       version, for data-source checks
``GET /api/v1/metadata``               metric types seen in text imports
``POST /api/v1/write``                 Prometheus remote write 1.0 (snappy protobuf)
``POST /api/v1/import/prometheus``     text exposition format; ``timestamp`` for lines without
``POST /write``                        Influx line protocol; ``precision`` = ns, us, ms or s
``GET /-/healthy``, ``/-/ready``       liveness and readiness
``GET /metrics``                       this server's own metrics
=====================================  ===========================================================

Answers use Prometheus's envelope: ``{"status": "success", "data": ...}``,
or ``{"status": "error", "errorType": "bad_data", "error": "..."}`` with
status 400 (422 for a query that parses but cannot be evaluated, 503 when
the database is closed). Imports keep the good lines of a batch and answer
400 with every rejected line's number and reason, or 204 when all were
stored. Queries run in a worker thread, so a slow query does not stall
writes or other requests.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

import trusswork
from trusswork.core.errors import (
    InvalidInput,
    ParseError,
    TrussworkError,
)
from trusswork.core.metrics import MetricsRegistry
from trusswork.http import App, HTTPRequest, JSONResponse, Response
from trusswork.tsdb._db import TSDB
from trusswork.tsdb._exposition import parse_exposition
from trusswork.tsdb._ingest import ParsedBatch
from trusswork.tsdb._lineproto import parse_line_protocol
from trusswork.tsdb._promql_ast import VectorSelector
from trusswork.tsdb._remote_write import decode_write_request
from trusswork.tsdb._series import Matcher
from trusswork.tsdb.promql import Engine, parse, parse_duration

__all__ = ["build_app"]

_FAR_PAST = -(2**62)
_FAR_FUTURE = 2**62
_DURATION = re.compile(r"^\d+(ms|s|m|h|d|w|y)")


class _BadData(InvalidInput):
    """A request parameter is missing or malformed (Prometheus ``bad_data``)."""


def _params(request: HTTPRequest) -> dict[str, list[str]]:
    """Query-string and form-body parameters together (Grafana POSTs its queries)."""
    params = parse_qs(request.query_string, keep_blank_values=True)
    content_type = (request.header(b"content-type") or b"").split(b";")[0].strip().lower()
    if request.method == "POST" and content_type == b"application/x-www-form-urlencoded":
        try:
            form = parse_qs(bytes(request.body).decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            raise _BadData("the form body is not UTF-8") from None
        for name, values in form.items():
            params.setdefault(name, []).extend(values)
    return params


def _one(params: dict[str, list[str]], name: str, default: str | None = None) -> str:
    values = params.get(name)
    if not values or values[-1] == "":
        if default is None:
            raise _BadData(f"missing parameter {name!r}")
        return default
    return values[-1]


def parse_time(text: str, name: str = "time") -> int:
    """A Prometheus API time (Unix seconds, fractions allowed, or RFC 3339) in ms."""
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise _BadData(
                f"invalid parameter {name!r}: cannot parse {text!r} to a timestamp"
            ) from None
        if moment.tzinfo is None:
            raise _BadData(f"invalid parameter {name!r}: {text!r} has no time zone") from None
        return round(moment.timestamp() * 1000)
    if not math.isfinite(seconds):
        raise _BadData(f"invalid parameter {name!r}: {text!r} is not a finite time")
    return round(seconds * 1000)


def parse_step(text: str, name: str = "step") -> int:
    """A Prometheus API duration: float seconds or a PromQL duration (``1m30s``), in ms."""
    try:
        seconds = float(text)
    except ValueError:
        if not _DURATION.match(text):
            raise _BadData(
                f"invalid parameter {name!r}: cannot parse {text!r} to a duration"
            ) from None
        try:
            return parse_duration(text)
        except ParseError as exc:
            raise _BadData(f"invalid parameter {name!r}: {exc.reason}") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise _BadData(
            f"invalid parameter {name!r}: zero or negative query resolution step widths "
            f"are not accepted"
        )
    return round(seconds * 1000)


def _selectors(params: dict[str, list[str]], *, required: bool) -> list[list[Matcher]]:
    texts = [t for t in params.get("match[]", []) if t]
    if not texts and required:
        raise _BadData("no match[] parameter provided")
    out = []
    for text in texts:
        expr = parse(text)
        if not isinstance(expr, VectorSelector):
            raise _BadData(f"invalid parameter 'match[]': {text!r} is not a series selector")
        matchers = list(expr.matchers)
        if expr.name is not None and not any(m.name == "__name__" for m in matchers):
            matchers.append(Matcher("__name__", "=", expr.name))
        out.append(matchers)
    return out


def _range(params: dict[str, list[str]]) -> tuple[int, int]:
    start = parse_time(_one(params, "start"), "start") if params.get("start") else _FAR_PAST
    end = parse_time(_one(params, "end"), "end") if params.get("end") else _FAR_FUTURE
    if end < start:
        raise _BadData("invalid parameter 'end': end timestamp must not be before start time")
    return start, end


def _success(data: Any, warnings: Sequence[str] = ()) -> JSONResponse:
    body: dict[str, Any] = {"status": "success", "data": data}
    if warnings:
        body["warnings"] = list(warnings)
    return JSONResponse(body)


def _error(error: TrussworkError | str, status: int, kind: str = "bad_data") -> JSONResponse:
    return JSONResponse({"status": "error", "errorType": kind, "error": str(error)}, status)


def _import_answer(batch: ParsedBatch, stored: int, errors: list[str]) -> Response:
    problems = [f"line {e.line}: {e.reason}" for e in batch.errors] + errors
    if not problems:
        return Response(b"", 204)
    return JSONResponse(
        {
            "status": "error",
            "errorType": "bad_data",
            "stored": stored,
            "rejected": len(batch.errors),
            "error": "; ".join(problems[:20]),
            "errors": problems,
        },
        400,
    )


def build_app(
    db: TSDB,
    *,
    lookback_ms: int = 300_000,
    metrics: MetricsRegistry | None = None,
    clock: Callable[[], float] = time.time,
) -> App:
    """The Prometheus-compatible API of ``db`` as a :class:`trusswork.http.App`."""
    app = App(metrics=metrics)
    engine = Engine(db, lookback_ms=lookback_ms)
    queries = app.metrics.counter(
        "tsdb_api_queries_total", "PromQL queries answered", labelnames=("kind", "outcome")
    )
    ingested = app.metrics.counter(
        "tsdb_api_samples_ingested_total", "Samples stored", labelnames=("format",)
    )
    types: dict[str, str] = {}

    def now_ms() -> int:
        return int(clock() * 1000)

    async def run_query(kind: str, work: Callable[[], Any]) -> Response:
        try:
            result = await asyncio.to_thread(work)
        except ParseError as exc:
            queries.labels(kind=kind, outcome="bad_data").inc()
            return _error(exc, 400)
        except _BadData as exc:
            queries.labels(kind=kind, outcome="bad_data").inc()
            return _error(exc, 400)
        except InvalidInput as exc:
            queries.labels(kind=kind, outcome="execution").inc()
            return _error(exc, 422, "execution")
        queries.labels(kind=kind, outcome="success").inc()
        return _success(result)

    async def query(request: HTTPRequest) -> Response:
        try:
            params = _params(request)
            text = _one(params, "query")
            at = parse_time(params["time"][-1]) if params.get("time") else now_ms()
        except _BadData as exc:
            return _error(exc, 400)
        return await run_query("instant", lambda: engine.instant(text, at).to_prometheus_json())

    async def query_range(request: HTTPRequest) -> Response:
        try:
            params = _params(request)
            text = _one(params, "query")
            start = parse_time(_one(params, "start"), "start")
            end = parse_time(_one(params, "end"), "end")
            step = parse_step(_one(params, "step"))
        except _BadData as exc:
            return _error(exc, 400)
        if end < start:
            return _error(
                "invalid parameter 'end': end timestamp must not be before start time", 400
            )
        return await run_query(
            "range", lambda: engine.range(text, start, end, step).to_prometheus_json()
        )

    def series(request: HTTPRequest) -> Response:
        try:
            params = _params(request)
            selectors = _selectors(params, required=True)
            mint, maxt = _range(params)
        except (_BadData, ParseError) as exc:
            return _error(exc, 400)
        seen: dict[tuple[tuple[str, str], ...], None] = {}
        for matchers in selectors:
            for found in db.select(matchers, mint, maxt):
                seen[found.labels] = None
        return _success([dict(labels) for labels in sorted(seen)])

    def labels(request: HTTPRequest) -> Response:
        try:
            params = _params(request)
            selectors = _selectors(params, required=False)
            mint, maxt = _range(params)
        except (_BadData, ParseError) as exc:
            return _error(exc, 400)
        names: set[str] = set()
        for matchers in selectors or [[]]:
            names.update(db.label_names(matchers, mint, maxt))
        return _success(sorted(names))

    def label_values(request: HTTPRequest, name: str) -> Response:
        try:
            params = _params(request)
            selectors = _selectors(params, required=False)
            mint, maxt = _range(params)
        except (_BadData, ParseError) as exc:
            return _error(exc, 400)
        values: set[str] = set()
        for matchers in selectors or [[]]:
            values.update(db.label_values(name, matchers, mint, maxt))
        return _success(sorted(values))

    def buildinfo(request: HTTPRequest) -> Response:
        return _success(
            {
                "version": trusswork.__version__,
                "revision": "",
                "branch": "",
                "buildUser": "",
                "buildDate": "",
                "goVersion": "",
                "application": "trusswork",
            }
        )

    def metadata(request: HTTPRequest) -> Response:
        return _success(
            {name: [{"type": kind, "help": "", "unit": ""}] for name, kind in sorted(types.items())}
        )

    def remote_write(request: HTTPRequest) -> Response:
        try:
            batch = decode_write_request(bytes(request.body))
        except TrussworkError as exc:
            return _error(exc, 400)
        stored, errors = db.store_samples(batch.samples, now_ms())
        ingested.labels(format="remote-write").inc(stored)
        return _import_answer(batch, stored, errors)

    def import_text(request: HTTPRequest) -> Response:
        params = _params(request)
        try:
            default_ts = (
                parse_time(params["timestamp"][-1], "timestamp")
                if params.get("timestamp")
                else now_ms()
            )
            text = bytes(request.body).decode("utf-8")
        except (_BadData, UnicodeDecodeError) as exc:
            return _error(str(exc), 400)
        batch = parse_exposition(text, default_ts_ms=default_ts, filename="body")
        types.update(getattr(batch, "types", {}) or {})
        stored, errors = db.store_samples(batch.samples, default_ts)
        ingested.labels(format="prometheus-text").inc(stored)
        return _import_answer(batch, stored, errors)

    def influx_write(request: HTTPRequest) -> Response:
        params = _params(request)
        precision = _one(params, "precision", "ns")
        try:
            text = bytes(request.body).decode("utf-8")
            batch = parse_line_protocol(
                text, precision=precision, default_ts_ms=now_ms(), filename="body"
            )
        except (InvalidInput, UnicodeDecodeError) as exc:
            return _error(str(exc), 400)
        stored, errors = db.store_samples(batch.samples, now_ms())
        ingested.labels(format="influx").inc(stored)
        return _import_answer(batch, stored, errors)

    def healthy(request: HTTPRequest) -> Response:
        return Response(b"trusswork TSDB is healthy.\n", media_type="text/plain")

    for methods, pattern, handler in (
        (("GET", "POST"), "/api/v1/query", query),
        (("GET", "POST"), "/api/v1/query_range", query_range),
        (("GET", "POST"), "/api/v1/series", series),
        (("GET", "POST"), "/api/v1/labels", labels),
        (("GET",), "/api/v1/label/{name}/values", label_values),
        (("GET",), "/api/v1/status/buildinfo", buildinfo),
        (("GET",), "/api/v1/metadata", metadata),
        (("POST",), "/api/v1/write", remote_write),
        (("POST",), "/api/v1/import/prometheus", import_text),
        (("POST",), "/write", influx_write),
        (("GET", "HEAD"), "/-/healthy", healthy),
        (("GET", "HEAD"), "/-/ready", healthy),
    ):
        app.route(methods, pattern, handler)
    app.add_metrics_route()
    return app
