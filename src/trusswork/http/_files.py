"""Serving files: safe paths under a root, validators, conditional requests and ranges.

The server sends the bytes with ``os.sendfile``; this module decides *what*
to send, with no I/O beyond ``open``/``fstat``:

* :func:`resolve_under` maps a URL path to a file strictly inside a root
  directory. ``..`` segments, absolute paths, NUL bytes, backslashes and
  symlinks that lead out of the root are refused, so path traversal is
  impossible by construction (the final check is on the resolved path).
* :func:`plan` answers a GET or HEAD for an open file: the status (200, 206,
  304, 412 or 416), the headers (``Content-Type``, ``Content-Length``,
  ``ETag``, ``Last-Modified``, ``Accept-Ranges``, ``Content-Range``) and the
  byte range to send. It follows RFC 9110: ``If-Match`` and
  ``If-Unmodified-Since`` (412), ``If-None-Match`` and ``If-Modified-Since``
  (304), and ``Range`` with ``If-Range``. One range is served as 206; several
  ranges are answered with the whole file (200), which RFC 9110 allows.
"""

from __future__ import annotations

import mimetypes
import os
import stat
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path

from trusswork.core.errors import InvalidInput, NotFound

__all__ = ["FilePlan", "etag_of", "plan", "resolve_under"]


def resolve_under(root: str | os.PathLike[str], url_path: str) -> Path:
    """The regular file that ``url_path`` (already percent-decoded) names inside ``root``.

    Raises
    ------
    NotFound
        If the path is unsafe (``..``, NUL, backslash, absolute after the
        root, a symlink leading outside ``root``) or names no regular file.
        Unsafe paths get the same answer as missing ones, so a prober learns
        nothing about the file system.
    """
    base = Path(root).resolve()
    parts = [p for p in url_path.split("/") if p not in ("", ".")]
    if any(p == ".." or "\x00" in p or "\\" in p for p in parts):
        raise NotFound(f"no file for {url_path!r}")
    candidate = base.joinpath(*parts)
    try:
        resolved = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        raise NotFound(f"no file for {url_path!r}") from None
    if not resolved.is_relative_to(base) or not resolved.is_file():
        raise NotFound(f"no file for {url_path!r}")
    return resolved


def etag_of(st: os.stat_result) -> str:
    """A strong validator from size and modification time (nanoseconds)."""
    return f'"{st.st_size:x}-{st.st_mtime_ns:x}"'


@dataclass(frozen=True, slots=True)
class FilePlan:
    """What to answer: status, headers, and ``length`` bytes from ``offset`` (none if 0)."""

    status: int
    headers: list[tuple[bytes, bytes]]
    offset: int
    length: int


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def _tags(value: bytes) -> list[str] | None:
    """The entity tags of an If-Match/If-None-Match value; None for ``*``."""
    text = value.decode("latin-1").strip()
    if text == "*":
        return None
    return [t.strip() for t in text.split(",") if t.strip()]


def _weak_equal(a: str, b: str) -> bool:
    return a.removeprefix("W/") == b.removeprefix("W/")


def _date(value: bytes) -> float | None:
    try:
        return parsedate_to_datetime(value.decode("latin-1")).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _range(value: bytes, size: int) -> tuple[int, int] | str | None:
    """One satisfiable (start, end inclusive), "unsatisfiable", or None to ignore the header."""
    text = value.decode("latin-1").strip()
    unit, _, spec = text.partition("=")
    if unit.strip().lower() != "bytes" or not spec or "," in spec:
        return None  # another unit, malformed, or several ranges: send the whole file
    first, dash, last = spec.strip().partition("-")
    if not dash or not (first.isdigit() or first == "") or not (last.isdigit() or last == ""):
        return None
    if first == "":
        if last == "":
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - suffix), size - 1
    start = int(first)
    if last and int(last) < start:
        return None  # invalid: ignored, the whole file is sent
    if start >= size:
        return "unsatisfiable"
    end = int(last) if last else size - 1
    return start, min(end, size - 1)


def plan(
    st: os.stat_result,
    request_headers: list[tuple[bytes, bytes]],
    *,
    name: str = "",
    content_type: str | None = None,
) -> FilePlan:
    """Decide the answer to a GET/HEAD of a file with status ``st``; see the module docstring.

    ``name`` picks the ``Content-Type`` by extension unless ``content_type``
    is given.

    Raises
    ------
    InvalidInput
        If ``st`` is not a regular file's status.
    """
    if not stat.S_ISREG(st.st_mode):
        raise InvalidInput("plan() serves regular files only")
    size = st.st_size
    etag = etag_of(st)
    mtime = int(st.st_mtime)
    kind = content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
    headers = [
        (b"content-type", kind.encode("latin-1")),
        (b"etag", etag.encode()),
        (b"last-modified", formatdate(mtime, usegmt=True).encode()),
        (b"accept-ranges", b"bytes"),
    ]

    if_match = _header(request_headers, b"if-match")
    if if_match is not None:
        tags = _tags(if_match)
        if tags is not None and etag not in tags:  # strong comparison
            return FilePlan(412, [*headers, (b"content-length", b"0")], 0, 0)
    else:
        since = _header(request_headers, b"if-unmodified-since")
        when = _date(since) if since is not None else None
        if when is not None and mtime > when:
            return FilePlan(412, [*headers, (b"content-length", b"0")], 0, 0)

    if_none = _header(request_headers, b"if-none-match")
    if if_none is not None:
        tags = _tags(if_none)
        if tags is None or any(_weak_equal(etag, t) for t in tags):
            return FilePlan(304, headers, 0, 0)
    else:
        since = _header(request_headers, b"if-modified-since")
        when = _date(since) if since is not None else None
        if when is not None and mtime <= when:
            return FilePlan(304, headers, 0, 0)

    wanted = _header(request_headers, b"range")
    if wanted is not None:
        if_range = _header(request_headers, b"if-range")
        if if_range is not None:
            text = if_range.decode("latin-1").strip()
            if text.startswith(('"', "W/")):
                fresh = text == etag  # If-Range needs a strong match
            else:
                when = _date(if_range)
                fresh = when is not None and mtime == int(when)
            if not fresh:
                wanted = None
    if wanted is not None:
        span = _range(wanted, size)
        if span == "unsatisfiable":
            return FilePlan(
                416,
                [*headers, (b"content-range", b"bytes */%d" % size), (b"content-length", b"0")],
                0,
                0,
            )
        if isinstance(span, tuple):
            start, end = span
            length = end - start + 1
            return FilePlan(
                206,
                [
                    *headers,
                    (b"content-range", b"bytes %d-%d/%d" % (start, end, size)),
                    (b"content-length", b"%d" % length),
                ],
                start,
                length,
            )
    return FilePlan(200, [*headers, (b"content-length", b"%d" % size)], 0, size)
