"""The syntax tree of the log query language (a pipe language in the spirit of SPL).

A query is a *search* (what to read from the index: terms, phrases, field
filters, boolean operators and a time range) followed by ``|``-separated
*commands* that transform the rows it yields::

    error status>=500 host=web-* earliest=-15m | stats count, avg(bytes) by host

:func:`trusswork.logs.parse_query` builds a :class:`Query`; the store pushes
:attr:`Query.search` and the time range into the index and runs
:attr:`Query.commands` over the matched rows. Every node keeps the character
offset (``at``) where it starts in the query text, so later errors (an
unknown field in ``stats``, a bad regex in ``rex``) can point at it.

Rows are dicts of fields. Every row read from the store has ``_time`` (Unix
milliseconds: the event's timestamp, else the time it was ingested),
``_raw`` (the line), ``source`` and ``sourcetype`` (the format it was parsed
as), and the fields its parser extracted; commands add, drop and rename
fields.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "FUNCTIONS",
    "AbsoluteTime",
    "Agg",
    "And",
    "Binary",
    "Call",
    "Command",
    "Dedup",
    "Eval",
    "Expr",
    "FieldCompare",
    "FieldRef",
    "Fields",
    "Head",
    "Literal_",
    "MatchAll",
    "Not",
    "Or",
    "Patterns",
    "Phrase",
    "Query",
    "Rare",
    "RelativeTime",
    "Rex",
    "Search",
    "SearchExpr",
    "Sort",
    "SortKey",
    "Stats",
    "Table",
    "Tail",
    "Term",
    "TimeBound",
    "Timechart",
    "Top",
    "Unary",
    "Where",
    "number_text",
    "parse_number",
]

CompareOp = Literal["=", "!=", "<", "<=", ">", ">="]


# The functions of expressions: name -> (fewest, most) arguments (None: any
# number). The parser checks calls against it; the evaluator implements each.
FUNCTIONS: dict[str, tuple[int, int | None]] = {
    "if": (3, 3),
    "case": (2, None),
    "coalesce": (1, None),
    "null": (0, 0),
    "isnull": (1, 1),
    "isnotnull": (1, 1),
    "len": (1, 1),
    "lower": (1, 1),
    "upper": (1, 1),
    "substr": (2, 3),
    "trim": (1, 2),
    "ltrim": (1, 2),
    "rtrim": (1, 2),
    "tostring": (1, 1),
    "tonumber": (1, 2),
    "round": (1, 2),
    "abs": (1, 1),
    "floor": (1, 1),
    "ceil": (1, 1),
    "sqrt": (1, 1),
    "pow": (2, 2),
    "log": (1, 2),
    "ln": (1, 1),
    "exp": (1, 1),
    "like": (2, 2),
    "match": (2, 2),
    "replace": (3, 3),
    "strftime": (2, 2),
    "now": (0, 0),
    "min": (1, None),
    "max": (1, None),
}

_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def parse_number(text: str) -> float | None:
    """The number ``text`` spells (``42``, ``-0.5``, ``1e3``), or None.

    Stricter than :func:`float`: no blanks, ``_``, ``inf`` or ``nan``. The
    store indexes a text field value as a number too exactly when this
    gives one, and row-level comparisons use the same rule.
    """
    if _NUMBER.fullmatch(text):
        number = float(text)
        if math.isfinite(number):
            return number
    return None


def number_text(value: float) -> str:
    """The text a number is indexed and compared as: ``500`` for 500.0, else ``repr``.

    The index stores every field value as text; the row-level search and
    the query language use this same text for numbers, so ``status="500"``
    and ``status=500`` agree on every row.
    """
    if math.isfinite(value) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


# ----------------------------------------------------------------- search


@dataclass(frozen=True)
class Term:
    """A bare word: matches lines holding it as a token (case-insensitive).

    ``*`` inside (``err*``, ``*timeout``) makes it a wildcard over the
    index's terms.
    """

    text: str
    at: int = 0


@dataclass(frozen=True)
class Phrase:
    """A double-quoted phrase: its tokens adjacent and in order."""

    text: str
    at: int = 0


@dataclass(frozen=True)
class FieldCompare:
    """``field op value``: ``status>=500``, ``host=web-*``, ``level!=debug``.

    ``value`` is a number when the query wrote one unquoted; ``*`` in a
    string value (unquoted) is a wildcard for ``=`` and ``!=``. ``field=*``
    means "the field is present". ``_time`` is not allowed here (use
    ``earliest``/``latest``).
    """

    field: str
    op: CompareOp
    value: str | float
    at: int = 0


@dataclass(frozen=True)
class And:
    """All parts match (juxtaposition or ``AND``)."""

    parts: tuple[SearchExpr, ...]
    at: int = 0


@dataclass(frozen=True)
class Or:
    """Any part matches (``OR``)."""

    parts: tuple[SearchExpr, ...]
    at: int = 0


@dataclass(frozen=True)
class Not:
    """The part does not match (``NOT`` or a leading ``-``)."""

    part: SearchExpr
    at: int = 0


@dataclass(frozen=True)
class MatchAll:
    """Every line (an empty search or ``*``)."""

    at: int = 0


SearchExpr = Term | Phrase | FieldCompare | And | Or | Not | MatchAll


@dataclass(frozen=True)
class RelativeTime:
    """``-15m``, ``-2h@h``, ``now``: ``now + offset_ms``, then snapped down.

    ``snap`` is a unit (``s``, ``m``, ``h``, ``d``, ``w``) to round the
    result down to, or None.
    """

    offset_ms: int
    snap: str | None = None
    at: int = 0


@dataclass(frozen=True)
class AbsoluteTime:
    """An absolute instant: ``earliest=0``, ``earliest=2024-05-01T10:00:00Z``,
    ``latest=1714557600`` (epoch seconds)."""

    epoch_ms: int
    at: int = 0


TimeBound = RelativeTime | AbsoluteTime

# ------------------------------------------------------------- expressions


@dataclass(frozen=True)
class Literal_:
    """A string, number, boolean or ``null`` literal."""

    value: str | float | bool | None
    at: int = 0


@dataclass(frozen=True)
class FieldRef:
    """A field's value in the current row (None when the row lacks it)."""

    name: str
    at: int = 0


