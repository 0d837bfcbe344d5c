"""Alert rules over the log store: state machine, notifications, history and config."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trusswork.core.errors import InvalidInput, NotFound, ParseError
from trusswork.logs._alerts import (
    AlertEvent,
    AlertManager,
    AlertRule,
    CallbackNotifier,
    LogNotifier,
    WebhookNotifier,
    load_alert_rules,
)
from trusswork.rules import RuleCheckError

T0 = 1_700_000_000.0


class Clock:
    """A fake clock the tests move by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


class LogStore:
    """Log events in memory, and just enough of the pipe language: ``k=v | stats count [by f]``."""

    def __init__(self) -> None:
        self.events: list[tuple[int, dict[str, Any]]] = []
        self.calls: list[tuple[str, int, int]] = []
        self.fail: Exception | None = None

    def add(self, at: float, count: int = 1, **fields: Any) -> None:
        for _ in range(count):
            self.events.append((int(at * 1000), fields))

    def __call__(self, query: str, earliest_ms: int, latest_ms: int) -> list[dict[str, Any]]:
        self.calls.append((query, earliest_ms, latest_ms))
        if self.fail is not None:
            raise self.fail
        search, _, stats = (part.strip() for part in query.partition("|"))
        terms = dict(term.split("=", 1) for term in search.split())
        rows = [
            fields
            for ts, fields in self.events
            if earliest_ms <= ts < latest_ms
            and all(str(fields.get(k)) == v for k, v in terms.items())
        ]
        assert stats.startswith("stats count")
        _, _, by = stats.partition(" by ")
        if not by:
            return [{"count": len(rows)}]
        counts: dict[Any, int] = {}
        for fields in rows:
            counts[fields.get(by)] = counts.get(fields.get(by), 0) + 1
        return [{by: key, "count": n} for key, n in counts.items()]


class Collected:
    """A notifier that keeps what it was told."""

    def __init__(self) -> None:
        self.events: list[AlertEvent] = []

    def notify(self, event: AlertEvent) -> None:
        self.events.append(event)

    def transitions(self) -> list[tuple[str | None, str | None]]:
        return [(e.from_state, e.to_state) for e in self.events]


def errors_rule(**options: Any) -> AlertRule:
    defaults: dict[str, Any] = {
        "name": "errors",
        "query": "level=error | stats count",
        "condition": "count > 5",
        "window": 60,
        "every": 10,
    }
    return AlertRule(**{**defaults, **options})


def make(
    store: LogStore, clock: Clock, *rules: AlertRule, **options: Any
) -> tuple[AlertManager, Collected]:
    sink = Collected()
    manager = AlertManager(
        store,
        rules or (errors_rule(),),
        notifiers={"sink": sink, **options.pop("notifiers", {})},
        clock=clock,
        **options,
    )
    return manager, sink


def states(manager: AlertManager) -> dict[str, str]:
    return {json.dumps(state.instance, sort_keys=True): state.state for state in manager.states()}


# -- state machine -------------------------------------------------------------------------


def test_fires_at_once_resolves_then_returns_to_ok() -> None:
    store, clock = LogStore(), Clock()
    manager, sink = make(store, clock)
    assert manager.evaluate() == []
    store.add(clock.advance(10) - 1, count=6, level="error")
    fired = manager.evaluate()
    assert [(e.from_state, e.to_state) for e in fired] == [("ok", "firing")]
    assert fired[0].row == {"count": 6}
    clock.advance(60)  # the burst leaves the window
    resolved = manager.evaluate()
    assert [(e.to_state, e.row) for e in resolved] == [("resolved", {"count": 0})]
    assert resolved[0].message == "alert 'errors': firing -> resolved (count > 5; count=0)"
    clock.advance(10)
    assert [(e.from_state, e.to_state) for e in manager.evaluate()] == [("resolved", "ok")]
    assert sink.transitions() == [("ok", "firing"), ("firing", "resolved")]
    assert manager.states()[0].state == "ok"


def test_query_covers_the_window_before_now() -> None:
    store, clock = LogStore(), Clock()
    manager, _ = make(store, clock, errors_rule(window="5m"))
    store.add(T0, count=9, level="error")  # at `now`: outside [now - window, now)
    assert manager.evaluate() == []
    assert store.calls == [("level=error | stats count", int((T0 - 300) * 1000), int(T0 * 1000))]
    assert [e.to_state for e in manager.evaluate(T0 + 10)] == ["firing"]
    store.events.clear()
    store.add(T0 + 20 - 300, count=9, level="error")  # at `now - window`: inside
    assert [e.to_state for e in manager.evaluate(T0 + 20)] == []  # still firing
    assert [e.to_state for e in manager.evaluate(T0 + 30)] == ["resolved"]


