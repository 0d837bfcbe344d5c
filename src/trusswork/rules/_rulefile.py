"""Rule files: a schema, shared constants and sub-expressions, and named rules.

The format (grammar in :mod:`._grammar`)::

    // checkout.rules
    schema {
      status: int
      latency_ms: double
      path: string
    }
    import "common.rules"            // its schema, consts and lets join this file's
    const SLOW_MS = 250.0            // a constant expression, folded at compile time
    let is_error = status >= 500     // a named sub-expression, inlined where used

    rule slow_api {
      when: latency_ms > SLOW_MS && path.startsWith("/api") && !is_error
      severity: warning              // debug, info, warning, error or critical
      tags: ["latency", "api"]
      message: "slow request to {path}: {latency_ms} ms"
      action: notify
    }

Checking collects every error of every item (with file, line, column and a
caret) before giving up, and keeps the warnings on the :class:`RuleSet`.
Imported files may hold schema, ``const``, ``let`` and ``import`` items but
no rules; import cycles and conflicting declarations are errors.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trusswork.core.errors import InvalidInput, ParseError
from trusswork.rules import _runtime
from trusswork.rules._ast import (
    Binary,
    Call,
    Comprehension,
    Conditional,
    Ident,
    Index,
    ListExpr,
    Literal,
    MapExpr,
    Node,
    Select,
    Unary,
    walk,
)
from trusswork.rules._checker import Checked, check
from trusswork.rules._codegen import generate
from trusswork.rules._coerce import coerce_event
from trusswork.rules._diagnostics import Diagnostic, RuleCheckError
from trusswork.rules._explain import Explainer, Explanation
from trusswork.rules._expression import parse_declarations
from trusswork.rules._grammar import RESERVED
from trusswork.rules._limits import final_checks
from trusswork.rules._parser import Item, parse_expression, parse_file
from trusswork.rules._rule import SEVERITIES, Rule
from trusswork.rules._types import Type, parse_type
from trusswork.rules._values import EvaluationError

__all__ = ["Match", "RuleSet", "compile_rules", "load_rules"]

_FIELDS = ("when", "severity", "tags", "message", "action")
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")


@dataclass(frozen=True, slots=True)
class Match:
    """A rule that matched an event: its metadata and rendered message."""

    rule: str
    severity: str
    tags: tuple[str, ...]
    message: str | None
    action: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "severity": self.severity,
            "tags": list(self.tags),
            "message": self.message,
            "action": self.action,
        }


class RuleSet:
    """The rules of a file, in file order; evaluate them all against one event.

    Attributes
    ----------
    rules:
        The compiled :class:`Rule` objects.
    schema:
        The declared inputs and their types (as CEL type names).
    diagnostics:
        Warnings found while checking (errors raise :class:`RuleCheckError`).
    """

    def __init__(
        self, rules: list[Rule], schema: dict[str, Type], diagnostics: list[Diagnostic]
    ) -> None:
        self.rules = rules
        self.schema = {name: str(kind) for name, kind in schema.items()}
        self._types = dict(schema)
        self.diagnostics = diagnostics
        self._by_name = {rule.name: rule for rule in rules}

    def evaluate(self, event: Mapping[str, Any], *, errors: str = "raise") -> list[Match]:
        """The rules that match ``event``, in file order.

        Parameters
        ----------
        event:
            Input variables by name.
        errors:
            ``"raise"`` (default) lets a rule's :class:`EvaluationError` propagate;
            ``"skip"`` treats a rule that errs as not matching.
        """
        if errors not in ("raise", "skip"):
            raise InvalidInput(f"errors must be 'raise' or 'skip', not {errors!r}")
        matched: list[Match] = []
        for rule in self.rules:
            try:
                hit = rule.evaluate(event)
            except EvaluationError:
                if errors == "raise":
                    raise
                continue
            if hit:
                matched.append(
                    Match(rule.name, rule.severity, rule.tags, rule.message(event), rule.action)
                )
        return matched

    def coerce(self, event: Mapping[str, Any], *, where: str = "event") -> dict[str, Any]:
        """``event`` (decoded JSON, say) with each input converted to its declared type.

        Integral JSON numbers become ``int`` or ``UInt`` inputs, numbers ``double``
        ones, RFC 3339 and Go duration text timestamps and durations, inside lists
        and maps too; undeclared names pass through.

        Raises
        ------
        InvalidInput
            Naming ``where`` and the input, for a value that cannot be its
            declared type without loss (``1.5`` for an ``int``).
        """
        return coerce_event(event, self._types, where)

    def explain(self, event: Mapping[str, Any]) -> list[Explanation]:
        """One :class:`Explanation` per rule, in file order."""
        return [rule.explain(event) for rule in self.rules]

    def __getitem__(self, name: str) -> Rule:
        try:
            return self._by_name[name]
        except KeyError:
            raise InvalidInput(f"no rule named {name!r}; rules: {sorted(self._by_name)}") from None

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def __repr__(self) -> str:
        return f"RuleSet({[rule.name for rule in self.rules]!r})"


class _Unit:
    """One parsed file: its text, name and items."""

    def __init__(self, source: str, filename: str | None, items: list[Item]) -> None:
        self.source = source
        self.filename = filename
        self.items = items


class _Compiler:
    def __init__(self, schema: dict[str, Type], loader: Callable[[str, str | None], _Unit]) -> None:
        self.schema = dict(schema)
        self.schema_origin: dict[str, str] = {name: "the schema argument" for name in schema}
        self.loader = loader
        self.diagnostics: list[Diagnostic] = []
        self.constants: dict[str, tuple[Type, Any]] = {}
        self.lets: dict[str, Node] = {}
        self.labels: dict[int, str] = {}
        self.origins: dict[int, tuple[str, str | None]] = {}
        self.loading: list[str] = []
        self.loaded: set[str] = set()

    def report(self, unit: _Unit, offset: int, message: str, *, warning: bool = False) -> None:
        self.diagnostics.append(
            Diagnostic(
                "warning" if warning else "error",
                message,
                unit.source,
                offset,
                unit.filename,
                "shadowed" if warning else "rule-file",
            )
        )

    @property
    def failed(self) -> bool:
        return any(item.severity == "error" for item in self.diagnostics)

    # -- shared items ------------------------------------------------------------
    def shared(self, unit: _Unit, *, imported: bool) -> list[Item]:
        rules: list[Item] = []
        for item in unit.items:
            if item.kind == "schema":
                for decl in item.value:
                    self.declare(unit, decl)
            elif item.kind == "import":
                self.import_(unit, item)
            elif item.kind == "const":
                self.const(unit, item)
            elif item.kind == "let":
                self.let(unit, item)
            elif imported:
                self.report(unit, item.offset, "an imported file may not define rules")
            else:
                rules.append(item)
        return rules

    def declare(self, unit: _Unit, decl: Item) -> None:
        try:
            kind = parse_type(decl.value, where=f"schema entry {decl.name!r}")
        except InvalidInput as error:
            self.report(unit, decl.offset, str(error))
            return
        known = self.schema.get(decl.name)
        if known is not None and known != kind:
            self.report(
                unit,
                decl.offset,
                f"'{decl.name}' is declared {kind} here but {known} in "
                f"{self.schema_origin[decl.name]}",
            )
            return
        self.schema[decl.name] = kind
        self.schema_origin[decl.name] = unit.filename or "this file"

    def import_(self, unit: _Unit, item: Item) -> None:
        try:
            imported = self.loader(item.name, unit.filename)
        except UnicodeDecodeError as error:
            reason = f"not UTF-8 text ({error.reason} at byte {error.start})"
            self.report(unit, item.offset, f"cannot import {item.name!r}: {reason}")
            return
        except (OSError, InvalidInput) as error:
            self.report(unit, item.offset, f"cannot import {item.name!r}: {error}")
            return
        key = imported.filename or item.name
        if key in self.loading:
            chain = " -> ".join([*self.loading, key])
            self.report(unit, item.offset, f"import cycle: {chain}")
            return
        if key in self.loaded:
            return
        self.loading.append(key)
        try:
            self.shared(imported, imported=True)
        finally:
            self.loading.pop()
            self.loaded.add(key)

    def taken(self, unit: _Unit, item: Item) -> bool:
        if item.name in self.constants or item.name in self.lets:
            self.report(unit, item.offset, f"'{item.name}' is already defined")
            return True
        if item.name in self.schema:
            self.report(
                unit, item.offset, f"'{item.name}' shadows the input of the same name", warning=True
            )
        return False

    def const(self, unit: _Unit, item: Item) -> None:
        if self.taken(unit, item):
            return
        tree = self.inline(unit, item.value, set())
        checked = check(tree, {}, unit.source, filename=unit.filename, constants=self.constants)
        self.diagnostics.extend(checked.diagnostics)
        if not checked.ok:
            return
        if id(tree) not in checked.constants:
            self.report(unit, tree.start, f"const {item.name} is not a constant expression")
            return
        self.constants[item.name] = (checked.type(tree), checked.constants[id(tree)])

    def let(self, unit: _Unit, item: Item) -> None:
        if self.taken(unit, item):
            return
        tree = self.inline(unit, item.value, set())
        checked = self.check(tree, unit)
        self.diagnostics.extend(item for item in checked.diagnostics if item.severity == "error")
        if checked.ok:
            self.lets[item.name] = tree
            self.labels[id(tree)] = item.name
            for node in walk(tree):
                self.origins.setdefault(id(node), (unit.source, unit.filename))

    def check(self, tree: Node, unit: _Unit) -> Checked:
        """Check a tree of ``unit`` against the schema, the consts and the lets' origins."""
        return check(
            tree,
            self.schema,
            unit.source,
            filename=unit.filename,
            constants=self.constants,
            origins=self.origins,
        )

    # -- let substitution -----------------------------------------------------------
    def inline(self, unit: _Unit, node: Node, scope: set[str]) -> Node:
        """``node`` with every reference to a ``let`` replaced by its tree."""
        if isinstance(node, Ident):
            if node.name in self.lets and node.name not in scope:
                tree = self.lets[node.name]
                clash = _free_names(tree) & scope
                if clash:
                    self.report(
                        unit,
                        node.start,
                        f"'{node.name}' reads '{sorted(clash)[0]}', which a comprehension "
                        "variable shadows here",
                    )
                return tree
            return node
        if isinstance(node, Comprehension):
            inner = scope | {node.variable} | ({node.index} if node.index else set())
            guard = self.inline(unit, node.guard, inner) if node.guard is not None else None
            return Comprehension(
                node.kind,
                self.inline(unit, node.range, scope),
                node.variable,
                node.variable_start,
                self.inline(unit, node.body, inner),
                guard,
                node.start,
                node.end,
                index=node.index,
                index_start=node.index_start,
            )
        children = node.children()
        if not children:
            return node
        rebuilt = [self.inline(unit, child, scope) for child in children]
        if all(new is old for new, old in zip(rebuilt, children, strict=True)):
            return node
        return _rebuild(node, rebuilt)

    # -- rules -------------------------------------------------------------------
    def rule(self, unit: _Unit, item: Item, names: set[str]) -> Rule | None:
        if item.name in names:
            self.report(unit, item.offset, f"rule '{item.name}' is defined twice")
            return None
        names.add(item.name)
        fields: dict[str, Item] = {}
        for field in item.value:
            if field.name not in _FIELDS:
                self.report(
                    unit,
                    field.offset,
                    f"unknown rule field '{field.name}'; expected one of {', '.join(_FIELDS)}",
                )
            elif field.name in fields:
                self.report(unit, field.offset, f"field '{field.name}' is given twice")
            else:
                fields[field.name] = field
        if "when" not in fields:
            self.report(unit, item.offset, f"rule '{item.name}' has no 'when' condition")
            return None
        severity = self.word(unit, fields.get("severity"), "warning")
        if severity is not None and severity not in SEVERITIES:
            self.report(
                unit,
                fields["severity"].value.start,
                f"severity must be one of {', '.join(SEVERITIES)}, not '{severity}'",
            )
        action = self.word(unit, fields.get("action"), None)
        tags = self.tags(unit, fields.get("tags"))
        message = self.message(unit, fields.get("message"))
        when = self.inline(unit, fields["when"].value, set())
        checked = self.check(when, unit)
        checked.diagnostics.extend(
            final_checks(when, checked, unit.source, unit.filename, condition=True)
        )
        self.diagnostics.extend(checked.diagnostics)
        if not checked.ok or self.failed:
            return None
        sources = {
            id(node): self.origins[id(node)][0] for node in walk(when) if id(node) in self.origins
        }
        explainer = Explainer(when, checked, unit.source, labels=self.labels, sources=sources)
        return Rule(
            item.name,
            when.text(unit.source) if id(when) not in self.labels else item.name,
            when,
            checked,
            severity=severity or "warning",
            tags=tags,
            message=message,
            action=action,
            filename=unit.filename,
            explainer=explainer,
        )

    def word(self, unit: _Unit, field: Item | None, default: str | None) -> str | None:
        if field is None:
            return default
        node = field.value
        if isinstance(node, Ident):
            return node.name
        if isinstance(node, Literal) and node.kind == "string":
            return str(node.value)
        self.report(unit, node.start, f"'{field.name}' takes a name, as in {field.name}: notify")
        return default

    def tags(self, unit: _Unit, field: Item | None) -> tuple[str, ...]:
        if field is None:
            return ()
        node = field.value
        if isinstance(node, ListExpr) and all(
            isinstance(tag, Literal) and tag.kind == "string" for tag in node.items
        ):
            return tuple(str(tag.value) for tag in node.items if isinstance(tag, Literal))
        self.report(unit, node.start, "'tags' takes a list of strings, as in tags: [\"api\"]")
        return ()

    def message(self, unit: _Unit, field: Item | None) -> Callable[[Mapping[str, Any]], str] | None:
        if field is None:
            return None
        node = field.value
        if not (isinstance(node, Literal) and node.kind == "string"):
            self.report(
                unit, node.start, "'message' takes a string, as in message: \"{path} is slow\""
            )
            return None
        template = str(node.value)
        parts: list[str | _Placeholder] = []
        position = 0
        base = node.start + 1
        for found in _PLACEHOLDER.finditer(template):
            parts.append(template[position : found.start()])
            position = found.end()
            if found.group(1) is None:
                parts.append(found.group(0)[0])
                continue
            try:
                tree = self.inline(unit, _placeholder(found.group(1)), set())
            except ParseError as error:
                self.report(unit, base + found.start(), f"in message placeholder: {error.reason}")
                continue
            checked = check(tree, self.schema, found.group(1), constants=self.constants)
            for diagnostic in checked.diagnostics:
                if diagnostic.severity == "error":
                    self.report(
                        unit, base + found.start(), f"in message placeholder: {diagnostic.message}"
                    )
            if checked.ok:
                parts.append(_Placeholder(tree, checked))
        parts.append(template[position:])
        return _Template(parts)


