"""The "rules" demo section: a rule file compiles, a decision is explained, the JIT agrees."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from helpers.demo import SectionRun as Run
from helpers.demo import run_section


@pytest.fixture(scope="module")
def rules_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """``trusswork demo --quick`` with only the rules section, through the demo machinery."""
    yield run_section("rules", tmp_path_factory.mktemp("rules-demo"))


def test_rules_section_succeeds(rules_demo: Run) -> None:
    assert rules_demo.code == 0, rules_demo.stderr
    assert rules_demo.section["status"] == "ok", rules_demo.section


def test_events_match_the_expected_rules_with_rendered_messages(rules_demo: Run) -> None:
    rows = rules_demo.rows
    assert rows["event status=200 path=/api/cart"] == "slow_api [warning] slow /api/cart: 312.5 ms"
    assert rows["event status=503 path=/api/pay"].startswith("eu_errors [error] 503 on /api/pay")
    assert "retry_storm [critical]" in rows["event status=503 path=/api/pay"]
    assert rows["event status=200 path=/web/home"] == "no match"
    assert (rules_demo.out_dir / "rules" / "alerts.rules").is_file()


def test_the_explanation_names_the_false_condition_and_its_input(rules_demo: Run) -> None:
    rows = rules_demo.rows
    assert rows["why slow_api did not fire for /web/home"] == 'path.startsWith("/api") was false'
    assert rows["with input"] == "path='/web/home'"


def test_every_error_of_the_broken_file_is_reported_with_its_place(rules_demo: Run) -> None:
    found = re.fullmatch(
        r"(\d+) at (.+)", rules_demo.rows["errors found in one run of `rules check`"]
    )
    assert found is not None
    assert int(found[1]) == 3
    assert found[2] == "2:18, 3:18, 3:40"


def test_the_numeric_rule_reports_kernel_numpy_and_per_row_times(rules_demo: Run) -> None:
    rows = rules_demo.rows
    assert rows["numeric rule over 200,000 rows (7 conditions)"].endswith(" matched")
    assert re.fullmatch(r"[\d.]+ ms \(\d+ M rows/s\)", rows["Numba kernel"])
    assert re.fullmatch(r"[\d.]+ ms \([\d.]+x slower\)", rows["numpy expression"])
    per_row = rows["per-row Python (timed on 20,000 rows)"]
    assert re.fullmatch(r"[\d.]+ s \([\d,]+x slower\)", per_row)
    assert rules_demo.section["plots"], "the throughput chart is missing"
