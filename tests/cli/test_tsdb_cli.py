"""``trusswork tsdb ...``: every action's output, exit codes and errors."""

from __future__ import annotations

import http.server
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import assert_one_error_line
from trusswork.cli import _app, _tsdb, main
from trusswork.tsdb import TSDB, parse_exposition

ROW = _app.Command("tsdb", "time series", "trusswork.cli._tsdb")

#: Put in front of a subprocess's program: the command row, if _app.COMMANDS lacks it.
REGISTER = textwrap.dedent(
    """
    from trusswork.cli import _app
    if not any(c.name == "tsdb" for c in _app.COMMANDS):
        _app.COMMANDS += (_app.Command("tsdb", "time series", "trusswork.cli._tsdb"),)
    """
)

#: The known data set: two counters and a gauge, one sample every 15 s for an hour from T0.
T0 = 1_700_000_000_000
STEP = 15_000
POINTS = 241  # T0 .. T0 + 1 h
END_S = (T0 + 3_600_000) // 1000


@pytest.fixture(autouse=True)
def registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The ``tsdb`` row of _app.COMMANDS, added for the test if it is not there yet."""
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)  # tables are parsed: plain text, no colours
    if not any(command.name == "tsdb" for command in _app.COMMANDS):
        monkeypatch.setattr(_app, "COMMANDS", (*_app.COMMANDS, ROW))
    yield


def tsdb_cli(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main(["tsdb", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def cells(out: str, first: str) -> list[str]:
    """The cells of the table row whose first cell is ``first``."""
    for line in out.splitlines():
        parts = [part.strip() for part in line.strip().strip("│").split("│")]
        if parts and parts[0] == first:
            return parts
    raise AssertionError(f"no row {first!r} in:\n{out}")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A database holding the known data set, closed again."""
    path = tmp_path / "db"
    ts = T0 + np.arange(POINTS, dtype=np.int64) * STEP
    index = np.arange(POINTS, dtype=np.float64)
    with TSDB(path, background=False) as store:
        store.append_many("http_requests_total", {"job": "api", "code": "200"}, ts, 10 * index)
        store.append_many("http_requests_total", {"job": "api", "code": "500"}, ts, index)
        store.append_many("temperature", {"room": "lab"}, ts, 20 + index % 5)
    return path


def query_json(capsys: pytest.CaptureFixture[str], db: Path, *argv: str) -> dict[str, Any]:
    code, out, err = tsdb_cli(capsys, "query", "--db", db, *argv, "--json")
    assert (code, err) == (0, ""), err
    document: dict[str, Any] = json.loads(out)
    return document


# ---------------------------------------------------------------- query


def test_query_instant_json_is_the_api_data_object(
    capsys: pytest.CaptureFixture[str], db: Path
) -> None:
    data = query_json(
        capsys, db, "sum by (code) (rate(http_requests_total[5m]))", "--time", str(END_S)
    )
    assert data["resultType"] == "vector"
    rates = {item["metric"]["code"]: float(item["value"][1]) for item in data["result"]}
    assert rates == pytest.approx({"200": 10 / 15, "500": 1 / 15})
    assert {item["value"][0] for item in data["result"]} == {END_S}


def test_query_instant_table_has_one_row_per_series(
    capsys: pytest.CaptureFixture[str], db: Path
) -> None:
    code, out, err = tsdb_cli(
        capsys, "query", "--db", db, "http_requests_total", "--time", "2023-11-14T23:13:20Z"
    )
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == "at 2023-11-14T23:13:20Z: 2 series"
    row = cells(out, 'http_requests_total{code="200", job="api"}')
    assert row[1] == "2400"  # the sample at T0 + 1 h: 10 x 240
    assert cells(out, 'http_requests_total{code="500", job="api"}')[1] == "240"


