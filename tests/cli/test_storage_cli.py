"""``trusswork storage wal-check`` and ``wal-dump``: reports, exit codes, repair, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import assert_one_error_line
from trusswork.cli import main
from trusswork.storage import WriteAheadLog

# The on-disk format (csrc/wal/wal.h): where a record starts, to damage it on purpose.
SEGMENT_HEADER = 32
RECORD_HEADER = 20
PAYLOAD = 100
RECORD = RECORD_HEADER + PAYLOAD
FIRST_SEGMENT = "00000000000000000001.wal"


def payload(lsn: int) -> bytes:
    return f"record {lsn} ".encode().ljust(PAYLOAD, b"-")


def make_log(path: Path, records: int = 100, *, segment_bytes: int = 64 << 20) -> Path:
    # fsync="always": each record is written on its own, so segments rotate between
    # records, and after a sync, so damage before a later record is never a torn write.
    with WriteAheadLog(path, fsync="always", segment_bytes=segment_bytes) as log:
        lsns = [log.append(payload(lsn)) for lsn in range(1, records + 1)]
    assert lsns == list(range(1, records + 1))
    return path


def record_offset(lsn: int) -> int:
    """Byte offset of record ``lsn`` in the first segment of a log made by make_log."""
    return SEGMENT_HEADER + (lsn - 1) * RECORD


def flip(segment: Path, offset: int, mask: int = 0xFF) -> None:
    with open(segment, "r+b") as file:
        file.seek(offset)
        byte = file.read(1)[0]
        file.seek(offset)
        file.write(bytes([byte ^ mask]))


def storage(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["storage", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def stored(path: Path) -> dict[int, bytes]:
    with WriteAheadLog(path) as log:
        return dict(log.scan())


# ---------------------------------------------------------------- wal-check


def test_wal_check_on_a_healthy_log_exits_0_and_counts_records(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = make_log(tmp_path / "wal")
    code, out, err = storage(capsys, "wal-check", str(log))
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"write-ahead log {log}",
        "  segments: 1",
        "  records:  100 (LSN 1..100)",
        "  status:   ok, every record reads back intact",
    ]


def test_wal_check_on_a_torn_tail_exits_1_and_says_opening_repairs_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = make_log(tmp_path / "wal")
    segment = log / FIRST_SEGMENT
    with open(segment, "r+b") as file:  # a crash in the middle of writing record 100
        file.truncate(record_offset(100) + RECORD_HEADER + 7)
    code, out, _ = storage(capsys, "wal-check", str(log))
    assert code == 1
    assert "records:  99 readable (LSN 1..99)" in out
    assert f"torn tail in {FIRST_SEGMENT} at byte offset {record_offset(100)}" in out
    assert "opening the log truncates it by itself" in out
    # ... which it does: the log opens with every whole record.
    assert stored(log) == {lsn: payload(lsn) for lsn in range(1, 100)}


def test_wal_check_names_the_segment_and_offset_of_mid_segment_damage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = make_log(tmp_path / "wal")
    flip(log / FIRST_SEGMENT, record_offset(50) + RECORD_HEADER + 10)
    code, out, _ = storage(capsys, "wal-check", str(log))
    assert code == 1
    assert "records:  49 readable (LSN 1..49)" in out
    problem = next(line for line in out.splitlines() if "problem:" in line)
    assert f"damage in {FIRST_SEGMENT} at byte offset {record_offset(50)}" in problem
    assert "(LSN 50)" in problem
    assert "torn" not in out
    assert "--repair" in out


def test_wal_check_names_a_damaged_sealed_segment_among_several(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = make_log(tmp_path / "wal", records=100, segment_bytes=SEGMENT_HEADER + 10 * RECORD)
    segments = sorted(path.name for path in log.glob("*.wal"))
    assert len(segments) == 11  # ten full ones and the empty one after them
    # The third segment starts at LSN 21; damage its 5th record.
    third = segments[2]
    assert third == f"{21:020d}.wal"
    flip(log / third, SEGMENT_HEADER + 4 * RECORD + RECORD_HEADER)
    code, out, _ = storage(capsys, "wal-check", str(log))
    assert code == 1
    assert f"segments: {len(segments)}" in out
    assert f"damage in {third} at byte offset {SEGMENT_HEADER + 4 * RECORD}" in out
    assert "(LSN 25)" in out


def test_repair_cuts_a_damaged_log_so_it_opens_with_the_records_before_the_damage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from trusswork.core.errors import Corruption

    log = make_log(tmp_path / "wal")
    flip(log / FIRST_SEGMENT, record_offset(60) + RECORD_HEADER + 50)
    with pytest.raises(Corruption):
        WriteAheadLog(log)
    code, out, _ = storage(capsys, "wal-check", "--repair", str(log))
    assert code == 1  # a problem was found, even though it is repaired now
    assert (
        f"repaired: log cut at {FIRST_SEGMENT} offset {record_offset(60)}; records before it kept"
    ) in out
    assert stored(log) == {lsn: payload(lsn) for lsn in range(1, 60)}
    code, out, _ = storage(capsys, "wal-check", str(log))
    assert code == 0
    assert "records:  59 (LSN 1..59)" in out


def test_wal_check_json_is_the_check_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = make_log(tmp_path / "wal")
    code, out, _ = storage(capsys, "wal-check", "--json", str(log))
    assert code == 0
    healthy = json.loads(out)
    assert healthy["ok"] is True
    assert (healthy["records"], healthy["first_lsn"], healthy["last_lsn"]) == (100, 1, 100)
    assert healthy["problem"] is None

    flip(log / FIRST_SEGMENT, record_offset(30) + RECORD_HEADER)
    code, out, _ = storage(capsys, "wal-check", "--json", str(log))
    assert code == 1
    damaged = json.loads(out)
    assert damaged["ok"] is False
    assert damaged["records"] == 29
    assert damaged["problem_segment"] == str(log / FIRST_SEGMENT)
    assert damaged["problem_offset"] == record_offset(30)
    assert (damaged["torn_tail"], damaged["repaired"]) == (False, False)


@pytest.mark.parametrize("action", ["wal-check", "wal-dump"])
def test_missing_log_directory_is_a_one_line_error(
    action: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere"
    code, out, err = storage(capsys, action, str(missing))
    assert code == 1
    assert out == ""
    assert_one_error_line(err, str(missing), "does not exist")


def test_a_file_instead_of_a_log_directory_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    code, out, err = storage(capsys, "wal-check", str(not_a_directory))
    assert code == 1
    assert out == ""
    assert_one_error_line(err, str(not_a_directory))


def test_a_damaged_length_field_mid_segment_is_damage_not_a_torn_tail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = make_log(tmp_path / "wal")
    # One bit of record 51's length (bytes 4..8 of its header, not covered by the
    # header CRC) makes it claim ~64 KiB, past the end of the file.
    flip(log / FIRST_SEGMENT, record_offset(51) + 6, mask=0x01)
    code, out, _ = storage(capsys, "wal-check", str(log))
    assert code == 1
    assert f"damage in {FIRST_SEGMENT} at byte offset {record_offset(51)}" in out


# ---------------------------------------------------------------- wal-dump


def test_wal_dump_prints_lsn_length_and_the_start_of_each_payload(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = make_log(tmp_path / "wal", records=5)
    code, out, err = storage(capsys, "wal-dump", str(log))
    assert (code, err) == (0, "")
    assert out.splitlines() == [f"{lsn}\t{PAYLOAD}\t{payload(lsn)[:60]!r}" for lsn in range(1, 6)]


def test_wal_dump_from_and_limit_select_records(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = make_log(tmp_path / "wal", records=50)
    code, out, _ = storage(capsys, "wal-dump", str(log), "--from", "10", "--limit", "3")
    assert code == 0
    assert [line.split("\t")[0] for line in out.splitlines()] == ["10", "11", "12"]
    code, out, _ = storage(capsys, "wal-dump", str(log), "--from", "51")
    assert (code, out) == (0, "")


def test_wal_dump_stops_at_damage_with_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = make_log(tmp_path / "wal", records=20)
    flip(log / FIRST_SEGMENT, record_offset(8) + RECORD_HEADER + 1)
    code, out, err = storage(capsys, "wal-dump", str(log))
    assert code == 1
    assert [int(line.split("\t")[0]) for line in out.splitlines()] == list(range(1, 8))
    assert_one_error_line(err, FIRST_SEGMENT, f"byte offset {record_offset(8)}")
    # --limit stops before the damage: nothing to report.
    code, out, err = storage(capsys, "wal-dump", str(log), "--limit", "7")
    assert (code, err) == (0, "")
    assert len(out.splitlines()) == 7


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        ([], ["required", "<action>"]),
        (["wal-scrub", "x"], ["wal-scrub"]),
        (["wal-check"], ["path"]),
        (["wal-dump", "x", "--limit", "0"], ["--limit", "1 or more"]),
        (["wal-dump", "x", "--from", "-3"], ["--from", "0 or more"]),
        (["wal-dump", "x", "--from", "ten"], ["--from", "whole number"]),
    ],
)
def test_usage_mistakes_exit_2_with_one_line(
    argv: list[str], fragments: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = storage(capsys, *argv)
    assert code == 2
    assert out == ""
    assert_one_error_line(err, *fragments)


def test_debug_after_the_action_shows_the_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = storage(capsys, "wal-check", str(tmp_path / "nowhere"), "--debug")
    assert code == 1
    assert "Traceback (most recent call last)" in err
    assert err.splitlines()[-1].startswith("trusswork: error: ")
