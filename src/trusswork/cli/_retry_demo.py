"""Demo section for retries: a flaky call, the jitter study, the circuit breaker.

Checked parts, all on fake time (nothing sleeps for real):

1. A flaky function: it raises ``ConnectionError`` the first
   :data:`FLAKY_FAILURES` times and is decorated with
   ``@retry(attempts=5, clock=FakeClock())``. It must succeed on call
   ``FLAKY_FAILURES + 1`` after exactly that many waits, each inside the
   range full-jitter exponential backoff draws from. A function that never
   recovers must raise :class:`~trusswork.retry.RetryError` after 5
   attempts, with the history of all 5 and the last ``ConnectionError`` as
   its cause.
2. The jitter study (:mod:`trusswork.retry.simulate`, AWS's "Exponential
   Backoff and Jitter"): the four strategies over a sweep of client counts,
   averaged over seeds. The section fails unless it reproduces the post's
   ordering: no jitter is by far the worst in calls and in time; full and
   decorrelated jitter do far less work; equal jitter does more work than
   full and takes longer.
3. The circuit breaker: :func:`_breaker_part`, a dependency that goes down
   and comes back, seen through a breaker.
"""

from __future__ import annotations

import logging
from logging import WARNING
from typing import TYPE_CHECKING

from trusswork.cli._demo import DemoContext, Plot, SectionResult

if TYPE_CHECKING:
    from trusswork.retry.simulate import Strategy, StudyRow

#: Calls the flaky function fails before it recovers.
FLAKY_FAILURES = 2
ATTEMPTS = 5
#: Seeds the jitter of part 1, so the waits shown are the same every run.
JITTER_SEED = 7
#: Client counts and seeds of the study: quick, and full.
QUICK_CLIENTS = range(10, 101, 10)
QUICK_SEEDS = 5
FULL_CLIENTS = range(5, 101, 5)
FULL_SEEDS = 20
#: "By a wide margin": no jitter must make at least this many times the
#: calls, and take this many times as long, as full or decorrelated jitter.
WIDE_CALLS = 2.0
WIDE_TIME = 5.0


# ---------------------------------------------------------------- flaky function


