"""``trusswork rules check``, ``eval`` and ``show-python``: reports, exit codes, errors."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers import assert_one_error_line
from trusswork.cli import main

CHECKOUT = """\
schema {
  status: int
  latency_ms: double
  path: string
}
const SLOW_MS = 250.0
let is_error = status >= 500

rule slow_api {
  when: latency_ms > SLOW_MS && path.startsWith("/api") && !is_error
  severity: warning
  tags: ["latency", "api"]
  message: "slow request to {path}: {latency_ms} ms"
  action: notify
}

rule server_error {
  when: is_error
  severity: error
  message: "{status} on {path}"
}
"""

# Two type errors (lines 7 and 11) and an always-true warning (line 7).
TYPE_ERRORS = """\
schema {
  status: int
  path: string
}

rule compares_a_string {
  when: status > "x" || true
}

rule adds_a_number {
  when: path + 1 == 2
}
"""

WARNING_ONLY = """\
schema { status: int }
rule always {
  when: status > 1 || true
}
"""

SYNTAX_ERROR = """\
schema { status: int }
rule broken {
  when: status > && 1
}
"""

SLOW = {"status": 200, "latency_ms": 312.5, "path": "/api/cart"}
FAILING = {"status": 503, "latency_ms": 10.0, "path": "/web"}
QUIET = {"status": 200, "latency_ms": 10.0, "path": "/web"}
QUIET_LINE = json.dumps(QUIET) + "\n"


def rules_cli(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main(["rules", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def events_file(path: Path, *events: dict[str, object]) -> Path:
    return write(path, "".join(json.dumps(event) + "\n" for event in events))


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    return write(tmp_path / "checkout.rules", CHECKOUT)


# ---------------------------------------------------------------- check


def test_check_on_a_clean_file_exits_0_with_a_zero_summary(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = rules_cli(capsys, "check", checkout)
    assert (code, err) == (0, "")
    assert out == "0 errors, 0 warnings in 1 file\n"


def test_check_lists_every_error_and_warning_with_place_and_caret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "bad.rules", TYPE_ERRORS)
    code, out, err = rules_cli(capsys, "check", path)
    assert (code, err) == (1, "")
    lines = out.splitlines()
    assert lines[0] == (
        f"{path}:7:9: error: no matching overload for '_>_' applied to (int, string)"
    )
    assert lines[1:3] == ['  7 |   when: status > "x" || true', "    |         ^"]
    assert lines[3] == f"{path}:7:25: warning: condition is always true"
    assert lines[5] == "    |                         ^"
    assert lines[6] == (
        f"{path}:11:9: error: no matching overload for '_+_' applied to (string, int)"
    )
    assert lines[7:9] == ["  11 |   when: path + 1 == 2", "     |         ^"]
    assert lines[-1] == "2 errors, 1 warning in 1 file"


def test_warnings_fail_the_check_only_with_strict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "warn.rules", WARNING_ONLY)
    code, out, _ = rules_cli(capsys, "check", path)
    assert code == 0
    assert out.splitlines()[0] == f"{path}:3:23: warning: condition is always true"
    assert out.splitlines()[-1] == "0 errors, 1 warning in 1 file"
    code, out, _ = rules_cli(capsys, "check", "--strict", path)
    assert code == 1
    assert out.splitlines()[-1] == "0 errors, 1 warning in 1 file (--strict: warnings fail)"


def test_check_json_holds_the_diagnostics_and_counts(
    tmp_path: Path, checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write(tmp_path / "bad.rules", TYPE_ERRORS)
    code, out, _ = rules_cli(capsys, "check", "--json", bad, checkout)
    assert code == 1
    document = json.loads(out)
    assert (document["ok"], document["errors"], document["warnings"]) == (False, 2, 1)
    assert document["files"] == [
        {"file": str(bad), "rules": None, "errors": 2, "warnings": 1},
        {"file": str(checkout), "rules": 2, "errors": 0, "warnings": 0},
    ]
    places = [
        (item["severity"], item["code"], item["file"], item["line"], item["column"])
        for item in document["diagnostics"]
    ]
    assert places == [
        ("error", "type-error", str(bad), 7, 9),
        ("warning", "always-true", str(bad), 7, 25),
        ("error", "type-error", str(bad), 11, 9),
    ]


def test_check_json_on_warnings_is_ok_unless_strict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "warn.rules", WARNING_ONLY)
    code, out, _ = rules_cli(capsys, "check", "--json", path)
    assert (code, json.loads(out)["ok"]) == (0, True)
    code, out, _ = rules_cli(capsys, "check", "--json", "--strict", path)
    assert (code, json.loads(out)["ok"]) == (1, False)


def test_a_syntax_error_is_reported_with_place_and_caret(
    tmp_path: Path, checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "broken.rules", SYNTAX_ERROR)
    code, out, err = rules_cli(capsys, "check", path, checkout)
    assert (code, err) == (1, "")
    assert out.splitlines() == [
        f"{path}:3:18: error: unexpected '&&': expected an expression",
        "  3 |   when: status > && 1",
        "    |                  ^",
        "1 error, 0 warnings in 2 files",
    ]
    code, out, _ = rules_cli(capsys, "check", "--json", path)
    assert code == 1
    (found,) = json.loads(out)["diagnostics"]
    assert (found["severity"], found["line"], found["column"]) == ("error", 3, 18)


def test_schema_file_declares_the_inputs_a_rule_file_leaves_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "bare.rules", "rule big {\n  when: size > 10\n}\n")
    schema = write(tmp_path / "schema.json", json.dumps({"size": "string"}))
    code, out, _ = rules_cli(capsys, "check", "--schema", schema, path)
    assert code == 1
    assert out.splitlines()[0].startswith(f"{path}:2:9: error: no matching overload")
    write(schema, json.dumps({"size": "int"}))
    assert rules_cli(capsys, "check", "--schema", schema, path)[0] == 0


# ---------------------------------------------------------------- eval


def test_eval_prints_the_matching_rules_with_message_and_action(
    tmp_path: Path, checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    event = write(tmp_path / "event.json", json.dumps(SLOW))
    code, out, err = rules_cli(capsys, "eval", checkout, "--input", event)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "slow_api [warning] slow request to /api/cart: 312.5 ms (action: notify)",
        "1 match in 1 event (2 rules)",
    ]


def test_eval_explain_says_why_each_rule_matched_or_not(
    tmp_path: Path, checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    event = write(tmp_path / "event.json", json.dumps(SLOW))
    code, out, _ = rules_cli(capsys, "eval", checkout, "--input", event, "--explain")
    assert code == 0
    lines = out.splitlines()
    assert "rule slow_api: matched" in lines
    assert "    latency_ms > SLOW_MS: true   (latency_ms=312.5)" in lines
    assert '    path.startsWith("/api"): true   (path="/api/cart")' in lines
    assert "      is_error = status >= 500: false   (status=200)" in lines
    assert "rule server_error: did not match" in lines


def test_eval_json_holds_matches_and_explanations(
    tmp_path: Path, checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    event = write(tmp_path / "event.json", json.dumps(FAILING))
    code, out, _ = rules_cli(capsys, "eval", checkout, "--input", event, "--json", "--explain")
    assert code == 0
    (line,) = out.splitlines()
    document = json.loads(line)
    assert document["line"] == 1
    assert document["matches"] == [
        {
            "rule": "server_error",
            "severity": "error",
            "tags": [],
            "message": "503 on /web",
            "action": None,
        }
    ]
    verdicts = [(item["rule"], item["matched"]) for item in document["explanations"]]
    assert verdicts == [("slow_api", False), ("server_error", True)]


def test_eval_reads_json_lines_and_names_the_line_of_each_match(
    tmp_path: Path, checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = events_file(tmp_path / "events.jsonl", SLOW, QUIET, FAILING)
    code, out, _ = rules_cli(capsys, "eval", checkout, "--input", events)
    assert code == 0
    assert out.splitlines() == [
        "line 1: slow_api [warning] slow request to /api/cart: 312.5 ms (action: notify)",
        "line 3: server_error [error] 503 on /web",
        "2 matches in 3 events (2 rules)",
    ]


def test_eval_json_of_json_lines_is_one_object_per_event(
    tmp_path: Path, checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = events_file(tmp_path / "events.jsonl", QUIET, FAILING)
    code, out, _ = rules_cli(capsys, "eval", checkout, "--input", events, "--json")
    assert code == 0
    documents = [json.loads(line) for line in out.splitlines()]
    assert [(item["line"], len(item["matches"])) for item in documents] == [(1, 0), (2, 1)]


def test_eval_reads_events_from_stdin(
    checkout: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = "".join(json.dumps(event) + "\n" for event in (FAILING, FAILING))
    monkeypatch.setattr(sys, "stdin", io.StringIO(lines))
    code, out, _ = rules_cli(capsys, "eval", checkout, "--input", "-", "--rule", "server_error")
    assert code == 0
    assert out.splitlines()[-1] == "2 matches in 2 events (1 rule)"


def test_whole_numbers_written_as_doubles_work_for_int_inputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path / "even.rules",
        "schema {\n  count: int\n  ratio: double\n}\n"
        "rule even { when: count % 2 == 0 && ratio / 2.0 > 1.0 }\n",
    )
    event = write(tmp_path / "event.json", '{"count": 4.0, "ratio": 3}')
    code, out, _ = rules_cli(capsys, "eval", path, "--input", event)
    assert code == 0
    assert out.splitlines()[0] == "even [warning]"


def test_json_values_become_the_types_the_schema_declares(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path / "typed.rules",
        "schema {\n  at: timestamp\n  took: duration\n  retries: uint\n"
        "  sizes: list(int)\n  weights: map(int, double)\n}\n"
        "rule typed {\n"
        '  when: at > timestamp("2024-01-01T00:00:00Z") && took > duration("1s") '
        "&& retries > 2u && sizes[0] % 2 == 0 && weights[7] / 2.0 > 1.0\n"
        '  message: "{at} {took} {retries}"\n'
        "}\n",
    )
    event = {
        "at": "2024-05-01T10:00:00Z",
        "took": "1.5s",
        "retries": 3.0,
        "sizes": [4.0, 1],
        "weights": {"7": 3},
    }
    events = events_file(tmp_path / "events.jsonl", event, {**event, "retries": -1})
    code, out, err = rules_cli(capsys, "eval", path, "--input", events)
    assert code == 1
    assert out == "line 1: typed [warning] 2024-05-01T10:00:00Z 1.5s 3\n"
    assert_one_error_line(err, f"{events} line 2", "'retries' is declared uint", "out of range")


def test_a_rule_that_fails_at_run_time_is_an_error_naming_rule_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "ratio.rules", "schema { n: int }\nrule ratio { when: 10 / n > 1 }\n")
    events = events_file(tmp_path / "events.jsonl", {"n": 2}, {"n": 0})
    code, out, err = rules_cli(capsys, "eval", path, "--input", events)
    assert code == 1
    assert out == "line 1: ratio [warning]\n"
    assert_one_error_line(err, "rule 'ratio'", f"{events} line 2", "division by zero")


def test_eval_refuses_a_rule_file_with_errors_listing_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "bad.rules", TYPE_ERRORS)
    event = write(tmp_path / "event.json", "{}")
    code, out, err = rules_cli(capsys, "eval", path, "--input", event)
    assert (code, out) == (1, "")
    assert err.splitlines()[0] == "trusswork: error: 2 errors:"
    assert f"{path}:7:9: error" in err
    assert f"{path}:11:9: error" in err


# ---------------------------------------------------------------- show-python


def test_show_python_prints_each_rules_generated_function(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = rules_cli(capsys, "show-python", checkout)
    assert code == 0
    assert out.startswith("# rule slow_api\n")
    assert "\n# rule server_error\n" in out
    assert out.count("def _evaluate(") == 2
    assert "startswith('/api')" in out
    code, out, _ = rules_cli(capsys, "show-python", checkout, "--rule", "server_error")
    assert code == 0
    assert out.startswith("# rule server_error\n")
    assert "slow_api" not in out


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("name", "text", "fragments"),
    [
        ("event.json", "{not json", ["event.json: not JSON", "line 1, column 2"]),
        ("event.json", "[1, 2]", ["event.json: an event is a JSON object, not an array"]),
        ("event.json", "", ["event.json: no events"]),
        ("events.jsonl", f'{QUIET_LINE}"text"\n', ["events.jsonl line 2", "not a string"]),
        ("events.jsonl", f'{QUIET_LINE}{{"status":\n', ["events.jsonl line 2: not JSON"]),
        ("event.json", '{"status": 1.5}', ["event.json", "'status' is declared int", "1.5"]),
    ],
)
def test_bad_events_are_a_one_line_error_naming_the_file(
    name: str,
    text: str,
    fragments: list[str],
    tmp_path: Path,
    checkout: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / name, text)
    code, _, err = rules_cli(capsys, "eval", checkout, "--input", name)
    assert code == 1
    assert_one_error_line(err, *fragments)


@pytest.mark.parametrize("action", ["check", "eval", "show-python"])
def test_a_missing_rule_file_is_a_one_line_error(
    action: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere.rules"
    extra = ["--input", "-"] if action == "eval" else []
    code, out, err = rules_cli(capsys, action, missing, *extra)
    assert (code, out) == (1, "")
    assert_one_error_line(err, str(missing), "No such file")


def test_a_missing_event_file_is_a_one_line_error(
    tmp_path: Path, checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "event.json"
    code, _, err = rules_cli(capsys, "eval", checkout, "--input", missing)
    assert code == 1
    assert_one_error_line(err, str(missing), "No such file")


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("[]", ["schema.json", "a JSON object of names to CEL types, not an array"]),
        ('{"size": "integer"}', ["schema.json", "'size'", "unknown type 'integer'"]),
    ],
)
def test_a_bad_schema_file_is_a_one_line_error(
    text: str,
    fragments: list[str],
    tmp_path: Path,
    checkout: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    schema = write(tmp_path / "schema.json", text)
    code, _, err = rules_cli(capsys, "check", "--schema", schema, checkout)
    assert code == 1
    assert_one_error_line(err, *fragments)


def test_an_unknown_rule_name_is_a_one_line_error_listing_the_rules(
    checkout: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = rules_cli(capsys, "show-python", checkout, "--rule", "fast_api")
    assert code == 1
    assert_one_error_line(err, "no rule named 'fast_api'", "server_error", "slow_api")


def test_rules_help_imports_no_heavy_library() -> None:
    script = textwrap.dedent(
        """
        import contextlib, io, sys
        from trusswork.cli import main
        for argv in (["rules", "--help"], ["rules", "eval", "--help"]):
            with contextlib.redirect_stdout(io.StringIO()):
                assert main(argv) == 0, argv
        heavy = {"numpy", "rich", "matplotlib"}
        print(sorted(name for name in sys.modules if name.split(".")[0] in heavy))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]"
