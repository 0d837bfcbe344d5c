"""Hedged requests: a second copy of a slow call, the first result wins.

A hedged call starts the operation; if it has not finished after ``delay``
seconds it starts another copy, and so on up to ``hedges`` extra copies,
each ``delay`` after the previous one. The first copy to return wins; the
others are cancelled and awaited, so no task outlives the call. A copy that
fails with a retryable error starts the next copy at once (as Polly's
hedging strategy does) instead of waiting for the delay; the call fails
only when every copy failed, with the first error (the later ones are
attached to it as notes). A copy that fails with a non-retryable error ends
the call with that error at once.

Hedging trades load for tail latency: every hedge is one more request to
the service, so hedge only idempotent operations (reads, or writes with an
idempotency key), and pick ``delay`` near the latency percentile you want
to cut (the p95, say), so that only the slow few percent of calls pay for
a second request.

Guarantees: cancelling the caller cancels every copy and waits for them;
copies run as tasks of the running event loop in the caller's context
(so an enclosing retry's deadline reaches them).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from trusswork.core.clock import SYSTEM_CLOCK, Clock
from trusswork.core.errors import InvalidInput
from trusswork.core.metrics import MetricsRegistry
from trusswork.retry._checks import (
    callable_or_none,
    exception_types,
    name_or_none,
    registry_or_none,
    seconds,
)
from trusswork.retry._retry import _never_retried, meters_of

if TYPE_CHECKING:
    import asyncio

P = ParamSpec("P")
T = TypeVar("T")


class _Meters:
    """The hedging counters of one operation name in one registry."""

    __slots__ = ("calls", "launched", "wins")

    def __init__(self, registry: MetricsRegistry, name: str) -> None:
        self.calls = registry.counter(
            "trusswork_hedge_calls",
            "Hedged calls started.",
            labelnames=("name",),
        ).labels(name)
        self.launched = registry.counter(
            "trusswork_hedge_launched",
            "Hedges (copies after the first) started by hedged calls.",
            labelnames=("name",),
        ).labels(name)
        self.wins = registry.counter(
            "trusswork_hedge_wins",
            "Hedged calls won by a hedge rather than by the first copy.",
            labelnames=("name",),
        ).labels(name)


class _Options:
    """Validated hedging options, shared by every call of one decorated function."""

    __slots__ = ("_meters", "clock", "delay", "hedges", "name", "registry", "retry_if", "retry_on")

    def __init__(
        self,
        *,
        delay: float,
        hedges: int,
        retry_on: type[BaseException] | tuple[type[BaseException], ...],
        retry_if: Callable[[BaseException], bool] | None,
        name: str | None,
        registry: MetricsRegistry | None,
        clock: Clock,
    ) -> None:
        seconds("hedge", "delay", delay)
        if isinstance(hedges, bool) or not isinstance(hedges, int) or hedges < 1:
            raise InvalidInput(f"hedge hedges= must be an integer >= 1, got {hedges!r}")
        types = exception_types("hedge", "retry_on", retry_on)
        callable_or_none("hedge", "retry_if", retry_if)
        name_or_none("hedge", name)
        registry_or_none("hedge", registry)
        self.delay = float(delay)
        self.hedges = hedges
        self.retry_on = types
        self.retry_if = retry_if
        self.clock = clock
        self.name = name
        self.registry = registry
        self._meters: _Meters | None = None

    @property
    def meters(self) -> _Meters:
        """The counters, registered at the first call (``name`` is set by then)."""
        if self._meters is None:
            self._meters = meters_of(_Meters, self.registry, self.name or "hedged")
        return self._meters

    def retryable(self, error: BaseException) -> bool:
        if _never_retried(error) or not isinstance(error, self.retry_on):
            return False
        return self.retry_if is None or bool(self.retry_if(error))


async def _stop(tasks: set[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait until every one has finished."""
    import asyncio

    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks)
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved, so asyncio does not log it as lost


def _outcome(task: asyncio.Task[Any]) -> BaseException | None:
    """The task's exception (a CancelledError if it was cancelled), or None if it returned."""
    import asyncio

    return asyncio.CancelledError() if task.cancelled() else task.exception()


