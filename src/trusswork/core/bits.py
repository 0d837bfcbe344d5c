"""Bit packing: unsigned values in per-value bit widths, most significant bit first.

``pack(values, widths)`` writes value ``i`` in ``widths[i]`` bits (0..64;
a single int applies to every value) and pads the last byte with zero
bits. ``unpack(data, widths, count=None)`` reads them back. A value that
does not fit its width raises :class:`~trusswork.core.errors.InvalidInput`;
input too short for the widths raises
:class:`~trusswork.core.errors.Corruption`. This is the bit layout the
time-series codecs use.
"""

from trusswork.core._common import bits_pack as pack
from trusswork.core._common import bits_unpack as unpack

__all__ = ["pack", "unpack"]
