"""Fixtures of the time-series database tests: a database factory that closes what it opens."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from trusswork.tsdb._db import TSDB


@pytest.fixture
def open_db(tmp_path: Path) -> Iterator[Callable[..., TSDB]]:
    """``open_db(**options)`` opens a TSDB in ``tmp_path / "db"`` (background off by default).

    Every database opened is closed at the end of the test.
    """
    opened: list[TSDB] = []

    def factory(path: Path | None = None, **options: Any) -> TSDB:
        options.setdefault("background", False)
        db = TSDB(path or tmp_path / "db", **options)
        opened.append(db)
        return db

    yield factory
    for db in opened:
        db.close()
