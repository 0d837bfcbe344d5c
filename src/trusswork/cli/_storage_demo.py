"""Demo section for the write-ahead log: throughput, a real crash, damage detection.

Three checked experiments, each under ``<out>/storage``:

1. Throughput: 8 threads append fixed-size records with each ``fsync`` mode;
   every record must read back once, with the LSN its ``append`` returned.
2. Crash: a child process appends with ``fsync="group"`` from 4 threads and
   prints each acknowledged LSN; it is SIGKILLed mid-stream and the log is
   reopened. Every acknowledged record must read back with its payload
   ("acknowledged records lost: 0"); the section fails otherwise.
3. Damage: one byte in the middle of a copy of the log is flipped;
   :func:`~trusswork.storage.check_log` must name the segment and offset,
   opening must refuse it, and ``repair`` must keep the records before it.

The child dies with this process (``PR_SET_PDEATHSIG``), stops by itself
after :data:`WRITER_MAX_SECONDS`, and is killed and reaped in a ``finally``:
the section never leaves a process behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from trusswork.cli._demo import DemoContext, Plot, SectionResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from trusswork.storage import Recovery
    from trusswork.storage.wal import FsyncMode

THREADS = 8
PAYLOAD_BYTES = 256
WRITER_THREADS = 4
#: A crash writer that is somehow never killed stops by itself after this.
WRITER_MAX_SECONDS = 30.0
#: How long to wait for the crash writer to acknowledge its first record.
WRITER_START_TIMEOUT = 20.0
_PR_SET_PDEATHSIG = 1
#: Sizes from the on-disk format (csrc/wal/wal.h), to aim the flipped byte at a payload.
SEGMENT_HEADER = 32
RECORD_HEADER = 20


def _payload(thread: int, seq: int) -> bytes:
    """A fixed-size payload that names its writer, so a read-back can be checked."""
    return f"{thread}:{seq}:".encode().ljust(PAYLOAD_BYTES, b".")


# ---------------------------------------------------------------- throughput


def _append_from_threads(path: Path, mode: FsyncMode, records: int) -> float:
    """Append ``records`` from THREADS threads; check the log; return appends/s."""
    from trusswork.storage import WriteAheadLog

    per_thread = records // THREADS
    lsns: list[list[int]] = [[] for _ in range(THREADS)]
    errors: list[BaseException] = []
    with WriteAheadLog(path, fsync=mode) as log:
        start = threading.Barrier(THREADS + 1)

        def work(thread: int) -> None:
            try:
                start.wait()
                mine = lsns[thread]
                for seq in range(per_thread):
                    mine.append(log.append(_payload(thread, seq)))
            except BaseException as error:  # re-raised in the caller's thread
                errors.append(error)

        workers = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
        for worker in workers:
            worker.start()
        start.wait()
        began = time.perf_counter()
        for worker in workers:
            worker.join()
        seconds = time.perf_counter() - began
        if errors:
            raise errors[0]
        stored = dict(log.scan())
    total = per_thread * THREADS
    if sorted(lsn for mine in lsns for lsn in mine) != list(range(1, total + 1)):
        raise AssertionError(f"fsync={mode}: append did not return LSNs 1..{total}, once each")
    for thread, mine in enumerate(lsns):
        for seq, lsn in enumerate(mine):
            if stored.get(lsn) != _payload(thread, seq):
                raise AssertionError(f"fsync={mode}: record {lsn} did not read back as appended")
    return total / seconds


# ---------------------------------------------------------------- crash


def _die_with_parent(parent: int) -> None:
    import ctypes

    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(70)


def writer_main(path: str, parent: int) -> None:
    """The crash writer (runs in a child process): append for ever, print each ack.

    Each line ``lsn thread seq`` is printed only after ``append`` returned,
    that is, once the record is durable; the parent kills this process.
    """
    _die_with_parent(parent)
    from trusswork.storage import WriteAheadLog

    log = WriteAheadLog(path, fsync="group")
    lock = threading.Lock()
    deadline = time.monotonic() + WRITER_MAX_SECONDS

    def work(thread: int) -> None:
        seq = 0
        while time.monotonic() < deadline:
            lsn = log.append(_payload(thread, seq))
            with lock:
                sys.stdout.write(f"{lsn} {thread} {seq}\n")
                sys.stdout.flush()
            seq += 1

    workers = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(WRITER_THREADS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    os._exit(3)  # not killed in time: the parent reports it


@dataclass(frozen=True)
class CrashOutcome:
    acknowledged: int
    recovered: int
    lost: int
    recovery: Recovery


def _read_acks(stream: IO[bytes], acks: list[tuple[int, int, int]], first: threading.Event) -> None:
    """Collect ``lsn thread seq`` lines until the child's stdout closes."""
    for line in stream:
        if not line.endswith(b"\n"):
            break  # cut off by the kill: not a whole acknowledgement
        lsn, thread, seq = (int(field) for field in line.split())
        acks.append((lsn, thread, seq))
        first.set()
    first.set()


