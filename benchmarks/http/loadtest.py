"""HTTP load test (``make bench-http``): a thin wrapper of ``trusswork http bench``.

The harness lives in the package, :mod:`trusswork.http.loadtest`, so that
``trusswork http bench`` works from an installed wheel; this script keeps
the source-checkout entry point. Arguments are those of the command::

    .venv/bin/python benchmarks/http/loadtest.py
        [--servers uvicorn,granian,trusswork,trusswork-native]
        [--routes plaintext,json,static] [--connections 16,64,256]
        [--duration 5] [--rounds 3] [--out reports/http]
        [--generator auto|wrk|builtin] [--knobs [KNOB,...]]
"""

from __future__ import annotations

import sys

from trusswork.cli import main

if __name__ == "__main__":
    sys.exit(main(["http", "bench", *sys.argv[1:]]))
