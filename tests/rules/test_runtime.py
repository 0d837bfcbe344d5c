"""The CEL runtime helpers: values, errors and boundaries as the CEL spec and cel-go define them."""

from __future__ import annotations

import collections
import datetime as dt
import enum
import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import examples
from trusswork.rules import _runtime as rt
from trusswork.rules._values import (
    INT64_MAX,
    INT64_MIN,
    UINT64_MAX,
    CelType,
    EvaluationError,
    UInt,
)

UTC = dt.UTC
NAN = math.nan
INF = math.inf
INT64 = st.integers(min_value=INT64_MIN, max_value=INT64_MAX)
MAX_DURATION = dt.timedelta(microseconds=(2**63 - 1) // 1000)  # int64 nanoseconds, as cel-go
DURATIONS = st.timedeltas(min_value=-MAX_DURATION, max_value=MAX_DURATION)


def ts(text: str) -> dt.datetime:
    return rt.to_timestamp(text)


def dur(text: str) -> dt.timedelta:
    return rt.to_duration(text)


def same(actual: Any, expected: Any) -> bool:
    """Equal with the same Python type, NaN equal to NaN, -0.0 apart from 0.0."""
    if type(actual) is not type(expected):
        return False
    if isinstance(expected, float):
        if math.isnan(expected):
            return math.isnan(actual)
        return actual == expected and math.copysign(1, actual) == math.copysign(1, expected)
    if isinstance(expected, list):
        return len(actual) == len(expected) and all(map(same, actual, expected))
    return bool(actual == expected)


def raises_kind(kind: str, call: Callable[[], Any]) -> EvaluationError:
    with pytest.raises(EvaluationError) as info:
        call()
    assert info.value.kind == kind, str(info.value)
    return info.value


def fail(kind: str = "invalid argument") -> EvaluationError:
    raise EvaluationError("boom", kind=kind)


# --- arithmetic ----------------------------------------------------------------------------------

ARITHMETIC = [
    (rt.add, (1, 2), 3),
    (rt.add, (INT64_MAX - 1, 1), INT64_MAX),
    (rt.add, (UInt(1), UInt(2)), UInt(3)),
    (rt.add, (UInt(UINT64_MAX - 1), UInt(1)), UInt(UINT64_MAX)),
    (rt.add, (0.1, 0.2), 0.1 + 0.2),
    (rt.add, (1e308, 1e308), INF),
    (rt.add, ("ab", "cd"), "abcd"),
    (rt.add, (b"ab", b"\xff"), b"ab\xff"),
    (rt.add, ([1], (2, 3)), [1, 2, 3]),
    (rt.add, (ts("2009-02-13T23:00:00Z"), dur("240s")), ts("2009-02-13T23:04:00Z")),
    (rt.add, (dur("120s"), ts("2009-02-13T23:01:00Z")), ts("2009-02-13T23:03:00Z")),
    (rt.add, (dur("600s"), dur("50s")), dur("650s")),
    (rt.add, (MAX_DURATION, -MAX_DURATION), dt.timedelta(0)),
    (rt.sub, (INT64_MIN + 1, 1), INT64_MIN),
    (rt.sub, (UInt(2), UInt(2)), UInt(0)),
    (rt.sub, (1.5, 2.0), -0.5),
    (rt.sub, (ts("2009-02-13T23:31:00Z"), ts("2009-02-13T23:29:00Z")), dur("120s")),
    (rt.sub, (ts("2009-02-13T23:10:00Z"), dur("600s")), ts("2009-02-13T23:00:00Z")),
    (rt.sub, (dur("900s"), dur("42s")), dur("858s")),
    (rt.mul, (-3, 4), -12),
    (rt.mul, (INT64_MIN, 1), INT64_MIN),
    (rt.mul, (UInt(2**32), UInt(2**32 - 1)), UInt(2**64 - 2**32)),
    (rt.mul, (1.5, -2.0), -3.0),
    (rt.mul, (1e308, 10.0), INF),
    (rt.div, (7, 2), 3),
    (rt.div, (-7, 2), -3),
    (rt.div, (7, -2), -3),
    (rt.div, (INT64_MIN, 1), INT64_MIN),
    (rt.div, (UInt(7), UInt(2)), UInt(3)),
    (rt.div, (1.0, 0.0), INF),
    (rt.div, (-1.0, 0.0), -INF),
    (rt.div, (1.0, -0.0), -INF),
    (rt.div, (0.0, 0.0), NAN),
    (rt.div, (NAN, 0.0), NAN),
    (rt.div, (1.0, 4.0), 0.25),
    (rt.mod, (7, 3), 1),
    (rt.mod, (-7, 3), -1),
    (rt.mod, (7, -3), 1),
    (rt.mod, (-7, -3), -1),
    (rt.mod, (INT64_MIN, 2), 0),
    (rt.mod, (UInt(7), UInt(3)), UInt(1)),
    (rt.neg, (5,), -5),
    (rt.neg, (INT64_MAX,), INT64_MIN + 1),
    (rt.neg, (0.0,), -0.0),
    (rt.neg, (dur("1.5s"),), dur("-1.5s")),
]


@pytest.mark.parametrize(("fn", "args", "expected"), ARITHMETIC)
def test_arithmetic_results(fn: Callable[..., Any], args: tuple[Any, ...], expected: Any) -> None:
    assert same(fn(*args), expected)


ARITHMETIC_ERRORS = [
    (rt.add, (INT64_MAX, 1), "overflow"),
    (rt.add, (INT64_MIN, -1), "overflow"),
    (rt.add, (UInt(UINT64_MAX), UInt(1)), "overflow"),
    (rt.add, (1, 1.0), "no matching overload"),
    (rt.add, (1, UInt(1)), "no matching overload"),
    (rt.add, (True, 1), "no matching overload"),
    (rt.add, (True, True), "no matching overload"),
    (rt.add, ("a", b"a"), "no matching overload"),
    (rt.add, (None, None), "no matching overload"),
    (rt.add, ({}, {}), "no matching overload"),
    (rt.add, (ts("2009-02-13T23:00:00Z"), ts("2009-02-13T23:00:00Z")), "no matching overload"),
    (rt.add, (ts("9999-12-31T23:59:59Z"), dur("1s")), "range"),
    (rt.add, (ts("9999-12-31T23:59:59.999999Z"), dur("1us")), "range"),
    (rt.add, (ts("0001-01-01T00:00:00Z"), dur("-1us")), "range"),
    (rt.add, (dur("6000000000s"), dur("6000000000s")), "range"),
    (rt.add, (dur("-6000000000s"), dur("-6000000000s")), "range"),
    (rt.sub, (INT64_MIN, 1), "overflow"),
    (rt.sub, (UInt(1), UInt(2)), "overflow"),
    (rt.sub, (1.0, 1), "no matching overload"),
    (rt.sub, ("a", "a"), "no matching overload"),
    (rt.sub, (dur("1s"), ts("2009-02-13T23:00:00Z")), "no matching overload"),
    (rt.sub, (ts("0001-01-01T00:00:00Z"), dur("1us")), "range"),
    (rt.sub, (dur("-6000000000s"), dur("6000000000s")), "range"),
    (rt.mul, (INT64_MAX, 2), "overflow"),
    (rt.mul, (INT64_MIN, -1), "overflow"),
    (rt.mul, (UInt(2**32), UInt(2**32)), "overflow"),
    (rt.mul, (2, 2.0), "no matching overload"),
    (rt.mul, ("a", 2), "no matching overload"),
    (rt.div, (1, 0), "division by zero"),
    (rt.div, (UInt(1), UInt(0)), "division by zero"),
    (rt.div, (INT64_MIN, -1), "overflow"),
    (rt.div, (1, 1.0), "no matching overload"),
    (rt.mod, (1, 0), "modulus by zero"),
    (rt.mod, (UInt(1), UInt(0)), "modulus by zero"),
    (rt.mod, (INT64_MIN, -1), "overflow"),
    (rt.mod, (5.0, 2.0), "no matching overload"),
    (rt.mod, (5, UInt(2)), "no matching overload"),
    (rt.neg, (INT64_MIN,), "overflow"),
    (rt.neg, (UInt(1),), "no matching overload"),
    (rt.neg, ("a",), "no matching overload"),
    (rt.neg, (True,), "no matching overload"),
]


@pytest.mark.parametrize(("fn", "args", "kind"), ARITHMETIC_ERRORS)
def test_arithmetic_errors(fn: Callable[..., Any], args: tuple[Any, ...], kind: str) -> None:
    raises_kind(kind, lambda: fn(*args))


def test_no_overload_message_names_the_operator_and_operand_types() -> None:
    error = raises_kind("no matching overload", lambda: rt.add(1, 1.0))
    assert str(error) == "no matching overload for '_+_' applied to (int, double)"
    error = raises_kind("no matching overload", lambda: rt.add(object(), 1))
    assert "object" in str(error)


def test_timestamp_arithmetic_keeps_microseconds_and_utc() -> None:
    result = rt.add(ts("2009-02-13T23:00:00.25Z"), dur("0.5s"))
    assert result == dt.datetime(2009, 2, 13, 23, 0, 0, 750_000, tzinfo=UTC)
    assert result.tzinfo is UTC


def test_naive_timestamps_are_read_as_utc() -> None:
    naive = dt.datetime(2009, 2, 13, 23, 31, 30)
    assert rt.eq(naive, ts("2009-02-13T23:31:30Z"))
    assert rt.sub(naive, ts("2009-02-13T23:31:00Z")) == dur("30s")


@pytest.mark.parametrize(
    ("fn", "value", "expected"),
    [
        (rt.check_int, INT64_MAX, INT64_MAX),
        (rt.check_int, INT64_MIN, INT64_MIN),
        (rt.check_uint, 0, UInt(0)),
        (rt.check_uint, UINT64_MAX, UInt(UINT64_MAX)),
    ],
)
def test_range_checks_pass_values_in_range(
    fn: Callable[[int], Any], value: int, expected: Any
) -> None:
    assert same(fn(value), expected)


@pytest.mark.parametrize(
    ("fn", "value"),
    [
        (rt.check_int, INT64_MAX + 1),
        (rt.check_int, INT64_MIN - 1),
        (rt.check_uint, -1),
        (rt.check_uint, UINT64_MAX + 1),
    ],
)
def test_range_checks_reject_overflow(fn: Callable[[int], Any], value: int) -> None:
    raises_kind("overflow", lambda: fn(value))


@settings(max_examples=examples(300))
@given(a=INT64, b=INT64)
def test_int_arithmetic_matches_a_big_int_oracle(a: int, b: int) -> None:
    def oracle(exact: int) -> int | None:
        return exact if INT64_MIN <= exact <= INT64_MAX else None

    def truncated(x: int, y: int) -> int:
        q = abs(x) // abs(y)
        return q if (x < 0) == (y < 0) else -q

    cases: list[tuple[Callable[[Any, Any], Any], int | None, str]] = [
        (rt.add, oracle(a + b), "overflow"),
        (rt.sub, oracle(a - b), "overflow"),
        (rt.mul, oracle(a * b), "overflow"),
    ]
    if b == 0:
        cases.append((rt.div, None, "division by zero"))
        cases.append((rt.mod, None, "modulus by zero"))
    else:
        quotient = oracle(truncated(a, b))
        cases.append((rt.div, quotient, "overflow"))
        remainder = a - truncated(a, b) * b
        cases.append((rt.mod, remainder if quotient is not None else None, "overflow"))
    for fn, expected, kind in cases:
        if expected is None:
            raises_kind(kind, lambda fn=fn: fn(a, b))
        else:
            assert same(fn(a, b), expected)


# --- logic ---------------------------------------------------------------------------------------


def test_not_negates_bools_only() -> None:
    assert rt.not_(False) is True
    assert rt.not_(True) is False
    raises_kind("no matching overload", lambda: rt.not_(0))


LOGIC = [
    # (left, right, and, or); a callable operand raises its error kind.
    (True, True, True, True),
    (True, False, False, True),
    (False, True, False, True),
    (False, False, False, False),
    (False, "error", False, "error"),
    ("error", False, False, "error"),
    (True, "error", "error", True),
    ("error", True, "error", True),
    ("error", "error", "error", "error"),
    (False, 1, False, "no matching overload"),
    (1, False, False, "no matching overload"),
    (True, 1, "no matching overload", True),
    (1, True, "no matching overload", True),
]


def thunk(value: Any) -> Callable[[], Any]:
    if value == "error":
        return lambda: fail("division by zero")
    return lambda: value


@pytest.mark.parametrize(("left", "right", "conjunction", "disjunction"), LOGIC)
def test_logic_absorbs_errors_commutatively(
    left: Any, right: Any, conjunction: Any, disjunction: Any
) -> None:
    for fn, expected in ((rt.and_, conjunction), (rt.or_, disjunction)):
        if isinstance(expected, bool):
            assert fn(thunk(left), thunk(right)) is expected
        else:
            kind = "division by zero" if expected == "error" else expected
            raises_kind(kind, lambda fn=fn: fn(thunk(left), thunk(right)))


def test_logic_raises_the_first_error_and_short_circuits() -> None:
    raises_kind("overflow", lambda: rt.and_(lambda: fail("overflow"), lambda: fail()))
    raises_kind("overflow", lambda: rt.or_(lambda: fail("overflow"), lambda: fail()))
    calls: list[str] = []
    assert rt.and_(lambda: False, lambda: calls.append("b")) is False
    assert rt.or_(lambda: True, lambda: calls.append("b")) is True
    assert calls == []


def test_cond_evaluates_only_the_chosen_branch() -> None:
    assert rt.cond(True, lambda: 1, lambda: fail()) == 1
    assert rt.cond(False, lambda: fail(), lambda: 2) == 2
    raises_kind("no matching overload", lambda: rt.cond(1, lambda: 1, lambda: 2))
    raises_kind("no matching overload", lambda: rt.cond(None, lambda: 1, lambda: 2))


# --- equality and ordering -----------------------------------------------------------------------

EQUAL = [
    (1, 1),
    (1, UInt(1)),
    (1, 1.0),
    (UInt(1), 1.0),
    (0.0, -0.0),
    (2**53 + 1, 2**53 + 1),
    ("a", "a"),
    (b"a", b"a"),
    (True, True),
    (None, None),
    ([1, 2.0], [1.0, UInt(2)]),
    ([1, 2], (1, 2)),
    ([], []),
    ([[1]], [[1.0]]),
    ({1: "a"}, {1.0: "a"}),
    ({1: "a", "b": [1]}, {"b": [1.0], UInt(1): "a"}),
    ({}, {}),
    (ts("2009-02-13T23:31:30Z"), ts("2009-02-13T23:31:30Z")),
    (dur("1s"), dur("1000ms")),
    (CelType("int"), rt.type_of(1)),
]
UNEQUAL = [
    (1, 2),
    (NAN, NAN),
    (NAN, 1),
    (2**53 + 1, float(2**53)),
    (UInt(UINT64_MAX), -1),
    (True, 1),
    (False, 0),
    (False, None),
    (1, "1"),
    ("a", b"a"),
    ([1], [1, 2]),
    ([1], [2]),
    ([NAN], [NAN]),
    ({1: "a"}, {2: "a"}),
    ({1: "a"}, {1: "b"}),
    ({1: "a"}, {True: "a"}),
    ({"a": 1}, {"a": 1, "b": 2}),
    ([1], {1: 1}),
    (ts("2009-02-13T23:31:30Z"), ts("2009-02-13T23:31:31Z")),
    (dur("1s"), 1),
    (CelType("int"), CelType("uint")),
    (CelType("int"), "int"),
]


@pytest.mark.parametrize(("a", "b"), EQUAL)
def test_equal_values(a: Any, b: Any) -> None:
    assert rt.eq(a, b) is True
    assert rt.eq(b, a) is True
    assert rt.ne(a, b) is False


@pytest.mark.parametrize(("a", "b"), UNEQUAL)
def test_unequal_values(a: Any, b: Any) -> None:
    assert rt.eq(a, b) is False
    assert rt.eq(b, a) is False
    assert rt.ne(a, b) is True


def test_equality_rejects_values_with_no_cel_type() -> None:
    raises_kind("no matching overload", lambda: rt.eq(object(), 1))


def test_ints_order_against_doubles_as_doubles_like_cel_go() -> None:
    # cel-spec's conformance tests (not_lt_dyn_int_big_lossy_double and friends): the int
    # becomes a double, so 2**63 - 1 is not below 2**63.0; equality stays exact.
    assert rt.lt(INT64_MAX, 9.223372036854775808e18) is False
    assert rt.le(INT64_MAX, 9.223372036854775808e18) is True
    assert rt.gt(9.223372036854775808e18, INT64_MAX) is False
    assert rt.ge(float(2**53), 2**53 + 1) is True
    assert rt.lt(UInt(UINT64_MAX), 1.8446744073709551616e19) is False
    assert rt.eq(2**53 + 1, float(2**53)) is False
    assert rt.lt(1, 1.5) is True


ORDERED = [
    # (smaller, larger)
    (1, 2),
    (-1, UInt(0)),
    (UInt(1), 1.5),
    (1, 1.5),
    (-INF, INT64_MIN),
    ("a", "b"),
    ("Z", "a"),
    ("a", "\u00e9"),
    (b"\x00", b"\xff"),
    (False, True),
    (ts("2009-02-13T23:00:00Z"), ts("2009-02-13T23:00:01Z")),
    (dur("-1s"), dur("1ms")),
]


@pytest.mark.parametrize(("small", "large"), ORDERED)
def test_ordering(small: Any, large: Any) -> None:
    assert rt.lt(small, large) is True
    assert rt.le(small, large) is True
    assert rt.gt(large, small) is True
    assert rt.ge(large, small) is True
    assert rt.lt(large, small) is False
    assert rt.ge(small, large) is False
    assert rt.le(small, small) is True
    assert rt.lt(small, small) is False


@pytest.mark.parametrize("fn", [rt.lt, rt.le, rt.gt, rt.ge])
@pytest.mark.parametrize("other", [NAN, 1, 1.0, UInt(1)])
def test_comparisons_with_nan_are_false(fn: Callable[[Any, Any], bool], other: Any) -> None:
    assert fn(NAN, other) is False
    assert fn(other, NAN) is False


@pytest.mark.parametrize(
    ("a", "b"),
    [(1, "1"), (True, 1), ("a", b"a"), ([1], [2]), ({}, {}), (None, None), (dur("1s"), 1)],
)
@pytest.mark.parametrize("fn", [rt.lt, rt.le, rt.gt, rt.ge])
def test_ordering_between_unordered_kinds_has_no_overload(
    fn: Callable[[Any, Any], bool], a: Any, b: Any
) -> None:
    raises_kind("no matching overload", lambda: fn(a, b))


def test_ordering_mixed_timestamp_and_duration_has_no_overload() -> None:
    raises_kind("no matching overload", lambda: rt.lt(ts("2009-02-13T23:00:00Z"), dur("1s")))


@settings(max_examples=examples(300))
@given(
    a=st.one_of(st.integers(), st.floats(), st.booleans(), st.text(max_size=3), st.none()),
    b=st.one_of(st.integers(), st.floats(), st.booleans(), st.text(max_size=3), st.none()),
)
def test_equality_is_symmetric(a: Any, b: Any) -> None:
    assert rt.eq(a, b) is rt.eq(b, a)
    assert rt.eq([a, {"k": a}], [b, {"k": b}]) is rt.eq([b, {"k": b}], [a, {"k": a}])


# --- containers ----------------------------------------------------------------------------------

MEMBERSHIP = [
    (1, [1, 2], True),
    (1.0, [1, 2], True),
    (UInt(2), [1, 2], True),
    (3, [1, 2], False),
    (True, [1], False),
    (NAN, [NAN], False),
    ([1], [[1.0]], True),
    ("a", {"a": 1}, True),
    (1, {1: "a"}, True),
    (UInt(1), {1: "a"}, True),
    (1.0, {1: "a"}, True),
    (1.5, {1: "a"}, False),
    (True, {1: "a"}, False),
    (1, {True: "a"}, False),
    (True, {True: "a"}, True),
    ([1], {1: "a"}, False),
    (0, {0: "a", 5: "b"}, True),
]


@pytest.mark.parametrize(("elem", "container", "expected"), MEMBERSHIP)
def test_membership(elem: Any, container: Any, expected: bool) -> None:
    assert rt.in_(elem, container) is expected


def test_membership_in_other_kinds_has_no_overload() -> None:
    raises_kind("no matching overload", lambda: rt.in_("a", "abc"))
    raises_kind("no matching overload", lambda: rt.in_(1, 1))


INDEXED = [
    ([10, 20, 30], 0, 10),
    ([10, 20, 30], 2, 30),
    ((10, 20), UInt(1), 20),
    ([10, 20], 1.0, 20),
    ({"a": 1}, "a", 1),
    ({1: "x"}, UInt(1), "x"),
    ({1: "x"}, 1.0, "x"),
    ({UInt(2): "x"}, 2, "x"),
    ({True: "t"}, True, "t"),
    ({0: "zero"}, 0, "zero"),
]


@pytest.mark.parametrize(("container", "key", "expected"), INDEXED)
def test_index(container: Any, key: Any, expected: Any) -> None:
    assert rt.index(container, key) == expected


INDEX_ERRORS = [
    ([1, 2], 2, "invalid argument"),
    ([1, 2], -1, "invalid argument"),
    ([1, 2], INT64_MIN, "invalid argument"),
    ([1, 2], 0.5, "invalid argument"),
    ([1, 2], NAN, "invalid argument"),
    ([1, 2], True, "no matching overload"),
    ([1, 2], "0", "no matching overload"),
    ({"a": 1}, "b", "no such key"),
    ({1: "a"}, True, "no such key"),
    ({True: "a"}, 1, "no such key"),
    ({1: "a"}, 1.5, "no such key"),
    ({1: "a"}, [1], "no such key"),
    ("abc", 0, "no matching overload"),
    (None, 0, "no matching overload"),
]


@pytest.mark.parametrize(("container", "key", "kind"), INDEX_ERRORS)
def test_index_errors(container: Any, key: Any, kind: str) -> None:
    raises_kind(kind, lambda: rt.index(container, key))


def test_missing_key_message_quotes_the_key() -> None:
    error = raises_kind("no such key", lambda: rt.index({}, "x"))
    assert str(error) == "no such key: 'x'"
    error = raises_kind("no such key", lambda: rt.select({"a": 1}, "x"))
    assert str(error) == "no such key: 'x'"


def test_select_and_has_on_maps() -> None:
    assert rt.select({"a": 1}, "a") == 1
    assert rt.has({"a": None}, "a") is True
    assert rt.has({"a": 1}, "b") is False
    raises_kind("no matching overload", lambda: rt.select(1, "a"))
    raises_kind("no matching overload", lambda: rt.select([1], "a"))
    raises_kind("no matching overload", lambda: rt.has("abc", "a"))


def test_make_list_copies() -> None:
    source = (1, 2)
    assert rt.make_list(source) == [1, 2]
    assert type(rt.make_list(source)) is list


def test_make_map_keeps_order_and_values() -> None:
    built = rt.make_map([("b", 1), ("a", 2), (UInt(3), 3), (True, 4), (-1, 5)])
    assert list(built.items()) == [("b", 1), ("a", 2), (UInt(3), 3), (True, 4), (-1, 5)]


@pytest.mark.parametrize(
    "pairs",
    [
        [(1, "a"), (1, "b")],
        [(1, "a"), (UInt(1), "b")],
        [("k", 1), ("k", 1)],
        [(True, 1), (True, 2)],
    ],
)
def test_make_map_rejects_repeated_keys(pairs: list[tuple[Any, Any]]) -> None:
    error = raises_kind("invalid argument", lambda: rt.make_map(pairs))
    assert "repeated key" in str(error)


@pytest.mark.parametrize("pairs", [[(True, 1), (1, 2)], [(0, 1), (False, 2)]])
def test_make_map_rejects_bool_and_number_keys_a_dict_would_merge(
    pairs: list[tuple[Any, Any]],
) -> None:
    error = raises_kind("invalid argument", lambda: rt.make_map(pairs))
    assert "cannot both be held" in str(error)


@pytest.mark.parametrize("key", [1.5, None, b"k", [1], dur("1s")])
def test_make_map_rejects_unsupported_key_types(key: Any) -> None:
    error = raises_kind("invalid argument", lambda: rt.make_map([(key, 1)]))
    assert "unsupported map key type" in str(error)


# --- functions -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", 0), ("h\u00e9llo", 5), ("\U0001f600", 1), (b"\xc3\xa9", 2), ([1, 2], 2), ({1: 2}, 1)],
)
def test_size(value: Any, expected: int) -> None:
    assert rt.size(value) == expected


