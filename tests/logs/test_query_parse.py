"""The log query parser: search syntax, every command, expressions, time bounds, errors, fuzzing."""

from __future__ import annotations

import dataclasses
import string
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trusswork.core.errors import InvalidInput, ParseError
from trusswork.logs._ast import (
    AbsoluteTime,
    Agg,
    And,
    Binary,
    Call,
    Dedup,
    Eval,
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
    Query,
    Rare,
    RelativeTime,
    Rex,
    Search,
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
from trusswork.logs._dsl import MAX_DEPTH, QueryParseError, parse_query, parse_time_bound


def strip(node: Any) -> Any:
    """``node`` with every ``at`` set to 0 (and ``Query.text`` emptied), recursively."""
    if isinstance(node, tuple):
        return tuple(strip(item) for item in node)
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        changes = {f.name: strip(getattr(node, f.name)) for f in dataclasses.fields(node)}
        if "at" in changes:
            changes["at"] = 0
        if isinstance(node, Query):
            changes["text"] = ""
        return dataclasses.replace(node, **changes)
    return node


def search_of(text: str) -> Any:
    return strip(parse_query(text).search)


def command_of(text: str) -> Any:
    (command,) = parse_query(text).commands
    return strip(command)


def expression_of(text: str) -> Any:
    (where,) = parse_query("| where " + text).commands
    assert isinstance(where, Where)
    return strip(where.expr)


def error_of(text: str) -> QueryParseError:
    with pytest.raises(QueryParseError) as info:
        parse_query(text)
    return info.value


def assert_error(text: str, offset: int, fragment: str) -> None:
    error = error_of(text)
    assert error.offset == offset
    assert fragment in error.reason
    assert (error.line, error.column) == (1, offset + 1)
    caret_line = str(error).splitlines()[-1]
    assert caret_line.endswith("^")
    # the caret sits under the offending character of the echoed line
    echoed = str(error).splitlines()[-2]
    assert len(caret_line) - 1 == echoed.index("| ") + 2 + offset


def T(text: str) -> Term:
    return Term(text)


def F(field: str, op: Any, value: str | float) -> FieldCompare:
    return FieldCompare(field, op, value)


# -- search part ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", MatchAll()),
        ("   ", MatchAll()),
        ("*", MatchAll()),
        ("search", MatchAll()),
        ("error", T("error")),
        ("search error", T("error")),
        ("SEARCH error", T("error")),
        ("search=x", F("search", "=", "x")),
        ("err*", T("err*")),
        (
            "10.0.0.1 /api/v1:8080 user@host a-b",
            And((T("10.0.0.1"), T("/api/v1:8080"), T("user@host"), T("a-b"))),
        ),
        ("wow! x", And((T("wow!"), T("x")))),
        ('"hello world"', Phrase("hello world")),
        (r'"say \"hi\" \\ \d"', Phrase('say "hi" \\ \\d')),
        ("a b c", And((T("a"), T("b"), T("c")))),
        ("a AND b", And((T("a"), T("b")))),
        ("a OR b", Or((T("a"), T("b")))),
        ("a or b", And((T("a"), T("or"), T("b")))),
        ("not a", And((T("not"), T("a")))),
        ("ANDROID ORACLE NOTE", And((T("ANDROID"), T("ORACLE"), T("NOTE")))),
        ("NOT a", Not(T("a"))),
        ("NOT(a)", Not(T("a"))),
        ("-a", Not(T("a"))),
        ('-"a b"', Not(Phrase("a b"))),
        ("-status=500", Not(F("status", "=", 500.0))),
        ("-(a OR b)", Not(Or((T("a"), T("b"))))),
        ("(a)", T("a")),
        ("a(b)", And((T("a"), T("b")))),
        ("status>=500", F("status", ">=", 500.0)),
        ("status >= 500", F("status", ">=", 500.0)),
        ("status = 500", F("status", "=", 500.0)),
        ('status="500"', F("status", "=", "500")),
        ("host=web-*", F("host", "=", "web-*")),
        ("level!=debug", F("level", "!=", "debug")),
        ("x<1.5 y>-2 z<=1e3", And((F("x", "<", 1.5), F("y", ">", -2.0), F("z", "<=", 1000.0)))),
        ("ip=10.0.0.1", F("ip", "=", "10.0.0.1")),
        ("http.status=404", F("http.status", "=", 404.0)),
        ("sd.x-y.z_1=a", F("sd.x-y.z_1", "=", "a")),
        ("user=*", F("user", "=", "*")),
        ("url=a=b", F("url", "=", "a=b")),
        ('msg="a | b"', F("msg", "=", "a | b")),
        ("a=b(c)", And((F("a", "=", "b"), T("c")))),
    ],
)
def test_search(query: str, expected: Any) -> None:
    assert search_of(query) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # NOT binds tighter than AND, AND (explicit or implicit) tighter than OR
        ("a b OR c", Or((And((T("a"), T("b"))), T("c")))),
        ("a OR b c", Or((T("a"), And((T("b"), T("c")))))),
        ("a AND b OR c AND d", Or((And((T("a"), T("b"))), And((T("c"), T("d")))))),
        ("NOT a OR b", Or((Not(T("a")), T("b")))),
        ("NOT a b", And((Not(T("a")), T("b")))),
        ("NOT NOT a", Not(Not(T("a")))),
        ("a OR b OR c", Or((T("a"), T("b"), T("c")))),
        ("(a OR b) c", And((Or((T("a"), T("b"))), T("c")))),
        ("a (b c)", And((T("a"), And((T("b"), T("c")))))),
        ("-a -b OR c", Or((And((Not(T("a")), Not(T("b")))), T("c")))),
    ],
)
def test_search_precedence(query: str, expected: Any) -> None:
    assert search_of(query) == expected


