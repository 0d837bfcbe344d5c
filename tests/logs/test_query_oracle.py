"""Whole queries against a plain oracle, over both tiers.

The oracle of a query is the slowest way to answer it: every row of the
store, filtered row by row with ``match_rows`` and the time range, then the
commands run one after another by ``run_commands``. The store answers with
its index, pruning, shortcuts (counts from keyword codes, streaming head,
no sort for order-free commands) and, after tiering, from Parquet files;
every answer must be the oracle's.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trusswork.logs import LogStore, parse_query
from trusswork.logs._engine import resolve_time
from trusswork.logs._pipeline import match_rows, run_commands

DAY_MS = 86_400_000
BASE = 1_700_000_000_000 - 1_700_000_000_000 % DAY_MS
NOW = (BASE + 3 * DAY_MS + DAY_MS // 2) / 1000
HOSTS = ["web-1", "web-2", "db-1"]


def lines(seed: int) -> list[str]:
    rng = random.Random(seed)
    out = []
    for i in range(400):
        t = BASE + rng.randrange(3 * DAY_MS)
        stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(t / 1000))
        if rng.random() < 0.6:
            out.append(
                f'10.0.{i % 3}.{i % 11} - - [{stamp}] "{rng.choice(["GET", "POST"])}'
                f' /{rng.choice(["cart", "login", "item"])}/{i % 7} HTTP/1.1"'
                f' {rng.choice([200, 200, 404, 500])} {rng.randrange(10, 900)} "-" "ua/{i % 2}"'
            )
        else:
            iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t / 1000))
            level = rng.choice(["info", "warn", "error"])
            out.append(
                f'ts={iso} level={level} host={rng.choice(HOSTS)} msg="job'
                f' {rng.choice(["started", "failed", "done"])}" took={rng.randrange(1, 500)}'
            )
    return out


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LogStore, LogStore]]:
    base = tmp_path_factory.mktemp("oracle")
    hot = LogStore(base / "hot", background=False, clock=lambda: NOW)
    cold = LogStore(base / "cold", background=False, clock=lambda: NOW, hot_max_age="1d")
    for seed in range(3):
        batch = lines(seed)
        hot.ingest(batch, format="auto")
        cold.ingest(batch, format="auto")
        hot.refresh()
        cold.refresh()
    cold.tier()
    assert cold.cold_partitions(), "the cold store holds Parquet partitions"
    yield hot, cold
    hot.close()
    cold.close()


SEARCHES = [
    "*",
    "GET",
    "status>=404",
    "status=500 OR level=error",
    "NOT host=web-*",
    '"job failed"',
    "item* took>100",
    "earliest=-2d",
    f"earliest={(BASE + DAY_MS) // 1000} latest={(BASE + 2 * DAY_MS) // 1000} POST",
]
COMMANDS = [
    "stats count",
    "stats count by status",
    "stats count by level, host",
    "stats count, avg(took) as t by host",
    "stats dc(clientip), max(bytes)",
    "timechart span=6h count by sourcetype",
    "top limit=3 uri_path",
    "head 7",
    "sort -bytes, _time | head 5",
    "where status >= 404 | stats count by method",
    "eval big=bytes>500 | stats count by big",
    "dedup host | table host, level",
    "fields status, method | head 3",
    "tail 4",
]


def oracle(store: LogStore, text: str) -> pa.Table:
    query = parse_query(text)
    table = store.query("*", now=NOW).to_arrow()  # every row, newest first
    now_ms = int(NOW * 1000)
    keep = pa.array(match_rows(table, query.search))
    if query.earliest is not None:
        keep = pc.and_(keep, pc.greater_equal(table["_time"], resolve_time(query.earliest, now_ms)))
    if query.latest is not None:
        keep = pc.and_(keep, pc.less(table["_time"], resolve_time(query.latest, now_ms)))
    return run_commands(table.filter(keep), list(query.commands), now_ms=now_ms)


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.sampled_from(SEARCHES), st.lists(st.sampled_from(COMMANDS), max_size=2))
def test_queries_equal_the_row_by_row_oracle_in_both_tiers(
    stores: tuple[LogStore, LogStore], search: str, commands: list[str]
) -> None:
    text = " | ".join([search, *commands])
    hot, cold = stores
    expected = oracle(hot, text).to_pylist()
    assert hot.query(text, now=NOW).to_arrow().to_pylist() == expected, text
    assert cold.query(text, now=NOW).to_arrow().to_pylist() == expected, text


def test_the_cold_store_reads_parquet(stores: tuple[LogStore, LogStore]) -> None:
    _, cold = stores
    plan = cold.query("GET", now=NOW).plan
    assert plan.cold_read >= 1
