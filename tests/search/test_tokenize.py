"""The C tokenizer against a pure-Python oracle of the same rules, on log-like and random text."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trusswork.core.errors import InvalidInput
from trusswork.search._tokenize import check_values, invert, invert_values
from trusswork.search.text import tokenize, tokenize_many

_RUN = re.compile(rb"[A-Za-z0-9_\x80-\xff]+")
_UUID = re.compile(
    rb"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    rb"(?![A-Za-z0-9_\x80-\xff])"
)


def oracle(data: bytes) -> list[str]:
    """The rules of csrc/postings/tokenize.h, written over the list of word runs."""
    runs = [(m.start(), m.end()) for m in _RUN.finditer(data)]
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(runs):
        start, end = runs[i]
        if _UUID.match(data, start):
            spans.append((start, start + 36))
            while i < len(runs) and runs[i][0] < start + 36:
                i += 1
            continue
        if not data[start:end].isdigit():
            spans.append((start, end))
            i += 1
            continue
        chain = [runs[i]]
        i += 1
        while (
            i < len(runs)
            and runs[i][0] == chain[-1][1] + 1
            and data[chain[-1][1] : chain[-1][1] + 1] == b"."
            and data[runs[i][0] : runs[i][1]].isdigit()
            and not _UUID.match(data, runs[i][0])
        ):
            chain.append(runs[i])
            i += 1
        octets = all(e - s <= 3 and int(data[s:e]) <= 255 for s, e in chain)
        if len(chain) == 2 or (len(chain) == 4 and octets):
            spans.append((chain[0][0], chain[-1][1]))
        else:
            spans.extend(chain)
    return [data[s:e].lower().decode("utf-8", "replace") for s, e in spans]


def ip() -> st.SearchStrategy[str]:
    return st.lists(st.integers(0, 400), min_size=3, max_size=5).map(
        lambda parts: ".".join(map(str, parts))
    )


def uuid_like() -> st.SearchStrategy[str]:
    hexes = st.text("0123456789abcdefABCDEFg", min_size=1, max_size=13)
    return st.lists(hexes, min_size=4, max_size=6).map("-".join)


PIECES = st.one_of(
    ip(),
    uuid_like(),
    st.uuids().map(str),
    st.from_regex(r"[0-9]{1,4}\.[0-9]{1,4}", fullmatch=True),
    st.text("aZ_9é€.-:/= \t", max_size=6),
    st.sampled_from([" ", ".", "-", ":", "/", "=", '"', "..", "Ünïcødé", "ключ"]),
)
LOGLIKE = st.lists(PIECES, max_size=12).map("".join)


@given(LOGLIKE)
@settings(max_examples=400)
def test_log_like_text_matches_oracle(text: str) -> None:
    assert tokenize(text) == oracle(text.encode())


@given(st.binary(max_size=200))
@settings(max_examples=300)
def test_any_bytes_tokenize_like_oracle(data: bytes) -> None:
    assert tokenize(data) == oracle(data)


@given(st.text(max_size=100).filter(lambda t: not any(0xD800 <= ord(c) < 0xE000 for c in t)))
@settings(max_examples=300)
def test_any_text_tokens_are_folded_pieces(text: str) -> None:
    tokens = tokenize(text)
    assert tokens == oracle(text.encode())
    folded = text.encode().lower().decode()
    for token in tokens:
        assert token in folded


@given(st.lists(LOGLIKE | st.binary(max_size=40), max_size=8))
@settings(max_examples=200)
def test_tokenize_many_is_tokenize_per_text(texts: list[str | bytes]) -> None:
    tokens, doc_ids, positions = tokenize_many(texts)
    per_text = [tokenize(t) for t in texts]
    assert tokens == [tok for toks in per_text for tok in toks]
    assert doc_ids.dtype == np.uint32 and positions.dtype == np.uint32
    assert doc_ids.tolist() == [d for d, toks in enumerate(per_text) for _ in toks]
    assert positions.tolist() == [p for toks in per_text for p in range(len(toks))]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            '10.1.2.3 - - [07/Dec/2026:20:15:00 +0000] "GET /api/v1/Users?id=42 HTTP/1.1" 200 512',
            "10.1.2.3 07 dec 2026 20 15 00 0000 get api v1 users id 42 http 1.1 200 512",
        ),
        (
            "conn from 192.168.0.17:51234 to db-01.prod.example.com:5432 closed",
            "conn from 192.168.0.17 51234 to db 01 prod example com 5432 closed",
        ),
        (
            "trace_id=550E8400-E29B-41D4-A716-446655440000 latency=3.14ms retries=2",
            "trace_id 550e8400-e29b-41d4-a716-446655440000 latency 3 14ms retries 2",
        ),
        (
            "took 0.25 s; version 1.2.3; bad ip 256.1.1.1",
            "took 0.25 s version 1 2 3 bad ip 256 1 1 1",
        ),
        (
            "Benutzer Jürgen MÜLLER hat sich angemeldet",
            "benutzer jürgen mÜller hat sich angemeldet",
        ),
        ("", ""),
        ("--- ... :::", ""),
    ],
)
def test_log_line_examples(line: str, expected: str) -> None:
    assert tokenize(line) == expected.split()
    assert tokenize(line.encode()) == expected.split()


def test_tokenize_many_spans_several_rounds() -> None:
    texts = [f"host-{i} 10.0.{i % 256}.1 took {i}.5 ms" for i in range(12_000)]
    texts.append("x " * 70_000)
    tokens, doc_ids, positions = tokenize_many(texts)
    assert len(tokens) == 12_000 * 6 + 70_000
    assert tokens[6 * 11_999 : 6 * 12_000] == tokenize(texts[11_999])
    assert int(doc_ids[6 * 11_999]) == 11_999 and int(positions[6 * 11_999 + 5]) == 5
    assert int(doc_ids[-1]) == 12_000 and int(positions[-1]) == 69_999


def test_tokenize_many_of_nothing() -> None:
    tokens, doc_ids, positions = tokenize_many([])
    assert tokens == [] and doc_ids.shape == (0,) and positions.shape == (0,)


@pytest.mark.parametrize("bad", [None, 3, ["a"], "lone \ud800 surrogate"])
def test_bad_input_is_invalid_input(bad: object) -> None:
    with pytest.raises(InvalidInput):
        tokenize(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        tokenize_many(["ok", bad])  # type: ignore[list-item]


def oracle_invert(texts: list[str]) -> dict[str, object]:
    """What invert must return, from tokenize per text and plain sorting."""
    occurrences = sorted(
        (token.encode("utf-8"), doc, position)
        for doc, text in enumerate(texts)
        for position, token in enumerate(tokenize(text))
    )
    terms = sorted({term for term, _, _ in occurrences})
    entries = Counter((term, doc) for term, doc, _ in occurrences)
    return {
        "utf8": b"".join(t.encode("utf-8") for t in texts),
        "text_lengths": [len(t.encode("utf-8")) for t in texts],
        "terms": terms,
        "entries": sorted(entries.items()),
        "positions": [position for _, _, position in occurrences],
        "lengths": [len(tokenize(t)) for t in texts],
    }


def inverted(texts: list[str]) -> dict[str, object]:
    """invert's arrays in the oracle's shape, checking their bounds on the way."""
    (
        utf8,
        text_offsets,
        term_blob,
        term_offsets,
        entry_starts,
        entry_rows,
        tfs,
        position_starts,
        positions,
        lengths,
    ) = invert(texts)
    n_terms = term_offsets.size - 1
    terms = [term_blob[term_offsets[i] : term_offsets[i + 1]] for i in range(n_terms)]
    entries = [
        ((terms[t], int(entry_rows[e])), int(tfs[e]))
        for t in range(n_terms)
        for e in range(int(entry_starts[t]), int(entry_starts[t + 1]))
    ]
    # Each term's positions are as many as its entries' frequencies.
    for t in range(n_terms):
        e0, e1 = int(entry_starts[t]), int(entry_starts[t + 1])
        assert position_starts[t + 1] - position_starts[t] == tfs[e0:e1].sum()
    assert position_starts[-1] == positions.size and entry_starts[-1] == entry_rows.size
    return {
        "utf8": utf8,
        "text_lengths": np.diff(text_offsets).tolist(),
        "terms": terms,
        "entries": entries,
        "positions": positions.tolist(),
        "lengths": lengths.tolist(),
    }


@given(st.lists(LOGLIKE, max_size=12))
@settings(max_examples=300)
def test_invert_matches_sorting_every_occurrence(texts: list[str]) -> None:
    assert inverted(texts) == oracle_invert(texts)


def test_invert_of_repetitive_log_lines() -> None:
    # Many distinct and many repeated terms: the hash table grows and the
    # recent-token cache answers most tokens.
    texts = [
        f"10.0.{i % 7}.{i % 250} GET /api/v1/items/{i} 200 {i * 37 % 9973} ms Ünï{i % 3}"
        for i in range(5000)
    ]
    assert inverted(texts) == oracle_invert(texts)


def test_invert_of_nothing() -> None:
    assert inverted([]) == oracle_invert([])
    assert inverted(["", "..."]) == oracle_invert(["", "..."])


@pytest.mark.parametrize("bad", [[None], [b"bytes"], ["ok", "lone \ud800 surrogate"]])
def test_invert_refuses_what_cannot_be_indexed(bad: list[object]) -> None:
    with pytest.raises(InvalidInput):
        invert(bad)  # type: ignore[arg-type]


@given(st.lists(st.none() | st.sampled_from(["", "a", "b", "ab", "é", "10.0.0.1"]) | LOGLIKE))
@settings(max_examples=300)
def test_invert_values_groups_whole_values(values: list[str | None]) -> None:
    keys, key_offsets, starts, indexes = invert_values(values, "name=")
    distinct = sorted({v.encode("utf-8") for v in values if v is not None})
    got_keys = [keys[key_offsets[i] : key_offsets[i + 1]] for i in range(key_offsets.size - 1)]
    assert got_keys == [b"name=" + v for v in distinct]
    got = {got_keys[k]: indexes[starts[k] : starts[k + 1]].tolist() for k in range(len(got_keys))}
    assert got == {
        b"name=" + v: [i for i, x in enumerate(values) if x is not None and x.encode() == v]
        for v in distinct
    }


@pytest.mark.parametrize("bad", [[3], ["ok", b"bytes"], ["ok", None, "lone \ud800"]])
def test_keyword_values_must_be_str_or_none(bad: list[object]) -> None:
    with pytest.raises(InvalidInput, match=f"value {len(bad) - 1} "):
        check_values(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        invert_values(bad, "k=")  # type: ignore[arg-type]
