"""Running a policy: the ``retry`` decorator, ``Retrying`` loops, ``call`` and ``RetryError``.

The decorator's success path is one ``try`` around the call: everything is
bound when the function is decorated, and the retry state (history, clock
readings, deadline) is only built when the first attempt fails.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextvars import ContextVar
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, Unpack, cast, overload

from trusswork.core.clock import Clock
from trusswork.core.errors import InvalidInput, TrussworkError
from trusswork.core.metrics import REGISTRY, MetricsRegistry
from trusswork.retry._policy import Attempt, Policy, PolicyOptions

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

#: The innermost running deadline: (clock, absolute monotonic reading on that clock).
_DEADLINE: ContextVar[tuple[Clock, float] | None] = ContextVar(
    "trusswork_retry_deadline", default=None
)

_NEVER = (KeyboardInterrupt, SystemExit, GeneratorExit)


class RetryError(TrussworkError):
    """A retried call gave up; :attr:`attempts` holds every attempt made.

    It is a :class:`~trusswork.core.errors.TrussworkError` answered as HTTP 503,
    but deliberately not an ``Unavailable`` (a ``ConnectionError``): an outer
    retry on connection errors must not retry an inner run that already gave
    up. The last exception, if any, is its ``__cause__``.

    Attributes
    ----------
    attempts:
        The :class:`Attempt` records, first to last.
    reason:
        Why the run stopped: ``"attempts"``, ``"deadline"``, ``"budget"``
        (the retry budget refused) or ``"pushback"`` (the server asked to
        wait longer than ``max_pushback``, or not to retry).
    """

    code = "retry-exhausted"
    http_status = 503
    title = "Retries exhausted"

    def __init__(
        self, message: str, attempts: tuple[Attempt, ...], reason: str = "attempts"
    ) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.attempts, self.reason))

    @property
    def last(self) -> Attempt:
        """The final attempt."""
        return self.attempts[-1]


class AttemptTimeout(TrussworkError, TimeoutError):
    """An ``async`` attempt ran past the policy's ``attempt_timeout`` (or the deadline).

    It is always retryable, whatever ``retry_on`` says: the policy asked for
    the timeout. It is a ``TimeoutError`` answered as HTTP 504.
    """

    code = "attempt-timeout"
    http_status = 504
    title = "Attempt timed out"


def _never_retried(error: BaseException) -> bool:
    if isinstance(error, _NEVER):
        return True
    # No CancelledError can exist before asyncio is imported; do not import it here.
    aio = sys.modules.get("asyncio")
    return aio is not None and isinstance(error, aio.CancelledError)


def _logger() -> Any:
    import logging

    return logging.getLogger("trusswork.retry")


def _run_hook(hook: Callable[[Any], object], arg: object) -> None:
    try:
        hook(arg)
    except Exception:
        _logger().exception("retry hook %r raised; the retry run goes on", hook)


def _outer_deadline(clock: Clock, now: float) -> float | None:
    """The enclosing run's deadline translated to ``clock``, or None."""
    outer = _DEADLINE.get()
    if outer is None:
        return None
    outer_clock, outer_at = outer
    if outer_clock is clock:
        return outer_at
    return now + (outer_at - outer_clock.monotonic())


def _deadline_from(policy: Policy, now: float) -> float | None:
    """min(own deadline, outer remaining) as an absolute reading of ``policy.clock``."""
    outer = _outer_deadline(policy.clock, now)
    if policy.deadline is None:
        return outer
    own = now + policy.deadline
    return own if outer is None else min(own, outer)


def _attempt_deadline(policy: Policy, deadline_at: float | None) -> float | None:
    """When the attempt starting now must end: min(attempt timeout, run deadline)."""
    timeout = policy.attempt_timeout
    if timeout is None:
        return deadline_at
    end = policy.clock.monotonic() + timeout
    return end if deadline_at is None else min(end, deadline_at)


def remaining() -> float | None:
    """Seconds left for the running attempt, or ``None`` if it has no time limit.

    Inside a retried call this is the smaller of the attempt's
    ``attempt_timeout`` and what is left of every enclosing run's
    ``deadline``; pass it on as a socket or query timeout so a sync attempt
    cannot overrun its budget. Outside any retry it is ``None``.
    """
    current = _DEADLINE.get()
    if current is None:
        return None
    clock, at = current
    return max(0.0, at - clock.monotonic())


