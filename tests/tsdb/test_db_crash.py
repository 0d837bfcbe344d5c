"""Crash consistency of the database under SIGKILL: every acknowledged sample survives.

A child process opens the database in ``fsync="group"`` mode with a short
block range and the background thread on (so kills also land in block cuts,
WAL truncation and compaction). Two threads (sharing group commits) each
append batches of their 10 series x 50 samples with
:meth:`TSDB.append_batch` and, after each call returns, write the thread and
call number to a side file (O_APPEND, one ``os.write``). The parent
SIGKILLs it, reopens the directory and checks that every acknowledged call
is there in full, that every sample present has the value the child wrote
for it (nothing invented or torn), then starts the next child on the same
directory. Kill times come from a seeded generator.
"""

from __future__ import annotations

import itertools
import os
import random
import threading
from pathlib import Path

import numpy as np
import pytest

from helpers import FUZZ
from helpers.crash import Checkpoint, run_and_kill

SERIES = 20
THREADS = 2
PER_CALL = 50
STEP_MS = 10
CALL_SPAN = PER_CALL * STEP_MS
ROUND_SPAN = 10**7
ROUNDS = 12 if FUZZ else 3
SEED = random.randrange(2**32) if FUZZ else 20261207


def thread_series(thread: int) -> range:
    """The series a thread writes."""
    share = SERIES // THREADS
    return range(thread * share, (thread + 1) * share)


def call_samples(round_: int, thread: int, call: int) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps (per series) and the series-major values of one call of a thread."""
    ts = round_ * ROUND_SPAN + call * CALL_SPAN + np.arange(PER_CALL, dtype=np.int64) * STEP_MS
    values = np.concatenate([ts + series * 0.25 for series in thread_series(thread)])
    return ts, values


def options() -> dict[str, object]:
    return {
        "fsync": "group",
        "block_range_ms": 10 * CALL_SPAN,
        "wal_segment_bytes": 1 << 16,
        "rollups": (),
    }


def _append_until_killed(path: str, side_file: str, round_: int, checkpoint: Checkpoint) -> None:
    """Child: append batches and acknowledge each after it returns, until killed."""
    from trusswork.tsdb._db import TSDB

    db = TSDB(path, background=True, background_interval=0.005, **options())  # type: ignore[arg-type]
    from trusswork.tsdb._head import OutOfOrderSample

    side = os.open(side_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    lock = threading.Lock()  # checkpoint() talks over one pipe
    calls = itertools.count()  # shared, so the threads' timestamps stay close
    failures: list[BaseException] = []
    failed = threading.Event()

    def appender(thread: int) -> None:
        names = thread_series(thread)
        refs = np.array([db.series_ref("load", {"s": str(s)}) for s in names], np.uint32)
        try:
            while True:
                call = next(calls)
                ts, values = call_samples(round_, thread, call)
                try:
                    db.append_batch(np.repeat(refs, PER_CALL), np.tile(ts, len(names)), values)
                except OutOfOrderSample:
                    continue  # a cut overtook this thread: not stored whole, not acknowledged
                os.write(side, f"{thread}:{call}\n".encode())
                with lock:
                    checkpoint("acked")
        except BaseException as exc:
            failures.append(exc)
            failed.set()

    for thread in range(THREADS):
        threading.Thread(target=appender, args=(thread,), daemon=True).start()
    failed.wait()
    raise failures[0]


def acknowledged(side_file: Path) -> list[tuple[int, int]]:
    """The (thread, call) pairs the child acknowledged."""
    if not side_file.exists():
        return []
    pairs = [line.split(":") for line in side_file.read_text().split()]
    return [(int(thread), int(call)) for thread, call in pairs]


def check(path: Path, acked: dict[int, list[tuple[int, int]]]) -> None:
    """Every acknowledged call is present in full; every present sample is one the child wrote."""
    from trusswork.tsdb._db import TSDB
    from trusswork.tsdb._series import Matcher

    with TSDB(path, background=False, **options()) as db:  # type: ignore[arg-type]
        found = {
            int(dict(s.labels)["s"]): s
            for s in db.select([Matcher("__name__", "=", "load")], 0, 1 << 62)
        }
        assert db.corrupt_blocks == []
    for series in range(SERIES):
        data = found.get(series)
        present = set() if data is None else set(data.ts.tolist())
        if data is not None:
            assert np.array_equal(data.values, data.ts + series * 0.25), "a value was changed"
        for round_, calls in acked.items():
            for thread, call in calls:
                if series not in thread_series(thread):
                    continue
                ts, _ = call_samples(round_, thread, call)
                missing = set(ts.tolist()) - present
                assert not missing, (
                    f"series {series}: acknowledged call {call} of round {round_} lost "
                    f"{len(missing)} samples (seed {SEED})"
                )


def test_acknowledged_samples_survive_random_kills(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    path = tmp_path / "db"
    acked: dict[int, list[tuple[int, int]]] = {}
    for round_ in range(ROUNDS):
        side = tmp_path / f"acked-{round_}"
        result = run_and_kill(
            _append_until_killed,
            str(path),
            str(side),
            round_,
            kill_after=rng.uniform(0.4, 1.2),
            timeout=60,
        )
        assert result.killed, f"round {round_}: the child was not killed (seed {SEED})"
        acked[round_] = acknowledged(side)
        check(path, acked)
    assert sum(len(calls) for calls in acked.values()) > 0, "no call was ever acknowledged"


@pytest.mark.parametrize("kill_at", ["acked#1", "acked#9"])
def test_kill_right_after_an_acknowledgement(tmp_path: Path, kill_at: str) -> None:
    path = tmp_path / "db"
    side = tmp_path / "acked"
    result = run_and_kill(
        _append_until_killed, str(path), str(side), 0, kill_at=kill_at, timeout=60
    )
    assert result.killed and result.killed_at == kill_at
    calls = acknowledged(side)
    assert len(calls) >= int(kill_at.split("#")[1])  # the other thread may have acked one more
    check(path, {0: calls})
