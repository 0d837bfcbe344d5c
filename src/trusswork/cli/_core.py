"""Demo section for the core kernels: CRC32C, LEB128 varints, bit packing.

Each figure is the best of several timed rounds (the least disturbed one),
measured through the public Python API a user calls, so call overhead is
included; 64-byte checksums therefore show mostly that overhead. Every
kernel's output is checked (CRC32C against the check value and the peer
packages, round trips for varint and bit packing) before its speed is
reported: a wrong answer fails the section.
"""

from __future__ import annotations

import functools
import itertools
import time
import warnings
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from trusswork.cli._demo import DemoContext, Plot, SectionResult

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from matplotlib.figure import Figure

#: Values per varint / bit-packing measurement.
VALUES = 1_000_000
#: Bit width for the bit-packing figures (e.g. 13-bit dictionary codes).
PACK_WIDTH = 13
OURS = "trusswork"


def _best_seconds(call: Callable[[], object], *, budget: float) -> float:
    """Best observed seconds per ``call()``: at least 3 rounds, more within ``budget``."""
    loops = 1
    while True:  # calibrate: a round lasts >= 2 ms so the timer's resolution does not matter
        started = time.perf_counter()
        for _ in itertools.repeat(None, loops):
            call()
        elapsed = time.perf_counter() - started
        if elapsed >= 0.002 or loops >= 1 << 20:
            break
        loops *= 8 if elapsed < 0.0002 else 2
    best = elapsed / loops
    deadline = time.perf_counter() + budget
    rounds = 1
    while rounds < 3 or (time.perf_counter() < deadline and rounds < 200):
        started = time.perf_counter()
        for _ in itertools.repeat(None, loops):
            call()
        best = min(best, (time.perf_counter() - started) / loops)
        rounds += 1
    return best


def _crc32c_peers() -> tuple[dict[str, Callable[[bytes], int]], list[str]]:
    """CRC32C implementations a user could pick instead, and notes on missing ones."""
    peers: dict[str, Callable[[bytes], int]] = {}
    notes: list[str] = []
    try:
        import crc32c as crc32c_package

        peers["crc32c (PyPI)"] = crc32c_package.crc32c
    except ImportError:
        notes.append("The crc32c package is not installed (pip install crc32c) to compare.")
    try:
        with warnings.catch_warnings():  # it warns on import when it falls back to Python
            warnings.simplefilter("ignore")
            import google_crc32c
    except ImportError:
        notes.append("google-crc32c is not installed (pip install google-crc32c) to compare.")
    else:
        if google_crc32c.implementation == "c":
            peers["google-crc32c"] = google_crc32c.value
        else:
            notes.append("google-crc32c is installed without its C extension; left out.")
    return peers, notes


def _crc(ctx: DemoContext, budget: float) -> tuple[list[tuple[str, str]], list[str], Figure]:
    import numpy as np

    from trusswork.core import checksum

    if checksum.crc32c(b"123456789") != 0xE3069283:
        raise AssertionError("crc32c(b'123456789') is not the CRC-32C check value 0xE3069283")
    peers, notes = _crc32c_peers()
    functions: dict[str, Callable[[bytes], int]] = {OURS: checksum.crc32c, **peers}
    functions["zlib.crc32 (stdlib)"] = zlib.crc32
    rng = np.random.default_rng(42)
    sizes = {"1 MiB": rng.bytes(1 << 20), "64 B": rng.bytes(64)}
    for label, data in sizes.items():
        for name, function in peers.items():
            if function(data) != checksum.crc32c(data):
                raise AssertionError(f"trusswork and {name} disagree on the CRC32C of {label}")
    speeds: dict[str, dict[str, float]] = {label: {} for label in sizes}
    steps = [(label, name) for label in sizes for name in functions]
    for label, name in ctx.track(steps, "core: CRC32C"):
        data = sizes[label]
        function = functions[name]
        seconds = _best_seconds(functools.partial(function, data), budget=budget)
        speeds[label][name] = len(data) / seconds / 1e9
    rows = []
    for label, by_name in speeds.items():
        baseline = by_name["zlib.crc32 (stdlib)"]
        for name, speed in by_name.items():
            versus = f" ({speed / baseline:.1f}x zlib)" if name == OURS else ""
            rows.append((f"CRC32C {label}, {name}", f"{_gbps(speed)}{versus}"))
    path = "CPU crc32 instruction" if checksum.hardware_available() else "software tables"
    notes.insert(0, f"trusswork CRC32C runs on the {path} here.")
    notes.append("zlib.crc32 is CRC-32 (another polynomial): the stdlib baseline, not a peer.")
    return rows, notes, _crc_figure(speeds)


def _gbps(speed: float) -> str:
    return f"{speed:.2f} GB/s" if speed < 10 else f"{speed:.1f} GB/s"


def _crc_figure(speeds: dict[str, dict[str, float]]) -> Figure:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 3.2), layout="constrained")
    axes = figure.subplots(1, len(speeds))
    for ax, (label, by_name) in zip(axes, speeds.items(), strict=True):
        names = list(by_name)[::-1]
        values = [by_name[name] for name in names]
        colors = ["#0969da" if name == OURS else "#8c959f" for name in names]
        bars = ax.barh(names, values, color=colors)
        ax.bar_label(bars, fmt="%.2f", padding=3, fontsize=8)
        ax.set_title(f"{label} buffers")
        ax.set_xlabel("GB/s (higher is better)")
        ax.margins(x=0.18)
    return figure


