"""The group-flush writer of the link and the simulator (smscd.link.FlushWriter),
driven on trio's in-memory streams: what reaches the wire, in how many writes,
and what every writer learns when a write fails or is cancelled."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import trio
import trio.testing

from smscd.link import FlushWriter, Outgoing
from smscd.smpp import (
    Bind,
    BindMode,
    Connection,
    EnquireLink,
    LocalProtocolError,
    Role,
    SessionState,
    SubmitSm,
    encode,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


class Harness:
    """A writer on one end of a memory stream pair, counting its send_all calls
    and able to hold them at a gate (a peer that does not read)."""

    def __init__(self, *, write_timeout: float | None = None) -> None:
        left, right = trio.testing.memory_stream_pair()
        assert isinstance(left.send_stream, trio.testing.MemorySendStream)
        self.send_stream = left.send_stream
        self.peer = right
        self.pump: Callable[[], Awaitable[object]] | None = left.send_stream.send_all_hook
        self.send_stream.send_all_hook = self._hook
        self.send_alls = 0
        self.gate: trio.Event | None = None
        self.failures = 0
        self.conn = Connection(Role.ESME)
        self.writer = FlushWriter(
            left, self.conn, write_timeout=write_timeout, on_failure=self._failed
        )

    def _failed(self) -> None:
        self.failures += 1

    async def _hook(self) -> None:
        self.send_alls += 1
        if self.gate is not None:
            await self.gate.wait()
        assert self.pump is not None
        await self.pump()

    async def received(self) -> bytes:
        """Everything the peer can read now."""
        data = b""
        while True:
            with trio.move_on_after(0.01):
                chunk = await self.peer.receive_some()
                if not chunk:
                    return data
                data += chunk
                continue
            return data


def enquire(sequence: int) -> EnquireLink:
    return EnquireLink(sequence=sequence)


async def test_everything_queued_in_one_pass_goes_out_in_one_send_all_in_order() -> None:
    h = Harness()
    payloads: list[EnquireLink | bytes] = [enquire(1), enquire(2), b"\x00RAW", enquire(3)]
    items = [h.writer.enqueue(p) for p in payloads]
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            for item in items:
                nursery.start_soon(h.writer.written, item)
        assert await h.received() == encode(enquire(1)) + encode(enquire(2)) + b"\x00RAW" + (
            encode(enquire(3))
        )
    assert h.send_alls == 1
    assert all(item.written for item in items)
    assert h.writer.queued == []


async def test_writers_of_one_scheduler_pass_join_one_flush() -> None:
    h = Harness()
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            for sequence in range(1, 51):
                nursery.start_soon(h.writer.send, enquire(sequence))
        data = await h.received()
    assert h.send_alls == 1
    pdu = len(encode(enquire(1)))
    assert sorted(data[i : i + pdu] for i in range(0, len(data), pdu)) == sorted(
        encode(enquire(sequence)) for sequence in range(1, 51)
    )


async def test_an_event_the_core_refuses_is_not_written_and_the_rest_is() -> None:
    h = Harness()
    refused = SubmitSm(sequence=2, source_addr="8079", destination_addr="84327000686")
    items = [h.writer.enqueue(enquire(1)), h.writer.enqueue(refused), h.writer.enqueue(enquire(3))]
    with trio.fail_after(5):
        await h.writer.written(items[0])
        with pytest.raises(LocalProtocolError):
            await h.writer.written(items[1])
        await h.writer.written(items[2])
        assert await h.received() == encode(enquire(1)) + encode(enquire(3))
    assert [item.written for item in items] == [True, False, True]
    assert h.conn.state is SessionState.OPEN  # the connection is still fine
    assert h.failures == 0


async def test_a_failed_write_fails_the_connection_and_every_writer_of_the_batch() -> None:
    h = Harness()
    await h.peer.aclose()
    first, second = h.writer.enqueue(enquire(1)), h.writer.enqueue(enquire(2))
    outcomes: list[BaseException] = []

    async def wait(item: Outgoing) -> None:
        try:
            await h.writer.written(item)
        except trio.BrokenResourceError as exc:
            outcomes.append(exc)

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait, first)
            nursery.start_soon(wait, second)
    assert len(outcomes) == 2
    assert h.conn.state is SessionState.ERROR  # send_failed(): the core knows
    assert h.failures == 1
    assert first.done and second.done and not first.written and not second.written
    # Nothing more can be written on it.
    with pytest.raises(LocalProtocolError):
        await h.writer.send(enquire(3))


async def test_a_flusher_cancelled_mid_write_fails_the_connection_and_reraises() -> None:
    h = Harness()  # no write_timeout: the write runs in the flusher's cancel scope
    h.gate = trio.Event()  # a peer that does not read
    first, second = h.writer.enqueue(enquire(1)), h.writer.enqueue(enquire(2))
    cancelled: list[bool] = []
    errors: list[BaseException] = []

    async def flusher(*, task_status: trio.TaskStatus[trio.CancelScope]) -> None:
        with trio.CancelScope() as scope:
            task_status.started(scope)
            await h.writer.written(first)
        cancelled.append(scope.cancelled_caught)

    async def waiter(item: Outgoing) -> None:
        try:
            await h.writer.written(item)
        except (trio.BrokenResourceError, LocalProtocolError) as exc:
            errors.append(exc)

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            scope = await nursery.start(flusher)
            await trio.testing.wait_all_tasks_blocked()  # 1 and 2 in one send_all
            nursery.start_soon(waiter, second)
            third = h.writer.enqueue(enquire(3))  # for the next flush
            nursery.start_soon(waiter, third)
            await trio.testing.wait_all_tasks_blocked()
            scope.cancel()
    assert cancelled == [True]  # Cancelled came out of written()
    assert h.conn.state is SessionState.ERROR  # send_failed(): the core knows
    assert h.failures == 1
    assert h.send_alls == 1
    assert isinstance(first.error, trio.BrokenResourceError)
    assert isinstance(second.error, trio.BrokenResourceError)
    # Queued behind the failed batch: the dead core refuses it, nothing is written.
    assert isinstance(third.error, LocalProtocolError)
    assert len(errors) == 2


async def test_with_a_write_timeout_a_cancelled_flusher_still_writes_its_whole_batch(
    autojump_clock: trio.testing.MockClock,
) -> None:
    h = Harness(write_timeout=10.0)
    h.gate = trio.Event()
    items = [h.writer.enqueue(enquire(1)), h.writer.enqueue(enquire(2))]
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:

            async def open_gate() -> None:
                await trio.sleep(5)
                assert h.gate is not None
                h.gate.set()

            nursery.start_soon(open_gate)
            with trio.move_on_after(1):
                await h.writer.written(items[0])  # shielded: outlives the cancel
        assert trio.current_time() == pytest.approx(5.0)
        assert await h.received() == encode(enquire(1)) + encode(enquire(2))
    assert all(item.written for item in items)
    assert h.conn.state is SessionState.OPEN
    assert h.failures == 0


async def test_a_write_that_takes_the_whole_timeout_fails(
    autojump_clock: trio.testing.MockClock,
) -> None:
    h = Harness(write_timeout=10.0)
    h.gate = trio.Event()  # never opened: a peer that stopped reading
    with trio.fail_after(60):
        with pytest.raises(trio.BrokenResourceError, match="write timed out"):
            await h.writer.send(enquire(1))
    assert trio.current_time() == pytest.approx(10.0)
    assert h.conn.state is SessionState.ERROR
    assert h.failures == 1


async def test_a_writer_cancelled_before_its_flush_takes_its_event_back() -> None:
    h = Harness()
    h.gate = trio.Event()
    first = h.writer.enqueue(enquire(1))
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(h.writer.written, first)
            await trio.testing.wait_all_tasks_blocked()  # the flush of 1 is writing
            with trio.CancelScope() as scope:
                late = h.writer.enqueue(enquire(2))
                scope.cancel()
                await h.writer.written(late)
            assert scope.cancelled_caught
            assert h.writer.queued == []
            h.writer.enqueue(enquire(3))
            h.gate.set()
        await h.writer.send(enquire(4))
        assert await h.received() == encode(enquire(1)) + encode(enquire(3)) + encode(enquire(4))
    assert not late.taken and not late.done
    assert h.failures == 0


async def test_one_flush_applies_its_events_to_the_core_in_queue_order() -> None:
    h = Harness()
    bind = h.writer.enqueue(_bind(1))
    second_bind = h.writer.enqueue(_bind(2))  # legal when OPEN, not once BINDING
    with trio.fail_after(5):
        await h.writer.written(bind)
        with pytest.raises(LocalProtocolError):
            await h.writer.written(second_bind)
        assert await h.received() == encode(_bind(1))
    assert h.conn.state is SessionState.BINDING
    assert h.send_alls == 1


def _bind(sequence: int) -> Bind:
    return Bind(sequence=sequence, mode=BindMode.TRANSCEIVER, system_id="smscd", password="pw")
