"""trusswork.core.metrics: values, the Prometheus text exposition, names, threads."""

from __future__ import annotations

import math
import threading

import pytest

from trusswork.core.clock import SYSTEM_CLOCK, FakeClock
from trusswork.core.errors import Conflict, InvalidInput, NotFound
from trusswork.core.metrics import (
    DEFAULT_BUCKETS,
    REGISTRY,
    Counter,
    Gauge,
    MetricsRegistry,
)


def test_exposition_of_a_small_registry_matches_the_text_format() -> None:
    clock = FakeClock()
    registry = MetricsRegistry(clock=clock)
    requests = registry.counter("http_requests", "Requests served.", labelnames=("method", "code"))
    requests.labels("GET", "200").inc()
    requests.labels(method="GET", code="200").inc(2)
    requests.labels(method="POST", code="500").inc()
    depth = registry.gauge("queue_depth", "Jobs waiting.")
    depth.set(7)
    depth.dec(2)
    latency = registry.histogram("request_seconds", "Time to answer.", buckets=(0.1, 0.5, 1.0))
    for value in (0.05, 0.1, 0.3, 2.0):
        latency.observe(value)

    expected = (
        "# HELP http_requests_total Requests served.\n"
        "# TYPE http_requests_total counter\n"
        'http_requests_total{method="GET",code="200"} 3.0\n'
        'http_requests_total{method="POST",code="500"} 1.0\n'
        "# HELP queue_depth Jobs waiting.\n"
        "# TYPE queue_depth gauge\n"
        "queue_depth 5.0\n"
        "# HELP request_seconds Time to answer.\n"
        "# TYPE request_seconds histogram\n"
        'request_seconds_bucket{le="0.1"} 2\n'
        'request_seconds_bucket{le="0.5"} 3\n'
        'request_seconds_bucket{le="1.0"} 3\n'
        'request_seconds_bucket{le="+Inf"} 4\n'
        "request_seconds_sum 2.45\n"
        "request_seconds_count 4\n"
    )
    assert registry.exposition().splitlines() == expected.splitlines()
    assert registry.exposition() == expected


def test_empty_registry_exposes_nothing_and_unused_families_only_headers() -> None:
    registry = MetricsRegistry()
    assert registry.exposition() == ""
    registry.counter("errors", "Errors.", labelnames=("kind",))
    registry.gauge("up", "1 when up.")
    assert registry.exposition() == (
        "# HELP errors_total Errors.\n"
        "# TYPE errors_total counter\n"
        "# HELP up 1 when up.\n"
        "# TYPE up gauge\n"
        "up 0.0\n"
    )


def test_label_values_and_help_are_escaped() -> None:
    registry = MetricsRegistry()
    counter = registry.counter("paths", 'Paths seen, "quoted"\nand \\ slashed.', labelnames=("p",))
    counter.labels('C:\\dir "x"\nnext').inc()
    lines = registry.exposition().splitlines()
    assert lines == [
        '# HELP paths_total Paths seen, "quoted"\\nand \\\\ slashed.',
        "# TYPE paths_total counter",
        'paths_total{p="C:\\\\dir \\"x\\"\\nnext"} 1.0',
    ]


def test_histogram_labels_put_le_last() -> None:
    registry = MetricsRegistry()
    hist = registry.histogram("size_bytes", "Sizes.", labelnames=("kind",), buckets=(10, 100))
    hist.labels(kind="a").observe(50)
    assert registry.exposition().splitlines()[2:] == [
        'size_bytes_bucket{kind="a",le="10.0"} 0',
        'size_bytes_bucket{kind="a",le="100.0"} 1',
        'size_bytes_bucket{kind="a",le="+Inf"} 1',
        'size_bytes_sum{kind="a"} 50.0',
        'size_bytes_count{kind="a"} 1',
    ]


def test_special_float_values_are_spelled_as_prometheus_does() -> None:
    registry = MetricsRegistry()
    gauge = registry.gauge("g", "G.", labelnames=("v",))
    gauge.labels("nan").set(math.nan)
    gauge.labels("inf").set(math.inf)
    gauge.labels("-inf").set(-math.inf)
    assert registry.exposition().splitlines()[2:] == [
        'g{v="nan"} NaN',
        'g{v="inf"} +Inf',
        'g{v="-inf"} -Inf',
    ]


def test_histogram_buckets_are_cumulative_and_bounds_inclusive() -> None:
    hist = MetricsRegistry().histogram("h", "H.", buckets=(1.0, 2.0, 5.0))
    for value in (0.5, 1.0, 1.5, 2.0, 4.0, 5.0, 9.0, -3.0, math.inf):
        hist.observe(value)
    assert hist.bucket_counts() == [(1.0, 3), (2.0, 5), (5.0, 7), (math.inf, 9)]
    assert hist.count == 9
    assert hist.sum == math.inf
    assert hist.buckets == (1.0, 2.0, 5.0, math.inf)


