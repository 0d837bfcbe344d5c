"""``trusswork ratelimit serve``, ``check``, ``try``, ``simulate``: output, exit codes, errors."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from helpers import assert_one_error_line
from trusswork.cli import _app, main
from trusswork.ratelimit import SLO, simulate_adaptive

ROW = _app.Command(
    "ratelimit", "serve, check, try and simulate rate limits", "trusswork.cli._ratelimit"
)

#: Put in front of a subprocess's program: the command row, if _app.COMMANDS lacks it.
REGISTER = textwrap.dedent(
    """
    from trusswork.cli import _app
    if not any(c.name == "ratelimit" for c in _app.COMMANDS):
        _app.COMMANDS += (_app.Command("ratelimit", "rate limits", "trusswork.cli._ratelimit"),)
    """
)

GOOD = """\
[ratelimit]
backend = "memory"

[ratelimit.audit]
max_entries = 500

[ratelimit.policies.api]
algorithm = "token_bucket"
rate = "120/1m"
burst = 20
key = ["header:X-API-Key"]

[ratelimit.policies.login]
algorithm = "sliding_window"
limit = 5
window = "1m"
key = ["ip", "path"]
paths = ["/login"]
shadow = true
"""


@pytest.fixture(autouse=True)
def registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The ``ratelimit`` row of _app.COMMANDS, added for the test if it is not there yet."""
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)  # tables are parsed: plain text, no colours
    if not any(command.name == "ratelimit" for command in _app.COMMANDS):
        monkeypatch.setattr(_app, "COMMANDS", (*_app.COMMANDS, ROW))
    yield


