"""The standalone limiter service: an HTTP decision API for clients in any language.

``trusswork ratelimit serve`` runs :func:`serve`, which reads a TOML file
(:func:`load_service_config`) and serves :func:`build_app`:

================================  ==============================================================
``POST /v1/acquire``              ``{"key": ..., "policy": "name" or [names], "cost": n?}`` ->
                                  the decision (200 allowed, 429 denied, with RateLimit headers)
``GET /v1/policies``              every policy's fields
``GET /v1/policies/{name}``       one policy
``PUT /v1/policies/{name}``       create or replace a policy from JSON fields (audited)
``DELETE /v1/policies/{name}``    remove a policy (audited)
``GET /v1/audit``                 audit entries, newest first; query ``policy``, ``key``,
                                  ``decision``, ``since``, ``until`` (epoch seconds), ``limit``
``GET /metrics``                  Prometheus text: per-policy allowed, denied, decision latency
================================  ==============================================================

A decision is ``{"allowed", "decision", "shadow", "remaining", "retry_after",
"reset_after", "limit", "policy"}``; ``retry_after`` is ``null`` when the
cost exceeds the quota (it can never pass). A shadow policy answers
``"allowed": true`` with its real ``"decision"`` (and 200). With a list of
policies the request is all-or-nothing across the enforced ones, the
top-level fields come from the most restrictive enforced decision (the
first denial, else the least remaining) and ``"decisions"`` holds each.
Errors are RFC 9457 problems: 400 for bad JSON, a bad key or cost, 404
for an unknown policy. Policy changes made through the API live in memory;
the file stays the source on the next start. Decisions run on the event
loop: in-process limiters answer in well under a microsecond, and a Redis
policy holds the loop for one round trip per decision.

The config file::

    [ratelimit]
    backend = "memory"                 # or redis://host:6379/0, for policies naming none

    [ratelimit.audit]
    max_entries = 10000
    file = "ratelimit-audit.jsonl"     # optional; relative to this file
    max_bytes = 16777216
    backups = 3

    [ratelimit.policies.api]
    algorithm = "token_bucket"
    rate = "100/1m"
    burst = 20
    key = ["header:X-API-Key"]
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import orjson

from trusswork.core.errors import InvalidInput
from trusswork.core.metrics import MetricsRegistry
from trusswork.http import App, HTTPRequest, JSONResponse, Response
from trusswork.ratelimit._audit import AuditLog
from trusswork.ratelimit._middleware import RATELIMIT, RATELIMIT_POLICY, RETRY_AFTER
from trusswork.ratelimit._policy import (
    DecisionLike,
    Key,
    Limiter,
    Policy,
    _policies_of,
    read_config,
)
from trusswork.ratelimit._policyset import Bound, PolicySet

__all__ = ["ServiceConfig", "build_app", "load_service_config", "serve"]

_AUDIT_FIELDS = ("max_entries", "file", "max_bytes", "backups")
_SECTION_FIELDS = ("backend", "audit", "policies")


@dataclasses.dataclass(frozen=True, slots=True)
class ServiceConfig:
    """What a config file sets: the policies and the audit log's bounds."""

    policies: list[Policy]
    audit_max_entries: int = 10_000
    audit_file: Path | None = None
    audit_max_bytes: int = 16 << 20
    audit_backups: int = 3

    def audit_log(self) -> AuditLog:
        """A new :class:`AuditLog` with these bounds."""
        return AuditLog(
            self.audit_max_entries,
            path=self.audit_file,
            max_bytes=self.audit_max_bytes,
            backups=self.audit_backups,
        )


