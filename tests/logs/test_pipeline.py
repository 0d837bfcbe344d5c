"""The log query pipeline: search semantics, expressions and every command over access logs.

Search matching, ``stats``, ``sort``, ``dedup``, ``head`` and ``tail`` are
checked against plain-Python oracles written here from the rules in the
module docstring of :mod:`trusswork.logs._pipeline`; the commands run over
nginx-like access log rows built below.
"""

from __future__ import annotations

import math
import operator
import re
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import examples
from trusswork.core.errors import InvalidInput
from trusswork.logs._ast import (
    Agg,
    And,
    Binary,
    Call,
    Dedup,
    Eval,
    Expr,
    FieldCompare,
    FieldRef,
    Fields,
    Head,
    Literal_,
    MatchAll,
    Not,
    Or,
    Patterns,
    Phrase,
    Rare,
    Rex,
    Search,
    SearchExpr,
    Sort,
    SortKey,
    Stats,
    Table,
    Tail,
    Term,
    Timechart,
    Top,
    Unary,
    Where,
)
from trusswork.logs._pipeline import evaluate, match_rows, required_fields, run_commands
from trusswork.search import tokenize

NOW_MS = 1_714_557_600_000  # 2024-05-01T10:00:00Z
MINUTE = 60_000

# -- access logs -------------------------------------------------------------

#: (seconds after the first, client ip, method, uri, status, bytes, host)
REQUESTS = [
    (0, "10.0.0.1", "GET", "/index.html", 200, 5120, "web-1"),
    (20, "10.0.0.2", "GET", "/api/users", 200, 812, "web-2"),
    (45, "10.0.0.1", "POST", "/api/login", 401, 97, "web-1"),
    (70, "10.0.0.3", "GET", "/static/app.js", 304, 0, "web-3"),
    (95, "10.0.0.2", "GET", "/api/users", 500, 310, "web-2"),
    (110, "10.0.0.4", "DELETE", "/api/users/7", 503, 120, "web-1"),
    (200, "10.0.0.1", "GET", "/index.html", 200, 5120, "web-2"),
    (245, "10.0.0.5", "GET", "/missing", 404, 153, "web-1"),
    (250, "10.0.0.2", "PUT", "/api/users/7", 200, 64, "web-3"),
    (290, "10.0.0.1", "GET", "/api/orders", 502, 0, "web-1"),
]


def access_logs() -> pa.Table:
    """The requests as the store reads them: newest first, combined-log ``_raw``."""
    rows = sorted(REQUESTS, reverse=True)
    start = NOW_MS - 300_000
    raws = [
        f'{ip} - - [01/May/2024:09:55:{s % 60:02d} +0000] "{m} {u} HTTP/1.1" {st} {b} "-" '
        f'"curl/8.0" host={h}'
        for s, ip, m, u, st, b, h in rows
    ]
    return pa.table(
        {
            "_time": pa.array([start + r[0] * 1000 for r in rows], pa.int64()),
            "_raw": pa.array(raws, pa.string()),
            "source": pa.array(["/var/log/nginx/access.log"] * len(rows), pa.string()),
            "sourcetype": pa.array(["access_combined"] * len(rows), pa.string()),
            "clientip": pa.array([r[1] for r in rows], pa.string()),
            "method": pa.array([r[2] for r in rows], pa.string()),
            "uri": pa.array([r[3] for r in rows], pa.string()),
            "status": pa.array([r[4] for r in rows], pa.int64()),
            "bytes": pa.array([r[5] for r in rows], pa.int64()),
            "host": pa.array([r[6] for r in rows], pa.string()),
        }
    )


def run(table: pa.Table, *commands: Any) -> pa.Table:
    return run_commands(table, commands, now_ms=NOW_MS)


def column(table: pa.Table, name: str) -> list[Any]:
    return list(table.column(name).to_pylist())


def ev(expr: Expr, table: pa.Table | None = None) -> list[Any]:
    table = access_logs() if table is None else table
    return list(evaluate(expr, table, now_ms=NOW_MS).to_pylist())


def num(value: float) -> Literal_:
    return Literal_(float(value))


def ref(name: str) -> FieldRef:
    return FieldRef(name)


# -- search: the oracle ------------------------------------------------------


def oracle_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        integral = math.isfinite(value) and value == int(value) and abs(value) < 1e16
        return str(int(value)) if integral else repr(value)
    return str(value)


def oracle_number(text: str) -> float | None:
    """Digits with an optional sign, point and exponent; nothing else is a number."""
    if not re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", text):
        return None
    number = float(text)
    return number if math.isfinite(number) else None


def oracle_wildcard(pattern: str, text: str) -> bool:
    """``*`` is any run of characters; everything else is literal."""
    parts = pattern.split("*")
    if len(parts) == 1:
        return pattern == text
    if not text.startswith(parts[0]) or not text[len(parts[0]) :].endswith(parts[-1]):
        return False
    middle = text[len(parts[0]) : len(text) - len(parts[-1])]
    for part in parts[1:-1]:
        found = middle.find(part)
        if found < 0:
            return False
        middle = middle[found + len(part) :]
    return True


OPS = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def oracle_compare(value: Any, op: str, wanted: str | float) -> bool:
    if value is None:
        return False
    compare = OPS[op]
    if isinstance(wanted, str) and op in ("=", "!="):
        if "*" in wanted:
            hit = oracle_wildcard(wanted, oracle_text(value))
        else:
            hit = oracle_text(value) == wanted
        return hit if op == "=" else not hit
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(wanted, str):
        mine = float(value) if numeric else oracle_number(value) if isinstance(value, str) else None
        theirs = oracle_number(wanted)
        if mine is not None and theirs is not None:
            return compare(mine, theirs)
        return compare(oracle_text(value), wanted)
    if numeric:
        return compare(float(value), wanted)
    if isinstance(value, str) and oracle_number(value) is not None:
        return compare(oracle_number(value), wanted)
    if op in ("=", "!="):
        return compare(oracle_text(value), oracle_text(float(wanted)))
    return False


