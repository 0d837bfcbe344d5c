"""What every ingest format hands the store: samples, and the lines it refused.

The text formats (Prometheus exposition, Influx line protocol) and the binary
one (Prometheus remote write) all produce a :class:`ParsedBatch`. The
contract is the same for each:

* a malformed line is rejected on its own, as a
  :class:`~trusswork.core.errors.ParseError` carrying its 1-based line and
  column and the filename the caller gave; the good lines of the same batch
  are kept, in input order;
* damage that makes the rest of the input unreadable (a broken compressed
  body) raises instead of being listed.

:class:`Sample` is a named tuple rather than a dataclass because the store
builds millions of them: construction is one C call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from trusswork.core.errors import ParseError
from trusswork.tsdb._series import Labels

__all__ = ["LABEL_NAME", "METRIC_NAME", "ParsedBatch", "Sample", "line_error"]

METRIC_NAME: Final = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
"""A valid Prometheus metric name (use ``fullmatch``)."""

LABEL_NAME: Final = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
"""A valid Prometheus label name (use ``fullmatch``)."""


class Sample(NamedTuple):
    """One ingested value of one series.

    Attributes
    ----------
    labels:
        Canonical labels (sorted, unique, no empty values), including ``__name__``.
    ts_ms:
        Milliseconds since the Unix epoch, or ``None`` when the input gave no
        timestamp and the caller no default: the store stamps it on arrival.
    value:
        The value; NaN bit patterns (the staleness marker) are kept where the
        format carries them.
    """

    labels: Labels
    ts_ms: int | None
    value: float

    @property
    def name(self) -> str:
        """The metric name (the ``__name__`` label, ``""`` if absent)."""
        for label, value in self.labels:
            if label == "__name__":
                return value
        return ""


@dataclass(slots=True)
class ParsedBatch:
    """The result of parsing one ingest body.

    Attributes
    ----------
    samples:
        The samples of every accepted line, in input order.
    errors:
        One :class:`~trusswork.core.errors.ParseError` per rejected line, in
        input order; a rejected line contributes no samples.
    types:
        Metric family -> type (``counter``, ``gauge``, ``histogram``,
        ``summary``, ``untyped``) from ``# TYPE`` lines; empty for formats
        without type metadata.
    help:
        Metric family -> help text from ``# HELP`` lines.
    """

    samples: list[Sample] = field(default_factory=list)
    errors: list[ParseError] = field(default_factory=list)
    types: dict[str, str] = field(default_factory=dict)
    help: dict[str, str] = field(default_factory=dict)


def line_error(reason: str, *, line_text: str, line: int, column: int, filename: str) -> ParseError:
    """A :class:`ParseError` for one rejected input line.

    Parameters
    ----------
    reason:
        What is wrong, without the location.
    line_text:
        The offending line, shown with a caret under ``column``.
    line, column:
        1-based position.
    filename:
        Where the input came from.
    """
    return ParseError(reason, line_text=line_text, line=line, column=column, filename=filename)