def test_histogram_default_buckets_end_with_inf() -> None:
    hist = MetricsRegistry().histogram("h", "H.")
    assert hist.buckets == DEFAULT_BUCKETS
    assert DEFAULT_BUCKETS[-1] == math.inf
    hist.observe(0.2)
    assert dict(hist.bucket_counts())[0.25] == 1
    assert dict(hist.bucket_counts())[0.1] == 0


@pytest.mark.parametrize("buckets", [(1.0, 1.0), (2.0, 1.0), (1.0, math.nan), (math.inf, 5.0)])
def test_histogram_buckets_must_increase(buckets: tuple[float, ...]) -> None:
    with pytest.raises(InvalidInput, match="buckets"):
        MetricsRegistry().histogram("h", "H.", buckets=buckets)


def test_histogram_refuses_nan_and_le_label() -> None:
    registry = MetricsRegistry()
    with pytest.raises(InvalidInput, match="NaN"):
        registry.histogram("h", "H.").observe(math.nan)
    with pytest.raises(InvalidInput, match="'le'"):
        registry.histogram("h2", "H.", labelnames=("le",))


def test_histogram_time_uses_the_registry_clock() -> None:
    clock = FakeClock()
    registry = MetricsRegistry(clock=clock)
    assert registry.clock is clock
    hist = registry.histogram("op_seconds", "Op.", buckets=(0.5, 1.0))
    with hist.time() as timer:
        clock.advance(0.75)
    assert timer.duration == 0.75
    with pytest.raises(RuntimeError), hist.time():
        clock.advance(0.25)
        raise RuntimeError("the block failed")
    assert hist.count == 2
    assert hist.sum == 1.0
    assert hist.bucket_counts() == [(0.5, 1), (1.0, 2), (math.inf, 2)]


def test_counter_counts_up_only() -> None:
    counter = MetricsRegistry().counter("jobs", "Jobs.")
    counter.inc()
    counter.inc(2.5)
    counter.inc(0)
    assert counter.value == 3.5
    for bad in (-1, math.nan):
        with pytest.raises(InvalidInput, match="only go up"):
            counter.inc(bad)
    assert counter.value == 3.5


def test_gauge_goes_both_ways() -> None:
    gauge = MetricsRegistry().gauge("conns", "Connections.")
    gauge.inc()
    gauge.inc(4)
    gauge.dec()
    gauge.inc(-1)
    assert gauge.value == 3.0
    gauge.set(-2.5)
    assert gauge.value == -2.5


def test_counter_total_suffix_rule() -> None:
    registry = MetricsRegistry()
    a = registry.counter("requests_total", "Requests.")
    b = registry.counter("requests", "Requests.")
    assert a is b
    assert a.name == "requests"
    assert registry.get("requests") is a
    assert registry.get("requests_total") is a
    a.inc()
    assert "requests_total 1.0" in registry.exposition().splitlines()


def test_declaring_twice_returns_the_same_metric() -> None:
    registry = MetricsRegistry()
    first = registry.histogram("h", "H.", labelnames=("a",), buckets=(1, 2))
    again = registry.histogram("h", "Other help is fine.", labelnames=["a"], buckets=[1.0, 2.0])
    assert again is first
    assert registry.gauge("g", "G.") is registry.gauge("g", "G.")


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (lambda r: r.counter("x", "X."), lambda r: r.gauge("x", "X.")),
        (lambda r: r.counter("x", "X."), lambda r: r.counter("x", "X.", labelnames=("a",))),
        (
            lambda r: r.gauge("x", "X.", labelnames=("a", "b")),
            lambda r: r.gauge("x", "X.", labelnames=("b", "a")),
        ),
        (
            lambda r: r.histogram("x", "X.", buckets=(1,)),
            lambda r: r.histogram("x", "X.", buckets=(2,)),
        ),
        (lambda r: r.counter("x", "X."), lambda r: r.gauge("x_total", "X.")),
        (lambda r: r.gauge("x_total", "X."), lambda r: r.counter("x", "X.")),
        (lambda r: r.histogram("x", "X."), lambda r: r.gauge("x_count", "X.")),
        (lambda r: r.gauge("x_bucket", "X."), lambda r: r.histogram("x", "X.")),
    ],
)
def test_name_reuse_with_another_shape_conflicts(first, second) -> None:  # type: ignore[no-untyped-def]
    registry = MetricsRegistry()
    kept = first(registry)
    with pytest.raises(Conflict):
        second(registry)
    assert registry.get(kept.name) is kept


def test_conflict_message_says_what_is_registered() -> None:
    registry = MetricsRegistry()
    registry.counter("hits", "Hits.")
    with pytest.raises(Conflict, match="already registered as counter"):
        registry.gauge("hits", "Hits.")


@pytest.mark.parametrize("name", ["", "1abc", "a-b", "a b", "é", "_total"])
def test_bad_metric_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput, match="invalid metric name"):
        MetricsRegistry().counter(name, "X.")


@pytest.mark.parametrize("name", ["a", "_a", "a:b", ":a", "A_1:z"])
def test_good_metric_names_are_accepted(name: str) -> None:
    assert MetricsRegistry().gauge(name, "X.").name == name


