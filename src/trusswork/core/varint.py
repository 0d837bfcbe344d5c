"""LEB128 varints over numpy arrays, with zigzag mapping for signed values.

The format is protobuf's: seven bits per byte, low groups first, the high
bit marking continuation; a 64-bit value takes one to ten bytes. With
``zigzag=True`` (the default) int64 values are mapped so that small
magnitudes of either sign stay short; with ``zigzag=False`` values are
unsigned (uint64, or non-negative int64).

Decoding malformed bytes raises :class:`~trusswork.core.errors.Corruption`
naming the byte offset of the bad varint.
"""

from trusswork.core._common import varint_decode as decode
from trusswork.core._common import varint_decode_prefix as decode_prefix
from trusswork.core._common import varint_encode as encode

__all__ = ["decode", "decode_prefix", "encode"]
