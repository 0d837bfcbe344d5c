"""The HTTP API and web dashboards of a :class:`~trusswork.logs.LogStore`.

:func:`build_app` exposes a store on :mod:`trusswork.http`:

======================================  ======================================================
``POST /ingest``                        lines as text, NDJSON or JSON; ``format``, ``source``,
                                        ``pattern``, ``refresh`` (searchable before answering)
``GET|POST /api/query``                 ``q``, ``earliest``, ``latest``, ``limit`` (rows kept)
``GET /api/explain``                    the same; the plan as text and as data
``GET /api/stats``                      the store's counts and sizes
``GET /api/alerts``                     alert states and recent history
``GET /health``                         liveness
``GET /``, ``GET /dashboards/{name}``   the web page (search, time charts, dashboards)
``GET /api/dashboards``                 the saved dashboards
``GET|PUT|DELETE /api/dashboards/{n}``  one saved dashboard (JSON)
======================================  ======================================================

Errors answer ``{"error": {"code": ..., "message": ...}}`` with the status
of the :mod:`trusswork.core.errors` class (400 for bad input, 404, 413 for
a body over ``max_body_bytes``, 503 for a closed store); a query that does
not parse adds ``offset`` (0-based, into ``q``) and its message carries
the caret. Ingest and queries run in a worker thread, so a slow query does
not stall other requests; when the store's buffer is full, ingest indexes
before answering and the request simply takes longer (back-pressure).

Dashboards are JSON files ``<name>.json`` under ``dashboards_path``,
replaced atomically; names are 1-100 letters, digits, ``_``, ``-`` and
``.``, starting with a letter or digit, so no name leaves the directory.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import orjson

from trusswork.core.errors import InvalidInput, NotFound, ParseError, TrussworkError
from trusswork.core.files import replace_file
from trusswork.http import App, HTTPRequest, Response
from trusswork.logs._alerts import AlertManager
from trusswork.logs._dsl import QueryParseError, parse_time_bound
from trusswork.logs._engine import LogResult
from trusswork.logs._store import LogStore

__all__ = ["DEFAULT_QUERY_LIMIT", "build_app", "validate_dashboard", "validate_dashboard_name"]

#: Rows a query answers with when the request gives no ``limit``.
DEFAULT_QUERY_LIMIT = 10_000
_HISTORY = 100
_MAX_PANELS = 100
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_PANEL_TYPES = ("table", "timechart")
_TEXT_TYPES = (b"", b"text/plain", b"application/x-ndjson", b"application/jsonl")
_JSON = b"application/json"


class PayloadTooLarge(InvalidInput):
    """A request body is over the server's limit (HTTP 413)."""

    code = "payload-too-large"
    http_status = 413


def _error(error: TrussworkError, **extra: Any) -> Response:
    body = {"error": {"code": error.code, "message": str(error), **extra}}
    return _json(body, error.http_status)


def _json(data: Any, status: int = 200) -> Response:
    body = orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY, default=str)
    return Response(body, status, [(b"content-type", b"application/json")])


def _params(request: HTTPRequest) -> dict[str, str]:
    """Query-string parameters, then form or JSON body fields (the last value wins)."""
    params = {k: v[-1] for k, v in parse_qs(request.query_string, keep_blank_values=True).items()}
    if request.method != "POST" or not len(request.body):
        return params
    content_type = _content_type(request)
    body = bytes(request.body)
    if content_type == b"application/x-www-form-urlencoded":
        try:
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"the form body is not UTF-8 (byte {exc.start})") from None
        params.update({k: v[-1] for k, v in form.items()})
    elif content_type == _JSON:
        data = _load_json(body)
        if not isinstance(data, dict):
            raise InvalidInput('a JSON query body must be an object like {"q": "error"}')
        params.update({str(k): str(v) for k, v in data.items() if v is not None})
    return params


def _content_type(request: HTTPRequest) -> bytes:
    return (request.header(b"content-type") or b"").split(b";")[0].strip().lower()


def _load_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ParseError(
            f"the body is not valid JSON: {exc.msg}",
            source=body.decode("utf-8", "replace"),
            offset=exc.pos,
            filename="body",
        ) from None


def _decode_text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = body.count(b"\n", 0, exc.start) + 1
        column = exc.start - (body.rfind(b"\n", 0, exc.start) + 1) + 1
        raise InvalidInput(
            f"the body is not UTF-8: byte 0x{body[exc.start]:02x} at offset {exc.start} "
            f"(line {line}, column {column}) cannot be decoded; send UTF-8 text"
        ) from None


