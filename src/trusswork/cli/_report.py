"""Presentation of ``trusswork demo`` results: terminal table, HTML page, JSON.

``index.html`` is self-contained: CSS inline, plots inline as SVG (text kept
as text, ids salted per plot so that several SVGs on one page never share
an id), no scripts, no network. ``demo.json`` holds the same figures for
machines. Neither file depends on the terminal width or colours.
"""

from __future__ import annotations

import datetime as _datetime
import html
import io
import json
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trusswork

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from rich.console import Console

    from trusswork.cli._demo import SectionOutcome

REPORT_NAME = "index.html"
JSON_NAME = "demo.json"


def render_svg(figure: Figure, *, salt: str) -> str:
    """Render a matplotlib figure as an ``<svg>`` element for inline use."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _environment(*, quick: bool, seconds: float) -> dict[str, Any]:
    now = _datetime.datetime.now(_datetime.UTC).replace(microsecond=0)
    return {
        "trusswork": trusswork.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "cpu": _cpu_model(),
        "date": now.isoformat(),
        "quick": quick,
        "seconds": round(seconds, 2),
    }


def write(
    out_dir: Path, outcomes: Sequence[SectionOutcome], *, quick: bool, seconds: float
) -> Path:
    """Write ``index.html`` and ``demo.json`` into ``out_dir``; return the HTML path."""
    environment = _environment(quick=quick, seconds=seconds)
    sections = [
        {
            "name": outcome.section.name,
            "title": outcome.section.title,
            "status": outcome.status,
            "seconds": round(outcome.seconds, 3),
            "rows": [list(row) for row in outcome.result.rows] if outcome.result else [],
            "notes": list(outcome.result.notes) if outcome.result else [],
            "plots": [title for title, _ in outcome.plots],
            "error": outcome.error,
        }
        for outcome in outcomes
    ]
    (out_dir / JSON_NAME).write_text(
        json.dumps({"environment": environment, "sections": sections}, indent=2) + "\n",
        encoding="utf-8",
    )
    path = out_dir / REPORT_NAME
    path.write_text(_html(outcomes, environment), encoding="utf-8")
    return path


_CSS = """
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --ok: #1a7f37; --bad: #cf222e;
        --skip: #9a6700; --accent: #0969da; --bg-alt: #f6f8fa; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       max-width: 980px; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.8rem; margin: 0 0 .25rem; }
h2 { font-size: 1.3rem; margin: 2.5rem 0 .75rem; padding-bottom: .3rem;
     border-bottom: 1px solid var(--line); }
.meta { color: var(--muted); margin: 0 0 1.5rem; }
.meta span + span::before { content: " · "; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; }
th, td { text-align: left; padding: .35rem .75rem; border-bottom: 1px solid var(--line); }
th { background: var(--bg-alt); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.status { font-size: .8rem; font-weight: 600; padding: .1rem .5rem; border-radius: 1rem;
          color: #fff; vertical-align: middle; }
.status.ok { background: var(--ok); } .status.failed { background: var(--bad); }
.status.skipped { background: var(--skip); }
.error { color: var(--bad); font-weight: 600; }
ul.notes { color: var(--muted); padding-left: 1.25rem; }
figure { margin: 1.25rem 0; }
figcaption { font-weight: 600; margin-bottom: .25rem; }
figure svg { max-width: 100%; height: auto; }
pre { background: var(--bg-alt); padding: .75rem; overflow-x: auto; font-size: .85rem; }
a { color: var(--accent); }
"""


def _html(outcomes: Sequence[SectionOutcome], environment: dict[str, Any]) -> str:
    e = html.escape
    mode = "quick" if environment["quick"] else "full"
    meta = [
        f"trusswork {environment['trusswork']}",
        f"Python {environment['python']}",
        environment["platform"],
        environment["cpu"],
        environment["date"],
        f"{mode} run, {environment['seconds']:.1f} s",
    ]
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>trusswork demo</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>trusswork demo</h1>",
        '<p class="meta">' + "".join(f"<span>{e(str(item))}</span>" for item in meta) + "</p>",
        "<table><thead><tr><th>Section</th><th>Status</th><th>Time</th></tr></thead><tbody>",
    ]
    for outcome in outcomes:
        parts.append(
            f'<tr><td><a href="#{e(outcome.section.name)}">{e(outcome.section.title)}</a></td>'
            f"<td>{_badge(outcome.status)}</td>"
            f'<td class="num">{outcome.seconds:.2f} s</td></tr>'
        )
    parts.append("</tbody></table>")
    for outcome in outcomes:
        parts.append(_section_html(outcome))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _badge(status: str) -> str:
    return f'<span class="status {status}">{status}</span>'


def _section_html(outcome: SectionOutcome) -> str:
    e = html.escape
    parts = [
        f'<section id="{e(outcome.section.name)}">',
        f"<h2>{e(outcome.section.title)} {_badge(outcome.status)}</h2>",
    ]
    if outcome.status == "failed":
        parts.append(f'<p class="error">{e(outcome.error)}</p>')
        parts.append(f"<details><summary>Traceback</summary><pre>{e(outcome.details)}</pre>")
        parts.append("</details>")
    elif outcome.status == "skipped":
        parts.append(f"<p>Skipped: {e(outcome.error)}</p>")
    if outcome.result is not None:
        parts.append("<table><thead><tr><th>Figure</th><th>Value</th></tr></thead><tbody>")
        for figure, value in outcome.result.rows:
            parts.append(f'<tr><td>{e(figure)}</td><td class="num">{e(value)}</td></tr>')
        parts.append("</tbody></table>")
        if outcome.result.notes:
            notes = "".join(f"<li>{e(note)}</li>" for note in outcome.result.notes)
            parts.append(f'<ul class="notes">{notes}</ul>')
    for title, svg in outcome.plots:
        parts.append(f"<figure><figcaption>{e(title)}</figcaption>{svg}</figure>")
    parts.append("</section>")
    return "\n".join(parts)


def print_table(console: Console, outcomes: Sequence[SectionOutcome], *, seconds: float) -> None:
    """Print the figures of every section as one rich table, notes below it."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"trusswork demo ({seconds:.1f} s)", title_justify="left")
    table.add_column("Section", no_wrap=True)
    table.add_column("Figure")
    table.add_column("Value", justify="right")
    for outcome in outcomes:
        label = Text(outcome.section.name)
        label.append(f"\n{outcome.seconds:.1f} s", style="dim")
        if outcome.status == "failed":
            table.add_row(
                label,
                Text("FAILED", style="bold red"),
                Text(outcome.error, style="red"),
                end_section=True,
            )
            continue
        if outcome.status == "skipped":
            table.add_row(
                label, Text("skipped", style="yellow"), Text(outcome.error), end_section=True
            )
            continue
        assert outcome.result is not None
        rows = outcome.result.rows or [("(no figures)", "")]
        for index, (figure, value) in enumerate(rows):
            table.add_row(
                label if index == 0 else "",
                Text(figure),
                Text(value),
                end_section=index == len(rows) - 1,
            )
    console.print(table)
    for outcome in outcomes:
        if outcome.result is not None:
            for note in outcome.result.notes:
                console.print(Text(f"{outcome.section.name}: {note}", style="dim"))
