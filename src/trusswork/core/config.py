"""Settings from arguments, environment and ``trusswork.toml``, in one precedence.

A component describes its settings as a dataclass with defaults, and the CLI
or a server fills one in with :func:`load_config`. For each field the first
source that sets it wins:

1. ``overrides``: explicit arguments (constructor keywords, CLI options).
   ``None`` values are skipped, so ``vars(argparse_namespace)`` can be
   passed after removing non-setting keys.
2. Environment variables ``TRUSSWORK_<SECTION>_<FIELD>`` (upper case), e.g.
   ``TRUSSWORK_HTTP_PORT``. Variables that name no field are ignored, since
   another section may own them.
3. The ``[section]`` table of a TOML file: ``path`` if given (it must exist),
   else ``./trusswork.toml`` when that file exists. Unknown keys are errors.
   Relative paths in ``pathlib.Path`` fields are resolved against the
   directory of the TOML file, so a config file means the same thing from
   any working directory.
4. The dataclass field's default. A field without a default must be set by
   one of the sources above.

Supported field types: ``str``, ``int``, ``float``, ``bool``,
``pathlib.Path``, :data:`Seconds`, and ``X | None`` of any of these.
:data:`Seconds` is ``Annotated[float, ...]``: type checkers see a plain
``float`` (so ``timeout: Seconds = 5.0`` needs no wrapping), and strings
such as ``"250ms"``, ``"5s"``, ``"2m"``, ``"1h"`` or ``"1m30s"`` are accepted
from every source (see :func:`parse_duration`).

Text from environment variables (and string overrides) is converted per
type: ``int``/``float`` as Python literals, ``bool`` from ``1/0``,
``true/false``, ``yes/no``, ``on/off`` (any case), and an empty variable sets
a ``X | None`` field to ``None``. TOML values must already have the right
TOML type (an ``int`` is accepted for ``float`` fields).

Errors: malformed TOML raises :class:`~trusswork.core.errors.ParseError`
pointing at the file, line and column; unknown keys and badly typed values
raise :class:`~trusswork.core.errors.InvalidInput` naming the source (file
and key, or the variable); an explicit ``path`` that does not exist raises
:class:`~trusswork.core.errors.NotFound`. A ``cls`` that is not a dataclass,
or a field of an unsupported type, is a programming error: ``TypeError``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Final, TypeVar, Union, final

from trusswork.core.errors import InvalidInput, NotFound, ParseError

__all__ = ["CONFIG_FILENAME", "ENV_PREFIX", "Seconds", "load_config", "parse_duration", "read_toml"]

T = TypeVar("T")

CONFIG_FILENAME: Final = "trusswork.toml"
"""The file :func:`load_config` reads from the working directory when no path is given."""

ENV_PREFIX: Final = "TRUSSWORK_"
"""Prefix of the environment variables :func:`load_config` reads."""


@final
class _SecondsMarker:
    def __repr__(self) -> str:
        return "seconds"


_SECONDS: Final = _SecondsMarker()

Seconds = Annotated[float, _SECONDS]
"""A duration in seconds: a ``float`` that config sources may also give as ``"250ms"``."""

_UNITS: Final = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_DURATION_PART = re.compile(rf"({_NUMBER})(ns|us|µs|ms|s|m|h|d)")
_DURATION = re.compile(rf"(?:{_NUMBER}(?:ns|us|µs|ms|s|m|h|d))+")
_BARE_NUMBER = re.compile(rf"{_NUMBER}(?:[eE][+-]?\d+)?")
_SECTION = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
_TOML_AT_END = re.compile(r"\s*\(at end of document\)$")
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})


def parse_duration(text: str) -> float:
    """Seconds in a duration string: ``"250ms"``, ``"5s"``, ``"2m"``, ``"1h30m"``, ``"1.5"``.

    Units are ``ns``, ``us`` (or ``µs``), ``ms``, ``s``, ``m``, ``h`` and
    ``d``; several number-unit pairs add up (``"1m30s"`` is 90). A bare
    number is seconds. Surrounding whitespace is ignored.

    Raises
    ------
    InvalidInput
        If ``text`` is not such a duration (negative durations included).
    """
    stripped = text.strip()
    if _BARE_NUMBER.fullmatch(stripped):
        return float(stripped)
    if not _DURATION.fullmatch(stripped):
        raise InvalidInput(
            f"{text!r} is not a duration: use a number of seconds or a number with a unit "
            "(ns, us, ms, s, m, h, d), such as 250ms, 5s, 2m, 1h or 1m30s"
        )
    return sum(float(n) * _UNITS[unit] for n, unit in _DURATION_PART.findall(stripped))


@dataclasses.dataclass(frozen=True, slots=True)
class _Field:
    name: str
    base: type  # str, int, float, bool or Path
    seconds: bool
    optional: bool

    @property
    def expected(self) -> str:
        if self.seconds:
            what = "a duration such as 250ms, 5s, 2m or 1h"
        else:
            what = {
                str: "a string",
                int: "an int",
                float: "a float",
                bool: "a bool (1/0, true/false, yes/no, on/off)",
                Path: "a path",
            }[self.base]
        return what + " or nothing (None)" if self.optional else what


def _describe_field(cls: type, name: str, hint: Any) -> _Field:
    optional = False
    origin = typing.get_origin(hint)
    if origin is Union or origin is types.UnionType:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) != 1 or len(typing.get_args(hint)) != 2:
            raise TypeError(f"{cls.__name__}.{name}: unsupported type {hint!r} for a config field")
        optional = True
        hint = args[0]
        origin = typing.get_origin(hint)
    seconds = False
    if origin is Annotated:
        base, *extras = typing.get_args(hint)
        if _SECONDS in extras and base is float:
            seconds = True
            hint = float
        elif _SECONDS in extras and typing.get_args(base) and type(None) in typing.get_args(base):
            # Annotated[float | None, ...]
            return dataclasses.replace(
                _describe_field(cls, name, Annotated[float, _SECONDS]), optional=True
            )
        else:
            hint = base
    if hint not in (str, int, float, bool, Path):
        raise TypeError(
            f"{cls.__name__}.{name}: unsupported type {hint!r} for a config field "
            "(use str, int, float, bool, pathlib.Path, Seconds, or X | None of those)"
        )
    return _Field(name, hint, seconds, optional)


def _fields(cls: type) -> dict[str, _Field]:
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"load_config needs a dataclass type, got {cls!r}")
    try:
        hints = typing.get_type_hints(cls, include_extras=True)
    except NameError:
        # String annotations (PEP 563) that the class's module cannot resolve:
        # a class made inside a function or by exec(). Retry with the names
        # this module supports; anything else stays an error.
        known = {"Seconds": Seconds, "Path": Path, "Annotated": Annotated, "typing": typing}
        try:
            hints = typing.get_type_hints(cls, localns=known, include_extras=True)
        except NameError as exc:
            raise TypeError(f"{cls.__name__}: cannot resolve a field annotation: {exc}") from None
    return {
        f.name: _describe_field(cls, f.name, hints[f.name])
        for f in dataclasses.fields(cls)
        if f.init
    }


def _from_text(field: _Field, text: str, source: str) -> Any:
    """Convert environment (or string override) text for ``field``."""
    if field.optional and text == "":
        return None
    try:
        if field.seconds:
            return parse_duration(text)
        if field.base is bool:
            word = text.strip().lower()
            if word in _TRUE:
                return True
            if word in _FALSE:
                return False
            raise ValueError(text)
        if field.base is Path:
            return Path(text)
        if field.base is float:
            value = float(text)
            if math.isnan(value):
                raise ValueError(text)
            return value
        if field.base is int:
            return int(text)
        return text
    except ValueError:
        raise InvalidInput(f"{source}={text!r}: expected {field.expected}") from None


def _from_value(field: _Field, value: Any, source: str) -> Any:
    """Check a typed value (TOML or override) for ``field``."""
    if value is None and field.optional:
        return None
    base = field.base
    if field.seconds and isinstance(value, str):
        try:
            return parse_duration(value)
        except InvalidInput:
            raise InvalidInput(f"{source}={value!r}: expected {field.expected}") from None
    if base is bool:
        ok = isinstance(value, bool)
    elif base is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif base is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok:
            value = float(value)
            if field.seconds and not value >= 0:
                ok = False
    elif base is Path:
        ok = isinstance(value, str | os.PathLike)
        if ok:
            value = Path(value)
    else:
        ok = isinstance(value, str)
    if not ok:
        raise InvalidInput(f"{source}={value!r}: expected {field.expected}")
    return value


def read_toml(path: Path) -> dict[str, Any]:
    """The TOML file at ``path`` as a dict.

    Raises
    ------
    ParseError
        For bytes that are not UTF-8 or text that is not TOML, with the file
        name, line and column.
    """
    import tomllib  # lazily: most imports of trusswork.core never read a file

    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        source = raw[: exc.start].decode("utf-8", errors="replace")
        raise ParseError(
            "not valid UTF-8", source=source, offset=len(source), filename=str(path)
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        position = _TOML_POSITION.search(message)
        if position is not None:
            raise ParseError(
                message[: position.start()],
                source=text,
                line=int(position.group(1)),
                column=int(position.group(2)),
                filename=str(path),
            ) from None
        at_end = _TOML_AT_END.search(message)
        reason = message[: at_end.start()] if at_end else message
        raise ParseError(reason, source=text, offset=len(text), filename=str(path)) from None


def _did_you_mean(key: str, valid: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(key, valid, n=3)
    return f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""


def load_config(
    cls: type[T],
    section: str,
    *,
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> T:
    """Build ``cls`` from overrides, environment, ``trusswork.toml`` and defaults.

    Parameters
    ----------
    cls:
        A dataclass (usually frozen) whose fields are the settings.
    section:
        The TOML table (``[http]``) and the environment infix
        (``TRUSSWORK_HTTP_...``); letters, digits and ``_``.
    path:
        The TOML file to read. ``None`` reads ``./trusswork.toml`` if it
        exists and nothing otherwise.
    environ:
        The environment to read; ``os.environ`` when ``None``.
    overrides:
        Explicit values by field name; they win over everything. ``None``
        values are skipped. Strings are converted like environment text.

    Returns
    -------
    T
        ``cls(**settings)``; its ``__post_init__`` validation runs as usual.

    Raises
    ------
    ParseError
        If the TOML file is malformed (file, line, column and caret shown).
    InvalidInput
        For an unknown key in the TOML section or in ``overrides``, a value
        of the wrong type, or a required field that no source sets.
    NotFound
        If ``path`` is given and does not exist.
    TypeError
        If ``cls`` is not a dataclass or has a field of an unsupported type.
    """
    fields = _fields(cls)
    if not isinstance(section, str) or not _SECTION.fullmatch(section):
        raise InvalidInput(
            f"config section {section!r} must be letters, digits and '_' (it names "
            "a TOML table and an environment variable infix)"
        )
    valid = sorted(fields)
    values: dict[str, Any] = {}

    file = Path(path) if path is not None else Path(CONFIG_FILENAME)
    if path is not None and not file.is_file():
        raise NotFound(f"config file {str(file)!r} does not exist")
    if file.is_file():
        table = read_toml(file).get(section, {})
        where = f"{file} [{section}]"
        if not isinstance(table, dict):
            raise InvalidInput(f"{file}: {section!r} must be a table ([{section}]), not a value")
        for key, value in table.items():
            field = fields.get(key)
            if field is None:
                raise InvalidInput(
                    f"{where}: unknown key {key!r}{_did_you_mean(key, valid)}; "
                    f"valid keys: {', '.join(valid)}"
                )
            converted = _from_value(field, value, f"{where} {key}")
            if isinstance(converted, Path) and not converted.is_absolute():
                converted = file.parent / converted
            values[key] = converted

    env = os.environ if environ is None else environ
    prefix = f"{ENV_PREFIX}{section.upper()}_"
    for name, field in fields.items():
        variable = prefix + name.upper()
        text = env.get(variable)
        if text is not None:
            values[name] = _from_text(field, text, variable)

    for key, value in (overrides or {}).items():
        field = fields.get(key)
        if field is None:
            raise InvalidInput(
                f"unknown setting {key!r} for [{section}]{_did_you_mean(key, valid)}; "
                f"valid settings: {', '.join(valid)}"
            )
        if value is None:
            continue
        convert: Callable[[_Field, Any, str], Any] = (
            _from_text if isinstance(value, str) and field.base is not str else _from_value
        )
        values[key] = convert(field, value, f"argument {key}")

    for f in dataclasses.fields(cls):  # type: ignore[arg-type]  # checked by _fields
        if f.init and f.name not in values and _is_required(f):
            raise InvalidInput(
                f"setting {section}.{f.name} is required: pass it, set "
                f"{prefix}{f.name.upper()}, or add {f.name} = ... under [{section}] "
                f"in {CONFIG_FILENAME}"
            )
    return cls(**values)


def _is_required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
