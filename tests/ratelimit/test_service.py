"""The limiter service over a real server: decisions, policy changes, audit, metrics, config."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers.http import running
from trusswork.core.errors import InvalidInput, NotFound, ParseError
from trusswork.core.metrics import MetricsRegistry
from trusswork.ratelimit._policy import Limiter, Policy, build_limiter
from trusswork.ratelimit._policyset import PolicySet
from trusswork.ratelimit._service import build_app, load_service_config


class Clock:
    """A settable clock for the limiters; starts on a multiple of every window used."""

    def __init__(self) -> None:
        self.now = 3600.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(clock: Clock) -> Iterator[tuple[httpx.Client, PolicySet]]:
    limits = PolicySet(
        [
            Policy("login", "fixed_window", limit=2, window=60),
            Policy("api", "token_bucket", rate=10, burst=5),
            Policy("trial", "sliding_window", limit=1, window=10, shadow=True),
        ],
        clock=clock,
        metrics=MetricsRegistry(),
    )
    with (
        running(build_app(limits)) as server,
        httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as client,
    ):
        yield client, limits


def test_acquire_until_denied(service: tuple[httpx.Client, PolicySet], clock: Clock) -> None:
    client, _ = service
    first = client.post("/v1/acquire", json={"key": "alice", "policy": "login"})
    assert first.status_code == 200
    assert first.json() == {
        "allowed": True,
        "decision": "allowed",
        "shadow": False,
        "remaining": 1,
        "retry_after": 0.0,
        "reset_after": 60.0,
        "limit": 2,
        "policy": "login",
    }
    assert first.headers["ratelimit-policy"] == '"login";q=2;w=60'
    assert first.headers["ratelimit"] == '"login";r=1;t=60'
    assert client.post("/v1/acquire", json={"key": "alice", "policy": "login"}).status_code == 200
    clock.now += 10
    denied = client.post("/v1/acquire", json={"key": "alice", "policy": "login"})
    assert denied.status_code == 429
    assert denied.headers["retry-after"] == "50"
    body = denied.json()
    assert (body["allowed"], body["decision"], body["remaining"]) == (False, "denied", 0)
    assert body["retry_after"] == pytest.approx(50.0)
    other = client.post("/v1/acquire", json={"key": 42, "policy": "login"})
    assert other.status_code == 200  # another key, its own window


def test_cost_and_a_cost_that_can_never_pass(service: tuple[httpx.Client, PolicySet]) -> None:
    client, _ = service
    heavy = client.post("/v1/acquire", json={"key": "k", "policy": "api", "cost": 4})
    assert heavy.status_code == 200 and heavy.json()["remaining"] == 1
    never = client.post("/v1/acquire", json={"key": "k", "policy": "api", "cost": 6})
    assert never.status_code == 429
    assert never.json()["retry_after"] is None and "retry-after" not in never.headers
    look = client.post("/v1/acquire", json={"key": "k", "policy": "api", "cost": 0})
    assert look.status_code == 200 and look.json()["remaining"] == 1


def test_shadow_policies_answer_allowed_with_their_real_decision(
    service: tuple[httpx.Client, PolicySet],
) -> None:
    client, limits = service
    answers = [client.post("/v1/acquire", json={"key": "k", "policy": "trial"}) for _ in range(2)]
    assert [a.status_code for a in answers] == [200, 200]
    assert [(a.json()["allowed"], a.json()["decision"]) for a in answers] == [
        (True, "allowed"),
        (True, "denied"),
    ]
    assert all(a.json()["shadow"] for a in answers)
    assert "ratelimit" not in answers[1].headers
    (entry,) = limits.audit.query(policy="trial")
    assert entry.shadow and entry.key == "k"


def test_a_list_of_policies_is_all_or_nothing(service: tuple[httpx.Client, PolicySet]) -> None:
    client, limits = service
    both = {"key": "bob", "policy": ["api", "login"]}
    first = client.post("/v1/acquire", json=both)
    assert first.status_code == 200
    assert first.headers["ratelimit"] == '"api";r=4;t=1, "login";r=1;t=60'
    assert [d["policy"] for d in first.json()["decisions"]] == ["api", "login"]
    assert first.json()["policy"] == "login"  # the least remaining
    client.post("/v1/acquire", json=both)
    denied = client.post("/v1/acquire", json=both)
    assert denied.status_code == 429 and denied.json()["policy"] == "login"
    assert limits.get("api").limiter.peek("bob", 0).remaining == 3  # the denial took none


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        (b"{nope", 400, "not valid JSON"),
        (b"[1]", 400, "must be a JSON object"),
        (b'{"policy": "login"}', 400, "'key' must be a string or an integer"),
        (b'{"key": true, "policy": "login"}', 400, "'key' must be"),
        (b'{"key": "k", "policy": "login", "cost": -1}', 400, "'cost' must be an integer >= 0"),
        (b'{"key": "k", "policy": "login", "cost": "2"}', 400, "'cost' must be"),
        (b'{"key": "k", "policy": "login", "cost": 1.5}', 400, "'cost' must be"),
        (b'{"key": "k", "policy": 3}', 400, "'policy' must be a policy name"),
        (b'{"key": "k", "policy": []}', 400, "'policy' must be"),
        (b'{"key": "k", "policy": ["api", "api"]}', 400, "distinct names"),
        (b'{"key": "k", "policy": "login", "extra": 1}', 400, "unknown field(s) ['extra']"),
        (b'{"key": "k", "policy": "nope"}', 404, "no rate limit policy named 'nope'"),
        (b'{"key": "k", "policy": ["api", "nope"]}', 404, "'nope'"),
    ],
)
def test_bad_requests_are_problems(
    service: tuple[httpx.Client, PolicySet], body: bytes, status: int, detail: str
) -> None:
    client, limits = service
    response = client.post("/v1/acquire", content=body)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert detail in response.json()["detail"]
    assert limits.get("api").limiter.peek("k", 0).remaining == 5  # nothing was taken


def test_policies_are_listed_changed_and_audited(service: tuple[httpx.Client, PolicySet]) -> None:
    client, limits = service
    names = [p["name"] for p in client.get("/v1/policies").json()["policies"]]
    assert names == ["login", "api", "trial"]
    assert client.get("/v1/policies/api").json()["rate"] == 10.0
    assert client.get("/v1/policies/zzz").status_code == 404

    fields = {"algorithm": "fixed_window", "limit": 1, "window": "1m", "key": "header:X-Key"}
    created = client.put("/v1/policies/new", json=fields)
    assert created.status_code == 201 and created.json()["window"] == 60.0
    assert client.post("/v1/acquire", json={"key": "x", "policy": "new"}).status_code == 200
    assert client.post("/v1/acquire", json={"key": "x", "policy": "new"}).status_code == 429
    updated = client.put("/v1/policies/new", json={**fields, "limit": 5})
    assert updated.status_code == 200
    assert client.post("/v1/acquire", json={"key": "x", "policy": "new"}).status_code == 200

    bad = client.put("/v1/policies/new", json={**fields, "limit": 0})
    assert bad.status_code == 400
    assert "policy 'new': field 'limit'" in bad.json()["detail"]
    assert client.put("/v1/policies/bad%20name", json=fields).status_code == 400
    assert client.delete("/v1/policies/new").json()["limit"] == 5
    assert client.delete("/v1/policies/new").status_code == 404

    changes = client.get("/v1/audit", params={"decision": "changed"}).json()["entries"]
    assert [(c["policy"], c["decision"]) for c in changes] == [
        ("new", "deleted"),
        ("new", "updated"),
        ("new", "created"),
    ]
    assert changes[1]["detail"]["old"]["limit"] == 1
    assert changes[1]["detail"]["new"]["limit"] == 5
    assert len(limits) == 3


def test_audit_queries(service: tuple[httpx.Client, PolicySet]) -> None:
    client, _ = service
    for key in ("a", "a", "a", "b", "b", "b"):
        client.post("/v1/acquire", json={"key": key, "policy": "login"})
    entries = client.get("/v1/audit", params={"policy": "login"}).json()["entries"]
    assert [e["key"] for e in entries] == ["b", "a"]
    assert entries[0]["remaining"] == 0 and entries[0]["decision"] == "denied"
    only_a = client.get("/v1/audit", params={"key": "a", "limit": 5}).json()["entries"]
    assert [e["key"] for e in only_a] == ["a"]
    assert client.get("/v1/audit", params={"limit": 1}).json()["entries"][0]["key"] == "b"
    newest = entries[0]["time"]
    later = client.get("/v1/audit", params={"since": newest}).json()["entries"]
    assert [e["key"] for e in later] == ["b"]
    assert client.get("/v1/audit", params={"until": newest}).json()["entries"][0]["key"] == "a"
    for params in ({"limit": "x"}, {"since": "yesterday"}, {"decision": "meh"}, {"who": "me"}):
        assert client.get("/v1/audit", params=params).status_code == 400


def test_metrics_per_policy(service: tuple[httpx.Client, PolicySet]) -> None:
    client, _ = service
    for _ in range(3):
        client.post("/v1/acquire", json={"key": "m", "policy": "login"})
    client.post("/v1/acquire", json={"key": "m", "policy": "api"})
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    assert 'trusswork_ratelimit_allowed_total{policy="login"} 2.0' in text
    assert 'trusswork_ratelimit_denied_total{policy="login"} 1.0' in text
    assert 'trusswork_ratelimit_allowed_total{policy="api"} 1.0' in text
    assert 'trusswork_ratelimit_denied_total{policy="api"} 0.0' in text
    assert 'trusswork_ratelimit_decision_seconds_count{policy="login"} 3' in text
    assert 'trusswork_ratelimit_decision_seconds_bucket{policy="api",le="+Inf"} 1' in text


# ---------------------------------------------------------------- config files and serve()

CONFIG = """
[ratelimit]
backend = "memory"

