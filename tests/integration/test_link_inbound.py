"""Inbound MOs and receipts: acked only by the caller, timed out to ESME_RX_T_APPN,
multi-part held until the whole message is acked, garbage receipts never lost, and
flow control: a burst past the window is taken whole, at max_unacked the reader
pauses (TCP pushes back) and resumes as answers go out."""

from __future__ import annotations

import functools
import struct
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import attrs
import pytest
import trio
from structlog.testing import capture_logs

from smscd.link import Accepted, InboundMo, InboundReceipt, OutboundSm, ack_all
from smscd.simulator import SimulatorConfig, open_simulator
from smscd.smpp import (
    Bind,
    CommandStatus,
    Connection,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    Event,
    NeedData,
    Role,
    Unbind,
    encode,
    response_for,
)
from tests.integration.conftest import wait_until

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from smscd.link import Link
    from tests.integration.conftest import MakeLinkConfig, OpenLink

MSISDN = "84327123686"
MASKED = "0327xxx686"


async def _receive_mo(link: Link) -> InboundMo:
    item = await link.inbound().receive()
    assert isinstance(item, InboundMo)
    return item


async def test_mo_answered_only_when_acked(
    link_config: MakeLinkConfig, open_link: OpenLink
) -> None:
    statuses: list[int] = []
    with trio.fail_after(5), capture_logs() as logs:
        async with open_simulator() as sim, open_link(link_config(sim)) as link:
            await link.wait_bound()

            async def inject() -> None:
                statuses.append(await sim.inject_mo(MSISDN, "BH MK 0123456789"))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(inject)
                mo = await _receive_mo(link)
                assert (mo.carrier, mo.source_addr, mo.text) == (
                    "testnet",
                    MSISDN,
                    "BH MK 0123456789",
                )
                assert (mo.source_addr_ton, mo.destination_addr, mo.parts) == (1, "8079", 1)
                await trio.sleep(0.2)
                assert sim.deliver_responses == []  # nothing before the caller says so
                await mo.ack()
                await mo.ack(CommandStatus.ESME_RX_R_APPN)  # idempotent: first answer wins
            assert statuses == [0]
            assert sim.deliver_responses == [0]
            assert link.statistics().mo_received == 1
    [received] = [e for e in logs if e["event"] == "mo_received"]
    assert received["msisdn"] == MASKED
    assert MSISDN not in repr(logs)
    assert "0327123686" not in repr(logs)


async def test_ack_status_chosen_by_caller(
    link_config: MakeLinkConfig, open_link: OpenLink
) -> None:
    with trio.fail_after(5):
        async with open_simulator() as sim, open_link(link_config(sim)) as link:
            await link.wait_bound()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(sim.inject_mo)
                mo = await _receive_mo(link)
                await mo.ack(CommandStatus.ESME_RX_T_APPN)
            assert sim.deliver_responses == [CommandStatus.ESME_RX_T_APPN]


@attrs.define
class _RecordingHandle:
    statuses: list[int] = attrs.Factory(list)

    async def ack(self, status: int) -> None:
        self.statuses.append(status)


async def test_ack_all_answers_every_item_once(
    link_config: MakeLinkConfig, open_link: OpenLink
) -> None:
    statuses: list[int] = []
    with trio.fail_after(5):
        async with open_simulator() as sim, open_link(link_config(sim)) as link:
            await link.wait_bound()
            async with trio.open_nursery() as nursery:
                for i in range(6):

                    async def inject(i: int = i) -> None:
                        statuses.append(await sim.inject_mo(f"8432712{i:04d}", f"BH MK {i}"))

                    nursery.start_soon(inject)
                items = [await _receive_mo(link) for _ in range(6)]
                other = _RecordingHandle()
                foreign = attrs.evolve(items[0], ack_handle=other)
                await trio.sleep(0.1)
                assert sim.deliver_responses == []
                await ack_all([*items[:4], foreign], CommandStatus.ESME_RX_T_APPN)
                await ack_all(items, 0)  # the first answer wins; the rest get 0
            assert other.statuses == [CommandStatus.ESME_RX_T_APPN]
            assert sorted(statuses) == [0, 0] + [CommandStatus.ESME_RX_T_APPN] * 4
            assert len(sim.deliver_responses) == 6


