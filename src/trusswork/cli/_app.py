"""Argument parsing, subcommand dispatch and the error policy of ``trusswork``.

Subcommands are listed in :data:`COMMANDS` as (name, help, module) rows. The
top-level parser is built from that table alone, so ``trusswork --help``
imports no subcommand module; only the module of the subcommand being run
(or asked for ``--help``) is imported. A subcommand module exposes two
functions::

    def register(parser: argparse.ArgumentParser) -> None: ...  # add arguments
    def run(args: argparse.Namespace) -> int: ...               # do it, return exit code

and must itself import heavy libraries (numpy, rich, matplotlib) inside
``run``, never at module level, so that ``trusswork <name> --help`` stays fast.

Error policy (see the package docstring for the exit codes): a usage mistake
or any :class:`~trusswork.core.errors.TrussworkError` or :class:`OSError`
raised by a command prints one ``trusswork: error: ...`` line; anything else
is a bug and prints its traceback. ``--debug`` (or ``TRUSSWORK_DEBUG=1``)
prints the traceback for every error.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NamedTuple, NoReturn, Protocol, cast

import trusswork
from trusswork.core.errors import InvalidInput, TrussworkError

PROG = "trusswork"
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_BUG = 70
EXIT_INTERRUPTED = 130


class Command(NamedTuple):
    """One row of the subcommand table."""

    name: str
    """What users type: ``trusswork <name>``."""
    help: str
    """One line for ``trusswork --help``."""
    module: str
    """Absolute name of the module with ``register`` and ``run``."""
    passthrough: bool = False
    """Whether arguments after ``--`` are handed to the command as ``args.passthrough``."""


#: Every subcommand, in the order ``trusswork --help`` lists them. A system adds
#: its command by adding one row here and one module under ``trusswork.cli``.
COMMANDS: tuple[Command, ...] = (
    Command(
        "demo", "run a short tour of every system and write an HTML report", "trusswork.cli._demo"
    ),
    Command(
        "bench",
        "run the benchmark suites of a source checkout",
        "trusswork.cli._bench",
        passthrough=True,
    ),
    Command("storage", "check and dump write-ahead log and B+tree files", "trusswork.cli._storage"),
    Command("ratelimit", "serve, check, try and simulate rate limits", "trusswork.cli._ratelimit"),
    Command("retry", "print retry schedules and rerun the jitter study", "trusswork.cli._retry"),
    Command("http", "serve an ASGI app or a trusswork.http.App", "trusswork.cli._http"),
    Command("rules", "check, evaluate and explain CEL rule files", "trusswork.cli._rules"),
    Command("tsdb", "serve, query, load and inspect a time-series store", "trusswork.cli._tsdb"),
    Command("logs", "ingest, query, serve and alert on a log store", "trusswork.cli._logs"),
)


class CommandModule(Protocol):
    """What a subcommand module provides."""

    def register(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


class UsageError(InvalidInput):
    """The arguments of a command are wrong in a way argparse cannot check.

    ``trusswork`` reports it like an argparse error: one line, exit status 2.
    Raise it for, say, a system name that has no benchmark suite.
    """


class _ParserExit(Exception):
    """argparse asked to exit (after --help or --version)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class _ArgumentError(Exception):
    """argparse rejected the command line."""

    def __init__(self, message: str, prog: str) -> None:
        super().__init__(message)
        self.message = message
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise _ArgumentError(message, self.prog)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            sys.stderr.write(message)
        raise _ParserExit(status)


def _build_parser() -> tuple[_Parser, dict[str, _Parser]]:
    parser = _Parser(
        prog=PROG,
        description="trusswork: platform systems with compiled hot paths.",
        epilog="Run 'trusswork <command> --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {trusswork.__version__}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the traceback of every error (also: TRUSSWORK_DEBUG=1)",
    )
    sub = parser.add_subparsers(dest="command", metavar="<command>", title="commands")
    parsers: dict[str, _Parser] = {}
    for command in COMMANDS:
        child = sub.add_parser(command.name, help=command.help, description=command.help)
        # Accepted after the command too; SUPPRESS keeps a top-level --debug intact.
        child.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
        parsers[command.name] = child
    return parser, parsers


