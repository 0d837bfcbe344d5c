"""Rate limiting as HTTP middleware: for trusswork.http's native App and for any ASGI app.

Both decide each request against a :class:`~trusswork.ratelimit._policyset.PolicySet`
and answer in the shape of draft-ietf-httpapi-ratelimit-headers, on allowed
responses too::

    RateLimit-Policy: "default";q=100;w=60
    RateLimit: "default";r=50;t=30

``q`` is the quota (burst or limit), ``w`` the window in seconds, ``r`` the
units remaining and ``t`` the seconds until the key is back to full quota,
all integers (windows and waits rounded up). With several policies on a
request each is listed, comma-separated, and every one must allow it (see
:class:`~trusswork.ratelimit._policyset.PolicySet` for the all-or-nothing rule).
A denied request is not passed on: the answer is ``429`` with
``Retry-After`` (whole seconds, rounded up; absent when the request's cost
exceeds the quota and it can never pass) and an RFC 9457
``application/problem+json`` body naming the policy. Shadow policies decide
and record but never block and add no headers (clients see only what is
enforced).

The per-request path is short: with one enforced policy it is a key read,
one ``acquire``, and two header tuples whose policy half is made once when
the policy is bound. A native handler that is a plain function stays a
plain function (no task per request).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

import orjson

from trusswork.core.errors import LimitExceeded
from trusswork.core.metrics import MetricsRegistry
from trusswork.http import HTTPRequest, JSONResponse, Response
from trusswork.ratelimit._audit import AuditLog
from trusswork.ratelimit._policy import Key, Policy
from trusswork.ratelimit._policyset import Bound, PolicySet, Verdict

__all__ = ["RateLimitMiddleware", "evaluate", "problem", "ratelimit_middleware"]

RATELIMIT_POLICY = b"ratelimit-policy"
RATELIMIT = b"ratelimit"
RETRY_AFTER = b"retry-after"
_OCTET_STREAM = (b"content-type", b"application/octet-stream")
_PROBLEM_TYPE = (b"content-type", b"application/problem+json")

Headers = list[tuple[bytes, bytes]]
Handler = Callable[..., Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
_ceil = math.ceil


def _policy_set(
    policies: PolicySet | Iterable[Policy],
    audit: AuditLog | None,
    metrics: MetricsRegistry | None,
) -> PolicySet:
    if isinstance(policies, PolicySet):
        return policies
    return PolicySet(policies, audit=audit, metrics=metrics)


def evaluate(
    policies: PolicySet, request: Any, path: str, *, asgi: bool = False
) -> tuple[Headers, Verdict | None]:
    """Decide ``request`` (an HTTPRequest, or an ASGI scope with ``asgi``).

    Returns the RateLimit headers for the response and, when the request is
    denied, the :class:`Verdict` that denied it (``None`` when allowed).
    """
    single = policies.single
    if single is not None:  # the short path: no calls beyond the key and the limiter
        key = single.asgi_key(request) if asgi else single.native_key(request)
        if single.latency is None:  # no metrics: the limiter alone, denials audited
            decision = single.limiter.acquire(key, single.cost)
            if not decision.allowed:
                policies.count(single, key, decision)
        else:
            decision = policies.decide_one(single, key)
        state = single.state_format % (decision.remaining, _ceil(decision.reset_after))
        headers = [(RATELIMIT_POLICY, single.policy_item), (RATELIMIT, state)]
        if decision.allowed:
            return headers, None
        return headers, Verdict(False, [(single, decision)], [single], decision.retry_after)
    asks: list[tuple[Bound, Key, int]] = []
    for bound in policies.active:
        if bound.paths and not path.startswith(bound.paths):
            continue
        key = bound.asgi_key(request) if asgi else bound.native_key(request)
        asks.append((bound, key, bound.cost))
    if not asks:
        return [], None
    verdict = policies.decide(asks)
    if not verdict.decisions:  # only shadow policies applied
        return [], None
    headers = [
        (RATELIMIT_POLICY, b", ".join([b.policy_item for b, _ in verdict.decisions])),
        (RATELIMIT, b", ".join([b.state(d) for b, d in verdict.decisions])),
    ]
    return headers, None if verdict.allowed else verdict


def problem(verdict: Verdict, headers: Headers, instance: str) -> tuple[bytes, Headers]:
    """The 429 problem+json body and headers (RateLimit ones included) for ``verdict``."""
    first = verdict.denied[0]
    policy = first.policy
    retry = verdict.retry_after
    out = [*headers, _PROBLEM_TYPE]
    if policy.rate is not None:
        allows = f"bursts of {policy.burst} and {policy.rate:g} per second"
    else:
        allows = f"{policy.limit} per {policy.window:g} s"
    if retry < math.inf:
        seconds = max(1, math.ceil(retry))
        out.append((RETRY_AFTER, b"%d" % seconds))
        detail = f"rate limit policy {policy.name!r} allows {allows}; retry after {seconds} s"
        error = LimitExceeded(detail, retry_after=float(seconds))
    else:
        detail = (
            f"rate limit policy {policy.name!r} allows {allows}; "
            f"this request costs {first.cost}, more than that, and can never pass"
        )
        error = LimitExceeded(detail)
    body = error.to_problem(instance=instance)
    body["policy"] = first.name
    if len(verdict.denied) > 1:
        body["policies"] = [bound.name for bound in verdict.denied]
    if retry < math.inf:
        body["retry_after"] = max(1, math.ceil(retry))
    return orjson.dumps(body), out


# ---------------------------------------------------------------- native App


def _is_async(handler: Any) -> bool:
    if inspect.iscoroutinefunction(handler):
        return True
    call = getattr(handler, "__call__", None)  # noqa: B004 -- objects with an async __call__
    return call is not None and inspect.iscoroutinefunction(call)


def _with_headers(result: Any, headers: Headers) -> Any:
    """``result`` (anything a native handler returns) as a response carrying ``headers``."""
    kind = type(result)
    if kind is bytes:
        headers.append(_OCTET_STREAM)
        return Response(result, 200, headers)
    if kind is Response or kind is JSONResponse:
        # A new response: a handler may return one shared, prebuilt Response.
        return Response(result.body, result.status, result.headers + headers)
    if isinstance(result, Response):  # file, streaming, custom: made per request
        result.headers.extend(headers)
        return result
    if isinstance(result, dict | list):
        return JSONResponse(result, headers=headers)
    if isinstance(result, str):
        return Response(result.encode(), 200, headers, media_type="text/plain; charset=utf-8")
    if result is None:
        return Response(b"", 204, headers)
    if inspect.isawaitable(result):
        return _later(result, headers)
    try:
        memoryview(result)
    except TypeError:
        return result  # the App reports what the handler returned
    headers.append(_OCTET_STREAM)
    return Response(result, 200, headers)


async def _later(pending: Awaitable[Any], headers: Headers) -> Any:
    return _with_headers(await pending, headers)


def _denied(verdict: Verdict, headers: Headers, request: HTTPRequest) -> Response:
    body, out = problem(verdict, headers, request.path)
    return Response(body, 429, out)


def ratelimit_middleware(
    policies: PolicySet | Iterable[Policy],
    *,
    audit: AuditLog | None = None,
    metrics: MetricsRegistry | None = None,
) -> Callable[[Handler], Handler]:
    """A middleware for :class:`trusswork.http.App` enforcing ``policies``.

    Use as ``App(middleware=[ratelimit_middleware(policies)])``. ``audit`` and
    ``metrics`` are used when ``policies`` is a list of policies (a
    :class:`PolicySet` brings its own); pass the App's ``metrics`` to expose
    the per-policy counters at its ``/metrics``.
    """
    limits = _policy_set(policies, audit, metrics)

    def layer(handler: Handler) -> Handler:
        if _is_async(handler):

            async def limited_async(request: HTTPRequest, **params: Any) -> Any:
                headers, verdict = evaluate(limits, request, request.path)
                if verdict is not None:
                    return _denied(verdict, headers, request)
                result = await handler(request, **params)
                return _with_headers(result, headers) if headers else result

            return limited_async

        def limited(request: HTTPRequest, **params: Any) -> Any:
            # evaluate()'s short path without metrics, inlined: the per-request cost
            single = limits.single
            if single is not None and single.latency is None:
                key = single.native_key(request)
                decision = single.limiter.acquire(key, single.cost)
                state = single.state_format % (decision.remaining, _ceil(decision.reset_after))
                headers = [(RATELIMIT_POLICY, single.policy_item), (RATELIMIT, state)]
                if not decision.allowed:
                    limits.count(single, key, decision)
                    verdict = Verdict(False, [(single, decision)], [single], decision.retry_after)
                    return _denied(verdict, headers, request)
            else:
                headers, denial = evaluate(limits, request, request.path)
                if denial is not None:
                    return _denied(denial, headers, request)
                if not headers:
                    return handler(request, **params)
            result = handler(request, **params)
            if type(result) is Response:
                return Response(result.body, result.status, result.headers + headers)
            return _with_headers(result, headers)

        return limited

    return layer


# ---------------------------------------------------------------- ASGI


class RateLimitMiddleware:
    """ASGI middleware enforcing ``policies`` in front of ``app`` (any framework).

    Starlette: ``app.add_middleware(RateLimitMiddleware, policies=[...])``.
    Only ``http`` scopes are limited; websocket and lifespan pass through.
    The ``ip`` key part is the ASGI ``client`` host (the proxy's address
    behind a proxy: key on ``header:X-Forwarded-For`` there).
    """

    def __init__(
        self,
        app: Callable[[Scope, Receive, Send], Awaitable[None]],
        policies: PolicySet | Iterable[Policy],
        *,
        audit: AuditLog | None = None,
        metrics: MetricsRegistry | None = None,
    ) -> None:
        self.app = app
        self.policies = _policy_set(policies, audit, metrics)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers, verdict = evaluate(self.policies, scope, scope["path"], asgi=True)
        if verdict is not None:
            body, out = problem(verdict, headers, scope["path"])
            out.append((b"content-length", b"%d" % len(body)))
            await send({"type": "http.response.start", "status": 429, "headers": out})
            await send({"type": "http.response.body", "body": body})
            return
        if not headers:
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)
