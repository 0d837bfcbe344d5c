"""The "ratelimit" demo section: a burst, the RateLimit headers, levels, an adaptive limit."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from helpers.demo import SectionRun as Run
from helpers.demo import run_section
from trusswork.cli import _demo

ROW = _demo.DemoSection(
    "ratelimit",
    "Rate limits: a burst, headers, hierarchy, adaptive limits",
    "trusswork.cli._ratelimit_demo",
)


@pytest.fixture(scope="module")
def ratelimit_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """``trusswork demo --quick`` with only the ratelimit section, through the demo machinery.

    The section's row is added to ``_demo.SECTIONS`` for the run if it is not there yet.
    """
    with pytest.MonkeyPatch.context() as patch:
        if not any(section.name == "ratelimit" for section in _demo.SECTIONS):
            patch.setattr(_demo, "SECTIONS", (*_demo.SECTIONS, ROW))
        yield run_section("ratelimit", tmp_path_factory.mktemp("ratelimit-demo"))


def test_ratelimit_section_succeeds(ratelimit_demo: Run) -> None:
    assert ratelimit_demo.code == 0, ratelimit_demo.stderr
    assert ratelimit_demo.section["status"] == "ok", ratelimit_demo.section


def test_the_burst_is_admitted_up_to_the_bucket_and_refilled_at_the_rate(
    ratelimit_demo: Run,
) -> None:
    rows = ratelimit_demo.rows
    assert rows["TokenBucket(rate=5, burst=10): 15 requests at t=0"] == "10 allowed, 5 denied"
    assert rows["remaining after each allowed one"] == "9, 8, 7, 6, 5, 4, 3, 2, 1, 0"
    assert rows["each denial"] == "retry_after 0.200 s, reset_after 2.000 s"
    assert rows["15 more at t=1 s"] == "5 allowed (5 tokens refilled)"


def test_the_headers_of_allowed_and_denied_responses(ratelimit_demo: Run) -> None:
    rows = ratelimit_demo.rows
    assert rows["policy 'api' (3/min per X-API-Key): RateLimit-Policy"] == '"api";q=3;w=60'
    assert rows["requests 1-3: 200 with"] == (
        'RateLimit: "api";r=2;t=20; RateLimit: "api";r=1;t=40; RateLimit: "api";r=0;t=60'
    )
    assert rows["request 4"] == "429, Retry-After: 20, application/problem+json"
    assert "'api'" in rows["its problem detail"]
    assert rows["another key (bob)"] == '200, RateLimit: "api";r=2;t=20'


def test_a_denied_request_is_charged_to_no_level(ratelimit_demo: Run) -> None:
    rows = ratelimit_demo.rows
    assert rows["alice, 5 requests"] == "3 allowed, 2 denied by 'user'"
    assert rows["global quota left after alice"].startswith("2 of 5")
    assert rows["carol, 1 request"] == "denied by 'global'; her own quota still 3 of 3"


def test_the_adaptive_limit_protects_the_slo_and_recovers(ratelimit_demo: Run) -> None:
    rows = ratelimit_demo.rows
    healthy = re.fullmatch(r"(\d+) s \((\d+) s after\)", rows["errors under the budget again at"])
    assert healthy is not None and int(healthy[2]) <= 5
    errors = re.fullmatch(
        r"([\d.]+)% of admitted \(budget 1%\)", rows["errors during the drop (from 105 s)"]
    )
    assert errors is not None and float(errors[1]) < 1.0
    back = re.fullmatch(r"(\d+) s \((\d+) s after\)", rows["limit back to 90% of capacity at"])
    assert back is not None and int(back[1]) > 200
    late = re.fullmatch(r"([\d.]+)/s", rows["admitted over the last 30 s"])
    assert late is not None and float(late[1]) >= 170


def test_batched_decisions_are_reported_not_asserted(ratelimit_demo: Run) -> None:
    rows = ratelimit_demo.rows
    for figure in (
        "acquire_many, 1,000,000 new int64 keys (inserts)",
        "acquire_many, the same keys again (best of 1)",
    ):
        assert re.fullmatch(r"[\d.]+ M decisions/s", rows[figure])


def test_report_has_the_adaptive_plot(ratelimit_demo: Run) -> None:
    title = "Adaptive limit: admitted rate, limit and capacity against time"
    assert ratelimit_demo.section["plots"] == [title]
    page = (ratelimit_demo.out_dir / "index.html").read_text(encoding="utf-8")
    figure = page[page.index(title) :]
    assert "<svg" in figure[:2000]
    svg = figure[: figure.index("</svg>")]
    for label in ("admitted", "limit", "capacity", "seconds (simulated)"):
        assert label in svg
