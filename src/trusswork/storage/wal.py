"""A segmented write-ahead log: append, make durable, read back in order.

A log is a directory of segment files named by the LSN (log sequence number)
of their first record. Each record carries its length, its LSN and a CRC32C;
LSNs start at 1 and grow by one per record. The append path is C
(``csrc/wal``) and releases the GIL, so many threads can append at once.

Guarantees
----------
- ``append`` returns an LSN only once the record is as durable as the log's
  ``fsync`` mode promises:

  ``"always"``
      written and ``fdatasync``-ed before ``append`` returns; appends are
      served one at a time.
  ``"group"``
      the same promise, but appenders that arrive while a sync is running
      share the next one (group commit): the throughput of many threads at
      the cost of one sync per batch.
  ``"interval"``
      records are buffered and a background thread writes and syncs them
      every ``interval`` seconds; a crash loses at most the last interval.
  ``"never"``
      records are written when the buffer fills, on ``flush`` and on
      ``close``, and synced only when a full segment is sealed (caches and
      tests); process death loses the buffer, power loss whatever the OS had
      not written.

- Opening a log recovers it: a torn last record (a write cut short by a
  crash) is truncated and reported in :attr:`WriteAheadLog.recovery`.
  Damage anywhere else -- a bad checksum with valid records after it, a
  damaged sealed segment, a gap between segments -- raises
  :class:`~trusswork.core.errors.Corruption` naming the segment file and byte
  offset, when opening or when reading. It is never skipped silently.
- Readers see every record written so far, in LSN order, while writers
  append (``scan``), and can wait for new ones (``follow``).
- ``truncate_before(lsn)`` deletes whole segments older than ``lsn``, which
  bounds disk usage after a checkpoint.

One process at a time may open a log for writing (an exclusive ``flock`` on
``LOCK`` in the directory); :func:`read_log` and :func:`check_log` read
without it.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import re
from bisect import bisect_right
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

from trusswork.core.errors import Conflict, Corruption, InvalidInput, NotFound, Unavailable
from trusswork.core.files import fsync_directory
from trusswork.storage import _wal

__all__ = ["CheckReport", "FsyncMode", "Recovery", "WriteAheadLog", "check_log", "read_log"]

FsyncMode = Literal["always", "group", "interval", "never"]

_SEGMENT_NAME = re.compile(r"^(\d{20})\.wal$")
_BATCH = 4096  # records parsed per call into C


@dataclass(frozen=True)
class Recovery:
    """What opening a log found at its tail and repaired.

    Attributes
    ----------
    next_lsn:
        The LSN the next appended record gets.
    truncated_segment:
        The segment whose torn tail was cut off, or None if the tail was whole.
    truncated_offset:
        The byte offset it was cut at (the start of the torn record).
    truncated_bytes:
        How many bytes were removed.
    """

    next_lsn: int
    truncated_segment: str | None = None
    truncated_offset: int | None = None
    truncated_bytes: int = 0


@dataclass(frozen=True)
class CheckReport:
    """The result of :func:`check_log`: what a full read of every segment found.

    ``problem`` is None for a healthy log; otherwise it describes the first
    bad spot, at ``problem_segment`` / ``problem_offset``. ``torn_tail`` is
    true when that spot is a torn last record (which opening the log repairs
    by itself) rather than damage. ``repaired`` says whether the log was
    truncated there.
    """

    path: str
    segments: int
    records: int
    first_lsn: int | None
    last_lsn: int | None
    problem: str | None = None
    problem_segment: str | None = None
    problem_offset: int | None = None
    torn_tail: bool = False
    repaired: bool = False

    @property
    def ok(self) -> bool:
        """True when every record read back intact."""
        return self.problem is None


class _Damage(Exception):
    """Internal: where a read stopped on damage (becomes Corruption or a report)."""

    def __init__(
        self, segment: Path, offset: int, message: str, *, torn: bool, lsn: int = 0
    ) -> None:
        super().__init__(message)
        self.segment = segment
        self.offset = offset
        self.message = message
        self.torn = torn
        self.lsn = lsn  # the LSN the damaged record should have had

    def corruption(self) -> Corruption:
        return Corruption(f"write-ahead log {self.segment}: {self.message}")


def _segment_path(directory: Path, first_lsn: int) -> Path:
    return directory / f"{first_lsn:020d}.wal"


def _list_segments(directory: Path) -> list[tuple[int, Path]]:
    """Segments of the log as (first LSN, path), oldest first."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        raise NotFound(f"write-ahead log directory {directory} does not exist") from None
    found = []
    for name in names:
        match = _SEGMENT_NAME.match(name)
        if match:
            found.append((int(match.group(1)), directory / name))
    found.sort()
    return found


