"""The link binds (transceiver, transmitter + receiver), backs off and logs bind errors."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs

from smscd.link import Accepted, BindKind, OutboundSm
from smscd.simulator import SimulatorConfig, open_simulator
from smscd.smpp import BindMode
from tests.integration.conftest import wait_until

if TYPE_CHECKING:
    from structlog.typing import EventDict

    from tests.integration.conftest import MakeLinkConfig, OpenLink

PASSWORD = "s3cr3tPw"


def _count(logs: list[EventDict], event: str) -> int:
    return sum(entry["event"] == event for entry in logs)


async def test_transceiver_bind(link_config: MakeLinkConfig, open_link: OpenLink) -> None:
    with trio.fail_after(5), capture_logs(processors=[merge_contextvars]) as logs:
        async with (
            open_simulator(SimulatorConfig(password=PASSWORD)) as sim,
            open_link(link_config(sim)) as link,
        ):
            await link.wait_bound()
            [info] = await sim.wait_bound(1)
            assert info.mode is BindMode.TRANSCEIVER
            stats = link.statistics()
            assert (stats.bound, stats.state, stats.reconnects) == (True, "bound", 0)
    events = [entry["event"] for entry in logs]
    assert events.count("link_connected") == 1
    [bound] = [entry for entry in logs if entry["event"] == "link_bound"]
    # The session task binds who it is for every line it and its children log.
    assert (bound["carrier"], bound["system_id"], bound["bind_id"]) == (
        "testnet",
        "smscd",
        "testnet/transceiver/1",
    )
    assert PASSWORD not in repr(logs)


async def test_transmitter_receiver_pair(link_config: MakeLinkConfig, open_link: OpenLink) -> None:
    with trio.fail_after(5):
        async with open_simulator() as sim:
            config = link_config(sim, bind=BindKind.TRANSMITTER_RECEIVER)
            async with open_link(config) as link:
                await link.wait_bound()
                sessions = await sim.wait_bound(2)
                by_mode = {info.mode: info.id for info in sessions}
                assert set(by_mode) == {BindMode.TRANSMITTER, BindMode.RECEIVER}
                # Submits go over the transmitter...
                result = await link.submit(
                    OutboundSm(source_addr="8079", destination_addr="84327000686", text="hi")
                )
                assert isinstance(result, Accepted)
                [submitted] = await sim.wait_submitted(1)
                assert submitted.session_id == by_mode[BindMode.TRANSMITTER]
                # ...and MOs and receipts come over the receiver.
                statuses: list[int] = []

                async def inject() -> None:
                    statuses.append(await sim.inject_mo("84327000686", "BH MK 0123456789"))

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(inject)
                    items = [await link.inbound().receive() for _ in range(2)]
                    for item in items:
                        await item.ack()
                assert statuses == [0]
                assert sorted(type(item).__name__ for item in items) == [
                    "InboundMo",
                    "InboundReceipt",
                ]
                await wait_until(lambda: len(sim.deliver_responses) == 2)
                assert sim.deliver_responses == [0, 0]
                # Losing one half of the pair unbinds the link until it is back.
                await sim.unbind_all()
                await sim.wait_bound(2)
                await link.wait_bound()
                assert link.statistics().reconnects == 2


async def test_bad_password_backs_off_then_binds(
    link_config: MakeLinkConfig, open_link: OpenLink
) -> None:
    with trio.fail_after(10), capture_logs() as logs:
        async with open_simulator(SimulatorConfig(password=PASSWORD)) as sim:
            config = link_config(sim, password="wrongPw", backoff_initial=0.02, backoff_max=0.16)
            async with open_link(config) as link:
                # Let it fail a handful of times.
                await wait_until(lambda: _count(logs, "link_reconnecting") >= 6)
                assert not link.statistics().bound
                # A different error is logged again...
                sim.config.system_id = "renamed"
                await wait_until(lambda: _count(logs, "bind_failed") >= 2)
                # ...and once the SMSC accepts the credentials, the link binds.
                sim.config.system_id = config.system_id
                sim.config.password = "wrongPw"
                await link.wait_bound()
                assert link.statistics().reconnects >= 7
    failures = [e for e in logs if e["event"] == "bind_failed"]
    # Logged once per distinct error, not once per retry.
    assert [f["status"] for f in failures] == ["ESME_RINVPASWD", "ESME_RINVSYSID"]
    delays = [e["delay"] for e in logs if e["event"] == "link_reconnecting"]
    assert all(0 < d <= 0.16 for d in delays)
    # Exponential growth until the cap (jitter keeps each in [half, full] of 2**n).
    assert delays[0] <= 0.02
    assert delays[0] <= delays[1] <= delays[2] <= delays[3]
    assert delays[3] >= 0.08
    assert "wrongPw" not in repr(logs)
    assert PASSWORD not in repr(logs)


async def test_connect_refused_is_retried(link_config: MakeLinkConfig, open_link: OpenLink) -> None:
    with trio.fail_after(5), capture_logs() as logs:
        async with open_simulator() as sim:
            config = link_config(sim)
        # The simulator is gone: nothing listens on that port any more.
        async with open_link(config) as link:
            await trio.sleep(0.5)
            stats = link.statistics()
            assert not stats.bound
            assert stats.reconnects >= 2
            assert stats.state in {"connecting", "backing_off"}
    connect_failures = [e for e in logs if e["event"] == "link_connect_failed"]
    # Logged once, not once per attempt.
    assert len(connect_failures) == 1