def test_for_duration_goes_through_pending() -> None:
    store, clock = LogStore(), Clock()
    manager, sink = make(store, clock, errors_rule(for_="30s"))
    store.add(T0 - 1, count=10, level="error")
    assert [e.to_state for e in manager.evaluate()] == ["pending"]
    assert [e.to_state for e in manager.evaluate(clock.advance(10))] == []
    assert [e.to_state for e in manager.evaluate(clock.advance(10))] == []
    assert sink.events == []
    assert manager.states()[0].state == "pending" and manager.states()[0].since == T0
    assert [e.to_state for e in manager.evaluate(clock.advance(10))] == ["firing"]
    assert sink.transitions() == [("pending", "firing")]


def test_flapping_pending_never_notifies_and_restarts_its_timer() -> None:
    store, clock = LogStore(), Clock()
    manager, sink = make(store, clock, errors_rule(for_=20, window=10))
    seen: list[tuple[str | None, str | None]] = []
    for high in [True, False, True, True, False, True, True, True]:
        if high:
            store.add(clock.now + 9, count=10, level="error")
        seen.extend((e.from_state, e.to_state) for e in manager.evaluate(clock.advance(10)))
    assert seen == [
        ("ok", "pending"),
        ("pending", "ok"),
        ("ok", "pending"),
        ("pending", "ok"),
        ("ok", "pending"),
        ("pending", "firing"),
    ]
    assert sink.transitions() == [("pending", "firing")]


def test_flapping_firing_notifies_each_transition_once() -> None:
    store, clock = LogStore(), Clock()
    manager, sink = make(store, clock, errors_rule(window=10))
    for high in [True, True, False, True, False, False]:
        if high:
            store.add(clock.now + 9, count=10, level="error")
        manager.evaluate(clock.advance(10))
    assert sink.transitions() == [
        ("ok", "firing"),
        ("firing", "resolved"),
        ("resolved", "firing"),
        ("firing", "resolved"),
    ]


def test_not_due_rules_are_skipped_and_firing_is_notified_once() -> None:
    store, clock = LogStore(), Clock()
    manager, sink = make(store, clock, errors_rule(every=60, window=3600))
    store.add(T0 - 1, count=10, level="error")
    manager.evaluate()
    for _ in range(5):
        manager.evaluate(clock.advance(30))
    assert len(store.calls) == 3  # T0, T0+60, T0+120
    assert sink.transitions() == [("ok", "firing")]


def test_repeat_interval_renotifies_while_firing() -> None:
    store, clock = LogStore(), Clock()
    manager, sink = make(store, clock, errors_rule(window=3600, repeat_interval="25s"))
    store.add(T0 - 1, count=10, level="error")
    for _ in range(7):
        manager.evaluate()
        clock.advance(10)
    # T0 fires; T0+30 and T0+60 repeat (25 s after the last notification, on the 10 s grid).
    assert [(e.kind, round(e.time - T0)) for e in sink.events] == [
        ("transition", 0),
        ("repeat", 30),
        ("repeat", 60),
    ]


def test_group_instances_appear_and_disappear() -> None:
    store, clock = LogStore(), Clock()
    rule = errors_rule(query="level=error | stats count by host", group_by=("host",), window=10)
    manager, sink = make(store, clock, rule)
    store.add(T0 - 5, count=10, level="error", host="web-1")
    store.add(T0 - 5, count=1, level="error", host="web-2")
    manager.evaluate()
    assert states(manager) == {'{"host": "web-1"}': "firing", '{"host": "web-2"}': "ok"}
    store.add(T0 + 5, count=10, level="error", host="web-2")
    manager.evaluate(clock.advance(10))  # web-1 has no rows any more: false
    assert states(manager) == {'{"host": "web-1"}': "resolved", '{"host": "web-2"}': "firing"}
    manager.evaluate(clock.advance(10))
    # web-1 is ok and absent, so it is forgotten; web-2 resolves.
    assert states(manager) == {'{"host": "web-2"}': "resolved"}
    assert [e.row for e in sink.events if e.to_state == "resolved"] == [{}, {}]
    assert [(e.instance["host"], e.to_state) for e in sink.events] == [
        ("web-1", "firing"),
        ("web-1", "resolved"),
        ("web-2", "firing"),
        ("web-2", "resolved"),
    ]


