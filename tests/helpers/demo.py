"""Run one section of ``trusswork demo --quick`` through the real demo machinery."""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from trusswork.cli import _demo, main

__all__ = ["SectionRun", "number", "run_section", "writer_processes"]


class SectionRun(NamedTuple):
    """Exit code, report directory, stderr and the section's part of demo.json."""

    code: int
    out_dir: Path
    stderr: str
    section: dict[str, Any]

    @property
    def rows(self) -> dict[str, str]:
        return {figure: value for figure, value in self.section["rows"]}


def number(text: str) -> int:
    """A figure as the demo prints it ("1,234") as an int."""
    return int(text.replace(",", ""))


def run_section(name: str, out_dir: Path) -> SectionRun:
    """``trusswork demo --quick --out out_dir`` with only the section ``name``."""
    sections = tuple(section for section in _demo.SECTIONS if section.name == name)
    assert len(sections) == 1, f"the {name} section is not registered in _demo.SECTIONS"
    stdout, stderr = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_demo, "SECTIONS", sections)
        patch.setenv("COLUMNS", "200")
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main(["demo", "--quick", "--out", str(out_dir)])
    document = json.loads((out_dir / "demo.json").read_text(encoding="utf-8"))
    (section,) = document["sections"]
    return SectionRun(code, out_dir, stderr.getvalue(), section)


def writer_processes(marker: bytes) -> list[int]:
    """Live child processes of this test process whose command line holds ``marker``
    (a demo section's crash writer passes its parent's pid on its command line)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # ended while we looked
        if marker in command and str(os.getpid()).encode() in command:
            found.append(int(entry.name))
    return found