@pytest.mark.parametrize("value", [1, None, 1.0, True, dur("1s")])
def test_size_of_other_kinds_has_no_overload(value: Any) -> None:
    raises_kind("no matching overload", lambda: rt.size(value))


STRING_FUNCTIONS = [
    (rt.contains, "hello", "ell", True),
    (rt.contains, "hello", "", True),
    (rt.contains, "hello", "xyz", False),
    (rt.starts_with, "hello", "he", True),
    (rt.starts_with, "hello", "lo", False),
    (rt.ends_with, "hello", "lo", True),
    (rt.ends_with, "hello", "he", False),
    (rt.matches, "hello", "l+", True),
    (rt.matches, "hello", "^h.*o$", True),
    (rt.matches, "hello", "^ell", False),
    (rt.matches, "", "", True),
    (rt.matches, "abc\n", "^[a-z]+$", False),
    (rt.matches, "abc\ndef", "(?m)^[a-z]+$", True),
    (rt.matches, "ab", "b\\z", True),
    (rt.matches, "a$", "a[$]", True),
    (rt.matches, "\u0661", "^\\d$", False),
    (rt.matches, "7", "^[\\d]$", True),
    (rt.matches, "\u00e9", "^\\w$", False),
    (rt.matches, "\u00e9", "^.$", True),
    (rt.matches, "x\u00a0y", "\\s", False),
    (rt.matches, "]", "[]a]", True),
]


