"""Alerting on the log store: saved searches evaluated on a schedule, with CEL conditions.

An :class:`AlertRule` is a query in the pipe language (``level=error | stats
count by host``), a sliding window (the query covers ``[now - window, now)``),
a schedule (``every``) and a condition in the rules DSL (``count > 100``)
evaluated against each result row. An :class:`AlertManager` runs the due
rules, keeps one state machine per alert instance and tells notifiers about
the transitions that matter.

State machine, per instance (one per distinct value of the rule's
``group_by`` columns; one per rule when ``group_by`` is empty)::

    ok --true--> pending --true for `for_` seconds--> firing --false--> resolved --> ok
                 pending --false--> ok (never notified)

With ``for_ == 0`` the condition fires at once. An instance missing from the
results counts as false. Notifications go out for ``firing`` and ``resolved``
transitions, and again every ``repeat_interval`` seconds while firing; never
twice for the same transition.

Guarantees
----------
- Nothing the rules do raises out of :meth:`AlertManager.evaluate`: a query
  that raises records an ``error`` event and leaves the rule's instances as
  they were; a row missing a column the condition reads counts as false and
  records an ``error`` event; a notifier that raises records a
  ``notify-error`` event and the other notifiers still run.
- History is a JSON-lines file. Each evaluation's events are appended,
  flushed and fsynced *before* notifiers are called, so delivery is at most
  once: a crash between the two loses a notification instead of sending it
  twice after the restart. On open, a torn last line (a crash mid-write) is
  cut off; a damaged line elsewhere is skipped and counted in
  :attr:`AlertManager.history_damaged_lines`. The states of the instances
  are rebuilt from the history, so a restarted manager neither forgets a
  pending alert's start nor re-notifies a firing one.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import os
import re
import threading
import time
import tomllib
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import IO, Any, Protocol

from trusswork.core.config import parse_duration
from trusswork.core.errors import InvalidInput, NotFound, ParseError, Unavailable
from trusswork.core.files import fsync_directory
from trusswork.retry import Policy, call
from trusswork.rules import SEVERITIES, EvaluationError, Rule, RuleCheckError, compile

__all__ = [
    "STATES",
    "AlertEvent",
    "AlertManager",
    "AlertRule",
    "AlertState",
    "CallbackNotifier",
    "LogNotifier",
    "Notifier",
    "QueryRunner",
    "WebhookNotifier",
    "load_alert_rules",
]

QueryRunner = Callable[[str, int, int], list[dict[str, Any]]]
"""Runs a pipe-language query over ``[earliest_ms, latest_ms)`` and returns its rows."""

STATES = ("ok", "pending", "firing", "resolved")
"""The states of an alert instance."""

_logger = logging.getLogger("trusswork.logs.alerts")

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


@dataclass(frozen=True)
class AlertEvent:
    """Something that happened to an alert: a transition, a repeat or an error.

    Attributes
    ----------
    time:
        When, in seconds since the epoch (the evaluation's ``now``).
    kind:
        ``"transition"``, ``"repeat"`` (a reminder while firing), ``"error"``
        (a query or a condition failed) or ``"notify-error"`` (a notifier failed).
    rule, instance:
        The rule's name and the instance's group values (``{}`` for a rule
        without ``group_by`` and for rule-wide errors).
    from_state, to_state:
        The transition (equal for a repeat; ``None`` for a rule-wide error).
    row:
        The result row of this evaluation (``{}`` when the instance had no
        row, e.g. it resolved because it vanished from the results).
    message:
        A sentence for people.
    severity, labels:
        Copied from the rule.
    notifier:
        The notifier that failed, for ``notify-error`` events.
    """

    time: float
    kind: str
    rule: str
    instance: dict[str, Any] = field(default_factory=dict)
    from_state: str | None = None
    to_state: str | None = None
    row: dict[str, Any] = field(default_factory=dict)
    message: str = ""
    severity: str = "warning"
    labels: dict[str, str] = field(default_factory=dict)
    notifier: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON-ready data (values JSON cannot hold become strings)."""
        data = {
            "time": self.time,
            "kind": self.kind,
            "rule": self.rule,
            "instance": self.instance,
            "from_state": self.from_state,
            "to_state": self.to_state,
            "row": self.row,
            "message": self.message,
            "severity": self.severity,
            "labels": self.labels,
            "notifier": self.notifier,
        }
        loaded: dict[str, Any] = json.loads(json.dumps(data, default=str))
        return loaded

    def to_json(self) -> str:
        """The event as one line of JSON."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlertEvent:
        """Rebuild an event from :meth:`to_dict` output.

        Raises
        ------
        InvalidInput
            If a field is missing or of the wrong kind.
        """
        try:
            event = cls(
                time=float(data["time"]),
                kind=str(data["kind"]),
                rule=str(data["rule"]),
                instance=dict(data["instance"]),
                from_state=data["from_state"],
                to_state=data["to_state"],
                row=dict(data["row"]),
                message=str(data["message"]),
                severity=str(data["severity"]),
                labels=dict(data["labels"]),
                notifier=data.get("notifier"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"not an alert event: {exc!r}") from exc
        for state in (event.from_state, event.to_state):
            if state is not None and state not in STATES:
                raise InvalidInput(f"not an alert event: unknown state {state!r}")
        return event


@dataclass(frozen=True)
class AlertState:
    """Where one alert instance stands, as :meth:`AlertManager.states` reports it.

    Attributes
    ----------
    rule, instance:
        The rule's name and the instance's group values.
    state:
        One of :data:`STATES`.
    since:
        When the instance entered ``state``.
    row:
        The last result row seen for the instance (``{}`` if none).
    last_evaluation:
        When the rule last evaluated the instance (``None`` if only restored).
    last_error:
        Why the condition could not be decided on the last evaluation, if so.
    """

    rule: str
    instance: dict[str, Any]
    state: str
    since: float
    row: dict[str, Any]
    last_evaluation: float | None
    last_error: str | None = None


class Notifier(Protocol):
    """Something told about alert events: ``notify(event)``; raising reports a failure."""

    def notify(self, event: AlertEvent) -> None:
        """Deliver ``event``."""


class CallbackNotifier:
    """Calls ``fn(event)`` for each event."""

    def __init__(self, fn: Callable[[AlertEvent], object]) -> None:
        self.fn = fn

    def notify(self, event: AlertEvent) -> None:
        """Call the function with ``event``."""
        self.fn(event)


class LogNotifier:
    """Writes each event as one JSON line, to a logger (at WARNING) or appended to a file.

    Parameters
    ----------
    target:
        A :class:`logging.Logger`, or the path of a file to append to.
    """

    def __init__(self, target: logging.Logger | str | os.PathLike[str]) -> None:
        self.target = target
        self._lock = threading.Lock()

    def notify(self, event: AlertEvent) -> None:
        """Log or append ``event`` as JSON."""
        line = event.to_json()
        if isinstance(self.target, logging.Logger):
            self.target.warning("%s", line)
            return
        with self._lock, open(self.target, "a", encoding="utf-8") as file:
            file.write(line + "\n")


class WebhookNotifier:
    """POSTs each event as JSON to a URL, retrying server errors and failed connections.

    Parameters
    ----------
    url:
        Where to POST.
    timeout:
        Seconds each attempt may take.
    retries:
        Extra attempts after the first on a 5xx answer, a refused or broken
        connection or a timeout (4xx answers are not retried).
    headers:
        Extra request headers.
    backoff:
        Seconds before the first retry; each next wait doubles, with jitter.

    Raises
    ------
    Unavailable
        From :meth:`notify`, when every attempt failed; ``InvalidInput`` when
        the endpoint rejected the request with a 4xx.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 5.0,
        retries: int = 3,
        headers: Mapping[str, str] | None = None,
        backoff: float = 0.5,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise InvalidInput(f"a webhook URL must start with http:// or https://, got {url!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise InvalidInput(f"webhook retries= must be an integer >= 0, got {retries!r}")
        self.url = url
        self.timeout = timeout
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self._policy = Policy(
            attempts=retries + 1,
            wait_initial=backoff,
            wait_max=max(backoff, 10.0),
            retry_on=(OSError, http.client.HTTPException),
            retry_if=_retryable,
            reraise=True,
            max_pushback=30.0,
            name="alert webhook",
        )

    def _post(self, body: bytes) -> None:
        request = urllib.request.Request(self.url, data=body, headers=self.headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            exc.close()  # it holds the connection; a retry must not leak it
            raise

    def notify(self, event: AlertEvent) -> None:
        """POST ``event`` as JSON."""
        body = event.to_json().encode()
        try:
            call(self._post, body, policy=self._policy)
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                raise InvalidInput(
                    f"webhook {self.url} rejected the event: HTTP {exc.code}"
                ) from exc
            raise Unavailable(f"webhook {self.url} answered HTTP {exc.code}") from exc
        except (OSError, http.client.HTTPException) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise Unavailable(f"webhook {self.url} is unreachable: {reason}") from exc


def _retryable(exc: BaseException) -> bool:
    return not (isinstance(exc, urllib.error.HTTPError) and exc.code < 500)


@dataclass
class _Instance:
    """The mutable state of one alert instance."""

    instance: dict[str, Any]
    state: str = "ok"
    since: float = 0.0
    row: dict[str, Any] = field(default_factory=dict)
    last_evaluation: float | None = None
    last_error: str | None = None
    last_notified: float | None = None


def _instance_key(instance: Mapping[str, Any]) -> str:
    return json.dumps(instance, sort_keys=True, default=str)


class AlertManager:
    """Evaluates alert rules on their schedules and notifies about transitions.

    Parameters
    ----------
    runner:
        Runs a query: ``runner(query, earliest_ms, latest_ms) -> rows``.
    rules:
        The initial rules.
    notifiers:
        Notifiers by name; a rule's ``notify`` picks among them.
    clock:
        Seconds since the epoch; a fake clock makes tests deterministic.
    history_path:
        A JSON-lines file the events are appended to and states restored
        from; ``None`` keeps history in memory only.
    max_history:
        Events :meth:`history` keeps in memory (the file keeps all).

    Attributes
    ----------
    history_damaged_lines:
        Lines of the history file that could not be read and were skipped.

    Raises
    ------
    InvalidInput
        For duplicate rule names; ``NotFound`` for a rule naming an unknown notifier.
    """

    def __init__(
        self,
        runner: QueryRunner,
        rules: Sequence[AlertRule] = (),
        *,
        notifiers: Mapping[str, Notifier] | None = None,
        clock: Callable[[], float] = time.time,
        history_path: str | os.PathLike[str] | None = None,
        max_history: int = 10_000,
    ) -> None:
        self._runner = runner
        self._notifiers = dict(notifiers or {})
        self._clock = clock
        self._lock = threading.RLock()
        self._rules: dict[str, AlertRule] = {}
        self._instances: dict[str, dict[str, _Instance]] = {}
        self._last_run: dict[str, float] = {}
        self._history: deque[AlertEvent] = deque(maxlen=max_history)
        self._file: IO[bytes] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.history_damaged_lines = 0
        if history_path is not None:
            self._open_history(Path(history_path))
        for rule in rules:
            self.add_rule(rule)

    # -- rules -----------------------------------------------------------------------------

    def add_rule(self, rule: AlertRule) -> None:
        """Add ``rule``; it is due at once.

        Raises
        ------
        InvalidInput
            If a rule of that name exists.
        NotFound
            If the rule names a notifier the manager does not have.
        """
        with self._lock:
            if rule.name in self._rules:
                raise InvalidInput(f"an alert rule named {rule.name!r} exists already")
            for name in rule.notify:
                if name not in self._notifiers:
                    known = ", ".join(sorted(self._notifiers)) or "none"
                    raise NotFound(
                        f"alert {rule.name!r} notifies {name!r}, which is not a notifier "
                        f"of this manager (known: {known})"
                    )
            self._rules[rule.name] = rule
            self._instances.setdefault(rule.name, {})

    def remove_rule(self, name: str) -> None:
        """Remove the rule ``name`` and forget its instances (nobody is notified).

        Raises
        ------
        NotFound
            If there is no such rule.
        """
        with self._lock:
            if name not in self._rules:
                raise NotFound(f"no alert rule named {name!r}")
            del self._rules[name]
            self._instances.pop(name, None)
            self._last_run.pop(name, None)

    @property
    def rules(self) -> list[AlertRule]:
        """The rules, in the order they were added."""
        with self._lock:
            return list(self._rules.values())

    # -- evaluation ------------------------------------------------------------------------

    def evaluate(self, now: float | None = None) -> list[AlertEvent]:
        """Evaluate every rule due at ``now`` (the clock's time if ``None``).

        A rule is due when it has not run yet or ran ``every`` seconds ago
        or more. Events are recorded, written to the history file, and then
        passed to the notifiers (``firing`` and ``resolved`` transitions and
        repeats only).

        Returns
        -------
        list of AlertEvent
            What happened: transitions, repeats, errors and notifier failures.

        Raises
        ------
        OSError
            If the history file cannot be written (the states have moved on
            in memory; nobody is notified of this batch).
        """
        with self._lock:
            at = self._clock() if now is None else now
            events: list[AlertEvent] = []
            to_send: list[tuple[AlertRule, AlertEvent]] = []
            for rule in list(self._rules.values()):
                last = self._last_run.get(rule.name)
                if last is not None and at - last < rule.every:
                    continue
                self._last_run[rule.name] = at
                for event in self._evaluate_rule(rule, at):
                    events.append(event)
                    if event.kind == "repeat" or (
                        event.kind == "transition" and event.to_state in ("firing", "resolved")
                    ):
                        to_send.append((rule, event))
            self._record(events)
            failures = [
                failure for rule, event in to_send for failure in self._deliver(rule, event)
            ]
            self._record(failures)
            return events + failures

    def _evaluate_rule(self, rule: AlertRule, at: float) -> list[AlertEvent]:
        earliest_ms = math.floor((at - rule.window) * 1000)
        latest_ms = math.floor(at * 1000)
        try:
            rows = list(self._runner(rule.query, earliest_ms, latest_ms))
        except Exception as exc:  # a failing query must not stop the others
            return [self._event(rule, at, "error", message=f"query failed: {exc!r}")]
        seen: dict[str, tuple[dict[str, Any], bool, dict[str, Any], str | None]] = {}
        errors: list[str] = []
        for row in rows:
            if not isinstance(row, Mapping):
                errors.append(f"the query returned a {type(row).__name__}, not a row")
                continue
            instance = {name: row.get(name) for name in rule.group_by}
            key = _instance_key(instance)
            holds, error = rule.matches(row)
            if error is not None:
                errors.append(error)
            previous = seen.get(key)
            # Several rows of one instance: it holds if any row does, and shows that row.
            if previous is None or (holds and not previous[1]):
                seen[key] = (instance, holds, dict(row), error)
        events: list[AlertEvent] = []
        if errors:
            message = f"condition not decided for {len(errors)} row(s): {errors[0]}"
            events.append(self._event(rule, at, "error", message=message))
        table = self._instances.setdefault(rule.name, {})
        for key, (instance, _holds, _row, _error) in seen.items():
            if key not in table:
                table[key] = _Instance(instance, since=at)
        for key, current in list(table.items()):
            _instance, holds, row, error = seen.get(key, (current.instance, False, {}, None))
            current.last_evaluation = at
            current.last_error = error
            if row:
                current.row = row
            events.extend(self._step(rule, current, holds, row, at))
            if current.state == "ok" and key not in seen:
                del table[key]
        return events

    def _step(
        self, rule: AlertRule, current: _Instance, holds: bool, row: dict[str, Any], at: float
    ) -> list[AlertEvent]:
        """Advance one instance's state machine on this evaluation's ``row``; return its events."""
        state = current.state
        if holds:
            if state in ("ok", "resolved"):
                target = "firing" if rule.for_ <= 0 else "pending"
            elif state == "pending" and at - current.since >= rule.for_:
                target = "firing"
            elif (
                state == "firing"
                and rule.repeat_interval is not None
                and current.last_notified is not None
                and at - current.last_notified >= rule.repeat_interval
            ):
                current.last_notified = at
                return [self._event(rule, at, "repeat", current, row, "firing", "firing")]
            else:
                return []
        else:
            target = {"pending": "ok", "firing": "resolved", "resolved": "ok"}.get(state, "ok")
            if target == state:
                return []
        current.state = target
        current.since = at
        if target in ("firing", "resolved"):
            current.last_notified = at
        return [self._event(rule, at, "transition", current, row, state, target)]

    def _event(
        self,
        rule: AlertRule,
        at: float,
        kind: str,
        current: _Instance | None = None,
        row: dict[str, Any] | None = None,
        from_state: str | None = None,
        to_state: str | None = None,
        *,
        message: str = "",
    ) -> AlertEvent:
        instance = dict(current.instance) if current is not None else {}
        row = dict(row or {})
        if not message:
            where = "".join(f" {k}={v}" for k, v in instance.items())
            values = ", ".join(f"{k}={v}" for k, v in row.items()) or "no rows"
            verb = "still firing" if kind == "repeat" else f"{from_state} -> {to_state}"
            message = f"alert {rule.name!r}{where}: {verb} ({rule.condition}; {values})"
        return AlertEvent(
            time=at,
            kind=kind,
            rule=rule.name,
            instance=instance,
            from_state=from_state,
            to_state=to_state,
            row=row,
            message=message,
            severity=rule.severity,
            labels=dict(rule.labels),
        )

    def _deliver(self, rule: AlertRule, event: AlertEvent) -> list[AlertEvent]:
        failures: list[AlertEvent] = []
        names = rule.notify or tuple(self._notifiers)
        for name in names:
            notifier = self._notifiers[name]
            try:
                notifier.notify(event)
            except Exception as exc:  # one notifier must not stop the others
                failures.append(
                    replace(
                        event,
                        kind="notify-error",
                        notifier=name,
                        message=f"notifier {name!r} failed: {exc}",
                    )
                )
        return failures

    # -- states and history ----------------------------------------------------------------

    def states(self) -> list[AlertState]:
        """The instances of every rule: those seen on the last evaluation and any not ``ok``."""
        with self._lock:
            return [
                AlertState(
                    rule=name,
                    instance=dict(item.instance),
                    state=item.state,
                    since=item.since,
                    row=dict(item.row),
                    last_evaluation=item.last_evaluation,
                    last_error=item.last_error,
                )
                for name in self._rules
                for item in self._instances.get(name, {}).values()
            ]

    def history(self, limit: int | None = None) -> list[AlertEvent]:
        """The recorded events, oldest first; the last ``limit`` only if given."""
        with self._lock:
            events = list(self._history)
        return events if limit is None else events[max(0, len(events) - limit) :]

    def _record(self, events: list[AlertEvent]) -> None:
        if not events:
            return
        self._history.extend(events)
        if self._file is not None:
            data = "".join(event.to_json() + "\n" for event in events).encode()
            self._file.write(data)
            self._file.flush()
            os.fsync(self._file.fileno())

    def _open_history(self, path: Path) -> None:
        existed = path.exists()
        data = path.read_bytes() if existed else b""
        end = data.rfind(b"\n") + 1
        for line in data[:end].splitlines():
            if not line.strip():
                continue
            try:
                event = AlertEvent.from_dict(json.loads(line))
            except (ValueError, TypeError, AttributeError):
                self.history_damaged_lines += 1
                continue
            self._history.append(event)
            self._restore(event)
        for table in self._instances.values():
            for key in [key for key, item in table.items() if item.state == "ok"]:
                del table[key]
        self._file = open(path, "ab")  # noqa: SIM115 - held until close()
        if end < len(data):
            # A torn last line: cut it off so the next append starts on a clean line.
            self._file.truncate(end)
            self._file.flush()
            os.fsync(self._file.fileno())
        if not existed:
            fsync_directory(path.parent)

    def _restore(self, event: AlertEvent) -> None:
        if event.kind not in ("transition", "repeat") or event.to_state is None:
            return
        table = self._instances.setdefault(event.rule, {})
        key = _instance_key(event.instance)
        current = table.setdefault(key, _Instance(dict(event.instance), since=event.time))
        if event.kind == "transition":
            current.state = event.to_state
            current.since = event.time
        if event.row:
            current.row = dict(event.row)
        if event.to_state in ("firing", "resolved"):
            current.last_notified = event.time

    # -- background loop -------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Evaluate due rules until ``stop`` is set; errors are logged, never raised."""
        while not stop.is_set():
            try:
                self.evaluate()
            except Exception:  # e.g. a full disk; the loop keeps going
                _logger.exception("alert evaluation failed")
            stop.wait(self._seconds_to_next())

    def _seconds_to_next(self) -> float:
        with self._lock:
            now = self._clock()
            dues = [
                self._last_run.get(rule.name, now) + rule.every - now
                for rule in self._rules.values()
            ]
        # At most a second, so rules added meanwhile are picked up soon.
        return max(0.0, min([1.0, *dues]))

    def start(self) -> None:
        """Run :meth:`run` in a daemon thread until :meth:`stop`."""
        with self._lock:
            if self._thread is not None:
                raise InvalidInput("the alert manager is running already")
            self._stop.clear()
            self._thread = threading.Thread(
                target=self.run, args=(self._stop,), name="trusswork-alerts", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread :meth:`start` began and wait for it."""
        thread = self._thread
        if thread is None:
            return
        self._stop.set()
        thread.join()
        self._thread = None

    def close(self) -> None:
        """Stop the background thread and close the history file."""
        self.stop()
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def __enter__(self) -> AlertManager:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


# -- configuration -------------------------------------------------------------------------

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