def _segment_records(
    path: Path,
    first: int,
    from_lsn: int,
    limit: int | None,
    *,
    last: bool,
    tolerate_tail: bool,
) -> Generator[tuple[int, bytes], None, tuple[int, int]]:
    """Yield the records of one segment; return (next expected LSN, end offset).

    ``limit`` stops after that LSN (a live writer's last written record:
    bytes after it may be mid-write). In the last segment, a record cut off
    by the end of the file, or a damaged one with nothing valid after it, is
    a torn tail: reading stops there when ``tolerate_tail``. Anything else
    raises _Damage.
    """
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        data: mmap.mmap | bytes = (
            mmap.mmap(file.fileno(), size, access=mmap.ACCESS_READ) if size else b""
        )
        try:
            header = _wal.read_segment_header(bytes(data[: _wal.SEGMENT_HEADER]))
            if header is None or header == -1:
                # A newest segment holding no more than a header was being
                # created by a rotation when the writer died: a torn tail.
                torn = last and size <= _wal.SEGMENT_HEADER
                if torn and tolerate_tail:
                    return first, 0
                what = "is cut off" if header is None else "is damaged"
                raise _Damage(
                    path, 0, f"segment header {what} (byte offset 0)", torn=torn, lsn=first
                )
            if header != first:
                raise _Damage(
                    path, 0, f"header names first LSN {header}, the file name {first}", torn=False
                )
            offset, expect = _wal.SEGMENT_HEADER, first
            while limit is None or expect <= limit:
                batch = _BATCH if limit is None else min(_BATCH, limit - expect + 1)
                records, end, status = _wal.parse(data, offset, expect, batch)
                for lsn, payload in records:
                    if lsn >= from_lsn:
                        yield lsn, payload
                expect += len(records)
                offset = end
                if status == _wal.OK and end < len(data):
                    continue
                if limit is not None and expect <= limit and last:
                    # The writer has written more since the file was mapped.
                    grown = os.fstat(file.fileno()).st_size
                    if grown > len(data):
                        if isinstance(data, mmap.mmap):
                            data.close()
                        data = mmap.mmap(file.fileno(), grown, access=mmap.ACCESS_READ)
                        continue
                if status == _wal.OK:
                    break
                # Torn only if nothing valid follows: a damaged length field can
                # also make a record look cut off by the end of the file.
                torn = last and _wal.find_record(data, end + 1, expect) < 0
                if torn and tolerate_tail:
                    break
                reason = "is cut off" if status == _wal.TRUNCATED else "is damaged"
                hint = ""
                if last and not torn and _wal.find_record(data, end + 1, expect, True) < 0:
                    # Only records of the same write follow, and none began
                    # after a sync: power loss can land a write's pages out of
                    # order, so this may be that write cut short, not damage.
                    hint = (
                        "; only records of the last write follow, which may not have"
                        " been synced: after a power loss this can be that write cut"
                        " short, and repairing (wal-check --repair) loses only it"
                    )
                raise _Damage(
                    path,
                    end,
                    f"record {reason} at byte offset {end} (LSN {expect}){hint}",
                    torn=torn,
                    lsn=expect,
                )
            return expect, offset
        finally:
            if isinstance(data, mmap.mmap):
                data.close()