[ratelimit.audit]
max_entries = 50
file = "logs/audit.jsonl"
max_bytes = 4096
backups = 1

[ratelimit.policies.login]
algorithm = "fixed_window"
limit = 1
window = "1h"
key = "header:X-User"
"""


def test_service_config_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "rl.toml"
    path.write_text(CONFIG)
    config = load_service_config(path)
    assert [p.name for p in config.policies] == ["login"]
    assert config.audit_file == tmp_path / "logs" / "audit.jsonl"
    assert (config.audit_max_entries, config.audit_max_bytes, config.audit_backups) == (
        50,
        4096,
        1,
    )


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        ("[ratelimit]\nport = 1\n", InvalidInput, "unknown key 'port'"),
        (CONFIG.replace("max_entries = 50", "max_entries = 0"), InvalidInput, "max_entries"),
        (CONFIG.replace("backups = 1", "backups = 'one'"), InvalidInput, "backups: expected"),
        (CONFIG.replace("backups = 1", "size = 1"), InvalidInput, "unknown key 'size'"),
        (CONFIG.replace('file = "logs/audit.jsonl"', "file = 3"), InvalidInput, "file"),
        (CONFIG.replace("[ratelimit.audit]", "[ratelimit.audit]]"), ParseError, "rl.toml:5:"),
    ],
)
def test_bad_service_configs(
    tmp_path: Path, text: str, error: type[Exception], message: str
) -> None:
    path = tmp_path / "rl.toml"
    path.write_text(text)
    with pytest.raises(error) as caught:
        load_service_config(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


def test_a_missing_config_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        load_service_config(tmp_path / "none.toml")


def test_serve_runs_the_service_from_a_config_file(tmp_path: Path) -> None:
    path = tmp_path / "rl.toml"
    path.write_text(CONFIG)
    program = textwrap.dedent(
        f"""
        import sys
        from trusswork.ratelimit._service import serve
        serve({str(path)!r}, "127.0.0.1", 0, on_listening=lambda port: print(port, flush=True))
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    with subprocess.Popen(
        [sys.executable, "-c", program], stdout=subprocess.PIPE, text=True, env=env
    ) as process:
        try:
            assert process.stdout is not None
            port = int(process.stdout.readline())
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                ask = {"key": "u1", "policy": "login"}
                assert client.post("/v1/acquire", json=ask).status_code == 200
                denied = client.post("/v1/acquire", json=ask)
                assert denied.status_code == 429
                assert 0 < int(denied.headers["retry-after"]) <= 3600
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=20) == 0
    lines = (tmp_path / "logs" / "audit.jsonl").read_text().splitlines()
    assert [json.loads(line)["key"] for line in lines] == ["u1"]


