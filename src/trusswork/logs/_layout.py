"""A log store's directory: its lock, its description, its segments on open.

``LOCK`` is held (flock) while a process has the store open; ``store.json``
fixes the partition width when the store is created; ``hot/<window start
ms>/seg-*/`` hold the index segments.
"""

from __future__ import annotations

import fcntl
import math
import shutil
from pathlib import Path
from typing import IO

import orjson

from trusswork.core import config
from trusswork.core.errors import Corruption, InvalidInput, NotFound, Unavailable
from trusswork.core.files import replace_file
from trusswork.search._index import SegmentMeta, read_meta
from trusswork.search._segment import Segment

__all__ = [
    "DEFAULT_PARTITION_MS",
    "lock_store",
    "open_partitions",
    "positive_duration",
    "settle_partition",
]

DEFAULT_PARTITION_MS = 86_400_000


def positive_duration(value: str | float, what: str = "duration") -> float:
    """Seconds in ``value``: a number of seconds or text like ``30s``, ``5m``, ``1h30m``, ``1d``.

    Text is read by :func:`trusswork.core.config.parse_duration`; this adds
    numbers and the check that the duration is positive.

    Raises
    ------
    InvalidInput
        Not a positive duration (the message names ``what``).
    """
    if isinstance(value, bool):
        raise InvalidInput(f"{what} {value!r} is not a duration")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        try:
            seconds = config.parse_duration(value)
        except InvalidInput as exc:
            raise InvalidInput(f"{what} {exc}") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise InvalidInput(f"{what} {value!r} must be positive")
    return seconds


_STORE_FORMAT = 1


def lock_store(path: Path) -> IO[bytes]:
    """An exclusive lock on ``path/LOCK`` held while the store is open.

    Raises
    ------
    Unavailable
        Another process (or another LogStore in this one) has the store open.
    """
    handle = open(path / "LOCK", "a+b")  # noqa: SIM115  (held until close)
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise Unavailable(f"log store {path} is open in another process (LOCK is held)") from None
    return handle


def settle_partition(meta_path: Path, wanted_ms: int | None) -> int:
    """The store's partition width: saved on creation, the same on every open.

    Raises
    ------
    InvalidInput
        ``partition`` differs from the width the store was created with
        (its partitions would be read wrong).
    """
    try:
        saved = orjson.loads(meta_path.read_bytes())
    except FileNotFoundError:
        saved = None
    except orjson.JSONDecodeError as exc:
        raise Corruption(f"{meta_path}: not JSON ({exc})") from exc
    if saved is None:
        width = wanted_ms if wanted_ms is not None else DEFAULT_PARTITION_MS
        replace_file(meta_path, orjson.dumps({"format": _STORE_FORMAT, "partition_ms": width}))
        return width
    if not isinstance(saved, dict) or not isinstance(saved.get("partition_ms"), int):
        raise Corruption(f"{meta_path}: not a log store description")
    width = int(saved["partition_ms"])
    if wanted_ms is not None and wanted_ms != width:
        raise InvalidInput(
            f"partition={wanted_ms / 1000:g}s, but the store at {meta_path.parent} was created"
            f" with partitions of {width / 1000:g}s; open it without partition="
        )
    return width


def open_partitions(hot: Path, corrupt: list[tuple[Path, str]]) -> dict[int, list[Segment]]:
    """Open every complete segment under ``hot/<window start>/``.

    Cleans up after crashes: ``.tmp`` directories (a write cut short) and the
    inputs of a published merge are deleted. Damaged segments are appended to
    ``corrupt`` and skipped.
    """
    partitions: dict[int, list[Segment]] = {}
    for directory in sorted(hot.iterdir()):
        if not directory.is_dir():
            continue
        try:
            start = int(directory.name)
        except ValueError:
            continue
        segments = _open_segments(directory, corrupt)
        if segments:
            partitions[start] = segments
    return partitions


def _open_segments(directory: Path, corrupt: list[tuple[Path, str]]) -> list[Segment]:
    metas: list[SegmentMeta] = []
    for child in sorted(directory.iterdir()):
        if child.name.endswith(".tmp"):
            shutil.rmtree(child, ignore_errors=True)  # a write cut short by a crash
            continue
        if not child.is_dir():
            continue
        try:
            metas.append(read_meta(child))
        except (Corruption, NotFound) as exc:
            corrupt.append((child, str(exc)))
    replaced = {name for meta in metas for name in meta.merged_from}
    segments = []
    for meta in metas:
        if meta.segment_id in replaced:
            # A merge published its result but died before deleting its inputs.
            shutil.rmtree(meta.path, ignore_errors=True)
            continue
        try:
            segments.append(Segment.open(meta.path))
        except Corruption as exc:
            corrupt.append((meta.path, str(exc)))
    return segments