def test_numbers_may_be_int_or_float_and_strings_compare() -> None:
    rows: list[dict[str, Any]] = [
        {"host": "web-1", "count": 130, "error_rate": 0.1},
        {"host": "web-2", "count": 130.5, "error_rate": 1},
        {"host": "db-1", "count": 500, "error_rate": 0.5},
        {"host": "web-3", "count": 3, "error_rate": 0.9},
    ]
    rule = AlertRule(
        "rates",
        "* | stats count, error_rate by host",
        "count > 100 && error_rate > 0.05 && host.startsWith('web')",
        group_by=("host",),
    )
    manager = AlertManager(lambda q, a, b: rows, [rule], clock=Clock())
    firing = sorted(e.instance["host"] for e in manager.evaluate() if e.to_state == "firing")
    assert firing == ["web-1", "web-2"]
    assert all(state.last_error is None for state in manager.states())


def test_missing_column_is_false_and_recorded() -> None:
    rows = [{"count": 500}]
    rule = AlertRule("rates", "*", "count > 100 && error_rate > 0.05")
    manager, sink = make(LogStore(), Clock(), rule)
    manager._runner = lambda q, a, b: rows  # swap the data source
    events = manager.evaluate()
    assert [e.kind for e in events] == ["error"]
    assert "'error_rate' is missing" in events[0].message
    assert manager.states()[0].state == "ok"
    assert "error_rate" in (manager.states()[0].last_error or "")
    assert sink.events == []


def test_odd_values_are_recorded_not_raised() -> None:
    rows: list[dict[str, Any]] = [
        {"host": "a", "count": 10**400},  # too big for a double: stays an int
        {"host": "b", "count": float("inf")},
        {"host": "c", "count": None},
        {"host": "d", "count": object()},
    ]
    rule = AlertRule("odd", "*", "count > 5", group_by=("host",))
    manager = AlertManager(lambda q, a, b: rows, [rule], clock=Clock())
    events = manager.evaluate()
    assert [e.kind for e in events] == ["error", "transition", "transition"]
    assert "2 row(s)" in events[0].message
    assert {e.instance["host"] for e in events[1:]} == {"a", "b"}
    manager._runner = lambda q, a, b: None  # type: ignore[assignment,return-value]
    events = manager.evaluate(T0 + 60)
    assert [e.kind for e in events] == ["error"] and "query failed" in events[0].message
    hosts = {s.instance["host"]: s.state for s in manager.states()}
    assert hosts == {"a": "firing", "b": "firing", "c": "ok", "d": "ok"}


def test_condition_wrong_for_the_row_types_is_recorded_not_raised() -> None:
    rule = AlertRule("typed", "*", "host > 5")
    manager = AlertManager(lambda q, a, b: [{"host": "web-1"}], [rule], clock=Clock())
    events = manager.evaluate()
    assert [e.kind for e in events] == ["error"]
    assert "no matching overload" in events[0].message


def test_query_error_keeps_states_and_records_error() -> None:
    store, clock = LogStore(), Clock()
    manager, sink = make(store, clock, errors_rule(window=3600))
    store.add(T0 - 1, count=10, level="error")
    manager.evaluate()
    store.fail = TimeoutError("log store busy")
    events = manager.evaluate(clock.advance(10))
    assert [(e.kind, e.rule) for e in events] == [("error", "errors")]
    assert "log store busy" in events[0].message
    assert manager.states()[0].state == "firing"
    store.fail = None
    assert manager.evaluate(clock.advance(10)) == []
    assert sink.transitions() == [("ok", "firing")]
    assert [e.kind for e in manager.history()] == ["transition", "error"]


def test_failing_notifier_does_not_stop_the_others() -> None:
    store, clock = LogStore(), Clock()

    def broken(event: AlertEvent) -> None:
        raise RuntimeError("pager down")

    rule = errors_rule(notify=("broken", "sink"))
    manager, sink = make(store, clock, rule, notifiers={"broken": CallbackNotifier(broken)})
    store.add(T0 - 1, count=10, level="error")
    events = manager.evaluate()
    assert [(e.kind, e.notifier) for e in events] == [
        ("transition", None),
        ("notify-error", "broken"),
    ]
    assert "pager down" in events[1].message
    assert sink.transitions() == [("ok", "firing")]


