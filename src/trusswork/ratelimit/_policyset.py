"""The policies a server enforces, bound to their limiters: :class:`PolicySet`.

A :class:`PolicySet` binds policies to limiters and is what the middleware
and the service decide with. It records denials and policy changes in an
:class:`~trusswork.ratelimit._audit.AuditLog` and, given a metrics
registry, per-policy ``allowed``/``denied`` counters and a decision-latency
histogram. Several policies on one request are all-or-nothing: a denied
request consumes from none of them. In-process limiters with one cost are
decided together by the compiled ``acquire_levels`` (atomic). Otherwise
(different costs, Redis backends) each policy is first asked with ``peek``,
which consumes nothing, and the request is admitted, with ``acquire`` on
each, only if all of them allow it: exact in one process on one event loop,
while against Redis another client may consume between the peek and the
acquire, and then the request is denied although the policies acquired
before the failing one have consumed (a Redis-side hierarchical acquire
would close that gap). On a denial the policies that would have allowed
report what they hold now (``peek`` at cost 0), since nothing was taken.

A missing header makes its key part empty, so requests without it share one
bucket rather than escaping the limit.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Self, cast

from trusswork.core.errors import InvalidInput, NotFound
from trusswork.core.metrics import Counter, Histogram, MetricsRegistry
from trusswork.ratelimit._audit import AuditLog
from trusswork.ratelimit._policy import DecisionLike, Key, Limiter, Policy, build_limiter
from trusswork.ratelimit._table import FixedWindow, SlidingWindow, TokenBucket, acquire_levels

__all__ = ["Bound", "PolicySet", "Verdict"]

_LIMITER_FIELDS: Final = ("algorithm", "rate", "burst", "limit", "window", "backend")
_LATENCY_BUCKETS: Final = (
    1e-6,
    5e-6,
    1e-5,
    5e-5,
    1e-4,
    5e-4,
    1e-3,
    5e-3,
    0.01,
    0.05,
    0.1,
    0.5,
    1.0,
)
_IN_PROCESS: Final = (TokenBucket, SlidingWindow, FixedWindow)


def _native_client(request: Any) -> str:
    client = request.client
    return client[0] if client else ""


def _asgi_client(scope: Mapping[str, Any]) -> str:
    client = scope.get("client")
    return client[0] if client else ""


def _asgi_header(name: bytes) -> Callable[[Mapping[str, Any]], bytes]:
    def header(scope: Mapping[str, Any]) -> bytes:
        for field, value in scope["headers"]:
            if field == name or field.lower() == name:
                return bytes(value)
        return b""

    return header


def _native_header(name: bytes) -> Callable[[Any], bytes]:
    def header(request: Any) -> bytes:
        value: bytes | None = request.header(name)
        return value or b""

    return header


def _join(getters: Sequence[Callable[[Any], Key]]) -> Callable[[Any], Key]:
    def key(request: Any) -> str:
        parts = [getter(request) for getter in getters]
        return "|".join(p.decode("latin-1") if isinstance(p, bytes) else str(p) for p in parts)

    return key


def _native_key(parts: tuple[str, ...]) -> Callable[[Any], Key]:
    """The key of a native :class:`~trusswork.http.HTTPRequest` (bytes for one header)."""
    getters: list[Callable[[Any], Key]] = []
    for part in parts:
        if part == "ip":
            getters.append(_native_client)
        elif part == "path":
            getters.append(lambda request: request.path)
        elif part == "method":
            getters.append(lambda request: request.method)
        elif part == "global":
            getters.append(lambda request: "*")
        else:
            getters.append(_native_header(part.partition(":")[2].encode("ascii")))
    return getters[0] if len(getters) == 1 else _join(getters)


def _asgi_key(parts: tuple[str, ...]) -> Callable[[Any], Key]:
    """The key of an ASGI HTTP ``scope``."""
    getters: list[Callable[[Any], Key]] = []
    for part in parts:
        if part == "ip":
            getters.append(_asgi_client)
        elif part == "path":
            getters.append(lambda scope: scope["path"])
        elif part == "method":
            getters.append(lambda scope: scope["method"])
        elif part == "global":
            getters.append(lambda scope: "*")
        else:
            getters.append(_asgi_header(part.partition(":")[2].encode("ascii")))
    return getters[0] if len(getters) == 1 else _join(getters)


def _ceil(seconds: float) -> int:
    return math.ceil(seconds) if seconds < math.inf else 0


class Bound:
    """A policy with its limiter, header bytes and metric series (read-only, shared)."""

    __slots__ = (
        "allowed",
        "asgi_key",
        "cost",
        "denied",
        "latency",
        "limiter",
        "name",
        "native_key",
        "paths",
        "policy",
        "policy_item",
        "shadow",
        "state_format",
    )

    def __init__(
        self,
        policy: Policy,
        limiter: Limiter,
        allowed: Counter | None,
        denied: Counter | None,
        latency: Histogram | None,
    ) -> None:
        self.policy = policy
        self.limiter = limiter
        self.name = policy.name
        self.cost = policy.cost
        self.shadow = policy.shadow
        self.paths = policy.paths
        window = max(1, math.ceil(policy.window_seconds))
        name = policy.name.encode()
        # the RateLimit-Policy item, and the format of the RateLimit item
        self.policy_item = b'"%s";q=%d;w=%d' % (name, policy.quota, window)
        self.state_format = b'"' + name + b'";r=%d;t=%d'
        self.native_key = _native_key(policy.key)
        self.asgi_key = _asgi_key(policy.key)
        self.allowed = allowed
        self.denied = denied
        self.latency = latency

    def state(self, decision: DecisionLike) -> bytes:
        """The RateLimit header item for ``decision``."""
        return self.state_format % (decision.remaining, _ceil(decision.reset_after))


def _in_process(enforced: list[tuple[Bound, Key, int]]) -> bool:
    """Whether the compiled all-or-nothing acquire can decide these (one cost, in-process)."""
    if len(enforced) < 2 or len({cost for _, _, cost in enforced}) != 1:
        return False
    return all(isinstance(bound.limiter, _IN_PROCESS) for bound, _, _ in enforced)


def _close(limiter: Limiter) -> None:
    close = getattr(limiter, "close", None)
    if close is not None:
        close()


class Verdict:
    """The outcome of deciding one request against the policies that apply to it.

    ``allowed`` is False only if an enforced (non-shadow) policy denied;
    ``decisions`` pairs each enforced policy with its decision (the
    ``peek`` answers when the request was denied before consuming);
    ``denied`` lists the enforced policies that said no; ``retry_after`` is
    the longest of their waits (``inf``: never); ``shadow`` pairs each
    shadow policy with its decision (which never denies the request).
    """

    __slots__ = ("allowed", "decisions", "denied", "retry_after", "shadow")

    def __init__(
        self,
        allowed: bool,
        decisions: list[tuple[Bound, DecisionLike]],
        denied: list[Bound],
        retry_after: float,
        shadow: list[tuple[Bound, DecisionLike]] | None = None,
    ) -> None:
        self.allowed = allowed
        self.decisions = decisions
        self.denied = denied
        self.retry_after = retry_after
        self.shadow = shadow if shadow is not None else []


class PolicySet:
    """The policies a server enforces, bound to limiters; changes are audited.

    Parameters
    ----------
    policies:
        The initial policies (names must be unique).
    audit:
        Where denials and policy changes are recorded (a fresh in-memory
        :class:`AuditLog` by default).
    metrics:
        A registry for ``trusswork_ratelimit_allowed_total``,
        ``trusswork_ratelimit_denied_total`` and
        ``trusswork_ratelimit_decision_seconds``, all labeled by ``policy``;
        ``None`` records none (the leanest request path; denials are still
        audited).
    clock:
        The clock in-process limiters read (seconds; ``None``: monotonic).
    limiter_factory:
        Makes a policy's limiter; :func:`build_limiter` by default.

    Raises
    ------
    InvalidInput
        If two policies share a name.
    """

    def __init__(
        self,
        policies: Iterable[Policy] = (),
        *,
        audit: AuditLog | None = None,
        metrics: MetricsRegistry | None = None,
        clock: Callable[[], float] | None = None,
        limiter_factory: Callable[[Policy], Limiter] | None = None,
    ) -> None:
        self.audit = audit if audit is not None else AuditLog()
        self.metrics = metrics

        def default_factory(policy: Policy) -> Limiter:
            return build_limiter(policy, clock=clock, registry=metrics)

        self._factory = limiter_factory or default_factory
        self._lock = threading.Lock()
        self._bound: dict[str, Bound] = {}
        if metrics is not None:
            self._allowed: Counter | None = metrics.counter(
                "trusswork_ratelimit_allowed", "Requests a policy allowed", labelnames=["policy"]
            )
            self._denied: Counter | None = metrics.counter(
                "trusswork_ratelimit_denied",
                "Requests a policy denied (shadow policies included)",
                labelnames=["policy"],
            )
            self._latency: Histogram | None = metrics.histogram(
                "trusswork_ratelimit_decision_seconds",
                "Seconds a policy's limiter took to decide",
                labelnames=["policy"],
                buckets=_LATENCY_BUCKETS,
            )
        else:
            self._allowed = self._denied = self._latency = None
        for policy in policies:
            if policy.name in self._bound:
                raise InvalidInput(f"two policies are named {policy.name!r}; names must be unique")
            self._bound[policy.name] = self._bind(policy, None)
        self.active: tuple[Bound, ...] = ()
        #: The only policy, when exactly one is active, enforced and on every path:
        #: the middleware's short path.
        self.single: Bound | None = None
        self._refresh()

    def _refresh(self) -> None:
        active = tuple(self._bound.values())
        only = active[0] if len(active) == 1 else None
        self.single = only if only is not None and not only.shadow and not only.paths else None
        self.active = active

    def _bind(self, policy: Policy, previous: Bound | None) -> Bound:
        same_limiter = previous is not None and all(
            getattr(previous.policy, f) == getattr(policy, f) for f in _LIMITER_FIELDS
        )
        limiter = previous.limiter if same_limiter and previous else self._factory(policy)
        label = policy.name
        return Bound(
            policy,
            limiter,
            self._allowed.labels(label) if self._allowed else None,
            self._denied.labels(label) if self._denied else None,
            self._latency.labels(label) if self._latency else None,
        )

    # ------------------------------------------------------------ the policies

    @property
    def policies(self) -> list[Policy]:
        """The current policies, in the order they were added."""
        return [bound.policy for bound in self.active]

    def __len__(self) -> int:
        return len(self.active)

    def __contains__(self, name: object) -> bool:
        return name in self._bound

    def get(self, name: str) -> Bound:
        """The bound policy ``name``.

        Raises
        ------
        NotFound
            If there is no such policy.
        """
        bound = self._bound.get(name)
        if bound is None:
            known = ", ".join(self._bound) or "none"
            raise NotFound(f"no rate limit policy named {name!r} (policies: {known})")
        return bound

    def put(self, policy: Policy) -> str:
        """Add or replace a policy; returns ``"created"`` or ``"updated"`` (audited).

        A replaced policy keeps its limiter (and so the state of every key)
        when its algorithm, parameters and backend are unchanged, for
        instance when only ``shadow``, ``cost`` or ``key`` changed;
        otherwise it starts from a new, empty limiter.
        """
        with self._lock:
            previous = self._bound.get(policy.name)
            bound = self._bind(policy, previous)
            self._bound[policy.name] = bound
            self._refresh()
        if previous is not None and previous.limiter is not bound.limiter:
            _close(previous.limiter)
        change = "created" if previous is None else "updated"
        self.audit.record_change(
            policy.name,
            change,
            old=None if previous is None else previous.policy.to_dict(),
            new=policy.to_dict(),
            shadow=policy.shadow,
        )
        return change

    def delete(self, name: str) -> Policy:
        """Remove policy ``name`` and return it (audited).

        Raises
        ------
        NotFound
            If there is no such policy.
        """
        with self._lock:
            bound = self.get(name)
            del self._bound[name]
            self._refresh()
        _close(bound.limiter)
        self.audit.record_change(
            name, "deleted", old=bound.policy.to_dict(), new=None, shadow=bound.policy.shadow
        )
        return bound.policy

    def close(self) -> None:
        """Close the limiters that hold connections (Redis); in-process ones need nothing."""
        for bound in self.active:
            _close(bound.limiter)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------ deciding

    def _ask(self, bound: Bound, key: Key, cost: int, *, peek: bool = False) -> DecisionLike:
        latency = bound.latency
        if latency is None:
            return bound.limiter.peek(key, cost) if peek else bound.limiter.acquire(key, cost)
        start = time.perf_counter()
        decision = bound.limiter.peek(key, cost) if peek else bound.limiter.acquire(key, cost)
        latency.observe(time.perf_counter() - start)
        return decision

    def count(self, bound: Bound, key: Key, decision: DecisionLike) -> None:
        """Record ``decision`` in the metrics, and in the audit log when it is a denial."""
        if decision.allowed:
            if bound.allowed is not None:
                bound.allowed.inc()
            return
        if bound.denied is not None:
            bound.denied.inc()
        self.audit.record_denial(
            bound.name,
            key,
            remaining=decision.remaining,
            retry_after=decision.retry_after,
            shadow=bound.shadow,
        )

    def decide_one(self, bound: Bound, key: Key, cost: int | None = None) -> DecisionLike:
        """Acquire ``cost`` (the policy's own by default) for ``key``; record the outcome."""
        decision = self._ask(bound, key, bound.cost if cost is None else cost)
        self.count(bound, key, decision)
        return decision

    def _acquire_levels(
        self, enforced: list[tuple[Bound, Key, int]]
    ) -> list[tuple[Bound, DecisionLike]]:
        levels = [(cast(Any, b.limiter), k) for b, k, _ in enforced]  # in-process, checked
        start = time.perf_counter()
        _, answers = acquire_levels(levels, enforced[0][2])
        elapsed = time.perf_counter() - start
        decisions: list[tuple[Bound, DecisionLike]] = []
        for (bound, key, _), decision in zip(enforced, answers, strict=True):
            if bound.latency is not None:
                bound.latency.observe(elapsed)
            if bound.allowed is not None and decision.allowed:
                bound.allowed.inc()
            if not decision.allowed:
                self.count(bound, key, decision)
            decisions.append((bound, decision))
        return decisions

    def decide(self, asks: list[tuple[Bound, Key, int]]) -> Verdict:
        """Decide one request against several policies: ``(bound, key, cost)`` each.

        Shadow policies acquire on their own and never deny; the enforced
        ones are all-or-nothing (see the module notes).
        """
        enforced: list[tuple[Bound, Key, int]] = []
        shadow: list[tuple[Bound, DecisionLike]] = []
        for ask in asks:
            if ask[0].shadow:
                shadow.append((ask[0], self.decide_one(*ask)))
            else:
                enforced.append(ask)
        decisions: list[tuple[Bound, DecisionLike]] = []
        if len(enforced) == 1:
            bound, key, cost = enforced[0]
            decisions.append((bound, self.decide_one(bound, key, cost)))
        elif _in_process(enforced):
            decisions = self._acquire_levels(enforced)
        elif enforced:
            peeks = [(b, self._ask(b, k, c, peek=True)) for b, k, c in enforced]
            if all(d.allowed for _, d in peeks):
                decisions = [(b, self.decide_one(b, k, c)) for b, k, c in enforced]
            else:
                decisions = peeks
                for (bound, key, _), (_, decision) in zip(enforced, peeks, strict=True):
                    if not decision.allowed:
                        self.count(bound, key, decision)
        denied = [b for b, d in decisions if not d.allowed]
        if denied:  # nothing was consumed: report what the others have now, not after
            decisions = [
                (b, d if not d.allowed else b.limiter.peek(k, 0))
                for (b, d), (_, k, _) in zip(decisions, enforced, strict=True)
            ]
        retry = max((d.retry_after for _, d in decisions if not d.allowed), default=0.0)
        return Verdict(not denied, decisions, denied, retry, shadow)