async def test_unacked_mo_times_out_to_rx_t_appn(
    link_config: MakeLinkConfig, open_link: OpenLink
) -> None:
    statuses: list[int] = []
    with trio.fail_after(5), capture_logs() as logs:
        async with open_simulator() as sim:
            config = link_config(sim, ack_timeout=0.3)
            async with open_link(config) as link:
                await link.wait_bound()
                start = trio.current_time()

                async def inject() -> None:
                    statuses.append(await sim.inject_mo(MSISDN))

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(inject)
                    mo = await _receive_mo(link)
                assert trio.current_time() - start >= 0.3
                assert statuses == [CommandStatus.ESME_RX_T_APPN]
                await mo.ack()  # too late: no second answer
                await trio.sleep(0.05)
                assert sim.deliver_responses == [CommandStatus.ESME_RX_T_APPN]
    events = [e["event"] for e in logs]
    assert "deliver_sm_ack_timed_out" in events
    assert "deliver_sm_ack_late" in events


async def test_multipart_from_a_one_at_a_time_smsc(
    link_config: MakeLinkConfig, open_link: OpenLink
) -> None:
    # The simulator waits for each part's answer before sending the next, so the
    # earlier parts can only be answered early (the documented trade-off).
    text = "BH MK 0123456789 " * 12
    statuses: list[int] = []
    with trio.fail_after(5), capture_logs() as logs:
        async with open_simulator() as sim:
            async with open_link(link_config(sim, ack_timeout=0.2)) as link:
                await link.wait_bound()

                async def inject() -> None:
                    statuses.append(await sim.inject_mo(MSISDN, text, parts=3))

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(inject)
                    mo = await _receive_mo(link)
                    assert (mo.text, mo.parts) == (text, 3)
                    await mo.ack()
            assert statuses == [0]
            assert sim.deliver_responses == [0, 0, 0]
    assert sum(e["event"] == "mo_part_answered_incomplete" for e in logs) == 2


# --- a scripted SMSC for what the simulator does not do --------------------------


class ScriptedSmsc:
    """Accepts any bind, answers enquire_link and unbind, and sends the deliver_sm
    the test asks for -- several at once if it likes."""

    def __init__(self) -> None:
        self.port = 0
        self.conn: Connection | None = None
        self.stream: trio.SocketStream | None = None
        self.bound = trio.Event()
        #: deliver_sm_resp received, by sequence.
        self.responses: dict[int, int] = {}
        self.changed = trio.Event()

    async def serve(self, stream: trio.SocketStream) -> None:
        conn = Connection(Role.SMSC)
        self.conn, self.stream = conn, stream
        async with stream:
            while data := await stream.receive_some(65536):
                conn.receive_data(data)
                while not isinstance(event := conn.next_event(), NeedData):
                    await self._handle(conn, stream, event)

    async def _handle(self, conn: Connection, stream: trio.SocketStream, event: Event) -> None:
        match event:
            case Bind():
                await stream.send_all(conn.send(response_for(event, system_id="scripted")))
                self.bound.set()
            case EnquireLink() | Unbind():
                await stream.send_all(conn.send(response_for(event)))
            case DeliverSmResp():
                self.responses[event.sequence] = event.command_status
                self.changed.set()
                self.changed = trio.Event()
            case _:
                pass

    async def deliver(self, **fields: object) -> int:
        assert self.conn is not None
        assert self.stream is not None
        sequence = self.conn.next_sequence()
        event = DeliverSm(sequence=sequence, **fields)  # type: ignore[arg-type]
        await self.stream.send_all(self.conn.send(event, now=trio.current_time()))
        return sequence

    async def wait_responses(self, n: int) -> dict[int, int]:
        while len(self.responses) < n:
            await self.changed.wait()
        return self.responses


@asynccontextmanager
async def open_scripted_smsc() -> AsyncIterator[ScriptedSmsc]:
    smsc = ScriptedSmsc()
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            functools.partial(trio.serve_tcp, smsc.serve, 0, host="127.0.0.1")
        )
        smsc.port = listeners[0].socket.getsockname()[1]
        yield smsc
        nursery.cancel_scope.cancel()


def _part(index: int, total: int, text: bytes, ref: int = 7) -> dict[str, object]:
    return {
        "source_addr": MSISDN,
        "source_addr_ton": 1,
        "destination_addr": "8079",
        "esm_class": 0x40,
        "short_message": bytes([5, 0, 3, ref, total, index]) + text,
    }