async def _run(factory: Callable[[], Awaitable[T]], options: _Options) -> T:
    import asyncio

    meters = options.meters
    meters.calls.inc()
    order: dict[asyncio.Task[Any], int] = {}
    running: set[asyncio.Task[Any]] = set()
    timer: asyncio.Task[None] | None = None
    errors: list[BaseException] = []

    def launch() -> None:
        task: asyncio.Task[T] = asyncio.ensure_future(factory())
        order[task] = len(order)
        running.add(task)
        if len(order) > 1:
            meters.launched.inc()

    try:
        launch()
        while True:
            if timer is None and len(order) <= options.hedges:
                timer = asyncio.ensure_future(options.clock.asleep(options.delay))
            waiting = running if timer is None else {*running, timer}
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            finished = sorted((t for t in done if t is not timer), key=order.__getitem__)
            running.difference_update(finished)
            outcomes = [(task, _outcome(task)) for task in finished]
            for task, error in outcomes:
                if error is None:
                    if order[task] > 0:
                        meters.wins.inc()
                    return task.result()  # type: ignore[no-any-return]
            hedge_now = False
            for _, error in outcomes:
                assert error is not None
                if not options.retryable(error):
                    raise error
                errors.append(error)
                hedge_now = True
            if timer is not None and timer.done():
                timer.result()
                timer = None
                hedge_now = True
            if hedge_now and len(order) <= options.hedges:
                if timer is not None:
                    # A failure hedges at once; the next delay counts from this hedge.
                    await _stop({timer})
                    timer = None
                launch()
            elif not running:
                first = errors[0]
                for later in errors[1:]:
                    first.add_note(f"another copy of the hedged call also failed: {later!r}")
                raise first
    finally:
        if timer is not None:
            running.add(timer)
        await _stop(running)


async def hedged(
    coro_factory: Callable[[], Awaitable[T]],
    *,
    delay: float,
    hedges: int = 1,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
    retry_if: Callable[[BaseException], bool] | None = None,
    name: str = "hedged",
    registry: MetricsRegistry | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> T:
    """Await ``coro_factory()``, hedged: another copy after ``delay`` s, first result wins.

    Parameters
    ----------
    coro_factory:
        Called once per copy; returns a fresh awaitable each time
        (``lambda: client.get(url)``).
    delay:
        Seconds to wait for a copy before starting the next one.
    hedges:
        Most extra copies started (at least 1).
    retry_on, retry_if:
        Which failures start the next copy at once (an exception class or
        tuple of them, and a predicate on the exception). Other failures
        end the call with that error. Cancellation is never hedged.
    name:
        The operation's name in the ``trusswork_hedge_*`` counters.
    registry:
        Where the counters go (:data:`trusswork.core.metrics.REGISTRY` by default).
    clock:
        Where ``delay`` is slept; a ``FakeClock`` makes tests instant.

    Returns
    -------
    The result of the first copy that returned.

    Raises
    ------
    InvalidInput
        If an option is invalid.
    Exception
        The first copy's error when every copy failed (later errors are
        notes on it), or a non-retryable error as soon as a copy raises it.
    """
    options = _Options(
        delay=delay,
        hedges=hedges,
        retry_on=retry_on,
        retry_if=retry_if,
        name=name,
        registry=registry,
        clock=clock,
    )
    return await _run(coro_factory, options)


class _Decorator:
    """What ``hedge(...)`` returns: hedges calls of an ``async`` function."""

    __slots__ = ("options",)

    def __init__(self, **options: Any) -> None:
        self.options = options

    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, T]]
    ) -> Callable[P, Coroutine[Any, Any, T]]:
        if not inspect.iscoroutinefunction(fn):
            raise InvalidInput(
                f"hedge(...) needs an async function (copies run as concurrent tasks), "
                f"got {fn!r}; use retry(...) for sync code"
            )
        options = dict(self.options)
        if options["name"] is None:
            options["name"] = getattr(fn, "__qualname__", None) or repr(fn)
        bound = _Options(**options)

        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            return await _run(lambda: fn(*args, **kwargs), bound)

        return functools.wraps(fn)(wrapper)


@overload
def hedge(
    fn: Callable[P, Coroutine[Any, Any, T]],
    /,
    *,
    delay: float,
    hedges: int = 1,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
    retry_if: Callable[[BaseException], bool] | None = None,
    name: str | None = None,
    registry: MetricsRegistry | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> Callable[P, Coroutine[Any, Any, T]]: ...


@overload
def hedge(
    fn: None = None,
    /,
    *,
    delay: float,
    hedges: int = 1,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
    retry_if: Callable[[BaseException], bool] | None = None,
    name: str | None = None,
    registry: MetricsRegistry | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> _Decorator: ...


def hedge(
    fn: Callable[P, Coroutine[Any, Any, T]] | None = None,
    /,
    *,
    delay: float,
    hedges: int = 1,
    retry_on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
    retry_if: Callable[[BaseException], bool] | None = None,
    name: str | None = None,
    registry: MetricsRegistry | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> Callable[P, Coroutine[Any, Any, T]] | _Decorator:
    """Decorate an ``async`` function so slow calls are hedged (see :func:`hedged`).

    ``@hedge(delay=0.05)`` starts a second copy of a call that has not
    returned after 50 ms; the first copy to return wins and the others are
    cancelled. Only hedge idempotent operations. The options are those of
    :func:`hedged`; ``name`` defaults to the function's qualified name.

    Raises
    ------
    InvalidInput
        If an option is invalid or the function is not ``async`` (at
        decoration time).
    """
    decorator = _Decorator(
        delay=delay,
        hedges=hedges,
        retry_on=retry_on,
        retry_if=retry_if,
        name=name,
        registry=registry,
        clock=clock,
    )
    if fn is None:
        _Options(**decorator.options)  # invalid options fail here, not at the decorated function
        return decorator
    return decorator(fn)
