"""trusswork.storage's write-ahead log and B+tree against what a user would write instead.

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
- ``btree-get-random``: 100 000 point gets of existing keys in random order:
  ``BTree.get`` [``lmdb``: ``txn.get`` in one read transaction; ``sqlite3``:
  ``SELECT v FROM kv WHERE k = ?`` and ``fetchone``].
- ``btree-put-batched``: 100 000 never-seen random keys (50 000 in quick
  mode) inserted in committed transactions of 1 000, nothing synced:
  ``BTree(sync=False)``, ``tx.put`` in ``tree.transaction()`` [``lmdb``:
  ``sync=False, metasync=False``, ``txn.put`` in a write transaction;
  ``sqlite3``: ``journal_mode=WAL``, ``synchronous=OFF``, ``executemany`` of
  ``INSERT`` between ``BEGIN`` and ``COMMIT``]. All three leave each commit in
  the page cache: it survives the process but not the machine.
- ``btree-put-batched-sync``: the same with every commit durable on return,
  20 000 keys per round (10 000 in quick mode): ``sync=True`` [``lmdb``:
  ``sync=True, metasync=True``; ``sqlite3``: ``synchronous=FULL``].
- ``btree-scan-10k``: 100 range scans of 10 000 consecutive keys, each from a
  random existing key: ``islice(tree.items(start), 10_000)`` [``lmdb``:
  ``cursor.set_range(start)`` then ``islice(cursor.iternext(), 10_000)``;
  ``sqlite3``: ``SELECT k, v FROM kv WHERE k >= ? ORDER BY k LIMIT 10000``].

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

The B+tree groups store 16-byte random keys with 100-byte values. Every
engine starts from the same 1 000 000 keys (200 000 in quick mode), loaded in
key order in one transaction by its bulk path (``BTree.bulk_load``, LMDB's
``putmulti(append=True)``, one ``executemany`` into ``CREATE TABLE kv (k BLOB
PRIMARY KEY, v BLOB) WITHOUT ROWID``) once per module and not timed: one store
per engine serves the get and scan groups, another (closed, reopened with each
group's durability) takes the inserts of both put groups, which rounds time in
pedantic mode with the next share of fresh keys prepared by the untimed setup.
Each engine may cache 512 MiB of pages, more than any store here grows to: our
``cache_bytes`` and SQLite's ``cache_size``; LMDB reads through its memory map
and the page cache. Quick mode's smaller tree fits the CPU caches better, so
its ratios are not the full run's. ``extra_info["keys/s"]`` is the rate of the
fastest round (gets, puts, or keys scanned).
"""

from __future__ import annotations

import shutil
import sqlite3
import threading
from collections.abc import Callable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

import lmdb
import numpy as np
import pytest

from trusswork.storage import BTree, WriteAheadLog, read_log

SEED = 20240601
THREADS = 16
GROUP_RECORDS = (500, 500)  # records per thread per round of wal-group-16-threads (full, quick)
GROUP_ROUNDS = (6, 6)
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


# ---------------------------------------------------------------- B+tree

BTREE_KEYS = (1_000_000, 200_000)  # keys preloaded into every store (full, quick)
BTREE_GETS = 100_000  # random point gets per round of btree-get-random
BTREE_PUTS = (100_000, 50_000)  # new keys per round of btree-put-batched (full, quick)
BTREE_SYNC_PUTS = (20_000, 10_000)  # new keys per round of btree-put-batched-sync
BTREE_BATCH = 1_000  # puts per transaction
BTREE_PUT_ROUNDS = (5, 3)  # timed rounds of both put groups (full, quick), after one warmup
BTREE_SCANS = 100  # range scans per round of btree-scan-10k
BTREE_SCAN_LENGTH = 10_000
KEY_BYTES = 16
VALUE_BYTES = 100
#: Memory each engine may keep pages in: our buffer pool and SQLite's page cache
#: (LMDB reads through its memory map); larger than any store here gets.
CACHE_BYTES = 512 << 20
LMDB_MAP_SIZE = 8 << 30  # address space only; the file grows as pages are used
BTREE_IMPLS = ["trusswork", "lmdb", "sqlite3"]

