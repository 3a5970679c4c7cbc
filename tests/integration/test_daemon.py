"""End to end: ``smscd run`` as a subprocess against the simulator over loopback.

These are the acceptance tests of DESIGN.md's invariants 1-6 as an operator would
see them: the exact reply bytes, the password really changed, receipts and
charges recorded, nothing lost or doubled across a kill -9, a clean SIGTERM.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import sqlite3
from collections import Counter
from functools import partial
from typing import TYPE_CHECKING

import pytest
import trio
from argon2 import PasswordHasher

from smscd.service import RETRY_BASE_S
from smscd.simulator import SimulatorConfig, SimulatorError
from smscd.smpp import CommandStatus
from tests.integration.daemon_harness import (
    DaemonProcess,
    http_get,
    metric_value,
    open_daemon,
    start_daemon,
)

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.slow

OK = re.compile(rb"^Cap lai mat khau thanh cong\. Tai khoan: 0123456789/Mat khau: (\d{6})$")
MISMATCH = (
    b"So dien thoai va ma so BHXH khong khop hoac chua dang ky giao dich dien tu voi co quan BHXH"
)
INVALID = (
    b"Ma so BHXH khong dung cau truc (phai gom 10 chu so). Soan tin: BH MK <Ma so BHXH> gui 8079"
)
BAD_SYNTAX = (
    b"Tin nhan sai cu phap. De lay lai mat khau VssID, soan tin: BH MK <Ma so BHXH> gui 8079"
)
RATE_LIMITED = (
    b"Ban da yeu cau cap lai mat khau qua so lan cho phep. Vui long thu lai sau hoac goi 1900.9068"
)


async def reply_for(daemon: DaemonProcess, source: str, text: str, *, timeout: float = 10) -> bytes:
    """Inject one MO and return the body of the next MT submitted to that number."""
    before = len(daemon.sim.submitted)
    status = await daemon.sim.inject_mo(source_addr=source, text=text)
    assert status == 0
    with trio.fail_after(timeout):
        while True:
            for sm in daemon.sim.submitted[before:]:
                if sm.event.destination_addr == source:
                    return sm.event.short_message
            await trio.sleep(0.02)


def start_help_mos(
    nursery: trio.Nursery, daemon: DaemonProcess, count: int, *, until_a_stop: bool = False
) -> None:
    """Load: ``count`` MOs from distinct senders, each answered with the help
    text, injected at once by tasks of ``nursery``. ``until_a_stop``: the
    daemon is stopped meanwhile, and an MO whose bind closes before its
    deliver_sm_resp (the daemon stopped reading; the SMSC would deliver it
    again) ends its task quietly."""

    async def inject(source_addr: str) -> None:
        try:
            await daemon.sim.inject_mo(source_addr=source_addr, text="xin chao")
        except SimulatorError:
            if not until_a_stop:
                raise

    for i in range(count):
        nursery.start_soon(inject, f"8491{i:07d}")


def password_hash(daemon: DaemonProcess, code: str) -> str | None:
    rows = daemon.query("SELECT password_hash FROM accounts WHERE bhxh_code = ?", (code,))
    value = rows[0][0]
    assert value is None or isinstance(value, str)
    return value


async def test_each_reply_text_and_the_password_really_changes(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with open_daemon(tmp_path) as daemon:
            body = await reply_for(daemon, "84327000686", "BH MK 0123456789")
            match = OK.match(body)
            assert match, body
            stored = password_hash(daemon, "0123456789")
            assert stored is not None and stored.startswith("$argon2id$")
            assert PasswordHasher().verify(stored, match.group(1).decode())
            assert daemon.query(
                "SELECT must_change FROM accounts WHERE bhxh_code = '0123456789'"
            ) == [(1,)]

            # Wrong phone, unknown code, not registered: the same bytes, no change.
            assert await reply_for(daemon, "84911111111", "BH MK 0123456789") == MISMATCH
            assert password_hash(daemon, "0123456789") == stored
            assert await reply_for(daemon, "84911111112", "BH MK 9999999999") == MISMATCH
            assert await reply_for(daemon, "84912345678", "BH MK 0101010101") == MISMATCH
            assert password_hash(daemon, "0101010101") is None

            # A registration in the pre-2018 11-digit form matches the new number.
            assert (await reply_for(daemon, "84327111222", "bh mk 7901234567")).startswith(
                b"Cap lai mat khau thanh cong. Tai khoan: 7901234567/Mat khau: "
            )
            assert await reply_for(daemon, "84911111113", "BH MK 12345") == INVALID
            assert await reply_for(daemon, "84911111114", "xin chao") == BAD_SYNTAX

            # Two more resets today are allowed, the fourth is refused.
            # (Different spellings: an identical text within duplicate_window is
            # a redelivery, answered once.)
            for text in ("bh mk 0123456789", "BH-MK-0123456789"):
                assert OK.match(await reply_for(daemon, "84327000686", text))
            latest = password_hash(daemon, "0123456789")
            assert await reply_for(daemon, "84327000686", "BH MK: 0123456789.") == RATE_LIMITED
            assert password_hash(daemon, "0123456789") == latest
            # Four passwords hashed, each measured (the bench's in-run ceiling).
            _status, metrics = await http_get(daemon.metrics_port, "/metrics")
            assert b"smscd_password_hash_cpu_seconds_count 4.0" in metrics

            # Every MO charged exactly once (mode "mo": final at decision).
            charges = daemon.query("SELECT COUNT(*), SUM(amount_vnd) FROM charges")
            assert charges == [(10, 10_000)]


async def test_receipts_are_recorded_and_no_password_is_left_in_plaintext(
    tmp_path: Path,
) -> None:
    with trio.fail_after(60):
        config = SimulatorConfig(
            receipt_delay=0.05, submit_id_format="hex", receipt_id_format="dec"
        )
        async with open_daemon(tmp_path, sim_config=config, charging="mt") as daemon:
            body = await reply_for(daemon, "84327000686", "BH MK 0123456789")
            match = OK.match(body)
            assert match
            password = match.group(1).decode()
            with trio.fail_after(10):
                while daemon.query("SELECT state FROM outbound_messages") != [("delivered",)]:
                    await trio.sleep(0.05)
            # MT charging: the charge became final on DELIVRD.
            assert daemon.query("SELECT state, amount_vnd FROM charges") == [("final", 1000)]
            await daemon.wait_log('"receipt_received"')
            # The receipt's line names the request it answers, for grep or jq.
            (mo_id,) = daemon.query("SELECT id FROM inbound_messages")[0]
            (line,) = [
                json.loads(text)
                for text in daemon.log_text().splitlines()
                if '"receipt_received"' in text
            ]
            assert (line["mo_id"], line["msisdn"], line["stat"]) == (mo_id, "0327xxx686", "DELIVRD")
            # An operator follows the request by its masked phone: one line
            # per step, each with the carrier, from the ack on with the MO id.
            lines = [
                json.loads(text)
                for text in daemon.log_text().splitlines()
                if '"0327xxx686"' in text
            ]
            assert [entry["event"] for entry in lines] == [
                "mo_received",
                "reset_decided",
                "mt_queued",
                "mt_accepted",
                "receipt_received",
            ]
            assert {entry["carrier"] for entry in lines} == {"sim"}
            assert [entry.get("mo_id") for entry in lines[1:]] == [mo_id] * 4
            bound = [json.loads(t) for t in daemon.log_text().splitlines() if '"link_bound"' in t]
            assert [entry["carrier"] for entry in bound] == ["sim"]
            daemon.signal(signal.SIGTERM)
            assert await daemon.wait_exit() == 0
        # Neither the log nor any byte of the database holds the password.
        assert password not in daemon.log_text()
        raw = b"".join(p.read_bytes() for p in tmp_path.glob("smscd.db*"))
        assert f"Mat khau: {password}".encode() not in raw
        assert "secret" not in daemon.log_text()  # the bind password
        assert "0327000686" not in daemon.log_text()
        assert "0327xxx686" in daemon.log_text()


async def test_a_receipt_before_its_submit_sm_resp_is_matched_and_logged_with_its_request(
    tmp_path: Path,
) -> None:
    """The SMSC sends the receipt before the submit_sm_resp: it is stored
    unmatched, settled when the acceptance is recorded, and a second line
    names its request, so grep by MO id or masked phone still finds it."""
    with trio.fail_after(60):
        config = SimulatorConfig(receipt_delay=0.05)
        async with open_daemon(tmp_path, sim_config=config, charging="mt") as daemon:
            daemon.sim.delay_responses(0.4)
            await reply_for(daemon, "84327000686", "BH MK 0123456789")
            with trio.fail_after(10):
                while daemon.query("SELECT state FROM outbound_messages") != [("delivered",)]:
                    await trio.sleep(0.05)
            assert daemon.query("SELECT state FROM charges") == [("final",)]
            await daemon.wait_log('"receipt_matched"')
            (mo_id,) = daemon.query("SELECT id FROM inbound_messages")[0]
            lines = [json.loads(text) for text in daemon.log_text().splitlines()]
            (received,) = [line for line in lines if line["event"] == "receipt_received"]
            assert "mo_id" not in received  # its reply was not accepted yet
            (matched,) = [line for line in lines if line["event"] == "receipt_matched"]
            assert (matched["mo_id"], matched["msisdn"], matched["stat"]) == (
                mo_id,
                "0327xxx686",
                "DELIVRD",
            )


async def test_a_final_failure_receipt_voids_the_mt_charge(tmp_path: Path) -> None:
    """MT charging: a receipt with a final failure (UNDELIV) leaves the reply
    UNDELIVERABLE and voids its charge; nothing is sent again."""
    with trio.fail_after(60):
        config = SimulatorConfig(receipt_delay=0.05, receipt_stat="UNDELIV")
        async with open_daemon(tmp_path, sim_config=config, charging="mt") as daemon:
            assert OK.match(await reply_for(daemon, "84327000686", "BH MK 0123456789"))
            with trio.fail_after(10):
                while daemon.query("SELECT state FROM outbound_messages") != [("undeliverable",)]:
                    await trio.sleep(0.05)
            assert daemon.query("SELECT state, amount_vnd FROM charges") == [("void", 1000)]
            await daemon.wait_log('"receipt_received"')
            (line,) = [
                json.loads(text)
                for text in daemon.log_text().splitlines()
                if '"receipt_received"' in text
            ]
            assert (line["stat"], line["msisdn"]) == ("UNDELIV", "0327xxx686")
            await trio.sleep(RETRY_BASE_S * 1.5)
            assert len(daemon.sim.submitted) == 1


async def test_a_reply_the_smsc_refuses_for_good_is_failed_with_its_status(
    tmp_path: Path,
) -> None:
    """A permanent submit_sm_resp error (here ESME_RINVDSTADR): the reply is
    FAILED with that status, its password masked, never sent again, and in
    MT charging its charge is voided."""
    with trio.fail_after(60):
        async with open_daemon(tmp_path, charging="mt") as daemon:
            daemon.sim.throttle_next(1, status=CommandStatus.ESME_RINVDSTADR)
            assert (
                await daemon.sim.inject_mo(source_addr="84327000686", text="BH MK 0123456789") == 0
            )
            with trio.fail_after(10):
                while daemon.query("SELECT state FROM outbound_messages") != [("failed",)]:
                    await trio.sleep(0.05)
            ((status, body),) = daemon.query("SELECT last_status, body FROM outbound_messages")
            assert status == CommandStatus.ESME_RINVDSTADR
            assert isinstance(body, str)
            assert body.endswith("/Mat khau: ******")
            assert daemon.query("SELECT state FROM charges") == [("void",)]
            await daemon.wait_log('"mt_rejected"')
            (line,) = [
                json.loads(text)
                for text in daemon.log_text().splitlines()
                if '"mt_rejected"' in text
            ]
            assert line["status"] == "0x0000000b"
            # Longer than the first retry's backoff: nothing was submitted again.
            await trio.sleep(RETRY_BASE_S * 1.5)
            assert daemon.sim.submitted == []
            assert daemon.query("SELECT state, attempts FROM outbound_messages") == [("failed", 1)]


async def test_throttling_and_a_dropped_link_lose_nothing(tmp_path: Path) -> None:
    with trio.fail_after(90):
        async with open_daemon(tmp_path) as daemon:
            sim = daemon.sim
            sim.throttle_next(5)
            senders = [f"8490300{i:04d}" for i in range(40)]
            for i, sender in enumerate(senders):
                assert await sim.inject_mo(source_addr=sender, text=f"BH MK 55{i:08d}") == 0
                if i == 20:
                    await sim.drop_connections()
                    await sim.wait_bound(1)
            with trio.fail_after(60):
                while len({s.event.destination_addr for s in sim.submitted}) < len(senders):
                    await trio.sleep(0.05)
            # Every MO answered; at most the submits in flight when the link
            # dropped may have gone twice (the SMSC accepted, the answer was lost).
            per_dest = Counter(s.event.destination_addr for s in sim.submitted)
            assert set(per_dest) == set(senders)
            rows = daemon.query("SELECT state, COUNT(*) FROM outbound_messages GROUP BY state")
            assert sum(n for _, n in rows) == len(senders)  # type: ignore[misc]
            assert daemon.query("SELECT COUNT(*) FROM charges") == [(len(senders),)]


async def test_kill_9_after_ack_then_restart_answers_every_mo_once(tmp_path: Path) -> None:
    with trio.fail_after(90):
        config = SimulatorConfig(receipt_delay=0.05)
        async with open_daemon(tmp_path, sim_config=config) as daemon:
            sim = daemon.sim
            # The SMSC stops answering submits: replies pile up unsent.
            sim.no_response_on_submit(True)
            senders = [f"8490300{i:04d}" for i in range(30)]
            for i, sender in enumerate(senders):
                assert await sim.inject_mo(source_addr=sender, text=f"BH MK 55{i:08d}") == 0
            # Kill it with a full window of submits in flight (their replies leased).
            with trio.fail_after(10):
                while sim.max_outstanding_seen < 10:
                    await trio.sleep(0.01)
            daemon.signal(signal.SIGKILL)
            await daemon.wait_exit()
            sim.no_response_on_submit(False)
            await sim.drop_connections()
            before = {s.event.destination_addr for s in sim.submitted}
            assert not before  # nothing was accepted before the kill
            leased = daemon.query(
                "SELECT COUNT(*) FROM outbound_messages WHERE lease_until IS NOT NULL"
            )
            assert leased[0][0] > 0  # type: ignore[operator]

            async with trio.open_nursery() as nursery:
                again = await start_daemon(
                    nursery,
                    tmp_path,
                    daemon.config,
                    sim,
                    daemon.metrics_port,
                    log_name="daemon2.log",
                )
                # Well inside one lease (60 s): the dead daemon's leases are freed.
                with trio.fail_after(20):
                    while len({s.event.destination_addr for s in sim.submitted}) < len(senders):
                        await trio.sleep(0.05)
                assert '"abandoned_claims_released"' in again.log_text()
                again.signal(signal.SIGTERM)
                assert await again.wait_exit() == 0
            per_dest = Counter(s.event.destination_addr for s in sim.submitted)
            assert per_dest == dict.fromkeys(senders, 1)
            assert daemon.query("SELECT COUNT(*) FROM charges") == [(30,)]
            # Every changed password has its accepted reply.
            changed = daemon.query("SELECT COUNT(*) FROM accounts WHERE password_hash IS NOT NULL")
            accepted = daemon.query(
                "SELECT COUNT(*) FROM outbound_messages WHERE state IN ('accepted','delivered')"
            )
            assert changed == accepted == [(30,)]


async def test_sigterm_unbinds_and_sd_notify_is_spoken(tmp_path: Path) -> None:
    notify_path = tmp_path / "notify.sock"
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    await sock.bind(str(notify_path))
    env = {"NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": "400000"}
    messages: list[bytes] = []

    async def collect() -> None:
        while True:
            messages.append(await sock.recv(4096))

    with trio.fail_after(60), sock:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(collect)
            async with open_daemon(tmp_path, env=env) as daemon:
                await trio.sleep(0.5)
                unbinds = daemon.sim.unbinds_received
                with trio.fail_after(11):
                    daemon.signal(signal.SIGTERM)
                    assert await daemon.wait_exit() == 0
                assert daemon.sim.unbinds_received == unbinds + 1
            await trio.sleep(0.1)
            nursery.cancel_scope.cancel()
    text = b"\n".join(messages)
    assert b"READY=1" in text
    assert text.count(b"WATCHDOG=1") >= 2
    assert b"STOPPING=1" in text
    assert text.index(b"READY=1") < text.index(b"STOPPING=1")


async def test_metrics_health_and_sighup_reload(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with open_daemon(tmp_path) as daemon:
            assert await reply_for(daemon, "84911111114", "xin chao") == BAD_SYNTAX
            status, body = await http_get(daemon.metrics_port, "/healthz")
            assert status == 200 and body == b"ok\n"
            await trio.sleep(1.2)  # gauges refresh every second
            status, body = await http_get(daemon.metrics_port, "/metrics")
            assert status == 200
            assert b'smscd_mo_total{carrier="sim",outcome="bad_syntax"} 1.0' in body
            assert b'smscd_link_bound{carrier="sim"} 1.0' in body

            # A valid reload changes the texts without dropping the bind...
            text = daemon.config.read_text()
            daemon.config.write_text(
                text.replace(
                    "[templates]\n",
                    '[templates]\nbad_syntax = "Sai cu phap. Soan BH MK <ma so> gui 8079"\n',
                )
            )
            daemon.signal(signal.SIGHUP)
            await daemon.wait_log('"config_reloaded"')
            assert await reply_for(daemon, "84911111115", "xin chao") == (
                b"Sai cu phap. Soan BH MK <ma so> gui 8079"
            )
            # ...a bad one is refused and the running texts are kept.
            daemon.config.write_text(
                text.replace("[templates]\n", '[templates]\nbad_syntax = "{password}"\n')
            )
            daemon.signal(signal.SIGHUP)
            await daemon.wait_log('"config_reload_failed"')
            assert await reply_for(daemon, "84911111116", "xin chao") == (
                b"Sai cu phap. Soan BH MK <ma so> gui 8079"
            )

            await daemon.sim.drop_connections()
            daemon.sim.black_hole(True)
            with trio.fail_after(10):
                while (await http_get(daemon.metrics_port, "/healthz"))[0] != 503:
                    await trio.sleep(0.1)


async def test_duplicate_mo_is_answered_once(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with open_daemon(tmp_path) as daemon:
            sim = daemon.sim
            assert await sim.inject_mo(source_addr="84911111111", text="BH MK 0123456789") == 0
            assert await sim.inject_mo(source_addr="84911111111", text="BH MK 0123456789") == 0
            await daemon.wait_log('"mo_duplicate"')
            await trio.sleep(0.5)
            assert [s.event.destination_addr for s in sim.submitted] == ["84911111111"]
            assert daemon.query("SELECT COUNT(*) FROM charges") == [(1,)]
            assert daemon.query(
                "SELECT state, COUNT(*) FROM inbound_messages GROUP BY state ORDER BY state"
            ) == [("decided", 1), ("duplicate", 1)]


async def test_unmigrated_database_is_refused(tmp_path: Path) -> None:
    from tests.integration.daemon_harness import SMSCD, write_config

    config = write_config(tmp_path, smsc_port=9, metrics_port=9)
    result = await trio.run_process(
        [*SMSCD, "-c", str(config), "run"], capture_stdout=True, capture_stderr=True, check=False
    )
    assert result.returncode == 2
    assert b"smscd db upgrade" in result.stdout + result.stderr
    assert (
        not (tmp_path / "smscd.db").exists()
        or sqlite3.connect(tmp_path / "smscd.db")
        .execute("SELECT name FROM sqlite_master WHERE name = 'accounts'")
        .fetchall()
        == []
    )


async def test_a_second_daemon_on_one_sqlite_store_is_refused(tmp_path: Path) -> None:
    from tests.integration.daemon_harness import SMSCD

    with trio.fail_after(60):
        async with open_daemon(tmp_path) as daemon:
            result = await trio.run_process(
                [*SMSCD, "-c", str(daemon.config), "run"],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
            assert result.returncode == 2
            assert b"another smscd daemon is using" in result.stdout
            # The first one is unharmed.
            assert await reply_for(daemon, "84911111114", "xin chao") == BAD_SYNTAX


async def test_sigterm_under_load_records_every_reply_the_smsc_accepted(tmp_path: Path) -> None:
    """What the SMSC accepted before a SIGTERM is ACCEPTED in the store after
    it, so a restart sends none of those replies again."""
    with trio.fail_after(60):
        async with open_daemon(tmp_path, window=10) as daemon:
            sim = daemon.sim
            async with trio.open_nursery() as nursery:
                start_help_mos(nursery, daemon, 60, until_a_stop=True)
                await sim.wait_submitted(20)
                # Submits still in flight when the links stop are accepted
                # during the stop: their verdicts come last.
                sim.delay_responses(0.3)
                await trio.sleep(0.1)
                daemon.signal(signal.SIGTERM)
                nursery.cancel_scope.cancel()
            assert await daemon.wait_exit() == 0
            submitted = {s.event.destination_addr for s in sim.submitted}
            recorded = {
                row[0]
                for row in daemon.query(
                    "SELECT destination_addr FROM outbound_messages"
                    " WHERE state IN ('accepted', 'delivered')"
                )
            }
            assert len(submitted) >= 20
            assert recorded == submitted


async def test_a_second_signal_during_the_stop_does_not_cut_it_short(tmp_path: Path) -> None:
    """Ctrl-C reaches a whole process group (``make run``: the demo, which
    then also sends SIGTERM, and the daemon), and an impatient operator
    signals twice: the stop that began goes on to its unbind and exit 0."""
    with trio.fail_after(60):
        async with open_daemon(tmp_path, window=10) as daemon:
            sim = daemon.sim
            async with trio.open_nursery() as nursery:
                start_help_mos(nursery, daemon, 30, until_a_stop=True)
                await sim.wait_submitted(10)
                sim.delay_responses(0.5)  # the stop waits for the submits in flight
                unbinds = sim.unbinds_received
                daemon.signal(signal.SIGINT)
                await daemon.wait_log('"shutdown_requested"')
                daemon.signal(signal.SIGTERM)
                daemon.signal(signal.SIGINT)
                nursery.cancel_scope.cancel()
            assert await daemon.wait_exit() == 0
            assert sim.unbinds_received == unbinds + 1
            log_text = daemon.log_text()
            assert log_text.count('"shutdown_requested"') == 1
            assert log_text.count('"shutdown_in_progress"') == 2
            assert '"daemon_stopped"' in log_text
            assert "Traceback" not in log_text


async def test_a_burst_from_the_registered_phone_resets_within_its_limit(tmp_path: Path) -> None:
    # Resets are decided at intake and hashed after it; eight requests of one
    # owner, in flight together (across intake batches and a reset still
    # hashing), must still meet a limit of 3 a day exactly.
    with trio.fail_after(60):
        async with open_daemon(tmp_path) as daemon:
            sim = daemon.sim
            async with trio.open_nursery() as nursery:
                for i in range(8):
                    # Different words after the code: not duplicates of each other.
                    text = f"BH MK 0123456789 cam on {'abcdefgh'[i]}"
                    nursery.start_soon(partial(sim.inject_mo, source_addr="84327000686", text=text))
            replies = await sim.wait_submitted(8)
            texts = Counter(r.text.split(".")[0] for r in replies)
            assert texts == {
                "Cap lai mat khau thanh cong": 3,
                "Ban da yeu cau cap lai mat khau qua so lan cho phep": 5,
            }, texts
            assert daemon.query(
                "SELECT outcome, COUNT(*) FROM inbound_messages GROUP BY outcome ORDER BY outcome"
            ) == [("rate_limited", 5), ("reset_ok", 3)]


async def test_a_metrics_listen_the_daemon_cannot_take_is_one_line_and_exit_2(
    tmp_path: Path,
) -> None:
    """A port another process holds (or a name that does not resolve) is the
    operator's to fix: one log line naming the listen address, exit 2, no
    traceback."""
    from tests.integration.daemon_harness import SMSCD, prepare_store, write_config

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path, smsc_port=9, metrics_port=port)
        await trio.to_thread.run_sync(prepare_store, tmp_path, config)
        with trio.fail_after(30):
            result = await trio.run_process(
                [*SMSCD, "-c", str(config), "run"],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
    output = (result.stdout + result.stderr).decode()
    assert result.returncode == 2, output
    assert "Traceback" not in output
    (line,) = [json.loads(x) for x in output.splitlines() if '"metrics_listen_failed"' in x]
    assert line["listen"] == f"127.0.0.1:{port}"


async def test_the_daemon_checkpoints_the_wal_itself_after_writes(tmp_path: Path) -> None:
    """The daemon's own pass (SQLite's auto-checkpoint is off in it) runs
    once it has written, and reports the WAL it found; 30 MOs stay far under
    the cap, so nothing was restarted under the write lock."""
    with trio.fail_after(60):
        async with open_daemon(tmp_path) as daemon:
            for n in range(30):
                assert await daemon.sim.inject_mo(source_addr=f"849111{n:05d}", text="help") == 0
            while len(daemon.sim.submitted) < 30:
                await trio.sleep(0.05)
            while True:
                _status, page = await http_get(daemon.metrics_port, "/metrics")
                if metric_value(page, "smscd_sqlite_wal_pages") > 0:
                    break
                await trio.sleep(0.1)
            assert metric_value(page, "smscd_sqlite_wal_restarts_total") == 0