def ratelimit_cli(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main(["ratelimit", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def try_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    code, out, err = ratelimit_cli(capsys, "try", *argv, "--json")
    assert (code, err) == (0, ""), err
    document: dict[str, object] = json.loads(out)
    return document


def pattern(document: dict[str, object]) -> str:
    """The decisions as a string: A for allowed, D for denied."""
    decisions = document["decisions"]
    assert isinstance(decisions, list)
    return "".join("A" if d["allowed"] else "D" for d in decisions)


# ---------------------------------------------------------------- try


def test_try_token_bucket_admits_the_burst_and_denies_the_rest(
    capsys: pytest.CaptureFixture[str],
) -> None:
    document = try_json(capsys, "--rate", "5", "--burst", "10", "--requests", "15")
    assert pattern(document) == "A" * 10 + "D" * 5
    assert (document["allowed"], document["denied"], document["first_denied"]) == (10, 5, 11)
    decisions = document["decisions"]
    assert isinstance(decisions, list)
    assert [d["remaining"] for d in decisions[:10]] == list(range(9, -1, -1))
    assert [d["reset_after"] for d in decisions[:3]] == pytest.approx([0.2, 0.4, 0.6])
    for denied in decisions[10:]:
        assert denied["retry_after"] == pytest.approx(0.2)  # one token at 5/s
        assert denied["reset_after"] == pytest.approx(2.0)
        assert denied["at"] == 0.0
    assert document["quota"] == 10
    assert document["window_seconds"] == pytest.approx(2.0)


def test_try_spaced_requests_pass_at_the_rate_after_the_burst(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # 1/s with a burst of 2, a request every 0.5 s: the burst absorbs the first
    # excess, then one in two passes.
    document = try_json(
        capsys, "--rate", "1", "--burst", "2", "--requests", "6", "--interval", "0.5"
    )
    assert pattern(document) == "AAADAD"
    decisions = document["decisions"]
    assert isinstance(decisions, list)
    assert [d["at"] for d in decisions] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert decisions[3]["retry_after"] == pytest.approx(0.5)


def test_try_fixed_window_restarts_at_the_window_boundary(
    capsys: pytest.CaptureFixture[str],
) -> None:
    document = try_json(
        capsys,
        "--algorithm",
        "fixed_window",
        "--limit",
        "3",
        "--window",
        "10",
        "--requests",
        "8",
        "--interval",
        "2",
    )
    assert pattern(document) == "AAADDAAA"
    decisions = document["decisions"]
    assert isinstance(decisions, list)
    assert [decisions[i]["retry_after"] for i in (3, 4)] == pytest.approx([4.0, 2.0])
    assert (document["limit"], document["window"]) == (3, 10.0)


def test_try_sliding_log_frees_units_one_window_after_each(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Requests at 0, 3, 6, ... against 2 per 10 s: the unit of t=0 frees at 10, of t=3 at 13.
    document = try_json(
        capsys,
        "--algorithm",
        "sliding_window",
        "--limit",
        "2",
        "--window",
        "10s",
        "--requests",
        "6",
        "--interval",
        "3",
    )
    assert pattern(document) == "AADDAA"
    decisions = document["decisions"]
    assert isinstance(decisions, list)
    assert [decisions[i]["retry_after"] for i in (2, 3)] == pytest.approx([4.0, 1.0])


def test_try_accepts_rates_and_windows_with_units(capsys: pytest.CaptureFixture[str]) -> None:
    document = try_json(capsys, "--rate", "600/1m", "--burst", "1", "--requests", "2")
    assert document["rate"] == pytest.approx(10.0)
    decisions = document["decisions"]
    assert isinstance(decisions, list)
    assert decisions[1]["retry_after"] == pytest.approx(0.1)
    counter = try_json(
        capsys, "--algorithm", "sliding_window_counter", "--limit", "5", "--window", "1m"
    )
    assert counter["window"] == 60.0
    assert pattern(counter) == "A" * 5 + "D" * 15


def test_try_a_cost_above_the_quota_can_never_pass(capsys: pytest.CaptureFixture[str]) -> None:
    document = try_json(capsys, "--rate", "1", "--burst", "3", "--cost", "4", "--requests", "2")
    assert pattern(document) == "DD"
    decisions = document["decisions"]
    assert isinstance(decisions, list)
    assert decisions[0]["retry_after"] is None  # JSON has no inf
    code, out, _ = ratelimit_cli(
        capsys, "try", "--rate", "1", "--burst", "3", "--cost", "4", "--requests", "1"
    )
    assert code == 0
    assert "never" in out


def test_try_table_shows_each_decision_and_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = ratelimit_cli(
        capsys, "try", "--rate", "5", "--burst", "10", "--requests", "12"
    )
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "token bucket: 5/s, burst 10; 12 requests of cost 1, all at t = 0"
    rows = [line.strip("│ ").split() for line in lines if re.match(r"│\s+\d+ │", line)]
    assert [row[0] for row in rows] == [str(n) for n in range(1, 13)]
    assert [row[4] for row in rows] == ["allowed"] * 10 + ["denied"] * 2
    assert lines[-1] == (
        "10 allowed, 2 denied of 12; first denial: request 11 at 0.000 s, retry after 0.200 s"
    )


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["--rate", "5"], ["--algorithm token_bucket needs --burst"]),
        (["--algorithm", "fixed_window", "--limit", "3"], ["needs --window"]),
        (
            ["--rate", "5", "--burst", "2", "--limit", "3"],
            ["does not take --limit", "it takes --rate and --burst"],
        ),
        (["--algorithm", "leaky_bucket"], ["argument --algorithm", "invalid choice"]),
        (["--rate", "fast", "--burst", "2"], ["argument --rate", "'fast' is not a rate"]),
        (["--rate", "5", "--burst", "0"], ["argument --burst", "must be 1 or more"]),
        (["--rate", "5", "--burst", "2", "--cost", "-1"], ["argument --cost", "0 or more"]),
        (["--rate", "5", "--burst", "2", "--requests", "0"], ["argument --requests"]),
        (["--rate", "5", "--burst", "2", "--interval", "-1"], ["argument --interval"]),
        (
            ["--algorithm", "fixed_window", "--limit", "2", "--window", "soon"],
            ["argument --window", "'soon'"],
        ),
        (
            ["--algorithm", "sliding_window", "--limit", str(2**21), "--window", "1"],
            ["exact=False"],
        ),
    ],
)
def test_try_refuses_bad_arguments_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], fragments: list[str]
) -> None:
    code, out, err = ratelimit_cli(capsys, "try", *argv)
    assert (code, out) == (2, "")
    assert_one_error_line(err, *fragments)


