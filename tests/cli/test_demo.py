"""``trusswork demo``: the tour runs, the report holds what the table shows, failures count."""

from __future__ import annotations

import contextlib
import html
import io
import json
import re
import sys
import tempfile
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from trusswork.cli import _demo, main
from trusswork.cli._demo import DemoContext, DemoSection, Plot, SectionResult, SkipSection


class Run(NamedTuple):
    code: int
    out_dir: Path
    stdout: str
    stderr: str

    @property
    def html(self) -> str:
        return (self.out_dir / "index.html").read_text(encoding="utf-8")

    @property
    def sections(self) -> list[dict[str, Any]]:
        """The ``sections`` list of demo.json."""
        document = json.loads((self.out_dir / "demo.json").read_text(encoding="utf-8"))
        sections: list[dict[str, Any]] = document["sections"]
        return sections


def run_demo(*argv: str) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["demo", *argv])
    return code, stdout.getvalue(), stderr.getvalue()


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """One real ``trusswork demo --quick`` shared by the tests of this module."""
    out_dir = tmp_path_factory.mktemp("demo") / "not" / "yet" / "there"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COLUMNS", "200")  # keep rich from wrapping table cells
        code, stdout, stderr = run_demo("--quick", "--out", str(out_dir))
    yield Run(code, out_dir, stdout, stderr)


def test_quick_demo_succeeds_and_creates_the_out_dir(quick_demo: Run) -> None:
    assert quick_demo.code == 0, quick_demo.stderr
    assert f"report: {quick_demo.out_dir / 'index.html'}" in quick_demo.stdout
    sections = quick_demo.sections
    assert [section["name"] for section in sections] == [s.name for s in _demo.SECTIONS]
    assert {section["status"] for section in sections} == {"ok"}


def test_report_and_table_show_the_same_figures(quick_demo: Run) -> None:
    rows = [tuple(row) for section in quick_demo.sections for row in section["rows"]]
    assert len(rows) >= 10
    page = quick_demo.html
    for figure, value in rows:
        assert f"<td>{html.escape(figure)}</td>" in page
        assert f">{html.escape(value)}</td>" in page
        assert re.search(rf"{re.escape(figure)}\s*│\s*{re.escape(value)}", quick_demo.stdout)


def test_core_section_reports_checksum_speed_and_varint_sizes(quick_demo: Run) -> None:
    core = dict(next(s for s in quick_demo.sections if s["name"] == "core")["rows"])
    for size in ("1 MiB", "64 B"):
        assert re.fullmatch(r"[\d.]+ GB/s \([\d.]+x zlib\)", core[f"CRC32C {size}, trusswork"])
        assert re.fullmatch(r"[\d.]+ GB/s", core[f"CRC32C {size}, zlib.crc32 (stdlib)"])
    assert re.fullmatch(r"\d+ Mvalues/s", core["varint encode, 1M int64 deltas"])
    assert re.fullmatch(r"\d+ Mvalues/s", core["bit unpack, 1M x 13-bit"])
    # Small counters take one byte each, random 64-bit values more than eight.
    assert core["varint size, small counters"] == "1.00 B/value (8.0x vs 8 B)"
    assert core["varint size, random int64"].startswith(("9.", "10."))


def test_report_is_self_contained_with_inline_plots(quick_demo: Run) -> None:
    page = quick_demo.html
    assert page.startswith("<!doctype html>")
    assert page.count("<svg") >= 2
    assert "<figcaption>CRC32C throughput by implementation</figcaption>" in page
    for external in ("<script", "<link", 'src="http', "url(http"):
        assert external not in page


# ---------------------------------------------------------------- failures and skips


def ok_section(ctx: DemoContext) -> SectionResult:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(3, 2))
    figure.subplots().plot([1, 2, 3], [3, 1, 2])
    steps = list(ctx.track(range(3), "toy"))
    return SectionResult(
        rows=[("steps <tracked>", f"{len(steps)} of 3")],
        plots=[Plot("toy plot", figure)],
        notes=["a note & more"],
    )


def failing_section(ctx: DemoContext) -> SectionResult:
    raise RuntimeError("disk on fire\nsecond line")


def skipped_section(ctx: DemoContext) -> SectionResult:
    raise SkipSection("redis is not running")


@pytest.fixture
def toy_sections(monkeypatch: pytest.MonkeyPatch) -> None:
    sections = []
    for name, function in [
        ("failing", failing_section),
        ("skipped", skipped_section),
        ("toy", ok_section),
    ]:
        module = types.ModuleType(f"trusswork_test_demo_{name}")
        module.demo = function  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, module.__name__, module)
        sections.append(DemoSection(name, f"The {name} section", module.__name__))
    monkeypatch.setattr(_demo, "SECTIONS", tuple(sections))
    monkeypatch.setenv("COLUMNS", "200")


@pytest.mark.usefixtures("toy_sections")
def test_failed_section_is_reported_then_exit_1(tmp_path: Path) -> None:
    code, stdout, stderr = run_demo("--out", str(tmp_path))
    assert code == 1
    run = Run(code, tmp_path, stdout, stderr)
    statuses = {section["name"]: section["status"] for section in run.sections}
    # The failure did not stop the sections after it.
    assert statuses == {"failing": "failed", "skipped": "skipped", "toy": "ok"}
    assert "FAILED" in stdout and "RuntimeError: disk on fire" in stdout
    assert "redis is not running" in stdout
    assert "demo section(s) failed: failing" in stderr
    page = run.html
    assert "RuntimeError: disk on fire" in page
    assert "Traceback (most recent call last)" in page
    assert "Skipped: redis is not running" in page
    assert "<td>steps &lt;tracked&gt;</td>" in page and "3 of 3" in page
    assert "<li>a note &amp; more</li>" in page
    assert "<figcaption>toy plot</figcaption><svg" in page


@pytest.mark.usefixtures("toy_sections")
def test_without_out_the_report_goes_to_a_new_temporary_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    code, stdout, _ = run_demo()
    assert code == 1
    report = Path(stdout.rsplit("report: ", 1)[1].split()[0])
    assert report.name == "index.html"
    assert report.parent.parent == tmp_path
    assert report.parent.name.startswith("trusswork-demo-")
    assert report.is_file()


def test_out_path_that_is_a_file_is_a_one_line_error(tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.write_text("")
    code, stdout, stderr = run_demo("--out", str(taken))
    assert code == 1
    assert stdout == ""
    assert stderr == f"trusswork: error: File exists: {taken}\n"