def oracle_phrase(tokens: list[str], line: list[str]) -> bool:
    if not tokens:
        return False
    width = len(tokens)
    return any(line[i : i + width] == tokens for i in range(len(line) - width + 1))


def oracle_match(row: dict[str, Any], expr: SearchExpr) -> bool:
    line = tokenize(row["_raw"]) if row.get("_raw") is not None else []
    if isinstance(expr, MatchAll):
        return True
    if isinstance(expr, And):
        return all(oracle_match(row, p) for p in expr.parts)
    if isinstance(expr, Or):
        return any(oracle_match(row, p) for p in expr.parts)
    if isinstance(expr, Not):
        return not oracle_match(row, expr.part)
    if isinstance(expr, Term):
        if "*" in expr.text:
            return any(oracle_wildcard(expr.text.lower(), token) for token in line)
        tokens = tokenize(expr.text)
        if len(tokens) == 1:
            return tokens[0] in line
        return oracle_phrase(tokens, line)
    if isinstance(expr, Phrase):
        return oracle_phrase(tokenize(expr.text), line)
    assert isinstance(expr, FieldCompare)
    return oracle_compare(row.get(expr.field), expr.op, expr.value)


# -- search: strategies ------------------------------------------------------

WORDS = [
    "GET",
    "get",
    "Error",
    "error",
    "errors",
    "timeout",
    "10.0.0.1",
    "web-01.example.com",
    "/api/v1/users",
    "3.14",
    "status=500",
    "ÄRGER",
    "naïve",
    "user_id",
    ":8080",
    "x",
    "*",
]
SEPARATORS = [" ", " ", "-", ".", ", ", "", "/"]

lines = st.lists(st.tuples(st.sampled_from(WORDS), st.sampled_from(SEPARATORS)), max_size=8).map(
    lambda parts: "".join(w + s for w, s in parts)
)
search_texts = st.one_of(
    st.sampled_from(
        [
            "error",
            "ERROR",
            "err*",
            "*or",
            "*",
            "e*r*",
            "web*",
            "10.0.0.*",
            "3.1*",
            "get error",
            "api v1",
            "web-01",
            "naïve",
            "ärger",
            "",
            "...",
            "user_*",
        ]
    ),
    st.text(alphabet="aeEr*. -01", max_size=6),
)
FIELD_VALUES = {
    "status": st.one_of(st.none(), st.sampled_from([200, 404, 500, 503, -1, 0])),
    "host": st.one_of(st.none(), st.sampled_from(["web-1", "web-2", "db", "Web-1", "500", ""])),
    "ratio": st.one_of(
        st.none(), st.sampled_from([0.5, 500.0, -0.0, 1e20, math.inf, math.nan, 2.25])
    ),
    "code": st.one_of(
        st.none(), st.sampled_from(["500", "5e2", " 7 ", "abc", "1_000", "nan", "true", "-inf"])
    ),
    "flag": st.one_of(st.none(), st.booleans()),
}
TYPES = {
    "status": pa.int64(),
    "host": pa.string(),
    "ratio": pa.float64(),
    "code": pa.string(),
    "flag": pa.bool_(),
}


@st.composite
def log_tables(draw: st.DrawFn) -> tuple[pa.Table, list[dict[str, Any]]]:
    rows = []
    for _ in range(draw(st.integers(0, 12))):
        row = {"_raw": draw(st.one_of(st.none(), lines) if draw(st.booleans()) else lines)}
        for name, values in FIELD_VALUES.items():
            row[name] = draw(values)
        rows.append(row)
    columns = draw(st.sets(st.sampled_from(sorted(TYPES))))
    table = pa.table(
        {
            "_raw": pa.array([r["_raw"] for r in rows], pa.string()),
            **{n: pa.array([r[n] for r in rows], TYPES[n]) for n in sorted(columns)},
        }
    )
    # The oracle sees a missing column as a field no row has.
    for row in rows:
        for name in TYPES:
            if name not in columns:
                row[name] = None
    return table, rows


compare_values = st.one_of(
    st.sampled_from(
        ["500", "200", "web-*", "*", "web-1", "abc", "5e2", "500.0", "true", "", "1*", "-inf"]
    ),
    st.sampled_from([500.0, 200.0, 0.0, -1.5, 1e20, math.inf, 0.5, 2.25]),
    st.floats(allow_nan=False, width=32),
)
leaves = st.one_of(
    st.builds(Term, search_texts),
    st.builds(Phrase, search_texts),
    st.builds(
        FieldCompare,
        st.sampled_from([*sorted(TYPES), "missing"]),
        st.sampled_from(sorted(OPS)),
        compare_values,
    ),
    st.just(MatchAll()),
)
search_exprs = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.builds(And, st.lists(inner, min_size=1, max_size=3).map(tuple)),
        st.builds(Or, st.lists(inner, min_size=1, max_size=3).map(tuple)),
        st.builds(Not, inner),
    ),
    max_leaves=6,
)


@settings(max_examples=examples(300), deadline=None)
@given(log_tables(), search_exprs)
def test_match_rows_agrees_with_the_per_row_oracle(
    data: tuple[pa.Table, list[dict[str, Any]]], expr: SearchExpr
) -> None:
    table, rows = data
    got = np.asarray(match_rows(table, expr), dtype=bool).tolist()
    assert got == [oracle_match(row, expr) for row in rows]


def test_search_terms_phrases_and_wildcards_over_access_logs() -> None:
    logs = access_logs()
    assert sum(match_rows(logs, Term("POST"))) == 1  # case-insensitive
    assert sum(match_rows(logs, Term("api"))) == 6
    assert sum(match_rows(logs, Term("10.0.0.1"))) == 4  # an IPv4 address is one token
    assert sum(match_rows(logs, Term("10.0.0.*"))) == 10
    assert sum(match_rows(logs, Phrase("api users"))) == 4
    assert sum(match_rows(logs, Term("users api"))) == 0  # several tokens: a phrase, in order
    assert sum(match_rows(logs, Term("--"))) == 0  # no token matches nothing
    assert sum(match_rows(logs, Not(Term("--")))) == 10