class _Placeholder:
    """One checked ``{expression}`` of a message, compiled when a message is first rendered.

    Messages render only for matches, so a file of many rules compiles its
    placeholders on demand instead of all up front.
    """

    __slots__ = ("checked", "function", "tree")

    def __init__(self, tree: Node, checked: Checked) -> None:
        self.tree = tree
        self.checked = checked
        self.function: Callable[[Any], Any] | None = None

    def __call__(self, inputs: Mapping[str, Any]) -> Any:
        if self.function is None:
            self.function = generate(self.tree, self.checked, filename="<message>", exact_only=True)
        return self.function(inputs)


class _Template:
    """A message template: literal text and ``{expression}`` placeholders."""

    __slots__ = ("parts",)

    def __init__(self, parts: list[str | _Placeholder]) -> None:
        self.parts = parts

    def __call__(self, inputs: Mapping[str, Any]) -> str:
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            try:
                out.append(_text(part(inputs)))
            except EvaluationError as error:
                out.append(f"<error: {error.message}>")
        return "".join(out)


def _text(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_text(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_text(k)}: {_text(v)}" for k, v in value.items()) + "}"
    if value is None:
        return "null"
    try:
        return str(_runtime.to_string(value))
    except EvaluationError:
        return str(value)


_SIMPLE_NAME = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*")