def test_rule_names_must_be_unique_and_notifiers_known() -> None:
    manager, _ = make(LogStore(), Clock())
    with pytest.raises(InvalidInput, match="'errors' exists"):
        manager.add_rule(errors_rule())
    with pytest.raises(NotFound, match="notifies 'pager'"):
        manager.add_rule(errors_rule(name="other", notify=("pager",)))
    manager.remove_rule("errors")
    assert manager.rules == [] and manager.evaluate() == []
    with pytest.raises(NotFound):
        manager.remove_rule("errors")


# -- the state machine against an oracle ---------------------------------------------------


def oracle(highs: list[bool], for_steps: int) -> list[tuple[str, str]]:
    """Transitions of one instance evaluated once per step, condition given per step."""
    state, since, out = "ok", 0, []
    for step, high in enumerate(highs):
        new = state
        if high and state in ("ok", "resolved"):
            new = "firing" if for_steps == 0 else "pending"
        elif high and state == "pending" and step - since >= for_steps:
            new = "firing"
        elif not high and state != "ok":
            new = {"pending": "ok", "firing": "resolved", "resolved": "ok"}[state]
        if new != state:
            out.append((state, new))
            state, since = new, step
    return out


@settings(max_examples=60, deadline=None)
@given(highs=st.lists(st.booleans(), max_size=25), for_steps=st.integers(0, 3))
def test_transitions_match_the_oracle(highs: list[bool], for_steps: int) -> None:
    step = iter(highs)
    rule = AlertRule("r", "*", "v > 0", every=1, for_=for_steps)
    notified = Collected()
    manager = AlertManager(
        lambda q, a, b: [{"v": 1 if next(step) else 0}],
        [rule],
        notifiers={"n": notified},
        clock=Clock(),
    )
    seen = [(e.from_state, e.to_state) for i in range(len(highs)) for e in manager.evaluate(T0 + i)]
    assert seen == oracle(highs, for_steps)
    assert notified.transitions() == [t for t in seen if t[1] in ("firing", "resolved")]


# -- history and restarts ------------------------------------------------------------------


