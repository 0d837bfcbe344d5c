"""The ``trusswork`` command line.

``main(argv)`` parses the arguments, runs one subcommand and returns the
process exit code; it never calls :func:`sys.exit` itself, so tests and
embedding programs call it in-process. Exit codes:

====  =============================================================
0     success
1     an error the user can act on (any ``TrussworkError``, an OS
      error such as a missing file), reported as one line on stderr
2     a usage mistake: unknown command, bad flag or argument
70    a bug: an unexpected exception, reported with its traceback
130   interrupted (Ctrl-C)
====  =============================================================

Importing this package imports only :mod:`argparse`; each subcommand's
module, and the heavy libraries it needs, load when that subcommand runs.
"""

from trusswork.cli._app import main as main

__all__ = ["main"]