def test_offsets_of_search_nodes() -> None:
    query = parse_query('  error (a OR -b) "p q" status>=5')
    search = query.search
    assert isinstance(search, And)
    assert search.at == 2
    error, group, phrase, compare = search.parts
    # a group in parentheses starts inside them; the And around it starts at its first item
    assert (error.at, group.at, phrase.at, compare.at) == (2, 9, 18, 24)
    assert isinstance(group, Or) and group.parts[1] == Not(Term("b", 15), 14)
    assert parse_query("search   | head").search == MatchAll(9)


# -- time bounds ------------------------------------------------------------------

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", RelativeTime(0)),
        ("-15m", RelativeTime(-15 * MINUTE)),
        ("-15min", RelativeTime(-15 * MINUTE)),
        ("-2h", RelativeTime(-2 * HOUR)),
        ("-2hr", RelativeTime(-2 * HOUR)),
        ("+1d", RelativeTime(DAY)),
        ("-1day", RelativeTime(-DAY)),
        ("-30s", RelativeTime(-30_000)),
        ("-30sec", RelativeTime(-30_000)),
        ("-1w", RelativeTime(-7 * DAY)),
        ("-1week", RelativeTime(-7 * DAY)),
        ("-250ms", RelativeTime(-250)),
        ("-1h@h", RelativeTime(-HOUR, "h")),
        ("-7d@week", RelativeTime(-7 * DAY, "w")),
        ("@d", RelativeTime(0, "d")),
        ("now@min", RelativeTime(0, "m")),
        ("0", AbsoluteTime(0)),
        ("1714557600", AbsoluteTime(1_714_557_600_000)),
        ("1714557600.25", AbsoluteTime(1_714_557_600_250)),
        ("2024-05-01T10:00:00Z", AbsoluteTime(1_714_557_600_000)),
        ("2024-05-01T12:00:00+02:00", AbsoluteTime(1_714_557_600_000)),
        ("2024-05-01T10:00:00", AbsoluteTime(1_714_557_600_000)),
        ("2024-05-01T10:00:00.5Z", AbsoluteTime(1_714_557_600_500)),
        ("2024-05-01", AbsoluteTime(1_714_521_600_000)),
    ],
)
def test_parse_time_bound(text: str, expected: Any) -> None:
    assert strip(parse_time_bound(text)) == expected


def test_time_bound_offsets() -> None:
    assert parse_time_bound("  -15m ") == RelativeTime(-15 * MINUTE, None, 2)
    query = parse_query('error earliest=-1h@h latest="2024-05-01 10:00:00"')
    assert query.earliest == RelativeTime(-HOUR, "h", 15)
    assert query.latest == AbsoluteTime(1_714_557_600_000, 28)
    assert query.search == Term("error", 0)


@pytest.mark.parametrize(
    ("text", "offset", "fragment"),
    [
        ("", 0, "expected a time"),
        ("yesterday", 0, "expected a time"),
        ("15m", 0, "expected a time"),
        ("-", 1, "expected a number after '-'"),
        ("-15", 3, "expected a time unit"),
        ("-15mon", 3, "unknown time unit 'mon'"),
        ("-1h@", 4, "snap to"),
        ("-1h@ms", 4, "snap to"),
        ("-1h@hx", 4, "snap to"),
        ("-1h+", 3, "unexpected '+'"),
        ("nowish", 3, "unexpected 'i'"),
        ("2024-13-01", 0, "invalid ISO 8601"),
        ("2024-05-01T10:00:00Q", 0, "invalid ISO 8601"),
        ("99999999999999999", 0, "beyond the year 9999"),
        ("-99999999999w", 1, "beyond 9999 years"),
    ],
)
def test_time_bound_errors(text: str, offset: int, fragment: str) -> None:
    with pytest.raises(QueryParseError) as info:
        parse_time_bound(text)
    assert info.value.offset == offset
    assert fragment in info.value.reason