@pytest.mark.parametrize(("fn", "s", "arg", "expected"), STRING_FUNCTIONS)
def test_string_functions(fn: Callable[[Any, Any], bool], s: str, arg: str, expected: bool) -> None:
    assert fn(s, arg) is expected


@pytest.mark.parametrize("fn", [rt.contains, rt.starts_with, rt.ends_with, rt.matches])
@pytest.mark.parametrize(("s", "arg"), [(b"ab", "a"), ("ab", b"a"), (1, "1"), ("a", None)])
def test_string_functions_reject_other_kinds(
    fn: Callable[[Any, Any], bool], s: Any, arg: Any
) -> None:
    raises_kind("no matching overload", lambda: fn(s, arg))


@pytest.mark.parametrize("pattern", ["(", "[a", "a**", "\\"])
def test_matches_rejects_invalid_patterns(pattern: str) -> None:
    error = raises_kind("invalid argument", lambda: rt.matches("a", pattern))
    assert "invalid regular expression" in str(error)


# --- conversions ---------------------------------------------------------------------------------

CONVERSIONS = [
    (rt.to_int, 7, 7),
    (rt.to_int, UInt(42), 42),
    (rt.to_int, UInt(INT64_MAX), INT64_MAX),
    (rt.to_int, -123.456, -123),
    (rt.to_int, 1.9, 1),
    (rt.to_int, -7.9, -7),
    (rt.to_int, -0.0, 0),
    (rt.to_int, math.nextafter(2.0**63, 0.0), 2**63 - 1024),
    (rt.to_int, "987", 987),
    (rt.to_int, "-9223372036854775808", INT64_MIN),
    (rt.to_int, "+007", 7),
    (rt.to_int, ts("2009-02-13T23:31:30Z"), 1234567890),
    (rt.to_int, ts("1969-12-31T23:59:59.5Z"), -1),
    (rt.to_uint, UInt(3), UInt(3)),
    (rt.to_uint, 1729, UInt(1729)),
    (rt.to_uint, 3.14159, UInt(3)),
    (rt.to_uint, 1e19, UInt(10**19)),
    (rt.to_uint, "300", UInt(300)),
    (rt.to_uint, "18446744073709551615", UInt(UINT64_MAX)),
    (rt.to_double, 1.5, 1.5),
    (rt.to_double, INT64_MAX, 9.223372036854775807e18),
    (rt.to_double, UInt(UINT64_MAX), 1.8446744073709551615e19),
    (rt.to_double, "-0.0", -0.0),
    (rt.to_double, "123", 123.0),
    (rt.to_double, "6.02214e23", 6.02214e23),
    (rt.to_double, "-5.43e-21", -5.43e-21),
    (rt.to_double, ".5", 0.5),
    (rt.to_double, "1.", 1.0),
    (rt.to_double, "1e3", 1000.0),
    (rt.to_double, "inf", INF),
    (rt.to_double, "-Infinity", -INF),
    (rt.to_double, "+INF", INF),
    (rt.to_double, "NaN", NAN),
    (rt.to_double, "0x1p-2", 0.25),
    (rt.to_double, "1e-400", 0.0),
    (rt.to_string, "s", "s"),
    (rt.to_string, -456, "-456"),
    (rt.to_string, UInt(9876), "9876"),
    (rt.to_string, 123.456, "123.456"),
    (rt.to_string, -4.5e-3, "-0.0045"),
    (rt.to_string, 1.0, "1"),
    (rt.to_string, -0.0, "-0"),
    (rt.to_string, 1e100, "1e+100"),
    (rt.to_string, 1e6, "1e+06"),
    (rt.to_string, 999999.5, "999999.5"),
    (rt.to_string, 100000.0, "100000"),
    (rt.to_string, 1e-4, "0.0001"),
    (rt.to_string, 1e-5, "1e-05"),
    (rt.to_string, 123456789.0, "1.23456789e+08"),
    (rt.to_string, 5e-324, "5e-324"),
    (rt.to_string, NAN, "NaN"),
    (rt.to_string, INF, "+Inf"),
    (rt.to_string, -INF, "-Inf"),
    (rt.to_string, b"abc", "abc"),
    (rt.to_string, b"\xc3\xbf", "\u00ff"),
    (rt.to_string, True, "true"),
    (rt.to_string, False, "false"),
    (rt.to_string, ts("2009-02-13T23:31:30Z"), "2009-02-13T23:31:30Z"),
    (rt.to_string, ts("2009-02-13T23:31:30.5Z"), "2009-02-13T23:31:30.5Z"),
    (rt.to_string, ts("0001-01-01T00:00:00.000001Z"), "0001-01-01T00:00:00.000001Z"),
    (rt.to_string, dur("1000000s"), "1000000s"),
    (rt.to_string, dur("1h"), "3600s"),
    (rt.to_string, dur("1.5s"), "1.5s"),
    (rt.to_string, dur("-1.5s"), "-1.5s"),
    (rt.to_string, dur("1us"), "0.000001s"),
    (rt.to_string, dur("0"), "0s"),
    (rt.to_bytes, "abc", b"abc"),
    (rt.to_bytes, "\u00ff", b"\xc3\xbf"),
    (rt.to_bytes, b"\x00", b"\x00"),
    (rt.to_bool, True, True),
    (rt.to_dyn, [1], [1]),
]


