"""Request bodies streamed to ASGI apps: as they arrive, bounded, drained, timed out."""

from __future__ import annotations

import asyncio
import itertools
import socket
import threading
import time
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.http import connect, get, is_closed, read_response, running
from trusswork.http._parser import BODY_END, RequestParser
from trusswork.http._protocol import BODY_BUFFER


class Recorder:
    """An ASGI app that reads the whole body and answers with its size and message count."""

    def __init__(self, *, delay: float = 0.0) -> None:
        self.messages: list[tuple[int, bool]] = []  # (bytes, more_body) per http.request
        self.first = threading.Event()
        self.done = threading.Event()
        self.last: dict[str, Any] = {}
        self.delay = delay

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/ignore":  # answers without reading the body
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ignored"})
            return
        total = count = 0
        while True:
            message = await receive()
            self.last = message
            if message["type"] != "http.request":
                self.done.set()
                return
            self.messages.append((len(message["body"]), message["more_body"]))
            total += len(message["body"])
            count += 1
            self.first.set()
            if self.delay:
                await asyncio.sleep(self.delay)
            if not message["more_body"]:
                break
        self.done.set()
        body = b"%d %d" % (total, count)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})


def post(path: str, *extra: str) -> bytes:
    return get(path, *extra, method="POST")


def test_the_app_gets_the_first_piece_before_the_client_sends_the_last() -> None:
    app = Recorder()
    with running(app) as server, connect(server) as sock:
        sock.sendall(post("/up", "Transfer-Encoding: chunked") + b"5\r\nhello\r\n")
        assert app.first.wait(5), "the app saw nothing of the body while it was arriving"
        assert app.messages == [(5, True)]
        sock.sendall(b"6\r\n world\r\n0\r\n\r\n")
        status, _, body = read_response(sock, bytearray())
    assert (status, body) == (200, b"11 2")
    assert app.messages[-1][1] is False


def test_a_content_length_body_arrives_in_pieces_and_whole() -> None:
    app = Recorder()
    payload = bytes(range(256)) * 4096  # 1 MiB
    with running(app) as server, connect(server) as sock:
        sock.sendall(post("/up", f"Content-Length: {len(payload)}")[:-2] + b"\r\n")
        for start in range(0, len(payload), 65536):
            sock.sendall(payload[start : start + 65536])
        status, _, body = read_response(sock, bytearray())
    total, count = map(int, body.split())
    assert (status, total) == (200, len(payload))
    assert count == len(app.messages) and all(more for _, more in app.messages[:-1])


def test_a_slow_app_holds_back_the_client_with_bounded_buffers() -> None:
    app = Recorder(delay=0.02)
    payload = b"x" * (24 << 20)
    with running(app) as server, connect(server) as sock:
        sock.sendall(post("/up", f"Content-Length: {len(payload)}"))
        sender = threading.Thread(target=sock.sendall, args=(payload,))
        sender.start()
        status, _, body = read_response(sock, bytearray())
        sender.join(30)
    assert (status, int(body.split()[0])) == (200, len(payload))
    # what waited for the app at one time never grew far past the buffer limit
    # (plus one socket read): the connection stopped reading instead
    assert max(size for size, _ in app.messages) <= BODY_BUFFER + (1 << 20)


def test_a_body_the_app_ignores_is_read_past_for_the_next_request() -> None:
    app = Recorder()
    with running(app) as server, connect(server) as sock:
        sock.sendall(
            post("/ignore", "Content-Length: 10")
            + b"0123456789"
            + post("/up", "Content-Length: 3")
            + b"abc"
        )
        buffer = bytearray()
        assert read_response(sock, buffer)[2] == b"ignored"
        assert read_response(sock, buffer)[2] == b"3 1"
        # the same with the body arriving after the answer
        sock.sendall(post("/ignore", "Transfer-Encoding: chunked") + b"3\r\nabc\r\n")
        assert read_response(sock, buffer)[2] == b"ignored"
        sock.sendall(b"0\r\n\r\n" + get("/up"))
        assert read_response(sock, buffer)[2] == b"0 1"


def test_expect_continue_is_answered_when_the_app_waits_for_the_body() -> None:
    app = Recorder()
    with running(app) as server, connect(server) as sock:
        sock.sendall(post("/up", "Content-Length: 4", "Expect: 100-continue"))
        interim = sock.recv(1024)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(b"data")
        buffer = bytearray(interim[len(b"HTTP/1.1 100 Continue\r\n\r\n") :])
        assert read_response(sock, buffer)[2] == b"4 1"


def test_a_stalled_body_is_cut_by_the_body_timeout_and_the_app_told() -> None:
    app = Recorder()
    with running(app, body_timeout=0.3) as server, connect(server) as sock:
        sock.sendall(post("/up", "Content-Length: 100") + b"only part")
        assert app.first.wait(5)
        started = time.monotonic()
        assert is_closed(sock, timeout=5)
        assert time.monotonic() - started < 4
        assert app.done.wait(5)
    assert app.last == {"type": "http.disconnect"}


def test_a_client_leaving_mid_body_is_a_disconnect_for_the_app() -> None:
    app = Recorder()
    with running(app) as server:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        sock.sendall(post("/up", "Content-Length: 1000") + b"x" * 10)
        assert app.first.wait(5)
        sock.close()
        assert app.done.wait(5)
    assert app.last == {"type": "http.disconnect"}


def test_bad_chunk_framing_mid_body_is_a_400_after_the_app_is_told() -> None:
    app = Recorder()
    with running(app) as server, connect(server) as sock:
        sock.sendall(post("/up", "Transfer-Encoding: chunked") + b"3\r\nabc\r\n")
        assert app.first.wait(5)
        sock.sendall(b"zz\r\n")  # not a chunk size
        assert app.done.wait(5)
        assert app.last == {"type": "http.disconnect"}
        assert is_closed(sock)


def _stream_items(parser: RequestParser, pieces: list[bytes]) -> list[Any]:
    out: list[Any] = []
    for piece in pieces:
        out.extend(parser.feed(piece))
    return out


@settings(max_examples=200, deadline=None)
@given(
    body=st.binary(max_size=3000),
    chunked=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=8),
)
def test_streamed_pieces_join_to_the_whole_body(
    body: bytes, chunked: bool, cuts: list[int]
) -> None:
    if chunked:
        framed = b"".join(
            b"%x\r\n%s\r\n" % (len(body[i : i + 700]), body[i : i + 700])
            for i in range(0, len(body), 700)
        )
        wire = (
            b"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            + framed
            + b"0\r\n\r\n"
        )
    else:
        wire = b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    wire += b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n"
    bounds = sorted({0, len(wire), *(c % (len(wire) + 1) for c in cuts)})
    pieces = [wire[a:b] for a, b in itertools.pairwise(bounds)]
    whole = RequestParser().feed(wire)
    items = _stream_items(RequestParser(stream_bodies=True), pieces)
    head, rest = items[0], items[1:]
    assert head.target == "/x" and head.body == b""
    if not body and not chunked:  # Content-Length: 0 is a request without a body
        assert not head.streamed
        after = rest
    else:
        assert head.streamed
        end = rest.index(BODY_END)
        assert b"".join(rest[:end]) == whole[0].body == body
        assert all(isinstance(piece, bytes) and piece for piece in rest[:end])
        after = rest[end + 1 :]
    assert [r.target for r in after] == ["/next"]
    assert not after[0].streamed
