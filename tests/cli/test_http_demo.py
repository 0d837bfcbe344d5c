"""The "http" demo section: our server and uvicorn under the same load, smuggling refused."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from helpers.demo import SectionRun as Run
from helpers.demo import run_section


@pytest.fixture(scope="module")
def http_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """``trusswork demo --quick`` with only the http section, through the demo machinery."""
    yield run_section("http", tmp_path_factory.mktemp("http-demo"))


def test_http_section_succeeds(http_demo: Run) -> None:
    assert http_demo.code == 0, http_demo.stderr
    assert http_demo.section["status"] == "ok", http_demo.section


def test_both_servers_answered_the_load(http_demo: Run) -> None:
    rows = http_demo.rows
    ours = rows["trusswork http serve, plaintext (32 keep-alive connections)"]
    theirs = rows["uvicorn (uvloop + httptools), same app and load"]
    for rate in (ours, theirs):
        match = re.fullmatch(r"([\d,]+) req/s", rate)
        assert match is not None and int(match[1].replace(",", "")) > 100
    assert re.fullmatch(r"\d+\.\d\dx", rows["ratio"])


def test_smuggling_request_is_refused(http_demo: Run) -> None:
    assert re.fullmatch(r"refused: HTTP/1\.1 400 .+", http_demo.rows["CL+TE smuggling request"])


def test_report_has_the_throughput_figure(http_demo: Run) -> None:
    title = "Throughput: requests per second, same ASGI app and load"
    assert http_demo.section["plots"] == [title]
    page = (http_demo.out_dir / "index.html").read_text(encoding="utf-8")
    figure = page[page.index(title) :]
    assert "<svg" in figure[:2000]
    # both servers are bars of the chart, labelled with their rate
    for label in ("trusswork http serve", "uvicorn"):
        assert label in figure[: figure.index("</svg>")]
