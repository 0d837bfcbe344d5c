"""How fast IndexWriter indexes log lines, and where the time and bytes go.

Not a pytest benchmark: a script to run by hand (or under py-spy) while
working on the indexing path. It generates two corpora, seeded so runs
compare,

* nginx combined access lines (~180 bytes) with six fields: clientip,
  method, uri_path (keywords), status, bytes (ints: keyword and numeric)
  and useragent (keyword);
* Loghub-like application lines (HDFS, Spark, OpenSSH and Zookeeper
  templates) with level and component keywords and a numeric pid;

indexes each through ``IndexWriter.add_many`` (one field mapping per line)
and ``IndexWriter.add_columns`` (whole columns), writes the segment, and
prints MB/s of raw text, the time of each phase and the bytes of each
segment file against the raw text size.

Usage::

    .venv/bin/python benchmarks/profile_indexing.py [--lines N] [--repeat R]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import zstandard

from trusswork.search._index import _TEXT_BLOCK, IndexWriter, SegmentMeta, _write
from trusswork.search._sections import DICTIONARY_SECTIONS

_METHODS = ["GET"] * 8 + ["POST", "PUT", "DELETE", "HEAD"]
_STATUSES = [200] * 20 + [301, 302, 304, 400, 403, 404, 404, 500, 502, 503]
_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "curl/8.4.0",
    "Go-http-client/1.1",
    "python-requests/2.31.0",
    "Googlebot/2.1 (+http://www.google.com/bot.html)",
]
_PATHS = ["/api/v1/users", "/api/v1/orders", "/static/js", "/static/css", "/login", "/search"]


def nginx_lines(n: int, seed: int = 1) -> tuple[list[str], list[dict[str, Any]]]:
    """``n`` nginx combined log lines and their parsed fields."""
    rng = random.Random(seed)
    ips = [
        f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}" for _ in range(5000)
    ]
    texts: list[str] = []
    fields: list[dict[str, Any]] = []
    start = 1_765_000_000
    for i in range(n):
        ip = rng.choice(ips)
        method = rng.choice(_METHODS)
        base = rng.choice(_PATHS)
        path = f"{base}/{rng.randrange(100_000)}" if rng.random() < 0.6 else base
        query = (
            f"?page={rng.randrange(50)}&q=item{rng.randrange(1000)}" if rng.random() < 0.3 else ""
        )
        status = rng.choice(_STATUSES)
        size = rng.randrange(200, 60_000)
        agent = rng.choice(_AGENTS)
        stamp = time.strftime("%d/%b/%Y:%H:%M:%S", time.gmtime(start + i // 50))
        texts.append(
            f'{ip} - - [{stamp} +0000] "{method} {path}{query} HTTP/1.1" {status} {size} '
            f'"https://example.com{base}" "{agent}"'
        )
        fields.append(
            {
                "clientip": ip,
                "method": method,
                "uri_path": path,
                "status": status,
                "bytes": size,
                "useragent": agent,
            }
        )
    return texts, fields


_TEMPLATES: list[tuple[str, str, Callable[[random.Random], str]]] = [
    (
        "INFO",
        "dfs.DataNode$DataXceiver",
        lambda r: (
            f"Receiving block blk_{r.randrange(-(2**62), 2**62)} src: "
            f"/10.250.{r.randrange(256)}.{r.randrange(256)}:{r.randrange(1024, 65536)} dest: "
            f"/10.250.{r.randrange(256)}.{r.randrange(256)}:50010"
        ),
    ),
    (
        "INFO",
        "dfs.FSNamesystem",
        lambda r: (
            f"BLOCK* NameSystem.addStoredBlock: blockMap updated: 10.251.{r.randrange(256)}"
            f".{r.randrange(256)}:50010 is added to blk_{r.randrange(2**62)}"
            f" size {r.randrange(2**26)}"
        ),
    ),
    (
        "WARN",
        "org.apache.spark.storage.BlockManager",
        lambda r: (
            f"Block rdd_{r.randrange(500)}_{r.randrange(64)} could not be removed as it "
            f"was not found on disk or in memory"
        ),
    ),
    (
        "INFO",
        "sshd",
        lambda r: (
            f"Failed password for invalid user {r.choice(['admin', 'test', 'oracle', 'git'])}"
            f" from 173.234.{r.randrange(256)}.{r.randrange(256)}"
            f" port {r.randrange(1024, 65536)} ssh2"
        ),
    ),
    (
        "ERROR",
        "org.apache.zookeeper.server.NIOServerCnxn",
        lambda r: (
            f"Unexpected Exception: java.nio.channels.CancelledKeyException session "
            f"0x{r.randrange(2**60):x} closed after {r.randrange(10_000)} ms"
        ),
    ),
]


def loghub_lines(n: int, seed: int = 2) -> tuple[list[str], list[dict[str, Any]]]:
    """``n`` Loghub-like application log lines and their parsed fields."""
    rng = random.Random(seed)
    texts: list[str] = []
    fields: list[dict[str, Any]] = []
    for i in range(n):
        level, component, message = rng.choice(_TEMPLATES)
        pid = rng.randrange(100, 40_000)
        stamp = f"2026-12-07 {i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d},{i % 1000:03d}"
        texts.append(f"{stamp} {pid} {level} {component}: {message(rng)}")
        fields.append({"level": level, "component": component, "pid": pid})
    return texts, fields


def columns(
    fields: list[dict[str, Any]],
) -> tuple[dict[str, list[str | None]], dict[str, np.ndarray[Any, Any]]]:
    """The per-line field mappings as the columns ``add_columns`` takes."""
    names = list(fields[0])
    keywords: dict[str, list[str | None]] = {}
    numbers: dict[str, np.ndarray[Any, Any]] = {}
    for name in names:
        values = [f.get(name) for f in fields]
        keywords[name] = [None if v is None else str(v) for v in values]
        if isinstance(values[0], int):
            numbers[name] = np.array(values, dtype=np.float64)
    return keywords, numbers


def index_once(
    api: str,
    texts: list[str],
    fields: list[dict[str, Any]],
    keywords: dict[str, list[str | None]],
    numbers: dict[str, np.ndarray[Any, Any]],
    directory: Path,
) -> tuple[dict[str, float], SegmentMeta]:
    """CPU seconds per phase of one add + write_segment, and the segment written.

    CPU time, not wall time: on a shared machine it still measures our work
    (fsync waits are not in it; they depend on the disk, not on this code).
    """
    clock = time.process_time
    writer = IndexWriter()
    t0 = clock()
    if api == "add_many":
        writer.add_many(texts, fields)
    else:
        writer.add_columns(texts, keywords=keywords, numbers=numbers)
    t1 = clock()
    # write_segment is _build then _write; timed apart for the breakdown.
    built = writer._build()
    t2 = clock()
    meta = _write(directory, built, merged_from=())
    t3 = clock()
    return {"add": t1 - t0, "build": t2 - t1, "write": t3 - t2, "total": t3 - t0}, meta


def zstd_levels(texts: list[str]) -> str:
    """The stored-text blocks at each zstd level: size and time."""
    stream = "".join(texts).encode()
    parts = []
    for level in (1, 3):
        compressor = zstandard.ZstdCompressor(level=level)
        t0 = time.perf_counter()
        size = sum(
            len(compressor.compress(stream[i : i + _TEXT_BLOCK]))
            for i in range(0, len(stream), _TEXT_BLOCK)
        )
        seconds = time.perf_counter() - t0
        parts.append(
            f"level {level}: {100 * size / len(stream):.1f}% of raw,"
            f" {len(stream) / seconds / 1e6:.0f} MB/s"
        )
    return "; ".join(parts)


_DICTIONARY = ["first keys", "first key offsets", "block offsets", "blocks"]
_SECTION_NAMES = {
    "terms.tw": [
        *_DICTIONARY,
        *("entry bases", "position bases", "long bases", "short bases", "tf bases"),
    ],
    "postings.tw": [
        *("long lists", "short lists", "tf width", "tf offsets", "tfs"),
        *("position width", "position offsets", "positions"),
    ],
    "fields.tw": [
        *_DICTIONARY,
        *("long bases", "short bases", "long lists", "short lists", "modes"),
        *(f"column {i}" for i in range(100)),
    ],
    "docs.tw": ["ids", "lengths", "text lengths", "text width", "text offsets", "texts"],
}
assert len(_DICTIONARY) == DICTIONARY_SECTIONS


def section_sizes(path: Path) -> list[int]:
    """Payload bytes of each section of a segment file."""
    data = path.read_bytes()
    count = int.from_bytes(data[8:12], "little")
    sizes, offset = [], 16
    for _ in range(count):
        length = int.from_bytes(data[offset : offset + 8], "little")
        sizes.append(length)
        offset += 16 + length + (-length % 8)
    return sizes


def run(name: str, texts: list[str], fields: list[dict[str, Any]], repeat: int) -> None:
    raw = sum(len(t.encode()) for t in texts)
    keywords, numbers = columns(fields)
    per_line = raw / len(texts)
    print(f"\n== {name}: {len(texts)} lines, {raw / 1e6:.1f} MB raw, {per_line:.0f} B/line")
    sizes: dict[str, int] = {}
    parts: dict[str, list[int]] = {}
    for api in ("add_many", "add_columns"):
        best: dict[str, float] = {}
        for _ in range(repeat):
            with tempfile.TemporaryDirectory() as tmp:
                phases, meta = index_once(api, texts, fields, keywords, numbers, Path(tmp))
                sizes = {p.name: p.stat().st_size for p in sorted(meta.path.iterdir())}
                parts = {p.name: section_sizes(p) for p in sorted(meta.path.glob("*.tw"))}
            for k, v in phases.items():
                best[k] = min(best.get(k, float("inf")), v)
        print(
            f"  {api:12s} {raw / best['total'] / 1e6:6.1f} MB/s (CPU)  "
            + "  ".join(f"{k} {v * 1e3:7.1f} ms" for k, v in best.items() if k != "total")
        )
    whole = sum(sizes.values())
    print(f"  segment {whole / 1e6:.2f} MB = {100 * whole / raw:.1f}% of raw:")
    for file, size in sizes.items():
        print(f"    {file:12s} {size / 1e6:8.3f} MB  {100 * size / raw:5.1f}%")
        for label, part in zip(_SECTION_NAMES.get(file, ()), parts.get(file, ()), strict=False):
            if part * 200 >= raw:  # only what is at least 0.5% of raw
                print(f"      {label:26s} {100 * part / raw:5.1f}%")
    print(f"  text blocks {zstd_levels(texts)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    run("nginx", *nginx_lines(args.lines), args.repeat)
    run("loghub", *loghub_lines(args.lines), args.repeat)


if __name__ == "__main__":
    main()
