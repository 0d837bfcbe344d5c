"""The "storage" demo section: it runs in the tour, loses no acknowledged record, finds damage."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.demo import SectionRun as Run
from helpers.demo import number, run_section, writer_processes
from trusswork.cli import _storage_demo, main


@pytest.fixture(scope="module")
def storage_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """``trusswork demo --quick`` with only the storage section, through the demo machinery."""
    yield run_section("storage", tmp_path_factory.mktemp("storage-demo"))


def test_storage_section_succeeds(storage_demo: Run) -> None:
    assert storage_demo.code == 0, storage_demo.stderr
    assert storage_demo.section["status"] == "ok", storage_demo.section


def test_killed_writer_lost_no_acknowledged_record(storage_demo: Run) -> None:
    rows = storage_demo.rows
    assert rows["acknowledged records lost"] == "0"
    acknowledged = number(rows["records acknowledged by the SIGKILLed writer"])
    recovered = number(rows["records recovered on reopen"])
    assert acknowledged > 0
    assert recovered >= acknowledged
    assert re.fullmatch(
        r"0 B \(the tail was whole\)|[\d,]+ B at byte offset [\d,]+",
        rows["torn bytes truncated on reopen"],
    )


def test_flipped_byte_is_detected_refused_and_repaired(storage_demo: Run) -> None:
    rows = storage_demo.rows
    assert re.fullmatch(
        r"yes: 00000000000000000001\.wal at byte offset [\d,]+", rows["damage detected"]
    )
    assert rows["opening the damaged log"] == "refused (Corruption)"
    # Quick mode appends 2,000 records; the middle one was damaged.
    assert rows["kept by check_log(repair=True)"] == "1,000 of 2,000 records"


def test_every_fsync_mode_is_measured_and_plotted(storage_demo: Run) -> None:
    rows = storage_demo.rows
    group = rows["appends, fsync=group, 8 threads, 2,000 x 256 B"]
    assert re.fullmatch(r"[\d,]+ appends/s \([\d.]+ MB/s\)", group)
    for mode in ("never", "interval", "always"):
        assert re.fullmatch(r"[\d,]+ appends/s", rows[f"appends, fsync={mode}, 8 threads"])
    page = (storage_demo.out_dir / "index.html").read_text(encoding="utf-8")
    assert "<figcaption>Write-ahead log appends per second by fsync mode</figcaption><svg" in page


def test_crashed_log_is_left_for_wal_check_and_passes_it(
    storage_demo: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    crashed = storage_demo.out_dir / "storage" / "crashed"
    assert main(["storage", "wal-check", str(crashed)]) == 0
    out = capsys.readouterr().out
    recovered = storage_demo.rows["records recovered on reopen"].replace(",", "")
    assert f"records:  {recovered} (LSN 1..{recovered})" in out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_no_writer_process_is_left_behind(storage_demo: Run) -> None:
    assert storage_demo.section["status"] == "ok"
    assert writer_processes(b"writer_main") == []


def test_a_writer_that_cannot_start_fails_the_crash_step_quickly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A "Python" that exits at once: the step must report it, not wait or hang.
    monkeypatch.setattr(sys, "executable", "/bin/false")
    with pytest.raises(RuntimeError, match="acknowledged nothing"):
        _storage_demo._crash(tmp_path / "log", run_seconds=0.1)