def test_search_field_comparisons_over_access_logs() -> None:
    logs = access_logs()

    def statuses(expr: SearchExpr) -> list[int]:
        return sorted(logs.filter(pa.array(match_rows(logs, expr))).column("status").to_pylist())

    assert statuses(FieldCompare("status", ">=", 500.0)) == [500, 502, 503]
    assert statuses(FieldCompare("status", "=", "5*")) == [500, 502, 503]
    assert statuses(FieldCompare("status", "=", "500")) == [500]
    assert statuses(FieldCompare("status", "<", "300")) == [200] * 4  # numeric: both parse
    assert statuses(And((FieldCompare("host", "=", "web-1"), Not(Term("GET"))))) == [401, 503]
    assert sum(match_rows(logs, FieldCompare("missing", "!=", "x"))) == 0
    assert sum(match_rows(logs, Not(FieldCompare("missing", "=", "x")))) == 10
    assert sum(match_rows(logs, FieldCompare("host", "=", "*"))) == 10


def test_field_compare_quirks() -> None:
    table = pa.table(
        {
            "ratio": pa.array([500.0, 0.5, None], pa.float64()),
            "code": pa.array(["5e2", "abc", "500"], pa.string()),
            "flag": pa.array([True, False, None], pa.bool_()),
        }
    )
    assert match_rows(table, FieldCompare("ratio", "=", "500")).tolist() == [True, False, False]
    assert match_rows(table, FieldCompare("ratio", "=", "0.5")).tolist() == [False, True, False]
    assert match_rows(table, FieldCompare("code", "=", 500.0)).tolist() == [True, False, True]
    assert match_rows(table, FieldCompare("code", "!=", 500.0)).tolist() == [False, True, False]
    assert match_rows(table, FieldCompare("code", ">", 1.0)).tolist() == [True, False, True]
    assert match_rows(table, FieldCompare("code", ">", "b")).tolist() == [False, False, False]
    assert match_rows(table, FieldCompare("flag", "=", "true")).tolist() == [True, False, False]
    assert match_rows(table, FieldCompare("flag", "!=", "true")).tolist() == [False, True, False]


def test_search_command_filters_rows() -> None:
    logs = access_logs()
    out = run(logs, Search(And((Term("api"), FieldCompare("status", ">=", 500.0)))))
    assert column(out, "uri") == ["/api/orders", "/api/users/7", "/api/users"]


# -- expressions -------------------------------------------------------------


def nullable() -> pa.Table:
    return pa.table(
        {
            "a": pa.array([6, None, -7, 0], pa.int64()),
            "b": pa.array([4, 2, 2, None], pa.int64()),
            "x": pa.array([1.5, 2.0, None, -0.5], pa.float64()),
            "s": pa.array(["ab", None, "12", " 3.5 "], pa.string()),
            "t": pa.array(["CD", "e", None, "f"], pa.string()),
            "ok": pa.array([True, None, False, True], pa.bool_()),
        }
    )


def test_arithmetic_propagates_nulls_and_keeps_integers() -> None:
    t = nullable()
    assert ev(Binary("+", ref("a"), ref("b")), t) == [10, None, -5, None]
    assert ev(Binary("*", ref("a"), ref("x")), t) == [9.0, None, None, -0.0]
    assert ev(Binary("-", ref("a"), ref("nope")), t) == [None] * 4
    assert ev(Unary("-", ref("a")), t) == [-6, None, 7, 0]
    assert ev(Binary("+", ref("a"), num(1)), t) == [7, None, -6, 1]


def test_division_and_modulo() -> None:
    t = nullable()
    assert ev(Binary("/", ref("a"), ref("b")), t) == [1.5, None, -3.5, None]
    assert ev(Binary("/", ref("a"), num(0)), t) == [None] * 4
    assert ev(Binary("/", ref("x"), Binary("-", ref("a"), ref("a"))), t) == [None] * 4
    assert ev(Binary("%", ref("a"), ref("b")), t) == [2, None, -1, None]  # sign of the dividend
    assert ev(Binary("%", ref("a"), num(0)), t) == [None] * 4
    assert ev(Binary("%", ref("x"), num(1)), t) == [0.5, 0.0, None, -0.5]


def test_integer_overflow_is_an_error() -> None:
    t = pa.table({"a": pa.array([2**62], pa.int64())})
    with pytest.raises(InvalidInput, match="overflow"):
        evaluate(Binary("*", ref("a"), num(4), at=9), t, now_ms=0)


def test_strings_join_and_are_not_numbers() -> None:
    t = nullable()
    assert ev(Binary("+", ref("s"), ref("t")), t) == ["abCD", None, None, " 3.5 f"]
    assert ev(Binary(".", ref("a"), ref("t")), t) == ["6CD", None, None, "0f"]
    assert ev(Binary(".", ref("x"), Literal_("!")), t) == ["1.5!", "2!", None, "-0.5!"]
    with pytest.raises(InvalidInput, match=r"tonumber.*|offset 4"):
        evaluate(Binary("+", ref("s"), num(1), at=4), t, now_ms=0)
    with pytest.raises(InvalidInput, match="offset 3"):
        evaluate(Binary("*", ref("ok"), num(2), at=3), t, now_ms=0)
    assert ev(Binary("+", Call("tonumber", (ref("s"),)), num(1)), t) == [None, None, 13, 4.5]


def test_comparisons_and_logic() -> None:
    t = nullable()
    assert ev(Binary(">", ref("a"), ref("x")), t) == [True, None, None, True]
    assert ev(Binary("==", ref("s"), Literal_("12")), t) == [False, None, True, False]
    assert ev(Binary("=", ref("a"), Literal_("6")), t) == [True, None, False, False]
    assert ev(Binary("and", ref("ok"), Literal_(False)), t) == [False, False, False, False]
    assert ev(Binary("or", ref("ok"), Literal_(True)), t) == [True, True, True, True]
    assert ev(Unary("not", ref("ok")), t) == [False, None, True, False]
    with pytest.raises(InvalidInput, match="cannot order"):
        evaluate(Binary("<", ref("a"), ref("s")), t, now_ms=0)
    with pytest.raises(InvalidInput, match="condition"):
        evaluate(Binary("and", ref("a"), ref("ok")), t, now_ms=0)


