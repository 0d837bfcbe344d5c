# cython: boundscheck=False, wraparound=False
"""Compiled HTTP/1.1 request parser and response head writer (csrc/http).

trusswork.http re-exports these. The strict rules live in csrc/http/http.h;
this module only moves bytes: the head is parsed and the chunked body
decoded without the GIL, and Python objects are made once per request,
from the spans the C parser reports. Every C status passes through
raise_parse_error (requests) or check_format (response heads).
"""
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_DecodeASCII
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc

from trusswork._includes.common cimport TW_ERR_INVALID, TW_ERR_NOSPACE, TW_OK
from trusswork._includes.http cimport *

from trusswork.core.errors import InvalidInput, ParseError

# C error code -> (stable name, HTTP status a server answers with)
_ERRORS = {
    TW_HTTP_INCOMPLETE: ("incomplete", 400),
    TW_HTTP_E_METHOD: ("method", 400),
    TW_HTTP_E_TARGET: ("target", 400),
    TW_HTTP_E_VERSION: ("version", 400),
    TW_HTTP_E_VERSION_UNSUPPORTED: ("version-unsupported", 505),
    TW_HTTP_E_BARE_CR: ("bare-cr", 400),
    TW_HTTP_E_BARE_LF: ("bare-lf", 400),
    TW_HTTP_E_LEADING_WS: ("leading-whitespace", 400),
    TW_HTTP_E_OBS_FOLD: ("obs-fold", 400),
    TW_HTTP_E_HEADER_NAME: ("header-name", 400),
    TW_HTTP_E_WS_BEFORE_COLON: ("whitespace-before-colon", 400),
    TW_HTTP_E_HEADER_VALUE: ("header-value", 400),
    TW_HTTP_E_REQUEST_LINE_TOO_LONG: ("request-line-too-long", 414),
    TW_HTTP_E_HEADER_LINE_TOO_LONG: ("header-line-too-long", 431),
    TW_HTTP_E_HEAD_TOO_LARGE: ("head-too-large", 431),
    TW_HTTP_E_TOO_MANY_HEADERS: ("too-many-headers", 431),
    TW_HTTP_E_CONTENT_LENGTH: ("content-length", 400),
    TW_HTTP_E_CONTENT_LENGTH_DUP: ("content-length-duplicate", 400),
    TW_HTTP_E_CL_AND_TE: ("content-length-with-transfer-encoding", 400),
    TW_HTTP_E_TE_NOT_CHUNKED: ("transfer-encoding-not-chunked", 400),
    TW_HTTP_E_TE_CHUNKED_TWICE: ("transfer-encoding-chunked-twice", 400),
    TW_HTTP_E_TE_SYNTAX: ("transfer-encoding", 400),
    TW_HTTP_E_TE_HTTP10: ("transfer-encoding-http10", 400),
    TW_HTTP_E_HOST_DUP: ("host-duplicate", 400),
    TW_HTTP_E_BODY_TOO_LARGE: ("body-too-large", 413),
    TW_HTTP_E_CHUNK_SIZE: ("chunk-size", 400),
    TW_HTTP_E_CHUNK_EXT: ("chunk-extension", 400),
    TW_HTTP_E_CHUNK_EXT_TOO_LONG: ("chunk-extension-too-long", 400),
    TW_HTTP_E_CHUNK_DATA_CRLF: ("chunk-data-crlf", 400),
    TW_HTTP_E_TRAILERS_TOO_LARGE: ("trailers-too-large", 431),
}
_EXTRA_BYTES = ("extra-bytes", 400)
ERROR_NAMES = frozenset(name for name, _ in _ERRORS.values()) | {_EXTRA_BYTES[0]}

cdef tuple _VERSIONS = ("1.0", "1.1")


class _BodyEnd:
    """The type of :data:`BODY_END`."""

    def __repr__(self):
        return "BODY_END"


#: Returned by a streaming :meth:`RequestParser.feed` after the last piece of a body.
BODY_END = _BodyEnd()
# Room for the status line and the final CRLF besides the fields.
cdef size_t STATUS_LINE_ROOM = 64


