"""Retries for psycopg 3: which PostgreSQL errors are worth retrying, and a ready policy.

Usage::

    import psycopg
    from trusswork.retry import retry
    from trusswork.retry.integrations import psycopg as pg_retry

    @retry(policy=pg_retry.policy())
    def transfer(dsn, source, target, amount):
        with psycopg.connect(dsn) as conn, conn.transaction():
            conn.execute("UPDATE account SET balance = balance - %s WHERE id = %s", ...)
            conn.execute("UPDATE account SET balance = balance + %s WHERE id = %s", ...)

Wrap the whole transaction, never a single statement: after a
serialization failure or a deadlock PostgreSQL has rolled the transaction
back, so every statement of it must run again, and after a lost connection
the transaction is gone with it. The retried function should open (or
take from a pool) its connection and run the transaction from the start.
"""

from __future__ import annotations

from typing import Any, Unpack

import psycopg

from trusswork.retry._policy import Policy, PolicyOptions

__all__ = ["RETRYABLE_SQLSTATES", "is_retryable", "policy"]

RETRYABLE_SQLSTATES: frozenset[str] = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "53300",  # too_many_connections
        "55P03",  # lock_not_available (NOWAIT, lock_timeout)
        "57P01",  # admin_shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now (starting up, shutting down, in recovery)
    }
)
"""SQLSTATEs worth retrying, besides every state of class 08 (connection exceptions)."""


def is_retryable(error: BaseException) -> bool:
    """Whether a psycopg error is worth retrying (re-running its whole transaction).

    Decided by the error's SQLSTATE (``error.sqlstate``): class ``08``
    (connection exceptions) and :data:`RETRYABLE_SQLSTATES` are retryable.
    An ``OperationalError`` without a SQLSTATE is raised by the client
    itself, mostly when the connection was lost or could not be made (or
    timed out): retryable too. Everything else is not: integrity
    violations (``23xxx``), syntax and access errors (``42xxx``), data
    errors (``22xxx``), query cancellations (``57014``), ``InterfaceError``
    (misuse of the driver), and errors not from psycopg.
    """
    if not isinstance(error, psycopg.Error):
        return False
    state = error.sqlstate
    if state is None:
        return isinstance(error, psycopg.OperationalError)
    return state.startswith("08") or state in RETRYABLE_SQLSTATES


def policy(**overrides: Unpack[PolicyOptions]) -> Policy:
    """A :class:`~trusswork.retry.Policy` for psycopg transactions.

    Defaults: 5 attempts (serialization failures come in bursts under
    contention), full-jitter exponential backoff from 0.05 s capped at 2 s,
    ``retry_on=psycopg.Error`` with ``retry_if=is_retryable``. Keyword
    arguments override any of them. Apply it to a function that runs a
    whole transaction (see the module docstring).
    """
    options: dict[str, Any] = {
        "attempts": 5,
        "wait_initial": 0.05,
        "wait_max": 2.0,
        "jitter": "full",
        "retry_on": psycopg.Error,
        "retry_if": is_retryable,
    }
    options.update(overrides)
    return Policy(**options)