def _find_command(argv: Sequence[str]) -> int | None:
    """Index of the subcommand name in ``argv`` (global options take no values)."""
    for index, token in enumerate(argv):
        if token == "--":
            return None
        if not token.startswith("-"):
            return index
    return None


def _load(command: Command) -> CommandModule:
    return cast(CommandModule, importlib.import_module(command.module))


def _parse(argv: list[str]) -> tuple[argparse.Namespace, CommandModule]:
    parser, parsers = _build_parser()
    index = _find_command(argv)
    if index is None:
        parser.parse_args(argv)  # handles --help, --version and bad global flags
        raise _ArgumentError("no command given", PROG)
    by_name = {command.name: command for command in COMMANDS}
    command = by_name.get(argv[index])
    if command is None:
        import difflib

        message = f"unknown command {argv[index]!r}"
        close = difflib.get_close_matches(argv[index], list(by_name), n=1)
        if close:
            message += f"; did you mean {close[0]!r}?"
        else:
            message += f"; commands: {', '.join(by_name)}"
        raise _ArgumentError(message, PROG)
    passthrough: list[str] = []
    if command.passthrough and "--" in argv[index + 1 :]:
        split = argv.index("--", index + 1)
        argv, passthrough = argv[:split], argv[split + 1 :]
    module = _load(command)
    module.register(parsers[command.name])
    try:
        args = parser.parse_args(argv)
    except _ArgumentError as error:
        # Point the hint at the subcommand's help, which lists its options.
        raise _ArgumentError(error.message, f"{PROG} {command.name}") from None
    args.passthrough = passthrough
    return args, module


def _print_error(message: str) -> None:
    lines = message.splitlines() or [""]
    sys.stderr.write(f"{PROG}: error: {lines[0]}\n")
    for line in lines[1:]:
        sys.stderr.write(f"{line}\n")


def _print_traceback(error: BaseException) -> None:
    import traceback

    traceback.print_exception(error)


def _describe_os_error(error: OSError) -> str:
    reason = error.strerror or str(error)
    if error.filename is not None:
        return f"{reason}: {os.fsdecode(error.filename)}"
    return reason


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``trusswork`` command line and return its exit code.

    Parameters
    ----------
    argv:
        The arguments after the program name; ``sys.argv[1:]`` when omitted.

    Returns
    -------
    int
        0 on success, 1 for an error, 2 for a usage mistake, 70 for a bug
        (unexpected exception), 130 when interrupted.
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        args, module = _parse(arguments)
    except _ParserExit as stop:
        return stop.status
    except _ArgumentError as error:
        _print_error(f"{error.message} (see '{error.prog} --help')")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    debug = getattr(args, "debug", False) or os.environ.get("TRUSSWORK_DEBUG", "") not in ("", "0")
    return _run(module, args, debug=debug)


def _run(module: CommandModule, args: argparse.Namespace, *, debug: bool) -> int:
    try:
        return module.run(args)
    except KeyboardInterrupt as interrupt:
        if debug:
            _print_traceback(interrupt)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``trusswork demo | head``): stop quietly, and keep
        # Python from reporting the same broken pipe again when it flushes stdout.
        import contextlib

        # ValueError/OSError: stdout is not a real file (tests, embedding); nothing to do.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
    except (TrussworkError, OSError) as error:
        if debug:
            _print_traceback(error)
        if isinstance(error, TrussworkError):
            _print_error(error.message)
            return EXIT_USAGE if isinstance(error, UsageError) else EXIT_ERROR
        _print_error(_describe_os_error(error))
        return EXIT_ERROR
    except Exception as error:
        _print_traceback(error)
        _print_error(f"internal error ({type(error).__name__}); this is a bug, please report it")
        return EXIT_BUG
