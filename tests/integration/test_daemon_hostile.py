"""Issue 12's acceptance, through ``smscd run``: each PDU that once crashed the
daemon (and a seeded batch of mutated ones) is refused with the right SMPP
status or contained; the daemon never exits, stays bound, answers the next
valid MO byte for byte, keeps its memory, and starts again without meeting
any of it."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

import pytest
import trio

from smscd.smpp import CommandStatus
from tests.fuzz.fuzz_daemon import PROBE_REPLY, PROBE_TEXT, fuzz_daemon, rss_mib
from tests.fuzz.mutate import HOSTILE_PDUS
from tests.integration.daemon_harness import open_daemon, start_daemon
from tests.integration.test_daemon import reply_for

if TYPE_CHECKING:
    from pathlib import Path

    from tests.integration.daemon_harness import DaemonProcess

pytestmark = pytest.mark.slow

_OK = CommandStatus.ESME_ROK
#: What the daemon answers each hostile PDU (None: a response, never answered).
EXPECTED = {
    "deliver_sm_source_addr_25_octets": CommandStatus.ESME_RINVSRCADR,
    "deliver_sm_source_addr_non_ascii": CommandStatus.ESME_RINVSRCADR,
    "deliver_sm_source_addr_empty": CommandStatus.ESME_RINVSRCADR,
    "deliver_sm_destination_addr_21_octets": CommandStatus.ESME_RINVDSTADR,
    # Receipts: acknowledged (their ids kept escaped and capped, or the receipt
    # logged as unparsed); never a reason for the SMSC to send them again.
    "receipt_text_id_5000_digits": CommandStatus.ESME_RINVMSGLEN,  # text over the cap
    "receipt_text_id_1800_digits": _OK,
    "receipt_tlv_id_5000_digits": _OK,
    "receipt_text_id_non_ascii": _OK,
    "receipt_stat_and_err_300_octets": _OK,
    "submit_sm_resp_id_5000_digits": None,
    "submit_sm_resp_id_non_ascii": None,
    "deliver_sm_message_payload_65535_octets": CommandStatus.ESME_RINVMSGLEN,
    "deliver_sm_message_payload_2001_octets": CommandStatus.ESME_RINVMSGLEN,
    # Texts that do not decode cleanly: stored escaped, answered with help.
    "deliver_sm_ucs2_lone_surrogate_and_nul": _OK,
    "deliver_sm_latin1_nul": _OK,
    "deliver_sm_service_type_and_times_non_ascii": _OK,
}


async def test_each_hostile_pdu_is_refused_or_contained_and_the_daemon_goes_on(
    tmp_path: Path,
) -> None:
    assert set(EXPECTED) == {name for name, _raw in HOSTILE_PDUS}
    with trio.fail_after(120):
        async with open_daemon(tmp_path) as daemon:
            links_bound = daemon.log_text().count('"link_bound"')
            seen: dict[str, int | None] = {}
            for i, (name, raw) in enumerate(HOSTILE_PDUS):
                expected = EXPECTED[name]
                status = await daemon.sim.send_raw(raw, wait=2.0 if expected is not None else 0.3)
                seen[name] = status
                # Alive, still bound (no rebind), and the next MO is answered exactly.
                assert daemon.process.returncode is None, name
                assert await reply_for(daemon, f"849700000{i:02d}", PROBE_TEXT) == PROBE_REPLY
            assert seen == EXPECTED
            assert daemon.log_text().count('"link_bound"') == links_bound
            assert '"framing_error_received"' not in daemon.log_text()
            # Nothing stored holds what no database column or reply can take.
            stored = daemon.query("SELECT source_addr, msisdn FROM inbound_messages")
            for source_addr, msisdn in stored:
                assert isinstance(source_addr, str) and source_addr.isascii()
                assert len(source_addr) <= 20 and isinstance(msisdn, str) and len(msisdn) <= 21
            ids = daemon.query("SELECT message_id FROM receipts")
            assert ids and all(isinstance(i, str) and len(i) <= 64 for (i,) in ids)
            # A restart meets none of it again.
            again = await restart_and_probe(daemon, tmp_path)
            assert '"error"' not in again.log_text()


async def restart_and_probe(daemon: DaemonProcess, tmp_path: Path) -> DaemonProcess:
    """Stop ``daemon`` cleanly, start it again on the same store, check that it
    answers a valid MO exactly, stop it cleanly; return the second process (its
    log stays readable)."""
    daemon.signal(signal.SIGTERM)
    assert await daemon.wait_exit() == 0
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
        assert await reply_for(again, "84970009999", PROBE_TEXT) == PROBE_REPLY
        again.signal(signal.SIGTERM)
        assert await again.wait_exit() == 0
    return again


async def test_a_seeded_batch_of_mutated_pdus_leaves_the_daemon_serving(tmp_path: Path) -> None:
    """The daemon fuzzer (``make fuzz``), bounded: 200 PDUs, probes every 40."""
    with trio.fail_after(150):
        async with open_daemon(tmp_path) as daemon:
            before = rss_mib(daemon.process.pid)
            report = await fuzz_daemon(
                daemon, cases=200, seconds=60, seed=20261202, check_every=40, max_rss_mib=400
            )
            assert report.failures == [], "\n".join(report.lines())
            assert report.probes >= 6
            assert report.sent >= 100, "\n".join(report.lines())
            # Memory: what the mutations cost stays small beside the daemon's own.
            assert rss_mib(daemon.process.pid) < before + 64
