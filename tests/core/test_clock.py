"""trusswork.core.clock: the real clock reads the OS, the fake one moves only when told."""

from __future__ import annotations

import asyncio
import math
import threading
import time

import pytest

from trusswork.core.clock import SYSTEM_CLOCK, Clock, FakeClock, SystemClock
from trusswork.core.errors import InvalidInput


def test_system_clock_reads_the_operating_system() -> None:
    before_wall, before_mono = time.time(), time.monotonic()
    wall, mono = SYSTEM_CLOCK.time(), SYSTEM_CLOCK.monotonic()
    after_wall, after_mono = time.time(), time.monotonic()
    assert before_wall <= wall <= after_wall
    assert before_mono <= mono <= after_mono
    assert abs(SYSTEM_CLOCK.time_ns() / 1e9 - time.time()) < 1.0
    assert abs(SYSTEM_CLOCK.monotonic_ns() / 1e9 - time.monotonic()) < 1.0
    assert isinstance(SYSTEM_CLOCK, SystemClock)


def test_system_clock_sleep_waits_at_least_the_duration() -> None:
    start = time.monotonic()
    SYSTEM_CLOCK.sleep(0.01)
    assert time.monotonic() - start >= 0.01


def test_system_clock_asleep_waits_at_least_the_duration() -> None:
    async def main() -> float:
        start = time.monotonic()
        await SYSTEM_CLOCK.asleep(0.01)
        return time.monotonic() - start

    assert asyncio.run(main()) >= 0.01


@pytest.mark.parametrize("bad", [-0.001, -1.0, math.nan, math.inf])
def test_system_clock_refuses_bad_sleeps(bad: float) -> None:
    with pytest.raises(InvalidInput, match="non-negative"):
        SYSTEM_CLOCK.sleep(bad)
    with pytest.raises(InvalidInput, match="non-negative"):
        asyncio.run(SYSTEM_CLOCK.asleep(bad))


def test_both_clocks_satisfy_the_protocol() -> None:
    def elapsed(clock: Clock) -> float:
        start = clock.monotonic()
        clock.sleep(0.0)
        return clock.monotonic() - start

    assert elapsed(FakeClock()) == 0.0
    assert elapsed(SYSTEM_CLOCK) >= 0.0


def test_fake_clock_starts_where_told_and_stands_still() -> None:
    clock = FakeClock(wall=1_000.5, monotonic=7.0)
    assert clock.time() == 1_000.5
    assert clock.time_ns() == 1_000_500_000_000
    assert clock.monotonic() == 7.0
    assert clock.monotonic_ns() == 7_000_000_000
    assert clock.time() == 1_000.5  # no time passed on its own


def test_fake_clock_default_wall_is_a_plausible_date() -> None:
    assert FakeClock().time() == 1_700_000_000.0
    assert FakeClock().monotonic() == 0.0


def test_advance_moves_both_readings_without_drift() -> None:
    clock = FakeClock(wall=100.0)
    for _ in range(10):
        clock.advance(0.1)
    assert clock.monotonic() == 1.0
    assert clock.monotonic_ns() == 1_000_000_000
    assert clock.time() == 101.0


@pytest.mark.parametrize("bad", [-1.0, -1e-9, math.nan, math.inf, -math.inf])
def test_advance_refuses_to_go_backwards_or_to_infinity(bad: float) -> None:
    clock = FakeClock()
    with pytest.raises(InvalidInput):
        clock.advance(bad)
    assert clock.monotonic() == 0.0


def test_set_wall_steps_the_wall_clock_only_and_may_go_back() -> None:
    clock = FakeClock(wall=1_000.0, monotonic=5.0)
    clock.set_wall(900.0)
    assert clock.time() == 900.0
    assert clock.monotonic() == 5.0
    clock.advance(1.0)
    assert clock.time() == 901.0
    assert clock.monotonic() == 6.0
    with pytest.raises(InvalidInput):
        clock.set_wall(math.nan)


def test_sleep_advances_instantly_and_records_the_schedule() -> None:
    clock = FakeClock()
    start = time.monotonic()
    for delay in (0.1, 0.2, 0.4, 0.8, 60.0):
        clock.sleep(delay)
    assert time.monotonic() - start < 1.0  # never waited for real
    assert clock.sleeps == [0.1, 0.2, 0.4, 0.8, 60.0]
    assert clock.monotonic() == pytest.approx(61.5)


@pytest.mark.parametrize("bad", [-0.5, math.nan])
def test_fake_sleep_refuses_negative_durations_and_records_nothing(bad: float) -> None:
    clock = FakeClock()
    with pytest.raises(InvalidInput):
        clock.sleep(bad)
    with pytest.raises(InvalidInput):
        asyncio.run(clock.asleep(bad))
    assert clock.sleeps == []
    assert clock.monotonic() == 0.0


def test_asleep_advances_and_lets_other_tasks_run() -> None:
    clock = FakeClock()
    order: list[str] = []

    async def sleeper() -> None:
        await clock.asleep(3.0)
        order.append("sleeper woke")

    async def other() -> None:
        order.append("other ran")

    async def main() -> None:
        await asyncio.gather(sleeper(), other())

    asyncio.run(main())
    assert order == ["other ran", "sleeper woke"]
    assert clock.sleeps == [3.0]
    assert clock.monotonic() == 3.0


def test_fake_clock_is_thread_safe() -> None:
    clock = FakeClock()
    threads = [
        threading.Thread(target=lambda: [clock.sleep(0.001) for _ in range(1000)]) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert clock.monotonic_ns() == 8 * 1000 * 1_000_000
    assert len(clock.sleeps) == 8000


def test_fake_clock_rejects_non_finite_start() -> None:
    with pytest.raises(InvalidInput, match="wall"):
        FakeClock(wall=math.inf)
    with pytest.raises(InvalidInput, match="monotonic"):
        FakeClock(monotonic=math.nan)


def test_importing_clock_does_not_import_asyncio() -> None:
    import subprocess
    import sys

    code = "import sys, trusswork.core.clock; print('asyncio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
