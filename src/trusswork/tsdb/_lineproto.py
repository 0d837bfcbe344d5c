"""InfluxDB line protocol, converted to Prometheus samples.

One point per line::

    weather,location=us-midwest,season=summer temperature=82,humid=0.5,ok=t 1465839830100400200

Syntax: a measurement, optional ``,tag=value`` pairs, a space, one or more
``field=value`` pairs separated by commas, and an optional integer timestamp
after a space. Lines starting with ``#`` are comments; blank lines are
skipped.

Escaping: in the measurement ``\\,``, ``\\ `` and ``\\\\`` stand for a
comma, a space and a backslash; in tag keys, tag values and field keys
``\\=`` too. A backslash before any other character is kept as written.
String field values are double-quoted with ``\\"`` and ``\\\\`` escapes.

Field values: floats (``1``, ``-1.5e3``), integers (``12i``), unsigned
integers (``12u``) and booleans (``t``, ``T``, ``true``, ``True``,
``TRUE`` and the ``f``/``false`` forms, as 1 and 0).

Conversion to samples follows the Prometheus convention for Influx data:

* each numeric or boolean field becomes one sample named
  ``<measurement>_<field>``, or just ``<measurement>`` for a field called
  ``value``; the name is sanitised to a valid metric name (every other
  character becomes ``_``, a leading digit gets a ``_`` prefix);
* tags become labels, their keys sanitised the same way (colons too);
  two tags that sanitise to the same name, or a tag named ``__name__``,
  reject the line;
* **string fields are skipped**: Prometheus samples are floats. A line whose
  fields are all strings is valid and yields no samples;
* timestamps are converted to milliseconds by ``precision`` (``ns``, ``us``,
  ``ms``, ``s``), rounding down.

A line is accepted or rejected whole: one bad field rejects all its fields.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Final

from trusswork.core.errors import InvalidInput, ParseError
from trusswork.tsdb._ingest import LABEL_NAME, METRIC_NAME, ParsedBatch, Sample, line_error
from trusswork.tsdb._series import Labels

__all__ = ["format_line_protocol", "parse_line_protocol"]

_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1
_UINT64_MAX: Final = (1 << 64) - 1

#: Multiply (positive) or floor-divide (negative) a timestamp by this for ms.
_PRECISION: Final = {"ns": -1_000_000, "n": -1_000_000, "us": -1000, "u": -1000, "ms": 1, "s": 1000}

_MEASUREMENT_SRC = r"(?:[^,\\ ]|\\.)+"
_KEY_SRC = r"(?:[^,=\\ ]|\\.)+"
_TAG_VALUE_SRC = r"(?:[^,\\ ]|\\.)+"
_FIELD_VALUE_SRC = r'"(?:[^"\\]|\\.)*"|[^," ]+'
_FIELD_SRC = rf"{_KEY_SRC}=(?:{_FIELD_VALUE_SRC})"

_LINE: Final = re.compile(
    rf"[ \t]*({_MEASUREMENT_SRC})((?:,{_KEY_SRC}={_TAG_VALUE_SRC})*) +"
    rf"({_FIELD_SRC}(?:,{_FIELD_SRC})*)(?: +(-?[0-9]+))? *",
    re.DOTALL,
)
_TAG: Final = re.compile(rf",({_KEY_SRC})=({_TAG_VALUE_SRC})", re.DOTALL)
_FIELD: Final = re.compile(rf"({_KEY_SRC})=({_FIELD_VALUE_SRC})", re.DOTALL)
_UNESCAPE_MEASUREMENT: Final = re.compile(r"\\([, \\])")
_UNESCAPE_KEY: Final = re.compile(r"\\([,= \\])")
_FLOAT: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INTEGER: Final = re.compile(r"[+-]?[0-9]+")
_UNSIGNED: Final = re.compile(r"[0-9]+")
_BOOLEANS: Final = {
    "t": 1.0, "T": 1.0, "true": 1.0, "True": 1.0, "TRUE": 1.0,
    "f": 0.0, "F": 0.0, "false": 0.0, "False": 0.0, "FALSE": 0.0,
}  # fmt: skip
_BAD_METRIC_CHARS: Final = re.compile(r"[^a-zA-Z0-9_:]")
_BAD_LABEL_CHARS: Final = re.compile(r"[^a-zA-Z0-9_]")

# Scanner pieces for locating errors in a line the full regex refused.
_MEASUREMENT_AT: Final = re.compile(_MEASUREMENT_SRC, re.DOTALL)
_KEY_AT: Final = re.compile(_KEY_SRC, re.DOTALL)
_TAG_VALUE_AT: Final = re.compile(_TAG_VALUE_SRC, re.DOTALL)
_STRING_AT: Final = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_RAW_VALUE_AT: Final = re.compile(r'[^," ]+')
_TIMESTAMP_AT: Final = re.compile(r"-?[0-9]+")


def _metric_name(raw: str) -> str:
    name = _BAD_METRIC_CHARS.sub("_", raw)
    return "_" + name if name[0].isdigit() else name


def _label_name(raw: str) -> str:
    name = _BAD_LABEL_CHARS.sub("_", raw)
    return "_" + name if name[0].isdigit() else name


def _unescape_key(raw: str) -> str:
    return _UNESCAPE_KEY.sub(r"\1", raw) if "\\" in raw else raw


def _field_value(raw: str) -> float | str | None:
    """The float a field value stands for, None for a string, or why it is invalid."""
    if raw[0] == '"':
        return None
    last = raw[-1]
    if last == "i":
        if _INTEGER.fullmatch(raw, 0, len(raw) - 1) is None:
            return f"invalid integer field value {raw!r}"
        number = int(raw[:-1])
        if not _INT64_MIN <= number <= _INT64_MAX:
            return f"integer field value {raw!r} is out of the int64 range"
        return float(number)
    if last == "u":
        if _UNSIGNED.fullmatch(raw, 0, len(raw) - 1) is None:
            return f"invalid unsigned field value {raw!r}"
        number = int(raw[:-1])
        if number > _UINT64_MAX:
            return f"unsigned field value {raw!r} is out of the uint64 range"
        return float(number)
    boolean = _BOOLEANS.get(raw)
    if boolean is not None:
        return boolean
    if _FLOAT.fullmatch(raw) is None:
        return f"invalid field value {raw!r}"
    value = float(raw)
    if math.isinf(value):
        return f"float field value {raw!r} is out of range"
    return value


def parse_line_protocol(
    text: str,
    *,
    precision: str = "ns",
    default_ts_ms: int | None = None,
    filename: str = "<line-protocol>",
) -> ParsedBatch:
    """Parse Influx line protocol into Prometheus samples.

    Parameters
    ----------
    text:
        Points, one per line (a ``\\r`` before the ``\\n`` is ignored).
    precision:
        Unit of the timestamps: ``"ns"`` (default), ``"us"``, ``"ms"`` or
        ``"s"`` (``"n"`` and ``"u"`` are accepted as Influx 1.x spells them).
    default_ts_ms:
        Timestamp for points without one (``None`` leaves them unstamped).
    filename:
        Shown in every error.

    Returns
    -------
    ParsedBatch
        The samples of the good lines and one error per bad line.

    Raises
    ------
    InvalidInput
        ``precision`` is not one of the units above.
    """
    factor = _PRECISION.get(precision)
    if factor is None:
        raise InvalidInput(f"unknown precision {precision!r} (expected ns, us, ms or s)")
    batch = ParsedBatch()
    samples = batch.samples
    errors = batch.errors
    fullmatch = _LINE.fullmatch
    # Points of one batch repeat their tag sets and series: parse each once.
    tag_cache: dict[str, list[tuple[str, str]]] = {}
    series: dict[tuple[str, str, str], Labels] = {}
    label_names: dict[str, str] = {}
    for lineno, line in enumerate(text.split("\n"), 1):
        if line.endswith("\r"):
            line = line[:-1]
        match = fullmatch(line)
        if match is None:
            stripped = line.lstrip(" \t")
            if stripped and stripped[0] != "#":
                errors.append(_diagnose(line, lineno, filename))
            continue
        measurement, tag_text, _, ts_text = match.groups()
        if measurement[0] == "#":
            continue
        tags = tag_cache.get(tag_text)
        if tags is None:
            tags = []
            error = _collect_tags(line, match, tags, label_names)
            if error is not None:
                errors.append(_fail(error[0], line, lineno, error[1], filename))
                continue
            tag_cache[tag_text] = tags
        if ts_text is None:
            ts_ms = default_ts_ms
        else:
            ts = int(ts_text)
            ts_ms = ts * factor if factor > 0 else ts // -factor
            if not (_INT64_MIN <= ts <= _INT64_MAX and _INT64_MIN <= ts_ms <= _INT64_MAX):
                reason = f"timestamp {ts_text} ({precision}) is out of the int64 range"
                errors.append(_fail(reason, line, lineno, match.start(4), filename))
                continue
        points: list[Sample] = []
        metrics_seen: set[Labels] = set()
        for field in _FIELD.finditer(line, match.start(3), match.end(3)):
            key = field.group(1)
            value = _field_value(field.group(2))
            if value is None:
                continue
            if isinstance(value, str):
                errors.append(_fail(value, line, lineno, field.start(2), filename))
                break
            labels = series.get((measurement, tag_text, key))
            if labels is None:
                plain = _UNESCAPE_MEASUREMENT.sub(r"\1", measurement)
                field_key = _unescape_key(key)
                name = _metric_name(plain if field_key == "value" else f"{plain}_{field_key}")
                labels = series[measurement, tag_text, key] = tuple(
                    sorted([("__name__", name), *tags])
                )
            if labels in metrics_seen:
                reason = f"field {key!r} gives metric {_name_of(labels)!r} twice"
                errors.append(_fail(reason, line, lineno, field.start(1), filename))
                break
            metrics_seen.add(labels)
            points.append(Sample(labels, ts_ms, value))
        else:
            samples.extend(points)
    return batch


def _name_of(labels: Labels) -> str:
    return dict(labels)["__name__"]


def _fail(reason: str, line: str, lineno: int, pos: int, filename: str) -> ParseError:
    return line_error(reason, line_text=line, line=lineno, column=pos + 1, filename=filename)


def _collect_tags(
    line: str, match: re.Match[str], tags: list[tuple[str, str]], label_names: dict[str, str]
) -> tuple[str, int] | None:
    """Append the line's tags as sorted labels; on a clash return (reason, position)."""
    seen = {"__name__"}
    for tag in _TAG.finditer(line, match.start(2), match.end(2)):
        key = tag.group(1)
        label = label_names.get(key)
        if label is None:
            label = label_names[key] = _label_name(_unescape_key(key))
        if label in seen:
            return f"tag {key!r} gives label {label!r} twice", tag.start(1)
        seen.add(label)
        tags.append((label, _unescape_key(tag.group(2))))
    tags.sort()
    return None


