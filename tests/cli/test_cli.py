"""The ``trusswork`` command line: help, version, exit codes, error lines, ``bench``."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

import trusswork
from helpers import assert_one_error_line
from trusswork.cli import _app, _bench, main
from trusswork.core.errors import NotFound, ParseError


def run_subprocess(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trusswork", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"trusswork {trusswork.__version__}\n"


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: trusswork")
    for command in _app.COMMANDS:
        assert command.name in out
        assert command.help in out


@pytest.mark.parametrize("command", [command.name for command in _app.COMMANDS])
def test_each_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--help"]) == 0
    assert capsys.readouterr().out.startswith(f"usage: trusswork {command}")


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["frobnicate"], ["unknown command 'frobnicate'", "demo", "bench"]),
        (["dmeo"], ["did you mean 'demo'?"]),
        ([], ["no command given", "trusswork --help"]),
        (["--bogus"], ["--bogus"]),
        (["demo", "--bogus"], ["--bogus", "trusswork demo --help"]),
        (["demo", "--out"], ["--out", "expected one argument"]),
    ],
)
def test_usage_mistakes_exit_2_with_one_line(
    argv: list[str], fragments: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert_one_error_line(captured.err, *fragments)


def test_unknown_command_in_a_real_process_has_no_traceback() -> None:
    done = run_subprocess("frobnicate")
    assert done.returncode == 2
    assert done.stdout == ""
    assert_one_error_line(done.stderr, "unknown command 'frobnicate'")


def test_version_in_a_real_process() -> None:
    done = run_subprocess("--version")
    assert (done.returncode, done.stdout, done.stderr) == (0, "trusswork 0.1.0\n", "")


def test_help_imports_no_heavy_library() -> None:
    # Each of these only parses arguments: numpy, rich and matplotlib stay unloaded.
    script = textwrap.dedent(
        """
        import contextlib, io, sys
        from trusswork.cli import main
        for argv in (["--help"], ["--version"], ["demo", "--help"], ["bench", "--help"]):
            with contextlib.redirect_stdout(io.StringIO()):
                assert main(argv) == 0, argv
        heavy = {"numpy", "rich", "matplotlib", "asyncio"}
        print(sorted(name for name in sys.modules if name.split(".")[0] in heavy))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]"


# ---------------------------------------------------------------- errors inside commands


