"""Log line parsers: formats, grok, auto detection, timestamps, damaged input, fuzzing."""

from __future__ import annotations

import ipaddress
import json
import re
import time
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trusswork.core.errors import InvalidInput, ParseError
from trusswork.logs._grok import GROK_PATTERNS, compile_grok
from trusswork.logs._parsers import (
    FORMATS,
    TRUNCATION_MARKER,
    LogParseError,
    LogParser,
    LogRecord,
    parse_line,
    parse_lines,
)
from trusswork.logs._timestamps import parse_timestamp


def ms(text: str) -> int:
    """Unix ms of an ISO 8601 string, computed by the standard library (the oracle)."""
    return int(datetime.fromisoformat(text).timestamp() * 1000)


# -- combined access logs -------------------------------------------------------------

NGINX = (
    '203.0.113.7 - - [07/Dec/2026:20:12:31 +0000] "GET /api/v1/users?id=42&x=%20y HTTP/1.1" '
    '200 612 "https://example.com/home" '
    '"Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/120.0"'
)


def test_combined_apache_example() -> None:
    line = (
        '127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 '
        '"http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"'
    )
    record = parse_line(line, "combined")
    assert record.format == "combined"
    assert record.timestamp_ms == ms("2000-10-10T13:55:36-07:00")
    assert record.fields == {
        "clientip": "127.0.0.1",
        "ident": "-",
        "user": "frank",
        "request": "GET /apache_pb.gif HTTP/1.0",
        "method": "GET",
        "uri": "/apache_pb.gif",
        "uri_path": "/apache_pb.gif",
        "uri_query": None,
        "http_version": "HTTP/1.0",
        "status": 200,
        "bytes": 2326,
        "referer": "http://www.example.com/start.html",
        "useragent": "Mozilla/4.08 [en] (Win98; I ;Nav)",
    }


def test_combined_nginx_query_and_dash_bytes() -> None:
    record = parse_line(NGINX, "combined")
    assert record.fields["uri_path"] == "/api/v1/users"
    assert record.fields["uri_query"] == "id=42&x=%20y"
    assert record.fields["useragent"].startswith("Mozilla/5.0 (X11")
    assert record.timestamp_ms == ms("2026-12-07T20:12:31+00:00")
    line = '::1 - - [07/Dec/2026:20:12:31 +0000] "HEAD / HTTP/1.1" 304 - "-" "curl/8.4.0"'
    fields = parse_line(line, "combined").fields
    assert fields["bytes"] is None
    assert fields["status"] == 304
    assert fields["clientip"] == "::1"


def test_combined_garbage_request_and_common_format() -> None:
    # A TLS handshake sent to a plain-HTTP port, as nginx logs it.
    line = '198.51.100.2 - - [07/Dec/2026:20:12:31 +0000] "\\x16\\x03\\x01" 400 157 "-" "-"'
    fields = parse_line(line, "combined").fields
    assert fields["status"] == 400
    assert fields["request"] == "\\x16\\x03\\x01"
    assert "method" not in fields
    common = '10.0.0.1 - bob [10/Oct/2000:13:55:36 -0700] "POST /login HTTP/1.1" 401 0'
    fields = parse_line(common, "combined").fields
    assert fields["method"] == "POST"
    assert "referer" not in fields


def test_combined_rejects_with_column() -> None:
    with pytest.raises(LogParseError) as caught:
        parse_line("10.0.0.1 - - 10/Oct/2000 GET", "combined")
    assert caught.value.column == 14
    assert "[time]" in caught.value.reason


# -- syslog ---------------------------------------------------------------------------


def test_rfc3164_examples_from_the_rfc() -> None:
    parser = LogParser("syslog", reference_year=2003)
    record = parser.parse_line(
        "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8"
    )
    assert record.format == "rfc3164"
    assert record.timestamp_ms == ms("2003-10-11T22:14:15+00:00")
    assert record.message == "'su root' failed for lonvick on /dev/pts/8"
    assert record.fields["host"] == "mymachine"
    assert record.fields["appname"] == "su"
    assert (record.fields["facility"], record.fields["severity"]) == ("auth", "crit")
    assert (record.fields["facility_code"], record.fields["severity_code"]) == (4, 2)

    record = parser.parse_line("<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!")
    assert record.fields["host"] == "10.0.0.99"
    assert record.message == "Use the BFG!"
    assert record.fields["severity"] == "notice"

    # No valid header after the PRI: kept, with the problem counted.
    record = parser.parse_line(
        "<0>1990 Oct 22 10:52:01 TZ-6 scapegoat.dmz.example.org 10.1.2.3 "
        "sched[0]: That's All Folks!"
    )
    assert record.timestamp_ms is None
    assert record.problems == ("no-syslog-header",)
    assert record.fields["facility"] == "kern"


