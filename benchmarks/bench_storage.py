"""trusswork.storage's write-ahead log against what a user would write instead.

Groups (``impl`` names in brackets; ours is ``trusswork``):

- ``wal-group-16-threads``: 16 threads append 100-byte records, each durable
  before its call returns: :class:`~trusswork.storage.WriteAheadLog` with
  ``fsync="group"`` [``sqlite3``: the standard library's SQLite in WAL
  journal mode with ``synchronous=FULL``, one single-row ``INSERT``
  transaction per record, one connection per thread, ``busy_timeout`` so
  threads queue for the write lock instead of failing].
- ``wal-append-4KiB-nosync``: one thread appends 4 KiB records into the page
  cache, nothing synced: ``fsync="never"`` and a ``flush(sync=False)`` at the
  end [``python-file``: ``open(path, "ab").write`` per record and one
  ``flush``; ``sqlite3``: ``synchronous=OFF``, every blob inserted in one
  transaction]. ``extra_info`` holds the payload throughput in MB/s of the
  fastest round.
- ``wal-scan``: read back 100 000 records of 100 bytes: :func:`~trusswork.storage.read_log`
  [``sqlite3``: ``SELECT`` of every row in id order].

The two write groups time a fixed amount of work per round on a fresh log,
file or database in the test's temporary directory (on the repository's
filesystem), so they run in pytest-benchmark's pedantic mode: setup (open,
start the threads) and teardown (close, check every record is there, delete)
are not timed. ``bench`` from ``conftest.py`` has no pedantic path, so
:func:`_pedantic` labels the measurement the same way. Quick mode
(``TRUSSWORK_BENCH_QUICK=1``) runs fewer rounds and writes 16 MiB instead of
64 MiB per round of ``wal-append-4KiB-nosync``. ``wal-group-16-threads``
appends 16 x 500 records per round in both modes: SQLite's busy handler
sleeps (1 ms, growing to 100 ms) while another connection holds the write
lock, which adds a tail of a few hundred milliseconds to every round
whatever its size, so on 16 x 100 records the ratio came out about three
times higher (typical 15x) than on 16 x 500 (about 5x), flattering us.
"""

from __future__ import annotations

import shutil
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from trusswork.storage import WriteAheadLog, read_log

SEED = 20240601
THREADS = 16
GROUP_RECORDS = (500, 500)  # records per thread per round of wal-group-16-threads (full, quick)
GROUP_ROUNDS = (4, 3)
BULK_RECORDS = (16384, 4096)  # (full, quick) 4 KiB records per round: 64 MiB, 16 MiB
BULK_ROUNDS = (20, 10)
SCAN_RECORDS = 100_000

Setup = Callable[[], tuple[tuple[Any, ...], dict[str, Any]]]


def _pedantic(
    benchmark: Any,
    group: str,
    impl: str,
    target: Callable[..., Any],
    *,
    setup: Setup,
    teardown: Callable[..., None],
    rounds: int,
    **info: Any,
) -> None:
    """Measure ``target`` once per round after an untimed ``setup``, labelled like ``bench``."""
    benchmark.group = group
    benchmark.extra_info["impl"] = impl
    benchmark.extra_info.update(info)
    benchmark.pedantic(
        target, setup=setup, teardown=teardown, rounds=rounds, warmup_rounds=1, iterations=1
    )


def _fresh(root: Path) -> Iterator[Path]:
    """Paths ``root/round-0``, ``root/round-1``, ... that do not exist yet."""
    number = 0
    while True:
        yield root / f"round-{number}"
        number += 1


def _sqlite(path: Path, *, synchronous: str, wal: bool) -> sqlite3.Connection:
    """An autocommit connection (each statement outside BEGIN is a transaction of its own).

    ``timeout`` is SQLite's busy timeout: a writer that finds the database locked
    waits up to a minute for the lock instead of failing. Connections are
    opened and closed by the untimed setup and teardown in the main thread and
    used by one worker thread in between, never by two threads at once, hence
    ``check_same_thread=False``.
    """
    connection = sqlite3.connect(path, isolation_level=None, timeout=60.0, check_same_thread=False)
    if wal:
        connection.execute("PRAGMA journal_mode = WAL")
    connection.execute(f"PRAGMA synchronous = {synchronous}")
    return connection


def _sqlite_rows(path: Path) -> list[tuple[int, bytes]]:
    connection = sqlite3.connect(path)
    try:
        return connection.execute("SELECT id, payload FROM log ORDER BY id").fetchall()
    finally:
        connection.close()


# ---------------------------------------------------------------- group commit


