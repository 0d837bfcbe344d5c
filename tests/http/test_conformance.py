"""Conformance of ``trusswork.http.parse_request`` with llhttp's request test documents.

The cases are the llhttp request test documents in
``<shared>/http-conformance/request/*.md`` (see that directory's README),
read when the tests are collected; without the directory every case is one
skip (a failure under ``CI=true``, :func:`helpers.missing_service`).

Each case is one markdown section: ``<!-- meta={...} -->``, an ``http`` block
decoded the way llhttp's own harness (``test/md-test.ts``) decodes it, and a
``log`` block of parser events. The harness checks its own decoding first:
every span in the log (``off=N len=L span[kind]="text"``) must be the bytes at
that offset of the decoded input, so a decoding bug fails loudly instead of
turning into a false verdict on the parser.

What is asserted, per case:

* ``type: "request"`` and ``"request-finish"``: every message the log
  completes parses (alone, sliced at its ``message begin`` / ``message
  complete`` offsets) to the method, target, version, headers (value spans
  trimmed of surrounding blanks) and body (body spans concatenated) of the
  log; input the log rejects (``error code=...``, other than the upgrade
  pauses) or leaves incomplete raises ``ParseError``. Several messages are
  checked together through ``parse_requests`` as well.
* ``type: "request-lenient-*"``: llhttp accepts these only with a lenient
  flag (the flag is the point of the case; each has a strict twin that
  fails), so a strict parser must raise ``ParseError``. ``LENIENT_ACCEPTED``
  would list any whose input is valid HTTP/1.1 anyway; none is.
* ``pause`` cases (pausing.md) exercise llhttp's callback pausing, which
  has no counterpart in a whole-buffer API, and ``skipBody`` makes llhttp
  ignore a Content-Length on request: both skipped with that reason.
* llhttp's "Data after ``Connection: close``" is a connection error, not a
  message error: our parser returns what follows and marks the request
  before it ``keep_alive=False`` (the server closes, RFC 9112 9.6), which is
  what those cases assert.
* Where RFC 9112 and llhttp disagree the case is listed with the reason:
  ``DEVIATIONS`` (llhttp accepts, RFC 9112 does not: we must reject),
  ``ACCEPTED_DEVIATIONS`` (llhttp rejects a valid request: we must accept it,
  with the fields given there) and ``EITHER_WAY`` (the RFCs allow both).

Coverage, llhttp commit 01e105a3 (13 documents, 166 cases): 152 run, 14
skipped (13 pause, 1 skipBody). Of those run: 52 accepted with every field
checked (8 of them CONNECT/Upgrade, sliced where the other protocol starts),
2 pipelined inputs accepted in part then rejected, 3 "data after close",
58 rejected (for a syntax reason, not as incomplete input, whenever llhttp
found its error before the input ended), 29 lenient-mode inputs rejected,
and 8 deviations: 5 rejected (HTTP/0.9, ICE/1.0, 2 x RTSP/1.0, ``M-SEARCH *``),
2 accepted (the methods ``MKCOLA`` and ``ANNOUNCE``), 1 either way (CONNECT
with a Content-Length).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from helpers import missing_service, shared_dir
from trusswork.core.errors import ParseError
from trusswork.http import HttpParseError, parse_request, parse_requests

CONFORMANCE = "http-conformance"

# ------------------------------------------------------------------ document loading


@dataclass
class Message:
    """One request as llhttp's log describes it."""

    start: int
    method: bytes = b""
    target: bytes = b""
    version: bytes = b""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    end: int | None = None
    headers_complete: bool = False
    # Header name and value spans gathered since the last completed header.
    pending_field: bytes = b""
    pending_value: bytes | None = None
    value_spans: int = 0


@dataclass
class Case:
    """One section of a request test document."""

    id: str
    meta: dict[str, Any]
    data: bytes
    log: list[str]
    messages: list[Message]
    spans: list[tuple[int, int, str, bytes]]
    error: tuple[int, int, str] | None
    finish: int | None

    @property
    def kind(self) -> str:
        return str(self.meta.get("type", ""))


