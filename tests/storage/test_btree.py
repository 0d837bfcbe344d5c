"""BTree: what a user of the mapping, its ranges, transactions and snapshots can rely on.

Crash consistency (SIGKILL and simulated power loss) is in test_btree_crash.py,
damaged files in test_btree_damage.py, and a model-based comparison with a
dict in test_btree_model.py. Here: the mapping protocol and its errors,
ranges and prefixes at their edges, overflow values and the reuse of the
pages they free, transactions (commit, abort, isolation, the writer lock),
iterators that keep their snapshot while writers commit, reopening, page
sizes, the one-process lock, a buffer pool far smaller than the tree, bulk
loading, and the statistics ``check`` reports.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import random
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from trusswork.core.errors import Conflict, Corruption, InvalidInput, NotFound, Unavailable
from trusswork.storage import BTree, BTreeStats, Transaction, check_btree

PAGE_SIZES = (512, 4096, 16384)


def key_for(i: int) -> bytes:
    """Keys that sort like their numbers."""
    return b"key-%08d" % i


def value_for(i: int, size: int | None = None) -> bytes:
    """A value that depends on ``i``: ``size`` bytes (by default 0 to 60)."""
    if size is None:
        size = i * 7 % 61
    return random.Random(i).randbytes(size)


def fill(tree: BTree, items: dict[bytes, bytes], *, batch: int = 1000) -> None:
    """Write ``items`` in transactions of ``batch`` keys (one commit per key is slow)."""
    pending = list(items.items())
    for first in range(0, len(pending), batch):
        with tree.transaction() as tx:
            for key, value in pending[first : first + batch]:
                tx[key] = value


def assert_accounts_for_every_page(stats: BTreeStats) -> None:
    """Meta, tree, overflow and free pages add up to the pages of the tree, nothing twice."""
    freelist_pages = getattr(stats, "freelist_pages", 0)
    used = 2 + stats.leaf_pages + stats.branch_pages + stats.overflow_pages
    assert used + stats.free_pages + freelist_pages == stats.pages, stats


def in_thread(function: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    """Start ``function`` in a thread; the dict gets its "result" or "error"."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = function()
        except BaseException as exc:  # handed to the test thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def finished(thread: threading.Thread, outcome: dict[str, Any]) -> Any:
    """Join a thread from :func:`in_thread` and return its result, re-raising its error."""
    thread.join(60)
    assert not thread.is_alive(), "the thread did not finish within 60 s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("result")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "tree.bt"


@pytest.fixture
def tree(path: Path) -> Iterator[BTree]:
    with BTree(path, sync=False) as opened:
        yield opened


@pytest.fixture
def small_tree(path: Path) -> Iterator[BTree]:
    """512-byte pages: a few hundred keys already make a tree three levels deep."""
    with BTree(path, page_size=512, sync=False) as opened:
        yield opened


# ---------------------------------------------------------------- the mapping protocol


def test_an_empty_tree_has_nothing(tree: BTree) -> None:
    assert len(tree) == 0
    assert list(tree) == []
    assert list(tree.items()) == [] and list(tree.items(reverse=True)) == []
    assert tree.first() is None and tree.last() is None
    assert tree.count() == 0
    assert tree.get(b"a") is None and tree.get(b"a", b"default") == b"default"
    assert b"a" not in tree
    with pytest.raises(KeyError):
        tree[b"a"]
    with pytest.raises(NotFound):
        tree[b"a"]
    with pytest.raises(KeyError):
        del tree[b"a"]
    assert tree.check().keys == 0


def test_put_get_replace_and_delete(tree: BTree) -> None:
    tree[b"a"] = b"1"
    assert tree[b"a"] == b"1" and b"a" in tree and len(tree) == 1
    tree[b"a"] = b"replaced"
    assert tree[b"a"] == b"replaced" and len(tree) == 1
    tree[b"b"] = b""  # an empty value is a value, not an absence
    assert tree[b"b"] == b"" and b"b" in tree and tree.get(b"b", b"default") == b""
    assert len(tree) == 2
    del tree[b"a"]
    assert b"a" not in tree and tree.get(b"a") is None and len(tree) == 1
    with pytest.raises(KeyError):
        del tree[b"a"]
    assert dict(tree.items()) == {b"b": b""}


def test_missing_key_error_names_the_key(tree: BTree) -> None:
    with pytest.raises(KeyError) as caught:
        tree[b"nowhere"]
    assert "nowhere" in str(caught.value)


def test_mutable_mapping_helpers_work(tree: BTree) -> None:
    tree.update({b"a": b"1", b"b": b"2"})
    tree.update([(b"c", b"3")])
    assert dict(tree) == {b"a": b"1", b"b": b"2", b"c": b"3"}
    assert tree.pop(b"b") == b"2" and tree.pop(b"b", None) is None
    assert tree.setdefault(b"a", b"x") == b"1" and tree.setdefault(b"d", b"4") == b"4"
    assert tree == {b"a": b"1", b"c": b"3", b"d": b"4"}
    assert sorted(tree.values()) == [b"1", b"3", b"4"]
    tree.clear()
    assert len(tree) == 0 and list(tree) == []


def test_keys_come_back_in_byte_order(small_tree: BTree) -> None:
    keys = [b"\x00", b"\x00\x00", b"\x7f", b"\x80", b"\xff", b"\xff\x00", b"a", b"a\x00"]
    keys += [b"ab", b"B", b"b", b"ba", b"\xfe\xff", b"\x01" * 64]
    keys += [b"n%d" % i for i in range(300)]  # numbers that do not sort numerically
    shuffled = list(keys)
    random.Random(1).shuffle(shuffled)
    for key in shuffled:
        small_tree[key] = key[::-1]
    assert list(small_tree) == sorted(keys)
    assert list(small_tree.keys(reverse=True)) == sorted(keys, reverse=True)
    assert list(small_tree.values()) == [key[::-1] for key in sorted(keys)]
    assert small_tree.first() == (b"\x00", b"\x00")
    assert small_tree.last() == (b"\xff\x00", b"\x00\xff")


