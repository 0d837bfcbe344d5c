"""The in-memory series index of the head block: ids, interned labels, postings.

Every series gets a series id (its *ref*), a ``uint32`` handed out in
increasing order and never reused while the database is open. For each
label pair ``name=value`` the index keeps a posting list: the sorted ids of
the series that carry the pair. Because ids only grow, adding a series
appends to its posting lists and keeps them sorted; removing series (head
garbage collection) filters them.

Matchers follow Prometheus: ``=`` and ``=~`` on a value that matches the
empty string also select series *without* the label (a missing label reads
as ``""``), and ``!=`` / ``!~`` select series without the label unless the
matcher rejects ``""``. Evaluation intersects the postings of the positive
matchers and subtracts those of the negative ones, so a selective matcher
keeps the work small.

Label names and values are interned (one ``str`` object per distinct
string), so a million series sharing ``job="api"`` store that string once.

The index is not thread-safe by itself; the database guards it with its lock.
"""

from __future__ import annotations

import re
import sys
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from trusswork.core.errors import InvalidInput, LimitExceeded
from trusswork.search.postings import difference, intersect_many, union_many
from trusswork.tsdb._series import Labels, Matcher

__all__ = ["CardinalityLimitExceeded", "CardinalityReport", "LabelValidator", "SeriesIndex"]

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_CACHE_LIMIT = 1 << 16

Postings = npt.NDArray[np.uint32]

_EMPTY: Postings = np.empty(0, np.uint32)


class CardinalityLimitExceeded(LimitExceeded):
    """A new series would pass ``max_series`` or ``max_series_per_metric``.

    Nothing of the sample (or of the whole call) was stored. ``limit`` names
    the limit that was hit and ``metric`` the metric whose series it was.
    """

    def __init__(self, message: str, *, limit: str, metric: str) -> None:
        super().__init__(message)
        self.limit = limit
        self.metric = metric


@dataclass(frozen=True)
class CardinalityReport:
    """Where the head's series come from (see :meth:`TSDB.cardinality`).

    Attributes
    ----------
    total_series:
        Series in the head (active series).
    top_metrics:
        ``(metric, series)`` with the most series first.
    top_label_names:
        ``(label name, distinct values)`` with the most values first.
    top_label_pairs:
        ``((name, value), series)`` with the most series first.
    """

    total_series: int
    top_metrics: list[tuple[str, int]]
    top_label_names: list[tuple[str, int]]
    top_label_pairs: list[tuple[tuple[str, str], int]]


def _sorted_top(counts: Mapping[Any, int], top: int) -> list[Any]:
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top]


class LabelValidator:
    """Checks metric and label names and value lengths; caches canonical label sets.

    Metric names follow ``[a-zA-Z_:][a-zA-Z0-9_:]*``, label names
    ``[a-zA-Z_][a-zA-Z0-9_]*`` and may not start with ``__`` (reserved, except
    ``__name__`` when it repeats the metric). Empty values mean "no label".
    """

    def __init__(self, max_label_value_length: int) -> None:
        self.max_label_value_length = max_label_value_length
        self._cache: dict[tuple[str, tuple[tuple[str, str], ...]], Labels] = {}

    def canonical(self, metric: str, labels: Mapping[str, str]) -> Labels:
        """Canonical labels of ``metric{labels}``, validated (cached)."""
        try:
            key = (metric, tuple(labels.items()))
            found = self._cache.get(key)
        except (TypeError, AttributeError):
            raise InvalidInput("labels must be a mapping of label names to strings") from None
        if found is not None:
            return found
        if not isinstance(metric, str) or not _METRIC_NAME.match(metric):
            raise InvalidInput(f"invalid metric name {metric!r}: use [a-zA-Z_:][a-zA-Z0-9_:]*")
        out: dict[str, str] = {"__name__": metric}
        for name, value in labels.items():
            if name == "__name__":
                if value != metric:
                    raise InvalidInput(f"label __name__={value!r} contradicts metric {metric!r}")
                continue
            if not isinstance(name, str) or not _LABEL_NAME.match(name) or name.startswith("__"):
                raise InvalidInput(
                    f"invalid label name {name!r}: use [a-zA-Z_][a-zA-Z0-9_]* not starting with __"
                )
            if not isinstance(value, str):
                raise InvalidInput(f"label {name!r} has a non-string value {value!r}")
            if len(value) > self.max_label_value_length:
                raise InvalidInput(
                    f"label {name!r} of {metric!r} is {len(value)} characters long; "
                    f"the limit is max_label_value_length={self.max_label_value_length}"
                )
            try:
                value.encode()
            except UnicodeEncodeError:
                raise InvalidInput(f"label {name!r} is not valid Unicode text") from None
            if value:
                out[name] = value
        canonical = tuple(sorted(out.items()))
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = canonical
        return canonical


