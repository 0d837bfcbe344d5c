"""Prometheus text exposition 0.0.4: every rule by example, round trip, and fuzzing."""

from __future__ import annotations

import math
import operator
import string
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trusswork.core.errors import InvalidInput, ParseError
from trusswork.tsdb._exposition import format_exposition, parse_exposition
from trusswork.tsdb._ingest import LABEL_NAME, METRIC_NAME, ParsedBatch, Sample
from trusswork.tsdb._series import labels_of


def one(text: str, **kwargs: object) -> Sample:
    batch = parse_exposition(text, **kwargs)  # type: ignore[arg-type]
    assert batch.errors == [], [str(e) for e in batch.errors]
    assert len(batch.samples) == 1
    return batch.samples[0]


def only_error(text: str) -> ParseError:
    batch = parse_exposition(text)
    assert batch.samples == []
    assert len(batch.errors) == 1
    return batch.errors[0]


def test_documented_example_parses_to_samples_with_metadata() -> None:
    text = (
        "# HELP http_requests_total The total number of HTTP requests.\n"
        "# TYPE http_requests_total counter\n"
        'http_requests_total{method="post",code="200"} 1027 1395066363000\n'
        'http_requests_total{method="post",code="400"}    3 1395066363000\n'
        "\n"
        "# A normal comment.\n"
        "metric_without_timestamp_and_labels 12.47\n"
    )
    batch = parse_exposition(text, default_ts_ms=99)
    assert batch.errors == []
    assert batch.types == {"http_requests_total": "counter"}
    assert batch.help == {"http_requests_total": "The total number of HTTP requests."}
    assert batch.samples == [
        Sample(
            labels_of({"__name__": "http_requests_total", "method": "post", "code": "200"}),
            1395066363000,
            1027.0,
        ),
        Sample(
            labels_of({"__name__": "http_requests_total", "method": "post", "code": "400"}),
            1395066363000,
            3.0,
        ),
        Sample((("__name__", "metric_without_timestamp_and_labels"),), 99, 12.47),
    ]


def test_sample_without_timestamp_or_default_is_unstamped() -> None:
    assert one("up 1").ts_ms is None
    assert one("up 1 -5").ts_ms == -5


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", 1.0),
        ("-0.5", -0.5),
        (".5", 0.5),
        ("1.", 1.0),
        ("1e3", 1000.0),
        ("-1.5E-3", -0.0015),
        ("+Inf", math.inf),
        ("-Inf", -math.inf),
        ("Inf", math.inf),
        ("+inf", math.inf),
    ],
)
def test_values(text: str, expected: float) -> None:
    assert one(f"m {text}").value == expected


def test_nan_value() -> None:
    assert math.isnan(one("m NaN").value)
    assert math.isnan(one("m nan 5").value)


@pytest.mark.parametrize("text", ["1_000", "0x10", "1e", "one", "--1", "1.2.3"])
def test_invalid_values_are_rejected_at_the_value(text: str) -> None:
    error = only_error(f'm{{a="b"}} {text}')
    assert error.line == 1
    assert error.column == 10
    assert "invalid value" in error.reason


def test_label_escapes() -> None:
    sample = one(r'm{a="back\\slash",b="quote\"d",c="new\nline",d="keep\t"} 1')
    assert dict(sample.labels) == {
        "__name__": "m",
        "a": "back\\slash",
        "b": 'quote"d',
        "c": "new\nline",
        "d": "keep\\t",  # unknown escapes are kept as written, as Prometheus does
    }


def test_label_whitespace_trailing_comma_and_empty_values() -> None:
    sample = one('  m { a = "1" , b="", }\t2\t3  ')
    assert sample.labels == (("__name__", "m"), ("a", "1"))  # empty value = no label
    assert (sample.ts_ms, sample.value) == (3, 2.0)
    assert one("m{} 1").labels == (("__name__", "m"),)


def test_crlf_line_endings() -> None:
    batch = parse_exposition("a 1\r\nb 2\r\n")
    assert [s.value for s in batch.samples] == [1.0, 2.0]
    assert batch.errors == []


