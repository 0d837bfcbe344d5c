"""The documentation is tested: its examples run, its commands and links exist.

Every fenced block tagged ``python`` in ``docs/**/*.md`` and ``README.md``
runs as its own test (id ``file:line`` of the opening fence), in a fresh
namespace and a temporary working directory, so an example that stops
matching the code fails the suite. Blocks tagged ``python-skip`` (examples
that need a server, say), ``console`` or anything else are not executed.
Tracebacks point at the real line of the Markdown file.

The pages are collected when the tests are collected, so a page added later
is picked up without touching this file.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUN_LANGUAGES = frozenset({"python", "py", "python3"})

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\s`]*)")
SHELL_LANGUAGES = frozenset({"console", "shell", "sh", "bash"})
INLINE_LINK = re.compile(r"(?<!!)\[[^\]]*\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
INLINE_MAKE = re.compile(r"`make\s+(?P<target>[a-z][a-z0-9_-]*)")
SHELL_MAKE = re.compile(r"^(?:\$\s*)?make\s+(?P<target>[a-z][a-z0-9_-]*)")
MAKE_RULE = re.compile(r"^(?P<target>[a-z][a-z0-9_-]*)\s*:(?!=)", re.MULTILINE)


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is and what it says."""

    path: Path
    line: int  # 1-based line of the opening fence
    end: int  # 1-based line of the closing fence (the last line if there is none)
    language: str
    code: str
    closed: bool

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT).as_posix()}:{self.line}"


def doc_files() -> list[Path]:
    files = sorted((ROOT / "docs").glob("**/*.md"))
    readme = ROOT / "README.md"
    if readme.exists():
        files.append(readme)
    return files


def fenced_blocks(path: Path) -> list[Block]:
    """Every fenced block (``` or ~~~, possibly indented) in a Markdown file."""
    blocks = []
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        fence, start = opening["fence"], index
        body: list[str] = []
        index += 1
        while index < len(lines):
            stripped = lines[index].strip()
            if stripped.startswith(fence) and not stripped.strip(fence[0]):
                break
            body.append(lines[index])
            index += 1
        # As in CommonMark, a fence that is never closed runs to the end of the file.
        closed = index < len(lines)
        code = textwrap.dedent("\n".join(body)) + "\n"
        language = opening["info"].lower()
        blocks.append(Block(path, start + 1, min(index + 1, len(lines)), language, code, closed))
        index += 1
    return blocks


def all_blocks() -> list[Block]:
    return [block for path in doc_files() for block in fenced_blocks(path)]


def prose(path: Path) -> str:
    """The page with every fenced block blanked out, line numbers kept."""
    lines = path.read_text(encoding="utf-8").splitlines()
    for block in fenced_blocks(path):
        lines[block.line - 1 : block.end] = [""] * (block.end - block.line + 1)
    return "\n".join(lines)


PYTHON_BLOCKS = [block for block in all_blocks() if block.language in RUN_LANGUAGES]


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=[block.id for block in PYTHON_BLOCKS])
def test_python_example_runs(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    # Padding with blank lines makes tracebacks name the Markdown file's own line numbers.
    source = "\n" * block.line + block.code
    namespace = {"__name__": "__main__", "__file__": str(block.path)}
    exec(compile(source, str(block.path), "exec"), namespace)


def makefile_targets() -> set[str]:
    return {match["target"] for match in MAKE_RULE.finditer((ROOT / "Makefile").read_text())}


def test_code_fences_are_closed() -> None:
    unclosed = [block.id for block in all_blocks() if not block.closed]
    assert not unclosed, f"code fences opened here are never closed: {unclosed}"


def test_readme_quick_start_is_exactly_make_demo_then_make_test() -> None:
    readme = ROOT / "README.md"
    lines = readme.read_text(encoding="utf-8").splitlines()
    assert "## Quick start" in lines, "README.md has no '## Quick start' section"
    heading = lines.index("## Quick start") + 1
    block = next(block for block in fenced_blocks(readme) if block.line > heading)
    assert block.language in SHELL_LANGUAGES
    commands = [line.removeprefix("$").strip() for line in block.code.splitlines()]
    assert [command for command in commands if command] == ["make demo", "make test"]
    assert {"demo", "test"} <= makefile_targets()


def test_make_targets_named_in_docs_exist() -> None:
    named = []
    for path in doc_files():
        named += [(path, match["target"]) for match in INLINE_MAKE.finditer(prose(path))]
        for block in fenced_blocks(path):
            if block.language in SHELL_LANGUAGES:
                matches = (SHELL_MAKE.match(line.strip()) for line in block.code.splitlines())
                named += [(path, match["target"]) for match in matches if match]
    assert len(named) >= 2, "found fewer `make` commands than the README alone has"
    targets = makefile_targets()
    missing = [
        f"{path.relative_to(ROOT)}: make {name}" for path, name in named if name not in targets
    ]
    assert not missing, f"docs name make targets the Makefile does not have: {missing}"


def test_relative_links_point_at_existing_files() -> None:
    broken = []
    for path in doc_files():
        for match in INLINE_LINK.finditer(prose(path)):
            target = match["target"].split("#", 1)[0]
            if not target or re.match(r"^[a-z][a-z0-9+.-]*:", target):
                continue  # an anchor on the same page, or an absolute URL (https:, mailto:)
            if not (path.parent / target).exists():
                broken.append(f"{path.relative_to(ROOT)}: {match['target']}")
    assert not broken, f"links to files that do not exist: {broken}"
