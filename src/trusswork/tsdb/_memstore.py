"""An in-memory ``Queryable`` for tests and the PromQL conformance runner.

Samples are appended per series into Python lists and frozen into sorted
numpy arrays on first read after a write; a later sample at an existing
timestamp replaces the earlier one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from trusswork.tsdb._series import Labels, Matcher, SeriesData, labels_of

__all__ = ["MemoryStore"]


class MemoryStore:
    """Series held in memory; implements ``select``, ``label_names`` and ``label_values``."""

    def __init__(self) -> None:
        self._pending: dict[Labels, dict[int, float]] = {}
        self._frozen: dict[Labels, tuple[np.ndarray, np.ndarray]] = {}

    def add(self, labels: Mapping[str, str] | Labels, ts: int, value: float) -> None:
        """Add one sample (``ts`` in ms); a sample at an existing timestamp replaces it."""
        key = labels_of(labels)
        self._pending.setdefault(key, {})[int(ts)] = float(value)
        self._frozen.pop(key, None)

    def add_many(
        self, labels: Mapping[str, str] | Labels, ts: Iterable[int], values: Iterable[float]
    ) -> None:
        """Add many samples to one series."""
        key = labels_of(labels)
        points = self._pending.setdefault(key, {})
        for t, v in zip(ts, values, strict=True):
            points[int(t)] = float(v)
        self._frozen.pop(key, None)

    def clear(self) -> None:
        """Drop every series."""
        self._pending.clear()
        self._frozen.clear()

    def _series(self, key: Labels) -> tuple[np.ndarray, np.ndarray]:
        frozen = self._frozen.get(key)
        if frozen is None:
            points = self._pending[key]
            ts = np.fromiter(sorted(points), dtype=np.int64, count=len(points))
            values = np.array([points[t] for t in ts.tolist()], dtype=np.float64)
            frozen = self._frozen[key] = (ts, values)
        return frozen

    def _matching(self, matchers: Sequence[Matcher]) -> list[Labels]:
        out = []
        for key in self._pending:
            names = dict(key)
            if all(m.matches(names.get(m.name, "")) for m in matchers):
                out.append(key)
        return sorted(out)

    def select(self, matchers: Sequence[Matcher], mint: int, maxt: int) -> list[SeriesData]:
        """Series matching every matcher, with their samples in ``[mint, maxt]``."""
        result = []
        for key in self._matching(matchers):
            ts, values = self._series(key)
            lo = int(np.searchsorted(ts, mint, side="left"))
            hi = int(np.searchsorted(ts, maxt, side="right"))
            if hi > lo:
                result.append(SeriesData(key, ts[lo:hi], values[lo:hi]))
        return result

    def label_names(
        self, matchers: Sequence[Matcher] = (), mint: int | None = None, maxt: int | None = None
    ) -> list[str]:
        """Sorted label names of the matching series."""
        return sorted({name for key in self._live(matchers, mint, maxt) for name, _ in key})

    def label_values(
        self,
        name: str,
        matchers: Sequence[Matcher] = (),
        mint: int | None = None,
        maxt: int | None = None,
    ) -> list[str]:
        """Sorted values of label ``name`` among the matching series."""
        return sorted(
            {dict(key)[name] for key in self._live(matchers, mint, maxt) if name in dict(key)}
        )

    def _live(
        self, matchers: Sequence[Matcher], mint: int | None, maxt: int | None
    ) -> list[Labels]:
        keys = self._matching(matchers)
        if mint is None and maxt is None:
            return keys
        lo_t = -(2**63) if mint is None else mint
        hi_t = 2**63 - 1 if maxt is None else maxt
        return [k for k in keys if self._has(k, lo_t, hi_t)]

    def _has(self, key: Labels, mint: int, maxt: int) -> bool:
        ts, _ = self._series(key)
        lo = int(np.searchsorted(ts, mint, side="left"))
        return lo < len(ts) and int(ts[lo]) <= maxt