def test_where_keeps_only_true_rows() -> None:
    logs = access_logs()
    out = run(logs, Where(Binary(">=", ref("status"), num(500))))
    assert sorted(column(out, "status")) == [500, 502, 503]
    t = nullable()
    assert column(run(t, Where(Binary(">", ref("b"), num(1)))), "a") == [6, None, -7]
    assert run(t, Where(Binary(">", ref("nope"), num(1)))).num_rows == 0
    assert column(run(t, Where(Call("isnull", (ref("x"),)))), "a") == [-7]
    with pytest.raises(InvalidInput, match=r"\| where \(at offset 2\).*not true/false"):
        run(t, Where(ref("a"), at=2))


def test_conditional_functions() -> None:
    t = nullable()
    condition = Binary(">", ref("a"), num(0))
    assert ev(Call("if", (condition, Literal_("pos"), Literal_("other"))), t) == [
        "pos",
        "other",
        "other",
        "other",
    ]
    assert ev(Call("if", (condition, ref("a"), ref("x"))), t) == [6.0, 2.0, None, -0.5]
    assert ev(Call("if", (condition, num(1), Literal_("no"))), t) == ["1", "no", "no", "no"]
    case = Call(
        "case",
        (
            Binary("<", ref("a"), num(0)),
            Literal_("neg"),
            Binary("=", ref("a"), num(0)),
            Literal_("zero"),
        ),
    )
    assert ev(case, t) == [None, None, "neg", "zero"]
    assert ev(Call("coalesce", (ref("nope"), ref("a"), ref("b"))), t) == [6, 2, -7, 0]
    assert ev(Call("null", ()), t) == [None] * 4
    assert ev(Call("isnotnull", (ref("s"),)), t) == [True, False, True, True]
    with pytest.raises(InvalidInput, match="pairs"):
        evaluate(Call("case", (Literal_(True), num(1), Literal_(False))), t, now_ms=0)


def test_text_functions() -> None:
    t = nullable()
    assert ev(Call("len", (ref("t"),)), t) == [2, 1, None, 1]
    assert ev(Call("lower", (ref("t"),)), t) == ["cd", "e", None, "f"]
    assert ev(Call("upper", (ref("a"),)), t) == ["6", None, "-7", "0"]  # numbers become text
    assert ev(Call("trim", (ref("s"),)), t) == ["ab", None, "12", "3.5"]
    assert ev(Call("trim", (ref("t"), Literal_("C"))), t) == ["D", "e", None, "f"]
    assert ev(Call("tostring", (ref("x"),)), t) == ["1.5", "2", None, "-0.5"]
    logs = access_logs()
    assert ev(Call("substr", (ref("uri"), num(2), num(3))), logs)[-1] == "ind"
    assert ev(Call("substr", (ref("uri"), num(-4))), logs)[-1] == "html"
    assert ev(Call("like", (ref("uri"), Literal_("/api/users%"))), logs).count(True) == 4
    assert ev(Call("like", (ref("method"), Literal_("P_T"))), logs).count(True) == 1
    assert ev(Call("match", (ref("uri"), Literal_(r"^/api/\w+/\d+$"))), logs).count(True) == 2
    replaced = ev(Call("replace", (ref("uri"), Literal_(r"/(\d+)$"), Literal_(r"/<\1>"))), logs)
    assert replaced[1] == "/api/users/<7>"
    with pytest.raises(InvalidInput, match="not supported"):
        evaluate(Call("split", (ref("uri"), Literal_("/"))), logs, now_ms=0)


def test_numeric_functions() -> None:
    t = nullable()
    assert ev(Call("round", (num(2.5),)), t)[0] == 3.0
    assert ev(Call("round", (ref("x"), num(0))), t) == [2.0, 2.0, None, -1.0]
    assert ev(Call("round", (Literal_(1.23456), num(2))), t)[0] == 1.23
    assert ev(Call("abs", (ref("a"),)), t) == [6, None, 7, 0]
    assert ev(Call("floor", (ref("x"),)), t) == [1.0, 2.0, None, -1.0]
    assert ev(Call("ceil", (ref("x"),)), t) == [2.0, 2.0, None, -0.0]
    assert ev(Call("sqrt", (ref("a"),)), t)[:3] == [pytest.approx(6**0.5), None, None]
    assert ev(Call("pow", (ref("b"), num(3))), t) == [64.0, 8.0, 8.0, None]
    assert ev(Call("log", (num(1000),)), t)[0] == pytest.approx(3.0)
    assert ev(Call("log", (num(8), num(2))), t)[0] == pytest.approx(3.0)
    assert ev(Call("log", (num(0),)), t)[0] is None
    assert ev(Call("exp", (num(0),)), t)[0] == 1.0
    assert ev(Call("min", (ref("a"), ref("b"), num(3))), t) == [3, 2, -7, 0]
    assert ev(Call("max", (ref("a"), ref("x"))), t) == [6.0, 2.0, -7.0, 0.0]
    assert ev(Call("tonumber", (Literal_("ff"), num(16))), t)[0] == 255
    assert ev(Call("tonumber", (ref("t"),)), t) == [None] * 4


def test_tonumber_gives_integers_when_every_value_is_one() -> None:
    t = pa.table({"v": pa.array(["1", " 2 ", None, "x"], pa.string())})
    ints = evaluate(Call("tonumber", (ref("v"),)), t, now_ms=0)
    assert ints.type == pa.int64()
    assert ints.to_pylist() == [1, 2, None, None]
    mixed = evaluate(Call("tonumber", (Binary(".", ref("v"), Literal_(".5")),)), t, now_ms=0)
    assert mixed.type == pa.float64()
    assert mixed.to_pylist() == [1.5, None, None, None]  # " 2 .5" is not a number


def test_if_with_a_null_condition_takes_the_else_branch() -> None:
    t = nullable()
    assert ev(Call("if", (ref("ok"), Literal_("y"), Literal_("n"))), t) == ["y", "n", "n", "y"]


