"""Benchmark: MO -> reply latency at a steady 200 MO/s, the SMSC in a process of its own.

Two subprocesses, nothing of either in this one: the load generator
(``python -m tests.bench.loadgen``: the bundled simulator on 127.0.0.1 with
delivery receipts on, ``RECEIPT_DELAY`` after each accepted submit_sm) and
``smscd run`` on SQLite with ``bench_e2e``'s config (window 64, no throughput
cap, JSON logs at level info to a file), its store migrated and 8,000 accounts
imported through the real CLI. The generator paces help and mismatch MOs
(half and half, a new sender each) at ``RATE`` per second: a warm-up of
``WARMUP_S`` seconds, not counted, then ``RUNS`` runs of ``SECONDS`` seconds.
Latency is the generator's: the hand-over of an MO's deliver_sm to the moment
it reads the submit_sm to that sender.

Per run: p50, p95, p99 and max latency; the daemon's CPU (user + system of the
process and its hashing processes, /proc) and the generator's, each as a share
of one core over the run's wall time (to the answer to its last receipt); how
late the generator was against its own schedule (if it is late, the figures
say more about it than about the daemon). The summary is the median of the
runs for each figure.

    python -m tests.bench.bench_latency [--runs 3] [--seconds 30] [--rate 200]
        [--daemon-tree DIR] [--workdir DIR]

``--daemon-tree`` runs ``smscd`` (the store's preparation and the daemon) from
another checkout of the code (a ``git worktree``), with the generator and this
script from the current one, to compare the daemon of two commits on the same
load; alternate the two, the machine's speed drifts. ``--workdir`` keeps the
config, the store, the daemon's log and a trace of each run's MOs
(``trace-N.jsonl``, see ``tests.bench.loadgen``) in DIR instead of a temporary
directory.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import trio

from tests.bench.bench_e2e import cpu_seconds, write_bench_config
from tests.bench.loadgen import ACCOUNTS
from tests.integration.daemon_harness import SMSCD, free_port

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]

RATE = 200.0
SECONDS = 30.0
WARMUP_S = 5.0
RUNS = 3
#: Seconds from an accepted submit_sm to its receipt.
RECEIPT_DELAY = 0.05
#: The goal of issue 13: p99 at most this.
GOAL_P99_S = 0.010
#: Longest wait for the replies and receipts after a run's last MO.
DRAIN_S = 20.0
#: The checkout this script belongs to.
REPO = Path(__file__).resolve().parents[2]


@attrs.frozen(kw_only=True)
class Run:
    figures: dict[str, Any]
    daemon_cpu_s: float
    loadgen_cpu_s: float
    #: CPU seconds the whole machine was busy (all cores, /proc/stat).
    machine_cpu_s: float

    @property
    def wall_s(self) -> float:
        return float(self.figures["wall_s"])

    @property
    def daemon_share(self) -> float:
        return self.daemon_cpu_s / self.wall_s

    @property
    def loadgen_share(self) -> float:
        return self.loadgen_cpu_s / self.wall_s

    @property
    def others_share(self) -> float:
        """Cores' worth of CPU that neither the daemon nor the generator took:
        the other work on a shared machine."""
        others = self.machine_cpu_s - self.daemon_cpu_s - self.loadgen_cpu_s
        return max(0.0, others) / self.wall_s

    def ms(self, name: str) -> float:
        return 1000 * float(self.figures[name])


# --- the two processes --------------------------------------------------------------


class LoadGen:
    """The generator's process and its line protocol (see ``tests.bench.loadgen``)."""

    def __init__(self, process: trio.Process) -> None:
        assert process.stdin is not None
        assert process.stdout is not None
        self.process = process
        self._stdin = process.stdin
        self._stdout = process.stdout
        self._buffer = bytearray()

    async def read(self) -> dict[str, Any]:
        while (end := self._buffer.find(b"\n")) < 0:
            data = await self._stdout.receive_some(1 << 16)
            if not data:
                raise RuntimeError("the load generator exited")
            self._buffer += data
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        message: dict[str, Any] = json.loads(line)
        return message

    async def request(self, **message: object) -> dict[str, Any]:
        await self._stdin.send_all(json.dumps(message).encode() + b"\n")
        return await self.read()

    async def close(self) -> None:
        await self._stdin.aclose()
        with trio.move_on_after(10):
            await self.process.wait()
        if self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


