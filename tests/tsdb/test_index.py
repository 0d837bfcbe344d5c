"""The head's series index: ids, postings and Prometheus matcher semantics.

Selections are compared with a brute-force filter that applies each
matcher to every series' value of the label (``""`` when absent).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import examples
from trusswork.core.errors import InvalidInput
from trusswork.tsdb._index import LabelValidator, SeriesIndex
from trusswork.tsdb._series import Labels, Matcher, labels_of

NAMES = ["__name__", "job", "zone", "é"]
VALUES = ["a", "b", "ab", "up", "日本"]
REGEXES = ["a.*", "b|up", ".*", ".+", "", "[^a]+"]

label_sets = st.lists(
    st.dictionaries(st.sampled_from(NAMES), st.sampled_from(VALUES), min_size=1).map(labels_of),
    max_size=25,
    unique=True,
)
matchers = st.one_of(
    st.builds(
        Matcher,
        st.sampled_from(NAMES),
        st.sampled_from(["=", "!="]),
        st.sampled_from([*VALUES, ""]),
    ),
    st.builds(
        Matcher, st.sampled_from(NAMES), st.sampled_from(["=~", "!~"]), st.sampled_from(REGEXES)
    ),
)


def brute(series: dict[int, Labels], selectors: list[Matcher]) -> list[int]:
    return [
        ref
        for ref, labels in sorted(series.items())
        if all(m.matches(dict(labels).get(m.name, "")) for m in selectors)
    ]


@settings(max_examples=examples(150), deadline=None)
@given(label_sets, st.lists(matchers, max_size=3), st.data())
def test_select_agrees_with_brute_force(
    sets: list[Labels], selectors: list[Matcher], data: st.DataObject
) -> None:
    index = SeriesIndex()
    series = {index.add(labels): labels for labels in sets}
    removed = data.draw(st.sets(st.sampled_from(sorted(series))) if series else st.just(set()))
    index.remove(removed)
    for ref in removed:
        del series[ref]
    got = index.select(selectors)
    assert got.dtype == np.uint32
    assert got.tolist() == brute(series, selectors)
    # Names and values seen through the matchers are those of the selected series.
    chosen = [series[ref] for ref in got.tolist()]
    assert index.label_names(got) == sorted({n for labels in chosen for n, _ in labels})
    assert index.label_values("job", got) == sorted(
        {v for labels in chosen for n, v in labels if n == "job"}
    )


def test_empty_matcher_selects_series_without_the_label() -> None:
    index = SeriesIndex()
    with_zone = index.add(labels_of({"__name__": "up", "zone": "eu"}))
    without = index.add(labels_of({"__name__": "up"}))
    assert index.select([Matcher("zone", "=", "")]).tolist() == [without]
    assert index.select([Matcher("zone", "!=", "")]).tolist() == [with_zone]
    assert index.select([Matcher("zone", "=~", "eu|")]).tolist() == [with_zone, without]
    assert index.select([Matcher("zone", "!~", ".+")]).tolist() == [without]


def test_ids_grow_and_are_not_reused_after_removal() -> None:
    index = SeriesIndex()
    a = index.add(labels_of({"__name__": "a"}))
    b = index.add(labels_of({"__name__": "b"}))
    assert index.add(labels_of({"__name__": "a"})) == a  # same labels, same id
    index.remove([a])
    c = index.add(labels_of({"__name__": "a"}))
    assert c > b > a
    assert index.get(labels_of({"__name__": "a"})) == c
    assert index.metrics() == {"a": 1, "b": 1}
    assert len(index) == 2


def test_forced_ids_must_increase() -> None:
    index = SeriesIndex()
    index.add(labels_of({"__name__": "a"}), 7)
    assert index.next_id == 8
    with pytest.raises(ValueError, match="below the next id"):
        index.add(labels_of({"__name__": "b"}), 3)


@settings(max_examples=examples(200), deadline=None)
@given(st.text(max_size=12), st.dictionaries(st.text(max_size=8), st.text(max_size=12), max_size=4))
def test_label_validation_accepts_or_raises_invalid_input(
    metric: str, labels: dict[str, str]
) -> None:
    validator = LabelValidator(max_label_value_length=10)
    try:
        canonical = validator.canonical(metric, labels)
    except InvalidInput:
        return
    as_dict = dict(canonical)
    assert as_dict["__name__"] == metric
    assert [n for n, _ in canonical] == sorted(as_dict)
    assert all(v and len(v) <= 10 for v in as_dict.values() if v != metric)
    assert validator.canonical(metric, labels) is canonical  # cached
