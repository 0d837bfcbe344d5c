"""``python -m trusswork``: the same command line as the ``trusswork`` script."""

from trusswork.cli import main

raise SystemExit(main())
