"""Pure-Python oracles for the compiled kernels in ``trusswork.core._common``.

Each function here is the simplest correct statement of what a compiled
kernel computes: CRC-32C one bit at a time, varints one byte at a time, bit
packing through one Python integer. The property tests compare the
compiled kernels against these on random and hostile inputs. (The
benchmarks' pure-Python peer is a leaner loop in benchmarks/bench_core.py:
these check every value and would flatter the compiled kernels' ratios.)

Guarantees: results and error classes equal the compiled kernels'
(:mod:`trusswork.core.checksum`, :mod:`trusswork.core.varint`,
:mod:`trusswork.core.bits`), and error messages name the same byte offset or
index. Speed is not a goal: CRC-32C here runs at a few hundred kilobytes per
second. This module imports nothing but the error taxonomy.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from typing import TYPE_CHECKING, SupportsIndex, cast

from trusswork.core.errors import Corruption, InvalidInput

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["bits_pack", "bits_unpack", "crc32c", "varint_decode", "varint_encode"]

# CRC-32C (Castagnoli) polynomial, bit-reversed as the reflected algorithm needs.
_CRC32C_POLY = 0x82F63B78
_U32 = 0xFFFFFFFF
_U64 = (1 << 64) - 1
_I64_MIN = -(1 << 63)
_I64_MAX = (1 << 63) - 1
_VARINT_MAX_BYTES = 10


def _as_bytes(data: Buffer, what: str) -> bytes:
    try:
        view = memoryview(data)
    except TypeError:
        raise TypeError(
            f"{what} needs a contiguous bytes-like object, not {type(data).__name__}"
        ) from None
    with view:
        if not view.c_contiguous:
            raise TypeError(f"{what} needs a contiguous bytes-like object")
        return view.tobytes()


def _as_int(value: object, what: str, index: int) -> int:
    try:
        return operator.index(cast(SupportsIndex, value))
    except TypeError:
        raise InvalidInput(
            f"{what} needs integers, got {type(value).__name__} at index {index}"
        ) from None


def crc32c(data: Buffer, seed: int = 0) -> int:
    """CRC-32C of ``data``, continuing from ``seed`` (a previous result).

    Parameters
    ----------
    data:
        Any contiguous bytes-like object.
    seed:
        The CRC of the bytes before ``data``; 0 starts a new checksum.

    Returns
    -------
    int
        The checksum, in ``0..2**32-1``.

    Raises
    ------
    TypeError
        ``data`` is not a contiguous bytes-like object.
    InvalidInput
        ``seed`` is not an int in ``0..2**32-1``.
    """
    if type(seed) is not int or not 0 <= seed <= _U32:
        raise InvalidInput(f"crc32c seed must be an int in 0..2**32-1, got {seed!r}")
    register = seed ^ _U32
    for byte in _as_bytes(data, "crc32c"):
        register ^= byte
        for _ in range(8):
            register = (register >> 1) ^ (_CRC32C_POLY if register & 1 else 0)
    return register ^ _U32


def varint_encode(values: Iterable[int], *, zigzag: bool = True) -> bytes:
    """Encode integers as LEB128 varints, zigzag-mapping them first when ``zigzag``.

    Parameters
    ----------
    values:
        Integers: int64 when ``zigzag`` is true, uint64 otherwise.
    zigzag:
        Map signed values so small magnitudes of either sign stay short.

    Returns
    -------
    bytes
        The varints, back to back.

    Raises
    ------
    InvalidInput
        A value is not an integer or is outside the range, naming its index.
    """
    out = bytearray()
    for index, raw in enumerate(values):
        value = _as_int(raw, "varint.encode", index)
        if zigzag:
            if not _I64_MIN <= value <= _I64_MAX:
                raise InvalidInput(
                    f"varint.encode: value {value} at index {index} does not fit int64"
                )
            word = (value << 1) if value >= 0 else ((-value) << 1) - 1
        else:
            if value < 0:
                raise InvalidInput(
                    f"varint.encode: negative value {value} at index {index} needs zigzag=True"
                )
            if value > _U64:
                raise InvalidInput(
                    f"varint.encode: value {value} at index {index} does not fit uint64"
                )
            word = value
        while word >= 0x80:
            out.append((word & 0x7F) | 0x80)
            word >>= 7
        out.append(word)
    return bytes(out)


def varint_decode(data: Buffer, *, zigzag: bool = True) -> list[int]:
    """Decode every varint in ``data``.

    Non-minimal encodings are accepted, as protobuf accepts them.

    Parameters
    ----------
    data:
        Varints back to back, nothing else.
    zigzag:
        Undo the zigzag mapping (values are int64); otherwise values are uint64.

    Returns
    -------
    list of int
        The decoded values.

    Raises
    ------
    Corruption
        The input ends inside a varint, or a varint is longer than ten bytes
        or exceeds 64 bits. The message names the byte offset where that
        varint starts.
    """
    raw = _as_bytes(data, "varint.decode")
    values: list[int] = []
    pos = 0
    while pos < len(raw):
        word = 0
        for i in range(_VARINT_MAX_BYTES):
            if pos + i == len(raw):
                raise Corruption(
                    f"varint.decode: input ends inside the item that starts at byte offset {pos}"
                )
            byte = raw[pos + i]
            # The tenth byte holds bit 63 only; anything more is not a uint64.
            if i == _VARINT_MAX_BYTES - 1 and byte > 1:
                raise Corruption(
                    f"varint.decode: the varint at byte offset {pos} is longer than "
                    f"10 bytes or exceeds 64 bits"
                )
            word |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                pos += i + 1
                break
        values.append((word >> 1) ^ -(word & 1) if zigzag else word)
    return values


def _split_widths(widths: int | Iterable[int]) -> tuple[int | None, Iterable[int]]:
    """(the single width, ()) for a scalar, (None, widths) for a sequence."""
    try:
        return operator.index(cast(SupportsIndex, widths)), ()
    except TypeError:
        return None, cast(Iterable[int], widths)


def _widths_list(widths: int | Iterable[int], count: int, what: str) -> list[int]:
    single, many = _split_widths(widths)
    if single is not None:
        result = [single] * count
    else:
        result = [_as_int(w, f"{what}: widths", i) for i, w in enumerate(many)]
    if len(result) != count:
        raise InvalidInput(f"{what}: {len(result)} widths for {count} values")
    for index, width in enumerate(result):
        if not 0 <= width <= 64:
            raise InvalidInput(f"{what}: width {width} at index {index} is not in 0..64")
    return result


def bits_pack(values: Iterable[int], widths: int | Iterable[int]) -> bytes:
    """Pack unsigned values most significant bit first, value ``i`` in ``widths[i]`` bits.

    Parameters
    ----------
    values:
        Non-negative integers.
    widths:
        One bit width per value (0..64), or a single width for every value.

    Returns
    -------
    bytes
        The bits, the last byte padded with zero bits.

    Raises
    ------
    InvalidInput
        A width is outside 0..64, the counts differ, or a value is negative
        or does not fit its width (naming its index).
    """
    ints = [_as_int(v, "bits.pack", i) for i, v in enumerate(values)]
    bit_widths = _widths_list(widths, len(ints), "bits.pack")
    accumulator = 0
    total_bits = 0
    for index, (value, width) in enumerate(zip(ints, bit_widths, strict=True)):
        if value < 0 or value >> width:
            raise InvalidInput(f"bits.pack: the value at index {index} does not fit its bit width")
        accumulator = (accumulator << width) | value
        total_bits += width
    padding = -total_bits % 8
    return (accumulator << padding).to_bytes((total_bits + padding) // 8, "big")


def bits_unpack(data: Buffer, widths: int | Iterable[int], count: int | None = None) -> list[int]:
    """Read values written by :func:`bits_pack`.

    Parameters
    ----------
    data:
        The packed bytes; bytes after the last value are ignored.
    widths:
        One bit width per value (0..64), or a single width for ``count`` values.
    count:
        The number of values; required with a single width.

    Returns
    -------
    list of int
        The unsigned values.

    Raises
    ------
    InvalidInput
        A width is outside 0..64, or ``count`` is missing or inconsistent.
    Corruption
        ``data`` ends inside a value.
    """
    raw = _as_bytes(data, "bits.unpack")
    if count is None:
        single, many = _split_widths(widths)
        if single is not None:
            raise InvalidInput("bits.unpack: pass count= when widths is a single width")
        widths = list(many)
        count = len(widths)
    if count < 0:
        raise InvalidInput(f"bits.unpack: count must be non-negative, got {count}")
    bit_widths = _widths_list(widths, count, "bits.unpack")
    total_bits = 8 * len(raw)
    everything = int.from_bytes(raw, "big")
    values: list[int] = []
    position = 0
    for index, width in enumerate(bit_widths):
        if position + width > total_bits:
            raise Corruption(
                f"bits.unpack: input of {len(raw)} bytes ends inside value {index} of {count}"
            )
        values.append((everything >> (total_bits - position - width)) & ((1 << width) - 1))
        position += width
    return values