def _diagnose(line: str, lineno: int, filename: str) -> ParseError:
    """Scan a refused line piece by piece and report the first fault."""

    def fail(reason: str, pos: int) -> ParseError:
        return line_error(reason, line_text=line, line=lineno, column=pos + 1, filename=filename)

    end = len(line)
    pos = len(line) - len(line.lstrip(" \t"))
    measurement = _MEASUREMENT_AT.match(line, pos)
    if measurement is None:
        return fail("expected a measurement name", pos)
    pos = measurement.end()
    while pos < end and line[pos] == ",":
        key = _KEY_AT.match(line, pos + 1)
        if key is None:
            return fail("expected a tag key after ','", pos + 1)
        pos = key.end()
        if pos >= end or line[pos] != "=":
            return fail(f"expected '=' after tag key {key.group()!r}", pos)
        value = _TAG_VALUE_AT.match(line, pos + 1)
        if value is None:
            return fail(f"empty value for tag {key.group()!r}", pos + 1)
        pos = value.end()
    if pos >= end:
        return fail("missing fields (expected a space, then field=value)", pos)
    if line[pos] != " ":
        return fail(f"unexpected character {line[pos]!r} (expected a space before the fields)", pos)
    pos = len(line) - len(line[pos:].lstrip(" "))
    while True:
        key = _KEY_AT.match(line, pos)
        if key is None:
            return fail("expected a field key", pos)
        pos = key.end()
        if pos >= end or line[pos] != "=":
            return fail(f"expected '=' after field key {key.group()!r}", pos)
        pos += 1
        if pos < end and line[pos] == '"':
            value = _STRING_AT.match(line, pos)
            if value is None:
                return fail("unterminated string field value", pos)
        else:
            value = _RAW_VALUE_AT.match(line, pos)
            if value is None:
                return fail(f"empty value for field {key.group()!r}", pos)
        pos = value.end()
        if pos < end and line[pos] == ",":
            pos += 1
            continue
        break
    if pos < end and line[pos] != " ":
        return fail(f"unexpected character {line[pos]!r} after a field value", pos)
    pos = len(line) - len(line[pos:].lstrip(" "))
    timestamp = _TIMESTAMP_AT.match(line, pos)
    if timestamp is None:
        return fail("invalid timestamp (expected an integer)", pos)
    pos = len(line) - len(line[timestamp.end() :].lstrip(" "))
    if timestamp.end() < end and line[timestamp.end()] != " ":
        return fail("invalid timestamp (expected an integer)", timestamp.start())
    return fail("unexpected text after the timestamp", pos)


