"""``trusswork.http.parse_request`` against h11 and httptools (llhttp) on generated requests.

Valid requests are generated field by field (methods from the token alphabet,
origin-form targets, 0-20 headers with optional whitespace around values,
bodies framed by Content-Length or chunked with random chunk splits,
extensions and trailers), serialized, and parsed by all three parsers; they
must agree on method, target, version, header fields (in order, values
trimmed) and body, and all must agree with the generator's own fields.

httptools (llhttp) only knows a fixed list of methods, so it sees requests
whose method is from that list, and refuses ``chunked`` followed by a tab,
so it sees Content-Length and Transfer-Encoding without padding; h11 sees
every request. Trailer fields are compared for the reference parsers (our
parser checks and drops them).

Then requests that smuggling attacks and sloppy clients produce: ours must
reject each one with ``ParseError``. What h11 0.16 and httptools 0.9
(llhttp) do with them is noted beside each; matching them is not required.

Last, our own two ways in: a ``RequestParser`` fed a stream in random pieces
(or byte by byte) returns the same requests, or fails with the same error
at the same offset, as one fed everything at once.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any

import h11
import httptools
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import examples
from trusswork.core.errors import ParseError
from trusswork.http import HttpParseError, RequestParser, parse_request

# ------------------------------------------------------------------ generated requests

TCHAR = "!#$%&'*+-.^_`|~" + string.digits + string.ascii_letters
# RFC 3986 pchar without pct-encoded (added separately), plus "/" between segments.
PCHAR = string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@"
VISIBLE = "".join(chr(c) for c in range(0x21, 0x7F))
LLHTTP_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "PURGE", "REPORT"]
# Fields whose meaning would change the framing or the connection under test.
RESERVED_NAMES = {"content-length", "transfer-encoding", "host", "connection", "upgrade", "expect"}


@dataclass
class Generated:
    """A request as the generator meant it, and its bytes on the wire."""

    method: str
    target: str
    version: str
    headers: list[tuple[bytes, bytes]]
    body: bytes
    trailers: list[tuple[bytes, bytes]]
    wire: bytes


tokens = st.text(TCHAR, min_size=1, max_size=12)
field_names = tokens.filter(lambda name: name.lower() not in RESERVED_NAMES)
# Visible characters with single inner spaces or tabs, nothing at either end.
field_values = st.lists(st.text(VISIBLE, min_size=1, max_size=12), max_size=4).map(" ".join)
blank = st.sampled_from(["", " ", "\t", "  ", " \t "])
percent = st.tuples(st.sampled_from("0123456789ABCDEFabcdef"), st.sampled_from("0123456789ABCDEF"))
segment = st.lists(
    st.one_of(st.text(PCHAR, min_size=1, max_size=4), percent.map(lambda p: "%" + "".join(p))),
    max_size=4,
).map("".join)
targets = st.builds(
    lambda segments, query: "/" + "/".join(segments) + (f"?{query}" if query is not None else ""),
    st.lists(segment, max_size=5),
    st.none() | st.text(PCHAR + "/?", max_size=20),
)


@st.composite
def requests(
    draw: st.DrawFn, methods: st.SearchStrategy[str] = tokens, *, framing_blanks: bool = True
) -> Generated:
    """A valid HTTP/1.x request with a body framed one of three ways.

    ``framing_blanks=False`` writes Content-Length and Transfer-Encoding without
    blanks around the value: llhttp refuses ``chunked`` followed by a tab.
    """
    method = draw(methods)
    target = draw(targets)
    framing = draw(st.sampled_from(["none", "length", "chunked"]))
    version = "1.1" if framing == "chunked" else draw(st.sampled_from(["1.1", "1.0"]))
    headers = [(b"Host", b"example.com")]
    for _ in range(draw(st.integers(0, 20))):
        headers.append((draw(field_names).encode(), draw(field_values).encode()))
    body = draw(st.binary(max_size=200)) if framing != "none" else b""
    trailers: list[tuple[bytes, bytes]] = []
    payload = b""
    if framing == "length":
        headers.append((b"Content-Length", str(len(body)).encode()))
        payload = body
    elif framing == "chunked":
        headers.append((b"Transfer-Encoding", b"chunked"))
        cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=5)))
        pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
        for piece in pieces:
            if not piece:
                continue  # a zero-size chunk is the last chunk
            size = draw(st.sampled_from(["{:x}", "{:X}", "{:04x}"])).format(len(piece))
            extension = draw(st.sampled_from(["", ";a", ";name=value", ';q="quoted value"']))
            payload += f"{size}{extension}\r\n".encode() + piece + b"\r\n"
        payload += b"0\r\n"
        for _ in range(draw(st.integers(0, 2))):
            trailers.append((draw(field_names).encode(), draw(field_values).encode()))
        for name, value in trailers:
            payload += name + b": " + value + b"\r\n"
        payload += b"\r\n"
    wire = f"{method} {target} HTTP/{version}\r\n".encode()
    for name, value in headers:
        if not framing_blanks and name in (b"Content-Length", b"Transfer-Encoding"):
            wire += name + b": " + value + b"\r\n"
            continue
        wire += name + b":" + draw(blank).encode() + value + draw(blank).encode() + b"\r\n"
    wire += b"\r\n" + payload
    return Generated(method, target, version, headers, body, trailers, wire)


# ------------------------------------------------------------------ the three parsers


@dataclass
class Parsed:
    method: str
    target: str
    version: str
    headers: list[tuple[bytes, bytes]]
    body: bytes
    trailers: list[tuple[bytes, bytes]]


def with_ours(wire: bytes) -> Parsed:
    request = parse_request(wire)
    # Trailer fields are checked by the parser and dropped.
    return Parsed(
        request.method, request.target, request.version, list(request.headers), request.body, []
    )


def with_h11(wire: bytes) -> Parsed:
    connection = h11.Connection(h11.SERVER)
    connection.receive_data(wire)
    request: h11.Request | None = None
    body = b""
    trailers: list[tuple[bytes, bytes]] = []
    while True:
        event = connection.next_event()
        if isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += bytes(event.data)
        elif isinstance(event, h11.EndOfMessage):
            trailers = [(name, value) for name, value in event.headers.raw_items()]
            break
        else:
            raise AssertionError(f"h11 stopped at {event!r}")
    assert request is not None
    return Parsed(
        request.method.decode(),
        request.target.decode(),
        request.http_version.decode(),
        [(name, value) for name, value in request.headers.raw_items()],
        body,
        trailers,
    )


class _Collector:
    """httptools callbacks gathering one request."""

    def __init__(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.trailers: list[tuple[bytes, bytes]] = []
        self.in_trailers = False
        self.body = b""
        self.complete = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        fields = self.trailers if self.in_trailers else self.headers
        fields.append((name, value.strip(b" \t")))

    def on_headers_complete(self) -> None:
        self.in_trailers = True

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.complete = True


def with_httptools(wire: bytes) -> Parsed:
    collector = _Collector()
    parser = httptools.HttpRequestParser(collector)
    parser.feed_data(wire)
    assert collector.complete, "httptools did not complete the message"
    return Parsed(
        parser.get_method().decode(),
        collector.url.decode(),
        parser.get_http_version(),
        collector.headers,
        collector.body,
        collector.trailers,
    )


def expected(generated: Generated) -> Parsed:
    return Parsed(
        generated.method,
        generated.target,
        generated.version,
        generated.headers,
        generated.body,
        generated.trailers,
    )


def _comparable(parsed: Parsed, *, trailers: bool) -> tuple[Any, ...]:
    return (
        parsed.method,
        parsed.target,
        parsed.version,
        parsed.headers,
        parsed.body,
        parsed.trailers if trailers else None,
    )


DIFFERENTIAL = settings(
    max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@DIFFERENTIAL
@given(requests())
def test_ours_h11_and_the_generator_agree(generated: Generated) -> None:
    theirs = with_h11(generated.wire)
    assert _comparable(theirs, trailers=True) == _comparable(expected(generated), trailers=True)
    # Our parser checks trailer fields and drops them.
    ours = with_ours(generated.wire)
    assert _comparable(ours, trailers=False) == _comparable(expected(generated), trailers=False)


@DIFFERENTIAL
@given(requests(methods=st.sampled_from(LLHTTP_METHODS), framing_blanks=False))
def test_ours_httptools_and_the_generator_agree(generated: Generated) -> None:
    theirs = with_httptools(generated.wire)
    assert _comparable(theirs, trailers=True) == _comparable(expected(generated), trailers=True)
    ours = with_ours(generated.wire)
    assert _comparable(ours, trailers=False) == _comparable(expected(generated), trailers=False)


def test_the_reference_parsers_agree_on_a_fixed_request() -> None:
    # Pins the adapters: a failure here is a harness bug, not a parser bug.
    wire = (
        b"POST /a?b=c HTTP/1.1\r\nHost: example.com\r\nX-A:  one two \r\n"
        b"Transfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: v\r\n\r\n"
    )
    want = Parsed(
        "POST",
        "/a?b=c",
        "1.1",
        [(b"Host", b"example.com"), (b"X-A", b"one two"), (b"Transfer-Encoding", b"chunked")],
        b"abc",
        [(b"T", b"v")],
    )
    assert with_h11(wire) == want
    assert with_httptools(wire) == want
    ours = with_ours(wire)
    assert _comparable(ours, trailers=False) == _comparable(want, trailers=False)


# ------------------------------------------------------------------ requests to refuse

HEAD = b"POST / HTTP/1.1\r\nHost: example.com\r\n"

#: id -> (bytes, what h11 and httptools' llhttp do with them).
BAD_REQUESTS: dict[str, tuple[bytes, str]] = {
    # Smuggling: two framings at once (RFC 9112 6.1: reject or treat as an error).
    "content-length-and-chunked": (
        HEAD + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "h11: accepts, llhttp: rejects",
    ),
    "chunked-and-content-length": (
        HEAD + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        "h11: accepts, llhttp: rejects",
    ),
    "two-content-lengths-differ": (
        HEAD + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        "h11: rejects, llhttp: rejects",
    ),
    "content-length-list-differs": (
        HEAD + b"Content-Length: 5, 6\r\n\r\nhello!",
        "h11: rejects, llhttp: rejects",
    ),
    "chunked-then-identity": (
        HEAD + b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        "h11: rejects, llhttp: rejects",
    ),
    "chunked-not-last": (
        HEAD + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
        "h11: rejects, llhttp: rejects",
    ),
    "unknown-transfer-coding": (
        HEAD + b"Transfer-Encoding: pigeons\r\n\r\n",
        "h11: rejects, llhttp: rejects",
    ),
    "space-before-colon": (
        HEAD + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
        "h11: rejects, llhttp: rejects",
    ),
    "tab-before-colon": (
        HEAD + b"Content-Length\t: 0\r\n\r\n",
        "h11: rejects, llhttp: rejects",
    ),
    "obs-fold": (
        HEAD + b"X-A: one\r\n two\r\nContent-Length: 0\r\n\r\n",
        "h11: accepts, llhttp: rejects",
    ),
    "obs-fold-hides-transfer-encoding": (
        HEAD + b"X-A: one\r\n Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n",
        "h11: accepts, llhttp: rejects",
    ),
    "space-before-first-field": (
        b"GET / HTTP/1.1\r\n Host: example.com\r\n\r\n",
        "h11: rejects, llhttp: rejects",
    ),
    # Line endings.
    "bare-lf-request-line": (
        b"GET / HTTP/1.1\nHost: example.com\r\n\r\n",
        "h11: accepts, llhttp: rejects",
    ),
    "bare-lf-header": (
        b"GET / HTTP/1.1\r\nHost: example.com\n\r\n",
        "h11: accepts, llhttp: rejects",
    ),
    "bare-lf-end-of-head": (
        b"GET / HTTP/1.1\r\nHost: example.com\r\n\n",
        "h11: accepts, llhttp: rejects",
    ),
    "bare-cr-header": (
        b"GET / HTTP/1.1\r\nHost: example.com\rX: y\r\n\r\n",
        "h11: rejects, llhttp: rejects",
    ),
    # Bytes no field may hold.
    "nul-in-value": (
        b"GET / HTTP/1.1\r\nHost: example.com\r\nX-A: a\x00b\r\n\r\n",
        "h11: rejects, llhttp: rejects",
    ),
    "nul-in-name": (
        b"GET / HTTP/1.1\r\nHost: example.com\r\nX\x00A: ab\r\n\r\n",
        "h11: rejects, llhttp: rejects",
    ),
    "control-in-value": (
        b"GET / HTTP/1.1\r\nHost: example.com\r\nX-A: a\x01b\r\n\r\n",
        "h11: accepts, llhttp: rejects",
    ),
    "empty-field-name": (
        b"GET / HTTP/1.1\r\nHost: example.com\r\n: value\r\n\r\n",
        "h11: rejects, llhttp: rejects",
    ),
    "no-colon": (
        b"GET / HTTP/1.1\r\nHost: example.com\r\nnocolon\r\n\r\n",
        "h11: rejects, llhttp: rejects",
    ),
    # Content-Length must be 1*DIGIT.
    "negative-content-length": (
        HEAD + b"Content-Length: -1\r\n\r\n",
        "h11: rejects, llhttp: rejects",
    ),
    "plus-content-length": (
        HEAD + b"Content-Length: +5\r\n\r\nhello",
        "h11: rejects, llhttp: rejects",
    ),
    "hex-content-length": (
        HEAD + b"Content-Length: 0x5\r\n\r\nhello",
        "h11: rejects, llhttp: rejects",
    ),
    "empty-content-length": (
        HEAD + b"Content-Length: \r\n\r\n",
        "h11: rejects, llhttp: rejects",
    ),
    "content-length-with-inner-space": (
        HEAD + b"Content-Length: 1 2\r\n\r\n" + b"x" * 12,
        "h11: rejects, llhttp: rejects",
    ),
    "content-length-overflow": (
        HEAD + b"Content-Length: 99999999999999999999999\r\n\r\n",
        "h11: rejects, llhttp: rejects",
    ),
    # Chunked framing.
    "chunk-size-overflow": (
        HEAD + b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
        "h11: rejects, llhttp: rejects",
    ),
    "chunk-size-16-hex-digits": (
        HEAD + b"Transfer-Encoding: chunked\r\n\r\n10000000000000000\r\nabc\r\n0\r\n\r\n",
        "h11: rejects, llhttp: rejects",
    ),
    "chunk-size-not-hex": (
        HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        "h11: rejects, llhttp: rejects",
    ),
    "chunk-size-negative": (
        HEAD + b"Transfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n",
        "h11: rejects, llhttp: rejects",
    ),
    "chunk-size-0x-prefix": (
        HEAD + b"Transfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n",
        "h11: rejects, llhttp: rejects",
    ),
    "chunk-size-empty": (
        HEAD + b"Transfer-Encoding: chunked\r\n\r\n\r\nabc\r\n0\r\n\r\n",
        "h11: rejects, llhttp: rejects",
    ),
    "missing-crlf-after-chunk-data": (
        HEAD + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n",
        "h11: rejects, llhttp: rejects",
    ),
    "chunk-data-longer-than-size": (
        HEAD + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n",
        "h11: rejects, llhttp: rejects",
    ),
    "bare-lf-after-chunk-size": (
        HEAD + b"Transfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n",
        "h11: rejects, llhttp: rejects",
    ),
    "space-after-chunk-size": (
        HEAD + b"Transfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n",
        "h11: accepts, llhttp: rejects",
    ),
    "missing-last-chunk-crlf": (
        HEAD + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n",
        "h11: rejects, llhttp: rejects",
    ),
    # Request line.
    "lowercase-http": (
        b"GET / http/1.1\r\nHost: example.com\r\n\r\n",
        "h11: rejects, llhttp: rejects",
    ),
    "http-2-version": (
        b"GET / HTTP/2.0\r\nHost: example.com\r\n\r\n",
        "h11: accepts, llhttp: accepts",
    ),
    "two-digit-version": (
        b"GET / HTTP/1.10\r\nHost: example.com\r\n\r\n",
        "h11: rejects, llhttp: rejects",
    ),
    "no-version": (
        b"GET /\r\nHost: example.com\r\n\r\n",
        "h11: rejects, llhttp: accepts",
    ),
    "double-space": (
        b"GET  / HTTP/1.1\r\nHost: example.com\r\n\r\n",
        "h11: rejects, llhttp: accepts",
    ),
    "tab-separator": (
        b"GET\t/ HTTP/1.1\r\nHost: example.com\r\n\r\n",
        "h11: rejects, llhttp: rejects",
    ),
    "space-in-target": (
        b"GET /a b HTTP/1.1\r\nHost: example.com\r\n\r\n",
        "h11: rejects, llhttp: rejects",
    ),
    "trailing-space-request-line": (
        b"GET / HTTP/1.1 \r\nHost: example.com\r\n\r\n",
        "h11: rejects, llhttp: rejects",
    ),
    "non-token-method": (
        b"G(T / HTTP/1.1\r\nHost: example.com\r\n\r\n",
        "h11: rejects, llhttp: rejects",
    ),
    "empty-method": (
        b" / HTTP/1.1\r\nHost: example.com\r\n\r\n",
        "h11: rejects, llhttp: rejects",
    ),
    "non-ascii-target": (
        "GET /δ HTTP/1.1\r\nHost: example.com\r\n\r\n".encode(),
        "h11: rejects, llhttp: rejects",
    ),
    # Incomplete input.
    "incomplete-head": (
        b"GET / HTTP/1.1\r\nHost: example.com\r\n",
        "h11: rejects, llhttp: rejects",
    ),
    "incomplete-body": (
        HEAD + b"Content-Length: 10\r\n\r\nhello",
        "h11: rejects, llhttp: rejects",
    ),
    "empty-input": (
        b"",
        "h11: rejects, llhttp: rejects",
    ),
}


@pytest.mark.parametrize(("wire", "reference"), list(BAD_REQUESTS.values()), ids=list(BAD_REQUESTS))
def test_ours_rejects_what_a_strict_parser_must_refuse(wire: bytes, reference: str) -> None:
    try:
        request = parse_request(wire)
    except ParseError:
        return
    pytest.fail(f"accepted as {request!r} (for reference, {reference})")


# ------------------------------------------------------------------ in pieces and at once


def _summary(request: Any) -> tuple[Any, ...]:
    return (
        request.method,
        request.target,
        request.version,
        list(request.headers),
        request.body,
        request.content_length,
        request.chunked,
        request.keep_alive,
        request.upgrade,
        request.expect_continue,
    )


def _stream(pieces: list[bytes]) -> tuple[list[tuple[Any, ...]], tuple[str, int] | None]:
    """Feed ``pieces`` to one RequestParser: the requests, and the error (name, offset) if any."""
    parser = RequestParser()
    requests: list[tuple[Any, ...]] = []
    try:
        for piece in pieces:
            requests += [_summary(request) for request in parser.feed(piece)]
        parser.finish()
    except HttpParseError as error:
        return requests, (error.error, error.offset)
    return requests, None


@st.composite
def streams(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    """One to three pipelined requests, perhaps damaged or cut short, and where to split them."""
    pipelined = draw(st.lists(requests(), min_size=1, max_size=3))
    data = bytearray(b"".join(generated.wire for generated in pipelined))
    for _ in range(draw(st.integers(0, 2))):
        position = draw(st.integers(0, len(data) - 1))
        data[position] = draw(st.sampled_from(b"\r\n :;0aZ\x00\t"))
    if draw(st.booleans()):
        del data[draw(st.integers(1, len(data))) :]  # the stream ends early
    if draw(st.booleans()):
        return bytes(data), list(range(1, len(data)))  # byte by byte
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, len(data) - 1)), max_size=12))))
    return bytes(data), cuts


@DIFFERENTIAL
@given(streams())
def test_feeding_in_pieces_gives_the_same_requests_and_error_as_at_once(
    stream: tuple[bytes, list[int]],
) -> None:
    data, cuts = stream
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    in_pieces, error_in_pieces = _stream(pieces)
    at_once, error_at_once = _stream([data])
    # The same error at the same stream offset. Requests completed by the piece that
    # fails are not returned, so the requests are compared only when nothing fails.
    assert error_in_pieces == error_at_once
    if error_at_once is None:
        assert in_pieces == at_once


@pytest.mark.parametrize(
    "data",
    [b"G(T / HTTP/1.1", b"GET / HTTP/1.1\r\nX(Y: z", b"GET / HTTP/1.1\r\nHost : z"],
    ids=["method", "field-name", "space-before-colon"],
)
def test_an_error_in_an_unfinished_line_is_the_same_in_pieces(data: bytes) -> None:
    # The head parser may defer an error until its line ends when the line arrives in
    # pieces; a stream that ends first must still report it, not "incomplete".
    at_once = _stream([data])
    assert at_once[1] is not None and at_once[1][0] != "incomplete"
    cut = data.index(b"(") if b"(" in data else data.index(b" :")
    assert _stream([data[:cut], data[cut:]]) == at_once


# ------------------------------------------------------------------ transfer-coding parameters


@pytest.mark.parametrize(
    ("coding", "valid"),
    [
        pytest.param(b"gzip; level=1, chunked", True, id="token-parameter"),
        pytest.param(
            b'gzip;name="quoted, with comma", chunked',
            True,
            id="quoted-parameter-with-comma",
        ),
        pytest.param(b'gzip;name="quoted", chunked', True, id="quoted-parameter"),
        pytest.param(b'gzip;a="x, chunked', False, id="unterminated-quote"),
        pytest.param(b"gzip;((((, chunked", False, id="not-a-token"),
        pytest.param(b"gzip;, chunked", False, id="empty-parameter"),
        pytest.param(b"gzip;a, chunked", False, id="no-value"),
        pytest.param(b"gzip;a=, chunked", False, id="empty-value"),
    ],
)
def test_transfer_coding_parameters_follow_the_grammar(coding: bytes, valid: bool) -> None:
    # RFC 9112 7: transfer-parameter = token BWS "=" BWS ( token / quoted-string ). Skipping
    # a parameter up to the next comma would read 'gzip;a="x, chunked' as chunked, where a
    # reader that follows the grammar sees no final chunked coding.
    wire = HEAD + b"Transfer-Encoding: " + coding + b"\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    if valid:
        request = parse_request(wire)
        assert (request.chunked, request.body) == (True, b"abc")
    else:
        with pytest.raises(ParseError):
            parse_request(wire)