def test_histogram_and_summary_series_are_plain_series() -> None:
    text = (
        "# TYPE rpc_seconds histogram\n"
        'rpc_seconds_bucket{le="0.5"} 3\n'
        'rpc_seconds_bucket{le="+Inf"} 5\n'
        "rpc_seconds_sum 2.5\n"
        "rpc_seconds_count 5\n"
        "# TYPE lat summary\n"
        'lat{quantile="0.99"} 0.2\n'
        "lat_sum 10\n"
        "lat_count 50\n"
    )
    batch = parse_exposition(text)
    assert batch.errors == []
    assert batch.types == {"rpc_seconds": "histogram", "lat": "summary"}
    assert [s.name for s in batch.samples] == [
        "rpc_seconds_bucket",
        "rpc_seconds_bucket",
        "rpc_seconds_sum",
        "rpc_seconds_count",
        "lat",
        "lat_sum",
        "lat_count",
    ]
    assert dict(batch.samples[1].labels)["le"] == "+Inf"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("h_bucket 1", "needs a 'le' label"),
        ('h_bucket{le="big"} 1', "not a number"),
        ("s 1", "needs a 'quantile' label"),
        ('s{quantile="x"} 1', "not a number"),
    ],
)
def test_bucket_and_quantile_labels_are_required(line: str, reason: str) -> None:
    batch = parse_exposition(f"# TYPE h histogram\n# TYPE s summary\n{line}\nh_sum 1\n")
    assert [s.name for s in batch.samples] == ["h_sum"]
    assert [(e.line, e.column) for e in batch.errors] == [(3, 1)]
    assert reason in batch.errors[0].reason


@pytest.mark.parametrize(
    ("line", "column", "reason"),
    [
        ('m{a="1",a="2"} 1', 9, "'a' appears twice"),
        ('m{__name__="x"} 1', 3, "'__name__' appears twice"),
        ('m{1a="x"} 1', 3, "expected a label name"),
        ('m{a-b="x"} 1', 4, "expected '='"),
        ('m{a="x} 1', 5, "unterminated label value"),
        ("m{a=x} 1", 5, "double-quoted"),
        ('m{a="x" b="y"} 1', 9, "expected ',' or '}'"),
        ("1m 1", 1, "expected a metric name"),
        ("m-x 1", 2, "unexpected character '-'"),
        ("m.x 1", 2, "unexpected character '.'"),
        ("m", 2, "missing value"),
        ('m{a="b"}', 9, "missing value"),
        ("m 1 12.5", 5, "invalid timestamp"),
        ("m 1 2 3", 7, "unexpected text after the timestamp"),
        ("m 1 9223372036854775808", 5, "out of the int64 range"),
    ],
)
def test_malformed_sample_lines_point_at_the_fault(line: str, column: int, reason: str) -> None:
    error = only_error(line)
    assert (error.line, error.column) == (1, column)
    assert reason in error.reason


def test_int64_timestamp_bounds_are_accepted() -> None:
    assert one("m 1 9223372036854775807").ts_ms == 2**63 - 1
    assert one("m 1 -9223372036854775808").ts_ms == -(2**63)


def test_bad_lines_are_reported_and_good_lines_kept() -> None:
    text = "a 1\nb{x=} 2\nc 3\n# TYPE c bogus\nd\ne 5 6\n"
    batch = parse_exposition(text, filename="scrape.prom")
    assert [(s.name, s.value) for s in batch.samples] == [("a", 1.0), ("c", 3.0), ("e", 5.0)]
    assert [e.line for e in batch.errors] == [2, 4, 5]
    assert all(e.filename == "scrape.prom" for e in batch.errors)
    message = str(batch.errors[0])
    assert message.startswith("scrape.prom:2:5: expected a double-quoted label value")
    assert message.endswith("  2 | b{x=} 2\n    |     ^")


def test_help_and_type_lines() -> None:
    text = (
        "# HELP a Line one\\nline two \\\\ done\n"
        "# HELP b\n"
        "# TYPE a GAUGE\n"
        "#TYPE b untyped\n"
        "# HELPFUL not metadata\n"
        "# TYPE a counter\n"
        "# TYPE c\n"
        "# TYPE d counter extra\n"
        "# TYPE 1x counter\n"
        "# HELP\n"
        "# HELP a again\n"
    )
    batch = parse_exposition(text)
    assert batch.help == {"a": "Line one\nline two \\ done", "b": ""}
    assert batch.types == {"a": "gauge", "b": "untyped"}
    assert [e.line for e in batch.errors] == [6, 7, 8, 9, 10, 11]
    reasons = [e.reason for e in batch.errors]
    assert "second # TYPE" in reasons[0]
    assert "needs a type" in reasons[1]
    assert "unexpected text" in reasons[2]
    assert "invalid metric name" in reasons[3]
    assert "needs a metric name" in reasons[4]
    assert "second # HELP" in reasons[5]


def test_unknown_type_is_rejected() -> None:
    error = parse_exposition("# TYPE m histogramm\n").errors[0]
    assert error.column == 10
    assert "unknown metric type 'histogramm'" in error.reason


def test_format_writes_escaped_lines() -> None:
    samples = [
        Sample(labels_of({"__name__": "m", "b": 'x"\\\ny', "a": "1"}), 17, 0.5),
        Sample((("__name__", "n"),), None, -math.inf),
        Sample((("__name__", "o"),), None, math.nan),
    ]
    text = format_exposition(samples, types={"m": "gauge"}, help={"m": "a\\b\nc"})
    assert text == (
        '# HELP m a\\\\b\\nc\n# TYPE m gauge\nm{a="1",b="x\\"\\\\\\ny"} 0.5 17\nn -Inf\no NaN\n'
    )


