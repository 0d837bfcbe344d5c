"""Crash tests with real processes and SIGKILL.

``run_and_kill(target, *args, kill_at="fsync#3")`` runs ``target(*args,
checkpoint)`` in a fresh child process (multiprocessing, "spawn" start
method). The target calls ``checkpoint("name")`` at the points where a
crash is interesting: after a write, before an fsync, between a rename and a
directory sync. Every call is reported to the parent. When the child reaches
the checkpoint named by ``kill_at`` (``"name"`` is its first occurrence,
``"name#3"`` its third), it stops there and waits; the parent SIGKILLs it.
Nothing after that checkpoint runs, so the kill point is exact and the test
is repeatable. The test then reopens whatever the child wrote and checks
recovery.

``kill_after=seconds`` instead kills the child wherever it is once the target
has run that long (interpreter start-up is not counted), for randomised
campaigns; checkpoints then do not block. Without either, the
child runs to completion, which is how a campaign lists the checkpoints a
workload passes before killing at each in turn.

No orphans: a child that neither reaches its kill point nor exits within
``timeout`` is SIGKILLed and :class:`CrashTimeout` is raised; the child also
asks Linux to SIGKILL it if the test process dies (``PR_SET_PDEATHSIG``).

The target and its arguments must be picklable: a module-level function of
a test module works.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

__all__ = [
    "Checkpoint",
    "ChildFailed",
    "CrashResult",
    "CrashTimeout",
    "run_and_kill",
]

#: What the target receives: call it with a checkpoint name.
Checkpoint = Callable[[str], None]

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class CrashResult:
    """How the child ended.

    Attributes
    ----------
    signal:
        The signal that ended the child (``signal.SIGKILL`` when killed), or None
        when it exited by itself.
    exitcode:
        The exit status when it exited by itself, else None.
    checkpoints:
        Every checkpoint the child reached, in order, including the one it
        was killed at.
    killed_at:
        The ``kill_at`` checkpoint the child was killed at, or None.
    elapsed:
        Seconds from start to the child's end.
    """

    signal: int | None
    exitcode: int | None
    checkpoints: tuple[str, ...]
    killed_at: str | None
    elapsed: float

    @property
    def killed(self) -> bool:
        """True when the child died of SIGKILL."""
        return self.signal == signal.SIGKILL


class CrashTimeout(TimeoutError):
    """The child neither reached its kill point nor exited in time; it has been killed."""

    def __init__(self, message: str, *, pid: int, checkpoints: tuple[str, ...]) -> None:
        super().__init__(message)
        self.pid = pid
        self.checkpoints = checkpoints


class ChildFailed(AssertionError):
    """The child raised an exception or exited before its kill point; carries its traceback."""


def _parse_kill_at(kill_at: str) -> tuple[str, int]:
    name, sep, nth = kill_at.rpartition("#")
    if sep and nth.isdigit() and int(nth) >= 1:
        return name, int(nth)
    return kill_at, 1


class _ChildCheckpoint:
    """The ``checkpoint`` callable inside the child."""

    def __init__(self, conn: Connection, kill_at: tuple[str, int] | None) -> None:
        self._conn = conn
        self._kill_at = kill_at
        self._seen: dict[str, int] = {}

    def __call__(self, name: str) -> None:
        count = self._seen[name] = self._seen.get(name, 0) + 1
        self._conn.send(("checkpoint", name))
        if self._kill_at is not None and self._kill_at == (name, count):
            self._conn.send(("stopped", name))
            try:
                self._conn.recv()  # the parent never answers: it SIGKILLs us here
            finally:
                os._exit(70)  # the parent is gone; do not run on past the kill point


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(70)


def _child_main(
    conn: Connection,
    target: Callable[..., object],
    args: tuple[Any, ...],
    kill_at: tuple[str, int] | None,
) -> None:
    _die_with_parent()
    conn.send(("started", None))
    try:
        target(*args, _ChildCheckpoint(conn, kill_at))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        conn.close()
        os._exit(1)
    conn.close()


def run_and_kill(
    target: Callable[..., object],
    *args: Any,
    kill_at: str | None = None,
    kill_after: float | None = None,
    timeout: float = 30.0,
) -> CrashResult:
    """Run ``target(*args, checkpoint)`` in a child process and SIGKILL it at a chosen point.

    Parameters
    ----------
    target:
        A picklable callable (a module-level function). It receives ``args``
        and then the ``checkpoint`` callable.
    *args:
        Picklable arguments for ``target``.
    kill_at:
        ``"name"`` or ``"name#n"``: SIGKILL the child when it reaches the n-th
        (default first) ``checkpoint("name")``.
    kill_after:
        SIGKILL the child wherever it is once ``target`` has run this many seconds.
    timeout:
        Upper bound on the whole run; past it the child is killed and
        :class:`CrashTimeout` raised.

    Returns
    -------
    CrashResult
        How the child ended and the checkpoints it reached.

    Raises
    ------
    CrashTimeout
        The child neither reached ``kill_at`` nor exited within ``timeout``.
    ChildFailed
        The child raised, or exited before reaching ``kill_at``.
    """
    kill_point = _parse_kill_at(kill_at) if kill_at is not None else None
    context = multiprocessing.get_context("spawn")
    parent_conn, child_conn = context.Pipe(duplex=True)
    process = context.Process(
        target=_child_main,
        args=(child_conn, target, args, kill_point),
        name=f"crash-{getattr(target, '__qualname__', 'target')}",
    )
    reached: list[str] = []
    child_error: str | None = None
    stopped = timed_out = False
    kill_time = float("inf")  # kill_after counts from when the target starts, not the spawn

    def receive() -> bool:
        """Take one message from the child; False once it has closed its end."""
        nonlocal child_error, stopped, kill_time
        try:
            kind, payload = parent_conn.recv()
        except EOFError:
            return False
        if kind == "checkpoint":
            reached.append(payload)
        elif kind == "started":
            if kill_after is not None:
                kill_time = time.monotonic() + kill_after
        elif kind == "stopped":
            stopped = True
        else:
            child_error = payload
        return True

    start = time.monotonic()
    process.start()
    child_conn.close()
    pid = process.pid
    assert pid is not None
    deadline = start + timeout
    try:
        pipe_open = True
        while not stopped and process.exitcode is None:
            remaining = min(deadline, kill_time) - time.monotonic()
            if remaining <= 0:
                timed_out = time.monotonic() >= deadline
                break
            waitables: list[Any] = [process.sentinel]
            if pipe_open:
                waitables.append(parent_conn)
            ready = wait(waitables, timeout=remaining)
            if parent_conn in ready:
                pipe_open = receive()
            elif process.sentinel in ready:
                process.join()
        if process.exitcode is None:
            os.kill(pid, signal.SIGKILL)
        process.join()
        elapsed = time.monotonic() - start
        # Checkpoints sent just before the child ended are still in the pipe.
        while parent_conn.poll() and receive():
            pass
    finally:
        if process.exitcode is None:
            os.kill(pid, signal.SIGKILL)
            process.join()
        parent_conn.close()

    what = f"child {pid} running {getattr(target, '__qualname__', target)!r}"
    if child_error is not None:
        raise ChildFailed(f"{what} raised:\n{child_error}")
    if timed_out:
        goal = f"reached {kill_at!r}" if kill_at is not None else "exited"
        raise CrashTimeout(
            f"{what} neither {goal} nor ended within {timeout} s; it was killed. "
            f"Last checkpoints reached: {reached[-20:]}",
            pid=pid,
            checkpoints=tuple(reached),
        )
    exitcode = process.exitcode
    assert exitcode is not None
    if kill_at is not None and not stopped and kill_after is None:
        raise ChildFailed(
            f"{what} ended (exit status {exitcode}) without reaching checkpoint {kill_at!r}; "
            f"last checkpoints reached: {reached[-20:]}"
        )
    return CrashResult(
        signal=-exitcode if exitcode < 0 else None,
        exitcode=exitcode if exitcode >= 0 else None,
        checkpoints=tuple(reached),
        killed_at=kill_at if stopped else None,
        elapsed=elapsed,
    )
