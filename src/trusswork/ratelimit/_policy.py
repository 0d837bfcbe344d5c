"""Policies: which limiter, keyed by what, from code, TOML or JSON.

A :class:`Policy` is plain data: a name, an algorithm and its parameters
(``rate``/``burst`` for the token bucket, ``limit``/``window`` for the
windows), what the key is (``key``: parts among ``ip``, ``path``,
``method``, ``global`` and ``header:<Name>``, joined with ``|`` when there
are several), the cost of one request, the shadow flag (decide and record,
never block), the backend (``"memory"`` or a Redis URL) and optional path
prefixes it is limited to. Policies come from code, from a TOML file
(:func:`load_policies`) or from JSON (:meth:`Policy.from_mapping`); every
malformed value is an :class:`~trusswork.core.errors.InvalidInput` naming
the file, the policy and the field.

The :class:`~trusswork.ratelimit._policyset.PolicySet` that enforces them is in
:mod:`trusswork.ratelimit._policyset`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, Protocol, cast

from trusswork.core.config import parse_duration, read_toml
from trusswork.core.errors import InvalidInput, NotFound
from trusswork.core.metrics import MetricsRegistry
from trusswork.ratelimit._table import FixedWindow, SlidingWindow, TokenBucket

__all__ = [
    "ALGORITHMS",
    "DecisionLike",
    "Limiter",
    "Policy",
    "build_limiter",
    "load_policies",
    "parse_policies",
    "parse_rate",
]

ALGORITHMS: Final[Mapping[str, tuple[str, str]]] = {
    "token_bucket": ("rate", "burst"),
    "sliding_window": ("limit", "window"),
    "sliding_window_counter": ("limit", "window"),
    "fixed_window": ("limit", "window"),
}
"""The algorithms a policy may name, with the two parameters each takes."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_SIMPLE_PARTS: Final = frozenset({"ip", "path", "method", "global"})
_FIELDS: Final = (
    "algorithm",
    "rate",
    "burst",
    "limit",
    "window",
    "key",
    "cost",
    "shadow",
    "backend",
    "paths",
)
Key = str | bytes | int


class DecisionLike(Protocol):
    """What a limiter answers (:class:`trusswork.ratelimit.Decision` is one)."""

    @property
    def allowed(self) -> bool: ...
    @property
    def remaining(self) -> int: ...
    @property
    def retry_after(self) -> float: ...
    @property
    def reset_after(self) -> float: ...
    @property
    def limit(self) -> int: ...


class Limiter(Protocol):
    """What policies need of a limiter: the in-process classes and ``RedisLimiter``."""

    @property
    def algorithm(self) -> str: ...
    @property
    def limit(self) -> int: ...
    @property
    def window(self) -> float: ...
    def acquire(self, key: Key, cost: int = 1) -> DecisionLike: ...
    def peek(self, key: Key, cost: int = 1) -> DecisionLike: ...


def _where(name: str, field: str) -> str:
    return f"policy {name!r}: field {field!r}"


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_rate(text: str) -> float:
    """Tokens per second in ``"100/s"``, ``"600/1m"``, ``"5/250ms"`` or ``"2.5"``.

    Raises
    ------
    InvalidInput
        If ``text`` is not such a rate.
    """
    count, slash, per = text.partition("/")
    try:
        amount = float(count)
        if not slash:
            seconds = 1.0
        else:
            per = per.strip()
            if not per:
                raise ValueError(text)
            seconds = parse_duration(per if per[:1].isdigit() or per[:1] == "." else "1" + per)
    except (InvalidInput, ValueError):
        raise InvalidInput(
            f"{text!r} is not a rate: use a number per second or 'N/duration' "
            "such as '100/s', '600/1m' or '5/250ms'"
        ) from None
    if not (amount > 0 and seconds > 0 and math.isfinite(amount / seconds)):
        raise InvalidInput(f"rate {text!r} must be a positive, finite number per time")
    return amount / seconds