# ---------------------------------------------------------------- check


@pytest.fixture
def good(tmp_path: Path) -> Path:
    path = tmp_path / "limits.toml"
    path.write_text(GOOD, encoding="utf-8")
    return path


def test_check_prints_each_policy(capsys: pytest.CaptureFixture[str], good: Path) -> None:
    code, out, err = ratelimit_cli(capsys, "check", "--config", good)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"{good}: 2 policies"
    api = next(line for line in lines if "│ api " in line)
    cells = [cell.strip() for cell in api.strip("│").split("│")]
    assert cells == [
        "api", "token_bucket", "burst 20, 2/s", "10 s", "header:x-api-key", "1", "no",
        "memory", "all",
    ]  # fmt: skip
    login = next(line for line in lines if "│ login " in line)
    cells = [cell.strip() for cell in login.strip("│").split("│")]
    assert cells == [
        "login", "sliding_window", "5 per 60 s", "60 s", "ip | path", "1", "yes", "memory",
        "/login",
    ]  # fmt: skip
    assert lines[-1] == "audit log: 500 entries in memory"


def test_check_json_has_every_policy_field(capsys: pytest.CaptureFixture[str], good: Path) -> None:
    code, out, _ = ratelimit_cli(capsys, "check", "--config", good, "--json")
    assert code == 0
    document = json.loads(out)
    assert document["file"] == str(good)
    assert document["audit"] == {"max_entries": 500, "file": None, "max_bytes": 16 << 20,
                                 "backups": 3}  # fmt: skip
    api, login = document["policies"]
    assert api == {
        "name": "api",
        "algorithm": "token_bucket",
        "rate": 2.0,
        "burst": 20,
        "key": ["header:x-api-key"],
        "cost": 1,
        "shadow": False,
        "backend": "memory",
        "paths": [],
    }
    assert (login["name"], login["limit"], login["window"], login["shadow"]) == (
        "login",
        5,
        60.0,
        True,
    )
    assert login["paths"] == ["/login"]


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        (
            '[ratelimit.policies.api]\nalgorithm = "token_bucket"\nrate = "fast"\nburst = 2\n',
            ["[ratelimit.policies]", "policy 'api'", "field 'rate'", "'fast' is not a rate"],
        ),
        (
            '[ratelimit.policies.api]\nalgorithm = "fixed_window"\nlimit = 0\nwindow = 1\n',
            ["policy 'api'", "field 'limit'", "expected an int >= 1"],
        ),
        (
            '[ratelimit.policies.api]\nalgorithm = "token_bucket"\nrate = 1\nbrust = 2\n',
            ["policy 'api'", "unknown field 'brust'", "did you mean 'burst'"],
        ),
        ("[server]\nport = 1\n", ["no [ratelimit] table"]),
        ("[ratelimit]\n", ["no policies"]),
    ],
)
def test_check_names_the_file_policy_and_field_of_a_bad_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, fragments: list[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    code, out, err = ratelimit_cli(capsys, "check", "--config", path)
    assert (code, out) == (1, "")
    assert_one_error_line(err, str(path), *fragments)


def test_check_reports_a_missing_file_and_bad_toml(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "nope.toml"
    code, out, err = ratelimit_cli(capsys, "check", "--config", missing, "--json")
    assert (code, out) == (1, "")
    assert_one_error_line(err, str(missing), "does not exist")
    broken = tmp_path / "broken.toml"
    broken.write_text("[ratelimit\n", encoding="utf-8")
    code, out, err = ratelimit_cli(capsys, "check", "--config", broken)
    assert (code, out) == (1, "")
    assert err.startswith(f"trusswork: error: {broken}:1:")


def test_check_requires_a_config(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = ratelimit_cli(capsys, "check")
    assert code == 2
    assert_one_error_line(err, "--config")


# ---------------------------------------------------------------- simulate


def test_simulate_json_is_the_simulation_with_a_summary(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = ratelimit_cli(capsys, "simulate", "--json")
    assert (code, err) == (0, "")
    document = json.loads(out)
    expected = simulate_adaptive(
        capacity=200.0,
        offered=300.0,
        duration=300.0,
        drop_at=100.0,
        recover_at=200.0,
        drop_to=0.25,
        slo=SLO(error_rate=0.01),
    )
    assert [(r["time"], r["admitted"], r["limit"], r["capacity"], r["errors"])
            for r in document["rows"]] == [
        (r.time, r.admitted, r.limit, r.capacity, r.errors) for r in expected
    ]  # fmt: skip
    degraded = document["phases"]["degraded"]
    assert degraded["errors"] < 0.01  # the limit protects the degraded service
    assert 40 <= degraded["admitted"] <= 50
    assert 100 <= document["healthy_at"] <= 105
    assert document["limit_back_at"] is not None and document["limit_back_at"] > 200
    limit_back = next(r.time for r in expected if r.time >= 200 and r.limit >= 180)
    assert document["limit_back_at"] == limit_back


def test_simulate_table_prints_rows_and_phases(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = ratelimit_cli(capsys, "simulate", "--every", "50", "--capacity", "100")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == (
        "adaptive limit: capacity 100/s, 0.25 of it from 100 s to 200 s; 150/s offered"
    )
    times = [line.strip("│ ").split()[0] for line in lines if re.match(r"│\s+\d+ │", line)]
    assert times == ["0", "50", "100", "150", "200", "250"]
    assert any(line.startswith("degraded (105-200 s): errors ") for line in lines)
    assert re.fullmatch(
        r"under the error budget again at \d+ s; limit back to 90% of capacity at \d+ s",
        lines[-1],
    )


def test_simulate_writes_a_reproducible_svg_and_a_png(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    first, second = tmp_path / "a" / "adaptive.svg", tmp_path / "adaptive.svg"
    code, out, _ = ratelimit_cli(capsys, "simulate", "--duration", "60", "--drop-at", "20",
                                 "--recover-at", "40", "--plot", first)  # fmt: skip
    assert code == 0
    assert out.splitlines()[-1] == f"plot: {first}"
    assert ratelimit_cli(capsys, "simulate", "--duration", "60", "--drop-at", "20",
                         "--recover-at", "40", "--plot", second)[0] == 0  # fmt: skip
    svg = first.read_text(encoding="utf-8")
    for label in ("admitted", "limit", "capacity", "requests per second"):
        assert label in svg
    assert second.read_bytes() == first.read_bytes()
    png = tmp_path / "adaptive.png"
    code, out, _ = ratelimit_cli(capsys, "simulate", "--duration", "30", "--plot", png, "--json")
    assert code == 0
    assert json.loads(out)["plot"] == str(png)
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["--plot", "out.pdf"], ["--plot out.pdf", "must end in .svg or .png"]),
        (["--drop-at", "50", "--recover-at", "10"], ["--recover-at 10 is before --drop-at 50"]),
        (["--drop-to", "2"], ["argument --drop-to", "fraction"]),
        (["--error-budget", "0"], ["--error-budget must be above 0"]),
        (["--capacity", "0"], ["argument --capacity", "more than 0"]),
        (["--duration", "nan"], ["argument --duration", "finite"]),
        (["--every", "0"], ["argument --every", "1 or more"]),
    ],
)
def test_simulate_refuses_bad_arguments_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], fragments: list[str]
) -> None:
    code, out, err = ratelimit_cli(capsys, "simulate", *argv)
    assert (code, out) == (2, "")
    assert_one_error_line(err, *fragments)


# ---------------------------------------------------------------- serve


def start_serve(config: Path, *extra: str) -> subprocess.Popen[str]:
    program = REGISTER + textwrap.dedent(
        f"""
        import sys
        sys.exit(_app.main(["ratelimit", "serve", "--config", {str(config)!r}, "--port", "0",
                            *{list(extra)!r}]))
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        [sys.executable, "-c", program], stderr=subprocess.PIPE, text=True, env=env
    )


def listening_port(process: subprocess.Popen[str]) -> int:
    assert process.stderr is not None
    line = process.stderr.readline()
    found = re.fullmatch(r"trusswork\.ratelimit: listening on http://127\.0\.0\.1:(\d+)\n", line)
    assert found is not None, line + process.stderr.read()
    return int(found[1])


def test_serve_answers_decisions_until_sigterm(good: Path) -> None:
    with start_serve(good) as process:
        try:
            port = listening_port(process)
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                policies = client.get("/v1/policies").json()["policies"]
                assert [p["name"] for p in policies] == ["api", "login"]
                answers = [
                    client.post("/v1/acquire", json={"key": "k", "policy": "api", "cost": 10})
                    for _ in range(3)
                ]
                assert [a.status_code for a in answers] == [200, 200, 429]
                assert answers[0].headers["ratelimit-policy"] == '"api";q=20;w=10'
                assert answers[0].json()["remaining"] == 10
                assert int(answers[2].headers["retry-after"]) >= 1
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=20) == 0


def test_serve_refuses_a_bad_file_before_listening(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[ratelimit.policies.x]\nalgorithm = "leaky"\n', encoding="utf-8")
    code, out, err = ratelimit_cli(capsys, "serve", "--config", path, "--port", "0")
    assert (code, out) == (1, "")
    assert_one_error_line(err, str(path), "policy 'x'", "field 'algorithm'", "'leaky'")


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["--port", "70000"], ["argument --port", "0 to 65535"]),
        (["--port", "http"], ["argument --port", "expected a port number"]),
        (["--backend", "mysql://x"], ["field 'backend'", "'mysql://x'"]),
    ],
)
def test_serve_refuses_bad_options(
    capsys: pytest.CaptureFixture[str], good: Path, argv: list[str], fragments: list[str]
) -> None:
    code, out, err = ratelimit_cli(capsys, "serve", "--config", good, *argv)
    assert out == ""
    assert code == (2 if "--port" in argv else 1)
    assert_one_error_line(err, *fragments)


def test_serve_backend_puts_the_policies_on_redis(tmp_path: Path, redis_url: str) -> None:
    """``--backend`` overrides the file: two services share one limit through Redis."""
    import redis

    name = f"cli-{uuid.uuid4().hex[:12]}"  # its keys live under trusswork:rl:<name>
    path = tmp_path / "shared.toml"
    path.write_text(
        f'[ratelimit]\nbackend = "memory"\n\n[ratelimit.policies.{name}]\n'
        'algorithm = "fixed_window"\nlimit = 3\nwindow = 3600\nkey = ["global"]\n',
        encoding="utf-8",
    )
    client = redis.Redis.from_url(redis_url)
    try:
        with (
            start_serve(path, "--backend", redis_url) as one,
            start_serve(path, "--backend", redis_url) as two,
        ):
            try:
                ports = [listening_port(one), listening_port(two)]
                statuses = [
                    httpx.post(
                        f"http://127.0.0.1:{ports[i % 2]}/v1/acquire",
                        json={"key": "k", "policy": name},
                        timeout=10,
                    ).status_code
                    for i in range(5)
                ]
            finally:
                for process in (one, two):
                    process.send_signal(signal.SIGTERM)
                for process in (one, two):
                    assert process.wait(timeout=20) == 0
        assert statuses == [200, 200, 200, 429, 429]  # one limit of 3, across both services
        assert list(client.scan_iter(match=f"*{name}*"))
    finally:
        keys = list(client.scan_iter(match=f"*{name}*"))
        if keys:
            client.delete(*keys)
        client.close()


# ---------------------------------------------------------------- help


def test_ratelimit_help_imports_no_heavy_library() -> None:
    script = REGISTER + textwrap.dedent(
        """
        import contextlib, io, sys
        for argv in (["ratelimit", "--help"], ["ratelimit", "try", "--help"],
                     ["ratelimit", "simulate", "--help"]):
            with contextlib.redirect_stdout(io.StringIO()):
                assert _app.main(argv) == 0, argv
        heavy = {"numpy", "rich", "matplotlib"}
        print(sorted(name for name in sys.modules
                     if name.split(".")[0] in heavy or name.startswith("trusswork.ratelimit")))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]"
