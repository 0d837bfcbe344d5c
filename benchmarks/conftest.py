"""Shared machinery of the trusswork benchmark suites (``benchmarks/bench_<system>.py``).

Each benchmark measures one implementation of one operation. Implementations
of the same operation share a pytest-benchmark *group* and run on the same
data in the same session, so ``benchmarks/track.py`` can compare them as the
ratio ``peer_time / our_time``. The :func:`bench` fixture labels a measurement
with its group and implementation (``"trusswork"`` for ours, the peer's name
otherwise) and records peers that are not installed, so a skipped peer is not
mistaken for a benchmark that vanished.

Setting ``TRUSSWORK_BENCH_QUICK=1`` (``track.py --quick`` does) asks suites
for smaller inputs through the :func:`scaled` fixture; every member of a group
still gets the same data.

pyproject's ``testpaths`` is ``tests`` and ``python_files`` is pytest's default,
so this file also collects ``bench_*.py`` when pytest is pointed at this
directory (``python -m pytest benchmarks``); a plain ``python -m pytest`` never
loads it and runs no benchmark.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import pytest

#: Name our implementation carries in ``extra_info["impl"]``.
OURS = "trusswork"

#: Key of the pytest-benchmark JSON under which skipped peers are listed.
MISSING_PEERS_KEY = "trusswork_missing_peers"

_MISSING = pytest.StashKey[list[dict[str, str]]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_MISSING] = []


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    # pytest's python plugin already collects files given on the command line
    # and files matching python_files (track.py passes -o python_files=bench_*.py);
    # collecting those again would run every benchmark twice.
    if file_path.suffix != ".py" or not fnmatch.fnmatch(file_path.name, "bench_*.py"):
        return None
    if parent.session.isinitpath(file_path):
        return None
    patterns = parent.config.getini("python_files")
    if any(fnmatch.fnmatch(file_path.name, pattern) for pattern in patterns):
        return None
    module: pytest.Module = pytest.Module.from_parent(parent, path=file_path)
    return module


def pytest_benchmark_update_json(
    config: pytest.Config, benchmarks: list[Any], output_json: dict[str, Any]
) -> None:
    output_json[MISSING_PEERS_KEY] = config.stash[_MISSING]


class Bench:
    """Runs one labelled measurement; handed to benchmarks by the :func:`bench` fixture."""

    def __init__(self, benchmark: Any, request: pytest.FixtureRequest) -> None:
        self._benchmark = benchmark
        self._request = request

    def __call__(
        self, group: str, impl: str, func: Callable[..., Any], *args: Any, **info: Any
    ) -> Any:
        """Measure ``func(*args)`` as implementation ``impl`` of ``group``; return its result.

        Keyword arguments are stored in ``extra_info`` (input sizes, variants)
        so reports can show what was measured.
        """
        self._benchmark.group = group
        self._benchmark.extra_info["impl"] = impl
        self._benchmark.extra_info.update(info)
        return self._benchmark(func, *args)

    def record_rate(self, per_round: float, key: str, *, unit: float = 1.0) -> None:
        """``extra_info[key]``: ``per_round`` items per second of the fastest round, / ``unit``.

        Call after the measurement; it reads the rounds already timed
        instead of timing the work again.
        """
        stats = self._benchmark.stats
        if stats is not None:
            self._benchmark.extra_info[key] = round(per_round / stats.stats.min / unit, 1)

    def missing(self, group: str, impl: str, reason: str) -> NoReturn:
        """Skip this benchmark because peer ``impl`` is not available, and say so in the JSON."""
        self._request.config.stash[_MISSING].append(
            {"group": group, "impl": impl, "reason": reason, "test": self._request.node.nodeid}
        )
        pytest.skip(f"{group}: peer {impl} unavailable: {reason}")


@pytest.fixture(scope="session")
def scaled() -> Callable[[int, int], int]:
    """``scaled(full, quick)``: the input size of a group in this run's mode.

    Quick mode is ``TRUSSWORK_BENCH_QUICK`` set to anything but ``""`` or ``"0"``.
    """
    quick = os.environ.get("TRUSSWORK_BENCH_QUICK", "") not in ("", "0")

    def size(full: int, quick_size: int) -> int:
        return quick_size if quick else full

    return size


@pytest.fixture
def bench(benchmark: Any, request: pytest.FixtureRequest) -> Bench:
    """A :class:`Bench` bound to this test's pytest-benchmark fixture."""
    return Bench(benchmark, request)
