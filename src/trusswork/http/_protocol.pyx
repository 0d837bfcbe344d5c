# cython: boundscheck=False, wraparound=False
"""The connection layer of the HTTP server, compiled: protocol, exchange, ASGI cycle.

One :class:`HttpProtocol` serves one connection. ``data_received`` feeds the
strict :class:`~trusswork.http.RequestParser`; complete requests are queued
and answered one at a time, so pipelined responses leave in request order.
Nothing here runs a coroutine per connection: the next request is started
from the callback that ends the previous one.

How a request is answered depends on the server's handler (chosen once per
server, see ``Server.kind``):

* an ASGI app (``ASGIAdapter``, no server middleware): one task runs
  ``app(scope, receive, send)``; the scope, ``receive`` and ``send`` are
  built here, and a whole response (start + one body) leaves in one write;
* a native :class:`~trusswork.http.App` (no server middleware): its
  ``_answer`` runs in ``data_received`` itself; plain-function handlers
  answer without any task, coroutine handlers get one;
* anything else (an ``ExchangeHandler``, or server middleware): a task runs
  ``handler(exchange)``; its failure is handled as for the others.

Response heads are formatted by the C writer of csrc/http straight into the
bytes object that is written (small bodies are copied behind the head, so a
small response is one allocation and one ``transport.write``).

Guarantees (tested in tests/http/test_server.py):

* Ordering: responses are written in the order of the requests; a parse
  error is answered (its ``http_status``, ``Connection: close``) only after
  the responses of the requests before it.
* Errors: a handler that raises before starting its response gets a 500 and
  the connection stays usable; one that raises after starting it has its
  connection closed (the client sees a truncated response, never a wrong one).
* Backpressure: when the transport's write buffer is over its high-water
  mark, :meth:`Exchange.write` waits for ``resume_writing`` and the next
  request waits too; when more than ``max_pipelined`` requests wait, the
  connection stops reading.
* Timeouts are checked by the server's sweep against :attr:`HttpProtocol.deadline`.
"""
import asyncio
import contextlib
import inspect
import logging
import os
import socket
from collections import deque
from email.utils import formatdate
from urllib.parse import unquote_to_bytes

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport int64_t, uint8_t
from libc.stdio cimport snprintf
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, strlen
from libc.time cimport time as c_time, time_t
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

from trusswork._includes.common cimport TW_OK
from trusswork._includes.http cimport tw_http_format_head, tw_http_header_in, tw_http_reason

import orjson

from trusswork.core.errors import InvalidInput, TrussworkError
from trusswork.http._parser import BODY_END, HttpParseError, RequestParser, format_head

cdef object _log = logging.getLogger("trusswork.http")

#: Bodies up to this size are copied behind the head into one ``transport.write``.
SMALL_BODY = 16384
cdef Py_ssize_t _SMALL_BODY = 16384
SERVER_NAME = b"trusswork"
# Heads with more fields than this take the general path (format_head).
DEF MAX_FIELDS = 48

# kinds of handler (Server.kind)
KIND_GENERIC = 0
KIND_ASGI = 1
KIND_NATIVE = 2

cdef tuple _OCTET_STREAM = ((b"content-type", b"application/octet-stream"),)
cdef bytes _CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
#: Bytes of a streamed request body that may wait for the app before the
#: connection stops reading.
BODY_BUFFER = 1 << 20
cdef Py_ssize_t _BODY_BUFFER = BODY_BUFFER
cdef bytes _B_CONTENT_LENGTH = b"content-length"
cdef bytes _B_TRANSFER_ENCODING = b"transfer-encoding"
cdef bytes _B_CHUNKED = b"chunked"
cdef bytes _B_CONNECTION = b"connection"
cdef bytes _B_CLOSE = b"close"
cdef bytes _B_KEEP_ALIVE = b"keep-alive"
cdef bytes _B_DATE = b"date"
cdef bytes _B_SERVER = b"server"
cdef bytes _B_SERVER_NAME = SERVER_NAME

# ---------------------------------------------------------------- Date header

cdef time_t _date_second = -1
cdef bytes _date_value = b""


cdef inline bytes _date():
    """The ``Date`` value (IMF-fixdate), rebuilt at most once a second."""
    global _date_second, _date_value
    cdef time_t now = c_time(NULL)
    if now != _date_second:
        _date_second = now
        _date_value = formatdate(now, usegmt=True).encode()
    return _date_value


def date_headers():
    """The ``Date`` and ``Server`` fields every response carries."""
    return ((_B_DATE, _date()), (_B_SERVER, _B_SERVER_NAME))


cdef inline double _now() noexcept:
    """Monotonic seconds (the clock of loop.time()), without a Python call."""
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


cdef inline bint _lower_equals(bytes name, bytes lower_want):
    """Whether ``name`` equals ``lower_want`` (lowercase ASCII) in any case."""
    cdef Py_ssize_t n = PyBytes_GET_SIZE(name), i
    if n != PyBytes_GET_SIZE(lower_want):
        return False
    cdef const uint8_t *a = <const uint8_t *>PyBytes_AS_STRING(name)
    cdef const uint8_t *b = <const uint8_t *>PyBytes_AS_STRING(lower_want)
    cdef uint8_t c
    for i in range(n):
        c = a[i]
        if 65 <= c <= 90:
            c += 32
        if c != b[i]:
            return False
    return True


def _other_coding(request):
    """Whether a chunked request also uses a coding the server cannot decode (gzip...)."""
    codings = b",".join(v for n, v in request.headers if n.lower() == b"transfer-encoding")
    return any(c.strip().lower() not in (b"chunked", b"") for c in codings.split(b","))


class InvalidResponse(ValueError):
    """A handler's response head is invalid (bad status, header name or value).

    Not a :class:`~trusswork.core.errors.TrussworkError`: it is the
    application's bug, answered with a 500 rather than a client error.
    """


