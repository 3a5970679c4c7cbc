"""Issue 12 on PostgreSQL, through ``smscd run``.

The same behaviour as on SQLite (``test_daemon_hostile``,
``test_daemon_containment``), with the daemon's store in a PostgreSQL schema
of its own:

* every hostile PDU gets the status it gets on SQLite, the daemon stays up
  and bound and answers the next valid MO exactly; PostgreSQL enforces the
  VARCHAR lengths and refuses a NUL in text, which SQLite does not, so a
  value the edge failed to cap or clean would show here as a refused PDU;
* a foreign number gets the mismatch text, no reset, one rate-limit key;
* an MO that another process died holding (its claim older than
  ``CLAIM_STALE_S``) is quarantined by the running daemon's recovery (stage
  ``recovery``), while one whose holder is alive is left to it; the operator
  lists and retries it, and it is answered;
* a reply the SMSC never accepts expires, its password masked, never sent;
* a seeded batch of mutated PDUs (the daemon fuzzer, bounded) leaves the
  daemon serving, with no error logged.

Runs when SMSCD_TEST_PG_URL is set; fails, not skips, if it is set and the
server is unreachable.
"""

from __future__ import annotations

import json
import signal
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
import trio
from sqlalchemy.pool import NullPool

from smscd.service._state import CLAIM_STALE_S
from smscd.simulator import SimulatorConfig
from tests.fuzz.fuzz_daemon import PROBE_REPLY, PROBE_TEXT, fuzz_daemon
from tests.fuzz.mutate import HOSTILE_PDUS
from tests.integration import test_daemon_postgres
from tests.integration.daemon_harness import open_daemon
from tests.integration.test_daemon import BAD_SYNTAX, MISMATCH, reply_for
from tests.integration.test_daemon_containment import (
    _cli,
    _event,
    _metrics,
    _sent_to,
    check_a_foreign_number_gets_no_reset,
)
from tests.integration.test_daemon_hostile import EXPECTED, restart_and_probe

if TYPE_CHECKING:
    from pathlib import Path

    from tests.integration.daemon_harness import DaemonProcess

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

#: The fixture: a fresh schema per test on SMSCD_TEST_PG_URL (skips when unset).
pg_url = test_daemon_postgres.pg_url

#: The hostile deliver_sm's sender (the builder's default source_addr).
HOSTILE_SENDER = "84912345678"
#: The hostile MOs acknowledged 0 (stored, answered with help or mismatch).
STORED_MOS = [n for n, status in EXPECTED.items() if n.startswith("deliver_sm") and status == 0]
#: The hostile receipts acknowledged 0 (stored, matching no reply).
STORED_RECEIPTS = [n for n, status in EXPECTED.items() if n.startswith("receipt") and status == 0]


def _execute(url: str, sql: str, **params: object) -> list[tuple[object, ...]]:
    """Run one statement on the store in a transaction of its own."""
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            result = conn.execute(sa.text(sql), params)
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


def _recorded_ids(daemon: DaemonProcess) -> list[str]:
    """The SMSC message id recorded for each reply ("": not accepted yet)."""
    rows = daemon.query("SELECT smsc_message_id FROM outbound_messages")
    return [value if isinstance(value, str) else "" for (value,) in rows]


def _errors(daemon: DaemonProcess) -> list[dict[str, object]]:
    """The events the daemon logged at level error."""
    events = [json.loads(line) for line in daemon.log_text().splitlines() if line.startswith("{")]
    return [e for e in events if e.get("level") == "error"]


