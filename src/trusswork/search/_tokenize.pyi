from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

def tokenize(text: str | bytes) -> list[str]: ...
def tokenize_many(
    texts: Sequence[str | bytes],
) -> tuple[list[str], npt.NDArray[np.uint32], npt.NDArray[np.uint32]]: ...
def bm25_top_k(
    postings: Sequence[npt.ArrayLike],
    tfs: Sequence[npt.ArrayLike],
    idf: npt.ArrayLike,
    doc_lengths: npt.ArrayLike,
    avgdl: float,
    k: int,
    k1: float = 1.2,
    b: float = 0.75,
) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.float64]]: ...
def invert(
    texts: Sequence[str],
) -> tuple[
    bytes,
    npt.NDArray[np.uint64],
    bytes,
    npt.NDArray[np.uint64],
    npt.NDArray[np.uint64],
    npt.NDArray[np.uint32],
    npt.NDArray[np.uint32],
    npt.NDArray[np.uint64],
    npt.NDArray[np.uint32],
    npt.NDArray[np.uint32],
]: ...
def check_values(
    values: Sequence[str | None], *, what: str = "keyword value", allow_none: bool = True
) -> None: ...
def invert_values(
    values: Sequence[str | None], prefix: str
) -> tuple[bytes, npt.NDArray[np.uint64], npt.NDArray[np.uint64], npt.NDArray[np.uint32]]: ...