@pytest.mark.parametrize("status", [0, CommandStatus.ESME_RX_T_APPN])
async def test_multipart_parts_held_until_the_message_is_acked(
    link_config: MakeLinkConfig, open_link: OpenLink, status: int
) -> None:
    with trio.fail_after(5):
        async with open_scripted_smsc() as smsc, open_link(link_config(smsc.port)) as link:
            await link.wait_bound()
            # Parts out of order, all in flight at once.
            sequences = [
                await smsc.deliver(**_part(2, 3, b" MK ")),
                await smsc.deliver(**_part(1, 3, b"BH")),
                await smsc.deliver(**_part(3, 3, b"0123456789")),
            ]
            mo = await _receive_mo(link)
            assert (mo.text, mo.parts, mo.source_addr) == ("BH MK 0123456789", 3, MSISDN)
            await trio.sleep(0.2)
            assert smsc.responses == {}
            await mo.ack(status)
            responses = await smsc.wait_responses(3)
    assert responses == dict.fromkeys(sequences, status)


async def test_unparsable_receipt_is_acked_and_logged(
    link_config: MakeLinkConfig, open_link: OpenLink
) -> None:
    with trio.fail_after(5), capture_logs() as logs:
        async with open_scripted_smsc() as smsc, open_link(link_config(smsc.port)) as link:
            await link.wait_bound()
            sequence = await smsc.deliver(
                source_addr=MSISDN, esm_class=0x04, short_message=b"no receipt here"
            )
            assert await smsc.wait_responses(1) == {sequence: 0}
            with pytest.raises(trio.WouldBlock):
                link.inbound().receive_nowait()
            assert link.statistics().bound
    [unparsed] = [e for e in logs if e["event"] == "receipt_unparsed"]
    assert (unparsed["sequence"], unparsed["msisdn"]) == (sequence, MASKED)


@pytest.mark.parametrize(
    ("submit_ids", "receipt_ids", "tlvs"),
    [("hex", "dec", True), ("dec", "hex", True), ("hex", "dec", False)],
)
async def test_receipts_match_the_submit_id(
    link_config: MakeLinkConfig,
    open_link: OpenLink,
    submit_ids: str,
    receipt_ids: str,
    tlvs: bool,
) -> None:
    sim_config = SimulatorConfig(
        submit_id_format=submit_ids,
        receipt_id_format=receipt_ids,
        receipt_tlvs=tlvs,
        receipt_delay=0.05,
    )
    with trio.fail_after(5):
        async with open_simulator(sim_config) as sim, open_link(link_config(sim)) as link:
            await link.wait_bound()
            result = await link.submit(
                OutboundSm(source_addr="8079", destination_addr=MSISDN, text="Cap lai mat khau")
            )
            assert isinstance(result, Accepted)
            item = await link.inbound().receive()
            assert isinstance(item, InboundReceipt)
            assert item.id_keys & result.id_keys
            assert (item.receipt.stat, item.receipt.final) == ("DELIVRD", True)
            assert (item.source_addr, item.destination_addr) == (MSISDN, "8079")
            await item.ack()
            await wait_until(lambda: sim.deliver_responses == [0])
            assert link.statistics().receipts_received == 1


# --- flow control: bursts past the window, max_unacked ----------------------------


async def _receive_n(link: Link, n: int) -> list[InboundMo]:
    return [await _receive_mo(link) for _ in range(n)]


def _nothing_more(link: Link) -> bool:
    try:
        link.inbound().receive_nowait()
    except trio.WouldBlock:
        return True
    return False


async def test_burst_past_the_window_is_delivered_whole_and_acked(
    link_config: MakeLinkConfig, open_link: OpenLink
) -> None:
    with trio.fail_after(10), capture_logs() as logs:
        async with open_simulator() as sim, open_link(link_config(sim, window=2)) as link:
            await link.wait_bound()
            burst = await sim.burst(60, source="84903{i:06d}", text="BH MK 55{i:08d}")
            items = await _receive_n(link, 60)
            assert [(mo.source_addr, mo.text) for mo in items] == [
                (f"84903{i:06d}", f"BH MK 55{i:08d}") for i in range(60)
            ]
            assert link.statistics().inbound_held == 60
            assert burst.responses == []  # nothing answered before the caller says so
            await ack_all(items, 0)
            responses = await burst.wait_answered()
            assert sorted((r.index, r.status) for r in responses) == [(i, 0) for i in range(60)]
            stats = link.statistics()
            assert (stats.inbound_held, stats.inbound_paused, stats.mo_received) == (0, 0, 60)
    assert not any(e["event"] == "inbound_paused" for e in logs)


