"""Prometheus text exposition format 0.0.4: parser and writer.

Each line is blank, a comment, or a sample::

    # HELP http_requests_total Requests served.
    # TYPE http_requests_total counter
    http_requests_total{method="post",code="200"} 1027 1395066363000

Rules the parser enforces (and the writer follows):

* metric names match ``[a-zA-Z_:][a-zA-Z0-9_:]*``, label names
  ``[a-zA-Z_][a-zA-Z0-9_]*``; a label name may appear once per sample
  (``__name__`` counts: it is the metric name);
* label values are double-quoted with the escapes ``\\\\``, ``\\"`` and
  ``\\n``; any other backslash pair is kept as written, as Prometheus does;
* values are floats, including ``NaN``, ``+Inf`` and ``-Inf``; the optional
  timestamp is an int64 count of milliseconds;
* ``# TYPE`` names one of counter, gauge, histogram, summary, untyped, at most
  once per family; ``# HELP`` text unescapes ``\\\\`` and ``\\n``; other
  comments are ignored;
* a family's ``_bucket``/``_sum``/``_count`` series are plain series; once
  a ``# TYPE`` line has declared the family, a ``_bucket`` of a histogram
  needs a numeric ``le`` label and a summary's quantile series a numeric
  ``quantile`` label.

The happy path is one precompiled full-line regex per line; a line that
fails it is re-scanned token by token to say where it went wrong. The text
format cannot carry the staleness marker: it is written as ``NaN``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Final

from trusswork.core.errors import InvalidInput, ParseError
from trusswork.tsdb._ingest import LABEL_NAME, METRIC_NAME, ParsedBatch, Sample, line_error

__all__ = ["format_exposition", "parse_exposition"]

_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1
_TYPES: Final = frozenset({"counter", "gauge", "histogram", "summary", "untyped"})

_NAME_SRC = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LNAME_SRC = r"[a-zA-Z_][a-zA-Z0-9_]*"
_STRING_BODY = r'(?:[^"\\]|\\.)*'
_PAIR_SRC = rf'{_LNAME_SRC}[ \t]*=[ \t]*"{_STRING_BODY}"'
_LABELS_SRC = rf"[ \t]*(?:{_PAIR_SRC}[ \t]*(?:,[ \t]*{_PAIR_SRC}[ \t]*)*(?:,[ \t]*)?)?"
_FLOAT_SRC = (
    r"[+-]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
    r"|[iI][nN][fF](?:[iI][nN][iI][tT][yY])?|[nN][aA][nN])"
)

_SAMPLE_LINE: Final = re.compile(
    rf"[ \t]*({_NAME_SRC})(?:[ \t]*\{{({_LABELS_SRC})\}}[ \t]*|[ \t]+)"
    rf"({_FLOAT_SRC})(?:[ \t]+(-?[0-9]+))?[ \t]*",
    re.DOTALL,
)
_PAIR: Final = re.compile(rf'({_LNAME_SRC})[ \t]*=[ \t]*"({_STRING_BODY})"', re.DOTALL)
_FLOAT: Final = re.compile(_FLOAT_SRC)
_LABEL_ESCAPE: Final = re.compile(r"\\(.)", re.DOTALL)
_HELP_ESCAPE: Final = re.compile(r"\\([\\n])")
_COMMENT: Final = re.compile(r"[ \t]*#[ \t]*(HELP|TYPE)(?:[ \t]+(\S*)(?:[ \t]+(.*))?)?[ \t]*")

# Scanner pieces for locating errors in a line the full regex refused.
_WS: Final = re.compile(r"[ \t]*")
_NAME_AT: Final = re.compile(_NAME_SRC)
_LNAME_AT: Final = re.compile(_LNAME_SRC)
_STRING_REST: Final = re.compile(rf'{_STRING_BODY}"', re.DOTALL)
_TOKEN: Final = re.compile(r"[^ \t]*")
_TIMESTAMP: Final = re.compile(r"-?[0-9]+")


def _unescape_label(match: re.Match[str]) -> str:
    char = match.group(1)
    if char == "n":
        return "\n"
    if char in '\\"':
        return char
    return match.group(0)


def _unescape_help(match: re.Match[str]) -> str:
    return "\n" if match.group(1) == "n" else "\\"


def parse_exposition(
    text: str, *, default_ts_ms: int | None = None, filename: str = "<exposition>"
) -> ParsedBatch:
    """Parse a Prometheus text exposition (format 0.0.4).

    Parameters
    ----------
    text:
        The exposition, lines separated by ``\\n`` (a ``\\r`` before it is ignored).
    default_ts_ms:
        Timestamp for samples that carry none (``None`` leaves them unstamped).
    filename:
        Shown in every error.

    Returns
    -------
    ParsedBatch
        The samples of the good lines, one error per bad line, and the
        ``# TYPE`` and ``# HELP`` metadata.
    """
    batch = ParsedBatch()
    samples = batch.samples
    errors = batch.errors
    types = batch.types
    fullmatch = _SAMPLE_LINE.fullmatch
    find_pairs = _PAIR.findall
    bare: dict[str, tuple[tuple[str, str], ...]] = {}
    for lineno, line in enumerate(text.split("\n"), 1):
        if line.endswith("\r"):
            line = line[:-1]
        match = fullmatch(line)
        if match is None:
            stripped = line.lstrip(" \t")
            if not stripped:
                continue
            if stripped[0] == "#":
                error = _parse_comment(line, lineno, batch, filename)
            else:
                error = _diagnose(line, lineno, filename)
            if error is not None:
                errors.append(error)
            continue
        name, label_text, value_text, ts_text = match.groups()
        if not label_text:
            labels = bare.get(name)
            if labels is None:
                labels = bare[name] = (("__name__", name),)
        else:
            pairs: dict[str, str] = {"__name__": name}
            count = 1
            for label, raw in find_pairs(label_text):
                count += 1
                pairs[label] = _LABEL_ESCAPE.sub(_unescape_label, raw) if "\\" in raw else raw
            if len(pairs) != count:
                errors.append(_duplicate_label(line, match, lineno, filename))
                continue
            labels = tuple(sorted(item for item in pairs.items() if item[1]))
        if types:
            error = _check_family(name, labels, types, line, match, lineno, filename)
            if error is not None:
                errors.append(error)
                continue
        if ts_text is None:
            ts_ms = default_ts_ms
        else:
            ts_ms = int(ts_text)
            if not _INT64_MIN <= ts_ms <= _INT64_MAX:
                errors.append(
                    line_error(
                        f"timestamp {ts_text} is out of the int64 range",
                        line_text=line,
                        line=lineno,
                        column=match.start(4) + 1,
                        filename=filename,
                    )
                )
                continue
        samples.append(Sample(labels, ts_ms, float(value_text)))
    return batch


def _parse_comment(line: str, lineno: int, batch: ParsedBatch, filename: str) -> ParseError | None:
    """Record a HELP or TYPE line; ignore other comments."""
    match = _COMMENT.fullmatch(line)
    if match is None:
        return None
    keyword, name, rest = match.groups()

    def fail(reason: str, group: int) -> ParseError:
        start = match.start(group)
        column = (start if start >= 0 else len(line)) + 1
        return line_error(reason, line_text=line, line=lineno, column=column, filename=filename)

    if not name:
        return fail(f"# {keyword} needs a metric name", 1)
    if METRIC_NAME.fullmatch(name) is None:
        return fail(f"invalid metric name {name!r} in # {keyword}", 2)
    if keyword == "HELP":
        if name in batch.help:
            return fail(f"second # HELP line for {name!r}", 2)
        text = rest or ""
        batch.help[name] = _HELP_ESCAPE.sub(_unescape_help, text) if "\\" in text else text
        return None
    if not rest:
        return fail(f"# TYPE {name} needs a type", 2)
    kind, *extra = rest.split(None, 1)
    kind = kind.lower()
    if kind not in _TYPES:
        return fail(
            f"unknown metric type {kind!r} (expected one of {', '.join(sorted(_TYPES))})", 3
        )
    if extra:
        return fail(f"unexpected text after the type in # TYPE {name}", 3)
    if name in batch.types:
        return fail(f"second # TYPE line for {name!r}", 2)
    batch.types[name] = kind
    return None


def _duplicate_label(line: str, match: re.Match[str], lineno: int, filename: str) -> ParseError:
    seen = {"__name__"}
    column = match.start(2) + 1
    duplicate = "__name__"
    for pair in _PAIR.finditer(line, match.start(2), match.end(2)):
        if pair.group(1) in seen:
            column, duplicate = pair.start() + 1, pair.group(1)
            break
        seen.add(pair.group(1))
    return line_error(
        f"label {duplicate!r} appears twice",
        line_text=line,
        line=lineno,
        column=column,
        filename=filename,
    )


def _check_family(
    name: str,
    labels: tuple[tuple[str, str], ...],
    types: Mapping[str, str],
    line: str,
    match: re.Match[str],
    lineno: int,
    filename: str,
) -> ParseError | None:
    """Bucket and quantile series must carry a numeric ``le`` / ``quantile``."""
    if name.endswith("_bucket") and types.get(name[:-7]) == "histogram":
        family, required = "histogram", "le"
    elif types.get(name) == "summary":
        family, required = "summary", "quantile"
    else:
        return None
    for label, value in labels:
        if label == required:
            if _FLOAT.fullmatch(value) is not None:
                return None
            reason = f"label {required}={value!r} is not a number"
            break
    else:
        reason = f"{family} series {name!r} needs a {required!r} label"
    return line_error(
        reason, line_text=line, line=lineno, column=match.start(1) + 1, filename=filename
    )


def _skip(line: str, pos: int) -> int:
    """The position after the blanks and tabs at ``pos``."""
    match = _WS.match(line, pos)
    return pos if match is None else match.end()


def _token(line: str, pos: int) -> str:
    """The text from ``pos`` up to the next blank, tab or end of line."""
    match = _TOKEN.match(line, pos)
    return "" if match is None else match.group()


def _diagnose(line: str, lineno: int, filename: str) -> ParseError:
    """Scan a refused sample line token by token and report the first fault."""

    def fail(reason: str, pos: int) -> ParseError:
        return line_error(reason, line_text=line, line=lineno, column=pos + 1, filename=filename)

    end = len(line)
    pos = _skip(line, 0)
    name = _NAME_AT.match(line, pos)
    if name is None:
        return fail(f"expected a metric name, found {line[pos]!r}", pos)
    pos = _skip(line, name.end())
    if pos < end and line[pos] == "{":
        pos += 1
        while True:
            pos = _skip(line, pos)
            if pos < end and line[pos] == "}":
                break
            label = _LNAME_AT.match(line, pos)
            if label is None:
                found = repr(line[pos]) if pos < end else "the end of the line"
                return fail(f"expected a label name or '}}', found {found}", pos)
            pos = _skip(line, label.end())
            if pos >= end or line[pos] != "=":
                return fail(f"expected '=' after label name {label.group()!r}", pos)
            pos = _skip(line, pos + 1)
            if pos >= end or line[pos] != '"':
                return fail("expected a double-quoted label value", pos)
            value = _STRING_REST.match(line, pos + 1)
            if value is None:
                return fail("unterminated label value", pos)
            pos = _skip(line, value.end())
            if pos < end and line[pos] == ",":
                pos += 1
                continue
            if pos < end and line[pos] == "}":
                break
            return fail("expected ',' or '}' after a label", pos)
        pos = _skip(line, pos + 1)
    elif pos == name.end() and pos < end:
        return fail(f"unexpected character {line[pos]!r} in metric name", pos)
    if pos >= end:
        return fail("missing value", pos)
    token = _token(line, pos)
    if _FLOAT.fullmatch(token) is None:
        return fail(f"invalid value {token!r}", pos)
    pos = _skip(line, pos + len(token))
    token = _token(line, pos)
    if _TIMESTAMP.fullmatch(token) is None:
        return fail(f"invalid timestamp {token!r} (expected integer milliseconds)", pos)
    pos = _skip(line, pos + len(token))
    return fail("unexpected text after the timestamp", pos)


def _format_value(value: float) -> str:
    if value != value:
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_exposition(
    samples: Iterable[Sample],
    *,
    types: Mapping[str, str] | None = None,
    help: Mapping[str, str] | None = None,
) -> str:
    """Write samples as a text exposition that :func:`parse_exposition` reads back.

    Parameters
    ----------
    samples:
        Samples to write, one line each, in order. Each needs a ``__name__``.
    types, help:
        Family metadata, written as ``# HELP`` / ``# TYPE`` lines first.

    Returns
    -------
    str
        The exposition, every line ending in ``\\n``.

    Raises
    ------
    InvalidInput
        A sample without a valid metric name, an invalid label name, or an
        unknown metric type.
    """
    out: list[str] = []
    for name, text in (help or {}).items():
        if METRIC_NAME.fullmatch(name) is None:
            raise InvalidInput(f"invalid metric name {name!r} in help")
        escaped = text.replace("\\", "\\\\").replace("\n", "\\n")
        out.append(f"# HELP {name} {escaped}" if escaped else f"# HELP {name}")
    for name, kind in (types or {}).items():
        if METRIC_NAME.fullmatch(name) is None:
            raise InvalidInput(f"invalid metric name {name!r} in types")
        if kind not in _TYPES:
            raise InvalidInput(f"unknown metric type {kind!r} for {name!r}")
        out.append(f"# TYPE {name} {kind}")
    for sample in samples:
        name = ""
        parts: list[str] = []
        for label, value in sample.labels:
            if label == "__name__":
                name = value
            elif LABEL_NAME.fullmatch(label) is None:
                raise InvalidInput(f"invalid label name {label!r}")
            else:
                parts.append(f'{label}="{_escape_label(value)}"')
        if METRIC_NAME.fullmatch(name) is None:
            raise InvalidInput(f"sample needs a valid metric name, got {name!r}")
        head = f"{name}{{{','.join(parts)}}}" if parts else name
        value_text = _format_value(sample.value)
        if sample.ts_ms is None:
            out.append(f"{head} {value_text}")
        else:
            out.append(f"{head} {value_text} {sample.ts_ms}")
    return "".join(line + "\n" for line in out)
