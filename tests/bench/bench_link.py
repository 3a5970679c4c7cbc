"""Benchmark: submit_sm round trips per second through one Link.

The link talks to the bundled simulator over loopback; the simulator runs in its
own process (as a carrier's SMSC would), so the figure is the link's own cost
plus one SMSC's. Window 64, no throughput cap, N submits or a time bound per run,
median of three runs.

    python -m tests.bench.bench_link [N]
"""

from __future__ import annotations

import logging
import statistics
import subprocess
import sys

import structlog
import trio

from smscd.link import Accepted, Link, LinkConfig, OutboundSm

__all__ = ["main"]

SUBMITS = 20_000
MAX_SECONDS = 10.0
WINDOW = 64
RUNS = 3

_SIMULATOR = """
import sys, trio
from smscd.simulator import SimulatorConfig, open_simulator

async def main():
    async with open_simulator(SimulatorConfig(port=0)) as sim:
        print(sim.port, flush=True)
        await trio.to_thread.run_sync(sys.stdin.read)  # until the parent closes stdin

trio.run(main)
"""

_MESSAGE = OutboundSm(
    source_addr="8079",
    destination_addr="84327000686",
    text="Cap lai mat khau thanh cong. Tai khoan: 0123456789/Mat khau: 123456",
    registered_delivery=0,
)


async def _one_run(port: int, submits: int) -> tuple[int, float]:
    """Submit up to ``submits`` (or for MAX_SECONDS); return (accepted, seconds)."""
    config = LinkConfig(
        name="bench",
        host="127.0.0.1",
        port=port,
        system_id="smscd",
        password="secret",
        window=WINDOW,
        throughput=0,
    )
    link = Link(config)
    async with trio.open_nursery() as nursery:
        await nursery.start(link.run)
        with trio.fail_after(10):
            await link.wait_bound()
        started = 0
        accepted = 0
        start = trio.current_time()
        deadline = start + MAX_SECONDS

        async def worker() -> None:
            nonlocal started, accepted
            while started < submits and trio.current_time() < deadline:
                started += 1
                result = await link.submit(_MESSAGE)
                if isinstance(result, Accepted):
                    accepted += 1

        async with trio.open_nursery() as workers:
            for _ in range(WINDOW + 8):  # a few more than the window keeps it full
                workers.start_soon(worker)
        elapsed = trio.current_time() - start
        await link.stop()
    return accepted, elapsed


def main(submits: int = SUBMITS) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    simulator = subprocess.Popen(
        [sys.executable, "-c", _SIMULATOR],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert simulator.stdout is not None
        port = int(simulator.stdout.readline())
        rates = []
        for run in range(1, RUNS + 1):
            accepted, elapsed = trio.run(_one_run, port, submits)
            rate = accepted / elapsed
            rates.append(rate)
            print(f"run {run}: {accepted} submit_sm accepted in {elapsed:.2f} s = {rate:,.0f}/s")
        print(
            f"link submit_sm round trips: {statistics.median(rates):,.0f}/s "
            f"(median of {RUNS}, window {WINDOW}, simulator in its own process)"
        )
    finally:
        assert simulator.stdin is not None
        simulator.stdin.close()
        simulator.wait(timeout=10)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else SUBMITS)