_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")
_META = re.compile(r"<!--\s*meta=(\{.*\})\s*-->")
_SPAN = re.compile(r'^off=(\d+) len=(\d+) span\[(\w+)\]="(.*)"$')
_EVENT = re.compile(r"^off=(\d+) (.*)$")
_ERROR = re.compile(r'^error code=(\d+) reason="(.*)"$')
_FINISH = re.compile(r"^off=NULL finish=(\d+)$")

#: llhttp's harness (test/md-test.ts) turns an ``http`` block into bytes in this order.
_ESCAPES: list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (re.compile(r"\\(\r\n|\r|\n)"), lambda m: ""),  # a backslash at a line end joins lines
    (re.compile(r"\r\n|\r|\n"), lambda m: "\r\n"),  # every line ends in CRLF on the wire
    (re.compile(r"\\r"), lambda m: "\r"),
    (re.compile(r"\\n"), lambda m: "\n"),
    (re.compile(r"\\t"), lambda m: "\t"),
    (re.compile(r"\\f"), lambda m: "\f"),
    (re.compile(r"\\x([0-9a-fA-F]+)"), lambda m: chr(int(m.group(1), 16))),
    (re.compile(r"\\([0-7]{1,3})"), lambda m: chr(int(m.group(1), 8))),
]


def decode_http_block(lines: list[str]) -> bytes:
    """The bytes an ``http`` block stands for, as llhttp's harness sends them.

    The block's lines are joined with LF (the markdown code text, less the one
    newline that ends it), then escapes are applied in llhttp's order; the
    JavaScript string is sent UTF-8 encoded, so ``\\325`` becomes two bytes.
    """
    text = "\n".join(lines)
    for pattern, replace in _ESCAPES:
        text = pattern.sub(replace, text)
    if "${" in text:
        raise ValueError("inline JavaScript in an http block is not supported")
    return text.encode("utf-8")


# The log prints quotes and backslashes as they are; only these stand for other bytes.
_LOG_ESCAPES = {"r": "\r", "n": "\n", "t": "\t", "f": "\f"}


def decode_log_string(text: str) -> bytes:
    """The bytes of a quoted span text in a ``log`` block."""

    def replace(match: re.Match[str]) -> str:
        escape = match.group(1)
        if escape.startswith("x"):
            return chr(int(escape[1:], 16))
        return _LOG_ESCAPES[escape]

    return re.sub(r"\\(x[0-9a-fA-F]{2}|[rntf])", replace, text).encode("utf-8")


Span = tuple[int, int, str, bytes]


def interpret_log(
    log: list[str],
) -> tuple[list[Message], list[Span], tuple[int, int, str] | None, int | None]:
    """Messages, spans, the error (offset, code, reason) and llhttp_finish() code of a log."""
    messages: list[Message] = []
    spans: list[Span] = []
    error: tuple[int, int, str] | None = None
    finish: int | None = None

    def current(offset: int) -> Message:
        if not messages or messages[-1].end is not None:
            messages.append(Message(start=offset))
        return messages[-1]

    for line in log:
        if match := _FINISH.match(line):
            finish = int(match.group(1))
            continue
        if match := _SPAN.match(line):
            offset, length, kind = int(match.group(1)), int(match.group(2)), match.group(3)
            text = decode_log_string(match.group(4))
            spans.append((offset, length, kind, text))
            message = current(offset)
            if kind == "method":
                message.method += text
            elif kind == "url":
                message.target += text
            elif kind == "version":
                message.version += text
            elif kind == "header_field":
                message.pending_field += text
            elif kind == "header_value":
                message.pending_value = (message.pending_value or b"") + text
                message.value_spans += 1
            elif kind == "body":
                message.body += text
            continue
        match = _EVENT.match(line)
        if match is None:
            raise ValueError(f"unrecognised log line {line!r}")
        offset, event = int(match.group(1)), match.group(2)
        if event == "message begin":
            messages.append(Message(start=offset))
        elif event == "message complete":
            current(offset).end = offset
        elif event.startswith("headers complete"):
            current(offset).headers_complete = True
        elif event == "header_value complete":
            message = current(offset)
            fields = message.trailers if message.headers_complete else message.headers
            fields.append((message.pending_field, message.pending_value or b""))
            message.pending_field, message.pending_value = b"", None
        elif error_match := _ERROR.match(event):
            error = (offset, int(error_match.group(1)), error_match.group(2))
    return messages, spans, error, finish


