"""The Prometheus HTTP API on a real server: queries, metadata routes, three ingest formats."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import numpy as np
import pytest

from helpers.http import running
from trusswork.tsdb._api import build_app, parse_step, parse_time
from trusswork.tsdb._db import TSDB
from trusswork.tsdb._ingest import Sample
from trusswork.tsdb._remote_write import encode_write_request
from trusswork.tsdb._series import Matcher, labels_of

T0 = 1_700_000_000_000  # ms
NOW = (T0 + 3_600_000) / 1000  # the server's clock, in seconds


@pytest.fixture
def served(open_db: Callable[..., TSDB]) -> Iterator[tuple[httpx.Client, TSDB]]:
    db = open_db()
    ts = T0 + np.arange(240, dtype=np.int64) * 15_000
    for cpu in ("0", "1"):
        for mode, rate in (("user", 0.25), ("idle", 0.7)):
            db.append_many(
                "node_cpu_seconds_total",
                {"cpu": cpu, "mode": mode, "instance": "a:9100"},
                ts,
                np.arange(240) * 15 * rate,
            )
    db.append_many("up", {"instance": "a:9100"}, ts, np.ones(240))
    with (
        running(build_app(db, clock=lambda: NOW)) as server,
        httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as client,
    ):
        yield client, db


def test_instant_query_answers_in_the_prometheus_envelope(
    served: tuple[httpx.Client, TSDB],
) -> None:
    client, _ = served
    answer = client.get(
        "/api/v1/query",
        params={"query": "sum by (mode) (rate(node_cpu_seconds_total[5m]))", "time": NOW},
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "success"
    assert body["data"]["resultType"] == "vector"
    rates = {r["metric"]["mode"]: float(r["value"][1]) for r in body["data"]["result"]}
    assert rates == pytest.approx({"user": 0.5, "idle": 1.4})
    assert body["data"]["result"][0]["value"][0] == pytest.approx(NOW)


def test_range_query_posted_as_a_form_like_grafana_does(served: tuple[httpx.Client, TSDB]) -> None:
    client, _ = served
    answer = client.post(
        "/api/v1/query_range",
        data={"query": "up", "start": T0 / 1000, "end": T0 / 1000 + 600, "step": "5m"},
    )
    assert answer.status_code == 200
    data = answer.json()["data"]
    assert data["resultType"] == "matrix"
    (series,) = data["result"]
    assert series["metric"] == {"__name__": "up", "instance": "a:9100"}
    assert [p[0] for p in series["values"]] == [T0 / 1000, T0 / 1000 + 300, T0 / 1000 + 600]
    assert {p[1] for p in series["values"]} == {"1"}


def test_series_labels_and_label_values(served: tuple[httpx.Client, TSDB]) -> None:
    client, _ = served
    series = client.get("/api/v1/series", params={"match[]": 'node_cpu_seconds_total{cpu="1"}'})
    assert series.status_code == 200
    assert sorted(s["mode"] for s in series.json()["data"]) == ["idle", "user"]
    names = client.get("/api/v1/labels").json()["data"]
    assert names == ["__name__", "cpu", "instance", "mode"]
    values = client.get("/api/v1/label/__name__/values").json()["data"]
    assert values == ["node_cpu_seconds_total", "up"]
    modes = client.get("/api/v1/label/mode/values", params={"match[]": "up"}).json()["data"]
    assert modes == []
    assert client.get("/api/v1/status/buildinfo").json()["data"]["application"] == "trusswork"


@pytest.mark.parametrize(
    ("path", "params", "status", "fragment"),
    [
        ("/api/v1/query", {}, 400, "missing parameter 'query'"),
        ("/api/v1/query", {"query": "sum(", "time": NOW}, 400, "1:5"),
        ("/api/v1/query", {"query": "up", "time": "yesterday"}, 400, "cannot parse 'yesterday'"),
        ("/api/v1/query_range", {"query": "up", "start": 10, "end": 5, "step": 1}, 400, "before"),
        ("/api/v1/query_range", {"query": "up", "start": 0, "end": 5, "step": "-1"}, 400, "step"),
        ("/api/v1/query_range", {"query": "up", "start": 0, "end": 1e6, "step": 1}, 422, "11000"),
        (
            "/api/v1/query",
            {"query": "up + on(instance) group_left node_cpu_seconds_total", "time": NOW},
            422,
            "many",
        ),
        ("/api/v1/series", {}, 400, "match[]"),
        ("/api/v1/series", {"match[]": "sum(up)"}, 400, "not a series selector"),
    ],
)
def test_bad_requests_get_prometheus_errors(
    served: tuple[httpx.Client, TSDB],
    path: str,
    params: dict[str, object],
    status: int,
    fragment: str,
) -> None:
    client, _ = served
    answer = client.get(path, params=params)  # type: ignore[arg-type]
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["status"] == "error"
    assert body["errorType"] == ("bad_data" if status == 400 else "execution")
    assert fragment.replace(",", "") in body["error"].replace(",", "")


def test_remote_write_stores_samples(served: tuple[httpx.Client, TSDB]) -> None:
    client, db = served
    samples = [
        Sample(labels_of({"__name__": "rw_metric", "job": "x"}), T0 + i * 1000, float(i))
        for i in range(10)
    ]
    answer = client.post(
        "/api/v1/write",
        content=encode_write_request(samples),
        headers={"content-encoding": "snappy", "content-type": "application/x-protobuf"},
    )
    assert answer.status_code == 204, answer.text
    (found,) = db.select([Matcher("__name__", "=", "rw_metric")], T0, T0 + 10_000)
    assert found.values.tolist() == [float(i) for i in range(10)]
    damaged = client.post("/api/v1/write", content=b"\xff\xff\xff\xff\x0f garbage")
    assert damaged.status_code == 400
    assert damaged.json()["errorType"] == "bad_data"


def test_text_import_keeps_good_lines_and_names_bad_ones(served: tuple[httpx.Client, TSDB]) -> None:
    client, _ = served
    body = (
        "# TYPE imported counter\n"
        'imported{a="1"} 5 1700000000000\n'
        "imported{a= 7\n"
        'imported{a="2"} 6 1700000000000\n'
    )
    answer = client.post("/api/v1/import/prometheus", content=body)
    assert answer.status_code == 400
    report = answer.json()
    assert report["stored"] == 2
    assert report["rejected"] == 1
    assert report["errors"][0].startswith("line 3:")
    assert client.get("/api/v1/metadata").json()["data"]["imported"][0]["type"] == "counter"
    query = client.get("/api/v1/query", params={"query": "sum(imported)", "time": T0 / 1000})
    assert float(query.json()["data"]["result"][0]["value"][1]) == 11.0
    ok = client.post("/api/v1/import/prometheus", content='imported{a="3"} 1 1700000000000\n')
    assert ok.status_code == 204


def test_influx_line_protocol_write(served: tuple[httpx.Client, TSDB]) -> None:
    client, _ = served
    lines = f"weather,city=oslo temperature=3.5,humidity=80i {T0}\nbroken line here\n"
    answer = client.post("/write", params={"precision": "ms"}, content=lines)
    assert answer.status_code == 400
    assert answer.json()["stored"] == 2
    query = client.get(
        "/api/v1/query", params={"query": 'weather_temperature{city="oslo"}', "time": T0 / 1000}
    )
    assert float(query.json()["data"]["result"][0]["value"][1]) == 3.5


def test_health_and_metrics(served: tuple[httpx.Client, TSDB]) -> None:
    client, _ = served
    assert client.get("/-/healthy").status_code == 200
    client.get("/api/v1/query", params={"query": "up", "time": NOW})
    text = client.get("/metrics").text
    assert 'tsdb_api_queries_total{kind="instant",outcome="success"} 1' in text


def test_time_and_step_parsing() -> None:
    assert parse_time("1700000000.5") == 1_700_000_000_500
    assert parse_time("2023-11-14T22:13:20Z") == 1_700_000_000_000
    assert parse_step("1m30s") == 90_000
    assert parse_step("0.25") == 250
