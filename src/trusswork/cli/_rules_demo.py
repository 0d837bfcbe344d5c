"""Demo section for the rules DSL: compile a rule file, explain a decision, time the JIT.

Checked parts:

1. A rule file (schema, a const, a let, three rules) is written to the report
   directory and compiled; events are evaluated and the matches must be the
   expected ones, with their messages rendered.
2. One decision is explained: the rule that did not fire must show the leaf
   that was false and the input value that made it so.
3. A file with mistakes is checked: every error is reported in one run, each
   with its line and column.
4. A numeric rule runs over arrays through the Numba kernel; its answers must
   equal row-by-row evaluation on a sample, and its time is set against the
   equivalent numpy expression and per-row Python (timed on a sample, scaled).
"""

from __future__ import annotations

import time
from typing import Any

from trusswork.cli._demo import DemoContext, Plot, SectionResult

RULE_FILE = """\
// alerts for the checkout service
schema {
  status: int
  latency_ms: double
  path: string
  region: string
  retries: int
}
const SLOW_MS = 250.0
let is_error = status >= 500

rule slow_api {
  when: latency_ms > SLOW_MS && path.startsWith("/api") && !is_error
  severity: warning
  tags: ["latency"]
  message: "slow {path}: {latency_ms} ms"
  action: notify
}
rule eu_errors {
  when: is_error && region in ["eu-west-1", "eu-central-1"]
  severity: error
  message: "{status} on {path} in {region}"
  action: page
}
rule retry_storm {
  when: retries > 3 && is_error
  severity: critical
}
"""

BROKEN_FILE = """\
schema { status: int, path: string }
rule one { when: status > "500" }
rule two { when: path.startsWith(1) || size(path) }
"""

EVENTS: list[dict[str, Any]] = [
    {"status": 200, "latency_ms": 312.5, "path": "/api/cart", "region": "us-east-1", "retries": 0},
    {"status": 503, "latency_ms": 80.0, "path": "/api/pay", "region": "eu-west-1", "retries": 5},
    {"status": 200, "latency_ms": 312.5, "path": "/web/home", "region": "eu-west-1", "retries": 0},
]
EXPECTED = [["slow_api"], ["eu_errors", "retry_storm"], []]

NUMERIC_RULE = (
    "cpu > 0.85 && mem > 0.7 && (errors > 10 || p99 > 250.0) && "
    "requests >= 100 && disk < 0.95 && !maintenance && queue * 2 > requests / 10"
)
NUMERIC_SCHEMA = {
    "cpu": "double",
    "mem": "double",
    "errors": "int",
    "p99": "double",
    "requests": "int",
    "disk": "double",
    "maintenance": "bool",
    "queue": "int",
}
SAMPLE_ROWS = 20_000


