"""Influx line protocol to Prometheus samples: rules by example, round trip, fuzzing."""

from __future__ import annotations

import math
import operator
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trusswork.core.errors import InvalidInput, ParseError
from trusswork.tsdb._ingest import LABEL_NAME, METRIC_NAME, ParsedBatch, Sample
from trusswork.tsdb._lineproto import format_line_protocol, parse_line_protocol
from trusswork.tsdb._series import labels_of


def parse_ok(text: str, **kwargs: object) -> list[Sample]:
    batch = parse_line_protocol(text, **kwargs)  # type: ignore[arg-type]
    assert batch.errors == [], [str(e) for e in batch.errors]
    return batch.samples


def only_error(text: str) -> ParseError:
    batch = parse_line_protocol(text)
    assert batch.samples == []
    assert len(batch.errors) == 1
    return batch.errors[0]


def test_documented_example_becomes_one_sample_per_numeric_field() -> None:
    line = (
        "weather,location=us-midwest,season=summer temperature=82,humid=0.5,n=-3i,u=7u,ok=t,"
        'note="too warm" 1465839830100400200'
    )
    tags = {"location": "us-midwest", "season": "summer"}
    assert parse_ok(line) == [
        Sample(labels_of({"__name__": "weather_temperature", **tags}), 1465839830100, 82.0),
        Sample(labels_of({"__name__": "weather_humid", **tags}), 1465839830100, 0.5),
        Sample(labels_of({"__name__": "weather_n", **tags}), 1465839830100, -3.0),
        Sample(labels_of({"__name__": "weather_u", **tags}), 1465839830100, 7.0),
        Sample(labels_of({"__name__": "weather_ok", **tags}), 1465839830100, 1.0),
    ]


def test_field_named_value_keeps_the_measurement_name() -> None:
    assert parse_ok("cpu,host=a value=0.25 1000000", precision="ns") == [
        Sample((("__name__", "cpu"), ("host", "a")), 1, 0.25)
    ]


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        ("t", 1.0), ("T", 1.0), ("true", 1.0), ("True", 1.0), ("TRUE", 1.0),
        ("f", 0.0), ("F", 0.0), ("false", 0.0), ("False", 0.0), ("FALSE", 0.0),
        ("1", 1.0), ("-1.5e3", -1500.0), (".5", 0.5), ("+2.", 2.0),
        ("9223372036854775807i", 9.223372036854776e18), ("-12i", -12.0),
        ("18446744073709551615u", 1.8446744073709552e19), ("0u", 0.0),
    ],
)  # fmt: skip
def test_field_value_types(literal: str, expected: float) -> None:
    (sample,) = parse_ok(f"m value={literal}")
    assert sample.value == expected


def test_string_fields_are_skipped() -> None:
    samples = parse_ok('m s="a \\"quoted\\", b=2 text",x=1,t="" 5', precision="ms")
    assert samples == [Sample((("__name__", "m_x"),), 5, 1.0)]
    assert parse_ok('m only="strings here"') == []


def test_names_are_sanitised_to_prometheus_names() -> None:
    (sample,) = parse_ok("cpu.load,host.name=a,1zone=b avg-1m=2")
    assert dict(sample.labels) == {"__name__": "cpu_load_avg_1m", "_1zone": "b", "host_name": "a"}
    (sample,) = parse_ok("5xx:rate value=1")
    assert sample.name == "_5xx:rate"
    (sample,) = parse_ok("m,a:b=1 value=1")
    assert dict(sample.labels)["a_b"] == "1"


def test_escapes_in_measurement_tags_and_field_keys() -> None:
    line = r"my\ meas\,x,tag\ key\=k=va\ l\,u\=e field\ key\,2=1,back\slash=2"
    samples = parse_ok(line)
    tags = {"tag_key_k": "va l,u=e"}
    assert samples == [
        Sample(labels_of({"__name__": "my_meas_x_field_key_2", **tags}), None, 1.0),
        Sample(labels_of({"__name__": "my_meas_x_back_slash", **tags}), None, 2.0),
    ]
    # A backslash before anything else is kept; an escaped backslash is one backslash.
    (sample,) = parse_ok(r"m,t=a\b\\c value=1")
    assert dict(sample.labels)["t"] == "a\\b\\c"