Batches = list[list[tuple[bytes, bytes]]]


def _btree_values() -> list[bytes]:
    data = np.random.default_rng(SEED + 1).bytes(VALUE_BYTES * 1024)
    return [data[i * VALUE_BYTES : (i + 1) * VALUE_BYTES] for i in range(1024)]


BTREE_VALUES = _btree_values()


def _value_for(key: bytes) -> bytes:
    """The 100-byte value stored under ``key``: one of 1024, picked by its last bytes."""
    return BTREE_VALUES[int.from_bytes(key[-2:], "big") & 1023]


def _split_keys(blob: bytes) -> list[bytes]:
    return [blob[i : i + KEY_BYTES] for i in range(0, len(blob), KEY_BYTES)]


class _KeySet:
    """The keys of the B+tree groups: preloaded, queried, scanned from, inserted.

    One seeded draw of distinct random 16-byte keys: the first ``loaded`` of them
    go into every store (in key order, as the bulk loaders need), the rest are
    never-seen keys that the put groups insert in drawn order.
    """

    def __init__(self, loaded: int, fresh: int) -> None:
        rng = np.random.default_rng(SEED)
        # Two big-endian words per key: numeric order is the engines' byte order.
        words = np.frombuffer(rng.bytes(KEY_BYTES * (loaded + fresh)), dtype=">u8")
        words = words.reshape(-1, 2)
        order = np.lexsort((words[:, 1], words[:, 0]))
        ordered = words[order]
        assert not np.all(ordered[1:] == ordered[:-1], axis=1).any(), "a key was drawn twice"
        preload = words[:loaded][np.lexsort((words[:loaded, 1], words[:loaded, 0]))]
        self.loaded = _split_keys(preload.tobytes())
        self.fresh = _split_keys(words[loaded:].tobytes())
        self.gets = [self.loaded[i] for i in rng.permutation(loaded)[:BTREE_GETS]]
        self.scan_at = rng.integers(0, loaded - BTREE_SCAN_LENGTH, size=BTREE_SCANS).tolist()
        self.scan_starts = [self.loaded[i] for i in self.scan_at]

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        return ((key, _value_for(key)) for key in self.loaded)

    def batches(self, start: int, count: int) -> Batches:
        """``count`` fresh keys from position ``start``, with values, in transactions of 1,000."""
        keys = self.fresh[start : start + count]
        assert len(keys) == count, "not enough fresh keys drawn for the put rounds"
        return [
            [(key, _value_for(key)) for key in keys[i : i + BTREE_BATCH]]
            for i in range(0, count, BTREE_BATCH)
        ]


class _Store(Protocol):
    """One engine's store of 16-byte keys, and the loops a round of each group times.

    The loops bind methods to locals and keep nothing they read, so the
    engines' own costs (and the Python call into them) are what is measured;
    ``read``, ``scan_keys`` and ``count`` check the results outside the timing.
    """

    impl: str
    variant: str

    def load(self, items: Iterator[tuple[bytes, bytes]]) -> None: ...
    def get_all(self, keys: list[bytes]) -> None: ...
    def scan_all(self, starts: list[bytes], length: int) -> None: ...
    def put_batches(self, batches: Batches) -> None: ...
    def read(self, key: bytes) -> bytes | None: ...
    def scan_keys(self, start: bytes, length: int) -> list[bytes]: ...
    def count(self) -> int: ...
    def close(self) -> None: ...


