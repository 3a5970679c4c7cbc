"""Submitting through the link: window, throughput, throttling, statuses, losses."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import attrs
import pytest
import trio
import trio.testing
from structlog.testing import capture_logs

from smscd.link import Accepted, Link, OutboundSm, Rejected, RetryLater, SubmitResult
from smscd.simulator import open_simulator
from smscd.smpp import CommandStatus, LocalProtocolError
from tests.integration.conftest import wait_until

if TYPE_CHECKING:
    from tests.integration.conftest import MakeLinkConfig, OpenLink


def _mt(n: int = 0) -> OutboundSm:
    return OutboundSm(
        source_addr="8079",
        destination_addr=f"8432700{n:04d}",
        text=f"Reply number {n}",
        registered_delivery=0,  # no receipts to clutter the inbound channel
    )


async def _submit_all(link: Link, messages: list[OutboundSm]) -> list[SubmitResult]:
    results: list[SubmitResult | None] = [None] * len(messages)

    async def one(i: int) -> None:
        results[i] = await link.submit(messages[i])

    async with trio.open_nursery() as nursery:
        for i in range(len(messages)):
            nursery.start_soon(one, i)
            await trio.lowlevel.checkpoint()  # keep the submission order
    assert all(r is not None for r in results)
    return [r for r in results if r is not None]


async def _submit_until_accepted(link: Link, message: OutboundSm) -> tuple[Accepted, int]:
    """What a caller does: retry RetryLater. Returns the result and the tries."""
    tries = 0
    while True:
        tries += 1
        result = await link.submit(message)
        if isinstance(result, Accepted):
            return result, tries
        assert isinstance(result, RetryLater), result


async def test_submit_accepted_with_id_keys(
    link_config: MakeLinkConfig, open_link: OpenLink
) -> None:
    with trio.fail_after(5):
        async with open_simulator() as sim, open_link(link_config(sim)) as link:
            await link.wait_bound()
            result = await link.submit(_mt(1))
            assert isinstance(result, Accepted)
            [submitted] = sim.submitted
            assert result.message_id == submitted.message_id
            # The simulator answers in hex; the keys are canonical decimal values.
            assert str(int(result.message_id, 16)) in result.id_keys
            assert submitted.text == "Reply number 1"
            assert submitted.event.destination_addr == "84327000001"
            assert (submitted.event.dest_addr_ton, submitted.event.data_coding) == (1, 0)
            assert submitted.event.registered_delivery == 0  # passed through
            stats = link.statistics()
            assert (stats.submitted, stats.accepted, stats.in_flight) == (1, 1, 0)


async def test_window_is_never_exceeded(link_config: MakeLinkConfig, open_link: OpenLink) -> None:
    with trio.fail_after(10):
        async with open_simulator() as sim, open_link(link_config(sim, window=4)) as link:
            await link.wait_bound()
            sim.delay_responses(0.1)
            in_flight_seen: list[int] = []

            async def watch() -> None:
                while True:
                    in_flight_seen.append(link.statistics().in_flight)
                    await trio.sleep(0.01)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch)
                results = await _submit_all(link, [_mt(i) for i in range(20)])
                nursery.cancel_scope.cancel()
            assert all(isinstance(r, Accepted) for r in results)
            assert sim.max_outstanding_seen == 4  # used fully, never exceeded
            assert max(in_flight_seen) == 4
            # FIFO: the SMSC saw them in submission order
            assert [s.text for s in sim.submitted] == [f"Reply number {i}" for i in range(20)]


async def test_order_is_kept_when_responses_arrive_together(
    link_config: MakeLinkConfig, open_link: OpenLink
) -> None:
    # The simulator writes the answers that are due together in one write, so
    # several window permits come free in one read: the submits that take them
    # must still reach the SMSC in the callers' order.
    with trio.fail_after(10):
        async with open_simulator() as sim, open_link(link_config(sim, window=8)) as link:
            await link.wait_bound()
            sim.delay_responses(0.02)
            results = await _submit_all(link, [_mt(i) for i in range(64)])
            assert all(isinstance(r, Accepted) for r in results)
            assert sim.max_outstanding_seen == 8
            assert [s.text for s in sim.submitted] == [f"Reply number {i}" for i in range(64)]


async def test_a_submit_cancelled_in_the_line_never_reaches_the_smsc(
    link_config: MakeLinkConfig, open_link: OpenLink
) -> None:
    with trio.fail_after(10):
        async with open_simulator() as sim, open_link(link_config(sim, window=2)) as link:
            await link.wait_bound()
            sim.delay_responses(0.1)
            results: dict[int, SubmitResult] = {}

            async def one(i: int, cancel_after: float | None) -> None:
                if cancel_after is None:
                    results[i] = await link.submit(_mt(i))
                else:
                    with trio.move_on_after(cancel_after):
                        results[i] = await link.submit(_mt(i))

            async with trio.open_nursery() as nursery:
                for i in range(10):
                    # 3 (at the head of the line by then) and 5 give up while still queued.
                    nursery.start_soon(one, i, 0.05 if i in (3, 5) else None)
                    await trio.lowlevel.checkpoint()
            assert sorted(results) == [0, 1, 2, 4, 6, 7, 8, 9]
            assert all(isinstance(r, Accepted) for r in results.values())
            expected = [f"Reply number {i}" for i in sorted(results)]
            assert [s.text for s in sim.submitted] == expected
            stats = link.statistics()
            assert (stats.in_flight, stats.lost_in_flight, stats.reconnects) == (0, 0, 0)


async def test_throughput_is_spaced(
    link_config: MakeLinkConfig, open_link: OpenLink, autojump_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(30):
        async with open_simulator() as sim:
            config = link_config(sim, throughput=20.0, window=50)
            async with open_link(config) as link:
                await link.wait_bound()
                start = trio.current_time()
                results = await _submit_all(link, [_mt(i) for i in range(40)])
                elapsed = trio.current_time() - start
    assert all(isinstance(r, Accepted) for r in results)
    times = sorted(s.received_at for s in sim.submitted)
    assert len(times) == 40
    # No one-second window saw more than 20, and they were spaced, not bursted.
    for i, t in enumerate(times):
        assert sum(1 for u in times[i:] if u < t + 1.0) <= 20
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.05 - 1e-9
    assert 1.9 <= elapsed < 2.5


async def test_throttling_pauses_the_whole_bind(
    link_config: MakeLinkConfig, open_link: OpenLink
) -> None:
    with trio.fail_after(10), capture_logs() as logs:
        async with open_simulator() as sim:
            config = link_config(sim, throttle_pause=0.3)
            async with open_link(config) as link:
                await link.wait_bound()
                sim.throttle_next(3)
                start = trio.current_time()
                tries = []
                for i in range(5):
                    _, n = await _submit_until_accepted(link, _mt(i))
                    tries.append(n)
                elapsed = trio.current_time() - start
                stats = link.statistics()
    # The first message was throttled three times, each time pausing the bind.
    assert tries == [4, 1, 1, 1, 1]
    assert elapsed >= 3 * 0.3
    assert [s.text for s in sim.submitted] == [f"Reply number {i}" for i in range(5)]
    assert (stats.throttled, stats.retry_later, stats.accepted) == (3, 3, 5)
    throttled = [e for e in logs if e["event"] == "link_throttled"]
    assert len(throttled) == 3
    assert throttled[0]["status"] == "ESME_RTHROTTLED"


async def test_throttling_holds_concurrent_submitters(
    link_config: MakeLinkConfig, open_link: OpenLink
) -> None:
    with trio.fail_after(10):
        async with open_simulator() as sim:
            config = link_config(sim, throttle_pause=0.4, window=1)
            async with open_link(config) as link:
                await link.wait_bound()
                sim.throttle_next(1, status=CommandStatus.ESME_RMSGQFUL)
                results = await _submit_all(link, [_mt(i) for i in range(4)])
    first, *rest = results
    assert first == RetryLater(status=CommandStatus.ESME_RMSGQFUL, reason="throttled")
    assert all(isinstance(r, Accepted) for r in rest)
    # Nobody went through during the pause.
    times = [s.received_at for s in sim.submitted]
    assert len(times) == 3
    assert [s.text for s in sim.submitted] == [f"Reply number {i}" for i in (1, 2, 3)]


async def test_statuses_map_to_results(link_config: MakeLinkConfig, open_link: OpenLink) -> None:
    with trio.fail_after(5):
        async with open_simulator() as sim, open_link(link_config(sim)) as link:
            await link.wait_bound()
            sim.throttle_next(1, status=CommandStatus.ESME_RINVDSTADR)
            assert await link.submit(_mt()) == Rejected(status=CommandStatus.ESME_RINVDSTADR)
            sim.throttle_next(1, status=CommandStatus.ESME_RSYSERR)
            assert await link.submit(_mt()) == RetryLater(
                status=CommandStatus.ESME_RSYSERR, reason="temporary_status"
            )
            assert isinstance(await link.submit(_mt()), Accepted)
            stats = link.statistics()
            assert (stats.rejected, stats.retry_later, stats.accepted) == (1, 1, 1)
            assert stats.throttled == 0


async def test_generic_nack(link_config: MakeLinkConfig, open_link: OpenLink) -> None:
    with trio.fail_after(5):
        async with open_simulator() as sim:
            config = link_config(sim, enquire_link_interval=0.1)
            async with open_link(config) as link:
                await link.wait_bound()
                sim.generic_nack_all(status=CommandStatus.ESME_RSYSERR)
                assert await link.submit(_mt()) == RetryLater(
                    status=CommandStatus.ESME_RSYSERR, reason="temporary_status"
                )
                sim.generic_nack_all(status=CommandStatus.ESME_RINVCMDID)
                assert await link.submit(_mt()) == Rejected(status=CommandStatus.ESME_RINVCMDID)
                # enquire_link answered with generic_nack: the SMSC is alive, stay bound
                await trio.sleep(0.35)
                sim.generic_nack_all(on=False)
                assert isinstance(await link.submit(_mt()), Accepted)
                assert sim.enquire_links_received >= 2
                assert link.statistics().reconnects == 0


async def test_response_timeout_reconnects(
    link_config: MakeLinkConfig, open_link: OpenLink
) -> None:
    with trio.fail_after(5), capture_logs() as logs:
        async with open_simulator() as sim:
            config = link_config(sim, response_timeout=0.3)
            async with open_link(config) as link:
                await link.wait_bound()
                sim.no_response_on_submit()
                start = trio.current_time()
                result = await link.submit(_mt())
                assert result == RetryLater(status=None, reason="timeout")
                assert 0.3 <= trio.current_time() - start < 1.0
                sim.no_response_on_submit(on=False)
                await link.wait_bound()
                assert isinstance(await link.submit(_mt()), Accepted)
                stats = link.statistics()
                assert (stats.lost_in_flight, stats.reconnects) == (1, 1)
    timed_out = [e for e in logs if e["event"] == "request_timed_out"]
    assert [e["command"] for e in timed_out] == ["SubmitSm"]
    [lost] = [e for e in logs if e["event"] == "submit_sm_lost"]
    assert lost["msisdn"] == "0327xxx000"


async def test_in_flight_submits_fail_on_drop(
    link_config: MakeLinkConfig, open_link: OpenLink
) -> None:
    with trio.fail_after(5):
        async with open_simulator() as sim, open_link(link_config(sim)) as link:
            await link.wait_bound()
            sim.delay_responses(10)
            results: list[SubmitResult] = []

            async def submitter() -> None:
                results.extend(await _submit_all(link, [_mt(i) for i in range(5)]))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(submitter)
                await wait_until(lambda: link.statistics().in_flight == 5)
                await sim.drop_connections()
            assert results == [RetryLater(status=None, reason="connection_lost")] * 5
            sim.delay_responses(0)
            await link.wait_bound()
            assert isinstance(await link.submit(_mt()), Accepted)
            stats = link.statistics()
            assert (stats.lost_in_flight, stats.reconnects, stats.in_flight) == (5, 1, 0)


async def test_submit_while_not_bound(link_config: MakeLinkConfig, open_link: OpenLink) -> None:
    with trio.fail_after(5):
        async with open_simulator() as sim:
            config = link_config(sim, response_timeout=0.3)
        async with open_link(config) as link:
            start = trio.current_time()
            assert await link.submit(_mt()) == RetryLater(status=None, reason="not_bound")
            assert 0.3 <= trio.current_time() - start < 1.0


async def test_cancelled_submits_leave_the_bind_consistent(
    link_config: MakeLinkConfig, open_link: OpenLink
) -> None:
    with trio.fail_after(5):
        async with open_simulator() as sim, open_link(link_config(sim, window=8)) as link:
            await link.wait_bound()
            sim.delay_responses(0.05)
            # Callers give up at every stage: waiting for the window, queued for
            # the write, waiting for the response.
            async with trio.open_nursery() as nursery:
                for i in range(40):

                    async def impatient(i: int = i) -> None:
                        with trio.move_on_after(0.001 * (i % 10)):
                            await link.submit(_mt(i))

                    nursery.start_soon(impatient)
            sim.delay_responses(0)
            results = await _submit_all(link, [_mt(100 + i) for i in range(5)])
            assert all(isinstance(r, Accepted) for r in results)
            stats = link.statistics()
            assert (stats.reconnects, stats.in_flight, stats.lost_in_flight) == (0, 0, 0)


async def test_unencodable_message_raises_and_the_bind_survives(
    link_config: MakeLinkConfig, open_link: OpenLink
) -> None:
    with trio.fail_after(5):
        async with open_simulator() as sim, open_link(link_config(sim)) as link:
            await link.wait_bound()
            with pytest.raises(LocalProtocolError):
                await link.submit(attrs.evolve(_mt(), text="Mật khẩu"))  # not GSM 03.38
            with pytest.raises(LocalProtocolError):
                await link.submit(attrs.evolve(_mt(), text="x" * 255))  # over 254 octets
            with pytest.raises(LocalProtocolError):
                await link.submit(attrs.evolve(_mt(), destination_addr="8" * 30))
            assert isinstance(await link.submit(_mt()), Accepted)
            stats = link.statistics()
            assert (stats.reconnects, stats.in_flight, stats.accepted) == (0, 0, 1)
            assert len(sim.submitted) == 1