class _PostingList:
    """One label pair's series ids: an append-only ``uint32`` array and a numpy view cache."""

    __slots__ = ("_cache", "ids")

    def __init__(self) -> None:
        self.ids = array("I")
        self._cache: Postings | None = None

    def add(self, series_id: int) -> None:
        self.ids.append(series_id)
        self._cache = None

    def replace(self, ids: Postings) -> None:
        self.ids = array("I", ids.tobytes())
        self._cache = None

    def numpy(self) -> Postings:
        # A copy, not a view: a view would pin the array's buffer and block appends.
        if self._cache is None:
            self._cache = np.frombuffer(self.ids, dtype=np.uint32).copy()
        return self._cache

    def __len__(self) -> int:
        return len(self.ids)


class SeriesIndex:
    """Series ids, their labels and the label-pair posting lists.

    Parameters
    ----------
    next_id:
        The first id to hand out (after a restart: one past the largest id
        the write-ahead log has seen, so an id is never given to two series
        that both appear in the log).
    """

    def __init__(self, next_id: int = 0) -> None:
        self._labels: dict[int, Labels] = {}
        self._by_labels: dict[Labels, int] = {}
        self._postings: dict[str, dict[str, _PostingList]] = {}
        self._per_metric: dict[str, int] = {}
        self._all = _PostingList()
        self._next_id = next_id

    # ------------------------------------------------------------ writing

    def _intern(self, text: str) -> str:
        return sys.intern(text)

    def get(self, labels: Labels) -> int | None:
        """The id of the series with exactly these canonical labels, or None."""
        return self._by_labels.get(labels)

    def add(self, labels: Labels, series_id: int | None = None) -> int:
        """Add a series (canonical labels) and return its id; an existing one keeps its id.

        ``series_id`` forces the id (write-ahead-log replay). Forced ids must
        come in increasing order and above every id handed out so far, so
        that posting lists stay sorted; replay adds series sorted by id.
        """
        found = self._by_labels.get(labels)
        if found is not None:
            return found
        if series_id is None:
            series_id = self._next_id
        elif series_id < self._next_id:
            raise ValueError(f"series id {series_id} is below the next id {self._next_id}")
        interned = tuple((self._intern(n), self._intern(v)) for n, v in labels)
        self._labels[series_id] = interned
        self._by_labels[interned] = series_id
        self._next_id = max(self._next_id, series_id + 1)
        for name, value in interned:
            self._postings.setdefault(name, {}).setdefault(value, _PostingList()).add(series_id)
        metric = dict(interned).get("__name__", "")
        self._per_metric[metric] = self._per_metric.get(metric, 0) + 1
        self._all.add(series_id)
        return series_id

    def reserve(self, next_id: int) -> None:
        """Never hand out ids below ``next_id`` (ids the WAL has used for other series)."""
        self._next_id = max(self._next_id, next_id)

    def remove(self, series_ids: Iterable[int]) -> None:
        """Forget series (their ids are not reused)."""
        removed = sorted(set(series_ids) & self._labels.keys())
        if not removed:
            return
        gone = np.asarray(removed, dtype=np.uint32)
        touched: set[tuple[str, str]] = set()
        for series_id in removed:
            labels = self._labels.pop(series_id)
            del self._by_labels[labels]
            touched.update(labels)
            metric = dict(labels).get("__name__", "")
            self._per_metric[metric] -= 1
            if not self._per_metric[metric]:
                del self._per_metric[metric]
        for name, value in touched:
            values = self._postings[name]
            kept = difference(values[value].numpy(), gone)
            if len(kept):
                values[value].replace(kept)
            else:
                del values[value]
                if not values:
                    del self._postings[name]
        self._all.replace(difference(self._all.numpy(), gone))

    def check_limits(
        self, new: list[Labels], max_series: int | None, max_series_per_metric: int | None
    ) -> None:
        """Raise :class:`CardinalityLimitExceeded` if adding ``new`` would pass a limit."""
        if not new:
            return
        if max_series is not None and len(self) + len(new) > max_series:
            metric = dict(new[0])["__name__"]
            raise CardinalityLimitExceeded(
                f"the database holds {len(self)} series and max_series="
                f"{max_series}; a new series of {metric!r} was rejected",
                limit="max_series",
                metric=metric,
            )
        if max_series_per_metric is not None:
            per_metric: dict[str, int] = {}
            for labels in new:
                metric = labels[0][1] if labels[0][0] == "__name__" else dict(labels)["__name__"]
                per_metric[metric] = per_metric.get(metric, 0) + 1
            for metric, count in per_metric.items():
                if self.series_count(metric) + count > max_series_per_metric:
                    raise CardinalityLimitExceeded(
                        f"metric {metric!r} has {self.series_count(metric)} series and "
                        f"max_series_per_metric={max_series_per_metric}; a new series "
                        f"was rejected",
                        limit="max_series_per_metric",
                        metric=metric,
                    )

    # ------------------------------------------------------------ reading

    @property
    def next_id(self) -> int:
        """The id the next new series gets."""
        return self._next_id

    def __len__(self) -> int:
        return len(self._labels)

    def __contains__(self, series_id: object) -> bool:
        return series_id in self._labels

    def labels(self, series_id: int) -> Labels:
        """The labels of a series id (KeyError if unknown)."""
        return self._labels[series_id]

    def items(self) -> list[tuple[int, Labels]]:
        """Every (id, labels), in id order."""
        return sorted(self._labels.items())

    def series_count(self, metric: str) -> int:
        """How many series the metric has."""
        return self._per_metric.get(metric, 0)

    def metrics(self) -> dict[str, int]:
        """Series count per metric name."""
        return dict(self._per_metric)

    def label_value_counts(self) -> dict[str, dict[str, int]]:
        """For each label name, the number of series per value."""
        return {
            name: {value: len(ids) for value, ids in values.items()}
            for name, values in self._postings.items()
        }

    def all_ids(self) -> Postings:
        """Every live series id, sorted."""
        return self._all.numpy()

    def postings(self, name: str, value: str) -> Postings:
        """The sorted ids of series with ``name=value`` (``""`` means: without the label)."""
        if value == "":
            return self._without(name)
        found = self._postings.get(name, {}).get(value)
        return _EMPTY if found is None else found.numpy()

    def _with(self, name: str) -> Postings:
        values = self._postings.get(name)
        if not values:
            return _EMPTY
        return union_many([ids.numpy() for ids in values.values()])

    def _without(self, name: str) -> Postings:
        return difference(self.all_ids(), self._with(name))

    def _matching(self, matcher: Matcher) -> Postings:
        """Ids of series whose value of ``matcher.name`` is a non-empty match."""
        values = self._postings.get(matcher.name, {})
        if matcher.op == "=":
            found = values.get(matcher.value)
            return _EMPTY if found is None else found.numpy()
        return union_many([ids.numpy() for v, ids in values.items() if matcher.matches(v)])

    def select(self, matchers: Sequence[Matcher]) -> Postings:
        """Sorted ids of the series that satisfy every matcher (all series for none)."""
        include: list[Postings] = []
        exclude: list[Postings] = []
        for matcher in matchers:
            if matcher.op in ("=", "=~"):
                hits = self._matching(matcher)
                if matcher.matches_empty():
                    hits = union_many([hits, self._without(matcher.name)])
                include.append(hits)
            else:
                # A negative matcher: drop the series whose value the positive form matches.
                positive = Matcher(matcher.name, "=" if matcher.op == "!=" else "=~", matcher.value)
                hits = self._matching(positive)
                if positive.matches_empty():
                    hits = union_many([hits, self._without(matcher.name)])
                exclude.append(hits)
        result = intersect_many(include) if include else self.all_ids()
        if exclude:
            result = difference(result, union_many(exclude))
        return result

    def cardinality(self, top: int = 10) -> CardinalityReport:
        """Series count and the metrics, label names and pairs contributing most."""
        values = self.label_value_counts()
        pairs = {
            (name, value): count
            for name, counts in values.items()
            for value, count in counts.items()
            if name != "__name__"
        }
        return CardinalityReport(
            total_series=len(self),
            top_metrics=_sorted_top(self._per_metric, top),
            top_label_names=_sorted_top({n: len(vs) for n, vs in values.items()}, top),
            top_label_pairs=_sorted_top(pairs, top),
        )

    def label_names(self, series_ids: Postings | None = None) -> list[str]:
        """Sorted label names among the series (all series for None)."""
        if series_ids is None:
            return sorted(self._postings)
        names: set[str] = set()
        for series_id in series_ids.tolist():
            names.update(name for name, _ in self._labels[series_id])
        return sorted(names)

    def label_values(self, name: str, series_ids: Postings | None = None) -> list[str]:
        """Sorted values of label ``name`` among the series (all series for None)."""
        values = self._postings.get(name, {})
        if series_ids is None:
            return sorted(values)
        return sorted(
            value for value, ids in values.items() if len(intersect_many([ids.numpy(), series_ids]))
        )
