from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

ALGORITHMS: Final[tuple[str, str, str, str]]
LOG_MAX: Final[int]

Key = str | bytes | int

class Decision:
    allowed: bool
    remaining: int
    retry_after: float
    reset_after: float
    limit: int
    def __init__(
        self, allowed: bool, remaining: int, retry_after: float, reset_after: float, limit: int
    ) -> None: ...
    def __bool__(self) -> bool: ...
    def as_dict(self) -> dict[str, Any]: ...

class Decisions:
    allowed: npt.NDArray[np.bool_]
    remaining: npt.NDArray[np.int64]
    retry_after: npt.NDArray[np.float64]
    reset_after: npt.NDArray[np.float64]
    limit: int
    def __init__(
        self,
        allowed: npt.NDArray[np.bool_],
        remaining: npt.NDArray[np.int64],
        retry_after: npt.NDArray[np.float64],
        reset_after: npt.NDArray[np.float64],
        limit: int,
    ) -> None: ...
    def __len__(self) -> int: ...
    def __getitem__(self, index: int) -> Decision: ...
    def __iter__(self) -> Iterator[Decision]: ...

class _Limiter:
    algorithm: str
    @property
    def limit(self) -> int: ...
    @property
    def window(self) -> float: ...
    @property
    def memory_bytes(self) -> int: ...
    def acquire(self, key: Key, cost: int = 1) -> Decision: ...
    def peek(self, key: Key, cost: int = 1) -> Decision: ...
    def acquire_many(
        self, keys: npt.ArrayLike | Iterable[Key], costs: int | npt.ArrayLike = 1
    ) -> Decisions: ...
    def reset(self, key: Key) -> bool: ...
    def sweep(self) -> int: ...
    def __len__(self) -> int: ...

class TokenBucket(_Limiter):
    rate: float
    burst: int
    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] | None = None
    ) -> None: ...

class SlidingWindow(_Limiter):
    exact: bool
    def __init__(
        self,
        limit: int,
        window_seconds: float,
        *,
        exact: bool = True,
        clock: Callable[[], float] | None = None,
    ) -> None: ...

class FixedWindow(_Limiter):
    def __init__(
        self, limit: int, window_seconds: float, *, clock: Callable[[], float] | None = None
    ) -> None: ...

def acquire_levels(
    levels: Sequence[tuple[_Limiter, Key]], cost: int = 1
) -> tuple[bool, list[Decision]]: ...
