"""trusswork.core.errors: the taxonomy, ParseError rendering, RFC 9457 problems."""

from __future__ import annotations

import pytest

from trusswork.core.errors import (
    Conflict,
    Corruption,
    InvalidInput,
    LimitExceeded,
    NotFound,
    ParseError,
    TrussworkError,
    Unavailable,
)

TAXONOMY = [
    # class, built-in it must also be, HTTP status, code
    (InvalidInput, ValueError, 400, "invalid-input"),
    (ParseError, ValueError, 400, "parse-error"),
    (NotFound, KeyError, 404, "not-found"),
    (Conflict, Exception, 409, "conflict"),
    (LimitExceeded, Exception, 429, "limit-exceeded"),
    (Unavailable, ConnectionError, 503, "unavailable"),
    (Corruption, Exception, 500, "corruption"),
]


def make(cls: type[TrussworkError], message: str = "it broke") -> TrussworkError:
    return cls(message)


def rendered(cls: type[TrussworkError], message: str = "it broke") -> str:
    # A ParseError always names where (here no file, no position: "<input>").
    return f"<input>: {message}" if cls is ParseError else message


@pytest.mark.parametrize(("cls", "builtin", "status", "code"), TAXONOMY)
def test_each_class_is_a_trussworkerror_and_its_builtin(
    cls: type[TrussworkError], builtin: type[Exception], status: int, code: str
) -> None:
    assert issubclass(cls, TrussworkError)
    assert issubclass(cls, builtin)
    assert cls.http_status == status
    assert cls.code == code


@pytest.mark.parametrize(("cls", "builtin", "status", "code"), TAXONOMY)
def test_builtin_except_clauses_keep_working(
    cls: type[TrussworkError], builtin: type[Exception], status: int, code: str
) -> None:
    with pytest.raises(builtin):
        raise make(cls)
    try:
        raise make(cls)
    except TrussworkError as caught:
        assert str(caught) == rendered(cls)


def test_parse_error_is_caught_as_invalid_input_and_value_error() -> None:
    for target in (ValueError, InvalidInput):
        with pytest.raises(target):
            raise ParseError("bad token", source="x", line=1, column=1)


def test_categories_are_distinct() -> None:
    assert not issubclass(NotFound, ValueError)
    assert not issubclass(InvalidInput, KeyError)
    assert not issubclass(Conflict, ValueError)
    assert not issubclass(Corruption, ValueError)
    assert not issubclass(Unavailable, ValueError)


def test_not_found_str_is_not_quoted_like_key_error() -> None:
    assert str(KeyError("no stream 'orders'")) == "\"no stream 'orders'\""
    assert str(NotFound("no stream 'orders'")) == "no stream 'orders'"
    assert NotFound("x").message == "x"


def test_limit_exceeded_carries_retry_after() -> None:
    assert LimitExceeded("slow down", retry_after=2.5).retry_after == 2.5
    assert LimitExceeded("slow down").retry_after is None


@pytest.mark.parametrize(("cls", "builtin", "status", "code"), TAXONOMY)
def test_to_problem_has_rfc9457_members(
    cls: type[TrussworkError], builtin: type[Exception], status: int, code: str
) -> None:
    problem = make(cls, "the detail").to_problem()
    assert problem == {
        "type": f"https://trusswork.dev/errors/{code}",
        "title": cls.title,
        "status": status,
        "detail": rendered(cls, "the detail"),
    }
    assert problem["title"]


def test_to_problem_instance_is_optional() -> None:
    problem = Conflict("version 3 expected, found 4").to_problem(instance="/streams/orders")
    assert problem["instance"] == "/streams/orders"
    assert problem["status"] == 409


def test_parse_error_detail_carries_the_location() -> None:
    error = ParseError("unexpected '}'", source="a\nb}", offset=3, filename="q.sql")
    assert error.to_problem()["detail"].startswith("q.sql:2:2: unexpected '}'")
    assert error.to_problem()["status"] == 400


def test_parse_error_renders_file_line_column_and_caret() -> None:
    source = "a > 1 &&\nb < 2"
    error = ParseError(
        "expected an expression after '&&'", source=source, line=1, column=9, filename="rules.cel"
    )
    assert str(error).splitlines() == [
        "rules.cel:1:9: expected an expression after '&&'",
        "  1 | a > 1 &&",
        "    |         ^",
    ]
    assert error.reason == "expected an expression after '&&'"
    assert (error.line, error.column, error.filename) == (1, 9, "rules.cel")


@pytest.mark.parametrize(
    ("offset", "line", "column"),
    [(0, 1, 1), (2, 1, 3), (3, 1, 4), (4, 2, 1), (6, 2, 3), (7, 3, 1), (8, 3, 2)],
)
def test_parse_error_offset_to_line_and_column(offset: int, line: int, column: int) -> None:
    source = "abc\nxy\nz"  # offsets: a0 b1 c2 \n3 x4 y5 \n6 z7 (end 8)
    error = ParseError("bad", source=source, offset=offset)
    assert (error.line, error.column) == (line, column)
    caret_line = str(error).splitlines()[-1]
    assert caret_line.index("^") - caret_line.index("|") - 2 == column - 1


def test_parse_error_offset_is_clamped_to_the_source() -> None:
    assert (
        ParseError("x", source="ab", offset=99).line,
        ParseError("x", source="ab", offset=99).column,
    ) == (1, 3)
    assert ParseError("x", source="ab", offset=-5).column == 1


def test_parse_error_caret_under_the_right_character_with_wide_gutter() -> None:
    source = "\n" * 11 + "select * frm t"
    error = ParseError("expected FROM", source=source, line=12, column=10)
    lines = str(error).splitlines()
    assert lines[1] == "  12 | select * frm t"
    assert lines[2].index("^") == lines[1].index("frm")


def test_parse_error_tabs_keep_the_caret_aligned() -> None:
    error = ParseError("bad", source="\tx = ?", line=1, column=6)
    code_line, caret_line = str(error).splitlines()[1:]
    assert code_line[caret_line.index("^")] == "?"


def test_parse_error_without_source_or_filename() -> None:
    assert str(ParseError("bad", line=3, column=4)) == "<input>:3:4: bad"
    assert str(ParseError("bad", line=3)) == "<input>:3: bad"
    assert str(ParseError("bad")) == "<input>: bad"
    assert ParseError("bad").snippet() == ""


def test_parse_error_from_the_offending_line_alone() -> None:
    # big inputs pass only the bad line: line 40 000 of a batch, without the batch
    error = ParseError("bad value", line_text="up{a=} 1\r", line=40_000, column=6, filename="b")
    lines = str(error).splitlines()
    assert lines[0] == "b:40000:6: bad value"
    assert lines[1] == "  40000 | up{a=} 1"
    assert lines[1][lines[2].index("^")] == "}"


def test_parse_error_out_of_range_line_shows_no_snippet() -> None:
    error = ParseError("bad", source="one line", line=5, column=1, filename="f.txt")
    assert str(error) == "f.txt:5:1: bad"
    assert error.snippet() == ""
    assert ParseError("bad", source="x", line=0, column=1).snippet() == ""


def test_parse_error_crlf_lines_render_without_carriage_return() -> None:
    error = ParseError("bad", source="a = 1\r\nb = \r\n", line=2, column=5)
    assert "\r" not in str(error)
    assert str(error).splitlines()[1] == "  2 | b = "
