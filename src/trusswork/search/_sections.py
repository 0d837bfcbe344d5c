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

import bisect
import mmap
import os
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import zstandard

from trusswork.core.checksum import crc32c
from trusswork.core.errors import Corruption

__all__ = [
    "Blocks",
    "Dictionary",
    "check_offsets",
    "compress_blocks",
    "decode_varint_list",
    "dictionary_bases",
    "encode_varint_lists",
    "narrow",
    "read_sections",
    "unsigned",
    "write_dictionary",
    "write_sections",
]

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
        length, crc, reserved = _SECTION.unpack_from(view, offset)
        if reserved:
            raise Corruption(f"{path}: section {index} header is damaged at offset {offset}")
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
            raise Corruption(
                f"{path}: non-zero padding after section {index} at offset {offset}"
                " (the bytes outside every checksum must be zero)"
            )
        offset += padding
    if offset != size:
        raise Corruption(f"{path}: {size - offset} unexpected trailing bytes at offset {offset}")
    return mapped, sections


# ------------------------------------------------- arrays inside sections


def narrow(values: npt.NDArray[Any]) -> bytes:
    """``values`` (non-negative integers) in the narrowest unsigned dtype holding them.

    Readers know how many items such a section holds, so its length gives
    the item size (:func:`unsigned`).
    """
    top = int(values.max()) if values.size else 0
    for dtype in (np.uint8, np.uint16, np.uint32):
        if top <= np.iinfo(dtype).max:
            return values.astype(dtype).tobytes()
    return values.astype(np.uint64).tobytes()


def unsigned(view: memoryview | bytes, count: int, where: str) -> npt.NDArray[Any]:
    """The ``count`` unsigned integers of a :func:`narrow` section."""
    if len(view) == 0 and count == 0:
        return np.empty(0, dtype=np.uint8)
    itemsize, extra = divmod(len(view), count) if count else (0, 1)
    if extra or itemsize not in (1, 2, 4, 8):
        raise Corruption(f"{where}: {len(view)} bytes cannot hold {count} unsigned integers")
    return np.frombuffer(view, dtype=f"<u{itemsize}")


def check_offsets(offsets: npt.NDArray[Any], end: int, where: str) -> None:
    """Raise Corruption unless ``offsets`` rise (weakly) from 0 to ``end``."""
    if (
        offsets.size == 0
        or offsets[0] != 0
        or offsets[-1] != end
        or np.any(offsets[1:] < offsets[:-1])
    ):
        raise Corruption(f"{where}: offsets are not increasing from 0 to {end}")


def compress_blocks(values: npt.NDArray[Any], per_block: int, level: int) -> list[bytes]:
    """Non-negative integers in zstd frames of ``per_block`` values each.

    Sections: the width (one byte: the narrowest unsigned size holding every
    value), the frames' narrow offsets, the frames. Readers know how many
    values there are, hence how many frames and the size of each.
    """
    top = int(values.max()) if values.size else 0
    width = next((w for w in (1, 2, 4) if top < 1 << (8 * w)), 8)
    data = values if values.dtype == np.dtype(f"<u{width}") else values.astype(f"<u{width}")
    view = memoryview(np.ascontiguousarray(data).tobytes())
    step = per_block * width
    compressor = zstandard.ZstdCompressor(level=level, write_checksum=True)
    frames = [compressor.compress(view[i : i + step]) for i in range(0, len(view), step)]
    offsets = np.zeros(len(frames) + 1, dtype=np.uint64)
    np.cumsum([len(f) for f in frames], out=offsets[1:])
    return [bytes([width]), narrow(offsets), b"".join(frames)]


