"""Diagnostics of the static checker, and the error that carries several of them.

A :class:`Diagnostic` is one finding (an error or a warning) at a place in a
source text. :class:`RuleCheckError` is raised when a compile finds errors;
it lists all of them, not only the first, each with its caret snippet, and is
a :class:`~trusswork.core.errors.ParseError` positioned at the first one.
"""

from __future__ import annotations

from dataclasses import dataclass

from trusswork.core.errors import ParseError

__all__ = ["Diagnostic", "RuleCheckError"]


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One finding of the checker.

    Attributes
    ----------
    severity:
        ``"error"`` (the rule does not compile) or ``"warning"`` (it compiles but
        is probably not what was meant: an always-true condition, an
        unreachable branch, a shadowed name).
    message:
        What was found, in prose.
    source, offset:
        The text checked and the 0-based character offset the finding points at.
    filename:
        Where the text came from, if it came from a file.
    code:
        A stable name of the kind of finding (``"type-error"``, ``"always-true"``).
    """

    severity: str
    message: str
    source: str
    offset: int
    filename: str | None = None
    code: str = "error"

    def _as_error(self) -> ParseError:
        return ParseError(
            f"{self.severity}: {self.message}",
            source=self.source,
            offset=self.offset,
            filename=self.filename,
        )

    @property
    def line(self) -> int:
        """1-based line of the finding."""
        return self._as_error().line or 1

    @property
    def column(self) -> int:
        """1-based column of the finding."""
        return self._as_error().column or 1

    def render(self) -> str:
        """``file:line:col: severity: message`` with the source line and a caret under it."""
        return str(self._as_error())

    def to_dict(self) -> dict[str, object]:
        """The finding as JSON-ready data (for ``trusswork rules check --json``)."""
        return {
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "file": self.filename,
            "line": self.line,
            "column": self.column,
        }


class RuleCheckError(ParseError):
    """A rule or expression failed static checking; ``diagnostics`` holds every finding.

    The error is positioned at the first error; its message renders all of
    them (warnings found in the same run are kept in ``diagnostics`` too).
    """

    code = "rule-check-error"
    title = "Rule check failed"

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        errors = [item for item in diagnostics if item.severity == "error"]
        first = errors[0] if errors else diagnostics[0]
        super().__init__(
            first.message,
            source=first.source,
            offset=first.offset,
            filename=first.filename,
        )
        rendered = "\n".join(item.render() for item in errors)
        count = f"{len(errors)} error{'s' if len(errors) != 1 else ''}"
        self.message = f"{count}:\n{rendered}" if len(errors) > 1 else rendered
        self.args = (self.message,)

    @property
    def errors(self) -> list[Diagnostic]:
        """The findings of severity ``error``."""
        return [item for item in self.diagnostics if item.severity == "error"]
