"""Queries over a log store: index search, time ranges, pruning, head streaming, plans.

The search part runs in the index; its meaning is defined row by row by
``trusswork.logs._pipeline.match_rows``, which the property test uses as the
oracle for every kind of search expression.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Iterator

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trusswork.logs import LogStore, QueryParseError
from trusswork.logs._ast import And, FieldCompare, MatchAll, Not, Or, Phrase, SearchExpr, Term
from trusswork.logs._pipeline import match_rows

DAY_MS = 86_400_000
BASE = 1_700_000_000_000 - 1_700_000_000_000 % DAY_MS  # a day boundary
PATHS = ["/", "/api/users", "/api/orders", "/static/app.js", "/login"]
STATUSES = [200, 200, 200, 304, 404, 500, 503]


def access_line(i: int, rng: random.Random, t_ms: int) -> str:
    stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(t_ms / 1000))
    method = rng.choice(["GET", "GET", "GET", "POST", "PUT"])
    return (
        f'10.0.{i % 7}.{i % 13} - - [{stamp}] "{method} {rng.choice(PATHS)}?id={i} HTTP/1.1" '
        f'{rng.choice(STATUSES)} {rng.randrange(100, 5000)} "-" "curl/8.{i % 3}"'
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LogStore]:
    rng = random.Random(11)
    path = tmp_path_factory.mktemp("logs") / "store"
    with LogStore(path, background=False) as s:
        # Three days of access logs in several refreshes, plus app JSON logs.
        for chunk in range(6):
            lines = [
                access_line(chunk * 500 + i, rng, BASE + chunk * DAY_MS // 2 + i * 60_000)
                for i in range(500)
            ]
            s.ingest(lines, format="combined", source="access.log")
            s.refresh()
        app = [
            json.dumps(
                {
                    "ts": time.strftime(
                        "%Y-%m-%dT%H:%M:%SZ", time.gmtime((BASE + i * 1000) / 1000)
                    ),
                    "level": rng.choice(["info", "warn", "error"]),
                    "msg": f"payment {rng.choice(['accepted', 'declined', 'timed out'])} for"
                    f" order {i}",
                    "latency": round(rng.uniform(0.001, 2.0), 3),
                }
            )
            for i in range(400)
        ]
        s.ingest(app, format="json", source="app")
        yield s


def all_rows(store: LogStore) -> pa.Table:
    return store.query("*").to_arrow()


def test_every_line_comes_back_with_its_fields(store: LogStore) -> None:
    table = all_rows(store)
    assert table.num_rows == 3400
    assert {"_time", "_raw", "source", "sourcetype", "status", "clientip", "level"} <= set(
        table.column_names
    )
    assert table.schema.field("status").type == pa.int64()
    assert table.schema.field("latency").type == pa.float64()
    times = table.column("_time").to_pylist()
    assert times == sorted(times, reverse=True), "rows come newest first"
    rows = store.query('source="app" level=error').to_pylist()
    assert rows and all(r["level"] == "error" and r["sourcetype"] == "json" for r in rows)


def test_terms_phrases_and_fields(store: LogStore) -> None:
    raw = all_rows(store).column("_raw").to_pylist()
    assert len(store.query("POST")) == sum(' "POST ' in r for r in raw)
    assert len(store.query('"timed out"')) == sum("timed out" in r for r in raw)
    assert len(store.query("status=404")) == sum('" 404 ' in r for r in raw)
    n500 = sum('" 500 ' in r or '" 503 ' in r for r in raw)
    assert len(store.query("status>=500")) == n500
    assert len(store.query("status>=500 NOT status=503")) == sum('" 500 ' in r for r in raw)
    assert len(store.query("uri_path=/api/*")) == sum(" /api/" in r for r in raw)
    assert len(store.query("declined OR accepted")) == sum(
        "declined" in r or "accepted" in r for r in raw
    )


def test_time_ranges_prune_partitions_and_segments(store: LogStore) -> None:
    lo, hi = BASE + DAY_MS, BASE + 2 * DAY_MS
    result = store.query(f"GET earliest={lo // 1000} latest={hi // 1000}")
    times = result.to_arrow().column("_time").to_pylist()
    assert times and all(lo <= t < hi for t in times)
    expected = [
        r for r in all_rows(store).to_pylist() if lo <= r["_time"] < hi and '"GET ' in r["_raw"]
    ]
    assert len(result) == len(expected)
    plan = result.plan
    assert plan.partitions_read < plan.partitions_total
    assert plan.segments_skipped_time > 0
    # Relative ranges resolve against the `now` given.
    recent = store.query("earliest=-1h", now=(BASE + 3 * DAY_MS) / 1000)
    assert all(t >= BASE + 3 * DAY_MS - 3_600_000 for t in recent.to_arrow()["_time"].to_pylist())


def test_field_summaries_skip_segments(store: LogStore) -> None:
    plan = store.query("latency>1.5").plan
    assert plan.segments_skipped_summary >= 6  # access-log segments have no latency field
    assert len(store.query("status>100000")) == 0
    assert store.query("status>100000").plan.segments_read == 0


def test_head_streams_newest_partitions_first(store: LogStore) -> None:
    result = store.query("* | head 5")
    assert len(result) == 5
    assert result.plan.stopped_early
    newest = all_rows(store).column("_time").to_pylist()[:5]
    assert result.to_arrow().column("_time").to_pylist() == newest


def test_explain_shows_estimated_and_actual_rows(store: LogStore) -> None:
    result = store.query("GET status=404 | stats count by uri_path")
    plan = result.plan
    assert plan.search is not None and plan.search.label == "AND"
    actual = {child.label: child.actual for child in plan.search.children}
    assert actual["status=404"] >= plan.search.actual
    text = plan.render()
    assert "term GET" in text and "status=404" in text and "stats count by uri_path" in text
    assert plan.columns == ("_time", "uri_path")
    counts = {r["uri_path"]: r["count"] for r in result.to_pylist()}
    raw = [
        r for r in all_rows(store).to_pylist() if r.get("status") == 404 and '"GET ' in r["_raw"]
    ]
    assert counts == dict(Counter(r["uri_path"] for r in raw))
    assert json.loads(result.to_json())["plan"]["search"]["label"] == "AND"


def test_bad_queries_point_at_the_column(store: LogStore) -> None:
    with pytest.raises(QueryParseError) as info:
        store.query("status>=500 | stats count bye host")
    assert "^" in str(info.value)


# ---------------------------------------------------------------- the oracle

WORDS = ["alpha", "beta", "gamma", "delta", "error", "ok"]


def doc_lines(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(1, 5)))
        fields = [f"n={rng.randrange(-3, 10)}"] if rng.random() < 0.8 else []
        if rng.random() < 0.6:
            fields.append(f"host=web-{rng.randrange(3)}")
        if rng.random() < 0.3:
            fields.append(f"code={rng.choice(['x1', '7', 'abc', '007'])}")
        lines.append(" ".join([f'msg="{words}"', *fields, f"i={i}"]))
    return lines


leaf = st.one_of(
    st.sampled_from([*WORDS, "err*", "*ta", "missing"]).map(Term),
    st.sampled_from(["alpha beta", "error ok", "gamma"]).map(Phrase),
    st.builds(
        FieldCompare,
        st.sampled_from(["n", "host", "code", "absent"]),
        st.sampled_from(["=", "!=", "<", "<=", ">", ">="]),
        st.one_of(
            st.integers(-4, 11).map(float),
            st.sampled_from(["web-1", "web-*", "*", "x1", "7", "abc", "5"]),
        ),
    ),
    st.just(MatchAll()),
)
expressions = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.lists(inner, min_size=2, max_size=3).map(lambda p: And(tuple(p))),
        st.lists(inner, min_size=2, max_size=3).map(lambda p: Or(tuple(p))),
        inner.map(Not),
    ),
    max_leaves=6,
)


@pytest.fixture(scope="module")
def small_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LogStore, pa.Table]]:
    path = tmp_path_factory.mktemp("oracle") / "store"
    with LogStore(path, background=False) as s:
        for seed in range(4):  # several segments
            s.ingest(doc_lines(seed, 60), format="logfmt")
            s.refresh()
        yield s, s.query("*").to_arrow()


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(expr=expressions)
def test_index_search_equals_the_row_oracle(
    small_store: tuple[LogStore, pa.Table], expr: SearchExpr
) -> None:
    from trusswork.logs._engine import _Evaluator, _plan_nodes

    store, table = small_store
    expected = sorted(
        table.column("i").to_pylist()[k]
        for k, hit in enumerate(pa.array(match_rows(table, expr)).to_pylist())
        if hit
    )
    got: list[int] = []
    for segments in store.snapshot().values():
        for segment in segments:
            nodes: dict[int, object] = {}
            _plan_nodes(expr, nodes)  # type: ignore[arg-type]
            ids = _Evaluator(segment, nodes).run(expr)  # type: ignore[arg-type]
            rows = segment.rows_of(ids)
            values, codes = segment.keyword_column("i")
            got.extend(int(values[c]) for c in codes[rows])
    assert sorted(got) == expected, expr


@pytest.mark.parametrize(
    "query",
    [
        "* | stats count by status",
        "GET | stats count by status, method",
        "status>=400 | stats count, count as n by uri_path | sort -count | head 3",
        "* | stats count by level",
        "* | stats count by nothing_has_this",
        "* | stats count",
        "GET status=404 | stats count as n, count",
        "nothing_matches_this | stats count",
    ],
)
def test_stats_count_in_the_index_equals_counting_rows(store: LogStore, query: str) -> None:
    fast = store.query(query)
    assert fast.plan.counted_in_index
    # The same stats over materialized rows (a where that keeps every row
    # disables the shortcut).
    head, _, rest = query.partition("| ")
    slow = store.query(f"{head}| where true | {rest}")
    assert not slow.plan.counted_in_index
    assert fast.to_pylist() == slow.to_pylist()
    assert fast.to_arrow().schema == slow.to_arrow().schema