def _numpy_rule(c: dict[str, Any]) -> Any:
    # The same rule as NUMERIC_RULE, written as a numpy expression over whole arrays.
    return (
        (c["cpu"] > 0.85)
        & (c["mem"] > 0.7)
        & ((c["errors"] > 10) | (c["p99"] > 250.0))
        & (c["requests"] >= 100)
        & (c["disk"] < 0.95)
        & ~c["maintenance"]
        & (c["queue"] * 2 > c["requests"] // 10)
    )


def _columns(rows: int) -> dict[str, Any]:
    import numpy as np

    rng = np.random.default_rng(7)
    return {
        "cpu": rng.random(rows),
        "mem": rng.random(rows),
        "errors": rng.integers(0, 30, rows),
        "p99": rng.normal(200.0, 60.0, rows),
        "requests": rng.integers(0, 1000, rows),
        "disk": rng.random(rows),
        "maintenance": rng.random(rows) < 0.05,
        "queue": rng.integers(0, 100, rows),
    }


def _best(function: Any, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def _file_part(ctx: DemoContext) -> tuple[list[tuple[str, str]], Any]:
    from trusswork import rules

    folder = ctx.out_dir / "rules"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "alerts.rules"
    path.write_text(RULE_FILE, encoding="utf-8")
    started = time.perf_counter()
    ruleset = rules.load_rules(path)
    compile_ms = (time.perf_counter() - started) * 1000
    rows = [("rule file compiled (3 rules, schema, const, let)", f"{compile_ms:.1f} ms")]
    for event, expected in zip(EVENTS, EXPECTED, strict=True):
        matches = ruleset.evaluate(event)
        names = [match.rule for match in matches]
        if names != expected:
            raise AssertionError(f"event {event}: matched {names}, expected {expected}")
        shown = "; ".join(f"{m.rule} [{m.severity}] {m.message or ''}".strip() for m in matches)
        rows.append((f"event status={event['status']} path={event['path']}", shown or "no match"))
    return rows, ruleset


def _explain_part(ruleset: Any) -> list[tuple[str, str]]:
    explanation = ruleset["slow_api"].explain(EVENTS[2])
    false_leaves = [
        leaf for leaf in explanation.root.children if leaf.value is False and not leaf.children
    ]
    if explanation.matched or not false_leaves or "path" not in false_leaves[0].inputs:
        raise AssertionError(f"the explanation does not show the failed condition:\n{explanation}")
    leaf = false_leaves[0]
    return [
        ("why slow_api did not fire for /web/home", f"{leaf.text} was false"),
        ("with input", ", ".join(f"{k}={v!r}" for k, v in leaf.inputs.items())),
    ]


def _check_part() -> list[tuple[str, str]]:
    from trusswork import rules

    try:
        rules.compile_rules(BROKEN_FILE, filename="broken.rules")
    except rules.RuleCheckError as error:
        errors = error.errors
    else:
        raise AssertionError("a file with type errors compiled")
    if len(errors) < 3:
        raise AssertionError(f"expected every error in one run, got {len(errors)}")
    places = ", ".join(f"{item.line}:{item.column}" for item in errors)
    return [
        ("errors found in one run of `rules check`", f"{len(errors)} at {places}"),
        ("first", errors[0].message),
    ]


def _jit_part(ctx: DemoContext) -> tuple[list[tuple[str, str]], Plot]:
    import matplotlib.pyplot as plt
    import numpy as np

    from trusswork import rules

    total = 200_000 if ctx.quick else 1_000_000
    rule = rules.compile(NUMERIC_RULE, NUMERIC_SCHEMA, name="capacity")
    if not rule.jit_eligible:
        raise AssertionError("the numeric rule did not get a Numba kernel")
    columns = _columns(total)
    started = time.perf_counter()
    result = rule.evaluate_columns(columns)
    first_call = time.perf_counter() - started
    expected = _numpy_rule(columns)
    # One dict of Python values per row, made before timing: the per-row figure is the
    # rule's evaluation, not numpy's conversion of scalars.
    names = list(columns)
    row_dicts = [
        dict(zip(names, values, strict=True))
        for values in zip(*(columns[n][:SAMPLE_ROWS].tolist() for n in names), strict=True)
    ]
    by_row = np.array([rule.evaluate(row) for row in row_dicts])
    if not np.array_equal(result[:SAMPLE_ROWS], by_row) or not np.array_equal(result, expected):
        raise AssertionError("the JIT path disagrees with row-by-row evaluation")
    repeat = 3 if ctx.quick else 7
    jit = _best(lambda: rule.evaluate_columns(columns), repeat)
    numpy_time = _best(lambda: _numpy_rule(columns), repeat)
    per_row_sample = _best(lambda: [rule.evaluate(row) for row in row_dicts], repeat)
    per_row = per_row_sample * total / SAMPLE_ROWS
    rates = {
        "Numba kernel": total / jit,
        "numpy expression": total / numpy_time,
        "per-row Python": total / per_row,
    }
    figure, axis = plt.subplots(figsize=(6.4, 2.6))
    names = list(rates)
    axis.barh(names, [rates[name] / 1e6 for name in names], color=["#2a7", "#57a", "#aaa"])
    axis.set_xscale("log")
    axis.set_xlabel("million rows per second (log scale)")
    axis.invert_yaxis()
    figure.tight_layout()
    rows = [
        (f"numeric rule over {total:,} rows (7 conditions)", f"{int(result.sum()):,} matched"),
        ("first call (Numba compiles the kernel)", f"{first_call:.2f} s"),
        ("Numba kernel", f"{jit * 1000:.1f} ms ({rates['Numba kernel'] / 1e6:.0f} M rows/s)"),
        ("numpy expression", f"{numpy_time * 1000:.1f} ms ({numpy_time / jit:.1f}x slower)"),
        (
            f"per-row Python (timed on {SAMPLE_ROWS:,} rows)",
            f"{per_row:.2f} s ({per_row / jit:,.0f}x slower)",
        ),
    ]
    return rows, Plot(f"Numeric rule over {total:,} rows: throughput", figure)


def demo(ctx: DemoContext) -> SectionResult:
    """Run and check the rules parts; see the module docstring."""
    rows, ruleset = _file_part(ctx)
    rows += _explain_part(ruleset)
    rows += _check_part()
    jit_rows, plot = _jit_part(ctx)
    rows += jit_rows
    notes = [
        "Rules are CEL expressions compiled to one Python function each; the rule file, "
        "its explanation and the broken file are in the rules/ folder of this report.",
        "The numeric rule's answers are compared with row-by-row evaluation before timing; "
        "per-row Python is timed on a sample and scaled to the full row count.",
    ]
    return SectionResult(rows=rows, plots=[plot], notes=notes)