async def test_reader_pauses_at_max_unacked_and_resumes_on_acks(
    link_config: MakeLinkConfig, open_link: OpenLink
) -> None:
    with trio.fail_after(10), capture_logs() as logs:
        async with open_simulator() as sim:
            config = link_config(sim, max_unacked=5, ack_timeout=30.0)
            async with open_link(config) as link:
                await link.wait_bound()
                burst = await sim.burst(12, source="84903{i:06d}")
                first = await _receive_n(link, 5)
                await wait_until(lambda: link.statistics().inbound_paused == 1)
                # Paused: the reader reads nothing, not even an enquire_link.
                assert not await sim.send_enquire_link(answer_within=0.2)
                assert _nothing_more(link)
                assert link.statistics().inbound_held == 5
                assert burst.responses == []
                await ack_all(first)
                second = await _receive_n(link, 5)
                await wait_until(lambda: link.statistics().inbound_paused == 2)
                assert _nothing_more(link)
                await ack_all(second)
                third = await _receive_n(link, 2)
                await ack_all(third)
                responses = await burst.wait_answered()
                assert sorted((r.index, r.status) for r in responses) == [(i, 0) for i in range(12)]
                assert [mo.source_addr for mo in first + second + third] == [
                    f"84903{i:06d}" for i in range(12)
                ]
                assert await sim.send_enquire_link(answer_within=1.0)
                assert link.statistics().inbound_held == 0
                assert link.statistics().inbound_paused == 2
    paused = [e for e in logs if e["event"] == "inbound_paused"]
    assert [(e["reason"], e["held"], e["max_unacked"]) for e in paused] == [
        ("max_unacked", 5, 5)
    ] * 2
    assert sum(e["event"] == "inbound_resumed" for e in logs) == 2
    assert not any(e["event"] == "deliver_sm_ack_timed_out" for e in logs)


async def test_consumer_that_never_acks_gets_rx_t_appn(
    link_config: MakeLinkConfig, open_link: OpenLink
) -> None:
    with trio.fail_after(10), capture_logs() as logs:
        async with open_simulator() as sim:
            config = link_config(sim, max_unacked=3, ack_timeout=0.3)
            async with open_link(config) as link:
                await link.wait_bound()
                burst = await sim.burst(7, source="84903{i:06d}")
                # Read but never acked: each round times out, the reader resumes.
                items = await _receive_n(link, 7)
                responses = await burst.wait_answered()
                assert {r.status for r in responses} == {CommandStatus.ESME_RX_T_APPN}
                assert len({mo.source_addr for mo in items}) == 7
                assert link.statistics().inbound_paused == 2
    assert sum(e["event"] == "deliver_sm_ack_timed_out" for e in logs) == 7


async def test_consumer_that_stops_reading_pushes_back_without_late_answers(
    link_config: MakeLinkConfig, open_link: OpenLink
) -> None:
    with trio.fail_after(10), capture_logs() as logs:
        async with open_simulator() as sim:
            config = link_config(sim, max_unacked=2, ack_timeout=0.3)
            async with open_link(config) as link:
                await link.wait_bound()
                burst = await sim.burst(4, source="84903{i:06d}")
                # Nobody reads the channel: the first two time out, which frees
                # room; the third then waits for room in the channel itself.
                await wait_until(lambda: link.statistics().inbound_paused == 2)
                await trio.sleep(0.6)  # twice ack_timeout: the third is not answered
                assert sorted((r.index, r.status) for r in burst.responses) == [
                    (0, CommandStatus.ESME_RX_T_APPN),
                    (1, CommandStatus.ESME_RX_T_APPN),
                ]
                stale = await _receive_n(link, 2)
                await ack_all(stale)  # too late: already answered
                fresh = await _receive_n(link, 2)
                assert [mo.source_addr for mo in stale + fresh] == [
                    f"84903{i:06d}" for i in range(4)
                ]
                await ack_all(fresh)
                responses = await burst.wait_answered()
                assert sorted((r.index, r.status) for r in responses)[2:] == [(2, 0), (3, 0)]
    paused = [e["reason"] for e in logs if e["event"] == "inbound_paused"]
    # (the fourth may wait for channel room too, as the consumer catches up)
    assert paused[:2] == ["max_unacked", "channel_full"]
    assert set(paused[2:]) <= {"channel_full"}
    assert sum(e["event"] == "deliver_sm_ack_late" for e in logs) == 2


