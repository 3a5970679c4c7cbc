"""Each fault switch of the simulator, observed from the ESME side."""

from __future__ import annotations

import struct
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import pytest
import trio

from smscd.simulator import NoReceiverError, Simulator, SimulatorConfig, open_simulator
from smscd.smpp import (
    BindMode,
    BindResp,
    CommandStatus,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    FramingError,
    GenericNack,
    SubmitSmResp,
    Unbind,
    encode,
)
from tests.simulator.esme import MiniEsme, open_esme

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

TIMEOUT = 5.0
#: How long "no answer" is watched for.
SILENCE = 0.3


@asynccontextmanager
async def bound(
    config: SimulatorConfig | None = None,
) -> AsyncIterator[tuple[Simulator, MiniEsme]]:
    async with open_simulator(config) as sim, open_esme(sim.port) as esme:
        response = await esme.bind(BindMode.TRANSCEIVER)
        assert isinstance(response, BindResp)
        assert response.command_status == 0
        yield sim, esme


async def test_throttle_next_answers_n_submits_with_the_status() -> None:
    with trio.fail_after(TIMEOUT):
        async with bound() as (sim, esme):
            sim.throttle_next(2)
            statuses = []
            for _ in range(3):
                response = await esme.submit()
                assert isinstance(response, SubmitSmResp)
                statuses.append((response.command_status, bool(response.message_id)))
            assert statuses == [
                (CommandStatus.ESME_RTHROTTLED, False),
                (CommandStatus.ESME_RTHROTTLED, False),
                (0, True),
            ]
            assert len(sim.submitted) == 1
            sim.throttle_next(1, CommandStatus.ESME_RMSGQFUL)
            response = await esme.submit()
            assert isinstance(response, SubmitSmResp)
            assert response.command_status == CommandStatus.ESME_RMSGQFUL


async def test_delayed_responses_come_concurrently() -> None:
    with trio.fail_after(TIMEOUT):
        async with bound() as (sim, esme):
            sim.delay_responses(0.5)
            done: list[float] = []
            start = trio.current_time()

            async def one() -> None:
                response = await esme.submit()
                assert isinstance(response, SubmitSmResp)
                assert response.command_status == 0
                done.append(trio.current_time() - start)

            async with trio.open_nursery() as nursery:
                for _ in range(5):
                    nursery.start_soon(one)
            assert len(done) == 5
            assert min(done) >= 0.5
            assert max(done) < 0.95  # five delays of 0.5 s overlapped, not 2.5 s in a row
            assert sim.max_outstanding_seen == 5
            sim.delay_responses(0)
            await esme.submit()
            assert sim.max_outstanding_seen == 5


async def test_window_of_one_is_seen_as_one() -> None:
    with trio.fail_after(TIMEOUT):
        async with bound() as (sim, esme):
            for _ in range(3):
                await esme.submit()
            assert sim.max_outstanding_seen == 1


async def test_black_hole_answers_nothing() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_simulator() as sim, open_esme(sim.port) as esme:
            sim.black_hole()
            with trio.move_on_after(SILENCE) as scope:
                await esme.bind()
            assert scope.cancelled_caught
            assert sim.sessions == []
            sim.black_hole(False)
            response = await esme.request(EnquireLink(sequence=esme.conn.next_sequence()))
            assert isinstance(response, EnquireLinkResp)


async def test_black_hole_on_a_live_session() -> None:
    with trio.fail_after(TIMEOUT):
        async with bound() as (sim, esme):
            sim.black_hole()
            with trio.move_on_after(SILENCE) as scope:
                await esme.submit()
            assert scope.cancelled_caught
            with trio.move_on_after(SILENCE) as scope:
                await esme.request(EnquireLink(sequence=esme.conn.next_sequence()))
            assert scope.cancelled_caught
            assert sim.enquire_links_received == 1
            assert sim.submitted == []
            assert not esme.closed.is_set()


async def test_no_response_on_submit_still_answers_enquire_link() -> None:
    with trio.fail_after(TIMEOUT):
        async with bound() as (sim, esme):
            sim.no_response_on_submit()
            with trio.move_on_after(SILENCE) as scope:
                await esme.submit()
            assert scope.cancelled_caught
            response = await esme.request(EnquireLink(sequence=esme.conn.next_sequence()))
            assert isinstance(response, EnquireLinkResp)
            assert sim.enquire_links_received == 1
            assert sim.submitted == []


