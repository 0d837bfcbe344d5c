"""Demo section for log analytics, and the synthetic logs ``trusswork logs generate`` writes.

The generator (:func:`generate_records`, :func:`format_record`) is
deterministic: one seed, one start time and one line count always give the
same lines. It writes the traffic of a small web shop: clients from a pool
where a few are busy, mostly ``GET`` requests for pages, API calls and static
files, status codes mostly 200 with some 304 and 404, and one incident (a
few minutes, a third of the way in) where a quarter of the requests fail
with 500 or 503. Lines are nginx ``combined`` access log lines or JSON lines
of an application log with the same fields.

The section, on 50,000 combined lines (20,000 with ``--quick``) spread
over the same 1,000 seconds, checks:

1. Ingest: every line goes into a temporary :class:`~trusswork.logs.LogStore`
   (under ``<out>/logs/store``) and is accepted.
2. A search (``status>=500 GET``), a ``stats count, avg(bytes) by status``
   and a ``timechart span=1m count by status``: each answer must equal what
   the generator's own records say (counts exactly, averages to 1e-9). The
   timechart is plotted; the plan of the search is shown.
3. An alert: an :class:`~trusswork.logs.AlertManager` rule ``count > N``
   over ``status>=500 | stats count`` in a one-minute window, evaluated
   minute by minute on the data's own clock, must go ``ok -> pending ->
   firing`` during the incident and ``resolved`` after it, and a
   :class:`~trusswork.logs.CallbackNotifier` must receive the firing and the
   resolved events, once each.

Timings (ingest rate, query times) are reported, never asserted.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from trusswork.cli._demo import DemoContext, Plot, SectionResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from trusswork.logs import AlertEvent, LogStore

__all__ = ["START_MS", "Record", "demo", "format_record", "generate_lines", "generate_records"]

#: The first line's time when none is given: 2026-05-04T09:00:00Z.
START_MS = 1_777_885_200_000
#: Mean requests per second (the generated span is lines / rate seconds).
RATE = 50.0
#: The incident: a share of the run (from, to) where requests fail more often.
INCIDENT = (0.35, 0.45)
INCIDENT_ERROR_SHARE = 0.25
NORMAL_ERROR_SHARE = 0.004

_PAGES = ("/", "/products", "/cart", "/checkout", "/search", "/about", "/login")
_API = ("/api/products/{id}", "/api/cart/{id}", "/api/orders/{id}", "/api/users/{id}")
_STATIC = ("/static/app.js", "/static/app.css", "/static/logo.png", "/favicon.ico")
_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "curl/8.7.1",
    "Googlebot/2.1 (+http://www.google.com/bot.html)",
)
_REFERERS = ("-", "https://shop.example.com/", "https://www.google.com/", "-", "-")
_USERS = ("-", "-", "-", "alice", "bob")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class Record:
    """One generated request, before it is written as a line."""

    time_ms: int
    client: str
    user: str
    method: str
    path: str
    status: int
    bytes: int
    referer: str
    agent: str
    duration_ms: int


def generate_records(
    count: int, *, seed: int = 7, start_ms: int = START_MS, rate: float = RATE
) -> Iterator[Record]:
    """``count`` requests of a small web shop, in time order; the same for the same arguments.

    Parameters
    ----------
    count:
        Requests to generate.
    seed:
        Seed of the random choices.
    start_ms:
        Time of the first request (Unix ms).
    rate:
        Mean requests per second.

    Returns
    -------
    Iterator[Record]
        The requests; a share of them inside :data:`INCIDENT` fail more often.
    """
    rng = random.Random(seed)
    clients = [
        f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}" for _ in range(400)
    ]
    weights = [1 / (rank + 1) for rank in range(len(clients))]  # a few busy clients
    incident = (count * INCIDENT[0], count * INCIDENT[1])
    now = float(start_ms)
    for index in range(count):
        now += rng.expovariate(rate) * 1000
        kind = rng.random()
        if kind < 0.45:
            path, size = (
                rng.choice(_API).format(id=rng.randrange(1, 5000)),
                rng.randrange(200, 4000),
            )
        elif kind < 0.75:
            path, size = rng.choice(_STATIC), rng.randrange(2_000, 200_000)
        else:
            path, size = rng.choice(_PAGES), rng.randrange(5_000, 60_000)
        method = "GET"
        if path.startswith("/api/") or path in ("/cart", "/checkout", "/login"):
            method = rng.choices(("GET", "POST", "PUT", "DELETE"), (70, 20, 7, 3))[0]
        errors = INCIDENT_ERROR_SHARE if incident[0] <= index < incident[1] else NORMAL_ERROR_SHARE
        roll = rng.random()
        if roll < errors:
            status, size = rng.choice((500, 503, 503)), rng.randrange(150, 600)
        elif roll < errors + 0.03:
            status, size = 404, rng.randrange(150, 600)
        elif path.startswith("/static/") and roll < errors + 0.25:
            status, size = 304, 0
        else:
            status = 201 if method == "POST" and rng.random() < 0.5 else 200
        yield Record(
            time_ms=round(now),
            client=rng.choices(clients, weights)[0],
            user=rng.choice(_USERS),
            method=method,
            path=path,
            status=status,
            bytes=size,
            referer=rng.choice(_REFERERS),
            agent=rng.choice(_AGENTS),
            duration_ms=max(1, round(rng.lognormvariate(3.0, 0.8) * (8 if status >= 500 else 1))),
        )


def format_record(record: Record, format: str = "combined") -> str:
    """The request as an nginx ``combined`` line or a JSON application log line.

    Raises
    ------
    ValueError
        ``format`` is neither ``combined`` nor ``json``.
    """
    moment = datetime.fromtimestamp(record.time_ms / 1000, UTC)
    if format == "combined":
        stamp = (
            f"{moment.day:02d}/{_MONTHS[moment.month - 1]}/{moment.year}:{moment:%H:%M:%S} +0000"
        )
        return (
            f'{record.client} - {record.user} [{stamp}] "{record.method} {record.path} HTTP/1.1" '
            f'{record.status} {record.bytes} "{record.referer}" "{record.agent}"'
        )
    if format == "json":
        level = "error" if record.status >= 500 else "warn" if record.status >= 400 else "info"
        document: dict[str, Any] = {
            "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": level,
            "service": "shop-api" if record.path.startswith("/api/") else "shop-web",
            "msg": f"{record.method} {record.path} -> {record.status}",
            "method": record.method,
            "path": record.path,
            "status": record.status,
            "bytes": record.bytes,
            "duration_ms": record.duration_ms,
            "client": record.client,
        }
        return json.dumps(document, separators=(",", ":"))
    raise ValueError(f"format must be 'combined' or 'json', got {format!r}")


def generate_lines(
    count: int, *, format: str = "combined", seed: int = 7, start_ms: int = START_MS
) -> Iterator[str]:
    """``count`` log lines (without newlines); see :func:`generate_records`."""
    for record in generate_records(count, seed=seed, start_ms=start_ms):
        yield format_record(record, format)


# ---------------------------------------------------------------- the section

SEARCH = "status>=500 GET"
STATS = "* | stats count, avg(bytes) by status"
TIMECHART = "* | timechart span=1m count by status"
ALERT_QUERY = "status>=500 | stats count"
#: The alert's threshold: server errors in its one-minute window.
ALERT_THRESHOLD = 100
BATCH_LINES = 5_000
SPAN_S = 1_000
MINUTE_MS = 60_000
COLORS = {"2xx": "#1a7f37", "3xx": "#0969da", "4xx": "#bf8700", "5xx": "#cf222e"}


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def _ingest(ctx: DemoContext, store: LogStore, lines: list[str]) -> tuple[int, float]:
    started = time.perf_counter()
    accepted = 0
    batches = range(0, len(lines), BATCH_LINES)
    for offset in ctx.track(batches, "logs: ingest"):
        result = store.ingest(
            lines[offset : offset + BATCH_LINES], format="combined", source="access.log"
        )
        _check(not result.rejected, f"{result.rejected} lines rejected: {result.errors[:1]}")
        accepted += result.accepted
    store.refresh()
    return accepted, time.perf_counter() - started


def _timed(store: LogStore, query: str) -> tuple[list[dict[str, Any]], Any, float]:
    began = time.perf_counter()
    result = store.query(query)
    return result.to_pylist(), result.plan, time.perf_counter() - began


def _class(status: int) -> str:
    return f"{status // 100}xx"


def _timechart_figure(rows: list[dict[str, Any]], start_ms: int) -> Figure:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 3.6), layout="constrained")
    axes = figure.subplots()
    minutes = [(row["_time"] - start_ms) / MINUTE_MS for row in rows]
    by_class: dict[str, list[float]] = {}
    for name in sorted({key for row in rows for key in row if key != "_time"}):
        series = by_class.setdefault(_class(int(name)), [0.0] * len(rows))
        for index, row in enumerate(rows):
            series[index] += row.get(name, 0) or 0
    bottom = [0.0] * len(rows)
    for name, counts in sorted(by_class.items()):
        axes.bar(
            minutes,
            counts,
            width=0.9,
            bottom=bottom,
            align="edge",
            color=COLORS.get(name, "#59636e"),
            label=name,
        )
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    axes.set_xlabel("minutes since the first line")
    axes.set_ylabel("requests per minute")
    axes.grid(True, axis="y", alpha=0.3)
    axes.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    axes.set_title(f"{TIMECHART} (status classes stacked)", fontsize=10)
    return figure


def _alert_part(store: LogStore, records: list[Record]) -> list[tuple[str, str]]:
    """Evaluate one alert minute by minute over the data; it must fire during the incident."""
    from trusswork.logs import AlertManager, AlertRule, CallbackNotifier

    received: list[AlertEvent] = []
    rule = AlertRule(
        name="server-errors",
        query=ALERT_QUERY,
        condition=f"count > {ALERT_THRESHOLD}",
        window=60,
        every=60,
        for_=60,
        severity="error",
    )
    manager = AlertManager(
        lambda q, lo, hi: store.query(q, earliest=lo, latest=hi).to_pylist(),
        [rule],
        notifiers={"collect": CallbackNotifier(received.append)},
    )
    first, last = records[0].time_ms, records[-1].time_ms
    states = ["ok"]
    changes: list[str] = []
    with manager:
        at = math.ceil(first / MINUTE_MS) * MINUTE_MS + MINUTE_MS
        while at <= last + 2 * MINUTE_MS:
            for event in manager.evaluate(now=at / 1000):
                _check(event.kind == "transition", f"alert event {event.kind}: {event.message}")
                assert event.to_state is not None
                states.append(event.to_state)
                changes.append(f"{event.to_state} at minute {(at - START_MS) // MINUTE_MS}")
            at += MINUTE_MS
    _check(
        states[:4] == ["ok", "pending", "firing", "resolved"],
        f"the alert went {' -> '.join(states)}",
    )
    notified = [str(event.to_state) for event in received]
    _check(notified == ["firing", "resolved"], f"the notifier received {notified}")
    count = received[0].row.get("count", 0)
    _check(count > ALERT_THRESHOLD, f"fired with count {count}")
    return [
        (
            f"alert: {rule.condition} over '{ALERT_QUERY}', 1 min window, for 1 min",
            " -> ".join(states[:4]) + f" ({', '.join(changes[:3])})",
        ),
        ("alert: notifications received", f"{', '.join(notified)} (firing at count {count:,})"),
    ]


def demo(ctx: DemoContext) -> SectionResult:
    """Run and check the log analytics parts; see the module docstring."""
    from trusswork.logs import LogStore

    count = 20_000 if ctx.quick else 50_000
    # The same 1,000 s span in both runs, so the incident lasts long enough to fire.
    records = list(generate_records(count, rate=count / SPAN_S))
    lines = [format_record(record) for record in records]
    path = ctx.out_dir / "logs" / "store"
    shutil.rmtree(path, ignore_errors=True)
    rows: list[tuple[str, str]] = []
    with LogStore(path, background=False, fsync="never") as store:
        accepted, seconds = _ingest(ctx, store, lines)
        _check(accepted == count, f"{accepted:,} of {count:,} lines accepted")
        stats = store.stats()
        span_minutes = (records[-1].time_ms - records[0].time_ms) / MINUTE_MS
        rows += [
            (
                "generated nginx combined lines",
                f"{count:,} over {span_minutes:.1f} min (seed 7)",
            ),
            (
                "ingest (parse, write-ahead log, index)",
                f"{count / seconds:,.0f} lines/s; {stats['segments']} segment(s), "
                f"{stats['bytes'] / count:.0f} bytes/line indexed",
            ),
        ]
        # 1. the search
        found, plan, took = _timed(store, SEARCH)
        expected = sum(1 for r in records if r.status >= 500 and r.method == "GET")
        _check(len(found) == expected, f"{SEARCH}: {len(found)} rows, expected {expected}")
        _check(all(row["status"] >= 500 for row in found), f"{SEARCH}: a row below 500")
        rows.append((f"search '{SEARCH}'", f"{len(found):,} lines in {took * 1000:.1f} ms"))
        rows.append(
            (
                f"explain '{SEARCH}'",
                f"{plan.segments_read} of {plan.segments_total} segment(s) read, "
                f"{plan.rows_matched:,} rows matched in {plan.seconds * 1000:.1f} ms",
            )
        )
        (ctx.out_dir / "logs" / "plan.txt").write_text(plan.render() + "\n", encoding="utf-8")
        # 2. stats by status
        by_status, _, took = _timed(store, STATS)
        truth = Counter(r.status for r in records)
        sums = Counter[int]()
        for r in records:
            sums[r.status] += r.bytes
        got = {int(row["status"]): row for row in by_status}
        _check(
            {s: row["count"] for s, row in got.items()} == dict(truth),
            f"{STATS}: counts {dict(sorted((s, r['count']) for s, r in got.items()))}",
        )
        for status, row in got.items():
            _check(
                math.isclose(row["avg(bytes)"], sums[status] / truth[status], rel_tol=1e-9),
                f"{STATS}: avg(bytes) of {status} is {row['avg(bytes)']}",
            )
        errors_5xx = sum(got[s]["count"] for s in got if int(s) >= 500)
        shown = f"{len(got)} statuses; 5xx: {errors_5xx:,} of {sum(truth.values()):,} lines"
        rows.append((f"stats by status ({took * 1000:.1f} ms)", shown))
        # 3. timechart
        chart, _, took = _timed(store, TIMECHART)
        chart.sort(key=lambda row: row["_time"])
        minutes = Counter(r.time_ms // MINUTE_MS * MINUTE_MS for r in records)
        totals = {row["_time"]: sum(v for k, v in row.items() if k != "_time") for row in chart}
        _check(
            {t: n for t, n in totals.items() if n} == dict(minutes),
            f"{TIMECHART}: per-minute totals differ from the generated lines",
        )
        errors = {
            row["_time"]: sum(v for k, v in row.items() if k != "_time" and int(k) >= 500)
            for row in chart
        }
        worst = max(errors, key=errors.__getitem__)
        rows.append(
            (
                f"'{TIMECHART}' ({took * 1000:.1f} ms)",
                f"{len(chart)} minutes; most 5xx: {errors[worst]} at minute "
                f"{(worst - START_MS) // MINUTE_MS}",
            )
        )
        figure = _timechart_figure(chart, START_MS)
        # 4. the alert
        rows += _alert_part(store, records)
    notes = [
        "Synthetic web shop traffic (trusswork logs generate): a third of the way in, an "
        f"incident makes {INCIDENT_ERROR_SHARE:.0%} of the requests fail with 500 or 503.",
        "Every answer is checked against the generator's own records; the alert is evaluated "
        "minute by minute on the data's clock, so it fires during the incident only.",
        f"The store stays at {path}, the plan of the search in {ctx.out_dir / 'logs' / 'plan.txt'}:"
        f" try 'trusswork logs query {path} \"{STATS}\"'.",
        "Ingest rates and query times are measured on a shared machine: indicative, not asserted.",
    ]
    plots = [Plot("Requests per minute by status class (timechart)", figure)]
    return SectionResult(rows=rows, plots=plots, notes=notes)