def _sections(lines: list[str]) -> Iterator[tuple[str, dict[str, Any], dict[str, list[str]]]]:
    """(title, meta, code blocks by language) of each heading's section of a document."""
    title = ""
    meta: dict[str, Any] = {}
    blocks: dict[str, list[str]] = {}
    index = 0
    while index < len(lines):
        line = lines[index]
        if heading := _HEADING.match(line):
            yield title, meta, blocks
            title, meta, blocks = heading.group(2), {}, {}
        elif meta_match := _META.search(line):
            meta = json.loads(meta_match.group(1))
        elif line.startswith("```") and line[3:].strip():
            end = index + 1
            while not lines[end].startswith("```"):
                end += 1
            blocks[line[3:].strip()] = lines[index + 1 : end]
            index = end
        index += 1
    yield title, meta, blocks


def load_cases(directory: Path) -> list[Case]:
    """Every section with an ``http`` block in the ``*.md`` documents of ``directory``."""
    cases: list[Case] = []
    for path in sorted(directory.glob("*.md")):
        seen: dict[str, int] = {}
        for title, meta, blocks in _sections(path.read_text(encoding="utf-8").splitlines()):
            if "http" not in blocks:
                continue
            case_id = f"{path.name}::{title}"
            seen[case_id] = seen.get(case_id, 0) + 1
            if seen[case_id] > 1:
                case_id += f" ({seen[case_id]})"
            log = blocks.get("log", [])
            messages, spans, error, finish = interpret_log(log)
            cases.append(
                Case(
                    id=case_id,
                    meta=meta,
                    data=decode_http_block(blocks["http"]),
                    log=log,
                    messages=messages,
                    spans=spans,
                    error=error,
                    finish=finish,
                )
            )
    return cases


# ------------------------------------------------------------------ expectations

#: llhttp's upgrade pauses end a complete message: the bytes after it belong to another protocol.
UPGRADE_PAUSE = 22  # after CONNECT or an Upgrade request
UPGRADE_PAUSES = {UPGRADE_PAUSE, 23}  # 23: the HTTP/2 preface "PRI * HTTP/2.0"

#: llhttp's "Data after `Connection: close`": the connection, not the message, is at fault.
#: Our parser parses what follows and says so on the request (``keep_alive`` is False);
#: the server closes after answering it (RFC 9112 9.6), so these cases assert that instead.
DATA_AFTER_CLOSE = 5

#: Cases whose behaviour lives in llhttp's callback API, not in the bytes.
SKIPPED = {
    "content-length.md::Content-Length reset when no body is received": (
        "skipBody: the callback tells llhttp to ignore Content-Length (a HEAD-response trick);"
        " a request parser reads the declared body"
    ),
}

#: Where llhttp accepts in strict mode what RFC 9112 rejects; each asserts our rejection.
DEVIATIONS: dict[str, str] = {
    "sample.md::No HTTP version": (
        "HTTP/0.9 simple request: RFC 9112 section 3 requires an HTTP-version in the request-line"
    ),
    "method.md::SOURCE request with ICE": "ICE/1.0 is not an HTTP-version (RFC 9112 2.3)",
    "method.md::OPTIONS request with RTSP": "RTSP/1.0 is not an HTTP-version (RFC 9112 2.3)",
    "method.md::ANNOUNCE request with RTSP": "RTSP/1.0 is not an HTTP-version (RFC 9112 2.3)",
    "method.md::M-SEARCH request": (
        "asterisk-form is only for a server-wide OPTIONS (RFC 9112 3.2.4); M-SEARCH * is SSDP"
    ),
}

