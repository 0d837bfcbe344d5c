"""Long-range queries read rollups: the same answers as raw samples, from far fewer samples."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

from trusswork.core.errors import InvalidInput
from trusswork.tsdb import TSDB, Engine, Matcher, SeriesData

H = 3_600_000
START = 1_700_000_000_000 - 1_700_000_000_000 % (24 * H)
# samples 1.234 s after each 15 s tick: none sits on a window edge
TS = START + np.arange(2 * 24 * 240, dtype=np.int64) * 15_000 + 1234


class Counting:
    """A TSDB seen through select/select_downsampled, counting the samples handed out."""

    def __init__(self, db: TSDB) -> None:
        self.db = db
        self.rollups = db.rollups
        self.samples = 0

    def _count(self, found: list[SeriesData]) -> list[SeriesData]:
        self.samples += sum(len(s.ts) for s in found)
        return found

    def select(self, matchers: Sequence[Matcher], mint: int, maxt: int) -> list[SeriesData]:
        return self._count(self.db.select(matchers, mint, maxt))

    def select_downsampled(self, *args: Any) -> list[SeriesData]:
        return self._count(self.db.select_downsampled(*args))

    def label_names(self, *args: Any) -> list[str]:
        return self.db.label_names(*args)

    def label_values(self, *args: Any) -> list[str]:
        return self.db.label_values(*args)


@pytest.fixture
def compacted(open_db: Callable[..., TSDB]) -> TSDB:
    rng = np.random.default_rng(5)
    db = open_db()
    db.append_many("c", {"job": "x"}, TS, np.cumsum(rng.integers(0, 60, len(TS))).astype(float))
    db.append_many("g", {"job": "x"}, TS, np.round(np.cumsum(rng.normal(0, 1, len(TS))), 2))
    db.flush()
    db.compact()
    assert {m.resolution for m in db.blocks()} == {0, 300_000, 3_600_000}
    return db


def _range(db: TSDB, query: str, *, downsample: bool, step: int = H) -> tuple[Any, int]:
    storage = Counting(db)
    result = Engine(storage, downsample=downsample).range(query, START + 6 * H, int(TS[-1]), step)
    (series,) = result.series
    return series.values, storage.samples


@pytest.mark.parametrize(
    "query",
    [
        "max_over_time(g[1h])",
        "min_over_time(g[6h])",
        "count_over_time(g[1h])",
        "last_over_time(g[2h])",
        "g",
    ],
)
def test_exact_aggregates_agree_with_raw_and_read_less(compacted: TSDB, query: str) -> None:
    rolled, read_rolled = _range(compacted, query, downsample=True)
    raw, read_raw = _range(compacted, query, downsample=False)
    assert rolled.tolist() == raw.tolist()
    assert read_rolled * 5 < read_raw


def test_sums_agree_up_to_rounding(compacted: TSDB) -> None:
    rolled, _ = _range(compacted, "sum_over_time(g[3h])", downsample=True)
    raw, _ = _range(compacted, "sum_over_time(g[3h])", downsample=False)
    np.testing.assert_allclose(rolled, raw, rtol=1e-9, atol=1e-9)


def test_rates_from_window_ends_stay_close(compacted: TSDB) -> None:
    rolled, read_rolled = _range(compacted, "rate(c[1h])", downsample=True)
    raw, read_raw = _range(compacted, "rate(c[1h])", downsample=False)
    np.testing.assert_allclose(rolled, raw, rtol=0.05)
    assert read_rolled * 5 < read_raw


def test_short_steps_and_ranges_read_raw_samples(compacted: TSDB) -> None:
    # a 1 m step, or a range shorter than five 5 m windows, is answered from raw samples
    for query, step in (("max_over_time(g[1h])", 60_000), ("rate(c[20m])", H)):
        rolled, read_rolled = _range(compacted, query, downsample=True, step=step)
        raw, read_raw = _range(compacted, query, downsample=False, step=step)
        assert rolled.tolist() == raw.tolist()
        assert read_rolled == read_raw


def test_rollups_and_the_newer_raw_samples_are_joined(compacted: TSDB) -> None:
    # samples after the compacted day are raw in the head: the rollup read includes them
    later = int(TS[-1]) + 15_000 * np.arange(1, 241, dtype=np.int64)
    compacted.append_many("g", {"job": "x"}, later, np.full(240, 1000.0))
    storage = Counting(compacted)
    result = Engine(storage).instant("max_over_time(g[1d])", int(later[-1]))
    assert result.samples[0][2] == 1000.0
    counts = compacted.select_downsampled(
        [Matcher("__name__", "=", "g")], int(later[0]), int(later[-1]), 300_000, "count"
    )
    assert counts[0].values.tolist() == [1.0] * 240  # raw samples count one each


def test_unknown_resolution_is_invalid(compacted: TSDB) -> None:
    with pytest.raises(InvalidInput, match="rollups"):
        compacted.select_downsampled([Matcher("__name__", "=", "g")], 0, 1, 60_000)
