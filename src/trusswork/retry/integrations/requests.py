"""Retries for requests: error classification, a ready policy, and a retrying adapter.

Usage::

    import requests
    from trusswork.retry.integrations.requests import RetryAdapter

    session = requests.Session()
    adapter = RetryAdapter()
    session.mount("https://", adapter)
    session.mount("http://", adapter)

The adapter retries connection failures, timeouts, broken chunked bodies
and the statuses of :data:`RETRYABLE_STATUS` (or the policy's
``retry_on_status``), for idempotent methods with a replayable body only.
It waits the policy's backoff, or longer when the server asks for it
(``Retry-After``), and gives up, returning the last response or raising the
last requests error, when the policy says so or the server asks for more
than ``max_pushback``. urllib3's own retries are off (``max_retries=0``),
so a request is never retried twice over.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Unpack

import requests
from requests.adapters import HTTPAdapter

from trusswork.retry._policy import Policy, PolicyOptions
from trusswork.retry.integrations import (
    IDEMPOTENT_METHODS,
    RETRYABLE_STATUS,
    _http_client_policy,
    _http_methods,
    _policy_of,
    _send_with_retries,
)

__all__ = [
    "IDEMPOTENT_METHODS",
    "RETRYABLE_STATUS",
    "RetryAdapter",
    "is_retryable",
    "policy",
]


def is_retryable(error: BaseException) -> bool:
    """Whether a requests error is worth retrying.

    Retryable: ``ConnectionError`` (refused, reset, dropped before an
    answer, proxy errors; ``ConnectTimeout`` is one) except ``SSLError``;
    ``ChunkedEncodingError`` (the body broke off); ``HTTPError`` whose
    response status is in :data:`RETRYABLE_STATUS`; and ``ReadTimeout``
    when the request is idempotent (its method is in
    :data:`IDEMPOTENT_METHODS`, or the error carries no request): a read
    timeout means the server may have acted on the request already.
    Not retryable: ``SSLError`` (a certificate problem does not heal),
    ``InvalidURL``, ``MissingSchema``, ``InvalidSchema``, ``InvalidHeader``,
    ``TooManyRedirects``, ``ContentDecodingError``, other statuses, and
    errors not from requests.
    """
    if isinstance(error, requests.exceptions.SSLError):
        return False
    if isinstance(error, (requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        return True
    if isinstance(error, requests.HTTPError):
        response = error.response
        return response is not None and response.status_code in RETRYABLE_STATUS
    if isinstance(error, requests.ReadTimeout):
        request = error.request
        method = getattr(request, "method", None)
        return method is None or str(method).upper() in IDEMPOTENT_METHODS
    return False


def policy(**overrides: Unpack[PolicyOptions]) -> Policy:
    """A :class:`~trusswork.retry.Policy` for requests calls.

    Defaults: 4 attempts, full-jitter exponential backoff from 0.1 s capped
    at 5 s, ``retry_on=requests.RequestException`` with
    ``retry_if=is_retryable``, ``retry_on_status=RETRYABLE_STATUS`` (so a
    returned 503 response is retried too) and server pushback honoured up
    to 60 s. Keyword arguments override any of them.
    """
    return _http_client_policy(requests.RequestException, is_retryable, overrides)


def _replayable(request: requests.PreparedRequest) -> bool:
    """Whether the body can be sent again: none, or bytes in memory (not a file or generator)."""
    return request.body is None or isinstance(request.body, (bytes, str))


class RetryAdapter(HTTPAdapter):
    """A requests transport adapter that retries per a trusswork policy.

    Parameters
    ----------
    policy:
        The retry policy (:func:`policy` by default). Its ``retry_on`` and
        ``retry_if`` decide which exceptions are retried, and its
        ``retry_on_status`` which statuses (:data:`RETRYABLE_STATUS` if None).
    methods:
        The methods retried (:data:`IDEMPOTENT_METHODS`); other requests,
        and requests whose body is a file or generator, are sent once.
    pool_connections, pool_maxsize, pool_block:
        As for ``requests.adapters.HTTPAdapter``. There is no
        ``max_retries``: urllib3's retries are always off here.

    Raises
    ------
    InvalidInput
        If ``policy`` or ``methods`` is invalid.
    """

    # What requests pickles of an adapter (sessions are pickled with their adapters);
    # declared as HTTPAdapter declares it, an instance variable in its stubs.
    __attrs__: list[str] = [  # noqa: RUF012
        *HTTPAdapter.__attrs__,
        "retry_methods",
        "retry_policy",
        "retry_statuses",
    ]

    def __init__(
        self,
        *,
        policy: Policy | None = None,
        methods: Collection[str] = IDEMPOTENT_METHODS,
        pool_connections: int = 10,
        pool_maxsize: int = 10,
        pool_block: bool = False,
    ) -> None:
        chosen = _policy_of(policy, _default_policy(), "RetryAdapter")
        self.retry_methods = _http_methods(methods, "RetryAdapter")
        self.retry_policy = chosen
        statuses = chosen.retry_on_status
        self.retry_statuses = statuses if statuses is not None else RETRYABLE_STATUS
        super().__init__(
            pool_connections=pool_connections,
            pool_maxsize=pool_maxsize,
            max_retries=0,
            pool_block=pool_block,
        )

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float | None, float | None] | None = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        """Send ``request``, retrying per the policy; return the final response."""
        if str(request.method).upper() not in self.retry_methods or not _replayable(request):
            return super().send(request, stream, timeout, verify, cert, proxies)

        def attempt(limit: float | None) -> requests.Response:
            response = super(RetryAdapter, self).send(
                request, stream, _capped(timeout, limit), verify, cert, proxies
            )
            if not stream:
                response.content  # noqa: B018 - read here, so a broken body is retried
            return response

        return _send_with_retries(
            attempt,
            requests.Response.close,
            self.retry_policy,
            self.retry_statuses,
        )


def _capped(
    timeout: float | tuple[float | None, float | None] | None, limit: float | None
) -> float | tuple[float | None, float | None] | None:
    """``timeout`` (requests' float or (connect, read) pair) lowered to ``limit``."""
    if limit is None:
        return timeout
    if timeout is None:
        return limit
    if isinstance(timeout, tuple):
        return tuple(limit if t is None else min(t, limit) for t in timeout)  # type: ignore[return-value]
    return min(timeout, limit)


def _default_policy() -> Policy:
    return policy()
