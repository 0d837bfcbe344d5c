"""Damaged write-ahead logs: torn tails are repaired, everything else is Corruption.

Files are damaged on purpose: cut at every byte of the tail, a byte changed
in the middle of the last or of a sealed segment, a segment deleted, random
bytes. A torn tail must come back as exactly the whole records before the
cut; other damage must raise :class:`Corruption` naming the segment file and
byte offset (and ``check_log`` must report the same place and repair it).
The record decoder in ``_wal`` is fuzzed with hypothesis against a
pure-Python framer written from the format in ``csrc/wal/wal.h``.
"""

from __future__ import annotations

import random
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import examples
from trusswork.core.checksum import crc32c
from trusswork.core.errors import Corruption
from trusswork.storage import _wal
from trusswork.storage.wal import WriteAheadLog, check_log, read_log

HEADER = 32  # segment header bytes
RECORD = 20  # record header bytes
STATUSES = {_wal.OK, _wal.TRUNCATED, _wal.CORRUPT}

# ---------------------------------------------------------------- the oracle framer


def segment_header(first_lsn: int) -> bytes:
    """The 32-byte segment header, as wal.h describes it."""
    head = b"TWWAL001" + struct.pack("<QQI", first_lsn, 0, 0)
    return head + struct.pack("<I", crc32c(head))


def frame(lsn: int, payload: bytes, kind: int = 1) -> bytes:
    """One framed record: crc | length | lsn | type | 3 zero bytes | payload.

    Type 1 is a plain record, 2 one that begins a write made once everything
    before it was synced. The CRC covers everything after itself, payload
    first: crc32c(length..pad, seed=crc32c(payload)).
    """
    tail = struct.pack("<IQB3x", len(payload), lsn, kind)
    crc = crc32c(tail, crc32c(payload))
    return struct.pack("<I", crc) + tail + payload


def segment_bytes(first_lsn: int, payloads: list[bytes], kind: int = 1) -> bytes:
    return segment_header(first_lsn) + b"".join(
        frame(first_lsn + i, payload, kind) for i, payload in enumerate(payloads)
    )


# ---------------------------------------------------------------- building logs


def payload_for(lsn: int) -> bytes:
    return b"payload-%d:" % lsn + bytes([lsn % 251]) * (lsn * 11 % 41)


class Record(NamedTuple):
    lsn: int
    start: int  # byte offset of the record header in its segment
    end: int  # byte offset just after its payload
    payload: bytes


def build_log(directory: Path, count: int, *, segment_size: int = 64 << 20) -> list[Path]:
    """A closed log of records 1..count (payload_for); returns its segment files."""
    with WriteAheadLog(directory, fsync="group", segment_bytes=segment_size) as log:
        for lsn in range(1, count + 1):
            log.append(payload_for(lsn))
    return sorted(directory.glob("*.wal"))