def _records(
    directory: Path, from_lsn: int, limit: int | None, *, tolerate_tail: bool
) -> Iterator[tuple[int, bytes]]:
    """Records of the whole log from ``from_lsn`` (up to ``limit``), in order."""
    segments = _list_segments(directory)
    firsts = [first for first, _ in segments]
    index = max(0, bisect_right(firsts, from_lsn) - 1)
    expect: int | None = None
    while index < len(segments):
        first, path = segments[index]
        if expect is not None and first != expect:
            # A listing taken while a writer rotates can miss a segment that
            # was being created: look again before calling it a gap.
            segments = _list_segments(directory)
            firsts = [first for first, _ in segments]
            index = bisect_right(firsts, expect - 1) - 1
            if 0 <= index < len(segments) and segments[index][0] == expect:
                continue
            raise Corruption(
                f"write-ahead log {path}: starts at LSN {first}, but the previous segment "
                f"ends at LSN {expect - 1}: a segment is missing"
            )
        is_last = index == len(segments) - 1
        try:
            expect, _ = yield from _segment_records(
                path, first, from_lsn, limit, last=is_last, tolerate_tail=tolerate_tail
            )
        except FileNotFoundError:
            raise NotFound(
                f"write-ahead log {path} was truncated while being read; start from a later LSN"
            ) from None
        except _Damage as damage:
            raise damage.corruption() from None
        if limit is not None and expect > limit:
            return  # segments after this one were started after the scan began
        index += 1
        if index == len(segments) and limit is not None and expect <= limit:
            # The writer moved to a new segment while we read: look again.
            segments = _list_segments(directory)
            firsts = [first for first, _ in segments]
            index = bisect_right(firsts, expect - 1)


def read_log(path: str | os.PathLike[str], from_lsn: int = 0) -> Iterator[tuple[int, bytes]]:
    """Read a log's records without opening it for writing (another process may).

    Yields ``(lsn, payload)`` from ``from_lsn`` (or the oldest retained
    record) to the last whole record. A torn tail ends the iteration;
    damage raises :class:`~trusswork.core.errors.Corruption`.
    """
    return _records(Path(path), from_lsn, None, tolerate_tail=True)


def check_log(path: str | os.PathLike[str], *, repair: bool = False) -> CheckReport:
    """Read every record of a log and report the first damage found.

    With ``repair=True`` the log is cut at the first bad record: that segment
    is truncated at its offset and every later segment deleted, so the log
    opens again with every record before the damage. Do not repair a log
    that a writer has open.
    """
    directory = Path(path)
    segments = _list_segments(directory)
    records, first_lsn, last_lsn = 0, None, None
    expect: int | None = None
    for index, (first, segment) in enumerate(segments):
        try:
            if (
                expect is not None
                and first != expect
                and not _segment_path(directory, expect).exists()
            ):
                raise _Damage(
                    segment,
                    0,
                    f"starts at LSN {first}, the previous segment ends at LSN {expect - 1}",
                    torn=False,
                )
            reader = _segment_records(
                segment, first, 0, None, last=index == len(segments) - 1, tolerate_tail=False
            )
            while True:
                try:
                    lsn, _ = next(reader)
                except StopIteration as stop:
                    expect = stop.value[0]
                    break
                records += 1
                first_lsn = lsn if first_lsn is None else first_lsn
                last_lsn = lsn
        except _Damage as damage:
            repaired = False
            if repair:
                _cut(directory, damage.segment, damage.offset, segments[index:])
                repaired = True
            return CheckReport(
                str(directory),
                len(segments),
                records,
                first_lsn,
                last_lsn,
                problem=damage.message,
                problem_segment=str(damage.segment),
                problem_offset=damage.offset,
                torn_tail=damage.torn,
                repaired=repaired,
            )
    return CheckReport(str(directory), len(segments), records, first_lsn, last_lsn)


def _cut(directory: Path, segment: Path, offset: int, from_here: list[tuple[int, Path]]) -> None:
    """Truncate `segment` at `offset` and delete the segments after it."""
    for _, later in from_here:
        if later != segment:
            later.unlink(missing_ok=True)
    if offset <= _wal.SEGMENT_HEADER:
        segment.unlink(missing_ok=True)
    else:
        with open(segment, "r+b") as file:
            file.truncate(offset)
            os.fsync(file.fileno())
    fsync_directory(directory)


