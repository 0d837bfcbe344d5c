"""Ready retry policies and transports for common clients.

One module per client library, imported only by code that has the library:

* :mod:`trusswork.retry.integrations.httpx`: ``RetryTransport`` and
  ``AsyncRetryTransport`` for ``httpx`` clients;
* :mod:`trusswork.retry.integrations.requests`: ``RetryAdapter`` for
  ``requests`` sessions;
* :mod:`trusswork.retry.integrations.redis`: redis-py errors;
* :mod:`trusswork.retry.integrations.psycopg`: psycopg 3 errors, by SQLSTATE.

Each offers ``is_retryable(error)``, which says whether an error of that
library is worth retrying, and ``policy(**overrides)``, a
:class:`~trusswork.retry.Policy` that retries exactly those errors. This
package itself imports only the standard library and :mod:`trusswork.retry`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import Any, Protocol, TypeVar

from trusswork.core.errors import InvalidInput
from trusswork.retry._policy import Policy
from trusswork.retry._retry import _DEADLINE, AttemptTimeout, _attempt_deadline, _Run

__all__ = ["IDEMPOTENT_METHODS", "RETRYABLE_STATUS"]

IDEMPOTENT_METHODS: frozenset[str] = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
"""The HTTP methods RFC 9110 (section 9.2.2) calls idempotent: safe to send twice."""

RETRYABLE_STATUS: frozenset[int] = frozenset({408, 425, 429, 500, 502, 503, 504})
"""HTTP statuses worth retrying: timeouts, too early, rate limits and server-side failures."""


def _http_methods(methods: Collection[str], where: str) -> frozenset[str]:
    """Validate a ``methods=`` option: a non-empty collection of method names, upper-cased."""
    if isinstance(methods, str) or not methods or not all(isinstance(m, str) for m in methods):
        raise InvalidInput(
            f"{where} methods= must be a non-empty collection of HTTP method names, got {methods!r}"
        )
    return frozenset(m.upper() for m in methods)


def _policy_of(policy: object, default: Policy, where: str) -> Policy:
    """``policy`` if it is a Policy, ``default`` if it is None; InvalidInput otherwise."""
    if policy is None:
        return default
    if not isinstance(policy, Policy):
        raise InvalidInput(f"{where} policy= must be a trusswork.retry.Policy, got {policy!r}")
    return policy


def _http_client_policy(
    base_error: type[BaseException], is_retryable: Callable[[BaseException], bool], overrides: Any
) -> Policy:
    """The ready policy of the HTTP client integrations; ``overrides`` win.

    4 attempts, full-jitter backoff from 0.1 s capped at 5 s, statuses in
    :data:`RETRYABLE_STATUS` retried, server pushback honoured up to 60 s.
    """
    options: dict[str, Any] = {
        "attempts": 4,
        "wait_initial": 0.1,
        "wait_max": 5.0,
        "jitter": "full",
        "retry_on": base_error,
        "retry_if": is_retryable,
        "retry_on_status": RETRYABLE_STATUS,
        "max_pushback": 60.0,
        **overrides,
    }
    return Policy(**options)


class _Response(Protocol):
    status_code: int


Resp = TypeVar("Resp", bound=_Response)


def _http_run(policy: Policy) -> _Run:
    """The retry state of one HTTP request: the core's, so metrics and logs match."""
    return _Run(policy, policy.name or "HTTP request", None, None)


def _limit(run: _Run) -> tuple[float | None, Any]:
    """The attempt's time limit in seconds (None: none) and the deadline token to reset."""
    policy = run.policy
    attempt_at = _attempt_deadline(policy, run.deadline_at)
    if attempt_at is None:
        return None, None
    token = _DEADLINE.set((policy.clock, attempt_at))
    return max(0.0, attempt_at - policy.clock.monotonic()), token


def _send_with_retries(
    send: Callable[[float | None], Resp],
    close: Callable[[Resp], object],
    policy: Policy,
    statuses: Collection[int],
) -> Resp:
    """Send until a response's status is not in ``statuses`` or the policy gives up.

    The transports run this loop instead of :func:`~trusswork.retry.retry`
    because giving up must hand back the last response (a 503 is an answer,
    not an exception) and must re-raise the client's own exception types.
    The waits, pushback, budget, deadline (the policy's, or the enclosing
    retry's), hooks, metrics and logs are the retry core's. ``send`` gets
    the attempt's time limit in seconds (``attempt_timeout`` or what the
    deadline leaves; None if neither) to cap its socket timeouts with, and
    :func:`~trusswork.retry.remaining` reports it during the call.
    """
    run = _http_run(policy)
    budget = policy.budget
    while True:
        limit, token = _limit(run)
        try:
            response = send(limit)
        except Exception as error:
            if not run.retryable(error):
                raise
            allowed = budget.record_failure() if budget is not None else True
            wait = run.failed(error, None, allowed)
            if wait is None:
                run.give_up(error)
                raise
        else:
            if response.status_code not in statuses:
                if run.history:
                    run.succeeded()
                if budget is not None:
                    budget.record_success()
                return response
            allowed = budget.record_failure() if budget is not None else True
            wait = run.failed(None, response, allowed)
            if wait is None:
                run.give_up(None)
                return response
            close(response)
        finally:
            if token is not None:
                _DEADLINE.reset(token)
        policy.clock.sleep(wait)
        run.before()


async def _asend_with_retries(
    send: Callable[[float | None], Awaitable[Resp]],
    close: Callable[[Resp], Awaitable[object]],
    policy: Policy,
    statuses: Collection[int],
) -> Resp:
    """:func:`_send_with_retries` for async clients; an attempt is cancelled at its limit."""
    run = _http_run(policy)
    budget = policy.budget
    while True:
        limit, token = _limit(run)
        try:
            response = await _within(send, limit)
        except Exception as error:
            if not run.retryable(error):
                raise
            allowed = await budget.arecord_failure() if budget is not None else True
            wait = run.failed(error, None, allowed)
            if wait is None:
                run.give_up(error)
                raise
        else:
            if response.status_code not in statuses:
                if run.history:
                    run.succeeded()
                if budget is not None:
                    await budget.arecord_success()
                return response
            allowed = await budget.arecord_failure() if budget is not None else True
            wait = run.failed(None, response, allowed)
            if wait is None:
                run.give_up(None)
                return response
            await close(response)
        finally:
            if token is not None:
                _DEADLINE.reset(token)
        await policy.clock.asleep(wait)
        run.before()


async def _within(send: Callable[[float | None], Awaitable[Resp]], limit: float | None) -> Resp:
    """Await ``send(limit)``, cancelled with AttemptTimeout after ``limit`` seconds."""
    if limit is None:
        return await send(None)
    import asyncio

    scope = asyncio.timeout(limit)
    try:
        async with scope:
            return await send(limit)
    except TimeoutError as exc:
        if not scope.expired():
            raise
        raise AttemptTimeout(f"an HTTP attempt took longer than {limit:.3f} s") from exc
