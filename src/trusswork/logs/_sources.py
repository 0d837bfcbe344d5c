"""Log sources: files followed like ``tail -F``, and streams such as stdin.

What a source guarantees, together with the store
-------------------------------------------------
A :class:`FileTailer` persists nothing. Each :class:`TailBatch` carries the
lines it read *and* the :class:`TailPosition` just after them; the store
writes both into one write-ahead-log record. After a crash the store hands
the last durable position to a new tailer, which continues exactly there:
every line is delivered once, none twice, none lost, provided the file it
was in still exists (under its name or a rotated name, see below).

Invariants
    * ``TailPosition.offset`` is always at a line boundary: the number of
      bytes of that file covered by the lines handed out so far, newlines
      included. Bytes of an unfinished line are buffered, never counted.
    * ``TailPosition.fingerprint`` is the BLAKE2b-128 hex digest of the first
      ``min(256, offset)`` bytes of the file, bytes the tailer has already
      read. Log files only grow, so those bytes never change unless the file
      was truncated and rewritten or replaced by another one that reuses the
      inode number; a mismatch on resume means "not the same file".
    * A line is what ends with ``\\n``; the newline and one ``\\r`` before it
      are removed. Bytes are passed through untouched otherwise: NUL bytes,
      invalid UTF-8 and binary garbage are for the parser to judge.
    * A line longer than ``max_line_bytes`` is returned cut to that length
      and counted in ``TailBatch.overlong``; the rest of it, up to its
      newline, is skipped. Memory stays bounded by ``max_line_bytes`` plus
      one read chunk.

Rotation and truncation
    When the inode behind the path changes (``mv log log.1`` followed by a
    new ``log``; or delete and re-create), the tailer keeps the old file open
    and reads it to its end, including lines written to it after the rename,
    then emits its unterminated last line, if any, as a line and switches to
    the new file at offset 0 (``TailBatch.rotated``). It switches only once
    the new file exists and the old one has nothing more, so writers that
    reopen the path after a rotation lose nothing; bytes written to the old
    file *after* the switch are not read. When the file shrinks below what
    was read, or its first bytes change (copytruncate, then rewritten), the
    tailer restarts at offset 0 (``TailBatch.truncated``); an unfinished line
    is dropped then, and lines written between the last read and the
    truncation are lost, as with every copytruncate reader.

Resuming
    With ``position=``: the file at the path continues at ``offset`` if it has
    the same device, inode and fingerprint and is at least ``offset`` bytes
    long. Otherwise the file rotated away is looked for among its siblings
    (``<name>.*`` and ``<name>-*`` in the same directory, matched by device,
    inode and fingerprint); it is finished from ``offset``, then the current
    file is read from 0. When neither is found (the rotated file was deleted
    or compressed while the tailer was stopped), the current file is read
    from 0 and the first batch has ``lost_position`` set: lines may have been
    lost.

Limits, documented rather than hidden
    A file that was created and rotated away again between two polls (or
    while the tailer was stopped, beyond the one rotated file it resumes
    from) is skipped, as by ``tail -F``; keep ``poll_interval`` well below
    the rotation period. A truncation followed by a rewrite of at least as
    many bytes, starting with the same 256 bytes, before the next poll cannot
    be seen.

:func:`read_stream` reads pipes and stdin: lines are handed out as they
arrive, and an unterminated last line is returned at end of input. A stream
has no position: what was read before a crash cannot be read again.

Neither source is thread-safe; ``follow(stop=event)`` may be stopped from
another thread through the event.
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import os
import stat
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import IO, Any, Literal

from trusswork.core.errors import InvalidInput, Unavailable

__all__ = ["FileTailer", "TailBatch", "TailPosition", "read_stream"]

FINGERPRINT_BYTES = 256
_READ_CHUNK = 1 << 20
_FINGERPRINT_HEX_LENGTH = 32


def _fingerprint(prefix: bytes) -> str:
    return hashlib.blake2b(prefix, digest_size=_FINGERPRINT_HEX_LENGTH // 2).hexdigest()


@dataclass(frozen=True)
class TailPosition:
    """Where a :class:`FileTailer` stands in a file, saved with the lines read.

    Attributes
    ----------
    path:
        The path the tailer follows (not the rotated name of the file).
    dev, inode:
        The identity of the file being read; after a rotation this may be the
        file now known by a rotated name.
    offset:
        Bytes of that file consumed, always at a line boundary.
    fingerprint:
        BLAKE2b-128 hex digest of the first ``min(256, offset)`` bytes of the
        file, to tell a file apart from a replacement that reuses the inode
        or a truncated-and-rewritten one.
    """

    path: str
    dev: int
    inode: int
    offset: int
    fingerprint: str

    def __post_init__(self) -> None:
        for name in ("dev", "inode", "offset"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidInput(f"TailPosition.{name} must be an integer >= 0, got {value!r}")
        if not isinstance(self.path, str) or not self.path:
            raise InvalidInput(f"TailPosition.path must be a non-empty string, got {self.path!r}")
        fingerprint = self.fingerprint
        if (
            not isinstance(fingerprint, str)
            or len(fingerprint) != _FINGERPRINT_HEX_LENGTH
            or fingerprint.strip("0123456789abcdef")
        ):
            raise InvalidInput(
                f"TailPosition.fingerprint must be {_FINGERPRINT_HEX_LENGTH} lowercase hex "
                f"digits, got {fingerprint!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Return the position as a JSON-safe mapping (see :meth:`from_dict`)."""
        return {
            "path": self.path,
            "dev": self.dev,
            "inode": self.inode,
            "offset": self.offset,
            "fingerprint": self.fingerprint,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TailPosition:
        """Rebuild a position saved with :meth:`to_dict`.

        Raises
        ------
        InvalidInput
            ``data`` is not a mapping, lacks a field, has an unknown one, or a
            field has the wrong type or range.
        """
        if not isinstance(data, Mapping):
            raise InvalidInput(f"a tail position must be a mapping, got {type(data).__name__}")
        expected = {"path", "dev", "inode", "offset", "fingerprint"}
        missing = expected - data.keys()
        unknown = data.keys() - expected
        if missing or unknown:
            raise InvalidInput(
                f"bad tail position: missing {sorted(missing)}, unknown {sorted(map(str, unknown))}"
            )
        return cls(
            path=data["path"],
            dev=data["dev"],
            inode=data["inode"],
            offset=data["offset"],
            fingerprint=data["fingerprint"],
        )


@dataclass(frozen=True)
class TailBatch:
    """Lines read in one :meth:`FileTailer.read_batch` call and where they end.

    Attributes
    ----------
    lines:
        Complete lines, without ``\\n`` (and without a ``\\r`` before it). May
        be empty when only the position moved (a rotation to an empty file, a
        truncation).
    position:
        The position just after the last line; save it with the lines.
    rotated:
        The tailer finished a file that was rotated away and switched to the
        file now at the path.
    truncated:
        The file shrank or was rewritten; reading restarted at offset 0.
    lost_position:
        The position given at start matched neither the file at the path nor
        a rotated sibling; reading started at offset 0 of the current file and
        lines may have been lost. Set on the first batch only.
    overlong:
        How many of ``lines`` were cut at ``max_line_bytes``.
    """

    lines: list[bytes]
    position: TailPosition
    rotated: bool = False
    truncated: bool = False
    lost_position: bool = False
    overlong: int = 0


class _LineSplitter:
    """Cuts a byte stream into lines, holding at most one unfinished line.

    ``consumed`` is the stream offset just after the last line taken; the
    buffer holds bytes from ``start`` on. While an overlong line is being
    skipped, ``_overlong`` holds its kept prefix and ``consumed`` stays at its
    first byte, so a position never points inside a line.
    """

    def __init__(self, max_line_bytes: int, offset: int = 0) -> None:
        self._max = max_line_bytes
        self._buffer = bytearray()
        self._overlong: bytes | None = None
        self.start = offset
        self.consumed = offset

    @property
    def end(self) -> int:
        """Stream offset of the next byte to feed."""
        return self.start + len(self._buffer)

    @property
    def pending(self) -> bool:
        """Whether bytes of an unfinished line are held."""
        return bool(self._buffer) or self._overlong is not None

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def take(self, lines: list[bytes], max_lines: int, max_bytes: int) -> tuple[int, int, bool]:
        """Move complete lines into ``lines`` until a budget is used up.

        Returns (bytes added, overlong lines added, budget used up).
        """
        buf = self._buffer
        size = len(buf)
        limit = self._max
        pos = count = nbytes = overlong = 0
        while count < max_lines and nbytes < max_bytes:
            if self._overlong is not None:
                newline = buf.find(b"\n", pos)
                if newline < 0:
                    pos = size  # the skipped rest of an overlong line is dropped at once
                    break
                line = self._overlong
                self._overlong = None
                overlong += 1
            else:
                # A '\r' before the newline does not count, hence limit + 2.
                newline = buf.find(b"\n", pos, pos + limit + 2)
                if newline < 0:
                    if size - pos > limit + 1:
                        self._overlong = bytes(buf[pos : pos + limit])
                        pos += limit
                        continue
                    break
                end = newline - 1 if newline > pos and buf[newline - 1] == 0x0D else newline
                if end - pos > limit:
                    line = bytes(buf[pos : pos + limit])
                    overlong += 1
                else:
                    line = bytes(buf[pos:end])
            lines.append(line)
            count += 1
            nbytes += len(line)
            pos = newline + 1
            self.consumed = self.start + pos
        del buf[:pos]
        self.start += pos
        return nbytes, overlong, count >= max_lines or nbytes >= max_bytes

    def finish(self) -> tuple[bytes | None, bool]:
        """Take the unfinished last line (at end of input); returns (line, overlong)."""
        line: bytes | None
        if self._overlong is not None:
            line, cut = self._overlong, True
        elif self._buffer:
            raw = bytes(self._buffer)
            line, cut = raw[: self._max], len(raw) > self._max
        else:
            line, cut = None, False
        self.start = self.consumed = self.end
        self._buffer.clear()
        self._overlong = None
        return line, cut

    def reset(self, offset: int) -> None:
        self._buffer.clear()
        self._overlong = None
        self.start = self.consumed = offset


def _check_limits(**limits: int) -> None:
    for name, value in limits.items():
        if value < 1:
            raise InvalidInput(f"{name} must be >= 1, got {value}")


def read_stream(
    stream: IO[bytes],
    *,
    max_lines: int = 10_000,
    max_bytes: int = 4 << 20,
    max_line_bytes: int = 1 << 20,
) -> Iterator[list[bytes]]:
    """Read lines from a pipe or stdin in batches, as they arrive.

    Each read takes what the stream has (``read1`` when it has one), so a
    slow producer's lines are handed out without waiting for a full batch.
    Lines follow the rules of :class:`FileTailer` (newline and a ``\\r``
    before it removed, overlong lines cut); an unterminated last line is
    returned at end of input.

    Parameters
    ----------
    stream:
        A binary stream, e.g. ``sys.stdin.buffer``. It is not closed.
    max_lines, max_bytes:
        Upper bounds of one batch (a single line may exceed ``max_bytes``).
    max_line_bytes:
        Longer lines are cut to this many bytes.

    Returns
    -------
    Iterator[list[bytes]]
        Non-empty batches of lines, until end of input.

    Raises
    ------
    InvalidInput
        A limit is not positive.
    """
    _check_limits(max_lines=max_lines, max_bytes=max_bytes, max_line_bytes=max_line_bytes)
    read = getattr(stream, "read1", stream.read)
    splitter = _LineSplitter(max_line_bytes)
    while True:
        data = read(_READ_CHUNK)
        if data:
            splitter.feed(data)
        full = True
        while full:
            lines: list[bytes] = []
            _, _, full = splitter.take(lines, max_lines, max_bytes)
            if not data and not full:
                last, _ = splitter.finish()
                if last is not None:
                    lines.append(last)
            if lines:
                yield lines
        if not data:
            return


@dataclass
class _OpenFile:
    """A file being read: its descriptor, identity and first bytes."""

    fd: int
    dev: int
    inode: int
    splitter: _LineSplitter
    prefix: bytes  # the first min(FINGERPRINT_BYTES, splitter.end) bytes read

    def position(self, path: str) -> TailPosition:
        consumed = self.splitter.consumed
        return TailPosition(
            path=path,
            dev=self.dev,
            inode=self.inode,
            offset=consumed,
            fingerprint=_fingerprint(self.prefix[: min(FINGERPRINT_BYTES, consumed)]),
        )


def _open_regular(path: str) -> tuple[int, os.stat_result] | None:
    """Open ``path`` for reading; None when it does not exist (yet)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except PermissionError as exc:
        raise Unavailable(
            f"cannot read log file {path!r}: permission denied; grant read access to it"
        ) from exc
    except NotADirectoryError as exc:
        raise InvalidInput(f"cannot follow {path!r}: a parent of it is not a directory") from exc
    except OSError as exc:
        raise Unavailable(f"cannot open log file {path!r}: {exc.strerror}") from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise InvalidInput(
            f"cannot follow {path!r}: it is {kind}; give a log file "
            "(use read_stream for pipes and stdin)"
        )
    return fd, info


def _pread_exact(fd: int, size: int, offset: int) -> bytes:
    """Read up to ``size`` bytes at ``offset``, fewer only at end of file."""
    parts = []
    while size > 0:
        data = os.pread(fd, size, offset)
        if not data:
            break
        parts.append(data)
        size -= len(data)
        offset += len(data)
    return b"".join(parts)


class FileTailer:
    """Follow a log file like ``tail -F``, in batches that carry their position.

    Parameters
    ----------
    path:
        The log file. It may not exist yet, or disappear for a while during a
        rotation: the tailer waits for it.
    position:
        Resume from a position a previous tailer returned (see the module
        docstring, "Resuming"); ``start`` is then ignored.
    start:
        Without ``position``: read the file from its ``"beginning"``, or from
        its ``"end"`` (after its last complete line, so a line being written
        is read whole). A file that appears later is always read from its
        beginning.
    max_line_bytes:
        Longer lines are cut to this many bytes (``TailBatch.overlong``).
    poll_interval:
        Seconds between polls in :meth:`follow`.

    Raises
    ------
    InvalidInput
        The path is a directory or not a regular file, ``position`` belongs to
        another path, or an option is out of range.
    Unavailable
        The file cannot be read (permission denied, I/O error).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        position: TailPosition | None = None,
        start: Literal["beginning", "end"] = "beginning",
        max_line_bytes: int = 1 << 20,
        poll_interval: float = 0.25,
    ) -> None:
        if start not in ("beginning", "end"):
            raise InvalidInput(f"start must be 'beginning' or 'end', got {start!r}")
        _check_limits(max_line_bytes=max_line_bytes)
        if not poll_interval > 0:
            raise InvalidInput(f"poll_interval must be > 0 seconds, got {poll_interval}")
        self._path = os.fspath(path)
        self._max_line_bytes = max_line_bytes
        self._poll_interval = poll_interval
        self._file: _OpenFile | None = None
        self._closed = False
        self._rotated = self._truncated = self._lost = False
        self._deferred_error: BaseException | None = None
        if position is not None:
            if os.path.abspath(position.path) != os.path.abspath(self._path):
                raise InvalidInput(
                    f"position is for {position.path!r}, not {self._path!r}; "
                    "give the position saved for this file"
                )
            self._resume(position)
        else:
            self._file = self._open_path(at_end=start == "end")
        self._last_position = self._file.position(self._path) if self._file else position

    # -- opening ----------------------------------------------------------------

    def _open_path(self, *, at_end: bool = False) -> _OpenFile | None:
        opened = _open_regular(self._path)
        if opened is None:
            return None
        fd, info = opened
        offset = self._last_line_end(fd, info.st_size) if at_end else 0
        return self._track(fd, info, offset, _pread_exact(fd, min(FINGERPRINT_BYTES, offset), 0))

    def _track(self, fd: int, info: os.stat_result, offset: int, prefix: bytes) -> _OpenFile:
        splitter = _LineSplitter(self._max_line_bytes, offset)
        return _OpenFile(fd, info.st_dev, info.st_ino, splitter, prefix)

    @staticmethod
    def _last_line_end(fd: int, size: int) -> int:
        """Offset just after the last newline before ``size`` (0 if none)."""
        end = size
        while end > 0:
            begin = max(0, end - _READ_CHUNK)
            found = _pread_exact(fd, end - begin, begin).rfind(b"\n")
            if found >= 0:
                return begin + found + 1
            end = begin
        return 0

    def _matches(self, fd: int, info: os.stat_result, position: TailPosition) -> bytes | None:
        """The file's prefix when it is the file ``position`` was taken in, else None."""
        if (info.st_dev, info.st_ino) != (position.dev, position.inode):
            return None
        if info.st_size < position.offset:
            return None
        prefix = _pread_exact(fd, min(FINGERPRINT_BYTES, position.offset), 0)
        return prefix if _fingerprint(prefix) == position.fingerprint else None

    def _resume(self, position: TailPosition) -> None:
        opened = _open_regular(self._path)
        if opened is not None:
            fd, info = opened
            prefix = self._matches(fd, info, position)
            if prefix is not None:
                self._file = self._track(fd, info, position.offset, prefix)
                return
            os.close(fd)
        rotated = self._find_rotated(position)
        if rotated is not None:
            self._file = rotated
            return
        self._lost = True
        self._file = self._open_path()

    def _find_rotated(self, position: TailPosition) -> _OpenFile | None:
        directory, name = os.path.split(os.path.abspath(self._path))
        try:
            siblings = sorted(os.listdir(directory))
        except OSError:
            return None
        patterns = (f"{glob.escape(name)}.*", f"{glob.escape(name)}-*")
        for sibling in siblings:
            if not any(fnmatch.fnmatchcase(sibling, pattern) for pattern in patterns):
                continue
            candidate = os.path.join(directory, sibling)
            try:
                info = os.stat(candidate)
                if (info.st_dev, info.st_ino) != (position.dev, position.inode):
                    continue
                opened = _open_regular(candidate)
            except (OSError, InvalidInput, Unavailable):
                continue  # gone or unreadable, so not the file this tailer was reading
            if opened is None:
                continue
            fd, info = opened
            prefix = self._matches(fd, info, position)
            if prefix is not None:
                return self._track(fd, info, position.offset, prefix)
            os.close(fd)
        return None

    # -- reading ----------------------------------------------------------------

    @property
    def path(self) -> str:
        """The followed path."""
        return self._path

    @property
    def position(self) -> TailPosition | None:
        """The position after the last batch returned (None before any file was seen)."""
        return self._last_position

    def _read_more(self, current: _OpenFile) -> bool:
        """Feed the next chunk of ``current`` to its splitter; False at end of file."""
        offset = current.splitter.end
        try:
            data = os.pread(current.fd, _READ_CHUNK, offset)
        except OSError as exc:
            raise Unavailable(f"cannot read log file {self._path!r}: {exc.strerror}") from exc
        if not data:
            return False
        if offset < FINGERPRINT_BYTES:
            current.prefix += data[: FINGERPRINT_BYTES - offset]
        current.splitter.feed(data)
        return True

    def _check_truncation(self, current: _OpenFile) -> None:
        end = current.splitter.end
        if end == 0:
            return
        if os.fstat(current.fd).st_size >= end:
            first = current.prefix
            if _pread_exact(current.fd, len(first), 0) == first:
                return
        current.splitter.reset(0)
        current.prefix = b""
        self._truncated = True

    def _path_identity(self) -> tuple[int, int] | None:
        try:
            info = os.stat(self._path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise Unavailable(f"cannot stat log file {self._path!r}: {exc.strerror}") from exc
        return info.st_dev, info.st_ino

    def read_batch(self, max_lines: int = 10_000, max_bytes: int = 4 << 20) -> TailBatch | None:
        """Read the complete lines written since the last call, without waiting.

        Parameters
        ----------
        max_lines, max_bytes:
            Upper bounds of the batch (a single line may exceed ``max_bytes``);
            what is left is read by the next call.

        Returns
        -------
        TailBatch or None
            The lines and the position after them; None when there is nothing
            new (no line, no rotation or truncation to report).

        Raises
        ------
        InvalidInput
            The tailer is closed, a limit is not positive, or the path now
            names a directory or a non-regular file.
        Unavailable
            The file cannot be read.
        """
        if self._closed:
            raise InvalidInput(f"the tailer of {self._path!r} is closed")
        _check_limits(max_lines=max_lines, max_bytes=max_bytes)
        if self._deferred_error is not None:
            error, self._deferred_error = self._deferred_error, None
            raise error
        if self._file is None:
            self._file = self._open_path()
            if self._file is not None and self._last_position is None:
                # A file that appears is no news by itself; its lines are.
                self._last_position = self._file.position(self._path)
        lines: list[bytes] = []
        nbytes = overlong = 0
        if self._file is not None:
            self._check_truncation(self._file)
        while self._file is not None:
            current = self._file
            added, cut, full = current.splitter.take(
                lines, max_lines - len(lines), max_bytes - nbytes
            )
            nbytes += added
            overlong += cut
            if full or self._read_more(current):
                if full:
                    break
                continue
            identity = self._path_identity()
            if identity is None or identity == (current.dev, current.inode):
                break
            # Rotated: the old file is at its end now that the new one exists,
            # unless a last write landed between the read and the stat.
            if self._read_more(current):
                continue
            try:
                successor = self._open_path()
            except (InvalidInput, Unavailable) as exc:
                if not lines:
                    raise
                self._deferred_error = exc
                break
            if successor is None:
                break
            if (successor.dev, successor.inode) == (current.dev, current.inode):
                os.close(successor.fd)  # renamed back in the meantime: same file, go on
                continue
            last, cut_last = current.splitter.finish()
            if last is not None:
                lines.append(last)
                nbytes += len(last)
                overlong += cut_last
            os.close(current.fd)
            self._file = successor
            self._rotated = True
        return self._batch(lines, overlong)

    def _batch(self, lines: list[bytes], overlong: int) -> TailBatch | None:
        if self._file is None:
            return None
        position = self._file.position(self._path)
        flags = self._rotated or self._truncated or self._lost
        if not lines and not flags and position == self._last_position:
            return None
        batch = TailBatch(
            lines=lines,
            position=position,
            rotated=self._rotated,
            truncated=self._truncated,
            lost_position=self._lost,
            overlong=overlong,
        )
        self._rotated = self._truncated = self._lost = False
        self._last_position = position
        return batch

    def follow(
        self,
        stop: threading.Event | None = None,
        timeout: float | None = None,
        *,
        max_lines: int = 10_000,
        max_bytes: int = 4 << 20,
    ) -> Iterator[TailBatch]:
        """Yield batches as lines arrive, polling every ``poll_interval`` seconds.

        Parameters
        ----------
        stop:
            Ends the iteration once set (checked between polls).
        timeout:
            Ends the iteration after this many seconds without a new batch
            (an idle timeout); None waits forever.
        max_lines, max_bytes:
            Bounds of each batch, as in :meth:`read_batch`.

        Returns
        -------
        Iterator[TailBatch]
            Batches, in order; save each one's position with its lines.
        """
        idle_since = time.monotonic()
        while stop is None or not stop.is_set():
            batch = self.read_batch(max_lines, max_bytes)
            if batch is not None:
                yield batch
                idle_since = time.monotonic()
                continue
            if timeout is not None and time.monotonic() - idle_since >= timeout:
                return
            if stop is not None:
                stop.wait(self._poll_interval)
            else:
                time.sleep(self._poll_interval)

    def close(self) -> None:
        """Close the file; the tailer cannot read afterwards. Idempotent."""
        if self._file is not None:
            os.close(self._file.fd)
            self._file = None
        self._closed = True

    def __enter__(self) -> FileTailer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