@given(st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9999, 12, 30)))
def test_iso_time_bounds_agree_with_datetime(moment: datetime) -> None:
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    expected = (moment.replace(tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(
        milliseconds=1
    )
    assert parse_time_bound(moment.isoformat() + "Z") == AbsoluteTime(expected)
    shifted = moment.replace(tzinfo=UTC).astimezone(timezone(timedelta(hours=-5)))
    assert parse_time_bound(shifted.isoformat()) == AbsoluteTime(expected)


@given(
    st.integers(0, 10**5),
    st.sampled_from([("s", 1000), ("m", MINUTE), ("h", HOUR), ("d", DAY), ("w", 7 * DAY)]),
    st.sampled_from(["-", "+"]),
    st.sampled_from([None, "s", "m", "h", "d", "w"]),
)
def test_relative_time_bounds(
    count: int, unit: tuple[str, int], sign: str, snap: str | None
) -> None:
    text = f"{sign}{count}{unit[0]}" + (f"@{snap}" if snap else "")
    offset = count * unit[1] * (-1 if sign == "-" else 1)
    assert parse_time_bound(text) == RelativeTime(offset, snap)


# -- commands ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("| search a OR b", Search(Or((T("a"), T("b"))))),
        ("| SEARCH status>=500", Search(F("status", ">=", 500.0))),
        ("| where x > 1", Where(Binary(">", FieldRef("x"), Literal_(1.0)))),
        ("| eval a=1", Eval((("a", Literal_(1.0)),))),
        (
            "| eval a = x * 2, 'b c'=lower(host), http.code=\"x\"",
            Eval(
                (
                    ("a", Binary("*", FieldRef("x"), Literal_(2.0))),
                    ("b c", Call("lower", (FieldRef("host"),))),
                    ("http.code", Literal_("x")),
                )
            ),
        ),
        ('| rex "(?<user>\\w+)"', Rex("(?P<user>\\w+)")),
        ('| rex field=msg "(?P<user>\\w+) (?<=x)y"', Rex("(?P<user>\\w+) (?<=x)y", "msg")),
        ('| rex "[(?<]x(?<a>b)"', Rex("[(?<]x(?P<a>b)")),
        ('| rex "x\\(?<a>(?<b>c)" field=m', Rex("x\\(?<a>(?P<b>c)", "m")),
        ('| rex "a\\"(?<q>b)"', Rex('a"(?P<q>b)')),
        ("| fields a, b", Fields(("a", "b"))),
        ("| fields a b,c", Fields(("a", "b", "c"))),
        ("| fields - a, b", Fields(("a", "b"), exclude=True)),
        ("| fields -a", Fields(("a",), exclude=True)),
        ("| fields + a*", Fields(("a*",))),
        ("| table host*, http.status, 'odd name'", Table(("host*", "http.status", "odd name"))),
        ("| sort -count, host", Sort((SortKey("count", True), SortKey("host")))),
        ("| sort 10 +a b", Sort((SortKey("a"), SortKey("b")), limit=10)),
        ("| sort limit=5 - a", Sort((SortKey("a", True),), limit=5)),
        ("| sort a desc, b asc", Sort((SortKey("a", True), SortKey("b")))),
        ("| sort desc", Sort((SortKey("desc"),))),
        ("| head", Head()),
        ("| head 0", Head(0)),
        ("| HEAD 25", Head(25)),
        ("| head limit=3", Head(3)),
        ("| tail", Tail()),
        ("| tail 7", Tail(7)),
        ("| dedup host", Dedup(("host",))),
        ("| dedup 3 host, status", Dedup(("host", "status"), 3)),
        ("| stats count", Stats((Agg("count", None, "count"),))),
        (
            "| stats count, count(x), sum(b) as total by host, status",
            Stats(
                (
                    Agg("count", None, "count"),
                    Agg("count", "x", "count(x)"),
                    Agg("sum", "b", "total"),
                ),
                ("host", "status"),
            ),
        ),
        (
            "| stats avg(a) mean(a) MIN(a) max(a) dc(u) distinct_count(u) values(v) by h",
            Stats(
                (
                    Agg("avg", "a", "avg(a)"),
                    Agg("avg", "a", "mean(a)"),
                    Agg("min", "a", "min(a)"),
                    Agg("max", "a", "max(a)"),
                    Agg("dc", "u", "dc(u)"),
                    Agg("dc", "u", "distinct_count(u)"),
                    Agg("values", "v", "values(v)"),
                ),
                ("h",),
            ),
        ),
        (
            "| stats median(l), p95(l), perc99(l), percentile50(l), p99.9(l) AS slow, stdev(l), "
            "first(m), last(m)",
            Stats(
                (
                    Agg("median", "l", "median(l)"),
                    Agg("perc", "l", "p95(l)", 95.0),
                    Agg("perc", "l", "perc99(l)", 99.0),
                    Agg("perc", "l", "percentile50(l)", 50.0),
                    Agg("perc", "l", "slow", 99.9),
                    Agg("stdev", "l", "stdev(l)"),
                    Agg("first", "m", "first(m)"),
                    Agg("last", "m", "last(m)"),
                )
            ),
        ),
        ("| stats avg( http.bytes )", Stats((Agg("avg", "http.bytes", "avg(http.bytes)"),))),
        ("| timechart count", Timechart(60_000, (Agg("count", None, "count"),))),
        (
            "| timechart span=30s limit=3 count, avg(x) by status",
            Timechart(
                30_000, (Agg("count", None, "count"), Agg("avg", "x", "avg(x)")), "status", 3
            ),
        ),
        (
            "| timechart count by host span=1h limit=0",
            Timechart(HOUR, (Agg("count", None, "count"),), "host", 0),
        ),
        ("| timechart span=1d count", Timechart(DAY, (Agg("count", None, "count"),))),
        ("| top host", Top(("host",))),
        ("| top limit=5 a, b by c", Top(("a", "b"), 5, ("c",))),
        ("| top a limit=2", Top(("a",), 2)),
        ("| rare limit=1 a by b c", Rare(("a",), 1, ("b", "c"))),
        ("| patterns", Patterns()),
        ("| patterns field=msg limit=20", Patterns("msg", 20)),
    ],
)
def test_commands(query: str, expected: Any) -> None:
    assert command_of(query) == expected


