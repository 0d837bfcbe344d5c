"""``trusswork storage btree-check``, ``btree-stats``, ``btree-dump``: reports, exit codes, errors.

The damage tests rely on the on-disk format (the top of ``csrc/btree/btree.c``):
pages 0 and 1 are meta pages, every other page has its type at byte 4
(1 leaf, 2 branch, 3 overflow, 4 free list) and a CRC32C over the rest.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import assert_one_error_line
from trusswork.cli import main
from trusswork.storage import BTree

PAGE = 4096
LEAF, BRANCH, OVERFLOW = 1, 2, 3
KEYS = 3000
BIG = b"big-value"
BIG_VALUE = bytes(range(256)) * 40  # 10 240 bytes: stored in overflow pages


def key(n: int) -> bytes:
    return b"key-%05d" % n


def value(n: int) -> bytes:
    return b"value %d " % n * 3


def make_tree(path: Path, *, page_size: int = PAGE) -> Path:
    """KEYS small pairs and one big value, written in one transaction: no free pages."""
    with BTree(path, page_size=page_size, sync=False) as tree, tree.transaction() as tx:
        for n in range(KEYS):
            tx[key(n)] = value(n)
        tx[BIG] = BIG_VALUE
    return path


def page_types(path: Path, page_size: int = PAGE) -> list[int]:
    """The type byte of every page after the two meta pages."""
    data = path.read_bytes()
    return [data[offset + 4] for offset in range(2 * page_size, len(data), page_size)]


def flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as file:
        file.seek(offset)
        byte = file.read(1)[0]
        file.seek(offset)
        file.write(bytes([byte ^ 0xFF]))


def storage(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["storage", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ---------------------------------------------------------------- btree-check


def test_btree_check_on_a_healthy_tree_exits_0_with_the_tree_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = make_tree(tmp_path / "tree.bt")
    types = page_types(tree)
    pages = tree.stat().st_size // PAGE
    leaves, branches, overflow = (types.count(kind) for kind in (LEAF, BRANCH, OVERFLOW))
    assert leaves > 1 and branches == 1 and overflow == 3  # depth 2; 10 KiB in 4 KiB pages
    code, out, err = storage(capsys, "btree-check", str(tree))
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"B+tree {tree}",
        f"  keys:        {KEYS + 1}",
        "  depth:       2",
        "  page size:   4096 B",
        f"  pages:       {pages} "
        f"(2 meta, 1 branch, {leaves} leaf, 3 overflow, 0 free-list, 0 free)",
        "  transaction: 1 (the last commit)",
        "  status:      ok, every page checked",
    ]


def test_btree_check_counts_free_pages_after_deletions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = make_tree(tmp_path / "tree.bt")
    with BTree(tree, sync=False) as opened, opened.transaction() as tx:
        for n in range(0, KEYS, 2):
            del tx[key(n)]
        del tx[BIG]
    code, out, _ = storage(capsys, "btree-check", "--json", str(tree))
    assert code == 0
    report = json.loads(out)
    assert (report["keys"], report["txn_id"]) == (KEYS // 2, 2)
    assert report["free_pages"] >= 3  # at least the big value's overflow pages
    assert report["freelist_pages"] >= 1
    # Every page of the file is accounted for exactly once.
    kinds = ("leaf_pages", "branch_pages", "overflow_pages", "freelist_pages", "free_pages")
    assert 2 + sum(report[kind] for kind in kinds) == report["pages"]
    assert report["pages"] == tree.stat().st_size // PAGE


@pytest.mark.parametrize("where", ["page 2", "a leaf page"])
def test_btree_check_names_the_damaged_page_and_exits_1(
    where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = make_tree(tmp_path / "tree.bt")
    types = page_types(tree)
    page = 2 if where == "page 2" else 2 + types.index(LEAF, len(types) // 2)
    flip(tree, page * PAGE + PAGE // 2)
    code, out, err = storage(capsys, "btree-check", str(tree))
    assert (code, err) == (1, "")
    lines = out.splitlines()
    assert lines[0] == f"B+tree {tree}"
    assert lines[1] == f"  problem:     page {page} (byte offset {page * PAGE}): checksum mismatch"
    assert "no repair" in out


def test_btree_check_json_shapes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tree = make_tree(tmp_path / "tree.bt")
    code, out, _ = storage(capsys, "btree-check", "--json", str(tree))
    assert code == 0
    healthy = json.loads(out)
    assert healthy["ok"] is True
    assert healthy["path"] == str(tree)
    assert (healthy["keys"], healthy["depth"], healthy["page_size"]) == (KEYS + 1, 2, PAGE)
    assert (healthy["overflow_pages"], healthy["free_pages"], healthy["txn_id"]) == (3, 0, 1)

    flip(tree, 2 * PAGE + 100)
    code, out, _ = storage(capsys, "btree-check", "--json", str(tree))
    assert code == 1
    assert json.loads(out) == {
        "path": str(tree),
        "ok": False,
        "problem": f"page 2 (byte offset {2 * PAGE}): checksum mismatch",
        "page": 2,
        "byte_offset": 2 * PAGE,
    }


def test_btree_check_on_a_file_that_is_not_a_tree_reports_it_without_a_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.bt"
    junk.write_bytes(b"not a tree " * 1000)
    code, out, _ = storage(capsys, "btree-check", "--json", str(junk))
    assert code == 1
    report = json.loads(out)
    assert (report["ok"], report["page"], report["byte_offset"]) == (False, None, None)
    assert "not a trusswork B-tree file" in report["problem"]
    assert junk.read_bytes() == b"not a tree " * 1000  # checking never writes


# ---------------------------------------------------------------- btree-stats


def test_btree_stats_reads_the_meta_page_of_a_tree_with_its_own_page_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = make_tree(tmp_path / "tree.bt", page_size=1024)
    pages = tree.stat().st_size // 1024
    code, out, err = storage(capsys, "btree-stats", str(tree))
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"B+tree {tree}",
        f"  keys:        {KEYS + 1}",
        "  depth:       3",
        "  page size:   1024 B",
        f"  pages:       {pages} (0 free)",
        "  transaction: 1 (the last commit)",
    ]
    code, out, _ = storage(capsys, "btree-stats", "--json", str(tree))
    assert code == 0
    assert json.loads(out) == {
        "path": str(tree),
        "keys": KEYS + 1,
        "depth": 3,
        "pages": pages,
        "free_pages": 0,
        "page_size": 1024,
        "txn_id": 1,
    }


def test_btree_stats_reads_only_the_meta_page_so_a_damaged_leaf_goes_unnoticed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = make_tree(tmp_path / "tree.bt")
    leaf = 2 + page_types(tree).index(LEAF)
    flip(tree, leaf * PAGE + PAGE // 2)
    code, out, _ = storage(capsys, "btree-stats", str(tree))
    assert code == 0
    assert f"keys:        {KEYS + 1}" in out
    code, _, _ = storage(capsys, "btree-check", str(tree))
    assert code == 1


# ---------------------------------------------------------------- btree-dump


def dumped_keys(out: str) -> list[str]:
    return [line.split("\t")[0] for line in out.splitlines()]


def test_btree_dump_prints_key_value_length_and_the_start_of_each_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = make_tree(tmp_path / "tree.bt")
    code, out, err = storage(capsys, "btree-dump", str(tree))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert len(lines) == KEYS + 1
    # Bytewise order: b"big-value" sorts before b"key-...".
    assert lines[0] == f"{BIG!r}\t{len(BIG_VALUE)}\t{BIG_VALUE[:60]!r}"
    assert lines[1:3] == [f"{key(n)!r}\t{len(value(n))}\t{value(n)[:60]!r}" for n in (0, 1)]
    assert lines[-1].startswith(f"{key(KEYS - 1)!r}\t")


def test_btree_dump_start_stop_limit_and_reverse_select_pairs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = make_tree(tmp_path / "tree.bt")
    code, out, _ = storage(
        capsys, "btree-dump", str(tree), "--start", "key-00010", "--stop", "key-00014"
    )
    assert code == 0
    assert dumped_keys(out) == [repr(key(n)) for n in range(10, 14)]  # stop is excluded
    code, out, _ = storage(capsys, "btree-dump", str(tree), "--start", "key-00010", "--limit", "2")
    assert dumped_keys(out) == [repr(key(10)), repr(key(11))]
    code, out, _ = storage(
        capsys, "btree-dump", str(tree), "--start", "key-00010", "--stop", "key-00014", "--reverse"
    )
    assert dumped_keys(out) == [repr(key(n)) for n in (13, 12, 11, 10)]
    code, out, _ = storage(capsys, "btree-dump", str(tree), "--reverse", "--limit", "1")
    assert dumped_keys(out) == [repr(key(KEYS - 1))]
    code, out, _ = storage(capsys, "btree-dump", str(tree), "--start", "zzz")
    assert (code, out) == (0, "")


def test_btree_dump_takes_hex_keys_for_bytes_that_are_not_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "binary.bt"
    with BTree(path, sync=False) as tree:
        for n in range(8):
            tree[bytes([0xF0, n])] = b"x" * n
        tree[b"hex:literal"] = b"a text key that starts with hex:"
    code, out, _ = storage(
        capsys, "btree-dump", str(path), "--start", "hex:f003", "--stop", "hex:F006"
    )
    assert code == 0
    assert out.splitlines() == [f"{bytes([0xF0, n])!r}\t{n}\t{b'x' * n!r}" for n in (3, 4, 5)]
    # A text key spelled "hex:..." is given as hex too: "hex:" is 6865783a.
    code, out, _ = storage(
        capsys, "btree-dump", str(path), "--start", "hex:6865783a", "--limit", "1"
    )
    assert dumped_keys(out) == [repr(b"hex:literal")]


def test_btree_dump_stops_at_a_damaged_leaf_with_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = make_tree(tmp_path / "tree.bt")
    types = page_types(tree)
    leaf = 2 + types.index(LEAF, len(types) // 2)
    flip(tree, leaf * PAGE + PAGE // 2)
    code, out, err = storage(capsys, "btree-dump", str(tree))
    assert code == 1
    printed = dumped_keys(out)
    assert 0 < len(printed) < KEYS  # the pairs before the damaged leaf
    assert printed[:2] == [repr(BIG), repr(key(0))]
    assert_one_error_line(err, str(tree), f"page {leaf} (byte offset {leaf * PAGE})")


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("action", ["btree-check", "btree-stats", "btree-dump"])
def test_a_missing_tree_file_is_a_one_line_error_and_is_not_created(
    action: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere.bt"
    code, out, err = storage(capsys, action, str(missing))
    assert code == 1
    assert out == ""
    assert_one_error_line(err, str(missing), "no such B-tree file")
    assert not missing.exists()


def test_a_tree_open_elsewhere_is_a_one_line_conflict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = make_tree(tmp_path / "tree.bt")
    with BTree(tree):
        code, out, err = storage(capsys, "btree-check", str(tree))
    assert (code, out) == (1, "")
    assert_one_error_line(err, str(tree), "open in another process")


@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        (["btree-check"], ["path"]),
        (["btree-dump", "x", "--start", "hex:zz"], ["--start", "not hexadecimal"]),
        (["btree-dump", "x", "--stop", "hex:abc"], ["--stop", "not hexadecimal"]),
        (["btree-dump", "x", "--limit", "0"], ["--limit", "1 or more"]),
        (["btree-stats", "x", "--start", "a"], ["unrecognized", "--start"]),
    ],
)
def test_usage_mistakes_exit_2_with_one_line(
    argv: list[str], fragments: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = storage(capsys, *argv)
    assert code == 2
    assert out == ""
    assert_one_error_line(err, *fragments)


def test_btree_check_opens_the_other_meta_page_of_a_small_page_tree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = make_tree(tmp_path / "tree.bt", page_size=1024)
    flip(tree, 0)  # the magic of meta page 0; meta page 1 is intact
    with BTree(tree, page_size=1024, create=False) as opened:
        assert opened.check().keys == KEYS + 1  # opening with the right page size works
    code, out, err = storage(capsys, "btree-check", str(tree))
    assert (code, err) == (0, "")
    assert "page size:   1024 B" in out
