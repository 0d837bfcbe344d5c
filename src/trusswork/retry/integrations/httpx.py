"""Retries for httpx: error classification, a ready policy, and retrying transports.

Usage::

    import httpx
    from trusswork.retry.integrations.httpx import RetryTransport

    client = httpx.Client(transport=RetryTransport())

The transports retry connection failures, timeouts, dropped connections and
the statuses of :data:`RETRYABLE_STATUS` (or the policy's
``retry_on_status``), for idempotent methods with a replayable body only.
They wait the policy's backoff, or longer when the server asks for it
(``Retry-After``), and give up, returning the last response or raising the
last httpx error, when the policy says so or the server asks for more
than ``max_pushback``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Unpack

import httpx

from trusswork.retry._policy import Policy, PolicyOptions
from trusswork.retry.integrations import (
    IDEMPOTENT_METHODS,
    RETRYABLE_STATUS,
    _asend_with_retries,
    _http_client_policy,
    _http_methods,
    _policy_of,
    _send_with_retries,
)

__all__ = [
    "IDEMPOTENT_METHODS",
    "RETRYABLE_STATUS",
    "AsyncRetryTransport",
    "RetryTransport",
    "is_retryable",
    "policy",
]

_RETRYABLE_TRANSPORT_ERRORS = (
    httpx.TimeoutException,  # connect, read, write and pool timeouts
    httpx.NetworkError,  # connect, read, write and close errors
    httpx.RemoteProtocolError,  # the server dropped the connection or broke HTTP
    httpx.ProxyError,
)


def is_retryable(error: BaseException) -> bool:
    """Whether an httpx error is worth retrying.

    Retryable: timeouts (``ConnectTimeout``, ``ReadTimeout``,
    ``WriteTimeout``, ``PoolTimeout``), network errors (``ConnectError``,
    ``ReadError``, ``WriteError``, ``CloseError``), ``RemoteProtocolError``
    (the server closed the connection without answering), ``ProxyError``,
    and ``HTTPStatusError`` whose status is in :data:`RETRYABLE_STATUS`.
    Not retryable: everything else (``InvalidURL``, ``UnsupportedProtocol``,
    ``LocalProtocolError``, ``DecodingError``, ``TooManyRedirects``, other
    statuses), and errors not from httpx.

    A read error or timeout may come after the server acted on the request:
    retry those only for idempotent requests (the transports here do).
    """
    if isinstance(error, httpx.HTTPStatusError):
        return error.response.status_code in RETRYABLE_STATUS
    return isinstance(error, _RETRYABLE_TRANSPORT_ERRORS)


def policy(**overrides: Unpack[PolicyOptions]) -> Policy:
    """A :class:`~trusswork.retry.Policy` for httpx calls.

    Defaults: 4 attempts, full-jitter exponential backoff from 0.1 s capped
    at 5 s, ``retry_on=httpx.HTTPError`` with ``retry_if=is_retryable``,
    ``retry_on_status=RETRYABLE_STATUS`` (so a returned 503 response is
    retried too) and server pushback honoured up to 60 s. Keyword arguments
    override any of them.
    """
    return _http_client_policy(httpx.HTTPError, is_retryable, overrides)


def _replayable(request: httpx.Request) -> bool:
    """Whether the request's body can be sent again (it is in memory, not a stream)."""
    try:
        request.content  # noqa: B018 - raises RequestNotRead for an unread stream
    except httpx.RequestNotRead:
        return False
    return True


class _Options:
    __slots__ = ("methods", "policy", "statuses")

    def __init__(self, policy_: Policy | None, methods: Collection[str], where: str) -> None:
        self.policy = _policy_of(policy_, policy(), where)
        self.methods = _http_methods(methods, where)
        statuses = self.policy.retry_on_status
        self.statuses = statuses if statuses is not None else RETRYABLE_STATUS

    def applies(self, request: httpx.Request) -> bool:
        return request.method in self.methods and _replayable(request)


_TIMEOUT_KEYS = ("connect", "read", "write", "pool")


def _capped(request: httpx.Request, limit: float | None) -> httpx.Request:
    """``request`` with its timeouts lowered to the attempt's ``limit`` (in place)."""
    if limit is not None:
        timeouts = dict(request.extensions.get("timeout") or {})
        for key in _TIMEOUT_KEYS:
            current = timeouts.get(key)
            timeouts[key] = limit if current is None else min(current, limit)
        request.extensions["timeout"] = timeouts
    return request


class RetryTransport(httpx.BaseTransport):
    """An httpx transport that retries requests through another transport.

    Parameters
    ----------
    transport:
        The transport that sends each attempt (a new ``httpx.HTTPTransport``
        by default). Closing this transport closes it.
    policy:
        The retry policy (:func:`policy` by default). Its ``retry_on`` and
        ``retry_if`` decide which exceptions are retried, and its
        ``retry_on_status`` which statuses (:data:`RETRYABLE_STATUS` if None).
    methods:
        The methods retried (:data:`IDEMPOTENT_METHODS`); other requests,
        and requests whose body is a stream that cannot be replayed, are
        sent once.

    Raises
    ------
    InvalidInput
        If ``policy`` or ``methods`` is invalid.
    """

    def __init__(
        self,
        transport: httpx.BaseTransport | None = None,
        *,
        policy: Policy | None = None,
        methods: Collection[str] = IDEMPOTENT_METHODS,
    ) -> None:
        self._options = _Options(policy, methods, "RetryTransport")
        self.transport = transport if transport is not None else httpx.HTTPTransport()

    @property
    def policy(self) -> Policy:
        """The retry policy."""
        return self._options.policy

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``, retrying per the policy; return the final response."""
        options = self._options
        if not options.applies(request):
            return self.transport.handle_request(request)
        return _send_with_retries(
            lambda limit: self.transport.handle_request(_capped(request, limit)),
            httpx.Response.close,
            options.policy,
            options.statuses,
        )

    def close(self) -> None:
        """Close the wrapped transport."""
        self.transport.close()


class AsyncRetryTransport(httpx.AsyncBaseTransport):
    """The ``async`` twin of :class:`RetryTransport`, for ``httpx.AsyncClient``.

    It sleeps with the policy clock's ``asleep`` and reports to an async
    retry budget; the parameters are those of :class:`RetryTransport`
    (the default transport is a new ``httpx.AsyncHTTPTransport``).
    """

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        policy: Policy | None = None,
        methods: Collection[str] = IDEMPOTENT_METHODS,
    ) -> None:
        self._options = _Options(policy, methods, "AsyncRetryTransport")
        self.transport = transport if transport is not None else httpx.AsyncHTTPTransport()

    @property
    def policy(self) -> Policy:
        """The retry policy."""
        return self._options.policy

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``, retrying per the policy; return the final response."""
        options = self._options
        if not options.applies(request):
            return await self.transport.handle_async_request(request)
        return await _asend_with_retries(
            lambda limit: self.transport.handle_async_request(_capped(request, limit)),
            httpx.Response.aclose,
            options.policy,
            options.statuses,
        )

    async def aclose(self) -> None:
        """Close the wrapped transport."""
        await self.transport.aclose()