class HttpParseError(ParseError):
    """A request the strict parser rejects.

    Attributes
    ----------
    error:
        A stable name of the rule that failed (``"bare-lf"``,
        ``"content-length-with-transfer-encoding"``); see ``ERROR_NAMES``.
    offset:
        The 0-based byte offset of the offending byte in the stream fed to
        the parser (for :func:`parse_request`, in ``data``).
    http_status:
        What a server answers with: 400, or 413, 414, 431, 505.
    requests:
        From :meth:`RequestParser.feed`: the requests the same call completed
        before the error (a server answers them, then the error); empty
        otherwise.
    """

    def __init__(self, message, *, error, offset, http_status=400, source=None,
                 source_offset=None):
        self.error = error
        self.offset = offset
        self.http_status = http_status
        self.requests = []
        ParseError.__init__(self, message, source=source, offset=source_offset,
                            filename="<request>")


cdef object make_error(int status, uint64_t offset, object head_bytes, uint64_t head_base):
    """The choke point: a parser status -> HttpParseError (returned, not raised)."""
    name, http_status = _ERRORS.get(status, ("unknown", 400))
    reason = tw_http_strerror(status).decode("ascii")
    message = f"{reason} at byte {offset}"
    source = None
    source_offset = None
    if head_bytes is not None and head_base <= offset <= head_base + len(head_bytes):
        # Show the line holding the error; bytes are Latin-1 so offsets stay byte offsets.
        rel = offset - head_base
        stop = head_bytes.find(b"\n", rel)
        source = bytes(head_bytes[: stop if stop >= 0 else len(head_bytes)]).decode("latin-1")
        source_offset = rel
    return HttpParseError(message, error=name, offset=offset, http_status=http_status,
                          source=source, source_offset=source_offset)


cdef class Request:
    """One parsed HTTP/1.x request.

    ``method``, ``target`` and ``version`` (``"1.0"`` or ``"1.1"``) are
    ``str``; ``headers`` is the list of ``(name, value)`` byte pairs in the
    order received, values with surrounding whitespace removed; ``body`` is
    the whole body, de-chunked. ``keep_alive`` says whether the connection
    may carry another request (HTTP/1.1 without ``Connection: close``, or
    HTTP/1.0 with ``Connection: keep-alive``).
    """

    cdef readonly str method
    cdef readonly str target
    cdef readonly str version
    cdef readonly list headers
    cdef readonly bytes body
    cdef readonly object content_length
    cdef readonly bint chunked
    cdef readonly bint keep_alive
    cdef readonly bint upgrade
    cdef readonly bint expect_continue
    cdef readonly bint has_host
    cdef readonly bint streamed

    def __init__(self, str method, str target, str version, list headers, bytes body=b"", *,
                 content_length=None, bint chunked=False, bint keep_alive=True,
                 bint upgrade=False, bint expect_continue=False):
        self.has_host = sum(1 for name, _ in headers if name.lower() == b"host") == 1
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.body = body
        self.content_length = content_length
        self.chunked = chunked
        self.keep_alive = keep_alive
        self.upgrade = upgrade
        self.expect_continue = expect_continue

    def header(self, name):
        """The value of the first field called ``name`` (any case), or None."""
        cdef bytes want = bytes(name).lower()
        for key, value in self.headers:
            if key.lower() == want:
                return value
        return None

    def _key(self):
        return (self.method, self.target, self.version, self.headers, self.body,
                self.content_length, self.chunked, self.keep_alive, self.upgrade,
                self.expect_continue)

    def __eq__(self, other):
        if not isinstance(other, Request):
            return NotImplemented
        return self._key() == (<Request>other)._key()

    def __repr__(self):
        return (f"Request({self.method!r}, {self.target!r}, version={self.version!r}, "
                f"headers={len(self.headers)}, body={len(self.body)} bytes)")


# method_id -> the method's str, made once (TW_HTTP_OTHER is decoded per request)
cdef tuple _METHODS = (None, "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS",
                       "TRACE", "PATCH")


