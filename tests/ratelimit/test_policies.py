"""Policies: validation, TOML files (good and malformed), and the PolicySet that decides."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trusswork.core.errors import InvalidInput, NotFound, ParseError
from trusswork.core.metrics import MetricsRegistry
from trusswork.ratelimit import FixedWindow, SlidingWindow, TokenBucket
from trusswork.ratelimit._policy import Policy, load_policies, parse_rate
from trusswork.ratelimit._policyset import PolicySet


class Clock:
    """A settable clock for the in-process limiters (seconds)."""

    def __init__(self) -> None:
        self.now = 1200.0  # a multiple of every window used here: windows start now

    def __call__(self) -> float:
        return self.now


# ---------------------------------------------------------------- Policy


def test_policy_fields_and_derived_header_values() -> None:
    bucket = Policy("api", "token_bucket", rate=10, burst=50, key="header:X-API-Key")
    assert bucket.rate == 10.0 and isinstance(bucket.rate, float)
    assert bucket.key == ("header:x-api-key",)
    assert (bucket.quota, bucket.window_seconds) == (50, 5.0)
    window = Policy("ip", "fixed_window", limit=100, window=60, key=["ip", "path"])
    assert (window.quota, window.window_seconds, window.key) == (100, 60.0, ("ip", "path"))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "bad name"}, "policy name 'bad name'"),
        ({"algorithm": "leaky"}, "policy 'p': field 'algorithm': 'leaky' is not one of"),
        ({"rate": None}, "field 'rate': required by token_bucket"),
        ({"limit": 5}, "field 'limit': token_bucket does not take it"),
        ({"rate": 0}, "field 'rate': expected a number > 0"),
        ({"rate": math.inf}, "field 'rate': expected a number > 0"),
        ({"rate": True}, "field 'rate': expected a number > 0"),
        ({"burst": 0}, "field 'burst': expected an int >= 1"),
        ({"burst": 2.5}, "field 'burst': expected an int >= 1"),
        ({"cost": -1}, "field 'cost': expected an int >= 0"),
        ({"shadow": "yes"}, "field 'shadow': expected a bool"),
        ({"key": ()}, "field 'key': expected a non-empty list"),
        ({"key": ("cookie",)}, "field 'key': part 'cookie' is not one of"),
        ({"key": ("header:bad name",)}, "part 'header:bad name'"),
        ({"backend": "mysql://x"}, "field 'backend': expected 'memory' or a Redis URL"),
        ({"paths": ("api",)}, "field 'paths': expected a list of path prefixes"),
    ],
)
def test_bad_policies_name_the_policy_and_the_field(fields: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {"name": "p", "algorithm": "token_bucket", "rate": 1.0, "burst": 1}
    values.update(fields)
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(")):
        Policy(**values)


def test_windows_need_limit_and_window() -> None:
    with pytest.raises(InvalidInput, match="policy 'w': field 'window': required by fixed_window"):
        Policy("w", "fixed_window", limit=3)
    with pytest.raises(InvalidInput, match="field 'window': expected seconds > 0"):
        Policy("w", "sliding_window", limit=3, window=-1)


@pytest.mark.parametrize(
    ("text", "per_second"),
    [("10", 10.0), ("100/s", 100.0), ("600/1m", 10.0), ("5/250ms", 20.0), ("3600/h", 1.0)],
)
def test_rates(text: str, per_second: float) -> None:
    assert parse_rate(text) == pytest.approx(per_second)


@pytest.mark.parametrize("text", ["", "fast", "10/", "10/soon", "-1/s", "0/s", "1/0s", "nan"])
def test_bad_rates(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_rate(text)


def test_mappings_read_durations_and_rates_and_round_trip() -> None:
    policy = Policy.from_mapping(
        "api",
        {"algorithm": "sliding_window", "limit": 5, "window": "1m30s", "key": "ip", "cost": 2},
    )
    assert (policy.window, policy.key, policy.cost) == (90.0, ("ip",), 2)
    bucket = Policy.from_mapping("b", {"algorithm": "token_bucket", "rate": "600/1m", "burst": 3})
    assert bucket.rate == pytest.approx(10.0)
    for original in (policy, bucket):
        assert Policy.from_mapping(original.name, original.to_dict()) == original


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"algorithm": "token_bucket", "rate": 1, "burst": 1, "brust": 2}, "unknown field 'brust'"),
        ({"rate": 1, "burst": 1}, "field 'algorithm': required"),
        ({"algorithm": "fixed_window", "limit": 1, "window": "soon"}, "field 'window'"),
        ({"algorithm": "token_bucket", "rate": "lots", "burst": 1}, "field 'rate'"),
        ({"algorithm": "token_bucket", "rate": 1, "burst": 1, "key": 3}, "field 'key'"),
        ({"algorithm": "token_bucket", "rate": 1, "burst": 1, "name": "other"}, "field 'name'"),
    ],
)
def test_mapping_errors_say_where(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=f"body: .*policy 'p'.*{message}"):
        Policy.from_mapping("p", fields, where="body")


# ---------------------------------------------------------------- TOML files

GOOD = """
[ratelimit]
backend = "memory"

