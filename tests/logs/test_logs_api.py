"""The log store's HTTP API on a real server: ingest, queries, errors, dashboards, alerts."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers.http import running
from trusswork.core.errors import InvalidInput
from trusswork.logs import AlertManager, AlertRule, LogStore
from trusswork.logs._api import build_app, validate_dashboard_name

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z, the store's and the server's clock


def combined_line(seconds_ago: int, status: int, path: str) -> str:
    stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(NOW - seconds_ago))
    return (
        f'10.0.0.{seconds_ago % 7} - - [{stamp}] "GET {path} HTTP/1.1" {status} 512 "-" "curl/8.4"'
    )


#: (seconds before NOW, status, path) of the access-log lines the tests ingest.
ACCESS = [(i * 17, (200, 200, 404, 500, 200)[i % 5], f"/shop/{i % 4}") for i in range(60)]


@pytest.fixture
def open_store(tmp_path: Path) -> Iterator[Callable[..., LogStore]]:
    opened: list[LogStore] = []

    def factory(**options: Any) -> LogStore:
        options.setdefault("background", False)
        options.setdefault("fsync", "never")
        store = LogStore(tmp_path / "store", clock=lambda: NOW, **options)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


@contextmanager
def serve(store: LogStore, **options: Any) -> Iterator[httpx.Client]:
    with (
        running(build_app(store, clock=lambda: NOW, **options)) as server,
        httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=30) as client,
    ):
        yield client


@pytest.fixture
def client(open_store: Callable[..., LogStore]) -> Iterator[httpx.Client]:
    with serve(open_store()) as client:
        yield client


def ingest_access(client: httpx.Client) -> None:
    body = "\n".join(combined_line(*row) for row in ACCESS)
    answer = client.post(
        "/ingest",
        params={"format": "combined", "source": "nginx", "refresh": "true"},
        content=body.encode(),
        headers={"content-type": "text/plain; charset=utf-8"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == len(ACCESS)
    assert answer.json()["rejected"] == 0


def query(client: httpx.Client, q: str, **params: Any) -> dict[str, Any]:
    answer = client.get("/api/query", params={"q": q, **params})
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()
    return data


def test_combined_lines_are_searchable_by_field(client: httpx.Client) -> None:
    ingest_access(client)
    data = query(client, "status=404 source=nginx", earliest="-1h")
    expected = sorted(path for _, status, path in ACCESS if status == 404)
    assert sorted(row["uri_path"] for row in data["rows"]) == expected
    assert {"_time", "_raw", "status", "clientip"} <= set(data["columns"])
    times = [row["_time"] for row in data["rows"]]
    assert times == sorted(times, reverse=True)  # newest first
    assert data["plan"]["rows_matched"] == len(expected)
    # the time range narrows the rows: only lines of the last 5 minutes
    recent = query(client, "status=404", earliest="-5m")["rows"]
    assert len(recent) == sum(1 for ago, s, _ in ACCESS if s == 404 and ago <= 300)


def test_json_bodies_are_ingested_as_json_lines(client: httpx.Client) -> None:
    events = [{"level": "error", "service": "api", "ms": 120 + i} for i in range(3)]
    listed = client.post("/ingest?refresh=1", json=[*events, "a plain text line"])
    assert listed.status_code == 200, listed.text
    assert listed.json()["accepted"] == 4
    wrapped = client.post(
        "/ingest?refresh=1",
        json={"lines": [{"level": "warn", "service": "db"}], "format": "json", "source": "app"},
    )
    assert wrapped.json()["accepted"] == 1
    ndjson = b'{"level": "error", "service": "db"}\n{"level": "info", "service": "db"}\n'
    streamed = client.post(
        "/ingest?refresh=1&source=app",
        content=ndjson,
        headers={"content-type": "application/x-ndjson"},
    )
    assert streamed.json()["accepted"] == 2

    errors = query(client, "level=error | stats count by service")
    assert {row["service"]: row["count"] for row in errors["rows"]} == {"api": 3, "db": 1}
    assert len(query(client, "source=app")["rows"]) == 3
    assert len(query(client, "source=http")["rows"]) == 4  # the default source
    slow = query(client, "service=api ms>121")["rows"]
    assert sorted(row["ms"] for row in slow) == [122]


def test_timechart_counts_each_status_per_minute(client: httpx.Client) -> None:
    ingest_access(client)
    data = query(client, "* | timechart span=1m count by status", earliest="-24h")
    assert data["columns"][0] == "_time"
    assert sorted(data["columns"][1:]) == ["200", "404", "500"]
    expected: Counter[tuple[int, str]] = Counter()
    for ago, status, _ in ACCESS:
        ms = int((NOW - ago) * 1000)
        expected[(ms - ms % 60_000, str(status))] += 1
    got = {
        (row["_time"], status): row[status]
        for row in data["rows"]
        for status in ("200", "404", "500")
        if row[status]
    }
    assert got == dict(expected)


def test_limit_keeps_the_newest_rows_and_says_so(client: httpx.Client) -> None:
    ingest_access(client)
    everything = query(client, "status=200")["rows"]
    limited = query(client, "status=200", limit=3)
    assert limited["rows"] == everything[:3]
    assert any("3 of" in warning for warning in limited["warnings"])
    posted = client.post("/api/query", data={"q": "status=200", "limit": "2"})
    assert posted.json()["rows"] == everything[:2]
    as_json = client.post("/api/query", json={"q": "status=200", "limit": 1, "earliest": "-1h"})
    assert as_json.json()["rows"] == everything[:1]


def test_stats_explain_and_health(client: httpx.Client) -> None:
    ingest_access(client)
    assert client.get("/api/stats").json()["lines"] == len(ACCESS)
    assert client.get("/health").json() == {"status": "ok"}
    explained = client.get("/api/explain", params={"q": "status=500 | stats count"}).json()
    assert "status=500" in explained["text"]
    assert explained["plan"]["rows_matched"] == sum(1 for _, s, _ in ACCESS if s == 500)
    assert explained["plan"]["commands"][0]["rows_out"] == 1


def test_lines_the_format_refuses_are_counted_and_named(client: httpx.Client) -> None:
    body = "\n".join(
        [combined_line(0, 200, "/a"), "not an access log line", combined_line(1, 404, "/b")]
    )
    answer = client.post("/ingest?format=combined&refresh=1", content=body)
    assert answer.status_code == 200
    summary = answer.json()
    assert (summary["accepted"], summary["rejected"]) == (2, 1)
    assert "2" in summary["errors"][0]  # the line number
    assert sorted(row["uri_path"] for row in query(client, "source=http")["rows"]) == ["/a", "/b"]


def test_back_pressure_indexes_before_answering(open_store: Callable[..., LogStore]) -> None:
    with serve(open_store(max_buffer_lines=10)) as client:
        body = "\n".join(combined_line(*row) for row in ACCESS)
        answer = client.post("/ingest?format=combined", content=body)
        assert answer.json()["accepted"] == len(ACCESS)
        # the full buffer made ingest index the batch: searchable without a refresh
        assert len(query(client, "status=500")["rows"]) == 12


def test_bad_query_points_at_the_offset(client: httpx.Client) -> None:
    q = "status=404 | stats count by"
    answer = client.get("/api/query", params={"q": q})
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] == "query-parse-error"
    assert error["offset"] == len(q)
    caret_line = error["message"].splitlines()[-1]
    assert caret_line.index("^") - caret_line.index("|") - 2 == len(q)


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({}, "missing parameter 'q'"),
        ({"q": "error", "earliest": "yesterday-ish"}, "earliest"),
        ({"q": "error", "limit": "ten"}, "limit"),
        ({"q": 'error | rex field=_raw "("'}, "rex"),
    ],
)
def test_bad_query_parameters_are_400(
    client: httpx.Client, params: dict[str, str], needle: str
) -> None:
    answer = client.get("/api/query", params=params)
    assert answer.status_code == 400, answer.text
    assert needle in answer.json()["error"]["message"]


def test_bad_json_body_says_where(client: httpx.Client) -> None:
    answer = client.post(
        "/ingest",
        content=b'[{"level": "error"},\n {"level": }]',
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert "not valid JSON" in error["message"]
    assert (error["line"], error["column"]) == (2, 12)
    assert client.get("/api/stats").json()["lines"] == 0


@pytest.mark.parametrize(
    ("body", "content_type", "needle"),
    [
        (b"fine line\nbad \xff\xfe line\n", "text/plain", "line 2, column 5"),
        (b"[1, 2]", "application/json", "the body[0] is int"),
        (b'{"format": "json"}', "application/json", '"lines"'),
        (b'{"lines": ["x"], "source": 7}', "application/json", '"source" must be a string'),
        (b"x", "image/png", "cannot ingest content type 'image/png'"),
    ],
)
def test_bad_ingest_bodies_are_400_and_store_nothing(
    client: httpx.Client, body: bytes, content_type: str, needle: str
) -> None:
    answer = client.post("/ingest", content=body, headers={"content-type": content_type})
    assert answer.status_code == 400, answer.text
    assert needle in answer.json()["error"]["message"]
    assert client.get("/api/stats").json()["lines"] == 0


def test_unknown_format_is_400(client: httpx.Client) -> None:
    answer = client.post("/ingest?format=klingon", content=b"a line")
    assert answer.status_code == 400
    assert "klingon" in answer.json()["error"]["message"]


def test_body_over_the_limit_is_413(open_store: Callable[..., LogStore]) -> None:
    with serve(open_store(), max_body_bytes=1000) as client:
        small = client.post("/ingest?refresh=1", content=b"x" * 999)
        assert small.status_code == 200
        answer = client.post("/ingest", content=b"y" * 1001)
        assert answer.status_code == 413
        assert answer.json()["error"]["code"] == "payload-too-large"
        assert client.get("/api/stats").json()["lines"] == 1


def test_dashboards_crud_survives_a_restart(
    open_store: Callable[..., LogStore], tmp_path: Path
) -> None:
    store = open_store()
    board: dict[str, Any] = {
        "title": "Shop",
        "panels": [
            {"title": "errors", "query": "status>=500", "type": "table", "earliest": "-1h"},
            {"query": "* | timechart span=1m count by status", "type": "timechart"},
        ],
    }
    with serve(store) as client:
        assert client.get("/api/dashboards").json() == {"dashboards": []}
        created = client.put("/api/dashboards/shop", json=board)
        assert created.status_code == 201, created.text
        assert created.json()["panels"][1]["title"] == board["panels"][1]["query"]
        assert client.put("/api/dashboards/other-1", json={"panels": []}).status_code == 201
        replaced = client.put("/api/dashboards/other-1", json={"title": "Other", "panels": []})
        assert replaced.status_code == 200
        assert client.delete("/api/dashboards/other-1").status_code == 204
        assert client.get("/api/dashboards/other-1").status_code == 404
        assert client.delete("/api/dashboards/other-1").status_code == 404
        page = client.get("/dashboards/shop")
        assert page.status_code == 200 and 'id="panels"' in page.text
    with serve(store) as client:
        assert client.get("/api/dashboards").json() == {
            "dashboards": [{"name": "shop", "title": "Shop", "panels": 2}]
        }
        loaded = client.get("/api/dashboards/shop").json()
        assert loaded["name"] == "shop"
        assert [p["query"] for p in loaded["panels"]] == [p["query"] for p in board["panels"]]
        assert loaded["panels"][0]["earliest"] == "-1h"
    files = sorted(p.name for p in (tmp_path / "store" / "dashboards").iterdir())
    assert files == ["shop.json"]
    assert (
        json.loads((tmp_path / "store" / "dashboards" / "shop.json").read_text())["title"] == "Shop"
    )


def test_dashboards_path_option_is_used(
    open_store: Callable[..., LogStore], tmp_path: Path
) -> None:
    with serve(open_store(), dashboards_path=tmp_path / "boards") as client:
        assert client.put("/api/dashboards/a", json={"panels": []}).status_code == 201
    assert (tmp_path / "boards" / "a.json").is_file()


@pytest.mark.parametrize(
    "raw", ["%2E%2E", "..%2Fescape", ".hidden", "a%2Fb", "%2E%2E%2F%2E%2E%2Fetc"]
)
def test_traversal_names_are_refused(client: httpx.Client, tmp_path: Path, raw: str) -> None:
    url = f"/api/dashboards/{raw}"
    assert client.put(url, json={"panels": []}).status_code == 400
    assert client.get(url).status_code == 400
    assert client.delete(url).status_code == 400
    store_files = {"checkpoint.json", "store.json"}
    written = [p for p in tmp_path.rglob("*.json") if p.name not in store_files]
    assert written == []


@pytest.mark.parametrize(
    ("board", "needle"),
    [
        ([], "JSON object"),
        ({"panels": [{"type": "table"}]}, "panels[0].query"),
        ({"panels": [{"query": "x", "type": "pie"}]}, "'pie'"),
        ({"panels": [{"query": "x", "earliest": "soonish"}]}, "panels[0].earliest"),
        ({"title": 3}, "title"),
    ],
)
def test_invalid_dashboards_are_400(client: httpx.Client, board: Any, needle: str) -> None:
    answer = client.put("/api/dashboards/bad", json=board)
    assert answer.status_code == 400
    assert needle in answer.json()["error"]["message"]
    assert client.get("/api/dashboards/bad").status_code == 404


def test_page_is_served_self_contained(client: httpx.Client) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for element in ('id="query"', 'id="run"', 'id="range"', 'id="results"', 'id="chart"'):
        assert element in page.text
    assert "http://" not in page.text.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in page.text


def test_alerts_report_states_and_history(open_store: Callable[..., LogStore]) -> None:
    store = open_store()

    def runner(q: str, earliest_ms: int, latest_ms: int) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = store.query(
            q, earliest=earliest_ms, latest=latest_ms, now=NOW
        ).to_pylist()
        return rows

    rule = AlertRule(
        name="server-errors",
        query="status>=500 | stats count",
        condition="count > 2.0",
        window=3600,
    )
    with (
        AlertManager(runner, [rule], clock=lambda: NOW) as alerts,
        serve(store, alerts=alerts) as client,
    ):
        ingest_access(client)
        alerts.evaluate(NOW)
        data = client.get("/api/alerts").json()
    assert data["enabled"] is True
    assert data["rules"] == ["server-errors"]
    assert [(s["rule"], s["state"]) for s in data["states"]] == [("server-errors", "firing")]
    assert data["history"][-1]["to_state"] == "firing"


def test_alerts_without_a_manager(client: httpx.Client) -> None:
    assert client.get("/api/alerts").json()["enabled"] is False


@given(st.text(max_size=12))
def test_dashboard_names_stay_inside_the_directory(name: str) -> None:
    base = Path("/srv/boards")
    try:
        validate_dashboard_name(name)
    except InvalidInput:
        accepted = False
    else:
        accepted = True
    # oracle: a name is safe when it is one visible path component of ordinary characters
    safe = (
        name != ""
        and (base / f"{name}.json").parent == base
        and not name.startswith(".")
        and "/" not in name
        and all(c.isascii() and (c.isalnum() or c in "_-.") for c in name)
        and not name.startswith(("-", "_"))
    )
    assert accepted == safe
