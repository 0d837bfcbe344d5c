"""Rule files: schema, imports, consts, lets and named rules, compiled and evaluated as a set.

What a user of a rule file relies on: matches come back in file order with
their metadata and rendered messages; imports resolve relative to the file
that names them; every mistake in a file (and its imports) is reported in
one go, each at its line and column; the ``schema`` argument joins the
file's schema and conflicts are reported.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from trusswork.core.errors import InvalidInput, ParseError
from trusswork.rules import (
    EvaluationError,
    Match,
    RuleCheckError,
    RuleSet,
    UInt,
    compile_rules,
    load_rules,
)

CHECKOUT = """\
// checkout.rules
schema {
  status: int
  latency_ms: double
  path: string
  labels: list(string)
}
const SLOW_MS = 250.0
const SLOW_TEXT = "slow"
let is_error = status >= 500

rule slow_api {
  when: latency_ms > SLOW_MS && path.startsWith("/api") && !is_error
  severity: warning
  tags: ["latency", "api"]
  message: "{SLOW_TEXT} request to {path}: {latency_ms} ms, {{literal}} {size(labels)} labels"
  action: notify
}

rule server_error {
  when: is_error
  severity: critical
  message: "error {status} on {path}"
  action: "page"
}

rule labelled {
  when: "beta" in labels
}
"""

EVENT = {"status": 200, "latency_ms": 312.5, "path": "/api/cart", "labels": ["beta", "x"]}


def errors_of(source: str, **kwargs: object) -> list[tuple[int, int, str]]:
    """``(line, column, message)`` of every error compiling ``source`` raises."""
    with pytest.raises(RuleCheckError) as caught:
        compile_rules(source, **kwargs)  # type: ignore[arg-type]
    return [(item.line, item.column, item.message) for item in caught.value.errors]


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# -- a full file ----------------------------------------------------------------------


def test_full_file_compiles_with_schema_and_rules_in_file_order() -> None:
    rules = compile_rules(CHECKOUT)
    assert isinstance(rules, RuleSet)
    assert [rule.name for rule in rules] == ["slow_api", "server_error", "labelled"]
    assert len(rules) == 3
    assert rules.schema == {
        "status": "int",
        "latency_ms": "double",
        "path": "string",
        "labels": "list(string)",
    }
    assert rules.diagnostics == []


def test_evaluate_returns_matches_in_file_order_with_metadata() -> None:
    rules = compile_rules(CHECKOUT)
    matches = rules.evaluate({**EVENT, "status": 503})
    assert [match.rule for match in matches] == ["server_error", "labelled"]
    server_error, labelled = matches
    assert server_error == Match("server_error", "critical", (), "error 503 on /api/cart", "page")
    assert labelled == Match("labelled", "warning", (), None, None)


def test_message_placeholders_consts_and_brace_escapes_are_rendered() -> None:
    (match, labelled) = compile_rules(CHECKOUT).evaluate(EVENT)
    assert match.rule == "slow_api"
    assert match.severity == "warning"
    assert match.tags == ("latency", "api")
    assert match.action == "notify"
    assert match.message == "slow request to /api/cart: 312.5 ms, {literal} 2 labels"
    assert labelled.rule == "labelled"


def test_match_to_dict() -> None:
    match = compile_rules(CHECKOUT).evaluate(EVENT)[0]
    assert match.to_dict() == {
        "rule": "slow_api",
        "severity": "warning",
        "tags": ["latency", "api"],
        "message": "slow request to /api/cart: 312.5 ms, {literal} 2 labels",
        "action": "notify",
    }


def test_no_match_gives_an_empty_list() -> None:
    event = {**EVENT, "latency_ms": 1.0, "labels": []}
    assert compile_rules(CHECKOUT).evaluate(event) == []


def test_placeholder_error_is_rendered_inline_not_raised() -> None:
    rules = compile_rules(
        'rule r {\n  when: true\n  message: "value {m.k} of {m}"\n}', {"m": "map(string, int)"}
    )
    (match,) = rules.evaluate({"m": {}})
    assert match.message is not None
    assert match.message.startswith("value <error: no such key")
    assert match.message.endswith(" of {}")


def test_placeholders_may_name_lets_consts_and_inputs() -> None:
    source = (
        "let big = n > 10\nconst C = [1, 2]\n"
        'rule r { when: true message: "{big} {C} {n} { n } {m.k} {m}" }'
    )
    rules = compile_rules(source, {"n": "int", "m": "map(string, int)"})
    (match,) = rules.evaluate({"n": 11, "m": {"k": 1}})
    assert match.message == "true [1, 2] 11 11 1 {k: 1}"
    (unbound,) = rules.evaluate({"n": 3})
    assert unbound.message is not None
    assert unbound.message.startswith("false [1, 2] 3 3 <error: no such attribute")


def test_rules_are_reachable_by_name() -> None:
    rules = compile_rules(CHECKOUT)
    assert rules["labelled"](**EVENT) is True
    with pytest.raises(InvalidInput, match="no rule named 'nope'"):
        rules["nope"]


def test_severity_may_be_a_string_and_defaults_to_warning() -> None:
    rules = compile_rules('rule a { when: true severity: "error" }\nrule b { when: true }')
    assert [rule.severity for rule in rules] == ["error", "warning"]


def test_const_lists_and_let_chains_are_usable() -> None:
    source = """
    const ALLOWED = ["GET", "HEAD"]
    const LIMIT = 2 * 5
    let read_only = method in ALLOWED
    let big = size > LIMIT
    rule big_write { when: !read_only && big }
    """
    rules = compile_rules(source, {"method": "string", "size": "int"})
    assert [m.rule for m in rules.evaluate({"method": "POST", "size": 11})] == ["big_write"]
    assert rules.evaluate({"method": "GET", "size": 11}) == []
    assert rules.evaluate({"method": "POST", "size": 10}) == []


def test_warnings_are_kept_on_the_rule_set() -> None:
    rules = compile_rules("rule r { when: x > 1 || true }", {"x": "int"})
    assert [item.code for item in rules.diagnostics] == ["always-true"]
    assert [item.code for item in rules["r"].warnings] == ["always-true"]


# -- errors="skip" ------------------------------------------------------------------


def test_errors_raise_by_default_and_skip_treats_the_rule_as_not_matching() -> None:
    rules = compile_rules(
        'rule a { when: m["k"] > 1 }\nrule b { when: true }', {"m": "map(string, int)"}
    )
    with pytest.raises(EvaluationError, match="no such key"):
        rules.evaluate({"m": {}})
    assert [match.rule for match in rules.evaluate({"m": {}}, errors="skip")] == ["b"]
    assert [match.rule for match in rules.evaluate({"m": {"k": 5}}, errors="skip")] == ["a", "b"]


def test_unknown_errors_mode_is_invalid_input() -> None:
    rules = compile_rules("rule b { when: true }")
    with pytest.raises(InvalidInput, match="errors must be"):
        rules.evaluate({}, errors="ignore")


# -- imports -----------------------------------------------------------------------


def test_imports_resolve_relative_to_the_importing_file(tmp_path: Path) -> None:
    write(tmp_path, "lib/common.rules", 'schema { user: string }\nimport "more/limits.rules"\n')
    write(tmp_path, "lib/more/limits.rules", "const MAX = 4\nlet short = size(user) < MAX\n")
    main = write(
        tmp_path, "app/main.rules", 'import "../lib/common.rules"\nrule r { when: short }\n'
    )
    rules = load_rules(main)
    assert rules.schema == {"user": "string"}
    assert [match.rule for match in rules.evaluate({"user": "bob"})] == ["r"]
    assert rules.evaluate({"user": "alice"}) == []


def test_compile_rules_imports_from_base_dir_without_a_filename(tmp_path: Path) -> None:
    write(tmp_path, "shared.rules", "const LIMIT = 3\n")
    rules = compile_rules(
        'import "shared.rules"\nrule r { when: n > LIMIT }', {"n": "int"}, base_dir=tmp_path
    )
    assert rules["r"](n=4) is True


def test_a_file_imported_twice_is_read_once(tmp_path: Path) -> None:
    write(tmp_path, "base.rules", "const ONE = 1\n")
    write(tmp_path, "left.rules", 'import "base.rules"\nconst L = ONE\n')
    write(tmp_path, "right.rules", 'import "base.rules"\nconst R = ONE + 1\n')
    main = write(
        tmp_path,
        "main.rules",
        'import "left.rules"\nimport "right.rules"\nrule r { when: L < R }\n',
    )
    rules = load_rules(main)
    assert rules["r"].evaluate({}) is True


def test_import_cycle_between_imported_files_is_reported(tmp_path: Path) -> None:
    write(tmp_path, "b.rules", 'import "c.rules"\nconst B = 1\n')
    write(tmp_path, "c.rules", 'import "b.rules"\nconst C = 1\n')
    main = write(tmp_path, "main.rules", 'import "b.rules"\nrule r { when: true }\n')
    with pytest.raises(RuleCheckError) as caught:
        load_rules(main)
    (error,) = caught.value.errors
    assert error.message.startswith("import cycle: ")
    assert "c.rules -> " in error.message
    assert error.filename is not None and error.filename.endswith("c.rules")
    assert (error.line, error.column) == (1, 8)


def test_import_cycle_through_the_root_file_is_reported(tmp_path: Path) -> None:
    write(tmp_path, "b.rules", 'import "a.rules"\nconst B = 1\n')
    root = write(tmp_path, "a.rules", 'import "b.rules"\nconst A = 1\n')
    with pytest.raises(RuleCheckError) as caught:
        load_rules(root)
    assert any("import cycle" in item.message for item in caught.value.errors)


def test_import_cycle_through_the_root_file_is_the_only_error(tmp_path: Path) -> None:
    write(tmp_path, "b.rules", 'import "a.rules"\nconst B = 1\n')
    root = write(tmp_path, "a.rules", 'import "b.rules"\nconst A = 1\n')
    with pytest.raises(RuleCheckError) as caught:
        load_rules(root)
    messages = [item.message for item in caught.value.errors]
    assert len(messages) == 1, messages
    assert messages[0].startswith("import cycle: ")


def test_warning_in_an_imported_let_points_into_the_imported_file(tmp_path: Path) -> None:
    write(tmp_path, "lib.rules", "// shared\n// conditions\nlet always = x > 1 || true\n")
    main = write(tmp_path, "main.rules", 'import "lib.rules"\nrule r { when: always }\n')
    (warning,) = load_rules(main, {"x": "int"}).diagnostics
    assert warning.code == "always-true"
    assert warning.filename is not None and warning.filename.endswith("lib.rules")
    assert (warning.line, warning.column) == (3, 23)


def test_missing_import_is_an_error_at_the_import(tmp_path: Path) -> None:
    main = write(tmp_path, "main.rules", 'rule r { when: true }\nimport "nope.rules"\n')
    with pytest.raises(RuleCheckError) as caught:
        load_rules(main)
    (error,) = caught.value.errors
    assert "cannot import 'nope.rules'" in error.message
    assert (error.line, error.column) == (2, 8)


def test_syntax_error_in_an_imported_file_is_reported(tmp_path: Path) -> None:
    write(tmp_path, "broken.rules", "const X = (1 +\n")
    main = write(tmp_path, "main.rules", 'import "broken.rules"\nrule r { when: true }\n')
    with pytest.raises(RuleCheckError) as caught:
        load_rules(main)
    (error,) = caught.value.errors
    assert "cannot import 'broken.rules'" in error.message


def test_rules_in_an_imported_file_are_rejected(tmp_path: Path) -> None:
    write(tmp_path, "lib.rules", "const K = 1\nrule inner { when: true }\n")
    main = write(tmp_path, "main.rules", 'import "lib.rules"\nrule outer { when: true }\n')
    with pytest.raises(RuleCheckError) as caught:
        load_rules(main)
    (error,) = caught.value.errors
    assert error.message == "an imported file may not define rules"
    assert error.filename is not None and error.filename.endswith("lib.rules")
    assert (error.line, error.column) == (2, 6)


def test_conflicting_schema_in_an_imported_file_is_reported(tmp_path: Path) -> None:
    write(tmp_path, "lib.rules", "schema { x: string }\n")
    main = write(tmp_path, "main.rules", 'schema { x: int }\nimport "lib.rules"\n')
    with pytest.raises(RuleCheckError) as caught:
        load_rules(main)
    (error,) = caught.value.errors
    assert "'x' is declared string here but int in" in error.message
    assert error.filename is not None and error.filename.endswith("lib.rules")


def test_load_rules_rejects_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.rules"
    path.write_bytes(b'rule r { when: name == "caf\xe9" }\n')
    with pytest.raises(InvalidInput, match="not UTF-8") as caught:
        load_rules(path, {"name": "string"})
    assert not isinstance(caught.value, RuleCheckError)


def test_an_imported_file_that_is_not_utf8_is_reported_at_the_import(tmp_path: Path) -> None:
    (tmp_path / "lib.rules").write_bytes(b'const NAME = "caf\xe9"\n')
    main = write(tmp_path, "main.rules", 'import "lib.rules"\nrule r { when: true }\n')
    with pytest.raises(RuleCheckError) as caught:
        load_rules(main)
    (error,) = caught.value.errors
    assert "cannot import 'lib.rules'" in error.message
    assert (error.line, error.column) == (1, 8)


def test_load_rules_reports_errors_with_the_file_name(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.rules", "rule r {\n  when: nope\n}\n")
    with pytest.raises(RuleCheckError) as caught:
        load_rules(path, {})
    assert str(caught.value).startswith(f"{path}:2:9: error: undeclared reference to 'nope'")


# -- mistakes in a file -----------------------------------------------------------


def test_duplicate_rule_names() -> None:
    assert errors_of("rule a { when: true }\nrule a { when: false }") == [
        (2, 6, "rule 'a' is defined twice")
    ]


def test_unknown_and_repeated_fields() -> None:
    found = errors_of("rule a {\n  when: true\n  colour: red\n  when: false\n}")
    assert found == [
        (
            3,
            3,
            "unknown rule field 'colour'; expected one of when, severity, tags, message, action",
        ),
        (4, 3, "field 'when' is given twice"),
    ]


def test_missing_when() -> None:
    assert errors_of("rule quiet { severity: info }") == [
        (1, 6, "rule 'quiet' has no 'when' condition")
    ]


def test_bad_severity() -> None:
    assert errors_of("rule a {\n  when: true\n  severity: urgent\n}") == [
        (3, 13, "severity must be one of debug, info, warning, error, critical, not 'urgent'")
    ]


@pytest.mark.parametrize(
    ("field", "fragment"),
    [
        ("severity: 1 + 1", "'severity' takes a name"),
        ("action: [1]", "'action' takes a name"),
        ("tags: 'api'", "'tags' takes a list of strings"),
        ("tags: ['api', 1]", "'tags' takes a list of strings"),
        ("message: 42", "'message' takes a string"),
        ("message: 'hi {nope}'", "in message placeholder: undeclared reference to 'nope'"),
        ("message: 'hi {1 +}'", "in message placeholder: unexpected end of input"),
    ],
)
def test_malformed_rule_fields(field: str, fragment: str) -> None:
    ((line, _column, message),) = errors_of(f"rule a {{\n  when: true\n  {field}\n}}")
    assert line == 3
    assert fragment in message


def test_when_must_be_a_bool() -> None:
    assert errors_of("rule a { when: n + 1 }", schema={"n": "int"}) == [
        (1, 16, "a rule's condition must be a bool, not int")
    ]


def test_const_must_be_a_constant_expression() -> None:
    found = errors_of("const K = n + 1\nrule a { when: true }", schema={"n": "int"})
    assert found == [(1, 11, "undeclared reference to 'n'")]


def test_const_with_a_comprehension_is_not_constant() -> None:
    found = errors_of("const K = [1, 2].exists(v, v > 1)\nrule a { when: true }")
    assert found == [(1, 11, "const K is not a constant expression")]


def test_const_that_errs_when_folded_is_not_constant() -> None:
    found = errors_of("const K = 1 / 0\nrule a { when: true }")
    assert found == [(1, 11, "const K is not a constant expression")]


def test_const_map_literal_is_constant() -> None:
    rules = compile_rules('const K = {"a": 1}\nrule a { when: K.a == 1 }')
    assert rules["a"].evaluate({}) is True


def test_const_and_let_names_must_be_unique() -> None:
    found = errors_of("const K = 1\nlet K = 2 > 1\nconst K = 3\nrule a { when: true }")
    assert found == [(2, 5, "'K' is already defined"), (3, 7, "'K' is already defined")]


def test_let_shadowing_an_input_is_a_warning() -> None:
    rules = compile_rules("let x = y > 1\nrule a { when: x }", {"x": "bool", "y": "int"})
    assert [item.code for item in rules.diagnostics] == ["shadowed"]
    assert rules["a"](x=False, y=2) is True


def test_let_read_under_a_comprehension_variable_of_the_same_name_is_an_error() -> None:
    source = "let positive = x > 0\nrule a { when: items.all(x, positive) }"
    found = errors_of(source, schema={"x": "int", "items": "list(int)"})
    assert found == [(2, 29, "'positive' reads 'x', which a comprehension variable shadows here")]


def test_let_used_beside_a_comprehension_reads_the_input() -> None:
    source = "let positive = x > 0\nrule a { when: items.all(v, v > 0) && positive }"
    rules = compile_rules(source, {"x": "int", "items": "list(int)"})
    assert rules["a"](x=1, items=[1, 2]) is True
    assert rules["a"](x=-1, items=[1, 2]) is False


def test_all_errors_of_a_file_are_reported_at_once() -> None:
    source = """\
