from typing import Any

import numpy as np
import numpy.typing as npt

FRAME: int

def encode(ts: npt.ArrayLike, values: npt.ArrayLike) -> bytes: ...
def decode(
    chunk: bytes | bytearray | memoryview,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]: ...
def decode_into(
    chunk: bytes | bytearray | memoryview,
    ts: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    offset: int = 0,
) -> int: ...
def sample_count(chunk: bytes | bytearray | memoryview) -> int: ...
def info(chunk: bytes | bytearray | memoryview) -> dict[str, Any]: ...