def test_bytes_like_keys_and_values_are_stored_as_bytes(tree: BTree) -> None:
    value = bytearray(b"mutable")
    tree[bytearray(b"ba")] = value
    tree[memoryview(b"mv")] = memoryview(b"view")
    value[0:1] = b"M"  # changing the caller's buffer afterwards changes nothing stored
    assert tree[b"ba"] == b"mutable" and tree[memoryview(b"ba")] == b"mutable"
    assert tree[bytearray(b"mv")] == b"view"
    for key, stored in tree.items():
        assert type(key) is bytes and type(stored) is bytes
    assert all(type(key) is bytes for key in tree)
    assert tree.first() == (b"ba", b"mutable")
    assert type(tree.get(b"mv")) is bytes
    assert list(tree.items(bytearray(b"b"), memoryview(b"c"))) == [(b"ba", b"mutable")]
    assert bytearray(b"mv") in tree
    del tree[bytearray(b"mv")]
    assert b"mv" not in tree


@pytest.mark.parametrize("bad", ["text", 7, None, 1.5, [1, 2], object()])
def test_keys_and_values_that_are_not_bytes_raise_type_error(tree: BTree, bad: object) -> None:
    tree[b"present"] = b"value"
    with pytest.raises(TypeError):
        tree[bad] = b"value"  # type: ignore[index]
    if bad is not None:  # see the test below
        with pytest.raises(TypeError):
            tree[b"key"] = bad  # type: ignore[assignment]
    with pytest.raises(TypeError):
        tree[bad]  # type: ignore[index]
    with pytest.raises(TypeError):
        del tree[bad]  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        tree.get(bad)  # type: ignore[arg-type]
    with tree.transaction() as tx:
        with pytest.raises(TypeError):
            tx[bad] = b"value"  # type: ignore[index]
        with pytest.raises(TypeError):
            tx[b"key"] = bad  # type: ignore[assignment]
    assert dict(tree) == {b"present": b"value"}, "a refused write changed the tree"


@pytest.mark.parametrize(
    "bad",
    [
        "text",
        7,
        1.5,
        [1, 2],
        object(),
    ],
)
def test_range_bounds_that_are_not_bytes_raise_type_error(tree: BTree, bad: object) -> None:
    tree[b"present"] = b"value"
    for use in (
        lambda: list(tree.items(bad)),  # type: ignore[arg-type]
        lambda: list(tree.items(None, bad, reverse=True)),  # type: ignore[arg-type]
        lambda: list(tree.keys(bad)),  # type: ignore[arg-type]
        lambda: tree.count(bad),  # type: ignore[arg-type]
        lambda: list(tree.prefix(bad)),  # type: ignore[arg-type]
    ):
        with pytest.raises(TypeError):
            use()


def test_assigning_none_raises_type_error_and_keeps_the_key(tree: BTree) -> None:
    tree[b"present"] = b"value"
    with contextlib.suppress(TypeError):
        tree[b"present"] = None  # type: ignore[assignment]
    assert tree.get(b"present") == b"value", "assigning None deleted the key"
    with pytest.raises(TypeError):
        tree[b"absent"] = None  # type: ignore[assignment]


def test_membership_of_a_key_that_is_not_bytes_is_false(tree: BTree) -> None:
    # Like dict: a key the mapping cannot hold is simply not in it.
    tree[b"text"] = b"value"
    assert "text" not in tree
    assert 7 not in tree


@pytest.mark.parametrize("page_size", PAGE_SIZES)
def test_keys_must_be_one_to_a_eighth_page_long(path: Path, page_size: int) -> None:
    longest = page_size // 8
    with BTree(path, page_size=page_size, sync=False) as tree:
        tree[b"x"] = b"shortest"
        tree[b"y" * longest] = b"longest"
        with pytest.raises(InvalidInput, match="key"):
            tree[b""] = b"empty"
        with pytest.raises(InvalidInput, match=str(longest)):
            tree[b"z" * (longest + 1)] = b"too long"
        with tree.transaction() as tx:
            with pytest.raises(InvalidInput):
                tx[b""] = b"empty"
            with pytest.raises(InvalidInput):
                tx.put(b"z" * (longest + 1), b"too long")
            tx[b"w"] = b"kept"  # the refused writes do not spoil the transaction
        assert dict(tree) == {b"w": b"kept", b"x": b"shortest", b"y" * longest: b"longest"}
        tree.check()


# ---------------------------------------------------------------- ranges and prefixes


def expected_range(
    ordered: list[tuple[bytes, bytes]],
    start: bytes | None,
    stop: bytes | None,
    reverse: bool = False,
) -> list[tuple[bytes, bytes]]:
    chosen = [
        (k, v) for k, v in ordered if (start is None or k >= start) and (stop is None or k < stop)
    ]
    return chosen[::-1] if reverse else chosen


BOUNDS: list[bytes | None] = [
    None,
    b"",
    b"\x00",
    b"key-",
    key_for(0),
    key_for(1),
    key_for(2),
    key_for(401),
    key_for(1000),
    key_for(1001),
    key_for(1998),
    key_for(1999),
    key_for(2000),
    key_for(2001),
    key_for(1000) + b"\x00",
    b"key-00001",  # a prefix of many keys, between two of them
    b"kez",
    b"\xff",
]


@pytest.fixture
def even_keys(small_tree: BTree) -> list[tuple[bytes, bytes]]:
    """Keys of the even numbers 0..1998 over many 512-byte leaves, so bounds fall between keys."""
    items = {key_for(i): value_for(i) for i in range(0, 2000, 2)}
    fill(small_tree, items)
    return sorted(items.items())