def _group_payloads(per_thread: int) -> list[list[bytes]]:
    """100-byte records, distinct: thread and sequence number, then random filler."""
    filler = np.random.default_rng(SEED).bytes(100)
    return [
        [f"{thread:02d}:{number:06d}:".encode() + filler[:90] for number in range(per_thread)]
        for thread in range(THREADS)
    ]


class _Workers:
    """16 threads that wait at a gate, then each run ``work(records)`` on its own share."""

    def __init__(self, work: list[Callable[[], None]]) -> None:
        self.gate = threading.Event()
        self.errors: list[BaseException] = []
        self.threads = [threading.Thread(target=self._run, args=(job,)) for job in work]
        for thread in self.threads:
            thread.start()

    def _run(self, job: Callable[[], None]) -> None:
        self.gate.wait()
        try:
            job()
        except BaseException as exc:  # re-raised by the timed target
            self.errors.append(exc)

    def go(self) -> None:
        self.gate.set()
        for thread in self.threads:
            thread.join()
        if self.errors:
            raise self.errors[0]


@pytest.mark.parametrize("impl", ["trusswork", "sqlite3"])
def test_wal_group_16_threads(
    benchmark: Any, tmp_path: Path, scaled: Callable[[int, int], int], impl: str
) -> None:
    per_thread = scaled(*GROUP_RECORDS)
    payloads = _group_payloads(per_thread)
    expected = sorted(payload for share in payloads for payload in share)
    rounds = _fresh(tmp_path)

    def setup_ours() -> tuple[tuple[Any, ...], dict[str, Any]]:
        log = WriteAheadLog(next(rounds), fsync="group")

        def job(share: list[bytes]) -> Callable[[], None]:
            def append_all() -> None:
                for payload in share:
                    log.append(payload)

            return append_all

        return (_Workers([job(share) for share in payloads]), log), {}

    def teardown_ours(workers: _Workers, log: WriteAheadLog) -> None:
        durable = log.durable_lsn
        log.close()
        records = list(read_log(log.path))
        assert durable == len(expected), "an append returned before its record was synced"
        assert [lsn for lsn, _ in records] == list(range(1, len(expected) + 1))
        assert sorted(payload for _, payload in records) == expected
        shutil.rmtree(log.path)

    def setup_sqlite() -> tuple[tuple[Any, ...], dict[str, Any]]:
        path = next(rounds)
        path.mkdir()
        database = path / "log.sqlite"
        first = _sqlite(database, synchronous="FULL", wal=True)
        first.execute("CREATE TABLE log (id INTEGER PRIMARY KEY, payload BLOB NOT NULL)")
        connections = [first] + [
            _sqlite(database, synchronous="FULL", wal=True) for _ in range(THREADS - 1)
        ]

        def job(connection: sqlite3.Connection, share: list[bytes]) -> Callable[[], None]:
            def insert_all() -> None:
                for payload in share:
                    connection.execute("INSERT INTO log (payload) VALUES (?)", (payload,))

            return insert_all

        workers = _Workers([job(c, share) for c, share in zip(connections, payloads, strict=True)])
        return (workers, connections, database), {}

    def teardown_sqlite(
        workers: _Workers, connections: list[sqlite3.Connection], database: Path
    ) -> None:
        for connection in connections:
            connection.close()
        rows = _sqlite_rows(database)
        assert [row_id for row_id, _ in rows] == list(range(1, len(expected) + 1))
        assert sorted(payload for _, payload in rows) == expected
        shutil.rmtree(database.parent)

    def run(workers: _Workers, *_: Any) -> None:
        workers.go()

    ours = impl == "trusswork"
    _pedantic(
        benchmark,
        "wal-group-16-threads",
        impl,
        run,
        setup=setup_ours if ours else setup_sqlite,
        teardown=teardown_ours if ours else teardown_sqlite,
        rounds=scaled(*GROUP_ROUNDS),
        threads=THREADS,
        records=len(expected),
        record_bytes=100,
        variant='fsync="group"' if ours else "journal_mode=WAL, synchronous=FULL",
    )


# ---------------------------------------------------------------- 4 KiB, not synced


@pytest.fixture(scope="module")
def bulk_payloads(scaled: Callable[[int, int], int]) -> list[bytes]:
    data = np.random.default_rng(SEED).bytes(4096 * 64)
    return [data[(i % 64) * 4096 : (i % 64 + 1) * 4096] for i in range(scaled(*BULK_RECORDS))]


