"""The middleware over real servers: trusswork.http's native App and Starlette (ASGI)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from helpers.http import running
from trusswork.core.metrics import MetricsRegistry
from trusswork.http import App, HTTPRequest, Response, StreamingResponse
from trusswork.ratelimit._middleware import RateLimitMiddleware, ratelimit_middleware
from trusswork.ratelimit._policy import Policy
from trusswork.ratelimit._policyset import PolicySet


class Clock:
    """A settable clock for the limiters; starts on a multiple of every window used."""

    def __init__(self) -> None:
        self.now = 3600.0

    def __call__(self) -> float:
        return self.now


SHARED = Response(b"shared", media_type="text/plain")


def native_app(limits: PolicySet, metrics: MetricsRegistry | None = None) -> App:
    app = App(middleware=[ratelimit_middleware(limits)], metrics=metrics)
    app.route("GET", "/shared", lambda request: SHARED)
    app.route("GET", "/bytes", lambda request: b"raw")
    app.route("GET", "/text", lambda request: "text")

    @app.get("/json/{n:int}")
    async def json_handler(request: HTTPRequest, n: int) -> dict[str, int]:
        return {"n": n}

    @app.get("/api/thing")
    def api(request: HTTPRequest) -> Response:
        return Response(b"api")

    @app.get("/stream")
    async def stream(request: HTTPRequest) -> StreamingResponse:
        async def pieces() -> AsyncIterator[bytes]:
            yield b"a"
            yield b"b"

        return StreamingResponse(pieces(), media_type="text/plain")

    @app.get("/view")
    def view(request: HTTPRequest) -> memoryview:
        return memoryview(b"0123456789")[2:5]

    @app.get("/none")
    def nothing(request: HTTPRequest) -> None:
        return None

    return app


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def one_policy(clock: Clock) -> Iterator[tuple[httpx.Client, PolicySet]]:
    limits = PolicySet([Policy("default", "fixed_window", limit=3, window=60)], clock=clock)
    with (
        running(native_app(limits)) as server,
        httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as client,
    ):
        yield client, limits


def test_headers_on_allowed_responses_then_429_then_allowed_again(
    one_policy: tuple[httpx.Client, PolicySet], clock: Clock
) -> None:
    client, limits = one_policy
    for remaining in (2, 1, 0):
        response = client.get("/shared")
        assert response.status_code == 200 and response.text == "shared"
        assert response.headers["ratelimit-policy"] == '"default";q=3;w=60'
        assert response.headers["ratelimit"] == f'"default";r={remaining};t=60'
        assert response.headers["content-type"] == "text/plain"
    clock.now += 15
    denied = client.get("/shared")
    assert denied.status_code == 429
    assert denied.headers["retry-after"] == "45"
    assert denied.headers["ratelimit"] == '"default";r=0;t=45'
    assert denied.headers["content-type"] == "application/problem+json"
    problem = denied.json()
    assert problem["type"] == "https://trusswork.dev/errors/limit-exceeded"
    assert (problem["status"], problem["policy"], problem["retry_after"]) == (429, "default", 45)
    assert problem["title"] and "'default'" in problem["detail"]
    assert problem["instance"] == "/shared"
    (entry,) = limits.audit.query()
    assert (entry.policy, entry.key, entry.decision) == ("default", "127.0.0.1", "denied")
    clock.now += 45
    again = client.get("/shared")
    assert again.status_code == 200 and again.headers["ratelimit"] == '"default";r=2;t=60'
    # the shared, prebuilt response was not changed by the middleware
    assert SHARED.headers == [(b"content-type", b"text/plain")]


def test_every_kind_of_handler_result_gets_the_headers(
    one_policy: tuple[httpx.Client, PolicySet], clock: Clock
) -> None:
    client, _ = one_policy
    cases = [
        ("/bytes", 200, b"raw", "application/octet-stream"),
        ("/text", 200, b"text", "text/plain; charset=utf-8"),
        ("/json/7", 200, b'{"n":7}', "application/json"),
        ("/stream", 200, b"ab", "text/plain"),
        ("/view", 200, b"234", "application/octet-stream"),
    ]
    for path, status, body, kind in cases:
        clock.now += 60  # a fresh window for each
        response = client.get(path)
        assert (response.status_code, response.content) == (status, body)
        assert response.headers["content-type"] == kind
        assert response.headers["ratelimit"] == '"default";r=2;t=60'
    clock.now += 60
    empty = client.get("/none")
    assert empty.status_code == 204 and "ratelimit" in empty.headers


def test_an_async_handler_is_not_run_when_denied(clock: Clock) -> None:
    calls: list[int] = []
    limits = PolicySet([Policy("one", "token_bucket", rate=1, burst=1)], clock=clock)
    app = App(middleware=[ratelimit_middleware(limits)])

    @app.get("/work")
    async def work(request: HTTPRequest) -> dict[str, int]:
        calls.append(1)
        return {"done": len(calls)}

    with running(app) as server, httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as c:
        assert c.get("/work").json() == {"done": 1}
        denied = c.get("/work")
        assert denied.status_code == 429 and denied.headers["retry-after"] == "1"
        assert "'one' allows bursts of 1 and 1 per second" in denied.json()["detail"]
    assert calls == [1]


@pytest.mark.parametrize("asgi", [False, True], ids=["native", "asgi"])
def test_metrics_of_an_enforced_policy(clock: Clock, asgi: bool) -> None:
    registry = MetricsRegistry()
    limits = PolicySet(
        [Policy("m", "fixed_window", limit=2, window=60)], clock=clock, metrics=registry
    )
    app = starlette_app(limits) if asgi else native_app(limits)
    path = "/hello" if asgi else "/shared"
    with (
        running(app) as server,
        httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as client,
    ):
        statuses = [client.get(path).status_code for _ in range(5)]
    assert statuses == [200, 200, 429, 429, 429]
    text = registry.exposition()
    assert 'trusswork_ratelimit_allowed_total{policy="m"} 2.0' in text
    assert 'trusswork_ratelimit_denied_total{policy="m"} 3.0' in text
    assert 'trusswork_ratelimit_decision_seconds_count{policy="m"} 5' in text
    assert len(limits.audit.query(decision="denied")) == 3


def test_keys_from_a_header_are_separate_and_a_missing_header_shares_one(clock: Clock) -> None:
    limits = PolicySet(
        [Policy("keyed", "fixed_window", limit=1, window=60, key="header:X-API-Key")], clock=clock
    )
    with (
        running(native_app(limits)) as server,
        httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as client,
    ):
        for key in ("alice", "bob"):
            assert client.get("/shared", headers={"X-API-Key": key}).status_code == 200
        assert client.get("/shared", headers={"x-api-key": "alice"}).status_code == 429
        assert client.get("/shared").status_code == 200
        assert client.get("/shared").status_code == 429
    assert [e.key for e in limits.audit.query()] == ["", "alice"]


def test_several_policies_are_listed_and_all_must_allow(clock: Clock) -> None:
    limits = PolicySet(
        [
            Policy("per-ip", "fixed_window", limit=2, window=60),
            Policy("global", "sliding_window", limit=100, window=3600, key="global"),
            Policy("api", "token_bucket", rate=1, burst=5, paths=["/api/"]),
        ],
        clock=clock,
    )
    with (
        running(native_app(limits)) as server,
        httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as client,
    ):
        first = client.get("/shared")
        assert first.headers["ratelimit-policy"] == '"per-ip";q=2;w=60, "global";q=100;w=3600'
        assert first.headers["ratelimit"] == '"per-ip";r=1;t=60, "global";r=99;t=3600'
        api = client.get("/api/thing")
        assert api.headers["ratelimit-policy"].endswith(', "api";q=5;w=5')
        assert api.headers["ratelimit"] == (
            '"per-ip";r=0;t=60, "global";r=98;t=3600, "api";r=4;t=1'
        )
        denied = client.get("/shared")
        assert denied.status_code == 429 and denied.json()["policy"] == "per-ip"
        assert denied.headers["ratelimit"] == '"per-ip";r=0;t=60, "global";r=98;t=3600'
    # the denied request took nothing from the global limit
    assert limits.get("global").limiter.peek("*", 0).remaining == 98


def test_shadow_mode_never_blocks_adds_no_headers_and_records(clock: Clock) -> None:
    registry = MetricsRegistry()
    limits = PolicySet(
        [Policy("trial", "fixed_window", limit=1, window=60, shadow=True)],
        clock=clock,
        metrics=registry,
    )
    app = native_app(limits, metrics=registry)
    app.add_metrics_route()
    with (
        running(app) as server,
        httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as client,
    ):
        responses = [client.get("/shared") for _ in range(3)]
        assert [r.status_code for r in responses] == [200, 200, 200]
        assert all("ratelimit" not in r.headers for r in responses)
        metrics = client.get("/metrics").text  # limited too: every route is
    assert [(e.policy, e.shadow) for e in limits.audit.query()] == [("trial", True)] * 3
    assert 'trusswork_ratelimit_denied_total{policy="trial"} 3.0' in metrics
    assert 'trusswork_ratelimit_allowed_total{policy="trial"} 1.0' in metrics


def test_a_cost_over_the_quota_is_denied_without_retry_after(clock: Clock) -> None:
    limits = PolicySet([Policy("big", "token_bucket", rate=1, burst=2, cost=3)], clock=clock)
    with (
        running(native_app(limits)) as server,
        httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as client,
    ):
        denied = client.get("/shared")
    assert denied.status_code == 429 and "retry-after" not in denied.headers
    assert "can never pass" in denied.json()["detail"]
    assert "retry_after" not in denied.json()


def test_policy_changes_apply_to_the_next_request(clock: Clock) -> None:
    limits = PolicySet([Policy("p", "fixed_window", limit=1, window=60)], clock=clock)
    with (
        running(native_app(limits)) as server,
        httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as client,
    ):
        assert client.get("/shared").status_code == 200
        assert client.get("/shared").status_code == 429
        limits.put(Policy("p", "fixed_window", limit=1, window=60, shadow=True))
        assert client.get("/shared").status_code == 200
        limits.delete("p")
        plain = client.get("/shared")
    assert plain.status_code == 200 and "ratelimit" not in plain.headers


# ---------------------------------------------------------------- ASGI (Starlette)


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello", headers={"x-app": "1"})


def starlette_app(limits: PolicySet) -> Starlette:
    app = Starlette(routes=[Route("/hello", hello)])
    app.add_middleware(RateLimitMiddleware, policies=limits)
    return app


def test_asgi_middleware_on_starlette(clock: Clock) -> None:
    limits = PolicySet(
        [Policy("default", "fixed_window", limit=2, window=60, key=["ip", "header:X-User"])],
        clock=clock,
    )
    with (
        running(starlette_app(limits)) as server,
        httpx.Client(base_url=f"http://127.0.0.1:{server.port}") as client,
    ):
        first = client.get("/hello", headers={"X-User": "u1"})
        assert first.status_code == 200 and first.text == "hello"
        assert first.headers["x-app"] == "1"
        assert first.headers["ratelimit-policy"] == '"default";q=2;w=60'
        assert first.headers["ratelimit"] == '"default";r=1;t=60'
        assert client.get("/hello", headers={"X-User": "u1"}).status_code == 200
        clock.now += 20.5
        denied = client.get("/hello", headers={"X-User": "u1"})
        assert denied.status_code == 429
        assert denied.headers["retry-after"] == "40"
        assert denied.headers["ratelimit"] == '"default";r=0;t=40'
        assert denied.headers["content-type"] == "application/problem+json"
        assert denied.json()["policy"] == "default"
        assert client.get("/hello", headers={"X-User": "u2"}).status_code == 200
        clock.now += 40
        assert client.get("/hello", headers={"X-User": "u1"}).status_code == 200
    (entry,) = limits.audit.query()
    assert entry.key == "127.0.0.1|u1"


def run_asgi(app: Any, scope: dict[str, Any]) -> list[dict[str, Any]]:
    """Call an ASGI app once; the messages it sent."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def http_scope(path: str, client: tuple[str, int] | None = ("10.1.2.3", 5000)) -> dict[str, Any]:
    return {
        "type": "http",
        "method": "GET",
        "path": path,
        "headers": [(b"host", b"test")],
        "client": client,
    }


def test_asgi_middleware_takes_a_list_of_policies_and_passes_other_scopes() -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

    limited = RateLimitMiddleware(app, [Policy("p", "fixed_window", limit=1, window=3600)])
    start, body = run_asgi(limited, http_scope("/a"))
    assert start["status"] == 200 and body["body"] == b"ok"
    assert (b"ratelimit-policy", b'"p";q=1;w=3600') in start["headers"]
    start, body = run_asgi(limited, http_scope("/b"))
    assert start["status"] == 429 and b'"policy":"p"' in body["body"]
    headers = dict(start["headers"])
    assert headers[b"content-length"] == str(len(body["body"])).encode()
    # another client is another key; a scope without a client shares the "" key
    assert run_asgi(limited, http_scope("/c", ("10.9.9.9", 1)))[0]["status"] == 200
    assert run_asgi(limited, http_scope("/d", None))[0]["status"] == 200
    run_asgi(limited, {"type": "websocket", "path": "/ws", "headers": []})
    run_asgi(limited, {"type": "lifespan"})
    assert seen == ["http", "http", "http", "websocket", "lifespan"]
    assert [e.key for e in limited.policies.audit.query()] == ["10.1.2.3"]
