"""trusswork.core.config: precedence of sources, conversions, and error messages."""

from __future__ import annotations

import dataclasses
import os
import typing
from pathlib import Path
from typing import Annotated, Any

import pytest

from trusswork.core.config import Seconds, load_config, parse_duration
from trusswork.core.errors import InvalidInput, NotFound, ParseError


@dataclasses.dataclass(frozen=True)
class HTTPSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    ratio: float = 0.5
    debug: bool = False
    root: Path = Path("www")
    timeout: Seconds = 5.0
    idle: Seconds | None = None
    name: str | None = None


SECONDS_MARKER = typing.get_args(Seconds)[1]


def write(tmp_path: Path, text: str, name: str = "trusswork.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_when_no_source_sets_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./trusswork.toml here
    assert load_config(HTTPSettings, "http", environ={}) == HTTPSettings()


def test_toml_overrides_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, '[http]\nport = 9000\nratio = 1\nhost = "0.0.0.0"\n[other]\nport = 1\n')
    settings = load_config(HTTPSettings, "http", path=path, environ={})
    assert settings == HTTPSettings(host="0.0.0.0", port=9000, ratio=1.0)
    assert isinstance(settings.ratio, float)


def test_environment_overrides_toml(tmp_path: Path) -> None:
    path = write(tmp_path, "[http]\nport = 9000\ndebug = false\n")
    env = {
        "TRUSSWORK_HTTP_PORT": "9100",
        "TRUSSWORK_HTTP_DEBUG": "yes",
        "TRUSSWORK_OTHER_PORT": "1",
    }
    settings = load_config(HTTPSettings, "http", path=path, environ=env)
    assert (settings.port, settings.debug) == (9100, True)


def test_overrides_beat_environment_and_none_means_not_given(tmp_path: Path) -> None:
    path = write(tmp_path, "[http]\nport = 9000\nhost = 'file'\n")
    env = {"TRUSSWORK_HTTP_PORT": "9100", "TRUSSWORK_HTTP_HOST": "env"}
    settings = load_config(
        HTTPSettings, "http", path=path, environ=env, overrides={"port": 9200, "host": None}
    )
    assert (settings.port, settings.host) == (9200, "env")


def test_reads_trusswork_toml_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "[http]\nport = 7000\n")
    monkeypatch.chdir(tmp_path)
    assert load_config(HTTPSettings, "http", environ={}).port == 7000


def test_uses_os_environ_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRUSSWORK_HTTP_PORT", "6000")
    assert load_config(HTTPSettings, "http").port == 6000


def test_missing_section_leaves_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "[storage]\ndir = 'x'\n")
    assert load_config(HTTPSettings, "http", path=path, environ={}) == HTTPSettings()


def test_relative_paths_in_toml_resolve_against_the_file(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    path = write(tmp_path / "conf", "[http]\nroot = 'static'\n")
    assert (
        load_config(HTTPSettings, "http", path=path, environ={}).root
        == tmp_path / "conf" / "static"
    )
    absolute = write(tmp_path, "[http]\nroot = '/srv/www'\n", name="abs.toml")
    assert load_config(HTTPSettings, "http", path=absolute, environ={}).root == Path("/srv/www")
    env = {"TRUSSWORK_HTTP_ROOT": "rel"}
    assert load_config(HTTPSettings, "http", path=path, environ=env).root == Path("rel")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("5s", 5.0),
        ("2m", 120.0),
        ("1h", 3600.0),
        ("1d", 86400.0),
        ("1m30s", 90.0),
        ("1.5", 1.5),
        (" 10 ", 10.0),
        ("2e3", 2000.0),
        ("500us", 0.0005),
        ("500µs", 0.0005),
        ("100ns", 1e-7),
        ("0", 0.0),
        (".5s", 0.5),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "-5s", "5 s", "5x", "s", "1h-30m", "abc", "nan", "inf"])
def test_parse_duration_refuses_garbage(text: str) -> None:
    with pytest.raises(InvalidInput, match="not a duration"):
        parse_duration(text)


def test_seconds_fields_accept_durations_from_every_source(tmp_path: Path) -> None:
    path = write(tmp_path, "[http]\ntimeout = '2m'\nidle = 3\n")
    settings = load_config(HTTPSettings, "http", path=path, environ={})
    assert (settings.timeout, settings.idle) == (120.0, 3.0)
    settings = load_config(
        HTTPSettings, "http", environ={"TRUSSWORK_HTTP_TIMEOUT": "250ms"}, path=path
    )
    assert settings.timeout == 0.25
    settings = load_config(HTTPSettings, "http", path=path, environ={}, overrides={"timeout": "1h"})
    assert settings.timeout == 3600.0


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", True),
        ("0", False),
        ("true", True),
        ("FALSE", False),
        ("Yes", True),
        ("no", False),
        ("on", True),
        ("off", False),
    ],
)
def test_bools_from_environment(text: str, value: bool) -> None:
    env = {"TRUSSWORK_HTTP_DEBUG": text}
    assert load_config(HTTPSettings, "http", path=None, environ=env, overrides={}).debug is value


