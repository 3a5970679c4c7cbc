"""A few threads at a lower CPU priority, for CPU-bound work (argon2) that must
not take the cores from the event loop.

Why not ``trio.to_thread``: its threads run at the event loop's priority. With
two cores and two argon2 hashes running, the event loop thread and the
database threads wait for a time slice every time they give up the CPU (each
send, each lock hand-off; profiled at a steady 50 resets/s, a send() took
0.5 ms of the event loop's wall time). A hash that waits a few milliseconds
costs the subscriber nothing; a deliver_sm waiting for its response holds a
slot of the SMSC's window. So hashing threads are niced (Linux: a thread is a
task with a priority of its own, and raising one's nice value needs no
privilege) and take what the rest leaves, which at full load is nearly all of
the cores anyway. Being few and fixed, they also keep argon2's 19 MiB working
memory to one per core (trio's thread cache ran hashes on whichever of its
threads was free, each keeping its own).
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from typing import TYPE_CHECKING, Generic, TypeVar

import trio

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["BackgroundThreads"]

T = TypeVar("T")

#: How much lower than the process the threads run (nice values, at most 19).
NICE_INCREMENT = 10


class _Job(Generic[T]):
    def __init__(self, fn: Callable[[], T], token: trio.lowlevel.TrioToken) -> None:
        self.fn = fn
        self.token = token
        self.done = trio.Event()
        self.value: T | None = None
        self.error: BaseException | None = None

    def __call__(self) -> None:
        try:
            self.value = self.fn()
        except BaseException as exc:  # handed to the waiting task
            self.error = exc
        with contextlib.suppress(trio.RunFinishedError):
            self.token.run_sync_soon(self.done.set)


class BackgroundThreads:
    """``count`` threads, each ``NICE_INCREMENT`` below the process's priority,
    running one job at a time from a common queue (so at most ``count`` run at
    once, like a ``CapacityLimiter`` of that size)."""

    def __init__(self, count: int, *, name: str = "smscd-background") -> None:
        self._jobs: queue.SimpleQueue[_Job[object] | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(count)
        ]
        for thread in self._threads:
            thread.start()

    def _work(self) -> None:
        # Not Linux, or not permitted: the thread keeps the process's priority.
        with contextlib.suppress(OSError, AttributeError):
            tid = threading.get_native_id()
            nice = os.getpriority(os.PRIO_PROCESS, tid)
            os.setpriority(os.PRIO_PROCESS, tid, min(19, nice + NICE_INCREMENT))
        while (job := self._jobs.get()) is not None:
            job()

    async def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` in one of the threads and return its result (or raise its
        exception). A cancellation waits for the job: a thread cannot be
        interrupted, and a job is short (one hash)."""
        job = _Job(fn, trio.lowlevel.current_trio_token())
        self._jobs.put(job)  # type: ignore[arg-type]
        with trio.CancelScope(shield=True):
            await job.done.wait()
        if job.error is not None:
            raise job.error
        return job.value  # type: ignore[return-value]

    def close(self) -> None:
        """Let the threads end once the jobs queued are done."""
        for _ in self._threads:
            self._jobs.put(None)