@pytest.fixture
def raising_command(monkeypatch: pytest.MonkeyPatch) -> list[BaseException]:
    """Install ``trusswork boom``, which raises whatever the test puts in the list."""
    to_raise: list[BaseException] = []
    module = types.ModuleType("trusswork_test_boom")

    def register(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--flag", action="store_true")

    def run(args: argparse.Namespace) -> int:
        raise to_raise[0]

    module.register = register  # type: ignore[attr-defined]
    module.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    boom = _app.Command("boom", "raise an exception", module.__name__)
    monkeypatch.setattr(_app, "COMMANDS", (*_app.COMMANDS, boom))
    return to_raise


def test_trusswork_error_is_one_line_exit_1(
    raising_command: list[BaseException], capsys: pytest.CaptureFixture[str]
) -> None:
    raising_command.append(NotFound("stream 'orders' does not exist"))
    assert main(["boom"]) == 1
    captured = capsys.readouterr()
    assert captured.err == "trusswork: error: stream 'orders' does not exist\n"
    assert captured.out == ""


def test_usage_error_raised_by_a_command_exits_2(
    raising_command: list[BaseException], capsys: pytest.CaptureFixture[str]
) -> None:
    raising_command.append(_app.UsageError("no benchmark suite for tsdb"))
    assert main(["boom"]) == 2
    assert capsys.readouterr().err == "trusswork: error: no benchmark suite for tsdb\n"


def test_missing_file_is_one_line_naming_the_file(
    raising_command: list[BaseException], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "absent.toml"
    try:
        missing.read_text()
    except FileNotFoundError as error:
        raising_command.append(error)
    assert main(["boom"]) == 1
    assert capsys.readouterr().err == f"trusswork: error: No such file or directory: {missing}\n"


def test_parse_error_keeps_its_caret_snippet(
    raising_command: list[BaseException], capsys: pytest.CaptureFixture[str]
) -> None:
    raising_command.append(
        ParseError("expected an expression", source="a > 1 &&\n", offset=8, filename="r.cel")
    )
    assert main(["boom"]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "trusswork: error: r.cel:1:9: expected an expression"
    assert lines[1:] == ["  1 | a > 1 &&", "    |         ^"]


def test_bug_prints_traceback_and_exits_70(
    raising_command: list[BaseException], capsys: pytest.CaptureFixture[str]
) -> None:
    raising_command.append(ZeroDivisionError("division by zero"))
    assert main(["boom"]) == 70
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert "ZeroDivisionError: division by zero" in err
    assert err.splitlines()[-1].startswith("trusswork: error: internal error (ZeroDivisionError)")


@pytest.mark.parametrize("argv", [["--debug", "boom"], ["boom", "--debug"]])
def test_debug_shows_traceback_of_user_errors(
    argv: list[str], raising_command: list[BaseException], capsys: pytest.CaptureFixture[str]
) -> None:
    raising_command.append(NotFound("stream 'orders' does not exist"))
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last):" in err
    assert err.splitlines()[-1] == "trusswork: error: stream 'orders' does not exist"


def test_debug_from_environment(
    raising_command: list[BaseException],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("TRUSSWORK_DEBUG", "1")
    raising_command.append(NotFound("stream 'orders' does not exist"))
    assert main(["boom"]) == 1
    assert "Traceback (most recent call last):" in capsys.readouterr().err


def test_keyboard_interrupt_exits_130_quietly(
    raising_command: list[BaseException], capsys: pytest.CaptureFixture[str]
) -> None:
    raising_command.append(KeyboardInterrupt())
    assert main(["boom"]) == 130
    assert capsys.readouterr() == ("", "")


# ---------------------------------------------------------------- bench


def make_checkout(root: Path, *, name: str = "trusswork") -> Path:
    (root / "benchmarks").mkdir(parents=True)
    (root / "pyproject.toml").write_text(f'[project]\nname = "{name}"\n')
    return root


def test_find_checkout_walks_up_from_the_current_directory(tmp_path: Path) -> None:
    root = make_checkout(tmp_path / "repo")
    inner = root / "src" / "deep"
    inner.mkdir(parents=True)
    elsewhere = tmp_path / "site-packages" / "trusswork"
    assert _bench.find_checkout(inner, elsewhere) == root
    # Not below a checkout: fall back to the package's location (editable install).
    assert _bench.find_checkout(tmp_path, root / "src" / "trusswork") == root


def test_find_checkout_ignores_other_projects(tmp_path: Path) -> None:
    make_checkout(tmp_path / "other", name="not-trusswork")
    assert _bench.find_checkout(tmp_path / "other", tmp_path / "pkg" / "trusswork") is None


def test_bench_without_a_checkout_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(_bench, "_package_dir", lambda: tmp_path / "site" / "trusswork")
    assert main(["bench", "--quick"]) == 1
    assert_one_error_line(
        capsys.readouterr().err, "no trusswork source checkout found", "not the wheel"
    )


def test_bench_quick_runs_track_py_with_the_same_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    root = make_checkout(tmp_path)
    (root / "benchmarks" / "bench_core.py").write_text("")
    (root / "benchmarks" / "track.py").write_text(
        "import json, os, sys\n"
        "json.dump({'argv': sys.argv[1:], 'python': sys.executable, 'cwd': os.getcwd()},\n"
        "          open('called.json', 'w'))\n"
        "sys.exit(3)\n"
    )
    monkeypatch.chdir(root / "benchmarks")
    assert main(["bench", "--quick", "core"]) == 3
    called = json.loads((root / "called.json").read_text())
    assert called == {"argv": ["--quick", "core"], "python": sys.executable, "cwd": str(root)}
    assert "benchmarks/track.py --quick core" in capfd.readouterr().err


def test_bench_full_run_saves_json_and_passes_pytest_arguments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    root = make_checkout(tmp_path)
    (root / "benchmarks" / "bench_toy.py").write_text(
        "def test_sum(benchmark):\n    assert benchmark(sum, range(10)) == 45\n\n"
        "def test_other(benchmark):\n    benchmark(len, 'abc')\n"
    )
    monkeypatch.chdir(root)
    argv = [
        "bench",
        "toy",
        "--",
        "-k",
        "sum",
        "--benchmark-max-time=0.001",
        "-p",
        "no:cacheprovider",
    ]
    assert main(argv) == 0
    report = json.loads((root / "reports" / "bench.json").read_text())
    assert [bench["name"] for bench in report["benchmarks"]] == ["test_sum"]
    assert "results in" in capfd.readouterr().err


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["bench", "nosuch"], "no benchmark suite for nosuch; suites in"),
        (["bench", "--quick", "--", "-k", "crc"], "apply to the full run only"),
    ],
)
def test_bench_argument_mistakes_exit_2(
    argv: list[str],
    fragment: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = make_checkout(tmp_path)
    (root / "benchmarks" / "bench_core.py").write_text("")
    monkeypatch.chdir(root)
    assert main(argv) == 2
    assert_one_error_line(capsys.readouterr().err, fragment)


def test_bench_quick_without_track_py_says_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(make_checkout(tmp_path))
    assert main(["bench", "--quick"]) == 1
    assert_one_error_line(capsys.readouterr().err, "track.py not found")
