"""PromQL parser: syntax trees, precedence, type checks, error positions and fuzzing."""

from __future__ import annotations

import contextlib
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import examples
from trusswork.core.errors import ParseError
from trusswork.tsdb._promql_ast import (
    AggregateExpr,
    BinaryExpr,
    Call,
    MatrixSelector,
    NumberLiteral,
    ParenExpr,
    StringLiteral,
    SubqueryExpr,
    UnaryExpr,
    VectorSelector,
)
from trusswork.tsdb._promql_parser import translate_regex
from trusswork.tsdb._series import Matcher
from trusswork.tsdb.promql import parse, parse_duration


def test_selector_with_every_matcher_kind() -> None:
    expr = parse('http_requests{a="x", b!="y", c=~"z.*", d!~"w"}')
    assert isinstance(expr, VectorSelector)
    assert expr.name == "http_requests"
    assert expr.matchers == (
        Matcher("__name__", "=", "http_requests"),
        Matcher("a", "=", "x"),
        Matcher("b", "!=", "y"),
        Matcher("c", "=~", "z.*"),
        Matcher("d", "!~", "w"),
    )


def test_quoted_metric_name_inside_braces() -> None:
    expr = parse('{"my.metric", env="prod"}')
    assert isinstance(expr, VectorSelector)
    assert expr.name == "my.metric"
    assert Matcher("__name__", "=", "my.metric") in expr.matchers


def test_range_offset_and_at_modifiers() -> None:
    expr = parse("rate(x[5m] offset 1h @ 100)")
    assert isinstance(expr, Call)
    arg = expr.args[0]
    assert isinstance(arg, MatrixSelector)
    assert arg.range_ms == 300_000
    assert arg.selector.offset_ms == 3_600_000
    assert arg.selector.at == 100_000
    negative = parse("x offset -5m")
    assert isinstance(negative, VectorSelector) and negative.offset_ms == -300_000
    start = parse("x @ start()")
    assert isinstance(start, VectorSelector) and start.at == "start"


def test_subquery_with_and_without_step() -> None:
    expr = parse("max_over_time(rate(x[1m])[1h:5m] offset 2m)")
    assert isinstance(expr, Call)
    sub = expr.args[0]
    assert isinstance(sub, SubqueryExpr)
    assert (sub.range_ms, sub.step_ms, sub.offset_ms) == (3_600_000, 300_000, 120_000)
    bare = parse("x[10m:]")
    assert isinstance(bare, SubqueryExpr) and bare.step_ms is None


def test_precedence_and_associativity() -> None:
    expr = parse("1 + 2 * 3 ^ 2 ^ 2")
    assert isinstance(expr, BinaryExpr) and expr.op == "+"
    mul = expr.rhs
    assert isinstance(mul, BinaryExpr) and mul.op == "*"
    power = mul.rhs
    # ^ is right-associative: 3 ^ (2 ^ 2)
    assert isinstance(power, BinaryExpr) and power.op == "^"
    assert isinstance(power.rhs, BinaryExpr) and power.rhs.op == "^"
    # unary minus binds looser than ^
    neg = parse("-x ^ 2")
    assert isinstance(neg, UnaryExpr) and isinstance(neg.expr, BinaryExpr)
    assert parse("a or b and c unless d").op == "or"  # type: ignore[union-attr]


def test_number_literals() -> None:
    for text, value in [
        ("0x1F", 31.0),
        ("1e3", 1000.0),
        (".5", 0.5),
        ("2.", 2.0),
        ("-Inf", -math.inf),
        ("1m", 60.0),
    ]:
        expr = parse(text)
        assert isinstance(expr, NumberLiteral) and expr.value == value, text
    nan = parse("NaN")
    assert isinstance(nan, NumberLiteral) and math.isnan(nan.value)


def test_string_escapes_and_raw_strings() -> None:
    expr = parse(r'"a\tb\x41\u00e9"')
    assert isinstance(expr, StringLiteral) and expr.value == "a\tbAé"
    raw = parse(r"`a\tb`")
    assert isinstance(raw, StringLiteral) and raw.value == r"a\tb"


def test_aggregation_grouping_before_or_after() -> None:
    before = parse("sum by (job) (x)")
    after = parse("sum(x) by (job)")
    assert before == AggregateExpr("sum", before.expr, None, ("job",), False, 0)  # type: ignore[union-attr]
    assert isinstance(after, AggregateExpr) and after.grouping == ("job",)
    topk = parse("topk without (a, b) (3, x)")
    assert isinstance(topk, AggregateExpr)
    assert topk.without and topk.grouping == ("a", "b")
    assert isinstance(topk.param, NumberLiteral)


