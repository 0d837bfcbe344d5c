"""The head block: the newest samples of every series, in memory, plus its WAL records.

Each series keeps its samples in three places:

- *sealed chunks*: runs of ``chunk_samples`` in-order samples encoded with
  :func:`trusswork.tsdb.codec.encode` (bytes, with their time range);
- the *open chunk*: the newest in-order samples in preallocated numpy
  buffers, sealed when full;
- the *out-of-order overlay*: a ``{ts: value}`` map of samples older than the
  series' newest one (accepted only within the out-of-order window) and of
  last-write-wins overwrites. On reads it takes precedence over the chunks.

Policy (checked by :meth:`HeadSeries.admit` before anything is logged):

- a sample newer than the series' newest is accepted;
- a sample bit-identical to a stored one (same timestamp, same value bits)
  is a no-op at any age, so retrying a call is safe (as long as the sample
  is still in the head);
- a sample older than the head's lower bound (data below it already lives
  in blocks), or older than the series' newest by more than
  ``out_of_order_window_ms`` (default 0: any older sample), is an
  :class:`OutOfOrderSample`;
- otherwise, at a stored timestamp with a different value it is a
  :class:`DuplicateSample` (a :class:`~trusswork.core.errors.Conflict`),
  unless the policy is ``"last-write-wins"``, which replaces the value;
  without a window only the newest timestamp can be rewritten;
- everything else is stored.

Only admitted samples reach the write-ahead log, and :meth:`HeadSeries.apply`
inserts them without checks (so WAL replay reproduces the head exactly). Each
chunk remembers the lowest WAL LSN that fed it: after a cut, the smallest of
these is where the log may be truncated.

WAL records are compact binary (first byte: the kind):

``1`` series
    ``u32 n``, ``u32 ref[n]``, then the n label sets, each
    ``name \\xff value \\xff name ...`` in UTF-8, separated by ``\\xfe`` (bytes
    that never occur in UTF-8).
``2`` samples of many series
    ``u32 n``, ``u32 ref[n]``, ``i64 ts[n]``, ``f64 value[n]``.
``3`` samples of one series
    ``u32 ref``, ``u32 n``, ``i64 ts[n]``, ``f64 value[n]``.
"""

from __future__ import annotations

import struct
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from trusswork.core.errors import Conflict, Corruption, InvalidInput
from trusswork.tsdb import codec
from trusswork.tsdb._series import Labels, SeriesData, newest_per_timestamp

__all__ = [
    "DuplicatePolicy",
    "DuplicateSample",
    "HeadSeries",
    "OutOfOrderSample",
    "decode_record",
    "encode_samples",
    "encode_series",
    "encode_series_samples",
    "merge_series",
]

DuplicatePolicy = Literal["reject", "last-write-wins"]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
U32 = npt.NDArray[np.uint32]

_NO_LSN = 1 << 62


class OutOfOrderSample(InvalidInput):
    """A sample older than its series allows (out-of-order window, or already in a block).

    ``accepted`` and ``rejected`` count the samples of the call that were
    stored and dropped.
    """

    def __init__(self, message: str, *, accepted: int = 0, rejected: int = 1) -> None:
        super().__init__(message)
        self.accepted = accepted
        self.rejected = rejected


class DuplicateSample(Conflict):
    """A sample at a stored timestamp with a different value (policy ``"reject"``)."""

    def __init__(self, message: str, *, accepted: int = 0, rejected: int = 1) -> None:
        super().__init__(message)
        self.accepted = accepted
        self.rejected = rejected


# ---------------------------------------------------------------- WAL records

_SERIES, _SAMPLES, _SERIES_SAMPLES = 1, 2, 3
_U32 = struct.Struct("<I")
_U32x2 = struct.Struct("<II")


def encode_series(items: Sequence[tuple[int, Labels]]) -> bytes:
    """A "series" record defining refs."""
    refs = np.fromiter((ref for ref, _ in items), dtype=np.uint32, count=len(items))
    blobs = b"\xfe".join(
        b"\xff".join(part.encode() for pair in labels for part in pair) for _, labels in items
    )
    return bytes([_SERIES]) + _U32.pack(len(items)) + refs.tobytes() + blobs


def encode_samples(refs: U32, ts: I64, values: F64) -> bytes:
    """A "samples" record: one (ref, ts, value) per sample."""
    return (
        bytes([_SAMPLES])
        + _U32.pack(len(refs))
        + refs.astype("<u4", copy=False).tobytes()
        + ts.astype("<i8", copy=False).tobytes()
        + values.astype("<f8", copy=False).tobytes()
    )


