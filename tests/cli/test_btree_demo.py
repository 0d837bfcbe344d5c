"""The "btree" demo section: no acknowledged transaction is lost in a crash; damage is found."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helpers.demo import SectionRun as Run
from helpers.demo import number, run_section, writer_processes
from trusswork.cli import _btree_demo, main
from trusswork.storage import BTree


@pytest.fixture(scope="module")
def btree_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """``trusswork demo --quick`` with only the btree section, through the demo machinery."""
    yield run_section("btree", tmp_path_factory.mktemp("btree-demo"))


def test_btree_section_succeeds(btree_demo: Run) -> None:
    assert btree_demo.code == 0, btree_demo.stderr
    assert btree_demo.section["status"] == "ok", btree_demo.section


def test_killed_writer_lost_no_acknowledged_transaction_and_left_no_partial_one(
    btree_demo: Run,
) -> None:
    rows = btree_demo.rows
    acknowledged = number(rows["transactions acknowledged by the SIGKILLed writer"])
    found = number(rows["transactions found on reopen"])
    assert acknowledged > 0
    assert found in (acknowledged, acknowledged + 1)
    assert rows["acknowledged transactions lost"] == "0"
    assert rows["partial transactions visible"] == "0"
    assert rows[f"account total after {found:,} transfers"] == "10,000 (unchanged)"
    assert re.fullmatch(
        r"ok: [\d,]+ keys, depth \d+, [\d,]+ pages \(\d+ leaf, \d+ overflow, \d+ free\)",
        rows["check() after the crash"],
    )


def test_flipped_byte_is_named_by_page_and_refused_on_read(btree_demo: Run) -> None:
    rows = btree_demo.rows
    assert re.fullmatch(
        r"yes: page \d+ \(byte offset [\d,]+\): checksum mismatch", rows["damage found by check()"]
    )
    assert rows["reading account:00 (on that leaf)"] == "refused (Corruption)"
    page = (btree_demo.out_dir / "index.html").read_text(encoding="utf-8")
    assert (
        "<figcaption>B+tree transactions acknowledged before the SIGKILL</figcaption><svg" in page
    )


def test_trees_are_left_for_btree_check(
    btree_demo: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    base = btree_demo.out_dir / "btree"
    assert main(["storage", "btree-check", str(base / "crashed.btree")]) == 0
    out = capsys.readouterr().out
    found = btree_demo.rows["transactions found on reopen"].replace(",", "")
    # The opening state is commit 1, so transaction n is commit n + 1.
    assert f"transaction: {int(found) + 1} (the last commit)" in out
    assert main(["storage", "btree-check", str(base / "damaged.btree")]) == 1
    out = capsys.readouterr().out
    page = re.search(r"page (\d+)", btree_demo.rows["damage found by check()"])
    assert page is not None
    assert f"problem:     page {page[1]} " in out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_no_writer_process_is_left_behind(btree_demo: Run) -> None:
    assert btree_demo.section["status"] == "ok"
    assert writer_processes(b"btree_writer_main") == []


def test_a_writer_that_cannot_start_fails_the_crash_step_quickly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A "Python" that exits at once: the step must report it, not wait or hang.
    monkeypatch.setattr(sys, "executable", "/bin/false")
    with pytest.raises(RuntimeError, match="acknowledged nothing"):
        _btree_demo._crash(tmp_path / "tree.btree", run_seconds=0.1)


# ---------------------------------------------------------------- the checks themselves


def test_the_replay_is_what_the_tree_holds_after_the_same_transactions(tmp_path: Path) -> None:
    with BTree(tmp_path / "tree.btree", sync=False) as tree:
        with tree.transaction() as tx:
            for key, value in _btree_demo._opening_state().items():
                tx[key] = value
        for txn in range(1, 31):
            with tree.transaction() as tx:
                _btree_demo._apply(txn, tx)
        assert dict(tree.items()) == _btree_demo._replay(30)
        assert tree.stats().keys == _btree_demo.ACCOUNTS + 1 + 10 * 8  # the last 10 kept
        assert tree.check().overflow_pages > 0


def fake_writer(
    transactions: int, acknowledged: int, *, partial: bool = False
) -> Callable[[Path, float], tuple[list[tuple[int, float]], float]]:
    """A stand-in for the child: commits ``transactions``, claims ``acknowledged``."""

    def run(path: Path, run_seconds: float) -> tuple[list[tuple[int, float]], float]:
        with BTree(path, sync=False) as tree:
            for txn in range(1, transactions + 1):
                with tree.transaction() as tx:
                    _btree_demo._apply(txn, tx)
            if partial:  # half of the next transaction, as a broken engine might leave it
                tree[_btree_demo._txn_key(transactions + 1, 0)] = b"half"
        return [(n, float(n)) for n in range(1, acknowledged + 1)], float(acknowledged)

    return run


@pytest.mark.parametrize(
    ("writer", "message"),
    [
        (fake_writer(5, 7), "2 lost in the crash"),
        (fake_writer(5, 3), "more than one past the last acknowledged"),
        (fake_writer(5, 5, partial=True), "a partial transaction is visible"),
    ],
    ids=["lost", "too-many", "partial"],
)
def test_the_crash_step_fails_when_the_tree_is_not_the_acknowledged_state(
    writer: Callable[[Path, float], tuple[list[tuple[int, float]], float]],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_btree_demo, "_run_writer", writer)
    with pytest.raises(AssertionError, match=message):
        _btree_demo._crash(tmp_path / "tree.btree", run_seconds=0.0)
