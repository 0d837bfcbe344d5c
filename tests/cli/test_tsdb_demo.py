"""The "tsdb" demo section: compression per kind, rollups, PromQL, cardinality, plots."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from helpers.demo import SectionRun as Run
from helpers.demo import number, run_section
from trusswork.cli import _demo

ROW = _demo.DemoSection(
    "tsdb", "Time series: compression, rollups, PromQL", "trusswork.cli._tsdb_demo"
)


@pytest.fixture(scope="module")
def tsdb_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """``trusswork demo --quick`` with only the tsdb section, through the demo machinery.

    The section's row is added to ``_demo.SECTIONS`` for the run if it is not there yet.
    """
    with pytest.MonkeyPatch.context() as patch:
        if not any(section.name == "tsdb" for section in _demo.SECTIONS):
            patch.setattr(_demo, "SECTIONS", (*_demo.SECTIONS, ROW))
        yield run_section("tsdb", tmp_path_factory.mktemp("tsdb-demo"))


def test_tsdb_section_succeeds(tsdb_demo: Run) -> None:
    assert tsdb_demo.code == 0, tsdb_demo.stderr
    assert tsdb_demo.section["status"] == "ok", tsdb_demo.section


def test_the_codec_beats_zstd_on_every_kind(tsdb_demo: Run) -> None:
    rows = tsdb_demo.rows
    assert rows["synthetic node_exporter data"] == (
        "2 hosts, 24 h every 15 s: 156 series, 898,560 samples"
    )
    for kind in ("counters (74 series)", "gauges (24 series)", "constants (58 series)"):
        found = re.fullmatch(
            r"([\d.]+) vs ([\d.]+) \(([\d.]+)x smaller\)",
            rows[f"{kind}: bytes/sample, ours vs zstd"],
        )
        assert found is not None
        ours, zstd = float(found[1]), float(found[2])
        assert ours < zstd
        assert ours < 2.0  # a chunk of 16-byte samples in under 2 bytes each
    per_sample = float(rows["raw blocks: bytes/sample (chunks and index)"])
    assert 0 < per_sample < 2.0


def test_rollups_answer_the_long_query_from_fewer_samples(tsdb_demo: Run) -> None:
    rows = tsdb_demo.rows
    read = re.fullmatch(
        r"([\d,]+) raw -> ([\d,]+) with rollups", rows["24 h query, step 30m: samples read"]
    )
    assert read is not None
    assert number(read[2]) * 2 < number(read[1])
    kept = re.fullmatch(r"([\d,]+) of ([\d,]+)", rows["raw samples kept (newest 6 h and more)"])
    assert kept is not None and number(kept[2]) == 898_560 and number(kept[1]) < 898_560 / 2
    blocks = re.fullmatch(
        r"(\d+), 0 -> (\d+), (\d+) in [\d.]+ s", rows["blocks after compaction (raw, rollup)"]
    )
    assert blocks is not None and int(blocks[1]) == 12 and int(blocks[3]) >= 2
    difference = re.fullmatch(r"([\d.]+)%", rows["answer with rollups vs raw (median difference)"])
    assert difference is not None and float(difference[1]) < 1.0


def test_cpu_modes_add_up_to_the_cpus(tsdb_demo: Run) -> None:
    rows = tsdb_demo.rows
    query = "sum by (mode) (rate(node_cpu_seconds_total[5m])), last 6 h"
    assert re.fullmatch(r"8 series x 361 steps in [\d.]+ ms", rows[query])
    total = re.fullmatch(r"([\d.]+) CPUs \(8 CPUs generated\)", rows["sum over modes (mean)"])
    assert total is not None and abs(float(total[1]) - 8) < 0.16


def test_cardinality_report(tsdb_demo: Run) -> None:
    rows = tsdb_demo.rows
    assert rows["cardinality: series in the head"] == "156"
    assert rows["top metrics (series)"].startswith("node_cpu_seconds_total 64, ")
    assert rows["labels with most values"].startswith("__name__ 30, mode 8")
    assert rows["top label pairs (series)"].startswith("job=node 156, ")


def test_report_has_both_plots_and_keeps_the_database(tsdb_demo: Run) -> None:
    titles = [
        "A 24 h query on raw blocks and on rollups",
        "CPU by mode over the last 6 h (raw data)",
    ]
    assert tsdb_demo.section["plots"] == titles
    page = (tsdb_demo.out_dir / "index.html").read_text(encoding="utf-8")
    for title, labels in zip(
        titles,
        (["iowait", "user", "with rollups (dashed)"], ["idle", "user", "8 CPUs"]),
        strict=True,
    ):
        figure = page[page.index(title) :]
        assert "<svg" in figure[:2000]
        svg = figure[: figure.index("</svg>")]
        for label in labels:
            assert label in svg
    assert (tsdb_demo.out_dir / "tsdb" / "db" / "blocks").is_dir()
