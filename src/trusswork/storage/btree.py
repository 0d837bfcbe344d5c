"""A disk-resident B+tree: an ordered, durable mapping of bytes to bytes.

One file of fixed-size pages (4 KiB by default) with variable-length keys
and values; values too big for a leaf go to chains of overflow pages. The
tree is C (``csrc/btree``); every call releases the GIL.

Guarantees
----------
- **Atomic, durable transactions.** ``with tree.transaction() as tx:`` applies
  its puts and deletes all at once when the block ends, and none of them if
  it raises. With ``sync=True`` (the default) a commit is on disk when it
  returns; a single ``tree[k] = v`` is a transaction of its own.
- **Crash safety by copy-on-write** (shadow paging, as LMDB does it):
  committed pages are never overwritten. A transaction writes the pages it
  changes to free space, then ``fdatasync``, then one of two meta pages
  names the new root, then ``fdatasync``. Killing the process or losing
  power at any moment leaves the file opening at the last commit whose meta
  page reached the disk: every committed transaction, no partial one. With
  ``sync=False`` commits survive the process dying (the OS has the pages)
  but not power loss, which may also leave the newest commit unreadable;
  that is reported as :class:`~trusswork.core.errors.Corruption`.
- **Checked pages.** Every page carries a CRC32C and its own page number, so
  damaged, torn or misplaced pages raise ``Corruption`` naming the file,
  page and byte offset instead of returning wrong data; :meth:`BTree.check`
  walks the whole tree and free list.
- **Snapshots.** Readers never wait for the writer. An iterator sees the tree
  as it was when ``items()`` (``keys()``, ``values()``, ``prefix()``) was
  called, however many commits happen while it runs.
- **One writer.** A transaction holds the writer lock until it ends; writers
  in other threads wait. One process opens a file at a time (``flock``);
  another gets :class:`~trusswork.core.errors.Conflict`.

Memory is bounded by ``cache_bytes`` (a buffer pool with clock eviction);
a transaction larger than the pool writes its pages to free space early,
which is safe because no commit refers to them yet.
"""

from __future__ import annotations

import fcntl
import os
import threading
import weakref
from collections.abc import Iterable, Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from trusswork.core.errors import Conflict, InvalidInput, NotFound, Unavailable
from trusswork.core.files import fsync_directory
from trusswork.storage import _btree

__all__ = ["BTree", "BTreeStats", "Transaction", "check_btree"]

#: What keys and values may be: bytes, bytearray, memoryview (C-contiguous).
BytesLike = bytes | bytearray | memoryview

_DELETE = object()  # BTree._one: delete instead of put


@dataclass(frozen=True)
class BTreeStats:
    """Shape of a tree's last commit.

    ``stats()`` reads the meta page (cheap); ``check()`` walks every page and
    also fills in the page counts by kind.
    """

    keys: int
    depth: int
    pages: int
    free_pages: int
    page_size: int
    txn_id: int
    leaf_pages: int = 0
    branch_pages: int = 0
    overflow_pages: int = 0
    freelist_pages: int = 0

    @classmethod
    def _from(cls, d: dict[str, int]) -> BTreeStats:
        return cls(**d)