def _placeholder(text: str) -> Node:
    """The tree of a message placeholder; a bare name (the usual case) skips the parser."""
    simple = _SIMPLE_NAME.fullmatch(text)
    if simple is not None and simple.group(1) not in RESERVED | {"true", "false", "null"}:
        return Ident(simple.group(1), simple.start(1), simple.end(1))
    return parse_expression(text)


def _free_names(tree: Node) -> set[str]:
    return {node.name for node in walk(tree) if isinstance(node, Ident)}


def _rebuild(node: Node, children: list[Node]) -> Node:
    start, end = node.start, node.end
    if isinstance(node, Select):
        return Select(children[0], node.field, start, end, test_only=node.test_only)
    if isinstance(node, Index):
        return Index(children[0], children[1], start, end)
    if isinstance(node, Call):
        if node.target is not None:
            return Call(node.function, children[1:], children[0], start, end)
        return Call(node.function, children, None, start, end)
    if isinstance(node, ListExpr):
        return ListExpr(children, start, end)
    if isinstance(node, MapExpr):
        pairs = list(zip(children[::2], children[1::2], strict=True))
        return MapExpr(pairs, start, end)
    if isinstance(node, Unary):
        return Unary(node.op, children[0], start, end)
    if isinstance(node, Binary):
        return Binary(node.op, children[0], children[1], start, end)
    if isinstance(node, Conditional):
        return Conditional(children[0], children[1], children[2], start, end)
    raise AssertionError(f"unexpected node {type(node).__name__}")


