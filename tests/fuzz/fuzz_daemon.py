"""The daemon fuzzer: hostile and mutated PDUs from an SMSC into ``smscd run``.

The bundled simulator binds a real ``smscd run`` subprocess (SQLite, in a
temporary directory) and writes PDUs to it as a hostile or broken SMSC would:
first every named case of :data:`tests.fuzz.mutate.HOSTILE_PDUS`, then the
seeded stream of :func:`tests.fuzz.mutate.mutations`. Every
``check_every`` cases, and at the end, it checks what an operator would: the
daemon has not exited, the bind is up (or back within ``rebind_s`` seconds: a
PDU whose length is wrong desynchronises the stream, and the daemon rightly
drops and rebinds), a valid ``BH MK`` MO gets its exact reply, and the
daemon's resident memory stays under ``max_rss_mib``. The run stops after
``cases`` cases or ``seconds`` seconds, whichever comes first, and prints the
cases sent, the rate, the responses by status, the rebinds, the peak RSS and
every failure. Exit status 1 when anything failed.
"""

from __future__ import annotations

import collections
import random
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import trio

from smscd.simulator import NoReceiverError, SimulatorError
from tests.fuzz.mutate import HOSTILE_PDUS, mutations
from tests.integration.daemon_harness import DaemonProcess, open_daemon

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterator

__all__ = ["FuzzReport", "add_arguments", "fuzz_daemon", "main", "rss_mib"]

#: The exact reply of the probe MO (a help text: no hashing, no rate limit).
PROBE_TEXT = "xin chao"
PROBE_REPLY = (
    b"Tin nhan sai cu phap. De lay lai mat khau VssID, soan tin: BH MK <Ma so BHXH> gui 8079"
)
HEADER_OCTETS = 16
RESPONSE_BIT = 0x80000000
#: How long one PDU's response is awaited.
RESPONSE_WAIT_S = 2.0


@attrs.define
class FuzzReport:
    sent: int = 0
    statuses: collections.Counter[str] = attrs.Factory(collections.Counter)
    rebinds: int = 0
    desyncs: int = 0
    probes: int = 0
    peak_rss_mib: float = 0.0
    failures: list[str] = attrs.Factory(list)
    elapsed_s: float = 0.0

    def lines(self) -> list[str]:
        rate = self.sent / self.elapsed_s if self.elapsed_s else 0.0
        out = [
            f"cases sent: {self.sent} in {self.elapsed_s:.1f} s ({rate:.0f}/s)",
            f"probes answered exactly: {self.probes}",
            f"rebinds: {self.rebinds} (connections dropped after a wrong length: {self.desyncs})",
            f"daemon peak RSS: {self.peak_rss_mib:.1f} MiB",
            "responses: "
            + ", ".join(f"{name} {count}" for name, count in self.statuses.most_common()),
            f"failures: {len(self.failures)}",
        ]
        out += [f"  {failure}" for failure in self.failures[:20]]
        return out