def test_pipeline() -> None:
    text = "search error status>=500 earliest=-15m | stats count by host | sort -count | head 5"
    query = parse_query(text)
    assert query == Query(
        And((Term("error", 7), FieldCompare("status", ">=", 500.0, 13)), 7),
        RelativeTime(-15 * MINUTE, None, 34),
        None,
        (
            Stats((Agg("count", None, "count", None, 47),), ("host",), 41),
            Sort((SortKey("count", True),), None, text.index("sort")),
            Head(5, text.index("head")),
        ),
        text,
    )


def test_query_may_start_with_a_pipe() -> None:
    query = parse_query("| head 3")
    assert query.search == MatchAll(0)
    assert query.commands == (Head(3, 2),)


def test_earliest_and_latest_anywhere_at_the_top_level() -> None:
    query = parse_query("a earliest=0 b AND latest=@d c")
    assert query.search == And((Term("a", 0), Term("b", 13), Term("c", 29)), 0)
    assert query.earliest == AbsoluteTime(0, 11)
    assert query.latest == RelativeTime(0, "d", 26)
    only = parse_query("earliest=-1d latest=now | stats count")
    assert only.search == MatchAll(0)
    assert (only.earliest, only.latest) == (RelativeTime(-DAY, None, 9), RelativeTime(0, None, 20))


# -- expressions --------------------------------------------------------------------

X, Y, Z = FieldRef("x"), FieldRef("y"), FieldRef("z")


