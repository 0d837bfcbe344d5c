"""CRC-32C: the compiled kernel against the bitwise oracle, known vectors and peers."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import FUZZ, examples
from trusswork.core import _common, _reference, checksum
from trusswork.core.errors import InvalidInput

seeds = st.integers(min_value=0, max_value=2**32 - 1)

# Lengths that cross every block size the kernels cut buffers into: the
# three-stream loops (3 x 256 and 3 x 8192 bytes), the fused vector blocks,
# and 8-byte words, twice over plus a tail.
MAX_LENGTH = 3 * 8192 * 2 + 1000


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", 0x00000000),
        (b"a", 0xC1D04330),
        (b"123456789", 0xE3069283),
        # RFC 3720 (iSCSI), appendix B.4.
        (bytes(32), 0x8A9136AA),
        (b"\xff" * 32, 0x62A8AB43),
        (bytes(range(32)), 0x46DD794E),
        (bytes(range(31, -1, -1)), 0x113FDB5C),
    ],
)
def test_known_vectors(data: bytes, expected: int) -> None:
    assert checksum.crc32c(data) == expected
    assert _common.crc32c_software(data) == expected
    assert _reference.crc32c(data) == expected


@settings(max_examples=examples(300))
@given(data=st.binary(max_size=300), seed=seeds)
def test_matches_the_oracle(data: bytes, seed: int) -> None:
    assert checksum.crc32c(data, seed) == _reference.crc32c(data, seed)


def test_matches_the_oracle_on_a_long_buffer() -> None:
    data = random.Random(7).randbytes(MAX_LENGTH if FUZZ else 20_000)
    assert checksum.crc32c(data) == _reference.crc32c(data)


@settings(max_examples=examples(200))
@given(a=st.binary(max_size=2000), b=st.binary(max_size=2000), seed=seeds)
def test_seed_continues_a_checksum(a: bytes, b: bytes, seed: int) -> None:
    assert checksum.crc32c(b, checksum.crc32c(a, seed)) == checksum.crc32c(a + b, seed)


@settings(max_examples=examples(200))
@given(a=st.binary(max_size=3000), b=st.binary(max_size=3000))
def test_combine_equals_checksum_of_concatenation(a: bytes, b: bytes) -> None:
    combined = checksum.combine(checksum.crc32c(a), checksum.crc32c(b), len(b))
    assert combined == checksum.crc32c(a + b)


@pytest.mark.parametrize("length_b", [0, 1, 7, 8192, 10**6, 2**40])
def test_combine_with_zero_bytes_appended(length_b: int) -> None:
    # crc32c of zeros is computable for any length only through combine; check
    # the small ones directly and the huge ones by splitting them in two.
    crc_a = checksum.crc32c(b"prefix")
    if length_b <= 10**6:
        expected = checksum.crc32c(b"prefix" + bytes(length_b))
        assert checksum.combine(crc_a, checksum.crc32c(bytes(length_b)), length_b) == expected
    half = length_b // 2
    zeros_half = checksum.combine(0, 0, half)  # crc of `half` zero bytes, continued from 0
    zeros_rest = checksum.combine(0, 0, length_b - half)
    step = checksum.combine(checksum.combine(crc_a, zeros_half, half), zeros_rest, length_b - half)
    whole = checksum.combine(
        crc_a, checksum.combine(zeros_half, zeros_rest, length_b - half), length_b
    )
    assert step == whole


def test_software_path_equals_dispatch_path_across_block_boundaries() -> None:
    buffer = random.Random(11).randbytes(MAX_LENGTH + 8)
    view = memoryview(buffer)
    others = [name for name in _common.crc32c_implementations() if name != "software"]
    offsets = range(8) if FUZZ else (3,)
    for offset in offsets:  # misaligned starts exercise the byte-at-a-time lead-in
        for length in range(MAX_LENGTH + 1):
            chunk = view[offset : offset + length]
            expected = _common.crc32c_software(chunk)
            assert checksum.crc32c(chunk) == expected, (offset, length)
            for name in others:
                assert _common.crc32c_using(name, chunk) == expected, (name, offset, length)


def test_every_implementation_is_listed_and_usable() -> None:
    names = _common.crc32c_implementations()
    assert names[0] == "software"
    assert checksum.hardware_available() == (len(names) > 1)
    for name in names:
        assert _common.crc32c_using(name, b"123456789") == 0xE3069283
        assert _common.crc32c_using(name, b"6789", _common.crc32c_using(name, b"12345")) == (
            0xE3069283
        )
    with pytest.raises(InvalidInput, match="unknown crc32c implementation"):
        _common.crc32c_using("abacus", b"")


@pytest.mark.parametrize("offset", range(8))
def test_misaligned_slices_agree_with_the_oracle(offset: int) -> None:
    buffer = random.Random(offset).randbytes(3 * 8192 + 300)
    for length in (0, 1, 7, 8, 9, 63, 255, 256, 769, 3 * 256 + 8, 3 * 8192 + 17):
        chunk = memoryview(buffer)[offset : offset + length]
        expected = _reference.crc32c(chunk) if length < 1000 else _common.crc32c_software(chunk)
        assert checksum.crc32c(chunk) == expected
        assert checksum.crc32c(bytes(chunk)) == expected


@settings(max_examples=examples(50), suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(min_size=0, max_size=40_000), seed=seeds)
def test_hardware_and_software_agree_on_random_inputs(data: bytes, seed: int) -> None:
    assert checksum.crc32c(data, seed) == _common.crc32c_software(data, seed)


def test_accepts_every_contiguous_buffer() -> None:
    raw = bytes(range(256)) * 3
    expected = checksum.crc32c(raw)
    assert checksum.crc32c(bytearray(raw)) == expected
    assert checksum.crc32c(memoryview(raw)) == expected
    assert checksum.crc32c(np.frombuffer(raw, dtype=np.uint8)) == expected
    words = np.arange(100, dtype=np.uint32)
    assert checksum.crc32c(words) == checksum.crc32c(words.tobytes())
    assert checksum.crc32c(np.zeros((4, 8), dtype=np.float64)) == checksum.crc32c(bytes(256))


@pytest.mark.parametrize("data", ["123456789", 12345, None, [1, 2, 3]])
def test_rejects_non_buffers_with_type_error(data: object) -> None:
    with pytest.raises(TypeError, match="bytes-like"):
        checksum.crc32c(data)  # type: ignore[arg-type]


def test_rejects_non_contiguous_arrays() -> None:
    # Strided memory is refused, never read as if it were contiguous.
    with pytest.raises((TypeError, ValueError), match="contiguous"):
        checksum.crc32c(np.arange(10, dtype=np.uint8)[::2])


@pytest.mark.parametrize("seed", [-1, 2**32, 2**64, 1.0, "0", None])
def test_rejects_bad_seeds(seed: object) -> None:
    with pytest.raises(InvalidInput, match=r"seed must be an int in 0\.\.2"):
        checksum.crc32c(b"abc", seed)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        _common.crc32c_software(b"abc", seed)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        _reference.crc32c(b"abc", seed)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("crc_a", "crc_b", "length_b"), [(-1, 0, 0), (0, 2**32, 0), (0, 0, -1), (0.0, 0, 0)]
)
def test_combine_rejects_bad_arguments(crc_a: object, crc_b: object, length_b: object) -> None:
    with pytest.raises(InvalidInput, match="crc32c_combine"):
        checksum.combine(crc_a, crc_b, length_b)  # type: ignore[arg-type]


def test_hardware_available_is_a_bool() -> None:
    assert isinstance(checksum.hardware_available(), bool)


@settings(max_examples=examples(100))
@given(data=st.binary(max_size=5000), seed=seeds)
def test_matches_the_crc32c_package(data: bytes, seed: int) -> None:
    crc32c = pytest.importorskip("crc32c")
    assert checksum.crc32c(data, seed) == crc32c.crc32c(data, value=seed)


@settings(max_examples=examples(100))
@given(data=st.binary(max_size=5000), seed=seeds)
def test_matches_the_google_crc32c_package(data: bytes, seed: int) -> None:
    google_crc32c = pytest.importorskip("google_crc32c")
    assert checksum.crc32c(data, seed) == google_crc32c.extend(seed, data)
    assert checksum.crc32c(data) == google_crc32c.value(data)


def test_large_buffers_released_without_the_gil_give_the_same_result() -> None:
    data = os.urandom(1 << 20)  # above the 32 KiB threshold for releasing the GIL
    halves = checksum.crc32c(data[1 << 19 :], checksum.crc32c(data[: 1 << 19]))
    assert checksum.crc32c(data) == halves == _common.crc32c_software(data)
