"""The "logs" demo section: ingest, a search, stats, a timechart plot, an alert that fires."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from helpers.demo import SectionRun as Run
from helpers.demo import number, run_section
from trusswork.cli import _demo
from trusswork.cli._logs_demo import format_record, generate_records
from trusswork.logs import LogStore


@pytest.fixture(scope="module")
def logs_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """``trusswork demo --quick`` with only the logs section, through the demo machinery."""
    yield run_section("logs", tmp_path_factory.mktemp("logs-demo"))


def test_logs_section_is_registered_and_succeeds(logs_demo: Run) -> None:
    assert [s.module for s in _demo.SECTIONS if s.name == "logs"] == ["trusswork.cli._logs_demo"]
    assert logs_demo.code == 0, logs_demo.stderr
    assert logs_demo.section["status"] == "ok", logs_demo.section


def test_ingest_and_queries_report_the_generated_data(logs_demo: Run) -> None:
    rows = logs_demo.rows
    assert rows["generated nginx combined lines"] == "20,000 over 16.7 min (seed 7)"
    records = list(generate_records(20_000, rate=20.0))
    expected = sum(1 for r in records if r.status >= 500 and r.method == "GET")
    found = re.fullmatch(r"([\d,]+) lines in [\d.]+ ms", rows["search 'status>=500 GET'"])
    assert found is not None and number(found[1]) == expected
    explain = rows["explain 'status>=500 GET'"]
    assert re.fullmatch(
        rf"1 of 1 segment\(s\) read, {expected:,} rows matched in [\d.]+ ms", explain
    )
    (stats,) = [v for k, v in rows.items() if k.startswith("stats by status (")]
    statuses = {r.status for r in records}
    errors = sum(1 for r in records if r.status >= 500)
    assert stats == f"{len(statuses)} statuses; 5xx: {errors:,} of 20,000 lines"
    (chart,) = [v for k, v in rows.items() if k.startswith("'* | timechart span=1m")]
    assert chart.startswith("17 minutes; most 5xx: ")


def test_the_alert_fires_during_the_incident_only(logs_demo: Run) -> None:
    rows = logs_demo.rows
    key = "alert: count > 100 over 'status>=500 | stats count', 1 min window, for 1 min"
    found = re.fullmatch(
        r"ok -> pending -> firing -> resolved \(pending at minute (\d+), "
        r"firing at minute (\d+), resolved at minute (\d+)\)",
        rows[key],
    )
    assert found is not None, rows[key]
    pending, firing, resolved = map(int, found.groups())
    assert firing == pending + 1 and resolved > firing
    # The incident runs from 35% to 45% of the 1,000 s span: minutes 5.8 to 7.5.
    assert 6 <= pending <= 8 and resolved <= 10
    notified = re.fullmatch(
        r"firing, resolved \(firing at count ([\d,]+)\)", rows["alert: notifications received"]
    )
    assert notified is not None and number(notified[1]) > 100


def test_report_has_the_timechart_and_keeps_the_store(logs_demo: Run) -> None:
    title = "Requests per minute by status class (timechart)"
    assert logs_demo.section["plots"] == [title]
    page = (logs_demo.out_dir / "index.html").read_text(encoding="utf-8")
    figure = page[page.index(title) :]
    assert "<svg" in figure[:2000]
    svg = figure[: figure.index("</svg>")]
    for label in ("2xx", "5xx", "minutes since the first line"):
        assert label in svg
    plan = (logs_demo.out_dir / "logs" / "plan.txt").read_text(encoding="utf-8")
    assert plan.startswith("query: status>=500 GET\n")
    with LogStore(logs_demo.out_dir / "logs" / "store", background=False) as store:
        assert store.stats()["lines"] == 20_000


def test_generated_lines_are_deterministic_and_cover_every_format() -> None:
    first = [format_record(r) for r in generate_records(50, seed=1)]
    assert first == [format_record(r) for r in generate_records(50, seed=1)]
    assert first != [format_record(r) for r in generate_records(50, seed=2)]
    with pytest.raises(ValueError, match="'combined' or 'json'"):
        format_record(next(generate_records(1)), "xml")
