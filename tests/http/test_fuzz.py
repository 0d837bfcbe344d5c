"""Fuzzing ``trusswork.http.parse_request``: any bytes in, a Request or ParseError out.

Inputs are random bytes, random bytes behind a valid request line, and
valid requests damaged by bit flips, inserted and deleted bytes (the
inserted bytes biased towards the ones HTTP framing turns on: CR, LF, SP,
HTAB, ':', ';', digits and NUL). Properties:

* nothing but :class:`~trusswork.core.errors.ParseError` is ever raised
  (and the process does not crash: the C parser runs in this process);
* an accepted request is self-consistent: written out again (fields as
  parsed, the body framed by its own Content-Length or as one chunk) it
  parses to the same request, and its body length matches its
  Content-Length;
* every strict prefix of a valid request is incomplete, so rejected.

Budgets are small by default (the module runs in a few seconds);
``TRUSSWORK_FUZZ=1`` multiplies them by fifty (``helpers.examples``).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from helpers import examples
from trusswork.core.errors import ParseError
from trusswork.http import parse_request

SEEDS: list[bytes] = [
    b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    b"GET /a/b?c=d&e=%20f HTTP/1.0\r\nHost: h\r\nAccept: */*\r\nX-Empty:\r\n\r\n",
    b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world",
    (
        b"PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer-Field: v\r\n\r\n"
    ),
    b"\r\nOPTIONS * HTTP/1.1\r\nHost: h\r\nX-A:  padded value \t\r\n\r\n",
    b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    b"GET http://example.com/x HTTP/1.1\r\nHost: example.com\r\nCookie: a=b; c=d\r\n\r\n",
]
SPECIAL = b'\r\n \t:;0123456789aAfF,="\x00\x7f\x80\xff'


def serialize(request: Any) -> bytes:
    """``request`` written out again: its own fields, its body framed the way they say."""
    lines = [f"{request.method} {request.target} HTTP/{request.version}".encode()]
    lines += [name + b": " + value for name, value in request.headers]
    head = b"\r\n".join(lines) + b"\r\n\r\n"
    names = {name.lower() for name, _ in request.headers}
    if b"transfer-encoding" in names:
        body = bytes(request.body)
        chunk = f"{len(body):x}\r\n".encode() + body + b"\r\n" if body else b""
        return head + chunk + b"0\r\n\r\n"
    return head + bytes(request.body)


def fields(request: Any) -> tuple[Any, ...]:
    return (request.method, request.target, request.version, list(request.headers), request.body)


def check_outcome(data: bytes) -> None:
    """``data`` parses to a self-consistent request or raises ParseError; nothing else."""
    try:
        request = parse_request(data)
    except ParseError:
        return
    assert isinstance(request.method, str) and request.method
    assert isinstance(request.target, str) and request.target
    assert request.version in ("1.0", "1.1")
    assert isinstance(request.body, bytes)
    for name, value in request.headers:
        assert isinstance(name, bytes) and name
        assert isinstance(value, bytes)
        assert value == value.strip(b" \t")
        if name.lower() == b"content-length":
            assert int(value) == len(request.body)
    again = parse_request(serialize(request))
    assert fields(again) == fields(request)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A seed request with a few flips, insertions and deletions."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(data)))
        operation = draw(st.sampled_from(["flip", "insert", "insert-special", "delete"]))
        if operation == "flip" and position < len(data):
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif operation == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=4))
        elif operation == "insert-special":
            data.insert(position, draw(st.sampled_from(SPECIAL)))
        else:
            del data[position : position + draw(st.integers(1, 4))]
    return bytes(data)


FUZZ = settings(
    max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@FUZZ
@given(st.binary(max_size=300))
@example(b"")
@example(b"\r\n" * 40)
@example(b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n")
def test_random_bytes_parse_or_raise_parse_error(data: bytes) -> None:
    check_outcome(data)


@FUZZ
@given(st.sampled_from([b"GET / HTTP/1.1\r\n", b"POST /x HTTP/1.1\r\nHost: h\r\n"]), st.binary())
def test_random_bytes_after_a_request_line_parse_or_raise_parse_error(
    prefix: bytes, rest: bytes
) -> None:
    check_outcome(prefix + rest)


@FUZZ
@given(mutated())
def test_mutated_requests_parse_or_raise_parse_error(data: bytes) -> None:
    check_outcome(data)


@pytest.mark.parametrize("seed", SEEDS, ids=range(len(SEEDS)))
def test_every_seed_parses_and_survives_a_round_trip(seed: bytes) -> None:
    request = parse_request(seed)
    assert fields(parse_request(serialize(request))) == fields(request)


@pytest.mark.parametrize("seed", SEEDS, ids=range(len(SEEDS)))
def test_every_strict_prefix_of_a_request_is_rejected(seed: bytes) -> None:
    for end in range(len(seed)):
        with pytest.raises(ParseError):
            parse_request(seed[:end])