class Blocks:
    """Reads ``count`` values that :func:`compress_blocks` wrote, a frame at a time."""

    def __init__(
        self, sections: Sequence[memoryview], count: int, per_block: int, where: str
    ) -> None:
        if len(sections[0]) != 1 or sections[0][0] not in (1, 2, 4, 8):
            raise Corruption(f"{where}: bad block value width")
        frames = -(-count // per_block)
        self.width = int(sections[0][0])
        self.offsets = unsigned(sections[1], frames + 1, where)
        check_offsets(self.offsets, len(sections[2]), where)
        self._frames = sections[2]
        self._count = count
        self._per_block = per_block
        self._where = where
        self._cache: dict[int, npt.NDArray[Any]] = {}
        self._decompressor = zstandard.ZstdDecompressor()

    def __len__(self) -> int:
        return self._count

    def frame(self, index: int) -> npt.NDArray[Any]:
        """The values of frame ``index``."""
        cached = self._cache.get(index)
        if cached is not None:
            return cached
        if not 0 <= index < self.offsets.size - 1:
            raise Corruption(f"{self._where}: block {index} is past the last one")
        lo, hi = int(self.offsets[index]), int(self.offsets[index + 1])
        size = min(self._per_block, self._count - index * self._per_block) * self.width
        try:
            data = self._decompressor.decompress(self._frames[lo:hi], max_output_size=size)
        except zstandard.ZstdError as exc:
            raise Corruption(
                f"{self._where}: block {index} at offset {lo} does not decompress"
            ) from exc
        if len(data) != size:
            raise Corruption(
                f"{self._where}: block {index} at offset {lo} holds {len(data)} bytes, not {size}"
            )
        if len(self._cache) >= 16:
            self._cache.clear()
        self._cache[index] = values = np.frombuffer(data, dtype=f"<u{self.width}")
        return values

    def slice(self, lo: int, hi: int) -> npt.NDArray[Any]:
        """Values ``lo..hi-1`` (which the caller checked are within the count)."""
        if hi <= lo:
            return np.empty(0, dtype=f"<u{self.width}")
        first, last = lo // self._per_block, (hi - 1) // self._per_block
        parts = [self.frame(i) for i in range(first, last + 1)]
        joined = parts[0] if len(parts) == 1 else np.concatenate(parts)
        base = first * self._per_block
        return joined[lo - base : hi - base]


# ------------------------------------------------- block dictionaries

DICTIONARY_BLOCK = 128
"""Keys per dictionary block: a lookup decompresses one block and scans it."""

DICTIONARY_SECTIONS = 4
"""Sections of a dictionary before its per-block bases."""


def write_dictionary(
    blob: bytes,
    key_offsets: npt.NDArray[Any],
    columns: Sequence[npt.NDArray[Any]],
    bases: Sequence[npt.NDArray[Any]],
    level: int = 1,
) -> list[bytes]:
    """A sorted key dictionary in zstd blocks, with per-key integer columns.

    Sections: the first key of each block (bytes, then narrow offsets) so a
    lookup bisects them; the blocks' frames (narrow offsets, then frames);
    then one section per entry of ``bases`` (a per-block running total the
    caller chose, ``len(blocks) + 1`` items). A block of ``c`` keys holds
    one width byte per array, the keys' byte lengths, each column's ``c``
    values (each in its own narrowest width, chosen per whole column) and
    the key bytes: zstd compresses the shared prefixes of sorted keys.
    """
    n = int(key_offsets.size) - 1
    starts = np.arange(0, n, DICTIONARY_BLOCK)
    arrays = [np.diff(key_offsets.astype(np.int64)), *columns]
    packed = [narrow(a) for a in arrays]
    widths = [len(p) // n if n else 1 for p in packed]
    header = bytes(widths)
    compressor = zstandard.ZstdCompressor(level=level, write_checksum=True)
    frames = []
    offsets_list = key_offsets.tolist()
    firsts = []
    for start in starts.tolist():
        end = min(start + DICTIONARY_BLOCK, n)
        firsts.append(blob[offsets_list[start] : offsets_list[start + 1]])
        parts = [header]
        parts.extend(p[start * w : end * w] for p, w in zip(packed, widths, strict=True))
        parts.append(blob[offsets_list[start] : offsets_list[end]])
        frames.append(compressor.compress(b"".join(parts)))
    first_offsets = np.zeros(len(firsts) + 1, dtype=np.uint64)
    np.cumsum([len(f) for f in firsts], out=first_offsets[1:])
    frame_offsets = np.zeros(len(frames) + 1, dtype=np.uint64)
    np.cumsum([len(f) for f in frames], out=frame_offsets[1:])
    return [
        b"".join(firsts),
        narrow(first_offsets),
        narrow(frame_offsets),
        b"".join(frames),
        *(narrow(b) for b in bases),
    ]


def dictionary_bases(values: npt.NDArray[Any], n: int) -> npt.NDArray[np.uint64]:
    """Running totals of ``values`` at each dictionary block start, and the total."""
    totals = np.zeros(n + 1, dtype=np.uint64)
    np.cumsum(values, out=totals[1:])
    return np.append(totals[0:n:DICTIONARY_BLOCK], totals[-1])


class Dictionary:
    """Reads a :func:`write_dictionary` dictionary of ``count`` keys and ``columns`` columns."""

    def __init__(
        self, sections: Sequence[memoryview], count: int, columns: int, where: str
    ) -> None:
        blocks = -(-count // DICTIONARY_BLOCK)
        self._count = count
        self._columns = columns
        self._where = where
        self._firsts = sections[0]
        self._first_offsets = unsigned(sections[1], blocks + 1, where)
        check_offsets(self._first_offsets, len(self._firsts), where)
        self._frame_offsets = unsigned(sections[2], blocks + 1, where)
        check_offsets(self._frame_offsets, len(sections[3]), where)
        self._frames = sections[3]
        self.bases = [unsigned(s, blocks + 1, where) for s in sections[DICTIONARY_SECTIONS:]]
        for base in self.bases:
            check_offsets(base, int(base[-1]) if base.size else 0, where)
        self._cache: dict[int, tuple[list[bytes], list[npt.NDArray[Any]]]] = {}
        self._decompressor = zstandard.ZstdDecompressor()

    def __len__(self) -> int:
        return self._count

    def _first(self, block: int) -> bytes:
        lo, hi = int(self._first_offsets[block]), int(self._first_offsets[block + 1])
        return bytes(self._firsts[lo:hi])

    def block(self, block: int) -> tuple[list[bytes], list[npt.NDArray[Any]]]:
        """The keys of ``block`` and its column values (each a numpy array)."""
        cached = self._cache.get(block)
        if cached is not None:
            return cached
        where = f"{self._where}: dictionary block {block}"
        lo, hi = int(self._frame_offsets[block]), int(self._frame_offsets[block + 1])
        try:
            data = self._decompressor.decompress(self._frames[lo:hi])
        except zstandard.ZstdError as exc:
            raise Corruption(f"{where} at offset {lo} does not decompress") from exc
        count = min(DICTIONARY_BLOCK, self._count - block * DICTIONARY_BLOCK)
        arity = self._columns + 1
        widths = list(data[:arity])
        at = arity
        arrays = []
        for width in widths:
            if width not in (1, 2, 4, 8) or at + width * count > len(data):
                raise Corruption(f"{where} at offset {lo} has a bad layout")
            arrays.append(np.frombuffer(data, dtype=f"<u{width}", count=count, offset=at))
            at += width * count
        ends = np.cumsum(arrays[0], dtype=np.int64) + at
        if len(data) != (int(ends[-1]) if count else at):
            raise Corruption(f"{where} at offset {lo}: key bytes do not match their lengths")
        bounds = [at, *ends.tolist()]
        keys = [data[bounds[i] : bounds[i + 1]] for i in range(count)]
        if keys and keys[0] != self._first(block):
            raise Corruption(f"{where} at offset {lo}: first key does not match the index")
        if len(self._cache) >= 256:
            self._cache.clear()
        self._cache[block] = result = (keys, arrays[1:])
        return result

    def key(self, index: int) -> bytes:
        """The key at ``index``."""
        return self.block(index // DICTIONARY_BLOCK)[0][index % DICTIONARY_BLOCK]

    def bisect_left(self, key: bytes) -> int:
        """The first index whose key is ``>= key``."""
        blocks = self._first_offsets.size - 1
        lo, hi = 0, blocks
        while lo < hi:  # the last block whose first key is < key
            mid = (lo + hi) // 2
            if self._first(mid) < key:
                lo = mid + 1
            else:
                hi = mid
        if lo == 0:
            return 0
        keys = self.block(lo - 1)[0]
        return (lo - 1) * DICTIONARY_BLOCK + bisect.bisect_left(keys, key)

    def find(self, key: bytes) -> int:
        """Index of ``key``, or -1."""
        at = self.bisect_left(key)
        return at if at < self._count and self.key(at) == key else -1

    def keys(self, lo: int, hi: int) -> list[bytes]:
        """The keys at ``lo..hi-1``."""
        out: list[bytes] = []
        for block in range(lo // DICTIONARY_BLOCK, -(-hi // DICTIONARY_BLOCK)):
            first = block * DICTIONARY_BLOCK
            keys = self.block(block)[0]
            out.extend(keys[max(lo - first, 0) : hi - first])
        return out

    def entry(self, index: int) -> list[int]:
        """The column values of key ``index``."""
        block, at = divmod(index, DICTIONARY_BLOCK)
        return [int(a[at]) for a in self.block(block)[1]]


# ------------------------------------------------- short posting lists


def encode_varint_lists(
    rows: npt.NDArray[Any], counts: npt.NDArray[np.int64]
) -> tuple[bytes, npt.NDArray[np.int64]]:
    """Short sorted lists (``counts[i]`` rows each, every count >= 1) as LEB128
    varints of the first row and then of each gap minus one; and each list's
    byte length.

    Cheaper than :func:`~trusswork.search.postings.encode_postings` (15
    bytes of header and skip table) for lists of a few dozen rows.
    """
    values = rows.astype(np.int64)
    starts = np.cumsum(counts) - counts
    gaps = np.empty_like(values)
    if values.size:
        gaps[1:] = values[1:] - values[:-1] - 1
        gaps[starts] = values[starts]
    sizes = np.ones(gaps.size, dtype=np.int64)
    for k in range(1, 5):
        sizes += gaps >= 1 << (7 * k)
    ends = np.cumsum(sizes)
    out = np.zeros(int(ends[-1]) if ends.size else 0, dtype=np.uint8)
    first = ends - sizes
    for k in range(5):
        has = sizes > k
        more = (sizes[has] > k + 1).astype(np.int64) << 7
        out[first[has] + k] = ((gaps[has] >> (7 * k)) & 0x7F) | more
    lengths = np.add.reduceat(sizes, starts) if counts.size else np.zeros(0, dtype=np.int64)
    return out.tobytes(), lengths


def decode_varint_list(data: bytes | memoryview, count: int, where: str) -> npt.NDArray[np.uint32]:
    """The ``count`` rows that :func:`encode_varint_lists` wrote as ``data``."""
    out = np.empty(count, dtype=np.uint32)
    value = shift = at = 0
    previous = -1
    for byte in bytes(data):
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte & 0x80:
            if shift > 28:
                raise Corruption(f"{where}: a varint runs past 5 bytes")
            continue
        if at == count:
            raise Corruption(f"{where}: a short list holds more than {count} rows")
        previous += value + 1
        if previous > 0xFFFFFFFF:
            raise Corruption(f"{where}: a short list names a row past 2**32-1")
        out[at] = previous
        at += 1
        value = shift = 0
    if at != count or shift:
        raise Corruption(f"{where}: a short list does not hold {count} rows")
    return out