# ---------------------------------------------------------------- Redis


def test_two_services_share_a_redis_policy(
    redis_url: str, redis_prefix: str, redis_client: Any
) -> None:
    # redis_client is asked for its cleanup: it deletes the keys under redis_prefix.
    policy = Policy("shared", "fixed_window", limit=5, window=3600, backend=redis_url)

    def factory(p: Policy) -> Limiter:
        return build_limiter(p, redis_prefix=redis_prefix)

    with (
        PolicySet([policy], limiter_factory=factory, metrics=MetricsRegistry()) as one,
        PolicySet([policy], limiter_factory=factory, metrics=MetricsRegistry()) as two,
        running(build_app(one)) as first,
        running(build_app(two)) as second,
        httpx.Client() as client,
    ):
        statuses = []
        for index in range(8):
            port = (first, second)[index % 2].port
            answer = client.post(
                f"http://127.0.0.1:{port}/v1/acquire", json={"key": "k", "policy": "shared"}
            )
            statuses.append(answer.status_code)
        assert statuses == [200] * 5 + [429] * 3
        assert answer.headers["ratelimit-policy"] == '"shared";q=5;w=3600'
        assert int(answer.headers["retry-after"]) <= 3600
    assert [e.key for e in one.audit.query()] == ["k"]  # the 7th request went to one
    assert [e.key for e in two.audit.query()] == ["k", "k"]
