"""Time-series store: compressed chunks in C, blocks, rollups and PromQL.

(Being built in issue 7; public names are re-exported here as they land.)
"""

from __future__ import annotations
