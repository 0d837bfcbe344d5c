"""``trusswork bench``: run the benchmark suites of a source checkout.

The suites (``benchmarks/bench_<system>.py``) ship with the source tree, not
with the wheel. The checkout is the nearest directory, from the current one
upwards and then above the imported package (``src/trusswork``), that holds
a ``benchmarks/`` directory and the ``pyproject.toml`` of trusswork.

- ``trusswork bench --quick [SYSTEM ...]`` runs ``benchmarks/track.py
  --quick``: short timings, smaller inputs, and a check of each
  ours-versus-peer ratio against ``benchmarks/floors.toml``.
- ``trusswork bench [SYSTEM ...] [-- PYTEST-ARGS]`` runs the full suites
  under pytest-benchmark and saves the results to ``reports/bench.json``.

Both run with the interpreter running ``trusswork``, in the checkout, and
exit with the status of what they ran.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import trusswork
from trusswork.cli._app import UsageError
from trusswork.core.errors import NotFound

JSON_REPORT = Path("reports") / "bench.json"


def register(parser: argparse.ArgumentParser) -> None:
    parser.usage = "%(prog)s [-h] [--quick] [SYSTEM ...] [-- PYTEST-ARGS ...]"
    parser.epilog = (
        "Arguments after '--' go to pytest (full run only), e.g. "
        "'trusswork bench core -- -k crc32c'."
    )
    parser.add_argument(
        "systems",
        nargs="*",
        metavar="SYSTEM",
        help="suites to run (benchmarks/bench_<SYSTEM>.py); default: all",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="short timings and smaller inputs, then check ratios against floors.toml",
    )


def _package_dir() -> Path:
    return Path(trusswork.__file__).resolve().parent


def _is_trusswork_checkout(directory: Path) -> bool:
    try:
        with open(directory / "pyproject.toml", "rb") as file:
            name = tomllib.load(file).get("project", {}).get("name")
    except (OSError, tomllib.TOMLDecodeError):
        return False
    return name == "trusswork" and (directory / "benchmarks").is_dir()


def find_checkout(start: Path, package_dir: Path) -> Path | None:
    """The trusswork source checkout that holds the benchmarks, or ``None``.

    Looks at ``start`` and its parents, then at the parents of
    ``package_dir`` (for an editable install from ``src/trusswork``).
    """
    start = start.resolve()
    for directory in (start, *start.parents, *package_dir.resolve().parents):
        if _is_trusswork_checkout(directory):
            return directory
    return None


def _suites(checkout: Path) -> list[str]:
    return sorted(
        path.stem.removeprefix("bench_") for path in (checkout / "benchmarks").glob("bench_*.py")
    )


def _command(args: argparse.Namespace, checkout: Path) -> list[str]:
    known = _suites(checkout)
    unknown = [system for system in args.systems if system not in known]
    if unknown:
        raise UsageError(
            f"no benchmark suite for {', '.join(unknown)}; "
            f"suites in {checkout / 'benchmarks'}: {', '.join(known) or 'none'}"
        )
    if args.quick:
        if args.passthrough:
            raise UsageError(
                "pytest arguments after '--' apply to the full run only, not to --quick"
            )
        track = checkout / "benchmarks" / "track.py"
        if not track.is_file():
            raise NotFound(f"{track} not found: the quick check needs benchmarks/track.py")
        return [sys.executable, "benchmarks/track.py", "--quick", *args.systems]
    if not known:
        raise NotFound(f"no benchmarks/bench_*.py suites in {checkout}")
    targets = [f"benchmarks/bench_{system}.py" for system in args.systems or known]
    return [
        sys.executable,
        "-m",
        "pytest",
        *targets,
        # pyproject's python_files does not match bench_*.py; the targets are explicit anyway.
        "-o",
        "python_files=bench_*.py",
        f"--benchmark-json={JSON_REPORT}",
        "--benchmark-columns=min,median,mean,ops,rounds",
        *args.passthrough,
    ]


def run(args: argparse.Namespace) -> int:
    checkout = find_checkout(Path.cwd(), _package_dir())
    if checkout is None:
        raise NotFound(
            "no trusswork source checkout found (a directory with benchmarks/ and trusswork's "
            "pyproject.toml, here or above); the benchmarks ship with the source tree, not "
            "the wheel: run 'trusswork bench' inside a clone of the repository"
        )
    command = _command(args, checkout)
    if not args.quick:
        (checkout / JSON_REPORT.parent).mkdir(exist_ok=True)
    shown = shlex.join(["python", *command[1:]])
    print(f"trusswork bench: running in {checkout}: {shown}", file=sys.stderr, flush=True)
    status = subprocess.run(command, cwd=checkout, check=False).returncode
    if status < 0:  # killed by a signal: report it the way a shell does
        status = 128 - status
    if status == 0 and not args.quick:
        print(
            f"trusswork bench: results in {checkout / JSON_REPORT}; check the ratios with "
            f"'python benchmarks/track.py --json {JSON_REPORT}'",
            file=sys.stderr,
        )
    return status