class _ResponseStateError(RuntimeError):
    """A handler used its Exchange out of order (a bug in the handler)."""


def _wake(waiter):
    if not waiter.done():
        waiter.set_result(None)


# ---------------------------------------------------------------- metrics


cdef class Tally:
    """Request metrics recorded in batches: once per event-loop turn, not per request.

    ``add`` only counts in a dict and a list; the first ``add`` of a turn
    schedules ``flush`` with ``call_soon``, which moves the counts into the
    registry's counter (``requests``, labelled method and status) and
    histogram (``seconds``) before the loop polls for more I/O, so a client
    never sees its response before the request is counted.
    """

    cdef object loop
    cdef object requests
    cdef object seconds
    cdef dict series
    cdef dict pending
    cdef list durations
    cdef bint scheduled

    def __init__(self, loop, requests, seconds):
        self.loop = loop
        self.requests = requests
        self.seconds = seconds
        self.series = {}
        self.pending = {}
        self.durations = []

    cpdef add(self, str method, int status, double seconds):
        """Count one answered request."""
        key = (method, status)
        count = self.pending.get(key)
        self.pending[key] = 1 if count is None else count + 1
        self.durations.append(seconds)
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self.flush)

    def flush(self):
        """Move what was counted into the registry."""
        self.scheduled = False
        pending, self.pending = self.pending, {}
        durations, self.durations = self.durations, []
        for key, count in pending.items():
            series = self.series.get(key)
            if series is None:
                series = self.series[key] = self.requests.labels(key[0], str(key[1]))
            series.inc(count)
        if durations:
            self.seconds.observe_many(durations)


# ---------------------------------------------------------------- deferred writes


cdef class Outbox:
    """Responses written while the loop is still reading, sent once it is done.

    A handler answered inside ``data_received`` would otherwise write (and
    wake the client) between two reads of the same event-loop turn; holding
    those writes until the turn's callbacks run lets the turn read every
    ready connection first and then write every response, which costs the
    kernel far fewer wake-ups under load. Order per connection is kept: the
    release is scheduled with ``call_soon`` before any task a later request
    of the turn creates, and closing a connection releases first.
    """

    cdef object loop
    cdef list held
    cdef bint scheduled

    def __init__(self, loop):
        self.loop = loop
        self.held = []

    cdef int hold(self, object transport, object data) except -1:
        self.held.append(transport)
        self.held.append(data)
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self.release)
        return 0

    def release(self):
        """Write everything held (to the transports still open)."""
        cdef Py_ssize_t i
        self.scheduled = False
        held = self.held
        if not held:
            return
        self.held = []
        for i in range(0, len(held), 2):
            transport = held[i]
            if not transport.is_closing():
                transport.write(held[i + 1])


# ---------------------------------------------------------------- exchange


