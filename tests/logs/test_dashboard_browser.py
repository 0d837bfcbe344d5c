"""The log dashboard page in a real headless Chromium: search, time charts, errors, dashboards.

Needs Debian's ``chromium`` and ``chromedriver`` (``/usr/bin``); without them
the tests skip, and fail under ``CI=true`` (:func:`helpers.missing_service`).
"""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers import missing_service
from helpers.http import running
from trusswork.logs import LogStore
from trusswork.logs._api import build_app

# Without selenium the browser fixture skips (fails under CI=true) like a missing Chromium.
SELENIUM = importlib.util.find_spec("selenium") is not None
if SELENIUM:
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException, WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
NOW = 1_700_000_000.0  # the store's and the server's clock
#: (seconds before NOW, status) of the access-log lines: three statuses over ~17 minutes.
ACCESS = [(i * 17, (200, 200, 404, 500, 200)[i % 5]) for i in range(60)]
BOARD = {
    "title": "Shop overview",
    "panels": [
        {"title": "Server errors", "query": "status>=500", "type": "table", "earliest": "-1h"},
        {
            "title": "Requests by status",
            "query": "* | timechart span=1m count by status",
            "type": "timechart",
            "earliest": "-24h",
        },
    ],
}


def combined_line(seconds_ago: int, status: int) -> str:
    stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(NOW - seconds_ago))
    return f'10.0.0.{seconds_ago % 5} - - [{stamp}] "GET /shop HTTP/1.1" {status} 99 "-" "curl/8"'


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path: Path = tmp_path_factory.mktemp("browser") / "store"
    with LogStore(path, background=False, fsync="never", clock=lambda: NOW) as store:
        store.ingest([combined_line(*row) for row in ACCESS], format="combined", source="nginx")
        store.refresh()
        with running(build_app(store, clock=lambda: NOW)) as server:
            url = f"http://127.0.0.1:{server.port}"
            assert httpx.put(f"{url}/api/dashboards/shop", json=BOARD).status_code == 201
            yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not SELENIUM:
        missing_service("selenium", "the selenium package is not installed in this environment")
    for binary in (CHROMIUM, CHROMEDRIVER):
        if not os.access(binary, os.X_OK):
            missing_service("Chromium", f"{binary} is missing; apt-get install chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
    ):
        options.add_argument(flag)
    try:
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    except WebDriverException as exc:
        missing_service("Chromium", f"chromedriver could not start a browser: {exc.msg}")
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: Any, condition: Any, what: str, timeout: float = 10) -> Any:
    """Wait until ``condition(driver)`` is truthy; fail with the page's error box if not."""
    try:
        return WebDriverWait(driver, timeout).until(condition)
    except TimeoutException:
        error = driver.find_element(By.ID, "error").text
        pytest.fail(f"timed out waiting for {what}; error box: {error!r}")


def run_query(driver: Any, text: str, *, enter: bool = False) -> None:
    box = driver.find_element(By.ID, "query")
    box.clear()
    box.send_keys(text)
    if enter:
        box.send_keys(Keys.ENTER)
    else:
        driver.find_element(By.ID, "run").click()


def rows(driver: Any, selector: str = "#results table tbody tr") -> list[Any]:
    return list(driver.find_elements(By.CSS_SELECTOR, selector))


def test_search_fills_the_table(browser: Any, base_url: str) -> None:
    browser.get(base_url + "/")
    expected = sum(1 for _, status in ACCESS if status == 404)
    run_query(browser, "status=404", enter=True)
    found = wait_for(browser, lambda d: len(rows(d)) == expected and rows(d), "404 rows")
    headers = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#results table th")]
    assert {"_time", "_raw", "status"} <= set(headers)
    column = headers.index("status")
    assert {row.find_elements(By.TAG_NAME, "td")[column].text for row in found} == {"404"}
    assert not browser.find_element(By.ID, "error").is_displayed()
    assert browser.find_element(By.ID, "chart").is_displayed() is False


