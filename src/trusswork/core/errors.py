"""The error taxonomy every trusswork system raises.

``TrussworkError`` is the base. Each category also subclasses the matching
built-in exception, so code that catches ``ValueError`` or ``KeyError``
keeps working:

==================  =====================  ===========  =====================================
class               also a                 HTTP status  raised when
==================  =====================  ===========  =====================================
``InvalidInput``    ``ValueError``         400          an argument, request or file is malformed
``ParseError``      ``InvalidInput``       400          text fails to parse; carries line/column
``NotFound``        ``KeyError``           404          a named thing does not exist
``Conflict``        --                     409          a version or concurrency check fails
``LimitExceeded``   --                     429          a quota, rate or cardinality limit is hit
``Unavailable``     ``ConnectionError``    503          a service or peer is down or timed out
``Corruption``      --                     500          stored bytes fail a checksum or format rule
==================  =====================  ===========  =====================================

Systems subclass these rather than inventing new roots. The HTTP layer
turns any of them into an RFC 9457 ``application/problem+json`` body with
:meth:`TrussworkError.to_problem`.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "Conflict",
    "Corruption",
    "InvalidInput",
    "LimitExceeded",
    "NotFound",
    "ParseError",
    "TrussworkError",
    "Unavailable",
]


class TrussworkError(Exception):
    """Base class of every error trusswork raises on purpose.

    Attributes
    ----------
    code:
        A stable, machine-readable name of the category (``"invalid-input"``).
    http_status:
        The HTTP status code servers answer with for this error.
    """

    code = "error"
    http_status = 500
    title = "Internal error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        # KeyError's __str__ would quote the message; every class here reads as prose.
        return self.message

    def to_problem(self, *, instance: str | None = None) -> dict[str, Any]:
        """Return this error as an RFC 9457 problem-details mapping."""
        problem: dict[str, Any] = {
            "type": f"https://trusswork.dev/errors/{self.code}",
            "title": self.title,
            "status": self.http_status,
            "detail": self.message,
        }
        if instance is not None:
            problem["instance"] = instance
        return problem


class InvalidInput(TrussworkError, ValueError):
    """An argument, request, file or configuration is malformed."""

    code = "invalid-input"
    http_status = 400
    title = "Invalid input"


class NotFound(TrussworkError, KeyError):
    """A named thing (key, stream, series, schema, route) does not exist."""

    code = "not-found"
    http_status = 404
    title = "Not found"


class Conflict(TrussworkError):
    """A version, precondition or concurrency check failed; retrying as-is fails again."""

    code = "conflict"
    http_status = 409
    title = "Conflict"


class LimitExceeded(TrussworkError):
    """A quota, rate, size or cardinality limit was reached.

    ``retry_after`` is the number of seconds after which the same request may
    succeed, when the limit knows it.
    """

    code = "limit-exceeded"
    http_status = 429
    title = "Limit exceeded"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(TrussworkError, ConnectionError):
    """A service, peer or resource is down or did not answer in time."""

    code = "unavailable"
    http_status = 503
    title = "Service unavailable"


class Corruption(TrussworkError):
    """Stored bytes failed a checksum or a format rule.

    Corruption is never skipped silently: the message names the file (or
    buffer) and the byte offset of the first damage found.
    """

    code = "corruption"
    http_status = 500
    title = "Data corruption"


class ParseError(InvalidInput):
    """Text failed to parse: a query, a rule, a config file, a request line.

    The message points at the place with a line number, a column and a caret
    under the offending character::

        rules.cel:2:9: expected an expression after '&&'
          2 | a > 1 &&
            |         ^

    Parameters
    ----------
    message:
        What was wrong, without the location.
    source:
        The text being parsed, used to show the offending line.
    line, column:
        1-based position. Either these or ``offset`` may be given.
    offset:
        0-based character offset into ``source``; converted to line and column.
    filename:
        Where the text came from, shown before the position.
    line_text:
        The offending line alone, instead of ``source``: what parsers of
        big inputs (ingest batches, log files) pass, so that many bad lines
        each keep only their own line.
    """

    code = "parse-error"
    title = "Parse error"

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        column: int | None = None,
        offset: int | None = None,
        filename: str | None = None,
        line_text: str | None = None,
    ) -> None:
        if offset is not None and source is not None:
            offset = max(0, min(offset, len(source)))
            line = source.count("\n", 0, offset) + 1
            column = offset - (source.rfind("\n", 0, offset) + 1) + 1
        self.reason = message
        self.source = source
        self.line = line
        self.column = column
        self.filename = filename
        self.line_text = line_text
        super().__init__(self._render())

    def _render(self) -> str:
        where = self.filename or "<input>"
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        text = f"{where}: {self.reason}"
        snippet = self.snippet()
        return f"{text}\n{snippet}" if snippet else text

    def snippet(self) -> str:
        """The offending source line with a caret under the column ("" if unknown)."""
        if self.line is None:
            return ""
        if self.line_text is not None:
            text = self.line_text
        else:
            if self.source is None:
                return ""
            lines = self.source.split("\n")
            if not 1 <= self.line <= len(lines):
                return ""
            text = lines[self.line - 1]
        text = text.rstrip("\r").expandtabs(1)
        gutter = f"  {self.line} | "
        out = gutter + text
        if self.column is not None:
            pad = " " * (len(gutter) - 2) + "| "
            out += "\n" + pad + " " * max(0, self.column - 1) + "^"
        return out