def _crash(path: Path, run_seconds: float) -> CrashOutcome:
    """Run the writer, SIGKILL it after ``run_seconds`` of acks, reopen and compare."""
    from trusswork.storage import WriteAheadLog

    command = [
        sys.executable,
        "-c",
        "import sys; from trusswork.cli._storage_demo import writer_main; "
        "writer_main(sys.argv[1], int(sys.argv[2]))",
        str(path),
        str(os.getpid()),
    ]
    acks: list[tuple[int, int, int]] = []
    first = threading.Event()
    errors = path.parent / f"{path.name}-writer.stderr"
    with open(errors, "wb") as stderr:
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr)
    try:
        assert child.stdout is not None
        reader = threading.Thread(target=_read_acks, args=(child.stdout, acks, first), daemon=True)
        reader.start()
        if not first.wait(WRITER_START_TIMEOUT) or not acks:
            raise RuntimeError(
                f"the crash writer acknowledged nothing within {WRITER_START_TIMEOUT:.0f} s "
                f"(exit status {child.poll()}); its stderr: {_tail(errors)}"
            )
        time.sleep(run_seconds)
        if child.poll() is not None:
            raise RuntimeError(
                f"the crash writer exited by itself (status {child.returncode}) before it was "
                f"killed; its stderr: {_tail(errors)}"
            )
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        reader.join(timeout=10)  # the pipe may still hold acks sent just before the kill
        if reader.is_alive():
            raise RuntimeError("the crash writer's output did not end after it was killed")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()
    if child.returncode != -signal.SIGKILL:
        raise RuntimeError(f"the crash writer ended with status {child.returncode}, not SIGKILL")
    errors.unlink()
    with WriteAheadLog(path, fsync="group") as log:
        recovery = log.recovery
        stored = dict(log.scan())
    lost = sum(1 for lsn, thread, seq in acks if stored.get(lsn) != _payload(thread, seq))
    if lost:
        raise AssertionError(f"{lost} of {len(acks)} acknowledged records were lost in the crash")
    if sorted(stored) != list(range(1, len(stored) + 1)):
        raise AssertionError("the recovered log does not hold LSNs 1..n without gaps")
    return CrashOutcome(len(acks), len(stored), lost, recovery)


def _tail(path: Path) -> str:
    text = path.read_text(errors="replace").strip() if path.exists() else ""
    return text.splitlines()[-1] if text else "(empty)"


# ---------------------------------------------------------------- damage