@pytest.mark.parametrize(("fn", "value", "expected"), CONVERSIONS)
def test_conversions(fn: Callable[[Any], Any], value: Any, expected: Any) -> None:
    assert same(fn(value), expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("True", True),
        ("TRUE", True),
        ("t", True),
        ("T", True),
        ("1", True),
        ("false", False),
        ("False", False),
        ("FALSE", False),
        ("f", False),
        ("F", False),
        ("0", False),
    ],
)
def test_bool_from_text_follows_go_parse_bool(text: str, expected: bool) -> None:
    assert rt.to_bool(text) is expected


CONVERSION_ERRORS = [
    (rt.to_int, UInt(UINT64_MAX), "range"),
    (rt.to_int, UInt(INT64_MAX + 1), "range"),
    (rt.to_int, 1e99, "range"),
    (rt.to_int, 9.223372036854775807e18, "range"),
    (rt.to_int, -9.223372036854775808e18, "range"),
    (rt.to_int, NAN, "range"),
    (rt.to_int, INF, "range"),
    (rt.to_int, -INF, "range"),
    (rt.to_int, "9223372036854775808", "range"),
    (rt.to_int, "1.5", "invalid argument"),
    (rt.to_int, "", "invalid argument"),
    (rt.to_int, " 1", "invalid argument"),
    (rt.to_int, "1_000", "invalid argument"),
    (rt.to_int, "\u0661", "invalid argument"),
    (rt.to_int, True, "no matching overload"),
    (rt.to_int, None, "no matching overload"),
    (rt.to_int, dur("1s"), "no matching overload"),
    (rt.to_uint, -1, "range"),
    (rt.to_uint, -0.5, "range"),
    (rt.to_uint, 6.022e23, "range"),
    (rt.to_uint, 1.8446744073709551616e19, "range"),
    (rt.to_uint, NAN, "range"),
    (rt.to_uint, "18446744073709551616", "range"),
    (rt.to_uint, "-1", "invalid argument"),
    (rt.to_uint, "+1", "invalid argument"),
    (rt.to_uint, True, "no matching overload"),
    (rt.to_double, "1e400", "range"),
    (rt.to_double, "-1e400", "range"),
    (rt.to_double, "0x1p5000", "range"),
    (rt.to_double, "", "invalid argument"),
    (rt.to_double, "1e", "invalid argument"),
    (rt.to_double, "-nan", "invalid argument"),
    (rt.to_double, "infinit", "invalid argument"),
    (rt.to_double, "1_0", "invalid argument"),
    (rt.to_double, "0x1", "invalid argument"),
    (rt.to_double, True, "no matching overload"),
    (rt.to_string, b"\x00\xff", "invalid argument"),
    (rt.to_string, None, "no matching overload"),
    (rt.to_string, [1], "no matching overload"),
    (rt.to_bytes, "\ud800", "invalid argument"),
    (rt.to_bytes, 1, "no matching overload"),
    (rt.to_bool, "yes", "invalid argument"),
    (rt.to_bool, "tRue", "invalid argument"),
    (rt.to_bool, 1, "no matching overload"),
]