def _drain(reader: Generator[tuple[int, bytes], None, tuple[int, int]]) -> tuple[int, int]:
    """Run a segment reader to its end and return what it returns."""
    while True:
        try:
            next(reader)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]


def _recover(directory: Path) -> tuple[Recovery, int, Path]:
    """Repair a torn tail; return (report, first LSN of the last segment, its path)."""
    segments = _list_segments(directory)
    if not segments:
        return Recovery(next_lsn=1), 1, _segment_path(directory, 1)
    first, path = segments[-1]
    size = path.stat().st_size
    reader = _segment_records(path, first, 1 << 63, None, last=True, tolerate_tail=False)
    try:
        next_lsn, _ = _drain(reader)
        return Recovery(next_lsn=next_lsn), first, path
    except _Damage as damage:
        if not damage.torn:
            raise damage.corruption() from None
        if damage.offset == 0:
            path.unlink()  # created by a rotation that did not finish: remade on open
            fsync_directory(directory)
            return Recovery(first, str(path), 0, size), first, path
        with open(path, "r+b") as file:
            file.truncate(damage.offset)
            os.fsync(file.fileno())
        return Recovery(damage.lsn, str(path), damage.offset, size - damage.offset), first, path


class WriteAheadLog:
    """A durable, ordered, append-only log of byte records in a directory.

    Parameters
    ----------
    path:
        The log directory; created if missing.
    fsync:
        The durability mode: ``"always"``, ``"group"``, ``"interval"`` or
        ``"never"`` (see the module documentation).
    segment_bytes:
        A segment is closed and a new one started once it reaches this size.
    interval:
        Seconds between background syncs in ``"interval"`` mode.
    buffer_bytes:
        In ``"interval"`` and ``"never"`` modes, records are written to the
        file once this much is buffered.

    Raises
    ------
    Conflict
        If another process (or another ``WriteAheadLog`` here) has the log open.
    Corruption
        If recovery finds damage other than a torn tail.
    InvalidInput
        For an unknown ``fsync`` mode or non-positive sizes.

    Examples
    --------
    >>> import tempfile
    >>> with WriteAheadLog(tempfile.mkdtemp(), fsync="group") as log:
    ...     log.append(b"first"), log.append(b"second")
    ...     list(log.scan())
    (1, 2)
    [(1, b'first'), (2, b'second')]
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fsync: FsyncMode = "always",
        segment_bytes: int = 64 << 20,
        interval: float = 0.05,
        buffer_bytes: int = 1 << 20,
    ) -> None:
        if fsync not in _wal.SYNC_MODES:
            raise InvalidInput(f"fsync must be one of {sorted(_wal.SYNC_MODES)}, got {fsync!r}")
        if segment_bytes <= _wal.SEGMENT_HEADER or buffer_bytes <= 0 or not interval > 0:
            raise InvalidInput(
                f"segment_bytes must exceed {_wal.SEGMENT_HEADER}, buffer_bytes and interval "
                f"must be positive (got {segment_bytes}, {buffer_bytes}, {interval})"
            )
        self.path = Path(path)
        self.fsync: FsyncMode = fsync
        self._closed = False
        self._durable_reads = fsync in ("always", "group")
        if not self.path.is_dir():
            self.path.mkdir(parents=True, exist_ok=True)
            fsync_directory(self.path.parent)  # the new directory survives power loss
        self._lock = open(self.path / "LOCK", "a+b")  # noqa: SIM115 - held until close
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise Conflict(
                f"write-ahead log {self.path} is already open for writing by another process "
                f"or object; open it once and share it, or read with read_log()"
            ) from None
        try:
            self.recovery, first, segment = _recover(self.path)
            self._writer = _wal._Writer(
                str(self.path),
                str(segment),
                first,
                self.recovery.next_lsn,
                fsync,
                segment_bytes,
                max(1, round(interval * 1000)),
                buffer_bytes,
            )
        except BaseException:
            self._lock.close()
            raise

    # ------------------------------------------------------------ writing

    def append(self, payload: bytes | bytearray | memoryview) -> int:
        """Append one record and return its LSN, once durable per the ``fsync`` mode.

        Raises
        ------
        InvalidInput
            If the payload exceeds 1 GiB, or the log is closed.
        Unavailable
            If a write or sync failed; the log then refuses appends until reopened.
        """
        return self._writer.append(payload)

    def append_many(self, payloads: Iterable[bytes | bytearray | memoryview]) -> list[int]:
        """Append records with consecutive LSNs in one step; return their LSNs."""
        items = list(payloads)
        first: int = self._writer.append_many(items)
        return list(range(first, first + len(items)))

    def flush(self, *, sync: bool = True) -> None:
        """Write buffered records to the file and, with ``sync``, make them durable."""
        self._writer.flush(sync)

    def truncate_before(self, lsn: int) -> int:
        """Delete the segments whose records all have LSNs below ``lsn``; return how many.

        The segment being appended to is never deleted, so some records
        before ``lsn`` may remain; readers must not rely on their absence.
        """
        active = self._writer.active_segment()
        segments = _list_segments(self.path)
        removed = 0
        for (_, path), (next_first, _) in pairwise(segments):
            if next_first <= lsn and next_first <= active:
                path.unlink(missing_ok=True)
                removed += 1
        if removed:
            fsync_directory(self.path)
        return removed

    # ------------------------------------------------------------ reading

    def scan(self, from_lsn: int = 0) -> Iterator[tuple[int, bytes]]:
        """Yield ``(lsn, payload)`` for every record from ``from_lsn`` appended so far.

        A scan sees every ``append`` that returned before it started. In
        ``"always"`` and ``"group"`` modes it shows durable records only (a
        record still being synced appears once its sync ends); in the
        buffered modes, buffered records are written out first. Records
        appended while the scan runs may or may not be included.
        """
        if self._durable_reads:
            # Only durable records are shown, so a reader never sees a record
            # that power loss could take back (its appender is syncing it).
            limit = self._writer.positions()[2]
        else:
            self._writer.flush(False)
            limit = self._writer.positions()[1]
        return _records(self.path, from_lsn, limit, tolerate_tail=False)

    def follow(
        self, from_lsn: int = 0, *, timeout: float | None = None
    ) -> Iterator[tuple[int, bytes]]:
        """Yield records from ``from_lsn`` as they are appended (tail -f).

        Stops when no new record arrives for ``timeout`` seconds (None: wait
        for ever), or when the log is closed.
        """
        next_lsn = from_lsn
        while True:
            try:
                for lsn, payload in self.scan(next_lsn):
                    yield lsn, payload
                    next_lsn = lsn + 1
                next_lsn = max(next_lsn, self.first_lsn)
                wait = -1.0 if timeout is None else timeout
                if not self._writer.wait_written(next_lsn, wait, self._durable_reads):
                    return
            except (InvalidInput, Unavailable):
                if self._closed:
                    return  # the log was closed while we read or waited
                raise

    # ------------------------------------------------------------ state

    @property
    def next_lsn(self) -> int:
        """The LSN the next appended record will get."""
        return int(self._writer.positions()[0])

    @property
    def durable_lsn(self) -> int:
        """The last LSN known to be on stable storage (0 if none)."""
        return int(self._writer.positions()[2])

    @property
    def first_lsn(self) -> int:
        """The first LSN of the oldest retained segment."""
        segments = _list_segments(self.path)
        return segments[0][0] if segments else self.next_lsn

    def check(self) -> CheckReport:
        """Read every record and report damage (see :func:`check_log`)."""
        self._writer.flush(False)
        return check_log(self.path)

    def close(self) -> None:
        """Flush (and sync, unless ``fsync="never"``), then release the log. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._writer.close()
        finally:
            self._lock.close()

    def _simulate_power_loss(self, keep_unsynced: int = 0) -> None:
        """Test hook: lose what was written since the last sync (but ``keep_unsynced`` bytes)."""
        self._closed = True
        try:
            self._writer.simulate_power_loss(keep_unsynced)
        finally:
            self._lock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"next_lsn={self.next_lsn}"
        return f"<WriteAheadLog {str(self.path)!r} fsync={self.fsync!r} {state}>"
