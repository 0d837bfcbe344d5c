"""Log sources: tail -F semantics, resume without loss or duplicates, crashes, stdin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import examples
from trusswork.core.errors import InvalidInput, Unavailable
from trusswork.logs._sources import FileTailer, TailBatch, TailPosition, read_stream


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as file:
        file.write(data)


def drain(tailer: FileTailer, **limits: int) -> list[TailBatch]:
    """Every batch the tailer has now, until it reports nothing new."""
    batches = []
    while (batch := tailer.read_batch(**limits)) is not None:
        batches.append(batch)
    return batches


def lines_of(batches: list[TailBatch]) -> list[bytes]:
    return [line for batch in batches for line in batch.lines]


def numbered(first: int, count: int) -> bytes:
    return b"".join(f"line {n:05d}\n".encode() for n in range(first, first + count))


def expected(first: int, count: int) -> list[bytes]:
    return numbered(first, count).splitlines()


# -- reading a growing file ---------------------------------------------------------


def test_appends_are_read_in_order_and_the_position_is_after_them(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    append(log, numbered(0, 3))
    with FileTailer(log) as tailer:
        first = tailer.read_batch()
        assert first is not None
        assert first.lines == expected(0, 3)
        assert tailer.read_batch() is None
        append(log, numbered(3, 2))
        second = tailer.read_batch()
    assert second is not None
    assert second.lines == expected(3, 2)
    info = log.stat()
    assert second.position.offset == info.st_size
    assert (second.position.dev, second.position.inode) == (info.st_dev, info.st_ino)
    assert second.position.path == str(log)
    assert not (second.rotated or second.truncated or second.lost_position or second.overlong)


def test_batches_respect_max_lines_and_max_bytes(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    append(log, numbered(0, 10))
    with FileTailer(log) as tailer:
        by_lines = tailer.read_batch(max_lines=4)
        by_bytes = tailer.read_batch(max_bytes=25)  # each line is 10 bytes
        rest = drain(tailer)
    assert by_lines is not None and by_bytes is not None
    assert by_lines.lines == expected(0, 4)
    assert by_bytes.lines == expected(4, 3)
    assert by_bytes.position.offset == 7 * 11
    assert lines_of(rest) == expected(7, 3)


def test_a_partial_line_waits_for_its_newline(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    append(log, b"first\nsec")
    with FileTailer(log) as tailer:
        batch = tailer.read_batch()
        assert batch is not None
        assert batch.lines == [b"first"]
        assert batch.position.offset == 6  # never inside a line
        assert tailer.read_batch() is None
        append(log, b"ond\nthi")
        batch = tailer.read_batch()
    assert batch is not None
    assert batch.lines == [b"second"]
    assert batch.position.offset == 13


def test_crlf_endings_lose_their_carriage_return_only_before_the_newline(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    append(log, b"a\r\nb\r\n\r\nc\rd\n\r\r\n")
    with FileTailer(log) as tailer:
        assert lines_of(drain(tailer)) == [b"a", b"b", b"", b"c\rd", b"\r"]


def test_garbage_bytes_pass_through_unchanged(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    garbage = bytes(range(256)) * 3 + b"\xff\xfe\x00\x00\xc3(\n\x00\n"
    append(log, garbage)
    with FileTailer(log) as tailer:
        got = lines_of(drain(tailer))
    model = [line.removesuffix(b"\r") for line in garbage.split(b"\n")[:-1]]
    assert got == model
    assert b"\x00" in got[-1]


def test_overlong_lines_are_cut_and_the_following_lines_kept(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    with FileTailer(log, max_line_bytes=10) as tailer:
        append(log, b"0123456789abcdef")  # overlong, no newline yet
        assert tailer.read_batch() is None
        append(log, b"ghij" * 5)
        assert tailer.read_batch() is None
        append(log, b"xyz\nshort\n0123456789\n0123456789\r\n01234567890\n")
        batches = drain(tailer, max_lines=2)
    assert lines_of(batches) == [
        b"0123456789",
        b"short",
        b"0123456789",
        b"0123456789",
        b"0123456789",
    ]
    assert sum(batch.overlong for batch in batches) == 2
    assert batches[-1].position.offset == log.stat().st_size


def test_a_position_inside_an_overlong_line_never_leaks(tmp_path: Path) -> None:
    """While an overlong line is skipped, a restart re-reads it from its start."""
    log = tmp_path / "app.log"
    append(log, b"ok\n" + b"x" * 50)
    with FileTailer(log, max_line_bytes=8) as tailer:
        batch = tailer.read_batch()
        assert batch is not None and batch.lines == [b"ok"]
        assert tailer.read_batch() is None
        saved = tailer.position
    append(log, b"y\nnext\n")
    assert saved is not None
    with FileTailer(log, position=saved, max_line_bytes=8) as tailer:
        resumed = drain(tailer)
    assert lines_of(resumed) == [b"x" * 8, b"next"]


def test_start_at_end_skips_old_lines_but_reads_a_line_being_written(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    append(log, numbered(0, 5) + b"half")
    with FileTailer(log, start="end") as tailer:
        assert tailer.read_batch() is None
        append(log, b" done\n" + numbered(5, 1))
        assert lines_of(drain(tailer)) == [b"half done", *expected(5, 1)]


def test_a_missing_file_is_waited_for(tmp_path: Path) -> None:
    log = tmp_path / "later.log"
    with FileTailer(log, start="end") as tailer:
        assert tailer.read_batch() is None
        assert tailer.position is None
        append(log, numbered(0, 2))
        # a file that appears is new: read from its beginning, even with start="end"
        assert lines_of(drain(tailer)) == expected(0, 2)


# -- rotation and truncation --------------------------------------------------------


def test_rotation_finishes_the_old_file_including_writes_after_the_rename(
    tmp_path: Path,
) -> None:
    log = tmp_path / "app.log"
    writer = open(log, "ab", buffering=0)  # noqa: SIM115 - the writer outlives the rename
    writer.write(numbered(0, 2))
    with FileTailer(log) as tailer:
        assert lines_of(drain(tailer)) == expected(0, 2)
        writer.write(numbered(2, 1))
        os.rename(log, tmp_path / "app.log.1")
        writer.write(numbered(3, 1))
        # between the rename and the new file: old lines keep coming, no error
        middle = drain(tailer)
        assert lines_of(middle) == expected(2, 2)
        assert not any(batch.rotated for batch in middle)
        writer.write(numbered(4, 1) + b"unterminated")
        writer.close()
        append(log, numbered(5, 2))
        batches = drain(tailer)
    assert lines_of(batches) == [*expected(4, 1), b"unterminated", *expected(5, 2)]
    assert any(batch.rotated for batch in batches)
    info = log.stat()
    assert (batches[-1].position.inode, batches[-1].position.offset) == (
        info.st_ino,
        info.st_size,
    )


def test_rotation_to_an_empty_file_reports_the_new_position(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    append(log, numbered(0, 1))
    with FileTailer(log) as tailer:
        drain(tailer)
        os.rename(log, tmp_path / "app.log-20261207")
        log.touch()
        batch = tailer.read_batch()
        assert tailer.read_batch() is None
    assert batch is not None
    assert batch.lines == []
    assert batch.rotated
    assert (batch.position.inode, batch.position.offset) == (log.stat().st_ino, 0)


def test_create_after_delete_switches_to_the_new_file(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    append(log, numbered(0, 2))
    with FileTailer(log) as tailer:
        assert lines_of(drain(tailer)) == expected(0, 2)
        log.unlink()
        assert tailer.read_batch() is None  # missing: keep waiting
        append(log, numbered(2, 2))
        batches = drain(tailer)
    assert lines_of(batches) == expected(2, 2)
    assert batches[0].rotated


def test_copytruncate_restarts_at_the_beginning(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    append(log, numbered(0, 3))
    with FileTailer(log) as tailer:
        drain(tailer)
        os.truncate(log, 0)
        batch = tailer.read_batch()
        assert batch is not None
        assert batch.truncated and batch.lines == []
        assert batch.position.offset == 0
        append(log, numbered(3, 1))
        assert lines_of(drain(tailer)) == expected(3, 1)


def test_truncate_and_rewrite_past_the_old_size_is_seen_by_its_first_bytes(
    tmp_path: Path,
) -> None:
    log = tmp_path / "app.log"
    append(log, b"old 1\nold 2\n")
    with FileTailer(log) as tailer:
        drain(tailer)
        with open(log, "wb") as file:  # same inode, longer content
            file.write(b"new 1\nnew 2\nnew 3\n")
        batches = drain(tailer)
    assert batches[0].truncated
    assert lines_of(batches) == [b"new 1", b"new 2", b"new 3"]


# -- resuming from a saved position -------------------------------------------------


def test_resume_after_restarts_reads_every_line_exactly_once(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    got: list[bytes] = []
    position = None
    written = 0
    for round_ in range(6):
        append(log, numbered(written, 7) + b"partial " * (round_ % 2))
        written += 7
        if round_ % 2:
            append(log, b"\n")
            written += 1
        with FileTailer(log, position=position) as tailer:
            for _ in range(round_ + 1):  # stop at a different point each time
                batch = tailer.read_batch(max_lines=3)
                if batch is not None:
                    got.extend(batch.lines)
            position = tailer.position
    with FileTailer(log, position=position) as tailer:
        got.extend(lines_of(drain(tailer)))
    assert got == log.read_bytes().splitlines()
    assert len(got) == written


@pytest.mark.parametrize("rotated_name", ["app.log.1", "app.log-20261207", "app.log.old"])
def test_resume_finishes_a_file_rotated_while_stopped(tmp_path: Path, rotated_name: str) -> None:
    log = tmp_path / "app.log"
    append(log, numbered(0, 6) + b"tail without newline")
    with FileTailer(log) as tailer:
        batch = tailer.read_batch(max_lines=2)
        assert batch is not None and batch.lines == expected(0, 2)
        saved = batch.position
    os.rename(log, tmp_path / rotated_name)
    (tmp_path / "app.log.2").write_bytes(b"an unrelated older file\n")
    append(log, numbered(6, 3))
    stored = TailPosition.from_dict(json.loads(json.dumps(saved.to_dict())))
    with FileTailer(log, position=stored) as tailer:
        batches = drain(tailer)
    assert lines_of(batches) == [*expected(2, 4), b"tail without newline", *expected(6, 3)]
    assert any(batch.rotated for batch in batches)
    assert not any(batch.lost_position for batch in batches)


def test_resume_reports_a_lost_position_when_the_rotated_file_is_gone(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    append(log, numbered(0, 4))
    with FileTailer(log) as tailer:
        saved = tailer.read_batch(max_lines=1)
    assert saved is not None
    os.rename(log, tmp_path / "app.log.1")
    (tmp_path / "app.log.1").unlink()
    append(log, numbered(4, 2))
    with FileTailer(log, position=saved.position) as tailer:
        batches = drain(tailer)
    assert batches[0].lost_position
    assert not any(batch.lost_position for batch in batches[1:])
    assert lines_of(batches) == expected(4, 2)


def test_resume_does_not_trust_a_rewritten_file_with_the_same_inode(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    append(log, b"first file, line 1\nfirst file, line 2\n")
    with FileTailer(log) as tailer:
        saved = tailer.read_batch(max_lines=1)
    assert saved is not None
    with open(log, "wb") as file:  # same inode, longer, different first bytes
        file.write(b"second file, line 1\nsecond file, line 2\n")
    with FileTailer(log, position=saved.position) as tailer:
        batches = drain(tailer)
    assert batches[0].lost_position
    assert lines_of(batches) == [b"second file, line 1", b"second file, line 2"]


# -- errors and the position format -------------------------------------------------


def test_a_directory_or_a_fifo_is_refused_with_the_path(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="directory") as info:
        FileTailer(tmp_path)
    assert str(tmp_path) in str(info.value)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(InvalidInput, match="read_stream"):
        FileTailer(fifo)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_permission_denied_is_unavailable_with_the_path(tmp_path: Path) -> None:
    log = tmp_path / "secret.log"
    log.write_bytes(b"x\n")
    log.chmod(0)
    with pytest.raises(Unavailable, match="permission denied") as info:
        FileTailer(log)
    assert str(log) in str(info.value)


def test_a_position_for_another_path_is_refused(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    append(log, b"x\n")
    with FileTailer(log) as tailer:
        position = tailer.position
    assert position is not None
    with pytest.raises(InvalidInput, match=r"b\.log"):
        FileTailer(tmp_path / "b.log", position=position)


def test_position_round_trips_through_json(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    append(log, b"x\n")
    with FileTailer(log) as tailer:
        batch = tailer.read_batch()
    assert batch is not None
    text = json.dumps(batch.position.to_dict())
    assert TailPosition.from_dict(json.loads(text)) == batch.position


@pytest.mark.parametrize(
    "change",
    [
        {"offset": -1},
        {"offset": "12"},
        {"inode": True},
        {"fingerprint": "xyz"},
        {"path": ""},
        {"extra": 1},
    ],
)
def test_from_dict_refuses_bad_input(change: dict[str, object]) -> None:
    good = {"path": "/var/log/a.log", "dev": 1, "inode": 2, "offset": 3, "fingerprint": "0" * 32}
    assert TailPosition.from_dict(good).offset == 3
    with pytest.raises(InvalidInput):
        TailPosition.from_dict({**good, **change})
    with pytest.raises(InvalidInput):
        TailPosition.from_dict({k: v for k, v in good.items() if k != "dev"})
    with pytest.raises(InvalidInput):
        TailPosition.from_dict(["not", "a", "mapping"])  # type: ignore[arg-type]


def test_a_closed_tailer_refuses_to_read(tmp_path: Path) -> None:
    tailer = FileTailer(tmp_path / "a.log")
    tailer.close()
    tailer.close()
    with pytest.raises(InvalidInput, match="closed"):
        tailer.read_batch()


# -- follow ------------------------------------------------------------------------


def test_follow_yields_lines_written_by_another_thread_until_stopped(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    stop = threading.Event()
    got: list[bytes] = []

    def write() -> None:
        for n in range(20):
            append(log, numbered(n, 1))
            time.sleep(0.002)

    writer = threading.Thread(target=write)
    with FileTailer(log, poll_interval=0.005) as tailer:
        writer.start()
        for batch in tailer.follow(stop, timeout=10):
            got.extend(batch.lines)
            if len(got) >= 20:
                stop.set()
    writer.join()
    assert got == expected(0, 20)


def test_follow_returns_after_the_idle_timeout(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    append(log, numbered(0, 3))
    with FileTailer(log, poll_interval=0.01) as tailer:
        assert lines_of(list(tailer.follow(timeout=0.05))) == expected(0, 3)


# -- read_stream --------------------------------------------------------------------

PRODUCER = """
import select, sys
out = sys.stdout.buffer
out.write(b"a\\r\\nb\\n"); out.flush()
# wait for the reader's go; without it, write a line that must not be in the first batch
ready, _, _ = select.select([sys.stdin], [], [], 10)
if not ready:
    out.write(b"late\\n")