@pytest.mark.parametrize(("fn", "value", "kind"), CONVERSION_ERRORS)
def test_conversion_errors(fn: Callable[[Any], Any], value: Any, kind: str) -> None:
    raises_kind(kind, lambda: fn(value))


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (1, "int"),
        (UInt(1), "uint"),
        (1.0, "double"),
        ("", "string"),
        (b"", "bytes"),
        (True, "bool"),
        (None, "null_type"),
        ([], "list"),
        ((), "list"),
        ({}, "map"),
        (CelType("int"), "type"),
        (ts("2009-02-13T23:31:30Z"), "google.protobuf.Timestamp"),
        (dur("1s"), "google.protobuf.Duration"),
    ],
)
def test_type_of_names_the_cel_type(value: Any, name: str) -> None:
    assert rt.type_of(value) == CelType(name)
    assert rt.type_of(value) is rt.TYPES[name]
    assert rt.type_of(rt.type_of(value)) == CelType("type")


def test_types_cover_the_type_identifiers() -> None:
    assert set(rt.TYPES) == {
        "int",
        "uint",
        "double",
        "string",
        "bytes",
        "bool",
        "null_type",
        "list",
        "map",
        "type",
        "google.protobuf.Timestamp",
        "google.protobuf.Duration",
    }
    assert all(str(value) == name for name, value in rt.TYPES.items())


