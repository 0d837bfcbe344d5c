"""Demo section for the B+tree: a real crash mid-transaction stream, then damage detection.

Two checked experiments, under ``<out>/btree``:

1. Crash: a child process commits transactions with ``sync=True`` and prints
   each transaction's number once its commit returned; it is SIGKILLed
   mid-stream and the tree is reopened. A transaction puts a few keys (every
   fifth also a value big enough for overflow pages), deletes the keys of an
   older transaction, moves an amount between two of :data:`ACCOUNTS`
   account balances and records its own number under ``b"last"``. What
   transaction ``n`` does depends only on ``n`` and the tree before it, so
   the parent replays transactions 1..m into a dict, where m is the number
   the tree holds. m must be the last acknowledged transaction or the one
   after it (committed, killed before it printed), and the reopened tree
   must equal the replay exactly: no acknowledged transaction lost, no part
   of any other visible, the account total unchanged. ``check()`` must pass.
2. Damage: one byte in the middle of a leaf page of a copy of the file is
   flipped; ``check()`` must raise ``Corruption`` naming that page, a read
   of a key on it must raise too, and a key elsewhere must still read.

The child dies with this process (``PR_SET_PDEATHSIG``), stops by itself
after :data:`WRITER_MAX_SECONDS`, and is killed and reaped in a ``finally``:
the section never leaves a process behind.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from trusswork.cli._demo import DemoContext, Plot, SectionResult
from trusswork.cli._storage_demo import WRITER_START_TIMEOUT, _die_with_parent, _tail

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from trusswork.storage import BTreeStats, Transaction

#: Account balances that every transaction moves money between.
ACCOUNTS = 10
OPENING_BALANCE = 1_000
#: New keys per transaction.
KEYS_PER_TRANSACTION = 8
#: A transaction deletes the keys of the transaction this many before it.
KEEP_TRANSACTIONS = 10
#: Every this-many-th transaction also stores a value that needs overflow pages.
BIG_EVERY = 5
BIG_BYTES = 6_000
#: A crash writer that is somehow never killed stops by itself after this.
WRITER_MAX_SECONDS = 30.0
LAST = b"last"
#: Offsets from the on-disk format (the top of csrc/btree/btree.c).
META_TXN, META_ROOT, META_CRC = 16, 24, 124
PAGE_TYPE, PAGE_LINK = 4, 24
LEAF, BRANCH = 1, 2


def _account(number: int) -> bytes:
    return b"account:%02d" % number


def _txn_key(txn: int, index: int) -> bytes:
    return b"txn:%08d:%d" % (txn, index)


def _apply(txn: int, tx: Transaction | dict[bytes, bytes]) -> None:
    """Transaction ``txn``'s writes, into a tree's transaction or into the replay dict.

    Both sides see the same state before ``txn`` (the transfer reads two
    balances), so the same writes follow.
    """
    rng = random.Random(txn)
    for index in range(KEYS_PER_TRANSACTION):
        size = BIG_BYTES if index == 0 and txn % BIG_EVERY == 0 else rng.randrange(8, 400)
        tx[_txn_key(txn, index)] = (b"%d/%d;" % (txn, index) * (size // 4 + 1))[:size]
    if txn > KEEP_TRANSACTIONS:
        for index in range(KEYS_PER_TRANSACTION):
            del tx[_txn_key(txn - KEEP_TRANSACTIONS, index)]
    source, target = rng.sample(range(ACCOUNTS), 2)
    amount = rng.randrange(1, 100)
    tx[_account(source)] = b"%d" % (int(tx[_account(source)]) - amount)
    tx[_account(target)] = b"%d" % (int(tx[_account(target)]) + amount)
    tx[LAST] = b"%d" % txn


def _opening_state() -> dict[bytes, bytes]:
    state = {_account(number): b"%d" % OPENING_BALANCE for number in range(ACCOUNTS)}
    state[LAST] = b"0"
    return state


def _replay(transactions: int) -> dict[bytes, bytes]:
    """The tree's contents after transactions 1..``transactions``."""
    state = _opening_state()
    for txn in range(1, transactions + 1):
        _apply(txn, state)
    return state


# ---------------------------------------------------------------- crash


def btree_writer_main(path: str, parent: int) -> None:
    """The crash writer (runs in a child process): commit for ever, print each number.

    A number is printed only after its commit returned, that is, once the
    transaction is durable (``sync=True``); the parent kills this process.
    """
    _die_with_parent(parent)
    from trusswork.storage import BTree

    tree = BTree(path, sync=True)
    txn = int(tree[LAST])
    deadline = time.monotonic() + WRITER_MAX_SECONDS
    while time.monotonic() < deadline:
        txn += 1
        with tree.transaction() as tx:
            _apply(txn, tx)
        sys.stdout.write(f"{txn}\n")
        sys.stdout.flush()
    os._exit(3)  # not killed in time: the parent reports it


@dataclass(frozen=True)
class CrashOutcome:
    acknowledged: int
    found: int
    stats: BTreeStats
    ack_seconds: list[float]
    """When each acknowledgement arrived, seconds after the first."""
    killed_at: float
    """When the writer was killed, on the same scale."""