cdef class Exchange:
    """One request and the response to it, on one connection.

    A handler answers with :meth:`respond` (whole body known) or with
    :meth:`start` followed by :meth:`write` calls and :meth:`end`
    (streaming: chunked on HTTP/1.1 when no ``Content-Length`` is given), or
    with :meth:`sendfile`. Header names are bytes in any case (they are
    written as given); values may hold no control character.
    """

    cdef readonly object request
    cdef public bint started
    cdef public bint finished
    cdef public int status
    cdef public bint _keep_alive
    cdef bint _chunked
    cdef bint _bodiless          # HEAD, 204 or 304: no body bytes go out
    cdef bytes _head
    cdef HttpProtocol _protocol
    cdef double _started_at
    cdef Py_ssize_t _remaining   # body bytes the head announced and not yet written; -1: none

    def __init__(self, HttpProtocol protocol, request):
        self._protocol = protocol
        self.request = request
        self._keep_alive = request.keep_alive and not protocol.closing
        self._head = b""

    @property
    def client(self):
        """The peer's (host, port), when the socket has one."""
        return self._protocol.client

    @property
    def server(self):
        """The local (host, port) the request came in on."""
        return self._protocol.sockname

    @property
    def disconnected(self):
        """True once the client has gone away."""
        return self._protocol.lost.done()

    async def wait_disconnect(self):
        """Return when the client goes away (never, if the connection outlives the exchange)."""
        await asyncio.shield(self._protocol.lost)

    cdef bytes _make_head(self, int status, object headers, Py_ssize_t length,
                          const char *body, Py_ssize_t body_len):
        """Format the head (and copy ``body`` behind it); ``length`` -1 = not known.

        The exchange is marked started only when the head is valid: a bad
        header raises InvalidInput (through format_head's messages) and the
        handler can still answer 500.
        """
        if self.started:
            raise _ResponseStateError("the response has already started")
        cdef tw_http_header_in stack_fields[MAX_FIELDS]
        cdef tw_http_header_in *fields = stack_fields
        items = headers if type(headers) is list or type(headers) is tuple else list(headers)
        if len(items) > MAX_FIELDS - 4:  # room for the fields added below
            fields = <tw_http_header_in *>malloc((len(items) + 4) * sizeof(tw_http_header_in))
            if fields == NULL:
                raise MemoryError()
        try:
            return self._format_head(status, items, length, body, body_len, fields)
        finally:
            if fields != stack_fields:
                free(fields)

    cdef bytes _format_head(self, int status, object items, Py_ssize_t length,
                            const char *body, Py_ssize_t body_len,
                            tw_http_header_in *fields):
        cdef char length_text[24]
        cdef size_t n = 0, cap = 0, written = 0, i
        cdef int64_t bad = -1
        cdef int r
        cdef bint keep_alive = self._keep_alive and not self._protocol.closing
        cdef bint has_length = False, chunked = False
        cdef bytes name, value
        cdef list hold = None  # converted names/values kept alive while formatting
        cdef object request = self.request
        cdef bint http10 = request.version == "1.0"
        cdef bint bodiless = status in (204, 304) or status < 200
        for item in items:
            pair = _pair(item)
            if pair is not item:  # converted: keep the new objects alive until written
                if hold is None:
                    hold = []
                hold.append(pair)
            name = <bytes>pair[0]
            value = <bytes>pair[1]
            if _lower_equals(name, _B_CONTENT_LENGTH):
                has_length = True
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if length < 0:
                    length = declared
                elif declared != length and not bodiless and request.method != "HEAD":
                    raise InvalidResponse(
                        f"the response's Content-Length is {value.decode('latin-1')!r} "
                        f"but its body has {length} bytes"
                    )
            elif _lower_equals(name, _B_CONNECTION) and _lower_equals(value, _B_CLOSE):
                keep_alive = False
            fields[n].name = <const uint8_t *>PyBytes_AS_STRING(name)
            fields[n].name_len = PyBytes_GET_SIZE(name)
            fields[n].value = <const uint8_t *>PyBytes_AS_STRING(value)
            fields[n].value_len = PyBytes_GET_SIZE(value)
            n += 1
        if length >= 0 and not has_length and not bodiless:
            fields[n].name = <const uint8_t *>PyBytes_AS_STRING(_B_CONTENT_LENGTH)
            fields[n].name_len = 14
            fields[n].value = <const uint8_t *>length_text
            fields[n].value_len = snprintf(length_text, sizeof(length_text), "%zd", length)
            n += 1
        elif length < 0 and not bodiless:
            if not http10:
                chunked = True
                fields[n].name = <const uint8_t *>PyBytes_AS_STRING(_B_TRANSFER_ENCODING)
                fields[n].name_len = 17
                fields[n].value = <const uint8_t *>PyBytes_AS_STRING(_B_CHUNKED)
                fields[n].value_len = 7
                n += 1
            else:
                keep_alive = False
        date = _date()
        fields[n].name = <const uint8_t *>PyBytes_AS_STRING(_B_DATE)
        fields[n].name_len = 4
        fields[n].value = <const uint8_t *>PyBytes_AS_STRING(date)
        fields[n].value_len = PyBytes_GET_SIZE(date)
        n += 1
        fields[n].name = <const uint8_t *>PyBytes_AS_STRING(_B_SERVER)
        fields[n].name_len = 6
        fields[n].value = <const uint8_t *>PyBytes_AS_STRING(_B_SERVER_NAME)
        fields[n].value_len = PyBytes_GET_SIZE(_B_SERVER_NAME)
        n += 1
        if not keep_alive or http10:
            fields[n].name = <const uint8_t *>PyBytes_AS_STRING(_B_CONNECTION)
            fields[n].name_len = 10
            connection = _B_CLOSE if not keep_alive else _B_KEEP_ALIVE
            fields[n].value = <const uint8_t *>PyBytes_AS_STRING(connection)
            fields[n].value_len = PyBytes_GET_SIZE(connection)
            n += 1
        cap = 15 + strlen(tw_http_reason(status)) + 2  # "HTTP/1.1 200 " reason CRLF, CRLF
        for i in range(n):
            cap += fields[i].name_len + fields[i].value_len + 4
        out = PyBytes_FromStringAndSize(NULL, cap + body_len)
        cdef uint8_t *dest = <uint8_t *>PyBytes_AS_STRING(out)
        r = tw_http_format_head(dest, cap, 1, status, NULL, 0, fields, n, &written, &bad)
        if r != TW_OK:
            # format_head says what is wrong, with the header's index and value; the
            # handler's bug is a server error (500), not the client's InvalidInput (400)
            try:
                format_head(status, [(bytes(n_), bytes(v_)) for n_, v_ in items])
            except InvalidInput as error:
                raise InvalidResponse(str(error)) from None
            raise RuntimeError(f"internal error formatting a response head (status {r})")
        if body_len:
            memcpy(dest + written, body, body_len)
        self.started = True
        self.status = status
        self._keep_alive = keep_alive
        self._chunked = chunked
        self._bodiless = bodiless or request.method == "HEAD"
        self._remaining = -1 if chunked or self._bodiless else length
        if written + body_len == cap + body_len:
            return out
        return out[:written + body_len]

    def respond(self, int status, headers=(), body=b""):
        """Write a whole response; ``Content-Length`` is set from ``body``."""
        cdef Py_ssize_t size
        if type(body) is bytes:
            view = body
            size = PyBytes_GET_SIZE(body)
        else:
            view = memoryview(body)
            if view.ndim != 1 or view.itemsize != 1:
                view = view.cast("B")
            size = view.nbytes
        cdef bint small = size <= _SMALL_BODY and type(view) is bytes
        cdef bint bodiless = status in (204, 304) or status < 200 or self.request.method == "HEAD"
        if small and not bodiless:
            head = self._make_head(status, headers, size, PyBytes_AS_STRING(view), size)
        else:
            head = self._make_head(status, headers, size, NULL, 0)
        self.finished = True
        protocol = self._protocol
        if protocol.transport is None:
            return
        if bodiless or not size or small:
            protocol._send(head)
        elif size <= _SMALL_BODY:
            protocol._send(head + view)
        else:
            protocol._send(head)
            protocol._send(view)  # no copy: the transport keeps a reference if it must

    async def start(self, int status, headers=()):
        """Start a streamed response; the head is sent with the first body bytes."""
        self._head = self._make_head(status, headers, -1, NULL, 0)

    cdef int _start_known(self, int status, object headers) except -1:
        self._head = self._make_head(status, headers, -1, NULL, 0)
        return 0

    async def write(self, data, *, bint more=True):
        """Send the next piece of a started response; ``more=False`` ends it."""
        if not self.started:
            raise _ResponseStateError("write() before start()")
        if self.finished:
            raise _ResponseStateError("write() after the response ended")
        protocol = self._protocol
        if protocol.paused_writing:
            await protocol.drain()
        self._write(data, more)

    cdef int _write(self, object data, bint more) except -1:
        transport = self._protocol.transport
        if transport is None:
            self.finished = not more
            return 0
        view = data if type(data) is bytes else memoryview(data).cast("B")
        cdef Py_ssize_t size = len(view)
        if self._remaining >= 0:
            if size > self._remaining:
                raise InvalidResponse(
                    f"the response body goes past its Content-Length ({size} bytes written "
                    f"with {self._remaining} left)"
                )
            self._remaining -= size
            if not more and self._remaining:
                raise InvalidResponse(
                    f"the response ended {self._remaining} bytes short of its Content-Length"
                )
        head = self._head
        self._head = b""
        pieces = [head] if head else []
        if self._bodiless:
            pass
        elif self._chunked:
            if size:
                pieces += [b"%x\r\n" % size, view, b"\r\n"]
            if not more:
                pieces.append(b"0\r\n\r\n")
        elif size:
            pieces.append(view)
        if pieces:
            if size > _SMALL_BODY:
                transport.writelines(pieces)
            else:
                transport.write(b"".join(pieces))
        if not more:
            self.finished = True
        return 0

    async def end(self):
        """End a started response."""
        await self.write(b"", more=False)

    async def sendfile(self, int status, headers, file, offset, count):
        """Send ``count`` bytes of the open binary ``file`` from ``offset``.

        The head goes first through the transport, the bytes with
        ``os.sendfile`` (see :meth:`HttpProtocol.sendfile`).
        """
        head = self._make_head(status, headers, count, NULL, 0)
        protocol = self._protocol
        transport = protocol.transport
        if transport is None:
            self.finished = True
            return
        transport.write(head)
        if count and not self._bodiless:
            complete = await protocol.sendfile(file, offset, count)
            if not complete:
                self._keep_alive = False
                return
        self.finished = True