def test_type_of_a_value_with_no_cel_type_has_no_overload() -> None:
    raises_kind("no matching overload", lambda: rt.type_of(object()))


TIMESTAMP_TEXT = [
    ("2009-02-13T23:31:30Z", dt.datetime(2009, 2, 13, 23, 31, 30, tzinfo=UTC)),
    ("2009-02-13T23:31:30.123456789Z", dt.datetime(2009, 2, 13, 23, 31, 30, 123456, tzinfo=UTC)),
    ("2009-02-13T23:31:30.1Z", dt.datetime(2009, 2, 13, 23, 31, 30, 100000, tzinfo=UTC)),
    ("2009-02-13T23:31:30+01:00", dt.datetime(2009, 2, 13, 22, 31, 30, tzinfo=UTC)),
    ("2009-02-13T23:31:30-05:30", dt.datetime(2009, 2, 14, 5, 1, 30, tzinfo=UTC)),
    ("0001-01-01T00:00:00Z", dt.datetime(1, 1, 1, tzinfo=UTC)),
    ("9999-12-31T23:59:59.999999999Z", dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
    ("2000-02-29T00:00:00Z", dt.datetime(2000, 2, 29, tzinfo=UTC)),
]


@pytest.mark.parametrize(("text", "expected"), TIMESTAMP_TEXT)
def test_timestamp_from_rfc3339(text: str, expected: dt.datetime) -> None:
    result = rt.to_timestamp(text)
    assert result == expected
    assert result.tzinfo is UTC


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("0000-01-01T00:00:00Z", "range"),
        ("10000-01-01T00:00:00Z", "range"),
        ("0001-01-01T00:00:00+00:01", "range"),
        ("9999-12-31T23:59:59-00:01", "range"),
        ("2009-02-13 23:31:30Z", "invalid argument"),
        ("2009-02-13T23:31:30", "invalid argument"),
        ("2009-02-13t23:31:30z", "invalid argument"),
        ("2009-02-30T00:00:00Z", "invalid argument"),
        ("2009-02-13T24:00:00Z", "invalid argument"),
        ("2009-02-13T23:60:00Z", "invalid argument"),
        ("2009-02-13T23:59:60Z", "invalid argument"),
        ("2009-02-13T23:31:30.Z", "invalid argument"),
        ("2009-02-13T23:31:30+24:00", "invalid argument"),
        ("2009-2-13T23:31:30Z", "invalid argument"),
        ("02009-02-13T23:31:30Z", "invalid argument"),
        (-62_135_596_801, "range"),
        (253_402_300_800, "range"),
        (1.5, "no matching overload"),
    ],
)
def test_timestamp_conversion_errors(value: Any, kind: str) -> None:
    raises_kind(kind, lambda: rt.to_timestamp(value))


def test_timestamp_from_epoch_seconds_covers_the_cel_range() -> None:
    assert rt.to_timestamp(0) == dt.datetime(1970, 1, 1, tzinfo=UTC)
    assert rt.to_timestamp(-62_135_596_800) == dt.datetime(1, 1, 1, tzinfo=UTC)
    assert rt.to_timestamp(253_402_300_799) == dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert rt.to_timestamp(ts("2009-02-13T23:31:30Z")) == ts("2009-02-13T23:31:30Z")


