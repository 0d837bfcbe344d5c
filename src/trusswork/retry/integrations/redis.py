"""Retries for redis-py: which Redis errors are worth retrying, and a ready policy.

Usage::

    from trusswork.retry import retry
    from trusswork.retry.integrations import redis as redis_retry

    @retry(policy=redis_retry.policy())
    def bump(client, key):
        return client.incr(key)

Retry whole operations that are safe to repeat. A retried ``INCR`` may
count twice if the first one reached the server before the connection
broke; make such operations idempotent (a ``SET ... NX`` token, a Lua script
that checks) or accept the double count. redis-py's own ``Retry`` on the
connection retries single commands; use one or the other, not both.
"""

from __future__ import annotations

from typing import Any, Unpack

import redis.exceptions as errors

from trusswork.retry._policy import Policy, PolicyOptions

__all__ = ["is_retryable", "policy"]

_RETRYABLE = (
    errors.ConnectionError,  # refused, reset, closed; BusyLoadingError and MaxConnectionsError
    errors.TimeoutError,
    errors.ReadOnlyError,  # wrote to a replica: a failover is under way
    errors.ClusterDownError,  # cluster down, or MasterDownError: a replica lost its primary
    errors.TryAgainError,  # a multi-key command during resharding
)

# ConnectionError subclasses that a retry does not cure: the credentials are wrong.
_PERMANENT = (errors.AuthenticationError, errors.AuthorizationError)


def is_retryable(error: BaseException) -> bool:
    """Whether a redis-py error is worth retrying.

    Retryable: ``ConnectionError`` (with ``BusyLoadingError``, the server
    loading its dataset, and ``MaxConnectionsError``, a full pool),
    ``TimeoutError``, ``ReadOnlyError`` (a write reached a replica during
    failover), ``ClusterDownError`` (and ``MasterDownError``) and
    ``TryAgainError`` (resharding). Not retryable: ``AuthenticationError``
    and ``AuthorizationError`` (though they are ``ConnectionError``
    subclasses), any other ``ResponseError`` (a wrong command or type),
    ``DataError``, ``WatchError`` (retry the whole transaction yourself),
    and errors not from redis-py.
    """
    if isinstance(error, _PERMANENT):
        return False
    return isinstance(error, _RETRYABLE)


def policy(**overrides: Unpack[PolicyOptions]) -> Policy:
    """A :class:`~trusswork.retry.Policy` for redis-py calls.

    Defaults: 3 attempts, full-jitter exponential backoff from 0.05 s capped
    at 2 s, ``retry_on=redis.RedisError`` with ``retry_if=is_retryable``.
    Keyword arguments override any of them.
    """
    options: dict[str, Any] = {
        "attempts": 3,
        "wait_initial": 0.05,
        "wait_max": 2.0,
        "jitter": "full",
        "retry_on": errors.RedisError,
        "retry_if": is_retryable,
    }
    options.update(overrides)
    return Policy(**options)
