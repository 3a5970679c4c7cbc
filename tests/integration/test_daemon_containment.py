"""Issue 12 end to end, through ``smscd run``: a foreign number gets no reset;
a row two daemons died holding is quarantined at start, not run a third time,
and the operator can list, retry and drop it; a reply the SMSC never accepts
expires with its password masked and is never sent later."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
from contextlib import closing
from typing import TYPE_CHECKING

import pytest
import trio

from smscd.simulator import SimulatorConfig
from tests.integration.daemon_harness import SMSCD, open_daemon, start_daemon
from tests.integration.test_daemon import BAD_SYNTAX, MISMATCH, password_hash, reply_for

if TYPE_CHECKING:
    from pathlib import Path

    from smscd.simulator import SubmittedSm
    from tests.integration.daemon_harness import DaemonProcess

pytestmark = pytest.mark.slow

OK_5 = re.compile(rb"^Cap lai mat khau thanh cong\. Tai khoan: 5000000001/Mat khau: \d{6}$")
#: The Andorran number +376 312 345 in the forms an SMSC may give it.
FOREIGN_FORMS = (("376312345", 1), ("+376312345", 1), ("00376312345", 0), ("+376312345", 0))


def _cli(daemon: DaemonProcess, *args: str) -> tuple[int, str, str]:
    done = subprocess.run(
        [*SMSCD, "-c", str(daemon.config), *args], capture_output=True, text=True, check=False
    )
    return done.returncode, done.stdout, done.stderr


async def test_a_foreign_number_gets_the_mismatch_text_and_no_reset(tmp_path: Path) -> None:
    """0376312345 is registered; +376 312 345 (Andorra), in any form and TON,
    gets the mismatch text (never a password) and the account is unchanged;
    every form counts under one key."""
    with trio.fail_after(60):
        async with open_daemon(tmp_path) as daemon:
            await check_a_foreign_number_gets_no_reset(daemon, tmp_path)


async def check_a_foreign_number_gets_no_reset(daemon: DaemonProcess, tmp_path: Path) -> None:
    """The foreign-number scenario on a running daemon, whatever its store."""
    code, _, err = await trio.to_thread.run_sync(
        _cli, daemon, "accounts", "import", str(_accounts(tmp_path))
    )
    assert code == 0, err
    # Distinct spellings: one text from one key within the window would be a
    # redelivery, answered once.
    texts = ("BH MK 5000000001", "bh mk 5000000001", "BH MK: 5000000001", "BH-MK 5000000001")
    for (addr, ton), text in zip(FOREIGN_FORMS, texts, strict=True):
        before = len(daemon.sim.submitted)
        sent = daemon.sim.inject_mo(source_addr=addr, text=text, source_addr_ton=ton)
        assert await sent == 0
        with trio.fail_after(10):
            while not (replies := _sent_to(daemon, addr, before)):
                await trio.sleep(0.02)
        assert [r.event.short_message for r in replies] == [MISMATCH]
        assert replies[0].event.dest_addr_ton == ton
    assert password_hash(daemon, "5000000001") is None
    assert daemon.query(
        "SELECT msisdn, outcome, COUNT(*) FROM inbound_messages GROUP BY msisdn, outcome"
    ) == [("+376312345", "mismatch", len(FOREIGN_FORMS))]
    # The registered phone itself still resets.
    body = await reply_for(daemon, "84376312345", "BH MK 5000000001")
    assert OK_5.match(body), body
    assert password_hash(daemon, "5000000001") is not None


def _sent_to(daemon: DaemonProcess, addr: str, start: int) -> list[SubmittedSm]:
    return [s for s in daemon.sim.submitted[start:] if s.event.destination_addr == addr]


def _accounts(tmp_path: Path) -> Path:
    csv = tmp_path / "foreign.csv"
    csv.write_text("bhxh_code,phone,e_transaction\n5000000001,0376312345,1\n")
    return csv


async def test_a_row_two_daemons_died_holding_is_quarantined_and_the_operator_acts(
    tmp_path: Path,
) -> None:
    with trio.fail_after(90):
        async with open_daemon(tmp_path) as daemon:
            daemon.signal(signal.SIGTERM)
            assert await daemon.wait_exit() == 0
            # As left by two daemons that each died deciding it (kill -9 twice
            # while it was in progress): one claim counted, the second holder's
            # token still on it.
            with closing(sqlite3.connect(daemon.db_path)) as db, db:
                db.execute(
                    "INSERT INTO inbound_messages (id, carrier, source_addr, source_addr_ton,"
                    " source_addr_npi, msisdn, destination_addr, text, received_at, state,"
                    " claimed_by, claimed_at, claims)"
                    " VALUES (900, 'sim', '84327000686', 1, 1, '84327000686', '8079',"
                    " 'xin chao', '2026-12-02 00:00:00.000000', 'received',"
                    " 'deadbeefdeadbeef', '2026-12-02 00:00:00.000000', 1)"
                )
            async with trio.open_nursery() as nursery:
                again = await start_daemon(
                    nursery,
                    tmp_path,
                    daemon.config,
                    daemon.sim,
                    daemon.metrics_port,
                    log_name="daemon2.log",
                )
                await daemon.sim.wait_bound(1)
                await again.wait_log('"mo_quarantined"')
                event = _event(again, "mo_quarantined")
                assert (event["mo_id"], event["stage"]) == (900, "recovery")
                assert event["msisdn"] == "0327xxx686"
                assert again.query("SELECT state, claims FROM inbound_messages WHERE id = 900") == [
                    ("quarantined", 2)
                ]
                # The daemon goes on: a new MO is answered.
                assert await reply_for(again, "84911111114", "xin chao") == BAD_SYNTAX
                code, out, err = await trio.to_thread.run_sync(_cli, again, "quarantine", "list")
                assert code == 1, err
                assert "mo" in out and "900" in out and "0327xxx686" in out
                assert "84327000686" not in out
                code, out, _ = await trio.to_thread.run_sync(
                    _cli, again, "quarantine", "list", "--format", "json"
                )
                (listed,) = json.loads(out)
                assert (listed["kind"], listed["id"], listed["stage"]) == ("mo", 900, "recovery")
                # Retry: the running daemon answers it at its next recovery pass.
                before = len(daemon.sim.submitted)
                code, out, _ = await trio.to_thread.run_sync(
                    _cli, again, "quarantine", "retry", "mo", "900"
                )
                assert (code, out) == (0, "mo 900: put back\n")
                with trio.fail_after(15):
                    while not _sent_to(daemon, "84327000686", before):
                        await trio.sleep(0.05)
                assert again.query("SELECT state FROM inbound_messages WHERE id = 900") == [
                    ("decided",)
                ]
                code, _, err = await trio.to_thread.run_sync(
                    _cli, again, "quarantine", "drop", "mo", "900"
                )
                assert (code, err) == (1, "error: no mo 900 in quarantine\n")
                again.signal(signal.SIGTERM)
                assert await again.wait_exit() == 0


async def test_a_reply_never_accepted_expires_masked_and_is_never_sent(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with open_daemon(
            tmp_path,
            sim_config=SimulatorConfig(receipt_delay=0.05),
            extra="\n[outbox]\nreply_expiry = 1\nmax_attempts = 10\n",
        ) as daemon:
            daemon.sim.no_response_on_submit(True)
            assert await daemon.sim.inject_mo(source_addr="84327000686") == 0
            await daemon.wait_log('"mt_expired"', timeout=20)
            event = _event(daemon, "mt_expired")
            assert event["msisdn"] == "0327xxx686"
            state, body = daemon.query("SELECT state, body FROM outbound_messages")[0]
            assert state == "expired"
            assert isinstance(body, str) and body.endswith("Mat khau: ******")
            # The SMSC answers again: the stale password is not sent.
            daemon.sim.no_response_on_submit(False)
            swallowed = len(daemon.sim.submitted)
            await trio.sleep(3)
            assert _sent_to(daemon, "84327000686", swallowed) == []
            _status, metrics = await _metrics(daemon)
            assert b'smscd_mt_total{carrier="sim",state="expired"} 1.0' in metrics


async def _metrics(daemon: DaemonProcess) -> tuple[int, bytes]:
    from tests.integration.daemon_harness import http_get

    return await http_get(daemon.metrics_port, "/metrics")


def _event(daemon: DaemonProcess, name: str) -> dict[str, object]:
    for line in daemon.log_text().splitlines():
        if f'"{name}"' in line:
            event: dict[str, object] = json.loads(line)
            if event.get("event") == name:
                return event
    raise AssertionError(f"no {name} in the log")


async def test_a_reply_that_cannot_be_encoded_is_quarantined_and_the_daemon_goes_on(
    tmp_path: Path,
) -> None:
    """The first crash of the issue, as an older daemon left it: an MO whose
    source_addr is longer than SMPP allows, acknowledged and stored. Its reply
    cannot be encoded; it is quarantined (stage submit), the daemon keeps
    answering, and a restart does not meet it again."""
    long_addr = "8432700068612345678901234"
    with trio.fail_after(90):
        async with open_daemon(tmp_path) as daemon:
            daemon.signal(signal.SIGTERM)
            assert await daemon.wait_exit() == 0
            with closing(sqlite3.connect(daemon.db_path)) as db, db:
                db.execute(
                    "INSERT INTO inbound_messages (id, carrier, source_addr, source_addr_ton,"
                    " source_addr_npi, msisdn, destination_addr, text, received_at, state)"
                    " VALUES (901, 'sim', ?, 1, 1, ?, '8079', 'xin chao',"
                    " '2026-12-02 00:00:00.000000', 'received')",
                    (long_addr, "#" + long_addr),
                )
            for run in (2, 3):
                async with trio.open_nursery() as nursery:
                    again = await start_daemon(
                        nursery,
                        tmp_path,
                        daemon.config,
                        daemon.sim,
                        daemon.metrics_port,
                        log_name=f"daemon{run}.log",
                    )
                    await daemon.sim.wait_bound(1)
                    if run == 2:
                        await again.wait_log('"mt_quarantined"', timeout=15)
                        event = _event(again, "mt_quarantined")
                        assert (event["mo_id"], event["stage"]) == (901, "submit")
                        assert "LocalProtocolError" in str(event["reason"])
                        assert long_addr not in again.log_text()
                        _status, metrics = await _metrics(again)
                        assert b'smscd_poison_total{stage="submit"} 1.0' in metrics
                    assert await reply_for(again, f"8491111111{run}", "xin chao") == BAD_SYNTAX
                    assert again.query(
                        "SELECT state, quarantine_stage FROM outbound_messages"
                        " WHERE inbound_id = 901"
                    ) == [("quarantined", "submit")]
                    again.signal(signal.SIGTERM)
                    assert await again.wait_exit() == 0
                if run == 3:  # the restart does not meet the row again
                    assert '"mt_quarantined"' not in again.log_text()