@pytest.mark.parametrize(
    ("precision", "stamp", "ms"),
    [
        ("ns", 1_500_000_999_999, 1_500_000),
        ("n", 1_500_000_999_999, 1_500_000),
        ("us", 1_500_000_999, 1_500_000),
        ("u", 1_500_000_999, 1_500_000),
        ("ms", 1_500_000, 1_500_000),
        ("s", 1_500, 1_500_000),
        ("ns", -1, -1),  # rounds down, not toward zero
        ("s", -2, -2000),
    ],
)
def test_timestamp_precision(precision: str, stamp: int, ms: int) -> None:
    (sample,) = parse_ok(f"m value=1 {stamp}", precision=precision)
    assert sample.ts_ms == ms


def test_unknown_precision_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="unknown precision"):
        parse_line_protocol("m value=1", precision="h")


def test_missing_timestamp_takes_the_default() -> None:
    assert parse_ok("m value=1", default_ts_ms=42)[0].ts_ms == 42
    assert parse_ok("m value=1")[0].ts_ms is None


def test_comments_blank_lines_leading_blanks_and_crlf() -> None:
    text = "# a comment\n\n   \n  m value=1\r\n\t# indented comment\nm value=2  \r\n"
    assert [s.value for s in parse_ok(text)] == [1.0, 2.0]


@pytest.mark.parametrize(
    ("line", "column", "reason"),
    [
        ("m", 2, "missing fields"),
        ("m,t=1", 6, "missing fields"),
        ("m ", 3, "expected a field key"),
        (",t=1 value=1", 1, "expected a measurement name"),
        ("m,t= value=1", 5, "empty value for tag 't'"),
        ("m,=x value=1", 3, "expected a tag key"),
        ("m,t value=1", 4, "expected '=' after tag key 't'"),
        ("m value", 8, "expected '=' after field key"),
        ("m value=", 9, "empty value for field"),
        ('m value="open', 9, "unterminated string"),
        ("m value=abc", 9, "invalid field value 'abc'"),
        ("m value=1.5i", 9, "invalid integer"),
        ("m value=-1u", 9, "invalid unsigned"),
        ("m value=9223372036854775808i", 9, "out of the int64 range"),
        ("m value=18446744073709551616u", 9, "out of the uint64 range"),
        ("m value=1e999", 9, "out of range"),
        ("m value=1,", 11, "expected a field key"),
        ("m value=1 12x", 11, "invalid timestamp"),
        ("m value=1 1.5", 11, "invalid timestamp"),
        ("m value=1 1 2", 13, "unexpected text after the timestamp"),
        ("m value=1 99999999999999999999", 11, "out of the int64 range"),
        ("m,a=1,a=2 value=1", 7, "tag 'a' gives label 'a' twice"),
        ("m,a.b=1,a_b=2 value=1", 9, "gives label 'a_b' twice"),
        ("m,__name__=x value=1", 3, "gives label '__name__' twice"),
        ("m x=1,x=2", 7, "gives metric 'm_x' twice"),
        ("m a-b=1,a_b=2", 9, "gives metric 'm_a_b' twice"),
        ("m value=1,bad=?", 15, "invalid field value"),
    ],
)
def test_malformed_lines_point_at_the_fault(line: str, column: int, reason: str) -> None:
    error = only_error(line)
    assert (error.line, error.column) == (1, column), str(error)
    assert reason in error.reason, str(error)


def test_out_of_range_after_precision_conversion() -> None:
    batch = parse_line_protocol("m value=1 9223372036854775807", precision="s")
    assert batch.samples == []
    assert "out of the int64 range" in batch.errors[0].reason


def test_bad_lines_are_reported_and_good_lines_kept() -> None:
    text = "a value=1\nb value=oops\nc value=3,bad=1.5i\n# skip\nd\ne value=5\n"
    batch = parse_line_protocol(text, filename="telegraf.lp")
    assert [(s.name, s.value) for s in batch.samples] == [("a", 1.0), ("e", 5.0)]
    assert [e.line for e in batch.errors] == [2, 3, 5]
    assert all(e.filename == "telegraf.lp" for e in batch.errors)
    assert str(batch.errors[0]).startswith("telegraf.lp:2:9: invalid field value 'oops'")
    assert str(batch.errors[0]).endswith("  2 | b value=oops\n    |         ^")


def test_format_writes_escaped_lines_at_the_precision() -> None:
    samples = [
        Sample(labels_of({"__name__": "m", "t": "a b,c=d\\"}), 1500, 0.5),
        Sample((("__name__", "n:x"),), None, -2.0),
    ]
    assert format_line_protocol(samples) == "m,t=a\\ b\\,c\\=d\\\\ value=0.5 1500\nn:x value=-2.0\n"
    assert format_line_protocol(samples[:1], precision="s") == (
        "m,t=a\\ b\\,c\\=d\\\\ value=0.5 1\n"
    )
    assert format_line_protocol(samples[:1], precision="ns").endswith(" 1500000000\n")


