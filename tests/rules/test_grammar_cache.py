"""The analysed grammar is cached per user, and a damaged cache file is rebuilt, not fatal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROGRAM = (
    "from trusswork.rules import compile_expression as c; print(c('x + 1', {'x': 'int'})(x=2))"
)


def _run(cache_home: Path) -> subprocess.CompletedProcess[str]:
    env = {"XDG_CACHE_HOME": str(cache_home), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, env=env, check=False
    )


def test_the_grammar_is_cached_in_the_users_cache_directory(tmp_path: Path) -> None:
    first = _run(tmp_path)
    assert (first.returncode, first.stdout.strip(), first.stderr) == (0, "3", "")
    (cached,) = (tmp_path / "trusswork").glob("cel-grammar-*.pickle")
    assert (tmp_path / "trusswork").stat().st_mode & 0o077 == 0
    assert cached.stat().st_size > 0
    again = _run(tmp_path)
    assert (again.returncode, again.stdout.strip(), again.stderr) == (0, "3", "")


def test_a_damaged_cache_file_is_rebuilt(tmp_path: Path) -> None:
    assert _run(tmp_path).returncode == 0
    (cached,) = (tmp_path / "trusswork").glob("cel-grammar-*.pickle")
    cached.write_bytes(cached.read_bytes()[:500])
    damaged = _run(tmp_path)
    assert (damaged.returncode, damaged.stdout.strip(), damaged.stderr) == (0, "3", "")
    assert cached.stat().st_size > 500


def test_an_unwritable_cache_directory_means_no_cache(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    result = _run(blocked)
    assert (result.returncode, result.stdout.strip(), result.stderr) == (0, "3", "")
