"""``trusswork logs ...``: every action's output, exit codes and errors."""

from __future__ import annotations

import csv
import io
import json
import os
import queue
import re
import signal
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import assert_one_error_line
from trusswork.cli import _logs, main
from trusswork.cli._logs_demo import generate_lines, generate_records
from trusswork.logs import LogStore

#: The known data set: ten JSON lines, one a second from 09:00:00, and one very long line.
STATUSES = [200, 200, 500, 503, 404, 200, 500, 200, 200, 200]
T0_MS = 1_777_885_200_000  # 2026-05-04T09:00:00Z
LONG = "x" * 400


def known_lines() -> list[str]:
    lines = [
        json.dumps(
            {
                "time": f"2026-05-04T09:00:{index:02d}Z",
                "level": "error" if status >= 500 else "info",
                "status": status,
                "bytes": 100 * index,
                "msg": f"user {index} logged in",
            }
        )
        for index, status in enumerate(STATUSES)
    ]
    lines.append(json.dumps({"time": "2026-05-04T09:00:30Z", "msg": LONG, "status": 200}))
    return lines


@pytest.fixture(autouse=True)
def plain_output(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)  # tables are parsed: plain text, no colours


def logs_cli(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main(["logs", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding the known data set, closed again."""
    path = tmp_path_factory.mktemp("logs") / "store"
    with LogStore(path, background=False) as opened:
        assert opened.ingest(known_lines(), format="json", source="app").accepted == 11
    return path


def cells(out: str, first: str) -> list[str]:
    """The cells of the table row whose first cell is ``first``."""
    for line in out.splitlines():
        parts = [part.strip() for part in line.strip().strip("│").split("│")]
        if parts and parts[0] == first:
            return parts
    raise AssertionError(f"no row {first!r} in:\n{out}")


def stored(path: Path, query: str = "*") -> list[dict[str, object]]:
    with LogStore(path, background=False) as opened:
        rows: list[dict[str, object]] = opened.query(query).to_pylist()
    return rows


# ---------------------------------------------------------------- ingest


def test_ingest_files_of_two_formats(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    access, app = tmp_path / "access.log", tmp_path / "app.json"
    access.write_text("".join(f"{line}\n" for line in generate_lines(300)), encoding="utf-8")
    app.write_text("".join(f"{line}\n" for line in known_lines()), encoding="utf-8")
    code, out, err = logs_cli(capsys, "ingest", tmp_path / "store", access, app)
    assert (code, err) == (0, "")
    assert cells(out, str(access))[1:] == ["300", "0", "0"]
    assert cells(out, str(app))[1:] == ["11", "0", "0"]
    assert f"311 lines stored in {tmp_path / 'store'}" in out
    rows = stored(tmp_path / "store", "* | stats count by sourcetype, source")
    assert {(r["source"], r["sourcetype"], r["count"]) for r in rows} == {
        (str(access), "combined", 300),
        (str(app), "json", 11),
    }


def test_ingest_reads_stdin(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = "level=info msg=one\nlevel=error msg=two\nlevel=info msg=three"  # no final newline
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data.encode())))
    code, out, err = logs_cli(capsys, "ingest", tmp_path / "store", "-", "--format", "logfmt")
    assert (code, err) == (0, "")
    assert cells(out, "stdin")[1:3] == ["3", "0"]
    rows = stored(tmp_path / "store", "level=error")
    assert [(r["msg"], r["source"]) for r in rows] == [("two", "stdin")]


def test_ingest_lists_rejected_lines_and_keeps_the_good_ones(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    mixed = tmp_path / "mixed.log"
    mixed.write_text('{"a": 1}\nnot json\n{"a": 2}\n{broken\n', encoding="utf-8")
    code, out, err = logs_cli(
        capsys, "ingest", tmp_path / "store", mixed, "--format", "json", "--source", "mixed"
    )
    assert code == 1
    assert cells(out, "mixed")[1:3] == ["2", "2"]
    lines = err.splitlines()
    assert len(lines) == 3
    assert lines[0] == "mixed:2:1: invalid JSON: Expecting value"
    assert lines[1].startswith("mixed:4:2: invalid JSON: ")
    assert lines[2] == "trusswork: error: 2 line(s) rejected (listed above); the rest was stored"
    assert sorted(int(str(r["a"])) for r in stored(tmp_path / "store")) == [1, 2]


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["--format", "regex"], ["--format regex needs --pattern"]),
        (["--format", "json", "--pattern", "(?P<a>x)"], ["--pattern is for --format regex"]),
        (["-", "--follow"], ["stdin cannot be followed"]),
        (["-", "-"], ["stdin ('-') can be read once"]),
        (["--format", "yaml"], ["argument --format", "'yaml'"]),
    ],
)
def test_ingest_refuses_bad_options(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], fragments: list[str]
) -> None:
    code, out, err = logs_cli(capsys, "ingest", tmp_path / "store", *argv)
    assert (code, out) == (2, "")
    assert_one_error_line(err, *fragments)
    assert not (tmp_path / "store").exists()


def test_ingest_refuses_a_missing_file_before_storing_anything(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    good = tmp_path / "good.log"
    good.write_text("one\n", encoding="utf-8")
    code, out, err = logs_cli(capsys, "ingest", tmp_path / "store", good, tmp_path / "nope.log")
    assert (code, out) == (1, "")
    assert_one_error_line(err, "No such file or directory", "nope.log")
    assert not (tmp_path / "store").exists()


# ---------------------------------------------------------------- follow


class Follower:
    """``trusswork logs ingest --follow`` in a subprocess, its stderr read by a thread."""

    def __init__(self, store: Path, log: Path) -> None:
        program = (
            "import sys\nfrom trusswork.cli import main\n"
            f"sys.exit(main(['logs', 'ingest', {str(store)!r}, {str(log)!r}, '--follow', "
            "'--format', 'logfmt']))\n"
        )
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        self.process = subprocess.Popen(
            [sys.executable, "-c", program], stderr=subprocess.PIPE, text=True, env=env
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.wait_for("stop with Ctrl-C or SIGTERM")

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.put(line)

    def wait_for(self, text: str) -> None:
        while True:
            try:
                line = self.lines.get(timeout=30)
            except queue.Empty:
                raise AssertionError(f"no {text!r} in {self.seen}") from None
            self.seen.append(line)
            if text in line:
                return

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=30)
        self.reader.join(timeout=30)  # it has read to the end of the pipe
        assert self.process.stderr is not None
        self.process.stderr.close()
        assert code == 0, self.seen


def append(log: Path, numbers: range) -> None:
    with open(log, "a", encoding="utf-8") as file:
        file.writelines(f"seq={n} msg=line-{n}\n" for n in numbers)


def test_follow_resumes_after_sigterm_and_rotation_exactly_once(tmp_path: Path) -> None:
    store, log = tmp_path / "store", tmp_path / "app.log"
    append(log, range(100))
    follower = Follower(store, log)
    try:
        follower.wait_for("100 lines stored")
        append(log, range(100, 150))  # while it follows
        follower.wait_for("150 lines stored")
    finally:
        follower.stop()
    # While nobody follows: more lines, a rotation, lines in the new file.
    append(log, range(150, 200))
    log.rename(tmp_path / "app.log.1")
    append(log, range(200, 250))
    follower = Follower(store, log)
    try:
        assert any("resuming at byte" in line for line in follower.seen)
        follower.wait_for("100 lines stored")
    finally:
        follower.stop()
    rows = stored(store)
    assert sorted(int(str(row["seq"])) for row in rows) == list(range(250))
    assert {row["source"] for row in rows} == {str(log)}


# ---------------------------------------------------------------- query


def test_query_table_shows_time_and_raw_cut_to_the_width(
    capsys: pytest.CaptureFixture[str], store: Path
) -> None:
    code, out, err = logs_cli(capsys, "query", store, "*")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert re.fullmatch(r"11 events in [\d.]+ ms", lines[0])
    assert max(len(line) for line in lines) <= 160
    newest = cells(out, "2026-05-04T09:00:30Z")
    assert newest[1].startswith('{"time": "2026-05-04T09:00:30Z", "msg": "xxx')
    assert newest[1].endswith("…")
    assert cells(out, "2026-05-04T09:00:02Z")[1] == known_lines()[2]
    times = [line.split("│")[1].strip() for line in lines if "2026-05-04T" in line]
    assert times == sorted(times, reverse=True) and len(times) == 11


def test_query_table_follows_columns(
    capsys: pytest.CaptureFixture[str], store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "90")
    code, out, _ = logs_cli(capsys, "query", store, "status>=500")
    assert code == 0
    assert max(len(line) for line in out.splitlines()) == 90
    assert cells(out, "2026-05-04T09:00:06Z")[1].endswith("…")


def test_query_table_of_an_aggregate_has_every_column(
    capsys: pytest.CaptureFixture[str], store: Path
) -> None:
    code, out, _ = logs_cli(capsys, "query", store, "* | stats count, sum(bytes) by status")
    assert code == 0
    assert out.splitlines()[0].startswith("4 rows in ")
    assert cells(out, "200")[1:] == ["7", "3000"]
    assert cells(out, "500")[1:] == ["2", "800"]


def test_query_json_ndjson_and_csv_agree(capsys: pytest.CaptureFixture[str], store: Path) -> None:
    query = "status>=500 | table _time, status, bytes"
    code, out, err = logs_cli(capsys, "query", store, query, "--format", "json")
    assert (code, err) == (0, "")
    document = json.loads(out)
    assert document["columns"] == ["_time", "status", "bytes"]
    expected = [
        {"_time": T0_MS + 6000, "status": 500, "bytes": 600},
        {"_time": T0_MS + 3000, "status": 503, "bytes": 300},
        {"_time": T0_MS + 2000, "status": 500, "bytes": 200},
    ]
    assert document["rows"] == expected
    assert document["plan"]["rows_matched"] == 3
    code, out, _ = logs_cli(capsys, "query", store, query, "--format", "ndjson")
    assert code == 0
    assert [json.loads(line) for line in out.splitlines()] == expected
    code, out, _ = logs_cli(capsys, "query", store, query, "--format", "csv")
    assert code == 0
    assert list(csv.reader(io.StringIO(out))) == [
        ["_time", "status", "bytes"],
        *[[str(r["_time"]), str(r["status"]), str(r["bytes"])] for r in expected],
    ]


def test_query_limit_time_range_and_explain(
    capsys: pytest.CaptureFixture[str], store: Path
) -> None:
    code, out, err = logs_cli(
        capsys,
        "query",
        store,
        "*",
        "--earliest",
        "2026-05-04T09:00:03Z",
        "--latest",
        "2026-05-04T09:00:08Z",
        "--limit",
        "2",
        "--format",
        "ndjson",
        "--explain",
    )
    assert code == 0
    assert [json.loads(line)["bytes"] for line in out.splitlines()] == [700, 600]
    assert "rows matched: 5" in err
    assert "time range: 2026-05-04T09:00:03Z .. 2026-05-04T09:00:08Z" in err
    code, out, _ = logs_cli(capsys, "query", store, "level=error", "--limit", "1", "--explain")
    assert code == 0
    assert out.splitlines()[0].startswith("3 events, 1 shown (--limit) in ")
    assert "rows matched: 3" in out


@pytest.mark.parametrize(
    ("query", "column"),
    [
        ("status>=500 | stats count by", 29),
        ("status>= | head 3", 10),
        ('msg="open', 5),
        ('* | rex field=msg "("', 20),
    ],
)
def test_query_that_does_not_parse_shows_a_caret(
    capsys: pytest.CaptureFixture[str], store: Path, query: str, column: int
) -> None:
    code, out, err = logs_cli(capsys, "query", store, query)
    assert (code, out) == (1, "")
    lines = err.splitlines()
    assert lines[0].startswith(f"trusswork: error: <input>:1:{column}: ")
    assert lines[1].endswith(query)
    assert lines[2].index("^") == lines[1].index(query) + column - 1


@pytest.mark.parametrize(
    ("argv", "code", "fragments"),
    [
        (["*", "--earliest", "yesterday"], 2, ["argument --earliest", "'yesterday'"]),
        (["*", "--limit", "0"], 2, ["argument --limit", "1 or more"]),
        (["*", "--format", "xml"], 2, ["argument --format", "'xml'"]),
    ],
)
def test_query_refuses_bad_arguments_with_one_line(
    capsys: pytest.CaptureFixture[str],
    store: Path,
    argv: list[str],
    code: int,
    fragments: list[str],
) -> None:
    got, out, err = logs_cli(capsys, "query", store, *argv)
    assert (got, out) == (code, "")
    assert_one_error_line(err, *fragments)


def test_reading_actions_refuse_a_directory_without_a_store(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argvs: list[list[str | Path]] = [
        ["query", tmp_path, "*"],
        ["explain", tmp_path, "*"],
        ["stats", tmp_path],
    ]
    for argv in argvs:
        code, out, err = logs_cli(capsys, *argv)
        assert (code, out) == (1, "")
        assert_one_error_line(err, f"{tmp_path}: no log store there")
    assert list(tmp_path.iterdir()) == []


def test_explain_prints_the_plan(capsys: pytest.CaptureFixture[str], store: Path) -> None:
    code, out, err = logs_cli(capsys, "explain", store, "status>=500 level=error | head 1")
    assert (code, err) == (0, "")
    assert out.startswith("query: status>=500 level=error | head 1\n")
    assert "rows matched: 3" in out
    assert re.search(r"head 1\s+3 -> 1", out)
    code, out, _ = logs_cli(capsys, "explain", store, "status>=500", "--json")
    assert json.loads(out)["rows_matched"] == 3


# ---------------------------------------------------------------- stats


def test_stats_table_and_json(capsys: pytest.CaptureFixture[str], store: Path) -> None:
    code, out, err = logs_cli(capsys, "stats", store, "--json")
    assert (code, err) == (0, "")
    figures = json.loads(out)
    assert figures["lines"] == 11
    assert figures["segments"] >= 1 and figures["partitions"] == 1
    assert figures["bytes"] == sum(
        p.stat().st_size for p in (store / "hot").rglob("*") if p.is_file()
    )
    assert figures["corrupt_segments"] == []
    assert (figures["earliest_ms"], figures["latest_ms"]) == (T0_MS, T0_MS + 30_000)
    code, out, _ = logs_cli(capsys, "stats", store)
    assert code == 0
    assert cells(out, "lines")[1] == "11"
    assert cells(out, "earliest line")[1] == "2026-05-04T09:00:00Z"
    assert cells(out, "damaged segments")[1] == "0"


# ---------------------------------------------------------------- patterns


def test_patterns_of_a_file_and_of_a_store(
    capsys: pytest.CaptureFixture[str], store: Path, tmp_path: Path
) -> None:
    log = tmp_path / "app.log"
    lines = [f"user {n} logged in from 10.0.0.{n}" for n in range(6)]
    lines += [f"disk /dev/sd{c} is {n}% full" for c, n in zip("abc", (91, 95, 99), strict=True)]
    lines += ["service started"]
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, out, err = logs_cli(capsys, "patterns", log, "--json")
    assert (code, err) == (0, "")
    document = json.loads(out)
    assert (document["lines"], document["templates"]) == (10, 3)
    assert [(t["template"], t["count"]) for t in document["top"]] == [
        ("user <*> logged in from <*>", 6),
        ("disk <*> is <*> full", 3),
        ("service started", 1),
    ]
    code, out, _ = logs_cli(capsys, "patterns", log, "--top", "1")
    assert code == 0
    assert out.splitlines()[0] == "10 lines, 3 templates; the 1 commonest:"
    assert cells(out, "6")[1:] == ["60.0%", "user <*> logged in from <*>"]
    code, out, _ = logs_cli(capsys, "patterns", store, "--query", "level=info", "--json")
    assert code == 0
    assert json.loads(out)["lines"] == 7  # statuses below 500


def test_patterns_refuses_a_query_for_a_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    log = tmp_path / "app.log"
    log.write_text("one\n", encoding="utf-8")
    code, out, err = logs_cli(capsys, "patterns", log, "--query", "*")
    assert (code, out) == (2, "")
    assert_one_error_line(err, "--query is for a log store")


# ---------------------------------------------------------------- alerts check


GOOD_RULES = """
[[alert]]
name = "errors"
query = "level=error | stats count"
condition = "count > 100"
window = "5m"
every = "1m"
for = "2m"
"""


@pytest.mark.parametrize(
    ("text", "first", "caret_line"),
    [
        (
            GOOD_RULES.replace("count > 100", "count >"),
            "alert 'errors': key 'condition':1:8: ",
            "count >",
        ),
        (
            GOOD_RULES.replace("stats count", "stats count by"),
            "alert 'errors': key 'query':1:29: ",
            "level=error | stats count by",
        ),
        ("[[alert]\nname = 1\n", ":1:", "[[alert]"),
    ],
)
def test_alerts_check_shows_a_caret_for_each_kind_of_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, first: str, caret_line: str
) -> None:
    path = tmp_path / "alerts.toml"
    path.write_text(text, encoding="utf-8")
    code, out, err = logs_cli(capsys, "alerts", "check", path)
    assert (code, out) == (1, "")
    lines = err.splitlines()
    assert lines[0].startswith(f"trusswork: error: {path}") and first in lines[0]
    assert lines[1].endswith(caret_line)
    assert "^" in lines[2]


def test_alerts_check_accepts_good_rules_and_refuses_bad_keys(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "alerts.toml"
    path.write_text(GOOD_RULES, encoding="utf-8")
    code, out, err = logs_cli(capsys, "alerts", "check", path)
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == f"{path}: 1 alert rule(s), all valid"
    assert cells(out, "errors")[3:] == ["300 s", "60 s", "120 s", "warning"]
    path.write_text(GOOD_RULES + 'colour = "red"\n', encoding="utf-8")
    code, out, err = logs_cli(capsys, "alerts", "check", path)
    assert (code, out) == (1, "")
    assert_one_error_line(err, "unknown key 'colour'")
    code, out, err = logs_cli(capsys, "alerts", "check", tmp_path / "none.toml")
    assert (code, out) == (1, "")
    assert_one_error_line(err, "no alert rules file")


# ---------------------------------------------------------------- generate


def test_generate_is_deterministic_and_parses(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, first, err = logs_cli(capsys, "generate", "--lines", "400", "--seed", "3")
    assert (code, err) == (0, "")
    _, again, _ = logs_cli(capsys, "generate", "--lines", "400", "--seed", "3")
    _, other, _ = logs_cli(capsys, "generate", "--lines", "400", "--seed", "4")
    assert first == again != other
    assert len(first.splitlines()) == 400
    code, out, _ = logs_cli(capsys, "generate", "--lines", "400", "--seed", "3", "--format", "json")
    documents = [json.loads(line) for line in out.splitlines()]
    records = list(generate_records(400, seed=3))
    assert [(d["status"], d["bytes"]) for d in documents] == [(r.status, r.bytes) for r in records]
    with LogStore(tmp_path / "store", background=False) as opened:
        result = opened.ingest(first.splitlines(), format="combined")
        assert (result.accepted, result.rejected) == (400, 0)
        rows = opened.query("* | stats count by method").to_pylist()
    assert {r["method"]: r["count"] for r in rows} == dict(Counter(r.method for r in records))


# ---------------------------------------------------------------- serve


def test_serve_answers_queries_and_reports_alerts_until_sigterm(
    store: Path, tmp_path: Path
) -> None:
    rules = tmp_path / "alerts.toml"
    rules.write_text(
        GOOD_RULES.replace('"5m"', '"1000d"').replace('for = "2m"', 'for = "0s"'),
        encoding="utf-8",
    )
    program = (
        "import sys\nfrom trusswork.cli import main\n"
        f"sys.exit(main(['logs', 'serve', {str(store)!r}, '--port', '0', "
        f"'--alerts', {str(rules)!r}]))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with subprocess.Popen(
        [sys.executable, "-c", program], stderr=subprocess.PIPE, text=True, env=env
    ) as process:
        try:
            assert process.stderr is not None
            line = process.stderr.readline()
            found = re.fullmatch(r"trusswork\.logs: listening on http://127\.0\.0\.1:(\d+)\n", line)
            assert found is not None, line + process.stderr.read()
            with httpx.Client(base_url=f"http://127.0.0.1:{found[1]}", timeout=10) as client:
                answer = client.get("/api/query", params={"q": "status>=500 | stats count"})
                assert answer.status_code == 200, answer.text
                assert answer.json()["rows"] == [{"count": 3}]
                alerts = client.get("/api/alerts").json()
                assert alerts["rules"] == ["errors"]
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=20) == 0
    with LogStore(store, background=False) as opened:  # closed cleanly: openable again
        assert opened.stats()["lines"] == 11


def test_serve_refuses_a_bad_port(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = logs_cli(capsys, "serve", tmp_path / "store", "--port", "99999")
    assert (code, out) == (2, "")
    assert_one_error_line(err, "argument --port", "0 to 65535")


# ---------------------------------------------------------------- help and argument types


def test_logs_help_imports_no_heavy_library() -> None:
    script = textwrap.dedent(
        """
        import contextlib, io, sys
        from trusswork.cli import _app
        for argv in (["logs", "--help"], ["logs", "query", "--help"],
                     ["logs", "ingest", "--help"], ["logs", "alerts", "check", "--help"]):
            with contextlib.redirect_stdout(io.StringIO()):
                assert _app.main(argv) == 0, argv
        heavy = {"numpy", "rich", "matplotlib", "pyarrow"}
        print(sorted(name for name in sys.modules
                     if name.split(".")[0] in heavy or name.startswith("trusswork.logs")))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]"


@settings(max_examples=200, deadline=None)
@given(text=st.one_of(st.text(max_size=30), st.from_regex(r"[-+]?\d{1,4}[smhdw]?(@[smhdw])?")))
def test_time_bounds_are_accepted_or_usage_errors(text: str) -> None:
    """Any text is a time bound the engine takes, or an ArgumentTypeError; nothing else escapes."""
    from trusswork.logs import parse_time_bound

    try:
        accepted = _logs._time_bound(text)
    except Exception as error:
        assert type(error).__name__ == "ArgumentTypeError"
        assert repr(text) in str(error)
    else:
        assert accepted == text
        parse_time_bound(text)


def test_store_detection(tmp_path: Path) -> None:
    assert not _logs.is_store(tmp_path)
    with LogStore(tmp_path / "store", background=False):
        pass
    assert _logs.is_store(tmp_path / "store")