def test_rfc3164_without_pri_and_with_pid() -> None:
    record = parse_line("Dec  7 20:12:31 web01 sshd[4242]: Accepted publickey", "rfc3164")
    assert record.fields == {"host": "web01", "appname": "sshd", "procid": "4242"}
    assert record.message == "Accepted publickey"


def test_syslog_rejections() -> None:
    with pytest.raises(LogParseError, match="out of the range"):
        parse_line("<192>Oct 11 22:14:15 host app: x", "syslog")
    with pytest.raises(LogParseError):
        parse_line("hello there", "rfc3164")
    with pytest.raises(LogParseError) as caught:
        parse_line("<34>1 2003-10-11T22:14:15Z host app - - [broken", "rfc5424")
    assert caught.value.column == len("<34>1 2003-10-11T22:14:15Z host app - - ") + 1


def test_rfc5424_with_structured_data() -> None:
    line = (
        "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
        '[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"]'
        '[examplePriority@32473 class="high" note="a \\"q\\" and \\] end"] '
        "\ufeffAn application event log entry"
    )
    record = parse_line(line, "rfc5424")
    assert record.timestamp_ms == ms("2003-10-11T22:14:15.003+00:00")
    assert record.message == "An application event log entry"
    assert record.fields["sd.exampleSDID@32473.eventSource"] == "Application"
    assert record.fields["sd.examplePriority@32473.class"] == "high"
    assert record.fields["sd.examplePriority@32473.note"] == 'a "q" and ] end'
    assert record.fields["appname"] == "evntslog"
    assert "procid" not in record.fields
    assert record.fields["facility"] == "local4"


def test_rfc5424_nil_values_and_offset() -> None:
    record = parse_line(
        "<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time",
        "syslog",
    )
    assert record.format == "rfc5424"
    assert record.timestamp_ms == ms("2003-08-24T05:14:15-07:00")
    assert record.fields["procid"] == "8710"
    assert record.message == "%% It's time"
    record = parse_line("<14>1 - - - - - -", "rfc5424")
    assert record.timestamp_ms is None
    assert record.problems == ()
    bad = parse_line("<14>1 2003-13-40T99:00:00Z h a - - - x", "rfc5424")
    assert bad.timestamp_ms is None
    assert bad.problems == ("bad-timestamp",)


# -- json and logfmt --------------------------------------------------------------------


def test_json_flattening_message_and_epoch() -> None:
    line = json.dumps(
        {"ts": 1700000000123, "level": "warn", "message": "slow", "http": {"req": {"ms": 12}}}
    )
    record = parse_line(line, "json")
    assert record.fields == {
        "ts": 1700000000123,
        "level": "warn",
        "message": "slow",
        "http.req.ms": 12,
    }
    assert record.message == "slow"
    assert record.timestamp_ms == 1700000000123
    assert parse_line('{"time": 1700000000}', "json").timestamp_ms == 1700000000000
    assert parse_line('{"log": "x", "@timestamp": "2024-01-01T00:00:00+02:00"}').timestamp_ms == ms(
        "2024-01-01T00:00:00+02:00"
    )


def test_json_rejections() -> None:
    with pytest.raises(LogParseError) as caught:
        parse_line('{"a": tru}', "json")
    assert caught.value.column == 7
    with pytest.raises(LogParseError, match="object"):
        parse_line("[1, 2]", "json")
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(LogParseError):
        parse_line(deep, "json", max_line_length=300_000)