const K = x + 1
rule a { when: true }
rule a { when: false }
rule b {
  when: 1 + 1
  colour: red
}
rule c { severity: high }
rule d { when: x > 'a' severity: urgent }
"""
    with pytest.raises(RuleCheckError) as caught:
        compile_rules(source, {"x": "int"}, filename="many.rules")
    error = caught.value
    lines = sorted(item.line for item in error.errors)
    assert lines == [1, 3, 5, 6, 8, 9, 9]
    assert str(error).startswith("7 errors:\nmany.rules:")
    assert all(item.filename == "many.rules" for item in error.errors)


def test_syntax_error_is_a_parse_error_with_a_caret() -> None:
    with pytest.raises(ParseError) as caught:
        compile_rules("rule a {\n  when: x >\n}")
    assert not isinstance(caught.value, RuleCheckError)
    assert (caught.value.line, caught.value.column) == (3, 1)


def test_rule_file_must_be_text() -> None:
    with pytest.raises(InvalidInput):
        compile_rules(b"rule a { when: true }")  # type: ignore[arg-type]


# -- the schema argument ----------------------------------------------------------


def test_schema_argument_is_merged_with_the_file_schema() -> None:
    rules = compile_rules(
        "schema { path: string }\nrule r { when: path == '/' && status > 499 }", {"status": int}
    )
    assert rules.schema == {"status": "int", "path": "string"}
    assert rules["r"](path="/", status=500) is True


def test_schema_argument_agreeing_with_the_file_is_fine() -> None:
    rules = compile_rules("schema { n: int }\nrule r { when: n > 1 }", {"n": "int"})
    assert rules.schema == {"n": "int"}


def test_schema_argument_conflicting_with_the_file_is_reported() -> None:
    found = errors_of("schema {\n  n: string\n}\nrule r { when: true }", schema={"n": "int"})
    assert found == [(2, 3, "'n' is declared string here but int in the schema argument")]


def test_conflicting_schema_blocks_in_one_file_are_reported() -> None:
    found = errors_of("schema { n: int }\nschema { n: double }\nrule r { when: true }")
    assert found == [(2, 10, "'n' is declared double here but int in this file")]


def test_unknown_type_in_the_schema_is_reported() -> None:
    ((line, column, message),) = errors_of("schema { n: integer }\nrule r { when: true }")
    assert (line, column) == (1, 10)
    assert "unknown type 'integer'" in message


def test_invalid_schema_argument_is_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        compile_rules("rule r { when: true }", {"n": "integer"})


def test_coerce_turns_json_values_into_the_declared_types() -> None:
    ruleset = compile_rules(
        "schema { n: int, u: uint, d: double, t: timestamp, m: map(int, list(uint)) }\n"
        "rule r { when: n > 1 && u > 1u && d > 1.0 && t.getFullYear() == 2009 && m[1][0] == 2u }"
    )
    event = ruleset.coerce(
        {"n": 2.0, "u": 2, "d": 2, "t": "2009-02-13T23:31:30Z", "m": {"1": [2]}, "extra": 1.5}
    )
    assert type(event["n"]) is int and type(event["u"]) is UInt and type(event["d"]) is float
    assert event["m"] == {1: [UInt(2)]} and event["extra"] == 1.5
    assert [match.rule for match in ruleset.evaluate(event)] == ["r"]
    with pytest.raises(InvalidInput, match=r"line 3: 'n' is declared int, but is 1\.5"):
        ruleset.coerce({"n": 1.5}, where="line 3")