def _read_acks(stream: IO[bytes], acks: list[tuple[int, float]], first: threading.Event) -> None:
    """Collect transaction numbers, with their arrival times, until the child's stdout closes."""
    for line in stream:
        if not line.endswith(b"\n"):
            break  # cut off by the kill: not a whole acknowledgement
        acks.append((int(line), time.monotonic()))
        first.set()
    first.set()


def _run_writer(path: Path, run_seconds: float) -> tuple[list[tuple[int, float]], float]:
    """Run the writer, SIGKILL it after ``run_seconds`` of acks; the acks and the kill time."""
    command = [
        sys.executable,
        "-c",
        "import sys; from trusswork.cli._btree_demo import btree_writer_main; "
        "btree_writer_main(sys.argv[1], int(sys.argv[2]))",
        str(path),
        str(os.getpid()),
    ]
    acks: list[tuple[int, float]] = []
    first = threading.Event()
    errors = path.parent / f"{path.name}-writer.stderr"
    with open(errors, "wb") as stderr:
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr)
    try:
        assert child.stdout is not None
        reader = threading.Thread(target=_read_acks, args=(child.stdout, acks, first), daemon=True)
        reader.start()
        if not first.wait(WRITER_START_TIMEOUT) or not acks:
            raise RuntimeError(
                f"the B+tree crash writer acknowledged nothing within "
                f"{WRITER_START_TIMEOUT:.0f} s (exit status {child.poll()}); "
                f"its stderr: {_tail(errors)}"
            )
        time.sleep(run_seconds)
        if child.poll() is not None:
            raise RuntimeError(
                f"the B+tree crash writer exited by itself (status {child.returncode}) before "
                f"it was killed; its stderr: {_tail(errors)}"
            )
        child.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        child.wait(timeout=10)
        reader.join(timeout=10)  # the pipe may still hold acks sent just before the kill
        if reader.is_alive():
            raise RuntimeError("the B+tree crash writer's output did not end after it was killed")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()
    if child.returncode != -signal.SIGKILL:
        raise RuntimeError(
            f"the B+tree crash writer ended with status {child.returncode}, not SIGKILL"
        )
    errors.unlink()
    return acks, killed_at


def _crash(path: Path, run_seconds: float) -> CrashOutcome:
    """Kill a committing writer, reopen, and compare the tree with the replay."""
    from trusswork.storage import BTree

    with BTree(path, sync=True) as tree, tree.transaction() as tx:
        for key, value in _opening_state().items():
            tx[key] = value
    acks, killed_at = _run_writer(path, run_seconds)
    numbers = [number for number, _ in acks]
    if numbers != list(range(1, len(numbers) + 1)):
        raise AssertionError("the writer did not acknowledge transactions 1..n in order")
    acknowledged = numbers[-1]
    with BTree(path) as tree:
        found = int(tree[LAST])
        stored = dict(tree.items())
        stats = tree.check()
    if found < acknowledged:
        raise AssertionError(
            f"the tree holds transaction {found}, but {acknowledged} were acknowledged: "
            f"{acknowledged - found} lost in the crash"
        )
    if found > acknowledged + 1:
        raise AssertionError(
            f"the tree holds transaction {found}, more than one past the last acknowledged "
            f"({acknowledged})"
        )
    expected = _replay(found)
    if stored != expected:
        wrong = sum(
            1 for key in expected.keys() | stored.keys() if stored.get(key) != expected.get(key)
        )
        raise AssertionError(
            f"the reopened tree differs from transactions 1..{found} in {wrong} keys: "
            f"a partial transaction is visible"
        )
    total = sum(int(stored[_account(number)]) for number in range(ACCOUNTS))
    if total != ACCOUNTS * OPENING_BALANCE:
        raise AssertionError(f"the account balances add up to {total}")
    start = acks[0][1]
    return CrashOutcome(
        acknowledged=acknowledged,
        found=found,
        stats=stats,
        ack_seconds=[at - start for _, at in acks],
        killed_at=killed_at - start,
    )


# ---------------------------------------------------------------- damage


def _current_meta(data: bytes) -> tuple[int, int]:
    """(page size, root page) of the newest valid meta page (the format in csrc/btree)."""
    from trusswork.core.checksum import crc32c

    page_size = struct.unpack_from("<I", data, 12)[0]
    best: tuple[int, int] | None = None
    for number in (0, 1):
        meta = data[number * page_size : number * page_size + page_size]
        if crc32c(meta[:META_CRC]) != struct.unpack_from("<I", meta, META_CRC)[0]:
            continue
        txn, root = struct.unpack_from("<QQ", meta, META_TXN)
        if best is None or txn > best[0]:
            best = (txn, root)
    if best is None:
        raise AssertionError("neither meta page of the crashed tree is valid")
    return page_size, best[1]


