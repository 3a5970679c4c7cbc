"""Each fault switch of the simulator, observed from the ESME side."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import trio

from smscd.simulator import Simulator, SimulatorConfig, open_simulator
from smscd.smpp import (
    BindMode,
    BindResp,
    CommandStatus,
    EnquireLink,
    EnquireLinkResp,
    FramingError,
    GenericNack,
    SubmitSmResp,
    Unbind,
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