cdef inline list head_fields(const uint8_t *p, tw_http_head *head, tw_http_header *fields):
    cdef uint32_t i
    cdef tw_http_header *f
    headers = []
    for i in range(head.nheaders):
        f = &fields[i]
        headers.append((PyBytes_FromStringAndSize(<const char *>p + f.name.off, f.name.len),
                        PyBytes_FromStringAndSize(<const char *>p + f.value.off, f.value.len)))
    return headers


cdef inline str head_method(const uint8_t *p, tw_http_head *head):
    if 0 < head.method_id < 10:
        return <str>_METHODS[head.method_id]
    return PyUnicode_DecodeASCII(<const char *>p + head.method.off, head.method.len, NULL)


cdef tuple head_parts(const uint8_t *p, tw_http_head *head, tw_http_header *fields):
    """The Request fields of a parsed head, but the body (see RequestParser._emit)."""
    cdef uint32_t flags = head.flags
    target = PyUnicode_DecodeASCII(<const char *>p + head.target.off, head.target.len, NULL)
    return (head_method(p, head), target, _VERSIONS[head.version_minor],
            head_fields(p, head, fields),
            None if head.content_length < 0 else head.content_length,
            bool(flags & TW_HTTP_F_CHUNKED), bool(flags & TW_HTTP_F_KEEP_ALIVE),
            bool(flags & TW_HTTP_F_UPGRADE), bool(flags & TW_HTTP_F_EXPECT_CONTINUE),
            bool(flags & TW_HTTP_F_HAS_HOST))


cdef Request bodiless_request(const uint8_t *p, tw_http_head *head, tw_http_header *fields):
    """A Request without a body straight from a parsed head (the fast path of feed)."""
    cdef Request request = Request.__new__(Request)
    cdef uint32_t flags = head.flags
    request.method = head_method(p, head)
    request.target = PyUnicode_DecodeASCII(<const char *>p + head.target.off, head.target.len,
                                           NULL)
    request.version = _VERSIONS[head.version_minor]
    request.headers = head_fields(p, head, fields)
    request.body = b""
    request.content_length = None if head.content_length < 0 else head.content_length
    request.chunked = False
    request.keep_alive = (flags & TW_HTTP_F_KEEP_ALIVE) != 0
    request.upgrade = False
    request.expect_continue = (flags & TW_HTTP_F_EXPECT_CONTINUE) != 0
    request.has_host = (flags & TW_HTTP_F_HAS_HOST) != 0
    return request


cdef enum:
    ST_HEAD = 0
    ST_LENGTH = 1
    ST_CHUNKED = 2
    ST_FAILED = 3
    ST_UPGRADED = 4