cdef object _pair(object item):
    """A header item as a (bytes, bytes) pair: ``item`` itself when it is one."""
    if type(item) is tuple and len(<tuple>item) == 2:
        if type((<tuple>item)[0]) is bytes and type((<tuple>item)[1]) is bytes:
            return item
    name, value = item
    return (bytes(name), bytes(value))


# ---------------------------------------------------------------- native interface


cdef class HTTPRequest:
    """What a native handler receives: the parsed request plus its path and query."""

    cdef readonly object raw
    cdef readonly str path
    cdef readonly str query_string
    cdef object _exchange

    def __init__(self, raw, exchange=None):
        self.raw = raw
        self._exchange = exchange
        cdef str target = raw.target
        cdef Py_ssize_t q = target.find("?")
        if q < 0:
            self.path = target
            self.query_string = ""
        else:
            self.path = target[:q]
            self.query_string = target[q + 1:]

    @property
    def method(self):
        """The request method (``"GET"``)."""
        return self.raw.method

    @property
    def headers(self):
        """The header fields in order, names as sent, as read-only memoryviews.

        Views over the parsed field bytes, made when asked for (no copy);
        ``bytes(view)`` gives bytes, and :meth:`header` looks one field up
        and returns bytes.
        """
        return [(memoryview(name), memoryview(value)) for name, value in self.raw.headers]

    @property
    def body(self):
        """The whole (de-chunked) body, as a read-only view."""
        return memoryview(self.raw.body)

    @property
    def client(self):
        """The peer's (host, port)."""
        return self._exchange.client if self._exchange is not None else None

    def header(self, name):
        """The value of the first field named ``name`` (case-insensitive), or None."""
        return self.raw.header(name)

    def json(self):
        """The body parsed as JSON.

        Raises
        ------
        InvalidInput
            If the body is not valid JSON.
        """
        try:
            return orjson.loads(self.raw.body)
        except orjson.JSONDecodeError as error:
            raise InvalidInput(f"request body is not valid JSON: {error}") from None

    def __repr__(self):
        return f"<HTTPRequest {self.method} {self.raw.target}>"


cdef class Response:
    """A whole response: status, headers and a body buffer sent without copying.

    ``body`` is any buffer (bytes, memoryview, a numpy array, an Arrow
    buffer); it is handed to the transport as is, never copied into a new
    ``bytes``. ``media_type`` (or the class's ``media_type``) becomes the
    ``content-type`` unless ``headers`` hold one.
    """

    cdef public object body
    cdef public int status
    cdef public list headers

    media_type = None

    def __init__(self, body=b"", int status=200, headers=None, *, media_type=None):
        self.body = body
        self.status = status
        self.headers = list(headers) if headers else []
        kind = media_type.encode("latin-1") if media_type else self.media_type
        if kind is not None:
            for name, _ in self.headers:
                if name == b"content-type":
                    return
            self.headers.append((b"content-type", kind))

    async def send(self, exchange):
        """Write this response on ``exchange``."""
        exchange.respond(self.status, self.headers, self.body)


cdef object _native_answer(object app, Exchange exchange):
    """``App._answer`` for its commonest case, compiled; the rest goes to it.

    The case: a static route (no parameters, no percent escapes) whose
    handler, wrapped in the app's middleware if it has any, is known to be a
    plain function, which returns bytes or a plain :class:`Response`.
    """
    request = exchange.request
    cdef HTTPRequest http_request = HTTPRequest(request, exchange)
    path = http_request.path
    matches = app.router._static_matches.get(path)
    if matches is None or "%" in path:
        return app._answer(exchange, http_request)
    match = matches.get(request.method)
    if match is None:
        return app._answer(exchange, http_request)
    handler = match.handler
    if app.middleware:
        handler = app._wrapped.get(handler)
        if handler is None:
            return app._answer(exchange, http_request)
    if app._plain.get(handler) is not True:
        return app._answer(exchange, http_request)
    try:
        result = handler(http_request)
        kind = type(result)
        if kind is Response:
            exchange.respond((<Response>result).status, (<Response>result).headers,
                             (<Response>result).body)
            return None
        if kind is bytes:
            exchange.respond(200, _OCTET_STREAM, result)
            return None
        if inspect.isawaitable(result):
            return app._finish(exchange, http_request, result)
        return app._send(exchange, http_request, result)
    except TrussworkError as error:
        app._answer_error(exchange, http_request, error)
        return None


