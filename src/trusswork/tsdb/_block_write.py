"""Writing blocks atomically, and deleting them (format: :mod:`trusswork.tsdb._block_format`).

:func:`write_block` writes a raw block; :func:`_write_columns` writes raw or
rollup columns and is what :mod:`trusswork.tsdb._compact` merges and
downsamples through. Block ids come from :func:`_new_block_id`.

Guarantees
----------
- Atomic: :func:`write_block` writes ``<id>.tmp/``, fsyncs every file and the
  directory, renames it to ``<id>/`` and fsyncs the parent, so a crash leaves
  no block or a whole one; :func:`cleanup_tmp` removes what a crash left.
  :func:`delete_block` renames before removing, for the same reason.
- Ordered ids: a new block's id sorts above every id this process made and
  above every block (finished or not) in its parent directory.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import struct
import threading
import time
from collections.abc import Iterable
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from trusswork.core.checksum import crc32c
from trusswork.core.errors import InvalidInput, NotFound
from trusswork.core.files import fsync_directory, publish_directory, write_file
from trusswork.search.postings import encode_postings
from trusswork.tsdb import codec
from trusswork.tsdb._block_format import (
    _CHUNK_ROW,
    _CHUNKS_MAGIC,
    _CROCKFORD,
    _FORMAT_VERSION,
    _FRAME,
    _HEADER,
    _ID_PATTERN,
    _INDEX_MAGIC,
    _MAX_CHUNK_SAMPLES,
    _POSTING_ROW,
    _TMP_PATTERN,
    _TOC,
    AGGREGATES,
    DEFAULT_CHUNK_SAMPLES,
    BlockMeta,
    Columns,
    Float64Array,
    Int64Array,
)
from trusswork.tsdb._series import Labels

__all__ = ["cleanup_tmp", "delete_block", "write_block"]

_id_lock = threading.Lock()
_last_id = 0


def _new_block_id(after: str | None = None) -> str:
    """A fresh id above every id this process made and above ``after``.

    Ids are the creation time in ms (48 bits) then 80 random bits; when the
    clock stands still or went back, the id is the floor plus one, so ids
    keep sorting in creation order.
    """
    global _last_id
    floor = 0 if after is None else _id_value(after)
    with _id_lock:
        value = ((time.time_ns() // 1_000_000) << 80) | secrets.randbits(80)
        value = max(value, _last_id + 1, floor + 1)
        _last_id = value
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def _id_value(block_id: str) -> int:
    value = 0
    for char in block_id:
        value = value * 32 + _CROCKFORD.index(char)
    return value


def _newest_id(parent: Path) -> str | None:
    """The highest block id (finished or not) in ``parent``."""
    names = [entry.name.removesuffix(".tmp") for entry in parent.iterdir()]
    return max((name for name in names if _ID_PATTERN.match(name)), default=None)


# ------------------------------------------------------------------ writing


def write_block(
    parent: Path,
    series: Iterable[tuple[Labels, npt.ArrayLike, npt.ArrayLike]],
    *,
    mint: int,
    maxt: int,
    resolution: int = 0,
    level: int = 1,
    sources: tuple[str, ...] = (),
    chunk_samples: int = DEFAULT_CHUNK_SAMPLES,
) -> BlockMeta:
    """Write a raw block of ``series`` under ``parent`` atomically.

    Parameters
    ----------
    parent:
        Directory of blocks; created if missing. The block becomes
        ``parent/<id>/`` only once all of it is durable.
    series:
        ``(labels, timestamps, values)`` in any order; labels canonical (see
        :func:`~trusswork.tsdb._series.labels_of`) and unique, timestamps
        strictly ascending int64 ms within ``[mint, maxt]``. Series without
        samples are left out.
    mint, maxt:
        Inclusive time range the block covers.
    resolution:
        Must be 0: rollup blocks are made by
        :func:`~trusswork.tsdb._compact.downsample`.
    level, sources:
        Compaction level and the level-1 ids merged into the block; a
        level-1 block with no sources lists its own id.
    chunk_samples:
        Samples per chunk, at most 1,048,576.

    Returns
    -------
    BlockMeta
        The metadata written as ``meta.json``.

    Raises
    ------
    InvalidInput
        Bad arguments or series; nothing is left on disk.
    """
    if resolution != 0:
        raise InvalidInput("write_block writes raw blocks (resolution=0); use downsample()")
    columns = (_raw_columns(labels, ts, values) for labels, ts, values in series)
    return _write_columns(
        parent,
        columns,
        mint=mint,
        maxt=maxt,
        resolution=0,
        level=level,
        sources=sources,
        chunk_samples=chunk_samples,
    )


def _raw_columns(labels: Labels, ts: npt.ArrayLike, values: npt.ArrayLike) -> Columns:
    try:
        column = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInput(f"series {labels!r}: values must be floats") from None
    return labels, _as_timestamps(ts), [column]


def _as_timestamps(ts: npt.ArrayLike) -> Int64Array:
    arr = np.asarray(ts)
    if arr.size and arr.dtype.kind not in "iu":
        raise InvalidInput(f"timestamps must be integers (ms), got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _check_labels(labels: Labels) -> Labels:
    try:
        pairs = tuple((name, value) for name, value in labels)
    except (TypeError, ValueError):
        raise InvalidInput(f"labels must be (name, value) pairs, got {labels!r}") from None
    for name, value in pairs:
        if not isinstance(name, str) or not isinstance(value, str) or not name or not value:
            raise InvalidInput(f"labels {pairs!r}: names and values must be non-empty strings")
    if any(a[0] >= b[0] for a, b in pairwise(pairs)):
        raise InvalidInput(f"labels {pairs!r} are not sorted by unique name; use labels_of()")
    return pairs


def _check_samples(
    labels: Labels, ts: Int64Array, cols: list[Float64Array], mint: int, maxt: int
) -> None:
    if ts.ndim != 1 or any(col.shape != ts.shape for col in cols):
        raise InvalidInput(f"series {labels!r}: timestamps and values must be 1-d, same length")
    if len(ts) == 0:
        return
    if len(ts) > 1 and not bool(np.all(ts[1:] > ts[:-1])):
        raise InvalidInput(f"series {labels!r}: timestamps are not strictly ascending")
    if int(ts[0]) < mint or int(ts[-1]) > maxt:
        raise InvalidInput(
            f"series {labels!r}: samples from {int(ts[0])} to {int(ts[-1])} fall outside "
            f"the block range [{mint}, {maxt}]"
        )


def _write_columns(
    parent: Path,
    series: Iterable[Columns],
    *,
    mint: int,
    maxt: int,
    resolution: int,
    level: int,
    sources: tuple[str, ...],
    chunk_samples: int = DEFAULT_CHUNK_SAMPLES,
    after: str | None = None,
) -> BlockMeta:
    """Write a block of raw (one column) or rollup (five columns) series.

    The block's id sorts above ``after`` and above every block in ``parent``.
    """
    if not mint <= maxt:
        raise InvalidInput(f"block range [{mint}, {maxt}] is empty")
    if resolution < 0:
        raise InvalidInput(f"resolution must be >= 0, got {resolution}")
    if level < 1:
        raise InvalidInput(f"level must be >= 1, got {level}")
    if not 1 <= chunk_samples <= _MAX_CHUNK_SAMPLES:
        raise InvalidInput(f"chunk_samples must be in 1..{_MAX_CHUNK_SAMPLES}, got {chunk_samples}")
    for source in sources:
        if not _ID_PATTERN.match(source):
            raise InvalidInput(f"source {source!r} is not a block id")
    width = len(AGGREGATES) if resolution else 1
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    block_id = _new_block_id(max(filter(None, (after, _newest_id(parent))), default=None))
    tmp = parent / f"{block_id}.tmp"
    tmp.mkdir()
    try:
        entries: list[tuple[Labels, list[tuple[int, int, int, int, int]]]] = []
        seen: set[Labels] = set()
        num_samples = 0
        with open(tmp / "chunks", "wb", buffering=1 << 20) as file:
            file.write(_HEADER.pack(_CHUNKS_MAGIC, _FORMAT_VERSION))
            position = _HEADER.size
            for raw_labels, ts, cols in series:
                labels = _check_labels(raw_labels)
                if len(cols) != width:
                    raise InvalidInput(f"series {labels!r}: expected {width} value columns")
                _check_samples(labels, ts, cols, mint, maxt)
                if labels in seen:
                    raise InvalidInput(f"series {labels!r} given twice")
                seen.add(labels)
                if len(ts) == 0:
                    continue
                rows = []
                for start in range(0, len(ts), chunk_samples):
                    part = ts[start : start + chunk_samples]
                    for kind, col in enumerate(cols):
                        payload = codec.encode(part, col[start : start + chunk_samples])
                        file.write(_FRAME.pack(len(payload), crc32c(payload)))
                        file.write(payload)
                        rows.append((position, int(part[0]), int(part[-1]), len(part), kind))
                        position += _FRAME.size + len(payload)
                entries.append((labels, rows))
                num_samples += len(ts)
            file.flush()
            os.fsync(file.fileno())
        entries.sort(key=lambda entry: entry[0])
        write_file(tmp / "index", _build_index(entries, position))
        meta = BlockMeta(
            id=block_id,
            mint=mint,
            maxt=maxt,
            num_series=len(entries),
            num_samples=num_samples,
            num_chunks=sum(len(rows) for _, rows in entries),
            resolution=resolution,
            level=level,
            sources=tuple(sources) or ((block_id,) if level == 1 else ()),
        )
        body = {"version": _FORMAT_VERSION, **_meta_fields(meta)}
        write_file(tmp / "meta.json", (json.dumps(body, indent=1) + "\n").encode())
        publish_directory(tmp, parent / block_id)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


def _meta_fields(meta: BlockMeta) -> dict[str, Any]:
    return {
        "id": meta.id,
        "mint": meta.mint,
        "maxt": meta.maxt,
        "num_series": meta.num_series,
        "num_samples": meta.num_samples,
        "num_chunks": meta.num_chunks,
        "resolution": meta.resolution,
        "level": meta.level,
        "sources": list(meta.sources),
    }


def _padded(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 8)


def _starts(lengths: list[int]) -> npt.NDArray[np.uint64]:
    """Offsets where each of consecutive items of these lengths starts, plus the total."""
    out = np.zeros(len(lengths) + 1, dtype="<u8")
    out[1:] = np.cumsum(np.array(lengths, dtype=np.int64))
    return out


def _build_index(
    entries: list[tuple[Labels, list[tuple[int, int, int, int, int]]]], chunks_size: int
) -> bytes:
    symbol_set = {text for labels, _ in entries for pair in labels for text in pair}
    symbols = sorted(symbol_set)
    refs = {text: ref for ref, text in enumerate(symbols)}
    encoded = [text.encode() for text in symbols]
    offsets = _starts([len(e) for e in encoded])
    symbols_section = struct.pack("<Q", len(symbols)) + offsets.tobytes() + b"".join(encoded)

    label_start = _starts([len(labels) for labels, _ in entries])
    chunk_start = _starts([len(rows) for _, rows in entries])
    pairs = np.array(
        [(refs[name], refs[value]) for labels, _ in entries for name, value in labels],
        dtype="<u4",
    ).reshape(-1, 2)
    chunk_rows = np.array([row for _, rows in entries for row in rows], dtype=_CHUNK_ROW)
    series_section = (
        struct.pack("<QQQ", len(entries), len(pairs), len(chunk_rows))
        + label_start.tobytes()
        + chunk_start.tobytes()
        + pairs.tobytes()
        + chunk_rows.tobytes()
    )

    postings: dict[tuple[int, int], list[int]] = {}
    for series_id, (labels, _) in enumerate(entries):
        for name, value in labels:
            postings.setdefault((refs[name], refs[value]), []).append(series_id)
    posting_rows = np.zeros(len(postings), dtype=_POSTING_ROW)
    blobs = []
    offset = 0
    for i, key in enumerate(sorted(postings)):
        ids = postings[key]
        blob = encode_postings(np.array(ids, dtype=np.uint32))
        posting_rows[i] = (key[0], key[1], len(ids), len(blob), offset)
        blobs.append(blob)
        offset += len(blob)
    postings_section = (
        struct.pack("<Q", len(posting_rows)) + posting_rows.tobytes() + b"".join(blobs)
    )

    out = bytearray(_HEADER.pack(_INDEX_MAGIC, _FORMAT_VERSION))
    toc: list[int] = []
    for section in (symbols_section, series_section, postings_section):
        padded = _padded(section)
        toc += [len(out), len(padded), crc32c(padded)]
        out += padded
    toc_bytes = _TOC.pack(*toc, chunks_size)
    out += toc_bytes + struct.pack("<I", crc32c(toc_bytes)) + _INDEX_MAGIC
    return bytes(out)


# ------------------------------------------------------------------ maintenance


def cleanup_tmp(parent: Path) -> list[Path]:
    """Remove what interrupted writes and deletions left in ``parent``.

    Only ``<id>.tmp`` directories are touched. Call it when opening the
    store, before anything writes blocks there.

    Returns
    -------
    list of Path
        The directories removed.
    """
    parent = Path(parent)
    if not parent.is_dir():
        return []
    removed = []
    for entry in sorted(parent.iterdir()):
        if _TMP_PATTERN.match(entry.name) and entry.is_dir():
            shutil.rmtree(entry)
            removed.append(entry)
    return removed


def delete_block(path: Path) -> None:
    """Delete a block so that a crash part-way leaves only a ``.tmp`` leftover.

    The directory is renamed to ``<id>.tmp`` (durably) before its files are
    removed; :func:`cleanup_tmp` finishes the job after a crash.
    """
    path = Path(path)
    if not _ID_PATTERN.match(path.name):
        raise InvalidInput(f"{path} is not a block directory")
    if not path.is_dir():
        raise NotFound(f"no block at {path}")
    doomed = path.with_name(path.name + ".tmp")
    os.rename(path, doomed)
    fsync_directory(path.parent)
    shutil.rmtree(doomed)