def lit(value: Any) -> Literal_:
    return Literal_(value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("x", X),
        ("http.status", FieldRef("http.status")),
        ("'odd name'", FieldRef("odd name")),
        ('"text"', lit("text")),
        ("3", lit(3.0)),
        ("2.5e2", lit(250.0)),
        ("true", lit(True)),
        ("FALSE", lit(False)),
        ("null", lit(None)),
        ("-x", Unary("-", X)),
        ("!x", Unary("not", X)),
        ("NOT x", Unary("not", X)),
        ("not x", Unary("not", X)),
        ("x + y * z", Binary("+", X, Binary("*", Y, Z))),
        ("(x + y) * z", Binary("*", Binary("+", X, Y), Z)),
        ("x - y - z", Binary("-", Binary("-", X, Y), Z)),
        ("x / y % z", Binary("%", Binary("/", X, Y), Z)),
        ('x . "-" . y', Binary(".", Binary(".", X, lit("-")), Y)),
        ('x."s"', Binary(".", X, lit("s"))),
        ("-x * y", Binary("*", Unary("-", X), Y)),
        ("!x = y", Binary("=", Unary("not", X), Y)),
        ("NOT x = y", Unary("not", Binary("=", X, Y))),
        ("x == 1", Binary("=", X, lit(1.0))),
        ("x != 1", Binary("!=", X, lit(1.0))),
        ("x <= 1", Binary("<=", X, lit(1.0))),
        ("x+1 >= y*2", Binary(">=", Binary("+", X, lit(1.0)), Binary("*", Y, lit(2.0)))),
        ("x < 1 AND y > 2", Binary("and", Binary("<", X, lit(1.0)), Binary(">", Y, lit(2.0)))),
        ("x && y || z", Binary("or", Binary("and", X, Y), Z)),
        ("x OR y and z", Binary("or", X, Binary("and", Y, Z))),
        ("not x and y", Binary("and", Unary("not", X), Y)),
        ("x or not y", Binary("or", X, Unary("not", Y))),
        (
            "if(x > 1, \"big\", 'small')",
            Call("if", (Binary(">", X, lit(1.0)), lit("big"), FieldRef("small"))),
        ),
        ("LOWER(x)", Call("lower", (X,))),
        ("now()", Call("now", ())),
        ("null()", Call("null", ())),
        ("round (x, 2)", Call("round", (X, lit(2.0)))),
        ("coalesce(x, y, z, 0)", Call("coalesce", (X, Y, Z, lit(0.0)))),
        (
            'case(x = 1, "a", true, "b")',
            Call("case", (Binary("=", X, lit(1.0)), lit("a"), lit(True), lit("b"))),
        ),
        (
            "len(substr(x, 1, 2)) + 1",
            Binary("+", Call("len", (Call("substr", (X, lit(1.0), lit(2.0))),)), lit(1.0)),
        ),
    ],
)
def test_expressions(text: str, expected: Any) -> None:
    assert expression_of(text) == expected


def test_expression_offsets() -> None:
    (where,) = parse_query("| where (a + 1) * b > 2").commands
    assert isinstance(where, Where)
    assert where.at == 2
    compare = where.expr
    assert isinstance(compare, Binary) and compare.at == 8
    product = compare.left
    assert isinstance(product, Binary) and product.at == 8
    assert product.left == Binary("+", FieldRef("a", 9), Literal_(1.0, 13), 9)
    assert product.right == FieldRef("b", 18)