def rss_mib(pid: int) -> float:
    """Resident memory of a process and its children (the hashing processes)."""
    total = 0.0
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        pids += [int(child) for child in (task / "children").read_text().split()]
    for one in pids:
        try:
            status = Path(f"/proc/{one}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
    return total


def _cases(rng: random.Random) -> Iterator[tuple[str, bytes]]:
    """The hostile PDUs, then the mutations that hold at least a header (the
    shorter ones are the core fuzzer's: on a socket they only join the next)."""
    yield from HOSTILE_PDUS
    for index, raw in enumerate(mutations(rng)):
        if len(raw) >= HEADER_OCTETS:
            yield f"mutation {index}", raw


PROBE_ATTEMPTS = 3


def _replies(daemon: DaemonProcess, source: str, start: int) -> list[bytes]:
    return [
        s.event.short_message
        for s in daemon.sim.submitted[start:]
        if s.event.destination_addr == source
    ]


def _status_name(status: int | None) -> str:
    return "none" if status is None else f"0x{status:02x}"


async def _probe(daemon: DaemonProcess, report: FuzzReport, number: int, rebind_s: float) -> None:
    """The operator's checks: alive, bound, the exact reply, memory."""
    if daemon.process.returncode is not None:
        report.failures.append(f"daemon exited with {daemon.process.returncode}")
        return
    try:
        with trio.fail_after(rebind_s):
            await daemon.sim.wait_bound(1)
    except trio.TooSlowError:
        report.failures.append(f"not bound again within {rebind_s} s")
        return
    source = f"8498{number % 10_000_000:07d}"
    before = len(daemon.sim.submitted)
    status: int | None = None
    replies: list[bytes] = []
    # A probe written while the daemon drops a desynchronised connection is
    # lost with it (an SMSC redelivers): try again, bounded.
    for _attempt in range(PROBE_ATTEMPTS):
        try:
            with trio.fail_after(rebind_s):
                await daemon.sim.wait_bound(1)
            with trio.fail_after(10):
                status = await daemon.sim.inject_mo(source_addr=source, text=PROBE_TEXT)
                while not (replies := _replies(daemon, source, before)):
                    await trio.sleep(0.02)
            break
        except (trio.TooSlowError, SimulatorError):
            await trio.sleep(0.2)
    else:
        report.failures.append(f"probe {number}: no reply in {PROBE_ATTEMPTS} attempts")
        return
    if status != 0 or replies != [PROBE_REPLY]:
        report.failures.append(f"probe {number}: status {status}, replies {replies!r}")
        return
    report.probes += 1
    report.peak_rss_mib = max(report.peak_rss_mib, rss_mib(daemon.process.pid))


async def fuzz_daemon(
    daemon: DaemonProcess,
    *,
    cases: int,
    seconds: float,
    seed: int,
    check_every: int = 100,
    rebind_s: float = 2.0,
    max_rss_mib: float = 400.0,
) -> FuzzReport:
    """Send at most ``cases`` PDUs in at most ``seconds`` to a running daemon
    (see the module docstring); the report lists every failure."""
    report = FuzzReport()
    rng = random.Random(seed)
    started = time.monotonic()
    deadline = started + seconds
    probes = 0
    for name, raw in _cases(rng):
        if report.sent >= cases or time.monotonic() >= deadline:
            break
        length = int.from_bytes(raw[:4], "big")
        is_response = bool(int.from_bytes(raw[4:8], "big") & RESPONSE_BIT)
        try:
            with trio.fail_after(rebind_s):
                await daemon.sim.wait_bound(1)
            status = await daemon.sim.send_raw(
                raw, wait=RESPONSE_WAIT_S / 10 if is_response else RESPONSE_WAIT_S
            )
        except (trio.TooSlowError, NoReceiverError, SimulatorError):
            status = None
        report.sent += 1
        report.statuses[_status_name(status)] += 1
        if length != len(raw):
            # The stream is out of step: what follows is read as this PDU's
            # rest. An SMSC in that state drops the connection; so do we,
            # and the daemon must bind again.
            report.desyncs += 1
            await daemon.sim.drop_connections()
        if daemon.process.returncode is not None:
            report.failures.append(f"daemon exited with {daemon.process.returncode} after {name}")
            break
        if report.sent % check_every == 0:
            probes += 1
            await _probe(daemon, report, probes, rebind_s)
            if report.failures:
                report.failures[-1] += f" (after {name})"
                break
    if not report.failures:
        probes += 1
        await _probe(daemon, report, probes, rebind_s)
    if report.peak_rss_mib > max_rss_mib:
        report.failures.append(f"peak RSS {report.peak_rss_mib:.0f} MiB over {max_rss_mib} MiB")
    report.elapsed_s = time.monotonic() - started
    report.rebinds = daemon.log_text().count('"link_bound"') - 1
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cases", type=int, default=1_000_000, help="at most this many PDUs")
    parser.add_argument("--seconds", type=float, default=600.0, help="at most this long")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--check-every", type=int, default=200, help="PDUs between two probes")


async def _main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="smscd-fuzz-") as directory:
        async with open_daemon(Path(directory)) as daemon:
            report = await fuzz_daemon(
                daemon,
                cases=args.cases,
                seconds=args.seconds,
                seed=args.seed,
                check_every=args.check_every,
            )
            quarantined = daemon.query(
                "SELECT (SELECT count(*) FROM inbound_messages WHERE state = 'quarantined')"
                " + (SELECT count(*) FROM outbound_messages WHERE state = 'quarantined')"
            )[0][0]
    for line in report.lines():
        print(line, flush=True)
    print(f"quarantined items: {quarantined}", flush=True)
    return 1 if report.failures else 0


def main(args: argparse.Namespace) -> int:
    """Fuzz a running daemon (module docstring)."""
    return trio.run(_main, args)
