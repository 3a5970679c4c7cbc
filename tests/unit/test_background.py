"""BackgroundThreads: results and errors come back to the task, at most
``count`` jobs run at once, and the threads run below the process's priority."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest
import trio

from smscd._background import NICE_INCREMENT, BackgroundThreads


async def test_result_error_and_concurrency() -> None:
    pool = BackgroundThreads(2)
    running = 0
    most = 0
    lock = threading.Lock()

    def job(i: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02)
        with lock:
            running -= 1
        return i * i

    results: dict[int, int] = {}

    async def one(i: int) -> None:
        results[i] = await pool.run(lambda: job(i))

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for i in range(6):
                nursery.start_soon(one, i)
        assert results == {i: i * i for i in range(6)}
        assert most == 2

        def boom() -> None:
            raise ValueError("boom")

        with pytest.raises(ValueError, match="boom"):
            await pool.run(boom)
    pool.close()


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice is Linux's")
async def test_threads_run_below_the_process_priority() -> None:
    pool = BackgroundThreads(1)
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    with trio.fail_after(10):
        theirs = await pool.run(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
    assert theirs == min(19, mine + NICE_INCREMENT)
    pool.close()


async def test_a_cancelled_caller_still_waits_for_its_job() -> None:
    pool = BackgroundThreads(1)
    finished = threading.Event()

    def slow() -> None:
        time.sleep(0.1)
        finished.set()

    with trio.move_on_after(0.01):
        await pool.run(slow)
    assert finished.is_set()
    pool.close()