DURATION_TEXT = [
    ("0", dt.timedelta(0)),
    ("-0", dt.timedelta(0)),
    ("0s", dt.timedelta(0)),
    ("1h30m", dt.timedelta(hours=1, minutes=30)),
    ("-1.5s", dt.timedelta(seconds=-1.5)),
    ("+2m", dt.timedelta(minutes=2)),
    ("100ms", dt.timedelta(milliseconds=100)),
    ("1us", dt.timedelta(microseconds=1)),
    ("1\u00b5s", dt.timedelta(microseconds=1)),
    ("1\u03bcs", dt.timedelta(microseconds=1)),
    ("1ns", dt.timedelta(0)),
    ("1999ns", dt.timedelta(microseconds=1)),
    ("-1999ns", dt.timedelta(microseconds=-1)),
    ("1.5h", dt.timedelta(minutes=90)),
    (".5s", dt.timedelta(milliseconds=500)),
    ("1.s", dt.timedelta(seconds=1)),
    ("1h1h", dt.timedelta(hours=2)),
    ("9223372036s", dt.timedelta(seconds=9_223_372_036)),
    ("-9223372036s", dt.timedelta(seconds=-9_223_372_036)),
    ("0.0000000000001s", dt.timedelta(0)),
]


@pytest.mark.parametrize(("text", "expected"), DURATION_TEXT)
def test_duration_from_go_text(text: str, expected: dt.timedelta) -> None:
    assert rt.to_duration(text) == expected


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("320000000000s", "range"),
        ("-320000000000s", "range"),
        ("9223372037s", "range"),
        ("315576000000s", "range"),
        ("", "invalid argument"),
        ("1", "invalid argument"),
        ("s", "invalid argument"),
        (".s", "invalid argument"),
        ("1d", "invalid argument"),
        ("1 s", "invalid argument"),
        ("1S", "invalid argument"),
        ("1hm", "invalid argument"),
        ("--1s", "invalid argument"),
        (dt.timedelta(days=4_000_000), "range"),
        (1, "no matching overload"),
    ],
)
def test_duration_conversion_errors(value: Any, kind: str) -> None:
    raises_kind(kind, lambda: rt.to_duration(value))


@settings(max_examples=examples(300))
@given(value=INT64)
def test_string_of_int_round_trips(value: int) -> None:
    assert rt.to_int(rt.to_string(value)) == value


@settings(max_examples=examples(300))
@given(value=st.integers(min_value=0, max_value=UINT64_MAX))
def test_string_of_uint_round_trips(value: int) -> None:
    assert rt.to_uint(rt.to_string(UInt(value))) == value


@settings(max_examples=examples(300))
@given(value=st.floats(allow_nan=False))
def test_string_of_double_round_trips(value: float) -> None:
    assert same(rt.to_double(rt.to_string(value)), value)


@settings(max_examples=examples(300))
@given(value=DURATIONS)
def test_string_of_duration_round_trips(value: dt.timedelta) -> None:
    assert rt.to_duration(rt.to_string(value)) == value


@settings(max_examples=examples(300))
@given(value=st.datetimes(timezones=st.just(UTC)))
def test_string_of_timestamp_round_trips(value: dt.datetime) -> None:
    assert rt.to_timestamp(rt.to_string(value)) == value


# --- timestamp and duration accessors ------------------------------------------------------------

MOMENT = "2009-02-13T23:31:30.123456Z"  # a Friday

ACCESSORS = [
    (rt.get_full_year, None, 2009),
    (rt.get_month, None, 1),
    (rt.get_day_of_year, None, 43),
    (rt.get_day_of_month, None, 12),
    (rt.get_date, None, 13),
    (rt.get_day_of_week, None, 5),
    (rt.get_hours, None, 23),
    (rt.get_minutes, None, 31),
    (rt.get_seconds, None, 30),
    (rt.get_milliseconds, None, 123),
    (rt.get_date, "Australia/Sydney", 14),
    (rt.get_day_of_week, "Australia/Sydney", 6),
    (rt.get_day_of_month, "US/Central", 12),
    (rt.get_day_of_month, "+11:00", 13),
    (rt.get_full_year, "-09:30", 2009),
    (rt.get_hours, "02:00", 1),
    (rt.get_hours, "+05:30", 5),
    (rt.get_minutes, "+05:30", 1),
    (rt.get_hours, "America/Los_Angeles", 15),
    (rt.get_minutes, "Asia/Kathmandu", 16),
    (rt.get_seconds, "-00:00", 30),
    (rt.get_month, "UTC", 1),
    (rt.get_day_of_year, "US/Central", 43),
]


@pytest.mark.parametrize(("fn", "tz", "expected"), ACCESSORS)
def test_timestamp_accessors(fn: Callable[..., int], tz: str | None, expected: int) -> None:
    moment = ts(MOMENT)
    assert (fn(moment) if tz is None else fn(moment, tz)) == expected


def test_accessors_follow_daylight_saving_time() -> None:
    summer = ts("2009-07-01T12:00:00Z")
    winter = ts("2009-01-01T12:00:00Z")
    assert rt.get_hours(summer, "America/Los_Angeles") == 5
    assert rt.get_hours(winter, "America/Los_Angeles") == 4


def test_accessors_cross_year_and_day_boundaries_by_zone() -> None:
    new_year = ts("2010-01-01T02:00:00Z")
    assert rt.get_full_year(new_year, "-03:00") == 2009
    assert rt.get_day_of_year(new_year, "-03:00") == 364
    assert rt.get_month(new_year, "-03:00") == 11
    assert rt.get_day_of_week(ts("2009-02-15T12:00:00Z")) == 0


@pytest.mark.parametrize(
    ("fn", "value", "expected"),
    [
        (rt.get_hours, "10000s", 2),
        (rt.get_hours, "-10000s", -2),
        (rt.get_minutes, "3730s", 62),
        (rt.get_minutes, "-3730s", -62),
        (rt.get_seconds, "3730s", 3730),
        (rt.get_seconds, "-1.5s", -1),
        (rt.get_milliseconds, "123.321456s", 321),
        (rt.get_milliseconds, "-123.321456s", -321),
        (rt.get_milliseconds, "0.999999s", 999),
        (rt.get_milliseconds, "1s", 0),
    ],
)
def test_duration_accessors(fn: Callable[..., int], value: str, expected: int) -> None:
    assert fn(dur(value)) == expected


