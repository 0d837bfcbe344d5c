"""trusswork.http's request parser against the parsers Python servers use.

Groups (peers in brackets; ours is ``trusswork``):

- ``http-parse-head``: one browser-like GET request (about 700 bytes, 10
  header fields) from bytes to method, target and the list of header
  fields [``httptools`` (llhttp, what uvicorn uses), ``h11`` (pure Python,
  what httpx and hypercorn use)];
- ``http-parse-chunked``: a POST with a 64 KiB body in 16 chunks of 4 KiB,
  from bytes to the de-chunked body [``httptools``, ``h11``].

Every implementation first proves it returns the same headers (or body) as
ours on the same bytes.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from trusswork.http import parse_request

HEAD = (
    b"GET /api/v1/users/42/posts?limit=20&cursor=eyJpZCI6MTAwfQ HTTP/1.1\r\n"
    b"Host: api.example.com\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"
    b" Chrome/126.0 Safari/537.36\r\n"
    b"Accept: application/json, text/plain, */*\r\n"
    b"Accept-Language: en-US,en;q=0.9,de;q=0.8\r\n"
    b"Accept-Encoding: gzip, deflate, br\r\n"
    b"Authorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI0MiJ9.sig\r\n"
    b"Cookie: session=8f14e45fceea167a5a36dedd4bea2543; theme=dark; lang=en\r\n"
    b"Referer: https://app.example.com/users/42\r\n"
    b"Connection: keep-alive\r\n"
    b"X-Request-Id: 7b1c9a4e-2f3d-4e5f-8a9b-0c1d2e3f4a5b\r\n"
    b"\r\n"
)
CHUNK = bytes(range(256)) * 16  # 4 KiB
CHUNKED = (
    b"POST /upload HTTP/1.1\r\nHost: api.example.com\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"".join(b"1000\r\n" + CHUNK + b"\r\n" for _ in range(16))
    + b"0\r\n\r\n"
)
BODY = CHUNK * 16


def _peer(bench: Any, group: str, impl: str) -> Any:
    try:
        return importlib.import_module(impl)
    except ImportError as exc:
        bench.missing(group, impl, f"cannot import {impl}: {exc}")


def httptools_parse(httptools: Any) -> Any:
    class Collector:
        __slots__ = ("body", "headers", "url")

        def __init__(self) -> None:
            self.headers: list[tuple[bytes, bytes]] = []
            self.body: list[bytes] = []
            self.url = b""

        def on_url(self, url: bytes) -> None:
            self.url += url

        def on_header(self, name: bytes, value: bytes) -> None:
            self.headers.append((name, value))

        def on_body(self, body: bytes) -> None:
            self.body.append(body)

    def parse(data: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
        collector = Collector()
        parser = httptools.HttpRequestParser(collector)
        parser.feed_data(data)
        parser.get_method()
        return collector.headers, b"".join(collector.body)

    return parse


def h11_parse(h11: Any) -> Any:
    def parse(data: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
        conn = h11.Connection(h11.SERVER)
        conn.receive_data(data)
        request = conn.next_event()
        body = []
        while True:
            event = conn.next_event()
            if isinstance(event, h11.Data):
                body.append(event.data)
            else:
                break
        return list(request.headers.raw_items()), b"".join(body)

    return parse


def ours(data: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    request = parse_request(data)
    return request.headers, request.body


def _impl(bench: Any, group: str, impl: str) -> Any:
    if impl == "trusswork":
        return ours
    module = _peer(bench, group, impl)
    return httptools_parse(module) if impl == "httptools" else h11_parse(module)


@pytest.mark.parametrize("impl", ["trusswork", "httptools", "h11"])
def test_parse_head(bench: Any, impl: str) -> None:
    group = "http-parse-head"
    parse = _impl(bench, group, impl)
    headers, _ = parse(HEAD)
    assert [(n.lower(), v) for n, v in headers] == [(n.lower(), v) for n, v in ours(HEAD)[0]]
    result = bench(group, impl, parse, HEAD, bytes=len(HEAD))
    assert len(result[0]) == 10


@pytest.mark.parametrize("impl", ["trusswork", "httptools", "h11"])
def test_parse_chunked(bench: Any, impl: str) -> None:
    group = "http-parse-chunked"
    parse = _impl(bench, group, impl)
    assert parse(CHUNKED)[1] == BODY
    result = bench(group, impl, parse, CHUNKED, bytes=len(CHUNKED))
    assert len(result[1]) == len(BODY)