def test_restart_restores_states_and_does_not_renotify(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    store, clock = LogStore(), Clock()
    hosts = errors_rule(
        name="hosts",
        query="level=error | stats count by host",
        group_by=("host",),
        window=3600,
        for_=60,
    )
    rules = (errors_rule(window=3600), hosts)
    store.add(T0 - 1, count=10, level="error", host="web-1")
    with make(store, clock, *rules, history_path=path)[0] as first:
        events = first.evaluate()
        assert sorted((e.rule, e.to_state) for e in events) == [
            ("errors", "firing"),
            ("hosts", "pending"),
        ]
    clock.advance(30)
    second, sink = make(store, clock, *rules, history_path=path)
    with second:
        assert second.history_damaged_lines == 0
        assert len(second.history()) == 2
        assert {(s.rule, s.state, s.since) for s in second.states()} == {
            ("errors", "firing", T0),
            ("hosts", "pending", T0),
        }
        assert second.evaluate() == []  # still firing: not notified again; pending for 30 s
        events = second.evaluate(clock.advance(30))
        assert [(e.rule, e.to_state) for e in events] == [("hosts", "firing")]
    assert sink.transitions() == [("pending", "firing")]
    lines = path.read_text().splitlines()
    assert [json.loads(line)["to_state"] for line in lines] == ["firing", "pending", "firing"]


def test_restart_keeps_the_repeat_schedule(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    store, clock = LogStore(), Clock()
    rule = errors_rule(window=3600, repeat_interval=100)
    store.add(T0 - 1, count=10, level="error")
    with make(store, clock, rule, history_path=path)[0] as first:
        assert [e.to_state for e in first.evaluate()] == ["firing"]
    second, sink = make(store, clock, rule, history_path=path)
    assert second.evaluate(clock.advance(50)) == []
    assert [e.kind for e in second.evaluate(clock.advance(50))] == ["repeat"]
    assert len(sink.events) == 1
    second.close()


def test_torn_last_line_is_ignored_and_cut_off(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    store, clock = LogStore(), Clock()
    store.add(T0 - 1, count=10, level="error")
    with make(store, clock, errors_rule(window=3600), history_path=path)[0] as first:
        first.evaluate()
    whole = path.read_bytes()
    torn = AlertEvent(T0 + 5, "transition", "errors", {}, "firing", "resolved").to_json()
    path.write_bytes(whole + torn[: len(torn) // 2].encode())
    with make(store, clock, errors_rule(window=3600), history_path=path)[0] as second:
        assert second.history_damaged_lines == 0
        assert [s.state for s in second.states()] == ["firing"]
        assert path.read_bytes() == whole
        store.events.clear()
        second.evaluate(clock.advance(10))
    with make(store, clock, errors_rule(window=3600), history_path=path)[0] as third:
        assert third.history_damaged_lines == 0
        assert [e.to_state for e in third.history()] == ["firing", "resolved"]


def test_damaged_middle_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    good = [
        AlertEvent(T0, "transition", "errors", {}, "ok", "firing").to_json(),
        AlertEvent(T0 + 10, "transition", "errors", {}, "firing", "resolved").to_json(),
        AlertEvent(T0 + 20, "transition", "errors", {}, "resolved", "firing").to_json(),
    ]
    lines = [good[0], '{"time": 1, "kind": "transit', good[1], "[1, 2]", "\xff garbage", good[2]]
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8", "surrogateescape"))
    with make(LogStore(), Clock(T0 + 30), errors_rule(), history_path=path)[0] as manager:
        assert manager.history_damaged_lines == 3
        assert [e.to_state for e in manager.history()] == ["firing", "resolved", "firing"]
        assert [(s.state, s.since) for s in manager.states()] == [("firing", T0 + 20)]


KILLED_WRITER = textwrap.dedent(
    """
    import sys
    from trusswork.logs._alerts import AlertManager, AlertRule

    path = sys.argv[1]
    tick = [0]

    def runner(query, earliest_ms, latest_ms):
        tick[0] += 1
        return [{"host": f"h{i}", "v": (tick[0] // (i + 1)) % 2} for i in range(4)]

    rule = AlertRule("flappy", "*", "v > 0", every=1, for_=2, group_by=("host",))
    manager = AlertManager(runner, [rule], history_path=path)
    now = 1_700_000_000.0
    while True:
        now += 1
        manager.evaluate(now)
    """
)


def test_sigkill_mid_history_leaves_a_consistent_state(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    process = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path)])
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if path.exists() and path.stat().st_size > 200_000:
                break
            time.sleep(0.02)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    rule = AlertRule("flappy", "*", "v > 0", every=1, for_=2, group_by=("host",))
    with AlertManager(lambda q, a, b: [], [rule], history_path=path) as manager:
        assert manager.history_damaged_lines == 0
        history = manager.history()
        assert len(history) > 50
        last: dict[str, str] = {}
        for event in history:
            host = event.instance["host"]
            # Every transition starts where the previous one of its instance ended.
            assert event.from_state == last.get(host, "ok")
            last[host] = event.to_state or ""
        assert {s.instance["host"]: s.state for s in manager.states()} == {
            host: state for host, state in last.items() if state != "ok"
        }
        end = history[-1].time
        manager.evaluate(end + 1)  # nothing returned: every instance goes false
    with AlertManager(lambda q, a, b: [], [rule], history_path=path) as reopened:
        assert reopened.history_damaged_lines == 0
        assert all(s.state in ("resolved", "ok") for s in reopened.states())


# -- notifiers -----------------------------------------------------------------------------


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]], list[int]]]:
    """A local HTTP server: answers POSTs with the statuses queued in a list (then 200)."""
    received: list[dict[str, Any]] = []
    statuses: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = statuses.pop(0) if statuses else 200
            if status == 200:
                received.append(json.loads(body))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received, statuses
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_webhook_retries_a_500_then_delivers(
    webhook: tuple[str, list[dict[str, Any]], list[int]],
) -> None:
    url, received, statuses = webhook
    statuses.extend([500, 503])
    store, clock = LogStore(), Clock()
    hook = WebhookNotifier(url, retries=3, backoff=0.001, headers={"X-Team": "web"})
    manager, _ = make(store, clock, errors_rule(labels={"team": "web"}), notifiers={"hook": hook})
    store.add(T0 - 1, count=10, level="error")
    events = manager.evaluate()
    assert [e.kind for e in events] == ["transition"]
    assert len(received) == 1 and statuses == []
    assert received[0]["rule"] == "errors" and received[0]["to_state"] == "firing"
    assert received[0]["labels"] == {"team": "web"}
    assert AlertEvent.from_dict(received[0]) == events[0]


