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
from typing import Any, ParamSpec, TypeVar, Unpack, cast

from trusswork.core.clock import Clock
from trusswork.core.errors import InvalidInput, TrussworkError
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
    """

    code = "retry-exhausted"
    http_status = 503
    title = "Retries exhausted"

    def __init__(self, message: str, attempts: tuple[Attempt, ...]) -> None:
        super().__init__(message)
        self.attempts = attempts

    @property
    def last(self) -> Attempt:
        """The final attempt."""
        return self.attempts[-1]


def _never_retried(error: BaseException) -> bool:
    if isinstance(error, _NEVER):
        return True
    # No CancelledError can exist before asyncio is imported; do not import it here.
    aio = sys.modules.get("asyncio")
    return aio is not None and isinstance(error, aio.CancelledError)


def _run_hook(hook: Callable[[Any], object], arg: object) -> None:
    try:
        hook(arg)
    except Exception:
        import logging

        logging.getLogger("trusswork.retry").exception(
            "retry hook %r raised; the retry run goes on", hook
        )


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


class _Run:
    """The state of one retry run, built at the first failure."""

    __slots__ = ("deadline_at", "history", "name", "policy", "previous", "start")

    def __init__(
        self, policy: Policy, name: str, start: float | None, deadline_at: float | None
    ) -> None:
        self.policy = policy
        self.name = name
        if start is None:
            start = policy.clock.monotonic()
            deadline_at = _deadline_from(policy, start)
        self.start = start
        self.deadline_at = deadline_at
        self.history: list[Attempt] = []
        self.previous = policy.wait_initial

    def retryable(self, error: BaseException) -> bool:
        policy = self.policy
        if _never_retried(error) or not isinstance(error, policy.retry_on):
            return False
        return policy.retry_if is None or bool(policy.retry_if(error))

    def failed(self, error: BaseException | None, result: object) -> float | None:
        """Record a failed attempt; return the wait before the next one, or None to give up."""
        policy = self.policy
        now = policy.clock.monotonic()
        attempt = Attempt(len(self.history) + 1, error, result, now - self.start)
        self.history.append(attempt)
        if policy.after is not None:
            _run_hook(policy.after, attempt)
        if attempt.number >= policy.attempts:
            return None
        wait = policy.next_wait(attempt.number, self.previous)
        self.previous = wait
        if self.deadline_at is not None and now + wait >= self.deadline_at:
            return None
        return wait

    def before(self) -> None:
        if self.policy.before is not None:
            _run_hook(self.policy.before, len(self.history) + 1)

    def give_up(self, error: BaseException | None) -> BaseException:
        """The exception to raise when giving up after ``error`` (None: a result was rejected)."""
        if error is not None and self.policy.reraise:
            return error
        last = self.history[-1]
        what = f"error {error!r}" if error is not None else f"result {last.result!r}"
        budget = ""
        if len(self.history) < self.policy.attempts:
            budget = " (deadline reached)"
        return RetryError(
            f"gave up on {self.name} after {len(self.history)} attempts in "
            f"{last.elapsed:.3f} s{budget}; last {what}",
            tuple(self.history),
        )


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
    token = _DEADLINE.set((policy.clock, run.deadline_at)) if run.deadline_at is not None else None
    try:
        retry_on = policy.retry_on
        predicate = policy.retry_if_result
        while True:
            if error is not None and not run.retryable(error):
                raise error
            wait = run.failed(error, result)
            if wait is None:
                raise run.give_up(error) from error
            policy.clock.sleep(wait)
            run.before()
            error = None
            try:
                result = fn(*args, **kwargs)
            except retry_on as exc:
                error = exc
            else:
                if predicate is None or not predicate(result):
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
    token = _DEADLINE.set((policy.clock, run.deadline_at)) if run.deadline_at is not None else None
    try:
        retry_on = policy.retry_on
        predicate = policy.retry_if_result
        while True:
            if error is not None and not run.retryable(error):
                raise error
            wait = run.failed(error, result)
            if wait is None:
                raise run.give_up(error) from error
            await policy.clock.asleep(wait)
            run.before()
            error = None
            try:
                result = await fn(*args, **kwargs)
            except retry_on as exc:
                error = exc
            else:
                if predicate is None or not predicate(result):
                    return result
    finally:
        if token is not None:
            _DEADLINE.reset(token)


def _wrap_sync(fn: Callable[P, R], policy: Policy) -> Callable[P, R]:
    retry_on = policy.retry_on
    predicate = policy.retry_if_result
    clock = policy.clock
    slow = _retry_sync

    if policy.deadline is not None:
        # A deadline must count the first attempt and reach nested runs, so
        # this variant reads the clock and sets the context variable per call.
        def timed(*args: P.args, **kwargs: P.kwargs) -> R:
            start = clock.monotonic()
            deadline_at = _deadline_from(policy, start)
            token = _DEADLINE.set((clock, cast(float, deadline_at)))
            try:
                result = fn(*args, **kwargs)
            except retry_on as exc:
                first = exc
            else:
                if predicate is None or not predicate(result):
                    return result
                return cast(R, slow(fn, args, kwargs, policy, None, result, start, deadline_at))
            finally:
                _DEADLINE.reset(token)
            return cast(R, slow(fn, args, kwargs, policy, first, None, start, deadline_at))

        return functools.wraps(fn)(timed)

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
    predicate = policy.retry_if_result
    clock = policy.clock
    slow = _retry_async

    if policy.deadline is not None:

        async def timed(*args: P.args, **kwargs: P.kwargs) -> T:
            start = clock.monotonic()
            deadline_at = _deadline_from(policy, start)
            token = _DEADLINE.set((clock, cast(float, deadline_at)))
            try:
                result = await fn(*args, **kwargs)
            except retry_on as exc:
                first = exc
            else:
                if predicate is None or not predicate(result):
                    return result
                return cast(
                    T, await slow(fn, args, kwargs, policy, None, result, start, deadline_at)
                )
            finally:
                _DEADLINE.reset(token)
            return cast(T, await slow(fn, args, kwargs, policy, first, None, start, deadline_at))

        return functools.wraps(fn)(timed)

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


def retry(*, policy: Policy | None = None, **options: Unpack[PolicyOptions]) -> _Decorator:
    """Decorate a function (sync or ``async``) so failed calls are retried.

    ``@retry()`` uses the defaults (3 attempts, full-jitter exponential
    backoff from 0.1 s, retry on ``Exception``); ``@retry(attempts=5,
    deadline=2.0)`` changes them; ``@retry(policy=p)`` shares a
    :class:`Policy`. The wrapper keeps the function's signature and type.

    Raises
    ------
    InvalidInput
        If the policy options are invalid (at decoration time).
    """
    return _Decorator(_policy_of(policy, options))


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
    if policy.deadline is not None or policy.retry_if_result is not None:
        return _wrap_sync(fn, policy)(*args, **kwargs)
    try:
        return fn(*args, **kwargs)
    except policy.retry_on as exc:
        first = exc
    return cast(R, _retry_sync(fn, args, kwargs, policy, first, None))


class _AttemptScope:
    """One attempt of a :class:`Retrying` loop; use it as ``with attempt:``."""

    __slots__ = ("_owner", "_token", "number")

    def __init__(self, owner: _Loop, number: int) -> None:
        self._owner = owner
        self._token: Any = None
        self.number = number

    def __enter__(self) -> _AttemptScope:
        owner = self._owner
        if owner.deadline_at is not None:
            self._token = _DEADLINE.set((owner.policy.clock, owner.deadline_at))
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
        if error is None:
            return False
        return self._owner.failed(error)


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

    def failed(self, error: BaseException) -> bool:
        """Handle an attempt's exception; True suppresses it (another attempt follows)."""
        if self.run is None:
            self.run = _Run(self.policy, "Retrying block", self.start, self.deadline_at)
        run = self.run
        self.done = True
        if not run.retryable(error):
            return False
        wait = run.failed(error, None)
        if wait is None:
            final = run.give_up(error)
            if final is error:
                return False
            raise final from error
        self.wait = wait
        self.done = False
        return True

    def next_attempt(self) -> _AttemptScope | None:
        """The next attempt's scope, or None when the last one succeeded."""
        if self.done:
            return None
        number = 1 if self.run is None else len(self.run.history) + 1
        self.done = True  # until an attempt fails and asks for another
        if number > 1 and self.run is not None:
            self.run.before()
        return _AttemptScope(self, number)


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
    arguments as :class:`Policy`, or ``policy=``; ``retry_if_result`` has no
    effect here (a block has no result).
    """

    __slots__ = ("policy",)

    def __init__(self, *, policy: Policy | None = None, **options: Unpack[PolicyOptions]) -> None:
        self.policy = _policy_of(policy, options)

    def __iter__(self) -> Iterator[_AttemptScope]:
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

    async def __aiter__(self) -> AsyncIterator[_AttemptScope]:
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
