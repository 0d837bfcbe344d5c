"""The CEL conformance table for ``trusswork.rules``, grouped by cel-spec area.

The areas follow cel-spec's ``tests/simple/testdata`` documents (basic,
integer_math, fp_math, comparisons, logic, lists, fields, macros, string,
conversions, timestamps, parse); the cases are our own, written from the
language definition and checked against what those documents expect. Every
case id is ``"<area>/<name>"``.

Four tables:

* :data:`VALUE_CASES`: the expression compiles and evaluates to ``expected``
  (compared by value *and* by Python type, see ``test_conformance.py``).
* :data:`RUNTIME_ERROR_CASES`: it compiles, and evaluating it raises
  ``EvaluationError`` with ``kind`` (``None`` where cel-spec names no error
  class, so any kind is accepted).
* :data:`STATIC_ERROR_CASES`: with declarations given, the checker rejects it
  when compiling (``InvalidInput``).
* :data:`SYNTAX_ERROR_CASES`: it does not parse (``ParseError`` at ``line``
  and, where the place is unambiguous, ``column``).

``declarations=None`` means no checker: any identifier may be bound and type
mismatches are runtime errors, which is how cel-spec runs its
``disable_check`` cases. Expressions in the tables are Python raw strings
where CEL needs a backslash, so the CEL source is exactly what is written.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

from trusswork.rules import CelType, UInt

UTC = dt.UTC
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
UINT64_MAX = 2**64 - 1

# 2009-02-13T23:31:30Z is Unix time 1234567890, a Friday: cel-spec's timestamp reference.
T0 = "timestamp('2009-02-13T23:31:30Z')"
T0_VALUE = dt.datetime(2009, 2, 13, 23, 31, 30, tzinfo=UTC)


@dataclass(frozen=True)
class ValueCase:
    """An expression and the value it must evaluate to."""

    id: str
    expr: str
    expected: Any
    declarations: dict[str, str] | None = None
    bindings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RuntimeErrorCase:
    """An expression that compiles but whose evaluation raises ``EvaluationError``."""

    id: str
    expr: str
    kind: str | None
    declarations: dict[str, str] | None = None
    bindings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StaticErrorCase:
    """An expression the checker rejects at compile time under ``declarations``."""

    id: str
    expr: str
    declarations: dict[str, str]


@dataclass(frozen=True)
class SyntaxErrorCase:
    """An expression that fails to parse, at ``line`` (and ``column`` when given)."""

    id: str
    expr: str
    line: int = 1
    column: int | None = None


V = ValueCase
E = RuntimeErrorCase

OVERFLOW = "overflow"
DIV_ZERO = "division by zero"
MOD_ZERO = "modulus by zero"
NO_KEY = "no such key"
NO_OVERLOAD = "no matching overload"
INVALID = "invalid argument"
RANGE = "range"

BASIC = [
    V("basic/int_zero", "0", 0),
    V("basic/int_positive", "42", 42),
    V("basic/int_negative", "-42", -42),
    V("basic/int_max", "9223372036854775807", INT64_MAX),
    V("basic/int_min", "-9223372036854775808", INT64_MIN),
    V("basic/int_hex", "0x55555555", 0x55555555),
    V("basic/int_hex_upper_digits", "0xFF", 255),
    V("basic/int_hex_negative", "-0x10", -16),
    V("basic/uint_zero", "0u", UInt(0)),
    V("basic/uint_suffix", "1u", UInt(1)),
    V("basic/uint_upper_suffix", "123456789U", UInt(123456789)),
    V("basic/uint_max", "18446744073709551615u", UInt(UINT64_MAX)),
    V("basic/uint_hex", "0xFFu", UInt(255)),
    V("basic/uint_hex_max", "0xFFFFFFFFFFFFFFFFu", UInt(UINT64_MAX)),
    V("basic/double_zero", "0.0", 0.0),
    V("basic/double_zero_exp", "0e+0", 0.0),
    V("basic/double_fraction", "3.25", 3.25),
    V("basic/double_exponent", "1e3", 1000.0),
    V("basic/double_negative_exponent", "-2.3e+1", -23.0),
    V("basic/double_small_exponent", "2.5e-3", 0.0025),
    V("basic/double_leading_dot", ".5", 0.5),
    V("basic/double_negative_zero", "-0.0", -0.0),
    V("basic/string_empty_single", "''", ""),
    V("basic/string_empty_double", '""', ""),
    V("basic/string_plain", "'hello'", "hello"),
    V("basic/string_other_quote_inside", "'say \"hi\"'", 'say "hi"'),
    V("basic/string_unicode_literal", "'ίσος'", "ίσος"),
    V("basic/escape_bell", r"'\a'", "\a"),
    V("basic/escape_backspace", r"'\b'", "\b"),
    V("basic/escape_form_feed", r"'\f'", "\f"),
    V("basic/escape_newline", r"'\n'", "\n"),
    V("basic/escape_carriage_return", r"'\r'", "\r"),
    V("basic/escape_tab", r"'\t'", "\t"),
    V("basic/escape_vertical_tab", r"'\v'", "\v"),
    V("basic/escape_backslash", r"'\\'", "\\"),
    V("basic/escape_single_quote", r"'\''", "'"),
    V("basic/escape_double_quote", r'"\""', '"'),
    V("basic/escape_backtick", r"'\`'", "`"),
    V("basic/escape_question_mark", r"'\?'", "?"),
    V("basic/escape_octal", r"'\101'", "A"),
    V("basic/escape_octal_is_code_point", r"'\303\277'", "\u00c3\u00bf"),
    V("basic/escape_hex", r"'\x41'", "A"),
    V("basic/escape_hex_is_code_point", r"'\xFF'", "\u00ff"),
    V("basic/escape_unicode_four", r"'\u00e9'", "é"),
    V("basic/escape_unicode_eight", r"'\U0001F600'", "\U0001f600"),
    V("basic/escape_all_ascii", r"'\a\b\f\n\r\t\v\"\'\\'", "\a\b\f\n\r\t\v\"'\\"),
    V("basic/raw_string_keeps_escapes", r"r'\n'", "\\n"),
    V("basic/raw_string_regex", r"r'\d+\.\d+'", "\\d+\\.\\d+"),
    V("basic/raw_string_upper_prefix", r'R"\t"', "\\t"),
    V("basic/raw_string_two_backslashes", r'r"\\"', "\\\\"),
    V("basic/raw_string_empty_triple", "r''''''", ""),
    V("basic/triple_single_newline", "'''line one\nline two'''", "line one\nline two"),
    V("basic/triple_double_with_quotes", '"""say "hi" now"""', 'say "hi" now'),
    V("basic/triple_single_inner_quotes", "'''x''x'''", "x''x"),
    V("basic/triple_escape_processed", r"'''a\tb'''", "a\tb"),
    V("basic/bytes_empty", "b''", b""),
    V("basic/bytes_ascii", "b'abc'", b"abc"),
    V("basic/bytes_upper_prefix", 'B"abc"', b"abc"),
    V("basic/bytes_hex_escape", r"b'\xff'", b"\xff"),
    V("basic/bytes_octal_escape", r"b'\377'", b"\xff"),
    V("basic/bytes_octal_nul_and_hex", r"b'\000\xff'", b"\x00\xff"),
    V("basic/bytes_octal_letter", r"b'\101'", b"A"),
    V("basic/bytes_utf8_literal", "b'ÿ'", b"\xc3\xbf"),
    V("basic/bytes_octal_utf8_pair", r"b'\303\277'", b"\xc3\xbf"),
    V("basic/bytes_newline_escape", r"b'a\nb'", b"a\nb"),
    V("basic/bytes_raw", r"br'\n'", b"\\n"),
    V("basic/bool_true", "true", True),
    V("basic/bool_false", "false", False),
    V("basic/null", "null", None),
    V("basic/list_empty", "[]", []),
    V("basic/list_ints", "[1, 2, 3]", [1, 2, 3]),
    V("basic/list_heterogeneous", "[1, 'a', 2.5, true, null]", [1, "a", 2.5, True, None]),
    V("basic/list_trailing_unary", "[-1]", [-1]),
    V("basic/map_empty", "{}", {}),
    V("basic/map_string_keys", "{'k': 'v', 'n': 1}", {"k": "v", "n": 1}),
    V("basic/map_int_keys", "{1: 'one', 2: 'two'}", {1: "one", 2: "two"}),
    V("basic/map_uint_key", "{7u: 'seven'}", {UInt(7): "seven"}),
    V("basic/map_bool_key", "{true: 1}", {True: 1}),
    V(
        "basic/nested",
        "{'a': [1, {'b': [true, null]}], 'c': {}}",
        {"a": [1, {"b": [True, None]}], "c": {}},
    ),
    V("basic/list_of_lists", "[[1], [], [2, [3]]]", [[1], [], [2, [3]]]),
    V("basic/comment_ignored", "1 + // one more\n 1", 2),
    V("basic/whitespace_everywhere", "\t( 1\r\n+\f2 )", 3),
    V("basic/parenthesised", "((((7))))", 7),
    V("basic/precedence_mul_over_add", "1 + 2 * 3", 7),
    V("basic/precedence_left_assoc_sub", "10 - 4 - 3", 3),
    V("basic/precedence_relation_over_and", "1 < 2 && 2 < 3", True),
]

INTEGER_MATH = [
    V("integer_math/add", "40 + 2", 42),
    V("integer_math/add_negative", "42 + (-7)", 35),
    V("integer_math/sub", "42 - 12", 30),
    V("integer_math/sub_negative", "-42 - (-12)", -30),
    V("integer_math/mul", "42 * 2", 84),
    V("integer_math/mul_negative", "40 * (-2)", -80),
    V("integer_math/div", "42 / 2", 21),
    V("integer_math/div_truncates", "7 / 2", 3),
    V("integer_math/div_truncates_toward_zero_negative", "-7 / 2", -3),
    V("integer_math/div_truncates_toward_zero_divisor", "7 / -2", -3),
    V("integer_math/div_both_negative", "-80 / (-2)", 40),
    V("integer_math/mod", "47 % 5", 2),
    V("integer_math/mod_sign_of_dividend", "43 % (-5)", 3),
    V("integer_math/mod_negative_dividend", "-3 % 5", -3),
    V("integer_math/mod_both_negative", "-42 % (-5)", -2),
    V("integer_math/negate", "-(42)", -42),
    V("integer_math/double_negation", "-(-42)", 42),
    V("integer_math/negate_zero", "-(0)", 0),
    V("integer_math/max_no_overflow", "9223372036854775806 + 1", INT64_MAX),
    V("integer_math/min_no_overflow", "-9223372036854775807 - 1", INT64_MIN),
    V("integer_math/min_div_one", "-9223372036854775808 / 1", INT64_MIN),
    V("integer_math/min_mod_minus_one_small", "-7 % -1", 0),
    V("integer_math/distributive", "5 * (15 + 25) == 5 * 15 + 5 * 25", True),
    V("integer_math/uint_add", "42u + 2u", UInt(44)),
    V("integer_math/uint_sub", "42u - 12u", UInt(30)),
    V("integer_math/uint_mul", "40u * 2u", UInt(80)),
    V("integer_math/uint_div", "5u / 2u", UInt(2)),
    V("integer_math/uint_mod", "42u % 5u", UInt(2)),
    V("integer_math/uint_max_no_overflow", "18446744073709551614u + 1u", UInt(UINT64_MAX)),
    V("integer_math/uint_sub_to_zero", "1u - 1u", UInt(0)),
]

INTEGER_MATH_ERRORS = [
    E("integer_math/add_overflow", "9223372036854775807 + 1", OVERFLOW),
    E("integer_math/add_negative_overflow", "-9223372036854775808 + (-1)", OVERFLOW),
    E("integer_math/sub_overflow", "-9223372036854775808 - 1", OVERFLOW),
    E("integer_math/sub_positive_overflow", "1 - (-9223372036854775807)", OVERFLOW),
    E("integer_math/mul_overflow", "5000000000 * 5000000000", OVERFLOW),
    E("integer_math/mul_negative_overflow", "(-5000000000) * 5000000000", OVERFLOW),
    E("integer_math/negate_min", "-(-9223372036854775808)", OVERFLOW),
    E("integer_math/mul_min_by_minus_one", "(-9223372036854775808) * -1", OVERFLOW),
    E("integer_math/div_min_by_minus_one", "(-9223372036854775808) / -1", OVERFLOW),
    E("integer_math/div_by_zero", "15 / 0", DIV_ZERO),
    E("integer_math/mod_by_zero", "34 % 0", MOD_ZERO),
    E("integer_math/uint_add_overflow", "18446744073709551615u + 1u", OVERFLOW),
    E("integer_math/uint_sub_below_zero", "0u - 1u", OVERFLOW),
    E("integer_math/uint_mul_overflow", "5000000000u * 5000000000u", OVERFLOW),
    E("integer_math/uint_div_by_zero", "15u / 0u", DIV_ZERO),
    E("integer_math/uint_mod_by_zero", "34u % 0u", MOD_ZERO),
    E("integer_math/uint_negate", "-(5u)", NO_OVERLOAD),
    E("integer_math/negate_bool", "-false", NO_OVERLOAD),
    E("integer_math/mixed_int_uint", "1 + 1u", NO_OVERLOAD),
    E("integer_math/mixed_int_double", "1 + 1.0", NO_OVERLOAD),
    E("integer_math/mixed_uint_double", "2u * 2.0", NO_OVERLOAD),
    E("integer_math/string_plus_int", "'a' + 1", NO_OVERLOAD),
    E("integer_math/bool_arithmetic", "true + true", NO_OVERLOAD),
    E("integer_math/bool_is_not_int", "x + 1", NO_OVERLOAD, None, {"x": True}),
]

FP_MATH = [
    V("fp_math/add", "0.5 + 1.25", 1.75),
    V("fp_math/add_ieee_rounding", "0.1 + 0.2", 0.1 + 0.2),
    V("fp_math/sub", "3.5 - 4.0", -0.5),
    V("fp_math/mul", "2.0 * 3.5", 7.0),
    V("fp_math/div", "7.0 / 2.0", 3.5),
    V("fp_math/negate", "-(2.5)", -2.5),
    V("fp_math/negate_zero_is_negative_zero", "-(0.0)", -0.0),
    V("fp_math/div_by_zero_is_inf", "1.0 / 0.0", math.inf),
    V("fp_math/negative_div_by_zero_is_minus_inf", "-1.0 / 0.0", -math.inf),
    V("fp_math/zero_div_zero_is_nan", "0.0 / 0.0", math.nan),
    V("fp_math/overflow_to_inf", "1e308 * 10.0", math.inf),
    V("fp_math/underflow_to_zero", "1e-320 / 1e10", 0.0),
    V("fp_math/inf_minus_inf_is_nan", "1.0 / 0.0 - 1.0 / 0.0", math.nan),
    V("fp_math/nan_not_equal_to_itself", "0.0 / 0.0 == 0.0 / 0.0", False),
    V("fp_math/nan_ne_itself", "0.0 / 0.0 != 0.0 / 0.0", True),
    V("fp_math/nan_not_less", "0.0 / 0.0 < 1.0", False),
    V("fp_math/nan_not_greater", "0.0 / 0.0 > 1.0", False),
    V("fp_math/nan_not_less_or_equal", "0.0 / 0.0 <= 0.0 / 0.0", False),
    V("fp_math/nan_not_equal_int", "dyn(1) == 0.0 / 0.0", False),
    V("fp_math/inf_greater_than_max", "1.0 / 0.0 > 1.7976931348623157e308", True),
    V("fp_math/zero_equals_negative_zero", "0.0 == -0.0", True),
]

FP_MATH_ERRORS = [
    E("fp_math/modulus_not_defined", "5.0 % 2.0", NO_OVERLOAD),
    E("fp_math/negate_string", "-'a'", NO_OVERLOAD),
]

COMPARISONS = [
    V("comparisons/eq_int", "1 == 1", True),
    V("comparisons/ne_int", "-1 != 1", True),
    V("comparisons/lt_int", "1 < 2", True),
    V("comparisons/le_int_equal", "2 <= 2", True),
    V("comparisons/gt_int_false", "1 > 2", False),
    V("comparisons/ge_int", "3 >= 2", True),
    V("comparisons/eq_uint", "2u == 2u", True),
    V("comparisons/lt_uint", "1u < 2u", True),
    V("comparisons/eq_double", "1.0 == 1.0e+0", True),
    V("comparisons/lt_double", "-1.5 < 1.5", True),
    V("comparisons/eq_int_double", "1 == 1.0", True),
    V("comparisons/eq_double_int", "1.0 == 1", True),
    V("comparisons/ne_int_double", "2 == 1.5", False),
    V("comparisons/eq_int_uint", "1 == 1u", True),
    V("comparisons/eq_uint_double", "1u == 1.0", True),
    V("comparisons/eq_dyn_int_uint", "dyn(1) == 1u", True),
    V("comparisons/lt_uint_int", "1u < 2", True),
    V("comparisons/lt_int_uint", "1 < 2u", True),
    V("comparisons/lt_negative_int_uint_max", "-1 < 18446744073709551615u", True),
    V("comparisons/lt_int_max_uint_above", "9223372036854775807 < 9223372036854775808u", True),
    V("comparisons/lt_int_double", "1 < 1.5", True),
    V("comparisons/gt_double_uint", "2.0 > 1u", True),
    V("comparisons/ge_double_int_equal", "2.0 >= 2", True),
    V("comparisons/eq_string", "'' == \"\"", True),
    V("comparisons/eq_raw_string", "'abc' == r'abc'", True),
    V("comparisons/ne_string_case", "'abc' == 'ABC'", False),
    V("comparisons/no_unicode_normalization", r"'Am\u00E9lie' == 'Ame\u0301lie'", False),
    V("comparisons/lt_string", "'a' < 'b'", True),
    V("comparisons/lt_string_prefix", "'ab' < 'abc'", True),
    V("comparisons/lt_string_code_points", "'a' < 'B'", False),
    V("comparisons/lt_bytes", "b'a' < b'b'", True),
    V("comparisons/ge_bytes", "b'abc' >= b'abc'", True),
    V("comparisons/eq_bytes_encodings", r"b'ÿ' == b'\303\277'", True),
    V("comparisons/lt_bool", "false < true", True),
    V("comparisons/lt_bool_false", "true < false", False),
    V("comparisons/eq_null", "null == null", True),
    V("comparisons/eq_bool", "true == true", True),
    V("comparisons/eq_list", "[1, 2, 3] == [1, 2, 3]", True),
    V("comparisons/ne_list_order", "[1, 2, 3] == [1, 3, 2]", False),
    V("comparisons/ne_list_length", "['one'] == [2, 3]", False),
    V("comparisons/eq_list_mixed_numbers", "[1.0, 2.0, 3] == [1u, 2, 3u]", True),
    V("comparisons/eq_list_null", "[null] == [null]", True),
    V("comparisons/eq_map", "{'k': 'v'} == {\"k\": \"v\"}", True),
    V("comparisons/eq_map_key_order", "{'a': 1, 'b': 2} == {'b': 2, 'a': 1}", True),
    V("comparisons/eq_map_mixed_numbers", "{1: 1.0, 2u: 3u} == {1u: 1, 2: 3.0}", True),
    V("comparisons/ne_map_value", "{'k': 'v'} == {'k': 'v1'}", False),
    V("comparisons/ne_map_extra_key", "{'k': 'v', 'j': 'w'} == {'k': 'v'}", False),
    V("comparisons/ne_map_value_types", "{'k': 'v', 1: 1} == {'k': 'v', 1: 'v1'}", False),
    V("comparisons/eq_different_types_false", "1 == 'a'", False),
    V("comparisons/ne_different_types_true", "'1' != 1", True),
    V("comparisons/eq_null_int_false", "dyn(1) == null", False),
    V("comparisons/eq_bool_int_false", "true == 1", False),
    V("comparisons/eq_list_map_false", "[] == {}", False),
    V("comparisons/eq_type_values", "type(1) == type(2)", True),
]

COMPARISON_ERRORS = [
    E("comparisons/lt_list_unordered", "[1, 2] < [1, 3]", NO_OVERLOAD),
    E("comparisons/lt_map_unordered", "{'a': 1} < {'a': 2}", NO_OVERLOAD),
    E("comparisons/lt_int_string", "1 < 'a'", NO_OVERLOAD),
    E("comparisons/lt_null", "null < null", NO_OVERLOAD),
    E("comparisons/lt_bool_int", "true < 2", NO_OVERLOAD),
]

LOGIC = [
    V("logic/and_true", "true && true", True),
    V("logic/and_false", "true && false", False),
    V("logic/or_true", "false || true", True),
    V("logic/or_false", "false || false", False),
    V("logic/not_true", "!true", False),
    V("logic/not_false", "!false", True),
    V("logic/double_not", "!!true", True),
    V("logic/and_false_absorbs_right_error", "false && (1 / 0 == 1)", False),
    V("logic/and_false_absorbs_left_error", "(1 / 0 == 1) && false", False),
    V("logic/or_true_absorbs_left_error", "(1 / 0 == 1) || true", True),
    V("logic/or_true_absorbs_right_error", "true || (1 / 0 == 1)", True),
    V("logic/and_false_absorbs_type_error", "false && 32", False),
    V("logic/and_false_absorbs_left_type_error", "'horses' && false", False),
    V("logic/or_true_absorbs_type_error", "'horses' || true", True),
    V("logic/or_absorbs_unbound_variable", "x || true", True),
    V("logic/and_chain", "true && true && true && false", False),
    V("logic/or_chain", "false || false || false || true", True),
    V("logic/conditional_true", "true ? 1 : 2", 1),
    V("logic/conditional_false", "false ? 'foo' : 'bar'", "bar"),
    V("logic/conditional_skips_error_branch", "true ? 1 : 1 / 0", 1),
    V("logic/conditional_skips_error_then", "false ? 1 / 0 : 2", 2),
    V("logic/conditional_mixed_types", "true ? 'cows' : 17", "cows"),
    V("logic/conditional_nested_right_assoc", "false ? 1 : true ? 2 : 3", 2),
    V("logic/conditional_lower_than_or", "false || true ? 'y' : 'n'", "y"),
]

LOGIC_ERRORS = [
    E("logic/and_true_keeps_error", "true && (1 / 0 == 1)", DIV_ZERO),
    E("logic/or_false_keeps_error", "(1 / 0 == 1) || false", DIV_ZERO),
    E("logic/and_non_bool", "'less filling' && 'tastes great'", NO_OVERLOAD),
    E("logic/or_non_bool", "false || 'a'", NO_OVERLOAD),
    E("logic/not_int", "!0", NO_OVERLOAD),
    E("logic/conditional_error_condition", "2 / 0 > 4 ? 'baz' : 'quux'", DIV_ZERO),
    E("logic/conditional_non_bool_condition", "'cows' ? false : 17", NO_OVERLOAD),
]

LISTS_AND_MAPS = [
    V("lists/concat", "[0, 1] + [2, 3]", [0, 1, 2, 3]),
    V("lists/concat_empty", "[] + []", []),
    V("lists/index_first", "[7, 8, 9][0]", 7),
    V("lists/index_last", "['George', 'John', 'Paul', 'Ringo'][3]", "Ringo"),
    V("lists/index_uint", "[7, 8, 9][1u]", 8),
    V("lists/index_whole_double", "[7, 8, 9][1.0]", 8),
    V("lists/index_nested", "[[1, 2], [3, 4]][1][0]", 3),
    V("lists/size_function", "size([1, 2, 3])", 3),
    V("lists/size_method", "[1, 2, 3].size()", 3),
    V("lists/size_empty", "size([])", 0),
    V("lists/in_present", "3 in [5, 4, 3]", True),
    V("lists/in_absent", "'hawaiian' in ['meat', 'cheese']", False),
    V("lists/in_empty", "7 in []", False),
    V("lists/in_uint", "4u in [4u]", True),
    V("lists/in_double_among_ints", "3.0 in [5, 4, 3]", True),
    V("lists/in_int_among_uints", "3 in [5u, 4u, 3u]", True),
    V("lists/in_mixed_types", "'1' in [1, 2]", False),
    V("maps/index_string_key", "{'k': 'v'}['k']", "v"),
    V("maps/index_int_key", "{1: 'one', 2: 'two'}[2]", "two"),
    V("maps/index_bool_key", "{true: 'yes', false: 'no'}[false]", "no"),
    V("maps/select_field", "{'a': 1}.a", 1),
    V("maps/select_nested", "{'a': {'b': {'c': 'deep'}}}.a.b.c", "deep"),
    V("maps/select_then_index", "{'a': [10, 20]}.a[1]", 20),
    V("maps/index_then_select", "[{'a': 5}][0].a", 5),
    V("maps/value_null", "{'k': null}.k", None),
    V("maps/size_function", "size({1: 'one', 2: 'two'})", 2),
    V("maps/size_method", "{'a': 1}.size()", 1),
    V("maps/in_key_present", "'a' in {'a': 1}", True),
    V("maps/in_key_absent", "'b' in {'a': 1}", False),
    V("maps/in_checks_keys_not_values", "1 in {'a': 1}", False),
    V("maps/has_present", "has({'a': 1}.a)", True),
    V("maps/has_absent", "has({'a': 1}.b)", False),
    V("maps/has_nested_present", "has({'a': {'b': 1}}.a.b)", True),
    V("maps/has_nested_absent", "has({'a': {}}.a.b)", False),
    V("maps/has_null_value_is_present", "has({'a': null}.a)", True),
]

LISTS_AND_MAPS_ERRORS = [
    E("lists/index_out_of_range", "[1, 2, 3][3]", INVALID),
    E("lists/index_negative", "[1, 2, 3][-1]", INVALID),
    E("lists/index_fractional_double", "[7, 8, 9][0.1]", INVALID),
    E("lists/index_string", "[1, 2]['0']", None),
    E("lists/index_empty", "[][0]", INVALID),
    E("maps/index_missing_key", "{'a': 1}['b']", NO_KEY),
    E("maps/select_missing_field", "{'a': 1}.b", NO_KEY),
    E("maps/select_missing_nested", "{'a': {}}.a.b", NO_KEY),
    E("maps/index_missing_int_key", "{1: 'one'}[2]", NO_KEY),
    E("maps/has_nested_missing_parent", "has({'a': 1}.b.c)", NO_KEY),
    E("maps/select_on_int", "(1).a", None),
    E("maps/in_on_int", "1 in 2", NO_OVERLOAD),
]

MACROS = [
    V("macros/all_true", "[1, 2, 3].all(e, e > 0)", True),
    V("macros/all_false", "[1, 2, 3].all(e, e == 2)", False),
    V("macros/all_empty", "[].all(e, e > 0)", True),
    V("macros/all_map_keys", "{'key1': 1, 'key2': 2}.all(k, k.startsWith('key'))", True),
    V("macros/all_false_absorbs_error", "[1, 2, 3].all(e, 6 / (2 - e) == 6)", False),
    V("macros/all_false_absorbs_type_error", "[1, 'foo', 3].all(e, e == 1)", False),
    V("macros/exists_true", "[1, 2, 3].exists(e, e == 2)", True),
    V("macros/exists_false", "[1, 2, 3].exists(e, e > 3)", False),
    V("macros/exists_empty", "[].exists(e, e == 2)", False),
    V("macros/exists_map_key", "{'key1': 1, 'key2': 2}.exists(k, k == 'key2')", True),
    V("macros/exists_true_absorbs_error", "[0, 1].exists(x, 1 / x == 1)", True),
    V("macros/exists_heterogeneous_equality", "[1, 'foo', 3].exists(e, e == '10')", False),
    V("macros/exists_one_single", "[6, 7, 8].exists_one(x, x % 5 == 2)", True),
    V("macros/exists_one_many", "[0, 1, 2, 3, 4].exists_one(n, n % 2 == 1)", False),
    V("macros/exists_one_none", "[1, 2, 3].exists_one(x, x > 20)", False),
    V("macros/exists_one_empty", "[].exists_one(a, a == 7)", False),
    V("macros/exists_one_map", "{6: 'six', 7: 'seven'}.exists_one(k, k % 5 == 2)", True),
    V("macros/map", "[1, 2, 3].map(x, x * x)", [1, 4, 9]),
    V("macros/map_empty", "[].map(n, n / 2)", []),
    V("macros/map_to_strings", "[1, 2].map(x, string(x))", ["1", "2"]),
    V("macros/map_with_filter", "[1, 2, 3].map(x, x > 1, x * 2)", [4, 6]),
    V("macros/map_with_filter_none", "[1, 2, 3].map(x, x > 5, x * 2)", []),
    V("macros/filter", "[0, 1, 2, 3, 4].filter(x, x % 2 == 1)", [1, 3]),
    V("macros/filter_none", "[1, 2, 3].filter(e, e > 3)", []),
    V("macros/nested_all_exists", "[1, 2].all(x, [3, 4].exists(y, y > x))", True),
    V("macros/nested_map_size", "[[1, 2], [3]].map(l, l.size())", [2, 1]),
    V("macros/nested_filter_all", "['s'].filter(s, ['a'].all(a, true))", ["s"]),
    V("macros/iteration_var_shadows_binding", "[1, 2].map(x, x + 10)", [11, 12], None, {"x": 99}),
    V("macros/has_macro_in_comprehension", "[{'a': 1}, {}].filter(m, has(m.a))", [{"a": 1}]),
    # Two-variable comprehensions (cel-go's comprehensions v2): index or key, then value.
    V("macros2/all_index_and_value", "[1, 2, 3].all(i, v, v == i + 1)", True),
    V("macros2/exists_map_key_value", "{'a': 1, 'b': 2}.exists(k, v, k == 'b' && v == 2)", True),
    V("macros2/exists_one_list", "[5, 6, 5].existsOne(i, v, v == 5 && i > 0)", True),
    V("macros2/exists_one_alias_one_variable", "[1, 2].existsOne(x, x == 2)", True),
    V("macros2/all_false_absorbs_error", "[0, 1].all(i, v, 1 / v > 5)", False),
    V("macros2/transform_list", "[10, 20].transformList(i, v, i * v)", [0, 20]),
    V("macros2/transform_list_filter", "[1, 2, 3].transformList(i, v, v > 1, i)", [1, 2]),
    V("macros2/transform_map_list", "['a', 'b'].transformMap(i, v, v + v)", {0: "aa", 1: "bb"}),
    V(
        "macros2/transform_map_filter",
        "{'a': 1, 'b': 2}.transformMap(k, v, v > 1, v * 10)",
        {"b": 20},
    ),
]

MACRO_ERRORS = [
    E("macros/all_keeps_error_without_false", "[1, 2, 3].all(e, e / 0 != 17)", DIV_ZERO),
    E("macros/all_type_error_without_false", "[1, 'foo', 3].all(e, e % 2 == 1)", NO_OVERLOAD),
    E("macros/exists_keeps_error_without_true", "[1, 2, 3].exists(e, e / 0 == 17)", DIV_ZERO),
    E("macros/exists_one_no_short_circuit", "[3, 2, 1, 0].exists_one(n, 12 / n > 1)", DIV_ZERO),
    E("macros/map_error", "[2, 1, 0].map(n, 4 / n)", DIV_ZERO),
    E("macros/filter_no_short_circuit", "[3, 2, 1, 0].filter(n, 12 / n > 4)", DIV_ZERO),
    E("macros/all_non_bool_predicate", "[1, 2].all(x, x)", NO_OVERLOAD),
    E("macros2/transform_list_error", "[0, 1].transformList(i, v, 1 / v)", DIV_ZERO),
    E("macros2/over_a_number", "dyn(1).all(i, v, true)", NO_OVERLOAD),
]

STRINGS = [
    V("string/concat", "'abc' + 'def'", "abcdef"),
    V("string/concat_bytes", "b'ab' + b'cd'", b"abcd"),
    V("string/size_function", "size('hello')", 5),
    V("string/size_method", "'hello'.size()", 5),
    V("string/size_code_points", "size('héllo')", 5),
    V("string/size_astral", r"size('\U0001F600')", 1),
    V("string/size_empty", "''.size()", 0),
    V("string/size_bytes", "size(b'héllo')", 6),
    V("string/size_bytes_method", r"b'\xff\x00'.size()", 2),
    V("string/contains_true", "'hello'.contains('ell')", True),
    V("string/contains_false", "'hello'.contains('elo')", False),
    V("string/contains_empty", "'hello'.contains('')", True),
    V("string/starts_with_true", "'hello'.startsWith('he')", True),
    V("string/starts_with_false", "'hello'.startsWith('lo')", False),
    V("string/ends_with_true", "'hello'.endsWith('lo')", True),
    V("string/ends_with_false", "'hello'.endsWith('he')", False),
    V("string/ends_with_unicode", "'café'.endsWith('é')", True),
    V("string/matches_partial", "'foobar'.matches('o+b')", True),
    V("string/matches_anchored_false", "'foobar'.matches('^o')", False),
    V("string/matches_full_anchor", "'abc123'.matches('^[a-z]+[0-9]+$')", True),
    V("string/matches_function_form", "matches('foobar', 'ba.')", True),
    V("string/matches_raw_pattern", r"'12.5'.matches(r'^\d+\.\d+$')", True),
    V("string/matches_empty_pattern", "'anything'.matches('')", True),
    V("string/matches_unicode", "'ñandú'.matches('^.{5}$')", True),
    V("string/matches_alternation", "'grey'.matches('gr(a|e)y')", True),
    V("string/matches_repetition_unicode", "'mañana'.matches('a+ñ+a+')", True),
    V("string/matches_empty_target", "''.matches('foo|bar')", False),
    V("string/starts_with_empty_target", "''.startsWith('foo')", False),
    V("string/starts_with_astral", r"'\U0001F431\U0001F600'.startsWith('\U0001F431')", True),
    V("string/concat_unicode", "'r' + 'ô' + 'le'", "rôle"),
]

STRING_ERRORS = [
    E("string/size_int", "size(1)", NO_OVERLOAD),
    E("string/contains_int", "'abc'.contains(1)", NO_OVERLOAD),
    E("string/starts_with_on_int", "(1).startsWith('1')", NO_OVERLOAD),
    E("string/concat_string_bytes", "'a' + b'a'", NO_OVERLOAD),
    E("string/matches_bad_regex", "'abc'.matches('[')", None),
]

CONVERSIONS = [
    V("conversions/int_from_uint", "int(42u)", 42),
    V("conversions/int_from_uint_max_in_range", "int(9223372036854775807u)", INT64_MAX),
    V("conversions/int_from_double_truncates", "int(1.9)", 1),
    V("conversions/int_from_negative_double_truncates", "int(-7.9)", -7),
    V("conversions/int_from_double_half", "int(-3.5)", -3),
    V("conversions/int_from_big_exact_double", "int(double(36028797018963968))", 2**55),
    V("conversions/int_from_string", "int('987')", 987),
    V("conversions/int_from_negative_string", "int('-5')", -5),
    V("conversions/int_from_timestamp", "int(timestamp('2004-09-16T23:59:59Z'))", 1095379199),
    V("conversions/int_identity", "int(7)", 7),
    V("conversions/uint_from_int", "uint(1729)", UInt(1729)),
    V("conversions/uint_from_int_max", "uint(9223372036854775807)", UInt(INT64_MAX)),
    V("conversions/uint_from_double", "uint(3.14159265)", UInt(3)),
    V("conversions/uint_from_double_half", "uint(25.5)", UInt(25)),
    V("conversions/uint_from_string", "uint('300')", UInt(300)),
    V("conversions/double_from_int", "double(1000000000000)", 1e12),
    V("conversions/double_from_int_max_rounds", "double(9223372036854775807)", 2.0**63),
    V("conversions/double_from_uint", "double(123u)", 123.0),
    V("conversions/double_from_uint_max", "double(18446744073709551615u)", 2.0**64),
    V("conversions/double_from_string", "double('123.456')", 123.456),
    V("conversions/double_from_string_exponent", "double('-84.32e7')", -8.432e8),
    V("conversions/double_from_string_negative_zero", "double('-0.0')", -0.0),
    V("conversions/double_from_string_integer", "double('123')", 123.0),
    V("conversions/string_from_int", "string(123)", "123"),
    V("conversions/string_from_negative_int", "string(-456)", "-456"),
    V("conversions/string_from_uint", "string(9876u)", "9876"),
    V("conversions/string_from_double", "string(123.456)", "123.456"),
    V("conversions/string_from_small_double", "string(-4.5e-3)", "-0.0045"),
    V("conversions/string_from_bool", "string(true)", "true"),
    V("conversions/string_from_bytes", "string(b'abc')", "abc"),
    V("conversions/string_from_utf8_bytes", r"string(b'\303\277')", "ÿ"),
    V("conversions/string_identity", "string('x')", "x"),
    V("conversions/string_from_timestamp", f"string({T0})", "2009-02-13T23:31:30Z"),
    V("conversions/string_from_duration", "string(duration('1000000s'))", "1000000s"),
    V("conversions/bytes_from_string", "bytes('abc')", b"abc"),
    V("conversions/bytes_from_unicode_string", "bytes('ÿ')", b"\xc3\xbf"),
    V("conversions/bytes_from_string_not_octets", r"bytes('\377') == b'\377'", False),
    V("conversions/bool_from_string_true", "bool('true')", True),
    V("conversions/bool_from_string_false", "bool('false')", False),
    V("conversions/bool_identity", "bool(false)", False),
    V("conversions/dyn_int", "dyn(1)", 1),
    V("conversions/dyn_arithmetic", "dyn(1) + 1", 2),
    V("conversions/dyn_list", "dyn([1, 'one'])", [1, "one"]),
    V("conversions/type_int", "type(1)", CelType("int")),
    V("conversions/type_uint", "type(1u)", CelType("uint")),
    V("conversions/type_double", "type(3.14)", CelType("double")),
    V("conversions/type_string", "type('foo')", CelType("string")),
    V("conversions/type_bytes", r"type(b'\xff')", CelType("bytes")),
    V("conversions/type_bool", "type(true)", CelType("bool")),
    V("conversions/type_null", "type(null)", CelType("null_type")),
    V("conversions/type_list", "type([1, 2, 3])", CelType("list")),
    V("conversions/type_map", "type({4: 16})", CelType("map")),
    V("conversions/type_of_type", "type(type(1))", CelType("type")),
    V("conversions/type_of_dyn_list", "type(dyn([1, 'one']))", CelType("list")),
    V("conversions/type_timestamp", f"type({T0})", CelType("google.protobuf.Timestamp")),
    V("conversions/type_duration", "type(duration('1s'))", CelType("google.protobuf.Duration")),
    V("conversions/type_identifier_int", "int", CelType("int")),
    V("conversions/type_identifier_string", "string", CelType("string")),
    V("conversions/type_identifier_type", "type", CelType("type")),
    V("conversions/type_eq_int", "type(1) == int", True),
    V("conversions/type_eq_string", "type('a') == string", True),
    V("conversions/type_eq_uint", "type(1u) == uint", True),
    V("conversions/type_eq_double", "type(1.0) == double", True),
    V("conversions/type_eq_bool", "type(false) == bool", True),
    V("conversions/type_eq_bytes", "type(b'') == bytes", True),
    V("conversions/type_eq_null_type", "type(null) == null_type", True),
    V("conversions/type_eq_list", "type([]) == list", True),
    V("conversions/type_eq_map", "type({}) == map", True),
    V("conversions/type_int_ne_uint", "type(7) == type(7u)", False),
    V("conversions/type_int_ne_double", "type(0) != type(0.0)", True),
    V("conversions/type_of_int_is_type", "type(int) == type", True),
    V("conversions/type_of_string_type", "type(type(1)) == type(string)", True),
    V("conversions/type_int_ne_string", "type(1) == string", False),
    V("conversions/type_lists_monomorphic", "type([1]) == type(['one'])", True),
    V("conversions/type_of_variable", "type(x) == int", True, None, {"x": 3}),
    V("conversions/type_of_bool_variable", "type(x) == bool", True, None, {"x": True}),
    V("conversions/type_of_uint_variable", "type(x) == uint", True, None, {"x": UInt(3)}),
]

CONVERSION_ERRORS = [
    E("conversions/int_from_uint_out_of_range", "int(18446744073709551615u)", RANGE),
    E("conversions/int_from_huge_double", "int(1e99)", RANGE),
    E("conversions/int_from_double_two_pow_63", "int(9223372036854775807.0)", RANGE),
    E("conversions/int_from_uint_max_double", "int(18446744073709551615.0)", RANGE),
    E("conversions/int_from_nan", "int(0.0 / 0.0)", RANGE),
    E("conversions/uint_from_negative_int", "uint(-1)", RANGE),
    E("conversions/uint_from_huge_double", "uint(6.022e23)", RANGE),
    E("conversions/uint_from_negative_double", "uint(-1.5)", RANGE),
    E("conversions/int_from_bad_string", "int('abc')", None),
    E("conversions/int_from_overflowing_string", "int('9223372036854775808')", None),
    E("conversions/uint_from_negative_string", "uint('-1')", None),
    E("conversions/double_from_bad_string", "double('one')", None),
    E("conversions/bool_from_bad_string", "bool('maybe')", None),
    E("conversions/string_from_invalid_utf8", r"string(b'\000\xff')", None),
    E("conversions/int_from_list", "int([1])", NO_OVERLOAD),
    E("conversions/bytes_from_int", "bytes(1)", NO_OVERLOAD),
    E("conversions/double_from_bool", "double(true)", NO_OVERLOAD),
]

TIMESTAMPS = [
    V("timestamps/literal", T0, T0_VALUE),
    V(
        "timestamps/literal_with_offset",
        "timestamp('2009-02-13T23:31:30+01:00')",
        dt.datetime(2009, 2, 13, 22, 31, 30, tzinfo=UTC),
    ),
    V(
        "timestamps/literal_fraction",
        "timestamp('2009-02-13T23:31:20.123456Z')",
        dt.datetime(2009, 2, 13, 23, 31, 20, 123456, tzinfo=UTC),
    ),
    V("timestamps/from_int", "timestamp(1234567890)", T0_VALUE),
    V("timestamps/epoch", "timestamp(0) == timestamp('1970-01-01T00:00:00Z')", True),
    V("timestamps/to_int", f"int({T0})", 1234567890),
    V("timestamps/to_int_before_epoch", "int(timestamp('1969-12-31T23:59:59Z'))", -1),
    V("timestamps/min", "timestamp('0001-01-01T00:00:00Z')", dt.datetime(1, 1, 1, tzinfo=UTC)),
    V(
        "timestamps/max",
        "timestamp('9999-12-31T23:59:59Z')",
        dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
    ),
    V("timestamps/duration_hours_minutes", "duration('1h30m')", dt.timedelta(hours=1, minutes=30)),
    V("timestamps/duration_seconds", "duration('123s')", dt.timedelta(seconds=123)),
    V("timestamps/duration_fraction", "duration('1.5h') == duration('90m')", True),
    V("timestamps/duration_millis", "duration('100ms')", dt.timedelta(milliseconds=100)),
    V("timestamps/duration_negative", "duration('-1.5s')", dt.timedelta(seconds=-1.5)),
    V("timestamps/duration_zero", "duration('0s')", dt.timedelta(0)),
    V("timestamps/duration_compound", "duration('2h45m30s')", dt.timedelta(seconds=9930)),
    V(
        "timestamps/add_duration",
        f"{T0} + duration('1h30m')",
        dt.datetime(2009, 2, 14, 1, 1, 30, tzinfo=UTC),
    ),
    V(
        "timestamps/add_duration_commutes",
        "duration('120s') + timestamp('2009-02-13T23:01:00Z')",
        dt.datetime(2009, 2, 13, 23, 3, tzinfo=UTC),
    ),
    V(
        "timestamps/sub_duration",
        "timestamp('2009-02-13T23:10:00Z') - duration('600s')",
        dt.datetime(2009, 2, 13, 23, 0, tzinfo=UTC),
    ),
    V(
        "timestamps/sub_timestamps",
        f"{T0} - timestamp('2009-02-13T23:29:00Z')",
        dt.timedelta(seconds=150),
    ),
    V("timestamps/add_durations", "duration('1h') + duration('30m')", dt.timedelta(minutes=90)),
    V(
        "timestamps/sub_durations_negative",
        "duration('1h') - duration('2h')",
        dt.timedelta(hours=-1),
    ),
    V("timestamps/eq", f"{T0} == timestamp('2009-02-13T23:31:30Z')", True),
    V("timestamps/eq_different_offsets", f"{T0} == timestamp('2009-02-14T00:31:30+01:00')", True),
    V(
        "timestamps/lt",
        "timestamp('2009-02-13T23:00:00Z') < timestamp('2009-03-13T23:00:00Z')",
        True,
    ),
    V("timestamps/ge_equal", f"{T0} >= {T0}", True),
    V("timestamps/duration_gt", "duration('1h') > duration('59m')", True),
    V("timestamps/duration_eq", "duration('60m') == duration('1h')", True),
    V("timestamps/getFullYear", f"{T0}.getFullYear()", 2009),
    V("timestamps/getMonth_zero_based", f"{T0}.getMonth()", 1),
    V("timestamps/getDayOfYear_zero_based", f"{T0}.getDayOfYear()", 43),
    V("timestamps/getDayOfMonth_zero_based", f"{T0}.getDayOfMonth()", 12),
    V("timestamps/getDate_one_based", f"{T0}.getDate()", 13),
    V("timestamps/getDayOfWeek_sunday_zero", f"{T0}.getDayOfWeek()", 5),
    V("timestamps/getHours", f"{T0}.getHours()", 23),
    V("timestamps/getMinutes", f"{T0}.getMinutes()", 31),
    V("timestamps/getSeconds", f"{T0}.getSeconds()", 30),
    V(
        "timestamps/getMilliseconds",
        "timestamp('2009-02-13T23:31:20.123456Z').getMilliseconds()",
        123,
    ),
    V("timestamps/getDayOfYear_leap_day", "timestamp('2024-02-29T12:00:00Z').getDayOfYear()", 59),
    V(
        "timestamps/getDayOfYear_leap_year_end",
        "timestamp('2024-12-31T00:00:00Z').getDayOfYear()",
        365,
    ),
    V("timestamps/getDate_leap_day", "timestamp('2024-02-29T12:00:00Z').getDate()", 29),
    V("timestamps/getHours_los_angeles", f"{T0}.getHours('America/Los_Angeles')", 15),
    V("timestamps/getDayOfWeek_los_angeles", f"{T0}.getDayOfWeek('America/Los_Angeles')", 5),
    V("timestamps/getDate_sydney", f"{T0}.getDate('Australia/Sydney')", 14),
    V("timestamps/getMinutes_kathmandu", f"{T0}.getMinutes('Asia/Kathmandu')", 16),
    V("timestamps/getHours_utc_name", f"{T0}.getHours('UTC')", 23),
    V("timestamps/getHours_offset", f"{T0}.getHours('+05:30')", 5),
    V("timestamps/getMinutes_offset", f"{T0}.getMinutes('+05:30')", 1),
    V("timestamps/getDate_offset", f"{T0}.getDate('+05:30')", 14),
    V("timestamps/getDayOfMonth_offset", f"{T0}.getDayOfMonth('+05:30')", 13),
    V("timestamps/getDayOfWeek_offset", f"{T0}.getDayOfWeek('+05:30')", 6),
    V("timestamps/getFullYear_negative_offset", f"{T0}.getFullYear('-09:30')", 2009),
    V(
        "timestamps/getDayOfMonth_negative_offset",
        "timestamp('2009-02-13T02:00:00Z').getDayOfMonth('-02:30')",
        11,
    ),
    V(
        "timestamps/getFullYear_los_angeles_new_year",
        "timestamp('2010-01-01T02:00:00Z').getFullYear('America/Los_Angeles')",
        2009,
    ),
    V(
        "timestamps/getMonth_los_angeles_new_year",
        "timestamp('2010-01-01T02:00:00Z').getMonth('America/Los_Angeles')",
        11,
    ),
    V(
        "timestamps/getDayOfYear_los_angeles_new_year",
        "timestamp('2010-01-01T02:00:00Z').getDayOfYear('America/Los_Angeles')",
        364,
    ),
    V("timestamps/duration_getHours", "duration('10000s').getHours()", 2),
    V("timestamps/duration_getMinutes", "duration('3730s').getMinutes()", 62),
    V("timestamps/duration_getSeconds", "duration('3730s').getSeconds()", 3730),
]

TIMESTAMP_ERRORS = [
    E("timestamps/year_zero", "timestamp('0000-01-01T00:00:00Z')", RANGE),
    E("timestamps/year_10000", "timestamp('10000-01-01T00:00:00Z')", RANGE),
    E("timestamps/add_past_max", "timestamp('9999-12-31T23:59:59Z') + duration('1s')", RANGE),
    E("timestamps/sub_past_min", "timestamp('0001-01-01T00:00:00Z') - duration('1s')", RANGE),
    E(
        "timestamps/add_negative_past_min",
        "timestamp('0001-01-01T00:00:00Z') + duration('-1s')",
        RANGE,
    ),
    E("timestamps/duration_over", "duration('320000000000s')", RANGE),
    E("timestamps/duration_under", "duration('-320000000000s')", RANGE),
    E(
        "timestamps/duration_add_over",
        "duration('6000000000s') + duration('6000000000s')",
        RANGE,
    ),
    E(
        "timestamps/duration_sub_under",
        "duration('-6000000000s') - duration('6000000000s')",
        RANGE,
    ),
    E("timestamps/bad_timestamp_string", "timestamp('yesterday')", None),
    E("timestamps/bad_duration_string", "duration('1x')", None),
    E("timestamps/bad_time_zone", f"{T0}.getHours('Mars/Olympus_Mons')", None),
    E("timestamps/add_timestamps", f"{T0} + {T0}", NO_OVERLOAD),
    E("timestamps/add_int", f"{T0} + 1", NO_OVERLOAD),
    E("timestamps/duration_getFullYear", "duration('1h').getFullYear()", NO_OVERLOAD),
]

VARIABLES = [
    V("variables/int", "x + 1", 42, {"x": "int"}, {"x": 41}),
    V("variables/uint", "u + 1u", UInt(2), {"u": "uint"}, {"u": UInt(1)}),
    V("variables/double", "d * 2.0", 3.0, {"d": "double"}, {"d": 1.5}),
    V("variables/string", "name.startsWith('ad')", True, {"name": "string"}, {"name": "admin"}),
    V("variables/bytes", "b.size()", 3, {"b": "bytes"}, {"b": b"abc"}),
    V("variables/bool", "f || false", True, {"f": "bool"}, {"f": True}),
    V("variables/null", "n == null", True, {"n": "null_type"}, {"n": None}),
    V("variables/dyn", "v", [1, "a"], {"v": "dyn"}, {"v": [1, "a"]}),
    V("variables/list", "xs.filter(x, x > 1)", [2, 3], {"xs": "list(int)"}, {"xs": [1, 2, 3]}),
    V("variables/list_index", "xs[1] * 2", 4, {"xs": "list(int)"}, {"xs": [1, 2, 3]}),
    V("variables/list_in", "2 in xs", True, {"xs": "list(int)"}, {"xs": [1, 2, 3]}),
    V(
        "variables/map",
        "m.role == 'admin' && m.level > 2",
        True,
        {"m": "map(string, dyn)"},
        {"m": {"role": "admin", "level": 3}},
    ),
    V("variables/map_index", "m['k']", "v", {"m": "map(string, dyn)"}, {"m": {"k": "v"}}),
    V("variables/map_has", "has(m.k)", False, {"m": "map(string, dyn)"}, {"m": {}}),
    V(
        "variables/timestamp",
        "t.getFullYear()",
        2020,
        {"t": "timestamp"},
        {"t": dt.datetime(2020, 6, 1, tzinfo=UTC)},
    ),
    V(
        "variables/duration",
        "d > duration('1m')",
        True,
        {"d": "duration"},
        {"d": dt.timedelta(minutes=2)},
    ),
    V(
        "variables/several",
        "size(name) < limit && name in allowed",
        True,
        {"name": "string", "limit": "int", "allowed": "list(string)"},
        {"name": "bob", "limit": 5, "allowed": ["alice", "bob"]},
    ),
    V("variables/declared_dyn_mixed", "v + 1", 2, {"v": "dyn"}, {"v": 1}),
    V("variables/declarations_empty", "1 + 2", 3, {}),
    V("variables/dynamic_int", "x * 2", 42, None, {"x": 21}),
    V("variables/dynamic_map_select", "x.a", "b", None, {"x": {"a": "b"}}),
    V("variables/dynamic_in_map", "'k' in m", True, None, {"m": {"k": 1}}),
    V("variables/dynamic_uint", "x == 1u", True, None, {"x": UInt(1)}),
    V(
        "variables/dynamic_nested",
        "req.headers['x-id'].size()",
        3,
        None,
        {"req": {"headers": {"x-id": "abc"}}},
    ),
    V("variables/dynamic_heterogeneous_equality", "x == 1", True, None, {"x": 1.0}),
    V("variables/dynamic_comparison", "x > 1", False, None, {"x": 0}),
]

VARIABLE_ERRORS = [
    E("variables/dynamic_type_mismatch", "x + 1", NO_OVERLOAD, None, {"x": "a"}),
    E("variables/dynamic_missing_key", "m.missing", NO_KEY, None, {"m": {}}),
    E(
        "variables/declared_division_by_zero",
        "x / y",
        DIV_ZERO,
        {"x": "int", "y": "int"},
        {"x": 1, "y": 0},
    ),
    E("variables/declared_overflow", "x * 2", OVERFLOW, {"x": "int"}, {"x": INT64_MAX}),
    E("variables/dyn_value_mismatch", "v + 1", NO_OVERLOAD, {"v": "dyn"}, {"v": "s"}),
    E("variables/map_missing_key", "m['k']", NO_KEY, {"m": "map(string, dyn)"}, {"m": {}}),
    E("variables/list_out_of_range", "xs[5]", INVALID, {"xs": "list(int)"}, {"xs": [1]}),
    E("variables/unbound", "x", None),
]

STATIC_ERROR_CASES = [
    StaticErrorCase("checker/int_plus_string", "x + 'a'", {"x": "int"}),
    StaticErrorCase("checker/undeclared_variable", "y", {}),
    StaticErrorCase("checker/undeclared_among_declared", "x + y", {"x": "int"}),
    StaticErrorCase("checker/int_plus_uint", "1 + 1u", {}),
    StaticErrorCase("checker/int_plus_double", "x + 1.0", {"x": "int"}),
    StaticErrorCase("checker/string_as_condition", "x ? 1 : 2", {"x": "string"}),
    StaticErrorCase("checker/not_string", "!x", {"x": "string"}),
    StaticErrorCase("checker/and_int", "x && true", {"x": "int"}),
    StaticErrorCase("checker/size_of_int", "size(x)", {"x": "int"}),
    StaticErrorCase("checker/starts_with_int_arg", "s.startsWith(1)", {"s": "string"}),
    StaticErrorCase("checker/list_elem_plus_string", "xs[0] + 'a'", {"xs": "list(int)"}),
    StaticErrorCase("checker/list_index_string", "xs['a']", {"xs": "list(int)"}),
    StaticErrorCase("checker/map_key_type", "m[1]", {"m": "map(string, dyn)"}),
    StaticErrorCase("checker/predicate_not_bool", "xs.all(x, x)", {"xs": "list(int)"}),
    StaticErrorCase(
        "checker/filter_predicate_not_bool", "xs.filter(x, x + 1)", {"xs": "list(int)"}
    ),
    StaticErrorCase("checker/timestamp_plus_timestamp", "t + t", {"t": "timestamp"}),
    StaticErrorCase("checker/duration_getFullYear", "d.getFullYear()", {"d": "duration"}),
    StaticErrorCase("checker/unknown_function", "f_unknown(1)", {}),
    StaticErrorCase("checker/unknown_method", "s.frobnicate()", {"s": "string"}),
    StaticErrorCase("checker/compare_int_string", "x < 'a'", {"x": "int"}),
    StaticErrorCase("checker/negate_string", "-s", {"s": "string"}),
    StaticErrorCase("checker/bool_plus_bool", "b + b", {"b": "bool"}),
    StaticErrorCase("checker/in_string", "1 in s", {"s": "string"}),
    StaticErrorCase("checker/select_on_int", "x.field", {"x": "int"}),
    StaticErrorCase("checker/matches_bytes", "b.matches('a')", {"b": "bytes"}),
]

SYNTAX_ERROR_CASES = [
    SyntaxErrorCase("parse/empty", ""),
    SyntaxErrorCase("parse/dangling_operator", "1 +"),
    SyntaxErrorCase("parse/dangling_dot", "a."),
    SyntaxErrorCase("parse/unclosed_paren", "(1 + 2"),
    SyntaxErrorCase("parse/extra_close_paren", "1 + 2)", column=6),
    SyntaxErrorCase("parse/unexpected_close_paren", "1 + )", column=5),
    SyntaxErrorCase("parse/unclosed_list", "[1, 2"),
    SyntaxErrorCase("parse/unclosed_map", "{'a': 1"),
    SyntaxErrorCase("parse/map_missing_colon", "{'a' 1}"),
    SyntaxErrorCase("parse/two_operands", "1 2"),
    SyntaxErrorCase("parse/double_operator", "1 * * 2"),
    SyntaxErrorCase("parse/conditional_missing_else", "true ? 1"),
    SyntaxErrorCase("parse/reserved_if", "if", column=1),
    SyntaxErrorCase("parse/reserved_package", "package", column=1),
    SyntaxErrorCase("parse/reserved_in_expression", "x + while", column=5),
    SyntaxErrorCase("parse/reserved_as_iteration_variable", "[1].all(let, true)"),
    SyntaxErrorCase("parse/int_overflow", "9223372036854775808", column=1),
    SyntaxErrorCase("parse/int_overflow_in_expression", "1 + 9223372036854775808", column=5),
    SyntaxErrorCase("parse/hex_int_overflow", "0x8000000000000000"),
    SyntaxErrorCase("parse/uint_overflow", "18446744073709551616u", column=1),
    SyntaxErrorCase("parse/unterminated_string", "'abc"),
    SyntaxErrorCase("parse/newline_in_single_quoted_string", "'a\nb'"),
    SyntaxErrorCase("parse/unterminated_triple_string", "'''abc''"),
    SyntaxErrorCase("parse/invalid_escape", r"'\q'"),
    SyntaxErrorCase("parse/octal_escape_out_of_range", r"'\400'"),
    SyntaxErrorCase("parse/short_unicode_escape", r"'\u12'"),
    SyntaxErrorCase("parse/short_hex_escape", r"'\x4'"),
    SyntaxErrorCase("parse/unknown_character", "1 # 2", column=3),
    SyntaxErrorCase("parse/single_ampersand", "true & false"),
    SyntaxErrorCase("parse/assignment", "a = 1"),
    SyntaxErrorCase("parse/has_non_selection", "has(a)"),
    SyntaxErrorCase("parse/all_non_identifier_variable", "[1].all(1, true)"),
    SyntaxErrorCase("parse/error_on_second_line", "1 +\n  )", line=2, column=3),
    SyntaxErrorCase("parse/error_on_third_line", "a &&\nb &&\n* c", line=3, column=1),
]

VALUE_CASES: list[ValueCase] = [
    *BASIC,
    *INTEGER_MATH,
    *FP_MATH,
    *COMPARISONS,
    *LOGIC,
    *LISTS_AND_MAPS,
    *MACROS,
    *STRINGS,
    *CONVERSIONS,
    *TIMESTAMPS,
    *VARIABLES,
]

RUNTIME_ERROR_CASES: list[RuntimeErrorCase] = [
    *INTEGER_MATH_ERRORS,
    *FP_MATH_ERRORS,
    *COMPARISON_ERRORS,
    *LOGIC_ERRORS,
    *LISTS_AND_MAPS_ERRORS,
    *MACRO_ERRORS,
    *STRING_ERRORS,
    *CONVERSION_ERRORS,
    *TIMESTAMP_ERRORS,
    *VARIABLE_ERRORS,
]