cdef class RequestParser:
    """An incremental parser for a stream of pipelined requests.

    ``feed`` takes the next bytes from the connection and returns the
    requests they complete (possibly none). Bytes may be split anywhere:
    feeding byte by byte gives the same requests, and the same error, as
    feeding everything at once. After an error every later call raises it
    again; the connection must be closed. After a CONNECT or Upgrade
    request parsing stops (``upgraded``); ``take_rest`` hands over the
    bytes that follow. One parser serves one connection and is not
    thread-safe (the C parse runs without the GIL on its buffer).

    Parameters
    ----------
    max_request_line, max_header_line, max_head, max_headers, max_body, max_chunk_ext:
        The limits of csrc/http (bytes, except ``max_headers``).
    stream_bodies:
        When true, a request with a body is returned as soon as its head is
        complete (``request.streamed``, ``request.body`` empty), followed in
        this and later ``feed`` results by its body as ``bytes`` pieces (the
        decoded data for chunked bodies) and then :data:`BODY_END`.
    """

    cdef tw_http_limits limits
    cdef tw_http_header *fields
    cdef bytearray buf        # bytes not consumed yet; buf[0] is stream byte `base`
    cdef uint64_t base
    cdef uint64_t request_start  # stream offset of the request being received
    cdef size_t scanned       # prev_len for the head being received
    cdef int state
    cdef object failure
    # the request whose body is being received
    cdef tuple pending
    cdef list body
    cdef uint64_t remaining
    cdef uint64_t body_base
    cdef tw_http_chunked chunk
    cdef bint stream_bodies

    def __cinit__(self, *, uint32_t max_request_line=8192, uint32_t max_header_line=8192,
                  uint32_t max_head=65536, uint32_t max_headers=100,
                  uint64_t max_body=1 << 30, uint32_t max_chunk_ext=4096,
                  bint stream_bodies=False):
        if max_head == 0 or max_head > (1u << 31):
            raise InvalidInput(f"max_head must be in 1..2**31, not {max_head}")
        if max_body > (1ull << 62):
            raise InvalidInput(f"max_body must be at most 2**62, not {max_body}")
        if max_headers == 0 or max_headers > 65536:
            raise InvalidInput(f"max_headers must be in 1..65536, not {max_headers}")
        self.limits.max_request_line = max_request_line
        self.limits.max_header_line = max_header_line
        self.limits.max_head = max_head
        self.limits.max_headers = max_headers
        self.limits.max_body = max_body
        self.limits.max_chunk_ext = max_chunk_ext
        self.fields = <tw_http_header *>malloc(max_headers * sizeof(tw_http_header))
        if self.fields == NULL:
            raise MemoryError()
        self.buf = bytearray()
        self.state = ST_HEAD
        self.stream_bodies = stream_bodies

    def __dealloc__(self):
        free(self.fields)

    @property
    def pending_bytes(self):
        """Bytes received but not yet part of a complete request."""
        return self.base + len(self.buf) - self.request_start

    @property
    def upgraded(self):
        """True after a CONNECT or Upgrade request: later bytes are not parsed."""
        return self.state == ST_UPGRADED

    def take_rest(self):
        """Remove and return the bytes held after an upgrade (the new protocol's)."""
        rest = bytes(self.buf)
        del self.buf[:]
        return rest

    @property
    def in_body(self):
        """True while a body is being received."""
        return self.state == ST_LENGTH or self.state == ST_CHUNKED

    @property
    def at_boundary(self):
        """True when no request is partly received (the stream may end here)."""
        return self.state == ST_UPGRADED or (self.state == ST_HEAD and len(self.buf) == 0)

    def feed(self, data):
        """Add the next bytes of the stream; return the requests they complete."""
        return self._run(data, -1)

    def finish(self):
        """Declare the end of the stream; raise if it ends inside a request."""
        if self.failure is not None:
            raise self.failure
        if self.state == ST_HEAD and len(self.buf):
            # Errors inside an unfinished line may have been deferred (prev_len):
            # one full parse of what is held reports them before "incomplete".
            self.scanned = 0
            self._run(b"", -1)
        if not self.at_boundary:
            where = "head" if self.state == ST_HEAD else "body"
            offset = self.base + len(self.buf)
            raise HttpParseError(f"incomplete request: the input ends inside the request "
                                 f"{where} at byte {offset}", error="incomplete",
                                 offset=offset)

    cdef list _run(self, data, Py_ssize_t max_requests):
        if self.failure is not None:
            self.failure.requests = []
            raise self.failure
        if not isinstance(data, (bytes, bytearray)) and not (
            isinstance(data, memoryview) and data.contiguous
        ):
            raise InvalidInput(
                f"the HTTP parser reads bytes, a bytearray or a contiguous memoryview, "
                f"got {type(data).__name__}"
            )
        cdef list out = []
        cdef Py_ssize_t used = 0
        if (type(data) is bytes and self.state == ST_HEAD
                and PyByteArray_GET_SIZE(self.buf) == 0):
            used = self._bodiless_heads(<bytes>data, out, max_requests)
            if used == PyBytes_GET_SIZE(data):
                return out
            data = (<bytes>data)[used:]
        self.buf += data
        try:
            while max_requests < 0 or len(out) < max_requests:
                if self.state == ST_UPGRADED:
                    break
                if self.state == ST_HEAD:
                    if not self._head(out):
                        break
                elif self.state == ST_LENGTH:
                    if not self._length(out):
                        break
                elif not self._chunked(out):
                    break
        except HttpParseError as e:
            self.state = ST_FAILED
            self.failure = e
            e.requests = out  # completed before the error: a server answers them first
            raise
        return out

    cdef Py_ssize_t _bodiless_heads(self, bytes data, list out, Py_ssize_t max_requests):
        """Parse complete requests without a body straight from ``data``.

        The common case (GET after GET on a keep-alive connection) skips the
        stream buffer. Returns how many bytes were consumed; anything else (a
        body, an incomplete head, an error, an upgrade) is left to the general
        path, which parses it again from the buffer.
        """
        cdef const uint8_t *p = <const uint8_t *>PyBytes_AS_STRING(data)
        cdef Py_ssize_t n = PyBytes_GET_SIZE(data), pos = 0
        cdef tw_http_head head
        cdef int r
        while pos < n and (max_requests < 0 or len(out) < max_requests):
            r = tw_http_parse_head(p + pos, n - pos, 0, &head, self.fields,
                                   self.limits.max_headers, &self.limits)
            if (r <= 0 or head.flags & (TW_HTTP_F_CHUNKED | TW_HTTP_F_UPGRADE)
                    or head.content_length > 0 or head.method_id == TW_HTTP_CONNECT):
                break
            out.append(bodiless_request(p + pos, &head, self.fields))
            pos += r
            self.base += r
            self.request_start = self.base
        return pos

    cdef bint _head(self, list out) except -1:
        cdef tw_http_head head
        cdef const uint8_t *p = <const uint8_t *>PyByteArray_AS_STRING(self.buf)
        cdef size_t n = PyByteArray_GET_SIZE(self.buf)
        cdef int r
        cdef uint32_t flags
        if n == 0:
            return False
        if n < 65536:  # microseconds at most: releasing the GIL would cost more
            r = tw_http_parse_head(p, n, self.scanned, &head, self.fields,
                                   self.limits.max_headers, &self.limits)
        else:
            with nogil:
                r = tw_http_parse_head(p, n, self.scanned, &head, self.fields,
                                       self.limits.max_headers, &self.limits)
        if r == TW_HTTP_INCOMPLETE:
            self.scanned = n
            return False
        if r < 0:
            raise make_error(r, self.base + head.error_offset, self.buf, self.base)
        self.pending = head_parts(p, &head, self.fields)
        flags = head.flags
        del self.buf[:r]
        self.base += r
        self.scanned = 0
        self.body = []
        self.body_base = self.base
        if head.method_id == TW_HTTP_CONNECT:
            # "A CONNECT request message does not have content" (RFC 9110 9.3.6, as
            # llhttp): the tunnel starts after the head, whatever Content-Length says.
            self._emit(out)
        elif flags & TW_HTTP_F_CHUNKED:
            tw_http_chunked_init(&self.chunk, &self.limits)
            self.state = ST_CHUNKED
            if self.stream_bodies:
                out.append(self._request(True))
        elif head.content_length > 0:
            self.remaining = head.content_length
            self.state = ST_LENGTH
            if self.stream_bodies:
                out.append(self._request(True))
        else:
            self._emit(out)
        return True

    cdef Request _request(self, bint streamed):
        """The Request of the head in ``pending`` (its body: what was collected)."""
        cdef Request request = Request.__new__(Request)
        cdef tuple parts = self.pending
        request.method = parts[0]
        request.target = parts[1]
        request.version = parts[2]
        request.headers = parts[3]
        request.content_length = parts[4]
        request.chunked = parts[5]
        request.keep_alive = parts[6]
        request.upgrade = parts[7]
        request.expect_continue = parts[8]
        request.has_host = parts[9]
        request.streamed = streamed
        if not self.body:
            request.body = b""
        elif len(self.body) == 1:
            request.body = self.body[0]
        else:
            request.body = b"".join(self.body)
        return request

    cdef int _emit(self, list out) except -1:
        """The request is complete: hand it over (or, streaming, its BODY_END)."""
        upgrade = self.pending[7]
        if self.stream_bodies and self.state != ST_HEAD:
            out.append(BODY_END)
        else:
            out.append(self._request(False))
        self.pending = None
        self.body = []
        # After CONNECT or an Upgrade request the bytes may belong to another protocol.
        self.state = ST_UPGRADED if upgrade else ST_HEAD
        self.request_start = self.base
        return 0

    cdef bint _length(self, list out) except -1:
        cdef size_t n = len(self.buf)
        if n == 0:
            return False
        cdef size_t take = n if n < self.remaining else <size_t>self.remaining
        (out if self.stream_bodies else self.body).append(bytes(self.buf[:take]))
        del self.buf[:take]
        self.base += take
        self.remaining -= take
        if self.remaining:
            return False
        self._emit(out)
        return True

    cdef bint _chunked(self, list out) except -1:
        cdef size_t n = PyByteArray_GET_SIZE(self.buf)
        cdef size_t data_len = 0
        cdef int64_t r
        cdef uint8_t *p = <uint8_t *>PyByteArray_AS_STRING(self.buf)
        if n == 0:
            return False
        with nogil:
            r = tw_http_chunked_decode(&self.chunk, p, n, &data_len)
        if data_len:
            (out if self.stream_bodies else self.body).append(
                PyBytes_FromStringAndSize(<const char *>p, data_len))
        if r == TW_HTTP_INCOMPLETE:
            del self.buf[:]
            self.base += n
            return False
        if r < 0:
            raise make_error(<int>r, self.body_base + self.chunk.error_offset, None, 0)
        del self.buf[:r]
        self.base += <uint64_t>r
        self._emit(out)
        return True


