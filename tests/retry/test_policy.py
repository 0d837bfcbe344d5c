"""trusswork.retry.Policy: validation at construction and the wait schedules with jitter."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import examples
from trusswork.core.errors import InvalidInput
from trusswork.retry import Policy, Retrying, retry


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"attempts": 0}, "attempts= must be an integer >= 1, got 0"),
        ({"attempts": -3}, "attempts="),
        ({"attempts": 2.5}, "attempts="),
        ({"attempts": True}, "attempts="),
        ({"deadline": 0}, "deadline= must be a finite, positive"),
        ({"deadline": -1.0}, "deadline="),
        ({"deadline": math.inf}, "deadline="),
        ({"wait_initial": -0.1}, "wait_initial= must be a finite, non-negative"),
        ({"wait_max": -1}, "wait_max="),
        ({"wait_min": math.nan}, "wait_min="),
        ({"wait_increment": -2}, "wait_increment="),
        ({"wait_initial": "1s"}, "wait_initial= must be a number of seconds"),
        ({"wait_min": 5, "wait_max": 2}, "wait_max=2 is below wait_min=5"),
        ({"wait_initial": 3, "wait_max": 2}, "wait_max=2 is below wait_initial=3"),
        ({"wait_multiplier": 0.5}, "wait_multiplier= must be a finite number >= 1"),
        ({"wait": "fibonacci"}, "wait= must be one of constant, linear, exponential"),
        ({"jitter": "half"}, "jitter= must be None or one of full, equal, decorrelated"),
        ({"retry_on": ValueError()}, "retry_on= must be an exception class"),
        ({"retry_on": (ValueError, int)}, "retry_on="),
        ({"retry_on": ()}, "retry_on="),
        ({"retry_if": 3}, "retry_if= must be callable"),
        ({"after": "log"}, "after= must be callable"),
        ({"seed": 1, "rng": random.Random(1)}, "seed= or rng=, not both"),
        ({"rng": 42}, "rng= must be a random.Random"),
    ],
)
def test_invalid_policies_are_rejected_at_construction(
    options: dict[str, Any], fragment: str
) -> None:
    for build in (Policy, Retrying, retry):
        with pytest.raises(InvalidInput) as info:
            build(**options)
        assert fragment in str(info.value)


def test_policy_and_options_together_are_rejected() -> None:
    with pytest.raises(InvalidInput, match="not both"):
        retry(policy=Policy(), attempts=2)  # type: ignore[call-arg]


def test_defaults_are_three_attempts_with_full_jitter_exponential_backoff() -> None:
    policy = Policy()
    assert (policy.attempts, policy.wait, policy.jitter) == (3, "exponential", "full")
    assert policy.retry_on == (Exception,)
    assert policy.reraise is False and policy.deadline is None


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"wait": "constant", "wait_initial": 0.5}, [0.5, 0.5, 0.5, 0.5]),
        ({"wait": "linear", "wait_initial": 1.0}, [1.0, 2.0, 3.0, 4.0]),
        ({"wait": "linear", "wait_initial": 1.0, "wait_increment": 0.5}, [1.0, 1.5, 2.0, 2.5]),
        ({"wait": "exponential", "wait_initial": 1.0}, [1.0, 2.0, 4.0, 8.0]),
        ({"wait": "exponential", "wait_initial": 1.0, "wait_multiplier": 3}, [1.0, 3.0, 9.0, 10.0]),
        ({"wait": "exponential", "wait_initial": 1.0, "wait_max": 5.0}, [1.0, 2.0, 4.0, 5.0]),
        ({"wait": "linear", "wait_initial": 1.0, "wait_max": 2.5}, [1.0, 2.0, 2.5, 2.5]),
        ({"wait": "constant", "wait_initial": 0.1, "wait_min": 0.3}, [0.3, 0.3, 0.3, 0.3]),
    ],
)
def test_wait_schedules_without_jitter(options: dict[str, Any], expected: list[float]) -> None:
    policy = Policy(jitter=None, **options)
    assert [policy.next_wait(n, 0.0) for n in range(1, 5)] == expected


def test_exponential_wait_does_not_overflow_after_many_retries() -> None:
    policy = Policy(jitter=None, wait_initial=1.0, wait_max=30.0)
    assert policy.next_wait(5000, 0.0) == 30.0


SCHEDULE = st.fixed_dictionaries(
    {
        "wait_initial": st.floats(min_value=0.0, max_value=5.0),
        "extra": st.floats(min_value=0.0, max_value=100.0),
        "seed": st.integers(min_value=0, max_value=2**32),
    }
)


@settings(max_examples=examples(200))
@given(SCHEDULE, st.integers(min_value=0, max_value=40))
def test_full_jitter_lies_in_zero_to_capped_exponential(
    schedule: dict[str, Any], failures: int
) -> None:
    base, cap = schedule["wait_initial"], schedule["wait_initial"] + schedule["extra"]
    policy = Policy(jitter="full", wait_initial=base, wait_max=cap, seed=schedule["seed"])
    wait = policy.next_wait(failures + 1, base)
    assert 0.0 <= wait <= min(cap, base * 2**failures)


@settings(max_examples=examples(200))
@given(SCHEDULE, st.integers(min_value=0, max_value=40))
def test_equal_jitter_lies_in_upper_half_of_capped_exponential(
    schedule: dict[str, Any], failures: int
) -> None:
    base, cap = schedule["wait_initial"], schedule["wait_initial"] + schedule["extra"]
    policy = Policy(jitter="equal", wait_initial=base, wait_max=cap, seed=schedule["seed"])
    wait = policy.next_wait(failures + 1, base)
    full = min(cap, base * 2**failures)
    assert full / 2 <= wait <= full


@settings(max_examples=examples(200))
@given(SCHEDULE, st.integers(min_value=1, max_value=15))
def test_decorrelated_jitter_lies_in_base_to_three_times_previous(
    schedule: dict[str, Any], retries: int
) -> None:
    base, cap = schedule["wait_initial"], schedule["wait_initial"] + schedule["extra"]
    policy = Policy(jitter="decorrelated", wait_initial=base, wait_max=cap, seed=schedule["seed"])
    previous = base
    for n in range(1, retries + 1):
        wait = policy.next_wait(n, previous)
        assert base <= wait <= min(cap, 3 * previous)
        previous = wait


def test_seeded_jitter_is_reproducible() -> None:
    def schedule(seed: int) -> list[float]:
        policy = Policy(seed=seed, wait_initial=1.0, wait_max=60.0)
        return [policy.next_wait(n, 1.0) for n in range(1, 8)]

    assert schedule(7) == schedule(7)
    assert schedule(7) != schedule(8)


def test_rng_is_drawn_from() -> None:
    rng = random.Random(3)
    expected = random.Random(3).uniform(0.0, 1.0)
    assert Policy(rng=rng, wait_initial=1.0).next_wait(1, 1.0) == expected
