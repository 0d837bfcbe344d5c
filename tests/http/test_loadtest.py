"""``trusswork http bench`` and its harness, :mod:`trusswork.http.loadtest`, run for real.

Loads are tiny (8 connections, half a second) and use the built-in load
generator so that the tests need no wrk; nothing here asserts a speed.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers.http import running as serving
from trusswork.cli import main
from trusswork.core.errors import Unavailable
from trusswork.http import loadtest
from trusswork.http._bench_app import DOCUMENT, PLAINTEXT, STATIC_SIZE, app, native_app

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def bench(*argv: str) -> tuple[int, str, str]:
    """``trusswork http bench ARGV``: exit code, stdout and stderr."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["http", "bench", *argv])
    return code, stdout.getvalue(), stderr.getvalue()


def check_latencies(row: dict[str, Any]) -> None:
    assert 0 < row["p50_ms"] <= row["p99_ms"] <= row["p999_ms"], row


@pytest.mark.timeout(120)
def test_bench_with_the_builtin_generator_writes_results_and_graphs(tmp_path: Path) -> None:
    code, out, err = bench(
        "--servers", "trusswork,trusswork-native", "--routes", "plaintext",
        "--connections", "8", "--duration", "0.5", "--rounds", "1",
        "--generator", "builtin", "--out", str(tmp_path),
    )  # fmt: skip
    assert code == 0, err
    assert "built-in load generator" in err  # said where the user sees it
    document = json.loads((tmp_path / "results.json").read_text())
    assert document["generator"] == "builtin"
    assert "built-in load generator" in document["generator_note"]
    assert document["skipped"] == {}
    rows = {row["server"]: row for row in document["summary"]}
    assert set(rows) == {"trusswork", "trusswork-native"}
    for row in rows.values():
        assert (row["route"], row["connections"]) == ("plaintext", 8)
        assert row["requests_per_s"] > 0
        assert row["errors"] == 0
        check_latencies(row)
    assert len(document["measurements"]) == 2
    for name in ("throughput.png", "latency.png"):
        assert (tmp_path / name).read_bytes().startswith(PNG_MAGIC)
        assert f"wrote {tmp_path / name}" in out
    assert "trusswork-native" in out  # the summary table


@pytest.mark.timeout(120)
def test_knob_study_compares_each_variant_with_the_default(tmp_path: Path) -> None:
    code, out, err = bench(
        "--knobs", "loop", "--routes", "plaintext", "--duration", "0.5",
        "--generator", "builtin", "--out", str(tmp_path),
    )  # fmt: skip
    assert code == 0, err
    document = json.loads((tmp_path / "knobs.json").read_text())
    assert document["kind"] == "knobs" and document["baseline"] == "default"
    assert document["settings"]["variants"]["loop=asyncio"]["args"] == ["--loop", "asyncio"]
    rows = {(r["server"], r["route"], r["connections"]): r for r in document["summary"]}
    # only the cell the asyncio variant is compared on: no 1024-connection default run
    assert set(rows) == {("default", "plaintext", 64), ("loop=asyncio", "plaintext", 64)}
    assert rows[("default", "plaintext", 64)]["ratio"] == 1.0
    asyncio_row = rows[("loop=asyncio", "plaintext", 64)]
    assert asyncio_row["requests_per_s"] > 0 and asyncio_row["errors"] == 0
    assert asyncio_row["ratio"] == pytest.approx(
        asyncio_row["requests_per_s"] / rows[("default", "plaintext", 64)]["requests_per_s"]
    )
    check_latencies(asyncio_row)
    table = (tmp_path / "knobs.md").read_text()
    assert "| variant | route | connections | req/s | p99 ms | vs default |" in table
    assert "| loop=asyncio | plaintext | 64 |" in table
    assert "built-in load generator" in table
    assert f"wrote {tmp_path / 'knobs.md'}" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--servers", "nginx"], "--servers: unknown nginx"),
        (["--routes", "plaintext,,json"], "--routes must be a comma-separated list"),
        (["--routes", "html"], "--routes: unknown html"),
        (["--connections", "8,x"], "--connections must be whole numbers"),
        (["--connections", "0"], "--connections must be at least 1"),
        (["--duration", "0"], "--duration must be positive"),
        (["--rounds", "0"], "--rounds must be at least 1"),
        (["--knobs", "nagle"], "--knobs: unknown nagle"),
        (["--knobs", "--connections", "64"], "drop --connections"),
        (["--knobs", "backlog", "--servers", "uvicorn"], "drop --servers"),
    ],
)
def test_bad_arguments_are_usage_errors_naming_the_option(
    argv: list[str], message: str, tmp_path: Path
) -> None:
    code, out, err = bench(*argv, "--out", str(tmp_path / "out"))
    assert (code, out) == (2, "")
    assert err.startswith("trusswork: error: ") and message in err
    assert not (tmp_path / "out").exists()  # refused before anything ran