[ratelimit.policies.per-ip]
algorithm = "fixed_window"
limit = 100
window = "1m"

[ratelimit.policies.api]
algorithm = "token_bucket"
rate = "600/1m"
burst = 20
key = ["header:X-API-Key", "ip"]
cost = 2
shadow = true
paths = ["/api/"]
"""


def test_policies_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "rl.toml"
    path.write_text(GOOD)
    per_ip, api = load_policies(path)
    assert per_ip == Policy("per-ip", "fixed_window", limit=100, window=60.0)
    assert api == Policy(
        "api",
        "token_bucket",
        rate=10.0,
        burst=20,
        key=("header:x-api-key", "ip"),
        cost=2,
        shadow=True,
        paths=("/api/",),
    )
    redis = load_policies(path, backend="redis://127.0.0.1:6379/0")
    assert {p.backend for p in redis} == {"redis://127.0.0.1:6379/0"}


def test_a_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        load_policies(tmp_path / "nope.toml")


def test_toml_syntax_errors_point_at_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "rl.toml"
    path.write_text('[ratelimit.policies.a]\nalgorithm = "token_bucket"\nrate = = 3\n')
    with pytest.raises(ParseError) as caught:
        load_policies(path)
    assert caught.value.filename == str(path) and caught.value.line == 3
    assert "rate = = 3" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[other]\nx = 1\n", "no \\[ratelimit\\] table"),
        ("[ratelimit]\nbackend = 'memory'\n", "no policies"),
        ("[ratelimit]\npolicies = 3\n", "no policies"),
        ("[ratelimit]\nbackend = 3\n[ratelimit.policies.a]\n", "backend must be a string"),
        ("[ratelimit.policies]\na = 3\n", "policy 'a' must be a table"),
        (
            "[ratelimit.policies.a]\nalgorithm = 'token_bucket'\nrate = 1\nburst = 1\nbrust = 2\n",
            "policy 'a': unknown field 'brust' \\(did you mean 'burst'\\?\\)",
        ),
        (
            "[ratelimit.policies.a]\nalgorithm = 'fixed_window'\nlimit = 1.5\nwindow = 1\n",
            "policy 'a': field 'limit': expected an int >= 1, got 1.5",
        ),
        (
            "[ratelimit.policies.a]\nalgorithm = 'fixed_window'\nlimit = 1\nwindow = '1 minute'\n",
            "policy 'a': field 'window': '1 minute' is not a duration",
        ),
        (
            "[ratelimit.policies.a]\nalgorithm = 'token_bucket'\nrate = 1\nburst = 1\n"
            "backend = 'postgres://x'\n",
            "policy 'a': field 'backend'",
        ),
        (
            "[ratelimit.policies.'bad name']\nalgorithm = 'token_bucket'\nrate = 1\nburst = 1\n",
            "policy name 'bad name'",
        ),
    ],
)
def test_malformed_files_name_the_file_the_policy_and_the_field(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "rl.toml"
    path.write_text(text)
    with pytest.raises(InvalidInput, match=message) as caught:
        load_policies(path)
    assert str(path) in str(caught.value)


_VALUES = st.one_of(
    st.integers(-3, 200),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=12),
    st.sampled_from(["1m", "100/s", "ip", "header:X-Key", "redis://h", "memory", "/api"]),
    st.lists(st.sampled_from(["ip", "path", "header:X-A", "bogus", "/x"]), max_size=3),
)
_FIELD_NAMES = st.sampled_from(
    [
        *("algorithm", "rate", "burst", "limit", "window", "key", "cost", "shadow", "backend"),
        *("paths", "name", "extra", "Rate"),
    ]
)
_ALGORITHM = st.sampled_from(
    ["token_bucket", "sliding_window", "sliding_window_counter", "fixed_window", "x"]
)


@settings(max_examples=300, deadline=None)
@given(fields=st.dictionaries(_FIELD_NAMES, _VALUES, max_size=6), algorithm=_ALGORITHM)
def test_random_fields_give_a_policy_or_an_invalid_input(
    fields: dict[str, Any], algorithm: str
) -> None:
    fields = {"algorithm": algorithm, **fields}
    try:
        policy = Policy.from_mapping("fuzz", fields, where="fuzz.toml")
    except InvalidInput as error:
        assert str(error).startswith("fuzz.toml: ")
        return
    assert policy.quota >= 1 and 0 < policy.window_seconds < math.inf
    assert Policy.from_mapping("fuzz", policy.to_dict()) == policy


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cut=st.integers(0, len(GOOD)),
    removed=st.integers(0, 12),
    inserted=st.sampled_from(["", "=", "[", "]", '"', "'", "\n", "0", "-1", "true", "x", "\xff"]),
)
def test_mangled_files_raise_only_input_errors_naming_the_file(
    tmp_path: Path, cut: int, removed: int, inserted: str
) -> None:
    path = tmp_path / "fuzz.toml"
    text = GOOD[:cut] + inserted + GOOD[cut + removed :]
    path.write_bytes(text.encode("utf-8", "surrogateescape").replace(b"\xc3\xbf", b"\xff"))
    try:
        policies = load_policies(path)
    except InvalidInput as error:  # ParseError included
        assert str(path) in str(error)
        return
    assert all(isinstance(p, Policy) for p in policies)


# ---------------------------------------------------------------- PolicySet


def test_policies_are_bound_to_the_real_limiters() -> None:
    limits = PolicySet(
        [
            Policy("b", "token_bucket", rate=1, burst=2),
            Policy("s", "sliding_window", limit=2, window=1),
            Policy("c", "sliding_window_counter", limit=2, window=1),
            Policy("f", "fixed_window", limit=2, window=1),
        ]
    )
    kinds = {b.name: (type(b.limiter), b.limiter.algorithm) for b in limits.active}
    assert kinds == {
        "b": (TokenBucket, "token_bucket"),
        "s": (SlidingWindow, "sliding_window"),
        "c": (SlidingWindow, "sliding_window_counter"),
        "f": (FixedWindow, "fixed_window"),
    }
    assert limits.get("b").policy_item == b'"b";q=2;w=2'
    with pytest.raises(NotFound, match="no rate limit policy named 'x'"):
        limits.get("x")
    with pytest.raises(InvalidInput, match="two policies are named 'b'"):
        PolicySet([Policy("b", "token_bucket", rate=1, burst=2)] * 2)


def test_denials_are_audited_and_counted() -> None:
    clock = Clock()
    registry = MetricsRegistry()
    limits = PolicySet(
        [Policy("f", "fixed_window", limit=2, window=10)], metrics=registry, clock=clock
    )
    bound = limits.get("f")
    answers = [limits.decide_one(bound, "k").allowed for _ in range(3)]
    assert answers == [True, True, False]
    (entry,) = limits.audit.query()
    assert (entry.policy, entry.key, entry.decision, entry.remaining) == ("f", "k", "denied", 0)
    assert entry.retry_after == pytest.approx(10.0) and entry.shadow is False
    text = registry.exposition()
    assert 'trusswork_ratelimit_allowed_total{policy="f"} 2.0' in text
    assert 'trusswork_ratelimit_denied_total{policy="f"} 1.0' in text
    assert 'trusswork_ratelimit_decision_seconds_count{policy="f"} 3' in text


@pytest.mark.parametrize("costs", [(1, 1), (1, 2)], ids=["compiled-levels", "peek-then-acquire"])
def test_several_policies_are_all_or_nothing(costs: tuple[int, int]) -> None:
    clock = Clock()
    limits = PolicySet(
        [
            Policy("wide", "fixed_window", limit=100, window=60, cost=costs[0]),
            Policy("narrow", "fixed_window", limit=2, window=60, cost=costs[1]),
        ],
        clock=clock,
    )
    wide, narrow = limits.get("wide"), limits.get("narrow")
    asks = [(wide, "k", wide.cost), (narrow, "k", narrow.cost)]
    verdicts = [limits.decide(asks) for _ in range(4)]
    admitted = sum(v.allowed for v in verdicts)
    assert admitted == 2 // costs[1]
    denied = verdicts[-1]
    assert [b.name for b in denied.denied] == ["narrow"]
    assert denied.retry_after == pytest.approx(60.0)
    # the policy that allowed reports what it has now, since the request took nothing
    assert [d.remaining for _, d in denied.decisions] == [100 - admitted * costs[0], 0]
    # denied requests consumed nothing from the wide policy
    assert wide.limiter.peek("k", 0).remaining == 100 - admitted * costs[0]
    assert [e.policy for e in limits.audit.query()] == ["narrow"] * (4 - admitted)


def test_shadow_policies_decide_and_record_but_never_deny() -> None:
    clock = Clock()
    limits = PolicySet(
        [
            Policy("enforced", "fixed_window", limit=10, window=60),
            Policy("trial", "fixed_window", limit=1, window=60, shadow=True),
        ],
        clock=clock,
    )
    asks = [(b, "k", b.cost) for b in limits.active]
    verdicts = [limits.decide(asks) for _ in range(3)]
    assert all(v.allowed for v in verdicts)
    assert [d.allowed for _, d in verdicts[-1].shadow] == [False]
    entries = limits.audit.query()
    assert [(e.policy, e.shadow) for e in entries] == [("trial", True), ("trial", True)]
    assert limits.get("enforced").limiter.peek("k", 0).remaining == 7


def test_changes_are_audited_and_keep_state_when_the_limit_is_unchanged() -> None:
    clock = Clock()
    limits = PolicySet([Policy("p", "fixed_window", limit=3, window=60)], clock=clock)
    limits.decide_one(limits.get("p"), "k")
    assert limits.put(Policy("p", "fixed_window", limit=3, window=60, shadow=True)) == "updated"
    assert limits.get("p").limiter.peek("k", 0).remaining == 2  # same limiter, same state
    assert limits.single is None  # a lone shadow policy is not the short path
    limits.put(Policy("p", "fixed_window", limit=5, window=60))
    assert limits.get("p").limiter.peek("k", 0).remaining == 5  # new limit, new limiter
    assert limits.put(Policy("q", "token_bucket", rate=1, burst=1)) == "created"
    assert [p.name for p in limits.policies] == ["p", "q"]
    assert limits.delete("q").name == "q"
    with pytest.raises(NotFound):
        limits.delete("q")
    changes = limits.audit.query(decision="changed")
    assert [(e.policy, e.decision) for e in changes] == [
        ("q", "deleted"),
        ("q", "created"),
        ("p", "updated"),
        ("p", "updated"),
    ]
    assert changes[-1].detail is not None
    assert changes[-1].detail["old"]["shadow"] is False
    assert changes[-1].detail["new"]["shadow"] is True
    assert changes[0].detail == {"old": limits_q_dict(), "new": None}


def limits_q_dict() -> dict[str, Any]:
    return Policy("q", "token_bucket", rate=1, burst=1).to_dict()