def _leftmost_leaf(data: bytes) -> tuple[int, int]:
    """(page size, page number) of the leftmost leaf, found by following ``link`` down."""
    page_size, page = _current_meta(data)
    if page == 0:
        raise AssertionError("the crashed tree is empty")
    while data[page * page_size + PAGE_TYPE] == BRANCH:
        page = struct.unpack_from("<Q", data, page * page_size + PAGE_LINK)[0]
    if data[page * page_size + PAGE_TYPE] != LEAF:
        raise AssertionError(f"page {page} is neither a branch nor a leaf")
    return page_size, page


def _damage(source: Path, target: Path) -> list[tuple[str, str]]:
    """Flip a byte in the middle of a leaf of a copy; check() must name the page."""
    from trusswork.core.errors import Corruption
    from trusswork.storage import BTree

    shutil.copyfile(source, target)
    data = bytearray(target.read_bytes())
    page_size, leaf = _leftmost_leaf(bytes(data))
    data[leaf * page_size + page_size // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    where = f"page {leaf} (byte offset {leaf * page_size})"
    with BTree(target, create=False) as tree:
        try:
            tree.check()
        except Corruption as error:
            if where not in error.message:
                raise AssertionError(f"check() did not name {where}: {error.message}") from None
            what = error.message[error.message.index(where) + len(where) :].lstrip(": ")
        else:
            raise AssertionError(f"check() passed a tree with a flipped byte in {where}")
        first = _account(0)  # the smallest key: it lives in the leftmost leaf
        try:
            tree.get(first)
        except Corruption:
            pass
        else:
            raise AssertionError(f"reading {first!r} from the damaged leaf did not raise")
        rows = [
            (
                "damage found by check()",
                f"yes: page {leaf} (byte offset {leaf * page_size:,}): {what}",
            ),
            (f"reading {first.decode()} (on that leaf)", "refused (Corruption)"),
        ]
        if tree.stats().depth > 1:
            last = tree.last()  # in the rightmost leaf, which is intact
            if last is None or not last[0].startswith(b"txn:"):
                raise AssertionError(f"the largest key did not read back: {last!r}")
            rows.append(("reading the largest key (on another leaf)", "ok"))
    return rows


# ---------------------------------------------------------------- the section


def _acks_figure(crash: CrashOutcome) -> Figure:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 2.8), layout="constrained")
    ax = figure.subplots()
    ax.step(
        [1000 * t for t in crash.ack_seconds],
        range(1, len(crash.ack_seconds) + 1),
        where="post",
        color="#0969da",
        label="acknowledged (commit returned)",
    )
    ax.axvline(1000 * crash.killed_at, color="#cf222e", linestyle="--", label="SIGKILL")
    ax.axhline(crash.found, color="#1a7f37", linestyle=":", label="found on reopen")
    ax.set_xlabel("milliseconds since the first acknowledgement")
    ax.set_ylabel("transactions")
    ax.legend(loc="upper left", fontsize=8)
    return figure


def demo(ctx: DemoContext) -> SectionResult:
    """Crash a committing B+tree writer and damage a page; see the module docstring."""
    base = ctx.out_dir / "btree"
    if base.exists():
        shutil.rmtree(base)  # ours, from an earlier run into the same directory
    base.mkdir(parents=True)
    crashed = base / "crashed.btree"
    for _ in ctx.track(range(1), "btree: SIGKILL a committing writer, reopen"):
        crash = _crash(crashed, run_seconds=0.3 if ctx.quick else 1.0)
    stats = crash.stats
    rows = [
        ("transactions acknowledged by the SIGKILLed writer", f"{crash.acknowledged:,}"),
        ("transactions found on reopen", f"{crash.found:,}"),
        ("acknowledged transactions lost", "0"),
        ("partial transactions visible", "0"),
        (
            f"account total after {crash.found:,} transfers",
            f"{ACCOUNTS * OPENING_BALANCE:,} (unchanged)",
        ),
        (
            "check() after the crash",
            f"ok: {stats.keys:,} keys, depth {stats.depth}, {stats.pages:,} pages "
            f"({stats.leaf_pages} leaf, {stats.overflow_pages} overflow, {stats.free_pages} free)",
        ),
    ]
    rows += _damage(crashed, base / "damaged.btree")
    return SectionResult(
        rows=rows,
        plots=[Plot("B+tree transactions acknowledged before the SIGKILL", _acks_figure(crash))],
        notes=[
            f"Each transaction put {KEYS_PER_TRANSACTION} keys (every {BIG_EVERY}th also a "
            f"{BIG_BYTES:,} B value in overflow pages), deleted the keys of the transaction "
            f"{KEEP_TRANSACTIONS} before it, moved an amount between two of {ACCOUNTS} "
            "account balances and recorded its number; the writer printed the number once "
            "the commit (sync=True) returned.",
            "After the SIGKILL the reopened tree equalled a replay of transactions 1..n in "
            "every key, where n is the last acknowledged transaction or the one after it "
            "(committed, but killed before it could print).",
            f"The trees are in {base}: try 'trusswork storage btree-check {crashed}' and "
            f"'trusswork storage btree-check {base / 'damaged.btree'}'.",
        ],
    )
