"""Damaged B-tree files: every fault is Corruption naming the page, never wrong data.

A tree is built once (4 KiB pages, a few thousand keys, some overflow
values, a free list from deletions), then copies of its file are damaged:
a byte changed in each page in turn, either meta page or both, the file cut
at page boundaries and in the middle of pages, random bytes over random
pages, and pages whose checksum was recomputed after their content was
scrambled (so the structural checks, not the checksum, must catch them).
Opening, reading and ``check`` on a damaged copy may only raise
:class:`Corruption`; whatever they return must be the tree as of its last
commit or, when the newest meta page is damaged, the commit before it.
Scrambled pages with valid checksums run in a child process too, so an
interpreter crash (a read out of bounds in C) fails the test instead of
ending the run.

The format (from ``csrc/btree/btree.c``): pages 0 and 1 are meta pages,
transaction T writes meta page T % 2, a meta page's CRC32C covers bytes
0..124 and sits at 124; every other page starts with a CRC32C of bytes
4..P, its type at byte 4 (1 leaf, 2 branch, 3 overflow, 4 free list) and
its own number at byte 8.
"""

from __future__ import annotations

import random
import re
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import examples
from trusswork.core.checksum import crc32c
from trusswork.core.errors import Corruption
from trusswork.storage import BTree, check_btree

PAGE = 4096
META_CRC_AT = 124
TYPE_NAMES = {1: "leaf", 2: "branch", 3: "overflow", 4: "free-list"}


@dataclass(frozen=True)
class Built:
    """A closed tree file and what it must read back as."""

    data: bytes  # the file's bytes
    last: dict[bytes, bytes]  # the state of the last commit
    previous: dict[bytes, bytes]  # the state of the commit before it
    txn: int  # the last commit's transaction id
    pages: int
    free_pages: int


