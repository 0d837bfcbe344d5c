"""The data model every part of the store and the query engine shares.

A series is a set of labels (``__name__`` is the metric name) and its float
samples at int64 millisecond timestamps. Storage answers :class:`Queryable`;
the PromQL engine reads only through it, so the head block, the on-disk
blocks and the in-memory test store are interchangeable.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

from trusswork.core.errors import InvalidInput

__all__ = [
    "STALE_NAN",
    "Labels",
    "MatchOp",
    "Matcher",
    "Queryable",
    "SeriesData",
    "is_stale",
    "labels_of",
    "newest_per_timestamp",
]

#: Prometheus's staleness marker: a NaN with this exact bit pattern ends a
#: series for lookback; any other NaN is an ordinary value.
STALE_NAN: float = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]
_STALE_BITS = 0x7FF0000000000002

#: Labels in canonical form: (name, value) pairs sorted by name, names unique,
#: empty values dropped. ``__name__`` holds the metric name.
Labels = tuple[tuple[str, str], ...]

MatchOp = Literal["=", "!=", "=~", "!~"]


def labels_of(mapping: Mapping[str, str] | Iterable[tuple[str, str]]) -> Labels:
    """Canonical labels from a mapping or pairs: sorted by name, empty values dropped."""
    items = mapping.items() if isinstance(mapping, Mapping) else mapping
    out: dict[str, str] = {}
    for name, value in items:
        if name in out:
            raise InvalidInput(f"label {name!r} given twice")
        if value != "":
            out[name] = value
    return tuple(sorted(out.items()))


def is_stale(values: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """Which values are the staleness marker (bit-exact, not any NaN)."""
    stale: npt.NDArray[np.bool_] = np.asarray(values, dtype=np.float64).view(
        np.uint64
    ) == np.uint64(_STALE_BITS)
    return stale


def newest_per_timestamp(ts: npt.NDArray[np.int64]) -> npt.NDArray[np.intp]:
    """Indices that sort ``ts`` and keep, of equal timestamps, the last one given.

    How every merge of samples resolves duplicates: parts concatenated
    oldest first, so the newest write of a timestamp wins.
    """
    order = np.argsort(ts, kind="stable")
    ordered = ts[order]
    last_of_run = np.ones(len(order), dtype=np.bool_)
    np.not_equal(ordered[1:], ordered[:-1], out=last_of_run[:-1])
    keep: npt.NDArray[np.intp] = order[last_of_run]
    return keep


@dataclass(frozen=True, slots=True)
class Matcher:
    """One label matcher of a selector: ``name op "value"``.

    Regular expressions are fully anchored, as in Prometheus. A label that a
    series does not have matches as the empty string, so ``{foo=""}`` selects
    series without ``foo``.
    """

    name: str
    op: MatchOp
    value: str
    _regex: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.op in ("=~", "!~"):
            try:
                compiled = re.compile(f"(?s:{self.value})\\Z")
            except re.error as exc:
                raise InvalidInput(f"invalid regular expression {self.value!r}: {exc}") from None
            object.__setattr__(self, "_regex", compiled)
        elif self.op not in ("=", "!="):
            raise InvalidInput(f"unknown matcher operator {self.op!r}")

    def matches(self, value: str) -> bool:
        """Whether a label value (``""`` when the label is absent) satisfies the matcher."""
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        assert self._regex is not None
        hit = self._regex.match(value) is not None
        return hit if self.op == "=~" else not hit

    def matches_empty(self) -> bool:
        """Whether a series without this label matches."""
        return self.matches("")


class SeriesData(NamedTuple):
    """One series' samples in a time range: ascending unique int64 ms timestamps."""

    labels: Labels
    ts: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]


class Queryable(Protocol):
    """What the query engine and the HTTP API read from."""

    def select(self, matchers: Sequence[Matcher], mint: int, maxt: int) -> list[SeriesData]:
        """Series matching every matcher, with their samples in ``[mint, maxt]`` (ms, inclusive).

        Series with no sample in the range are left out. Order is by labels.
        """
        ...

    def label_names(
        self, matchers: Sequence[Matcher] = (), mint: int | None = None, maxt: int | None = None
    ) -> list[str]:
        """Sorted label names of the matching series (all series without matchers)."""
        ...

    def label_values(
        self,
        name: str,
        matchers: Sequence[Matcher] = (),
        mint: int | None = None,
        maxt: int | None = None,
    ) -> list[str]:
        """Sorted values of label ``name`` among the matching series."""
        ...
