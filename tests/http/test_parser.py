"""trusswork.http request parser and response head writer: what callers rely on.

Happy paths, one crafted request per strictness rule (the request-smuggling
cases among them), the size limits, chunked bodies with extensions and
trailers, pipelining, and the incremental contract: any split of the input
gives the same requests and the same error as one call. The llhttp corpus,
the differential tests against h11/httptools and the fuzz test live in
their own files.
"""

from __future__ import annotations

import pytest

from trusswork.core.errors import InvalidInput, ParseError
from trusswork.http import (
    ERROR_NAMES,
    HttpParseError,
    Request,
    RequestParser,
    format_head,
    parse_request,
    parse_requests,
    reason_phrase,
)

HEAD = b"POST /upload HTTP/1.1\r\nHost: example.com\r\n"


def feed_in_pieces(data: bytes, size: int, **limits: int) -> list[Request] | tuple[str, int]:
    """Feed ``data`` ``size`` bytes at a time; the requests, or (error, offset)."""
    parser = RequestParser(**limits)
    out: list[Request] = []
    try:
        for start in range(0, len(data), size):
            out += parser.feed(data[start : start + size])
        parser.finish()
    except HttpParseError as e:
        return (e.error, e.offset)
    return out


def outcome(data: bytes, **limits: int) -> list[Request] | tuple[str, int]:
    return feed_in_pieces(data, max(len(data), 1), **limits)


# ---------------------------------------------------------------- happy paths


def test_a_simple_get_is_parsed_into_str_fields_and_byte_headers() -> None:
    request = parse_request(b"GET /a/b?c=d HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n")
    assert request.method == "GET"
    assert request.target == "/a/b?c=d"
    assert request.version == "1.1"
    assert request.headers == [(b"Host", b"example.com"), (b"Accept", b"*/*")]
    assert request.body == b""
    assert request.keep_alive is True
    assert request.content_length is None
    assert request.chunked is False


def test_header_values_lose_surrounding_whitespace_but_keep_inner_and_obs_text() -> None:
    request = parse_request(b"GET / HTTP/1.1\r\nA: \t one  two \t\r\nB:\r\nC: caf\xc3\xa9\r\n\r\n")
    assert request.headers == [(b"A", b"one  two"), (b"B", b""), (b"C", b"caf\xc3\xa9")]
    assert request.header(b"a") == b"one  two"
    assert request.header(b"missing") is None


def test_a_content_length_body_is_returned_whole() -> None:
    request = parse_request(HEAD + b"Content-Length: 11\r\n\r\nhello world")
    assert request.body == b"hello world"
    assert request.content_length == 11


def test_a_chunked_body_is_dechunked_with_extensions_and_trailers_dropped() -> None:
    wire = (
        HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
        b'5;name=value;q="a \\" b"\r\nhello\r\n'
        b"6 ; ext\r\n world\r\n"
        b"0\r\nChecksum: abc\r\nX-Trailer: 1\r\n\r\n"
    )
    request = parse_request(wire)
    assert request.body == b"hello world"
    assert request.chunked is True
    assert request.content_length is None


@pytest.mark.parametrize(
    ("wire", "keep_alive"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", False),
        (b"GET / HTTP/1.1\r\nConnection: foo, CLOSE\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", True),
    ],
)
def test_keep_alive_follows_the_version_and_connection_tokens(
    wire: bytes, keep_alive: bool
) -> None:
    assert parse_request(wire).keep_alive is keep_alive


def test_expect_continue_and_upgrade_are_reported() -> None:
    request = parse_request(
        b"GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Expect: 100-continue\r\n\r\n"
    )
    assert request.upgrade is True
    assert request.expect_continue is True


def test_upgrade_is_ignored_in_http_1_0() -> None:
    wire = b"GET / HTTP/1.0\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n"
    assert len(parse_requests(wire + wire)) == 2
    assert parse_request(wire).upgrade is False


@pytest.mark.parametrize(
    ("coding", "valid"),
    [
        (b'gzip; level=1 ;q = "a, \\" b" , chunked', True),
        (b'gzip;a="x, chunked', False),
        (b"gzip;((((, chunked", False),
        (b"gzip;, chunked", False),
        (b"gzip;a, chunked", False),
        (b"gzip;a=, chunked", False),
    ],
)
def test_transfer_coding_parameters_follow_their_grammar(coding: bytes, valid: bool) -> None:
    wire = HEAD + b"Transfer-Encoding: " + coding + b"\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    if valid:
        assert parse_request(wire).body == b"abc"
    else:
        with pytest.raises(HttpParseError) as info:
            parse_request(wire)
        assert info.value.error == "transfer-encoding"