# -- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "offset", "fragment"),
    [
        # search part
        ("a | | b", 4, "expected a command after '|'"),
        ("a |", 3, "expected a command after '|'"),
        ("a | head |", 10, "expected a command after '|'"),
        ("| 5", 2, "expected a command name"),
        ("a | frobnicate x", 4, "unknown command 'frobnicate'; the commands are dedup, eval"),
        ("(a", 2, "expected ')' to close the '(' at offset 0"),
        ("(a | head", 3, "expected ')'"),
        ("a)", 1, "unmatched ')'"),
        ("()", 1, "expected a search term inside '(', found ')'"),
        ('"abc', 0, "unterminated string"),
        ('a "b\\"', 2, "unterminated string"),
        ("a OR", 4, "expected a search term after OR"),
        ("a OR OR b", 5, "expected a search term after OR, found 'OR'"),
        ("OR a", 0, "expected a search term, found 'OR'"),
        ("AND a", 0, "expected a search term before AND"),
        ("a AND", 5, "expected a search term after AND"),
        ("a AND OR b", 6, "expected a search term after AND"),
        ("NOT", 3, "expected a search term after NOT"),
        ("a NOT )", 6, "expected a search term after NOT"),
        ("a - b", 3, "expected a search term right after '-'"),
        ("=5", 0, "expected a search term, found '='"),
        ("a b=", 4, "expected a value after b="),
        ("a=<5", 2, "expected a value after a="),
        ("a* = 5", 0, "'a*' is not a field name"),
        ("-x=5 _time>5", 5, "_time cannot be compared"),
        # time bounds in the search
        ("earliest=-1h OR a", 0, "earliest and latest belong at the top level"),
        ("a OR earliest=-1h", 5, "earliest and latest belong at the top level"),
        ("(earliest=-1h)", 1, "earliest and latest belong at the top level"),
        ("NOT latest=now", 4, "earliest and latest belong at the top level"),
        ("-earliest=0", 1, "earliest and latest belong at the top level"),
        ("earliest=0 earliest=1", 11, "earliest is given twice"),
        ("earliest>0", 8, "earliest takes '='"),
        ("earliest=-15q", 12, "unknown time unit 'q'"),
        ('latest="-1x"', 10, "unknown time unit 'x'"),
        ("earliest=soon", 9, "expected a time"),
        ("a | search latest=now", 11, "earliest and latest belong in the first search"),
        ("a | search", 10, "expected a search expression after 'search'"),
        ("a | search (b", 13, "expected ')'"),
        # where / eval
        ("| where", 7, "expected an expression after where"),
        ("| where x >", 11, "expected an expression, found the end"),
        ("| where x y", 10, "expected an operator or '|', found 'y'"),
        ("| where a < b < c", 14, "comparisons do not chain"),
        ("| where (x", 10, "expected ')' to close the '(' at offset 8"),
        ("| where x)", 9, "expected an operator or '|', found ')'"),
        ("| where foo(x)", 8, "unknown function 'foo'; the functions are abs"),
        ("| where if(x, 1)", 8, "if() takes 3 arguments, got 2"),
        ("| where lower()", 8, "lower() takes 1 arguments, got 0"),
        ("| where min()", 8, "min() takes at least 1 arguments"),
        ("| where case(x, 1, y)", 8, "case() takes pairs"),
        ("| where now(1)", 8, "now() takes 0 arguments"),
        ("| where lower(x y)", 16, "expected ',' or ')' in the arguments of lower()"),
        ("| where and", 8, "expected an expression, found 'and'"),
        ("| where 'x", 8, "unterminated string"),
        ("| where x = #", 12, "expected an expression, found '#'"),
        ("| eval", 6, "expected a field to assign"),
        ("| eval a", 8, "expected '=' after a"),
        ("| eval a=", 9, "expected an expression after a="),
        ("| eval a=1 b=2", 11, "expected an operator, ',' or '|'"),
        ("| eval a=1,", 11, "expected a field to assign"),
        ("| eval a*=1", 7, "expected a field name, found 'a*'"),
        # rex
        ("| rex", 5, "rex needs a quoted regular expression"),
        ("| rex field=msg", 15, "rex needs a quoted regular expression"),
        ('| rex "(a)"', 6, "no named group"),
        ('| rex "(?<a>x" ', 7, "invalid regular expression: missing )"),
        ('| rex "ab\\"c(?<a>x[" ', 18, "invalid regular expression: unterminated character set"),
        ('| rex "(?<a>x)" "(?<b>y)"', 16, "rex takes one regular expression"),
        ('| rex mode=sed "(?<a>x)"', 6, "unknown option 'mode' for rex; it takes field="),
        ('| rex x "(?<a>x)"', 6, "expected field=<name> or a quoted regular expression"),
        # field lists
        ("| fields", 8, "expected a field name, found the end"),
        ("| fields a,", 11, "expected a field name after ','"),
        ("| fields a,,b", 11, "expected a field name, found ','"),
        ("| table , a", 8, "expected a field name, found ','"),
        ("| table a=b", 8, "unknown option 'a' for table"),
        ("| table a#", 9, "expected a field name, found '#'"),
        ("| sort", 6, "expected a field to sort by"),
        ("| sort 10", 9, "expected a field to sort by"),
        ("| sort -a desc", 10, "give the order once"),
        ("| sort a, ", 10, "expected a field to sort by"),
        ("| sort 5 a limit=3", 11, "the sort limit is given twice"),
        ("| head -1", 7, "expected the number of rows for head (an integer), found '-'"),
        ("| head 1.5", 7, "an integer"),
        ("| head x", 7, "an integer"),
        ("| head 1 2", 9, "head takes one count"),
        ("| tail limit=x", 13, "expected the limit (an integer)"),
        ("| head count=3", 7, "unknown option 'count' for head; it takes limit="),
        ("| head limit=", 13, "expected a value after limit="),
        ("| dedup", 7, "expected a field name"),
        ("| dedup 0 a", 8, "the number of rows to keep must be at least 1"),
        # stats / timechart / top / rare / patterns
        ("| stats", 7, "expected an aggregation such as count"),
        ("| stats by host", 8, "expected an aggregation such as count"),
        ("| stats count,", 14, "expected an aggregation"),
        ("| stats count, by h", 15, "expected an aggregation"),
        ("| stats avg", 11, "avg needs a field: avg(<field>)"),
        ("| stats avg(", 12, "expected a field name, found the end"),
        ("| stats avg(x", 13, "expected ')' after avg(x"),
        ("| stats avg(*)", 12, "expected a field name, found '*'"),
        ("| stats total(x)", 8, "expected an aggregation (count, sum"),
        ("| stats p101(x)", 8, "a percentile is between 0 and 100"),
        ("| stats count as", 16, "expected a field name"),
        ("| stats count by", 16, "expected a field name after 'by'"),
        ("| stats count by a,", 19, "expected a field name after ','"),
        ("| stats count span=1m", 14, "unknown option 'span' for stats"),
        ("| timechart span=0s count", 17, "the span must be more than 0"),
        ("| timechart span=5 count", 17, "expected a span such as 30s"),
        ("| timechart span=1m span=2m count", 20, "span= is given twice"),
        ("| timechart count by a, b", 24, "timechart splits by one field only"),
        ("| timechart count by a limit=-1", 29, "expected a value after limit="),
        ("| top", 5, "expected a field name"),
        ("| top a by", 10, "expected a field name after 'by'"),
        ("| rare limit=x a", 13, "expected the limit (an integer)"),
        ("| patterns msg", 11, "patterns takes only field= and limit="),
        ("| patterns limit=0", 17, "the limit must be at least 1"),
    ],
)
def test_errors(query: str, offset: int, fragment: str) -> None:
    assert_error(query, offset, fragment)


