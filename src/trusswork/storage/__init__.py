"""Shared storage engines: the write-ahead log and the B+tree.

Systems that persist data build on these rather than writing their own:
the event store, task queue, Raft log, SQL engine and time-series store.
Each engine's hot path is C (``csrc/<engine>``) behind a thin Cython module.
"""

from trusswork.storage.btree import BTree as BTree
from trusswork.storage.btree import BTreeStats as BTreeStats
from trusswork.storage.btree import Transaction as Transaction
from trusswork.storage.btree import check_btree as check_btree
from trusswork.storage.wal import CheckReport as CheckReport
from trusswork.storage.wal import Recovery as Recovery
from trusswork.storage.wal import WriteAheadLog as WriteAheadLog
from trusswork.storage.wal import check_log as check_log
from trusswork.storage.wal import read_log as read_log

__all__ = [
    "BTree",
    "BTreeStats",
    "CheckReport",
    "Recovery",
    "Transaction",
    "WriteAheadLog",
    "check_btree",
    "check_log",
    "read_log",
]
