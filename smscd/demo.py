"""``make run``: a newcomer's first look at smscd, on this machine alone.

Migrates the SQLite store named in ``conf/smscd.toml``, imports the demo accounts
(``conf/demo-accounts.csv``), starts the bundled SMSC simulator where the config's
first ``[[smsc]]`` points (127.0.0.1:2775; its control port is the next one, 2776)
and ``smscd run`` as a child process, then plays three MOs
through real SMPP and prints each exchange: MO in, reply out, receipt back. It
keeps running so that you can send your own with ``smscd simulate send``; Ctrl-C
stops both (the daemon unbinds and exits cleanly).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from smscd.config import ConfigError, load_config
from smscd.simulator import DEFAULT_CONTROL_PORT, Simulator, SimulatorConfig, open_simulator

if TYPE_CHECKING:
    from smscd.link import LinkConfig

CONFIG = Path(os.environ.get("SMSCD_CONFIG", "conf/smscd.toml"))
ACCOUNTS = Path("conf/demo-accounts.csv")
SMSCD = [sys.executable, "-m", "smscd", "-c", str(CONFIG)]

#: How long the demo waits for each reply (they come within a second).
REPLY_WAIT_S = 5

DEMO_MOS = (
    ("0327000686", "BH MK 0123456789", "the registered phone: a new password"),
    ("0911222333", "BH MK 0123456789", "a stranger's phone: the mismatch text"),
    ("0327000686", "quen mat khau", "not a BH MK message: the help text"),
)


def say(text: str) -> None:
    print(f"\033[1m[demo]\033[0m {text}" if sys.stdout.isatty() else f"[demo] {text}", flush=True)


async def main(smsc: LinkConfig) -> int:
    for args in (["db", "upgrade"], ["accounts", "import", str(ACCOUNTS)]):
        say("smscd " + " ".join(args))
        await trio.run_process([*SMSCD, *args])

    config = SimulatorConfig(
        port=smsc.port,
        control_port=smsc.port + 1,
        system_id=smsc.system_id,
        password=smsc.password,
        receipt_delay=0.5,
    )
    async with open_simulator(config) as sim, trio.open_nursery() as nursery:
        say(f"SMSC simulator listening on 127.0.0.1:{sim.port} (control port {sim.port + 1})")
        daemon: trio.Process = await nursery.start(
            partial(trio.run_process, [*SMSCD, "run"], check=False)
        )
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as session:

                async def until_signal() -> None:
                    async for _ in signals:
                        session.cancel_scope.cancel()
                        return

                async def demo_then_wait() -> None:
                    await play(sim)
                    await daemon.wait()  # the daemon stopped by itself: so do we
                    session.cancel_scope.cancel()

                session.start_soon(until_signal)
                session.start_soon(demo_then_wait)
        say("stopping")
        if daemon.returncode is None:
            daemon.send_signal(signal.SIGTERM)
        with trio.move_on_after(12):
            await daemon.wait()
        nursery.cancel_scope.cancel()
    return daemon.returncode or 0


async def play(sim: Simulator) -> None:
    with trio.fail_after(30):
        await sim.wait_bound(1)
    say("smscd is bound to the simulator")
    unanswered = 0
    for phone, text, why in DEMO_MOS:
        await trio.sleep(0.5)
        before = len(sim.submitted)
        say(f"MO from {phone} to 8079: {text!r}  ({why})")
        status = await sim.inject_mo(source_addr="84" + phone[1:], text=text)
        say(f"   deliver_sm_resp status 0x{status:08x} (0 = committed to the store)")
        with trio.move_on_after(REPLY_WAIT_S):
            await sim.wait_submitted(before + 1)
        for sm in sim.submitted[before:]:
            say(f"   reply to {sm.event.destination_addr}: {sm.text!r}")
        if len(sim.submitted) == before and status == 0:
            say(f"   no reply within {REPLY_WAIT_S} s")
            unanswered += 1
    if unanswered:
        say(
            "an MO the daemon logs as mo_duplicate (the same text from the same phone"
            " within the config's duplicate_window: the SMSC redelivering one already"
            " answered) is acknowledged, not answered again; run the demo again after"
            " that window, or send your own"
        )
    await trio.sleep(1.0)
    say("receipts flow back after 0.5 s; see the daemon's receipt_received lines")
    control = "" if sim.port + 1 == DEFAULT_CONTROL_PORT else f" --control 127.0.0.1:{sim.port + 1}"
    say(
        f"send your own:  .venv/bin/smscd simulate send{control}"
        " --from 0327000686 'BH MK 0123456789'"
    )
    say("reports:        .venv/bin/smscd report charges   |   Ctrl-C to stop")


def run() -> int:
    Path("var").mkdir(exist_ok=True)
    try:
        config = load_config(CONFIG)
    except ConfigError as exc:
        print(f"[demo] {exc}", file=sys.stderr)
        return 2
    try:
        return trio.run(main, config.smscs[0].link)
    except subprocess.CalledProcessError as exc:
        print(f"[demo] {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(run())