out.write(b"c\\n\\x00\\xff garbage\\nlast without newline"); out.flush()
"""


def test_read_stream_hands_out_lines_as_they_arrive() -> None:
    producer = subprocess.Popen(
        [sys.executable, "-c", PRODUCER], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert producer.stdin is not None and producer.stdout is not None
    with producer:
        batches = read_stream(producer.stdout)
        assert next(batches) == [b"a", b"b"]
        producer.stdin.write(b"go\n")
        producer.stdin.close()
        rest = [line for batch in batches for line in batch]
    assert rest == [b"c", b"\x00\xff garbage", b"last without newline"]


def test_read_stream_batches_and_cuts_like_the_tailer() -> None:
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"".join(b"%d\n" % n for n in range(10)) + b"y" * 40 + b"\nz")
    os.close(write_fd)
    with open(read_fd, "rb") as stream:
        batches = list(read_stream(stream, max_lines=4, max_line_bytes=16))
    assert len(batches[0]) == 4  # everything had arrived: the first batch is full
    assert all(1 <= len(batch) <= 4 for batch in batches)
    assert [line for batch in batches for line in batch] == [
        *(b"%d" % n for n in range(10)),
        b"y" * 16,
        b"z",
    ]


# -- a killed reader and a rotating writer, in real processes --------------------

WRITER = """
import os, sys
path, rounds, per_round = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
n = 0
out = open(path, "ab", buffering=0)
for round_ in range(rounds):
    for i in range(per_round):
        line = f"{n:06d} {'x' * (n % 37)}\\n".encode()
        cut = n % len(line)
        out.write(line[:cut])  # two writes: the reader sees partial lines
        out.write(line[cut:])
        n += 1
        if i == per_round // 2 and round_ < rounds - 1:
            print("half", flush=True)
            sys.stdin.readline()
            os.rename(path, f"{path}.{round_ + 1}")  # the rest goes to the renamed file
    if round_ < rounds - 1:
        out.close()
        out = open(path, "ab", buffering=0)
        print("rotated", flush=True)
        sys.stdin.readline()