def test_empty_variable_sets_an_optional_field_to_none_but_not_a_string(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"TRUSSWORK_HTTP_IDLE": "", "TRUSSWORK_HTTP_NAME": "", "TRUSSWORK_HTTP_HOST": ""}
    settings = load_config(HTTPSettings, "http", environ=env)
    assert (settings.idle, settings.name, settings.host) == (None, None, "")


@pytest.mark.parametrize(
    ("variable", "text", "message"),
    [
        ("PORT", "abc", "TRUSSWORK_HTTP_PORT='abc': expected an int"),
        ("PORT", "8.5", "TRUSSWORK_HTTP_PORT='8.5': expected an int"),
        ("RATIO", "half", "TRUSSWORK_HTTP_RATIO='half': expected a float"),
        ("RATIO", "nan", "TRUSSWORK_HTTP_RATIO='nan': expected a float"),
        ("DEBUG", "maybe", "TRUSSWORK_HTTP_DEBUG='maybe': expected a bool"),
        ("TIMEOUT", "soon", "TRUSSWORK_HTTP_TIMEOUT='soon': expected a duration"),
        ("IDLE", "-1", "TRUSSWORK_HTTP_IDLE='-1': expected a duration .* or nothing"),
    ],
)
def test_bad_environment_values_name_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, text: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidInput, match=message):
        load_config(HTTPSettings, "http", environ={f"TRUSSWORK_HTTP_{variable}": text})


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("port = 'abc'", r"\[http\] port='abc': expected an int"),
        ("port = true", r"\[http\] port=True: expected an int"),
        ("ratio = 'x'", r"\[http\] ratio='x': expected a float"),
        ("debug = 1", r"\[http\] debug=1: expected a bool"),
        ("host = 5", r"\[http\] host=5: expected a string"),
        ("root = 5", r"\[http\] root=5: expected a path"),
        ("timeout = 'soon'", r"\[http\] timeout='soon': expected a duration"),
        ("timeout = -1", r"\[http\] timeout=-1.0: expected a duration"),
    ],
)
def test_bad_toml_values_name_file_and_key(tmp_path: Path, line: str, message: str) -> None:
    path = write(tmp_path, f"[http]\n{line}\n")
    with pytest.raises(InvalidInput, match=message) as info:
        load_config(HTTPSettings, "http", path=path, environ={})
    assert str(info.value).startswith(str(path))


def test_bad_override_values_name_the_argument() -> None:
    with pytest.raises(InvalidInput, match="argument port='x': expected an int"):
        load_config(HTTPSettings, "http", path=None, environ={}, overrides={"port": "x"})
    with pytest.raises(InvalidInput, match=r"argument port=1\.5: expected an int"):
        load_config(HTTPSettings, "http", path=None, environ={}, overrides={"port": 1.5})


def test_string_overrides_convert_like_environment_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_config(
        HTTPSettings,
        "http",
        environ={},
        overrides={"port": "81", "debug": "on", "root": "/x", "ratio": 2},
    )
    assert (settings.port, settings.debug, settings.root, settings.ratio) == (
        81,
        True,
        Path("/x"),
        2.0,
    )


def test_unknown_toml_key_names_file_key_and_valid_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "[http]\npotr = 1\n")
    with pytest.raises(InvalidInput) as info:
        load_config(HTTPSettings, "http", path=path, environ={})
    message = str(info.value)
    assert message.startswith(f"{path} [http]: unknown key 'potr'")
    assert "did you mean 'port'" in message
    assert "valid keys: debug, host, idle, name, port, ratio, root, timeout" in message


def test_unknown_override_is_refused() -> None:
    with pytest.raises(InvalidInput, match=r"unknown setting 'hots'.*did you mean 'host'"):
        load_config(HTTPSettings, "http", path=None, environ={}, overrides={"hots": "x"})


def test_unknown_environment_variables_are_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"TRUSSWORK_HTTP_PROXY_URL": "x", "TRUSSWORK_HTTP_PROT": "1"}
    assert load_config(HTTPSettings, "http", environ=env) == HTTPSettings()


def test_toml_syntax_error_points_at_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, '[http]\nport = 80\nhost = "a" "b"\n')
    with pytest.raises(ParseError) as info:
        load_config(HTTPSettings, "http", path=path, environ={})
    error = info.value
    assert (error.filename, error.line, error.column) == (str(path), 3, 12)
    assert str(error).splitlines() == [
        f"{path}:3:12: Expected newline or end of document after a statement",
        '  3 | host = "a" "b"',
        "    |            ^",
    ]
    assert isinstance(error, InvalidInput)