def test_query_scalar_and_relative_times(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    data = query_json(capsys, db, "1 + 2", "--time", "now-1h")
    assert data["resultType"] == "scalar"
    assert data["result"][1] == "3"
    code, out, _ = tsdb_cli(capsys, "query", "--db", db, "scalar(vector(4))")
    assert code == 0
    assert "scalar" in out.splitlines()[0]
    assert cells(out, "4") == ["4"]


def test_query_range_json_and_table(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    start = str((T0 + 600_000) // 1000)
    data = query_json(
        capsys, db, "temperature", "--start", start, "--end", str(END_S), "--step", "1m"
    )
    assert data["resultType"] == "matrix"
    (series,) = data["result"]
    assert series["metric"] == {"__name__": "temperature", "room": "lab"}
    times = [point[0] for point in series["values"]]
    assert times == [(T0 + 600_000) / 1000 + 60 * k for k in range(51)]
    # A sample every 15 s: the one at each minute is index 4k, so 20 + (4k mod 5).
    assert [float(point[1]) for point in series["values"][:5]] == [
        20 + (40 + 4 * k) % 5 for k in range(5)
    ]
    code, out, _ = tsdb_cli(
        capsys, "query", "--db", db, "temperature", "--start", start, "--end", str(END_S)
    )
    assert code == 0
    # No --step: the range over 250, rounded up to whole seconds (3000 s / 250 = 12 s).
    assert out.splitlines()[0].endswith("step 12 s: 1 series, 251 points")
    row = cells(out, 'temperature{room="lab"}')
    assert row[1:5] == ["251", "20", "24", "20"]


@pytest.mark.parametrize(
    ("expr", "first", "caret_column"),
    [
        ("sum(rate(x[5m])", "<query>:1:16: unexpected end of input", 16),
        ("rate(x[5q])", "<query>:1:8:", 8),
    ],
)
def test_query_that_does_not_parse_shows_a_caret(
    capsys: pytest.CaptureFixture[str], db: Path, expr: str, first: str, caret_column: int
) -> None:
    code, out, err = tsdb_cli(capsys, "query", "--db", db, expr)
    assert (code, out) == (1, "")
    lines = err.splitlines()
    assert lines[0].startswith(f"trusswork: error: {first}")
    assert lines[1].endswith(expr)
    caret = lines[2]
    gutter = lines[1].index(expr)
    assert caret.index("^") == gutter + caret_column - 1


@pytest.mark.parametrize(
    ("argv", "code", "fragments"),
    [
        (["up", "--time", "yesterday"], 2, ["argument --time", "'yesterday'"]),
        (["up", "--time", "now-soon"], 2, ["argument --time", "now-DURATION"]),
        (["up", "--start", "100", "--step", "0"], 2, ["argument --step", "more than 0"]),
        (["up", "--start", "100", "--step", "fast"], 2, ["argument --step", "'fast'"]),
        (["up", "--time", "100", "--start", "50"], 2, ["--time is for an instant query"]),
        (["up", "--end", "100"], 2, ["a range query needs --start"]),
        (["up", "--start", "200", "--end", "100"], 2, ["--end", "is before --start"]),
        (["up", "--start", "0", "--end", "100000", "--step", "1"], 1, ["maximum resolution"]),
        (['label_replace(up, "x", "$1", "y", "(")'], 1, ["invalid regular expression"]),
    ],
)
def test_query_refuses_bad_arguments_with_one_line(
    capsys: pytest.CaptureFixture[str], db: Path, argv: list[str], code: int, fragments: list[str]
) -> None:
    got, out, err = tsdb_cli(capsys, "query", "--db", db, *argv)
    assert (got, out) == (code, "")
    assert_one_error_line(err, *fragments)


def test_actions_that_read_refuse_a_missing_database(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "nothing"
    for argv in (["query", "up"], ["stats"], ["cardinality"], ["compact"]):
        code, out, err = tsdb_cli(capsys, argv[0], "--db", missing, *argv[1:])
        assert (code, out) == (1, "")
        assert_one_error_line(err, f"--db {missing}", "no database directory")
    assert not missing.exists()


# ---------------------------------------------------------------- import


def test_import_stores_exposition_and_line_protocol(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    prom = tmp_path / "node.prom"
    prom.write_text(
        "# HELP up Whether the target answered.\n# TYPE up gauge\n"
        'up{job="node"} 1 1700000000000\nup{job="db"} 0\n',
        encoding="utf-8",
    )
    influx = tmp_path / "cpu.txt"  # no known suffix: recognised by its fields
    influx.write_text("cpu,host=a user=1.5,system=2 1700000000\n", encoding="utf-8")
    db = tmp_path / "db"
    code, out, err = tsdb_cli(
        capsys, "import", "--db", db, prom, influx, "--precision", "s", "--timestamp", "1700000060"
    )
    assert (code, err) == (0, "")
    assert cells(out, str(prom))[1:] == ["prometheus", "2", "0"]
    assert cells(out, str(influx))[1:] == ["influx", "2", "0"]
    assert out.splitlines()[-1] == f"4 samples stored in {db}"
    with TSDB(db, background=False) as store:
        up = {dict(s.labels)["job"]: (s.ts.tolist(), s.values.tolist()) for s in store.select(
            [_matcher("up")], 0, 2**62)}  # fmt: skip
        cpu = sorted(
            dict(s.labels)["__name__"] for s in store.select([_matcher("cpu_user")], 0, 2**62)
        )
        system = store.select([_matcher("cpu_system")], 0, 2**62)
    assert up == {"node": ([T0], [1.0]), "db": ([T0 + 60_000], [0.0])}  # --timestamp
    assert cpu == ["cpu_user"]
    assert system[0].ts.tolist() == [T0]  # --precision s


def _matcher(name: str) -> Any:
    from trusswork.tsdb import Matcher

    return Matcher("__name__", "=", name)


def test_import_lists_every_rejected_line_and_keeps_the_good_ones(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    prom = tmp_path / "bad.prom"
    prom.write_text('a{x="1"} 1 1700000000000\nbad line here\nb 2 1700000000000\nc{ 3\n')
    lp = tmp_path / "bad.lp"
    lp.write_bytes(b"m v=1 1700000000000000000\nm v=x\nm,t=\xff v=2\n")
    db = tmp_path / "db"
    code, out, err = tsdb_cli(capsys, "import", "--db", db, prom, lp)
    assert code == 1
    assert cells(out, str(prom))[1:] == ["prometheus", "2", "2"]
    assert cells(out, str(lp))[1:] == ["influx", "1", "2"]
    lines = err.splitlines()
    assert [re.sub(r"(:\d+:\d+): .*", r"\1", line) for line in lines[:4]] == [
        f"{prom}:2:5", f"{prom}:4:4", f"{lp}:2:5", f"{lp}:3:1",
    ]  # fmt: skip
    assert lines[3] == f"{lp}:3:1: not UTF-8 text"
    assert_one_error_line(lines[4], "4 line(s) or series rejected", "the rest was stored")
    with TSDB(db, background=False) as store:
        assert sorted(store.label_values("__name__")) == ["a", "b", "m_v"]


def test_import_reads_big_files_in_slices_with_the_right_line_numbers(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_tsdb, "SLICE_LINES", 3)
    prom = tmp_path / "big.prom"
    lines = ["# TYPE h histogram", "# HELP h Latency."]
    lines += [f'h_bucket{{le="{n}"}} {n} 1700000000000' for n in range(1, 6)]  # lines 3-7
    lines += ["h_bucket 9 1700000000000", "# TYPE h histogram", "# HELP h Again."]  # 8-10
    lines += [f"g{n} {n} 1700000000000" for n in range(5)]  # 11-15
    prom.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, out, err = tsdb_cli(capsys, "import", "--db", tmp_path / "db", prom)
    assert code == 1
    assert cells(out, str(prom))[1:] == ["prometheus", "10", "3"]
    rejected = err.splitlines()[:3]
    assert rejected[0].startswith(f"{prom}:8:1: histogram series 'h_bucket' needs a 'le' label")
    assert rejected[1].startswith(f"{prom}:9:") and "second # TYPE" in rejected[1]
    assert rejected[2].startswith(f"{prom}:10:") and "second # HELP" in rejected[2]


class _CountingStore:
    """Enough of a TSDB for ``load_file``: counts the samples it is given."""

    def store_samples(self, samples: Any, default_ts_ms: int) -> tuple[int, list[str]]:
        return len(list(samples)), []


LINES = st.sampled_from(
    [
        "# TYPE h histogram", "# TYPE s summary", "# HELP h Help.", "# a comment", "",
        'h_bucket{le="1"} 1', "h_bucket 2", 's{quantile="0.5"} 3', "s 4", "h_sum 5",
        'up{job="a"} 1', "up 1 2 3", "bad line", 'x{a="1",a="2"} 1', "nan_value NaN", "\t",
    ]
)  # fmt: skip


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=st.lists(LINES, max_size=30), size=st.integers(1, 7))
def test_import_in_slices_matches_parsing_the_whole_file(
    tmp_path: Path, lines: list[str], size: int
) -> None:
    """Reading a file in slices of any size rejects the lines one parse of it rejects."""
    path = tmp_path / "f.prom"
    text = "\n".join(lines)
    path.write_text(text, encoding="utf-8")
    whole = parse_exposition(text, default_ts_ms=0)
    expected = [f"{path}:{e.line}:{e.column or 1}: {e.reason}" for e in whole.errors]
    store = _CountingStore()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_tsdb, "SLICE_LINES", size)
        report = _tsdb.load_file(cast(Any, store), path, "prometheus", precision="ns", default_ts=0)
    assert report.rejected == expected
    assert report.stored == len(whole.samples)


@pytest.mark.parametrize(
    ("argv", "code", "fragments"),
    [
        (["--format", "csv"], 2, ["argument --format", "invalid choice: 'csv'"]),
        (["--precision", "h"], 2, ["argument --precision", "invalid choice"]),
        (["--format", "prometheus", "--precision", "s"], 2, ["--precision is for line protocol"]),
        (["--timestamp", "teatime"], 2, ["argument --timestamp", "'teatime'"]),
    ],
)
def test_import_refuses_bad_options(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], code: int,
    fragments: list[str],
) -> None:  # fmt: skip
    good = tmp_path / "good.prom"
    good.write_text("up 1\n", encoding="utf-8")
    got, out, err = tsdb_cli(capsys, "import", "--db", tmp_path / "db", good, *argv)
    assert (got, out) == (code, "")
    assert_one_error_line(err, *fragments)
    assert not (tmp_path / "db").exists()


def test_import_refuses_unreadable_files_before_storing_anything(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    good = tmp_path / "good.prom"
    good.write_text("up 1\n", encoding="utf-8")
    db = tmp_path / "db"
    for bad, reason in ((tmp_path / "missing.prom", "No such file"), (tmp_path, "Is a directory")):
        code, out, err = tsdb_cli(capsys, "import", "--db", db, good, bad)
        assert (code, out) == (1, "")
        assert_one_error_line(err, reason, str(bad))
    assert not db.exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_import_refuses_a_file_without_read_permission(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    locked = tmp_path / "locked.prom"
    locked.write_text("up 1\n", encoding="utf-8")
    locked.chmod(0)
    code, out, err = tsdb_cli(capsys, "import", "--db", tmp_path / "db", locked)
    assert (code, out) == (1, "")
    assert_one_error_line(err, "Permission denied", str(locked))


# ---------------------------------------------------------------- scrape


class _Exporter(http.server.BaseHTTPRequestHandler):
    body = b'# TYPE up gauge\nup{job="x"} 1\nrequests_total{code="200"} 17\n'

    def do_GET(self) -> None:
        if self.path != "/metrics":
            self.send_error(404, "nothing here")
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def exporter() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Exporter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_scrape_stores_each_scrape(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, exporter: str
) -> None:
    db = tmp_path / "db"
    code, out, err = tsdb_cli(
        capsys, "scrape", "--db", db, f"{exporter}/metrics", "--count", "3", "--every", "50ms"
    )
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert len(lines) == 3
    for number, line in enumerate(lines, 1):
        assert re.fullmatch(
            rf"scrape {number} at \S+Z: 2 samples stored, 0 rejected \(\d+ ms\)", line
        )
    with TSDB(db, background=False) as store:
        (up,) = store.select([_matcher("up")], 0, 2**62)
    assert up.values.tolist() == [1.0, 1.0, 1.0]
    # Stamped with each scrape's own time; the third is due 2 x 50 ms after the first.
    assert np.all(np.diff(up.ts) > 0)
    assert up.ts[-1] - up.ts[0] >= 95


def test_scrape_reports_a_failed_fetch(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, exporter: str
) -> None:
    code, out, err = tsdb_cli(capsys, "scrape", "--db", tmp_path / "db", f"{exporter}/nope")
    assert (code, out) == (1, "")
    assert_one_error_line(err, f"scrape of {exporter}/nope failed", "HTTP 404")


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["ftp://example.com/metrics"], ["'ftp://example.com/metrics'", "http:// or https://"]),
        (["http://127.0.0.1:1/m", "--every", "0"], ["argument --every", "more than 0"]),
        (["http://127.0.0.1:1/m", "--every", "often"], ["argument --every", "'often'"]),
        (["http://127.0.0.1:1/m", "--count", "0"], ["argument --count", "1 or more"]),
    ],
)
def test_scrape_refuses_bad_arguments(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], fragments: list[str]
) -> None:
    code, out, err = tsdb_cli(capsys, "scrape", "--db", tmp_path / "db", *argv)
    assert (code, out) == (2, "")
    assert_one_error_line(err, *fragments)


# ---------------------------------------------------------------- cardinality, stats, compact


def test_cardinality_json_and_table(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    code, out, err = tsdb_cli(capsys, "cardinality", "--db", db, "--json", "--top", "2")
    assert (code, err) == (0, "")
    assert json.loads(out) == {
        "total_series": 3,
        "top_metrics": [
            {"metric": "http_requests_total", "series": 2},
            {"metric": "temperature", "series": 1},
        ],
        "top_label_names": [{"label": "__name__", "values": 2}, {"label": "code", "values": 2}],
        "top_label_pairs": [
            {"label": "job", "value": "api", "series": 2},
            {"label": "code", "value": "200", "series": 1},
        ],
    }
    code, out, _ = tsdb_cli(capsys, "cardinality", "--db", db)
    assert code == 0
    assert out.splitlines()[0] == f"3 series in the head of {db}"
    assert cells(out, "http_requests_total") == ["http_requests_total", "2", "66.7%"]
    assert cells(out, 'job="api"') == ['job="api"', "2", "66.7%"]
    code, out, err = tsdb_cli(capsys, "cardinality", "--db", db, "--top", "0")
    assert (code, out) == (2, "")
    assert_one_error_line(err, "argument --top", "1 or more")


def test_stats_and_compact_report_what_changed(
    capsys: pytest.CaptureFixture[str], db: Path
) -> None:
    code, out, err = tsdb_cli(capsys, "stats", "--db", db, "--json")
    assert (code, err) == (0, "")
    before = json.loads(out)
    assert (before["series"], before["head_samples"], before["raw_blocks"]) == (3, 3 * POINTS, 0)
    assert before["bytes_per_sample"] is None
    assert before["wal_bytes"] > 0
    code, out, err = tsdb_cli(capsys, "compact", "--db", db)
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == (
        f"cut {3 * POINTS} samples of 3 series (2023-11-14T22:13:20Z to 2023-11-14T23:13:20Z) "
        "into a block"
    )
    assert cells(out, "samples in the head")[1:] == [f"{3 * POINTS}", "0"]
    assert cells(out, "samples in raw blocks")[1:] == ["0", f"{3 * POINTS}"]
    assert cells(out, "raw blocks")[1:] == ["0", "1"]
    code, out, _ = tsdb_cli(capsys, "stats", "--db", db, "--json")
    after = json.loads(out)
    assert (after["raw_blocks"], after["raw_samples"], after["head_samples"]) == (1, 3 * POINTS, 0)
    assert 0 < after["bytes_per_sample"] < 16  # compressed below the raw int64 + float64
    code, out, _ = tsdb_cli(capsys, "stats", "--db", db)
    assert code == 0
    assert cells(out, "samples in raw blocks")[1] == f"{3 * POINTS}"
    # The data is still there, now read from the block.
    data = query_json(capsys, db, "http_requests_total", "--time", str(END_S))
    assert sorted(float(item["value"][1]) for item in data["result"]) == [240.0, 2400.0]
    code, out, _ = tsdb_cli(capsys, "compact", "--db", db)
    assert (code, out.splitlines()[0]) == (0, "the head was empty: nothing to cut")


def test_compact_refuses_a_bad_retention(capsys: pytest.CaptureFixture[str], db: Path) -> None:
    code, out, err = tsdb_cli(capsys, "compact", "--db", db, "--retention", "-1h")
    assert (code, out) == (2, "")
    assert_one_error_line(err, "argument --retention")


# ---------------------------------------------------------------- generate


def test_generate_writes_node_exporter_series_ending_now(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = tmp_path / "db"
    code, out, err = tsdb_cli(
        capsys, "generate", "--db", db, "--hosts", "1", "--hours", "0.5", "--interval", "30s"
    )
    assert (code, err) == (0, "")
    assert re.match(
        r"generated 78 series \(29 constant, 37 counter, 12 gauge\) of 1 host\(s\): 4,680 samples",
        out,
    )
    code, out, _ = tsdb_cli(capsys, "stats", "--db", db, "--json")
    assert json.loads(out)["head_samples"] == 78 * 60
    data = query_json(capsys, db, "count(node_cpu_seconds_total)")  # at now: the data is recent
    assert data["result"][0]["value"][1] == "32"


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["--hosts", "0"], ["argument --hosts", "1 to 10000"]),
        (["--hours", "-1"], ["argument --hours", "more than 0 hours"]),
        (["--interval", "0s"], ["argument --interval", "more than 0"]),
        (["--interval", "1 fortnight"], ["argument --interval", "'1 fortnight'"]),
        (["--hours", "0.01", "--interval", "1h"], ["--hours 0.01 is shorter than one --interval"]),
    ],
)
def test_generate_refuses_bad_arguments(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], fragments: list[str]
) -> None:
    code, out, err = tsdb_cli(capsys, "generate", "--db", tmp_path / "db", *argv)
    assert (code, out) == (2, "")
    assert_one_error_line(err, *fragments)