@dataclass(frozen=True)
class Unary:
    """``-x`` or ``NOT x`` / ``!x``."""

    op: Literal["-", "not"]
    operand: Expr
    at: int = 0


@dataclass(frozen=True)
class Binary:
    """Arithmetic (``+ - * / %``; ``+`` also joins strings, as does ``.``),
    comparison (``= == != < <= > >=``) and logic (``and``/``&&``,
    ``or``/``||``)."""

    op: str
    left: Expr
    right: Expr
    at: int = 0


@dataclass(frozen=True)
class Call:
    """A function call: ``if(c, a, b)``, ``lower(x)``, ``round(x, 2)``, ..."""

    name: str
    args: tuple[Expr, ...]
    at: int = 0


Expr = Literal_ | FieldRef | Unary | Binary | Call

# ---------------------------------------------------------------- commands


@dataclass(frozen=True)
class Search:
    """``| search <search expression>``: keep rows that match it."""

    expr: SearchExpr
    at: int = 0


@dataclass(frozen=True)
class Where:
    """``| where <expression>``: keep rows where it is true."""

    expr: Expr
    at: int = 0


@dataclass(frozen=True)
class Eval:
    """``| eval a=<expr>, b=<expr>``: set fields, left to right."""

    assignments: tuple[tuple[str, Expr], ...]
    at: int = 0


@dataclass(frozen=True)
class Rex:
    """``| rex [field=<f>] "<regex with named groups>"``: extract fields."""

    pattern: str
    field: str = "_raw"
    at: int = 0


@dataclass(frozen=True)
class Fields:
    """``| fields a, b`` keeps only these; ``| fields - a, b`` drops them."""

    names: tuple[str, ...]
    exclude: bool = False
    at: int = 0


