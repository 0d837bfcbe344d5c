"""Pure-Python reference of the chunk codec: the oracle of the compiled one.

The format is the one ``csrc/tsc/tsc.h`` documents, read here one field at a
time with no shortcuts, so that a reader can hold this module next to the
header and check it line by line. It is not public API and is slow on
purpose: plain ``int`` arithmetic, no numpy, no bit tricks.

:func:`decode` reads any chunk the header describes and raises
:class:`~trusswork.core.errors.Corruption` for anything else, naming the
byte offset and the rule that failed. :func:`layout` returns the same walk as
a :class:`ChunkLayout` (modes, section sizes and the kind of every frame), so
tests can see which encodings the compiled encoder chose. :func:`encode`
writes a valid chunk with modes the caller picks (by default DELTA
timestamps, FOR frames, and CONST, DECIMAL or XOR values, whichever holds
the data exactly); it is how the tests feed the compiled decoder chunks its
own encoder would never write.

Where ``tsc.h`` is silent the choices below are spelled out:

* Every integer of the FRAMES streams, the timestamp sums and the decimal
  sums is an int64 in two's complement and all arithmetic on it is modulo
  2**64. Timestamps need that: the delta from ``INT64_MIN`` to ``INT64_MAX``
  does not fit an int64 and is stored as ``-1``.
* Unused bits (after the last packed value of a frame, after the last value
  of a RICE or XOR stream) are ignored; a RICE or XOR stream may not have a
  whole spare byte (that is a trailing byte), and SPARSE bitmap bits past
  the frame's length must be clear.
* A PATCHED frame names each index once and its high bits must fit above
  the width (``high << w < 2**64``): anything else has no single meaning.
* Values are returned as their IEEE-754 bit patterns (``int``), so NaN
  payloads and ``-0.0`` compare exactly.
* A frame holds up to :data:`FRAME` (256) values. Chunks written when
  frames held 128 carry the same version byte; ``frame=128`` reads those.
* "base is the frame's minimum" and "anchor is the frame's minimum" describe
  the encoder; a decoder takes any base and anchor.

:func:`layout` names a scaled frame (kind byte | 0x80) ``"scaled-<kind>"``.
"""

from __future__ import annotations

import math
import struct
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Final, Literal, TypeAlias

from trusswork.core.errors import Corruption, InvalidInput

__all__ = [
    "FRAME",
    "FRAME_KINDS",
    "MAX_SCALE",
    "ChunkLayout",
    "FrameKind",
    "bits_of",
    "decode",
    "encode",
    "float_of",
    "layout",
]

VERSION: Final = 1
FRAME: Final = 256
MAX_SCALE: Final = 15
RICE_MAX_K: Final = 20
RICE_ESCAPE: Final = 32
EXACT_LIMIT: Final = 2**53
MASK64: Final = (1 << 64) - 1
SCALED: Final = 0x80

TS_MODES: Final = ("grid", "delta")
VALUE_MODES: Final = ("const", "decimal", "xor")
FRAME_KINDS: Final = ("for", "patched", "rice", "sparse", "rice_zz")

FrameKind: TypeAlias = Literal["for", "patched", "rice", "sparse", "rice_zz"]


def bits_of(value: float) -> int:
    """The IEEE-754 bit pattern of a float64 as an unsigned int."""
    return int(struct.unpack("<Q", struct.pack("<d", value))[0])


def float_of(bits: int) -> float:
    """The float64 whose bit pattern is ``bits`` (``0 <= bits < 2**64``)."""
    return float(struct.unpack("<d", struct.pack("<Q", bits))[0])


def _signed(u: int) -> int:
    """The int64 whose two's complement is ``u mod 2**64``."""
    u &= MASK64
    return u - (1 << 64) if u >> 63 else u


def _zigzag(v: int) -> int:
    return ((v << 1) ^ (v >> 63)) & MASK64


def _unzigzag(u: int) -> int:
    return (u >> 1) ^ -(u & 1)


# ------------------------------------------------------------------ reading


@dataclass
class ChunkLayout:
    """What a chunk says about itself, field by field (the oracle's view of ``info``)."""

    samples: int = 0
    timestamps: str | None = None
    step: int | None = None
    values: str | None = None
    scale: int | None = None
    order: int | None = None
    timestamp_bytes: int = 0
    value_bytes: int = 0
    timestamp_frames: list[str] = field(default_factory=list)
    value_frames: list[str] = field(default_factory=list)


