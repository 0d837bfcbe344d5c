"""The LALR grammar of CEL expressions and of rule files, for lark.

The expression part follows the grammar in cel-spec's language definition:
precedence from ``?:`` (lowest) through ``||``, ``&&``, relations (``< <= >=
> == != in``), ``+ -``, ``* / %``, unary ``! -`` to member access, calls and
indexing. Message construction (``Foo{a: 1}``) is not part of it: trusswork
has no protobuf types.

A rule file is a sequence of ``schema { name: type ... }``, ``import
"file.rules"``, ``const NAME = expr``, ``let name = expr`` and ``rule name {
field: expr ... }`` items. Rule fields are all written as CEL expressions and
checked per field afterwards (``severity: warning`` is an identifier, ``tags:
[...]`` a list of strings), so the file needs no second lexer.

The words CEL reserves (``const``, ``let``, ``import`` among them) are
keywords everywhere; the rule-file words (``rule``, ``schema``) only where an
item may start, thanks to lark's contextual lexer, so a variable may be called
``rule``.
"""

from __future__ import annotations

__all__ = ["GRAMMAR", "RESERVED"]

# Reserved by the CEL spec for future use: never an identifier.
RESERVED = frozenset(
    {
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
    }
)

_BASE = r"""
start_expr: expr
start_file: item*

?item: schema | import_ | const | let | rule
schema: "schema" "{" (decl ","?)* "}"
decl: IDENT ":" type_ref
type_ref: dotted ("(" type_ref ("," type_ref)* ")")?
dotted: IDENT ("." IDENT)*
import_: "import" STRING
const: "const" IDENT "=" expr
let: "let" IDENT "=" expr
rule: "rule" IDENT "{" field* "}"
field: IDENT ":" expr

?expr: cond_or
     | cond_or QUESTION cond_or ":" expr -> conditional

?cond_or: cond_and
        | cond_or OR cond_and -> binary
?cond_and: relation
         | cond_and AND relation -> binary
?relation: addition
         | relation RELOP addition -> binary
         | relation IN addition -> binary
?addition: multiplication
         | addition (PLUS | MINUS) multiplication -> binary
?multiplication: unary
               | multiplication (STAR | SLASH | PERCENT) unary -> binary
?unary: member
      | BANG+ member -> unary
      | MINUS+ member -> unary

?member: primary
       | member DOT IDENT -> select
       | member DOT IDENT LPAR args RPAR -> method
       | member LSQB expr RSQB -> index

?primary: ident
        | DOT? IDENT LPAR args RPAR -> call
        | LPAR expr RPAR -> group
        | LSQB args RSQB -> list_
        | LBRACE map_entries RBRACE -> map_
        | literal

ident: DOT? IDENT
args: (expr ("," expr)* ","?)?
map_entries: (entry ("," entry)* ","?)?
entry: expr ":" expr

?literal: INT -> int_lit
        | UINT -> uint_lit
        | FLOAT -> float_lit
        | STRING -> string_lit
        | TRUE -> bool_lit
        | FALSE -> bool_lit
        | NULL -> null_lit

QUESTION: "?"
OR: "||"
AND: "&&"
RELOP: "<=" | ">=" | "==" | "!=" | "<" | ">"
IN: "in"
PLUS: "+"
MINUS: "-"
STAR: "*"
SLASH: "/"
PERCENT: "%"
BANG: "!"
DOT: "."
LPAR: "("
RPAR: ")"
LSQB: "["
RSQB: "]"
LBRACE: "{"
RBRACE: "}"
TRUE: "true"
FALSE: "false"
NULL: "null"

IDENT: /[_a-zA-Z][_a-zA-Z0-9]*/
FLOAT.4: %FLOAT%
UINT.3: /(0[xX][0-9a-fA-F]+|[0-9]+)[uU](?![_a-zA-Z0-9])/
INT.2: /(0[xX][0-9a-fA-F]+|[0-9]+)(?![_a-zA-Z0-9.])/
STRING.5: %STRINGS%

COMMENT: /\/\/[^\n]*/
%ignore COMMENT
%ignore /[ \t\f\r\n]+/
"""

# Triple-quoted alternatives cannot sit inside the triple-quoted grammar text.
_Q3, _A3 = '"' * 3, "'" * 3
_STRINGS = [
    # raw, triple-quoted: no escapes, ends at the first closing triple quote
    rf"/(?:[bB]?[rR]|[rR][bB]){_Q3}(?:[^\"]|\"(?!\"\"))*{_Q3}/",
    rf"/(?:[bB]?[rR]|[rR][bB]){_A3}(?:[^']|'(?!''))*{_A3}/",
    # raw, one quote: no escapes, no line breaks
    r"""/(?:[bB]?[rR]|[rR][bB])"[^"\n\r]*"/""",
    r"""/(?:[bB]?[rR]|[rR][bB])'[^'\n\r]*'/""",
    # escaped, triple-quoted and one quote
    rf"/[bB]?{_Q3}(?:[^\"\\]|\\[\s\S]|\"(?!\"\"))*{_Q3}/",
    rf"/[bB]?{_A3}(?:[^'\\]|\\[\s\S]|'(?!''))*{_A3}/",
    r"""/[bB]?"(?:[^"\\\n\r]|\\.)*"/""",
    r"""/[bB]?'(?:[^'\\\n\r]|\\.)*'/""",
]
_FLOAT = (
    r"/([0-9]+\.[0-9]+([eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+|\.[0-9]+([eE][+-]?[0-9]+)?)"
    r"(?![_a-zA-Z0-9])/"
)
GRAMMAR = _BASE.replace("%STRINGS%", "\n    | ".join(_STRINGS)).replace("%FLOAT%", _FLOAT)