def _damage(source: Path, target: Path, records: int) -> list[tuple[str, str]]:
    """Flip a byte mid-log in a copy of ``source``; check it is found, refused, repaired."""
    from trusswork.core.errors import Corruption
    from trusswork.storage import WriteAheadLog, check_log

    shutil.copytree(source, target)
    segments = sorted(target.glob("*.wal"))
    if len(segments) != 1:
        raise AssertionError(f"expected one segment in {target}, found {len(segments)}")
    segment = segments[0]
    expected_size = SEGMENT_HEADER + records * (RECORD_HEADER + PAYLOAD_BYTES)
    if segment.stat().st_size != expected_size:
        raise AssertionError(f"{segment} is not laid out as csrc/wal/wal.h describes")
    victim = records // 2  # records are fixed-size: the middle one starts here
    record_start = SEGMENT_HEADER + victim * (RECORD_HEADER + PAYLOAD_BYTES)
    with open(segment, "r+b") as file:
        file.seek(record_start + RECORD_HEADER + PAYLOAD_BYTES // 2)
        byte = file.read(1)
        file.seek(-1, os.SEEK_CUR)
        file.write(bytes([byte[0] ^ 0xFF]))
    report = check_log(target)
    found = (
        report.problem is not None
        and not report.torn_tail
        and report.problem_segment == str(segment)
        and report.problem_offset == record_start
    )
    if not found:
        raise AssertionError(
            f"check_log did not report the flipped byte in {segment.name} at record offset "
            f"{record_start}: {report}"
        )
    try:
        WriteAheadLog(target).close()
    except Corruption:
        pass
    else:
        raise AssertionError("the damaged log opened without raising Corruption")
    check_log(target, repair=True)
    with WriteAheadLog(target) as log:
        kept = sum(1 for _ in log.scan())
    if kept != victim:
        raise AssertionError(f"repair kept {kept} records, not the {victim} before the damage")
    return [
        ("damage detected", f"yes: {segment.name} at byte offset {record_start:,}"),
        ("opening the damaged log", "refused (Corruption)"),
        ("kept by check_log(repair=True)", f"{kept:,} of {records:,} records"),
    ]


# ---------------------------------------------------------------- the section


def _rate(value: float) -> str:
    return f"{value / 1e6:.2f} M/s" if value >= 1e6 else f"{value / 1e3:.1f} k/s"


def _modes_figure(rates: dict[str, float]) -> Figure:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 2.8), layout="constrained")
    ax = figure.subplots()
    names = list(rates)[::-1]
    values = [rates[name] for name in names]
    colors = ["#0969da" if name == "group" else "#8c959f" for name in names]
    bars = ax.barh([f"fsync={name}" for name in names], values, color=colors)
    ax.bar_label(bars, labels=[_rate(value) for value in values], padding=3, fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel(f"appends per second, {THREADS} threads, {PAYLOAD_BYTES} B records (log scale)")
    ax.margins(x=0.25)
    return figure


def demo(ctx: DemoContext) -> SectionResult:
    """Measure and check the write-ahead log; see the module docstring."""
    base = ctx.out_dir / "storage"
    if base.exists():
        shutil.rmtree(base)  # ours, from an earlier run into the same directory
    base.mkdir(parents=True)
    records = 2_000 if ctx.quick else 20_000
    counts: dict[FsyncMode, int] = {
        "never": records,
        "interval": records,
        "group": records,
        "always": records // 10,
    }
    rates: dict[str, float] = {}
    for mode in ctx.track(list(counts), "storage: appends by fsync mode"):
        rates[mode] = _append_from_threads(base / f"appends-{mode}", mode, counts[mode])
    group_rate = rates["group"]
    rows = [
        (
            f"appends, fsync=group, {THREADS} threads, {records:,} x {PAYLOAD_BYTES} B",
            f"{group_rate:,.0f} appends/s ({group_rate * PAYLOAD_BYTES / 1e6:.1f} MB/s)",
        ),
        *(
            (f"appends, fsync={mode}, {THREADS} threads", f"{rates[mode]:,.0f} appends/s")
            for mode in counts
            if mode != "group"
        ),
    ]
    for _ in ctx.track(range(1), "storage: SIGKILL a writer, reopen"):
        crash = _crash(base / "crashed", run_seconds=0.2 if ctx.quick else 0.8)
    recovery = crash.recovery
    torn = (
        f"{recovery.truncated_bytes:,} B at byte offset {recovery.truncated_offset:,}"
        if recovery.truncated_segment is not None
        else "0 B (the tail was whole)"
    )
    rows += [
        ("records acknowledged by the SIGKILLed writer", f"{crash.acknowledged:,}"),
        ("records recovered on reopen", f"{crash.recovered:,}"),
        ("acknowledged records lost", f"{crash.lost}"),
        ("torn bytes truncated on reopen", torn),
    ]
    rows += _damage(base / "appends-group", base / "damaged", records)
    for mode in counts:
        shutil.rmtree(base / f"appends-{mode}")
    return SectionResult(
        rows=rows,
        plots=[Plot("Write-ahead log appends per second by fsync mode", _modes_figure(rates))],
        notes=[
            "group and always return only after fdatasync; interval and never return once "
            "the record is in memory (interval syncs every 50 ms, never only on close).",
            f"fsync=always appended {counts['always']:,} records, the others {records:,}.",
            f"The crash writer appended from {WRITER_THREADS} threads with fsync=group and "
            "printed each LSN after append returned; the log was reopened after SIGKILL and "
            "every printed LSN read back with its payload. Records recovered beyond those "
            "were written but not yet acknowledged.",
            f"The logs are in {base}: try 'trusswork storage wal-check {base / 'crashed'}'.",
        ],
    )