def _json_lines(items: Any, where: str) -> list[str]:
    if not isinstance(items, list):
        raise InvalidInput(f"{where} must be a list of strings or objects")
    lines = []
    for index, item in enumerate(items):
        if isinstance(item, str):
            lines.append(item)
        elif isinstance(item, dict):
            lines.append(orjson.dumps(item).decode())
        else:
            raise InvalidInput(
                f"{where}[{index}] is {type(item).__name__}; send strings or objects"
            )
    return lines


def _ingest_request(request: HTTPRequest) -> tuple[list[str] | str, dict[str, Any], bool]:
    """The lines of an ingest request, the store's options and whether to refresh."""
    query = {k: v[-1] for k, v in parse_qs(request.query_string, keep_blank_values=True).items()}
    options: dict[str, Any] = {
        "format": query.get("format") or "auto",
        "source": query.get("source") or "http",
        "pattern": query.get("pattern") or None,
    }
    refresh = query.get("refresh", "").lower() in ("1", "true", "yes")
    content_type = _content_type(request)
    body = bytes(request.body)
    if content_type == _JSON:
        data = _load_json(body)
        if isinstance(data, dict):
            if "lines" not in data:
                raise InvalidInput('a JSON object body needs "lines": [...]')
            for key in ("format", "source", "pattern"):
                value = data.get(key)
                if value is not None and not isinstance(value, str):
                    raise InvalidInput(f'"{key}" must be a string')
                if value:
                    options[key] = value
            return _json_lines(data["lines"], "lines"), options, refresh
        return _json_lines(data, "the body"), options, refresh
    if content_type not in _TEXT_TYPES:
        raise InvalidInput(
            f"cannot ingest content type {content_type.decode('latin-1')!r}; send text/plain, "
            "application/x-ndjson or application/json"
        )
    return _decode_text(body), options, refresh


def validate_dashboard_name(name: str) -> str:
    """Return ``name`` if it may name a saved dashboard, else raise ``InvalidInput``."""
    if not _NAME.fullmatch(name):
        raise InvalidInput(
            f"invalid dashboard name {name!r}: use 1-100 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit"
        )
    return name


def _optional_text(panel: Mapping[str, Any], key: str, where: str) -> str | None:
    value = panel.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{where}.{key} must be a string")
    return value


def validate_dashboard(data: Any, name: str) -> dict[str, Any]:
    """The dashboard ``data`` checked and normalized, ready to store.

    A dashboard is ``{"title": str, "panels": [{"title", "query", "type",
    "earliest", "latest"}]}``; ``type`` is ``"table"`` or ``"timechart"``,
    and ``earliest``/``latest`` are time bounds as queries take them.

    Raises
    ------
    InvalidInput
        A missing or mistyped field, an unknown panel type, a bad time bound.
    """
    if not isinstance(data, dict):
        raise InvalidInput("a dashboard must be a JSON object with a title and panels")
    title = data.get("title", name)
    if not isinstance(title, str):
        raise InvalidInput("dashboard title must be a string")
    panels = data.get("panels", [])
    if not isinstance(panels, list) or len(panels) > _MAX_PANELS:
        raise InvalidInput(f"dashboard panels must be a list of at most {_MAX_PANELS} objects")
    out = []
    for index, panel in enumerate(panels):
        where = f"panels[{index}]"
        if not isinstance(panel, dict):
            raise InvalidInput(f"{where} must be an object")
        query = panel.get("query")
        if not isinstance(query, str) or not query.strip():
            raise InvalidInput(f"{where}.query must be a non-empty string")
        kind = panel.get("type", "table")
        if kind not in _PANEL_TYPES:
            raise InvalidInput(f"{where}.type must be 'table' or 'timechart', got {kind!r}")
        panel_title = _optional_text(panel, "title", where) or query
        bounds = {}
        for key in ("earliest", "latest"):
            bound = _optional_text(panel, key, where)
            if bound is not None:
                try:
                    parse_time_bound(bound)
                except QueryParseError as exc:
                    raise InvalidInput(f"{where}.{key}: {exc}") from None
            bounds[key] = bound
        out.append({"title": panel_title, "query": query, "type": kind, **bounds})
    return {"title": title, "panels": out}


def _limit(params: Mapping[str, str]) -> int:
    text = params.get("limit") or str(DEFAULT_QUERY_LIMIT)
    try:
        limit = int(text)
    except ValueError:
        raise InvalidInput(f"limit must be a whole number of rows, got {text!r}") from None
    if limit < 0:
        raise InvalidInput(f"limit must be >= 0, got {limit}")
    return limit


