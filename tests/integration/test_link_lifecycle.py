"""Keeping the bind alive: reconnects, enquire_link both ways, bad bytes from the
SMSC, and a graceful stop."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio
from structlog.testing import capture_logs

from smscd.link import Accepted, Link, OutboundSm, RetryLater, SubmitResult
from smscd.simulator import open_simulator
from smscd.smpp import CommandStatus
from tests.integration.conftest import wait_until

if TYPE_CHECKING:
    from structlog.typing import EventDict

    from tests.integration.conftest import MakeLinkConfig, OpenLink

MT = OutboundSm(
    source_addr="8079", destination_addr="84327000686", text="hello", registered_delivery=0
)


def _events(logs: list[EventDict], name: str) -> list[EventDict]:
    return [entry for entry in logs if entry["event"] == name]


async def test_reconnects_after_a_drop(link_config: MakeLinkConfig, open_link: OpenLink) -> None:
    with trio.fail_after(5), capture_logs() as logs:
        async with open_simulator() as sim, open_link(link_config(sim)) as link:
            await link.wait_bound()
            [first] = await sim.wait_bound(1)
            await sim.drop_connections()
            await wait_until(lambda: [s.id for s in sim.sessions] not in ([], [first.id]))
            await link.wait_bound()
            assert link.statistics().reconnects == 1
            assert isinstance(await link.submit(MT), Accepted)
    [lost] = _events(logs, "link_disconnected")
    assert lost["reason"] == "connection_lost"
    reconnecting = _events(logs, "link_reconnecting")
    assert len(reconnecting) == 1
    assert 0.025 <= reconnecting[0]["delay"] <= 0.05  # backoff_initial with jitter


async def test_smsc_unbind_is_answered_then_rebinds(
    link_config: MakeLinkConfig, open_link: OpenLink
) -> None:
    with trio.fail_after(5), capture_logs() as logs:
        async with open_simulator() as sim, open_link(link_config(sim)) as link:
            await link.wait_bound()
            assert await sim.unbind_all() == 1  # the unbind_resp came
            await sim.wait_bound(1)
            await link.wait_bound()
            assert link.statistics().reconnects == 1
            assert isinstance(await link.submit(MT), Accepted)
    # One by the SMSC, then ours when the test stops the link.
    assert [e["initiator"] for e in _events(logs, "link_unbound")] == ["smsc", "esme"]
    assert _events(logs, "link_reconnecting")


async def test_enquire_link_both_ways(link_config: MakeLinkConfig, open_link: OpenLink) -> None:
    with trio.fail_after(5):
        async with open_simulator() as sim:
            async with open_link(link_config(sim, enquire_link_interval=0.1)) as link:
                await link.wait_bound()
                await wait_until(lambda: sim.enquire_links_received >= 3)
                # The link keeps the SMSC's enquire_link answered as well.
                assert await sim.send_enquire_link()
                assert link.statistics().reconnects == 0
            # No enquire_link while traffic flows: silence is what triggers it.
            async with open_link(link_config(sim, enquire_link_interval=0.3)) as link:
                await link.wait_bound()
                before = sim.enquire_links_received
                for _ in range(8):
                    await sim.send_enquire_link()
                    await trio.sleep(0.05)
                assert sim.enquire_links_received == before


async def test_missing_enquire_link_resp_reconnects(
    link_config: MakeLinkConfig, open_link: OpenLink
) -> None:
    with trio.fail_after(5), capture_logs() as logs:
        async with open_simulator() as sim:
            config = link_config(sim, enquire_link_interval=0.1, response_timeout=0.3)
            async with open_link(config) as link:
                await link.wait_bound()
                sim.enquire_link_silently()
                await wait_until(lambda: link.statistics().reconnects >= 1)
                sim.enquire_link_silently(on=False)
                await link.wait_bound()
                assert isinstance(await link.submit(MT), Accepted)
    assert _events(logs, "enquire_link_timed_out")
    assert _events(logs, "link_disconnected")[0]["reason"] == "response_timeout"


async def test_unknown_command_does_not_kill_the_bind(
    link_config: MakeLinkConfig, open_link: OpenLink
) -> None:
    with trio.fail_after(5), capture_logs() as logs:
        async with open_simulator() as sim, open_link(link_config(sim)) as link:
            await link.wait_bound()
            assert await sim.send_unknown_command(0x00000999) == [CommandStatus.ESME_RINVCMDID]
            assert isinstance(await link.submit(MT), Accepted)
            assert link.statistics().reconnects == 0
    [rejected] = _events(logs, "pdu_rejected")
    assert rejected["status"] == "ESME_RINVCMDID"


async def test_framing_garbage_reconnects(link_config: MakeLinkConfig, open_link: OpenLink) -> None:
    with trio.fail_after(5), capture_logs() as logs:
        async with open_simulator() as sim, open_link(link_config(sim)) as link:
            await link.wait_bound()
            await sim.send_garbage()
            await wait_until(lambda: link.statistics().reconnects == 1)
            await link.wait_bound()
            assert isinstance(await link.submit(MT), Accepted)
    assert _events(logs, "framing_error_received")
    assert _events(logs, "link_disconnected")[0]["reason"] == "framing_error"


async def test_graceful_stop_drains_then_unbinds(link_config: MakeLinkConfig) -> None:
    results: list[SubmitResult] = []
    with trio.fail_after(5):
        async with open_simulator() as sim:
            link = Link(link_config(sim, stop_timeout=2.0))
            async with trio.open_nursery() as nursery:
                await nursery.start(link.run)
                await link.wait_bound()
                sim.delay_responses(0.3)

                async def submit() -> None:
                    results.append(await link.submit(MT))

                for _ in range(3):
                    nursery.start_soon(submit)
                await wait_until(lambda: link.statistics().in_flight == 3)
                start = trio.current_time()
                await link.stop()
                stopped_in = trio.current_time() - start
                # run() returns on its own once stopped: the nursery can close.
            assert sim.unbinds_received == 1
            assert sim.sessions == []
    assert stopped_in < 1.0
    assert [type(r) for r in results] == [Accepted] * 3  # answered, not abandoned
    assert await link.submit(MT) == RetryLater(status=None, reason="stopping")
    stats = link.statistics()
    assert (stats.state, stats.bound, stats.in_flight) == ("stopped", False, 0)
    # The inbound channel is closed, so a consumer's loop ends.
    async for _item in link.inbound():
        raise AssertionError("nothing was delivered")


async def test_stop_is_bounded_when_the_smsc_does_not_answer(
    link_config: MakeLinkConfig,
) -> None:
    results: list[SubmitResult] = []
    with trio.fail_after(5):
        async with open_simulator() as sim:
            link = Link(link_config(sim, stop_timeout=1.0, response_timeout=10.0))
            async with trio.open_nursery() as nursery:
                await nursery.start(link.run)
                await link.wait_bound()
                sim.black_hole()

                async def submit() -> None:
                    results.append(await link.submit(MT))

                nursery.start_soon(submit)
                await wait_until(lambda: link.statistics().in_flight == 1)
                start = trio.current_time()
                await link.stop()
                stopped_in = trio.current_time() - start
            assert sim.unbinds_received == 1
    assert 0.5 <= stopped_in <= 1.1
    assert results == [RetryLater(status=None, reason="connection_lost")]
    assert link.statistics().lost_in_flight == 1


async def test_stop_while_the_carrier_is_down(
    link_config: MakeLinkConfig, open_link: OpenLink
) -> None:
    with trio.fail_after(5):
        async with open_simulator() as sim:
            config = link_config(sim)
        start = trio.current_time()
        async with open_link(config) as link:
            await trio.sleep(0.2)
            assert not link.statistics().bound
        assert trio.current_time() - start < 0.5
        assert link.statistics().state == "stopped"


async def test_stop_waits_for_an_mo_being_acked(link_config: MakeLinkConfig) -> None:
    statuses: list[int] = []
    with trio.fail_after(5):
        async with open_simulator() as sim:
            link = Link(link_config(sim, stop_timeout=2.0))
            async with trio.open_nursery() as nursery:
                await nursery.start(link.run)
                await link.wait_bound()

                async def inject() -> None:
                    statuses.append(await sim.inject_mo())

                nursery.start_soon(inject)
                item = await link.inbound().receive()
                nursery.start_soon(link.stop)
                await trio.sleep(0.2)  # the caller is still making it durable
                assert sim.unbinds_received == 0
                await item.ack()
            assert statuses == [0]
            assert sim.unbinds_received == 1


async def test_a_bind_dropped_at_once_keeps_backing_off(
    link_config: MakeLinkConfig, open_link: OpenLink
) -> None:
    """An SMSC that accepts each bind and drops the connection right away is
    not hammered: the backoff starts over only after a bind that lasted
    ``backoff_max``."""
    with trio.fail_after(10), capture_logs() as logs:
        async with open_simulator() as sim:
            config = link_config(sim, backoff_initial=0.02, backoff_max=0.16)
            async with open_link(config) as link:
                for drops in range(4):
                    await wait_until(
                        lambda n=drops: (  # type: ignore[misc]
                            link.statistics().reconnects == n and link.statistics().bound
                        )
                    )
                    await sim.drop_connections()
                await wait_until(lambda: link.statistics().bound)
                await trio.sleep(0.2)  # a bind that lasts
                await sim.drop_connections()
                await wait_until(lambda: link.statistics().reconnects == 5)
    delays = [e["delay"] for e in logs if e["event"] == "link_reconnecting"]
    # Jitter keeps each in [half, full] of initial * 2**n, capped at the max.
    assert len(delays) == 5
    assert delays[0] <= 0.02 <= delays[1] <= 0.04 <= delays[2] <= 0.08 <= delays[3] <= 0.16
    assert delays[4] <= 0.02