# ---------------------------------------------------------------- serve


def test_serve_answers_prometheus_queries_until_sigterm(db: Path) -> None:
    program = REGISTER + textwrap.dedent(
        f"""
        import sys
        sys.exit(_app.main(["tsdb", "serve", "--db", {str(db)!r}, "--port", "0"]))
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with subprocess.Popen(
        [sys.executable, "-c", program], stderr=subprocess.PIPE, text=True, env=env
    ) as process:
        try:
            assert process.stderr is not None
            line = process.stderr.readline()
            found = re.fullmatch(r"trusswork\.tsdb: listening on http://127\.0\.0\.1:(\d+)\n", line)
            assert found is not None, line + process.stderr.read()
            with httpx.Client(base_url=f"http://127.0.0.1:{found[1]}", timeout=10) as client:
                answer = client.get(
                    "/api/v1/query", params={"query": "sum(temperature)", "time": END_S}
                ).json()
                assert answer["status"] == "success"
                assert answer["data"]["result"][0]["value"] == [END_S, "20"]
                names = client.get("/api/v1/label/__name__/values").json()["data"]
                assert names == ["http_requests_total", "temperature"]
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=20) == 0
    with TSDB(db, background=False) as store:  # closed cleanly: the WAL lock is free again
        assert store.stats().series == 3


def test_serve_refuses_a_bad_port(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = tsdb_cli(capsys, "serve", "--db", tmp_path / "db", "--port", "99999")
    assert (code, out) == (2, "")
    assert_one_error_line(err, "argument --port", "0 to 65535")


# ---------------------------------------------------------------- help


def test_tsdb_help_imports_no_heavy_library() -> None:
    script = REGISTER + textwrap.dedent(
        """
        import contextlib, io, sys
        for argv in (["tsdb", "--help"], ["tsdb", "query", "--help"],
                     ["tsdb", "import", "--help"]):
            with contextlib.redirect_stdout(io.StringIO()):
                assert _app.main(argv) == 0, argv
        heavy = {"numpy", "rich", "matplotlib"}
        print(sorted(name for name in sys.modules
                     if name.split(".")[0] in heavy or name.startswith("trusswork.tsdb")))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]"