class _Records(logging.Handler):
    """Keeps the records it is handed."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _flaky_part() -> list[tuple[str, str]]:
    """Retry a function that recovers, and one that never does; check both."""
    from trusswork.core.clock import FakeClock
    from trusswork.core.metrics import MetricsRegistry
    from trusswork.retry import Policy, RetryError, retry

    registry = MetricsRegistry()  # keeps the demo's counters out of the process's registry
    clock = FakeClock()
    calls = 0

    @retry(attempts=ATTEMPTS, clock=clock, seed=JITTER_SEED, registry=registry, name="demo.fetch")
    def fetch() -> str:
        nonlocal calls
        calls += 1
        if calls <= FLAKY_FAILURES:
            raise ConnectionError(f"connection reset by peer (call {calls})")
        return "payload"

    if fetch() != "payload" or calls != FLAKY_FAILURES + 1:
        raise AssertionError(f"the flaky call did not succeed on call {FLAKY_FAILURES + 1}")
    waits = list(clock.sleeps)
    schedule = Policy()  # the defaults @retry used: exponential from 0.1 s, full jitter
    if len(waits) != FLAKY_FAILURES or not all(
        0 <= wait <= schedule.base_wait(retry) for retry, wait in enumerate(waits, start=1)
    ):
        raise AssertionError(f"the flaky call waited {waits}, not within full-jitter backoff")

    down_clock = FakeClock()

    @retry(
        attempts=ATTEMPTS, clock=down_clock, seed=JITTER_SEED, registry=registry, name="demo.down"
    )
    def down() -> str:
        raise ConnectionError("connection refused")

    error: RetryError | None = None
    logged = _Records()
    logger = logging.getLogger("trusswork.retry")
    # Collected for a row instead of printed over the progress bar (the last-resort
    # handler's stderr line); an application's own handlers still get the record.
    logger.addHandler(logged)
    try:
        down()
    except RetryError as raised:
        error = raised
    finally:
        logger.removeHandler(logged)
    if error is None:
        raise AssertionError("a call that always fails did not raise RetryError")
    history = error.attempts
    if (
        [attempt.number for attempt in history] != list(range(1, ATTEMPTS + 1))
        or not all(isinstance(attempt.error, ConnectionError) for attempt in history)
        or not isinstance(error.__cause__, ConnectionError)
        or error.reason != "attempts"
        or len(down_clock.sleeps) != ATTEMPTS - 1
    ):
        raise AssertionError(f"RetryError did not carry the {ATTEMPTS} attempts: {error}")
    warnings = [record.getMessage() for record in logged.records if record.levelno >= WARNING]
    # An application may have turned the logger down; otherwise giving up is logged once.
    expected = 1 if logger.isEnabledFor(WARNING) else 0
    if len(warnings) != expected or not all(f"after {ATTEMPTS} attempts" in w for w in warnings):
        raise AssertionError(f"giving up logged {warnings}, not {expected} warning")
    given_up = f"RetryError after {len(history)} attempts (reason: {error.reason})"
    timeline = ", ".join(f"#{a.number} at {a.elapsed:.3f} s" for a in history)
    return [
        (
            f"flaky call (fails {FLAKY_FAILURES}x), @retry(attempts={ATTEMPTS})",
            f"succeeded on attempt {calls} of {ATTEMPTS}",
        ),
        (
            "waits taken (full-jitter exponential from 0.1 s)",
            ", ".join(f"{wait:.3f} s" for wait in waits),
        ),
        ("time spent waiting (FakeClock: none of it real)", f"{sum(waits):.3f} s"),
        (f"always-failing call, @retry(attempts={ATTEMPTS})", given_up),
        ("its attempt history", f"{timeline}: ConnectionError each time"),
        *(("logged on trusswork.retry", f"WARNING {warning}") for warning in warnings),
    ]


# ---------------------------------------------------------------- jitter study


def check_study(rows: list[StudyRow]) -> dict[Strategy, tuple[float, float]]:
    """Raise ``AssertionError`` unless ``rows`` show the AWS post's ordering.

    Returns the summed mean calls and completion time per strategy.
    """
    from trusswork.retry.simulate import totals

    sums = totals(rows)
    (none_calls, none_time), (full_calls, full_time) = sums["none"], sums["full"]
    equal_calls, equal_time = sums["equal"]
    decorrelated_calls, decorrelated_time = sums["decorrelated"]
    problems = []
    if none_calls < WIDE_CALLS * max(full_calls, decorrelated_calls):
        problems.append("no jitter did not make far more calls than full/decorrelated jitter")
    if none_time < WIDE_TIME * max(full_time, equal_time, decorrelated_time):
        problems.append("no jitter did not take far longer than every jittered strategy")
    if not full_calls < equal_calls:
        problems.append("full jitter did not make fewer calls than equal jitter")
    if not full_time < equal_time:
        problems.append("equal jitter did not take longer than full jitter")
    if problems:
        raise AssertionError(f"the jitter study did not reproduce AWS's result: {problems}")
    return sums


def _study_part(ctx: DemoContext) -> tuple[list[tuple[str, str]], Plot, list[str]]:
    from trusswork.cli._retry import study_figure
    from trusswork.retry.simulate import LABELS, STRATEGIES, study

    clients = QUICK_CLIENTS if ctx.quick else FULL_CLIENTS
    seeds = QUICK_SEEDS if ctx.quick else FULL_SEEDS
    rows: list[StudyRow] = []
    for strategy in ctx.track(STRATEGIES, "retry: jitter study"):
        rows += study(clients, [strategy], range(seeds))
    sums = check_study(rows)
    most = max(clients)
    at_most = {row.strategy: row for row in rows if row.clients == most}  # in STRATEGIES order
    least_work = min(STRATEGIES, key=lambda strategy: sums[strategy][0])
    soonest = min(STRATEGIES, key=lambda strategy: sums[strategy][1])
    table = [
        (
            f"{LABELS[strategy]}, {most} clients",
            f"{row.calls:,.0f} calls, done in {row.completion_time:.2f} s",
        )
        for strategy, row in at_most.items()
    ]
    table += [
        (
            f"calls, no jitter / full jitter ({clients[0]}..{most} clients)",
            f"{sums['none'][0] / sums['full'][0]:.1f}x",
        ),
        (
            f"time, no jitter / full jitter ({clients[0]}..{most} clients)",
            f"{sums['none'][1] / sums['full'][1]:.1f}x",
        ),
        ("least work / soonest done", f"{LABELS[least_work]} / {LABELS[soonest]}"),
    ]
    plot = Plot(
        "Exponential backoff and jitter: work and completion time against contention",
        study_figure(rows, seeds=seeds),
    )
    notes = [
        f"Jitter study: {min(clients)} to {most} clients each make one optimistic-concurrency "
        f"write to one row (10 ms round trips); a write fails if another commits between its "
        f"read and its write, and the client retries after Policy.next_wait (exponential from "
        f"5 ms up to 1 s). Means of {seeds} seeds. Rerun it with 'trusswork retry simulate'.",
    ]
    return table, plot, notes


# ---------------------------------------------------------------- circuit breaker


#: Fake seconds during which the breaker demo's dependency is down.
OUTAGE = (5.0, 20.0)


def _breaker_part(ctx: DemoContext) -> list[tuple[str, str]]:
    """A dependency goes down for 15 fake seconds; a breaker opens, probes and closes.

    One call every 0.5 s through ``CircuitBreaker(minimum_calls=5,
    window_size=10, failure_rate=0.5, open_for=4, half_open_calls=2)``.
    Checked: the breaker opens during the outage, rejects calls without
    reaching the dependency while open, re-opens when a half-open probe finds
    the dependency still down, and is closed again after the outage.
    """
    from trusswork.core.clock import FakeClock
    from trusswork.core.metrics import MetricsRegistry
    from trusswork.retry import BreakerState, CircuitBreaker, CircuitOpen

    clock = FakeClock()
    transitions: list[tuple[float, str, str]] = []
    breaker = CircuitBreaker(
        "demo-dependency",
        minimum_calls=5,
        window_size=10,
        failure_rate=0.5,
        open_for=4.0,
        half_open_calls=2,
        clock=clock,
        registry=MetricsRegistry(),
        listeners=[lambda old, new, _: transitions.append((clock.monotonic(), old, new))],
    )
    reached_while_down = 0

    @breaker
    def dependency() -> str:
        nonlocal reached_while_down
        if OUTAGE[0] <= clock.monotonic() < OUTAGE[1]:
            reached_while_down += 1
            raise ConnectionError("dependency down")
        return "ok"

    calls = rejected = failed = 0
    logger = logging.getLogger("trusswork.retry")
    level = logger.level
    logger.setLevel(logging.ERROR)  # transitions are shown as rows, not as log lines
    try:
        while clock.monotonic() < OUTAGE[1] + 10.0:
            calls += 1
            try:
                dependency()
            except CircuitOpen as error:
                rejected += 1
                if not 0.0 <= error.retry_after <= 4.0:
                    raise AssertionError(
                        f"retry_after {error.retry_after} outside [0, 4]"
                    ) from error
            except ConnectionError:
                failed += 1
            clock.advance(0.5)
    finally:
        logger.setLevel(level)

    path = [f"{new} at {at:.1f} s" for at, _, new in transitions]
    states = [str(new) for _, _, new in transitions]
    if not states or states[0] != BreakerState.OPEN:
        raise AssertionError(f"the breaker did not open first: {path}")
    if "half_open" not in states or states.count("open") < 2:
        raise AssertionError(f"no failed half-open probe re-opened the breaker: {path}")
    if breaker.state != BreakerState.CLOSED or states[-1] != BreakerState.CLOSED:
        raise AssertionError(f"the breaker is not closed after the outage: {path}")
    if rejected == 0 or reached_while_down + rejected != 30:
        raise AssertionError(
            f"{reached_while_down} calls reached the dead dependency and {rejected} were "
            f"rejected; together they must be the 30 calls made during the outage"
        )
    reopened = sum(1 for _, old, new in transitions if old == "half_open" and new == "open")
    return [
        ("breaker: dependency outage (fake time)", f"{OUTAGE[0]:.0f} s to {OUTAGE[1]:.0f} s"),
        ("breaker: opened at", f"{transitions[0][0]:.1f} s"),
        ("breaker: probes that found it still down", f"{reopened}"),
        ("breaker: closed again at", f"{transitions[-1][0]:.1f} s"),
        ("breaker: calls during the outage that reached the dependency", f"{reached_while_down}"),
        ("breaker: calls rejected at once (CircuitOpen)", f"{rejected} of {calls}"),
    ]


# ---------------------------------------------------------------- the section


def demo(ctx: DemoContext) -> SectionResult:
    """Run and check the retry parts; see the module docstring."""
    rows = _flaky_part()
    study_rows, plot, notes = _study_part(ctx)
    rows += study_rows
    rows += _breaker_part(ctx)
    notes.insert(
        0,
        "The flaky calls run on a FakeClock: the waits are what @retry asked to sleep, "
        "drawn with a fixed seed.",
    )
    return SectionResult(rows=rows, plots=[plot], notes=notes)
