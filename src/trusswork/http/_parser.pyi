from collections.abc import Sequence

from typing_extensions import Buffer

from trusswork.core.errors import ParseError

ERROR_NAMES: frozenset[str]
BODY_END: object

class HttpParseError(ParseError):
    error: str
    offset: int
    http_status: int
    requests: list[Request]
    def __init__(
        self,
        message: str,
        *,
        error: str,
        offset: int,
        http_status: int = 400,
        source: str | None = None,
        source_offset: int | None = None,
    ) -> None: ...

class Request:
    @property
    def method(self) -> str: ...
    @property
    def target(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def headers(self) -> list[tuple[bytes, bytes]]: ...
    @property
    def body(self) -> bytes: ...
    @property
    def content_length(self) -> int | None: ...
    @property
    def chunked(self) -> bool: ...
    @property
    def keep_alive(self) -> bool: ...
    @property
    def upgrade(self) -> bool: ...
    @property
    def expect_continue(self) -> bool: ...
    @property
    def streamed(self) -> bool:
        """The body follows as separate items (a parser with ``stream_bodies=True``)."""
    @property
    def has_host(self) -> bool:
        """Exactly one Host field (HTTP/1.1 requests without one get a 400)."""
    def __init__(
        self,
        method: str,
        target: str,
        version: str,
        headers: list[tuple[bytes, bytes]],
        body: bytes = b"",
        *,
        content_length: int | None = None,
        chunked: bool = False,
        keep_alive: bool = True,
        upgrade: bool = False,
        expect_continue: bool = False,
    ) -> None: ...
    def header(self, name: bytes) -> bytes | None: ...

class RequestParser:
    def __init__(
        self,
        *,
        max_request_line: int = 8192,
        max_header_line: int = 8192,
        max_head: int = 65536,
        max_headers: int = 100,
        max_body: int = 1073741824,
        max_chunk_ext: int = 4096,
        stream_bodies: bool = False,
    ) -> None: ...
    @property
    def pending_bytes(self) -> int: ...
    @property
    def upgraded(self) -> bool: ...
    def take_rest(self) -> bytes: ...
    @property
    def in_body(self) -> bool: ...
    @property
    def at_boundary(self) -> bool: ...
    def feed(self, data: Buffer) -> list[Request]: ...
    def finish(self) -> None: ...

def parse_request(data: Buffer, **limits: int) -> Request: ...
def parse_requests(data: Buffer, **limits: int) -> list[Request]: ...
def format_head(
    status: int,
    headers: Sequence[tuple[bytes, bytes]] = (),
    *,
    reason: bytes | None = None,
    version: str = "1.1",
) -> bytes: ...
def reason_phrase(status: int) -> bytes: ...
