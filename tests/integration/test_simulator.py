"""The simulator seen from a minimal ESME: binds, submits, receipts, MOs."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import pytest
import trio

from smscd.simulator import (
    NoReceiverError,
    Simulator,
    SimulatorConfig,
    SubmittedSm,
    open_simulator,
)
from smscd.smpp import (
    BindMode,
    BindResp,
    CommandStatus,
    DeliverSm,
    SubmitSmResp,
    Tlv,
    Unbind,
    UnbindResp,
)
from tests.simulator.esme import MiniEsme, open_esme

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

TIMEOUT = 5.0


@asynccontextmanager
async def bound(
    config: SimulatorConfig | None = None, mode: BindMode = BindMode.TRANSCEIVER
) -> AsyncIterator[tuple[Simulator, MiniEsme]]:
    async with open_simulator(config) as sim, open_esme(sim.port) as esme:
        response = await esme.bind(mode)
        assert isinstance(response, BindResp)
        assert response.command_status == 0
        yield sim, esme


async def test_bind_succeeds_and_is_listed() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_simulator() as sim, open_esme(sim.port) as esme:
            assert sim.sessions == []
            response = await esme.bind(BindMode.TRANSCEIVER)
            assert response == BindResp(
                sequence=1, command_status=0, mode=BindMode.TRANSCEIVER, system_id="smscsim"
            )
            [info] = await sim.wait_bound(1)
            assert (info.mode, info.system_id) == (BindMode.TRANSCEIVER, "smscd")


@pytest.mark.parametrize(
    ("system_id", "password", "status"),
    [
        ("intruder", "secret", CommandStatus.ESME_RINVSYSID),
        ("smscd", "wrong", CommandStatus.ESME_RINVPASWD),
        ("intruder", "wrong", CommandStatus.ESME_RINVSYSID),
    ],
)
async def test_bind_refused_with_the_spec_status(
    system_id: str, password: str, status: CommandStatus
) -> None:
    with trio.fail_after(TIMEOUT):
        async with open_simulator() as sim, open_esme(sim.port) as esme:
            response = await esme.bind(system_id=system_id, password=password)
            assert isinstance(response, BindResp)
            assert response.command_status == status
            assert sim.sessions == []
            # Still open: the ESME may try again with the right credentials.
            response = await esme.bind()
            assert isinstance(response, BindResp)
            assert response.command_status == 0
            assert len(sim.sessions) == 1


async def test_transmitter_plus_receiver_count_as_two_sessions() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_simulator() as sim, open_esme(sim.port) as tx, open_esme(sim.port) as rx:
            await tx.bind(BindMode.TRANSMITTER)
            await rx.bind(BindMode.RECEIVER)
            infos = await sim.wait_bound(2)
            assert sorted(i.mode.value for i in infos) == ["receiver", "transmitter"]
            # An MO goes to the receiver, never to the transmitter.
            assert await sim.inject_mo("84327000686", "BH MK 0123456789") == 0
            assert [type(r) for r in rx.requests] == [DeliverSm]
            assert tx.requests == []


async def test_submit_gets_unique_lowercase_hex_ids() -> None:
    with trio.fail_after(TIMEOUT):
        async with bound() as (sim, esme):
            ids = []
            for n in range(5):
                response = await esme.submit(f"reply {n}")
                assert isinstance(response, SubmitSmResp)
                assert response.command_status == 0
                ids.append(response.message_id)
            assert len(set(ids)) == 5
            for message_id in ids:
                assert message_id == message_id.lower()
                assert int(message_id, 16) >= 0x10000000
            # A counter: consecutive numbers.
            assert [int(i, 16) - int(ids[0], 16) for i in ids] == [0, 1, 2, 3, 4]
            submitted = await sim.wait_submitted(5)
            assert [s.message_id for s in submitted] == ids
            assert [s.text for s in submitted] == [f"reply {n}" for n in range(5)]
            assert submitted[0].event.destination_addr == "84327000686"
            assert {s.session_id for s in submitted} == {sim.sessions[0].id}


async def test_submit_ids_in_decimal_are_ten_digits() -> None:
    with trio.fail_after(TIMEOUT):
        async with bound(SimulatorConfig(submit_id_format="dec")) as (_, esme):
            first = await esme.submit()
            second = await esme.submit()
            assert isinstance(first, SubmitSmResp)
            assert isinstance(second, SubmitSmResp)
            assert len(first.message_id) == 10
            assert first.message_id.isdigit()
            assert int(second.message_id) == int(first.message_id) + 1


async def test_receipt_carries_the_id_in_the_other_base() -> None:
    config = SimulatorConfig(receipt_delay=0.05, submit_id_format="hex", receipt_id_format="dec")
    with trio.fail_after(TIMEOUT):
        async with bound(config) as (sim, esme):
            response = await esme.submit(
                "Cap lai mat khau thanh cong. Tai khoan: 0123456789/Mat khau: 123456",
                registered_delivery=1,
            )
            assert isinstance(response, SubmitSmResp)
            [receipt] = await esme.wait_requests(DeliverSm)
            assert isinstance(receipt, DeliverSm)
            number = int(response.message_id, 16)
            dec_id = f"{number:010d}"
            assert receipt.esm_class == 0x04
            assert receipt.source_addr == "84327000686"
            assert (receipt.source_addr_ton, receipt.source_addr_npi) == (1, 1)
            assert receipt.destination_addr == "8079"
            text = receipt.short_message.decode("ascii")
            assert text.startswith(f"id:{dec_id} sub:001 dlvrd:001 submit date:")
            assert " stat:DELIVRD err:000 text:Cap lai mat khau tha" in text
            assert text.endswith("text:Cap lai mat khau tha")
            assert receipt.tlvs == (
                Tlv(tag=0x001E, value=dec_id.encode() + b"\x00"),
                Tlv(tag=0x0427, value=b"\x02"),
            )
            assert await sim.wait_deliver_responses(1) == [0]


async def test_receipt_text_only_and_hex_with_undeliverable_stat() -> None:
    config = SimulatorConfig(
        receipt_delay=0.0,
        submit_id_format="dec",
        receipt_id_format="hex",
        receipt_tlvs=False,
        receipt_stat="UNDELIV",
    )
    with trio.fail_after(TIMEOUT):
        async with bound(config) as (_, esme):
            response = await esme.submit("short", registered_delivery=1)
            assert isinstance(response, SubmitSmResp)
            [receipt] = await esme.wait_requests(DeliverSm)
            assert isinstance(receipt, DeliverSm)
            hex_id = f"{int(response.message_id):x}"
            text = receipt.short_message.decode("ascii")
            assert text.startswith(f"id:{hex_id} sub:001 dlvrd:000 ")
            assert "stat:UNDELIV err:000 text:short" in text
            assert receipt.tlvs == ()


async def test_no_receipt_unless_requested() -> None:
    config = SimulatorConfig(receipt_delay=0.0)
    with trio.fail_after(TIMEOUT):
        async with bound(config) as (sim, esme):
            await esme.submit(registered_delivery=0)
            await esme.submit(registered_delivery=2)  # failure-only receipt
            await trio.sleep(0.2)
            assert esme.requests == []
            assert len(sim.submitted) == 2


async def test_receipt_waits_for_a_receiver_to_bind() -> None:
    config = SimulatorConfig(receipt_delay=0.0)
    with trio.fail_after(TIMEOUT):
        async with open_simulator(config) as sim:
            async with open_esme(sim.port) as tx:
                await tx.bind(BindMode.TRANSMITTER)
                response = await tx.submit(registered_delivery=1)
                assert isinstance(response, SubmitSmResp)
                await trio.sleep(0.1)
                assert tx.requests == []  # a transmitter receives nothing
            async with open_esme(sim.port) as rx:
                await rx.bind(BindMode.RECEIVER)
                [receipt] = await rx.wait_requests(DeliverSm)
                assert isinstance(receipt, DeliverSm)
                assert receipt.esm_class == 0x04
                assert Tlv(tag=0x001E, value=b"%010d\x00" % int(response.message_id, 16)) in (
                    receipt.tlvs
                )


async def test_receipt_retried_after_temporary_refusal() -> None:
    config = SimulatorConfig(receipt_delay=0.05)
    with trio.fail_after(TIMEOUT):
        async with bound(config) as (sim, esme):
            esme.deliver_status = CommandStatus.ESME_RX_T_APPN
            await esme.submit(registered_delivery=1)
            await esme.wait_requests(DeliverSm, 1)
            esme.deliver_status = 0
            await esme.wait_requests(DeliverSm, 2)
            first, second = (r for r in esme.requests if isinstance(r, DeliverSm))
            assert first.short_message[:14] == second.short_message[:14]
            assert await sim.wait_deliver_responses(2) == [CommandStatus.ESME_RX_T_APPN, 0]


async def test_inject_mo_returns_the_esme_status() -> None:
    with trio.fail_after(TIMEOUT):
        async with bound() as (sim, esme):
            assert await sim.inject_mo("84327000686", "BH MK 0123456789") == 0
            esme.deliver_status = CommandStatus.ESME_RX_T_APPN
            assert await sim.inject_mo("0327000686", "bh mk 0123456789", source_addr_ton=0) == (
                CommandStatus.ESME_RX_T_APPN
            )
            first, second = esme.requests
            assert isinstance(first, DeliverSm)
            assert isinstance(second, DeliverSm)
            assert (first.source_addr, first.source_addr_ton, first.source_addr_npi) == (
                "84327000686",
                1,
                1,
            )
            assert first.destination_addr == "8079"
            assert first.esm_class == 0
            assert first.short_message == b"BH MK 0123456789"
            assert (second.source_addr, second.source_addr_ton) == ("0327000686", 0)
            assert sim.deliver_responses == [0, CommandStatus.ESME_RX_T_APPN]


async def test_inject_mo_in_concatenated_parts() -> None:
    with trio.fail_after(TIMEOUT):
        async with bound() as (sim, esme):
            status = await sim.inject_mo(text="BH MK 0123456789", parts=2, destination_addr="9999")
            assert status == 0
            first, second = esme.requests
            assert isinstance(first, DeliverSm)
            assert isinstance(second, DeliverSm)
            assert first.esm_class == second.esm_class == 0x40
            assert first.short_message[:5] == second.short_message[:5]
            assert first.short_message[:3] == b"\x05\x00\x03"
            assert first.short_message[4:6] == b"\x02\x01"
            assert second.short_message[4:6] == b"\x02\x02"
            assert first.short_message[6:] + second.short_message[6:] == b"BH MK 0123456789"
            assert first.destination_addr == "9999"


async def test_inject_mo_ucs2() -> None:
    with trio.fail_after(TIMEOUT):
        async with bound() as (sim, esme):
            assert await sim.inject_mo(text="BH MK Mã", data_coding=8) == 0
            [mo] = esme.requests
            assert isinstance(mo, DeliverSm)
            assert mo.data_coding == 8
            assert mo.short_message == "BH MK Mã".encode("utf-16-be")


async def test_inject_mo_without_receiver_raises() -> None:
    with trio.fail_after(TIMEOUT):
        async with bound(mode=BindMode.TRANSMITTER) as (sim, _):
            with pytest.raises(NoReceiverError):
                await sim.inject_mo()


async def test_esme_unbind_is_answered_and_closes() -> None:
    with trio.fail_after(TIMEOUT):
        async with bound() as (sim, esme):
            response = await esme.request(Unbind(sequence=esme.conn.next_sequence()))
            assert isinstance(response, UnbindResp)
            assert response.command_status == 0
            await esme.closed.wait()
            assert sim.unbinds_received == 1
            assert sim.sessions == []


async def test_submitted_record_is_frozen() -> None:
    with trio.fail_after(TIMEOUT):
        async with bound() as (sim, esme):
            await esme.submit("x")
            [record] = await sim.wait_submitted(1)
            assert isinstance(record, SubmittedSm)
            assert record.received_at <= trio.current_time()
            with pytest.raises(AttributeError):
                record.text = "y"  # type: ignore[misc]