def load_service_config(
    path: str | os.PathLike[str], *, backend: str | None = None
) -> ServiceConfig:
    """Read the ``[ratelimit]`` table of a TOML file (see the module notes).

    Raises
    ------
    NotFound
        If the file does not exist.
    ParseError
        If it is not valid TOML.
    InvalidInput
        For unknown keys, malformed policies or audit settings (the message
        names the file, the table and the field).
    """
    file = Path(path)
    section = read_config(file)
    for key in section:
        if key not in _SECTION_FIELDS:
            raise InvalidInput(
                f"{file} [ratelimit]: unknown key {key!r}; keys: {', '.join(_SECTION_FIELDS)}"
            )
    policies = _policies_of(section, file, backend)
    audit = section.get("audit", {})
    where = f"{file} [ratelimit.audit]"
    if not isinstance(audit, dict):
        raise InvalidInput(f"{where}: must be a table, not {audit!r}")
    settings: dict[str, Any] = {}
    for key, value in audit.items():
        if key not in _AUDIT_FIELDS:
            raise InvalidInput(f"{where}: unknown key {key!r}; keys: {', '.join(_AUDIT_FIELDS)}")
        if key == "file":
            if not isinstance(value, str) or not value:
                raise InvalidInput(f"{where} file: expected a path, got {value!r}")
            target = Path(value)
            settings["audit_file"] = target if target.is_absolute() else file.parent / target
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInput(f"{where} {key}: expected an int, got {value!r}")
        settings[f"audit_{key}"] = value
    config = ServiceConfig(policies, **settings)
    try:  # AuditLog's own checks of the bounds (no file opened), reported against the file
        AuditLog(
            config.audit_max_entries,
            max_bytes=config.audit_max_bytes,
            backups=config.audit_backups,
        )
    except InvalidInput as error:
        raise InvalidInput(f"{where}: {error}") from None
    return config


# ---------------------------------------------------------------- the decision API


def _seconds(value: float) -> float | None:
    return value if value < math.inf else None


def _decision_json(bound: Bound, decision: DecisionLike) -> dict[str, Any]:
    return {
        "allowed": bool(decision.allowed) or bound.shadow,
        "decision": "allowed" if decision.allowed else "denied",
        "shadow": bound.shadow,
        "remaining": decision.remaining,
        "retry_after": _seconds(decision.retry_after),
        "reset_after": decision.reset_after,
        "limit": decision.limit,
        "policy": bound.name,
    }


def _parse_acquire(body: Any) -> tuple[Key, int | None, list[str]]:
    if not isinstance(body, dict):
        raise InvalidInput("the request body must be a JSON object with 'key' and 'policy'")
    unknown = sorted(set(body) - {"key", "cost", "policy"})
    if unknown:
        raise InvalidInput(f"unknown field(s) {unknown!r}; fields: key, cost, policy")
    key = body.get("key")
    if isinstance(key, bool) or not isinstance(key, str | int):
        raise InvalidInput(f"'key' must be a string or an integer, got {key!r}")
    cost = body.get("cost")
    if cost is not None and (isinstance(cost, bool) or not isinstance(cost, int) or cost < 0):
        raise InvalidInput(f"'cost' must be an integer >= 0, got {cost!r}")
    names = body.get("policy")
    if isinstance(names, str):
        names = [names]
    if (
        not isinstance(names, list)
        or not names
        or not all(isinstance(n, str) for n in names)
        or len(set(names)) != len(names)
    ):
        raise InvalidInput(
            "'policy' must be a policy name or a list of distinct names, "
            f"got {body.get('policy')!r}"
        )
    return key, cost, names