def _parse_unit(source: str, filename: str | None) -> _Unit:
    return _Unit(source, filename, parse_file(source, filename=filename))


def _file_loader(base: Path | None) -> Callable[[str, str | None], _Unit]:
    def load(name: str, importer: str | None) -> _Unit:
        root = Path(importer).parent if importer else (base or Path.cwd())
        path = (root / name).resolve()
        text = path.read_text(encoding="utf-8")
        return _parse_unit(text, str(path))

    return load


def compile_rules(
    source: str,
    schema: Mapping[str, Any] | None = None,
    *,
    filename: str | None = None,
    base_dir: str | Path | None = None,
) -> RuleSet:
    """Compile the text of a rule file into a :class:`RuleSet`.

    Parameters
    ----------
    source:
        The rule file's text.
    schema:
        Inputs declared from Python, merged with the file's ``schema`` blocks.
    filename:
        Shown in errors; imports resolve relative to its directory.
    base_dir:
        Where imports resolve when there is no ``filename`` (default: the
        current directory).

    Raises
    ------
    ParseError
        For a syntax error; :class:`RuleCheckError` for every other error found
        in the file and its imports, all listed at once.
    """
    if not isinstance(source, str):
        raise InvalidInput(f"a rule file is text, not {type(source).__name__}")
    declared = parse_declarations(schema, where="schema entry") or {}
    unit = _parse_unit(source, filename)
    compiler = _Compiler(declared, _file_loader(Path(base_dir) if base_dir else None))
    # The root file counts as loading, so an import that leads back to it is a cycle.
    compiler.loading.append(str(Path(filename).resolve()) if filename else "<input>")
    items = compiler.shared(unit, imported=False)
    names: set[str] = set()
    rules = [compiler.rule(unit, item, names) for item in items]
    # A finding inside a let is met again at every rule that uses it: report it once.
    findings = list(dict.fromkeys(compiler.diagnostics))
    if compiler.failed:
        raise RuleCheckError(findings)
    warnings = [item for item in findings if item.severity == "warning"]
    return RuleSet([rule for rule in rules if rule is not None], compiler.schema, warnings)


def load_rules(path: str | Path, schema: Mapping[str, Any] | None = None) -> RuleSet:
    """Read and compile a rule file (see :func:`compile_rules`)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise InvalidInput(
            f"{file}: not UTF-8 text ({error.reason} at byte {error.start})"
        ) from None
    return compile_rules(text, schema, filename=str(file))
