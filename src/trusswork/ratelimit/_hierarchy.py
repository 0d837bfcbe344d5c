"""Several in-process limits checked as one: global, per user, per route...

A request passes only if every level admits it; then it is charged in every
level, and a denied request is charged in none. The decision is taken in C
with every level's table locked (csrc/bucket ``tw_bucket_acquire_levels``),
so no other request can slip between the check and the charge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from trusswork.core.errors import InvalidInput
from trusswork.ratelimit._table import Decision, _Limiter, acquire_levels

__all__ = ["MAX_LEVELS", "Hierarchy", "LevelDecision", "NamedLevels"]

Key = str | bytes | int
L = TypeVar("L")

#: The most levels one request may be checked against (csrc/bucket locks them all).
MAX_LEVELS = 64


@dataclass(frozen=True, slots=True)
class LevelDecision:
    """The answer of a :class:`Hierarchy`.

    Attributes
    ----------
    allowed : bool
        True when every level admitted the request (it was charged in all).
    levels : dict of str to Decision
        Each level's own answer. When the request is denied, nothing was
        charged: a level that would have admitted it reports what it holds
        now (its ``remaining`` before this request).
    denied_by : tuple of str
        The levels that refused, in level order.
    """

    allowed: bool
    levels: dict[str, Decision]
    denied_by: tuple[str, ...]

    def __bool__(self) -> bool:
        return self.allowed

    @property
    def binding(self) -> tuple[str, Decision]:
        """The level that decides what a client sees: of the refusing levels the one
        to wait longest for, else the one with the fewest units left."""
        if self.denied_by:
            name = max(self.denied_by, key=lambda level: self.levels[level].retry_after)
        else:
            name = min(self.levels, key=lambda level: self.levels[level].remaining)
        return name, self.levels[name]

    @property
    def retry_after(self) -> float:
        """Seconds until the request could pass every level that refused it (0.0 if allowed)."""
        return max((self.levels[name].retry_after for name in self.denied_by), default=0.0)


class NamedLevels(Generic[L]):
    """Named levels of limiters, outermost first, and the keys given for them.

    The part :class:`Hierarchy` and ``RedisHierarchy`` share: checking the
    levels, looking one up by name and ordering the keys of a request.
    ``kind`` names the limiters accepted, for error messages.
    """

    def __init__(
        self,
        levels: Mapping[str, L] | Sequence[tuple[str, L]],
        accepts: type | tuple[type, ...],
        kind: str,
    ) -> None:
        pairs = list(levels.items()) if isinstance(levels, Mapping) else list(levels)
        if not 1 <= len(pairs) <= MAX_LEVELS:
            raise InvalidInput(f"between 1 and {MAX_LEVELS} levels are needed, not {len(pairs)}")
        names: list[str] = []
        for index, pair in enumerate(pairs):
            if not (isinstance(pair, tuple) and len(pair) == 2):
                raise InvalidInput(f"level {index}: expected (name, limiter), not {pair!r}")
            name, limiter = pair
            if not isinstance(name, str) or not name:
                raise InvalidInput(f"level {index}: the name must be a non-empty str")
            if name in names:
                raise InvalidInput(f"level {name!r} is given twice")
            if not isinstance(limiter, accepts):
                raise InvalidInput(f"level {name!r}: expected {kind}, not {type(limiter).__name__}")
            names.append(name)
        self._names = tuple(names)
        self._levels: tuple[L, ...] = tuple(limiter for _, limiter in pairs)

    @property
    def names(self) -> tuple[str, ...]:
        """The level names, outermost first."""
        return self._names

    def __getitem__(self, name: str) -> L:
        try:
            return self._levels[self._names.index(name)]
        except ValueError:
            raise InvalidInput(f"no level named {name!r} (levels: {list(self._names)})") from None

    def _ordered(self, keys: Mapping[str, Key] | Sequence[Key]) -> list[Key]:
        """One key per level, in level order, from a mapping by name or a sequence."""
        if isinstance(keys, Mapping):
            missing = [name for name in self._names if name not in keys]
            unknown = [name for name in keys if name not in self._names]
            if missing or unknown:
                raise InvalidInput(
                    f"keys must name every level exactly: missing {missing}, unknown {unknown}"
                )
            return [keys[name] for name in self._names]
        if isinstance(keys, (str, bytes)):
            raise InvalidInput("keys must be one key per level (a mapping or a sequence)")
        ordered = list(keys)
        if len(ordered) != len(self._names):
            raise InvalidInput(f"{len(ordered)} keys for {len(self._names)} levels")
        return ordered

    def _answer(self, allowed: bool, decisions: Sequence[Decision]) -> LevelDecision:
        levels = dict(zip(self._names, decisions, strict=True))
        denied = tuple(name for name, decision in levels.items() if not decision.allowed)
        return LevelDecision(allowed, levels, denied)

    def __repr__(self) -> str:
        inner = ", ".join(
            f"{name!r}: {limiter!r}"
            for name, limiter in zip(self._names, self._levels, strict=True)
        )
        return f"{type(self).__name__}({{{inner}}})"


class Hierarchy(NamedLevels[_Limiter]):
    """Named levels of in-process limits, every one of which must admit a request.

    Parameters
    ----------
    levels : mapping of str to limiter, or sequence of (str, limiter)
        :class:`TokenBucket`, :class:`SlidingWindow` or :class:`FixedWindow`
        instances, outermost first (e.g. ``{"global": ..., "user": ...,
        "route": ...}``).

    Examples
    --------
    >>> from trusswork.ratelimit import Hierarchy, TokenBucket, FixedWindow
    >>> limits = Hierarchy({"global": FixedWindow(1000, 1.0), "user": TokenBucket(5, 10)})
    >>> limits.acquire({"global": "all", "user": "alice"}).allowed
    True
    """

    def __init__(self, levels: Mapping[str, _Limiter] | Sequence[tuple[str, _Limiter]]) -> None:
        super().__init__(
            levels,
            _Limiter,
            "an in-process limiter (TokenBucket, SlidingWindow, FixedWindow)",
        )

    def _pairs(self, keys: Mapping[str, Key] | Sequence[Key]) -> list[tuple[_Limiter, Key]]:
        return list(zip(self._levels, self._ordered(keys), strict=True))

    def acquire(self, keys: Mapping[str, Key] | Sequence[Key], cost: int = 1) -> LevelDecision:
        """Decide one request of ``cost`` units: ``keys`` gives each level's key.

        Raises
        ------
        InvalidInput
            When ``keys`` does not give exactly one key per level, or for a bad
            key or cost.
        """
        return self._answer(*acquire_levels(self._pairs(keys), cost))

    def peek(self, keys: Mapping[str, Key] | Sequence[Key], cost: int = 1) -> LevelDecision:
        """The decision :meth:`acquire` would make now, recording nothing."""
        decisions = [limiter.peek(key, cost) for limiter, key in self._pairs(keys)]
        return self._answer(all(decisions), decisions)
