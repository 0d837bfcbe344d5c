"""The HTTP/1.1 layer: a strict request parser and a response head writer.

The parser (``csrc/http``) is incremental and zero-copy and rejects, with a
400 and a closed connection, everything two HTTP implementations could read
differently: bare CR or LF line endings, obs-fold, whitespace before a
header colon, control bytes, duplicate or malformed ``Content-Length``,
``Content-Length`` with ``Transfer-Encoding``, a final transfer coding other
than ``chunked``, bad chunk framing, and requests over the size limits.
:func:`parse_request` and :func:`parse_requests` parse complete input (a
testing and tooling aid); :class:`RequestParser` takes a stream in pieces;
:func:`format_head` writes a response status line and fields, refusing any
byte that could split the response. :class:`Router` maps methods and path
patterns (``/users/{user_id:int}``) to handlers for the native interface.
"""

from trusswork.http._native import App as App
from trusswork.http._native import FileResponse as FileResponse
from trusswork.http._native import HTTPRequest as HTTPRequest
from trusswork.http._native import JSONResponse as JSONResponse
from trusswork.http._native import Response as Response
from trusswork.http._native import StaticFiles as StaticFiles
from trusswork.http._native import StreamingResponse as StreamingResponse
from trusswork.http._parser import ERROR_NAMES as ERROR_NAMES
from trusswork.http._parser import HttpParseError as HttpParseError
from trusswork.http._parser import Request as Request
from trusswork.http._parser import RequestParser as RequestParser
from trusswork.http._parser import format_head as format_head
from trusswork.http._parser import parse_request as parse_request
from trusswork.http._parser import parse_requests as parse_requests
from trusswork.http._parser import reason_phrase as reason_phrase
from trusswork.http._router import Match as Match
from trusswork.http._router import MethodNotAllowed as MethodNotAllowed
from trusswork.http._router import Router as Router
from trusswork.http._server import Exchange as Exchange
from trusswork.http._server import ExchangeHandler as ExchangeHandler
from trusswork.http._server import Server as Server
from trusswork.http._server import ServerConfig as ServerConfig
from trusswork.http._workers import build_server as build_server
from trusswork.http._workers import serve as serve

__all__ = [
    "ERROR_NAMES",
    "App",
    "Exchange",
    "ExchangeHandler",
    "FileResponse",
    "HTTPRequest",
    "HttpParseError",
    "JSONResponse",
    "Match",
    "MethodNotAllowed",
    "Request",
    "RequestParser",
    "Response",
    "Router",
    "Server",
    "ServerConfig",
    "StaticFiles",
    "StreamingResponse",
    "build_server",
    "format_head",
    "parse_request",
    "parse_requests",
    "reason_phrase",
    "serve",
]
