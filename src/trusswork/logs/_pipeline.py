"""Running the commands of a log query over the rows its search matched.

The store reads the matched lines out of its index as a :class:`pyarrow.Table`
(``_time`` in Unix ms, ``_raw``, ``source``, ``sourcetype`` and one column per
extracted field, newest first) and :func:`run_commands` runs the ``|``
commands of :mod:`trusswork.logs._ast` over it, in order.
:func:`match_rows` is the row-level meaning of a search expression, the oracle
the index's own evaluation is tested against; :func:`required_fields` tells
the store which columns a pipeline can read, so it loads only those.

This module runs the commands; the work is done next to it: the search in
:mod:`~trusswork.logs._match`, ``eval``/``where`` expressions in
:mod:`~trusswork.logs._expressions`, ordering, grouping and aggregating in
:mod:`~trusswork.logs._aggregate`, over the column helpers of
:mod:`~trusswork.logs._columns`. The semantics below hold for all of them.

Semantics
---------
Search (:func:`match_rows`)
    ``Term``: the text's tokens (:func:`trusswork.search.tokenize`); with a
    ``*`` the lower-cased text is a pattern (``*`` any run of characters,
    nothing else special) that must match a whole token of the line; one
    token must be among the line's tokens; several are a phrase; none match
    nothing. ``Phrase``: its tokens at adjacent positions. ``FieldCompare``:
    a row lacking the field never matches (not even ``!=``). A string value
    with ``*`` (``=``/``!=``) is a case-sensitive pattern over the value's
    text; another string value compares texts (ints as ``str(int)``,
    integral floats as ``500``, other floats as ``repr``, booleans as
    ``true``/``false``). A number compares numerically with numbers and with
    strings that spell one (:func:`~trusswork.logs._ast.parse_number`: no
    blanks, ``_``, ``inf`` or ``nan``; both sides as float64); with other
    values ``=``/``!=`` compare texts and ``< <= > >=`` never match. An
    ordering against a string value is numeric when both sides parse as
    numbers, else by code points. ``NOT`` includes rows lacking the field.
Expressions (``eval``, ``where``)
    Columns are typed (int64, float64, bool, string); a field no row has is
    all null. An integral number literal is an int64. Nulls propagate: null
    in arithmetic, concatenation, comparison or a function gives null, and
    ``where`` keeps only rows where the condition is true. ``and``/``or``
    use three-valued logic. ``+ - *`` keep int64 for two ints (overflow is
    an error) and give float64 otherwise; ``/`` always gives float64, ``%``
    takes the sign of the dividend; dividing by zero gives null. Strings are
    never converted to numbers implicitly: arithmetic on a string or boolean
    is an error that points at ``tonumber()``; ``+`` on two strings and
    ``.`` on anything join texts. ``=``/``!=`` between a number and a string
    compare texts; ordering them is an error. Branches of ``if``/``case``/
    ``coalesce``/``min``/``max`` of different types become numbers (int and
    float) or, failing that, texts.
Functions
    ``if case coalesce null isnull isnotnull len lower upper substr trim ltrim
    rtrim tostring tonumber round abs floor ceil sqrt pow log ln exp like
    match replace strftime now min max``. ``substr`` is 1-based (a negative
    start counts from the end); ``log(x, base=10)``; ``sqrt``/``log`` of
    numbers out of their domain give null; ``tonumber`` gives int64 when
    every value is an integer, else float64 (text it cannot read is null);
    ``like``/``match``/``replace``/``strftime`` take literal patterns and
    formats (``match``/``replace`` use Python regular expressions);
    ``now()`` is ``now_ms`` in milliseconds, like ``_time``; ``strftime``
    takes milliseconds and formats in UTC. ``split`` (multivalue fields) is
    not supported.
Commands
    ``sort``: nulls last, stable; in a string column the values that parse
    as numbers sort numerically before the others; descending reverses
    everything but the nulls. ``dedup`` keeps the first rows in input order
    and drops rows lacking one of its fields; ``tail`` keeps input order.
    ``stats`` drops rows lacking a ``by`` field and sorts groups by the
    ``by`` values (as ``sort``); without ``by`` it gives one row, over no
    rows ``count``/``dc`` 0 and other aggregations null. ``sum``/``avg``/
    ``median``/``perc``/``stdev`` read numbers (strings that parse as
    numbers count, other values are ignored); ``min``/``max`` of strings
    compare texts; percentiles are exact with linear interpolation (numpy's
    default); ``stdev`` is the sample deviation; ``values`` is the distinct
    texts, sorted; ``first``/``last`` are the first/last non-null values in
    input order (newest first). ``timechart`` buckets ``_time`` down to multiples of the
    span and fills the buckets between the first and last with ``count``/
    ``dc`` 0 and other aggregations null; with ``by`` the series are the
    ``limit`` values (0: all) with the largest total of the first
    aggregation, in ``sort`` order of their texts, and the rest aggregate
    as ``OTHER`` (last); rows lacking the by-field are not counted.
    ``top``/``rare`` count combinations of values of rows having all the
    fields, ``percent`` relative to those rows (per ``by`` group).
    ``patterns`` mines :class:`~trusswork.logs.PatternMiner` templates in
    input order; ``sample`` is the first value seen for each template.

Errors
------
Every problem raises :class:`~trusswork.core.errors.InvalidInput` naming the
command and the offset of the node at fault.

Complexity
----------
``where``/``eval`` arithmetic and comparisons, ``stats``, ``sort``,
``dedup`` and field filters of the search run in Arrow kernels; conversions
between texts and numbers, regular expressions and the tokenizer-based
terms run in Python once per distinct value (terms: per row whose folded
text holds the term), so cost follows the number of distinct values.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from trusswork.core.errors import InvalidInput
from trusswork.logs._aggregate import _dedup, _patterns, _sort, _stats, _timechart, _top
from trusswork.logs._ast import (
    And,
    Binary,
    Call,
    Command,
    Dedup,
    Eval,
    Expr,
    FieldCompare,
    FieldRef,
    Fields,
    Head,
    Not,
    Or,
    Patterns,
    Phrase,
    Rare,
    Rex,
    Search,
    SearchExpr,
    Sort,
    Stats,
    Table,
    Tail,
    Term,
    Timechart,
    Top,
    Unary,
    Where,
)
from trusswork.logs._columns import (
    _RUNTIME_ERRORS,
    _as_text,
    _column_or_nulls,
    _compile_regex,
    _kind,
    _set_column,
    _type_name,
    _where,
    _wildcard,
)
from trusswork.logs._expressions import _Evaluator, evaluate
from trusswork.logs._match import _Matcher, match_rows

__all__ = ["evaluate", "match_rows", "required_fields", "run_commands"]

_COMMAND_NAMES: dict[type, str] = {
    Search: "search",
    Where: "where",
    Eval: "eval",
    Rex: "rex",
    Fields: "fields",
    Table: "table",
    Sort: "sort",
    Head: "head",
    Tail: "tail",
    Dedup: "dedup",
    Stats: "stats",
    Timechart: "timechart",
    Top: "top",
    Rare: "rare",
    Patterns: "patterns",
}


# ------------------------------------------------------------ projection


def _expand(table: Any, names: Iterable[str]) -> list[str]:
    """``names`` with ``*`` patterns replaced by the matching columns, in table order."""
    out: list[str] = []
    for name in names:
        if "*" in name:
            regex = _wildcard(name)
            out += [c for c in table.column_names if regex.fullmatch(c) and c not in out]
        elif name not in out:
            out.append(name)
    return out


def _fields(table: Any, command: Fields) -> Any:
    names = _expand(table, command.names)
    if command.exclude:
        return table.drop_columns([n for n in names if n in table.column_names])
    return table.select([n for n in names if n in table.column_names])


def _table(table: Any, command: Table) -> Any:
    names = _expand(table, command.names)
    return pa.table(
        {n: table.column(n) if n in table.column_names else pa.nulls(table.num_rows) for n in names}
    )


# ---------------------------------------------------------------- driver


def _run(table: Any, command: Command, now_ms: int) -> Any:
    if isinstance(command, Search):
        return table.filter(pa.array(_Matcher(table).match(command.expr)))
    if isinstance(command, Where):
        condition = _Evaluator(table, now_ms).eval(command.expr)
        kind = _kind(condition.type)
        if kind == "null":
            return table.slice(0, 0)
        if kind != "bool":
            raise InvalidInput(
                f"the condition is a {_type_name(kind)}, not true/false{_where(command.expr.at)}"
            )
        return table.filter(condition.fill_null(False))
    if isinstance(command, Eval):
        for name, expr in command.assignments:
            table = _set_column(table, name, _Evaluator(table, now_ms).eval(expr))
        return table
    if isinstance(command, Rex):
        return _rex(table, command)
    if isinstance(command, Fields):
        return _fields(table, command)
    if isinstance(command, Table):
        return _table(table, command)
    if isinstance(command, Sort):
        if command.limit is not None and command.limit < 0:
            raise InvalidInput(f"sort limit must be >= 0, got {command.limit}")
        return _sort(table, command.keys, command.limit)
    if isinstance(command, Head | Tail):
        if command.count < 0:
            raise InvalidInput(f"the row count must be >= 0, got {command.count}")
        if isinstance(command, Head):
            # min(): pyarrow does not clamp a slice of a table without columns.
            return table.slice(0, min(command.count, table.num_rows))
        return table.slice(max(table.num_rows - command.count, 0))
    if isinstance(command, Dedup):
        return _dedup(table, command.fields, command.keep, command.at)
    if isinstance(command, Stats):
        return _stats(table, command.aggs, command.by, command.at)
    if isinstance(command, Timechart):
        return _timechart(table, command)
    if isinstance(command, Top | Rare):
        return _top(table, command)
    if isinstance(command, Patterns):
        return _patterns(table, command)
    raise InvalidInput(f"not a command: {type(command).__name__}")


def _rex(table: Any, command: Rex) -> Any:
    regex = _compile_regex(command.pattern, command.at)
    names = list(regex.groupindex)
    if not names:
        raise InvalidInput(
            f"rex needs a named group such as (?<name>...) in {command.pattern!r}"
            f"{_where(command.at)}"
        )
    text = _as_text(_column_or_nulls(table, command.field))
    if len(text) == text.null_count:
        extracted = {name: pa.nulls(len(text), pa.string()) for name in names}
    else:
        encoded = pc.dictionary_encode(text)
        matches = [regex.search(v) for v in encoded.dictionary.to_pylist()]
        extracted = {
            name: pa.array(
                [m.group(name) if m is not None else None for m in matches], pa.string()
            ).take(encoded.indices)
            for name in names
        }
    for name, values in extracted.items():
        table = _set_column(table, name, values)
    return table


def run_commands(table: pa.Table, commands: Sequence[Command], *, now_ms: int) -> pa.Table:
    """Run the ``|`` commands of a query over the rows its search matched.

    Parameters
    ----------
    table:
        The matched rows, newest first: ``_time`` (Unix ms), ``_raw``,
        ``source``, ``sourcetype`` and one column per extracted field.
    commands:
        The commands, run in order.
    now_ms:
        The query's "now" in Unix milliseconds (``now()`` in expressions).

    Returns
    -------
    pyarrow.Table
        The rows (or the aggregated table) the last command produced.

    Raises
    ------
    InvalidInput
        A command cannot run on these rows: a type error in an expression,
        an unknown function or aggregation, a bad regular expression, a bad
        argument. The message names the command and the offset.
    """
    for command in commands:
        name = _COMMAND_NAMES.get(type(command), type(command).__name__)
        where = _where(getattr(command, "at", 0))
        try:
            table = _run(table, command, now_ms)
        except InvalidInput as exc:
            raise InvalidInput(f"| {name}{where}: {exc.message}") from exc
        except _RUNTIME_ERRORS as exc:
            raise InvalidInput(f"| {name}{where}: {exc}") from exc
    return table


# -------------------------------------------------------- required fields


def _expr_fields(expr: Expr) -> set[str]:
    if isinstance(expr, FieldRef):
        return {expr.name}
    if isinstance(expr, Unary):
        return _expr_fields(expr.operand)
    if isinstance(expr, Binary):
        return _expr_fields(expr.left) | _expr_fields(expr.right)
    if isinstance(expr, Call):
        return set().union(*(_expr_fields(a) for a in expr.args))
    return set()


def _search_fields(expr: SearchExpr) -> set[str]:
    if isinstance(expr, Term | Phrase):
        return {"_raw"}
    if isinstance(expr, FieldCompare):
        return {expr.field}
    if isinstance(expr, And | Or):
        return set().union(*(_search_fields(p) for p in expr.parts))
    if isinstance(expr, Not):
        return _search_fields(expr.part)
    return set()


def required_fields(commands: Sequence[Command]) -> frozenset[str] | None:
    """The columns the store must read for ``commands``, or None for all of them.

    The commands up to the first one that reduces the columns (``stats``,
    ``timechart``, ``top``, ``rare``, ``patterns``, ``table``, ``fields``
    without ``-``) can only see the fields they name, plus ``_raw`` for
    terms, phrases, ``rex`` and ``patterns`` on it, and ``_time`` for
    ``timechart``. Without such a command the user sees every field, and a
    ``*`` pattern in ``table``/``fields`` names fields unknown in advance:
    both give None.
    """
    needed: set[str] = set()
    for command in commands:
        if isinstance(command, Search):
            needed |= _search_fields(command.expr)
        elif isinstance(command, Where):
            needed |= _expr_fields(command.expr)
        elif isinstance(command, Eval):
            for _, expr in command.assignments:
                needed |= _expr_fields(expr)
        elif isinstance(command, Rex):
            needed.add(command.field)
        elif isinstance(command, Sort):
            needed |= {key.field for key in command.keys}
        elif isinstance(command, Dedup):
            needed |= set(command.fields)
        elif isinstance(command, Fields | Table):
            if isinstance(command, Fields) and command.exclude:
                continue
            if any("*" in name for name in command.names):
                return None
            return frozenset(needed | set(command.names))
        elif isinstance(command, Stats | Timechart):
            needed |= {agg.field for agg in command.aggs if agg.field is not None}
            if isinstance(command, Stats):
                needed |= set(command.by)
            else:
                needed.add("_time")
                if command.by is not None:
                    needed.add(command.by)
            return frozenset(needed)
        elif isinstance(command, Top | Rare):
            return frozenset(needed | set(command.fields) | set(command.by))
        elif isinstance(command, Patterns):
            return frozenset(needed | {command.field})
    return None
