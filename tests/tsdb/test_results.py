"""Query results as Arrow tables: one row per point, a column per label name."""

from __future__ import annotations

import numpy as np

from trusswork.tsdb import Engine, MemoryStore
from trusswork.tsdb._series import labels_of

M = 60_000


def _store() -> MemoryStore:
    store = MemoryStore()
    for job, offset in (("api", 0.0), ("db", 10.0)):
        for minute in range(5):
            store.add(labels_of({"__name__": "up", "job": job}), minute * M, offset + minute)
    store.add(labels_of({"__name__": "up", "job": "db", "zone": "eu"}), 4 * M, 99.0)
    return store


def test_matrix_to_arrow_is_long_format() -> None:
    result = Engine(_store()).range("up", 0, 4 * M, M)
    table = result.to_arrow()
    assert table.column_names == ["__name__", "job", "zone", "timestamp", "value"]
    rows = table.to_pylist()
    assert len(rows) == sum(len(s.ts) for s in result.series) == 11
    api = [r for r in rows if r["job"] == "api"]
    assert [r["value"] for r in api] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert all(r["zone"] is None for r in api)
    assert [int(r["timestamp"].timestamp() * 1000) for r in api] == [0, M, 2 * M, 3 * M, 4 * M]
    (eu,) = [r for r in rows if r["zone"] == "eu"]
    assert eu["value"] == 99.0


def test_vector_to_arrow_has_a_row_per_series() -> None:
    result = Engine(_store()).instant("sum by (job) (up)", 4 * M)
    table = result.to_arrow()
    assert table.column_names == ["job", "timestamp", "value"]
    assert sorted(zip(table["job"].to_pylist(), table["value"].to_pylist(), strict=True)) == [
        ("api", 4.0),
        ("db", 113.0),
    ]
    assert np.all(table["timestamp"].cast("int64").to_numpy() == 4 * M)


def test_empty_results_give_empty_tables() -> None:
    engine = Engine(_store())
    assert engine.range("nothing", 0, M, M).to_arrow().num_rows == 0
    assert engine.instant("nothing", 0).to_arrow().num_rows == 0
