"""AWS's "Exponential Backoff and Jitter" contention study, run on our own policies.

Marc Brooker's post on the AWS Architecture Blog (2015) asked what backoff
does when many clients contend for one resource. We reproduce its
experiment with :meth:`Policy.next_wait <trusswork.retry.Policy.next_wait>`
choosing every wait, so the study measures the code users run.

The model: optimistic concurrency control on one database row. ``clients``
clients start at time 0 and each wants to make one write. An attempt reads
the row's version when it starts and sends a conditional write, which
reaches the row one round trip later (``slot`` seconds, stretched or shrunk
by up to ``spread * slot`` at random, the network's variance). The write
commits if no other write committed since the attempt's read, that is,
only if no other attempt's commit lands inside its read-to-write window;
otherwise the client learns of the conflict at that moment, waits
``policy.next_wait(retry, previous)`` seconds and tries again. Writes are
applied in the order they arrive (ties by client number), so of several
attempts that overlap exactly one wins. The simulation is a discrete-event
loop over a heap of pending writes: ``O(calls log clients)`` time, exact,
and reproducible from ``seed`` (one ``random.Random`` for the network, the
policy's own seeded generator for the jitter).

Two figures come out of a run: **calls**, the attempts made by all clients
(the work the resource had to do), and **completion time**, when the last
client's write committed. The post's findings, which :func:`study`
reproduces: exponential backoff without jitter is by far the worst on both,
because clients that collide once retry in lockstep and keep colliding: one
client wins per round until the network's variance slowly drifts them apart,
so the calls grow with the square of the number of clients;
"full" and "decorrelated" jitter do the least work, full the least;
"equal" jitter does a bit more work than full and takes longer.

This module imports only the standard library and :mod:`trusswork.retry`.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from trusswork.core.errors import InvalidInput
from trusswork.retry._checks import seconds
from trusswork.retry._policy import Jitter, Policy

Strategy = Literal["none", "full", "equal", "decorrelated"]

#: Every strategy, in the order tables and plots show them. ``"none"`` is
#: exponential backoff without jitter (``Policy(jitter=None)``).
STRATEGIES: tuple[Strategy, ...] = ("none", "full", "equal", "decorrelated")

#: How tables and plots name each strategy.
LABELS: dict[str, str] = {
    "none": "no jitter",
    "full": "full jitter",
    "equal": "equal jitter",
    "decorrelated": "decorrelated jitter",
}

#: Defaults of the model, in seconds: a 10 ms round trip varying by 20 %,
#: backoff from 5 ms doubling up to 1 s.
SLOT = 0.010
SPREAD = 0.2
BASE = 0.005
CAP = 1.0

#: A run gives up (``InvalidInput``) after this many calls per client: the
#: model always finishes, so this only stops parameters that make it crawl.
MAX_CALLS_PER_CLIENT = 100_000


@dataclass(frozen=True, slots=True)
class SimResult:
    """The outcome of one simulated run.

    Attributes
    ----------
    calls:
        Attempts made by all clients together (at least one per client).
    completion_time:
        Seconds from the start until the last client's write committed.
    """

    calls: int
    completion_time: float


@dataclass(frozen=True, slots=True)
class StudyRow:
    """One point of :func:`study`: a strategy at a client count, averaged over seeds.

    Attributes
    ----------
    strategy:
        One of :data:`STRATEGIES`.
    clients:
        How many clients contended.
    calls:
        Mean attempts per run, all clients together.
    completion_time:
        Mean seconds until the last client's write committed.
    seeds:
        How many seeded runs the means are over.
    """

    strategy: Strategy
    clients: int
    calls: float
    completion_time: float
    seeds: int


def _strategy(strategy: object) -> Jitter | None:
    if strategy not in STRATEGIES:
        raise InvalidInput(
            f"simulate: strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}"
        )
    return None if strategy == "none" else strategy


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(f"simulate: {name} must be an integer >= 1, got {value!r}")
    return value


def policy_for(strategy: Strategy, *, seed: int, base: float = BASE, cap: float = CAP) -> Policy:
    """The exponential :class:`~trusswork.retry.Policy` whose waits a strategy uses.

    Backoff starts at ``base`` seconds and doubles up to ``cap``, with the
    strategy's jitter (``"none"``: no jitter), drawn from a generator seeded
    with ``seed``.

    Raises
    ------
    InvalidInput
        If ``strategy`` is unknown or the policy rejects ``base``/``cap``.
    """
    return Policy(
        wait="exponential",
        wait_initial=base,
        wait_max=cap,
        wait_multiplier=2.0,
        jitter=_strategy(strategy),
        seed=seed,
    )


def simulate(
    strategy: Strategy,
    clients: int,
    *,
    seed: int,
    base: float = BASE,
    cap: float = CAP,
    slot: float = SLOT,
    spread: float = SPREAD,
) -> SimResult:
    """Run the contention model once (see the module docstring).

    Parameters
    ----------
    strategy:
        ``"none"``, ``"full"``, ``"equal"`` or ``"decorrelated"``.
    clients:
        How many clients each want one write (at least 1).
    seed:
        Seeds the network's variance and the policy's jitter; the same
        arguments always give the same result.
    base, cap:
        First wait and longest wait of the exponential backoff, in seconds.
    slot:
        Mean round trip of an attempt, in seconds: the window in which
        another commit makes the attempt fail.
    spread:
        Each round trip is uniform in ``slot * (1 - spread)`` to
        ``slot * (1 + spread)``; ``0 <= spread < 1``.

    Returns
    -------
    SimResult
        Total calls and the time the last write committed.

    Raises
    ------
    InvalidInput
        If an argument is out of range, or a run needs more than
        :data:`MAX_CALLS_PER_CLIENT` calls per client.
    """
    clients = _positive_int("clients", clients)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InvalidInput(f"simulate: seed= must be an integer, got {seed!r}")
    slot = seconds("simulate:", "slot", slot, positive=True)
    if isinstance(spread, bool) or not isinstance(spread, (int, float)) or not 0 <= spread < 1:
        raise InvalidInput(f"simulate: spread= must be a number in [0, 1), got {spread!r}")
    policy = policy_for(
        strategy,
        seed=seed,
        base=seconds("simulate:", "base", base, positive=True),
        cap=seconds("simulate:", "cap", cap, positive=True),
    )
    network = random.Random(seed)
    low, high = slot * (1 - spread), slot * (1 + spread)

    # One pending write per client that has not committed yet:
    # (arrival time, client, time of the attempt's read, retries so far, last wait).
    pending = [(network.uniform(low, high), client, 0.0, 0, base) for client in range(clients)]
    heapq.heapify(pending)
    calls = clients
    limit = MAX_CALLS_PER_CLIENT * clients
    last_commit = -math.inf
    next_wait = policy.next_wait
    while pending:
        arrival, client, read_at, retries, previous = heapq.heappop(pending)
        if last_commit <= read_at:
            last_commit = arrival  # the row is unchanged since this attempt read it
            continue
        retries += 1
        wait = next_wait(retries, previous)
        start = arrival + wait
        calls += 1
        if calls > limit:
            raise InvalidInput(
                f"simulate: {strategy} with {clients} clients made over {limit:,} calls; "
                f"the backoff (base={base}, cap={cap}) is too short for slot={slot}"
            )
        heapq.heappush(pending, (start + network.uniform(low, high), client, start, retries, wait))
    return SimResult(calls=calls, completion_time=last_commit)


def study(
    clients: Iterable[int],
    strategies: Sequence[Strategy] = STRATEGIES,
    seeds: Iterable[int] = range(10),
    *,
    base: float = BASE,
    cap: float = CAP,
    slot: float = SLOT,
    spread: float = SPREAD,
) -> list[StudyRow]:
    """Run every strategy at every client count over several seeds; return the means.

    Parameters
    ----------
    clients:
        The client counts to try (each at least 1).
    strategies:
        Which strategies to run (all four by default), in the order given.
    seeds:
        One run per seed for every (strategy, client count); the rows hold
        the means. Ten seeds by default.
    base, cap, slot, spread:
        As for :func:`simulate`.

    Returns
    -------
    list[StudyRow]
        One row per (strategy, client count): strategies in the order given,
        client counts in the order given within each.

    Raises
    ------
    InvalidInput
        If there are no client counts, strategies or seeds, or an argument is
        out of range.
    """
    counts = [_positive_int("each client count", count) for count in clients]
    seed_list = list(seeds)
    if not counts or not strategies or not seed_list:
        raise InvalidInput("study: needs at least one client count, strategy and seed")
    for strategy in strategies:
        _strategy(strategy)
    rows = []
    for strategy in strategies:
        for count in counts:
            results = [
                simulate(strategy, count, seed=seed, base=base, cap=cap, slot=slot, spread=spread)
                for seed in seed_list
            ]
            rows.append(
                StudyRow(
                    strategy=strategy,
                    clients=count,
                    calls=sum(result.calls for result in results) / len(results),
                    completion_time=sum(result.completion_time for result in results)
                    / len(results),
                    seeds=len(results),
                )
            )
    return rows


def totals(rows: Iterable[StudyRow]) -> dict[Strategy, tuple[float, float]]:
    """Sum of mean calls and of mean completion time per strategy over a study's client counts.

    The study's ordering is read from these: a strategy that does less work
    or finishes sooner across the sweep has the smaller sum.
    """
    sums: dict[Strategy, tuple[float, float]] = {}
    for row in rows:
        calls, seconds = sums.get(row.strategy, (0.0, 0.0))
        sums[row.strategy] = (calls + row.calls, seconds + row.completion_time)
    return sums
