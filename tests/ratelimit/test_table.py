"""The compiled in-process limiters: behaviour a user relies on, by example.

The decision-by-decision comparison with the Python oracle is in
test_table_properties.py; here are the worked examples, the key and cost
rules, batches, levels, memory and threads.
"""

from __future__ import annotations

import math
import pickle
import threading

import numpy as np
import pytest

from trusswork.core.errors import InvalidInput
from trusswork.ratelimit import (
    Decision,
    FixedWindow,
    Hierarchy,
    SlidingWindow,
    TokenBucket,
)


class Clock:
    """A settable clock in seconds."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_token_bucket_admits_a_burst_then_the_rate() -> None:
    clock = Clock()
    limiter = TokenBucket(10, 5, clock=clock)
    assert [limiter.acquire("alice").remaining for _ in range(5)] == [4, 3, 2, 1, 0]
    denied = limiter.acquire("alice")
    assert not denied and denied.retry_after == pytest.approx(0.1) and denied.limit == 5
    clock.now += denied.retry_after
    assert limiter.acquire("alice")
    assert limiter.acquire("bob").remaining == 4  # every key has its own bucket


def test_cost_above_capacity_is_never_allowed() -> None:
    for limiter in (
        TokenBucket(1, 3),
        SlidingWindow(3, 1),
        SlidingWindow(3, 1, exact=False),
        FixedWindow(3, 1),
    ):
        decision = limiter.acquire("k", cost=4)
        assert not decision.allowed and decision.retry_after == math.inf
        assert limiter.acquire("k", cost=3).allowed  # and it charged nothing


def test_sliding_window_is_exact_at_the_window_edge() -> None:
    clock = Clock(0.0)
    limiter = SlidingWindow(2, 10, clock=clock)
    assert limiter.acquire("k") and limiter.acquire("k")
    clock.now = 9.999
    assert not limiter.acquire("k")
    clock.now = 10.0
    assert limiter.acquire("k")


def test_fixed_window_resets_at_aligned_edges() -> None:
    clock = Clock(59.0)
    limiter = FixedWindow(2, 60, clock=clock)
    assert limiter.acquire("k", cost=2)
    decision = limiter.acquire("k")
    assert not decision and decision.retry_after == pytest.approx(1.0)
    clock.now = 60.0
    assert limiter.acquire("k", cost=2)


def test_peek_and_zero_cost_change_nothing() -> None:
    limiter = TokenBucket(1, 2, clock=Clock())
    assert limiter.peek("k", 2).allowed and limiter.acquire("k", 0).remaining == 2
    assert limiter.acquire("k", 2).allowed and not limiter.peek("k").allowed
    assert len(limiter) == 1


def test_key_types_are_distinct_and_int_keys_match_numpy() -> None:
    limiter = FixedWindow(1, 60, clock=Clock())
    for key in ("1", b"1", 1, 2**70, -(2**63)):
        assert limiter.acquire(key).allowed, key
    assert not limiter.acquire(np.int64(1)).allowed  # the same key as the Python int 1
    batch = limiter.acquire_many(np.array([1, 2, -(2**63)], dtype=np.int64))
    assert batch.allowed.tolist() == [False, True, False]
    assert limiter.acquire_many(np.array([2**64 - 1], dtype=np.uint64)).allowed.tolist() == [True]
    assert not limiter.acquire(2**64 - 1).allowed


@pytest.mark.parametrize("key", [1.5, None, True, [1], ("a",), object()])
def test_bad_keys_are_invalid_input(key: object) -> None:
    with pytest.raises(InvalidInput, match="key must be str, bytes or int"):
        TokenBucket(1, 1).acquire(key)  # type: ignore[arg-type]


@pytest.mark.parametrize("cost", [-1, 1.0, "1", True, 2**64])
def test_bad_costs_are_invalid_input(cost: object) -> None:
    with pytest.raises(InvalidInput, match="cost"):
        TokenBucket(1, 1).acquire("k", cost)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: TokenBucket(0, 1), "rate"),
        (lambda: TokenBucket(math.nan, 1), "rate"),
        (lambda: TokenBucket(1, 0), "burst"),
        (lambda: TokenBucket(1, 1.5), "burst"),
        (lambda: TokenBucket(1e-12, 2**62), "out of range"),
        (lambda: SlidingWindow(0, 1), "limit"),
        (lambda: SlidingWindow(1, 0), "window_seconds"),
        (lambda: SlidingWindow(1, math.inf), "window_seconds"),
        (lambda: SlidingWindow(2**21, 1), "exact=False"),
        (lambda: FixedWindow(1, -1), "window_seconds"),
        (lambda: FixedWindow(1, 1, clock=5), "clock"),
    ],
)
def test_bad_parameters_are_invalid_input(make: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        make()  # type: ignore[operator]


def test_a_clock_returning_garbage_is_invalid_input() -> None:
    for value in (math.nan, "now", None):
        limiter = TokenBucket(1, 1, clock=lambda value=value: value)
        with pytest.raises(InvalidInput, match="clock"):
            limiter.acquire("k")


def test_acquire_many_decides_in_order_with_costs() -> None:
    limiter = TokenBucket(1, 5, clock=Clock())
    batch = limiter.acquire_many(["a", "a", "b", "a"], costs=[2, 2, 5, 2])
    assert batch.allowed.tolist() == [True, True, True, False]
    assert batch.remaining.tolist() == [3, 1, 0, 1]
    assert batch[3] == Decision(False, 1, 1.0, 4.0, 5)
    assert len(batch) == 4 and [d.allowed for d in batch] == batch.allowed.tolist()
    with pytest.raises(InvalidInput, match="2 costs for 1 keys"):
        limiter.acquire_many(["a"], costs=[1, 1])
    with pytest.raises(InvalidInput, match="non-negative"):
        limiter.acquire_many(["a"], costs=[-1])
    with pytest.raises(InvalidInput, match="dtype float64"):
        limiter.acquire_many(np.array([1.0]))
    with pytest.raises(InvalidInput, match="key must be"):
        limiter.acquire_many(["a", None])  # type: ignore[list-item]
    assert len(limiter.acquire_many([])) == 0


def test_millions_of_keys_then_sweep_frees_them() -> None:
    clock = Clock()
    limiter = TokenBucket(1, 2, clock=clock)
    keys = np.arange(1_000_000, dtype=np.int64)
    assert limiter.acquire_many(keys).allowed.all()
    assert len(limiter) == 1_000_000
    assert not limiter.acquire_many(keys, costs=2).allowed.any()
    grown = limiter.memory_bytes
    assert limiter.sweep() == 0
    clock.now += 1.0  # every bucket has refilled
    assert limiter.sweep() == 1_000_000
    assert len(limiter) == 0 and limiter.memory_bytes < grown / 1000


def test_reset_forgets_one_key() -> None:
    limiter = FixedWindow(1, 60, clock=Clock())
    limiter.acquire_many(range(1000))
    assert limiter.reset(500) and not limiter.reset(500)
    assert limiter.acquire_many(range(1000)).allowed.nonzero()[0].tolist() == [500]


def test_decision_is_a_plain_value() -> None:
    decision = Decision(False, 0, math.inf, 2.5, 10)
    assert pickle.loads(pickle.dumps(decision)) == decision
    assert decision.as_dict() == {
        "allowed": False,
        "remaining": 0,
        "retry_after": None,
        "reset_after": 2.5,
        "limit": 10,
    }
    assert "retry_after=inf" in repr(decision) and not decision
    with pytest.raises(AttributeError):
        decision.allowed = True  # type: ignore[misc]


def test_threads_share_one_limit_exactly() -> None:
    limiter = SlidingWindow(5000, 3600)
    admitted = []

    def single() -> None:
        admitted.append(sum(limiter.acquire("shared").allowed for _ in range(3000)))

    def batched() -> None:
        admitted.append(int(limiter.acquire_many(["shared"] * 3000).allowed.sum()))

    threads = [threading.Thread(target=f) for f in (single, batched, single, batched)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(admitted) == 5000


def test_hierarchy_charges_every_level_or_none() -> None:
    clock = Clock()
    limits = Hierarchy(
        {"global": FixedWindow(3, 60, clock=clock), "user": TokenBucket(1, 2, clock=clock)}
    )
    assert limits.acquire({"global": "all", "user": "alice"})
    assert limits.acquire(["all", "alice"])
    third = limits.acquire(["all", "alice"])
    assert not third and third.denied_by == ("user",)
    assert limits.acquire(["all", "bob"])  # the global level still had one
    blocked = limits.acquire(["all", "carol"])
    assert blocked.denied_by == ("global",) and blocked.binding[0] == "global"
    assert blocked.retry_after == blocked.levels["global"].retry_after > 0
    # carol was refused by the global level, so her own bucket is untouched
    assert limits["user"].peek("carol", 2).allowed
    assert not limits.peek(["all", "dave"]).allowed


def test_hierarchy_rejects_malformed_levels_and_keys() -> None:
    with pytest.raises(InvalidInput, match="between 1 and 64 levels"):
        Hierarchy({})
    with pytest.raises(InvalidInput, match="in-process limiter"):
        Hierarchy({"a": object()})  # type: ignore[dict-item]
    limits = Hierarchy({"a": TokenBucket(1, 1), "b": TokenBucket(1, 1)})
    with pytest.raises(InvalidInput, match="missing \\['b'\\]"):
        limits.acquire({"a": "x"})
    with pytest.raises(InvalidInput, match="1 keys for 2 levels"):
        limits.acquire(["x"])
    with pytest.raises(InvalidInput, match="one key per level"):
        limits.acquire("xy")
    same = TokenBucket(1, 1)
    with pytest.raises(InvalidInput, match="same limiter and key"):
        Hierarchy([("a", same), ("b", same)]).acquire(["x", "x"])
