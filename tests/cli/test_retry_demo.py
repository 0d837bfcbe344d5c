"""The "retry" demo section: a flaky call recovers, a dead one gives up, jitter wins."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from helpers.demo import SectionRun as Run
from helpers.demo import number, run_section
from trusswork.cli import _retry_demo
from trusswork.retry.simulate import StudyRow


@pytest.fixture(scope="module")
def retry_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """``trusswork demo --quick`` with only the retry section, through the demo machinery."""
    yield run_section("retry", tmp_path_factory.mktemp("retry-demo"))


def test_retry_section_succeeds_within_seconds(retry_demo: Run) -> None:
    assert retry_demo.code == 0, retry_demo.stderr
    assert retry_demo.section["status"] == "ok", retry_demo.section
    assert retry_demo.section["seconds"] < 5


def test_flaky_call_recovers_after_two_full_jitter_waits(retry_demo: Run) -> None:
    rows = retry_demo.rows
    assert rows["flaky call (fails 2x), @retry(attempts=5)"] == "succeeded on attempt 3 of 5"
    waits = re.fullmatch(
        r"([\d.]+) s, ([\d.]+) s", rows["waits taken (full-jitter exponential from 0.1 s)"]
    )
    assert waits is not None
    first, second = float(waits[1]), float(waits[2])
    assert 0 <= first <= 0.1 and 0 <= second <= 0.2
    spent = float(rows["time spent waiting (FakeClock: none of it real)"].removesuffix(" s"))
    assert spent == pytest.approx(first + second, abs=0.002)


def test_dead_call_gives_up_with_its_history(retry_demo: Run) -> None:
    rows = retry_demo.rows
    given_up = rows["always-failing call, @retry(attempts=5)"]
    assert given_up == "RetryError after 5 attempts (reason: attempts)"
    history = rows["its attempt history"]
    assert re.fullmatch(
        r"#1 at 0\.000 s, #2 at [\d.]+ s, #3 at [\d.]+ s, #4 at [\d.]+ s, #5 at [\d.]+ s: "
        r"ConnectionError each time",
        history,
    )
    times = [float(t) for t in re.findall(r"at ([\d.]+) s", history)]
    assert times == sorted(times)
    assert rows["logged on trusswork.retry"].startswith("WARNING giving up on ")


def test_jitter_study_reproduces_the_aws_ordering(retry_demo: Run) -> None:
    rows = retry_demo.rows
    calls: dict[str, tuple[int, float]] = {}
    for label in ("no jitter", "full jitter", "equal jitter", "decorrelated jitter"):
        found = re.fullmatch(r"([\d,]+) calls, done in ([\d.]+) s", rows[f"{label}, 100 clients"])
        assert found is not None, label
        calls[label] = (number(found[1]), float(found[2]))
    none_calls, none_time = calls.pop("no jitter")
    assert none_calls > 2 * max(c for c, _ in calls.values())
    assert none_time > 5 * max(t for _, t in calls.values())
    assert float(rows["calls, no jitter / full jitter (10..100 clients)"].removesuffix("x")) > 2
    assert float(rows["time, no jitter / full jitter (10..100 clients)"].removesuffix("x")) > 5
    assert rows["least work / soonest done"] == "full jitter / decorrelated jitter"


def test_jitter_study_is_plotted(retry_demo: Run) -> None:
    page = (retry_demo.out_dir / "index.html").read_text(encoding="utf-8")
    caption = "Exponential backoff and jitter: work and completion time against contention"
    assert f"<figcaption>{caption}</figcaption><svg" in page


def _rows(calls: dict[str, float], seconds: dict[str, float]) -> list[StudyRow]:
    return [StudyRow(s, 10, calls[s], seconds[s], 1) for s in calls]  # type: ignore[arg-type]


def test_the_section_fails_when_the_study_loses_its_ordering() -> None:
    good_calls = {"none": 300.0, "full": 100.0, "equal": 105.0, "decorrelated": 102.0}
    good_time = {"none": 50.0, "full": 2.0, "equal": 3.0, "decorrelated": 1.9}
    assert _retry_demo.check_study(_rows(good_calls, good_time))["full"] == (100.0, 2.0)
    with pytest.raises(AssertionError, match="full jitter did not make fewer calls than equal"):
        _retry_demo.check_study(_rows({**good_calls, "equal": 99.0}, good_time))
    with pytest.raises(AssertionError, match="no jitter did not take far longer"):
        _retry_demo.check_study(_rows(good_calls, {**good_time, "none": 4.0}))
    with pytest.raises(AssertionError, match="no jitter did not make far more calls"):
        _retry_demo.check_study(_rows({**good_calls, "none": 150.0}, good_time))


def test_breaker_opens_during_the_outage_probes_and_closes_after_it(retry_demo: Run) -> None:
    rows = retry_demo.rows
    opened = float(rows["breaker: opened at"].removesuffix(" s"))
    closed = float(rows["breaker: closed again at"].removesuffix(" s"))
    start, end = _retry_demo.OUTAGE
    assert start < opened < end  # opened during the outage
    assert closed >= end  # closed only once the dependency was back
    assert number(rows["breaker: probes that found it still down"]) >= 1
    reached = number(rows["breaker: calls during the outage that reached the dependency"])
    rejected, total = map(int, rows["breaker: calls rejected at once (CircuitOpen)"].split(" of "))
    assert 0 < reached < 15  # the breaker spared the dead dependency most of the 30 calls
    assert reached + rejected == 30 and total == 60
