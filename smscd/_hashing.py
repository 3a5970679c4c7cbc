"""Password hashing in child processes, fed from the event loop through pipes.

Why processes: argon2 is CPU-bound C code that releases the GIL, but a hashing
*thread* still needs the GIL to take its next job and to hand back each
result, and under load the GIL is held by the event loop and the database
threads. Profiled with threads at full speed, a hashing thread spent a tenth of
its time waiting for the GIL, and a fifth with nothing queued, because the
GIL-bound work that feeds it was waiting for the GIL too. A process has a GIL
of its own: it hashes, and the daemon's threads only ever wait for each other.

Each process is started with the hash's parameters, lowered by ``nice``
(argon2 takes what the event loop leaves; a deliver_sm waiting for its resp
holds a slot of the SMSC's window, a hash waiting a few milliseconds costs
nobody anything), and is fed up to ``depth`` passwords at once so that it never
waits for the event loop between two hashes. The protocol is one line per
password (hex) and one line per hash (``<encoded hash> <cpu seconds>``), in
order; see ``smscd._hash_child``. A password exists only in this process's
memory, the pipe and the child's memory, as it did before in a thread.

A process that dies fails the hashes it had in hand (``HashFailed``; the
daemon leaves their MOs RECEIVED, and recovery decides them again) and is
started again. The processes end when the daemon does: a closed pipe ends
them, and a killed daemon closes its pipes too.
"""

from __future__ import annotations

import collections
import math
import subprocess
import sys
from typing import TYPE_CHECKING

import attrs
import structlog
import trio

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from smscd.reset import HashParams

__all__ = ["NICE_INCREMENT", "HashFailed", "HashProcesses"]

log = structlog.get_logger("smscd.hashing")

#: How much lower than the daemon the hashing processes run (nice values).
NICE_INCREMENT = 10
#: Passwords handed to one process before its first hash comes back.
DEPTH = 2
#: Pause before a process that died (or could not start) is started again.
RESTART_DELAY_S = 1.0


class HashFailed(Exception):
    """The hashing process died with this password in hand (or it was
    stopped); hashing it again may succeed."""


@attrs.define(eq=False)
class _Job:
    line: bytes = attrs.field(repr=False)
    done: trio.Event = attrs.field(factory=trio.Event)
    result: tuple[str, float] | None = None
    error: HashFailed | None = None
    #: Its caller stopped waiting: not sent if it has not been yet.
    abandoned: bool = False

    def finish(self, result: tuple[str, float] | None, error: HashFailed | None = None) -> None:
        if not self.done.is_set():
            self.result, self.error = result, error
            self.done.set()


class HashProcesses:
    """``count`` hashing processes (see the module docstring); ``run`` keeps
    them going in a nursery, ``hash`` hashes one password."""

    def __init__(
        self,
        params: HashParams,
        count: int,
        *,
        nice: int = NICE_INCREMENT,
        depth: int = DEPTH,
    ) -> None:
        self.params = params
        self.nice = nice
        self.count = count
        self.depth = depth
        self._send, self._receive = trio.open_memory_channel[_Job](math.inf)
        self._running: set[trio.Process] = set()

    @property
    def command(self) -> list[str]:
        params = self.params
        return [
            sys.executable,
            "-m",
            "smscd._hash_child",
            str(params.memory_kib),
            str(params.time_cost),
            str(params.parallelism),
            str(self.nice),
        ]

    def reconfigure(self, params: HashParams) -> None:
        """New hash parameters (SIGHUP): the processes are replaced at once; the
        hashes they had in hand are handed to their successors."""
        if params == self.params:
            return
        self.params = params
        for process in self._running:
            process.kill()

    @property
    def waiting(self) -> int:
        """Passwords not yet handed to a process: every process has its
        ``depth`` in hand, so hashing is the bottleneck."""
        return self._send.statistics().current_buffer_used

    async def hash(self, password: str) -> tuple[str, float]:
        """The encoded hash of ``password`` and the CPU seconds it took; waits
        for ``run`` to have a process free. Raises ``HashFailed``."""
        job = _Job(password.encode("utf-8").hex().encode("ascii") + b"\n")
        self._send.send_nowait(job)
        try:
            await job.done.wait()
        except BaseException:
            job.abandoned = True
            raise
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start the processes, then keep them fed (and alive) until cancelled."""
        async with trio.open_nursery() as nursery:
            for number in range(self.count):
                await nursery.start(self._keep, number)
            task_status.started()

    async def _keep(self, number: int, *, task_status: trio.TaskStatus[None]) -> None:
        # Started once the first attempt is made: a process that cannot start
        # is retried (and logged) without holding up the daemon's start.
        started: Callable[[], None] = task_status.started
        while True:
            try:
                process = await trio.lowlevel.open_process(
                    self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE
                )
            except OSError as exc:
                log.error("hash_process_failed", process=number, error=str(exc))
                started()
                started = _nothing
                await trio.sleep(RESTART_DELAY_S)
                continue
            started()
            started = _nothing
            params = self.params
            self._running.add(process)
            try:
                await self._feed(process, params)
            finally:
                self._running.discard(process)
                process.kill()
                with trio.CancelScope(shield=True):
                    await process.wait()
            if params != self.params:
                continue  # replaced on purpose (reconfigure)
            log.error("hash_process_exited", process=number, returncode=process.returncode)
            await trio.sleep(RESTART_DELAY_S)

    async def _feed(self, process: trio.Process, params: HashParams) -> None:
        """Hand ``process`` (started with ``params``) passwords, ``depth`` at a
        time, until it dies."""
        assert process.stdin is not None
        assert process.stdout is not None
        stdin, stdout = process.stdin, process.stdout
        in_hand: collections.deque[_Job] = collections.deque()
        room = trio.Semaphore(self.depth)
        try:
            async with trio.open_nursery() as nursery:

                async def read() -> None:
                    lines = _lines(stdout)
                    async for line in lines:
                        encoded, _, cpu = line.decode("ascii").rpartition(" ")
                        in_hand.popleft().finish((encoded, float(cpu)))
                        room.release()
                    nursery.cancel_scope.cancel()  # the process ended

                nursery.start_soon(read)
                async with self._receive.clone() as jobs:
                    while True:
                        await room.acquire()
                        job = await jobs.receive()
                        while job.abandoned:
                            job = await jobs.receive()
                        in_hand.append(job)
                        await stdin.send_all(job.line)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the process ended; reported by the caller
        finally:
            for job in in_hand:
                if params != self.params:
                    self._send.send_nowait(job)  # replaced: the next process takes it
                else:
                    job.finish(None, HashFailed("the hashing process ended"))


def _nothing() -> None:
    pass


async def _lines(stream: trio.abc.ReceiveStream) -> AsyncIterator[bytes]:
    buffer = b""
    while data := await stream.receive_some():
        buffer += data
        *complete, buffer = buffer.split(b"\n")
        for line in complete:
            yield line