class _OurStore:
    impl = "trusswork"

    def __init__(self, root: Path, *, sync: bool) -> None:
        self.tree = BTree(root / "tree.btree", cache_bytes=CACHE_BYTES, sync=sync)
        self.variant = f"BTree(cache_bytes={CACHE_BYTES >> 20} MiB, sync={sync})"

    def load(self, items: Iterator[tuple[bytes, bytes]]) -> None:
        self.tree.bulk_load(items)

    def get_all(self, keys: list[bytes]) -> None:
        get = self.tree.get
        for key in keys:
            get(key)

    def scan_all(self, starts: list[bytes], length: int) -> None:
        items = self.tree.items
        for start in starts:
            for _ in islice(items(start), length):
                pass

    def put_batches(self, batches: Batches) -> None:
        transaction = self.tree.transaction
        for batch in batches:
            with transaction() as tx:
                put = tx.put
                for key, value in batch:
                    put(key, value)

    def read(self, key: bytes) -> bytes | None:
        return self.tree.get(key)

    def scan_keys(self, start: bytes, length: int) -> list[bytes]:
        return [key for key, _ in islice(self.tree.items(start), length)]

    def count(self) -> int:
        return len(self.tree)

    def close(self) -> None:
        self.tree.close()


class _LmdbStore:
    impl = "lmdb"

    def __init__(self, root: Path, *, sync: bool) -> None:
        # sync=False leaves commits in the page cache, like our sync=False
        # (metasync=False too: with sync off LMDB would not sync the meta page either).
        self.env = lmdb.open(str(root / "lmdb"), map_size=LMDB_MAP_SIZE, sync=sync, metasync=sync)
        self.variant = f"lmdb.open(sync={sync}, metasync={sync})"

    def load(self, items: Iterator[tuple[bytes, bytes]]) -> None:
        with self.env.begin(write=True) as txn:
            txn.cursor().putmulti(items, append=True)

    def get_all(self, keys: list[bytes]) -> None:
        with self.env.begin() as txn:
            get = txn.get
            for key in keys:
                get(key)

    def scan_all(self, starts: list[bytes], length: int) -> None:
        with self.env.begin() as txn:
            cursor = txn.cursor()
            set_range, iternext = cursor.set_range, cursor.iternext
            for start in starts:
                set_range(start)
                for _ in islice(iternext(), length):
                    pass

    def put_batches(self, batches: Batches) -> None:
        begin = self.env.begin
        for batch in batches:
            with begin(write=True) as txn:
                put = txn.put
                for key, value in batch:
                    put(key, value)

    def read(self, key: bytes) -> bytes | None:
        with self.env.begin() as txn:
            value: bytes | None = txn.get(key)
            return value

    def scan_keys(self, start: bytes, length: int) -> list[bytes]:
        with self.env.begin() as txn:
            cursor = txn.cursor()
            cursor.set_range(start)
            return [bytes(key) for key in islice(cursor.iternext(values=False), length)]

    def count(self) -> int:
        entries: int = self.env.stat()["entries"]
        return entries

    def close(self) -> None:
        self.env.close()


class _SqliteStore:
    impl = "sqlite3"

    def __init__(self, root: Path, *, sync: bool) -> None:
        self.connection = _sqlite(
            root / "kv.sqlite", synchronous="FULL" if sync else "OFF", wal=True
        )
        self.connection.execute(f"PRAGMA cache_size = -{CACHE_BYTES >> 10}")  # in KiB
        self.connection.execute(
            "CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID"
        )
        self.variant = (
            f"WITHOUT ROWID, journal_mode=WAL, synchronous={'FULL' if sync else 'OFF'}, "
            f"cache_size={CACHE_BYTES >> 20} MiB"
        )

    def load(self, items: Iterator[tuple[bytes, bytes]]) -> None:
        self.connection.execute("BEGIN")
        self.connection.executemany("INSERT INTO kv VALUES (?, ?)", items)
        self.connection.execute("COMMIT")
        self.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def get_all(self, keys: list[bytes]) -> None:
        execute = self.connection.execute
        for key in keys:
            execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()

    def scan_all(self, starts: list[bytes], length: int) -> None:
        execute = self.connection.execute
        for start in starts:
            for _ in execute(
                "SELECT k, v FROM kv WHERE k >= ? ORDER BY k LIMIT ?", (start, length)
            ):
                pass

    def put_batches(self, batches: Batches) -> None:
        execute, executemany = self.connection.execute, self.connection.executemany
        for batch in batches:
            execute("BEGIN")
            executemany("INSERT INTO kv VALUES (?, ?)", batch)
            execute("COMMIT")

    def read(self, key: bytes) -> bytes | None:
        row = self.connection.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def scan_keys(self, start: bytes, length: int) -> list[bytes]:
        rows = self.connection.execute(
            "SELECT k FROM kv WHERE k >= ? ORDER BY k LIMIT ?", (start, length)
        )
        return [bytes(key) for (key,) in rows]

    def count(self) -> int:
        (rows,) = self.connection.execute("SELECT count(*) FROM kv").fetchone()
        return int(rows)

    def close(self) -> None:
        self.connection.close()


