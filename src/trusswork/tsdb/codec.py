"""Chunk codec: one series' timestamps and float values -> bytes, and back.

The codec is C (``csrc/tsc``, format documented in ``tsc.h``) and lossless
for every float bit pattern: NaN payloads, Prometheus's staleness marker,
±inf and -0.0 come back bit for bit.

Timestamps are coded as residuals from a fitted scrape grid or as deltas,
whichever is smaller; values as exact decimal integers (counters, values
with a few decimals) in first or second differences, as one constant, or
with Gorilla's XOR encoding when nothing else is exact. The integer streams
are cut into frames of 256, each coded in the cheapest of four frame kinds
(bit packing, bit packing with patched outliers, Rice codes, sparse bitmap),
so the encoding adapts to the data as it changes within a chunk.

Usage::

    from trusswork.tsdb.codec import encode, decode

    chunk = encode(timestamps_ms, values)      # bytes
    ts, values = decode(chunk)

Damaged chunks raise :class:`~trusswork.core.errors.Corruption`; decoding
never reads outside the chunk. Both directions release the GIL.
"""

from __future__ import annotations

from trusswork.tsdb._codec import FRAME, decode, decode_into, encode, info, sample_count

__all__ = ["FRAME", "decode", "decode_into", "encode", "info", "sample_count"]
