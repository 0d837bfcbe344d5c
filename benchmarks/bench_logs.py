"""trusswork.logs against what a user would otherwise group log lines with.

Groups (``impl`` names in brackets; ours is ``trusswork``):

- ``patterns-loghub``: mine the templates of the Content column of all 16
  Loghub 2k samples (``<shared>/loghub``, see its README), one fresh miner
  per system, every line of a system in order [``drain3``: the ``drain3``
  package's ``TemplateMiner`` with its default configuration, no
  persistence, fed the same lines]. Ours is
  :func:`trusswork.logs.patterns` (a :class:`PatternMiner` plus the final
  template of every line). ``extra_info`` holds ``lines``, ``lines_per_s``,
  the ``grouping_accuracy`` averaged over the systems and
  ``grouping_accuracy_by_system``; the published reference for Drain is
  0.865. Quick mode mines the first 500 lines of each system.

Without the shared Loghub directory the group is skipped.
"""

from __future__ import annotations

import csv
import importlib
import logging
import os
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from trusswork.logs._patterns import grouping_accuracy, patterns

PATTERN_IMPLS = ["trusswork", "drain3"]

#: Number of systems in the Loghub 2k collection.
LOGHUB_SYSTEMS = 16


@dataclass(frozen=True)
class Loghub:
    systems: list[str]
    lines: list[list[str]]
    truth: list[list[str]]

    @property
    def total(self) -> int:
        return sum(len(lines) for lines in self.lines)


def _loghub_root() -> Path:
    override = os.environ.get("TRUSSWORK_SHARED_DIR")
    shared = Path(override) if override else Path(__file__).resolve().parents[2] / "shared"
    return shared / "loghub"


@pytest.fixture(scope="module")
def loghub(scaled: Callable[[int, int], int]) -> Loghub:
    root = _loghub_root()
    if not root.is_dir():
        pytest.skip(f"shared Loghub samples not found at {root}")
    per_system = scaled(2_000, 500)
    systems: list[str] = []
    lines: list[list[str]] = []
    truth: list[list[str]] = []
    for entry in sorted(root.iterdir()):
        path = entry / f"{entry.name}_2k.log_structured.csv"
        if not path.is_file():
            continue
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))[:per_system]
        systems.append(entry.name)
        lines.append([row["Content"] for row in rows])
        truth.append([row["EventId"] for row in rows])
    assert len(systems) == LOGHUB_SYSTEMS, f"expected 16 Loghub systems in {root}, got {systems}"
    return Loghub(systems, lines, truth)


def _drain3_miner(bench: Any) -> Callable[[list[str]], list[Hashable]]:
    try:  # drain3 ships no type information: imported as modules of type Any
        drain3 = importlib.import_module("drain3")
        drain3_config = importlib.import_module("drain3.template_miner_config")
    except ImportError as exc:
        bench.missing("patterns-loghub", "drain3", f"cannot import drain3: {exc}")
    logging.getLogger("drain3").setLevel(logging.WARNING)

    def mine(lines: list[str]) -> list[Hashable]:
        # An explicit default config: TemplateMiner() alone would read a drain3.ini in the cwd.
        miner = drain3.TemplateMiner(config=drain3_config.TemplateMinerConfig())
        return [miner.add_log_message(line)["cluster_id"] for line in lines]

    return mine


@pytest.mark.parametrize("impl", PATTERN_IMPLS)
def test_patterns_loghub(bench: Any, loghub: Loghub, impl: str) -> None:
    group = "patterns-loghub"
    mine: Callable[[list[str]], list[Hashable]]
    if impl == "trusswork":

        def ours(lines: list[str]) -> list[Hashable]:
            return list(patterns(lines))

        mine = ours
    else:
        mine = _drain3_miner(bench)

    def run() -> list[list[Hashable]]:
        return [mine(lines) for lines in loghub.lines]

    groups = run()
    by_system = {
        system: round(grouping_accuracy(predicted, truth), 4)
        for system, predicted, truth in zip(loghub.systems, groups, loghub.truth, strict=True)
    }
    average = sum(by_system.values()) / len(by_system)
    result = bench(
        group,
        impl,
        run,
        lines=loghub.total,
        grouping_accuracy=round(average, 4),
        grouping_accuracy_by_system=by_system,
    )
    bench.record_rate(loghub.total, "lines_per_s")
    assert [len(g) for g in result] == [len(lines) for lines in loghub.lines]