class _Bytes:
    """A cursor over the chunk; every read checks the end first."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def fail(self, rule: str) -> Corruption:
        return Corruption(f"chunk offset {self.pos}: {rule}")

    def take(self, count: int, what: str) -> bytes:
        if count > len(self.data) - self.pos:
            raise self.fail(f"{what} needs {count} bytes, {len(self.data) - self.pos} left")
        out = self.data[self.pos : self.pos + count]
        self.pos += count
        return out

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def varint(self, what: str) -> int:
        # LEB128 (csrc/common/varint.h): 1 to 10 bytes, non-minimal forms
        # allowed, the tenth byte may only carry bit 63 (and so ends the varint).
        value = shift = 0
        while True:
            byte = self.u8(what)
            if shift == 63 and byte > 1:
                raise self.fail(f"{what}: varint overflows 64 bits")
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7

    def svarint(self, what: str) -> int:
        return _unzigzag(self.varint(what))


class _Bits:
    """A bit stream read least significant bit first."""

    def __init__(self, data: bytes, where: int) -> None:
        self.data = data
        self.where = where
        self.pos = 0
        self.end = 8 * len(data)

    def get(self, count: int, what: str) -> int:
        if count == 0:
            return 0
        if self.pos + count > self.end:
            raise Corruption(f"chunk offset {self.where}: {what} runs past its bit stream")
        first, last = self.pos >> 3, (self.pos + count + 7) >> 3
        word = int.from_bytes(self.data[first:last], "little") >> (self.pos & 7)
        self.pos += count
        return word & ((1 << count) - 1)

    def finish(self, what: str) -> None:
        if self.end - self.pos >= 8:
            raise Corruption(f"chunk offset {self.where}: {what} has spare bytes at its end")


def _unpack(data: bytes, count: int, width: int, where: int) -> list[int]:
    """``count`` values of ``width`` bits, value j at bit ``j * width``."""
    bits = _Bits(data, where)
    return [bits.get(width, "packed values") for _ in range(count)]


def _read_rice(bits: _Bits, k: int) -> int:
    """One value of a RICE stream: q ones and a zero, then k low bits; or an escape."""
    q = 0
    while q < RICE_ESCAPE and bits.get(1, "RICE quotient"):
        q += 1
    if q < RICE_ESCAPE:
        return q << k | bits.get(k, "RICE remainder")
    size = bits.get(6, "RICE escape length") + 1
    return bits.get(size, "RICE escaped value")


def _read_frames(src: _Bytes, m: int, frame: int, kinds: list[str]) -> list[int]:
    """The ``m`` int64 values of a FRAMES section (as unsigned 64-bit patterns)."""
    out: list[int] = []
    for start in range(0, m, frame):
        length = min(frame, m - start)
        kind = src.u8("frame kind")
        param = src.u8("frame parameter")
        shift = anchor = 0
        if kind & SCALED:  # x = anchor + (h << shift), h decoded by the kind below
            kind &= ~SCALED
            shift = src.u8("SCALED shift")
            anchor = src.svarint("SCALED anchor")
            if not 1 <= shift <= 63:
                raise src.fail(f"SCALED shift {shift} outside 1..63")
        if kind == 0:  # FOR
            if param > 64:
                raise src.fail(f"FOR width {param} > 64")
            base = src.svarint("FOR base")
            where = src.pos
            packed = src.take((length * param + 7) // 8, "FOR values")
            values = [base + low for low in _unpack(packed, length, param, where)]
        elif kind == 1:  # PATCHED
            if param > 63:
                raise src.fail(f"PATCHED width {param} > 63")
            base = src.svarint("PATCHED base")
            count = src.u8("PATCHED exception count")
            if not 1 <= count <= length:
                raise src.fail(f"PATCHED exception count {count} outside 1..{length}")
            highs: dict[int, int] = {}
            for _ in range(count):
                index = src.u8("PATCHED exception index")
                high = src.varint("PATCHED exception bits")
                if index >= length:
                    raise src.fail(f"PATCHED exception index {index} >= frame length {length}")
                if index in highs:
                    raise src.fail(f"PATCHED exception index {index} given twice")
                if high >> (64 - param):
                    raise src.fail(f"PATCHED exception bits {high} do not fit above width {param}")
                highs[index] = high
            where = src.pos
            packed = src.take((length * param + 7) // 8, "PATCHED values")
            lows = _unpack(packed, length, param, where)
            values = [base + (low | highs.get(j, 0) << param) for j, low in enumerate(lows)]
        elif kind in (2, 4):  # RICE, RICE_ZZ
            name = FRAME_KINDS[kind].upper()
            if param > RICE_MAX_K:
                raise src.fail(f"{name} parameter {param} > {RICE_MAX_K}")
            base = src.svarint(f"{name} base")
            nbytes = src.varint(f"{name} byte length")
            where = src.pos
            bits = _Bits(src.take(nbytes, f"{name} stream"), where)
            us = [_read_rice(bits, param) for _ in range(length)]
            bits.finish(f"{name} stream")
            values = [base + (u if kind == 2 else _unzigzag(u)) for u in us]
        elif kind == 3:  # SPARSE
            if param > 64:
                raise src.fail(f"SPARSE width {param} > 64")
            z = src.svarint("SPARSE common value")
            base = src.svarint("SPARSE base")
            bitmap = src.take((length + 7) // 8, "SPARSE bitmap")
            flags = [bitmap[j >> 3] >> (j & 7) & 1 for j in range(8 * len(bitmap))]
            if any(flags[length:]):
                raise src.fail("SPARSE bitmap has bits set past the frame's end")
            where = src.pos
            nonzero = sum(flags)
            packed = src.take((nonzero * param + 7) // 8, "SPARSE values")
            rest = iter(_unpack(packed, nonzero, param, where))
            values = [base + next(rest) if flags[j] else z for j in range(length)]
        else:
            raise src.fail(f"unknown frame kind {kind}")
        if shift:
            values = [anchor + (v << shift) for v in values]
        kinds.append(("scaled-" if shift else "") + FRAME_KINDS[kind])
        out.extend(v & MASK64 for v in values)
    return out


def _read_xor(src: _Bytes, n: int) -> list[int]:
    nbytes = int.from_bytes(src.take(4, "XOR byte length"), "little")
    where = src.pos
    bits = _Bits(src.take(nbytes, "XOR stream"), where)
    prev = bits.get(64, "XOR first value")
    out = [prev]
    window: tuple[int, int] | None = None
    for _ in range(1, n):
        if bits.get(1, "XOR control bit"):
            if bits.get(1, "XOR control bit"):
                lead = bits.get(5, "XOR leading zeros")
                sig = bits.get(6, "XOR significant bits") + 1
                if lead + sig > 64:
                    raise Corruption(f"chunk offset {where}: XOR window {lead} + {sig} > 64 bits")
                trail = 64 - lead - sig
                prev ^= bits.get(sig, "XOR value") << trail
                window = (lead, trail)
            else:
                if window is None:
                    raise Corruption(f"chunk offset {where}: XOR reuses a window before any")
                lead, trail = window
                prev ^= bits.get(64 - lead - trail, "XOR value") << trail
        out.append(prev)
    bits.finish("XOR stream")
    return out


def _walk(chunk: bytes, frame: int) -> tuple[list[int], list[int], ChunkLayout]:
    src = _Bytes(chunk)
    info = ChunkLayout()
    version = src.u8("version")
    if version != VERSION:
        raise src.fail(f"version {version}, expected {VERSION}")
    n = src.varint("sample count")
    if n > 64 * len(chunk):
        raise src.fail(
            f"{n} samples claimed by a chunk of {len(chunk)} bytes (at most 64 per byte)"
        )
    info.samples = n
    ts: list[int] = []
    values: list[int] = []
    if n == 0:
        info.timestamp_bytes = src.pos
    else:
        t0 = src.svarint("first timestamp")
        ts = [t0]
        if n > 1:
            mode = src.u8("timestamp mode")
            if mode > 1:
                raise src.fail(f"unknown timestamp mode {mode}")
            info.timestamps = TS_MODES[mode]
            if mode == 0:
                step = src.svarint("grid step")
                info.step = step
                residuals = _read_frames(src, n - 1, frame, info.timestamp_frames)
                ts += [_signed(t0 + i * step + x) for i, x in enumerate(residuals, 1)]
            else:
                for delta in _read_frames(src, n - 1, frame, info.timestamp_frames):
                    ts.append(_signed(ts[-1] + delta))
            for i in range(1, n):
                if ts[i] <= ts[i - 1]:
                    raise src.fail(f"timestamp {i} ({ts[i]}) does not follow {ts[i - 1]}")
        info.timestamp_bytes = src.pos
        mode = src.u8("value mode")
        if mode > 2:
            raise src.fail(f"unknown value mode {mode}")
        info.values = VALUE_MODES[mode]
        if mode == 0:
            values = [int.from_bytes(src.take(8, "constant value"), "little")] * n
        elif mode == 1:
            values = _read_decimal(src, n, frame, info)
        else:
            values = _read_xor(src, n)
    if src.pos != len(chunk):
        raise src.fail(f"{len(chunk) - src.pos} bytes after the end of the chunk")
    info.value_bytes = src.pos - info.timestamp_bytes
    return ts, values, info


def _read_decimal(src: _Bytes, n: int, frame: int, info: ChunkLayout) -> list[int]:
    scale = src.u8("decimal scale")
    order = src.u8("decimal order")
    if scale > MAX_SCALE:
        raise src.fail(f"decimal scale {scale} > {MAX_SCALE}")
    if order not in (1, 2):
        raise src.fail(f"decimal order {order} is neither 1 nor 2")
    if order == 2 and n < 2:
        raise src.fail("second differences of a single value")
    info.scale, info.order = scale, order
    a = [src.svarint("first decimal integer")]
    if order == 1:
        for d in _read_frames(src, n - 1, frame, info.value_frames):
            a.append(_signed(a[-1] + d))
    else:
        d = src.svarint("first decimal difference")
        a.append(_signed(a[0] + d))
        for dd in _read_frames(src, n - 2, frame, info.value_frames):
            d += dd
            a.append(_signed(a[-1] + d))
    for i, ai in enumerate(a):
        if abs(ai) > EXACT_LIMIT:
            raise src.fail(f"decimal integer {i} ({ai}) beyond 2**53")
    divisor = float(10**scale)
    return [bits_of(float(ai) / divisor if scale else float(ai)) for ai in a]


def decode(
    chunk: bytes | bytearray | memoryview, *, frame: int = FRAME
) -> tuple[list[int], list[int]]:
    """Decode a chunk into timestamps and value bit patterns.

    Parameters
    ----------
    chunk:
        The bytes of one chunk.
    frame:
        Values per frame (the last frame of a section may be shorter).

    Returns
    -------
    tuple[list[int], list[int]]
        The int64 timestamps and the values as unsigned 64-bit IEEE-754
        patterns (:func:`float_of` turns one into a float).

    Raises
    ------
    Corruption
        When the bytes are not a chunk of the documented format.
    """
    ts, values, _ = _walk(bytes(chunk), frame)
    return ts, values


def layout(chunk: bytes | bytearray | memoryview, *, frame: int = FRAME) -> ChunkLayout:
    """Decode a chunk and return how it is encoded (raises like :func:`decode`)."""
    return _walk(bytes(chunk), frame)[2]


# ------------------------------------------------------------------ writing


class _BitWriter:
    """Bits least significant first, flushed to bytes as they fill."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.acc = 0
        self.count = 0

    def put(self, value: int, count: int) -> None:
        self.acc |= (value & ((1 << count) - 1)) << self.count
        self.count += count
        while self.count >= 8:
            self.out.append(self.acc & 0xFF)
            self.acc >>= 8
            self.count -= 8

    def finish(self) -> bytes:
        if self.count:
            self.out.append(self.acc)
        return bytes(self.out)


