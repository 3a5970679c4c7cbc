"""HashProcesses: real child processes hash what the daemon hands them, below
its priority, and one that dies fails only the hashes it had in hand."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest
import trio

from smscd._hashing import NICE_INCREMENT, HashFailed, HashProcesses
from smscd.reset import HashParams, PasswordHasher
from tests.integration.daemon_harness import children

PARAMS = HashParams(memory_kib=1024, time_cost=1)


def _children() -> list[int]:
    return children(os.getpid())


def _nice(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


async def test_hashes_come_back_verified_and_in_order_of_their_callers() -> None:
    pool = HashProcesses(PARAMS, 2)
    hasher = PasswordHasher(PARAMS)
    results: dict[str, tuple[str, float]] = {}

    async def one(password: str) -> None:
        results[password] = await pool.hash(password)

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(pool.run)
            async with trio.open_nursery() as callers:
                for i in range(12):
                    callers.start_soon(one, f"{i:06d}")
            nursery.cancel_scope.cancel()
    assert set(results) == {f"{i:06d}" for i in range(12)}
    for password, (encoded, cpu_s) in results.items():
        assert encoded.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
        assert hasher.verify(encoded, password)
        assert not hasher.verify(encoded, "999999x")
        assert 0 <= cpu_s < 5


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
async def test_processes_run_below_the_daemon_and_end_with_it() -> None:
    pool = HashProcesses(PARAMS, 2)
    before = set(_children())
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(pool.run)
            await pool.hash("123456")
            hashers = set(_children()) - before
            assert len(hashers) == 2
            # Each lowers its own priority as it starts.
            wanted = min(19, os.getpriority(os.PRIO_PROCESS, 0) + NICE_INCREMENT)
            while {_nice(pid) for pid in hashers} != {wanted}:
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    assert not hashers & set(_children())


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
async def test_a_killed_process_fails_its_hashes_and_is_replaced() -> None:
    slow = HashParams(memory_kib=65536, time_cost=40)  # long enough to be killed mid-hash
    pool = HashProcesses(slow, 1)
    before = set(_children())
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(pool.run)
            (hasher,) = set(_children()) - before

            async def killed() -> None:
                with pytest.raises(HashFailed):
                    await pool.hash("111111")

            async with trio.open_nursery() as callers:
                callers.start_soon(killed)
                await trio.sleep(0.3)
                os.kill(hasher, signal.SIGKILL)
            # A new process takes the next one.
            encoded, _cpu = await pool.hash("222222")
            assert PasswordHasher(slow).verify(encoded, "222222")
            assert hasher not in _children()
            nursery.cancel_scope.cancel()


async def test_a_caller_that_gives_up_does_not_stop_the_others() -> None:
    pool = HashProcesses(PARAMS, 1, depth=1)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(pool.run)
            with trio.move_on_after(0):
                await pool.hash("333333")
            encoded, _cpu = await pool.hash("444444")
            assert PasswordHasher(PARAMS).verify(encoded, "444444")
            nursery.cancel_scope.cancel()


async def test_new_parameters_replace_the_processes() -> None:
    pool = HashProcesses(PARAMS, 1)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(pool.run)
            before, _cpu = await pool.hash("555555")
            pool.reconfigure(HashParams(memory_kib=2048, time_cost=2))
            after, _cpu = await pool.hash("555555")
            nursery.cancel_scope.cancel()
    assert before.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    assert after.startswith("$argon2id$v=19$m=2048,t=2,p=1$")