@dataclasses.dataclass(frozen=True, slots=True)
class Policy:
    """A named rate limit: algorithm, parameters, key, cost, shadow flag, backend.

    Parameters
    ----------
    name:
        Letters, digits, ``_``, ``.`` and ``-`` (up to 64; it appears in
        headers, URLs and metric labels).
    algorithm:
        ``token_bucket``, ``sliding_window`` (exact log),
        ``sliding_window_counter`` (approximate) or ``fixed_window``.
    rate, burst:
        Token bucket: tokens per second and capacity.
    limit, window:
        Windows: requests per ``window`` seconds.
    key:
        What is limited: parts among ``ip``, ``path``, ``method``,
        ``global`` (one key for everything) and ``header:<Name>``.
    cost:
        Units one request takes (>= 0).
    shadow:
        Decide and record denials, but never block.
    backend:
        ``"memory"`` (in-process) or a Redis URL (``redis://``,
        ``rediss://``, ``unix://``).
    paths:
        Path prefixes the policy applies to; empty means every path.

    Raises
    ------
    InvalidInput
        For a bad name, an unknown algorithm, a missing or extra parameter,
        or a value out of range; the message names the policy and field.
    """

    name: str
    algorithm: str
    rate: float | None = None
    burst: int | None = None
    limit: int | None = None
    window: float | None = None
    key: tuple[str, ...] = ("ip",)
    cost: int = 1
    shadow: bool = False
    backend: str = "memory"
    paths: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        name = self.name
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise InvalidInput(
                f"policy name {name!r} must be 1-64 letters, digits, '_', '.' or '-' "
                "(not starting with a punctuation mark)"
            )
        params = ALGORITHMS.get(self.algorithm) if isinstance(self.algorithm, str) else None
        if params is None:
            raise InvalidInput(
                f"{_where(name, 'algorithm')}: {self.algorithm!r} is not one of "
                f"{', '.join(ALGORITHMS)}"
            )
        for other in ("rate", "burst", "limit", "window"):
            value = getattr(self, other)
            if other in params and value is None:
                raise InvalidInput(f"{_where(name, other)}: required by {self.algorithm}")
            if other not in params and value is not None:
                raise InvalidInput(
                    f"{_where(name, other)}: {self.algorithm} does not take it "
                    f"(it takes {' and '.join(params)})"
                )
        if self.rate is not None:
            if not (_is_number(self.rate) and 0 < self.rate < math.inf):
                raise InvalidInput(
                    f"{_where(name, 'rate')}: expected a number > 0, got {self.rate!r}"
                )
            object.__setattr__(self, "rate", float(self.rate))
        if self.window is not None:
            if not (_is_number(self.window) and 0 < self.window < math.inf):
                raise InvalidInput(
                    f"{_where(name, 'window')}: expected seconds > 0, got {self.window!r}"
                )
            object.__setattr__(self, "window", float(self.window))
        for field in ("burst", "limit"):
            value = getattr(self, field)
            if value is not None and not (_is_int(value) and value >= 1):
                raise InvalidInput(f"{_where(name, field)}: expected an int >= 1, got {value!r}")
        if not (_is_int(self.cost) and self.cost >= 0):
            raise InvalidInput(f"{_where(name, 'cost')}: expected an int >= 0, got {self.cost!r}")
        if not isinstance(self.shadow, bool):
            raise InvalidInput(f"{_where(name, 'shadow')}: expected a bool, got {self.shadow!r}")
        object.__setattr__(self, "key", _check_key(name, self.key))
        object.__setattr__(self, "backend", _check_backend(name, self.backend))
        object.__setattr__(self, "paths", _check_paths(name, self.paths))

    @property
    def quota(self) -> int:
        """The ``q`` of the RateLimit-Policy header: burst or limit."""
        return self.burst if self.burst is not None else self.limit  # type: ignore[return-value]

    @property
    def window_seconds(self) -> float:
        """The ``w`` of the header: the window, or burst / rate for the token bucket."""
        if self.window is not None:
            return self.window
        return self.burst / self.rate  # type: ignore[operator]

    @classmethod
    def from_mapping(cls, name: str, fields: Mapping[str, Any], *, where: str = "") -> Policy:
        """A policy from TOML or JSON fields (``rate`` may be ``"100/1m"``, ``window`` ``"1m"``).

        ``where`` (a file name, say) starts every error message.

        Raises
        ------
        InvalidInput
            For an unknown field or a bad value; the message says where.
        """
        prefix = f"{where}: " if where else ""
        if not isinstance(fields, Mapping):
            raise InvalidInput(f"{prefix}policy {name!r} must be a table of fields, not {fields!r}")
        values: dict[str, Any] = {}
        for field, value in fields.items():
            if field == "name":
                if value != name:
                    raise InvalidInput(
                        f"{prefix}policy {name!r}: field 'name' says {value!r}; they must agree"
                    )
                continue
            if field not in _FIELDS:
                import difflib

                close = difflib.get_close_matches(str(field), _FIELDS, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise InvalidInput(
                    f"{prefix}policy {name!r}: unknown field {field!r}{hint}; "
                    f"fields: {', '.join(_FIELDS)}"
                )
            try:
                values[field] = _convert(field, value)
            except InvalidInput as error:
                raise InvalidInput(f"{prefix}{_where(name, field)}: {error}") from None
        if "algorithm" not in values:
            raise InvalidInput(
                f"{prefix}{_where(name, 'algorithm')}: required ({', '.join(ALGORITHMS)})"
            )
        try:
            return cls(name=name, **values)
        except InvalidInput as error:
            raise InvalidInput(f"{prefix}{error}") from None

    def to_dict(self) -> dict[str, Any]:
        """The policy as JSON-ready fields; :meth:`from_mapping` reads it back."""
        out: dict[str, Any] = {"name": self.name, "algorithm": self.algorithm}
        for field in ALGORITHMS[self.algorithm]:
            out[field] = getattr(self, field)
        out.update(
            key=list(self.key),
            cost=self.cost,
            shadow=self.shadow,
            backend=self.backend,
            paths=list(self.paths),
        )
        return out


def _convert(field: str, value: Any) -> Any:
    """TOML/JSON spelling -> the Policy field's type (ranges are checked by Policy)."""
    if field == "rate" and isinstance(value, str):
        return parse_rate(value)
    if field == "window" and isinstance(value, str):
        return parse_duration(value)
    if field in ("key", "paths"):
        if isinstance(value, str):
            return (value,)
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise InvalidInput(f"expected a string or a list of strings, got {value!r}")
    return value


def _check_key(name: str, key: object) -> tuple[str, ...]:
    parts = (key,) if isinstance(key, str) else key
    if not isinstance(parts, tuple | list) or not parts:
        raise InvalidInput(
            f"{_where(name, 'key')}: expected a non-empty list of parts, got {key!r}"
        )
    out = []
    for part in parts:
        if not isinstance(part, str):
            raise InvalidInput(f"{_where(name, 'key')}: part {part!r} is not a string")
        if part in _SIMPLE_PARTS:
            out.append(part)
            continue
        kind, colon, header = part.partition(":")
        if kind.strip().lower() == "header" and colon and _TOKEN.fullmatch(header.strip()):
            out.append("header:" + header.strip().lower())
            continue
        raise InvalidInput(
            f"{_where(name, 'key')}: part {part!r} is not one of ip, path, method, global "
            "or header:<Name>"
        )
    return tuple(out)


def _check_backend(name: str, backend: object) -> str:
    if backend == "memory":
        return "memory"
    if isinstance(backend, str) and backend.startswith(("redis://", "rediss://", "unix://")):
        return backend
    raise InvalidInput(
        f"{_where(name, 'backend')}: expected 'memory' or a Redis URL "
        f"(redis://, rediss://, unix://), got {backend!r}"
    )


def _check_paths(name: str, paths: object) -> tuple[str, ...]:
    items = (paths,) if isinstance(paths, str) else paths
    if not isinstance(items, tuple | list) or not all(
        isinstance(p, str) and p.startswith("/") for p in items
    ):
        raise InvalidInput(
            f"{_where(name, 'paths')}: expected a list of path prefixes starting with '/', "
            f"got {paths!r}"
        )
    return tuple(items)


def parse_policies(table: Mapping[str, Any], *, where: str = "") -> list[Policy]:
    """Policies from a mapping of name -> fields (the ``[ratelimit.policies]`` table).

    ``where`` (a file name) starts every error message.

    Raises
    ------
    InvalidInput
        If ``table`` is not such a mapping or a policy is malformed.
    """
    prefix = f"{where}: " if where else ""
    if not isinstance(table, Mapping):
        raise InvalidInput(f"{prefix}policies must be a table of named policies, not {table!r}")
    return [Policy.from_mapping(str(name), fields, where=where) for name, fields in table.items()]


def load_policies(path: str | os.PathLike[str], *, backend: str | None = None) -> list[Policy]:
    """The policies of the ``[ratelimit.policies.<name>]`` tables of a TOML file.

    ``[ratelimit] backend = ...`` (or the ``backend`` argument, which wins)
    is the backend of policies that name none.

    Raises
    ------
    NotFound
        If the file does not exist.
    ParseError
        If it is not valid TOML (file, line, column and caret shown).
    InvalidInput
        If ``[ratelimit]`` or its policies are missing or malformed.
    """
    document = read_config(path)
    return _policies_of(document, Path(path), backend)


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``[ratelimit]`` table of a TOML file (NotFound, ParseError, InvalidInput)."""
    file = Path(path)
    if not file.is_file():
        raise NotFound(f"rate limit config file {str(file)!r} does not exist")
    section = read_toml(file).get("ratelimit")
    if not isinstance(section, dict):
        raise InvalidInput(
            f"{file}: no [ratelimit] table (policies go in [ratelimit.policies.NAME])"
        )
    return section


def _policies_of(section: Mapping[str, Any], file: Path, backend: str | None) -> list[Policy]:
    where = f"{file} [ratelimit.policies]"
    default = backend if backend is not None else section.get("backend", "memory")
    if not isinstance(default, str):
        raise InvalidInput(f"{file} [ratelimit]: backend must be a string, got {default!r}")
    table = section.get("policies")
    if not isinstance(table, dict) or not table:
        raise InvalidInput(f"{where}: no policies; add at least one [ratelimit.policies.NAME]")
    for name, fields in table.items():
        if isinstance(fields, dict) and "backend" not in fields:
            table[name] = {**fields, "backend": default}
    return parse_policies(table, where=where)


def build_limiter(
    policy: Policy,
    *,
    clock: Callable[[], float] | None = None,
    redis_prefix: str = "trusswork:rl",
    registry: MetricsRegistry | None = None,
) -> Limiter:
    """A new limiter for ``policy`` on its backend.

    ``clock`` is the time of in-process limiters; a Redis limiter keeps its
    keys under ``<redis_prefix>:<policy name>``, reads Redis ``TIME`` and
    records its failure metrics in ``registry`` (the process-wide one by
    default), labeled with the policy name.
    """
    rate, burst = policy.rate or 0.0, policy.burst or 0  # Policy checked the pairs are set
    limit, window = policy.limit or 0, policy.window or 0.0
    if policy.backend == "memory":
        local: Limiter
        if policy.algorithm == "token_bucket":
            local = TokenBucket(rate, burst, clock=clock)
        elif policy.algorithm == "fixed_window":
            local = FixedWindow(limit, window, clock=clock)
        else:
            exact = policy.algorithm == "sliding_window"
            local = SlidingWindow(limit, window, exact=exact, clock=clock)
        return local
    from trusswork.ratelimit._redis import RedisLimiter

    common: dict[str, Any] = {"prefix": f"{redis_prefix}:{policy.name}", "name": policy.name}
    if registry is not None:
        common["registry"] = registry
    limiter: Limiter
    if policy.algorithm == "token_bucket":
        limiter = RedisLimiter(policy.backend, rate=rate, burst=burst, **common)
    else:
        limiter = RedisLimiter(
            policy.backend,
            algorithm=cast(Any, policy.algorithm),  # one of the window names, checked
            limit=limit,
            window_seconds=window,
            **common,
        )
    return limiter
