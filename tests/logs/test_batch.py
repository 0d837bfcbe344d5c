"""Columnar batches: the C access-log path equals the Python parser's documents,
and the store's log records read back exactly what was written."""

from __future__ import annotations

import contextlib
import math
import random
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trusswork.logs._batch import Batch
from trusswork.logs._fastparse import parse_combined
from trusswork.logs._parsers import LogParseError, LogParser
from trusswork.logs._store import LogStore, _decode_record, _encode_record

sys.path.insert(0, str(Path(__file__).parent))
from test_fastparse import _lines
from test_store import crash

NOW_MS = 1_760_000_000_000


def python_batch(lines: list[bytes | str]) -> tuple[Batch, list[int]]:
    parser = LogParser("combined")
    records, rows = [], []
    for row, line in enumerate(lines):
        try:
            records.append(parser.parse_line(line, lineno=row + 1))
            rows.append(row)
        except LogParseError:
            pass
    return Batch.from_records(0, records, "src", NOW_MS), rows


def same_numbers(a: np.ndarray, b: np.ndarray) -> bool:
    return all(
        (math.isnan(x) and math.isnan(y)) or x == y
        for x, y in zip(a.tolist(), b.tolist(), strict=True)
    )


@settings(max_examples=150, deadline=None)
@given(st.lists(_lines(), min_size=1, max_size=30))
def test_c_columns_make_the_same_documents_as_python_records(lines: list[bytes | str]) -> None:
    expected, rows = python_batch(lines)
    columns = parse_combined(lines)
    fast = np.flatnonzero(columns.ok)
    assume_rows = [r for r in rows if columns.ok[r]]
    assert fast.tolist() == assume_rows  # lines C leaves are only ever the Python path's
    if not fast.size:
        return
    batch = Batch.from_combined(0, columns, fast, "src", NOW_MS)
    keep = [rows.index(r) for r in fast.tolist()]
    expected = expected.take(np.asarray(keep, dtype=np.int64))
    assert batch.raw == expected.raw
    assert batch.times.tolist() == expected.times.tolist()
    present = {k for k, v in expected.keywords.items() if any(x is not None for x in v)}
    assert set(batch.keywords) == present
    for name in present:
        assert batch.keywords[name] == expected.keywords[name], name
    numeric = {k for k, v in expected.numbers.items() if not np.isnan(v).all()}
    assert set(batch.numbers) == numeric
    for name in numeric:
        assert same_numbers(batch.numbers[name], expected.numbers[name]), name


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.binary(max_size=40), max_size=20),
    st.dictionaries(st.text(max_size=5), st.integers(-(2**63), 2**63 - 1)),
)
def test_log_records_read_back_exactly(items: list[bytes], header: dict[str, int]) -> None:
    decoded_header, decoded = _decode_record(_encode_record(header, items))
    assert decoded == items and decoded_header == header


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_damaged_log_records_raise_value_errors_only(data: bytes) -> None:
    with contextlib.suppress(ValueError):  # orjson's decode error is one too
        _decode_record(data)


def test_mixed_fast_and_slow_lines_keep_input_order_and_replay_identically(
    tmp_path: Path,
) -> None:
    rng = random.Random(5)
    lines: list[str] = []
    for i in range(300):
        if rng.random() < 0.2:
            lines.append(f'{{"msg": "json {i}", "n": {i}}}')
        elif rng.random() < 0.1:
            lines.append(f"garbage line {i}")
        else:
            lines.append(
                f"10.0.0.{i % 9} - - [10/Oct/2026:13:{i // 60 % 60:02d}:{i % 60:02d} +0000]"
                f' "GET /p/{i} HTTP/1.1" {rng.choice([200, 404])} {i} "-" "ua"'
            )
    store = LogStore(tmp_path / "s", background=False, clock=lambda: NOW_MS / 1000)
    result = store.ingest(lines, format="auto")
    assert result.accepted == 300 and result.rejected == 0
    ((batch, ids),) = store._buffer
    assert batch.raw == lines  # input order, C and Python lines interleaved
    before = (
        batch.times.tolist(),
        batch.keywords,
        {k: v.tolist() for k, v in batch.numbers.items()},
    )
    # Replay the log as a crash would: the same documents come back.
    crash(store)
    with LogStore(tmp_path / "s", background=False) as again:
        ((replayed, replayed_ids),) = again._buffer
        assert replayed_ids.tolist() == ids.tolist()
        assert replayed.raw == lines
        after = (
            replayed.times.tolist(),
            replayed.keywords,
            {k: v.tolist() for k, v in replayed.numbers.items()},
        )
        assert repr(after) == repr(before)
        assert len(again.query("sourcetype=combined")) == sum(
            1 for line in lines if line.startswith("10.")
        )


def test_combined_format_rejects_through_the_python_parser(tmp_path: Path) -> None:
    with LogStore(tmp_path / "s", background=False) as store:
        good = '10.0.0.1 - - [10/Oct/2026:13:55:36 +0000] "GET / HTTP/1.1" 200 5 "-" "ua"'
        result = store.ingest(
            [good, "not an access line", good.replace("Oct", "Foo")], format="combined"
        )
        assert (result.accepted, result.rejected) == (2, 1)
        assert result.errors[0].line == 2
        assert result.bad_timestamp == 1
        with pytest.raises(Exception, match="format"):
            store.ingest([good], format="nonsense")