def test_logfmt_quotes_escapes_and_bare_keys() -> None:
    line = 'ts=2024-05-01T10:00:00Z level=error msg="disk \\"sda\\" full\\n" path=/a=b retry'
    record = parse_line(line, "logfmt")
    assert record.fields == {
        "ts": "2024-05-01T10:00:00Z",
        "level": "error",
        "msg": 'disk "sda" full\n',
        "path": "/a=b",
        "retry": True,
    }
    assert record.message == 'disk "sda" full\n'
    assert record.timestamp_ms == ms("2024-05-01T10:00:00+00:00")
    with pytest.raises(LogParseError) as caught:
        parse_line('a=1 b="open', "logfmt")
    assert caught.value.column == 7


# -- regex and grok -------------------------------------------------------------------------


def test_grok_expression_with_conversion() -> None:
    parser = LogParser(
        "regex", pattern=r"^%{IP:client.ip} %{WORD:method} %{URIPATHPARAM:uri} %{NUMBER:bytes:int}"
    )
    record = parser.parse_line("2001:db8::7 GET /index.html?a=1 1024")
    assert record.fields == {
        "client.ip": "2001:db8::7",
        "method": "GET",
        "uri": "/index.html?a=1",
        "bytes": 1024,
    }
    record = parser.parse_line("10.1.2.3 PUT /x 1.5")
    assert record.fields["bytes"] == "1.5"
    assert record.problems == ("bad-conversion",)
    with pytest.raises(LogParseError, match="does not match"):
        parser.parse_line("nothing here")


def test_user_regex_named_groups_and_timestamp() -> None:
    parser = LogParser(
        "regex",
        pattern=r"(?P<when>\S+ \S+) (?P<level>[A-Z]+) (?P<message>.*)",
        timestamp_field="when",
    )
    record = parser.parse_line("2024-02-29 23:59:59.5 INFO leap day")
    assert record.message == "leap day"
    assert record.timestamp_ms == ms("2024-02-29T23:59:59.500+00:00")
    record = parser.parse_line("2023-02-29 23:59:59 INFO not a leap year")
    assert record.timestamp_ms is None
    assert record.problems == ("bad-timestamp",)


@pytest.mark.parametrize(
    ("name", "good", "bad"),
    [
        ("IPV4", ["0.0.0.0", "192.168.1.255"], ["256.1.1.1", "1.2.3"]),
        (
            "IPV6",
            ["::", "fe80::1", "::ffff:10.0.0.1", "1:2:3:4:5:6:7:8"],
            ["1:2:3:4:5:6:7:8:9", ":::"],
        ),
        ("INT", ["-12", "7"], ["1.5", "x"]),
        ("NUMBER", ["1.5e3", "-.5", "42"], ["e5", "."]),
        ("UUID", ["123e4567-e89b-12d3-a456-426614174000"], ["123e4567-e89b-12d3-a456"]),
        ("HOSTNAME", ["web-01.example.com", "localhost"], ["-bad.example"]),
        (
            "TIMESTAMP_ISO8601",
            ["2024-01-01T00:00:00Z", "2024-01-01 00:00:00,123+0100"],
            ["2024-01-01"],
        ),
        ("HTTPDATE", ["10/Oct/2000:13:55:36 -0700"], ["10/Oct/2000 13:55:36"]),
        ("SYSLOGTIMESTAMP", ["Oct 11 22:14:15", "Feb  5 17:32:18"], ["11 Oct 22:14:15"]),
        ("LOGLEVEL", ["INFO", "warning", "Error", "CRIT"], ["informal"]),
        ("PATH", ["/var/log/syslog", "C:\\Windows\\x"], ["var"]),
        ("QUOTEDSTRING", ['"a \\" b"', "'x'"], ['"open']),
    ],
)
def test_grok_library_patterns(name: str, good: list[str], bad: list[str]) -> None:
    regex = re.compile(f"(?:{GROK_PATTERNS[name]})")
    for text in good:
        assert regex.fullmatch(text), text
    for text in bad:
        assert not regex.fullmatch(text), text