def machine_busy_seconds() -> float:
    """CPU seconds all cores have spent busy since boot (/proc/stat: every
    column of the ``cpu`` line but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _daemon_env(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree)}


def prepare_store(directory: Path, config: Path, tree: Path) -> None:
    """Migrate the store and import ``ACCOUNTS`` accounts with ``tree``'s smscd
    (run from ``directory``, so that the current checkout is not on its path)."""
    csv = directory / "accounts.csv"
    csv.write_text(
        "bhxh_code,phone,e_transaction\n"
        + "".join(f"7{i:09d},09{i:08d},1\n" for i in range(ACCOUNTS))
    )
    for args in (["db", "upgrade"], ["accounts", "import", str(csv)]):
        subprocess.run(
            [*SMSCD, "-c", str(config), *args],
            check=True,
            capture_output=True,
            cwd=directory,
            env=_daemon_env(tree),
        )


async def start_daemon(
    nursery: trio.Nursery, directory: Path, config: Path, tree: Path
) -> trio.Process:
    log_path = directory / "daemon.log"
    with log_path.open("wb") as log_file:  # the child keeps its own descriptor
        process: trio.Process = await nursery.start(
            partial(
                trio.run_process,
                [*SMSCD, "-c", str(config), "run"],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=directory,
                env=_daemon_env(tree),
                check=False,
            )
        )
    with trio.fail_after(30):
        while b'"daemon_ready"' not in log_path.read_bytes():
            if process.returncode is not None:
                raise RuntimeError(f"smscd run exited {process.returncode}: see {log_path}")
            await trio.sleep(0.05)
    return process


async def measure(
    loadgen: LoadGen,
    daemon: trio.Process,
    *,
    first: int,
    rate: float,
    seconds: float,
    trace: Path | None = None,
) -> Run:
    daemon_before = cpu_seconds(daemon.pid)
    loadgen_before = cpu_seconds(loadgen.process.pid)
    machine_before = machine_busy_seconds()
    figures = await loadgen.request(
        op="run",
        first=first,
        rate=rate,
        seconds=seconds,
        drain=DRAIN_S,
        trace=None if trace is None else str(trace),
    )
    return Run(
        figures=figures,
        daemon_cpu_s=cpu_seconds(daemon.pid) - daemon_before,
        loadgen_cpu_s=cpu_seconds(loadgen.process.pid) - loadgen_before,
        machine_cpu_s=machine_busy_seconds() - machine_before,
    )


async def bench(args: argparse.Namespace) -> list[Run]:
    tree = Path(args.daemon_tree).resolve()
    runs: list[Run] = []
    with contextlib.ExitStack() as stack:
        if args.workdir is None:
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="smscd-")))
            traces = False
        else:
            directory = Path(args.workdir).resolve()
            directory.mkdir(parents=True, exist_ok=False)
            traces = True
        config = write_bench_config(directory, smsc_port=9, metrics_port=9)
        await trio.to_thread.run_sync(prepare_store, directory, config, tree)
        process = await trio.lowlevel.open_process(
            [
                sys.executable,
                "-m",
                "tests.bench.loadgen",
                f"--receipt-delay={RECEIPT_DELAY}",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=REPO,
        )
        loadgen = LoadGen(process)
        try:
            port = (await loadgen.read())["port"]
            write_bench_config(directory, smsc_port=port, metrics_port=free_port())
            async with trio.open_nursery() as nursery:
                daemon = await start_daemon(nursery, directory, config, tree)
                try:
                    await loadgen.request(op="wait_bound", timeout=30)
                    budget = (args.runs + 1) * (args.seconds + 2 * DRAIN_S) + 60
                    with trio.fail_after(budget):
                        warm = await measure(
                            loadgen, daemon, first=0, rate=args.rate, seconds=WARMUP_S
                        )
                        print(
                            f"  warm-up: {warm.figures['answered']} answered,"
                            f" p99 {warm.ms('p99'):.1f} ms (not counted)",
                            flush=True,
                        )
                        first = int(args.rate * WARMUP_S)
                        for n in range(1, args.runs + 1):
                            run = await measure(
                                loadgen,
                                daemon,
                                first=first,
                                rate=args.rate,
                                seconds=args.seconds,
                                trace=directory / f"trace-{n}.jsonl" if traces else None,
                            )
                            first += int(args.rate * args.seconds)
                            runs.append(run)
                            _print_run(n, run)
                    daemon.send_signal(signal.SIGTERM)
                    with trio.move_on_after(15):
                        await daemon.wait()
                    if daemon.returncode != 0:
                        print(f"  smscd run exited {daemon.returncode} after SIGTERM")
                finally:
                    if daemon.returncode is None:
                        daemon.kill()
        finally:
            await loadgen.close()
    return runs


# --- report -------------------------------------------------------------------------


def _print_run(n: int, run: Run) -> None:
    f = run.figures
    unanswered = f["sent"] - f["refused"] - f["answered"]
    print(
        f"  run {n}: {f['sent']} MOs, {f['answered']} answered"
        + (f", {f['refused']} refused" if f["refused"] else "")
        + (f", {unanswered} UNANSWERED" if unanswered else "")
        + f", {f['receipts_answered']}/{f['replies']} receipts acknowledged;"
        f" p50 {run.ms('p50'):.1f} ms, p95 {run.ms('p95'):.1f} ms,"
        f" p99 {run.ms('p99'):.1f} ms, max {run.ms('max'):.1f} ms;"
        f" daemon CPU {run.daemon_share:.0%} of a core, generator {run.loadgen_share:.0%},"
        f" the rest of the machine {run.others_share:.0%};"
        f" generator late by p99 {run.ms('lag_p99'):.1f} ms, max {run.ms('lag_max'):.1f} ms",
        flush=True,
    )


def _summary(args: argparse.Namespace, runs: Sequence[Run]) -> bool:
    def median_ms(name: str) -> float:
        return statistics.median(r.ms(name) for r in runs)

    p99 = median_ms("p99")
    ok = p99 <= GOAL_P99_S * 1000 and all(
        r.figures["answered"] + r.figures["refused"] == r.figures["sent"] for r in runs
    )
    tree = Path(args.daemon_tree).resolve()
    print(
        f"smscd run{'' if tree == REPO else f' from {tree}'} at {args.rate:.0f} MO/s of help"
        f" and mismatch MOs, receipts on ({RECEIPT_DELAY * 1000:.0f} ms), the SMSC a process"
        f" of its own; median of {len(runs)} runs of {args.seconds:.0f} s:"
    )
    print(
        f"  p50 {median_ms('p50'):.1f} ms, p95 {median_ms('p95'):.1f} ms,"
        f" p99 {p99:.1f} ms, max {median_ms('max'):.1f} ms;"
        f" daemon CPU {statistics.median(r.daemon_share for r in runs):.0%} of a core,"
        f" generator {statistics.median(r.loadgen_share for r in runs):.0%},"
        f" the rest of the machine {statistics.median(r.others_share for r in runs):.0%}"
        f" (of {len(os.sched_getaffinity(0))} cores)"
    )
    print(
        f"goal: p99 <= {GOAL_P99_S * 1000:.0f} ms at {args.rate:.0f} MO/s:"
        f" {p99:.1f} ms  {'PASS' if ok else 'FAIL'}"
    )
    return ok


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.bench_latency")
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument("--rate", type=float, default=RATE)
    parser.add_argument(
        "--daemon-tree",
        default=str(REPO),
        help="the checkout whose smscd runs the store and the daemon (default: this one)",
    )
    parser.add_argument(
        "--workdir", help="keep the store, the daemon's log and the traces in this new directory"
    )
    return parser


def main(argv: Sequence[str] = ()) -> None:
    args = _parser().parse_args(list(argv))
    runs = trio.run(bench, args)
    if runs:
        _summary(args, runs)


if __name__ == "__main__":
    main(sys.argv[1:])