def test_toml_error_at_end_of_document(tmp_path: Path) -> None:
    path = write(tmp_path, "[http]\nport = ")
    with pytest.raises(ParseError, match=r"trusswork.toml:2:8: Invalid value") as info:
        load_config(HTTPSettings, "http", path=path, environ={})
    assert info.value.line == 2


def test_toml_that_is_not_utf8_is_a_parse_error(tmp_path: Path) -> None:
    path = tmp_path / "trusswork.toml"
    path.write_bytes(b"[http]\nhost = '\xff'\n")
    with pytest.raises(ParseError, match=r"trusswork.toml:2:9: not valid UTF-8"):
        load_config(HTTPSettings, "http", path=path, environ={})


def test_section_that_is_not_a_table(tmp_path: Path) -> None:
    path = write(tmp_path, "http = 5\n")
    with pytest.raises(InvalidInput, match="must be a table"):
        load_config(HTTPSettings, "http", path=path, environ={})


def test_explicit_path_must_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(NotFound, match="does not exist"):
        load_config(HTTPSettings, "http", path=missing, environ={})
    with pytest.raises(NotFound):
        load_config(HTTPSettings, "http", path=os.fspath(missing), environ={})


@dataclasses.dataclass(frozen=True)
class Required:
    url: str
    retries: int = 3


def test_required_field_must_come_from_somewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidInput, match=r"setting db\.url is required.*TRUSSWORK_DB_URL"):
        load_config(Required, "db", environ={})
    assert load_config(Required, "db", environ={"TRUSSWORK_DB_URL": "x"}) == Required(url="x")


def test_post_init_validation_still_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    @dataclasses.dataclass(frozen=True)
    class Checked:
        workers: int = 1

        def __post_init__(self) -> None:
            if self.workers < 1:
                raise InvalidInput(f"workers must be >= 1, got {self.workers}")

    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidInput, match="workers must be >= 1"):
        load_config(Checked, "pool", environ={"TRUSSWORK_POOL_WORKERS": "0"})


def test_optional_seconds_written_either_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    @dataclasses.dataclass(frozen=True)
    class Both:
        a: Seconds | None = None
        b: Annotated[float | None, SECONDS_MARKER] = None

    monkeypatch.chdir(tmp_path)
    env = {"TRUSSWORK_X_A": "2m", "TRUSSWORK_X_B": "3s"}
    assert load_config(Both, "x", environ=env) == Both(a=120.0, b=3.0)


def test_programming_errors_are_type_errors() -> None:
    @dataclasses.dataclass
    class Unsupported:
        tags: list[str] = dataclasses.field(default_factory=list)

    class NotADataclass:
        pass

    with pytest.raises(TypeError, match="unsupported type"):
        load_config(Unsupported, "x", environ={})
    with pytest.raises(TypeError, match="dataclass"):
        load_config(NotADataclass, "x", environ={})


@pytest.mark.parametrize("section", ["", "a.b", "has space", "1x"])
def test_bad_section_names(section: str) -> None:
    with pytest.raises(InvalidInput, match="section"):
        load_config(HTTPSettings, section, environ={})


def test_loading_does_not_mutate_inputs(tmp_path: Path) -> None:
    env: dict[str, str] = {"TRUSSWORK_HTTP_PORT": "1"}
    overrides: dict[str, Any] = {"host": "h"}
    load_config(
        HTTPSettings, "http", path=write(tmp_path, "[http]\n"), environ=env, overrides=overrides
    )
    assert env == {"TRUSSWORK_HTTP_PORT": "1"}
    assert overrides == {"host": "h"}


def test_string_annotations_outside_a_module_still_resolve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A dataclass built by exec() under PEP 563 (as doc examples are) has string
    # annotations its __module__ cannot resolve.
    code = (
        "from __future__ import annotations\n"
        "import dataclasses\n"
        "from pathlib import Path\n"
        "from trusswork.core.config import Seconds\n"
        "@dataclasses.dataclass(frozen=True)\n"
        "class Made:\n"
        "    timeout: Seconds = 1.0\n"
        "    root: Path | None = None\n"
        "@dataclasses.dataclass(frozen=True)\n"
        "class Unknown:\n"
        "    x: Mystery = 1\n"
    )
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(code, "<example>", "exec", dont_inherit=True), namespace)
    monkeypatch.chdir(tmp_path)
    env = {"TRUSSWORK_X_TIMEOUT": "2s", "TRUSSWORK_X_ROOT": "r"}
    made = load_config(namespace["Made"], "x", environ=env)
    assert (made.timeout, made.root) == (2.0, Path("r"))
    with pytest.raises(TypeError, match="cannot resolve"):
        load_config(namespace["Unknown"], "x", environ={})