async def test_generic_nack_all() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_simulator() as sim, open_esme(sim.port) as esme:
            sim.generic_nack_all()
            bind = await esme.bind()
            assert isinstance(bind, GenericNack)
            assert bind.command_status == CommandStatus.ESME_RSYSERR
            sim.generic_nack_all(False)
            await esme.bind()
            sim.generic_nack_all(status=CommandStatus.ESME_RINVCMDLEN)
            response = await esme.submit()
            assert isinstance(response, GenericNack)
            assert response.command_status == CommandStatus.ESME_RINVCMDLEN
            assert sim.submitted == []


async def test_enquire_link_silently() -> None:
    with trio.fail_after(TIMEOUT):
        async with bound() as (sim, esme):
            sim.enquire_link_silently()
            with trio.move_on_after(SILENCE) as scope:
                await esme.request(EnquireLink(sequence=esme.conn.next_sequence()))
            assert scope.cancelled_caught
            response = await esme.submit()
            assert isinstance(response, SubmitSmResp)
            assert response.command_status == 0


async def test_unbind_silently_keeps_the_connection_open() -> None:
    with trio.fail_after(TIMEOUT):
        async with bound() as (sim, esme):
            sim.unbind_silently()
            with trio.move_on_after(SILENCE) as scope:
                await esme.request(Unbind(sequence=esme.conn.next_sequence()))
            assert scope.cancelled_caught
            assert sim.unbinds_received == 1
            assert not esme.closed.is_set()


async def test_drop_connections_resets_every_session() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_simulator() as sim, open_esme(sim.port) as a, open_esme(sim.port) as b:
            await a.bind(BindMode.TRANSMITTER)
            await b.bind(BindMode.RECEIVER)
            await sim.wait_bound(2)
            await sim.drop_connections()
            await a.closed.wait()
            await b.closed.wait()
            assert sim.sessions == []
            # The listener is still there: a new bind works.
            async with open_esme(sim.port) as c:
                response = await c.bind()
                assert isinstance(response, BindResp)
                assert response.command_status == 0


async def test_unbind_all_with_answering_esme() -> None:
    with trio.fail_after(TIMEOUT):
        async with bound() as (sim, esme):
            assert await sim.unbind_all() == 1
            [unbind] = await esme.wait_requests(Unbind)
            assert isinstance(unbind, Unbind)
            await esme.closed.wait()
            assert sim.unbind_responses_received == 1
            assert sim.sessions == []


async def test_unbind_all_with_silent_esme() -> None:
    with trio.fail_after(TIMEOUT):
        async with bound() as (sim, esme):
            esme.answer_unbind = False
            assert await sim.unbind_all(wait_response=False) == 0
            await esme.wait_requests(Unbind)
            assert sim.sessions == []  # no longer bound once the unbind went out
            assert sim.unbind_responses_received == 0


async def test_send_garbage_breaks_the_esme_framing() -> None:
    with trio.fail_after(TIMEOUT):
        async with bound() as (sim, esme):
            await sim.send_garbage()
            await esme.closed.wait()
            assert isinstance(esme.framing_error, FramingError)


async def test_send_unknown_command_gets_generic_nack() -> None:
    with trio.fail_after(TIMEOUT):
        async with bound() as (sim, esme):
            statuses = await sim.send_unknown_command(0x00000999)
            assert statuses == [CommandStatus.ESME_RINVCMDID]
            assert sim.generic_nacks_received == [CommandStatus.ESME_RINVCMDID]
            assert [exc.command_status for exc in esme.rejected] == [CommandStatus.ESME_RINVCMDID]
            # The bind survives.
            response = await esme.submit()
            assert isinstance(response, SubmitSmResp)
            assert response.command_status == 0


async def test_smsc_enquire_link() -> None:
    with trio.fail_after(TIMEOUT):
        async with bound() as (sim, esme):
            assert await sim.send_enquire_link() is True
            assert [type(r) for r in esme.requests] == [EnquireLink]


async def test_smsc_enquire_link_unanswered() -> None:
    with trio.fail_after(TIMEOUT):
        async with bound() as (sim, esme):
            esme.answer_enquire_link = False
            assert await sim.send_enquire_link(answer_within=SILENCE) is False
            assert len(esme.requests) == 1


async def test_smsc_enquire_link_without_sessions() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_simulator() as sim:
            assert await sim.send_enquire_link() is False


# --- a burst of MOs -------------------------------------------------------------