@pytest.mark.parametrize(
    ("wire", "target"),
    [
        (b"OPTIONS * HTTP/1.1\r\n\r\n", "*"),
        (b"CONNECT example.com:443 HTTP/1.1\r\n\r\n", "example.com:443"),
        (b"GET http://example.com/x?y HTTP/1.1\r\n\r\n", "http://example.com/x?y"),
        (b"\r\n\r\nGET /after-empty-lines HTTP/1.1\r\n\r\n", "/after-empty-lines"),
    ],
)
def test_every_request_target_form_in_its_place(wire: bytes, target: str) -> None:
    assert parse_request(wire).target == target


def test_an_unknown_method_token_is_accepted_for_the_server_to_refuse() -> None:
    assert parse_request(b"MKCOLA / HTTP/1.1\r\n\r\n").method == "MKCOLA"


def test_requests_compare_equal_by_content() -> None:
    wire = b"GET / HTTP/1.1\r\nA: b\r\n\r\n"
    assert parse_request(wire) == parse_request(wire)
    assert parse_request(wire) != parse_request(b"GET /x HTTP/1.1\r\nA: b\r\n\r\n")
    assert "GET" in repr(parse_request(wire))


# ---------------------------------------------------------------- strictness

# name -> (wire, error name, offset of the offending byte)
REJECTED: dict[str, tuple[bytes, str, int]] = {
    "method-not-a-token": (b"G(T / HTTP/1.1\r\n\r\n", "method", 1),
    "empty-method": (b" / HTTP/1.1\r\n\r\n", "method", 0),
    "double-space": (b"GET  / HTTP/1.1\r\n\r\n", "target", 4),
    "tab-separator": (b"GET\t/ HTTP/1.1\r\n\r\n", "method", 3),
    "space-in-target": (b"GET /a b HTTP/1.1\r\n\r\n", "version", 7),
    "control-in-target": (b"GET /a\x01 HTTP/1.1\r\n\r\n", "target", 6),
    "del-in-target": (b"GET /a\x7f HTTP/1.1\r\n\r\n", "target", 6),
    "non-ascii-target": (b"GET /\xce\xb4 HTTP/1.1\r\n\r\n", "target", 5),
    "asterisk-not-options": (b"GET * HTTP/1.1\r\n\r\n", "target", 4),
    "authority-not-connect": (b"GET example.com HTTP/1.1\r\n\r\n", "target", 14),
    "connect-origin-form": (b"CONNECT /x HTTP/1.1\r\n\r\n", "target", 8),
    "connect-without-port": (b"CONNECT example.com HTTP/1.1\r\n\r\n", "target", 18),
    "lowercase-http": (b"GET / http/1.1\r\n\r\n", "version", 6),
    "two-digit-version": (b"GET / HTTP/1.10\r\n\r\n", "version", 14),
    "trailing-space-version": (b"GET / HTTP/1.1 \r\n\r\n", "version", 14),
    "http-2": (b"GET / HTTP/2.0\r\n\r\n", "version-unsupported", 6),
    "http-1-2": (b"GET / HTTP/1.2\r\n\r\n", "version-unsupported", 6),
    "no-version": (b"GET /\r\n\r\n", "target", 5),
    "bare-lf-request-line": (b"GET / HTTP/1.1\nHost: a\r\n\r\n", "bare-lf", 14),
    "bare-lf-header": (b"GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", "bare-lf", 23),
    "bare-lf-end-of-head": (b"GET / HTTP/1.1\r\nHost: a\r\n\n", "bare-lf", 25),
    "bare-cr-header": (b"GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n", "bare-cr", 23),
    "bare-cr-request-line": (b"GET / HTTP/1.1\rHost: a\r\n\r\n", "bare-cr", 14),
    "space-before-colon": (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", "whitespace-before-colon", 20),
    "tab-before-colon": (
        HEAD + b"Transfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n",
        "whitespace-before-colon",
        59,
    ),
    "space-in-name": (b"GET / HTTP/1.1\r\nHo st: a\r\n\r\n", "header-name", 18),
    "empty-name": (b"GET / HTTP/1.1\r\n: a\r\n\r\n", "header-name", 16),
    "no-colon": (b"GET / HTTP/1.1\r\nHost\r\n\r\n", "header-name", 20),
    "obs-fold": (b"GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", "obs-fold", 22),
    "leading-whitespace": (b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", "leading-whitespace", 16),
    "nul-in-value": (b"GET / HTTP/1.1\r\nA: b\x00c\r\n\r\n", "header-value", 20),
    "control-in-value": (b"GET / HTTP/1.1\r\nA: \x1b\r\n\r\n", "header-value", 19),
    "del-in-value": (b"GET / HTTP/1.1\r\nA: \x7f\r\n\r\n", "header-value", 19),
    "two-hosts": (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "host-duplicate", 25),
    "duplicate-content-length": (
        HEAD + b"Content-Length: 1\r\nContent-Length: 1\r\n\r\nx",
        "content-length-duplicate",
        61,
    ),
    "content-length-list": (
        HEAD + b"Content-Length: 1, 1\r\n\r\nx",
        "content-length-duplicate",
        59,
    ),
    "content-length-sign": (HEAD + b"Content-Length: +1\r\n\r\nx", "content-length", 58),
    "content-length-hex": (HEAD + b"Content-Length: 0x1\r\n\r\nx", "content-length", 59),
    "content-length-empty": (HEAD + b"Content-Length: \r\n\r\n", "content-length", 58),
    "content-length-inner-space": (HEAD + b"Content-Length: 1 2\r\n\r\nx", "content-length", 59),
    "content-length-and-chunked": (
        HEAD + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "content-length-with-transfer-encoding",
        61,
    ),
    "chunked-and-content-length": (
        HEAD + b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
        "content-length-with-transfer-encoding",
        70,
    ),
    "te-not-chunked": (
        HEAD + b"Transfer-Encoding: gzip\r\n\r\n",
        "transfer-encoding-not-chunked",
        42,
    ),
    "te-chunked-not-last": (
        HEAD + b"Transfer-Encoding: chunked, gzip\r\n\r\n",
        "transfer-encoding-not-chunked",
        70,
    ),
    "te-chunked-twice": (
        HEAD + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "transfer-encoding-chunked-twice",
        89,
    ),
    "te-empty-element": (HEAD + b"Transfer-Encoding: , chunked\r\n\r\n", "transfer-encoding", 61),
    "te-quoted": (HEAD + b'Transfer-Encoding: "chunked"\r\n\r\n', "transfer-encoding", 61),
    "te-chunked-parameter": (
        HEAD + b"Transfer-Encoding: chunked;q=1\r\n\r\n",
        "transfer-encoding",
        68,
    ),
    "te-in-http-1-0": (
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "transfer-encoding-http10",
        17,
    ),
}

CHUNKED = HEAD + b"Transfer-Encoding: chunked\r\n\r\n"  # the body starts at byte 72
BODY = len(CHUNKED)

REJECTED_CHUNKED: dict[str, tuple[bytes, str, int]] = {
    "chunk-size-missing": (b"\r\n", "chunk-size", 0),
    "chunk-size-sign": (b"-5\r\n", "chunk-size", 0),
    "chunk-size-prefix": (b"0x5\r\n", "chunk-size", 1),
    "chunk-size-leading-space": (b" 5\r\n", "chunk-size", 0),
    "chunk-size-trailing-space": (b"3 \r\nabc\r\n0\r\n\r\n", "chunk-size", 2),
    "chunk-size-17-digits": (b"00000000000000001\r\n", "chunk-size", 16),
    "chunk-size-overflow": (b"FFFFFFFFFFFFFFFFFFFF\r\n", "body-too-large", 7),
    "chunk-size-bare-lf": (b"3\nabc\r\n0\r\n\r\n", "bare-lf", 1),
    "chunk-size-bare-cr": (b"3\rabc\r\n0\r\n\r\n", "bare-cr", 1),
    "chunk-data-too-long": (b"3\r\nabcd\r\n0\r\n\r\n", "chunk-data-crlf", 6),
    "chunk-data-bare-lf": (b"3\r\nabc\n0\r\n\r\n", "chunk-data-crlf", 6),
    "chunk-extension-empty": (b"3;\r\nabc\r\n0\r\n\r\n", "chunk-extension", 2),
    "chunk-extension-no-value": (b"3;a=\r\nabc\r\n0\r\n\r\n", "chunk-extension", 4),
    "chunk-extension-control": (b"3;a=\x01\r\nabc\r\n0\r\n\r\n", "chunk-extension", 4),
    "trailer-obs-fold": (b"0\r\nA: 1\r\n b\r\n\r\n", "obs-fold", 9),
    "trailer-space-before-colon": (b"0\r\nA : 1\r\n\r\n", "whitespace-before-colon", 4),
    "trailer-nul": (b"0\r\nA: \x00\r\n\r\n", "header-value", 6),
    "trailer-bare-lf": (b"0\r\nA: 1\n\r\n", "bare-lf", 7),
    "last-chunk-bare-lf": (b"0\r\n\n", "bare-lf", 3),
}


@pytest.mark.parametrize(("wire", "error", "offset"), list(REJECTED.values()), ids=list(REJECTED))
def test_the_strict_parser_rejects(wire: bytes, error: str, offset: int) -> None:
    with pytest.raises(HttpParseError) as info:
        parse_request(wire)
    assert (info.value.error, info.value.offset) == (error, offset)
    assert info.value.http_status == (505 if error == "version-unsupported" else 400)
    assert f"at byte {offset}" in str(info.value)
    assert error in ERROR_NAMES


@pytest.mark.parametrize(
    ("body", "error", "offset"), list(REJECTED_CHUNKED.values()), ids=list(REJECTED_CHUNKED)
)
def test_bad_chunked_framing_is_rejected(body: bytes, error: str, offset: int) -> None:
    with pytest.raises(HttpParseError) as info:
        parse_request(CHUNKED + body)
    assert (info.value.error, info.value.offset) == (error, BODY + offset)


def test_a_parse_error_is_a_parse_error_with_line_column_and_caret() -> None:
    with pytest.raises(ParseError) as info:
        parse_request(b"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n")
    error = info.value
    assert isinstance(error, InvalidInput)
    assert (error.line, error.column) == (3, 4)
    assert str(error).startswith("<request>:3:4: invalid header name at byte 28")
    assert error.snippet().splitlines()[-1].endswith("   ^")


def test_incomplete_and_extra_input_are_errors_of_parse_request() -> None:
    for wire in (b"", b"GET / HTTP/1.1\r\nHost: a\r\n", HEAD + b"Content-Length: 5\r\n\r\nabc"):
        with pytest.raises(HttpParseError, match="incomplete request") as info:
            parse_request(wire)
        assert info.value.error == "incomplete"
    with pytest.raises(HttpParseError, match="extra bytes after the request at byte 18"):
        parse_request(b"GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n")
    with pytest.raises(HttpParseError, match="inside the request body"):
        parse_request(CHUNKED + b"5\r\nhel")


# ---------------------------------------------------------------- limits


@pytest.mark.parametrize(
    ("wire", "limits", "error", "status"),
    [
        (
            b"GET /" + b"a" * 20 + b" HTTP/1.1\r\n\r\n",
            {"max_request_line": 20},
            "request-line-too-long",
            414,
        ),
        (
            b"GET / HTTP/1.1\r\nA: " + b"b" * 20 + b"\r\n\r\n",
            {"max_header_line": 20},
            "header-line-too-long",
            431,
        ),
        (b"GET / HTTP/1.1\r\n" + b"A: b\r\n" * 20, {"max_head": 100}, "head-too-large", 431),
        (
            b"GET / HTTP/1.1\r\n" + b"A: b\r\n" * 4 + b"\r\n",
            {"max_headers": 3},
            "too-many-headers",
            431,
        ),
        (HEAD + b"Content-Length: 11\r\n\r\nhello world", {"max_body": 10}, "body-too-large", 413),
        (
            CHUNKED + b"6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n",
            {"max_body": 10},
            "body-too-large",
            413,
        ),
        (
            CHUNKED + b"1;" + b"a" * 10 + b"\r\nx\r\n0\r\n\r\n",
            {"max_chunk_ext": 8},
            "chunk-extension-too-long",
            400,
        ),
        (
            CHUNKED + b"0\r\n" + b"A: b\r\n" * 20 + b"\r\n",
            {"max_head": 100},
            "trailers-too-large",
            431,
        ),
    ],
)
def test_limits_are_enforced_with_the_matching_status(
    wire: bytes, limits: dict[str, int], error: str, status: int
) -> None:
    with pytest.raises(HttpParseError) as info:
        parse_request(wire, **limits)
    assert (info.value.error, info.value.http_status) == (error, status)
    # Byte by byte, the limit is hit at the same place without waiting for the line's end.
    assert feed_in_pieces(wire, 1, **limits) == (error, info.value.offset)


def test_limits_at_their_exact_value_are_accepted() -> None:
    assert parse_request(b"GET /" + b"a" * 6 + b" HTTP/1.1\r\n\r\n", max_request_line=20)
    assert parse_request(HEAD + b"Content-Length: 10\r\n\r\n0123456789", max_body=10).body
    wire = b"GET / HTTP/1.1\r\n" + b"A: b\r\n" * 3 + b"\r\n"
    assert len(parse_request(wire, max_headers=3, max_head=len(wire)).headers) == 3


@pytest.mark.parametrize(
    "limits",
    [{"max_head": 0}, {"max_head": 2**31 + 1}, {"max_headers": 0}, {"max_body": 2**62 + 1}],
)
def test_out_of_range_limits_are_invalid_input(limits: dict[str, int]) -> None:
    with pytest.raises(InvalidInput):
        RequestParser(**limits)


# ---------------------------------------------------------------- pipelining, incremental

PIPELINE = (
    b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n"
    + HEAD
    + b"Content-Length: 3\r\n\r\nabc"
    + CHUNKED
    + b"3;x=y\r\ndef\r\n0\r\nT: 1\r\n\r\n"
    + b"\r\nDELETE /three HTTP/1.0\r\n\r\n"
)


def test_pipelined_requests_in_one_buffer_are_all_parsed_in_order() -> None:
    requests = parse_requests(PIPELINE)
    assert [(r.method, r.target, r.body) for r in requests] == [
        ("GET", "/one", b""),
        ("POST", "/upload", b"abc"),
        ("POST", "/upload", b"def"),
        ("DELETE", "/three", b""),
    ]
    assert parse_requests(b"") == []


GOOD = [
    PIPELINE,
    HEAD + b"Content-Length: 11\r\n\r\nhello world",
    CHUNKED + b'5;name=value;q="a \\" b"\r\nhello\r\n6 ; ext\r\n world\r\n0\r\nA: 1\r\n\r\n',
    b"GET / HTTP/1.1\r\nA: \t one  two \t\r\nB:\r\nC: caf\xc3\xa9\r\n\r\n",
]


@pytest.mark.parametrize(
    "wire",
    GOOD
    + [w for w, _, _ in REJECTED.values()]
    + [CHUNKED + b for b, _, _ in REJECTED_CHUNKED.values()],
)
def test_feeding_byte_by_byte_gives_what_one_call_gives(wire: bytes) -> None:
    whole = outcome(wire)
    assert feed_in_pieces(wire, 1) == whole
    assert feed_in_pieces(wire, 7) == whole


@pytest.mark.parametrize("wire", [*GOOD[1:], b"CONNECT a:1 HTTP/1.1\r\nContent-Length: 1\r\n\r\n"])
def test_parse_request_gives_the_same_for_bytes_buffers_and_explicit_limits(wire: bytes) -> None:
    # bytes without limits take a fast path; the others the incremental parser.
    expected = parse_request(wire)
    assert parse_request(bytearray(wire)) == expected
    assert parse_request(memoryview(wire), max_body=2**30) == expected
    assert feed_in_pieces(wire, 1) == [expected]


def test_every_split_point_of_a_pipeline_gives_the_same_requests() -> None:
    whole = parse_requests(PIPELINE)
    for cut in range(len(PIPELINE) + 1):
        parser = RequestParser()
        got = parser.feed(PIPELINE[:cut]) + parser.feed(PIPELINE[cut:])
        parser.finish()
        assert got == whole, cut


@pytest.mark.parametrize(
    "data", [b"G(T / HTTP/1.1", b"GET / HTTP/1.1\r\nX(Y: z", b"GET / HTTP/1.1\r\nHost : z"]
)
def test_an_error_in_an_unfinished_line_is_reported_when_the_stream_ends(data: bytes) -> None:
    at_once = outcome(data)
    assert isinstance(at_once, tuple) and at_once[0] != "incomplete"
    assert feed_in_pieces(data, 1) == at_once


def test_the_parser_reports_what_it_holds_and_stays_failed() -> None:
    parser = RequestParser()
    assert parser.at_boundary
    assert parser.feed(HEAD + b"Content-Length: 5\r\n\r\nab") == []
    assert parser.pending_bytes == len(HEAD) + 21 + 2
    assert not parser.at_boundary
    with pytest.raises(HttpParseError, match="inside the request body"):
        parser.finish()
    (request,) = parser.feed(b"cde")
    assert request.body == b"abcde"
    assert parser.at_boundary and parser.pending_bytes == 0
    with pytest.raises(HttpParseError) as first:
        parser.feed(b"GET / HTTP/1.1\r\nA\x00: b\r\n\r\n")
    assert first.value.offset == len(HEAD) + 21 + 5 + 17
    with pytest.raises(HttpParseError) as again:
        parser.feed(b"GET / HTTP/1.1\r\n\r\n")
    assert again.value is first.value


def test_a_connect_request_has_no_body_whatever_content_length_says() -> None:
    wire = b"CONNECT example.com:443 HTTP/1.1\r\nContent-Length: 4\r\n\r\n"
    parser = RequestParser()
    (request,) = parser.feed(wire + b"\x16\x03tls")
    assert (request.body, request.upgrade, request.content_length) == (b"", True, 4)
    assert parser.take_rest() == b"\x16\x03tls"


def test_after_an_upgrade_request_the_rest_is_left_for_the_new_protocol() -> None:
    wire = b"GET /ws HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x05hello"
    parser = RequestParser()
    (request,) = parser.feed(wire)
    assert request.upgrade and parser.upgraded
    assert parser.feed(b"more") == []
    assert parser.take_rest() == b"\x81\x05hellomore"
    assert [r.target for r in parse_requests(wire)] == ["/ws"]


# ---------------------------------------------------------------- response heads


def test_format_head_writes_the_status_line_and_fields_in_order() -> None:
    head = format_head(200, [(b"Content-Type", b"text/plain"), (b"Content-Length", b"5")])
    assert head == b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n"
    assert format_head(404, reason=b"Nowhere", version="1.0") == b"HTTP/1.0 404 Nowhere\r\n\r\n"
    assert format_head(599) == b"HTTP/1.1 599 \r\n\r\n"
    assert format_head(431).startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert reason_phrase(503) == b"Service Unavailable"
    many = [(b"X-%d" % i, b"v" * i) for i in range(100)]
    assert parse_request(b"GET / HTTP/1.1\r\n" + format_head(200, many)[17:]).headers == many


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"status": 99}, "status must be in 100..999"),
        ({"status": 1000}, "status must be in 100..999"),
        ({"status": 200, "version": "2"}, "version must be"),
        ({"status": 200, "reason": b"OK\r\nSet-Cookie: x"}, "reason phrase"),
        ({"status": 200, "headers": [(b"A", b"x\r\nSet-Cookie: y")]}, "value of header 0"),
        ({"status": 200, "headers": [(b"A", b"ok"), (b"B", b"\n")]}, "value of header 1"),
        ({"status": 200, "headers": [(b"A", b"\x00")]}, "value of header 0"),
        ({"status": 200, "headers": [(b"A\r\nB", b"x")]}, "header 0 has an invalid name"),
        ({"status": 200, "headers": [(b"", b"x")]}, "header 0 has an invalid name"),
        ({"status": 200, "headers": [("A", "x")]}, "must be a \\(bytes, bytes\\) pair"),
    ],
)
def test_format_head_refuses_response_splitting_and_bad_arguments(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        format_head(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad", ["GET / HTTP/1.1\r\n\r\n", 5, None, memoryview(b"GET / HTTP/1.1\r\n\r\n")[::2]]
)
def test_input_that_is_not_bytes_is_invalid_input(bad: object) -> None:
    with pytest.raises(InvalidInput, match="reads bytes"):
        parse_request(bad)  # type: ignore[arg-type]


def test_a_contiguous_memoryview_parses_like_bytes() -> None:
    data = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n"
    assert parse_request(memoryview(data)).target == parse_request(data).target


def test_feed_error_carries_the_requests_completed_before_it() -> None:
    parser = RequestParser()
    good = (
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok"
    )
    with pytest.raises(HttpParseError) as caught:
        parser.feed(good + b"GET /c HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n")
    assert [(r.method, r.target, r.body) for r in caught.value.requests] == [
        ("GET", "/a", b""),
        ("POST", "/b", b"ok"),
    ]
    assert caught.value.error == "header-name"
    with pytest.raises(HttpParseError) as again:  # later calls fail the same way, with no requests
        parser.feed(b"GET /d HTTP/1.1\r\nHost: x\r\n\r\n")
    assert again.value.requests == []