STORES: dict[str, Callable[..., _Store]] = {
    "trusswork": _OurStore,
    "lmdb": _LmdbStore,
    "sqlite3": _SqliteStore,
}


def _record_rate(benchmark: Any, keys: int) -> None:
    """Keys per second of the fastest round, like the MB/s of the WAL groups."""
    if benchmark.stats is not None:
        benchmark.extra_info["keys/s"] = round(keys / benchmark.stats.stats.min)


@pytest.fixture(scope="module")
def btree_keys(scaled: Callable[[int, int], int]) -> _KeySet:
    rounds = scaled(*BTREE_PUT_ROUNDS) + 1  # the warmup round inserts keys too
    per_round = scaled(*BTREE_PUTS) + scaled(*BTREE_SYNC_PUTS)
    return _KeySet(scaled(*BTREE_KEYS), rounds * per_round)


@pytest.fixture(scope="module")
def btree_loaded(
    tmp_path_factory: pytest.TempPathFactory, btree_keys: _KeySet
) -> Iterator[Callable[[str], _Store]]:
    """``loaded(impl)``: that engine's store of the preloaded keys, built on first use.

    The get and scan groups only read it, so one store per engine serves both.
    """
    stores: dict[str, _Store] = {}

    def loaded(impl: str) -> _Store:
        if impl not in stores:
            store = STORES[impl](tmp_path_factory.mktemp(f"btree-read-{impl}"), sync=False)
            store.load(btree_keys.items())
            assert store.count() == len(btree_keys.loaded)
            stores[impl] = store
        return stores[impl]

    yield loaded
    for store in stores.values():
        store.close()


@pytest.fixture(scope="module")
def btree_put_root(
    tmp_path_factory: pytest.TempPathFactory, btree_keys: _KeySet
) -> Callable[[str], Path]:
    """``root(impl)``: directory of that engine's closed store of the preloaded keys.

    Both put groups insert into it, each with its own durability setting and
    its own share of the fresh keys, so every engine's store grows alike.
    """
    roots: dict[str, Path] = {}

    def root(impl: str) -> Path:
        if impl not in roots:
            path = tmp_path_factory.mktemp(f"btree-write-{impl}")
            store = STORES[impl](path, sync=False)
            store.load(btree_keys.items())
            store.close()
            roots[impl] = path
        return roots[impl]

    return root


@pytest.mark.parametrize("impl", BTREE_IMPLS)
def test_btree_get_random(
    bench: Any,
    benchmark: Any,
    btree_keys: _KeySet,
    btree_loaded: Callable[[str], _Store],
    impl: str,
) -> None:
    store = btree_loaded(impl)
    for key in btree_keys.gets[:1000]:
        assert store.read(key) == _value_for(key)
    bench(
        "btree-get-random",
        impl,
        store.get_all,
        btree_keys.gets,
        keys=len(btree_keys.loaded),
        gets=len(btree_keys.gets),
        key_bytes=KEY_BYTES,
        value_bytes=VALUE_BYTES,
        variant=store.variant,
    )
    _record_rate(benchmark, len(btree_keys.gets))


