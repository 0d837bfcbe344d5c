"""trusswork.retry retry budgets in one process: gRPC's throttling arithmetic, threads, metrics."""

from __future__ import annotations

import asyncio
import sys
import threading
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import examples
from trusswork.core.errors import InvalidInput
from trusswork.core.metrics import MetricsRegistry
from trusswork.retry import RetryBudget


def make(**options: Any) -> RetryBudget:
    options.setdefault("registry", MetricsRegistry())
    return RetryBudget("deps", **options)


class Oracle:
    """gRPC's retry throttling (proposal A6), written plainly in exact fractions."""

    def __init__(self, max_tokens: str, token_ratio: str) -> None:
        self.max_tokens = Fraction(max_tokens)
        self.token_ratio = Fraction(token_ratio)
        self.token_count = self.max_tokens

    def success(self) -> None:
        self.token_count = min(self.max_tokens, self.token_count + self.token_ratio)

    def failure(self) -> bool:
        self.token_count = max(Fraction(0), self.token_count - 1)
        return self.token_count > self.max_tokens / 2


def test_a_new_budget_is_full_and_allows_retries() -> None:
    budget = make(max_tokens=10, token_ratio=0.1)
    assert budget.tokens == 10.0
    assert budget.allows_retry
    assert budget.max_tokens == 10.0
    assert budget.token_ratio == 0.1


def test_failures_drain_one_token_each_and_retries_stop_at_half() -> None:
    budget = make(max_tokens=10, token_ratio=0.1)
    answers = [budget.record_failure() for _ in range(7)]
    # 9, 8, 7, 6 are above half; 5 is not (the threshold is strict), nor 4, 3.
    assert answers == [True, True, True, True, False, False, False]
    assert budget.tokens == 3.0
    assert not budget.allows_retry


def test_the_level_never_goes_below_zero() -> None:
    budget = make(max_tokens=3)
    for _ in range(10):
        assert budget.record_failure() is False or budget.tokens > 1.5
    assert budget.tokens == 0.0


def test_ten_successes_at_ratio_a_tenth_give_back_exactly_one_token() -> None:
    budget = make(max_tokens=10, token_ratio=0.1)
    for _ in range(5):
        budget.record_failure()
    assert budget.tokens == 5.0 and not budget.allows_retry
    for _ in range(10):
        budget.record_success()
    assert budget.tokens == 6.0  # exact: tokens are integer thousandths, as in gRPC
    assert budget.allows_retry
    assert budget.record_failure() is False  # 5 left: at half, refused again


def test_successes_never_fill_past_max_tokens() -> None:
    budget = make(max_tokens=4, token_ratio=0.5)
    budget.record_failure()
    for _ in range(10):
        budget.record_success()
    assert budget.tokens == 4.0


def test_odd_sizes_compare_against_the_exact_half() -> None:
    budget = make(max_tokens=3, token_ratio=1)
    assert budget.record_failure() is True  # 2 > 1.5
    assert budget.record_failure() is False  # 1 <= 1.5
    budget.record_success()
    assert budget.tokens == 2.0 and budget.allows_retry


def test_ratios_are_kept_to_three_decimals_as_grpc_does() -> None:
    budget = make(max_tokens=10, token_ratio=0.12345)
    assert budget.token_ratio == 0.123


def test_reset_fills_the_bucket() -> None:
    budget = make(max_tokens=10)
    for _ in range(8):
        budget.record_failure()
    budget.reset()
    assert budget.tokens == 10.0 and budget.allows_retry


def test_repr_names_the_budget_and_its_level() -> None:
    budget = RetryBudget("billing", max_tokens=10, token_ratio=0.1, registry=MetricsRegistry())
    budget.record_failure()
    assert repr(budget) == "RetryBudget('billing', tokens=9, max_tokens=10, token_ratio=0.1)"