async def test_burst_sends_every_mo_before_any_answer() -> None:
    with trio.fail_after(TIMEOUT):
        async with bound() as (sim, esme):
            esme.deliver_status = None  # the test answers by hand
            burst = await sim.burst(25, source="84903{i:06d}", text="BH MK 55{i:08d}")
            # Past the deliver window of 10: all 25 came with none answered.
            delivered = await esme.wait_requests(DeliverSm, 25)
            assert burst.written_at is not None
            assert burst.responses == []
            assert [d.source_addr for d in delivered if isinstance(d, DeliverSm)] == [
                f"84903{i:06d}" for i in range(25)
            ]
            assert [d.short_message for d in delivered if isinstance(d, DeliverSm)] == [
                f"BH MK 55{i:08d}".encode() for i in range(25)
            ]
            assert {
                (d.source_addr_ton, d.destination_addr)
                for d in delivered
                if isinstance(d, DeliverSm)
            } == {(1, "8079")}
            # Answer in reverse order, each with a status of its own.
            for i, mo in reversed(list(enumerate(delivered))):
                await esme.send(DeliverSmResp(sequence=mo.sequence, command_status=i))
                await trio.sleep(0.001)
            responses = await burst.wait_answered()
            assert [r.index for r in responses] == list(reversed(range(25)))
            assert all(r.status == r.index for r in responses)
            times = [r.at for r in responses]
            assert times == sorted(times)
            assert burst.sent_at <= times[0]
            assert sorted(sim.deliver_responses) == list(range(25))


async def test_burst_answers_lost_with_the_connection() -> None:
    with trio.fail_after(TIMEOUT):
        async with bound() as (sim, esme):
            esme.deliver_status = None
            burst = await sim.burst(3)
            await esme.wait_requests(DeliverSm, 3)
            await sim.drop_connections()
            responses = await burst.wait_answered()
            assert sorted((r.index, r.status) for r in responses) == [
                (0, None),
                (1, None),
                (2, None),
            ]
            assert sim.deliver_responses == []


async def test_burst_needs_a_receiver_and_a_sane_pattern() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_simulator() as sim:
            with pytest.raises(NoReceiverError):
                await sim.burst(1)
        async with bound() as (sim, esme):
            with pytest.raises(ValueError, match=r"only \{i\} may appear"):
                await sim.burst(2, source="84903{n}")
            with pytest.raises(ValueError, match="1 to 100000"):
                await sim.burst(0)
            assert esme.requests == []


# --- late submit responses ------------------------------------------------------


async def test_delay_submit_responses_delays_only_submit_sm_resp() -> None:
    with trio.fail_after(TIMEOUT):
        async with bound() as (sim, esme):
            sim.delay_submit_responses(1.0)
            start = trio.current_time()
            answered: list[float] = []

            async def submit() -> None:
                response = await esme.submit()
                assert isinstance(response, SubmitSmResp)
                assert response.command_status == 0
                answered.append(trio.current_time() - start)

            async with trio.open_nursery() as nursery:
                for _ in range(4):
                    nursery.start_soon(submit)
                await sim.wait_submitted(4)  # read at once, answered later
                # Meanwhile the SMSC answers everything else at once.
                response = await esme.request(EnquireLink(sequence=esme.conn.next_sequence()))
                assert isinstance(response, EnquireLinkResp)
                assert await sim.inject_mo() == 0
                assert trio.current_time() - start < 0.8
                assert answered == []
            assert len(answered) == 4
            assert 1.0 <= min(answered) <= max(answered) < 1.8  # together, not one by one
            assert sim.max_outstanding_submits == 4
            assert sim.max_outstanding_seen == 4  # the earlier name


# --- redelivery of refused MOs --------------------------------------------------


@pytest.mark.parametrize(
    "status",
    [
        CommandStatus.ESME_RX_T_APPN,
        CommandStatus.ESME_RMSGQFUL,
        CommandStatus.ESME_RTHROTTLED,
    ],
)
async def test_mo_refused_for_now_is_delivered_again(status: int) -> None:
    with trio.fail_after(TIMEOUT):
        async with bound() as (sim, esme):
            sim.redeliver_refused(0.2, max_attempts=3)
            esme.deliver_status = status
            sent = trio.current_time()
            assert await sim.inject_mo("84903000007", "BH MK 5500000007") == status
            esme.deliver_status = 0
            assert await sim.wait_deliver_responses(2) == [status, 0]
            first, second = await esme.wait_requests(DeliverSm, 2)
            assert trio.current_time() - sent >= 0.2
            assert isinstance(first, DeliverSm)
            assert isinstance(second, DeliverSm)
            assert second.sequence != first.sequence
            assert (second.source_addr, second.short_message) == (
                "84903000007",
                b"BH MK 5500000007",
            )
            assert sim.mo_redeliveries == 1
            await trio.sleep(0.3)
            assert len(esme.requests) == 2  # accepted: never again