@pytest.mark.parametrize(
    "sample",
    [
        Sample((("__name__", "m"),), None, math.nan),
        Sample((("__name__", "m"),), None, math.inf),
        Sample((("__name__", "m"), ("a", "x\ny")), None, 1.0),
        Sample((("a", "x"),), None, 1.0),
        Sample((("__name__", "m"), ("a-b", "x")), None, 1.0),
    ],
)
def test_format_rejects_what_line_protocol_cannot_carry(sample: Sample) -> None:
    with pytest.raises(InvalidInput):
        format_line_protocol([sample])


# --------------------------------------------------------------------- properties

NAME_HEAD = string.ascii_letters + "_"
metric_names = st.builds(
    operator.add,
    st.sampled_from(NAME_HEAD + ":"),
    st.text(alphabet=NAME_HEAD + string.digits + ":", max_size=8),
)
label_names = st.builds(
    operator.add,
    st.sampled_from(NAME_HEAD),
    st.text(alphabet=NAME_HEAD + string.digits, max_size=8),
).filter(lambda n: n != "__name__")
tag_values = st.text(
    alphabet=st.characters(exclude_characters="\n", exclude_categories=["Cs"]),
    min_size=1,
    max_size=10,
)


@st.composite
def samples(draw: st.DrawFn, *, min_ts: int = -(2**63), max_ts: int = 2**63 - 1) -> Sample:
    labels = draw(st.dictionaries(label_names, tag_values, max_size=4))
    labels["__name__"] = draw(metric_names)
    value = draw(st.floats(allow_nan=False, allow_infinity=False))
    ts = draw(st.none() | st.integers(min_ts, max_ts))
    return Sample(labels_of(labels), ts, value)


@settings(max_examples=150)
@given(st.lists(samples(), max_size=8))
def test_round_trip_writer_to_parser(batch: list[Sample]) -> None:
    parsed = parse_line_protocol(format_line_protocol(batch), precision="ms")
    assert parsed.errors == []
    assert parsed.samples == batch


@settings(max_examples=50)
@given(st.lists(samples(min_ts=-(2**63) // 10**6 + 1, max_ts=(2**63 - 1) // 10**6), max_size=4))
def test_round_trip_in_nanoseconds(batch: list[Sample]) -> None:
    parsed = parse_line_protocol(format_line_protocol(batch, precision="ns"))
    assert parsed.errors == []
    assert parsed.samples == batch


def check_batch(text: str, batch: ParsedBatch) -> None:
    """Invariants every parse keeps: typed errors on distinct lines, valid samples."""
    lines = text.split("\n")
    error_lines = [0 if e.line is None else e.line for e in batch.errors]
    assert all(isinstance(e, ParseError) for e in batch.errors)
    assert error_lines == sorted(set(error_lines))
    assert all(1 <= line <= len(lines) for line in error_lines)
    assert all(e.column is not None and e.column >= 1 for e in batch.errors)
    for sample in batch.samples:
        assert METRIC_NAME.fullmatch(sample.name)
        assert sample.labels == labels_of(sample.labels)
        assert all(LABEL_NAME.fullmatch(n) for n, _ in sample.labels)
        assert math.isfinite(sample.value)
    for number in error_lines:
        content = lines[number - 1].lstrip(" \t")
        assert content and not content.startswith("#")


ALPHABET = st.sampled_from([*'mab_,= "\\\t\n\r#0123456789.+-eiutTfF.', "true", "value"])


@settings(max_examples=300)
@given(st.lists(ALPHABET, max_size=50).map("".join))
def test_fuzz_random_text_yields_samples_or_parse_errors(text: str) -> None:
    check_batch(text, parse_line_protocol(text))


@settings(max_examples=200)
@given(st.text(max_size=60))
def test_fuzz_arbitrary_unicode(text: str) -> None:
    check_batch(text, parse_line_protocol(text))


@settings(max_examples=200)
@given(st.lists(samples(), min_size=1, max_size=4), st.data())
def test_fuzz_mutated_valid_lines(batch: list[Sample], data: st.DataObject) -> None:
    chars = list(format_line_protocol(batch))
    for _ in range(data.draw(st.integers(1, 4))):
        if not chars:
            break
        at = data.draw(st.integers(0, len(chars) - 1))
        op = data.draw(st.sampled_from(["delete", "replace", "insert"]))
        if op == "delete":
            del chars[at]
        else:
            chars[at : at + (op == "replace")] = [data.draw(ALPHABET)]
    mutated = "".join(chars)
    check_batch(mutated, parse_line_protocol(mutated))
