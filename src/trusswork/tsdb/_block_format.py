"""The on-disk block format: layout, constants and metadata shared by writer and reader.

A block holds every sample of a set of series in a time range ``[mint, maxt]``
(ms, inclusive). It is written once, then only read, merged with others
(:mod:`trusswork.tsdb._compact`) or deleted whole. One directory per block,
named by its id (26 Crockford base32 characters: a 48-bit millisecond time
then 80 random bits, so ids sort by creation time)::

    <parent>/<id>/chunks      encoded chunks, each framed with length + CRC32C
    <parent>/<id>/index       symbols, series, postings, table of contents
    <parent>/<id>/meta.json   BlockMeta and the format version

Format (integers little-endian)
-------------------------------
``chunks``
    ``TWCK`` + u32 version, then frames ``u32 length | u32 crc32c(payload) |
    payload`` where the payload is :func:`trusswork.tsdb.codec.encode` of one
    chunk's timestamps and values. A chunk is referred to by its frame's offset.
``index``
    ``TWIX`` + u32 version, three sections (each zero-padded to 8 bytes, the
    padding inside its checksum), then the table of contents:

    - symbols: u64 n, u64 byte offsets[n + 1], UTF-8 blob. Every label name
      and value once, sorted; everything else refers to them by position.
    - series: u64 series count N, u64 label-pair count, u64 chunk-row count,
      u64 label_start[N + 1], u64 chunk_start[N + 1], u32 (name, value)
      symbol pairs, chunk rows (u64 offset, i64 mint, i64 maxt, u32 count,
      u32 kind). Series are sorted by labels and a series' id is its position.
    - postings: u64 entry count, rows (u32 name, u32 value, u32 series count,
      u32 length, u64 offset) sorted by (name, value), then a blob of
      :func:`trusswork.search.postings.encode_postings` lists of series ids.
    - table of contents: (u64 offset, u64 length, u32 crc32c) per section,
      u64 size of ``chunks``, u32 crc32c of the preceding 68 bytes, ``TWIX``.

Raw blocks (``resolution == 0``) keep one chunk row per chunk (kind 0).
Rollup blocks keep five rows per chunk, kinds 0-4 holding the ``min``,
``max``, ``sum``, ``count`` and ``last`` of each window over the same
timestamps.

Blocks are written and deleted by :mod:`trusswork.tsdb._block_write` and
read by :class:`trusswork.tsdb._block.Block`; both take every constant of
the format from here.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from trusswork.tsdb._series import Labels

__all__ = [
    "AGGREGATES",
    "DEFAULT_CHUNK_SAMPLES",
    "Aggregate",
    "BlockMeta",
    "Columns",
    "Float64Array",
    "Int64Array",
]

Aggregate = Literal["min", "max", "sum", "count", "last"]
#: The columns of a rollup block, in their stored order (chunk kinds 0-4).
AGGREGATES: tuple[Aggregate, ...] = ("min", "max", "sum", "count", "last")

#: Samples per chunk: a 2 h block at a 15 s scrape interval (480 samples)
#: is one chunk per series; denser series are cut so that a query touches
#: at most a few thousand samples it does not need.
DEFAULT_CHUNK_SAMPLES = 1024
_MAX_CHUNK_SAMPLES = 1 << 20

_FORMAT_VERSION = 1
_CHUNKS_MAGIC = b"TWCK"
_INDEX_MAGIC = b"TWIX"
_HEADER = struct.Struct("<4sI")
_FRAME = struct.Struct("<II")
_TOC = struct.Struct("<QQIQQIQQIQ")
_FOOTER_SIZE = _TOC.size + 8
_SECTIONS = ("symbols", "series", "postings")

_CHUNK_ROW = np.dtype(
    [("offset", "<u8"), ("mint", "<i8"), ("maxt", "<i8"), ("count", "<u4"), ("kind", "<u4")]
)
_POSTING_ROW = np.dtype(
    [("name", "<u4"), ("value", "<u4"), ("count", "<u4"), ("length", "<u4"), ("offset", "<u8")]
)
_ID_PATTERN = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
_TMP_PATTERN = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}\.tmp$")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

Int64Array = npt.NDArray[np.int64]
Float64Array = npt.NDArray[np.float64]
#: One series as the writer and the merger see it: labels, timestamps and
#: one value column (raw) or five (rollup, in AGGREGATES order).
Columns = tuple[Labels, Int64Array, list[Float64Array]]


@dataclass(frozen=True)
class BlockMeta:
    """What a block holds, stored beside it as ``meta.json``.

    Attributes
    ----------
    id:
        Sortable unique id, also the directory name; later blocks sort higher.
    mint, maxt:
        Inclusive time range (ms) the block covers; every sample lies in it.
    num_series, num_samples, num_chunks:
        Counts; for rollups a sample is one window and each of a window's
        five aggregates is its own chunk.
    resolution:
        0 for raw samples, the window length in ms for a rollup block.
    level:
        Compaction level: 1 for blocks cut from the head, one more than the
        highest input for a merged block.
    sources:
        Ids of the level-1 blocks whose samples this block holds (a level-1
        block lists itself).
    """

    id: str
    mint: int
    maxt: int
    num_series: int
    num_samples: int
    num_chunks: int
    resolution: int
    level: int
    sources: tuple[str, ...]
