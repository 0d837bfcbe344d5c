"""The C combined access log parser against its oracle, LogParser(format="combined")."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trusswork.core.errors import InvalidInput
from trusswork.logs._fastparse import STRING_FIELDS, CombinedColumns, parse_combined
from trusswork.logs._parsers import _COMBINED, LogParseError, LogParser, LogRecord
from trusswork.logs._timestamps import parse_timestamp

ORACLE = LogParser(format="combined")
INT64_MIN = -(2**63)

APACHE = (
    b'127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif?a=1&b HTTP/1.0" 200 '
    b'2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"'
)


def oracle(line: bytes | str, max_line_length: int = 64 * 1024) -> LogRecord | None:
    parser = (
        ORACLE
        if max_line_length == 64 * 1024
        else LogParser(format="combined", max_line_length=max_line_length)
    )
    try:
        return parser.parse_line(line)
    except LogParseError:
        return None


def outside_fast_path(line: bytes | str, record: LogRecord, max_line_length: int) -> bool:
    """The documented lines the Python parser accepts and the C kernel leaves to it."""
    data = line.encode("utf-8", "surrogatepass") if isinstance(line, str) else line
    data = data.removesuffix(b"\n").removesuffix(b"\r")
    if len(data) > max_line_length:
        return True
    if isinstance(line, str) and any(0xD800 <= ord(c) <= 0xDFFF for c in line):
        return True
    size = record.fields["bytes"]
    if size is not None and size > 2**63 - 1:
        return True
    match = _COMBINED.fullmatch(record.raw)
    assert match is not None
    return not match.group(4).isascii()


def check_against_oracle(
    lines: Sequence[bytes | str], columns: CombinedColumns, max_line_length: int = 64 * 1024
) -> None:
    assert len(columns) == len(lines)
    for i, line in enumerate(lines):
        expected = oracle(line, max_line_length)
        if columns.ok[i]:
            assert expected is not None, line
            assert columns.record(i) == expected, line
            assert columns.to_fields(i) == expected.fields
            assert columns.time_ms[i] == (
                INT64_MIN if expected.timestamp_ms is None else expected.timestamp_ms
            )
        else:
            assert expected is None or outside_fast_path(line, expected, max_line_length), line
            assert columns.time_ms[i] == INT64_MIN
            assert columns.status_null[i] == columns.bytes_null[i] == 1
            assert all(columns.strings[name].codes[i] == -1 for name in STRING_FIELDS)
    for name in STRING_FIELDS:
        column = columns.strings[name]
        assert column.codes.dtype == np.int32
        present = [value for value in column.decode() if value is not None]
        assert column.values == list(dict.fromkeys(present)), name


# -- generated lines ------------------------------------------------------------------

# Characters chosen to hit every rule: blanks the pattern refuses inside tokens
# (tab, U+00A0, U+2003, U+0085, U+3000, \x1c), quotes, brackets, backslashes,
# non-ASCII text and Unicode digits.
_ODD = ['"', "[", "]", "\\", "\t", "\x1c", "\xa0", "\u2003", "\x85", "\u3000", "\u0661", "\r"]
_ALPHABET = st.sampled_from([*"aZ09-./?=&:_ +", "é", "中", *_ODD])
_TEXT = st.text(_ALPHABET, max_size=12)
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def _mostly(
    draw: st.DrawFn, good: st.SearchStrategy[str], odd: st.SearchStrategy[str], odds: int = 5
) -> str:
    """A well-formed piece, or one time in ``odds`` an odd one."""
    return draw(odd) if draw(st.integers(1, odds)) == 1 else draw(good)


@st.composite
def _tokens(draw: st.DrawFn) -> str:
    good = st.one_of(
        st.sampled_from(["10.0.0.1", "-", "frank", "::1", "é中"]),
        st.text(st.sampled_from([*'az09-.:[]\\"', "é"]), min_size=1, max_size=8),
    )
    return _mostly(draw, good, _TEXT)


@st.composite
def _times(draw: st.DrawFn, odds: int = 16) -> str:
    def pick(good: list[str], odd: list[str]) -> str:
        return _mostly(draw, st.sampled_from(good), st.sampled_from(odd), odds)

    day = pick(["1", "01", "10", "29", "31"], ["0", "30", "123", "\u0661", ""])
    month = pick(_MONTHS, ["oct", "Foo"])
    year = pick(["2000", "1900", "2024", "0001", "9999"], ["0000", "99"])
    clock = pick(["13:55:36", "00:00:00", "23:59:60"], ["24:00:00", "1:2:3", "00:60:00"])
    zone = pick([" -0700", " +0000", "\t+05:30", ""], ["+0100", " +0060", " +9959", " -07"])
    pad = pick([""], [" ", "  ", "\xa0"])
    return f"{pad}{day}/{month}/{year}:{clock}{zone}{pad}"


@st.composite
def _quoted(draw: st.DrawFn) -> str:
    pieces = st.one_of(
        st.sampled_from(["-", "http://ex.com/", "Mozilla/5.0 (X11)", "agent/1"]),
        _TEXT,
        st.sampled_from(['\\"', "\\\\", "\\x", "\\", '"']),
    )
    return "".join(draw(st.lists(pieces, max_size=3)))


@st.composite
def _requests(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 4)) == 0:
        return draw(_quoted())
    method = _mostly(draw, st.sampled_from(["GET", "POST", "get"]), st.sampled_from(["", "G1"]))
    uri = draw(st.sampled_from(["/", "/a?b=1", "/x?", '/q\\"s', "/é?ü", "", "/a?b?c"]))
    uri += _mostly(draw, st.text(st.sampled_from([*"az09/?=&%", "\\", "é"]), max_size=6), _TEXT)
    version = _mostly(
        draw, st.sampled_from(["", " HTTP/1.1", " HTTP/2"]), st.sampled_from([" HTTP/", "  "])
    )
    return f"{method} {uri}{version}"


@st.composite
def _lines(draw: st.DrawFn) -> bytes | str:
    count = 3 if draw(st.integers(0, 5)) else draw(st.integers(1, 4))
    head = " ".join(draw(_tokens()) for _ in range(count))
    time_text = _mostly(draw, _times(), _TEXT)
    status = _mostly(
        draw,
        st.sampled_from(["200", "404", "099", "-"]),
        st.sampled_from(["2000", "20", "abc", ""]),
    )
    size = _mostly(
        draw,
        st.sampled_from(["0", "2326", "-", "007"]),
        st.sampled_from(["", "12abc", "99999999999999999999", "-1"]),
    )
    line = f'{head} [{time_text}] "{draw(_requests())}" {status} {size}'
    for _ in range(draw(st.integers(0, 2))):
        line += f' "{draw(_quoted())}"'
    if draw(st.integers(0, 3)) == 0:
        line += draw(_TEXT)
    data = line.encode()
    if draw(st.integers(0, 4)) == 0:
        cut = draw(st.integers(0, len(data)))
        data = data[:cut] + draw(st.binary(max_size=3)) + data[cut + draw(st.integers(0, 3)) :]
    data += draw(st.sampled_from([b"", b"\n", b"\r\n", b"\r", b"\n\n"]))
    if draw(st.integers(0, 9)) == 0:
        return data.decode("utf-8", "surrogateescape")
    return data


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_lines(), min_size=1, max_size=8))
def test_generated_lines_match_the_python_parser(lines: list[bytes | str]) -> None:
    check_against_oracle(lines, parse_combined(lines))


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(_times(odds=3), _TEXT), min_size=1, max_size=8))
def test_times_match_parse_timestamp(times: list[str]) -> None:
    lines = [f'h - - [{text}] "GET / HTTP/1.1" 200 1'.encode() for text in times]
    columns = parse_combined(lines)
    check_against_oracle(lines, columns)
    for i, text in enumerate(times):
        if columns.ok[i]:
            stamp = parse_timestamp(text, timestamp_format="httpdate")
            assert columns.time_ms[i] == (INT64_MIN if stamp is None else stamp), text


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=60), max_size=6))
def test_arbitrary_bytes_match_the_python_parser(lines: list[bytes]) -> None:
    check_against_oracle(list(lines), parse_combined(lines))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_lines(), min_size=1, max_size=6), st.integers(1, 80))
def test_max_line_length_leaves_long_lines_to_python(
    lines: list[bytes | str], max_line_length: int
) -> None:
    columns = parse_combined(lines, max_line_length=max_line_length)
    check_against_oracle(lines, columns, max_line_length)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_lines().filter(lambda line: isinstance(line, bytes)), max_size=6))
def test_a_block_is_split_like_parse_lines(lines: list[bytes]) -> None:
    block = b"\n".join(lines)
    pieces = block.split(b"\n")
    columns = parse_combined(block)
    check_against_oracle(pieces, columns)
    for i, piece in enumerate(pieces):
        assert columns.raw_line(i) == piece.decode("utf-8", "replace").removesuffix("\r")


# -- examples -------------------------------------------------------------------------


def test_apache_example_columns() -> None:
    columns = parse_combined([APACHE, APACHE.replace(b"frank", b"-"), b"not a log line"])
    assert columns.ok.tolist() == [1, 1, 0]
    assert columns.time_ms.tolist() == [971211336000, 971211336000, INT64_MIN]
    assert columns.status.tolist()[:2] == [200, 200]
    assert columns.bytes.tolist()[:2] == [2326, 2326]
    user = columns.strings["user"]
    assert user.values == ["frank", "-"]
    assert user.codes.tolist() == [0, 1, -1]
    assert columns.strings["uri_query"].decode() == ["a=1&b", "a=1&b", None]
    assert columns.strings["method"].codes.tolist() == [0, 0, -1]
    assert columns.to_fields(0) == ORACLE.parse_line(APACHE).fields


def test_common_format_escapes_and_extra_fields() -> None:
    lines = [
        b'::1 - - [01/Jan/2024:00:00:00 +0000] "POST /x?" - -',
        b'h i u [1/Feb/2024:00:00:00] "GET /q\\"x\\\\y" 404 0 "r\\"" "a" \t x 1 \xc2\xa0',
        b'h i u [1/Feb/2024:00:00:00 +0000] "" 500 12abc "ref" "agent',
    ]
    columns = parse_combined(lines)
    assert columns.to_fields(0) == {
        "clientip": "::1", "ident": "-", "user": "-", "request": "POST /x?",
        "method": "POST", "uri": "/x?", "uri_path": "/x", "uri_query": "",
        "http_version": None, "status": None, "bytes": None,
    }  # fmt: skip
    second = columns.to_fields(1)
    assert (second["request"], second["uri"], second["referer"]) == ('GET /q"x\\y', '/q"x\\y', 'r"')
    assert second["extra"] == "x 1"
    third = columns.to_fields(2)
    assert "referer" not in third and "method" not in third
    assert third["extra"] == 'abc "ref" "agent'
    check_against_oracle(list(lines), columns)


def test_bad_dates_and_invalid_utf8_are_problems_not_rejections() -> None:
    line = b'h i u\xff [30/Feb/2024:00:00:00 +0000] "GET / HTTP/2" 200 1'
    columns = parse_combined([line])
    assert columns.ok[0] == 1 and columns.invalid_utf8[0] == 1
    assert columns.time_ms[0] == INT64_MIN
    record = columns.record(0)
    assert record.problems == ("invalid-utf8", "bad-timestamp")
    assert record.fields["user"] == "u\ufffd"


def test_lines_outside_the_fast_path_have_ok_zero() -> None:
    huge = b'h i u [1/Feb/2024:00:00:00] "GET /" 200 99999999999999999999'
    arabic_day = 'h i u [\u0661/Feb/2024:00:00:00] "GET /" 200 1'
    surrogate = 'h i u\udcff [1/Feb/2024:00:00:00] "GET /" 200 1'
    columns = parse_combined([huge, arabic_day, surrogate, APACHE], max_line_length=len(APACHE))
    assert columns.ok.tolist() == [0, 0, 0, 1]
    assert all(oracle(line) is not None for line in (huge, arabic_day, surrogate))
    assert parse_combined([APACHE], max_line_length=len(APACHE) - 1).ok.tolist() == [0]


def test_rows_keep_the_input_numbering() -> None:
    columns = parse_combined(APACHE + b"\n\n" + APACHE + b"\r\n")
    assert columns.ok.tolist() == [1, 0, 1, 0]
    assert columns.raw_line(2) == APACHE.decode()
    assert parse_combined(b"").ok.tolist() == [0]
    text = parse_combined(APACHE.decode() + "\nx\n")
    assert text.ok.tolist() == [1, 0, 0]
    assert text.record(0) == ORACLE.parse_line(APACHE)
    empty = parse_combined([])
    assert len(empty) == 0 and empty.strings["uri"].values == []


def test_errors() -> None:
    columns = parse_combined([APACHE, b"x"])
    with pytest.raises(InvalidInput, match="not parsed by the fast path"):
        columns.to_fields(1)
    with pytest.raises(IndexError):
        columns.to_fields(2)
    with pytest.raises(InvalidInput, match="str or bytes"):
        parse_combined([APACHE, 3])  # type: ignore[list-item]
    with pytest.raises(InvalidInput, match="max_line_length"):
        parse_combined([APACHE], max_line_length=0)


def test_threads_parse_concurrently_with_the_same_results() -> None:
    lines = [APACHE.replace(b"/apache_pb.gif", f"/p/{i % 97}".encode()) for i in range(20_000)]
    expected = parse_combined(lines)
    results: list[Any] = [None] * 4

    def work(k: int) -> None:
        results[k] = parse_combined(lines)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result in results:
        assert np.array_equal(result.strings["uri"].codes, expected.strings["uri"].codes)
        assert result.strings["uri"].values == expected.strings["uri"].values
    assert len(expected.strings["uri"].values) == 97