def test_ranges_are_start_inclusive_stop_exclusive_both_ways(
    small_tree: BTree, even_keys: list[tuple[bytes, bytes]]
) -> None:
    for start in BOUNDS:
        for stop in BOUNDS:
            for reverse in (False, True):
                want = expected_range(even_keys, start, stop, reverse)
                where = f"start={start!r} stop={stop!r} reverse={reverse}"
                assert list(small_tree.items(start, stop, reverse=reverse)) == want, where
                assert list(small_tree.keys(start, stop, reverse=reverse)) == [
                    k for k, _ in want
                ], where
                assert list(small_tree.values(start, stop, reverse=reverse)) == [
                    v for _, v in want
                ], where
            assert small_tree.count(start, stop) == len(expected_range(even_keys, start, stop))


def test_random_ranges_and_counts_match_a_sorted_list(
    small_tree: BTree, even_keys: list[tuple[bytes, bytes]]
) -> None:
    rng = random.Random(7)
    for _ in range(200):
        a, b = (key_for(rng.randrange(-5, 2010)) for _ in range(2))
        start = None if rng.random() < 0.1 else min(a, b)
        stop = None if rng.random() < 0.1 else max(a, b)
        reverse = rng.random() < 0.5
        want = expected_range(even_keys, start, stop, reverse)
        assert list(small_tree.items(start, stop, reverse=reverse)) == want, (start, stop)
        assert small_tree.count(start, stop) == len(want), (start, stop)


def test_keyword_bounds_and_a_partly_consumed_range(
    small_tree: BTree, even_keys: list[tuple[bytes, bytes]]
) -> None:
    assert list(small_tree.keys(stop=key_for(6))) == [key_for(0), key_for(2), key_for(4)]
    assert list(small_tree.keys(start=key_for(1994))) == [
        key_for(1994),
        key_for(1996),
        key_for(1998),
    ]
    walk = small_tree.items(key_for(100), reverse=True)
    assert next(walk) == even_keys[-1]
    assert next(walk) == even_keys[-2]
    assert list(small_tree.items(start=key_for(7), stop=key_for(7))) == []
    assert list(small_tree.items(start=key_for(9), stop=key_for(3), reverse=True)) == []
    assert small_tree.count(key_for(9), key_for(3)) == 0


PREFIX_KEYS = [
    b"a",
    b"ab",
    b"abc",
    b"abd",
    b"ac",
    b"a\xfe\xff",
    b"a\xff",
    b"a\xff\x00",
    b"a\xff\xff",
    b"a\xff\xff\xff",
    b"b",
    b"\xfe",
    b"\xfe\xff",
    b"\xfe\xff\xff",
    b"\xff",
    b"\xff\x00",
    b"\xff\xfe",
    b"\xff\xff",
    b"\xff\xff\x00",
    b"\xff\xff\xff",
]


@pytest.mark.parametrize(
    "prefix",
    [
        b"a",
        b"ab",
        b"abc",
        b"a\xff",
        b"a\xff\xff",
        b"\xfe",
        b"\xfe\xff",
        b"\xff",
        b"\xff\xff",
        b"\xff\xff\xff",
        b"\xff\xff\xff\xff",
        b"z",
        b"\x00",
        b"",
    ],
)
def test_prefix_yields_exactly_the_keys_that_start_with_it(
    small_tree: BTree, prefix: bytes
) -> None:
    filler = {b"%c-%d" % (c, i): b"f" for c in b"a\xfe\xff" for i in range(60)}
    items = {key: key + b"!" for key in PREFIX_KEYS} | filler
    fill(small_tree, items)
    want = sorted((k, v) for k, v in items.items() if k.startswith(prefix))
    assert list(small_tree.prefix(prefix)) == want
    assert list(small_tree.prefix(prefix, reverse=True)) == want[::-1]
    assert list(small_tree.prefix(bytearray(prefix))) == want


# ---------------------------------------------------------------- first, last, len


def test_first_and_last_follow_inserts_and_deletes(small_tree: BTree) -> None:
    fill(small_tree, {key_for(i): value_for(i) for i in range(100, 600)})
    assert small_tree.first() == (key_for(100), value_for(100))
    assert small_tree.last() == (key_for(599), value_for(599))
    small_tree[key_for(5)] = b"lower"
    small_tree[key_for(900)] = b"higher"
    assert small_tree.first() == (key_for(5), b"lower")
    assert small_tree.last() == (key_for(900), b"higher")
    with small_tree.transaction() as tx:
        for i in [5, 900, *range(100, 400), *range(450, 600)]:
            del tx[key_for(i)]
    assert small_tree.first() == (key_for(400), value_for(400))
    assert small_tree.last() == (key_for(449), value_for(449))
    assert len(small_tree) == 50 == small_tree.count()
    small_tree.check()


def test_len_stays_right_through_every_kind_of_write(path: Path) -> None:
    model: dict[bytes, bytes] = {}
    rng = random.Random(11)
    with BTree(path, page_size=512, sync=False) as tree:
        for round_ in range(30):
            with tree.transaction() as tx:
                for _ in range(rng.randrange(1, 60)):
                    key = key_for(rng.randrange(400))
                    if rng.random() < 0.4:
                        assert tx.delete(key) == (model.pop(key, None) is not None)
                    else:
                        tx[key] = model[key] = value_for(round_, rng.choice([3, 300, 1500]))
                assert len(tx) == len(model)
            assert len(tree) == len(model) == tree.count()
            if round_ % 10 == 9:
                with pytest.raises(ZeroDivisionError), tree.transaction() as tx:
                    tx[b"never"] = b"x"
                    for key in list(model)[:5]:
                        del tx[key]
                    raise ZeroDivisionError
                assert len(tree) == len(model)
        assert dict(tree.items()) == model
    with BTree(path, page_size=512) as tree:
        assert len(tree) == len(model) == tree.stats().keys == tree.check().keys


# ---------------------------------------------------------------- overflow values