def _datasets(rng: np.random.Generator) -> dict[str, npt.NDArray[np.int64]]:
    import numpy as np

    # Milliseconds between events that arrive about once a second, with jitter.
    deltas = np.rint(rng.normal(1000.0, 25.0, VALUES)).astype(np.int64)
    return {
        "timestamp deltas (ms)": deltas,
        "small counters": rng.poisson(3.0, VALUES).astype(np.int64),
        "random int64": rng.integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max, VALUES),
    }


def _varint(ctx: DemoContext, budget: float) -> tuple[list[tuple[str, str]], Figure]:
    import numpy as np

    from trusswork.core import varint

    datasets = _datasets(np.random.default_rng(7))
    rows = []
    sizes: dict[str, float] = {}
    for name, values in ctx.track(list(datasets.items()), "core: varint"):
        encoded = varint.encode(values)
        if not np.array_equal(varint.decode(encoded), values):
            raise AssertionError(f"varint round trip changed the values of {name}")
        sizes[name] = len(encoded) / len(values)
        rows.append(
            (
                f"varint size, {name}",
                f"{sizes[name]:.2f} B/value ({8 / sizes[name]:.1f}x vs 8 B)",
            )
        )
    typical = datasets["timestamp deltas (ms)"]
    encoded = varint.encode(typical)
    encode_s = _best_seconds(lambda: varint.encode(typical), budget=budget)
    decode_s = _best_seconds(lambda: varint.decode(encoded), budget=budget)
    rows.insert(0, ("varint encode, 1M int64 deltas", f"{VALUES / encode_s / 1e6:.0f} Mvalues/s"))
    rows.insert(1, ("varint decode, 1M int64 deltas", f"{VALUES / decode_s / 1e6:.0f} Mvalues/s"))
    return rows, _varint_figure(sizes)


def _varint_figure(sizes: dict[str, float]) -> Figure:
    import numpy as np
    from matplotlib.figure import Figure

    from trusswork.core import varint

    # v = 2^b - 1, the largest value with b significant bits; zigzag spends one more bit.
    widths = np.arange(1, 64)
    largest = [(1 << int(b)) - 1 for b in widths]
    unsigned = [len(varint.encode(np.array([v], np.uint64), zigzag=False)) for v in largest]
    signed = [len(varint.encode(np.array([v], np.int64))) for v in largest]
    figure = Figure(figsize=(9, 3.4), layout="constrained")
    left, right = figure.subplots(1, 2, width_ratios=(3, 2))
    left.step(widths, unsigned, where="mid", label="unsigned (zigzag=False)", color="#0969da")
    left.step(
        widths, signed, where="mid", label="signed, zigzag (+v or -v)", color="#bf8700", ls="--"
    )
    left.axhline(8, color="#8c959f", linestyle=":", label="fixed int64 (8 B)")
    left.set_xlabel("significant bits of |v|")
    left.set_ylabel("encoded bytes per value")
    left.set_yticks(range(0, 11, 2))
    left.legend(loc="upper left", fontsize=8)
    left.set_title("LEB128 size vs magnitude")
    names = list(sizes)[::-1]
    bars = right.barh(names, [sizes[name] for name in names], color="#0969da")
    right.bar_label(bars, fmt="%.2f", padding=3, fontsize=8)
    right.margins(x=0.15)
    right.axvline(8, color="#8c959f", linestyle="--")
    right.set_xlabel("bytes per value (fixed int64 = 8)")
    right.set_title("1M values, zigzag varint")
    return figure


def _bits(budget: float) -> list[tuple[str, str]]:
    import numpy as np

    from trusswork.core import bits

    values = np.random.default_rng(3).integers(0, 1 << PACK_WIDTH, VALUES, dtype=np.uint64)
    packed = bits.pack(values, PACK_WIDTH)
    if not np.array_equal(bits.unpack(packed, PACK_WIDTH, VALUES), values):
        raise AssertionError("bit unpacking did not give back the packed values")
    pack_s = _best_seconds(lambda: bits.pack(values, PACK_WIDTH), budget=budget)
    unpack_s = _best_seconds(lambda: bits.unpack(packed, PACK_WIDTH, VALUES), budget=budget)
    return [
        (f"bit pack, 1M x {PACK_WIDTH}-bit", f"{VALUES / pack_s / 1e6:.0f} Mvalues/s"),
        (f"bit unpack, 1M x {PACK_WIDTH}-bit", f"{VALUES / unpack_s / 1e6:.0f} Mvalues/s"),
        (
            f"bit-packed size, {PACK_WIDTH}-bit values",
            f"{len(packed) / VALUES:.3f} B/value ({8 * VALUES / len(packed):.1f}x vs 8 B)",
        ),
    ]


def demo(ctx: DemoContext) -> SectionResult:
    """Measure and check the core kernels; see the module docstring."""
    budget = 0.02 if ctx.quick else 0.2
    crc_rows, notes, crc_figure = _crc(ctx, budget)
    varint_rows, varint_figure = _varint(ctx, budget)
    bits_rows = _bits(budget)
    return SectionResult(
        rows=crc_rows + varint_rows + bits_rows,
        plots=[
            Plot("CRC32C throughput by implementation", crc_figure),
            Plot("Varint: encoded size by magnitude and by data set", varint_figure),
        ],
        notes=notes,
    )