async def _await_attempt(
    fn: Callable[..., Awaitable[Any]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    policy: Policy,
    attempt_at: float | None,
) -> Any:
    """Await one attempt, cancelled with AttemptTimeout when its time (``attempt_at``) is up."""
    if attempt_at is None:
        return await fn(*args, **kwargs)
    import asyncio

    left = attempt_at - policy.clock.monotonic()
    if left <= 0:
        raise AttemptTimeout(f"no time left for an attempt of {_name(fn)}")
    scope = asyncio.timeout(left)
    try:
        async with scope:
            return await fn(*args, **kwargs)
    except TimeoutError as exc:
        if scope.expired():
            raise AttemptTimeout(
                f"an attempt of {_name(fn)} took longer than {left:.3f} s"
            ) from exc
        raise


class _Meters:
    """The retry counters of one operation name in one registry."""

    __slots__ = ("attempts", "giveups", "retries")

    def __init__(self, registry: MetricsRegistry, name: str) -> None:
        self.attempts = registry.counter(
            "trusswork_retry_attempts",
            "Attempts made by retry runs that needed at least one retry (first attempts "
            "that succeed are not counted, to keep the success path free).",
            labelnames=("name",),
        ).labels(name)
        self.retries = registry.counter(
            "trusswork_retry_retries",
            "Retries scheduled after a failed attempt.",
            labelnames=("name",),
        ).labels(name)
        self.giveups = registry.counter(
            "trusswork_retry_giveups",
            "Retry runs that gave up, by reason (attempts, deadline, budget, pushback).",
            labelnames=("name", "reason"),
        )


M = TypeVar("M")

#: Counter bundles by (kind, registry, name). Keyed by the registry object, so a
#: cached registry stays alive (an id() could be reused by a new one).
_METERS: dict[tuple[object, MetricsRegistry, str], Any] = {}


def meters_of(
    kind: Callable[[MetricsRegistry, str], M], registry: MetricsRegistry | None, name: str
) -> M:
    """The ``kind`` counter bundle of operation ``name`` in ``registry`` (REGISTRY if None)."""
    registry = registry if registry is not None else REGISTRY
    key = (kind, registry, name)
    meters = _METERS.get(key)
    if meters is None:
        meters = _METERS[key] = kind(registry, name)
    return cast(M, meters)


class _Run:
    """The state of one retry run, built at the first failure."""

    __slots__ = (
        "deadline_at",
        "hint",
        "history",
        "meters",
        "name",
        "policy",
        "previous",
        "reason",
        "start",
    )

    def __init__(
        self, policy: Policy, name: str, start: float | None, deadline_at: float | None
    ) -> None:
        self.policy = policy
        self.name = policy.name or name
        if start is None:
            start = policy.clock.monotonic()
            deadline_at = _deadline_from(policy, start)
        self.start = start
        self.deadline_at = deadline_at
        self.history: list[Attempt] = []
        self.previous = policy.wait_initial
        self.reason = "attempts"
        self.hint: float | None = None
        self.meters = meters_of(_Meters, policy.registry, self.name)

    def retryable(self, error: BaseException) -> bool:
        policy = self.policy
        if _never_retried(error):
            return False
        if isinstance(error, AttemptTimeout):
            return True
        if not isinstance(error, policy.retry_on):
            return False
        if isinstance(error, RetryError) and RetryError not in policy.retry_on:
            return False  # an inner run that gave up is not run again, unless asked for
        if policy.retry_on_status is not None:
            from trusswork.retry._http import status_of

            status = status_of(error)
            if status is not None:
                return status in policy.retry_on_status
        return policy.retry_if is None or bool(policy.retry_if(error))

    def succeeded(self) -> None:
        self.meters.attempts.inc()

    def failed(
        self, error: BaseException | None, result: object, allowed: bool = True
    ) -> float | None:
        """Record a failed attempt; return the wait before the next one, or None to give up.

        ``allowed`` is the retry budget's answer for this failure.
        """
        policy = self.policy
        now = policy.clock.monotonic()
        attempt = Attempt(len(self.history) + 1, error, result, now - self.start)
        self.history.append(attempt)
        self.meters.attempts.inc()
        if policy.after is not None:
            _run_hook(policy.after, attempt)
        if attempt.number >= policy.attempts:
            self._stop("attempts")
            return None
        if not allowed:
            self._stop("budget")
            return None
        wait = policy.next_wait(attempt.number, self.previous)
        self.previous = wait
        if policy.pushback:
            from trusswork.retry._http import retry_after_of

            hint = retry_after_of(error if error is not None else result, policy.clock.time())
            if hint is not None:
                if hint < 0 or hint > policy.max_pushback:
                    self.hint = hint
                    self._stop("pushback")
                    return None
                wait = max(wait, hint)
        if self.deadline_at is not None and now + wait >= self.deadline_at:
            self._stop("deadline")
            return None
        self.meters.retries.inc()
        log = _logger()
        if log.isEnabledFor(20):  # logging.INFO
            log.info(
                "retrying %s in %.3f s: attempt %d of %d failed with %s",
                self.name,
                wait,
                attempt.number,
                policy.attempts,
                _outcome(error, result),
                extra={
                    "retry_name": self.name,
                    "retry_attempt": attempt.number,
                    "retry_wait": wait,
                    "retry_error": _outcome(error, result),
                },
            )
        return wait

    def _stop(self, reason: str) -> None:
        self.reason = reason
        self.meters.giveups.labels(self.name, reason).inc()
        return None

    def before(self) -> None:
        if self.policy.before is not None:
            _run_hook(self.policy.before, len(self.history) + 1)

    def give_up(self, error: BaseException | None) -> BaseException:
        """The exception to raise when giving up after ``error`` (None: a result was rejected)."""
        last = self.history[-1]
        why = {
            "attempts": "",
            "deadline": " (deadline reached)",
            "budget": " (retry budget exhausted)",
            "pushback": (
                " (the server asked not to retry)"
                if self.hint is not None and self.hint < 0
                else f" (the server asked to wait {self.hint or 0:.3f} s, more than "
                f"max_pushback={self.policy.max_pushback:g})"
            ),
        }[self.reason]
        log = _logger()
        if log.isEnabledFor(30):  # logging.WARNING
            log.warning(
                "giving up on %s after %d attempts%s: %s",
                self.name,
                len(self.history),
                why,
                _outcome(error, last.result),
                extra={
                    "retry_name": self.name,
                    "retry_attempt": len(self.history),
                    "retry_reason": self.reason,
                    "retry_error": _outcome(error, last.result),
                },
            )
        if error is not None and self.policy.reraise:
            return error
        return RetryError(
            f"gave up on {self.name} after {len(self.history)} attempts in "
            f"{last.elapsed:.3f} s{why}; last {_outcome(error, last.result)}",
            tuple(self.history),
            self.reason,
        )


def _outcome(error: BaseException | None, result: object) -> str:
    return f"error {error!r}" if error is not None else f"result {result!r}"


def _name(fn: object) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


def _retry_sync(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    policy: Policy,
    error: BaseException | None,
    result: Any,
    start: float | None = None,
    deadline_at: float | None = None,
) -> Any:
    run = _Run(policy, _name(fn), start, deadline_at)
    retry_on = policy.retry_on
    predicate = policy.result_check
    budget = policy.budget
    clock = policy.clock
    while True:
        if error is not None and not run.retryable(error):
            raise error
        allowed = budget.record_failure() if budget is not None else True
        wait = run.failed(error, result, allowed)
        if wait is None:
            final = run.give_up(error)
            if final is error:
                raise error
            raise final from error
        clock.sleep(wait)
        run.before()
        error = None
        attempt_at = _attempt_deadline(policy, run.deadline_at)
        token = _DEADLINE.set((clock, attempt_at)) if attempt_at is not None else None
        try:
            result = fn(*args, **kwargs)
        except retry_on as exc:
            error = exc
        else:
            if predicate is None or not predicate(result):
                run.succeeded()
                if budget is not None:
                    budget.record_success()
                return result
        finally:
            if token is not None:
                _DEADLINE.reset(token)


async def _retry_async(
    fn: Callable[..., Awaitable[Any]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    policy: Policy,
    error: BaseException | None,
    result: Any,
    start: float | None = None,
    deadline_at: float | None = None,
) -> Any:
    run = _Run(policy, _name(fn), start, deadline_at)
    retry_on = policy.retry_on
    predicate = policy.result_check
    budget = policy.budget
    clock = policy.clock
    while True:
        if error is not None and not run.retryable(error):
            raise error
        allowed = await budget.arecord_failure() if budget is not None else True
        wait = run.failed(error, result, allowed)
        if wait is None:
            final = run.give_up(error)
            if final is error:
                raise error
            raise final from error
        await clock.asleep(wait)
        run.before()
        error = None
        attempt_at = _attempt_deadline(policy, run.deadline_at)
        token = _DEADLINE.set((clock, attempt_at)) if attempt_at is not None else None
        try:
            result = await _await_attempt(fn, args, kwargs, policy, attempt_at)
        except retry_on as exc:
            error = exc
        except AttemptTimeout as exc:
            error = exc
        else:
            if predicate is None or not predicate(result):
                run.succeeded()
                if budget is not None:
                    await budget.arecord_success()
                return result
        finally:
            if token is not None:
                _DEADLINE.reset(token)


def _wrap_sync(fn: Callable[P, R], policy: Policy) -> Callable[P, R]:
    retry_on = policy.retry_on
    predicate = policy.result_check
    clock = policy.clock
    budget = policy.budget
    slow = _retry_sync

    if policy.deadline is not None or policy.attempt_timeout is not None or budget is not None:
        # A deadline must count the first attempt and reach nested runs, and a
        # budget counts successes, so this variant does that work per call.
        def full(*args: P.args, **kwargs: P.kwargs) -> R:
            start = clock.monotonic()
            deadline_at = _deadline_from(policy, start)
            attempt_at = _attempt_deadline(policy, deadline_at)
            token = _DEADLINE.set((clock, attempt_at)) if attempt_at is not None else None
            try:
                result = fn(*args, **kwargs)
            except retry_on as exc:
                first = exc
            else:
                if predicate is None or not predicate(result):
                    if budget is not None:
                        budget.record_success()
                    return result
                return cast(R, slow(fn, args, kwargs, policy, None, result, start, deadline_at))
            finally:
                if token is not None:
                    _DEADLINE.reset(token)
            return cast(R, slow(fn, args, kwargs, policy, first, None, start, deadline_at))

        return functools.wraps(fn)(full)

    if predicate is not None:

        def checked(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                result = fn(*args, **kwargs)
            except retry_on as exc:
                first = exc
            else:
                if not predicate(result):
                    return result
                return cast(R, slow(fn, args, kwargs, policy, None, result))
            return cast(R, slow(fn, args, kwargs, policy, first, None))

        return functools.wraps(fn)(checked)

    def plain(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except retry_on as exc:
            first = exc
        return cast(R, slow(fn, args, kwargs, policy, first, None))

    return functools.wraps(fn)(plain)


def _wrap_async(
    fn: Callable[P, Coroutine[Any, Any, T]], policy: Policy
) -> Callable[P, Coroutine[Any, Any, T]]:
    retry_on = policy.retry_on
    predicate = policy.result_check
    clock = policy.clock
    budget = policy.budget
    slow = _retry_async

    if policy.deadline is not None or policy.attempt_timeout is not None or budget is not None:

        async def full(*args: P.args, **kwargs: P.kwargs) -> T:
            start = clock.monotonic()
            deadline_at = _deadline_from(policy, start)
            attempt_at = _attempt_deadline(policy, deadline_at)
            token = _DEADLINE.set((clock, attempt_at)) if attempt_at is not None else None
            first: BaseException
            try:
                result = await _await_attempt(fn, args, kwargs, policy, attempt_at)
            except retry_on as exc:
                first = exc
            except AttemptTimeout as exc:
                first = exc
            else:
                if predicate is None or not predicate(result):
                    if budget is not None:
                        await budget.arecord_success()
                    return cast(T, result)
                return cast(
                    T, await slow(fn, args, kwargs, policy, None, result, start, deadline_at)
                )
            finally:
                if token is not None:
                    _DEADLINE.reset(token)
            return cast(T, await slow(fn, args, kwargs, policy, first, None, start, deadline_at))

        return functools.wraps(fn)(full)

    if predicate is not None:

        async def checked(*args: P.args, **kwargs: P.kwargs) -> T:
            try:
                result = await fn(*args, **kwargs)
            except retry_on as exc:
                first = exc
            else:
                if not predicate(result):
                    return result
                return cast(T, await slow(fn, args, kwargs, policy, None, result))
            return cast(T, await slow(fn, args, kwargs, policy, first, None))

        return functools.wraps(fn)(checked)

    async def plain(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except retry_on as exc:
            first = exc
        return cast(T, await slow(fn, args, kwargs, policy, first, None))

    return functools.wraps(fn)(plain)


def _policy_of(policy: Policy | None, options: PolicyOptions) -> Policy:
    if policy is None:
        return Policy(**options)
    if options:
        raise InvalidInput(f"give policy= or policy options, not both (got {sorted(options)})")
    if not isinstance(policy, Policy):
        raise InvalidInput(f"policy= must be a trusswork.retry.Policy, got {policy!r}")
    return policy


class _Decorator:
    """What ``retry(...)`` returns: applies one policy to sync or async functions."""

    __slots__ = ("policy",)

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        if not callable(fn):
            raise InvalidInput(f"retry(...) decorates a callable, got {fn!r}")
        if inspect.iscoroutinefunction(fn):
            return cast(Callable[P, R], _wrap_async(cast(Any, fn), self.policy))
        return _wrap_sync(fn, self.policy)


@overload
def retry(fn: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def retry(
    fn: None = None, /, *, policy: Policy | None = None, **options: Unpack[PolicyOptions]
) -> _Decorator: ...


def retry(
    fn: Callable[P, R] | None = None,
    /,
    *,
    policy: Policy | None = None,
    **options: Unpack[PolicyOptions],
) -> Callable[P, R] | _Decorator:
    """Decorate a function (sync or ``async``) so failed calls are retried.

    ``@retry`` and ``@retry()`` use the defaults (3 attempts, full-jitter
    exponential backoff from 0.1 s, retry on ``Exception``); ``@retry(attempts=5,
    deadline=2.0)`` changes them; ``@retry(policy=p)`` shares a
    :class:`Policy`. The wrapper keeps the function's signature and type.

    Raises
    ------
    InvalidInput
        If the policy options are invalid (at decoration time).
    """
    decorator = _Decorator(_policy_of(policy, options))
    if fn is None:
        return decorator
    return decorator(fn)


_DEFAULT_POLICY: Policy | None = None


def call(fn: Callable[..., R], *args: Any, policy: Policy | None = None, **kwargs: Any) -> R:
    """Call ``fn(*args, **kwargs)`` under a retry policy.

    The policy is the keyword argument ``policy=`` (a :class:`Policy`; the
    defaults if omitted); it is not passed on to ``fn``. Typing cannot check
    the arguments against ``fn`` here (PEP 612 forbids a keyword between
    them); decorate with :func:`retry` for that. For an ``async`` function
    this returns an awaitable, like calling it would.
    """
    global _DEFAULT_POLICY
    if policy is None:
        if _DEFAULT_POLICY is None:
            _DEFAULT_POLICY = Policy()
        policy = _DEFAULT_POLICY
    elif not isinstance(policy, Policy):
        raise InvalidInput(f"call() takes policy= as a trusswork.retry.Policy, got {policy!r}")
    if inspect.iscoroutinefunction(fn):
        return cast(R, _wrap_async(cast(Any, fn), policy)(*args, **kwargs))
    if (
        policy.deadline is not None
        or policy.result_check is not None
        or policy.attempt_timeout is not None
        or policy.budget is not None
    ):
        return _wrap_sync(fn, policy)(*args, **kwargs)
    try:
        return fn(*args, **kwargs)
    except policy.retry_on as exc:
        first = exc
    return cast(R, _retry_sync(fn, args, kwargs, policy, first, None))


class AttemptScope:
    """One attempt of a :class:`Retrying` loop: ``with attempt:`` or ``async with attempt:``.

    Entering the scope starts the attempt's time budget (what
    :func:`remaining` reports inside it). ``async with`` also enforces
    ``attempt_timeout`` by cancelling the block (raising
    :class:`AttemptTimeout`, which is retried) and reports to an async
    retry budget without blocking the loop.

    Attributes
    ----------
    number:
        1 for the first attempt, 2 for the first retry, and so on.
    """

    __slots__ = ("_owner", "_timeout", "_token", "number")

    def __init__(self, owner: _Loop, number: int) -> None:
        self._owner = owner
        self._token: Any = None
        self._timeout: Any = None
        self.number = number

    def __enter__(self) -> AttemptScope:
        owner = self._owner
        attempt_at = _attempt_deadline(owner.policy, owner.deadline_at)
        if attempt_at is not None:
            self._token = _DEADLINE.set((owner.policy.clock, attempt_at))
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if self._token is not None:
            _DEADLINE.reset(self._token)
            self._token = None
        owner = self._owner
        if error is None:
            owner.succeeded()
            if owner.policy.budget is not None:
                owner.policy.budget.record_success()
            return False
        if not owner.retryable(error):
            return False
        budget = owner.policy.budget
        return owner.failed(error, budget.record_failure() if budget is not None else True)

    async def __aenter__(self) -> AttemptScope:
        self.__enter__()
        owner = self._owner
        current = _DEADLINE.get()
        if current is not None:
            import asyncio

            self._timeout = asyncio.timeout(max(0.0, current[1] - owner.policy.clock.monotonic()))
            await self._timeout.__aenter__()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        scope, self._timeout = self._timeout, None
        fired = False
        if scope is not None:
            try:
                await scope.__aexit__(kind, error, tb)
            except TimeoutError as exc:
                if not scope.expired():
                    raise
                error = AttemptTimeout(
                    f"attempt {self.number} of a Retrying block ran out of time "
                    f"(attempt_timeout or deadline)"
                )
                error.__cause__ = exc
                fired = True
        if self._token is not None:
            _DEADLINE.reset(self._token)
            self._token = None
        owner = self._owner
        budget = owner.policy.budget
        if error is None:
            owner.succeeded()
            if budget is not None:
                await budget.arecord_success()
            return False
        if owner.retryable(error):
            allowed = await budget.arecord_failure() if budget is not None else True
            suppressed = owner.failed(error, allowed)
        else:
            suppressed = False
        if fired and not suppressed:
            raise error
        return suppressed


class _Loop:
    """State shared by the attempts of one ``Retrying`` iteration."""

    __slots__ = ("deadline_at", "done", "policy", "run", "start", "wait")

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.start = policy.clock.monotonic()
        self.deadline_at = _deadline_from(policy, self.start)
        self.run: _Run | None = None
        self.wait: float | None = None
        self.done = False

    def _run(self) -> _Run:
        if self.run is None:
            self.run = _Run(self.policy, "Retrying block", self.start, self.deadline_at)
        return self.run

    def retryable(self, error: BaseException) -> bool:
        """Whether ``error`` may be retried; when not, the loop ends with it."""
        if self._run().retryable(error):
            return True
        self.done = True
        return False

    def succeeded(self) -> None:
        if self.run is not None:
            self.run.succeeded()

    def failed(self, error: BaseException, allowed: bool) -> bool:
        """Handle a retryable exception; True suppresses it (another attempt follows).

        ``allowed`` is the retry budget's answer for this failure.
        """
        run = self._run()
        self.done = True
        wait = run.failed(error, None, allowed)
        if wait is None:
            final = run.give_up(error)
            if final is error:
                return False
            raise final from error
        self.wait = wait
        self.done = False
        return True

    def next_attempt(self) -> AttemptScope | None:
        """The next attempt's scope, or None when the last one succeeded."""
        if self.done:
            return None
        number = 1 if self.run is None else len(self.run.history) + 1
        self.done = True  # until an attempt fails and asks for another
        if number > 1 and self.run is not None:
            self.run.before()
        return AttemptScope(self, number)


class Retrying:
    """A retry loop around a block of code, for sync and async code.

    Usage::

        for attempt in Retrying(attempts=3):
            with attempt:
                fetch()

        async for attempt in Retrying(attempts=3, deadline=5.0):
            with attempt:
                await fetch()

    A block that raises a retryable exception is retried after the policy's
    wait; when the policy gives up, the ``with`` statement raises
    :class:`RetryError` (or the exception itself with ``reraise=True``).
    Non-retryable exceptions propagate at once. Takes the same keyword
    arguments as :class:`Policy`, or ``policy=``; ``retry_if_result`` and
    ``retry_on_status`` on results have no effect here (a block has no
    result). Use ``async with attempt:`` in ``async for`` loops to enforce
    ``attempt_timeout`` and to reach an async retry budget.
    """

    __slots__ = ("policy",)

    def __init__(self, *, policy: Policy | None = None, **options: Unpack[PolicyOptions]) -> None:
        self.policy = _policy_of(policy, options)

    def __iter__(self) -> Iterator[AttemptScope]:
        loop = _Loop(self.policy)
        sleep = self.policy.clock.sleep
        while True:
            if loop.wait is not None:
                sleep(loop.wait)
                loop.wait = None
            scope = loop.next_attempt()
            if scope is None:
                return
            yield scope

    async def __aiter__(self) -> AsyncIterator[AttemptScope]:
        loop = _Loop(self.policy)
        asleep = self.policy.clock.asleep
        while True:
            if loop.wait is not None:
                await asleep(loop.wait)
                loop.wait = None
            scope = loop.next_attempt()
            if scope is None:
                return
            yield scope

    def __repr__(self) -> str:
        return f"Retrying(policy={self.policy!r})"