async def test_each_hostile_pdu_gets_its_sqlite_status_and_the_daemon_goes_on(
    tmp_path: Path, pg_url: str
) -> None:
    assert set(EXPECTED) == {name for name, _raw in HOSTILE_PDUS}
    assert len(STORED_MOS) == 3 and len(STORED_RECEIPTS) == 4
    with trio.fail_after(150):
        async with open_daemon(tmp_path, database_url=pg_url) as daemon:
            links_bound = daemon.log_text().count('"link_bound"')
            seen: dict[str, int | None] = {}
            for i, (name, raw) in enumerate(HOSTILE_PDUS):
                expected = EXPECTED[name]
                status = await daemon.sim.send_raw(raw, wait=2.0 if expected is not None else 0.3)
                seen[name] = status
                assert daemon.process.returncode is None, name
                assert await reply_for(daemon, f"849700000{i:02d}", PROBE_TEXT) == PROBE_REPLY, name
            assert seen == EXPECTED
            assert daemon.log_text().count('"link_bound"') == links_bound
            assert '"framing_error_received"' not in daemon.log_text()
            # Nothing was refused by the database, nothing set aside.
            assert _errors(daemon) == []
            assert daemon.query(
                "SELECT COUNT(*) FROM inbound_messages WHERE state <> ?", ("decided",)
            ) == [(0,)]

            # The MOs acknowledged (texts with a NUL or a lone surrogate) are
            # stored, decided and answered.
            hostile = daemon.query(
                "SELECT source_addr, msisdn, outcome FROM inbound_messages"
                " WHERE source_addr = ? ORDER BY id",
                (HOSTILE_SENDER,),
            )
            assert hostile == [
                (HOSTILE_SENDER, HOSTILE_SENDER, "bad_syntax"),
                (HOSTILE_SENDER, HOSTILE_SENDER, "bad_syntax"),
                (HOSTILE_SENDER, HOSTILE_SENDER, "mismatch"),
            ]
            replies = [s.event.short_message for s in _sent_to(daemon, HOSTILE_SENDER, 0)]
            assert sorted(replies) == sorted([BAD_SYNTAX, BAD_SYNTAX, MISMATCH])

            # The receipts acknowledged are stored (committed before their
            # acknowledgement), matching no reply once the probes' receipts
            # have found theirs; their ids are ASCII, capped at 64.
            with trio.fail_after(10):
                while True:
                    unmatched = daemon.query(
                        "SELECT message_id FROM receipts WHERE outbound_id IS NULL"
                    )
                    if len(unmatched) == len(STORED_RECEIPTS):
                        break
                    await trio.sleep(0.05)
            for (message_id,) in unmatched:
                assert isinstance(message_id, str) and 0 < len(message_id) <= 64
                assert message_id.isascii(), message_id
            # Each reply's recorded id is the one the SMSC gave it: the
            # hostile submit_sm_resp ids were recorded for no reply.
            given = sorted(s.message_id for s in daemon.sim.submitted)
            with trio.fail_after(10):
                while sorted(_recorded_ids(daemon)) != given:
                    await trio.sleep(0.05)

            # A restart meets none of it again.
            again = await restart_and_probe(daemon, tmp_path)
            assert _errors(again) == []


async def test_a_foreign_number_gets_the_mismatch_text_and_no_reset(
    tmp_path: Path, pg_url: str
) -> None:
    """0376312345 is registered; +376 312 345 (Andorra), in any form and TON,
    gets the mismatch text and the account is unchanged; every form counts
    under one key; the registered phone itself still resets."""
    with trio.fail_after(60):
        async with open_daemon(tmp_path, database_url=pg_url) as daemon:
            await check_a_foreign_number_gets_no_reset(daemon, tmp_path)