#: Where llhttp rejects, or frames differently, what RFC 9112 accepts:
#: case id -> (why, bytes of the input kept or None for all, the fields we parse).
ACCEPTED_DEVIATIONS: dict[str, tuple[str, int | None, dict[str, Any]]] = {
    "invalid.md::Invalid method": (
        "MKCOLA is a token (RFC 9110 9.1): an unknown method is the server's 501, not a"
        " parse error; llhttp knows only its own list of methods",
        None,
        {"method": "MKCOLA", "target": "/", "version": "1.1", "headers": [], "body": b""},
    ),
    "invalid.md::HTTP protocol and ANNOUNCE method": (
        "ANNOUNCE is a token (RFC 9110 9.1); llhttp allows it only with RTSP/1.0",
        None,
        {
            "method": "ANNOUNCE",
            "target": "/music/sweet/music",
            "version": "1.0",
            "headers": [(b"Host", b"example.com")],
            "body": b"",
        },
    ),
}

#: Where RFC 9110/9112 allow two readings, llhttp's and another:
#: case id -> (why, bytes of the input kept, the bodies either reading gives).
EITHER_WAY: dict[str, tuple[str, int, tuple[bytes, ...]]] = {
    "method.md::CONNECT with body": (
        "RFC 9110 9.3.6 says a CONNECT request has no content (llhttp: the tunnel starts"
        " after the head), RFC 9112 6.3 frames any request body by Content-Length",
        137,
        (b"", b"blarfcicle"),
    ),
}

#: Lenient-mode cases whose input is valid HTTP/1.1 all the same (none so far).
LENIENT_ACCEPTED: dict[str, str] = {}


def _collect() -> list[Any]:
    directory = shared_dir() / CONFORMANCE / "request"
    if not directory.is_dir():
        return [pytest.param(None, id="shared-data-missing")]
    return [pytest.param(case, id=case.id) for case in load_cases(directory)]


CASES = _collect()


def _require(case: Case | None) -> Case:
    if case is None:
        missing_service(
            f"shared data {CONFORMANCE!r}",
            f"{shared_dir() / CONFORMANCE / 'request'} does not exist; put the llhttp request"
            " documents there or point TRUSSWORK_SHARED_DIR at a directory that holds them",
        )
    return case


