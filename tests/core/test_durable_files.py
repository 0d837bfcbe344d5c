"""Durable file operations: contents land, replacements are whole, published directories move."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from trusswork.core.files import fsync_directory, publish_directory, replace_file, write_file


def test_write_file_creates_and_truncates(tmp_path: Path) -> None:
    path = tmp_path / "f"
    write_file(path, b"first version")
    write_file(path, b"second")
    assert path.read_bytes() == b"second"


def test_replace_file_leaves_no_temporary_behind(tmp_path: Path) -> None:
    path = tmp_path / "head.json"
    replace_file(path, b'{"a": 1}')
    replace_file(path, b'{"a": 2}')
    assert path.read_bytes() == b'{"a": 2}'
    assert sorted(os.listdir(tmp_path)) == ["head.json"]


def test_publish_directory_moves_a_finished_directory(tmp_path: Path) -> None:
    tmp = tmp_path / "block.tmp"
    tmp.mkdir()
    write_file(tmp / "data", b"x")
    publish_directory(tmp, tmp_path / "block")
    assert not tmp.exists()
    assert (tmp_path / "block" / "data").read_bytes() == b"x"


def test_fsync_directory_refuses_a_file(tmp_path: Path) -> None:
    write_file(tmp_path / "f", b"")
    fsync_directory(tmp_path)
    with pytest.raises(NotADirectoryError):
        fsync_directory(tmp_path / "f")
