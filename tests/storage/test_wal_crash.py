"""Crash consistency of the write-ahead log under SIGKILL.

A child process appends from several threads in "group" or "always" mode
and, after each append returns, writes the acknowledged LSN and a hash of
the payload to a side file (O_APPEND, one ``os.write`` per line): whatever
the side file holds was acknowledged before the kill. The parent kills the
child at a random moment (from a seeded generator), reopens the same
directory, checks that every acknowledged record is there with its exact
payload, that LSNs are contiguous, that nothing was invented and that
``check_log`` finds the log healthy, then starts the next child on the same
log. Segments are small, so kills also land in segment rotation.

60 rounds per mode by default (120 kills); ``TRUSSWORK_FUZZ=1`` runs 300.
The kill times come from a seeded generator: a fixed seed by default, a
fresh one under fuzzing, ``TRUSSWORK_WAL_CRASH_SEED`` to replay one. The
seed is in every assertion message. (Thread scheduling still varies, so a
replay kills at the same moments, not necessarily the same instructions.)
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
from pathlib import Path

import pytest

from helpers import FUZZ
from helpers.crash import Checkpoint, run_and_kill

ROUNDS = 300 if FUZZ else 60
THREADS = 4
SEGMENT_BYTES = 8192
MAX_KILL_AFTER = 0.35
#: Fixed for repeatable CI runs; a fuzzing run draws a new one each time.
DEFAULT_SEED = random.randrange(2**32) if FUZZ else 20240917


def payload(round_: int, thread: int, n: int) -> bytes:
    """The n-th payload of a thread in a round: its name, then filler of varying length."""
    name = b"r%d.t%d.n%d|" % (round_, thread, n)
    return name + bytes([n % 256]) * ((round_ * 31 + thread * 7 + n * 13) % 300)


def digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _append_until_killed(
    directory: str, side_file: str, fsync: str, round_: int, checkpoint: Checkpoint
) -> None:
    """Child: open the log and append from THREADS threads until SIGKILLed."""
    from trusswork.storage.wal import WriteAheadLog

    log = WriteAheadLog(directory, fsync=fsync, segment_bytes=SEGMENT_BYTES)  # type: ignore[arg-type]
    checkpoint("opened")
    side = os.open(side_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def acknowledge(lsn: int, data: bytes) -> None:
        os.write(side, f"{lsn} {digest(data)}\n".encode())

    def appender(thread: int) -> None:
        n = 0
        while True:
            if n % 5 == 4:
                batch = [payload(round_, thread, n + k) for k in range(3)]
                for lsn, data in zip(log.append_many(batch), batch, strict=True):
                    acknowledge(lsn, data)
                n += 3
            else:
                data = payload(round_, thread, n)
                acknowledge(log.append(data), data)
                n += 1

    workers = [threading.Thread(target=appender, args=(t,), daemon=True) for t in range(THREADS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def _acknowledged(side_file: Path, context: str) -> dict[int, str]:
    """LSN -> payload digest for every acknowledgement in the side file."""
    acknowledged: dict[int, str] = {}
    if not side_file.exists():
        return acknowledged
    for line in side_file.read_text().splitlines():
        lsn_text, _, hashed = line.partition(" ")
        lsn = int(lsn_text)
        earlier = acknowledged.setdefault(lsn, hashed)
        assert earlier == hashed, f"{context}: LSN {lsn} was acknowledged for two payloads"
    return acknowledged


def _is_generated(data: bytes, rounds: int) -> bool:
    """True when `data` is exactly a payload some child of this campaign made."""
    name, bar, _ = data.partition(b"|")
    if not bar or not name.startswith(b"r"):
        return False
    try:
        round_text, thread_text, n_text = name[1:].split(b".")
        round_, thread, n = int(round_text), int(thread_text[1:]), int(n_text[1:])
    except ValueError:
        return False
    return round_ < rounds and data == payload(round_, thread, n)


def _crash_campaign(tmp_path: Path, fsync: str) -> None:
    from trusswork.core.errors import Corruption
    from trusswork.storage.wal import WriteAheadLog, check_log

    seed = int(os.environ.get("TRUSSWORK_WAL_CRASH_SEED", DEFAULT_SEED))
    rng = random.Random(seed)
    directory, side_file = tmp_path / "log", tmp_path / "acknowledged"
    killed_while_appending = 0
    total_records = 0
    for round_ in range(ROUNDS):
        kill_after = rng.uniform(0.0, MAX_KILL_AFTER)
        context = (
            f"seed {seed} (TRUSSWORK_WAL_CRASH_SEED), fsync={fsync!r}, round {round_}, "
            f"killed after {kill_after:.3f} s"
        )
        result = run_and_kill(
            _append_until_killed,
            str(directory),
            str(side_file),
            fsync,
            round_,
            kill_after=kill_after,
            timeout=60,
        )
        assert result.killed, f"{context}: the child ended by itself ({result})"
        killed_while_appending += "opened" in result.checkpoints

        acknowledged = _acknowledged(side_file, context)
        try:
            log = WriteAheadLog(directory, fsync=fsync, segment_bytes=SEGMENT_BYTES)  # type: ignore[arg-type]
        except Corruption as exc:
            pytest.fail(f"{context}: reopening after the kill failed: {exc}")
        with log:
            records = list(log.scan())
            next_lsn = log.next_lsn
        lsns = [lsn for lsn, _ in records]
        assert lsns == list(range(1, len(records) + 1)), f"{context}: LSNs not contiguous"
        assert next_lsn == len(records) + 1, context
        stored = {lsn: digest(data) for lsn, data in records}
        lost = sorted(lsn for lsn, hashed in acknowledged.items() if stored.get(lsn) != hashed)
        assert not lost, f"{context}: acknowledged records lost or changed: {lost[:10]}"
        invented = [lsn for lsn, data in records if not _is_generated(data, round_ + 1)]
        assert not invented, f"{context}: records no child wrote: {invented[:10]}"
        report = check_log(directory)
        assert report.ok, f"{context}: check_log after reopen: {report}"
        assert report.records == len(records), context
        total_records = len(records)
    # The campaign must have exercised something: kills while appending, and a log
    # long enough to span several segments.
    assert killed_while_appending >= ROUNDS // 2, f"seed {seed}: most kills came before open"
    assert total_records > 0, f"seed {seed}: no record was ever appended"
    assert len(list(directory.glob("*.wal"))) > 1, f"seed {seed}: the log never rotated"


@pytest.mark.parametrize("fsync", ["group", "always"])
def test_sigkill_never_loses_an_acknowledged_record(tmp_path: Path, fsync: str) -> None:
    _crash_campaign(tmp_path, fsync)
