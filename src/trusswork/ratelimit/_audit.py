"""The audit log of a rate limiter: every denial and every policy change.

:class:`AuditLog` keeps the newest ``max_entries`` entries in memory (a
ring buffer: the oldest entry goes when a new one arrives at the bound), so
memory stays bounded however long an attack lasts. With a ``path`` each entry
is also appended to a file as one JSON object per line; when the file would
pass ``max_bytes`` it is rotated (``audit.jsonl`` -> ``audit.jsonl.1`` ->
... -> ``audit.jsonl.<backups>``, the oldest dropped), so the disk use is
bounded too. File writes are buffered and flushed at most ``flush_interval``
seconds apart, on :meth:`AuditLog.flush` and on :meth:`AuditLog.close`: a
denial storm costs a list append, not a system call per denial.

Queries (:meth:`AuditLog.query`) read the in-memory entries, newest first,
filtered by policy, key, decision and a time range. Entry times are wall
clock seconds since the Unix epoch (they are read by people and compared
across machines). The log is thread-safe.
"""

from __future__ import annotations

import dataclasses
import math
import os
import threading
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final, Self

import orjson

from trusswork.core.clock import SYSTEM_CLOCK, Clock
from trusswork.core.errors import InvalidInput

__all__ = ["DECISIONS", "AuditEntry", "AuditLog"]

DECISIONS: Final = frozenset({"denied", "created", "updated", "deleted"})
"""What an entry records: a denial, or a policy created, updated or deleted."""

_CHANGES: Final = frozenset({"created", "updated", "deleted"})


@dataclasses.dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audited event.

    Attributes
    ----------
    time:
        Wall-clock seconds since the Unix epoch.
    policy:
        The policy's name.
    key:
        The limited key (client IP, API key, ...); ``""`` for policy changes.
    decision:
        ``"denied"``, or ``"created"``, ``"updated"``, ``"deleted"`` for a
        policy change.
    remaining:
        Units left after a denial; ``None`` for policy changes.
    shadow:
        True when the policy is in shadow mode (the request was let through).
    retry_after:
        Seconds until the request would pass (``None`` when it never can, or
        for policy changes).
    detail:
        For policy changes, the policy before (``"old"``) and after
        (``"new"``) as mappings; ``None`` for denials.
    """

    time: float
    policy: str
    key: str
    decision: str
    remaining: int | None = None
    shadow: bool = False
    retry_after: float | None = None
    detail: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The entry as a JSON-ready mapping (the file and the HTTP API use it)."""
        return {
            "time": self.time,
            "policy": self.policy,
            "key": self.key,
            "decision": self.decision,
            "remaining": self.remaining,
            "shadow": self.shadow,
            "retry_after": self.retry_after,
            "detail": None if self.detail is None else dict(self.detail),
        }


