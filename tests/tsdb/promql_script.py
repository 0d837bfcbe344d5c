"""Runner for Prometheus's PromQL test-script language against trusswork's engine.

A script loads series (``load <interval>`` plus indented ``metric{labels}
points`` lines), clears them (``clear``) and checks queries (``eval instant
at <t> <expr>`` / ``eval range from <t0> to <t1> step <s> <expr>`` followed
by the expected result or ``expect fail``). Each eval is one case, whose
status is ``passed``, ``failed`` or ``unsupported``. A case is unsupported
only for a reason found by parsing: a Prometheus function the engine does not
implement (the native-histogram functions and ``info``), a duration expression
in brackets, or native-histogram samples (``{{...}}``) in the series its
selectors match or in its expected result. Warning/info expectations
(``expect warn``/``expect info``) are not checked: the engine has no
annotations.

Usage::

    .venv/bin/python tests/tsdb/promql_script.py /work/shared/promql-tests [-v]
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from trusswork.core.errors import InvalidInput, ParseError
from trusswork.tsdb._memstore import MemoryStore
from trusswork.tsdb._promql_ast import (
    AggregateExpr,
    BinaryExpr,
    Call,
    Expr,
    MatrixSelector,
    ParenExpr,
    SubqueryExpr,
    UnaryExpr,
    VectorSelector,
)
from trusswork.tsdb._series import STALE_NAN, Labels, labels_of
from trusswork.tsdb.promql import (
    Engine,
    MatrixResult,
    ScalarResult,
    StringResult,
    VectorResult,
    parse,
    parse_duration,
)

__all__ = ["Case", "FileReport", "run_file", "run_text"]

_EPSILON = 1e-6
_MIN_NORMAL = 2.2250738585072014e-308
#: Functions Prometheus has that the engine does not implement (all about native histograms,
#: plus info()); a query using one is unsupported. Other unknown names are ordinary cases:
#: Prometheus rejects them too.
_PROMETHEUS_ONLY_FUNCTIONS = frozenset(
    {
        "histogram_avg",
        "histogram_count",
        "histogram_fraction",
        "histogram_stddev",
        "histogram_stdvar",
        "histogram_sum",
        "info",
    }
)
_UNKNOWN_FUNCTION = re.compile(r"unknown function with name '([^']*)'")


@dataclass(slots=True)
class Case:
    """One ``eval`` of a script and its outcome."""

    line: int
    query: str
    status: str = "passed"
    detail: str = ""


@dataclass(slots=True)
class FileReport:
    """The cases of one script file."""

    name: str
    cases: list[Case] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for c in self.cases if c.status == status)


def _parse_time(text: str) -> int:
    text = text.strip()
    if re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", text):
        return round(float(text) * 1000)
    return parse_duration(text)


_SERIES_RE = re.compile(r"\s*([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*(\{.*?\})?\s*(.*)$")
_LABEL_RE = re.compile(r'\s*("?[^"=!~,\s]+"?)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')
_NUM = r"(?:[+-]?(?:[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?|[Ii]nf|NaN|nan))"
_EXPAND_RE = re.compile(rf"({_NUM})(?:([+-])({_NUM}))?x([0-9]+)")


def _parse_labels(name: str | None, body: str | None) -> Labels:
    pairs: list[tuple[str, str]] = []
    if name:
        pairs.append(("__name__", name))
    if body:
        inner = body.strip()[1:-1]
        pos = 0
        while pos < len(inner):
            if inner[pos:].strip() == "":
                break
            m = _LABEL_RE.match(inner, pos)
            if m is None:
                raise ValueError(f"bad label set {body!r}")
            label = m.group(1).strip('"')
            value = bytes(m.group(2), "utf-8").decode("unicode_escape")
            pairs.append((label, value))
            pos = m.end()
    return labels_of(pairs)


def _parse_series_line(line: str) -> tuple[Labels, str]:
    text = line.strip()
    if text.startswith("{") or re.match(r"[a-zA-Z_:]", text):
        # the label block may contain spaces inside quotes; find its end
        name_m = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text)
        name = name_m.group() if name_m else None
        rest = text[name_m.end() :] if name_m else text
        body = None
        if rest.startswith("{"):
            depth, quoted, end = 0, False, -1
            for i, ch in enumerate(rest):
                if ch == '"' and (i == 0 or rest[i - 1] != "\\"):
                    quoted = not quoted
                elif not quoted and ch == "{":
                    depth += 1
                elif not quoted and ch == "}":
                    depth -= 1
                    if depth == 0:
                        end = i
                        break
            body = rest[: end + 1]
            rest = rest[end + 1 :]
        return _parse_labels(name, body), rest.strip()
    raise ValueError(f"bad series line {line!r}")


def _to_float(text: str) -> float:
    low = text.lower()
    if low in ("inf", "+inf"):
        return math.inf
    if low == "-inf":
        return -math.inf
    return float(text)


def _expand_points(text: str) -> Iterator[float | None]:
    """Values of a point list; None is a missing sample (``_``)."""
    for token in text.split():
        if token == "_":
            yield None
        elif token == "stale":
            yield STALE_NAN
        elif (m := re.fullmatch(r"(_|stale)x([0-9]+)", token)) is not None:
            for _ in range(int(m.group(2))):
                yield None if m.group(1) == "_" else STALE_NAN
        elif (m := _EXPAND_RE.fullmatch(token)) is not None:
            start = _to_float(m.group(1))
            inc = 0.0
            if m.group(2):
                inc = _to_float(m.group(3)) * (-1 if m.group(2) == "-" else 1)
            current = start
            for _ in range(int(m.group(4)) + 1):
                yield current
                current += inc
        else:
            yield _to_float(token)


def _almost_equal(a: float, b: float) -> bool:
    if math.isnan(a) and math.isnan(b):
        return True
    if a == b:
        return True
    abs_sum = abs(a) + abs(b)
    diff = abs(a - b)
    if a == 0 or b == 0 or abs_sum < _MIN_NORMAL:
        return diff < _EPSILON * _MIN_NORMAL
    return diff / min(abs_sum, sys.float_info.max) < _EPSILON


def _selectors(expr: Expr) -> Iterator[VectorSelector]:
    if isinstance(expr, VectorSelector):
        yield expr
    elif isinstance(expr, MatrixSelector):
        yield expr.selector
    elif isinstance(expr, SubqueryExpr | ParenExpr | UnaryExpr):
        yield from _selectors(expr.expr)
    elif isinstance(expr, BinaryExpr):
        yield from _selectors(expr.lhs)
        yield from _selectors(expr.rhs)
    elif isinstance(expr, AggregateExpr):
        yield from _selectors(expr.expr)
        if expr.param is not None:
            yield from _selectors(expr.param)
    elif isinstance(expr, Call):
        for arg in expr.args:
            yield from _selectors(arg)


@dataclass(slots=True)
class _Eval:
    line: int
    query: str
    instant: bool
    at_ms: int = 0
    start_ms: int = 0
    end_ms: int = 0
    step_ms: int = 0
    expect_fail: bool = False
    fail_msg: str | None = None
    fail_regex: str | None = None
    ordered: bool = False
    expected: list[str] = field(default_factory=list)
    range_vector: tuple[int, int, int] | None = None
    expected_string: str | None = None


class _Script:
    def __init__(self) -> None:
        self.store = MemoryStore()
        self.engine = Engine(self.store)
        self.histogram_series: list[Labels] = []

    def load(self, interval_ms: int, lines: list[str], *, nhcb: bool) -> None:
        for line in lines:
            labels, points = _parse_series_line(line)
            if "{{" in points:
                self.histogram_series.append(labels)
            if nhcb:
                # The float series stay; their classic histogram also appears as a native one.
                name = dict(labels).get("__name__", "")
                for suffix in ("_bucket", "_count", "_sum"):
                    if name.endswith(suffix):
                        base = {**dict(labels), "__name__": name[: -len(suffix)]}
                        base.pop("le", None)
                        self.histogram_series.append(labels_of(base))
            if "{{" in points:
                continue
            ts, values = [], []
            for i, value in enumerate(_expand_points(points)):
                if value is not None:
                    ts.append(i * interval_ms)
                    values.append(value)
            if ts:
                self.store.add_many(labels, ts, values)

    def unsupported_reason(self, ev: _Eval) -> str | None:
        if any("{{" in line for line in ev.expected):
            return "expects native histograms"
        try:
            expr = parse(ev.query)
        except ParseError as exc:
            unknown = _UNKNOWN_FUNCTION.search(exc.reason)
            if unknown is not None and unknown.group(1) in _PROMETHEUS_ONLY_FUNCTIONS:
                return exc.reason
            if "duration expressions" in exc.reason:
                return exc.reason
            return None
        for sel in _selectors(expr):
            for labels in self.histogram_series:
                names = dict(labels)
                if all(m.matches(names.get(m.name, "")) for m in sel.matchers):
                    return "reads native-histogram series"
        return None

    def run(self, ev: _Eval) -> str:
        """'' on success, else what went wrong."""
        try:
            if ev.instant:
                result: object = self.engine.instant(ev.query, ev.at_ms)
            else:
                result = self.engine.range(ev.query, ev.start_ms, ev.end_ms, ev.step_ms)
        except Exception as exc:
            if not isinstance(exc, InvalidInput):
                return f"crash: {type(exc).__name__}: {exc}"
            if not ev.expect_fail:
                return f"unexpected error: {exc}"
            message = exc.reason if isinstance(exc, ParseError) else str(exc)
            if ev.fail_msg is not None and ev.fail_msg.strip() not in str(exc):
                return f"error message {message!r} does not contain {ev.fail_msg!r}"
            if ev.fail_regex is not None and not re.search(ev.fail_regex, str(exc)):
                return f"error message {message!r} does not match {ev.fail_regex!r}"
            return ""
        if ev.expect_fail:
            return "expected an error, got a result"
        return self.compare(ev, result)

    def compare(self, ev: _Eval, result: object) -> str:
        if ev.expected_string is not None:
            if not isinstance(result, StringResult):
                return f"expected a string, got {type(result).__name__}"
            return (
                ""
                if result.value == ev.expected_string
                else (f"string {result.value!r} != {ev.expected_string!r}")
            )
        if isinstance(result, StringResult):
            return f"unexpected string result {result.value!r}"
        if isinstance(result, ScalarResult):
            if len(ev.expected) != 1:
                return f"got scalar {result.value}, expected {ev.expected}"
            try:
                want = _to_float(ev.expected[0].strip())
            except ValueError:
                return f"got scalar {result.value}, expected {ev.expected}"
            return "" if _almost_equal(result.value, want) else (f"scalar {result.value} != {want}")
        expected: list[tuple[Labels, list[tuple[int, float]]]] = []
        for line in ev.expected:
            labels, points = _parse_series_line(line)
            values = list(_expand_points(points))
            if ev.instant and ev.range_vector is None:
                if len(values) != 1 or values[0] is None:
                    return f"bad expected line {line!r}"
                expected.append((labels, [(ev.at_ms, values[0])]))
            else:
                start, step = (
                    (ev.range_vector[0], ev.range_vector[2])
                    if ev.range_vector
                    else (ev.start_ms, ev.step_ms)
                )
                expected.append(
                    (labels, [(start + i * step, v) for i, v in enumerate(values) if v is not None])
                )
        got: list[tuple[Labels, list[tuple[int, float]]]] = []
        if isinstance(result, VectorResult):
            if not ev.instant or ev.range_vector is not None:
                return "expected a matrix, got a vector"
            got = [(lab, [(t, v)]) for lab, t, v in result.samples]
        elif isinstance(result, MatrixResult):
            if ev.instant and ev.range_vector is None and ev.expected:
                return "expected a vector, got a matrix"
            got = [
                (s.labels, list(zip(s.ts.tolist(), s.values.tolist(), strict=True)))
                for s in result.series
            ]
        got_map = dict(got)
        want_map = dict(expected)
        if len(got_map) != len(got):
            return "result has duplicate label sets"
        missing = [lab for lab in want_map if lab not in got_map]
        extra = [lab for lab in got_map if lab not in want_map]
        if missing or extra:
            return f"series mismatch: missing {missing}, unexpected {extra}"
        for labels, want_points in want_map.items():
            have = got_map[labels]
            if len(have) != len(want_points):
                return f"{labels}: {len(have)} points, expected {len(want_points)}: {have}"
            for (t1, v1), (t2, v2) in zip(have, want_points, strict=True):
                if t1 != t2 or not _almost_equal(v1, v2):
                    return f"{labels}: got ({t1}, {v1}), expected ({t2}, {v2})"
        if ev.ordered:
            order_got = [lab for lab, _ in got]
            order_want = [lab for lab, _ in expected]
            if order_got != order_want:
                return f"order {order_got} != {order_want}"
        return ""


_EVAL_RE = re.compile(r"^eval(?:_(fail|warn|info|ordered))?\s+(instant|range)\s+(.*)$")


def run_text(text: str, name: str = "<script>") -> FileReport:
    """Run a script given as text."""
    report = FileReport(name)
    script = _Script()
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        raw = lines[i]
        stripped = raw.strip()
        i += 1
        if not stripped or stripped.startswith("#"):
            continue
        if stripped == "clear":
            script.store.clear()
            script.histogram_series.clear()
            continue
        block: list[str] = []
        while i < len(lines) and lines[i].strip() and lines[i][:1] in (" ", "\t"):
            if not lines[i].strip().startswith("#"):
                block.append(lines[i])
            i += 1
        if stripped.startswith("load"):
            words = stripped.split()
            script.load(parse_duration(words[1]), block, nhcb=words[0] == "load_with_nhcb")
            continue
        m = _EVAL_RE.match(stripped)
        if m is None:
            report.cases.append(Case(i, stripped, "failed", "unknown script command"))
            continue
        ev = _make_eval(i, m, block)
        case = Case(i, ev.query)
        reason = script.unsupported_reason(ev)
        if reason is not None:
            case.status, case.detail = "unsupported", reason
        else:
            problem = script.run(ev)
            if problem:
                case.status, case.detail = "failed", problem
        report.cases.append(case)
    return report


def _make_eval(line: int, m: re.Match[str], block: list[str]) -> _Eval:
    variant, kind, rest = m.group(1), m.group(2), m.group(3)
    if kind == "instant":
        at = re.match(r"at\s+(\S+)\s+(.*)$", rest)
        if at is None:
            raise ValueError(f"line {line}: bad eval instant")
        ev = _Eval(line, at.group(2), True, at_ms=_parse_time(at.group(1)))
    else:
        rng = re.match(r"from\s+(\S+)\s+to\s+(\S+)\s+step\s+(\S+)\s+(.*)$", rest)
        if rng is None:
            raise ValueError(f"line {line}: bad eval range")
        ev = _Eval(
            line,
            rng.group(4),
            False,
            start_ms=_parse_time(rng.group(1)),
            end_ms=_parse_time(rng.group(2)),
            step_ms=_parse_time(rng.group(3)),
        )
    ev.expect_fail = variant == "fail"
    ev.ordered = variant == "ordered"
    for raw in block:
        text = raw.strip()
        if text.startswith("expect "):
            directive = text[len("expect ") :]
            if directive.startswith("fail"):
                ev.expect_fail = True
                tail = directive[len("fail") :].strip()
                if tail.startswith("msg:"):
                    ev.fail_msg = tail[len("msg:") :].strip()
                elif tail.startswith("regex:"):
                    ev.fail_regex = tail[len("regex:") :].strip()
            elif directive.startswith("ordered"):
                ev.ordered = True
            elif directive.startswith("string"):
                literal = directive[len("string") :].strip()
                ev.expected_string = literal[1:-1]
            elif directive.startswith("range vector"):
                rv = re.match(r"range vector from\s+(\S+)\s+to\s+(\S+)\s+step\s+(\S+)", directive)
                if rv is not None:
                    ev.range_vector = (
                        _parse_time(rv.group(1)),
                        _parse_time(rv.group(2)),
                        _parse_time(rv.group(3)),
                    )
            continue
        ev.expected.append(text)
    return ev


def run_file(path: Path) -> FileReport:
    """Run one ``.test`` file."""
    return run_text(path.read_text(encoding="utf-8"), path.name)


def main(argv: list[str]) -> int:
    verbose = "-v" in argv
    paths = [Path(a) for a in argv if a != "-v"]
    files: list[Path] = []
    for path in paths:
        files.extend(sorted(path.glob("*.test")) if path.is_dir() else [path])
    reports = [run_file(f) for f in files]
    print("| file | passed | failed | unsupported |")
    print("|---|---:|---:|---:|")
    for r in reports:
        print(
            f"| {r.name} | {r.count('passed')} | {r.count('failed')} | {r.count('unsupported')} |"
        )
    print(
        f"| **total** | {sum(r.count('passed') for r in reports)} | "
        f"{sum(r.count('failed') for r in reports)} | "
        f"{sum(r.count('unsupported') for r in reports)} |"
    )
    if verbose:
        for r in reports:
            for c in r.cases:
                if c.status != "passed":
                    print(f"{r.name}:{c.line}: {c.status}: {c.query}\n    {c.detail}")
    return 1 if any(r.count("failed") for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