@pytest.mark.parametrize(
    "labels",
    [(), (("job", "x"),), (("__name__", "1bad"),), (("__name__", "ok"), ("bad-name", "v"))],
)
def test_format_rejects_unnamed_or_invalid_samples(labels: tuple[tuple[str, str], ...]) -> None:
    with pytest.raises(InvalidInput):
        format_exposition([Sample(labels, None, 1.0)])


def test_format_rejects_unknown_type() -> None:
    with pytest.raises(InvalidInput, match="unknown metric type"):
        format_exposition([], types={"m": "enum"})


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
int64s = st.integers(-(2**63), 2**63 - 1)


@st.composite
def samples(draw: st.DrawFn) -> Sample:
    labels = draw(st.dictionaries(label_names, st.text(max_size=12), max_size=4))
    labels["__name__"] = draw(metric_names)
    value = draw(st.floats(allow_nan=True, allow_infinity=True))
    return Sample(labels_of(labels), draw(st.none() | int64s), value)


def same_samples(got: list[Sample], want: list[Sample]) -> bool:
    def key(s: Sample) -> tuple[object, ...]:
        return (s.labels, s.ts_ms, "nan" if math.isnan(s.value) else s.value)

    return [key(s) for s in got] == [key(s) for s in want]


@settings(max_examples=150)
@given(st.lists(samples(), max_size=8))
def test_round_trip_writer_to_parser(batch: list[Sample]) -> None:
    parsed = parse_exposition(format_exposition(batch))
    assert parsed.errors == []
    assert same_samples(parsed.samples, batch)


# A help text cannot start with blanks (they separate it from the name) or end in
# a carriage return (taken as part of a CRLF line ending).
help_texts = st.text(max_size=10).filter(lambda t: t == t.lstrip(" \t") and not t.endswith("\r"))


@settings(max_examples=50)
@given(
    st.dictionaries(metric_names, st.sampled_from(["counter", "gauge", "untyped"]), max_size=3),
    st.dictionaries(metric_names, help_texts, max_size=3),
)
def test_round_trip_metadata(types: dict[str, str], helps: dict[str, str]) -> None:
    parsed = parse_exposition(format_exposition([], types=types, help=helps))
    assert parsed.errors == []
    assert parsed.types == types
    assert parsed.help == helps


def check_batch(text: str, batch: ParsedBatch) -> None:
    """The invariants every parse keeps, whatever the input."""
    lines = text.split("\n")
    sample_lines = []
    for number, line in enumerate(lines, 1):
        content = (line[:-1] if line.endswith("\r") else line).lstrip(" \t")
        if content and not content.startswith("#"):
            sample_lines.append(number)
    error_lines = [0 if e.line is None else e.line for e in batch.errors]
    assert all(isinstance(e, ParseError) for e in batch.errors)
    assert error_lines == sorted(set(error_lines))
    assert all(1 <= line <= len(lines) for line in error_lines)
    assert all(e.column is not None and e.column >= 1 for e in batch.errors)
    sample_errors = [line for line in error_lines if line in sample_lines]
    assert len(batch.samples) + len(sample_errors) == len(sample_lines)
    for sample in batch.samples:
        assert METRIC_NAME.fullmatch(sample.name)
        assert sample.labels == labels_of(sample.labels)
        assert all(LABEL_NAME.fullmatch(n) for n, _ in sample.labels)
        assert isinstance(sample.value, float)


ALPHABET = st.sampled_from([*'ab_:{}="\\, \t\n\r#0123456789.+-eEInfNa', "HELP", "TYPE"])


@settings(max_examples=300)
@given(st.lists(ALPHABET, max_size=60).map("".join))
def test_fuzz_random_text_yields_samples_or_parse_errors(text: str) -> None:
    check_batch(text, parse_exposition(text))


@settings(max_examples=200)
@given(st.text(max_size=80))
def test_fuzz_arbitrary_unicode(text: str) -> None:
    check_batch(text, parse_exposition(text))


@settings(max_examples=200)
@given(st.lists(samples(), min_size=1, max_size=5), st.data())
def test_fuzz_mutated_valid_expositions(batch: list[Sample], data: st.DataObject) -> None:
    text = format_exposition(batch, types={"x": "histogram"})
    chars = list(text)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(chars) - 1))
        op = data.draw(st.sampled_from(["delete", "replace", "insert"]))
        if op == "delete":
            del chars[at]
        else:
            char = data.draw(ALPHABET)
            chars[at : at + (op == "replace")] = [char]
        if not chars:
            break
    mutated = "".join(chars)
    check_batch(mutated, parse_exposition(mutated))


def test_stale_marker_is_written_as_plain_nan() -> None:
    stale = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]
    text = format_exposition([Sample((("__name__", "m"),), 1, stale)])
    assert text == "m NaN 1\n"