def layout(segment: Path) -> list[Record]:
    """The records of an intact segment with their byte ranges."""
    data = segment.read_bytes()
    first = int(segment.stem)
    records, end, status = _wal.parse(data, HEADER, first, len(data) // RECORD + 1)
    assert (end, status) == (len(data), _wal.OK)
    found, offset = [], HEADER
    for lsn, payload in records:
        found.append(Record(lsn, offset, offset + RECORD + len(payload), payload))
        offset += RECORD + len(payload)
    return found


def expected_records(count: int) -> list[tuple[int, bytes]]:
    return [(lsn, payload_for(lsn)) for lsn in range(1, count + 1)]


def flip(path: Path, offset: int, mask: int = 0x5A) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= mask
    path.write_bytes(bytes(data))


def test_oracle_framer_matches_the_files_the_log_writes(tmp_path: Path) -> None:
    (segment,) = build_log(tmp_path, 9)
    # One thread appending in group mode: every append is a write of its own
    # made after the previous one was synced, so every record has type 2.
    payloads = [payload_for(lsn) for lsn in range(1, 10)]
    assert segment.read_bytes() == segment_bytes(1, payloads, kind=2)
    assert segment.name == "00000000000000000001.wal"


# ---------------------------------------------------------------- (a) torn tails


@pytest.mark.parametrize("segments", ["one segment", "several segments"])
def test_cut_at_every_byte_of_the_last_three_records_recovers_what_precedes_it(
    tmp_path: Path, segments: str
) -> None:
    source = tmp_path / "source"
    size = 64 << 20 if segments == "one segment" else 700
    files = build_log(source, 40, segment_size=size)
    last = files[-1]
    in_last = layout(last)
    assert len(in_last) >= 3, "the last segment must hold three records for this test"
    before_last = in_last[0].lsn - 1
    original = last.read_bytes()

    work = tmp_path / "work"
    for cut in range(in_last[-3].start, len(original) + 1):
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(source, work)
        damaged = work / last.name
        damaged.write_bytes(original[:cut])
        whole = [record for record in in_last if record.end <= cut]
        boundary = whole[-1].end if whole else HEADER
        expected = expected_records(before_last + len(whole))
        where = f"{segments}, cut at byte {cut} of {len(original)}"

        assert list(read_log(work)) == expected, where
        report = check_log(work)
        assert report.torn_tail == (cut != boundary), where
        if cut != boundary:
            assert (report.problem_segment, report.problem_offset) == (str(damaged), boundary)
            assert report.records == len(expected), where

        with WriteAheadLog(work, fsync="group", segment_bytes=size) as log:
            recovery = log.recovery
            assert recovery.truncated_bytes == cut - boundary, where
            if cut == boundary:
                assert recovery.truncated_segment is None, where
            else:
                assert (recovery.truncated_segment, recovery.truncated_offset) == (
                    str(damaged),
                    boundary,
                ), where
            assert recovery.next_lsn == len(expected) + 1, where
            assert list(log.scan()) == expected, where
            assert log.append(b"after repair") == len(expected) + 1, where
        assert check_log(work).ok, where


def rotated_log(tmp_path: Path) -> tuple[Path, Path]:
    """A closed log whose last segment was just created by a rotation (a header, no record)."""
    directory = tmp_path / "source"
    # Three 70-byte records fill a 200-byte segment: the third append rotates.
    with WriteAheadLog(directory, fsync="group", segment_bytes=200) as log:
        for lsn in range(1, 4):
            log.append(b"%02d" % lsn * 25)
    files = sorted(directory.glob("*.wal"))
    assert [path.name for path in files] == [
        "00000000000000000001.wal",
        "00000000000000000004.wal",
    ]
    assert files[-1].stat().st_size == HEADER
    return directory, files[-1]


def test_a_new_segment_with_a_whole_header_and_no_record_opens(tmp_path: Path) -> None:
    directory, _ = rotated_log(tmp_path)
    with WriteAheadLog(directory, fsync="group", segment_bytes=200) as log:
        assert log.next_lsn == 4
        assert [lsn for lsn, _ in log.scan()] == [1, 2, 3]


def test_read_log_ignores_a_torn_header_of_the_newest_segment(tmp_path: Path) -> None:
    directory, newest = rotated_log(tmp_path)
    original = newest.read_bytes()
    for cut in range(HEADER):
        newest.write_bytes(original[:cut])
        assert [lsn for lsn, _ in read_log(directory)] == [1, 2, 3], f"header cut at {cut}"


def test_a_torn_header_of_the_newest_segment_is_repaired_on_open(tmp_path: Path) -> None:
    source, newest = rotated_log(tmp_path)
    original = newest.read_bytes()
    for cut in range(HEADER):
        work = tmp_path / f"cut{cut}"
        shutil.copytree(source, work)
        (work / newest.name).write_bytes(original[:cut])
        report = check_log(work)
        with WriteAheadLog(work, fsync="group", segment_bytes=200) as log:
            assert log.recovery.truncated_bytes == cut
            assert [lsn for lsn, _ in log.scan()] == [1, 2, 3]
            assert log.append(b"next") == 4
        assert report.torn_tail, f"header cut at {cut}: {report}"
        assert check_log(work).ok


# ---------------------------------------------------------------- (b) damage in the middle

# Where in a record to change a byte. A changed length that points past the end of
# the file is a separate (failing) test below.
FIELDS = {
    "crc": 1,
    "length low byte": 4,
    "length above 1 GiB": 7,
    "lsn": 9,
    "type": 16,
    "padding": 18,
    "payload": 25,
}


@pytest.mark.parametrize("field", FIELDS)
def test_damage_in_the_last_segment_refuses_to_open_until_repaired(
    tmp_path: Path, field: str
) -> None:
    (segment,) = build_log(tmp_path, 8)
    victim = layout(segment)[3]  # LSN 4, four whole records after it
    flip(segment, victim.start + FIELDS[field])

    with pytest.raises(Corruption) as raised:
        WriteAheadLog(tmp_path)
    assert segment.name in str(raised.value)
    assert f"byte offset {victim.start}" in str(raised.value)
    with pytest.raises(Corruption, match=f"byte offset {victim.start}"):
        list(read_log(tmp_path))

    report = check_log(tmp_path)
    assert not report.ok and not report.torn_tail and not report.repaired
    assert (report.problem_segment, report.problem_offset) == (str(segment), victim.start)
    assert (report.records, report.last_lsn) == (3, 3)

    assert check_log(tmp_path, repair=True).repaired
    with WriteAheadLog(tmp_path) as log:
        assert list(log.scan()) == expected_records(3)
        assert log.append(b"after repair") == 4
    assert check_log(tmp_path).ok


@pytest.mark.parametrize(("length_byte", "mask"), [(5, 0x5A), (6, 0x5A), (7, 0x01)])
def test_a_length_field_pointing_past_the_end_is_damage_not_a_torn_tail(
    tmp_path: Path, length_byte: int, mask: int
) -> None:
    (segment,) = build_log(tmp_path, 8)
    victim = layout(segment)[3]
    flip(segment, victim.start + length_byte, mask)
    with pytest.raises(Corruption, match=f"byte offset {victim.start}"):
        WriteAheadLog(tmp_path).close()


SEALED_FIELDS = {**FIELDS, "length past the end": 6}


@pytest.mark.parametrize("position", ["middle record", "last record"])
@pytest.mark.parametrize("field", SEALED_FIELDS)
def test_damage_in_a_sealed_segment_fails_the_scan_and_is_repairable(
    tmp_path: Path, field: str, position: str
) -> None:
    files = build_log(tmp_path, 60, segment_size=400)
    assert len(files) >= 4
    sealed = files[1]
    records = layout(sealed)
    assert len(records) >= 3
    victim = records[1] if position == "middle record" else records[-1]
    flip(sealed, victim.start + SEALED_FIELDS[field])

    with WriteAheadLog(tmp_path, segment_bytes=400) as log:  # only the last segment is recovered
        with pytest.raises(Corruption) as raised:
            list(log.scan())
        assert sealed.name in str(raised.value)
        assert f"byte offset {victim.start}" in str(raised.value)
        assert list(log.scan(from_lsn=int(files[2].stem))) == [
            (lsn, payload_for(lsn)) for lsn in range(int(files[2].stem), 61)
        ]
    with pytest.raises(Corruption, match=f"byte offset {victim.start}"):
        list(read_log(tmp_path))

    report = check_log(tmp_path)
    assert not report.torn_tail
    assert (report.problem_segment, report.problem_offset) == (str(sealed), victim.start)
    assert report.last_lsn == victim.lsn - 1

    assert check_log(tmp_path, repair=True).repaired
    assert sorted(tmp_path.glob("*.wal")) == files[:2]  # later segments are gone
    with WriteAheadLog(tmp_path, segment_bytes=400) as log:
        assert list(log.scan()) == expected_records(victim.lsn - 1)
        assert log.append(b"after repair") == victim.lsn
    assert check_log(tmp_path).ok


# ---------------------------------------------------------------- (c) a missing segment


def test_a_missing_middle_segment_is_reported_as_a_gap(tmp_path: Path) -> None:
    files = build_log(tmp_path, 60, segment_size=400)
    assert len(files) >= 4
    files[1].unlink()
    after_gap = files[2]

    with WriteAheadLog(tmp_path, segment_bytes=400) as log:
        with pytest.raises(Corruption, match="missing") as raised:
            list(log.scan())
        assert after_gap.name in str(raised.value)
        assert f"LSN {int(after_gap.stem)}" in str(raised.value)
    with pytest.raises(Corruption, match="missing"):
        list(read_log(tmp_path))

    report = check_log(tmp_path)
    assert not report.ok and not report.torn_tail
    assert (report.problem_segment, report.problem_offset) == (str(after_gap), 0)
    assert report.records == len(layout(files[0]))

    assert check_log(tmp_path, repair=True).repaired
    with WriteAheadLog(tmp_path, segment_bytes=400) as log:
        assert list(log.scan()) == expected_records(int(files[1].stem) - 1)
        assert log.next_lsn == int(files[1].stem)


# ---------------------------------------------------------------- (d) fuzzing the decoder


def check_parse(data: bytes, offset: int, expect_lsn: int, limit: int) -> list[tuple[int, bytes]]:
    """Run _wal.parse and check it against the format; return its records."""
    records, end, status = _wal.parse(data, offset, expect_lsn, limit)
    assert status in STATUSES
    assert len(records) <= limit
    assert offset <= end <= len(data)
    position = offset
    for index, (lsn, payload) in enumerate(records):
        assert lsn == expect_lsn + index
        assert data[position : position + RECORD + len(payload)] == frame(lsn, payload)
        position += RECORD + len(payload)
    assert position == end
    if status == _wal.OK:
        assert len(records) == limit or end == len(data)
    else:
        assert end < len(data)  # a (bad) record starts there
    return records


def valid_at(data: bytes, offset: int, min_lsn: int) -> bool:
    """True when a whole valid record with LSN >= min_lsn starts at offset (oracle check)."""
    if offset + RECORD > len(data):
        return False
    (length,) = struct.unpack_from("<I", data, offset + 4)
    (lsn,) = struct.unpack_from("<Q", data, offset + 8)
    payload = data[offset + RECORD : offset + RECORD + length]
    return (
        lsn >= min_lsn
        and len(payload) == length
        and data[offset : offset + RECORD + length] == frame(lsn, payload)
    )


def check_find_record(data: bytes, start: int, min_lsn: int) -> int:
    found = _wal.find_record(data, start, min_lsn)
    stop = len(data) if found < 0 else found
    if found >= 0:
        assert start <= found <= len(data) - RECORD
        assert valid_at(data, found, min_lsn)
    assert not any(valid_at(data, offset, min_lsn) for offset in range(start, stop))
    return int(found)


class Damaged(NamedTuple):
    original: list[bytes]  # payloads of records first_lsn, first_lsn + 1, ...
    first_lsn: int
    data: bytes  # the framed records after damage
    intact: int  # records wholly before the first changed byte


MUTATIONS = st.sampled_from(["flip", "truncate", "overwrite", "insert", "append"])
ANY_FIRST_LSN = st.integers(1, 2**48)


@st.composite
def damaged_records(draw: st.DrawFn, first_lsns: st.SearchStrategy[int] = ANY_FIRST_LSN) -> Damaged:
    """Valid framed records, then one random kind of damage."""
    payloads = draw(st.lists(st.binary(max_size=48), max_size=6))
    first_lsn = draw(first_lsns)
    clean = b"".join(frame(first_lsn + i, p) for i, p in enumerate(payloads))
    kind = draw(MUTATIONS)
    where = draw(st.integers(0, len(clean)))
    noise = draw(st.binary(min_size=1, max_size=40))
    if kind == "flip" and clean:
        where = min(where, len(clean) - 1)
        data = clean[:where] + bytes([clean[where] ^ (noise[0] or 1)]) + clean[where + 1 :]
    elif kind == "truncate":
        data = clean[:where]
    elif kind == "overwrite":
        data = clean[:where] + noise + clean[where + len(noise) :]
    elif kind == "insert":
        data = clean[:where] + noise + clean[where:]
    else:
        data = clean + noise
    changed = next(
        (i for i, (a, b) in enumerate(zip(data, clean, strict=False)) if a != b),
        min(len(data), len(clean)),
    )
    ends, position = [], 0
    for p in payloads:
        position += RECORD + len(p)
        ends.append(position)
    intact = sum(1 for end in ends if end <= changed)
    return Damaged(payloads, first_lsn, data, intact)


FUZZ_SETTINGS = settings(
    max_examples=examples(300),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@FUZZ_SETTINGS
@given(
    data=st.binary(max_size=400),
    where=st.floats(0, 1),
    expect_lsn=st.integers(0, 2**64 - 1),
    limit=st.integers(0, 40),
)
def test_parse_of_random_bytes_returns_only_records_inside_the_buffer(
    data: bytes, where: float, expect_lsn: int, limit: int
) -> None:
    check_parse(data, int(where * len(data)), expect_lsn, limit)


@FUZZ_SETTINGS
@given(damaged=damaged_records(), limit=st.integers(1, 10))
def test_parse_of_damaged_records_returns_a_prefix_of_what_was_framed(
    damaged: Damaged, limit: int
) -> None:
    records = check_parse(damaged.data, 0, damaged.first_lsn, limit)
    framed = [(damaged.first_lsn + i, p) for i, p in enumerate(damaged.original)]
    assert records == framed[: len(records)]
    assert len(records) >= min(limit, damaged.intact)


@FUZZ_SETTINGS
@given(
    damaged=damaged_records(),
    random_bytes=st.binary(max_size=300),
    use_random=st.booleans(),
    where=st.floats(0, 1),
    lsn_shift=st.integers(-3, 3),
)
def test_find_record_returns_the_first_valid_record_at_or_after_start(
    damaged: Damaged, random_bytes: bytes, use_random: bool, where: float, lsn_shift: int
) -> None:
    data = random_bytes if use_random else damaged.data
    check_find_record(data, int(where * len(data)), max(0, damaged.first_lsn + lsn_shift))


def test_find_record_skips_damage_to_the_next_whole_record() -> None:
    data = bytearray(b"".join(frame(lsn, payload_for(lsn)) for lsn in range(5, 9)))
    second = RECORD + len(payload_for(5))
    data[3] ^= 0x40  # the first record's checksum
    assert check_find_record(bytes(data), 0, 5) == second
    assert check_find_record(bytes(data), 0, 7) == second + RECORD + len(payload_for(6))
    assert check_find_record(bytes(data), 0, 9) == -1


def test_find_record_from_beyond_the_buffer_finds_nothing() -> None:
    data = segment_bytes(1, [b"abc", b"defg"])
    assert _wal.find_record(data, len(data) + 1, 0) == -1
    assert _wal.find_record(data, 2**64 - 1, 0) == -1


_PARSE_WITH_HUGE_LIMIT = """
import sys
from trusswork.storage import _wal
data = bytes.fromhex(sys.argv[1])
records, end, status = _wal.parse(data, 32, 1, int(sys.argv[2]))
assert [lsn for lsn, _ in records] == list(range(1, 51)), records
blocks = [bytearray(64) for _ in range(100000)]  # heap damage shows up here
"""


def test_parse_with_a_huge_record_limit_does_not_crash_the_interpreter() -> None:
    data = segment_bytes(1, [b"q" * 40] * 50)
    done = subprocess.run(
        [sys.executable, "-c", _PARSE_WITH_HUGE_LIMIT, data.hex(), str(2**61)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"exit status {done.returncode}: {done.stderr[-2000:]}"


@st.composite
def segment_files(draw: st.DrawFn) -> tuple[bytes, list[bytes], int]:
    """Bytes for segment 1: damaged records behind a valid header, or any bytes at all.

    Returns (file bytes, payloads written, records wholly before the damage).
    """
    if draw(st.booleans()):
        return draw(st.binary(max_size=200)), [], 0
    damaged = draw(damaged_records(st.just(1)))
    return segment_header(1) + damaged.data, damaged.original, damaged.intact


@settings(
    max_examples=examples(150),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(segment=segment_files())
def test_random_segment_files_raise_corruption_or_yield_only_written_records(
    segment: tuple[bytes, list[bytes], int],
) -> None:
    content, payloads, intact = segment
    written = [(1 + i, p) for i, p in enumerate(payloads)]
    with tempfile.TemporaryDirectory() as temporary:
        directory = Path(temporary)
        (directory / "00000000000000000001.wal").write_bytes(content)
        try:
            read = list(read_log(directory))
        except Corruption:
            read = None
        if read is not None:
            assert read == written[: len(read)]
            assert len(read) >= intact
        try:
            log = WriteAheadLog(directory, fsync="never")
        except Corruption:
            return
        with log:
            recovered = list(log.scan())
            assert recovered == written[: len(recovered)]
            assert len(recovered) >= intact
            assert log.next_lsn == len(recovered) + 1
        assert check_log(directory).ok


# ---------------------------------------------------------------- (e) single-bit damage


@pytest.mark.parametrize("size", [0, 1, 8, 100])
def test_every_single_bit_flip_of_a_record_is_detected(size: int) -> None:
    rng = random.Random(size)
    payload = bytes(rng.randrange(256) for _ in range(size))
    before, victim, after = frame(6, b"before"), frame(7, payload), frame(8, b"after")
    assert _wal.parse(before + victim + after, 0, 6, 3)[0] == [
        (6, b"before"),
        (7, payload),
        (8, b"after"),
    ]
    for bit in range(len(victim) * 8):
        damaged = bytearray(victim)
        damaged[bit // 8] ^= 1 << (bit % 8)
        alone = _wal.parse(bytes(damaged), 0, 7, 1)
        assert alone[0] == [] and alone[1] == 0 and alone[2] != _wal.OK, f"bit {bit}"
        records, end, status = _wal.parse(before + bytes(damaged) + after, 0, 6, 3)
        assert records == [(6, b"before")], f"bit {bit}"
        assert (end, status != _wal.OK) == (len(before), True), f"bit {bit}"


def test_every_single_bit_flip_of_a_segment_header_is_detected() -> None:
    header = segment_header(12345)
    assert _wal.read_segment_header(header) == 12345
    assert _wal.segment_header(12345) == header
    for bit in range(HEADER * 8):
        damaged = bytearray(header)
        damaged[bit // 8] ^= 1 << (bit % 8)
        assert _wal.read_segment_header(bytes(damaged)) == -1, f"bit {bit}"
    for cut in range(HEADER):
        assert _wal.read_segment_header(header[:cut]) is None


# ---------------------------------------------------------------- damage in the last write


def test_a_hole_in_the_last_write_is_corruption_that_says_it_may_be_a_torn_write(
    tmp_path: Path,
) -> None:
    # One buffered write of records 1..9 (fsync="never", flushed once): power
    # loss may land its pages out of order, leaving a hole with whole records
    # after it -- or the bytes went bad after a sync. The log cannot tell, so
    # it refuses to open, and says that repairing loses only that write.
    with WriteAheadLog(tmp_path, fsync="never") as log:
        log.append_many([payload_for(lsn) for lsn in range(1, 10)])
    (segment,) = sorted(tmp_path.glob("*.wal"))
    records = layout(segment)
    data = bytearray(segment.read_bytes())
    hole = records[3]
    data[hole.start : hole.end] = bytes(hole.end - hole.start)
    segment.write_bytes(bytes(data))
    with pytest.raises(Corruption, match="may not have been synced"):
        WriteAheadLog(tmp_path)
    assert check_log(tmp_path, repair=True).repaired
    with WriteAheadLog(tmp_path, fsync="always") as log:
        assert list(log.scan()) == expected_records(3)


def test_damage_before_a_write_that_followed_a_sync_is_corruption(tmp_path: Path) -> None:
    # Records 1..5 were written and synced, then 6..9 in a later write: that
    # write's first record says everything before it was durable, so a bad
    # record 3 is damage, never a torn write.
    with WriteAheadLog(tmp_path, fsync="never") as log:
        log.append_many([payload_for(lsn) for lsn in range(1, 6)])
        log.flush(sync=True)
        log.append_many([payload_for(lsn) for lsn in range(6, 10)])
    (segment,) = sorted(tmp_path.glob("*.wal"))
    flip(segment, layout(segment)[2].start + RECORD + 1)
    with pytest.raises(Corruption, match=segment.name) as raised:
        WriteAheadLog(tmp_path)
    assert "may not have been synced" not in str(raised.value)