# ---------------------------------------------------------------- argument types


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1700000000", T0),
        ("1700000000.25", T0 + 250),
        ("2023-11-14T22:13:20Z", T0),
        ("2023-11-14T23:13:20+01:00", T0),
        ("2023-11-14T22:13:20", T0),  # no zone: UTC
        ("now", 5_000_000),
        ("now-1h", 5_000_000 - 3_600_000),
        ("now + 90s", 5_090_000),
    ],
)
def test_times_take_unix_seconds_rfc3339_and_now(text: str, expected: int) -> None:
    assert _tsdb.parse_time(text, now_ms=5_000_000) == expected


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.text(max_size=40), st.from_regex(r"now ?[+-] ?[0-9.e]{1,8}[a-z]{0,2}")))
def test_bad_times_and_durations_are_usage_errors(text: str) -> None:
    """Any text is a time in years 1-9999 or an ArgumentTypeError; nothing else escapes."""
    import argparse

    try:
        ms = _tsdb.parse_time(text, now_ms=T0)
    except argparse.ArgumentTypeError:
        pass
    else:
        assert _tsdb.FIRST_SECOND * 1000 <= ms <= _tsdb.LAST_SECOND * 1000
        assert _tsdb.show_time(ms)  # every accepted time can be shown
    try:
        seconds = _tsdb._duration(text)
    except argparse.ArgumentTypeError:
        pass
    else:
        assert 0 < seconds <= _tsdb.MAX_SECONDS


@pytest.mark.parametrize(
    ("name", "head", "expected"),
    [
        ("a.prom", b"cpu,host=a user=1\n", "prometheus"),  # the suffix decides
        ("a.lp", b"up 1\n", "influx"),
        ("a.txt", b"# HELP up x\n\nup 1 1700000000000\n", "prometheus"),
        ("a.txt", b'up{job="a b"} 1\n', "prometheus"),
        ("a.txt", b"\ncpu,host=a user=1,system=2 1700000000\n", "influx"),
        ("a", b"", "prometheus"),
    ],
)
def test_auto_format_goes_by_suffix_then_first_sample(
    name: str, head: bytes, expected: str
) -> None:
    assert _tsdb.detect_format(Path(name), head) == expected