@given(st.ip_addresses())
def test_grok_ip_matches_every_address(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    regex = re.compile(f"(?:{GROK_PATTERNS['IP']})")
    assert regex.fullmatch(str(address))
    if address.version == 6:
        assert regex.fullmatch(address.exploded)


def test_grok_configuration_errors() -> None:
    with pytest.raises(InvalidInput, match="unknown grok pattern"):
        compile_grok("%{NOPE:x}")
    with pytest.raises(InvalidInput, match="twice"):
        compile_grok("%{WORD:a} %{WORD:a}")
    with pytest.raises(InvalidInput, match="conversion"):
        compile_grok("%{WORD:a:bool}")
    with pytest.raises(InvalidInput, match="valid regex"):
        LogParser("regex", pattern="(unclosed")
    with pytest.raises(InvalidInput):
        LogParser("json", pattern="x")
    with pytest.raises(InvalidInput):
        LogParser("csv")
    with pytest.raises(InvalidInput):
        LogParser(timestamp_format="yyyy-MM-dd")
    assert compile_grok("%{WORD:w}") is compile_grok("%{WORD:w}")


# -- auto detection ---------------------------------------------------------------------------


def test_auto_detects_each_format() -> None:
    lines = [
        '{"msg": "json line"}',
        "<34>1 2003-10-11T22:14:15.003Z host app - - - five four two four",
        "<34>Oct 11 22:14:15 mymachine su: three one six four",
        NGINX,
        "level=info msg=logfmt",
        "just some words = here",
        "[2024-03-01T12:00:00Z] plain with a stamp",
        "{not json",
    ]
    records, errors = parse_lines(lines, reference_year=2003)
    assert errors == []
    assert [r.format for r in records] == [
        "json", "rfc5424", "rfc3164", "combined", "logfmt", "text", "text", "text",
    ]  # fmt: skip
    assert records[1].message == "five four two four"
    assert records[6].timestamp_ms == ms("2024-03-01T12:00:00+00:00")
    assert records[7].message == "{not json"


def test_parse_lines_keeps_going_and_numbers_errors() -> None:
    text = '{"a": 1}\n\nnot json\n{"b": 2}\n[3]\n'
    result = parse_lines(text, "json", filename="app.log")
    assert [r.fields for r in result.records] == [{"a": 1}, {"b": 2}]
    assert [e.line for e in result.errors] == [3, 5]
    assert all(isinstance(e, ParseError) for e in result.errors)
    assert str(result.errors[0]).startswith("app.log:3:1: invalid JSON")
    assert "  3 | not json" in str(result.errors[0])


# -- timestamps ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2003-10-11T22:14:15.003Z", ms("2003-10-11T22:14:15.003+00:00")),
        ("2003-10-11T22:14:15.003456+05:30", ms("2003-10-11T22:14:15.003+05:30")),
        ("2003-10-11 22:14:15", ms("2003-10-11T22:14:15+00:00")),
        ("2003-10-11", ms("2003-10-11T00:00:00+00:00")),
        ("10/Oct/2000:13:55:36 -0700", ms("2000-10-10T13:55:36-07:00")),
        ("Oct 11 22:14:15", ms("2003-10-11T22:14:15+00:00")),
        (1700000000, 1700000000000),
        (1700000000.25, 1700000000250),
        ("1700000000123", 1700000000123),
        ("1700000000123456", 1700000000123),
        ("2023-02-29T00:00:00Z", None),
        ("24:00", None),
        ("yesterday", None),
        (float("nan"), None),
        (10**300, None),
        (1e300, None),
        (True, None),
    ],
)
def test_timestamp_detection(value: object, expected: int | None) -> None:
    assert parse_timestamp(value, reference_year=2003) == expected


def test_syslog_timestamp_without_reference_year_is_in_the_last_year() -> None:
    now_ms = int(time.time() * 1000)
    for month in ("Jan", "Jun", "Dec"):
        stamp = parse_timestamp(f"{month}  1 00:00:00")
        assert stamp is not None
        assert now_ms - 367 * 86_400_000 < stamp <= now_ms + 86_400_000


def test_configured_timestamp_field_and_format() -> None:
    parser = LogParser("logfmt", timestamp_field="at", timestamp_format="%d.%m.%Y %H:%M")
    assert parser.parse_line('at="07.12.2026 20:12" x=1').timestamp_ms == ms(
        "2026-12-07T20:12:00+00:00"
    )
    wrong = parser.parse_line('at="2026-12-07" x=1')
    assert (wrong.timestamp_ms, wrong.problems) == (None, ("bad-timestamp",))
    missing = parser.parse_line("x=1")
    assert missing.problems == ("missing-timestamp",)
    unix = LogParser("json", timestamp_field="t", timestamp_format="unix").parse_line(
        '{"t": "12.5"}'
    )
    assert unix.timestamp_ms == 12500