def test_asking_for_wrk_without_wrk_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert loadtest.pick_generator("auto") == "builtin"
    code, _, err = bench("--generator", "wrk", "--out", str(tmp_path / "out"))
    assert code == 1
    assert "wrk is not on PATH" in err
    with pytest.raises(Unavailable, match="wrk is not on PATH"):
        loadtest.pick_generator("wrk")


def test_a_server_that_is_not_installed_is_skipped_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)
    runnable, skipped = loadtest.available_servers(["granian", "trusswork"])
    assert runnable == ["trusswork"]
    assert skipped == {"granian": "granian is not installed; install the bench extra"}


def test_summary_ratio_is_the_median_of_per_round_ratios() -> None:
    def m(round_: int, server: str, rate: float) -> loadtest.Measurement:
        return loadtest.Measurement(round_, server, "plaintext", 64, rate, 1.0,
                                    1.0, 2.0, 3.0, 4.0, 0, 0)  # fmt: skip

    # The machine got twice as fast in round 1: per-round ratios stay 2, 2, 3.
    results = [
        m(0, "uvicorn", 100), m(0, "ours", 200),
        m(1, "uvicorn", 200), m(1, "ours", 400),
        m(2, "uvicorn", 100), m(2, "ours", 300),
    ]  # fmt: skip
    rows = {row["server"]: row for row in loadtest.summarize(results, "uvicorn")}
    assert rows["ours"]["ratio"] == 2.0
    assert rows["ours"]["requests_per_s"] == 300
    assert rows["uvicorn"]["ratio"] == 1.0


@pytest.mark.timeout(60)
def test_builtin_generator_reads_whole_1_mib_responses() -> None:
    port = loadtest.free_port()
    command = loadtest.server_command("trusswork", port)
    assert isinstance(command, list)
    with loadtest.running("trusswork", command, port):
        raw = loadtest.run_builtin(port, "static", 2, 0.3)
    assert raw["requests"] > 0
    assert raw["errors"] == 0 and raw["non2xx"] == 0
    per_response = raw["bytes"] / raw["requests"]
    assert STATIC_SIZE < per_response < STATIC_SIZE + 1024  # body plus one head


@pytest.mark.parametrize("application", [app, native_app], ids=["asgi", "native"])
def test_bench_apps_answer_the_three_routes(application: Any) -> None:
    with (
        serving(application) as server,
        httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as client,
    ):
        plain = client.get("/plaintext")
        assert (plain.status_code, plain.content) == (200, PLAINTEXT)
        assert plain.headers["content-type"].startswith("text/plain")
        assert client.get("/json").json() == DOCUMENT
        assert len(json.dumps(DOCUMENT)) >= 1000
        static = client.get("/static")
        assert static.status_code == 200 and len(static.content) == STATIC_SIZE
        assert client.get("/nothing").status_code == 404