def _query(request: HTTPRequest) -> dict[str, Any]:
    raw = parse_qs(request.query_string, keep_blank_values=False)
    known = {"policy", "key", "decision", "since", "until", "limit"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise InvalidInput(
            f"unknown audit query parameter(s) {unknown!r}; use {', '.join(sorted(known))}"
        )
    out: dict[str, Any] = {name: values[-1] for name, values in raw.items()}
    for name, convert, what in (
        ("since", float, "a number"),
        ("until", float, "a number"),
        ("limit", int, "an integer"),
    ):
        if name in out:
            try:
                out[name] = convert(out[name])
            except ValueError:
                raise InvalidInput(f"audit query {name}={out[name]!r} is not {what}") from None
    return out


def build_app(
    policies: PolicySet | Iterable[Policy],
    *,
    audit: AuditLog | None = None,
    metrics: MetricsRegistry | None = None,
    clock: Callable[[], float] | None = None,
    limiter_factory: Callable[[Policy], Limiter] | None = None,
) -> App:
    """The decision API as a :class:`trusswork.http.App` (routes in the module notes).

    ``policies`` may be a :class:`PolicySet` (its audit log and metrics are
    used; the others must then be ``None``) or policies to bind here with
    ``audit``, ``metrics`` (a new registry by default), ``clock`` and
    ``limiter_factory``.
    """
    if isinstance(policies, PolicySet):
        if audit is not None or metrics is not None or clock or limiter_factory:
            raise InvalidInput("pass audit, metrics, clock and limiter_factory to the PolicySet")
        limits = policies
        registry = limits.metrics if limits.metrics is not None else MetricsRegistry()
    else:
        registry = metrics if metrics is not None else MetricsRegistry()
        limits = PolicySet(
            policies,
            audit=audit,
            metrics=registry,
            clock=clock,
            limiter_factory=limiter_factory,
        )
    app = App(metrics=registry)
    app.add_metrics_route()

    @app.post("/v1/acquire")
    def acquire(request: HTTPRequest) -> Response:
        key, cost, names = _parse_acquire(request.json())
        bounds = [limits.get(name) for name in names]
        if len(bounds) == 1:
            bound = bounds[0]
            decision = limits.decide_one(bound, key, cost)
            pairs = [] if bound.shadow else [(bound, decision)]
            body = _decision_json(bound, decision)
            allowed = body["allowed"]
            retry = decision.retry_after
        else:
            verdict = limits.decide([(b, key, b.cost if cost is None else cost) for b in bounds])
            pairs = verdict.decisions
            every = [*verdict.decisions, *verdict.shadow]
            denying = [(b, d) for b, d in verdict.decisions if not d.allowed]
            pool = verdict.decisions or verdict.shadow  # enforced ones speak first
            top = denying[0] if denying else min(pool, key=lambda pair: pair[1].remaining)
            body = _decision_json(*top)
            body["allowed"] = allowed = verdict.allowed
            body["decisions"] = [_decision_json(b, d) for b, d in every]
            retry = verdict.retry_after
        headers: list[tuple[bytes, bytes]] = [(b"content-type", b"application/json")]
        if pairs:
            headers.append((RATELIMIT_POLICY, b", ".join([b.policy_item for b, _ in pairs])))
            headers.append((RATELIMIT, b", ".join([b.state(d) for b, d in pairs])))
        if not allowed and retry < math.inf:
            headers.append((RETRY_AFTER, b"%d" % max(1, math.ceil(retry))))
        return Response(orjson.dumps(body), 200 if allowed else 429, headers)

    @app.get("/v1/policies")
    def list_policies(request: HTTPRequest) -> dict[str, Any]:
        return {"policies": [policy.to_dict() for policy in limits.policies]}

    @app.get("/v1/policies/{name}")
    def get_policy(request: HTTPRequest, name: str) -> dict[str, Any]:
        return limits.get(name).policy.to_dict()

    @app.put("/v1/policies/{name}")
    def put_policy(request: HTTPRequest, name: str) -> JSONResponse:
        policy = Policy.from_mapping(name, request.json(), where="request body")
        change = limits.put(policy)
        return JSONResponse(policy.to_dict(), status=201 if change == "created" else 200)

    @app.delete("/v1/policies/{name}")
    def delete_policy(request: HTTPRequest, name: str) -> dict[str, Any]:
        return limits.delete(name).to_dict()

    @app.get("/v1/audit")
    def audit_entries(request: HTTPRequest) -> dict[str, Any]:
        entries = limits.audit.query(**_query(request))
        return {"entries": [entry.to_dict() for entry in entries]}

    return app


def serve(
    config_path: str | os.PathLike[str],
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    backend: str | None = None,
    on_listening: Callable[[int], None] | None = None,
) -> None:
    """Serve the decision API for the policies in ``config_path`` until SIGTERM/SIGINT.

    One process: in-process (``memory``) limiters keep their state in it.
    ``backend`` overrides the file's default backend. ``on_listening`` gets
    the bound port (useful with ``port=0``).

    Raises
    ------
    NotFound, ParseError, InvalidInput
        From :func:`load_service_config`.
    """
    from trusswork.http import serve as http_serve

    config = load_service_config(config_path, backend=backend)
    with (
        config.audit_log() as audit,
        PolicySet(config.policies, audit=audit, metrics=MetricsRegistry()) as limits,
    ):
        http_serve(build_app(limits), host, port, on_listening=on_listening)