@pytest.mark.parametrize("status", [CommandStatus.ESME_RX_R_APPN, CommandStatus.ESME_RSYSERR])
async def test_mo_refused_for_good_is_not_delivered_again(status: int) -> None:
    with trio.fail_after(TIMEOUT):
        async with bound() as (sim, esme):
            sim.redeliver_refused(0.05)
            esme.deliver_status = status
            assert await sim.inject_mo() == status
            await trio.sleep(0.3)
            assert len(esme.requests) == 1
            assert sim.mo_redeliveries == 0


async def test_redelivery_stops_after_max_attempts() -> None:
    with trio.fail_after(TIMEOUT):
        async with bound() as (sim, esme):
            sim.redeliver_refused(0.05, max_attempts=3)
            esme.deliver_status = CommandStatus.ESME_RX_T_APPN
            await sim.burst(1)
            await esme.wait_requests(DeliverSm, 3)
            await trio.sleep(0.3)
            assert len(esme.requests) == 3
            assert sim.mo_redeliveries == 2
            assert sim.deliver_responses == [CommandStatus.ESME_RX_T_APPN] * 3


async def test_mo_unanswered_until_the_drop_is_delivered_again_after_rebind() -> None:
    with trio.fail_after(TIMEOUT):
        async with open_simulator() as sim:
            sim.redeliver_refused(0.1)
            async with open_esme(sim.port) as silent:
                await silent.bind()
                silent.deliver_status = None
                burst = await sim.burst(2, source="84903{i:06d}")
                await silent.wait_requests(DeliverSm, 2)
                await sim.drop_connections()
                assert [r.status for r in await burst.wait_answered()] == [None, None]
            async with open_esme(sim.port) as esme:
                await esme.bind()
                delivered = await esme.wait_requests(DeliverSm, 2)
                assert sorted(d.source_addr for d in delivered if isinstance(d, DeliverSm)) == [
                    "84903000000",
                    "84903000001",
                ]
                assert await sim.wait_deliver_responses(2) == [0, 0]
                assert sim.mo_redeliveries == 2


async def test_redelivery_off_by_default_and_switched_off() -> None:
    with trio.fail_after(TIMEOUT):
        async with bound() as (sim, esme):
            esme.deliver_status = CommandStatus.ESME_RX_T_APPN
            await sim.inject_mo()
            sim.redeliver_refused(0.1)
            await sim.inject_mo()
            sim.redeliver_refused(None)  # the one scheduled is dropped
            await trio.sleep(0.3)
            assert len(esme.requests) == 2
            assert sim.mo_redeliveries == 0


# --- raw PDUs -------------------------------------------------------------------


async def test_send_raw_reports_the_answer_to_its_sequence() -> None:
    with trio.fail_after(TIMEOUT):
        async with bound() as (sim, esme):
            mo = encode(DeliverSm(sequence=9001, source_addr="84903000001", short_message=b"hi"))
            assert await sim.send_raw(mo) == 0
            [delivered] = esme.requests
            assert isinstance(delivered, DeliverSm)
            assert delivered.sequence == 9001
            # An unknown command: generic_nack, read from the header.
            unknown = struct.pack(">IIII", 16, 0x00000999, 0, 9002)
            assert await sim.send_raw(unknown) == CommandStatus.ESME_RINVCMDID
            # A body the ESME cannot decode: whatever it answered, exactly.
            body = mo[16:25]
            truncated = struct.pack(">IIII", 16 + len(body), 0x00000005, 0, 9003) + body
            status = await sim.send_raw(truncated)
            assert [r.command_status for r in esme.rejected] == [
                CommandStatus.ESME_RINVCMDID,
                status,
            ]
            assert status not in (None, 0)
            # No answer within wait: None.
            esme.answer_enquire_link = False
            enquire = struct.pack(">IIII", 16, 0x00000015, 0, 9004)
            assert await sim.send_raw(enquire, wait=SILENCE) is None
            # The session survives all of it.
            assert await sim.inject_mo() == 0
            # Less than a header: written, and nothing to wait for.
            requests = len(esme.requests)
            with trio.fail_after(SILENCE):
                assert await sim.send_raw(b"\x00\x00\x00\x10\x00\x00\x00\x15") is None
            await trio.sleep(SILENCE)
            assert len(esme.requests) == requests
            assert not esme.closed.is_set()
