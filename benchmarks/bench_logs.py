"""trusswork.logs against what a user would otherwise group log lines with.

Groups (``impl`` names in brackets; ours is ``trusswork``):

- ``patterns-loghub``: mine the templates of the Content column of all 16
  Loghub 2k samples (``<shared>/loghub``, see its README), one fresh miner
  per system, every line of a system in order [``drain3``: the ``drain3``
  package's ``TemplateMiner`` with its default configuration, no
  persistence, fed the same lines]. Ours is
  :func:`trusswork.logs.patterns` (a :class:`PatternMiner` plus the final
  template of every line). ``extra_info`` holds ``lines``, ``lines_per_s``,
  the ``grouping_accuracy`` averaged over the systems and
  ``grouping_accuracy_by_system``; the published reference for Drain is
  0.865. Quick mode mines the first 500 lines of each system.

Without the shared Loghub directory the group is skipped.

Log store groups: :class:`trusswork.logs.LogStore` (``background=False``,
default settings, a fixed clock) over a mixed corpus: seeded nginx combined
access lines (:func:`nginx_lines`: ~175 bytes, Zipf-skewed client IPs, ~40
path templates with ids, a 200/304/404/5xx status mix, user agents from a
list, increasing timestamps; 1 000 000 lines, quick 30 000) followed by the
Loghub ``*_2k.log`` samples (all 32 000 lines, quick the first 500 of each;
none without the shared directory). The issue asks for 10 M lines; 1 M is
what this machine's time budget allows (a full run of this file took 7.5
minutes, 2 ingest rounds per side of about a minute for ours), so the query
numbers are for 1 M lines. Quick mode takes about 25 s. Loghub lines span years of
timestamps, so the store holds one partition (and segment) per day they
touch: about 60 segments on the full corpus, 24 in quick mode.

- ``ingest-mixed``: ours parses (``format="combined"`` for nginx,
  ``"auto"`` for Loghub), logs to the write-ahead log (fsync per batch) and
  indexes every line: ``ingest`` in batches of 20 000 lines, then
  ``refresh()``, in a new directory per round [``tantivy``: tantivy-py with
  one indexing thread, given the documents *already parsed* by our parser
  (so it does less than ours: no parsing, no write-ahead log), each built
  as a ``Document`` and added, then ``commit``. Its schema has the same
  fields: the line as a text field with positions (not stored, as in the
  issue's reference measurement; ours stores the lines, compressed), every
  keyword field as a raw-tokenized fast text field, ``status`` and
  ``bytes`` as indexed fast u64, ``_time`` as an indexed fast i64].
  ``extra_info``: ``MB_per_s`` of raw text (the issue asks >= 50 MB/s),
  ours also ``index_only_MB_per_s`` (the time spent in ``refresh()``, i.e.
  building and writing segments from parsed lines), ``index_bytes`` /
  ``index_size_ratio`` against the raw bytes (ours: the segments; the issue
  asks <= 0.5) and ``directory_bytes`` (everything, the WAL included).
- ``query-rare-term`` (``sqlmap``: 1 line in 20 000), ``query-frequent-term``
  (``POST``: ~6 % of the nginx lines), ``query-phrase`` (``"DELETE
  /api/v1/orders"``), ``query-field-filter`` (``status=404``): ours runs
  ``<search> | stats count`` through ``LogStore.query``, the way a user
  counts matches [``tantivy``: ``parse_query`` on the ``line`` field (both
  tokenizers fold case, but split differently, so ``POST`` counts differ by
  a few Loghub lines) and ``searcher.search(query, limit=1,
  count=True).count``; ``grep``: ``grep -F -c`` over the raw file, frequent
  term only, for scale]. ``extra_info["hits"]`` holds the count.
- ``query-stats-by-status``: ``| stats count by status`` [``duckdb``:
  ``SELECT status, count(*) ... GROUP BY status`` over a zstd Parquet file
  of the same parsed rows (every field, the raw line included);
  ``tantivy``: a terms aggregation on its fast ``status`` field over all
  documents]. All sides must give the same counts.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import importlib
import itertools
import logging
import os
import random
import shutil
import subprocess
import time
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from trusswork.logs._patterns import grouping_accuracy, patterns

PATTERN_IMPLS = ["trusswork", "drain3"]

#: Number of systems in the Loghub 2k collection.
LOGHUB_SYSTEMS = 16


@dataclass(frozen=True)
class Loghub:
    systems: list[str]
    lines: list[list[str]]
    truth: list[list[str]]

    @property
    def total(self) -> int:
        return sum(len(lines) for lines in self.lines)


def _loghub_root() -> Path:
    override = os.environ.get("TRUSSWORK_SHARED_DIR")
    shared = Path(override) if override else Path(__file__).resolve().parents[2] / "shared"
    return shared / "loghub"


@pytest.fixture(scope="module")
def loghub(scaled: Callable[[int, int], int]) -> Loghub:
    root = _loghub_root()
    if not root.is_dir():
        pytest.skip(f"shared Loghub samples not found at {root}")
    per_system = scaled(2_000, 500)
    systems: list[str] = []
    lines: list[list[str]] = []
    truth: list[list[str]] = []
    for entry in sorted(root.iterdir()):
        path = entry / f"{entry.name}_2k.log_structured.csv"
        if not path.is_file():
            continue
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))[:per_system]
        systems.append(entry.name)
        lines.append([row["Content"] for row in rows])
        truth.append([row["EventId"] for row in rows])
    assert len(systems) == LOGHUB_SYSTEMS, f"expected 16 Loghub systems in {root}, got {systems}"
    return Loghub(systems, lines, truth)


def _drain3_miner(bench: Any) -> Callable[[list[str]], list[Hashable]]:
    try:  # drain3 ships no type information: imported as modules of type Any
        drain3 = importlib.import_module("drain3")
        drain3_config = importlib.import_module("drain3.template_miner_config")
    except ImportError as exc:
        bench.missing("patterns-loghub", "drain3", f"cannot import drain3: {exc}")
    logging.getLogger("drain3").setLevel(logging.WARNING)

    def mine(lines: list[str]) -> list[Hashable]:
        # An explicit default config: TemplateMiner() alone would read a drain3.ini in the cwd.
        miner = drain3.TemplateMiner(config=drain3_config.TemplateMinerConfig())
        return [miner.add_log_message(line)["cluster_id"] for line in lines]

    return mine


@pytest.mark.parametrize("impl", PATTERN_IMPLS)
def test_patterns_loghub(bench: Any, loghub: Loghub, impl: str) -> None:
    group = "patterns-loghub"
    mine: Callable[[list[str]], list[Hashable]]
    if impl == "trusswork":

        def ours(lines: list[str]) -> list[Hashable]:
            return list(patterns(lines))

        mine = ours
    else:
        mine = _drain3_miner(bench)

    def run() -> list[list[Hashable]]:
        return [mine(lines) for lines in loghub.lines]

    groups = run()
    by_system = {
        system: round(grouping_accuracy(predicted, truth), 4)
        for system, predicted, truth in zip(loghub.systems, groups, loghub.truth, strict=True)
    }
    average = sum(by_system.values()) / len(by_system)
    result = bench(
        group,
        impl,
        run,
        lines=loghub.total,
        grouping_accuracy=round(average, 4),
        grouping_accuracy_by_system=by_system,
    )
    bench.record_rate(loghub.total, "lines_per_s")
    assert [len(g) for g in result] == [len(lines) for lines in loghub.lines]


# ---------------------------------------------------------------- log store: corpus

#: nginx lines of the log store groups (full, quick), and the lines of each Loghub
#: 2k sample that come on top (all 16 samples, concatenated).
STORE_LINES = (1_000_000, 30_000)
LOGHUB_PER_SYSTEM = (2_000, 500)
#: Lines per ``LogStore.ingest`` call, as a file tailer would hand them over.
INGEST_BATCH = 20_000
#: Every this many nginx lines one request comes from the rare user agent.
RARE_EVERY = 20_000
RARE_AGENT = "sqlmap/1.7.2#stable (https://sqlmap.org)"
RARE_TERM = "sqlmap"
FREQUENT_TERM = "POST"
PHRASE = "DELETE /api/v1/orders"
STATUS_FILTER = 404
#: The issue's goals: ingest rate in MB/s on one core, index size / raw size.
GOAL_MB_PER_S = 50.0
GOAL_SIZE_RATIO = 0.5
#: A fixed clock: lines without a timestamp (most Loghub samples) get this time.
INGEST_CLOCK = 1_765_000_000.0

_METHODS = ["GET"] * 80 + ["POST"] * 6 + ["HEAD"] * 6 + ["PUT"] * 4 + ["DELETE"] * 3 + ["OPTIONS"]
_STATUSES = [200] * 70 + [304] * 10 + [301, 302] * 2 + [404] * 8 + [400, 401, 403, 500, 502, 503]
_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
    "like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "curl/8.4.0",
    "Go-http-client/1.1",
    "python-requests/2.31.0",
    "Prometheus/2.48.0",
    "Googlebot/2.1 (+http://www.google.com/bot.html)",
]
_RESOURCES = [
    "users", "orders", "items", "carts", "invoices", "sessions", "products", "reviews",
    "payments", "shipments", "tickets", "accounts",
]  # fmt: skip
#: About 40 paths: one with an id per API resource, the collections, static files.
_PATHS = (
    [f"/api/v1/{r}/{{id}}" for r in _RESOURCES]
    + [f"/api/v1/{r}" for r in _RESOURCES]
    + [f"/static/{kind}/{{id}}.{kind}" for kind in ("js", "css", "png")]
    + ["/", "/login", "/logout", "/search", "/health", "/metrics", "/favicon.ico"]
    + ["/api/v2/graph/{id}/edges", "/api/v2/graph/{id}/nodes", "/download/{id}.tar.gz"]
)
_REFERERS = ["-", "-", "https://example.com/", "https://example.com/search", "https://google.com/"]


def nginx_lines(n: int, seed: int = 17) -> list[str]:
    """``n`` nginx combined access lines, seeded.

    Client IPs follow a Zipf-like skew over 20 000 addresses, paths come from
    about 40 templates with ids in them, some with a query string, statuses
    mostly 200 and 304, timestamps increase (about 20 lines a second). Every
    :data:`RARE_EVERY`-th line has the rare user agent.
    """
    rng = random.Random(seed)
    octet = rng.randrange
    ips = [f"{octet(1, 224)}.{octet(256)}.{octet(256)}.{octet(1, 255)}" for _ in range(20_000)]
    ip_weights = list(itertools.accumulate(1.0 / (k + 1) ** 1.1 for k in range(len(ips))))
    client = rng.choices(ips, cum_weights=ip_weights, k=n)
    path_weights = list(itertools.accumulate(1.0 / (k + 1) ** 0.8 for k in range(len(_PATHS))))
    paths = rng.choices(_PATHS, cum_weights=path_weights, k=n)
    start = int(INGEST_CLOCK) - n // 20
    lines = []
    stamp_second, stamp = -1, ""
    for i in range(n):
        second = start + i // 20
        if second != stamp_second:
            stamp_second = second
            stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(second))
        path = paths[i].replace("{id}", str(rng.randrange(1, 200_000)))
        if rng.random() < 0.2:
            path += f"?page={rng.randrange(1, 40)}&sort={rng.choice(('asc', 'desc'))}"
        agent = RARE_AGENT if i % RARE_EVERY == RARE_EVERY // 2 else rng.choice(_AGENTS)
        lines.append(
            f'{client[i]} - - [{stamp}] "{rng.choice(_METHODS)} {path} HTTP/1.1" '
            f'{rng.choice(_STATUSES)} {rng.randrange(0, 80_000)} "{rng.choice(_REFERERS)}" '
            f'"{agent}"'
        )
    return lines


def loghub_raw_lines(per_system: int) -> list[str]:
    """The first ``per_system`` lines of each Loghub ``*_2k.log`` sample, or none without them."""
    root = _loghub_root()
    if not root.is_dir():
        return []
    lines: list[str] = []
    for path in sorted(root.glob("*/*_2k.log")):
        text = path.read_text(encoding="utf-8", errors="replace")
        lines.extend([line for line in text.splitlines() if line.strip()][:per_system])
    return lines


@dataclass(frozen=True)
class ParsedDoc:
    """One line as the store indexes it: ``_time``, the raw text, keyword and numeric fields."""

    time_ms: int
    raw: str
    keywords: dict[str, str]
    numbers: dict[str, float]


@dataclass(frozen=True)
class Corpus:
    nginx: list[str]
    loghub: list[str]
    docs: list[ParsedDoc]  # nginx then Loghub, parsed once like LogStore.ingest does
    raw_bytes: int  # UTF-8 bytes of every line with its newline

    @property
    def lines(self) -> int:
        return len(self.nginx) + len(self.loghub)


def _split(fields: dict[str, Any]) -> tuple[dict[str, str], dict[str, float]]:
    """A parsed record's fields as keyword texts and numbers, as the store indexes them.

    Strings are keywords; ints and floats are both (``status=404`` and
    ``status>=500`` both work in the store); other values become their text.
    """
    keywords: dict[str, str] = {}
    numbers: dict[str, float] = {}
    for name, value in fields.items():
        if value is None:
            continue
        if isinstance(value, int | float) and not isinstance(value, bool):
            keywords[name] = str(value)
            numbers[name] = float(value)
        else:
            keywords[name] = str(value)
    return keywords, numbers


def _parse(lines: list[str], format: str, source: str) -> list[ParsedDoc]:
    """The documents ``LogStore.ingest`` makes of ``lines``, parsed by the same parser."""
    from trusswork.logs import LogParser

    now_ms = int(INGEST_CLOCK * 1000)
    docs = []
    for record in LogParser(format).parse_lines(lines).records:
        keywords, numbers = _split(record.fields)
        keywords["source"] = source
        keywords["sourcetype"] = record.format
        stamp = record.timestamp_ms if record.timestamp_ms is not None else now_ms
        docs.append(ParsedDoc(stamp, record.raw, keywords, numbers))
    return docs


@pytest.fixture(scope="module")
def corpus(scaled: Callable[[int, int], int]) -> Corpus:
    nginx = nginx_lines(scaled(*STORE_LINES))
    loghub = loghub_raw_lines(scaled(*LOGHUB_PER_SYSTEM))
    docs = _parse(nginx, "combined", "access.log") + _parse(loghub, "auto", "loghub")
    assert len(docs) == len(nginx) + len(loghub)
    raw_bytes = sum(len(line.encode()) + 1 for line in itertools.chain(nginx, loghub))
    return Corpus(nginx, loghub, docs, raw_bytes)


def _ingest_store(path: Path, corpus: Corpus, refresh_seconds: list[float] | None = None) -> Any:
    """A new LogStore at ``path`` holding the corpus, indexed (refreshed); left open.

    ``refresh_seconds`` gets the time spent in ``refresh()``: indexing the
    buffered lines, whether ``ingest`` calls it (every ``max_buffer_lines``
    lines) or the final call here does.
    """
    from trusswork.logs import LogStore

    spent = [0.0]

    class TimedStore(LogStore):
        def refresh(self) -> int:
            started = time.perf_counter()
            try:
                return super().refresh()
            finally:
                spent[0] += time.perf_counter() - started

    store = TimedStore(path, background=False, clock=lambda: INGEST_CLOCK)
    try:
        for at in range(0, len(corpus.nginx), INGEST_BATCH):
            batch = corpus.nginx[at : at + INGEST_BATCH]
            store.ingest(batch, format="combined", source="access.log")
        for at in range(0, len(corpus.loghub), INGEST_BATCH):
            store.ingest(corpus.loghub[at : at + INGEST_BATCH], format="auto", source="loghub")
        store.refresh()
    except BaseException:
        with contextlib.suppress(Exception):  # keep the first error; release the lock
            store.close()
        raise
    if refresh_seconds is not None:
        refresh_seconds.append(spent[0])
    return store


def _dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


# ---------------------------------------------------------------- log store: tantivy

#: Fields tantivy holds as u64 (indexed, fast); every other keyword field of the corpus
#: is a text field with the raw tokenizer, fast, so it can be grouped by like ours.
_NUMERIC_FIELDS = ("status", "bytes")


def _tantivy(bench: Any, group: str) -> Any:
    try:
        import tantivy
    except ImportError as exc:
        bench.missing(group, "tantivy", f"cannot import tantivy: {exc}")
    return tantivy


def _tantivy_schema(tantivy: Any, corpus: Corpus) -> Any:
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("line", stored=False, tokenizer_name="default", index_option="position")
    keywords = sorted({name for doc in corpus.docs for name in doc.keywords})
    for name in keywords:
        if name not in _NUMERIC_FIELDS:
            builder.add_text_field(name, stored=False, fast=True, tokenizer_name="raw")
    for name in _NUMERIC_FIELDS:
        builder.add_unsigned_field(name, indexed=True, fast=True)
    builder.add_integer_field("time", indexed=True, fast=True)
    return builder.build()


def _tantivy_index(tantivy: Any, path: Path, corpus: Corpus) -> Any:
    """Index the pre-parsed documents into a new tantivy index at ``path`` (one thread)."""
    schema = _tantivy_schema(tantivy, corpus)
    path.mkdir(parents=True, exist_ok=True)
    index = tantivy.Index(schema, path=str(path))
    writer = index.writer(heap_size=256_000_000, num_threads=1)
    for doc in corpus.docs:
        fields: dict[str, Any] = {"line": doc.raw, "time": doc.time_ms}
        for name, value in doc.keywords.items():
            if name in _NUMERIC_FIELDS:
                fields[name] = int(doc.numbers[name])
            else:
                fields[name] = value
        writer.add_document(tantivy.Document.from_dict(fields, schema))
    writer.commit()
    writer.wait_merging_threads()
    index.reload()
    return index


# ---------------------------------------------------------------- log store: ingest

INGEST_IMPLS = ["trusswork", "tantivy"]
INGEST_ROUNDS = (2, 3)  # (full, quick): each round indexes the whole corpus afresh


@pytest.mark.parametrize("impl", INGEST_IMPLS)
def test_ingest_mixed(
    benchmark: Any,
    bench: Any,
    corpus: Corpus,
    tmp_path: Path,
    scaled: Callable[[int, int], int],
    impl: str,
) -> None:
    group = "ingest-mixed"
    fresh = (tmp_path / f"round-{n}" for n in itertools.count())
    refresh_seconds: list[float] = []
    if impl == "trusswork":

        def ours(path: Path) -> int:
            store = _ingest_store(path, corpus, refresh_seconds)
            lines = int(store.stats()["lines"])
            store.close()
            return lines

        target: Callable[[Path], int] = ours
    else:
        tantivy = _tantivy(bench, group)

        def theirs(path: Path) -> int:
            return int(_tantivy_index(tantivy, path, corpus).searcher().num_docs)

        target = theirs
    paths: list[Path] = []

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        for old in paths:
            shutil.rmtree(old, ignore_errors=True)
        paths[:] = [next(fresh)]
        return (paths[0],), {}

    benchmark.group = group
    benchmark.extra_info.update(impl=impl, lines=corpus.lines, raw_bytes=corpus.raw_bytes)
    indexed = benchmark.pedantic(
        target, setup=setup, rounds=scaled(*INGEST_ROUNDS), warmup_rounds=0, iterations=1
    )
    bench.record_rate(corpus.raw_bytes, "MB_per_s", unit=1e6)
    assert indexed == corpus.lines  # every line indexed
    last = paths[0]
    if impl == "trusswork":
        from trusswork.logs import LogStore

        with LogStore(last, background=False) as store:
            stats = store.stats()
        index_bytes = int(stats["bytes"])
        benchmark.extra_info["segments"] = stats["segments"]
        benchmark.extra_info["partitions"] = stats["partitions"]
        benchmark.extra_info["index_only_MB_per_s"] = round(
            corpus.raw_bytes / min(refresh_seconds) / 1e6, 1
        )
    else:
        index_bytes = _dir_bytes(last)
    benchmark.extra_info["index_bytes"] = index_bytes
    benchmark.extra_info["index_size_ratio"] = round(index_bytes / corpus.raw_bytes, 3)
    benchmark.extra_info["directory_bytes"] = _dir_bytes(last)


# ---------------------------------------------------------------- log store: queries


@dataclass(frozen=True)
class Indexed:
    """The corpus indexed once by every side, for the query groups."""

    store: Any  # an open LogStore
    tantivy: Any  # a tantivy Index, or None when tantivy is not installed
    parquet: Path
    raw_file: Path
    lines: int
    rare_hits: int  # lines with the rare term
    status_counts: dict[int, int]  # the answer of `stats count by status`


@pytest.fixture(scope="module")
def indexed(corpus: Corpus, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Indexed]:
    root = tmp_path_factory.mktemp("logs-indexed")
    store = _ingest_store(root / "store", corpus)
    try:
        import tantivy
    except ImportError:
        index = None
    else:
        index = _tantivy_index(tantivy, root / "tantivy", corpus)
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = sorted({name for doc in corpus.docs for name in doc.keywords})
    columns: dict[str, Any] = {
        "_time": pa.array([doc.time_ms for doc in corpus.docs], pa.int64()),
        "_raw": pa.array([doc.raw for doc in corpus.docs], pa.string()),
    }
    for name in names:
        if name in _NUMERIC_FIELDS:
            values = [doc.numbers.get(name) for doc in corpus.docs]
            columns[name] = pa.array([None if v is None else int(v) for v in values], pa.int64())
        else:
            columns[name] = pa.array([doc.keywords.get(name) for doc in corpus.docs], pa.string())
    parquet = root / "logs.parquet"
    pq.write_table(pa.table(columns), parquet, compression="zstd")
    raw_file = root / "access.log"
    raw_file.write_text("".join(f"{line}\n" for line in corpus.nginx + corpus.loghub))
    status_counts = collections.Counter(
        int(doc.numbers["status"]) for doc in corpus.docs if "status" in doc.numbers
    )
    rare_hits = sum(RARE_TERM in line for line in corpus.nginx + corpus.loghub)
    yield Indexed(store, index, parquet, raw_file, corpus.lines, rare_hits, dict(status_counts))
    store.close()


@dataclass(frozen=True)
class SearchCase:
    group: str
    ours: str  # our query, ending in `| stats count`
    tantivy: str  # tantivy query syntax, default field `line`


SEARCH_CASES = [
    SearchCase("query-rare-term", f"{RARE_TERM} | stats count", RARE_TERM),
    SearchCase("query-frequent-term", f"{FREQUENT_TERM} | stats count", FREQUENT_TERM),
    SearchCase("query-phrase", f'"{PHRASE}" | stats count', f'"{PHRASE}"'),
    SearchCase(
        "query-field-filter", f"status={STATUS_FILTER} | stats count", f"status:{STATUS_FILTER}"
    ),
]
SEARCH_IMPLS = ["trusswork", "tantivy", "grep"]


def _our_count(store: Any, query: str) -> int:
    rows = store.query(query).to_pylist()
    return int(rows[0]["count"]) if rows else 0


@pytest.mark.parametrize("impl", SEARCH_IMPLS)
@pytest.mark.parametrize("case", SEARCH_CASES, ids=lambda case: case.group)
def test_query_search(
    benchmark: Any, bench: Any, indexed: Indexed, case: SearchCase, impl: str
) -> None:
    if impl == "grep" and case.group != "query-frequent-term":
        pytest.skip("grep runs the frequent term only, for scale")
    count: Callable[[], int]
    if impl == "trusswork":

        def ours() -> int:
            return _our_count(indexed.store, case.ours)

        count = ours
    elif impl == "tantivy":
        if indexed.tantivy is None:
            bench.missing(case.group, impl, "cannot import tantivy")
        query = indexed.tantivy.parse_query(case.tantivy, ["line"])
        searcher = indexed.tantivy.searcher()

        def theirs() -> int:
            return int(searcher.search(query, limit=1, count=True).count)

        count = theirs
    else:
        grep = shutil.which("grep")
        if grep is None:
            bench.missing(case.group, impl, "no grep in PATH")
        assert grep is not None  # bench.missing skips the test
        command = [grep, "-F", "-c", FREQUENT_TERM, str(indexed.raw_file)]

        def scan() -> int:
            done = subprocess.run(command, capture_output=True, check=False, text=True)
            return int(done.stdout.strip() or 0)

        count = scan
    text = case.ours if impl == "trusswork" else case.tantivy
    hits = bench(case.group, impl, count, query=text, lines=indexed.lines)
    benchmark.extra_info["hits"] = hits
    if case.group == "query-rare-term":
        assert hits == indexed.rare_hits
    elif case.group == "query-field-filter":
        assert hits == indexed.status_counts[STATUS_FILTER]
    else:
        assert hits > 0


STATS_IMPLS = ["trusswork", "duckdb", "tantivy"]
STATS_QUERY = "| stats count by status"
DUCKDB_STATS = (
    "SELECT status, count(*) FROM read_parquet(?) WHERE status IS NOT NULL GROUP BY status"
)


@pytest.mark.parametrize("impl", STATS_IMPLS)
def test_query_stats_by_status(bench: Any, indexed: Indexed, impl: str) -> None:
    group = "query-stats-by-status"
    count: Callable[[], dict[int, int]]
    if impl == "trusswork":

        def ours() -> dict[int, int]:
            rows = indexed.store.query(STATS_QUERY).to_pylist()
            return {
                int(row["status"]): int(row["count"]) for row in rows if row["status"] is not None
            }

        count = ours
    elif impl == "duckdb":
        try:
            import duckdb
        except ImportError as exc:
            bench.missing(group, impl, f"cannot import duckdb: {exc}")
        con = duckdb.connect()
        parquet = str(indexed.parquet)

        def duck() -> dict[int, int]:
            return {int(s): int(n) for s, n in con.execute(DUCKDB_STATS, [parquet]).fetchall()}

        count = duck
    else:
        if indexed.tantivy is None:
            bench.missing(group, impl, "cannot import tantivy")
        import tantivy

        searcher = indexed.tantivy.searcher()
        everything = tantivy.Query.all_query()
        aggregation = {"by_status": {"terms": {"field": "status", "size": 1000}}}

        def theirs() -> dict[int, int]:
            result = searcher.aggregate(everything, aggregation)
            return {int(b["key"]): int(b["doc_count"]) for b in result["by_status"]["buckets"]}

        count = theirs
    answer = bench(group, impl, count, lines=indexed.lines)
    assert answer == indexed.status_counts
