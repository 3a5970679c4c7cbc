"""Benchmark: what an open status page costs the daemon at 200 MO/s.

One ``smscd run`` (a subprocess on SQLite, as in ``bench_e2e``) takes help and
mismatch MOs paced at ``RATE`` per second for ``SECONDS``, six runs in a row,
without and with a poller that fetches what the page fetches (in the order
without, with, with, without, without, with, so that a drift of the machine's
speed weighs on both alike): the page and its files once, then
``/status.json`` every ``REFRESH_S`` seconds (a new connection per request, as
HTTP/1.0: a little dearer than a browser's kept-alive one). Per run, the
daemon's CPU (user + system of the process and its hashing processes, from
/proc) over the run's wall time is its share of a core; the figure is the
median of the runs with the poller minus the median of those without.

That difference is as small as the run-to-run noise of a shared machine, so
the cost is also measured directly, the daemon idle: the CPU of ``PROBES``
requests for ``/status.json``, each a fresh snapshot (they are
``STATUS_MAX_AGE`` apart), less the daemon's idle CPU over as long, per
request, times the page's rate.

    python -m tests.bench.bench_status
"""

from __future__ import annotations

import statistics
import tempfile
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import trio

from smscd.web._app import REFRESH_S, STATUS_MAX_AGE
from tests.bench.bench_e2e import cpu_seconds, open_bench_daemon, prepare_store, write_bench_config

if TYPE_CHECKING:
    from tests.integration.daemon_harness import DaemonProcess

__all__ = ["main"]

#: MOs per second, seconds per run.
RATE = 200.0
SECONDS = 30.0
#: The goal: an open page costs less than this share of a core.
GOAL_CORE_SHARE = 0.02
#: Bound on waiting for the replies after the last MO.
DRAIN_S = 20.0
PAGE_FILES = ("/", "/static/status.css", "/static/status.js", "/static/icon.svg")
#: Which runs have the poller (see the module docstring).
ORDER = (False, True, True, False, False, True)
#: Requests of the direct measurement, and rounds of it (each against its own idle span).
PROBES = 10
ROUNDS = 3


@attrs.frozen(kw_only=True)
class Run:
    polled: bool
    answered: int
    seconds: float
    daemon_cpu_s: float
    requests: int

    @property
    def core_share(self) -> float:
        return self.daemon_cpu_s / self.seconds


async def get(port: int, path: str) -> int:
    """One GET as a browser on the same host sends it; returns the status."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        request = f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n"
        await stream.send_all(request.encode())
        data = b""
        while chunk := await stream.receive_some(65536):
            data += chunk
    return int(data.split(b" ", 2)[1])


async def poll_like_the_page(port: int, counted: list[int]) -> None:
    """Until cancelled: the page's files once, then status.json every REFRESH_S."""
    for path in PAGE_FILES:
        counted.append(await get(port, path))
    while True:
        counted.append(await get(port, "/status.json"))
        await trio.sleep(REFRESH_S)


def reply_only(i: int) -> tuple[str, str]:
    """A help or a mismatch MO from a sender never used before."""
    sender = f"845{i:08d}"
    return (sender, f"xin chao {i}") if i % 2 else (sender, f"BH MK 8{i:09d}")


async def run_once(daemon: DaemonProcess, first: int, *, polled: bool) -> Run:
    sim = daemon.sim
    count = int(RATE * SECONDS)
    replies_before = len(sim.submitted)
    statuses: list[int] = []
    pid = daemon.process.pid
    async with trio.open_nursery() as outer:
        if polled:
            outer.start_soon(poll_like_the_page, daemon.metrics_port, statuses)
        cpu_before = cpu_seconds(pid)
        start = trio.current_time()
        async with trio.open_nursery() as injectors:
            for i in range(count):
                await trio.sleep_until(start + i / RATE)
                source, text = reply_only(first + i)
                injectors.start_soon(partial(sim.inject_mo, source_addr=source, text=text))
        with trio.move_on_after(DRAIN_S):
            await sim.wait_submitted(replies_before + count)
        seconds = trio.current_time() - start
        daemon_cpu = cpu_seconds(pid) - cpu_before
        outer.cancel_scope.cancel()
    if any(status != 200 for status in statuses):
        raise RuntimeError(f"the poller got {sorted(set(statuses))}")
    return Run(
        polled=polled,
        answered=len(sim.submitted) - replies_before,
        seconds=seconds,
        daemon_cpu_s=daemon_cpu,
        requests=len(statuses),
    )


async def per_request_cpu(daemon: DaemonProcess) -> float:
    """CPU seconds of the daemon per fresh /status.json, idle otherwise: the
    median of ``ROUNDS`` (``PROBES`` requests, less an idle span as long)."""
    pid = daemon.process.pid
    spacing = STATUS_MAX_AGE + 0.05
    costs = []
    for _ in range(ROUNDS):
        before = cpu_seconds(pid)
        await trio.sleep(PROBES * spacing)
        idle = cpu_seconds(pid) - before
        before = cpu_seconds(pid)
        start = trio.current_time()
        for i in range(PROBES):
            if await get(daemon.metrics_port, "/status.json") != 200:
                raise RuntimeError("status.json did not answer 200")
            await trio.sleep_until(start + (i + 1) * spacing)
        costs.append((cpu_seconds(pid) - before - idle) / PROBES)
    return statistics.median(costs)


async def _bench() -> bool:
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="smscd-bench-status-") as tmp:
        directory = Path(tmp)
        config = write_bench_config(directory, smsc_port=9, metrics_port=9)
        await trio.to_thread.run_sync(prepare_store, directory, config)
        with trio.fail_after(len(ORDER) * (SECONDS + DRAIN_S) + 120):
            async with open_bench_daemon(directory, "daemon-status.log") as daemon:
                first = 0
                for n, polled in enumerate(ORDER):
                    run = await run_once(daemon, first, polled=polled)
                    first += int(RATE * SECONDS)
                    runs.append(run)
                    print(
                        f"  run {n + 1} {'with' if run.polled else 'without'} the page:"
                        f" {run.answered} answered in {run.seconds:.1f} s,"
                        f" daemon CPU {run.daemon_cpu_s:.2f} s = {run.core_share:.2%} of a core"
                        + (f", {run.requests} requests" if run.polled else ""),
                        flush=True,
                    )
                await trio.sleep(DRAIN_S / 4)  # the last receipts
                request_cpu = await per_request_cpu(daemon)
    without = [r.core_share for r in runs if not r.polled]
    with_page = [r.core_share for r in runs if r.polled]
    cost = statistics.median(with_page) - statistics.median(without)
    direct = request_cpu / REFRESH_S
    ok = cost < GOAL_CORE_SHARE and direct < GOAL_CORE_SHARE
    print(
        f"daemon at {RATE:.0f} MO/s (help and mismatch), {SECONDS:.0f} s runs, alternated:"
        f" {statistics.median(without):.2%} of a core without the page,"
        f" {statistics.median(with_page):.2%} with it (status.json every {REFRESH_S:g} s)"
    )
    print(
        f"measured directly: {request_cpu * 1000:.1f} ms of daemon CPU per fresh status.json"
        f" (median of {ROUNDS} x {PROBES}, idle CPU deducted), one every {REFRESH_S:g} s"
        f" = {direct:.2%} of a core"
    )
    print(
        f"goal: an open page costs < {GOAL_CORE_SHARE:.0%} of a core: {cost:+.2%} with/without,"
        f" {direct:.2%} measured directly  {'PASS' if ok else 'FAIL'}"
    )
    return ok


def main() -> None:
    trio.run(_bench)


if __name__ == "__main__":
    main()
