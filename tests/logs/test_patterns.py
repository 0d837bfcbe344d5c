"""Log template mining: masks, template growth, merges, odd input, Loghub grouping accuracy."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import examples, shared_path
from trusswork.core.errors import InvalidInput, NotFound
from trusswork.logs._patterns import (
    VARIANTS,
    PatternMiner,
    Template,
    grouping_accuracy,
    patterns,
)

#: Number of systems in the Loghub 2k collection.
LOGHUB_SYSTEMS = 16

#: Drain's published average grouping accuracy over the 16 Loghub 2k samples.
DRAIN_REFERENCE = 0.865


# -- masks -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "template"),
    [
        ("took 35 ms", "took <*>"),
        ("took 35ms", "took <*>"),
        ("got 9 bytes (18.4 KB) in <1 sec", "got <*> bytes (<*>) in <*>"),
        ("peer 10.1.2.3 closed", "peer <*> closed"),
        ("peer 10.1.2.3:8080 closed", "peer <*>:<*> closed"),
        ("addr fe80::1ff:fe23:4567:890a up", "addr <*> up"),
        ("mac 00:1A:2b:3C:4d:5E seen", "mac <*> seen"),
        ("req 123e4567-e89b-12d3-a456-426614174000 done", "req <*> done"),
        ("ptr 0xdeadBEEF freed", "ptr <*> freed"),
        ("hash deadbeefdeadbeefcafe ok", "hash <*> ok"),
        ("open /var/log/syslog failed", "open <*> failed"),
        ("get https://example.com/a?b=c ok", "get <*> ok"),
        ("at 12:34:56.789 start", "at <*> start"),
        ("on 2024-01-31 start", "on <*> start"),
        ("on Sun Jul 24 start", "on <*> <*> <*> start"),
        ("block blk_-123456 added", "block <*> added"),
        ("size=42, free=7 KB", "size=<*>, free=<*>"),
        ("hosts 10.0.0.1,10.0.0.2,10.0.0.3 joined", "hosts <*> joined"),
    ],
)
def test_variable_parts_are_masked(line: str, template: str) -> None:
    assert patterns([line]) == [template]


def test_constant_words_are_kept_with_their_spacing() -> None:
    line = 'session opened: user "root" (uid=0)  by sshd'
    assert patterns([line]) == ['session opened: user "root" (uid=<*>) by sshd']


# -- growth, merges, ids -----------------------------------------------------


def test_template_grows_and_earlier_lines_get_the_final_text() -> None:
    lines = [
        "Starting service svc_alpha on node",
        "Starting service svc_beta on node",
        "Starting service gamma-x on node",
    ]
    assert patterns(lines) == ["Starting service <*> on node"] * 3


def test_different_plain_words_stay_apart() -> None:
    lines = ["VM started (lifecycle event)", "VM stopped (lifecycle event)"]
    assert patterns(lines) == lines


def test_many_variants_of_one_word_merge() -> None:
    users = ["root", "admin", "guest", "alice", "bob", "carol"][:VARIANTS]
    lines = [f"Failed password for {user} from 10.0.0.1" for user in users]
    result = patterns(lines)
    assert result == ["Failed password for <*> from <*>"] * VARIANTS
    fewer = patterns(lines[: VARIANTS - 1])
    assert len(set(fewer)) == VARIANTS - 1


def test_values_of_varying_length_join_one_template() -> None:
    miner = PatternMiner()
    short_id, _ = miner.add("sent 512 bytes, lifetime 00:01 total")
    long_id, _ = miner.add("sent 4096 bytes (4.0 KB), lifetime 00:02 total")
    assert miner.template_id(short_id) == miner.template_id(long_id)
    assert miner.template(long_id) == "sent <*> bytes <*>, lifetime <*> total"
    assert miner.templates() == [Template(short_id, "sent <*> bytes <*>, lifetime <*> total", 2)]


def test_extra_words_keep_templates_apart() -> None:
    lines = [
        "ddr error detected and corrected",
        "ddr error detected and corrected over 12 retries",
        "ddr error user 12 detected and corrected",
    ]
    assert patterns(lines) == [
        "ddr error detected and corrected",
        "ddr error detected and corrected over <*> retries",
        "ddr error user <*> detected and corrected",
    ]


def test_dissimilar_lines_of_equal_length_stay_apart() -> None:
    lines = ["disk full on volume", "cache miss for key"]
    assert patterns(lines) == lines


def test_miner_counts_ids_and_merges() -> None:
    miner = PatternMiner()
    first_id, first_text = miner.add("job 1 finished in 3 s")
    assert first_text == "job <*> finished in <*> s"
    assert miner.add("job 2 finished in 5 s") == (first_id, first_text)
    other_id, _ = miner.add("connection reset by peer")
    assert other_id != first_id
    assert miner.add(b"job 9 finished in 1 s\n") == (first_id, first_text)
    assert miner.templates() == [
        Template(first_id, first_text, 3),
        Template(other_id, "connection reset by peer", 1),
    ]
    assert miner.counts() == {first_text: 3, "connection reset by peer": 1}
    assert len(miner) == 2
    assert miner.template(other_id) == "connection reset by peer"
    with pytest.raises(NotFound):
        miner.template(999)


def test_merged_ids_are_followed() -> None:
    miner = PatternMiner()
    ids = [
        miner.add(f"Accepted key for {u} via ssh")[0] for u in ("ann", "ben", "cid", "dan", "eve")
    ]
    final = miner.template_id(ids[-1])
    assert {miner.template_id(i) for i in ids} == {final}
    assert miner.template(ids[0]) == "Accepted key for <*> via ssh"
    assert [t.count for t in miner.templates()] == [5]


def test_add_returns_the_same_as_patterns_for_a_stable_template() -> None:
    lines = [f"GET /item/{i} 200 {i * 3} bytes" for i in range(20)]
    miner = PatternMiner()
    texts = {miner.add(line)[1] for line in lines}
    assert texts == {"GET <*> <*> <*> bytes"}
    assert set(patterns(lines)) == texts


def test_bad_arguments_raise_typed_errors() -> None:
    with pytest.raises(InvalidInput):
        PatternMiner(similarity=0.0)
    with pytest.raises(InvalidInput):
        PatternMiner(similarity=1.5)
    with pytest.raises(InvalidInput):
        PatternMiner().add(42)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        grouping_accuracy([1, 2], [1])


# -- odd input -----------------------------------------------------------------


def test_odd_input_never_crashes() -> None:
    odd: list[str | bytes] = [
        "",
        "\n",
        "   ",
        "x" * 200_000,
        " ".join(["word"] * 5_000),
        "\x00\x01\x02\xff",
        "bad \udcff\udcfe surrogates",
        b"\xff\xfe\x00 raw bytes \x80",
        "<*> <*><*> already masked",
        '==::,,;;""',
        "\u2028\u00a0 unicode spaces \u3000",
    ]
    result = patterns(odd)
    assert len(result) == len(odd)
    assert result[0] == result[1] == result[2] == ""
    assert all(isinstance(text, str) for text in result)


@settings(max_examples=examples(150), deadline=None)
@given(st.lists(st.text(max_size=60) | st.binary(max_size=60), max_size=30))
def test_any_input_yields_one_template_per_line(lines: list[str | bytes]) -> None:
    result = patterns(lines)
    assert len(result) == len(lines)
    again = patterns(lines)
    assert again == result  # deterministic
    miner = PatternMiner()
    for line in lines:
        miner.add(line)
    assert sum(t.count for t in miner.templates()) == len(lines)


_LOGLIKE_TOKENS = st.sampled_from(
    ["open", "close", "user", "root", "bytes", "(3 KB)", "sent", "=", "x=1", "a.b:80", "7", "-"]
)


@settings(max_examples=examples(150), deadline=None)
@given(st.lists(st.lists(_LOGLIKE_TOKENS, min_size=1, max_size=8).map(" ".join), max_size=40))
def test_ids_and_texts_stay_consistent_through_merges(lines: list[str]) -> None:
    miner = PatternMiner()
    ids = [miner.add(line)[0] for line in lines]
    final = patterns(lines)
    assert [miner.template(i) for i in ids] == final
    live = miner.templates()
    assert len(live) == len(miner) == len(set(final))
    assert {t.text for t in live} == set(final)
    assert sum(t.count for t in live) == len(lines)
    assert {t.id for t in live} == {miner.template_id(i) for i in ids}


@settings(max_examples=examples(100), deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["alpha", "beta", "gamma"]), st.integers(0, 10**9)),
        min_size=1,
        max_size=40,
    )
)
def test_lines_differing_only_in_numbers_share_a_template(pairs: list[tuple[str, int]]) -> None:
    lines = [f"worker {word} processed {n} items in {n % 97}.{n % 10} s" for word, n in pairs]
    result = patterns(lines)
    for (word, _), text in zip(pairs, result, strict=True):
        assert text == f"worker {word} processed <*> items in <*> s"


# -- the measure ---------------------------------------------------------------


def test_grouping_accuracy_is_the_standard_measure() -> None:
    assert grouping_accuracy([], []) == 1.0
    assert grouping_accuracy(["a", "a", "b"], [1, 1, 2]) == 1.0
    # "a" holds lines of two true groups: those 3 lines are wrong; "c" is right.
    assert grouping_accuracy(["a", "a", "a", "c"], [1, 1, 2, 3]) == pytest.approx(1 / 4)
    # a true group split in two: both halves wrong.
    assert grouping_accuracy(["a", "b", "c"], [1, 1, 2]) == pytest.approx(1 / 3)


# -- Loghub --------------------------------------------------------------------


def _read_loghub(root: Path, system: str) -> tuple[list[str], list[str]]:
    path = root / system / f"{system}_2k.log_structured.csv"
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [row["Content"] for row in rows], [row["EventId"] for row in rows]


def test_loghub_grouping_accuracy_beats_drain() -> None:
    root = shared_path("loghub")
    systems = sorted(
        entry.name
        for entry in root.iterdir()
        if (entry / f"{entry.name}_2k.log_structured.csv").is_file()
    )
    assert len(systems) == LOGHUB_SYSTEMS
    scores: dict[str, float] = {}
    lines_total = 0
    elapsed = 0.0
    for system in systems:
        lines, truth = _read_loghub(root, system)
        start = time.perf_counter()
        predicted = patterns(lines)
        elapsed += time.perf_counter() - start
        lines_total += len(lines)
        scores[system] = grouping_accuracy(predicted, truth)
    average = sum(scores.values()) / len(scores)
    print("\nLoghub 2k grouping accuracy (trusswork.logs.patterns)")
    for system, score in scores.items():
        print(f"  {system:<12} {score:.4f}")
    print(f"  {'average':<12} {average:.4f}  ({lines_total / elapsed:,.0f} lines/s)")
    assert average > DRAIN_REFERENCE