def test_time_range_picker_narrows_the_rows(browser: Any, base_url: str) -> None:
    browser.get(base_url + "/")
    run_query(browser, "status=200")
    every = sum(1 for _, status in ACCESS if status == 200)
    wait_for(browser, lambda d: len(rows(d)) == every, "all 200 rows")
    browser.find_element(By.CSS_SELECTOR, "#range option[value='-15m']").click()
    recent = sum(1 for ago, status in ACCESS if status == 200 and ago < 15 * 60)
    assert recent < every
    wait_for(browser, lambda d: len(rows(d)) == recent, "the last 15 minutes' rows")


def test_timechart_draws_one_series_per_status(browser: Any, base_url: str) -> None:
    browser.get(base_url + "/")
    run_query(browser, "* | timechart span=1m count by status")
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#chart svg"), "the chart")
    series = browser.find_elements(By.CSS_SELECTOR, "#chart svg .series")
    assert sorted(s.get_attribute("data-series") for s in series) == ["200", "404", "500"]
    for line in series:
        assert line.tag_name == "path"
        assert line.get_attribute("d").count("L") >= 10  # one vertex per minute bucket
    legend = [t.text for t in browser.find_elements(By.CSS_SELECTOR, "#chart svg .legend text")]
    assert sorted(legend) == ["200", "404", "500"]
    assert len(rows(browser)) == len({(NOW - ago) // 60 for ago, _ in ACCESS})


def test_bad_query_shows_the_caret(browser: Any, base_url: str) -> None:
    browser.get(base_url + "/")
    run_query(browser, "status=404 | stats count by")
    error = wait_for(
        browser,
        lambda d: d.find_element(By.ID, "error").is_displayed() and d.find_element(By.ID, "error"),
        "the error box",
    )
    lines = error.text.splitlines()
    assert any("expected a field name after 'by'" in line for line in lines)
    assert lines[-1].strip().endswith("^")
    assert lines[-1].index("^") > lines[-2].index("count")
    assert not browser.find_element(By.ID, "results").is_displayed()


def test_plan_toggle_shows_the_plan(browser: Any, base_url: str) -> None:
    browser.get(base_url + "/")
    run_query(browser, "status=500")
    wait_for(browser, lambda d: rows(d), "rows")
    browser.find_element(By.ID, "plan-toggle").click()
    plan = browser.find_element(By.ID, "plan")
    wait_for(browser, lambda d: "rows matched" in plan.text, "the plan")
    assert "status=500" in plan.text


def test_saved_dashboard_renders_its_panels(browser: Any, base_url: str) -> None:
    browser.get(base_url + "/dashboards/shop")
    wait_for(
        browser,
        lambda d: len(d.find_elements(By.CSS_SELECTOR, "#panels .panel")) == 2,
        "two panels",
    )
    assert browser.find_element(By.ID, "dashboard-title").text == "Shop overview"
    errors = sum(1 for _, status in ACCESS if status == 500)
    wait_for(
        browser,
        lambda d: len(rows(d, "#panels .panel:nth-child(1) tbody tr")) == errors,
        "the table panel's rows",
    )
    wait_for(
        browser,
        lambda d: (
            len(d.find_elements(By.CSS_SELECTOR, "#panels .panel:nth-child(2) svg .series")) == 3
        ),
        "the chart panel's series",
    )
    titles = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "#panels .panel h3 span")]
    assert titles == ["Server errors", "Requests by status"]


def test_save_as_panel_adds_to_a_dashboard(browser: Any, base_url: str) -> None:
    browser.get(base_url + "/")
    run_query(browser, "status=404 | stats count by clientip")
    wait_for(browser, lambda d: rows(d), "rows")
    browser.find_element(By.ID, "save-title").send_keys("Not found by client")
    browser.find_element(By.ID, "save-dashboard").send_keys("triage")
    browser.find_element(By.ID, "save-panel").click()
    wait_for(
        browser,
        lambda d: len(rows(d, "#panels .panel tbody tr")) > 0,
        "the new panel's rows",
    )
    saved = httpx.get(f"{base_url}/api/dashboards/triage").json()
    assert [(p["title"], p["query"]) for p in saved["panels"]] == [
        ("Not found by client", "status=404 | stats count by clientip")
    ]
    assert browser.current_url.endswith("/dashboards/triage")