@settings(max_examples=examples(200, fuzz=5000), deadline=None)
@given(
    max_tokens=st.sampled_from(["1", "2.5", "3", "10", "100", "1000", "0.5"]),
    token_ratio=st.sampled_from(["0.001", "0.1", "0.25", "0.333", "1"]),
    events=st.lists(st.booleans(), max_size=300),
)
def test_any_sequence_matches_the_grpc_algorithm(
    max_tokens: str, token_ratio: str, events: list[bool]
) -> None:
    budget = make(max_tokens=float(max_tokens), token_ratio=float(token_ratio))
    oracle = Oracle(max_tokens, token_ratio)
    for succeeded in events:
        if succeeded:
            budget.record_success()
            oracle.success()
        else:
            assert budget.record_failure() is oracle.failure()
        assert budget.tokens == float(oracle.token_count)  # both correctly rounded
        assert budget.allows_retry is (oracle.token_count > oracle.max_tokens / 2)


def test_threads_leave_the_exact_level() -> None:
    # Drained to 10000 of 30000 first: all 12000 tokens of successes cannot reach the
    # cap and all 8000 failures cannot reach 0, in any interleaving, so nothing clamps.
    budget = make(max_tokens=30_000, token_ratio=0.5)
    for _ in range(20_000):
        budget.record_failure()
    threads, rounds = 8, 1000

    def work() -> None:
        for _ in range(rounds):
            budget.record_failure()
            budget.record_success()
            budget.record_success()
            budget.record_success()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        sys.setswitchinterval(interval)
    # each round: -1 + 3 * 0.5 = +0.5 token
    assert budget.tokens == 10_000 + threads * rounds * 0.5


def test_async_methods_follow_the_same_arithmetic() -> None:
    budget = make(max_tokens=10, token_ratio=0.1)

    async def main() -> list[bool]:
        answers = [await budget.arecord_failure() for _ in range(5)]
        for _ in range(10):
            await budget.arecord_success()
        return answers

    assert asyncio.run(main()) == [True, True, True, True, False]
    assert budget.tokens == 6.0


def test_metrics_show_the_level_and_the_refused_retries() -> None:
    registry = MetricsRegistry()
    budget = RetryBudget("ledger", max_tokens=4, token_ratio=0.25, registry=registry)
    gauge = registry.gauge("trusswork_retry_budget_tokens", "", labelnames=("budget",))
    gauge = gauge.labels("ledger")
    denied = registry.counter("trusswork_retry_budget_denied", "", labelnames=("budget",))
    denied = denied.labels("ledger")
    assert gauge.value == 4.0
    for _ in range(4):
        budget.record_failure()  # 3 (allowed), 2, 1, 0 (refused)
    assert gauge.value == 0.0
    assert denied.value == 3.0
    budget.record_success()
    assert gauge.value == 0.25
    budget.reset()
    assert gauge.value == 4.0
    text = registry.exposition()
    assert 'trusswork_retry_budget_tokens{budget="ledger"} 4.0' in text
    assert 'trusswork_retry_budget_denied_total{budget="ledger"} 3.0' in text


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"max_tokens": 0}, "max_tokens="),
        ({"max_tokens": -1}, "max_tokens="),
        ({"max_tokens": float("nan")}, "max_tokens="),
        ({"max_tokens": float("inf")}, "max_tokens="),
        ({"max_tokens": True}, "max_tokens="),
        ({"max_tokens": "10"}, "max_tokens="),
        ({"max_tokens": 0.0001}, "max_tokens="),
        ({"token_ratio": 0}, "token_ratio="),
        ({"token_ratio": 1.5}, "token_ratio="),
        ({"token_ratio": 0.0004}, "token_ratio="),
        ({"registry": object()}, "registry="),
        ({"flush_every": 0}, "flush_every="),
        ({"flush_every": 2.5}, "flush_every="),
        ({"flush_interval": 0}, "flush_interval="),
        ({"ttl": -1}, "ttl="),
        ({"redis_key": "k"}, "redis_key="),
        ({"redis": object()}, "redis="),
    ],
)
def test_invalid_arguments_are_refused_by_name(options: dict[str, Any], fragment: str) -> None:
    options.setdefault("registry", MetricsRegistry())
    with pytest.raises(InvalidInput, match=fragment):
        RetryBudget("deps", **options)


def test_an_empty_name_is_refused() -> None:
    with pytest.raises(InvalidInput, match="name="):
        RetryBudget("", registry=MetricsRegistry())


def test_a_local_budget_has_nothing_to_flush() -> None:
    budget = make(max_tokens=10)
    budget.record_failure()
    assert budget.flush() == 9.0
    assert asyncio.run(budget.aflush()) == 9.0