@pytest.mark.parametrize("label", ["", "1a", "a:b", "a-b", "__reserved"])
def test_bad_label_names_are_refused(label: str) -> None:
    with pytest.raises(InvalidInput, match="label name"):
        MetricsRegistry().counter("x", "X.", labelnames=(label,))


def test_labelnames_must_be_distinct_and_not_a_string() -> None:
    with pytest.raises(InvalidInput, match="duplicate"):
        MetricsRegistry().counter("x", "X.", labelnames=("a", "a"))
    with pytest.raises(InvalidInput, match="sequence"):
        MetricsRegistry().counter("x", "X.", labelnames="ab")  # type: ignore[arg-type]


def test_labels_are_cached_and_accept_positions_or_names() -> None:
    counter = MetricsRegistry().counter("x", "X.", labelnames=("a", "b"))
    child = counter.labels("1", "2")
    assert counter.labels(1, 2) is child
    assert counter.labels(b="2", a=1) is child
    assert child.labelvalues == ("1", "2")
    assert isinstance(child, Counter)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("1",), {}, "expected 2 label values"),
        (("1", "2", "3"), {}, "expected 2 label values"),
        ((), {"a": "1"}, "missing \\['b'\\]"),
        ((), {"a": "1", "c": "2"}, "unexpected \\['c'\\]"),
        ((), {"a": "1", "b": "2", "c": "3"}, "unexpected"),
        (("1",), {"b": "2"}, "not both"),
        ((), {}, "expected 2 label values"),
    ],
)
def test_wrong_label_values_are_refused(
    args: tuple[str, ...], kwargs: dict[str, str], match: str
) -> None:
    counter = MetricsRegistry().counter("x", "X.", labelnames=("a", "b"))
    with pytest.raises(InvalidInput, match=match):
        counter.labels(*args, **kwargs)


def test_labeled_family_cannot_record_and_unlabeled_has_no_labels() -> None:
    registry = MetricsRegistry()
    family = registry.histogram("h", "H.", labelnames=("a",))
    for call in (lambda: family.observe(1.0), family.time, lambda: family.count):
        with pytest.raises(InvalidInput, match=r"\.labels"):
            call()
    for metric in (
        registry.counter("c", "C.", labelnames=("a",)),
        registry.gauge("g", "G.", labelnames=("a",)),
    ):
        with pytest.raises(InvalidInput, match=r"\.labels"):
            metric.inc()
        with pytest.raises(InvalidInput, match=r"\.labels"):
            _ = metric.value
    with pytest.raises(InvalidInput, match="has no label names"):
        registry.counter("plain", "P.").labels("x")
    with pytest.raises(InvalidInput, match="already a labeled series"):
        family.labels("x").labels("y")


def test_get_unknown_name_raises_not_found() -> None:
    registry = MetricsRegistry()
    registry.gauge("g", "G.")
    registry.gauge("q_total", "Q.")
    with pytest.raises(NotFound, match=r"no metric named 'nope'.*registered: g, q_total"):
        registry.get("nope")
    with pytest.raises(NotFound):
        registry.get("g_total")  # only counters answer to their _total name
    assert isinstance(registry.get("q_total"), Gauge)


def test_concurrent_updates_lose_nothing() -> None:
    registry = MetricsRegistry()
    counter = registry.counter("c", "C.")
    labeled = registry.counter("l", "L.", labelnames=("t",))
    gauge = registry.gauge("g", "G.")
    hist = registry.histogram("h", "H.", buckets=(0.5,))
    threads_n, per_thread = 8, 5_000
    barrier = threading.Barrier(threads_n)

    def work(index: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            counter.inc()
            labeled.labels(str(i % 3)).inc()
            gauge.inc()
            gauge.dec(0.5)
            hist.observe(index % 2)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    total = threads_n * per_thread
    assert counter.value == total
    assert sum(labeled.labels(str(k)).value for k in range(3)) == total
    assert gauge.value == total / 2
    assert hist.count == total
    assert hist.bucket_counts() == [(0.5, total // 2), (math.inf, total)]
    assert hist.sum == total // 2


def test_scrapes_during_updates_are_consistent() -> None:
    registry = MetricsRegistry()
    hist = registry.histogram("h", "H.", labelnames=("k",), buckets=(1.0,))
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            hist.labels(str(i % 50)).observe(2.0)
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(200):
            lines = registry.exposition().splitlines()
            inf = {
                line.split("{")[1].split(",")[0]: line.rsplit(" ", 1)[1]
                for line in lines
                if 'le="+Inf"' in line
            }
            counts = {
                line.split("{")[1].split("}")[0]: line.rsplit(" ", 1)[1]
                for line in lines
                if "_count{" in line
            }
            assert inf == counts
    finally:
        stop.set()
        thread.join()


def test_module_registry_is_a_registry() -> None:
    # Declared metrics stay for the life of the process, so this test adds none.
    assert isinstance(REGISTRY, MetricsRegistry)
    assert REGISTRY.clock is SYSTEM_CLOCK


def test_repr_names_the_series() -> None:
    counter = MetricsRegistry().counter("x", "X.", labelnames=("a",))
    assert repr(counter.labels("1")) == '<Counter x_total{a="1"}>'