# ---------------------------------------------------------------- ASGI


#: The ``asgi`` entry of every scope the server makes (HTTP and lifespan).
ASGI_VERSION = {"version": "3.0", "spec_version": "2.3"}
cdef dict _ASGI_VERSION = ASGI_VERSION


def asgi_scope(Exchange exchange, dict state):
    """The ASGI HTTP scope of ``exchange``'s request (see trusswork.http._asgi)."""
    request = exchange.request
    cdef str target = request.target
    cdef Py_ssize_t q = target.find("?")
    cdef str raw_path = target if q < 0 else target[:q]
    query = b"" if q < 0 else target[q + 1:].encode("latin-1")
    raw = raw_path.encode("latin-1")
    path = unquote_to_bytes(raw_path).decode("utf-8", "replace") if "%" in raw_path else raw_path
    headers = [(name.lower(), value) for name, value in request.headers]
    return {
        "type": "http",
        "asgi": _ASGI_VERSION,
        "http_version": request.version,
        "method": request.method,
        "scheme": "http",
        "path": path,
        "raw_path": raw,
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "client": exchange._protocol.client,
        "server": exchange._protocol.sockname,
        "state": state.copy() if state else {},
        "extensions": {"http.response.pathsend": {}},
    }


cdef class ASGICycle:
    """``receive`` and ``send`` of one ASGI HTTP request.

    A whole body (what a non-streaming parser hands over) comes in one
    ``http.request`` with ``more_body: False``. A streamed body (the server's
    ASGI path: the app starts when the head is complete) comes as it arrives:
    each ``receive()`` returns what has arrived since the last one, joined,
    with ``more_body: True`` until the last piece; the connection stops
    reading while more than :data:`BODY_BUFFER` bytes wait for the app. After
    the body, ``receive()`` waits for the client to go away and returns
    ``http.disconnect`` (at once if the body was cut short). ``send()``
    checks the message order and raises :class:`RuntimeError` on a violation.
    """

    cdef Exchange exchange
    cdef bint body_sent       # the last http.request (more_body False) was returned
    cdef bint streamed
    cdef object chunks        # deque of bytes not yet received by the app
    cdef Py_ssize_t buffered
    cdef bint ended           # the parser saw the end of the body
    cdef bint failed          # the body will not be completed (bad framing, client gone)
    cdef bint discard         # the exchange is over: drop what is left of the body
    cdef object waiter
    cdef object start_message
    cdef object start_headers
    cdef int start_status

    def __init__(self, Exchange exchange):
        self.exchange = exchange
        self.streamed = exchange.request.streamed
        if self.streamed:
            self.chunks = deque()

    cdef int feed_body(self, bytes chunk) except -1:
        if not self.discard and chunk:
            self.chunks.append(chunk)
            self.buffered += len(chunk)
            self._wake()
        return 0

    cdef int end_body(self) except -1:
        self.ended = True
        self._wake()
        return 0

    cdef int fail(self) except -1:
        self.failed = True
        self._wake()
        return 0

    cdef int drop_rest(self) except -1:
        """The exchange is over before its body: what still arrives is dropped."""
        self.discard = True
        self.chunks.clear()
        self.buffered = 0
        return 0

    cdef void _wake(self):
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def receive(self):
        """The request body, then ``http.disconnect`` when the client goes."""
        exchange = self.exchange
        if not self.body_sent:
            if not self.streamed:
                self.body_sent = True
                return {"type": "http.request", "body": exchange.request.body, "more_body": False}
            while True:
                if self.chunks or self.ended:
                    chunks = self.chunks
                    if not chunks:
                        body = b""
                    elif len(chunks) == 1:
                        body = chunks.popleft()
                    else:
                        body = b"".join(chunks)
                        chunks.clear()
                    self.buffered = 0
                    exchange._protocol._maybe_resume_reading()
                    self.body_sent = self.ended
                    return {"type": "http.request", "body": body, "more_body": not self.ended}
                if self.failed or exchange.disconnected:
                    return {"type": "http.disconnect"}
                self.waiter = exchange._protocol.loop.create_future()
                await self.waiter
        if exchange.finished or exchange.disconnected:
            return {"type": "http.disconnect"}
        await exchange.wait_disconnect()
        return {"type": "http.disconnect"}

    async def send(self, message):
        """Send one ASGI message (``http.response.start|body|pathsend``)."""
        exchange = self.exchange
        kind = message["type"]
        if kind == "http.response.start":
            if self.start_message is not None or exchange.started:
                raise RuntimeError("ASGI: http.response.start sent twice")
            self.start_message = message
            self.start_status = message["status"]
            self.start_headers = message.get("headers", ())
            return
        if kind == "http.response.body":
            if self.start_message is None:
                raise RuntimeError("ASGI: http.response.body before http.response.start")
            if exchange.finished:
                if exchange.disconnected:
                    return
                raise RuntimeError("ASGI: http.response.body after the response ended")
            body = message.get("body", b"")
            more = message.get("more_body", False)
            if not exchange.started:
                if not more:
                    exchange.respond(self.start_status, self.start_headers, body)
                    return
                exchange._start_known(self.start_status, self.start_headers)
            await exchange.write(body, more=more)
            return
        if kind == "http.response.pathsend" and self.start_message is not None and not exchange.started:
            with open(message["path"], "rb") as file:
                size = os.fstat(file.fileno()).st_size
                await exchange.sendfile(self.start_status, self.start_headers, file, 0, size)
            return
        raise RuntimeError(f"ASGI: unexpected message type {kind!r}")

    def finish(self):
        """After the app returned: a start without a body is an empty response."""
        if self.start_message is not None and not self.exchange.started:
            self.exchange.respond(self.start_status, self.start_headers, b"")