def parse_request(data, **limits):
    """Parse ``data`` as exactly one complete request.

    A testing and tooling aid over the same C parser the server uses.

    Parameters
    ----------
    data:
        The request bytes: head and the whole body.
    **limits:
        ``max_request_line``, ``max_header_line``, ``max_head``,
        ``max_headers``, ``max_body``, ``max_chunk_ext`` (see RequestParser).

    Returns
    -------
    Request

    Raises
    ------
    HttpParseError
        (a ``ParseError``) if the strict parser rejects the request, if the
        input ends before the request does, or if bytes follow it (use
        ``parse_requests`` for pipelined input).
    """
    cdef tw_http_head head
    cdef tw_http_header fields[100]
    cdef tw_http_limits defaults
    cdef const uint8_t *p
    cdef size_t n
    cdef int r
    cdef Request request
    if not limits and type(data) is bytes:
        # Fast path for the common case: a bytes head with a Content-Length body
        # (or none) parsed in place. Anything else -- errors included -- takes the
        # RequestParser path below, which gives the same results.
        p = <const uint8_t *>PyBytes_AS_STRING(data)
        n = len(data)
        tw_http_limits_default(&defaults)
        r = tw_http_parse_head(p, n, 0, &head, fields, 100, &defaults)  # microseconds: keep the GIL
        if (r > 0 and not head.flags & TW_HTTP_F_CHUNKED and head.method_id != TW_HTTP_CONNECT
                and n - <size_t>r == <size_t>(head.content_length if head.content_length > 0
                                               else 0)):
            request = bodiless_request(p, &head, fields)
            if <size_t>r < n:
                request.body = data[r:]
            request.upgrade = (head.flags & TW_HTTP_F_UPGRADE) != 0
            return request
    cdef RequestParser parser = RequestParser(**limits)
    cdef list requests = parser._run(data, 1)
    if not requests:
        parser.finish()
        raise HttpParseError("incomplete request: the input is empty at byte 0",
                             error="incomplete", offset=0)
    if parser.buf:
        offset = parser.base
        raise HttpParseError(f"extra bytes after the request at byte {offset}",
                             error=_EXTRA_BYTES[0], offset=offset)
    return requests[0]