def encode_series_samples(ref: int, ts: I64, values: F64) -> bytes:
    """A "samples" record of one series."""
    return (
        bytes([_SERIES_SAMPLES])
        + _U32x2.pack(ref, len(ts))
        + ts.astype("<i8", copy=False).tobytes()
        + values.astype("<f8", copy=False).tobytes()
    )


def decode_record(payload: bytes) -> list[tuple[int, Labels]] | tuple[U32, I64, F64]:
    """A record's series definitions, or its samples as (refs, ts, values) arrays.

    Raises
    ------
    Corruption
        If the payload does not follow the format.
    """
    try:
        kind = payload[0]
        if kind == _SERIES:
            (n,) = _U32.unpack_from(payload, 1)
            refs = np.frombuffer(payload, dtype="<u4", count=n, offset=5)
            blobs = payload[5 + 4 * n :].split(b"\xfe") if n else []
            if len(blobs) != n:
                raise ValueError("label set count differs from ref count")
            out: list[tuple[int, Labels]] = []
            for ref, blob in zip(refs.tolist(), blobs, strict=True):
                parts = [part.decode() for part in blob.split(b"\xff")]
                if len(parts) % 2:
                    raise ValueError("a label has no value")
                out.append((ref, tuple(zip(parts[::2], parts[1::2], strict=True))))
            return out
        if kind == _SAMPLES:
            (n,) = _U32.unpack_from(payload, 1)
            if len(payload) != 5 + 20 * n:
                raise ValueError("length does not match the sample count")
            refs = np.frombuffer(payload, dtype="<u4", count=n, offset=5).astype(np.uint32)
            ts = np.frombuffer(payload, dtype="<i8", count=n, offset=5 + 4 * n).astype(np.int64)
            values = np.frombuffer(payload, dtype="<f8", count=n, offset=5 + 12 * n)
            return refs, ts, values.astype(np.float64)
        if kind == _SERIES_SAMPLES:
            ref, n = _U32x2.unpack_from(payload, 1)
            if len(payload) != 9 + 16 * n:
                raise ValueError("length does not match the sample count")
            ts = np.frombuffer(payload, dtype="<i8", count=n, offset=9).astype(np.int64)
            values = np.frombuffer(payload, dtype="<f8", count=n, offset=9 + 8 * n)
            return np.full(n, ref, np.uint32), ts, values.astype(np.float64)
        raise ValueError(f"unknown record kind {kind}")
    except (ValueError, IndexError, struct.error, UnicodeDecodeError) as exc:
        raise Corruption(f"time-series WAL record is malformed: {exc}") from None


# ---------------------------------------------------------------- merging


def _merge_runs(
    parts: list[tuple[I64, F64]],
) -> tuple[I64, F64]:
    """Merge sample runs; on equal timestamps the later part wins."""
    parts = [part for part in parts if len(part[0])]
    if not parts:
        return np.empty(0, np.int64), np.empty(0, np.float64)
    if len(parts) == 1:
        return parts[0]
    return _last_per_ts(
        np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    )


def merge_series(sources: list[list[SeriesData]]) -> list[SeriesData]:
    """Merge select results of several sources (later sources win on equal timestamps)."""
    by_labels: dict[Labels, list[tuple[I64, F64]]] = {}
    for source in sources:
        for labels, ts, values in source:
            by_labels.setdefault(labels, []).append((ts, values))
    out = []
    for labels in sorted(by_labels):
        ts, values = _merge_runs(by_labels[labels])
        if len(ts):
            out.append(SeriesData(labels, ts, values))
    return out


# ---------------------------------------------------------------- series


@dataclass(slots=True)
class _Chunk:
    mint: int
    maxt: int
    count: int
    data: bytes
    min_lsn: int


def _same(a: float, b: float) -> bool:
    """Bit-identical floats (NaN equals the same NaN; the stale marker differs from NaN)."""
    return struct.pack("<d", a) == struct.pack("<d", b)


def _last_per_ts(ts: I64, values: F64) -> tuple[I64, F64]:
    """Sort by timestamp; of equal timestamps keep the last one given."""
    keep = newest_per_timestamp(ts)
    return ts[keep], values[keep]