# ---------------------------------------------------------------- protocol


cdef class HttpProtocol:
    """One HTTP/1.1 connection; see the module docstring."""

    cdef readonly object server
    cdef readonly object config
    cdef readonly object parser
    cdef public object transport
    cdef readonly object queue
    cdef public bint busy
    cdef public bint closing
    cdef public bint paused_reading
    cdef public bint paused_writing
    cdef object _drain
    cdef readonly object lost
    cdef readonly object closed
    cdef readonly object client
    cdef readonly object sockname
    cdef public double deadline
    cdef bytearray _partial
    cdef bint _continue_sent
    cdef public bint eof
    cdef int kind
    cdef object handler
    cdef readonly object loop
    cdef bint _resume_on_drain
    cdef Py_ssize_t max_pipelined
    cdef double keep_alive_timeout, header_timeout, body_timeout
    cdef bint metrics
    cdef Tally tally
    cdef Outbox outbox
    cdef bint reading  # inside data_received: writes go through the outbox
    cdef ASGICycle body_sink  # the exchange whose streamed body is arriving
    cdef bint parse_failed    # the stream is broken: never read again

    def __init__(self, server):
        self.server = server
        config = self.config = server.config
        self.kind = server.kind
        # ASGI apps get request bodies as they arrive; the others get them whole
        self.parser = RequestParser(max_body=config.max_body,
                                    stream_bodies=self.kind == KIND_ASGI)
        self.queue = deque()
        self.loop = server.loop
        # `lost`: the client went away or half-closed (what ASGI calls a disconnect);
        # `closed`: the transport is gone.
        self.lost = self.loop.create_future()
        self.closed = self.loop.create_future()
        # Bytes of the request being received, kept only while it is incomplete,
        # to see when its head has ended (Expect: 100-continue, body timeout).
        self._partial = bytearray()
        self.handler = server.handler
        self.max_pipelined = config.max_pipelined
        self.keep_alive_timeout = config.keep_alive_timeout
        self.header_timeout = config.header_timeout
        self.body_timeout = config.body_timeout
        self.tally = server.tally
        self.outbox = server.outbox
        self.metrics = self.tally is not None

    # asyncio callbacks ------------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport
        server = self.server
        config = self.config
        if len(server.connections) >= config.max_connections or server.closing:
            transport.write(
                format_head(503, [(b"content-length", b"0"), (b"connection", b"close")])
            )
            transport.close()
            self.transport = None
            return
        server.connections.add(self)
        peer = transport.get_extra_info("peername")
        self.client = tuple(peer[:2]) if isinstance(peer, tuple) else None
        local = transport.get_extra_info("sockname")
        self.sockname = tuple(local[:2]) if isinstance(local, tuple) else None
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(config.tcp_nodelay))
        if config.write_buffer_high:
            transport.set_write_buffer_limits(high=config.write_buffer_high)
        self.deadline = self.loop.time() + self.keep_alive_timeout

    def connection_lost(self, exc):
        self.transport = None
        self.server.connections.discard(self)
        if not self.lost.done():
            self.lost.set_result(None)
        if not self.closed.done():
            self.closed.set_result(None)
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self.queue.clear()
        if self.body_sink is not None:
            self.body_sink.fail()
            self.body_sink = None

    def pause_writing(self):
        # the client does not read its responses: stop reading its requests too
        self.paused_writing = True
        self._pause()

    def resume_writing(self):
        self.paused_writing = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self._maybe_resume_reading()
        if self._resume_on_drain:
            self._resume_on_drain = False
            self._advance()

    async def drain(self):
        """Wait until the transport accepts more data (or the connection is lost)."""
        if not self.paused_writing or self.transport is None:
            return
        if self._drain is None or self._drain.done():
            self._drain = self.loop.create_future()
        await self._drain

    async def flush(self):
        """Wait until the transport's write buffer is empty (or the connection is lost)."""
        transport = self.transport
        if transport is None or not transport.get_write_buffer_size():
            return
        low, high = transport.get_write_buffer_limits()
        # With both limits at 0 the transport pauses us until its buffer is empty.
        transport.set_write_buffer_limits(high=0, low=0)
        try:
            while self.transport is not None and transport.get_write_buffer_size():
                if self.paused_writing:
                    await self.drain()
                else:
                    await asyncio.sleep(0.001)  # a transport that did not pause us
        finally:
            if self.transport is not None:
                transport.set_write_buffer_limits(high=high, low=low)

    async def sendfile(self, file, offset, count):
        """Send ``count`` bytes of ``file`` from ``offset`` with ``os.sendfile``.

        The transport's buffer is flushed first so bytes stay in order; the
        socket is written through a duplicate descriptor (uvloop neither
        implements ``loop.sendfile`` nor lets a transport's descriptor be
        watched), waiting for writability with ``add_writer``. Returns whether
        every byte was sent.
        """
        await self.flush()
        transport = self.transport
        if transport is None:
            return False
        loop = self.loop
        out = os.dup(transport.get_extra_info("socket").fileno())
        source = file.fileno()
        try:
            while count > 0:
                try:
                    sent = os.sendfile(out, source, offset, min(count, 1 << 30))
                except BlockingIOError:
                    sent = -1
                except OSError:  # the client went away
                    return False
                if sent == 0:
                    return False  # the file shrank under us: the response cannot be completed
                if sent > 0:
                    offset += sent
                    count -= sent
                    continue
                writable = loop.create_future()
                loop.add_writer(out, _wake, writable)
                try:
                    await asyncio.wait((writable, self.closed), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    loop.remove_writer(out)
                if self.transport is None:
                    return False
        finally:
            os.close(out)
        return True

    def data_received(self, data):
        if self.closing and not self.busy and not self.queue:
            return
        self.reading = True
        try:
            self._received(data)
        finally:
            self.reading = False

    cdef int _send(self, data) except -1:
        """Write ``data``: held in the outbox while reading, else at once."""
        if self.reading and self.outbox is not None:
            self.outbox.hold(self.transport, data)
        else:
            self.transport.write(data)
        return 0

    cdef int _received(self, data) except -1:
        queue = self.queue
        try:
            requests = self.parser.feed(data)
        except HttpParseError as error:
            self.parse_failed = True
            self._take(error.requests)  # complete before the error: answered first
            if self.body_sink is not None and not queue:
                self.body_sink.fail()  # its body will never be complete
                self.body_sink = None
            queue.append(error)
            self._partial.clear()
            self._pause()
        else:
            if self.kind == KIND_ASGI and self.parser.in_body:
                # a streamed body is arriving: the body timeout runs from its last bytes
                self.deadline = self.loop.time() + self.body_timeout
                if self._partial:
                    self._partial.clear()
            elif self._partial or self.parser.pending_bytes:
                self._track_partial(data, bool(requests))
            elif not self.busy and not queue and not requests:
                self.deadline = self.loop.time() + self.keep_alive_timeout
            if requests:
                if self.body_sink is None:
                    queue.extend(requests)  # body pieces belong to a queued request
                else:
                    self._take(requests)
            if len(queue) > self.max_pipelined or (
                self.body_sink is not None and self.body_sink.buffered > _BODY_BUFFER
            ):
                self._pause()
        if queue and not self.busy:
            self._advance()
        return 0

    cdef int _take(self, list items) except -1:
        """Queue parsed items; body pieces of the exchange receiving its body go to it."""
        queue = self.queue
        for item in items:
            if self.body_sink is not None and not queue and (
                type(item) is bytes or item is BODY_END
            ):
                if item is BODY_END:
                    self.body_sink.end_body()
                    self.body_sink = None
                else:
                    self.body_sink.feed_body(item)
            else:
                queue.append(item)
        return 0

    cdef int _maybe_resume_reading(self) except -1:
        """Read again if nothing holds the connection back any more.

        Reading stops while the client's responses do not drain (write buffer
        over its high-water mark), while more than ``max_pipelined`` requests
        wait, while more than BODY_BUFFER bytes of a streamed body wait for
        the app, and for good after a parse error.
        """
        if (
            self.paused_reading
            and self.transport is not None
            and not self.paused_writing
            and not self.parse_failed
            and len(self.queue) <= self.max_pipelined // 2
            and (self.body_sink is None or self.body_sink.buffered <= _BODY_BUFFER)
        ):
            self.paused_reading = False
            self.transport.resume_reading()
        return 0

    def eof_received(self):
        self.eof = True
        # A client that half-closes has usually gone; ASGI apps waiting in
        # receive() learn it (http.disconnect), the response can still be sent.
        if not self.lost.done():
            self.lost.set_result(None)
        if self.body_sink is not None:  # the rest of its body will not come
            self.body_sink.fail()
            self.body_sink = None
        if not self.busy:
            self._close()
        return True  # keep the transport half-open until the queued responses are sent

    # internals ---------------------------------------------------------------

    cdef void _pause(self):
        if not self.paused_reading and self.transport is not None:
            self.paused_reading = True
            self.transport.pause_reading()

    cdef int _track_partial(self, data, bint completed) except -1:
        pending = self.parser.pending_bytes
        now = self.loop.time()
        if not pending:
            if self._partial:
                self._partial.clear()
            self._continue_sent = False
            if not self.busy and not self.queue:
                self.deadline = now + self.keep_alive_timeout
            return 0
        if completed or not self._partial:
            # the incomplete request started in this chunk
            self._partial[:] = data[-pending:] if pending <= len(data) else data
            self._continue_sent = False
            self.deadline = now + self.header_timeout
        elif len(self._partial) < 65536 + 4:
            self._partial += data
        end = self._partial.find(b"\r\n\r\n")
        if end >= 0:
            # the head is complete, the body is being received
            self.deadline = now + self.body_timeout
            if not self._continue_sent:
                self._continue_sent = True
                head = bytes(self._partial[:end]).lower()
                if b"\nexpect:" in head and b"100-continue" in head and self.transport:
                    self._send(_CONTINUE)
        return 0

    def _close(self):
        if self.transport is not None:
            if self.outbox is not None and self.outbox.held:
                self.outbox.release()  # what was answered goes out before the close
            self.transport.close()

    def timed_out(self, double now):
        """Whether the current deadline passed (checked by the server's sweep)."""
        return (not self.busy or self.body_sink is not None) and self.deadline <= now

    cdef void _advance(self):
        """Answer queued requests until one needs a task, the queue empties or it closes."""
        cdef Exchange exchange
        queue = self.queue
        self.busy = True
        try:
            while queue:
                item = queue.popleft()
                if self.paused_reading:
                    self._maybe_resume_reading()
                if self.transport is None:
                    queue.clear()
                    break
                if type(item) is bytes or item is BODY_END:
                    continue  # the rest of a body its exchange did not wait for
                if isinstance(item, HttpParseError):
                    self._error_response(item.http_status, str(item))
                    queue.clear()
                    break
                if not item.has_host and item.version == "1.1":
                    self._error_response(400, "an HTTP/1.1 request must have a Host header")
                    queue.clear()
                    break
                if item.chunked and _other_coding(item):
                    self._error_response(
                        501, "transfer codings other than chunked are not supported"
                    )
                    queue.clear()
                    break
                exchange = Exchange(self, item)
                if self.metrics:
                    exchange._started_at = _now()
                if not self._dispatch(exchange):
                    return  # a task answers; its callback continues
                if not self._after(exchange):
                    return
            self._idle()
        except BaseException as error:  # a bug here must not leave the connection busy
            _log.error("internal error serving a connection", exc_info=error)
            self.busy = False
            if self.transport is not None:
                self.transport.abort()

    cdef bint _dispatch(self, Exchange exchange) except -1:
        """Start answering; True when the exchange is already answered."""
        cdef int kind = self.kind
        if kind == KIND_NATIVE:
            try:
                pending = _native_answer(self.handler, exchange)
            except Exception as error:
                self._failed(exchange, error)
                return True
            if pending is None:
                self._record(exchange)
                return True
            task = self.loop.create_task(pending)
        elif kind == KIND_ASGI:
            cycle = ASGICycle(exchange)
            if cycle.streamed:
                self._stream_to(cycle)
            handler = self.handler
            task = self.loop.create_task(
                handler.app(asgi_scope(exchange, handler.state), cycle.receive, cycle.send)
            )
            task.add_done_callback(_Done(self, exchange, cycle))
            return False
        else:  # any ExchangeHandler, or handlers wrapped in server middleware
            task = self.loop.create_task(self.handler(exchange))
        task.add_done_callback(_Done(self, exchange, None))
        return False

    cdef int _stream_to(self, ASGICycle cycle) except -1:
        """Make ``cycle`` receive its body: what is queued now, the rest as it arrives."""
        queue = self.queue
        while queue and (type(queue[0]) is bytes or queue[0] is BODY_END):
            item = queue.popleft()
            if item is BODY_END:
                cycle.end_body()
                return 0
            cycle.feed_body(item)
        self.body_sink = cycle
        if cycle.exchange.request.expect_continue and self.transport is not None:
            self._send(_CONTINUE)  # the app is ready for the body: ask for it
        self._maybe_resume_reading()
        return 0

    cdef int _failed(self, Exchange exchange, error) except -1:
        """A handler raised: 500 when nothing was sent, else close after this exchange."""
        if not exchange.started:
            try:
                exchange.respond(
                    500, [(b"content-type", b"text/plain; charset=utf-8")],
                    b"Internal Server Error\n",
                )
            except _ResponseStateError:
                pass
        elif not exchange.finished:
            exchange._keep_alive = False  # a truncated response: only closing can say so
        # else the response went out whole (Starlette re-raises after its 500 page):
        # the connection stays usable
        request = exchange.request
        _log.error("error in handler for %s %s", request.method, request.target, exc_info=error)
        self._record(exchange)
        return 0

    cdef int _record(self, Exchange exchange) except -1:
        if not exchange.started:
            exchange.respond(
                500,
                [(b"content-type", b"text/plain; charset=utf-8")],
                b"the application sent no response\n",
            )
        if self.metrics:
            self.tally.add(
                exchange.request.method, exchange.status, _now() - exchange._started_at
            )
        return 0

    cdef bint _after(self, Exchange exchange) except -1:
        """After an answered exchange: False when the connection closes or waits to drain."""
        if self.body_sink is not None and self.body_sink.exchange is exchange:
            self.body_sink.drop_rest()  # keep reading the body, to find the next request
        if not exchange._keep_alive or self.parser.upgraded or not exchange.finished:
            self.queue.clear()
            self.busy = False
            self._close()
            return False
        if self.paused_writing and self.transport is not None:
            self._resume_on_drain = True
            return False
        return True

    cdef void _idle(self):
        self.busy = False
        if self.transport is not None:
            if self.closing or self.eof:
                self._close()
            else:
                self.deadline = self.loop.time() + (
                    self.keep_alive_timeout if self.parser.at_boundary else self.header_timeout
                )

    cdef int _task_done(self, Exchange exchange, task) except -1:
        if task.cancelled():
            exchange._keep_alive = False
            if not exchange.started and self.transport is not None:
                self.transport.abort()
        else:
            error = task.exception()
            if error is not None:
                self._failed(exchange, error)
            else:
                self._record(exchange)
        if self._after(exchange):
            self._advance()
        return 0

    cdef int _asgi_done(self, Exchange exchange, ASGICycle cycle, task) except -1:
        if not task.cancelled() and task.exception() is None:
            try:
                cycle.finish()
            except Exception as error:
                self._failed(exchange, error)
                if self._after(exchange):
                    self._advance()
                return 0
        return self._task_done(exchange, task)

    cdef void _error_response(self, int status, str message):
        body = message.encode("utf-8", "replace") + b"\n"
        head = format_head(
            status,
            [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", b"%d" % len(body)),
                *date_headers(),
                (b"connection", b"close"),
            ],
        )
        if self.transport is not None:
            self._send(head + body)
        self.server.count("-", status, 0.0)
        self._close()

    def shutdown(self):
        """Close now if idle, else after the response in flight."""
        self.closing = True
        if not self.busy:
            self._close()


cdef class _Done:
    """Done callback of a handler task: finish the exchange, then go on with the queue.

    ``cycle`` is the ASGI cycle when the task ran an ASGI app.
    """

    cdef HttpProtocol protocol
    cdef Exchange exchange
    cdef ASGICycle cycle

    def __init__(self, HttpProtocol protocol, Exchange exchange, ASGICycle cycle):
        self.protocol = protocol
        self.exchange = exchange
        self.cycle = cycle

    def __call__(self, task):
        try:
            if self.cycle is not None:
                self.protocol._asgi_done(self.exchange, self.cycle, task)
            else:
                self.protocol._task_done(self.exchange, task)
        except BaseException as error:
            _log.error("internal error after a request", exc_info=error)
            if self.protocol.transport is not None:
                self.protocol.transport.abort()