def parse_requests(data, **limits):
    """Parse ``data`` as zero or more complete pipelined requests.

    Parsing stops after a CONNECT or Upgrade request (``request.upgrade``):
    the bytes after it belong to the other protocol and are not returned.
    Raises ``HttpParseError`` like :func:`parse_request`, including when
    ``data`` ends inside a request.
    """
    cdef RequestParser parser = RequestParser(**limits)
    requests = parser.feed(data)
    parser.finish()
    return requests


def format_head(int status, headers=(), *, reason=None, str version="1.1"):
    """Format an HTTP/1.x response head: status line, fields, empty line.

    Parameters
    ----------
    status:
        The status code, 100..999.
    headers:
        ``(name, value)`` pairs of bytes, written in order. Names must be
        tokens; values may not hold CR, LF or other control bytes (HTAB is
        allowed), so a value cannot inject a field or a response.
    reason:
        The reason phrase; by default the standard one for ``status`` (empty
        for unknown codes).
    version:
        ``"1.1"`` or ``"1.0"``.

    Returns
    -------
    bytes

    Raises
    ------
    InvalidInput
        For a bad status, version, reason, name or value; the message names
        the header by index.
    """
    cdef list items = list(headers)
    cdef size_t n = len(items), k, written = 0, cap = STATUS_LINE_ROOM
    cdef int64_t bad = -1
    cdef int minor, r
    cdef const uint8_t *reason_p = NULL
    cdef size_t reason_len = 0
    cdef uint8_t *dest
    if version == "1.1":
        minor = 1
    elif version == "1.0":
        minor = 0
    else:
        raise InvalidInput(f"format_head: version must be '1.1' or '1.0', not {version!r}")
    if reason is not None:
        if not isinstance(reason, bytes):
            raise InvalidInput(f"format_head: reason must be bytes, not {type(reason).__name__}")
        reason_p = <const uint8_t *>PyBytes_AS_STRING(reason)
        reason_len = len(reason)
        cap += reason_len
    cdef tw_http_header_in *fields = <tw_http_header_in *>malloc((n + 1) * sizeof(tw_http_header_in))
    if fields == NULL:
        raise MemoryError()
    try:
        for k in range(n):
            item = items[k]
            if (not isinstance(item, tuple) or len(item) != 2
                    or not isinstance(item[0], bytes) or not isinstance(item[1], bytes)):
                raise InvalidInput(f"format_head: header {k} must be a (bytes, bytes) pair, "
                                   f"not {item!r}")
            name, value = item
            fields[k].name = <const uint8_t *>PyBytes_AS_STRING(name)
            fields[k].name_len = len(name)
            fields[k].value = <const uint8_t *>PyBytes_AS_STRING(value)
            fields[k].value_len = len(value)
            cap += fields[k].name_len + fields[k].value_len + 4
        out = PyBytes_FromStringAndSize(NULL, cap)
        dest = <uint8_t *>PyBytes_AS_STRING(out)
        with nogil:
            r = tw_http_format_head(dest, cap, minor, status,
                                    reason_p, reason_len, fields, n, &written, &bad)
        if r == TW_OK:
            return out[:written]
        if r == TW_HTTP_E_STATUS:
            raise InvalidInput(f"format_head: status must be in 100..999, not {status}")
        if r == TW_HTTP_E_REASON:
            raise InvalidInput(f"format_head: the reason phrase {reason!r} holds a control "
                               f"character (CR, LF, NUL, ...)")
        if r == TW_HTTP_E_HEADER_NAME:
            raise InvalidInput(f"format_head: header {bad} has an invalid name "
                               f"{items[bad][0]!r} (must be a non-empty token)")
        if r == TW_HTTP_E_HEADER_VALUE:
            raise InvalidInput(f"format_head: the value of header {bad} ({items[bad][0]!r}) "
                               f"holds a control character (CR, LF, NUL, ...): "
                               f"{items[bad][1]!r}")
        raise RuntimeError(f"format_head: internal error (status {r})")
    finally:
        free(fields)


def reason_phrase(int status):
    """The standard reason phrase of ``status`` (``b"Not Found"``), or ``b""``."""
    return <bytes>tw_http_reason(status)
