"""Alert events and who is told about them: :class:`AlertEvent` and the notifiers.

An :class:`AlertEvent` is what happened to an alert instance (a transition,
a repeat while firing, an error); it round-trips through JSON for the
history file and the notifiers. A notifier's ``notify(event)`` returns when
the event is delivered and raises when it could not be;
:class:`~trusswork.logs._alerts.AlertManager` records the failure as a
``notify-error`` event and goes on with the other notifiers.
:class:`WebhookNotifier` retries what may succeed later (5xx answers,
failed connections) and never a 4xx.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from trusswork.core.errors import InvalidInput, Unavailable
from trusswork.retry import Policy, call

__all__ = [
    "STATES",
    "AlertEvent",
    "CallbackNotifier",
    "LogNotifier",
    "Notifier",
    "WebhookNotifier",
]

STATES = ("ok", "pending", "firing", "resolved")
"""The states of an alert instance."""


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
