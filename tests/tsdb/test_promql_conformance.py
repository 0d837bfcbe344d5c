"""Prometheus's own PromQL test scripts, one test per file (data in the shared directory).

Every case the engine supports must pass. A case counts as unsupported only
for a reason found by parsing (see ``promql_script``): a Prometheus function
the engine lacks, or native-histogram data. ``KNOWN_FAILURES`` lists
supported cases that still fail, as ``(file, line)`` with the reason, so this
test fails both when one of them starts passing and when a new one fails.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from helpers import shared_path

FILES = [
    "aggregators.test",
    "at_modifier.test",
    "collision.test",
    "functions.test",
    "limit.test",
    "literals.test",
    "name_label_dropping.test",
    "operators.test",
    "range_queries.test",
    "selectors.test",
    "staleness.test",
    "subquery.test",
    "trig_functions.test",
]

#: (file, line of the eval) -> why it fails. Empty: every supported case passes.
KNOWN_FAILURES: dict[tuple[str, int], str] = {}

#: Lower bounds on passing cases per file, so a regression that turns cases
#: "unsupported" cannot go unnoticed.
MIN_PASSED = {
    "aggregators.test": 120,
    "at_modifier.test": 78,
    "functions.test": 300,
    "operators.test": 130,
    "subquery.test": 30,
}


def _runner() -> ModuleType:
    name = "promql_script"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, Path(__file__).with_name("promql_script.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", FILES)
def test_script_file(name: str) -> None:
    path = shared_path("promql-tests") / name
    report = _runner().run_file(path)
    failed = {(name, c.line): c for c in report.cases if c.status == "failed"}
    known = {key for key in KNOWN_FAILURES if key[0] == name}
    new = {f"{key[1]}: {c.query}: {c.detail}" for key, c in failed.items() if key not in known}
    fixed = sorted(key for key in known if key not in failed)
    assert not new, "supported cases failing:\n" + "\n".join(sorted(new))
    assert not fixed, f"known failures now pass, remove them from KNOWN_FAILURES: {fixed}"
    assert report.count("passed") >= MIN_PASSED.get(name, 1)


def test_unsupported_cases_are_classified_by_parsing_only() -> None:
    runner = _runner()
    report = runner.run_text(
        "load 1m\n"
        "  m 1 2 3\n"
        "  h {{schema:0 sum:1 count:1}}\n"
        "\n"
        "eval instant at 1m histogram_count(m)\n"
        "  {} 1\n"
        "\n"
        "eval instant at 1m no_such_function(m)\n"
        "  expect fail\n"
        "\n"
        "eval instant at 1m h\n"
        "  h 1\n"
        "\n"
        "eval instant at 1m m\n"
        "  m 999\n"
        "\n"
        "eval range from 0 to 2m step 1m m * 2\n"
        "  {} 2 4 6\n"
    )
    statuses = [c.status for c in report.cases]
    assert statuses == ["unsupported", "passed", "unsupported", "failed", "passed"]