def _escape(text: str, specials: str) -> str:
    text = text.replace("\\", "\\\\")
    for char in specials:
        text = text.replace(char, "\\" + char)
    return text


def format_line_protocol(samples: Iterable[Sample], *, precision: str = "ms") -> str:
    """Write samples as line protocol that :func:`parse_line_protocol` reads back.

    Each sample becomes ``<metric name>[,<label>=<value>...] value=<float> [<ts>]``.

    Parameters
    ----------
    samples:
        Samples with a valid metric name.
    precision:
        Unit to write timestamps in (``ns``, ``us``, ``ms``, ``s``); converting
        to ``s`` drops sub-second milliseconds.

    Returns
    -------
    str
        One line per sample, each ending in ``\\n``.

    Raises
    ------
    InvalidInput
        An unknown precision, a missing or invalid metric or label name, a
        label value holding a line feed, or a NaN or infinite value (line
        protocol has no spelling for them).
    """
    factor = _PRECISION.get(precision)
    if factor is None:
        raise InvalidInput(f"unknown precision {precision!r} (expected ns, us, ms or s)")
    out: list[str] = []
    for sample in samples:
        name = ""
        parts: list[str] = []
        for label, value in sample.labels:
            if label == "__name__":
                name = value
                continue
            if LABEL_NAME.fullmatch(label) is None:
                raise InvalidInput(f"invalid label name {label!r}")
            if "\n" in value or not value:
                raise InvalidInput(f"label {label}={value!r} cannot be written as a tag value")
            parts.append(f",{label}={_escape(value, ',= ')}")
        if METRIC_NAME.fullmatch(name) is None:
            raise InvalidInput(f"sample needs a valid metric name, got {name!r}")
        if not math.isfinite(sample.value):
            raise InvalidInput(f"line protocol cannot carry the value {sample.value!r}")
        line = f"{name}{''.join(parts)} value={sample.value!r}"
        if sample.ts_ms is not None:
            ts = sample.ts_ms // factor if factor > 0 else sample.ts_ms * -factor
            line += f" {ts}"
        out.append(line + "\n")
    return "".join(out)