def test_error_is_a_parse_error_with_its_own_code() -> None:
    error = error_of("a |")
    assert isinstance(error, ParseError) and isinstance(error, InvalidInput)
    assert isinstance(error, ValueError)
    assert error.code == "query-parse-error"
    assert error.to_problem()["status"] == 400
    assert str(error) == (
        "<input>:1:4: expected a command after '|', found the end of the query\n"
        "  1 | a |\n"
        "    |    ^"
    )


def test_error_on_a_later_line_shows_that_line() -> None:
    error = error_of("error\n| stats count\n| head x")
    assert (error.line, error.column, error.offset) == (3, 8, 27)
    assert str(error).splitlines()[1:] == ["  3 | | head x", "    |        ^"]


def test_nesting_is_limited() -> None:
    assert strip(parse_query("(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH).search) == Term("a")
    for text in (
        "(" * (MAX_DEPTH + 1) + "a",
        "-" * 10_000 + "a",
        "NOT " * 1000 + "a",
        "| where " + "(" * 10_000,
        "| where " + "-" * 10_000 + "x",
        "| where " + "not " * 1000 + "x",
        "| where " + "lower(" * 1000,
    ):
        assert "nests deeper than" in error_of(text).reason


# -- property tests -----------------------------------------------------------------------

_KEYWORDS = {"AND", "OR", "NOT", "search", "earliest", "latest", "_time"}
_words = st.text(string.ascii_letters + string.digits + "._:/@*-", min_size=1, max_size=8).filter(
    lambda w: w not in _KEYWORDS and w[0] != "-" and w != "*" and w.lower() != "search"
)
_fields = st.from_regex(r"[a-z][a-z0-9_.]{0,5}", fullmatch=True).filter(
    lambda f: f not in ("earliest", "latest")
)
_numbers = st.floats(allow_nan=False, allow_infinity=False)
_compare_values = st.one_of(
    _numbers,
    st.text(string.ascii_letters + "-*/", min_size=1, max_size=6).filter(lambda v: v[0] != "-"),
    st.text(max_size=6).map(lambda v: ("quoted", v)),
)


def _phrase(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _compare(field: str, op: Any, value: Any) -> tuple[FieldCompare, str]:
    if isinstance(value, tuple):
        return FieldCompare(field, op, value[1]), f"{field}{op}{_phrase(value[1])}"
    if isinstance(value, float):
        return FieldCompare(field, op, value), f"{field} {op} {value!r}"
    return FieldCompare(field, op, value), f"{field}{op}{value}"


_search_leaves = st.one_of(
    _words.map(lambda w: (Term(w), w)),
    st.text(max_size=10).map(lambda t: (Phrase(t), _phrase(t))),
    st.builds(
        _compare, _fields, st.sampled_from(["=", "!=", "<", "<=", ">", ">="]), _compare_values
    ),
)


def _group(pair: tuple[Any, str]) -> str:
    return f"({pair[1]})"


def _extend_search(children: Any) -> Any:
    return st.one_of(
        st.lists(children, min_size=2, max_size=3).map(
            lambda ps: (And(tuple(p[0] for p in ps)), " ".join(_group(p) for p in ps))
        ),
        st.lists(children, min_size=2, max_size=3).map(
            lambda ps: (And(tuple(p[0] for p in ps)), " AND ".join(_group(p) for p in ps))
        ),
        st.lists(children, min_size=2, max_size=3).map(
            lambda ps: (Or(tuple(p[0] for p in ps)), " OR ".join(_group(p) for p in ps))
        ),
        children.map(lambda p: (Not(p[0]), f"NOT {_group(p)}")),
        children.map(lambda p: (Not(p[0]), f"-{_group(p)}")),
    )


@settings(max_examples=300)
@given(st.recursive(_search_leaves, _extend_search, max_leaves=8))
def test_search_round_trip(pair: tuple[Any, str]) -> None:
    expected, text = pair
    assert search_of(text) == expected


_names = st.from_regex(r"[a-z_][a-z0-9_]{0,5}(\.[a-z0-9_]{1,3})?", fullmatch=True).filter(
    lambda n: n not in ("and", "or", "not", "true", "false", "null")
)
_expr_leaves = st.one_of(
    st.floats(min_value=0, allow_nan=False, allow_infinity=False).map(
        lambda v: (Literal_(v), repr(v))
    ),
    st.text(max_size=6).map(lambda s: (Literal_(s), _phrase(s))),
    st.sampled_from(
        [(Literal_(True), "true"), (Literal_(False), "False"), (Literal_(None), "NULL")]
    ),
    _names.map(lambda n: (FieldRef(n), n)),
    st.text(min_size=1, max_size=6).map(
        lambda n: (FieldRef(n), "'" + n.replace("\\", "\\\\").replace("'", "\\'") + "'")
    ),
)
_BINARY_OPS = ["+", "-", "*", "/", "%", ".", "=", "!=", "<", "<=", ">", ">=", "and", "or"]
_CALLS = {"if": 3, "lower": 1, "coalesce": 2, "round": 2, "now": 0}


def _extend_expr(children: Any) -> Any:
    return st.one_of(
        st.tuples(st.sampled_from(_BINARY_OPS), children, children).map(
            lambda t: (Binary(t[0], t[1][0], t[2][0]), f"{_group(t[1])} {t[0]} {_group(t[2])}")
        ),
        children.map(lambda p: (Unary("-", p[0]), f"-{_group(p)}")),
        children.map(lambda p: (Unary("not", p[0]), f"NOT {_group(p)}")),
        children.map(lambda p: (Unary("not", p[0]), f"!{_group(p)}")),
        st.sampled_from(sorted(_CALLS)).flatmap(
            lambda name: st.lists(children, min_size=_CALLS[name], max_size=_CALLS[name]).map(
                lambda args: (
                    Call(name, tuple(a[0] for a in args)),
                    f"{name.upper()}({', '.join(a[1] for a in args)})",
                )
            )
        ),
    )


@settings(max_examples=300)
@given(st.recursive(_expr_leaves, _extend_expr, max_leaves=8))
def test_expression_round_trip(pair: tuple[Any, str]) -> None:
    expected, text = pair
    assert expression_of(text) == expected


def _parse_or_error(text: str) -> None:
    try:
        parse_query(text)
    except QueryParseError as error:
        assert 0 <= error.offset <= len(text)
        assert error.reason


@settings(max_examples=400)
@given(st.text(max_size=40))
def test_any_text_parses_or_raises_a_query_parse_error(text: str) -> None:
    _parse_or_error(text)


_SOUP = [
    *("a", "b.c", "x*", "status", "5", "-1", "1.5", "0", "'f g'", '"p q"', '"', "'", "\\"),
    *("=", "!=", "<", "<=", ">=", ">", "==", "(", ")", "|", ",", "-", "+", "*", "/", ".", "!"),
    *("AND", "OR", "NOT", "and", "or", "not", "&&", "||", "by", "as", "desc", "limit", "span"),
    *("field", "count", "avg(x)", "p99.9", "dc", "earliest", "latest", "_time", "-15m", "@h"),
    *("now", "2024-05-01", "search", "where", "eval", "rex", "fields", "table", "sort", "head"),
    *("tail", "dedup", "stats", "timechart", "top", "rare", "patterns", "if", "lower", "case"),
    *('"(?<n>\\w+)"', '"(x"', "\n", " "),
]


@settings(max_examples=400)
@given(st.lists(st.tuples(st.sampled_from(_SOUP), st.sampled_from(["", " "])), max_size=14))
def test_token_soup_parses_or_raises_a_query_parse_error(tokens: list[tuple[str, str]]) -> None:
    _parse_or_error("".join(token + space for token, space in tokens))


@settings(max_examples=200)
@given(st.text(max_size=20))
def test_any_time_bound_parses_or_raises_a_query_parse_error(text: str) -> None:
    try:
        bound = parse_time_bound(text)
    except QueryParseError as error:
        assert 0 <= error.offset <= len(text)
    else:
        assert isinstance(bound, RelativeTime | AbsoluteTime)


def test_the_parser_accepts_exactly_the_functions_the_evaluator_runs() -> None:
    from trusswork.logs._ast import FUNCTIONS
    from trusswork.logs._expressions import _Evaluator

    for name, (fewest, _) in FUNCTIONS.items():
        args = ", ".join(["x"] * fewest)
        parse_query(f"| eval y={name}({args})")
        assert hasattr(_Evaluator, f"_fn_{name}"), name
    with pytest.raises(QueryParseError, match="unknown function"):
        parse_query('| eval y=split(x, "/")')