@pytest.mark.parametrize("page_size", [512, 4096])
def test_values_around_page_size_boundaries_round_trip(path: Path, page_size: int) -> None:
    sizes = [0, 1, page_size // 8, page_size // 4 - 1, page_size // 4, page_size // 2]
    sizes += [page_size - 64, page_size - 1, page_size, page_size + 1, 2 * page_size - 1]
    sizes += [2 * page_size, 2 * page_size + 1, 10 * page_size + 3]
    values = {b"size-%06d" % size: value_for(size, size) for size in sizes}
    with BTree(path, page_size=page_size, sync=False) as tree:
        for key, value in values.items():
            tree[key] = value
        assert dict(tree.items()) == values
        stats = tree.check()
        assert stats.overflow_pages > 0
        assert_accounts_for_every_page(stats)
    with BTree(path, page_size=page_size) as tree:
        for key, value in values.items():
            assert tree[key] == value, len(value)
        assert list(tree.values()) == [values[key] for key in sorted(values)]


def test_one_mebibyte_values(path: Path) -> None:
    values = {b"big-%d" % i: value_for(i, (1 << 20) + i - 1) for i in range(3)}
    with BTree(path, sync=False) as tree:
        for key, value in values.items():
            tree[key] = value
        tree[b"small"] = b"beside them"
        assert tree[b"big-1"] == values[b"big-1"]
        stats = tree.check()
        assert stats.overflow_pages >= 3 * (1 << 20) // 4096
        assert_accounts_for_every_page(stats)
    with BTree(path) as tree:
        assert {key: tree[key] for key in values} == values
        assert tree[b"small"] == b"beside them"


def test_replacing_a_large_value_by_a_small_one_and_back(path: Path) -> None:
    big, bigger = value_for(1, 300_000), value_for(2, 500_000)
    with BTree(path, sync=False) as tree:
        tree[b"k"] = big
        tree[b"neighbour"] = b"n"
        overflow = tree.check().overflow_pages
        assert overflow >= 300_000 // 4096
        tree[b"k"] = b"small"
        assert tree[b"k"] == b"small"
        stats = tree.check()
        assert stats.overflow_pages == 0 and stats.free_pages >= overflow
        assert_accounts_for_every_page(stats)
        tree[b"k"] = bigger
        assert tree[b"k"] == bigger
        tree[b"k"] = big
        assert tree[b"k"] == big and tree[b"neighbour"] == b"n"
        assert_accounts_for_every_page(tree.check())
        del tree[b"k"]
        assert b"k" not in tree
        stats = tree.check()
        assert stats.overflow_pages == 0 and stats.keys == 1
        assert_accounts_for_every_page(stats)
    with BTree(path) as tree:
        assert dict(tree) == {b"neighbour": b"n"}


def test_pages_freed_by_a_deleted_value_are_reused(path: Path) -> None:
    with BTree(path, sync=False) as tree:
        tree[b"a"] = value_for(1, 1 << 20)
        del tree[b"a"]
        tree[b"x"] = b"a commit or two later the freed pages are free for good"
        tree[b"y"] = b"y"
        before = tree.check()
        assert before.free_pages >= (1 << 20) // 4096
        tree[b"b"] = value_for(2, 1 << 20)
        after = tree.check()
        assert after.pages <= before.pages + 16, (before, after)
        assert after.free_pages < before.free_pages
        assert tree[b"b"] == value_for(2, 1 << 20)
        assert_accounts_for_every_page(after)


def test_rewriting_a_large_value_many_times_does_not_grow_the_file(path: Path) -> None:
    size = 64 << 10  # 16 pages of 4 KiB
    with BTree(path, sync=False) as tree:
        tree[b"other"] = b"o"
        for i in range(20):
            tree[b"v"] = value_for(i, size)
        settled = tree.stats().pages
        for i in range(20, 220):
            tree[b"v"] = value_for(i, size)
            if i % 7 == 0:  # iterators, some left half-read, must not pin their pages forever
                walk = tree.items()
                next(walk)
                del walk
                gc.collect()
        stats = tree.check()
        assert tree[b"v"] == value_for(219, size)
        assert_accounts_for_every_page(stats)
        assert stats.pages <= max(settled + 16, 6 * size // 4096), (settled, stats)
    assert path.stat().st_size <= max(4 * stats.pages * 4096, 1 << 20)


# ---------------------------------------------------------------- transactions


def test_leaving_the_block_commits_every_write_at_once(tree: BTree) -> None:
    tree[b"gone"] = b"soon"
    txn_before = tree.stats().txn_id
    with tree.transaction() as tx:
        tx[b"a"] = b"1"
        tx.put(b"b", b"2")
        tx[b"big"] = value_for(3, 50_000)
        assert tx.delete(b"gone") is True
        assert tx.delete(b"never-there") is False
    assert dict(tree) == {b"a": b"1", b"b": b"2", b"big": value_for(3, 50_000)}
    assert tree.stats().txn_id == txn_before + 1


def test_explicit_commit_and_abort_end_the_block_quietly(tree: BTree) -> None:
    with tree.transaction() as tx:
        tx[b"a"] = b"1"
        tx.commit()
    with tree.transaction() as tx:
        tx[b"b"] = b"2"
        tx.abort()
    assert dict(tree) == {b"a": b"1"}


def test_an_exception_aborts_and_nothing_is_applied(tree: BTree) -> None:
    fill(tree, {key_for(i): value_for(i) for i in range(300)})
    tree[b"big"] = value_for(9, 100_000)
    before = dict(tree.items())
    stats = tree.stats()
    with pytest.raises(RuntimeError, match="boom"), tree.transaction() as tx:
        for i in range(0, 300, 2):
            del tx[key_for(i)]
        for i in range(300, 600):
            tx[key_for(i)] = value_for(i, 900)
        tx[b"big"] = b"small now"
        tx[b"bigger"] = value_for(10, 200_000)
        raise RuntimeError("boom")
    assert dict(tree.items()) == before
    assert len(tree) == len(before)
    after = tree.stats()
    assert (after.txn_id, after.pages, after.keys) == (stats.txn_id, stats.pages, stats.keys)
    assert_accounts_for_every_page(tree.check())
    tree[b"afterwards"] = b"writes still work"
    assert tree[b"afterwards"] == b"writes still work"


def test_reads_inside_a_transaction_see_its_own_writes(small_tree: BTree) -> None:
    committed = {key_for(i): value_for(i) for i in range(0, 400, 2)}
    fill(small_tree, committed)
    view = dict(committed)
    rng = random.Random(5)
    with small_tree.transaction() as tx:
        for step in range(300):
            key = key_for(rng.randrange(420))
            if rng.random() < 0.35:
                assert tx.delete(key) == (view.pop(key, None) is not None)
            else:
                tx[key] = view[key] = value_for(step, rng.choice([0, 10, 700]))
            assert tx.get(key) == view.get(key) and (key in tx) == (key in view)
        assert len(tx) == len(view)
        ordered = sorted(view.items())
        assert list(tx.items()) == ordered
        assert list(tx.items(reverse=True)) == ordered[::-1]
        for start, stop in [(key_for(50), key_for(150)), (None, key_for(7)), (key_for(411), None)]:
            assert list(tx.items(start, stop)) == expected_range(ordered, start, stop)
            assert list(tx.items(start, stop, reverse=True)) == expected_range(
                ordered, start, stop, True
            )
        missing = next(key for key in (key_for(i) for i in range(420)) if key not in view)
        with pytest.raises(KeyError):
            tx[missing]
        with pytest.raises(KeyError):
            del tx[missing]
        assert tx.get(missing, b"d") == b"d"
        # The tree itself still shows the last commit.
        assert dict(small_tree.items()) == committed
    assert dict(small_tree.items()) == view


def test_other_threads_read_the_last_commit_until_the_transaction_commits(tree: BTree) -> None:
    tree[b"a"] = b"old"
    tree[b"b"] = b"old"

    def read() -> tuple[bytes | None, bytes | None, bool, int, list[bytes]]:
        return tree.get(b"a"), tree.get(b"b"), b"c" in tree, len(tree), list(tree)

    old = (b"old", b"old", False, 2, [b"a", b"b"])
    with tree.transaction() as tx:
        tx[b"a"] = b"new"
        del tx[b"b"]
        tx[b"c"] = b"new"
        assert finished(*in_thread(read)) == old
        assert read() == old  # the writing thread's own tree reads too
    new = (b"new", None, True, 2, [b"a", b"c"])
    assert finished(*in_thread(read)) == new
    assert read() == new


def uses_of(tx: Transaction) -> list[Callable[[], object]]:
    """Every way of using a transaction."""
    return [
        lambda: tx.put(b"x", b"y"),
        lambda: tx.__setitem__(b"x", b"y"),
        lambda: tx[b"k"],
        lambda: tx.get(b"k"),
        lambda: tx.delete(b"k"),
        lambda: tx.__delitem__(b"k"),
        lambda: b"k" in tx,
        lambda: len(tx),
        lambda: list(tx.items()),
        tx.commit,
    ]


@pytest.mark.parametrize("end", ["commit", "abort", "block"])
def test_a_transaction_refuses_use_after_commit_or_abort(tree: BTree, end: str) -> None:
    tree[b"k"] = b"before"
    with tree.transaction() as tx:
        tx[b"k"] = b"during"
        if end != "block":
            getattr(tx, end)()
    for use in uses_of(tx):
        with pytest.raises(Unavailable):
            use()
    assert tree[b"k"] == (b"before" if end == "abort" else b"during")
    assert b"x" not in tree


def test_writing_to_the_tree_while_this_thread_holds_a_transaction_conflicts(tree: BTree) -> None:
    tree[b"a"] = b"1"
    with tree.transaction() as tx:
        tx[b"b"] = b"2"
        with pytest.raises(Conflict):
            tree[b"c"] = b"3"
        with pytest.raises(Conflict):
            del tree[b"a"]
        with pytest.raises(Conflict):
            tree.bulk_load([(b"z", b"z")])
        with pytest.raises(Conflict), tree.transaction():
            pass
        tx[b"d"] = b"4"  # the transaction itself goes on
    assert dict(tree) == {b"a": b"1", b"b": b"2", b"d": b"4"}


def test_writers_in_other_threads_wait_for_the_open_transaction(tree: BTree) -> None:
    tree[b"k"] = b"before"

    def write() -> None:
        tree[b"k"] = b"thread"

    with tree.transaction() as tx:
        tx[b"k"] = b"transaction"
        thread, outcome = in_thread(write)
        thread.join(0.3)
        assert thread.is_alive(), "a second writer did not wait for the writer lock"
        assert tx[b"k"] == b"transaction"
    finished(thread, outcome)
    assert tree[b"k"] == b"thread"  # it wrote after the commit


def test_concurrent_read_modify_write_transactions_are_serialised(tree: BTree) -> None:
    tree[b"counter"] = b"0"

    def increment(times: int) -> None:
        for _ in range(times):
            with tree.transaction() as tx:
                tx[b"counter"] = b"%d" % (int(tx[b"counter"]) + 1)

    threads = [in_thread(lambda: increment(25)) for _ in range(4)]
    for thread, outcome in threads:
        finished(thread, outcome)
    assert tree[b"counter"] == b"100"


def test_closing_the_tree_inside_a_transaction_aborts_it(path: Path) -> None:
    tree = BTree(path, sync=False)
    tree[b"a"] = b"1"
    with pytest.raises(Unavailable), tree.transaction() as tx:
        tx[b"b"] = b"2"
        tree.close()
    with BTree(path) as reopened:
        assert dict(reopened) == {b"a": b"1"}


# ---------------------------------------------------------------- snapshots of iterators


def test_an_iterator_keeps_its_snapshot_while_this_thread_commits(small_tree: BTree) -> None:
    fill(small_tree, {key_for(i): value_for(i) for i in range(1000)})
    snapshot = list(small_tree.items())
    walks = {
        "items": (small_tree.items(), snapshot),
        "reverse": (small_tree.items(reverse=True), snapshot[::-1]),
        "keys": (small_tree.keys(), [k for k, _ in snapshot]),
        "values": (small_tree.values(reverse=True), [v for _, v in snapshot[::-1]]),
        "range": (small_tree.items(key_for(100), key_for(900)), snapshot[100:900]),
        "prefix": (small_tree.prefix(b"key-000005"), snapshot[500:600]),
    }
    started = {name: [next(walk)] for name, (walk, _) in walks.items()}
    with small_tree.transaction() as tx:
        for i in range(0, 1000, 2):
            del tx[key_for(i)]
        for i in range(1000, 1500):
            tx[key_for(i)] = b"new"
        tx[key_for(555)] = b"changed"
    for i in range(1, 1000, 2):  # one commit each: every page the snapshot uses is freed
        small_tree[key_for(i)] = b"rewritten" * 5
    for name, (walk, want) in walks.items():
        assert started[name] + list(walk) == want, name
    assert len(small_tree) == 1000 and small_tree[key_for(555)] == b"rewritten" * 5
    small_tree.check()


def test_an_iterator_keeps_its_snapshot_while_another_thread_commits(small_tree: BTree) -> None:
    fill(small_tree, {key_for(i): value_for(i) for i in range(0, 3000, 3)})
    snapshot = list(small_tree.items())
    model = dict(snapshot)
    step, done = threading.Event(), threading.Event()
    rng = random.Random(3)
    batches: list[list[tuple[bytes, bytes | None]]] = []
    for round_ in range(40):
        ops: list[tuple[bytes, bytes | None]] = []
        for _ in range(60):
            key = key_for(rng.randrange(3000))
            ops.append((key, None if rng.random() < 0.5 else value_for(round_, 40)))
        batches.append(ops)

    def writer() -> None:
        for ops in batches:
            step.wait(60)
            step.clear()
            with small_tree.transaction() as tx:
                for key, value in ops:
                    if value is None:
                        tx.delete(key)
                    else:
                        tx[key] = value
            done.set()

    thread, outcome = in_thread(writer)
    seen: list[tuple[bytes, bytes]] = []
    walk = small_tree.items()
    for ops in batches:  # read a little, let one transaction commit, read on
        seen.extend(item for _, item in zip(range(20), walk, strict=False))
        step.set()
        assert done.wait(60), "the writer thread stopped"
        done.clear()
        for key, value in ops:
            if value is None:
                model.pop(key, None)
            else:
                model[key] = value
    seen.extend(walk)
    finished(thread, outcome)
    assert seen == snapshot
    assert dict(small_tree.items()) == model
    small_tree.check()


def test_an_iterator_sees_the_tree_as_of_the_call(small_tree: BTree) -> None:
    fill(small_tree, {key_for(i): b"old" for i in range(300)})
    walk = small_tree.items()
    keys = small_tree.keys(reverse=True)
    small_tree[key_for(1000)] = b"new"
    del small_tree[key_for(0)]
    small_tree[key_for(5)] = b"changed"
    assert list(walk) == [(key_for(i), b"old") for i in range(300)]
    assert list(keys) == [key_for(i) for i in reversed(range(300))]


def test_deleting_what_a_transaction_iterator_yielded_visits_every_key_once(
    small_tree: BTree,
) -> None:
    fill(small_tree, {key_for(i): value_for(i) for i in range(1000)})
    seen = []
    with small_tree.transaction() as tx:
        for key, _ in tx.items():
            seen.append(key)
            del tx[key]
        assert len(tx) == 0 and list(tx.items()) == []
    assert seen == [key_for(i) for i in range(1000)]
    assert len(small_tree) == 0
    small_tree.check()


def test_an_iterator_left_open_across_close_raises_unavailable(path: Path) -> None:
    tree = BTree(path, page_size=512, sync=False)
    fill(tree, {key_for(i): value_for(i) for i in range(500)})
    walk = tree.items()
    next(walk)
    tree.close()
    with pytest.raises(Unavailable):
        list(walk)


# ---------------------------------------------------------------- files: reopen, sizes, locks


def test_everything_survives_close_and_reopen(path: Path) -> None:
    items = {key_for(i): value_for(i, i % 5 * 1000) for i in range(2000)}
    with BTree(path) as tree:
        fill(tree, items, batch=500)
        tree[b"last"] = b"one"
        del tree[key_for(7)]
        stats = tree.stats()
    del items[key_for(7)]
    items[b"last"] = b"one"
    with BTree(path, create=False) as tree:
        assert tree.path == path and tree.page_size == 4096 and tree.sync is True
        assert dict(tree.items()) == items and len(tree) == len(items)
        again = tree.stats()
        assert (again.txn_id, again.keys, again.pages) == (stats.txn_id, stats.keys, stats.pages)
        assert tree.check().keys == len(items)


@pytest.mark.parametrize("page_size", [*PAGE_SIZES, 65536])
def test_every_page_size_stores_and_reopens(path: Path, page_size: int) -> None:
    rng = random.Random(page_size)
    sizes = [
        rng.randrange(3 * page_size) if i % 20 == 0 else rng.randrange(100) for i in range(600)
    ]
    items = {
        rng.randbytes(rng.randrange(1, page_size // 8 + 1)): value_for(i, size)
        for i, size in enumerate(sizes)
    }
    with BTree(path, page_size=page_size, sync=False) as tree:
        fill(tree, items, batch=200)
        assert tree.page_size == page_size
    with BTree(path, page_size=page_size) as tree:
        assert dict(tree.items()) == items
        stats = tree.check()
        assert stats.page_size == page_size and stats.keys == len(items)
        assert_accounts_for_every_page(stats)
    assert check_btree(path).keys == len(items)


def test_opening_with_another_page_size_raises_invalid_input(path: Path) -> None:
    with BTree(path, page_size=512) as tree:
        tree[b"a"] = b"1"
    for wrong in (4096, 1024, 16384):
        with pytest.raises(InvalidInput, match="512"):
            BTree(path, page_size=wrong)
    with BTree(path, page_size=512) as tree:  # nothing was left locked or changed
        assert dict(tree) == {b"a": b"1"}


@pytest.mark.parametrize("page_size", [0, -4096, 256, 1000, 4097, 131072, 1 << 40])
def test_page_sizes_that_are_not_powers_of_two_in_range_are_refused(
    path: Path, page_size: int
) -> None:
    with pytest.raises(InvalidInput):
        BTree(path, page_size=page_size)


def test_create_false_needs_an_existing_file(path: Path) -> None:
    with pytest.raises(NotFound):
        BTree(path, create=False)
    assert not path.exists()
    with BTree(path) as tree:
        tree[b"a"] = b"1"
    with BTree(path, create=False) as tree:
        assert tree[b"a"] == b"1"


@pytest.mark.parametrize(
    "content",
    [b"hello world\n" * 1000, b"\x00" * 8192, b"not a tree", random.Random(4).randbytes(3 * 4096)],
    ids=["text", "zeros", "short", "random"],
)
def test_a_file_that_is_not_a_tree_raises_corruption_and_is_left_alone(
    path: Path, content: bytes
) -> None:
    path.write_bytes(content)
    with pytest.raises(Corruption, match=path.name):
        BTree(path)
    with pytest.raises(Corruption):
        check_btree(path)
    assert path.read_bytes() == content


def test_a_second_open_in_this_process_conflicts(path: Path) -> None:
    with BTree(path) as tree:
        tree[b"a"] = b"1"
        with pytest.raises(Conflict):
            BTree(path)
        tree[b"b"] = b"2"  # the refused open did not disturb the owner
    with BTree(path) as tree:
        assert dict(tree) == {b"a": b"1", b"b": b"2"}


_OPEN_IN_CHILD = """
import sys
from trusswork.core.errors import Conflict
from trusswork.storage import BTree
try:
    tree = BTree(sys.argv[1])
except Conflict:
    sys.exit(3)
assert tree[b"a"] == b"1"
tree.close()
"""


def test_opening_from_another_process_conflicts_until_closed(path: Path) -> None:
    def open_in_child() -> int:
        command = [sys.executable, "-c", _OPEN_IN_CHILD, str(path)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode in (0, 3), done.stderr
        return done.returncode

    tree = BTree(path)
    try:
        tree[b"a"] = b"1"
        assert open_in_child() == 3
        assert tree[b"a"] == b"1"
    finally:
        tree.close()
    assert open_in_child() == 0


def test_close_is_idempotent_and_later_use_raises_unavailable(path: Path) -> None:
    tree = BTree(path)
    tree[b"a"] = b"1"
    tree.close()
    tree.close()
    uses: list[Callable[[], object]] = [
        lambda: tree[b"a"],
        lambda: tree.__setitem__(b"b", b"2"),
        lambda: tree.__delitem__(b"a"),
        lambda: b"a" in tree,
        lambda: tree.get(b"a"),
        lambda: len(tree),
        lambda: list(tree),
        lambda: list(tree.items()),
        lambda: list(tree.prefix(b"a")),
        lambda: tree.count(),
        lambda: tree.first(),
        lambda: tree.last(),
        tree.transaction,
        lambda: tree.bulk_load([]),
        tree.check,
        tree.stats,
    ]
    for use in uses:
        with pytest.raises(Unavailable):
            use()
    with BTree(path) as reopened:
        assert dict(reopened) == {b"a": b"1"}


def test_a_with_block_closes_the_tree(path: Path) -> None:
    with BTree(path) as tree:
        tree[b"a"] = b"1"
    with pytest.raises(Unavailable):
        tree[b"a"]


# ---------------------------------------------------------------- a small buffer pool


def test_a_buffer_pool_far_smaller_than_the_tree(path: Path) -> None:
    cache = 16 * 4096
    rng = random.Random(20)
    order = list(range(20_000))
    rng.shuffle(order)
    model = {key_for(i): value_for(i, rng.randrange(10, 200)) for i in order}
    with BTree(path, cache_bytes=cache, sync=False) as tree:
        fill(tree, dict(list(model.items())[:15_000]), batch=2000)
        with tree.transaction() as tx:  # one transaction dirtier than the pool
            for key, value in list(model.items())[15_000:]:
                tx[key] = value
        for i in rng.sample(range(20_000), 300):
            assert tree[key_for(i)] == model[key_for(i)]
        assert list(tree.items()) == sorted(model.items())
        with tree.transaction() as tx:
            for i in range(0, 20_000, 2):
                del tx[key_for(i)]
                del model[key_for(i)]
        assert list(tree.items(reverse=True)) == sorted(model.items(), reverse=True)
        stats = tree.check()
        assert stats.keys == 10_000 and stats.depth >= 2
        assert_accounts_for_every_page(stats)
    with BTree(path, cache_bytes=cache) as tree:
        assert dict(tree.items()) == model


# ---------------------------------------------------------------- bulk loading


def test_bulk_load_equals_the_dict_it_was_given(path: Path) -> None:
    items = {key_for(i): value_for(i, i % 13 * 700) for i in range(20_000)}
    with BTree(path, page_size=512, sync=False) as tree:
        txn = tree.stats().txn_id
        assert tree.bulk_load(iter(sorted(items.items()))) == len(items)
        assert tree.stats().txn_id == txn + 1  # one commit
        assert len(tree) == len(items)
        assert dict(tree.items()) == items
        stats = tree.check()
        assert stats.keys == len(items) and stats.depth >= 3
        assert_accounts_for_every_page(stats)
        tree[key_for(5)] = b"changed"  # an ordinary tree afterwards
        del tree[key_for(6)]
        tree[b"zzz"] = b"new"
        tree.check()
    items[key_for(5)] = b"changed"
    del items[key_for(6)]
    items[b"zzz"] = b"new"
    with BTree(path, page_size=512) as tree:
        assert dict(tree.items()) == items


def test_bulk_load_of_nothing_loads_nothing(tree: BTree) -> None:
    assert tree.bulk_load([]) == 0
    assert len(tree) == 0
    assert tree.bulk_load([(b"a", b"1")]) == 1
    assert dict(tree) == {b"a": b"1"}


def test_bulk_load_into_a_tree_with_keys_conflicts(tree: BTree) -> None:
    tree[b"a"] = b"1"
    with pytest.raises(Conflict):
        tree.bulk_load([(b"b", b"2")])
    assert dict(tree) == {b"a": b"1"}
    del tree[b"a"]
    assert tree.bulk_load([(b"b", b"2")]) == 1  # empty again: allowed


@pytest.mark.parametrize(
    ("items", "position"),
    [
        ([(b"a", b""), (b"c", b""), (b"b", b"")], 2),
        ([(b"a", b""), (b"a", b"again")], 1),
        ([(key_for(i), b"") for i in range(500)] + [(key_for(3), b"")], 500),
        ([(b"a", b""), (b"", b"")], 1),
        ([(b"a", b""), (b"b" * 513, b"")], 1),
    ],
    ids=["unsorted", "duplicate", "late-unsorted", "empty-key", "long-key"],
)
def test_bulk_load_refuses_keys_out_of_order_and_applies_nothing(
    tree: BTree, items: list[tuple[bytes, bytes]], position: int
) -> None:
    txn = tree.stats().txn_id
    with pytest.raises(InvalidInput, match=str(position)):
        tree.bulk_load(items)
    assert len(tree) == 0 and list(tree) == [] and tree.stats().txn_id == txn
    tree.check()
    assert tree.bulk_load([(b"ok", b"1")]) == 1


def test_bulk_load_refuses_items_that_are_not_bytes(tree: BTree) -> None:
    with pytest.raises(TypeError):
        tree.bulk_load([(b"a", b"1"), ("b", b"2")])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        tree.bulk_load([(b"a", 1)])  # type: ignore[list-item]
    assert len(tree) == 0


def test_bulk_load_with_large_values(path: Path) -> None:
    items = [(b"k%03d" % i, value_for(i, i * 997 % 40_000)) for i in range(120)]
    with BTree(path, sync=False) as tree:
        assert tree.bulk_load(items) == 120
        assert list(tree.items()) == items
        assert tree.check().overflow_pages > 0


# ---------------------------------------------------------------- statistics


def test_check_and_stats_report_sensible_numbers(path: Path) -> None:
    with BTree(path, page_size=512, sync=False) as tree:
        empty = tree.stats()
        assert empty.keys == 0 and empty.page_size == 512
        assert empty.leaf_pages == empty.branch_pages == empty.overflow_pages == 0
        assert empty.pages >= 2
        fill(tree, {key_for(i): value_for(i, 20) for i in range(3000)}, batch=3000)
        tree[b"overflowing"] = value_for(1, 5000)
        txn = tree.stats().txn_id
        assert txn == empty.txn_id + 2
        cheap, full = tree.stats(), tree.check()
        assert isinstance(cheap, BTreeStats) and isinstance(full, BTreeStats)
        for stats in (cheap, full):
            assert stats.keys == 3001 and stats.page_size == 512 and stats.txn_id == txn
        assert cheap.leaf_pages == cheap.branch_pages == cheap.overflow_pages == 0
        assert (cheap.depth, cheap.pages, cheap.free_pages) == (
            full.depth,
            full.pages,
            full.free_pages,
        )
        # 3000 entries of ~32 bytes do not fit in fewer than 3000 * 32 / 512 leaves.
        assert full.leaf_pages >= 3000 * 32 // 512
        assert full.branch_pages >= 1 and full.depth >= 2
        assert full.overflow_pages >= 5000 // 512
        assert_accounts_for_every_page(full)
        assert full.pages * 512 <= path.stat().st_size
        with pytest.raises(dataclasses.FrozenInstanceError):
            full.keys = 0  # type: ignore[misc]
    checked = check_btree(path)
    assert (checked.keys, checked.pages, checked.leaf_pages) == (
        full.keys,
        full.pages,
        full.leaf_pages,
    )
    assert checked.page_size == 512
    with BTree(path, page_size=512) as tree:  # check_btree let go of the file
        assert len(tree) == 3001


def test_update_and_clear_are_single_transactions(tree: BTree) -> None:
    tree.update({b"a": b"1", b"b": b"2"})
    tree.update([(b"c", b"3")], d=b"4")
    assert dict(tree.items()) == {b"a": b"1", b"b": b"2", b"c": b"3", b"d": b"4"}
    before = tree.stats().txn_id
    with pytest.raises(TypeError):
        tree.update([(b"e", b"5"), (b"f", 6)])  # type: ignore[list-item]
    assert b"e" not in tree, "a failed update applied part of its pairs"
    tree.clear()
    assert len(tree) == 0 and list(tree.items()) == []
    assert tree.stats().txn_id == before + 1, "clear took more than one commit"
    assert tree.check().keys == 0


def test_page_size_none_opens_a_file_with_its_own_page_size(path: Path) -> None:
    with BTree(path, page_size=1024) as tree:
        tree[b"k"] = b"v"
    with BTree(path, page_size=None) as tree:
        assert tree.page_size == 1024 and tree[b"k"] == b"v"
    other = path.with_name("new.bt")
    with BTree(other, page_size=None) as tree:
        assert tree.page_size == 4096


def test_last_and_first_read_only_the_leaf_they_need(tmp_path: Path) -> None:
    """A damaged leftmost leaf does not stop last(), and a damaged rightmost leaf not first()."""
    from trusswork.core.errors import Corruption

    path = tmp_path / "t.btree"
    with BTree(path, page_size=512) as tree:
        tree.update({b"k%04d" % i: b"v" * 40 for i in range(16)})
        assert tree.stats().depth > 1
    data = bytearray(path.read_bytes())
    with BTree(path, page_size=None, create=False) as tree:
        first_key = tree.first()
        assert first_key is not None
    # find the page holding the smallest key and damage it
    for page in range(len(data) // 512):
        block = bytes(data[page * 512 : (page + 1) * 512])
        if b"k0000" in block:
            data[page * 512 + 256] ^= 0xFF
    path.write_bytes(bytes(data))
    with BTree(path, page_size=None, create=False) as tree:
        last = tree.last()
        assert last is not None and last[0] == b"k0015"
        with pytest.raises(Corruption):
            tree.first()
