"""Synthetic node-exporter metrics: the reference data of the benchmarks, tests and demo.

Each host is scraped on a ticker (15 s or 1 s) with a few milliseconds of
jitter, like Prometheus's scrape loop: the scrape's timestamp is the tick
plus a small lateness, shared by every series of that scrape. Series follow
node_exporter's shapes:

- counters with two decimals (``node_cpu_seconds_total``, USER_HZ=100) and
  integral counters (bytes, packets, context switches, interrupts);
- gauges that move in integral steps (memory in 4 KiB pages, free bytes of a
  filesystem), small integer gauges (running processes), load averages with
  two decimals, and ``node_time_seconds`` (full-precision wall time);
- constant series (sizes, boot time, info metrics) — in real exports about
  half of all series.

Everything is seeded, so a benchmark's data set is the same on every run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from trusswork.tsdb._series import Labels
from trusswork.tsdb._series import labels_of as _labels_of

__all__ = ["NodeSeries", "node_exporter_series", "scrape_times"]

_CPU_MODES = ("idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user")
# share of one CPU's time per mode (idle takes the rest)
_CPU_SHARE = {
    "iowait": 0.01,
    "irq": 0.0,
    "nice": 0.0,
    "softirq": 0.004,
    "steal": 0.0,
    "system": 0.05,
    "user": 0.12,
}


@dataclass(frozen=True, slots=True)
class NodeSeries:
    """One generated series and its kind (``counter``, ``gauge`` or ``constant``)."""

    labels: Labels
    kind: str
    ts: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]


def scrape_times(
    start_ms: int, count: int, interval_ms: int, rng: np.random.Generator
) -> npt.NDArray[np.int64]:
    """Tick times plus scrape lateness: mostly 0-2 ms, now and then up to ~10 ms."""
    late = rng.geometric(0.55, size=count) - 1
    late = np.minimum(late, 12)
    return (start_ms + np.arange(count, dtype=np.int64) * interval_ms + late).astype(np.int64)


def _counter(
    rng: np.random.Generator, n: int, start: float, rate: float, decimals: int, interval_s: float
) -> npt.NDArray[np.float64]:
    scale = 10.0**decimals
    per_step = np.maximum(rng.normal(rate * interval_s, rate * interval_s * 0.3, n), 0.0)
    increments = np.round(per_step * scale)
    if rate == 0.0:
        increments[:] = 0.0
    ints = np.round(start * scale) + np.cumsum(increments)
    return np.asarray(ints / scale, dtype=np.float64)


def _walk(
    rng: np.random.Generator,
    n: int,
    start: float,
    step: float,
    unit: float,
    low: float,
    high: float,
) -> npt.NDArray[np.float64]:
    moves = np.round(rng.normal(0.0, step, n) / unit)
    moves[rng.random(n) < 0.6] = 0.0  # most scrapes see no change
    ints = np.clip(np.round(start / unit) + np.cumsum(moves), low / unit, high / unit)
    values = ints * unit if unit >= 1 else ints / round(1 / unit)
    return np.asarray(values, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class _Target:
    """Makes the series of one scraped target: its timestamps and target labels."""

    ts: npt.NDArray[np.int64]
    base: dict[str, str]

    def __call__(
        self, name: str, kind: str, values: npt.NDArray[np.float64], /, **labels: str
    ) -> NodeSeries:
        return NodeSeries(
            _labels_of({"__name__": name, **self.base, **labels}), kind, self.ts, values
        )


def node_exporter_series(
    hosts: int = 4,
    *,
    hours: float = 2.0,
    interval_ms: int = 15_000,
    start_ms: int = 1_700_000_000_000,
    cpus: int = 4,
    seed: int = 7,
) -> Iterator[NodeSeries]:
    """Series of ``hosts`` node_exporter targets over ``hours`` at one scrape interval."""
    rng = np.random.default_rng(seed)
    n = int(hours * 3_600_000 // interval_ms)
    interval_s = interval_ms / 1000
    for h in range(hosts):
        instance = f"node-{h:03d}:9100"
        base = {"job": "node", "instance": instance}
        ts = scrape_times(start_ms, n, interval_ms, rng)

        series = _Target(ts, base)
        for cpu in range(cpus):
            used = 0.0
            for mode in _CPU_MODES:
                share = _CPU_SHARE.get(mode, 0.0)
                if mode == "idle":
                    share = max(0.0, 1.0 - sum(_CPU_SHARE.values()))
                used += share
                kind = "counter" if share else "constant"
                values = _counter(rng, n, rng.uniform(1e4, 1e6), share, 2, interval_s)
                yield series("node_cpu_seconds_total", kind, values, cpu=str(cpu), mode=mode)
        for name, rate, decimals in (
            ("node_context_switches_total", 900.0, 0),
            ("node_intr_total", 1500.0, 0),
            ("node_forks_total", 3.0, 0),
        ):
            yield series(
                name, "counter", _counter(rng, n, rng.uniform(1e6, 1e8), rate, decimals, interval_s)
            )
        for device in ("eth0", "lo"):
            for direction in ("receive", "transmit"):
                rate = rng.uniform(2e4, 2e6) if device == "eth0" else 300.0
                yield series(
                    f"node_network_{direction}_bytes_total",
                    "counter",
                    _counter(rng, n, rng.uniform(1e9, 1e11), rate, 0, interval_s),
                    device=device,
                )
                yield series(
                    f"node_network_{direction}_packets_total",
                    "counter",
                    _counter(rng, n, rng.uniform(1e6, 1e8), rate / 900, 0, interval_s),
                    device=device,
                )
                for what in ("errs", "drop"):
                    yield series(
                        f"node_network_{direction}_{what}_total",
                        "constant",
                        np.zeros(n),
                        device=device,
                    )
        for device in ("sda", "sdb"):
            yield series(
                "node_disk_io_time_seconds_total",
                "counter",
                _counter(rng, n, rng.uniform(1e3, 1e5), 0.05, 3, interval_s),
                device=device,
            )
            yield series(
                "node_disk_read_bytes_total",
                "counter",
                _counter(rng, n, rng.uniform(1e9, 1e12), 4096 * 20.0, 0, interval_s) // 4096 * 4096,
                device=device,
            )
            yield series(
                "node_disk_written_bytes_total",
                "counter",
                _counter(rng, n, rng.uniform(1e9, 1e12), 4096 * 80.0, 0, interval_s) // 4096 * 4096,
                device=device,
            )
        total = float(rng.choice([8, 16, 32, 64])) * 2**30
        yield series("node_memory_MemTotal_bytes", "constant", np.full(n, total))
        for name in ("MemAvailable", "MemFree", "Cached", "Buffers"):
            yield series(
                f"node_memory_{name}_bytes",
                "gauge",
                _walk(rng, n, total * rng.uniform(0.1, 0.5), 2e6, 4096.0, 0.0, total),
            )
        for mount in ("/", "/boot", "/var"):
            size = float(rng.integers(10, 500)) * 2**30
            fs = {"mountpoint": mount, "device": f"/dev/sd{mount.count('/')}", "fstype": "ext4"}
            yield series("node_filesystem_size_bytes", "constant", np.full(n, size), **fs)
            yield series(
                "node_filesystem_avail_bytes",
                "gauge",
                _walk(rng, n, size * 0.4, 1e5, 4096.0, 0.0, size),
                **fs,
            )
            yield series("node_filesystem_readonly", "constant", np.zeros(n), **fs)
        for name, start in (("node_load1", 1.2), ("node_load5", 1.0), ("node_load15", 0.9)):
            yield series(name, "gauge", _walk(rng, n, start, 0.08, 0.01, 0.0, 64.0))
        yield series("node_procs_running", "gauge", _walk(rng, n, 3.0, 1.5, 1.0, 1.0, 40.0))
        yield series(
            "node_boot_time_seconds", "constant", np.full(n, float(start_ms // 1000 - 86_400))
        )
        yield series("node_time_seconds", "gauge", ts / 1000.0 + rng.uniform(0, 1e-3, n))
        yield series(
            "node_uname_info",
            "constant",
            np.ones(n),
            release="6.1.0-18-amd64",
            machine="x86_64",
            nodename=instance.split(":")[0],
        )