"""

READER = """
import json, os, sys
from trusswork.logs._sources import FileTailer, TailPosition
path, output = sys.argv[1], sys.argv[2]
position = TailPosition.from_dict(json.loads(sys.argv[3])) if len(sys.argv) > 3 else None
fd = os.open(output, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
with FileTailer(path, position=position, poll_interval=0.005) as tailer:
    print("ready", flush=True)
    for batch in tailer.follow(max_lines=37):
        record = {"lines": [line.decode() for line in batch.lines],
                  "position": batch.position.to_dict()}
        os.write(fd, (json.dumps(record) + "\\n").encode())
"""


def records(output: Path) -> list[dict[str, object]]:
    """The complete records of a reader's output; a record cut by SIGKILL is not durable."""
    if not output.exists():
        return []
    *complete, _cut = output.read_bytes().split(b"\n")
    return [json.loads(record) for record in complete]


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def test_a_killed_reader_resumes_and_every_line_is_read_exactly_once(tmp_path: Path) -> None:
    rounds, per_round, kill_round = 5, 300, 2
    log = tmp_path / "app.log"
    log.touch()
    (tmp_path / "reader.py").write_text(READER)
    outputs = [tmp_path / "run1.jsonl", tmp_path / "run2.jsonl"]
    processes: list[subprocess.Popen[bytes]] = []

    def start_reader(output: Path, *position: str) -> subprocess.Popen[bytes]:
        script = str(tmp_path / "reader.py")
        command = [sys.executable, script, str(log), str(output), *position]
        started = subprocess.Popen(command, stdout=subprocess.PIPE)
        assert started.stdout is not None
        assert started.stdout.readline() == b"ready\n"  # the file is open: the writer may go
        processes.append(started)
        return started

    def stored() -> list[dict[str, object]]:
        return [record for output in outputs for record in records(output)]

    def read_lines() -> list[str]:
        return [line for record in stored() for line in record["lines"]]  # type: ignore[attr-defined]

    def switched_to_new_file() -> bool:
        saved = stored()
        return bool(saved) and saved[-1]["position"]["inode"] == log.stat().st_ino  # type: ignore[index]

    reader = start_reader(outputs[0])
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(log), str(rounds), str(per_round)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    processes.append(writer)
    assert writer.stdin is not None and writer.stdout is not None

    def go() -> None:
        assert writer.stdin is not None
        writer.stdin.write(b"go\n")
        writer.stdin.flush()

    try:
        for round_ in range(rounds - 1):
            assert writer.stdout.readline() == b"half\n"
            if round_ == kill_round:
                # Killed inside the first half; then, while it is down, the file
                # is renamed, written to and replaced.
                wait_for(lambda: len(read_lines()) > kill_round * per_round, "a line of the round")
                reader.kill()
                reader.wait()
            go()
            assert writer.stdout.readline() == b"rotated\n"
            if round_ == kill_round:
                last = records(outputs[0])[-1]["position"]
                assert last["inode"] != log.stat().st_ino  # type: ignore[index]
                reader = start_reader(outputs[1], json.dumps(last))
            # Next rotation only once the reader is on the new file (no double rotation).
            wait_for(switched_to_new_file, f"the reader to switch files in round {round_}")
            go()
        assert writer.wait(timeout=20) == 0
        total = rounds * per_round
        wait_for(lambda: len(read_lines()) >= total, "the reader to read every line")
    finally:
        for process in processes:
            process.kill()
            process.wait()
            for pipe in (process.stdin, process.stdout):
                if pipe is not None:
                    pipe.close()
    numbers = [int(line.split()[0]) for line in read_lines()]
    assert numbers == list(range(total))  # each once, in order, across both runs
    assert all(line == f"{n:06d} {'x' * (n % 37)}" for n, line in enumerate(read_lines()))
    assert records(outputs[0]) and records(outputs[1])


# -- property: random appends, rotations, truncations and restarts against a model --

LIMIT = 6
chunks = st.text(alphabet="ab\n\r\x00\xff", max_size=20).map(lambda text: text.encode("latin-1"))
operations = st.lists(
    st.one_of(
        st.tuples(st.just("append"), chunks),
        st.tuples(st.just("read"), st.integers(1, 4), st.integers(1, 12)),
        st.tuples(st.just("rotate"), chunks, chunks, st.booleans(), st.sampled_from(".-")),
        st.tuples(st.just("truncate")),
        st.tuples(st.just("restart")),
    ),
    max_size=25,
)


def model_lines(content: bytes, *, finished: bool) -> tuple[list[bytes], int]:
    """Lines a reader must see in ``content``, and how many are cut at LIMIT."""
    *complete, tail = content.split(b"\n")
    raw = [line.removesuffix(b"\r") for line in complete]
    if finished and tail:
        raw.append(tail)
    return [line[:LIMIT] for line in raw], sum(len(line) > LIMIT for line in raw)


@settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(operations)
def test_random_operations_match_the_model(ops: list[tuple[object, ...]]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        log = Path(directory) / "app.log"
        log.touch()
        want: list[bytes] = []
        want_overlong = 0
        current = b""  # what the file at the path holds
        got: list[bytes] = []
        got_overlong = rotations = 0
        tailer = FileTailer(log, max_line_bytes=LIMIT)

        def collect(batches: list[TailBatch]) -> None:
            nonlocal got_overlong, rotations
            for batch in batches:
                got.extend(batch.lines)
                got_overlong += batch.overlong
                rotations += batch.rotated

        def restart() -> FileTailer:
            tailer.close()
            return FileTailer(log, position=tailer.position, max_line_bytes=LIMIT)

        try:
            for number, (kind, *args) in enumerate(ops):
                if kind == "append":
                    (data,) = args
                    append(log, data)  # type: ignore[arg-type]
                    current += data  # type: ignore[operator]
                elif kind == "read":
                    max_lines, max_bytes = args
                    batch = tailer.read_batch(max_lines=max_lines, max_bytes=max_bytes)  # type: ignore[arg-type]
                    collect([batch] if batch else [])
                elif kind == "restart":
                    tailer = restart()
                elif kind == "rotate":
                    old_data, new_data, restart_mid, separator = args
                    writer = open(log, "ab")  # noqa: SIM115
                    os.rename(log, f"{log}{separator}{number}")
                    writer.write(old_data)  # type: ignore[arg-type]
                    writer.close()
                    if restart_mid:
                        tailer = restart()
                    lines, cut = model_lines(current + old_data, finished=True)  # type: ignore[operator]
                    want.extend(lines)
                    want_overlong += cut
                    append(log, new_data)  # type: ignore[arg-type]
                    current = new_data  # type: ignore[assignment]
                    collect(drain(tailer, max_lines=3))
                else:  # truncate: what was written is read first (it would be lost otherwise)
                    collect(drain(tailer, max_lines=3))
                    lines, cut = model_lines(current, finished=False)
                    want.extend(lines)
                    want_overlong += cut
                    os.truncate(log, 0)
                    current = b""
                    collect([batch] if (batch := tailer.read_batch()) else [])
            collect(drain(tailer, max_lines=3))
            position = tailer.position
        finally:
            tailer.close()
        lines, cut = model_lines(current, finished=False)
        assert got == want + lines
        assert got_overlong == want_overlong + cut
        assert rotations == sum(op[0] == "rotate" for op in ops)
        assert position is not None
        assert position.inode == log.stat().st_ino
        assert position.offset == current.rfind(b"\n") + 1
