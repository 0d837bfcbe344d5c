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

Rules and their TOML form are in :mod:`~trusswork.logs._alert_rules`, events
and notifiers in :mod:`~trusswork.logs._notify`; this module exports them too.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from trusswork.core.errors import InvalidInput, NotFound
from trusswork.core.files import fsync_directory
from trusswork.logs._alert_rules import AlertRule, load_alert_rules
from trusswork.logs._notify import (
    STATES,
    AlertEvent,
    CallbackNotifier,
    LogNotifier,
    Notifier,
    WebhookNotifier,
)

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

_logger = logging.getLogger("trusswork.logs.alerts")


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