def _expected_headers(fields: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [(name, value.strip(b" \t")) for name, value in fields]


def assert_matches(request: Any, message: Message) -> None:
    """``request`` carries what llhttp's log says ``message`` holds."""
    assert request.method == message.method.decode("latin-1")
    assert request.target == message.target.decode("latin-1")
    assert request.version == message.version.decode("latin-1")
    assert list(request.headers) == _expected_headers(message.headers)
    assert request.body == message.body
    # Trailer fields (message.trailers) are checked by the parser and dropped.


def _rejected_by_log(case: Case) -> bool:
    if case.error is not None and case.error[1] not in (*UPGRADE_PAUSES, DATA_AFTER_CLOSE):
        return True
    if case.finish not in (None, 0):
        return True
    return any(message.end is None for message in case.messages) or not case.messages


def _assert_rejected(data: bytes, *, syntax_error: bool = False) -> None:
    """Both entry points refuse ``data``; for a ``syntax_error``, not merely as incomplete."""
    with pytest.raises(ParseError) as refused:
        parse_request(data)
    with pytest.raises(ParseError):
        parse_requests(data)
    if syntax_error:
        assert isinstance(refused.value, HttpParseError)
        assert refused.value.error != "incomplete", refused.value


def _check_decoding(case: Case) -> None:
    for offset, length, kind, text in case.spans:
        assert len(text) == length, f"{case.id}: span[{kind}] at {offset}: log length"
        assert case.data[offset : offset + length] == text, (
            f"{case.id}: span[{kind}] at {offset} is not in the decoded input (decoding bug)"
        )


@pytest.mark.parametrize("case", CASES)
def test_llhttp_request_case(case: Case | None) -> None:
    case = _require(case)
    _check_decoding(case)
    if "pause" in case.meta or case.id in SKIPPED:
        # Pausing from a callback (and skipBody) have no counterpart in a whole-buffer
        # parser, so llhttp's log is not our expected output; ours must still answer
        # with requests or a ParseError, never crash or raise anything else.
        with contextlib.suppress(ParseError):
            parse_requests(case.data)
        return
    if not case.kind.startswith("request"):
        pytest.skip(f"type {case.kind!r} is not a request case")

    if case.id in DEVIATIONS:
        # llhttp accepts this; RFC 9112 does not, and neither do we.
        for message in case.messages:
            stop = message.end if message.end is not None else len(case.data)
            with pytest.raises(ParseError):
                parse_request(case.data[message.start : stop])
        return

    if case.id in ACCEPTED_DEVIATIONS:
        # llhttp rejects this (or reads it differently); RFC 9112 accepts, and so do we.
        _, end, want = ACCEPTED_DEVIATIONS[case.id]
        request = parse_request(case.data[:end])
        assert {name: getattr(request, name) for name in want} == want
        return

    if case.id in EITHER_WAY:
        _, end, bodies = EITHER_WAY[case.id]
        [message] = case.messages
        [request] = parse_requests(case.data[:end])  # parsing stops after CONNECT
        assert request.body in bodies
        message.body = request.body
        assert_matches(request, message)
        return

    if case.kind.startswith("request-lenient"):
        # Strict mode: the leniency the case exists to show is refused.
        if case.id in LENIENT_ACCEPTED:
            assert_matches(parse_request(case.data), case.messages[0])
        else:
            _assert_rejected(case.data)
        return

    complete = [message for message in case.messages if message.end is not None]
    for message in complete:
        # A lone message from offset 0: leading empty lines are the parser's to skip
        # (RFC 9112 2.2).
        start = 0 if len(complete) == 1 and message is case.messages[0] else message.start
        request = parse_request(case.data[start : message.end])
        assert_matches(request, message)
        # llhttp pauses right after a CONNECT or Upgrade request; ours flags it.
        paused = case.error is not None and case.error[:2] == (message.end, UPGRADE_PAUSE)
        assert request.upgrade == paused
    if len(complete) > 1:
        last_end = complete[-1].end
        requests = parse_requests(case.data[:last_end])
        assert len(requests) == len(complete)
        for request, message in zip(requests, complete, strict=True):
            assert_matches(request, message)

    if _rejected_by_log(case):
        # llhttp found an error before the input ran out: so must we, not just run out.
        error = case.error
        found = error is not None and error[1] not in UPGRADE_PAUSES and error[0] < len(case.data)
        _assert_rejected(case.data, syntax_error=found)
    elif case.error is not None and case.error[1] == DATA_AFTER_CLOSE:
        # The request before the error ends the connection; what follows is never served.
        try:
            requests = parse_requests(case.data)
        except ParseError:
            return
        assert requests[len(complete) - 1].keep_alive is False


# ------------------------------------------------------------------ RFC rules the documents skip

_V11 = b"GET / HTTP/1.1\r\n"
_V10 = b"GET / HTTP/1.0\r\n"
_UPGRADE = b"Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n"

#: id -> (request, keep_alive, upgrade, expect_continue), per RFC 9112 9.3 and RFC 9110 7.8/10.1.1.
CONNECTION_RULES: list[Any] = [
    pytest.param(_V11 + b"\r\n", True, False, False, id="1.1-persistent-by-default"),
    pytest.param(_V11 + b"Connection: Close\r\n\r\n", False, False, False, id="1.1-close"),
    pytest.param(
        _V11 + b"Connection: keep-alive, close\r\n\r\n", False, False, False, id="1.1-close-in-list"
    ),
    pytest.param(
        _V11 + b"Connection: foo\r\nConnection: close\r\n\r\n",
        False,
        False,
        False,
        id="1.1-close-in-second-field",
    ),
    pytest.param(
        _V11 + b"Connection: closed\r\n\r\n", True, False, False, id="1.1-closed-is-not-close"
    ),
    pytest.param(_V10 + b"\r\n", False, False, False, id="1.0-closes-by-default"),
    pytest.param(_V10 + b"Connection: Keep-Alive\r\n\r\n", True, False, False, id="1.0-keep-alive"),
    pytest.param(_V11 + _UPGRADE, True, True, False, id="1.1-upgrade"),
    pytest.param(
        _V11 + b"Upgrade: websocket\r\n\r\n", True, False, False, id="upgrade-needs-connection"
    ),
    pytest.param(
        _V10 + b"Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n",
        True,
        False,
        False,
        id="1.0-upgrade-is-ignored",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 0\r\n\r\n",
        True,
        False,
        True,
        id="1.1-expect-continue",
    ),
    pytest.param(
        b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n",
        False,
        False,
        False,
        id="1.0-expect-is-ignored",
    ),
]


@pytest.mark.parametrize(("data", "keep_alive", "upgrade", "expect_continue"), CONNECTION_RULES)
def test_connection_semantics_follow_the_rfcs(
    data: bytes, keep_alive: bool, upgrade: bool, expect_continue: bool
) -> None:
    request = parse_request(data)
    assert (request.keep_alive, request.upgrade, request.expect_continue) == (
        keep_alive,
        upgrade,
        expect_continue,
    )
    if not upgrade and keep_alive:
        # Nothing switches protocol: a pipelined request after it is parsed too.
        assert len(parse_requests(data + _V11 + b"\r\n")) == 2


# ------------------------------------------------------------------ the harness itself

_SAMPLE = """\
Title
=====

## Group

### A case

<!-- meta={"type": "request"} -->
```http
GET /x HTTP/1.1
A:\\tb\\x41\\101
B: one \\
two


```

```log
off=0 message begin
off=0 len=3 span[method]="GET"
off=4 len=2 span[url]="/x"
off=12 len=3 span[version]="1.1"
off=17 len=1 span[header_field]="A"
off=19 len=4 span[header_value]="\\tbAA"
off=25 header_value complete
off=25 len=1 span[header_field]="B"
off=28 len=7 span[header_value]="one two"
off=37 header_value complete
off=39 headers complete method=1 v=1/1 flags=0 content_length=0
off=39 message complete
```
"""


def test_the_loader_decodes_http_blocks_the_way_llhttp_does(tmp_path: Path) -> None:
    (tmp_path / "sample.md").write_text(_SAMPLE, encoding="utf-8")
    [case] = load_cases(tmp_path)
    assert case.id == "sample.md::A case"
    assert case.data == b"GET /x HTTP/1.1\r\nA:\tbAA\r\nB: one two\r\n\r\n"
    _check_decoding(case)
    [message] = case.messages
    assert (message.method, message.target, message.version) == (b"GET", b"/x", b"1.1")
    assert message.headers == [(b"A", b"\tbAA"), (b"B", b"one two")]
    assert (message.start, message.end) == (0, 39)


def test_every_document_yields_cases() -> None:
    directory = shared_dir() / CONFORMANCE / "request"
    if not directory.is_dir():
        _require(None)
    by_file: dict[str, int] = {}
    for case in load_cases(directory):
        by_file[case.id.split("::")[0]] = by_file.get(case.id.split("::")[0], 0) + 1
    assert sorted(by_file) == sorted(path.name for path in directory.glob("*.md"))
    assert sum(by_file.values()) >= 160


def test_deviation_and_skip_lists_name_real_cases() -> None:
    ids = {param.id for param in CASES}
    if ids == {"shared-data-missing"}:
        _require(None)
    assert set(DEVIATIONS) <= ids
    assert set(SKIPPED) <= ids
    assert set(LENIENT_ACCEPTED) <= ids
    assert set(ACCEPTED_DEVIATIONS) <= ids
    assert set(EITHER_WAY) <= ids