def _successor(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key starting with prefix."""
    p = bytearray(prefix)
    while p and p[-1] == 0xFF:
        p.pop()
    if not p:
        return None
    p[-1] += 1
    return bytes(p)


class _Reader:
    """Read methods shared by the tree (last commit) and a transaction (own writes)."""

    _t: _btree.Tree
    _in_txn: bool

    def _snapshot(self) -> _btree.Snapshot | None:
        return None if self._in_txn else self._t.snapshot()

    def __getitem__(self, key: BytesLike) -> bytes:
        value = self._t.get(key, None, self._in_txn)
        if value is None:
            raise NotFound(f"key {bytes(key)[:64]!r} is not in the tree")
        return value

    def get(self, key: BytesLike, default: bytes | None = None) -> bytes | None:
        """The value of key, or default."""
        value = self._t.get(key, None, self._in_txn)
        return default if value is None else value

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, bytes | bytearray | memoryview):
            return False
        return self._t.get(key, None, self._in_txn) is not None

    def __len__(self) -> int:
        return int(self._t.stats(self._in_txn)["keys"])

    def __iter__(self) -> Iterator[bytes]:
        return self.keys()

    def items(
        self,
        start: BytesLike | None = None,
        stop: BytesLike | None = None,
        *,
        reverse: bool = False,
    ) -> Iterator[tuple[bytes, bytes]]:
        """Pairs with ``start <= key < stop`` in key order (bytewise), or
        from the top down with ``reverse=True``. None leaves a side open."""
        return _btree.Iter(
            self._t, self._snapshot(), self._in_txn, start, stop, reverse, _btree.ITEMS
        )

    def keys(
        self,
        start: BytesLike | None = None,
        stop: BytesLike | None = None,
        *,
        reverse: bool = False,
    ) -> Iterator[bytes]:
        """Keys with ``start <= key < stop``, in order (see :meth:`items`)."""
        return _btree.Iter(
            self._t, self._snapshot(), self._in_txn, start, stop, reverse, _btree.KEYS
        )

    def values(
        self,
        start: BytesLike | None = None,
        stop: BytesLike | None = None,
        *,
        reverse: bool = False,
    ) -> Iterator[bytes]:
        """Values of the keys with ``start <= key < stop``, in key order."""
        return _btree.Iter(
            self._t, self._snapshot(), self._in_txn, start, stop, reverse, _btree.VALUES
        )

    def prefix(self, prefix: BytesLike, *, reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        """Pairs whose key starts with prefix, in key order."""
        if not isinstance(prefix, bytes | bytearray | memoryview):
            raise TypeError(f"prefix must be bytes-like, not {type(prefix).__name__}")
        p = bytes(prefix)
        return self.items(p or None, _successor(p) if p else None, reverse=reverse)

    def count(self, start: BytesLike | None = None, stop: BytesLike | None = None) -> int:
        """Number of keys with ``start <= key < stop`` (walks the leaves)."""
        if start is None and stop is None:
            return len(self)
        return int(self._t.count(None, self._in_txn, start, stop))

    def first(self) -> tuple[bytes, bytes] | None:
        """The pair with the smallest key, or None when empty."""
        return next(self.items(), None)

    def last(self) -> tuple[bytes, bytes] | None:
        """The pair with the largest key, or None when empty."""
        return next(self.items(reverse=True), None)


class Transaction(_Reader):
    """An atomic batch of writes; reads through it see its own writes.

    Made by :meth:`BTree.transaction`; use it as a context manager. Leaving
    the block commits; an exception aborts (nothing is applied) and
    propagates. Only the thread that opened it may use it.
    """

    def __init__(self, tree: BTree) -> None:
        self._tree = tree
        self._t = tree._live()
        self._in_txn = True
        self._state = "new"
        self._thread = 0

    def __enter__(self) -> Self:
        if self._state != "new":
            raise Unavailable("a transaction can be entered once")
        self._tree._write_guard("open a transaction")
        self._t.begin()
        self._thread = threading.get_ident()
        self._tree._owner = self._thread
        self._state = "open"
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._state != "open":
            return
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    def _open(self) -> _btree.Tree:
        if self._state != "open":
            raise Unavailable(f"the transaction is {self._state}")
        if threading.get_ident() != self._thread:
            raise Conflict("a transaction can only be used by the thread that opened it")
        return self._t

    def _end(self, state: str) -> None:
        self._state = state
        self._tree._owner = 0

    def put(self, key: BytesLike, value: BytesLike) -> None:
        """Set key to value (applied at commit)."""
        self._open().put(key, value)

    def delete(self, key: BytesLike) -> bool:
        """Remove key; True when it was there."""
        return bool(self._open().delete(key))

    def __setitem__(self, key: BytesLike, value: BytesLike) -> None:
        self._open().put(key, value)

    def __delitem__(self, key: BytesLike) -> None:
        if not self._open().delete(key):
            raise NotFound(f"key {bytes(key)[:64]!r} is not in the tree")

    def __getitem__(self, key: BytesLike) -> bytes:
        self._open()
        return super().__getitem__(key)

    def get(self, key: BytesLike, default: bytes | None = None) -> bytes | None:
        """The value of key as this transaction sees it, or default."""
        self._open()
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self._open()
        return super().__contains__(key)

    def __len__(self) -> int:
        self._open()
        return super().__len__()

    def _snapshot(self) -> None:
        self._open()
        return None

    def commit(self) -> None:
        """Apply every write at once (durable on return when the tree syncs)."""
        t = self._open()
        try:
            t.commit()
        finally:
            self._end("committed")

    def abort(self) -> None:
        """Drop every write of this transaction."""
        t = self._open()
        try:
            t.abort()
        finally:
            self._end("aborted")


# Mapping's items/keys/values take no range arguments; ours extend them.
class BTree(_Reader, MutableMapping[bytes, bytes]):  # type: ignore[misc]
    """An ordered, crash-safe mapping of bytes to bytes in one file.

    >>> with BTree(path) as tree:                    # doctest: +SKIP
    ...     tree[b"apple"] = b"red"
    ...     with tree.transaction() as tx:
    ...         tx[b"banana"] = b"yellow"
    ...         del tx[b"apple"]
    ...     list(tree.items())
    [(b'banana', b'yellow')]

    Args:
        path: the tree's file; created (empty) when missing unless
            ``create=False`` (then :class:`NotFound`).
        page_size: bytes per page, a power of two from 512 to 65536. An
            existing file keeps its own; passing another raises InvalidInput,
            and None opens it whatever its page size (4096 for a new file).
        cache_bytes: memory for cached pages (at least 64 pages are kept).
        sync: ``fdatasync`` at every commit (durable against power loss).
        create: create the file when it does not exist.

    Keys are 1 to ``page_size // 8`` bytes; values up to 2**31 - 1 bytes.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        page_size: int | None = 4096,
        cache_bytes: int = 64 << 20,
        sync: bool = True,
        create: bool = True,
        _simulate_fs: bool = False,
    ) -> None:
        self.path = Path(path)
        self.sync = sync
        self._owner = 0
        self._in_txn = False
        self._closed = False
        if page_size is not None and (
            not isinstance(page_size, int)
            or page_size < _btree.MIN_PAGE
            or page_size > _btree.MAX_PAGE
            or page_size & (page_size - 1)
        ):
            raise InvalidInput(
                f"page_size {page_size!r}: a power of two from "
                f"{_btree.MIN_PAGE} to {_btree.MAX_PAGE}"
            )
        if cache_bytes < 0:
            raise InvalidInput(f"cache_bytes {cache_bytes!r} is negative")
        if self.path.is_dir():
            raise InvalidInput(f"{self.path} is a directory, not a B-tree file")
        if not self.path.exists():
            if not create:
                raise NotFound(f"{self.path}: no such B-tree file (create=False)")
            self._create(page_size or 4096)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NotFound(f"{self.path}: no such B-tree file") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise Conflict(f"{self.path} is open in another process or handle") from None
        self._unlock = weakref.finalize(self, os.close, fd)
        try:
            if os.fstat(fd).st_size == 0:
                # an empty file (say, from mkstemp): make it a tree in place
                _btree.create_file(str(self.path), page_size or 4096)
            self._t = _btree.Tree(str(self.path), page_size or 0, cache_bytes, sync, _simulate_fs)
        except BaseException:
            self._unlock()
            raise
        self.page_size: int = self._t.page_size
        self.max_key_size: int = self._t.max_key
        # The hot read path straight into Cython, without a Python frame.
        self.get = self._t.lookup  # type: ignore[method-assign]

    def _create(self, page_size: int) -> None:
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.creating")
        _btree.create_file(str(tmp), page_size)
        os.replace(tmp, self.path)
        fsync_directory(self.path.parent)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self)} keys"
        return f"BTree({str(self.path)!r}, {state})"

    def _live(self) -> _btree.Tree:
        if self._closed:
            raise Unavailable(f"{self.path}: the B-tree is closed")
        return self._t

    def _write_guard(self, what: str) -> None:
        self._live()
        if self._owner == threading.get_ident():
            raise Conflict(
                f"cannot {what}: this thread has a transaction open on {self.path}; "
                "write through the transaction"
            )

    # ------------------------------------------------------------ writes

    def transaction(self) -> Transaction:
        """A write transaction: ``with tree.transaction() as tx: ...``."""
        self._live()
        return Transaction(self)

    def _one(self, key: BytesLike, value: BytesLike | object) -> bool:
        self._write_guard("write")
        t = self._t
        t.begin()
        try:
            existed = True
            if value is _DELETE:
                existed = bool(t.delete(key))
            else:
                t.put(key, value)
        except BaseException:
            t.abort()
            raise
        t.commit()
        return existed

    def __setitem__(self, key: BytesLike, value: BytesLike) -> None:
        self._one(key, value)

    def __delitem__(self, key: BytesLike) -> None:
        if not self._one(key, _DELETE):
            raise NotFound(f"key {bytes(key)[:64]!r} is not in the tree")

    def update(  # type: ignore[override]
        self,
        other: Iterable[tuple[BytesLike, BytesLike]] | dict[bytes, bytes] = (),
        /,
        **kwargs: bytes,
    ) -> None:
        """Put every pair of other (a mapping or pairs) in one transaction."""
        pairs = other.items() if isinstance(other, dict) else other
        with self.transaction() as tx:
            for key, value in pairs:
                tx.put(key, value)
            for name, value in kwargs.items():
                tx.put(name.encode(), value)

    def clear(self) -> None:
        """Delete every key in one transaction."""
        with self.transaction() as tx:
            for key in list(tx.keys()):
                tx.delete(key)

    def bulk_load(self, items: Iterable[tuple[BytesLike, BytesLike]]) -> int:
        """Fill an empty tree from pairs in strictly increasing key order.

        Builds packed pages bottom-up in one transaction (much faster than
        one put per key); returns the number of pairs. A tree that is not
        empty raises Conflict; keys out of order raise InvalidInput naming
        the position, and nothing is loaded.
        """
        self._write_guard("bulk load")
        t = self._t
        t.begin()
        n = 0
        try:
            if t.stats(True)["keys"]:
                raise Conflict(f"bulk_load needs an empty tree; {self.path} has keys")
            for key, value in items:
                try:
                    t.bulk_add(key, value)
                except InvalidInput as exc:
                    raise InvalidInput(f"bulk_load item {n}: {exc}") from None
                n += 1
        except BaseException:
            t.abort()
            raise
        t.commit()
        return n

    # ------------------------------------------------------------ inspection

    def stats(self) -> BTreeStats:
        """Keys, depth and pages of the last commit, from the meta page."""
        return BTreeStats._from(self._live().stats(False))

    def check(self) -> BTreeStats:
        """Verify every page of the last commit; raises Corruption on a fault.

        Checks page checksums and numbers, key order within and across
        pages against the separators, equal leaf depth, overflow chains, the
        free list, the key count, and that every page of the file is used
        exactly once (tree, overflow, free list or free).
        """
        return BTreeStats._from(self._live().check())

    # ------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the file (idempotent). An open transaction of this thread is aborted."""
        if self._closed:
            return
        try:
            if self._owner == threading.get_ident():
                self._t.abort()
                self._owner = 0
        finally:
            self._closed = True
            try:
                self._t.close()
            finally:
                self._unlock()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------ test hooks

    def _power_loss(self, seed: int) -> None:
        """Test hook (``_simulate_fs=True``): lose power now."""
        self._t.simulate_power_loss(seed)

    def _arm_power_loss(self, nth_sync: int, seed: int) -> None:
        """Test hook (``_simulate_fs=True``): lose power at the nth next fdatasync."""
        self._t.arm_power_loss(nth_sync, seed)


def check_btree(path: str | os.PathLike[str]) -> BTreeStats:
    """Open the tree at path (which must exist), check every page, close."""
    with BTree(path, page_size=None, create=False, cache_bytes=4 << 20) as tree:
        return tree.check()