@dataclass(frozen=True)
class Table:
    """``| table a, b``: these columns, in this order."""

    names: tuple[str, ...]
    at: int = 0


@dataclass(frozen=True)
class SortKey:
    field: str
    descending: bool = False


@dataclass(frozen=True)
class Sort:
    """``| sort [N] -count, host``: ``-`` for descending; nulls last."""

    keys: tuple[SortKey, ...]
    limit: int | None = None
    at: int = 0


@dataclass(frozen=True)
class Head:
    """``| head [N]`` (default 10): the first N rows."""

    count: int = 10
    at: int = 0


@dataclass(frozen=True)
class Tail:
    """``| tail [N]`` (default 10): the last N rows."""

    count: int = 10
    at: int = 0


@dataclass(frozen=True)
class Dedup:
    """``| dedup [N] a, b``: the first N rows (default 1) of each combination."""

    fields: tuple[str, ...]
    keep: int = 1
    at: int = 0


@dataclass(frozen=True)
class Agg:
    """One aggregation in ``stats`` or ``timechart``.

    ``func`` is one of ``count``, ``sum``, ``avg``, ``min``, ``max``, ``dc``
    (distinct count), ``values`` (sorted distinct values), ``median``,
    ``perc`` (``p95(x)``, ``perc99(x)``: ``percentile`` holds 95 / 99),
    ``stdev``, ``first``, ``last``. ``field`` is None only for a bare
    ``count``. The output column is ``alias`` if given, else ``count``,
    ``count(f)``, ``avg(f)``, ``p95(f)`` as written.
    """

    func: str
    field: str | None
    name: str
    percentile: float | None = None
    at: int = 0


@dataclass(frozen=True)
class Stats:
    """``| stats count, avg(bytes) as mean by host, status``.

    Groups in first-seen order are then sorted by the ``by`` fields; with no
    ``by``, one row (also over no input: ``count`` 0).
    """

    aggs: tuple[Agg, ...]
    by: tuple[str, ...] = ()
    at: int = 0


@dataclass(frozen=True)
class Timechart:
    """``| timechart span=1m count by status``: one row per time bucket.

    Output: ``_time`` (bucket start, ms) then one column per aggregation, or
    with ``by``, one column per value of the by-field (the ``limit`` most
    frequent, default 10, the rest summed into ``OTHER``).
    """

    span_ms: int
    aggs: tuple[Agg, ...]
    by: str | None = None
    limit: int = 10
    at: int = 0


@dataclass(frozen=True)
class Top:
    """``| top [limit=N] a, b [by c]``: the most common values, with
    ``count`` and ``percent`` columns."""

    fields: tuple[str, ...]
    limit: int = 10
    by: tuple[str, ...] = ()
    at: int = 0


@dataclass(frozen=True)
class Rare:
    """``| rare [limit=N] a``: the least common values (as :class:`Top`)."""

    fields: tuple[str, ...]
    limit: int = 10
    by: tuple[str, ...] = ()
    at: int = 0


@dataclass(frozen=True)
class Patterns:
    """``| patterns [field=_raw] [limit=N]``: group rows by log template.

    Output columns ``pattern``, ``count``, ``sample`` (one matching value),
    most frequent first.
    """

    field: str = "_raw"
    limit: int | None = None
    at: int = 0


Command = (
    Search
    | Where
    | Eval
    | Rex
    | Fields
    | Table
    | Sort
    | Head
    | Tail
    | Dedup
    | Stats
    | Timechart
    | Top
    | Rare
    | Patterns
)


@dataclass(frozen=True)
class Query:
    """A parsed query: the search, its time range and the commands after it.

    ``earliest`` / ``latest`` are None when the query gives none (all time).
    ``text`` is the query as written.
    """

    search: SearchExpr
    earliest: TimeBound | None = None
    latest: TimeBound | None = None
    commands: tuple[Command, ...] = field(default_factory=tuple)
    text: str = ""