class AuditLog:
    """A size-bounded, queryable record of denials and policy changes.

    Parameters
    ----------
    max_entries:
        How many entries the in-memory ring holds (>= 1).
    path:
        A file to append entries to as JSON lines; ``None`` keeps them in
        memory only.
    max_bytes:
        Rotate the file before it would grow past this size (>= 1024).
    backups:
        How many rotated files to keep (>= 0; 0 truncates instead).
    flush_interval:
        Longest time in seconds buffered lines wait before a flush.
    clock:
        Gives entry times (wall clock) and flush timing (monotonic).

    Raises
    ------
    InvalidInput
        If a bound is out of range.
    """

    def __init__(
        self,
        max_entries: int = 10_000,
        *,
        path: str | os.PathLike[str] | None = None,
        max_bytes: int = 16 << 20,
        backups: int = 3,
        flush_interval: float = 1.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise InvalidInput(f"AuditLog max_entries must be an int >= 1, got {max_entries!r}")
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1024:
            raise InvalidInput(f"AuditLog max_bytes must be an int >= 1024, got {max_bytes!r}")
        if isinstance(backups, bool) or not isinstance(backups, int) or backups < 0:
            raise InvalidInput(f"AuditLog backups must be an int >= 0, got {backups!r}")
        if not (flush_interval >= 0 and math.isfinite(flush_interval)):
            raise InvalidInput(
                f"AuditLog flush_interval must be finite and >= 0, got {flush_interval!r}"
            )
        self.max_entries = max_entries
        self.path = None if path is None else Path(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self.flush_interval = flush_interval
        self._clock = clock
        self._entries: deque[AuditEntry] = deque(maxlen=max_entries)
        self._lock = threading.Lock()
        self._file: IO[bytes] | None = None
        self._size = 0
        self._last_flush = clock.monotonic()
        if self.path is not None:
            self._open()

    # ------------------------------------------------------------ recording

    def record_denial(
        self,
        policy: str,
        key: str | bytes | int,
        *,
        remaining: int,
        retry_after: float,
        shadow: bool = False,
    ) -> AuditEntry:
        """Record that ``policy`` denied ``key`` (or would have, in shadow mode)."""
        if isinstance(key, bytes):
            key = key.decode("latin-1")
        entry = AuditEntry(
            self._clock.time(),
            policy,
            str(key),
            "denied",
            remaining,
            shadow,
            retry_after if math.isfinite(retry_after) else None,
        )
        self._append(entry)
        return entry

    def record_change(
        self,
        policy: str,
        decision: str,
        *,
        old: Mapping[str, Any] | None,
        new: Mapping[str, Any] | None,
        shadow: bool = False,
    ) -> AuditEntry:
        """Record a policy change: ``decision`` is ``created``, ``updated`` or ``deleted``.

        Raises
        ------
        InvalidInput
            If ``decision`` is not one of those.
        """
        if decision not in _CHANGES:
            raise InvalidInput(
                f"a policy change is 'created', 'updated' or 'deleted', got {decision!r}"
            )
        entry = AuditEntry(
            self._clock.time(),
            policy,
            "",
            decision,
            None,
            shadow,
            None,
            {"old": None if old is None else dict(old), "new": None if new is None else dict(new)},
        )
        self._append(entry)
        return entry

    def _append(self, entry: AuditEntry) -> None:
        with self._lock:
            self._entries.append(entry)
            if self._file is not None:
                self._write(orjson.dumps(entry.to_dict()) + b"\n")

    # ------------------------------------------------------------ querying

    def query(
        self,
        *,
        policy: str | None = None,
        key: str | None = None,
        decision: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Entries matching every given filter, newest first, at most ``limit``.

        Parameters
        ----------
        policy, key:
            Exact policy name / key.
        decision:
            One of ``denied``, ``created``, ``updated``, ``deleted``, or
            ``changed`` for any policy change.
        since, until:
            Wall-clock bounds in seconds since the epoch: ``since <= time < until``.
        limit:
            At most this many entries (>= 0).

        Raises
        ------
        InvalidInput
            For an unknown ``decision`` or a negative ``limit``.
        """
        wanted: frozenset[str] | None = None
        if decision is not None:
            if decision == "changed":
                wanted = _CHANGES
            elif decision in DECISIONS:
                wanted = frozenset({decision})
            else:
                raise InvalidInput(
                    f"audit decision filter {decision!r} is not one of "
                    f"{', '.join(sorted(DECISIONS | {'changed'}))}"
                )
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise InvalidInput(f"audit query limit must be an int >= 0, got {limit!r}")
        with self._lock:
            entries = list(self._entries)
        out: list[AuditEntry] = []
        for entry in reversed(entries):
            if len(out) >= limit:
                break
            if policy is not None and entry.policy != policy:
                continue
            if key is not None and entry.key != key:
                continue
            if wanted is not None and entry.decision not in wanted:
                continue
            if since is not None and entry.time < since:
                continue
            if until is not None and entry.time >= until:
                continue
            out.append(entry)
        return out

    def __len__(self) -> int:
        return len(self._entries)

    # ------------------------------------------------------------ the file

    def _open(self) -> None:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "ab")  # noqa: SIM115 -- held until close()
        self._size = self._file.tell()

    def _write(self, line: bytes) -> None:
        file = self._file
        assert file is not None
        if self._size and self._size + len(line) > self.max_bytes:
            self._rotate()
            file = self._file
            assert file is not None
        file.write(line)
        self._size += len(line)
        now = self._clock.monotonic()
        if now - self._last_flush >= self.flush_interval:
            file.flush()
            self._last_flush = now

    def _rotate(self) -> None:
        assert self.path is not None and self._file is not None
        self._file.close()
        if self.backups:
            for index in range(self.backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{index}")
                if older.exists():
                    os.replace(older, self.path.with_name(f"{self.path.name}.{index + 1}"))
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._file = open(self.path, "wb")  # noqa: SIM115 -- held until close()
        self._size = 0

    def flush(self) -> None:
        """Write buffered lines to the file (nothing to do without a file)."""
        with self._lock:
            if self._file is not None:
                self._file.flush()
                self._last_flush = self._clock.monotonic()

    def close(self) -> None:
        """Flush and close the file; the in-memory entries stay queryable."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        where = f" -> {self.path}" if self.path is not None else ""
        return f"<AuditLog {len(self)}/{self.max_entries} entries{where}>"