def _time_params(params: Mapping[str, str]) -> dict[str, str | None]:
    bounds: dict[str, str | None] = {}
    for key in ("earliest", "latest"):
        text = params.get(key) or None
        if text is not None:
            try:
                parse_time_bound(text)
            except QueryParseError as exc:
                raise InvalidInput(f"invalid parameter {key!r}: {exc}") from None
        bounds[key] = text
    return bounds


def _page() -> bytes:
    return importlib.resources.files("trusswork.logs").joinpath("_dashboard.html").read_bytes()


def build_app(
    store: LogStore,
    *,
    alerts: AlertManager | None = None,
    dashboards_path: str | os.PathLike[str] | None = None,
    max_body_bytes: int = 16 << 20,
    clock: Callable[[], float] = time.time,
) -> App:
    """The HTTP API and dashboards of ``store`` as a :class:`trusswork.http.App`.

    Parameters
    ----------
    store
        The log store to ingest into and query.
    alerts
        An alert manager whose states and history ``/api/alerts`` reports.
    dashboards_path
        Where saved dashboards live (default ``<store path>/dashboards``).
    max_body_bytes
        Larger request bodies are refused with 413.
    clock
        Seconds since the epoch; relative times in queries are taken from it.

    Returns
    -------
    App
        Serve it with :func:`trusswork.http.serve`.
    """
    if max_body_bytes < 1:
        raise InvalidInput(f"max_body_bytes must be >= 1, got {max_body_bytes}")
    app = App()
    directory = Path(dashboards_path) if dashboards_path is not None else store.path / "dashboards"
    page = _page()
    page_headers = [
        (b"content-type", b"text/html; charset=utf-8"),
        (b"cache-control", b"no-cache"),
        (
            b"content-security-policy",
            b"default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
            b"img-src 'self' data:",
        ),
    ]
    queries = app.metrics.counter(
        "logs_api_queries_total", "Log queries answered", labelnames=("outcome",)
    )
    ingested = app.metrics.counter("logs_api_lines_ingested_total", "Lines stored through HTTP")
    # One writer at a time: two PUTs of one name would share replace_file's temporary file.
    dashboards_lock = threading.Lock()

    def check_size(request: HTTPRequest) -> None:
        declared = request.header(b"content-length")
        size = int(declared) if declared and declared.isdigit() else len(request.body)
        if max(size, len(request.body)) > max_body_bytes:
            raise PayloadTooLarge(
                f"the body is {max(size, len(request.body)):,} bytes, over the limit of "
                f"{max_body_bytes:,}; send the lines in smaller batches"
            )

    async def ingest(request: HTTPRequest) -> Response:
        try:
            check_size(request)
            lines, options, refresh = _ingest_request(request)
        except ParseError as exc:
            return _error(exc, line=exc.line, column=exc.column)
        except InvalidInput as exc:
            return _error(exc)

        def work() -> dict[str, Any]:
            result = store.ingest(lines, **options)
            if refresh:
                store.refresh()
            return result.to_dict()

        try:
            answer = await asyncio.to_thread(work)
        except TrussworkError as exc:
            return _error(exc)
        ingested.inc(answer["accepted"])
        return _json(answer)

    async def run(request: HTTPRequest, work: Callable[[str, dict[str, Any]], bytes]) -> Response:
        try:
            params = _params(request)
            text = params.get("q") or params.get("query") or ""
            if not text.strip():
                raise InvalidInput("missing parameter 'q': the query to run")
            options: dict[str, Any] = {**_time_params(params), "now": clock()}
            limit = _limit(params)
        except ParseError as exc:
            return _error(exc, line=exc.line, column=exc.column)
        except InvalidInput as exc:
            return _error(exc)
        options["limit"] = limit
        try:
            body = await asyncio.to_thread(work, text, options)
        except QueryParseError as exc:
            queries.labels(outcome="parse-error").inc()
            return _error(exc, offset=exc.offset)
        except TrussworkError as exc:
            queries.labels(outcome="error").inc()
            return _error(exc)
        queries.labels(outcome="success").inc()
        return Response(body, 200, [(b"content-type", b"application/json")])

    def run_query(text: str, options: dict[str, Any]) -> bytes:
        limit = options.pop("limit")
        result: LogResult = store.query(text, **options)
        if len(result) > limit:
            result = LogResult(
                result.table.slice(0, min(limit, result.table.num_rows)),
                result.plan,
                [*result.warnings, f"showing the first {limit:,} of {len(result):,} rows"],
            )
        return result.to_json()

    def run_explain(text: str, options: dict[str, Any]) -> bytes:
        options.pop("limit")
        plan = store.explain(text, **options)
        return orjson.dumps({"text": plan.render(), "plan": plan.to_dict()}, default=str)

    async def query(request: HTTPRequest) -> Response:
        return await run(request, run_query)

    async def explain(request: HTTPRequest) -> Response:
        return await run(request, run_explain)

    async def stats(request: HTTPRequest) -> Response:
        return _json(await asyncio.to_thread(store.stats))

    def alert_states(request: HTTPRequest) -> Response:
        if alerts is None:
            return _json({"enabled": False, "rules": [], "states": [], "history": []})
        return _json(
            {
                "enabled": True,
                "rules": [rule.name for rule in alerts.rules],
                "states": [asdict(state) for state in alerts.states()],
                "history": [event.to_dict() for event in alerts.history(_HISTORY)],
            }
        )

    def health(request: HTTPRequest) -> Response:
        return _json({"status": "ok"})

    def index(request: HTTPRequest) -> Response:
        return Response(page, 200, page_headers)

    def dashboard_page(request: HTTPRequest, name: str) -> Response:
        try:
            validate_dashboard_name(name)
        except InvalidInput as exc:
            return _error(exc)
        return Response(page, 200, page_headers)

    def dashboard_file(name: str) -> Path:
        return directory / f"{validate_dashboard_name(name)}.json"

    def read_dashboard(name: str) -> dict[str, Any]:
        try:
            data: dict[str, Any] = orjson.loads(dashboard_file(name).read_bytes())
        except FileNotFoundError:
            raise NotFound(f"no dashboard named {name!r}") from None
        return {"name": name, **data}

    def list_dashboards() -> list[dict[str, Any]]:
        if not directory.is_dir():
            return []
        out = []
        for path in sorted(directory.glob("*.json")):
            name = path.name[: -len(".json")]
            if not _NAME.fullmatch(name):
                continue
            try:
                data = orjson.loads(path.read_bytes())
            except (OSError, orjson.JSONDecodeError):
                continue
            out.append(
                {
                    "name": name,
                    "title": data.get("title", name),
                    "panels": len(data.get("panels", [])),
                }
            )
        return out

    def write_dashboard(name: str, data: dict[str, Any]) -> bool:
        path = dashboard_file(name)
        directory.mkdir(parents=True, exist_ok=True)
        with dashboards_lock:
            existed = path.exists()
            replace_file(path, orjson.dumps(data, option=orjson.OPT_INDENT_2))
        return existed

    def delete_dashboard(name: str) -> None:
        try:
            with dashboards_lock:
                dashboard_file(name).unlink()
        except FileNotFoundError:
            raise NotFound(f"no dashboard named {name!r}") from None

    async def dashboards(request: HTTPRequest) -> Response:
        return _json({"dashboards": await asyncio.to_thread(list_dashboards)})

    async def get_dashboard(request: HTTPRequest, name: str) -> Response:
        try:
            return _json(await asyncio.to_thread(read_dashboard, name))
        except TrussworkError as exc:
            return _error(exc)

    async def put_dashboard(request: HTTPRequest, name: str) -> Response:
        try:
            validate_dashboard_name(name)
            check_size(request)
            data = validate_dashboard(_load_json(bytes(request.body)), name)
            existed = await asyncio.to_thread(write_dashboard, name, data)
        except ParseError as exc:
            return _error(exc, line=exc.line, column=exc.column)
        except TrussworkError as exc:
            return _error(exc)
        return _json({"name": name, **data}, 200 if existed else 201)

    async def remove_dashboard(request: HTTPRequest, name: str) -> Response:
        try:
            await asyncio.to_thread(delete_dashboard, name)
        except TrussworkError as exc:
            return _error(exc)
        return Response(b"", 204)

    for methods, pattern, handler in (
        (("POST",), "/ingest", ingest),
        (("GET", "POST"), "/api/query", query),
        (("GET", "POST"), "/api/explain", explain),
        (("GET",), "/api/stats", stats),
        (("GET",), "/api/alerts", alert_states),
        (("GET", "HEAD"), "/health", health),
        (("GET", "HEAD"), "/", index),
        (("GET", "HEAD"), "/dashboards/{name}", dashboard_page),
        (("GET",), "/api/dashboards", dashboards),
        (("GET",), "/api/dashboards/{name}", get_dashboard),
        (("PUT",), "/api/dashboards/{name}", put_dashboard),
        (("DELETE",), "/api/dashboards/{name}", remove_dashboard),
    ):
        app.route(methods, pattern, handler)
    app.add_metrics_route()
    return app