@pytest.mark.parametrize("impl", ["trusswork", "python-file", "sqlite3"])
def test_wal_append_4kib_nosync(
    benchmark: Any,
    tmp_path: Path,
    scaled: Callable[[int, int], int],
    bulk_payloads: list[bytes],
    impl: str,
) -> None:
    rounds = _fresh(tmp_path)
    total = sum(len(payload) for payload in bulk_payloads)

    def setup_ours() -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (WriteAheadLog(next(rounds), fsync="never"),), {}

    def append_ours(log: WriteAheadLog) -> None:
        append = log.append
        for payload in bulk_payloads:
            append(payload)
        log.flush(sync=False)

    def teardown_ours(log: WriteAheadLog) -> None:
        log.close()
        records = list(read_log(log.path))
        assert [lsn for lsn, _ in records] == list(range(1, len(bulk_payloads) + 1))
        assert [payload for _, payload in records] == bulk_payloads
        shutil.rmtree(log.path)

    def setup_file() -> tuple[tuple[Any, ...], dict[str, Any]]:
        path = next(rounds)
        path.mkdir()
        return (open(path / "log.bin", "ab"),), {}

    def append_file(file: Any) -> None:
        write = file.write
        for payload in bulk_payloads:
            write(payload)
        file.flush()

    def teardown_file(file: Any) -> None:
        file.close()
        path = Path(file.name)
        assert path.read_bytes() == b"".join(bulk_payloads)
        shutil.rmtree(path.parent)

    def setup_sqlite() -> tuple[tuple[Any, ...], dict[str, Any]]:
        path = next(rounds)
        path.mkdir()
        connection = _sqlite(path / "log.sqlite", synchronous="OFF", wal=False)
        connection.execute("CREATE TABLE log (id INTEGER PRIMARY KEY, payload BLOB NOT NULL)")
        return (connection, path / "log.sqlite"), {}

    def append_sqlite(connection: sqlite3.Connection, database: Path) -> None:
        connection.execute("BEGIN")
        connection.executemany(
            "INSERT INTO log (payload) VALUES (?)", ((payload,) for payload in bulk_payloads)
        )
        connection.execute("COMMIT")

    def teardown_sqlite(connection: sqlite3.Connection, database: Path) -> None:
        connection.close()
        rows = _sqlite_rows(database)
        assert [payload for _, payload in rows] == bulk_payloads
        shutil.rmtree(database.parent)

    variants = {
        "trusswork": (setup_ours, append_ours, teardown_ours, 'fsync="never", flush(sync=False)'),
        "python-file": (setup_file, append_file, teardown_file, 'open("ab").write + flush'),
        "sqlite3": (setup_sqlite, append_sqlite, teardown_sqlite, "synchronous=OFF, 1 txn"),
    }
    setup, target, teardown, variant = variants[impl]
    _pedantic(
        benchmark,
        "wal-append-4KiB-nosync",
        impl,
        target,
        setup=setup,
        teardown=teardown,
        rounds=scaled(*BULK_ROUNDS),
        records=len(bulk_payloads),
        record_bytes=4096,
        variant=variant,
    )
    fastest = benchmark.stats.stats.min
    benchmark.extra_info["MB/s"] = round(total / fastest / 1e6, 1)


# ---------------------------------------------------------------- scan


@pytest.fixture(scope="module")
def scan_records() -> list[tuple[int, bytes]]:
    rng = np.random.default_rng(SEED)
    data = rng.bytes(100 * 1024)
    return [
        (lsn, data[(lsn % 1024) * 100 : (lsn % 1024 + 1) * 100])
        for lsn in range(1, 1 + SCAN_RECORDS)
    ]


@pytest.fixture(scope="module")
def scan_sources(
    tmp_path_factory: pytest.TempPathFactory, scan_records: list[tuple[int, bytes]]
) -> tuple[Path, Path]:
    """The same records as a closed write-ahead log and as a SQLite table."""
    root = tmp_path_factory.mktemp("wal-scan")
    payloads = [payload for _, payload in scan_records]
    with WriteAheadLog(root / "log", fsync="never") as log:
        log.append_many(payloads)
    connection = _sqlite(root / "log.sqlite", synchronous="OFF", wal=False)
    connection.execute("CREATE TABLE log (id INTEGER PRIMARY KEY, payload BLOB NOT NULL)")
    connection.execute("BEGIN")
    connection.executemany("INSERT INTO log (payload) VALUES (?)", ((p,) for p in payloads))
    connection.execute("COMMIT")
    connection.close()
    return root / "log", root / "log.sqlite"


def _scan_ours(path: Path) -> list[tuple[int, bytes]]:
    return list(read_log(path))


@pytest.mark.parametrize("impl", ["trusswork", "sqlite3"])
def test_wal_scan(
    bench: Any,
    scan_sources: tuple[Path, Path],
    scan_records: list[tuple[int, bytes]],
    impl: str,
) -> None:
    log_path, database = scan_sources
    func, source = (_scan_ours, log_path) if impl == "trusswork" else (_sqlite_rows, database)
    assert func(source) == scan_records
    result = bench("wal-scan", impl, func, source, records=len(scan_records), record_bytes=100)
    assert result == scan_records