def test_time_functions() -> None:
    t = nullable()
    assert ev(Call("now", ()), t) == [NOW_MS] * 4
    fmt = Call("strftime", (Call("now", ()), Literal_("%Y-%m-%d %H:%M")))
    assert ev(fmt, t)[0] == "2024-05-01 10:00"


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        (Call("lower", (), at=5), r"lower\(\) takes 1 argument, got 0 \(at offset 5\)"),
        (Call("nosuch", (num(1),), at=2), r"unknown function nosuch\(\) \(at offset 2\)"),
        (Call("round", (num(1.5), ref("a"))), "literal int"),
        (Call("match", (ref("s"), Literal_("(unclosed"))), "bad regular expression"),
        (Call("sqrt", (Literal_("nine"),), at=1), "needs numbers"),
    ],
)
def test_bad_calls_raise_invalid_input(expr: Expr, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        evaluate(expr, nullable(), now_ms=0)


# -- eval, rex, fields, table ------------------------------------------------


def test_eval_sets_fields_left_to_right() -> None:
    logs = access_logs()
    out = run(
        logs,
        Eval(
            (
                ("kb", Binary("/", ref("bytes"), num(1024))),
                ("big", Binary(">", ref("kb"), num(1))),
                ("status", Binary(".", Literal_("HTTP "), ref("status"))),
            )
        ),
    )
    assert column(out, "kb")[-1] == 5.0
    assert column(out, "big").count(True) == 2
    assert column(out, "status")[-1] == "HTTP 200"
    assert out.column_names[: len(logs.column_names)] == logs.column_names


def test_eval_error_names_the_command_and_offsets() -> None:
    with pytest.raises(InvalidInput, match=r"\| eval \(at offset 3\).*offset 9"):
        run(access_logs(), Eval((("x", Binary("-", ref("uri"), num(1), at=9)),), at=3))


def test_rex_extracts_named_groups_from_raw() -> None:
    logs = access_logs()
    out = run(logs, Rex(r'"(?<verb>[A-Z]+) (?<path>\S+) HTTP/(?P<version>[\d.]+)"'))
    assert column(out, "verb") == column(logs, "method")
    assert column(out, "path") == column(logs, "uri")
    assert set(column(out, "version")) == {"1.1"}
    out = run(logs, Rex(r"^/api/(?<resource>[a-z]+)", field="uri"))
    assert column(out, "resource").count(None) == 4
    assert column(out, "resource").count("users") == 4
    with pytest.raises(InvalidInput, match=r"\| rex \(at offset 8\).*bad regular expression"):
        run(logs, Rex("(?<x>[", at=8))
    with pytest.raises(InvalidInput, match="named group"):
        run(logs, Rex("[a-z]+"))


def test_fields_and_table() -> None:
    logs = access_logs()
    assert run(logs, Fields(("status", "host", "nope"))).column_names == ["status", "host"]
    dropped = run(logs, Fields(("_raw", "source*"), exclude=True)).column_names
    assert dropped == ["_time", "clientip", "method", "uri", "status", "bytes", "host"]
    out = run(logs, Table(("host", "nope", "s*")))
    assert out.column_names == ["host", "nope", "source", "sourcetype", "status"]
    assert column(out, "nope") == [None] * 10


# -- sort, head, tail, dedup -------------------------------------------------


def test_sort_over_access_logs() -> None:
    logs = access_logs()
    out = run(logs, Sort((SortKey("status", descending=True), SortKey("bytes"))))
    pairs = list(zip(column(out, "status"), column(out, "bytes"), strict=True))
    assert pairs[:3] == [(503, 120), (502, 0), (500, 310)]
    assert pairs[-4:] == [(200, 64), (200, 812), (200, 5120), (200, 5120)]
    assert run(logs, Sort((SortKey("bytes"),), limit=2)).num_rows == 2


def test_sort_mixed_strings_numbers_first() -> None:
    t = pa.table({"v": pa.array(["b", "10", None, "9", "a", "-1.5"], pa.string())})
    assert column(run(t, Sort((SortKey("v"),))), "v") == ["-1.5", "9", "10", "a", "b", None]
    assert column(run(t, Sort((SortKey("v", True),))), "v") == ["b", "a", "10", "9", "-1.5", None]


def sort_oracle(rows: list[dict[str, Any]], keys: list[tuple[str, bool]]) -> list[int]:
    order = list(range(len(rows)))
    for name, descending in reversed(keys):

        def key(i: int, name: str = name) -> Any:
            value = rows[i][name]
            if isinstance(value, str):
                number = oracle_number(value)
                if number is not None and not math.isnan(number):
                    return (0, number, value)
                return (1, 0.0, value)
            return value

        present = [i for i in order if rows[i][name] is not None]
        absent = [i for i in order if rows[i][name] is None]
        order = sorted(present, key=key, reverse=descending) + absent
    return order


sortable_rows = st.lists(
    st.fixed_dictionaries(
        {
            "i": st.one_of(st.none(), st.integers(-3, 3)),
            "s": st.one_of(st.none(), st.sampled_from(["a", "B", "b", "10", "9", "2.5", "-1"])),
            "f": st.one_of(st.none(), st.sampled_from([0.5, -1.0, 2.0, math.inf])),
            "n": st.integers(0, 10**6),
        }
    ),
    max_size=25,
)
SORT_TYPES = {"i": pa.int64(), "s": pa.string(), "f": pa.float64(), "n": pa.int64()}


def sortable_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.table({n: pa.array([r[n] for r in rows], t) for n, t in SORT_TYPES.items()})


@settings(max_examples=examples(150), deadline=None)
@given(
    sortable_rows,
    st.lists(st.tuples(st.sampled_from(["i", "s", "f", "missing"]), st.booleans()), max_size=3),
)
def test_sort_agrees_with_a_stable_list_sort(
    rows: list[dict[str, Any]], keys: list[tuple[str, bool]]
) -> None:
    for row in rows:
        row["missing"] = None
    out = run(sortable_table(rows), Sort(tuple(SortKey(n, d) for n, d in keys)))
    assert column(out, "n") == [rows[i]["n"] for i in sort_oracle(rows, keys)]


@settings(max_examples=examples(150), deadline=None)
@given(
    sortable_rows,
    st.lists(st.sampled_from(["i", "s", "f"]), min_size=1, max_size=2, unique=True),
    st.integers(1, 3),
    st.integers(0, 30),
)
def test_dedup_head_tail_agree_with_list_oracles(
    rows: list[dict[str, Any]], fields: list[str], keep: int, count: int
) -> None:
    table = sortable_table(rows)
    seen: dict[tuple[Any, ...], int] = {}
    expected = []
    for row in rows:
        key = tuple(row[f] for f in fields)
        if None in key:
            continue
        seen[key] = seen.get(key, 0) + 1
        if seen[key] <= keep:
            expected.append(row["n"])
    assert column(run(table, Dedup(tuple(fields), keep=keep)), "n") == expected
    ns = [r["n"] for r in rows]
    assert column(run(table, Head(count)), "n") == ns[:count]
    assert column(run(table, Tail(count)), "n") == ns[max(len(ns) - count, 0) :]


def test_head_tail_dedup_over_access_logs() -> None:
    logs = access_logs()
    assert column(run(logs, Head(2)), "uri") == ["/api/orders", "/api/users/7"]
    assert column(run(logs, Tail(2)), "uri") == ["/api/users", "/index.html"]
    assert run(logs, Head()).num_rows == 10
    assert column(run(logs, Dedup(("host",))), "host") == ["web-1", "web-3", "web-2"]
    assert run(logs, Dedup(("clientip",), keep=2)).num_rows == 7
    with pytest.raises(InvalidInput, match=r"\| head"):
        run(logs, Head(-1))


# -- stats ---------------------------------------------------------------------


def test_stats_over_access_logs() -> None:
    logs = access_logs()
    out = run(
        logs,
        Stats(
            (
                Agg("count", None, "count"),
                Agg("avg", "bytes", "avg(bytes)"),
                Agg("sum", "bytes", "total"),
                Agg("dc", "clientip", "dc(clientip)"),
                Agg("values", "status", "values(status)"),
                Agg("median", "bytes", "median(bytes)"),
                Agg("perc", "bytes", "p90(bytes)", percentile=90.0),
                Agg("first", "uri", "first(uri)"),
                Agg("last", "uri", "last(uri)"),
                Agg("stdev", "bytes", "stdev(bytes)"),
            ),
            by=("host",),
        ),
    )
    assert out.column_names[:3] == ["host", "count", "avg(bytes)"]
    by_host = {row["host"]: row for row in out.to_pylist()}
    assert column(out, "host") == ["web-1", "web-2", "web-3"]
    web1 = by_host["web-1"]
    assert web1["count"] == 5
    assert web1["total"] == 5120 + 97 + 120 + 153 + 0
    assert web1["avg(bytes)"] == pytest.approx(5490 / 5)
    assert web1["dc(clientip)"] == 3
    assert web1["values(status)"] == ["200", "401", "404", "502", "503"]
    assert web1["median(bytes)"] == 120.0
    assert web1["p90(bytes)"] == pytest.approx(np.percentile([5120, 97, 120, 153, 0], 90))
    assert web1["first(uri)"] == "/api/orders"  # rows arrive newest first
    assert web1["last(uri)"] == "/index.html"
    assert web1["stdev(bytes)"] == pytest.approx(np.std([5120, 97, 120, 153, 0], ddof=1))


def test_stats_without_by_and_over_no_rows() -> None:
    logs = access_logs()
    out = run(logs, Stats((Agg("count", None, "count"), Agg("max", "status", "worst"))))
    assert out.to_pylist() == [{"count": 10, "worst": 503}]
    none = run(
        logs,
        Where(Literal_(False)),
        Stats((Agg("count", None, "count"), Agg("avg", "bytes", "avg(bytes)"))),
    )
    assert none.to_pylist() == [{"count": 0, "avg(bytes)": None}]
    by = run(logs.slice(0, 0), Stats((Agg("count", None, "count"),), by=("host",)))
    assert by.num_rows == 0


def test_stats_drops_rows_lacking_a_by_field_and_reads_numbers_from_text() -> None:
    t = pa.table(
        {
            "k": pa.array(["b", None, "a", "b"], pa.string()),
            "v": pa.array(["1", "2", "x", "2.5"], pa.string()),
        }
    )
    out = run(t, Stats((Agg("count", None, "c"), Agg("sum", "v", "s")), by=("k",)))
    assert out.to_pylist() == [{"k": "a", "c": 1, "s": None}, {"k": "b", "c": 2, "s": 3.5}]


def test_stats_errors_name_the_command() -> None:
    with pytest.raises(InvalidInput, match=r"\| stats \(at offset 4\).*unknown aggregation"):
        run(access_logs(), Stats((Agg("mode", "bytes", "mode(bytes)"),), at=4))
    with pytest.raises(InvalidInput, match="two columns"):
        run(access_logs(), Stats((Agg("count", None, "n"), Agg("dc", "host", "n"))))


stats_rows = st.lists(
    st.tuples(
        st.one_of(st.none(), st.sampled_from(["alpha", "beta", "gamma", "delta"])),
        st.one_of(st.none(), st.integers(-1000, 1000)),
    ),
    max_size=40,
)


@settings(max_examples=examples(150), deadline=None)
@given(stats_rows)
def test_stats_by_field_agrees_with_a_dict_oracle(
    rows: list[tuple[str | None, int | None]],
) -> None:
    table = pa.table(
        {
            "key": pa.array([k for k, _ in rows], pa.string()),
            "value": pa.array([v for _, v in rows], pa.int64()),
        }
    )
    aggs = (
        Agg("count", None, "count"),
        Agg("count", "value", "count(value)"),
        Agg("sum", "value", "sum(value)"),
        Agg("avg", "value", "avg(value)"),
        Agg("min", "value", "min(value)"),
        Agg("max", "value", "max(value)"),
        Agg("dc", "value", "dc(value)"),
        Agg("median", "value", "median(value)"),
    )
    groups: dict[str, list[int | None]] = {}
    for key, value in rows:
        if key is not None:
            groups.setdefault(key, []).append(value)
    expected = []
    for key in sorted(groups):
        values = [v for v in groups[key] if v is not None]
        ordered = sorted(values)
        median = None
        if ordered:
            middle = (len(ordered) - 1) / 2
            low, high = ordered[math.floor(middle)], ordered[math.ceil(middle)]
            median = low + (high - low) * (middle - math.floor(middle))
        expected.append(
            {
                "key": key,
                "count": len(groups[key]),
                "count(value)": len(values),
                "sum(value)": sum(values) if values else None,
                "avg(value)": sum(values) / len(values) if values else None,
                "min(value)": min(values, default=None),
                "max(value)": max(values, default=None),
                "dc(value)": len(set(values)),
                "median(value)": median,
            }
        )
    got = run(table, Stats(aggs, by=("key",))).to_pylist()
    assert got == [
        {name: pytest.approx(v) if isinstance(v, float) else v for name, v in row.items()}
        for row in expected
    ]


# -- timechart -----------------------------------------------------------------


def test_timechart_fills_empty_buckets() -> None:
    logs = access_logs()
    out = run(logs, Timechart(MINUTE, (Agg("count", None, "count"), Agg("max", "bytes", "max"))))
    start = (NOW_MS - 300_000) // MINUTE * MINUTE
    assert column(out, "_time") == [start + i * MINUTE for i in range(5)]
    assert column(out, "count") == [3, 3, 0, 1, 3]
    assert column(out, "max") == [5120, 310, None, 5120, 153]


def test_timechart_by_keeps_the_top_series_and_sums_the_rest_into_other() -> None:
    logs = access_logs()
    out = run(logs, Timechart(MINUTE, (Agg("count", None, "count"),), by="host", limit=1))
    assert out.column_names == ["_time", "web-1", "OTHER"]
    assert column(out, "web-1") == [2, 1, 0, 0, 2]
    assert column(out, "OTHER") == [1, 2, 0, 1, 1]
    everything = run(logs, Timechart(MINUTE, (Agg("count", None, "count"),), by="status"))
    assert everything.column_names == ["_time", "200", "304", "401", "404", "500", "502", "503"]
    assert sum(column(everything, "200")) == 4
    two = run(
        logs,
        Timechart(5 * MINUTE, (Agg("count", None, "n"), Agg("sum", "bytes", "b")), by="method"),
    )
    assert "n: GET" in two.column_names
    assert column(two, "b: POST") == [97]


def test_timechart_rejects_a_bad_span() -> None:
    with pytest.raises(InvalidInput, match=r"\| timechart.*span"):
        run(access_logs(), Timechart(0, (Agg("count", None, "count"),)))


# -- top, rare, patterns -------------------------------------------------------


def test_top_and_rare() -> None:
    logs = access_logs()
    top = run(logs, Top(("host",), limit=2))
    assert top.to_pylist() == [
        {"host": "web-1", "count": 5, "percent": 50.0},
        {"host": "web-2", "count": 3, "percent": 30.0},
    ]
    rare = run(logs, Rare(("method",), limit=3))
    assert column(rare, "method") == ["DELETE", "POST", "PUT"]
    by = run(logs, Top(("method",), limit=1, by=("host",)))
    assert by.column_names == ["host", "method", "count", "percent"]
    assert by.to_pylist()[0] == {"host": "web-1", "method": "GET", "count": 3, "percent": 60.0}
    assert by.num_rows == 3
    with pytest.raises(InvalidInput, match=r"\| top .*by field"):
        run(logs, Top(("host",), by=("host",)))


def test_patterns_groups_lines_by_template() -> None:
    lines = [
        "user 17 logged in",
        "connection reset by peer",
        "user 42 logged in",
        "user 7 logged in",
        None,
    ]
    t = pa.table({"_raw": pa.array(lines, pa.string())})
    out = run(t, Patterns())
    assert out.to_pylist() == [
        {"pattern": "user <*> logged in", "count": 3, "sample": "user 17 logged in"},
        {
            "pattern": "connection reset by peer",
            "count": 1,
            "sample": "connection reset by peer",
        },
    ]
    assert run(t, Patterns(limit=1)).num_rows == 1
    assert column(run(access_logs(), Patterns(field="method")), "pattern")[0] == "GET"


# -- required fields -----------------------------------------------------------


@pytest.mark.parametrize(
    ("commands", "expected"),
    [
        ((), None),
        ((Where(Binary(">", ref("status"), num(1))), Head(5)), None),
        ((Stats((Agg("count", None, "count"),), by=("host",)),), {"host"}),
        (
            (
                Where(Binary(">", ref("status"), num(1))),
                Eval((("kb", Binary("/", ref("bytes"), num(1024))),)),
                Stats((Agg("avg", "kb", "avg(kb)"),)),
                Sort((SortKey("avg(kb)"),)),
            ),
            {"status", "bytes", "kb"},
        ),
        (
            (Search(And((Term("error"), FieldCompare("host", "=", "web-*")))), Top(("uri",))),
            {"_raw", "host", "uri"},
        ),
        ((Timechart(MINUTE, (Agg("count", None, "count"),), by="status"),), {"_time", "status"}),
        ((Rex("(?<x>a)"), Table(("x", "host"))), {"_raw", "x", "host"}),
        ((Fields(("host",)), Stats((Agg("count", None, "count"),), by=("status",))), {"host"}),
        ((Fields(("_raw",), exclude=True), Rare(("host",), by=("uri",))), {"host", "uri"}),
        ((Table(("host*",)),), None),
        ((Dedup(("clientip",)), Patterns()), {"clientip", "_raw"}),
        ((Sort((SortKey("bytes"),)), Patterns(field="uri")), {"bytes", "uri"}),
    ],
)
def test_required_fields(commands: tuple[Any, ...], expected: set[str] | None) -> None:
    got = required_fields(commands)
    assert got == (None if expected is None else frozenset(expected))


def test_required_fields_are_enough_to_get_the_same_answer() -> None:
    logs = access_logs()
    commands = (
        Search(Term("api")),
        Eval((("kb", Binary("/", ref("bytes"), num(1024))),)),
        Stats((Agg("sum", "kb", "kb"), Agg("count", None, "count")), by=("host",)),
    )
    needed = required_fields(commands)
    assert needed is not None
    narrow = logs.select([c for c in logs.column_names if c in needed])
    assert run(narrow, *commands).equals(run(logs, *commands))


def test_a_million_rows_of_where_and_stats_give_exact_answers() -> None:
    rng = np.random.default_rng(7)
    n = 1_000_000
    status = rng.choice(np.array([200, 301, 404, 500, 503]), n)
    hosts = np.array([f"web-{i}" for i in range(20)])[rng.integers(0, 20, n)]
    table = pa.table({"status": pa.array(status), "host": pa.array(hosts)})
    where = run(table, Where(Binary(">=", ref("status"), num(500))))
    assert where.num_rows == int((status >= 500).sum())
    stats = run(table, Stats((Agg("count", None, "count"),), by=("host",)))
    names, counts = np.unique(hosts, return_counts=True)
    assert stats.to_pylist() == [
        {"host": h, "count": int(c)} for h, c in sorted(zip(names.tolist(), counts, strict=True))
    ]


def test_wildcards_treat_regex_metacharacters_literally() -> None:
    t = pa.table({"_raw": pa.array(["a.b (x) [y]", "axb"], pa.string())})
    assert match_rows(t, Term("a.*")).tolist() == [False, False]
    assert match_rows(t, FieldCompare("_raw", "=", "a.b (x)*")).tolist() == [True, False]
    assert match_rows(t, FieldCompare("_raw", "=", "a?b")).tolist() == [False, False]


FUNCTIONS = [
    "if", "case", "coalesce", "null", "isnull", "isnotnull", "len", "lower", "upper", "substr",
    "trim", "ltrim", "rtrim", "tostring", "tonumber", "round", "abs", "floor", "ceil", "sqrt",
    "pow", "log", "ln", "exp", "like", "match", "replace", "strftime", "now", "min", "max",
    "split", "bogus",
]  # fmt: skip
literals = st.builds(
    Literal_,
    st.one_of(
        st.none(),
        st.booleans(),
        st.sampled_from([0.0, 1.0, -1.0, 2.5, 1e300, -(2.0**63), math.inf, math.nan, 3.0]),
        st.sampled_from(["", "a%", "(x", r"\d+", "%Y", "12", " 3 ", "ab", "[", r"\9"]),
    ),
)
expressions = st.recursive(
    st.one_of(literals, st.builds(FieldRef, st.sampled_from(["a", "b", "x", "s", "ok", "no"]))),
    lambda inner: st.one_of(
        st.builds(Unary, st.sampled_from(["-", "not"]), inner),
        st.builds(
            Binary,
            st.sampled_from(["+", "-", "*", "/", "%", ".", "=", "!=", "<", ">=", "and", "or"]),
            inner,
            inner,
        ),
        st.builds(Call, st.sampled_from(FUNCTIONS), st.lists(inner, max_size=4).map(tuple)),
    ),
    max_leaves=6,
)


@settings(max_examples=examples(300), deadline=None)
@given(expressions)
def test_any_expression_gives_a_value_per_row_or_invalid_input(expr: Expr) -> None:
    table = nullable()
    try:
        values = evaluate(expr, table, now_ms=NOW_MS)
    except InvalidInput:
        return
    assert len(values) == table.num_rows


LOG_FIELDS = ["_time", "_raw", "status", "bytes", "host", "uri", "nope", "kb"]
fields = st.sampled_from(LOG_FIELDS)
aggregations = st.builds(
    lambda func, field, percentile: Agg(
        func,
        None if func == "count" and field == "_raw" else field,
        f"{func}({field})",
        percentile,
    ),
    st.sampled_from(
        ["count", "sum", "avg", "min", "max", "dc", "values", "median", "perc", "stdev", "first"]
    ),
    fields,
    st.sampled_from([None, 0.0, 95.0, 100.0]),
)
commands = st.one_of(
    st.builds(Search, search_exprs),
    st.builds(Where, expressions),
    st.builds(Eval, st.tuples(st.tuples(fields, expressions))),
    st.builds(Rex, st.sampled_from([r"(?<kb>\d+)", r"(?<host>web-\d)", "(?<x>["]), fields),
    st.builds(Fields, st.lists(fields, max_size=3).map(tuple), st.booleans()),
    st.builds(Table, st.lists(st.sampled_from([*LOG_FIELDS, "s*"]), max_size=3).map(tuple)),
    st.builds(Sort, st.lists(st.builds(SortKey, fields, st.booleans()), max_size=2).map(tuple)),
    st.builds(Head, st.integers(0, 12)),
    st.builds(Tail, st.integers(0, 12)),
    st.builds(Dedup, st.lists(fields, min_size=1, max_size=2).map(tuple), st.integers(1, 2)),
    st.builds(
        Stats,
        st.lists(aggregations, max_size=2, unique_by=lambda a: a.name).map(tuple),
        st.lists(fields, max_size=2, unique=True).map(tuple),
    ),
    st.builds(
        Timechart,
        st.sampled_from([MINUTE, 7_000, 3_600_000]),
        st.lists(aggregations, min_size=1, max_size=2, unique_by=lambda a: a.name).map(tuple),
        st.one_of(st.none(), fields),
        st.integers(0, 3),
    ),
    st.builds(Top, st.lists(fields, min_size=1, max_size=2).map(tuple), st.integers(0, 3)),
    st.builds(Rare, st.lists(fields, min_size=1, max_size=1).map(tuple), st.integers(0, 3)),
    st.builds(Patterns, fields, st.one_of(st.none(), st.integers(0, 3))),
)


@settings(max_examples=examples(150), deadline=None)
@given(st.lists(commands, max_size=3))
def test_any_pipeline_gives_a_table_or_invalid_input(pipeline: list[Any]) -> None:
    try:
        out = run_commands(access_logs(), pipeline, now_ms=NOW_MS)
    except InvalidInput:
        return
    assert isinstance(out, pa.Table)
    assert len(set(out.column_names)) == out.num_columns