async def test_disconnect_ends_a_paused_reader_and_nothing_is_lost(
    link_config: MakeLinkConfig, open_link: OpenLink
) -> None:
    with trio.fail_after(10), capture_logs() as logs:
        async with open_simulator() as sim:
            sim.redeliver_refused(2.0)  # after the link has bound again
            config = link_config(sim, max_unacked=2, ack_timeout=0.5)
            async with open_link(config) as link:
                await link.wait_bound()
                burst = await sim.burst(5, source="84903{i:06d}")
                early = await _receive_n(link, 2)
                await wait_until(lambda: link.statistics().inbound_paused == 1)
                await sim.drop_connections()
                assert [r.status for r in await burst.wait_answered()] == [None] * 5
                # Nobody acks: the ESME_RX_T_APPN at ack_timeout is the first write
                # to the dead connection; it fails, the session (and the wait) ends.
                await wait_until(lambda: link.statistics().reconnects == 1)
                await wait_until(lambda: link.statistics().bound)
                assert link.statistics().inbound_held == 0
                await ack_all(early)  # too late: logged, no crash
                # The SMSC delivers all five again and the new connection takes
                # them (after up to two read from the dead one before it closed,
                # whose acks can only be dropped).
                sources: list[str] = []

                async def consume() -> None:
                    while True:
                        mo = await _receive_mo(link)
                        sources.append(mo.source_addr)
                        await mo.ack()

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(consume)
                    assert await sim.wait_deliver_responses(5) == [0] * 5
                    nursery.cancel_scope.cancel()
                assert sorted(set(sources)) == [f"84903{i:06d}" for i in range(5)]
                assert sim.mo_redeliveries == 5
                assert link.statistics().inbound_held == 0
    events = [e["event"] for e in logs]
    assert events.count("deliver_sm_ack_timed_out") == 2
    assert events.count("deliver_sm_ack_late") == 2


async def test_multipart_parts_count_and_never_deadlock_the_reader(
    link_config: MakeLinkConfig, open_link: OpenLink
) -> None:
    with trio.fail_after(10), capture_logs() as logs:
        async with open_scripted_smsc() as smsc:
            config = link_config(smsc.port, max_unacked=2, ack_timeout=0.3)
            async with open_link(config) as link:
                await link.wait_bound()
                sequences = [
                    await smsc.deliver(**_part(1, 3, b"BH")),
                    await smsc.deliver(**_part(2, 3, b" MK ")),
                    await smsc.deliver(**_part(3, 3, b"0123456789")),
                ]
                await wait_until(lambda: link.statistics().inbound_paused == 1)
                assert link.statistics().inbound_held == 2  # two parts wait for the third
                # The waiting parts are answered 0 at ack_timeout (the trade-off),
                # which frees room for the third: the message is whole.
                mo = await _receive_mo(link)
                assert (mo.text, mo.parts) == ("BH MK 0123456789", 3)
                assert link.statistics().inbound_held == 1
                await mo.ack()
                responses = await smsc.wait_responses(3)
                assert link.statistics().inbound_held == 0
    assert responses == dict.fromkeys(sequences, 0)
    assert sum(e["event"] == "mo_part_answered_incomplete" for e in logs) == 2


async def test_malformed_deliver_sm_is_nacked_and_the_bind_survives(
    link_config: MakeLinkConfig, open_link: OpenLink
) -> None:
    with trio.fail_after(5):
        async with open_simulator() as sim, open_link(link_config(sim)) as link:
            await link.wait_bound()
            good = encode(DeliverSm(sequence=1, source_addr=MSISDN, short_message=b"BH MK"))
            body = good[16:25]
            truncated = struct.pack(">IIII", 16 + len(body), 0x00000005, 0, 31337) + body
            status = await sim.send_raw(truncated)
            assert status is not None
            assert status != 0
            assert _nothing_more(link)
            assert link.statistics().bound
            async with trio.open_nursery() as nursery:
                nursery.start_soon(sim.inject_mo)
                mo = await _receive_mo(link)
                await mo.ack()
            assert sim.deliver_responses == [0]
