"""A minimal RESP2 client for the Redis limiter: one socket per thread, pre-encoded commands.

redis-py's per-command overhead halved the decision rate of ``RedisLimiter``
(see ``_redis.py``), so the limiter speaks the protocol itself: commands are
written as bytes prepared once, and replies are read with the few RESP types
the scripts return (integers, bulk strings, arrays, errors).
"""

from __future__ import annotations

import os
import socket
from typing import Any
from urllib.parse import unquote, urlsplit

from trusswork.core.errors import InvalidInput


class _ProtocolError(Exception):
    """The peer sent bytes that are not a RESP reply."""


class _ReplyError:
    """An error reply (``-CODE message``), kept as a value so a pipeline reads on."""

    __slots__ = ("message",)

    def __init__(self, message: bytes) -> None:
        self.message = message


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


def _command(*parts: bytes) -> bytes:
    return b"*%d\r\n" % len(parts) + b"".join(_bulk(p) for p in parts)


class _Address:
    """Where and how to connect, parsed from a ``redis://`` or ``unix://`` URL."""

    __slots__ = ("db", "host", "password", "path", "port", "username")

    def __init__(self, url: object) -> None:
        if not isinstance(url, str) or not url:
            raise InvalidInput(f"RedisLimiter url must be a non-empty string, got {url!r}")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise InvalidInput(f"RedisLimiter url {url!r} is malformed: {exc}") from None
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.host = ""
        self.port = 0
        self.path = ""
        db_text = ""
        if parts.scheme == "redis":
            if not parts.hostname:
                raise InvalidInput(f"RedisLimiter url {url!r} names no host")
            self.host = parts.hostname
            self.port = port or 6379
            db_text = parts.path.lstrip("/")
        elif parts.scheme == "unix":
            if not parts.path:
                raise InvalidInput(f"RedisLimiter url {url!r} names no socket path")
            self.path = parts.path
            for item in parts.query.split("&"):
                if item.startswith("db="):
                    db_text = item[3:]
        else:
            raise InvalidInput(
                f"RedisLimiter url {url!r}: scheme must be redis:// or unix:// "
                f"(TLS, rediss://, is not supported by this client)"
            )
        if db_text and not db_text.isdigit():
            raise InvalidInput(f"RedisLimiter url {url!r}: database {db_text!r} is not a number")
        self.db = int(db_text) if db_text else 0

    def __str__(self) -> str:
        where = self.path or f"{self.host}:{self.port}"
        return f"redis at {where} (db {self.db})"


class _Connection:
    """One socket speaking RESP2; used by one thread at a time."""

    __slots__ = ("_buf", "_pos", "_sock", "pid")

    def __init__(self, address: _Address, timeout: float) -> None:
        if address.path:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(address.path)
            except BaseException:
                sock.close()
                raise
        else:
            sock = socket.create_connection((address.host, address.port), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self._buf = b""
        self._pos = 0
        self.pid = os.getpid()
        setup: list[bytes] = []
        if address.password is not None:
            user = [address.username.encode()] if address.username else []
            setup.append(_command(b"AUTH", *user, address.password.encode()))
        if address.db:
            setup.append(_command(b"SELECT", str(address.db).encode()))
        if setup:
            try:
                replies = self.roundtrip(b"".join(setup), len(setup))
            except BaseException:
                self.close()
                raise
            for reply in replies:
                if isinstance(reply, _ReplyError):
                    self.close()
                    message = reply.message.decode(errors="replace")
                    raise ConnectionRefusedError(f"AUTH or SELECT refused: {message}")

    def close(self) -> None:
        self._sock.close()

    def roundtrip(self, payload: bytes, replies: int) -> list[Any]:
        """Send ``payload`` (``replies`` commands) and read that many replies."""
        self._sock.sendall(payload)
        return [self._reply() for _ in range(replies)]

    def _fill(self) -> None:
        chunk = self._sock.recv(262144)
        if not chunk:
            raise ConnectionResetError("Redis closed the connection")
        self._buf = self._buf[self._pos :] + chunk if self._pos < len(self._buf) else chunk
        self._pos = 0

    def _line(self) -> bytes:
        while True:
            end = self._buf.find(b"\r\n", self._pos)
            if end >= 0:
                line = self._buf[self._pos : end]
                self._pos = end + 2
                return line
            self._fill()

    def _reply(self) -> Any:
        line = self._line()
        kind = line[:1]
        if kind == b"$":
            size = self._int(line)
            if size < 0:
                return None
            end = self._pos + size
            while len(self._buf) < end + 2:
                self._fill()
                end = self._pos + size
            value = self._buf[self._pos : end]
            self._pos = end + 2
            return value
        if kind == b"+":
            return line[1:]
        if kind == b"-":
            return _ReplyError(line[1:])
        if kind == b":":
            return self._int(line)
        if kind == b"*":
            count = self._int(line)
            return None if count < 0 else [self._reply() for _ in range(count)]
        raise _ProtocolError(f"the server answered {line[:60]!r}, which is not a Redis reply")

    @staticmethod
    def _int(line: bytes) -> int:
        try:
            return int(line[1:])
        except ValueError:
            raise _ProtocolError(f"bad length or integer in reply line {line[:60]!r}") from None