@given(
    st.datetimes(
        min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    )
)
def test_iso_and_http_dates_agree_with_datetime(moment: datetime) -> None:
    expected = int(moment.timestamp() * 1000)
    assert parse_timestamp(moment.isoformat()) == expected
    http = moment.strftime("%d/%b/%Y:%H:%M:%S +0000")
    assert parse_timestamp(http) == expected - moment.microsecond // 1000


# -- damaged input ------------------------------------------------------------


def test_invalid_utf8_is_replaced_and_counted() -> None:
    result = parse_lines([b"level=info msg=caf\xe9", b'{"ok": "\xc3\xa9"}'])
    first, second = result.records
    assert first.fields["msg"] == "caf\ufffd"
    assert first.problems == ("invalid-utf8",)
    assert second.fields == {"ok": "é"}
    assert result.problems == {"invalid-utf8": 1}


def test_overlong_lines_are_truncated_and_counted() -> None:
    record = parse_line("x" * 5000, max_line_length=100)
    assert record.raw == "x" * 100 + TRUNCATION_MARKER
    assert record.problems == ("truncated",)
    with pytest.raises(InvalidInput):
        LogParser(max_line_length=0)


def test_binary_garbage_is_plain_text() -> None:
    record = parse_line(bytes(range(256)))
    assert record.format == "text"
    assert "invalid-utf8" in record.problems


def test_line_endings_are_dropped_and_bad_types_refused() -> None:
    assert parse_line("msg=x\r\n").fields == {"msg": "x"}
    with pytest.raises(InvalidInput):
        parse_line(42)  # type: ignore[arg-type]


# -- fuzzing: every format, random text and bytes ------------------------------

_GROK = "%{IP:ip} %{NUMBER:n:int} %{GREEDYDATA:rest}"
_PARSERS = {
    name: LogParser(name, reference_year=2020, pattern=_GROK if name == "regex" else None)
    for name in FORMATS
}
_FRAGMENTS = st.sampled_from(
    [
        "<34>",
        "1 ",
        '{"',
        '"',
        "=",
        "[",
        "]",
        "\\",
        " ",
        "Oct 11 22:14:15 ",
        "- ",
        "2003-10-11T22:14:15Z ",
        "10.0.0.1 ",
        "[10/Oct/2000:13:55:36 -0700] ",
        '"GET / HTTP/1.1" ',
        "200 ",
        "a=",
        "\ufeff",
        "}",
        ":",
        "\x00",
    ]
)
_LINES = st.one_of(
    st.text(max_size=200),
    st.lists(_FRAGMENTS | st.text(max_size=5), max_size=25).map("".join),
)


def _check(parser: LogParser, line: str | bytes) -> None:
    try:
        record = parser.parse_line(line)
    except LogParseError as error:
        assert error.line == 1
        assert error.reason
        return
    assert isinstance(record, LogRecord)
    assert isinstance(record.message, str)
    assert record.timestamp_ms is None or isinstance(record.timestamp_ms, int)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FORMATS), _LINES)
def test_fuzz_text_never_raises_other_errors(name: str, line: str) -> None:
    _check(_PARSERS[name], line)
    if name in ("auto", "text"):
        assert isinstance(_PARSERS[name].parse_line(line), LogRecord)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(FORMATS), st.binary(max_size=200))
def test_fuzz_bytes_never_raises_other_errors(name: str, data: bytes) -> None:
    _check(_PARSERS[name], data)


@settings(max_examples=50, deadline=None)
@given(st.lists(_LINES, max_size=20))
def test_fuzz_batches_account_for_every_line(lines: list[str]) -> None:
    lines = [line.replace("\n", " ") for line in lines]
    result = parse_lines(lines, "logfmt")
    non_blank = sum(1 for line in lines if line.strip())
    assert len(result.records) + len(result.errors) == non_blank