class HeadSeries:
    """The head samples of one series (see the module documentation)."""

    __slots__ = (
        "_chunks",
        "_n",
        "_ooo",
        "_ooo_lsn",
        "_open_lsn",
        "_ts",
        "_vals",
        "empty_cuts",
        "last_ts",
        "ref",
    )

    def __init__(self, ref: int, chunk_samples: int) -> None:
        self.ref = ref
        self._chunks: list[_Chunk] = []
        self._ts: I64 = np.empty(chunk_samples, np.int64)
        self._vals: F64 = np.empty(chunk_samples, np.float64)
        self._n = 0
        self._open_lsn = _NO_LSN
        self._ooo: dict[int, float] = {}
        self._ooo_lsn = _NO_LSN
        self.last_ts: int | None = None
        self.empty_cuts = 0

    # ------------------------------------------------------------ state

    @property
    def sample_count(self) -> int:
        """Samples held (overlay entries that overwrite a chunk sample count twice)."""
        return self._n + len(self._ooo) + sum(c.count for c in self._chunks)

    @property
    def chunk_count(self) -> int:
        """Sealed chunks plus the open one (when it holds samples)."""
        return len(self._chunks) + (1 if self._n else 0)

    @property
    def empty(self) -> bool:
        return not (self._n or self._ooo or self._chunks)

    def min_time(self) -> int | None:
        """The oldest timestamp held."""
        candidates = []
        if self._chunks:
            candidates.append(self._chunks[0].mint)
        if self._n:
            candidates.append(int(self._ts[0]))
        if self._ooo:
            candidates.append(min(self._ooo))
        return min(candidates) if candidates else None

    def min_lsn(self) -> int:
        """The lowest WAL LSN whose samples this series still holds (huge when empty)."""
        lsns = [c.min_lsn for c in self._chunks]
        if self._n:
            lsns.append(self._open_lsn)
        if self._ooo:
            lsns.append(self._ooo_lsn)
        return min(lsns, default=_NO_LSN)

    def value_at(self, ts: int) -> float | None:
        """The stored value at ``ts``, if any."""
        if ts in self._ooo:
            return self._ooo[ts]
        if self._n and ts >= self._ts[0]:
            i = int(np.searchsorted(self._ts[: self._n], ts))
            return float(self._vals[i]) if i < self._n and self._ts[i] == ts else None
        i = bisect_left([c.maxt for c in self._chunks], ts)
        if i < len(self._chunks) and self._chunks[i].mint <= ts:
            cts, cvals = codec.decode(self._chunks[i].data)
            j = int(np.searchsorted(cts, ts))
            if j < len(cts) and cts[j] == ts:
                return float(cvals[j])
        return None

    # ------------------------------------------------------------ writing

    def admit(
        self, ts: I64, values: F64, *, lower_bound: int, window_ms: int, policy: DuplicatePolicy
    ) -> tuple[I64, F64, int, int]:
        """Which samples of a call may be stored: ``(ts, values, out_of_order, duplicates)``.

        The returned samples are sorted by time with unique timestamps; the
        counts say how many were rejected for each reason. Bit-identical
        repeats are dropped without counting as rejected.
        """
        order = np.argsort(ts, kind="stable")
        ts, values = ts[order], values[order]
        last = self.last_ts
        floor = lower_bound if last is None else max(lower_bound, last + 1)
        if len(ts) and ts[0] >= floor and (len(ts) == 1 or bool((ts[1:] > ts[:-1]).all())):
            return ts, values, 0, 0  # the common case: strictly newer, strictly increasing
        keep_ts: list[int] = []
        keep_vals: list[float] = []
        pending: dict[int, int] = {}  # ts -> index in keep_* of this call's sample at ts
        ooo = dup = 0
        newest = last
        for t, v in zip(ts.tolist(), values.tolist(), strict=True):
            if t in pending:
                previous = keep_vals[pending[t]]
                if _same(previous, v):
                    continue
                if policy == "reject":
                    dup += 1
                else:
                    keep_vals[pending[t]] = v
                continue
            if t < lower_bound:
                ooo += 1
                continue
            if last is not None and t <= last:
                stored = self.value_at(t)
                if stored is not None and _same(stored, v):
                    continue  # a retry: safe at any age
                assert newest is not None
                if t < newest - window_ms:
                    ooo += 1
                    continue
                if stored is not None and policy == "reject":
                    dup += 1
                    continue
            pending[t] = len(keep_ts)
            keep_ts.append(t)
            keep_vals.append(v)
            newest = t if newest is None else max(newest, t)
        return np.array(keep_ts, np.int64), np.array(keep_vals, np.float64), ooo, dup

    def apply(self, ts: I64, values: F64, lsn: int) -> None:
        """Store samples without checks (admitted ones, or WAL replay); later ones win."""
        if not len(ts):
            return
        if len(ts) > 1 and not bool((ts[1:] > ts[:-1]).all()):
            ts, values = _last_per_ts(ts, values)
        last = self.last_ts
        if last is not None and ts[0] <= last:
            split = int(np.searchsorted(ts, last, side="right"))
            for t, v in zip(ts[:split].tolist(), values[:split].tolist(), strict=True):
                self._overwrite(t, v, lsn)
            ts, values = ts[split:], values[split:]
        self._append_in_order(ts, values, lsn)

    def append_one(self, t: int, v: float, lsn: int) -> None:
        """Store one sample newer than every stored one (the batched fast path)."""
        n = self._n
        if not n:
            self._open_lsn = lsn
        self._ts[n] = t
        self._vals[n] = v
        self._n = n + 1
        self.last_ts = t
        if self._n == len(self._ts):
            self._seal()

    def _overwrite(self, t: int, v: float, lsn: int) -> None:
        if self._n and self._ts[0] <= t:
            i = int(np.searchsorted(self._ts[: self._n], t))
            if i < self._n and self._ts[i] == t:
                self._vals[i] = v
                self._open_lsn = min(self._open_lsn, lsn)
                return
        self._ooo[t] = v
        self._ooo_lsn = min(self._ooo_lsn, lsn)

    def _append_in_order(self, ts: I64, values: F64, lsn: int) -> None:
        capacity = len(self._ts)
        start = 0
        while start < len(ts):
            if not self._n:
                self._open_lsn = lsn
            take = min(capacity - self._n, len(ts) - start)
            self._ts[self._n : self._n + take] = ts[start : start + take]
            self._vals[self._n : self._n + take] = values[start : start + take]
            self._n += take
            start += take
            self.last_ts = int(self._ts[self._n - 1])
            if self._n == capacity:
                self._seal()

    def _seal(self) -> None:
        n = self._n
        if not n:
            return
        data = codec.encode(self._ts[:n], self._vals[:n])
        chunk = _Chunk(int(self._ts[0]), int(self._ts[n - 1]), n, data, self._open_lsn)
        self._chunks.append(chunk)
        self._n = 0
        self._open_lsn = _NO_LSN

    # ------------------------------------------------------------ reading

    def read(self, mint: int, maxt: int) -> tuple[I64, F64]:
        """Samples in ``[mint, maxt]``, sorted, overlay applied."""
        parts_ts: list[I64] = []
        parts_vals: list[F64] = []
        for chunk in self._chunks:
            if chunk.maxt >= mint and chunk.mint <= maxt:
                cts, cvals = codec.decode(chunk.data)
                parts_ts.append(cts)
                parts_vals.append(cvals)
        if self._n and self._ts[self._n - 1] >= mint and self._ts[0] <= maxt:
            parts_ts.append(self._ts[: self._n].copy())
            parts_vals.append(self._vals[: self._n].copy())
        overlay = [(t, v) for t, v in self._ooo.items() if mint <= t <= maxt]
        if overlay:
            parts_ts.append(np.array([t for t, _ in overlay], np.int64))
            parts_vals.append(np.array([v for _, v in overlay], np.float64))
        if not parts_ts:
            return np.empty(0, np.int64), np.empty(0, np.float64)
        ts = np.concatenate(parts_ts)
        values = np.concatenate(parts_vals)
        if overlay:
            ts, values = _last_per_ts(ts, values)
        lo = int(np.searchsorted(ts, mint, side="left"))
        hi = int(np.searchsorted(ts, maxt, side="right"))
        return ts[lo:hi], values[lo:hi]

    def cut(self, boundary: int) -> tuple[I64, F64]:
        """Remove and return the samples older than ``boundary``."""
        ts, values = self.read(-(1 << 63), boundary - 1)
        kept: list[_Chunk] = []
        for chunk in self._chunks:
            if chunk.maxt < boundary:
                continue
            if chunk.mint < boundary:
                cts, cvals = codec.decode(chunk.data)
                i = int(np.searchsorted(cts, boundary))
                data = codec.encode(cts[i:], cvals[i:])
                chunk = _Chunk(int(cts[i]), chunk.maxt, len(cts) - i, data, chunk.min_lsn)
            kept.append(chunk)
        self._chunks = kept
        if self._n and self._ts[0] < boundary:
            i = int(np.searchsorted(self._ts[: self._n], boundary))
            rest = self._n - i
            self._ts[:rest] = self._ts[i : self._n].copy()
            self._vals[:rest] = self._vals[i : self._n].copy()
            self._n = rest
            if not rest:
                self._open_lsn = _NO_LSN
        if self._ooo:
            self._ooo = {t: v for t, v in self._ooo.items() if t >= boundary}
            if not self._ooo:
                self._ooo_lsn = _NO_LSN
        return ts, values
