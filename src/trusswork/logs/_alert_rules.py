"""What to alert on: :class:`AlertRule`, and reading rules from a TOML file.

An :class:`AlertRule` checks its fields and compiles its condition (the
rules DSL, :mod:`trusswork.rules`) when it is made, so a bad duration or
condition fails there rather than in
:class:`~trusswork.logs._alerts.AlertManager`'s first evaluation.
:func:`load_alert_rules` builds rules from ``[[alert]]`` tables and names
the file, the alert and the key in every error.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from trusswork.core.config import parse_duration
from trusswork.core.errors import InvalidInput, NotFound, ParseError
from trusswork.rules import SEVERITIES, EvaluationError, Rule, RuleCheckError, compile

__all__ = ["AlertRule", "load_alert_rules"]

_LARGEST_DOUBLE = 1.7976931348623157e308


def _duration(owner: str, key: str, value: Any, *, positive: bool) -> float:
    """A duration given as seconds or a string such as ``"5m"``, checked for range."""
    if isinstance(value, str):
        try:
            seconds = parse_duration(value)
        except InvalidInput as exc:
            raise InvalidInput(f"{owner}: {key}: {exc}") from exc
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise InvalidInput(
            f"{owner}: {key} must be a duration such as 30s, 5m or 1h, got {value!r}"
        )
    if not math.isfinite(seconds) or seconds < 0 or (positive and seconds == 0):
        bound = "above 0" if positive else "0 or more"
        raise InvalidInput(f"{owner}: {key} must be {bound} seconds, got {value!r}")
    return seconds


def _names(owner: str, key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise InvalidInput(f"{owner}: {key} must be a list of names, got {value!r}")
    items = tuple(value)
    for item in items:
        if not isinstance(item, str) or not item:
            raise InvalidInput(f"{owner}: {key} must hold non-empty strings, got {item!r}")
    return items


@dataclass(frozen=True)
class AlertRule:
    """A saved search, a window, a schedule and a condition: what to alert on.

    Parameters
    ----------
    name:
        Unique name of the rule.
    query:
        The search in the log store's pipe language.
    condition:
        A CEL condition over one result row's columns (``count > 100 &&
        error_rate > 0.05``), compiled here. Numbers are seen as ``double``
        whether the row holds an int or a float, so write ``count + 1.0``.
    window:
        Seconds the query looks back: it covers ``[now - window, now)``.
    every:
        Seconds between evaluations.
    for_:
        Seconds the condition must hold continuously before the alert fires
        (0 fires at once).
    group_by:
        Row columns whose values identify an alert instance; ``()`` makes
        one instance for the whole rule.
    labels:
        Free-form labels copied into every event.
    severity:
        One of :data:`trusswork.rules.SEVERITIES`.
    repeat_interval:
        Seconds between repeated notifications while firing; ``None`` never repeats.
    notify:
        Names of the manager's notifiers to call; ``()`` calls all of them.

    Raises
    ------
    ParseError
        If the condition does not parse or check (the rules module's error,
        with a caret; its file name is ``alert '<name>'``).
    InvalidInput
        If another field is out of range or of the wrong kind.
    """

    name: str
    query: str
    condition: str
    window: float = 300.0
    every: float = 60.0
    for_: float = 0.0
    group_by: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    severity: str = "warning"
    repeat_interval: float | None = None
    notify: tuple[str, ...] = ()
    _rule: Rule = field(init=False, repr=False, compare=False, hash=False)
    _typed: dict[tuple[tuple[str, str], ...], Rule | str] = field(
        init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidInput(f"an alert rule needs a non-empty name, got {self.name!r}")
        owner = f"alert {self.name!r}"
        if not isinstance(self.query, str) or not self.query.strip():
            raise InvalidInput(f"{owner}: query must be a non-empty string, got {self.query!r}")
        if not isinstance(self.condition, str):
            raise InvalidInput(f"{owner}: condition must be a string, got {self.condition!r}")
        set_ = object.__setattr__
        set_(self, "window", _duration(owner, "window", self.window, positive=True))
        set_(self, "every", _duration(owner, "every", self.every, positive=True))
        set_(self, "for_", _duration(owner, "for", self.for_, positive=False))
        if self.repeat_interval is not None:
            repeat = _duration(owner, "repeat_interval", self.repeat_interval, positive=True)
            set_(self, "repeat_interval", repeat)
        set_(self, "group_by", _names(owner, "group_by", self.group_by))
        set_(self, "notify", _names(owner, "notify", self.notify))
        if not isinstance(self.labels, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.labels.items()
        ):
            raise InvalidInput(f"{owner}: labels must map strings to strings, got {self.labels!r}")
        set_(self, "labels", MappingProxyType(dict(self.labels)))
        if self.severity not in SEVERITIES:
            raise InvalidInput(
                f"{owner}: severity must be one of {', '.join(SEVERITIES)}, got {self.severity!r}"
            )
        # Column types are only known per row; compiling without a schema checks the
        # syntax and the shape now, and gives the names the condition reads.
        set_(self, "_rule", compile(self.condition, None, name=self.name, filename=owner))
        set_(self, "_typed", {})

    def matches(self, row: Mapping[str, Any]) -> tuple[bool, str | None]:
        """Whether ``row`` satisfies the condition, and why not if it could not be decided.

        Returns
        -------
        (bool, str or None)
            The outcome and ``None``, or ``False`` and the reason when a
            column is missing or the condition fails on the row's types.
        """
        names = sorted(self._rule.variables)
        missing = [name for name in names if name not in row]
        if missing:
            return False, f"column {missing[0]!r} is missing from the row"
        values: dict[str, Any] = {}
        schema: list[tuple[str, str]] = []
        for name in names:
            value = row[name]
            if isinstance(value, bool):
                kind = "bool"
            elif isinstance(value, float):
                kind = "double"
            elif isinstance(value, int) and abs(value) <= _LARGEST_DOUBLE:
                kind, value = "double", float(value)
            elif isinstance(value, str):
                kind = "string"
            else:
                kind = "dyn"
            values[name] = value
            schema.append((name, kind))
        key = tuple(schema)
        typed = self._typed.get(key)
        if typed is None:
            try:
                typed = compile(self.condition, dict(key), name=self.name)
            except RuleCheckError as exc:
                typed = exc.reason
            self._typed[key] = typed
        if isinstance(typed, str):
            return False, typed
        try:
            return typed.evaluate(values), None
        except EvaluationError as exc:
            return False, str(exc)
        except Exception as exc:  # a value CEL has no type for, e.g. a datetime
            return False, f"{type(exc).__name__}: {exc}"


_KEYS = frozenset(
    {
        "name",
        "query",
        "condition",
        "window",
        "every",
        "for",
        "group_by",
        "labels",
        "severity",
        "notify",
        "repeat_interval",
    }
)


def load_alert_rules(source: str | os.PathLike[str]) -> list[AlertRule]:
    """Read alert rules from TOML: one ``[[alert]]`` table per rule.

    Example::

        [[alert]]
        name = "errors"
        query = "level=error | stats count by host"
        condition = "count > 100"
        window = "5m"
        every = "1m"
        for = "2m"
        group_by = ["host"]
        labels = { team = "web" }
        severity = "error"
        notify = ["pager"]

    Parameters
    ----------
    source:
        A path (any ``os.PathLike``, or a string without a newline or ``=``),
        or the TOML text itself.

    Returns
    -------
    list of AlertRule

    Raises
    ------
    ParseError
        For TOML syntax errors and bad conditions, naming the file, the alert and the key.
    InvalidInput
        For a missing, unknown or ill-typed key, or a duplicate name.
    NotFound
        If the path does not exist.
    """
    if isinstance(source, str) and ("\n" in source or "=" in source):
        text, filename = source, "<alerts>"
    else:
        path = Path(source)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise NotFound(f"no alert rules file at {str(path)!r}") from exc
        filename = str(path)
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _toml_error(str(exc), text, filename) from exc
    unknown = sorted(set(document) - {"alert"})
    if unknown:
        raise InvalidInput(
            f"{filename}: unknown top-level key {unknown[0]!r} (use [[alert]] tables)"
        )
    tables = document.get("alert", [])
    if not isinstance(tables, list):
        raise InvalidInput(f"{filename}: 'alert' must be an array of tables ([[alert]])")
    rules: list[AlertRule] = []
    names: set[str] = set()
    for index, table in enumerate(tables, start=1):
        rule = _rule_from_table(table, filename, index)
        if rule.name in names:
            raise InvalidInput(f"{filename}: alert #{index}: the name {rule.name!r} is used twice")
        names.add(rule.name)
        rules.append(rule)
    return rules


def _toml_error(message: str, text: str, filename: str) -> ParseError:
    found = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
    if found is None:
        return ParseError(message, filename=filename)
    return ParseError(
        message[: found.start()],
        source=text,
        line=int(found.group(1)),
        column=int(found.group(2)),
        filename=filename,
    )


def _rule_from_table(table: Any, filename: str, index: int) -> AlertRule:
    name = table.get("name") if isinstance(table, dict) else None
    owner = (
        f"{filename}: alert {name!r}" if isinstance(name, str) else f"{filename}: alert #{index}"
    )
    if not isinstance(table, dict):
        raise InvalidInput(f"{owner}: must be a table")
    for key in sorted(table):
        if key not in _KEYS:
            raise InvalidInput(f"{owner}: unknown key {key!r} (known: {', '.join(sorted(_KEYS))})")
    for key in ("name", "query", "condition"):
        if key not in table:
            raise InvalidInput(f"{owner}: the key {key!r} is missing")
        if not isinstance(table[key], str):
            raise InvalidInput(f"{owner}: {key} must be a string, got {table[key]!r}")
    options = {("for_" if key == "for" else key): value for key, value in table.items()}
    try:
        return AlertRule(**options)
    except RuleCheckError as exc:
        where = f"{owner}: key 'condition'"
        raise RuleCheckError([replace(item, filename=where) for item in exc.diagnostics]) from exc
    except ParseError as exc:
        raise ParseError(
            exc.reason,
            source=exc.source,
            line=exc.line,
            column=exc.column,
            filename=f"{owner}: key 'condition'",
        ) from exc
    except InvalidInput as exc:
        # The rule's own messages start with "alert '<name>': <key> ...".
        raise InvalidInput(f"{filename}: {exc}") from exc