def test_webhook_that_keeps_failing_is_a_notify_error(
    webhook: tuple[str, list[dict[str, Any]], list[int]],
) -> None:
    url, received, statuses = webhook
    statuses.extend([500, 500, 500])
    hook = WebhookNotifier(url, retries=2, backoff=0.001)
    store, clock = LogStore(), Clock()
    manager, sink = make(store, clock, notifiers={"hook": hook})
    store.add(T0 - 1, count=10, level="error")
    events = manager.evaluate()
    assert [(e.kind, e.notifier) for e in events] == [
        ("transition", None),
        ("notify-error", "hook"),
    ]
    assert "HTTP 500" in events[1].message and received == [] and statuses == []
    assert len(sink.events) == 1


def test_webhook_4xx_is_not_retried(webhook: tuple[str, list[dict[str, Any]], list[int]]) -> None:
    url, _, statuses = webhook
    statuses.extend([404, 404])
    with pytest.raises(InvalidInput, match="HTTP 404"):
        WebhookNotifier(url, retries=3, backoff=0.001).notify(AlertEvent(T0, "repeat", "r"))
    assert statuses == [404]


def test_dead_webhook_endpoint_is_recorded_as_notify_error(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: connections are refused
    hook = WebhookNotifier(f"http://127.0.0.1:{port}/", retries=1, backoff=0.001, timeout=2)
    store, clock = LogStore(), Clock()
    path = tmp_path / "alerts.jsonl"
    manager, sink = make(store, clock, notifiers={"hook": hook}, history_path=path)
    store.add(T0 - 1, count=10, level="error")
    with manager:
        events = manager.evaluate()
    assert [e.kind for e in events] == ["transition", "notify-error"]
    assert "unreachable" in events[1].message
    assert [json.loads(line)["kind"] for line in path.read_text().splitlines()] == [
        "transition",
        "notify-error",
    ]
    assert len(sink.events) == 1


def test_log_notifier_writes_json_lines(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "notified.jsonl"
    logger = logging.getLogger("tests.alerts")
    store, clock = LogStore(), Clock()
    notifiers = {"file": LogNotifier(path), "log": LogNotifier(logger)}
    manager, _ = make(store, clock, errors_rule(window=10), notifiers=notifiers)
    store.add(T0 - 1, count=10, level="error")
    with caplog.at_level(logging.WARNING, logger="tests.alerts"):
        manager.evaluate()
        manager.evaluate(clock.advance(10))
    written = [json.loads(line)["to_state"] for line in path.read_text().splitlines()]
    assert written == ["firing", "resolved"]
    logged = [json.loads(r.getMessage())["to_state"] for r in caplog.records]
    assert logged == ["firing", "resolved"]
    assert {r.levelno for r in caplog.records} == {logging.WARNING}


def test_background_loop_evaluates_until_stopped() -> None:
    store = LogStore()
    store.add(time.time() - 1, count=10, level="error")
    seen = threading.Event()
    manager = AlertManager(
        store,
        [errors_rule(every=0.01)],
        notifiers={"cb": CallbackNotifier(lambda event: seen.set())},
    )
    manager.start()
    try:
        assert seen.wait(10)
        with pytest.raises(InvalidInput, match="running already"):
            manager.start()
    finally:
        manager.stop()
    assert [e.to_state for e in manager.history()][:1] == ["firing"]


# -- rules and config errors ---------------------------------------------------------------


def test_bad_condition_names_the_rule_with_a_caret() -> None:
    with pytest.raises(ParseError) as caught:
        errors_rule(name="hot", condition="count > && x")
    assert str(caught.value).startswith("alert 'hot':1:9:")
    assert "\n  1 | count > && x\n    |         ^" in str(caught.value)
    with pytest.raises(RuleCheckError, match=r"alert 'hot'.*must be a bool"):
        errors_rule(name="hot", condition="count + 1")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"window": 0}, "alert 'errors': window must be above 0"),
        ({"every": "soon"}, "alert 'errors': every: 'soon' is not a duration"),
        ({"for_": -1}, "alert 'errors': for must be 0 or more"),
        ({"severity": "loud"}, "severity must be one of debug, info"),
        ({"group_by": "host"}, "group_by must be a list"),
        ({"labels": {"team": 1}}, "labels must map strings to strings"),
        ({"query": " "}, "query must be a non-empty string"),
        ({"name": ""}, "needs a non-empty name"),
    ],
)
def test_bad_rule_fields(options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        errors_rule(**options)


CONFIG = """
[[alert]]
name = "errors"
query = "level=error | stats count by host"
condition = "count > 100"
window = "5m"
every = "30s"
for = "1m"
group_by = ["host"]
labels = { team = "web" }
severity = "error"
notify = ["pager"]
repeat_interval = "1h"

[[alert]]
name = "quiet"
query = "* | stats count"
condition = "count == 0"
"""


def test_load_alert_rules_from_text_and_file(tmp_path: Path) -> None:
    errors, quiet = load_alert_rules(CONFIG)
    assert (errors.window, errors.every, errors.for_, errors.repeat_interval) == (
        300.0,
        30.0,
        60.0,
        3600.0,
    )
    assert errors.group_by == ("host",) and errors.notify == ("pager",)
    assert dict(errors.labels) == {"team": "web"} and errors.severity == "error"
    assert (quiet.window, quiet.every, quiet.for_, quiet.group_by) == (300.0, 60.0, 0.0, ())
    path = tmp_path / "alerts.toml"
    path.write_text(CONFIG)
    assert load_alert_rules(path) == [errors, quiet]
    assert load_alert_rules(str(path)) == [errors, quiet]
    with pytest.raises(NotFound, match="no alert rules file"):
        load_alert_rules(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        (
            '[[alert]]\nname = "a"\nquery = "*"\ncondition = "x > 1"\nwindow = "5 minutes"\n',
            InvalidInput,
            r"alerts.toml: alert 'a': window: '5 minutes' is not a duration",
        ),
        (
            '[[alert]]\nname = "a"\nquery = "*"\ncondition = "x > 1"\nevry = "1m"\n',
            InvalidInput,
            r"alerts.toml: alert 'a': unknown key 'evry'",
        ),
        (
            '[[alert]]\nname = "a"\ncondition = "x > 1"\n',
            InvalidInput,
            r"alerts.toml: alert 'a': the key 'query' is missing",
        ),
        (
            '[[alert]]\nquery = "*"\ncondition = "x > 1"\n',
            InvalidInput,
            r"alerts.toml: alert #1: the key 'name' is missing",
        ),
        (
            '[[alert]]\nname = "a"\nquery = "*"\ncondition = "x > 1"\nnotify = "pager"\n',
            InvalidInput,
            r"alerts.toml: alert 'a': notify must be a list",
        ),
        (
            '[[alert]]\nname = "a"\nquery = "*"\ncondition = "x >"\n',
            ParseError,
            r"alerts.toml: alert 'a': key 'condition':1:4: ",
        ),
        (
            '[[alert]]\nname = "a"\nquery = "*"\ncondition = "x + 1"\n',
            RuleCheckError,
            r"alerts.toml: alert 'a': key 'condition':1:1: error: a rule's condition must be",
        ),
        (
            '[[alert]]\nname = "a"\nquery = "*"\ncondition = "x > 1"\n'
            '[[alert]]\nname = "a"\nquery = "*"\ncondition = "x > 2"\n',
            InvalidInput,
            r"alerts.toml: alert #2: the name 'a' is used twice",
        ),
        ('[[alert]]\nname = "a\n', ParseError, r"alerts.toml:2:"),
        ("alerts = 1\n", InvalidInput, r"alerts.toml: unknown top-level key 'alerts'"),
    ],
)
def test_bad_config_names_file_alert_and_key(
    tmp_path: Path, text: str, error: type[Exception], message: str
) -> None:
    path = tmp_path / "alerts.toml"
    path.write_text(text)
    with pytest.raises(error, match=message) as caught:
        load_alert_rules(path)
    if isinstance(caught.value, ParseError):
        assert "^" in str(caught.value)


def test_events_round_trip_through_json() -> None:
    event = AlertEvent(
        T0, "transition", "r", {"host": "a"}, "ok", "firing", {"count": 3, "at": os.sep}, "m"
    )
    assert AlertEvent.from_dict(json.loads(event.to_json())) == event
    with pytest.raises(InvalidInput, match="unknown state"):
        AlertEvent.from_dict({**event.to_dict(), "to_state": "exploded"})