@pytest.mark.parametrize(
    "fn",
    [
        rt.get_full_year,
        rt.get_month,
        rt.get_day_of_year,
        rt.get_day_of_month,
        rt.get_date,
        rt.get_day_of_week,
        rt.get_hours,
        rt.get_minutes,
        rt.get_seconds,
        rt.get_milliseconds,
    ],
)
def test_accessors_reject_wrong_kinds_and_zones(fn: Callable[..., int]) -> None:
    raises_kind("no matching overload", lambda: fn(1))
    raises_kind("no matching overload", lambda: fn("2009-02-13T23:31:30Z"))
    raises_kind("no matching overload", lambda: fn(dur("1s"), "UTC"))
    raises_kind("no matching overload", lambda: fn(ts(MOMENT), 1))
    raises_kind("invalid argument", lambda: fn(ts(MOMENT), "Mars/Olympus_Mons"))
    raises_kind("invalid argument", lambda: fn(ts(MOMENT), "+25:00"))
    raises_kind("invalid argument", lambda: fn(ts(MOMENT), "../etc/passwd"))


def test_accessor_on_a_zone_past_year_9999_is_a_range_error() -> None:
    raises_kind("range", lambda: rt.get_full_year(ts("9999-12-31T23:00:00Z"), "+05:00"))


# --- macros --------------------------------------------------------------------------------------


def predicate(results: dict[Any, Any]) -> Callable[[Any], Any]:
    """A predicate giving ``results[x]``, raising for the value ``"error"``."""

    def call(x: Any) -> Any:
        result = results[x]
        if result == "error":
            fail("division by zero")
        return result

    return call


QUANTIFIERS = [
    # (per-element results, all, exists)
    ([], True, False),
    ([True, True], True, True),
    ([True, False], False, True),
    ([False, False], False, False),
    (["error", False], False, "division by zero"),
    ([False, "error"], False, "division by zero"),
    (["error", True], "division by zero", True),
    ([True, "error"], "division by zero", True),
    (["error", "error"], "division by zero", "division by zero"),
    ([1, False], False, "no matching overload"),
    ([1, True], "no matching overload", True),
]


@pytest.mark.parametrize(("results", "universal", "existential"), QUANTIFIERS)
def test_all_and_exists_absorb_errors_like_logic(
    results: list[Any], universal: Any, existential: Any
) -> None:
    items = list(range(len(results)))
    fn = predicate(dict(enumerate(results)))
    for macro, expected in ((rt.all_, universal), (rt.exists_, existential)):
        if isinstance(expected, bool):
            assert macro(items, fn) is expected
        else:
            raises_kind(expected, lambda macro=macro: macro(items, fn))


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        ([], False),
        ([True], True),
        ([True, False, False], True),
        ([True, True], False),
        ([False, False], False),
        ([True, True, "error"], "division by zero"),
        ([True, "error"], "division by zero"),
        ([True, 1], "no matching overload"),
    ],
)
def test_exists_one(results: list[Any], expected: Any) -> None:
    items = list(range(len(results)))
    fn = predicate(dict(enumerate(results)))
    if isinstance(expected, bool):
        assert rt.exists_one_(items, fn) is expected
    else:
        raises_kind(expected, lambda: rt.exists_one_(items, fn))


def test_map_and_filter_macros() -> None:
    assert rt.map_([1, 2, 3], lambda x: x * 2) == [2, 4, 6]
    assert rt.map_({"a": 1, "b": 2}, lambda k: k + k) == ["aa", "bb"]
    assert rt.filter_([1, 2, 3, 4], lambda x: x % 2 == 0) == [2, 4]
    assert rt.filter_({"a": 1, "b": 2}, lambda k: k == "b") == ["b"]
    assert rt.map_filter_([1, 2, 3], lambda x: x > 1, lambda x: x * 10) == [20, 30]
    assert rt.map_([], lambda x: x) == []
    assert rt.all_({"a": 1}, lambda k: k == "a") is True
    assert rt.exists_((1, 2), lambda x: x == 2) is True


def test_filter_predicates_must_give_bools() -> None:
    raises_kind("no matching overload", lambda: rt.filter_([1], lambda x: x))
    raises_kind("no matching overload", lambda: rt.map_filter_([1], lambda x: x, lambda x: x))


def test_macro_errors_propagate_from_transforms() -> None:
    raises_kind("overflow", lambda: rt.map_([INT64_MAX], lambda x: rt.add(x, 1)))


@pytest.mark.parametrize(
    "macro",
    [
        lambda it: rt.all_(it, bool),
        lambda it: rt.exists_(it, bool),
        lambda it: rt.exists_one_(it, bool),
        lambda it: rt.map_(it, bool),
        lambda it: rt.filter_(it, bool),
        lambda it: rt.map_filter_(it, bool, bool),
    ],
)
@pytest.mark.parametrize("value", ["abc", 1, None, b"ab"])
def test_macros_range_only_over_lists_and_maps(macro: Callable[[Any], Any], value: Any) -> None:
    raises_kind("no matching overload", lambda: macro(value))


def test_comprehensions_stop_past_the_iteration_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rt, "MAX_ITERATIONS", 3)
    seen: list[int] = []

    def visit(x: int) -> bool:
        seen.append(x)
        return True

    error = raises_kind("limit", lambda: rt.all_([1, 2, 3, 4], visit))
    assert "3 iterations" in str(error)
    assert seen == [1, 2, 3]
    raises_kind("limit", lambda: rt.map_({1: 1, 2: 2, 3: 3, 4: 4}, lambda x: x))
    assert rt.map_([1, 2, 3], lambda x: x) == [1, 2, 3]
    # A quantifier decided before the limit never reaches it.
    assert rt.exists_([1, 2, 3, 4], lambda x: x == 1) is True


# --- subclasses of the Python value types --------------------------------------------------------


class Level(enum.IntEnum):
    HIGH = 2


def test_subclasses_act_as_their_cel_type() -> None:
    assert same(rt.add(Level.HIGH, 1), 3)
    assert rt.eq(Level.HIGH, 2.0) is True
    assert rt.eq(Level.HIGH, True) is False
    assert rt.lt(Level.HIGH, UInt(3)) is True
    assert rt.to_string(Level.HIGH) == "2"
    assert rt.index([5, 6, 7], Level.HIGH) == 7
    assert rt.type_of(Level.HIGH) == CelType("int")
    ordered = collections.OrderedDict(a=1)
    assert rt.eq(ordered, {"a": 1.0}) is True
    assert rt.index(ordered, "a") == 1
    assert rt.size(ordered) == 1
