"""trusswork.http file serving: no path traversal, validators, conditional GET, ranges."""

from __future__ import annotations

import os
from email.utils import formatdate
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trusswork.core.errors import NotFound
from trusswork.http._files import etag_of, plan, resolve_under


@pytest.fixture
def root(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    (site / "css").mkdir(parents=True)
    (site / "index.html").write_bytes(b"<h1>hi</h1>")
    (site / "css" / "a.css").write_bytes(b"body{}")
    (tmp_path / "secret.txt").write_bytes(b"password")
    return site


def test_files_inside_the_root_resolve(root: Path) -> None:
    assert resolve_under(root, "/index.html") == (root / "index.html").resolve()
    assert resolve_under(root, "css/a.css").read_bytes() == b"body{}"
    assert resolve_under(root, "/./css//a.css").name == "a.css"


@pytest.mark.parametrize(
    "path",
    [
        "/../secret.txt",
        "/css/../../secret.txt",
        "..",
        "/css/..",
        "/index.html\x00.png",
        "/..\\secret.txt",
        "/",
        "/css",
        "/missing.html",
    ],
)
def test_traversal_and_missing_files_are_not_found(root: Path, path: str) -> None:
    with pytest.raises(NotFound):
        resolve_under(root, path)


def test_symlinks_out_of_the_root_are_not_followed(root: Path) -> None:
    (root / "escape").symlink_to(root.parent / "secret.txt")
    (root / "dir").symlink_to(root.parent)
    with pytest.raises(NotFound):
        resolve_under(root, "/escape")
    with pytest.raises(NotFound):
        resolve_under(root, "/dir/secret.txt")
    (root / "inside").symlink_to(root / "index.html")
    assert resolve_under(root, "/inside").name == "index.html"


@given(st.lists(st.sampled_from(["..", ".", "css", "a.css", "", "secret.txt", "x"]), max_size=6))
def test_no_path_ever_resolves_outside_the_root(
    tmp_path_factory: pytest.TempPathFactory, parts: list[str]
) -> None:
    base = tmp_path_factory.getbasetemp() / "fuzzroot"
    site = base / "site"
    (site / "css").mkdir(parents=True, exist_ok=True)
    (site / "css" / "a.css").write_bytes(b"x")
    (base / "secret.txt").write_bytes(b"s")
    try:
        found = resolve_under(site, "/".join(parts))
    except NotFound:
        return
    assert found.is_relative_to(site.resolve())


def stat_of(path: Path) -> os.stat_result:
    return path.stat()


def headers_of(answer: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    return dict(answer)


def test_plain_get_sends_the_whole_file_with_validators(root: Path) -> None:
    st_ = stat_of(root / "index.html")
    answer = plan(st_, [], name="index.html")
    headers = headers_of(answer.headers)
    assert (answer.status, answer.offset, answer.length) == (200, 0, 11)
    assert headers[b"content-type"] == b"text/html"
    assert headers[b"content-length"] == b"11"
    assert headers[b"etag"] == etag_of(st_).encode()
    assert headers[b"last-modified"] == formatdate(int(st_.st_mtime), usegmt=True).encode()
    assert headers[b"accept-ranges"] == b"bytes"


def test_if_none_match_with_the_current_etag_is_304(root: Path) -> None:
    st_ = stat_of(root / "index.html")
    etag = etag_of(st_).encode()
    assert plan(st_, [(b"If-None-Match", etag)]).status == 304
    assert plan(st_, [(b"if-none-match", b'"other", W/' + etag)]).status == 304
    assert plan(st_, [(b"if-none-match", b"*")]).status == 304
    assert plan(st_, [(b"if-none-match", b'"other"')]).status == 200


def test_if_modified_since(root: Path) -> None:
    st_ = stat_of(root / "index.html")
    now = formatdate(int(st_.st_mtime), usegmt=True).encode()
    before = formatdate(int(st_.st_mtime) - 60, usegmt=True).encode()
    assert plan(st_, [(b"if-modified-since", now)]).status == 304
    assert plan(st_, [(b"if-modified-since", before)]).status == 200
    assert plan(st_, [(b"if-modified-since", b"not a date")]).status == 200
    # If-None-Match takes precedence over If-Modified-Since.
    assert plan(st_, [(b"if-none-match", b'"x"'), (b"if-modified-since", now)]).status == 200


def test_failed_preconditions_are_412(root: Path) -> None:
    st_ = stat_of(root / "index.html")
    assert plan(st_, [(b"if-match", b'"stale"')]).status == 412
    assert plan(st_, [(b"if-match", etag_of(st_).encode())]).status == 200
    earlier = formatdate(int(st_.st_mtime) - 60, usegmt=True).encode()
    assert plan(st_, [(b"if-unmodified-since", earlier)]).status == 412


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (b"bytes=0-3", (206, 0, 4, b"bytes 0-3/11")),
        (b"bytes=5-", (206, 5, 6, b"bytes 5-10/11")),
        (b"bytes=-4", (206, 7, 4, b"bytes 7-10/11")),
        (b"bytes=-100", (206, 0, 11, b"bytes 0-10/11")),
        (b"bytes=3-1000", (206, 3, 8, b"bytes 3-10/11")),
        (b"bytes=11-", (416, 0, 0, b"bytes */11")),
        (b"bytes=-0", (416, 0, 0, b"bytes */11")),
        (b"bytes=0-1,5-6", (200, 0, 11, None)),
        (b"lines=0-1", (200, 0, 11, None)),
        (b"bytes=5-2", (200, 0, 11, None)),
        (b"bytes=x-y", (200, 0, 11, None)),
    ],
)
def test_ranges(root: Path, header: bytes, expected: tuple[int, int, int, bytes | None]) -> None:
    answer = plan(stat_of(root / "index.html"), [(b"range", header)])
    headers = headers_of(answer.headers)
    status, offset, length, content_range = expected
    assert (answer.status, answer.offset, answer.length) == (status, offset, length)
    assert headers.get(b"content-range") == content_range
    if status == 206:
        assert headers[b"content-length"] == b"%d" % length


def test_if_range_serves_the_range_only_while_the_validator_holds(root: Path) -> None:
    st_ = stat_of(root / "index.html")
    etag = etag_of(st_).encode()
    assert plan(st_, [(b"range", b"bytes=0-1"), (b"if-range", etag)]).status == 206
    assert plan(st_, [(b"range", b"bytes=0-1"), (b"if-range", b'"old"')]).status == 200
    assert plan(st_, [(b"range", b"bytes=0-1"), (b"if-range", b"W/" + etag)]).status == 200
    date = formatdate(int(st_.st_mtime), usegmt=True).encode()
    assert plan(st_, [(b"range", b"bytes=0-1"), (b"if-range", date)]).status == 206


def test_empty_files_have_no_satisfiable_range(root: Path) -> None:
    empty = root / "empty"
    empty.write_bytes(b"")
    assert plan(stat_of(empty), [(b"range", b"bytes=0-")]).status == 416
    assert plan(stat_of(empty), []).length == 0