def test_vector_matching_modifiers() -> None:
    expr = parse("a / on (job, instance) group_left (team) b")
    assert isinstance(expr, BinaryExpr) and expr.matching is not None
    assert expr.matching.card == "many-to-one"
    assert expr.matching.on and expr.matching.labels == ("job", "instance")
    assert expr.matching.include == ("team",)
    cmp = parse("a > bool ignoring (x) b")
    assert isinstance(cmp, BinaryExpr) and cmp.return_bool
    assert cmp.matching is not None and not cmp.matching.on


def test_parentheses_are_kept() -> None:
    expr = parse("(x)")
    assert isinstance(expr, ParenExpr) and isinstance(expr.expr, VectorSelector)


def test_durations() -> None:
    assert parse_duration("1h30m") == 5_400_000
    assert parse_duration("250ms") == 250
    assert parse_duration("1w") == 7 * 86_400_000


def test_inline_regex_flags_are_scoped() -> None:
    assert translate_regex("(?i)abc") == "(?i)abc"
    assert translate_regex("x((?i)ab)c") == "x((?i:ab))c"
    assert translate_regex("a(?i)b|c") == "a(?i:b|c)"
    matcher = parse('x{a=~"p((?i)RO).*"}').matchers[1]  # type: ignore[union-attr]
    assert matcher.matches("pro-1") and matcher.matches("pRo") and not matcher.matches("PRO")


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("sum(x", 6, "expected ')'"),
        ("rate(x)", 6, "expected type range vector"),
        ("foo(x)", 1, "unknown function"),
        ("x{a=1}", 5, "expected string"),
        ("1 > 2", 3, "BOOL"),
        ("1 and x", 3, "set operator"),
        ("(x + y)[5m]", 8, "ranges only allowed"),
        ("x[5m] offset 1m offset 2m", 17, "multiple times"),
        ('x{a="b"', 8, "expected '}'"),
        ("x ) y", 3, "after a complete expression"),
        ('"unterminated', 1, "unterminated"),
        ("{}", 1, "non-empty matcher"),
        ('x{a=~"("}', 6, "regular expression"),
        ("x $ y", 3, "unexpected character"),
        ("topk(x)", 7, "wrong number of arguments"),
        ("", 1, "no expression"),
    ],
)
def test_errors_point_at_the_offending_token(text: str, column: int, fragment: str) -> None:
    with pytest.raises(ParseError) as info:
        parse(text)
    assert info.value.column == column, str(info.value)
    assert info.value.line == 1
    assert fragment in info.value.reason
    assert info.value.filename == "<query>"


def test_error_on_a_later_line_reports_that_line() -> None:
    with pytest.raises(ParseError) as info:
        parse("sum(\n  rate(x[5m]) +\n)")
    assert (info.value.line, info.value.column) == (3, 1)


_WORDS = ["sum", "by", "on", "rate", "offset", "5m", "bool", "group_left", "and", "[1m:]", "Inf"]
_ALPHABET = st.sampled_from([*"abcxyz_:{}[]()\"'`,=!~<>+-*/%^@ 0123456789.\\\n", *_WORDS])


@settings(max_examples=examples(400), deadline=None)
@given(st.lists(_ALPHABET, max_size=25).map("".join))
def test_fuzz_random_text_parses_or_raises_parse_error(text: str) -> None:
    try:
        expr = parse(text)
    except ParseError as exc:
        assert exc.line is not None and exc.column is not None
    else:
        assert expr.value_type in ("scalar", "string", "vector", "matrix")


@settings(max_examples=examples(200), deadline=None)
@given(st.text(max_size=40))
def test_fuzz_arbitrary_unicode_never_crashes(text: str) -> None:
    with contextlib.suppress(ParseError):
        parse(text)


def test_deep_nesting_is_a_parse_error_not_a_crash() -> None:
    for text in ["(" * 3000 + "1" + ")" * 3000, " + ".join(["x"] * 500), "-" * 5000 + "1"]:
        try:
            expr = parse(text)
        except ParseError as exc:
            assert "nested too deeply" in exc.reason
        else:  # constant folding keeps "- - - 1" flat
            assert isinstance(expr, NumberLiteral)
    assert isinstance(parse(" + ".join(["x"] * 100)), BinaryExpr)


def test_hex_and_octal_escapes_are_bytes_like_go() -> None:
    utf8 = parse(r'"\xc3\xa9\101"')
    assert isinstance(utf8, StringLiteral) and utf8.value == "éA"
    broken = parse(r'"a\xc5z"')
    assert isinstance(broken, StringLiteral)
    assert broken.value.encode("utf-8", "surrogateescape") == b"a\xc5z"
    for bad in (r'"\x4"', r'"\777"', r'"\ud800"', r'"\q"'):
        with pytest.raises(ParseError):
            parse(bad)