def _varint(u: int) -> bytes:
    out = bytearray()
    while u >= 0x80:
        out.append(u & 0x7F | 0x80)
        u >>= 7
    out.append(u)
    return bytes(out)


def _svarint(v: int) -> bytes:
    return _varint(_zigzag(v))


def _pack(lows: Sequence[int], width: int) -> bytes:
    bits = _BitWriter()
    for low in lows:
        bits.put(low, width)
    return bits.finish()


def _rice_frame(base: int, us: Sequence[int]) -> bytes:
    """Parameter k, svarint base, varint nbytes and the RICE stream of ``us`` (after the kind)."""
    k = max(0, min(RICE_MAX_K, (sum(us) // len(us)).bit_length() - 1))
    bits = _BitWriter()
    for u in us:
        q = u >> k
        if q < RICE_ESCAPE:
            bits.put((1 << q) - 1, q + 1)
            bits.put(u, k)
        else:
            bits.put((1 << RICE_ESCAPE) - 1, RICE_ESCAPE)
            bits.put(u.bit_length() - 1, 6)
            bits.put(u, u.bit_length())
    stream = bits.finish()
    return bytes([k]) + _svarint(base) + _varint(len(stream)) + stream


def _frame(x: Sequence[int], kind: FrameKind) -> bytes:
    """One frame of int64 values (any sign) in the given kind, parameters chosen simply."""
    lo = min(x)
    u = [v - lo for v in x]  # 0 <= u < 2**64
    full = max(u).bit_length()
    if kind == "patched" and full > 0:
        width = min(sorted(u)[len(u) // 2].bit_length(), full - 1)
        exceptions = [(j, v >> width) for j, v in enumerate(u) if v >> width]
        head = bytes([1, width]) + _svarint(lo) + bytes([len(exceptions)])
        head += b"".join(bytes([j]) + _varint(high) for j, high in exceptions)
        return head + _pack([v & ((1 << width) - 1) for v in u], width)
    if kind == "rice":
        return bytes([2]) + _rice_frame(lo, u)
    if kind == "rice_zz":
        center = _signed(lo + sum(u) // len(u))
        return bytes([4]) + _rice_frame(center, [_zigzag(_signed(v - center)) for v in x])
    if kind == "sparse":
        z = Counter(x).most_common(1)[0][0]
        rest = [v for v in x if v != z]
        base = min(rest, default=z)
        width = max((v - base for v in rest), default=0).bit_length()
        bitmap = bytearray((len(x) + 7) // 8)
        for j, v in enumerate(x):
            if v != z:
                bitmap[j >> 3] |= 1 << (j & 7)
        head = bytes([3, width]) + _svarint(z) + _svarint(base) + bytes(bitmap)
        return head + _pack([v - base for v in rest], width)
    return bytes([0, full]) + _svarint(lo) + _pack(u, full)


@dataclass(frozen=True)
class _Framing:
    """How :func:`encode` cuts and codes FRAMES: frame i takes ``kinds[i % len(kinds)]``."""

    size: int
    kinds: tuple[FrameKind, ...]
    scaled: bool


def _scaled_frame(x: Sequence[int], kind: FrameKind) -> bytes:
    """A frame as ``(x - min) >> s`` when every ``x - min`` is a multiple of ``2**s``, s >= 1."""
    lo = min(x)
    common = 0
    for v in x:
        common |= v - lo
    shift = (common & -common).bit_length() - 1
    if shift < 1:
        return _frame(x, kind)
    body = _frame([(v - lo) >> shift for v in x], kind)
    return bytes([body[0] | SCALED, body[1], shift]) + _svarint(lo) + body[2:]


def _frames(x: Sequence[int], framing: _Framing) -> bytes:
    """FRAMES of the int64 values x."""
    size, kinds = framing.size, framing.kinds
    code = _scaled_frame if framing.scaled else _frame
    return b"".join(
        code(x[start : start + size], kinds[(start // size) % len(kinds)])
        for start in range(0, len(x), size)
    )


def _xor(value_bits: Sequence[int]) -> bytes:
    bits = _BitWriter()
    prev = value_bits[0]
    bits.put(prev, 64)
    window: tuple[int, int] | None = None
    for cur in value_bits[1:]:
        x, prev = cur ^ prev, cur
        if x == 0:
            bits.put(0, 1)
            continue
        lead = min(64 - x.bit_length(), 31)
        trail = (x & -x).bit_length() - 1
        if window is not None and lead >= window[0] and trail >= window[1]:
            bits.put(1, 1)
            bits.put(0, 1)
            bits.put(x >> window[1], 64 - window[0] - window[1])
        else:
            sig = 64 - lead - trail
            bits.put(1, 1)
            bits.put(1, 1)
            bits.put(lead, 5)
            bits.put(sig - 1, 6)
            bits.put(x >> trail, sig)
            window = (lead, trail)
    stream = bits.finish()
    return len(stream).to_bytes(4, "little") + stream


def _decimal_integers(value_bits: Sequence[int], scale: int) -> list[int] | None:
    """The a_i with ``a_i / 10**scale == value_i`` bit for bit, or None."""
    out = []
    divisor = float(10**scale)
    for bits in value_bits:
        v = float_of(bits)
        if not math.isfinite(v):
            return None
        a = round(Fraction(v) * 10**scale)
        if abs(a) > EXACT_LIMIT or bits_of(float(a) / divisor if scale else float(a)) != bits:
            return None
        out.append(a)
    return out


def encode(
    ts: Sequence[int],
    values: Sequence[float],
    *,
    timestamps: Literal["delta", "grid"] = "delta",
    step: int | None = None,
    value_mode: Literal["auto", "const", "decimal", "xor"] = "auto",
    scale: int | None = None,
    order: Literal[1, 2] = 1,
    frames: FrameKind | Sequence[FrameKind] = "for",
    scaled: bool = False,
    frame: int = FRAME,
) -> bytes:
    """Encode samples as one valid chunk, in the modes the caller picks.

    Parameters
    ----------
    ts:
        Strictly ascending int64 timestamps.
    values:
        Floats, one per timestamp (bit patterns are kept: NaN payloads, -0.0).
    timestamps:
        ``"delta"`` or ``"grid"`` (step ``step``, by default the integer
        mean interval).
    value_mode:
        ``"auto"`` takes CONST when every value has one bit pattern, else
        DECIMAL at the smallest scale that holds every value exactly, else
        XOR. The other names force a mode (InvalidInput when it cannot hold
        the values).
    scale, order:
        The DECIMAL scale (default: the smallest that works) and order.
    frames:
        The kind of every frame, or a sequence of kinds used in turn, frame
        after frame. PATCHED falls back to FOR for a constant frame.
    scaled:
        Write a frame whose values all differ by multiples of ``2**s``
        (s >= 1) as a scaled frame, with the largest such s.
    frame:
        Values per frame.

    Returns
    -------
    bytes
        The chunk.

    Raises
    ------
    InvalidInput
        When the arrays differ in length, a timestamp is outside int64 or
        does not ascend, or a forced value mode cannot hold the values.
    """
    n = len(ts)
    if len(values) != n:
        raise InvalidInput(f"{n} timestamps but {len(values)} values")
    t = [int(v) for v in ts]
    for i, v in enumerate(t):
        if _signed(v) != v:
            raise InvalidInput(f"ts[{i}] = {v} is outside int64")
        if i and v <= t[i - 1]:
            raise InvalidInput(f"timestamps must strictly ascend: ts[{i}] = {v} follows {t[i - 1]}")
    kinds = (frames,) if isinstance(frames, str) else tuple(frames)
    framing = _Framing(frame, kinds, scaled)
    out = bytes([VERSION]) + _varint(n)
    if n == 0:
        return out
    out += _svarint(t[0])
    if n > 1:
        if timestamps == "grid":
            grid_step = _signed(step if step is not None else (t[-1] - t[0]) // (n - 1))
            residuals = [_signed(t[i] - t[0] - i * grid_step) for i in range(1, n)]
            out += bytes([0]) + _svarint(grid_step) + _frames(residuals, framing)
        else:
            out += bytes([1]) + _frames([_signed(t[i] - t[i - 1]) for i in range(1, n)], framing)
    value_bits = [bits_of(float(v)) for v in values]
    return out + _encode_values(value_bits, value_mode, scale, order, framing)


def _encode_values(
    value_bits: list[int],
    mode: str,
    scale: int | None,
    order: int,
    framing: _Framing,
) -> bytes:
    n = len(value_bits)
    if mode == "const" or (mode == "auto" and len(set(value_bits)) == 1):
        if len(set(value_bits)) != 1:
            raise InvalidInput("CONST needs every value to have one bit pattern")
        return bytes([0]) + value_bits[0].to_bytes(8, "little")
    if mode in ("auto", "decimal"):
        for k in range(MAX_SCALE + 1) if scale is None else (scale,):
            a = _decimal_integers(value_bits, k)
            if a is None:
                continue
            if order == 2 and n < 2:
                raise InvalidInput("DECIMAL order 2 needs at least two values")
            out = bytes([1, k, order]) + _svarint(a[0])
            d = [a[i] - a[i - 1] for i in range(1, n)]
            if order == 1:
                return out + _frames(d, framing)
            return (
                out + _svarint(d[0]) + _frames([d[i] - d[i - 1] for i in range(1, n - 1)], framing)
            )
        if mode == "decimal":
            raise InvalidInput(f"the values are not integers over 10**{scale or 'k'} for k <= 15")
    return bytes([2]) + _xor(value_bits)
