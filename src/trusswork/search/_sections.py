"""Checksummed section files: the on-disk framing of every index segment file.

A file is a header followed by sections::

    header  : magic b"TWSECT01" | u32 section count | u32 crc32c(magic + count)
    section : u64 payload length | u32 crc32c(payload) | u32 zero | payload
              | zero padding to a multiple of 8 bytes

Payloads start 8-byte aligned, so numpy views them in place from an mmap.
Reading checks every length against the file size and every checksum, and
raises :class:`~trusswork.core.errors.Corruption` naming the file and the
byte offset of the first damage; nothing outside the file is ever read.
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Sequence
from pathlib import Path

from trusswork.core.checksum import crc32c
from trusswork.core.errors import Corruption

__all__ = ["read_sections", "write_sections"]

_MAGIC = b"TWSECT01"
_HEADER = struct.Struct("<8sII")
_SECTION = struct.Struct("<QII")


def write_sections(path: Path, sections: Sequence[bytes | memoryview]) -> None:
    """Write ``sections`` to ``path`` and fsync it."""
    head = _MAGIC + struct.pack("<I", len(sections))
    with open(path, "wb") as out:
        out.write(head + struct.pack("<I", crc32c(head)))
        for payload in sections:
            out.write(_SECTION.pack(len(payload), crc32c(payload), 0))
            out.write(payload)
            out.write(b"\0" * (-len(payload) % 8))
        out.flush()
        os.fsync(out.fileno())


def read_sections(path: Path, count: int) -> tuple[mmap.mmap, list[memoryview]]:
    """Map ``path`` and return views of its ``count`` sections, all checked."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < _HEADER.size:
                raise Corruption(f"{path}: truncated header at offset 0 ({size} bytes)")
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as exc:
        raise Corruption(f"{path}: cannot be read ({exc}); the segment is incomplete") from exc
    view = memoryview(mapped)
    magic, found, crc = _HEADER.unpack_from(view, 0)
    if magic != _MAGIC or crc32c(view[:12]) != crc or found != count:
        raise Corruption(f"{path}: bad header at offset 0 (expected {count} sections)")
    sections = []
    offset = _HEADER.size
    for index in range(count):
        if offset + _SECTION.size > size:
            raise Corruption(f"{path}: section {index} header past the end at offset {offset}")
        length, crc, _ = _SECTION.unpack_from(view, offset)
        start = offset + _SECTION.size
        if start + length > size:
            raise Corruption(
                f"{path}: section {index} length {length} past the end at offset {offset}"
            )
        payload = view[start : start + length]
        if crc32c(payload) != crc:
            raise Corruption(f"{path}: checksum mismatch in section {index} at offset {start}")
        sections.append(payload)
        offset = start + length
        padding = -length % 8
        if bytes(view[offset : offset + padding]) != b"\0" * padding:
            raise Corruption(f"{path}: non-zero padding after section {index} at offset {offset}")
        offset += padding
    if offset != size:
        raise Corruption(f"{path}: {size - offset} unexpected trailing bytes at offset {offset}")
    return mapped, sections
