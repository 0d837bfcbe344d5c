"""Smoke tests: does an installed trusswork work at all?

These run against the built wheel in a fresh environment (cibuildwheel's
test-command and ``make wheel``), as well as in the normal suite. They
check what a broken wheel breaks first: the compiled extension loads and
computes correct values, the pure-Python modules and type information are
packaged, the console script is installed, and ``import trusswork`` stays
cheap. They need only the standard library, numpy, pytest and trusswork.
"""

from __future__ import annotations

import importlib.resources
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import trusswork


def test_version_is_a_release_number() -> None:
    parts = trusswork.__version__.split(".")
    assert len(parts) == 3 and all(part.isdigit() for part in parts), trusswork.__version__


def test_compiled_extension_is_loaded() -> None:
    from trusswork.core import _common

    assert Path(_common.__file__).suffix in {".so", ".pyd"}, _common.__file__


def test_crc32c_matches_the_standard_check_value() -> None:
    from trusswork.core import checksum

    assert checksum.crc32c(b"123456789") == 0xE3069283
    assert checksum.crc32c(b"") == 0
    # Long enough to take the GIL-free path, and continued across a split.
    data = bytes(range(256)) * 1024
    assert checksum.crc32c(data[1000:], checksum.crc32c(data[:1000])) == checksum.crc32c(data)
    assert isinstance(checksum.hardware_available(), bool)


def test_varint_round_trip() -> None:
    from trusswork.core import varint

    values = np.array([0, 1, -1, 300, -(2**63), 2**63 - 1], dtype=np.int64)
    encoded = varint.encode(values)
    assert encoded[:4] == b"\x00\x02\x01\xd8"
    np.testing.assert_array_equal(varint.decode(encoded), values)
    unsigned = np.array([0, 127, 128, 2**64 - 1], dtype=np.uint64)
    decoded = varint.decode(varint.encode(unsigned, zigzag=False), zigzag=False)
    np.testing.assert_array_equal(decoded, unsigned)


def test_bits_round_trip() -> None:
    from trusswork.core import bits

    values = np.array([5, 1, 3, 0, 2**64 - 1], dtype=np.uint64)
    widths = [3, 1, 2, 0, 64]
    packed = bits.pack(values, widths)
    # 101 1 11, nothing for the 0-bit field, then 64 one bits: 70 bits in 9 bytes.
    assert packed[0] == 0b1011_1111 and len(packed) == 9
    np.testing.assert_array_equal(bits.unpack(packed, widths), values)


def test_errors_keep_their_builtin_bases() -> None:
    from trusswork.core import bits, varint
    from trusswork.core.errors import Corruption, InvalidInput, NotFound, TrussworkError

    assert issubclass(InvalidInput, ValueError) and issubclass(NotFound, KeyError)
    with pytest.raises(InvalidInput):
        bits.pack([8], [3])
    with pytest.raises(Corruption) as raised:
        varint.decode(b"\x80")
    assert isinstance(raised.value, TrussworkError)


def test_type_information_is_installed() -> None:
    package = importlib.resources.files("trusswork")
    assert (package / "py.typed").is_file()
    assert (package / "core" / "_common.pyi").is_file()


def trusswork_command() -> list[str]:
    """The installed console script: next to this interpreter, else on PATH."""
    beside = Path(sys.executable).with_name("trusswork")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("trusswork")
    assert found is not None, f"no trusswork console script next to {sys.executable} or on PATH"
    return [found]


@pytest.mark.parametrize(
    "command",
    [pytest.param(None, id="console-script"), pytest.param("-m", id="python-m")],
)
def test_command_line_prints_version(command: str | None, tmp_path: Path) -> None:
    argv = trusswork_command() if command is None else [sys.executable, "-m", "trusswork"]
    result = subprocess.run(
        [*argv, "--version"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"trusswork {trusswork.__version__}"


def test_import_trusswork_loads_no_heavy_modules(tmp_path: Path) -> None:
    script = "import sys, trusswork; print(sorted({'numpy', 'trusswork.core'} & set(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