def build(path: Path) -> Built:
    rng = random.Random(2024)
    state: dict[bytes, bytes] = {}
    with BTree(path, page_size=PAGE, sync=False) as tree:
        for round_ in range(6):
            with tree.transaction() as tx:
                for _ in range(600):
                    key = b"key-%06d" % rng.randrange(10_000)
                    tx[key] = state[key] = rng.randbytes(rng.randrange(0, 100))
                for n in range(2):
                    key = b"big-%d-%d" % (round_, n)
                    tx[key] = state[key] = rng.randbytes(rng.randrange(5000, 20_000))
                for key in rng.sample(sorted(state), 40):  # deletions leave free pages
                    del tx[key]
                    del state[key]
        previous = dict(state)
        tree[b"last"] = state[b"last"] = b"the last commit"
        stats = tree.check()
    return Built(
        data=path.read_bytes(),
        last=state,
        previous=previous,
        txn=stats.txn_id,
        pages=stats.pages,
        free_pages=stats.free_pages,
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build(tmp_path_factory.mktemp("btree-damage") / "clean.bt")


def page_type(data: bytes, page: int) -> str:
    if page < 2:
        return "meta"
    return TYPE_NAMES.get(data[page * PAGE + 4], "?")


def names_page(message: str, page: int) -> bool:
    return re.search(rf"\bpage {page}\b", message) is not None


@dataclass
class Outcome:
    """What opening, reading and checking a damaged file gave."""

    error: str | None  # the Corruption message, if one was raised
    where: str  # "open", "read" or "check" (where the Corruption came from), or "ok"
    txn: int | None  # the transaction the tree opened at


def read_back(path: Path, built: Built, *, exact: bool = True) -> Outcome:
    """Open, read everything, check: only Corruption may come out of any of it.

    With ``exact``, everything read must match the state of the commit the tree
    opened at (the last one or the one before); without it (pages scrambled
    behind valid checksums) reads just must not fail in any other way.
    """
    try:
        tree = BTree(path, page_size=PAGE, sync=False, create=False)
    except Corruption as exc:
        return Outcome(str(exc), "open", None)
    with tree:
        txn = tree.stats().txn_id
        if exact:
            assert txn in (built.txn, built.txn - 1), f"opened at unknown transaction {txn}"
        want = built.last if txn == built.txn else built.previous
        ordered = sorted(want.items())
        try:
            seen = []
            for item in tree.items():
                seen.append(item)
            if exact:
                assert seen == ordered, "a damaged tree returned wrong data"
                assert len(tree) == len(want)
            seen = list(tree.items(reverse=True))
            if exact:
                assert seen == ordered[::-1], "a damaged tree returned wrong data backwards"
            for key in [*list(want)[::37], b"last", b"big-3-1", b"missing"]:
                got = tree.get(key)
                if exact:
                    assert got == want.get(key), (
                        f"a damaged tree returned a wrong value for {key!r}"
                    )
        except Corruption as exc:
            if exact:  # whatever came before the fault was right
                assert seen == ordered[: len(seen)] or seen == ordered[::-1][: len(seen)]
            return Outcome(str(exc), "read", txn)
        try:
            tree.check()
        except Corruption as exc:
            return Outcome(str(exc), "check", txn)
    return Outcome(None, "ok", txn)


def damaged_copy(built: Built, path: Path, patches: list[tuple[int, bytes]]) -> Path:
    data = bytearray(built.data)
    for offset, replacement in patches:
        data[offset : offset + len(replacement)] = replacement
    path.write_bytes(bytes(data))
    return path


def flip(built: Built, offset: int) -> tuple[int, bytes]:
    return offset, bytes([built.data[offset] ^ 0x5A])


# ---------------------------------------------------------------- the clean file


def test_the_clean_file_reads_back_and_has_every_kind_of_page(built: Built, tmp_path: Path) -> None:
    path = damaged_copy(built, tmp_path / "tree.bt", [])
    assert read_back(path, built) == Outcome(None, "ok", built.txn)
    kinds = {page_type(built.data, page) for page in range(built.pages)}
    assert {"meta", "leaf", "branch", "overflow", "free-list"} <= kinds
    assert built.free_pages > 0
    # The format this file describes: every non-meta page carries its checksum and number.
    for page in range(2, built.pages):
        content = built.data[page * PAGE : (page + 1) * PAGE]
        assert struct.unpack_from("<I", content)[0] == crc32c(content[4:]), page
    meta = built.data[(built.txn % 2) * PAGE :][:PAGE]
    assert meta[:8] == b"TWBTREE1" and struct.unpack_from("<Q", meta, 16)[0] == built.txn


# ---------------------------------------------------------------- one byte in one page


def test_a_changed_byte_in_any_page_is_corruption_naming_it_or_harmless(
    built: Built, tmp_path: Path
) -> None:
    rng = random.Random(9)
    detected: dict[str, int] = {}
    harmless: list[int] = []
    for page in range(2, built.pages):
        offset = page * PAGE + rng.randrange(PAGE)
        path = damaged_copy(built, tmp_path / "tree.bt", [flip(built, offset)])
        outcome = read_back(path, built)
        where = f"page {page} ({page_type(built.data, page)}), byte {offset}: {outcome}"
        if outcome.error is None:
            harmless.append(page)
            assert outcome.txn == built.txn, where
            continue
        assert names_page(outcome.error, page), where
        assert "tree.bt" in outcome.error, where
        kind = page_type(built.data, page)
        detected[kind] = detected.get(kind, 0) + 1
    # Only free pages (whose content nothing reads) may take damage unnoticed.
    assert len(harmless) <= built.free_pages, harmless
    for kind in ("leaf", "branch", "overflow", "free-list"):
        assert detected.get(kind, 0) > 0, (kind, detected)


@pytest.mark.parametrize("kind", ["leaf", "branch", "overflow", "free-list"])
def test_check_names_a_damaged_page_of_every_kind(built: Built, tmp_path: Path, kind: str) -> None:
    live = [page for page in range(2, built.pages) if page_type(built.data, page) == kind]
    failures = 0
    for page in live:
        path = damaged_copy(built, tmp_path / "tree.bt", [flip(built, page * PAGE + PAGE - 3)])
        outcome = read_back(path, built)
        if outcome.error is not None:
            assert names_page(outcome.error, page), outcome
            failures += 1
            if outcome.where != "open":
                with pytest.raises(Corruption, match=rf"\bpage {page}\b"):
                    check_btree(path)
    # Stale copies of a kind may sit in free pages; the live ones must all be caught.
    assert failures >= len(live) - built.free_pages and failures > 0


def test_one_damaged_meta_page_opens_the_other(built: Built, tmp_path: Path) -> None:
    newest, older = built.txn % 2, 1 - built.txn % 2
    for offset in (0, 3, 12, 16, 20, 40, 64, 100, META_CRC_AT, META_CRC_AT + 3):
        path = damaged_copy(built, tmp_path / "tree.bt", [flip(built, newest * PAGE + offset)])
        assert read_back(path, built) == Outcome(None, "ok", built.txn - 1), offset
        path = damaged_copy(built, tmp_path / "tree.bt", [flip(built, older * PAGE + offset)])
        assert read_back(path, built) == Outcome(None, "ok", built.txn), offset


def test_opening_the_previous_commit_after_meta_damage_then_writing_works(
    built: Built, tmp_path: Path
) -> None:
    newest = built.txn % 2
    path = damaged_copy(built, tmp_path / "tree.bt", [flip(built, newest * PAGE + 20)])
    with BTree(path, page_size=PAGE) as tree:
        assert tree.stats().txn_id == built.txn - 1
        tree[b"after"] = b"repair"
        tree.check()
    with BTree(path, page_size=PAGE) as tree:
        assert dict(tree.items()) == built.previous | {b"after": b"repair"}


def test_both_meta_pages_damaged_is_corruption(built: Built, tmp_path: Path) -> None:
    for offset in (0, 20, META_CRC_AT):
        path = damaged_copy(
            built, tmp_path / "tree.bt", [flip(built, offset), flip(built, PAGE + offset)]
        )
        with pytest.raises(Corruption, match=r"tree\.bt"):
            BTree(path, page_size=PAGE)
        with pytest.raises(Corruption):
            check_btree(path)


# ---------------------------------------------------------------- cut files


def test_a_cut_file_is_corruption_or_an_intact_commit(built: Built, tmp_path: Path) -> None:
    rng = random.Random(4)
    cuts = [page * PAGE for page in range(1, built.pages + 1)]
    cuts += [rng.randrange(len(built.data)) for _ in range(40)] + [1, 127, PAGE + 100]
    intact = 0
    for cut in cuts:
        path = tmp_path / "tree.bt"
        path.write_bytes(built.data[:cut])
        outcome = read_back(path, built)
        if outcome.error is None:
            intact += 1
        elif cut >= 2 * PAGE:
            assert re.search(r"\bpage \d+\b", outcome.error), (cut, outcome)
    # Cutting off only trailing free pages may leave the tree intact; most cuts may not.
    assert intact < len(cuts)


def test_a_file_cut_to_nothing_opens_as_an_empty_tree(built: Built, tmp_path: Path) -> None:
    # An empty file is what mkstemp (or a crash inside file creation) leaves:
    # the tree makes it an empty tree rather than calling it damaged.
    path = tmp_path / "tree.bt"
    path.write_bytes(b"")
    with BTree(path, page_size=PAGE, create=False) as tree:
        assert len(tree) == 0 and list(tree.items()) == []
        tree.check()


# ---------------------------------------------------------------- random damage


@st.composite
def random_damage(draw: st.DrawFn, pages: int) -> list[tuple[int, bytes]]:
    """Random bytes over random places of random pages."""
    patches = []
    for _ in range(draw(st.integers(1, 4))):
        page = draw(st.integers(0, pages - 1))
        start = draw(st.integers(0, PAGE - 1))
        size = draw(st.integers(1, min(64, PAGE - start)))
        patches.append((page * PAGE + start, draw(st.binary(min_size=size, max_size=size))))
    return patches


DAMAGE_SETTINGS = settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@DAMAGE_SETTINGS
@given(data=st.data())
def test_random_bytes_over_random_pages_are_corruption_or_correct(
    built: Built, data: st.DataObject
) -> None:
    patches = data.draw(random_damage(built.pages))
    with tempfile.TemporaryDirectory() as temporary:
        path = damaged_copy(built, Path(temporary) / "tree.bt", patches)
        read_back(path, built)


@DAMAGE_SETTINGS
@given(
    content=st.one_of(
        st.binary(min_size=1, max_size=3 * 512), st.binary(min_size=2 * PAGE, max_size=3 * PAGE)
    )
)
def test_a_file_of_random_bytes_is_corruption(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as temporary:
        path = Path(temporary) / "tree.bt"
        path.write_bytes(content)
        with pytest.raises(Corruption):
            BTree(path, page_size=PAGE, create=False)
        assert path.read_bytes() == content


def reseal(page: bytearray, number: int) -> None:
    """Recompute a page's checksum in place, as if the page had been written so."""
    if number < 2:
        struct.pack_into("<I", page, META_CRC_AT, crc32c(bytes(page[:META_CRC_AT])))
    else:
        struct.pack_into("<I", page, 0, crc32c(bytes(page[4:])))


def scrambled(built: Built, rng: random.Random) -> bytes:
    """The clean file with a few pages scrambled behind valid checksums.

    The scrambling aims at what a parser trusts: counts, offsets, lengths,
    page numbers and links, set to small, large or boundary values.
    """
    data = bytearray(built.data)
    for _ in range(rng.randint(1, 3)):
        number = rng.randrange(built.pages)
        page = bytearray(data[number * PAGE : (number + 1) * PAGE])
        for _ in range(rng.randint(1, 6)):
            where = rng.choice(
                [rng.randrange(4, 48), rng.randrange(40, 200), rng.randrange(PAGE - 8)]
            )
            width = rng.choice([1, 2, 4, 8])
            value = rng.choice(
                [0, 1, 2, 0xFF, 0xFFFF, PAGE - 1, PAGE, PAGE + 1, built.pages, 2**31, 2**32 - 1]
            ) % (2 ** (8 * width))
            if rng.random() < 0.3:
                value = rng.randrange(2 ** (8 * width))
            page[where : where + width] = value.to_bytes(width, "little")
        reseal(page, number)
        data[number * PAGE : (number + 1) * PAGE] = page
    return bytes(data)


def scramble_campaign(built: Built, directory: Path, seed: int, rounds: int) -> int:
    """Open, read and check ``rounds`` scrambled copies; returns how many raised Corruption."""
    rng = random.Random(seed)
    caught = 0
    for _ in range(rounds):
        path = directory / "tree.bt"
        path.write_bytes(scrambled(built, rng))
        caught += read_back(path, built, exact=False).error is not None
    return caught


def test_pages_scrambled_behind_valid_checksums_are_corruption_or_readable(
    built: Built, tmp_path: Path
) -> None:
    caught = scramble_campaign(built, tmp_path, seed=1, rounds=examples(60, fuzz=2000))
    assert caught > 0, "no scrambled page was ever caught"


_SCRAMBLE_IN_CHILD = """
import sys
from pathlib import Path
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import test_btree_damage as damage
built = damage.build(Path(sys.argv[3]) / "clean.bt")
caught = damage.scramble_campaign(built, Path(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
print("caught", caught)
"""


def test_a_batch_of_scrambled_files_does_not_crash_the_interpreter(tmp_path: Path) -> None:
    here = Path(__file__).resolve().parent
    rounds = examples(200, fuzz=5000)
    command = [sys.executable, "-c", _SCRAMBLE_IN_CHILD, str(here.parent), str(here)]
    command += [str(tmp_path), "77", str(rounds)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, f"exit status {done.returncode}: {done.stderr[-3000:]}"
    assert done.stdout.startswith("caught ")


def test_a_meta_page_claiming_more_pages_than_the_file_holds_is_corruption(
    built: Built, tmp_path: Path
) -> None:
    newest = built.txn % 2
    meta = bytearray(built.data[newest * PAGE : (newest + 1) * PAGE])
    struct.pack_into("<Q", meta, 40, 2**62)  # npages
    reseal(meta, newest)
    path = damaged_copy(built, tmp_path / "tree.bt", [(newest * PAGE, bytes(meta))])
    with pytest.raises(Corruption), BTree(path, page_size=PAGE, create=False) as tree:
        tree.check()
