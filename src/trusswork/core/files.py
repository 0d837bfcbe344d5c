"""Durable file operations: what every store needs to survive a crash or power loss.

A write is durable once the file's data is fsynced; a new or renamed name is
durable once its directory is fsynced too. These are the few sequences the
write-ahead log, the B+tree, the time-series blocks and the search segments
all rely on:

- :func:`write_file`: write bytes and fsync them;
- :func:`replace_file`: replace a small file atomically (a reader sees the
  old or the new content, never a mix) and durably;
- :func:`publish_directory`: give a finished temporary directory its final
  name, so a crash leaves either nothing or the whole directory;
- :func:`fsync_directory`: make the names in a directory durable.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["fsync_directory", "publish_directory", "replace_file", "write_file"]


def fsync_directory(path: str | os.PathLike[str]) -> None:
    """Make the entries of directory ``path`` (files created, renamed, removed) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(path: str | os.PathLike[str], data: bytes) -> None:
    """Create or truncate ``path``, write ``data`` and fsync it (the name is not synced)."""
    with open(path, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def replace_file(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace ``path`` by ``data`` atomically and durably (through ``<path>.tmp``)."""
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    write_file(tmp, data)
    os.replace(tmp, target)
    fsync_directory(target.parent)


def publish_directory(tmp: str | os.PathLike[str], final: str | os.PathLike[str]) -> None:
    """Rename the finished directory ``tmp`` (files already fsynced) to ``final``, durably."""
    fsync_directory(tmp)
    os.rename(tmp, final)
    fsync_directory(Path(final).parent)
