"""``trusswork rules``: check, evaluate and explain CEL rule files.

``trusswork rules check FILE... [--json] [--strict] [--schema SCHEMA.json]``
compiles each rule file (see :func:`trusswork.rules.load_rules`) and prints
every finding, errors and warnings, as ``file:line:col: severity: message``
with the source line and a caret under it, then a summary line such as
``2 errors, 1 warning in 1 file``. A syntax error is reported the same way.
The exit status is 0 when no file has an error and 1 otherwise; with
``--strict`` a warning fails the check too. ``--json`` prints the findings
(:meth:`Diagnostic.to_dict <trusswork.rules.Diagnostic.to_dict>`) and the
counts instead.

``trusswork rules eval FILE --input EVENTS [--rule NAME] [--explain] [--json]``
evaluates the rules (or one) against each event and prints the matches:
rule, severity, rendered message and action. EVENTS is a JSON object, or
JSON lines (one object per line; a ``.jsonl`` or ``.ndjson`` file is always
read as lines), and ``-`` reads standard input. ``--explain`` adds each
rule's :class:`~trusswork.rules.Explanation`; ``--json`` prints one JSON
object a line per event, with the ``line`` the event starts on, its
``matches`` and (with ``--explain``) its ``explanations``, whatever the
input's form, so a pipeline's output has one shape. JSON numbers written
without a fraction or exponent are ints, the others doubles; a value is
converted to the type the schema declares for its input when that loses
nothing (``1.0`` for an ``int``, ``3`` for a ``double``, RFC 3339 text for
a ``timestamp``, ``"1.5s"`` for a ``duration``, inside lists and maps too).
A rule that fails at run time (division by zero, say) is an error naming
the rule and the event.

``trusswork rules show-python FILE [--rule NAME]`` prints the Python each
rule compiles to, under a ``# rule NAME`` header, for auditing.

``eval`` and ``show-python`` refuse a rule file with errors, printing every
error with its caret; ``--schema`` (on every action) declares inputs the
file itself does not, from a JSON object of names to CEL types. A missing
file, input that is not JSON, or JSON that is not an object is a one-line
error naming the file (and the line, for JSON lines).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trusswork.core.errors import InvalidInput

if TYPE_CHECKING:
    from trusswork.core.errors import ParseError
    from trusswork.rules import Diagnostic, Match, Rule, RuleSet

#: Suffixes of event files read as JSON lines whatever their content.
JSON_LINES_SUFFIXES = (".jsonl", ".ndjson")
#: What ``--input -`` is called in messages.
STDIN_NAME = "<stdin>"


def register(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="<action>", title="actions")
    actions.required = True
    check = actions.add_parser(
        "check",
        help="report every error and warning in rule files",
        description=(
            "Compile rule files and print every error and warning with its file, line, "
            "column and a caret under the source. Exit status: 0 no errors, 1 errors "
            "(with --strict, warnings too)."
        ),
    )
    check.add_argument("files", type=Path, nargs="+", metavar="FILE", help="rule files")
    check.add_argument("--json", action="store_true", help="print the findings as JSON")
    check.add_argument("--strict", action="store_true", help="fail on warnings too")
    evaluate = actions.add_parser(
        "eval",
        help="evaluate rules against JSON events and print the matches",
        description=(
            "Evaluate every rule of a file (or one) against events and print the rules "
            "that match. The events are a JSON object or JSON lines (one object a line)."
        ),
    )
    evaluate.add_argument("file", type=Path, metavar="FILE", help="the rule file")
    evaluate.add_argument(
        "--input",
        required=True,
        metavar="EVENTS",
        help="a JSON object, or JSON lines (.jsonl); - reads standard input",
    )
    evaluate.add_argument("--rule", metavar="NAME", help="evaluate only this rule")
    evaluate.add_argument(
        "--explain",
        action="store_true",
        help="also show why each rule matched or not, condition by condition",
    )
    evaluate.add_argument(
        "--json", action="store_true", help="print one JSON object per event, one a line"
    )
    show = actions.add_parser(
        "show-python",
        help="print the Python each rule compiles to",
        description="Print the generated Python of each rule under a '# rule NAME' header.",
    )
    show.add_argument("file", type=Path, metavar="FILE", help="the rule file")
    show.add_argument("--rule", metavar="NAME", help="show only this rule")
    for child in (check, evaluate, show):
        child.add_argument(
            "--schema",
            type=Path,
            metavar="SCHEMA.json",
            help='declare inputs: a JSON object of names and CEL types, like {"a": "int"}',
        )
        # As for every command: --debug is accepted after the action too.
        child.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )


def run(args: argparse.Namespace) -> int:
    schema = load_schema(args.schema)
    if args.action == "check":
        return _check(args.files, schema, as_json=args.json, strict=args.strict)
    if args.action == "eval":
        return _eval(
            args.file, schema, args.input, rule=args.rule, explain=args.explain, as_json=args.json
        )
    return _show_python(args.file, schema, rule=args.rule)


def load_schema(path: Path | None) -> dict[str, Any] | None:
    """The ``--schema`` file's declarations (``None`` without one).

    Raises
    ------
    InvalidInput
        If the file is not JSON, not a JSON object, or names a type CEL does not have.
    """
    if path is None:
        return None
    from trusswork.rules._types import parse_type

    value = _parse_json(_read_text(path), str(path))
    if not isinstance(value, dict):
        raise InvalidInput(
            f"{path}: a schema is a JSON object of names to CEL types, not {_json_kind(value)}"
        )
    for name, kind in value.items():
        parse_type(kind, where=f"{path}: {name!r}")
    return value


# ---------------------------------------------------------------- check


def check_file(path: Path, schema: dict[str, Any] | None) -> tuple[list[Diagnostic], int | None]:
    """Every finding in a rule file, in source order, and its number of rules.

    The number of rules is ``None`` when the file has errors. A syntax error
    becomes a finding like the others.
    """
    from trusswork.core.errors import ParseError
    from trusswork.rules import RuleCheckError, load_rules

    try:
        ruleset = load_rules(path, schema)
    except RuleCheckError as error:
        return _in_order(error.diagnostics), None
    except ParseError as error:
        if error.source is None or error.line is None:
            raise
        return [syntax_diagnostic(error)], None
    return _in_order(ruleset.diagnostics), len(ruleset)


def syntax_diagnostic(error: ParseError) -> Diagnostic:
    """A syntax error as a :class:`~trusswork.rules.Diagnostic` of severity ``error``."""
    from trusswork.rules import Diagnostic

    source = error.source or ""
    lines = source.split("\n")[: (error.line or 1) - 1]
    offset = sum(len(line) + 1 for line in lines) + (error.column or 1) - 1
    return Diagnostic("error", error.reason, source, offset, error.filename, error.code)


def _in_order(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    return sorted(diagnostics, key=lambda item: (item.filename or "", item.line, item.column))


def _plural(count: int, noun: str, plural: str | None = None) -> str:
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def _check(files: list[Path], schema: dict[str, Any] | None, *, as_json: bool, strict: bool) -> int:
    results = [(path, *check_file(path, schema)) for path in files]
    found = [item for _, diagnostics, _ in results for item in diagnostics]
    errors = sum(item.severity == "error" for item in found)
    warnings = len(found) - errors
    ok = errors == 0 and not (strict and warnings)
    if as_json:
        document = {
            "ok": ok,
            "strict": strict,
            "errors": errors,
            "warnings": warnings,
            "files": [
                {
                    "file": str(path),
                    "rules": rules,
                    "errors": sum(item.severity == "error" for item in diagnostics),
                    "warnings": sum(item.severity != "error" for item in diagnostics),
                }
                for path, diagnostics, rules in results
            ],
            "diagnostics": [item.to_dict() for item in found],
        }
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
        return 0 if ok else 1
    write = sys.stdout.write
    for item in found:
        write(item.render() + "\n")
    summary = (
        f"{_plural(errors, 'error')}, {_plural(warnings, 'warning')} "
        f"in {_plural(len(files), 'file')}"
    )
    if strict and warnings and not errors:
        summary += " (--strict: warnings fail)"
    write(summary + "\n")
    return 0 if ok else 1


# ---------------------------------------------------------------- eval


def _load(
    path: Path, schema: dict[str, Any] | None, rule: str | None
) -> tuple[RuleSet, list[Rule]]:
    from trusswork.rules import load_rules

    ruleset = load_rules(path, schema)
    return ruleset, [ruleset[rule]] if rule is not None else list(ruleset)


def _eval(
    path: Path,
    schema: dict[str, Any] | None,
    input_name: str,
    *,
    rule: str | None,
    explain: bool,
    as_json: bool,
) -> int:

    ruleset, selected = _load(path, schema, rule)
    if input_name == "-":
        name, text = STDIN_NAME, sys.stdin.read()
    else:
        name, text = input_name, _read_text(Path(input_name))
    as_lines = Path(input_name).suffix.lower() in JSON_LINES_SUFFIXES
    single, events = read_events(text, name, lines=as_lines)
    write = sys.stdout.write
    seen = matched = 0
    for line, raw in events:
        where = name if single else f"{name} line {line}"
        event = ruleset.coerce(raw, where=where)
        matches = evaluate_event(selected, event, where)
        explanations = [current.explain(event) for current in selected] if explain else []
        seen += 1
        matched += len(matches)
        if as_json:
            # One line per event whatever the input, so a pipeline's output has one shape.
            document: dict[str, Any] = {"line": line}
            document["matches"] = [match.to_dict() for match in matches]
            if explain:
                document["explanations"] = [item.to_dict() for item in explanations]
            write(json.dumps(document) + "\n")
            continue
        prefix = "" if single else f"line {line}: "
        for match in matches:
            write(prefix + describe_match(match) + "\n")
        for explanation in explanations:
            write(prefix + str(explanation) + "\n")
    if not as_json:
        write(
            f"{_plural(matched, 'match', 'matches')} in "
            f"{_plural(seen, 'event')} ({_plural(len(selected), 'rule')})\n"
        )
    return 0


def evaluate_event(rules: list[Rule], event: dict[str, Any], where: str) -> list[Match]:
    """The rules of ``rules`` that match ``event``, in order, as matches.

    Raises
    ------
    InvalidInput
        When a rule fails at run time; the message names the rule and ``where``.
    """
    from trusswork.rules import EvaluationError, Match

    matches: list[Match] = []
    for rule in rules:
        try:
            hit = rule.evaluate(event)
        except EvaluationError as error:
            raise InvalidInput(f"rule {rule.name!r} failed on {where}: {error.message}") from None
        if hit:
            message = rule.message(event)
            matches.append(Match(rule.name, rule.severity, rule.tags, message, rule.action))
    return matches


def describe_match(match: Match) -> str:
    """One match as ``eval`` prints it: ``rule [severity] message (action: name)``."""
    text = f"{match.rule} [{match.severity}]"
    if match.message is not None:
        text += f" {match.message}"
    if match.action is not None:
        text += f" (action: {match.action})"
    return text


def read_events(
    text: str, name: str, *, lines: bool
) -> tuple[bool, Iterator[tuple[int, dict[str, Any]]]]:
    """The events in ``text``: whether it is one JSON object, and ``(line, event)`` pairs.

    Text that is one JSON value is one event (unless ``lines`` insists on JSON
    lines); text with several values is read as JSON lines, blank lines skipped.

    Raises
    ------
    InvalidInput
        For text that is empty, not JSON, or holds a value that is not an object
        (JSON lines raise when the bad line is reached).
    """
    if not text.strip():
        raise InvalidInput(f"{name}: no events: expected a JSON object or JSON lines")
    if not lines:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            if error.msg != "Extra data":
                raise InvalidInput(
                    f"{name}: not JSON: {error.msg} at line {error.lineno}, column {error.colno}"
                ) from None
        else:
            if not isinstance(value, dict):
                raise InvalidInput(f"{name}: an event is a JSON object, not {_json_kind(value)}")
            start = text[: len(text) - len(text.lstrip())].count("\n") + 1
            return True, iter([(start, value)])
    return False, _json_lines(text, name)


def _json_lines(text: str, name: str) -> Iterator[tuple[int, dict[str, Any]]]:
    # Not splitlines(): JSON strings may hold U+2028 and the like, which it splits on.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            raise InvalidInput(
                f"{name} line {number}: not JSON: {error.msg} at column {error.colno}"
            ) from None
        if not isinstance(value, dict):
            raise InvalidInput(
                f"{name} line {number}: an event is a JSON object, not {_json_kind(value)}"
            )
        yield number, value


# ---------------------------------------------------------------- show-python


def _show_python(path: Path, schema: dict[str, Any] | None, *, rule: str | None) -> int:
    _, selected = _load(path, schema, rule)
    write = sys.stdout.write
    for index, current in enumerate(selected):
        if index:
            write("\n")
        write(f"# rule {current.name}\n{current.python_source().rstrip()}\n")
    return 0


# ---------------------------------------------------------------- helpers


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise InvalidInput(
            f"{path}: not UTF-8 text ({error.reason} at byte {error.start})"
        ) from None


def _parse_json(text: str, name: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInput(
            f"{name}: not JSON: {error.msg} at line {error.lineno}, column {error.colno}"
        ) from None


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "null" if value is None else "an object"