@pytest.mark.parametrize("impl", BTREE_IMPLS)
def test_btree_scan_10k(
    bench: Any,
    benchmark: Any,
    btree_keys: _KeySet,
    btree_loaded: Callable[[str], _Store],
    impl: str,
) -> None:
    store = btree_loaded(impl)
    at = btree_keys.scan_at[0]
    expected = btree_keys.loaded[at : at + BTREE_SCAN_LENGTH]
    assert store.scan_keys(btree_keys.scan_starts[0], BTREE_SCAN_LENGTH) == expected
    bench(
        "btree-scan-10k",
        impl,
        store.scan_all,
        btree_keys.scan_starts,
        BTREE_SCAN_LENGTH,
        keys=len(btree_keys.loaded),
        scans=len(btree_keys.scan_starts),
        scan_length=BTREE_SCAN_LENGTH,
        variant=store.variant,
    )
    _record_rate(benchmark, len(btree_keys.scan_starts) * BTREE_SCAN_LENGTH)


def _put_rounds(
    benchmark: Any,
    group: str,
    impl: str,
    store: _Store,
    batches: Iterator[Batches],
    *,
    per_round: int,
    rounds: int,
) -> None:
    """Time ``store.put_batches`` on the next ``per_round`` fresh keys, round after round."""
    before = store.count()
    inserted = 0

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (next(batches),), {}

    def teardown(round_batches: Batches) -> None:
        nonlocal inserted
        inserted += per_round
        assert store.count() == before + inserted
        for batch in round_batches[:: max(1, len(round_batches) // 10)]:
            key, value = batch[-1]
            assert store.read(key) == value

    _pedantic(
        benchmark,
        group,
        impl,
        store.put_batches,
        setup=setup,
        teardown=teardown,
        rounds=rounds,
        keys=before,
        puts=per_round,
        batch=BTREE_BATCH,
        key_bytes=KEY_BYTES,
        value_bytes=VALUE_BYTES,
        variant=store.variant,
    )
    _record_rate(benchmark, per_round)


@pytest.mark.parametrize("impl", BTREE_IMPLS)
def test_btree_put_batched(
    benchmark: Any,
    scaled: Callable[[int, int], int],
    btree_keys: _KeySet,
    btree_put_root: Callable[[str], Path],
    impl: str,
) -> None:
    rounds, puts = scaled(*BTREE_PUT_ROUNDS), scaled(*BTREE_PUTS)
    batches = (btree_keys.batches(i * puts, puts) for i in range(rounds + 1))
    store = STORES[impl](btree_put_root(impl), sync=False)
    try:
        _put_rounds(
            benchmark,
            "btree-put-batched",
            impl,
            store,
            batches,
            per_round=puts,
            rounds=rounds,
        )
    finally:
        store.close()


@pytest.mark.parametrize("impl", BTREE_IMPLS)
def test_btree_put_batched_sync(
    benchmark: Any,
    scaled: Callable[[int, int], int],
    btree_keys: _KeySet,
    btree_put_root: Callable[[str], Path],
    impl: str,
) -> None:
    rounds, puts = scaled(*BTREE_PUT_ROUNDS), scaled(*BTREE_SYNC_PUTS)
    offset = (rounds + 1) * scaled(*BTREE_PUTS)  # after the keys of btree-put-batched
    batches = (btree_keys.batches(offset + i * puts, puts) for i in range(rounds + 1))
    store = STORES[impl](btree_put_root(impl), sync=True)
    try:
        _put_rounds(
            benchmark,
            "btree-put-batched-sync",
            impl,
            store,
            batches,
            per_round=puts,
            rounds=rounds,
        )
    finally:
        store.close()