async def test_an_mo_a_dead_process_held_is_quarantined_by_recovery_and_the_operator_acts(
    tmp_path: Path, pg_url: str
) -> None:
    """Two daemons share the store: an MO held by a process that died (one
    claim counted, its claim older than CLAIM_STALE_S) is quarantined by the
    running daemon's recovery pass; an MO held by a live process (a fresh
    claim) is left to it, even by a clean stop."""
    with trio.fail_after(90):
        async with open_daemon(tmp_path, database_url=pg_url) as daemon:
            now = datetime.now(UTC)
            insert = (
                "INSERT INTO inbound_messages (carrier, source_addr, source_addr_ton,"
                " source_addr_npi, msisdn, destination_addr, text, received_at, state,"
                " claimed_by, claimed_at, claims)"
                " VALUES ('sim', :addr, 1, 1, :addr, '8079', 'xin chao', :at, 'received',"
                " :token, :at, :claims) RETURNING id"
            )
            ((dead_id,),) = _execute(
                pg_url,
                insert,
                addr="84327000686",
                at=now - timedelta(seconds=2 * CLAIM_STALE_S),
                token="deadbeefdeadbeef",
                claims=1,
            )
            ((live_id,),) = _execute(
                pg_url, insert, addr="84911111115", at=now, token="feedfacefeedface", claims=0
            )
            await daemon.wait_log('"mo_quarantined"', timeout=15)
            event = _event(daemon, "mo_quarantined")
            assert (event["mo_id"], event["stage"]) == (dead_id, "recovery")
            assert event["msisdn"] == "0327xxx686"
            state = "SELECT state, claimed_by, claims FROM inbound_messages WHERE id = ?"
            assert daemon.query(state, (dead_id,)) == [("quarantined", None, 2)]
            assert daemon.query(state, (live_id,)) == [("received", "feedfacefeedface", 0)]
            _status, metrics = await _metrics(daemon)
            assert b'smscd_poison_total{stage="recovery"} 1.0' in metrics
            # The daemon goes on answering.
            assert await reply_for(daemon, "84911111114", "xin chao") == BAD_SYNTAX

            code, out, err = await trio.to_thread.run_sync(_cli, daemon, "quarantine", "list")
            assert code == 1, err
            assert str(dead_id) in out and "0327xxx686" in out and "84327000686" not in out
            code, out, _ = await trio.to_thread.run_sync(
                _cli, daemon, "quarantine", "list", "--format", "json"
            )
            (listed,) = json.loads(out)
            assert (listed["kind"], listed["id"], listed["stage"]) == ("mo", dead_id, "recovery")

            # Retry: the running daemon answers it at its next recovery pass.
            before = len(daemon.sim.submitted)
            code, out, _ = await trio.to_thread.run_sync(
                _cli, daemon, "quarantine", "retry", "mo", str(dead_id)
            )
            assert (code, out) == (0, f"mo {dead_id}: put back\n")
            with trio.fail_after(15):
                while not (replies := _sent_to(daemon, "84327000686", before)):
                    await trio.sleep(0.05)
            assert [r.event.short_message for r in replies] == [BAD_SYNTAX]
            assert daemon.query(
                "SELECT state, outcome FROM inbound_messages WHERE id = ?", (dead_id,)
            ) == [("decided", "bad_syntax")]
            code, out, _ = await trio.to_thread.run_sync(_cli, daemon, "quarantine", "list")
            assert code == 0, out

            daemon.signal(signal.SIGTERM)
            assert await daemon.wait_exit() == 0
            assert daemon.query(state, (live_id,)) == [("received", "feedfacefeedface", 0)]
            assert _sent_to(daemon, "84911111115", 0) == []


async def test_a_reply_never_accepted_expires_masked_and_is_never_sent(
    tmp_path: Path, pg_url: str
) -> None:
    with trio.fail_after(60):
        async with open_daemon(
            tmp_path,
            sim_config=SimulatorConfig(receipt_delay=0.05),
            extra="\n[outbox]\nreply_expiry = 1\nmax_attempts = 10\n",
            database_url=pg_url,
        ) as daemon:
            daemon.sim.no_response_on_submit(True)
            assert await daemon.sim.inject_mo(source_addr="84327000686") == 0
            await daemon.wait_log('"mt_expired"', timeout=20)
            event = _event(daemon, "mt_expired")
            assert event["msisdn"] == "0327xxx686"
            ((state, body),) = daemon.query("SELECT state, body FROM outbound_messages")
            assert state == "expired"
            assert isinstance(body, str) and body.endswith("Mat khau: ******")
            assert body.startswith("Cap lai mat khau thanh cong. Tai khoan: 0123456789/")
            # The SMSC answers again: the stale password is not sent.
            daemon.sim.no_response_on_submit(False)
            swallowed = len(daemon.sim.submitted)
            await trio.sleep(3)
            assert _sent_to(daemon, "84327000686", swallowed) == []
            _status, metrics = await _metrics(daemon)
            assert b'smscd_mt_total{carrier="sim",state="expired"} 1.0' in metrics


async def test_a_seeded_batch_of_mutated_pdus_leaves_the_daemon_serving(
    tmp_path: Path, pg_url: str
) -> None:
    """The daemon fuzzer, bounded (200 PDUs, probes every 40): mutated field
    values reach a store that enforces its column sizes."""
    with trio.fail_after(150):
        async with open_daemon(tmp_path, database_url=pg_url) as daemon:
            report = await fuzz_daemon(
                daemon, cases=200, seconds=60, seed=20261202, check_every=40, max_rss_mib=400
            )
            assert report.failures == [], "\n".join(report.lines())
            assert report.probes >= 6
            assert report.sent >= 100, "\n".join(report.lines())
            assert _errors(daemon) == [], _errors(daemon)
