"""The B-tree against a dict: hypothesis drives both through the same operations.

A state machine puts, deletes, reads, scans ranges both ways, counts, looks
up prefixes, runs transactions that commit or abort (with reads inside that
must see their own writes), bulk loads into an empty tree, and closes and
reopens the file -- on the tree and on a plain dict, the oracle. Pages are
512 bytes, so keys of up to 64 bytes (the most such a page allows) split and
merge pages after a handful of writes, and values of up to 3000 bytes go to
overflow pages. Keys share prefixes on purpose (separator keys are cut from
them). After every step the tree must read back as the dict and ``check``
must pass.

Modest by default (50 runs of 40 steps); ``TRUSSWORK_FUZZ=1`` runs far more.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from helpers import FUZZ, examples
from trusswork.core.errors import Conflict, InvalidInput
from trusswork.storage import BTree

PAGE = 512
MAX_KEY = PAGE // 8
PREFIXES = [b"", b"a", b"ab", b"abc", b"p" * 40, b"p" * 40 + b"q", b"\xff", b"\xff\xff", b"\x00"]


@st.composite
def keys(draw: st.DrawFn) -> bytes:
    """Keys of 1..MAX_KEY bytes, many sharing a prefix with others."""
    prefix = draw(st.sampled_from(PREFIXES))
    rest = draw(st.binary(min_size=0 if prefix else 1, max_size=MAX_KEY - len(prefix)))
    return (prefix + rest)[:MAX_KEY]


def value(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


values = st.builds(
    value,
    st.integers(0, 2**32),
    st.one_of(st.integers(0, 40), st.integers(0, 3000), st.sampled_from([0, 120, 472, 473, 1024])),
)
bounds = st.one_of(st.none(), keys(), st.sampled_from([b"", b"\x00", b"\xff" * 5]))
#: One write of a transaction: (key, value) puts, (key, None) deletes.
writes = st.tuples(keys(), st.one_of(st.none(), values))


def in_range(key: bytes, start: bytes | None, stop: bytes | None) -> bool:
    return (start is None or key >= start) and (stop is None or key < stop)


class BTreeAgainstDict(RuleBasedStateMachine):
    """Operations applied to a BTree and to a dict must agree."""

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="btree-model-"))
        self.path = self.directory / "tree.bt"
        self.tree = BTree(self.path, page_size=PAGE, sync=False)
        self.model: dict[bytes, bytes] = {}

    def teardown(self) -> None:
        try:
            self.tree.check()
        finally:
            self.tree.close()
            shutil.rmtree(self.directory, ignore_errors=True)

    def known_key(self, data: st.DataObject) -> bytes:
        """A key already in the tree when there is one (most deletes should hit)."""
        if self.model and data.draw(st.booleans()):
            return data.draw(st.sampled_from(sorted(self.model)))
        return data.draw(keys())

    # ------------------------------------------------------------ single writes

    @rule(key=keys(), stored=values)
    def put(self, key: bytes, stored: bytes) -> None:
        self.tree[key] = stored
        self.model[key] = stored

    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        key = self.known_key(data)
        if key in self.model:
            del self.tree[key]
            del self.model[key]
        else:
            with pytest.raises(KeyError):
                del self.tree[key]

    @rule(first=st.integers(0, 10_000), count=st.integers(10, 80), size=st.integers(0, 600))
    def put_many(self, first: int, count: int, size: int) -> None:
        """Enough keys in one transaction to split several pages."""
        with self.tree.transaction() as tx:
            for i in range(first, first + count):
                key = b"p" * 40 + b"%06d" % i
                tx[key] = self.model[key] = value(i, size)

    @rule(start=bounds, stop=bounds)
    def delete_range(self, start: bytes | None, stop: bytes | None) -> None:
        """Many deletes in one transaction: pages merge."""
        doomed = [key for key in self.model if in_range(key, start, stop)]
        with self.tree.transaction() as tx:
            for key in doomed:
                assert tx.delete(key)
                del self.model[key]

    # ------------------------------------------------------------ reads

    @rule(data=st.data())
    def get(self, data: st.DataObject) -> None:
        key = self.known_key(data)
        assert self.tree.get(key) == self.model.get(key)
        assert (key in self.tree) == (key in self.model)
        if key not in self.model:
            with pytest.raises(KeyError):
                self.tree[key]

    @rule(start=bounds, stop=bounds, reverse=st.booleans())
    def scan(self, start: bytes | None, stop: bytes | None, reverse: bool) -> None:
        want = sorted((k, v) for k, v in self.model.items() if in_range(k, start, stop))
        if reverse:
            want.reverse()
        assert list(self.tree.items(start, stop, reverse=reverse)) == want
        assert list(self.tree.keys(start, stop, reverse=reverse)) == [k for k, _ in want]
        assert self.tree.count(start, stop) == len(want)

    @rule(prefix=st.one_of(st.sampled_from(PREFIXES), keys()), reverse=st.booleans())
    def prefix(self, prefix: bytes, reverse: bool) -> None:
        want = sorted((k, v) for k, v in self.model.items() if k.startswith(prefix))
        if reverse:
            want.reverse()
        assert list(self.tree.prefix(prefix, reverse=reverse)) == want

    @rule()
    def first_and_last(self) -> None:
        ordered = sorted(self.model.items())
        assert self.tree.first() == (ordered[0] if ordered else None)
        assert self.tree.last() == (ordered[-1] if ordered else None)

    # ------------------------------------------------------------ transactions

    @rule(
        ops=st.lists(writes, max_size=12),
        end=st.sampled_from(["block", "commit", "abort", "raise"]),
        start=bounds,
        stop=bounds,
    )
    def transaction(
        self,
        ops: list[tuple[bytes, bytes | None]],
        end: str,
        start: bytes | None,
        stop: bytes | None,
    ) -> None:
        view = dict(self.model)
        committed = sorted(self.model.items())

        class Abandon(Exception):
            pass

        try:
            with self.tree.transaction() as tx:
                for key, data in ops:
                    if data is None:
                        assert tx.delete(key) == (view.pop(key, None) is not None)
                    else:
                        tx.put(key, data)
                        view[key] = data
                    assert tx.get(key) == view.get(key)
                assert len(tx) == len(view)
                want = sorted((k, v) for k, v in view.items() if in_range(k, start, stop))
                assert list(tx.items(start, stop)) == want
                assert list(tx.items(start, stop, reverse=True)) == want[::-1]
                assert list(self.tree.items()) == committed  # others see the last commit
                if end == "commit":
                    tx.commit()
                elif end == "abort":
                    tx.abort()
                elif end == "raise":
                    raise Abandon
        except Abandon:
            pass
        if end in ("block", "commit"):
            self.model = view

    # ------------------------------------------------------------ files

    @rule()
    def reopen(self) -> None:
        self.tree.close()
        self.tree = BTree(self.path, page_size=PAGE, sync=False, create=False)

    @rule(items=st.dictionaries(keys(), values, max_size=60))
    def bulk_load(self, items: dict[bytes, bytes]) -> None:
        ordered = sorted(items.items())
        if self.model:
            if ordered:
                with pytest.raises(Conflict):
                    self.tree.bulk_load(ordered)
            return
        assert self.tree.bulk_load(ordered) == len(ordered)
        self.model = dict(ordered)

    @precondition(lambda self: len(self.model) >= 2)
    @rule()
    def bulk_load_unsorted(self) -> None:
        """Refused before anything is written, whether the tree is empty or not."""
        ordered = sorted(self.model.items())
        with self.tree.transaction() as tx:
            for key in self.model:
                tx.delete(key)
        with pytest.raises(InvalidInput):
            self.tree.bulk_load(ordered[::-1])
        assert len(self.tree) == 0
        self.tree.bulk_load(ordered)  # put back what was there

    @rule()
    def clear(self) -> None:
        """Empty the tree in one transaction, so bulk loads get their turn."""
        with self.tree.transaction() as tx:
            for key in self.model:
                del tx[key]
        self.model.clear()

    # ------------------------------------------------------------ after every step

    @invariant()
    def reads_back_as_the_dict(self) -> None:
        assert len(self.tree) == len(self.model)
        assert list(self.tree.items()) == sorted(self.model.items())

    @invariant()
    def passes_check(self) -> None:
        stats = self.tree.check()
        assert stats.keys == len(self.model)
        used = 2 + stats.leaf_pages + stats.branch_pages + stats.overflow_pages
        assert used + stats.free_pages + getattr(stats, "freelist_pages", 0) == stats.pages


BTreeAgainstDict.TestCase.settings = settings(
    max_examples=examples(50, fuzz=2000),
    stateful_step_count=100 if FUZZ else 40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
test_btree_agrees_with_a_dict = BTreeAgainstDict.TestCase
